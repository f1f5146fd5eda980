/* SPDX-License-Identifier: MIT */
/* What transports need from the device object beyond the public API. */
#ifndef VDI_DEVICE_INTERNAL_H
#define VDI_DEVICE_INTERNAL_H

#include <stddef.h>

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

/* What the model implements, for transports that drive rings one by one. */
#define VDI_DEVICE_CAP_QUEUE_RESET 0x1u /* queue_reset and queue_enable */
#define VDI_DEVICE_CAP_SLEEP 0x2u       /* sleep (and wake) */
uint32_t vdi_device_caps(const vdev_device *dev);

/*
 * Start queue @queue from @cfg (size and addresses; flags come from the acked
 * features), at ring position @st (NULL: from 0), with the in-flight region
 * @inflight of @inflight_len bytes attached (NULL: none; see
 * queue_inflight.h). For transports whose rings start and stop one at a time
 * whatever the driver negotiated (vhost-user):
 * - after FEATURES_OK (legacy: DRIVER), before DRIVER_OK: recorded, the queue
 *   goes live at DRIVER_OK (position and region applied then);
 * - after DRIVER_OK, on an active device whose model has queue_enable: live
 *   at once, without VIRTIO_F_RING_RESET being negotiated.
 * Returns 0; -EINVAL (bad arguments or size); -EBUSY (already enabled);
 * -EPERM (wrong phase, or the device needs a reset); -EOPNOTSUPP (live start
 * without queue_enable); or the error of the queue's creation, position,
 * region or the model's queue_enable (the queue is then not enabled, its
 * setup cleared). Never sets DEVICE_NEEDS_RESET itself.
 */
int vdi_device_queue_start(vdev_device *dev, uint32_t queue, const struct vdev_queue_config *cfg,
			   const struct vdev_queue_state *st, void *inflight, size_t inflight_len);

/*
 * Stop live queue @queue: the model's queue_reset (it finishes or drops the
 * queue's in-flight work), its ring position into @st (may be NULL), then the
 * queue is freed and its setup cleared. Returns 0, -EINVAL, -EOPNOTSUPP (no
 * queue_reset) or -ENOENT (not live).
 */
int vdi_device_queue_stop(vdev_device *dev, uint32_t queue, struct vdev_queue_state *st);

/* Ring position of live queue @queue, read under its run lock. Returns 0,
 * -EINVAL or -ENOENT (not live). */
int vdi_device_queue_state(vdev_device *dev, uint32_t queue, struct vdev_queue_state *st);

#endif
