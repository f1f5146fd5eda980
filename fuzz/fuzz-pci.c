/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for PCI config space and the PCI machine: the input is a
 * hostile guest (and a VMM that plugs and pulls devices under it). Each run
 * builds a small machine:
 *
 *   MMIO bus: the ECAM window (4 buses) and the virtual config window, both
 *             inside the 32-bit BAR window, so BARs moved onto them must be
 *             refused; a 64-bit BAR window. PIO bus: 0xCF8 and an I/O window.
 *   00:01.0   virtio-pci blk (memory disk)      00:03.0  a plain vdev_pci_cfg
 *   00:02.0   PCIe root port, secondary bus 1   01:00.0  a second virtio-pci
 *             (hotplug slot)                              blk, hot-plugged
 *   guest RAM (vdev_mem) for the rings; msi_ops that count and check vectors.
 *
 * Layout:
 *   byte 0    flags: bit0/1 00:01.0 transitional / without MSI-X, bit2/3 the
 *             same for 01:00.0, bit4 the port offers surprise removal, bit5
 *             two queues, bits6-7 notify_off_multiplier {4, 2, 64, 4096}
 *   byte 1    MSI-X table size: b % 9 (0: num_queues + 1)
 *   byte 2-3  number of 12-byte operations that follow (LE, at most MAX_OPS)
 *   ops       {code, p1..p7, v (LE 32)}; code % 16:
 *             0 0xCF8 latch write      1 0xCFC..0xCFF access
 *             2 ECAM access            3 vdev_pci_root_config_* (any args)
 *             4 access relative to a capability found by walking the list
 *             5 access relative to a BAR as the guest programmed it
 *             6 MMIO access anywhere   7 port I/O access
 *             8 virtual config window  9 "firmware": size and assign BARs
 *             10 hotplug interface     11 device side, bus sleep / wake
 *             12 guest RAM store       13 VMM removes / re-adds a function
 *             14, 15 as 5 and 4
 *             (the meaning of p1..p7 is in each op's function below)
 *   rest      guest RAM image (RAM_SIZE at RAM_BASE, zero padded)
 *
 * Checked (abort on violation): every result is 0 or a negative errno; a
 * config read of a function that is not on the root gives all ones, by
 * every path; the harness keeps a shadow of the BAR ranges from bar_moved
 * reports (old bases must match, new ones lie in a window, aligned, never
 * overlapping), and after every operation the buses hold exactly the
 * root's own ranges plus those; accesses outside every range get -ENOENT;
 * a placed BAR reads back its address; the plain function's BARs agree with
 * the shadow both ways; a virtio-pci function's notify address lies in its
 * placed BAR 4 (-ENXIO when BAR 4 is off the bus) and BAR 4 answers there
 * with the queue count; capability lists are well formed; MSI vectors lie
 * inside the table, and a signal comes only from a vector the last update
 * reported unmasked, with that message; a completed hot unplug (and a
 * surprise removal) leaves no function and no range at the slot; the
 * virtual config registers and shared pages read back what was written; at
 * the end both buses are empty. Everything is freed per run (LeakSanitizer
 * checks).
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/pci_regs.h>
#include <linux/virtio_pci.h>

#include <virtio-dev/virtio-dev.h>

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c))                                                                          \
			abort();                                                                   \
	} while (0)

#define MAX_OPS 2000u
#define OP_SIZE 12u
#define HDR_SIZE 4u

#define NUM_BUSES 4u
#define CF8_PORT 0xcf8u
#define CFC_PORT 0xcfcu
#define MMIO32_BASE 0xe0000000ull
#define MMIO32_SIZE 0x02000000ull
#define ECAM_BASE 0xe1000000ull
#define ECAM_SIZE ((uint64_t)NUM_BUSES * VDEV_PCI_ECAM_BUS_SIZE)
#define VCFG_BASE 0xe1800000ull
#define VCFG_SIZE ((uint64_t)NUM_BUSES * VDEV_PCI_VCFG_BUS_SIZE)
#define MMIO64_BASE 0x8000000000ull
#define MMIO64_SIZE 0x01000000ull
#define IO_BASE 0xc000ull
#define IO_SIZE 0x2000ull
#define PORT_MEM_BASE 0xe0800000ull
#define PORT_PREF_BASE 0x8000800000ull
#define PORT_WIN_SIZE 0x100000ull
#define PORT_IO_BASE 0xd000u
#define PORT_IO_SIZE 0x1000u
#define RAM_BASE 0x10000000ull
#define RAM_SIZE 0x10000u
#define DISK_SIZE 0x10000u
#define QUEUE_SIZE 16u
#define HP_KEY 0x42u
#define HOST_ADDR VDEV_PCI_ADDR(0x20, 3, 0)

/* The functions, by index. */
#define F_VP1 0u
#define F_PORT 1u
#define F_PLAIN 2u
#define F_VP2 3u
#define NUM_FNS 4u
static const uint32_t fn_addr[NUM_FNS] = {
	VDEV_PCI_ADDR(0, 1, 0), VDEV_PCI_ADDR(0, 2, 0), VDEV_PCI_ADDR(0, 3, 0),
	VDEV_PCI_ADDR(1, 0, 0),
};
#define SLOT_ADDR VDEV_PCI_ADDR(1, 0, 0)

/* Config access paths. */
#define PATH_DIRECT 0u
#define PATH_CF8 1u
#define PATH_ECAM 2u

#define MAX_PLACED 32u
#define MAX_PAGES 64u

#define MAX_VECTORS 32u

/*
 * A function's interrupts. The message and mask of each vector as the last
 * update reported them (before any: masked, as MSI(-X) starts disabled); a
 * signal must come from an unmasked vector with that message, or a VMM
 * routing irqfds by update would deliver something else. Counts are for
 * whoever debugs a reproducer.
 */
struct msi_ctx {
	uint32_t nvec; /* vectors the function may signal; 0: none (INTx only) */
	uint8_t unmasked[MAX_VECTORS];
	uint64_t address[MAX_VECTORS];
	uint32_t data[MAX_VECTORS];
	uint64_t signals;
	uint32_t intx;
};

struct placed {
	uint32_t addr, bar, kind;
	uint64_t base, size;
};

struct vpfn {
	vdev_blk_backend *be;
	vdev_blk *blk;
	vdev_virtio_pci *vp;
	struct msi_ctx msi;
	uint32_t flags;
};

struct fz {
	vdev_bus *mmio, *pio;
	vdev_mem *mem;
	uint8_t *ram;
	vdev_pci_root *root;
	vdev_pci_vcfg *vcfg;
	vdev_pcie_port *port;
	vdev_pci_cfg *plain;
	struct vpfn vp[2]; /* 00:01.0 and 01:00.0 */
	struct msi_ctx port_msi;
	struct placed shadow[MAX_PLACED];
	uint32_t nplaced;
	uint32_t cf8;
	int cf8_known;
	int plug_fd, unplug_fd;
	uint32_t pages[MAX_PAGES]; /* functions whose shared page exists */
	uint32_t npages;
	uint32_t nq, nvec, notify_mult;
	int asleep; /* the MMIO bus's devices */
};

static const struct vdev_hotplug_bus_ops *hp;

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_le(const uint8_t *p, uint32_t size)
{
	uint32_t v = 0;

	for (uint32_t i = 0; i < size && i < 4; i++)
		v |= (uint32_t)p[i] << (8 * i);
	return v;
}

static int all_ones(const uint8_t *p, uint32_t size)
{
	for (uint32_t i = 0; i < size; i++) {
		if (p[i] != 0xff)
			return 0;
	}
	return 1;
}

static int overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

static int inside(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a >= b && alen <= blen && a - b <= blen - alen;
}

/* ---- MSI and BAR reports --------------------------------------------------- */

static int msi_signal(void *opaque, uint32_t vector, uint64_t address, uint32_t data)
{
	struct msi_ctx *m = opaque;

	CHECK(vector < m->nvec);
	CHECK(m->unmasked[vector] && m->address[vector] == address && m->data[vector] == data);
	m->signals++;
	return 0;
}

static void msi_update(void *opaque, uint32_t vector, uint64_t address, uint32_t data,
		       uint32_t masked)
{
	struct msi_ctx *m = opaque;

	CHECK(vector < m->nvec);
	CHECK(masked <= 1);
	m->unmasked[vector] = !masked;
	m->address[vector] = address;
	m->data[vector] = data;
}

static int msi_set_intx(void *opaque, uint32_t level)
{
	struct msi_ctx *m = opaque;

	CHECK(level <= 1);
	m->intx = level;
	return 0;
}

static const struct vdev_pci_msi_ops msi_ops = {
	.struct_size = sizeof(struct vdev_pci_msi_ops),
	.signal = msi_signal,
	.update = msi_update,
	.set_intx = msi_set_intx,
};

static struct placed *shadow_find(struct fz *f, uint32_t addr, uint32_t bar)
{
	for (uint32_t i = 0; i < f->nplaced; i++) {
		if (f->shadow[i].addr == addr && f->shadow[i].bar == bar)
			return &f->shadow[i];
	}
	return NULL;
}

static int in_windows(uint32_t kind, uint64_t base, uint64_t size)
{
	if (kind == VDEV_PCI_BAR_IO)
		return inside(base, size, IO_BASE, IO_SIZE);
	if (inside(base, size, MMIO32_BASE, MMIO32_SIZE))
		return 1;
	return kind == VDEV_PCI_BAR_MEM64 && inside(base, size, MMIO64_BASE, MMIO64_SIZE);
}

static void bar_moved(void *opaque, const struct vdev_pci_bar_move *m)
{
	struct fz *f = opaque;
	struct placed *p;

	CHECK(m->struct_size >= sizeof(*m));
	CHECK(m->bar < VDEV_PCI_NUM_BARS);
	CHECK(m->kind == VDEV_PCI_BAR_MEM32 || m->kind == VDEV_PCI_BAR_MEM64 ||
	      m->kind == VDEV_PCI_BAR_IO);
	CHECK(m->size && !(m->size & (m->size - 1)));
	p = shadow_find(f, m->addr, m->bar);
	CHECK(m->old_base == (p ? p->base : 0));
	if (!m->new_base) {
		if (p)
			*p = f->shadow[--f->nplaced];
		return;
	}
	CHECK(in_windows(m->kind, m->new_base, m->size));
	CHECK(!(m->new_base & (m->size - 1)));
	if (!p) {
		CHECK(f->nplaced < MAX_PLACED);
		p = &f->shadow[f->nplaced++];
	}
	p->addr = m->addr;
	p->bar = m->bar;
	p->kind = m->kind;
	p->base = m->new_base;
	p->size = m->size;
}

static const struct vdev_pci_root_ops root_ops = {
	.struct_size = sizeof(struct vdev_pci_root_ops),
	.bar_moved = bar_moved,
};

/* 1 when [a, a + len) on the PIO (@io) or MMIO bus touches one of the root's own ranges. */
static int fixed_overlap(int io, uint64_t a, uint64_t len)
{
	if (io)
		return overlaps(a, len, CF8_PORT, 8);
	return overlaps(a, len, ECAM_BASE, ECAM_SIZE) || overlaps(a, len, VCFG_BASE, VCFG_SIZE);
}

/* 1 when [a, a + len) on the PIO (@io) or MMIO bus touches a range the harness knows of. */
static int claimed(struct fz *f, int io, uint64_t a, uint64_t len)
{
	if (a + len < a || fixed_overlap(io, a, len))
		return 1;
	for (uint32_t i = 0; i < f->nplaced; i++) {
		if ((f->shadow[i].kind == VDEV_PCI_BAR_IO) == io &&
		    overlaps(a, len, f->shadow[i].base, f->shadow[i].size))
			return 1;
	}
	return 0;
}

/* The plain function's BARs as its config space says against the shadow. */
static void check_plain(struct fz *f)
{
	uint32_t cmd = vdev_pci_cfg_read(f->plain, PCI_COMMAND / 4) & 0xffff;

	for (uint32_t bar = 0; bar < VDEV_PCI_NUM_BARS; bar++) {
		struct placed *p = shadow_find(f, fn_addr[F_PLAIN], bar);
		uint64_t a, s;
		uint32_t k, decode;

		if (vdev_pci_cfg_bar(f->plain, bar, &a, &s, &k) < 0) {
			CHECK(!p);
			continue;
		}
		decode = (k & 3) == VDEV_PCI_BAR_IO ? cmd & PCI_COMMAND_IO : cmd & PCI_COMMAND_MEMORY;
		if (a && decode) {
			CHECK(p && p->base == a && p->size == s);
		} else {
			CHECK(!p);
		}
	}
}

static void poll_fds(struct fz *f)
{
	struct pollfd pfd;

	if (f->unplug_fd >= 0) {
		pfd.fd = f->unplug_fd;
		pfd.events = POLLIN;
		pfd.revents = 0;
		if (poll(&pfd, 1, 0) == 1) {
			CHECK(!vdev_pci_root_find(f->root, SLOT_ADDR));
			for (uint32_t i = 0; i < f->nplaced; i++)
				CHECK(f->shadow[i].addr != SLOT_ADDR);
			close(f->unplug_fd);
			f->unplug_fd = -1;
		}
	}
	if (f->plug_fd >= 0) {
		pfd.fd = f->plug_fd;
		pfd.events = POLLIN;
		pfd.revents = 0;
		if (poll(&pfd, 1, 0) == 1) {
			close(f->plug_fd);
			f->plug_fd = -1;
		}
	}
}

/* After every operation. */
static void check_state(struct fz *f)
{
	uint32_t nmem = 0, nio = 0;

	for (uint32_t i = 0; i < f->nplaced; i++) {
		const struct placed *p = &f->shadow[i];

		if (p->kind == VDEV_PCI_BAR_IO)
			nio++;
		else
			nmem++;
		CHECK(vdev_pci_root_find(f->root, p->addr));
		CHECK(!fixed_overlap(p->kind == VDEV_PCI_BAR_IO, p->base, p->size));
		for (uint32_t j = i + 1; j < f->nplaced; j++) {
			const struct placed *q = &f->shadow[j];

			if ((q->kind == VDEV_PCI_BAR_IO) == (p->kind == VDEV_PCI_BAR_IO))
				CHECK(!overlaps(p->base, p->size, q->base, q->size));
		}
	}
	CHECK(vdev_bus_num_ranges(f->mmio) == 2 + nmem);
	CHECK(vdev_bus_num_ranges(f->pio) == 1 + nio);
	if (vdev_pci_root_find(f->root, fn_addr[F_PLAIN]))
		check_plain(f);
	poll_fds(f);
}

/* ---- config access by every path ------------------------------------------ */

static uint32_t cf8_value(uint32_t addr, uint32_t off)
{
	return 0x80000000u | (VDEV_PCI_ADDR_BUS(addr) << 16) | ((addr & 0xffu) << 8) |
	       (off & 0xfcu) | ((off >> 8) & 0xfu) << 24;
}

/* A read of the data port, checked against what the harness knows of the latch. */
static void check_cfc_read(struct fz *f, uint64_t port, uint32_t size, const uint8_t *b)
{
	uint32_t off = (uint32_t)(port - CFC_PORT);

	/* The bus refuses other sizes before any device sees them (-EINVAL,
	 * the buffer untouched). */
	if (!f->cf8_known || port < CFC_PORT || port >= CFC_PORT + 4 || off + size > 4 ||
	    (size != 1 && size != 2 && size != 4))
		return;
	if (!(f->cf8 & 0x80000000u) || !vdev_pci_root_find(f->root, (f->cf8 >> 8) & 0xffffu))
		CHECK(all_ones(b, size));
}

/*
 * One access on the PIO (@io) or MMIO bus. Outside every known range it must
 * find nothing (and a read all ones).
 */
static int bus_access(struct fz *f, int io, uint64_t a, uint32_t size, int write, uint8_t *b)
{
	vdev_bus *bus = io ? f->pio : f->mmio;
	int r;

	if (write) {
		r = vdev_bus_write(bus, a, size, 0, b);
	} else {
		memset(b, 0xa5, 8);
		r = vdev_bus_read(bus, a, size, 0, b);
	}
	CHECK(r <= 0);
	if ((size == 1 || size == 2 || size == 4 || size == 8) && !claimed(f, io, a, size)) {
		CHECK(r == -ENOENT);
		if (!write)
			CHECK(all_ones(b, size));
	}
	if (io && write && overlaps(a, size, CF8_PORT, 4)) {
		f->cf8_known = r == 0 && a == CF8_PORT && size == 4;
		f->cf8 = get32(b);
	}
	if (io && !write)
		check_cfc_read(f, a, size, b);
	return r;
}

/*
 * One config access of @size (1, 2, 4; by ECAM also 8 and 3) at byte @off
 * (0..4095) of @addr by @path. A proper read of a function that is not on
 * the root must give all ones.
 */
static int cfg_access(struct fz *f, uint32_t path, uint32_t addr, uint32_t off, uint32_t size,
		      int write, uint32_t *val)
{
	uint32_t bus = VDEV_PCI_ADDR_BUS(addr);
	uint8_t b[8];
	int r;

	put32(b, *val);
	put32(b + 4, *val);
	if (path == PATH_ECAM && bus >= NUM_BUSES)
		path = PATH_DIRECT;
	if (path == PATH_CF8) {
		uint8_t l[4];

		put32(l, cf8_value(addr, off));
		CHECK(bus_access(f, 1, CF8_PORT, 4, 1, l) == 0);
		r = bus_access(f, 1, CFC_PORT + (off & 3), size, write, b);
	} else if (path == PATH_ECAM) {
		uint64_t a = ECAM_BASE + ((uint64_t)bus << 20) + ((addr & 0xffu) << 12) + off;

		r = bus_access(f, 0, a, size, write, b);
	} else {
		if (write)
			r = vdev_pci_root_config_write(f->root, addr, off >> 2, off & 3, size, b);
		else
			r = vdev_pci_root_config_read(f->root, addr, off >> 2, off & 3, size, b);
		CHECK(r <= 0);
	}
	if (!write) {
		*val = get_le(b, size);
		if ((size == 1 || size == 2 || size == 4) && (off & 3) + size <= 4 &&
		    !vdev_pci_root_find(f->root, addr))
			CHECK(all_ones(b, size));
	}
	return r;
}

static uint32_t cfg_read(struct fz *f, uint32_t path, uint32_t addr, uint32_t off, uint32_t size)
{
	uint32_t v = 0;

	(void)cfg_access(f, path, addr, off, size, 0, &v);
	return v;
}

static void cfg_write(struct fz *f, uint32_t path, uint32_t addr, uint32_t off, uint32_t size,
		      uint32_t v)
{
	(void)cfg_access(f, path, addr, off, size, 1, &v);
}

/*
 * The offset of the @nth capability with ID @id of @addr, or 0. The list is
 * read directly; when the function answers, the list must be well formed.
 */
static uint32_t find_cap(struct fz *f, uint32_t addr, uint8_t id, uint32_t nth)
{
	uint32_t ptr, n;

	if ((cfg_read(f, PATH_DIRECT, addr, PCI_VENDOR_ID, 2)) == 0xffff)
		return 0;
	if (!(cfg_read(f, PATH_DIRECT, addr, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST))
		return 0;
	ptr = cfg_read(f, PATH_DIRECT, addr, PCI_CAPABILITY_LIST, 1);
	for (n = 0; ptr; n++) {
		uint32_t hdr;

		CHECK(n < 48);
		CHECK(ptr >= 0x40 && ptr <= 0xfc && !(ptr & 3));
		hdr = cfg_read(f, PATH_DIRECT, addr, ptr, 2);
		if ((hdr & 0xff) == id && nth-- == 0)
			return ptr;
		ptr = hdr >> 8;
	}
	return 0;
}

/* ---- building functions ----------------------------------------------------- */

static void vp_free(struct vpfn *v)
{
	vdev_virtio_pci_free(v->vp);
	vdev_blk_free(v->blk);
	vdev_blk_backend_free(v->be);
	v->vp = NULL;
	v->blk = NULL;
	v->be = NULL;
}

/* A fresh virtio-pci blk function: 00:01.0 (@i 0) or at the slot (@i 1), on the root. */
static void add_vp(struct fz *f, uint32_t i)
{
	struct vdev_blk_config bc = VDEV_BLK_CONFIG_INIT;
	struct vdev_virtio_pci_config pc = VDEV_VIRTIO_PCI_CONFIG_INIT;
	struct vpfn *v = &f->vp[i];

	CHECK(vdev_blk_backend_new_memory(DISK_SIZE, 0, &v->be) == 0);
	bc.num_queues = f->nq;
	bc.queue_size = QUEUE_SIZE;
	CHECK(vdev_blk_new(&bc, v->be, &v->blk) == 0);
	CHECK(vdev_device_set_memory(vdev_blk_device(v->blk), f->mem) == 0);
	pc.flags = v->flags;
	pc.msix_vectors = f->nvec;
	pc.notify_off_multiplier = f->notify_mult;
	pc.msi_ops = &msi_ops;
	pc.msi_opaque = &v->msi;
	memset(&v->msi, 0, sizeof(v->msi));
	v->msi.nvec = (v->flags & VDEV_VIRTIO_PCI_F_NO_MSIX) ? 0 : f->nvec ? f->nvec : f->nq + 1;
	CHECK(vdev_virtio_pci_new(&pc, vdev_blk_device(v->blk), &v->vp) == 0);
	CHECK(vdev_pci_root_add(f->root, fn_addr[i ? F_VP2 : F_VP1], vdev_virtio_pci_bus_ops(),
				v->vp) == 0);
}

/* A fresh plain function at 00:03.0: three kinds of BAR, two capabilities. */
static void add_plain(struct fz *f)
{
	struct vdev_pci_cfg_config c = VDEV_PCI_CFG_CONFIG_INIT;
	static const uint8_t vndr[10] = {12, 1, 2, 3, 4, 5, 6, 7, 8, 9};
	static const uint8_t vndr_mask[10] = {0, 0xff, 0x0f, 0, 0xff, 0, 0, 0x80, 0, 0xff};
	static const uint8_t pm[6] = {0x03, 0x00, 0x08, 0x00, 0x00, 0x00};
	uint32_t off;

	c.header_type = 0;
	c.vendor_id = 0x1234;
	c.device_id = 0x0001;
	c.class_code = 0x050000;
	c.interrupt_pin = 1;
	CHECK(vdev_pci_cfg_new(&c, &f->plain) == 0);
	CHECK(vdev_pci_cfg_add_bar(f->plain, 0, 0x1000, VDEV_PCI_BAR_MEM32) == 0);
	CHECK(vdev_pci_cfg_add_bar(f->plain, 2, 0x10000,
				   VDEV_PCI_BAR_MEM64 | VDEV_PCI_BAR_PREFETCH) == 0);
	CHECK(vdev_pci_cfg_add_bar(f->plain, 4, 0x20, VDEV_PCI_BAR_IO) == 0);
	CHECK(vdev_pci_cfg_add_capability(f->plain, PCI_CAP_ID_VNDR, vndr, sizeof(vndr),
					  vndr_mask, &off) == 0);
	CHECK(vdev_pci_cfg_add_capability(f->plain, PCI_CAP_ID_PM, pm, sizeof(pm), NULL, &off) ==
	      0);
	CHECK(vdev_pci_root_add(f->root, fn_addr[F_PLAIN], vdev_pci_cfg_bus_ops(), f->plain) == 0);
}

/* ---- operations ------------------------------------------------------------ */

static const uint32_t sizes124[] = {1, 2, 4};
static const uint32_t sizes_any[] = {1, 2, 4, 8, 3};

/* Two op bytes name a function: one of ours (bit7 of the first clear), or bus & 0x7f, devfn. */
static uint32_t op_addr(const uint8_t *p)
{
	if (p[0] & 0x80)
		return VDEV_PCI_ADDR(p[0] & 0x7f, p[1] >> 3, p[1] & 7);
	return fn_addr[p[0] % NUM_FNS];
}

/* p1: bit0 raw (v), bit1 enable off, bits2-3 low bits; p2-p3 function; p4-p5 offset. */
static void op_cf8(struct fz *f, const uint8_t *op, uint32_t v)
{
	uint8_t b[4];
	uint32_t off = (op[4] | (uint32_t)op[5] << 8) & 0xfffu;
	uint32_t val = cf8_value(op_addr(op + 2), off) | ((op[1] >> 2) & 3u);

	if (op[1] & 2)
		val &= ~0x80000000u;
	put32(b, op[1] & 1 ? v : val);
	(void)bus_access(f, 1, CF8_PORT, 4, 1, b);
}

/* p1 bit0 write; p2 size; p3 byte within the dword. */
static void op_cfc(struct fz *f, const uint8_t *op, uint32_t v)
{
	uint8_t b[8];
	uint32_t size = sizes124[op[2] % 3];

	put32(b, v);
	put32(b + 4, v);
	(void)bus_access(f, 1, CFC_PORT + (op[3] & 3), size, op[1] & 1, b);
}

/* p1 bit0 write; p2 size (any); p3-p4 function (bus & 3); p5-p6 offset. */
static void op_ecam(struct fz *f, const uint8_t *op, uint32_t v)
{
	uint32_t addr = op_addr(op + 3);

	addr = VDEV_PCI_ADDR(VDEV_PCI_ADDR_BUS(addr) % NUM_BUSES, VDEV_PCI_ADDR_DEV(addr),
			     VDEV_PCI_ADDR_FN(addr));
	(void)cfg_access(f, PATH_ECAM, addr, (op[5] | (uint32_t)op[6] << 8) & 0xfffu,
			 sizes_any[op[2] % 5], op[1] & 1, &v);
}

/* p1 bit0 write; p2 size (any, 0); p3-p4 function; p5-p6 dword (0..2047); p7 byte (0..7). */
static void op_direct(struct fz *f, const uint8_t *op, uint32_t v)
{
	static const uint32_t sizes[] = {1, 2, 4, 3, 0, 8};
	uint32_t addr = op_addr(op + 3);
	uint32_t size = sizes[op[2] % 6];
	uint32_t reg = (op[5] | (uint32_t)op[6] << 8) & 0x7ffu;
	uint32_t off = op[7] & 7;
	int valid = reg < VDEV_PCI_CONFIG_DWORDS && (size == 1 || size == 2 || size == 4) &&
		    off + size <= 4;
	uint8_t b[8];
	int r;

	put32(b, v);
	put32(b + 4, v);
	if (op[1] & 1)
		r = vdev_pci_root_config_write(f->root, addr, reg, off, size, b);
	else
		r = vdev_pci_root_config_read(f->root, addr, reg, off, size, b);
	CHECK(r <= 0);
	if (!valid) {
		CHECK(r == -EINVAL);
	} else if (!vdev_pci_root_find(f->root, addr)) {
		/* A bus past num_buses may count as a bad address. */
		CHECK(r == -ENOENT || (r == -EINVAL && VDEV_PCI_ADDR_BUS(addr) >= NUM_BUSES));
		if (!(op[1] & 1) && r == -ENOENT)
			CHECK(all_ones(b, size));
	} else if (!(op[1] & 1) && r == 0 && reg == 0 && off == 0 && size >= 2 &&
		   VDEV_PCI_ADDR_BUS(addr) == 0) {
		CHECK((b[0] | b[1] << 8) != 0xffff);
	}
}

/* p1 bit0 write, bits1-2 path; p2 size; p3 function; p4 capability ID; p5 which one; p6 offset. */
static void op_cap(struct fz *f, const uint8_t *op, uint32_t v)
{
	uint32_t addr = fn_addr[op[3] % NUM_FNS];
	uint32_t cap = find_cap(f, addr, op[4], op[5] & 7);
	uint32_t off = cap + (op[6] & 0x3f);
	uint32_t size = sizes124[op[2] % 3];

	if (!cap)
		return;
	if (off + size > 0x100)
		off = 0x100 - size;
	(void)cfg_access(f, (op[1] >> 1) % 3, addr, off, size, op[1] & 1, &v);
}

/*
 * The base of BAR @bar of @addr as the guest reads it (0 if none), and
 * whether it is an I/O BAR.
 */
static uint64_t bar_base(struct fz *f, uint32_t addr, uint32_t bar, int *io)
{
	uint32_t lo = cfg_read(f, PATH_DIRECT, addr, PCI_BASE_ADDRESS_0 + 4 * bar, 4);
	uint64_t base;

	*io = 0;
	if (lo == 0xffffffffu)
		return 0;
	if (lo & PCI_BASE_ADDRESS_SPACE_IO) {
		*io = 1;
		return lo & PCI_BASE_ADDRESS_IO_MASK;
	}
	base = lo & PCI_BASE_ADDRESS_MEM_MASK;
	if ((lo & PCI_BASE_ADDRESS_MEM_TYPE_MASK) == PCI_BASE_ADDRESS_MEM_TYPE_64 && bar < 5)
		base |= (uint64_t)cfg_read(f, PATH_DIRECT, addr, PCI_BASE_ADDRESS_0 + 4 * bar + 4,
					   4)
			<< 32;
	return base;
}

/* p1 bit0 write, bits1-2 size; p2 function; p3 BAR; p4-p6 offset; p7 data byte 4..7. */
static void op_bar(struct fz *f, const uint8_t *op, uint32_t v)
{
	static const uint32_t sizes[] = {1, 2, 4, 8};
	uint32_t addr = fn_addr[op[2] % NUM_FNS];
	uint32_t bar = op[3] % VDEV_PCI_NUM_BARS;
	uint64_t off = op[4] | (uint32_t)op[5] << 8 | (uint32_t)(op[6] & 0xf) << 16;
	uint32_t size = sizes[(op[1] >> 1) & 3];
	int io;
	uint64_t base = bar_base(f, addr, bar, &io);
	struct placed *p = shadow_find(f, addr, bar);
	uint8_t b[8];

	/* A BAR on the bus reads back where it is (unless the function is gated). */
	if (p && base)
		CHECK(base == p->base && io == (p->kind == VDEV_PCI_BAR_IO));
	put32(b, v);
	put32(b + 4, v ^ ((uint32_t)op[7] * 0x01010101u));
	(void)bus_access(f, io, io ? (base + off) & 0xffff : base + off, size, op[1] & 1, b);
}

/* p1 bit0 write, bits1-3 size; p2 window; p3-p6 offset; p7 address bits 32+ (window 3). */
static void op_mmio(struct fz *f, const uint8_t *op, uint32_t v)
{
	uint32_t size = sizes_any[((op[1] >> 1) & 7) % 5];
	uint64_t off = get32(op + 3);
	uint64_t a;
	uint8_t b[8];

	switch (op[2] % 4) {
	case 0:
		a = MMIO32_BASE + off % MMIO32_SIZE;
		break;
	case 1:
		a = MMIO64_BASE + off % MMIO64_SIZE;
		break;
	case 2:
		a = ECAM_BASE + off % (VCFG_BASE + VCFG_SIZE - ECAM_BASE);
		break;
	default: /* p7 sign-extended: 0xff reaches the top of the address space */
		a = off | (uint64_t)(int64_t)(int8_t)op[7] << 32;
		break;
	}
	put32(b, v);
	put32(b + 4, ~v);
	(void)bus_access(f, 0, a, size, op[1] & 1, b);
}

/* p1 bit0 write, bits1-3 size; p2 where; p3-p4 port. */
static void op_pio(struct fz *f, const uint8_t *op, uint32_t v)
{
	uint32_t size = sizes_any[((op[1] >> 1) & 7) % 5];
	uint32_t x = op[3] | (uint32_t)op[4] << 8;
	uint64_t port;
	uint8_t b[8];

	switch (op[2] % 3) {
	case 0:
		port = CF8_PORT + x % 8;
		break;
	case 1:
		port = IO_BASE + x % IO_SIZE;
		break;
	default:
		port = x;
		break;
	}
	put32(b, v);
	put32(b + 4, v);
	(void)bus_access(f, 1, port, size, op[1] & 1, b);
}

static int page_known(struct fz *f, uint32_t addr)
{
	for (uint32_t i = 0; i < f->npages; i++) {
		if (f->pages[i] == addr)
			return 1;
	}
	return 0;
}

/*
 * p1 bit0 write, bits1-2 size, bit3 page, bit4 create the shared page first,
 * bit5 ask for a page beyond num_buses; p2-p3 function; p4-p5 dword; p6 byte.
 */
static void op_vcfg(struct fz *f, const uint8_t *op, uint32_t v)
{
	static const uint32_t sizes[] = {4, 1, 2, 8};
	uint32_t addr = op_addr(op + 2);
	uint32_t bus = VDEV_PCI_ADDR_BUS(addr) % NUM_BUSES;
	uint32_t dev = VDEV_PCI_ADDR_DEV(addr), fn = VDEV_PCI_ADDR_FN(addr);
	uint32_t page = (op[1] >> 3) & 1, reg = (op[4] | (uint32_t)op[5] << 8) & 0x3ffu;
	uint32_t size = sizes[(op[1] >> 1) & 3], sub = op[6] & 3;
	uint64_t a = VCFG_BASE + VDEV_PCI_VCFG_OFFSET(bus, dev, fn, page, reg) + sub;
	int write = op[1] & 1, r;
	uint8_t b[8], c[8];
	void *host;

	addr = VDEV_PCI_ADDR(bus, dev, fn);
	if (op[1] & 0x20) {
		CHECK(vdev_pci_vcfg_shared_page(f->vcfg, VDEV_PCI_ADDR(NUM_BUSES + (op[2] & 0x7f),
								      dev, fn),
						&host) == -EINVAL);
	}
	if ((op[1] & 0x10) && !page_known(f, addr) && f->npages < MAX_PAGES) {
		CHECK(vdev_pci_vcfg_shared_page(f->vcfg, addr, &host) == 0);
		CHECK(host && !((uintptr_t)host & 0xfff));
		f->pages[f->npages++] = addr;
	}
	put32(b, v);
	put32(b + 4, v + 1);
	memcpy(c, b, 8);
	r = bus_access(f, 0, a, size, write, b);
	if (page == 0 && sub)
		CHECK(r < 0); /* trapped registers: aligned dwords only */
	if (reg * 4 + sub + size > VDEV_PCI_CONFIG_SIZE)
		CHECK(r < 0); /* crosses into the next page */
	if (r != 0 || reg * 4 + sub + size > VDEV_PCI_CONFIG_SIZE)
		return;
	if (page == 1 && page_known(f, addr)) {
		CHECK(vdev_pci_vcfg_shared_page(f->vcfg, addr, &host) == 0);
		CHECK(!memcmp((uint8_t *)host + reg * 4 + sub, b, size));
		return;
	}
	if (page != 0 || size != 4 || sub)
		return;
	if (!vdev_pci_root_find(f->root, addr) || addr == fn_addr[F_PLAIN]) {
		if (!write)
			CHECK(all_ones(b, 4));
	} else if (write && addr == fn_addr[F_VP1]) {
		/* virtio-pci's virtual config registers are scratch dwords. */
		memset(b, 0, 4);
		CHECK(bus_access(f, 0, a, 4, 0, b) == 0);
		CHECK(!memcmp(b, c, 4));
	}
}

/*
 * What firmware does: size every BAR and give it an address, then enable
 * decode. p1 function; p2 path; p3 slot (which aligned address in the
 * window); p4 bit0 64-bit BARs in the 64-bit window, bit1 use the root
 * port's windows, bit2 leave decode alone, bit3 any slot (may leave the
 * window).
 */
static void op_firmware(struct fz *f, const uint8_t *op, uint32_t v)
{
	uint32_t addr = fn_addr[op[1] % NUM_FNS], path = op[2] % 3;
	uint32_t cmd = cfg_read(f, path, addr, PCI_COMMAND, 2);
	uint32_t nbars = (cfg_read(f, path, addr, PCI_HEADER_TYPE, 1) & 0x7f) == 1 ? 2 : 6;

	(void)v;
	cfg_write(f, path, addr, PCI_COMMAND, 2, cmd & ~(PCI_COMMAND_IO | PCI_COMMAND_MEMORY));
	for (uint32_t bar = 0; bar < nbars; bar++) {
		uint32_t reg = PCI_BASE_ADDRESS_0 + 4 * bar, lo, is64 = 0;
		uint64_t mask, size, wbase, wsize, a;

		cfg_write(f, path, addr, reg, 4, 0xffffffffu);
		lo = cfg_read(f, path, addr, reg, 4);
		if (!lo || lo == 0xffffffffu)
			continue;
		if (lo & PCI_BASE_ADDRESS_SPACE_IO) {
			mask = ~0xffffull | (lo & PCI_BASE_ADDRESS_IO_MASK);
			wbase = op[4] & 2 ? PORT_IO_BASE : IO_BASE;
			wsize = op[4] & 2 ? PORT_IO_SIZE : IO_SIZE;
		} else {
			mask = 0xffffffff00000000ull | (lo & PCI_BASE_ADDRESS_MEM_MASK);
			is64 = (lo & PCI_BASE_ADDRESS_MEM_TYPE_MASK) == PCI_BASE_ADDRESS_MEM_TYPE_64 &&
			       bar < nbars - 1;
			if (is64) {
				cfg_write(f, path, addr, reg + 4, 4, 0xffffffffu);
				mask = (uint64_t)cfg_read(f, path, addr, reg + 4, 4) << 32 |
				       (lo & PCI_BASE_ADDRESS_MEM_MASK);
			}
			if (is64 && (op[4] & 1)) {
				wbase = op[4] & 2 ? PORT_PREF_BASE : MMIO64_BASE;
				wsize = op[4] & 2 ? PORT_WIN_SIZE : MMIO64_SIZE;
			} else {
				wbase = op[4] & 2 ? PORT_MEM_BASE : MMIO32_BASE;
				wsize = op[4] & 2 ? PORT_WIN_SIZE : MMIO32_SIZE;
			}
		}
		size = ~mask + 1;
		if (!size || (size & (size - 1)))
			size = 0x1000;
		a = wbase + (size <= wsize ? ((op[3] + bar) % (op[4] & 8 ? 256 : wsize / size)) * size
					  : 0);
		cfg_write(f, path, addr, reg, 4, (uint32_t)a);
		if (is64)
			cfg_write(f, path, addr, reg + 4, 4, (uint32_t)(a >> 32));
		bar += is64;
	}
	if (!(op[4] & 4))
		cmd |= PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
	cfg_write(f, path, addr, PCI_COMMAND, 2, cmd);
}

static void take_fd(int *slot, int fd)
{
	if (fd < 0)
		return;
	if (*slot >= 0)
		close(*slot);
	*slot = fd;
}

/* p1 what; p2 bit0 another address (p3-p4); p5 key. */
static void op_hotplug(struct fz *f, const uint8_t *op, uint32_t v)
{
	uint32_t a = op[2] & 1 ? op_addr(op + 3) : SLOT_ADDR, got;
	uint64_t key = op[5] == 0xff ? VDEV_HOTPLUG_KEY_NONE : op[5];
	uint16_t st, ctl;
	int fd = -1, r;

	switch (op[1] % 6) {
	case 0: /* plug: a fresh function at the slot unless one is still there */
	case 5: /* announce without adding one */
		poll_fds(f);
		if (op[1] % 6 == 0 && !vdev_pci_root_find(f->root, SLOT_ADDR)) {
			vp_free(&f->vp[1]);
			add_vp(f, 1);
		}
		r = hp->hot_plug(f->port, a, &fd);
		CHECK(r <= 0);
		if (r == 0)
			take_fd(&f->plug_fd, fd);
		else
			CHECK(fd == -1);
		break;
	case 1:
		r = hp->hot_unplug(f->port, a, &fd);
		CHECK(r <= 0);
		if (r < 0)
			CHECK(fd == -1);
		else if (a == SLOT_ADDR)
			take_fd(&f->unplug_fd, fd);
		else if (fd >= 0)
			close(fd);
		break;
	case 2:
		r = vdev_pcie_port_surprise_remove(f->port);
		CHECK(r == 0 || r == -ENOENT);
		if (r == 0 && hp->get_secondary_bus(f->port) == 1)
			CHECK(!vdev_pci_root_find(f->root, SLOT_ADDR));
		break;
	case 3:
		got = op[2] & 2 ? HOST_ADDR : v;
		r = hp->is_match(f->port, got);
		CHECK(r == -ENOENT || (r == -EINVAL && got > 0xffff) || (r >= 0 && r <= 255));
		CHECK(hp->get_address(f->port, &got) == 0 && got == fn_addr[F_PORT]);
		r = hp->get_secondary_bus(f->port);
		CHECK(r >= 0 && r <= 255);
		r = hp->add_hotplug_device(f->port, key, a);
		CHECK(r <= 0);
		if (r == 0)
			CHECK(hp->get_hotplug_device(f->port, key, &got) == 0 && got == a);
		if (key == VDEV_HOTPLUG_KEY_NONE)
			CHECK(r == -EINVAL);
		r = hp->is_empty(f->port);
		CHECK(r == 0 || r == 1);
		CHECK(hp->get_hotplug_key(f->port) == HP_KEY);
		break;
	default:
		CHECK(vdev_pcie_port_slot_state(f->port, &st, &ctl) == 0);
		CHECK(vdev_pcie_port_slot_state(f->port, NULL, NULL) == 0);
		CHECK(vdev_pcie_port_slot_state(NULL, &st, &ctl) == -EINVAL);
		break;
	}
}

/*
 * p1 bit0 which virtio-pci function; p2 what; p3 queue. What 7 puts the
 * MMIO bus's devices to sleep or wakes them (the guest goes on meanwhile).
 */
static void op_device(struct fz *f, const uint8_t *op, uint32_t v)
{
	struct vpfn *vp = &f->vp[op[1] & 1];
	uint32_t addr = fn_addr[op[1] & 1 ? F_VP2 : F_VP1];
	uint32_t q = op[3] % (f->nq + 1), val;
	struct placed *p = shadow_find(f, addr, VDEV_VIRTIO_PCI_BAR_MODERN);
	vdev_device *dev;
	uint8_t b[8];
	uint64_t a;
	int r;

	(void)v;
	if (op[2] % 8 == 7) {
		r = f->asleep ? vdev_bus_wake(f->mmio) : vdev_bus_sleep(f->mmio);
		CHECK(r <= 0);
		if (r == 0)
			f->asleep = !f->asleep;
		return;
	}
	if (!vp->vp)
		return;
	dev = vdev_virtio_pci_device(vp->vp);
	CHECK(dev == vdev_blk_device(vp->blk));
	switch (op[2] % 8) {
	case 0:
		r = vdev_device_queue_notify(dev, q);
		CHECK(r <= 0);
		break;
	case 1:
		CHECK(vdev_device_config_changed(dev) <= 0);
		break;
	case 2:
		(void)vdev_blk_process_completions(vp->blk, q);
		break;
	case 3:
		r = vdev_virtio_pci_notify_address(vp->vp, q, &a, &val);
		CHECK(r == 0 || r == -EINVAL || r == -ENXIO);
		if (q >= f->nq)
			CHECK(r == -EINVAL);
		if (vdev_pci_root_find(f->root, addr) == vp->vp && q < f->nq) {
			CHECK(r == (p ? 0 : -ENXIO));
			if (p)
				CHECK(val == q && inside(a, 2, p->base + VDEV_VIRTIO_PCI_NOTIFY_OFFSET,
							 p->size - VDEV_VIRTIO_PCI_NOTIFY_OFFSET));
		}
		break;
	case 4:
		vdev_device_set_needs_reset(dev);
		break;
	case 5:
		vdev_device_reset(dev);
		break;
	default: /* the function answers at its BAR 4, wherever the guest put it */
		if (!p || vdev_pci_root_find(f->root, addr) != vp->vp)
			break;
		r = bus_access(f, 0,
			       p->base + VDEV_VIRTIO_PCI_COMMON_OFFSET + VIRTIO_PCI_COMMON_NUMQ, 2,
			       0, b);
		if (r == 0)
			CHECK(get_le(b, 2) == f->nq);
		break;
	}
}

/* p1-p2 offset; v the value. */
static void op_ram(struct fz *f, const uint8_t *op, uint32_t v)
{
	uint32_t off = (op[1] | (uint32_t)op[2] << 8) % (RAM_SIZE - 3);

	put32(f->ram + off, v);
}

/* p1 bit0: 00:01.0 or 00:03.0. */
static void op_readd(struct fz *f, const uint8_t *op, uint32_t v)
{
	uint32_t which = op[1] & 1 ? F_PLAIN : F_VP1, addr = fn_addr[which];

	(void)v;
	if (vdev_pci_root_find(f->root, addr)) {
		CHECK(vdev_pci_root_remove(f->root, addr) == 0);
		CHECK(!vdev_pci_root_find(f->root, addr));
		for (uint32_t i = 0; i < f->nplaced; i++)
			CHECK(f->shadow[i].addr != addr);
		if (which == F_PLAIN) {
			vdev_pci_cfg_free(f->plain);
			f->plain = NULL;
		} else {
			vp_free(&f->vp[0]);
		}
	} else if (which == F_PLAIN) {
		add_plain(f);
	} else {
		add_vp(f, 0);
	}
}

/* ---- the machine --------------------------------------------------------- */

static void machine_new(struct fz *f, uint8_t flags, uint8_t vecs)
{
	static const uint32_t mults[] = {0, 2, 64, 4096};
	struct vdev_pci_root_config rc = VDEV_PCI_ROOT_CONFIG_INIT;
	struct vdev_pci_vcfg_config vc = VDEV_PCI_VCFG_CONFIG_INIT;
	struct vdev_pcie_port_config pc = VDEV_PCIE_PORT_CONFIG_INIT;

	f->plug_fd = f->unplug_fd = -1;
	f->nq = flags & 0x20 ? 2 : 1;
	f->nvec = vecs % 9;
	f->notify_mult = mults[flags >> 6];
	f->vp[0].flags = (flags & 1 ? VDEV_VIRTIO_PCI_F_TRANSITIONAL : 0) |
			 (flags & 2 ? VDEV_VIRTIO_PCI_F_NO_MSIX : 0);
	f->vp[1].flags = (flags & 4 ? VDEV_VIRTIO_PCI_F_TRANSITIONAL : 0) |
			 (flags & 8 ? VDEV_VIRTIO_PCI_F_NO_MSIX : 0);
	f->port_msi.nvec = MAX_VECTORS;

	CHECK(vdev_bus_new(VDEV_BUS_MMIO, &f->mmio) == 0);
	CHECK(vdev_bus_new(VDEV_BUS_PIO, &f->pio) == 0);
	CHECK(vdev_mem_new(&f->mem) == 0);
	CHECK(vdev_mem_add_region(f->mem, RAM_BASE, RAM_SIZE, f->ram, 0) == 0);

	rc.num_buses = NUM_BUSES;
	rc.mmio_bus = f->mmio;
	rc.pio_bus = f->pio;
	rc.mmio32_base = MMIO32_BASE;
	rc.mmio32_size = MMIO32_SIZE;
	rc.mmio64_base = MMIO64_BASE;
	rc.mmio64_size = MMIO64_SIZE;
	rc.io_base = IO_BASE;
	rc.io_size = IO_SIZE;
	rc.ops = &root_ops;
	rc.opaque = f;
	CHECK(vdev_pci_root_new(&rc, &f->root) == 0);
	CHECK(vdev_bus_insert(f->pio, CF8_PORT, 8, vdev_pci_root_pio_ops(), f->root) == 0);
	CHECK(vdev_bus_insert(f->mmio, ECAM_BASE, ECAM_SIZE, vdev_pci_root_ecam_ops(), f->root) ==
	      0);
	vc.num_buses = NUM_BUSES;
	vc.root = f->root;
	CHECK(vdev_pci_vcfg_new(&vc, &f->vcfg) == 0);
	CHECK(vdev_bus_insert(f->mmio, VCFG_BASE, VCFG_SIZE, vdev_pci_vcfg_bus_ops(), f->vcfg) ==
	      0);

	add_vp(f, 0);
	pc.addr = fn_addr[F_PORT];
	pc.root = f->root;
	pc.secondary_bus = 1;
	pc.slot_number = 5;
	pc.mem_base = PORT_MEM_BASE;
	pc.mem_size = PORT_WIN_SIZE;
	pc.pref_base = PORT_PREF_BASE;
	pc.pref_size = PORT_WIN_SIZE;
	pc.io_base = PORT_IO_BASE;
	pc.io_size = PORT_IO_SIZE;
	pc.flags = flags & 0x10 ? VDEV_PCIE_PORT_F_SURPRISE : 0;
	pc.hotplug_key = HP_KEY;
	pc.host_addr = HOST_ADDR;
	pc.msi_ops = &msi_ops;
	pc.msi_opaque = &f->port_msi;
	CHECK(vdev_pcie_port_new(&pc, &f->port) == 0);
	add_plain(f);
	check_state(f);
}

static void machine_free(struct fz *f)
{
	uint16_t slot_status;

	if (f->asleep)
		CHECK(vdev_bus_wake(f->mmio) == 0);
	CHECK(vdev_bus_remove(f->mmio, VCFG_BASE) == 0);
	vdev_pci_vcfg_free(f->vcfg);
	CHECK(vdev_bus_remove(f->mmio, ECAM_BASE) == 0);
	CHECK(vdev_bus_remove(f->pio, CF8_PORT) == 0);
	CHECK(vdev_pcie_port_slot_state(f->port, &slot_status, NULL) == 0);
	vdev_pcie_port_free(f->port);
	CHECK(!vdev_pci_root_find(f->root, fn_addr[F_PORT]));
	/* What was plugged goes with the port; a function the VMM added but
	 * never announced stays on the root until the root goes. */
	if (slot_status & PCI_EXP_SLTSTA_PDS)
		CHECK(!vdev_pci_root_find(f->root, SLOT_ADDR));
	vdev_pci_root_free(f->root);
	CHECK(f->nplaced == 0);
	CHECK(vdev_bus_num_ranges(f->mmio) == 0);
	CHECK(vdev_bus_num_ranges(f->pio) == 0);
	vp_free(&f->vp[0]);
	vp_free(&f->vp[1]);
	vdev_pci_cfg_free(f->plain);
	vdev_bus_free(f->mmio);
	vdev_bus_free(f->pio);
	vdev_mem_free(f->mem);
	if (f->plug_fd >= 0)
		close(f->plug_fd);
	if (f->unplug_fd >= 0)
		close(f->unplug_fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	typedef void (*op_fn)(struct fz *, const uint8_t *, uint32_t);
	static const op_fn ops[16] = {
		op_cf8,	 op_cfc,      op_ecam,	  op_direct, op_cap, op_bar,   op_mmio,	 op_pio,
		op_vcfg, op_firmware, op_hotplug, op_device, op_ram, op_readd, op_bar, op_cap,
	};
	struct fz f;
	uint32_t nops;
	size_t pos;

	if (size < HDR_SIZE)
		return 0;
	if (!hp)
		hp = vdev_pcie_port_hotplug_ops();
	memset(&f, 0, sizeof(f));
	nops = data[2] | (uint32_t)data[3] << 8;
	if (nops > MAX_OPS)
		nops = MAX_OPS;
	if (nops > (size - HDR_SIZE) / OP_SIZE)
		nops = (uint32_t)((size - HDR_SIZE) / OP_SIZE);
	pos = HDR_SIZE + (size_t)nops * OP_SIZE;
	f.ram = calloc(1, RAM_SIZE);
	CHECK(f.ram);
	memcpy(f.ram, data + pos, size - pos < RAM_SIZE ? size - pos : RAM_SIZE);

	machine_new(&f, data[0], data[1]);
	for (uint32_t i = 0; i < nops; i++) {
		const uint8_t *op = data + HDR_SIZE + (size_t)i * OP_SIZE;

		ops[op[0] % 16](&f, op, get32(op + 8));
		check_state(&f);
	}
	machine_free(&f);
	free(f.ram);
	return 0;
}
