/* SPDX-License-Identifier: MIT */
/*
 * Functional tests of the device-side virtqueue (vdev_queue), driven by the
 * library's own driver side (vdev_drv / vdev_drvq) over fake guest memory.
 *
 * The driver runs over a tiny emulated transport (registers in a struct);
 * its queue_setup records the ring addresses and the test attaches a
 * vdev_queue to them with vdev_queue_new. Every functional case runs twice:
 * loop index 0 = split ring, 1 = packed ring.
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include <virtio-dev/driver.h>
#include <virtio-dev/mem.h>
#include <virtio-dev/queue.h>

#include "internal/util.h"

#define GPA_BASE 0x100000ull
#define MEM_SIZE (4u << 20)
#define ARENA_SIZE (2u << 20)
#define DATA_GPA (GPA_BASE + ARENA_SIZE)
#define DATA_SIZE ((uint64_t)MEM_SIZE - ARENA_SIZE)
#define PAGE 4096u

#define F_EVENT_IDX (1ull << VIRTIO_RING_F_EVENT_IDX)
#define F_INDIRECT (1ull << VIRTIO_RING_F_INDIRECT_DESC)
#define F_PACKED (1ull << VIRTIO_F_RING_PACKED)
#define F_V1 (1ull << VIRTIO_F_VERSION_1)

#define MAXSEG 32
#define MAXIOV 64

/* ---- small deterministic PRNG ---- */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state >> 16);
}

static uint32_t rnd_range(uint32_t lo, uint32_t hi) /* inclusive */
{
	return lo + rnd() % (hi - lo + 1);
}

/* ---- fixture: fake guest memory + emulated transport + both queue sides ---- */
struct fx {
	uint8_t *buf;
	vdev_mem *mem;
	vdev_drv *drv;
	vdev_drvq *dq;
	vdev_queue *q;
	int packed;
	uint32_t size;
	uint32_t indirect_max;
	uint64_t want;
	uint32_t qflags;
	/* emulated device registers */
	uint32_t status;
	uint64_t drv_features;
	int setup_done;
	uint32_t setup_size;
	uint64_t desc, drv_area, dev_area;
	unsigned kicks;
	uint64_t data_next;
	/* device-side mirror: split = free-running used idx, packed = used slots */
	uint64_t used_lin;
	uint64_t avail_lin; /* split: avail idx, packed: avail slots consumed */
};

static struct fx *FX(void *t)
{
	return t;
}

static uint32_t tr_get_status(void *t)
{
	return FX(t)->status;
}

static void tr_set_status(void *t, uint32_t s)
{
	FX(t)->status = s;
	if (s == 0)
		FX(t)->drv_features = 0;
}

static uint64_t offered_features(void)
{
	return F_V1 | F_PACKED | F_EVENT_IDX | F_INDIRECT;
}

static uint32_t tr_get_device_features(void *t, uint32_t page)
{
	if (page == 0)
		return (uint32_t)offered_features();
	if (page == 1)
		return (uint32_t)(offered_features() >> 32);
	return 0;
}

static void tr_set_driver_features(void *t, uint32_t page, uint32_t v)
{
	if (page == 0)
		FX(t)->drv_features = (FX(t)->drv_features & ~0xffffffffull) | v;
	else if (page == 1)
		FX(t)->drv_features = (FX(t)->drv_features & 0xffffffffull) | ((uint64_t)v << 32);
}

static uint32_t tr_queue_max_size(void *t, uint32_t queue)
{
	return queue == 0 ? VDEV_QUEUE_MAX_SIZE : 0;
}

static int tr_queue_setup(void *t, uint32_t queue, uint32_t size, uint64_t desc,
			  uint64_t driver, uint64_t device)
{
	struct fx *f = t;

	if (queue != 0)
		return -ENODEV;
	f->setup_done = 1;
	f->setup_size = size;
	f->desc = desc;
	f->drv_area = driver;
	f->dev_area = device;
	return 0;
}

static void tr_queue_notify(void *t, uint32_t queue)
{
	FX(t)->kicks++;
}

static uint32_t tr_config_generation(void *t)
{
	return 0;
}

static uint32_t tr_config_read(void *t, uint32_t off, uint32_t width)
{
	return 0;
}

static void tr_config_write(void *t, uint32_t off, uint32_t width, uint32_t v)
{
}

static const struct vdev_drv_transport_ops tr_ops = {
	.struct_size = sizeof(struct vdev_drv_transport_ops),
	.get_status = tr_get_status,
	.set_status = tr_set_status,
	.get_device_features = tr_get_device_features,
	.set_driver_features = tr_set_driver_features,
	.queue_max_size = tr_queue_max_size,
	.queue_setup = tr_queue_setup,
	.queue_notify = tr_queue_notify,
	.config_generation = tr_config_generation,
	.config_read = tr_config_read,
	.config_write = tr_config_write,
};

static uint64_t drv_negotiate(vdev_drv *drv, void *opaque, uint64_t offered)
{
	return (FX(opaque)->want | F_V1) & offered;
}

static int drv_pre_init(vdev_drv *drv, void *opaque)
{
	struct fx *f = opaque;

	return vdev_drv_queue_setup(drv, 0, f->size, f->indirect_max, &f->dq);
}

static const struct vdev_driver_ops drv_ops = {
	.struct_size = sizeof(struct vdev_driver_ops),
	.negotiate_features = drv_negotiate,
	.pre_device_initialization = drv_pre_init,
};

static void *host(struct fx *f, uint64_t gpa)
{
	ck_assert(gpa >= GPA_BASE && gpa < GPA_BASE + MEM_SIZE);
	return f->buf + (gpa - GPA_BASE);
}

static uint16_t rd16(struct fx *f, uint64_t gpa)
{
	uint16_t v;

	memcpy(&v, host(f, gpa), 2);
	return vdi_le16(v);
}

static void wr16(struct fx *f, uint64_t gpa, uint16_t v)
{
	v = vdi_le16(v);
	memcpy(host(f, gpa), &v, 2);
}

/* Split ring field addresses. */
static uint64_t avail_flags_gpa(struct fx *f)
{
	return f->drv_area;
}
static uint64_t used_event_gpa(struct fx *f)
{
	return f->drv_area + 4 + 2ull * f->size;
}
static uint64_t used_flags_gpa(struct fx *f)
{
	return f->dev_area;
}
static uint64_t used_idx_gpa(struct fx *f)
{
	return f->dev_area + 2;
}
static uint64_t avail_event_gpa(struct fx *f)
{
	return f->dev_area + 4 + 8ull * f->size;
}

/*
 * Bring up driver and device queue. @want: features beyond VERSION_1 the
 * driver accepts (F_PACKED is added for packed).
 */
static void fx_init(struct fx *f, int packed, uint32_t size, uint64_t want, uint32_t indirect_max)
{
	struct vdev_drv_config dc = VDEV_DRV_CONFIG_INIT;
	struct vdev_queue_config qc = VDEV_QUEUE_CONFIG_INIT;
	uint64_t feat;

	memset(f, 0, sizeof(*f));
	f->packed = packed;
	f->size = size;
	f->want = want | (packed ? F_PACKED : 0);
	f->indirect_max = indirect_max;
	f->buf = aligned_alloc(PAGE, MEM_SIZE);
	ck_assert_ptr_nonnull(f->buf);
	memset(f->buf, 0, MEM_SIZE);
	ck_assert_int_eq(vdev_mem_new(&f->mem), 0);
	ck_assert_int_eq(vdev_mem_add_region(f->mem, GPA_BASE, MEM_SIZE, f->buf, 0), 0);

	dc.transport = &tr_ops;
	dc.transport_opaque = f;
	dc.driver = &drv_ops;
	dc.driver_opaque = f;
	dc.arena = f->buf;
	dc.arena_gpa = GPA_BASE;
	dc.arena_size = ARENA_SIZE;
	ck_assert_int_eq(vdev_drv_new(&dc, &f->drv), 0);
	ck_assert_int_eq(vdev_drv_start(f->drv), 0);
	ck_assert_ptr_nonnull(f->dq);
	ck_assert(f->setup_done);
	ck_assert_uint_eq(f->setup_size, size);
	ck_assert_uint_eq(vdev_drvq_size(f->dq), size);
	ck_assert(f->status & VIRTIO_CONFIG_S_DRIVER_OK);

	feat = vdev_drv_features(f->drv);
	ck_assert_uint_eq(feat, f->want | F_V1);
	ck_assert_uint_eq(f->drv_features, feat);
	f->qflags = 0;
	if (feat & F_PACKED)
		f->qflags |= VDEV_QUEUE_F_PACKED;
	if (feat & F_EVENT_IDX)
		f->qflags |= VDEV_QUEUE_F_EVENT_IDX;
	if (feat & F_INDIRECT)
		f->qflags |= VDEV_QUEUE_F_INDIRECT;

	qc.size = f->setup_size;
	qc.flags = f->qflags;
	qc.desc_addr = f->desc;
	qc.driver_addr = f->drv_area;
	qc.device_addr = f->dev_area;
	ck_assert_int_eq(vdev_queue_new(&qc, f->mem, &f->q), 0);
	ck_assert_ptr_nonnull(f->q);
	ck_assert_uint_eq(vdev_queue_size(f->q), size);
	ck_assert_int_eq(vdev_queue_is_broken(f->q), 0);
	ck_assert_uint_eq(vdev_queue_inflight(f->q), 0);
	f->data_next = DATA_GPA;
}

static void fx_fini(struct fx *f)
{
	vdev_queue_free(f->q);
	vdev_drv_free(f->drv);
	vdev_mem_free(f->mem);
	free(f->buf);
}

static uint64_t fx_alloc(struct fx *f, uint32_t len)
{
	uint64_t a;

	if (f->data_next + len + 64 > DATA_GPA + DATA_SIZE)
		f->data_next = DATA_GPA;
	a = f->data_next;
	f->data_next = (a + len + 63) & ~63ull;
	return a;
}

/* ---- requests ---- */
struct req {
	uint32_t nout, nin;
	uint64_t addr[MAXSEG];
	uint32_t len[MAXSEG];
	uint32_t seed;
	uint64_t out_len, in_len;
	uint32_t written;
	int popped, done;
	struct iovec iov[MAXIOV];
	uint64_t gpa[MAXIOV];
	struct vdev_queue_elem elem;
};

static uint8_t pat(uint32_t seed, uint32_t seg, uint64_t i)
{
	return (uint8_t)(seed * 131u + seg * 17u + (uint32_t)i * 7u + (uint32_t)(i >> 8));
}

static uint8_t wpat(uint32_t seed, uint64_t i)
{
	return (uint8_t)(seed * 29u + (uint32_t)i * 13u + 5u);
}

/* Prepare a request with the given segment lengths; readable ones filled. */
static void req_prep(struct fx *f, struct req *r, uint32_t nout, uint32_t nin, const uint32_t *lens,
		     uint32_t seed)
{
	uint32_t s;

	memset(r, 0, sizeof(*r));
	r->nout = nout;
	r->nin = nin;
	r->seed = seed;
	for (s = 0; s < nout + nin; s++) {
		r->len[s] = lens[s];
		r->addr[s] = fx_alloc(f, lens[s] ? lens[s] : 1);
		if (s < nout) {
			uint8_t *p = host(f, r->addr[s]);
			for (uint32_t i = 0; i < lens[s]; i++)
				p[i] = pat(seed, s, i);
			r->out_len += lens[s];
		} else {
			memset(host(f, r->addr[s]), 0xee, lens[s]);
			r->in_len += lens[s];
		}
	}
}

static void req_rand(struct fx *f, struct req *r, uint32_t nseg, uint32_t seed)
{
	uint32_t lens[MAXSEG], nout;

	for (uint32_t s = 0; s < nseg; s++)
		lens[s] = rnd_range(1, 600);
	nout = rnd_range(0, nseg);
	req_prep(f, r, nout, nseg - nout, lens, seed);
}

static int req_submit(struct fx *f, struct req *r, uint32_t flags)
{
	return vdev_drvq_add(f->dq, r->addr, r->len, r->nout, r->nin, r, flags);
}

static void elem_setup(struct vdev_queue_elem *e, struct iovec *iov, uint64_t *gpa, uint32_t cap)
{
	struct vdev_queue_elem z = VDEV_QUEUE_ELEM_INIT;

	*e = z;
	e->iov_cap = cap;
	e->iov = iov;
	e->gpa = gpa;
}

/*
 * Device side: pop the chain belonging to @r (the next available one) and
 * check what the device sees against what the driver submitted.
 */
static void dev_pop_check(struct fx *f, struct req *r)
{
	uint32_t s, k;
	uint64_t off;

	elem_setup(&r->elem, r->iov, r->gpa, MAXIOV);
	ck_assert_int_eq(vdev_queue_pop(f->q, &r->elem), 1);
	r->popped = 1;
	ck_assert_uint_eq(r->elem.out_len, r->out_len);
	ck_assert_uint_eq(r->elem.in_len, r->in_len);
	ck_assert_uint_le(r->elem.out_num + r->elem.in_num, MAXIOV);
	if (!f->packed)
		ck_assert_uint_lt(r->elem.id, f->size);
	f->avail_lin += f->packed ? r->elem.ndescs : 1;

	/* Walk the iovecs against the segments (one region: one iov per
	 * non-empty segment). */
	k = 0;
	for (s = 0; s < r->nout + r->nin; s++) {
		if (r->len[s] == 0)
			continue;
		ck_assert_uint_lt(k, r->elem.out_num + r->elem.in_num);
		ck_assert_uint_eq(r->iov[k].iov_len, r->len[s]);
		ck_assert_uint_eq(r->gpa[k], r->addr[s]);
		ck_assert_ptr_eq(r->iov[k].iov_base, host(f, r->addr[s]));
		if (s < r->nout) {
			const uint8_t *p = r->iov[k].iov_base;
			uint32_t bad = UINT32_MAX;
			ck_assert_uint_lt(k, r->elem.out_num);
			for (uint32_t i = 0; i < r->len[s] && bad == UINT32_MAX; i++)
				if (p[i] != pat(r->seed, s, i))
					bad = i;
			ck_assert_msg(bad == UINT32_MAX, "segment %u byte %u differs", s, bad);
		} else {
			ck_assert_uint_ge(k, r->elem.out_num);
		}
		k++;
	}
	ck_assert_uint_eq(k, r->elem.out_num + r->elem.in_num);

	/* The device writes a pattern over (part of) the writable area. */
	r->written = r->in_len ? (uint32_t)rnd_range(0, (uint32_t)r->in_len) : 0;
	off = 0;
	for (k = r->elem.out_num; k < r->elem.out_num + r->elem.in_num; k++) {
		uint8_t *p = r->iov[k].iov_base;
		for (size_t i = 0; i < r->iov[k].iov_len; i++, off++)
			if (off < r->written)
				p[i] = wpat(r->seed, off);
	}
}

static void dev_fill(struct fx *f, struct req *r)
{
	ck_assert_int_eq(vdev_queue_fill(f->q, &r->elem, r->written), 0);
	f->used_lin += f->packed ? r->elem.ndescs : 1;
}

/* Driver side: collect one used buffer and check it. */
static struct req *drv_collect(struct fx *f)
{
	void *tok = NULL;
	uint32_t len = 0xdeadbeef;
	struct req *r;
	uint64_t off = 0;

	ck_assert_int_eq(vdev_drvq_get_used(f->dq, &tok, &len), 1);
	r = tok;
	ck_assert_ptr_nonnull(r);
	ck_assert(r->popped && !r->done);
	ck_assert_uint_eq(len, r->written);
	for (uint32_t s = r->nout; s < r->nout + r->nin; s++) {
		const uint8_t *p = host(f, r->addr[s]);
		uint32_t bad = UINT32_MAX;
		for (uint32_t i = 0; i < r->len[s]; i++, off++)
			if (bad == UINT32_MAX && p[i] != (off < r->written ? wpat(r->seed, off) : 0xee))
				bad = i;
		ck_assert_msg(bad == UINT32_MAX, "writable segment %u byte %u wrong", s, bad);
	}
	r->done = 1;
	return r;
}

static void drv_none(struct fx *f)
{
	void *tok;
	uint32_t len;

	ck_assert_int_eq(vdev_drvq_get_used(f->dq, &tok, &len), 0);
}

/* Whether the chain just popped for @r was indirect (read from the ring). */
static int was_indirect(struct fx *f, struct req *r)
{
	struct vring_desc d;

	if (!f->packed) {
		memcpy(&d, host(f, f->desc + 16ull * r->elem.id), sizeof(d));
		return !!(vdi_le16(d.flags) & VRING_DESC_F_INDIRECT);
	}
	return r->elem.ndescs == 1 && r->nout + r->nin > 1;
}

/* ---- tests ---- */

/* One request at a time, 1..N descriptors, direct and indirect, all
 * readable / all writable / mixed. */
START_TEST(chains_1_to_n)
{
	struct fx f;
	static struct req r;
	const uint32_t N = 16;

	fx_init(&f, _i, 64, F_INDIRECT, N);
	for (uint32_t n = 1; n <= N; n++) {
		for (int indirect = 0; indirect < 2; indirect++) {
			for (int mix = 0; mix < 3; mix++) {
				uint32_t lens[MAXSEG], nout;
				int st;

				for (uint32_t s = 0; s < n; s++)
					lens[s] = rnd_range(1, 3000);
				nout = mix == 0 ? n : mix == 1 ? 0 : (n + 1) / 2;
				req_prep(&f, &r, nout, n - nout, lens, n * 7 + (uint32_t)mix);
				ck_assert_int_eq(req_submit(&f, &r, indirect ? 0 : VDEV_DRVQ_ADD_NO_INDIRECT), 0);
				ck_assert_int_eq(vdev_queue_has_avail(f.q), 1);
				dev_pop_check(&f, &r);
				if (n > 1)
					ck_assert_msg(was_indirect(&f, &r) == indirect,
						      "n=%u indirect=%d: ring shows indirect=%d", n, indirect,
						      was_indirect(&f, &r));
				if (f.packed && !indirect)
					ck_assert_uint_eq(r.elem.ndescs, n);
				ck_assert_uint_eq(vdev_queue_inflight(f.q), 1);
				{
					struct vdev_queue_elem e2;
					struct iovec iov2[4];
					uint64_t g2[4];
					elem_setup(&e2, iov2, g2, 4);
					ck_assert_int_eq(vdev_queue_pop(f.q, &e2), 0);
				}
				dev_fill(&f, &r);
				ck_assert_uint_eq(vdev_queue_inflight(f.q), 0);
				st = vdev_queue_flush(f.q);
				ck_assert_int_ge(st, 0);
				drv_collect(&f);
				drv_none(&f);
			}
		}
	}
	ck_assert_int_eq(vdev_queue_is_broken(f.q), 0);
	fx_fini(&f);
}
END_TEST

/*
 * Batches: random chains until the ring is full, pop everything, complete in
 * a random order (out-of-order completion), flush once, collect.
 */
START_TEST(batch_out_of_order)
{
	struct fx f;
	static struct req reqs[64];
	struct req *order[64];
	uint32_t rounds;

	fx_init(&f, _i, 32, F_INDIRECT, 8);
	for (rounds = 0; rounds < 300; rounds++) {
		uint32_t n = 0, i;

		while (n < 64) {
			uint32_t nseg = rnd_range(1, 6);
			uint32_t fl = rnd() & 1 ? VDEV_DRVQ_ADD_NO_INDIRECT : 0;
			int r;

			req_rand(&f, &reqs[n], nseg, rounds * 64 + n);
			r = req_submit(&f, &reqs[n], fl);
			if (r == -ENOSPC)
				break;
			ck_assert_int_eq(r, 0);
			n++;
		}
		ck_assert_uint_gt(n, 0);
		vdev_drvq_kick(f.dq);
		for (i = 0; i < n; i++)
			dev_pop_check(&f, &reqs[i]);
		{
			struct vdev_queue_elem e;
			struct iovec iov[4];
			uint64_t g[4];
			elem_setup(&e, iov, g, 4);
			ck_assert_int_eq(vdev_queue_pop(f.q, &e), 0);
		}
		ck_assert_uint_eq(vdev_queue_inflight(f.q), n);
		for (i = 0; i < n; i++)
			order[i] = &reqs[i];
		for (i = n - 1; i > 0; i--) {
			uint32_t j = rnd() % (i + 1);
			struct req *t = order[i];
			order[i] = order[j];
			order[j] = t;
		}
		for (i = 0; i < n; i++) {
			dev_fill(&f, order[i]);
			ck_assert_uint_eq(vdev_queue_inflight(f.q), n - i - 1);
		}
		ck_assert_int_ge(vdev_queue_flush(f.q), 0);
		/* The driver sees them in completion order. */
		for (i = 0; i < n; i++)
			ck_assert_ptr_eq(drv_collect(&f), order[i]);
		drv_none(&f);
		ck_assert_uint_eq(vdev_drvq_num_free(f.dq), f.size);
	}
	fx_fini(&f);
}
END_TEST

/* More than 65,536 requests through a small queue: 16-bit index wrap and
 * (packed, odd size) wrap counters. Partial batches so positions drift. */
START_TEST(index_wrap)
{
	struct fx f;
	static struct req reqs[8];
	uint32_t total = 0;
	struct vdev_queue_state st = VDEV_QUEUE_STATE_INIT;

	fx_init(&f, _i, _i ? 7 : 8, 0, 0);
	while (total < 70000) {
		uint32_t n = rnd_range(1, 3), i, k = 0;

		for (i = 0; i < n; i++) {
			uint32_t lens[2] = {rnd_range(1, 64), rnd_range(1, 64)};
			uint32_t nseg = rnd_range(1, 2);
			req_prep(&f, &reqs[i], 1, nseg - 1, lens, total + i);
			if (req_submit(&f, &reqs[i], 0) != 0)
				break;
			k++;
		}
		ck_assert_uint_gt(k, 0);
		for (i = 0; i < k; i++)
			dev_pop_check(&f, &reqs[i]);
		for (i = k; i-- > 0;)
			dev_fill(&f, &reqs[i]);
		ck_assert_int_ge(vdev_queue_flush(f.q), 0);
		for (i = k; i-- > 0;)
			ck_assert_ptr_eq(drv_collect(&f), &reqs[i]);
		total += k;
	}
	ck_assert_int_eq(vdev_queue_get_state(f.q, &st), 0);
	if (!f.packed) {
		ck_assert_uint_eq(st.used_idx, (uint16_t)f.used_lin);
		ck_assert_uint_eq(st.last_avail_idx, (uint16_t)f.used_lin);
		ck_assert_uint_eq(rd16(&f, used_idx_gpa(&f)), (uint16_t)f.used_lin);
	} else {
		ck_assert_uint_eq(st.used_idx, f.used_lin % f.size);
		ck_assert_uint_eq(st.used_wrap, 1 ^ ((f.used_lin / f.size) & 1));
		ck_assert_uint_eq(st.last_avail_idx, f.avail_lin % f.size);
		ck_assert_uint_eq(st.avail_wrap, 1 ^ ((f.avail_lin / f.size) & 1));
		ck_assert_uint_eq(f.avail_lin, f.used_lin);
	}
	ck_assert_uint_gt(f.used_lin, 65536);
	ck_assert_int_eq(vdev_queue_is_broken(f.q), 0);
	fx_fini(&f);
}
END_TEST

/* The spec's expected used-buffer notification, packed: did [old, new) (in
 * used ring slots, linear from 0 with wrap counter starting at 1) pass the
 * descriptor off_wrap names? */
static int packed_event_hit(uint32_t size, uint16_t off_wrap, uint64_t old_lin, uint64_t new_lin)
{
	uint32_t off = off_wrap & 0x7fffu, w = off_wrap >> 15;

	for (uint64_t p = old_lin; p < new_lin; p++)
		if (p % size == off && (1u ^ ((p / size) & 1u)) == w)
			return 1;
	return 0;
}

/* EVENT_IDX: flush's decision against the spec formula for many random
 * used_event / off_wrap values and batch sizes. */
START_TEST(event_idx_used)
{
	struct fx f;
	static struct req reqs[16];
	uint32_t iter, ones = 0, zeros = 0;

	fx_init(&f, _i, 16, F_EVENT_IDX, 0);
	for (iter = 0; iter < 3000; iter++) {
		uint32_t n = rnd_range(1, 16), i, k = 0;
		uint64_t old = f.used_lin;
		int expect, got;

		for (i = 0; i < n; i++) {
			uint32_t len[2] = {rnd_range(1, 32), rnd_range(1, 32)};
			req_prep(&f, &reqs[i], 1, rnd() & 1, len, iter * 16 + i);
			if (req_submit(&f, &reqs[i], 0) != 0)
				break;
			k++;
		}
		ck_assert_uint_gt(k, 0);
		for (i = 0; i < k; i++)
			dev_pop_check(&f, &reqs[i]);
		for (i = 0; i < k; i++)
			dev_fill(&f, &reqs[i]);

		if (!f.packed) {
			uint16_t ue;
			uint32_t m = rnd() % 4;

			if (m == 0)
				ue = (uint16_t)rnd();
			else
				ue = (uint16_t)(old + rnd_range(0, 2 * k + 2) - 2);
			wr16(&f, used_event_gpa(&f), ue);
			expect = vdi_need_event(ue, (uint16_t)f.used_lin, (uint16_t)old);
		} else {
			uint16_t ow;
			uint32_t m = rnd() % 4;

			if (m == 0) {
				ow = (uint16_t)rnd();
			} else {
				uint64_t p = old + rnd_range(0, 2 * f.size) - f.size / 2;
				if (p > (1ull << 62))
					p = 0;
				ow = (uint16_t)((p % f.size) | ((1u ^ ((p / f.size) & 1u)) << 15));
			}
			wr16(&f, f.drv_area, ow);
			wr16(&f, f.drv_area + 2, VRING_PACKED_EVENT_FLAG_DESC);
			expect = packed_event_hit(f.size, ow, old, f.used_lin);
		}
		got = vdev_queue_flush(f.q);
		/* An offset outside the ring names no descriptor: the spec gives
		 * no answer, notifying is the safe choice; accept either. */
		if (f.packed && (rd16(&f, f.drv_area) & 0x7fffu) >= f.size)
			expect = got;
		ck_assert_msg(got == expect, "iter %u: flush returned %d, spec says %d (old %llu new %llu event %#x)",
			      iter, got, expect, (unsigned long long)old, (unsigned long long)f.used_lin,
			      f.packed ? rd16(&f, f.drv_area) : rd16(&f, used_event_gpa(&f)));
		if (got)
			ones++;
		else
			zeros++;
		/* A second flush with nothing filled does not notify. */
		ck_assert_int_eq(vdev_queue_flush(f.q), 0);
		for (i = 0; i < k; i++)
			ck_assert_ptr_eq(drv_collect(&f), &reqs[i]);
	}
	ck_assert_uint_gt(ones, 100);
	ck_assert_uint_gt(zeros, 100);
	fx_fini(&f);
}
END_TEST

/* Batch fill + flush: nothing is published before flush and the whole batch
 * gets exactly one decision. */
START_TEST(batch_one_decision)
{
	struct fx f;
	static struct req reqs[5];
	uint32_t i;
	struct vring_packed_desc d0;

	fx_init(&f, _i, 16, F_EVENT_IDX, 0);
	for (i = 0; i < 5; i++) {
		uint32_t len[1] = {100};
		req_prep(&f, &reqs[i], 0, 1, len, i);
		ck_assert_int_eq(req_submit(&f, &reqs[i], 0), 0);
	}
	for (i = 0; i < 5; i++)
		dev_pop_check(&f, &reqs[i]);
	/* Ask for an interrupt when the third entry is used. */
	if (!f.packed)
		wr16(&f, used_event_gpa(&f), 2);
	else {
		wr16(&f, f.drv_area, 2 | (1u << 15));
		wr16(&f, f.drv_area + 2, VRING_PACKED_EVENT_FLAG_DESC);
	}
	memcpy(&d0, host(&f, f.desc), sizeof(d0));
	for (i = 0; i < 5; i++)
		dev_fill(&f, &reqs[i]);
	/* Not published yet. */
	if (!f.packed)
		ck_assert_uint_eq(rd16(&f, used_idx_gpa(&f)), 0);
	else {
		struct vring_packed_desc d;
		memcpy(&d, host(&f, f.desc), sizeof(d));
		ck_assert_uint_eq(vdi_le16(d.flags), vdi_le16(d0.flags));
	}
	drv_none(&f);
	ck_assert_int_eq(vdev_queue_flush(f.q), 1);
	ck_assert_int_eq(vdev_queue_flush(f.q), 0);
	if (!f.packed)
		ck_assert_uint_eq(rd16(&f, used_idx_gpa(&f)), 5);
	for (i = 0; i < 5; i++)
		ck_assert_ptr_eq(drv_collect(&f), &reqs[i]);

	/* Event entry already passed by the previous batch: no interrupt for
	 * this batch. */
	for (i = 0; i < 3; i++) {
		uint32_t len[1] = {10};
		req_prep(&f, &reqs[i], 0, 1, len, 10 + i);
		ck_assert_int_eq(req_submit(&f, &reqs[i], 0), 0);
	}
	for (i = 0; i < 3; i++)
		dev_pop_check(&f, &reqs[i]);
	if (!f.packed)
		wr16(&f, used_event_gpa(&f), 2);
	else {
		wr16(&f, f.drv_area, 2 | (1u << 15));
		wr16(&f, f.drv_area + 2, VRING_PACKED_EVENT_FLAG_DESC);
	}
	for (i = 0; i < 3; i++)
		dev_fill(&f, &reqs[i]);
	ck_assert_int_eq(vdev_queue_flush(f.q), 0);
	for (i = 0; i < 3; i++)
		ck_assert_ptr_eq(drv_collect(&f), &reqs[i]);
	fx_fini(&f);
}
END_TEST

/* Without EVENT_IDX: used-buffer notifications follow NO_INTERRUPT / the
 * driver event flags; kicks follow NO_NOTIFY / the device event flags. */
START_TEST(flag_suppression)
{
	struct fx f;
	static struct req r;
	uint32_t len[1] = {64};

	fx_init(&f, _i, 8, 0, 0);

	/* Device -> driver: interrupts. */
	ck_assert_int_eq(vdev_drvq_enable_interrupts(f.dq, 0), 0);
	if (!f.packed)
		ck_assert(rd16(&f, avail_flags_gpa(&f)) & VRING_AVAIL_F_NO_INTERRUPT);
	else
		ck_assert_uint_eq(rd16(&f, f.drv_area + 2), VRING_PACKED_EVENT_FLAG_DISABLE);
	req_prep(&f, &r, 1, 0, len, 1);
	ck_assert_int_eq(req_submit(&f, &r, 0), 0);
	dev_pop_check(&f, &r);
	dev_fill(&f, &r);
	ck_assert_int_eq(vdev_queue_flush(f.q), 0);
	drv_collect(&f);

	ck_assert_int_eq(vdev_drvq_enable_interrupts(f.dq, 1), 0);
	if (!f.packed)
		ck_assert(!(rd16(&f, avail_flags_gpa(&f)) & VRING_AVAIL_F_NO_INTERRUPT));
	else
		ck_assert_uint_eq(rd16(&f, f.drv_area + 2), VRING_PACKED_EVENT_FLAG_ENABLE);
	req_prep(&f, &r, 1, 0, len, 2);
	ck_assert_int_eq(req_submit(&f, &r, 0), 0);
	dev_pop_check(&f, &r);
	dev_fill(&f, &r);
	ck_assert_int_eq(vdev_queue_flush(f.q), 1);
	drv_collect(&f);

	/* Enabling interrupts with used buffers pending reports them. */
	ck_assert_int_eq(vdev_drvq_enable_interrupts(f.dq, 0), 0);
	req_prep(&f, &r, 1, 0, len, 3);
	ck_assert_int_eq(req_submit(&f, &r, 0), 0);
	dev_pop_check(&f, &r);
	dev_fill(&f, &r);
	ck_assert_int_eq(vdev_queue_flush(f.q), 0);
	ck_assert_int_eq(vdev_drvq_enable_interrupts(f.dq, 1), 1);
	drv_collect(&f);

	/* Driver -> device: kicks. */
	ck_assert_int_eq(vdev_queue_set_notification(f.q, 0), 0);
	if (!f.packed)
		ck_assert(rd16(&f, used_flags_gpa(&f)) & VRING_USED_F_NO_NOTIFY);
	else
		ck_assert_uint_eq(rd16(&f, f.dev_area + 2), VRING_PACKED_EVENT_FLAG_DISABLE);
	req_prep(&f, &r, 1, 0, len, 4);
	ck_assert_int_eq(req_submit(&f, &r, 0), 0);
	f.kicks = 0;
	ck_assert_int_eq(vdev_drvq_kick(f.dq), 0);
	ck_assert_uint_eq(f.kicks, 0);
	/* Re-enabling sees the buffer that arrived meanwhile. */
	ck_assert_int_eq(vdev_queue_set_notification(f.q, 1), 1);
	if (!f.packed)
		ck_assert(!(rd16(&f, used_flags_gpa(&f)) & VRING_USED_F_NO_NOTIFY));
	else
		ck_assert_uint_eq(rd16(&f, f.dev_area + 2), VRING_PACKED_EVENT_FLAG_ENABLE);
	dev_pop_check(&f, &r);
	dev_fill(&f, &r);
	ck_assert_int_eq(vdev_queue_flush(f.q), 1);
	drv_collect(&f);
	ck_assert_int_eq(vdev_queue_set_notification(f.q, 1), 0);
	req_prep(&f, &r, 1, 0, len, 5);
	ck_assert_int_eq(req_submit(&f, &r, 0), 0);
	ck_assert_int_eq(vdev_drvq_kick(f.dq), 1);
	ck_assert_uint_eq(f.kicks, 1);
	dev_pop_check(&f, &r);
	dev_fill(&f, &r);
	ck_assert_int_eq(vdev_queue_flush(f.q), 1);
	drv_collect(&f);
	fx_fini(&f);
}
END_TEST

/* Avail slot position of the device's next read, linear (packed). */
static uint16_t packed_avail_offwrap(struct fx *f)
{
	return (uint16_t)((f->avail_lin % f->size) | ((1u ^ ((f->avail_lin / f->size) & 1u)) << 15));
}

/* With EVENT_IDX, disabling right after re-arming stops the very next kick
 * too (a device that polls must get no kicks at all, not one per batch). */
START_TEST(event_idx_disable_after_arm)
{
	struct fx f;
	static struct req reqs[4];
	uint32_t len[1] = {32};

	fx_init(&f, _i, 16, F_EVENT_IDX, 0);
	ck_assert_int_eq(vdev_queue_set_notification(f.q, 1), 0);
	ck_assert_int_eq(vdev_queue_set_notification(f.q, 0), 0);
	f.kicks = 0;
	for (int i = 0; i < 3; i++) {
		req_prep(&f, &reqs[i], 1, 0, len, (uint32_t)i);
		ck_assert_int_eq(req_submit(&f, &reqs[i], 0), 0);
		ck_assert_int_eq(vdev_drvq_kick(f.dq), 0);
	}
	ck_assert_uint_eq(f.kicks, 0);
	/* Re-arming sees them, and the next buffer after that kicks again. */
	ck_assert_int_eq(vdev_queue_set_notification(f.q, 1), 1);
	for (int i = 0; i < 3; i++)
		dev_pop_check(&f, &reqs[i]);
	ck_assert_int_eq(vdev_queue_set_notification(f.q, 1), 0);
	req_prep(&f, &reqs[3], 1, 0, len, 3);
	ck_assert_int_eq(req_submit(&f, &reqs[3], 0), 0);
	ck_assert_int_eq(vdev_drvq_kick(f.dq), 1);
	dev_pop_check(&f, &reqs[3]);
	for (int i = 0; i < 4; i++)
		dev_fill(&f, &reqs[i]);
	ck_assert_int_ge(vdev_queue_flush(f.q), 0);
	for (int i = 0; i < 4; i++)
		drv_collect(&f);
	fx_fini(&f);
}
END_TEST

/* With EVENT_IDX: the device's avail_event is written and respected. */
START_TEST(event_idx_kick)
{
	struct fx f;
	static struct req reqs[16];
	uint32_t len[1] = {32};
	uint32_t iter;

	fx_init(&f, _i, 16, F_EVENT_IDX, 0);

	ck_assert_int_eq(vdev_queue_set_notification(f.q, 1), 0);
	if (!f.packed)
		ck_assert_uint_eq(rd16(&f, avail_event_gpa(&f)), 0);
	else {
		ck_assert_uint_eq(rd16(&f, f.dev_area + 2), VRING_PACKED_EVENT_FLAG_DESC);
		ck_assert_uint_eq(rd16(&f, f.dev_area), packed_avail_offwrap(&f));
	}
	f.kicks = 0;
	req_prep(&f, &reqs[0], 1, 0, len, 0);
	ck_assert_int_eq(req_submit(&f, &reqs[0], 0), 0);
	ck_assert_int_eq(vdev_drvq_kick(f.dq), 1);
	req_prep(&f, &reqs[1], 1, 0, len, 1);
	ck_assert_int_eq(req_submit(&f, &reqs[1], 0), 0);
	/* The device has not re-armed: the event slot was already passed. */
	ck_assert_int_eq(vdev_drvq_kick(f.dq), 0);
	ck_assert_uint_eq(f.kicks, 1);

	ck_assert_int_eq(vdev_queue_set_notification(f.q, 0), 0);
	dev_pop_check(&f, &reqs[0]);
	dev_pop_check(&f, &reqs[1]);
	req_prep(&f, &reqs[2], 1, 0, len, 2);
	ck_assert_int_eq(req_submit(&f, &reqs[2], 0), 0);
	ck_assert_int_eq(vdev_drvq_kick(f.dq), 0);
	/* Re-arming finds the buffer that came in meanwhile. */
	ck_assert_int_eq(vdev_queue_set_notification(f.q, 1), 1);
	dev_pop_check(&f, &reqs[2]);
	ck_assert_int_eq(vdev_queue_set_notification(f.q, 1), 0);
	if (!f.packed)
		ck_assert_uint_eq(rd16(&f, avail_event_gpa(&f)), 3);
	else
		ck_assert_uint_eq(rd16(&f, f.dev_area), packed_avail_offwrap(&f));
	req_prep(&f, &reqs[3], 1, 0, len, 3);
	ck_assert_int_eq(req_submit(&f, &reqs[3], 0), 0);
	ck_assert_int_eq(vdev_drvq_kick(f.dq), 1);
	dev_pop_check(&f, &reqs[3]);
	for (uint32_t i = 0; i < 4; i++)
		dev_fill(&f, &reqs[i]);
	ck_assert_int_ge(vdev_queue_flush(f.q), 0);
	for (uint32_t i = 0; i < 4; i++)
		drv_collect(&f);

	/* Random avail_event values: the driver's kick follows the formula. */
	for (iter = 0; iter < 2000; iter++) {
		uint32_t n = rnd_range(1, 16), i;
		uint64_t old = f.avail_lin;
		int expect, got;

		if (!f.packed) {
			uint16_t ev = rnd() % 3 == 0 ? (uint16_t)rnd()
						     : (uint16_t)(old + rnd_range(0, 2 * n + 2) - 2);
			wr16(&f, avail_event_gpa(&f), ev);
			expect = vdi_need_event(ev, (uint16_t)(old + n), (uint16_t)old);
		} else {
			uint64_t p = old + rnd_range(0, 2 * f.size) - f.size / 2;
			uint16_t ow;
			if (p > (1ull << 62))
				p = 0;
			ow = (uint16_t)((p % f.size) | ((1u ^ ((p / f.size) & 1u)) << 15));
			wr16(&f, f.dev_area, ow);
			wr16(&f, f.dev_area + 2, VRING_PACKED_EVENT_FLAG_DESC);
			expect = packed_event_hit(f.size, ow, old, old + n);
		}
		for (i = 0; i < n; i++) {
			req_prep(&f, &reqs[i], 1, 0, len, iter + i);
			ck_assert_int_eq(req_submit(&f, &reqs[i], 0), 0);
		}
		got = vdev_drvq_kick(f.dq);
		/* A batch of a whole ring (or more) passes every slot of some
		 * lap: kicking is the safe reading there. */
		if (f.packed && n >= f.size && got == 1)
			expect = 1;
		ck_assert_msg(got == expect, "iter %u: kick %d, spec %d (old %llu n %u event %#x)", iter,
			      got, expect, (unsigned long long)old, n,
			      f.packed ? rd16(&f, f.dev_area) : rd16(&f, avail_event_gpa(&f)));
		for (i = 0; i < n; i++)
			dev_pop_check(&f, &reqs[i]);
		for (i = 0; i < n; i++)
			dev_fill(&f, &reqs[i]);
		ck_assert_int_ge(vdev_queue_flush(f.q), 0);
		for (i = 0; i < n; i++)
			drv_collect(&f);
	}
	fx_fini(&f);
}
END_TEST

/* -ENOBUFS: nothing consumed, a retry with room pops the same chain. */
START_TEST(enobufs_retry)
{
	struct fx f;
	static struct req r;
	struct vdev_queue_elem e;
	struct iovec iov[2];
	uint64_t g[2];
	uint32_t lens[4] = {10, 20, 30, 40};

	fx_init(&f, _i, 8, 0, 0);
	req_prep(&f, &r, 2, 2, lens, 9);
	ck_assert_int_eq(req_submit(&f, &r, 0), 0);
	elem_setup(&e, iov, g, 2);
	ck_assert_int_eq(vdev_queue_pop(f.q, &e), -ENOBUFS);
	ck_assert_uint_eq(vdev_queue_inflight(f.q), 0);
	ck_assert_int_eq(vdev_queue_is_broken(f.q), 0);
	ck_assert_int_eq(vdev_queue_has_avail(f.q), 1);
	elem_setup(&e, iov, g, 0);
	ck_assert_int_eq(vdev_queue_pop(f.q, &e), -ENOBUFS);
	dev_pop_check(&f, &r);
	ck_assert_uint_eq(r.elem.out_num, 2);
	ck_assert_uint_eq(r.elem.in_num, 2);
	dev_fill(&f, &r);
	ck_assert_int_eq(vdev_queue_flush(f.q), 1);
	drv_collect(&f);
	fx_fini(&f);
}
END_TEST

/* A buffer spanning two adjacent regions whose host memory is not
 * contiguous yields two iovecs (and needs room for both). */
START_TEST(two_region_split)
{
	struct fx f;
	static struct req r;
	struct vdev_queue_elem e;
	struct iovec iov[4];
	uint64_t g[4];
	uint8_t *second;
	const uint64_t gpa2 = GPA_BASE + MEM_SIZE;
	uint64_t addr[2];
	uint32_t len[2];
	uint8_t *p;

	fx_init(&f, _i, 8, 0, 0);
	second = malloc(65536);
	ck_assert_ptr_nonnull(second);
	memset(second, 0, 65536);
	ck_assert_int_eq(vdev_mem_add_region(f.mem, gpa2, 65536, second, 0), 0);

	/* Readable: 100 bytes before the boundary, 50 after. Writable: 30 + 70. */
	addr[0] = gpa2 - 100;
	len[0] = 150;
	addr[1] = gpa2 - 30;
	len[1] = 100;
	/* They overlap in guest memory; the queue does not care. */
	p = host(&f, gpa2 - 100);
	for (int i = 0; i < 100; i++)
		p[i] = (uint8_t)i;
	for (int i = 0; i < 50; i++)
		second[i] = (uint8_t)(100 + i);
	ck_assert_int_eq(vdev_drvq_add(f.dq, addr, len, 1, 1, &r, 0), 0);

	elem_setup(&e, iov, g, 3);
	ck_assert_int_eq(vdev_queue_pop(f.q, &e), -ENOBUFS);
	elem_setup(&e, iov, g, 4);
	ck_assert_int_eq(vdev_queue_pop(f.q, &e), 1);
	ck_assert_uint_eq(e.out_num, 2);
	ck_assert_uint_eq(e.in_num, 2);
	ck_assert_uint_eq(e.out_len, 150);
	ck_assert_uint_eq(e.in_len, 100);
	ck_assert_ptr_eq(iov[0].iov_base, p);
	ck_assert_uint_eq(iov[0].iov_len, 100);
	ck_assert_uint_eq(g[0], gpa2 - 100);
	ck_assert_ptr_eq(iov[1].iov_base, second);
	ck_assert_uint_eq(iov[1].iov_len, 50);
	ck_assert_uint_eq(g[1], gpa2);
	ck_assert_ptr_eq(iov[2].iov_base, host(&f, gpa2 - 30));
	ck_assert_uint_eq(iov[2].iov_len, 30);
	ck_assert_uint_eq(g[2], gpa2 - 30);
	ck_assert_ptr_eq(iov[3].iov_base, second);
	ck_assert_uint_eq(iov[3].iov_len, 70);
	ck_assert_uint_eq(g[3], gpa2);
	for (int i = 0; i < 50; i++)
		ck_assert_uint_eq(((uint8_t *)iov[1].iov_base)[i], 100 + i);
	ck_assert_int_eq(vdev_queue_push(f.q, &e, 100), 1);
	{
		void *tok;
		uint32_t l;
		ck_assert_int_eq(vdev_drvq_get_used(f.dq, &tok, &l), 1);
		ck_assert_ptr_eq(tok, &r);
		ck_assert_uint_eq(l, 100);
	}
	fx_fini(&f);
	free(second);
}
END_TEST

static int page_dirty(const uint64_t *bm, uint64_t gpa)
{
	uint64_t pg = (gpa - GPA_BASE) >> VDEV_MEM_DIRTY_PAGE_SHIFT;

	return (int)((bm[pg / 64] >> (pg % 64)) & 1);
}

/* fill marks the written bytes and the used ring dirty, nothing else. */
START_TEST(dirty_log_fill)
{
	struct fx f;
	static struct req r;
	const uint64_t npages = MEM_SIZE / PAGE;
	static uint64_t bm[MEM_SIZE / PAGE / 64];
	uint64_t rd = DATA_GPA + 4 * PAGE, wr = DATA_GPA + 8 * PAGE;
	uint64_t addr[2] = {rd, wr};
	uint32_t len[2] = {PAGE, 3 * PAGE};
	struct vdev_queue_elem e;
	struct iovec iov[4];
	uint64_t g[4];
	int64_t n;
	uint64_t used_page;

	fx_init(&f, _i, 8, 0, 0);
	ck_assert_int_eq(vdev_drvq_add(f.dq, addr, len, 1, 1, &r, 0), 0);
	ck_assert_int_eq(vdev_mem_dirty_log_enable(f.mem, 1), 0);
	elem_setup(&e, iov, g, 4);
	ck_assert_int_eq(vdev_queue_pop(f.q, &e), 1);
	/* Write 1.5 pages: pages wr and wr+1 dirty, wr+2 not. */
	memset(iov[1].iov_base, 0x5a, PAGE + PAGE / 2);
	ck_assert_int_eq(vdev_queue_fill(f.q, &e, PAGE + PAGE / 2), 0);
	ck_assert_int_eq(vdev_queue_flush(f.q), 1);

	memset(bm, 0, sizeof(bm));
	n = vdev_mem_dirty_log_get(f.mem, GPA_BASE, npages, bm, VDI_ARRAY_SIZE(bm), 1);
	ck_assert_int_gt(n, 0);
	ck_assert(page_dirty(bm, wr));
	ck_assert(page_dirty(bm, wr + PAGE));
	ck_assert(!page_dirty(bm, wr + 2 * PAGE));
	ck_assert(!page_dirty(bm, rd));
	if (!f.packed) {
		used_page = f.dev_area & ~(uint64_t)(PAGE - 1);
		ck_assert(page_dirty(bm, used_page));
		ck_assert(page_dirty(bm, used_idx_gpa(&f) & ~(uint64_t)(PAGE - 1)));
		ck_assert(page_dirty(bm, (f.dev_area + 4 + 8ull * e.id) & ~(uint64_t)(PAGE - 1)));
	} else {
		used_page = f.desc & ~(uint64_t)(PAGE - 1);
		ck_assert(page_dirty(bm, used_page));
	}
	/* Only those pages (and maybe the page of a suppression field). */
	ck_assert_int_le(n, 5);
	{
		void *tok;
		uint32_t l;
		ck_assert_int_eq(vdev_drvq_get_used(f.dq, &tok, &l), 1);
		ck_assert_uint_eq(l, PAGE + PAGE / 2);
	}
	/* Cleared. */
	memset(bm, 0, sizeof(bm));
	ck_assert_int_eq(vdev_mem_dirty_log_get(f.mem, GPA_BASE, npages, bm, VDI_ARRAY_SIZE(bm), 0), 0);
	fx_fini(&f);
}
END_TEST

/* get_state / set_state: a new queue on the same rings continues where the
 * first one stopped. */
START_TEST(state_round_trip)
{
	struct fx f;
	static struct req reqs[8];
	struct vdev_queue_state st = VDEV_QUEUE_STATE_INIT, st2 = VDEV_QUEUE_STATE_INIT;
	struct vdev_queue_config qc = VDEV_QUEUE_CONFIG_INIT;
	vdev_queue *q2;
	uint32_t i, round;

	fx_init(&f, _i, _i ? 6 : 8, 0, 0);
	/* Move the ring through a wrap. */
	for (round = 0; round < 5; round++) {
		for (i = 0; i < 3; i++) {
			uint32_t len[2] = {16, 16};
			req_prep(&f, &reqs[i], 1, 1, len, round * 3 + i);
			ck_assert_int_eq(req_submit(&f, &reqs[i], VDEV_DRVQ_ADD_NO_INDIRECT), 0);
			dev_pop_check(&f, &reqs[i]);
			dev_fill(&f, &reqs[i]);
		}
		ck_assert_int_ge(vdev_queue_flush(f.q), 0);
		for (i = 0; i < 3; i++)
			drv_collect(&f);
	}
	/* Busy: one in flight. */
	{
		uint32_t len[1] = {8};
		req_prep(&f, &reqs[0], 1, 0, len, 99);
		ck_assert_int_eq(req_submit(&f, &reqs[0], 0), 0);
		dev_pop_check(&f, &reqs[0]);
	}
	ck_assert_int_eq(vdev_queue_get_state(f.q, &st), 0);
	ck_assert_int_eq(vdev_queue_set_state(f.q, &st), -EBUSY);
	dev_fill(&f, &reqs[0]);
	ck_assert_int_ge(vdev_queue_flush(f.q), 0);
	drv_collect(&f);
	ck_assert_int_eq(vdev_queue_get_state(f.q, &st), 0);
	if (!f.packed) {
		ck_assert_uint_eq(st.last_avail_idx, 16);
		ck_assert_uint_eq(st.used_idx, 16);
	} else {
		ck_assert_uint_eq(st.last_avail_idx, f.avail_lin % f.size);
		ck_assert_uint_eq(st.avail_wrap, 1 ^ ((f.avail_lin / f.size) & 1));
		ck_assert_uint_eq(st.used_idx, f.used_lin % f.size);
		ck_assert_uint_eq(st.used_wrap, 1 ^ ((f.used_lin / f.size) & 1));
	}

	/* A second queue on the same ring. */
	qc.size = f.size;
	qc.flags = f.qflags;
	qc.desc_addr = f.desc;
	qc.driver_addr = f.drv_area;
	qc.device_addr = f.dev_area;
	ck_assert_int_eq(vdev_queue_new(&qc, f.mem, &q2), 0);
	if (f.packed) {
		struct vdev_queue_state bad = st;
		bad.last_avail_idx = (uint16_t)f.size;
		ck_assert_int_eq(vdev_queue_set_state(q2, &bad), -EINVAL);
		bad = st;
		bad.used_wrap = 2;
		ck_assert_int_eq(vdev_queue_set_state(q2, &bad), -EINVAL);
	}
	ck_assert_int_eq(vdev_queue_set_state(q2, &st), 0);
	ck_assert_int_eq(vdev_queue_get_state(q2, &st2), 0);
	ck_assert_uint_eq(st2.last_avail_idx, st.last_avail_idx);
	ck_assert_uint_eq(st2.used_idx, st.used_idx);
	ck_assert_uint_eq(st2.avail_wrap, st.avail_wrap);
	ck_assert_uint_eq(st2.used_wrap, st.used_wrap);
	vdev_queue_free(f.q);
	f.q = q2;
	ck_assert_int_eq(vdev_queue_has_avail(f.q), 0);
	for (round = 0; round < 4; round++) {
		for (i = 0; i < 2; i++) {
			uint32_t len[3] = {16, 16, 16};
			req_prep(&f, &reqs[i], 2, 1, len, 200 + round * 2 + i);
			ck_assert_int_eq(req_submit(&f, &reqs[i], VDEV_DRVQ_ADD_NO_INDIRECT), 0);
		}
		for (i = 0; i < 2; i++)
			dev_pop_check(&f, &reqs[i]);
		for (i = 0; i < 2; i++)
			dev_fill(&f, &reqs[i]);
		ck_assert_int_ge(vdev_queue_flush(f.q), 0);
		for (i = 0; i < 2; i++)
			ck_assert_ptr_eq(drv_collect(&f), &reqs[i]);
	}
	fx_fini(&f);
}
END_TEST

/* fill: unknown id, double fill, length clamp; inflight accounting. */
START_TEST(fill_rules_inflight)
{
	struct fx f;
	static struct req reqs[3];
	uint32_t i;
	struct vdev_queue_elem bogus;
	void *tok;
	uint32_t l;

	fx_init(&f, _i, 8, 0, 0);
	for (i = 0; i < 3; i++) {
		uint32_t len[2] = {8, 40};
		req_prep(&f, &reqs[i], 1, 1, len, i);
		ck_assert_int_eq(req_submit(&f, &reqs[i], 0), 0);
		dev_pop_check(&f, &reqs[i]);
		ck_assert_uint_eq(vdev_queue_inflight(f.q), i + 1);
	}
	bogus = reqs[0].elem;
	bogus.id = 0x7fff;
	ck_assert_int_eq(vdev_queue_fill(f.q, &bogus, 0), -EINVAL);
	ck_assert_int_eq(vdev_queue_is_broken(f.q), 0);
	ck_assert_uint_eq(vdev_queue_inflight(f.q), 3);
	/* Length above in_len is clamped. */
	ck_assert_int_eq(vdev_queue_fill(f.q, &reqs[1].elem, 1000), 0);
	ck_assert_uint_eq(vdev_queue_inflight(f.q), 2);
	ck_assert_int_eq(vdev_queue_fill(f.q, &reqs[1].elem, 0), -EINVAL);
	ck_assert_uint_eq(vdev_queue_inflight(f.q), 2);
	ck_assert_int_eq(vdev_queue_flush(f.q), 1);
	ck_assert_uint_eq(vdev_queue_inflight(f.q), 2);
	ck_assert_int_eq(vdev_drvq_get_used(f.dq, &tok, &l), 1);
	ck_assert_ptr_eq(tok, &reqs[1]);
	ck_assert_uint_eq(l, 40);
	ck_assert_int_eq(vdev_queue_push(f.q, &reqs[2].elem, 7), 1);
	ck_assert_int_eq(vdev_queue_push(f.q, &reqs[0].elem, 0), 1);
	ck_assert_uint_eq(vdev_queue_inflight(f.q), 0);
	ck_assert_int_eq(vdev_drvq_get_used(f.dq, &tok, &l), 1);
	ck_assert_ptr_eq(tok, &reqs[2]);
	ck_assert_uint_eq(l, 7);
	ck_assert_int_eq(vdev_drvq_get_used(f.dq, &tok, &l), 1);
	ck_assert_ptr_eq(tok, &reqs[0]);
	ck_assert_uint_eq(l, 0);
	/* Flush with nothing filled. */
	ck_assert_int_eq(vdev_queue_flush(f.q), 0);
	fx_fini(&f);
}
END_TEST

/* Argument checks of the public API. */
START_TEST(bad_arguments)
{
	struct fx f;
	struct vdev_queue_elem e;
	struct iovec iov[2];
	uint64_t g[2];
	struct vdev_queue_state st = VDEV_QUEUE_STATE_INIT;
	struct vdev_queue_config qc = VDEV_QUEUE_CONFIG_INIT;
	vdev_queue *q = (vdev_queue *)&f;

	fx_init(&f, _i, 8, 0, 0);
	ck_assert_int_eq(vdev_queue_pop(NULL, &e), -EINVAL);
	ck_assert_int_eq(vdev_queue_pop(f.q, NULL), -EINVAL);
	elem_setup(&e, NULL, g, 2);
	ck_assert_int_eq(vdev_queue_pop(f.q, &e), -EINVAL);
	elem_setup(&e, iov, NULL, 2);
	ck_assert_int_eq(vdev_queue_pop(f.q, &e), -EINVAL);
	ck_assert_int_eq(vdev_queue_get_state(f.q, NULL), -EINVAL);
	ck_assert_int_eq(vdev_queue_get_state(NULL, &st), -EINVAL);
	ck_assert_int_eq(vdev_queue_set_state(f.q, NULL), -EINVAL);
	elem_setup(&e, iov, g, 2);
	e.struct_size = 4;
	ck_assert_int_eq(vdev_queue_pop(f.q, &e), -EINVAL);
	ck_assert_int_eq(vdev_queue_new(NULL, f.mem, &q), -EINVAL);
	qc.size = 8;
	qc.flags = f.qflags;
	qc.desc_addr = f.desc;
	qc.driver_addr = f.drv_area;
	qc.device_addr = f.dev_area;
	ck_assert_int_eq(vdev_queue_new(&qc, NULL, &q), -EINVAL);
	ck_assert_int_eq(vdev_queue_new(&qc, f.mem, NULL), -EINVAL);
	qc.struct_size = 2;
	ck_assert_int_eq(vdev_queue_new(&qc, f.mem, &q), -EINVAL);
	qc.struct_size = sizeof(qc);
	qc.flags |= 0x100;
	ck_assert_int_eq(vdev_queue_new(&qc, f.mem, &q), -EINVAL);
	ck_assert_ptr_eq(q, (vdev_queue *)&f);
	vdev_queue_free(NULL);
	ck_assert_int_eq(vdev_queue_is_broken(f.q), 0);
	fx_fini(&f);
}
END_TEST

/*
 * Split only, hand-written: two direct descriptors followed by one indirect
 * descriptor (allowed by 2.7.5.3.2), a zero-length descriptor inside the
 * table, and WRITE set on the indirect descriptor itself (ignored).
 */
START_TEST(split_direct_then_indirect)
{
	uint8_t *buf;
	vdev_mem *mem;
	vdev_queue *q;
	struct vdev_queue_config qc = VDEV_QUEUE_CONFIG_INIT;
	const uint64_t base = 0x40000;
	struct vring_desc *desc, *tbl;
	struct vring_avail *avail;
	struct vring_used *used;
	struct vdev_queue_elem e;
	struct iovec iov[8];
	uint64_t g[8];

	buf = aligned_alloc(PAGE, 1 << 20);
	ck_assert_ptr_nonnull(buf);
	memset(buf, 0, 1 << 20);
	ck_assert_int_eq(vdev_mem_new(&mem), 0);
	ck_assert_int_eq(vdev_mem_add_region(mem, base, 1 << 20, buf, 0), 0);
	desc = (struct vring_desc *)buf;
	avail = (struct vring_avail *)(buf + 0x1000);
	used = (struct vring_used *)(buf + 0x2000);
	tbl = (struct vring_desc *)(buf + 0x3000);

	desc[5].addr = vdi_le64(base + 0x10000);
	desc[5].len = vdi_le32(11);
	desc[5].flags = vdi_le16(VRING_DESC_F_NEXT);
	desc[5].next = vdi_le16(2);
	desc[2].addr = vdi_le64(base + 0x11000);
	desc[2].len = vdi_le32(22);
	desc[2].flags = vdi_le16(VRING_DESC_F_NEXT);
	desc[2].next = vdi_le16(7);
	desc[7].addr = vdi_le64(base + 0x3000);
	desc[7].len = vdi_le32(4 * 16);
	desc[7].flags = vdi_le16(VRING_DESC_F_INDIRECT | VRING_DESC_F_WRITE);
	tbl[0].addr = vdi_le64(base + 0x12000);
	tbl[0].len = vdi_le32(33);
	tbl[0].flags = vdi_le16(VRING_DESC_F_NEXT);
	tbl[0].next = vdi_le16(3);
	tbl[3].addr = vdi_le64(base + 0x13000);
	tbl[3].len = vdi_le32(0);
	tbl[3].flags = vdi_le16(VRING_DESC_F_NEXT | VRING_DESC_F_WRITE);
	tbl[3].next = vdi_le16(1);
	tbl[1].addr = vdi_le64(base + 0x14000);
	tbl[1].len = vdi_le32(44);
	tbl[1].flags = vdi_le16(VRING_DESC_F_WRITE);
	avail->ring[0] = vdi_le16(5);
	avail->idx = vdi_le16(1);

	qc.size = 8;
	qc.flags = VDEV_QUEUE_F_INDIRECT;
	qc.desc_addr = base;
	qc.driver_addr = base + 0x1000;
	qc.device_addr = base + 0x2000;
	ck_assert_int_eq(vdev_queue_new(&qc, mem, &q), 0);
	elem_setup(&e, iov, g, 8);
	ck_assert_int_eq(vdev_queue_pop(q, &e), 1);
	ck_assert_uint_eq(e.id, 5);
	ck_assert_uint_eq(e.out_num, 3);
	ck_assert_uint_eq(e.in_num, 1);
	ck_assert_uint_eq(e.out_len, 66);
	ck_assert_uint_eq(e.in_len, 44);
	ck_assert_uint_eq(g[0], base + 0x10000);
	ck_assert_uint_eq(g[1], base + 0x11000);
	ck_assert_uint_eq(g[2], base + 0x12000);
	ck_assert_uint_eq(g[3], base + 0x14000);
	ck_assert_ptr_eq(iov[0].iov_base, buf + 0x10000);
	ck_assert_uint_eq(iov[0].iov_len, 11);
	ck_assert_uint_eq(iov[1].iov_len, 22);
	ck_assert_uint_eq(iov[2].iov_len, 33);
	ck_assert_ptr_eq(iov[3].iov_base, buf + 0x14000);
	ck_assert_uint_eq(iov[3].iov_len, 44);
	ck_assert_int_eq(vdev_queue_push(q, &e, 44), 1);
	ck_assert_uint_eq(vdi_le16(used->idx), 1);
	ck_assert_uint_eq(vdi_le32(used->ring[0].id), 5);
	ck_assert_uint_eq(vdi_le32(used->ring[0].len), 44);
	ck_assert_int_eq(vdev_queue_pop(q, &e), 0);
	ck_assert_int_eq(vdev_queue_is_broken(q), 0);
	vdev_queue_free(q);
	vdev_mem_free(mem);
	free(buf);
}
END_TEST

static Suite *queue_suite(void)
{
	Suite *s = suite_create("queue");
	TCase *tc = tcase_create("split+packed");

	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, chains_1_to_n, 0, 2);
	tcase_add_loop_test(tc, batch_out_of_order, 0, 2);
	tcase_add_loop_test(tc, index_wrap, 0, 2);
	tcase_add_loop_test(tc, event_idx_used, 0, 2);
	tcase_add_loop_test(tc, batch_one_decision, 0, 2);
	tcase_add_loop_test(tc, flag_suppression, 0, 2);
	tcase_add_loop_test(tc, event_idx_kick, 0, 2);
	tcase_add_loop_test(tc, event_idx_disable_after_arm, 0, 2);
	tcase_add_loop_test(tc, enobufs_retry, 0, 2);
	tcase_add_loop_test(tc, two_region_split, 0, 2);
	tcase_add_loop_test(tc, dirty_log_fill, 0, 2);
	tcase_add_loop_test(tc, state_round_trip, 0, 2);
	tcase_add_loop_test(tc, fill_rules_inflight, 0, 2);
	tcase_add_loop_test(tc, bad_arguments, 0, 2);
	suite_add_tcase(s, tc);

	tc = tcase_create("split-only");
	tcase_add_test(tc, split_direct_then_indirect);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(queue_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
