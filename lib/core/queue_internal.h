/* SPDX-License-Identifier: MIT */
/* What the device object needs from a queue beyond the public API. */
#ifndef VDI_QUEUE_INTERNAL_H
#define VDI_QUEUE_INTERNAL_H

#include <virtio-dev/queue.h>

/*
 * Called once, from the thread that detected it, when the queue breaks
 * (@err is the negative errno, e.g. -EBADMSG). The device object uses it to
 * set DEVICE_NEEDS_RESET.
 */
typedef void (*vdi_queue_broken_fn)(void *ctx, vdev_queue *q, int err);

void vdi_queue_set_owner(vdev_queue *q, vdi_queue_broken_fn fn, void *ctx);

#endif
