/* SPDX-License-Identifier: MIT */
/*
 * Driver-side rings: split (2.7) and packed (2.8), with indirect descriptors
 * and event suppression. Freestanding: no libc beyond memcpy/memset. Every
 * access to memory the device shares goes through the vdi_load_ / vdi_store_
 * macros with explicit little-endian conversion.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <linux/virtio_ring.h>

#include "drv_internal.h"
#include "internal/util.h"

#define VDI_RING_ALIGN 4096u

/* Packed descriptor flag bits for the avail/used pair. */
#define PK_AVAIL ((uint16_t)(1u << VRING_PACKED_DESC_F_AVAIL))
#define PK_USED ((uint16_t)(1u << VRING_PACKED_DESC_F_USED))
#define PK_WRAP_SHIFT VRING_PACKED_EVENT_F_WRAP_CTR

/* Split: the event index words past the end of each ring (2.7.7, 2.7.10). */
static inline uint16_t *split_used_event(struct vdev_drvq *q)
{
	return (uint16_t *)&q->avail->ring[q->size];
}

static inline uint16_t *split_avail_event(struct vdev_drvq *q)
{
	return (uint16_t *)(void *)&q->used->ring[q->size];
}

int vdi_drvq_alloc(vdev_drv *drv, struct vdev_drvq *q)
{
	uint64_t n = q->size, ring_bytes;
	void *ring, *used = NULL;

	if (q->packed) {
		/* Descriptor ring, then the driver and device event areas
		 * (alignment 16 / 4 / 4). */
		ring_bytes = 16 * n + 2 * sizeof(struct vring_packed_desc_event);
		ring = vdi_drv_arena_alloc(drv, ring_bytes, VDI_RING_ALIGN);
		if (!ring)
			return -ENOMEM;
	} else {
		/* The legacy contiguous layout (descriptors, avail ring, used ring
		 * on the next page): valid for modern devices too and usable by a
		 * transport that only takes one page frame number. */
		ring_bytes = 16 * n + 6 + 2 * n;
		ring = vdi_drv_arena_alloc(drv, ring_bytes, VDI_RING_ALIGN);
		if (!ring)
			return -ENOMEM;
		used = vdi_drv_arena_alloc(drv, 6 + 8 * n, VDI_RING_ALIGN);
		if (!used)
			return -ENOMEM;
	}
	q->tokens = vdi_drv_arena_alloc(drv, n * sizeof(void *), 8);
	q->in_len = vdi_drv_arena_alloc(drv, n * sizeof(uint32_t), 4);
	q->ndescs = vdi_drv_arena_alloc(drv, n * sizeof(uint16_t), 2);
	q->next_free = vdi_drv_arena_alloc(drv, n * sizeof(uint16_t), 2);
	if (!q->tokens || !q->in_len || !q->ndescs || !q->next_free)
		return -ENOMEM;
	if (q->indirect) {
		q->indir = vdi_drv_arena_alloc(drv, n * q->indirect_max * 16, 16);
		if (!q->indir)
			return -ENOMEM;
		q->indir_gpa = vdi_drv_gpa(drv, q->indir);
	}

	/* The arena may hold a previous run's rings: start from zeros (the
	 * spec wants used->flags and the event areas initialized to 0). */
	memset(ring, 0, (size_t)ring_bytes);
	if (used)
		memset(used, 0, (size_t)(6 + 8 * n));
	memset(q->tokens, 0, (size_t)(n * sizeof(void *)));
	memset(q->in_len, 0, (size_t)(n * sizeof(uint32_t)));
	memset(q->ndescs, 0, (size_t)(n * sizeof(uint16_t)));

	q->desc_gpa = vdi_drv_gpa(drv, ring);
	if (q->packed) {
		q->pdesc = ring;
		q->drv_event = (struct vring_packed_desc_event *)(void *)((char *)ring + 16 * n);
		q->dev_event = q->drv_event + 1;
		q->driver_gpa = vdi_drv_gpa(drv, q->drv_event);
		q->device_gpa = vdi_drv_gpa(drv, q->dev_event);
		q->avail_wrap = 1;
		q->used_wrap = 1;
	} else {
		q->desc = ring;
		q->avail = (struct vring_avail *)(void *)((char *)ring + 16 * n);
		q->used = used;
		q->driver_gpa = vdi_drv_gpa(drv, q->avail);
		q->device_gpa = vdi_drv_gpa(drv, q->used);
	}
	for (uint32_t i = 0; i < q->size; i++)
		q->next_free[i] = (uint16_t)(i + 1);
	q->free_head = 0;
	q->num_free = q->size;
	q->irq_enabled = 1;
	return 0;
}

static int drvq_break(struct vdev_drvq *q, uint32_t id)
{
	q->err = -EBADMSG;
	vdi_log(VDEV_LOG_ERR, "virtio driver: queue %u: device used id %u that is not in flight",
		q->index, id);
	return q->err;
}

/* Validate the segment lists; total device-writable bytes in *in_bytes. */
static int check_segments(const uint64_t *addr, const uint32_t *len, uint32_t out_num,
			  uint32_t in_num, uint32_t *in_bytes)
{
	uint64_t total = 0, in = 0;
	uint32_t n = out_num + in_num, i;

	if (n < out_num || !n || !addr || !len)
		return -EINVAL;
	for (i = 0; i < n; i++) {
		total += len[i];
		if (i >= out_num)
			in += len[i];
	}
	/* 2.7.13.1 / 2.8.22: no chain longer than 2^32 bytes in total. */
	if (total > 0xffffffffull)
		return -EINVAL;
	*in_bytes = (uint32_t)in;
	return 0;
}

static void split_write_desc(struct vring_desc *d, uint64_t addr, uint32_t len, uint16_t flags,
			     uint16_t next)
{
	vdi_store_relaxed(&d->addr, vdi_le64(addr));
	vdi_store_relaxed(&d->len, vdi_le32(len));
	vdi_store_relaxed(&d->flags, vdi_le16(flags));
	vdi_store_relaxed(&d->next, vdi_le16(next));
}

static int split_add(struct vdev_drvq *q, const uint64_t *addr, const uint32_t *len,
		     uint32_t out_num, uint32_t n, int use_indir)
{
	uint16_t head = q->free_head, i, last = 0;
	uint32_t k, need = use_indir ? 1 : n;

	if (use_indir) {
		struct vring_desc *tbl = (struct vring_desc *)q->indir + (size_t)head * q->indirect_max;
		uint64_t tbl_gpa = q->indir_gpa + (uint64_t)head * q->indirect_max * 16;

		for (k = 0; k < n; k++) {
			uint16_t f = (uint16_t)((k >= out_num ? VRING_DESC_F_WRITE : 0) |
						(k + 1 < n ? VRING_DESC_F_NEXT : 0));
			split_write_desc(&tbl[k], addr[k], len[k], f,
					 (uint16_t)(k + 1 < n ? k + 1 : 0));
		}
		split_write_desc(&q->desc[head], tbl_gpa, n * 16, VRING_DESC_F_INDIRECT, 0);
		q->free_head = q->next_free[head];
	} else {
		i = head;
		for (k = 0; k < n; k++) {
			uint16_t f = (uint16_t)((k >= out_num ? VRING_DESC_F_WRITE : 0) |
						(k + 1 < n ? VRING_DESC_F_NEXT : 0));
			split_write_desc(&q->desc[i], addr[k], len[k], f,
					 k + 1 < n ? q->next_free[i] : 0);
			last = i;
			i = q->next_free[i];
		}
		q->free_head = q->next_free[last];
	}
	q->num_free -= need;
	q->ndescs[head] = (uint16_t)need;

	vdi_store_relaxed(&q->avail->ring[q->avail_idx & (q->size - 1)], vdi_le16(head));
	q->avail_idx++;
	/* Descriptors and ring entry before the index the device polls. */
	vdi_store_release(&q->avail->idx, vdi_le16(q->avail_idx));
	return head;
}

static void packed_write_desc(struct vring_packed_desc *d, uint64_t addr, uint32_t len,
			      uint16_t id)
{
	vdi_store_relaxed(&d->addr, vdi_le64(addr));
	vdi_store_relaxed(&d->len, vdi_le32(len));
	vdi_store_relaxed(&d->id, vdi_le16(id));
}

static int packed_add(struct vdev_drvq *q, const uint64_t *addr, const uint32_t *len,
		      uint32_t out_num, uint32_t n, int use_indir)
{
	uint16_t id = q->free_head, pos = q->next_avail, first = q->next_avail, first_flags = 0;
	uint8_t wrap = q->avail_wrap;
	uint32_t k, need = use_indir ? 1 : n;

	q->free_head = q->next_free[id];
	if (use_indir) {
		struct vring_packed_desc *tbl =
			(struct vring_packed_desc *)q->indir + (size_t)id * q->indirect_max;
		uint64_t tbl_gpa = q->indir_gpa + (uint64_t)id * q->indirect_max * 16;

		for (k = 0; k < n; k++) {
			packed_write_desc(&tbl[k], addr[k], len[k], 0);
			vdi_store_relaxed(&tbl[k].flags,
					  vdi_le16(k >= out_num ? VRING_DESC_F_WRITE : 0));
		}
		packed_write_desc(&q->pdesc[pos], tbl_gpa, n * 16, id);
		first_flags = (uint16_t)(VRING_DESC_F_INDIRECT | (wrap ? PK_AVAIL : PK_USED));
		if (++pos == q->size) {
			pos = 0;
			wrap ^= 1;
		}
	} else {
		for (k = 0; k < n; k++) {
			uint16_t f = (uint16_t)((k >= out_num ? VRING_DESC_F_WRITE : 0) |
						(k + 1 < n ? VRING_DESC_F_NEXT : 0) |
						(wrap ? PK_AVAIL : PK_USED));

			packed_write_desc(&q->pdesc[pos], addr[k], len[k], id);
			if (k == 0)
				first_flags = f;
			else
				vdi_store_relaxed(&q->pdesc[pos].flags, vdi_le16(f));
			if (++pos == q->size) {
				pos = 0;
				wrap ^= 1;
			}
		}
	}
	q->next_avail = pos;
	q->avail_wrap = wrap;
	q->num_free -= need;
	q->ndescs[id] = (uint16_t)need;
	/* The whole chain becomes visible at once: its first flags go last. */
	vdi_store_release(&q->pdesc[first].flags, vdi_le16(first_flags));
	return id;
}

int vdev_drvq_add(vdev_drvq *q, const uint64_t *addr, const uint32_t *len, uint32_t out_num,
		  uint32_t in_num, void *token, uint32_t flags)
{
	uint32_t n, need, in_bytes = 0;
	int use_indir, id, r;

	if (!q || !token || (flags & ~VDEV_DRVQ_ADD_NO_INDIRECT))
		return -EINVAL;
	if (q->err)
		return q->err;
	r = check_segments(addr, len, out_num, in_num, &in_bytes);
	if (r < 0)
		return r;
	n = out_num + in_num;
	use_indir = q->indirect && !(flags & VDEV_DRVQ_ADD_NO_INDIRECT) && n > 1 &&
		    n <= q->indirect_max;
	need = use_indir ? 1 : n;
	if (need > q->size)
		return -EINVAL;
	if (need > q->num_free)
		return -ENOSPC;

	id = q->packed ? packed_add(q, addr, len, out_num, n, use_indir)
		       : split_add(q, addr, len, out_num, n, use_indir);
	q->tokens[id] = token;
	q->in_len[id] = in_bytes;
	q->inflight++;
	q->num_added += q->packed ? need : 1;
	return 0;
}

int vdev_drvq_kick(vdev_drvq *q)
{
	uint32_t added;
	uint16_t new_idx, old_idx;
	int notify;

	if (!q)
		return -EINVAL;
	if (q->err)
		return q->err;
	added = q->num_added;
	if (!added)
		return 0;
	q->num_added = 0;
	/* Our ring writes before the device's suppression state is read
	 * (2.7.13.3.1 / 2.8.21.3.1): otherwise a needed kick can be lost. */
	vdi_fence_seq_cst();

	if (q->packed) {
		uint16_t fl = vdi_le16(vdi_load_acquire(&q->dev_event->flags));

		new_idx = q->next_avail;
		old_idx = (uint16_t)(new_idx - added);
		if (fl == VRING_PACKED_EVENT_FLAG_DESC && q->event_idx && added < q->size) {
			uint16_t ow = vdi_le16(vdi_load_relaxed(&q->dev_event->off_wrap));
			uint16_t ev = (uint16_t)(ow & ~(1u << PK_WRAP_SHIFT));

			/* An event on the previous lap sits size slots behind in
			 * the linear frame new/old live in. */
			if ((uint8_t)(ow >> PK_WRAP_SHIFT) != q->avail_wrap)
				ev = (uint16_t)(ev - q->size);
			notify = vdi_need_event(ev, new_idx, old_idx);
		} else {
			notify = fl != VRING_PACKED_EVENT_FLAG_DISABLE;
		}
	} else {
		new_idx = q->avail_idx;
		old_idx = (uint16_t)(new_idx - added);
		if (added >= 0xffffu)
			notify = 1;
		else if (q->event_idx)
			notify = vdi_need_event(vdi_le16(vdi_load_relaxed(split_avail_event(q))),
						new_idx, old_idx);
		else
			notify = !(vdi_le16(vdi_load_relaxed(&q->used->flags)) &
				   VRING_USED_F_NO_NOTIFY);
	}
	if (!notify)
		return 0;
	q->drv->t.queue_notify(q->drv->cfg.transport_opaque, q->index);
	return 1;
}

/* Tell an EVENT_IDX device which used entry we want an interrupt for. */
static void arm_used_event(struct vdev_drvq *q)
{
	if (q->packed) {
		uint16_t ow = (uint16_t)(q->used_pos | ((unsigned)q->used_wrap << PK_WRAP_SHIFT));

		vdi_store_relaxed(&q->drv_event->off_wrap, vdi_le16(ow));
	} else {
		vdi_store_relaxed(split_used_event(q), vdi_le16(q->last_used));
	}
}

static int packed_is_used(uint16_t flags, uint8_t wrap)
{
	int avail = !!(flags & PK_AVAIL), used = !!(flags & PK_USED);

	return avail == used && used == wrap;
}

static int finish_used(struct vdev_drvq *q, uint32_t id, uint32_t l, void **token,
		       uint32_t *len)
{
	void *tok = q->tokens[id];

	q->tokens[id] = NULL;
	q->inflight--;
	/* A device cannot have written more than the buffer could hold. */
	if (l > q->in_len[id])
		l = q->in_len[id];
	if (q->irq_enabled && q->event_idx) {
		/* Keep the interrupt armed for the next entry, and make that
		 * store visible before we look at the ring again. */
		arm_used_event(q);
		vdi_fence_seq_cst();
	}
	if (token)
		*token = tok;
	if (len)
		*len = l;
	return 1;
}

static int split_get_used(struct vdev_drvq *q, void **token, uint32_t *len)
{
	uint16_t used_idx = vdi_le16(vdi_load_acquire(&q->used->idx));
	struct vring_used_elem *e;
	uint32_t id, l, n;
	uint16_t last;

	if (used_idx == q->last_used)
		return 0;
	if ((uint16_t)(used_idx - q->last_used) > q->inflight)
		return drvq_break(q, used_idx);
	e = &q->used->ring[q->last_used & (q->size - 1)];
	id = vdi_le32(vdi_load_relaxed(&e->id));
	l = vdi_le32(vdi_load_relaxed(&e->len));
	if (id >= q->size || !q->tokens[id])
		return drvq_break(q, id);

	/* Back to the free list: walk the chain through our private links. */
	n = q->ndescs[id];
	last = (uint16_t)id;
	while (--n)
		last = q->next_free[last];
	q->next_free[last] = q->free_head;
	q->free_head = (uint16_t)id;
	q->num_free += q->ndescs[id];
	q->last_used++;
	return finish_used(q, id, l, token, len);
}

static int packed_get_used(struct vdev_drvq *q, void **token, uint32_t *len)
{
	struct vring_packed_desc *d;
	uint32_t id, l, pos;

	if (!q->inflight)
		return 0;
	d = &q->pdesc[q->used_pos];
	if (!packed_is_used(vdi_le16(vdi_load_acquire(&d->flags)), q->used_wrap))
		return 0;
	id = vdi_le16(vdi_load_relaxed(&d->id));
	l = vdi_le32(vdi_load_relaxed(&d->len));
	if (id >= q->size || !q->tokens[id])
		return drvq_break(q, id);

	/* The device writes one used descriptor per buffer; skip the rest of
	 * the buffer's slots. */
	pos = q->used_pos + q->ndescs[id];
	if (pos >= q->size) {
		pos -= q->size;
		q->used_wrap ^= 1;
	}
	q->used_pos = (uint16_t)pos;
	q->num_free += q->ndescs[id];
	q->next_free[id] = q->free_head;
	q->free_head = (uint16_t)id;
	return finish_used(q, id, l, token, len);
}

int vdev_drvq_get_used(vdev_drvq *q, void **token, uint32_t *len)
{
	if (!q)
		return -EINVAL;
	if (q->err)
		return q->err;
	return q->packed ? packed_get_used(q, token, len) : split_get_used(q, token, len);
}

int vdev_drvq_enable_interrupts(vdev_drvq *q, int enable)
{
	if (!q)
		return -EINVAL;
	if (q->err)
		return q->err;
	if (!enable) {
		q->irq_enabled = 0;
		if (q->packed) {
			vdi_store_relaxed(&q->drv_event->flags,
					  vdi_le16(VRING_PACKED_EVENT_FLAG_DISABLE));
		} else if (q->event_idx) {
			/* flags must stay 0 with EVENT_IDX (2.7.10): park
			 * used_event as far behind as it goes, so the device
			 * would need 65535 more entries to reach it. */
			vdi_store_relaxed(split_used_event(q), vdi_le16((uint16_t)(q->last_used - 1)));
		} else {
			vdi_store_relaxed(&q->avail->flags, vdi_le16(VRING_AVAIL_F_NO_INTERRUPT));
		}
		return 0;
	}

	q->irq_enabled = 1;
	if (q->packed) {
		if (q->event_idx) {
			arm_used_event(q);
			vdi_fence_release();
			vdi_store_relaxed(&q->drv_event->flags,
					  vdi_le16(VRING_PACKED_EVENT_FLAG_DESC));
		} else {
			vdi_store_relaxed(&q->drv_event->flags,
					  vdi_le16(VRING_PACKED_EVENT_FLAG_ENABLE));
		}
	} else if (q->event_idx) {
		arm_used_event(q);
	} else {
		vdi_store_relaxed(&q->avail->flags, vdi_le16(0));
	}
	/* Publish the request before re-checking the ring: a buffer used in
	 * between is either seen here or triggers an interrupt. */
	vdi_fence_seq_cst();
	if (q->packed)
		return q->inflight &&
		       packed_is_used(vdi_le16(vdi_load_acquire(&q->pdesc[q->used_pos].flags)),
				      q->used_wrap);
	return vdi_le16(vdi_load_acquire(&q->used->idx)) != q->last_used;
}

uint32_t vdev_drvq_num_free(const vdev_drvq *q)
{
	if (!q || q->err)
		return 0;
	return q->num_free;
}

uint32_t vdev_drvq_size(const vdev_drvq *q)
{
	return q ? q->size : 0;
}
