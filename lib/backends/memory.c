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
	uint8_t *data;
	uint64_t size;
	int readonly;
	int mapped;
};

struct mem_q {
	struct vdi_syncq q;
};

static uint64_t mem_size(void *opaque)
{
	return ((struct mem_be *)opaque)->size;
}

static int mem_queue_open(void *opaque, uint32_t queue, void **qctx)
{
	struct mem_q *q;
	int r;

	VDI_UNUSED(opaque);
	VDI_UNUSED(queue);
	if (!qctx)
		return -EINVAL;
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	r = vdi_syncq_init(&q->q, VDI_SYNC_DEPTH);
	if (r < 0) {
		free(q);
		return r;
	}
	*qctx = q;
	return 0;
}

static void mem_queue_close(void *opaque, void *qctx)
{
	struct mem_q *q = qctx;

	VDI_UNUSED(opaque);
	if (!q)
		return;
	vdi_syncq_fini(&q->q);
	free(q);
}

static int mem_enqueue(void *opaque, void *qctx, struct vdev_blk_io *io)
{
	VDI_UNUSED(opaque);
	if (!qctx)
		return -EINVAL;
	return vdi_syncq_enqueue(&((struct mem_q *)qctx)->q, io);
}

static int mem_run(struct mem_be *m, struct vdev_blk_io *io)
{
	struct vdi_iovc c;
	int r = vdi_io_check(io, m->size, m->readonly);

	if (r < 0)
		return r;
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

static int mem_submit(void *opaque, void *qctx)
{
	struct mem_q *q = qctx;
	struct vdev_blk_io *io;

	if (!q)
		return -EINVAL;
	while ((io = vdi_syncq_next(&q->q)))
		io->result = mem_run(opaque, io);
	return 0;
}

static int mem_reap(void *opaque, void *qctx, struct vdev_blk_io **done, uint32_t max)
{
	VDI_UNUSED(opaque);
	if (!qctx)
		return -EINVAL;
	return vdi_syncq_reap(&((struct mem_q *)qctx)->q, done, max);
}

static int mem_completion_fd(void *opaque, void *qctx)
{
	VDI_UNUSED(opaque);
	VDI_UNUSED(qctx);
	return -1;
}

static void mem_destroy(void *opaque)
{
	struct mem_be *m = opaque;

	if (!m)
		return;
	if (m->mapped)
		munmap(m->data, (size_t)m->size);
	else
		free(m->data);
	free(m);
}

static const struct vdev_blk_backend_ops mem_ops = {
	.struct_size = sizeof(struct vdev_blk_backend_ops),
	.size = mem_size,
	.queue_open = mem_queue_open,
	.queue_close = mem_queue_close,
	.enqueue = mem_enqueue,
	.submit = mem_submit,
	.reap = mem_reap,
	.completion_fd = mem_completion_fd,
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
	m->size = size;
	m->readonly = !!(flags & VDEV_BLK_BACKEND_F_READONLY);
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
	bflags = m->readonly ? VDEV_BLK_BACKEND_F_READONLY
			     : VDEV_BLK_BACKEND_F_DISCARD | VDEV_BLK_BACKEND_F_WRITE_ZEROES;
	r = vdi_blk_backend_create(&mem_ops, m, bflags, VDI_BACKEND_MEMORY, out);
	if (r < 0) {
		mem_destroy(m);
		return r;
	}
	return 0;
}

VDEV_EXPORT void *vdev_blk_backend_memory_data(vdev_blk_backend *b)
{
	struct mem_be *m = vdi_blk_backend_priv(b, VDI_BACKEND_MEMORY);

	return m ? m->data : NULL;
}
