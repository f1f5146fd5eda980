/* SPDX-License-Identifier: MIT */
/*
 * Shared by the synchronous built-in backends (file, memory, cow). Private
 * to the library. The generic backend plumbing is in sync.c; the helpers
 * below are static inline so each backend only pulls in what it uses.
 *
 * A synchronous backend does its I/O in submit: enqueue only records the io
 * in a bounded per-queue ring (-EAGAIN when depth ios are held, that is
 * enqueued and not yet reaped), submit runs every recorded io in order, and
 * reap hands back the finished ones. completion_fd is -1.
 */
#ifndef VDI_SYNC_INTERNAL_H
#define VDI_SYNC_INTERNAL_H

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <linux/fs.h>

#include <virtio-dev/blk.h>

#include "internal/iov.h"

#define VDI_SYNC_DEPTH 128u
#define VDI_SYNC_MAX_DEPTH 32768u
#define VDI_SECTOR 512u

/* ---- the generic backend -------------------------------------------------- */

/*
 * A queue context: the bounded ring of ios, first member of the backend's
 * own queue context when it has one (see vdi_sync_ops.qsize).
 */
struct vdi_syncq {
	struct vdev_blk_io **ring;
	uint32_t depth;
	uint32_t held; /* enqueued, not yet reaped; read atomically by cow_reset/commit */
	uint64_t head; /* next to reap */
	uint64_t exec; /* next to run */
	uint64_t tail; /* next free slot */
};

struct vdi_sync;

/* What makes one synchronous backend. Const, one per backend kind. */
struct vdi_sync_ops {
	/* Run one io that passed vdi_io_check; returns its io->result. */
	int (*run)(struct vdi_sync *s, struct vdi_syncq *q, struct vdev_blk_io *io);
	/* Free the backend (its private state, which embeds @s). */
	void (*destroy)(struct vdi_sync *s);
	/* Optional: the size of the backend's queue context, whose first
	 * member is a struct vdi_syncq (0: a bare vdi_syncq), and hooks that
	 * set up and tear down the rest of it. queue_init runs after the ring
	 * is set up, queue_fini before it is torn down. */
	size_t qsize;
	int (*queue_init)(struct vdi_sync *s, struct vdi_syncq *q);
	void (*queue_fini)(struct vdi_sync *s, struct vdi_syncq *q);
};

/*
 * The generic part of a synchronous backend: the first member of its private
 * state, so the backend's opaque is a struct vdi_sync.
 */
struct vdi_sync {
	const struct vdi_sync_ops *ops;
	uint64_t size;  /* disk size in bytes */
	uint32_t depth; /* ios a queue context holds */
	int readonly;
};

/*
 * Wrap @s (filled in) in a backend object of @kind (a VDI_BACKEND_*) with
 * the generic ops: queue_open/close, enqueue, submit (every queued io checked
 * by vdi_io_check, then run), reap, completion_fd -1. On failure the caller
 * still owns @s.
 */
int vdi_sync_backend_create(struct vdi_sync *s, uint32_t flags, uint32_t kind,
			    vdev_blk_backend **out);

/* Ios enqueued on @q and not yet reaped; safe from any thread. */
static inline uint32_t vdi_syncq_held(const struct vdi_syncq *q)
{
	return __atomic_load_n(&q->held, __ATOMIC_ACQUIRE);
}

/* ---- request validation --------------------------------------------------- */

static inline int vdi_io_in_range(uint64_t off, uint64_t len, uint64_t size)
{
	return off <= size && len <= size - off;
}

/*
 * Everything a backend must refuse before touching memory: unknown ops,
 * ranges outside the disk, iovecs that do not add up to len (the backend
 * would otherwise read or write past the caller's buffers), writes to a
 * read-only disk. Returns 0 or the negative errno for io->result.
 */
static inline int vdi_io_check(const struct vdev_blk_io *io, uint64_t size, int readonly)
{
	uint64_t total = 0;
	uint32_t i;

	switch (io->op) {
	case VDEV_BLK_IO_READ:
	case VDEV_BLK_IO_WRITE:
		if (!vdi_io_in_range(io->offset, io->len, size))
			return -EINVAL;
		if (io->iovcnt && !io->iov)
			return -EINVAL;
		for (i = 0; i < io->iovcnt; i++) {
			if (io->iov[i].iov_len && !io->iov[i].iov_base)
				return -EINVAL;
			if (io->iov[i].iov_len > UINT64_MAX - total)
				return -EINVAL;
			total += io->iov[i].iov_len;
		}
		if (total != io->len)
			return -EINVAL;
		if (io->op == VDEV_BLK_IO_WRITE && readonly)
			return -EROFS;
		return 0;
	case VDEV_BLK_IO_FLUSH:
		return 0;
	case VDEV_BLK_IO_DISCARD:
	case VDEV_BLK_IO_WRITE_ZEROES:
		if (!vdi_io_in_range(io->offset, io->len, size))
			return -EINVAL;
		return readonly ? -EROFS : 0;
	default:
		return -EOPNOTSUPP;
	}
}

/* ---- positional file I/O -------------------------------------------------- */

/*
 * Transfer exactly @n bytes between the iovecs at the cursor and @fd at
 * @off, advancing the cursor. Short transfers are continued; EINTR is
 * retried; a transfer that makes no progress (EOF inside the disk, or a
 * write of 0 bytes) is -EIO. Returns 0 or a negative errno: never a short
 * success.
 */
static inline int vdi_fd_rw(int fd, int write, struct vdi_iovc *c, uint64_t off, uint64_t n)
{
	struct iovec win[VDI_IOV_WINDOW];

	while (n) {
		uint32_t k = vdi_iovc_window(c, n, win, VDI_IOV_WINDOW);
		ssize_t r;

		if (!k)
			return -EINVAL; /* the iovecs ran out: vdi_io_check prevents it */
		r = write ? pwritev(fd, win, (int)k, (off_t)off) : preadv(fd, win, (int)k, (off_t)off);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return -EIO;
		vdi_iovc_advance(c, (uint64_t)r);
		off += (uint64_t)r;
		n -= (uint64_t)r;
	}
	return 0;
}

/* The same for one flat buffer. */
static inline int vdi_fd_rw_flat(int fd, int write, void *buf, uint64_t off, uint64_t n)
{
	struct iovec v = {.iov_base = buf, .iov_len = (size_t)n};
	struct vdi_iovc c;

	vdi_iovc_init(&c, &v, 1);
	return vdi_fd_rw(fd, write, &c, off, n);
}

/* Write @n zero bytes at @off from the zero buffer @zeros of @zlen bytes. */
static inline int vdi_fd_write_zeros(int fd, const uint8_t *zeros, size_t zlen, uint64_t off,
				     uint64_t n)
{
	struct iovec win[16];

	while (n) {
		uint64_t chunk = 0;
		uint32_t k = 0;
		struct vdi_iovc c;
		int r;

		while (k < 16 && chunk < n) {
			size_t take = n - chunk < zlen ? (size_t)(n - chunk) : zlen;

			win[k].iov_base = (void *)(uintptr_t)zeros;
			win[k].iov_len = take;
			chunk += take;
			k++;
		}
		vdi_iovc_init(&c, win, k);
		r = vdi_fd_rw(fd, 1, &c, off, chunk);
		if (r < 0)
			return r;
		off += chunk;
		n -= chunk;
	}
	return 0;
}

static inline int vdi_fd_datasync(int fd)
{
	while (fdatasync(fd) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

/* fallocate() that retries EINTR and returns 0 or a negative errno. */
static inline int vdi_fd_fallocate(int fd, int mode, uint64_t off, uint64_t len)
{
	while (fallocate(fd, mode, (off_t)off, (off_t)len) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

/* The kernel cannot do this fallocate mode here (fall back to another way). */
static inline int vdi_fallocate_unsupported(int err)
{
	return err == -EOPNOTSUPP || err == -ENOSYS || err == -EINVAL || err == -ENODEV ||
	       err == -ENOTTY;
}

/* Disk size of a regular file or block device, rounded down to 512. */
static inline int vdi_fd_disk_size(int fd, uint64_t *size)
{
	struct stat st;
	uint64_t s;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (S_ISREG(st.st_mode)) {
		s = (uint64_t)st.st_size;
	} else if (S_ISBLK(st.st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, &s) < 0)
			return -errno;
	} else {
		return -EINVAL;
	}
	*size = s & ~(uint64_t)(VDI_SECTOR - 1);
	return 0;
}

#endif
