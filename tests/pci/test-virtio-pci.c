/* SPDX-License-Identifier: MIT */
/*
 * virtio-pci, device side, driven by hand as a guest driver would: config
 * cycles (capability walk, BAR sizing and assignment, MSI-X message control,
 * the PCI config access window) and BAR accesses (common config, notify,
 * ISR, device config, MSI-X table and PBA, the legacy block), with split
 * rings built here.
 *
 * The device model is an "inverter": every chain's readable bytes come back
 * bitwise inverted in its writable part, served from queue_notify. Guest
 * memory is a malloc'd buffer mapped above 4 GiB, so every *_hi register
 * matters. MSI messages, vector updates and INTx levels are recorded by the
 * test's struct vdev_pci_msi_ops.
 *
 * Two ways to reach the function: through a vdev_pci_root (config cycles
 * with vdev_pci_root_config_read/write, BARs on an MMIO and a port I/O bus
 * where the root placed them), and directly through
 * vdev_virtio_pci_bus_ops() with hand-made struct vdev_bus_access (the
 * "direct" test case), which also lets the tests hand the function accesses
 * a bus would never route to it.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/pci_regs.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_pci.h>
#include <linux/virtio_ring.h>

#include <virtio-dev/virtio-dev.h>

#define BIT(n) (1ull << (n))
#define GPA_BASE 0x100000000ull /* 4 GiB: the high address words are non-zero */
#define MEM_SIZE (4u << 20)
#define DATA_GPA (GPA_BASE + (1u << 20))
#define RING_A_GPA (GPA_BASE + (2u << 20))
#define RING_B_GPA (GPA_BASE + (3u << 20))
#define NQ 2u
#define QMAX 64u
#define CFG_SIZE 24u
/* The model is no block device, but borrows the type for its transitional ID. */
#define DEV_TYPE VIRTIO_ID_BLOCK
#define MAXVEC 64u

/* Where the tests' "firmware" puts the BARs, inside the root's windows. */
#define ECAM_BASE 0xb0000000ull
#define MMIO32_BASE 0xc0000000ull
#define MMIO32_SIZE 0x20000000ull
#define MMIO64_BASE 0x800000000ull
#define MMIO64_SIZE 0x100000000ull
#define IO_BASE 0xc000ull
#define IO_SIZE 0x4000ull
#define IO_BAR_ADDR 0xc100ull
#define MSIX_BAR_ADDR 0xc0010000ull
#define BAR4_ADDR 0x800000000ull
#define FN_ADDR VDEV_PCI_ADDR(0, 3, 0)
#define MSI_ADDR 0xfee00000u

#define S_ACK VIRTIO_CONFIG_S_ACKNOWLEDGE
#define S_DRV VIRTIO_CONFIG_S_DRIVER
#define S_FOK VIRTIO_CONFIG_S_FEATURES_OK
#define S_DOK VIRTIO_CONFIG_S_DRIVER_OK
#define NOVEC VIRTIO_MSI_NO_VECTOR

/* BAR 4 structure offsets. */
#define COMMON(f) (VDEV_VIRTIO_PCI_COMMON_OFFSET + (f))
#define ISR VDEV_VIRTIO_PCI_ISR_OFFSET
#define DEVCFG VDEV_VIRTIO_PCI_DEVICE_OFFSET
#define NOTIFY VDEV_VIRTIO_PCI_NOTIFY_OFFSET

/* ------------------------------------------------------------------------ */
/* The inverter device model (tests/common/inverter.h), and what the
 * function told the "VMM". */

#include "tests/common/inverter.h"

struct msi_rec {
	unsigned signals[MAXVEC];
	uint64_t addr[MAXVEC];
	uint32_t data[MAXVEC];
	unsigned total;
	unsigned updates[MAXVEC];
	uint32_t upd_masked[MAXVEC];
	uint64_t upd_addr[MAXVEC];
	uint32_t upd_data[MAXVEC];
	int intx;
	unsigned intx_up, intx_down;
};

struct opts {
	uint32_t flags;
	uint32_t nvec;
	uint32_t mult;
	uint32_t nq;
	uint32_t cfg_size;
	uint32_t qmax; /* 0: QMAX */
	uint64_t features;
	int ring_reset;
	int direct; /* no root: ops called by hand */
};

struct env {
	struct opts o;
	uint8_t *buf;
	vdev_mem *mem;
	vdev_device *dev;
	vdev_virtio_pci *vp;
	const struct vdev_bus_device_ops *ops;
	struct inv inv;
	struct msi_rec msi;
	struct vdev_pci_msi_ops msi_ops;
	vdev_bus *mmio;
	vdev_bus *pio;
	vdev_pci_root *root;
	unsigned moves;
	struct vdev_pci_bar_move last_move;
	int moved_notify_r; /* vdev_virtio_pci_notify_address from inside bar_moved */
	uint64_t moved_notify;
	uint64_t bar_addr[6];
};

static struct env *E;

static void *host(uint64_t gpa)
{
	ck_assert_uint_ge(gpa, GPA_BASE);
	ck_assert_uint_lt(gpa - GPA_BASE, MEM_SIZE);
	return E->buf + (gpa - GPA_BASE);
}

/* The VMM's side: MSI delivery, INTx, BAR moves. */

static int msi_signal(void *opaque, uint32_t vector, uint64_t address, uint32_t data)
{
	struct msi_rec *m = opaque;

	ck_assert_uint_lt(vector, MAXVEC);
	m->signals[vector]++;
	m->addr[vector] = address;
	m->data[vector] = data;
	m->total++;
	return 0;
}

static void msi_update(void *opaque, uint32_t vector, uint64_t address, uint32_t data,
		       uint32_t masked)
{
	struct msi_rec *m = opaque;

	ck_assert_uint_lt(vector, MAXVEC);
	m->updates[vector]++;
	m->upd_addr[vector] = address;
	m->upd_data[vector] = data;
	m->upd_masked[vector] = masked;
}

static int msi_intx(void *opaque, uint32_t level)
{
	struct msi_rec *m = opaque;

	ck_assert_uint_le(level, 1);
	if (level)
		m->intx_up++;
	else
		m->intx_down++;
	m->intx = (int)level;
	return 0;
}

static void bar_moved(void *opaque, const struct vdev_pci_bar_move *mv)
{
	struct env *e = opaque;

	uint32_t val;

	e->moves++;
	e->last_move = *mv;
	/* The VMM may ask where the kicks land now from the callback itself. */
	if (mv->bar == VDEV_VIRTIO_PCI_BAR_MODERN)
		e->moved_notify_r =
			vdev_virtio_pci_notify_address(e->vp, 0, &e->moved_notify, &val);
}

/* ------------------------------------------------------------------------ */
/* Environment. */

static void env_make(const struct opts *o)
{
	struct vdev_device_config dc = VDEV_DEVICE_CONFIG_INIT;
	struct vdev_device_ops ops = VDEV_DEVICE_OPS_INIT;
	struct vdev_virtio_pci_config pc = VDEV_VIRTIO_PCI_CONFIG_INIT;

	E = calloc(1, sizeof(*E));
	ck_assert_ptr_nonnull(E);
	E->o = *o;
	if (!E->o.nq)
		E->o.nq = NQ;
	E->buf = calloc(1, MEM_SIZE);
	ck_assert_ptr_nonnull(E->buf);
	ck_assert_int_eq(vdev_mem_new(&E->mem), 0);
	ck_assert_int_eq(vdev_mem_add_region(E->mem, GPA_BASE, MEM_SIZE, E->buf, 0), 0);
	for (uint32_t i = 0; i < CFG_SIZE; i++)
		E->inv.config[i] = (uint8_t)(0x10 + i);

	dc.device_type = DEV_TYPE;
	dc.features = BIT(VIRTIO_RING_F_EVENT_IDX) | BIT(VIRTIO_F_RING_PACKED) | BIT(3) |
		      BIT(33) | o->features;
	dc.num_queues = E->o.nq;
	dc.queue_max_size = o->qmax ? o->qmax : QMAX;
	dc.config_size = o->cfg_size == UINT32_MAX ? 0 : (o->cfg_size ? o->cfg_size : CFG_SIZE);
	ops = inv_ops(o->ring_reset);
	ck_assert_int_eq(vdev_device_new(&dc, &ops, &E->inv, &E->dev), 0);
	ck_assert_int_eq(vdev_device_set_memory(E->dev, E->mem), 0);

	E->msi_ops = (struct vdev_pci_msi_ops)VDEV_PCI_MSI_OPS_INIT;
	E->msi_ops.signal = msi_signal;
	E->msi_ops.update = msi_update;
	E->msi_ops.set_intx = msi_intx;
	pc.flags = o->flags;
	pc.msix_vectors = o->nvec;
	pc.notify_off_multiplier = o->mult;
	pc.msi_ops = &E->msi_ops;
	pc.msi_opaque = &E->msi;
	ck_assert_int_eq(vdev_virtio_pci_new(&pc, E->dev, &E->vp), 0);
	E->ops = vdev_virtio_pci_bus_ops();
	ck_assert_ptr_nonnull(E->ops);

	if (!o->direct) {
		struct vdev_pci_root_config rc = VDEV_PCI_ROOT_CONFIG_INIT;
		static struct vdev_pci_root_ops rops = {
			.struct_size = sizeof(struct vdev_pci_root_ops),
			.bar_moved = bar_moved,
		};

		ck_assert_int_eq(vdev_bus_new(VDEV_BUS_MMIO, &E->mmio), 0);
		ck_assert_int_eq(vdev_bus_new(VDEV_BUS_PIO, &E->pio), 0);
		rc.num_buses = 1;
		rc.mmio_bus = E->mmio;
		rc.pio_bus = E->pio;
		rc.mmio32_base = MMIO32_BASE;
		rc.mmio32_size = MMIO32_SIZE;
		rc.mmio64_base = MMIO64_BASE;
		rc.mmio64_size = MMIO64_SIZE;
		rc.io_base = IO_BASE;
		rc.io_size = IO_SIZE;
		rc.ops = &rops;
		rc.opaque = E;
		ck_assert_int_eq(vdev_pci_root_new(&rc, &E->root), 0);
		ck_assert_int_eq(vdev_bus_insert(E->mmio, ECAM_BASE, VDEV_PCI_ECAM_BUS_SIZE,
						 vdev_pci_root_ecam_ops(), E->root),
				 0);
		ck_assert_int_eq(vdev_pci_root_add(E->root, FN_ADDR, E->ops, E->vp), 0);
	}
}

static void env_free(void)
{
	if (!E)
		return;
	if (E->root) {
		ck_assert_int_eq(vdev_bus_remove(E->mmio, ECAM_BASE), 0);
		vdev_pci_root_free(E->root);
	}
	vdev_bus_free(E->mmio);
	vdev_bus_free(E->pio);
	vdev_virtio_pci_free(E->vp);
	vdev_device_free(E->dev);
	vdev_mem_free(E->mem);
	free(E->buf);
	free(E);
	E = NULL;
}

static void setup_plain(void)
{
	struct opts o = {0};

	env_make(&o);
}

static void setup_direct(void)
{
	struct opts o = {0};

	o.direct = 1;
	env_make(&o);
}

static void setup_rr(void)
{
	struct opts o = {0};

	o.ring_reset = 1;
	env_make(&o);
}

static void setup_trans(void)
{
	struct opts o = {0};

	o.flags = VDEV_VIRTIO_PCI_F_TRANSITIONAL;
	env_make(&o);
}

static void setup_nomsix(void)
{
	struct opts o = {0};

	o.flags = VDEV_VIRTIO_PCI_F_NO_MSIX;
	env_make(&o);
}

static void teardown(void)
{
	env_free();
}

/* ------------------------------------------------------------------------ */
/* Access helpers. */

static uint64_t ld(const uint8_t *b, uint32_t n)
{
	uint64_t v = 0;

	while (n-- > 0)
		v = v << 8 | b[n];
	return v;
}

static void st(uint8_t *b, uint64_t v, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		b[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t cfg_rd(uint32_t off, uint32_t w)
{
	uint8_t b[4] = {0, 0, 0, 0};
	uint32_t v;

	if (E->root) {
		ck_assert_int_eq(
			vdev_pci_root_config_read(E->root, FN_ADDR, off / 4, off % 4, w, b), 0);
		return (uint32_t)ld(b, w);
	}
	v = E->ops->config_register_read(E->vp, off / 4) >> (8 * (off % 4));
	return w == 4 ? v : v & ((1u << (8 * w)) - 1);
}

static int cfg_wr(uint32_t off, uint32_t w, uint32_t v)
{
	uint8_t b[4];

	st(b, v, w);
	if (E->root)
		return vdev_pci_root_config_write(E->root, FN_ADDR, off / 4, off % 4, w, b);
	return E->ops->config_register_write(E->vp, off / 4, off % 4, b, w);
}

/* One access to BAR @bar at @off, where the tests' firmware put it. */
static int bar_rw(int write, uint32_t bar, uint64_t off, uint32_t size, uint64_t *v)
{
	uint64_t base = E->bar_addr[bar];
	uint8_t b[8] = {0};
	int r;

	if (write)
		st(b, *v, size);
	if (E->root) {
		vdev_bus *bus = bar == VDEV_VIRTIO_PCI_BAR_LEGACY ? E->pio : E->mmio;

		r = write ? vdev_bus_write(bus, base + off, size, 0, b)
			  : vdev_bus_read(bus, base + off, size, 0, b);
	} else {
		struct vdev_bus_access a = {.struct_size = sizeof(a)};

		a.size = size;
		a.address = base + off;
		a.base = base;
		a.offset = off;
		r = write ? E->ops->write(E->vp, &a, b) : E->ops->read(E->vp, &a, b);
	}
	if (!write)
		*v = ld(b, size);
	return r;
}

/* A read of BAR @bar that must succeed; a write that returns its result. */
static uint64_t rd_ok(uint32_t bar, uint64_t off, uint32_t size)
{
	uint64_t v = 0;

	ck_assert_int_eq(bar_rw(0, bar, off, size, &v), 0);
	return v;
}

static int wr(uint32_t bar, uint64_t off, uint32_t size, uint64_t v)
{
	return bar_rw(1, bar, off, size, &v);
}

/* BAR 4 (modern), BAR 0 (legacy), BAR 1 (MSI-X). */
#define m_rd(off, size) rd_ok(4, (off), (size))
#define m_rdr(off, size, v) bar_rw(0, 4, (off), (size), (v))
#define m_wr(off, size, v) wr(4, (off), (size), (v))
#define io_rd(off, size) rd_ok(0, (off), (size))
#define io_wr(off, size, v) wr(0, (off), (size), (v))
#define x_rd(off, size) rd_ok(1, (off), (size))
#define x_wr(off, size, v) wr(1, (off), (size), (v))

/* What firmware does: addresses for every BAR the function has, then decode
 * and bus mastering on. */
static void assign_bars(void)
{
	if (E->o.flags & VDEV_VIRTIO_PCI_F_TRANSITIONAL) {
		ck_assert_int_eq(cfg_wr(PCI_BASE_ADDRESS_0, 4, (uint32_t)IO_BAR_ADDR), 0);
		E->bar_addr[0] = IO_BAR_ADDR;
	}
	if (!(E->o.flags & VDEV_VIRTIO_PCI_F_NO_MSIX)) {
		ck_assert_int_eq(cfg_wr(PCI_BASE_ADDRESS_1, 4, (uint32_t)MSIX_BAR_ADDR), 0);
		E->bar_addr[1] = MSIX_BAR_ADDR;
	}
	ck_assert_int_eq(cfg_wr(PCI_BASE_ADDRESS_4, 4, (uint32_t)BAR4_ADDR), 0);
	ck_assert_int_eq(cfg_wr(PCI_BASE_ADDRESS_5, 4, (uint32_t)(BAR4_ADDR >> 32)), 0);
	E->bar_addr[4] = BAR4_ADDR;
	ck_assert_int_eq(cfg_wr(PCI_COMMAND, 2,
				PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER),
			 0);
}

/* The offset of the first vendor capability of @cfg_type (or, for 0, of the
 * MSI-X capability), walking the list as a driver does; 0 if absent. */
static uint32_t find_cap(uint8_t cfg_type)
{
	uint32_t at, steps = 0;

	ck_assert(cfg_rd(PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
	for (at = cfg_rd(PCI_CAPABILITY_LIST, 1) & ~3u; at; at = cfg_rd(at + 1, 1) & ~3u) {
		uint8_t id = (uint8_t)cfg_rd(at, 1);

		ck_assert_uint_ge(at, 0x40);
		ck_assert_uint_lt(++steps, 48);
		if (cfg_type == 0 && id == PCI_CAP_ID_MSIX)
			return at;
		if (cfg_type && id == PCI_CAP_ID_VNDR &&
		    cfg_rd(at + VIRTIO_PCI_CAP_CFG_TYPE, 1) == cfg_type)
			return at;
	}
	return 0;
}

static uint32_t msix_ctl_off(void)
{
	uint32_t at = find_cap(0);

	ck_assert_uint_ne(at, 0);
	return at + PCI_MSIX_FLAGS;
}

/* Program vector v with MSI_ADDR + 16 v / data 0x40 + v, unmasked, and
 * enable MSI-X (function mask off). */
static void msix_program(uint32_t n)
{
	for (uint32_t v = 0; v < n; v++) {
		uint64_t e = (uint64_t)v * PCI_MSIX_ENTRY_SIZE;

		ck_assert_int_eq(x_wr(e + PCI_MSIX_ENTRY_LOWER_ADDR, 4, MSI_ADDR + 16 * v), 0);
		ck_assert_int_eq(x_wr(e + PCI_MSIX_ENTRY_UPPER_ADDR, 4, 0), 0);
		ck_assert_int_eq(x_wr(e + PCI_MSIX_ENTRY_DATA, 4, 0x40 + v), 0);
		ck_assert_int_eq(x_wr(e + PCI_MSIX_ENTRY_VECTOR_CTRL, 4, 0), 0);
	}
	ck_assert_int_eq(cfg_wr(msix_ctl_off(), 2, PCI_MSIX_FLAGS_ENABLE), 0);
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

static void ring_a(struct hring *h, uint16_t size)
{
	hring_init(h, RING_A_GPA, RING_A_GPA + 0x1000, RING_A_GPA + 0x2000, size);
}

static void ring_b(struct hring *h, uint16_t size)
{
	hring_init(h, RING_B_GPA, RING_B_GPA + 0x800, RING_B_GPA + 0x4000, size);
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

/* Post one request on @h; the caller kicks. */
static void req_post(struct hring *h, uint32_t n, uint8_t seed)
{
	uint8_t *o = host(DATA_GPA), *i = host(DATA_GPA + 0x10000);

	for (uint32_t k = 0; k < n; k++)
		o[k] = (uint8_t)(seed + k);
	memset(i, 0, n);
	hring_add(h, DATA_GPA, n, DATA_GPA + 0x10000, n);
}

/* The answer to req_post is in the used ring. */
static void req_check(struct hring *h, uint32_t n, uint8_t seed)
{
	uint8_t *i = host(DATA_GPA + 0x10000);
	uint32_t id = 99, len = 0;

	ck_assert_int_eq(hring_used(h, &id, &len), 1);
	ck_assert_uint_eq(id, 0);
	ck_assert_uint_eq(len, n);
	for (uint32_t k = 0; k < n; k++)
		ck_assert_uint_eq(i[k], (uint8_t)~(uint8_t)(seed + k));
}

static uint32_t mult(void)
{
	return E->o.mult ? E->o.mult : 4;
}

/* A request on queue @q through its notify address. */
static void roundtrip(struct hring *h, uint32_t q, uint32_t n, uint8_t seed)
{
	unsigned served = E->inv.served[q];

	req_post(h, n, seed);
	ck_assert_int_eq(m_wr(NOTIFY + (uint64_t)q * mult(), 2, q), 0);
	ck_assert_uint_eq(E->inv.served[q], served + 1);
	req_check(h, n, seed);
}

/* Modern negotiation by hand, up to FEATURES_OK. */
static void m_features(uint64_t features)
{
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_STATUS), 1, 0), 0);
	ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_STATUS), 1), 0);
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_STATUS), 1, S_ACK), 0);
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_STATUS), 1, S_ACK | S_DRV), 0);
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_GFSELECT), 4, 0), 0);
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_GF), 4, (uint32_t)features), 0);
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_GFSELECT), 4, 1), 0);
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_GF), 4, (uint32_t)(features >> 32)), 0);
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_STATUS), 1, S_ACK | S_DRV | S_FOK), 0);
	ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_STATUS), 1), S_ACK | S_DRV | S_FOK);
}

/* Queue @q for ring @h with MSI-X vector @vec (as Linux: size, the three
 * addresses as 32-bit halves, the vector read back); then queue_enable. */
static int m_queue(uint32_t q, const struct hring *h, uint16_t vec)
{
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_Q_SELECT), 2, q), 0);
	ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_Q_SIZE), 2), QMAX);
	ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_Q_NOFF), 2), q);
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_Q_SIZE), 2, h->size), 0);
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_Q_DESCLO), 4, (uint32_t)h->desc), 0);
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_Q_DESCHI), 4, h->desc >> 32), 0);
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_Q_AVAILLO), 4, (uint32_t)h->avail), 0);
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_Q_AVAILHI), 4, h->avail >> 32), 0);
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_Q_USEDLO), 4, (uint32_t)h->used), 0);
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_Q_USEDHI), 4, h->used >> 32), 0);
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_Q_MSIX), 2, vec), 0);
	return m_wr(COMMON(VIRTIO_PCI_COMMON_Q_ENABLE), 2, 1);
}

static void m_driver_ok(void)
{
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_STATUS), 1, S_ACK | S_DRV | S_FOK | S_DOK),
			 0);
	ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_STATUS), 1),
			  S_ACK | S_DRV | S_FOK | S_DOK);
}

/* The whole modern bring-up with MSI-X: config vector 0, queue q vector
 * 1 + q, both queues live. */
static void bring_up_msix(struct hring *a, struct hring *b)
{
	assign_bars();
	msix_program(NQ + 1);
	m_features(BIT(VIRTIO_F_VERSION_1));
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_MSIX), 2, 0), 0);
	ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_MSIX), 2), 0);
	ring_a(a, 16);
	ring_b(b, 8);
	ck_assert_int_eq(m_queue(0, a, 1), 0);
	ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_Q_MSIX), 2), 1);
	ck_assert_int_eq(m_queue(1, b, 2), 0);
	m_driver_ok();
}

/* ------------------------------------------------------------------------ */
/* Header, capabilities, BARs. */

START_TEST(t_header)
{
	ck_assert_uint_eq(cfg_rd(PCI_VENDOR_ID, 2), 0x1af4);
	ck_assert_uint_eq(cfg_rd(PCI_DEVICE_ID, 2), 0x1040 + DEV_TYPE);
	ck_assert_uint_eq(cfg_rd(PCI_REVISION_ID, 1), 1);
	ck_assert_uint_eq(cfg_rd(PCI_CLASS_REVISION, 4) >> 8, 0x018000); /* by type: blk */
	ck_assert_uint_eq(cfg_rd(PCI_HEADER_TYPE, 1), PCI_HEADER_TYPE_NORMAL);
	ck_assert_uint_eq(cfg_rd(PCI_SUBSYSTEM_VENDOR_ID, 2), 0x1af4);
	ck_assert_uint_eq(cfg_rd(PCI_SUBSYSTEM_ID, 2), DEV_TYPE);
	ck_assert_uint_eq(cfg_rd(PCI_INTERRUPT_PIN, 1), 1);
	ck_assert_ptr_eq(vdev_virtio_pci_device(E->vp), E->dev);
	ck_assert_ptr_null(vdev_virtio_pci_device(NULL));
	ck_assert_ptr_eq(vdev_virtio_pci_bus_ops(), E->ops);
	ck_assert(E->ops->config_register_read != NULL);
	ck_assert(E->ops->virtual_config_register_write != NULL);
	if (E->root)
		ck_assert_ptr_eq(vdev_pci_root_find(E->root, FN_ADDR), E->vp);
}
END_TEST

START_TEST(t_header_transitional)
{
	ck_assert_uint_eq(cfg_rd(PCI_DEVICE_ID, 2), 0x1001);
	ck_assert_uint_eq(cfg_rd(PCI_REVISION_ID, 1), 0);
	ck_assert_uint_eq(cfg_rd(PCI_SUBSYSTEM_ID, 2), DEV_TYPE);
	/* BAR 0 is I/O. */
	ck_assert_uint_eq(cfg_rd(PCI_BASE_ADDRESS_0, 4) & PCI_BASE_ADDRESS_SPACE,
			  PCI_BASE_ADDRESS_SPACE_IO);
}
END_TEST

/* Capabilities: the five virtio structures and MSI-X, each inside its BAR. */
START_TEST(t_caps)
{
	static const struct {
		uint8_t type;
		uint32_t offset, length, cap_len;
	} want[] = {
		{VIRTIO_PCI_CAP_COMMON_CFG, 0x0000, VIRTIO_PCI_COMMON_Q_RESET + 2,
		 sizeof(struct virtio_pci_cap)},
		{VIRTIO_PCI_CAP_NOTIFY_CFG, 0x3000, NQ * 4, sizeof(struct virtio_pci_notify_cap)},
		{VIRTIO_PCI_CAP_ISR_CFG, 0x1000, 1, sizeof(struct virtio_pci_cap)},
		{VIRTIO_PCI_CAP_DEVICE_CFG, 0x2000, CFG_SIZE, sizeof(struct virtio_pci_cap)},
	};
	uint32_t at, prev = 0, steps = 0, order[6], n = 0, ctl, tbl, pba;

	/* Walk: every capability once, in order, ending in 0. */
	for (at = cfg_rd(PCI_CAPABILITY_LIST, 1); at; at = cfg_rd(at + 1, 1)) {
		ck_assert_uint_eq(at % 4, 0);
		ck_assert_uint_gt(at, prev);
		ck_assert_uint_lt(++steps, 8);
		prev = at;
		if (n < 6)
			order[n++] = cfg_rd(at, 1) == PCI_CAP_ID_MSIX
					     ? 0
					     : cfg_rd(at + VIRTIO_PCI_CAP_CFG_TYPE, 1);
	}
	ck_assert_uint_eq(steps, 6);
	ck_assert_uint_eq(order[0], VIRTIO_PCI_CAP_COMMON_CFG);
	ck_assert_uint_eq(order[1], VIRTIO_PCI_CAP_NOTIFY_CFG);
	ck_assert_uint_eq(order[2], VIRTIO_PCI_CAP_ISR_CFG);
	ck_assert_uint_eq(order[3], VIRTIO_PCI_CAP_DEVICE_CFG);
	ck_assert_uint_eq(order[4], VIRTIO_PCI_CAP_PCI_CFG);
	ck_assert_uint_eq(order[5], 0);

	for (uint32_t i = 0; i < 4; i++) {
		at = find_cap(want[i].type);
		ck_assert_uint_ne(at, 0);
		ck_assert_uint_eq(cfg_rd(at + VIRTIO_PCI_CAP_LEN, 1), want[i].cap_len);
		ck_assert_uint_eq(cfg_rd(at + VIRTIO_PCI_CAP_BAR, 1), 4);
		ck_assert_uint_eq(cfg_rd(at + VIRTIO_PCI_CAP_OFFSET, 4), want[i].offset);
		ck_assert_uint_eq(cfg_rd(at + VIRTIO_PCI_CAP_LENGTH, 4), want[i].length);
		ck_assert_uint_le(want[i].offset + want[i].length, VDEV_VIRTIO_PCI_BAR4_SIZE);
	}
	at = find_cap(VIRTIO_PCI_CAP_NOTIFY_CFG);
	ck_assert_uint_eq(cfg_rd(at + VIRTIO_PCI_NOTIFY_CAP_MULT, 4), 4);
	at = find_cap(VIRTIO_PCI_CAP_PCI_CFG);
	ck_assert_uint_eq(cfg_rd(at + VIRTIO_PCI_CAP_LEN, 1), sizeof(struct virtio_pci_cfg_cap));

	at = find_cap(0);
	ck_assert_uint_ne(at, 0);
	ctl = cfg_rd(at + PCI_MSIX_FLAGS, 2);
	tbl = cfg_rd(at + PCI_MSIX_TABLE, 4);
	pba = cfg_rd(at + PCI_MSIX_PBA, 4);
	ck_assert_uint_eq(ctl, NQ); /* table size - 1, disabled, unmasked */
	ck_assert_uint_eq(tbl, VDEV_VIRTIO_PCI_BAR_MSIX);
	ck_assert_uint_eq(pba, VDEV_VIRTIO_PCI_PBA_OFFSET | VDEV_VIRTIO_PCI_BAR_MSIX);

	/* The list is read-only: a hostile pointer write changes nothing. */
	at = cfg_rd(PCI_CAPABILITY_LIST, 1);
	ck_assert_int_eq(cfg_wr(PCI_CAPABILITY_LIST, 1, 0x40), 0);
	ck_assert_int_eq(cfg_wr(at + 1, 1, at), 0);
	ck_assert_uint_eq(cfg_rd(PCI_CAPABILITY_LIST, 1), at);
	ck_assert_uint_ne(cfg_rd(at + 1, 1), at);
	ck_assert_uint_eq(find_cap(0) + PCI_MSIX_FLAGS, msix_ctl_off());
	/* Nor can the structures be moved. */
	at = find_cap(VIRTIO_PCI_CAP_COMMON_CFG);
	ck_assert_int_eq(cfg_wr(at + VIRTIO_PCI_CAP_OFFSET, 4, 0x2000), 0);
	ck_assert_int_eq(cfg_wr(at + VIRTIO_PCI_CAP_BAR, 1, 1), 0);
	ck_assert_uint_eq(cfg_rd(at + VIRTIO_PCI_CAP_OFFSET, 4), 0);
	ck_assert_uint_eq(cfg_rd(at + VIRTIO_PCI_CAP_BAR, 1), 4);
}
END_TEST

/* Without MSI-X and without device config: no such capabilities, no BAR 1. */
START_TEST(t_caps_minimal)
{
	struct opts o = {0};

	env_free();
	o.flags = VDEV_VIRTIO_PCI_F_NO_MSIX;
	o.cfg_size = UINT32_MAX; /* none */
	env_make(&o);
	ck_assert_uint_eq(find_cap(0), 0);
	ck_assert_uint_eq(find_cap(VIRTIO_PCI_CAP_DEVICE_CFG), 0);
	ck_assert_uint_ne(find_cap(VIRTIO_PCI_CAP_COMMON_CFG), 0);
	ck_assert_uint_ne(find_cap(VIRTIO_PCI_CAP_NOTIFY_CFG), 0);
	ck_assert_uint_ne(find_cap(VIRTIO_PCI_CAP_ISR_CFG), 0);
	ck_assert_uint_ne(find_cap(VIRTIO_PCI_CAP_PCI_CFG), 0);
	ck_assert_int_eq(cfg_wr(PCI_BASE_ADDRESS_1, 4, 0xffffffff), 0);
	ck_assert_uint_eq(cfg_rd(PCI_BASE_ADDRESS_1, 4), 0);
	/* No MSI-X: vectors cannot be mapped. */
	assign_bars();
	m_features(BIT(VIRTIO_F_VERSION_1));
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_MSIX), 2, 0), 0);
	ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_MSIX), 2), NOVEC);
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_Q_MSIX), 2, 0), 0);
	ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_Q_MSIX), 2), NOVEC);
	/* And the device config window is empty. */
	{
		uint64_t v = 7;

		ck_assert_int_eq(m_rdr(DEVCFG, 1, &v), -EINVAL);
		ck_assert_uint_eq(v, 0);
	}
}
END_TEST

/* Size a BAR as a driver does: all ones, read back the mask, restore. */
static uint64_t bar_sizing(uint32_t bar, int is64)
{
	uint32_t off = PCI_BASE_ADDRESS_0 + 4 * bar;
	uint32_t lo0 = cfg_rd(off, 4), hi0 = is64 ? cfg_rd(off + 4, 4) : 0, lo, hi = 0;

	ck_assert_int_eq(cfg_wr(off, 4, 0xffffffff), 0);
	lo = cfg_rd(off, 4);
	if (is64) {
		ck_assert_int_eq(cfg_wr(off + 4, 4, 0xffffffff), 0);
		hi = cfg_rd(off + 4, 4);
		ck_assert_int_eq(cfg_wr(off + 4, 4, hi0), 0);
	}
	ck_assert_int_eq(cfg_wr(off, 4, lo0), 0);
	return (uint64_t)hi << 32 | lo;
}

START_TEST(t_bar_sizing)
{
	uint64_t m;

	/* BAR 0: I/O, 24 header bytes + 24 of config -> 64. */
	m = bar_sizing(0, 0);
	ck_assert_uint_eq(m & PCI_BASE_ADDRESS_SPACE, PCI_BASE_ADDRESS_SPACE_IO);
	ck_assert_uint_eq((~(m & PCI_BASE_ADDRESS_IO_MASK) + 1) & 0xffffffffu, 64);
	/* BAR 1: 32-bit memory, 64 KiB. */
	m = bar_sizing(1, 0);
	ck_assert_uint_eq(m & ~PCI_BASE_ADDRESS_MEM_MASK, PCI_BASE_ADDRESS_MEM_TYPE_32);
	ck_assert_uint_eq((~(m & PCI_BASE_ADDRESS_MEM_MASK) + 1) & 0xffffffffu, 0x10000);
	/* BAR 4/5: 64-bit prefetchable, 16 KiB. */
	m = bar_sizing(4, 1);
	ck_assert_uint_eq(m & 0xf, PCI_BASE_ADDRESS_MEM_TYPE_64 | PCI_BASE_ADDRESS_MEM_PREFETCH);
	ck_assert_uint_eq(~(m & ~0xfull) + 1, VDEV_VIRTIO_PCI_BAR4_SIZE);
	/* Nothing else. */
	ck_assert_uint_eq(bar_sizing(2, 0), 0);
	ck_assert_uint_eq(bar_sizing(3, 0), 0);
}
END_TEST

/* Many queues at a large multiplier: BAR 4 grows and the notify structure
 * covers every queue. */
START_TEST(t_bar_grows)
{
	struct opts o = {0};
	uint64_t m;
	uint32_t at;

	env_free();
	o.nq = 16;
	o.mult = 4096;
	o.nvec = 3;
	env_make(&o);
	m = bar_sizing(4, 1);
	ck_assert_uint_eq(~(m & ~0xfull) + 1, 0x20000); /* 0x3000 + 16 * 4 KiB -> 128 KiB */
	at = find_cap(VIRTIO_PCI_CAP_NOTIFY_CFG);
	ck_assert_uint_eq(cfg_rd(at + VIRTIO_PCI_NOTIFY_CAP_MULT, 4), 4096);
	ck_assert_uint_eq(cfg_rd(at + VIRTIO_PCI_CAP_LENGTH, 4), 16 * 4096);
	ck_assert_uint_eq(cfg_rd(find_cap(0) + PCI_MSIX_FLAGS, 2), 2);
	assign_bars();
	m_features(BIT(VIRTIO_F_VERSION_1));
	ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_NUMQ), 2), 16);
	/* The last queue's notify address is inside the BAR. */
	{
		uint64_t addr;
		uint32_t val;

		ck_assert_int_eq(vdev_virtio_pci_notify_address(E->vp, 15, &addr, &val), 0);
		ck_assert_uint_eq(addr, BAR4_ADDR + 0x3000 + 15 * 4096);
		ck_assert_uint_eq(val, 15);
		ck_assert_int_eq(vdev_virtio_pci_notify_address(E->vp, 16, &addr, &val), -EINVAL);
	}
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Common configuration. */

START_TEST(t_common)
{
	uint64_t v;

	assign_bars();
	/* Selectors read back; feature pages. */
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_DFSELECT), 4, 1), 0);
	ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_DFSELECT), 4), 1);
	ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_DF), 4),
			  (uint32_t)((BIT(VIRTIO_F_VERSION_1) | BIT(VIRTIO_F_RING_PACKED) |
				      BIT(33)) >> 32));
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_DFSELECT), 4, 0), 0);
	ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_DF), 4),
			  (uint32_t)(BIT(VIRTIO_RING_F_EVENT_IDX) | BIT(3)));
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_DFSELECT), 4, 7), 0);
	ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_DF), 4), 0);
	ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_NUMQ), 2), NQ);
	ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_STATUS), 1), 0);
	ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_MSIX), 2), NOVEC);

	/* Per-queue fields. */
	m_features(BIT(VIRTIO_F_VERSION_1) | BIT(33));
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_GFSELECT), 4, 1), 0);
	ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_GFSELECT), 4), 1);
	ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_GF), 4), 3); /* VERSION_1 | bit 33 */
	for (uint32_t q = 0; q < NQ; q++) {
		ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_Q_SELECT), 2, q), 0);
		ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_Q_SELECT), 2), q);
		ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_Q_SIZE), 2), QMAX);
		ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_Q_NOFF), 2), q);
		ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_Q_ENABLE), 2), 0);
		ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_Q_MSIX), 2), NOVEC);
		ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_Q_RESET), 2), 0);
		ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_Q_NDATA), 2), 0);
		ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_Q_SIZE), 2, 8), 0);
		ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_Q_SIZE), 2), 8);
	}
	/* Addresses: 32-bit halves and whole 64-bit accesses read back. */
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_Q_DESCLO), 4, 0x11223344), 0);
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_Q_DESCHI), 4, 0x55667788), 0);
	ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_Q_DESCLO), 8), 0x5566778811223344ull);
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_Q_AVAILLO), 8, 0x0102030405060708ull), 0);
	ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_Q_AVAILLO), 4), 0x05060708);
	ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_Q_AVAILHI), 4), 0x01020304);
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_Q_USEDHI), 4, 0xabcdef01), 0);
	ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_Q_USEDLO), 8), 0xabcdef0100000000ull);

	/* Config generation follows the device. */
	v = m_rd(COMMON(VIRTIO_PCI_COMMON_CFGGENERATION), 1);
	ck_assert_int_eq(vdev_device_config_changed(E->dev), 0);
	ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_CFGGENERATION), 1), (v + 1) & 0xff);

	/* Reset: synchronous, everything back to defaults. */
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_STATUS), 1, 0), 0);
	ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_STATUS), 1), 0);
	ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_Q_SELECT), 2), 0);
	ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_Q_SIZE), 2), QMAX);
	ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_Q_DESCLO), 8), 0);
	ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_GFSELECT), 4), 0);
	ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_GF), 4), 0);

	/* Device config: natural widths, and 8 bytes as two halves. */
	ck_assert_uint_eq(m_rd(DEVCFG, 1), 0x10);
	ck_assert_uint_eq(m_rd(DEVCFG + 2, 2), 0x1312);
	ck_assert_uint_eq(m_rd(DEVCFG + 4, 4), 0x17161514);
	ck_assert_uint_eq(m_rd(DEVCFG + 8, 8), 0x1f1e1d1c1b1a1918ull);
	ck_assert_int_eq(m_wr(DEVCFG + 20, 4, 0xdeadbeef), 0);
	ck_assert_uint_eq(E->inv.config[20], 0xef);
	ck_assert_uint_eq(m_rd(DEVCFG + 20, 4), 0xdeadbeef);
}
END_TEST

/* Feature negotiation: what is offered, what FEATURES_OK accepts. */
START_TEST(t_features)
{
	assign_bars();
	/* Without VERSION_1 FEATURES_OK does not stick. */
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_STATUS), 1, S_ACK), 0);
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_STATUS), 1, S_ACK | S_DRV), 0);
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_GF), 4, BIT(3)), 0);
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_STATUS), 1, S_ACK | S_DRV | S_FOK), -EPERM);
	ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_STATUS), 1), S_ACK | S_DRV);
	/* Nor with a feature that is not offered. */
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_GF), 4, BIT(3) | BIT(5)), 0);
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_GFSELECT), 4, 1), 0);
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_GF), 4, 1), 0);
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_STATUS), 1, S_ACK | S_DRV | S_FOK), -EPERM);
	/* Pages past 1 take only zeros. */
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_GFSELECT), 4, 2), 0);
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_GF), 4, 1), -EINVAL);
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_GF), 4, 0), 0);
	/* A valid set. */
	m_features(BIT(VIRTIO_F_VERSION_1) | BIT(3));
	ck_assert_uint_eq(vdev_device_acked_features(E->dev), BIT(VIRTIO_F_VERSION_1) | BIT(3));
	/* Closed after FEATURES_OK. */
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_GFSELECT), 4, 0), 0);
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_GF), 4, 0), -EPERM);
}
END_TEST

/* The notification-data features change the notify format, SR-IOV (37)
 * and ADMIN_VQ (41) need structures the transport does not have: never
 * offered, never acked, even when the model offers them. */
START_TEST(t_features_hidden)
{
	struct opts o = {0};

	env_free();
	o.features = BIT(37) | BIT(38) | BIT(39) | BIT(41);
	env_make(&o);
	assign_bars();
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_DFSELECT), 4, 1), 0);
	ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_DF), 4) & 0x2e0, 0);
	m_features(BIT(VIRTIO_F_VERSION_1) | BIT(37) | BIT(38) | BIT(39) | BIT(41));
	ck_assert_uint_eq(vdev_device_acked_features(E->dev), BIT(VIRTIO_F_VERSION_1));
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Requests and interrupts. */

START_TEST(t_request_msix)
{
	struct hring a, b;

	bring_up_msix(&a, &b);
	ck_assert_uint_eq(E->inv.activations, 1);
	roundtrip(&a, 0, 100, 1);
	ck_assert_uint_eq(E->msi.signals[1], 1);
	ck_assert_uint_eq(E->msi.addr[1], MSI_ADDR + 16);
	ck_assert_uint_eq(E->msi.data[1], 0x41);
	ck_assert_uint_eq(E->msi.signals[0], 0);
	ck_assert_uint_eq(E->msi.signals[2], 0);
	roundtrip(&b, 1, 33, 9);
	ck_assert_uint_eq(E->msi.signals[2], 1);
	ck_assert_uint_eq(E->msi.data[2], 0x42);
	ck_assert_uint_eq(E->msi.total, 2);
	/* INTx stays quiet with MSI-X on. */
	ck_assert_uint_eq(E->msi.intx_up, 0);
	/* The same through the ioeventfd path. */
	req_post(&a, 10, 50);
	ck_assert_int_eq(vdev_device_queue_notify(E->dev, 0), 0);
	req_check(&a, 10, 50);
	ck_assert_uint_eq(E->msi.signals[1], 2);
	/* Reset: model reset, vectors unmapped. */
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_STATUS), 1, 0), 0);
	ck_assert_uint_eq(E->inv.resets, 1);
	ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_MSIX), 2), NOVEC);
	ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_Q_MSIX), 2), NOVEC);
	ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_Q_ENABLE), 2), 0);
	/* The MSI-X table is PCI state: kept. */
	ck_assert_uint_eq(x_rd(PCI_MSIX_ENTRY_SIZE + PCI_MSIX_ENTRY_DATA, 4), 0x41);
}
END_TEST

/* Per-vector masking, the pending bit, delivery on unmask; function mask. */
START_TEST(t_msix_mask)
{
	struct hring a, b;
	uint32_t ctl = 0;
	unsigned u;

	bring_up_msix(&a, &b);
	/* Programming and enabling told the VMM about every vector. */
	ck_assert_uint_ge(E->msi.updates[1], 1);
	ck_assert_uint_eq(E->msi.upd_masked[1], 0);
	ck_assert_uint_eq(E->msi.upd_addr[1], MSI_ADDR + 16);
	ck_assert_uint_eq(E->msi.upd_data[1], 0x41);

	/* Mask vector 1: the interrupt becomes a pending bit. */
	u = E->msi.updates[1];
	ck_assert_int_eq(x_wr(PCI_MSIX_ENTRY_SIZE + PCI_MSIX_ENTRY_VECTOR_CTRL, 4, 1), 0);
	ck_assert_uint_eq(x_rd(PCI_MSIX_ENTRY_SIZE + PCI_MSIX_ENTRY_VECTOR_CTRL, 4), 1);
	ck_assert_uint_eq(E->msi.updates[1], u + 1);
	ck_assert_uint_eq(E->msi.upd_masked[1], 1);
	roundtrip(&a, 0, 8, 3);
	ck_assert_uint_eq(E->msi.signals[1], 0);
	ck_assert_uint_eq(x_rd(VDEV_VIRTIO_PCI_PBA_OFFSET, 8), 1u << 1);
	ck_assert_uint_eq(x_rd(VDEV_VIRTIO_PCI_PBA_OFFSET, 4), 1u << 1);
	/* A second one stays one pending bit. */
	roundtrip(&a, 0, 8, 4);
	ck_assert_uint_eq(E->msi.signals[1], 0);
	/* The message can change while masked; unmasking delivers the new one. */
	ck_assert_int_eq(x_wr(PCI_MSIX_ENTRY_SIZE + PCI_MSIX_ENTRY_DATA, 4, 0x99), 0);
	ck_assert_uint_eq(E->msi.upd_data[1], 0x99);
	ck_assert_int_eq(x_wr(PCI_MSIX_ENTRY_SIZE + PCI_MSIX_ENTRY_VECTOR_CTRL, 4, 0), 0);
	ck_assert_uint_eq(E->msi.signals[1], 1);
	ck_assert_uint_eq(E->msi.data[1], 0x99);
	ck_assert_uint_eq(x_rd(VDEV_VIRTIO_PCI_PBA_OFFSET, 8), 0);
	ck_assert_uint_eq(E->msi.upd_masked[1], 0);
	/* Unmasking again delivers nothing more. */
	ck_assert_int_eq(x_wr(PCI_MSIX_ENTRY_SIZE + PCI_MSIX_ENTRY_VECTOR_CTRL, 4, 0), 0);
	ck_assert_uint_eq(E->msi.signals[1], 1);

	/* Function mask: every vector pends; clearing it delivers. */
	ctl = cfg_rd(msix_ctl_off(), 2);
	ck_assert_uint_eq(ctl & PCI_MSIX_FLAGS_ENABLE, PCI_MSIX_FLAGS_ENABLE);
	ck_assert_int_eq(cfg_wr(msix_ctl_off(), 2, ctl | PCI_MSIX_FLAGS_MASKALL), 0);
	ck_assert_uint_eq(E->msi.upd_masked[2], 1);
	roundtrip(&b, 1, 8, 5);
	ck_assert_int_eq(vdev_device_config_changed(E->dev), 0);
	ck_assert_uint_eq(E->msi.signals[2], 0);
	ck_assert_uint_eq(E->msi.signals[0], 0);
	ck_assert_uint_eq(x_rd(VDEV_VIRTIO_PCI_PBA_OFFSET, 8), (1u << 2) | 1u);
	/* Per-vector unmask does not beat the function mask. */
	ck_assert_int_eq(x_wr(2 * PCI_MSIX_ENTRY_SIZE + PCI_MSIX_ENTRY_VECTOR_CTRL, 4, 0), 0);
	ck_assert_uint_eq(E->msi.signals[2], 0);
	ck_assert_int_eq(cfg_wr(msix_ctl_off() + 1, 1, PCI_MSIX_FLAGS_ENABLE >> 8), 0);
	ck_assert_uint_eq(E->msi.signals[2], 1);
	ck_assert_uint_eq(E->msi.signals[0], 1);
	ck_assert_uint_eq(E->msi.upd_masked[2], 0);
	ck_assert_uint_eq(x_rd(VDEV_VIRTIO_PCI_PBA_OFFSET, 8), 0);

	/* 8-byte table accesses: address pair, data + control pair. */
	ck_assert_int_eq(x_wr(PCI_MSIX_ENTRY_LOWER_ADDR, 8, 0x00000001fee01000ull), 0);
	ck_assert_uint_eq(x_rd(PCI_MSIX_ENTRY_LOWER_ADDR, 8), 0x00000001fee01000ull);
	ck_assert_uint_eq(E->msi.upd_addr[0], 0x00000001fee01000ull);
	ck_assert_int_eq(x_wr(PCI_MSIX_ENTRY_DATA, 8, 0x0000000100000077ull), 0);
	ck_assert_uint_eq(x_rd(PCI_MSIX_ENTRY_DATA, 4), 0x77);
	ck_assert_uint_eq(x_rd(PCI_MSIX_ENTRY_VECTOR_CTRL, 4), 1);
	ck_assert_uint_eq(E->msi.upd_masked[0], 1);
}
END_TEST

/* Disabling MSI-X tells the VMM every vector is masked, and interrupts fall
 * back to INTx. */
START_TEST(t_msix_disable)
{
	struct hring a, b;

	bring_up_msix(&a, &b);
	ck_assert_int_eq(cfg_wr(msix_ctl_off(), 2, 0), 0);
	for (uint32_t v = 0; v <= NQ; v++)
		ck_assert_uint_eq(E->msi.upd_masked[v], 1);
	roundtrip(&a, 0, 8, 3);
	ck_assert_uint_eq(E->msi.total, 0);
	ck_assert_uint_eq(E->msi.intx_up, 1);
	ck_assert_int_eq(E->msi.intx, 1);
	ck_assert_uint_eq(m_rd(ISR, 1), 1);
	ck_assert_int_eq(E->msi.intx, 0);
	/* Enabling MSI-X takes INTx down at once. */
	roundtrip(&a, 0, 8, 4);
	ck_assert_int_eq(E->msi.intx, 1);
	ck_assert_int_eq(cfg_wr(msix_ctl_off(), 2, PCI_MSIX_FLAGS_ENABLE), 0);
	ck_assert_int_eq(E->msi.intx, 0);
	ck_assert_uint_eq(E->msi.upd_masked[1], 0);
}
END_TEST

/* NO_VECTOR, and vectors past the table, read back NO_VECTOR and deliver
 * nothing. */
START_TEST(t_no_vector)
{
	struct hring a, b;

	bring_up_msix(&a, &b);
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_Q_SELECT), 2, 0), 0);
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_Q_MSIX), 2, NQ + 1), 0); /* past */
	ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_Q_MSIX), 2), NOVEC);
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_Q_MSIX), 2, 0x7ff), 0);
	ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_Q_MSIX), 2), NOVEC);
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_MSIX), 2, 0x1234), 0);
	ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_MSIX), 2), NOVEC);
	roundtrip(&a, 0, 16, 7);
	ck_assert_int_eq(vdev_device_config_changed(E->dev), 0);
	ck_assert_uint_eq(E->msi.total, 0);
	ck_assert_uint_eq(x_rd(VDEV_VIRTIO_PCI_PBA_OFFSET, 8), 0);
	ck_assert_uint_eq(E->msi.intx_up, 0);
	/* Mapping again works. */
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_Q_MSIX), 2, 2), 0);
	ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_Q_MSIX), 2), 2);
	roundtrip(&a, 0, 16, 8);
	ck_assert_uint_eq(E->msi.signals[2], 1);
}
END_TEST

/* A config change goes to the config vector; DEVICE_NEEDS_RESET too. */
START_TEST(t_config_vector)
{
	struct hring a, b;
	uint8_t gen;

	bring_up_msix(&a, &b);
	gen = (uint8_t)m_rd(COMMON(VIRTIO_PCI_COMMON_CFGGENERATION), 1);
	ck_assert_int_eq(vdev_device_config_changed(E->dev), 0);
	ck_assert_uint_eq(E->msi.signals[0], 1);
	ck_assert_uint_eq(E->msi.addr[0], MSI_ADDR);
	ck_assert_uint_eq(E->msi.data[0], 0x40);
	ck_assert_uint_ne(m_rd(COMMON(VIRTIO_PCI_COMMON_CFGGENERATION), 1), gen);
	ck_assert_uint_eq(E->msi.signals[1] + E->msi.signals[2], 0);
	vdev_device_set_needs_reset(E->dev);
	ck_assert_uint_eq(E->msi.signals[0], 2);
	ck_assert(m_rd(COMMON(VIRTIO_PCI_COMMON_STATUS), 1) & VIRTIO_CONFIG_S_NEEDS_RESET);
}
END_TEST

/* A ring that cannot be created makes activation fail: NEEDS_RESET and a
 * config interrupt, as device.c does. */
START_TEST(t_needs_reset)
{
	struct hring a, b;

	assign_bars();
	msix_program(NQ + 1);
	m_features(BIT(VIRTIO_F_VERSION_1));
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_MSIX), 2, 0), 0);
	ring_a(&a, 16);
	ring_b(&b, 8);
	b.used = GPA_BASE + MEM_SIZE + 0x100000; /* not guest memory */
	ck_assert_int_eq(m_queue(0, &a, 1), 0);
	ck_assert_int_eq(m_queue(1, &b, 2), 0);
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_STATUS), 1, S_ACK | S_DRV | S_FOK | S_DOK),
			 0);
	ck_assert(m_rd(COMMON(VIRTIO_PCI_COMMON_STATUS), 1) & VIRTIO_CONFIG_S_NEEDS_RESET);
	ck_assert_uint_eq(E->msi.signals[0], 1);
	ck_assert_uint_eq(E->inv.activations, 0);
	/* Kicks go nowhere; a reset recovers. */
	req_post(&a, 8, 1);
	ck_assert_int_eq(m_wr(NOTIFY, 2, 0), -EAGAIN);
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_STATUS), 1, 0), 0);
	ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_STATUS), 1), 0);
}
END_TEST

/* INTx with the ISR when MSI-X is absent. */
START_TEST(t_intx)
{
	struct hring a;
	uint64_t v;

	assign_bars();
	m_features(BIT(VIRTIO_F_VERSION_1));
	ring_a(&a, 16);
	ck_assert_int_eq(m_queue(0, &a, NOVEC), 0);
	m_driver_ok();
	ck_assert_uint_eq(cfg_rd(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT, 0);
	roundtrip(&a, 0, 8, 1);
	ck_assert_uint_eq(E->msi.intx_up, 1);
	ck_assert_int_eq(E->msi.intx, 1);
	ck_assert_uint_ne(cfg_rd(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT, 0);
	/* Another interrupt before the ISR read asserts again. */
	roundtrip(&a, 0, 8, 2);
	ck_assert_uint_eq(E->msi.intx_up, 2);
	/* Read to clear; the line goes down once. */
	ck_assert_uint_eq(m_rd(ISR, 1), 1);
	ck_assert_int_eq(E->msi.intx, 0);
	ck_assert_uint_eq(E->msi.intx_down, 1);
	ck_assert_uint_eq(m_rd(ISR, 1), 0);
	ck_assert_uint_eq(E->msi.intx_down, 1);
	ck_assert_uint_eq(cfg_rd(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT, 0);
	/* Config change: ISR bit 1. */
	ck_assert_int_eq(vdev_device_config_changed(E->dev), 0);
	ck_assert_int_eq(E->msi.intx, 1);
	ck_assert_uint_eq(m_rd(ISR, 1), VIRTIO_PCI_ISR_CONFIG);
	ck_assert_int_eq(E->msi.intx, 0);

	/* INTx disable: the ISR bit is set, nothing is raised... */
	ck_assert_int_eq(cfg_wr(PCI_COMMAND, 2,
				PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_INTX_DISABLE),
			 0);
	roundtrip(&a, 0, 8, 3);
	ck_assert_uint_eq(E->msi.intx_up, 3);
	ck_assert_int_eq(E->msi.intx, 0);
	ck_assert_uint_ne(cfg_rd(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT, 0);
	/* ...until it is cleared with the ISR still set. */
	ck_assert_int_eq(cfg_wr(PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER), 0);
	ck_assert_uint_eq(E->msi.intx_up, 4);
	ck_assert_int_eq(E->msi.intx, 1);
	/* Setting it with the line up takes the line down. */
	ck_assert_int_eq(cfg_wr(PCI_COMMAND, 2,
				PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_INTX_DISABLE),
			 0);
	ck_assert_int_eq(E->msi.intx, 0);
	ck_assert_uint_eq(m_rd(ISR, 1), 1);
	/* ISR hostile accesses: width, offset, writes. */
	ck_assert_int_eq(m_rdr(ISR, 4, &v), -EINVAL);
	ck_assert_uint_eq(v, 0);
	ck_assert_int_eq(m_rdr(ISR + 1, 1, &v), -EINVAL);
	ck_assert_int_eq(m_wr(ISR, 1, 0), -EINVAL);
	/* A reset with the line up takes it down. */
	ck_assert_int_eq(cfg_wr(PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER), 0);
	roundtrip(&a, 0, 8, 4);
	ck_assert_int_eq(E->msi.intx, 1);
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_STATUS), 1, 0), 0);
	ck_assert_int_eq(E->msi.intx, 0);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Notify addresses, BAR moves. */

START_TEST(t_notify_address)
{
	uint64_t addr;
	uint32_t val;

	ck_assert_int_eq(vdev_virtio_pci_notify_address(E->vp, 0, &addr, &val), -ENXIO);
	ck_assert_int_eq(vdev_virtio_pci_notify_address(NULL, 0, &addr, &val), -EINVAL);
	ck_assert_int_eq(vdev_virtio_pci_notify_address(E->vp, 0, NULL, &val), -EINVAL);
	ck_assert_int_eq(vdev_virtio_pci_notify_address(E->vp, NQ, &addr, &val), -EINVAL);
	assign_bars();
	for (uint32_t q = 0; q < NQ; q++) {
		ck_assert_int_eq(vdev_virtio_pci_notify_address(E->vp, q, &addr, &val), 0);
		ck_assert_uint_eq(addr, BAR4_ADDR + NOTIFY + 4 * q);
		ck_assert_uint_eq(val, q);
	}
	/* Memory decode off: nowhere. */
	ck_assert_int_eq(cfg_wr(PCI_COMMAND, 2, PCI_COMMAND_IO), 0);
	ck_assert_int_eq(vdev_virtio_pci_notify_address(E->vp, 0, &addr, &val), -ENXIO);
	ck_assert_int_eq(cfg_wr(PCI_COMMAND, 2, PCI_COMMAND_IO | PCI_COMMAND_MEMORY), 0);
	ck_assert_int_eq(vdev_virtio_pci_notify_address(E->vp, 1, &addr, &val), 0);
	ck_assert_uint_eq(addr, BAR4_ADDR + NOTIFY + 4);
	/* Being sized: nowhere. */
	ck_assert_int_eq(cfg_wr(PCI_BASE_ADDRESS_4, 4, 0xffffffff), 0);
	ck_assert_int_eq(vdev_virtio_pci_notify_address(E->vp, 0, &addr, &val), -ENXIO);
}
END_TEST

/* The guest moves BAR 4 through the root: the VMM hears of it, the notify
 * address follows, and accesses reach the function only at the new place. */
START_TEST(t_bar_move)
{
	struct hring a, b;
	const uint64_t moved = BAR4_ADDR + 0x100000;
	uint64_t addr, v = 0;
	uint32_t val;

	bring_up_msix(&a, &b);
	roundtrip(&a, 0, 8, 1);
	E->moves = 0;
	ck_assert_int_eq(cfg_wr(PCI_BASE_ADDRESS_4, 4, (uint32_t)moved), 0);
	ck_assert_uint_eq(E->moves, 1);
	ck_assert_uint_eq(E->last_move.bar, 4);
	ck_assert_uint_eq(E->last_move.addr, FN_ADDR);
	ck_assert_uint_eq(E->last_move.old_base, BAR4_ADDR);
	ck_assert_uint_eq(E->last_move.new_base, moved);
	ck_assert_uint_eq(E->last_move.size, VDEV_VIRTIO_PCI_BAR4_SIZE);
	ck_assert_int_eq(E->moved_notify_r, 0);
	ck_assert_uint_eq(E->moved_notify, moved + NOTIFY);
	ck_assert_int_eq(vdev_virtio_pci_notify_address(E->vp, 1, &addr, &val), 0);
	ck_assert_uint_eq(addr, moved + NOTIFY + 4);
	/* The old place is empty. */
	ck_assert_int_eq(vdev_bus_read(E->mmio, BAR4_ADDR + COMMON(VIRTIO_PCI_COMMON_NUMQ), 2, 0,
				       &v),
			 -ENOENT);
	E->bar_addr[4] = moved;
	ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_NUMQ), 2), NQ);
	roundtrip(&b, 1, 8, 2);
	ck_assert_uint_eq(E->msi.signals[2], 1);
	/* Memory decode off: the range leaves, the VMM hears, notify is nowhere. */
	ck_assert_int_eq(cfg_wr(PCI_COMMAND, 2, PCI_COMMAND_IO | PCI_COMMAND_MASTER), 0);
	ck_assert_uint_eq(E->last_move.new_base, 0);
	ck_assert_int_eq(E->moved_notify_r, -ENXIO);
	ck_assert_int_eq(vdev_virtio_pci_notify_address(E->vp, 1, &addr, &val), -ENXIO);
	/* The MSI-X BAR moves the same way, the table with it. */
	ck_assert_int_eq(cfg_wr(PCI_BASE_ADDRESS_1, 4, (uint32_t)MSIX_BAR_ADDR + 0x10000), 0);
	ck_assert_int_eq(cfg_wr(PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER), 0);
	E->bar_addr[1] = MSIX_BAR_ADDR + 0x10000;
	ck_assert_uint_eq(x_rd(PCI_MSIX_ENTRY_SIZE + PCI_MSIX_ENTRY_DATA, 4), 0x41);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* The PCI config access capability. */

/* Point the window at BAR @bar + @off for @len bytes. */
static void window(uint32_t at, uint8_t bar, uint32_t off, uint32_t len)
{
	ck_assert_int_eq(cfg_wr(at + VIRTIO_PCI_CAP_BAR, 1, bar), 0);
	ck_assert_int_eq(cfg_wr(at + VIRTIO_PCI_CAP_OFFSET, 4, off), 0);
	ck_assert_int_eq(cfg_wr(at + VIRTIO_PCI_CAP_LENGTH, 4, len), 0);
}

START_TEST(t_pci_cfg_window)
{
	uint32_t at = find_cap(VIRTIO_PCI_CAP_PCI_CFG), data;
	struct hring a;

	ck_assert_uint_ne(at, 0);
	data = at + VIRTIO_PCI_CAP_LENGTH + 4;
	/* Works with the BARs unassigned: that is its point. */
	window(at, 4, COMMON(VIRTIO_PCI_COMMON_NUMQ), 2);
	ck_assert_uint_eq(cfg_rd(at + VIRTIO_PCI_CAP_BAR, 1), 4);
	ck_assert_uint_eq(cfg_rd(data, 4), NQ);
	ck_assert_uint_eq(cfg_rd(data, 2), NQ);
	/* Bring the device up through it. */
	window(at, 4, COMMON(VIRTIO_PCI_COMMON_STATUS), 1);
	ck_assert_int_eq(cfg_wr(data, 1, S_ACK), 0);
	ck_assert_int_eq(cfg_wr(data, 1, S_ACK | S_DRV), 0);
	ck_assert_uint_eq(vdev_device_status(E->dev), S_ACK | S_DRV);
	ck_assert_uint_eq(cfg_rd(data, 1), S_ACK | S_DRV);
	window(at, 4, COMMON(VIRTIO_PCI_COMMON_GFSELECT), 4);
	ck_assert_int_eq(cfg_wr(data, 4, 1), 0);
	window(at, 4, COMMON(VIRTIO_PCI_COMMON_GF), 4);
	ck_assert_int_eq(cfg_wr(data, 4, 1), 0); /* VERSION_1 */
	window(at, 4, COMMON(VIRTIO_PCI_COMMON_STATUS), 1);
	ck_assert_int_eq(cfg_wr(data, 1, S_ACK | S_DRV | S_FOK), 0);
	ck_assert_uint_eq(vdev_device_status(E->dev), S_ACK | S_DRV | S_FOK);
	window(at, 4, COMMON(VIRTIO_PCI_COMMON_Q_SELECT), 2);
	ck_assert_int_eq(cfg_wr(data, 2, 1), 0);
	ck_assert_uint_eq(cfg_rd(data, 2), 1);
	/* The device config, byte by byte. */
	window(at, 4, DEVCFG + 5, 1);
	ck_assert_uint_eq(cfg_rd(data, 1), 0x15);
	window(at, 4, DEVCFG + 4, 4);
	ck_assert_uint_eq(cfg_rd(data, 4), 0x17161514);

	/* A queue set up and kicked through the window (BARs still unassigned). */
	ring_a(&a, 8);
	window(at, 4, COMMON(VIRTIO_PCI_COMMON_Q_SELECT), 2);
	ck_assert_int_eq(cfg_wr(data, 2, 0), 0);
	window(at, 4, COMMON(VIRTIO_PCI_COMMON_Q_SIZE), 2);
	ck_assert_int_eq(cfg_wr(data, 2, 8), 0);
	window(at, 4, COMMON(VIRTIO_PCI_COMMON_Q_DESCLO), 4);
	ck_assert_int_eq(cfg_wr(data, 4, (uint32_t)a.desc), 0);
	window(at, 4, COMMON(VIRTIO_PCI_COMMON_Q_DESCHI), 4);
	ck_assert_int_eq(cfg_wr(data, 4, (uint32_t)(a.desc >> 32)), 0);
	window(at, 4, COMMON(VIRTIO_PCI_COMMON_Q_AVAILLO), 4);
	ck_assert_int_eq(cfg_wr(data, 4, (uint32_t)a.avail), 0);
	window(at, 4, COMMON(VIRTIO_PCI_COMMON_Q_AVAILHI), 4);
	ck_assert_int_eq(cfg_wr(data, 4, (uint32_t)(a.avail >> 32)), 0);
	window(at, 4, COMMON(VIRTIO_PCI_COMMON_Q_USEDLO), 4);
	ck_assert_int_eq(cfg_wr(data, 4, (uint32_t)a.used), 0);
	window(at, 4, COMMON(VIRTIO_PCI_COMMON_Q_USEDHI), 4);
	ck_assert_int_eq(cfg_wr(data, 4, (uint32_t)(a.used >> 32)), 0);
	window(at, 4, COMMON(VIRTIO_PCI_COMMON_Q_ENABLE), 2);
	ck_assert_int_eq(cfg_wr(data, 2, 1), 0);
	ck_assert_int_eq(vdev_device_queue_enabled(E->dev, 0), 1);
	window(at, 4, COMMON(VIRTIO_PCI_COMMON_STATUS), 1);
	ck_assert_int_eq(cfg_wr(data, 1, S_ACK | S_DRV | S_FOK | S_DOK), 0);
	ck_assert_uint_eq(E->inv.activations, 1);
	req_post(&a, 12, 3);
	window(at, 4, NOTIFY, 2);
	ck_assert_int_eq(cfg_wr(data, 2, 0), 0);
	ck_assert_uint_eq(E->inv.served[0], 1);
	req_check(&a, 12, 3);
	/* ISR read through it clears it. */
	window(at, 4, ISR, 1);
	ck_assert_uint_eq(cfg_rd(data, 1), 1);
	ck_assert_uint_eq(cfg_rd(data, 1), 0);

	/* Hostile windows: refused, the dword reads 0, nothing happens. */
	window(at, 1, 0, 4); /* not the virtio BAR */
	ck_assert_uint_eq(cfg_rd(data, 4), 0);
	window(at, 4, COMMON(VIRTIO_PCI_COMMON_NUMQ), 3); /* length 3 */
	ck_assert_uint_eq(cfg_rd(data, 4), 0);
	/* Unaligned: refused by the window (device config itself would serve
	 * it, see t_common). */
	window(at, 4, DEVCFG + 1, 2);
	ck_assert_uint_eq(cfg_rd(data, 4), 0);
	window(at, 4, DEVCFG + 2, 2);
	ck_assert_uint_eq(cfg_rd(data, 4), 0x1312);
	window(at, 4, VDEV_VIRTIO_PCI_BAR4_SIZE - 2, 4); /* past the BAR */
	ck_assert_uint_eq(cfg_rd(data, 4), 0);
	window(at, 4, 0xfffffffc, 4); /* far past */
	ck_assert_uint_eq(cfg_rd(data, 4), 0);
	window(at, 7, COMMON(VIRTIO_PCI_COMMON_STATUS), 1); /* no such BAR */
	ck_assert_int_eq(cfg_wr(data, 1, 0), 0);
	ck_assert_uint_eq(vdev_device_status(E->dev), S_ACK | S_DRV | S_FOK | S_DOK);
	window(at, 4, COMMON(VIRTIO_PCI_COMMON_STATUS), 0); /* length 0 */
	ck_assert_int_eq(cfg_wr(data, 1, 0), 0);
	ck_assert_uint_eq(vdev_device_status(E->dev), S_ACK | S_DRV | S_FOK | S_DOK);
	/* A valid window onto a width the field refuses: nothing happens. */
	window(at, 4, COMMON(VIRTIO_PCI_COMMON_STATUS), 4);
	ck_assert_int_eq(cfg_wr(data, 4, 0), 0);
	ck_assert_uint_eq(vdev_device_status(E->dev), S_ACK | S_DRV | S_FOK | S_DOK);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Queue reset. */

START_TEST(t_queue_reset)
{
	struct hring a, b;

	assign_bars();
	msix_program(NQ + 1);
	m_features(BIT(VIRTIO_F_VERSION_1) | BIT(VIRTIO_F_RING_RESET));
	ring_a(&a, 16);
	ring_b(&b, 8);
	ck_assert_int_eq(m_queue(0, &a, 1), 0);
	ck_assert_int_eq(m_queue(1, &b, 2), 0);
	m_driver_ok();
	roundtrip(&a, 0, 8, 1);
	/* Reset queue 0: enable and reset read 0 afterwards; the size is the
	 * maximum again. */
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_Q_SELECT), 2, 0), 0);
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_Q_RESET), 2, 1), 0);
	ck_assert_uint_eq(E->inv.queue_resets, 1);
	ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_Q_RESET), 2), 0);
	ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_Q_ENABLE), 2), 0);
	ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_Q_SIZE), 2), QMAX);
	/* Kicks for it go nowhere; the other queue still works. */
	ck_assert_int_eq(m_wr(NOTIFY, 2, 0), -EAGAIN);
	roundtrip(&b, 1, 8, 2);
	/* Re-enable at another place and size. */
	hring_init(&a, RING_A_GPA + 0x8000, RING_A_GPA + 0x9000, RING_A_GPA + 0xa000, 4);
	ck_assert_int_eq(m_queue(0, &a, 1), 0);
	ck_assert_uint_eq(E->inv.queue_enables, 1);
	roundtrip(&a, 0, 8, 3);
	ck_assert_uint_eq(E->msi.signals[1], 2);
	/* Writing 0 does nothing; other values are refused. */
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_Q_RESET), 2, 0), 0);
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_Q_RESET), 2, 2), -EINVAL);
	ck_assert_int_eq(vdev_device_queue_enabled(E->dev, 0), 1);
}
END_TEST

START_TEST(t_queue_reset_not_negotiated)
{
	struct hring a, b;

	bring_up_msix(&a, &b);
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_Q_SELECT), 2, 0), 0);
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_Q_RESET), 2, 1), -EPERM);
	ck_assert_int_eq(vdev_device_queue_enabled(E->dev, 0), 1);
	roundtrip(&a, 0, 8, 1);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* The transitional device's legacy interface. */

/* The spec's legacy ring at page @pfn with @num entries (4096 alignment). */
static void legacy_ring(struct hring *h, uint32_t pfn, uint16_t num)
{
	uint64_t desc = (uint64_t)pfn * 4096, avail = desc + 16u * num;
	uint64_t used = (avail + 6 + 2u * num + 4095) & ~4095ull;

	hring_init(h, desc, avail, used, num);
}

/* The legacy bring-up of queue @q at @pfn; returns the ring. */
static void legacy_queue(uint32_t q, uint32_t pfn, struct hring *h)
{
	ck_assert_int_eq(io_wr(VIRTIO_PCI_QUEUE_SEL, 2, q), 0);
	ck_assert_uint_eq(io_rd(VIRTIO_PCI_QUEUE_NUM, 2), QMAX);
	ck_assert_uint_eq(io_rd(VIRTIO_PCI_QUEUE_PFN, 4), 0);
	legacy_ring(h, pfn, QMAX);
	ck_assert_int_eq(io_wr(VIRTIO_PCI_QUEUE_PFN, 4, pfn), 0);
	ck_assert_uint_eq(io_rd(VIRTIO_PCI_QUEUE_PFN, 4), pfn);
}

static void legacy_kick(struct hring *h, uint32_t q, uint32_t n, uint8_t seed)
{
	unsigned served = E->inv.served[q];

	req_post(h, n, seed);
	ck_assert_int_eq(io_wr(VIRTIO_PCI_QUEUE_NOTIFY, 2, q), 0);
	ck_assert_uint_eq(E->inv.served[q], served + 1);
	req_check(h, n, seed);
}

START_TEST(t_legacy)
{
	const uint32_t pfn0 = (uint32_t)(RING_A_GPA / 4096), pfn1 = (uint32_t)(RING_B_GPA / 4096);
	struct hring a, b;

	assign_bars();
	/* Legacy init, INTx. */
	ck_assert_int_eq(io_wr(VIRTIO_PCI_STATUS, 1, 0), 0);
	ck_assert_uint_eq(io_rd(VIRTIO_PCI_STATUS, 1), 0);
	ck_assert_int_eq(io_wr(VIRTIO_PCI_STATUS, 1, S_ACK), 0);
	ck_assert_int_eq(io_wr(VIRTIO_PCI_STATUS, 1, S_ACK | S_DRV), 0);
	/* 32 feature bits, no VERSION_1. */
	ck_assert_uint_eq(io_rd(VIRTIO_PCI_HOST_FEATURES, 4),
			  (uint32_t)(BIT(VIRTIO_RING_F_EVENT_IDX) | BIT(3)));
	ck_assert_int_eq(io_wr(VIRTIO_PCI_GUEST_FEATURES, 4, BIT(3)), 0);
	ck_assert_uint_eq(io_rd(VIRTIO_PCI_GUEST_FEATURES, 4), BIT(3));
	legacy_queue(0, pfn0, &a);
	legacy_queue(1, pfn1, &b);
	/* Without MSI-X the vector registers are device config. */
	ck_assert_uint_eq(io_rd(VIRTIO_MSI_CONFIG_VECTOR, 1), 0x10);
	ck_assert_uint_eq(io_rd(VIRTIO_MSI_CONFIG_VECTOR + 4, 4), 0x17161514);
	ck_assert_int_eq(io_wr(VIRTIO_PCI_STATUS, 1, S_ACK | S_DRV | S_DOK), 0);
	ck_assert_uint_eq(io_rd(VIRTIO_PCI_STATUS, 1), S_ACK | S_DRV | S_DOK);
	ck_assert_uint_eq(E->inv.activations, 1);
	legacy_kick(&a, 0, 64, 5);
	legacy_kick(&b, 1, 7, 6);
	ck_assert_int_eq(E->msi.intx, 1);
	ck_assert_uint_eq(io_rd(VIRTIO_PCI_ISR, 1), 1);
	ck_assert_int_eq(E->msi.intx, 0);
	ck_assert_uint_eq(io_rd(VIRTIO_PCI_ISR, 1), 0);
	/* After DRIVER_OK the queue address cannot move. */
	ck_assert_int_eq(io_wr(VIRTIO_PCI_QUEUE_SEL, 2, 0), 0);
	ck_assert_int_eq(io_wr(VIRTIO_PCI_QUEUE_PFN, 4, pfn1), -EBUSY);
	ck_assert_int_eq(io_wr(VIRTIO_PCI_QUEUE_PFN, 4, 0), -EBUSY);

	/* The modern interface is refused meanwhile. */
	{
		uint64_t v = 5;

		ck_assert_int_eq(m_rdr(COMMON(VIRTIO_PCI_COMMON_NUMQ), 2, &v), -EPERM);
		ck_assert_uint_eq(v, 0);
		ck_assert_int_eq(m_wr(NOTIFY, 2, 0), -EPERM);
		ck_assert_int_eq(m_rdr(ISR, 1, &v), -EPERM);
	}
	/* Reset through the legacy status; the PFN reads 0 again. */
	ck_assert_int_eq(io_wr(VIRTIO_PCI_STATUS, 1, 0), 0);
	ck_assert_uint_eq(E->inv.resets, 1);
	ck_assert_uint_eq(io_rd(VIRTIO_PCI_QUEUE_PFN, 4), 0);
	/* After a reset, the modern interface may be chosen. */
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_STATUS), 1, 0), 0);
	ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_NUMQ), 2), NQ);
	ck_assert_int_eq(io_wr(VIRTIO_PCI_STATUS, 1, S_ACK), -EPERM);
	{
		uint64_t v = 5;

		ck_assert_int_eq(bar_rw(0, 0, VIRTIO_PCI_HOST_FEATURES, 4, &v), -EPERM);
		ck_assert_uint_eq(v, 0);
		ck_assert_int_eq(io_wr(VIRTIO_PCI_QUEUE_NOTIFY, 2, 0), -EPERM);
	}
	/* And it offers the 1.0 features again. */
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_DFSELECT), 4, 1), 0);
	ck_assert_uint_ne(m_rd(COMMON(VIRTIO_PCI_COMMON_DF), 4) & 1, 0);
}
END_TEST

/* Legacy with MSI-X: the vector registers appear, config moves to 24. */
START_TEST(t_legacy_msix)
{
	const uint32_t pfn0 = (uint32_t)(RING_A_GPA / 4096);
	struct hring a;

	assign_bars();
	msix_program(NQ + 1);
	ck_assert_int_eq(io_wr(VIRTIO_PCI_STATUS, 1, 0), 0);
	ck_assert_int_eq(io_wr(VIRTIO_PCI_STATUS, 1, S_DRV), -EPERM); /* order */
	ck_assert_int_eq(io_wr(VIRTIO_PCI_STATUS, 1, S_ACK), 0);
	ck_assert_int_eq(io_wr(VIRTIO_PCI_STATUS, 1, S_ACK | S_DRV), 0);
	ck_assert_int_eq(io_wr(VIRTIO_MSI_CONFIG_VECTOR, 2, 0), 0);
	ck_assert_uint_eq(io_rd(VIRTIO_MSI_CONFIG_VECTOR, 2), 0);
	/* As Linux's legacy driver: the ring, then the vector. */
	legacy_queue(0, pfn0, &a);
	ck_assert_int_eq(io_wr(VIRTIO_MSI_QUEUE_VECTOR, 2, 1), 0);
	ck_assert_uint_eq(io_rd(VIRTIO_MSI_QUEUE_VECTOR, 2), 1);
	ck_assert_int_eq(io_wr(VIRTIO_MSI_QUEUE_VECTOR, 2, 99), 0);
	ck_assert_uint_eq(io_rd(VIRTIO_MSI_QUEUE_VECTOR, 2), NOVEC);
	ck_assert_int_eq(io_wr(VIRTIO_MSI_QUEUE_VECTOR, 2, 1), 0);
	ck_assert_uint_eq(io_rd(VIRTIO_PCI_CONFIG_OFF(1), 1), 0x10);
	ck_assert_uint_eq(io_rd(VIRTIO_PCI_CONFIG_OFF(1) + 23, 1), 0x10 + 23);
	ck_assert_int_eq(io_wr(VIRTIO_PCI_STATUS, 1, S_ACK | S_DRV | S_DOK), 0);
	legacy_kick(&a, 0, 20, 7);
	ck_assert_uint_eq(E->msi.signals[1], 1);
	ck_assert_int_eq(vdev_device_config_changed(E->dev), 0);
	ck_assert_uint_eq(E->msi.signals[0], 1);
	/* Past the config space. */
	{
		uint64_t v = 1;

		ck_assert_int_eq(bar_rw(0, 0, VIRTIO_PCI_CONFIG_OFF(1) + CFG_SIZE, 1, &v), -EINVAL);
		ck_assert_uint_eq(v, 0);
	}
	/* MSI-X off: the fields move back. */
	ck_assert_int_eq(cfg_wr(msix_ctl_off(), 2, 0), 0);
	ck_assert_uint_eq(io_rd(VIRTIO_MSI_CONFIG_VECTOR, 2), 0x1110);
}
END_TEST

/* Sleep and wake through both buses the transitional function is on: kicks
 * are held while asleep and served on wake. */
START_TEST(t_bus_sleep)
{
	struct hring a, b;

	bring_up_msix(&a, &b);
	ck_assert_int_eq(vdev_bus_sleep(E->mmio), 0);
	ck_assert_int_eq(vdev_bus_sleep(E->pio), 0);
	req_post(&a, 8, 1);
	ck_assert_int_eq(m_wr(NOTIFY, 2, 0), 0);
	ck_assert_uint_eq(E->inv.served[0], 0);
	ck_assert_int_eq(vdev_bus_wake(E->pio), 0);
	ck_assert_int_eq(vdev_bus_wake(E->mmio), 0);
	ck_assert_uint_eq(E->inv.served[0], 1);
	req_check(&a, 8, 1);
	ck_assert_uint_eq(E->msi.signals[1], 1);
}
END_TEST

/* Legacy hostile accesses: widths, read-only registers, missing queues. */
START_TEST(t_legacy_hostile)
{
	uint64_t v;

	assign_bars();
	ck_assert_int_eq(io_wr(VIRTIO_PCI_STATUS, 1, 0), 0);
	ck_assert_int_eq(bar_rw(0, 0, VIRTIO_PCI_HOST_FEATURES, 2, &v), -EINVAL);
	ck_assert_int_eq(bar_rw(0, 0, VIRTIO_PCI_STATUS, 2, &v), -EINVAL);
	ck_assert_int_eq(bar_rw(0, 0, VIRTIO_PCI_QUEUE_NUM, 4, &v), -EINVAL);
	ck_assert_int_eq(bar_rw(0, 0, VIRTIO_PCI_HOST_FEATURES + 1, 1, &v), -EINVAL);
	ck_assert_int_eq(io_wr(VIRTIO_PCI_HOST_FEATURES, 4, 0), -EINVAL);
	ck_assert_int_eq(io_wr(VIRTIO_PCI_QUEUE_NUM, 2, 8), -EINVAL);
	ck_assert_int_eq(io_wr(VIRTIO_PCI_ISR, 1, 0), -EINVAL);
	ck_assert_int_eq(io_wr(VIRTIO_PCI_QUEUE_NOTIFY, 4, 0), -EINVAL);
	/* Without MSI-X there are no vector registers: that is config space. */
	ck_assert_int_eq(io_wr(VIRTIO_MSI_CONFIG_VECTOR, 2, 0), 0);
	ck_assert_uint_eq(E->inv.config[0], 0);
	ck_assert_int_eq(io_wr(VIRTIO_PCI_STATUS, 1, S_ACK), 0);
	ck_assert_int_eq(io_wr(VIRTIO_PCI_STATUS, 1, S_ACK | S_DRV), 0);
	/* A queue that does not exist. */
	ck_assert_int_eq(io_wr(VIRTIO_PCI_QUEUE_SEL, 2, NQ), 0);
	ck_assert_uint_eq(io_rd(VIRTIO_PCI_QUEUE_NUM, 2), 0);
	ck_assert_int_eq(io_wr(VIRTIO_PCI_QUEUE_PFN, 4, 0x100), -EINVAL);
	ck_assert_int_eq(io_wr(VIRTIO_PCI_QUEUE_NOTIFY, 2, NQ), -EINVAL);
	ck_assert_int_eq(io_wr(VIRTIO_PCI_QUEUE_NOTIFY, 2, 0xffff), -EINVAL);
	/* A ring outside guest memory: not enabled at DRIVER_OK... the queue
	 * setup is recorded, and activation fails into NEEDS_RESET. */
	ck_assert_int_eq(io_wr(VIRTIO_PCI_QUEUE_SEL, 2, 0), 0);
	ck_assert_int_eq(io_wr(VIRTIO_PCI_QUEUE_PFN, 4, 0x10), 0);
	ck_assert_int_eq(io_wr(VIRTIO_PCI_STATUS, 1, S_ACK | S_DRV | S_DOK), 0);
	ck_assert(io_rd(VIRTIO_PCI_STATUS, 1) & VIRTIO_CONFIG_S_NEEDS_RESET);
	ck_assert_uint_eq(E->inv.activations, 0);
	/* The legacy block is only as big as its BAR. */
	{
		struct vdev_bus_access acc = {.struct_size = sizeof(acc)};
		uint8_t b[4];

		acc.size = 4;
		acc.base = IO_BAR_ADDR;
		acc.offset = 64;
		acc.address = IO_BAR_ADDR + 64;
		ck_assert_int_eq(E->ops->read(E->vp, &acc, b), -EIO);
	}
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Hostile drivers: one test per rule. */

START_TEST(t_common_widths)
{
	static const struct {
		uint32_t off, size;
	} bad[] = {
		{VIRTIO_PCI_COMMON_DFSELECT, 2},   {VIRTIO_PCI_COMMON_DF, 8},
		{VIRTIO_PCI_COMMON_DF, 1},         {VIRTIO_PCI_COMMON_GF + 2, 2},
		{VIRTIO_PCI_COMMON_MSIX, 4},       {VIRTIO_PCI_COMMON_NUMQ, 1},
		{VIRTIO_PCI_COMMON_STATUS, 2},     {VIRTIO_PCI_COMMON_STATUS, 4},
		{VIRTIO_PCI_COMMON_Q_SELECT, 4},   {VIRTIO_PCI_COMMON_Q_SIZE, 1},
		{VIRTIO_PCI_COMMON_Q_DESCLO, 2},   {VIRTIO_PCI_COMMON_Q_DESCHI, 8},
		{VIRTIO_PCI_COMMON_Q_DESCLO + 2, 4}, {VIRTIO_PCI_COMMON_Q_USEDHI + 2, 2},
		{VIRTIO_PCI_COMMON_Q_RESET + 2, 2}, {0x100, 4},
		{0xffc, 4},
	};
	uint64_t v;

	assign_bars();
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_STATUS), 1, S_ACK), 0);
	for (uint32_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		v = 0x55;
		ck_assert_msg(m_rdr(COMMON(bad[i].off), bad[i].size, &v) == -EINVAL, "entry %u", i);
		ck_assert_uint_eq(v, 0);
		ck_assert_int_eq(m_wr(COMMON(bad[i].off), bad[i].size, 0), -EINVAL);
	}
	/* None of them reset or changed anything. */
	ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_STATUS), 1), S_ACK);
	ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_Q_DESCLO), 8), 0);
	ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_Q_SELECT), 2), 0);
}
END_TEST

START_TEST(t_common_readonly)
{
	assign_bars();
	m_features(BIT(VIRTIO_F_VERSION_1));
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_DF), 4, 0xffffffff), -EINVAL);
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_NUMQ), 2, 9), -EINVAL);
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_CFGGENERATION), 1, 9), -EINVAL);
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_Q_NOFF), 2, 1), -EINVAL);
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_Q_NDATA), 2, 1), -EINVAL);
	ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_NUMQ), 2), NQ);
	ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_Q_NOFF), 2), 0);
	/* Status: bits may only be added, in order. */
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_STATUS), 1, S_ACK), -EPERM);
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_STATUS), 1, 0x30 | S_ACK | S_DRV | S_FOK),
			 -EPERM);
	ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_STATUS), 1), S_ACK | S_DRV | S_FOK);
}
END_TEST

START_TEST(t_queue_select_range)
{
	assign_bars();
	m_features(BIT(VIRTIO_F_VERSION_1));
	for (uint32_t q = NQ; q < 0x10000; q += 0x7fff) {
		ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_Q_SELECT), 2, q), 0);
		ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_Q_SIZE), 2), 0);
		ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_Q_ENABLE), 2), 0);
		ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_Q_MSIX), 2), NOVEC);
		ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_Q_DESCLO), 4), 0);
		ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_Q_SIZE), 2, 8), -EBUSY);
		ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_Q_DESCLO), 4, 0x1000), -EBUSY);
		ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_Q_AVAILLO), 8, 0x1000), -EBUSY);
		ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_Q_MSIX), 2, 0), -EINVAL);
		ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_Q_ENABLE), 2, 1), -EINVAL);
		ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_Q_RESET), 2, 1), -EINVAL);
	}
}
END_TEST

START_TEST(t_queue_size_rules)
{
	assign_bars();
	m_features(BIT(VIRTIO_F_VERSION_1));
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_Q_SIZE), 2, 0), -EINVAL);
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_Q_SIZE), 2, 12), -EINVAL); /* split */
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_Q_SIZE), 2, QMAX * 2), -EINVAL);
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_Q_SIZE), 2, 0xffff), -EINVAL);
	ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_Q_SIZE), 2), QMAX);
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_Q_SIZE), 2, 1), 0);
	ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_Q_SIZE), 2), 1);
	/* Packed rings take any size up to the maximum. */
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_STATUS), 1, 0), 0);
	m_features(BIT(VIRTIO_F_VERSION_1) | BIT(VIRTIO_F_RING_PACKED));
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_Q_SIZE), 2, 12), 0);
	ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_Q_SIZE), 2), 12);
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_Q_SIZE), 2, QMAX + 1), -EINVAL);
}
END_TEST

/* A maximum queue size that is no power of two: a split ring cannot have it,
 * so queue_size (and the legacy QUEUE_NUM) present the largest power of two
 * below it (4.1.4.3.2), and that is what an untouched queue gets. A packed
 * ring may have it. */
START_TEST(t_queue_size_not_pow2)
{
	struct opts o = {0};
	struct vdev_queue_config qc = VDEV_QUEUE_CONFIG_INIT;
	struct hring a;

	env_free();
	o.qmax = 100;
	env_make(&o);
	assign_bars();
	m_features(BIT(VIRTIO_F_VERSION_1));
	ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_Q_SIZE), 2), 64);
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_Q_SIZE), 2, 100), -EINVAL);
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_Q_SIZE), 2, 128), -EINVAL);
	/* Linux's order: read the size, use it as it is, enable. */
	ring_a(&a, 64);
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_Q_DESCLO), 8, a.desc), 0);
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_Q_AVAILLO), 8, a.avail), 0);
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_Q_USEDLO), 8, a.used), 0);
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_Q_ENABLE), 2, 1), 0);
	ck_assert_int_eq(vdev_device_queue_config(E->dev, 0, &qc), 0);
	ck_assert_uint_eq(qc.size, 64);
	m_driver_ok();
	roundtrip(&a, 0, 8, 1);
	/* Packed: the maximum as it is. */
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_STATUS), 1, 0), 0);
	m_features(BIT(VIRTIO_F_VERSION_1) | BIT(VIRTIO_F_RING_PACKED));
	ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_Q_SIZE), 2), 100);
}
END_TEST

/* The same through the legacy interface of a transitional device. */
START_TEST(t_legacy_queue_size_not_pow2)
{
	const uint32_t pfn0 = (uint32_t)(RING_A_GPA / 4096);
	struct opts o = {0};
	struct hring a;

	env_free();
	o.flags = VDEV_VIRTIO_PCI_F_TRANSITIONAL;
	o.qmax = 100;
	env_make(&o);
	assign_bars();
	ck_assert_int_eq(io_wr(VIRTIO_PCI_STATUS, 1, S_ACK), 0);
	ck_assert_int_eq(io_wr(VIRTIO_PCI_STATUS, 1, S_ACK | S_DRV), 0);
	ck_assert_uint_eq(io_rd(VIRTIO_PCI_QUEUE_NUM, 2), 64);
	legacy_ring(&a, pfn0, 64);
	ck_assert_int_eq(io_wr(VIRTIO_PCI_QUEUE_PFN, 4, pfn0), 0);
	ck_assert_int_eq(io_wr(VIRTIO_PCI_STATUS, 1, S_ACK | S_DRV | S_DOK), 0);
	ck_assert_uint_eq(io_rd(VIRTIO_PCI_STATUS, 1), S_ACK | S_DRV | S_DOK);
	legacy_kick(&a, 0, 16, 2);
}
END_TEST

START_TEST(t_queue_enable_rules)
{
	struct hring a;

	assign_bars();
	/* Before FEATURES_OK the device refuses the queue. */
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_STATUS), 1, S_ACK), 0);
	ring_a(&a, 8);
	ck_assert_int_eq(m_queue(0, &a, NOVEC), -EPERM);
	ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_Q_ENABLE), 2), 0);
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_STATUS), 1, 0), 0);
	m_features(BIT(VIRTIO_F_VERSION_1));
	/* Writing 0 or other values to queue_enable is refused. */
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_Q_ENABLE), 2, 0), -EINVAL);
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_Q_ENABLE), 2, 2), -EINVAL);
	ck_assert_int_eq(m_queue(0, &a, NOVEC), 0);
	ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_Q_ENABLE), 2), 1);
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_Q_ENABLE), 2, 1), 0); /* again: fine */
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_Q_ENABLE), 2, 0), -EINVAL);
	ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_Q_ENABLE), 2), 1);
	/* An enabled queue's fields are frozen (and so after DRIVER_OK). */
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_Q_SIZE), 2, 4), -EBUSY);
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_Q_DESCLO), 4, 0), -EBUSY);
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_Q_USEDHI), 4, 0), -EBUSY);
	m_driver_ok();
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_Q_AVAILLO), 8, 0), -EBUSY);
	ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_Q_DESCLO), 8), a.desc);
	/* A queue not enabled before DRIVER_OK stays out (no RING_RESET). */
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_Q_SELECT), 2, 1), 0);
	ring_b(&a, 8);
	ck_assert_int_eq(m_queue(1, &a, NOVEC), -EPERM);
	ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_Q_ENABLE), 2), 0);
	ck_assert_int_eq(m_wr(NOTIFY + 4, 2, 1), -EAGAIN);
}
END_TEST

START_TEST(t_notify_hostile)
{
	struct hring a, b;
	uint64_t v = 9;

	bring_up_msix(&a, &b);
	req_post(&a, 8, 1);
	/* Wrong width, mid-slot, past the queues, reads: nothing served. */
	ck_assert_int_eq(m_wr(NOTIFY, 4, 0), -EINVAL);
	ck_assert_int_eq(m_wr(NOTIFY, 1, 0), -EINVAL);
	ck_assert_int_eq(m_wr(NOTIFY, 8, 0), -EINVAL);
	ck_assert_int_eq(m_wr(NOTIFY + 2, 2, 0), -EINVAL);
	ck_assert_int_eq(m_wr(NOTIFY + 4 * NQ, 2, NQ), -EINVAL);
	ck_assert_int_eq(m_wr(VDEV_VIRTIO_PCI_BAR4_SIZE - 2, 2, 0), -EINVAL);
	ck_assert_int_eq(m_rdr(NOTIFY, 2, &v), -EINVAL);
	ck_assert_uint_eq(v, 0);
	ck_assert_uint_eq(E->inv.kicks[0], 0);
	/* The address names the queue, whatever the value (as an ioeventfd
	 * without datamatch would). */
	ck_assert_int_eq(m_wr(NOTIFY, 2, 0xbeef), 0);
	ck_assert_uint_eq(E->inv.kicks[0], 1);
	ck_assert_uint_eq(E->inv.kicks[1], 0);
	req_check(&a, 8, 1);
}
END_TEST

START_TEST(t_device_config_hostile)
{
	uint64_t v;

	assign_bars();
	v = 1;
	ck_assert_int_eq(m_rdr(DEVCFG + CFG_SIZE, 1, &v), -EINVAL);
	ck_assert_uint_eq(v, 0);
	ck_assert_int_eq(m_rdr(DEVCFG + CFG_SIZE - 2, 4, &v), -EINVAL);
	ck_assert_int_eq(m_rdr(DEVCFG + CFG_SIZE - 4, 8, &v), -EINVAL);
	ck_assert_int_eq(m_rdr(DEVCFG + 0xffc, 4, &v), -EINVAL);
	ck_assert_int_eq(m_wr(DEVCFG + CFG_SIZE - 1, 2, 0xffff), -EINVAL);
	ck_assert_uint_eq(E->inv.config[CFG_SIZE - 1], 0x10 + CFG_SIZE - 1);
	/* Gaps in BAR 4 between the structures. */
	ck_assert_int_eq(m_rdr(ISR + 0x800, 1, &v), -EINVAL);
	ck_assert_int_eq(m_rdr(COMMON(0x800), 4, &v), -EINVAL);
}
END_TEST

START_TEST(t_msix_hostile)
{
	uint64_t v;
	uint32_t n = NQ + 1;

	assign_bars();
	msix_program(n);
	/* Past the table, unaligned, wrong widths. */
	v = 1;
	ck_assert_int_eq(bar_rw(0, 1, n * PCI_MSIX_ENTRY_SIZE, 4, &v), -EINVAL);
	ck_assert_uint_eq(v, 0);
	ck_assert_int_eq(x_wr(n * PCI_MSIX_ENTRY_SIZE + PCI_MSIX_ENTRY_DATA, 4, 1), -EINVAL);
	ck_assert_int_eq(x_wr(0x7ff0, 4, 1), -EINVAL);
	ck_assert_int_eq(x_wr(2, 4, 1), -EINVAL);
	ck_assert_int_eq(x_wr(4, 8, 1), -EINVAL);
	ck_assert_int_eq(x_wr(PCI_MSIX_ENTRY_DATA, 2, 1), -EINVAL);
	ck_assert_int_eq(x_wr(PCI_MSIX_ENTRY_DATA, 1, 1), -EINVAL);
	ck_assert_int_eq(bar_rw(0, 1, PCI_MSIX_ENTRY_DATA, 2, &v), -EINVAL);
	ck_assert_uint_eq(x_rd(PCI_MSIX_ENTRY_DATA, 4), 0x40);
	/* Reserved bits of the vector control and the address's low bits. */
	ck_assert_int_eq(x_wr(PCI_MSIX_ENTRY_VECTOR_CTRL, 4, 0xfffffffe), 0);
	ck_assert_uint_eq(x_rd(PCI_MSIX_ENTRY_VECTOR_CTRL, 4), 0);
	ck_assert_int_eq(x_wr(PCI_MSIX_ENTRY_LOWER_ADDR, 4, MSI_ADDR | 3), 0);
	ck_assert_uint_eq(x_rd(PCI_MSIX_ENTRY_LOWER_ADDR, 4), MSI_ADDR);
	/* The PBA is read-only; past it nothing. */
	ck_assert_int_eq(x_wr(VDEV_VIRTIO_PCI_PBA_OFFSET, 8, ~0ull), -EINVAL);
	ck_assert_int_eq(x_wr(VDEV_VIRTIO_PCI_PBA_OFFSET, 4, ~0u), -EINVAL);
	ck_assert_uint_eq(x_rd(VDEV_VIRTIO_PCI_PBA_OFFSET, 8), 0);
	ck_assert_int_eq(bar_rw(0, 1, VDEV_VIRTIO_PCI_PBA_OFFSET + 8, 4, &v), -EINVAL);
	ck_assert_int_eq(bar_rw(0, 1, VDEV_VIRTIO_PCI_PBA_OFFSET + 2, 2, &v), -EINVAL);
	ck_assert_int_eq(bar_rw(0, 1, 0xfffc, 4, &v), -EINVAL);
	/* Message control: only enable and function mask are writable. */
	ck_assert_int_eq(cfg_wr(msix_ctl_off(), 2, 0x3fff), 0);
	ck_assert_uint_eq(cfg_rd(msix_ctl_off(), 2), NQ);
	ck_assert_uint_eq(cfg_rd(msix_ctl_off() + 2, 4), VDEV_VIRTIO_PCI_BAR_MSIX);
	ck_assert_int_eq(cfg_wr(msix_ctl_off() + 2, 4, 0x1234), 0);
	ck_assert_uint_eq(cfg_rd(msix_ctl_off() + 2, 4), VDEV_VIRTIO_PCI_BAR_MSIX);
}
END_TEST

/* The function refuses accesses a bus would not route to it: a base that
 * is none of its BARs, offsets past a BAR, a BAR that is not decoding. */
START_TEST(t_routing)
{
	struct vdev_bus_access a = {.struct_size = sizeof(a)};
	uint8_t b[8] = {1, 1, 1, 1, 1, 1, 1, 1};

	assign_bars();
	a.size = 2;
	a.base = BAR4_ADDR + 0x1000;
	a.offset = VIRTIO_PCI_COMMON_NUMQ;
	a.address = a.base + a.offset;
	ck_assert_int_eq(E->ops->read(E->vp, &a, b), -EIO);
	ck_assert_uint_eq(b[0], 0);
	ck_assert_int_eq(E->ops->write(E->vp, &a, b), -EIO);
	a.base = BAR4_ADDR;
	a.offset = VDEV_VIRTIO_PCI_BAR4_SIZE;
	ck_assert_int_eq(E->ops->read(E->vp, &a, b), -EIO);
	a.offset = VDEV_VIRTIO_PCI_BAR4_SIZE - 1;
	ck_assert_int_eq(E->ops->read(E->vp, &a, b), -EIO);
	a.offset = VIRTIO_PCI_COMMON_NUMQ;
	ck_assert_int_eq(E->ops->read(E->vp, &a, b), 0);
	ck_assert_uint_eq(b[0], NQ);
	/* A bad size or NULLs. */
	a.size = 3;
	ck_assert_int_eq(E->ops->read(E->vp, &a, b), -EINVAL);
	a.size = 16;
	ck_assert_int_eq(E->ops->read(E->vp, &a, b), -EINVAL);
	a.size = 2;
	ck_assert_int_eq(E->ops->read(E->vp, NULL, b), -EINVAL);
	ck_assert_int_eq(E->ops->read(NULL, &a, b), -EINVAL);
	ck_assert_int_eq(E->ops->write(E->vp, &a, NULL), -EINVAL);
	/* Decode off: the BAR is not there. */
	ck_assert_int_eq(cfg_wr(PCI_COMMAND, 2, PCI_COMMAND_IO), 0);
	ck_assert_int_eq(E->ops->read(E->vp, &a, b), -EIO);
	/* Two BARs at one address (a bus would not allow it for two memory
	 * BARs, but an I/O and a memory BAR may share a number): ambiguous,
	 * refused. */
	ck_assert_int_eq(cfg_wr(PCI_COMMAND, 2, PCI_COMMAND_MEMORY), 0);
	ck_assert_int_eq(cfg_wr(PCI_BASE_ADDRESS_1, 4, 0xc0100000), 0);
	ck_assert_int_eq(cfg_wr(PCI_BASE_ADDRESS_4, 4, 0xc0100000), 0);
	ck_assert_int_eq(cfg_wr(PCI_BASE_ADDRESS_5, 4, 0), 0);
	a.base = 0xc0100000;
	a.offset = VIRTIO_PCI_COMMON_NUMQ;
	a.address = a.base + a.offset;
	ck_assert_int_eq(E->ops->read(E->vp, &a, b), -EIO);
	/* Apart again: each base reaches its own BAR. */
	ck_assert_int_eq(cfg_wr(PCI_BASE_ADDRESS_1, 4, 0xc0200000), 0);
	ck_assert_int_eq(E->ops->read(E->vp, &a, b), 0);
	ck_assert_uint_eq(b[0], NQ);
	a.base = 0xc0200000;
	a.offset = PCI_MSIX_ENTRY_DATA;
	a.size = 4;
	ck_assert_int_eq(E->ops->read(E->vp, &a, b), 0);
}
END_TEST

/* Config cycles the function must refuse as a whole. */
START_TEST(t_config_args)
{
	uint32_t v = 0xffffffff;

	ck_assert_int_eq(E->ops->config_register_write(E->vp, 1024, 0, &v, 4), -EINVAL);
	ck_assert_int_eq(E->ops->config_register_write(E->vp, 1, 2, &v, 4), -EINVAL);
	ck_assert_int_eq(E->ops->config_register_write(E->vp, 1, 0, &v, 3), -EINVAL);
	ck_assert_int_eq(E->ops->config_register_write(E->vp, 1, 0, NULL, 2), -EINVAL);
	ck_assert_int_eq(E->ops->config_register_write(NULL, 1, 0, &v, 2), -EINVAL);
	ck_assert_uint_eq(E->ops->config_register_read(E->vp, 1024), 0);
	ck_assert_uint_eq(E->ops->config_register_read(NULL, 0), 0);
	/* The extended space reads 0 and ignores writes. */
	ck_assert_int_eq(E->ops->config_register_write(E->vp, 64, 0, &v, 4), 0);
	ck_assert_uint_eq(E->ops->config_register_read(E->vp, 64), 0);
	/* The IDs are read-only. */
	ck_assert_int_eq(E->ops->config_register_write(E->vp, 0, 0, &v, 4), 0);
	ck_assert_uint_eq(E->ops->config_register_read(E->vp, 0),
			  0x1af4 | (0x1040u + DEV_TYPE) << 16);
}
END_TEST

/* The VMM's virtual config registers: 1024 dwords, kept across resets. */
START_TEST(t_virtual_config)
{
	for (uint32_t r = 0; r < 1024; r += 97)
		E->ops->virtual_config_register_write(E->vp, r, r * 3 + 1);
	for (uint32_t r = 0; r < 1024; r += 97)
		ck_assert_uint_eq(E->ops->virtual_config_register_read(E->vp, r), r * 3 + 1);
	ck_assert_uint_eq(E->ops->virtual_config_register_read(E->vp, 1), 0);
	E->ops->virtual_config_register_write(E->vp, 1024, 5);
	ck_assert_uint_eq(E->ops->virtual_config_register_read(E->vp, 1024), 0);
	E->ops->virtual_config_register_write(NULL, 3, 5);
	ck_assert_uint_eq(E->ops->virtual_config_register_read(NULL, 3), 0);
	assign_bars();
	m_features(BIT(VIRTIO_F_VERSION_1));
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_STATUS), 1, 0), 0);
	ck_assert_uint_eq(E->ops->virtual_config_register_read(E->vp, 97), 97 * 3 + 1);
}
END_TEST

/* A reset done by the VMM directly on the device clears the latches and
 * frees the interface choice, as a guest reset does. */
START_TEST(t_external_reset)
{
	struct opts o = {0};

	env_free();
	o.flags = VDEV_VIRTIO_PCI_F_TRANSITIONAL;
	env_make(&o);
	assign_bars();
	ck_assert_int_eq(io_wr(VIRTIO_PCI_STATUS, 1, S_ACK), 0);
	ck_assert_int_eq(io_wr(VIRTIO_PCI_QUEUE_SEL, 2, 1), 0);
	vdev_device_reset(E->dev);
	ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_Q_SELECT), 2), 0);
	m_features(BIT(VIRTIO_F_VERSION_1));
}
END_TEST

/* Constructor arguments. */
START_TEST(t_new_args)
{
	struct vdev_virtio_pci_config c = VDEV_VIRTIO_PCI_CONFIG_INIT;
	struct vdev_pci_msi_ops nosig = VDEV_PCI_MSI_OPS_INIT;
	struct vdev_device_config dc = VDEV_DEVICE_CONFIG_INIT;
	struct vdev_device_ops ops = VDEV_DEVICE_OPS_INIT;
	vdev_virtio_pci *vp = (vdev_virtio_pci *)0x1;
	vdev_device *d2;

	c.msi_ops = &E->msi_ops;
	ck_assert_int_eq(vdev_virtio_pci_new(NULL, E->dev, &vp), -EINVAL);
	ck_assert_int_eq(vdev_virtio_pci_new(&c, NULL, &vp), -EINVAL);
	ck_assert_int_eq(vdev_virtio_pci_new(&c, E->dev, NULL), -EINVAL);
	c.flags = 0x4;
	ck_assert_int_eq(vdev_virtio_pci_new(&c, E->dev, &vp), -EINVAL);
	c.flags = 0;
	c.reserved = 1;
	ck_assert_int_eq(vdev_virtio_pci_new(&c, E->dev, &vp), -EINVAL);
	c.reserved = 0;
	c.msix_vectors = 2049;
	ck_assert_int_eq(vdev_virtio_pci_new(&c, E->dev, &vp), -EINVAL);
	c.msix_vectors = 0;
	c.notify_off_multiplier = 6;
	ck_assert_int_eq(vdev_virtio_pci_new(&c, E->dev, &vp), -EINVAL);
	c.notify_off_multiplier = 1;
	ck_assert_int_eq(vdev_virtio_pci_new(&c, E->dev, &vp), -EINVAL);
	c.notify_off_multiplier = 8192;
	ck_assert_int_eq(vdev_virtio_pci_new(&c, E->dev, &vp), -EINVAL);
	c.notify_off_multiplier = 0;
	c.interrupt_pin = 5;
	ck_assert_int_eq(vdev_virtio_pci_new(&c, E->dev, &vp), -EINVAL);
	c.interrupt_pin = 0;
	c.class_code = 0x1000000;
	ck_assert_int_eq(vdev_virtio_pci_new(&c, E->dev, &vp), -EINVAL);
	c.class_code = 0;
	c.msi_ops = NULL;
	ck_assert_int_eq(vdev_virtio_pci_new(&c, E->dev, &vp), -EINVAL);
	/* MSI-X needs signal; INTx only does not. */
	c.msi_ops = &nosig;
	ck_assert_int_eq(vdev_virtio_pci_new(&c, E->dev, &vp), -EINVAL);
	/* Transitional: revision 0 and subsystem = type only. */
	c.msi_ops = &E->msi_ops;
	c.flags = VDEV_VIRTIO_PCI_F_TRANSITIONAL;
	c.revision = 1;
	ck_assert_int_eq(vdev_virtio_pci_new(&c, E->dev, &vp), -EINVAL);
	c.revision = 0;
	c.subsystem_id = 0x40;
	ck_assert_int_eq(vdev_virtio_pci_new(&c, E->dev, &vp), -EINVAL);
	ck_assert_ptr_eq(vp, (vdev_virtio_pci *)0x1);

	/* A type without a transitional ID; a type past the modern range; a
	 * config too big for the legacy I/O BAR. */
	dc.device_type = VIRTIO_ID_GPU;
	dc.num_queues = 1;
	dc.queue_max_size = 8;
	ops = inv_ops(0);
	ck_assert_int_eq(vdev_device_new(&dc, &ops, &E->inv, &d2), 0);
	c.subsystem_id = 0;
	ck_assert_int_eq(vdev_virtio_pci_new(&c, d2, &vp), -EINVAL);
	c.flags = VDEV_VIRTIO_PCI_F_NO_MSIX;
	c.msi_ops = &nosig;
	ck_assert_int_eq(vdev_virtio_pci_new(&c, d2, &vp), 0);
	vdev_virtio_pci_free(vp);
	vdev_device_free(d2);
	dc.device_type = 0x40;
	ck_assert_int_eq(vdev_device_new(&dc, &ops, &E->inv, &d2), 0);
	ck_assert_int_eq(vdev_virtio_pci_new(&c, d2, &vp), -EINVAL);
	vdev_device_free(d2);
	dc.device_type = VIRTIO_ID_NET;
	dc.config_size = 256 - 23;
	ck_assert_int_eq(vdev_device_new(&dc, &ops, &E->inv, &d2), 0);
	c.flags = VDEV_VIRTIO_PCI_F_TRANSITIONAL | VDEV_VIRTIO_PCI_F_NO_MSIX;
	ck_assert_int_eq(vdev_virtio_pci_new(&c, d2, &vp), -EINVAL);
	vdev_device_free(d2);

	/* A device in use. */
	assign_bars();
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_STATUS), 1, S_ACK), 0);
	c.flags = 0;
	c.msi_ops = &E->msi_ops;
	vp = (vdev_virtio_pci *)0x1;
	ck_assert_int_eq(vdev_virtio_pci_new(&c, E->dev, &vp), -EBUSY);
	ck_assert_ptr_eq(vp, (vdev_virtio_pci *)0x1);
	vdev_virtio_pci_free(NULL);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Concurrency smoke: kicks from two threads while a third reads the ISR and
 * toggles a vector's mask. Run under the sanitizers for data races. */

static void *kicker(void *arg)
{
	uint32_t q = (uint32_t)(uintptr_t)arg;
	uint64_t addr;
	uint32_t val;

	ck_assert_int_eq(vdev_virtio_pci_notify_address(E->vp, q, &addr, &val), 0);
	for (int i = 0; i < 2000; i++) {
		uint8_t b[2] = {(uint8_t)val, 0};

		(void)vdev_bus_write(E->mmio, addr, 2, 1, b);
	}
	return NULL;
}

START_TEST(t_concurrency)
{
	struct hring a, b;
	pthread_t t[2];

	bring_up_msix(&a, &b);
	for (uint32_t i = 0; i < 2; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, kicker, (void *)(uintptr_t)i), 0);
	for (int i = 0; i < 500; i++) {
		(void)m_rd(ISR, 1);
		ck_assert_int_eq(
			x_wr(PCI_MSIX_ENTRY_SIZE + PCI_MSIX_ENTRY_VECTOR_CTRL, 4, i & 1), 0);
		(void)vdev_device_config_changed(E->dev);
	}
	for (uint32_t i = 0; i < 2; i++)
		ck_assert_int_eq(pthread_join(t[i], NULL), 0);
	roundtrip(&a, 0, 8, 1);
}
END_TEST

/* Kicks from two vCPUs, a third flipping vector masks (BAR 1) and the
 * function mask (config cycles), while the main thread resets the device and
 * brings it up again: no crash, no race (run under the sanitizers), and each
 * new session serves its request. */
struct racer {
	pthread_t t;
	int stop; /* atomic */
	uint32_t q;
	uint32_t ctl; /* MSI-X message control offset */
};

static void *race_kicker(void *arg)
{
	struct racer *r = arg;
	uint64_t addr;
	uint32_t val;

	ck_assert_int_eq(vdev_virtio_pci_notify_address(E->vp, r->q, &addr, &val), 0);
	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
		uint8_t b[2] = {(uint8_t)val, 0};

		(void)vdev_bus_write(E->mmio, addr, 2, 1, b);
	}
	return NULL;
}

static void *race_masker(void *arg)
{
	struct racer *r = arg;

	for (uint32_t i = 0; !__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE); i++) {
		uint8_t b[4];

		st(b, i & 1, 4);
		(void)vdev_bus_write(E->mmio,
				     MSIX_BAR_ADDR + (1 + i % NQ) * PCI_MSIX_ENTRY_SIZE +
					     PCI_MSIX_ENTRY_VECTOR_CTRL,
				     4, 2, b);
		st(b, PCI_MSIX_FLAGS_ENABLE | ((i & 4) ? PCI_MSIX_FLAGS_MASKALL : 0), 2);
		(void)vdev_pci_root_config_write(E->root, FN_ADDR, r->ctl / 4, r->ctl % 4, 2, b);
	}
	return NULL;
}

START_TEST(t_race_reset)
{
	struct racer r[3];
	struct hring a, b;
	uint32_t ctl;

	bring_up_msix(&a, &b);
	ctl = msix_ctl_off();
	memset(r, 0, sizeof(r));
	for (uint32_t i = 0; i < 3; i++) {
		r[i].q = i % NQ;
		r[i].ctl = ctl;
		ck_assert_int_eq(pthread_create(&r[i].t, NULL, i < 2 ? race_kicker : race_masker,
						&r[i]),
				 0);
	}
	for (int it = 0; it < 100; it++) {
		struct vring_used *used;
		uint32_t id, len;
		int spins = 0;

		ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_STATUS), 1, 0), 0);
		ck_assert_uint_eq(m_rd(COMMON(VIRTIO_PCI_COMMON_STATUS), 1), 0);
		m_features(BIT(VIRTIO_F_VERSION_1));
		ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_MSIX), 2, 0), 0);
		ring_a(&a, 16);
		ring_b(&b, 8);
		ck_assert_int_eq(m_queue(0, &a, 1), 0);
		ck_assert_int_eq(m_queue(1, &b, 2), 0);
		m_driver_ok();
		req_post(&a, 8, (uint8_t)it);
		ck_assert_int_eq(m_wr(NOTIFY, 2, 0), 0);
		/* A kicker may be serving it: wait for the used entry. */
		used = host(a.used);
		while (!__atomic_load_n(&used->idx, __ATOMIC_ACQUIRE)) {
			ck_assert_int_lt(++spins, 10000); /* 10 s */
			usleep(1000);
		}
		ck_assert_int_eq(hring_used(&a, &id, &len), 1);
		ck_assert_uint_eq(len, 8);
	}
	for (uint32_t i = 0; i < 3; i++) {
		__atomic_store_n(&r[i].stop, 1, __ATOMIC_RELEASE);
		ck_assert_int_eq(pthread_join(r[i].t, NULL), 0);
	}
}
END_TEST

/* Every offset of every BAR and of config space, every width, read and
 * written with junk, in a running device: nothing crashes or reaches outside
 * the function, and a reset brings it back to a working state. */
START_TEST(t_sweep)
{
	static const uint64_t len[5] = {64, 0x10000, 0, 0, VDEV_VIRTIO_PCI_BAR4_SIZE};
	struct hring a, b;
	uint64_t x = 0x9e3779b97f4a7c15ull;
	uint32_t ctl;

	bring_up_msix(&a, &b);
	ctl = msix_ctl_off();
	for (uint32_t bar = 0; bar < 5; bar++) {
		if (!E->bar_addr[bar])
			continue;
		for (uint64_t off = 0; off < len[bar]; off++) {
			for (uint32_t size = 1; size <= 8 && off + size <= len[bar]; size <<= 1) {
				uint64_t v;

				x = x * 6364136223846793005ull + 1442695040888963407ull;
				v = x;
				(void)bar_rw(0, bar, off, size, &v);
				v = x >> 7;
				(void)bar_rw(1, bar, off, size, &v);
			}
		}
	}
	for (uint32_t off = 0; off < 4096; off++) {
		for (uint32_t w = 1; w <= 4; w <<= 1) {
			if (off % 4 + w > 4)
				continue;
			(void)cfg_rd(off, w);
			if (off >= 0x10 && off < 0x28)
				continue; /* BARs: keep them where the test reaches them */
			if ((off & ~3u) == PCI_COMMAND || (off & ~3u) == (ctl & ~3u))
				continue; /* decode and MSI-X stay on */
			x = x * 6364136223846793005ull + 1442695040888963407ull;
			(void)cfg_wr(off, w, (uint32_t)(x >> 13));
		}
	}
	msix_program(NQ + 1);
	m_features(BIT(VIRTIO_F_VERSION_1));
	ck_assert_int_eq(m_wr(COMMON(VIRTIO_PCI_COMMON_MSIX), 2, 0), 0);
	ring_a(&a, 16);
	ring_b(&b, 8);
	ck_assert_int_eq(m_queue(0, &a, 1), 0);
	ck_assert_int_eq(m_queue(1, &b, 2), 0);
	m_driver_ok();
	roundtrip(&a, 0, 8, 1);
	roundtrip(&b, 1, 8, 2);
}
END_TEST

static Suite *vpci_suite(void)
{
	Suite *s = suite_create("virtio-pci");
	TCase *tc;

	tc = tcase_create("root");
	tcase_add_checked_fixture(tc, setup_plain, teardown);
	tcase_add_test(tc, t_header);
	tcase_add_test(tc, t_caps);
	tcase_add_test(tc, t_caps_minimal);
	tcase_add_test(tc, t_bar_grows);
	tcase_add_test(tc, t_common);
	tcase_add_test(tc, t_features);
	tcase_add_test(tc, t_features_hidden);
	tcase_add_test(tc, t_request_msix);
	tcase_add_test(tc, t_msix_mask);
	tcase_add_test(tc, t_msix_disable);
	tcase_add_test(tc, t_no_vector);
	tcase_add_test(tc, t_config_vector);
	tcase_add_test(tc, t_needs_reset);
	tcase_add_test(tc, t_notify_address);
	tcase_add_test(tc, t_bar_move);
	tcase_add_test(tc, t_pci_cfg_window);
	tcase_add_test(tc, t_queue_reset_not_negotiated);
	tcase_add_test(tc, t_common_widths);
	tcase_add_test(tc, t_common_readonly);
	tcase_add_test(tc, t_queue_select_range);
	tcase_add_test(tc, t_queue_size_rules);
	tcase_add_test(tc, t_queue_size_not_pow2);
	tcase_add_test(tc, t_legacy_queue_size_not_pow2);
	tcase_add_test(tc, t_queue_enable_rules);
	tcase_add_test(tc, t_notify_hostile);
	tcase_add_test(tc, t_device_config_hostile);
	tcase_add_test(tc, t_msix_hostile);
	tcase_add_test(tc, t_virtual_config);
	tcase_add_test(tc, t_external_reset);
	tcase_add_test(tc, t_new_args);
	tcase_add_test(tc, t_concurrency);
	tcase_add_test(tc, t_race_reset);
	tcase_add_test(tc, t_sweep);
	suite_add_tcase(s, tc);

	tc = tcase_create("direct");
	tcase_add_checked_fixture(tc, setup_direct, teardown);
	tcase_add_test(tc, t_header);
	tcase_add_test(tc, t_request_msix);
	tcase_add_test(tc, t_routing);
	tcase_add_test(tc, t_config_args);
	suite_add_tcase(s, tc);

	tc = tcase_create("no-msix");
	tcase_add_checked_fixture(tc, setup_nomsix, teardown);
	tcase_add_test(tc, t_intx);
	suite_add_tcase(s, tc);

	tc = tcase_create("ring-reset");
	tcase_add_checked_fixture(tc, setup_rr, teardown);
	tcase_add_test(tc, t_queue_reset);
	suite_add_tcase(s, tc);

	tc = tcase_create("transitional");
	tcase_add_checked_fixture(tc, setup_trans, teardown);
	tcase_add_test(tc, t_header_transitional);
	tcase_add_test(tc, t_bar_sizing);
	tcase_add_test(tc, t_legacy);
	tcase_add_test(tc, t_legacy_msix);
	tcase_add_test(tc, t_legacy_hostile);
	tcase_add_test(tc, t_bus_sleep);
	tcase_add_test(tc, t_sweep);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(vpci_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
