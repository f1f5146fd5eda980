/* SPDX-License-Identifier: MIT */
/*
 * Guest memory: guest-physical address (GPA) -> host pointer translation,
 * bounds-checked, with a dirty-page log for live migration.
 *
 * A vdev_mem is either a built-in region table (vdev_mem_new +
 * vdev_mem_add_region) or a wrapper around the VMM's own translation
 * (vdev_mem_new_custom, e.g. behind a vIOMMU).
 *
 * Thread-safety: translation, read/write, vdev_mem_mark_dirty and
 * vdev_mem_dirty_log_get may run concurrently from any number of threads.
 * Adding or removing regions, enabling the dirty log and vdev_mem_free must
 * not run concurrently with anything else on the same vdev_mem: quiesce the
 * devices that use it first (the same rule as KVM memslot changes).
 */
#ifndef VIRTIO_DEV_MEM_H
#define VIRTIO_DEV_MEM_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vdev_mem vdev_mem;

/* Access kinds, for translate. */
#define VDEV_MEM_READ 0x1u
#define VDEV_MEM_WRITE 0x2u

/* Region flags. */
#define VDEV_MEM_F_READONLY 0x1u

/* Dirty-log page size: one bit per 4 KiB guest page. */
#define VDEV_MEM_DIRTY_PAGE_SHIFT 12

/*
 * A VMM's own translation. Both callbacks may be called concurrently from
 * several threads.
 */
struct vdev_mem_ops {
	uint32_t struct_size;
	/*
	 * Translate [gpa, gpa + len) for @access (VDEV_MEM_READ and/or
	 * VDEV_MEM_WRITE). On success store the host pointer of @gpa in *hva and
	 * in *contig the number of bytes (1..len) that are contiguous in host
	 * memory from there, and return 0. Return -EFAULT when @gpa is not
	 * mapped for @access. Never called with len == 0. Any failure or an answer
	 * outside this contract reaches the library's callers as -EFAULT.
	 */
	int (*translate)(void *opaque, uint64_t gpa, uint64_t len, uint32_t access, void **hva,
			 uint64_t *contig);
	/* Record that the library wrote [gpa, gpa + len). May be NULL. */
	void (*mark_dirty)(void *opaque, uint64_t gpa, uint64_t len);
};

#define VDEV_MEM_OPS_INIT VDEV_STRUCT_INIT(struct vdev_mem_ops)

/**
 * vdev_mem_new() - create an empty region table.
 * @out: receives the new object; untouched on failure.
 *
 * Returns 0, -EINVAL or -ENOMEM. The caller frees it with vdev_mem_free().
 * Since 0.1.
 */
VDEV_EXPORT int vdev_mem_new(vdev_mem **out);

/**
 * vdev_mem_new_custom() - wrap a VMM-supplied translation.
 * @ops: copied (min(ops->struct_size, sizeof) bytes); translate is required.
 * @opaque: passed to every callback.
 * @out: receives the new object; untouched on failure.
 *
 * Regions cannot be added to such an object (-EOPNOTSUPP); the built-in dirty
 * log is unavailable and writes are reported through ops->mark_dirty instead.
 * Returns 0, -EINVAL or -ENOMEM. Since 0.1.
 */
VDEV_EXPORT int vdev_mem_new_custom(const struct vdev_mem_ops *ops, void *opaque,
				    vdev_mem **out);

/**
 * vdev_mem_free() - free a vdev_mem. Accepts NULL. Does not unmap the host
 * memory behind regions (the VMM owns it). Since 0.1.
 */
VDEV_EXPORT void vdev_mem_free(vdev_mem *mem);

/**
 * vdev_mem_add_region() - map [gpa, gpa + size) to host memory at @hva.
 * @flags: 0 or VDEV_MEM_F_READONLY (the library then refuses to write there).
 *
 * Returns 0; -EINVAL for size 0, a NULL @hva, unknown flags, a guest range
 * that goes past 2^64 (it may end exactly there) or a host range that wraps; -EEXIST when it overlaps an existing region; -ENOSPC when
 * the table is full (VDEV_MEM_MAX_REGIONS); -ENOMEM; -EOPNOTSUPP for a custom
 * vdev_mem. Since 0.1.
 */
VDEV_EXPORT int vdev_mem_add_region(vdev_mem *mem, uint64_t gpa, uint64_t size, void *hva,
				    uint32_t flags);

/* Most regions a built-in table holds (KVM's default memslot count). */
#define VDEV_MEM_MAX_REGIONS 509

/**
 * vdev_mem_remove_region() - remove the region that starts exactly at @gpa.
 * Returns 0, -ENOENT, -EINVAL or -EOPNOTSUPP. Since 0.1.
 */
VDEV_EXPORT int vdev_mem_remove_region(vdev_mem *mem, uint64_t gpa);

/**
 * vdev_mem_translate() - translate the start of [gpa, gpa + len).
 *
 * Stores the host pointer for @gpa in *hva and the contiguous length
 * (1..len) in *contig. @access is a non-zero mix of VDEV_MEM_READ and
 * VDEV_MEM_WRITE. Returns 0; -EINVAL for len == 0, a bad @access, NULL
 * pointers or a range that wraps; -EFAULT when @gpa is unmapped or (with VDEV_MEM_WRITE) read-only.
 * Since 0.1.
 */
VDEV_EXPORT int vdev_mem_translate(vdev_mem *mem, uint64_t gpa, uint64_t len, uint32_t access,
				   void **hva, uint64_t *contig);

/**
 * vdev_mem_ptr() - host pointer for the whole of [gpa, gpa + len), or NULL when
 * any byte is unmapped, the range is not contiguous in host memory, wraps, or
 * (with VDEV_MEM_WRITE) is read-only. Since 0.1.
 */
VDEV_EXPORT void *vdev_mem_ptr(vdev_mem *mem, uint64_t gpa, uint64_t len, uint32_t access);

/**
 * vdev_mem_read() - copy [gpa, gpa + len) out of guest memory, across regions.
 * Returns 0, -EINVAL (len == 0 included) or -EFAULT (nothing is guaranteed
 * about @buf then).
 * Since 0.1.
 */
VDEV_EXPORT int vdev_mem_read(vdev_mem *mem, uint64_t gpa, void *buf, uint64_t len);

/**
 * vdev_mem_write() - copy @buf into [gpa, gpa + len) and mark it dirty.
 * Returns 0, -EINVAL (len == 0 included) or -EFAULT (checked before any byte
 * is written).
 * Since 0.1.
 */
VDEV_EXPORT int vdev_mem_write(vdev_mem *mem, uint64_t gpa, const void *buf, uint64_t len);

/**
 * vdev_mem_mark_dirty() - record a write made through a translated pointer.
 * Cheap when the dirty log is off. Ranges outside every region are ignored.
 * Since 0.1.
 */
VDEV_EXPORT void vdev_mem_mark_dirty(vdev_mem *mem, uint64_t gpa, uint64_t len);

/**
 * vdev_mem_dirty_log_enable() - start (@enable != 0) or stop dirty logging.
 * Starting clears every bitmap. Returns 0, -ENOMEM, -EINVAL or -EOPNOTSUPP
 * (custom vdev_mem). Since 0.1.
 */
VDEV_EXPORT int vdev_mem_dirty_log_enable(vdev_mem *mem, int enable);

/**
 * vdev_mem_dirty_log_get() - query (and with @clear != 0 atomically clear) the
 * dirty bits of [gpa, gpa + npages * 4 KiB).
 * @gpa: 4 KiB aligned; the pages must overlap a single region (measured in
 *       whole pages, so a region that does not start on a page boundary is
 *       queried from the page it starts in). A page shared by two unaligned
 *       regions reads as the OR of both regions' bits.
 * @npages: at least 1.
 * @bitmap: receives npages bits, bit i of word i / 64 for page i (LSB first).
 * @bitmap_words: size of @bitmap in 64-bit words, at least (npages + 63) / 64.
 *
 * Returns the number of dirty pages found; -EINVAL (alignment, range outside a
 * single region, small bitmap); -ENODATA when logging is off; -EOPNOTSUPP.
 * Since 0.1.
 */
VDEV_EXPORT int64_t vdev_mem_dirty_log_get(vdev_mem *mem, uint64_t gpa, uint64_t npages,
					   uint64_t *bitmap, uint64_t bitmap_words, int clear);

#ifdef __cplusplus
}
#endif

#endif
