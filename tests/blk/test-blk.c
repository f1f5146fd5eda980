/* SPDX-License-Identifier: MIT */
/*
 * The virtio-blk device driven as a guest would: the driver side (vdev_drv)
 * reaches the device through virtio-mmio registers (vdev_mmio_read/write on
 * a vdev_mmio in front of vdev_blk_device()), over fake guest memory (a
 * malloc'd buffer at GPA_BASE). Results are checked against a shadow copy of
 * the disk and against the backing bytes (memory backend data, the file).
 *
 * Backends: the built-in ones, plus the test's own (struct fake): a RAM disk
 * that can fail every Nth io (-EIO / -ENOSPC / a short positive count), say
 * -EAGAIN from enqueue, count flushes, and hold ios until released (async,
 * with an eventfd) for the reset / queue reset / sleep tests.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include <virtio-dev/virtio-dev.h>
#include <virtio-dev/blk.h>
#include <virtio-dev/mmio.h>

#define BIT(n) (1ull << (n))
#define GPA_BASE 0x100000ull
#define MEM_SIZE (16u << 20)
#define ARENA_SIZE (2u << 20)
#define DISK_SIZE (1u << 20)
#define NSECT (DISK_SIZE / 512u)
#define MAXQ 4u
/* Per-queue scratch in guest memory: headers/status at +0, data at +64K. */
#define QAREA(q) (GPA_BASE + ARENA_SIZE + (uint64_t)(q) * (3u << 20))
#define HDR_GPA(q) (QAREA(q))
#define STATUS_GPA(q) (QAREA(q) + 0x800)
#define SEGTAB_GPA(q) (QAREA(q) + 0x1000)
#define DATA_GPA(q) (QAREA(q) + 0x10000)
#define MAXSEG 64u

static const char SERIAL[20] = "vdev-blk-test-serial";

/* ------------------------------------------------------------------------ */
/* The test's own backend. */

struct fake {
	uint8_t *data;
	uint64_t size;
	pthread_mutex_t lock;
	uint32_t fail_every;  /* every Nth read/write io fails (0: never) */
	int fail_err;         /* the result then: -EIO, -ENOSPC or 1 (short) */
	uint32_t eagain_every; /* every Nth enqueue call says -EAGAIN */
	uint32_t capacity;    /* > 0: -EAGAIN while this many are held */
	int hold;             /* ios wait for fake_release */
	int efd;
	uint32_t rw_count, enqueue_calls, failed, flushes, writes_done, eagains;
	uint32_t outstanding; /* enqueued, not reaped */
	int opened, closed;
	struct vdev_blk_io *pending[1024];
	uint32_t npending;
	struct vdev_blk_io *done[1024];
	uint32_t ndone;
};

static uint64_t fake_size(void *o)
{
	return ((struct fake *)o)->size;
}

static int fake_open(void *o, uint32_t q, void **qctx)
{
	struct fake *f = o;

	(void)q;
	pthread_mutex_lock(&f->lock);
	f->opened++;
	pthread_mutex_unlock(&f->lock);
	*qctx = f;
	return 0;
}

static void fake_close(void *o, void *qctx)
{
	struct fake *f = o;

	(void)qctx;
	pthread_mutex_lock(&f->lock);
	/* The device promises nothing is in flight. */
	ck_assert_uint_eq(f->outstanding, 0);
	f->closed++;
	pthread_mutex_unlock(&f->lock);
}

static int fake_enqueue(void *o, void *qctx, struct vdev_blk_io *io)
{
	struct fake *f = o;
	int r = 0;

	(void)qctx;
	pthread_mutex_lock(&f->lock);
	f->enqueue_calls++;
	if ((f->eagain_every && f->enqueue_calls % f->eagain_every == 0) ||
	    (f->capacity && f->outstanding >= f->capacity)) {
		f->eagains++;
		r = -EAGAIN;
	} else {
		ck_assert_uint_lt(f->npending, 1024);
		f->pending[f->npending++] = io;
		f->outstanding++;
	}
	pthread_mutex_unlock(&f->lock);
	return r;
}

static void fake_exec(struct fake *f, struct vdev_blk_io *io)
{
	uint64_t off = io->offset;

	ck_assert_uint_eq(io->struct_size, sizeof(*io));
	if (io->op == VDEV_BLK_IO_READ || io->op == VDEV_BLK_IO_WRITE) {
		uint64_t tot = 0;

		ck_assert_uint_le(io->offset + io->len, f->size);
		for (uint32_t i = 0; i < io->iovcnt; i++)
			tot += io->iov[i].iov_len;
		ck_assert_uint_eq(tot, io->len);
		f->rw_count++;
		if (f->fail_every && f->rw_count % f->fail_every == 0) {
			f->failed++;
			io->result = f->fail_err;
			return;
		}
		for (uint32_t i = 0; i < io->iovcnt; i++) {
			if (io->op == VDEV_BLK_IO_READ)
				memcpy(io->iov[i].iov_base, f->data + off, io->iov[i].iov_len);
			else
				memcpy(f->data + off, io->iov[i].iov_base, io->iov[i].iov_len);
			off += io->iov[i].iov_len;
		}
		if (io->op == VDEV_BLK_IO_WRITE)
			f->writes_done++;
	} else if (io->op == VDEV_BLK_IO_FLUSH) {
		f->flushes++;
	} else {
		ck_assert_uint_le(io->offset + io->len, f->size);
		memset(f->data + io->offset, 0, io->len);
	}
	io->result = 0;
}

/* Run the pending ios (caller holds the lock). */
static void fake_run(struct fake *f)
{
	for (uint32_t i = 0; i < f->npending; i++) {
		fake_exec(f, f->pending[i]);
		f->done[f->ndone++] = f->pending[i];
	}
	f->npending = 0;
}

static int fake_submit(void *o, void *qctx)
{
	struct fake *f = o;

	(void)qctx;
	pthread_mutex_lock(&f->lock);
	if (!f->hold)
		fake_run(f);
	pthread_mutex_unlock(&f->lock);
	return 0;
}

static int fake_reap(void *o, void *qctx, struct vdev_blk_io **done, uint32_t max)
{
	struct fake *f = o;
	uint32_t n;

	(void)qctx;
	pthread_mutex_lock(&f->lock);
	n = f->ndone < max ? f->ndone : max;
	memcpy(done, f->done, n * sizeof(*done));
	memmove(f->done, f->done + n, (f->ndone - n) * sizeof(*done));
	f->ndone -= n;
	f->outstanding -= n;
	if (f->efd >= 0 && f->ndone == 0) {
		uint64_t v;

		(void)!read(f->efd, &v, sizeof(v));
	}
	pthread_mutex_unlock(&f->lock);
	return (int)n;
}

static int fake_fd(void *o, void *qctx)
{
	(void)qctx;
	return ((struct fake *)o)->efd;
}

/* Let held ios complete (from any thread). */
static void fake_release(struct fake *f, int keep_holding)
{
	uint64_t one = 1;

	pthread_mutex_lock(&f->lock);
	fake_run(f);
	f->hold = keep_holding;
	pthread_mutex_unlock(&f->lock);
	if (f->efd >= 0)
		(void)!write(f->efd, &one, sizeof(one));
}

static const struct vdev_blk_backend_ops fake_ops = {
	.struct_size = sizeof(struct vdev_blk_backend_ops),
	.size = fake_size,
	.queue_open = fake_open,
	.queue_close = fake_close,
	.enqueue = fake_enqueue,
	.submit = fake_submit,
	.reap = fake_reap,
	.completion_fd = fake_fd,
};

static struct fake *fake_new(int async)
{
	struct fake *f = calloc(1, sizeof(*f));

	ck_assert_ptr_nonnull(f);
	f->size = DISK_SIZE;
	f->data = calloc(1, DISK_SIZE);
	ck_assert_ptr_nonnull(f->data);
	pthread_mutex_init(&f->lock, NULL);
	f->efd = async ? eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC) : -1;
	f->hold = async;
	return f;
}

static void fake_free(struct fake *f)
{
	if (!f)
		return;
	if (f->efd >= 0)
		close(f->efd);
	pthread_mutex_destroy(&f->lock);
	free(f->data);
	free(f);
}

/* ------------------------------------------------------------------------ */
/* Environment: guest memory, blk device, mmio transport, driver. */

enum { BE_MEMORY, BE_FILE, BE_COW, BE_URING, BE_FAKE, BE_COUNT };
static const char *const be_names[] = {"memory", "file", "cow", "io_uring", "fake"};

struct env {
	uint8_t *mem_buf;
	vdev_mem *mem;
	vdev_irq *irq;
	vdev_blk_backend *be;
	int kind;
	char path[64], base_path[64];
	int fd;
	struct fake *fake;
	vdev_blk *blk;
	vdev_device *dev;
	vdev_mmio *mmio;
	void *dm_storage;
	vdev_drv_mmio *dm;
	vdev_drv *drv;
	vdev_drvq *q[MAXQ];
	uint32_t nq;
	uint64_t hide;        /* features the driver refuses */
	uint32_t qsize, indirect_max;
	int direct_kick;      /* notify writes go straight to the device (ioeventfd) */
	unsigned irqs[MAXQ], config_irqs;
	uint8_t shadow[DISK_SIZE];
	uint8_t unknown[NSECT]; /* discarded: contents undefined */
};

static struct env *E;

static void *hva(struct env *e, uint64_t gpa)
{
	return e->mem_buf + (gpa - GPA_BASE);
}

static int irq_trigger(void *opaque, uint32_t kind, uint32_t queue)
{
	struct env *e = opaque;

	if (kind == VDEV_IRQ_QUEUE && queue < MAXQ)
		__atomic_fetch_add(&e->irqs[queue], 1, __ATOMIC_RELAXED);
	else
		__atomic_fetch_add(&e->config_irqs, 1, __ATOMIC_RELAXED);
	return 0;
}

static uint32_t io_read(void *ctx, uint32_t off, uint32_t width)
{
	struct env *e = ctx;
	uint32_t v = 0;

	vdev_mmio_read(e->mmio, off, &v, width);
	return v;
}

static void io_write(void *ctx, uint32_t off, uint32_t width, uint32_t v)
{
	struct env *e = ctx;

	if (e->direct_kick && off == VDEV_MMIO_NOTIFY_OFFSET) {
		/* The ioeventfd path: no register lock, the queue's own thread. */
		vdev_device_queue_notify(e->dev, v);
		return;
	}
	vdev_mmio_write(e->mmio, off, &v, width);
}

static const struct vdev_drv_mmio_io_ops mmio_io = {
	.struct_size = sizeof(struct vdev_drv_mmio_io_ops),
	.read = io_read,
	.write = io_write,
};

static uint64_t d_negotiate(vdev_drv *drv, void *opaque, uint64_t offered)
{
	struct env *e = opaque;

	(void)drv;
	return offered & ~e->hide;
}

static int d_pre_init(vdev_drv *drv, void *opaque)
{
	struct env *e = opaque;
	uint32_t nq = 1;

	if (vdev_drv_features(drv) & BIT(VIRTIO_BLK_F_MQ)) {
		uint16_t n = 0;

		ck_assert_int_eq(vdev_drv_config_read(drv, offsetof(struct virtio_blk_config,
								    num_queues),
						      &n, 2),
				 0);
		nq = n;
	}
	ck_assert_uint_le(nq, MAXQ);
	for (uint32_t i = 0; i < nq; i++) {
		int r = vdev_drv_queue_setup(drv, i, e->qsize, e->indirect_max, &e->q[i]);

		if (r < 0)
			return r;
	}
	e->nq = nq;
	return 0;
}

static const struct vdev_driver_ops drv_ops = {
	.struct_size = sizeof(struct vdev_driver_ops),
	.negotiate_features = d_negotiate,
	.pre_device_initialization = d_pre_init,
};

/* Make a backend of @kind over a disk whose initial bytes are @init. Returns
 * 0, or -EOPNOTSUPP/-ENOSYS (io_uring unavailable). */
static int make_backend(struct env *e, int kind, const uint8_t *init)
{
	struct vdev_blk_file_config fc = VDEV_BLK_FILE_CONFIG_INIT;
	struct vdev_blk_cow_config cc = VDEV_BLK_COW_CONFIG_INIT;
	int r;

	e->kind = kind;
	e->fd = -1;
	switch (kind) {
	case BE_MEMORY:
		ck_assert_int_eq(vdev_blk_backend_new_memory(DISK_SIZE, 0, &e->be), 0);
		memcpy(vdev_blk_backend_memory_data(e->be), init, DISK_SIZE);
		return 0;
	case BE_FILE:
	case BE_URING:
		strcpy(e->path, "/tmp/test-blk-XXXXXX");
		e->fd = mkstemp(e->path);
		ck_assert_int_ge(e->fd, 0);
		ck_assert_int_eq(pwrite(e->fd, init, DISK_SIZE, 0), DISK_SIZE);
		fc.path = e->path;
		r = kind == BE_FILE ? vdev_blk_backend_new_file(&fc, &e->be)
				    : vdev_blk_backend_new_uring(&fc, &e->be);
		if (r == -EOPNOTSUPP || r == -ENOSYS)
			return r;
		ck_assert_int_eq(r, 0);
		return 0;
	case BE_COW:
		strcpy(e->base_path, "/tmp/test-blk-base-XXXXXX");
		e->fd = mkstemp(e->base_path);
		ck_assert_int_ge(e->fd, 0);
		ck_assert_int_eq(pwrite(e->fd, init, DISK_SIZE, 0), DISK_SIZE);
		cc.base_path = e->base_path;
		cc.chunk_size = 4096;
		ck_assert_int_eq(vdev_blk_backend_new_cow(&cc, &e->be), 0);
		return 0;
	case BE_FAKE:
		memcpy(e->fake->data, init, DISK_SIZE);
		ck_assert_int_eq(vdev_blk_backend_new(&fake_ops, e->fake,
						      VDEV_BLK_BACKEND_F_DISCARD |
							      VDEV_BLK_BACKEND_F_WRITE_ZEROES,
						      &e->be),
				 0);
		return 0;
	default:
		ck_abort();
	}
	return 0;
}

/* Bring the device up. @cfg NULL: defaults. */
static void env_start(struct env *e, const struct vdev_blk_config *cfg)
{
	struct vdev_blk_config bc = VDEV_BLK_CONFIG_INIT;
	struct vdev_mmio_config mc = VDEV_MMIO_CONFIG_INIT;
	struct vdev_irq_ops iops = VDEV_IRQ_OPS_INIT;
	struct vdev_drv_config dc = VDEV_DRV_CONFIG_INIT;

	if (cfg)
		bc = *cfg;
	if (!cfg) {
		bc.queue_size = 64;
		bc.max_discard_seg = 4;
		bc.max_write_zeroes_seg = 4;
	}
	memcpy(bc.serial, SERIAL, sizeof(bc.serial));
	ck_assert_int_eq(vdev_blk_new(&bc, e->be, &e->blk), 0);
	e->dev = vdev_blk_device(e->blk);
	ck_assert_ptr_nonnull(e->dev);
	ck_assert_int_eq(vdev_device_set_memory(e->dev, e->mem), 0);
	iops.trigger = irq_trigger;
	ck_assert_int_eq(vdev_irq_new(&iops, e, &e->irq), 0);
	mc.base = 0xd0000000ull;
	ck_assert_int_eq(vdev_mmio_new(&mc, e->dev, e->irq, &e->mmio), 0);

	e->dm_storage = malloc(vdev_drv_mmio_storage_size());
	ck_assert_int_eq(vdev_drv_mmio_init(e->dm_storage, vdev_drv_mmio_storage_size(), &mmio_io,
					    e, &e->dm),
			 0);
	dc.transport = vdev_drv_mmio_transport();
	dc.transport_opaque = e->dm;
	dc.driver = &drv_ops;
	dc.driver_opaque = e;
	dc.arena = e->mem_buf;
	dc.arena_gpa = GPA_BASE;
	dc.arena_size = ARENA_SIZE;
	ck_assert_int_eq(vdev_drv_new(&dc, &e->drv), 0);
	ck_assert_int_eq(vdev_drv_start(e->drv), 0);
	ck_assert(vdev_drv_status(e->drv) & VDEV_STATUS_DRIVER_OK);
}

static struct env *env_new(void)
{
	struct env *e = calloc(1, sizeof(*e));

	ck_assert_ptr_nonnull(e);
	e->mem_buf = aligned_alloc(4096, MEM_SIZE);
	ck_assert_ptr_nonnull(e->mem_buf);
	memset(e->mem_buf, 0x5a, MEM_SIZE);
	ck_assert_int_eq(vdev_mem_new(&e->mem), 0);
	ck_assert_int_eq(vdev_mem_add_region(e->mem, GPA_BASE, MEM_SIZE, e->mem_buf, 0), 0);
	e->qsize = 32;
	e->indirect_max = 16;
	e->fd = -1;
	for (uint32_t i = 0; i < DISK_SIZE; i++)
		e->shadow[i] = (uint8_t)(i * 7 + (i >> 9));
	E = e;
	return e;
}

static void env_free(struct env *e)
{
	if (!e)
		return;
	if (e->drv)
		vdev_drv_reset(e->drv);
	vdev_drv_free(e->drv);
	vdev_mmio_free(e->mmio);
	vdev_blk_free(e->blk);
	vdev_blk_backend_free(e->be);
	fake_free(e->fake);
	vdev_irq_free(e->irq);
	vdev_mem_free(e->mem);
	free(e->dm_storage);
	if (e->fd >= 0)
		close(e->fd);
	if (e->path[0])
		unlink(e->path);
	if (e->base_path[0])
		unlink(e->base_path);
	free(e->mem_buf);
	free(e);
	E = NULL;
}

/* ------------------------------------------------------------------------ */
/* Requests. */

struct rq {
	uint64_t addr[MAXSEG + 8];
	uint32_t len[MAXSEG + 8];
	uint32_t nout, nin;
	uint32_t flags;
};

static void rq_seg(struct rq *r, uint64_t gpa, uint32_t len, int device_writes)
{
	uint32_t n = r->nout + r->nin;

	ck_assert_uint_lt(n, MAXSEG + 8);
	if (!device_writes)
		ck_assert_uint_eq(r->nin, 0);
	r->addr[n] = gpa;
	r->len[n] = len;
	if (device_writes)
		r->nin++;
	else
		r->nout++;
}

/* Add, kick and wait for the used buffer. Returns the used length. */
static uint32_t rq_run(struct env *e, uint32_t qi, struct rq *r)
{
	void *tok = NULL;
	uint32_t len = 0;
	int n = 0;

	ck_assert_int_eq(vdev_drvq_add(e->q[qi], r->addr, r->len, r->nout, r->nin, (void *)r,
				       r->flags),
			 0);
	vdev_drvq_kick(e->q[qi]);
	for (;;) {
		int rr = vdev_drvq_get_used(e->q[qi], &tok, &len);
		int fd;

		ck_assert_int_ge(rr, 0);
		if (rr == 1)
			break;
		ck_assert_int_lt(++n, 20000);
		fd = vdev_blk_completion_fd(e->blk, qi);
		if (fd >= 0) {
			struct pollfd p = {.fd = fd, .events = POLLIN};

			poll(&p, 1, 5);
		}
		vdev_blk_process_completions(e->blk, qi);
	}
	ck_assert_ptr_eq(tok, r);
	return len;
}

static void put_hdr(struct env *e, uint32_t qi, uint32_t type, uint64_t sector)
{
	struct virtio_blk_outhdr h = {.type = type, .ioprio = 0, .sector = sector};

	memcpy(hva(e, HDR_GPA(qi)), &h, sizeof(h));
}

static uint8_t *status_byte(struct env *e, uint32_t qi)
{
	return hva(e, STATUS_GPA(qi));
}

/*
 * A read or write of @len bytes at @sector, the data at DATA_GPA + @misalign
 * split into @nseg segments of uneven sizes. Returns the status; *used gets
 * the used length.
 */
static uint8_t do_rw(struct env *e, uint32_t qi, int write, uint64_t sector, uint32_t len,
		     uint32_t nseg, uint32_t misalign, uint32_t add_flags, uint32_t *used)
{
	struct rq r = {0};
	uint64_t gpa = DATA_GPA(qi) + misalign;
	uint32_t left = len, u;

	put_hdr(e, qi, write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN, sector);
	rq_seg(&r, HDR_GPA(qi), 16, 0);
	if (write) {
		for (uint32_t i = 0; i < nseg && left; i++) {
			uint32_t l = i + 1 == nseg ? left : (left / (nseg - i)) + (i % 3) * 7;

			if (l > left || l == 0)
				l = left;
			rq_seg(&r, gpa, l, 0);
			gpa += l;
			left -= l;
		}
	}
	if (!write) {
		for (uint32_t i = 0; i < nseg && left; i++) {
			uint32_t l = i + 1 == nseg ? left : (left / (nseg - i)) + (i % 3) * 7;

			if (l > left || l == 0)
				l = left;
			rq_seg(&r, gpa, l, 1);
			gpa += l;
			left -= l;
		}
	}
	rq_seg(&r, STATUS_GPA(qi), 1, 1);
	r.flags = add_flags;
	*status_byte(e, qi) = 0xff;
	u = rq_run(e, qi, &r);
	if (used)
		*used = u;
	return *status_byte(e, qi);
}

static uint8_t simple(struct env *e, uint32_t qi, uint32_t type, uint64_t sector,
		      uint32_t *used)
{
	struct rq r = {0};
	uint32_t u;

	put_hdr(e, qi, type, sector);
	rq_seg(&r, HDR_GPA(qi), 16, 0);
	rq_seg(&r, STATUS_GPA(qi), 1, 1);
	*status_byte(e, qi) = 0xff;
	u = rq_run(e, qi, &r);
	if (used)
		*used = u;
	return *status_byte(e, qi);
}

struct seg16 {
	uint64_t sector;
	uint32_t num;
	uint32_t flags;
};

static uint8_t do_dwz(struct env *e, uint32_t qi, uint32_t type, const struct seg16 *s,
		      uint32_t n, uint32_t extra_bytes)
{
	struct rq r = {0};

	put_hdr(e, qi, type, 0);
	memcpy(hva(e, SEGTAB_GPA(qi)), s, n * sizeof(*s));
	rq_seg(&r, HDR_GPA(qi), 16, 0);
	rq_seg(&r, SEGTAB_GPA(qi), n * 16 + extra_bytes, 0);
	rq_seg(&r, STATUS_GPA(qi), 1, 1);
	*status_byte(e, qi) = 0xff;
	ck_assert_uint_eq(rq_run(e, qi, &r), 1);
	return *status_byte(e, qi);
}

static void fill_pattern(uint8_t *p, uint32_t len, uint32_t seed)
{
	for (uint32_t i = 0; i < len; i++)
		p[i] = (uint8_t)((seed * 2654435761u + i * 31u) >> 8);
}

/* Write through the device and into the shadow. */
static void w_ok(struct env *e, uint32_t qi, uint64_t sector, uint32_t len, uint32_t nseg,
		 uint32_t misalign, uint32_t flags, uint32_t seed)
{
	uint32_t used;

	fill_pattern(hva(e, DATA_GPA(qi) + misalign), len, seed);
	ck_assert_uint_eq(do_rw(e, qi, 1, sector, len, nseg, misalign, flags, &used),
			  VIRTIO_BLK_S_OK);
	ck_assert_uint_eq(used, 1);
	memcpy(e->shadow + sector * 512, hva(e, DATA_GPA(qi) + misalign), len);
	memset(e->unknown + sector, 0, len / 512);
}

/* Read through the device and compare with the shadow. */
static void r_ok(struct env *e, uint32_t qi, uint64_t sector, uint32_t len, uint32_t nseg,
		 uint32_t misalign, uint32_t flags)
{
	uint8_t *p = hva(e, DATA_GPA(qi) + misalign);
	uint32_t used;

	memset(p, 0xcc, len);
	ck_assert_uint_eq(do_rw(e, qi, 0, sector, len, nseg, misalign, flags, &used),
			  VIRTIO_BLK_S_OK);
	ck_assert_uint_eq(used, len + 1);
	for (uint32_t s = 0; s < len / 512; s++) {
		if (e->unknown[sector + s])
			continue;
		if (memcmp(p + s * 512, e->shadow + (sector + s) * 512, 512) != 0)
			ck_abort_msg("sector %llu differs (read of %u at %llu)",
				     (unsigned long long)(sector + s), len,
				     (unsigned long long)sector);
	}
}

/* Compare the backing store with the shadow where it can be seen. */
static void check_backing(struct env *e)
{
	static uint8_t buf[DISK_SIZE];
	const uint8_t *b = NULL;

	if (e->kind == BE_MEMORY) {
		b = vdev_blk_backend_memory_data(e->be);
	} else if (e->kind == BE_FILE || e->kind == BE_URING) {
		ck_assert_int_eq(pread(e->fd, buf, DISK_SIZE, 0), DISK_SIZE);
		b = buf;
	} else if (e->kind == BE_FAKE) {
		b = e->fake->data;
	} else if (e->kind == BE_COW) {
		/* The base is never written. */
		static uint8_t orig[DISK_SIZE];

		ck_assert_int_eq(pread(e->fd, buf, DISK_SIZE, 0), DISK_SIZE);
		for (uint32_t i = 0; i < DISK_SIZE; i++)
			orig[i] = (uint8_t)(i * 7 + (i >> 9));
		ck_assert_int_eq(memcmp(buf, orig, DISK_SIZE), 0);
		return;
	}
	for (uint32_t s = 0; s < NSECT; s++)
		if (!e->unknown[s] && memcmp(b + s * 512, e->shadow + s * 512, 512) != 0)
			ck_abort_msg("backing sector %u differs", s);
}

static struct env *env_kind(int kind, int async_fake)
{
	struct env *e = env_new();
	uint8_t *init = malloc(DISK_SIZE);

	memcpy(init, e->shadow, DISK_SIZE);
	if (kind == BE_FAKE)
		e->fake = fake_new(async_fake);
	if (make_backend(e, kind, init) < 0) {
		free(init);
		env_free(e);
		return NULL;
	}
	free(init);
	return e;
}

static struct vdev_blk_backend_stats be_stats(struct env *e)
{
	struct vdev_blk_backend_stats s = VDEV_BLK_BACKEND_STATS_INIT;

	ck_assert_int_eq(vdev_blk_backend_get_stats(e->be, &s), 0);
	ck_assert_uint_eq(s.completed, s.errors + s.reads_ok + s.writes_ok + s.flushes_ok +
					       s.discards_ok + s.write_zeroes_ok);
	return s;
}

static struct vdev_blk_stats stats(struct env *e)
{
	struct vdev_blk_stats s = VDEV_BLK_STATS_INIT;

	ck_assert_int_eq(vdev_blk_get_stats(e->blk, &s), 0);
	ck_assert_uint_eq(s.requests, s.reads + s.writes + s.flushes + s.discards +
					      s.write_zeroes + s.get_ids + s.malformed);
	return s;
}

/* ------------------------------------------------------------------------ */
/* Tests. */

static uint32_t cfg32(struct env *e, uint32_t off)
{
	uint32_t v = 0;

	ck_assert_int_eq(vdev_drv_config_read(e->drv, off, &v, 4), 0);
	return v;
}

START_TEST(test_init_config)
{
	struct env *e = env_kind(BE_MEMORY, 0);
	struct vdev_blk_config bc = VDEV_BLK_CONFIG_INIT;
	struct virtio_blk_config c;
	uint64_t f;

	bc.queue_size = 64;
	bc.seg_max = 30;
	bc.size_max = 65536;
	bc.blk_size = 4096;
	bc.physical_block_exp = 1;
	bc.alignment_offset = 2;
	bc.min_io_size = 3;
	bc.opt_io_size = 64;
	bc.max_discard_seg = 3;
	bc.max_write_zeroes_seg = 2;
	bc.max_discard_sectors = 100;
	bc.num_queues = 2;
	env_start(e, &bc);
	f = vdev_drv_features(e->drv);
	ck_assert(f & BIT(VIRTIO_F_VERSION_1));
	ck_assert(f & BIT(VIRTIO_F_RING_PACKED));
	ck_assert(f & BIT(VIRTIO_RING_F_INDIRECT_DESC));
	ck_assert(f & BIT(VIRTIO_RING_F_EVENT_IDX));
	ck_assert(f & BIT(VIRTIO_BLK_F_FLUSH));
	ck_assert(f & BIT(VIRTIO_BLK_F_BLK_SIZE));
	ck_assert(f & BIT(VIRTIO_BLK_F_SEG_MAX));
	ck_assert(f & BIT(VIRTIO_BLK_F_SIZE_MAX));
	ck_assert(f & BIT(VIRTIO_BLK_F_TOPOLOGY));
	ck_assert(f & BIT(VIRTIO_BLK_F_CONFIG_WCE));
	ck_assert(f & BIT(VIRTIO_BLK_F_MQ));
	ck_assert(!(f & BIT(VIRTIO_BLK_F_RO)));
	ck_assert(vdev_device_features(e->dev) & BIT(VIRTIO_F_RING_RESET));
	/* The memory backend can discard and write zeroes. */
	ck_assert(f & BIT(VIRTIO_BLK_F_DISCARD));
	ck_assert(f & BIT(VIRTIO_BLK_F_WRITE_ZEROES));
	ck_assert_uint_eq(e->nq, 2);

	ck_assert_int_eq(vdev_drv_config_read(e->drv, 0, &c, 60), 0);
	ck_assert_uint_eq(c.capacity, NSECT);
	ck_assert_uint_eq(c.size_max, 65536);
	ck_assert_uint_eq(c.seg_max, 30);
	ck_assert_uint_eq(c.blk_size, 4096);
	ck_assert_uint_eq(c.physical_block_exp, 1);
	ck_assert_uint_eq(c.alignment_offset, 2);
	ck_assert_uint_eq(c.min_io_size, 3);
	ck_assert_uint_eq(c.opt_io_size, 64);
	ck_assert_uint_eq(c.wce, 1);
	ck_assert_uint_eq(c.unused, 0);
	ck_assert_uint_eq(c.num_queues, 2);
	ck_assert_uint_eq(c.max_discard_sectors, 100);
	ck_assert_uint_eq(c.max_discard_seg, 3);
	ck_assert_uint_eq(c.discard_sector_alignment, 8);
	ck_assert_uint_eq(c.max_write_zeroes_sectors, NSECT);
	ck_assert_uint_eq(c.max_write_zeroes_seg, 2);
	ck_assert_uint_eq(c.write_zeroes_may_unmap, 1);
	ck_assert_uint_eq(cfg32(e, 12), 30);

	/* writeback is writable with CONFIG_WCE. */
	{
		uint8_t v = 0;

		ck_assert_int_eq(vdev_drv_config_write(e->drv,
						       offsetof(struct virtio_blk_config, wce), &v,
						       1),
				 0);
		ck_assert_int_eq(vdev_drv_config_read(e->drv, 0, &c, 60), 0);
		ck_assert_uint_eq(c.wce, 0);
		/* Other fields are not. */
		ck_assert_int_ne(vdev_device_config_write(e->dev, 0, &v, 1), 0);
		ck_assert_int_eq(vdev_drv_config_read(e->drv, 0, &c, 60), 0);
		ck_assert_uint_eq(c.capacity, NSECT);
	}
	/* Reset brings writeback back. */
	vdev_drv_reset(e->drv);
	ck_assert_int_eq(vdev_drv_start(e->drv), 0);
	ck_assert_int_eq(vdev_drv_config_read(e->drv, 0, &c, 60), 0);
	ck_assert_uint_eq(c.wce, 1);
	env_free(e);
}
END_TEST

START_TEST(test_bad_config)
{
	struct vdev_blk_config bc = VDEV_BLK_CONFIG_INIT;
	vdev_blk_backend *be;
	vdev_blk *blk = (vdev_blk *)0x1;

	ck_assert_int_eq(vdev_blk_backend_new_memory(DISK_SIZE, 0, &be), 0);
	{
		struct vdev_blk_backend_stats st = VDEV_BLK_BACKEND_STATS_INIT;

		ck_assert_int_eq(vdev_blk_backend_get_stats(NULL, &st), -EINVAL);
		ck_assert_int_eq(vdev_blk_backend_get_stats(be, NULL), -EINVAL);
		st.struct_size = 0;
		ck_assert_int_eq(vdev_blk_backend_get_stats(be, &st), -EINVAL);
		st.struct_size = sizeof(st);
		ck_assert_int_eq(vdev_blk_backend_get_stats(be, &st), 0);
		ck_assert_uint_eq(st.completed, 0);
	}
	ck_assert_int_eq(vdev_blk_new(NULL, be, &blk), -EINVAL);
	ck_assert_int_eq(vdev_blk_new(&bc, NULL, &blk), -EINVAL);
	ck_assert_int_eq(vdev_blk_new(&bc, be, NULL), -EINVAL);
	bc.num_queues = VDEV_BLK_MAX_QUEUES + 1;
	ck_assert_int_eq(vdev_blk_new(&bc, be, &blk), -EINVAL);
	bc.num_queues = 1;
	bc.queue_size = 100;
	ck_assert_int_eq(vdev_blk_new(&bc, be, &blk), -EINVAL);
	bc.queue_size = 0;
	bc.blk_size = 1000;
	ck_assert_int_eq(vdev_blk_new(&bc, be, &blk), -EINVAL);
	bc.blk_size = 0;
	bc.flags = 0x80;
	ck_assert_int_eq(vdev_blk_new(&bc, be, &blk), -EINVAL);
	ck_assert_ptr_eq(blk, (vdev_blk *)0x1);
	bc.flags = 0;
	bc.disable_features = BIT(VIRTIO_BLK_F_FLUSH) | BIT(VIRTIO_F_RING_RESET);
	ck_assert_int_eq(vdev_blk_new(&bc, be, &blk), 0);
	/* No FLUSH, so no CONFIG_WCE either; no queue reset ops. */
	ck_assert(!(vdev_device_features(vdev_blk_device(blk)) & BIT(VIRTIO_BLK_F_FLUSH)));
	ck_assert(!(vdev_device_features(vdev_blk_device(blk)) & BIT(VIRTIO_BLK_F_CONFIG_WCE)));
	ck_assert(!(vdev_device_features(vdev_blk_device(blk)) & BIT(VIRTIO_F_RING_RESET)));
	/* The completion fd exists (and stays the same) before activation. */
	ck_assert_int_ge(vdev_blk_completion_fd(blk, 0), 0);
	ck_assert_int_eq(vdev_blk_completion_fd(blk, 1), -EINVAL);
	ck_assert_int_eq(vdev_blk_completion_fd(NULL, 0), -EINVAL);
	ck_assert_int_eq(vdev_blk_process_completions(blk, 0), -EAGAIN);
	ck_assert_int_eq(vdev_blk_get_stats(blk, NULL), -EINVAL);
	vdev_blk_free(blk);
	vdev_blk_free(NULL);
	ck_assert_ptr_null(vdev_blk_device(NULL));
	vdev_blk_backend_free(be);
}
END_TEST

/* The device-level table: every backend x split/packed x indirect or not. */
START_TEST(test_table)
{
	int kind = _i / 4;
	int packed = (_i / 2) & 1;
	int indirect = _i & 1;
	struct env *e = env_kind(kind, 0);
	uint32_t seed = 1234 + (uint32_t)_i;
	struct vdev_blk_stats s;
	uint64_t f;

	if (!e) {
		printf("test_table: skipping %s (io_uring backend unavailable)\n", be_names[kind]);
		return;
	}
	if (!packed)
		e->hide |= BIT(VIRTIO_F_RING_PACKED);
	if (!indirect)
		e->hide |= BIT(VIRTIO_RING_F_INDIRECT_DESC);
	env_start(e, NULL);
	f = vdev_drv_features(e->drv);
	ck_assert_int_eq(!!(f & BIT(VIRTIO_F_RING_PACKED)), packed);
	ck_assert_int_eq(!!(f & BIT(VIRTIO_RING_F_INDIRECT_DESC)), indirect);

	/* Fixed patterns: sizes, alignments, multi-segment. */
	static const uint32_t sizes[] = {512, 1024, 4096, 4608, 65536, 131072};
	static const uint32_t nsegs[] = {1, 2, 3, 8, 13};
	static const uint32_t misal[] = {0, 1, 511, 4095};
	uint32_t k = 0;

	for (uint32_t si = 0; si < 6; si++)
		for (uint32_t ni = 0; ni < 5; ni++, k++) {
			uint32_t len = sizes[si];
			uint32_t ma = misal[k % 4];
			uint64_t sector = (k * 37) % (NSECT - len / 512 + 1);

			w_ok(e, 0, sector, len, nsegs[ni], ma, k & 1 ? VDEV_DRVQ_ADD_NO_INDIRECT : 0,
			     seed + k);
			r_ok(e, 0, sector, len, nsegs[(ni + 2) % 5], misal[(k + 1) % 4], 0);
		}
	/* Edges: first and last sector, the whole disk in one read. */
	w_ok(e, 0, 0, 512, 1, 0, 0, 1);
	w_ok(e, 0, NSECT - 1, 512, 1, 0, 0, 2);
	w_ok(e, 0, NSECT - 8, 4096, 4, 3, 0, 3);
	r_ok(e, 0, 0, DISK_SIZE, 16, 0, 0);

	/* Random mix, flushes, discard and write-zeroes, get-id. */
	srand(seed);
	for (int it = 0; it < 300; it++) {
		int op = rand() % 10;
		uint32_t nsec = 1 + (uint32_t)rand() % 64;
		uint64_t sector = (uint64_t)rand() % (NSECT - nsec + 1);
		uint32_t nseg = 1 + (uint32_t)rand() % 12;
		uint32_t ma = (uint32_t)rand() % 600;

		if (op < 4) {
			w_ok(e, 0, sector, nsec * 512, nseg, ma, 0, (uint32_t)it);
		} else if (op < 8) {
			r_ok(e, 0, sector, nsec * 512, nseg, ma, 0);
		} else if (op == 8) {
			ck_assert_uint_eq(simple(e, 0, VIRTIO_BLK_T_FLUSH, 0, NULL),
					  VIRTIO_BLK_S_OK);
		} else {
			struct seg16 sg[2] = {{sector, nsec / 2 + 1, 0},
					      {(sector + 300) % (NSECT - 64), nsec, 0}};
			int wz = rand() & 1;

			if (!(f & BIT(wz ? VIRTIO_BLK_F_WRITE_ZEROES : VIRTIO_BLK_F_DISCARD)))
				continue;
			if (wz && (rand() & 1))
				sg[1].flags = VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP;
			ck_assert_uint_eq(do_dwz(e, 0, wz ? VIRTIO_BLK_T_WRITE_ZEROES
							    : VIRTIO_BLK_T_DISCARD,
						 sg, 2, 0),
					  VIRTIO_BLK_S_OK);
			for (int j = 0; j < 2; j++) {
				if (wz) {
					memset(e->shadow + sg[j].sector * 512, 0,
					       sg[j].num * 512);
					memset(e->unknown + sg[j].sector, 0, sg[j].num);
				} else {
					memset(e->unknown + sg[j].sector, 1, sg[j].num);
				}
			}
		}
	}
	{
		uint8_t *p = hva(e, DATA_GPA(0));
		uint32_t used;
		struct rq r = {0};

		memset(p, 0, 20);
		put_hdr(e, 0, VIRTIO_BLK_T_GET_ID, 0);
		rq_seg(&r, HDR_GPA(0), 16, 0);
		rq_seg(&r, DATA_GPA(0), 20, 1);
		rq_seg(&r, STATUS_GPA(0), 1, 1);
		used = rq_run(e, 0, &r);
		ck_assert_uint_eq(*status_byte(e, 0), VIRTIO_BLK_S_OK);
		ck_assert_uint_eq(used, 21);
		ck_assert_int_eq(memcmp(p, SERIAL, 20), 0);
	}
	r_ok(e, 0, 0, DISK_SIZE, 7, 5, 0);
	check_backing(e);
	s = stats(e);
	ck_assert_uint_eq(s.malformed, 0);
	ck_assert_uint_eq(s.ioerr, 0);
	ck_assert_uint_eq(s.unsupp, 0);
	ck_assert_uint_ge(s.reads, 30);
	ck_assert_uint_eq(s.get_ids, 1);
	ck_assert_uint_gt(e->irqs[0], 0);
	env_free(e);
}
END_TEST

/* A good request right after every refused one: the device keeps working. */
static void still_works(struct env *e)
{
	w_ok(e, 0, 5, 1024, 2, 0, 0, 99);
	r_ok(e, 0, 5, 1024, 1, 0, 0);
}

START_TEST(test_validation)
{
	struct env *e = env_kind(BE_MEMORY, 0);
	struct vdev_blk_config bc = VDEV_BLK_CONFIG_INIT;
	struct vdev_blk_stats s0, s1;
	struct rq r;
	uint32_t used;
	uint64_t malformed = 0;
	uint8_t *disk;

	bc.queue_size = 64;
	bc.seg_max = 4;
	bc.size_max = 8192;
	bc.max_discard_seg = 2;
	bc.max_write_zeroes_seg = 2;
	bc.max_discard_sectors = 16;
	e->indirect_max = 32;
	if (_i)
		e->hide |= BIT(VIRTIO_F_RING_PACKED);
	env_start(e, &bc);
	disk = vdev_blk_backend_memory_data(e->be);
	s0 = stats(e);

	/* Short header, answered IOERR. */
	memset(&r, 0, sizeof(r));
	put_hdr(e, 0, VIRTIO_BLK_T_IN, 0);
	rq_seg(&r, HDR_GPA(0), 8, 0);
	rq_seg(&r, DATA_GPA(0), 512, 1);
	rq_seg(&r, STATUS_GPA(0), 1, 1);
	*status_byte(e, 0) = 0xff;
	ck_assert_uint_eq(rq_run(e, 0, &r), 1);
	ck_assert_uint_eq(*status_byte(e, 0), VIRTIO_BLK_S_IOERR);
	malformed++;
	still_works(e);

	/* A header split over two descriptors is fine. */
	memset(&r, 0, sizeof(r));
	put_hdr(e, 0, VIRTIO_BLK_T_IN, 5);
	rq_seg(&r, HDR_GPA(0), 5, 0);
	rq_seg(&r, HDR_GPA(0) + 5, 11, 0);
	rq_seg(&r, DATA_GPA(0), 512, 1);
	rq_seg(&r, STATUS_GPA(0), 1, 1);
	ck_assert_uint_eq(rq_run(e, 0, &r), 513);
	ck_assert_uint_eq(*status_byte(e, 0), VIRTIO_BLK_S_OK);
	ck_assert_int_eq(memcmp(hva(e, DATA_GPA(0)), disk + 5 * 512, 512), 0);
	/* Status sharing the last data descriptor. */
	memset(&r, 0, sizeof(r));
	rq_seg(&r, HDR_GPA(0), 16, 0);
	rq_seg(&r, DATA_GPA(0), 513, 1);
	*(uint8_t *)hva(e, DATA_GPA(0) + 512) = 0xff;
	ck_assert_uint_eq(rq_run(e, 0, &r), 513);
	ck_assert_uint_eq(*(uint8_t *)hva(e, DATA_GPA(0) + 512), VIRTIO_BLK_S_OK);

	/* No writable byte: cannot be answered, but comes back. */
	memset(&r, 0, sizeof(r));
	put_hdr(e, 0, VIRTIO_BLK_T_OUT, 0);
	rq_seg(&r, HDR_GPA(0), 16, 0);
	rq_seg(&r, DATA_GPA(0), 512, 0);
	memcpy(hva(e, DATA_GPA(0)), "XXXX", 4);
	ck_assert_uint_eq(rq_run(e, 0, &r), 0);
	ck_assert_int_ne(memcmp(disk, "XXXX", 4), 0);
	malformed++;
	still_works(e);

	/* Length not a multiple of 512, both ways. */
	put_hdr(e, 0, VIRTIO_BLK_T_IN, 0);
	ck_assert_uint_eq(do_rw(e, 0, 0, 0, 100, 1, 0, 0, &used), VIRTIO_BLK_S_IOERR);
	ck_assert_uint_eq(used, 1);
	ck_assert_uint_eq(do_rw(e, 0, 1, 0, 700, 2, 0, 0, &used), VIRTIO_BLK_S_IOERR);
	malformed += 2;
	still_works(e);

	/* Out of range, and overflowing. */
	ck_assert_uint_eq(do_rw(e, 0, 0, NSECT, 512, 1, 0, 0, &used), VIRTIO_BLK_S_IOERR);
	ck_assert_uint_eq(do_rw(e, 0, 0, NSECT - 1, 1024, 1, 0, 0, &used), VIRTIO_BLK_S_IOERR);
	ck_assert_uint_eq(do_rw(e, 0, 1, NSECT - 1, 1024, 2, 0, 0, &used), VIRTIO_BLK_S_IOERR);
	ck_assert_uint_eq(do_rw(e, 0, 0, UINT64_MAX - 1, 1024, 1, 0, 0, &used),
			  VIRTIO_BLK_S_IOERR);
	ck_assert_uint_eq(do_rw(e, 0, 1, UINT64_MAX >> 9, 512, 1, 0, 0, &used),
			  VIRTIO_BLK_S_IOERR);
	malformed += 5;
	/* The very last sector is in range. */
	r_ok(e, 0, NSECT - 1, 512, 1, 0, 0);
	still_works(e);

	/* Unknown types. */
	ck_assert_uint_eq(simple(e, 0, 0x55, 0, &used), VIRTIO_BLK_S_UNSUPP);
	ck_assert_uint_eq(used, 1);
	ck_assert_uint_eq(simple(e, 0, 10 /* GET_LIFETIME */, 0, NULL), VIRTIO_BLK_S_UNSUPP);
	ck_assert_uint_eq(simple(e, 0, VIRTIO_BLK_T_SECURE_ERASE, 0, NULL), VIRTIO_BLK_S_UNSUPP);
	ck_assert_uint_eq(simple(e, 0, VIRTIO_BLK_T_OUT | 0x80000000u, 0, NULL),
			  VIRTIO_BLK_S_UNSUPP);
	malformed += 4;
	still_works(e);

	/* Segments: seg_max 4 data segments is fine, 5 is not (chained and
	 * indirect); a segment above size_max is not. */
	w_ok(e, 0, 8, 2048, 4, 0, VDEV_DRVQ_ADD_NO_INDIRECT, 7);
	r_ok(e, 0, 8, 2048, 4, 0, 0);
	ck_assert_uint_eq(do_rw(e, 0, 1, 8, 2560, 5, 0, 0, &used), VIRTIO_BLK_S_IOERR);
	ck_assert_uint_eq(do_rw(e, 0, 0, 8, 2560, 5, 0, VDEV_DRVQ_ADD_NO_INDIRECT, &used),
			  VIRTIO_BLK_S_IOERR);
	/* Far more than the request arrays hold: the overflow path. */
	ck_assert_uint_eq(do_rw(e, 0, 0, 0, 512 * 20, 20, 0, 0, &used), VIRTIO_BLK_S_IOERR);
	ck_assert_uint_eq(used, 1);
	ck_assert_uint_eq(do_rw(e, 0, 1, 0, 512 * 20, 20, 0, VDEV_DRVQ_ADD_NO_INDIRECT, &used),
			  VIRTIO_BLK_S_IOERR);
	ck_assert_uint_eq(do_rw(e, 0, 1, 0, 16384, 1, 0, 0, &used), VIRTIO_BLK_S_IOERR);
	malformed += 5;
	r_ok(e, 0, 8, 2048, 1, 0, 0); /* nothing of the refused writes landed */
	still_works(e);

	/* Discard / write-zeroes segments. */
	{
		struct seg16 ok[2] = {{10, 4, 0}, {20, 4, 0}};
		struct seg16 bad_flags[1] = {{10, 4, 2}};
		struct seg16 unmap[1] = {{10, 4, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP}};
		struct seg16 three[3] = {{10, 1, 0}, {11, 1, 0}, {12, 1, 0}};
		struct seg16 big[1] = {{10, 17, 0}};
		struct seg16 range[1] = {{NSECT - 2, 4, 0}};
		struct seg16 wrap[1] = {{UINT64_MAX - 1, 4, 0}};
		struct seg16 mixed[2] = {{NSECT + 100, 4, 0}, {10, 4, 4}};

		w_ok(e, 0, 10, 4096, 1, 0, 0, 3);
		ck_assert_uint_eq(do_dwz(e, 0, VIRTIO_BLK_T_DISCARD, bad_flags, 1, 0),
				  VIRTIO_BLK_S_UNSUPP);
		ck_assert_uint_eq(do_dwz(e, 0, VIRTIO_BLK_T_WRITE_ZEROES, bad_flags, 1, 0),
				  VIRTIO_BLK_S_UNSUPP);
		ck_assert_uint_eq(do_dwz(e, 0, VIRTIO_BLK_T_DISCARD, unmap, 1, 0),
				  VIRTIO_BLK_S_UNSUPP);
		ck_assert_uint_eq(do_dwz(e, 0, VIRTIO_BLK_T_DISCARD, three, 3, 0),
				  VIRTIO_BLK_S_UNSUPP);
		ck_assert_uint_eq(do_dwz(e, 0, VIRTIO_BLK_T_WRITE_ZEROES, three, 3, 0),
				  VIRTIO_BLK_S_UNSUPP);
		ck_assert_uint_eq(do_dwz(e, 0, VIRTIO_BLK_T_DISCARD, big, 1, 0),
				  VIRTIO_BLK_S_IOERR);
		ck_assert_uint_eq(do_dwz(e, 0, VIRTIO_BLK_T_WRITE_ZEROES, range, 1, 0),
				  VIRTIO_BLK_S_IOERR);
		ck_assert_uint_eq(do_dwz(e, 0, VIRTIO_BLK_T_DISCARD, wrap, 1, 0),
				  VIRTIO_BLK_S_IOERR);
		/* Flags are refused before ranges are looked at. */
		ck_assert_uint_eq(do_dwz(e, 0, VIRTIO_BLK_T_WRITE_ZEROES, mixed, 2, 0),
				  VIRTIO_BLK_S_UNSUPP);
		ck_assert_uint_eq(do_dwz(e, 0, VIRTIO_BLK_T_WRITE_ZEROES, ok, 1, 5),
				  VIRTIO_BLK_S_IOERR);
		malformed += 10;
		/* None of that touched the data. */
		r_ok(e, 0, 10, 4096, 1, 0, 0);
		ck_assert_uint_eq(do_dwz(e, 0, VIRTIO_BLK_T_WRITE_ZEROES, unmap, 1, 0),
				  VIRTIO_BLK_S_OK);
		memset(e->shadow + 10 * 512, 0, 4 * 512);
		ck_assert_uint_eq(do_dwz(e, 0, VIRTIO_BLK_T_WRITE_ZEROES, ok, 2, 0),
				  VIRTIO_BLK_S_OK);
		memset(e->shadow + 20 * 512, 0, 4 * 512);
		r_ok(e, 0, 8, 16 * 512, 3, 0, 0);
		ck_assert_uint_eq(do_dwz(e, 0, VIRTIO_BLK_T_DISCARD, ok, 2, 0), VIRTIO_BLK_S_OK);
		memset(e->unknown + 10, 1, 4);
		memset(e->unknown + 20, 1, 4);
		still_works(e);
	}

	/* GET_ID into a short buffer: truncated. */
	memset(&r, 0, sizeof(r));
	put_hdr(e, 0, VIRTIO_BLK_T_GET_ID, 0);
	memset(hva(e, DATA_GPA(0)), 0xee, 32);
	rq_seg(&r, HDR_GPA(0), 16, 0);
	rq_seg(&r, DATA_GPA(0), 8, 1);
	rq_seg(&r, STATUS_GPA(0), 1, 1);
	ck_assert_uint_eq(rq_run(e, 0, &r), 9);
	ck_assert_uint_eq(*status_byte(e, 0), VIRTIO_BLK_S_OK);
	ck_assert_int_eq(memcmp(hva(e, DATA_GPA(0)), SERIAL, 8), 0);
	ck_assert_uint_eq(*(uint8_t *)hva(e, DATA_GPA(0) + 8), 0xee);

	s1 = stats(e);
	ck_assert_uint_eq(s1.malformed - s0.malformed, malformed);
	ck_assert_uint_eq(s1.unsupp - s0.unsupp, 4 + 6);
	ck_assert_uint_eq(s1.ioerr - s0.ioerr, malformed - 10 - 1);
	ck_assert_uint_eq(s1.get_ids - s0.get_ids, 1);
	still_works(e);
	check_backing(e);
	env_free(e);
}
END_TEST

/* Features the driver did not take are refused; a read-only device. */
START_TEST(test_not_negotiated_and_ro)
{
	struct env *e = env_kind(BE_MEMORY, 0);
	struct vdev_blk_config bc = VDEV_BLK_CONFIG_INIT;
	struct seg16 sg[1] = {{0, 1, 0}};
	uint32_t used;

	e->hide = BIT(VIRTIO_BLK_F_FLUSH) | BIT(VIRTIO_BLK_F_DISCARD) |
		  BIT(VIRTIO_BLK_F_WRITE_ZEROES);
	env_start(e, NULL);
	ck_assert_uint_eq(simple(e, 0, VIRTIO_BLK_T_FLUSH, 0, NULL), VIRTIO_BLK_S_UNSUPP);
	ck_assert_uint_eq(do_dwz(e, 0, VIRTIO_BLK_T_DISCARD, sg, 1, 0), VIRTIO_BLK_S_UNSUPP);
	ck_assert_uint_eq(do_dwz(e, 0, VIRTIO_BLK_T_WRITE_ZEROES, sg, 1, 0), VIRTIO_BLK_S_UNSUPP);
	still_works(e);
	env_free(e);

	e = env_kind(BE_MEMORY, 0);
	bc.flags = VDEV_BLK_F_READONLY;
	env_start(e, &bc);
	ck_assert(vdev_drv_features(e->drv) & BIT(VIRTIO_BLK_F_RO));
	ck_assert(!(vdev_device_features(e->dev) & BIT(VIRTIO_BLK_F_DISCARD)));
	fill_pattern(hva(e, DATA_GPA(0)), 4096, 5);
	ck_assert_uint_eq(do_rw(e, 0, 1, 0, 4096, 2, 0, 0, &used), VIRTIO_BLK_S_IOERR);
	ck_assert_uint_eq(used, 1);
	ck_assert_uint_eq(do_dwz(e, 0, VIRTIO_BLK_T_WRITE_ZEROES, sg, 1, 0), VIRTIO_BLK_S_UNSUPP);
	r_ok(e, 0, 0, 8192, 3, 0, 0);
	ck_assert_uint_eq(simple(e, 0, VIRTIO_BLK_T_FLUSH, 0, NULL), VIRTIO_BLK_S_OK);
	check_backing(e);
	env_free(e);

	/* A read-only backend makes a read-only device. */
	e = env_new();
	ck_assert_int_eq(vdev_blk_backend_new_memory(DISK_SIZE, VDEV_BLK_BACKEND_F_READONLY,
						     &e->be),
			 0);
	e->kind = BE_MEMORY;
	memset(e->shadow, 0, DISK_SIZE);
	env_start(e, NULL);
	ck_assert(vdev_drv_features(e->drv) & BIT(VIRTIO_BLK_F_RO));
	ck_assert_uint_eq(do_rw(e, 0, 1, 0, 512, 1, 0, 0, &used), VIRTIO_BLK_S_IOERR);
	r_ok(e, 0, 0, 512, 1, 0, 0);
	env_free(e);
}
END_TEST

/* Backend failures: IOERR for those, OK for the rest, nothing lost. */
START_TEST(test_faults)
{
	static const int errs[] = {-EIO, -ENOSPC, 1};
	struct env *e = env_kind(BE_FAKE, 0);
	struct vdev_blk_stats s;
	uint32_t ok = 0, bad = 0, n = 60;

	e->fake->fail_every = 3 + (uint32_t)_i;
	e->fake->fail_err = errs[_i % 3];
	if (_i >= 3)
		e->fake->eagain_every = 2;
	env_start(e, NULL);
	/* Several requests in one kick: a batch. */
	for (uint32_t b = 0; b < n / 6; b++) {
		struct rq r[6];
		uint8_t *st = hva(e, STATUS_GPA(0));

		memset(r, 0, sizeof(r));
		for (uint32_t j = 0; j < 6; j++) {
			uint64_t hdr = HDR_GPA(0) + j * 16;
			struct virtio_blk_outhdr h = {.type = (j & 1) ? VIRTIO_BLK_T_IN
								      : VIRTIO_BLK_T_OUT,
						      .sector = (b * 6 + j) * 8};

			memcpy(hva(e, hdr), &h, 16);
			fill_pattern(hva(e, DATA_GPA(0) + j * 4096), 4096, b * 6 + j);
			rq_seg(&r[j], hdr, 16, 0);
			rq_seg(&r[j], DATA_GPA(0) + j * 4096, 4096, j & 1);
			rq_seg(&r[j], STATUS_GPA(0) + j, 1, 1);
			st[j] = 0xff;
			ck_assert_int_eq(vdev_drvq_add(e->q[0], r[j].addr, r[j].len, r[j].nout,
						       r[j].nin, &r[j], 0),
					 0);
		}
		vdev_drvq_kick(e->q[0]);
		for (uint32_t j = 0; j < 6; j++) {
			void *tok;
			uint32_t len;

			ck_assert_int_eq(vdev_drvq_get_used(e->q[0], &tok, &len), 1);
		}
		for (uint32_t j = 0; j < 6; j++) {
			ck_assert(st[j] == VIRTIO_BLK_S_OK || st[j] == VIRTIO_BLK_S_IOERR);
			if (st[j] == VIRTIO_BLK_S_OK) {
				ok++;
				if (!(j & 1))
					ck_assert_int_eq(memcmp(e->fake->data + (b * 6 + j) * 4096,
								hva(e, DATA_GPA(0) + j * 4096),
								4096),
							 0);
			} else {
				bad++;
			}
		}
	}
	ck_assert_uint_eq(ok + bad, n);
	ck_assert_uint_eq(bad, e->fake->failed);
	ck_assert_uint_gt(bad, 0);
	s = stats(e);
	ck_assert_uint_eq(s.requests, n);
	ck_assert_uint_eq(s.ioerr, bad);
	ck_assert_uint_eq(s.reads + s.writes, n);
	ck_assert_uint_eq(s.bytes_read + s.bytes_written, (uint64_t)ok * 4096);
	if (_i >= 3)
		ck_assert_uint_gt(e->fake->eagains, 0);
	ck_assert_uint_eq(e->fake->outstanding, 0);
	{
		/* The backend's own view: every io once, EAGAIN retries not counted. */
		struct vdev_blk_backend_stats b = be_stats(e);

		ck_assert_uint_eq(b.completed, n);
		ck_assert_uint_eq(b.errors, bad);
		ck_assert_uint_eq(b.reads_ok + b.writes_ok, ok);
		ck_assert_uint_eq(b.bytes_read + b.bytes_written, (uint64_t)ok * 4096);
	}
	env_free(e);
}
END_TEST

/* Write-through: every write is followed by a flush before it is answered. */
START_TEST(test_write_through)
{
	struct env *e = env_kind(BE_FAKE, 0);
	struct vdev_blk_config bc = VDEV_BLK_CONFIG_INIT;
	uint8_t v;

	bc.flags = _i == 0 ? VDEV_BLK_F_WRITETHROUGH : 0;
	if (_i == 2)
		e->hide = BIT(VIRTIO_BLK_F_FLUSH); /* FLUSH offered, not taken */
	env_start(e, &bc);
	w_ok(e, 0, 0, 4096, 2, 0, 0, 1);
	w_ok(e, 0, 8, 512, 1, 0, 0, 2);
	r_ok(e, 0, 0, 4096, 1, 0, 0);
	if (_i == 1) {
		/* Write-back: no flush until asked. */
		ck_assert_uint_eq(e->fake->flushes, 0);
		ck_assert_uint_eq(simple(e, 0, VIRTIO_BLK_T_FLUSH, 0, NULL), VIRTIO_BLK_S_OK);
		ck_assert_uint_eq(e->fake->flushes, 1);
		/* The driver turns the cache off. */
		v = 0;
		ck_assert_int_eq(vdev_drv_config_write(e->drv,
						       offsetof(struct virtio_blk_config, wce), &v,
						       1),
				 0);
		w_ok(e, 0, 16, 1024, 1, 0, 0, 3);
		ck_assert_uint_eq(e->fake->flushes, 2);
	} else {
		ck_assert_uint_eq(e->fake->flushes, 2);
		ck_assert_uint_eq(e->fake->writes_done, 2);
	}
	/* A failed write is not flushed and answers IOERR. */
	e->fake->fail_every = 1;
	e->fake->fail_err = -EIO;
	{
		uint32_t fl = e->fake->flushes;
		uint32_t used;

		ck_assert_uint_eq(do_rw(e, 0, 1, 0, 512, 1, 0, 0, &used), VIRTIO_BLK_S_IOERR);
		ck_assert_uint_eq(e->fake->flushes, fl);
		ck_assert_uint_eq(be_stats(e).flushes_ok, fl);
		ck_assert_uint_eq(be_stats(e).errors, 1);
	}
	check_backing(e);
	env_free(e);
}
END_TEST

struct releaser {
	struct fake *f;
	int delay_ms;
	volatile int released;
};

static void *release_later(void *arg)
{
	struct releaser *r = arg;
	struct timespec ts = {0, (long)r->delay_ms * 1000000L};

	nanosleep(&ts, NULL);
	__atomic_store_n(&r->released, 1, __ATOMIC_SEQ_CST);
	fake_release(r->f, 1);
	return NULL;
}

static void add_reads(struct env *e, uint32_t qi, uint32_t n, struct rq *r)
{
	uint8_t *st = hva(e, STATUS_GPA(qi));

	for (uint32_t j = 0; j < n; j++) {
		struct virtio_blk_outhdr h = {.type = VIRTIO_BLK_T_IN, .sector = j * 8};

		memset(&r[j], 0, sizeof(r[j]));
		memcpy(hva(e, HDR_GPA(qi) + j * 16), &h, 16);
		rq_seg(&r[j], HDR_GPA(qi) + j * 16, 16, 0);
		rq_seg(&r[j], DATA_GPA(qi) + j * 4096, 4096, 1);
		rq_seg(&r[j], STATUS_GPA(qi) + j, 1, 1);
		st[j] = 0xff;
		ck_assert_int_eq(vdev_drvq_add(e->q[qi], r[j].addr, r[j].len, r[j].nout,
					       r[j].nin, &r[j], 0),
				 0);
	}
	vdev_drvq_kick(e->q[qi]);
}

/* One completion fd per queue for the device's lifetime: the same before
 * activation, while running and after a reset; readable exactly when the
 * backend has finished I/O. */
START_TEST(test_completion_fd_stable)
{
	struct env *e = env_kind(BE_FAKE, 1);
	struct rq r[4];
	struct pollfd p = {.events = POLLIN};
	int fd;

	/* (test_new_args checks the fd exists before activation.) */
	env_start(e, NULL);
	fd = vdev_blk_completion_fd(e->blk, 0);
	ck_assert_int_ge(fd, 0);
	p.fd = fd;
	add_reads(e, 0, 4, r);
	ck_assert_uint_eq(e->fake->outstanding, 4);
	ck_assert_int_eq(poll(&p, 1, 0), 0); /* nothing finished yet */
	fake_release(e->fake, 0);
	ck_assert_int_eq(poll(&p, 1, 1000), 1);
	ck_assert_int_eq(vdev_blk_process_completions(e->blk, 0), 4);
	ck_assert_int_eq(poll(&p, 1, 0), 0); /* drained */
	vdev_drv_reset(e->drv);
	ck_assert_int_eq(vdev_blk_completion_fd(e->blk, 0), fd);
	ck_assert_int_eq(poll(&p, 1, 0), 0);
	env_free(e);
}
END_TEST

/* Reset with I/O in flight: drained, nothing reaches the guest afterwards. */
START_TEST(test_reset_inflight)
{
	struct env *e = env_kind(BE_FAKE, 1);
	struct releaser rel = {.delay_ms = 100};
	struct rq r[8];
	pthread_t th;
	uint8_t *snap;

	if (_i)
		e->hide |= BIT(VIRTIO_F_RING_PACKED);
	env_start(e, NULL);
	rel.f = e->fake;
	ck_assert_int_ge(vdev_blk_completion_fd(e->blk, 0), 0);
	add_reads(e, 0, 8, r);
	ck_assert_uint_eq(e->fake->outstanding, 8);
	ck_assert_int_eq(vdev_blk_process_completions(e->blk, 0), 0);
	ck_assert_int_eq(pthread_create(&th, NULL, release_later, &rel), 0);
	vdev_drv_reset(e->drv);
	/* Returned only after the backend gave everything back. */
	ck_assert(__atomic_load_n(&rel.released, __ATOMIC_SEQ_CST));
	ck_assert_uint_eq(e->fake->outstanding, 0);
	ck_assert_uint_eq(e->fake->closed, 1);
	/* The backend wrote the data, but the requests were dropped: no status,
	 * and nothing changes in guest memory afterwards. */
	for (int j = 0; j < 8; j++)
		ck_assert_uint_eq(*(uint8_t *)hva(e, STATUS_GPA(0) + j), 0xff);
	snap = malloc(MEM_SIZE);
	memcpy(snap, e->mem_buf, MEM_SIZE);
	usleep(20000);
	ck_assert_int_eq(vdev_blk_process_completions(e->blk, 0), -EAGAIN);
	ck_assert_int_eq(memcmp(snap, e->mem_buf, MEM_SIZE), 0);
	free(snap);
	pthread_join(th, NULL);
	/* The device starts again and works. */
	e->fake->hold = 0;
	ck_assert_int_eq(vdev_drv_start(e->drv), 0);
	still_works(e);
	ck_assert_uint_eq(e->fake->opened, 2);
	env_free(e);
}
END_TEST

/* A split ring driven by hand (the driver side does not take RING_RESET). */
struct mring {
	uint64_t gpa;
	struct vring_desc *d;
	struct vring_avail *avail;
	struct vring_used *used;
	uint16_t aidx;
};

#define MR_SIZE 16u

static void mring_setup(struct env *e, struct mring *m, uint64_t gpa)
{
	struct vdev_queue_config qc = VDEV_QUEUE_CONFIG_INIT;

	memset(hva(e, gpa), 0, 0x1000);
	m->gpa = gpa;
	m->d = hva(e, gpa);
	m->avail = hva(e, gpa + 0x400);
	m->used = hva(e, gpa + 0x800);
	m->aidx = 0;
	qc.size = MR_SIZE;
	qc.desc_addr = gpa;
	qc.driver_addr = gpa + 0x400;
	qc.device_addr = gpa + 0x800;
	ck_assert_int_eq(vdev_device_queue_setup(e->dev, 0, &qc), 0);
	ck_assert_int_eq(vdev_device_queue_enable(e->dev, 0, 1), 0);
}

/* Request @slot: a 512-byte read of @sector; status at gpa + 0xc00 + slot,
 * data at gpa + 0x1000 + slot * 512. */
static void mring_read(struct env *e, struct mring *m, uint16_t slot, uint64_t sector)
{
	struct virtio_blk_outhdr h = {.type = VIRTIO_BLK_T_IN, .sector = sector};
	uint64_t hdr = m->gpa + 0xa00 + slot * 16u;
	uint16_t i = (uint16_t)(slot * 3);

	memcpy(hva(e, hdr), &h, 16);
	*(uint8_t *)hva(e, m->gpa + 0xc00 + slot) = 0xff;
	m->d[i] = (struct vring_desc){hdr, 16, VRING_DESC_F_NEXT, (uint16_t)(i + 1)};
	m->d[i + 1] = (struct vring_desc){m->gpa + 0x1000 + slot * 512u, 512,
					  VRING_DESC_F_NEXT | VRING_DESC_F_WRITE,
					  (uint16_t)(i + 2)};
	m->d[i + 2] = (struct vring_desc){m->gpa + 0xc00 + slot, 1, VRING_DESC_F_WRITE, 0};
	m->avail->ring[m->aidx % MR_SIZE] = i;
	m->aidx++;
	__atomic_store_n(&m->avail->idx, m->aidx, __ATOMIC_RELEASE);
}

START_TEST(test_queue_reset)
{
	struct env *e = env_kind(BE_FAKE, 1);
	struct releaser rel = {.delay_ms = 100};
	struct mring m;
	pthread_t th;
	uint8_t *snap;
	uint64_t f = BIT(VIRTIO_F_VERSION_1) | BIT(VIRTIO_F_RING_RESET) | BIT(VIRTIO_BLK_F_FLUSH);

	env_start(e, NULL);
	rel.f = e->fake;
	/* Start over by hand, with RING_RESET. */
	vdev_drv_reset(e->drv);
	ck_assert_int_eq(vdev_device_set_status(e->dev, VDEV_STATUS_ACKNOWLEDGE), 0);
	ck_assert_int_eq(vdev_device_set_status(e->dev, VDEV_STATUS_ACKNOWLEDGE |
								VDEV_STATUS_DRIVER),
			 0);
	ck_assert_int_eq(vdev_device_set_acked_features(e->dev, f), 0);
	ck_assert_int_eq(vdev_device_set_status(e->dev, VDEV_STATUS_ACKNOWLEDGE |
								VDEV_STATUS_DRIVER |
								VDEV_STATUS_FEATURES_OK),
			 0);
	mring_setup(e, &m, QAREA(1));
	ck_assert_int_eq(vdev_device_set_status(e->dev, VDEV_STATUS_ACKNOWLEDGE |
								VDEV_STATUS_DRIVER |
								VDEV_STATUS_FEATURES_OK |
								VDEV_STATUS_DRIVER_OK),
			 0);
	for (uint16_t j = 0; j < 4; j++)
		mring_read(e, &m, j, j);
	ck_assert_int_eq(vdev_device_queue_notify(e->dev, 0), 0);
	ck_assert_uint_eq(e->fake->outstanding, 4);
	ck_assert_int_eq(pthread_create(&th, NULL, release_later, &rel), 0);
	ck_assert_int_eq(vdev_device_queue_reset(e->dev, 0), 0);
	ck_assert(__atomic_load_n(&rel.released, __ATOMIC_SEQ_CST));
	ck_assert_uint_eq(e->fake->outstanding, 0);
	ck_assert_uint_eq(e->fake->closed, 1); /* only the driver's reset closed */
	ck_assert_uint_eq(m.used->idx, 0);
	for (int j = 0; j < 4; j++)
		ck_assert_uint_eq(*(uint8_t *)hva(e, m.gpa + 0xc00 + j), 0xff);
	snap = malloc(MEM_SIZE);
	memcpy(snap, e->mem_buf, MEM_SIZE);
	usleep(20000);
	/* The queue is reset (not live): nothing to process, nothing written. */
	ck_assert_int_eq(vdev_blk_process_completions(e->blk, 0), -EAGAIN);
	ck_assert_int_eq(memcmp(snap, e->mem_buf, MEM_SIZE), 0);
	free(snap);
	pthread_join(th, NULL);

	/* Back on fresh rings. */
	e->fake->hold = 0;
	mring_setup(e, &m, QAREA(1) + 0x10000);
	mring_read(e, &m, 0, 9);
	ck_assert_int_eq(vdev_device_queue_notify(e->dev, 0), 0);
	ck_assert_uint_eq(__atomic_load_n(&m.used->idx, __ATOMIC_ACQUIRE), 1);
	ck_assert_uint_eq(m.used->ring[0].id, 0);
	ck_assert_uint_eq(m.used->ring[0].len, 513);
	ck_assert_uint_eq(*(uint8_t *)hva(e, m.gpa + 0xc00), VIRTIO_BLK_S_OK);
	ck_assert_int_eq(memcmp(hva(e, m.gpa + 0x1000), e->fake->data + 9 * 512, 512), 0);
	env_free(e);
}
END_TEST

/* Sleep drains and answers; kicks while asleep wait for wake. */
START_TEST(test_sleep_wake)
{
	struct env *e = env_kind(BE_FAKE, 1);
	struct releaser rel = {.delay_ms = 50};
	struct rq r[8];
	pthread_t th;
	void *tok;
	uint32_t len;

	env_start(e, NULL);
	rel.f = e->fake;
	add_reads(e, 0, 4, r);
	ck_assert_int_eq(pthread_create(&th, NULL, release_later, &rel), 0);
	ck_assert_int_eq(vdev_device_sleep(e->dev), 0);
	ck_assert(__atomic_load_n(&rel.released, __ATOMIC_SEQ_CST));
	pthread_join(th, NULL);
	ck_assert_uint_eq(e->fake->outstanding, 0);
	for (int j = 0; j < 4; j++) {
		ck_assert_int_eq(vdev_drvq_get_used(e->q[0], &tok, &len), 1);
		ck_assert_uint_eq(len, 4097);
		ck_assert_uint_eq(*(uint8_t *)hva(e, STATUS_GPA(0) + j), VIRTIO_BLK_S_OK);
		ck_assert_int_eq(memcmp(hva(e, DATA_GPA(0) + j * 4096), e->fake->data + j * 4096,
					4096),
				 0);
	}
	/* Asleep: a kick is held. */
	e->fake->hold = 0;
	add_reads(e, 0, 2, r);
	ck_assert_int_eq(vdev_drvq_get_used(e->q[0], &tok, &len), 0);
	ck_assert_uint_eq(e->fake->enqueue_calls, 4);
	ck_assert_int_eq(vdev_device_wake(e->dev), 0);
	ck_assert_int_eq(vdev_drvq_get_used(e->q[0], &tok, &len), 1);
	ck_assert_int_eq(vdev_drvq_get_used(e->q[0], &tok, &len), 1);
	still_works(e);
	env_free(e);
}
END_TEST

/* An async backend with little room: requests wait and resume. */
START_TEST(test_backpressure)
{
	struct env *e = env_kind(BE_FAKE, 1);
	struct rq r[16];
	uint32_t got = 0;
	int loops = 0;

	e->fake->capacity = 3;
	e->qsize = 16;
	env_start(e, NULL);
	add_reads(e, 0, 16, r);
	ck_assert_uint_eq(e->fake->outstanding, 3);
	while (got < 16) {
		void *tok;
		uint32_t len;

		ck_assert_int_lt(++loops, 1000);
		fake_release(e->fake, 1);
		ck_assert_int_ge(vdev_blk_process_completions(e->blk, 0), 0);
		ck_assert_uint_le(e->fake->outstanding, 3);
		while (vdev_drvq_get_used(e->q[0], &tok, &len) == 1) {
			ck_assert_uint_eq(len, 4097);
			got++;
		}
	}
	for (int j = 0; j < 16; j++)
		ck_assert_uint_eq(*(uint8_t *)hva(e, STATUS_GPA(0) + j), VIRTIO_BLK_S_OK);
	ck_assert_uint_gt(e->fake->eagains, 0);
	env_free(e);
}
END_TEST

/* Multi-queue: one driver thread per queue, each with its own kick path. */
struct mq_arg {
	struct env *e;
	uint32_t qi;
	int failures;
};

static void *mq_thread(void *p)
{
	struct mq_arg *a = p;
	struct env *e = a->e;
	uint32_t qi = a->qi;
	uint64_t base = qi * (NSECT / MAXQ);

	for (uint32_t it = 0; it < 200; it++) {
		uint64_t sector = base + (it * 13) % (NSECT / MAXQ - 16);
		uint32_t len = 512 * (1 + it % 16);
		uint8_t *p8 = hva(e, DATA_GPA(qi));
		uint8_t *c8 = hva(e, DATA_GPA(qi) + (1u << 20));
		struct rq r;
		void *tok;
		uint32_t ulen;
		int n = 0;

		fill_pattern(p8, len, it + qi * 1000);
		for (int w = 0; w < 2; w++) {
			struct virtio_blk_outhdr h = {.type = w ? VIRTIO_BLK_T_IN : VIRTIO_BLK_T_OUT,
						      .sector = sector};

			memcpy(hva(e, HDR_GPA(qi)), &h, 16);
			memset(&r, 0, sizeof(r));
			r.addr[0] = HDR_GPA(qi);
			r.len[0] = 16;
			r.addr[1] = w ? DATA_GPA(qi) + (1u << 20) : DATA_GPA(qi);
			r.len[1] = len;
			r.addr[2] = STATUS_GPA(qi);
			r.len[2] = 1;
			*(uint8_t *)hva(e, STATUS_GPA(qi)) = 0xff;
			if (vdev_drvq_add(e->q[qi], r.addr, r.len, w ? 1 : 2, w ? 2 : 1, &r, 0) < 0)
				a->failures++;
			vdev_drvq_kick(e->q[qi]);
			while (vdev_drvq_get_used(e->q[qi], &tok, &ulen) != 1)
				if (++n > 100000) {
					a->failures++;
					return NULL;
				}
			if (*(uint8_t *)hva(e, STATUS_GPA(qi)) != VIRTIO_BLK_S_OK)
				a->failures++;
		}
		if (memcmp(p8, c8, len) != 0)
			a->failures++;
		memcpy(e->shadow + sector * 512, p8, len);
	}
	return NULL;
}

START_TEST(test_multiqueue)
{
	struct env *e = env_kind(BE_MEMORY, 0);
	struct vdev_blk_config bc = VDEV_BLK_CONFIG_INIT;
	struct mq_arg args[MAXQ];
	pthread_t th[MAXQ];
	struct vdev_blk_stats s;

	bc.num_queues = MAXQ;
	bc.queue_size = 32;
	if (_i)
		e->hide |= BIT(VIRTIO_F_RING_PACKED);
	e->direct_kick = 1;
	env_start(e, &bc);
	ck_assert_uint_eq(e->nq, MAXQ);
	for (uint32_t i = 0; i < MAXQ; i++) {
		args[i] = (struct mq_arg){.e = e, .qi = i};
		ck_assert_int_eq(pthread_create(&th[i], NULL, mq_thread, &args[i]), 0);
	}
	for (uint32_t i = 0; i < MAXQ; i++) {
		pthread_join(th[i], NULL);
		ck_assert_int_eq(args[i].failures, 0);
	}
	check_backing(e);
	s = stats(e);
	ck_assert_uint_eq(s.requests, MAXQ * 400);
	ck_assert_uint_eq(s.writes, MAXQ * 200);
	for (uint32_t i = 0; i < MAXQ; i++)
		ck_assert_uint_gt(e->irqs[i], 0);
	env_free(e);
}
END_TEST

/* A hostile ring breaks the queue: NEEDS_RESET, and a reset recovers. */
START_TEST(test_broken_ring)
{
	struct env *e = env_kind(BE_MEMORY, 0);
	struct rq r = {0};

	e->hide |= BIT(VIRTIO_F_RING_PACKED) | BIT(VIRTIO_RING_F_INDIRECT_DESC);
	env_start(e, NULL);
	/* A buffer outside guest memory. */
	rq_seg(&r, HDR_GPA(0), 16, 0);
	rq_seg(&r, 0x10, 512, 1);
	rq_seg(&r, STATUS_GPA(0), 1, 1);
	ck_assert_int_eq(vdev_drvq_add(e->q[0], r.addr, r.len, r.nout, r.nin, &r, 0), 0);
	vdev_drvq_kick(e->q[0]);
	ck_assert(vdev_device_status(e->dev) & VDEV_STATUS_NEEDS_RESET);
	ck_assert_uint_gt(e->config_irqs, 0);
	vdev_drv_reset(e->drv);
	ck_assert_int_eq(vdev_drv_start(e->drv), 0);
	still_works(e);
	env_free(e);
}
END_TEST

static Suite *blk_suite(void)
{
	Suite *s = suite_create("blk");
	TCase *tc = tcase_create("device");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_init_config);
	tcase_add_test(tc, test_bad_config);
	tcase_add_loop_test(tc, test_table, 0, 16);
	tcase_add_loop_test(tc, test_validation, 0, 2);
	tcase_add_test(tc, test_not_negotiated_and_ro);
	tcase_add_loop_test(tc, test_faults, 0, 6);
	tcase_add_loop_test(tc, test_write_through, 0, 3);
	tcase_add_loop_test(tc, test_reset_inflight, 0, 2);
	tcase_add_test(tc, test_completion_fd_stable);
	tcase_add_test(tc, test_queue_reset);
	tcase_add_test(tc, test_sleep_wake);
	tcase_add_test(tc, test_backpressure);
	tcase_add_loop_test(tc, test_multiqueue, 0, 2);
	tcase_add_test(tc, test_broken_ring);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(blk_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
