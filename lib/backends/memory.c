/* SPDX-License-Identifier: MIT */
/*
 * The memory backend: a RAM disk. Synchronous: the copies happen in submit
 * (see sync_internal.h), completion_fd is -1.
 *
 * Concurrency: there is no lock. Queue contexts share only the data array,
 * and distinct queues writing the same bytes at the same time get what two
 * unordered writes to a real disk get: some mix of the two (the guest must
 * order its own conflicting writes). Ios that do not overlap never interfere.
 *
 * Large disks (1 MiB and up) are anonymous mappings, so untouched sectors
 * cost no memory.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "backend_internal.h"
#include "internal/util.h"
#include "sync_internal.h"

#define MEMORY_MMAP_MIN (1u << 20)

struct mem_be {
	struct vdi_sync s; /* first: the backend's opaque */
	uint8_t *data;
	int mapped;
};

static int mem_run(struct vdi_sync *s, struct vdi_syncq *q, struct vdev_blk_io *io)
{
	struct mem_be *m = (struct mem_be *)s;
	struct vdi_iovc c;

	VDI_UNUSED(q);
	switch (io->op) {
	case VDEV_BLK_IO_READ:
		vdi_iovc_init(&c, io->iov, io->iovcnt);
		vdi_iovc_from_flat(&c, m->data + io->offset, io->len);
		return 0;
	case VDEV_BLK_IO_WRITE:
		vdi_iovc_init(&c, io->iov, io->iovcnt);
		vdi_iovc_to_flat(&c, m->data + io->offset, io->len);
		return 0;
	case VDEV_BLK_IO_FLUSH:
		return 0;
	case VDEV_BLK_IO_DISCARD:
	case VDEV_BLK_IO_WRITE_ZEROES:
		memset(m->data + io->offset, 0, (size_t)io->len);
		return 0;
	default:
		return -EOPNOTSUPP;
	}
}

static void mem_destroy(struct vdi_sync *s)
{
	struct mem_be *m = (struct mem_be *)s;

	if (!m)
		return;
	if (m->mapped)
		munmap(m->data, (size_t)m->s.size);
	else
		free(m->data);
	free(m);
}

static const struct vdi_sync_ops mem_ops = {
	.run = mem_run,
	.destroy = mem_destroy,
};

VDEV_EXPORT int vdev_blk_backend_new_memory(uint64_t size, uint32_t flags, vdev_blk_backend **out)
{
	struct mem_be *m;
	uint32_t bflags;
	int r;

	if (!out || !size || size % VDI_SECTOR || (flags & ~VDEV_BLK_BACKEND_F_READONLY))
		return -EINVAL;
	if (size > SIZE_MAX / 2)
		return -ENOMEM;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->s.ops = &mem_ops;
	m->s.size = size;
	m->s.depth = VDI_SYNC_DEPTH;
	m->s.readonly = !!(flags & VDEV_BLK_BACKEND_F_READONLY);
	if (size >= MEMORY_MMAP_MIN) {
		void *p = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

		if (p == MAP_FAILED) {
			free(m);
			return -ENOMEM;
		}
		m->data = p;
		m->mapped = 1;
	} else {
		m->data = calloc(1, (size_t)size);
		if (!m->data) {
			free(m);
			return -ENOMEM;
		}
	}
	bflags = m->s.readonly ? VDEV_BLK_BACKEND_F_READONLY
			       : VDEV_BLK_BACKEND_F_DISCARD | VDEV_BLK_BACKEND_F_WRITE_ZEROES;
	r = vdi_sync_backend_create(&m->s, bflags, VDI_BACKEND_MEMORY, out);
	if (r < 0) {
		mem_destroy(&m->s);
		return r;
	}
	return 0;
}

VDEV_EXPORT void *vdev_blk_backend_memory_data(vdev_blk_backend *b)
{
	struct mem_be *m = vdi_blk_backend_priv(b, VDI_BACKEND_MEMORY);

	return m ? m->data : NULL;
}
