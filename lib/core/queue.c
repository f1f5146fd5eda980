/* SPDX-License-Identifier: MIT */
/*
 * Virtqueue, device side: the parts shared by the split and packed formats.
 *
 * Rules kept throughout (see doc/architecture.md):
 * - Every guest-controlled value is loaded once into a local, then checked;
 *   nothing is re-read from guest memory after validation.
 * - A malformed ring breaks the queue for good (-EBADMSG); the owner (a
 *   vdev_device) hears about it once and sets DEVICE_NEEDS_RESET. Nothing in
 *   here loops more than the queue size per call, so a hostile ring cannot
 *   make us spin.
 * - The ring areas are translated once, at creation, and must each lie in one
 *   guest memory region.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal/util.h"
#include "queue_priv.h"

#define QUEUE_KNOWN_FLAGS (VDEV_QUEUE_F_PACKED | VDEV_QUEUE_F_EVENT_IDX | VDEV_QUEUE_F_INDIRECT)

/* The 0.1 layout of struct vdev_queue_elem; callers must give at least this. */
#define ELEM_MIN_SIZE (offsetof(struct vdev_queue_elem, ndescs) + sizeof(uint32_t))

int vdi_queue_break(vdev_queue *q, const char *why)
{
	if (!q->broken) {
		q->broken = -EBADMSG;
		vdi_log(VDEV_LOG_WARNING, "virtqueue (size %u, %s): %s; queue stopped", q->size,
			(q->flags & VDEV_QUEUE_F_PACKED) ? "packed" : "split", why);
		if (q->owner_fn)
			q->owner_fn(q->owner_ctx, q, q->broken);
	}
	return q->broken;
}

int vdi_queue_map_buf(vdev_queue *q, struct vdev_queue_elem *e, uint32_t *niov, uint64_t addr,
		      uint32_t len, int writable)
{
	uint32_t access = writable ? VDEV_MEM_WRITE : VDEV_MEM_READ;
	uint64_t left = len;

	if (len == 0)
		return 0;
	if (addr + len < addr)
		return vdi_queue_break(q, "descriptor address + length wraps");
	while (left) {
		void *hva;
		uint64_t contig;

		if (vdev_mem_translate(q->mem, addr, left, access, &hva, &contig) < 0)
			return vdi_queue_break(q, writable ? "writable buffer outside writable guest memory"
							   : "buffer outside guest memory");
		if (*niov < e->iov_cap) {
			e->iov[*niov].iov_base = hva;
			e->iov[*niov].iov_len = (size_t)contig;
			e->gpa[*niov] = addr;
		}
		(*niov)++;
		addr += contig;
		left -= contig;
	}
	return 0;
}

static int ring_area(vdev_queue *q, uint64_t gpa, uint64_t len, uint64_t align, uint32_t access,
		     void **out)
{
	void *p;

	if (gpa & (align - 1))
		return -EINVAL;
	p = vdev_mem_ptr(q->mem, gpa, len, access);
	if (!p)
		return -EFAULT;
	*out = p;
	return 0;
}

VDEV_EXPORT int vdev_queue_new(const struct vdev_queue_config *cfg_in, vdev_mem *mem,
			       vdev_queue **out)
{
	struct vdev_queue_config cfg;
	vdev_queue *q;
	uint64_t n, len[3];
	int r;

	if (!cfg_in || !mem || !out)
		return -EINVAL;
	if (vdi_copy_versioned(&cfg, sizeof(cfg), cfg_in) < 0)
		return -EINVAL;
	if (cfg.flags & ~QUEUE_KNOWN_FLAGS)
		return -EINVAL;
	if (cfg.size == 0 || cfg.size > VDEV_QUEUE_MAX_SIZE)
		return -EINVAL;
	if (!(cfg.flags & VDEV_QUEUE_F_PACKED) && !vdi_is_pow2(cfg.size))
		return -EINVAL;

	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->mem = mem;
	q->size = cfg.size;
	q->flags = cfg.flags;
	q->desc_addr = cfg.desc_addr;
	q->driver_addr = cfg.driver_addr;
	q->device_addr = cfg.device_addr;
	q->notify_enabled = 1;
	n = cfg.size;
	vdi_queue_area_sizes(!!(cfg.flags & VDEV_QUEUE_F_PACKED), n, len);

	if (cfg.flags & VDEV_QUEUE_F_PACKED) {
		r = ring_area(q, cfg.desc_addr, len[0], 16, VDEV_MEM_READ | VDEV_MEM_WRITE,
			      (void **)&q->pdesc);
		if (!r)
			r = ring_area(q, cfg.driver_addr, len[1], 4, VDEV_MEM_READ,
				      (void **)&q->driver_evt);
		if (!r)
			r = ring_area(q, cfg.device_addr, len[2], 4, VDEV_MEM_WRITE,
				      (void **)&q->device_evt);
		if (!r) {
			q->pend = calloc(n, sizeof(*q->pend));
			q->ids_inflight = calloc(65536 / 64, sizeof(uint64_t));
			r = q->pend && q->ids_inflight ? vdi_packed_init(q) : -ENOMEM;
		}
	} else {
		r = ring_area(q, cfg.desc_addr, len[0], 16, VDEV_MEM_READ, (void **)&q->desc);
		if (!r)
			r = ring_area(q, cfg.driver_addr, len[1], 2, VDEV_MEM_READ, (void **)&q->avail);
		if (!r)
			r = ring_area(q, cfg.device_addr, len[2], 4, VDEV_MEM_WRITE, (void **)&q->used);
		if (!r) {
			q->heads_inflight = calloc((n + 63) / 64, sizeof(uint64_t));
			r = q->heads_inflight ? vdi_split_init(q) : -ENOMEM;
		}
	}
	if (r < 0) {
		vdi_log(VDEV_LOG_DEBUG, "virtqueue: refused ring setup (size %u): %d", q->size, r);
		vdev_queue_free(q);
		return r;
	}
	*out = q;
	return 0;
}

VDEV_EXPORT void vdev_queue_free(vdev_queue *q)
{
	if (!q)
		return;
	free(q->heads_inflight);
	free(q->ifl); /* one allocation; the region itself is the caller's */
	free(q->pend);
	free(q->ids_inflight);
	free(q);
}

void vdi_queue_set_owner(vdev_queue *q, vdi_queue_broken_fn fn, void *ctx)
{
	q->owner_fn = fn;
	q->owner_ctx = ctx;
}

VDEV_EXPORT uint32_t vdev_queue_size(const vdev_queue *q)
{
	return q ? q->size : 0;
}

VDEV_EXPORT int vdev_queue_is_broken(const vdev_queue *q)
{
	return q ? q->broken : -EINVAL;
}

VDEV_EXPORT uint32_t vdev_queue_inflight(const vdev_queue *q)
{
	return q ? q->inflight : 0;
}

static int elem_ok(const struct vdev_queue_elem *e)
{
	if (!e || e->struct_size < ELEM_MIN_SIZE)
		return 0;
	if (e->iov_cap && (!e->iov || !e->gpa))
		return 0;
	return 1;
}

VDEV_EXPORT int vdev_queue_pop(vdev_queue *q, struct vdev_queue_elem *e)
{
	if (!q || !elem_ok(e))
		return -EINVAL;
	if (q->broken)
		return q->broken;
	if (VDI_UNLIKELY(q->ifl != NULL))
		return vdi_inflight_pop(q, e);
	return (q->flags & VDEV_QUEUE_F_PACKED) ? vdi_packed_pop(q, e) : vdi_split_pop(q, e);
}

/* Mark the first @len bytes of the chain's writable part dirty. */
static void mark_written(vdev_queue *q, const struct vdev_queue_elem *e, uint32_t len)
{
	uint32_t i;

	for (i = e->out_num; len && i < e->out_num + e->in_num && i < e->iov_cap; i++) {
		uint64_t n = VDI_MIN((uint64_t)len, (uint64_t)e->iov[i].iov_len);

		vdev_mem_mark_dirty(q->mem, e->gpa[i], n);
		len -= (uint32_t)n;
	}
}

VDEV_EXPORT int vdev_queue_fill(vdev_queue *q, const struct vdev_queue_elem *e, uint32_t len)
{
	int r;

	if (!q || !elem_ok(e))
		return -EINVAL;
	if (q->broken)
		return q->broken;
	if (q->inflight == 0)
		return -EINVAL;
	if (len > e->in_len)
		len = (uint32_t)e->in_len;
	r = (q->flags & VDEV_QUEUE_F_PACKED) ? vdi_packed_fill(q, e, len) : vdi_split_fill(q, e, len);
	if (r < 0)
		return r;
	if (VDI_UNLIKELY(q->ifl != NULL))
		vdi_inflight_fill(q, (uint16_t)e->id);
	mark_written(q, e, len);
	q->inflight--;
	q->pending++;
	return 0;
}

VDEV_EXPORT int vdev_queue_flush(vdev_queue *q)
{
	if (!q)
		return -EINVAL;
	if (q->broken)
		return q->broken;
	if (q->pending == 0)
		return 0;
	if (VDI_UNLIKELY(q->ifl != NULL))
		return vdi_inflight_flush(q);
	return (q->flags & VDEV_QUEUE_F_PACKED) ? vdi_packed_flush(q) : vdi_split_flush(q);
}

VDEV_EXPORT int vdev_queue_push(vdev_queue *q, const struct vdev_queue_elem *e, uint32_t len)
{
	int r = vdev_queue_fill(q, e, len);

	return r < 0 ? r : vdev_queue_flush(q);
}

VDEV_EXPORT int vdev_queue_set_notification(vdev_queue *q, int enable)
{
	int r;

	if (!q)
		return -EINVAL;
	if (q->broken)
		return q->broken;
	q->notify_enabled = !!enable;
	r = (q->flags & VDEV_QUEUE_F_PACKED) ? vdi_packed_set_notification(q, !!enable)
					     : vdi_split_set_notification(q, !!enable);
	/* Resubmissions wait in no ring: the device must not go to sleep on them. */
	if (r == 0 && enable && q->ifl && vdi_inflight_has_resubmit(q))
		return 1;
	return r;
}

VDEV_EXPORT int vdev_queue_has_avail(vdev_queue *q)
{
	if (!q)
		return -EINVAL;
	if (q->broken)
		return q->broken;
	if (q->ifl && vdi_inflight_has_resubmit(q))
		return 1;
	return (q->flags & VDEV_QUEUE_F_PACKED) ? vdi_packed_has_avail(q) : vdi_split_has_avail(q);
}

VDEV_EXPORT int vdev_queue_get_state(const vdev_queue *q, struct vdev_queue_state *st)
{
	if (!q || !st || st->struct_size < sizeof(struct vdev_queue_state))
		return -EINVAL;
	if (q->flags & VDEV_QUEUE_F_PACKED) {
		st->last_avail_idx = q->next_avail;
		st->avail_wrap = (uint8_t)q->avail_wrap;
		st->used_idx = q->pub_used;
		st->used_wrap = (uint8_t)q->pub_used_wrap;
	} else {
		st->last_avail_idx = q->last_avail_idx;
		st->used_idx = q->used_idx;
		st->avail_wrap = 0;
		st->used_wrap = 0;
	}
	st->reserved = 0;
	return 0;
}

VDEV_EXPORT int vdev_queue_set_state(vdev_queue *q, const struct vdev_queue_state *st)
{
	if (!q || !st || st->struct_size < sizeof(struct vdev_queue_state))
		return -EINVAL;
	if (q->inflight || q->pending || (q->ifl && vdi_inflight_has_resubmit(q)))
		return -EBUSY;
	if (q->flags & VDEV_QUEUE_F_PACKED) {
		if (st->last_avail_idx >= q->size || st->used_idx >= q->size || st->avail_wrap > 1 ||
		    st->used_wrap > 1)
			return -EINVAL;
		q->next_avail = st->last_avail_idx;
		q->avail_wrap = st->avail_wrap;
		q->next_used = q->pub_used = st->used_idx;
		q->used_wrap = q->pub_used_wrap = st->used_wrap;
		q->inflight_descs = 0;
	} else {
		/* The device cannot have used more than it took, nor hold more
		 * than the ring's size. */
		if ((uint16_t)(st->last_avail_idx - st->used_idx) > q->size)
			return -EINVAL;
		q->last_avail_idx = st->last_avail_idx;
		q->shadow_avail_idx = st->last_avail_idx;
		q->base_avail_idx = st->last_avail_idx;
		q->used_idx = st->used_idx;
	}
	return 0;
}
