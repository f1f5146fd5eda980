/* SPDX-License-Identifier: MIT */
/*
 * The PCI root: a table of functions by address, config cycles from the
 * 0xCF8/0xCFC mechanism, from an ECAM window or from the VMM, and the
 * placement of the functions' BARs on the MMIO and port I/O buses.
 *
 * Functions. A sorted array of pointers by address (binary search); only
 * the functions that exist take space. A function on bus 0 is reached
 * directly. One on bus N > 0 is reached only if bus N is reachable: some
 * reachable function reports is_bridge() == N and, if that bridge has a gate
 * (pci_internal.h), its link is up. Reachability is recomputed on each
 * config cycle to a bus above 0 (a fixpoint over the bridges, each asked
 * once), so bus numbers the guest reprograms take effect at once.
 *
 * BARs. At add time the root sizes every BAR through the function's own
 * config_register_read/write (decode off meanwhile, every register put
 * back) and keeps its size, kind and address bits. A BAR is on the bus iff
 * its decode bit is on in the command register, it is implemented, its
 * address is not 0, and it is not being sized (vdi_pci_bar_base); I/O BARs
 * also need a port I/O bus. Being sized is decided from what the guest's
 * intercepted writes to the BAR dwords wrote, kept per function
 * (f->sizing), not from the register value, which cannot tell a size mask
 * from an address with every address bit set; so it works for any function
 * with config_register_read/write, and the root's own sizing at add leaves
 * nothing being sized. Its range is inserted with the function's ops
 * (destroy removed: the root runs destroy itself when the function leaves)
 * and opaque. A config write touching the command register or a BAR is
 * forwarded, then the placement is recomputed from the registers; if the new
 * placement lies outside the windows, overlaps itself, or cannot be inserted
 * (the bus is the truth for every other range: other functions, the ECAM
 * window, the VMM's own devices), the written bytes are put back (those the
 * guest last wrote as 0xff as 0xff, so a function keeping the same sizing
 * state, as vdev_pci_cfg does, stays in step with the root's), and the
 * write fails with -EBUSY, the bus exactly as before. Changed ranges move in
 * three steps: new ranges that do not overlap the function's own old ones
 * are inserted first (so most refusals never touch the old ranges), then the
 * old ranges leave, then the rest go in; a failure undoes every step. Only
 * then is bar_moved called for each BAR that moved. A dword write at 0x04
 * is split: the command half first (intercepted), the status half only if
 * that succeeded, so a refused write clears no RW1C status bit either.
 *
 * Locking. One mutex serializes config cycles, add/remove, gates and BAR
 * moves; the functions' config_register_*, is_bridge, gate link_up and the
 * VMM's bar_moved run with it held (so none may call vdev_pci_root_*: the
 * root notices a thread that already holds the lock and fails such a call
 * with -EDEADLK instead of hanging; vdev_pci_root_find and the internal
 * vdi_pci_root_set_gate / _remove_deferred are allowed and skip the lock).
 * vdev_bus_remove waits for accesses running in a range, and a BAR move or a
 * removal calls it with the lock held. A function whose BAR callback does a
 * config cycle on this root while another thread moves or removes that BAR
 * would deadlock; to bound that, config cycles (the CF8/ECAM paths,
 * vdev_pci_root_config_*, the virtual config window) wait at most
 * ROOT_CYCLE_TIMEOUT_S for the lock and then fail with -ETIMEDOUT (reads
 * give all ones), which lets the callback return and the remover proceed.
 * The VMM's calls (add, remove, find, free) wait as long as it takes.
 *
 * Deferred removal (vdi_pci_root_remove_deferred from inside a config
 * cycle): queued, and done by root_unlock before it drops the lock, so
 * before the config call returns; the function's destroy and the done
 * callback run right after the lock is dropped.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <linux/pci_regs.h>

#include <virtio-dev/pci.h>

#include "bus/pci_internal.h"
#include "internal/util.h"

/* How long a config cycle waits for the root's lock (see "Locking"). */
#define ROOT_CYCLE_TIMEOUT_S 2

#define REG_COMMAND (PCI_COMMAND / 4)
#define REG_BAR0 (PCI_BASE_ADDRESS_0 / 4)
#define CMD_DECODE (PCI_COMMAND_IO | PCI_COMMAND_MEMORY)
#define CF8_ENABLE 0x80000000u

/* For logs: bus:device.function. */
#define BDF_FMT "%02x:%02x.%x"
#define BDF(a) VDEV_PCI_ADDR_BUS(a), VDEV_PCI_ADDR_DEV(a), VDEV_PCI_ADDR_FN(a)

struct root_bar {
	uint64_t size;    /* 0: not implemented (or the upper half of a 64-bit BAR) */
	uint32_t kind;    /* VDEV_PCI_BAR_MEM32 / _MEM64 / _IO */
	uint32_t lo_mask; /* address bits, as sizing found them */
	uint32_t hi_mask;
	uint64_t placed; /* base of its range on the bus; 0: not on the bus */
};

struct root_fn {
	uint32_t addr;
	uint32_t nbars; /* 6 (type 0), 2 (type 1) or 0 */
	struct vdev_bus_device_ops ops;     /* the caller's, copied */
	struct vdev_bus_device_ops bar_ops; /* the same, destroy NULL: for BAR ranges */
	void *opaque;
	struct root_bar bars[VDEV_PCI_NUM_BARS];
	uint8_t sizing[VDEV_PCI_NUM_BARS]; /* per BAR dword (vdi_pci_sizing_write) */
	int (*link_up)(void *opaque); /* gate of the secondary bus, or NULL */
	void *gate_opaque;
	int32_t sec; /* scratch of bus_reachable: secondary bus if open, else -1 */
};

struct root_deferred {
	uint32_t addr;
	void (*done)(void *opaque, uint32_t addr);
	void *opaque;
	struct root_fn *fn; /* set once taken off */
};

struct vdev_pci_root {
	pthread_mutex_t lock;
	const char *owner; /* atomic: tl_token of the thread holding the lock */
	struct vdev_pci_root_config cfg;
	struct vdev_pci_root_ops ops;
	struct root_fn **fns; /* sorted by addr */
	size_t nfns, cap_fns;
	struct root_deferred *pending;
	size_t npending, cap_pending;
	uint32_t cf8; /* atomic: the 0xCF8 latch */
};

/* Its address identifies the thread (see root_holds). */
static __thread char tl_token;

/* ---- small helpers ---- */

static int valid_access(uint32_t offset, uint32_t size)
{
	return (size == 1 || size == 2 || size == 4) && offset < 4 && offset + size <= 4;
}

static int valid_addr(const vdev_pci_root *root, uint32_t addr)
{
	return addr <= 0xffff && VDEV_PCI_ADDR_BUS(addr) < root->cfg.num_buses;
}


static vdev_bus *bar_bus(const vdev_pci_root *root, const struct root_bar *b)
{
	return b->kind == VDEV_PCI_BAR_IO ? root->cfg.pio_bus : root->cfg.mmio_bus;
}

/* ---- the function table (lock held) ---- */

static size_t fn_lower(const vdev_pci_root *root, uint32_t addr)
{
	size_t lo = 0, hi = root->nfns;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (root->fns[mid]->addr < addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static struct root_fn *fn_find(const vdev_pci_root *root, uint32_t addr)
{
	size_t i = fn_lower(root, addr);

	return i < root->nfns && root->fns[i]->addr == addr ? root->fns[i] : NULL;
}

static void fn_unlink(vdev_pci_root *root, const struct root_fn *f)
{
	size_t i = fn_lower(root, f->addr);

	if (i >= root->nfns || root->fns[i] != f)
		return;
	memmove(&root->fns[i], &root->fns[i + 1], (root->nfns - i - 1) * sizeof(root->fns[0]));
	root->nfns--;
}

/* Whether config cycles reach bus @bus now (see the top comment). */
static int bus_reachable(vdev_pci_root *root, uint32_t bus)
{
	uint8_t reach[256] = { 1 };
	int changed = 1;
	size_t i;

	if (bus == 0)
		return 1;
	for (i = 0; i < root->nfns; i++) {
		struct root_fn *f = root->fns[i];
		int32_t sec = f->ops.is_bridge ? f->ops.is_bridge(f->opaque) : -1;

		if (sec < 0 || sec > 255 || (f->link_up && !f->link_up(f->gate_opaque)))
			sec = -1;
		f->sec = sec;
	}
	while (changed && !reach[bus]) {
		changed = 0;
		for (i = 0; i < root->nfns; i++) {
			const struct root_fn *f = root->fns[i];

			if (f->sec >= 0 && !reach[f->sec] && reach[VDEV_PCI_ADDR_BUS(f->addr)]) {
				reach[f->sec] = 1;
				changed = 1;
			}
		}
	}
	return reach[bus];
}

static struct root_fn *fn_visible(vdev_pci_root *root, uint32_t addr)
{
	struct root_fn *f = fn_find(root, addr);

	return f && bus_reachable(root, VDEV_PCI_ADDR_BUS(addr)) ? f : NULL;
}

/* ---- the lock ---- */

static int root_holds(const vdev_pci_root *root)
{
	return __atomic_load_n(&root->owner, __ATOMIC_RELAXED) == &tl_token;
}

static int root_lock(vdev_pci_root *root, int cycle)
{
	if (root_holds(root)) {
		vdi_log(VDEV_LOG_ERR, "pci root: re-entered from a callback run under its lock");
		return -EDEADLK;
	}
	if (cycle) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += ROOT_CYCLE_TIMEOUT_S;
		if (pthread_mutex_timedlock(&root->lock, &ts) != 0) {
			vdi_log(VDEV_LOG_WARNING,
				"pci root: config cycle gave up waiting %d s for the lock (a BAR "
				"callback doing config cycles while its BAR moves?)",
				ROOT_CYCLE_TIMEOUT_S);
			return -ETIMEDOUT;
		}
	} else {
		pthread_mutex_lock(&root->lock);
	}
	__atomic_store_n(&root->owner, &tl_token, __ATOMIC_RELAXED);
	return 0;
}

static void fn_take_off(vdev_pci_root *root, struct root_fn *f);

/* Runs the queued removals, drops the lock, then destroys what left. */
static void root_unlock(vdev_pci_root *root)
{
	struct root_deferred *list = NULL;
	size_t i, n = 0;

	if (root->npending) {
		list = root->pending;
		n = root->npending;
		root->pending = NULL;
		root->npending = root->cap_pending = 0;
		for (i = 0; i < n; i++) {
			list[i].fn = fn_find(root, list[i].addr);
			if (list[i].fn)
				fn_take_off(root, list[i].fn);
		}
	}
	__atomic_store_n(&root->owner, NULL, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&root->lock);

	for (i = 0; i < n; i++) {
		struct root_fn *f = list[i].fn;

		if (f && f->ops.destroy)
			f->ops.destroy(f->opaque);
		free(f);
		if (list[i].done)
			list[i].done(list[i].opaque, list[i].addr);
	}
	free(list);
}

/* ---- BAR placement (lock held) ---- */

static uint32_t fn_read(const struct root_fn *f, uint32_t reg)
{
	return f->ops.config_register_read(f->opaque, reg);
}

static int fn_write32(const struct root_fn *f, uint32_t reg, uint32_t v)
{
	uint8_t b[4];

	vdi_st_le(b, v, 4);
	return f->ops.config_register_write(f->opaque, reg, 0, b, 4);
}

static void report_move(vdev_pci_root *root, const struct root_fn *f, uint32_t bar,
			uint64_t old_base, uint64_t new_base)
{
	struct vdev_pci_bar_move m;

	if (!root->ops.bar_moved)
		return;
	memset(&m, 0, sizeof(m));
	m.struct_size = sizeof(m);
	m.addr = f->addr;
	m.bar = bar;
	m.kind = f->bars[bar].kind;
	m.old_base = old_base;
	m.new_base = new_base;
	m.size = f->bars[bar].size;
	root->ops.bar_moved(root->cfg.opaque, &m);
}

static int in_window(uint64_t base, uint64_t last, uint64_t wbase, uint64_t wsize)
{
	return wsize && base >= wbase && last - wbase <= wsize - 1;
}

static int overlap(uint64_t a, uint64_t asize, uint64_t b, uint64_t bsize)
{
	return a <= b + (bsize - 1) && b <= a + (asize - 1);
}

/* Whether BAR @b at @base lies inside a window it may use. */
static int bar_fits(const vdev_pci_root *root, const struct root_bar *b, uint64_t base)
{
	const struct vdev_pci_root_config *w = &root->cfg;
	uint64_t last;

	if (b->size - 1 > UINT64_MAX - base)
		return 0;
	last = base + (b->size - 1);
	if (b->kind == VDEV_PCI_BAR_IO)
		return in_window(base, last, w->io_base, w->io_size);
	return in_window(base, last, w->mmio32_base, w->mmio32_size) ||
	       (b->kind == VDEV_PCI_BAR_MEM64 &&
		in_window(base, last, w->mmio64_base, w->mmio64_size));
}

/*
 * Where the BARs would be on the bus according to the registers now: next[i]
 * is the base, or 0. Returns 0, or -EBUSY if a BAR lies outside its window
 * or two BARs of the function overlap.
 */
static int fn_placement(const vdev_pci_root *root, const struct root_fn *f, uint64_t *next)
{
	uint32_t cmd = fn_read(f, REG_COMMAND);
	uint32_t i, j;

	for (i = 0; i < f->nbars; i++) {
		const struct root_bar *b = &f->bars[i];
		uint32_t need = b->kind == VDEV_PCI_BAR_IO ? PCI_COMMAND_IO : PCI_COMMAND_MEMORY;
		uint64_t base;
		int is64;

		next[i] = 0;
		if (!b->size || !(cmd & need) || !bar_bus(root, b))
			continue;
		is64 = b->kind == VDEV_PCI_BAR_MEM64;
		base = vdi_pci_bar_base(fn_read(f, REG_BAR0 + i),
					is64 ? fn_read(f, REG_BAR0 + i + 1) : 0, b->lo_mask,
					b->hi_mask, f->sizing[i], is64 ? f->sizing[i + 1] : 0);
		if (!base)
			continue;
		if (!bar_fits(root, b, base)) {
			vdi_log(VDEV_LOG_DEBUG,
				"pci root: " BDF_FMT ": BAR %u at 0x%llx (0x%llx bytes) is outside "
				"its window",
				BDF(f->addr), i, (unsigned long long)base,
				(unsigned long long)b->size);
			return -EBUSY;
		}
		next[i] = base;
		for (j = 0; j < i; j++) {
			if (next[j] && bar_bus(root, &f->bars[j]) == bar_bus(root, b) &&
			    overlap(base, b->size, next[j], f->bars[j].size)) {
				vdi_log(VDEV_LOG_DEBUG,
					"pci root: " BDF_FMT ": BARs %u and %u would overlap",
					BDF(f->addr), j, i);
				return -EBUSY;
			}
		}
	}
	return 0;
}

/* Whether BAR @i's new range overlaps an old range of a BAR in @moving. */
static int hits_own_old(const vdev_pci_root *root, const struct root_fn *f, uint32_t i,
			const uint64_t *next, const uint8_t *moving)
{
	uint32_t j;

	for (j = 0; j < f->nbars; j++) {
		const struct root_bar *o = &f->bars[j];

		if (moving[j] && o->placed && bar_bus(root, o) == bar_bus(root, &f->bars[i]) &&
		    overlap(next[i], f->bars[i].size, o->placed, o->size))
			return 1;
	}
	return 0;
}

static int bar_insert(vdev_pci_root *root, struct root_fn *f, uint32_t i, uint64_t base)
{
	const struct root_bar *b = &f->bars[i];
	int r = vdev_bus_insert(bar_bus(root, b), base, b->size, &f->bar_ops, f->opaque);

	if (r < 0)
		vdi_log(VDEV_LOG_DEBUG, "pci root: " BDF_FMT ": BAR %u cannot go at 0x%llx (%d)",
			BDF(f->addr), i, (unsigned long long)base, r);
	return r == -ENOMEM ? r : r < 0 ? -EBUSY : 0;
}

static void bar_remove(vdev_pci_root *root, const struct root_fn *f, uint32_t i, uint64_t base)
{
	if (vdev_bus_remove(bar_bus(root, &f->bars[i]), base) < 0)
		vdi_log(VDEV_LOG_WARNING,
			"pci root: " BDF_FMT ": BAR %u's range at 0x%llx was already gone",
			BDF(f->addr), i, (unsigned long long)base);
}

/* Moves the ranges from f->bars[].placed to @next, all or nothing (see the
 * top comment), then reports the moves. Returns 0, -EBUSY or -ENOMEM. */
static int fn_apply(vdev_pci_root *root, struct root_fn *f, const uint64_t *next)
{
	uint8_t moving[VDEV_PCI_NUM_BARS] = { 0 }, ins[VDEV_PCI_NUM_BARS] = { 0 },
		rem[VDEV_PCI_NUM_BARS] = { 0 };
	uint32_t i, n = 0;
	int r = 0;

	for (i = 0; i < f->nbars; i++) {
		moving[i] = f->bars[i].placed != next[i];
		n += moving[i];
	}
	if (!n)
		return 0;
	for (i = 0; i < f->nbars && r == 0; i++) {
		if (moving[i] && next[i] && !hits_own_old(root, f, i, next, moving)) {
			r = bar_insert(root, f, i, next[i]);
			ins[i] = r == 0;
		}
	}
	for (i = 0; i < f->nbars && r == 0; i++) {
		if (moving[i] && f->bars[i].placed) {
			bar_remove(root, f, i, f->bars[i].placed);
			rem[i] = 1;
		}
	}
	for (i = 0; i < f->nbars && r == 0; i++) {
		if (moving[i] && next[i] && !ins[i]) {
			r = bar_insert(root, f, i, next[i]);
			ins[i] = r == 0;
		}
	}
	if (r < 0) {
		for (i = 0; i < f->nbars; i++)
			if (ins[i])
				bar_remove(root, f, i, next[i]);
		for (i = 0; i < f->nbars; i++) {
			/* Cannot fail unless the VMM took the range meanwhile or
			 * memory ran out: then the BAR is off the bus, and said so. */
			if (rem[i] && bar_insert(root, f, i, f->bars[i].placed) < 0) {
				vdi_log(VDEV_LOG_ERR, "pci root: BAR %u could not be put back", i);
				report_move(root, f, i, f->bars[i].placed, 0);
				f->bars[i].placed = 0;
			}
		}
		return r;
	}
	for (i = 0; i < f->nbars; i++) {
		if (moving[i]) {
			uint64_t old = f->bars[i].placed;

			f->bars[i].placed = next[i];
			report_move(root, f, i, old, next[i]);
		}
	}
	return 0;
}

/* Every BAR off the bus (reported), and the function out of the table. */
static void fn_take_off(vdev_pci_root *root, struct root_fn *f)
{
	uint32_t i;

	for (i = 0; i < f->nbars; i++) {
		uint64_t old = f->bars[i].placed;

		if (!old)
			continue;
		bar_remove(root, f, i, old);
		f->bars[i].placed = 0;
		report_move(root, f, i, old, 0);
	}
	fn_unlink(root, f);
}

/*
 * A guest write that may move BARs: forward, note what it wrote to a BAR
 * dword, recompute, and put the written bytes and the sizing state back if
 * the new placement is refused (see the top comment).
 */
static int fn_placed_write(vdev_pci_root *root, struct root_fn *f, uint32_t reg,
			   uint32_t offset, const uint8_t *data, uint32_t size)
{
	uint8_t *state = reg >= REG_BAR0 && reg < REG_BAR0 + f->nbars ? &f->sizing[reg - REG_BAR0]
								      : NULL;
	uint8_t old[4], old_state = state ? *state : 0;
	uint64_t next[VDEV_PCI_NUM_BARS];
	uint32_t i;
	int r;

	vdi_st_le(old, fn_read(f, reg), 4);
	r = f->ops.config_register_write(f->opaque, reg, offset, data, size);
	if (r < 0)
		return r;
	if (state)
		*state = vdi_pci_sizing_write(old_state, offset, data, size);
	r = fn_placement(root, f, next);
	if (r == 0)
		r = fn_apply(root, f, next);
	if (r == 0)
		return 0;
	if (state) {
		*state = old_state;
		for (i = 0; i < 4; i++)
			if (old_state & (1u << i))
				old[i] = 0xff;
	}
	if (f->ops.config_register_write(f->opaque, reg, offset, old + offset, size) < 0)
		vdi_log(VDEV_LOG_ERR, "pci root: " BDF_FMT " refused having reg %u put back",
			BDF(f->addr), reg);
	return r;
}

static int fn_config_write(vdev_pci_root *root, struct root_fn *f, uint32_t reg, uint32_t offset,
			   const uint8_t *data, uint32_t size)
{
	if (reg == REG_COMMAND && offset < 2) {
		uint32_t n = VDI_MIN(offset + size, 2u) - offset;
		int r = fn_placed_write(root, f, reg, offset, data, n);

		if (r < 0 || n == size)
			return r;
		return f->ops.config_register_write(f->opaque, reg, 2, data + n, size - n);
	}
	if (reg >= REG_BAR0 && reg < REG_BAR0 + f->nbars)
		return fn_placed_write(root, f, reg, offset, data, size);
	return f->ops.config_register_write(f->opaque, reg, offset, data, size);
}

/*
 * Sizes the BARs as firmware does (decode off, all ones, read, restore) and
 * records them in f->bars. Its writes bypass f->sizing: every register is
 * put back, nothing is left being sized. Returns 0, -EINVAL (inconsistent
 * BARs) or the function's error.
 */
static int fn_size_bars(struct root_fn *f)
{
	uint32_t header = (fn_read(f, PCI_HEADER_TYPE / 4) >> 16) & PCI_HEADER_TYPE_MASK;
	uint32_t cmd = fn_read(f, REG_COMMAND) & 0xffff;
	uint8_t b[2] = { (uint8_t)(cmd & ~CMD_DECODE), (uint8_t)(cmd >> 8) };
	uint32_t i;
	int r = 0;

	f->nbars = header == PCI_HEADER_TYPE_NORMAL ? 6 : header == PCI_HEADER_TYPE_BRIDGE ? 2 : 0;
	if (cmd & CMD_DECODE)
		r = f->ops.config_register_write(f->opaque, REG_COMMAND, 0, b, 2);
	for (i = 0; i < f->nbars && r == 0; i++) {
		struct root_bar *bar = &f->bars[i];
		uint32_t lo = fn_read(f, REG_BAR0 + i), hi = 0, rlo, rhi = 0;
		int io = lo & PCI_BASE_ADDRESS_SPACE_IO;
		int is64 = !io && (lo & PCI_BASE_ADDRESS_MEM_TYPE_MASK) == PCI_BASE_ADDRESS_MEM_TYPE_64;
		uint64_t mask, m;

		if (is64 && i + 1 >= f->nbars) {
			r = -EINVAL;
			break;
		}
		r = fn_write32(f, REG_BAR0 + i, 0xffffffffu);
		rlo = fn_read(f, REG_BAR0 + i);
		r = r ? r : fn_write32(f, REG_BAR0 + i, lo);
		if (is64 && r == 0) {
			hi = fn_read(f, REG_BAR0 + i + 1);
			r = fn_write32(f, REG_BAR0 + i + 1, 0xffffffffu);
			rhi = fn_read(f, REG_BAR0 + i + 1);
			r = r ? r : fn_write32(f, REG_BAR0 + i + 1, hi);
		}
		bar->lo_mask = rlo & (io ? (uint32_t)PCI_BASE_ADDRESS_IO_MASK
					 : (uint32_t)PCI_BASE_ADDRESS_MEM_MASK);
		bar->hi_mask = rhi;
		mask = (uint64_t)bar->hi_mask << 32 | bar->lo_mask;
		if (mask) {
			/* The size is the lowest address bit; the bits above it
			 * must be contiguous (a 16-bit I/O decoder may stop at
			 * bit 15). */
			bar->size = mask & (~mask + 1);
			m = mask | (bar->size - 1);
			if (m & (m + 1))
				r = r ? r : -EINVAL;
		}
		bar->kind = io ? VDEV_PCI_BAR_IO : is64 ? VDEV_PCI_BAR_MEM64 : VDEV_PCI_BAR_MEM32;
		i += is64;
	}
	if (cmd & CMD_DECODE) {
		b[0] = (uint8_t)cmd;
		if (f->ops.config_register_write(f->opaque, REG_COMMAND, 0, b, 2) < 0 && r == 0)
			r = -EIO;
	}
	return r;
}

/* ---- lifetime ---- */

static int window_ok(uint64_t base, uint64_t size)
{
	return size == 0 || size - 1 <= UINT64_MAX - base;
}

VDEV_EXPORT int vdev_pci_root_new(const struct vdev_pci_root_config *cfg, vdev_pci_root **out)
{
	struct vdev_pci_root_config k;
	vdev_pci_root *root;

	if (!cfg || !out || vdi_copy_versioned(&k, sizeof(k), cfg) < 0)
		return -EINVAL;
	if (k.num_buses < 1 || k.num_buses > 256 || !k.mmio_bus ||
	    !window_ok(k.mmio32_base, k.mmio32_size) || !window_ok(k.mmio64_base, k.mmio64_size) ||
	    !window_ok(k.io_base, k.io_size)) {
		vdi_log(VDEV_LOG_DEBUG, "pci root: refused: %u buses, mmio bus %s, or a window wraps",
			k.num_buses, k.mmio_bus ? "set" : "missing");
		return -EINVAL;
	}
	root = calloc(1, sizeof(*root));
	if (!root)
		return -ENOMEM;
	if (k.ops && vdi_copy_versioned(&root->ops, sizeof(root->ops), k.ops) < 0) {
		free(root);
		return -EINVAL;
	}
	if (pthread_mutex_init(&root->lock, NULL) != 0) {
		free(root);
		return -ENOMEM;
	}
	k.ops = NULL; /* copied into root->ops */
	root->cfg = k;
	*out = root;
	return 0;
}

VDEV_EXPORT void vdev_pci_root_free(vdev_pci_root *root)
{
	struct root_fn **fns;
	size_t i, n;

	if (!root)
		return;
	if (root_lock(root, 0) < 0)
		return; /* freed from its own callback: leak rather than crash */
	fns = root->fns;
	n = root->nfns;
	for (i = n; i-- > 0;)
		fn_take_off(root, fns[i]);
	root->fns = NULL;
	root->nfns = root->cap_fns = 0;
	root_unlock(root);
	for (i = 0; i < n; i++) {
		if (fns[i]->ops.destroy)
			fns[i]->ops.destroy(fns[i]->opaque);
		free(fns[i]);
	}
	free(fns);
	pthread_mutex_destroy(&root->lock);
	free(root);
}

VDEV_EXPORT int vdev_pci_root_add(vdev_pci_root *root, uint32_t addr,
				  const struct vdev_bus_device_ops *ops, void *opaque)
{
	uint64_t next[VDEV_PCI_NUM_BARS];
	struct root_fn *f, **fns;
	size_t i;
	int r;

	if (!root || !ops || !valid_addr(root, addr))
		return -EINVAL;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	if (vdi_copy_versioned(&f->ops, sizeof(f->ops), ops) < 0 || !f->ops.read ||
	    !f->ops.write || !f->ops.config_register_read || !f->ops.config_register_write) {
		vdi_log(VDEV_LOG_DEBUG, "pci root: add at %04x refused: bad ops", addr);
		free(f);
		return -EINVAL;
	}
	f->addr = addr;
	f->opaque = opaque;
	f->bar_ops = f->ops;
	f->bar_ops.destroy = NULL;

	r = root_lock(root, 0);
	if (r < 0) {
		free(f);
		return r;
	}
	if (fn_find(root, addr)) {
		r = -EEXIST;
		goto out;
	}
	fns = vdi_grow(root->fns, &root->cap_fns, root->nfns, sizeof(*fns));
	if (!fns) {
		r = -ENOMEM;
		goto out;
	}
	root->fns = fns;
	r = fn_size_bars(f);
	if (r == 0)
		r = fn_placement(root, f, next);
	if (r == 0)
		r = fn_apply(root, f, next);
	if (r == 0) {
		i = fn_lower(root, addr);
		memmove(&fns[i + 1], &fns[i], (root->nfns - i) * sizeof(fns[0]));
		fns[i] = f;
		root->nfns++;
	}
out:
	root_unlock(root);
	if (r < 0) {
		vdi_log(VDEV_LOG_DEBUG, "pci root: add at " BDF_FMT " refused (%d)",
			BDF(addr), r);
		free(f);
	}
	return r;
}

VDEV_EXPORT int vdev_pci_root_remove(vdev_pci_root *root, uint32_t addr)
{
	struct root_fn *f;
	int r;

	if (!root || !valid_addr(root, addr))
		return -EINVAL;
	r = root_lock(root, 0);
	if (r < 0)
		return r;
	f = fn_find(root, addr);
	if (f)
		fn_take_off(root, f);
	root_unlock(root);
	if (!f)
		return -ENOENT;
	if (f->ops.destroy)
		f->ops.destroy(f->opaque);
	free(f);
	return 0;
}

VDEV_EXPORT void *vdev_pci_root_find(vdev_pci_root *root, uint32_t addr)
{
	struct root_fn *f;
	void *opaque;

	if (!root || !valid_addr(root, addr))
		return NULL;
	if (root_holds(root))
		return (f = fn_find(root, addr)) ? f->opaque : NULL;
	if (root_lock(root, 0) < 0)
		return NULL;
	f = fn_find(root, addr);
	opaque = f ? f->opaque : NULL;
	root_unlock(root);
	return opaque;
}

/* ---- config cycles ---- */

VDEV_EXPORT int vdev_pci_root_config_read(vdev_pci_root *root, uint32_t addr, uint32_t reg,
					  uint32_t offset, uint32_t size, void *data)
{
	struct root_fn *f;
	uint8_t b[4];
	int r;

	if (data && size <= 4)
		memset(data, 0xff, size);
	if (!root || !data || !valid_addr(root, addr) || reg >= VDEV_PCI_CONFIG_DWORDS ||
	    !valid_access(offset, size))
		return -EINVAL;
	r = root_lock(root, 1);
	if (r < 0)
		return r;
	f = fn_visible(root, addr);
	if (f) {
		vdi_st_le(b, fn_read(f, reg), 4);
		memcpy(data, b + offset, size);
	}
	root_unlock(root);
	return f ? 0 : -ENOENT;
}

VDEV_EXPORT int vdev_pci_root_config_write(vdev_pci_root *root, uint32_t addr, uint32_t reg,
					   uint32_t offset, uint32_t size, const void *data)
{
	struct root_fn *f;
	int r;

	if (!root || !data || !valid_addr(root, addr) || reg >= VDEV_PCI_CONFIG_DWORDS ||
	    !valid_access(offset, size))
		return -EINVAL;
	r = root_lock(root, 1);
	if (r < 0)
		return r;
	f = fn_visible(root, addr);
	r = f ? fn_config_write(root, f, reg, offset, data, size) : -ENOENT;
	root_unlock(root);
	return r;
}

/*
 * The bus paths: a well-formed access to an absent function is an ordinary
 * master abort (all ones), not an error the VMM should see as an unclaimed
 * address, so -ENOENT becomes 0 there.
 */
static int cycle(vdev_pci_root *root, uint32_t addr, uint32_t reg, uint32_t offset,
		 uint32_t size, void *data, int write)
{
	int r;

	if (VDEV_PCI_ADDR_BUS(addr) >= root->cfg.num_buses) {
		if (!write)
			memset(data, 0xff, size);
		return 0;
	}
	r = write ? vdev_pci_root_config_write(root, addr, reg, offset, size, data)
		  : vdev_pci_root_config_read(root, addr, reg, offset, size, data);
	return r == -ENOENT ? 0 : r;
}

static int pio_access(void *opaque, const struct vdev_bus_access *a, void *data, int write)
{
	vdev_pci_root *root = opaque;
	uint32_t cf8, off;

	if (a->offset == 0 && a->size == 4) {
		if (write)
			__atomic_store_n(&root->cf8, (uint32_t)vdi_ld_le(data, 4), __ATOMIC_RELAXED);
		else
			vdi_st_le(data, __atomic_load_n(&root->cf8, __ATOMIC_RELAXED), 4);
		return 0;
	}
	if (a->offset < 4 || a->offset > 7 || !valid_access((uint32_t)a->offset - 4, a->size)) {
		if (!write)
			memset(data, 0xff, a->size);
		vdi_log(VDEV_LOG_DEBUG, "pci root: %u-byte port access at 0xcf8 + %llu refused",
			a->size, (unsigned long long)a->offset);
		return -EINVAL;
	}
	off = (uint32_t)a->offset - 4;
	cf8 = __atomic_load_n(&root->cf8, __ATOMIC_RELAXED);
	if (!(cf8 & CF8_ENABLE)) {
		if (!write)
			memset(data, 0xff, a->size);
		return 0;
	}
	/* Bits 23:8 bus/device/function, 7:2 register, 27:24 extended register. */
	return cycle(root, (cf8 >> 8) & 0xffff, ((cf8 >> 2) & 0x3f) | ((cf8 >> 24) & 0xf) << 6, off,
		     a->size, data, write);
}

static int pio_read(void *opaque, const struct vdev_bus_access *a, void *data)
{
	return pio_access(opaque, a, data, 0);
}

static int pio_write(void *opaque, const struct vdev_bus_access *a, const void *data)
{
	return pio_access(opaque, a, (void *)data, 1);
}

static int ecam_access(void *opaque, const struct vdev_bus_access *a, void *data, int write)
{
	vdev_pci_root *root = opaque;
	uint64_t off = a->offset;

	if (!valid_access((uint32_t)(off & 3), a->size) ||
	    off >> 20 >= root->cfg.num_buses) {
		if (!write)
			memset(data, 0xff, a->size);
		vdi_log(VDEV_LOG_DEBUG, "pci root: %u-byte ECAM access at +0x%llx refused", a->size,
			(unsigned long long)off);
		return -EINVAL;
	}
	return cycle(root, (uint32_t)(off >> 12) & 0xffff, (uint32_t)(off & 0xfff) >> 2,
		     (uint32_t)(off & 3), a->size, data, write);
}

static int ecam_read(void *opaque, const struct vdev_bus_access *a, void *data)
{
	return ecam_access(opaque, a, data, 0);
}

static int ecam_write(void *opaque, const struct vdev_bus_access *a, const void *data)
{
	return ecam_access(opaque, a, (void *)data, 1);
}

static const char *pio_label(void *opaque)
{
	VDI_UNUSED(opaque);
	return "pci-cf8";
}

static const char *ecam_label(void *opaque)
{
	VDI_UNUSED(opaque);
	return "pci-ecam";
}

static const struct vdev_bus_device_ops pio_ops = {
	.struct_size = sizeof(struct vdev_bus_device_ops),
	.debug_label = pio_label,
	.read = pio_read,
	.write = pio_write,
};

static const struct vdev_bus_device_ops ecam_ops = {
	.struct_size = sizeof(struct vdev_bus_device_ops),
	.debug_label = ecam_label,
	.read = ecam_read,
	.write = ecam_write,
};

VDEV_EXPORT const struct vdev_bus_device_ops *vdev_pci_root_pio_ops(void)
{
	return &pio_ops;
}

VDEV_EXPORT const struct vdev_bus_device_ops *vdev_pci_root_ecam_ops(void)
{
	return &ecam_ops;
}

/* ---- internal (pci_internal.h) ---- */

int vdi_pci_root_set_gate(vdev_pci_root *root, uint32_t bridge_addr, int (*link_up)(void *opaque),
			  void *opaque)
{
	int held, r = 0;
	struct root_fn *f;

	if (!root || !valid_addr(root, bridge_addr))
		return -EINVAL;
	held = root_holds(root);
	if (!held)
		root_lock(root, 0);
	f = fn_find(root, bridge_addr);
	if (f) {
		f->link_up = link_up;
		f->gate_opaque = link_up ? opaque : NULL;
	} else {
		r = -ENOENT;
	}
	if (!held)
		root_unlock(root);
	return r;
}

int vdi_pci_root_remove_deferred(vdev_pci_root *root, uint32_t addr,
				 void (*done)(void *opaque, uint32_t addr), void *opaque)
{
	struct root_deferred *p;
	int r;

	if (!root || !valid_addr(root, addr))
		return -EINVAL;
	if (!root_holds(root)) {
		r = vdev_pci_root_remove(root, addr);
		if (r == 0 && done)
			done(opaque, addr);
		return r;
	}
	if (!fn_find(root, addr))
		return -ENOENT;
	p = vdi_grow(root->pending, &root->cap_pending, root->npending, sizeof(*p));
	if (!p)
		return -ENOMEM;
	root->pending = p;
	p[root->npending++] = (struct root_deferred){ .addr = addr, .done = done, .opaque = opaque };
	return 0;
}

int vdi_pci_root_call(vdev_pci_root *root, uint32_t addr,
		      int (*fn)(const struct vdev_bus_device_ops *ops, void *opaque, void *arg),
		      void *arg)
{
	struct root_fn *f;
	int r;

	if (!root || !fn || !valid_addr(root, addr))
		return -EINVAL;
	r = root_lock(root, 1);
	if (r < 0)
		return r;
	f = fn_visible(root, addr);
	r = f ? fn(&f->ops, f->opaque, arg) : -ENOENT;
	root_unlock(root);
	return r;
}
