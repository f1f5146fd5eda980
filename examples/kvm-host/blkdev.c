/* SPDX-License-Identifier: MIT */
/*
 * The disks and the I/O thread.
 *
 * Threads: the vCPU thread reaches a disk only through its register block
 * (MMIO exits); the I/O thread runs the device (kicks from the ioeventfds,
 * backend completions) and, while polling, looks at the live queue itself
 * (vdev_queue_has_avail, vdev_queue_set_notification). The library wants
 * control calls (status writes: reset, DRIVER_OK) not to overlap queue runs
 * of the same device, and a register write may free the live queue the I/O
 * thread is polling. So each disk has a lock: the I/O thread holds it while
 * it works on the disk, the vCPU thread around each register access. The
 * vCPU raises `pause` first, and the polling I/O thread steps aside while it
 * is set, so a register access waits for one pass at most.
 */
#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <virtio-dev/virtio-dev.h>

#include "blkdev.h"
#include "tg-abi.h"

#define QUEUE_SIZE 256u
#define MAX_QUEUES 1u /* the test guest drives one queue per disk */
#define EV_STOP UINT64_MAX
#define EV_KICK 0u
#define EV_COMPLETION 1u
#define EV(dev, kind, q) (((uint64_t)(dev) << 32) | ((uint64_t)(kind) << 16) | (q))

struct kh_blk {
	struct kh_vm *vm;
	uint32_t index;
	uint64_t base;
	const char *path;
	const char *backend_name;
	vdev_blk_backend *backend;
	vdev_blk *blk;
	vdev_device *dev;
	vdev_irq *irq;
	vdev_mmio *mmio;
	uint32_t num_queues;
	int kick_fd[MAX_QUEUES];
	int on_bus;
	uint32_t gsi;
	pthread_mutex_t lock;
	int pause;               /* atomic: vCPU accesses waiting for the lock */
	uint64_t kicks;          /* atomic: ioeventfd kicks (eventfd counts) */
	uint64_t refused;        /* atomic: register accesses the transport refused */
	int needs_reset_seen;    /* atomic */
};

struct kh_iothread {
	struct kh_blk **disks;
	uint32_t n;
	uint64_t poll_ns;
	int epfd, stop_fd;
	int stop;                /* atomic: leave the polling loop */
	pthread_t thread;
	int started;
};

uint64_t kh_blk_base(uint32_t index)
{
	return TG_MMIO_BASE + (uint64_t)index * VDEV_MMIO_SIZE;
}

uint32_t kh_blk_gsi(const struct kh_blk *b)
{
	return b->gsi;
}

uint64_t kh_blk_size(const struct kh_blk *b)
{
	return vdev_blk_backend_size(b->backend);
}

static void note_status(struct kh_blk *b)
{
	if (vdev_device_status(b->dev) & VDEV_STATUS_NEEDS_RESET)
		__atomic_store_n(&b->needs_reset_seen, 1, __ATOMIC_RELAXED);
}

/* ---- register accesses from the vCPU ----------------------------------- */

/* One register access: the vCPU announces itself, so that the polling I/O
 * thread steps aside, then takes the disk's lock. */
static int reg_access(struct kh_blk *b, const struct vdev_bus_access *a, void *rdata,
		      const void *wdata)
{
	int r;

	__atomic_add_fetch(&b->pause, 1, __ATOMIC_SEQ_CST);
	pthread_mutex_lock(&b->lock);
	r = wdata ? vdev_mmio_write(b->mmio, a->offset, wdata, a->size)
		  : vdev_mmio_read(b->mmio, a->offset, rdata, a->size);
	note_status(b);
	pthread_mutex_unlock(&b->lock);
	__atomic_sub_fetch(&b->pause, 1, __ATOMIC_SEQ_CST);
	if (r < 0)
		__atomic_add_fetch(&b->refused, 1, __ATOMIC_RELAXED);
	return r;
}

static int reg_read(void *opaque, const struct vdev_bus_access *a, void *data)
{
	return reg_access(opaque, a, data, NULL);
}

static int reg_write(void *opaque, const struct vdev_bus_access *a, const void *data)
{
	return reg_access(opaque, a, NULL, data);
}

static const char *reg_label(void *opaque)
{
	(void)opaque;
	return "virtio-blk (virtio-mmio)";
}

/* ---- set-up ------------------------------------------------------------ */

static int open_backend(struct kh_blk *b, const struct kh_disk_opt *o)
{
	struct vdev_blk_file_config fcfg = VDEV_BLK_FILE_CONFIG_INIT;
	int r = -1, ru = 0;

	fcfg.path = o->path;
	fcfg.flags = o->readonly ? VDEV_BLK_FILE_F_READONLY : 0;
	fcfg.queue_depth = QUEUE_SIZE;
	if (o->backend == KH_BACKEND_URING) {
		ru = r = vdev_blk_backend_new_uring(&fcfg, &b->backend);
		b->backend_name = "io_uring";
	}
	if (r < 0) {
		/* Also when io_uring is missing (not built in, or disabled in
		 * the kernel); the file backend then says whether the image
		 * itself is the problem. */
		r = vdev_blk_backend_new_file(&fcfg, &b->backend);
		b->backend_name = "file";
	}
	if (r < 0)
		fprintf(stderr, "vdev-kvm-host: cannot open disk image %s: %s\n", o->path,
			strerror(-r));
	else if (ru < 0)
		fprintf(stderr, "vdev-kvm-host: disk %u: io_uring backend unavailable (%s), "
				"using the file backend\n", b->index,
			ru == -EOPNOTSUPP ? "not built in" : strerror(-ru));
	return r;
}

static int wire_kvm(struct kh_blk *b)
{
	int r, fd;

	for (uint32_t q = 0; q < b->num_queues; q++) {
		uint64_t addr;
		uint32_t value;

		b->kick_fd[q] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (b->kick_fd[q] < 0)
			return -errno;
		r = vdev_mmio_notify_address(b->mmio, q, &addr, &value);
		if (r == 0)
			r = kh_vm_ioeventfd(b->vm, addr, value, b->kick_fd[q]);
		if (r < 0)
			return r;
	}
	fd = vdev_irq_eventfd(b->irq, VDEV_IRQ_QUEUE, 0);
	if (fd < 0)
		return fd;
	r = kh_vm_add_msi_route(b->vm, TG_IRQ_VECTOR, &b->gsi);
	if (r == 0)
		r = kh_vm_irqfd(b->vm, fd, b->gsi);
	return r;
}

int kh_blk_new(struct kh_vm *vm, const struct kh_disk_opt *o, uint32_t index,
	       struct kh_blk **out)
{
	struct vdev_blk_config bcfg = VDEV_BLK_CONFIG_INIT;
	struct vdev_mmio_config mcfg = VDEV_MMIO_CONFIG_INIT;
	struct vdev_bus_device_ops ops = VDEV_BUS_DEVICE_OPS_INIT;
	struct kh_blk *b;
	int r;

	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->vm = vm;
	b->index = index;
	b->base = kh_blk_base(index);
	b->path = o->path;
	for (uint32_t q = 0; q < MAX_QUEUES; q++)
		b->kick_fd[q] = -1;
	pthread_mutex_init(&b->lock, NULL);
	*out = b; /* kh_blk_free copes with what is half built */

	r = open_backend(b, o);
	if (r < 0)
		return r;
	bcfg.num_queues = MAX_QUEUES;
	bcfg.queue_size = QUEUE_SIZE;
	bcfg.flags = o->readonly ? VDEV_BLK_F_READONLY : 0;
	snprintf((char *)bcfg.serial, sizeof(bcfg.serial), "vdev-kvm-disk%u", index);
	r = vdev_blk_new(&bcfg, b->backend, &b->blk);
	if (r < 0)
		goto fail;
	b->dev = vdev_blk_device(b->blk);
	b->num_queues = vdev_device_num_queues(b->dev);
	r = vdev_device_set_memory(b->dev, vm->mem);
	if (r == 0)
		r = vdev_irq_new_eventfd(b->num_queues, VDEV_IRQ_F_SHARED, &b->irq);
	mcfg.base = b->base;
	if (r == 0)
		r = vdev_mmio_new(&mcfg, b->dev, b->irq, &b->mmio);
	if (r < 0)
		goto fail;
	r = wire_kvm(b);
	if (r < 0)
		goto fail;
	ops.debug_label = reg_label;
	ops.read = reg_read;
	ops.write = reg_write;
	r = vdev_bus_insert(vm->mmio_bus, b->base, VDEV_MMIO_SIZE, &ops, b);
	if (r < 0)
		goto fail;
	b->on_bus = 1;
	return 0;
fail:
	fprintf(stderr, "vdev-kvm-host: disk %u (%s): %s\n", index, o->path, strerror(-r));
	return r;
}

void kh_blk_free(struct kh_blk *b)
{
	if (!b)
		return;
	if (b->on_bus)
		vdev_bus_remove(b->vm->mmio_bus, b->base);
	vdev_mmio_free(b->mmio);
	vdev_blk_free(b->blk);
	vdev_blk_backend_free(b->backend);
	vdev_irq_free(b->irq);
	for (uint32_t q = 0; q < MAX_QUEUES; q++)
		if (b->kick_fd[q] >= 0)
			close(b->kick_fd[q]);
	pthread_mutex_destroy(&b->lock);
	free(b);
}

int kh_blk_report(struct kh_blk *b, FILE *out)
{
	struct vdev_blk_stats st = VDEV_BLK_STATS_INIT;
	uint64_t refused = __atomic_load_n(&b->refused, __ATOMIC_RELAXED);
	int needs_reset = __atomic_load_n(&b->needs_reset_seen, __ATOMIC_RELAXED);
	uint8_t status = vdev_device_status(b->dev);

	vdev_blk_get_stats(b->blk, &st);
	fprintf(out, "kvm-host: disk %u: %s, %s backend, virtio-mmio at 0x%" PRIx64 ", GSI %u\n",
		b->index, b->path, b->backend_name, b->base, b->gsi);
	fprintf(out, "kvm-host: disk %u: status 0x%02x, %" PRIu64 " requests (%" PRIu64
		" reads, %" PRIu64 " writes, %" PRIu64 " flushes, %" PRIu64 " get-id), %" PRIu64
		" kicks\n", b->index, status, st.requests, st.reads, st.writes, st.flushes,
		st.get_ids, __atomic_load_n(&b->kicks, __ATOMIC_RELAXED));
	fprintf(out, "kvm-host: disk %u: errors: NEEDS_RESET %s, %" PRIu64 " malformed, %" PRIu64
		" I/O errors, %" PRIu64 " unsupported, %" PRIu64 " register accesses refused\n",
		b->index, needs_reset ? "seen" : "not seen", st.malformed, st.ioerr, st.unsupp,
		refused);
	return needs_reset || st.malformed || st.ioerr || st.unsupp || refused;
}

/* ---- the I/O thread ---------------------------------------------------- */

static void io_lock(struct kh_blk *b)
{
	/* Let a waiting vCPU go first: it holds up the guest. */
	while (__atomic_load_n(&b->pause, __ATOMIC_SEQ_CST))
		sched_yield();
	pthread_mutex_lock(&b->lock);
}

static void io_unlock(struct kh_blk *b)
{
	note_status(b);
	pthread_mutex_unlock(&b->lock);
}

static void handle_event(struct kh_iothread *t, uint64_t ev)
{
	struct kh_blk *b = t->disks[ev >> 32];
	uint32_t kind = (uint32_t)(ev >> 16) & 0xffff, q = (uint32_t)ev & 0xffff;

	if (kind == EV_KICK) {
		uint64_t n;

		if (read(b->kick_fd[q], &n, sizeof(n)) != (ssize_t)sizeof(n))
			return; /* already drained */
		__atomic_add_fetch(&b->kicks, n, __ATOMIC_RELAXED);
		io_lock(b);
		vdev_device_queue_notify(b->dev, q);
		io_unlock(b);
	} else {
		io_lock(b);
		vdev_blk_process_completions(b->blk, q);
		io_unlock(b);
	}
}

/*
 * One polling pass over disk @b: serve new buffers and finished backend I/O,
 * and keep kicks off (a queue run leaves them on). Returns 1 if it found work.
 */
static int poll_disk(struct kh_blk *b)
{
	int found = 0;

	/* A device that needs a reset ignores kicks: the ring would look
	 * busy for ever. */
	if (vdev_device_status(b->dev) & VDEV_STATUS_NEEDS_RESET)
		return 0;
	io_lock(b);
	for (uint32_t q = 0; q < b->num_queues; q++) {
		vdev_queue *vq = vdev_device_get_queue(b->dev, q);

		if (!vq)
			continue;
		if (vdev_queue_has_avail(vq) > 0) {
			vdev_device_queue_notify(b->dev, q);
			found = 1;
		}
		if (vdev_queue_inflight(vq) && vdev_blk_process_completions(b->blk, q) > 0)
			found = 1;
		vdev_queue_set_notification(vq, 0);
	}
	io_unlock(b);
	return found;
}

/* Kicks back on; 1 if a ring got buffers meanwhile (then keep polling). */
static int unpoll_disk(struct kh_blk *b)
{
	int again = 0;

	/* Not for a device that needs a reset: its ring may hold buffers it will
	 * never take, and the I/O thread would poll them for ever. */
	if (vdev_device_status(b->dev) & VDEV_STATUS_NEEDS_RESET)
		return 0;
	io_lock(b);
	for (uint32_t q = 0; q < b->num_queues; q++) {
		vdev_queue *vq = vdev_device_get_queue(b->dev, q);

		if (vq && vdev_queue_set_notification(vq, 1) > 0)
			again = 1;
	}
	io_unlock(b);
	return again;
}

static void poll_disks(struct kh_iothread *t)
{
	uint64_t deadline = kh_now_ns() + t->poll_ns;

	while (!__atomic_load_n(&t->stop, __ATOMIC_RELAXED)) {
		int found = 0;
		uint64_t now;

		for (uint32_t i = 0; i < t->n; i++)
			found |= poll_disk(t->disks[i]);
		now = kh_now_ns();
		if (found) {
			deadline = now + t->poll_ns;
			continue;
		}
		if (now < deadline)
			continue;
		for (uint32_t i = 0; i < t->n; i++)
			found |= unpoll_disk(t->disks[i]);
		if (!found)
			return;
		deadline = now + t->poll_ns;
	}
}

static void *iothread_main(void *arg)
{
	struct kh_iothread *t = arg;
	struct epoll_event ev[16];

	for (;;) {
		int n = epoll_wait(t->epfd, ev, 16, -1);
		int stop = 0;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			perror("vdev-kvm-host: epoll_wait");
			return NULL;
		}
		for (int i = 0; i < n; i++) {
			if (ev[i].data.u64 == EV_STOP)
				stop = 1;
			else
				handle_event(t, ev[i].data.u64);
		}
		if (stop)
			return NULL;
		if (t->poll_ns)
			poll_disks(t);
	}
}

static int ep_add(int epfd, int fd, uint64_t data)
{
	struct epoll_event e = {.events = EPOLLIN, .data.u64 = data};

	return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &e) < 0 ? -errno : 0;
}

int kh_iothread_start(struct kh_blk **disks, uint32_t n, uint64_t poll_ns, int cpu,
		      struct kh_iothread **out)
{
	struct kh_iothread *t = calloc(1, sizeof(*t));
	int r = 0;

	if (!t)
		return -ENOMEM;
	t->disks = disks;
	t->n = n;
	t->poll_ns = poll_ns;
	t->epfd = epoll_create1(EPOLL_CLOEXEC);
	t->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (t->epfd < 0 || t->stop_fd < 0)
		r = -errno;
	if (r == 0)
		r = ep_add(t->epfd, t->stop_fd, EV_STOP);
	for (uint32_t i = 0; i < n && r == 0; i++) {
		struct kh_blk *b = disks[i];

		for (uint32_t q = 0; q < b->num_queues && r == 0; q++) {
			int cfd = vdev_blk_completion_fd(b->blk, q);

			r = ep_add(t->epfd, b->kick_fd[q], EV(i, EV_KICK, q));
			if (r == 0 && cfd >= 0)
				r = ep_add(t->epfd, cfd, EV(i, EV_COMPLETION, q));
		}
	}
	if (r == 0) {
		r = -pthread_create(&t->thread, NULL, iothread_main, t);
		t->started = r == 0;
		if (t->started) {
			kh_pin_thread(t->thread, cpu, "I/O");
			pthread_setname_np(t->thread, "kh-io");
		}
	}
	if (r < 0) {
		kh_iothread_stop(t);
		return r;
	}
	*out = t;
	return 0;
}

int kh_iothread_clock(struct kh_iothread *t, clockid_t *clock)
{
	return -pthread_getcpuclockid(t->thread, clock);
}

void kh_iothread_stop(struct kh_iothread *t)
{
	uint64_t one = 1;

	if (!t)
		return;
	if (t->started) {
		__atomic_store_n(&t->stop, 1, __ATOMIC_RELAXED);
		if (write(t->stop_fd, &one, sizeof(one)) != (ssize_t)sizeof(one))
			perror("vdev-kvm-host: stopping the I/O thread");
		pthread_join(t->thread, NULL);
	}
	if (t->epfd >= 0)
		close(t->epfd);
	if (t->stop_fd >= 0)
		close(t->stop_fd);
	free(t);
}
