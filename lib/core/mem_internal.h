/* SPDX-License-Identifier: MIT */
/* What transports need from guest memory beyond the public API. */
#ifndef VDI_MEM_INTERNAL_H
#define VDI_MEM_INTERNAL_H

#include <stdint.h>

#include <virtio-dev/mem.h>

/*
 * A dirty log shared with someone else (vhost-user SET_LOG_BASE): while set,
 * every write the library marks dirty (vdev_mem_mark_dirty, vdev_mem_write,
 * used rings, written buffers) also sets the bit of each 4 KiB guest page it
 * touches, bit (page % 8) of byte (page / 8) of @log, with an atomic OR.
 * Pages whose byte lies at or past @size are not logged. @log NULL turns it
 * off. The caller owns the memory; like a region change, setting or clearing
 * it must not overlap any device activity (quiesce first). Works for built-in
 * and custom vdev_mem alike (a custom one's mark_dirty is still called).
 * Returns 0 or -EINVAL.
 */
int vdi_mem_set_shared_log(vdev_mem *mem, uint8_t *log, uint64_t size);

#endif
