/* SPDX-License-Identifier: MIT */
/*
 * vhost-user-blk: a vhost-user block device daemon built on libvirtio-dev.
 *
 * One disk image served to a vhost-user front-end (QEMU's
 * vhost-user-blk-pci, cloud-hypervisor, ...) over a unix socket: the
 * library's virtio-blk model (vdev_blk) over an io_uring, file or
 * copy-on-write backend, behind the library's vhost-user transport.
 *
 * Everything runs on one thread around one epoll set: the transport's fd
 * (connections, messages, kicks), each queue's completion fd (io_uring
 * completions), and a signalfd for SIGINT/SIGTERM (clean shutdown after
 * in-flight I/O) and SIGUSR1 (write the statistics file). A front-end that
 * goes away only ends its connection: the daemon waits for the next one.
 *
 * Exit status: 0 after SIGINT/SIGTERM, 1 on errors, 2 on bad usage.
 * See doc/vhost-user-blk.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <linux/io_uring.h>

#include <virtio-dev/virtio-dev.h>

#define PROG "vhost-user-blk"
#define EXIT_USAGE 2
#define MAX_POLL_US 1000000u
#define SEG_QUEUE 128u /* queue size seg_max is sized for (QEMU's default) */

/* epoll tags: the queue index for completion fds, these two above them. */
#define TAG_VU (VDEV_BLK_MAX_QUEUES + 0u)
#define TAG_SIGNAL (VDEV_BLK_MAX_QUEUES + 1u)

enum backend_kind { BACKEND_AUTO, BACKEND_URING, BACKEND_FILE, BACKEND_COW };

static const char *const backend_names[] = {
	[BACKEND_AUTO] = "auto",
	[BACKEND_URING] = "io_uring",
	[BACKEND_FILE] = "file",
	[BACKEND_COW] = "cow",
};

struct options {
	const char *socket_path;
	const char *image;
	const char *stats_path;
	enum backend_kind backend;
	int readonly;
	int verbose;
	uint32_t queues;
	uint32_t queue_size;
	uint32_t poll_us;
};

struct daemon {
	struct options opt;
	vdev_blk_backend *backend;
	vdev_blk *blk;
	vdev_vhost_user *vu;
	int epfd;
	int sigfd;
	int stop;
};

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* One line on stderr, prefixed with the program name. */
static void say(const char *fmt, ...)
{
	va_list ap;

	fputs(PROG ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void log_sink(void *opaque, int level, const char *msg)
{
	(void)opaque;
	fprintf(stderr, PROG ": libvirtio-dev[%d]: %s\n", level, msg);
}

/* ---- options ---------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: " PROG " --socket PATH --image FILE [--readonly] [--queues N]\n"
		"       [--backend io_uring|file] [--cow] [--stats FILE] [--queue-size N]\n"
		"       [--poll-us N] [-v]\n"
		"  --socket PATH      listen for the vhost-user front-end on this unix socket\n"
		"  --image FILE       disk image: a regular file or a block device\n"
		"  --readonly         offer a read-only disk (VIRTIO_BLK_F_RO)\n"
		"  --queues N         virtqueues, 1..%u (default 1)\n"
		"  --queue-size N     largest queue size, a power of two up to %u (default 256)\n"
		"  --backend KIND     io_uring (default when the kernel has it) or file\n"
		"  --cow              copy-on-write: the image is opened read-only and\n"
		"                     writes stay in memory until exit\n"
		"  --stats FILE       write counters to FILE on SIGUSR1 and at exit\n"
		"  --poll-us N        busy-poll for N microseconds after each event before\n"
		"                     sleeping (default 0: never spin)\n"
		"  -v, --verbose      print all of the library's log messages (connections,\n"
		"                     each vhost-user message), not only warnings and errors\n"
		"Exit status: 0 after SIGINT/SIGTERM, 1 on errors, 2 on bad usage.\n",
		VDEV_BLK_MAX_QUEUES, VDEV_QUEUE_MAX_SIZE);
}

static int parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
	unsigned long long v;
	char *end;

	if (!s || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

/*
 * getopt_long returned '?' for @arg (argv[optind - 1]). optopt tells the
 * cases apart: one of our long options given a value it does not take
 * ("--readonly=1": its val), a short option letter that is not ours (then @arg
 * may be the previous argument: in "-xv" optind has not moved past it yet),
 * or 0 for an unknown or ambiguous long option.
 */
static void bad_option(const char *arg, const struct option *longopts)
{
	const char *eq = strchr(arg, '=');

	for (; optopt && eq && !strncmp(arg, "--", 2) && longopts->name; longopts++) {
		if (longopts->val == optopt) {
			say("option %.*s takes no value", (int)(eq - arg), arg);
			return;
		}
	}
	if (optopt > 0 && optopt < 256)
		say("unknown option '-%c' (try --help)", optopt);
	else
		say("unknown option '%s' (try --help)", arg);
}

/* Returns 0, 1 after --help, -1 on bad usage (after saying why). */
static int parse_args(int argc, char **argv, struct options *opt)
{
	enum { O_SOCKET = 256, O_IMAGE, O_READONLY, O_QUEUES, O_BACKEND, O_COW, O_STATS,
	       O_QUEUE_SIZE, O_POLL_US };
	static const struct option longopts[] = {
		{"socket", required_argument, NULL, O_SOCKET},
		{"image", required_argument, NULL, O_IMAGE},
		{"readonly", no_argument, NULL, O_READONLY},
		{"queues", required_argument, NULL, O_QUEUES},
		{"backend", required_argument, NULL, O_BACKEND},
		{"cow", no_argument, NULL, O_COW},
		{"stats", required_argument, NULL, O_STATS},
		{"queue-size", required_argument, NULL, O_QUEUE_SIZE},
		{"poll-us", required_argument, NULL, O_POLL_US},
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct sockaddr_un sun;
	int c, cow = 0;

	memset(opt, 0, sizeof(*opt));
	opt->queues = 1;
	opt->queue_size = 256;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":vh", longopts, NULL)) != -1) {
		switch (c) {
		case O_SOCKET:
			opt->socket_path = optarg;
			break;
		case O_IMAGE:
			opt->image = optarg;
			break;
		case O_READONLY:
			opt->readonly = 1;
			break;
		case O_QUEUES:
			if (parse_u32(optarg, 1, VDEV_BLK_MAX_QUEUES, &opt->queues)) {
				say("--queues must be a number from 1 to %u, not '%s'",
				    VDEV_BLK_MAX_QUEUES, optarg);
				return -1;
			}
			break;
		case O_BACKEND:
			if (!strcmp(optarg, "io_uring")) {
				opt->backend = BACKEND_URING;
			} else if (!strcmp(optarg, "file")) {
				opt->backend = BACKEND_FILE;
			} else {
				say("--backend takes io_uring or file, not '%s'", optarg);
				return -1;
			}
			break;
		case O_COW:
			cow = 1;
			break;
		case O_STATS:
			opt->stats_path = optarg;
			break;
		case O_QUEUE_SIZE:
			if (parse_u32(optarg, 2, VDEV_QUEUE_MAX_SIZE, &opt->queue_size) ||
			    (opt->queue_size & (opt->queue_size - 1))) {
				say("--queue-size must be a power of two from 2 to %u, not '%s'",
				    VDEV_QUEUE_MAX_SIZE, optarg);
				return -1;
			}
			break;
		case O_POLL_US:
			if (parse_u32(optarg, 0, MAX_POLL_US, &opt->poll_us)) {
				say("--poll-us must be a number from 0 to %u, not '%s'",
				    MAX_POLL_US, optarg);
				return -1;
			}
			break;
		case 'v':
			opt->verbose = 1;
			break;
		case 'h':
			usage(stdout);
			return 1;
		case ':':
			say("option %s needs a value", argv[optind - 1]);
			return -1;
		default:
			bad_option(argv[optind - 1], longopts);
			return -1;
		}
	}
	if (optind < argc) {
		say("unexpected argument '%s' (try --help)", argv[optind]);
		return -1;
	}
	if (!opt->socket_path || !opt->image) {
		say("--socket PATH and --image FILE are required (try --help)");
		return -1;
	}
	if (!opt->image[0] || (opt->stats_path && !opt->stats_path[0])) {
		say("--%s FILE must not be empty", opt->image[0] ? "stats" : "image");
		return -1;
	}
	if (!opt->socket_path[0] || strlen(opt->socket_path) >= sizeof(sun.sun_path)) {
		say("--socket path must be 1 to %zu bytes long", sizeof(sun.sun_path) - 1);
		return -1;
	}
	if (cow && opt->backend != BACKEND_AUTO) {
		say("--cow is its own backend; do not combine it with --backend");
		return -1;
	}
	if (cow)
		opt->backend = BACKEND_COW;
	return 0;
}

/* ---- the disk --------------------------------------------------------- */

/* Whether this kernel lets us create an io_uring (it may be compiled out
 * or disabled by sysctl or seccomp). */
static int have_io_uring(void)
{
	struct io_uring_params p;
	long fd;

	memset(&p, 0, sizeof(p));
	fd = syscall(__NR_io_uring_setup, 2, &p);
	if (fd < 0)
		return 0;
	close((int)fd);
	return 1;
}

static int too_small(const char *image)
{
	say("image %s is smaller than one 512-byte sector", image);
	return -1;
}

static int check_image(const struct options *opt)
{
	struct stat st;

	if (stat(opt->image, &st) < 0) {
		say("image %s: %s", opt->image, strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		say("image %s is not a regular file or a block device", opt->image);
		return -1;
	}
	/* A block device's size is checked once open (the backend asks it). */
	if (S_ISREG(st.st_mode) && st.st_size < 512)
		return too_small(opt->image);
	return 0;
}

static int open_backend(struct daemon *d)
{
	struct options *opt = &d->opt;
	int r;

	if (opt->backend == BACKEND_COW) {
		struct vdev_blk_cow_config cc = VDEV_BLK_COW_CONFIG_INIT;

		cc.base_path = opt->image;
		r = vdev_blk_backend_new_cow(&cc, &d->backend);
	} else {
		struct vdev_blk_file_config fc = VDEV_BLK_FILE_CONFIG_INIT;

		fc.path = opt->image;
		fc.flags = opt->readonly ? VDEV_BLK_FILE_F_READONLY : 0;
		r = -EOPNOTSUPP;
		if (opt->backend != BACKEND_FILE && have_io_uring())
			r = vdev_blk_backend_new_uring(&fc, &d->backend);
		if (r == -EOPNOTSUPP && opt->backend == BACKEND_URING) {
			say("--backend io_uring: io_uring is not available (kernel or library "
			    "without it)");
			return -1;
		}
		if (r == -EOPNOTSUPP) {
			opt->backend = BACKEND_FILE;
			r = vdev_blk_backend_new_file(&fc, &d->backend);
		} else {
			opt->backend = BACKEND_URING;
		}
	}
	if (r < 0) {
		say("cannot open image %s: %s%s", opt->image, strerror(-r),
		    r == -EACCES && !opt->readonly && opt->backend != BACKEND_COW ?
			    " (try --readonly or --cow)" : "");
		return -1;
	}
	if (vdev_blk_backend_size(d->backend) == 0)
		return too_small(opt->image);
	return 0;
}

static int create_device(struct daemon *d)
{
	struct vdev_blk_config bc = VDEV_BLK_CONFIG_INIT;
	int r;

	bc.num_queues = d->opt.queues;
	bc.queue_size = d->opt.queue_size;
	/*
	 * The front-end picks its own queue size (QEMU's default is 128) after
	 * the driver has read seg_max, and Linux then builds indirect tables of
	 * up to seg_max + 2 descriptors, which must fit in that queue. So
	 * offer segments for a queue of 128, as qemu-storage-daemon does, or
	 * for --queue-size when it is smaller.
	 */
	bc.seg_max = (d->opt.queue_size < SEG_QUEUE ? d->opt.queue_size : SEG_QUEUE) - 2;
	bc.flags = d->opt.readonly ? VDEV_BLK_F_READONLY : 0;
	memcpy(bc.serial, "vdev-vhost-user-blk", 19);
	r = vdev_blk_new(&bc, d->backend, &d->blk);
	if (r < 0)
		say("cannot create the virtio-blk device: %s", strerror(-r));
	return r;
}

/* ---- statistics ------------------------------------------------------- */

/* Can we create files next to the statistics file, and rename one over it?
 * Checked at start so a typo fails now rather than at the first SIGUSR1. */
static int check_stats_path(const char *path)
{
	struct stat st;
	char tmp[4096];
	int fd;

	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
		say("cannot write the statistics file %s: %s", path, strerror(EISDIR));
		return -1;
	}
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp)) {
		say("--stats path too long");
		return -1;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		say("cannot write the statistics file %s: %s", tmp, strerror(errno));
		return -1;
	}
	close(fd);
	unlink(tmp);
	return 0;
}

/* One key=value line per counter (doc/vhost-user-blk.md lists them). */
static int print_counters(FILE *f, struct daemon *d)
{
	struct vdev_blk_stats s = VDEV_BLK_STATS_INIT;
	struct vdev_blk_backend_stats b = VDEV_BLK_BACKEND_STATS_INIT;
	struct vdev_vhost_user_stats v = VDEV_VHOST_USER_STATS_INIT;

	if (vdev_blk_get_stats(d->blk, &s) < 0 || vdev_blk_backend_get_stats(d->backend, &b) < 0 ||
	    vdev_vhost_user_get_stats(d->vu, &v) < 0)
		return -1;

	const struct {
		const char *key;
		uint64_t val;
	} kv[] = {
		{"requests", s.requests}, {"reads", s.reads}, {"writes", s.writes},
		{"flushes", s.flushes}, {"discards", s.discards}, {"write_zeroes", s.write_zeroes},
		{"get_ids", s.get_ids}, {"ioerr", s.ioerr}, {"unsupp", s.unsupp},
		{"malformed", s.malformed}, {"bytes_read", s.bytes_read},
		{"bytes_written", s.bytes_written},
		{"backend_completed", b.completed}, {"backend_errors", b.errors},
		{"backend_reads_ok", b.reads_ok}, {"backend_writes_ok", b.writes_ok},
		{"backend_flushes_ok", b.flushes_ok}, {"backend_discards_ok", b.discards_ok},
		{"backend_write_zeroes_ok", b.write_zeroes_ok}, {"backend_bytes_read", b.bytes_read},
		{"backend_bytes_written", b.bytes_written},
		{"vu_connected", (uint64_t)vdev_vhost_user_connected(d->vu)},
		{"vu_connections", v.connections}, {"vu_messages", v.messages},
		{"vu_bad_messages", v.bad_messages}, {"vu_kicks", v.kicks}, {"vu_calls", v.calls},
		{"vu_mapped_regions", v.mapped_regions},
	};

	for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++)
		fprintf(f, "%s=%" PRIu64 "\n", kv[i].key, kv[i].val);
	return 0;
}

/* Write the counters to FILE.tmp, then rename it over FILE, so a reader
 * never sees half a file. */
static void write_stats(struct daemon *d)
{
	const char *path = d->opt.stats_path;
	char tmp[4096];
	FILE *f;
	int bad;

	if (!path)
		return;
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "we");
	if (!f) {
		say("cannot write the statistics file %s: %s", tmp, strerror(errno));
		return;
	}
	bad = print_counters(f, d) < 0 || ferror(f);
	if (fclose(f) != 0 || bad) {
		say("cannot write the statistics file %s", tmp);
		unlink(tmp);
		return;
	}
	if (rename(tmp, path) < 0) {
		say("cannot rename %s to %s: %s", tmp, path, strerror(errno));
		unlink(tmp);
	}
}

/* ---- event loop ------------------------------------------------------- */

static int epoll_add(int epfd, int fd, uint32_t tag)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.u32 = tag};

	if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		say("epoll_ctl: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* SIGINT/SIGTERM/SIGUSR1 arrive through a signalfd; SIGPIPE is ignored (a
 * front-end that vanished is seen as a closed connection, not a signal). */
static int setup_signals(struct daemon *d)
{
	sigset_t set;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGUSR1);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0) {
		say("sigprocmask: %s", strerror(errno));
		return -1;
	}
	d->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (d->sigfd < 0) {
		say("signalfd: %s", strerror(errno));
		return -1;
	}
	return 0;
}

static void handle_signals(struct daemon *d)
{
	struct signalfd_siginfo si;

	while (read(d->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGUSR1) {
			write_stats(d);
		} else {
			if (d->opt.verbose)
				say("signal %u: shutting down", si.ssi_signo);
			d->stop = 1;
		}
	}
}

static int setup_loop(struct daemon *d)
{
	uint32_t q;

	d->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (d->epfd < 0) {
		say("epoll_create1: %s", strerror(errno));
		return -1;
	}
	if (epoll_add(d->epfd, d->sigfd, TAG_SIGNAL) < 0 ||
	    epoll_add(d->epfd, vdev_vhost_user_fd(d->vu), TAG_VU) < 0)
		return -1;
	/* Stable for the device's lifetime: registered once, also while no
	 * front-end is connected. */
	for (q = 0; q < d->opt.queues; q++) {
		int fd = vdev_blk_completion_fd(d->blk, q);

		if (fd < 0) {
			say("vdev_blk_completion_fd(%u): %s", q, strerror(-fd));
			return -1;
		}
		if (epoll_add(d->epfd, fd, q) < 0)
			return -1;
	}
	return 0;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Handle one batch of ready events. Returns how many, or -1 on a fatal error. */
static int dispatch(struct daemon *d, int timeout_ms)
{
	struct epoll_event ev[VDEV_BLK_MAX_QUEUES + 2];
	int n, i, r;

	n = epoll_wait(d->epfd, ev, (int)(sizeof(ev) / sizeof(ev[0])), timeout_ms);
	if (n < 0) {
		if (errno == EINTR)
			return 0;
		say("epoll_wait: %s", strerror(errno));
		return -1;
	}
	for (i = 0; i < n; i++) {
		uint32_t tag = ev[i].data.u32;

		if (tag == TAG_SIGNAL) {
			handle_signals(d);
		} else if (tag == TAG_VU) {
			r = vdev_vhost_user_process(d->vu);
			if (r < 0) {
				say("vhost-user: %s", strerror(-r));
				return -1;
			}
		} else {
			/* Negative only for a queue that is not running (the
			 * front-end stopped it meanwhile): nothing to complete. */
			(void)vdev_blk_process_completions(d->blk, tag);
		}
	}
	return n;
}

/*
 * Sleep in epoll_wait until something happens. With --poll-us, keep asking
 * without sleeping for that long after the last event, which saves the
 * wake-up latency at low queue depth at the price of a busy core.
 */
static int run(struct daemon *d)
{
	uint64_t poll_ns = (uint64_t)d->opt.poll_us * 1000u;
	uint64_t last = 0;

	while (!d->stop) {
		int spin = poll_ns && now_ns() - last < poll_ns;
		int n = dispatch(d, spin ? 0 : -1);

		if (n < 0)
			return -1;
		if (n > 0 && poll_ns)
			last = now_ns();
	}
	return 0;
}

static void teardown(struct daemon *d)
{
	/* Free order: the transport (resets the device, waiting for its
	 * in-flight I/O, and removes the socket), the device, the backend. */
	vdev_vhost_user_free(d->vu);
	vdev_blk_free(d->blk);
	vdev_blk_backend_free(d->backend);
	if (d->epfd >= 0)
		close(d->epfd);
	if (d->sigfd >= 0)
		close(d->sigfd);
}

int main(int argc, char **argv)
{
	struct vdev_vhost_user_config vc = VDEV_VHOST_USER_CONFIG_INIT;
	struct daemon d;
	int r, status = 1;

	memset(&d, 0, sizeof(d));
	d.epfd = -1;
	d.sigfd = -1;
	r = parse_args(argc, argv, &d.opt);
	if (r)
		return r > 0 ? 0 : EXIT_USAGE;
	vdev_log_set(log_sink, NULL, d.opt.verbose ? VDEV_LOG_DEBUG : VDEV_LOG_WARNING);

	if (check_image(&d.opt) < 0 || (d.opt.stats_path && check_stats_path(d.opt.stats_path)) ||
	    open_backend(&d) < 0 || create_device(&d) < 0 || setup_signals(&d) < 0)
		goto out;

	vc.socket_path = d.opt.socket_path;
	r = vdev_vhost_user_new(&vc, vdev_blk_device(d.blk), &d.vu);
	if (r == -EADDRINUSE) {
		struct stat st;

		if (lstat(d.opt.socket_path, &st) == 0 && !S_ISSOCK(st.st_mode))
			say("cannot listen on %s: a file that is not a socket is in the way",
			    d.opt.socket_path);
		else
			say("socket %s is in use by another server", d.opt.socket_path);
		goto out;
	} else if (r < 0) {
		say("cannot listen on %s: %s", d.opt.socket_path, strerror(-r));
		goto out;
	}
	if (setup_loop(&d) < 0)
		goto out;

	printf(PROG ": listening on %s (image %s, %" PRIu64 " bytes, backend %s, queues %u%s)\n",
	       d.opt.socket_path, d.opt.image, vdev_blk_backend_size(d.backend),
	       backend_names[d.opt.backend], d.opt.queues, d.opt.readonly ? ", readonly" : "");
	fflush(stdout);

	r = run(&d);
	/* Close the connection now (the device reset waits for in-flight
	 * I/O), so the counters written below are final. */
	(void)vdev_vhost_user_disconnect(d.vu);
	write_stats(&d);
	status = r < 0 ? 1 : 0;
out:
	teardown(&d);
	return status;
}
