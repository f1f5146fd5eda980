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

/*
 * Bytes of a ring's three areas for @num descriptors (split: descriptor
 * table, available ring, used ring, each with the event index; packed:
 * descriptor ring, driver and device event areas), as vdev_queue_new checks
 * them: for transports that check ring addresses before creating the queue.
 */
static inline void vdi_queue_area_sizes(int packed, uint64_t num, uint64_t len[3])
{
	len[0] = 16 * num;
	len[1] = packed ? 4 : 6 + 2 * num;
	len[2] = packed ? 4 : 6 + 8 * num;
}

#endif
