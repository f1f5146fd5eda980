/* SPDX-License-Identifier: MIT */
/*
 * virtio-blk device model (virtio spec 5.2) over memory: IN, OUT, FLUSH and
 * GET_ID. Requests complete inside queue_notify; a real block device would
 * submit to a backend there and fill/flush from its completion handler.
 */
#include "ramblk.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>

struct ramblk {
	vdev_device *dev;
	uint8_t *disk;
	uint64_t sectors;
	struct vdev_queue_elem elem;
	uint32_t iov_cap;
	struct iovec *iov;
	uint64_t *gpa;
	struct ramblk_stats stats;
};

#define BIT(n) (UINT64_C(1) << (n))
#define BLK_HDR_SIZE 16u /* struct virtio_blk_outhdr: type, ioprio, sector */

static const uint64_t ramblk_features =
	BIT(VIRTIO_F_VERSION_1) | BIT(VIRTIO_F_RING_PACKED) | BIT(VIRTIO_RING_F_EVENT_IDX) |
	BIT(VIRTIO_RING_F_INDIRECT_DESC) | BIT(VIRTIO_BLK_F_FLUSH);

static uint64_t get_le(const uint8_t *p, unsigned int n)
{
	uint64_t v = 0;

	while (n--)
		v = (v << 8) | p[n];
	return v;
}

/*
 * Copy between [off, off + len) of an iovec list and @buf (to the list when
 * @to_iov). The caller has checked that the list holds off + len bytes.
 */
static void iov_copy(const struct iovec *iov, uint32_t n, uint64_t off, void *buf, uint64_t len,
		     int to_iov)
{
	uint8_t *b = buf;
	uint32_t i;

	for (i = 0; i < n && len; i++) {
		uint64_t seg = iov[i].iov_len, chunk;

		if (off >= seg) {
			off -= seg;
			continue;
		}
		chunk = seg - off < len ? seg - off : len;
		if (to_iov)
			memcpy((uint8_t *)iov[i].iov_base + off, b, chunk);
		else
			memcpy(b, (uint8_t *)iov[i].iov_base + off, chunk);
		b += chunk;
		len -= chunk;
		off = 0;
	}
}

static int elem_reserve(struct ramblk *b, uint32_t cap)
{
	struct iovec *iov;
	uint64_t *gpa;

	if (cap <= b->iov_cap)
		return 0;
	iov = realloc(b->iov, cap * sizeof(*iov));
	if (!iov)
		return -ENOMEM;
	b->iov = iov;
	gpa = realloc(b->gpa, cap * sizeof(*gpa));
	if (!gpa)
		return -ENOMEM;
	b->gpa = gpa;
	b->iov_cap = cap;
	b->elem.iov = b->iov;
	b->elem.gpa = b->gpa;
	b->elem.iov_cap = cap;
	return 0;
}

/* Does [sector, sector + len / 512) lie on the disk, in whole sectors? */
static int range_ok(const struct ramblk *b, uint64_t sector, uint64_t len)
{
	return len % RAMBLK_SECTOR == 0 && sector <= b->sectors &&
	       len / RAMBLK_SECTOR <= b->sectors - sector;
}

/* Serve one request; returns the bytes written into the writable part. */
static uint32_t ramblk_serve(struct ramblk *b, const struct vdev_queue_elem *e)
{
	const struct iovec *out = e->iov, *in = e->iov + e->out_num;
	uint8_t hdr[BLK_HDR_SIZE], status = VIRTIO_BLK_S_OK;
	uint64_t sector, len, written = 0;
	uint32_t type;

	/* No room for the header or the status byte: nothing sensible to say. */
	if (e->out_len < BLK_HDR_SIZE || e->in_len < 1) {
		b->stats.errors++;
		return 0;
	}
	/* Copy the header out of guest memory once, then look only at the copy:
	 * the guest may rewrite it while we work. */
	iov_copy(out, e->out_num, 0, hdr, sizeof(hdr), 0);
	type = (uint32_t)get_le(hdr, 4);
	sector = get_le(hdr + 8, 8);

	switch (type) {
	case VIRTIO_BLK_T_IN:
		len = e->in_len - 1;
		if (!range_ok(b, sector, len)) {
			status = VIRTIO_BLK_S_IOERR;
			break;
		}
		iov_copy(in, e->in_num, 0, b->disk + sector * RAMBLK_SECTOR, len, 1);
		written = len;
		break;
	case VIRTIO_BLK_T_OUT:
		len = e->out_len - BLK_HDR_SIZE;
		if (!range_ok(b, sector, len)) {
			status = VIRTIO_BLK_S_IOERR;
			break;
		}
		iov_copy(out, e->out_num, BLK_HDR_SIZE, b->disk + sector * RAMBLK_SECTOR, len, 0);
		break;
	case VIRTIO_BLK_T_FLUSH:
		break; /* memory is as durable as it gets */
	case VIRTIO_BLK_T_GET_ID:
		len = e->in_len - 1 < VIRTIO_BLK_ID_BYTES ? e->in_len - 1 : VIRTIO_BLK_ID_BYTES;
		iov_copy(in, e->in_num, 0, (void *)RAMBLK_ID, len, 1);
		written = len;
		break;
	default:
		status = VIRTIO_BLK_S_UNSUPP;
		break;
	}
	if (status != VIRTIO_BLK_S_OK)
		b->stats.errors++;
	/* The status byte is the last writable byte. */
	iov_copy(in, e->in_num, e->in_len - 1, &status, 1, 1);
	return (uint32_t)(written + 1);
}

static int ramblk_config_read(vdev_device *dev, void *opaque, uint32_t offset, void *buf,
			      uint32_t len)
{
	struct ramblk *b = opaque;
	uint8_t cfg[sizeof(struct virtio_blk_config)];
	unsigned int i;

	(void)dev;
	/* Only capacity is meaningful; the fields of features we do not offer
	 * read as zero. Config space is little endian. */
	memset(cfg, 0, sizeof(cfg));
	for (i = 0; i < 8; i++)
		cfg[offsetof(struct virtio_blk_config, capacity) + i] =
			(uint8_t)(b->sectors >> (8 * i));
	memcpy(buf, cfg + offset, len); /* range checked by the library */
	return 0;
}

static int ramblk_activate(vdev_device *dev, void *opaque)
{
	struct ramblk *b = opaque;

	if (!vdev_device_get_queue(dev, 0))
		return -EINVAL;
	return elem_reserve(b, 2 * vdev_device_queue_max_size(dev));
}

static void ramblk_reset(vdev_device *dev, void *opaque)
{
	(void)dev;
	(void)opaque;
	/* Requests complete inside queue_notify: nothing in flight to cancel. */
}

static void ramblk_queue_notify(vdev_device *dev, void *opaque, uint32_t index)
{
	struct ramblk *b = opaque;
	vdev_queue *q = vdev_device_get_queue(dev, index);
	int r;

	b->stats.notifies++;
	if (!q)
		return;
	do {
		vdev_queue_set_notification(q, 0);
		for (;;) {
			r = vdev_queue_pop(q, &b->elem);
			if (r == -ENOBUFS && b->iov_cap < 4 * VDEV_QUEUE_MAX_SIZE &&
			    elem_reserve(b, 2 * b->iov_cap) == 0)
				continue;
			if (r <= 0)
				break;
			r = vdev_queue_fill(q, &b->elem, ramblk_serve(b, &b->elem));
			if (r < 0)
				break;
			b->stats.requests++;
		}
		if (r < 0) {
			b->stats.queue_errors++;
			if (r != -EBADMSG)
				vdev_device_set_needs_reset(dev);
			return;
		}
		if (vdev_queue_flush(q) > 0 && vdev_device_interrupt_queue(dev, index) == 0)
			b->stats.interrupts++;
	} while (vdev_queue_set_notification(q, 1) > 0);
}

static const struct vdev_device_ops ramblk_ops = {
	.struct_size = sizeof(struct vdev_device_ops),
	.config_read = ramblk_config_read,
	.activate = ramblk_activate,
	.reset = ramblk_reset,
	.queue_notify = ramblk_queue_notify,
};

int ramblk_new(vdev_mem *mem, vdev_irq *irq, uint32_t queue_size, uint64_t sectors,
	       struct ramblk **out)
{
	struct vdev_device_config cfg = VDEV_DEVICE_CONFIG_INIT;
	struct ramblk *b;
	int r;

	if (!mem || !irq || !out || sectors == 0 || sectors > (UINT64_C(1) << 30) / RAMBLK_SECTOR)
		return -EINVAL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->elem = (struct vdev_queue_elem)VDEV_QUEUE_ELEM_INIT;
	b->sectors = sectors;
	b->disk = calloc(sectors, RAMBLK_SECTOR);
	if (!b->disk) {
		free(b);
		return -ENOMEM;
	}
	cfg.device_type = VIRTIO_ID_BLOCK;
	cfg.features = ramblk_features;
	cfg.num_queues = 1;
	cfg.queue_max_size = queue_size;
	cfg.config_size = sizeof(struct virtio_blk_config);
	r = vdev_device_new(&cfg, &ramblk_ops, b, &b->dev);
	if (r == 0)
		r = vdev_device_set_memory(b->dev, mem);
	if (r == 0)
		r = vdev_device_set_irq(b->dev, irq);
	if (r < 0) {
		ramblk_free(b);
		return r;
	}
	*out = b;
	return 0;
}

void ramblk_free(struct ramblk *b)
{
	if (!b)
		return;
	vdev_device_free(b->dev);
	free(b->iov);
	free(b->gpa);
	free(b->disk);
	free(b);
}

vdev_device *ramblk_device(const struct ramblk *b)
{
	return b->dev;
}

const struct ramblk_stats *ramblk_stats(const struct ramblk *b)
{
	return &b->stats;
}

const uint8_t *ramblk_data(const struct ramblk *b)
{
	return b->disk;
}
