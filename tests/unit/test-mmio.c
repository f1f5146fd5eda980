/* SPDX-License-Identifier: MIT */
/*
 * virtio-mmio, both halves. The device model here is an "inverter": every
 * chain's readable bytes come back bitwise inverted in its writable part,
 * served synchronously from queue_notify. It sits behind vdev_mmio (version
 * 2 or 1) over guest memory that is a malloc'd buffer mapped above 4 GiB (so
 * every *High register matters).
 *
 * The driver side reaches the registers three ways: vdev_drv over
 * vdev_drv_mmio_transport with io ops calling vdev_mmio_read/write; the same
 * through a vdev_bus; and by hand (register by register, with a split ring
 * built here) for the legacy layout, queue reset and misbehaving drivers.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include <virtio-dev/virtio-dev.h>

#define BIT(n) (1ull << (n))
#define GPA_BASE 0x100000000ull /* 4 GiB: high address words are non-zero */
#define MEM_SIZE (4u << 20)
#define ARENA_SIZE (1u << 20)
#define DATA_GPA (GPA_BASE + ARENA_SIZE)
#define RING_A_GPA (GPA_BASE + (2u << 20))
#define RING_B_GPA (GPA_BASE + (3u << 20))
#define NQ 2u
#define QMAX 64u
#define CFG_SIZE 24u
#define DEV_TYPE 0x2au
#define BUS_BASE 0xd0000000ull
#define MMIO_BASE 0xfeb00000ull

#define MAGIC 0x74726976u

/* Register offsets (spec 4.2.2 and 4.2.4). */
#define R_MAGIC 0x000
#define R_VERSION 0x004
#define R_DEVICE_ID 0x008
#define R_VENDOR_ID 0x00c
#define R_DEV_FEAT 0x010
#define R_DEV_FEAT_SEL 0x014
#define R_DRV_FEAT 0x020
#define R_DRV_FEAT_SEL 0x024
#define R_GUEST_PAGE_SIZE 0x028
#define R_QUEUE_SEL 0x030
#define R_QUEUE_SIZE_MAX 0x034
#define R_QUEUE_SIZE 0x038
#define R_QUEUE_ALIGN 0x03c
#define R_QUEUE_PFN 0x040
#define R_QUEUE_READY 0x044
#define R_QUEUE_NOTIFY 0x050
#define R_ISR 0x060
#define R_ISR_ACK 0x064
#define R_STATUS 0x070
#define R_DESC_LO 0x080
#define R_DESC_HI 0x084
#define R_DRIVER_LO 0x090
#define R_DRIVER_HI 0x094
#define R_DEVICE_LO 0x0a0
#define R_DEVICE_HI 0x0a4
#define R_SHM_SEL 0x0ac
#define R_SHM_LEN_LO 0x0b0
#define R_SHM_LEN_HI 0x0b4
#define R_SHM_BASE_LO 0x0b8
#define R_SHM_BASE_HI 0x0bc
#define R_QUEUE_RESET 0x0c0
#define R_GEN 0x0fc
#define R_CONFIG 0x100

#define S_ACK VIRTIO_CONFIG_S_ACKNOWLEDGE
#define S_DRV VIRTIO_CONFIG_S_DRIVER
#define S_FOK VIRTIO_CONFIG_S_FEATURES_OK
#define S_DOK VIRTIO_CONFIG_S_DRIVER_OK

/* ------------------------------------------------------------------------ */
/* The inverter device model (with irq counters for irq_trigger below). */

#include "tests/common/inverter.h"

struct env {
	uint8_t *buf;
	vdev_mem *mem;
	vdev_irq *irq;
	vdev_device *dev;
	vdev_mmio *mmio;
	struct inv inv;
	vdev_bus *bus;
	uint64_t wanted; /* features the driver accepts */
	vdev_drv *drv;
	vdev_drvq *q[NQ];
	vdev_drv_mmio *dm;
	uint64_t dm_storage[16];
};

static struct env *E;

static void *host(uint64_t gpa)
{
	ck_assert_uint_ge(gpa, GPA_BASE);
	ck_assert_uint_lt(gpa - GPA_BASE, MEM_SIZE);
	return E->buf + (gpa - GPA_BASE);
}

static int irq_trigger(void *opaque, uint32_t kind, uint32_t queue)
{
	struct inv *v = opaque;

	(void)queue;
	if (kind == VDEV_IRQ_QUEUE)
		v->irq_queue++;
	else
		v->irq_config++;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Environment. */

static void env_make(uint32_t version, int ring_reset)
{
	struct vdev_device_config dc = VDEV_DEVICE_CONFIG_INIT;
	struct vdev_device_ops ops = VDEV_DEVICE_OPS_INIT;
	struct vdev_irq_ops iops = VDEV_IRQ_OPS_INIT;
	struct vdev_mmio_config mc = VDEV_MMIO_CONFIG_INIT;

	E = calloc(1, sizeof(*E));
	ck_assert_ptr_nonnull(E);
	E->buf = calloc(1, MEM_SIZE);
	ck_assert_ptr_nonnull(E->buf);
	ck_assert_int_eq(vdev_mem_new(&E->mem), 0);
	ck_assert_int_eq(vdev_mem_add_region(E->mem, GPA_BASE, MEM_SIZE, E->buf, 0), 0);
	iops.trigger = irq_trigger;
	ck_assert_int_eq(vdev_irq_new(&iops, &E->inv, &E->irq), 0);
	for (uint32_t i = 0; i < CFG_SIZE; i++)
		E->inv.config[i] = (uint8_t)(0x10 + i);

	dc.device_type = DEV_TYPE;
	dc.features = BIT(VIRTIO_RING_F_EVENT_IDX) | BIT(VIRTIO_RING_F_INDIRECT_DESC) |
		      BIT(VIRTIO_F_RING_PACKED) | BIT(3);
	dc.num_queues = NQ;
	dc.queue_max_size = QMAX;
	dc.config_size = CFG_SIZE;
	/* The first 8 bytes are read-only, like a device's identity fields. */
	E->inv.ro_head = 8;
	ops = inv_ops(ring_reset);
	ck_assert_int_eq(vdev_device_new(&dc, &ops, &E->inv, &E->dev), 0);
	ck_assert_int_eq(vdev_device_set_memory(E->dev, E->mem), 0);

	mc.version = version;
	mc.base = MMIO_BASE;
	ck_assert_int_eq(vdev_mmio_new(&mc, E->dev, E->irq, &E->mmio), 0);
	E->wanted = BIT(VIRTIO_RING_F_EVENT_IDX) | BIT(3);
}

static void env_free(void)
{
	if (!E)
		return;
	if (E->bus)
		vdev_bus_free(E->bus);
	vdev_drv_free(E->drv);
	vdev_mmio_free(E->mmio);
	vdev_device_free(E->dev);
	vdev_irq_free(E->irq);
	vdev_mem_free(E->mem);
	free(E->buf);
	free(E);
	E = NULL;
}

static void setup_modern(void)
{
	env_make(2, 0);
}

static void setup_modern_rr(void)
{
	env_make(2, 1);
}

static void setup_legacy(void)
{
	env_make(1, 0);
}

static void teardown(void)
{
	env_free();
}

/* Register access by hand. */
static uint32_t rd(uint32_t off)
{
	uint8_t b[4];

	ck_assert_int_eq(vdev_mmio_read(E->mmio, off, b, 4), 0);
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static int wr(uint32_t off, uint32_t v)
{
	uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};

	return vdev_mmio_write(E->mmio, off, b, 4);
}

/* ------------------------------------------------------------------------ */
/* A split ring built by hand: one request (descriptors 0 and 1) at a time. */

struct hring {
	uint64_t desc, avail, used;
	uint16_t size;
	uint16_t avail_idx;
	uint16_t last_used;
};

static void hring_init(struct hring *h, uint64_t desc, uint64_t avail, uint64_t used,
		       uint16_t size)
{
	h->desc = desc;
	h->avail = avail;
	h->used = used;
	h->size = size;
	h->avail_idx = 0;
	h->last_used = 0;
	memset(host(desc), 0, 16u * size);
	memset(host(avail), 0, 6u + 2u * size);
	memset(host(used), 0, 6u + 8u * size);
}

static void hring_add(struct hring *h, uint64_t out, uint32_t out_len, uint64_t in,
		      uint32_t in_len)
{
	struct vring_desc *d = host(h->desc);
	struct vring_avail *a = host(h->avail);

	d[0].addr = out;
	d[0].len = out_len;
	d[0].flags = VRING_DESC_F_NEXT;
	d[0].next = 1;
	d[1].addr = in;
	d[1].len = in_len;
	d[1].flags = VRING_DESC_F_WRITE;
	d[1].next = 0;
	a->ring[h->avail_idx % h->size] = 0;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	h->avail_idx++;
	__atomic_store_n(&a->idx, h->avail_idx, __ATOMIC_RELEASE);
}

/* 1 and the used entry, or 0 when none. */
static int hring_used(struct hring *h, uint32_t *id, uint32_t *len)
{
	struct vring_used *u = host(h->used);

	if (__atomic_load_n(&u->idx, __ATOMIC_ACQUIRE) == h->last_used)
		return 0;
	*id = u->ring[h->last_used % h->size].id;
	*len = u->ring[h->last_used % h->size].len;
	h->last_used++;
	return 1;
}

/* Round trip of @n bytes through @h with a kick by @kick (0: QueueNotify
 * register, 1: vdev_device_queue_notify, as an ioeventfd would). */
static void hring_roundtrip(struct hring *h, uint32_t qi, uint32_t n, uint8_t seed, int kick)
{
	uint64_t out = DATA_GPA + 0x10000, in = DATA_GPA + 0x20000;
	uint8_t *o = host(out), *i = host(in);
	uint32_t id = 99, len = 0;
	unsigned served = E->inv.served[qi];

	for (uint32_t k = 0; k < n; k++)
		o[k] = (uint8_t)(seed + k);
	memset(i, 0, n);
	hring_add(h, out, n, in, n);
	if (kick)
		ck_assert_int_eq(vdev_device_queue_notify(E->dev, qi), 0);
	else
		ck_assert_int_eq(wr(R_QUEUE_NOTIFY, qi), 0);
	ck_assert_uint_eq(E->inv.served[qi], served + 1);
	ck_assert_int_eq(hring_used(h, &id, &len), 1);
	ck_assert_uint_eq(id, 0);
	ck_assert_uint_eq(len, n);
	for (uint32_t k = 0; k < n; k++)
		ck_assert_uint_eq(i[k], (uint8_t)~(uint8_t)(seed + k));
}

/* Modern negotiation by hand: page 0 and 1 of @features, up to FEATURES_OK. */
static void hand_features(uint64_t features)
{
	ck_assert_int_eq(wr(R_STATUS, 0), 0);
	ck_assert_int_eq(wr(R_STATUS, S_ACK), 0);
	ck_assert_int_eq(wr(R_STATUS, S_ACK | S_DRV), 0);
	ck_assert_int_eq(wr(R_DRV_FEAT_SEL, 0), 0);
	ck_assert_int_eq(wr(R_DRV_FEAT, (uint32_t)features), 0);
	ck_assert_int_eq(wr(R_DRV_FEAT_SEL, 1), 0);
	ck_assert_int_eq(wr(R_DRV_FEAT, (uint32_t)(features >> 32)), 0);
	ck_assert_int_eq(wr(R_STATUS, S_ACK | S_DRV | S_FOK), 0);
	ck_assert_uint_eq(rd(R_STATUS), S_ACK | S_DRV | S_FOK);
}

/* Program queue @qi for ring @h and set QueueReady; returns the write's result. */
static int hand_queue(uint32_t qi, const struct hring *h)
{
	ck_assert_int_eq(wr(R_QUEUE_SEL, qi), 0);
	ck_assert_int_eq(wr(R_QUEUE_SIZE, h->size), 0);
	ck_assert_int_eq(wr(R_DESC_LO, (uint32_t)h->desc), 0);
	ck_assert_int_eq(wr(R_DESC_HI, (uint32_t)(h->desc >> 32)), 0);
	ck_assert_int_eq(wr(R_DRIVER_LO, (uint32_t)h->avail), 0);
	ck_assert_int_eq(wr(R_DRIVER_HI, (uint32_t)(h->avail >> 32)), 0);
	ck_assert_int_eq(wr(R_DEVICE_LO, (uint32_t)h->used), 0);
	ck_assert_int_eq(wr(R_DEVICE_HI, (uint32_t)(h->used >> 32)), 0);
	return wr(R_QUEUE_READY, 1);
}

static void ring_a(struct hring *h, uint16_t size)
{
	hring_init(h, RING_A_GPA, RING_A_GPA + 0x1000, RING_A_GPA + 0x2000, size);
}

static void ring_b(struct hring *h, uint16_t size)
{
	hring_init(h, RING_B_GPA, RING_B_GPA + 0x800, RING_B_GPA + 0x4000, size);
}

/* ------------------------------------------------------------------------ */
/* The driver side (vdev_drv) over vdev_drv_mmio. */

struct busio {
	vdev_bus *bus;
	uint64_t base;
};

static struct busio BIO;

static uint32_t io_read(void *ctx, uint32_t off, uint32_t width)
{
	uint8_t b[4] = {0, 0, 0, 0};

	(void)vdev_mmio_read(ctx, off, b, width);
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static void io_write(void *ctx, uint32_t off, uint32_t width, uint32_t v)
{
	uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};

	(void)vdev_mmio_write(ctx, off, b, width);
}

static uint32_t bus_io_read(void *ctx, uint32_t off, uint32_t width)
{
	struct busio *b = ctx;
	uint8_t d[4] = {0, 0, 0, 0};

	(void)vdev_bus_read(b->bus, b->base + off, width, 0, d);
	return (uint32_t)d[0] | (uint32_t)d[1] << 8 | (uint32_t)d[2] << 16 | (uint32_t)d[3] << 24;
}

static void bus_io_write(void *ctx, uint32_t off, uint32_t width, uint32_t v)
{
	struct busio *b = ctx;
	uint8_t d[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};

	(void)vdev_bus_write(b->bus, b->base + off, width, 0, d);
}

static uint64_t drv_negotiate(vdev_drv *drv, void *opaque, uint64_t offered)
{
	(void)drv;
	(void)opaque;
	return offered & E->wanted;
}

static int drv_pre(vdev_drv *drv, void *opaque)
{
	(void)opaque;
	for (uint32_t i = 0; i < NQ; i++) {
		int r = vdev_drv_queue_setup(drv, i, 0, 4, &E->q[i]);

		if (r < 0)
			return r;
	}
	return 0;
}

static void drv_start(int via_bus)
{
	static const struct vdev_drv_mmio_io_ops direct_io = {
		.struct_size = sizeof(struct vdev_drv_mmio_io_ops),
		.read = io_read,
		.write = io_write,
	};
	static const struct vdev_drv_mmio_io_ops bus_io = {
		.struct_size = sizeof(struct vdev_drv_mmio_io_ops),
		.read = bus_io_read,
		.write = bus_io_write,
	};
	static const struct vdev_driver_ops dops = {
		.struct_size = sizeof(struct vdev_driver_ops),
		.negotiate_features = drv_negotiate,
		.pre_device_initialization = drv_pre,
	};
	struct vdev_drv_config cfg = VDEV_DRV_CONFIG_INIT;
	uint32_t id = 0;

	if (via_bus) {
		ck_assert_int_eq(vdev_bus_new(VDEV_BUS_MMIO, &E->bus), 0);
		ck_assert_int_eq(vdev_bus_insert(E->bus, BUS_BASE, VDEV_MMIO_SIZE,
						 vdev_mmio_bus_ops(), E->mmio),
				 0);
		BIO.bus = E->bus;
		BIO.base = BUS_BASE;
		ck_assert_int_eq(vdev_drv_mmio_init(E->dm_storage, sizeof(E->dm_storage), &bus_io,
						    &BIO, &E->dm),
				 0);
	} else {
		ck_assert_int_eq(vdev_drv_mmio_init(E->dm_storage, sizeof(E->dm_storage),
						    &direct_io, E->mmio, &E->dm),
				 0);
	}
	ck_assert_int_eq(vdev_drv_mmio_probe(E->dm, &id), 0);
	ck_assert_uint_eq(id, DEV_TYPE);

	cfg.transport = vdev_drv_mmio_transport();
	cfg.transport_opaque = E->dm;
	cfg.driver = &dops;
	cfg.arena = host(GPA_BASE);
	cfg.arena_gpa = GPA_BASE;
	cfg.arena_size = ARENA_SIZE;
	ck_assert_int_eq(vdev_drv_new(&cfg, &E->drv), 0);
	ck_assert_int_eq(vdev_drv_start(E->drv), 0);
	ck_assert_uint_eq(vdev_drv_status(E->drv), S_ACK | S_DRV | S_FOK | S_DOK);
	ck_assert_uint_eq(E->inv.activations, 1);
}

/* @n requests in one batch on queue @qi, each inverted by the device. */
static void drv_batch(uint32_t qi, unsigned n, uint32_t len, uint8_t seed)
{
	vdev_drvq *q = E->q[qi];
	unsigned served = E->inv.served[qi], irqs = E->inv.irq_queue, got = 0;

	ck_assert_uint_le(n, 16);
	for (unsigned k = 0; k < n; k++) {
		uint64_t out = DATA_GPA + k * 0x2000ull, in = out + 0x1000;
		uint8_t *o = host(out);

		for (uint32_t j = 0; j < len; j++)
			o[j] = (uint8_t)(seed + k + j);
		memset(host(in), 0, len);
		ck_assert_int_eq(vdev_drvq_add(q, (uint64_t[]){out, in},
					       (uint32_t[]){len, len}, 1, 1,
					       (void *)(uintptr_t)(k + 1), 0),
				 0);
	}
	ck_assert_int_eq(vdev_drvq_kick(q), 1);
	ck_assert_uint_eq(E->inv.served[qi], served + n);
	ck_assert_uint_gt(E->inv.irq_queue, irqs);
	for (;;) {
		void *tok = NULL;
		uint32_t wlen = 0;
		int r = vdev_drvq_get_used(q, &tok, &wlen);

		ck_assert_int_ge(r, 0);
		if (!r)
			break;
		unsigned k = (unsigned)(uintptr_t)tok - 1;
		uint8_t *in = host(DATA_GPA + k * 0x2000ull + 0x1000);

		ck_assert_uint_lt(k, n);
		ck_assert_uint_eq(wlen, len);
		for (uint32_t j = 0; j < len; j++)
			ck_assert_uint_eq(in[j], (uint8_t)~(uint8_t)(seed + k + j));
		got++;
	}
	ck_assert_uint_eq(got, n);
	/* The used-buffer interrupt is in InterruptStatus until acked. */
	ck_assert_uint_eq(vdev_drv_mmio_ack_interrupt(E->dm) & 1u, 1u);
	ck_assert_uint_eq(rd(R_ISR), 0);
}

static void drv_roundtrips(void)
{
	struct vdev_queue_config qc = VDEV_QUEUE_CONFIG_INIT;
	uint8_t c[8];

	/* The device got the driver's rings above 4 GiB, at full size. */
	for (uint32_t i = 0; i < NQ; i++) {
		ck_assert_int_eq(vdev_device_queue_config(E->dev, i, &qc), 0);
		ck_assert_uint_eq(qc.size, QMAX);
		ck_assert_uint_ge(qc.desc_addr, GPA_BASE);
		ck_assert_uint_ge(qc.driver_addr, GPA_BASE);
		ck_assert_uint_ge(qc.device_addr, GPA_BASE);
		ck_assert_uint_eq(rd(R_QUEUE_SEL) , 0);
	}
	for (unsigned round = 0; round < 40; round++) {
		drv_batch(round % NQ, 1 + round % 9, 1 + round * 37 % 3000, (uint8_t)round);
		ck_assert_uint_eq(vdev_drv_status(E->drv), S_ACK | S_DRV | S_FOK | S_DOK);
	}
	ck_assert_uint_eq(E->inv.kicks[0] + E->inv.kicks[1], 40);
	/* Config through the driver (widths 4, 2, 1 chosen by alignment). */
	ck_assert_int_eq(vdev_drv_config_read(E->drv, 1, c, 7), 0);
	for (int i = 0; i < 7; i++)
		ck_assert_uint_eq(c[i], 0x11 + i);
	memset(c, 0xa5, sizeof(c));
	ck_assert_int_eq(vdev_drv_config_write(E->drv, 9, c, 7), 0);
	for (int i = 0; i < 7; i++)
		ck_assert_uint_eq(E->inv.config[9 + i], 0xa5);
	ck_assert_uint_eq(E->inv.config[8], 0x18);
	ck_assert_uint_eq(E->inv.config[16], 0x20);
}

START_TEST(t_driver_split)
{
	drv_start(0);
	ck_assert_uint_eq(vdev_drv_features(E->drv) & BIT(VIRTIO_F_RING_PACKED), 0);
	ck_assert_uint_ne(vdev_drv_features(E->drv) & BIT(VIRTIO_RING_F_EVENT_IDX), 0);
	drv_roundtrips();
	/* A driver reset is a device reset. */
	vdev_drv_reset(E->drv);
	ck_assert_uint_eq(vdev_device_status(E->dev), 0);
	ck_assert_uint_eq(E->inv.resets, 1);
	ck_assert_int_eq(vdev_drvq_kick(E->q[0]), -ENODEV);
	/* And a second start works on the same transport. */
	ck_assert_int_eq(vdev_drv_start(E->drv), 0);
	drv_batch(1, 3, 100, 7);
}
END_TEST

START_TEST(t_driver_packed)
{
	E->wanted |= BIT(VIRTIO_F_RING_PACKED) | BIT(VIRTIO_RING_F_INDIRECT_DESC);
	drv_start(0);
	ck_assert_uint_ne(vdev_drv_features(E->drv) & BIT(VIRTIO_F_RING_PACKED), 0);
	drv_roundtrips();
}
END_TEST

START_TEST(t_driver_bus)
{
	E->wanted |= (uint64_t)_i * BIT(VIRTIO_F_RING_PACKED);
	drv_start(1);
	drv_roundtrips();
	/* The bus routes only the claimed range; the transport's own checks
	 * apply through it. */
	uint8_t b[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	ck_assert_int_eq(vdev_bus_read(E->bus, BUS_BASE + R_MAGIC, 4, 0, b), 0);
	ck_assert_uint_eq(b[0] | b[1] << 8 | b[2] << 16 | (uint32_t)b[3] << 24, MAGIC);
	ck_assert_int_eq(vdev_bus_read(E->bus, BUS_BASE + R_MAGIC, 1, 0, b), -EINVAL);
	ck_assert_uint_eq(b[0], 0);
	ck_assert_int_eq(vdev_bus_read(E->bus, BUS_BASE + R_CONFIG + 16, 8, 0, b), 0);
	for (int k = 0; k < 8; k++)
		ck_assert_uint_eq(b[k], 0x10 + 16 + k);
	ck_assert_int_eq(vdev_bus_remove(E->bus, BUS_BASE), 0);
	/* Removing it does not free it (destroy is NULL): still usable. */
	ck_assert_uint_eq(rd(R_MAGIC), MAGIC);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Registers. */

START_TEST(t_registers_modern)
{
	uint8_t b[8];

	ck_assert_uint_eq(rd(R_MAGIC), MAGIC);
	ck_assert_uint_eq(rd(R_VERSION), 2);
	ck_assert_uint_eq(rd(R_DEVICE_ID), DEV_TYPE);
	ck_assert_uint_eq(rd(R_VENDOR_ID), 0x56444556u);
	/* DeviceFeatures, by page. */
	ck_assert_int_eq(wr(R_DEV_FEAT_SEL, 0), 0);
	ck_assert_uint_eq(rd(R_DEV_FEAT), (uint32_t)vdev_device_features(E->dev));
	ck_assert_uint_ne(rd(R_DEV_FEAT) & BIT(VIRTIO_RING_F_EVENT_IDX), 0);
	ck_assert_uint_eq(rd(R_DEV_FEAT) & BIT(3), BIT(3));
	ck_assert_int_eq(wr(R_DEV_FEAT_SEL, 1), 0);
	ck_assert_uint_eq(rd(R_DEV_FEAT), (uint32_t)(vdev_device_features(E->dev) >> 32));
	ck_assert_uint_ne(rd(R_DEV_FEAT) & 1u, 0); /* VERSION_1 */
	ck_assert_uint_eq(rd(R_DEV_FEAT) & (1u << (VIRTIO_F_RING_RESET - 32)), 0);
	ck_assert_int_eq(wr(R_DEV_FEAT_SEL, 2), 0);
	ck_assert_uint_eq(rd(R_DEV_FEAT), 0);
	ck_assert_int_eq(wr(R_DEV_FEAT_SEL, 0xffffffffu), 0);
	ck_assert_uint_eq(rd(R_DEV_FEAT), 0);
	/* Queue registers of the selected queue; 0 for a missing one. */
	for (uint32_t q = 0; q < NQ + 3; q++) {
		ck_assert_int_eq(wr(R_QUEUE_SEL, q), 0);
		ck_assert_uint_eq(rd(R_QUEUE_SIZE_MAX), q < NQ ? QMAX : 0);
		ck_assert_uint_eq(rd(R_QUEUE_READY), 0);
		ck_assert_uint_eq(rd(R_QUEUE_RESET), 0);
	}
	ck_assert_int_eq(wr(R_QUEUE_SEL, 0xffffffffu), 0);
	ck_assert_uint_eq(rd(R_QUEUE_SIZE_MAX), 0);
	/* Writes to a missing queue are refused, QueueReady stays 0. */
	ck_assert_int_lt(wr(R_QUEUE_SIZE, 8), 0);
	ck_assert_int_lt(wr(R_QUEUE_READY, 1), 0);
	ck_assert_uint_eq(rd(R_QUEUE_READY), 0);
	ck_assert_uint_eq(rd(R_ISR), 0);
	ck_assert_uint_eq(rd(R_STATUS), 0);
	ck_assert_uint_eq(rd(R_GEN), vdev_device_config_generation(E->dev));
	/* Write-only registers read as 0, whatever was written. */
	ck_assert_int_eq(wr(R_QUEUE_SEL, 1), 0);
	ck_assert_int_eq(wr(R_DEV_FEAT_SEL, 1), 0);
	static const uint32_t wo[] = {R_DEV_FEAT_SEL, R_DRV_FEAT, R_DRV_FEAT_SEL, R_QUEUE_SEL,
				      R_QUEUE_SIZE, R_QUEUE_NOTIFY, R_ISR_ACK, R_DESC_LO,
				      R_DESC_HI, R_DRIVER_LO, R_DRIVER_HI, R_DEVICE_LO,
				      R_DEVICE_HI, R_SHM_SEL};
	for (size_t i = 0; i < sizeof(wo) / sizeof(wo[0]); i++)
		ck_assert_uint_eq(rd(wo[i]), 0);
	/* Read-only registers refuse writes and keep their value. */
	static const uint32_t ro[] = {R_MAGIC,        R_VERSION,     R_DEVICE_ID,
				      R_VENDOR_ID,    R_DEV_FEAT,    R_QUEUE_SIZE_MAX,
				      R_ISR,          R_SHM_LEN_LO,  R_SHM_LEN_HI,
				      R_SHM_BASE_LO,  R_SHM_BASE_HI, R_GEN};
	for (size_t i = 0; i < sizeof(ro) / sizeof(ro[0]); i++)
		ck_assert_int_eq(wr(ro[i], 0x12345678u), -EINVAL);
	ck_assert_uint_eq(rd(R_MAGIC), MAGIC);
	ck_assert_uint_eq(rd(R_VERSION), 2);
	ck_assert_uint_eq(rd(R_DEVICE_ID), DEV_TYPE);
	ck_assert_uint_eq(rd(R_QUEUE_SIZE_MAX), QMAX);
	/* Legacy-only and unassigned offsets do not exist in version 2. */
	static const uint32_t none[] = {0x018, 0x01c, R_GUEST_PAGE_SIZE, R_QUEUE_ALIGN,
					R_QUEUE_PFN, 0x048, 0x054, 0x068, 0x074, 0x0a8,
					0x0c4, 0x0f8};
	for (size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++) {
		memset(b, 0xff, 4);
		ck_assert_int_eq(vdev_mmio_read(E->mmio, none[i], b, 4), -EINVAL);
		ck_assert_uint_eq(b[0] | b[1] | b[2] | b[3], 0);
		ck_assert_int_eq(wr(none[i], 1), -EINVAL);
	}
	/* Past the block. */
	ck_assert_int_eq(vdev_mmio_read(E->mmio, VDEV_MMIO_SIZE, b, 4), -EINVAL);
	ck_assert_int_eq(vdev_mmio_write(E->mmio, UINT64_MAX - 1, b, 4), -EINVAL);
	ck_assert_int_eq(vdev_mmio_read(NULL, 0, b, 4), -EINVAL);
	ck_assert_int_eq(vdev_mmio_read(E->mmio, 0, NULL, 4), -EINVAL);
	ck_assert_int_eq(vdev_mmio_read(E->mmio, 0, b, 0), -EINVAL);
	ck_assert_int_eq(vdev_mmio_write(E->mmio, 0, NULL, 4), -EINVAL);
	ck_assert_ptr_eq(vdev_mmio_device(E->mmio), E->dev);
	ck_assert_ptr_null(vdev_mmio_device(NULL));
}
END_TEST

START_TEST(t_shm)
{
	ck_assert_int_eq(wr(R_SHM_SEL, 0), 0);
	ck_assert_uint_eq(rd(R_SHM_LEN_LO), 0xffffffffu);
	ck_assert_uint_eq(rd(R_SHM_LEN_HI), 0xffffffffu);
	ck_assert_uint_eq(rd(R_SHM_BASE_LO), 0xffffffffu);
	ck_assert_uint_eq(rd(R_SHM_BASE_HI), 0xffffffffu);
	ck_assert_int_eq(vdev_mmio_set_shm(E->mmio, 0, 0x1234567890ull, 0x300000000ull), 0);
	ck_assert_int_eq(vdev_mmio_set_shm(E->mmio, 255, 0x8000, 0x1000), 0);
	ck_assert_int_eq(vdev_mmio_set_shm(E->mmio, 256, 0x8000, 0x1000), -EINVAL);
	ck_assert_int_eq(vdev_mmio_set_shm(E->mmio, 1, UINT64_MAX, 2), -EINVAL);
	ck_assert_int_eq(vdev_mmio_set_shm(NULL, 1, 0, 1), -EINVAL);
	ck_assert_uint_eq(rd(R_SHM_LEN_LO), 0);
	ck_assert_uint_eq(rd(R_SHM_LEN_HI), 3);
	ck_assert_uint_eq(rd(R_SHM_BASE_LO), 0x34567890u);
	ck_assert_uint_eq(rd(R_SHM_BASE_HI), 0x12);
	ck_assert_int_eq(wr(R_SHM_SEL, 255), 0);
	ck_assert_uint_eq(rd(R_SHM_LEN_LO), 0x1000);
	ck_assert_uint_eq(rd(R_SHM_BASE_LO), 0x8000);
	ck_assert_uint_eq(rd(R_SHM_BASE_HI), 0);
	for (uint32_t id = 1; id < 255; id += 37) {
		ck_assert_int_eq(wr(R_SHM_SEL, id), 0);
		ck_assert_uint_eq(rd(R_SHM_LEN_LO), 0xffffffffu);
		ck_assert_uint_eq(rd(R_SHM_BASE_HI), 0xffffffffu);
	}
	ck_assert_int_eq(wr(R_SHM_SEL, 256), 0);
	ck_assert_uint_eq(rd(R_SHM_LEN_HI), 0xffffffffu);
	/* len 0 removes. */
	ck_assert_int_eq(vdev_mmio_set_shm(E->mmio, 255, 0x8000, 0), 0);
	ck_assert_int_eq(wr(R_SHM_SEL, 255), 0);
	ck_assert_uint_eq(rd(R_SHM_LEN_LO), 0xffffffffu);
	ck_assert_uint_eq(rd(R_SHM_BASE_LO), 0xffffffffu);
}
END_TEST

START_TEST(t_access_width)
{
	uint8_t b[8];
	uint64_t v;

	/* Control registers: 32-bit aligned only; refused reads yield 0. */
	static const uint32_t sizes[] = {1, 2, 8};
	for (size_t i = 0; i < 3; i++) {
		memset(b, 0xff, sizeof(b));
		ck_assert_int_eq(vdev_mmio_read(E->mmio, R_MAGIC, b, sizes[i]), -EINVAL);
		for (uint32_t k = 0; k < sizes[i]; k++)
			ck_assert_uint_eq(b[k], 0);
	}
	for (uint32_t off = 1; off < 4; off++) {
		memset(b, 0xff, sizeof(b));
		ck_assert_int_eq(vdev_mmio_read(E->mmio, R_MAGIC + off, b, 4), -EINVAL);
		ck_assert_uint_eq(b[0] | b[1] | b[2] | b[3], 0);
	}
	ck_assert_int_eq(vdev_mmio_read(E->mmio, R_MAGIC, b, 3), -EINVAL);
	/* Refused writes change nothing: a 1-byte status write, an unaligned
	 * queue select. */
	b[0] = S_ACK;
	ck_assert_int_eq(vdev_mmio_write(E->mmio, R_STATUS, b, 1), -EINVAL);
	ck_assert_uint_eq(rd(R_STATUS), 0);
	memset(b, 0, sizeof(b));
	b[0] = S_ACK;
	ck_assert_int_eq(vdev_mmio_write(E->mmio, R_STATUS, b, 8), -EINVAL);
	ck_assert_uint_eq(rd(R_STATUS), 0);
	ck_assert_int_eq(vdev_mmio_write(E->mmio, R_STATUS + 2, b, 4), -EINVAL);
	ck_assert_uint_eq(rd(R_STATUS), 0);
	ck_assert_int_eq(vdev_mmio_write(E->mmio, R_QUEUE_SEL, (uint8_t[]){5, 0}, 2), -EINVAL);
	ck_assert_uint_eq(rd(R_QUEUE_SIZE_MAX), QMAX); /* still queue 0 */

	/* Config space: 1, 2, 4 and 8 bytes, any alignment. */
	for (uint32_t size = 1; size <= 8; size *= 2) {
		for (uint32_t off = 0; off + size <= CFG_SIZE; off++) {
			memset(b, 0, sizeof(b));
			ck_assert_int_eq(vdev_mmio_read(E->mmio, R_CONFIG + off, b, size), 0);
			for (uint32_t k = 0; k < size; k++)
				ck_assert_uint_eq(b[k], 0x10 + off + k);
		}
	}
	memcpy(&v, (uint8_t[]){1, 2, 3, 4, 5, 6, 7, 8}, 8);
	ck_assert_int_eq(vdev_mmio_write(E->mmio, R_CONFIG + 16, &v, 8), 0);
	for (int k = 0; k < 8; k++)
		ck_assert_uint_eq(E->inv.config[16 + k], k + 1);
	ck_assert_int_eq(vdev_mmio_write(E->mmio, R_CONFIG + 9, (uint8_t[]){0xaa, 0xbb}, 2), 0);
	ck_assert_uint_eq(E->inv.config[9], 0xaa);
	ck_assert_uint_eq(E->inv.config[10], 0xbb);
	ck_assert_int_eq(vdev_mmio_write(E->mmio, R_CONFIG + 12, (uint8_t[]){9}, 1), 0);
	ck_assert_uint_eq(E->inv.config[12], 9);
	/* The model's own refusal comes back. */
	ck_assert_int_eq(vdev_mmio_write(E->mmio, R_CONFIG + 4, (uint8_t[]){9}, 1), -EPERM);
	ck_assert_uint_eq(E->inv.config[4], 0x14);
	/* Out of range: past config_size, straddling its end, past the block. */
	memset(b, 0xff, sizeof(b));
	ck_assert_int_eq(vdev_mmio_read(E->mmio, R_CONFIG + CFG_SIZE, b, 4), -EINVAL);
	ck_assert_uint_eq(b[0] | b[1] | b[2] | b[3], 0);
	memset(b, 0xff, sizeof(b));
	ck_assert_int_lt(vdev_mmio_read(E->mmio, R_CONFIG + CFG_SIZE - 2, b, 4), 0);
	ck_assert_uint_eq(b[0] | b[1] | b[2] | b[3], 0);
	memset(b, 0xff, sizeof(b));
	/* An 8-byte access straddling the end is refused as a whole. */
	ck_assert_int_eq(vdev_mmio_read(E->mmio, R_CONFIG + CFG_SIZE - 4, b, 8), -EINVAL);
	for (int k = 0; k < 8; k++)
		ck_assert_uint_eq(b[k], 0);
	ck_assert_int_eq(vdev_mmio_read(E->mmio, VDEV_MMIO_SIZE - 4, b, 8), -EINVAL);
	ck_assert_int_eq(vdev_mmio_read(E->mmio, R_CONFIG, b, 3), -EINVAL);
	ck_assert_int_eq(vdev_mmio_write(E->mmio, R_CONFIG + 20, b, 8), -EINVAL);
	ck_assert_uint_eq(E->inv.config[20], 5); /* not written */
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Queue configuration rules. */

START_TEST(t_queue_refused_while_ready)
{
	struct vdev_queue_config qc = VDEV_QUEUE_CONFIG_INIT;
	struct hring h;

	ck_assert_int_eq(vdev_device_set_irq(E->dev, E->irq), 0);
	hand_features(BIT(VIRTIO_F_VERSION_1));
	ring_a(&h, 16);
	ck_assert_int_eq(hand_queue(0, &h), 0);
	ck_assert_uint_eq(rd(R_QUEUE_READY), 1);
	/* Size and addresses cannot change under a ready queue. */
	ck_assert_int_lt(wr(R_QUEUE_SIZE, 4), 0);
	ck_assert_int_lt(wr(R_DESC_LO, 0x5000), 0);
	ck_assert_int_lt(wr(R_DESC_HI, 7), 0);
	ck_assert_int_lt(wr(R_DRIVER_LO, 0x5000), 0);
	ck_assert_int_lt(wr(R_DRIVER_HI, 7), 0);
	ck_assert_int_lt(wr(R_DEVICE_LO, 0x5000), 0);
	ck_assert_int_lt(wr(R_DEVICE_HI, 7), 0);
	ck_assert_int_eq(wr(R_QUEUE_READY, 1), 0); /* again: no change */
	ck_assert_int_eq(vdev_device_queue_config(E->dev, 0, &qc), 0);
	ck_assert_uint_eq(qc.size, 16);
	ck_assert_uint_eq(qc.desc_addr, h.desc);
	ck_assert_uint_eq(qc.driver_addr, h.avail);
	ck_assert_uint_eq(qc.device_addr, h.used);
	/* QueueReady 0 before DRIVER_OK takes it back; then it can change. */
	ck_assert_int_eq(wr(R_QUEUE_READY, 0), 0);
	ck_assert_uint_eq(rd(R_QUEUE_READY), 0);
	ring_b(&h, 8);
	ck_assert_int_eq(hand_queue(0, &h), 0);
	ck_assert_int_eq(vdev_device_queue_config(E->dev, 0, &qc), 0);
	ck_assert_uint_eq(qc.size, 8);
	ck_assert_uint_eq(qc.desc_addr, RING_B_GPA);
	/* Bad sizes are refused by the device: QueueReady reads back 0. */
	ck_assert_int_eq(wr(R_QUEUE_SEL, 1), 0);
	ck_assert_int_eq(wr(R_QUEUE_SIZE, 12), 0); /* split: not a power of two */
	ck_assert_int_lt(wr(R_QUEUE_READY, 1), 0);
	ck_assert_uint_eq(rd(R_QUEUE_READY), 0);
	ck_assert_int_eq(wr(R_QUEUE_SIZE, QMAX * 2), 0);
	ck_assert_int_lt(wr(R_QUEUE_READY, 1), 0);
	ck_assert_uint_eq(rd(R_QUEUE_READY), 0);
	ck_assert_int_eq(wr(R_QUEUE_READY, 2), -EINVAL);
	ck_assert_uint_eq(rd(R_QUEUE_READY), 0);
	/* DRIVER_OK: queue 0 is live on ring B, and QueueReady 0 is refused. */
	ck_assert_int_eq(wr(R_STATUS, S_ACK | S_DRV | S_FOK | S_DOK), 0);
	ck_assert_uint_eq(rd(R_STATUS), S_ACK | S_DRV | S_FOK | S_DOK);
	ck_assert_int_eq(wr(R_QUEUE_SEL, 0), 0);
	ck_assert_int_lt(wr(R_QUEUE_READY, 0), 0);
	ck_assert_uint_eq(rd(R_QUEUE_READY), 1);
	hring_roundtrip(&h, 0, 300, 3, 0);
	/* Queue 1 was never enabled: not live, kicks ignored. */
	ck_assert_int_lt(wr(R_QUEUE_NOTIFY, 1), 0);
	ck_assert_uint_eq(E->inv.kicks[1], 0);
}
END_TEST

START_TEST(t_notify)
{
	uint64_t addr = 0;
	uint32_t val = 77;
	struct hring h;

	ck_assert_int_eq(vdev_mmio_notify_address(E->mmio, 1, &addr, &val), 0);
	ck_assert_uint_eq(addr, MMIO_BASE + VDEV_MMIO_NOTIFY_OFFSET);
	ck_assert_uint_eq(val, 1);
	ck_assert_int_eq(vdev_mmio_notify_address(E->mmio, 0, &addr, &val), 0);
	ck_assert_uint_eq(val, 0);
	ck_assert_int_eq(vdev_mmio_notify_address(E->mmio, NQ, &addr, &val), -EINVAL);
	ck_assert_int_eq(vdev_mmio_notify_address(E->mmio, 0, NULL, &val), -EINVAL);
	ck_assert_int_eq(vdev_mmio_notify_address(NULL, 0, &addr, &val), -EINVAL);

	ck_assert_int_eq(vdev_device_set_irq(E->dev, E->irq), 0);
	/* Before DRIVER_OK a kick is ignored. */
	ck_assert_int_lt(wr(R_QUEUE_NOTIFY, 0), 0);
	hand_features(BIT(VIRTIO_F_VERSION_1));
	ring_a(&h, 8);
	ck_assert_int_eq(hand_queue(0, &h), 0);
	ck_assert_int_eq(wr(R_STATUS, S_ACK | S_DRV | S_FOK | S_DOK), 0);
	/* Out-of-range indices are ignored. */
	ck_assert_int_eq(wr(R_QUEUE_NOTIFY, NQ), -EINVAL);
	ck_assert_int_eq(wr(R_QUEUE_NOTIFY, 0x10000), -EINVAL);
	ck_assert_int_eq(wr(R_QUEUE_NOTIFY, 0xffffffffu), -EINVAL);
	ck_assert_uint_eq(E->inv.kicks[0] + E->inv.kicks[1], 0);
	/* A register kick and an ioeventfd kick (vdev_device_queue_notify at
	 * the reported address/value) do the same thing, alternately. */
	for (int i = 0; i < 8; i++)
		hring_roundtrip(&h, 0, 64 + i, (uint8_t)i, i & 1);
	ck_assert_uint_eq(E->inv.kicks[0], 8);
	ck_assert_uint_eq(E->inv.irq_queue, 8);
	/* A spurious kick with nothing available only pops nothing. */
	ck_assert_int_eq(wr(R_QUEUE_NOTIFY, 0), 0);
	ck_assert_int_eq(vdev_device_queue_notify(E->dev, 0), 0);
	ck_assert_uint_eq(E->inv.kicks[0], 10);
	ck_assert_uint_eq(E->inv.served[0], 8);
}
END_TEST

START_TEST(t_interrupts)
{
	struct hring h;

	ck_assert_int_eq(vdev_device_set_irq(E->dev, E->irq), 0);
	hand_features(BIT(VIRTIO_F_VERSION_1));
	ring_a(&h, 8);
	ck_assert_int_eq(hand_queue(0, &h), 0);
	ck_assert_int_eq(wr(R_STATUS, S_ACK | S_DRV | S_FOK | S_DOK), 0);
	ck_assert_uint_eq(rd(R_ISR), 0);
	hring_roundtrip(&h, 0, 10, 1, 0);
	ck_assert_uint_eq(rd(R_ISR), 1);
	ck_assert_uint_eq(E->inv.irq_queue, 1);
	ck_assert_int_eq(vdev_device_config_changed(E->dev), 0);
	ck_assert_uint_eq(rd(R_ISR), 3);
	ck_assert_uint_eq(E->inv.irq_config, 1);
	/* Acking one bit leaves the other; acking undefined bits is harmless. */
	ck_assert_int_eq(wr(R_ISR_ACK, 1), 0);
	ck_assert_uint_eq(rd(R_ISR), 2);
	ck_assert_int_eq(wr(R_ISR_ACK, 0xfffffffcu), 0);
	ck_assert_uint_eq(rd(R_ISR), 2);
	ck_assert_int_eq(wr(R_ISR_ACK, 2), 0);
	ck_assert_uint_eq(rd(R_ISR), 0);
	/* The driver-side helper acks exactly what it read. */
	hring_roundtrip(&h, 0, 10, 2, 1);
	ck_assert_int_eq(vdev_drv_mmio_init(E->dm_storage, sizeof(E->dm_storage),
					    &(struct vdev_drv_mmio_io_ops){
						    .struct_size =
							    sizeof(struct vdev_drv_mmio_io_ops),
						    .read = io_read,
						    .write = io_write},
					    E->mmio, &E->dm),
			 0);
	ck_assert_uint_eq(vdev_drv_mmio_ack_interrupt(E->dm), 1);
	ck_assert_uint_eq(vdev_drv_mmio_ack_interrupt(E->dm), 0);
	/* A reset clears InterruptStatus. */
	ck_assert_int_eq(vdev_device_config_changed(E->dev), 0);
	ck_assert_uint_eq(rd(R_ISR), 2);
	ck_assert_int_eq(wr(R_STATUS, 0), 0);
	ck_assert_uint_eq(rd(R_ISR), 0);
	ck_assert_uint_eq(rd(R_STATUS), 0);
}
END_TEST

START_TEST(t_config_generation)
{
	uint32_t g0 = rd(R_GEN), g1;

	ck_assert_int_eq(vdev_device_config_changed(E->dev), 0);
	g1 = rd(R_GEN);
	ck_assert_uint_ne(g1, g0);
	ck_assert_uint_eq(g1, vdev_device_config_generation(E->dev));
	/* Not running yet: no interrupt, no ISR bit. */
	ck_assert_uint_eq(E->inv.irq_config, 0);
	ck_assert_uint_eq(rd(R_ISR), 0);
	/* Reading config does not change it. */
	(void)rd(R_CONFIG);
	ck_assert_uint_eq(rd(R_GEN), g1);
	/* Through the driver side too. */
	ck_assert_int_eq(vdev_drv_mmio_init(E->dm_storage, sizeof(E->dm_storage),
					    &(struct vdev_drv_mmio_io_ops){
						    .struct_size =
							    sizeof(struct vdev_drv_mmio_io_ops),
						    .read = io_read,
						    .write = io_write},
					    E->mmio, &E->dm),
			 0);
	ck_assert_uint_eq(vdev_drv_mmio_transport()->config_generation(E->dm), g1);
	ck_assert_int_eq(vdev_device_config_changed(E->dev), 0);
	ck_assert_uint_ne(vdev_drv_mmio_transport()->config_generation(E->dm), g1);
	ck_assert_uint_eq(vdev_drv_mmio_transport()->config_read(E->dm, 2, 2), 0x1312);
	ck_assert_uint_eq(vdev_drv_mmio_transport()->config_read(E->dm, 4, 4), 0x17161514);
	ck_assert_uint_eq(vdev_drv_mmio_transport()->config_read(E->dm, 5, 1), 0x15);
	ck_assert_uint_eq(vdev_drv_mmio_transport()->config_read(E->dm, 0, 3), 0);
	ck_assert_uint_eq(vdev_drv_mmio_transport()->config_read(E->dm, 0xffffffffu, 4), 0);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Queue reset (VIRTIO_F_RING_RESET). */

START_TEST(t_queue_reset)
{
	struct hring a, b;

	ck_assert_int_eq(vdev_device_set_irq(E->dev, E->irq), 0);
	ck_assert_int_eq(wr(R_DEV_FEAT_SEL, 1), 0);
	ck_assert_uint_ne(rd(R_DEV_FEAT) & (1u << (VIRTIO_F_RING_RESET - 32)), 0);
	hand_features(BIT(VIRTIO_F_VERSION_1) | BIT(VIRTIO_F_RING_RESET));
	ring_a(&a, 16);
	ck_assert_int_eq(hand_queue(0, &a), 0);
	ck_assert_int_eq(hand_queue(1, &(struct hring){RING_B_GPA + 0x8000, RING_B_GPA + 0x9000,
							RING_B_GPA + 0xa000, 4, 0, 0}),
			 0);
	ck_assert_int_eq(wr(R_STATUS, S_ACK | S_DRV | S_FOK | S_DOK), 0);
	hring_roundtrip(&a, 0, 100, 1, 0);
	hring_roundtrip(&a, 0, 100, 2, 1);

	/* Reset queue 0: done at once, the model stopped using it. */
	ck_assert_int_eq(wr(R_QUEUE_SEL, 0), 0);
	ck_assert_int_eq(wr(R_QUEUE_RESET, 1), 0);
	ck_assert_uint_eq(rd(R_QUEUE_RESET), 0);
	ck_assert_uint_eq(rd(R_QUEUE_READY), 0);
	ck_assert_uint_eq(E->inv.queue_resets, 1);
	ck_assert_ptr_null(vdev_device_get_queue(E->dev, 0));
	ck_assert_int_lt(wr(R_QUEUE_NOTIFY, 0), 0);
	ck_assert_int_lt(vdev_device_queue_notify(E->dev, 0), 0);
	ck_assert_uint_eq(E->inv.kicks[0], 2);
	/* Queue 1 is untouched. */
	ck_assert_int_eq(wr(R_QUEUE_SEL, 1), 0);
	ck_assert_uint_eq(rd(R_QUEUE_READY), 1);
	ck_assert_ptr_nonnull(vdev_device_get_queue(E->dev, 1));

	/* Re-enable queue 0 elsewhere, with another size, and use it. */
	ring_b(&b, 4);
	ck_assert_int_eq(hand_queue(0, &b), 0);
	ck_assert_uint_eq(rd(R_QUEUE_READY), 1);
	ck_assert_uint_eq(E->inv.queue_enables, 1);
	ck_assert_uint_eq(vdev_queue_size(vdev_device_get_queue(E->dev, 0)), 4);
	for (int i = 0; i < 6; i++)
		hring_roundtrip(&b, 0, 50, (uint8_t)(10 + i), i & 1);
	/* And it is ready again: its registers are locked. */
	ck_assert_int_lt(wr(R_QUEUE_SIZE, 8), 0);
	ck_assert_uint_eq(rd(R_STATUS), S_ACK | S_DRV | S_FOK | S_DOK);
	/* Writing 0 to QueueReset does nothing. */
	ck_assert_int_eq(wr(R_QUEUE_RESET, 0), 0);
	ck_assert_uint_eq(rd(R_QUEUE_READY), 1);
	/* A missing queue cannot be reset. */
	ck_assert_int_eq(wr(R_QUEUE_SEL, NQ), 0);
	ck_assert_int_lt(wr(R_QUEUE_RESET, 1), 0);
	ck_assert_uint_eq(E->inv.queue_resets, 1);
}
END_TEST

START_TEST(t_queue_reset_not_negotiated)
{
	struct hring a;

	ck_assert_int_eq(vdev_device_set_irq(E->dev, E->irq), 0);
	hand_features(BIT(VIRTIO_F_VERSION_1));
	ring_a(&a, 8);
	ck_assert_int_eq(hand_queue(0, &a), 0);
	/* Before DRIVER_OK and without the feature: refused. */
	ck_assert_int_lt(wr(R_QUEUE_RESET, 1), 0);
	ck_assert_int_eq(wr(R_STATUS, S_ACK | S_DRV | S_FOK | S_DOK), 0);
	ck_assert_int_lt(wr(R_QUEUE_RESET, 1), 0);
	ck_assert_uint_eq(rd(R_QUEUE_READY), 1);
	ck_assert_uint_eq(rd(R_QUEUE_RESET), 0);
	ck_assert_uint_eq(E->inv.queue_resets, 0);
	hring_roundtrip(&a, 0, 20, 5, 0);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Misbehaving drivers. */

START_TEST(t_wrong_order)
{
	struct hring a;
	uint32_t st;

	ck_assert_int_eq(vdev_device_set_irq(E->dev, E->irq), 0);
	/* Queue setup before FEATURES_OK: refused. */
	ck_assert_int_eq(wr(R_STATUS, S_ACK), 0);
	ck_assert_int_eq(wr(R_STATUS, S_ACK | S_DRV), 0);
	ring_a(&a, 8);
	ck_assert_int_lt(hand_queue(0, &a), 0);
	ck_assert_uint_eq(rd(R_QUEUE_READY), 0);
	/* DRIVER_OK before FEATURES_OK: refused, status unchanged. */
	ck_assert_int_lt(wr(R_STATUS, S_ACK | S_DRV | S_DOK), 0);
	ck_assert_uint_eq(rd(R_STATUS), S_ACK | S_DRV);
	ck_assert_uint_eq(E->inv.activations, 0);
	/* Status beyond a byte, reserved bits, clearing bits: refused. */
	ck_assert_int_lt(wr(R_STATUS, 0x100 | S_ACK | S_DRV), 0);
	ck_assert_int_lt(wr(R_STATUS, S_ACK | S_DRV | 0x10), 0);
	ck_assert_int_lt(wr(R_STATUS, S_ACK), 0);
	ck_assert_uint_eq(rd(R_STATUS), S_ACK | S_DRV);
	/* FEATURES_OK without VERSION_1: refused. */
	ck_assert_int_eq(wr(R_DRV_FEAT_SEL, 0), 0);
	ck_assert_int_eq(wr(R_DRV_FEAT, BIT(3)), 0);
	ck_assert_int_lt(wr(R_STATUS, S_ACK | S_DRV | S_FOK), 0);
	ck_assert_uint_eq(rd(R_STATUS), S_ACK | S_DRV);
	/* Unoffered bits: refused at FEATURES_OK as well. */
	ck_assert_int_eq(wr(R_DRV_FEAT_SEL, 1), 0);
	ck_assert_int_eq(wr(R_DRV_FEAT, 1u | 0x80000000u), 0);
	ck_assert_int_lt(wr(R_STATUS, S_ACK | S_DRV | S_FOK), 0);
	ck_assert_int_eq(wr(R_DRV_FEAT, 1u), 0);
	ck_assert_int_eq(wr(R_STATUS, S_ACK | S_DRV | S_FOK), 0);
	/* Features after FEATURES_OK: refused, nothing changes. */
	ck_assert_int_eq(wr(R_DRV_FEAT_SEL, 0), 0);
	ck_assert_int_lt(wr(R_DRV_FEAT, BIT(VIRTIO_RING_F_EVENT_IDX)), 0);
	ck_assert_uint_eq(vdev_device_acked_features(E->dev), BIT(VIRTIO_F_VERSION_1) | BIT(3));
	/* QueueReady before addresses: the device takes a ring at 0, which is
	 * outside guest memory: DRIVER_OK then leaves it needing a reset. */
	ck_assert_int_eq(wr(R_QUEUE_SEL, 1), 0);
	ck_assert_int_eq(wr(R_QUEUE_READY, 1), 0);
	ck_assert_int_eq(wr(R_STATUS, S_ACK | S_DRV | S_FOK | S_DOK), 0);
	st = rd(R_STATUS);
	ck_assert_uint_ne(st & VIRTIO_CONFIG_S_NEEDS_RESET, 0);
	ck_assert_uint_eq(E->inv.activations, 0);
	ck_assert_uint_eq(rd(R_ISR) & 2u, 2u);
	ck_assert_int_lt(wr(R_QUEUE_NOTIFY, 1), 0);
	ck_assert_int_lt(wr(R_QUEUE_NOTIFY, 0), 0);
	ck_assert_uint_eq(E->inv.kicks[0] + E->inv.kicks[1], 0);
	/* A reset recovers; a correct sequence then works. */
	ck_assert_int_eq(wr(R_STATUS, 0), 0);
	ck_assert_uint_eq(rd(R_STATUS), 0);
	ck_assert_uint_eq(rd(R_ISR), 0);
	for (uint32_t q = 0; q < NQ; q++) {
		ck_assert_int_eq(wr(R_QUEUE_SEL, q), 0);
		ck_assert_uint_eq(rd(R_QUEUE_READY), 0);
	}
	hand_features(BIT(VIRTIO_F_VERSION_1));
	ck_assert_int_eq(hand_queue(0, &a), 0);
	ck_assert_int_eq(wr(R_STATUS, S_ACK | S_DRV | S_FOK | S_DOK), 0);
	hring_roundtrip(&a, 0, 33, 9, 0);
	/* FAILED may be set at any time; afterwards the device stays quiet
	 * about new bits until a reset. */
	ck_assert_int_eq(wr(R_STATUS, S_ACK | S_DRV | S_FOK | S_DOK | VIRTIO_CONFIG_S_FAILED), 0);
	ck_assert_uint_ne(rd(R_STATUS) & VIRTIO_CONFIG_S_FAILED, 0);
}
END_TEST

START_TEST(t_external_reset)
{
	struct hring a;

	ck_assert_int_eq(vdev_device_set_irq(E->dev, E->irq), 0);
	hand_features(BIT(VIRTIO_F_VERSION_1));
	ring_a(&a, 8);
	ck_assert_int_eq(wr(R_QUEUE_SEL, 1), 0);
	ck_assert_int_eq(wr(R_QUEUE_SIZE, 4), 0);
	ck_assert_int_eq(hand_queue(0, &a), 0);
	ck_assert_int_eq(wr(R_STATUS, S_ACK | S_DRV | S_FOK | S_DOK), 0);
	/* The VMM resets the device directly: the registers agree. */
	vdev_device_reset(E->dev);
	ck_assert_uint_eq(E->inv.resets, 1);
	ck_assert_uint_eq(rd(R_STATUS), 0);
	ck_assert_uint_eq(rd(R_QUEUE_READY), 0);
	/* Latches went back too: a queue enabled without writing QueueSize
	 * gets the maximum, not the 4 latched before the reset. (No status 0
	 * write here: that would reset them through the register path.) */
	ck_assert_int_eq(wr(R_STATUS, S_ACK), 0);
	ck_assert_int_eq(wr(R_STATUS, S_ACK | S_DRV), 0);
	ck_assert_int_eq(wr(R_DRV_FEAT_SEL, 1), 0);
	ck_assert_int_eq(wr(R_DRV_FEAT, 1), 0);
	ck_assert_int_eq(wr(R_STATUS, S_ACK | S_DRV | S_FOK), 0);
	ck_assert_int_eq(wr(R_QUEUE_SEL, 1), 0);
	ck_assert_int_eq(wr(R_QUEUE_READY, 1), 0);
	struct vdev_queue_config qc = VDEV_QUEUE_CONFIG_INIT;
	ck_assert_int_eq(vdev_device_queue_config(E->dev, 1, &qc), 0);
	ck_assert_uint_eq(qc.size, QMAX);
	ck_assert_uint_eq(qc.desc_addr, 0);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Legacy (version 1). */

static uint64_t align_up(uint64_t x, uint64_t a)
{
	return (x + a - 1) & ~(a - 1);
}

/* Set up legacy queue @qi at page @pfn with @num entries and @align,
 * returning the ring as the spec's legacy layout places it. */
static void legacy_queue(uint32_t qi, uint32_t pfn, uint16_t num, uint32_t align,
			 uint32_t page, struct hring *h)
{
	uint64_t desc = (uint64_t)pfn * page;
	uint64_t used = desc + align_up(16ull * num + 2ull * (3 + num), align);

	ck_assert_int_eq(wr(R_QUEUE_SEL, qi), 0);
	ck_assert_uint_eq(rd(R_QUEUE_PFN), 0);
	ck_assert_uint_eq(rd(R_QUEUE_SIZE_MAX), QMAX);
	hring_init(h, desc, desc + 16ull * num, used, num);
	ck_assert_int_eq(wr(R_QUEUE_SIZE, num), 0);
	ck_assert_int_eq(wr(R_QUEUE_ALIGN, align), 0);
	ck_assert_int_eq(wr(R_QUEUE_PFN, pfn), 0);
	ck_assert_uint_eq(rd(R_QUEUE_PFN), pfn);
}

START_TEST(t_legacy)
{
	struct vdev_queue_config qc = VDEV_QUEUE_CONFIG_INIT;
	struct hring h0, h1;
	uint32_t pfn0 = (uint32_t)(RING_A_GPA / 4096), pfn1;
	uint8_t b[4];

	ck_assert_uint_eq(rd(R_MAGIC), MAGIC);
	ck_assert_uint_eq(rd(R_VERSION), 1);
	ck_assert_uint_eq(rd(R_DEVICE_ID), DEV_TYPE);
	ck_assert_uint_eq(rd(R_VENDOR_ID), 0x56444556u);
	/* HostFeatures: bits 0..31 only, no VERSION_1 / RING_PACKED. */
	ck_assert_int_eq(wr(R_DEV_FEAT_SEL, 0), 0);
	ck_assert_uint_eq(rd(R_DEV_FEAT), (uint32_t)vdev_device_features(E->dev));
	ck_assert_int_eq(wr(R_DEV_FEAT_SEL, 1), 0);
	ck_assert_uint_eq(rd(R_DEV_FEAT), 0);
	/* Modern-only registers do not exist here. */
	static const uint32_t modern[] = {R_QUEUE_READY, R_DESC_LO, R_DRIVER_HI, R_DEVICE_LO,
					  R_SHM_SEL,     R_SHM_LEN_LO, R_QUEUE_RESET, R_GEN};
	for (size_t i = 0; i < sizeof(modern) / sizeof(modern[0]); i++) {
		ck_assert_int_eq(vdev_mmio_read(E->mmio, modern[i], b, 4), -EINVAL);
		ck_assert_int_eq(wr(modern[i], 1), -EINVAL);
	}
	/* The probe of the modern driver side rejects a legacy device. */
	ck_assert_int_eq(vdev_drv_mmio_init(E->dm_storage, sizeof(E->dm_storage),
					    &(struct vdev_drv_mmio_io_ops){
						    .struct_size =
							    sizeof(struct vdev_drv_mmio_io_ops),
						    .read = io_read,
						    .write = io_write},
					    E->mmio, &E->dm),
			 0);
	ck_assert_int_eq(vdev_drv_mmio_probe(E->dm, NULL), -ENOTSUP);

	/* The legacy init sequence, by hand. */
	ck_assert_int_eq(vdev_device_set_irq(E->dev, E->irq), 0);
	for (int pass = 0; pass < 2; pass++) {
		ck_assert_int_eq(wr(R_STATUS, 0), 0);
		ck_assert_int_eq(wr(R_STATUS, S_ACK), 0);
		ck_assert_int_eq(wr(R_STATUS, S_ACK | S_DRV), 0);
		ck_assert_int_eq(wr(R_DEV_FEAT_SEL, 0), 0);
		ck_assert_int_eq(wr(R_DRV_FEAT_SEL, 0), 0);
		ck_assert_int_eq(wr(R_DRV_FEAT, rd(R_DEV_FEAT) & (uint32_t)BIT(3)), 0);
		if (pass == 0) /* kept across resets, as Linux writes it once */
			ck_assert_int_eq(wr(R_GUEST_PAGE_SIZE, 4096), 0);
		legacy_queue(0, pfn0, 8, 4096, 4096, &h0);
		pfn1 = (uint32_t)(RING_B_GPA / 4096);
		legacy_queue(1, pfn1, 16, 64, 4096, &h1);
		/* The device got the spec's layout. */
		ck_assert_int_eq(vdev_device_queue_config(E->dev, 0, &qc), 0);
		ck_assert_uint_eq(qc.size, 8);
		ck_assert_uint_eq(qc.desc_addr, RING_A_GPA);
		ck_assert_uint_eq(qc.driver_addr, RING_A_GPA + 128);
		ck_assert_uint_eq(qc.device_addr, RING_A_GPA + 4096);
		ck_assert_int_eq(vdev_device_queue_config(E->dev, 1, &qc), 0);
		ck_assert_uint_eq(qc.driver_addr, RING_B_GPA + 256);
		ck_assert_uint_eq(qc.device_addr, RING_B_GPA + 256 + 64);
		/* In use: PFN, QueueNum and QueueAlign are locked. */
		ck_assert_int_lt(wr(R_QUEUE_PFN, pfn0), 0);
		ck_assert_int_lt(wr(R_QUEUE_SIZE, 4), 0);
		ck_assert_int_lt(wr(R_QUEUE_ALIGN, 4096), 0);
		ck_assert_uint_eq(rd(R_QUEUE_PFN), pfn1);
		/* DRIVER_OK straight after DRIVER (no FEATURES_OK in legacy). */
		ck_assert_int_eq(wr(R_STATUS, S_ACK | S_DRV | S_DOK), 0);
		ck_assert_uint_eq(rd(R_STATUS), S_ACK | S_DRV | S_DOK);
		ck_assert_uint_eq(E->inv.activations, (unsigned)pass + 1);
		for (int i = 0; i < 5; i++) {
			hring_roundtrip(&h0, 0, 40 + i, (uint8_t)i, i & 1);
			hring_roundtrip(&h1, 1, 400, (uint8_t)(i * 3), 0);
		}
		ck_assert_uint_eq(rd(R_ISR), 1);
		ck_assert_int_eq(wr(R_ISR_ACK, 1), 0);
		ck_assert_uint_eq(rd(R_ISR), 0);
		/* Config space is at 0x100 here too. */
		ck_assert_uint_eq(rd(R_CONFIG + 4), 0x17161514u);
		/* Reset: every QueuePFN reads 0 again. */
		ck_assert_int_eq(wr(R_STATUS, 0), 0);
		ck_assert_uint_eq(E->inv.resets, (unsigned)pass + 1);
		for (uint32_t q = 0; q < NQ; q++) {
			ck_assert_int_eq(wr(R_QUEUE_SEL, q), 0);
			ck_assert_uint_eq(rd(R_QUEUE_PFN), 0);
		}
		ck_assert_uint_eq(rd(R_STATUS), 0);
	}
}
END_TEST

START_TEST(t_legacy_refusals)
{
	struct hring h;

	ck_assert_int_eq(vdev_device_set_irq(E->dev, E->irq), 0);
	/* Queue setup needs DRIVER. */
	ck_assert_int_eq(wr(R_QUEUE_SEL, 0), 0);
	ck_assert_int_eq(wr(R_QUEUE_SIZE, 8), 0);
	ck_assert_int_lt(wr(R_QUEUE_PFN, 0x100100), 0);
	ck_assert_uint_eq(rd(R_QUEUE_PFN), 0);
	ck_assert_int_eq(wr(R_STATUS, S_ACK), 0);
	ck_assert_int_eq(wr(R_STATUS, S_ACK | S_DRV), 0);
	/* Bad page size / alignment / size: refused, PFN reads 0. */
	ck_assert_int_lt(wr(R_GUEST_PAGE_SIZE, 0), 0);
	ck_assert_int_lt(wr(R_GUEST_PAGE_SIZE, 3000), 0);
	ck_assert_int_eq(wr(R_QUEUE_SIZE, 12), 0);
	ck_assert_int_lt(wr(R_QUEUE_PFN, 0x100100), 0);
	ck_assert_uint_eq(rd(R_QUEUE_PFN), 0);
	ck_assert_int_eq(wr(R_QUEUE_SIZE, 8), 0);
	ck_assert_int_eq(wr(R_QUEUE_ALIGN, 100), 0);
	ck_assert_int_lt(wr(R_QUEUE_PFN, 0x100100), 0);
	ck_assert_uint_eq(rd(R_QUEUE_PFN), 0);
	ck_assert_int_eq(wr(R_QUEUE_ALIGN, 4096), 0);
	/* A missing queue. */
	ck_assert_int_eq(wr(R_QUEUE_SEL, NQ), 0);
	ck_assert_uint_eq(rd(R_QUEUE_SIZE_MAX), 0);
	ck_assert_int_lt(wr(R_QUEUE_PFN, 0x100100), 0);
	ck_assert_uint_eq(rd(R_QUEUE_PFN), 0);
	/* A ring outside guest memory: accepted as registers, but DRIVER_OK
	 * then marks the device as needing a reset. */
	ck_assert_int_eq(wr(R_QUEUE_SEL, 0), 0);
	ck_assert_int_eq(wr(R_QUEUE_PFN, 0xffffffffu), 0);
	ck_assert_int_eq(wr(R_STATUS, S_ACK | S_DRV | S_DOK), 0);
	ck_assert_uint_ne(rd(R_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET, 0);
	ck_assert_uint_eq(E->inv.activations, 0);
	/* Reset, then the page size kept from before is used. */
	ck_assert_int_eq(wr(R_STATUS, 0), 0);
	ck_assert_int_eq(wr(R_STATUS, S_ACK), 0);
	ck_assert_int_eq(wr(R_STATUS, S_ACK | S_DRV), 0);
	ck_assert_int_eq(wr(R_GUEST_PAGE_SIZE, 1024), 0);
	legacy_queue(0, (uint32_t)(RING_A_GPA / 1024) + 1, 4, 1024, 1024, &h);
	/* QueuePFN 0 before DRIVER_OK disables it. */
	ck_assert_int_eq(wr(R_QUEUE_PFN, 0), 0);
	ck_assert_uint_eq(rd(R_QUEUE_PFN), 0);
	ck_assert_int_eq(vdev_device_queue_enabled(E->dev, 0), 0);
	legacy_queue(0, (uint32_t)(RING_A_GPA / 1024) + 1, 4, 1024, 1024, &h);
	ck_assert_int_eq(wr(R_STATUS, S_ACK | S_DRV | S_DOK), 0);
	hring_roundtrip(&h, 0, 77, 4, 0);
	/* After DRIVER_OK, QueuePFN 0 is refused (no queue reset in legacy). */
	ck_assert_int_lt(wr(R_QUEUE_PFN, 0), 0);
	ck_assert_uint_eq(rd(R_QUEUE_PFN), (uint32_t)(RING_A_GPA / 1024) + 1);
	hring_roundtrip(&h, 0, 78, 5, 1);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Construction and the driver-side helpers. */

START_TEST(t_new_args)
{
	struct vdev_mmio_config mc = VDEV_MMIO_CONFIG_INIT;
	vdev_mmio *m = (vdev_mmio *)&mc;

	ck_assert_int_eq(vdev_mmio_new(NULL, E->dev, E->irq, &m), -EINVAL);
	ck_assert_int_eq(vdev_mmio_new(&mc, NULL, E->irq, &m), -EINVAL);
	ck_assert_int_eq(vdev_mmio_new(&mc, E->dev, NULL, &m), -EINVAL);
	ck_assert_int_eq(vdev_mmio_new(&mc, E->dev, E->irq, NULL), -EINVAL);
	mc.version = 3;
	ck_assert_int_eq(vdev_mmio_new(&mc, E->dev, E->irq, &m), -EINVAL);
	mc.version = 2;
	mc.reserved = 1;
	ck_assert_int_eq(vdev_mmio_new(&mc, E->dev, E->irq, &m), -EINVAL);
	mc.reserved = 0;
	mc.struct_size = 2;
	ck_assert_int_eq(vdev_mmio_new(&mc, E->dev, E->irq, &m), -EINVAL);
	ck_assert_ptr_eq(m, (vdev_mmio *)&mc); /* untouched on failure */
	vdev_mmio_free(NULL);

	/* Version 0 means 2; a vendor id is reported; legacy <-> modern can
	 * be switched by re-creating the transport on an idle device. */
	vdev_mmio_free(E->mmio);
	E->mmio = NULL;
	mc.struct_size = sizeof(mc);
	mc.version = 0;
	mc.vendor_id = 0x1af4;
	ck_assert_int_eq(vdev_mmio_new(&mc, E->dev, E->irq, &E->mmio), 0);
	ck_assert_uint_eq(rd(R_VERSION), 2);
	ck_assert_uint_eq(rd(R_VENDOR_ID), 0x1af4);
	vdev_mmio_free(E->mmio);
	mc.version = 1;
	ck_assert_int_eq(vdev_mmio_new(&mc, E->dev, E->irq, &E->mmio), 0);
	ck_assert_uint_eq(rd(R_VERSION), 1);
	ck_assert_int_eq(wr(R_DEV_FEAT_SEL, 1), 0);
	ck_assert_uint_eq(rd(R_DEV_FEAT), 0);
	vdev_mmio_free(E->mmio);
	mc.version = 2;
	ck_assert_int_eq(vdev_mmio_new(&mc, E->dev, E->irq, &E->mmio), 0);
	ck_assert_int_eq(wr(R_DEV_FEAT_SEL, 1), 0);
	ck_assert_uint_eq(rd(R_DEV_FEAT) & 1u, 1u);
	/* A device in use cannot get another interface. */
	ck_assert_int_eq(wr(R_STATUS, S_ACK), 0);
	ck_assert_int_eq(vdev_mmio_new(&mc, E->dev, E->irq, &m), -EBUSY);

	/* The bus ops. */
	const struct vdev_bus_device_ops *ops = vdev_mmio_bus_ops();
	ck_assert_ptr_nonnull(ops);
	ck_assert_uint_ge(ops->struct_size, sizeof(*ops));
	ck_assert_str_eq(ops->debug_label(E->mmio), "virtio-mmio");
	ck_assert(ops->destroy == NULL);
	struct vdev_bus_access a = {.struct_size = sizeof(a), .size = 4, .offset = R_DEVICE_ID};
	uint8_t b[4];
	ck_assert_int_eq(ops->read(E->mmio, &a, b), 0);
	ck_assert_uint_eq(b[0], DEV_TYPE);
}
END_TEST

/* A fake register block for the driver side's probe. */
struct fake {
	uint32_t magic, version, id;
	uint32_t last_off, last_val, writes;
};

static uint32_t fake_read(void *ctx, uint32_t off, uint32_t width)
{
	struct fake *f = ctx;

	ck_assert_uint_eq(width, 4);
	switch (off) {
	case R_MAGIC:
		return f->magic;
	case R_VERSION:
		return f->version;
	case R_DEVICE_ID:
		return f->id;
	case R_ISR:
		return 0xffu;
	default:
		return 0;
	}
}

static void fake_write(void *ctx, uint32_t off, uint32_t width, uint32_t v)
{
	struct fake *f = ctx;

	(void)width;
	f->last_off = off;
	f->last_val = v;
	f->writes++;
}

START_TEST(t_drv_probe)
{
	struct fake f = {MAGIC, 2, 0, 0, 0, 0};
	struct vdev_drv_mmio_io_ops io = VDEV_DRV_MMIO_IO_OPS_INIT;
	uint64_t st[8];
	vdev_drv_mmio *m = NULL;
	uint32_t id = 12345;

	ck_assert_uint_le(vdev_drv_mmio_storage_size(), sizeof(st));
	ck_assert_int_eq(vdev_drv_mmio_init(st, sizeof(st), &io, &f, &m), -EINVAL); /* no ops */
	io.read = fake_read;
	io.write = fake_write;
	ck_assert_int_eq(vdev_drv_mmio_init(NULL, sizeof(st), &io, &f, &m), -EINVAL);
	ck_assert_int_eq(vdev_drv_mmio_init(st, 4, &io, &f, &m), -EINVAL);
	ck_assert_int_eq(vdev_drv_mmio_init((char *)st + 1, sizeof(st) - 8, &io, &f, &m), -EINVAL);
	ck_assert_int_eq(vdev_drv_mmio_init(st, sizeof(st), NULL, NULL, &m), -EINVAL);
	ck_assert_int_eq(vdev_drv_mmio_init(st, sizeof(st), &io, &f, NULL), -EINVAL);
	ck_assert_ptr_null(m);
	ck_assert_int_eq(vdev_drv_mmio_init(st, sizeof(st), &io, &f, &m), 0);
	/* DeviceID 0: a placeholder, no device. */
	ck_assert_int_eq(vdev_drv_mmio_probe(m, &id), -ENODEV);
	ck_assert_uint_eq(id, 12345);
	f.id = 4;
	ck_assert_int_eq(vdev_drv_mmio_probe(m, &id), 0);
	ck_assert_uint_eq(id, 4);
	f.version = 1;
	ck_assert_int_eq(vdev_drv_mmio_probe(m, &id), -ENOTSUP);
	f.version = 3;
	ck_assert_int_eq(vdev_drv_mmio_probe(m, &id), -ENOTSUP);
	f.version = 2;
	f.magic = 0x76697274u;
	ck_assert_int_eq(vdev_drv_mmio_probe(m, &id), -ENOTSUP);
	ck_assert_int_eq(vdev_drv_mmio_probe(NULL, &id), -EINVAL);
	/* Only defined ISR bits are acked. */
	ck_assert_uint_eq(vdev_drv_mmio_ack_interrupt(m), 3);
	ck_assert_uint_eq(f.last_off, R_ISR_ACK);
	ck_assert_uint_eq(f.last_val, 3);
	ck_assert_uint_eq(vdev_drv_mmio_ack_interrupt(NULL), 0);
	/* A queue that does not exist (QueueSizeMax 0). */
	ck_assert_int_eq(vdev_drv_mmio_transport()->queue_setup(m, 3, 8, 0, 0, 0), -ENODEV);
}
END_TEST

/* The volatile path (io == NULL): registers are plain memory here. */
START_TEST(t_drv_volatile)
{
	static uint32_t regs[VDEV_MMIO_SIZE / 4];
	uint64_t st[8];
	vdev_drv_mmio *m = NULL;
	const struct vdev_drv_transport_ops *t = vdev_drv_mmio_transport();
	uint32_t id = 0;

	memset(regs, 0, sizeof(regs));
	regs[R_MAGIC / 4] = MAGIC;
	regs[R_VERSION / 4] = 2;
	regs[R_DEVICE_ID / 4] = 9;
	regs[R_QUEUE_SIZE_MAX / 4] = 32;
	regs[R_DEV_FEAT / 4] = 0xabcd;
	regs[R_CONFIG / 4 + 1] = 0x44332211u;
	ck_assert_int_eq(vdev_drv_mmio_init(st, sizeof(st), NULL, (char *)regs + 2, &m), -EINVAL);
	ck_assert_int_eq(vdev_drv_mmio_init(st, sizeof(st), NULL, regs, &m), 0);
	ck_assert_int_eq(vdev_drv_mmio_probe(m, &id), 0);
	ck_assert_uint_eq(id, 9);
	t->set_status(m, 3);
	ck_assert_uint_eq(regs[R_STATUS / 4], 3);
	ck_assert_uint_eq(t->get_status(m), 3);
	ck_assert_uint_eq(t->get_device_features(m, 1), 0xabcd);
	ck_assert_uint_eq(regs[R_DEV_FEAT_SEL / 4], 1);
	t->set_driver_features(m, 1, 0x77);
	ck_assert_uint_eq(regs[R_DRV_FEAT_SEL / 4], 1);
	ck_assert_uint_eq(regs[R_DRV_FEAT / 4], 0x77);
	ck_assert_uint_eq(t->queue_max_size(m, 5), 32);
	ck_assert_uint_eq(regs[R_QUEUE_SEL / 4], 5);
	/* queue_setup writes everything, then reads QueueReady back (still 1
	 * in plain memory). */
	ck_assert_int_eq(t->queue_setup(m, 1, 64, 8, 0, 0), -EINVAL); /* > max */
	ck_assert_int_eq(t->queue_setup(m, 1, 16, 0x123456789aull, 0xbcdef01234ull,
					0x5678000000ull),
			 0);
	ck_assert_uint_eq(regs[R_QUEUE_SIZE / 4], 16);
	ck_assert_uint_eq(regs[R_DESC_LO / 4], 0x3456789au);
	ck_assert_uint_eq(regs[R_DESC_HI / 4], 0x12);
	ck_assert_uint_eq(regs[R_DRIVER_LO / 4], 0xdef01234u);
	ck_assert_uint_eq(regs[R_DRIVER_HI / 4], 0xbc);
	ck_assert_uint_eq(regs[R_DEVICE_LO / 4], 0x78000000u);
	ck_assert_uint_eq(regs[R_DEVICE_HI / 4], 0x56);
	ck_assert_uint_eq(regs[R_QUEUE_READY / 4], 1);
	/* Ready already: a second setup is refused before touching anything. */
	ck_assert_int_eq(t->queue_setup(m, 1, 8, 0, 0, 0), -EBUSY);
	ck_assert_uint_eq(regs[R_QUEUE_SIZE / 4], 16);
	t->queue_notify(m, 1);
	ck_assert_uint_eq(regs[R_QUEUE_NOTIFY / 4], 1);
	ck_assert_uint_eq(t->config_read(m, 4, 4), 0x44332211u);
	ck_assert_uint_eq(t->config_read(m, 6, 2), 0x4433u);
	ck_assert_uint_eq(t->config_read(m, 5, 1), 0x22u);
	t->config_write(m, 8, 2, 0xbeef);
	ck_assert_uint_eq(regs[R_CONFIG / 4 + 2] & 0xffffu, 0xbeefu);
	/* Never beyond the block. */
	ck_assert_uint_eq(t->config_read(m, VDEV_MMIO_SIZE - R_CONFIG - 2, 4), 0);
	t->config_write(m, VDEV_MMIO_SIZE, 4, 1);
	regs[R_ISR / 4] = 2;
	ck_assert_uint_eq(vdev_drv_mmio_ack_interrupt(m), 2);
	ck_assert_uint_eq(regs[R_ISR_ACK / 4], 2);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Concurrency and sleep. */

struct racer {
	vdev_mmio *m;
	uint32_t seed;
	unsigned bad;
};

static void *race(void *arg)
{
	struct racer *r = arg;
	uint8_t b[8];

	for (unsigned i = 0; i < 20000; i++) {
		uint32_t q = (r->seed + i) % (NQ + 1), v;

		b[0] = (uint8_t)q;
		b[1] = b[2] = b[3] = 0;
		(void)vdev_mmio_write(r->m, R_QUEUE_SEL, b, 4);
		(void)vdev_mmio_read(r->m, R_QUEUE_SIZE_MAX, b, 4);
		memcpy(&v, b, 4);
		if (v != 0 && v != QMAX)
			r->bad++;
		(void)vdev_mmio_read(r->m, R_MAGIC, b, 4);
		memcpy(&v, b, 4);
		if (v != MAGIC)
			r->bad++;
		(void)vdev_mmio_read(r->m, R_CONFIG + (i % 16), b, 8);
		if (b[0] != (uint8_t)(0x10 + i % 16))
			r->bad++;
	}
	return NULL;
}

START_TEST(t_race)
{
	pthread_t th[4];
	struct racer r[4];

	for (int i = 0; i < 4; i++) {
		r[i] = (struct racer){E->mmio, (uint32_t)i, 0};
		ck_assert_int_eq(pthread_create(&th[i], NULL, race, &r[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		ck_assert_uint_eq(r[i].bad, 0);
	}
}
END_TEST

START_TEST(t_bus_sleep)
{
	struct hring a;
	uint64_t out = DATA_GPA, in = DATA_GPA + 0x1000;
	uint32_t id, len;

	ck_assert_int_eq(vdev_bus_new(VDEV_BUS_MMIO, &E->bus), 0);
	ck_assert_int_eq(vdev_bus_insert(E->bus, BUS_BASE, VDEV_MMIO_SIZE, vdev_mmio_bus_ops(),
					 E->mmio),
			 0);
	ck_assert_int_eq(vdev_device_set_irq(E->dev, E->irq), 0);
	hand_features(BIT(VIRTIO_F_VERSION_1));
	ring_a(&a, 8);
	ck_assert_int_eq(hand_queue(0, &a), 0);
	ck_assert_int_eq(wr(R_STATUS, S_ACK | S_DRV | S_FOK | S_DOK), 0);
	/* Asleep: a kick is held, delivered on wake. */
	ck_assert_int_eq(vdev_bus_sleep(E->bus), 0);
	hring_add(&a, out, 16, in, 16);
	ck_assert_int_eq(vdev_bus_write(E->bus, BUS_BASE + R_QUEUE_NOTIFY, 4, 0,
					(uint8_t[]){0, 0, 0, 0}),
			 0);
	ck_assert_uint_eq(E->inv.served[0], 0);
	ck_assert_int_eq(hring_used(&a, &id, &len), 0);
	ck_assert_int_eq(vdev_bus_wake(E->bus), 0);
	ck_assert_uint_eq(E->inv.served[0], 1);
	ck_assert_int_eq(hring_used(&a, &id, &len), 1);
	ck_assert_uint_eq(len, 16);
}
END_TEST

static Suite *mmio_suite(void)
{
	Suite *s = suite_create("mmio");
	TCase *tc;

	tc = tcase_create("modern");
	tcase_add_checked_fixture(tc, setup_modern, teardown);
	tcase_add_test(tc, t_registers_modern);
	tcase_add_test(tc, t_shm);
	tcase_add_test(tc, t_access_width);
	tcase_add_test(tc, t_queue_refused_while_ready);
	tcase_add_test(tc, t_notify);
	tcase_add_test(tc, t_interrupts);
	tcase_add_test(tc, t_config_generation);
	tcase_add_test(tc, t_queue_reset_not_negotiated);
	tcase_add_test(tc, t_wrong_order);
	tcase_add_test(tc, t_external_reset);
	tcase_add_test(tc, t_new_args);
	tcase_add_test(tc, t_race);
	tcase_add_test(tc, t_bus_sleep);
	suite_add_tcase(s, tc);

	tc = tcase_create("driver");
	tcase_add_checked_fixture(tc, setup_modern, teardown);
	tcase_add_test(tc, t_driver_split);
	tcase_add_test(tc, t_driver_packed);
	tcase_add_loop_test(tc, t_driver_bus, 0, 2);
	tcase_add_test(tc, t_drv_probe);
	tcase_add_test(tc, t_drv_volatile);
	suite_add_tcase(s, tc);

	tc = tcase_create("ring-reset");
	tcase_add_checked_fixture(tc, setup_modern_rr, teardown);
	tcase_add_test(tc, t_queue_reset);
	suite_add_tcase(s, tc);

	tc = tcase_create("legacy");
	tcase_add_checked_fixture(tc, setup_legacy, teardown);
	tcase_add_test(tc, t_legacy);
	tcase_add_test(tc, t_legacy_refusals);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(mmio_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
