/* SPDX-License-Identifier: MIT */
/* What transports need from the device object beyond the public API. */
#ifndef VDI_DEVICE_INTERNAL_H
#define VDI_DEVICE_INTERNAL_H

#include <virtio-dev/device.h>

/*
 * Legacy (pre-1.0) interface, for virtio-mmio version 1: only feature bits
 * 0..31 are offered (no VERSION_1, no RING_PACKED), there is no FEATURES_OK
 * step (features are checked at DRIVER_OK, which then needs only DRIVER),
 * and queues may be set up once DRIVER is set. Only while status is 0.
 * Returns 0 or -EBUSY.
 */
int vdi_device_set_legacy(vdev_device *dev, int legacy);

/* Offered features as this interface presents them (legacy: low 32 bits). */
uint64_t vdi_device_offered(const vdev_device *dev);

/*
 * Run the model's own work on queue @queue (e.g. backend completions)
 * exclusively with kicks and control calls: enter takes the queue's run lock
 * and returns 0 if the queue is live, else -EAGAIN (lock not held); leave
 * drops it and serves the kicks that arrived meanwhile.
 */
int vdi_device_queue_enter(vdev_device *dev, uint32_t queue);
void vdi_device_queue_leave(vdev_device *dev, uint32_t queue);

#endif
