/* SPDX-License-Identifier: MIT */
/* Packed virtqueue, device side (virtio 1.x, "Packed Virtqueues"). */
#include <errno.h>
#include <string.h>

#include "internal/util.h"
#include "queue_priv.h"

#define F_AVAIL (1u << VRING_PACKED_DESC_F_AVAIL)
#define F_USED (1u << VRING_PACKED_DESC_F_USED)
#define WRAP_SHIFT VRING_PACKED_EVENT_F_WRAP_CTR

static inline int desc_is_avail(uint16_t flags, uint16_t wrap)
{
	return !!(flags & F_AVAIL) == wrap && !!(flags & F_USED) != wrap;
}

/*
 * A ring position with its wrap counter, as one number modulo 2 * size, so
 * that "did the batch [old, new) pass the driver's event?" is plain modular
 * arithmetic even across a wrap. Wrap counters start at 1.
 */
static inline uint32_t ring_pos(const vdev_queue *q, uint32_t slot, uint32_t wrap)
{
	return slot + (wrap ? 0 : q->size);
}

static void write_device_event(vdev_queue *q, int enable)
{
	uint16_t flags;

	if (!enable) {
		flags = VRING_PACKED_EVENT_FLAG_DISABLE;
	} else if (q->flags & VDEV_QUEUE_F_EVENT_IDX) {
		vdi_store_relaxed(&q->device_evt->off_wrap,
				  vdi_le16((uint16_t)(q->next_avail | (q->avail_wrap << WRAP_SHIFT))));
		flags = VRING_PACKED_EVENT_FLAG_DESC;
	} else {
		flags = VRING_PACKED_EVENT_FLAG_ENABLE;
	}
	vdi_store_release(&q->device_evt->flags, vdi_le16(flags));
	vdev_mem_mark_dirty(q->mem, q->device_addr, sizeof(*q->device_evt));
}

int vdi_packed_init(vdev_queue *q)
{
	q->avail_wrap = 1;
	q->used_wrap = 1;
	q->pub_used_wrap = 1;
	write_device_event(q, 1);
	return 0;
}

int vdi_packed_has_avail(vdev_queue *q)
{
	uint16_t flags = vdi_le16(vdi_load_acquire(&q->pdesc[q->next_avail].flags));

	return desc_is_avail(flags, q->avail_wrap);
}

static inline void read_desc(const struct vring_packed_desc *p, struct vring_packed_desc *d)
{
	memcpy(d, p, sizeof(*d));
	d->addr = vdi_le64(d->addr);
	d->len = vdi_le32(d->len);
	d->id = vdi_le16(d->id);
	d->flags = vdi_le16(d->flags);
}

struct walk {
	uint32_t niov, out_num, bufs;
	uint64_t out_len, in_len;
	int seen_write;
};

/* One data descriptor (direct or from an indirect table). */
static int walk_buf(vdev_queue *q, struct vdev_queue_elem *e, struct walk *w, uint64_t addr,
		    uint32_t len, int writable)
{
	int r;

	if (!writable && w->seen_write)
		return vdi_queue_break(q, "readable descriptor after a writable one");
	w->seen_write |= writable;
	if (++w->bufs > VDI_CHAIN_MAX)
		return vdi_queue_break(q, "chain of more than 32768 buffers");
	if (writable)
		w->in_len += len;
	else
		w->out_len += len;
	if (w->out_len + w->in_len > UINT32_MAX)
		return vdi_queue_break(q, "chain longer than 4 GiB");
	r = vdi_queue_map_buf(q, e, &w->niov, addr, len, writable);
	if (r < 0)
		return r;
	if (!w->seen_write)
		w->out_num = w->niov;
	return 0;
}

static int walk_indirect(vdev_queue *q, struct vdev_queue_elem *e, struct walk *w,
			 const struct vring_packed_desc *d)
{
	const struct vring_packed_desc *table;
	uint32_t k, n;
	int r;

	if (!(q->flags & VDEV_QUEUE_F_INDIRECT))
		return vdi_queue_break(q, "indirect descriptor without INDIRECT_DESC");
	if (d->flags & VRING_DESC_F_NEXT)
		return vdi_queue_break(q, "indirect descriptor in a chained list");
	if (d->len == 0 || d->len % sizeof(*table))
		return vdi_queue_break(q, "indirect table size 0 or not a multiple of 16");
	n = d->len / sizeof(*table);
	if (n > VDI_CHAIN_MAX)
		return vdi_queue_break(q, "indirect table longer than 32768");
	if (d->addr + d->len < d->addr)
		return vdi_queue_break(q, "indirect table address + length wraps");
	table = vdev_mem_ptr(q->mem, d->addr, d->len, VDEV_MEM_READ);
	if (!table)
		return vdi_queue_break(q, "indirect table outside guest memory");
	/* Packed indirect tables are walked in order; NEXT is not used. */
	for (k = 0; k < n; k++) {
		struct vring_packed_desc x;

		read_desc(&table[k], &x);
		if (x.flags & VRING_DESC_F_INDIRECT)
			return vdi_queue_break(q, "nested indirect descriptor");
		r = walk_buf(q, e, w, x.addr, x.len, !!(x.flags & VRING_DESC_F_WRITE));
		if (r < 0)
			return r;
	}
	return 0;
}

int vdi_packed_pop(vdev_queue *q, struct vdev_queue_elem *e)
{
	struct walk w = {0};
	uint32_t slot = q->next_avail, wrap = q->avail_wrap, ndescs = 0;
	uint16_t id = 0;
	uint16_t flags0 = vdi_le16(vdi_load_acquire(&q->pdesc[slot].flags));
	int r;

	if (!desc_is_avail(flags0, q->avail_wrap))
		return 0;
	for (;;) {
		struct vring_packed_desc d;

		if (++ndescs > q->size)
			return vdi_queue_break(q, "chain longer than the queue");
		read_desc(&q->pdesc[slot], &d);
		if (ndescs == 1)
			d.flags = flags0; /* the value we checked, not a re-read */
		if (d.flags & VRING_DESC_F_INDIRECT) {
			if (ndescs != 1)
				return vdi_queue_break(q, "indirect descriptor in a chained list");
			r = walk_indirect(q, e, &w, &d);
		} else {
			r = walk_buf(q, e, &w, d.addr, d.len, !!(d.flags & VRING_DESC_F_WRITE));
		}
		if (r < 0)
			return r;
		id = d.id; /* the buffer id is in the last descriptor */
		if (++slot == q->size) {
			slot = 0;
			wrap ^= 1;
		}
		if (!(d.flags & VRING_DESC_F_NEXT))
			break;
	}
	/* Slots from the oldest unpublished used position up to next_avail are
	 * the device's; a driver that offers more has overwritten them. */
	if (q->inflight_descs + ndescs > q->size)
		return vdi_queue_break(q, "more descriptors outstanding than the queue size");
	if (vdi_bit_test(q->ids_inflight, id))
		return vdi_queue_break(q, "buffer id made available while in flight");
	if (w.niov > e->iov_cap) {
		/* Valid, but the caller needs more room: tell it how much. */
		e->out_num = w.out_num;
		e->in_num = w.niov - w.out_num;
		return -ENOBUFS;
	}
	vdi_bit_flip(q->ids_inflight, id);

	e->out_num = w.out_num;
	e->in_num = w.niov - w.out_num;
	e->out_len = w.out_len;
	e->in_len = w.in_len;
	e->id = id;
	e->ndescs = ndescs;
	q->next_avail = (uint16_t)slot;
	q->avail_wrap = (uint16_t)wrap;
	q->inflight++;
	q->inflight_descs += ndescs;
	if ((q->flags & VDEV_QUEUE_F_EVENT_IDX) && q->notify_enabled)
		write_device_event(q, 1);
	return 1;
}

int vdi_packed_fill(vdev_queue *q, const struct vdev_queue_elem *e, uint32_t len)
{
	struct vring_packed_desc *d;
	uint32_t slot = q->next_used;

	if (e->id > 0xffff || !vdi_bit_test(q->ids_inflight, e->id) || e->ndescs == 0 ||
	    e->ndescs > q->inflight_descs - q->pending_descs)
		return -EINVAL;
	vdi_bit_flip(q->ids_inflight, e->id);
	d = &q->pdesc[slot];
	vdi_store_relaxed(&d->id, vdi_le16((uint16_t)e->id));
	vdi_store_relaxed(&d->len, vdi_le32(len));
	q->pend[q->pending].slot = (uint16_t)slot;
	q->pend[q->pending].flags = q->used_wrap ? (uint16_t)(F_AVAIL | F_USED) : 0;
	vdev_mem_mark_dirty(q->mem, q->desc_addr + (uint64_t)slot * sizeof(*d), sizeof(*d));
	slot += e->ndescs;
	if (slot >= q->size) {
		slot -= q->size;
		q->used_wrap ^= 1;
	}
	q->next_used = (uint16_t)slot;
	q->pending_descs += e->ndescs;
	return 0;
}

int vdi_packed_flush(vdev_queue *q)
{
	uint32_t n2 = 2 * q->size, old_pos, new_pos, i;
	uint16_t evf;

	old_pos = ring_pos(q, q->pub_used, q->pub_used_wrap);
	/* Publish in reverse so the first used descriptor, the one the driver
	 * looks at, becomes visible last, with everything before it. */
	for (i = q->pending; i-- > 0;)
		vdi_store_release(&q->pdesc[q->pend[i].slot].flags, vdi_le16(q->pend[i].flags));
	q->pub_used = q->next_used;
	q->pub_used_wrap = q->used_wrap;
	q->inflight_descs -= q->pending_descs;
	q->pending_descs = 0;
	q->pending = 0;
	new_pos = ring_pos(q, q->pub_used, q->pub_used_wrap);

	vdi_fence_seq_cst();
	evf = vdi_le16(vdi_load_relaxed(&q->driver_evt->flags)) & 0x3;
	if (evf == VRING_PACKED_EVENT_FLAG_DISABLE)
		return 0;
	if (evf == VRING_PACKED_EVENT_FLAG_DESC && (q->flags & VDEV_QUEUE_F_EVENT_IDX)) {
		uint16_t ow = vdi_le16(vdi_load_relaxed(&q->driver_evt->off_wrap));
		uint32_t off = ow & ~(1u << WRAP_SHIFT), ev_pos;

		if (off >= q->size)
			return 1; /* nonsense event: notify rather than stall the driver */
		ev_pos = ring_pos(q, off, ow >> WRAP_SHIFT);
		/* Notify iff ev_pos lies in [old_pos, new_pos), modulo 2 * size. */
		return (new_pos + n2 - ev_pos - 1) % n2 < (new_pos + n2 - old_pos) % n2;
	}
	return 1;
}

int vdi_packed_set_notification(vdev_queue *q, int enable)
{
	write_device_event(q, enable);
	if (!enable)
		return 0;
	vdi_fence_seq_cst();
	return vdi_packed_has_avail(q);
}
