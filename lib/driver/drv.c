/* SPDX-License-Identifier: MIT */
/*
 * Driver side: initialization sequence, feature negotiation, config access
 * and queue setup (spec 3.1.1, 2.1, 2.5). Freestanding: no libc beyond
 * memcpy/memset, everything in caller storage and the caller's arena.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include "drv_internal.h"
#include "internal/util.h"

#define VDI_BIT(n) (1ull << (n))

/*
 * Transport and ring feature bits this code implements. Every other bit in
 * the reserved ranges (28..41, 50..127) is withheld whatever the driver ops
 * ask for: accepting e.g. IN_ORDER or NOTIFICATION_DATA would let the device
 * rely on behaviour the rings below do not have.
 */
#define VDI_DRV_TRANSPORT_OK                                                              \
	(VDI_BIT(VIRTIO_RING_F_INDIRECT_DESC) | VDI_BIT(VIRTIO_RING_F_EVENT_IDX) |           \
	 VDI_BIT(VIRTIO_F_VERSION_1) | VDI_BIT(VIRTIO_F_ACCESS_PLATFORM) |                   \
	 VDI_BIT(VIRTIO_F_RING_PACKED) | VDI_BIT(VIRTIO_F_ORDER_PLATFORM) |                  \
	 VDI_BIT(VIRTIO_F_SR_IOV))
#define VDI_DRV_TRANSPORT_RANGE ((VDI_BIT(42) - VDI_BIT(28)) | ~(VDI_BIT(50) - 1))

/* Bounded waits: a device that never completes a reset or keeps changing its
 * config must not hang the driver. */
#define VDI_DRV_RESET_TRIES 1000000u
#define VDI_DRV_CONFIG_TRIES 1000u

uint64_t vdev_drv_storage_size(void)
{
	return sizeof(struct vdev_drv);
}

int vdev_drv_init(void *storage, uint64_t storage_size, const struct vdev_drv_config *cfg,
		  vdev_drv **out)
{
	struct vdev_drv_config c;
	vdev_drv *drv;

	if (!storage || !cfg || !out || storage_size < sizeof(struct vdev_drv) ||
	    ((uintptr_t)storage & 7u))
		return -EINVAL;
	if (vdi_copy_versioned(&c, sizeof(c), cfg) < 0)
		return -EINVAL;
	if (!c.transport || !c.driver)
		return -EINVAL;
	if (c.arena_size) {
		/* Host and guest views must agree on alignment up to 16 bytes so
		 * that a ring aligned for the device is aligned for us too. */
		if (!c.arena || ((uintptr_t)c.arena & 15u) || (c.arena_gpa & 15u))
			return -EINVAL;
		if (c.arena_gpa + c.arena_size < c.arena_gpa ||
		    (uintptr_t)c.arena + c.arena_size < (uintptr_t)c.arena ||
		    c.arena_size > (uint64_t)(uintptr_t)-1)
			return -EINVAL;
	}

	drv = storage;
	memset(drv, 0, sizeof(*drv));
	drv->cfg = c;
	if (vdi_copy_versioned(&drv->t, sizeof(drv->t), c.transport) < 0 ||
	    vdi_copy_versioned(&drv->ops, sizeof(drv->ops), c.driver) < 0)
		return -EINVAL;
	if (!drv->t.get_status || !drv->t.set_status || !drv->t.get_device_features ||
	    !drv->t.set_driver_features || !drv->t.queue_max_size || !drv->t.queue_setup ||
	    !drv->t.queue_notify || !drv->t.config_read || !drv->t.config_write)
		return -EINVAL;
	if (!drv->ops.negotiate_features || !drv->ops.pre_device_initialization)
		return -EINVAL;
	drv->phase = VDI_DRV_IDLE;
	*out = drv;
	return 0;
}

static void drv_set_status(vdev_drv *drv, uint32_t bits)
{
	drv->status |= bits;
	drv->t.set_status(drv->cfg.transport_opaque, drv->status);
}

/* Every queue set up so far becomes unusable; its arena space is recycled by
 * the next start. */
static void drv_forget_queues(vdev_drv *drv)
{
	struct vdev_drvq *q;

	for (q = drv->queues; q; q = q->next)
		q->err = -ENODEV;
	drv->queues = NULL;
}

static int drv_do_reset(vdev_drv *drv)
{
	void *t = drv->cfg.transport_opaque;
	uint32_t i;

	drv_forget_queues(drv);
	drv->phase = VDI_DRV_IDLE;
	drv->status = 0;
	drv->t.set_status(t, 0);
	/* The spec (4.x) has the driver wait for the reset to complete by
	 * reading status back as 0. */
	for (i = 0; i < VDI_DRV_RESET_TRIES; i++) {
		if (drv->t.get_status(t) == 0)
			return 0;
	}
	return -ETIMEDOUT;
}

void vdev_drv_reset(vdev_drv *drv)
{
	if (!drv)
		return;
	(void)drv_do_reset(drv);
}

static int drv_fail(vdev_drv *drv, int err)
{
	/* Build on what the device holds: it may have refused a bit we wrote
	 * (FEATURES_OK), and repeating that bit could get FAILED refused too. */
	drv->phase = VDI_DRV_IDLE;
	drv->status = drv->t.get_status(drv->cfg.transport_opaque) &
		      (VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
		       VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
	drv_set_status(drv, VIRTIO_CONFIG_S_FAILED);
	vdi_log(VDEV_LOG_WARNING, "virtio driver: device initialization failed (%d)", err);
	return err;
}

int vdev_drv_start(vdev_drv *drv)
{
	void *t;
	uint64_t offered, accepted;
	uint32_t st;
	int r;

	if (!drv)
		return -EINVAL;
	t = drv->cfg.transport_opaque;

	r = drv_do_reset(drv);
	if (r < 0)
		return drv_fail(drv, r);
	drv->arena_used = 0;
	drv->features = 0;

	drv_set_status(drv, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	drv_set_status(drv, VIRTIO_CONFIG_S_DRIVER);

	offered = (uint64_t)drv->t.get_device_features(t, 0) |
		  ((uint64_t)drv->t.get_device_features(t, 1) << 32);
	/* Only modern devices: the rings below are little endian and laid out
	 * per VERSION_1. */
	if (!(offered & VDI_BIT(VIRTIO_F_VERSION_1)))
		return drv_fail(drv, -ENOTSUP);

	accepted = drv->ops.negotiate_features(drv, drv->cfg.driver_opaque, offered);
	accepted &= offered;
	accepted &= ~VDI_DRV_TRANSPORT_RANGE | VDI_DRV_TRANSPORT_OK;
	accepted |= VDI_BIT(VIRTIO_F_VERSION_1);
	drv->features = accepted;

	drv->t.set_driver_features(t, 0, (uint32_t)accepted);
	drv->t.set_driver_features(t, 1, (uint32_t)(accepted >> 32));
	drv_set_status(drv, VIRTIO_CONFIG_S_FEATURES_OK);
	st = drv->t.get_status(t);
	if (!(st & VIRTIO_CONFIG_S_FEATURES_OK))
		return drv_fail(drv, -ENOTSUP);

	drv->phase = VDI_DRV_PRE_INIT;
	r = drv->ops.pre_device_initialization(drv, drv->cfg.driver_opaque);
	if (r < 0)
		return drv_fail(drv, r);

	drv_set_status(drv, VIRTIO_CONFIG_S_DRIVER_OK);
	st = drv->t.get_status(t);
	if (!(st & VIRTIO_CONFIG_S_DRIVER_OK) || (st & VIRTIO_CONFIG_S_NEEDS_RESET))
		return drv_fail(drv, -EIO);
	drv->phase = VDI_DRV_RUNNING;

	if (drv->ops.device_initialized) {
		r = drv->ops.device_initialized(drv, drv->cfg.driver_opaque);
		if (r < 0)
			return drv_fail(drv, r);
	}
	return 0;
}

uint64_t vdev_drv_features(const vdev_drv *drv)
{
	return drv ? drv->features : 0;
}

uint32_t vdev_drv_status(const vdev_drv *drv)
{
	if (!drv)
		return 0;
	return drv->t.get_status(drv->cfg.transport_opaque);
}

/* Widest naturally aligned access at @off that fits in @left bytes. */
static uint32_t cfg_width(uint32_t off, uint32_t left)
{
	if (!(off & 3u) && left >= 4)
		return 4;
	if (!(off & 1u) && left >= 2)
		return 2;
	return 1;
}

static uint32_t drv_generation(vdev_drv *drv)
{
	if (!drv->t.config_generation)
		return 0;
	return drv->t.config_generation(drv->cfg.transport_opaque);
}

int vdev_drv_config_read(vdev_drv *drv, uint32_t offset, void *buf, uint32_t len)
{
	uint8_t *p = buf;
	uint32_t tries, gen1, gen2, done, w, v, i;

	if (!drv || (len && !buf) || offset + len < offset)
		return -EINVAL;
	if (!len)
		return 0;
	for (tries = 0; tries < VDI_DRV_CONFIG_TRIES; tries++) {
		gen1 = drv_generation(drv);
		for (done = 0; done < len; done += w) {
			w = cfg_width(offset + done, len - done);
			v = drv->t.config_read(drv->cfg.transport_opaque, offset + done, w);
			for (i = 0; i < w; i++)
				p[done + i] = (uint8_t)(v >> (8 * i));
		}
		gen2 = drv_generation(drv);
		if (gen1 == gen2)
			return 0;
	}
	return -EAGAIN;
}

int vdev_drv_config_write(vdev_drv *drv, uint32_t offset, const void *buf, uint32_t len)
{
	const uint8_t *p = buf;
	uint32_t done, w, v, i;

	if (!drv || (len && !buf) || offset + len < offset)
		return -EINVAL;
	for (done = 0; done < len; done += w) {
		w = cfg_width(offset + done, len - done);
		v = 0;
		for (i = 0; i < w; i++)
			v |= (uint32_t)p[done + i] << (8 * i);
		drv->t.config_write(drv->cfg.transport_opaque, offset + done, w, v);
	}
	return 0;
}

void *vdi_drv_arena_alloc(vdev_drv *drv, uint64_t size, uint64_t align)
{
	uint64_t base = drv->cfg.arena_gpa, start, off;

	/* Align in guest-address terms: that is what the device checks. */
	start = base + drv->arena_used;
	off = ((start + align - 1) & ~(align - 1)) - base;
	if (off < drv->arena_used || off > drv->cfg.arena_size ||
	    size > drv->cfg.arena_size - off)
		return NULL;
	drv->arena_used = off + size;
	return (char *)drv->cfg.arena + off;
}

int vdev_drv_queue_setup(vdev_drv *drv, uint32_t queue, uint32_t size, uint32_t indirect_max,
			 vdev_drvq **out)
{
	struct vdev_drvq *q;
	uint64_t saved;
	uint32_t max;
	int packed, r;

	if (!drv)
		return -EINVAL;
	if (drv->phase != VDI_DRV_PRE_INIT)
		return -EPERM;
	if (vdev_drv_queue(drv, queue))
		return -EINVAL;
	max = drv->t.queue_max_size(drv->cfg.transport_opaque, queue);
	if (!max)
		return -ENODEV;
	if (max > 32768u)
		max = 32768u;
	packed = !!(drv->features & VDI_BIT(VIRTIO_F_RING_PACKED));
	if (!size)
		size = packed ? max : vdi_pow2_floor(max);
	if (size > max || (!packed && (size & (size - 1))))
		return -EINVAL;

	saved = drv->arena_used;
	q = vdi_drv_arena_alloc(drv, sizeof(*q), 8);
	if (!q)
		return -ENOMEM;
	memset(q, 0, sizeof(*q));
	q->drv = drv;
	q->index = queue;
	q->size = size;
	q->packed = packed;
	q->event_idx = !!(drv->features & VDI_BIT(VIRTIO_RING_F_EVENT_IDX));
	if ((drv->features & VDI_BIT(VIRTIO_RING_F_INDIRECT_DESC)) && indirect_max > 1) {
		/* A chain may not be longer than the queue size (2.7.5.3.1). */
		q->indirect_max = indirect_max > size ? size : indirect_max;
		q->indirect = 1;
	}
	r = vdi_drvq_alloc(drv, q);
	if (r < 0) {
		drv->arena_used = saved;
		return r;
	}
	r = drv->t.queue_setup(drv->cfg.transport_opaque, queue, size, q->desc_gpa, q->driver_gpa,
			       q->device_gpa);
	if (r < 0) {
		drv->arena_used = saved;
		return r;
	}
	q->next = drv->queues;
	drv->queues = q;
	if (out)
		*out = q;
	return 0;
}

vdev_drvq *vdev_drv_queue(const vdev_drv *drv, uint32_t queue)
{
	struct vdev_drvq *q;

	if (!drv)
		return NULL;
	for (q = drv->queues; q; q = q->next) {
		if (q->index == queue)
			return q;
	}
	return NULL;
}
