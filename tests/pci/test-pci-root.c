/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for vdev_pci_root: enumeration through 0xCF8/0xCFC and ECAM,
 * bridges and gates, BAR sizing through the root, BAR placement and
 * relocation on the buses with bar_moved, top addresses (being sized is
 * what the guest wrote, not what the register holds), refusals (overlaps with other
 * functions, the ECAM window, VMM ranges, the function itself; outside the
 * windows) that leave registers and buses unchanged, removal (immediate and
 * deferred from inside a config write), hostile accesses, and a concurrency
 * smoke test.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <linux/pci_regs.h>

#include "bus/pci_internal.h"
#include "virtio-dev/pci.h"

#define NUM_BUSES 4u
#define ECAM_BASE 0xe0000000ull
#define MMIO32_BASE 0xc0000000ull
#define MMIO32_SIZE 0x3ec00000ull
#define MMIO64_BASE 0x10000000000ull
#define MMIO64_SIZE 0x100000000ull
#define IO_BASE 0xc000ull
#define IO_SIZE 0x4000ull
#define VMM_DEV 0xd0000000ull /* a VMM device inside the mmio32 window */
#define REG_CMD (PCI_COMMAND / 4)
#define REG_BAR(n) (PCI_BASE_ADDRESS_0 / 4 + (n))

/* ---- a fake function over a vdev_pci_cfg ---- */

struct ffn {
	vdev_pci_cfg *cfg;
	uint32_t id;
	int destroyed;        /* atomic */
	int bar_reads;        /* atomic */
	int bar_writes;       /* atomic */
	uint64_t last_offset; /* of the last BAR access */
	/* A write to the interrupt line asks the root to remove this. */
	vdev_pci_root *root;
	uint32_t remove_target;
	int remove_ret;
	/* A BAR read blocks, then does a config cycle on root (cycle_ret). */
	sem_t entered, go;
	int block;
	int cycle_ret;
	int refuse_cfg_writes;
};

static int ld(const int *p)
{
	return __atomic_load_n(p, __ATOMIC_SEQ_CST);
}

static void put32(void *p, uint32_t v)
{
	uint8_t *b = p;

	b[0] = (uint8_t)v;
	b[1] = (uint8_t)(v >> 8);
	b[2] = (uint8_t)(v >> 16);
	b[3] = (uint8_t)(v >> 24);
}

static uint32_t get32(const void *p)
{
	const uint8_t *b = p;

	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static int f_read(void *opaque, const struct vdev_bus_access *a, void *data)
{
	struct ffn *f = opaque;
	uint8_t b[4];

	__atomic_add_fetch(&f->bar_reads, 1, __ATOMIC_SEQ_CST);
	f->last_offset = a->offset;
	if (f->block) {
		sem_post(&f->entered);
		sem_wait(&f->go);
		f->cycle_ret = vdev_pci_root_config_read(f->root, 0, 0, 0, 4, b);
	}
	put32(b, f->id);
	memcpy(data, b, a->size < 4 ? a->size : 4);
	return 0;
}

static int f_write(void *opaque, const struct vdev_bus_access *a, const void *data)
{
	struct ffn *f = opaque;

	(void)data;
	__atomic_add_fetch(&f->bar_writes, 1, __ATOMIC_SEQ_CST);
	f->last_offset = a->offset;
	return 0;
}

static void f_destroy(void *opaque)
{
	struct ffn *f = opaque;

	__atomic_add_fetch(&f->destroyed, 1, __ATOMIC_SEQ_CST);
}

static uint32_t f_cfg_read(void *opaque, uint32_t reg)
{
	struct ffn *f = opaque;

	return vdev_pci_cfg_read(f->cfg, reg);
}

static int f_cfg_write(void *opaque, uint32_t reg, uint32_t offset, const void *data,
		       uint32_t size)
{
	struct ffn *f = opaque;

	if (f->refuse_cfg_writes)
		return -EPERM;
	if (f->root && reg == PCI_INTERRUPT_LINE / 4)
		f->remove_ret = vdi_pci_root_remove_deferred(f->root, f->remove_target, NULL, NULL);
	return vdev_pci_cfg_write(f->cfg, reg, offset, data, size);
}

static int32_t f_is_bridge(void *opaque)
{
	struct ffn *f = opaque;

	return (int32_t)((vdev_pci_cfg_read(f->cfg, PCI_PRIMARY_BUS / 4) >> 8) & 0xff);
}

static struct vdev_bus_device_ops f_ops(int bridge)
{
	struct vdev_bus_device_ops ops = VDEV_BUS_DEVICE_OPS_INIT;

	ops.read = f_read;
	ops.write = f_write;
	ops.destroy = f_destroy;
	ops.config_register_read = f_cfg_read;
	ops.config_register_write = f_cfg_write;
	if (bridge)
		ops.is_bridge = f_is_bridge;
	return ops;
}

static struct ffn *ffn_new(uint32_t id, uint32_t header_type)
{
	struct vdev_pci_cfg_config k = VDEV_PCI_CFG_CONFIG_INIT;
	struct ffn *f = calloc(1, sizeof(*f));

	ck_assert_ptr_nonnull(f);
	k.header_type = header_type;
	k.vendor_id = 0x1af4;
	k.device_id = (uint16_t)id;
	k.class_code = header_type ? 0x060400 : 0x018000;
	ck_assert_int_eq(vdev_pci_cfg_new(&k, &f->cfg), 0);
	f->id = id;
	sem_init(&f->entered, 0, 0);
	sem_init(&f->go, 0, 0);
	return f;
}

static void ffn_free(struct ffn *f)
{
	vdev_pci_cfg_free(f->cfg);
	sem_destroy(&f->entered);
	sem_destroy(&f->go);
	free(f);
}

/* ---- the world: buses, root, ECAM, CF8, a VMM device ---- */

struct world {
	vdev_bus *mmio, *pio;
	vdev_pci_root *root;
	uint64_t ecam; /* where the ECAM window is */
	struct vdev_pci_bar_move moves[64];
	int nmoves;
	int reenter; /* bar_moved tries a config cycle */
	int reenter_ret;
};

static int vmm_read(void *opaque, const struct vdev_bus_access *a, void *data)
{
	(void)opaque;
	memset(data, 0x5a, a->size);
	return 0;
}

static int vmm_write(void *opaque, const struct vdev_bus_access *a, const void *data)
{
	(void)opaque;
	(void)a;
	(void)data;
	return 0;
}

static void on_moved(void *opaque, const struct vdev_pci_bar_move *m)
{
	struct world *w = opaque;
	uint8_t b[4];

	/* The concurrency smoke test makes thousands: keep the last 64. */
	w->moves[w->nmoves++ % 64] = *m;
	if (w->reenter)
		w->reenter_ret = vdev_pci_root_config_read(w->root, 0, 0, 0, 4, b);
}

static int vmm_token;

/* Where the root's windows, its ECAM window and the VMM device are. */
struct layout {
	uint64_t ecam, vmm_dev;
	uint64_t mmio32_base, mmio32_size, mmio64_base, mmio64_size;
};

static const struct layout default_layout = {
	.ecam = ECAM_BASE,
	.vmm_dev = VMM_DEV,
	.mmio32_base = MMIO32_BASE,
	.mmio32_size = MMIO32_SIZE,
	.mmio64_base = MMIO64_BASE,
	.mmio64_size = MMIO64_SIZE,
};

static void world_init_layout(struct world *w, uint32_t num_buses, const struct layout *l)
{
	struct vdev_pci_root_config k = VDEV_PCI_ROOT_CONFIG_INIT;
	struct vdev_pci_root_ops ops = VDEV_PCI_ROOT_OPS_INIT;
	struct vdev_bus_device_ops vmm = VDEV_BUS_DEVICE_OPS_INIT;

	memset(w, 0, sizeof(*w));
	ck_assert_int_eq(vdev_bus_new(VDEV_BUS_MMIO, &w->mmio), 0);
	ck_assert_int_eq(vdev_bus_new(VDEV_BUS_PIO, &w->pio), 0);
	ops.bar_moved = on_moved;
	k.num_buses = num_buses;
	k.mmio_bus = w->mmio;
	k.pio_bus = w->pio;
	k.mmio32_base = l->mmio32_base;
	k.mmio32_size = l->mmio32_size;
	k.mmio64_base = l->mmio64_base;
	k.mmio64_size = l->mmio64_size;
	k.io_base = IO_BASE;
	k.io_size = IO_SIZE;
	k.ops = &ops;
	k.opaque = w;
	ck_assert_int_eq(vdev_pci_root_new(&k, &w->root), 0);
	ck_assert_int_eq(vdev_bus_insert(w->pio, 0xcf8, 8, vdev_pci_root_pio_ops(), w->root), 0);
	w->ecam = l->ecam;
	ck_assert_int_eq(vdev_bus_insert(w->mmio, w->ecam,
					 (uint64_t)num_buses * VDEV_PCI_ECAM_BUS_SIZE,
					 vdev_pci_root_ecam_ops(), w->root),
			 0);
	vmm.read = vmm_read;
	vmm.write = vmm_write;
	ck_assert_int_eq(vdev_bus_insert(w->mmio, l->vmm_dev, 0x1000, &vmm, &vmm_token), 0);
}

static void world_init(struct world *w, uint32_t num_buses)
{
	world_init_layout(w, num_buses, &default_layout);
}

static void world_fini(struct world *w)
{
	ck_assert_int_eq(vdev_bus_remove(w->pio, 0xcf8), 0);
	ck_assert_int_eq(vdev_bus_remove(w->mmio, w->ecam), 0);
	vdev_pci_root_free(w->root);
	/* The root took every BAR range with it. */
	ck_assert_uint_eq(vdev_bus_num_ranges(w->pio), 0);
	ck_assert_uint_eq(vdev_bus_num_ranges(w->mmio), 1);
	vdev_bus_free(w->mmio);
	vdev_bus_free(w->pio);
}

static struct ffn *add(struct world *w, uint32_t addr, uint32_t id, uint32_t header_type)
{
	struct ffn *f = ffn_new(id, header_type);
	struct vdev_bus_device_ops ops = f_ops(header_type == 1);

	ck_assert_int_eq(vdev_pci_root_add(w->root, addr, &ops, f), 0);
	return f;
}

/* Config cycles: through CF8/CFC, ECAM, and the root's own call. */
static uint32_t cf8_value(uint32_t addr, uint32_t reg)
{
	return 0x80000000u | addr << 8 | (reg & 0x3f) << 2 | (reg >> 6) << 24;
}

static uint32_t cf8_read(struct world *w, uint32_t addr, uint32_t at, uint32_t size)
{
	uint8_t b[4] = { 0 };
	uint32_t v;

	put32(b, cf8_value(addr, at / 4));
	ck_assert_int_eq(vdev_bus_write(w->pio, 0xcf8, 4, 0, b), 0);
	memset(b, 0, sizeof(b));
	ck_assert_int_eq(vdev_bus_read(w->pio, 0xcfc + at % 4, size, 0, b), 0);
	v = get32(b);
	return size == 4 ? v : v & ((1u << (8 * size)) - 1);
}

static int cf8_write(struct world *w, uint32_t addr, uint32_t at, uint32_t size, uint32_t v)
{
	uint8_t b[4];

	put32(b, cf8_value(addr, at / 4));
	ck_assert_int_eq(vdev_bus_write(w->pio, 0xcf8, 4, 0, b), 0);
	put32(b, v);
	return vdev_bus_write(w->pio, 0xcfc + at % 4, size, 0, b);
}

static uint64_t ecam_off(uint32_t addr, uint32_t at)
{
	return (uint64_t)addr << 12 | at;
}

static uint32_t ecam_read(struct world *w, uint32_t addr, uint32_t at, uint32_t size)
{
	uint8_t b[4] = { 0 };
	uint32_t v;

	ck_assert_int_eq(vdev_bus_read(w->mmio, w->ecam + ecam_off(addr, at), size, 0, b), 0);
	v = get32(b);
	return size == 4 ? v : v & ((1u << (8 * size)) - 1);
}

static int ecam_write(struct world *w, uint32_t addr, uint32_t at, uint32_t size, uint32_t v)
{
	uint8_t b[4];

	put32(b, v);
	return vdev_bus_write(w->mmio, w->ecam + ecam_off(addr, at), size, 0, b);
}

static int cfg_write(struct world *w, uint32_t addr, uint32_t at, uint32_t size, uint32_t v)
{
	uint8_t b[4];

	put32(b, v);
	return vdev_pci_root_config_write(w->root, addr, at / 4, at % 4, size, b);
}

static uint32_t cfg_read(struct world *w, uint32_t addr, uint32_t at)
{
	uint8_t b[4];

	vdev_pci_root_config_read(w->root, addr, at / 4, 0, 4, b);
	return get32(b);
}

/* What a BAR access at @gpa on @bus returns: the function's id, or -1. */
static int64_t probe(vdev_bus *bus, uint64_t gpa)
{
	uint8_t b[4];

	if (vdev_bus_read(bus, gpa, 4, 0, b) < 0)
		return -1;
	return get32(b);
}

/* ---- tests ---- */

START_TEST(test_enumerate_cf8_and_ecam)
{
	static const uint32_t addrs[] = { VDEV_PCI_ADDR(0, 0, 0), VDEV_PCI_ADDR(0, 3, 0),
					  VDEV_PCI_ADDR(0, 3, 2), VDEV_PCI_ADDR(0, 31, 7),
					  VDEV_PCI_ADDR(0, 17, 1) };
	vdev_pci_cfg *plain[2];
	struct ffn *f[5];
	struct world w;
	uint32_t found_cf8[64], found_ecam[64], n_cf8 = 0, n_ecam = 0;

	world_init(&w, NUM_BUSES);
	for (int i = 0; i < 3; i++)
		f[i] = add(&w, addrs[i], 0x100 + (uint32_t)i, 0);
	/* Two plain vdev_pci_cfg functions through vdev_pci_cfg_bus_ops. */
	for (int i = 0; i < 2; i++) {
		struct vdev_pci_cfg_config k = VDEV_PCI_CFG_CONFIG_INIT;

		k.vendor_id = 0x8086;
		k.device_id = (uint16_t)(0x200 + i);
		ck_assert_int_eq(vdev_pci_cfg_new(&k, &plain[i]), 0);
		ck_assert_int_eq(vdev_pci_root_add(w.root, addrs[3 + i], vdev_pci_cfg_bus_ops(),
						   plain[i]),
				 0);
	}
	ck_assert_ptr_eq(vdev_pci_root_find(w.root, addrs[1]), f[1]);
	ck_assert_ptr_eq(vdev_pci_root_find(w.root, addrs[4]), plain[1]);
	ck_assert_ptr_null(vdev_pci_root_find(w.root, VDEV_PCI_ADDR(0, 3, 1)));

	for (uint32_t bus = 0; bus < NUM_BUSES; bus++) {
		for (uint32_t dev = 0; dev < 32; dev++) {
			for (uint32_t fn = 0; fn < 8; fn++) {
				uint32_t a = VDEV_PCI_ADDR(bus, dev, fn);
				uint32_t v1 = cf8_read(&w, a, 0, 4), v2 = ecam_read(&w, a, 0, 4);

				ck_assert_uint_eq(v1, v2);
				if (v1 != 0xffffffffu) {
					ck_assert_uint_lt(n_cf8, 64);
					found_cf8[n_cf8++] = a;
				}
				if (ecam_read(&w, a, PCI_VENDOR_ID, 2) != 0xffff) {
					ck_assert_uint_lt(n_ecam, 64);
					found_ecam[n_ecam++] = a;
				}
			}
		}
	}
	ck_assert_uint_eq(n_cf8, 5);
	ck_assert_uint_eq(n_ecam, 5);
	ck_assert_mem_eq(found_cf8, found_ecam, sizeof(uint32_t) * 5);
	for (int i = 0; i < 5; i++) {
		int seen = 0;

		for (uint32_t j = 0; j < n_cf8; j++)
			seen += found_cf8[j] == addrs[i];
		ck_assert_int_eq(seen, 1);
	}
	ck_assert_uint_eq(cf8_read(&w, addrs[2], PCI_DEVICE_ID, 2), 0x102);
	ck_assert_uint_eq(ecam_read(&w, addrs[4], PCI_VENDOR_ID, 4), 0x02018086u);
	ck_assert_uint_eq(cf8_read(&w, addrs[4], PCI_DEVICE_ID + 1, 1), 0x02);
	ck_assert_uint_eq(ecam_read(&w, addrs[0], PCI_CLASS_DEVICE, 2), 0x0180);

	/* Writes through both paths reach the function. */
	ck_assert_int_eq(cf8_write(&w, addrs[1], PCI_INTERRUPT_LINE, 1, 0x0a), 0);
	ck_assert_uint_eq(ecam_read(&w, addrs[1], PCI_INTERRUPT_LINE, 1), 0x0a);
	ck_assert_int_eq(ecam_write(&w, addrs[1], PCI_CACHE_LINE_SIZE, 2, 0x2010), 0);
	ck_assert_uint_eq(cf8_read(&w, addrs[1], PCI_CACHE_LINE_SIZE, 2), 0x2010);

	world_fini(&w);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(f[i]->destroyed, 1);
		ffn_free(f[i]);
	}
	vdev_pci_cfg_free(plain[0]);
	vdev_pci_cfg_free(plain[1]);
}
END_TEST

static int gate_open = 1;
static int gate_calls;

static int gate_link_up(void *opaque)
{
	ck_assert_ptr_eq(opaque, &gate_open);
	gate_calls++;
	return gate_open;
}

START_TEST(test_bridges_and_gates)
{
	struct ffn *br, *br2, *loop, *e1, *e2, *e3;
	struct world w;

	world_init(&w, NUM_BUSES);
	br = add(&w, VDEV_PCI_ADDR(0, 2, 0), 1, 1);
	e1 = add(&w, VDEV_PCI_ADDR(1, 0, 0), 2, 0);
	br2 = add(&w, VDEV_PCI_ADDR(1, 1, 0), 3, 1);
	e2 = add(&w, VDEV_PCI_ADDR(2, 0, 0), 4, 0);
	e3 = add(&w, VDEV_PCI_ADDR(3, 0, 0), 5, 0);
	/* A bridge on bus 3 (unreachable) claiming bus 3 itself. */
	loop = add(&w, VDEV_PCI_ADDR(3, 5, 0), 6, 1);
	ck_assert_int_eq(vdev_pci_cfg_write(loop->cfg, PCI_PRIMARY_BUS / 4, 1, (uint8_t[]){ 3 }, 1),
			 0);

	/* Nothing behind the bridge until it has a secondary bus. */
	ck_assert_uint_eq(cf8_read(&w, VDEV_PCI_ADDR(1, 0, 0), 0, 4), 0xffffffffu);
	ck_assert_uint_eq(ecam_read(&w, VDEV_PCI_ADDR(1, 0, 0), 0, 4), 0xffffffffu);
	ck_assert_int_eq(cfg_write(&w, VDEV_PCI_ADDR(1, 0, 0), PCI_INTERRUPT_LINE, 1, 7), -ENOENT);
	ck_assert_uint_eq(vdev_pci_cfg_read(e1->cfg, PCI_INTERRUPT_LINE / 4) & 0xff, 0);
	/* The guest programs the bus numbers as firmware does. */
	ck_assert_int_eq(cf8_write(&w, VDEV_PCI_ADDR(0, 2, 0), PCI_PRIMARY_BUS, 4, 0x00020100), 0);
	ck_assert_uint_eq(cf8_read(&w, VDEV_PCI_ADDR(1, 0, 0), PCI_DEVICE_ID, 2), 2);
	ck_assert_uint_eq(ecam_read(&w, VDEV_PCI_ADDR(2, 0, 0), 0, 4), 0xffffffffu);
	ck_assert_int_eq(ecam_write(&w, VDEV_PCI_ADDR(1, 1, 0), PCI_SECONDARY_BUS, 1, 2), 0);
	ck_assert_uint_eq(ecam_read(&w, VDEV_PCI_ADDR(2, 0, 0), PCI_DEVICE_ID, 2), 4);
	/* Bus 3 is claimed only by a bridge on bus 3: unreachable. */
	ck_assert_uint_eq(ecam_read(&w, VDEV_PCI_ADDR(3, 0, 0), 0, 4), 0xffffffffu);
	ck_assert_uint_eq(ecam_read(&w, VDEV_PCI_ADDR(3, 5, 0), 0, 4), 0xffffffffu);

	/* A closed gate hides the bridge's secondary bus and all behind it. */
	ck_assert_int_eq(vdi_pci_root_set_gate(w.root, VDEV_PCI_ADDR(0, 2, 0), gate_link_up,
					       &gate_open),
			 0);
	gate_open = 0;
	ck_assert_uint_eq(cf8_read(&w, VDEV_PCI_ADDR(1, 0, 0), 0, 4), 0xffffffffu);
	ck_assert_uint_eq(cf8_read(&w, VDEV_PCI_ADDR(2, 0, 0), 0, 4), 0xffffffffu);
	ck_assert_int_eq(cfg_write(&w, VDEV_PCI_ADDR(1, 0, 0), PCI_INTERRUPT_LINE, 1, 7), -ENOENT);
	ck_assert_uint_eq(vdev_pci_cfg_read(e1->cfg, PCI_INTERRUPT_LINE / 4) & 0xff, 0);
	ck_assert_int_gt(gate_calls, 0);
	/* The bridge itself stays visible. */
	ck_assert_uint_eq(cf8_read(&w, VDEV_PCI_ADDR(0, 2, 0), PCI_DEVICE_ID, 2), 1);
	gate_open = 1;
	ck_assert_uint_eq(cf8_read(&w, VDEV_PCI_ADDR(2, 0, 0), PCI_DEVICE_ID, 2), 4);
	ck_assert_int_eq(cfg_write(&w, VDEV_PCI_ADDR(1, 0, 0), PCI_INTERRUPT_LINE, 1, 7), 0);
	ck_assert_uint_eq(vdev_pci_cfg_read(e1->cfg, PCI_INTERRUPT_LINE / 4) & 0xff, 7);
	/* Gate removed: open for good. */
	gate_open = 0;
	ck_assert_int_eq(vdi_pci_root_set_gate(w.root, VDEV_PCI_ADDR(0, 2, 0), NULL, NULL), 0);
	ck_assert_uint_eq(cf8_read(&w, VDEV_PCI_ADDR(1, 0, 0), PCI_DEVICE_ID, 2), 2);
	ck_assert_int_eq(vdi_pci_root_set_gate(w.root, VDEV_PCI_ADDR(0, 9, 0), gate_link_up,
					       &gate_open),
			 -ENOENT);
	ck_assert_int_eq(vdi_pci_root_set_gate(w.root, 0x10000, gate_link_up, &gate_open),
			 -EINVAL);
	ck_assert_int_eq(vdi_pci_root_set_gate(NULL, 0, gate_link_up, &gate_open), -EINVAL);

	/* Renumbering moves what is reachable. */
	ck_assert_int_eq(cf8_write(&w, VDEV_PCI_ADDR(0, 2, 0), PCI_SECONDARY_BUS, 1, 3), 0);
	ck_assert_uint_eq(cf8_read(&w, VDEV_PCI_ADDR(1, 0, 0), 0, 4), 0xffffffffu);
	ck_assert_uint_eq(cf8_read(&w, VDEV_PCI_ADDR(3, 0, 0), PCI_DEVICE_ID, 2), 5);
	ck_assert_uint_eq(cf8_read(&w, VDEV_PCI_ADDR(3, 5, 0), PCI_DEVICE_ID, 2), 6);

	world_fini(&w);
	ffn_free(br);
	ffn_free(br2);
	ffn_free(loop);
	ffn_free(e1);
	ffn_free(e2);
	ffn_free(e3);
}
END_TEST

/* A function with mem32 0x1000 at BAR0, mem64 prefetchable 0x4000 at BAR2,
 * I/O 32 at BAR4, mem32 0x2000 at BAR5. */
static struct ffn *add_barred(struct world *w, uint32_t addr, uint32_t id)
{
	struct ffn *f = ffn_new(id, 0);
	struct vdev_bus_device_ops ops = f_ops(0);

	ck_assert_int_eq(vdev_pci_cfg_add_bar(f->cfg, 0, 0x1000, VDEV_PCI_BAR_MEM32), 0);
	ck_assert_int_eq(vdev_pci_cfg_add_bar(f->cfg, 2, 0x4000,
					      VDEV_PCI_BAR_MEM64 | VDEV_PCI_BAR_PREFETCH),
			 0);
	ck_assert_int_eq(vdev_pci_cfg_add_bar(f->cfg, 4, 32, VDEV_PCI_BAR_IO), 0);
	ck_assert_int_eq(vdev_pci_cfg_add_bar(f->cfg, 5, 0x2000, VDEV_PCI_BAR_MEM32), 0);
	ck_assert_int_eq(vdev_pci_root_add(w->root, addr, &ops, f), 0);
	return f;
}

START_TEST(test_bar_sizing_through_root)
{
	uint32_t a = VDEV_PCI_ADDR(0, 4, 0);
	struct world w;
	struct ffn *f;

	world_init(&w, NUM_BUSES);
	f = add_barred(&w, a, 7);
	/* Linux's sizing, through CF8. */
	ck_assert_int_eq(cf8_write(&w, a, PCI_BASE_ADDRESS_0, 4, 0xffffffff), 0);
	ck_assert_uint_eq(cf8_read(&w, a, PCI_BASE_ADDRESS_0, 4), 0xfffff000u);
	ck_assert_int_eq(cf8_write(&w, a, PCI_BASE_ADDRESS_0, 4, 0), 0);
	ck_assert_int_eq(ecam_write(&w, a, PCI_BASE_ADDRESS_2, 4, 0xffffffff), 0);
	ck_assert_uint_eq(ecam_read(&w, a, PCI_BASE_ADDRESS_2, 4), 0xffffc00cu);
	ck_assert_int_eq(ecam_write(&w, a, PCI_BASE_ADDRESS_3, 4, 0xffffffff), 0);
	ck_assert_uint_eq(ecam_read(&w, a, PCI_BASE_ADDRESS_3, 4), 0xffffffffu);
	ck_assert_int_eq(cf8_write(&w, a, PCI_BASE_ADDRESS_4, 4, 0xffffffff), 0);
	ck_assert_uint_eq(cf8_read(&w, a, PCI_BASE_ADDRESS_4, 4), 0xffffffe1u);
	ck_assert_uint_eq(cf8_read(&w, a, PCI_BASE_ADDRESS_1, 4), 0);
	/* Nothing was on the bus, nothing moved. */
	ck_assert_int_eq(w.nmoves, 0);
	ck_assert_uint_eq(vdev_bus_num_ranges(w.mmio), 2);
	/* The root's own sizing at add put every register back. */
	ck_assert_uint_eq(vdev_pci_cfg_read(f->cfg, REG_CMD) & 0xffff, 0);
	world_fini(&w);
	ffn_free(f);
}
END_TEST

START_TEST(test_bar_relocation)
{
	uint32_t a = VDEV_PCI_ADDR(0, 4, 0);
	struct world w;
	struct ffn *f;
	uint8_t b[4] = { 0 };

	world_init(&w, NUM_BUSES);
	f = add_barred(&w, a, 7);
	/* Addresses with decode off: not on the bus yet. */
	ck_assert_int_eq(cf8_write(&w, a, PCI_BASE_ADDRESS_0, 4, 0xc0001000), 0);
	ck_assert_int_eq(cf8_write(&w, a, PCI_BASE_ADDRESS_2, 4, 0x00000000), 0);
	ck_assert_int_eq(cf8_write(&w, a, PCI_BASE_ADDRESS_3, 4, 0x100), 0);
	ck_assert_int_eq(cf8_write(&w, a, PCI_BASE_ADDRESS_4, 4, 0xc100), 0);
	ck_assert_int_eq(probe(w.mmio, 0xc0001000), -1);
	ck_assert_int_eq(w.nmoves, 0);
	/* Memory decode on: both memory BARs with an address appear (BAR5
	 * still has none). */
	ck_assert_int_eq(cf8_write(&w, a, PCI_COMMAND, 2, PCI_COMMAND_MEMORY), 0);
	ck_assert_int_eq(w.nmoves, 2);
	ck_assert_uint_eq(w.moves[0].bar, 0);
	ck_assert_uint_eq(w.moves[0].addr, a);
	ck_assert_uint_eq(w.moves[0].kind, VDEV_PCI_BAR_MEM32);
	ck_assert_uint_eq(w.moves[0].old_base, 0);
	ck_assert_uint_eq(w.moves[0].new_base, 0xc0001000);
	ck_assert_uint_eq(w.moves[0].size, 0x1000);
	ck_assert_uint_eq(w.moves[1].bar, 2);
	ck_assert_uint_eq(w.moves[1].kind, VDEV_PCI_BAR_MEM64);
	ck_assert_uint_eq(w.moves[1].new_base, MMIO64_BASE);
	ck_assert_int_eq(probe(w.mmio, 0xc0001000), 7);
	ck_assert_int_eq(probe(w.mmio, 0xc0001ffc), 7);
	ck_assert_uint_eq(f->last_offset, 0xffc);
	ck_assert_int_eq(probe(w.mmio, MMIO64_BASE + 0x3ffc), 7);
	ck_assert_int_eq(probe(w.pio, 0xc100), -1);
	ck_assert_int_eq(vdev_bus_write(w.mmio, 0xc0001010, 4, 0, b), 0);
	ck_assert_int_eq(f->bar_writes, 1);
	ck_assert_uint_eq(f->last_offset, 0x10);
	/* I/O decode on. */
	ck_assert_int_eq(ecam_write(&w, a, PCI_COMMAND, 1, PCI_COMMAND_MEMORY | PCI_COMMAND_IO),
			 0);
	ck_assert_int_eq(w.nmoves, 3);
	ck_assert_uint_eq(w.moves[2].kind, VDEV_PCI_BAR_IO);
	ck_assert_uint_eq(w.moves[2].new_base, 0xc100);
	ck_assert_int_eq(probe(w.pio, 0xc11c), 7);

	/* Move BAR0 with decode on: the old address is gone. */
	ck_assert_int_eq(ecam_write(&w, a, PCI_BASE_ADDRESS_0, 4, 0xc0010000), 0);
	ck_assert_int_eq(w.nmoves, 4);
	ck_assert_uint_eq(w.moves[3].old_base, 0xc0001000);
	ck_assert_uint_eq(w.moves[3].new_base, 0xc0010000);
	ck_assert_int_eq(probe(w.mmio, 0xc0001000), -1);
	ck_assert_int_eq(probe(w.mmio, 0xc0010000), 7);
	/* A byte write moves it too (bits 23:16). */
	ck_assert_int_eq(cf8_write(&w, a, PCI_BASE_ADDRESS_0 + 2, 1, 0x02), 0);
	ck_assert_int_eq(probe(w.mmio, 0xc0020000), 7);
	ck_assert_int_eq(probe(w.mmio, 0xc0010000), -1);
	/* Moving the 64-bit BAR into the 32-bit window is fine, half by half. */
	ck_assert_int_eq(ecam_write(&w, a, PCI_BASE_ADDRESS_2, 4, 0xc0100000), 0);
	ck_assert_int_eq(probe(w.mmio, MMIO64_BASE + 0xc0100000), 7);
	ck_assert_int_eq(ecam_write(&w, a, PCI_BASE_ADDRESS_3, 4, 0), 0);
	ck_assert_int_eq(probe(w.mmio, 0xc0100000), 7);
	ck_assert_int_eq(probe(w.mmio, MMIO64_BASE + 0xc0100000), -1);
	/* A write that changes nothing reports nothing. */
	w.nmoves = 0;
	ck_assert_int_eq(ecam_write(&w, a, PCI_BASE_ADDRESS_0, 4, 0xc0020000), 0);
	ck_assert_int_eq(ecam_write(&w, a, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_IO),
			 0);
	ck_assert_int_eq(w.nmoves, 0);

	/* Sizing with decode on takes the BAR off; an address puts it back. */
	ck_assert_int_eq(cf8_write(&w, a, PCI_BASE_ADDRESS_0, 4, 0xffffffff), 0);
	ck_assert_int_eq(w.nmoves, 1);
	ck_assert_uint_eq(w.moves[0].old_base, 0xc0020000);
	ck_assert_uint_eq(w.moves[0].new_base, 0);
	ck_assert_int_eq(probe(w.mmio, 0xc0020000), -1);
	ck_assert_int_eq(probe(w.mmio, 0xfffff000), -1);
	ck_assert_int_eq(cf8_write(&w, a, PCI_BASE_ADDRESS_0, 4, 0xc0020000), 0);
	ck_assert_int_eq(w.nmoves, 2);
	ck_assert_uint_eq(w.moves[1].new_base, 0xc0020000);
	ck_assert_int_eq(probe(w.mmio, 0xc0020000), 7);
	/* Upper half of the 64-bit BAR sized with decode on. */
	ck_assert_int_eq(cf8_write(&w, a, PCI_BASE_ADDRESS_3, 4, 0xffffffff), 0);
	ck_assert_int_eq(probe(w.mmio, 0xc0100000), -1);
	ck_assert_int_eq(cf8_write(&w, a, PCI_BASE_ADDRESS_3, 4, 0), 0);
	ck_assert_int_eq(probe(w.mmio, 0xc0100000), 7);

	/* Decode off takes everything off: memory, then I/O. */
	w.nmoves = 0;
	ck_assert_int_eq(cf8_write(&w, a, PCI_COMMAND, 2, PCI_COMMAND_IO), 0);
	ck_assert_int_eq(w.nmoves, 2);
	ck_assert_int_eq(probe(w.mmio, 0xc0020000), -1);
	ck_assert_int_eq(probe(w.mmio, 0xc0100000), -1);
	ck_assert_int_eq(probe(w.pio, 0xc100), 7);
	ck_assert_int_eq(cf8_write(&w, a, PCI_COMMAND, 2, 0), 0);
	ck_assert_int_eq(w.nmoves, 3);
	ck_assert_uint_eq(w.moves[2].old_base, 0xc100);
	ck_assert_int_eq(probe(w.pio, 0xc100), -1);
	ck_assert_uint_eq(vdev_bus_num_ranges(w.pio), 1);
	ck_assert_uint_eq(vdev_bus_num_ranges(w.mmio), 2);

	/* Back on, then removal: ranges leave, moves reported, destroy once. */
	ck_assert_int_eq(cf8_write(&w, a, PCI_COMMAND, 2, PCI_COMMAND_IO | PCI_COMMAND_MEMORY), 0);
	ck_assert_uint_eq(vdev_bus_num_ranges(w.mmio), 4);
	w.nmoves = 0;
	ck_assert_int_eq(vdev_pci_root_remove(w.root, a), 0);
	ck_assert_int_eq(w.nmoves, 3);
	for (int i = 0; i < 3; i++)
		ck_assert_uint_eq(w.moves[i].new_base, 0);
	ck_assert_uint_eq(vdev_bus_num_ranges(w.mmio), 2);
	ck_assert_uint_eq(vdev_bus_num_ranges(w.pio), 1);
	ck_assert_int_eq(f->destroyed, 1);
	ck_assert_int_eq(vdev_pci_root_remove(w.root, a), -ENOENT);
	ck_assert_uint_eq(cf8_read(&w, a, 0, 4), 0xffffffffu);
	world_fini(&w);
	ck_assert_int_eq(f->destroyed, 1);
	ffn_free(f);
}
END_TEST

/* Refused: the register keeps its value and the buses are as before. */
static void refused(struct world *w, struct ffn *f, uint32_t addr, uint32_t at, uint32_t size,
		    uint32_t v)
{
	uint32_t before = vdev_pci_cfg_read(f->cfg, at / 4);
	uint32_t nm = vdev_bus_num_ranges(w->mmio), np = vdev_bus_num_ranges(w->pio);
	int moves = w->nmoves;

	ck_assert_int_eq(cfg_write(w, addr, at, size, v), -EBUSY);
	ck_assert_uint_eq(vdev_pci_cfg_read(f->cfg, at / 4), before);
	/* The same through ECAM: the root's error reaches the bus caller. */
	ck_assert_int_eq(ecam_write(w, addr, at, size, v), -EBUSY);
	ck_assert_uint_eq(vdev_pci_cfg_read(f->cfg, at / 4), before);
	ck_assert_uint_eq(vdev_bus_num_ranges(w->mmio), nm);
	ck_assert_uint_eq(vdev_bus_num_ranges(w->pio), np);
	ck_assert_int_eq(w->nmoves, moves);
}

START_TEST(test_refusals)
{
	uint32_t a = VDEV_PCI_ADDR(0, 4, 0), b = VDEV_PCI_ADDR(0, 5, 0);
	struct world w;
	struct ffn *fa, *fb;
	uint16_t st;

	world_init(&w, NUM_BUSES);
	fa = add_barred(&w, a, 7);
	fb = add_barred(&w, b, 8);
	ck_assert_int_eq(cfg_write(&w, a, PCI_BASE_ADDRESS_0, 4, 0xc0001000), 0);
	ck_assert_int_eq(cfg_write(&w, a, PCI_BASE_ADDRESS_4, 4, 0xc100), 0);
	ck_assert_int_eq(cfg_write(&w, a, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_IO), 0);
	ck_assert_int_eq(cfg_write(&w, b, PCI_BASE_ADDRESS_0, 4, 0xc0002000), 0);
	ck_assert_int_eq(cfg_write(&w, b, PCI_BASE_ADDRESS_4, 4, 0xc200), 0);
	ck_assert_int_eq(cfg_write(&w, b, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_IO), 0);
	ck_assert_int_eq(probe(w.mmio, 0xc0001000), 7);
	ck_assert_int_eq(probe(w.mmio, 0xc0002000), 8);
	w.nmoves = 0;

	/* Onto another function's BAR (memory and I/O). */
	refused(&w, fb, b, PCI_BASE_ADDRESS_0, 4, 0xc0001000);
	refused(&w, fb, b, PCI_BASE_ADDRESS_4, 4, 0xc110);
	refused(&w, fb, b, PCI_BASE_ADDRESS_4 + 1, 1, 0xc1);
	/* Onto the ECAM window, a VMM range. */
	refused(&w, fb, b, PCI_BASE_ADDRESS_0, 4, ECAM_BASE + 0x1000);
	refused(&w, fb, b, PCI_BASE_ADDRESS_0, 4, VMM_DEV);
	/* Outside the windows: below mmio32, a 32-bit BAR at the window's top
	 * edge, an I/O BAR outside the I/O window. */
	refused(&w, fb, b, PCI_BASE_ADDRESS_0, 4, 0x80000000);
	refused(&w, fb, b, PCI_BASE_ADDRESS_0, 4, (uint32_t)(MMIO32_BASE + MMIO32_SIZE));
	refused(&w, fb, b, PCI_BASE_ADDRESS_4, 4, 0x1000);
	refused(&w, fb, b, PCI_BASE_ADDRESS_4, 4, 0xbfe0);
	/* Onto its own other BAR. */
	ck_assert_int_eq(cfg_write(&w, b, PCI_BASE_ADDRESS_5, 4, 0xc0004000), 0);
	refused(&w, fb, b, PCI_BASE_ADDRESS_5, 4, 0xc0002000);
	ck_assert_int_eq(probe(w.mmio, 0xc0001000), 7);
	ck_assert_int_eq(probe(w.mmio, 0xc0002000), 8);
	ck_assert_int_eq(probe(w.mmio, 0xc0004000), 8);
	ck_assert_int_eq(probe(w.pio, 0xc100), 7);
	ck_assert_int_eq(probe(w.pio, 0xc200), 8);
	/* A 64-bit BAR whose high half would put it past the mmio64 window. */
	ck_assert_int_eq(cfg_write(&w, b, PCI_BASE_ADDRESS_2, 4, 0xc0008000), 0);
	ck_assert_int_eq(probe(w.mmio, 0xc0008000), 8);
	refused(&w, fb, b, PCI_BASE_ADDRESS_3, 4, 0x200);
	ck_assert_int_eq(cfg_write(&w, b, PCI_BASE_ADDRESS_3, 4, 0x100), 0);
	ck_assert_int_eq(probe(w.mmio, MMIO64_BASE + 0xc0008000), 8);

	/* All or nothing: decode on for four BARs, one of which collides. */
	ck_assert_int_eq(cfg_write(&w, b, PCI_COMMAND, 2, 0), 0);
	ck_assert_int_eq(probe(w.mmio, 0xc0002000), -1);
	ck_assert_int_eq(cfg_write(&w, b, PCI_BASE_ADDRESS_0, 4, 0xc0001000), 0);
	w.nmoves = 0;
	refused(&w, fb, b, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_IO);
	ck_assert_int_eq(probe(w.mmio, 0xc0004000), -1);
	ck_assert_int_eq(probe(w.mmio, MMIO64_BASE + 0xc0008000), -1);
	ck_assert_int_eq(probe(w.pio, 0xc200), -1);
	ck_assert_int_eq(probe(w.mmio, 0xc0001000), 7);
	/* A dword write at 0x04: refused command half, status untouched. */
	st = PCI_STATUS_REC_MASTER_ABORT;
	ck_assert_int_eq(vdev_pci_cfg_poke(fb->cfg, PCI_STATUS, &st, 2), 0);
	refused(&w, fb, b, PCI_COMMAND, 4, 0xffff0000u | PCI_COMMAND_MEMORY);
	ck_assert_uint_eq(vdev_pci_cfg_read(fb->cfg, REG_CMD) >> 16, PCI_STATUS_REC_MASTER_ABORT);
	/* Fixed, the same dword write goes through and clears the status. */
	ck_assert_int_eq(cfg_write(&w, b, PCI_BASE_ADDRESS_0, 4, 0xc0003000), 0);
	ck_assert_int_eq(cfg_write(&w, b, PCI_COMMAND, 4, 0xffff0000u | PCI_COMMAND_MEMORY), 0);
	ck_assert_uint_eq(vdev_pci_cfg_read(fb->cfg, REG_CMD), PCI_COMMAND_MEMORY);
	ck_assert_int_eq(w.nmoves, 3);
	ck_assert_int_eq(probe(w.mmio, 0xc0003000), 8);
	ck_assert_int_eq(probe(w.mmio, 0xc0005ffc), 8);
	ck_assert_int_eq(probe(w.mmio, MMIO64_BASE + 0xc0008000), 8);
	ck_assert_int_eq(probe(w.pio, 0xc200), -1);

	/* A function refusing a write: passed through, nothing moves. */
	fb->refuse_cfg_writes = 1;
	ck_assert_int_eq(cfg_write(&w, b, PCI_BASE_ADDRESS_0, 4, 0xc0009000), -EPERM);
	ck_assert_int_eq(probe(w.mmio, 0xc0003000), 8);
	ck_assert_int_eq(probe(w.mmio, 0xc0009000), -1);
	fb->refuse_cfg_writes = 0;

	world_fini(&w);
	ffn_free(fa);
	ffn_free(fb);
}
END_TEST

START_TEST(test_preset_bars_at_add)
{
	struct vdev_bus_device_ops ops = f_ops(0);
	struct world w;
	struct ffn *f1, *f2, *f3;

	world_init(&w, NUM_BUSES);
	/* A VMM acting as firmware programmed the BAR and turned decode on. */
	f1 = ffn_new(1, 0);
	ck_assert_int_eq(vdev_pci_cfg_add_bar(f1->cfg, 1, 0x1000, VDEV_PCI_BAR_MEM32), 0);
	ck_assert_int_eq(vdev_pci_cfg_write(f1->cfg, REG_BAR(1), 0, (uint8_t[]){ 0, 0x50, 0, 0xc0 },
					    4),
			 0);
	ck_assert_int_eq(vdev_pci_cfg_write(f1->cfg, REG_CMD, 0, (uint8_t[]){ PCI_COMMAND_MEMORY },
					    1),
			 0);
	ck_assert_int_eq(vdev_pci_root_add(w.root, VDEV_PCI_ADDR(0, 1, 0), &ops, f1), 0);
	ck_assert_int_eq(w.nmoves, 1);
	ck_assert_uint_eq(w.moves[0].bar, 1);
	ck_assert_uint_eq(w.moves[0].new_base, 0xc0005000);
	ck_assert_int_eq(probe(w.mmio, 0xc0005000), 1);
	/* Sizing at add left the registers as they were. */
	ck_assert_uint_eq(vdev_pci_cfg_read(f1->cfg, REG_BAR(1)), 0xc0005000);
	ck_assert_uint_eq(vdev_pci_cfg_read(f1->cfg, REG_CMD), PCI_COMMAND_MEMORY);

	/* The same address for another: refused, nothing left behind. */
	f2 = ffn_new(2, 0);
	ck_assert_int_eq(vdev_pci_cfg_add_bar(f2->cfg, 0, 0x100, VDEV_PCI_BAR_MEM32), 0);
	ck_assert_int_eq(vdev_pci_cfg_add_bar(f2->cfg, 1, 0x100, VDEV_PCI_BAR_MEM32), 0);
	ck_assert_int_eq(vdev_pci_cfg_write(f2->cfg, REG_BAR(0), 0, (uint8_t[]){ 0, 0x40, 0, 0xc0 },
					    4),
			 0);
	ck_assert_int_eq(vdev_pci_cfg_write(f2->cfg, REG_BAR(1), 0, (uint8_t[]){ 0, 0x50, 0, 0xc0 },
					    4),
			 0);
	ck_assert_int_eq(vdev_pci_cfg_write(f2->cfg, REG_CMD, 0, (uint8_t[]){ PCI_COMMAND_MEMORY },
					    1),
			 0);
	ck_assert_int_eq(vdev_pci_root_add(w.root, VDEV_PCI_ADDR(0, 2, 0), &ops, f2), -EBUSY);
	ck_assert_ptr_null(vdev_pci_root_find(w.root, VDEV_PCI_ADDR(0, 2, 0)));
	ck_assert_int_eq(probe(w.mmio, 0xc0004000), -1);
	ck_assert_int_eq(probe(w.mmio, 0xc0005000), 1);
	ck_assert_uint_eq(vdev_bus_num_ranges(w.mmio), 3);
	ck_assert_int_eq(w.nmoves, 1);
	ck_assert_int_eq(f2->destroyed, 0);
	/* Outside the windows. */
	ck_assert_int_eq(vdev_pci_cfg_write(f2->cfg, REG_BAR(1), 0, (uint8_t[]){ 0, 0x50, 0, 0x10 },
					    4),
			 0);
	ck_assert_int_eq(vdev_pci_root_add(w.root, VDEV_PCI_ADDR(0, 2, 0), &ops, f2), -EBUSY);
	/* Fixed: goes in. */
	ck_assert_int_eq(vdev_pci_cfg_write(f2->cfg, REG_BAR(1), 0, (uint8_t[]){ 0, 0x60, 0, 0xc0 },
					    4),
			 0);
	ck_assert_int_eq(vdev_pci_root_add(w.root, VDEV_PCI_ADDR(0, 2, 0), &ops, f2), 0);
	ck_assert_int_eq(probe(w.mmio, 0xc0004000), 2);
	ck_assert_int_eq(probe(w.mmio, 0xc0006000), 2);

	/* Taken address; bad arguments. */
	f3 = ffn_new(3, 0);
	ck_assert_int_eq(vdev_pci_root_add(w.root, VDEV_PCI_ADDR(0, 2, 0), &ops, f3), -EEXIST);
	ck_assert_int_eq(vdev_pci_root_add(w.root, VDEV_PCI_ADDR(NUM_BUSES, 0, 0), &ops, f3),
			 -EINVAL);
	ck_assert_int_eq(vdev_pci_root_add(w.root, 0x10000, &ops, f3), -EINVAL);
	ck_assert_int_eq(vdev_pci_root_add(w.root, VDEV_PCI_ADDR_NONE, &ops, f3), -EINVAL);
	ck_assert_int_eq(vdev_pci_root_add(w.root, 0, NULL, f3), -EINVAL);
	ck_assert_int_eq(vdev_pci_root_add(NULL, 0, &ops, f3), -EINVAL);
	ops.config_register_write = NULL;
	ck_assert_int_eq(vdev_pci_root_add(w.root, VDEV_PCI_ADDR(0, 3, 0), &ops, f3), -EINVAL);
	ops = f_ops(0);
	ops.config_register_read = NULL;
	ck_assert_int_eq(vdev_pci_root_add(w.root, VDEV_PCI_ADDR(0, 3, 0), &ops, f3), -EINVAL);
	ops = f_ops(0);
	ops.read = NULL;
	ck_assert_int_eq(vdev_pci_root_add(w.root, VDEV_PCI_ADDR(0, 3, 0), &ops, f3), -EINVAL);
	ops = f_ops(0);
	ops.struct_size = offsetof(struct vdev_bus_device_ops, config_register_read);
	ck_assert_int_eq(vdev_pci_root_add(w.root, VDEV_PCI_ADDR(0, 3, 0), &ops, f3), -EINVAL);
	ck_assert_int_eq(vdev_pci_root_remove(w.root, VDEV_PCI_ADDR(0, 3, 0)), -ENOENT);
	ck_assert_int_eq(vdev_pci_root_remove(w.root, 0x10000), -EINVAL);
	ck_assert_int_eq(vdev_pci_root_remove(NULL, 0), -EINVAL);
	ck_assert_ptr_null(vdev_pci_root_find(NULL, 0));
	ck_assert_ptr_null(vdev_pci_root_find(w.root, 0x10000));
	ck_assert_int_eq(f3->destroyed, 0);

	world_fini(&w);
	ck_assert_int_eq(f1->destroyed, 1);
	ck_assert_int_eq(f2->destroyed, 1);
	ffn_free(f1);
	ffn_free(f2);
	ffn_free(f3);
}
END_TEST

/*
 * Windows ending on 4 GiB boundaries, filled from the top as EDK2 does: a
 * 2 GiB 32-bit BAR at 0x80000000 and a 16 KiB 64-bit one at 0xf_ffff_c000
 * (every address bit of its low dword set). The ECAM window and the VMM
 * device sit below.
 */
#define TOP64 0xfffffc000ull
#define TOP32 0x80000000ull

static const struct layout top_layout = {
	.ecam = 0x40000000,
	.vmm_dev = 0x50000000,
	.mmio32_base = TOP32,
	.mmio32_size = 0x80000000,
	.mmio64_base = 0xf80000000ull,
	.mmio64_size = 0x80000000,
};

static void add_top_bars(vdev_pci_cfg *cfg)
{
	ck_assert_int_eq(vdev_pci_cfg_add_bar(cfg, 0, 0x4000,
					      VDEV_PCI_BAR_MEM64 | VDEV_PCI_BAR_PREFETCH),
			 0);
	ck_assert_int_eq(vdev_pci_cfg_add_bar(cfg, 2, UINT64_C(1) << 31, VDEV_PCI_BAR_MEM32), 0);
}

static void check_move(const struct world *w, int i, uint32_t bar, uint64_t old_base,
		       uint64_t new_base)
{
	ck_assert_int_gt(w->nmoves, i);
	ck_assert_uint_eq(w->moves[i].bar, bar);
	ck_assert_uint_eq(w->moves[i].old_base, old_base);
	ck_assert_uint_eq(w->moves[i].new_base, new_base);
}

START_TEST(test_bar_top_addresses)
{
	uint32_t a = VDEV_PCI_ADDR(0, 4, 0);
	struct vdev_bus_device_ops ops = f_ops(0);
	struct world w;
	struct ffn *f, *g;
	uint64_t addr = 1;

	world_init_layout(&w, NUM_BUSES, &top_layout);
	f = ffn_new(7, 0);
	add_top_bars(f->cfg);
	ck_assert_int_eq(vdev_pci_root_add(w.root, a, &ops, f), 0);
	/* Firmware's sizing, decode off, each dword put back. */
	ck_assert_int_eq(cf8_write(&w, a, PCI_BASE_ADDRESS_0, 4, 0xffffffff), 0);
	ck_assert_uint_eq(cf8_read(&w, a, PCI_BASE_ADDRESS_0, 4), 0xffffc00cu);
	ck_assert_int_eq(cf8_write(&w, a, PCI_BASE_ADDRESS_0, 4, 0x0000000c), 0);
	ck_assert_int_eq(cf8_write(&w, a, PCI_BASE_ADDRESS_1, 4, 0xffffffff), 0);
	ck_assert_int_eq(cf8_write(&w, a, PCI_BASE_ADDRESS_1, 4, 0), 0);
	ck_assert_int_eq(cf8_write(&w, a, PCI_BASE_ADDRESS_2, 4, 0xffffffff), 0);
	ck_assert_uint_eq(cf8_read(&w, a, PCI_BASE_ADDRESS_2, 4), 0x80000000u);
	ck_assert_int_eq(cf8_write(&w, a, PCI_BASE_ADDRESS_2, 4, 0), 0);
	/* The top addresses, then decode on: both decode there. */
	ck_assert_int_eq(cf8_write(&w, a, PCI_BASE_ADDRESS_0, 4, 0xffffc00c), 0);
	ck_assert_int_eq(cf8_write(&w, a, PCI_BASE_ADDRESS_1, 4, 0xf), 0);
	ck_assert_int_eq(cf8_write(&w, a, PCI_BASE_ADDRESS_2, 4, 0x80000000), 0);
	ck_assert_int_eq(w.nmoves, 0);
	ck_assert_int_eq(cf8_write(&w, a, PCI_COMMAND, 2, PCI_COMMAND_MEMORY), 0);
	ck_assert_int_eq(w.nmoves, 2);
	check_move(&w, 0, 0, 0, TOP64);
	ck_assert_uint_eq(w.moves[0].kind, VDEV_PCI_BAR_MEM64);
	ck_assert_uint_eq(w.moves[0].size, 0x4000);
	check_move(&w, 1, 2, 0, TOP32);
	ck_assert_uint_eq(w.moves[1].size, UINT64_C(1) << 31);
	ck_assert_int_eq(probe(w.mmio, TOP64), 7);
	ck_assert_int_eq(probe(w.mmio, TOP64 + 0x3ffc), 7);
	ck_assert_uint_eq(f->last_offset, 0x3ffc);
	ck_assert_int_eq(probe(w.mmio, TOP32), 7);
	ck_assert_int_eq(probe(w.mmio, 0xfffffffc), 7);
	ck_assert_uint_eq(f->last_offset, 0x7ffffffc);

	/* Sizing the 2 GiB BAR with decode on takes it off; its address puts
	 * it back, although the register reads the same all along. */
	w.nmoves = 0;
	ck_assert_int_eq(cf8_write(&w, a, PCI_BASE_ADDRESS_2, 4, 0xffffffff), 0);
	check_move(&w, 0, 2, TOP32, 0);
	ck_assert_int_eq(probe(w.mmio, TOP32), -1);
	ck_assert_uint_eq(cf8_read(&w, a, PCI_BASE_ADDRESS_2, 4), 0x80000000u);
	ck_assert_int_eq(cf8_write(&w, a, PCI_BASE_ADDRESS_2, 4, 0x80000000), 0);
	check_move(&w, 1, 2, 0, TOP32);
	ck_assert_int_eq(probe(w.mmio, TOP32), 7);
	/* Byte-wise: off once all four bytes were written 0xff, back with the
	 * next byte that is not. */
	for (uint32_t i = 0; i < 4; i++) {
		ck_assert_int_eq(probe(w.mmio, TOP32), 7);
		ck_assert_int_eq(ecam_write(&w, a, PCI_BASE_ADDRESS_2 + i, 1, 0xff), 0);
	}
	ck_assert_int_eq(probe(w.mmio, TOP32), -1);
	ck_assert_int_eq(ecam_write(&w, a, PCI_BASE_ADDRESS_2 + 3, 1, 0x80), 0);
	ck_assert_int_eq(probe(w.mmio, TOP32), 7);

	/* The 64-bit BAR's low dword sized, the high one not yet: off. */
	w.nmoves = 0;
	ck_assert_int_eq(ecam_write(&w, a, PCI_BASE_ADDRESS_0, 4, 0xffffffff), 0);
	check_move(&w, 0, 0, TOP64, 0);
	ck_assert_int_eq(probe(w.mmio, TOP64), -1);
	ck_assert_int_eq(cf8_write(&w, a, PCI_BASE_ADDRESS_1, 4, 0xffffffff), 0);
	ck_assert_int_eq(cf8_write(&w, a, PCI_BASE_ADDRESS_1, 4, 0xf), 0);
	ck_assert_int_eq(probe(w.mmio, TOP64), -1);
	/* An address outside the window is refused and leaves it being sized,
	 * for the root and for the function alike. */
	refused(&w, f, a, PCI_BASE_ADDRESS_0, 4, 0x0000000c);
	ck_assert_uint_eq(vdev_pci_cfg_read(f->cfg, REG_BAR(0)), 0xffffc00cu);
	ck_assert_int_eq(vdev_pci_cfg_bar(f->cfg, 0, &addr, NULL, NULL), 0);
	ck_assert_uint_eq(addr, 0);
	ck_assert_int_eq(probe(w.mmio, TOP64), -1);
	ck_assert_int_eq(cf8_write(&w, a, PCI_BASE_ADDRESS_0, 4, 0xffffc00c), 0);
	check_move(&w, 1, 0, 0, TOP64);
	ck_assert_int_eq(probe(w.mmio, TOP64), 7);
	ck_assert_int_eq(vdev_pci_cfg_bar(f->cfg, 0, &addr, NULL, NULL), 0);
	ck_assert_uint_eq(addr, TOP64);
	/* The high dword alike. */
	ck_assert_int_eq(ecam_write(&w, a, PCI_BASE_ADDRESS_1, 4, 0xffffffff), 0);
	ck_assert_int_eq(probe(w.mmio, TOP64), -1);
	refused(&w, f, a, PCI_BASE_ADDRESS_1, 4, 0x10);
	ck_assert_int_eq(probe(w.mmio, TOP64), -1);
	ck_assert_int_eq(ecam_write(&w, a, PCI_BASE_ADDRESS_1, 4, 0xf), 0);
	ck_assert_int_eq(probe(w.mmio, TOP64), 7);
	ck_assert_int_eq(w.nmoves, 4);

	/* Preset at the top by a VMM acting as firmware: placed at add (the
	 * root's own sizing leaves nothing "being sized" behind). */
	ck_assert_int_eq(vdev_pci_root_remove(w.root, a), 0);
	w.nmoves = 0;
	g = ffn_new(8, 0);
	add_top_bars(g->cfg);
	ck_assert_int_eq(vdev_pci_cfg_write(g->cfg, REG_BAR(0), 0,
					    (uint8_t[]){ 0x0c, 0xc0, 0xff, 0xff }, 4),
			 0);
	ck_assert_int_eq(vdev_pci_cfg_write(g->cfg, REG_BAR(1), 0, (uint8_t[]){ 0xf, 0, 0, 0 }, 4),
			 0);
	ck_assert_int_eq(vdev_pci_cfg_write(g->cfg, REG_BAR(2), 0, (uint8_t[]){ 0, 0, 0, 0x80 }, 4),
			 0);
	ck_assert_int_eq(vdev_pci_cfg_write(g->cfg, REG_CMD, 0, (uint8_t[]){ PCI_COMMAND_MEMORY },
					    1),
			 0);
	ck_assert_int_eq(vdev_pci_root_add(w.root, a, &ops, g), 0);
	ck_assert_int_eq(w.nmoves, 2);
	check_move(&w, 0, 0, 0, TOP64);
	check_move(&w, 1, 2, 0, TOP32);
	ck_assert_int_eq(vdev_pci_cfg_bar(g->cfg, 0, &addr, NULL, NULL), 0);
	ck_assert_uint_eq(addr, TOP64);
	/* A later write recomputes the placement: still there. */
	ck_assert_int_eq(cf8_write(&w, a, PCI_COMMAND, 2, PCI_COMMAND_MEMORY), 0);
	ck_assert_int_eq(w.nmoves, 2);
	ck_assert_int_eq(probe(w.mmio, TOP64), 8);
	ck_assert_int_eq(probe(w.mmio, TOP32), 8);
	world_fini(&w);
	ffn_free(f);
	ffn_free(g);
}
END_TEST

/* A function that is not a vdev_pci_cfg: a type 0 header with one 2 GiB
 * 32-bit BAR, its registers plain words. */
struct rawfn {
	uint32_t regs[16];
};

static uint32_t raw_cfg_read(void *opaque, uint32_t reg)
{
	struct rawfn *r = opaque;

	return reg < 16 ? r->regs[reg] : 0;
}

static int raw_cfg_write(void *opaque, uint32_t reg, uint32_t offset, const void *data,
			 uint32_t size)
{
	static const uint32_t wmask[16] = { [REG_CMD] = PCI_COMMAND_MEMORY,
					    [REG_BAR(0)] = 0x80000000u };
	struct rawfn *r = opaque;
	uint8_t b[4];

	if (reg >= 16)
		return 0;
	put32(b, r->regs[reg]);
	memcpy(b + offset, data, size);
	r->regs[reg] = (r->regs[reg] & ~wmask[reg]) | (get32(b) & wmask[reg]);
	return 0;
}

static int raw_read(void *opaque, const struct vdev_bus_access *a, void *data)
{
	(void)opaque;
	memset(data, 0x33, a->size);
	return 0;
}

START_TEST(test_bar_top_any_function)
{
	struct vdev_bus_device_ops ops = VDEV_BUS_DEVICE_OPS_INIT;
	uint32_t a = VDEV_PCI_ADDR(0, 6, 0);
	struct rawfn r = { .regs = { 0x56781234u } };
	struct world w;

	ops.read = raw_read;
	ops.write = vmm_write;
	ops.config_register_read = raw_cfg_read;
	ops.config_register_write = raw_cfg_write;
	world_init_layout(&w, NUM_BUSES, &top_layout);
	ck_assert_int_eq(vdev_pci_root_add(w.root, a, &ops, &r), 0);
	ck_assert_uint_eq(r.regs[REG_BAR(0)], 0);
	ck_assert_int_eq(cf8_write(&w, a, PCI_BASE_ADDRESS_0, 4, 0x80000000), 0);
	ck_assert_int_eq(cf8_write(&w, a, PCI_COMMAND, 2, PCI_COMMAND_MEMORY), 0);
	check_move(&w, 0, 0, 0, TOP32);
	ck_assert_int_eq(probe(w.mmio, TOP32), 0x33333333);
	ck_assert_int_eq(ecam_write(&w, a, PCI_BASE_ADDRESS_0, 4, 0xffffffff), 0);
	ck_assert_int_eq(probe(w.mmio, TOP32), -1);
	ck_assert_int_eq(ecam_write(&w, a, PCI_BASE_ADDRESS_0, 4, 0x80000000), 0);
	ck_assert_int_eq(probe(w.mmio, TOP32), 0x33333333);
	ck_assert_int_eq(w.nmoves, 3);
	world_fini(&w);
}
END_TEST

static int done_calls;
static uint32_t done_addr;

static void on_done(void *opaque, uint32_t addr)
{
	ck_assert_ptr_eq(opaque, &done_calls);
	done_calls++;
	done_addr = addr;
}

START_TEST(test_deferred_removal)
{
	uint32_t a = VDEV_PCI_ADDR(0, 4, 0), port = VDEV_PCI_ADDR(0, 1, 0);
	struct world w;
	struct ffn *p, *f, *g;

	world_init(&w, NUM_BUSES);
	p = add(&w, port, 1, 0);
	f = add_barred(&w, a, 7);
	ck_assert_int_eq(cfg_write(&w, a, PCI_BASE_ADDRESS_0, 4, 0xc0001000), 0);
	ck_assert_int_eq(cfg_write(&w, a, PCI_COMMAND, 2, PCI_COMMAND_MEMORY), 0);
	ck_assert_int_eq(probe(w.mmio, 0xc0001000), 7);

	/* The "port" removes the function from inside its config write. */
	p->root = w.root;
	p->remove_target = a;
	w.nmoves = 0;
	ck_assert_int_eq(cf8_write(&w, port, PCI_INTERRUPT_LINE, 1, 5), 0);
	ck_assert_int_eq(p->remove_ret, 0);
	/* Done by the time the config write returned. */
	ck_assert_ptr_null(vdev_pci_root_find(w.root, a));
	ck_assert_int_eq(f->destroyed, 1);
	ck_assert_int_eq(w.nmoves, 1);
	ck_assert_uint_eq(w.moves[0].new_base, 0);
	ck_assert_int_eq(probe(w.mmio, 0xc0001000), -1);
	ck_assert_uint_eq(vdev_pci_cfg_read(p->cfg, PCI_INTERRUPT_LINE / 4) & 0xff, 5);
	/* Again: nothing there any more. */
	ck_assert_int_eq(cf8_write(&w, port, PCI_INTERRUPT_LINE, 1, 6), 0);
	ck_assert_int_eq(p->remove_ret, -ENOENT);

	/* Outside a config cycle: at once, then done. */
	g = add(&w, a, 9, 0);
	ck_assert_int_eq(vdi_pci_root_remove_deferred(w.root, a, on_done, &done_calls), 0);
	ck_assert_int_eq(done_calls, 1);
	ck_assert_uint_eq(done_addr, a);
	ck_assert_int_eq(g->destroyed, 1);
	ck_assert_int_eq(vdi_pci_root_remove_deferred(w.root, a, on_done, &done_calls), -ENOENT);
	ck_assert_int_eq(vdi_pci_root_remove_deferred(w.root, 0x10000, on_done, &done_calls),
			 -EINVAL);
	ck_assert_int_eq(vdi_pci_root_remove_deferred(NULL, a, on_done, &done_calls), -EINVAL);
	ck_assert_int_eq(done_calls, 1);

	/* A function removing itself from its own config write. */
	p->remove_target = port;
	ck_assert_int_eq(cfg_write(&w, port, PCI_INTERRUPT_LINE, 1, 7), 0);
	ck_assert_int_eq(p->remove_ret, 0);
	ck_assert_int_eq(p->destroyed, 1);
	ck_assert_ptr_null(vdev_pci_root_find(w.root, port));

	world_fini(&w);
	ffn_free(p);
	ffn_free(f);
	ffn_free(g);
}
END_TEST

START_TEST(test_hostile_accesses)
{
	uint32_t a = VDEV_PCI_ADDR(0, 4, 0);
	uint8_t b[8];
	struct world w;
	struct ffn *f;
	uint32_t ext = 0xcafef00d;
	uint64_t x = 0x123456789abcdef0ull;

	world_init(&w, NUM_BUSES);
	f = add(&w, a, 7, 0);
	ck_assert_int_eq(vdev_pci_cfg_poke(f->cfg, 0x100 + 4 * 3, &ext, 4), 0);

	/* CF8 is a plain 32-bit latch: whatever is written reads back. */
	srand(1);
	for (int i = 0; i < 1000; i++) {
		uint32_t v = (uint32_t)rand() ^ (uint32_t)rand() << 16;

		put32(b, v);
		ck_assert_int_eq(vdev_bus_write(w.pio, 0xcf8, 4, 0, b), 0);
		memset(b, 0, 4);
		ck_assert_int_eq(vdev_bus_read(w.pio, 0xcf8, 4, 0, b), 0);
		ck_assert_uint_eq(get32(b), v);
		/* And a cycle with it never crashes; absent, disabled or beyond
		 * the buses reads all ones. */
		ck_assert_int_ge(vdev_bus_read(w.pio, 0xcfc + (v & 3), 1, 0, b), 0);
		if (!(v & 0x80000000u) || (v >> 16 & 0xff) >= NUM_BUSES)
			ck_assert_uint_eq(b[0], 0xff);
		ck_assert_int_ge(vdev_bus_write(w.pio, 0xcfc, 4, 0, b), 0);
	}
	/* Enable off: all ones, writes dropped. */
	put32(b, cf8_value(a, 0) & ~0x80000000u);
	ck_assert_int_eq(vdev_bus_write(w.pio, 0xcf8, 4, 0, b), 0);
	ck_assert_int_eq(vdev_bus_read(w.pio, 0xcfc, 4, 0, b), 0);
	ck_assert_uint_eq(get32(b), 0xffffffffu);
	ck_assert_int_eq(cf8_write(&w, a, PCI_INTERRUPT_LINE, 1, 3), 0);
	put32(b, cf8_value(a, PCI_INTERRUPT_LINE / 4) & ~0x80000000u);
	ck_assert_int_eq(vdev_bus_write(w.pio, 0xcf8, 4, 0, b), 0);
	ck_assert_int_eq(vdev_bus_write(w.pio, 0xcfc, 1, 0, (uint8_t[]){ 9 }), 0);
	ck_assert_uint_eq(vdev_pci_cfg_read(f->cfg, PCI_INTERRUPT_LINE / 4) & 0xff, 3);
	/* Sizes and offsets on the ports. */
	for (uint32_t off = 0; off < 4; off++)
		for (uint32_t size = 1; size <= 2; size *= 2) {
			memset(b, 0, 8);
			ck_assert_int_eq(vdev_bus_read(w.pio, 0xcf8 + off, size, 0, b), -EINVAL);
			ck_assert_uint_eq(b[0], 0xff);
			ck_assert_int_eq(vdev_bus_write(w.pio, 0xcf8 + off, size, 0, b), -EINVAL);
		}
	ck_assert_int_eq(vdev_bus_read(w.pio, 0xcf9, 4, 0, b), -EINVAL);
	put32(b, cf8_value(a, 0));
	ck_assert_int_eq(vdev_bus_write(w.pio, 0xcf8, 4, 0, b), 0);
	memset(b, 0, 8);
	ck_assert_int_eq(vdev_bus_read(w.pio, 0xcfd, 4, 0, b), -EINVAL);
	ck_assert_uint_eq(get32(b), 0xffffffffu);
	ck_assert_int_eq(vdev_bus_read(w.pio, 0xcfb, 2, 0, b), -EINVAL);
	ck_assert_int_eq(vdev_bus_read(w.pio, 0xcf8, 8, 0, b), -EINVAL);
	ck_assert_int_eq(vdev_bus_read(w.pio, 0xcfc, 8, 0, b), -EINVAL); /* the bus: past the end */
	ck_assert_int_eq(vdev_bus_read(w.pio, 0xcfe, 2, 0, b), 0);
	ck_assert_uint_eq(b[0] | b[1] << 8, 0x0007);
	ck_assert_int_eq(vdev_bus_read(w.pio, 0xcff, 1, 0, b), 0);
	ck_assert_uint_eq(b[0], 0x00);
	/* CF8 bits 27:24 reach the extended space. */
	ck_assert_uint_eq(cf8_read(&w, a, 0x100 + 4 * 3, 4), 0xcafef00du);
	ck_assert_uint_eq(ecam_read(&w, a, 0x100 + 4 * 3, 4), 0xcafef00du);
	ck_assert_uint_eq(ecam_read(&w, a, 0xffc, 4), 0);

	/* ECAM: 8 bytes, crossing a dword. */
	memset(b, 0, 8);
	ck_assert_int_eq(vdev_bus_read(w.mmio, ECAM_BASE + ecam_off(a, 0), 8, 0, b), -EINVAL);
	ck_assert_uint_eq(get32(b), 0xffffffffu);
	ck_assert_int_eq(vdev_bus_write(w.mmio, ECAM_BASE + ecam_off(a, 0), 8, 0, &x), -EINVAL);
	ck_assert_int_eq(vdev_bus_read(w.mmio, ECAM_BASE + ecam_off(a, 1), 4, 0, b), -EINVAL);
	ck_assert_int_eq(vdev_bus_read(w.mmio, ECAM_BASE + ecam_off(a, 3), 2, 0, b), -EINVAL);
	ck_assert_int_eq(vdev_bus_write(w.mmio, ECAM_BASE + ecam_off(a, 0x3e), 4, 0, b), -EINVAL);
	ck_assert_int_eq(vdev_bus_read(w.mmio, ECAM_BASE + ecam_off(a, 2), 2, 0, b), 0);
	ck_assert_uint_eq(b[0] | b[1] << 8, 7);
	/* The last byte of the window: the last function of the last bus. */
	ck_assert_int_eq(vdev_bus_read(w.mmio, ECAM_BASE + NUM_BUSES * VDEV_PCI_ECAM_BUS_SIZE - 1,
				       1, 0, b),
			 0);
	ck_assert_uint_eq(b[0], 0xff);
	ck_assert_uint_eq(cfg_read(&w, a, 0), 0x00071af4u);

	/* The root's API: bad reg, offset, size, address. */
	ck_assert_int_eq(vdev_pci_root_config_read(w.root, a, 1024, 0, 4, b), -EINVAL);
	ck_assert_uint_eq(get32(b), 0xffffffffu);
	ck_assert_int_eq(vdev_pci_root_config_read(w.root, a, 0, 1, 4, b), -EINVAL);
	ck_assert_int_eq(vdev_pci_root_config_read(w.root, a, 0, 0, 3, b), -EINVAL);
	ck_assert_int_eq(vdev_pci_root_config_read(w.root, a, 0, 4, 1, b), -EINVAL);
	ck_assert_int_eq(vdev_pci_root_config_read(w.root, a, 0, 0, 8, b), -EINVAL);
	ck_assert_int_eq(vdev_pci_root_config_read(w.root, a, 0, 0, 4, NULL), -EINVAL);
	ck_assert_int_eq(vdev_pci_root_config_read(NULL, a, 0, 0, 4, b), -EINVAL);
	ck_assert_int_eq(vdev_pci_root_config_read(w.root, VDEV_PCI_ADDR(NUM_BUSES, 0, 0), 0, 0,
						   4, b),
			 -EINVAL);
	ck_assert_int_eq(vdev_pci_root_config_write(w.root, a, 1024, 0, 4, b), -EINVAL);
	ck_assert_int_eq(vdev_pci_root_config_write(w.root, a, 0, 2, 4, b), -EINVAL);
	ck_assert_int_eq(vdev_pci_root_config_write(w.root, a, 0, 0, 0, b), -EINVAL);
	ck_assert_int_eq(vdev_pci_root_config_write(w.root, a, 0, 0, 4, NULL), -EINVAL);
	ck_assert_int_eq(vdev_pci_root_config_write(w.root, 0x10000, 0, 0, 4, b), -EINVAL);
	/* Absent functions. */
	ck_assert_int_eq(vdev_pci_root_config_read(w.root, VDEV_PCI_ADDR(0, 5, 0), 0, 0, 4, b),
			 -ENOENT);
	ck_assert_uint_eq(get32(b), 0xffffffffu);
	ck_assert_int_eq(vdev_pci_root_config_write(w.root, VDEV_PCI_ADDR(0, 5, 0), 0, 0, 4, b),
			 -ENOENT);
	world_fini(&w);
	ffn_free(f);
}
END_TEST

START_TEST(test_bus_limits_and_config)
{
	struct vdev_pci_root_config k = VDEV_PCI_ROOT_CONFIG_INIT;
	vdev_pci_root *root = (vdev_pci_root *)&k;
	struct vdev_bus_device_ops ops = f_ops(0);
	struct world w;
	struct ffn *f, *e, *g;

	/* 256 buses: the last function of the last bus, through a bridge. */
	world_init(&w, 256);
	f = add(&w, VDEV_PCI_ADDR(0, 2, 0), 1, 1);
	e = add(&w, VDEV_PCI_ADDR(255, 31, 7), 2, 0);
	ck_assert_uint_eq(ecam_read(&w, VDEV_PCI_ADDR(255, 31, 7), 0, 4), 0xffffffffu);
	ck_assert_int_eq(cfg_write(&w, VDEV_PCI_ADDR(0, 2, 0), PCI_SECONDARY_BUS, 1, 255), 0);
	ck_assert_uint_eq(ecam_read(&w, VDEV_PCI_ADDR(255, 31, 7), PCI_DEVICE_ID, 2), 2);
	ck_assert_uint_eq(cf8_read(&w, VDEV_PCI_ADDR(255, 31, 7), PCI_DEVICE_ID, 2), 2);
	ck_assert_uint_eq(ecam_read(&w, VDEV_PCI_ADDR(255, 31, 7), 0xffc, 4), 0);
	world_fini(&w);
	ffn_free(e);
	ffn_free(f);

	/* Bad configurations. */
	ck_assert_int_eq(vdev_bus_new(VDEV_BUS_MMIO, &k.mmio_bus), 0);
	k.num_buses = 0;
	ck_assert_int_eq(vdev_pci_root_new(&k, &root), -EINVAL);
	k.num_buses = 257;
	ck_assert_int_eq(vdev_pci_root_new(&k, &root), -EINVAL);
	k.num_buses = 1;
	k.mmio32_base = UINT64_MAX - 0xfff;
	k.mmio32_size = 0x2000;
	ck_assert_int_eq(vdev_pci_root_new(&k, &root), -EINVAL);
	k.mmio32_size = 0;
	k.io_base = 2;
	k.io_size = UINT64_MAX;
	ck_assert_int_eq(vdev_pci_root_new(&k, &root), -EINVAL);
	k.io_size = 0;
	ck_assert_int_eq(vdev_pci_root_new(NULL, &root), -EINVAL);
	ck_assert_int_eq(vdev_pci_root_new(&k, NULL), -EINVAL);
	{
		vdev_bus *mb = k.mmio_bus;

		k.mmio_bus = NULL;
		ck_assert_int_eq(vdev_pci_root_new(&k, &root), -EINVAL);
		k.mmio_bus = mb;
	}
	k.struct_size = 0;
	ck_assert_int_eq(vdev_pci_root_new(&k, &root), -EINVAL);
	k.struct_size = sizeof(k);
	ck_assert_ptr_eq(root, (vdev_pci_root *)&k);

	/* One bus, no pio bus, no ops, a window that is not aligned to the
	 * BAR: a BAR straddling either edge is refused. */
	k.mmio32_base = 0xc0000800;
	k.mmio32_size = 0x1000;
	ck_assert_int_eq(vdev_pci_root_new(&k, &root), 0);
	g = ffn_new(3, 0);
	ck_assert_int_eq(vdev_pci_cfg_add_bar(g->cfg, 0, 64, VDEV_PCI_BAR_IO), 0);
	ck_assert_int_eq(vdev_pci_cfg_add_bar(g->cfg, 1, 0x1000, VDEV_PCI_BAR_MEM32), 0);
	ck_assert_int_eq(vdev_pci_cfg_add_bar(g->cfg, 2, 0x100, VDEV_PCI_BAR_MEM32), 0);
	ck_assert_int_eq(vdev_pci_root_add(root, 0, &ops, g), 0);
	/* An I/O BAR with no pio bus never decodes. */
	ck_assert_int_eq(vdev_pci_root_config_write(root, 0, REG_BAR(0), 0, 4,
						    (uint8_t[]){ 0, 0x10, 0, 0 }),
			 0);
	ck_assert_int_eq(vdev_pci_root_config_write(root, 0, REG_CMD, 0, 1,
						    (uint8_t[]){ PCI_COMMAND_IO }),
			 0);
	ck_assert_int_eq(vdev_pci_root_config_write(root, 0, REG_BAR(1), 0, 4,
						    (uint8_t[]){ 0, 0x10, 0, 0xc0 }),
			 0);
	ck_assert_int_eq(vdev_pci_root_config_write(root, 0, REG_CMD, 0, 1,
						    (uint8_t[]){ PCI_COMMAND_MEMORY }),
			 -EBUSY);
	ck_assert_int_eq(vdev_pci_root_config_write(root, 0, REG_BAR(1), 0, 4,
						    (uint8_t[]){ 0, 0x00, 0, 0xc0 }),
			 0);
	ck_assert_int_eq(vdev_pci_root_config_write(root, 0, REG_CMD, 0, 1,
						    (uint8_t[]){ PCI_COMMAND_MEMORY }),
			 -EBUSY);
	ck_assert_uint_eq(vdev_bus_num_ranges(k.mmio_bus), 0);
	/* BAR1 back to 0 (unassigned): BAR2 fits at the window's start and
	 * end. */
	ck_assert_int_eq(vdev_pci_root_config_write(root, 0, REG_BAR(1), 0, 4,
						    (uint8_t[]){ 0, 0, 0, 0 }),
			 0);
	ck_assert_int_eq(vdev_pci_root_config_write(root, 0, REG_BAR(2), 0, 4,
						    (uint8_t[]){ 0, 0x08, 0, 0xc0 }),
			 0);
	ck_assert_int_eq(vdev_pci_root_config_write(root, 0, REG_CMD, 0, 1,
						    (uint8_t[]){ PCI_COMMAND_MEMORY }),
			 0);
	ck_assert_uint_eq(vdev_bus_num_ranges(k.mmio_bus), 1);
	ck_assert_int_eq(vdev_pci_root_config_write(root, 0, REG_BAR(2), 0, 4,
						    (uint8_t[]){ 0, 0x17, 0, 0xc0 }),
			 0);
	ck_assert_int_eq(vdev_pci_root_config_write(root, 0, REG_BAR(2), 0, 4,
						    (uint8_t[]){ 0, 0x18, 0, 0xc0 }),
			 -EBUSY);
	ck_assert_int_eq(probe(k.mmio_bus, 0xc00017fc), 3);
	/* Bus 1 does not exist on this root. */
	ck_assert_int_eq(vdev_pci_root_add(root, VDEV_PCI_ADDR(1, 0, 0), &ops, g), -EINVAL);
	vdev_pci_root_free(root);
	ck_assert_int_eq(g->destroyed, 1);
	ck_assert_uint_eq(vdev_bus_num_ranges(k.mmio_bus), 0);
	ffn_free(g);
	vdev_bus_free(k.mmio_bus);
	vdev_pci_root_free(NULL);
}
END_TEST

START_TEST(test_reentry_refused)
{
	uint32_t a = VDEV_PCI_ADDR(0, 4, 0);
	struct world w;
	struct ffn *f;

	world_init(&w, NUM_BUSES);
	f = add_barred(&w, a, 7);
	ck_assert_int_eq(cfg_write(&w, a, PCI_BASE_ADDRESS_0, 4, 0xc0001000), 0);
	w.reenter = 1;
	w.reenter_ret = 1;
	ck_assert_int_eq(cfg_write(&w, a, PCI_COMMAND, 2, PCI_COMMAND_MEMORY), 0);
	ck_assert_int_eq(w.reenter_ret, -EDEADLK);
	w.reenter = 0;
	world_fini(&w);
	ffn_free(f);
}
END_TEST

struct remover {
	vdev_pci_root *root;
	uint32_t addr;
	int ret;
};

static void *remove_thread(void *arg)
{
	struct remover *r = arg;

	r->ret = vdev_pci_root_remove(r->root, r->addr);
	return NULL;
}

static void *bar_read_thread(void *arg)
{
	struct world *w = arg;

	probe(w->mmio, 0xc0001000);
	return NULL;
}

/* A BAR callback doing a config cycle while its BAR is being removed: the
 * cycle gives up after the timeout instead of deadlocking. */
START_TEST(test_no_deadlock_from_bar_callback)
{
	uint32_t a = VDEV_PCI_ADDR(0, 4, 0);
	struct remover rm;
	pthread_t t1, t2;
	struct world w;
	struct ffn *f;

	world_init(&w, NUM_BUSES);
	f = add_barred(&w, a, 7);
	f->root = w.root;
	f->remove_target = VDEV_PCI_ADDR_NONE;
	ck_assert_int_eq(cfg_write(&w, a, PCI_BASE_ADDRESS_0, 4, 0xc0001000), 0);
	ck_assert_int_eq(cfg_write(&w, a, PCI_COMMAND, 2, PCI_COMMAND_MEMORY), 0);
	f->block = 1;
	ck_assert_int_eq(pthread_create(&t1, NULL, bar_read_thread, &w), 0);
	sem_wait(&f->entered);
	rm.root = w.root;
	rm.addr = a;
	rm.ret = 1;
	ck_assert_int_eq(pthread_create(&t2, NULL, remove_thread, &rm), 0);
	usleep(500 * 1000); /* let the remover take the lock and wait */
	sem_post(&f->go);
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	ck_assert_int_eq(f->cycle_ret, -ETIMEDOUT);
	ck_assert_int_eq(rm.ret, 0);
	ck_assert_int_eq(ld(&f->destroyed), 1);
	world_fini(&w);
	ffn_free(f);
}
END_TEST

/* ---- concurrency smoke ---- */

struct smoke {
	struct world *w;
	uint32_t addr;
	int stop; /* atomic */
	int bad;  /* atomic */
	int ops;  /* atomic */
};

static void *smoke_cycles(void *arg)
{
	struct smoke *s = arg;

	while (!__atomic_load_n(&s->stop, __ATOMIC_SEQ_CST)) {
		uint8_t b[4];

		/* ECAM (CF8 is one latch shared by every thread). */
		if (vdev_bus_read(s->w->mmio, ECAM_BASE + ecam_off(s->addr, 0), 4, 0, b) != 0 ||
		    get32(b) != 0x00071af4u)
			__atomic_add_fetch(&s->bad, 1, __ATOMIC_SEQ_CST);
		vdev_bus_read(s->w->mmio, ECAM_BASE + ecam_off(VDEV_PCI_ADDR(0, 9, 0), 0), 4, 0, b);
		__atomic_add_fetch(&s->ops, 1, __ATOMIC_SEQ_CST);
	}
	return NULL;
}

static void *smoke_bars(void *arg)
{
	struct smoke *s = arg;

	while (!__atomic_load_n(&s->stop, __ATOMIC_SEQ_CST)) {
		int64_t v1 = probe(s->w->mmio, 0xc0001000), v2 = probe(s->w->mmio, 0xc0002000);

		/* Each address reaches the function or nothing (a move inserts
		 * the new range before the old one leaves). */
		if ((v1 != -1 && v1 != 7) || (v2 != -1 && v2 != 7))
			__atomic_add_fetch(&s->bad, 1, __ATOMIC_SEQ_CST);
		__atomic_add_fetch(&s->ops, 1, __ATOMIC_SEQ_CST);
	}
	return NULL;
}

START_TEST(test_concurrency_smoke)
{
	uint32_t a = VDEV_PCI_ADDR(0, 4, 0);
	struct smoke s = { 0 };
	pthread_t t[3];
	struct world w;
	struct ffn *f;

	world_init(&w, NUM_BUSES);
	f = add_barred(&w, a, 7);
	ck_assert_int_eq(cfg_write(&w, a, PCI_BASE_ADDRESS_0, 4, 0xc0001000), 0);
	ck_assert_int_eq(cfg_write(&w, a, PCI_COMMAND, 2, PCI_COMMAND_MEMORY), 0);
	s.w = &w;
	s.addr = a;
	ck_assert_int_eq(pthread_create(&t[0], NULL, smoke_cycles, &s), 0);
	ck_assert_int_eq(pthread_create(&t[1], NULL, smoke_bars, &s), 0);
	ck_assert_int_eq(pthread_create(&t[2], NULL, smoke_bars, &s), 0);
	for (int i = 0; i < 2000; i++) {
		/* The mover: BAR0 between two addresses, sometimes decode off/on,
		 * sometimes a refused move onto the VMM device. */
		ck_assert_int_eq(ecam_write(&w, a, PCI_BASE_ADDRESS_0, 4,
					    i % 2 ? 0xc0001000 : 0xc0002000),
				 0);
		if (i % 7 == 0) {
			ck_assert_int_eq(ecam_write(&w, a, PCI_BASE_ADDRESS_0, 4, VMM_DEV), -EBUSY);
			ck_assert_int_eq(ecam_write(&w, a, PCI_COMMAND, 2, 0), 0);
			ck_assert_int_eq(ecam_write(&w, a, PCI_COMMAND, 2, PCI_COMMAND_MEMORY), 0);
		}
	}
	/* On a loaded machine the threads may not have run yet: let them. */
	for (int i = 0; i < 5000 && !__atomic_load_n(&s.ops, __ATOMIC_SEQ_CST); i++)
		usleep(1000);
	__atomic_store_n(&s.stop, 1, __ATOMIC_SEQ_CST);
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	ck_assert_int_eq(s.bad, 0);
	ck_assert_int_gt(s.ops, 0);
	ck_assert_int_eq(probe(w.mmio, 0xc0001000), 7);
	ck_assert_int_eq(probe(w.mmio, 0xc0002000), -1);
	ck_assert_int_eq(probe(w.mmio, VMM_DEV), 0x5a5a5a5a);
	world_fini(&w);
	ffn_free(f);
}
END_TEST

static Suite *root_suite(void)
{
	Suite *s = suite_create("pci-root");
	TCase *tc = tcase_create("core");
	TCase *mt = tcase_create("threads");

	tcase_add_test(tc, test_enumerate_cf8_and_ecam);
	tcase_add_test(tc, test_bridges_and_gates);
	tcase_add_test(tc, test_bar_sizing_through_root);
	tcase_add_test(tc, test_bar_relocation);
	tcase_add_test(tc, test_refusals);
	tcase_add_test(tc, test_preset_bars_at_add);
	tcase_add_test(tc, test_bar_top_addresses);
	tcase_add_test(tc, test_bar_top_any_function);
	tcase_add_test(tc, test_deferred_removal);
	tcase_add_test(tc, test_hostile_accesses);
	tcase_add_test(tc, test_bus_limits_and_config);
	tcase_add_test(tc, test_reentry_refused);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);

	tcase_add_test(mt, test_no_deadlock_from_bar_callback);
	tcase_add_test(mt, test_concurrency_smoke);
	tcase_set_timeout(mt, 120);
	suite_add_tcase(s, mt);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(root_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
