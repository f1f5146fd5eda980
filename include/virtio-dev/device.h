/* SPDX-License-Identifier: MIT */
/*
 * The device object: the generic half of every virtio device (the C form of
 * Firecracker's VirtioDevice). It owns feature negotiation, the device status
 * state machine, the config generation counter and the virtqueues; the
 * device model behind it (blk, rng, your own) is a const vdev_device_ops table
 * plus an opaque pointer.
 *
 * A transport (virtio-mmio, virtio-pci, vhost-user, or a test) drives the
 * vdev_device_* control calls on behalf of the driver; the device model only
 * sees activate / reset / queue_notify / config access.
 *
 * Thread-safety: the control calls (status, features, queue setup, config
 * access, reset, vdev_device_free) must be serialized by the caller (a
 * transport does that). vdev_device_queue_notify may be called from any
 * number of threads at once (vCPUs writing a notify register, ioeventfd
 * threads): the model's queue_notify never runs twice at once for one queue
 * (a kick that finds the queue busy is served by the thread already inside,
 * so none is lost and none waits), and reset, queue reset, queue enable,
 * sleep and wake wait until no model run is inside the queues before they
 * call the model. vdev_device_interrupt_queue, vdev_device_config_changed and
 * vdev_device_set_needs_reset may be called from any thread. An irq callback
 * must not call the control functions (a control call may be waiting for the
 * very queue run that triggered it).
 */
#ifndef VIRTIO_DEV_DEVICE_H
#define VIRTIO_DEV_DEVICE_H

#include <stdint.h>

#include "common.h"
#include "irq.h"
#include "mem.h"
#include "queue.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vdev_device vdev_device;

/* The device model. Every callback gets the device and the registered opaque. */
struct vdev_device_ops {
	uint32_t struct_size;
	/*
	 * Read @len bytes of device-specific config space at @offset into @buf.
	 * The library has already checked offset + len <= config_size. Return 0
	 * or a negative errno (the transport then reads zeros).
	 */
	int (*config_read)(vdev_device *dev, void *opaque, uint32_t offset, void *buf,
			   uint32_t len);
	/*
	 * A driver write to config space (bounds checked). The model decides per
	 * its spec whether it is accepted (may be NULL: all writes ignored).
	 */
	int (*config_write)(vdev_device *dev, void *opaque, uint32_t offset, const void *buf,
			    uint32_t len);
	/*
	 * Optional: the driver asks for FEATURES_OK with @acked (already a subset
	 * of the offered features). Return 0 to accept or a negative errno to
	 * refuse (e.g. a combination the model cannot serve).
	 */
	int (*features_check)(vdev_device *dev, void *opaque, uint64_t acked);
	/*
	 * DRIVER_OK: the queues the driver enabled exist now
	 * (vdev_device_get_queue), as do memory and interrupts. Return 0, or a
	 * negative errno to refuse (the device then reports DEVICE_NEEDS_RESET).
	 */
	int (*activate)(vdev_device *dev, void *opaque);
	/*
	 * Reset: stop using the queues and guest memory before returning; the
	 * library frees the queues afterwards. Called only after a successful
	 * activate.
	 */
	void (*reset)(vdev_device *dev, void *opaque);
	/* The driver kicked queue @queue (an enabled queue of an active device). */
	void (*queue_notify)(vdev_device *dev, void *opaque, uint32_t queue);
	/*
	 * Optional, both or neither; with them the device offers
	 * VIRTIO_F_RING_RESET. queue_reset: stop using queue @queue (finish or
	 * drop its in-flight work) before returning; the library frees it.
	 * queue_enable: queue @queue is live again (vdev_device_get_queue);
	 * return 0, or a negative errno (the device then needs a reset).
	 */
	void (*queue_reset)(vdev_device *dev, void *opaque, uint32_t queue);
	int (*queue_enable)(vdev_device *dev, void *opaque, uint32_t queue);
	/*
	 * Optional (Suspendable): sleep stops every use of queues and guest
	 * memory, waiting for in-flight work, before returning; wake resumes.
	 * Only called on an active device.
	 */
	int (*sleep)(vdev_device *dev, void *opaque);
	int (*wake)(vdev_device *dev, void *opaque);
};

#define VDEV_DEVICE_OPS_INIT VDEV_STRUCT_INIT(struct vdev_device_ops)

struct vdev_device_config {
	uint32_t struct_size;
	uint32_t device_type;  /* VIRTIO_ID_* from <linux/virtio_ids.h> */
	uint64_t features;     /* offered; VIRTIO_F_VERSION_1 is always added */
	uint32_t num_queues;   /* 1..VDEV_DEVICE_MAX_QUEUES */
	uint32_t queue_max_size; /* largest size per queue, 1..32768 */
	uint32_t config_size;  /* bytes of device-specific config space */
	uint32_t reserved;
};

#define VDEV_DEVICE_CONFIG_INIT VDEV_STRUCT_INIT(struct vdev_device_config)

#define VDEV_DEVICE_MAX_QUEUES 1024u
#define VDEV_DEVICE_MAX_CONFIG 4096u

/* Status bits (the same numbers as <linux/virtio_config.h>). */
#define VDEV_STATUS_ACKNOWLEDGE 0x01u
#define VDEV_STATUS_DRIVER 0x02u
#define VDEV_STATUS_DRIVER_OK 0x04u
#define VDEV_STATUS_FEATURES_OK 0x08u
#define VDEV_STATUS_NEEDS_RESET 0x40u
#define VDEV_STATUS_FAILED 0x80u

/**
 * vdev_device_new() - create a device object.
 * @cfg: static facts about the device (copied).
 * @ops: the device model (copied by struct_size; config_read, activate,
 *       reset and queue_notify are required).
 * @opaque: passed to every callback.
 * @out: receives the device; untouched on failure.
 *
 * Returns 0, -EINVAL or -ENOMEM. Since 0.1.
 */
VDEV_EXPORT int vdev_device_new(const struct vdev_device_config *cfg,
				const struct vdev_device_ops *ops, void *opaque,
				vdev_device **out);

/**
 * vdev_device_free() - reset the device if active, then free it. Accepts NULL.
 * Borrowed memory and irq objects are not freed. Since 0.1.
 */
VDEV_EXPORT void vdev_device_free(vdev_device *dev);

/**
 * vdev_device_set_memory() / vdev_device_set_irq() - guest memory and
 * interrupt sink used from the next activation (borrowed; they must outlive
 * the device or be replaced). -EBUSY while DRIVER_OK is set. Since 0.1.
 */
VDEV_EXPORT int vdev_device_set_memory(vdev_device *dev, vdev_mem *mem);
VDEV_EXPORT int vdev_device_set_irq(vdev_device *dev, vdev_irq *irq);

/** Getters (borrowed). Since 0.1. */
VDEV_EXPORT void *vdev_device_opaque(const vdev_device *dev);
VDEV_EXPORT uint32_t vdev_device_type(const vdev_device *dev);
VDEV_EXPORT uint32_t vdev_device_num_queues(const vdev_device *dev);
VDEV_EXPORT uint32_t vdev_device_queue_max_size(const vdev_device *dev);
VDEV_EXPORT uint32_t vdev_device_config_size(const vdev_device *dev);
VDEV_EXPORT vdev_mem *vdev_device_memory(const vdev_device *dev);

/** Offered features, all 64 bits or one 32-bit page (0 or 1). Since 0.1. */
VDEV_EXPORT uint64_t vdev_device_features(const vdev_device *dev);
VDEV_EXPORT uint32_t vdev_device_features_page(const vdev_device *dev, uint32_t page);

/** Features the driver acked so far. Since 0.1. */
VDEV_EXPORT uint64_t vdev_device_acked_features(const vdev_device *dev);

/**
 * vdev_device_set_acked_features() / vdev_device_set_acked_features_page() -
 * the driver writes its features. Accepted only while DRIVER is set and
 * FEATURES_OK is not (-EPERM otherwise); bits beyond the offered ones are kept
 * so that FEATURES_OK can refuse them. Pages above 1 take only zeros.
 * Since 0.1.
 */
VDEV_EXPORT int vdev_device_set_acked_features(vdev_device *dev, uint64_t features);
VDEV_EXPORT int vdev_device_set_acked_features_page(vdev_device *dev, uint32_t page,
						    uint32_t value);

/** vdev_device_status() - the device status byte. Since 0.1. */
VDEV_EXPORT uint8_t vdev_device_status(const vdev_device *dev);

/**
 * vdev_device_set_status() - the driver writes the status byte.
 *
 * 0 resets the device. Otherwise the write must only add bits, in the spec's
 * order (ACKNOWLEDGE, DRIVER, FEATURES_OK, DRIVER_OK). FEATURES_OK is refused
 * (not set) when the acked features are not a subset of the offered ones,
 * lack VIRTIO_F_VERSION_1 (a modern device cannot fall back to legacy), or the
 * model's features_check refuses them. DRIVER_OK creates the enabled queues
 * and activates the model; a failure sets DEVICE_NEEDS_RESET. FAILED may be
 * set at any time.
 *
 * Returns 0 when the write took effect, -EPERM when it was refused (the
 * status is then unchanged, apart from NEEDS_RESET on activation failure).
 * Since 0.1.
 */
VDEV_EXPORT int vdev_device_set_status(vdev_device *dev, uint8_t status);

/**
 * vdev_device_reset() - back to the initial state: model reset, queues freed,
 * status, features and queue setup cleared. The config generation is kept
 * increasing. Since 0.1.
 */
VDEV_EXPORT void vdev_device_reset(vdev_device *dev);

/**
 * vdev_device_queue_setup() - the driver configures queue @queue (size,
 * layout flags are taken from the acked features, addresses). Only while
 * FEATURES_OK is set and DRIVER_OK is not (or, with VIRTIO_F_RING_RESET, for a
 * queue that is not enabled), and the queue is not enabled (-EBUSY). @cfg->flags is ignored. Size must be 1..queue_max_size (split:
 * a power of two). Returns 0, -EINVAL, -EBUSY or -EPERM. Since 0.1.
 */
VDEV_EXPORT int vdev_device_queue_setup(vdev_device *dev, uint32_t queue,
					const struct vdev_queue_config *cfg);

/**
 * vdev_device_queue_enable() - the driver sets queue_enable (@enable 1) or
 * disables it (0, before DRIVER_OK only). Enabling needs a prior setup.
 * After DRIVER_OK, only with VIRTIO_F_RING_RESET: the queue goes live at once
 * (the model's queue_enable). Returns 0, -EINVAL or -EBUSY. Since 0.1.
 */
VDEV_EXPORT int vdev_device_queue_enable(vdev_device *dev, uint32_t queue, int enable);

/**
 * vdev_device_queue_reset() - the driver resets one queue
 * (VIRTIO_F_RING_RESET negotiated, DRIVER_OK set): the model's queue_reset
 * runs, the live queue is freed, and the queue reads as not set up and not
 * enabled. Returns 0, -EINVAL or -EPERM (not negotiated / not running).
 * Since 0.1.
 */
VDEV_EXPORT int vdev_device_queue_reset(vdev_device *dev, uint32_t queue);

/**
 * vdev_device_queue_config() - what the driver set up for @queue (size and
 * addresses; flags from the acked features), for transports whose registers
 * read back and for migration. Returns 0 or -EINVAL. Since 0.1.
 */
VDEV_EXPORT int vdev_device_queue_config(const vdev_device *dev, uint32_t queue,
					 struct vdev_queue_config *cfg);

/**
 * vdev_device_sleep() / vdev_device_wake() - pause and resume the device
 * (Suspendable): while asleep the model does not run, and kicks are
 * remembered and delivered on wake. Returns 0, -EINVAL, -EALREADY, or the
 * model's error (the device then stays as it was). Since 0.1.
 */
VDEV_EXPORT int vdev_device_sleep(vdev_device *dev);
VDEV_EXPORT int vdev_device_wake(vdev_device *dev);

/** vdev_device_queue_enabled() - 1 if enabled, 0 if not. Since 0.1. */
VDEV_EXPORT int vdev_device_queue_enabled(const vdev_device *dev, uint32_t queue);

/**
 * vdev_device_get_queue() - the live queue @queue after DRIVER_OK, or NULL
 * (not active, not enabled, out of range). Borrowed. Since 0.1.
 */
VDEV_EXPORT vdev_queue *vdev_device_get_queue(const vdev_device *dev, uint32_t queue);

/**
 * vdev_device_queue_notify() - the driver kicked queue @queue. Ignored (with
 * -EINVAL / -EAGAIN) for an unknown queue or an inactive device; a broken
 * device ignores kicks. Since 0.1.
 */
VDEV_EXPORT int vdev_device_queue_notify(vdev_device *dev, uint32_t queue);

/**
 * vdev_device_config_read() / vdev_device_config_write() - driver access to
 * device-specific config space. Out-of-range accesses are refused (-EINVAL;
 * a read then yields zeros in @buf). Since 0.1.
 */
VDEV_EXPORT int vdev_device_config_read(vdev_device *dev, uint32_t offset, void *buf,
					uint32_t len);
VDEV_EXPORT int vdev_device_config_write(vdev_device *dev, uint32_t offset, const void *buf,
					 uint32_t len);

/** vdev_device_config_generation() - the config generation counter. Since 0.1. */
VDEV_EXPORT uint32_t vdev_device_config_generation(const vdev_device *dev);

/**
 * vdev_device_config_changed() - the model changed its config space: bump the
 * generation and, if DRIVER_OK is set, send a config-change interrupt.
 * Returns 0 or the interrupt's error. Since 0.1.
 */
VDEV_EXPORT int vdev_device_config_changed(vdev_device *dev);

/**
 * vdev_device_interrupt_queue() - send a used-buffer notification for
 * @queue (sets ISR bit 0). Returns 0, -EINVAL or the interrupt's error.
 * Since 0.1.
 */
VDEV_EXPORT int vdev_device_interrupt_queue(vdev_device *dev, uint32_t queue);

/**
 * vdev_device_set_needs_reset() - the device hit an error it cannot recover
 * from without a reset: sets DEVICE_NEEDS_RESET and, if DRIVER_OK is set,
 * sends a config-change interrupt, as the spec requires. Since 0.1.
 */
VDEV_EXPORT void vdev_device_set_needs_reset(vdev_device *dev);

/**
 * vdev_device_isr() - the interrupt status (bit 0 used buffer, bit 1 config
 * change), for transports that have such a register. Since 0.1.
 */
VDEV_EXPORT uint32_t vdev_device_isr(const vdev_device *dev);

/**
 * vdev_device_isr_ack() - clear the ISR bits in @mask (virtio-mmio
 * InterruptACK; virtio-pci clears all on read). Returns the value before.
 * Since 0.1.
 */
VDEV_EXPORT uint32_t vdev_device_isr_ack(vdev_device *dev, uint32_t mask);

#ifdef __cplusplus
}
#endif

#endif
