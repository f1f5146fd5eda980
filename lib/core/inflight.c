/* SPDX-License-Identifier: MIT */
/*
 * In-flight request tracking for vhost-user restarts (INFLIGHT_SHMFD), split
 * virtqueues, in the region layout of QEMU's docs/interop/vhost-user.rst
 * ("Inflight I/O tracking"). See queue_inflight.h for the contract.
 *
 * Write order, so that a back-end killed between any two stores leaves a
 * region the next one can repair:
 * - pop: desc[head].counter, then desc[head].inflight = 1. The flag stays set
 *   until the used index covering the head is published.
 * - fill: desc[head].next = the previous batch head, then last_batch_head =
 *   head (the batch list the repair walks).
 * - flush: used->idx in the ring, then every flag of the batch cleared, then
 *   the region's used_idx = used->idx.
 * So the region's used_idx lags the ring's by at most one batch, whose heads
 * are the first (used->idx - used_idx) entries of the list from
 * last_batch_head; every other flagged head was popped and not published.
 *
 * The queue never reads the region back after attach: its own batch list and
 * counter are private copies, so a front-end scribbling on the shared memory
 * can spoil what the next back-end resubmits, not what this one does.
 * Process death makes every executed store visible, so only the compiler's
 * ordering matters; release ordering keeps it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal/util.h"
#include "queue_inflight.h"
#include "queue_priv.h"

/* Native byte order, as the protocol says (the region is not guest memory). */
struct vdi_inflight_desc {
	uint8_t inflight; /* 1 while the head is popped and its used entry unpublished */
	uint8_t padding[5];
	uint16_t next;    /* batch list: the head filled before this one */
	uint64_t counter; /* pop order */
};

struct vdi_inflight_region {
	uint64_t features; /* 0: no extension is defined */
	uint16_t version;  /* VDI_INFLIGHT_VERSION; 0: never formatted */
	uint16_t desc_num;
	uint16_t last_batch_head;
	uint16_t used_idx;
	struct vdi_inflight_desc desc[];
};

_Static_assert(sizeof(struct vdi_inflight_desc) == 16, "DescStateSplit is 16 bytes");
_Static_assert(sizeof(struct vdi_inflight_region) == 16, "QueueRegionSplit header is 16 bytes");

/* Per-queue state, one allocation: batch[size] then resubmit[size]. */
struct vdi_inflight {
	struct vdi_inflight_region *rg;
	uint64_t counter;        /* the next pop's */
	uint16_t last_batch_head;
	uint32_t resubmit_next;  /* resubmit[] entries already popped */
	uint32_t resubmit_num;
	uint16_t *batch;         /* heads filled since the last flush (q->pending of them) */
	uint16_t *resubmit;      /* in-flight heads found at attach, oldest first */
};

#define REGION_ALIGN 64u

static size_t region_need(uint32_t desc_num)
{
	return sizeof(struct vdi_inflight_region) +
	       (size_t)desc_num * sizeof(struct vdi_inflight_desc);
}

/* Equal to libvhost-user's ALIGN_UP(16 * n + 2, 64), so one memfd lays the
 * queues out at the same offsets whichever back-end formatted it. */
size_t vdi_inflight_region_size(uint16_t queue_size)
{
	return (region_need(queue_size) + REGION_ALIGN - 1) & ~(size_t)(REGION_ALIGN - 1);
}

void vdi_inflight_region_init(void *region, uint16_t queue_size)
{
	struct vdi_inflight_region *rg = region;

	memset(region, 0, region_need(queue_size));
	rg->version = VDI_INFLIGHT_VERSION;
	rg->desc_num = queue_size;
}

int vdi_inflight_has_resubmit(const vdev_queue *q)
{
	return q->ifl->resubmit_next < q->ifl->resubmit_num;
}

int vdi_inflight_pop(vdev_queue *q, struct vdev_queue_elem *e)
{
	struct vdi_inflight *f = q->ifl;
	struct vdi_inflight_desc *d;
	int r;

	if (f->resubmit_next < f->resubmit_num) {
		/* Already flagged in the region, with its original counter. */
		r = vdi_split_pop_head(q, e, f->resubmit[f->resubmit_next]);
		if (r > 0)
			f->resubmit_next++;
		return r;
	}
	r = vdi_split_pop(q, e);
	if (r <= 0)
		return r;
	d = &f->rg->desc[e->id];
	vdi_store_relaxed(&d->counter, f->counter++);
	vdi_store_release(&d->inflight, 1);
	return r;
}

void vdi_inflight_fill(vdev_queue *q, uint16_t head)
{
	struct vdi_inflight *f = q->ifl;

	vdi_store_relaxed(&f->rg->desc[head].next, f->last_batch_head);
	vdi_store_release(&f->rg->last_batch_head, head);
	f->last_batch_head = head;
	/* Below size: pop keeps inflight + pending <= size, and resubmissions
	 * are at most what attach found in flight. */
	f->batch[q->pending] = head;
}

int vdi_inflight_flush(vdev_queue *q)
{
	struct vdi_inflight *f = q->ifl;
	uint32_t i, n = q->pending;
	int r;

	r = vdi_split_flush(q);
	/* A flag cleared before used->idx is out would lose its request. */
	vdi_fence_release();
	for (i = 0; i < n; i++)
		vdi_store_relaxed(&f->rg->desc[f->batch[i]].inflight, 0);
	vdi_store_release(&f->rg->used_idx, q->used_idx);
	return r;
}

struct found {
	uint64_t counter;
	uint32_t head;
};

static int found_cmp(const void *a, const void *b)
{
	const struct found *x = a, *y = b;

	if (x->counter != y->counter)
		return x->counter < y->counter ? -1 : 1;
	return x->head < y->head ? -1 : x->head > y->head;
}

/*
 * Read the region once (the front-end may change it under us) and nothing
 * else: the flagged heads into @found, then, when the ring's used index is
 * ahead of the region's, the heads of that half-published batch into
 * @batch (*nbatch of them), dropped from @found. Returns the number left in
 * @found, -EINVAL or -ENOMEM.
 */
static int scan_region(const vdev_queue *q, const struct vdi_inflight_region *rg,
		       uint32_t desc_num, uint16_t used, struct found *found, uint16_t *batch,
		       uint32_t *nbatch)
{
	uint16_t n_batch = (uint16_t)(used - vdi_load_relaxed(&rg->used_idx));
	uint16_t h = vdi_load_relaxed(&rg->last_batch_head);
	uint64_t *in_batch;
	uint32_t i, k, n = 0;

	for (i = 0; i < desc_num; i++) {
		uint8_t fl = vdi_load_relaxed(&rg->desc[i].inflight);

		if (fl == 0)
			continue;
		if (fl != 1 || i >= q->size)
			return -EINVAL;
		found[n].counter = vdi_load_relaxed(&rg->desc[i].counter);
		found[n].head = i;
		n++;
	}
	*nbatch = 0;
	/* Nothing flagged: nothing to repair, whatever used_idx says (a region
	 * fresh from vdi_inflight_region_init holds 0 there). */
	if (n == 0 || n_batch == 0)
		return (int)n;
	/* The region's used_idx trails the ring's by one batch at most. */
	if (n_batch > q->size)
		return -EINVAL;
	in_batch = calloc((q->size + 63) / 64, sizeof(*in_batch));
	if (!in_batch)
		return -ENOMEM;
	for (i = 0; i < n_batch; i++) {
		if (h >= q->size) {
			free(in_batch);
			return -EINVAL;
		}
		batch[i] = h;
		if (!vdi_bit_test(in_batch, h))
			vdi_bit_flip(in_batch, h);
		h = vdi_load_relaxed(&rg->desc[h].next);
	}
	*nbatch = n_batch;
	for (i = k = 0; i < n; i++)
		if (!vdi_bit_test(in_batch, found[i].head))
			found[k++] = found[i];
	free(in_batch);
	return (int)k;
}

/* Repair, collect the resubmissions and reposition the ring. */
static int attach(vdev_queue *q, struct vdi_inflight *f, size_t len)
{
	struct vdi_inflight_region *rg = f->rg;
	uint32_t desc_num = vdi_load_relaxed(&rg->desc_num), nbatch, i;
	uint16_t used, avail;
	struct found *found;
	int n;

	if (vdi_load_relaxed(&rg->features) != 0 || desc_num < q->size ||
	    len < region_need(desc_num))
		return -EINVAL;
	found = calloc(q->size, sizeof(*found));
	if (!found)
		return -ENOMEM;
	used = vdi_le16(vdi_load_relaxed(&q->used->idx));
	n = scan_region(q, rg, desc_num, used, found, f->batch, &nbatch);
	if (n < 0)
		goto out;
	/* In flight means made available and not used: the ring must hold them. */
	avail = vdi_le16(vdi_load_acquire(&q->avail->idx));
	if ((uint32_t)n > (uint16_t)(avail - used)) {
		n = -EINVAL;
		goto out;
	}
	qsort(found, (size_t)n, sizeof(*found), found_cmp);
	for (i = 0; i < (uint32_t)n; i++)
		f->resubmit[i] = (uint16_t)found[i].head;
	f->resubmit_num = (uint32_t)n;
	f->counter = n ? found[n - 1].counter + 1 : 0;
	f->last_batch_head = vdi_load_relaxed(&rg->last_batch_head);

	/* The batch reached the ring, so it is no longer in flight; from here
	 * on the region's used_idx follows the ring's. */
	for (i = 0; i < nbatch; i++)
		vdi_store_relaxed(&rg->desc[f->batch[i]].inflight, 0);
	vdi_store_release(&rg->used_idx, used);
	q->used_idx = used;
	q->last_avail_idx = (uint16_t)(used + n);
	q->shadow_avail_idx = q->last_avail_idx;
out:
	free(found);
	return n;
}

int vdi_queue_set_inflight(vdev_queue *q, void *region, size_t len)
{
	struct vdi_inflight *f;
	uint16_t version;
	int r;

	if (!q || !region)
		return -EINVAL;
	if (q->flags & VDEV_QUEUE_F_PACKED)
		return -EOPNOTSUPP;
	if (q->ifl || q->inflight || q->pending || q->last_avail_idx != q->base_avail_idx)
		return -EBUSY;
	if ((uintptr_t)region % _Alignof(struct vdi_inflight_region) ||
	    len < sizeof(struct vdi_inflight_region))
		return -EINVAL;
	version = vdi_load_relaxed(&((struct vdi_inflight_region *)region)->version);
	if (version != 0 && version != VDI_INFLIGHT_VERSION)
		return -EINVAL;
	if (version == 0 && len < region_need(q->size))
		return -EINVAL;

	f = calloc(1, sizeof(*f) + 2 * (size_t)q->size * sizeof(uint16_t));
	if (!f)
		return -ENOMEM;
	f->rg = region;
	f->batch = (uint16_t *)(f + 1);
	f->resubmit = f->batch + q->size;
	if (version == 0) /* never formatted: the protocol's "uninitialized buffer" */
		vdi_inflight_region_init(region, (uint16_t)q->size);
	r = attach(q, f, len);
	if (r < 0) {
		vdi_log(VDEV_LOG_WARNING, "virtqueue (size %u): in-flight region refused: %d",
			q->size, r);
		free(f);
		return r;
	}
	q->ifl = f;
	return r;
}
