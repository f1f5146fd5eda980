/* SPDX-License-Identifier: MIT */
/*
 * Tests of the synchronous block backends: file (buffered and O_DIRECT),
 * memory and copy-on-write (memory and file overlays, several chunk sizes).
 * Each runs the shared conformance table (backend-conformance.h) against a
 * shadow of the disk, then the kind-specific cases: argument checks,
 * read-only refusal, fault injection (RLIMIT_FSIZE, a file shrunk under the
 * backend), the cow base left untouched, reset, commit, -EBUSY, a partial
 * last chunk, and concurrent copy-up of one chunk from two queues.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <virtio-dev/blk.h>

#include "backend-conformance.h"
#include "backends/backend_internal.h"

#define MiB (1ull << 20)
#define DISK (16 * MiB)

/* ---- scratch files ---- */

/* A file of @size bytes from bc_fill(@seed) in @dir; its path in @path, its
 * content in *@content (malloc'd, may be NULL). Returns an O_RDWR fd. */
static int mk_image(const char *dir, char *path, size_t plen, uint64_t size, uint64_t seed,
		    uint8_t **content)
{
	uint8_t *buf = malloc(size ? (size_t)size : 1);
	int fd;

	ck_assert_ptr_nonnull(buf);
	snprintf(path, plen, "%s/vdev-blk-XXXXXX", dir);
	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	bc_fill(buf, size, seed);
	ck_assert_int_eq(pwrite(fd, buf, (size_t)size, 0), (ssize_t)size);
	if (content)
		*content = buf;
	else
		free(buf);
	return fd;
}

static uint8_t *read_whole(int fd, uint64_t size)
{
	uint8_t *buf = malloc(size ? (size_t)size : 1);

	ck_assert_ptr_nonnull(buf);
	ck_assert_int_eq(pread(fd, buf, (size_t)size, 0), (ssize_t)size);
	return buf;
}

static uint64_t hash_fd(int fd, uint64_t size)
{
	uint8_t *b = read_whole(fd, size);
	uint64_t h = bc_hash(b, size);

	free(b);
	return h;
}

/* ---- memory ---- */

static const uint64_t mem_sizes[] = {DISK, 64 * 1024};

START_TEST(conf_memory)
{
	uint64_t size = mem_sizes[_i];
	vdev_blk_backend *b = NULL;
	struct bc_config c = {0};
	uint8_t *shadow = calloc(1, size);

	ck_assert_ptr_nonnull(shadow);
	ck_assert_int_eq(vdev_blk_backend_new_memory(size, 0, &b), 0);
	ck_assert_uint_eq(vdev_blk_backend_flags(b),
			  VDEV_BLK_BACKEND_F_DISCARD | VDEV_BLK_BACKEND_F_WRITE_ZEROES);
	c.b = b;
	c.shadow = shadow;
	c.size = size;
	c.align = 1;
	c.seed = 11 + _i;
	bc_run_conformance(&c);
	/* the borrowed bytes are the disk */
	ck_assert(!memcmp(vdev_blk_backend_memory_data(b), shadow, size));
	vdev_blk_backend_free(b);
	free(shadow);
}
END_TEST

START_TEST(memory_args)
{
	vdev_blk_backend *b = (vdev_blk_backend *)0x1;

	ck_assert_int_eq(vdev_blk_backend_new_memory(0, 0, &b), -EINVAL);
	ck_assert_int_eq(vdev_blk_backend_new_memory(513, 0, &b), -EINVAL);
	ck_assert_int_eq(vdev_blk_backend_new_memory(4096, 0, NULL), -EINVAL);
	ck_assert_int_eq(vdev_blk_backend_new_memory(4096, VDEV_BLK_BACKEND_F_DISCARD, &b), -EINVAL);
	ck_assert_int_eq(vdev_blk_backend_new_memory(4096, 0x80, &b), -EINVAL);
	ck_assert_ptr_eq(b, (vdev_blk_backend *)0x1); /* untouched on failure */
	ck_assert_ptr_null(vdev_blk_backend_memory_data(NULL));
	ck_assert_uint_eq(vdev_blk_backend_size(NULL), 0);
	vdev_blk_backend_free(NULL);

	b = NULL;
	ck_assert_int_eq(vdev_blk_backend_new_memory(512, 0, &b), 0);
	ck_assert_uint_eq(vdev_blk_backend_size(b), 512);
	ck_assert_int_eq(vdev_blk_backend_cow_reset(b), -EINVAL);
	ck_assert_int_eq(vdev_blk_backend_cow_commit(b, 1), -EINVAL);
	vdev_blk_backend_free(b);
}
END_TEST

START_TEST(memory_data_and_readonly)
{
	vdev_blk_backend *b = NULL;
	uint8_t *d, *shadow = malloc(8192), got[512];
	struct bc_q q;

	ck_assert_ptr_nonnull(shadow);
	/* A read-only RAM disk the VMM fills through memory_data. */
	ck_assert_int_eq(vdev_blk_backend_new_memory(8192, VDEV_BLK_BACKEND_F_READONLY, &b), 0);
	ck_assert_uint_eq(vdev_blk_backend_flags(b), VDEV_BLK_BACKEND_F_READONLY);
	d = vdev_blk_backend_memory_data(b);
	ck_assert_ptr_nonnull(d);
	ck_assert(bc_all(d, 0, 8192)); /* zero-filled */
	bc_fill(d, 8192, 5);
	memcpy(shadow, d, 8192);
	bc_readonly(b, shadow, 1);
	ck_assert(!memcmp(d, shadow, 8192));
	bc_q_open(&q, b, 0);
	ck_assert_int_eq(bc_do(&q, VDEV_BLK_IO_READ, 4096 + 3, 512, 1, NULL, got, 0), 0);
	ck_assert(!memcmp(got, shadow + 4096 + 3, 512));
	bc_q_close(&q);
	vdev_blk_backend_free(b);
	free(shadow);
}
END_TEST

/* ---- file ---- */

/* 0: by path, 1: by fd (the caller's fd closed right after), 2: by path on
 * tmpfs, which cannot FALLOC_FL_ZERO_RANGE: write-zeroes writes zeros. */
START_TEST(conf_file)
{
	char path[256];
	uint8_t *content;
	int fd;
	struct stat st;

	if (_i == 2 && (stat("/dev/shm", &st) < 0 || !S_ISDIR(st.st_mode) ||
			access("/dev/shm", W_OK) < 0)) {
		printf("conf_file:2: skipped: no writable /dev/shm\n");
		return;
	}
	fd = mk_image(_i == 2 ? "/dev/shm" : "/tmp", path, sizeof(path), DISK + 100, 21, &content);
	struct vdev_blk_file_config cfg = VDEV_BLK_FILE_CONFIG_INIT;
	vdev_blk_backend *b = NULL;
	struct bc_config c = {0};
	uint8_t *disk;

	if (_i != 1)
		cfg.path = path;
	else
		cfg.fd = fd;
	ck_assert_int_eq(vdev_blk_backend_new_file(&cfg, &b), 0);
	if (_i == 1) {
		/* the backend has its own fd */
		int fd2 = open(path, O_RDWR);

		close(fd);
		fd = fd2;
		ck_assert_int_ge(fd, 0);
	}
	ck_assert_uint_eq(vdev_blk_backend_size(b), DISK); /* rounded down to 512 */
	ck_assert_uint_eq(vdev_blk_backend_flags(b),
			  VDEV_BLK_BACKEND_F_DISCARD | VDEV_BLK_BACKEND_F_WRITE_ZEROES);
	c.b = b;
	c.shadow = content;
	c.size = DISK;
	c.align = 1;
	c.seed = 31 + _i;
	bc_run_conformance(&c);
	/* the data is really in the file, and the tail past the disk is untouched */
	disk = read_whole(fd, DISK + 100);
	ck_assert(!memcmp(disk, content, DISK));
	bc_fill(content, DISK + 100, 21);
	ck_assert(!memcmp(disk + DISK, content + DISK, 100));
	free(disk);
	vdev_blk_backend_free(b);
	close(fd);
	unlink(path);
	free(content);
}
END_TEST

START_TEST(conf_file_direct)
{
	char path[256];
	uint8_t *content;
	int fd = mk_image("/var/tmp", path, sizeof(path), DISK, 41, &content);
	struct vdev_blk_file_config cfg = VDEV_BLK_FILE_CONFIG_INIT;
	vdev_blk_backend *b = NULL;
	struct bc_config c = {0};
	int r;

	cfg.flags = VDEV_BLK_FILE_F_DIRECT;
	if (_i == 0)
		cfg.path = path;
	else
		cfg.fd = fd; /* reopened with O_DIRECT; our fd stays buffered */
	r = vdev_blk_backend_new_file(&cfg, &b);
	if (r == -EINVAL) {
		printf("conf_file_direct: skipped: O_DIRECT open of %s fails with EINVAL "
		       "(file system without O_DIRECT)\n", path);
		close(fd);
		unlink(path);
		free(content);
		return;
	}
	ck_assert_int_eq(r, 0);
	if (_i == 1)
		ck_assert_int_eq(fcntl(fd, F_GETFL) & O_DIRECT, 0);
	c.b = b;
	c.shadow = content;
	c.size = DISK;
	c.align = 4096;
	c.rounds = 80;
	c.seed = 43;
	bc_run_conformance(&c);
	vdev_blk_backend_free(b);
	{
		uint8_t *disk = read_whole(fd, DISK);

		ck_assert(!memcmp(disk, content, DISK));
		free(disk);
	}
	close(fd);
	unlink(path);
	free(content);
}
END_TEST

START_TEST(file_args)
{
	struct vdev_blk_file_config cfg = VDEV_BLK_FILE_CONFIG_INIT;
	vdev_blk_backend *b = (vdev_blk_backend *)0x1;
	char path[256];
	int fd = mk_image("/tmp", path, sizeof(path), 4096, 1, NULL), dfd;

	ck_assert_int_eq(vdev_blk_backend_new_file(NULL, &b), -EINVAL);
	cfg.path = path;
	ck_assert_int_eq(vdev_blk_backend_new_file(&cfg, NULL), -EINVAL);
	cfg.flags = 0x100;
	ck_assert_int_eq(vdev_blk_backend_new_file(&cfg, &b), -EINVAL);
	cfg.flags = 0;
	cfg.struct_size = 0;
	ck_assert_int_eq(vdev_blk_backend_new_file(&cfg, &b), -EINVAL);
	cfg.struct_size = sizeof(cfg);
	cfg.queue_depth = 1u << 30;
	ck_assert_int_eq(vdev_blk_backend_new_file(&cfg, &b), -EINVAL);
	cfg.queue_depth = 0;
	cfg.path = NULL;
	cfg.fd = -1;
	ck_assert_int_eq(vdev_blk_backend_new_file(&cfg, &b), -EINVAL);
	cfg.fd = 1000000;
	ck_assert_int_eq(vdev_blk_backend_new_file(&cfg, &b), -EBADF);
	cfg.fd = -1;
	cfg.path = "/nonexistent/vdev-blk-image";
	ck_assert_int_eq(vdev_blk_backend_new_file(&cfg, &b), -ENOENT);
	cfg.path = "/tmp";
	ck_assert_int_eq(vdev_blk_backend_new_file(&cfg, &b), -EISDIR);
	/* a directory fd: neither a regular file nor a block device */
	dfd = open("/tmp", O_RDONLY | O_DIRECTORY);
	ck_assert_int_ge(dfd, 0);
	cfg.path = NULL;
	cfg.fd = dfd;
	ck_assert_int_eq(vdev_blk_backend_new_file(&cfg, &b), -EINVAL);
	close(dfd);
	ck_assert_ptr_eq(b, (vdev_blk_backend *)0x1);
	ck_assert_ptr_null(vdev_blk_backend_memory_data(NULL));

	/* an older, smaller config struct (without queue_depth) still works */
	cfg.fd = fd;
	cfg.struct_size = offsetof(struct vdev_blk_file_config, queue_depth);
	b = NULL;
	ck_assert_int_eq(vdev_blk_backend_new_file(&cfg, &b), 0);
	ck_assert_ptr_null(vdev_blk_backend_memory_data(b));
	ck_assert_int_eq(vdev_blk_backend_cow_reset(b), -EINVAL);
	vdev_blk_backend_free(b);
	close(fd);
	unlink(path);
}
END_TEST

START_TEST(file_sizes)
{
	struct vdev_blk_file_config cfg = VDEV_BLK_FILE_CONFIG_INIT;
	vdev_blk_backend *b = NULL;
	char path[256];
	int fd = mk_image("/tmp", path, sizeof(path), 511, 1, NULL);
	struct bc_q q;
	uint8_t buf[512];

	cfg.path = path;
	/* smaller than a sector: an empty disk, every io out of range */
	ck_assert_int_eq(vdev_blk_backend_new_file(&cfg, &b), 0);
	ck_assert_uint_eq(vdev_blk_backend_size(b), 0);
	bc_q_open(&q, b, 0);
	ck_assert_int_eq(bc_do(&q, VDEV_BLK_IO_READ, 0, 512, 1, NULL, buf, 0), -EINVAL);
	ck_assert_int_eq(bc_do(&q, VDEV_BLK_IO_FLUSH, 0, 0, 1, NULL, NULL, 0), 0);
	bc_q_close(&q);
	vdev_blk_backend_free(b);
	ck_assert_int_eq(ftruncate(fd, 3 * 512 + 1), 0);
	ck_assert_int_eq(vdev_blk_backend_new_file(&cfg, &b), 0);
	ck_assert_uint_eq(vdev_blk_backend_size(b), 3 * 512);
	vdev_blk_backend_free(b);
	close(fd);
	unlink(path);
}
END_TEST

START_TEST(file_readonly)
{
	struct vdev_blk_file_config cfg = VDEV_BLK_FILE_CONFIG_INIT;
	vdev_blk_backend *b = NULL;
	char path[256];
	uint8_t *content;
	int fd = mk_image("/tmp", path, sizeof(path), MiB, 7, &content), rofd;

	/* by flag */
	cfg.path = path;
	cfg.flags = VDEV_BLK_FILE_F_READONLY;
	ck_assert_int_eq(vdev_blk_backend_new_file(&cfg, &b), 0);
	ck_assert_uint_eq(vdev_blk_backend_flags(b), VDEV_BLK_BACKEND_F_READONLY);
	bc_readonly(b, content, 1);
	vdev_blk_backend_free(b);
	/* a read-only fd makes a read-only disk */
	rofd = open(path, O_RDONLY);
	ck_assert_int_ge(rofd, 0);
	cfg.path = NULL;
	cfg.flags = 0;
	cfg.fd = rofd;
	ck_assert_int_eq(vdev_blk_backend_new_file(&cfg, &b), 0);
	ck_assert_uint_eq(vdev_blk_backend_flags(b), VDEV_BLK_BACKEND_F_READONLY);
	bc_readonly(b, content, 1);
	vdev_blk_backend_free(b);
	close(rofd);
	/* a write-only fd cannot be a disk */
	rofd = open(path, O_WRONLY);
	cfg.fd = rofd;
	ck_assert_int_eq(vdev_blk_backend_new_file(&cfg, &b), -EINVAL);
	close(rofd);
	{
		uint8_t *now = read_whole(fd, MiB);

		ck_assert(!memcmp(now, content, MiB));
		free(now);
	}
	close(fd);
	unlink(path);
	free(content);
}
END_TEST

/* queue_depth bounds what a context holds between enqueue and reap. */
START_TEST(file_queue_depth)
{
	struct vdev_blk_file_config cfg = VDEV_BLK_FILE_CONFIG_INIT;
	struct vdev_blk_io io[6], *done[8];
	vdev_blk_backend *b = NULL;
	uint8_t buf[6][512];
	struct iovec v[6];
	char path[256];
	int fd = mk_image("/tmp", path, sizeof(path), 64 * 1024, 3, NULL);
	struct bc_q q;
	unsigned i;

	cfg.path = path;
	cfg.queue_depth = 4;
	ck_assert_int_eq(vdev_blk_backend_new_file(&cfg, &b), 0);
	bc_q_open(&q, b, 0);
	ck_assert_int_eq(q.cfd, -1);
	for (i = 0; i < 6; i++) {
		memset(&io[i], 0, sizeof(io[i]));
		io[i].struct_size = sizeof(io[i]);
		io[i].op = VDEV_BLK_IO_READ;
		io[i].offset = i * 512;
		io[i].len = 512;
		v[i].iov_base = buf[i];
		v[i].iov_len = 512;
		io[i].iov = &v[i];
		io[i].iovcnt = 1;
	}
	for (i = 0; i < 4; i++)
		ck_assert_int_eq(b->ops.enqueue(b->opaque, q.qctx, &io[i]), 0);
	ck_assert_int_eq(b->ops.enqueue(b->opaque, q.qctx, &io[4]), -EAGAIN);
	ck_assert_int_eq(b->ops.submit(b->opaque, q.qctx), 0);
	/* submitted but not reaped still counts */
	ck_assert_int_eq(b->ops.enqueue(b->opaque, q.qctx, &io[4]), -EAGAIN);
	ck_assert_int_eq(b->ops.reap(b->opaque, q.qctx, done, 1), 1);
	ck_assert_ptr_eq(done[0], &io[0]);
	ck_assert_int_eq(b->ops.enqueue(b->opaque, q.qctx, &io[4]), 0);
	ck_assert_int_eq(b->ops.enqueue(b->opaque, q.qctx, &io[5]), -EAGAIN);
	ck_assert_int_eq(b->ops.reap(b->opaque, q.qctx, done, 8), 3); /* io[4] not submitted */
	ck_assert_int_eq(b->ops.submit(b->opaque, q.qctx), 0);
	ck_assert_int_eq(b->ops.reap(b->opaque, q.qctx, done, 0), 0);
	ck_assert_int_eq(b->ops.reap(b->opaque, q.qctx, done, 8), 1);
	ck_assert_ptr_eq(done[0], &io[4]);
	ck_assert_int_eq(io[4].result, 0);
	ck_assert_int_eq(b->ops.enqueue(b->opaque, q.qctx, NULL), -EINVAL);
	ck_assert_int_eq(b->ops.reap(b->opaque, q.qctx, NULL, 4), -EINVAL);
	bc_q_close(&q);
	vdev_blk_backend_free(b);
	close(fd);
	unlink(path);
}
END_TEST

/* Writes past RLIMIT_FSIZE fail with EFBIG: the io fails (never a short
 * success, also when part of it went through), and later ios still work. */
START_TEST(file_fault_fsize)
{
	struct vdev_blk_file_config cfg = VDEV_BLK_FILE_CONFIG_INIT;
	vdev_blk_backend *b = NULL;
	struct rlimit old, lim;
	void (*oldsig)(int);
	uint8_t *content, *data = malloc(64 * 1024), got[4096];
	char path[256];
	int fd = mk_image("/tmp", path, sizeof(path), 4 * MiB, 9, &content);
	struct bc_q q;

	ck_assert_ptr_nonnull(data);
	cfg.path = path;
	ck_assert_int_eq(vdev_blk_backend_new_file(&cfg, &b), 0);
	bc_q_open(&q, b, 0);
	ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
	oldsig = signal(SIGXFSZ, SIG_IGN);
	lim = old;
	lim.rlim_cur = 2 * MiB;
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);

	bc_fill(data, 64 * 1024, 99);
	ck_assert_int_eq(bc_do(&q, VDEV_BLK_IO_WRITE, 3 * MiB, 4096, 1, data, NULL, 0), -EFBIG);
	/* straddling the limit: the first part is written, then EFBIG */
	ck_assert_int_eq(bc_do(&q, VDEV_BLK_IO_WRITE, 2 * MiB - 8192, 16384, 1, data, NULL, 0),
			 -EFBIG);
	/* zero-filling past the limit (ZERO_RANGE or the write fallback) may
	 * fail too, but must not claim success without zeroing: check below */
	/* later ios work */
	ck_assert_int_eq(bc_do(&q, VDEV_BLK_IO_WRITE, 4096, 4096, 1, data, NULL, 0), 0);
	ck_assert_int_eq(bc_do(&q, VDEV_BLK_IO_READ, 4096, 4096, 1, NULL, got, 0), 0);
	ck_assert(!memcmp(got, data, 4096));
	ck_assert_int_eq(bc_do(&q, VDEV_BLK_IO_READ, 3 * MiB, 4096, 1, NULL, got, 0), 0);
	ck_assert(!memcmp(got, content + 3 * MiB, 4096)); /* the failed write left nothing */
	ck_assert_int_eq(bc_do(&q, VDEV_BLK_IO_FLUSH, 0, 0, 1, NULL, NULL, 0), 0);

	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, oldsig);
	bc_q_close(&q);
	vdev_blk_backend_free(b);
	close(fd);
	unlink(path);
	free(content);
	free(data);
}
END_TEST

/* A file shrunk under the backend: reads past its new end are -EIO (a
 * short read inside the disk is an error, not zeros), and the rest works. */
START_TEST(file_fault_short_read)
{
	struct vdev_blk_file_config cfg = VDEV_BLK_FILE_CONFIG_INIT;
	vdev_blk_backend *b = NULL;
	uint8_t *content, got[8192];
	char path[256];
	int fd = mk_image("/tmp", path, sizeof(path), MiB, 13, &content);
	struct bc_q q;

	cfg.path = path;
	ck_assert_int_eq(vdev_blk_backend_new_file(&cfg, &b), 0);
	bc_q_open(&q, b, 0);
	ck_assert_int_eq(ftruncate(fd, MiB / 2), 0);
	ck_assert_int_eq(bc_do(&q, VDEV_BLK_IO_READ, 3 * MiB / 4, 4096, 1, NULL, got, 0), -EIO);
	ck_assert_int_eq(bc_do(&q, VDEV_BLK_IO_READ, MiB / 2 - 4096, 8192, 1, NULL, got, 0), -EIO);
	ck_assert_int_eq(bc_do(&q, VDEV_BLK_IO_READ, MiB / 2 - 4096, 4096, 1, NULL, got, 0), 0);
	ck_assert(!memcmp(got, content + MiB / 2 - 4096, 4096));
	/* writing re-extends the file; the disk keeps its size */
	ck_assert_int_eq(bc_do(&q, VDEV_BLK_IO_WRITE, MiB - 512, 512, 1, content, NULL, 0), 0);
	ck_assert_uint_eq(vdev_blk_backend_size(b), MiB);
	bc_q_close(&q);
	vdev_blk_backend_free(b);
	close(fd);
	unlink(path);
	free(content);
}
END_TEST

/* ---- copy-on-write ---- */

struct cow_row {
	uint32_t chunk;
	int file_overlay;
	uint64_t base_size;
};

static const struct cow_row cow_rows[] = {
	{0, 0, DISK + 1536},              /* default 4 KiB chunks, partial last chunk */
	{4096, 1, DISK + 1536},
	{512, 0, DISK},
	{512, 1, 4 * MiB + 100},          /* base not a multiple of 512 */
	{65536, 1, DISK + 4096 + 512},
	{65536, 0, DISK},
	{1u << 20, 0, DISK + 3 * 512},
	{1u << 20, 1, DISK},
};

struct cow_fx {
	char base_path[256], ov_path[256];
	int base_fd;
	uint8_t *base;    /* the base's content */
	uint64_t size;    /* disk size */
	uint64_t base_size;
	uint64_t base_hash;
	vdev_blk_backend *b;
};

static void cow_fx_open(struct cow_fx *f, const struct cow_row *row, uint64_t seed)
{
	struct vdev_blk_cow_config cfg = VDEV_BLK_COW_CONFIG_INIT;

	memset(f, 0, sizeof(*f));
	f->base_size = row->base_size;
	f->size = row->base_size & ~511ull;
	f->base_fd = mk_image("/tmp", f->base_path, sizeof(f->base_path), row->base_size, seed,
			      &f->base);
	f->base_hash = bc_hash(f->base, row->base_size);
	cfg.chunk_size = row->chunk;
	cfg.base_path = f->base_path;
	if (row->file_overlay) {
		int t;

		snprintf(f->ov_path, sizeof(f->ov_path), "/tmp/vdev-blk-ov-XXXXXX");
		t = mkstemp(f->ov_path);
		ck_assert_int_ge(t, 0);
		ck_assert_int_eq(write(t, "junk", 4), 4); /* truncated by the backend */
		close(t);
		cfg.overlay_path = f->ov_path;
	}
	ck_assert_int_eq(vdev_blk_backend_new_cow(&cfg, &f->b), 0);
	ck_assert_uint_eq(vdev_blk_backend_size(f->b), f->size);
	ck_assert_uint_eq(vdev_blk_backend_flags(f->b),
			  VDEV_BLK_BACKEND_F_DISCARD | VDEV_BLK_BACKEND_F_WRITE_ZEROES);
	if (row->file_overlay) {
		struct stat st;

		ck_assert_int_eq(stat(f->ov_path, &st), 0);
		ck_assert_uint_eq((uint64_t)st.st_size, f->size);
	}
}

static void cow_fx_close(struct cow_fx *f)
{
	vdev_blk_backend_free(f->b);
	/* the base was never written */
	ck_assert_uint_eq(hash_fd(f->base_fd, f->base_size), f->base_hash);
	close(f->base_fd);
	unlink(f->base_path);
	if (f->ov_path[0])
		unlink(f->ov_path);
	free(f->base);
}

START_TEST(conf_cow)
{
	const struct cow_row *row = &cow_rows[_i];
	struct bc_config c = {0};
	struct cow_fx f;
	uint8_t *shadow;
	struct bc_q q;

	cow_fx_open(&f, row, 51 + _i);
	shadow = malloc(f.size);
	ck_assert_ptr_nonnull(shadow);
	memcpy(shadow, f.base, f.size);
	c.b = f.b;
	c.shadow = shadow;
	c.size = f.size;
	c.align = 1;
	c.chunk = row->chunk ? row->chunk : 4096;
	c.seed = 61 + _i;
	c.rounds = 120;
	bc_run_conformance(&c);
	ck_assert_uint_eq(hash_fd(f.base_fd, f.base_size), f.base_hash);

	/* commit into a copy of the base gives the disk */
	{
		char cpath[256];
		int cfd = mk_image("/tmp", cpath, sizeof(cpath), f.base_size, 51 + _i, NULL);
		uint8_t *img;

		ck_assert_int_eq(vdev_blk_backend_cow_commit(f.b, cfd), 0);
		img = read_whole(cfd, f.base_size);
		ck_assert(!memcmp(img, shadow, f.size));
		ck_assert(!memcmp(img + f.size, f.base + f.size, f.base_size - f.size));
		free(img);
		close(cfd);
		unlink(cpath);
	}
	/* reset: the base again, at once */
	ck_assert_int_eq(vdev_blk_backend_cow_reset(f.b), 0);
	memcpy(shadow, f.base, f.size);
	bc_q_open(&q, f.b, 0);
	bc_verify_all(&q, &c);
	bc_q_close(&q);
	/* and it works as before after a reset */
	c.rounds = 30;
	bc_random(&c);
	bc_q_open(&q, f.b, 0);
	bc_verify_all(&q, &c);
	bc_q_close(&q);
	cow_fx_close(&f);
	free(shadow);
}
END_TEST

START_TEST(cow_args)
{
	struct vdev_blk_cow_config cfg = VDEV_BLK_COW_CONFIG_INIT;
	vdev_blk_backend *b = (vdev_blk_backend *)0x1;
	static const uint32_t bad_chunks[] = {1, 256, 511, 3000, 4097, 2u << 20, 0x80000000u};
	char path[256], empty[256];
	uint8_t *content;
	int fd = mk_image("/tmp", path, sizeof(path), 64 * 1024, 71, &content);
	int efd = mk_image("/tmp", empty, sizeof(empty), 100, 1, NULL);
	unsigned i;

	ck_assert_int_eq(vdev_blk_backend_new_cow(NULL, &b), -EINVAL);
	cfg.base_path = path;
	ck_assert_int_eq(vdev_blk_backend_new_cow(&cfg, NULL), -EINVAL);
	for (i = 0; i < VDI_ARRAY_SIZE(bad_chunks); i++) {
		cfg.chunk_size = bad_chunks[i];
		ck_assert_int_eq(vdev_blk_backend_new_cow(&cfg, &b), -EINVAL);
	}
	cfg.chunk_size = 0;
	cfg.struct_size = 2;
	ck_assert_int_eq(vdev_blk_backend_new_cow(&cfg, &b), -EINVAL);
	cfg.struct_size = sizeof(cfg);
	cfg.base_path = NULL;
	ck_assert_int_eq(vdev_blk_backend_new_cow(&cfg, &b), -EINVAL); /* no base */
	cfg.base_fd = 1000000;
	ck_assert_int_eq(vdev_blk_backend_new_cow(&cfg, &b), -EBADF);
	cfg.base_fd = -1;
	cfg.base_path = "/nonexistent/base";
	ck_assert_int_eq(vdev_blk_backend_new_cow(&cfg, &b), -ENOENT);
	cfg.base_path = empty; /* smaller than a sector */
	ck_assert_int_eq(vdev_blk_backend_new_cow(&cfg, &b), -EINVAL);
	/* the overlay must not be the base (it would be truncated) */
	cfg.base_path = path;
	cfg.overlay_path = path;
	ck_assert_int_eq(vdev_blk_backend_new_cow(&cfg, &b), -EINVAL);
	cfg.overlay_path = "/nonexistent/overlay";
	ck_assert_int_eq(vdev_blk_backend_new_cow(&cfg, &b), -ENOENT);
	ck_assert_ptr_eq(b, (vdev_blk_backend *)0x1);
	{
		uint8_t *now = read_whole(fd, 64 * 1024);

		ck_assert(!memcmp(now, content, 64 * 1024));
		free(now);
	}
	ck_assert_int_eq(vdev_blk_backend_cow_reset(NULL), -EINVAL);
	ck_assert_int_eq(vdev_blk_backend_cow_commit(NULL, 1), -EINVAL);

	/* by fd (duplicated: ours can be closed), each power of two accepted */
	cfg.overlay_path = NULL;
	cfg.base_path = NULL;
	cfg.base_fd = fd;
	for (i = 512; i <= (1u << 20); i <<= 1) {
		b = NULL;
		cfg.chunk_size = i;
		ck_assert_int_eq(vdev_blk_backend_new_cow(&cfg, &b), 0);
		ck_assert_uint_eq(vdev_blk_backend_size(b), 64 * 1024);
		ck_assert_ptr_null(vdev_blk_backend_memory_data(b));
		ck_assert_int_eq(vdev_blk_backend_cow_commit(b, -1), -EINVAL);
		vdev_blk_backend_free(b);
	}
	close(fd);
	close(efd);
	unlink(path);
	unlink(empty);
	free(content);
}
END_TEST

START_TEST(cow_busy)
{
	struct cow_row row = {4096, _i, MiB};
	struct vdev_blk_io io, io2, *done[4];
	uint8_t buf[4096], got[4096];
	struct iovec v = {buf, sizeof(buf)};
	struct cow_fx f;
	struct bc_q q, q2;
	int nfd;
	char npath[256];

	cow_fx_open(&f, &row, 81);
	nfd = mk_image("/tmp", npath, sizeof(npath), MiB, 81, NULL);
	bc_q_open(&q, f.b, 0);
	bc_q_open(&q2, f.b, 1);
	memset(&io, 0, sizeof(io));
	io.struct_size = sizeof(io);
	io.op = VDEV_BLK_IO_WRITE;
	io.offset = 8192 + 100;
	io.len = sizeof(buf);
	io.iov = &v;
	io.iovcnt = 1;
	memset(buf, 0x3c, sizeof(buf));
	io2 = io;
	io2.offset = 65536;

	/* enqueued, not submitted */
	ck_assert_int_eq(f.b->ops.enqueue(f.b->opaque, q2.qctx, &io), 0);
	ck_assert_int_eq(vdev_blk_backend_cow_reset(f.b), -EBUSY);
	ck_assert_int_eq(vdev_blk_backend_cow_commit(f.b, nfd), -EBUSY);
	/* submitted, not reaped */
	ck_assert_int_eq(f.b->ops.submit(f.b->opaque, q2.qctx), 0);
	ck_assert_int_eq(vdev_blk_backend_cow_reset(f.b), -EBUSY);
	ck_assert_int_eq(vdev_blk_backend_cow_commit(f.b, nfd), -EBUSY);
	ck_assert_int_eq(f.b->ops.reap(f.b->opaque, q2.qctx, done, 4), 1);
	ck_assert_int_eq(io.result, 0);
	/* the other queue busy */
	ck_assert_int_eq(f.b->ops.enqueue(f.b->opaque, q.qctx, &io2), 0);
	ck_assert_int_eq(vdev_blk_backend_cow_reset(f.b), -EBUSY);
	ck_assert_int_eq(f.b->ops.submit(f.b->opaque, q.qctx), 0);
	ck_assert_int_eq(f.b->ops.reap(f.b->opaque, q.qctx, done, 4), 1);
	ck_assert_int_eq(io2.result, 0);
	/* idle: the commit has both writes, the base copy was random */
	ck_assert_int_eq(vdev_blk_backend_cow_commit(f.b, nfd), 0);
	{
		uint8_t *img = read_whole(nfd, MiB);
		uint8_t *want = malloc(MiB);

		memcpy(want, f.base, MiB);
		memset(want + 8192 + 100, 0x3c, 4096);
		memset(want + 65536, 0x3c, 4096);
		ck_assert(!memcmp(img, want, MiB));
		free(img);
		free(want);
	}
	ck_assert_int_eq(vdev_blk_backend_cow_reset(f.b), 0);
	ck_assert_int_eq(bc_do(&q, VDEV_BLK_IO_READ, 8192, 4096, 1, NULL, got, 0), 0);
	ck_assert(!memcmp(got, f.base + 8192, 4096));
	/* commit after reset writes nothing */
	ck_assert_int_eq(ftruncate(nfd, 0), 0);
	ck_assert_int_eq(vdev_blk_backend_cow_commit(f.b, nfd), 0);
	{
		struct stat st;

		ck_assert_int_eq(fstat(nfd, &st), 0);
		ck_assert_int_eq(st.st_size, 0);
	}
	/* a closed queue no longer counts */
	ck_assert_int_eq(f.b->ops.enqueue(f.b->opaque, q2.qctx, &io), 0);
	ck_assert_int_eq(f.b->ops.submit(f.b->opaque, q2.qctx), 0);
	ck_assert_int_eq(f.b->ops.reap(f.b->opaque, q2.qctx, done, 4), 1);
	bc_q_close(&q2);
	ck_assert_int_eq(vdev_blk_backend_cow_reset(f.b), 0);
	/* commit to an fd that cannot be written */
	{
		int rfd = open(npath, O_RDONLY);

		ck_assert_int_eq(bc_do(&q, VDEV_BLK_IO_WRITE, 0, 512, 1, buf, NULL, 0), 0);
		ck_assert_int_eq(vdev_blk_backend_cow_commit(f.b, rfd), -EBADF);
		close(rfd);
	}
	bc_q_close(&q);
	close(nfd);
	unlink(npath);
	cow_fx_close(&f);
}
END_TEST

/* Reset is instant: no work proportional to what was written. */
START_TEST(cow_reset_big)
{
	struct vdev_blk_cow_config cfg = VDEV_BLK_COW_CONFIG_INIT;
	vdev_blk_backend *b = NULL;
	char path[256];
	int fd = mk_image("/tmp", path, sizeof(path), 0, 1, NULL);
	uint8_t *data = malloc(MiB), got[4096];
	struct bc_q q;
	struct timespec t0, t1;
	unsigned i;

	ck_assert_ptr_nonnull(data);
	/* a sparse 1 GiB base whose last 4 KiB are a pattern */
	bc_fill(data, 4096, 5);
	ck_assert_int_eq(pwrite(fd, data, 4096, (1ull << 30) - 4096), 4096);
	cfg.base_path = path;
	ck_assert_int_eq(vdev_blk_backend_new_cow(&cfg, &b), 0);
	ck_assert_uint_eq(vdev_blk_backend_size(b), 1ull << 30);
	bc_q_open(&q, b, 0);
	memset(data, 0x77, MiB);
	for (i = 0; i < 64; i++)
		ck_assert_int_eq(bc_do(&q, VDEV_BLK_IO_WRITE, (uint64_t)i * 16 * MiB, MiB, 512, data,
				       NULL, 0), 0);
	ck_assert_int_eq(bc_do(&q, VDEV_BLK_IO_WRITE_ZEROES, (1ull << 30) - 4096, 4096, 512, NULL,
			       NULL, 0), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ck_assert_int_eq(vdev_blk_backend_cow_reset(b), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ck_assert_int_lt((t1.tv_sec - t0.tv_sec) * 1000000000ll + (t1.tv_nsec - t0.tv_nsec),
			 100000000ll); /* 100 ms, generous for sanitizers */
	ck_assert_int_eq(bc_do(&q, VDEV_BLK_IO_READ, 0, 4096, 512, NULL, got, 0), 0);
	ck_assert(bc_all(got, 0, 4096));
	ck_assert_int_eq(bc_do(&q, VDEV_BLK_IO_READ, (1ull << 30) - 4096, 4096, 512, NULL, got, 0),
			 0);
	bc_fill(data, 4096, 5);
	ck_assert(!memcmp(got, data, 4096));
	bc_q_close(&q);
	vdev_blk_backend_free(b);
	close(fd);
	unlink(path);
	free(data);
}
END_TEST

/* The overlay file holds the written chunks at their offsets (sparse). */
START_TEST(cow_overlay_file)
{
	struct cow_row row = {4096, 1, MiB + 1024};
	uint8_t data[300], got[4096];
	struct cow_fx f;
	struct bc_q q;
	int ofd;

	cow_fx_open(&f, &row, 91);
	bc_q_open(&q, f.b, 0);
	memset(data, 0xd7, sizeof(data));
	/* mid-sector, inside the last (partial: 1024 bytes) chunk */
	ck_assert_int_eq(bc_do(&q, VDEV_BLK_IO_WRITE, MiB + 700, 300, 1, data, NULL, 0), 0);
	ck_assert_int_eq(bc_do(&q, VDEV_BLK_IO_FLUSH, 0, 0, 1, NULL, NULL, 0), 0);
	ofd = open(f.ov_path, O_RDONLY);
	ck_assert_int_ge(ofd, 0);
	ck_assert_int_eq(pread(ofd, got, 1024, MiB), 1024);
	ck_assert(!memcmp(got, f.base + MiB, 700));
	ck_assert(!memcmp(got + 700, data, 300));
	/* a partial write of a fresh chunk copied the rest from the base */
	ck_assert_int_eq(bc_do(&q, VDEV_BLK_IO_WRITE, 4096 + 1, 10, 1, data, NULL, 0), 0);
	ck_assert_int_eq(pread(ofd, got, 4096, 4096), 4096);
	ck_assert_int_eq(got[0], f.base[4096]);
	ck_assert(!memcmp(got + 1, data, 10));
	ck_assert(!memcmp(got + 11, f.base + 4096 + 11, 4096 - 11));
	/* discard of part of a fresh chunk: copy then zero */
	ck_assert_int_eq(bc_do(&q, VDEV_BLK_IO_DISCARD, 8192 + 512, 1024, 1, NULL, NULL, 0), 0);
	ck_assert_int_eq(bc_do(&q, VDEV_BLK_IO_READ, 8192, 4096, 1, NULL, got, 0), 0);
	ck_assert(!memcmp(got, f.base + 8192, 512));
	ck_assert(bc_all(got + 512, 0, 1024));
	ck_assert(!memcmp(got + 1536, f.base + 8192 + 1536, 4096 - 1536));
	/* reset punches the overlay: it reads as zeros, the disk as the base */
	ck_assert_int_eq(vdev_blk_backend_cow_reset(f.b), 0);
	ck_assert_int_eq(pread(ofd, got, 4096, 4096), 4096);
	ck_assert(bc_all(got, 0, 4096));
	ck_assert_int_eq(bc_do(&q, VDEV_BLK_IO_READ, MiB, 1024, 1, NULL, got, 0), 0);
	ck_assert(!memcmp(got, f.base + MiB, 1024));
	close(ofd);
	bc_q_close(&q);
	cow_fx_close(&f);
}
END_TEST

/* Two queues on two threads writing the two halves of the same fresh chunk,
 * again and again: both halves must survive the copy-up. */
struct race_arg {
	vdev_blk_backend *b;
	void *qctx;
	uint64_t off;
	uint8_t val;
	pthread_barrier_t *bar;
	unsigned iters;
	uint32_t chunk;
};

static void *race_thread(void *p)
{
	struct race_arg *a = p;
	uint8_t *buf = malloc(a->chunk / 2);
	struct iovec v = {buf, a->chunk / 2};
	void *ret = NULL;
	unsigned i;

	if (!buf)
		return (void *)1;
	memset(buf, a->val, a->chunk / 2);
	for (i = 0; i < a->iters; i++) {
		struct vdev_blk_io io = {0}, *done[1];
		volatile unsigned spin;

		io.struct_size = sizeof(io);
		io.op = VDEV_BLK_IO_WRITE;
		io.offset = (uint64_t)i * a->chunk + a->off;
		io.len = a->chunk / 2;
		io.iov = &v;
		io.iovcnt = 1;
		pthread_barrier_wait(a->bar);
		/* stagger the two writers by a varying amount so that every
		 * interleaving of the two copy-ups gets its turn */
		for (spin = 0; spin < ((i * (a->val * 7 + 3)) % 64) * 64; spin++)
			;
		if (a->b->ops.enqueue(a->b->opaque, a->qctx, &io) ||
		    a->b->ops.submit(a->b->opaque, a->qctx) ||
		    a->b->ops.reap(a->b->opaque, a->qctx, done, 1) != 1 || io.result) {
			ret = (void *)1;
			break;
		}
	}
	free(buf);
	return ret;
}

START_TEST(cow_race)
{
	static const uint32_t chunks[] = {4096, 65536};
	uint32_t chunk = chunks[_i / 2];
	struct cow_row row = {chunk, _i % 2, DISK};
	const unsigned iters = (unsigned)(DISK / chunk) - 1;
	uint8_t *got = malloc(chunk);
	pthread_barrier_t bar;
	struct race_arg a[2];
	pthread_t t[2];
	struct cow_fx f;
	struct bc_q q[2];
	unsigned i, k;

	ck_assert_ptr_nonnull(got);
	cow_fx_open(&f, &row, 101);
	ck_assert_int_eq(pthread_barrier_init(&bar, NULL, 2), 0);
	for (k = 0; k < 2; k++) {
		bc_q_open(&q[k], f.b, k);
		a[k].b = f.b;
		a[k].qctx = q[k].qctx;
		a[k].off = k * (chunk / 2);
		a[k].val = (uint8_t)(0x10 + k);
		a[k].bar = &bar;
		a[k].iters = iters;
		a[k].chunk = chunk;
	}
	for (k = 0; k < 2; k++)
		ck_assert_int_eq(pthread_create(&t[k], NULL, race_thread, &a[k]), 0);
	for (k = 0; k < 2; k++) {
		void *res;

		ck_assert_int_eq(pthread_join(t[k], &res), 0);
		ck_assert_ptr_null(res);
	}
	for (i = 0; i < iters; i++) {
		ck_assert_int_eq(bc_do(&q[0], VDEV_BLK_IO_READ, (uint64_t)i * chunk, chunk, 1, NULL,
				       got, 0), 0);
		ck_assert_msg(bc_all(got, 0x10, chunk / 2) && bc_all(got + chunk / 2, 0x11, chunk / 2),
			      "chunk %u: a concurrent copy-up lost a write", i);
	}
	/* the untouched last chunk still reads the base */
	ck_assert_int_eq(bc_do(&q[1], VDEV_BLK_IO_READ, (uint64_t)iters * chunk, chunk, 1, NULL,
			       got, 0), 0);
	ck_assert(!memcmp(got, f.base + (uint64_t)iters * chunk, chunk));
	for (k = 0; k < 2; k++)
		bc_q_close(&q[k]);
	pthread_barrier_destroy(&bar);
	cow_fx_close(&f);
	free(got);
}
END_TEST

static Suite *backends_suite(void)
{
	Suite *s = suite_create("blk-backends");
	TCase *tc;

	tc = tcase_create("memory");
	tcase_set_timeout(tc, 300);
	tcase_add_loop_test(tc, conf_memory, 0, VDI_ARRAY_SIZE(mem_sizes));
	tcase_add_test(tc, memory_args);
	tcase_add_test(tc, memory_data_and_readonly);
	suite_add_tcase(s, tc);

	tc = tcase_create("file");
	tcase_set_timeout(tc, 300);
	tcase_add_loop_test(tc, conf_file, 0, 3);
	tcase_add_loop_test(tc, conf_file_direct, 0, 2);
	tcase_add_test(tc, file_args);
	tcase_add_test(tc, file_sizes);
	tcase_add_test(tc, file_readonly);
	tcase_add_test(tc, file_queue_depth);
	tcase_add_test(tc, file_fault_fsize);
	tcase_add_test(tc, file_fault_short_read);
	suite_add_tcase(s, tc);

	tc = tcase_create("cow");
	tcase_set_timeout(tc, 300);
	tcase_add_loop_test(tc, conf_cow, 0, VDI_ARRAY_SIZE(cow_rows));
	tcase_add_test(tc, cow_args);
	tcase_add_loop_test(tc, cow_busy, 0, 2);
	tcase_add_test(tc, cow_reset_big);
	tcase_add_test(tc, cow_overlay_file);
	tcase_add_loop_test(tc, cow_race, 0, 4);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(backends_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
