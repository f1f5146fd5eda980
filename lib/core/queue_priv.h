/* SPDX-License-Identifier: MIT */
/* The virtqueue object, shared by queue.c (common), queue_split.c and
 * queue_packed.c. Private to lib/core. */
#ifndef VDI_QUEUE_PRIV_H
#define VDI_QUEUE_PRIV_H

#include <linux/virtio_ring.h>
#include <stdint.h>

#include <virtio-dev/queue.h>

#include "queue_internal.h"

struct vdi_pending_used {
	uint16_t slot;  /* packed: ring slot of the used descriptor */
	uint16_t flags; /* packed: flags value to publish */
};

struct vdev_queue {
	vdev_mem *mem;
	uint32_t size;
	uint32_t flags;
	uint64_t desc_addr;
	uint64_t driver_addr;
	uint64_t device_addr;

	int broken; /* 0, or the negative errno that broke the queue */
	/* vhost-user in-flight tracking (inflight.c, one allocation), NULL
	 * when no region is attached: the one test pop and fill add. */
	struct vdi_inflight *ifl;
	vdi_queue_broken_fn owner_fn;
	void *owner_ctx;

	int notify_enabled;     /* the device wants kicks */
	uint32_t inflight;      /* popped, not yet filled */
	uint32_t inflight_descs; /* packed: ring slots held by in-flight chains */
	uint32_t pending;       /* filled, not yet flushed */
	uint32_t pending_descs; /* packed: ring slots of those */

	/* Split ring. */
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint16_t last_avail_idx; /* next available-ring slot to read */
	uint16_t shadow_avail_idx; /* avail->idx as last read */
	uint16_t used_idx;       /* published used->idx */
	uint16_t used_flags;     /* our copy of used->flags */
	uint64_t *heads_inflight; /* bitmap: heads popped and not filled */
	uint16_t base_avail_idx; /* last_avail_idx as creation / set_state left it */

	/* Packed ring. */
	struct vring_packed_desc *pdesc;
	struct vring_packed_desc_event *driver_evt;
	struct vring_packed_desc_event *device_evt;
	uint16_t next_avail; /* slot */
	uint16_t avail_wrap;
	uint16_t next_used;  /* slot of the next used descriptor (after pending) */
	uint16_t used_wrap;
	uint16_t pub_used;   /* slot after the last published used descriptor */
	uint16_t pub_used_wrap;
	struct vdi_pending_used *pend; /* size entries */
	uint64_t *ids_inflight;        /* bitmap over all 65536 buffer ids */
};

/*
 * The longest indirect table, and the most buffers in one chain, a queue
 * accepts: the largest queue size, whatever this queue's size. The spec says
 * a driver must not build a chain longer than the queue, but Linux builds
 * indirect tables of seg_max + 2 entries whatever queue size was chosen, and
 * QEMU accepts them; with vhost-user the front-end picks the queue size after
 * the device offered seg_max, so a strict check would break rings under
 * ordinary Linux guests. Direct chains stay bounded by the queue size (a
 * direct walk longer than that is a loop). The caller's iov_cap still bounds
 * what a pop stores (-ENOBUFS).
 */
#define VDI_CHAIN_MAX VDEV_QUEUE_MAX_SIZE

/* Mark the queue broken (once), log why, tell the owner. Returns -EBADMSG. */
int vdi_queue_break(vdev_queue *q, const char *why);

/* Translate one guest buffer into iovecs; the chain walkers' shared step.
 * Past iov_cap it keeps validating and counting in *niov without storing,
 * so a hostile chain is caught whatever the caller's room; the walker turns
 * *niov > iov_cap into -ENOBUFS at the end. Returns 0 or -EBADMSG. */
int vdi_queue_map_buf(vdev_queue *q, struct vdev_queue_elem *e, uint32_t *niov,
		      uint64_t addr, uint32_t len, int writable);

/* Bitmap helpers for in-flight heads / buffer ids. */
static inline int vdi_bit_test(const uint64_t *map, uint32_t i)
{
	return !!(map[i / 64] & (1ull << (i % 64)));
}

static inline void vdi_bit_flip(uint64_t *map, uint32_t i)
{
	map[i / 64] ^= 1ull << (i % 64);
}

int vdi_split_init(vdev_queue *q);
int vdi_split_pop(vdev_queue *q, struct vdev_queue_elem *e);
/* Pop the chain at @head (< size) without reading the available ring: the
 * same checks and results as vdi_split_pop, last_avail_idx untouched. */
int vdi_split_pop_head(vdev_queue *q, struct vdev_queue_elem *e, uint32_t head);
int vdi_split_fill(vdev_queue *q, const struct vdev_queue_elem *e, uint32_t len);
int vdi_split_flush(vdev_queue *q);
int vdi_split_set_notification(vdev_queue *q, int enable);
int vdi_split_has_avail(vdev_queue *q);

/*
 * In-flight tracking (inflight.c), called only when q->ifl is set: pop
 * (resubmissions first, then the available ring, marking each head),
 * fill (links the head into the batch; before q->pending grows), flush
 * (publishes, then clears the batch's flags), and whether resubmissions
 * remain (for has_avail / set_notification).
 */
int vdi_inflight_pop(vdev_queue *q, struct vdev_queue_elem *e);
void vdi_inflight_fill(vdev_queue *q, uint16_t head);
int vdi_inflight_flush(vdev_queue *q);
int vdi_inflight_has_resubmit(const vdev_queue *q);

int vdi_packed_init(vdev_queue *q);
int vdi_packed_pop(vdev_queue *q, struct vdev_queue_elem *e);
int vdi_packed_fill(vdev_queue *q, const struct vdev_queue_elem *e, uint32_t len);
int vdi_packed_flush(vdev_queue *q);
int vdi_packed_set_notification(vdev_queue *q, int enable);
int vdi_packed_has_avail(vdev_queue *q);

#endif
