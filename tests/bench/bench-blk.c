/* SPDX-License-Identifier: MIT */
/*
 * bench-blk: 4 KiB random I/O through the whole device path, against plain
 * liburing on the same file, in one run.
 *
 * Device path (two threads, like a VMM with an iothread):
 *   driver thread: vdev_drv over virtio-mmio registers (vdev_drv_mmio, its
 *     register accessors call vdev_mmio_read/write) keeps <qd> requests in
 *     flight on one split virtqueue. Its kick for the data queue does not
 *     write QueueNotify: it writes an eventfd, as KVM's ioeventfd would.
 *     It waits for completions on the device's interrupt eventfd (a vdev_irq
 *     eventfd line, as KVM's irqfd would deliver it), acknowledging
 *     InterruptStatus through the registers, with used-buffer notifications
 *     re-enabled (EVENT_IDX) only when it runs out of work.
 *   device thread: epoll on the kick eventfd and the backend completion fd;
 *     vdev_device_queue_notify / vdev_blk_process_completions.
 *   Polling (-S, default 50 us; -S 0 alone sets both budgets to 0: the
 *     event-driven mode of earlier versions): after its work the device
 *     thread keeps polling the live queue
 *     (vdev_queue_has_avail) and, while requests are in the backend, its
 *     completion fd (poll with timeout 0), for up to the budget since the
 *     last work found, before it returns to epoll_wait. The driver thread,
 *     with used-buffer notifications off, polls its used ring for up to its
 *     budget (-G, default 200 us) before it re-enables them, re-checks and
 *     sleeps on the interrupt eventfd. The driver's budget must cover the
 *     time the device takes for a whole batch (the device answers a batch
 *     at once: about 40 us for 32 cached reads here), or it sleeps once per
 *     batch anyway. -A places the threads (default: the scheduler's choice).
 *   vdev_blk over the io_uring backend (buffered, or O_DIRECT for -direct).
 * Native reference: one io_uring of depth <qd> (file registered), <qd> reads
 * kept in flight, io_uring_submit_and_wait(1) per round, the same offsets.
 *
 * Each case runs -r times (default 3), the native reference and the device
 * path alternating (native first in odd runs, device first in even ones).
 * Output: one line with the mode, then one line per case with the medians:
 *   BENCH blk <case> iops=<n> native_iops=<n> ratio=<r> cpu_per_io_ratio=<r>
 * iops and native_iops are the medians over the runs; ratio is their
 * quotient; cpu_per_io_ratio is the quotient of the median CPU per I/O of
 * each path. cpu_per_io: user+system CPU of the whole process (getrusage
 * RUSAGE_SELF: both threads, io_uring workers included) per completed I/O.
 * Every single run is printed on stderr, with the CPUs this process kept
 * busy (cpus=device/native) and those busy with anything else on the machine
 * (others=device/native, from /proc/stat): a run with others well above 0 on
 * this 2-CPU machine shared a CPU with someone.
 *
 * Files: the page-cache cases use a file on disk (-m, default
 * /var/tmp/vdev-bench-blk-cached.img) read once in full before each case.
 * Not tmpfs: this kernel's tmpfs has no RWF_NOWAIT, so io_uring hands every
 * tmpfs read to an io-wq worker thread, which measures the worker handoff,
 * not the emulation layer (pass -m /dev/shm/x.img to see it). The -direct
 * cases open /var/tmp/vdev-bench-blk.img (-d) with O_DIRECT. Both are
 * written once (1 GiB, no holes) and reused by later runs.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>

#include <virtio-dev/blk.h>
#include <virtio-dev/device.h>
#include <virtio-dev/driver.h>
#include <virtio-dev/irq.h>
#include <virtio-dev/mem.h>
#include <virtio-dev/mmio.h>

#include "vdi-config.h"

#if VDI_HAVE_LIBURING
#include <liburing.h>
#endif

#define BS 4096u
#define GUEST_BASE 0x40000000ull
#define GUEST_SIZE (64ull << 20)
#define ARENA_SIZE (1ull << 20)
#define MAX_QD 256u

struct opts {
	double secs, warm;
	uint64_t dev_spin_ns, drv_spin_ns; /* polling budgets; 0: sleep at once */
	uint32_t reps;
	const char *shm_path, *disk_path;
	uint64_t size;
	uint32_t queue_size;
	int packed, indirect, keep, no_event_idx;
	int affinity; /* AFF_* */
	const char *only;
};

/* -A: where the threads run. The native loop runs where the driver does. */
enum { AFF_OS, AFF_SAME, AFF_SPLIT };
static const char *const aff_names[] = {"os", "same", "split"};

struct bcase {
	const char *name;
	int write;
	uint32_t qd;
	int direct;
};

static const struct bcase cases[] = {
	{"randread-4k-qd1", 0, 1, 0},
	{"randread-4k-qd32", 0, 32, 0},
	{"randread-4k-qd128", 0, 128, 0},
	{"randwrite-4k-qd32", 1, 32, 0},
	{"randread-4k-qd1-direct", 0, 1, 1},
	{"randread-4k-qd32-direct", 0, 32, 1},
};

struct result {
	uint64_t ios;
	double secs;
	double cpu;
	double machine_cpu; /* busy CPU time of the whole machine, -1 if unknown */
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

/* Busy CPU seconds of the whole machine (/proc/stat), -1 if unknown: minus
 * ours, it tells how much else ran during a measurement. */
static double machine_busy_s(void)
{
	unsigned long long v[8] = {0};
	FILE *f = fopen("/proc/stat", "r");
	long hz = sysconf(_SC_CLK_TCK);
	int n;

	if (!f)
		return -1;
	n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
		   &v[4], &v[5], &v[6], &v[7]);
	fclose(f);
	if (n != 8 || hz <= 0)
		return -1;
	/* user nice system [idle iowait] irq softirq steal */
	return (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / (double)hz;
}

static void die(const char *what, int err);

/* The first two CPUs the process may use, found before anything is pinned. */
static int g_cpus[2] = {-1, -1};

static void find_cpus(void)
{
	cpu_set_t allowed;
	int seen = 0;

	if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0)
		die("sched_getaffinity", errno);
	for (int c = 0; c < CPU_SETSIZE && seen < 2; c++)
		if (CPU_ISSET(c, &allowed))
			g_cpus[seen++] = c;
}

/* Pin the calling thread to the @nth CPU found by find_cpus. */
static void pin_self(int nth)
{
	cpu_set_t one;
	int r;

	if (g_cpus[nth] < 0)
		die("-A split needs two CPUs", EINVAL);
	CPU_ZERO(&one);
	CPU_SET(g_cpus[nth], &one);
	r = pthread_setaffinity_np(pthread_self(), sizeof(one), &one);
	if (r != 0)
		die("pthread_setaffinity_np", r);
}

static double cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

/* The same offset sequence for both paths. */
static uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1Dull;
}

static void die(const char *what, int err)
{
	fprintf(stderr, "bench-blk: %s: %s\n", what, strerror(err < 0 ? -err : err));
	exit(1);
}

/* A fully written image (no holes: O_DIRECT must hit the disk). */
static void ensure_image(const char *path, uint64_t size)
{
	struct stat st;
	char *buf;
	int fd;

	if (stat(path, &st) == 0 && (uint64_t)st.st_size == size &&
	    (uint64_t)st.st_blocks * 512 >= size)
		return;
	fprintf(stderr, "bench-blk: writing %s (%llu MiB)\n", path,
		(unsigned long long)(size >> 20));
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		die(path, errno);
	buf = malloc(1 << 20);
	if (!buf)
		die("malloc", ENOMEM);
	for (uint64_t off = 0; off < size; off += 1 << 20) {
		for (uint32_t i = 0; i < (1u << 20); i += 8)
			memcpy(buf + i, &off, 8);
		if (pwrite(fd, buf, 1 << 20, (off_t)off) != 1 << 20)
			die("pwrite", errno);
	}
	fsync(fd);
	close(fd);
	free(buf);
}

/* Read the whole file once so that buffered reads hit the page cache. */
static void preload(const char *path)
{
	char *buf = malloc(1 << 20);
	int fd = open(path, O_RDONLY);

	if (fd < 0 || !buf)
		die(path, fd < 0 ? errno : ENOMEM);
	while (read(fd, buf, 1 << 20) > 0)
		;
	close(fd);
	free(buf);
}

/* Run @step until warm-up + measurement time passed; @start (may be NULL)
 * runs when the measurement begins. */
typedef uint64_t (*step_fn)(void *ctx);

static void run_timed(step_fn step, void (*start)(void *ctx), void *ctx, const struct opts *o,
		      struct result *r)
{
	double end = now_s() + o->warm, t0, c0, m0;
	uint64_t n = 0;

	while (now_s() < end)
		step(ctx);
	if (start)
		start(ctx);
	t0 = now_s();
	c0 = cpu_s();
	m0 = machine_busy_s();
	end = t0 + o->secs;
	do {
		n += step(ctx);
	} while (now_s() < end);
	r->secs = now_s() - t0;
	r->cpu = cpu_s() - c0;
	r->machine_cpu = m0 < 0 ? -1 : machine_busy_s() - m0;
	r->ios = n;
}

#if VDI_HAVE_LIBURING

/* ---- native reference -------------------------------------------------- */

struct native {
	struct io_uring ring;
	const struct bcase *c;
	uint8_t *bufs;
	uint64_t nblocks, seed;
};

static void native_prep(struct native *nt, uint32_t slot)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&nt->ring);
	uint64_t off = (rng_next(&nt->seed) % nt->nblocks) * BS;

	if (nt->c->write)
		io_uring_prep_write(sqe, 0, nt->bufs + (size_t)slot * BS, BS, off);
	else
		io_uring_prep_read(sqe, 0, nt->bufs + (size_t)slot * BS, BS, off);
	sqe->flags |= IOSQE_FIXED_FILE;
	io_uring_sqe_set_data(sqe, (void *)(uintptr_t)slot);
}

static uint64_t native_step(void *ctx)
{
	struct native *nt = ctx;
	struct io_uring_cqe *cqe;
	unsigned int head, n = 0;
	int r;

	r = io_uring_submit_and_wait(&nt->ring, 1);
	if (r < 0)
		die("io_uring_submit_and_wait", r);
	io_uring_for_each_cqe(&nt->ring, head, cqe) {
		if (cqe->res != (int)BS)
			die("native I/O", cqe->res < 0 ? cqe->res : EIO);
		native_prep(nt, (uint32_t)(uintptr_t)io_uring_cqe_get_data(cqe));
		n++;
	}
	io_uring_cq_advance(&nt->ring, n);
	return n;
}

static void run_native(const struct bcase *c, const char *path, const struct opts *o,
		       struct result *res)
{
	struct native nt;
	int fd, r;

	memset(&nt, 0, sizeof(nt));
	nt.c = c;
	nt.nblocks = o->size / BS;
	nt.seed = 0x9E3779B97F4A7C15ull ^ c->qd;
	fd = open(path, O_RDWR | (c->direct ? O_DIRECT : 0));
	if (fd < 0)
		die(path, errno);
	r = io_uring_queue_init(c->qd, &nt.ring, 0);
	if (r < 0)
		die("io_uring_queue_init", r);
	r = io_uring_register_files(&nt.ring, &fd, 1);
	if (r < 0)
		die("io_uring_register_files", r);
	if (posix_memalign((void **)&nt.bufs, 4096, (size_t)c->qd * BS))
		die("posix_memalign", ENOMEM);
	memset(nt.bufs, 0x5a, (size_t)c->qd * BS);
	for (uint32_t i = 0; i < c->qd; i++)
		native_prep(&nt, i);
	run_timed(native_step, NULL, &nt, o, res);
	/* Drain what is still in flight before closing. */
	io_uring_queue_exit(&nt.ring);
	close(fd);
	free(nt.bufs);
}

/* ---- device path --------------------------------------------------------- */

/* One request's device-visible parts, in guest memory. */
struct req_hdr {
	struct virtio_blk_outhdr out;
	uint8_t status;
	uint8_t pad[15];
};

struct devpath {
	const struct bcase *c;
	const struct opts *o;
	uint8_t *guest;
	vdev_mem *mem;
	vdev_blk_backend *backend;
	vdev_blk *blk;
	vdev_irq *irq;
	vdev_mmio *mmio;
	vdev_drv_mmio *dm;
	void *dm_storage;
	vdev_drv *drv;
	vdev_drvq *dq;
	struct vdev_drv_transport_ops tops;
	int kick_efd, stop_efd, irq_efd;
	int stop; /* atomic: the device thread leaves its polling loop */
	pthread_t thread;
	uint64_t nblocks, seed;
	uint32_t inflight;
	uint32_t free_slots[MAX_QD];
	uint32_t nfree;
	/* counters (device_* written by the device thread) */
	uint64_t kicks, irq_waits, drv_spin_hits, device_wakeups, device_poll_hits;
	int dev_err;
};

static struct devpath *g_dp; /* the kick hook's context (one device per run) */

static uint32_t dm_read(void *ctx, uint32_t offset, uint32_t width)
{
	uint32_t v = 0;

	vdev_mmio_read(ctx, offset, &v, width);
	return v;
}

static void dm_write(void *ctx, uint32_t offset, uint32_t width, uint32_t value)
{
	vdev_mmio_write(ctx, offset, &value, width);
}

static const struct vdev_drv_mmio_io_ops dm_io = {
	.struct_size = sizeof(struct vdev_drv_mmio_io_ops),
	.read = dm_read,
	.write = dm_write,
};

/* The ioeventfd stand-in: a kick is an eventfd write, no register access. */
static void kick_via_eventfd(void *t, uint32_t queue)
{
	uint64_t one = 1;

	(void)t;
	(void)queue;
	g_dp->kicks++;
	if (write(g_dp->kick_efd, &one, sizeof(one)) != sizeof(one))
		die("kick write", errno);
}

static uint64_t drv_features(vdev_drv *drv, void *opaque, uint64_t offered)
{
	struct devpath *dp = opaque;
	uint64_t want = (1ull << VIRTIO_F_VERSION_1) |
			(dp->o->no_event_idx ? 0 : 1ull << VIRTIO_RING_F_EVENT_IDX) |
			(1ull << VIRTIO_BLK_F_BLK_SIZE) | (1ull << VIRTIO_BLK_F_SEG_MAX) |
			(1ull << VIRTIO_BLK_F_FLUSH);

	(void)drv;
	if (dp->o->packed)
		want |= 1ull << VIRTIO_F_RING_PACKED;
	if (dp->o->indirect)
		want |= 1ull << VIRTIO_RING_F_INDIRECT_DESC;
	return offered & want;
}

static int drv_pre_init(vdev_drv *drv, void *opaque)
{
	struct devpath *dp = opaque;

	return vdev_drv_queue_setup(drv, 0, 0, dp->o->indirect ? 4 : 0, &dp->dq);
}

/*
 * The device thread's polling phase: keep serving the queue and the backend
 * without sleeping until the budget passes with nothing found. The budget
 * restarts whenever work was found. Completions are looked for only while
 * the device has requests in the backend (vdev_queue_inflight): with cached
 * reads they all complete inside the submit, and the check is a syscall.
 */
static void device_poll(struct devpath *dp, vdev_device *dev, vdev_queue *vq, int cfd)
{
	uint64_t deadline = now_ns() + dp->o->dev_spin_ns;

	while (!__atomic_load_n(&dp->stop, __ATOMIC_ACQUIRE)) {
		int work = 0;

		if (vdev_queue_has_avail(vq) > 0) {
			vdev_device_queue_notify(dev, 0);
			work = 1;
		}
		/* The device re-enables kicks when it runs out of work; we
		 * are still looking, so ask the driver not to kick. (Without
		 * EVENT_IDX this sets NO_NOTIFY; with EVENT_IDX the library
		 * currently leaves avail_event where it is, so the driver
		 * still kicks once per batch: see doc/benchmarks.md.) */
		if (work)
			vdev_queue_set_notification(vq, 0);
		if (cfd >= 0 && vdev_queue_inflight(vq)) {
			struct pollfd p = {.fd = cfd, .events = POLLIN};

			if (poll(&p, 1, 0) == 1) {
				vdev_blk_process_completions(dp->blk, 0);
				work = 1;
			}
		} else if (cfd < 0) {
			vdev_blk_process_completions(dp->blk, 0);
		}
		if (work) {
			__atomic_fetch_add(&dp->device_poll_hits, 1, __ATOMIC_RELAXED);
			deadline = now_ns() + dp->o->dev_spin_ns;
		} else if (now_ns() >= deadline) {
			/* Going to sleep: kicks on, and a last look (a chain
			 * made available meanwhile would not kick). */
			if (vdev_queue_set_notification(vq, 1) > 0) {
				vdev_device_queue_notify(dev, 0);
				deadline = now_ns() + dp->o->dev_spin_ns;
				continue;
			}
			return;
		} else {
			cpu_relax();
		}
	}
}

static void *device_thread(void *arg)
{
	struct devpath *dp = arg;
	struct epoll_event ev[4];
	int ep = epoll_create1(EPOLL_CLOEXEC);
	int cfd = vdev_blk_completion_fd(dp->blk, 0);
	vdev_device *dev = vdev_blk_device(dp->blk);
	vdev_queue *vq = vdev_device_get_queue(dev, 0); /* live after DRIVER_OK */

	prctl(PR_SET_NAME, "bench-blk-dev"); /* tells the threads apart in perf */
	if (dp->o->affinity != AFF_OS)
		pin_self(dp->o->affinity == AFF_SPLIT ? 1 : 0);
	if (ep < 0 || !vq) {
		dp->dev_err = ep < 0 ? -errno : -ENODEV;
		if (ep >= 0)
			close(ep);
		return NULL;
	}
	ev[0].events = EPOLLIN;
	ev[0].data.u32 = 0;
	epoll_ctl(ep, EPOLL_CTL_ADD, dp->kick_efd, &ev[0]);
	ev[0].data.u32 = 1;
	epoll_ctl(ep, EPOLL_CTL_ADD, dp->stop_efd, &ev[0]);
	if (cfd >= 0) {
		ev[0].data.u32 = 2;
		epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &ev[0]);
	}
	for (;;) {
		int n = epoll_wait(ep, ev, 4, -1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			dp->dev_err = -errno;
			break;
		}
		__atomic_fetch_add(&dp->device_wakeups, 1, __ATOMIC_RELAXED);
		for (int i = 0; i < n; i++) {
			uint64_t v;

			switch (ev[i].data.u32) {
			case 0:
				if (read(dp->kick_efd, &v, sizeof(v)) == sizeof(v))
					vdev_device_queue_notify(dev, 0);
				break;
			case 1:
				close(ep);
				return NULL;
			default:
				vdev_blk_process_completions(dp->blk, 0);
				break;
			}
		}
		/* A synchronous backend completes within notify. */
		if (cfd < 0)
			vdev_blk_process_completions(dp->blk, 0);
		if (dp->o->dev_spin_ns)
			device_poll(dp, dev, vq, cfd);
	}
	close(ep);
	return NULL;
}

static void dev_add(struct devpath *dp, uint32_t slot)
{
	struct req_hdr *h = (struct req_hdr *)(dp->guest + ARENA_SIZE + (size_t)slot * 32);
	uint64_t hdr_gpa = GUEST_BASE + ARENA_SIZE + (uint64_t)slot * 32;
	uint64_t data_gpa = GUEST_BASE + 2 * ARENA_SIZE + (uint64_t)slot * BS;
	uint64_t addr[3] = {hdr_gpa, data_gpa, hdr_gpa + 16};
	uint32_t len[3] = {16, BS, 1};
	uint64_t off = (rng_next(&dp->seed) % dp->nblocks) * BS;
	int r;

	h->out.type = dp->c->write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN;
	h->out.ioprio = 0;
	h->out.sector = off / 512;
	h->status = 0xff;
	if (dp->c->write)
		r = vdev_drvq_add(dp->dq, addr, len, 2, 1, (void *)(uintptr_t)(slot + 1), 0);
	else
		r = vdev_drvq_add(dp->dq, addr, len, 1, 2, (void *)(uintptr_t)(slot + 1), 0);
	if (r < 0)
		die("vdev_drvq_add", r);
	dp->inflight++;
}

static uint32_t dev_drain(struct devpath *dp)
{
	void *tok;
	uint32_t len, n = 0;
	int r;

	while ((r = vdev_drvq_get_used(dp->dq, &tok, &len)) > 0) {
		uint32_t slot = (uint32_t)(uintptr_t)tok - 1;
		struct req_hdr *h = (struct req_hdr *)(dp->guest + ARENA_SIZE + (size_t)slot * 32);

		if (h->status != VIRTIO_BLK_S_OK)
			die("device I/O status", EIO);
		dp->free_slots[dp->nfree++] = slot;
		dp->inflight--;
		n++;
	}
	if (r < 0)
		die("vdev_drvq_get_used", r);
	return n;
}

/* Wait until at least one request came back; returns how many did. */
static uint32_t dev_wait(struct devpath *dp)
{
	uint32_t n;

	for (;;) {
		struct pollfd p = {.fd = dp->irq_efd, .events = POLLIN};
		uint64_t v;

		n = dev_drain(dp);
		if (n)
			return n;
		/* Poll the used ring (interrupts still off) before sleeping. */
		if (dp->o->drv_spin_ns) {
			uint64_t deadline = now_ns() + dp->o->drv_spin_ns;

			do {
				cpu_relax();
				n = dev_drain(dp);
				if (n) {
					dp->drv_spin_hits++;
					return n;
				}
			} while (now_ns() < deadline);
		}
		/* Out of work: ask for an interrupt, unless one is due already. */
		if (vdev_drvq_enable_interrupts(dp->dq, 1) > 0) {
			vdev_drvq_enable_interrupts(dp->dq, 0);
			continue;
		}
		dp->irq_waits++;
		if (poll(&p, 1, 5000) != 1)
			die("no interrupt within 5 s", dp->dev_err ? dp->dev_err : ETIMEDOUT);
		if (read(dp->irq_efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
			die("irq read", errno);
		vdev_drv_mmio_ack_interrupt(dp->dm);
		vdev_drvq_enable_interrupts(dp->dq, 0);
	}
}

static void dev_start(void *ctx)
{
	struct devpath *dp = ctx;

	dp->kicks = dp->irq_waits = dp->drv_spin_hits = 0;
	__atomic_store_n(&dp->device_wakeups, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&dp->device_poll_hits, 0, __ATOMIC_RELAXED);
}

static uint64_t dev_step(void *ctx)
{
	struct devpath *dp = ctx;

	while (dp->nfree)
		dev_add(dp, dp->free_slots[--dp->nfree]);
	vdev_drvq_kick(dp->dq);
	return dev_wait(dp);
}

static void run_device(const struct bcase *c, const char *path, const struct opts *o,
		       struct result *res)
{
	struct vdev_blk_file_config fc = VDEV_BLK_FILE_CONFIG_INIT;
	struct vdev_blk_config bc = VDEV_BLK_CONFIG_INIT;
	struct vdev_mmio_config mc = VDEV_MMIO_CONFIG_INIT;
	struct vdev_drv_config dc = VDEV_DRV_CONFIG_INIT;
	struct vdev_driver_ops dops = VDEV_DRIVER_OPS_INIT;
	struct devpath *dp = calloc(1, sizeof(*dp));
	uint64_t one = 1;
	uint32_t id;
	int r;

	if (!dp)
		die("calloc", ENOMEM);
	g_dp = dp;
	dp->c = c;
	dp->o = o;
	dp->nblocks = o->size / BS;
	dp->seed = 0x9E3779B97F4A7C15ull ^ c->qd;

	dp->guest = mmap(NULL, GUEST_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			 -1, 0);
	if (dp->guest == MAP_FAILED)
		die("mmap", errno);
	memset(dp->guest, 0, 2 * ARENA_SIZE + (size_t)MAX_QD * BS);
	if ((r = vdev_mem_new(&dp->mem)) < 0 ||
	    (r = vdev_mem_add_region(dp->mem, GUEST_BASE, GUEST_SIZE, dp->guest, 0)) < 0)
		die("guest memory", r);

	fc.path = path;
	fc.flags = c->direct ? VDEV_BLK_FILE_F_DIRECT : 0;
	fc.queue_depth = MAX_QD;
	if ((r = vdev_blk_backend_new_uring(&fc, &dp->backend)) < 0)
		die("vdev_blk_backend_new_uring", r);
	bc.queue_size = o->queue_size;
	if ((r = vdev_blk_new(&bc, dp->backend, &dp->blk)) < 0)
		die("vdev_blk_new", r);
	if ((r = vdev_irq_new_eventfd(1, VDEV_IRQ_F_SHARED, &dp->irq)) < 0)
		die("vdev_irq_new_eventfd", r);
	dp->irq_efd = vdev_irq_eventfd(dp->irq, VDEV_IRQ_QUEUE, 0);
	if ((r = vdev_device_set_memory(vdev_blk_device(dp->blk), dp->mem)) < 0)
		die("vdev_device_set_memory", r);
	mc.base = 0xd0000000ull;
	if ((r = vdev_mmio_new(&mc, vdev_blk_device(dp->blk), dp->irq, &dp->mmio)) < 0)
		die("vdev_mmio_new", r);

	dp->kick_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	dp->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (dp->kick_efd < 0 || dp->stop_efd < 0)
		die("eventfd", errno);

	dp->dm_storage = malloc(vdev_drv_mmio_storage_size());
	if (!dp->dm_storage)
		die("malloc", ENOMEM);
	if ((r = vdev_drv_mmio_init(dp->dm_storage, vdev_drv_mmio_storage_size(), &dm_io,
				    dp->mmio, &dp->dm)) < 0)
		die("vdev_drv_mmio_init", r);
	if ((r = vdev_drv_mmio_probe(dp->dm, &id)) < 0 || id != VIRTIO_ID_BLOCK)
		die("vdev_drv_mmio_probe", r < 0 ? r : ENODEV);
	dp->tops = *vdev_drv_mmio_transport();
	dp->tops.queue_notify = kick_via_eventfd;
	dops.negotiate_features = drv_features;
	dops.pre_device_initialization = drv_pre_init;
	dc.transport = &dp->tops;
	dc.transport_opaque = dp->dm;
	dc.driver = &dops;
	dc.driver_opaque = dp;
	dc.arena = dp->guest;
	dc.arena_gpa = GUEST_BASE;
	dc.arena_size = ARENA_SIZE;
	if ((r = vdev_drv_new(&dc, &dp->drv)) < 0)
		die("vdev_drv_new", r);
	if ((r = vdev_drv_start(dp->drv)) < 0)
		die("vdev_drv_start", r);

	for (uint32_t i = 0; i < c->qd; i++)
		dp->free_slots[dp->nfree++] = c->qd - 1 - i;
	vdev_drvq_enable_interrupts(dp->dq, 0);
	if ((r = pthread_create(&dp->thread, NULL, device_thread, dp)) != 0)
		die("pthread_create", r);

	run_timed(dev_step, dev_start, dp, o, res);

	/* Let the device finish what is in flight, then stop its thread. */
	while (dp->inflight)
		dev_wait(dp);
	__atomic_store_n(&dp->stop, 1, __ATOMIC_RELEASE);
	if (write(dp->stop_efd, &one, sizeof(one)) != sizeof(one))
		die("stop", errno);
	pthread_join(dp->thread, NULL);
	if (res->ios)
		fprintf(stderr,
			"bench-blk: %s: kicks/io=%.3f driver-sleeps/io=%.3f driver-poll-hits/io=%.3f "
			"device-wakeups/io=%.3f device-poll-hits/io=%.3f\n",
			c->name, (double)dp->kicks / (double)res->ios,
			(double)dp->irq_waits / (double)res->ios,
			(double)dp->drv_spin_hits / (double)res->ios,
			(double)dp->device_wakeups / (double)res->ios,
			(double)dp->device_poll_hits / (double)res->ios);

	vdev_drv_reset(dp->drv);
	vdev_drv_free(dp->drv);
	vdev_mmio_free(dp->mmio);
	vdev_blk_free(dp->blk);
	vdev_blk_backend_free(dp->backend);
	vdev_irq_free(dp->irq);
	vdev_mem_free(dp->mem);
	munmap(dp->guest, GUEST_SIZE);
	close(dp->kick_efd);
	close(dp->stop_efd);
	free(dp->dm_storage);
	free(dp);
	g_dp = NULL;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: bench-blk [-t secs] [-w warmup-secs] [-r runs] [-S spin-us]\n"
		"                 [-G driver-spin-us] [-s size-MiB] [-m cached-file]\n"
		"                 [-d disk-file] [-q queue-size] [-P (packed ring)]\n"
		"                 [-I (indirect descriptors)] [-E (no EVENT_IDX)] [-k (keep files)]\n"
		"                 [-A os|same|split] [case]\n"
		"  -r  runs per case, medians reported (3)\n"
		"  -S  polling budget of the device thread (microseconds, 50; 0: sleep\n"
		"      as soon as idle); also the driver's when -S is given and -G not\n"
		"  -G  polling budget of the driver thread (microseconds, 200)\n"
		"  -A  thread placement: os (scheduler's choice), same (driver, device\n"
		"      and native loop on the first allowed CPU), split (device thread\n"
		"      on the second one)\n"
		"cases:");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		fprintf(stderr, " %s", cases[i].name);
	fprintf(stderr, "\n");
}

/* CPUs busy with anything else than us during a measurement (device/native). */
static double others(const struct result *r)
{
	double v = r->machine_cpu < 0 ? 0 : (r->machine_cpu - r->cpu) / r->secs;

	return v < 0 ? 0 : v;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double *v, uint32_t n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

#define MAX_REPS 99u

int main(int argc, char **argv)
{
	struct opts o = {
		.secs = 3.0,
		.warm = 1.0,
		.dev_spin_ns = 50000,
		.reps = 3,
		.shm_path = "/var/tmp/vdev-bench-blk-cached.img",
		.disk_path = "/var/tmp/vdev-bench-blk.img",
		.size = 1ull << 30,
		.queue_size = 512,
	};
	double drv_spin_us = -1;
	int spin_given = 0;
	int opt, ran = 0;

	while ((opt = getopt(argc, argv, "t:w:r:S:G:A:s:m:d:q:PIEkh")) != -1) {
		switch (opt) {
		case 't': o.secs = atof(optarg); break;
		case 'w': o.warm = atof(optarg); break;
		case 'r': o.reps = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'S':
			o.dev_spin_ns = (uint64_t)(atof(optarg) * 1000.0);
			spin_given = 1;
			break;
		case 'G': drv_spin_us = atof(optarg); break;
		case 's': o.size = strtoull(optarg, NULL, 0) << 20; break;
		case 'm': o.shm_path = optarg; break;
		case 'd': o.disk_path = optarg; break;
		case 'q': o.queue_size = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'P': o.packed = 1; break;
		case 'I': o.indirect = 1; break;
		case 'E': o.no_event_idx = 1; break;
		case 'A':
			o.affinity = -1;
			for (int a = 0; a < 3; a++)
				if (strcmp(optarg, aff_names[a]) == 0)
					o.affinity = a;
			if (o.affinity < 0) {
				usage();
				return 2;
			}
			break;
		case 'k': o.keep = 1; break;
		default: usage(); return 2;
		}
	}
	if (drv_spin_us >= 0)
		o.drv_spin_ns = (uint64_t)(drv_spin_us * 1000.0);
	else
		o.drv_spin_ns = spin_given ? o.dev_spin_ns : 200000;
	if (optind < argc)
		o.only = argv[optind];
	if (o.secs <= 0 || o.warm < 0 || o.size < (1u << 20) || o.reps < 1 || o.reps > MAX_REPS ||
	    o.dev_spin_ns > 1000000000ull || o.drv_spin_ns > 1000000000ull) {
		usage();
		return 2;
	}
	{
		struct io_uring ring;
		int r = io_uring_queue_init(4, &ring, 0);

		if (r < 0) {
			fprintf(stderr, "bench-blk: SKIP: io_uring unavailable: %s\n", strerror(-r));
			return 77;
		}
		io_uring_queue_exit(&ring);
	}

	if (o.affinity != AFF_OS) {
		find_cpus();
		pin_self(0);
	}
	printf("bench-blk: mode=%s device_spin_us=%.1f driver_spin_us=%.1f affinity=%s runs=%u "
	       "secs=%.1f warmup=%.1f ring=%s%s%s\n",
	       o.dev_spin_ns || o.drv_spin_ns ? "poll" : "event", (double)o.dev_spin_ns / 1000.0,
	       (double)o.drv_spin_ns / 1000.0, aff_names[o.affinity], o.reps, o.secs, o.warm,
	       o.packed ? "packed" : "split", o.indirect ? "+indirect" : "",
	       o.no_event_idx ? "+no-event-idx" : "+event-idx");
	fflush(stdout);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct bcase *c = &cases[i];
		const char *path = c->direct ? o.disk_path : o.shm_path;
		double iops[MAX_REPS], niops[MAX_REPS], cpu[MAX_REPS], ncpu[MAX_REPS];
		double mi, mn;

		if (o.only && strcmp(o.only, c->name) != 0)
			continue;
		ensure_image(path, o.size);
		if (!c->direct)
			preload(path);
		for (uint32_t k = 0; k < o.reps; k++) {
			struct result dev, nat;

			/* Alternate the order so that a drift of the machine
			 * does not always favour the same path. */
			if (k % 2 == 0) {
				run_native(c, path, &o, &nat);
				run_device(c, path, &o, &dev);
			} else {
				run_device(c, path, &o, &dev);
				run_native(c, path, &o, &nat);
			}
			if (!dev.ios || !nat.ios)
				die(c->name, EIO);
			iops[k] = (double)dev.ios / dev.secs;
			niops[k] = (double)nat.ios / nat.secs;
			cpu[k] = dev.cpu / (double)dev.ios;
			ncpu[k] = nat.cpu / (double)nat.ios;
			fprintf(stderr,
				"bench-blk: %s: run %u/%u: iops=%.0f native_iops=%.0f ratio=%.3f "
				"cpu_per_io_ratio=%.3f cpus=%.2f/%.2f others=%.2f/%.2f\n",
				c->name, k + 1, o.reps, iops[k], niops[k], iops[k] / niops[k],
				cpu[k] / ncpu[k], dev.cpu / dev.secs, nat.cpu / nat.secs,
				others(&dev), others(&nat));
		}
		mi = median(iops, o.reps);
		mn = median(niops, o.reps);
		printf("BENCH blk %s iops=%.0f native_iops=%.0f ratio=%.3f cpu_per_io_ratio=%.3f\n",
		       c->name, mi, mn, mi / mn, median(cpu, o.reps) / median(ncpu, o.reps));
		fflush(stdout);
		ran++;
	}
	if (!o.keep && strncmp(o.shm_path, "/dev/shm/", 9) == 0)
		unlink(o.shm_path); /* tmpfs pages are RAM; disk images are reused */
	if (!ran) {
		usage();
		return 2;
	}
	return 0;
}

#else /* !VDI_HAVE_LIBURING */

int main(void)
{
	fprintf(stderr, "bench-blk: SKIP: built without liburing\n");
	return 77;
}

#endif
