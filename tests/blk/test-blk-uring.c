/* SPDX-License-Identifier: MIT */
/*
 * The io_uring block backend: the shared backend conformance table (buffered
 * and O_DIRECT), plus what is particular to io_uring: one io_uring_enter per
 * batch, a full ring answering -EAGAIN without losing anything, short
 * transfers resubmitted (a white-box hook clamps completion results, so the
 * real resubmission path runs against real I/O), a file that ends inside the
 * disk, the completion eventfd, read-only refusal and write-zeroes fallbacks.
 *
 * Exits 77 when this kernel refuses io_uring (ENOSYS/EPERM), or when the
 * library was built without liburing.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <virtio-dev/blk.h>

#include "backends/backend_internal.h"
#include "vdi-config.h"

#include "backend-conformance.h"

#if VDI_HAVE_LIBURING
#include <liburing.h>
#endif

/* White-box hooks in lib/backends/uring.c. */
struct vdi_uring_test_stats {
	uint64_t enters, sqes, resubmits;
	uint32_t in_use, depth;
};
int vdi_uring_test_stats(void *qctx, struct vdi_uring_test_stats *st);
int vdi_uring_test_clamp(void *qctx, int64_t max_res);

#define DISK_SIZE (4u << 20)

static uint8_t pattern(uint64_t off)
{
	return (uint8_t)((off * 131u) ^ (off >> 9) ^ 0x5a);
}

/* A DISK_SIZE file in @dir filled with pattern(); returns its path (malloc'd). */
static char *make_image(const char *dir, uint64_t size)
{
	char *path = malloc(256);
	uint8_t *buf = malloc(65536);
	int fd;

	ck_assert_ptr_nonnull(path);
	ck_assert_ptr_nonnull(buf);
	snprintf(path, 256, "%s/vdev-uring-XXXXXX", dir);
	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	for (uint64_t off = 0; off < size; off += 65536) {
		for (uint32_t i = 0; i < 65536; i++)
			buf[i] = pattern(off + i);
		ck_assert_int_eq(pwrite(fd, buf, 65536, (off_t)off), 65536);
	}
	ck_assert_int_eq(ftruncate(fd, (off_t)size), 0);
	close(fd);
	free(buf);
	return path;
}

struct ctx {
	char *path;
	vdev_blk_backend *b;
	void *q;
};

static void ctx_open(struct ctx *c, const char *dir, uint32_t flags, uint32_t depth)
{
	struct vdev_blk_file_config cfg = VDEV_BLK_FILE_CONFIG_INIT;

	c->path = make_image(dir, DISK_SIZE);
	cfg.path = c->path;
	cfg.flags = flags;
	cfg.queue_depth = depth;
	ck_assert_int_eq(vdev_blk_backend_new_uring(&cfg, &c->b), 0);
	ck_assert_uint_eq(vdev_blk_backend_size(c->b), DISK_SIZE);
	ck_assert_int_eq(c->b->ops.queue_open(c->b->opaque, 0, &c->q), 0);
}

static void ctx_close(struct ctx *c)
{
	c->b->ops.queue_close(c->b->opaque, c->q);
	vdev_blk_backend_free(c->b);
	unlink(c->path);
	free(c->path);
}

static struct vdev_blk_io mkio(uint32_t op, uint64_t off, const struct iovec *iov, uint32_t n)
{
	struct vdev_blk_io io = {.struct_size = sizeof(io), .op = op, .offset = off};

	io.iov = iov;
	io.iovcnt = n;
	for (uint32_t i = 0; i < n; i++)
		io.len += iov[i].iov_len;
	io.result = 1; /* must be overwritten */
	return io;
}

/* Wait on the completion fd and reap until @want ios came back; each must
 * come back exactly once (priv counts it). */
static void reap_all(struct ctx *c, uint32_t want)
{
	struct vdev_blk_io *done[64];
	int efd = c->b->ops.completion_fd(c->b->opaque, c->q);
	uint32_t got = 0;

	ck_assert_int_ge(efd, 0);
	while (got < want) {
		struct pollfd p = {.fd = efd, .events = POLLIN};
		int n;

		ck_assert_int_eq(poll(&p, 1, 5000), 1);
		n = c->b->ops.reap(c->b->opaque, c->q, done, 64);
		ck_assert_int_ge(n, 0);
		for (int i = 0; i < n; i++) {
			uintptr_t k = (uintptr_t)done[i]->priv;

			done[i]->priv = (void *)(k + 1);
		}
		got += (uint32_t)n;
	}
	ck_assert_uint_eq(got, want);
}

static void check_pattern(const uint8_t *p, uint64_t off, uint64_t len)
{
	for (uint64_t i = 0; i < len; i++)
		if (p[i] != pattern(off + i))
			ck_abort_msg("byte %llu of read at %llu: %u != %u", (unsigned long long)i,
				     (unsigned long long)off, p[i], pattern(off + i));
}

/* ---- the shared conformance table ------------------------------------- */

static uint8_t *pattern_shadow(uint64_t size)
{
	uint8_t *sh = malloc(size);

	ck_assert_ptr_nonnull(sh);
	for (uint64_t i = 0; i < size; i++)
		sh[i] = pattern(i);
	return sh;
}

static void run_conformance(const char *dir, uint32_t flags, uint32_t align)
{
	struct vdev_blk_file_config cfg = VDEV_BLK_FILE_CONFIG_INIT;
	struct bc_config c = {0};
	vdev_blk_backend *b = NULL;
	char *path = make_image(dir, DISK_SIZE);

	cfg.path = path;
	cfg.flags = flags;
	cfg.queue_depth = 32;
	ck_assert_int_eq(vdev_blk_backend_new_uring(&cfg, &b), 0);
	c.b = b;
	c.shadow = pattern_shadow(DISK_SIZE);
	c.size = DISK_SIZE;
	c.align = align;
	bc_run_conformance(&c);
	vdev_blk_backend_free(b);
	free(c.shadow);
	unlink(path);
	free(path);
}

/* ext4, buffered: any byte offset and length. */
START_TEST(conformance_buffered)
{
	run_conformance("/var/tmp", 0, 1);
}
END_TEST

/* tmpfs: no ZERO_RANGE there, so write-zeroes takes the write fallback. */
START_TEST(conformance_tmpfs)
{
	run_conformance("/dev/shm", 0, 1);
}
END_TEST

START_TEST(conformance_direct)
{
	run_conformance("/var/tmp", VDEV_BLK_FILE_F_DIRECT, 4096);
}
END_TEST

START_TEST(conformance_readonly)
{
	struct vdev_blk_file_config cfg = VDEV_BLK_FILE_CONFIG_INIT;
	vdev_blk_backend *b = NULL;
	char *path = make_image("/var/tmp", DISK_SIZE);
	uint8_t *sh = pattern_shadow(DISK_SIZE);

	cfg.path = path;
	cfg.flags = VDEV_BLK_FILE_F_READONLY;
	ck_assert_int_eq(vdev_blk_backend_new_uring(&cfg, &b), 0);
	bc_readonly(b, sh, 1);
	vdev_blk_backend_free(b);
	cfg.flags = VDEV_BLK_FILE_F_READONLY | VDEV_BLK_FILE_F_DIRECT;
	ck_assert_int_eq(vdev_blk_backend_new_uring(&cfg, &b), 0);
	bc_readonly(b, sh, 4096);
	vdev_blk_backend_free(b);
	free(sh);
	unlink(path);
	free(path);
}
END_TEST

/* ---- io_uring specifics ------------------------------------------------ */

/* N reads enqueued, then one submit: one io_uring_enter for the batch. */
START_TEST(batch_one_enter)
{
	struct ctx c;
	struct vdi_uring_test_stats st;
	enum { N = 32 };
	static uint8_t bufs[N][4096];
	struct iovec iov[N];
	struct vdev_blk_io io[N];

	ctx_open(&c, "/dev/shm", 0, 64);
	for (int i = 0; i < N; i++) {
		iov[i].iov_base = bufs[i];
		iov[i].iov_len = 4096;
		io[i] = mkio(VDEV_BLK_IO_READ, (uint64_t)((i * 37) % 1024) * 4096, &iov[i], 1);
		io[i].priv = NULL;
		ck_assert_int_eq(c.b->ops.enqueue(c.b->opaque, c.q, &io[i]), 0);
	}
	ck_assert_int_eq(vdi_uring_test_stats(c.q, &st), 0);
	ck_assert_uint_eq(st.enters, 0); /* enqueue never enters the kernel */
	ck_assert_int_eq(c.b->ops.submit(c.b->opaque, c.q), 0);
	ck_assert_int_eq(vdi_uring_test_stats(c.q, &st), 0);
	ck_assert_uint_eq(st.enters, 1);
	ck_assert_uint_eq(st.sqes, N);
	reap_all(&c, N);
	for (int i = 0; i < N; i++) {
		ck_assert_int_eq(io[i].result, 0);
		ck_assert_ptr_eq(io[i].priv, (void *)1);
		check_pattern(bufs[i], io[i].offset, 4096);
	}
	/* Submitting nothing costs no system call. */
	ck_assert_int_eq(c.b->ops.submit(c.b->opaque, c.q), 0);
	ck_assert_int_eq(vdi_uring_test_stats(c.q, &st), 0);
	ck_assert_uint_eq(st.enters, 1);
	ck_assert_uint_eq(st.in_use, 0);
	ctx_close(&c);
}
END_TEST

/* A full ring answers -EAGAIN; after submit + reap the rest goes through and
 * every io comes back exactly once with the right data. */
START_TEST(ring_full_eagain)
{
	struct ctx c;
	enum { DEPTH = 8, N = 50 };
	static uint8_t bufs[N][512];
	struct iovec iov[N];
	struct vdev_blk_io io[N];
	struct vdev_blk_io *done[DEPTH];
	int efd, next = 0, completed = 0, eagains = 0;

	ctx_open(&c, "/dev/shm", 0, DEPTH);
	efd = c.b->ops.completion_fd(c.b->opaque, c.q);
	for (int i = 0; i < N; i++) {
		iov[i].iov_base = bufs[i];
		iov[i].iov_len = 512;
		io[i] = mkio(VDEV_BLK_IO_READ, (uint64_t)i * 4096 + 512, &iov[i], 1);
		io[i].priv = NULL;
	}
	while (completed < N) {
		int r;

		while (next < N && (r = c.b->ops.enqueue(c.b->opaque, c.q, &io[next])) == 0)
			next++;
		if (next < N) {
			ck_assert_int_eq(r, -EAGAIN);
			eagains++;
		}
		ck_assert_int_eq(c.b->ops.submit(c.b->opaque, c.q), 0);
		{
			struct pollfd p = {.fd = efd, .events = POLLIN};

			ck_assert_int_eq(poll(&p, 1, 5000), 1);
		}
		/* Reap a few at a time: the fd must stay readable while
		 * completions are left. */
		r = c.b->ops.reap(c.b->opaque, c.q, done, 3);
		ck_assert_int_ge(r, 0);
		for (int i = 0; i < r; i++)
			done[i]->priv = (void *)((uintptr_t)done[i]->priv + 1);
		completed += r;
	}
	ck_assert_int_ge(eagains, N / DEPTH - 1);
	/* The first refusal came exactly when the pool was exhausted. */
	for (int i = 0; i < N; i++) {
		ck_assert_ptr_eq(io[i].priv, (void *)1);
		ck_assert_int_eq(io[i].result, 0);
		check_pattern(bufs[i], io[i].offset, 512);
	}
	ctx_close(&c);
}
END_TEST

START_TEST(ring_full_exact)
{
	struct ctx c;
	enum { DEPTH = 5 };
	static uint8_t bufs[DEPTH + 1][512];
	struct iovec iov[DEPTH + 1];
	struct vdev_blk_io io[DEPTH + 1];

	ctx_open(&c, "/dev/shm", 0, DEPTH);
	for (int i = 0; i <= DEPTH; i++) {
		iov[i].iov_base = bufs[i];
		iov[i].iov_len = 512;
		io[i] = mkio(VDEV_BLK_IO_READ, (uint64_t)i * 512, &iov[i], 1);
		io[i].priv = NULL;
	}
	for (int i = 0; i < DEPTH; i++)
		ck_assert_int_eq(c.b->ops.enqueue(c.b->opaque, c.q, &io[i]), 0);
	ck_assert_int_eq(c.b->ops.enqueue(c.b->opaque, c.q, &io[DEPTH]), -EAGAIN);
	/* Still -EAGAIN after submit alone: the slots are busy until reaped. */
	ck_assert_int_eq(c.b->ops.submit(c.b->opaque, c.q), 0);
	ck_assert_int_eq(c.b->ops.enqueue(c.b->opaque, c.q, &io[DEPTH]), -EAGAIN);
	reap_all(&c, DEPTH);
	ck_assert_int_eq(c.b->ops.enqueue(c.b->opaque, c.q, &io[DEPTH]), 0);
	ck_assert_int_eq(c.b->ops.submit(c.b->opaque, c.q), 0);
	reap_all(&c, 1);
	for (int i = 0; i <= DEPTH; i++) {
		ck_assert_ptr_eq(io[i].priv, (void *)1);
		check_pattern(bufs[i], io[i].offset, 512);
	}
	ctx_close(&c);
}
END_TEST

/* Odd segment sizes (one empty) so that clamped completions stop inside
 * segments, at their ends, and across several of them. */
static const uint32_t seg_len[] = {1000, 5000, 0, 12000, 7, 4089, 30000, 13440};
#define NSEG (sizeof(seg_len) / sizeof(seg_len[0]))

static uint64_t fill_segs(uint8_t *base, struct iovec *iov)
{
	uint64_t total = 0;

	for (uint32_t i = 0; i < NSEG; i++) {
		iov[i].iov_base = base + total + i * 16; /* gaps between segments */
		iov[i].iov_len = seg_len[i];
		total += seg_len[i];
	}
	return total;
}

static void run_clamped(const char *dir, int64_t clamp)
{
	struct ctx c;
	static uint8_t mem[80000], back[80000];
	struct iovec iov[NSEG], saved[NSEG];
	struct vdi_uring_test_stats st;
	struct vdev_blk_io io;
	uint64_t total, pos;
	const uint64_t off = 3 * 4096 + 512;

	ctx_open(&c, dir, 0, 16);
	total = fill_segs(mem, iov);
	ck_assert_uint_eq(total, 65536);
	memcpy(saved, iov, sizeof(iov));
	memset(mem, 0xee, sizeof(mem));
	ck_assert_int_eq(vdi_uring_test_clamp(c.q, clamp), 0);

	/* Read: every byte lands in its segment, gaps stay untouched. */
	io = mkio(VDEV_BLK_IO_READ, off, iov, NSEG);
	io.priv = NULL;
	ck_assert_int_eq(c.b->ops.enqueue(c.b->opaque, c.q, &io), 0);
	ck_assert_int_eq(c.b->ops.submit(c.b->opaque, c.q), 0);
	reap_all(&c, 1);
	ck_assert_int_eq(io.result, 0);
	ck_assert_int_eq(memcmp(saved, iov, sizeof(iov)), 0); /* io's iovecs never touched */
	pos = off;
	for (uint32_t i = 0; i < NSEG; i++) {
		check_pattern(iov[i].iov_base, pos, iov[i].iov_len);
		pos += iov[i].iov_len;
		if (i + 1 < NSEG)
			for (int g = 0; g < 16; g++)
				ck_assert_uint_eq(((uint8_t *)iov[i].iov_base)[iov[i].iov_len + g],
						  0xee);
	}
	ck_assert_int_eq(vdi_uring_test_stats(c.q, &st), 0);
	ck_assert_uint_ge(st.resubmits, 65536 / (uint64_t)clamp - 1);

	/* Write the segments back shifted by one disk block, clamped too. */
	for (uint32_t i = 0; i < NSEG; i++)
		for (uint32_t k = 0; k < iov[i].iov_len; k++)
			((uint8_t *)iov[i].iov_base)[k] ^= 0xff;
	io = mkio(VDEV_BLK_IO_WRITE, 1 << 20, iov, NSEG);
	io.priv = NULL;
	ck_assert_int_eq(c.b->ops.enqueue(c.b->opaque, c.q, &io), 0);
	ck_assert_int_eq(c.b->ops.submit(c.b->opaque, c.q), 0);
	reap_all(&c, 1);
	ck_assert_int_eq(io.result, 0);
	ck_assert_int_eq(memcmp(saved, iov, sizeof(iov)), 0);
	{
		int fd = open(c.path, O_RDONLY);

		ck_assert_int_eq(pread(fd, back, 65536, 1 << 20), 65536);
		close(fd);
	}
	for (uint64_t i = 0; i < 65536; i++)
		ck_assert_uint_eq(back[i], (uint8_t)(pattern(off + i) ^ 0xff));
	ctx_close(&c);
}

START_TEST(short_transfer_resubmit)
{
	run_clamped("/dev/shm", 3000);
	run_clamped("/var/tmp", 4096);
	run_clamped("/dev/shm", 7);
}
END_TEST

/* The image shrinks under the backend: a read beyond the new end but inside
 * the disk is -EIO, one crossing it is -EIO after the short part. */
START_TEST(read_past_eof_inside_disk)
{
	struct ctx c;
	static uint8_t buf[262144];
	struct iovec iov = {buf, sizeof(buf)};
	struct vdev_blk_io a, b2, ok;

	ctx_open(&c, "/dev/shm", 0, 8);
	ck_assert_int_eq(truncate(c.path, 1 << 20), 0);
	a = mkio(VDEV_BLK_IO_READ, 2 << 20, &iov, 1);
	b2 = mkio(VDEV_BLK_IO_READ, (1 << 20) - 65536, &iov, 1);
	a.priv = b2.priv = NULL;
	ck_assert_int_eq(c.b->ops.enqueue(c.b->opaque, c.q, &a), 0);
	ck_assert_int_eq(c.b->ops.enqueue(c.b->opaque, c.q, &b2), 0);
	ck_assert_int_eq(c.b->ops.submit(c.b->opaque, c.q), 0);
	reap_all(&c, 2);
	ck_assert_int_eq(a.result, -EIO);
	ck_assert_int_eq(b2.result, -EIO);
	/* Inside the file still works. */
	ok = mkio(VDEV_BLK_IO_READ, 4096, &iov, 1);
	ok.priv = NULL;
	ck_assert_int_eq(c.b->ops.enqueue(c.b->opaque, c.q, &ok), 0);
	ck_assert_int_eq(c.b->ops.submit(c.b->opaque, c.q), 0);
	reap_all(&c, 1);
	ck_assert_int_eq(ok.result, 0);
	check_pattern(buf, 4096, sizeof(buf));
	ctx_close(&c);
}
END_TEST

/* The completion fd: quiet when idle, readable after a submit, quiet again
 * once everything is reaped (level-triggered polling works). */
START_TEST(completion_eventfd)
{
	struct ctx c;
	static uint8_t buf[4][4096];
	struct iovec iov[4];
	struct vdev_blk_io io[4];
	struct vdev_blk_io *done[4];
	struct pollfd p;
	int efd, n = 0;

	ctx_open(&c, "/var/tmp", 0, 8);
	efd = c.b->ops.completion_fd(c.b->opaque, c.q);
	ck_assert_int_ge(efd, 0);
	p.fd = efd;
	p.events = POLLIN;
	ck_assert_int_eq(poll(&p, 1, 0), 0);
	for (int i = 0; i < 4; i++) {
		iov[i].iov_base = buf[i];
		iov[i].iov_len = 4096;
		io[i] = mkio(VDEV_BLK_IO_READ, (uint64_t)i * 8192, &iov[i], 1);
		ck_assert_int_eq(c.b->ops.enqueue(c.b->opaque, c.q, &io[i]), 0);
	}
	ck_assert_int_eq(poll(&p, 1, 0), 0); /* nothing submitted yet */
	ck_assert_int_eq(c.b->ops.submit(c.b->opaque, c.q), 0);
	ck_assert_int_eq(poll(&p, 1, 5000), 1);
	ck_assert(p.revents & POLLIN);
	while (n < 4) {
		int r;

		ck_assert_int_eq(poll(&p, 1, 5000), 1);
		r = c.b->ops.reap(c.b->opaque, c.q, done + n, 4 - (uint32_t)n);
		ck_assert_int_ge(r, 0);
		n += r;
	}
	ck_assert_int_eq(poll(&p, 1, 0), 0);
	/* Reaping with nothing there returns 0 and keeps it quiet. */
	ck_assert_int_eq(c.b->ops.reap(c.b->opaque, c.q, done, 4), 0);
	ck_assert_int_eq(poll(&p, 1, 0), 0);
	ctx_close(&c);
}
END_TEST

START_TEST(readonly_erofs)
{
	struct ctx c;
	static uint8_t buf[4096];
	struct iovec iov = {buf, sizeof(buf)};
	struct vdev_blk_io w, d, z, r, f;
	struct stat before, after;

	ctx_open(&c, "/dev/shm", VDEV_BLK_FILE_F_READONLY, 8);
	ck_assert_uint_eq(vdev_blk_backend_flags(c.b) & VDEV_BLK_BACKEND_F_READONLY,
			  VDEV_BLK_BACKEND_F_READONLY);
	ck_assert_uint_eq(vdev_blk_backend_flags(c.b) &
				  (VDEV_BLK_BACKEND_F_DISCARD | VDEV_BLK_BACKEND_F_WRITE_ZEROES),
			  0);
	ck_assert_int_eq(stat(c.path, &before), 0);
	memset(buf, 0, sizeof(buf));
	w = mkio(VDEV_BLK_IO_WRITE, 0, &iov, 1);
	d = mkio(VDEV_BLK_IO_DISCARD, 0, NULL, 0);
	d.len = 4096;
	z = mkio(VDEV_BLK_IO_WRITE_ZEROES, 0, NULL, 0);
	z.len = 4096;
	ck_assert_int_eq(c.b->ops.enqueue(c.b->opaque, c.q, &w), -EROFS);
	ck_assert_int_eq(c.b->ops.enqueue(c.b->opaque, c.q, &d), -EROFS);
	ck_assert_int_eq(c.b->ops.enqueue(c.b->opaque, c.q, &z), -EROFS);
	r = mkio(VDEV_BLK_IO_READ, 0, &iov, 1);
	f = mkio(VDEV_BLK_IO_FLUSH, 0, NULL, 0);
	r.priv = f.priv = NULL;
	ck_assert_int_eq(c.b->ops.enqueue(c.b->opaque, c.q, &r), 0);
	ck_assert_int_eq(c.b->ops.enqueue(c.b->opaque, c.q, &f), 0);
	ck_assert_int_eq(c.b->ops.submit(c.b->opaque, c.q), 0);
	reap_all(&c, 2);
	ck_assert_int_eq(r.result, 0);
	check_pattern(buf, 0, 4096);
	ck_assert_int_eq(stat(c.path, &after), 0);
	ck_assert_int_eq(before.st_mtime, after.st_mtime);
	ctx_close(&c);
}
END_TEST

/* Write-zeroes on every path: ZERO_RANGE (ext4), the write-of-zeros
 * fallback (tmpfs has no ZERO_RANGE), PUNCH_HOLE with unmap; discard. */
static void run_zeroes(const char *dir, uint32_t flags)
{
	struct ctx c;
	static uint8_t buf[200704] __attribute__((aligned(4096)));
	struct iovec iov = {buf, 0};
	struct vdev_blk_io z, zu, d, rd;
	const uint64_t zoff = 8192, zlen = 150000 & ~511u, uoff = 1 << 20, ulen = 65536;
	int fd;

	ctx_open(&c, dir, flags, 8);
	z = mkio(VDEV_BLK_IO_WRITE_ZEROES, zoff, NULL, 0);
	z.len = zlen;
	zu = mkio(VDEV_BLK_IO_WRITE_ZEROES, uoff, NULL, 0);
	zu.len = ulen;
	zu.flags = VDEV_BLK_IO_F_UNMAP;
	d = mkio(VDEV_BLK_IO_DISCARD, 2 << 20, NULL, 0);
	d.len = 65536;
	z.priv = zu.priv = d.priv = NULL;
	ck_assert_int_eq(c.b->ops.enqueue(c.b->opaque, c.q, &z), 0);
	ck_assert_int_eq(c.b->ops.enqueue(c.b->opaque, c.q, &zu), 0);
	ck_assert_int_eq(c.b->ops.enqueue(c.b->opaque, c.q, &d), 0);
	ck_assert_int_eq(c.b->ops.submit(c.b->opaque, c.q), 0);
	reap_all(&c, 3);
	ck_assert_int_eq(z.result, 0);
	ck_assert_int_eq(zu.result, 0);
	ck_assert_int_eq(d.result, 0);
	fd = open(c.path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	/* A second write-zeroes after the fallback was learned, through the
	 * backend and read back through it too. */
	z = mkio(VDEV_BLK_IO_WRITE_ZEROES, 3 << 20, NULL, 0);
	z.len = 4096 * 3;
	z.priv = NULL;
	ck_assert_int_eq(c.b->ops.enqueue(c.b->opaque, c.q, &z), 0);
	ck_assert_int_eq(c.b->ops.submit(c.b->opaque, c.q), 0);
	reap_all(&c, 1);
	ck_assert_int_eq(z.result, 0);
	ck_assert_int_eq(pread(fd, buf, 4096 * 4, 3 << 20), 4096 * 4);
	for (uint32_t i = 0; i < 4096 * 3; i++)
		ck_assert_uint_eq(buf[i], 0);
	check_pattern(buf + 4096 * 3, (3 << 20) + 4096 * 3, 4096);
	/* Through the backend: the zeroed range and its neighbours. */
	iov.iov_len = zlen + 8192;
	rd = mkio(VDEV_BLK_IO_READ, zoff - 4096, &iov, 1);
	rd.priv = NULL;
	ck_assert_int_eq(c.b->ops.enqueue(c.b->opaque, c.q, &rd), 0);
	ck_assert_int_eq(c.b->ops.submit(c.b->opaque, c.q), 0);
	reap_all(&c, 1);
	ck_assert_int_eq(rd.result, 0);
	check_pattern(buf, zoff - 4096, 4096);
	for (uint64_t i = 0; i < zlen; i++)
		ck_assert_uint_eq(buf[4096 + i], 0);
	check_pattern(buf + 4096 + zlen, zoff + zlen, 4096);
	ck_assert_int_eq(pread(fd, buf, ulen, (off_t)uoff), (ssize_t)ulen);
	for (uint64_t i = 0; i < ulen; i++)
		ck_assert_uint_eq(buf[i], 0);
	close(fd);
	ck_assert_uint_eq(vdev_blk_backend_size(c.b), DISK_SIZE); /* KEEP_SIZE */
	ctx_close(&c);
}

START_TEST(write_zeroes_paths)
{
	run_zeroes("/var/tmp", 0);
	run_zeroes("/dev/shm", 0);
	run_zeroes("/var/tmp", VDEV_BLK_FILE_F_DIRECT);
}
END_TEST

/* More segments than one readv takes (UIO_MAXIOV): split, not refused. */
START_TEST(many_segments)
{
	struct ctx c;
	enum { NS = 2500 };
	static uint8_t buf[NS * 512];
	static struct iovec iov[NS];
	struct vdev_blk_io io;

	ctx_open(&c, "/dev/shm", 0, 4);
	for (int i = 0; i < NS; i++) {
		iov[i].iov_base = buf + (size_t)(NS - 1 - i) * 512; /* reversed */
		iov[i].iov_len = 512;
	}
	io = mkio(VDEV_BLK_IO_READ, 4096, iov, NS);
	io.priv = NULL;
	ck_assert_int_eq(c.b->ops.enqueue(c.b->opaque, c.q, &io), 0);
	ck_assert_int_eq(c.b->ops.submit(c.b->opaque, c.q), 0);
	reap_all(&c, 1);
	ck_assert_int_eq(io.result, 0);
	for (int i = 0; i < NS; i++)
		check_pattern(iov[i].iov_base, 4096 + (uint64_t)i * 512, 512);
	ctx_close(&c);
}
END_TEST

START_TEST(flush_and_nop)
{
	struct ctx c;
	struct vdev_blk_io f, r0;

	ctx_open(&c, "/var/tmp", 0, 4);
	f = mkio(VDEV_BLK_IO_FLUSH, 0, NULL, 0);
	r0 = mkio(VDEV_BLK_IO_READ, 0, NULL, 0); /* zero length: completes, no transfer */
	f.priv = r0.priv = NULL;
	ck_assert_int_eq(c.b->ops.enqueue(c.b->opaque, c.q, &f), 0);
	ck_assert_int_eq(c.b->ops.enqueue(c.b->opaque, c.q, &r0), 0);
	ck_assert_int_eq(c.b->ops.submit(c.b->opaque, c.q), 0);
	reap_all(&c, 2);
	ck_assert_int_eq(f.result, 0);
	ck_assert_int_eq(r0.result, 0);
	{
		struct vdev_blk_io bad = mkio(77, 0, NULL, 0);

		ck_assert_int_eq(c.b->ops.enqueue(c.b->opaque, c.q, &bad), -EOPNOTSUPP);
	}
	ctx_close(&c);
}
END_TEST

START_TEST(constructor_args)
{
	struct vdev_blk_file_config cfg = VDEV_BLK_FILE_CONFIG_INIT;
	vdev_blk_backend *b = (vdev_blk_backend *)0x1;
	char *path = make_image("/dev/shm", 65536 + 700);
	int fd;

	ck_assert_int_eq(vdev_blk_backend_new_uring(NULL, &b), -EINVAL);
	ck_assert_int_eq(vdev_blk_backend_new_uring(&cfg, NULL), -EINVAL);
	ck_assert_int_eq(vdev_blk_backend_new_uring(&cfg, &b), -EINVAL); /* no path, fd -1 */
	cfg.path = "/nonexistent/vdev-uring";
	ck_assert_int_eq(vdev_blk_backend_new_uring(&cfg, &b), -ENOENT);
	cfg.path = path;
	cfg.flags = 0x80;
	ck_assert_int_eq(vdev_blk_backend_new_uring(&cfg, &b), -EINVAL);
	cfg.flags = 0;
	cfg.queue_depth = 100000;
	ck_assert_int_eq(vdev_blk_backend_new_uring(&cfg, &b), -EINVAL);
	cfg.path = "/dev/shm";
	cfg.queue_depth = 0;
	ck_assert_int_eq(vdev_blk_backend_new_uring(&cfg, &b), -EISDIR);
	ck_assert_ptr_eq(b, (vdev_blk_backend *)0x1); /* untouched on failure */

	/* Size rounds down to whole sectors. */
	cfg.path = path;
	ck_assert_int_eq(vdev_blk_backend_new_uring(&cfg, &b), 0);
	ck_assert_uint_eq(vdev_blk_backend_size(b), 65536 + 512);
	ck_assert_uint_eq(vdev_blk_backend_flags(b),
			  VDEV_BLK_BACKEND_F_DISCARD | VDEV_BLK_BACKEND_F_WRITE_ZEROES);
	vdev_blk_backend_free(b);

	/* From an fd: ours is a separate description, theirs stays open. */
	fd = open(path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	cfg.path = NULL;
	cfg.fd = fd;
	ck_assert_int_eq(vdev_blk_backend_new_uring(&cfg, &b), -EBADF); /* needs O_RDWR */
	cfg.flags = VDEV_BLK_FILE_F_READONLY;
	ck_assert_int_eq(vdev_blk_backend_new_uring(&cfg, &b), 0);
	{
		void *q;
		static uint8_t buf[512];
		struct iovec iov = {buf, 512};
		struct vdev_blk_io io = mkio(VDEV_BLK_IO_READ, 1024, &iov, 1);
		struct vdev_blk_io *done[1];
		struct pollfd p;

		ck_assert_int_eq(b->ops.queue_open(b->opaque, 0, &q), 0);
		ck_assert_int_eq(b->ops.enqueue(b->opaque, q, &io), 0);
		ck_assert_int_eq(b->ops.submit(b->opaque, q), 0);
		p.fd = b->ops.completion_fd(b->opaque, q);
		p.events = POLLIN;
		ck_assert_int_eq(poll(&p, 1, 5000), 1);
		ck_assert_int_eq(b->ops.reap(b->opaque, q, done, 1), 1);
		ck_assert_ptr_eq(done[0], &io);
		ck_assert_int_eq(io.result, 0);
		check_pattern(buf, 1024, 512);
		b->ops.queue_close(b->opaque, q);
	}
	vdev_blk_backend_free(b);
	ck_assert_int_eq(fcntl(fd, F_GETFD), 0 | (fcntl(fd, F_GETFD) & FD_CLOEXEC));
	ck_assert_int_eq(close(fd), 0);
	unlink(path);
	free(path);
}
END_TEST

/* Two queue contexts of one backend are independent rings. */
START_TEST(two_queues)
{
	struct ctx c;
	void *q2;
	static uint8_t a[4096], b2[4096];
	struct iovec ia = {a, 4096}, ib = {b2, 4096};
	struct vdev_blk_io ioa, iob;
	struct vdev_blk_io *done[2];
	struct pollfd p;

	ctx_open(&c, "/dev/shm", 0, 4);
	ck_assert_int_eq(c.b->ops.queue_open(c.b->opaque, 1, &q2), 0);
	ck_assert_int_ne(c.b->ops.completion_fd(c.b->opaque, c.q),
			 c.b->ops.completion_fd(c.b->opaque, q2));
	ioa = mkio(VDEV_BLK_IO_READ, 0, &ia, 1);
	iob = mkio(VDEV_BLK_IO_READ, 8192, &ib, 1);
	ck_assert_int_eq(c.b->ops.enqueue(c.b->opaque, c.q, &ioa), 0);
	ck_assert_int_eq(c.b->ops.enqueue(c.b->opaque, q2, &iob), 0);
	ck_assert_int_eq(c.b->ops.submit(c.b->opaque, q2), 0);
	p.fd = c.b->ops.completion_fd(c.b->opaque, q2);
	p.events = POLLIN;
	ck_assert_int_eq(poll(&p, 1, 5000), 1);
	ck_assert_int_eq(c.b->ops.reap(c.b->opaque, q2, done, 2), 1);
	ck_assert_ptr_eq(done[0], &iob);
	check_pattern(b2, 8192, 4096);
	/* Queue 0's io was never submitted: nothing there. */
	ck_assert_int_eq(c.b->ops.reap(c.b->opaque, c.q, done, 2), 0);
	ck_assert_int_eq(c.b->ops.submit(c.b->opaque, c.q), 0);
	p.fd = c.b->ops.completion_fd(c.b->opaque, c.q);
	ck_assert_int_eq(poll(&p, 1, 5000), 1);
	ck_assert_int_eq(c.b->ops.reap(c.b->opaque, c.q, done, 2), 1);
	ck_assert_ptr_eq(done[0], &ioa);
	check_pattern(a, 0, 4096);
	c.b->ops.queue_close(c.b->opaque, q2);
	ctx_close(&c);
}
END_TEST

static Suite *uring_suite(void)
{
	Suite *s = suite_create("blk-uring");
	TCase *tc = tcase_create("uring");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, conformance_buffered);
	tcase_add_test(tc, conformance_tmpfs);
	tcase_add_test(tc, conformance_direct);
	tcase_add_test(tc, conformance_readonly);
	tcase_add_test(tc, batch_one_enter);
	tcase_add_test(tc, ring_full_eagain);
	tcase_add_test(tc, ring_full_exact);
	tcase_add_test(tc, short_transfer_resubmit);
	tcase_add_test(tc, read_past_eof_inside_disk);
	tcase_add_test(tc, completion_eventfd);
	tcase_add_test(tc, readonly_erofs);
	tcase_add_test(tc, write_zeroes_paths);
	tcase_add_test(tc, many_segments);
	tcase_add_test(tc, flush_and_nop);
	tcase_add_test(tc, constructor_args);
	tcase_add_test(tc, two_queues);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

#if !VDI_HAVE_LIBURING
	printf("SKIP: built without liburing (vdev_blk_backend_new_uring is -EOPNOTSUPP)\n");
	return 77;
#else
	{
		struct io_uring ring;
		int r = io_uring_queue_init(4, &ring, 0);

		if (r == -ENOSYS || r == -EPERM) {
			printf("SKIP: io_uring_queue_init: %s (io_uring disabled on this kernel)\n",
			       strerror(-r));
			return 77;
		}
		if (r == 0)
			io_uring_queue_exit(&ring);
	}
	sr = srunner_create(uring_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
#endif
}
