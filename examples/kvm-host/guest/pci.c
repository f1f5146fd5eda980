/* SPDX-License-Identifier: MIT */
/*
 * PCI as the guest sees it: config space through the ECAM window the boot
 * info names, BARs by MMIO (both mapped by the host's page tables: they lie
 * in [3 GiB, 4 GiB), uncached, user-accessible), the library's driver-side
 * enumeration and BAR assignment over that, and what firmware would do:
 * give every virtio function its BARs from the window the host set aside.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <linux/pci_regs.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_pci.h>

#include <virtio-dev/virtio-pci.h>

#include "tg.h"

#define MAX_FUNCTIONS 32u
#define ECAM_FN_SHIFT 12u /* VDEV_PCI_ADDR << 12: bus << 20 | dev << 15 | fn << 12 */

struct tg_pci {
	uint64_t ecam;
	uint64_t ecam_size;
	struct vdev_drv_pci_window mem;
};

/* ---- config space and BARs ------------------------------------------------ */

/* The function's config space in the ECAM window, or 0 when @addr or the
 * access lies outside it (such reads see all ones, as from no device). */
static uint64_t ecam_gpa(const struct tg_pci *p, uint32_t addr, uint32_t offset, uint32_t width)
{
	uint64_t off = ((uint64_t)addr << ECAM_FN_SHIFT) + offset;

	if (offset >= VDEV_PCI_CONFIG_SIZE || width > VDEV_PCI_CONFIG_SIZE - offset ||
	    off >= p->ecam_size)
		return 0;
	return p->ecam + off;
}

static uint32_t cfg_read(void *ctx, uint32_t addr, uint32_t offset, uint32_t width)
{
	uint64_t gpa = ecam_gpa(ctx, addr, offset, width);

	return gpa ? (uint32_t)tg_mmio_read(gpa, width) : 0xffffffffu;
}

static void cfg_write(void *ctx, uint32_t addr, uint32_t offset, uint32_t width, uint32_t value)
{
	uint64_t gpa = ecam_gpa(ctx, addr, offset, width);

	if (gpa)
		tg_mmio_write(gpa, width, value);
}

static uint64_t mem_read(void *ctx, uint64_t gpa, uint32_t width)
{
	(void)ctx;
	return tg_mmio_read(gpa, width);
}

static void mem_write(void *ctx, uint64_t gpa, uint32_t width, uint64_t value)
{
	(void)ctx;
	tg_mmio_write(gpa, width, value);
}

/* No I/O BARs: the host's virtio-pci functions are modern only. */
const struct vdev_drv_pci_io_ops tg_pci_io = {
	.struct_size = sizeof(struct vdev_drv_pci_io_ops),
	.cfg_read = cfg_read,
	.cfg_write = cfg_write,
	.mem_read = mem_read,
	.mem_write = mem_write,
};

/* ---- the root --------------------------------------------------------------- */

struct tg_pci *tg_pci_open(const struct tg_device *ecam, const struct tg_boot_info *bi)
{
	struct tg_pci *p;

	/* Below 4 GiB, where the host maps device windows; whole buses. */
	if (!ecam->size || ecam->size % VDEV_PCI_ECAM_BUS_SIZE ||
	    ecam->size > 256ull * VDEV_PCI_ECAM_BUS_SIZE || ecam->base >= (1ull << 32) ||
	    ecam->size > (1ull << 32) - ecam->base) {
		tg_printf("pci: ECAM window 0x%lx + 0x%lx is not whole buses below 4 GiB",
			  ecam->base, ecam->size);
		return NULL;
	}
	if (!bi->pci_mem_size || bi->pci_mem_base >= (1ull << 32) ||
	    bi->pci_mem_size > (1ull << 32) - bi->pci_mem_base) {
		tg_printf("pci: no BAR window below 4 GiB (0x%lx + 0x%lx)", bi->pci_mem_base,
			  bi->pci_mem_size);
		return NULL;
	}
	p = tg_alloc(sizeof(*p), 16);
	if (!p) {
		tg_printf("pci: out of heap");
		return NULL;
	}
	p->ecam = ecam->base;
	p->ecam_size = ecam->size;
	p->mem.base = p->mem.next = bi->pci_mem_base;
	p->mem.size = bi->pci_mem_size;
	return p;
}

struct tg_pci *tg_pci_open_bridge(const struct tg_pci *root, uint64_t base, uint64_t size)
{
	struct tg_pci *p;

	if (!size || base >= (1ull << 32) || size > (1ull << 32) - base) {
		tg_printf("pci: bridge window 0x%lx + 0x%lx is not below 4 GiB", base, size);
		return NULL;
	}
	p = tg_alloc(sizeof(*p), 16);
	if (!p) {
		tg_printf("pci: out of heap");
		return NULL;
	}
	*p = *root;
	p->mem.base = p->mem.next = base;
	p->mem.size = size;
	return p;
}

static uint64_t bar_address(struct tg_pci *p, uint32_t addr, uint32_t bar)
{
	return vdev_drv_pci_bar_address(&tg_pci_io, p, addr, bar);
}

static int is_virtio(const struct vdev_drv_pci_function *f)
{
	return f->vendor_id == VDEV_VIRTIO_PCI_VENDOR_ID && f->header_type == 0;
}

static int is_virtio_blk(const struct vdev_drv_pci_function *f)
{
	return is_virtio(f) && f->device_id == VDEV_VIRTIO_PCI_DEVICE_ID_BASE + VIRTIO_ID_BLOCK;
}

int tg_pci_assign_bars(struct tg_pci *p, uint32_t addr, int quiet)
{
	int r = vdev_drv_pci_assign_bars(&tg_pci_io, p, addr, &p->mem, NULL);

	if (r < 0) {
		tg_printf("pci " TG_PCI_FMT ": cannot assign its BARs (%d)", TG_PCI_ARGS(addr), r);
		return r;
	}
	if (!quiet)
		tg_printf("pci " TG_PCI_FMT ": BAR 1 at 0x%lx, BAR 4 at 0x%lx", TG_PCI_ARGS(addr),
			  bar_address(p, addr, VDEV_VIRTIO_PCI_BAR_MSIX),
			  bar_address(p, addr, VDEV_VIRTIO_PCI_BAR_MODERN));
	return 0;
}

int tg_pci_find_blk(struct tg_pci *p, int quiet, struct tg_vdev *blk)
{
	struct vdev_drv_pci_function fns[MAX_FUNCTIONS];
	int n = vdev_drv_pci_enumerate(&tg_pci_io, p, fns, MAX_FUNCTIONS), found = 0;
	uint32_t i;

	if (n < 0) {
		tg_printf("pci: enumeration failed (%d)", n);
		return -1;
	}
	if (!quiet)
		tg_printf("pci: ECAM at 0x%lx, %d functions%s", p->ecam, n,
			  n > (int)MAX_FUNCTIONS ? " (listing the first 32)" : "");
	for (i = 0; i < (uint32_t)n && i < MAX_FUNCTIONS; i++) {
		const struct vdev_drv_pci_function *f = &fns[i];
		int blk_here = !found && is_virtio_blk(f);

		if (!quiet)
			tg_printf("pci " TG_PCI_FMT ": %04x:%04x class %06x rev %u%s",
				  TG_PCI_ARGS(f->addr), f->vendor_id, f->device_id, f->class_code,
				  f->revision, is_virtio_blk(f) ? " (virtio-blk)" :
				  is_virtio(f) ? " (virtio)" : "");
		/* Quiet (first-io): the disk only; else every virtio function. */
		if ((blk_here || (!quiet && is_virtio(f))) && tg_pci_assign_bars(p, f->addr, quiet) < 0)
			continue;
		if (blk_here) {
			blk->kind = TG_DEV_PCI_ECAM;
			blk->base = 0;
			blk->pci = p;
			blk->addr = f->addr;
			found = 1;
			if (quiet)
				break;
		}
	}
	if (!found)
		tg_printf("pci: no virtio-blk function (1af4:%04x)",
			  VDEV_VIRTIO_PCI_DEVICE_ID_BASE + VIRTIO_ID_BLOCK);
	return found ? 0 : -1;
}

/* ---- moving a BAR ------------------------------------------------------------- */

uint64_t tg_pci_move_bar(struct tg_pci *p, uint32_t addr, uint32_t bar)
{
	uint32_t reg = PCI_BASE_ADDRESS_0 + 4 * bar, lo, hi = 0, is64;
	uint16_t cmd = (uint16_t)cfg_read(p, addr, PCI_COMMAND, 2);
	uint64_t old = bar_address(p, addr, bar), size, to;

	lo = cfg_read(p, addr, reg, 4);
	is64 = (lo & PCI_BASE_ADDRESS_SPACE) == PCI_BASE_ADDRESS_SPACE_MEMORY &&
	       (lo & PCI_BASE_ADDRESS_MEM_TYPE_MASK) == PCI_BASE_ADDRESS_MEM_TYPE_64;
	if (!old || (lo & PCI_BASE_ADDRESS_SPACE) != PCI_BASE_ADDRESS_SPACE_MEMORY ||
	    (is64 && bar == 5)) {
		tg_printf("pci: BAR %u is not an assigned memory BAR", bar);
		return 0;
	}
	/* Size it with decode off, as firmware does. */
	cfg_write(p, addr, PCI_COMMAND, 2, cmd & ~(PCI_COMMAND_MEMORY | PCI_COMMAND_IO));
	cfg_write(p, addr, reg, 4, 0xffffffffu);
	if (is64) {
		cfg_write(p, addr, reg + 4, 4, 0xffffffffu);
		hi = cfg_read(p, addr, reg + 4, 4);
	}
	size = ((uint64_t)hi << 32 | (cfg_read(p, addr, reg, 4) & PCI_BASE_ADDRESS_MEM_MASK));
	size = is64 ? ~size + 1 : (uint32_t)(~size + 1);
	/* The next aligned place in the window. */
	to = size ? (p->mem.next + size - 1) & ~(size - 1) : 0;
	if (!size || (size & (size - 1)) || to < p->mem.next ||
	    to - p->mem.base > p->mem.size || size > p->mem.size - (to - p->mem.base))
		to = old; /* nowhere to go: put it back */
	else
		p->mem.next = to + size;
	cfg_write(p, addr, reg, 4, (uint32_t)to | (lo & ~PCI_BASE_ADDRESS_MEM_MASK));
	if (is64)
		cfg_write(p, addr, reg + 4, 4, (uint32_t)(to >> 32));
	cfg_write(p, addr, PCI_COMMAND, 2, cmd);
	if (to == old || bar_address(p, addr, bar) != to) {
		tg_printf("pci: BAR %u (0x%lx bytes) could not move from 0x%lx", bar, size, old);
		return 0;
	}
	return to;
}

/* ---- raw virtio registers (hostile.c) -------------------------------------------- */

static uint32_t cfg32(struct tg_pci *p, uint32_t addr, uint32_t offset)
{
	return cfg_read(p, addr, offset, 4);
}

int tg_pci_virtio_regs(struct tg_pci *p, uint32_t addr, uint32_t queue, uint64_t *common,
		       uint64_t *notify)
{
	uint64_t storage_size = vdev_drv_vpci_storage_size(), notify_base = 0, noff;
	void *storage = tg_alloc(storage_size, 16);
	uint32_t mult = 0, notify_len = 0;
	vdev_drv_vpci *vp;
	int cap, r;

	/* The driver side checks every capability against its BAR; then the
	 * first common and notify ones are where it found them. */
	r = storage ? vdev_drv_vpci_init(storage, storage_size, &tg_pci_io, p, addr, &vp) : -1;
	if (r < 0) {
		tg_printf("pci: not a usable virtio-pci function (%d)", r);
		return -1;
	}
	*common = 0;
	for (cap = vdev_drv_pci_find_capability(&tg_pci_io, p, addr, PCI_CAP_ID_VNDR, 0); cap > 0;
	     cap = vdev_drv_pci_find_capability(&tg_pci_io, p, addr, PCI_CAP_ID_VNDR,
						(uint32_t)cap)) {
		uint32_t type = cfg_read(p, addr, (uint32_t)cap + VIRTIO_PCI_CAP_CFG_TYPE, 1);
		uint32_t bar = cfg_read(p, addr, (uint32_t)cap + VIRTIO_PCI_CAP_BAR, 1);
		uint64_t at = bar_address(p, addr, bar) +
			      cfg32(p, addr, (uint32_t)cap + VIRTIO_PCI_CAP_OFFSET);

		if (type == VIRTIO_PCI_CAP_COMMON_CFG && !*common) {
			*common = at;
		} else if (type == VIRTIO_PCI_CAP_NOTIFY_CFG && !notify_base) {
			notify_base = at;
			notify_len = cfg32(p, addr, (uint32_t)cap + VIRTIO_PCI_CAP_LENGTH);
			mult = cfg32(p, addr, (uint32_t)cap +
						      offsetof(struct virtio_pci_notify_cap,
							       notify_off_multiplier));
		}
	}
	if (!*common || !notify_base) {
		tg_printf("pci: no common or notify capability");
		return -1;
	}
	tg_mmio_write(*common + VIRTIO_PCI_COMMON_Q_SELECT, 2, queue);
	noff = tg_mmio_read(*common + VIRTIO_PCI_COMMON_Q_NOFF, 2) * mult;
	if (noff + 2 > notify_len) {
		tg_printf("pci: queue %u notifies at 0x%lx, outside the notify area (%u bytes)",
			  queue, noff, notify_len);
		return -1;
	}
	*notify = notify_base + noff;
	return 0;
}
