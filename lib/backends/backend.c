/* SPDX-License-Identifier: MIT */
/* The generic block-backend object: a const ops table plus opaque. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "backend_internal.h"
#include "internal/util.h"

#define BACKEND_KNOWN_FLAGS                                                                        \
	(VDEV_BLK_BACKEND_F_READONLY | VDEV_BLK_BACKEND_F_DISCARD | VDEV_BLK_BACKEND_F_WRITE_ZEROES)

int vdi_blk_backend_create(const struct vdev_blk_backend_ops *ops, void *opaque, uint32_t flags,
			   uint32_t kind, vdev_blk_backend **out)
{
	vdev_blk_backend *b;

	if (!ops || !out || (flags & ~BACKEND_KNOWN_FLAGS))
		return -EINVAL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	if (vdi_copy_versioned(&b->ops, sizeof(b->ops), ops) < 0 || !b->ops.size ||
	    !b->ops.queue_open || !b->ops.queue_close || !b->ops.enqueue || !b->ops.submit ||
	    !b->ops.reap || !b->ops.completion_fd) {
		free(b);
		return -EINVAL;
	}
	b->opaque = opaque;
	b->flags = flags;
	b->kind = kind;
	*out = b;
	return 0;
}

void *vdi_blk_backend_priv(const vdev_blk_backend *b, uint32_t kind)
{
	return b && b->kind == kind ? b->opaque : NULL;
}

VDEV_EXPORT int vdev_blk_backend_new(const struct vdev_blk_backend_ops *ops, void *opaque,
				     uint32_t flags, vdev_blk_backend **out)
{
	return vdi_blk_backend_create(ops, opaque, flags, VDI_BACKEND_CUSTOM, out);
}

VDEV_EXPORT uint64_t vdev_blk_backend_size(const vdev_blk_backend *b)
{
	return b ? b->ops.size(b->opaque) : 0;
}

VDEV_EXPORT uint32_t vdev_blk_backend_flags(const vdev_blk_backend *b)
{
	return b ? b->flags : 0;
}

static void vdi_count(uint64_t *c, uint64_t n)
{
	__atomic_fetch_add(c, n, __ATOMIC_RELAXED);
}

void vdi_blk_backend_count(vdev_blk_backend *b, const struct vdev_blk_io *io)
{
	vdi_count(&b->completed, 1);
	if (io->result != 0) { /* the device answers anything but 0 with IOERR */
		vdi_count(&b->errors, 1);
		return;
	}
	if (io->op < VDI_ARRAY_SIZE(b->ok))
		vdi_count(&b->ok[io->op], 1);
	if (io->op == VDEV_BLK_IO_READ)
		vdi_count(&b->bytes_read, io->len);
	else if (io->op == VDEV_BLK_IO_WRITE)
		vdi_count(&b->bytes_written, io->len);
}

VDEV_EXPORT int vdev_blk_backend_get_stats(const vdev_blk_backend *b,
					   struct vdev_blk_backend_stats *st)
{
	struct vdev_blk_backend_stats s = VDEV_BLK_BACKEND_STATS_INIT;

	if (!b || !st)
		return -EINVAL;
	s.completed = vdi_load_relaxed(&b->completed);
	s.errors = vdi_load_relaxed(&b->errors);
	s.reads_ok = vdi_load_relaxed(&b->ok[VDEV_BLK_IO_READ]);
	s.writes_ok = vdi_load_relaxed(&b->ok[VDEV_BLK_IO_WRITE]);
	s.flushes_ok = vdi_load_relaxed(&b->ok[VDEV_BLK_IO_FLUSH]);
	s.discards_ok = vdi_load_relaxed(&b->ok[VDEV_BLK_IO_DISCARD]);
	s.write_zeroes_ok = vdi_load_relaxed(&b->ok[VDEV_BLK_IO_WRITE_ZEROES]);
	s.bytes_read = vdi_load_relaxed(&b->bytes_read);
	s.bytes_written = vdi_load_relaxed(&b->bytes_written);
	return vdi_copy_out_versioned(st, &s, sizeof(s));
}

VDEV_EXPORT void vdev_blk_backend_free(vdev_blk_backend *b)
{
	if (!b)
		return;
	if (b->ops.destroy)
		b->ops.destroy(b->opaque);
	free(b);
}
