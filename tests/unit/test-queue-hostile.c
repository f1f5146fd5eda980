/* SPDX-License-Identifier: MIT */
/*
 * The device-side virtqueue against a hostile driver: rings written by hand
 * into fake guest memory, one test per rule. Loop index 0 = split, 1 = packed
 * (tests of split-only rules run once). Every malformed ring must make pop
 * return -EBADMSG, leave the queue broken for good, and finish quickly (the
 * Check timeout catches a hang).
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <linux/virtio_ring.h>

#include <virtio-dev/mem.h>
#include <virtio-dev/queue.h>

#include "internal/util.h"

#define BASE 0x10000ull
#define MSZ (2u << 20)
#define DESC_GPA BASE
#define DRV_GPA (BASE + 0x1000)
#define DEV_GPA (BASE + 0x2000)
#define TBL_GPA (BASE + 0x4000)  /* indirect tables */
#define TBL2_GPA (BASE + 0x8000)
#define DATA_GPA (BASE + 0x10000)
#define RO_GPA (BASE + MSZ + 0x100000) /* read-only region */
#define RO_SIZE 0x10000u

#define P_AVAIL (1u << VRING_PACKED_DESC_F_AVAIL)
#define P_USED (1u << VRING_PACKED_DESC_F_USED)

struct hx {
	uint8_t *buf;
	uint8_t *ro;
	vdev_mem *mem;
	vdev_queue *q;
	int packed;
	uint32_t size;
	uint32_t flags;
	uint16_t aidx;  /* split: driver's avail idx */
	uint32_t pslot; /* packed: driver's next slot */
	uint32_t pwrap; /* packed: driver wrap counter */
};

static void *hp(struct hx *h, uint64_t gpa)
{
	ck_assert(gpa >= BASE && gpa < BASE + MSZ);
	return h->buf + (gpa - BASE);
}

static void hx_mem(struct hx *h)
{
	memset(h, 0, sizeof(*h));
	h->buf = aligned_alloc(4096, MSZ);
	h->ro = aligned_alloc(4096, RO_SIZE);
	ck_assert_ptr_nonnull(h->buf);
	ck_assert_ptr_nonnull(h->ro);
	memset(h->buf, 0, MSZ);
	memset(h->ro, 0, RO_SIZE);
	ck_assert_int_eq(vdev_mem_new(&h->mem), 0);
	ck_assert_int_eq(vdev_mem_add_region(h->mem, BASE, MSZ, h->buf, 0), 0);
	ck_assert_int_eq(vdev_mem_add_region(h->mem, RO_GPA, RO_SIZE, h->ro, VDEV_MEM_F_READONLY),
			 0);
	h->pwrap = 1;
}

static struct vdev_queue_config hx_cfg(uint32_t size, uint32_t flags)
{
	struct vdev_queue_config qc = VDEV_QUEUE_CONFIG_INIT;

	qc.size = size;
	qc.flags = flags;
	qc.desc_addr = DESC_GPA;
	qc.driver_addr = DRV_GPA;
	qc.device_addr = DEV_GPA;
	return qc;
}

static void hx_init(struct hx *h, int packed, uint32_t size, uint32_t flags)
{
	struct vdev_queue_config qc;

	hx_mem(h);
	h->packed = packed;
	h->size = size;
	h->flags = flags | (packed ? VDEV_QUEUE_F_PACKED : 0);
	qc = hx_cfg(size, h->flags);
	ck_assert_int_eq(vdev_queue_new(&qc, h->mem, &h->q), 0);
}

static void hx_fini(struct hx *h)
{
	vdev_queue_free(h->q);
	vdev_mem_free(h->mem);
	free(h->buf);
	free(h->ro);
}

/* A descriptor, in either layout (next is split only, id packed only). */
struct d {
	uint64_t addr;
	uint32_t len;
	uint16_t flags; /* VRING_DESC_F_* */
	uint16_t next;
	uint16_t id;
};

/* Split: write a descriptor at guest address @gpa (ring or indirect table). */
static void s_put(struct hx *h, uint64_t gpa, struct d d)
{
	struct vring_desc v;

	v.addr = vdi_le64(d.addr);
	v.len = vdi_le32(d.len);
	v.flags = vdi_le16(d.flags);
	v.next = vdi_le16(d.next);
	memcpy(hp(h, gpa), &v, sizeof(v));
}

static void s_desc(struct hx *h, uint32_t i, struct d d)
{
	s_put(h, DESC_GPA + 16ull * i, d);
}

static void s_set_avail_idx(struct hx *h, uint16_t idx)
{
	uint16_t v = vdi_le16(idx);

	memcpy(hp(h, DRV_GPA + 2), &v, 2);
}

static void s_avail(struct hx *h, uint16_t head)
{
	uint16_t v = vdi_le16(head);

	memcpy(hp(h, DRV_GPA + 4 + 2ull * (h->aidx % h->size)), &v, 2);
	h->aidx++;
	s_set_avail_idx(h, h->aidx);
}

/* Packed: write a descriptor (table entry: no avail/used bits). */
static void p_put(struct hx *h, uint64_t gpa, struct d d, uint16_t extra)
{
	struct vring_packed_desc v;

	v.addr = vdi_le64(d.addr);
	v.len = vdi_le32(d.len);
	v.id = vdi_le16(d.id);
	v.flags = vdi_le16((uint16_t)(d.flags | extra));
	memcpy(hp(h, gpa), &v, sizeof(v));
}

/* Packed: make @n descriptors available, the first one last. */
static void p_publish(struct hx *h, const struct d *ds, uint32_t n)
{
	for (uint32_t i = n; i-- > 0;) {
		uint32_t k = h->pslot + i;
		uint32_t w = h->pwrap ^ (k >= h->size ? 1u : 0u);
		p_put(h, DESC_GPA + 16ull * (k % h->size), ds[i],
		      (uint16_t)(w ? P_AVAIL : P_USED));
	}
	h->pslot += n;
	if (h->pslot >= h->size) {
		h->pslot -= h->size;
		h->pwrap ^= 1;
	}
}

/* Put a table entry in either layout. */
static void t_put(struct hx *h, uint64_t tbl, uint32_t i, struct d d)
{
	/* packed table entries: WRITE is the only meaningful flag (INDIRECT is
	 * kept so that nesting can be tested) */
	if (h->packed) {
		d.flags &= (uint16_t)~VRING_DESC_F_NEXT;
		p_put(h, tbl + 16ull * i, d, 0);
	}
	else
		s_put(h, tbl + 16ull * i, d);
}

/*
 * Make one chain available: @n descriptors. Split: chained through
 * descriptors base_idx.. (next fields filled in unless NEXT is absent);
 * packed: consecutive slots.
 */
static void publish_chain(struct hx *h, struct d *ds, uint32_t n, uint32_t base_idx)
{
	if (h->packed) {
		p_publish(h, ds, n);
		return;
	}
	for (uint32_t i = 0; i < n; i++) {
		if ((ds[i].flags & VRING_DESC_F_NEXT) && ds[i].next == 0)
			ds[i].next = (uint16_t)((base_idx + i + 1) % h->size);
		s_desc(h, (base_idx + i) % h->size, ds[i]);
	}
	s_avail(h, (uint16_t)base_idx);
}

static void elem_init(struct vdev_queue_elem *e, struct iovec *iov, uint64_t *g, uint32_t cap)
{
	struct vdev_queue_elem z = VDEV_QUEUE_ELEM_INIT;

	*e = z;
	e->iov = iov;
	e->gpa = g;
	e->iov_cap = cap;
}

static int pop(struct hx *h)
{
	static struct iovec iov[256];
	static uint64_t g[256];
	struct vdev_queue_elem e;

	elem_init(&e, iov, g, 256);
	return vdev_queue_pop(h->q, &e);
}

/* The queue is broken and stays broken, whatever the driver does next. */
static void expect_broken_after_pop(struct hx *h)
{
	struct vdev_queue_elem e;
	struct iovec iov[4];
	uint64_t g[4];
	struct d ok = {.addr = DATA_GPA, .len = 8};
	uint32_t inflight = vdev_queue_inflight(h->q);

	ck_assert_int_eq(pop(h), -EBADMSG);
	ck_assert_int_lt(vdev_queue_is_broken(h->q), 0);
	ck_assert_int_eq(pop(h), -EBADMSG);
	/* A valid chain afterwards does not revive the queue. */
	if (h->packed) {
		p_publish(h, &ok, 1);
	} else {
		s_desc(h, h->size - 1, ok);
		s_avail(h, (uint16_t)(h->size - 1));
	}
	ck_assert_int_eq(pop(h), -EBADMSG);
	ck_assert_int_eq(vdev_queue_flush(h->q), -EBADMSG);
	elem_init(&e, iov, g, 4);
	e.id = 0;
	ck_assert_int_eq(vdev_queue_fill(h->q, &e, 0), -EBADMSG);
	ck_assert_int_eq(vdev_queue_push(h->q, &e, 0), -EBADMSG);
	ck_assert_int_eq(vdev_queue_has_avail(h->q), -EBADMSG);
	ck_assert_int_eq(vdev_queue_set_notification(h->q, 1), -EBADMSG);
	ck_assert_int_lt(vdev_queue_is_broken(h->q), 0);
	ck_assert_uint_eq(vdev_queue_inflight(h->q), inflight);
}

/* Positive control: pop one valid chain and return it. */
static void expect_ok(struct hx *h)
{
	static struct iovec iov[256];
	static uint64_t g[256];
	struct vdev_queue_elem e;

	elem_init(&e, iov, g, 256);
	ck_assert_int_eq(vdev_queue_pop(h->q, &e), 1);
	ck_assert_int_ge(vdev_queue_push(h->q, &e, 0), 0);
	ck_assert_int_eq(vdev_queue_is_broken(h->q), 0);
}

#define RD(a, l) {.addr = (a), .len = (l), .flags = VRING_DESC_F_NEXT}
#define WR(a, l) {.addr = (a), .len = (l), .flags = VRING_DESC_F_NEXT | VRING_DESC_F_WRITE}

/* Clear NEXT on the last descriptor of a direct chain. */
static void end_chain(struct d *ds, uint32_t n)
{
	ds[n - 1].flags &= (uint16_t)~VRING_DESC_F_NEXT;
}

/* ---------------------------------------------------------------------- */

/* Sanity of the harness: valid chains (direct, indirect, zero length). */
START_TEST(valid_chains)
{
	struct hx h;
	struct d ds[3] = {RD(DATA_GPA, 10), WR(DATA_GPA + 0x100, 0), WR(DATA_GPA + 0x200, 30)};
	struct d ind = {.addr = TBL_GPA, .len = 48, .flags = VRING_DESC_F_INDIRECT};
	struct vdev_queue_elem e;
	struct iovec iov[4];
	uint64_t g[4];

	hx_init(&h, _i, 8, VDEV_QUEUE_F_INDIRECT);
	end_chain(ds, 3);
	publish_chain(&h, ds, 3, 0);
	elem_init(&e, iov, g, 4);
	ck_assert_int_eq(vdev_queue_pop(h.q, &e), 1);
	ck_assert_uint_eq(e.out_num, 1);
	ck_assert_uint_eq(e.in_num, 1);
	ck_assert_uint_eq(e.out_len, 10);
	ck_assert_uint_eq(e.in_len, 30);
	ck_assert_int_eq(vdev_queue_push(h.q, &e, 30), 1);

	t_put(&h, TBL_GPA, 0, (struct d)RD(DATA_GPA, 10));
	t_put(&h, TBL_GPA, 1, (struct d)WR(DATA_GPA + 0x100, 20));
	t_put(&h, TBL_GPA, 2, (struct d){.addr = DATA_GPA + 0x200, .len = 30,
					 .flags = VRING_DESC_F_WRITE});
	if (!h.packed) {
		/* split tables chain through next */
		s_put(&h, TBL_GPA, (struct d){.addr = DATA_GPA, .len = 10,
					      .flags = VRING_DESC_F_NEXT, .next = 1});
		s_put(&h, TBL_GPA + 16, (struct d){.addr = DATA_GPA + 0x100, .len = 20,
						   .flags = VRING_DESC_F_NEXT | VRING_DESC_F_WRITE,
						   .next = 2});
	}
	publish_chain(&h, &ind, 1, 4);
	elem_init(&e, iov, g, 4);
	ck_assert_int_eq(vdev_queue_pop(h.q, &e), 1);
	ck_assert_uint_eq(e.out_num, 1);
	ck_assert_uint_eq(e.in_num, 2);
	ck_assert_uint_eq(e.in_len, 50);
	if (h.packed)
		ck_assert_uint_eq(e.ndescs, 1);
	else
		ck_assert_uint_eq(e.id, 4);
	ck_assert_int_eq(vdev_queue_push(h.q, &e, 50), 1);
	ck_assert_int_eq(pop(&h), 0);
	ck_assert_int_eq(vdev_queue_is_broken(h.q), 0);
	hx_fini(&h);
}
END_TEST

START_TEST(split_desc_loop)
{
	struct hx h;

	/* 0 -> 1 -> 0 */
	hx_init(&h, 0, 8, 0);
	s_desc(&h, 0, (struct d){.addr = DATA_GPA, .len = 8, .flags = VRING_DESC_F_NEXT, .next = 1});
	s_desc(&h, 1, (struct d){.addr = DATA_GPA, .len = 8, .flags = VRING_DESC_F_NEXT, .next = 0});
	s_avail(&h, 0);
	expect_broken_after_pop(&h);
	hx_fini(&h);

	/* self loop, writable, biggest queue: must still be fast */
	hx_mem(&h);
	h.size = 32768;
	{
		struct vdev_queue_config qc = hx_cfg(32768, 0);
		qc.desc_addr = BASE + 0x80000;
		qc.driver_addr = BASE + 0x100000;
		qc.device_addr = BASE + 0x120000;
		ck_assert_int_eq(vdev_queue_new(&qc, h.mem, &h.q), 0);
		s_put(&h, BASE + 0x80000 + 16 * 5,
		      (struct d){.addr = DATA_GPA, .len = 8,
				 .flags = VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, .next = 5});
		{
			uint16_t v = vdi_le16(5);
			memcpy(hp(&h, BASE + 0x100000 + 4), &v, 2);
			v = vdi_le16(1);
			memcpy(hp(&h, BASE + 0x100000 + 2), &v, 2);
		}
		ck_assert_int_eq(pop(&h), -EBADMSG);
		ck_assert_int_eq(pop(&h), -EBADMSG);
		ck_assert_int_lt(vdev_queue_is_broken(h.q), 0);
	}
	hx_fini(&h);

	/* loop inside an indirect table */
	hx_init(&h, 0, 8, VDEV_QUEUE_F_INDIRECT);
	s_put(&h, TBL_GPA, (struct d){.addr = DATA_GPA, .len = 8, .flags = VRING_DESC_F_NEXT, .next = 1});
	s_put(&h, TBL_GPA + 16, (struct d){.addr = DATA_GPA, .len = 8, .flags = VRING_DESC_F_NEXT,
					   .next = 0});
	s_desc(&h, 0, (struct d){.addr = TBL_GPA, .len = 32, .flags = VRING_DESC_F_INDIRECT});
	s_avail(&h, 0);
	expect_broken_after_pop(&h);
	hx_fini(&h);
}
END_TEST

/* Split: direct + indirect together may be longer than the queue (Linux
 * builds indirect tables of seg_max + 2 whatever the queue size), up to
 * VDI_CHAIN_MAX buffers. */
START_TEST(split_chain_longer_than_queue)
{
	struct hx h;
	uint32_t i;

	/* 1 direct + 8 in the table = 9 > size 8: accepted */
	hx_init(&h, 0, 8, VDEV_QUEUE_F_INDIRECT);
	s_desc(&h, 0, (struct d){.addr = DATA_GPA, .len = 8, .flags = VRING_DESC_F_NEXT, .next = 1});
	s_desc(&h, 1, (struct d){.addr = TBL_GPA, .len = 8 * 16, .flags = VRING_DESC_F_INDIRECT});
	for (i = 0; i < 8; i++)
		s_put(&h, TBL_GPA + 16 * i,
		      (struct d){.addr = DATA_GPA, .len = 8,
				 .flags = i < 7 ? VRING_DESC_F_NEXT : 0, .next = (uint16_t)(i + 1)});
	s_avail(&h, 0);
	expect_ok(&h);
	/* a direct chain longer than the queue is a loop: still refused */
	for (i = 0; i < 8; i++)
		s_desc(&h, i, (struct d){.addr = DATA_GPA, .len = 8, .flags = VRING_DESC_F_NEXT,
					 .next = (uint16_t)((i + 1) % 8)});
	s_avail(&h, 0);
	expect_broken_after_pop(&h);
	hx_fini(&h);
}
END_TEST

START_TEST(split_head_out_of_range)
{
	struct hx h;

	hx_init(&h, 0, 8, 0);
	s_desc(&h, 0, (struct d){.addr = DATA_GPA, .len = 8});
	s_avail(&h, 8);
	expect_broken_after_pop(&h);
	hx_fini(&h);

	hx_init(&h, 0, 8, 0);
	s_avail(&h, 0xffff);
	expect_broken_after_pop(&h);
	hx_fini(&h);
}
END_TEST

START_TEST(split_next_out_of_range)
{
	struct hx h;

	hx_init(&h, 0, 8, 0);
	s_desc(&h, 0, (struct d){.addr = DATA_GPA, .len = 8, .flags = VRING_DESC_F_NEXT, .next = 8});
	s_avail(&h, 0);
	expect_broken_after_pop(&h);
	hx_fini(&h);

	/* inside an indirect table of 2 entries, next = 2 */
	hx_init(&h, 0, 8, VDEV_QUEUE_F_INDIRECT);
	s_put(&h, TBL_GPA, (struct d){.addr = DATA_GPA, .len = 8, .flags = VRING_DESC_F_NEXT, .next = 1});
	s_put(&h, TBL_GPA + 16, (struct d){.addr = DATA_GPA, .len = 8, .flags = VRING_DESC_F_NEXT,
					   .next = 2});
	s_put(&h, TBL_GPA + 32, (struct d){.addr = DATA_GPA, .len = 8});
	s_desc(&h, 3, (struct d){.addr = TBL_GPA, .len = 32, .flags = VRING_DESC_F_INDIRECT});
	s_avail(&h, 3);
	expect_broken_after_pop(&h);
	hx_fini(&h);
}
END_TEST

/* An indirect chain whose table is at TBL_GPA with @n entries. */
static void publish_indirect(struct hx *h, uint32_t len, uint16_t extra_flags)
{
	struct d ind = {.addr = TBL_GPA, .len = len,
			.flags = (uint16_t)(VRING_DESC_F_INDIRECT | extra_flags)};

	if (extra_flags & VRING_DESC_F_NEXT) {
		/* split: NEXT to a valid descriptor 7; packed: next slot */
		struct d ds[2] = {ind, {.addr = DATA_GPA, .len = 8}};
		ds[0].next = 7;
		if (h->packed)
			p_publish(h, ds, 2);
		else {
			s_desc(h, 7, ds[1]);
			s_desc(h, 2, ds[0]);
			s_avail(h, 2);
		}
		return;
	}
	publish_chain(h, &ind, 1, 2);
}

/* Table entries 0..n-1: readable 8-byte buffers, chained (split). */
static void fill_table(struct hx *h, uint64_t tbl, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		t_put(h, tbl, i,
		      (struct d){.addr = DATA_GPA + 64 * i, .len = 8,
				 .flags = (!h->packed && i + 1 < n) ? VRING_DESC_F_NEXT : 0,
				 .next = (uint16_t)(i + 1)});
}

START_TEST(nested_indirect)
{
	struct hx h;

	hx_init(&h, _i, 8, VDEV_QUEUE_F_INDIRECT);
	fill_table(&h, TBL_GPA, 2);
	fill_table(&h, TBL2_GPA, 1);
	t_put(&h, TBL_GPA, 1, (struct d){.addr = TBL2_GPA, .len = 16, .flags = VRING_DESC_F_INDIRECT});
	publish_indirect(&h, 32, 0);
	expect_broken_after_pop(&h);
	hx_fini(&h);
}
END_TEST

START_TEST(indirect_len_zero)
{
	struct hx h;

	hx_init(&h, _i, 8, VDEV_QUEUE_F_INDIRECT);
	fill_table(&h, TBL_GPA, 2);
	publish_indirect(&h, 0, 0);
	expect_broken_after_pop(&h);
	hx_fini(&h);
}
END_TEST

START_TEST(indirect_len_not_multiple)
{
	struct hx h;

	hx_init(&h, _i, 8, VDEV_QUEUE_F_INDIRECT);
	fill_table(&h, TBL_GPA, 2);
	publish_indirect(&h, 24, 0);
	expect_broken_after_pop(&h);
	hx_fini(&h);

	hx_init(&h, _i, 8, VDEV_QUEUE_F_INDIRECT);
	fill_table(&h, TBL_GPA, 2);
	publish_indirect(&h, 15, 0);
	expect_broken_after_pop(&h);
	hx_fini(&h);
}
END_TEST

START_TEST(indirect_table_longer_than_queue)
{
	struct hx h;

	/* longer than the queue (8) is fine: Linux does it */
	hx_init(&h, _i, 8, VDEV_QUEUE_F_INDIRECT);
	fill_table(&h, TBL_GPA, 9);
	publish_indirect(&h, 9 * 16, 0);
	expect_ok(&h);
	/* longer than any queue can be: refused before the table is read */
	publish_indirect(&h, (VDEV_QUEUE_MAX_SIZE + 1) * 16, 0);
	expect_broken_after_pop(&h);
	hx_fini(&h);
}
END_TEST

START_TEST(indirect_with_next)
{
	struct hx h;

	hx_init(&h, _i, 8, VDEV_QUEUE_F_INDIRECT);
	fill_table(&h, TBL_GPA, 2);
	publish_indirect(&h, 32, VRING_DESC_F_NEXT);
	expect_broken_after_pop(&h);
	hx_fini(&h);
}
END_TEST

START_TEST(indirect_without_feature)
{
	struct hx h;

	hx_init(&h, _i, 8, 0);
	fill_table(&h, TBL_GPA, 2);
	publish_indirect(&h, 32, 0);
	expect_broken_after_pop(&h);
	hx_fini(&h);
}
END_TEST

START_TEST(readable_after_writable_direct)
{
	struct hx h;
	struct d ds[3] = {RD(DATA_GPA, 8), WR(DATA_GPA + 64, 8), RD(DATA_GPA + 128, 8)};

	hx_init(&h, _i, 8, 0);
	end_chain(ds, 3);
	publish_chain(&h, ds, 3, 0);
	expect_broken_after_pop(&h);
	hx_fini(&h);
}
END_TEST

START_TEST(readable_after_writable_indirect)
{
	struct hx h;

	hx_init(&h, _i, 8, VDEV_QUEUE_F_INDIRECT);
	fill_table(&h, TBL_GPA, 3);
	t_put(&h, TBL_GPA, 1,
	      (struct d){.addr = DATA_GPA + 64, .len = 8,
			 .flags = (uint16_t)(VRING_DESC_F_WRITE | (h.packed ? 0 : VRING_DESC_F_NEXT)),
			 .next = 2});
	publish_indirect(&h, 48, 0);
	expect_broken_after_pop(&h);
	hx_fini(&h);
}
END_TEST

START_TEST(addr_len_overflow)
{
	struct hx h;
	struct d ds[2] = {RD(DATA_GPA, 8), RD(0xfffffffffffff000ull, 0x2000)};

	hx_init(&h, _i, 8, 0);
	end_chain(ds, 2);
	publish_chain(&h, ds, 2, 0);
	expect_broken_after_pop(&h);
	hx_fini(&h);

	/* the same inside an indirect table */
	hx_init(&h, _i, 8, VDEV_QUEUE_F_INDIRECT);
	fill_table(&h, TBL_GPA, 1);
	t_put(&h, TBL_GPA, 0, (struct d){.addr = 0xffffffffffffffffull, .len = 2});
	publish_indirect(&h, 16, 0);
	expect_broken_after_pop(&h);
	hx_fini(&h);
}
END_TEST

START_TEST(buffer_outside_memory)
{
	struct hx h;
	struct d below[1] = {{.addr = 0x100, .len = 8}};
	struct d straddle[1] = {{.addr = BASE + MSZ - 4, .len = 8, .flags = VRING_DESC_F_WRITE}};
	struct d gap[1] = {{.addr = BASE + MSZ + 0x1000, .len = 8}};

	hx_init(&h, _i, 8, 0);
	publish_chain(&h, below, 1, 0);
	expect_broken_after_pop(&h);
	hx_fini(&h);

	hx_init(&h, _i, 8, 0);
	publish_chain(&h, straddle, 1, 0);
	expect_broken_after_pop(&h);
	hx_fini(&h);

	hx_init(&h, _i, 8, 0);
	publish_chain(&h, gap, 1, 0);
	expect_broken_after_pop(&h);
	hx_fini(&h);
}
END_TEST

START_TEST(writable_in_readonly_region)
{
	struct hx h;
	struct d rd[1] = {{.addr = RO_GPA, .len = 64}};
	struct d wr[2] = {RD(RO_GPA, 8), {.addr = RO_GPA + 64, .len = 8, .flags = VRING_DESC_F_WRITE}};

	hx_init(&h, _i, 8, 0);
	/* Reading from a read-only region is fine. */
	publish_chain(&h, rd, 1, 0);
	expect_ok(&h);
	publish_chain(&h, wr, 2, 2);
	expect_broken_after_pop(&h);
	hx_fini(&h);
}
END_TEST

START_TEST(indirect_table_outside_memory)
{
	struct hx h;
	struct d ind[1] = {{.addr = 0x1000, .len = 32, .flags = VRING_DESC_F_INDIRECT}};
	struct d ind2[1] = {{.addr = BASE + MSZ - 16, .len = 32, .flags = VRING_DESC_F_INDIRECT}};

	hx_init(&h, _i, 8, VDEV_QUEUE_F_INDIRECT);
	publish_chain(&h, ind, 1, 0);
	expect_broken_after_pop(&h);
	hx_fini(&h);

	hx_init(&h, _i, 8, VDEV_QUEUE_F_INDIRECT);
	fill_table(&h, BASE + MSZ - 16, 1);
	publish_chain(&h, ind2, 1, 0);
	expect_broken_after_pop(&h);
	hx_fini(&h);
}
END_TEST

/* Two 2 GiB buffers (in a reserved, never touched mapping): 2^32 bytes. */
START_TEST(total_len_over_4g)
{
	struct hx h;
	const uint64_t big_gpa = 1ull << 36;
	const size_t big = (size_t)3 << 30;
	void *m;
	struct d ds[2] = {RD(big_gpa, 0x80000000u), {.addr = big_gpa, .len = 0x80000000u,
						     .flags = VRING_DESC_F_WRITE}};
	struct d ok[2] = {RD(big_gpa, 0x80000000u), {.addr = big_gpa, .len = 0x7fffffffu,
						     .flags = VRING_DESC_F_WRITE}};
	struct vdev_queue_elem e;
	struct iovec iov[4];
	uint64_t g[4];

	m = mmap(NULL, big, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	ck_assert_msg(m != MAP_FAILED, "cannot reserve 3 GiB of address space");
	hx_init(&h, _i, 8, 0);
	ck_assert_int_eq(vdev_mem_add_region(h.mem, big_gpa, big, m, 0), 0);
	/* boundary: 2^32 - 1 in total is fine */
	publish_chain(&h, ok, 2, 0);
	elem_init(&e, iov, g, 4);
	ck_assert_int_eq(vdev_queue_pop(h.q, &e), 1);
	ck_assert_uint_eq(e.out_len + e.in_len, 0xffffffffull);
	ck_assert_int_ge(vdev_queue_push(h.q, &e, 0), 0);
	publish_chain(&h, ds, 2, 2);
	expect_broken_after_pop(&h);
	hx_fini(&h);
	munmap(m, big);
}
END_TEST

START_TEST(split_avail_idx_too_far)
{
	struct hx h;
	uint32_t i;

	/* boundary: exactly size ahead is fine */
	hx_init(&h, 0, 8, 0);
	for (i = 0; i < 8; i++) {
		s_desc(&h, i, (struct d){.addr = DATA_GPA, .len = 8});
		s_avail(&h, (uint16_t)i);
	}
	ck_assert_int_eq(vdev_queue_has_avail(h.q), 1);
	for (i = 0; i < 8; i++)
		expect_ok(&h);
	ck_assert_int_eq(pop(&h), 0);
	hx_fini(&h);

	hx_init(&h, 0, 8, 0);
	for (i = 0; i < 8; i++)
		s_desc(&h, i, (struct d){.addr = DATA_GPA, .len = 8});
	s_set_avail_idx(&h, 9);
	h.aidx = 9;
	ck_assert_int_eq(vdev_queue_has_avail(h.q), -EBADMSG);
	ck_assert_int_lt(vdev_queue_is_broken(h.q), 0);
	expect_broken_after_pop(&h);
	hx_fini(&h);

	/* after some progress: last seen 3, idx 3 + 9 */
	hx_init(&h, 0, 8, 0);
	for (i = 0; i < 8; i++)
		s_desc(&h, i, (struct d){.addr = DATA_GPA, .len = 8});
	for (i = 0; i < 3; i++)
		s_avail(&h, (uint16_t)i);
	for (i = 0; i < 3; i++)
		expect_ok(&h);
	s_set_avail_idx(&h, 12);
	h.aidx = 12;
	expect_broken_after_pop(&h);
	hx_fini(&h);

	/* idx going backwards (0xffff ahead) */
	hx_init(&h, 0, 8, 0);
	s_set_avail_idx(&h, 0xffff);
	h.aidx = 0xffff;
	expect_broken_after_pop(&h);
	hx_fini(&h);
}
END_TEST

static void expect_new(struct hx *h, struct vdev_queue_config qc, int err)
{
	vdev_queue *q = (vdev_queue *)h;
	int r = vdev_queue_new(&qc, h->mem, &q);

	ck_assert_msg(r == err, "size %u flags %#x desc %#llx drv %#llx dev %#llx: got %d want %d",
		      qc.size, qc.flags, (unsigned long long)qc.desc_addr,
		      (unsigned long long)qc.driver_addr, (unsigned long long)qc.device_addr, r, err);
	if (err)
		ck_assert_ptr_eq(q, (vdev_queue *)h);
	else
		vdev_queue_free(q);
}

START_TEST(new_bad_parameters)
{
	struct hx h;
	uint32_t pk = _i ? VDEV_QUEUE_F_PACKED : 0;
	struct vdev_queue_config qc;

	hx_mem(&h);
	expect_new(&h, hx_cfg(8, pk), 0);
	expect_new(&h, hx_cfg(0, pk), -EINVAL);
	expect_new(&h, hx_cfg(65536, pk), -EINVAL);
	expect_new(&h, hx_cfg(32769, pk), -EINVAL);
	expect_new(&h, hx_cfg(3, pk), _i ? 0 : -EINVAL);
	expect_new(&h, hx_cfg(6, pk), _i ? 0 : -EINVAL);
	expect_new(&h, hx_cfg(8, pk | 0x80), -EINVAL);
	/* the largest queue fits */
	qc = hx_cfg(32768, pk);
	qc.desc_addr = BASE + 0x80000;
	qc.driver_addr = BASE + 0x100000;
	qc.device_addr = BASE + 0x120000;
	expect_new(&h, qc, 0);

	/* misalignment: split 16/2/4, packed 16/4/4 */
	qc = hx_cfg(8, pk);
	qc.desc_addr += 8;
	expect_new(&h, qc, -EINVAL);
	qc = hx_cfg(8, pk);
	qc.driver_addr += _i ? 2 : 1;
	expect_new(&h, qc, -EINVAL);
	qc = hx_cfg(8, pk);
	qc.device_addr += 2;
	expect_new(&h, qc, -EINVAL);
	if (!_i) {
		qc = hx_cfg(8, pk);
		qc.driver_addr += 2;
		qc.device_addr += 4;
		expect_new(&h, qc, 0);
	}

	/* outside guest memory */
	qc = hx_cfg(8, pk);
	qc.desc_addr = 0;
	expect_new(&h, qc, -EFAULT);
	qc = hx_cfg(8, pk);
	qc.driver_addr = BASE + MSZ;
	expect_new(&h, qc, -EFAULT);
	qc = hx_cfg(8, pk);
	qc.device_addr = _i ? BASE + MSZ + 0x1000 : BASE + MSZ - 16; /* used ring needs 70 bytes */
	expect_new(&h, qc, -EFAULT);
	qc = hx_cfg(8, pk);
	qc.desc_addr = BASE + MSZ - 64; /* 8 descriptors need 128 bytes */
	expect_new(&h, qc, -EFAULT);
	qc = hx_cfg(8, pk);
	qc.driver_addr = 0xfffffffffffffff0ull;
	expect_new(&h, qc, -EFAULT);
	qc = hx_cfg(32768, pk);
	qc.desc_addr = BASE + MSZ - 0x40000; /* needs 0x80000 */
	expect_new(&h, qc, -EFAULT);

	/* the device writes the used ring (split) / descriptor ring and device
	 * area (packed): not in a read-only region; what it only reads may be */
	qc = hx_cfg(8, pk);
	qc.device_addr = RO_GPA;
	expect_new(&h, qc, -EFAULT);
	if (_i) {
		qc = hx_cfg(8, pk);
		qc.desc_addr = RO_GPA;
		expect_new(&h, qc, -EFAULT);
		qc = hx_cfg(8, pk);
		qc.driver_addr = RO_GPA;
		expect_new(&h, qc, 0);
	} else {
		qc = hx_cfg(8, pk);
		qc.desc_addr = RO_GPA;
		qc.driver_addr = RO_GPA + 0x1000;
		expect_new(&h, qc, 0);
	}
	vdev_mem_free(h.mem);
	free(h.buf);
	free(h.ro);
}
END_TEST

/* Packed: NEXT on every descriptor all the way round the ring. */
START_TEST(packed_next_all_the_way_round)
{
	struct hx h;
	struct d ds[16];

	for (uint32_t i = 0; i < 16; i++)
		ds[i] = (struct d)RD(DATA_GPA + 16 * i, 8);
	/* boundary: a chain of exactly size descriptors is fine */
	hx_init(&h, 1, 16, 0);
	ds[15].flags = 0;
	ds[15].id = 3;
	p_publish(&h, ds, 16);
	{
		static struct iovec iov[32];
		static uint64_t g[32];
		struct vdev_queue_elem e;
		elem_init(&e, iov, g, 32);
		ck_assert_int_eq(vdev_queue_pop(h.q, &e), 1);
		ck_assert_uint_eq(e.ndescs, 16);
		ck_assert_uint_eq(e.out_num, 16);
		ck_assert_uint_eq(e.id, 3);
		ck_assert_int_eq(vdev_queue_push(h.q, &e, 0), 1);
	}
	ds[15].flags = VRING_DESC_F_NEXT;
	p_publish(&h, ds, 16);
	expect_broken_after_pop(&h);
	hx_fini(&h);

	/* fresh ring, odd size */
	hx_init(&h, 1, 7, 0);
	p_publish(&h, ds, 7);
	expect_broken_after_pop(&h);
	hx_fini(&h);

	/* a ring larger than the caller's iov_cap (256): still malformed, not
	 * -ENOBUFS (a caller cannot grow iov_cap forever) */
	hx_mem(&h);
	h.packed = 1;
	h.size = 1024;
	{
		struct vdev_queue_config qc = hx_cfg(1024, VDEV_QUEUE_F_PACKED);
		qc.desc_addr = BASE + 0x80000;
		qc.driver_addr = BASE + 0x100000;
		qc.device_addr = BASE + 0x100010;
		ck_assert_int_eq(vdev_queue_new(&qc, h.mem, &h.q), 0);
		for (uint32_t i = 0; i < 1024; i++)
			p_put(&h, BASE + 0x80000 + 16ull * i, (struct d)RD(DATA_GPA, 8), P_AVAIL);
		ck_assert_int_eq(pop(&h), -EBADMSG);
		ck_assert_int_eq(pop(&h), -EBADMSG);
		ck_assert_int_lt(vdev_queue_is_broken(h.q), 0);
	}
	hx_fini(&h);
}
END_TEST

/* The same head (split) / buffer id (packed) offered again while in flight. */
START_TEST(reused_while_in_flight)
{
	struct hx h;
	struct d d1[1] = {{.addr = DATA_GPA, .len = 8, .id = 3}};
	struct d d2[1] = {{.addr = DATA_GPA + 64, .len = 8, .id = 3}};

	hx_init(&h, _i, 8, 0);
	publish_chain(&h, d1, 1, 0);
	ck_assert_int_eq(pop(&h), 1);
	if (h.packed)
		p_publish(&h, d2, 1);
	else
		s_avail(&h, 0);
	expect_broken_after_pop(&h);
	hx_fini(&h);
}
END_TEST

/* More chains (split) / ring slots (packed) outstanding than the queue has:
 * the driver overwrote what the device still owns. */
START_TEST(more_outstanding_than_size)
{
	struct hx h;
	uint32_t i;

	hx_init(&h, _i, 4, 0);
	for (i = 0; i < 4; i++) {
		struct d d[1] = {{.addr = DATA_GPA + 64 * i, .len = 8, .id = (uint16_t)i}};
		publish_chain(&h, d, 1, i);
		ck_assert_int_eq(pop(&h), 1);
	}
	ck_assert_uint_eq(vdev_queue_inflight(h.q), 4);
	{
		struct d d[1] = {{.addr = DATA_GPA, .len = 8, .id = 7}};
		if (h.packed) {
			p_publish(&h, d, 1);
		} else {
			s_desc(&h, 0, d[0]);
			s_avail(&h, 0);
		}
	}
	expect_broken_after_pop(&h);
	hx_fini(&h);
}
END_TEST

/* ---- read once: a custom vdev_mem whose translate changes the ring ---- */
struct ro_ctx {
	struct hx *h;
	uint64_t trigger;
	int fired;
	int packed;
	uint32_t size;
};

static int ro_translate(void *opaque, uint64_t gpa, uint64_t len, uint32_t access, void **hva,
			uint64_t *contig)
{
	struct ro_ctx *c = opaque;
	struct hx *h = c->h;

	if (gpa < BASE || gpa >= BASE + MSZ)
		return -EFAULT;
	*hva = h->buf + (gpa - BASE);
	*contig = VDI_MIN(len, BASE + MSZ - gpa);
	if (gpa == c->trigger && !c->fired) {
		c->fired = 1;
		/* The driver rewrites what the device already read: the
		 * descriptor in the ring (length, flags), the indirect entry,
		 * and (split) the avail ring entry. */
		if (!c->packed) {
			s_desc(h, 1, (struct d){.addr = DATA_GPA, .len = 0x100000,
						.flags = VRING_DESC_F_NEXT | VRING_DESC_F_WRITE,
						.next = 1});
			s_put(h, TBL_GPA, (struct d){.addr = DATA_GPA, .len = 0x100000,
						     .flags = VRING_DESC_F_NEXT, .next = 0});
			{
				uint16_t v = vdi_le16(6);
				memcpy(hp(h, DRV_GPA + 4), &v, 2);
				memcpy(hp(h, DRV_GPA + 6), &v, 2);
			}
		} else {
			struct vring_packed_desc d;
			for (uint32_t s = 0; s < 2; s++) {
				memcpy(&d, hp(h, DESC_GPA + 16 * s), sizeof(d));
				d.len = vdi_le32(0x100000);
				d.id = vdi_le16(5);
				d.flags = (uint16_t)(d.flags | vdi_le16(VRING_DESC_F_NEXT));
				memcpy(hp(h, DESC_GPA + 16 * s), &d, sizeof(d));
			}
			p_put(h, TBL_GPA, (struct d){.addr = DATA_GPA, .len = 0x100000,
						     .flags = VRING_DESC_F_WRITE}, 0);
		}
	}
	return 0;
}

START_TEST(read_once)
{
	struct hx h;
	struct ro_ctx c;
	struct vdev_mem_ops ops = VDEV_MEM_OPS_INIT;
	struct vdev_queue_config qc;
	struct vdev_queue_elem e;
	struct iovec iov[8];
	uint64_t g[8];

	/* Direct descriptor: translation of its buffer rewrites the ring. */
	for (int indirect = 0; indirect < 2; indirect++) {
		hx_mem(&h);
		vdev_mem_free(h.mem);
		memset(&c, 0, sizeof(c));
		c.h = &h;
		c.packed = _i;
		c.size = 8;
		c.trigger = DATA_GPA + 0x40;
		ops.translate = ro_translate;
		ck_assert_int_eq(vdev_mem_new_custom(&ops, &c, &h.mem), 0);
		h.packed = _i;
		h.size = 8;
		qc = hx_cfg(8, (_i ? VDEV_QUEUE_F_PACKED : 0) | VDEV_QUEUE_F_INDIRECT);
		ck_assert_int_eq(vdev_queue_new(&qc, h.mem, &h.q), 0);
		if (!indirect) {
			struct d ds[1] = {{.addr = DATA_GPA + 0x40, .len = 100, .id = 2}};
			publish_chain(&h, ds, 1, 1);
		} else {
			t_put(&h, TBL_GPA, 0, (struct d){.addr = DATA_GPA + 0x40, .len = 100});
			struct d ds[1] = {{.addr = TBL_GPA, .len = 16, .id = 2,
					   .flags = VRING_DESC_F_INDIRECT}};
			publish_chain(&h, ds, 1, 1);
		}
		elem_init(&e, iov, g, 8);
		ck_assert_int_eq(vdev_queue_pop(h.q, &e), 1);
		ck_assert_msg(c.fired, "the buffer was not translated through the custom ops");
		ck_assert_uint_eq(e.out_num, 1);
		ck_assert_uint_eq(e.in_num, 0);
		ck_assert_uint_eq(e.out_len, 100);
		ck_assert_uint_eq(iov[0].iov_len, 100);
		ck_assert_uint_eq(g[0], DATA_GPA + 0x40);
		if (_i) {
			ck_assert_uint_eq(e.id, 2);
			ck_assert_uint_eq(e.ndescs, 1);
		} else {
			ck_assert_uint_eq(e.id, 1);
		}
		ck_assert_int_ge(vdev_queue_push(h.q, &e, 0), 0);
		if (!_i) {
			struct vring_used_elem u;
			memcpy(&u, hp(&h, DEV_GPA + 4), sizeof(u));
			ck_assert_uint_eq(vdi_le32(u.id), 1);
		} else {
			struct vring_packed_desc d;
			memcpy(&d, hp(&h, DESC_GPA), sizeof(d));
			ck_assert_uint_eq(vdi_le16(d.id), 2);
		}
		vdev_queue_free(h.q);
		h.q = NULL;
		hx_fini(&h);
	}
}
END_TEST

static Suite *hostile_suite(void)
{
	Suite *s = suite_create("queue-hostile");
	TCase *tc = tcase_create("both layouts");

	tcase_set_timeout(tc, 10);
	tcase_add_loop_test(tc, valid_chains, 0, 2);
	tcase_add_loop_test(tc, nested_indirect, 0, 2);
	tcase_add_loop_test(tc, indirect_len_zero, 0, 2);
	tcase_add_loop_test(tc, indirect_len_not_multiple, 0, 2);
	tcase_add_loop_test(tc, indirect_table_longer_than_queue, 0, 2);
	tcase_add_loop_test(tc, indirect_with_next, 0, 2);
	tcase_add_loop_test(tc, indirect_without_feature, 0, 2);
	tcase_add_loop_test(tc, readable_after_writable_direct, 0, 2);
	tcase_add_loop_test(tc, readable_after_writable_indirect, 0, 2);
	tcase_add_loop_test(tc, addr_len_overflow, 0, 2);
	tcase_add_loop_test(tc, buffer_outside_memory, 0, 2);
	tcase_add_loop_test(tc, writable_in_readonly_region, 0, 2);
	tcase_add_loop_test(tc, indirect_table_outside_memory, 0, 2);
	tcase_add_loop_test(tc, total_len_over_4g, 0, 2);
	tcase_add_loop_test(tc, new_bad_parameters, 0, 2);
	tcase_add_loop_test(tc, read_once, 0, 2);
	tcase_add_loop_test(tc, reused_while_in_flight, 0, 2);
	tcase_add_loop_test(tc, more_outstanding_than_size, 0, 2);
	suite_add_tcase(s, tc);

	tc = tcase_create("split only");
	tcase_set_timeout(tc, 10);
	tcase_add_test(tc, split_desc_loop);
	tcase_add_test(tc, split_chain_longer_than_queue);
	tcase_add_test(tc, split_head_out_of_range);
	tcase_add_test(tc, split_next_out_of_range);
	tcase_add_test(tc, split_avail_idx_too_far);
	suite_add_tcase(s, tc);

	tc = tcase_create("packed only");
	tcase_set_timeout(tc, 10);
	tcase_add_test(tc, packed_next_all_the_way_round);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(hostile_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
