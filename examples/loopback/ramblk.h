/* SPDX-License-Identifier: MIT */
/*
 * A virtio block device over a RAM disk, written against the public API
 * only: the second device model of the loopback example. It shows what the
 * entropy device does not: a request header in the readable part, validated
 * after it is copied out of guest memory, a status byte, and config space.
 */
#ifndef LOOPBACK_RAMBLK_H
#define LOOPBACK_RAMBLK_H

#include <stdint.h>

#include <virtio-dev/virtio-dev.h>

#define RAMBLK_SECTOR 512u
#define RAMBLK_ID "vdev-loopback-ramblk" /* 20 bytes: VIRTIO_BLK_ID_BYTES */

struct ramblk_stats {
	uint64_t requests; /* chains served (any status) */
	uint64_t errors;   /* requests answered IOERR or UNSUPP, or unanswerable */
	uint64_t notifies;
	uint64_t interrupts;
	uint64_t queue_errors; /* pops that failed */
};

struct ramblk;

/* A device of @sectors 512-byte sectors (zeroed), memory and irq borrowed. */
int ramblk_new(vdev_mem *mem, vdev_irq *irq, uint32_t queue_size, uint64_t sectors,
	       struct ramblk **out);
void ramblk_free(struct ramblk *b);

vdev_device *ramblk_device(const struct ramblk *b);
const struct ramblk_stats *ramblk_stats(const struct ramblk *b);
/* The disk contents, for the example's checks. */
const uint8_t *ramblk_data(const struct ramblk *b);

#endif
