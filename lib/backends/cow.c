/* SPDX-License-Identifier: MIT */
/*
 * The copy-on-write backend: a read-only base image under an overlay kept in
 * memory or in a sparse file, tracked per chunk by an allocation bitmap.
 * Synchronous: the I/O happens in submit (see sync_internal.h), completion_fd
 * is -1.
 *
 * Invariant: a chunk's bit is set only once its whole overlay copy holds the
 * disk's content for that chunk (the write or zeroes applied over the rest
 * copied from the base). Readers therefore take the overlay for allocated
 * chunks and the base for the others without any lock, and what the overlay
 * holds for an unallocated chunk never matters (reset need not scrub it).
 *
 * Concurrency: the bitmap is read and set with atomics (acquire/release).
 * Reads and writes of allocated chunks take no lock. Allocating a chunk (the
 * copy-up of a partial write, or a whole-chunk write/zero of an unallocated
 * chunk) holds one of COW_LOCKS striped mutexes chosen by the chunk number,
 * and re-checks the bit under it: without that, two queues writing different
 * parts of the same fresh chunk would both copy the base over the chunk and
 * one write would be lost. Each chunk is allocated once per reset, so the
 * locks are off the steady-state data path. Queue contexts are on a list
 * (under ctx_lock, touched only by queue_open/close and reset/commit) so that
 * reset and commit can refuse with -EBUSY while any io is held.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend_internal.h"
#include "internal/util.h"
#include "sync_internal.h"

#define COW_LOCKS 64u
#define COW_MIN_CHUNK 512u
#define COW_MAX_CHUNK (1u << 20)
#define COW_DEFAULT_CHUNK 4096u
#define COW_COMMIT_BUF (1u << 20)

static uint8_t cow_zeros[64 * 1024];

struct cow_q;

struct cow_be {
	struct vdi_sync s; /* first: the backend's opaque */
	int base_fd;
	int ov_fd;       /* overlay file, or -1 */
	uint8_t *ov_mem; /* in-memory overlay (anonymous mapping), or NULL */
	uint32_t chunk;
	uint32_t shift;
	uint64_t nchunks;
	uint64_t *bitmap; /* bit per chunk, atomic */
	size_t nwords;
	pthread_mutex_t locks[COW_LOCKS];
	pthread_mutex_t ctx_lock;
	struct cow_q *ctxs;
};

struct cow_q {
	struct vdi_syncq q;
	struct cow_q *next, *prev;
	uint8_t *bounce; /* one chunk, for copy-up into an overlay file */
};

/* ---- the bitmap ----------------------------------------------------------- */

static int cow_allocated(const struct cow_be *c, uint64_t ci)
{
	return (int)((__atomic_load_n(&c->bitmap[ci >> 6], __ATOMIC_ACQUIRE) >> (ci & 63)) & 1);
}

static void cow_set_allocated(struct cow_be *c, uint64_t ci)
{
	__atomic_fetch_or(&c->bitmap[ci >> 6], 1ull << (ci & 63), __ATOMIC_RELEASE);
}

static uint64_t cow_chunk_start(const struct cow_be *c, uint64_t ci)
{
	return ci << c->shift;
}

static uint64_t cow_chunk_len(const struct cow_be *c, uint64_t ci)
{
	uint64_t s = cow_chunk_start(c, ci);

	return VDI_MIN((uint64_t)c->chunk, c->s.size - s); /* the last one may be partial */
}

/* ---- overlay and base primitives ------------------------------------------ */

static int cow_base_read_flat(struct cow_be *c, uint8_t *dst, uint64_t off, uint64_t n)
{
	return n ? vdi_fd_rw_flat(c->base_fd, 0, dst, off, n) : 0;
}

static int cow_ov_read(struct cow_be *c, struct vdi_iovc *it, uint64_t off, uint64_t n)
{
	if (c->ov_mem) {
		vdi_iovc_from_flat(it, c->ov_mem + off, n);
		return 0;
	}
	return vdi_fd_rw(c->ov_fd, 0, it, off, n);
}

static int cow_ov_write(struct cow_be *c, struct vdi_iovc *it, uint64_t off, uint64_t n)
{
	if (c->ov_mem) {
		vdi_iovc_to_flat(it, c->ov_mem + off, n);
		return 0;
	}
	return vdi_fd_rw(c->ov_fd, 1, it, off, n);
}

static int cow_ov_zero(struct cow_be *c, uint64_t off, uint64_t n)
{
	int r;

	if (!n)
		return 0;
	if (c->ov_mem) {
		memset(c->ov_mem + off, 0, (size_t)n);
		return 0;
	}
	r = vdi_fd_fallocate(c->ov_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, n);
	if (r == 0 || !vdi_fallocate_unsupported(r))
		return r;
	return vdi_fd_write_zeros(c->ov_fd, cow_zeros, sizeof(cow_zeros), off, n);
}

/*
 * Allocate chunk @ci and apply one piece [@off, @off + @n) of an io to it:
 * data from @it (a write) or zeroes (@it NULL). Under the chunk's stripe
 * lock; when another queue allocated it meanwhile, the piece goes straight to
 * the overlay.
 */
static int cow_allocate(struct cow_be *c, struct cow_q *q, uint64_t ci, struct vdi_iovc *it,
			uint64_t off, uint64_t n)
{
	pthread_mutex_t *lock = &c->locks[ci % COW_LOCKS];
	uint64_t cs = cow_chunk_start(c, ci), cl = cow_chunk_len(c, ci);
	uint64_t head = off - cs, tail = cs + cl - (off + n);
	uint8_t *buf;
	int r;

	pthread_mutex_lock(lock);
	if (cow_allocated(c, ci)) {
		r = it ? cow_ov_write(c, it, off, n) : cow_ov_zero(c, off, n);
		goto out;
	}
	if (!head && !tail) {
		/* The piece covers the chunk: nothing to copy from the base. */
		r = it ? cow_ov_write(c, it, off, n) : cow_ov_zero(c, off, n);
	} else {
		/* Build the chunk (base around the piece) then store it whole. */
		buf = c->ov_mem ? c->ov_mem + cs : q->bounce;
		r = cow_base_read_flat(c, buf, cs, head);
		if (r == 0)
			r = cow_base_read_flat(c, buf + head + n, off + n, tail);
		if (r == 0) {
			if (it)
				vdi_iovc_to_flat(it, buf + head, n);
			else
				memset(buf + head, 0, (size_t)n);
			if (!c->ov_mem)
				r = vdi_fd_rw_flat(c->ov_fd, 1, buf, cs, cl);
		}
	}
	if (r == 0)
		cow_set_allocated(c, ci);
out:
	pthread_mutex_unlock(lock);
	return r;
}

/* ---- the io paths --------------------------------------------------------- */

/* Chunks [ci, end of the run) sharing the allocation state of chunk ci, and
 * not past @end (a disk offset). Returns the run's end offset. */
static uint64_t cow_run_end(const struct cow_be *c, uint64_t pos, uint64_t end, int alloc)
{
	uint64_t ci = pos >> c->shift;
	uint64_t e = VDI_MIN(end, cow_chunk_start(c, ci) + cow_chunk_len(c, ci));

	while (e < end && cow_allocated(c, e >> c->shift) == alloc) {
		ci = e >> c->shift;
		e = VDI_MIN(end, cow_chunk_start(c, ci) + cow_chunk_len(c, ci));
	}
	return e;
}

static int cow_read(struct cow_be *c, struct vdev_blk_io *io)
{
	uint64_t pos = io->offset, end = io->offset + io->len;
	struct vdi_iovc it;
	int r = 0;

	vdi_iovc_init(&it, io->iov, io->iovcnt);
	while (pos < end && r == 0) {
		int alloc = cow_allocated(c, pos >> c->shift);
		uint64_t e = cow_run_end(c, pos, end, alloc);

		if (alloc)
			r = cow_ov_read(c, &it, pos, e - pos);
		else
			r = vdi_fd_rw(c->base_fd, 0, &it, pos, e - pos);
		pos = e;
	}
	return r;
}

/* A write (@it set) or zeroing (@it NULL) of [off, off + len). */
static int cow_modify(struct cow_be *c, struct cow_q *q, struct vdi_iovc *it, uint64_t off,
		      uint64_t len)
{
	uint64_t pos = off, end = off + len;
	int r = 0;

	while (pos < end && r == 0) {
		uint64_t ci = pos >> c->shift;
		uint64_t e;

		if (cow_allocated(c, ci)) {
			e = cow_run_end(c, pos, end, 1);
			r = it ? cow_ov_write(c, it, pos, e - pos) : cow_ov_zero(c, pos, e - pos);
		} else {
			e = VDI_MIN(end, cow_chunk_start(c, ci) + cow_chunk_len(c, ci));
			r = cow_allocate(c, q, ci, it, pos, e - pos);
		}
		pos = e;
	}
	return r;
}

static int cow_run(struct vdi_sync *s, struct vdi_syncq *sq, struct vdev_blk_io *io)
{
	struct cow_be *c = (struct cow_be *)s;
	struct cow_q *q = (struct cow_q *)sq;
	struct vdi_iovc it;

	switch (io->op) {
	case VDEV_BLK_IO_READ:
		return cow_read(c, io);
	case VDEV_BLK_IO_WRITE:
		vdi_iovc_init(&it, io->iov, io->iovcnt);
		return cow_modify(c, q, &it, io->offset, io->len);
	case VDEV_BLK_IO_FLUSH:
		return c->ov_fd >= 0 ? vdi_fd_datasync(c->ov_fd) : 0;
	case VDEV_BLK_IO_DISCARD:
	case VDEV_BLK_IO_WRITE_ZEROES:
		return cow_modify(c, q, NULL, io->offset, io->len);
	default:
		return -EOPNOTSUPP;
	}
}

/* ---- ops -------------------------------------------------------------------- */

static int cow_queue_init(struct vdi_sync *s, struct vdi_syncq *sq)
{
	struct cow_be *c = (struct cow_be *)s;
	struct cow_q *q = (struct cow_q *)sq;

	if (!c->ov_mem) {
		q->bounce = malloc(c->chunk);
		if (!q->bounce)
			return -ENOMEM;
	}
	pthread_mutex_lock(&c->ctx_lock);
	q->next = c->ctxs;
	if (c->ctxs)
		c->ctxs->prev = q;
	c->ctxs = q;
	pthread_mutex_unlock(&c->ctx_lock);
	return 0;
}

static void cow_queue_fini(struct vdi_sync *s, struct vdi_syncq *sq)
{
	struct cow_be *c = (struct cow_be *)s;
	struct cow_q *q = (struct cow_q *)sq;

	pthread_mutex_lock(&c->ctx_lock);
	if (q->prev)
		q->prev->next = q->next;
	else
		c->ctxs = q->next;
	if (q->next)
		q->next->prev = q->prev;
	pthread_mutex_unlock(&c->ctx_lock);
	free(q->bounce);
}

static void cow_destroy(struct vdi_sync *s)
{
	struct cow_be *c = (struct cow_be *)s;
	uint32_t i;

	if (!c)
		return;
	if (c->ov_mem)
		munmap(c->ov_mem, (size_t)c->s.size);
	if (c->ov_fd >= 0)
		close(c->ov_fd);
	if (c->base_fd >= 0)
		close(c->base_fd);
	free(c->bitmap);
	for (i = 0; i < COW_LOCKS; i++)
		pthread_mutex_destroy(&c->locks[i]);
	pthread_mutex_destroy(&c->ctx_lock);
	free(c);
}

static const struct vdi_sync_ops cow_ops = {
	.run = cow_run,
	.destroy = cow_destroy,
	.qsize = sizeof(struct cow_q),
	.queue_init = cow_queue_init,
	.queue_fini = cow_queue_fini,
};

/* ---- construction ----------------------------------------------------------- */

static int cow_open_overlay(struct cow_be *c, const char *path)
{
	struct stat ov, base;

	/* O_TRUNC on the base itself would destroy it. */
	if (stat(path, &ov) == 0 && fstat(c->base_fd, &base) == 0 && ov.st_dev == base.st_dev &&
	    ov.st_ino == base.st_ino)
		return -EINVAL;
	c->ov_fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (c->ov_fd < 0)
		return -errno;
	if (ftruncate(c->ov_fd, (off_t)c->s.size) < 0)
		return -errno;
	return 0;
}

VDEV_EXPORT int vdev_blk_backend_new_cow(const struct vdev_blk_cow_config *ucfg,
					 vdev_blk_backend **out)
{
	struct vdev_blk_cow_config cfg;
	struct cow_be *c;
	uint32_t i;
	int r;

	if (!ucfg || !out || vdi_copy_versioned(&cfg, sizeof(cfg), ucfg) < 0)
		return -EINVAL;
	if (!cfg.chunk_size)
		cfg.chunk_size = COW_DEFAULT_CHUNK;
	if (cfg.chunk_size < COW_MIN_CHUNK || cfg.chunk_size > COW_MAX_CHUNK ||
	    (cfg.chunk_size & (cfg.chunk_size - 1)) || (!cfg.base_path && cfg.base_fd < 0))
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->s.ops = &cow_ops;
	c->s.depth = VDI_SYNC_DEPTH;
	c->ov_fd = -1;
	c->chunk = cfg.chunk_size;
	while ((1u << c->shift) < c->chunk)
		c->shift++;
	for (i = 0; i < COW_LOCKS; i++)
		pthread_mutex_init(&c->locks[i], NULL);
	pthread_mutex_init(&c->ctx_lock, NULL);

	c->base_fd = cfg.base_path ? open(cfg.base_path, O_RDONLY | O_CLOEXEC)
				   : fcntl(cfg.base_fd, F_DUPFD_CLOEXEC, 0);
	if (c->base_fd < 0) {
		r = -errno;
		goto fail;
	}
	r = vdi_fd_disk_size(c->base_fd, &c->s.size);
	if (r < 0)
		goto fail;
	if (!c->s.size || c->s.size > SIZE_MAX / 2) {
		r = -EINVAL;
		goto fail;
	}
	c->nchunks = (c->s.size + c->chunk - 1) >> c->shift;
	c->nwords = (size_t)((c->nchunks + 63) / 64);
	c->bitmap = calloc(c->nwords, sizeof(*c->bitmap));
	if (!c->bitmap) {
		r = -ENOMEM;
		goto fail;
	}
	if (cfg.overlay_path) {
		r = cow_open_overlay(c, cfg.overlay_path);
		if (r < 0)
			goto fail;
	} else {
		void *p = mmap(NULL, (size_t)c->s.size, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

		if (p == MAP_FAILED) {
			r = -ENOMEM;
			goto fail;
		}
		c->ov_mem = p;
	}
	r = vdi_sync_backend_create(&c->s,
				    VDEV_BLK_BACKEND_F_DISCARD | VDEV_BLK_BACKEND_F_WRITE_ZEROES,
				    VDI_BACKEND_COW, out);
	if (r < 0)
		goto fail;
	return 0;
fail:
	cow_destroy(&c->s);
	return r;
}

/* With ctx_lock held: does any queue context hold an io? */
static int cow_busy(struct cow_be *c)
{
	struct cow_q *q;

	for (q = c->ctxs; q; q = q->next)
		if (vdi_syncq_held(&q->q))
			return 1;
	return 0;
}

VDEV_EXPORT int vdev_blk_backend_cow_reset(vdev_blk_backend *b)
{
	struct cow_be *c = vdi_blk_backend_priv(b, VDI_BACKEND_COW);
	size_t i;

	if (!c)
		return -EINVAL;
	pthread_mutex_lock(&c->ctx_lock);
	if (cow_busy(c)) {
		pthread_mutex_unlock(&c->ctx_lock);
		return -EBUSY;
	}
	for (i = 0; i < c->nwords; i++)
		__atomic_store_n(&c->bitmap[i], 0, __ATOMIC_RELEASE);
	/* The disk reads as the base already; punching only gives the file's
	 * blocks back (the in-memory overlay keeps its pages for reuse: stale
	 * bytes under a clear bit are never read). */
	if (c->ov_fd >= 0)
		(void)vdi_fd_fallocate(c->ov_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
				       c->s.size);
	pthread_mutex_unlock(&c->ctx_lock);
	return 0;
}

VDEV_EXPORT int vdev_blk_backend_cow_commit(vdev_blk_backend *b, int fd)
{
	struct cow_be *c = vdi_blk_backend_priv(b, VDI_BACKEND_COW);
	uint8_t *buf = NULL;
	uint64_t ci = 0;
	int r = 0;

	if (!c || fd < 0)
		return -EINVAL;
	pthread_mutex_lock(&c->ctx_lock);
	if (cow_busy(c)) {
		r = -EBUSY;
		goto out;
	}
	if (!c->ov_mem) {
		buf = malloc(COW_COMMIT_BUF);
		if (!buf) {
			r = -ENOMEM;
			goto out;
		}
	}
	while (ci < c->nchunks && r == 0) {
		uint64_t pos, end;

		if (!cow_allocated(c, ci)) {
			ci++;
			continue;
		}
		pos = cow_chunk_start(c, ci);
		end = cow_run_end(c, pos, c->s.size, 1);
		while (pos < end && r == 0) {
			uint64_t n = VDI_MIN(end - pos, (uint64_t)COW_COMMIT_BUF);

			if (c->ov_mem) {
				r = vdi_fd_rw_flat(fd, 1, c->ov_mem + pos, pos, n);
			} else {
				r = vdi_fd_rw_flat(c->ov_fd, 0, buf, pos, n);
				if (r == 0)
					r = vdi_fd_rw_flat(fd, 1, buf, pos, n);
			}
			pos += n;
		}
		ci = (end + c->chunk - 1) >> c->shift;
	}
	if (r == 0)
		r = vdi_fd_datasync(fd);
out:
	pthread_mutex_unlock(&c->ctx_lock);
	free(buf);
	return r;
}
