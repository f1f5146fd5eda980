/* SPDX-License-Identifier: MIT */
/*
 * The io_uring block backend: one ring per device queue, the image registered
 * as fixed file 0, readv/writev straight into guest memory, completions
 * signalled on an eventfd registered with the ring.
 *
 * Every io in flight owns one slot of a per-queue pool sized to the queue
 * depth, so the pool, the submission ring and the completion ring (twice the
 * depth) can never overflow: a full pool is -EAGAIN at enqueue. The slot
 * carries the transfer cursor: a short read or write is resubmitted for the
 * remainder through a private iovec copy (the submitter's array is never
 * written), until done, or until a completion makes no progress (-EIO: a
 * read past the end of a file that shrank under us).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <linux/falloc.h>
#include <linux/fs.h>

#include "backend_internal.h"
#include "internal/iov.h"
#include "internal/util.h"
#include "vdi-config.h"

#if VDI_HAVE_LIBURING

#include <liburing.h>

#define UR_DEFAULT_DEPTH 128u
#define UR_MAX_DEPTH 4096u
/* Private iovecs per slot: the adjusted head of a partly done transfer plus
 * the next few untouched entries, or the zero-buffer segments of an emulated
 * write-zeroes. */
#define UR_PRIV_IOVS 8u
#define UR_ZERO_BUF 65536u
#define UR_IOV_MAX 1024u /* UIO_MAXIOV */

/* How a slot is being served. */
#define UR_ST_RW 0u        /* read or write from the io's iovecs */
#define UR_ST_FLUSH 1u
#define UR_ST_ZERO_PUNCH 3u /* discard, write-zeroes with unmap: PUNCH_HOLE */
#define UR_ST_ZERO_RANGE 4u /* write-zeroes: ZERO_RANGE */
#define UR_ST_ZERO_WRITE 5u /* write-zeroes emulated with writes of zeros */
#define UR_ST_NOP 6u       /* nothing to transfer: complete through the ring */

struct ur_backend {
	int fd;
	uint32_t flags;  /* VDEV_BLK_FILE_F_* */
	uint32_t depth;
	uint64_t size;
	void *zero;      /* UR_ZERO_BUF zero bytes, page aligned (O_DIRECT) */
};

struct ur_slot {
	struct vdev_blk_io *io;
	uint64_t done;    /* bytes transferred so far */
	uint64_t want;    /* bytes asked by the SQE in flight */
	struct vdi_iovc cur; /* where in the io's iovecs the remainder starts */
	uint32_t state;   /* UR_ST_* */
	uint32_t next;    /* free list / pending list link */
	uint32_t reserved;
	struct iovec priv[UR_PRIV_IOVS];
};

#define UR_NONE UINT32_MAX

struct ur_queue {
	struct io_uring ring;
	int ring_ok;
	int efd;
	int fixed;          /* the file is registered as index 0 */
	uint32_t depth;
	uint32_t free_head;
	uint32_t pending_head; /* slots that found no SQE while resubmitting */
	uint32_t pending_tail;
	uint32_t no_zero_range; /* the file system refused ZERO_RANGE once */
	uint32_t in_use;
	struct ur_backend *be;
	struct ur_slot *slots;
	/* White-box test hooks and counters (vdi_uring_test_*). */
	int64_t clamp_res;  /* > 0: pretend no completion moved more bytes */
	uint64_t enters;    /* io_uring_submit calls that entered the kernel */
	uint64_t sqes;      /* SQEs handed to the kernel */
	uint64_t resubmits; /* SQEs for the remainder of a short transfer */
};

/* White-box access for tests/blk/test-blk-uring.c (static library only). */
struct vdi_uring_test_stats {
	uint64_t enters, sqes, resubmits;
	uint32_t in_use, depth;
};
int vdi_uring_test_stats(void *qctx, struct vdi_uring_test_stats *st);
int vdi_uring_test_clamp(void *qctx, int64_t max_res);

static uint64_t ur_size(void *opaque)
{
	return ((struct ur_backend *)opaque)->size;
}

static struct ur_slot *ur_slot_get(struct ur_queue *q)
{
	struct ur_slot *s;

	if (q->free_head == UR_NONE)
		return NULL;
	s = &q->slots[q->free_head];
	q->free_head = s->next;
	q->in_use++;
	return s;
}

static void ur_slot_put(struct ur_queue *q, struct ur_slot *s)
{
	s->io = NULL;
	s->next = q->free_head;
	q->free_head = (uint32_t)(s - q->slots);
	q->in_use--;
}

/* Fill @sqe for the next step of slot @s. */
static void ur_prep(struct ur_queue *q, struct ur_slot *s, struct io_uring_sqe *sqe)
{
	struct vdev_blk_io *io = s->io;
	int fd = q->fixed ? 0 : q->be->fd;
	uint64_t pos = io->offset + s->done;
	uint64_t left = io->len - s->done;

	switch (s->state) {
	case UR_ST_RW: {
		const struct iovec *v;
		uint32_t n, i;

		if (s->cur.off == 0) {
			/* The remainder starts on an entry boundary: the io's own
			 * array serves as it is. */
			v = io->iov + s->cur.idx;
			n = VDI_MIN(io->iovcnt - s->cur.idx, UR_IOV_MAX);
			s->want = 0;
			for (i = 0; i < n; i++)
				s->want += v[i].iov_len;
		} else {
			n = VDI_MIN(io->iovcnt - s->cur.idx, UR_PRIV_IOVS);
			for (i = 0; i < n; i++)
				s->priv[i] = io->iov[s->cur.idx + i];
			s->priv[0].iov_base = (char *)s->priv[0].iov_base + s->cur.off;
			s->priv[0].iov_len -= s->cur.off;
			s->want = 0;
			for (i = 0; i < n; i++)
				s->want += s->priv[i].iov_len;
			v = s->priv;
		}
		/* One buffer (the common 4 KiB case): plain read/write spares the
		 * kernel importing an iovec array. */
		if (n == 1 && io->op == VDEV_BLK_IO_READ)
			io_uring_prep_read(sqe, fd, v[0].iov_base, (unsigned)v[0].iov_len, pos);
		else if (n == 1)
			io_uring_prep_write(sqe, fd, v[0].iov_base, (unsigned)v[0].iov_len, pos);
		else if (io->op == VDEV_BLK_IO_READ)
			io_uring_prep_readv(sqe, fd, v, n, pos);
		else
			io_uring_prep_writev(sqe, fd, v, n, pos);
		break;
	}
	case UR_ST_ZERO_WRITE: {
		uint32_t n = 0;
		uint64_t rest = left;

		s->want = 0;
		while (rest && n < UR_PRIV_IOVS) {
			uint64_t l = VDI_MIN(rest, (uint64_t)UR_ZERO_BUF);

			s->priv[n].iov_base = q->be->zero;
			s->priv[n].iov_len = l;
			s->want += l;
			rest -= l;
			n++;
		}
		io_uring_prep_writev(sqe, fd, s->priv, n, pos);
		break;
	}
	case UR_ST_FLUSH:
		io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
		break;
	case UR_ST_ZERO_PUNCH:
		io_uring_prep_fallocate(sqe, fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					(off_t)io->offset, (off_t)io->len);
		break;
	case UR_ST_ZERO_RANGE:
		io_uring_prep_fallocate(sqe, fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
					(off_t)io->offset, (off_t)io->len);
		break;
	default:
		io_uring_prep_nop(sqe);
		break;
	}
	if (q->fixed && s->state != UR_ST_NOP)
		sqe->flags |= IOSQE_FIXED_FILE;
	io_uring_sqe_set_data(sqe, s);
}

/* Queue the next step of @s: an SQE now, or the pending list when the SQ is
 * full (the slot then waits for the next submit or reap). */
static void ur_requeue(struct ur_queue *q, struct ur_slot *s)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&q->ring);

	if (sqe) {
		ur_prep(q, s, sqe);
		return;
	}
	s->next = UR_NONE;
	if (q->pending_head == UR_NONE)
		q->pending_head = (uint32_t)(s - q->slots);
	else
		q->slots[q->pending_tail].next = (uint32_t)(s - q->slots);
	q->pending_tail = (uint32_t)(s - q->slots);
}

static void ur_flush_pending(struct ur_queue *q)
{
	while (q->pending_head != UR_NONE) {
		struct ur_slot *s = &q->slots[q->pending_head];
		struct io_uring_sqe *sqe = io_uring_get_sqe(&q->ring);

		if (!sqe)
			return;
		q->pending_head = s->next;
		ur_prep(q, s, sqe);
	}
}

static int ur_enter(struct ur_queue *q)
{
	unsigned int ready = io_uring_sq_ready(&q->ring);
	int r;

	if (!ready)
		return 0;
	r = io_uring_submit(&q->ring);
	q->enters++;
	if (r > 0)
		q->sqes += (uint64_t)r;
	return r < 0 ? r : 0;
}

static int ur_queue_open(void *opaque, uint32_t queue, void **qctx)
{
	struct ur_backend *be = opaque;
	struct io_uring_params p;
	struct ur_queue *q;
	uint32_t i;
	int r;

	VDI_UNUSED(queue);
	if (!qctx)
		return -EINVAL;
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->efd = -1;
	q->be = be;
	q->depth = be->depth;
	q->pending_head = UR_NONE;
	q->slots = calloc(q->depth, sizeof(*q->slots));
	if (!q->slots) {
		r = -ENOMEM;
		goto fail;
	}
	for (i = 0; i < q->depth; i++)
		q->slots[i].next = i + 1 < q->depth ? i + 1 : UR_NONE;
	q->free_head = 0;

	/* SUBMIT_ALL: one bad SQE must not strand the rest of a batch.
	 * COOP_TASKRUN: completions are run when this thread next enters the
	 * kernel (it does, to wait on the eventfd) instead of by an IPI.
	 * Older kernels refuse unknown flags: retry with none. */
	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN;
	r = io_uring_queue_init_params(q->depth, &q->ring, &p);
	if (r == -EINVAL) {
		memset(&p, 0, sizeof(p));
		r = io_uring_queue_init_params(q->depth, &q->ring, &p);
	}
	if (r < 0) {
		vdi_log(VDEV_LOG_WARNING, "io_uring: queue init failed: %s", strerror(-r));
		goto fail;
	}
	q->ring_ok = 1;
	r = io_uring_register_files(&q->ring, &be->fd, 1);
	q->fixed = r == 0;
	q->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (q->efd < 0) {
		r = -errno;
		goto fail;
	}
	r = io_uring_register_eventfd(&q->ring, q->efd);
	if (r < 0)
		goto fail;
	*qctx = q;
	return 0;
fail:
	if (q->ring_ok)
		io_uring_queue_exit(&q->ring);
	if (q->efd >= 0)
		close(q->efd);
	free(q->slots);
	free(q);
	return r;
}

static void ur_queue_close(void *opaque, void *qctx)
{
	struct ur_queue *q = qctx;

	VDI_UNUSED(opaque);
	if (!q)
		return;
	io_uring_queue_exit(&q->ring);
	close(q->efd);
	free(q->slots);
	free(q);
}

static int ur_enqueue(void *opaque, void *qctx, struct vdev_blk_io *io)
{
	struct ur_backend *be = opaque;
	struct ur_queue *q = qctx;
	struct io_uring_sqe *sqe;
	struct ur_slot *s;
	uint32_t state;

	if (!q || !io)
		return -EINVAL;
	switch (io->op) {
	case VDEV_BLK_IO_READ:
	case VDEV_BLK_IO_WRITE: {
		uint64_t sum = 0;
		uint32_t i;

		if (io->iovcnt && !io->iov)
			return -EINVAL;
		for (i = 0; i < io->iovcnt; i++) {
			if (io->iov[i].iov_len && !io->iov[i].iov_base)
				return -EINVAL;
			sum += io->iov[i].iov_len;
			if (sum < io->iov[i].iov_len)
				return -EINVAL;
		}
		if (sum != io->len)
			return -EINVAL; /* never transfer past the submitter's buffers */
		state = io->len ? UR_ST_RW : UR_ST_NOP;
		break;
	}
	case VDEV_BLK_IO_FLUSH:
		state = UR_ST_FLUSH;
		break;
	case VDEV_BLK_IO_DISCARD:
		/* Discarded sectors read back as zeros (the other backends
		 * behave so, and guests may rely on it): punch a hole, or
		 * zero the range where holes are not supported. */
		state = io->len ? UR_ST_ZERO_PUNCH : UR_ST_NOP;
		break;
	case VDEV_BLK_IO_WRITE_ZEROES:
		if (!io->len)
			state = UR_ST_NOP;
		else if (io->flags & VDEV_BLK_IO_F_UNMAP)
			state = UR_ST_ZERO_PUNCH;
		else
			state = q->no_zero_range ? UR_ST_ZERO_WRITE : UR_ST_ZERO_RANGE;
		break;
	default:
		return -EOPNOTSUPP;
	}
	if ((be->flags & VDEV_BLK_FILE_F_READONLY) && io->op != VDEV_BLK_IO_READ &&
	    io->op != VDEV_BLK_IO_FLUSH)
		return -EROFS;
	if (io->op != VDEV_BLK_IO_FLUSH &&
	    (io->offset > be->size || io->len > be->size - io->offset))
		return -EINVAL;
	if (q->free_head == UR_NONE)
		return -EAGAIN;
	sqe = io_uring_get_sqe(&q->ring);
	if (!sqe)
		return -EAGAIN;
	s = ur_slot_get(q);
	s->io = io;
	s->done = 0;
	vdi_iovc_init(&s->cur, io->iov, io->iovcnt);
	s->want = 0;
	s->state = state;
	ur_prep(q, s, sqe);
	return 0;
}

static int ur_submit(void *opaque, void *qctx)
{
	struct ur_queue *q = qctx;

	VDI_UNUSED(opaque);
	if (!q)
		return -EINVAL;
	ur_flush_pending(q);
	return ur_enter(q);
}

/* Move the cursor of @s past @n transferred bytes. */
static void ur_advance(struct ur_slot *s, uint64_t n)
{
	struct vdi_iovc *c = &s->cur;

	s->done += n;
	if (s->state != UR_ST_RW)
		return;
	vdi_iovc_advance(c, n);
	/* Skip empty entries so that the next SQE starts on real bytes. */
	while (c->off == 0 && c->idx < c->cnt && c->iov[c->idx].iov_len == 0)
		c->idx++;
}

/* One completion for @s. Returns 1 when the io is finished (result set), 0
 * when it continues (another SQE is queued). */
static int ur_complete(struct ur_queue *q, struct ur_slot *s, int32_t res)
{
	struct vdev_blk_io *io = s->io;

	switch (s->state) {
	case UR_ST_RW:
	case UR_ST_ZERO_WRITE:
		if (res == -EINTR || res == -EAGAIN)
			break; /* transient: the same step again */
		if (res < 0) {
			io->result = res;
			return 1;
		}
		if (q->clamp_res > 0 && res > q->clamp_res)
			res = (int32_t)q->clamp_res;
		if (res == 0 || (uint64_t)res > s->want) {
			/* No progress inside the disk (the file ended early), or
			 * the kernel claims more than asked. */
			io->result = -EIO;
			return 1;
		}
		ur_advance(s, (uint64_t)res);
		if (s->done >= io->len) {
			io->result = 0;
			return 1;
		}
		q->resubmits++;
		break;
	case UR_ST_ZERO_PUNCH:
		if (res == -EOPNOTSUPP || res == -EINVAL) {
			/* Deallocation is optional: zero the range instead. */
			s->state = q->no_zero_range ? UR_ST_ZERO_WRITE : UR_ST_ZERO_RANGE;
			break;
		}
		io->result = res < 0 ? res : 0;
		return 1;
	case UR_ST_ZERO_RANGE:
		if (res == -EOPNOTSUPP || res == -EINVAL) {
			/* tmpfs and others: write zeros ourselves from now on. */
			q->no_zero_range = 1;
			s->state = UR_ST_ZERO_WRITE;
			break;
		}
		io->result = res < 0 ? res : 0;
		return 1;
	default:
		io->result = res < 0 ? res : 0;
		return 1;
	}
	ur_requeue(q, s);
	return 0;
}

static int ur_reap(void *opaque, void *qctx, struct vdev_blk_io **done, uint32_t max)
{
	struct ur_queue *q = qctx;
	struct io_uring_cqe *cqe;
	uint64_t cnt;
	uint32_t n = 0;
	unsigned int head, seen = 0;
	ssize_t rr;

	VDI_UNUSED(opaque);
	if (!q || (!done && max))
		return -EINVAL;
	/* Clear the eventfd before walking the ring: a completion posted after
	 * this read signals it again, so level-triggered polling never misses
	 * one. */
	rr = read(q->efd, &cnt, sizeof(cnt));
	VDI_UNUSED(rr);

	io_uring_for_each_cqe(&q->ring, head, cqe) {
		struct ur_slot *s = io_uring_cqe_get_data(cqe);

		if (n == max)
			break;
		seen++;
		if (!s || s < q->slots || s >= q->slots + q->depth || !s->io)
			continue; /* not ours; cannot happen */
		if (ur_complete(q, s, cqe->res)) {
			done[n++] = s->io;
			ur_slot_put(q, s);
		}
	}
	io_uring_cq_advance(&q->ring, seen);

	/* Start the remainders of short transfers right away. */
	ur_flush_pending(q);
	if (io_uring_sq_ready(&q->ring)) {
		int r = ur_enter(q);

		if (r < 0 && r != -EAGAIN && r != -EBUSY)
			vdi_log(VDEV_LOG_WARNING, "io_uring: resubmit failed: %s", strerror(-r));
	}
	/* Completions left behind (@max reached): keep the fd readable. */
	if (io_uring_cq_ready(&q->ring)) {
		cnt = 1;
		rr = write(q->efd, &cnt, sizeof(cnt));
		VDI_UNUSED(rr);
	}
	return (int)n;
}

static int ur_completion_fd(void *opaque, void *qctx)
{
	struct ur_queue *q = qctx;

	VDI_UNUSED(opaque);
	return q ? q->efd : -EINVAL;
}

static void ur_destroy(void *opaque)
{
	struct ur_backend *be = opaque;

	if (!be)
		return;
	if (be->fd >= 0)
		close(be->fd);
	free(be->zero);
	free(be);
}

int vdi_uring_test_stats(void *qctx, struct vdi_uring_test_stats *st)
{
	struct ur_queue *q = qctx;

	if (!q || !st)
		return -EINVAL;
	st->enters = q->enters;
	st->sqes = q->sqes;
	st->resubmits = q->resubmits;
	st->in_use = q->in_use;
	st->depth = q->depth;
	return 0;
}

int vdi_uring_test_clamp(void *qctx, int64_t max_res)
{
	struct ur_queue *q = qctx;

	if (!q)
		return -EINVAL;
	q->clamp_res = max_res;
	return 0;
}

static const struct vdev_blk_backend_ops ur_ops = {
	.struct_size = sizeof(struct vdev_blk_backend_ops),
	.size = ur_size,
	.queue_open = ur_queue_open,
	.queue_close = ur_queue_close,
	.enqueue = ur_enqueue,
	.submit = ur_submit,
	.reap = ur_reap,
	.completion_fd = ur_completion_fd,
	.destroy = ur_destroy,
};

/* Open our own file description: with a path, or by reopening the caller's
 * fd (a dup would share its O_DIRECT and offset state). */
static int ur_open(const struct vdev_blk_file_config *c)
{
	int oflags = O_CLOEXEC | ((c->flags & VDEV_BLK_FILE_F_READONLY) ? O_RDONLY : O_RDWR);
	int fd;

	if (c->flags & VDEV_BLK_FILE_F_DIRECT)
		oflags |= O_DIRECT;
	if (c->path) {
		fd = open(c->path, oflags);
		return fd < 0 ? -errno : fd;
	}
	if (c->fd < 0)
		return -EINVAL;
	{
		char p[64];
		int fl = fcntl(c->fd, F_GETFL);

		if (fl < 0)
			return -errno;
		if (!(c->flags & VDEV_BLK_FILE_F_READONLY) && (fl & O_ACCMODE) == O_RDONLY)
			return -EBADF;
		snprintf(p, sizeof(p), "/proc/self/fd/%d", (int)c->fd);
		fd = open(p, oflags);
		if (fd >= 0)
			return fd;
		if (c->flags & VDEV_BLK_FILE_F_DIRECT)
			return -errno; /* cannot get O_DIRECT without touching theirs */
		fd = fcntl(c->fd, F_DUPFD_CLOEXEC, 0);
		return fd < 0 ? -errno : fd;
	}
}

VDEV_EXPORT int vdev_blk_backend_new_uring(const struct vdev_blk_file_config *cfg,
					   vdev_blk_backend **out)
{
	struct vdev_blk_file_config c;
	struct ur_backend *be;
	uint32_t bflags;
	struct stat st;
	int r;

	if (!cfg || !out || vdi_copy_versioned(&c, sizeof(c), cfg) < 0)
		return -EINVAL;
	if ((c.flags & ~(VDEV_BLK_FILE_F_READONLY | VDEV_BLK_FILE_F_DIRECT)) ||
	    c.queue_depth > UR_MAX_DEPTH)
		return -EINVAL;
	if (c.struct_size < offsetof(struct vdev_blk_file_config, fd) + sizeof(int32_t))
		c.fd = -1;
	be = calloc(1, sizeof(*be));
	if (!be)
		return -ENOMEM;
	be->fd = -1;
	be->flags = c.flags;
	be->depth = c.queue_depth ? c.queue_depth : UR_DEFAULT_DEPTH;
	r = ur_open(&c);
	if (r < 0)
		goto fail;
	be->fd = r;
	if (fstat(be->fd, &st) < 0) {
		r = -errno;
		goto fail;
	}
	if (S_ISREG(st.st_mode)) {
		be->size = (uint64_t)st.st_size;
	} else if (S_ISBLK(st.st_mode)) {
		uint64_t sz;

		if (ioctl(be->fd, BLKGETSIZE64, &sz) < 0) {
			r = -errno;
			goto fail;
		}
		be->size = sz;
	} else {
		r = -EINVAL;
		goto fail;
	}
	be->size &= ~(uint64_t)511;
	bflags = 0;
	if (c.flags & VDEV_BLK_FILE_F_READONLY) {
		bflags |= VDEV_BLK_BACKEND_F_READONLY;
	} else {
		if (posix_memalign(&be->zero, 4096, UR_ZERO_BUF)) {
			r = -ENOMEM;
			goto fail;
		}
		memset(be->zero, 0, UR_ZERO_BUF);
		bflags |= VDEV_BLK_BACKEND_F_DISCARD | VDEV_BLK_BACKEND_F_WRITE_ZEROES;
	}
	r = vdi_blk_backend_create(&ur_ops, be, bflags, VDI_BACKEND_URING, out);
	if (r < 0)
		goto fail;
	return 0;
fail:
	ur_destroy(be);
	return r;
}

#else /* !VDI_HAVE_LIBURING */

VDEV_EXPORT int vdev_blk_backend_new_uring(const struct vdev_blk_file_config *cfg,
					   vdev_blk_backend **out)
{
	VDI_UNUSED(cfg);
	VDI_UNUSED(out);
	return -EOPNOTSUPP;
}

#endif
