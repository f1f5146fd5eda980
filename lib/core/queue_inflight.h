/* SPDX-License-Identifier: MIT */
/*
 * In-flight request tracking in shared memory, so that requests a back-end
 * had popped survive its restart (vhost-user INFLIGHT_SHMFD; the region
 * layout is the one of QEMU's docs/interop/vhost-user.rst, "Inflight I/O
 * tracking", split virtqueue format).
 *
 * One region per queue, inside a memfd the back-end creates
 * (GET_INFLIGHT_FD) and the front-end keeps and hands back on reconnect
 * (SET_INFLIGHT_FD). The queue writes it as it pops and publishes; on attach
 * it reads it back, repairs a batch that was half published, and returns the
 * heads that were in flight first from later pops, oldest first, before
 * reading the available ring.
 *
 * The region is untrusted (the front-end can write it): every field read
 * from it is checked; a bad region makes attach fail, never the queue
 * misbehave.
 *
 * Private to the library.
 */
#ifndef VDI_QUEUE_INFLIGHT_H
#define VDI_QUEUE_INFLIGHT_H

#include <stddef.h>
#include <stdint.h>

#include <virtio-dev/queue.h>

/* Version number written into and expected in every region. */
#define VDI_INFLIGHT_VERSION 1u

/*
 * Bytes one queue's region takes for a queue of @queue_size descriptors
 * (header + one 16-byte state per descriptor), rounded up to 64 bytes so that
 * regions of several queues can be laid out back to back: queue i's region
 * starts at i * vdi_inflight_region_size(queue_size) in the memfd (the same
 * offsets as libvhost-user's).
 */
size_t vdi_inflight_region_size(uint16_t queue_size);

/*
 * Format a fresh region: zero the header and the @queue_size states, write
 * the version and desc_num = @queue_size. @region is 8-byte aligned and
 * holds at least vdi_inflight_region_size(@queue_size) bytes.
 */
void vdi_inflight_region_init(void *region, uint16_t queue_size);

/*
 * Attach @region (@len bytes, 8-byte aligned shared memory that outlives the
 * queue) to @q, a split queue that has not popped anything since it was
 * created or last given a position with vdev_queue_set_state. From then on
 * pop marks the head in flight with a growing counter, fill links it into
 * the batch (last_batch_head) and flush publishes the batch, then clears its
 * flags and records used_idx, as the protocol orders it.
 *
 * A region with version 0 is formatted first (the protocol's uninitialized
 * buffer). A region may track more descriptors than the queue has (desc_num
 * >= size: the front-end sized it for the largest queue); only heads below
 * the queue size may be in flight.
 *
 * If the region holds requests from an earlier back-end (inflight flags
 * set): a batch whose used index reached the ring but not the region is
 * repaired (its flags cleared), and the in-flight heads are returned by the
 * next pops, oldest first (by counter), each chain validated like any pop,
 * before any new available entry; has_avail and set_notification(q, 1)
 * report them. In every case the ring position is taken from the used ring:
 * used_idx = used->idx and last_avail_idx = used->idx + the number in
 * flight, overriding vdev_queue_set_state. set_state is -EBUSY while
 * resubmissions remain.
 *
 * Returns the number of requests to resubmit (>= 0); -EINVAL when @q or
 * @region is NULL, @region is misaligned, @len is too small, the version,
 * features (not 0) or desc_num (below the queue size) do not fit, a flag is
 * not 0 or 1, a flagged head is out of range, the half-published batch is
 * longer than the queue or names a head out of range, or more heads are in
 * flight than the ring has available and unused (avail->idx - used->idx);
 * -EOPNOTSUPP for a packed queue; -EBUSY when @q popped something or
 * already has a region; -ENOMEM. On failure neither @q nor @region changed
 * (except that a version-0 region is formatted).
 */
int vdi_queue_set_inflight(vdev_queue *q, void *region, size_t len);

#endif
