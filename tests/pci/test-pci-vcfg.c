/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for vdev_pci_vcfg: VDEV_PCI_VCFG_OFFSET values reach the right
 * function and virtual register (including behind a bridge), the shared
 * page is visible both ways and distinct per function, and hostile accesses
 * (unaligned, wrong sizes, absent functions, missing hooks, past the buses)
 * are refused or read all ones.
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <linux/pci_regs.h>

#include "virtio-dev/pci.h"

#define NUM_BUSES 4u
#define VCFG_BASE 0x200000000ull

struct vfn {
	vdev_pci_cfg *cfg;
	uint32_t id;
	uint32_t regs[VDEV_PCI_CONFIG_DWORDS]; /* what the guest wrote */
	int writes;
	uint32_t last_reg;
};

static uint32_t v_cfg_read(void *opaque, uint32_t reg)
{
	struct vfn *f = opaque;

	return vdev_pci_cfg_read(f->cfg, reg);
}

static int v_cfg_write(void *opaque, uint32_t reg, uint32_t offset, const void *data,
		       uint32_t size)
{
	struct vfn *f = opaque;

	return vdev_pci_cfg_write(f->cfg, reg, offset, data, size);
}

static uint32_t v_virt_read(void *opaque, uint32_t reg)
{
	struct vfn *f = opaque;

	ck_assert_uint_lt(reg, VDEV_PCI_CONFIG_DWORDS);
	return f->id << 16 | reg;
}

static void v_virt_write(void *opaque, uint32_t reg, uint32_t value)
{
	struct vfn *f = opaque;

	ck_assert_uint_lt(reg, VDEV_PCI_CONFIG_DWORDS);
	f->regs[reg] = value;
	f->last_reg = reg;
	f->writes++;
}

static int v_bar(void *opaque, const struct vdev_bus_access *a, void *data)
{
	(void)opaque;
	(void)a;
	(void)data;
	return -EIO;
}

static int v_bar_w(void *opaque, const struct vdev_bus_access *a, const void *data)
{
	(void)opaque;
	(void)a;
	(void)data;
	return -EIO;
}

static int32_t v_is_bridge(void *opaque)
{
	struct vfn *f = opaque;

	return (int32_t)((vdev_pci_cfg_read(f->cfg, PCI_PRIMARY_BUS / 4) >> 8) & 0xff);
}

struct world {
	vdev_bus *mmio;
	vdev_pci_root *root;
	vdev_pci_vcfg *vcfg;
	struct vfn *fns[8];
	int nfns;
};

static struct vfn *add(struct world *w, uint32_t addr, uint32_t id, int bridge)
{
	struct vdev_pci_cfg_config k = VDEV_PCI_CFG_CONFIG_INIT;
	struct vdev_bus_device_ops ops = VDEV_BUS_DEVICE_OPS_INIT;
	struct vfn *f = calloc(1, sizeof(*f));

	ck_assert_ptr_nonnull(f);
	k.header_type = bridge ? 1 : 0;
	k.vendor_id = 0x1af4;
	k.device_id = (uint16_t)id;
	ck_assert_int_eq(vdev_pci_cfg_new(&k, &f->cfg), 0);
	f->id = id;
	ops.read = v_bar;
	ops.write = v_bar_w;
	ops.config_register_read = v_cfg_read;
	ops.config_register_write = v_cfg_write;
	ops.virtual_config_register_read = v_virt_read;
	ops.virtual_config_register_write = v_virt_write;
	if (bridge)
		ops.is_bridge = v_is_bridge;
	ck_assert_int_eq(vdev_pci_root_add(w->root, addr, &ops, f), 0);
	w->fns[w->nfns++] = f;
	return f;
}

static void world_init(struct world *w)
{
	struct vdev_pci_root_config rk = VDEV_PCI_ROOT_CONFIG_INIT;
	struct vdev_pci_vcfg_config vk = VDEV_PCI_VCFG_CONFIG_INIT;

	memset(w, 0, sizeof(*w));
	ck_assert_int_eq(vdev_bus_new(VDEV_BUS_MMIO, &w->mmio), 0);
	rk.num_buses = NUM_BUSES;
	rk.mmio_bus = w->mmio;
	ck_assert_int_eq(vdev_pci_root_new(&rk, &w->root), 0);
	vk.num_buses = NUM_BUSES;
	vk.root = w->root;
	ck_assert_int_eq(vdev_pci_vcfg_new(&vk, &w->vcfg), 0);
	ck_assert_int_eq(vdev_bus_insert(w->mmio, VCFG_BASE, NUM_BUSES * VDEV_PCI_VCFG_BUS_SIZE,
					 vdev_pci_vcfg_bus_ops(), w->vcfg),
			 0);
}

static void world_fini(struct world *w)
{
	ck_assert_int_eq(vdev_bus_remove(w->mmio, VCFG_BASE), 0);
	vdev_pci_vcfg_free(w->vcfg);
	vdev_pci_root_free(w->root);
	vdev_bus_free(w->mmio);
	for (int i = 0; i < w->nfns; i++) {
		vdev_pci_cfg_free(w->fns[i]->cfg);
		free(w->fns[i]);
	}
}

static uint32_t get32(const uint8_t *b)
{
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static uint32_t vread(struct world *w, uint64_t off)
{
	uint8_t b[4] = { 0 };

	ck_assert_int_eq(vdev_bus_read(w->mmio, VCFG_BASE + off, 4, 0, b), 0);
	return get32(b);
}

static void vwrite(struct world *w, uint64_t off, uint32_t v)
{
	uint8_t b[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };

	ck_assert_int_eq(vdev_bus_write(w->mmio, VCFG_BASE + off, 4, 0, b), 0);
}

START_TEST(test_offset_macro)
{
	ck_assert_uint_eq(VDEV_PCI_VCFG_OFFSET(0, 0, 0, 0, 0), 0);
	ck_assert_uint_eq(VDEV_PCI_VCFG_OFFSET(0, 0, 0, 0, 1), 4);
	ck_assert_uint_eq(VDEV_PCI_VCFG_OFFSET(0, 0, 0, 1, 0), 0x1000);
	ck_assert_uint_eq(VDEV_PCI_VCFG_OFFSET(0, 0, 1, 0, 0), VDEV_PCI_VCFG_FN_SIZE);
	ck_assert_uint_eq(VDEV_PCI_VCFG_OFFSET(0, 1, 0, 0, 0), 8 * VDEV_PCI_VCFG_FN_SIZE);
	ck_assert_uint_eq(VDEV_PCI_VCFG_OFFSET(1, 0, 0, 0, 0), VDEV_PCI_VCFG_BUS_SIZE);
	ck_assert_uint_eq(VDEV_PCI_VCFG_OFFSET(255, 31, 7, 1, 1023),
			  256ull * VDEV_PCI_VCFG_BUS_SIZE - 4);
}
END_TEST

START_TEST(test_trapped_page_routing)
{
	static const uint32_t regs[] = { 0, 1, 2, 63, 64, 511, 1022, 1023 };
	static const uint32_t addrs[] = { VDEV_PCI_ADDR(0, 0, 0), VDEV_PCI_ADDR(0, 3, 2),
					  VDEV_PCI_ADDR(0, 31, 7) };
	struct world w;
	struct vfn *f[4], *br;

	world_init(&w);
	for (uint32_t i = 0; i < 3; i++)
		f[i] = add(&w, addrs[i], i + 1, 0);
	f[3] = add(&w, VDEV_PCI_ADDR(1, 17, 5), 4, 0);
	br = add(&w, VDEV_PCI_ADDR(0, 1, 0), 5, 1);

	for (int i = 0; i < 3; i++) {
		uint32_t a = addrs[i];

		for (size_t j = 0; j < sizeof(regs) / sizeof(regs[0]); j++) {
			uint64_t off = VDEV_PCI_VCFG_OFFSET(VDEV_PCI_ADDR_BUS(a),
							    VDEV_PCI_ADDR_DEV(a),
							    VDEV_PCI_ADDR_FN(a), 0, regs[j]);

			ck_assert_uint_eq(vread(&w, off), f[i]->id << 16 | regs[j]);
			vwrite(&w, off, 0xa5000000u | f[i]->id << 16 | regs[j]);
			ck_assert_uint_eq(f[i]->last_reg, regs[j]);
			ck_assert_uint_eq(f[i]->regs[regs[j]], 0xa5000000u | f[i]->id << 16 | regs[j]);
		}
		ck_assert_int_eq(f[i]->writes, 8);
	}
	/* Bus 1 only through the bridge, as config cycles. */
	ck_assert_uint_eq(vread(&w, VDEV_PCI_VCFG_OFFSET(1, 17, 5, 0, 9)), 0xffffffffu);
	vwrite(&w, VDEV_PCI_VCFG_OFFSET(1, 17, 5, 0, 9), 1);
	ck_assert_int_eq(f[3]->writes, 0);
	ck_assert_int_eq(vdev_pci_root_config_write(w.root, VDEV_PCI_ADDR(0, 1, 0),
						    PCI_PRIMARY_BUS / 4, 1, 1, (uint8_t[]){ 1 }),
			 0);
	ck_assert_uint_eq(vread(&w, VDEV_PCI_VCFG_OFFSET(1, 17, 5, 0, 9)), 4u << 16 | 9);
	vwrite(&w, VDEV_PCI_VCFG_OFFSET(1, 17, 5, 0, 9), 77);
	ck_assert_uint_eq(f[3]->regs[9], 77);
	ck_assert_int_eq(br->writes, 0);
	/* Neighbours were not touched. */
	ck_assert_uint_eq(vread(&w, VDEV_PCI_VCFG_OFFSET(0, 3, 1, 0, 0)), 0xffffffffu);
	ck_assert_uint_eq(vread(&w, VDEV_PCI_VCFG_OFFSET(0, 3, 3, 0, 0)), 0xffffffffu);
	ck_assert_uint_eq(vread(&w, VDEV_PCI_VCFG_OFFSET(3, 31, 7, 0, 1023)), 0xffffffffu);
	world_fini(&w);
}
END_TEST

START_TEST(test_shared_page)
{
	uint8_t *p0 = NULL, *p1 = NULL, *again = NULL, *p2 = NULL;
	uint8_t b[8];
	uint64_t x = 0x0123456789abcdefull, y;
	struct world w;

	world_init(&w);
	add(&w, VDEV_PCI_ADDR(0, 2, 0), 1, 0);
	ck_assert_int_eq(vdev_pci_vcfg_shared_page(w.vcfg, VDEV_PCI_ADDR(0, 2, 0), (void **)&p0), 0);
	ck_assert_int_eq(vdev_pci_vcfg_shared_page(w.vcfg, VDEV_PCI_ADDR(0, 2, 1), (void **)&p1), 0);
	ck_assert_int_eq(vdev_pci_vcfg_shared_page(w.vcfg, VDEV_PCI_ADDR(0, 2, 0),
						   (void **)&again),
			 0);
	/* No function needed at the address: the page belongs to it. */
	ck_assert_int_eq(vdev_pci_vcfg_shared_page(w.vcfg, VDEV_PCI_ADDR(3, 31, 7), (void **)&p2),
			 0);
	ck_assert_ptr_eq(p0, again);
	ck_assert_ptr_ne(p0, p1);
	ck_assert_ptr_ne(p1, p2);
	ck_assert_uint_eq((uintptr_t)p0 % 4096, 0);
	ck_assert_uint_eq((uintptr_t)p1 % 4096, 0);
	ck_assert_uint_eq((uintptr_t)p2 % 4096, 0);
	for (int i = 0; i < 4096; i++)
		ck_assert_uint_eq(p0[i] | p1[i] | p2[i], 0);

	/* Host -> bus, all sizes, first and last bytes. */
	memcpy(p0 + 0xff8, &x, 8);
	p0[0] = 0x11;
	ck_assert_int_eq(vdev_bus_read(w.mmio, VCFG_BASE + VDEV_PCI_VCFG_OFFSET(0, 2, 0, 1, 0), 1, 0,
				       b),
			 0);
	ck_assert_uint_eq(b[0], 0x11);
	ck_assert_int_eq(vdev_bus_read(w.mmio, VCFG_BASE + VDEV_PCI_VCFG_OFFSET(0, 2, 0, 1, 0) +
						       0xff8,
				       8, 0, &y),
			 0);
	ck_assert_uint_eq(y, x);
	ck_assert_int_eq(vdev_bus_read(w.mmio, VCFG_BASE + VDEV_PCI_VCFG_OFFSET(0, 2, 0, 1, 0) +
						       0xffd,
				       2, 0, b),
			 0);
	ck_assert_uint_eq(b[0] | b[1] << 8, (x >> 40) & 0xffff);
	ck_assert_uint_eq(vread(&w, VDEV_PCI_VCFG_OFFSET(0, 2, 0, 1, 1022)), (uint32_t)x);
	/* Bus -> host, through the function's page only. */
	vwrite(&w, VDEV_PCI_VCFG_OFFSET(0, 2, 1, 1, 5), 0xdeadbeef);
	ck_assert_uint_eq(get32(p1 + 20), 0xdeadbeef);
	ck_assert_uint_eq(get32(p0 + 20), 0);
	ck_assert_int_eq(vdev_bus_write(w.mmio, VCFG_BASE + VDEV_PCI_VCFG_OFFSET(3, 31, 7, 1, 0) +
							0xff7,
					8, 0, &x),
			 0);
	ck_assert_mem_eq(p2 + 0xff7, &x, 8);
	ck_assert_int_eq(vdev_bus_write(w.mmio, VCFG_BASE + VDEV_PCI_VCFG_OFFSET(0, 2, 1, 1, 0) + 3,
					1, 0, (uint8_t[]){ 0x42 }),
			 0);
	ck_assert_uint_eq(p1[3], 0x42);

	/* Crossing out of the page into the next function's trapped page. */
	memset(b, 0, sizeof(b));
	ck_assert_int_eq(vdev_bus_read(w.mmio, VCFG_BASE + VDEV_PCI_VCFG_OFFSET(0, 2, 0, 1, 1023),
				       8, 0, b),
			 -EINVAL);
	ck_assert_uint_eq(get32(b), 0xffffffffu);
	ck_assert_int_eq(vdev_bus_write(w.mmio, VCFG_BASE + VDEV_PCI_VCFG_OFFSET(0, 2, 0, 1, 0) +
							0xffe,
					4, 0, &x),
			 -EINVAL);
	ck_assert_uint_eq(p0[0xffe] | p0[0xfff] << 8, (x >> 48) & 0xffff);

	/* Without a page: all ones, writes dropped, no page created. */
	ck_assert_uint_eq(vread(&w, VDEV_PCI_VCFG_OFFSET(0, 5, 0, 1, 0)), 0xffffffffu);
	vwrite(&w, VDEV_PCI_VCFG_OFFSET(0, 5, 0, 1, 0), 0x12345678);
	ck_assert_uint_eq(vread(&w, VDEV_PCI_VCFG_OFFSET(0, 5, 0, 1, 0)), 0xffffffffu);
	ck_assert_int_eq(vdev_pci_vcfg_shared_page(w.vcfg, VDEV_PCI_ADDR(0, 5, 0), (void **)&p2), 0);
	ck_assert_uint_eq(get32(p2), 0);

	/* Bad arguments. */
	ck_assert_int_eq(vdev_pci_vcfg_shared_page(w.vcfg, VDEV_PCI_ADDR(NUM_BUSES, 0, 0),
						   (void **)&p2),
			 -EINVAL);
	ck_assert_int_eq(vdev_pci_vcfg_shared_page(w.vcfg, 0x10000, (void **)&p2), -EINVAL);
	ck_assert_int_eq(vdev_pci_vcfg_shared_page(w.vcfg, 0, NULL), -EINVAL);
	ck_assert_int_eq(vdev_pci_vcfg_shared_page(NULL, 0, (void **)&p2), -EINVAL);
	world_fini(&w);
}
END_TEST

START_TEST(test_many_pages)
{
	struct world w;
	void *pages[64];

	world_init(&w);
	/* Out of order, to exercise the sorted table. */
	for (uint32_t i = 0; i < 64; i++) {
		uint32_t a = VDEV_PCI_ADDR(i % NUM_BUSES, (i * 7) % 32, i / 32);

		ck_assert_int_eq(vdev_pci_vcfg_shared_page(w.vcfg, a, &pages[i]), 0);
		memset(pages[i], (int)i + 1, 16);
	}
	for (uint32_t i = 0; i < 64; i++) {
		uint32_t a = VDEV_PCI_ADDR(i % NUM_BUSES, (i * 7) % 32, i / 32);
		uint8_t b = 0;
		void *p;

		ck_assert_int_eq(vdev_pci_vcfg_shared_page(w.vcfg, a, &p), 0);
		ck_assert_ptr_eq(p, pages[i]);
		ck_assert_int_eq(vdev_bus_read(w.mmio,
					       VCFG_BASE + VDEV_PCI_VCFG_OFFSET(VDEV_PCI_ADDR_BUS(a),
									       VDEV_PCI_ADDR_DEV(a),
									       VDEV_PCI_ADDR_FN(a),
									       1, 0),
					       1, 0, &b),
				 0);
		ck_assert_uint_eq(b, i + 1);
	}
	world_fini(&w);
}
END_TEST

START_TEST(test_hostile)
{
	struct vdev_bus_device_ops ops = *vdev_pci_cfg_bus_ops();
	struct vdev_pci_vcfg_config vk = VDEV_PCI_VCFG_CONFIG_INIT;
	vdev_pci_vcfg *v = (vdev_pci_vcfg *)&vk;
	vdev_pci_cfg *plain;
	struct vdev_pci_cfg_config k = VDEV_PCI_CFG_CONFIG_INIT;
	uint8_t b[8];
	struct world w;
	struct vfn *f;
	uint64_t base;

	world_init(&w);
	f = add(&w, VDEV_PCI_ADDR(0, 2, 0), 1, 0);
	base = VCFG_BASE + VDEV_PCI_VCFG_OFFSET(0, 2, 0, 0, 8);
	/* The trapped page takes aligned dwords only. */
	for (uint32_t size = 1; size <= 8; size *= 2) {
		for (uint32_t mis = 0; mis < 4; mis++) {
			int r;

			if (size == 4 && mis == 0)
				continue;
			memset(b, 0, sizeof(b));
			r = vdev_bus_read(w.mmio, base + mis, size, 0, b);
			ck_assert_int_eq(r, -EINVAL);
			ck_assert_uint_eq(b[0], 0xff);
			ck_assert_uint_eq(b[size - 1], 0xff);
			ck_assert_int_eq(vdev_bus_write(w.mmio, base + mis, size, 0, b), -EINVAL);
		}
	}
	ck_assert_int_eq(f->writes, 0);
	ck_assert_uint_eq(vread(&w, VDEV_PCI_VCFG_OFFSET(0, 2, 0, 0, 8)), 1u << 16 | 8);

	/* A function without the virtual hooks: all ones, writes dropped. */
	k.vendor_id = 0x8086;
	ck_assert_int_eq(vdev_pci_cfg_new(&k, &plain), 0);
	ck_assert_int_eq(vdev_pci_root_add(w.root, VDEV_PCI_ADDR(0, 6, 0), &ops, plain), 0);
	ck_assert_uint_eq(vread(&w, VDEV_PCI_VCFG_OFFSET(0, 6, 0, 0, 0)), 0xffffffffu);
	vwrite(&w, VDEV_PCI_VCFG_OFFSET(0, 6, 0, 0, 0), 0);
	/* Absent function. */
	ck_assert_uint_eq(vread(&w, VDEV_PCI_VCFG_OFFSET(0, 7, 0, 0, 0)), 0xffffffffu);
	vwrite(&w, VDEV_PCI_VCFG_OFFSET(0, 7, 0, 0, 0), 0);
	ck_assert_int_eq(vdev_pci_root_remove(w.root, VDEV_PCI_ADDR(0, 6, 0)), 0);
	vdev_pci_cfg_free(plain);

	/* A window inserted larger than num_buses: the extra buses refuse. */
	ck_assert_int_eq(vdev_bus_remove(w.mmio, VCFG_BASE), 0);
	ck_assert_int_eq(vdev_bus_insert(w.mmio, VCFG_BASE, 256ull * VDEV_PCI_VCFG_BUS_SIZE,
					 vdev_pci_vcfg_bus_ops(), w.vcfg),
			 0);
	memset(b, 0, sizeof(b));
	ck_assert_int_eq(vdev_bus_read(w.mmio, VCFG_BASE + VDEV_PCI_VCFG_OFFSET(NUM_BUSES, 0, 0, 0,
										0),
				       4, 0, b),
			 -EINVAL);
	ck_assert_uint_eq(get32(b), 0xffffffffu);
	ck_assert_int_eq(vdev_bus_write(w.mmio, VCFG_BASE + VDEV_PCI_VCFG_OFFSET(255, 31, 7, 1,
										 1023),
					4, 0, b),
			 -EINVAL);

	/* Bad configurations. */
	ck_assert_int_eq(vdev_pci_vcfg_new(&vk, &v), -EINVAL); /* no root */
	vk.root = w.root;
	vk.num_buses = 0;
	ck_assert_int_eq(vdev_pci_vcfg_new(&vk, &v), -EINVAL);
	vk.num_buses = 257;
	ck_assert_int_eq(vdev_pci_vcfg_new(&vk, &v), -EINVAL);
	vk.num_buses = 1;
	ck_assert_int_eq(vdev_pci_vcfg_new(NULL, &v), -EINVAL);
	ck_assert_int_eq(vdev_pci_vcfg_new(&vk, NULL), -EINVAL);
	vk.struct_size = 2;
	ck_assert_int_eq(vdev_pci_vcfg_new(&vk, &v), -EINVAL);
	ck_assert_ptr_eq(v, (vdev_pci_vcfg *)&vk);
	vdev_pci_vcfg_free(NULL);
	world_fini(&w);
}
END_TEST

/*
 * A window for more buses than the root has: a function there cannot exist,
 * so the trapped page reads as an absent function's (all ones, writes
 * dropped, no error for the bus), and the shared page still works.
 */
START_TEST(test_more_buses_than_root)
{
	struct vdev_pci_root_config rk = VDEV_PCI_ROOT_CONFIG_INIT;
	struct vdev_pci_vcfg_config vk = VDEV_PCI_VCFG_CONFIG_INIT;
	uint64_t trapped = VCFG_BASE + VDEV_PCI_VCFG_OFFSET(3, 1, 0, 0, 4);
	uint64_t shared = VCFG_BASE + VDEV_PCI_VCFG_OFFSET(3, 1, 0, 1, 4);
	vdev_pci_root *root;
	vdev_pci_vcfg *v;
	vdev_bus *mmio;
	uint8_t b[4];
	void *page;

	ck_assert_int_eq(vdev_bus_new(VDEV_BUS_MMIO, &mmio), 0);
	rk.num_buses = 2;
	rk.mmio_bus = mmio;
	ck_assert_int_eq(vdev_pci_root_new(&rk, &root), 0);
	vk.num_buses = 4;
	vk.root = root;
	ck_assert_int_eq(vdev_pci_vcfg_new(&vk, &v), 0);
	ck_assert_int_eq(vdev_bus_insert(mmio, VCFG_BASE, 4 * VDEV_PCI_VCFG_BUS_SIZE,
					 vdev_pci_vcfg_bus_ops(), v),
			 0);
	memset(b, 0, sizeof(b));
	ck_assert_int_eq(vdev_bus_read(mmio, trapped, 4, 0, b), 0);
	ck_assert_uint_eq(get32(b), 0xffffffffu);
	ck_assert_int_eq(vdev_bus_write(mmio, trapped, 4, 0, b), 0);
	ck_assert_int_eq(vdev_pci_vcfg_shared_page(v, VDEV_PCI_ADDR(3, 1, 0), &page), 0);
	((uint8_t *)page)[16] = 0x42; /* dword 4 */
	ck_assert_int_eq(vdev_bus_read(mmio, shared, 1, 0, b), 0);
	ck_assert_uint_eq(b[0], 0x42);
	ck_assert_int_eq(vdev_bus_remove(mmio, VCFG_BASE), 0);
	vdev_pci_vcfg_free(v);
	vdev_pci_root_free(root);
	vdev_bus_free(mmio);
}
END_TEST

static Suite *vcfg_suite(void)
{
	Suite *s = suite_create("pci-vcfg");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_offset_macro);
	tcase_add_test(tc, test_trapped_page_routing);
	tcase_add_test(tc, test_shared_page);
	tcase_add_test(tc, test_many_pages);
	tcase_add_test(tc, test_hostile);
	tcase_add_test(tc, test_more_buses_than_root);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(vcfg_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
