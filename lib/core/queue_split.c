/* SPDX-License-Identifier: MIT */
/* Split virtqueue, device side (virtio 1.x, "Split Virtqueues"). */
#include <errno.h>
#include <string.h>

#include "internal/util.h"
#include "queue_priv.h"

/* avail->ring[size] and used->ring[size] hold used_event / avail_event. */
#define USED_EVENT(q) (&(q)->avail->ring[(q)->size])
#define AVAIL_EVENT(q) ((__virtio16 *)&(q)->used->ring[(q)->size])

static inline uint64_t used_gpa(const vdev_queue *q, size_t off)
{
	return q->device_addr + off;
}

int vdi_split_init(vdev_queue *q)
{
	/* The device's view starts where the driver's does: at 0, unless
	 * set_state says otherwise. used->flags is ours: no suppression yet. */
	q->used_flags = 0;
	return 0;
}

/* Load avail->idx and check it is at most size ahead of what we consumed. */
static int load_avail_idx(vdev_queue *q)
{
	uint16_t idx = vdi_le16(vdi_load_acquire(&q->avail->idx));

	if ((uint16_t)(idx - q->last_avail_idx) > q->size)
		return vdi_queue_break(q, "available index more than the queue size ahead");
	q->shadow_avail_idx = idx;
	return 0;
}

int vdi_split_has_avail(vdev_queue *q)
{
	int r;

	if (q->shadow_avail_idx != q->last_avail_idx)
		return 1;
	r = load_avail_idx(q);
	if (r < 0)
		return r;
	return q->shadow_avail_idx != q->last_avail_idx;
}

static inline void read_desc(const struct vring_desc *table, uint32_t i, struct vring_desc *d)
{
	/* One copy; everything after looks only at the copy. */
	memcpy(d, &table[i], sizeof(*d));
	d->addr = vdi_le64(d->addr);
	d->len = vdi_le32(d->len);
	d->flags = vdi_le16(d->flags);
	d->next = vdi_le16(d->next);
}

/*
 * Walk and validate the chain at @head, fill @e, and mark the head in flight.
 * Always inlined: it is the body of the hot vdi_split_pop, and its second
 * caller (resubmission after a vhost-user restart) is rare.
 */
static inline __attribute__((always_inline)) int pop_chain(vdev_queue *q,
							    struct vdev_queue_elem *e,
							    uint32_t head)
{
	const struct vring_desc *table = q->desc;
	uint32_t table_size = q->size;
	uint32_t i = head, walked = 0, bufs = 0, niov = 0, out_num = 0;
	uint64_t out_len = 0, in_len = 0;
	int in_indirect = 0, seen_write = 0, r;

	for (;;) {
		struct vring_desc d;
		int writable;

		/* Bounds every walk, loops included: a direct walk visits at most
		 * size descriptors, an indirect one at most its table size. */
		if (++walked > table_size)
			return vdi_queue_break(q, in_indirect ? "indirect descriptor loop"
							      : "descriptor loop or chain longer than the queue");
		read_desc(table, i, &d);
		if (d.flags & VRING_DESC_F_INDIRECT) {
			if (!(q->flags & VDEV_QUEUE_F_INDIRECT))
				return vdi_queue_break(q, "indirect descriptor without INDIRECT_DESC");
			if (in_indirect)
				return vdi_queue_break(q, "nested indirect descriptor");
			if (d.flags & VRING_DESC_F_NEXT)
				return vdi_queue_break(q, "indirect descriptor with NEXT");
			if (d.len == 0 || d.len % sizeof(struct vring_desc))
				return vdi_queue_break(q, "indirect table size 0 or not a multiple of 16");
			if (d.len / sizeof(struct vring_desc) > VDI_CHAIN_MAX)
				return vdi_queue_break(q, "indirect table longer than 32768");
			if (d.addr + d.len < d.addr)
				return vdi_queue_break(q, "indirect table address + length wraps");
			table = vdev_mem_ptr(q->mem, d.addr, d.len, VDEV_MEM_READ);
			if (!table)
				return vdi_queue_break(q, "indirect table outside guest memory");
			table_size = d.len / sizeof(struct vring_desc);
			in_indirect = 1;
			walked = 0;
			i = 0;
			continue;
		}
		writable = !!(d.flags & VRING_DESC_F_WRITE);
		if (!writable && seen_write)
			return vdi_queue_break(q, "readable descriptor after a writable one");
		seen_write |= writable;
		if (++bufs > VDI_CHAIN_MAX)
			return vdi_queue_break(q, "chain of more than 32768 buffers");
		if (writable)
			in_len += d.len;
		else
			out_len += d.len;
		if (out_len + in_len > UINT32_MAX)
			return vdi_queue_break(q, "chain longer than 4 GiB");
		r = vdi_queue_map_buf(q, e, &niov, d.addr, d.len, writable);
		if (r < 0)
			return r;
		if (!seen_write)
			out_num = niov;
		if (!(d.flags & VRING_DESC_F_NEXT))
			break;
		i = d.next;
		if (i >= table_size)
			return vdi_queue_break(q, "next descriptor index out of range");
	}
	if (vdi_bit_test(q->heads_inflight, head))
		return vdi_queue_break(q, "descriptor head made available while in flight");
	if (niov > e->iov_cap) {
		/* Valid, but the caller needs more room: tell it how much. */
		e->out_num = out_num;
		e->in_num = niov - out_num;
		return -ENOBUFS;
	}
	vdi_bit_flip(q->heads_inflight, head);

	e->out_num = out_num;
	e->in_num = niov - out_num;
	e->out_len = out_len;
	e->in_len = in_len;
	e->id = head;
	e->ndescs = 1;
	q->inflight++;
	return 1;
}

int vdi_split_pop_head(vdev_queue *q, struct vdev_queue_elem *e, uint32_t head)
{
	return pop_chain(q, e, head);
}

int vdi_split_pop(vdev_queue *q, struct vdev_queue_elem *e)
{
	uint32_t head;
	int r;

	r = vdi_split_has_avail(q);
	if (r <= 0)
		return r;
	/* A driver has at most size chains out; more means it reused heads. */
	if (q->inflight + q->pending >= q->size)
		return vdi_queue_break(q, "more buffers outstanding than the queue size");
	head = vdi_le16(vdi_load_relaxed(&q->avail->ring[q->last_avail_idx & (q->size - 1)]));
	if (head >= q->size)
		return vdi_queue_break(q, "descriptor head index out of range");
	r = pop_chain(q, e, head);
	if (r <= 0)
		return r;
	q->last_avail_idx++;
	if ((q->flags & VDEV_QUEUE_F_EVENT_IDX) && q->notify_enabled) {
		vdi_store_relaxed(AVAIL_EVENT(q), vdi_le16(q->last_avail_idx));
		vdev_mem_mark_dirty(q->mem, used_gpa(q, offsetof(struct vring_used, ring) +
							 q->size * sizeof(struct vring_used_elem)),
				    2);
	}
	return 1;
}

int vdi_split_fill(vdev_queue *q, const struct vdev_queue_elem *e, uint32_t len)
{
	uint32_t slot;
	struct vring_used_elem *u;

	if (e->id >= q->size || !vdi_bit_test(q->heads_inflight, e->id))
		return -EINVAL;
	vdi_bit_flip(q->heads_inflight, e->id);
	slot = (uint16_t)(q->used_idx + q->pending) & (q->size - 1);
	u = &q->used->ring[slot];
	vdi_store_relaxed(&u->id, vdi_le32(e->id));
	vdi_store_relaxed(&u->len, vdi_le32(len));
	vdev_mem_mark_dirty(q->mem, used_gpa(q, offsetof(struct vring_used, ring) + slot * sizeof(*u)),
			    sizeof(*u));
	return 0;
}

int vdi_split_flush(vdev_queue *q)
{
	uint16_t old = q->used_idx, new_idx = (uint16_t)(q->used_idx + q->pending);

	/* Entries first, then the index the driver polls. */
	vdi_store_release(&q->used->idx, vdi_le16(new_idx));
	vdev_mem_mark_dirty(q->mem, used_gpa(q, offsetof(struct vring_used, idx)), 2);
	q->used_idx = new_idx;
	q->pending = 0;

	/* Our index store must be visible before we read the driver's wishes,
	 * or both sides could decide the other will act. */
	vdi_fence_seq_cst();
	if (q->flags & VDEV_QUEUE_F_EVENT_IDX)
		return vdi_need_event(vdi_le16(vdi_load_relaxed(USED_EVENT(q))), new_idx, old);
	return !(vdi_le16(vdi_load_relaxed(&q->avail->flags)) & VRING_AVAIL_F_NO_INTERRUPT);
}

int vdi_split_set_notification(vdev_queue *q, int enable)
{
	if (q->flags & VDEV_QUEUE_F_EVENT_IDX) {
		/* Disabling parks avail_event one behind the next slot: the
		 * driver's index would have to go all the way round before it
		 * kicks again, so a polling device gets no kicks at all (merely
		 * leaving it stale still costs one kick per batch). */
		uint16_t ev = enable ? q->last_avail_idx : (uint16_t)(q->last_avail_idx - 1);

		vdi_store_relaxed(AVAIL_EVENT(q), vdi_le16(ev));
		vdev_mem_mark_dirty(q->mem, used_gpa(q, offsetof(struct vring_used, ring) +
							 q->size * sizeof(struct vring_used_elem)),
				    2);
		if (!enable)
			return 0;
	} else {
		if (enable)
			q->used_flags &= (uint16_t)~VRING_USED_F_NO_NOTIFY;
		else
			q->used_flags |= VRING_USED_F_NO_NOTIFY;
		vdi_store_relaxed(&q->used->flags, vdi_le16(q->used_flags));
		vdev_mem_mark_dirty(q->mem, used_gpa(q, offsetof(struct vring_used, flags)), 2);
		if (!enable)
			return 0;
	}
	/* Publish the wish before looking at the ring again (pairs with the
	 * driver's barrier between its index update and reading our flags). */
	vdi_fence_seq_cst();
	q->shadow_avail_idx = q->last_avail_idx;
	return vdi_split_has_avail(q);
}
