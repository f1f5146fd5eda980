/* SPDX-License-Identifier: MIT */
/*
 * Guest memory: a sorted region table (or the VMM's own translation) and the
 * dirty-page log.
 *
 * Why there is no lock: vdev_mem_translate runs once per descriptor from
 * every queue thread at once, so the lookup path must not serialise queues
 * on a shared lock or bounce a shared cache line. mem.h makes the VMM
 * quiesce every user before it changes the table (add/remove region, dirty
 * log enable/disable, free), exactly as KVM requires for memslot changes, so
 * the table is immutable while anyone reads it and plain loads are enough.
 * The lookup keeps no mutable state (no "last hit" cache) for the same
 * reason. The only data written concurrently are the dirty bitmaps, which are
 * updated with atomic read-modify-write operations so that a mark racing
 * with a query-and-clear is never lost: it is either reported by that query
 * or left set for the next one.
 *
 * Ranges are handled by their inclusive last byte (gpa + len - 1) so that no
 * computation can wrap: a range may end exactly at 2^64, but never beyond.
 *
 * Besides its own bitmaps, a vdev_mem may mark pages in a log shared with
 * another process (vhost-user's SET_LOG_BASE, mem_internal.h): one byte per 8
 * pages from guest address 0, set with atomic ORs since the other side reads
 * and clears it concurrently.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem_internal.h"
#include "internal/util.h"
#include "virtio-dev/mem.h"

#define DIRTY_SHIFT VDEV_MEM_DIRTY_PAGE_SHIFT
#define DIRTY_LAST_PAGE (UINT64_MAX >> DIRTY_SHIFT)

struct vdi_mem_region {
	uint64_t gpa;
	uint64_t last;   /* inclusive: gpa + size - 1 */
	uint8_t *hva;
	uint32_t flags;
	uint64_t *dirty; /* 1 bit per page of [gpa >> 12, last >> 12]; NULL when off */
};

struct vdev_mem {
	int custom;
	int dirty_on; /* read with relaxed atomics on the mark path */
	struct vdev_mem_ops ops;
	void *opaque;
	uint32_t nregions;
	uint32_t cap;
	struct vdi_mem_region *regions; /* sorted by gpa, never overlapping */
	uint8_t *shared_log;     /* read with relaxed atomics on the mark path */
	uint64_t shared_log_size; /* bytes */
};

static inline int range_last_ok(uint64_t gpa, uint64_t len)
{
	/* len != 0 assumed: nonzero when [gpa, gpa + len) does not wrap. */
	return len - 1 <= UINT64_MAX - gpa;
}

static inline uint64_t region_first_page(const struct vdi_mem_region *r)
{
	return r->gpa >> DIRTY_SHIFT;
}

static inline uint64_t region_npages(const struct vdi_mem_region *r)
{
	return (r->last >> DIRTY_SHIFT) - (r->gpa >> DIRTY_SHIFT) + 1;
}

/* Index of the first region whose last byte is >= addr (nregions if none). */
static inline uint32_t lower_bound(const vdev_mem *mem, uint64_t addr)
{
	uint32_t lo = 0, hi = mem->nregions;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (mem->regions[mid].last < addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The region holding addr, or NULL. */
static inline const struct vdi_mem_region *find_region(const vdev_mem *mem, uint64_t addr)
{
	uint32_t i = lower_bound(mem, addr);

	if (i < mem->nregions && mem->regions[i].gpa <= addr)
		return &mem->regions[i];
	return NULL;
}

static int dirty_alloc(struct vdi_mem_region *r)
{
	uint64_t words = (region_npages(r) + 63) / 64;

	if (words > SIZE_MAX / sizeof(uint64_t))
		return -ENOMEM;
	r->dirty = calloc((size_t)words, sizeof(uint64_t));
	return r->dirty ? 0 : -ENOMEM;
}

int vdev_mem_new(vdev_mem **out)
{
	vdev_mem *mem;

	if (!out)
		return -EINVAL;
	mem = calloc(1, sizeof(*mem));
	if (!mem)
		return -ENOMEM;
	*out = mem;
	return 0;
}

int vdev_mem_new_custom(const struct vdev_mem_ops *ops, void *opaque, vdev_mem **out)
{
	vdev_mem *mem;
	struct vdev_mem_ops copy;

	if (!ops || !out)
		return -EINVAL;
	if (vdi_copy_versioned(&copy, sizeof(copy), ops) < 0 || !copy.translate)
		return -EINVAL;
	mem = calloc(1, sizeof(*mem));
	if (!mem)
		return -ENOMEM;
	mem->custom = 1;
	mem->ops = copy;
	mem->opaque = opaque;
	*out = mem;
	return 0;
}

void vdev_mem_free(vdev_mem *mem)
{
	uint32_t i;

	if (!mem)
		return;
	for (i = 0; i < mem->nregions; i++)
		free(mem->regions[i].dirty);
	free(mem->regions);
	free(mem);
}

int vdev_mem_add_region(vdev_mem *mem, uint64_t gpa, uint64_t size, void *hva, uint32_t flags)
{
	struct vdi_mem_region r;
	uint32_t i;
	int ret;

	if (!mem)
		return -EINVAL;
	if (mem->custom)
		return -EOPNOTSUPP;
	if (size == 0 || !hva || (flags & ~VDEV_MEM_F_READONLY) || !range_last_ok(gpa, size))
		return -EINVAL;
	/* The host side must not wrap either, or hva + offset would. */
	if (size - 1 > UINTPTR_MAX - (uintptr_t)hva)
		return -EINVAL;

	r.gpa = gpa;
	r.last = gpa + (size - 1);
	r.hva = hva;
	r.flags = flags;
	r.dirty = NULL;

	/* First region ending at or after our start: it must start after our end. */
	i = lower_bound(mem, gpa);
	if (i < mem->nregions && mem->regions[i].gpa <= r.last)
		return -EEXIST;
	if (mem->nregions >= VDEV_MEM_MAX_REGIONS)
		return -ENOSPC;

	if (mem->nregions == mem->cap) {
		uint32_t cap = mem->cap ? mem->cap * 2 : 8;
		struct vdi_mem_region *n;

		if (cap > VDEV_MEM_MAX_REGIONS)
			cap = VDEV_MEM_MAX_REGIONS;
		n = realloc(mem->regions, (size_t)cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		mem->regions = n;
		mem->cap = cap;
	}
	if (mem->dirty_on) {
		ret = dirty_alloc(&r);
		if (ret < 0)
			return ret;
	}
	memmove(&mem->regions[i + 1], &mem->regions[i],
		(size_t)(mem->nregions - i) * sizeof(mem->regions[0]));
	mem->regions[i] = r;
	mem->nregions++;
	return 0;
}

int vdev_mem_remove_region(vdev_mem *mem, uint64_t gpa)
{
	uint32_t i;

	if (!mem)
		return -EINVAL;
	if (mem->custom)
		return -EOPNOTSUPP;
	i = lower_bound(mem, gpa);
	if (i >= mem->nregions || mem->regions[i].gpa != gpa)
		return -ENOENT;
	free(mem->regions[i].dirty);
	memmove(&mem->regions[i], &mem->regions[i + 1],
		(size_t)(mem->nregions - i - 1) * sizeof(mem->regions[0]));
	mem->nregions--;
	return 0;
}

/* The per-descriptor path: no lock, no allocation, one binary search. */
int vdev_mem_translate(vdev_mem *mem, uint64_t gpa, uint64_t len, uint32_t access, void **hva,
		       uint64_t *contig)
{
	const struct vdi_mem_region *r;
	uint64_t avail;

	if (VDI_UNLIKELY(!mem || !hva || !contig || len == 0 || !range_last_ok(gpa, len)))
		return -EINVAL;
	if (VDI_UNLIKELY(access == 0 || (access & ~(VDEV_MEM_READ | VDEV_MEM_WRITE))))
		return -EINVAL;

	if (VDI_UNLIKELY(mem->custom)) {
		void *p = NULL;
		uint64_t c = 0;

		/* Trust nothing the callback returns: a bad answer is a fault. */
		if (mem->ops.translate(mem->opaque, gpa, len, access, &p, &c) != 0 || !p ||
		    c == 0 || c > len || c - 1 > UINTPTR_MAX - (uintptr_t)p)
			return -EFAULT;
		*hva = p;
		*contig = c;
		return 0;
	}

	r = find_region(mem, gpa);
	if (!r || ((access & VDEV_MEM_WRITE) && (r->flags & VDEV_MEM_F_READONLY)))
		return -EFAULT;
	/* Bytes left in the region from gpa, minus one (never wraps). */
	avail = r->last - gpa;
	*hva = r->hva + (gpa - r->gpa);
	*contig = len - 1 <= avail ? len : avail + 1;
	return 0;
}

void *vdev_mem_ptr(vdev_mem *mem, uint64_t gpa, uint64_t len, uint32_t access)
{
	void *hva;
	uint64_t contig;

	if (vdev_mem_translate(mem, gpa, len, access, &hva, &contig) < 0 || contig != len)
		return NULL;
	return hva;
}

int vdev_mem_read(vdev_mem *mem, uint64_t gpa, void *buf, uint64_t len)
{
	uint8_t *dst = buf;

	if (!mem || !buf || len == 0 || !range_last_ok(gpa, len))
		return -EINVAL;
	while (len) {
		void *hva;
		uint64_t contig;
		int ret = vdev_mem_translate(mem, gpa, len, VDEV_MEM_READ, &hva, &contig);

		if (ret < 0)
			return ret;
		memcpy(dst, hva, (size_t)contig);
		dst += contig;
		gpa += contig;
		len -= contig;
	}
	return 0;
}

int vdev_mem_write(vdev_mem *mem, uint64_t gpa, const void *buf, uint64_t len)
{
	const uint8_t *src = buf;
	uint64_t a, n;

	if (!mem || !buf || len == 0 || !range_last_ok(gpa, len))
		return -EINVAL;

	/* Check everything first so a fault never leaves a partial write. */
	for (a = gpa, n = len; n;) {
		void *hva;
		uint64_t contig;
		int ret = vdev_mem_translate(mem, a, n, VDEV_MEM_WRITE, &hva, &contig);

		if (ret < 0)
			return ret;
		a += contig;
		n -= contig;
	}
	for (a = gpa, n = len; n;) {
		void *hva;
		uint64_t contig;
		/* Only a custom translation can change its answer in between. */
		int ret = vdev_mem_translate(mem, a, n, VDEV_MEM_WRITE, &hva, &contig);

		if (ret < 0) {
			vdev_mem_mark_dirty(mem, gpa, a - gpa);
			return ret;
		}
		memcpy(hva, src, (size_t)contig);
		src += contig;
		a += contig;
		n -= contig;
	}
	vdev_mem_mark_dirty(mem, gpa, len);
	return 0;
}

/* Set bits [first, last] (bit indices) in an atomic bitmap. */
static void bits_set(uint64_t *map, uint64_t first, uint64_t last)
{
	uint64_t w = first / 64, lw = last / 64;

	for (; w <= lw; w++) {
		uint64_t mask = ~(uint64_t)0;

		if (w == first / 64)
			mask &= ~(uint64_t)0 << (first % 64);
		if (w == lw)
			mask &= ~(uint64_t)0 >> (63 - last % 64);
		/* Skip the RMW when already set: keeps the line shared on re-marks. */
		if ((__atomic_load_n(&map[w], __ATOMIC_RELAXED) & mask) != mask)
			__atomic_fetch_or(&map[w], mask, __ATOMIC_RELAXED);
	}
}

int vdi_mem_set_shared_log(vdev_mem *mem, uint8_t *log, uint64_t size)
{
	if (!mem || (log && size == 0))
		return -EINVAL;
	/* The caller quiesced every user: no mark runs concurrently. */
	mem->shared_log_size = log ? size : 0;
	__atomic_store_n(&mem->shared_log, log, __ATOMIC_RELAXED);
	return 0;
}

/* Set the shared-log bit of every page of [gpa, last]; pages past the log's
 * end are not covered by it and are skipped. */
static void shared_log_mark(const vdev_mem *mem, uint8_t *log, uint64_t gpa, uint64_t last)
{
	uint64_t page = gpa >> DIRTY_SHIFT, lp = last >> DIRTY_SHIFT;

	for (; page <= lp && (page >> 3) < mem->shared_log_size; page++) {
		uint8_t *b = &log[page >> 3];
		uint8_t bit = (uint8_t)(1u << (page & 7));

		/*
		 * Always the full-barrier RMW, never "skip if already set": a
		 * plain load may be ordered before our earlier data stores,
		 * see a bit the front-end is about to clear, and the front-end
		 * would then copy the page without our data.
		 */
		__atomic_fetch_or(b, bit, __ATOMIC_SEQ_CST);
	}
}

void vdev_mem_mark_dirty(vdev_mem *mem, uint64_t gpa, uint64_t len)
{
	uint8_t *log;
	uint64_t last;
	uint32_t i;

	if (!mem || len == 0)
		return;
	/* A wrapping range has no mapped part past 2^64: clip it there. */
	last = range_last_ok(gpa, len) ? gpa + (len - 1) : UINT64_MAX;
	log = __atomic_load_n(&mem->shared_log, __ATOMIC_RELAXED);
	if (VDI_UNLIKELY(log != NULL))
		shared_log_mark(mem, log, gpa, last);
	if (mem->custom) {
		if (mem->ops.mark_dirty)
			mem->ops.mark_dirty(mem->opaque, gpa, len);
		return;
	}
	if (VDI_LIKELY(!__atomic_load_n(&mem->dirty_on, __ATOMIC_RELAXED)))
		return;

	for (i = lower_bound(mem, gpa); i < mem->nregions; i++) {
		const struct vdi_mem_region *r = &mem->regions[i];
		uint64_t lo, hi, base;

		if (r->gpa > last)
			break;
		if (!r->dirty)
			continue;
		lo = VDI_MAX(gpa, r->gpa);
		hi = VDI_MIN(last, r->last);
		base = region_first_page(r);
		bits_set(r->dirty, (lo >> DIRTY_SHIFT) - base, (hi >> DIRTY_SHIFT) - base);
	}
}

int vdev_mem_dirty_log_enable(vdev_mem *mem, int enable)
{
	uint32_t i;

	if (!mem)
		return -EINVAL;
	if (mem->custom)
		return -EOPNOTSUPP;

	if (!enable) {
		__atomic_store_n(&mem->dirty_on, 0, __ATOMIC_RELAXED);
		for (i = 0; i < mem->nregions; i++) {
			free(mem->regions[i].dirty);
			mem->regions[i].dirty = NULL;
		}
		return 0;
	}

	for (i = 0; i < mem->nregions; i++) {
		struct vdi_mem_region *r = &mem->regions[i];

		if (r->dirty) {
			memset(r->dirty, 0, (size_t)((region_npages(r) + 63) / 64) * sizeof(uint64_t));
		} else if (dirty_alloc(r) < 0) {
			/* Leave the log off rather than half on. */
			if (!mem->dirty_on) {
				while (i--) {
					free(mem->regions[i].dirty);
					mem->regions[i].dirty = NULL;
				}
			}
			return -ENOMEM;
		}
	}
	__atomic_store_n(&mem->dirty_on, 1, __ATOMIC_RELAXED);
	return 0;
}

/*
 * Several regions can share a guest page when they are not page aligned, and
 * each keeps its own bit for it: the answer for a page is the OR of the bits of
 * every region touching it, so a write to either part is reported.
 */
int64_t vdev_mem_dirty_log_get(vdev_mem *mem, uint64_t gpa, uint64_t npages, uint64_t *bitmap,
			       uint64_t bitmap_words, int clear)
{
	uint64_t qf, ql, out_words, w;
	uint32_t i, start;
	int covered = 0;
	int64_t count = 0;

	if (!mem || !bitmap)
		return -EINVAL;
	if (mem->custom)
		return -EOPNOTSUPP;
	if (!__atomic_load_n(&mem->dirty_on, __ATOMIC_RELAXED))
		return -ENODATA;
	if (npages == 0 || (gpa & ((UINT64_C(1) << DIRTY_SHIFT) - 1)))
		return -EINVAL;
	qf = gpa >> DIRTY_SHIFT;
	if (npages - 1 > DIRTY_LAST_PAGE - qf)
		return -EINVAL;
	ql = qf + (npages - 1);
	out_words = (npages + 63) / 64; /* npages <= 2^52: no overflow */
	if (bitmap_words < out_words)
		return -EINVAL;

	/* Regions whose page span meets [qf, ql]: start at the first whose last
	 * page is >= qf, i.e. whose last byte is >= gpa. */
	start = lower_bound(mem, gpa);
	for (i = start; i < mem->nregions; i++) {
		const struct vdi_mem_region *r = &mem->regions[i];

		if (region_first_page(r) > ql)
			break;
		if (region_first_page(r) <= qf && (r->last >> DIRTY_SHIFT) >= ql) {
			covered = 1;
			break;
		}
	}
	if (!covered)
		return -EINVAL;

	memset(bitmap, 0, (size_t)out_words * sizeof(uint64_t));
	for (i = start; i < mem->nregions; i++) {
		const struct vdi_mem_region *r = &mem->regions[i];
		uint64_t rf = region_first_page(r), lo, hi, rw;

		if (rf > ql)
			break;
		if (!r->dirty)
			continue;
		lo = VDI_MAX(qf, rf) - rf; /* region bit indices */
		hi = VDI_MIN(ql, r->last >> DIRTY_SHIFT) - rf;
		for (rw = lo / 64; rw <= hi / 64; rw++) {
			uint64_t mask = ~(uint64_t)0, v;

			if (rw == lo / 64)
				mask &= ~(uint64_t)0 << (lo % 64);
			if (rw == hi / 64)
				mask &= ~(uint64_t)0 >> (63 - hi % 64);
			if (clear)
				v = __atomic_fetch_and(&r->dirty[rw], ~mask, __ATOMIC_RELAXED) & mask;
			else
				v = __atomic_load_n(&r->dirty[rw], __ATOMIC_RELAXED) & mask;
			while (v) {
				unsigned b = (unsigned)__builtin_ctzll(v);
				uint64_t out = rw * 64 + b + rf - qf; /* page - qf */

				bitmap[out / 64] |= UINT64_C(1) << (out % 64);
				v &= v - 1;
			}
		}
	}
	for (w = 0; w < out_words; w++)
		count += __builtin_popcountll(bitmap[w]);
	return count;
}
