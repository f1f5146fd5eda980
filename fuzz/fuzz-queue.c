/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the device-side virtqueue: the input is a hostile
 * guest. Layout:
 *
 *   byte 0    flags: bit0 packed, bit1 EVENT_IDX, bit2 INDIRECT,
 *             bit3 misalign the descriptor area (vdev_queue_new must refuse)
 *   byte 1    queue size (split: 1 << (b % 9), packed: 1 + b)
 *   byte 2    iov_cap (b % 80)
 *   byte 3    number of 4-byte operations that follow
 *   ops       {code, a, b, c}: pop / fill / flush / set_notification /
 *             guest write / bogus fill / republish (driver) / state checks,
 *             restore of a ring position (migration)
 *   rest      guest memory image (rings at fixed offsets, then buffers)
 *
 * Invariants checked (a violation aborts, which libFuzzer reports): pop only
 * returns 1 / 0 / -ENOBUFS / -EBADMSG, a broken queue stays broken, every
 * iovec lies inside guest memory and agrees with its guest address, lengths
 * add up, inflight counts what was popped and not filled.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <virtio-dev/mem.h>
#include <virtio-dev/queue.h>

#define A_GPA 0x1000ull
#define A_SIZE 0xc000u /* rings + buffers */
#define B_GPA (A_GPA + A_SIZE)
#define B_SIZE 0x4000u /* adjacent region, separate host memory */
#define RO_GPA 0x100000ull
#define RO_SIZE 0x1000u /* read-only region */

#define DESC_OFF 0x0000u
#define DRV_OFF 0x1000u
#define DEV_OFF 0x2000u

#define MAX_IOV 80
#define MAX_INFLIGHT 64
#define MAX_ITER 300

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c))                                                                          \
			abort();                                                                   \
	} while (0)

struct slot {
	struct vdev_queue_elem e;
	struct iovec iov[MAX_IOV];
	uint64_t gpa[MAX_IOV];
};

struct fz {
	uint8_t *a, *b, *ro;
	vdev_mem *mem;
	vdev_queue *q;
	uint32_t size;
	int packed;
	uint32_t iov_cap;
	struct slot *inflight[MAX_INFLIGHT];
	uint32_t ninflight;
	int broken;
	volatile uint8_t sink;
};

/* The host memory of [gpa, gpa + len) if it lies inside one of our regions. */
static int host_ok(struct fz *f, const void *p, uint64_t gpa, uint64_t len)
{
	const uint8_t *h = p;

	if (gpa >= A_GPA && gpa + len <= A_GPA + A_SIZE && len <= A_SIZE)
		return h == f->a + (gpa - A_GPA);
	if (gpa >= B_GPA && gpa + len <= B_GPA + B_SIZE && len <= B_SIZE)
		return h == f->b + (gpa - B_GPA);
	if (gpa >= RO_GPA && gpa + len <= RO_GPA + RO_SIZE && len <= RO_SIZE)
		return h == f->ro + (gpa - RO_GPA);
	return 0;
}

static void check_elem(struct fz *f, struct slot *s)
{
	const struct vdev_queue_elem *e = &s->e;
	uint64_t out = 0, in = 0;
	uint32_t i;

	CHECK(e->out_num + e->in_num <= f->iov_cap);
	for (i = 0; i < e->out_num + e->in_num; i++) {
		const struct iovec *v = &s->iov[i];
		CHECK(v->iov_len > 0);
		CHECK(host_ok(f, v->iov_base, s->gpa[i], v->iov_len));
		if (i < e->out_num) {
			/* touch every readable byte */
			uint8_t x = 0;
			for (size_t k = 0; k < v->iov_len; k++)
				x ^= ((const uint8_t *)v->iov_base)[k];
			f->sink = x;
			out += v->iov_len;
		} else {
			CHECK(!(s->gpa[i] >= RO_GPA && s->gpa[i] < RO_GPA + RO_SIZE));
			memset(v->iov_base, 0xa5, v->iov_len);
			in += v->iov_len;
		}
	}
	CHECK(out == e->out_len);
	CHECK(in == e->in_len);
	CHECK(out + in <= 0xffffffffull);
	if (!f->packed)
		CHECK(e->id < f->size);
	else
		CHECK(e->ndescs >= 1 && e->ndescs <= f->size);
}

static void note_broken(struct fz *f, int r)
{
	if (r == -EBADMSG) {
		f->broken = 1;
		CHECK(vdev_queue_is_broken(f->q) < 0);
	}
}

/* One pop; returns what pop returned. */
static int do_pop(struct fz *f)
{
	struct slot *s = malloc(sizeof(*s));
	struct vdev_queue_elem z = VDEV_QUEUE_ELEM_INIT;
	int r;

	CHECK(s != NULL);
	s->e = z;
	s->e.iov = s->iov;
	s->e.gpa = s->gpa;
	s->e.iov_cap = f->iov_cap;
	r = vdev_queue_pop(f->q, &s->e);
	if (r == -ENOBUFS) {
		CHECK(!f->broken);
		CHECK(vdev_queue_inflight(f->q) == f->ninflight);
		s->e.iov_cap = f->iov_cap = MAX_IOV;
		r = vdev_queue_pop(f->q, &s->e);
	}
	CHECK(r == 1 || r == 0 || r == -ENOBUFS || r == -EBADMSG);
	if (f->broken)
		CHECK(r == -EBADMSG);
	note_broken(f, r);
	if (r != 1) {
		free(s);
		return r;
	}
	check_elem(f, s);
	if (f->ninflight == MAX_INFLIGHT) {
		r = vdev_queue_fill(f->q, &s->e, (uint32_t)s->e.in_len);
		CHECK(r == 0);
		free(s);
		return 1;
	}
	f->inflight[f->ninflight++] = s;
	CHECK(vdev_queue_inflight(f->q) == f->ninflight);
	return 1;
}

static void do_fill(struct fz *f, uint32_t which, uint32_t len)
{
	struct slot *s;
	int r;

	if (f->ninflight == 0)
		return;
	which %= f->ninflight;
	s = f->inflight[which];
	r = vdev_queue_fill(f->q, &s->e, len);
	if (f->broken) {
		CHECK(r == -EBADMSG);
		return;
	}
	CHECK(r == 0);
	free(s);
	f->inflight[which] = f->inflight[--f->ninflight];
	CHECK(vdev_queue_inflight(f->q) == f->ninflight);
}

static void do_flush(struct fz *f)
{
	int r = vdev_queue_flush(f->q);

	if (f->broken)
		CHECK(r == -EBADMSG);
	else
		CHECK(r == 0 || r == 1);
}

/*
 * A driver making more buffers available, so that runs get past the first
 * lap: split re-offers head o[1]; packed copies 1..4 template descriptors
 * from the image (offset TPL_OFF) to where the device reads next, with the
 * avail/used bits of the current lap.
 */
#define TPL_OFF 0x3800u

static void republish(struct fz *f, const uint8_t *o)
{
	struct vdev_queue_state st = VDEV_QUEUE_STATE_INIT;

	if (vdev_queue_get_state(f->q, &st) < 0)
		return;
	if (!f->packed) {
		uint16_t idx;
		uint16_t head = (uint16_t)(o[1] % f->size);
		memcpy(&idx, f->a + DRV_OFF + 2, 2);
		memcpy(f->a + DRV_OFF + 4 + 2 * (idx % f->size), &head, 2);
		idx = (uint16_t)(idx + 1);
		memcpy(f->a + DRV_OFF + 2, &idx, 2);
	} else {
		uint32_t n = 1u + o[1] % 4u, k;
		uint32_t slot = st.last_avail_idx, wrap = st.avail_wrap;
		uint8_t d[16];
		uint16_t fl;

		if (slot >= f->size)
			return;
		for (k = n; k-- > 0;) {
			uint32_t sl = slot + k, w = wrap;
			if (sl >= f->size) {
				sl -= f->size;
				w ^= 1;
			}
			if (sl >= f->size)
				continue;
			memcpy(d, f->a + TPL_OFF + 16 * ((o[2] + k) % 64), 16);
			memcpy(&fl, d + 14, 2);
			fl &= (uint16_t)~(0x8080u | 1u);
			if (k + 1 < n)
				fl |= 1; /* NEXT */
			fl |= (uint16_t)(w ? 0x80u : 0x8000u);
			memcpy(d + 14, &fl, 2);
			memcpy(f->a + DESC_OFF + 16 * sl, d, 16);
		}
	}
}

/*
 * Migration: with nothing in flight, flush and restore a ring position taken
 * from the input (in range or not); the guest's ring then no longer matches
 * it, which must still only ever break the queue. set_state must refuse
 * exactly the out-of-range positions and round-trip the others.
 */
static void restore_state(struct fz *f, const uint8_t *o)
{
	struct vdev_queue_state st = VDEV_QUEUE_STATE_INIT, got = VDEV_QUEUE_STATE_INIT;
	int r, bad;

	if (f->broken)
		return;
	r = vdev_queue_flush(f->q);
	CHECK(r == 0 || r == 1);
	if (f->packed) {
		st.last_avail_idx = (uint16_t)(o[2] % (f->size + 1));
		st.used_idx = (uint16_t)(o[3] % (f->size + 1));
		st.avail_wrap = (uint8_t)(o[1] >> 1 & 3);
		st.used_wrap = (uint8_t)(o[1] >> 3 & 3);
		bad = st.last_avail_idx >= f->size || st.used_idx >= f->size || st.avail_wrap > 1 ||
		      st.used_wrap > 1;
	} else {
		st.last_avail_idx = (uint16_t)(o[2] | o[3] << 8);
		st.used_idx = (uint16_t)(st.last_avail_idx - (o[1] >> 1) % (f->size + 2));
		bad = (uint16_t)(st.last_avail_idx - st.used_idx) > f->size;
	}
	r = vdev_queue_set_state(f->q, &st);
	CHECK(r == (bad ? -EINVAL : 0));
	if (bad)
		return;
	CHECK(vdev_queue_get_state(f->q, &got) == 0);
	CHECK(got.last_avail_idx == st.last_avail_idx && got.used_idx == st.used_idx);
	if (f->packed)
		CHECK(got.avail_wrap == st.avail_wrap && got.used_wrap == st.used_wrap);
}

static void run_ops(struct fz *f, const uint8_t *ops, uint32_t nops)
{
	for (uint32_t i = 0; i < nops; i++) {
		const uint8_t *o = ops + 4 * i;
		int r;

		switch (o[0] % 11) {
		case 0:
		case 1:
		case 2:
			do_pop(f);
			break;
		case 3:
			do_fill(f, o[1], (uint32_t)o[2] | (uint32_t)o[3] << 8);
			break;
		case 4:
			do_flush(f);
			break;
		case 5:
			r = vdev_queue_set_notification(f->q, o[1] & 1);
			if (f->broken)
				CHECK(r == -EBADMSG);
			else
				CHECK(r == 0 || r == 1 || r == -EBADMSG);
			note_broken(f, r);
			break;
		case 6: {
			/* the guest changes a byte of the rings meanwhile */
			uint32_t off = ((uint32_t)o[1] | (uint32_t)(o[2] & 0x3f) << 8) % 0x3000u;
			f->a[off] = o[3];
			break;
		}
		case 7:
			r = vdev_queue_has_avail(f->q);
			if (f->broken)
				CHECK(r == -EBADMSG);
			else
				CHECK(r == 0 || r == 1 || r == -EBADMSG);
			note_broken(f, r);
			break;
		case 8: {
			/* a bogus token: never accepted */
			struct slot s;
			struct vdev_queue_elem z = VDEV_QUEUE_ELEM_INIT;
			s.e = z;
			s.e.iov = s.iov;
			s.e.gpa = s.gpa;
			s.e.iov_cap = MAX_IOV;
			s.e.id = (uint32_t)o[1] | (uint32_t)o[2] << 8 | (uint32_t)o[3] << 16;
			s.e.ndescs = o[3];
			int in_flight = 0;
			for (uint32_t k = 0; k < f->ninflight; k++)
				if (f->inflight[k]->e.id == s.e.id)
					in_flight = 1;
#ifdef FUZZ_QUEUE_LENIENT_PACKED_FILL
			/* known, reported: packed fill does not check the id */
			if (f->packed)
				in_flight = 1;
#endif
			if (!in_flight) {
				r = vdev_queue_fill(f->q, &s.e, 0);
				CHECK(r == (f->broken ? -EBADMSG : -EINVAL));
			}
			break;
		}
		case 9:
			republish(f, o);
			break;
		default: {
			struct vdev_queue_state st = VDEV_QUEUE_STATE_INIT;
			CHECK(vdev_queue_get_state(f->q, &st) == 0);
			if (f->packed) {
				CHECK(st.last_avail_idx < f->size && st.used_idx < f->size);
				CHECK(st.avail_wrap <= 1 && st.used_wrap <= 1);
			}
			if (f->ninflight)
				CHECK(vdev_queue_set_state(f->q, &st) == -EBUSY);
			else if (o[1] & 1)
				restore_state(f, o);
			break;
		}
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f;
	struct vdev_queue_config qc = VDEV_QUEUE_CONFIG_INIT;
	uint32_t nops, i;
	size_t img, hdr;

	if (size < 4)
		return 0;
	memset(&f, 0, sizeof(f));
	f.packed = data[0] & 1;
	f.size = f.packed ? 1u + data[1] : 1u << (data[1] % 9);
	f.iov_cap = data[2] % MAX_IOV;
	nops = data[3];
	hdr = 4 + 4 * (size_t)nops;
	if (hdr > size) {
		nops = (uint32_t)((size - 4) / 4);
		hdr = 4 + 4 * (size_t)nops;
	}

	/* exact-size allocations so ASan sees any overrun */
	f.a = calloc(1, A_SIZE);
	f.b = calloc(1, B_SIZE);
	f.ro = calloc(1, RO_SIZE);
	CHECK(f.a && f.b && f.ro);
	img = size - hdr;
	memcpy(f.a, data + hdr, img < A_SIZE ? img : A_SIZE);
	if (img > A_SIZE)
		memcpy(f.b, data + hdr + A_SIZE, img - A_SIZE < B_SIZE ? img - A_SIZE : B_SIZE);
	memset(f.ro, 0x5a, RO_SIZE);
	CHECK(vdev_mem_new(&f.mem) == 0);
	CHECK(vdev_mem_add_region(f.mem, A_GPA, A_SIZE, f.a, 0) == 0);
	CHECK(vdev_mem_add_region(f.mem, B_GPA, B_SIZE, f.b, 0) == 0);
	CHECK(vdev_mem_add_region(f.mem, RO_GPA, RO_SIZE, f.ro, VDEV_MEM_F_READONLY) == 0);

	qc.size = f.size;
	qc.flags = (f.packed ? VDEV_QUEUE_F_PACKED : 0) | (data[0] & 2 ? VDEV_QUEUE_F_EVENT_IDX : 0) |
		   (data[0] & 4 ? VDEV_QUEUE_F_INDIRECT : 0);
	qc.desc_addr = A_GPA + DESC_OFF + (data[0] & 8 ? 8 : 0);
	qc.driver_addr = A_GPA + DRV_OFF;
	qc.device_addr = A_GPA + DEV_OFF;
	if (vdev_queue_new(&qc, f.mem, &f.q) != 0) {
		CHECK(data[0] & 8);
		goto out;
	}
	CHECK(!(data[0] & 8));
	CHECK(vdev_queue_size(f.q) == f.size);

	run_ops(&f, data + 4, nops);

	/* Drain: the usual device loop, bounded. */
	for (i = 0; i < MAX_ITER; i++) {
		int r = do_pop(&f);
		if (r != 1)
			break;
		do_fill(&f, f.ninflight - 1, 0xffffffffu);
		if ((i & 7) == 7)
			do_flush(&f);
	}
	while (f.ninflight) {
		if (f.broken) {
			free(f.inflight[--f.ninflight]);
			continue;
		}
		do_fill(&f, 0, 1);
	}
	do_flush(&f);
	(void)vdev_queue_set_notification(f.q, 1);

out:
	for (i = 0; i < f.ninflight; i++)
		free(f.inflight[i]);
	vdev_queue_free(f.q);
	vdev_mem_free(f.mem);
	free(f.a);
	free(f.b);
	free(f.ro);
	return 0;
}
