/* SPDX-License-Identifier: MIT */
/*
 * In-flight tracking for vhost-user restarts (lib/core/inflight.c), white
 * box: split rings written by hand into fake guest memory, the region in a
 * memfd mapped anew after each simulated crash (the queue is dropped with
 * requests in flight and a new one is created over the same ring and
 * region). The region layout is declared here independently, from QEMU's
 * docs/interop/vhost-user.rst, so that a layout change in the library fails.
 */
#include <check.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/virtio_ring.h>

#include <virtio-dev/mem.h>
#include <virtio-dev/queue.h>

#include "core/queue_inflight.h"
#include "internal/util.h"

#define BASE 0x10000ull
#define MSZ (1u << 20)
#define DESC_GPA BASE
#define DRV_GPA (BASE + 0x1000)
#define DEV_GPA (BASE + 0x2000)
#define DATA_GPA (BASE + 0x10000)
#define SLOT 64u /* data bytes per head */

/* The protocol's DescStateSplit / QueueRegionSplit. */
struct t_desc {
	uint8_t inflight;
	uint8_t padding[5];
	uint16_t next;
	uint64_t counter;
};

struct t_region {
	uint64_t features;
	uint16_t version;
	uint16_t desc_num;
	uint16_t last_batch_head;
	uint16_t used_idx;
	struct t_desc desc[];
};

_Static_assert(sizeof(struct t_desc) == 16 && offsetof(struct t_desc, next) == 6 &&
		       offsetof(struct t_desc, counter) == 8,
	       "DescStateSplit layout");
_Static_assert(offsetof(struct t_region, used_idx) == 14 && offsetof(struct t_region, desc) == 16,
	       "QueueRegionSplit layout");

struct ix {
	uint8_t *buf; /* guest memory */
	vdev_mem *mem;
	vdev_queue *q;
	uint32_t size;
	uint32_t qflags;
	uint16_t aidx; /* driver's avail idx */
	int memfd;
	size_t rlen;
	struct t_region *rg; /* the current mapping of the memfd */
};

static void *gp(struct ix *h, uint64_t gpa)
{
	ck_assert(gpa >= BASE && gpa < BASE + MSZ);
	return h->buf + (gpa - BASE);
}

static void map_region(struct ix *h)
{
	void *p = mmap(NULL, h->rlen, PROT_READ | PROT_WRITE, MAP_SHARED, h->memfd, 0);

	ck_assert_ptr_ne(p, MAP_FAILED);
	h->rg = p;
}

static void new_queue(struct ix *h)
{
	struct vdev_queue_config qc = VDEV_QUEUE_CONFIG_INIT;

	qc.size = h->size;
	qc.flags = h->qflags;
	qc.desc_addr = DESC_GPA;
	qc.driver_addr = DRV_GPA;
	qc.device_addr = DEV_GPA;
	ck_assert_int_eq(vdev_queue_new(&qc, h->mem, &h->q), 0);
}

/* Guest memory, a queue of @size and a region for @desc_num descriptors
 * (formatted when @format). */
static void ix_init(struct ix *h, uint32_t size, uint16_t desc_num, int format)
{
	memset(h, 0, sizeof(*h));
	h->size = size;
	h->buf = aligned_alloc(4096, MSZ);
	ck_assert_ptr_nonnull(h->buf);
	memset(h->buf, 0, MSZ);
	ck_assert_int_eq(vdev_mem_new(&h->mem), 0);
	ck_assert_int_eq(vdev_mem_add_region(h->mem, BASE, MSZ, h->buf, 0), 0);
	new_queue(h);
	h->rlen = vdi_inflight_region_size(desc_num);
	h->memfd = memfd_create("test-inflight", MFD_CLOEXEC);
	ck_assert_int_ge(h->memfd, 0);
	ck_assert_int_eq(ftruncate(h->memfd, (off_t)h->rlen), 0);
	map_region(h);
	if (format)
		vdi_inflight_region_init(h->rg, desc_num);
}

static void ix_fini(struct ix *h)
{
	vdev_queue_free(h->q);
	munmap(h->rg, h->rlen);
	close(h->memfd);
	vdev_mem_free(h->mem);
	free(h->buf);
}

static int attach(struct ix *h)
{
	return vdi_queue_set_inflight(h->q, h->rg, h->rlen);
}

static uint16_t ring_used_idx(struct ix *h)
{
	uint16_t v;

	memcpy(&v, gp(h, DEV_GPA + 2), 2);
	return vdi_le16(v);
}

static void set_ring_used_idx(struct ix *h, uint16_t idx)
{
	uint16_t v = vdi_le16(idx);

	memcpy(gp(h, DEV_GPA + 2), &v, 2);
}

static uint32_t ring_used_id(struct ix *h, uint16_t slot)
{
	uint32_t v;

	memcpy(&v, gp(h, DEV_GPA + 4 + 8ull * (slot % h->size)), 4);
	return vdi_le32(v);
}

static void put_desc(struct ix *h, uint32_t i, uint64_t addr, uint32_t len, uint16_t flags,
		     uint16_t next)
{
	struct vring_desc d = {vdi_le64(addr), vdi_le32(len), vdi_le16(flags), vdi_le16(next)};

	memcpy(gp(h, DESC_GPA + 16ull * i), &d, sizeof(d));
}

static void set_avail_idx(struct ix *h, uint16_t idx)
{
	uint16_t v = vdi_le16(idx);

	memcpy(gp(h, DRV_GPA + 2), &v, 2);
}

/* Make head @head available: one readable descriptor whose data holds @serial. */
static void offer(struct ix *h, uint16_t head, uint64_t serial)
{
	uint16_t v = vdi_le16(head);

	memcpy(gp(h, DATA_GPA + (uint64_t)SLOT * head), &serial, sizeof(serial));
	put_desc(h, head, DATA_GPA + (uint64_t)SLOT * head, 16, 0, 0);
	memcpy(gp(h, DRV_GPA + 4 + 2ull * (h->aidx % h->size)), &v, 2);
	h->aidx++;
	set_avail_idx(h, h->aidx);
}

static struct iovec iovs[16];
static uint64_t gpas[16];

static void elem_init(struct vdev_queue_elem *e, uint32_t cap)
{
	struct vdev_queue_elem z = VDEV_QUEUE_ELEM_INIT;

	*e = z;
	e->iov = iovs;
	e->gpa = gpas;
	e->iov_cap = cap;
}

/* Pop one chain made by offer(): check it and return its head. */
static uint16_t pop_one(struct ix *h, struct vdev_queue_elem *e, uint64_t *serial)
{
	elem_init(e, 16);
	ck_assert_int_eq(vdev_queue_pop(h->q, e), 1);
	ck_assert_uint_lt(e->id, h->size);
	ck_assert_uint_eq(e->out_num, 1);
	ck_assert_uint_eq(e->gpa[0], DATA_GPA + (uint64_t)SLOT * e->id);
	if (serial)
		memcpy(serial, e->iov[0].iov_base, sizeof(*serial));
	return (uint16_t)e->id;
}

static void pop_expect(struct ix *h, struct vdev_queue_elem *e, uint16_t head)
{
	ck_assert_uint_eq(pop_one(h, e, NULL), head);
}

static void expect_none(struct ix *h)
{
	struct vdev_queue_elem e;

	elem_init(&e, 16);
	ck_assert_int_eq(vdev_queue_pop(h->q, &e), 0);
}

static void fill_head(struct ix *h, uint16_t head)
{
	struct vdev_queue_elem e;

	elem_init(&e, 16);
	e.id = head;
	ck_assert_int_eq(vdev_queue_fill(h->q, &e, 0), 0);
}

/* The back-end dies: its queue goes away with whatever it held, the region
 * survives in the memfd; a new back-end maps it again and is told the ring
 * position the front-end knows (the used index, after a crash). */
static void crash(struct ix *h)
{
	struct vdev_queue_state st = VDEV_QUEUE_STATE_INIT;

	vdev_queue_free(h->q);
	munmap(h->rg, h->rlen);
	map_region(h);
	new_queue(h);
	st.last_avail_idx = st.used_idx = ring_used_idx(h);
	ck_assert_int_eq(vdev_queue_set_state(h->q, &st), 0);
}

static uint16_t state_last_avail(struct ix *h)
{
	struct vdev_queue_state st = VDEV_QUEUE_STATE_INIT;

	ck_assert_int_eq(vdev_queue_get_state(h->q, &st), 0);
	return st.last_avail_idx;
}

/* ---------------------------------------------------------------------- */

START_TEST(region_size_and_init)
{
	static const struct {
		uint16_t n;
		size_t bytes;
	} known[] = {{0, 64}, {1, 64}, {3, 64}, {4, 128}, {128, 2112}, {256, 4160},
		     {32768, 524352}, {65535, 1048576}};
	uint8_t *buf;
	struct t_region *rg;
	uint32_t n;

	for (n = 0; n < VDI_ARRAY_SIZE(known); n++)
		ck_assert_uint_eq(vdi_inflight_region_size(known[n].n), known[n].bytes);
	for (n = 0; n <= 65535; n++) {
		size_t s = vdi_inflight_region_size((uint16_t)n);

		/* libvhost-user's per-queue stride, so a memfd is laid out alike. */
		ck_assert_uint_eq(s, ((16ull * n + 2) + 63) / 64 * 64);
		ck_assert_uint_ge(s, 16 + 16ull * n);
	}

	/* init zeroes the header and the states, writes version and desc_num,
	 * and nothing past the region. */
	buf = aligned_alloc(64, 4096);
	ck_assert_ptr_nonnull(buf);
	memset(buf, 0xa5, 4096);
	rg = (struct t_region *)buf;
	vdi_inflight_region_init(rg, 8);
	ck_assert_uint_eq(rg->version, 1);
	ck_assert_uint_eq(rg->desc_num, 8);
	ck_assert_uint_eq(rg->features, 0);
	ck_assert_uint_eq(rg->last_batch_head, 0);
	ck_assert_uint_eq(rg->used_idx, 0);
	for (n = 0; n < 8; n++) {
		ck_assert_uint_eq(rg->desc[n].inflight, 0);
		ck_assert_uint_eq(rg->desc[n].next, 0);
		ck_assert_uint_eq(rg->desc[n].counter, 0);
	}
	for (n = (uint32_t)vdi_inflight_region_size(8); n < 4096; n++)
		ck_assert_uint_eq(buf[n], 0xa5);
	free(buf);
}
END_TEST

/* Pop, fill and flush write the region in the protocol's order. */
START_TEST(pop_fill_flush_update_region)
{
	static const uint16_t heads[3] = {5, 2, 7};
	struct vdev_queue_elem e;
	struct ix h;
	uint32_t i;

	ix_init(&h, 8, 8, 1);
	ck_assert_int_eq(attach(&h), 0);
	for (i = 0; i < 3; i++)
		offer(&h, heads[i], 100 + i);
	for (i = 0; i < 3; i++) {
		pop_expect(&h, &e, heads[i]);
		ck_assert_uint_eq(h.rg->desc[heads[i]].inflight, 1);
		if (i)
			ck_assert_uint_gt(h.rg->desc[heads[i]].counter,
					  h.rg->desc[heads[i - 1]].counter);
	}
	ck_assert_uint_eq(h.rg->desc[0].inflight, 0);

	/* fill links the batch; flags stay until the used index is out */
	fill_head(&h, 2);
	ck_assert_uint_eq(h.rg->last_batch_head, 2);
	ck_assert_uint_eq(h.rg->desc[2].inflight, 1);
	fill_head(&h, 7);
	ck_assert_uint_eq(h.rg->last_batch_head, 7);
	ck_assert_uint_eq(h.rg->desc[7].next, 2);
	ck_assert_uint_eq(h.rg->desc[7].inflight, 1);
	ck_assert_uint_eq(h.rg->used_idx, 0);
	ck_assert_uint_eq(ring_used_idx(&h), 0);

	ck_assert_int_ge(vdev_queue_flush(h.q), 0);
	ck_assert_uint_eq(ring_used_idx(&h), 2);
	ck_assert_uint_eq(h.rg->used_idx, 2);
	ck_assert_uint_eq(h.rg->desc[2].inflight, 0);
	ck_assert_uint_eq(h.rg->desc[7].inflight, 0);
	ck_assert_uint_eq(h.rg->desc[5].inflight, 1);

	fill_head(&h, 5);
	ck_assert_uint_eq(h.rg->desc[5].next, 7);
	ck_assert_int_ge(vdev_queue_flush(h.q), 0);
	ck_assert_uint_eq(h.rg->used_idx, 3);
	for (i = 0; i < 8; i++)
		ck_assert_uint_eq(h.rg->desc[i].inflight, 0);
	/* push = fill + flush, same bookkeeping */
	offer(&h, 4, 200);
	pop_expect(&h, &e, 4);
	ck_assert_uint_eq(h.rg->desc[4].inflight, 1);
	ck_assert_uint_gt(h.rg->desc[4].counter, h.rg->desc[7].counter);
	ck_assert_int_ge(vdev_queue_push(h.q, &e, 0), 0);
	ck_assert_uint_eq(h.rg->desc[4].inflight, 0);
	ck_assert_uint_eq(h.rg->used_idx, 4);
	ix_fini(&h);
}
END_TEST

/* Crash with requests popped, filled-not-flushed and not yet popped: the new
 * queue gets the in-flight ones back oldest first, then the ring goes on. */
START_TEST(crash_resubmits_oldest_first)
{
	static const uint16_t order[5] = {3, 0, 6, 1, 4};
	struct vdev_queue_elem e;
	uint64_t serial;
	struct ix h;
	uint32_t i;

	ix_init(&h, 8, 8, 1);
	ck_assert_int_eq(attach(&h), 0);
	for (i = 0; i < 5; i++)
		offer(&h, order[i], 1000 + i);
	for (i = 0; i < 5; i++)
		pop_expect(&h, &e, order[i]);
	fill_head(&h, 6);
	ck_assert_int_ge(vdev_queue_flush(h.q), 0); /* 6 completes out of order */
	fill_head(&h, 0);                          /* filled, never published */
	offer(&h, 2, 1005);
	offer(&h, 5, 1006);

	crash(&h);
	ck_assert_uint_eq(ring_used_idx(&h), 1);
	ck_assert_int_eq(attach(&h), 4);
	/* Position from the used ring: 1 used + 4 in flight. */
	ck_assert_uint_eq(state_last_avail(&h), 5);
	ck_assert_int_eq(vdev_queue_has_avail(h.q), 1);
	{
		static const uint16_t again[4] = {3, 0, 1, 4};
		static const uint64_t serials[4] = {1000, 1001, 1003, 1004};

		for (i = 0; i < 4; i++) {
			ck_assert_uint_eq(pop_one(&h, &e, &serial), again[i]);
			ck_assert_uint_eq(serial, serials[i]);
		}
	}
	/* Resubmissions consumed no available entry. */
	ck_assert_uint_eq(state_last_avail(&h), 5);
	ck_assert_uint_eq(pop_one(&h, &e, &serial), 2);
	ck_assert_uint_eq(serial, 1005);
	ck_assert_uint_eq(pop_one(&h, &e, &serial), 5);
	ck_assert_uint_eq(serial, 1006);
	ck_assert_uint_gt(h.rg->desc[2].counter, h.rg->desc[4].counter);
	ck_assert_uint_gt(h.rg->desc[5].counter, h.rg->desc[2].counter);
	expect_none(&h);
	ck_assert_uint_eq(vdev_queue_inflight(h.q), 6);

	/* Complete everything: the driver sees each head once, region clean. */
	for (i = 0; i < 8; i++)
		if (i != 6 && i != 7)
			fill_head(&h, (uint16_t)i);
	ck_assert_int_ge(vdev_queue_flush(h.q), 0);
	ck_assert_uint_eq(ring_used_idx(&h), 7);
	ck_assert_uint_eq(h.rg->used_idx, 7);
	{
		uint32_t seen = 0;

		for (i = 0; i < 7; i++)
			seen |= 1u << ring_used_id(&h, (uint16_t)i);
		ck_assert_uint_eq(seen, 0x7f);
	}
	for (i = 0; i < 8; i++)
		ck_assert_uint_eq(h.rg->desc[i].inflight, 0);
	ck_assert_int_eq(vdev_queue_is_broken(h.q), 0);
	ix_fini(&h);
}
END_TEST

/* Resubmissions wait in no ring: has_avail and set_notification(1) must
 * report them although the available ring has nothing new; set_state must
 * not move the ring under them. */
START_TEST(resubmissions_are_reported)
{
	struct vdev_queue_state st = VDEV_QUEUE_STATE_INIT;
	struct vdev_queue_elem e;
	struct ix h;

	ix_init(&h, 8, 8, 1);
	h.qflags = VDEV_QUEUE_F_EVENT_IDX;
	vdev_queue_free(h.q);
	new_queue(&h);
	ck_assert_int_eq(attach(&h), 0);
	offer(&h, 1, 1);
	offer(&h, 2, 2);
	pop_expect(&h, &e, 1);
	pop_expect(&h, &e, 2);
	crash(&h);
	ck_assert_int_eq(attach(&h), 2);
	ck_assert_int_eq(vdev_queue_has_avail(h.q), 1);
	ck_assert_int_eq(vdev_queue_set_notification(h.q, 0), 0);
	ck_assert_int_eq(vdev_queue_set_notification(h.q, 1), 1);
	st.last_avail_idx = st.used_idx = 0;
	ck_assert_int_eq(vdev_queue_set_state(h.q, &st), -EBUSY);
	pop_expect(&h, &e, 1);
	ck_assert_int_eq(vdev_queue_has_avail(h.q), 1);
	pop_expect(&h, &e, 2);
	ck_assert_int_eq(vdev_queue_has_avail(h.q), 0);
	ck_assert_int_eq(vdev_queue_set_notification(h.q, 1), 0);
	expect_none(&h);
	ix_fini(&h);
}
END_TEST

/*
 * A crash inside flush: the used index reached the ring, then @_i of the
 * batch's two flags were cleared, and the region's used_idx was not written.
 * The batch is repaired (not resubmitted), the rest is.
 */
START_TEST(half_published_batch_is_repaired)
{
	struct vdev_queue_elem e;
	struct ix h;

	ix_init(&h, 8, 8, 1);
	ck_assert_int_eq(attach(&h), 0);
	offer(&h, 4, 40);
	offer(&h, 6, 60);
	offer(&h, 1, 10);
	pop_expect(&h, &e, 4);
	pop_expect(&h, &e, 6);
	pop_expect(&h, &e, 1);
	fill_head(&h, 6);
	fill_head(&h, 4);
	/* What flush does first... */
	set_ring_used_idx(&h, 2);
	/* ...then partly what it does next. */
	if (_i >= 1)
		h.rg->desc[4].inflight = 0;
	if (_i >= 2)
		h.rg->desc[6].inflight = 0;
	ck_assert_uint_eq(h.rg->used_idx, 0);
	ck_assert_uint_eq(h.rg->last_batch_head, 4);

	crash(&h);
	ck_assert_int_eq(attach(&h), 1);
	ck_assert_uint_eq(h.rg->used_idx, 2);
	ck_assert_uint_eq(h.rg->desc[4].inflight, 0);
	ck_assert_uint_eq(h.rg->desc[6].inflight, 0);
	ck_assert_uint_eq(h.rg->desc[1].inflight, 1);
	ck_assert_uint_eq(state_last_avail(&h), 3);
	pop_expect(&h, &e, 1);
	offer(&h, 4, 41);
	pop_expect(&h, &e, 4);
	expect_none(&h);
	ix_fini(&h);
}
END_TEST

/* The order is the counters', whatever the heads; ties go by head. New
 * pops count on from the largest. */
START_TEST(order_follows_counters)
{
	struct vdev_queue_elem e;
	struct ix h;

	ix_init(&h, 8, 8, 1);
	h.rg->desc[5].inflight = 1;
	h.rg->desc[5].counter = 100;
	h.rg->desc[1].inflight = 1;
	h.rg->desc[1].counter = 7;
	h.rg->desc[6].inflight = 1;
	h.rg->desc[6].counter = 50;
	h.rg->desc[3].inflight = 1;
	h.rg->desc[3].counter = 50;
	for (uint16_t i = 0; i < 8; i++)
		offer(&h, i, i);
	ck_assert_int_eq(attach(&h), 4);
	ck_assert_uint_eq(state_last_avail(&h), 4);
	pop_expect(&h, &e, 1);
	pop_expect(&h, &e, 3);
	pop_expect(&h, &e, 6);
	pop_expect(&h, &e, 5);
	/* avail[4] holds head 4 */
	pop_expect(&h, &e, 4);
	ck_assert_uint_eq(h.rg->desc[4].counter, 101);
	ix_fini(&h);
}
END_TEST

/* A region fresh from init on a ring already far along (a migration
 * target): used_idx 0 there means nothing, nothing is in flight. */
START_TEST(fresh_region_on_running_ring)
{
	struct vdev_queue_state st = VDEV_QUEUE_STATE_INIT;
	struct vdev_queue_elem e;
	struct ix h;

	ix_init(&h, 8, 8, 1);
	h.aidx = 1000;
	set_ring_used_idx(&h, 1000);
	st.last_avail_idx = st.used_idx = 1000;
	ck_assert_int_eq(vdev_queue_set_state(h.q, &st), 0);
	offer(&h, 3, 3);
	ck_assert_int_eq(attach(&h), 0);
	ck_assert_uint_eq(h.rg->used_idx, 1000);
	pop_expect(&h, &e, 3);
	ck_assert_int_ge(vdev_queue_push(h.q, &e, 0), 0);
	ck_assert_uint_eq(h.rg->used_idx, 1001);
	ck_assert_uint_eq(ring_used_idx(&h), 1001);
	ix_fini(&h);
}
END_TEST

/* Version 0 is the protocol's uninitialized buffer: attach formats it. */
START_TEST(version_zero_is_formatted)
{
	struct vdev_queue_elem e;
	struct ix h;

	ix_init(&h, 8, 8, 0);
	memset(h.rg, 0xff, h.rlen);
	h.rg->version = 0;
	offer(&h, 2, 2);
	ck_assert_int_eq(attach(&h), 0);
	ck_assert_uint_eq(h.rg->version, 1);
	ck_assert_uint_eq(h.rg->desc_num, 8);
	ck_assert_uint_eq(h.rg->features, 0);
	ck_assert_uint_eq(h.rg->desc[7].inflight, 0);
	pop_expect(&h, &e, 2);
	ck_assert_uint_eq(h.rg->desc[2].inflight, 1);
	ix_fini(&h);
}
END_TEST

/* A region sized for a larger queue (the front-end's maximum) is fine. */
START_TEST(desc_num_above_size)
{
	struct vdev_queue_elem e;
	struct ix h;

	ix_init(&h, 8, 16, 1);
	h.rg->desc[2].inflight = 1;
	offer(&h, 2, 2);
	ck_assert_int_eq(attach(&h), 1);
	pop_expect(&h, &e, 2);
	ix_fini(&h);
}
END_TEST

/* A full queue in flight is legal. */
START_TEST(whole_queue_in_flight)
{
	struct vdev_queue_elem e;
	struct ix h;
	uint16_t i;

	ix_init(&h, 8, 8, 1);
	ck_assert_int_eq(attach(&h), 0);
	for (i = 0; i < 8; i++)
		offer(&h, i, i);
	for (i = 0; i < 8; i++)
		pop_expect(&h, &e, i);
	crash(&h);
	ck_assert_int_eq(attach(&h), 8);
	for (i = 0; i < 8; i++)
		pop_expect(&h, &e, i);
	ck_assert_uint_eq(vdev_queue_inflight(h.q), 8);
	ix_fini(&h);
}
END_TEST

/* ---- hostile regions: refused, and neither queue nor region touched ---- */

enum hostile {
	H_VERSION,
	H_FEATURES,
	H_DESC_NUM_SMALL,
	H_HEAD_BEYOND_SIZE,
	H_FLAG_NOT_BOOL,
	H_TOO_MANY,
	H_LEN_SHORT,
	H_LEN_HEADER,
	H_LEN_VERSION0,
	H_BATCH_TOO_LONG,
	H_BATCH_HEAD_RANGE,
	H_BATCH_NEXT_RANGE,
	H_MISALIGNED,
	H_COUNT
};

START_TEST(hostile_region_refused)
{
	struct vdev_queue_elem e;
	uint8_t *before;
	void *region;
	size_t len;
	struct ix h;

	/* desc_num 16 leaves room to name heads beyond the queue's 8. */
	ix_init(&h, 8, 16, 1);
	h.rg->desc[1].inflight = 1;
	offer(&h, 1, 1);
	offer(&h, 2, 2);
	region = h.rg;
	len = h.rlen;
	switch (_i) {
	case H_VERSION:
		h.rg->version = 2;
		break;
	case H_FEATURES:
		h.rg->features = 1;
		break;
	case H_DESC_NUM_SMALL:
		h.rg->desc_num = 4;
		break;
	case H_HEAD_BEYOND_SIZE:
		h.rg->desc[8].inflight = 1;
		break;
	case H_FLAG_NOT_BOOL:
		h.rg->desc[3].inflight = 2;
		break;
	case H_TOO_MANY: /* 3 in flight, 2 available and unused */
		h.rg->desc[2].inflight = 1;
		h.rg->desc[5].inflight = 1;
		break;
	case H_LEN_SHORT:
		len = 16 + 16 * 16 - 1;
		break;
	case H_LEN_HEADER:
		len = 15;
		break;
	case H_LEN_VERSION0:
		h.rg->version = 0;
		len = 16 + 16 * 8 - 1;
		break;
	case H_BATCH_TOO_LONG: /* the ring's used index 9 ahead of the region's */
		h.rg->used_idx = (uint16_t)-9;
		break;
	case H_BATCH_HEAD_RANGE:
		h.rg->used_idx = (uint16_t)-1;
		h.rg->last_batch_head = 8;
		break;
	case H_BATCH_NEXT_RANGE:
		h.rg->used_idx = (uint16_t)-2;
		h.rg->last_batch_head = 2;
		h.rg->desc[2].next = 200;
		break;
	case H_MISALIGNED:
		region = (uint8_t *)h.rg + 4;
		len -= 4;
		break;
	}
	before = malloc(h.rlen);
	ck_assert_ptr_nonnull(before);
	memcpy(before, h.rg, h.rlen);
	ck_assert_int_eq(vdi_queue_set_inflight(h.q, region, len), -EINVAL);
	ck_assert_int_eq(memcmp(before, h.rg, h.rlen), 0);
	free(before);
	/* The queue goes on as if nothing had been offered to it. */
	ck_assert_uint_eq(state_last_avail(&h), 0);
	pop_expect(&h, &e, 1);
	ck_assert_int_eq(vdev_queue_is_broken(h.q), 0);
	ix_fini(&h);
}
END_TEST

/* Used index far ahead but nothing flagged: nothing to repair, accepted. */
START_TEST(unflagged_gap_accepted)
{
	struct ix h;

	ix_init(&h, 8, 8, 1);
	h.rg->used_idx = 30000;
	set_ring_used_idx(&h, 7);
	h.aidx = 7;
	set_avail_idx(&h, 7);
	ck_assert_int_eq(attach(&h), 0);
	ck_assert_uint_eq(h.rg->used_idx, 7);
	ck_assert_uint_eq(state_last_avail(&h), 7);
	ix_fini(&h);
}
END_TEST

START_TEST(bad_calls)
{
	struct vdev_queue_config qc = VDEV_QUEUE_CONFIG_INIT;
	struct vdev_queue_state st = VDEV_QUEUE_STATE_INIT;
	struct vdev_queue_elem e;
	vdev_queue *pq;
	struct ix h;

	ix_init(&h, 8, 8, 1);
	ck_assert_int_eq(vdi_queue_set_inflight(NULL, h.rg, h.rlen), -EINVAL);
	ck_assert_int_eq(vdi_queue_set_inflight(h.q, NULL, h.rlen), -EINVAL);

	/* packed */
	qc.size = 8;
	qc.flags = VDEV_QUEUE_F_PACKED;
	qc.desc_addr = DESC_GPA;
	qc.driver_addr = DRV_GPA;
	qc.device_addr = DEV_GPA;
	ck_assert_int_eq(vdev_queue_new(&qc, h.mem, &pq), 0);
	ck_assert_int_eq(vdi_queue_set_inflight(pq, h.rg, h.rlen), -EOPNOTSUPP);
	vdev_queue_free(pq);

	/* after a pop, in flight or completed */
	offer(&h, 0, 0);
	pop_expect(&h, &e, 0);
	ck_assert_int_eq(attach(&h), -EBUSY);
	ck_assert_int_ge(vdev_queue_push(h.q, &e, 0), 0);
	ck_assert_int_eq(attach(&h), -EBUSY);
	/* a new position makes it a fresh start */
	st.last_avail_idx = st.used_idx = 1;
	ck_assert_int_eq(vdev_queue_set_state(h.q, &st), 0);
	ck_assert_int_eq(attach(&h), 0);
	/* twice */
	ck_assert_int_eq(attach(&h), -EBUSY);
	ix_fini(&h);
}
END_TEST

/* Resubmitted chains are validated like any pop. */
START_TEST(resubmitted_chain_validated)
{
	struct vdev_queue_elem e;
	struct ix h;

	ix_init(&h, 8, 8, 1);
	ck_assert_int_eq(attach(&h), 0);
	offer(&h, 3, 3);
	offer(&h, 5, 5);
	pop_expect(&h, &e, 3);
	pop_expect(&h, &e, 5);
	crash(&h);
	/* Head 3 becomes two descriptors: too big for one iovec, then fine. */
	put_desc(&h, 3, DATA_GPA, 8, VRING_DESC_F_NEXT, 4);
	put_desc(&h, 4, DATA_GPA + 8, 8, VRING_DESC_F_WRITE, 0);
	/* Head 5 now chains out of range. */
	put_desc(&h, 5, DATA_GPA, 8, VRING_DESC_F_NEXT, 9);
	ck_assert_int_eq(attach(&h), 2);
	elem_init(&e, 1);
	ck_assert_int_eq(vdev_queue_pop(h.q, &e), -ENOBUFS);
	ck_assert_uint_eq(e.out_num + e.in_num, 2);
	elem_init(&e, 2);
	ck_assert_int_eq(vdev_queue_pop(h.q, &e), 1);
	ck_assert_uint_eq(e.id, 3);
	ck_assert_uint_eq(e.in_len, 8);
	elem_init(&e, 16);
	ck_assert_int_eq(vdev_queue_pop(h.q, &e), -EBADMSG);
	ck_assert_int_eq(vdev_queue_is_broken(h.q), -EBADMSG);
	ix_fini(&h);
}
END_TEST

/* ---- model check: random work with crashes at every API boundary ---- */

/*
 * The driver offers requests (a fresh serial each), the device pops, fills
 * out of order and flushes at random, the driver reaps the used ring, and
 * now and then the back-end dies, possibly inside a flush. The model knows
 * which requests were popped and not published: after each restart exactly
 * those come back, in pop order, and every request is reaped exactly once.
 */
#define MSIZE 16u

struct mreq {
	uint64_t serial;
	uint64_t seq; /* pop order, kept across restarts */
	int state;    /* 0 free, 1 offered, 2 popped, 3 filled, 4 published */
};

static uint32_t xrnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return (uint32_t)(*s >> 11);
}

START_TEST(model_random_crashes)
{
	struct mreq m[MSIZE];
	uint64_t next_serial = 1, next_seq = 1, reaped = 0;
	uint16_t used_seen = 0;
	struct vdev_queue_elem e;
	uint32_t step, restarts = 0, mid_flush = 0;
	uint64_t rng = 0x2545f4914f6cdd1dull;
	struct ix h;

	memset(m, 0, sizeof(m));
	ix_init(&h, MSIZE, MSIZE, 1);
	ck_assert_int_eq(attach(&h), 0);
	for (step = 0; step < 20000; step++) {
		uint32_t op = xrnd(&rng) % 100, i;

		if (op < 30) { /* driver offers a free head */
			uint16_t hd = (uint16_t)(xrnd(&rng) % MSIZE);

			for (i = 0; i < MSIZE && m[(hd + i) % MSIZE].state; i++)
				;
			if (i < MSIZE) {
				hd = (uint16_t)((hd + i) % MSIZE);
				m[hd].serial = next_serial++;
				m[hd].state = 1;
				offer(&h, hd, m[hd].serial);
			}
		} else if (op < 55) { /* device pops */
			uint64_t serial;
			int r;

			elem_init(&e, 16);
			r = vdev_queue_pop(h.q, &e);
			ck_assert_int_ge(r, 0);
			if (r) {
				ck_assert_uint_eq(m[e.id].state, 1);
				memcpy(&serial, e.iov[0].iov_base, 8);
				ck_assert_uint_eq(serial, m[e.id].serial);
				m[e.id].state = 2;
				m[e.id].seq = next_seq++;
			}
		} else if (op < 75) { /* device completes one, out of order */
			uint16_t hd = (uint16_t)(xrnd(&rng) % MSIZE);

			for (i = 0; i < MSIZE && m[(hd + i) % MSIZE].state != 2; i++)
				;
			if (i < MSIZE) {
				hd = (uint16_t)((hd + i) % MSIZE);
				fill_head(&h, hd);
				m[hd].state = 3;
			}
		} else if (op < 85) { /* flush */
			ck_assert_int_ge(vdev_queue_flush(h.q), 0);
			for (i = 0; i < MSIZE; i++)
				if (m[i].state == 3)
					m[i].state = 4; /* published, not reaped */
		} else if (op < 95) { /* driver reaps */
			uint16_t u = ring_used_idx(&h);

			for (; used_seen != u; used_seen++) {
				uint32_t id = ring_used_id(&h, used_seen);

				ck_assert_uint_lt(id, MSIZE);
				ck_assert_int_eq(m[id].state, 4);
				m[id].state = 0;
				reaped++;
			}
		} else { /* the back-end dies */
			uint16_t expect[MSIZE];
			uint32_t n = 0, j;

			if (xrnd(&rng) % 2) {
				/* inside a flush: used index out, some flags cleared */
				uint32_t nb = 0;

				for (i = 0; i < MSIZE; i++)
					if (m[i].state == 3) {
						if (xrnd(&rng) % 2)
							h.rg->desc[i].inflight = 0;
						m[i].state = 4;
						nb++;
					}
				set_ring_used_idx(&h, (uint16_t)(ring_used_idx(&h) + nb));
				mid_flush += nb != 0;
			}
			for (i = 0; i < MSIZE; i++)
				if (m[i].state == 3)
					m[i].state = 2; /* filled, never published */
			/* expected: the popped ones by seq */
			for (i = 0; i < MSIZE; i++)
				if (m[i].state == 2)
					expect[n++] = (uint16_t)i;
			for (i = 1; i < n; i++)
				for (j = i; j > 0 && m[expect[j]].seq < m[expect[j - 1]].seq; j--) {
					uint16_t t = expect[j];

					expect[j] = expect[j - 1];
					expect[j - 1] = t;
				}
			crash(&h);
			ck_assert_int_eq(attach(&h), (int)n);
			for (i = 0; i < n; i++) {
				uint64_t serial;

				ck_assert_uint_eq(pop_one(&h, &e, &serial), expect[i]);
				ck_assert_uint_eq(serial, m[expect[i]].serial);
			}
			restarts++;
		}
		ck_assert_int_eq(vdev_queue_is_broken(h.q), 0);
	}
	/* Enough of each case happened for the run to mean something. */
	ck_assert_uint_gt(restarts, 500);
	ck_assert_uint_gt(mid_flush, 100);
	ck_assert_uint_gt(reaped, 2000);
	ix_fini(&h);
}
END_TEST

/*
 * Random regions over random rings: attach either refuses with -EINVAL or
 * promises at most the queue size, positions the ring after them, and the
 * tracked queue then pops, fills and flushes without touching memory out of
 * bounds (ASan) or hanging, breaking only on a malformed chain.
 */
START_TEST(random_regions)
{
	uint64_t rng = 0x9e3779b97f4a7c15ull;
	uint32_t iter, accepted = 0, resubmits = 0;

	for (iter = 0; iter < 3000; iter++) {
		static const uint16_t nums[5] = {4, 8, 12, 16, 17};
		struct vdev_queue_elem e;
		struct ix h;
		uint16_t used = (uint16_t)xrnd(&rng), i;
		int r;

		ix_init(&h, 8, 16, 1);
		if (xrnd(&rng) % 8 == 0)
			h.rg->version = (uint16_t)(xrnd(&rng) % 3);
		if (xrnd(&rng) % 4 == 0)
			h.rg->desc_num = nums[xrnd(&rng) % 5];
		h.rg->last_batch_head = (uint16_t)(xrnd(&rng) % 20);
		h.rg->used_idx = (uint16_t)(used - xrnd(&rng) % 12);
		for (i = 0; i < 16; i++) {
			uint32_t x = xrnd(&rng);

			/* mostly heads in range, some beyond the queue, some not 0/1 */
			h.rg->desc[i].inflight = (uint8_t)(x % (i < 8 ? 3 : 24) == 0 ? 1
							   : x % 64 == 1 ? x >> 8 : 0);
			h.rg->desc[i].next = (uint16_t)(xrnd(&rng) % 20);
			h.rg->desc[i].counter = xrnd(&rng) % 6;
		}
		for (i = 0; i < 8; i++) {
			uint16_t fl = xrnd(&rng) % 4 ? 0 : VRING_DESC_F_NEXT;

			put_desc(&h, i, DATA_GPA + (uint64_t)SLOT * i, 16, fl,
				 (uint16_t)(xrnd(&rng) % 10));
			offer(&h, (uint16_t)(xrnd(&rng) % 10), i);
		}
		set_ring_used_idx(&h, used);
		h.aidx = (uint16_t)(used + xrnd(&rng) % 10);
		set_avail_idx(&h, h.aidx);

		r = attach(&h);
		if (r < 0) {
			ck_assert_int_eq(r, -EINVAL);
			ix_fini(&h);
			continue;
		}
		accepted++;
		resubmits += (uint32_t)r;
		ck_assert_int_le(r, 8);
		ck_assert_uint_eq(state_last_avail(&h), (uint16_t)(used + r));
		ck_assert_uint_eq(h.rg->used_idx, used);
		for (i = 0; i < 20; i++) {
			elem_init(&e, 16);
			r = vdev_queue_pop(h.q, &e);
			if (r <= 0) {
				ck_assert(r == 0 || r == -EBADMSG);
				break;
			}
			if (xrnd(&rng) % 2)
				ck_assert_int_ge(vdev_queue_push(h.q, &e, 0), 0);
		}
		ck_assert_int_ge(vdev_queue_flush(h.q), vdev_queue_is_broken(h.q) ? -EBADMSG : 0);
		ix_fini(&h);
	}
	/* Both outcomes were exercised, with requests to resubmit. */
	ck_assert_uint_gt(accepted, 100);
	ck_assert_uint_lt(accepted, 2900);
	ck_assert_uint_gt(resubmits, 100);
}
END_TEST

static Suite *inflight_suite(void)
{
	Suite *s = suite_create("inflight");
	TCase *tc = tcase_create("inflight");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, region_size_and_init);
	tcase_add_test(tc, pop_fill_flush_update_region);
	tcase_add_test(tc, crash_resubmits_oldest_first);
	tcase_add_test(tc, resubmissions_are_reported);
	tcase_add_loop_test(tc, half_published_batch_is_repaired, 0, 3);
	tcase_add_test(tc, order_follows_counters);
	tcase_add_test(tc, fresh_region_on_running_ring);
	tcase_add_test(tc, version_zero_is_formatted);
	tcase_add_test(tc, desc_num_above_size);
	tcase_add_test(tc, whole_queue_in_flight);
	tcase_add_loop_test(tc, hostile_region_refused, 0, H_COUNT);
	tcase_add_test(tc, unflagged_gap_accepted);
	tcase_add_test(tc, bad_calls);
	tcase_add_test(tc, resubmitted_chain_validated);
	tcase_add_test(tc, model_random_crashes);
	tcase_add_test(tc, random_regions);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(inflight_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
