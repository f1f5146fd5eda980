/* SPDX-License-Identifier: MIT */
/*
 * virtio-rng device model (virtio spec 5.4): one request queue, no config
 * space, no device-specific features. Every writable buffer the driver makes
 * available is filled with bytes from getrandom() and returned.
 */
#include "rng.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>

struct rng {
	vdev_device *dev;
	int active;
	/* Storage for one popped chain; grown when a chain needs more. */
	struct vdev_queue_elem elem;
	uint32_t iov_cap;
	struct iovec *iov;
	uint64_t *gpa;
	struct rng_stats stats;
};

#define BIT(n) (UINT64_C(1) << (n))

/* What the device offers. VERSION_1 would be added by the library anyway. */
static const uint64_t rng_features = BIT(VIRTIO_F_VERSION_1) | BIT(VIRTIO_F_RING_PACKED) |
				     BIT(VIRTIO_RING_F_EVENT_IDX) |
				     BIT(VIRTIO_RING_F_INDIRECT_DESC);

static int rng_elem_reserve(struct rng *rng, uint32_t cap)
{
	struct iovec *iov;
	uint64_t *gpa;

	if (cap <= rng->iov_cap)
		return 0;
	iov = realloc(rng->iov, cap * sizeof(*iov));
	if (!iov)
		return -ENOMEM;
	rng->iov = iov;
	gpa = realloc(rng->gpa, cap * sizeof(*gpa));
	if (!gpa)
		return -ENOMEM;
	rng->gpa = gpa;
	rng->iov_cap = cap;
	rng->elem.iov = rng->iov;
	rng->elem.gpa = rng->gpa;
	rng->elem.iov_cap = cap;
	return 0;
}

/* Fill [p, p + len) with entropy; returns the bytes written. */
static size_t fill_random(void *p, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = getrandom((char *)p + done, len - done, 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		done += (size_t)n;
	}
	return done;
}

static int rng_config_read(vdev_device *dev, void *opaque, uint32_t offset, void *buf,
			   uint32_t len)
{
	(void)dev;
	(void)opaque;
	(void)offset;
	/* config_size is 0, so the library never lets a read through. */
	memset(buf, 0, len);
	return 0;
}

static int rng_activate(vdev_device *dev, void *opaque)
{
	struct rng *rng = opaque;
	int r;

	if (!vdev_device_get_queue(dev, 0))
		return -EINVAL; /* the driver did not enable the request queue */
	/* A chain has at most queue-size descriptors; leave room for buffers
	 * that straddle two memory regions. */
	r = rng_elem_reserve(rng, 2 * vdev_device_queue_max_size(dev));
	if (r < 0)
		return r;
	rng->active = 1;
	return 0;
}

static void rng_reset(vdev_device *dev, void *opaque)
{
	struct rng *rng = opaque;

	(void)dev;
	/* Nothing is in flight between two callbacks: requests complete inside
	 * queue_notify, so there is nothing to cancel. */
	rng->active = 0;
}

/* Serve one popped chain: entropy into every writable buffer. */
static uint32_t rng_serve(const struct vdev_queue_elem *elem)
{
	uint64_t written = 0;
	uint32_t i;

	for (i = elem->out_num; i < elem->out_num + elem->in_num; i++) {
		size_t n = fill_random(elem->iov[i].iov_base, elem->iov[i].iov_len);

		written += n;
		if (n < elem->iov[i].iov_len)
			break; /* entropy source failed: return what we have */
	}
	return written > UINT32_MAX ? UINT32_MAX : (uint32_t)written;
}

static void rng_queue_notify(vdev_device *dev, void *opaque, uint32_t index)
{
	struct rng *rng = opaque;
	vdev_queue *q = vdev_device_get_queue(dev, index);
	int r;

	rng->stats.notifies++;
	if (!q)
		return;
	do {
		/* No kicks needed while we drain the ring. */
		vdev_queue_set_notification(q, 0);
		for (;;) {
			uint32_t len;

			r = vdev_queue_pop(q, &rng->elem);
			if (r == -ENOBUFS && rng->iov_cap < 4 * VDEV_QUEUE_MAX_SIZE &&
			    rng_elem_reserve(rng, 2 * rng->iov_cap) == 0)
				continue; /* nothing was consumed: retry with room */
			if (r <= 0)
				break;
			len = rng_serve(&rng->elem);
			r = vdev_queue_fill(q, &rng->elem, len);
			if (r < 0)
				break;
			rng->stats.requests++;
			rng->stats.bytes += len;
		}
		if (r < 0) {
			/* -EBADMSG: the library has marked the queue broken and the
			 * device DEVICE_NEEDS_RESET; stop touching it. */
			rng->stats.errors++;
			if (r != -EBADMSG)
				vdev_device_set_needs_reset(dev);
			return;
		}
		/* One interrupt decision per batch (EVENT_IDX or NO_INTERRUPT). */
		if (vdev_queue_flush(q) > 0 && vdev_device_interrupt_queue(dev, index) == 0)
			rng->stats.interrupts++;
		/* Re-enabling re-checks the ring: buffers that arrived in between
		 * would otherwise wait for a kick that never comes. */
	} while (vdev_queue_set_notification(q, 1) > 0);
}

static const struct vdev_device_ops rng_ops = {
	.struct_size = sizeof(struct vdev_device_ops),
	.config_read = rng_config_read,
	.activate = rng_activate,
	.reset = rng_reset,
	.queue_notify = rng_queue_notify,
};

int rng_new(vdev_mem *mem, vdev_irq *irq, uint32_t queue_size, struct rng **out)
{
	struct vdev_device_config cfg = VDEV_DEVICE_CONFIG_INIT;
	struct rng *rng;
	int r;

	if (!mem || !irq || !out)
		return -EINVAL;
	rng = calloc(1, sizeof(*rng));
	if (!rng)
		return -ENOMEM;
	rng->elem = (struct vdev_queue_elem)VDEV_QUEUE_ELEM_INIT;

	cfg.device_type = VIRTIO_ID_RNG;
	cfg.features = rng_features;
	cfg.num_queues = 1;
	cfg.queue_max_size = queue_size;
	cfg.config_size = 0;
	r = vdev_device_new(&cfg, &rng_ops, rng, &rng->dev);
	if (r == 0)
		r = vdev_device_set_memory(rng->dev, mem);
	if (r == 0)
		r = vdev_device_set_irq(rng->dev, irq);
	if (r < 0) {
		rng_free(rng);
		return r;
	}
	*out = rng;
	return 0;
}

void rng_free(struct rng *rng)
{
	if (!rng)
		return;
	vdev_device_free(rng->dev); /* resets (calls rng_reset) if active */
	free(rng->iov);
	free(rng->gpa);
	free(rng);
}

vdev_device *rng_device(const struct rng *rng)
{
	return rng->dev;
}

const struct rng_stats *rng_stats(const struct rng *rng)
{
	return &rng->stats;
}

int rng_active(const struct rng *rng)
{
	return rng->active;
}
