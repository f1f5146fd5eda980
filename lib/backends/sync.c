/* SPDX-License-Identifier: MIT */
/*
 * The plumbing shared by the synchronous backends (file, memory, cow): the
 * per-queue ring of ios and the generic backend ops around it. A backend
 * supplies only its vdi_sync_ops (run, destroy, optional queue hooks); see
 * sync_internal.h.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend_internal.h"
#include "internal/util.h"
#include "sync_internal.h"

/* ---- the bounded per-queue ring of ios ---------------------------------- */

static int syncq_init(struct vdi_syncq *q, uint32_t depth)
{
	q->ring = calloc(depth, sizeof(*q->ring));
	if (!q->ring)
		return -ENOMEM;
	q->depth = depth;
	return 0;
}

static int syncq_enqueue(struct vdi_syncq *q, struct vdev_blk_io *io)
{
	if (!io)
		return -EINVAL;
	if (q->tail - q->head >= q->depth)
		return -EAGAIN;
	q->ring[q->tail++ % q->depth] = io;
	__atomic_add_fetch(&q->held, 1, __ATOMIC_RELEASE);
	return 0;
}

/* The next io to run, or NULL when everything enqueued has run. */
static struct vdev_blk_io *syncq_next(struct vdi_syncq *q)
{
	if (q->exec == q->tail)
		return NULL;
	return q->ring[q->exec++ % q->depth];
}

static int syncq_reap(struct vdi_syncq *q, struct vdev_blk_io **done, uint32_t max)
{
	uint32_t n = 0;

	if (!done && max)
		return -EINVAL;
	while (n < max && q->head != q->exec)
		done[n++] = q->ring[q->head++ % q->depth];
	if (n)
		__atomic_sub_fetch(&q->held, n, __ATOMIC_RELEASE);
	return (int)n;
}

/* ---- the generic backend ops ---------------------------------------------- */

static uint64_t sync_size(void *opaque)
{
	return ((struct vdi_sync *)opaque)->size;
}

static int sync_queue_open(void *opaque, uint32_t queue, void **qctx)
{
	struct vdi_sync *s = opaque;
	struct vdi_syncq *q;
	int r;

	VDI_UNUSED(queue);
	if (!qctx)
		return -EINVAL;
	q = calloc(1, s->ops->qsize ? s->ops->qsize : sizeof(*q));
	if (!q)
		return -ENOMEM;
	r = syncq_init(q, s->depth);
	if (r == 0 && s->ops->queue_init) {
		r = s->ops->queue_init(s, q);
		if (r < 0)
			free(q->ring);
	}
	if (r < 0) {
		free(q);
		return r;
	}
	*qctx = q;
	return 0;
}

static void sync_queue_close(void *opaque, void *qctx)
{
	struct vdi_sync *s = opaque;
	struct vdi_syncq *q = qctx;

	if (!q)
		return;
	if (s->ops->queue_fini)
		s->ops->queue_fini(s, q);
	free(q->ring);
	free(q);
}

static int sync_enqueue(void *opaque, void *qctx, struct vdev_blk_io *io)
{
	VDI_UNUSED(opaque);
	if (!qctx)
		return -EINVAL;
	return syncq_enqueue(qctx, io);
}

static int sync_submit(void *opaque, void *qctx)
{
	struct vdi_sync *s = opaque;
	struct vdi_syncq *q = qctx;
	struct vdev_blk_io *io;

	if (!q)
		return -EINVAL;
	while ((io = syncq_next(q))) {
		int r = vdi_io_check(io, s->size, s->readonly);

		io->result = r < 0 ? r : s->ops->run(s, q, io);
	}
	return 0;
}

static int sync_reap(void *opaque, void *qctx, struct vdev_blk_io **done, uint32_t max)
{
	VDI_UNUSED(opaque);
	if (!qctx)
		return -EINVAL;
	return syncq_reap(qctx, done, max);
}

static int sync_completion_fd(void *opaque, void *qctx)
{
	VDI_UNUSED(opaque);
	VDI_UNUSED(qctx);
	return -1;
}

static void sync_destroy(void *opaque)
{
	struct vdi_sync *s = opaque;

	if (s)
		s->ops->destroy(s);
}

static const struct vdev_blk_backend_ops sync_ops = {
	.struct_size = sizeof(struct vdev_blk_backend_ops),
	.size = sync_size,
	.queue_open = sync_queue_open,
	.queue_close = sync_queue_close,
	.enqueue = sync_enqueue,
	.submit = sync_submit,
	.reap = sync_reap,
	.completion_fd = sync_completion_fd,
	.destroy = sync_destroy,
};

int vdi_sync_backend_create(struct vdi_sync *s, uint32_t flags, uint32_t kind,
			    vdev_blk_backend **out)
{
	if (!s || !s->ops || !s->ops->run || !s->ops->destroy || !s->depth ||
	    (s->ops->qsize && s->ops->qsize < sizeof(struct vdi_syncq)))
		return -EINVAL;
	return vdi_blk_backend_create(&sync_ops, s, flags, kind, out);
}
