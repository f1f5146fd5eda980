/* SPDX-License-Identifier: MIT */
/*
 * The plain file backend: synchronous preadv/pwritev on a regular file or a
 * block device.
 *
 * The I/O happens in submit (enqueue only records the io; see
 * sync_internal.h), so completion_fd is -1 and everything submitted is ready
 * to reap when submit returns. Each queue context holds at most queue_depth
 * ios (0: 128) between enqueue and reap; more is -EAGAIN.
 *
 * Queue contexts share only the fd, and pread/pwrite are positional, so the
 * data path takes no lock.
 *
 * O_DIRECT (VDEV_BLK_FILE_F_DIRECT): the library does not bounce, so every
 * io's offset and length and every iovec's base address and length must be
 * multiples of the logical block size of the file system or device (512 on
 * most, 4096 on 4Kn drives and some file systems); a misaligned io completes
 * with the kernel's -EINVAL. With an fd instead of a path the file is reopened
 * through /proc/self/fd so that O_DIRECT does not leak into the caller's open
 * file description.
 *
 * Discard punches a hole (FALLOC_FL_PUNCH_HOLE | KEEP_SIZE). It is advisory,
 * so when the file system cannot punch it still succeeds. Write-zeroes must
 * really zero: PUNCH_HOLE when the request allows unmapping, else
 * ZERO_RANGE, and when neither is supported it writes zeros.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "backend_internal.h"
#include "internal/util.h"
#include "sync_internal.h"

#define FILE_KNOWN_FLAGS (VDEV_BLK_FILE_F_READONLY | VDEV_BLK_FILE_F_DIRECT)

/* The source of write-zeroes fallbacks; page aligned for O_DIRECT. */
static uint8_t file_zeros[64 * 1024] __attribute__((aligned(4096)));

struct file_be {
	struct vdi_sync s; /* first: the backend's opaque */
	int fd;
};

static int file_write_zeroes(struct file_be *f, const struct vdev_blk_io *io)
{
	int r;

	if (!io->len)
		return 0;
	if (io->flags & VDEV_BLK_IO_F_UNMAP) {
		r = vdi_fd_fallocate(f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, io->offset,
				     io->len);
		if (r == 0 || !vdi_fallocate_unsupported(r))
			return r;
	}
	r = vdi_fd_fallocate(f->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, io->offset, io->len);
	if (r == 0 || !vdi_fallocate_unsupported(r))
		return r;
	return vdi_fd_write_zeros(f->fd, file_zeros, sizeof(file_zeros), io->offset, io->len);
}

static int file_discard(struct file_be *f, const struct vdev_blk_io *io)
{
	int r;

	if (!io->len)
		return 0;
	r = vdi_fd_fallocate(f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, io->offset, io->len);
	/* Advisory: a file system that cannot punch keeps the data, which
	 * virtio allows for discard. */
	if (r < 0 && vdi_fallocate_unsupported(r))
		r = 0;
	return r;
}

static int file_run(struct vdi_sync *s, struct vdi_syncq *q, struct vdev_blk_io *io)
{
	struct file_be *f = (struct file_be *)s;
	struct vdi_iovc c;

	VDI_UNUSED(q);
	switch (io->op) {
	case VDEV_BLK_IO_READ:
	case VDEV_BLK_IO_WRITE:
		vdi_iovc_init(&c, io->iov, io->iovcnt);
		return vdi_fd_rw(f->fd, io->op == VDEV_BLK_IO_WRITE, &c, io->offset, io->len);
	case VDEV_BLK_IO_FLUSH:
		return vdi_fd_datasync(f->fd);
	case VDEV_BLK_IO_DISCARD:
		return file_discard(f, io);
	case VDEV_BLK_IO_WRITE_ZEROES:
		return file_write_zeroes(f, io);
	default:
		return -EOPNOTSUPP;
	}
}

static void file_destroy(struct vdi_sync *s)
{
	struct file_be *f = (struct file_be *)s;

	if (!f)
		return;
	if (f->fd >= 0)
		close(f->fd);
	free(f);
}

static const struct vdi_sync_ops file_ops = {
	.run = file_run,
	.destroy = file_destroy,
};

/* Our own fd for the image: opened from the path, or the caller's fd
 * duplicated (reopened when O_DIRECT is wanted). */
static int file_open(const struct vdev_blk_file_config *cfg, int *readonly)
{
	int ro = !!(cfg->flags & VDEV_BLK_FILE_F_READONLY);
	int oflags = (ro ? O_RDONLY : O_RDWR) | O_CLOEXEC;
	int fd, fl;

	if (cfg->flags & VDEV_BLK_FILE_F_DIRECT)
		oflags |= O_DIRECT;
	if (cfg->path) {
		fd = open(cfg->path, oflags);
		if (fd < 0)
			return -errno;
		*readonly = ro;
		return fd;
	}
	fl = fcntl(cfg->fd, F_GETFL);
	if (fl < 0)
		return -errno;
	/* A read-only fd makes a read-only disk, so the device offers RO
	 * rather than failing every write. */
	if ((fl & O_ACCMODE) == O_RDONLY)
		ro = 1;
	else if ((fl & O_ACCMODE) != O_RDWR)
		return -EINVAL; /* write-only or O_PATH: cannot read the disk */
	if ((cfg->flags & VDEV_BLK_FILE_F_DIRECT) && !(fl & O_DIRECT)) {
		char p[64];

		snprintf(p, sizeof(p), "/proc/self/fd/%d", (int)cfg->fd);
		fd = open(p, (ro ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_DIRECT);
	} else {
		fd = fcntl(cfg->fd, F_DUPFD_CLOEXEC, 0);
	}
	if (fd < 0)
		return -errno;
	*readonly = ro;
	return fd;
}

VDEV_EXPORT int vdev_blk_backend_new_file(const struct vdev_blk_file_config *ucfg,
					  vdev_blk_backend **out)
{
	struct vdev_blk_file_config cfg;
	struct file_be *f;
	uint32_t flags;
	int r;

	if (!ucfg || !out || vdi_copy_versioned(&cfg, sizeof(cfg), ucfg) < 0)
		return -EINVAL;
	if ((cfg.flags & ~FILE_KNOWN_FLAGS) || (!cfg.path && cfg.fd < 0) ||
	    cfg.queue_depth > VDI_SYNC_MAX_DEPTH)
		return -EINVAL;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->s.ops = &file_ops;
	f->s.depth = cfg.queue_depth ? cfg.queue_depth : VDI_SYNC_DEPTH;
	f->fd = file_open(&cfg, &f->s.readonly);
	if (f->fd < 0) {
		r = f->fd;
		free(f);
		return r;
	}
	r = vdi_fd_disk_size(f->fd, &f->s.size);
	if (r < 0)
		goto fail;
	flags = f->s.readonly ? VDEV_BLK_BACKEND_F_READONLY
			      : VDEV_BLK_BACKEND_F_DISCARD | VDEV_BLK_BACKEND_F_WRITE_ZEROES;
	r = vdi_sync_backend_create(&f->s, flags, VDI_BACKEND_FILE, out);
	if (r < 0)
		goto fail;
	return 0;
fail:
	file_destroy(&f->s);
	return r;
}
