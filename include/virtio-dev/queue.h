/* SPDX-License-Identifier: MIT */
/*
 * Virtqueue, device side: split and packed rings behind one API.
 *
 * The device pops available descriptor chains as iovec lists that point
 * straight into guest memory (readable part first, then writable part), does
 * its work, and pushes them back as used. Every guest-controlled field is
 * copied once and then validated; a ring that breaks a rule makes the queue
 * "broken": every later pop returns -EBADMSG and, for a queue owned by a
 * vdev_device, the device sets DEVICE_NEEDS_RESET.
 *
 * Typical loop (one notification decision per batch):
 *
 *     do {
 *         vdev_queue_set_notification(q, 0);
 *         while ((r = vdev_queue_pop(q, &elem)) > 0) {
 *             ... serve elem, then vdev_queue_fill(q, &elem, written) ...
 *         }
 *         if (vdev_queue_flush(q) > 0)
 *             ... interrupt the driver ...
 *     } while (vdev_queue_set_notification(q, 1) > 0);
 *
 * Thread-safety: a queue is used by one thread at a time (its owner); distinct
 * queues may run on distinct threads with no shared lock.
 */
#ifndef VIRTIO_DEV_QUEUE_H
#define VIRTIO_DEV_QUEUE_H

#include <stdint.h>
#include <sys/uio.h>

#include "common.h"
#include "mem.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vdev_queue vdev_queue;

/* vdev_queue_config.flags */
#define VDEV_QUEUE_F_PACKED 0x1u    /* packed ring (VIRTIO_F_RING_PACKED) */
#define VDEV_QUEUE_F_EVENT_IDX 0x2u /* VIRTIO_F_EVENT_IDX negotiated */
#define VDEV_QUEUE_F_INDIRECT 0x4u  /* VIRTIO_F_INDIRECT_DESC negotiated */

/* Largest queue size: 32768 (split: power of two; packed: any 1..32768). */
#define VDEV_QUEUE_MAX_SIZE 32768u

struct vdev_queue_config {
	uint32_t struct_size;
	uint32_t size;  /* descriptors in the ring */
	uint32_t flags; /* VDEV_QUEUE_F_* */
	uint32_t reserved;
	/* Split: descriptor table, available ring, used ring.
	 * Packed: descriptor ring, driver event suppression area, device event
	 * suppression area. Guest-physical addresses. */
	uint64_t desc_addr;
	uint64_t driver_addr;
	uint64_t device_addr;
};

#define VDEV_QUEUE_CONFIG_INIT VDEV_STRUCT_INIT(struct vdev_queue_config)

/*
 * One popped chain. The caller owns the storage: it points @iov and @gpa at
 * arrays of @iov_cap entries (a chain can need more entries than descriptors
 * when a buffer spans two memory regions). pop fills in the rest.
 */
struct vdev_queue_elem {
	uint32_t struct_size;
	uint32_t iov_cap;    /* in: entries in iov[] and gpa[] */
	struct iovec *iov;   /* in: array; out: readable then writable buffers */
	uint64_t *gpa;       /* in: array; out: guest address of each iov */
	uint32_t out_num;    /* out: readable (driver->device) entries */
	uint32_t in_num;     /* out: writable (device->driver) entries */
	uint64_t out_len;    /* out: total readable bytes */
	uint64_t in_len;     /* out: total writable bytes */
	uint32_t id;         /* out: token for fill/push (head or buffer id) */
	uint32_t ndescs;     /* out: ring slots the chain used (packed) */
};

#define VDEV_QUEUE_ELEM_INIT VDEV_STRUCT_INIT(struct vdev_queue_elem)

/* Saved ring position, for migration and vhost-user GET/SET_VRING_BASE. */
struct vdev_queue_state {
	uint32_t struct_size;
	uint16_t last_avail_idx; /* next slot the device will read */
	uint16_t used_idx;       /* next slot the device will write */
	uint8_t avail_wrap;      /* packed: wrap counters (0 or 1) */
	uint8_t used_wrap;
	uint16_t reserved;
};

#define VDEV_QUEUE_STATE_INIT VDEV_STRUCT_INIT(struct vdev_queue_state)

/**
 * vdev_queue_new() - attach to a ring the driver set up in guest memory.
 * @cfg: size, layout and addresses (copied).
 * @mem: guest memory, borrowed: it must outlive the queue.
 * @out: receives the queue; untouched on failure.
 *
 * The ring areas must lie inside guest memory (writable where the device
 * writes) and be aligned as the spec requires (split: 16/2/4; packed: 16/4/4).
 * Returns 0; -EINVAL for a bad size (0, above 32768, or split and not a power
 * of two), bad alignment or unknown flags; -EFAULT for ring areas outside
 * guest memory; -ENOMEM. Since 0.1.
 */
VDEV_EXPORT int vdev_queue_new(const struct vdev_queue_config *cfg, vdev_mem *mem,
			       vdev_queue **out);

/** vdev_queue_free() - detach from the ring. Accepts NULL. Since 0.1. */
VDEV_EXPORT void vdev_queue_free(vdev_queue *q);

/** vdev_queue_size() - the ring's size. Since 0.1. */
VDEV_EXPORT uint32_t vdev_queue_size(const vdev_queue *q);

/**
 * vdev_queue_pop() - take the next available chain.
 * @elem: caller storage (see struct vdev_queue_elem); filled on success.
 *
 * A 0 from pop is not a safe point to sleep: only vdev_queue_set_notification
 * (q, 1) returning 0 is (it re-checks after a full barrier), as in the loop
 * at the top of this header.
 *
 * Returns 1 when a chain was popped, 0 when none is available, -ENOBUFS when
 * elem->iov_cap is too small (nothing consumed; out_num + in_num then give the
 * entries needed: retry with that much room), or
 * -EBADMSG when the ring is malformed (the queue is now broken). -EINVAL for
 * bad arguments. Since 0.1.
 */
VDEV_EXPORT int vdev_queue_pop(vdev_queue *q, struct vdev_queue_elem *elem);

/**
 * vdev_queue_fill() - return a popped chain as used, without publishing it.
 * @len: bytes written into the chain's writable part (clamped to in_len).
 *
 * The written part is marked dirty in guest memory, from @elem's iov[] and
 * gpa[] as pop left them: consume a copy of the iovecs, not the originals.
 * Visible to the driver after vdev_queue_flush(). Returns 0, -EINVAL (unknown id) or -EBADMSG (queue
 * broken). Since 0.1.
 */
VDEV_EXPORT int vdev_queue_fill(vdev_queue *q, const struct vdev_queue_elem *elem,
				uint32_t len);

/**
 * vdev_queue_flush() - publish every filled entry and decide, once for the
 * batch, whether the driver wants an interrupt (EVENT_IDX or the
 * NO_INTERRUPT / driver event flags).
 *
 * Returns 1 when the caller should send a used-buffer notification, 0 when not
 * (or nothing was filled), -EBADMSG when the queue is broken. Since 0.1.
 */
VDEV_EXPORT int vdev_queue_flush(vdev_queue *q);

/** vdev_queue_push() - fill + flush. Returns what flush returns. Since 0.1. */
VDEV_EXPORT int vdev_queue_push(vdev_queue *q, const struct vdev_queue_elem *elem, uint32_t len);

/**
 * vdev_queue_set_notification() - ask the driver to stop (@enable 0) or resume
 * (@enable 1) sending available-buffer notifications (kicks).
 *
 * With EVENT_IDX this writes avail_event (split) or the device event area
 * (packed) for the next unseen slot. When enabling, the ring is re-checked
 * after a full barrier: returns 1 if buffers arrived meanwhile (keep
 * draining), 0 if none, -EBADMSG if broken. Since 0.1.
 */
VDEV_EXPORT int vdev_queue_set_notification(vdev_queue *q, int enable);

/**
 * vdev_queue_has_avail() - 1 if at least one chain is available, 0 if not,
 * -EBADMSG when broken (including an avail index more than the queue size
 * ahead). Since 0.1.
 */
VDEV_EXPORT int vdev_queue_has_avail(vdev_queue *q);

/**
 * vdev_queue_is_broken() - 0, or the negative errno that broke the queue.
 * Since 0.1.
 */
VDEV_EXPORT int vdev_queue_is_broken(const vdev_queue *q);

/**
 * vdev_queue_inflight() - chains popped and not yet filled. Since 0.1.
 */
VDEV_EXPORT uint32_t vdev_queue_inflight(const vdev_queue *q);

/**
 * vdev_queue_get_state() / vdev_queue_set_state() - ring position, for
 * migration. set_state is for a fresh queue with nothing in flight (-EBUSY
 * otherwise) and validates the indices (-EINVAL). Since 0.1.
 */
VDEV_EXPORT int vdev_queue_get_state(const vdev_queue *q, struct vdev_queue_state *st);
VDEV_EXPORT int vdev_queue_set_state(vdev_queue *q, const struct vdev_queue_state *st);

#ifdef __cplusplus
}
#endif

#endif
