/* SPDX-License-Identifier: MIT */
/*
 * The driver side: what a guest does with a virtio device (the C form of
 * Tock's VirtIODeviceDriver). Feature negotiation, the initialization
 * sequence, and driver-side split and packed rings in guest memory.
 *
 * It runs over a small register-access interface (struct
 * vdev_drv_transport_ops) so that the same code drives a device through
 * virtio-mmio, virtio-pci, or directly in-process (vdev_drv_direct_transport).
 *
 * This half compiles freestanding (no libc beyond memcpy/memset, no malloc on
 * its path): vdev_drv_init and the vdev_drvq_* calls work in caller-provided
 * storage and a caller-provided ring arena. vdev_drv_new/vdev_drv_free and
 * vdev_drv_direct_transport are the hosted conveniences.
 *
 * Thread-safety: a vdev_drv and its queues are used by one thread at a time.
 */
#ifndef VIRTIO_DEV_DRIVER_H
#define VIRTIO_DEV_DRIVER_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vdev_drv vdev_drv;
typedef struct vdev_drvq vdev_drvq;

/* Register access to one device; @t is the transport_opaque of the config. */
struct vdev_drv_transport_ops {
	uint32_t struct_size;
	uint32_t (*get_status)(void *t);
	void (*set_status)(void *t, uint32_t status);
	/* 32-bit feature page @page (0 = bits 0..31, 1 = bits 32..63). */
	uint32_t (*get_device_features)(void *t, uint32_t page);
	void (*set_driver_features)(void *t, uint32_t page, uint32_t value);
	/* Largest size of queue @queue, 0 when it does not exist. */
	uint32_t (*queue_max_size)(void *t, uint32_t queue);
	/* Program size and the three ring addresses, then enable the queue. */
	int (*queue_setup)(void *t, uint32_t queue, uint32_t size, uint64_t desc_addr,
			   uint64_t driver_addr, uint64_t device_addr);
	/* Available-buffer notification (kick) for @queue. */
	void (*queue_notify)(void *t, uint32_t queue);
	uint32_t (*config_generation)(void *t);
	/* Device-specific config access, @width 1, 2 or 4 bytes, little endian. */
	uint32_t (*config_read)(void *t, uint32_t offset, uint32_t width);
	void (*config_write)(void *t, uint32_t offset, uint32_t width, uint32_t value);
};

#define VDEV_DRV_TRANSPORT_OPS_INIT VDEV_STRUCT_INIT(struct vdev_drv_transport_ops)

/* The device-specific part of a driver. */
struct vdev_driver_ops {
	uint32_t struct_size;
	/* Pick the features to accept out of @offered (returned bits outside
	 * @offered are dropped). VERSION_1 is always accepted. */
	uint64_t (*negotiate_features)(vdev_drv *drv, void *opaque, uint64_t offered);
	/* After FEATURES_OK, before DRIVER_OK: set up queues
	 * (vdev_drv_queue_setup), read config. Return 0 or a negative errno. */
	int (*pre_device_initialization)(vdev_drv *drv, void *opaque);
	/* After DRIVER_OK. May be NULL. */
	int (*device_initialized)(vdev_drv *drv, void *opaque);
};

#define VDEV_DRIVER_OPS_INIT VDEV_STRUCT_INIT(struct vdev_driver_ops)

struct vdev_drv_config {
	uint32_t struct_size;
	uint32_t reserved;
	const struct vdev_drv_transport_ops *transport; /* borrowed, required */
	void *transport_opaque;
	const struct vdev_driver_ops *driver; /* borrowed, required */
	void *driver_opaque;
	/* Memory the driver carves rings (and its ring bookkeeping) from: a host
	 * pointer and the guest-physical address the device sees it at, both
	 * 16-byte aligned. */
	void *arena;
	uint64_t arena_gpa;
	uint64_t arena_size;
};

#define VDEV_DRV_CONFIG_INIT VDEV_STRUCT_INIT(struct vdev_drv_config)

/** vdev_drv_storage_size() - bytes vdev_drv_init needs. Since 0.1. */
VDEV_EXPORT uint64_t vdev_drv_storage_size(void);

/**
 * vdev_drv_init() - create a driver in caller storage (freestanding path).
 * @storage: at least vdev_drv_storage_size() bytes, 8-byte aligned, owned by
 *           the caller; nothing to free.
 * Returns 0, -EINVAL (bad config, small or misaligned storage). Since 0.1.
 */
VDEV_EXPORT int vdev_drv_init(void *storage, uint64_t storage_size,
			      const struct vdev_drv_config *cfg, vdev_drv **out);

/**
 * vdev_drv_new() / vdev_drv_free() - the same with malloc'd storage (hosted
 * builds only). vdev_drv_free accepts NULL and does not touch the device.
 * Since 0.1.
 */
VDEV_EXPORT int vdev_drv_new(const struct vdev_drv_config *cfg, vdev_drv **out);
VDEV_EXPORT void vdev_drv_free(vdev_drv *drv);

/**
 * vdev_drv_start() - the initialization sequence of the spec (3.1.1): reset,
 * ACKNOWLEDGE, DRIVER, negotiate_features, FEATURES_OK (read back: -ENOTSUP
 * when the device refused), pre_device_initialization, DRIVER_OK,
 * device_initialized. Transport and ring feature bits the driver side does
 * not implement (IN_ORDER, NOTIFICATION_DATA, ...) are never accepted.
 * Returns 0; -ENOTSUP; -ETIMEDOUT (reset never completed); -EIO (the device
 * did not accept DRIVER_OK); or the callbacks' / transport's error, after
 * setting FAILED. Since 0.1.
 */
VDEV_EXPORT int vdev_drv_start(vdev_drv *drv);

/** vdev_drv_reset() - write 0 to status; queues become unusable. Since 0.1. */
VDEV_EXPORT void vdev_drv_reset(vdev_drv *drv);

/** vdev_drv_features() - features negotiated by the last start. Since 0.1. */
VDEV_EXPORT uint64_t vdev_drv_features(const vdev_drv *drv);

/** vdev_drv_status() - the device status as read now. Since 0.1. */
VDEV_EXPORT uint32_t vdev_drv_status(const vdev_drv *drv);

/**
 * vdev_drv_config_read() - read @len bytes of device config at @offset,
 * consistently (retried while the config generation changes). Returns 0,
 * -EINVAL, or -EAGAIN when the generation never settled. Since 0.1.
 */
VDEV_EXPORT int vdev_drv_config_read(vdev_drv *drv, uint32_t offset, void *buf, uint32_t len);

/** vdev_drv_config_write() - write device config. Returns 0 or -EINVAL. Since 0.1. */
VDEV_EXPORT int vdev_drv_config_write(vdev_drv *drv, uint32_t offset, const void *buf,
				      uint32_t len);

/**
 * vdev_drv_queue_setup() - allocate and program queue @queue, from
 * pre_device_initialization. Layout follows the negotiated features (packed
 * ring, EVENT_IDX, indirect descriptors).
 * @size: 0 for the device's maximum, else at most that (split: power of two).
 * @indirect_max: largest indirect table per request (0: no indirect tables);
 *                ignored without VIRTIO_F_INDIRECT_DESC.
 * Returns 0; -EINVAL; -ENODEV (no such queue); -ENOMEM (arena exhausted);
 * -EPERM (wrong phase); or the transport's error. Since 0.1.
 */
VDEV_EXPORT int vdev_drv_queue_setup(vdev_drv *drv, uint32_t queue, uint32_t size,
				     uint32_t indirect_max, vdev_drvq **out);

/** vdev_drv_queue() - queue @queue if set up, else NULL (borrowed). Since 0.1. */
VDEV_EXPORT vdev_drvq *vdev_drv_queue(const vdev_drv *drv, uint32_t queue);

/* vdev_drvq_add flags */
#define VDEV_DRVQ_ADD_NO_INDIRECT 0x1u /* chain descriptors even if indirect is possible */

/*
 * After vdev_drv_reset or a new vdev_drv_start, the vdev_drvq_* calls on an
 * old queue handle return -ENODEV; after the device returned a bad used id,
 * every call returns -EBADMSG.
 */

/**
 * vdev_drvq_add() - make one buffer available: @out_num device-readable
 * segments followed by @in_num device-writable ones, given as guest
 * addresses and lengths. The buffer becomes visible to the device at once;
 * vdev_drvq_kick() notifies it.
 * @token: returned by vdev_drvq_get_used (must not be NULL).
 * Returns 0; -ENOSPC (ring full: collect used buffers first); -EINVAL (bad
 * arguments, or a request that can never fit the ring).
 * Since 0.1.
 */
VDEV_EXPORT int vdev_drvq_add(vdev_drvq *q, const uint64_t *addr, const uint32_t *len,
			      uint32_t out_num, uint32_t in_num, void *token, uint32_t flags);

/**
 * vdev_drvq_kick() - notify the device of the buffers added since the last
 * kick, unless it asked not to be (EVENT_IDX / NO_NOTIFY). Returns 1 when a
 * notification was sent, 0 when suppressed. Since 0.1.
 */
VDEV_EXPORT int vdev_drvq_kick(vdev_drvq *q);

/**
 * vdev_drvq_get_used() - collect one used buffer.
 * Returns 1 and its @token and written @len; 0 when none; -EBADMSG when the
 * device returned an id that is not in flight (the queue is then unusable).
 * Since 0.1.
 */
VDEV_EXPORT int vdev_drvq_get_used(vdev_drvq *q, void **token, uint32_t *len);

/**
 * vdev_drvq_enable_interrupts() - ask the device to (1) or not to (0) send
 * used-buffer notifications. Enabling returns 1 when used buffers are already
 * pending (collect them instead of sleeping), else 0. Since 0.1.
 */
VDEV_EXPORT int vdev_drvq_enable_interrupts(vdev_drvq *q, int enable);

/** vdev_drvq_num_free() - descriptors free for vdev_drvq_add. Since 0.1. */
VDEV_EXPORT uint32_t vdev_drvq_num_free(const vdev_drvq *q);

/** vdev_drvq_size() - the queue size in use. Since 0.1. */
VDEV_EXPORT uint32_t vdev_drvq_size(const vdev_drvq *q);

/**
 * vdev_drv_direct_transport() - transport ops that drive a vdev_device in the
 * same process (transport_opaque = the vdev_device *): for tests and for
 * checking a device model without a bus. Hosted builds only. Since 0.1.
 */
VDEV_EXPORT const struct vdev_drv_transport_ops *vdev_drv_direct_transport(void);

#ifdef __cplusplus
}
#endif

#endif
