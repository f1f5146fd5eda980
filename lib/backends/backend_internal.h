/* SPDX-License-Identifier: MIT */
/* The block-backend object shared by the built-in backends and the blk
 * device. Private to the library. */
#ifndef VDI_BACKEND_INTERNAL_H
#define VDI_BACKEND_INTERNAL_H

#include <virtio-dev/blk.h>

/* Which built-in backend (for the kind-specific calls like cow_reset). */
#define VDI_BACKEND_CUSTOM 0u
#define VDI_BACKEND_FILE 1u
#define VDI_BACKEND_URING 2u
#define VDI_BACKEND_MEMORY 3u
#define VDI_BACKEND_COW 4u

struct vdev_blk_backend {
	struct vdev_blk_backend_ops ops;
	void *opaque;
	uint32_t flags; /* VDEV_BLK_BACKEND_F_* */
	uint32_t kind;  /* VDI_BACKEND_* */
	/* vdev_blk_backend_stats, updated with relaxed atomics by every queue. */
	uint64_t completed, errors, bytes_read, bytes_written;
	uint64_t ok[VDEV_BLK_IO_WRITE_ZEROES + 1]; /* per VDEV_BLK_IO_* op */
};

/* Count one request the device reaped from @b. */
void vdi_blk_backend_count(vdev_blk_backend *b, const struct vdev_blk_io *io);

/* Create the wrapper for a built-in backend (ops copied). On failure the
 * caller still owns @opaque. */
int vdi_blk_backend_create(const struct vdev_blk_backend_ops *ops, void *opaque, uint32_t flags,
			   uint32_t kind, vdev_blk_backend **out);

/* The backend's opaque if it is of @kind, else NULL. */
void *vdi_blk_backend_priv(const vdev_blk_backend *b, uint32_t kind);

#endif
