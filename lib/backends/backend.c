/* SPDX-License-Identifier: MIT */
/* The generic block-backend object: a const ops table plus opaque. */
#include <errno.h>
#include <stdlib.h>

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

VDEV_EXPORT void vdev_blk_backend_free(vdev_blk_backend *b)
{
	if (!b)
		return;
	if (b->ops.destroy)
		b->ops.destroy(b->opaque);
	free(b);
}
