/* SPDX-License-Identifier: MIT */
/*
 * The block-backend conformance table, shared by the backend tests (file,
 * memory, cow here; io_uring in its own test). It drives a backend through
 * its ops (white-box: vdev_blk_backend is opaque, backend_internal.h exposes
 * b->ops and b->opaque) and checks every answer against a shadow copy of the
 * disk that the caller provides and that the table keeps current.
 *
 * Usage, inside a Check test:
 *
 *	struct bc_config c = {.b = backend, .shadow = expected, .size = size,
 *			      .align = 1};
 *	bc_run_conformance(&c);
 *
 * align: 1 when the backend takes any byte offset and length; otherwise
 * every offset, length and segment (and buffer address) is a multiple of it
 * (512 for sector-only backends, 4096 for O_DIRECT). chunk: for copy-on-write
 * backends, the chunk size to aim unaligned ios at (0: none).
 *
 * Works for synchronous backends (completion_fd -1: everything is reapable
 * when submit returns) and asynchronous ones (waits on completion_fd).
 */
#ifndef BC_BACKEND_CONFORMANCE_H
#define BC_BACKEND_CONFORMANCE_H

#include <check.h>
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <virtio-dev/blk.h>

#include "backends/backend_internal.h"
#include "internal/util.h"

#define BC_FN static __attribute__((unused))
#define BC_MAXSEG 16u
#define BC_MAX_IO (1u << 20)
#define BC_SENTINEL 0x7eadbeef

struct bc_config {
	vdev_blk_backend *b;
	uint8_t *shadow;  /* expected content of the whole disk; kept current */
	uint64_t size;
	uint32_t align;   /* 1, 512, 4096 ... (0: 512) */
	uint32_t chunk;   /* cow chunk size to aim at (0: none) */
	uint32_t rounds;  /* random rounds (0: 150) */
	uint32_t max_io;  /* largest io (0: 1 MiB, capped to the disk) */
	uint64_t seed;    /* (0: a fixed one) */
};

/* One queue context. */
struct bc_q {
	vdev_blk_backend *b;
	void *qctx;
	int cfd;
};

/* A request with its own buffer and segments. */
struct bc_req {
	struct vdev_blk_io io;
	struct iovec iov[BC_MAXSEG];
	uint8_t *buf;
	uint64_t buflen;
};

/* ---- PRNG ---- */
static uint64_t bc_rng = 0x243f6a8885a308d3ull;

BC_FN uint32_t bc_rand(void)
{
	bc_rng ^= bc_rng << 13;
	bc_rng ^= bc_rng >> 7;
	bc_rng ^= bc_rng << 17;
	return (uint32_t)(bc_rng >> 16);
}

BC_FN uint64_t bc_rand64(void)
{
	return ((uint64_t)bc_rand() << 32) ^ bc_rand();
}

/* uniform in [lo, hi] */
BC_FN uint64_t bc_range(uint64_t lo, uint64_t hi)
{
	return hi <= lo ? lo : lo + bc_rand64() % (hi - lo + 1);
}

BC_FN void bc_fill(uint8_t *p, uint64_t n, uint64_t seed)
{
	uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1, i;

	for (i = 0; i < n; i++) {
		s ^= s << 13;
		s ^= s >> 7;
		s ^= s << 17;
		p[i] = (uint8_t)(s >> 24);
	}
}

/* Do all @n bytes at @p equal @v? (Check's asserts are far too slow per byte.) */
BC_FN int bc_all(const uint8_t *p, uint8_t v, uint64_t n)
{
	uint64_t i;

	for (i = 0; i < n; i++)
		if (p[i] != v)
			return 0;
	return 1;
}

/* FNV-1a, to show a base image is untouched. */
BC_FN uint64_t bc_hash(const uint8_t *p, uint64_t n)
{
	uint64_t h = 0xcbf29ce484222325ull, i;

	for (i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

/* ---- queue contexts and submission ---- */

BC_FN void bc_q_open(struct bc_q *q, vdev_blk_backend *b, uint32_t index)
{
	q->b = b;
	q->qctx = NULL;
	ck_assert_int_eq(b->ops.queue_open(b->opaque, index, &q->qctx), 0);
	q->cfd = b->ops.completion_fd(b->opaque, q->qctx);
	ck_assert_int_ge(q->cfd, -1);
}

BC_FN void bc_q_close(struct bc_q *q)
{
	q->b->ops.queue_close(q->b->opaque, q->qctx);
	q->qctx = NULL;
}

/* Reap what is ready; each io must be one of ours, in flight, and come back once. */
BC_FN unsigned bc_reap_some(struct bc_q *q)
{
	struct vdev_blk_io *done[64];
	unsigned total = 0;
	int n, i;

	do {
		n = q->b->ops.reap(q->b->opaque, q->qctx, done, 64);
		ck_assert_int_ge(n, 0);
		ck_assert_int_le(n, 64);
		for (i = 0; i < n; i++) {
			uint8_t *flag = done[i]->priv;

			ck_assert_ptr_nonnull(flag);
			ck_assert_msg(*flag == 1, "io reaped twice or never enqueued");
			ck_assert_int_ne(done[i]->result, BC_SENTINEL);
			*flag = 2;
		}
		total += (unsigned)n;
	} while (n == 64);
	return total;
}

/* Wait until @inflight ios have come back. */
BC_FN void bc_wait(struct bc_q *q, unsigned *inflight)
{
	time_t deadline = time(NULL) + 30;

	while (*inflight) {
		unsigned n = bc_reap_some(q);

		ck_assert_uint_le(n, *inflight);
		*inflight -= n;
		if (!*inflight || n)
			continue;
		ck_assert_msg(q->cfd >= 0, "synchronous backend: io not finished when submit returned");
		{
			struct pollfd p = {.fd = q->cfd, .events = POLLIN};

			(void)poll(&p, 1, 50);
		}
		ck_assert_msg(time(NULL) < deadline, "ios did not complete in 30 s");
	}
}

/*
 * Run @n ios on @q: enqueue all (on -EAGAIN, submit and reap everything in
 * flight, then retry), submit, wait. A refusal by enqueue becomes the io's
 * result. Every io ends with a result.
 */
BC_FN void bc_exec(struct bc_q *q, struct vdev_blk_io **ios, unsigned n)
{
	uint8_t *flags = calloc(n ? n : 1, 1);
	unsigned inflight = 0, i;

	ck_assert_ptr_nonnull(flags);
	for (i = 0; i < n; i++) {
		ios[i]->priv = &flags[i];
		ios[i]->result = BC_SENTINEL;
		for (;;) {
			int r = q->b->ops.enqueue(q->b->opaque, q->qctx, ios[i]);

			if (r == 0) {
				flags[i] = 1;
				inflight++;
				break;
			}
			if (r == -EAGAIN) {
				ck_assert_msg(inflight > 0, "-EAGAIN with nothing in flight");
				ck_assert_int_eq(q->b->ops.submit(q->b->opaque, q->qctx), 0);
				bc_wait(q, &inflight);
				continue;
			}
			ck_assert_int_lt(r, 0);
			ios[i]->result = r;
			flags[i] = 2;
			break;
		}
	}
	ck_assert_int_eq(q->b->ops.submit(q->b->opaque, q->qctx), 0);
	bc_wait(q, &inflight);
	for (i = 0; i < n; i++) {
		ck_assert_int_eq(flags[i], 2);
		ios[i]->priv = NULL;
	}
	free(flags);
}

BC_FN int bc_exec1(struct bc_q *q, struct vdev_blk_io *io)
{
	bc_exec(q, &io, 1);
	return io->result;
}

/* ---- requests ---- */

/* Split [0, len) into up to @maxseg segments of multiples of @align. */
BC_FN uint32_t bc_split(struct iovec *iov, uint8_t *buf, uint64_t len, uint32_t align,
			uint32_t maxseg)
{
	uint64_t units = len / align, pos = 0;
	uint32_t nseg = (uint32_t)bc_range(1, units < maxseg ? (units ? units : 1) : maxseg), k;

	for (k = 0; k < nseg; k++) {
		uint64_t left = len - pos, take;

		if (k == nseg - 1)
			take = left;
		else
			take = align * bc_range(1, (left / align) - (nseg - 1 - k));
		iov[k].iov_base = buf + pos;
		iov[k].iov_len = (size_t)take;
		pos += take;
	}
	return nseg;
}

BC_FN struct bc_req *bc_req_new(uint32_t op, uint64_t off, uint64_t len, uint32_t align,
				uint32_t maxseg)
{
	struct bc_req *r = calloc(1, sizeof(*r));
	void *p = NULL;

	ck_assert_ptr_nonnull(r);
	r->io.struct_size = sizeof(r->io);
	r->io.op = op;
	r->io.offset = off;
	r->io.len = op == VDEV_BLK_IO_FLUSH ? 0 : len;
	if (op == VDEV_BLK_IO_READ || op == VDEV_BLK_IO_WRITE) {
		r->buflen = len;
		ck_assert_int_eq(posix_memalign(&p, 4096, len ? (size_t)len : 1), 0);
		r->buf = p;
		if (len) {
			r->io.iovcnt = bc_split(r->iov, r->buf, len, align, maxseg);
			r->io.iov = r->iov;
		}
	}
	return r;
}

BC_FN void bc_req_free(struct bc_req *r)
{
	if (!r)
		return;
	free(r->buf);
	free(r);
}

/* Run one request of @op and return its result (write data from @data). */
BC_FN int bc_do(struct bc_q *q, uint32_t op, uint64_t off, uint64_t len, uint32_t align,
		const uint8_t *data, uint8_t *readback, uint32_t flags)
{
	struct bc_req *r = bc_req_new(op, off, len, align, BC_MAXSEG);
	int res;

	r->io.flags = flags;
	if (op == VDEV_BLK_IO_WRITE && data)
		memcpy(r->buf, data, (size_t)len);
	if (op == VDEV_BLK_IO_READ)
		memset(r->buf, 0xa5, (size_t)len);
	res = bc_exec1(q, &r->io);
	if (op == VDEV_BLK_IO_READ && readback)
		memcpy(readback, r->buf, (size_t)len);
	bc_req_free(r);
	return res;
}

/* Read [off, off + len) and compare with the shadow. */
BC_FN void bc_check_range(struct bc_q *q, const struct bc_config *c, uint64_t off, uint64_t len)
{
	uint8_t *got = malloc(len ? (size_t)len : 1);
	uint64_t i;

	ck_assert_ptr_nonnull(got);
	ck_assert_int_eq(bc_do(q, VDEV_BLK_IO_READ, off, len, c->align, NULL, got, 0), 0);
	if (memcmp(got, c->shadow + off, (size_t)len)) {
		for (i = 0; i < len && got[i] == c->shadow[off + i]; i++)
			;
		ck_abort_msg("read of [%llu, +%llu) differs at disk byte %llu: got %02x want %02x",
			     (unsigned long long)off, (unsigned long long)len,
			     (unsigned long long)(off + i), got[i], c->shadow[off + i]);
	}
	free(got);
}

BC_FN void bc_verify_all(struct bc_q *q, const struct bc_config *c)
{
	uint64_t off = 0;

	while (off < c->size) {
		uint64_t n = c->size - off < BC_MAX_IO ? c->size - off : BC_MAX_IO;

		bc_check_range(q, c, off, n);
		off += n;
	}
}

BC_FN void bc_defaults(struct bc_config *c)
{
	ck_assert_ptr_nonnull(c->b);
	ck_assert_ptr_nonnull(c->shadow);
	if (!c->align)
		c->align = 512;
	if (!c->rounds)
		c->rounds = 150;
	if (!c->max_io)
		c->max_io = BC_MAX_IO;
	if (c->max_io > c->size)
		c->max_io = (uint32_t)(c->size / c->align * c->align);
	if (c->seed)
		bc_rng = c->seed;
	ck_assert_uint_eq(vdev_blk_backend_size(c->b), c->size);
	ck_assert_uint_eq(c->size % 512, 0);
}

/* ---- the parts ---- */

/* Fixed patterns: every size class at the start, the end and in between. */
BC_FN void bc_patterns(const struct bc_config *c)
{
	static const uint64_t sizes[] = {512, 1024, 4096, 8192, 65536, 131072, 1u << 20};
	static const uint64_t odd[] = {1, 3, 511, 513, 4095, 4097, 65537};
	uint8_t *data = malloc(BC_MAX_IO + 8192);
	struct bc_q q;
	unsigned i, j;

	ck_assert_ptr_nonnull(data);
	bc_q_open(&q, c->b, 0);
	for (i = 0; i < VDI_ARRAY_SIZE(sizes) + VDI_ARRAY_SIZE(odd); i++) {
		uint64_t len = i < VDI_ARRAY_SIZE(sizes) ? sizes[i] : odd[i - VDI_ARRAY_SIZE(sizes)];
		uint64_t offs[4];

		if (len % c->align || len > c->max_io)
			continue;
		offs[0] = 0;
		offs[1] = c->size - len;
		offs[2] = (c->size / 3) / c->align * c->align;
		offs[3] = c->align == 1 ? (c->size / 2) + 7 : c->align;
		for (j = 0; j < 4; j++) {
			uint64_t off = offs[j];

			if (off + len > c->size)
				continue;
			bc_fill(data, len, len * 131 + j);
			ck_assert_int_eq(bc_do(&q, VDEV_BLK_IO_WRITE, off, len, c->align, data, NULL, 0), 0);
			memcpy(c->shadow + off, data, (size_t)len);
			bc_check_range(&q, c, off, len);
			/* the neighbours are untouched */
			if (off >= c->align)
				bc_check_range(&q, c, off - c->align, c->align);
			if (off + len + c->align <= c->size)
				bc_check_range(&q, c, off + len, c->align);
		}
	}
	ck_assert_int_eq(bc_do(&q, VDEV_BLK_IO_FLUSH, 0, 0, c->align, NULL, NULL, 0), 0);
	bc_q_close(&q);
	free(data);
}

/* Discard and write-zeroes read back as zeros; the rest stays. */
BC_FN void bc_zeroes(const struct bc_config *c)
{
	uint32_t bf = vdev_blk_backend_flags(c->b);
	uint64_t span = c->max_io < 262144 ? c->max_io : 262144;
	uint64_t base = (c->size / 4) / c->align * c->align, a = c->align < 512 ? 512 : c->align;
	uint8_t *data = malloc(span);
	struct bc_q q;
	unsigned k;

	ck_assert_ptr_nonnull(data);
	if (base + span > c->size)
		base = 0;
	bc_q_open(&q, c->b, 0);
	for (k = 0; k < 3; k++) {
		uint32_t op = k == 0 ? VDEV_BLK_IO_DISCARD : VDEV_BLK_IO_WRITE_ZEROES;
		uint32_t fl = k == 2 ? VDEV_BLK_IO_F_UNMAP : 0;
		uint64_t zoff, zlen;

		if (op == VDEV_BLK_IO_DISCARD && !(bf & VDEV_BLK_BACKEND_F_DISCARD))
			continue;
		if (op == VDEV_BLK_IO_WRITE_ZEROES && !(bf & VDEV_BLK_BACKEND_F_WRITE_ZEROES))
			continue;
		bc_fill(data, span, 77 + k);
		ck_assert_int_eq(bc_do(&q, VDEV_BLK_IO_WRITE, base, span, c->align, data, NULL, 0), 0);
		memcpy(c->shadow + base, data, (size_t)span);
		/* Interior, sector-aligned (and unaligned for byte-granular backends). */
		zoff = base + a * (k + 1) + (c->align == 1 ? 100 : 0);
		zlen = span / 2 + (c->align == 1 ? 333 : 0);
		if (zoff + zlen > base + span)
			zlen = base + span - zoff;
		zlen = zlen / c->align * c->align;
		ck_assert_int_eq(bc_do(&q, op, zoff, zlen, c->align, NULL, NULL, fl), 0);
		memset(c->shadow + zoff, 0, (size_t)zlen);
		bc_check_range(&q, c, base, span);
		/* Whole disk-size-crossing ranges: the last sector. */
		ck_assert_int_eq(bc_do(&q, op, c->size - 512, 512, c->align, NULL, NULL, fl), 0);
		memset(c->shadow + c->size - 512, 0, 512);
		bc_check_range(&q, c, c->size >= 4096 ? c->size - 4096 : 0, c->size >= 4096 ? 4096 : c->size);
	}
	bc_q_close(&q);
	free(data);
}

/* Random batches of non-overlapping ios of every kind, checked against the shadow. */
BC_FN void bc_random(const struct bc_config *c)
{
	uint32_t bf = vdev_blk_backend_flags(c->b);
	struct bc_req *reqs[8];
	struct vdev_blk_io *ios[8];
	struct bc_q q;
	unsigned round;

	bc_q_open(&q, c->b, 1);
	for (round = 0; round < c->rounds; round++) {
		unsigned n = (unsigned)bc_range(1, 8), k = 0, i;

		while (k < n) {
			uint32_t pick = bc_rand() % 100, op;
			uint64_t len, off;
			int clash = 0;

			if (pick < 45)
				op = VDEV_BLK_IO_WRITE;
			else if (pick < 80)
				op = VDEV_BLK_IO_READ;
			else if (pick < 88)
				op = VDEV_BLK_IO_DISCARD;
			else if (pick < 96)
				op = VDEV_BLK_IO_WRITE_ZEROES;
			else
				op = VDEV_BLK_IO_FLUSH;
			if ((op == VDEV_BLK_IO_DISCARD && !(bf & VDEV_BLK_BACKEND_F_DISCARD)) ||
			    (op == VDEV_BLK_IO_WRITE_ZEROES && !(bf & VDEV_BLK_BACKEND_F_WRITE_ZEROES)))
				op = VDEV_BLK_IO_WRITE;
			switch (bc_rand() % 4) {
			case 0:
				len = bc_range(1, 8192 / c->align) * c->align;
				break;
			case 1: {
				static const uint64_t cls[] = {512, 4096, 65536, 1u << 20};

				len = cls[bc_rand() % 4];
				break;
			}
			default:
				len = bc_range(1, c->max_io / c->align) * c->align;
				break;
			}
			if (len > c->max_io)
				len = c->max_io / c->align * c->align;
			len = len / c->align * c->align;
			if (!len)
				len = c->align;
			off = bc_range(0, (c->size - len) / c->align) * c->align;
			if (c->chunk && bc_rand() % 2) {
				/* Around chunk boundaries: mid-chunk and mid-sector starts and ends. */
				static const int64_t d[] = {-3, -1, 0, 1, 7, 512, -512};
				int64_t delta = d[bc_rand() % 7];
				uint64_t ck = bc_range(0, c->size / c->chunk);

				off = ck * c->chunk;
				if (delta < 0 && off >= (uint64_t)-delta)
					off -= (uint64_t)-delta;
				else if (delta > 0)
					off += (uint64_t)delta;
				if (bc_rand() % 2)
					len = c->chunk * bc_range(1, 3) + (uint64_t)(bc_rand() % 3) - 1;
				off = off / c->align * c->align;
				len = len / c->align * c->align;
				if (!len)
					len = c->align;
				if (len > c->max_io)
					len = c->max_io;
				if (off + len > c->size)
					off = c->size - len;
			}
			if (op != VDEV_BLK_IO_FLUSH)
				for (i = 0; i < k; i++) {
					const struct vdev_blk_io *o = &reqs[i]->io;

					if (o->op != VDEV_BLK_IO_FLUSH && off < o->offset + o->len &&
					    o->offset < off + len)
						clash = 1;
				}
			if (clash)
				continue;
			reqs[k] = bc_req_new(op, off, len, c->align, BC_MAXSEG);
			if (op == VDEV_BLK_IO_WRITE)
				bc_fill(reqs[k]->buf, len, bc_rand64());
			if (op == VDEV_BLK_IO_READ)
				memset(reqs[k]->buf, 0x5a, (size_t)len);
			if (op == VDEV_BLK_IO_WRITE_ZEROES && bc_rand() % 2)
				reqs[k]->io.flags = VDEV_BLK_IO_F_UNMAP;
			ios[k] = &reqs[k]->io;
			k++;
		}
		bc_exec(&q, ios, n);
		for (i = 0; i < n; i++) {
			struct vdev_blk_io *io = ios[i];

			ck_assert_msg(io->result == 0, "round %u io %u op %u [%llu,+%llu): %d", round, i,
				      io->op, (unsigned long long)io->offset,
				      (unsigned long long)io->len, io->result);
			switch (io->op) {
			case VDEV_BLK_IO_READ:
				ck_assert_msg(!memcmp(reqs[i]->buf, c->shadow + io->offset, (size_t)io->len),
					      "round %u: read [%llu,+%llu) differs", round,
					      (unsigned long long)io->offset,
					      (unsigned long long)io->len);
				break;
			case VDEV_BLK_IO_WRITE:
				memcpy(c->shadow + io->offset, reqs[i]->buf, (size_t)io->len);
				break;
			case VDEV_BLK_IO_DISCARD:
			case VDEV_BLK_IO_WRITE_ZEROES:
				memset(c->shadow + io->offset, 0, (size_t)io->len);
				break;
			default:
				break;
			}
			bc_req_free(reqs[i]);
		}
	}
	bc_q_close(&q);
}

/* Enqueue until -EAGAIN, then submit + reap and carry on. */
BC_FN void bc_eagain(const struct bc_config *c)
{
	const unsigned limit = 1u << 16;
	uint64_t len = c->align < 512 ? 512 : c->align;
	struct bc_req **reqs = calloc(limit, sizeof(*reqs));
	uint8_t *flags = calloc(limit, 1);
	unsigned n = 0, inflight, i;
	struct bc_req *extra;
	struct bc_q q;
	int r = 0;

	ck_assert_ptr_nonnull(reqs);
	ck_assert_ptr_nonnull(flags);
	bc_q_open(&q, c->b, 2);
	while (n < limit) {
		uint64_t off = (n * len) % (c->size - len + 1) / c->align * c->align;

		reqs[n] = bc_req_new(VDEV_BLK_IO_READ, off, len, c->align, 2);
		reqs[n]->io.priv = &flags[n];
		reqs[n]->io.result = BC_SENTINEL;
		r = c->b->ops.enqueue(c->b->opaque, q.qctx, &reqs[n]->io);
		if (r == -EAGAIN)
			break;
		ck_assert_int_eq(r, 0);
		flags[n] = 1;
		n++;
	}
	ck_assert_msg(r == -EAGAIN, "no -EAGAIN after %u enqueues", n);
	ck_assert_uint_gt(n, 0);
	/* still full before anything is submitted */
	ck_assert_int_eq(c->b->ops.enqueue(c->b->opaque, q.qctx, &reqs[n]->io), -EAGAIN);
	ck_assert_int_eq(c->b->ops.submit(c->b->opaque, q.qctx), 0);
	inflight = n;
	bc_wait(&q, &inflight);
	for (i = 0; i < n; i++) {
		ck_assert_int_eq(flags[i], 2);
		ck_assert_int_eq(reqs[i]->io.result, 0);
		ck_assert(!memcmp(reqs[i]->buf, c->shadow + reqs[i]->io.offset, (size_t)len));
	}
	/* room again */
	extra = reqs[n];
	reqs[n] = NULL;
	ck_assert_int_eq(bc_exec1(&q, &extra->io), 0);
	ck_assert(!memcmp(extra->buf, c->shadow + extra->io.offset, (size_t)len));
	bc_req_free(extra);
	for (i = 0; i < n; i++)
		bc_req_free(reqs[i]);
	bc_q_close(&q);
	free(reqs);
	free(flags);
}

/* Anything outside the disk is refused with -EINVAL and touches nothing. */
BC_FN void bc_out_of_range(const struct bc_config *c)
{
	uint32_t bf = vdev_blk_backend_flags(c->b);
	uint64_t a = c->align < 512 ? 512 : c->align;
	const struct {
		uint64_t off, len;
	} bad[] = {
		{c->size - a, 2 * a},
		{c->size, a},
		{c->size + a, a},
		{UINT64_MAX - a + 1, 2 * a},
		{UINT64_MAX & ~(uint64_t)(a - 1), a},
		{0, c->size + a},
	};
	static const uint32_t ops[] = {VDEV_BLK_IO_READ, VDEV_BLK_IO_WRITE, VDEV_BLK_IO_DISCARD,
				       VDEV_BLK_IO_WRITE_ZEROES};
	struct bc_q q;
	unsigned i, j;

	bc_q_open(&q, c->b, 0);
	for (i = 0; i < VDI_ARRAY_SIZE(bad); i++) {
		for (j = 0; j < VDI_ARRAY_SIZE(ops); j++) {
			uint32_t op = ops[j];
			/* a buffer for at most 2 sectors; the io claims more when len is huge */
			uint64_t blen = bad[i].len > 2 * a ? 2 * a : bad[i].len;
			struct bc_req *r;

			if ((op == VDEV_BLK_IO_DISCARD && !(bf & VDEV_BLK_BACKEND_F_DISCARD)) ||
			    (op == VDEV_BLK_IO_WRITE_ZEROES && !(bf & VDEV_BLK_BACKEND_F_WRITE_ZEROES)))
				continue;
			r = bc_req_new(op, bad[i].off, blen, c->align, 2);
			r->io.len = bad[i].len;
			if (bad[i].len != blen && r->io.iovcnt) {
				/* Honest iovecs for the claimed length would need a huge
				 * buffer: skip the data ops for the whole-disk+ case. */
				bc_req_free(r);
				continue;
			}
			if (r->buf)
				memset(r->buf, 0xee, (size_t)blen);
			ck_assert_int_eq(bc_exec1(&q, &r->io), -EINVAL);
			if (op == VDEV_BLK_IO_READ)
				ck_assert_msg(bc_all(r->buf, 0xee, blen), "refused read wrote the buffer");
			bc_req_free(r);
		}
	}
	/* the in-range part of the straddling ios was not touched */
	bc_check_range(&q, c, c->size - 4 * a, 4 * a);
	bc_check_range(&q, c, 0, 4 * a);
	bc_q_close(&q);
}

/* Unknown ops and iovecs that do not add up to len are refused too. */
BC_FN void bc_malformed(const struct bc_config *c)
{
	uint64_t a = c->align < 512 ? 512 : c->align;
	struct bc_req *r;
	struct bc_q q;
	int res;

	bc_q_open(&q, c->b, 0);
	r = bc_req_new(VDEV_BLK_IO_READ, 0, a, c->align, 1);
	r->io.op = 99;
	res = bc_exec1(&q, &r->io);
	ck_assert_int_lt(res, 0);
	bc_req_free(r);

	/* len larger than the iovecs: must not write past the buffer */
	r = bc_req_new(VDEV_BLK_IO_READ, 0, a, c->align, 1);
	r->io.len = 2 * a;
	ck_assert_int_eq(bc_exec1(&q, &r->io), -EINVAL);
	bc_req_free(r);
	r = bc_req_new(VDEV_BLK_IO_WRITE, 0, a, c->align, 1);
	r->io.len = 2 * a;
	ck_assert_int_eq(bc_exec1(&q, &r->io), -EINVAL);
	bc_req_free(r);
	bc_check_range(&q, c, 0, 2 * a);
	bc_q_close(&q);
}

/* What one queue wrote, another reads. */
BC_FN void bc_two_queues(const struct bc_config *c)
{
	uint64_t len = c->max_io < 65536 ? c->max_io : 65536;
	uint64_t off = (c->size / 2) / c->align * c->align;
	uint8_t *data = malloc(len);
	struct bc_q q1, q2;

	ck_assert_ptr_nonnull(data);
	if (off + len > c->size)
		off = 0;
	bc_q_open(&q1, c->b, 0);
	bc_q_open(&q2, c->b, 1);
	bc_fill(data, len, 4242);
	ck_assert_int_eq(bc_do(&q2, VDEV_BLK_IO_WRITE, off, len, c->align, data, NULL, 0), 0);
	memcpy(c->shadow + off, data, (size_t)len);
	bc_check_range(&q1, c, off, len);
	ck_assert_int_eq(bc_do(&q1, VDEV_BLK_IO_FLUSH, 0, 0, c->align, NULL, NULL, 0), 0);
	bc_q_close(&q2);
	bc_q_close(&q1);
	free(data);
}

/* The whole table. */
BC_FN void bc_run_conformance(struct bc_config *c)
{
	struct bc_q q;

	bc_defaults(c);
	bc_q_open(&q, c->b, 0);
	bc_verify_all(&q, c); /* the initial content is what the caller said */
	bc_q_close(&q);
	bc_patterns(c);
	bc_zeroes(c);
	bc_out_of_range(c);
	bc_malformed(c);
	bc_eagain(c);
	bc_two_queues(c);
	bc_random(c);
	bc_q_open(&q, c->b, 0);
	bc_verify_all(&q, c);
	bc_q_close(&q);
}

/*
 * A read-only backend (@shadow: its content): writes, discard and
 * write-zeroes are refused with -EROFS (from enqueue or as the result) and
 * change nothing; reads and flush work.
 */
BC_FN void bc_readonly(vdev_blk_backend *b, const uint8_t *shadow, uint32_t align)
{
	static const uint32_t ops[] = {VDEV_BLK_IO_WRITE, VDEV_BLK_IO_DISCARD,
				       VDEV_BLK_IO_WRITE_ZEROES};
	uint64_t size = vdev_blk_backend_size(b), a = align < 512 ? 512 : align;
	uint8_t *got = malloc(a);
	struct bc_q q;
	unsigned i;

	ck_assert_ptr_nonnull(got);
	ck_assert(vdev_blk_backend_flags(b) & VDEV_BLK_BACKEND_F_READONLY);
	bc_q_open(&q, b, 0);
	for (i = 0; i < VDI_ARRAY_SIZE(ops); i++) {
		uint8_t *data = calloc(1, a);

		ck_assert_int_eq(bc_do(&q, ops[i], 0, a, align, data, NULL, 0), -EROFS);
		ck_assert_int_eq(bc_do(&q, ops[i], size - a, a, align, data, NULL, 0), -EROFS);
		free(data);
	}
	ck_assert_int_eq(bc_do(&q, VDEV_BLK_IO_READ, 0, a, align, NULL, got, 0), 0);
	ck_assert(!memcmp(got, shadow, a));
	ck_assert_int_eq(bc_do(&q, VDEV_BLK_IO_READ, size - a, a, align, NULL, got, 0), 0);
	ck_assert(!memcmp(got, shadow + size - a, a));
	ck_assert_int_eq(bc_do(&q, VDEV_BLK_IO_FLUSH, 0, 0, align, NULL, NULL, 0), 0);
	bc_q_close(&q);
	free(got);
}

#endif
