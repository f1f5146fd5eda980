/* SPDX-License-Identifier: MIT */
/*
 * virtio-blk device model: config space, request validation and the
 * per-queue data path over an asynchronous block backend.
 *
 * Per queue (one thread each, nothing shared with other queues on the data
 * path): a pool of requests sized to the live queue, each with its own iovec
 * arrays (seg_max + 2 entries: header, data, status) and one backend io. A
 * request moves through at most a few backend stages, one io at a time:
 * read/write (then a flush in write-through mode), flush, or the segments of
 * a discard / write-zeroes one after the other. Requests the backend has no
 * room for wait on a FIFO and are retried after completions.
 *
 * Kick path: notifications off, pop everything, validate, enqueue, one
 * submit, reap what is done, answer, one used-ring flush (one interrupt),
 * notifications on and re-check. Completion path (async backends):
 * vdev_blk_process_completions() reaps, answers, resubmits the next stages and
 * the waiting requests, flushes once.
 *
 * Draining: reset, queue reset and sleep wait until the backend has returned
 * every io of the queue (polling its completion fd for up to 10 ms at a time,
 * or sleeping 50 us between reaps when it has none). This wait is not bounded:
 * an io the backend still holds may write into guest memory, so the device
 * cannot return before it comes back. Reset and queue reset drop the reaped
 * requests without touching the guest (the ring is being torn down); sleep
 * answers them, so the ring is consistent while asleep.
 *
 * Threading contract: the control callbacks (activate, reset, queue
 * reset/enable, sleep/wake) run while no thread is inside
 * vdev_device_queue_notify or vdev_blk_process_completions for this device:
 * the device object guarantees it (control calls wait for the queue's run
 * lock, and vdev_blk_process_completions takes it through
 * vdi_device_queue_enter), so the VMM need not quiesce its queue threads.
 *
 * Counting (struct vdev_blk_stats): every chain returned to the driver counts
 * in requests; one that failed validation counts in malformed, any other in
 * its type's counter (reads, writes, ...) whatever the backend answered, so
 * requests == reads + writes + flushes + discards + write_zeroes + get_ids +
 * malformed. Bytes count only successful transfers. ioerr / unsupp count the
 * status bytes written.
 */
#include <errno.h>
#include <poll.h>
#include <sys/epoll.h>
#include <unistd.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>

#include <virtio-dev/blk.h>

#include "backends/backend_internal.h"
#include "core/device_internal.h"
#include "internal/iov.h"
#include "internal/util.h"

#define BIT(n) (1ull << (n))

#define SECTOR_SHIFT 9
#define SECTOR_SIZE 512u
#define HDR_SIZE 16u    /* struct virtio_blk_outhdr */
#define DWZ_SIZE 16u    /* struct virtio_blk_discard_write_zeroes */
#define ID_BYTES 20u

/* Bounds on the configuration (memory per request grows with them). */
#define MAX_SEG_MAX 4096u
#define MAX_DWZ_SEG 1024u

#define REAP_BATCH 64u
/* Largest iovec array grown for a chain that exceeds seg_max (then refused). */
#define OVF_IOV_MAX (1u << 20)

/* Config space: everything up to and including unused1 (no secure erase,
 * no zoned fields). */
#define BLK_CONFIG_SIZE ((uint32_t)offsetof(struct virtio_blk_config, max_secure_erase_sectors))

#define BLK_KNOWN_FLAGS (VDEV_BLK_F_READONLY | VDEV_BLK_F_WRITETHROUGH)

enum { STAGE_MAIN, STAGE_FLUSH };

struct blk_seg {
	uint64_t offset; /* bytes */
	uint64_t len;    /* bytes */
	uint32_t flags;  /* VDEV_BLK_IO_F_* */
};

struct blk_req {
	struct vdev_queue_elem elem; /* as popped; elem.iov is never modified */
	struct vdev_blk_io io;
	struct blk_req *next; /* free list or wait list */
	uint8_t *status;      /* the last writable byte, or NULL */
	uint64_t status_gpa;
	uint32_t type;
	int valid;            /* passed validation */
	int stage;
	int write_through;    /* flush after a successful write */
	int ovf;              /* the per-queue overflow request, not pooled */
	uint32_t used_len;    /* data bytes written to the driver (status excluded) */
	uint64_t data_len;
	uint32_t ndata;
	uint32_t nseg, seg;   /* discard / write-zeroes segments, next one */
	struct iovec *data;   /* the data buffers, as the backend sees them */
	struct blk_seg *segs;
};

struct blk_counters {
	uint64_t requests, reads, writes, flushes, discards, write_zeroes, get_ids;
	uint64_t bytes_read, bytes_written, ioerr, unsupp, malformed;
};

struct blk_queue {
	_Alignas(64) struct vdev_blk *blk;
	uint32_t index;
	int open;      /* bctx valid */
	void *bctx;
	vdev_queue *vq; /* live queue, NULL when not running */
	int stopped;   /* ring broken: nothing more is popped or filled */
	int blocked;   /* request pool ran dry: kicks stay off until completions */
	uint32_t nreqs;
	struct blk_req *reqs;
	struct iovec *iov_mem, *data_mem;
	uint64_t *gpa_mem;
	struct blk_seg *seg_mem;
	struct blk_req *free_list;
	struct blk_req *wait_head, *wait_tail;
	uint32_t inflight;    /* ios the backend holds */
	uint32_t unsubmitted; /* enqueued since the last submit */
	uint32_t answered;    /* requests answered (for process_completions) */
	int epfd;      /* stable completion fd: an epoll set holding bfd while open */
	int bfd;       /* the backend context's completion fd in epfd, or -1 */
	struct blk_req ovf;   /* a chain with more iovecs than any pooled request */
	uint32_t ovf_cap;
	struct blk_counters c;
};

struct vdev_blk {
	struct vdev_blk_config cfg; /* normalized */
	vdev_blk_backend *be;
	vdev_device *dev;
	uint64_t capacity; /* sectors */
	uint64_t features;
	uint64_t acked;    /* at activation */
	int ro;
	uint32_t iov_cap;  /* per request: seg_max + 2 */
	uint32_t dwz_cap;  /* segments per request */
	uint32_t max_discard_sectors, max_wz_sectors;
	struct virtio_blk_config config; /* little endian; wce is patched in */
	uint8_t wce_default;
	uint8_t wce;       /* atomic */
	int active;        /* atomic */
	int asleep;
	struct blk_queue *queues;
};

/* ------------------------------------------------------------------------ */
/* Small helpers. */

static void stat_add(uint64_t *c, uint64_t v)
{
	/* One writer per queue: a relaxed load/store pair is enough for readers
	 * that only want an approximate sum. */
	__atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + v, __ATOMIC_RELAXED);
}

/* Copy @len bytes at byte @off of an iovec list into @buf. The caller has
 * checked that the list holds them. */
/* The @len bytes that follow @skip bytes of @iov[0..n), as iovecs in @dst
 * (room for n entries): the guest buffers themselves, no copy. */
static uint32_t iov_slice(const struct iovec *iov, uint32_t n, uint64_t skip, uint64_t len,
			  struct iovec *dst)
{
	struct vdi_iovc c;

	vdi_iovc_init(&c, iov, n);
	vdi_iovc_advance(&c, skip);
	return vdi_iovc_window(&c, len, dst, n);
}

/* ------------------------------------------------------------------------ */
/* Answering requests. */

static void req_free(struct blk_queue *bq, struct blk_req *req)
{
	if (req->ovf)
		return;
	req->next = bq->free_list;
	bq->free_list = req;
}

static void count(struct blk_queue *bq, struct blk_req *req, uint8_t status)
{
	struct blk_counters *c = &bq->c;

	stat_add(&c->requests, 1);
	if (req->status && status == VIRTIO_BLK_S_IOERR)
		stat_add(&c->ioerr, 1);
	else if (req->status && status == VIRTIO_BLK_S_UNSUPP)
		stat_add(&c->unsupp, 1);
	if (!req->valid) {
		stat_add(&c->malformed, 1);
		return;
	}
	switch (req->type) {
	case VIRTIO_BLK_T_IN:
		stat_add(&c->reads, 1);
		if (status == VIRTIO_BLK_S_OK)
			stat_add(&c->bytes_read, req->data_len);
		break;
	case VIRTIO_BLK_T_OUT:
		stat_add(&c->writes, 1);
		if (status == VIRTIO_BLK_S_OK)
			stat_add(&c->bytes_written, req->data_len);
		break;
	case VIRTIO_BLK_T_FLUSH:
		stat_add(&c->flushes, 1);
		break;
	case VIRTIO_BLK_T_DISCARD:
		stat_add(&c->discards, 1);
		break;
	case VIRTIO_BLK_T_WRITE_ZEROES:
		stat_add(&c->write_zeroes, 1);
		break;
	case VIRTIO_BLK_T_GET_ID:
		stat_add(&c->get_ids, 1);
		break;
	default:
		break;
	}
}

/* Write the status byte (when there is one), return the chain as used and
 * recycle the request. The interrupt decision waits for q_flush. */
static void q_finish(struct blk_queue *bq, struct blk_req *req, uint8_t status)
{
	uint32_t used = 0;

	count(bq, req, status);
	if (!bq->stopped) {
		if (req->status) {
			__atomic_store_n(req->status, status, __ATOMIC_RELAXED);
			/* fill marks the first @used bytes dirty; the status byte
			 * sits at the end of the writable part, maybe past them. */
			vdev_mem_mark_dirty(vdev_device_memory(bq->blk->dev), req->status_gpa, 1);
			used = req->used_len + 1;
		}
		if (vdev_queue_fill(bq->vq, &req->elem, used) < 0)
			bq->stopped = 1;
	}
	bq->answered++;
	req_free(bq, req);
}

static void q_flush(struct blk_queue *bq)
{
	int r;

	if (!bq->vq || bq->stopped)
		return;
	r = vdev_queue_flush(bq->vq);
	if (r > 0)
		vdev_device_interrupt_queue(bq->blk->dev, bq->index);
	else if (r < 0)
		bq->stopped = 1;
}

static void wait_push(struct blk_queue *bq, struct blk_req *req)
{
	req->next = NULL;
	if (bq->wait_tail)
		bq->wait_tail->next = req;
	else
		bq->wait_head = req;
	bq->wait_tail = req;
}

static struct blk_req *wait_pop(struct blk_queue *bq)
{
	struct blk_req *req = bq->wait_head;

	if (req) {
		bq->wait_head = req->next;
		if (!bq->wait_head)
			bq->wait_tail = NULL;
	}
	return req;
}

static void wait_push_front(struct blk_queue *bq, struct blk_req *req)
{
	req->next = bq->wait_head;
	bq->wait_head = req;
	if (!bq->wait_tail)
		bq->wait_tail = req;
}

/* ------------------------------------------------------------------------ */
/* Backend stages. */

static void io_set(struct blk_req *req, uint32_t op, uint64_t offset, uint64_t len,
		   const struct iovec *iov, uint32_t iovcnt, uint32_t flags)
{
	struct vdev_blk_io *io = &req->io;

	io->struct_size = sizeof(*io);
	io->op = op;
	io->offset = offset;
	io->len = len;
	io->iov = iov;
	io->iovcnt = iovcnt;
	io->flags = flags;
	io->result = 0;
	io->reserved = 0;
	io->priv = req;
}

/* Point req->io at the next non-empty discard / write-zeroes segment.
 * Returns 0 when none is left. */
static int dwz_next(struct blk_req *req)
{
	uint32_t op = req->type == VIRTIO_BLK_T_DISCARD ? VDEV_BLK_IO_DISCARD
							: VDEV_BLK_IO_WRITE_ZEROES;

	while (req->seg < req->nseg && req->segs[req->seg].len == 0)
		req->seg++;
	if (req->seg >= req->nseg)
		return 0;
	io_set(req, op, req->segs[req->seg].offset, req->segs[req->seg].len, NULL, 0,
	       req->segs[req->seg].flags);
	return 1;
}

/* The backend returned @req's io. In drop mode (reset) the request is
 * forgotten without touching the guest. */
static void q_io_done(struct blk_queue *bq, struct blk_req *req, int drop)
{
	if (drop) {
		req_free(bq, req);
		return;
	}
	/* Anything but 0 is a failure, a positive (short) count included. */
	if (req->io.result != 0) {
		q_finish(bq, req, VIRTIO_BLK_S_IOERR);
		return;
	}
	if (req->stage == STAGE_MAIN &&
	    (req->type == VIRTIO_BLK_T_DISCARD || req->type == VIRTIO_BLK_T_WRITE_ZEROES)) {
		req->seg++;
		if (dwz_next(req)) {
			wait_push(bq, req);
			return;
		}
	}
	if (req->stage == STAGE_MAIN && req->write_through) {
		/* Stable before it is answered: the write has completed, now
		 * the flush that makes it so. */
		req->stage = STAGE_FLUSH;
		io_set(req, VDEV_BLK_IO_FLUSH, 0, 0, NULL, 0, 0);
		wait_push(bq, req);
		return;
	}
	q_finish(bq, req, VIRTIO_BLK_S_OK);
}

static uint32_t q_reap(struct blk_queue *bq, int drop)
{
	const struct vdev_blk_backend *be = bq->blk->be;
	struct vdev_blk_io *done[REAP_BATCH];
	uint32_t total = 0;

	while (bq->inflight) {
		int n = be->ops.reap(be->opaque, bq->bctx, done, REAP_BATCH);

		if (n <= 0) {
			if (n < 0)
				vdi_log(VDEV_LOG_WARNING, "blk queue %u: backend reap failed (%d)",
					bq->index, n);
			break;
		}
		if ((uint32_t)n > REAP_BATCH)
			n = REAP_BATCH;
		for (int i = 0; i < n; i++) {
			struct blk_req *req = done[i] ? done[i]->priv : NULL;

			if (!req || !bq->inflight) {
				vdi_log(VDEV_LOG_ERR, "blk queue %u: backend returned a bogus io",
					bq->index);
				continue;
			}
			bq->inflight--;
			vdi_blk_backend_count(bq->blk->be, &req->io);
			q_io_done(bq, req, drop);
		}
		total += (uint32_t)n;
		if ((uint32_t)n < REAP_BATCH)
			break;
	}
	return total;
}

static void q_submit(struct blk_queue *bq)
{
	const struct vdev_blk_backend *be = bq->blk->be;
	int r;

	if (!bq->unsubmitted)
		return;
	bq->unsubmitted = 0;
	r = be->ops.submit(be->opaque, bq->bctx);
	if (r < 0)
		vdi_log(VDEV_LOG_WARNING, "blk queue %u: backend submit failed (%d)", bq->index,
			r);
}

/*
 * Hand the waiting requests to the backend, submit, reap and answer, until
 * nothing more can move now. A request the backend has no room for is
 * retried after completions; when the backend refuses it twice with nothing
 * of ours in flight (so no completion can ever make room), it is answered
 * IOERR rather than left hanging.
 */
static void q_pump(struct blk_queue *bq)
{
	const struct vdev_blk_backend *be = bq->blk->be;
	int retried = 0;

	for (;;) {
		struct blk_req *req;
		int again = 0;

		while ((req = wait_pop(bq)) != NULL) {
			int r = be->ops.enqueue(be->opaque, bq->bctx, &req->io);

			if (r == 0) {
				bq->inflight++;
				bq->unsubmitted++;
				retried = 0;
			} else if (r == -EAGAIN) {
				wait_push_front(bq, req);
				again = 1;
				break;
			} else {
				vdi_log(VDEV_LOG_DEBUG, "blk queue %u: backend refused an io (%d)",
					bq->index, r);
				q_finish(bq, req, VIRTIO_BLK_S_IOERR);
			}
		}
		q_submit(bq);
		if (q_reap(bq, 0) > 0)
			continue;
		if (!again || bq->inflight)
			break;
		if (!retried) {
			retried = 1;
			continue;
		}
		vdi_log(VDEV_LOG_WARNING, "blk queue %u: backend has no room and nothing in flight",
			bq->index);
		q_finish(bq, wait_pop(bq), VIRTIO_BLK_S_IOERR);
		retried = 0;
	}
}

/* ------------------------------------------------------------------------ */
/* Validation. */

static int write_through(const struct vdev_blk *blk)
{
	/* Without FLUSH negotiated (but offered) writes must be stable when
	 * answered (spec 5.2.6.2, case 1). */
	if (!(blk->acked & BIT(VIRTIO_BLK_F_FLUSH)))
		return 1;
	return __atomic_load_n(&blk->wce, __ATOMIC_RELAXED) == 0;
}

/* Data segments: no more than seg_max, none above size_max. */
static int segs_ok(const struct vdev_blk *blk, const struct blk_req *req)
{
	if (req->ndata > blk->cfg.seg_max)
		return 0;
	if (blk->cfg.size_max) {
		for (uint32_t i = 0; i < req->ndata; i++)
			if (req->data[i].iov_len > blk->cfg.size_max)
				return 0;
	}
	return 1;
}

static int range_ok(const struct vdev_blk *blk, uint64_t sector, uint64_t nsectors)
{
	return sector <= blk->capacity && nsectors <= blk->capacity - sector;
}

/* IN / OUT. Returns the status to answer with, or OK with req->io set (or
 * req->ndata 0 and data_len 0: nothing to do). */
static uint8_t prep_rw(struct blk_queue *bq, struct blk_req *req, uint64_t sector, int write)
{
	const struct vdev_blk *blk = bq->blk;
	const struct vdev_queue_elem *e = &req->elem;

	if (write && blk->ro)
		return VIRTIO_BLK_S_IOERR;
	if (write) {
		req->data_len = e->out_len - HDR_SIZE;
		req->ndata = iov_slice(e->iov, e->out_num, HDR_SIZE, req->data_len, req->data);
	} else {
		req->data_len = e->in_len - 1;
		req->ndata = iov_slice(e->iov + e->out_num, e->in_num, 0, req->data_len, req->data);
	}
	if (!segs_ok(blk, req) || (req->data_len & (SECTOR_SIZE - 1)) ||
	    !range_ok(blk, sector, req->data_len >> SECTOR_SHIFT))
		return VIRTIO_BLK_S_IOERR;
	req->valid = 1;
	if (!req->data_len)
		return VIRTIO_BLK_S_OK;
	io_set(req, write ? VDEV_BLK_IO_WRITE : VDEV_BLK_IO_READ, sector << SECTOR_SHIFT,
	       req->data_len, req->data, req->ndata, 0);
	if (write)
		req->write_through = write_through(blk);
	else
		/* Whatever the outcome, the backend may have written all of it. */
		req->used_len = (uint32_t)VDI_MIN(req->data_len, (uint64_t)UINT32_MAX - 1);
	return VIRTIO_BLK_S_OK;
}

/* DISCARD / WRITE_ZEROES. */
static uint8_t prep_dwz(struct blk_queue *bq, struct blk_req *req)
{
	const struct vdev_blk *blk = bq->blk;
	const struct vdev_queue_elem *e = &req->elem;
	int discard = req->type == VIRTIO_BLK_T_DISCARD;
	uint64_t feature = discard ? BIT(VIRTIO_BLK_F_DISCARD) : BIT(VIRTIO_BLK_F_WRITE_ZEROES);
	uint32_t max_seg = discard ? blk->cfg.max_discard_seg : blk->cfg.max_write_zeroes_seg;
	uint32_t max_sectors = discard ? blk->max_discard_sectors : blk->max_wz_sectors;
	uint64_t len = e->out_len - HDR_SIZE;
	struct vdi_iovc it;
	uint64_t n;

	if (!(blk->acked & feature))
		return VIRTIO_BLK_S_UNSUPP;
	if (blk->ro)
		return VIRTIO_BLK_S_IOERR;
	if (len == 0 || len % DWZ_SIZE)
		return VIRTIO_BLK_S_IOERR;
	n = len / DWZ_SIZE;
	if (n > max_seg)
		return VIRTIO_BLK_S_UNSUPP;
	req->nseg = (uint32_t)n;
	vdi_iovc_init(&it, e->iov, e->out_num);
	vdi_iovc_advance(&it, HDR_SIZE);
	for (uint32_t i = 0; i < req->nseg; i++) {
		struct virtio_blk_discard_write_zeroes s;

		vdi_iovc_to_flat(&it, (uint8_t *)&s, sizeof(s));
		req->segs[i].offset = vdi_le64(s.sector);
		req->segs[i].len = vdi_le32(s.num_sectors);
		req->segs[i].flags = vdi_le32(s.flags);
	}
	/* Unknown flags (and unmap on a discard) make the whole request
	 * UNSUPP, before any range is looked at. */
	for (uint32_t i = 0; i < req->nseg; i++) {
		uint32_t f = req->segs[i].flags;

		if ((f & ~(uint32_t)VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) ||
		    (discard && (f & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP)))
			return VIRTIO_BLK_S_UNSUPP;
	}
	for (uint32_t i = 0; i < req->nseg; i++) {
		struct blk_seg *s = &req->segs[i];

		if (s->len > max_sectors || !range_ok(blk, s->offset, s->len))
			return VIRTIO_BLK_S_IOERR;
		s->offset <<= SECTOR_SHIFT;
		s->len <<= SECTOR_SHIFT;
		s->flags = (!discard && (s->flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) &&
			    (vdev_blk_backend_flags(blk->be) & VDEV_BLK_BACKEND_F_DISCARD))
				   ? VDEV_BLK_IO_F_UNMAP
				   : 0;
	}
	req->valid = 1;
	req->seg = 0;
	if (!discard)
		req->write_through = write_through(blk);
	if (!dwz_next(req)) {
		req->nseg = 0; /* all empty: nothing to do */
		req->write_through = 0;
	}
	return VIRTIO_BLK_S_OK;
}

/* GET_ID: answered at once. */
static void serve_get_id(struct blk_queue *bq, struct blk_req *req)
{
	const struct vdev_queue_elem *e = &req->elem;
	uint64_t len = e->in_len - 1;
	struct vdi_iovc it;
	uint32_t n;

	req->ndata = iov_slice(e->iov + e->out_num, e->in_num, 0, len, req->data);
	n = (uint32_t)VDI_MIN(len, (uint64_t)ID_BYTES);
	vdi_iovc_init(&it, req->data, req->ndata);
	vdi_iovc_from_flat(&it, bq->blk->cfg.serial, n);
	req->used_len = n;
	req->valid = 1;
	q_finish(bq, req, VIRTIO_BLK_S_OK);
}

static void req_reset(struct blk_req *req)
{
	req->status = NULL;
	req->status_gpa = 0;
	req->type = 0;
	req->valid = 0;
	req->stage = STAGE_MAIN;
	req->write_through = 0;
	req->used_len = 0;
	req->data_len = 0;
	req->ndata = 0;
	req->nseg = 0;
	req->seg = 0;
	req->io.op = VDEV_BLK_IO_FLUSH;
	req->io.len = 0;
	req->io.iov = NULL;
	req->io.iovcnt = 0;
}

/* A freshly popped chain: validate it, then answer it or queue its io. */
static void q_start(struct blk_queue *bq, struct blk_req *req)
{
	const struct vdev_blk *blk = bq->blk;
	const struct vdev_queue_elem *e = &req->elem;
	struct virtio_blk_outhdr hdr;
	uint64_t sector;
	uint8_t st;
	int has_io = 0;

	if (e->in_num) {
		const struct iovec *last = &e->iov[e->out_num + e->in_num - 1];

		req->status = (uint8_t *)last->iov_base + last->iov_len - 1;
		req->status_gpa = e->gpa[e->out_num + e->in_num - 1] + last->iov_len - 1;
	}
	if (e->out_len < HDR_SIZE || !req->status) {
		vdi_log(VDEV_LOG_DEBUG, "blk queue %u: malformed request (%s)", bq->index,
			req->status ? "short header" : "no status byte");
		q_finish(bq, req, VIRTIO_BLK_S_IOERR);
		return;
	}
	/* One copy of the header, then only the copy is looked at. The usual
	 * layout has it whole in the first buffer: a fixed-size copy. */
	if (e->iov[0].iov_len >= sizeof(hdr))
		memcpy(&hdr, e->iov[0].iov_base, sizeof(hdr));
	else {
		struct vdi_iovc it;

		vdi_iovc_init(&it, e->iov, e->out_num);
		vdi_iovc_to_flat(&it, (uint8_t *)&hdr, sizeof(hdr));
	}
	req->type = vdi_le32(hdr.type);
	sector = vdi_le64(hdr.sector);

	switch (req->type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT:
		st = prep_rw(bq, req, sector, req->type == VIRTIO_BLK_T_OUT);
		has_io = req->data_len != 0;
		break;
	case VIRTIO_BLK_T_FLUSH:
		if (!(blk->acked & BIT(VIRTIO_BLK_F_FLUSH))) {
			st = VIRTIO_BLK_S_UNSUPP;
			break;
		}
		req->valid = 1;
		io_set(req, VDEV_BLK_IO_FLUSH, 0, 0, NULL, 0, 0);
		st = VIRTIO_BLK_S_OK;
		has_io = 1;
		break;
	case VIRTIO_BLK_T_GET_ID:
		serve_get_id(bq, req);
		return;
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		st = prep_dwz(bq, req);
		has_io = req->nseg != 0;
		break;
	default:
		st = VIRTIO_BLK_S_UNSUPP;
		break;
	}
	if (st != VIRTIO_BLK_S_OK || !has_io) {
		if (st != VIRTIO_BLK_S_OK)
			vdi_log(VDEV_LOG_DEBUG, "blk queue %u: request type %u refused (%u)",
				bq->index, req->type, st);
		q_finish(bq, req, st);
		return;
	}
	wait_push(bq, req);
}

/* pop said the chain needs more iovecs than a pooled request has: take it
 * with the overflow request and refuse it (more segments than seg_max). */
static int q_pop_overflow(struct blk_queue *bq, uint32_t needed)
{
	struct blk_req *req = &bq->ovf;
	int r;

	if (needed > OVF_IOV_MAX)
		goto fail;
	if (needed > bq->ovf_cap) {
		struct iovec *iov = realloc(req->elem.iov, needed * sizeof(*iov));
		uint64_t *gpa;

		if (!iov)
			goto fail;
		req->elem.iov = iov;
		gpa = realloc(req->elem.gpa, needed * sizeof(*gpa));
		if (!gpa)
			goto fail;
		req->elem.gpa = gpa;
		bq->ovf_cap = needed;
	}
	req_reset(req);
	req->elem.struct_size = sizeof(req->elem);
	req->elem.iov_cap = bq->ovf_cap;
	r = vdev_queue_pop(bq->vq, &req->elem);
	if (r == -ENOBUFS) /* the guest grew the chain between the two pops */
		goto fail;
	if (r != 1) {
		if (r < 0)
			bq->stopped = 1; /* broken ring: the queue already set NEEDS_RESET */
		return -1;
	}
	if (req->elem.in_num) {
		uint32_t last = req->elem.out_num + req->elem.in_num - 1;

		req->status = (uint8_t *)req->elem.iov[last].iov_base + req->elem.iov[last].iov_len - 1;
		req->status_gpa = req->elem.gpa[last] + req->elem.iov[last].iov_len - 1;
	}
	vdi_log(VDEV_LOG_DEBUG, "blk queue %u: request with %u buffers refused", bq->index,
		needed);
	q_finish(bq, req, VIRTIO_BLK_S_IOERR);
	return 0;

fail:
	/* The chain can be neither served nor skipped. */
	vdi_log(VDEV_LOG_WARNING, "blk queue %u: cannot take a chain of %u buffers", bq->index,
		needed);
	bq->stopped = 1;
	vdev_device_set_needs_reset(bq->blk->dev);
	return -1;
}

static void q_pop_all(struct blk_queue *bq)
{
	while (!bq->stopped) {
		struct blk_req *req = bq->free_list;
		int r;

		if (!req) {
			bq->blocked = 1;
			return;
		}
		req_reset(req);
		req->elem.iov_cap = bq->blk->iov_cap;
		r = vdev_queue_pop(bq->vq, &req->elem);
		if (r == 0)
			return;
		if (r == -ENOBUFS) {
			if (q_pop_overflow(bq, req->elem.out_num + req->elem.in_num) < 0)
				return;
			continue;
		}
		if (r < 0) {
			bq->stopped = 1;
			return;
		}
		bq->free_list = req->next;
		q_start(bq, req);
	}
}

static void q_run(struct blk_queue *bq)
{
	int r;

	if (!bq->vq || bq->stopped)
		return;
	bq->blocked = 0;
	for (;;) {
		vdev_queue_set_notification(bq->vq, 0);
		q_pop_all(bq);
		q_pump(bq);
		q_flush(bq);
		if (bq->stopped)
			return;
		if (bq->blocked) {
			/* Out of requests: carry on once some came back, else
			 * leave kicks off; process_completions resumes. */
			if (!bq->free_list)
				return;
			bq->blocked = 0;
			continue;
		}
		r = vdev_queue_set_notification(bq->vq, 1);
		if (r <= 0) {
			if (r < 0)
				bq->stopped = 1;
			return;
		}
	}
}

/* ------------------------------------------------------------------------ */
/* Queue lifecycle. */

static void q_wait(struct blk_queue *bq)
{
	const struct vdev_blk_backend *be = bq->blk->be;
	int fd = be->ops.completion_fd(be->opaque, bq->bctx);

	if (fd >= 0) {
		struct pollfd p = {.fd = fd, .events = POLLIN};

		poll(&p, 1, 10);
	} else {
		struct timespec ts = {.tv_sec = 0, .tv_nsec = 50000};

		nanosleep(&ts, NULL);
	}
}

/* Wait for every io of the queue. @drop: forget the requests (reset); else
 * answer them, waiting ones included (sleep). */
static void q_drain(struct blk_queue *bq, int drop)
{
	struct blk_req *req;
	unsigned waits = 0;

	if (drop) {
		while ((req = wait_pop(bq)) != NULL)
			req_free(bq, req);
		q_submit(bq);
	}
	while (bq->inflight || (!drop && bq->wait_head)) {
		if (drop) {
			q_reap(bq, 1);
		} else {
			q_pump(bq);
			q_flush(bq);
		}
		if (!bq->inflight)
			continue;
		q_wait(bq);
		if (++waits % 1000 == 0)
			vdi_log(VDEV_LOG_WARNING, "blk queue %u: still waiting for %u ios",
				bq->index, bq->inflight);
	}
}

static void pool_free(struct blk_queue *bq)
{
	free(bq->reqs);
	free(bq->iov_mem);
	free(bq->gpa_mem);
	free(bq->data_mem);
	free(bq->seg_mem);
	bq->reqs = NULL;
	bq->iov_mem = bq->data_mem = NULL;
	bq->gpa_mem = NULL;
	bq->seg_mem = NULL;
	bq->free_list = NULL;
	bq->wait_head = bq->wait_tail = NULL;
	bq->nreqs = 0;
}

/*
 * The VMM registers vdev_blk_completion_fd once, for the device's lifetime,
 * while backend contexts (and their fds) come and go with activation: so the
 * stable fd is an epoll set that holds the context's fd while it is open.
 */
static int watch_backend_fd(struct blk_queue *bq)
{
	const struct vdev_blk_backend *be = bq->blk->be;
	struct epoll_event ev = {.events = EPOLLIN};
	int fd = be->ops.completion_fd(be->opaque, bq->bctx);

	bq->bfd = -1;
	if (fd < 0)
		return 0; /* synchronous backend: nothing to wait for */
	if (epoll_ctl(bq->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int r = -errno;

		vdi_log(VDEV_LOG_WARNING, "blk queue %u: cannot watch the backend fd (%d)",
			bq->index, r);
		return r;
	}
	bq->bfd = fd;
	return 0;
}

static int q_attach(struct blk_queue *bq, vdev_queue *vq)
{
	struct vdev_blk *blk = bq->blk;
	const struct vdev_blk_backend *be = blk->be;
	uint32_t n = vdev_queue_size(vq);
	size_t cap = blk->iov_cap;
	int r;

	if (!bq->open) {
		r = be->ops.queue_open(be->opaque, bq->index, &bq->bctx);
		if (r < 0) {
			vdi_log(VDEV_LOG_WARNING, "blk queue %u: backend queue_open failed (%d)",
				bq->index, r);
			return r;
		}
		bq->open = 1;
		r = watch_backend_fd(bq);
		if (r < 0)
			return r;
	}
	bq->reqs = calloc(n, sizeof(*bq->reqs));
	bq->iov_mem = calloc(n * cap, sizeof(*bq->iov_mem));
	bq->gpa_mem = calloc(n * cap, sizeof(*bq->gpa_mem));
	bq->data_mem = calloc(n * cap, sizeof(*bq->data_mem));
	bq->seg_mem = calloc((size_t)n * blk->dwz_cap, sizeof(*bq->seg_mem));
	if (!bq->reqs || !bq->iov_mem || !bq->gpa_mem || !bq->data_mem || !bq->seg_mem) {
		pool_free(bq);
		return -ENOMEM;
	}
	bq->nreqs = n;
	for (uint32_t i = n; i-- > 0;) {
		struct blk_req *req = &bq->reqs[i];

		req->elem.struct_size = sizeof(req->elem);
		req->elem.iov = bq->iov_mem + i * cap;
		req->elem.gpa = bq->gpa_mem + i * cap;
		req->elem.iov_cap = (uint32_t)cap;
		req->data = bq->data_mem + i * cap;
		req->segs = bq->seg_mem + (size_t)i * blk->dwz_cap;
		req->next = bq->free_list;
		bq->free_list = req;
	}
	bq->inflight = 0;
	bq->unsubmitted = 0;
	bq->stopped = 0;
	bq->blocked = 0;
	bq->vq = vq;
	return 0;
}

/* Stop the queue: drain dropping, free the pool. The backend context stays
 * open unless @close. */
static void q_detach(struct blk_queue *bq, int close)
{
	const struct vdev_blk_backend *be = bq->blk->be;

	if (bq->open)
		q_drain(bq, 1);
	pool_free(bq);
	bq->vq = NULL;
	bq->stopped = 0;
	bq->blocked = 0;
	if (close && bq->open) {
		if (bq->bfd >= 0)
			epoll_ctl(bq->epfd, EPOLL_CTL_DEL, bq->bfd, NULL);
		bq->bfd = -1;
		be->ops.queue_close(be->opaque, bq->bctx);
		bq->open = 0;
		bq->bctx = NULL;
	}
}

/* ------------------------------------------------------------------------ */
/* Device ops. */

static int blk_config_read(vdev_device *dev, void *opaque, uint32_t offset, void *buf,
			   uint32_t len)
{
	struct vdev_blk *blk = opaque;
	struct virtio_blk_config c = blk->config;

	VDI_UNUSED(dev);
	c.wce = __atomic_load_n(&blk->wce, __ATOMIC_RELAXED);
	memcpy(buf, (const uint8_t *)&c + offset, len);
	return 0;
}

static int blk_config_write(vdev_device *dev, void *opaque, uint32_t offset, const void *buf,
			    uint32_t len)
{
	struct vdev_blk *blk = opaque;
	uint8_t v;

	/* Only writeback is writable, and only with CONFIG_WCE negotiated. */
	if (offset != offsetof(struct virtio_blk_config, wce) || len != 1 ||
	    !(vdev_device_status(dev) & VDEV_STATUS_FEATURES_OK) ||
	    !(vdev_device_acked_features(dev) & BIT(VIRTIO_BLK_F_CONFIG_WCE)))
		return -EPERM;
	memcpy(&v, buf, 1);
	if (v > 1)
		return -EINVAL;
	__atomic_store_n(&blk->wce, v, __ATOMIC_RELAXED);
	return 0;
}

static int blk_features_check(vdev_device *dev, void *opaque, uint64_t acked)
{
	struct vdev_blk *blk = opaque;

	VDI_UNUSED(dev);
	/* CONFIG_WCE without FLUSH: the device must start write-through. */
	if ((acked & BIT(VIRTIO_BLK_F_CONFIG_WCE)) && !(acked & BIT(VIRTIO_BLK_F_FLUSH)))
		__atomic_store_n(&blk->wce, 0, __ATOMIC_RELAXED);
	return 0;
}

static void blk_reset(vdev_device *dev, void *opaque)
{
	struct vdev_blk *blk = opaque;

	VDI_UNUSED(dev);
	for (uint32_t i = 0; i < blk->cfg.num_queues; i++)
		q_detach(&blk->queues[i], 1);
	__atomic_store_n(&blk->active, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&blk->wce, blk->wce_default, __ATOMIC_RELAXED);
	blk->asleep = 0;
	blk->acked = 0;
}

static int blk_activate(vdev_device *dev, void *opaque)
{
	struct vdev_blk *blk = opaque;

	blk->acked = vdev_device_acked_features(dev);
	blk->asleep = 0;
	for (uint32_t i = 0; i < blk->cfg.num_queues; i++) {
		vdev_queue *vq = vdev_device_get_queue(dev, i);
		int r;

		if (!vq)
			continue;
		r = q_attach(&blk->queues[i], vq);
		if (r < 0) {
			for (uint32_t j = 0; j <= i; j++)
				q_detach(&blk->queues[j], 1);
			return r;
		}
	}
	__atomic_store_n(&blk->active, 1, __ATOMIC_RELEASE);
	return 0;
}

static void blk_queue_notify(vdev_device *dev, void *opaque, uint32_t queue)
{
	struct vdev_blk *blk = opaque;

	VDI_UNUSED(dev);
	if (queue >= blk->cfg.num_queues || blk->asleep)
		return;
	q_run(&blk->queues[queue]);
}

static void blk_queue_reset(vdev_device *dev, void *opaque, uint32_t queue)
{
	struct vdev_blk *blk = opaque;

	VDI_UNUSED(dev);
	if (queue < blk->cfg.num_queues)
		q_detach(&blk->queues[queue], 0);
}

static int blk_queue_enable(vdev_device *dev, void *opaque, uint32_t queue)
{
	struct vdev_blk *blk = opaque;
	vdev_queue *vq;

	if (queue >= blk->cfg.num_queues)
		return -EINVAL;
	vq = vdev_device_get_queue(dev, queue);
	if (!vq)
		return -EINVAL;
	if (blk->queues[queue].vq)
		q_detach(&blk->queues[queue], 0);
	return q_attach(&blk->queues[queue], vq);
}

static int blk_sleep(vdev_device *dev, void *opaque)
{
	struct vdev_blk *blk = opaque;

	VDI_UNUSED(dev);
	for (uint32_t i = 0; i < blk->cfg.num_queues; i++) {
		struct blk_queue *bq = &blk->queues[i];

		if (bq->vq)
			q_drain(bq, 0);
	}
	blk->asleep = 1;
	return 0;
}

static int blk_wake(vdev_device *dev, void *opaque)
{
	struct vdev_blk *blk = opaque;

	VDI_UNUSED(dev);
	blk->asleep = 0;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Public API. */

static void build_config(struct vdev_blk *blk)
{
	struct virtio_blk_config *c = &blk->config;
	const struct vdev_blk_config *cfg = &blk->cfg;

	memset(c, 0, sizeof(*c));
	c->capacity = vdi_le64(blk->capacity);
	c->size_max = vdi_le32(cfg->size_max);
	c->seg_max = vdi_le32(cfg->seg_max);
	c->blk_size = vdi_le32(cfg->blk_size);
	c->physical_block_exp = cfg->physical_block_exp;
	c->alignment_offset = cfg->alignment_offset;
	c->min_io_size = vdi_le16(cfg->min_io_size);
	c->opt_io_size = vdi_le32(cfg->opt_io_size);
	c->num_queues = vdi_le16((uint16_t)cfg->num_queues);
	c->max_discard_sectors = vdi_le32(blk->max_discard_sectors);
	c->max_discard_seg = vdi_le32(cfg->max_discard_seg);
	c->discard_sector_alignment = vdi_le32(cfg->discard_sector_alignment);
	c->max_write_zeroes_sectors = vdi_le32(blk->max_wz_sectors);
	c->max_write_zeroes_seg = vdi_le32(cfg->max_write_zeroes_seg);
	c->write_zeroes_may_unmap =
		(vdev_blk_backend_flags(blk->be) & VDEV_BLK_BACKEND_F_DISCARD) ? 1 : 0;
}

static int normalize(struct vdev_blk_config *c)
{
	if (c->flags & ~BLK_KNOWN_FLAGS)
		return -EINVAL;
	if (c->num_queues == 0)
		c->num_queues = 1;
	if (c->num_queues > VDEV_BLK_MAX_QUEUES)
		return -EINVAL;
	if (c->queue_size == 0)
		c->queue_size = 256;
	if (!vdi_is_pow2(c->queue_size) || c->queue_size > VDEV_QUEUE_MAX_SIZE)
		return -EINVAL;
	if (c->blk_size == 0)
		c->blk_size = SECTOR_SIZE;
	if (!vdi_is_pow2(c->blk_size) || c->blk_size < SECTOR_SIZE)
		return -EINVAL;
	if (c->seg_max == 0)
		c->seg_max = c->queue_size > 2 ? c->queue_size - 2 : 1;
	if (c->seg_max > MAX_SEG_MAX)
		return -EINVAL;
	if (c->max_discard_seg == 0)
		c->max_discard_seg = 1;
	if (c->max_write_zeroes_seg == 0)
		c->max_write_zeroes_seg = 1;
	if (c->max_discard_seg > MAX_DWZ_SEG || c->max_write_zeroes_seg > MAX_DWZ_SEG)
		return -EINVAL;
	if (c->discard_sector_alignment == 0)
		c->discard_sector_alignment = c->blk_size / SECTOR_SIZE;
	return 0;
}

VDEV_EXPORT int vdev_blk_new(const struct vdev_blk_config *cfg, vdev_blk_backend *backend,
			     vdev_blk **out)
{
	struct vdev_device_config dc = VDEV_DEVICE_CONFIG_INIT;
	struct vdev_device_ops ops = VDEV_DEVICE_OPS_INIT;
	struct vdev_blk_config c;
	struct vdev_blk *blk;
	uint32_t bflags;
	uint64_t f, cap32;
	size_t qbytes;
	int r;

	if (!cfg || !backend || !out || vdi_copy_versioned(&c, sizeof(c), cfg) < 0)
		return -EINVAL;
	c.struct_size = sizeof(c);
	r = normalize(&c);
	if (r < 0)
		return r;

	blk = calloc(1, sizeof(*blk));
	if (!blk)
		return -ENOMEM;
	qbytes = sizeof(*blk->queues) * c.num_queues;
	blk->queues = aligned_alloc(64, qbytes);
	if (!blk->queues) {
		free(blk);
		return -ENOMEM;
	}
	memset(blk->queues, 0, qbytes);
	for (uint32_t i = 0; i < c.num_queues; i++) {
		blk->queues[i].blk = blk;
		blk->queues[i].index = i;
		blk->queues[i].ovf.ovf = 1;
		blk->queues[i].bfd = -1;
		blk->queues[i].epfd = epoll_create1(EPOLL_CLOEXEC);
		if (blk->queues[i].epfd < 0) {
			int err = -errno;

			while (i-- > 0)
				close(blk->queues[i].epfd);
			free(blk->queues);
			free(blk);
			return err;
		}
	}
	blk->cfg = c;
	blk->be = backend;
	blk->capacity = vdev_blk_backend_size(backend) >> SECTOR_SHIFT;
	bflags = vdev_blk_backend_flags(backend);
	blk->ro = (c.flags & VDEV_BLK_F_READONLY) || (bflags & VDEV_BLK_BACKEND_F_READONLY);
	blk->iov_cap = c.seg_max + 2;
	blk->dwz_cap = VDI_MAX(c.max_discard_seg, c.max_write_zeroes_seg);
	cap32 = VDI_MIN(blk->capacity, (uint64_t)UINT32_MAX);
	blk->max_discard_sectors = c.max_discard_sectors ? c.max_discard_sectors : (uint32_t)cap32;
	blk->max_wz_sectors = c.max_write_zeroes_sectors ? c.max_write_zeroes_sectors
							 : (uint32_t)cap32;
	blk->wce_default = (c.flags & VDEV_BLK_F_WRITETHROUGH) ? 0 : 1;
	blk->wce = blk->wce_default;
	build_config(blk);

	f = BIT(VIRTIO_F_VERSION_1) | BIT(VIRTIO_F_RING_PACKED) | BIT(VIRTIO_RING_F_INDIRECT_DESC) |
	    BIT(VIRTIO_RING_F_EVENT_IDX) | BIT(VIRTIO_F_RING_RESET) | BIT(VIRTIO_BLK_F_FLUSH) |
	    BIT(VIRTIO_BLK_F_BLK_SIZE) | BIT(VIRTIO_BLK_F_SEG_MAX) | BIT(VIRTIO_BLK_F_TOPOLOGY) |
	    BIT(VIRTIO_BLK_F_CONFIG_WCE);
	if (c.num_queues > 1)
		f |= BIT(VIRTIO_BLK_F_MQ);
	if (c.size_max)
		f |= BIT(VIRTIO_BLK_F_SIZE_MAX);
	if (blk->ro)
		f |= BIT(VIRTIO_BLK_F_RO);
	else {
		if (bflags & VDEV_BLK_BACKEND_F_DISCARD)
			f |= BIT(VIRTIO_BLK_F_DISCARD);
		if (bflags & VDEV_BLK_BACKEND_F_WRITE_ZEROES)
			f |= BIT(VIRTIO_BLK_F_WRITE_ZEROES);
	}
	f &= ~c.disable_features;
	/* Offering CONFIG_WCE requires offering FLUSH. */
	if (!(f & BIT(VIRTIO_BLK_F_FLUSH)))
		f &= ~BIT(VIRTIO_BLK_F_CONFIG_WCE);
	blk->features = f;

	dc.device_type = VIRTIO_ID_BLOCK;
	dc.features = f;
	dc.num_queues = c.num_queues;
	dc.queue_max_size = c.queue_size;
	dc.config_size = BLK_CONFIG_SIZE;
	ops.config_read = blk_config_read;
	ops.config_write = blk_config_write;
	ops.features_check = blk_features_check;
	ops.activate = blk_activate;
	ops.reset = blk_reset;
	ops.queue_notify = blk_queue_notify;
	if (f & BIT(VIRTIO_F_RING_RESET)) {
		ops.queue_reset = blk_queue_reset;
		ops.queue_enable = blk_queue_enable;
	}
	ops.sleep = blk_sleep;
	ops.wake = blk_wake;
	r = vdev_device_new(&dc, &ops, blk, &blk->dev);
	if (r < 0) {
		for (uint32_t i = 0; i < c.num_queues; i++)
			close(blk->queues[i].epfd);
		free(blk->queues);
		free(blk);
		return r;
	}
	*out = blk;
	return 0;
}

VDEV_EXPORT void vdev_blk_free(vdev_blk *blk)
{
	if (!blk)
		return;
	vdev_device_free(blk->dev);
	for (uint32_t i = 0; i < blk->cfg.num_queues; i++) {
		/* Normally done by the reset; covers a device that was never
		 * activated but had contexts opened. */
		q_detach(&blk->queues[i], 1);
		close(blk->queues[i].epfd);
		free(blk->queues[i].ovf.elem.iov);
		free(blk->queues[i].ovf.elem.gpa);
	}
	free(blk->queues);
	free(blk);
}

VDEV_EXPORT vdev_device *vdev_blk_device(const vdev_blk *blk)
{
	return blk ? blk->dev : NULL;
}

static struct blk_queue *active_queue(vdev_blk *blk, uint32_t queue, int *err)
{
	struct blk_queue *bq;

	if (!blk || queue >= blk->cfg.num_queues) {
		*err = -EINVAL;
		return NULL;
	}
	bq = &blk->queues[queue];
	if (!__atomic_load_n(&blk->active, __ATOMIC_ACQUIRE) || !bq->open) {
		*err = -EAGAIN;
		return NULL;
	}
	return bq;
}

VDEV_EXPORT int vdev_blk_completion_fd(vdev_blk *blk, uint32_t queue)
{
	if (!blk || queue >= blk->cfg.num_queues)
		return -EINVAL;
	return blk->queues[queue].epfd;
}

VDEV_EXPORT int vdev_blk_process_completions(vdev_blk *blk, uint32_t queue)
{
	struct blk_queue *bq;
	int err = 0;

	bq = active_queue(blk, queue, &err);
	if (!bq)
		return err;
	/* Exclusive with kicks from other threads and with control calls
	 * (reset, queue reset, sleep) that a vCPU may make meanwhile. */
	if (vdi_device_queue_enter(blk->dev, queue) < 0)
		return -EAGAIN;
	if (blk->asleep || !bq->vq) {
		vdi_device_queue_leave(blk->dev, queue);
		return 0;
	}
	bq->answered = 0;
	q_pump(bq);
	q_flush(bq);
	if (bq->blocked && bq->free_list)
		q_run(bq);
	err = (int)VDI_MIN(bq->answered, (uint32_t)INT32_MAX);
	vdi_device_queue_leave(blk->dev, queue);
	return err;
}

VDEV_EXPORT int vdev_blk_get_stats(vdev_blk *blk, struct vdev_blk_stats *st)
{
	struct vdev_blk_stats s = VDEV_BLK_STATS_INIT;

	if (!blk || !st)
		return -EINVAL;
	for (uint32_t i = 0; i < blk->cfg.num_queues; i++) {
		const struct blk_counters *c = &blk->queues[i].c;

#define SUM(f) s.f += __atomic_load_n(&c->f, __ATOMIC_RELAXED)
		SUM(requests);
		SUM(reads);
		SUM(writes);
		SUM(flushes);
		SUM(discards);
		SUM(write_zeroes);
		SUM(get_ids);
		SUM(bytes_read);
		SUM(bytes_written);
		SUM(ioerr);
		SUM(unsupp);
		SUM(malformed);
#undef SUM
	}
	return vdi_copy_out_versioned(st, &s, sizeof(s));
}
