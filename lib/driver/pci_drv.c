/* SPDX-License-Identifier: MIT */
/*
 * PCI, driver side: what firmware and a guest kernel's PCI core do with a
 * bus before a device driver binds: enumerate (depth-first through bridges
 * as programmed), walk capability lists, size and assign BARs. Everything
 * read from config space is device input and is bounded: bus numbers only
 * grow going down a bridge, capability walks stop after 48 entries.
 * Freestanding: no libc beyond memcpy/memset, no allocation.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <linux/pci_regs.h>

#include <virtio-dev/pci.h>

#include "internal/util.h"
#include "pci_drv_internal.h"

#define CAP_MIN_OFFSET 0x40u
#define MAX_BUSES 256u
#define MAX_DEVICES 32u
#define MAX_FUNCTIONS 8u
#define ADDR_MAX 0xffffu
#define BAR_MEM_FLAGS 0xfu
#define BAR_IO_FLAGS 0x3u

int vdi_drv_pci_io_copy(struct vdev_drv_pci_io_ops *dst, const struct vdev_drv_pci_io_ops *src)
{
	if (!src || vdi_copy_versioned(dst, sizeof(*dst), src) < 0)
		return -EINVAL;
	if (!dst->cfg_read || !dst->cfg_write)
		return -EINVAL;
	return 0;
}

uint32_t vdi_drv_pci_cfg_rd(const struct vdev_drv_pci_io_ops *o, void *ctx, uint32_t addr,
			    uint32_t offset, uint32_t width)
{
	uint32_t v = o->cfg_read(ctx, addr, offset, width);

	if (width == 1)
		return v & 0xffu;
	if (width == 2)
		return v & 0xffffu;
	return v;
}

static uint32_t rd8(const struct vdev_drv_pci_io_ops *o, void *ctx, uint32_t addr, uint32_t off)
{
	return vdi_drv_pci_cfg_rd(o, ctx, addr, off, 1);
}

static uint32_t rd16(const struct vdev_drv_pci_io_ops *o, void *ctx, uint32_t addr, uint32_t off)
{
	return vdi_drv_pci_cfg_rd(o, ctx, addr, off, 2);
}

static uint32_t rd32(const struct vdev_drv_pci_io_ops *o, void *ctx, uint32_t addr, uint32_t off)
{
	return vdi_drv_pci_cfg_rd(o, ctx, addr, off, 4);
}

static int vendor_present(uint32_t id)
{
	uint32_t vendor = id & 0xffffu;

	return vendor != 0xffffu && vendor != 0;
}

uint32_t vdi_drv_pci_num_bars(const struct vdev_drv_pci_io_ops *o, void *ctx, uint32_t addr)
{
	switch (rd8(o, ctx, addr, PCI_HEADER_TYPE) & PCI_HEADER_TYPE_MASK) {
	case PCI_HEADER_TYPE_NORMAL:
		return PCI_STD_NUM_BARS;
	case PCI_HEADER_TYPE_BRIDGE:
		return 2;
	default:
		return 0;
	}
}

/* ---- enumeration ---------------------------------------------------------- */

/* Where the scan of one bus stands; a bridge pushes its secondary bus. */
struct scan_frame {
	uint8_t bus;
	uint8_t dev;
	uint8_t fn;
	uint8_t nfn; /* functions of the current device: 1, or 8 if multi-function */
};

static void record(const struct vdev_drv_pci_io_ops *o, void *ctx, uint32_t addr, uint32_t id,
		   struct vdev_drv_pci_function *f)
{
	uint32_t cls = rd32(o, ctx, addr, PCI_CLASS_REVISION);

	memset(f, 0, sizeof(*f));
	f->addr = addr;
	f->vendor_id = (uint16_t)id;
	f->device_id = (uint16_t)(id >> 16);
	f->class_code = cls >> 8;
	f->revision = (uint8_t)cls;
	f->header_type = (uint8_t)(rd8(o, ctx, addr, PCI_HEADER_TYPE) & PCI_HEADER_TYPE_MASK);
	if (f->header_type == PCI_HEADER_TYPE_BRIDGE) {
		f->secondary_bus = (uint8_t)rd8(o, ctx, addr, PCI_SECONDARY_BUS);
		f->subordinate_bus = (uint8_t)rd8(o, ctx, addr, PCI_SUBORDINATE_BUS);
	}
}

int vdev_drv_pci_enumerate(const struct vdev_drv_pci_io_ops *io, void *ctx,
			   struct vdev_drv_pci_function *out, uint32_t max)
{
	struct vdev_drv_pci_io_ops o;
	/* Each push goes to a strictly higher bus number: 256 frames suffice. */
	struct scan_frame stack[MAX_BUSES];
	uint8_t scanned[MAX_BUSES / 8];
	struct vdev_drv_pci_function f;
	uint32_t depth = 1, count = 0;

	if (vdi_drv_pci_io_copy(&o, io) < 0 || (max && !out))
		return -EINVAL;
	memset(scanned, 0, sizeof(scanned));
	memset(stack, 0, sizeof(stack[0]));
	scanned[0] = 1;
	while (depth) {
		struct scan_frame *s = &stack[depth - 1];
		uint32_t addr, id, sec;

		if (s->dev >= MAX_DEVICES) {
			depth--;
			continue;
		}
		addr = VDEV_PCI_ADDR(s->bus, s->dev, s->fn);
		id = rd32(&o, ctx, addr, PCI_VENDOR_ID);
		if (s->fn == 0) {
			/* Only function 0's header says whether 1..7 exist. */
			s->nfn = 1;
			if (vendor_present(id) && (rd8(&o, ctx, addr, PCI_HEADER_TYPE) & 0x80u))
				s->nfn = MAX_FUNCTIONS;
		}
		/* Advance first: a push below moves on to the child bus. */
		if (++s->fn >= s->nfn) {
			s->fn = 0;
			s->dev++;
		}
		if (!vendor_present(id))
			continue;
		record(&o, ctx, addr, id, &f);
		if (count < max)
			out[count] = f;
		count++;
		if (f.header_type != PCI_HEADER_TYPE_BRIDGE)
			continue;
		/* A bridge pointing back up (or at itself) would loop: only a
		 * higher bus not seen yet is followed. */
		sec = f.secondary_bus;
		if (sec <= VDEV_PCI_ADDR_BUS(addr) || (scanned[sec / 8] & (1u << (sec % 8))))
			continue;
		scanned[sec / 8] |= (uint8_t)(1u << (sec % 8));
		memset(&stack[depth], 0, sizeof(stack[depth]));
		stack[depth].bus = (uint8_t)sec;
		depth++;
	}
	return (int)count;
}

/* ---- capabilities --------------------------------------------------------- */

int vdi_drv_pci_find_cap(const struct vdev_drv_pci_io_ops *o, void *ctx, uint32_t addr,
			 uint8_t cap_id, uint32_t start)
{
	uint32_t pos, ent, ttl;

	if (start) {
		/* Continue after a capability the caller found before. */
		if (start < CAP_MIN_OFFSET || start > 0xffu - 1)
			return -EINVAL;
		pos = rd8(o, ctx, addr, start + PCI_CAP_LIST_NEXT);
	} else {
		if (!(rd16(o, ctx, addr, PCI_STATUS) & PCI_STATUS_CAP_LIST))
			return -ENOENT;
		/* CardBus bridges keep their list elsewhere; nothing here drives them. */
		switch (rd8(o, ctx, addr, PCI_HEADER_TYPE) & PCI_HEADER_TYPE_MASK) {
		case PCI_HEADER_TYPE_NORMAL:
		case PCI_HEADER_TYPE_BRIDGE:
			break;
		default:
			return -ENOENT;
		}
		pos = rd8(o, ctx, addr, PCI_CAPABILITY_LIST);
	}
	for (ttl = 0; ttl < VDI_PCI_CAP_TTL; ttl++) {
		pos &= ~3u;
		if (!pos)
			return -ENOENT;
		if (pos < CAP_MIN_OFFSET)
			return -EBADMSG;
		ent = rd16(o, ctx, addr, pos);
		/* All ones: the function went away under us (Linux stops too). */
		if ((ent & 0xffu) == 0xffu)
			return -ENOENT;
		if ((ent & 0xffu) == cap_id)
			return (int)pos;
		pos = ent >> 8;
	}
	return -ELOOP;
}

int vdev_drv_pci_find_capability(const struct vdev_drv_pci_io_ops *io, void *ctx, uint32_t addr,
				 uint8_t cap_id, uint32_t start)
{
	struct vdev_drv_pci_io_ops o;

	if (vdi_drv_pci_io_copy(&o, io) < 0 || addr > ADDR_MAX)
		return -EINVAL;
	return vdi_drv_pci_find_cap(&o, ctx, addr, cap_id, start);
}

/* ---- BARs ----------------------------------------------------------------- */

static void wr32(const struct vdev_drv_pci_io_ops *o, void *ctx, uint32_t addr, uint32_t off,
		 uint32_t v)
{
	o->cfg_write(ctx, addr, off, 4, v);
}

static uint32_t bar_reg(uint32_t bar)
{
	return PCI_BASE_ADDRESS_0 + 4u * bar;
}

static int bar_is_mem64(uint32_t lo)
{
	return !(lo & PCI_BASE_ADDRESS_SPACE_IO) &&
	       (lo & PCI_BASE_ADDRESS_MEM_TYPE_MASK) == PCI_BASE_ADDRESS_MEM_TYPE_64;
}

/* The lowest bit of the writable address bits is the size (PCI 3.0, 6.2.5.1). */
static uint64_t lowest_bit(uint64_t mask)
{
	return mask & (~mask + 1);
}

int vdi_drv_pci_size_bars(const struct vdev_drv_pci_io_ops *o, void *ctx, uint32_t addr,
			  uint32_t nbars, struct vdi_pci_bar *bars)
{
	uint32_t i, reg, lo, sz, hi, szhi;

	memset(bars, 0, nbars * sizeof(*bars));
	for (i = 0; i < nbars; i += bars[i].regs) {
		reg = bar_reg(i);
		bars[i].regs = 1;
		lo = rd32(o, ctx, addr, reg);
		wr32(o, ctx, addr, reg, ~0u);
		sz = rd32(o, ctx, addr, reg);
		wr32(o, ctx, addr, reg, lo);
		if (lo & PCI_BASE_ADDRESS_SPACE_IO) {
			/* All ones back is no BAR at all (an absent function). */
			if (sz == ~0u)
				continue;
			bars[i].kind = VDEV_PCI_BAR_IO;
			bars[i].address = lo & ~BAR_IO_FLAGS;
			bars[i].size = lowest_bit(sz & ~BAR_IO_FLAGS);
			continue;
		}
		if (lo & PCI_BASE_ADDRESS_MEM_PREFETCH)
			bars[i].kind |= VDEV_PCI_BAR_PREFETCH;
		if (!bar_is_mem64(lo)) {
			bars[i].address = lo & ~BAR_MEM_FLAGS;
			bars[i].size = sz == ~0u ? 0 : lowest_bit(sz & ~BAR_MEM_FLAGS);
			continue;
		}
		if (i + 1 >= nbars)
			return -EIO;
		bars[i].regs = 2;
		bars[i].kind |= VDEV_PCI_BAR_MEM64;
		hi = rd32(o, ctx, addr, reg + 4);
		wr32(o, ctx, addr, reg + 4, ~0u);
		szhi = rd32(o, ctx, addr, reg + 4);
		wr32(o, ctx, addr, reg + 4, hi);
		bars[i].address = ((uint64_t)hi << 32) | (lo & ~BAR_MEM_FLAGS);
		bars[i].size = lowest_bit(((uint64_t)szhi << 32) | (sz & ~BAR_MEM_FLAGS));
	}
	return 0;
}

/* Bump-allocate @size bytes aligned to @size from @w. Returns 0 or -ENOSPC. */
static int window_alloc(struct vdev_drv_pci_window *w, uint64_t size, uint64_t limit,
			uint64_t *out)
{
	uint64_t start = w->next < w->base ? w->base : w->next;
	uint64_t at = (start + size - 1) & ~(size - 1);

	if (at < start || at - w->base > w->size || size > w->size - (at - w->base))
		return -ENOSPC;
	if (at + size - 1 > limit)
		return -ENOSPC;
	*out = at;
	w->next = at + size;
	return 0;
}

/* Program BAR @i at @at and check that it sticks. Returns 0 or -EIO. */
static int bar_program(const struct vdev_drv_pci_io_ops *o, void *ctx, uint32_t addr, uint32_t i,
		       const struct vdi_pci_bar *b, uint64_t at)
{
	uint32_t reg = bar_reg(i), flags = b->kind & VDEV_PCI_BAR_IO ? BAR_IO_FLAGS : BAR_MEM_FLAGS;

	wr32(o, ctx, addr, reg, (uint32_t)at);
	if (b->regs == 2)
		wr32(o, ctx, addr, reg + 4, (uint32_t)(at >> 32));
	if ((rd32(o, ctx, addr, reg) & ~flags) != (uint32_t)at)
		return -EIO;
	if (b->regs == 2 && rd32(o, ctx, addr, reg + 4) != (uint32_t)(at >> 32))
		return -EIO;
	return 0;
}

static int window_ok(const struct vdev_drv_pci_window *w)
{
	return !w || w->base + w->size >= w->base;
}

int vdev_drv_pci_assign_bars(const struct vdev_drv_pci_io_ops *io, void *ctx, uint32_t addr,
			     struct vdev_drv_pci_window *mem, struct vdev_drv_pci_window *io_win)
{
	struct vdev_drv_pci_io_ops o;
	struct vdi_pci_bar bars[PCI_STD_NUM_BARS];
	uint32_t nbars, cmd, i, done = 0, any_io = 0;
	int r;

	if (vdi_drv_pci_io_copy(&o, io) < 0 || addr > ADDR_MAX || !mem || !window_ok(mem) ||
	    !window_ok(io_win))
		return -EINVAL;
	if (!vendor_present(rd32(&o, ctx, addr, PCI_VENDOR_ID)))
		return -EINVAL;
	nbars = vdi_drv_pci_num_bars(&o, ctx, addr);
	if (!nbars)
		return -EINVAL;

	/* Decode off while BARs hold sizing masks and new addresses; on an
	 * error it stays off, so a half-assigned function decodes nothing. */
	cmd = rd16(&o, ctx, addr, PCI_COMMAND) & ~(uint32_t)(PCI_COMMAND_IO | PCI_COMMAND_MEMORY);
	o.cfg_write(ctx, addr, PCI_COMMAND, 2, cmd);
	r = vdi_drv_pci_size_bars(&o, ctx, addr, nbars, bars);
	if (r < 0)
		return r;

	/* Largest first, as firmware does: with size-aligned bump allocation
	 * nothing is lost to alignment. */
	for (;;) {
		struct vdev_drv_pci_window *w;
		uint64_t at, limit;
		uint32_t best = nbars;

		for (i = 0; i < nbars; i++) {
			if (bars[i].size && !(done & (1u << i)) &&
			    (best == nbars || bars[i].size > bars[best].size))
				best = i;
		}
		if (best == nbars)
			break;
		done |= 1u << best;
		w = bars[best].kind & VDEV_PCI_BAR_IO ? io_win : mem;
		if (!w)
			continue; /* no I/O window: the BAR stays unassigned */
		limit = bars[best].kind & VDEV_PCI_BAR_MEM64 ? ~0ull : 0xffffffffull;
		r = window_alloc(w, bars[best].size, limit, &at);
		if (r < 0)
			return r;
		r = bar_program(&o, ctx, addr, best, &bars[best], at);
		if (r < 0)
			return r;
		if (bars[best].kind & VDEV_PCI_BAR_IO)
			any_io = 1;
	}

	cmd |= PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
	if (any_io)
		cmd |= PCI_COMMAND_IO;
	o.cfg_write(ctx, addr, PCI_COMMAND, 2, cmd);
	return 0;
}

uint64_t vdev_drv_pci_bar_address(const struct vdev_drv_pci_io_ops *io, void *ctx, uint32_t addr,
				  uint32_t bar)
{
	struct vdev_drv_pci_io_ops o;
	uint32_t nbars, i, lo = 0;

	if (vdi_drv_pci_io_copy(&o, io) < 0 || addr > ADDR_MAX)
		return 0;
	nbars = vdi_drv_pci_num_bars(&o, ctx, addr);
	/* Walk from BAR 0 so that the upper half of a 64-bit BAR reads 0. */
	for (i = 0; i < nbars; i += bar_is_mem64(lo) ? 2 : 1) {
		lo = rd32(&o, ctx, addr, bar_reg(i));
		if (i == bar)
			break;
	}
	if (i != bar || i >= nbars)
		return 0;
	if (lo & PCI_BASE_ADDRESS_SPACE_IO)
		return lo & ~BAR_IO_FLAGS;
	if (!bar_is_mem64(lo))
		return lo & ~BAR_MEM_FLAGS;
	if (bar + 1 >= nbars)
		return 0;
	return ((uint64_t)rd32(&o, ctx, addr, bar_reg(bar + 1)) << 32) | (lo & ~BAR_MEM_FLAGS);
}
