/* SPDX-License-Identifier: MIT */
/*
 * Interrupts from a device to its driver: used-buffer notifications (per
 * queue) and configuration-change notifications.
 *
 * A vdev_irq is either built on eventfds (hand them to KVM_IRQFD) or on a
 * callback the VMM supplies. Transports sit between the device and the
 * vdev_irq the VMM gave them (they set ISR bits, pick MSI-X vectors).
 *
 * Thread-safety: vdev_irq_trigger and vdev_irq_eventfd may be called from any
 * thread concurrently; vdev_irq_free must not race with them.
 */
#ifndef VIRTIO_DEV_IRQ_H
#define VIRTIO_DEV_IRQ_H

#include <stdint.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vdev_irq vdev_irq;

/* Interrupt kinds. */
#define VDEV_IRQ_QUEUE 0u  /* used buffer notification for a queue */
#define VDEV_IRQ_CONFIG 1u /* configuration change notification */

struct vdev_irq_ops {
	uint32_t struct_size;
	/*
	 * Deliver an interrupt of @kind (VDEV_IRQ_QUEUE with the queue index in
	 * @queue, or VDEV_IRQ_CONFIG with @queue 0). Called from whichever thread
	 * the device completes work on. Return 0 or a negative errno.
	 * It must not call the library's control functions (status, reset,
	 * sleep, ...): one may be waiting for the queue run that triggers it.
	 */
	int (*trigger)(void *opaque, uint32_t kind, uint32_t queue);
};

#define VDEV_IRQ_OPS_INIT VDEV_STRUCT_INIT(struct vdev_irq_ops)

/* Flag for vdev_irq_new_eventfd: one eventfd for everything (a shared line). */
#define VDEV_IRQ_F_SHARED 0x1u

/**
 * vdev_irq_new() - interrupts delivered through @ops->trigger.
 * @ops: copied; trigger is required.
 * @out: receives the object; untouched on failure.
 *
 * The callback variant has no queue count, so trigger cannot range-check
 * @queue: the callback must. Returns 0, -EINVAL or -ENOMEM. Since 0.1.
 */
VDEV_EXPORT int vdev_irq_new(const struct vdev_irq_ops *ops, void *opaque, vdev_irq **out);

/**
 * vdev_irq_new_eventfd() - interrupts delivered by writing 1 to eventfds.
 * @num_queues: queues the device has (1..65535).
 * @flags: 0 for one eventfd per queue plus one for config changes, or
 *         VDEV_IRQ_F_SHARED for a single eventfd used for all of them.
 *
 * The eventfds are created EFD_CLOEXEC | EFD_NONBLOCK and owned by the object.
 * Returns 0, -EINVAL, -ENOMEM or the errno of eventfd(). Since 0.1.
 */
VDEV_EXPORT int vdev_irq_new_eventfd(uint32_t num_queues, uint32_t flags, vdev_irq **out);

/**
 * vdev_irq_free() - free the object and close the eventfds it created.
 * Accepts NULL. Since 0.1.
 */
VDEV_EXPORT void vdev_irq_free(vdev_irq *irq);

/**
 * vdev_irq_eventfd() - the eventfd that @kind/@queue is delivered on (borrowed:
 * do not close it). Returns the fd, -EINVAL for an unknown kind or queue, or
 * -EOPNOTSUPP for a callback vdev_irq. Since 0.1.
 */
VDEV_EXPORT int vdev_irq_eventfd(vdev_irq *irq, uint32_t kind, uint32_t queue);

/**
 * vdev_irq_trigger() - deliver one interrupt. Returns 0, -EINVAL or the error
 * of the delivery. Since 0.1.
 */
VDEV_EXPORT int vdev_irq_trigger(vdev_irq *irq, uint32_t kind, uint32_t queue);

#ifdef __cplusplus
}
#endif

#endif
