/* SPDX-License-Identifier: MIT */
/*
 * The vhost-user back-end driven through the real protocol by a front-end
 * written here: messages over a socketpair (or the listening socket), guest
 * RAM in a memfd that both sides map, eventfds for kicks and calls.
 *
 * The "guest" is the library's driver side (vdev_drv) over a transport whose
 * register accesses become vhost-user messages, as QEMU turns a guest's
 * virtio-pci accesses into them: FEATURES_OK sends SET_FEATURES, a queue
 * setup sends SET_VRING_NUM/BASE/ADDR/CALL/KICK/ENABLE, a notify writes the
 * kick eventfd. The device is a vdev_blk over a memory backend (or the
 * test's own backend that holds requests, for in-flight tracking), or a
 * small "echo" model without per-queue reset.
 *
 * Single-threaded: after each message the test runs
 * vdev_vhost_user_process() until nothing is pending, then reads the reply.
 * Hostile messages each close the connection: the test checks that, that
 * every fd of the connection is gone (/proc/self/fd), and that a new
 * connection works.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <linux/vhost_types.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include <virtio-dev/virtio-dev.h>
#include <virtio-dev/blk.h>
#include <virtio-dev/vhost-user.h>

#define BIT(n) (1ull << (n))

/* Guest RAM: one memfd mapped at GPA_BASE. */
#define GPA_BASE 0x100000ull
#define MEM_SIZE (4u << 20)
#define ARENA_SIZE (1u << 20)                    /* rings, at GPA_BASE */
#define SCRATCH_GPA(q) (GPA_BASE + ARENA_SIZE + (uint64_t)(q) * 0x1000u) /* hdr, status */
#define DATA_GPA(q) (GPA_BASE + (2u << 20) + (uint64_t)(q) * 0x40000u)
#define DISK_SIZE (1u << 20)
#define NQ 2u
#define QSIZE 64u

/* The protocol, as a front-end spells it. */
enum {
	GET_FEATURES = 1, SET_FEATURES = 2, SET_OWNER = 3, RESET_OWNER = 4, SET_MEM_TABLE = 5,
	SET_LOG_BASE = 6, SET_LOG_FD = 7, SET_VRING_NUM = 8, SET_VRING_ADDR = 9,
	SET_VRING_BASE = 10, GET_VRING_BASE = 11, SET_VRING_KICK = 12, SET_VRING_CALL = 13,
	SET_VRING_ERR = 14, GET_PROTOCOL_FEATURES = 15, SET_PROTOCOL_FEATURES = 16,
	GET_QUEUE_NUM = 17, SET_VRING_ENABLE = 18, IOTLB_MSG = 22, GET_CONFIG = 24,
	SET_CONFIG = 25, GET_INFLIGHT_FD = 31, SET_INFLIGHT_FD = 32, RESET_DEVICE = 34,
	GET_MAX_MEM_SLOTS = 36, ADD_MEM_REG = 37, REM_MEM_REG = 38, SET_STATUS = 39,
	GET_STATUS = 40,
};
#define F_VERSION 0x1u
#define F_REPLY 0x4u
#define F_NEED_REPLY 0x8u
#define F_PROTOCOL_FEATURES 30
#define NOFD 0x100u

#define P_MQ 0
#define P_LOG_SHMFD 1
#define P_RARP 2
#define P_REPLY_ACK 3
#define P_CONFIG 9
#define P_INFLIGHT 12
#define P_RESET_DEVICE 13
#define P_MEM_SLOTS 15
#define P_STATUS 16
#define P_ALL                                                                                     \
	(BIT(P_MQ) | BIT(P_LOG_SHMFD) | BIT(P_REPLY_ACK) | BIT(P_CONFIG) | BIT(P_INFLIGHT) |       \
	 BIT(P_RESET_DEVICE) | BIT(P_MEM_SLOTS) | BIT(P_STATUS))

struct region {
	uint64_t gpa, size, uva, offset;
};

struct mem_table {
	uint32_t n, pad;
	struct region r[9];
};

struct mem_reg {
	uint64_t pad;
	struct region r;
};

struct log_desc {
	uint64_t size, offset;
};

struct inflight_desc {
	uint64_t mmap_size, mmap_offset;
	uint16_t num_queues, queue_size;
	uint32_t pad;
};

struct config_msg {
	uint32_t offset, size, flags;
	uint8_t data[256];
};

/* ------------------------------------------------------------------------ */
/* A backend that holds reads of one sector until told (in-flight tests). */

struct hold {
	uint8_t disk[DISK_SIZE];
	uint64_t hold_sector;  /* reads of this sector wait ... */
	int holding;           /* ... while this is set */
	int cancel;            /* reap hands back held ios as failed */
	int release;           /* atomic: reap executes held ios (another thread sets it) */
	struct vdev_blk_io *held[8];
	int nheld;
	struct vdev_blk_io *done[256];
	int ndone;
};

static uint64_t hold_size(void *o)
{
	(void)o;
	return DISK_SIZE;
}

static int hold_open(void *o, uint32_t q, void **ctx)
{
	(void)q;
	*ctx = o;
	return 0;
}

static void hold_close(void *o, void *ctx)
{
	struct hold *h = o;

	(void)ctx;
	ck_assert_int_eq(h->nheld, 0);
}

static void hold_exec(struct hold *h, struct vdev_blk_io *io)
{
	uint64_t off = io->offset;

	io->result = 0;
	for (uint32_t i = 0; i < io->iovcnt; i++) {
		if (io->op == VDEV_BLK_IO_READ)
			memcpy(io->iov[i].iov_base, h->disk + off, io->iov[i].iov_len);
		else if (io->op == VDEV_BLK_IO_WRITE)
			memcpy(h->disk + off, io->iov[i].iov_base, io->iov[i].iov_len);
		off += io->iov[i].iov_len;
	}
}

static int hold_enqueue(void *o, void *ctx, struct vdev_blk_io *io)
{
	struct hold *h = o;

	(void)ctx;
	if (h->holding && io->op == VDEV_BLK_IO_READ && io->offset == h->hold_sector * 512) {
		ck_assert_int_lt(h->nheld, 8);
		h->held[h->nheld++] = io;
		return 0;
	}
	ck_assert_int_lt(h->ndone, 256);
	hold_exec(h, io);
	h->done[h->ndone++] = io;
	return 0;
}

static int hold_submit(void *o, void *ctx)
{
	(void)o;
	(void)ctx;
	return 0;
}

static int hold_reap(void *o, void *ctx, struct vdev_blk_io **done, uint32_t max)
{
	struct hold *h = o;
	uint32_t n = 0;

	(void)ctx;
	while (h->ndone && n < max)
		done[n++] = h->done[--h->ndone];
	while (__atomic_load_n(&h->release, __ATOMIC_ACQUIRE) && h->nheld && n < max) {
		struct vdev_blk_io *io = h->held[--h->nheld];

		hold_exec(h, io);
		done[n++] = io;
	}
	while (h->cancel && h->nheld && n < max) {
		struct vdev_blk_io *io = h->held[--h->nheld];

		io->result = -EIO; /* never touched guest memory */
		done[n++] = io;
	}
	return (int)n;
}

static int hold_fd(void *o, void *ctx)
{
	(void)o;
	(void)ctx;
	return -1;
}

/* ------------------------------------------------------------------------ */
/* An "echo" model without queue_reset / queue_enable: every chain gets its
 * readable bytes back in its writable part. */

struct echo {
	vdev_device *dev;
	struct iovec iov[2 * QSIZE];
	uint64_t gpa[2 * QSIZE];
	uint32_t served;
};

static int echo_config_read(vdev_device *d, void *o, uint32_t off, void *buf, uint32_t len)
{
	(void)d;
	(void)o;
	(void)off;
	memset(buf, 0, len);
	return 0;
}

static int echo_activate(vdev_device *d, void *o)
{
	(void)d;
	(void)o;
	return 0;
}

static void echo_reset(vdev_device *d, void *o)
{
	(void)d;
	(void)o;
}

static void echo_notify(vdev_device *d, void *o, uint32_t qi)
{
	struct echo *e = o;
	vdev_queue *q = vdev_device_get_queue(d, qi);
	struct vdev_queue_elem el = VDEV_QUEUE_ELEM_INIT;

	if (!q)
		return;
	el.iov = e->iov;
	el.gpa = e->gpa;
	el.iov_cap = 2 * QSIZE;
	do {
		vdev_queue_set_notification(q, 0);
		while (vdev_queue_pop(q, &el) == 1) {
			uint8_t tmp[512];
			uint32_t n = 0;

			for (uint32_t i = 0; i < el.out_num; i++) {
				uint32_t c = (uint32_t)el.iov[i].iov_len;

				if (c > sizeof(tmp) - n)
					c = (uint32_t)sizeof(tmp) - n;
				memcpy(tmp + n, el.iov[i].iov_base, c);
				n += c;
			}
			if (el.in_num && el.iov[el.out_num].iov_len >= n)
				memcpy(el.iov[el.out_num].iov_base, tmp, n);
			else
				n = 0;
			ck_assert_int_eq(vdev_queue_fill(q, &el, n), 0);
			e->served++;
		}
		if (vdev_queue_flush(q) > 0)
			vdev_device_interrupt_queue(d, qi);
	} while (vdev_queue_set_notification(q, 1) > 0);
}

static const struct vdev_device_ops echo_ops = {
	.struct_size = sizeof(struct vdev_device_ops),
	.config_read = echo_config_read,
	.activate = echo_activate,
	.reset = echo_reset,
	.queue_notify = echo_notify,
};

/* ------------------------------------------------------------------------ */
/* The fixture: device, back-end, guest RAM, and the front-end's state. */

struct fe {
	vdev_blk_backend *be;
	vdev_blk *blk;
	struct hold *hold;
	struct echo *echo;
	vdev_device *dev;
	vdev_vhost_user *vu;
	int sock;        /* the front-end's end of the connection */
	int memfd;
	uint8_t *ram;    /* guest RAM as the front-end maps it (its UVAs) */
	uint64_t proto;  /* protocol features negotiated */
	uint64_t dev_features;
	uint64_t want;   /* features the driver accepts */
	uint32_t status; /* the driver's view of the status */
	uint32_t nq;     /* queues the driver sets up */
	int kick[NQ], call[NQ], err[NQ];
	uint64_t desc_gpa[NQ], avail_gpa[NQ], used_gpa[NQ];
	vdev_drv *drv;
	vdev_drvq *q[NQ];
	int fds0;        /* open fds before the connection */
	char last_log[256];
};

static struct fe F;

static void log_sink(void *o, int level, const char *msg)
{
	(void)o;
	(void)level;
	snprintf(F.last_log, sizeof(F.last_log), "%s", msg);
	if (getenv("VDEV_TEST_VERBOSE"))
		fprintf(stderr, "log: %s\n", msg);
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory's own fd */
}

static uint64_t uva(uint64_t gpa)
{
	return (uint64_t)(uintptr_t)(F.ram + (gpa - GPA_BASE));
}

static void *gptr(uint64_t gpa)
{
	return F.ram + (gpa - GPA_BASE);
}

static int new_eventfd(void)
{
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

	ck_assert_int_ge(fd, 0);
	return fd;
}

static int memfd_of(uint64_t size)
{
	int fd = memfd_create("test-vhost-user", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, (off_t)size), 0);
	return fd;
}

/* Run the back-end until it has nothing left to do. */
static void pump(void)
{
	for (int i = 0; i < 100; i++) {
		struct pollfd p = {.fd = vdev_vhost_user_fd(F.vu), .events = POLLIN};

		if (poll(&p, 1, 0) <= 0)
			return;
		ck_assert_int_eq(vdev_vhost_user_process(F.vu), 0);
	}
}

static void connect_fe(void)
{
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	F.sock = sv[0];
	ck_assert_int_eq(vdev_vhost_user_serve_fd(F.vu, sv[1]), 0);
	ck_assert_int_eq(vdev_vhost_user_connected(F.vu), 1);
}

/* The front-end goes away: its socket and every eventfd it made. */
static void drop_fe(void)
{
	if (F.sock >= 0)
		close(F.sock);
	F.sock = -1;
	for (uint32_t i = 0; i < NQ; i++) {
		if (F.kick[i] >= 0)
			close(F.kick[i]);
		if (F.call[i] >= 0)
			close(F.call[i]);
		if (F.err[i] >= 0)
			close(F.err[i]);
		F.kick[i] = F.call[i] = F.err[i] = -1;
	}
	pump();
	ck_assert_int_eq(vdev_vhost_user_connected(F.vu), 0);
	vdev_drv_free(F.drv);
	F.drv = NULL;
	memset(F.q, 0, sizeof(F.q));
	F.status = 0;
	F.proto = 0;
}

static void fixture_common(void)
{
	struct vdev_vhost_user_config vc = VDEV_VHOST_USER_CONFIG_INIT;

	vdev_log_set(log_sink, NULL, VDEV_LOG_DEBUG);
	F.sock = -1;
	for (uint32_t i = 0; i < NQ; i++)
		F.kick[i] = F.call[i] = F.err[i] = -1;
	F.memfd = memfd_of(MEM_SIZE);
	F.ram = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, F.memfd, 0);
	ck_assert_ptr_ne(F.ram, MAP_FAILED);
	F.nq = NQ;
	F.want = BIT(VIRTIO_F_VERSION_1) | BIT(VIRTIO_BLK_F_FLUSH) | BIT(VIRTIO_BLK_F_BLK_SIZE) |
		 BIT(VIRTIO_BLK_F_MQ) | BIT(VIRTIO_RING_F_EVENT_IDX) |
		 BIT(VIRTIO_RING_F_INDIRECT_DESC) | BIT(VIRTIO_BLK_F_CONFIG_WCE);
	ck_assert_int_eq(vdev_vhost_user_new(&vc, F.dev, &F.vu), 0);
	F.fds0 = count_fds();
	connect_fe();
}

static void blk_on(vdev_blk_backend *be)
{
	struct vdev_blk_config bc = VDEV_BLK_CONFIG_INIT;

	F.be = be;
	bc.num_queues = NQ;
	bc.queue_size = QSIZE;
	ck_assert_int_eq(vdev_blk_new(&bc, F.be, &F.blk), 0);
	F.dev = vdev_blk_device(F.blk);
}

static void setup(void)
{
	vdev_blk_backend *be;

	memset(&F, 0, sizeof(F));
	ck_assert_int_eq(vdev_blk_backend_new_memory(DISK_SIZE, 0, &be), 0);
	blk_on(be);
	fixture_common();
}

static const struct vdev_blk_backend_ops hold_ops = {
	.struct_size = sizeof(struct vdev_blk_backend_ops),
	.size = hold_size,
	.queue_open = hold_open,
	.queue_close = hold_close,
	.enqueue = hold_enqueue,
	.submit = hold_submit,
	.reap = hold_reap,
	.completion_fd = hold_fd,
};

static void setup_hold(void)
{
	vdev_blk_backend *be;

	memset(&F, 0, sizeof(F));
	F.hold = calloc(1, sizeof(*F.hold));
	ck_assert_ptr_nonnull(F.hold);
	for (uint32_t i = 0; i < DISK_SIZE; i++)
		F.hold->disk[i] = (uint8_t)(i * 7 + i / 512);
	ck_assert_int_eq(vdev_blk_backend_new(&hold_ops, F.hold, 0, &be), 0);
	blk_on(be);
	fixture_common();
}

static void setup_echo(void)
{
	struct vdev_device_config dc = VDEV_DEVICE_CONFIG_INIT;

	memset(&F, 0, sizeof(F));
	F.echo = calloc(1, sizeof(*F.echo));
	ck_assert_ptr_nonnull(F.echo);
	dc.device_type = 0x2a;
	dc.num_queues = NQ;
	dc.queue_max_size = QSIZE;
	ck_assert_int_eq(vdev_device_new(&dc, &echo_ops, F.echo, &F.echo->dev), 0);
	F.dev = F.echo->dev;
	fixture_common();
	F.want = BIT(VIRTIO_F_VERSION_1);
}

static void teardown(void)
{
	if (F.sock >= 0)
		drop_fe();
	vdev_drv_free(F.drv);
	vdev_vhost_user_free(F.vu);
	vdev_blk_free(F.blk);
	vdev_blk_backend_free(F.be);
	if (F.echo)
		vdev_device_free(F.echo->dev);
	free(F.echo);
	free(F.hold);
	munmap(F.ram, MEM_SIZE);
	close(F.memfd);
	vdev_log_set(NULL, NULL, 0);
}

/* ------------------------------------------------------------------------ */
/* Messages. */

struct hdr {
	uint32_t request, flags, size;
};

static void send_raw(int sock, const void *buf, size_t len, const int *fds, int nfds)
{
	union {
		char b[CMSG_SPACE(sizeof(int) * 16)];
		struct cmsghdr align;
	} c;
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
	struct msghdr mh;

	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	if (nfds) {
		struct cmsghdr *cm;

		memset(&c, 0, sizeof(c));
		mh.msg_control = c.b;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * (size_t)nfds);
	}
	ck_assert_int_eq(sendmsg(sock, &mh, MSG_NOSIGNAL), (ssize_t)len);
}

static void send_msg(uint32_t req, uint32_t flags, const void *p, uint32_t size, const int *fds,
		     int nfds)
{
	uint8_t buf[12 + 512];
	struct hdr h = {req, flags, size};

	ck_assert_uint_le(size, 512);
	memcpy(buf, &h, 12);
	if (size)
		memcpy(buf + 12, p, size);
	send_raw(F.sock, buf, 12 + size, fds, nfds);
}

/* One reply for @req: its payload size; -1 when none is there, -2 when the
 * back-end closed the connection. */
static int recv_reply(uint32_t req, void *p, uint32_t cap, int *fd)
{
	union {
		char b[CMSG_SPACE(sizeof(int) * 8)];
		struct cmsghdr align;
	} c;
	struct hdr h;
	struct iovec iov = {.iov_base = &h, .iov_len = sizeof(h)};
	struct msghdr mh;
	ssize_t n;

	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = c.b;
	mh.msg_controllen = sizeof(c.b);
	n = recvmsg(F.sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (n < 0 && errno == EAGAIN)
		return -1;
	if (n == 0)
		return -2;
	ck_assert_int_eq(n, sizeof(h));
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		ck_assert_ptr_nonnull(fd);
		ck_assert_uint_eq(cm->cmsg_len, CMSG_LEN(sizeof(int)));
		memcpy(fd, CMSG_DATA(cm), sizeof(int));
	}
	ck_assert_uint_eq(h.request, req);
	ck_assert_uint_eq(h.flags, F_VERSION | F_REPLY);
	ck_assert_uint_le(h.size, cap);
	if (h.size)
		ck_assert_int_eq(recv(F.sock, p, h.size, MSG_DONTWAIT), (ssize_t)h.size);
	return (int)h.size;
}

static uint64_t get_u64(uint32_t req)
{
	uint64_t v = 0;

	send_msg(req, F_VERSION, NULL, 0, NULL, 0);
	pump();
	ck_assert_int_eq(recv_reply(req, &v, sizeof(v), NULL), 8);
	return v;
}

/* A request with NEED_REPLY: the ack (0 done, 1 refused), or -2 when the
 * connection closed without one. */
static int64_t call(uint32_t req, const void *p, uint32_t size, const int *fds, int nfds)
{
	uint64_t v = 0;
	int r;

	send_msg(req, F_VERSION | F_NEED_REPLY, p, size, fds, nfds);
	pump();
	r = recv_reply(req, &v, sizeof(v), NULL);
	if (r == -2)
		return -2;
	ck_assert_int_eq(r, 8);
	return (int64_t)v;
}

static int64_t call_u64(uint32_t req, uint64_t v)
{
	return call(req, &v, sizeof(v), NULL, 0);
}

static int64_t call_state(uint32_t req, uint32_t index, uint32_t num)
{
	struct vhost_vring_state s = {index, num};

	return call(req, &s, sizeof(s), NULL, 0);
}

static int64_t call_fd(uint32_t req, uint32_t index, int fd)
{
	uint64_t v = index;

	return call(req, &v, sizeof(v), &fd, 1);
}

/* Did the back-end close the connection? (Replies sent before are read
 * and dropped.) */
static int closed(void)
{
	char b[256];
	ssize_t n;

	pump();
	if (vdev_vhost_user_connected(F.vu))
		return 0;
	while ((n = recv(F.sock, b, sizeof(b), MSG_DONTWAIT)) > 0)
		;
	/* A socket closed with our bytes unread resets the connection. */
	return n == 0 || (n < 0 && errno == ECONNRESET);
}

static uint64_t stat_of(size_t off)
{
	struct vdev_vhost_user_stats st = VDEV_VHOST_USER_STATS_INIT;

	ck_assert_int_eq(vdev_vhost_user_get_stats(F.vu, &st), 0);
	return *(uint64_t *)((uint8_t *)&st + off);
}
#define STAT(f) stat_of(offsetof(struct vdev_vhost_user_stats, f))

static void negotiate(uint64_t proto)
{
	uint64_t offered;

	F.dev_features = get_u64(GET_FEATURES);
	ck_assert(F.dev_features & BIT(F_PROTOCOL_FEATURES));
	ck_assert(F.dev_features & BIT(VHOST_F_LOG_ALL));
	ck_assert(F.dev_features & BIT(VIRTIO_F_VERSION_1));
	offered = get_u64(GET_PROTOCOL_FEATURES);
	ck_assert_uint_eq(offered & proto, proto);
	ck_assert_int_eq(call_u64(SET_PROTOCOL_FEATURES, proto), 0);
	F.proto = proto;
	ck_assert_int_eq(call(SET_OWNER, NULL, 0, NULL, 0), 0);
}

static void mem_table(void)
{
	struct mem_table t = {.n = 1};

	t.r[0] = (struct region){GPA_BASE, MEM_SIZE, uva(GPA_BASE), 0};
	ck_assert_int_eq(call(SET_MEM_TABLE, &t, 8 + 32, &F.memfd, 1), 0);
}

/* ------------------------------------------------------------------------ */
/* The guest: vdev_drv over a transport made of vhost-user messages. */

/* What the VMM sends in SET_FEATURES: the guest's features and the
 * protocol-features bit. */
static uint64_t acked_features(void)
{
	return (F.dev_features & F.want) | BIT(F_PROTOCOL_FEATURES);
}

static uint32_t t_get_status(void *t)
{
	(void)t;
	return F.status;
}

static void t_set_status(void *t, uint32_t s)
{
	(void)t;
	if ((s & VIRTIO_CONFIG_S_FEATURES_OK) && !(F.status & VIRTIO_CONFIG_S_FEATURES_OK) &&
	    call_u64(SET_FEATURES, acked_features()) != 0)
		s &= ~VIRTIO_CONFIG_S_FEATURES_OK;
	F.status = s;
	if (F.proto & BIT(P_STATUS))
		ck_assert_int_eq(call_u64(SET_STATUS, s), 0);
}

static uint32_t t_get_device_features(void *t, uint32_t page)
{
	/* The vhost bits are not virtio features. */
	uint64_t f = F.dev_features & ~(BIT(F_PROTOCOL_FEATURES) | BIT(VHOST_F_LOG_ALL));

	(void)t;
	return (uint32_t)(f >> (32 * page));
}

static void t_set_driver_features(void *t, uint32_t page, uint32_t v)
{
	(void)t;
	(void)page;
	(void)v; /* F.want & offered is what SET_FEATURES sends */
}

static uint32_t t_queue_max_size(void *t, uint32_t q)
{
	(void)t;
	return q < NQ ? QSIZE : 0;
}

/* Ring setup as QEMU's vhost_virtqueue_start sends it. */
static int ring_setup(uint32_t q, uint32_t size, uint32_t base)
{
	struct vhost_vring_addr a = {
		.index = q,
		.desc_user_addr = uva(F.desc_gpa[q]),
		.used_user_addr = uva(F.used_gpa[q]),
		.avail_user_addr = uva(F.avail_gpa[q]),
		.log_guest_addr = F.used_gpa[q],
	};

	if (F.call[q] < 0)
		F.call[q] = new_eventfd();
	if (F.err[q] < 0)
		F.err[q] = new_eventfd();
	if (F.kick[q] >= 0)
		close(F.kick[q]);
	F.kick[q] = new_eventfd();
	if (call_state(SET_VRING_NUM, q, size) || call_state(SET_VRING_BASE, q, base) ||
	    call(SET_VRING_ADDR, &a, sizeof(a), NULL, 0) || call_fd(SET_VRING_CALL, q, F.call[q]) ||
	    call_fd(SET_VRING_ERR, q, F.err[q]) || call_fd(SET_VRING_KICK, q, F.kick[q]) ||
	    call_state(SET_VRING_ENABLE, q, 1))
		return -EIO;
	return 0;
}

static int t_queue_setup(void *t, uint32_t q, uint32_t size, uint64_t desc, uint64_t drv,
			 uint64_t dev)
{
	(void)t;
	F.desc_gpa[q] = desc;
	F.avail_gpa[q] = drv;
	F.used_gpa[q] = dev;
	/* A fresh packed ring starts with both wrap counters at 1. */
	return ring_setup(q, size, (F.want & BIT(VIRTIO_F_RING_PACKED)) ? 0x80008000u : 0);
}

static void t_queue_notify(void *t, uint32_t q)
{
	uint64_t one = 1;

	(void)t;
	ck_assert_int_eq(write(F.kick[q], &one, sizeof(one)), 8);
}

static uint32_t t_config_generation(void *t)
{
	(void)t;
	return 0;
}

static uint32_t t_config_read(void *t, uint32_t off, uint32_t width)
{
	struct config_msg c = {.offset = off, .size = width};
	uint32_t v = 0;

	(void)t;
	send_msg(GET_CONFIG, F_VERSION, &c, 12 + width, NULL, 0);
	pump();
	ck_assert_int_eq(recv_reply(GET_CONFIG, &c, sizeof(c), NULL), (int)(12 + width));
	memcpy(&v, c.data, width);
	return v;
}

static void t_config_write(void *t, uint32_t off, uint32_t width, uint32_t v)
{
	struct config_msg c = {.offset = off, .size = width};

	(void)t;
	memcpy(c.data, &v, width);
	call(SET_CONFIG, &c, 12 + width, NULL, 0);
}

static const struct vdev_drv_transport_ops fe_transport = {
	.struct_size = sizeof(struct vdev_drv_transport_ops),
	.get_status = t_get_status,
	.set_status = t_set_status,
	.get_device_features = t_get_device_features,
	.set_driver_features = t_set_driver_features,
	.queue_max_size = t_queue_max_size,
	.queue_setup = t_queue_setup,
	.queue_notify = t_queue_notify,
	.config_generation = t_config_generation,
	.config_read = t_config_read,
	.config_write = t_config_write,
};

static uint64_t d_negotiate(vdev_drv *drv, void *o, uint64_t offered)
{
	(void)drv;
	(void)o;
	return offered & F.want;
}

static int d_pre_init(vdev_drv *drv, void *o)
{
	(void)o;
	for (uint32_t i = 0; i < F.nq; i++) {
		int r = vdev_drv_queue_setup(drv, i, QSIZE, 0, &F.q[i]);

		if (r < 0)
			return r;
	}
	return 0;
}

static const struct vdev_driver_ops fe_driver = {
	.struct_size = sizeof(struct vdev_driver_ops),
	.negotiate_features = d_negotiate,
	.pre_device_initialization = d_pre_init,
};

/* The guest driver brings the device up (rings in a zeroed arena). */
static void drv_up(void)
{
	struct vdev_drv_config dc = VDEV_DRV_CONFIG_INIT;

	vdev_drv_free(F.drv);
	memset(F.ram, 0, ARENA_SIZE);
	dc.transport = &fe_transport;
	dc.driver = &fe_driver;
	dc.arena = F.ram;
	dc.arena_gpa = GPA_BASE;
	dc.arena_size = ARENA_SIZE;
	ck_assert_int_eq(vdev_drv_new(&dc, &F.drv), 0);
	ck_assert_int_eq(vdev_drv_start(F.drv), 0);
	ck_assert(vdev_device_status(F.dev) & VDEV_STATUS_DRIVER_OK);
}

/* Negotiate, map memory, and let the guest driver bring the device up. */
static void start_device(uint64_t proto)
{
	negotiate(proto);
	mem_table();
	drv_up();
}

/* Make one blk request available and kick. */
static void blk_submit(uint32_t q, uint32_t type, uint64_t sector, uint64_t data, uint32_t len,
		       void *token)
{
	struct virtio_blk_outhdr *h = gptr(SCRATCH_GPA(q) + 0x40 * ((uintptr_t)token & 7));
	uint64_t hdr_gpa = SCRATCH_GPA(q) + 0x40 * ((uintptr_t)token & 7);
	uint64_t addr[3] = {hdr_gpa, data, hdr_gpa + 16};
	uint32_t lens[3] = {16, len, 1};

	h->type = type;
	h->ioprio = 0;
	h->sector = sector;
	*((uint8_t *)h + 16) = 0xff;
	if (type == VIRTIO_BLK_T_OUT)
		ck_assert_int_eq(vdev_drvq_add(F.q[q], addr, lens, 2, 1, token, 0), 0);
	else
		ck_assert_int_eq(vdev_drvq_add(F.q[q], addr, lens, 1, 2, token, 0), 0);
	vdev_drvq_kick(F.q[q]);
}

static uint8_t status_of(uint32_t q, void *token)
{
	return *((uint8_t *)gptr(SCRATCH_GPA(q) + 0x40 * ((uintptr_t)token & 7)) + 16);
}

/* One used buffer: its token, or NULL when none came. */
static void *blk_used(uint32_t q)
{
	void *tok = NULL;
	uint32_t len;
	int r = vdev_drvq_get_used(F.q[q], &tok, &len);

	ck_assert_int_ge(r, 0);
	return r == 1 ? tok : NULL;
}

/* A whole request: submit, run the back-end, collect. Returns the status. */
static int blk_io(uint32_t q, uint32_t type, uint64_t sector, uint64_t data, uint32_t len)
{
	void *tok = (void *)(uintptr_t)1;

	blk_submit(q, type, sector, data, len, tok);
	pump();
	ck_assert_ptr_eq(blk_used(q), tok);
	return status_of(q, tok);
}

static void fill(uint64_t gpa, uint32_t len, uint8_t seed)
{
	uint8_t *p = gptr(gpa);

	for (uint32_t i = 0; i < len; i++)
		p[i] = (uint8_t)(seed + i * 13 + i / 256);
}

/* Write a pattern at @sector through queue @q and read it back. */
static void write_read(uint32_t q, uint64_t sector, uint8_t seed)
{
	uint64_t w = DATA_GPA(q), r = DATA_GPA(q) + 0x10000;

	fill(w, 4096, seed);
	memset(gptr(r), 0, 4096);
	ck_assert_int_eq(blk_io(q, VIRTIO_BLK_T_OUT, sector, w, 4096), VIRTIO_BLK_S_OK);
	ck_assert_int_eq(blk_io(q, VIRTIO_BLK_T_IN, sector, r, 4096), VIRTIO_BLK_S_OK);
	ck_assert_int_eq(memcmp(gptr(w), gptr(r), 4096), 0);
}

static uint64_t drain_eventfd(int fd)
{
	uint64_t v = 0;

	if (read(fd, &v, sizeof(v)) != sizeof(v))
		return 0;
	return v;
}

/* ------------------------------------------------------------------------ */
/* Negotiation, data path. */

START_TEST(t_negotiate)
{
	struct config_msg c = {.offset = 0, .size = sizeof(struct virtio_blk_config)};
	struct virtio_blk_config bc;
	uint64_t msgs;

	negotiate(P_ALL);
	ck_assert_uint_eq(get_u64(GET_PROTOCOL_FEATURES), P_ALL);
	ck_assert_uint_eq(F.dev_features & ~(BIT(F_PROTOCOL_FEATURES) | BIT(VHOST_F_LOG_ALL)),
			  vdev_device_features(F.dev));
	ck_assert_uint_eq(get_u64(GET_QUEUE_NUM), NQ);
	ck_assert_uint_eq(get_u64(GET_MAX_MEM_SLOTS), 32);
	/* Config space through vdev_device_config_read. */
	send_msg(GET_CONFIG, F_VERSION, &c, 12 + c.size, NULL, 0);
	pump();
	ck_assert_int_eq(recv_reply(GET_CONFIG, &c, sizeof(c), NULL), (int)(12 + sizeof(bc)));
	memcpy(&bc, c.data, sizeof(bc));
	ck_assert_uint_eq(bc.capacity, DISK_SIZE / 512);
	ck_assert_uint_eq(bc.num_queues, NQ);
	/* Past the device's config space: zeros, not an error. */
	c = (struct config_msg){.offset = sizeof(bc) - 4, .size = 16};
	memset(c.data, 0xee, sizeof(c.data));
	send_msg(GET_CONFIG, F_VERSION, &c, 12 + 16, NULL, 0);
	pump();
	ck_assert_int_eq(recv_reply(GET_CONFIG, &c, sizeof(c), NULL), 12 + 16);
	ck_assert_uint_eq(c.offset, sizeof(bc) - 4);
	for (int i = 4; i < 16; i++)
		ck_assert_uint_eq(c.data[i], 0);
	/* A read-only field: SET_CONFIG is refused with an ack of 1 and the
	 * connection stays. */
	c = (struct config_msg){.offset = 0, .size = 8};
	ck_assert_int_eq(call(SET_CONFIG, &c, 12 + 8, NULL, 0), 1);
	ck_assert_int_eq(vdev_vhost_user_connected(F.vu), 1);
	/* Replies only when asked: SET_OWNER without NEED_REPLY. */
	send_msg(SET_OWNER, F_VERSION, NULL, 0, NULL, 0);
	pump();
	ck_assert_int_eq(recv_reply(SET_OWNER, NULL, 0, NULL), -1);
	msgs = STAT(messages);
	ck_assert_uint_eq(msgs, 11);
	ck_assert_uint_eq(STAT(bad_messages), 0);
	ck_assert_uint_eq(STAT(connections), 1);
}
END_TEST

static void io_basic(uint64_t extra)
{
	uint8_t *disk;
	uint64_t calls;

	F.want |= extra;
	start_device(P_ALL);
	ck_assert_uint_eq(vdev_drv_features(F.drv) & extra, extra);
	write_read(0, 8, 0x11);
	disk = vdev_blk_backend_memory_data(F.be);
	ck_assert_int_eq(memcmp(disk + 8 * 512, gptr(DATA_GPA(0)), 4096), 0);
	/* Interrupts came on the call eventfd, kicks on the kick eventfd. */
	calls = drain_eventfd(F.call[0]);
	ck_assert_uint_ge(calls, 1);
	ck_assert_uint_ge(STAT(kicks), 1);
	ck_assert_uint_ge(STAT(calls), 2);
	ck_assert_uint_eq(STAT(mapped_regions), 1);
	/* Flush, and an unknown type answered UNSUPP. */
	ck_assert_int_eq(blk_io(0, VIRTIO_BLK_T_FLUSH, 0, DATA_GPA(0), 0) , VIRTIO_BLK_S_OK);
}

START_TEST(t_io_split)
{
	io_basic(0);
}
END_TEST

START_TEST(t_io_packed)
{
	io_basic(BIT(VIRTIO_F_RING_PACKED));
	write_read(1, 100, 0x42);
}
END_TEST

START_TEST(t_multiqueue)
{
	start_device(P_ALL);
	for (int round = 0; round < 3; round++) {
		write_read(0, 16 + round, (uint8_t)round);
		write_read(1, 64 + round, (uint8_t)(round + 100));
	}
	ck_assert_uint_ge(drain_eventfd(F.call[0]), 1);
	ck_assert_uint_ge(drain_eventfd(F.call[1]), 1);
}
END_TEST

/* Messages arriving in pieces, one byte at a time. */
START_TEST(t_fragments)
{
	uint8_t buf[12 + 8];
	struct hdr h = {SET_PROTOCOL_FEATURES, F_VERSION | F_NEED_REPLY, 8};
	uint64_t v = BIT(P_REPLY_ACK), ack = 9;
	int fd = new_eventfd();

	memcpy(buf, &h, 12);
	memcpy(buf + 12, &v, 8);
	for (size_t i = 0; i < sizeof(buf); i++) {
		ck_assert_int_eq(recv_reply(SET_PROTOCOL_FEATURES, &ack, 8, NULL), -1);
		send_raw(F.sock, buf + i, 1, NULL, 0);
		pump();
	}
	ck_assert_int_eq(recv_reply(SET_PROTOCOL_FEATURES, &ack, 8, NULL), 8);
	ck_assert_uint_eq(ack, 0);
	/* A fd sent with the header's first byte, the rest later. */
	h = (struct hdr){SET_VRING_CALL, F_VERSION | F_NEED_REPLY, 8};
	v = 1;
	memcpy(buf, &h, 12);
	memcpy(buf + 12, &v, 8);
	send_raw(F.sock, buf, 3, &fd, 1);
	pump();
	send_raw(F.sock, buf + 3, sizeof(buf) - 3, NULL, 0);
	pump();
	ck_assert_int_eq(recv_reply(SET_VRING_CALL, &ack, 8, NULL), 8);
	ck_assert_uint_eq(ack, 0);
	close(fd);
	ck_assert_int_eq(vdev_vhost_user_connected(F.vu), 1);
}
END_TEST

/* GET_VRING_BASE stops a ring and returns its position; SET_VRING_BASE
 * and a new kick fd start it again there. */
START_TEST(t_vring_base)
{
	struct vhost_vring_state s = {0, 0};
	void *tok = (void *)(uintptr_t)2;

	start_device(P_ALL);
	write_read(0, 8, 1);
	write_read(0, 9, 2);
	send_msg(GET_VRING_BASE, F_VERSION, &s, sizeof(s), NULL, 0);
	pump();
	ck_assert_int_eq(recv_reply(GET_VRING_BASE, &s, sizeof(s), NULL), 8);
	ck_assert_uint_eq(s.index, 0);
	ck_assert_uint_eq(s.num, 4); /* four requests taken */
	ck_assert_ptr_null(vdev_device_get_queue(F.dev, 0));
	ck_assert_ptr_nonnull(vdev_device_get_queue(F.dev, 1));
	/* Stopped: a request waits, the other queue still runs. */
	fill(DATA_GPA(0), 512, 7);
	blk_submit(0, VIRTIO_BLK_T_OUT, 3, DATA_GPA(0), 512, tok);
	pump();
	ck_assert_ptr_null(blk_used(0));
	write_read(1, 20, 3);
	/* Restart at the position: the waiting request is served. */
	ck_assert_int_eq(ring_setup(0, QSIZE, s.num), 0);
	pump();
	ck_assert_ptr_eq(blk_used(0), tok);
	ck_assert_uint_eq(status_of(0, tok), VIRTIO_BLK_S_OK);
	ck_assert_int_eq(memcmp((uint8_t *)vdev_blk_backend_memory_data(F.be) + 3 * 512,
				gptr(DATA_GPA(0)), 512), 0);
	write_read(0, 10, 4);
	/* Stop both, as QEMU does when the VM stops, then start again. */
	for (uint32_t q = 0; q < NQ; q++) {
		s = (struct vhost_vring_state){q, 0};
		send_msg(GET_VRING_BASE, F_VERSION, &s, sizeof(s), NULL, 0);
		pump();
		ck_assert_int_eq(recv_reply(GET_VRING_BASE, &s, sizeof(s), NULL), 8);
		ck_assert_uint_eq(s.num, q == 0 ? 7 : 2);
		ck_assert_int_eq(ring_setup(q, QSIZE, s.num), 0);
	}
	write_read(0, 11, 5);
	write_read(1, 21, 6);
}
END_TEST

START_TEST(t_enable_disable)
{
	void *tok = (void *)(uintptr_t)3;

	start_device(P_ALL);
	write_read(0, 8, 1);
	ck_assert_int_eq(call_state(SET_VRING_ENABLE, 0, 0), 0);
	ck_assert_ptr_null(vdev_device_get_queue(F.dev, 0));
	fill(DATA_GPA(0), 512, 9);
	blk_submit(0, VIRTIO_BLK_T_OUT, 5, DATA_GPA(0), 512, tok);
	pump();
	ck_assert_ptr_null(blk_used(0));
	ck_assert_int_eq(call_state(SET_VRING_ENABLE, 0, 1), 0);
	pump();
	ck_assert_ptr_eq(blk_used(0), tok);
	ck_assert_uint_eq(status_of(0, tok), VIRTIO_BLK_S_OK);
	write_read(0, 9, 2);
}
END_TEST

/* Without VHOST_USER_F_PROTOCOL_FEATURES a ring runs once it has its kick. */
START_TEST(t_no_protocol_features)
{
	struct mem_table t = {.n = 1};
	struct vhost_vring_addr a = {0};
	/* Modern, then legacy (no VERSION_1: the device's legacy interface). */
	uint64_t feat = _i == 0 ? BIT(VIRTIO_F_VERSION_1) : BIT(VIRTIO_BLK_F_FLUSH);
	int kick = new_eventfd();
	uint64_t v = 0;

	/* The oldest front-ends: no protocol features, no replies asked. */
	send_msg(GET_FEATURES, F_VERSION, NULL, 0, NULL, 0);
	pump();
	ck_assert_int_eq(recv_reply(GET_FEATURES, &v, 8, NULL), 8);
	send_msg(SET_OWNER, F_VERSION, NULL, 0, NULL, 0);
	send_msg(SET_FEATURES, F_VERSION, &feat, 8, NULL, 0);
	t.r[0] = (struct region){GPA_BASE, MEM_SIZE, uva(GPA_BASE), 0};
	send_msg(SET_MEM_TABLE, F_VERSION, &t, 8 + 32, &F.memfd, 1);
	send_msg(SET_VRING_NUM, F_VERSION, &(struct vhost_vring_state){0, 8}, 8, NULL, 0);
	a.desc_user_addr = uva(GPA_BASE);
	a.avail_user_addr = uva(GPA_BASE + 0x1000);
	a.used_user_addr = uva(GPA_BASE + 0x2000);
	send_msg(SET_VRING_ADDR, F_VERSION, &a, sizeof(a), NULL, 0);
	pump();
	ck_assert_ptr_null(vdev_device_get_queue(F.dev, 0));
	v = 0;
	send_msg(SET_VRING_KICK, F_VERSION, &v, 8, &kick, 1);
	pump();
	ck_assert_ptr_nonnull(vdev_device_get_queue(F.dev, 0));
	ck_assert_uint_eq(vdev_device_acked_features(F.dev), feat);
	ck_assert_uint_eq(STAT(bad_messages), 0);
	close(kick);
}
END_TEST

START_TEST(t_status)
{
	uint16_t *avail_idx;

	start_device(P_ALL);
	/* The driver's status writes went through SET_STATUS. */
	ck_assert_uint_eq(get_u64(GET_STATUS), F.status);
	ck_assert(F.status & VIRTIO_CONFIG_S_DRIVER_OK);
	ck_assert_int_eq(call_u64(SET_STATUS, 0x7), 0);
	ck_assert_uint_eq(get_u64(GET_STATUS), 0x7);
	/* 0 does not reset anything (QEMU 7.2 sends it before GET_VRING_BASE). */
	ck_assert_int_eq(call_u64(SET_STATUS, 0), 0);
	write_read(0, 8, 1);
	/* A guest that breaks its ring: DEVICE_NEEDS_RESET shows in GET_STATUS
	 * and the error eventfds fire. */
	drain_eventfd(F.err[0]);
	avail_idx = gptr(F.avail_gpa[0] + 2);
	*avail_idx = (uint16_t)(*avail_idx + QSIZE + 5);
	t_queue_notify(NULL, 0);
	pump();
	ck_assert(vdev_device_status(F.dev) & VDEV_STATUS_NEEDS_RESET);
	ck_assert_uint_eq(get_u64(GET_STATUS), VDEV_STATUS_NEEDS_RESET);
	ck_assert_uint_ge(drain_eventfd(F.err[0]), 1);
	ck_assert_uint_ge(drain_eventfd(F.err[1]), 1);
	/* The guest resets the device: QEMU stops every ring, then starts
	 * them again as the driver sets them up; the device starts afresh. */
	for (uint32_t q = 0; q < NQ; q++) {
		struct vhost_vring_state s = {q, 0};

		send_msg(GET_VRING_BASE, F_VERSION, &s, sizeof(s), NULL, 0);
		pump();
		ck_assert_int_eq(recv_reply(GET_VRING_BASE, &s, sizeof(s), NULL), 8);
	}
	drv_up();
	ck_assert_uint_eq(vdev_device_status(F.dev) & VDEV_STATUS_NEEDS_RESET, 0);
	write_read(0, 8, 2);
	write_read(1, 9, 3);
	ck_assert_uint_eq(get_u64(GET_STATUS) & VDEV_STATUS_NEEDS_RESET, 0);
}
END_TEST

START_TEST(t_reset_device)
{
	uint64_t one = 1;

	start_device(P_ALL);
	write_read(0, 8, 1);
	ck_assert_int_eq(call(RESET_DEVICE, NULL, 0, NULL, 0), 0);
	ck_assert_uint_eq(vdev_device_status(F.dev), 0);
	ck_assert_ptr_null(vdev_device_get_queue(F.dev, 0));
	/* The old kick fd is not watched any more. */
	ck_assert_int_eq(write(F.kick[0], &one, 8), 8);
	pump();
	ck_assert_uint_eq(vdev_device_status(F.dev), 0);
	/* RESET_OWNER (deprecated) does the same. */
	ck_assert_int_eq(call(RESET_OWNER, NULL, 0, NULL, 0), 0);
	ck_assert_int_eq(vdev_vhost_user_connected(F.vu), 1);
	ck_assert_uint_eq(STAT(mapped_regions), 1); /* memory stays */
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Memory: regions added and removed while rings run, a table replaced. */

static void add_reg(uint64_t gpa, uint64_t size, uint64_t u, uint64_t off, int fd, int64_t want)
{
	struct mem_reg m = {.r = {gpa, size, u, off}};

	ck_assert_int_eq(call(ADD_MEM_REG, &m, sizeof(m), &fd, 1), want);
}

/* A memfd the front-end left unsealed is sealed against shrinking when it is
 * mapped: shrinking it later would make our next access to it SIGBUS. */
START_TEST(t_mem_sealed)
{
	negotiate(0);
	ck_assert_int_eq(fcntl(F.memfd, F_GET_SEALS) & F_SEAL_SHRINK, 0);
	mem_table();
	ck_assert_int_ne(fcntl(F.memfd, F_GET_SEALS) & F_SEAL_SHRINK, 0);
	ck_assert_int_lt(ftruncate(F.memfd, MEM_SIZE / 2), 0);
	ck_assert_int_eq(errno, EPERM);
	/* Growing stays allowed, and the back-end keeps serving. */
	ck_assert_int_eq(ftruncate(F.memfd, MEM_SIZE * 2), 0);
	ck_assert(!closed());
}
END_TEST

START_TEST(t_mem_regs)
{
	const uint64_t b_gpa = 0x40000000ull, a_size = 3u << 20;
	int bfd = memfd_of(1u << 20);
	uint8_t *bram = mmap(NULL, 1u << 20, PROT_READ | PROT_WRITE, MAP_SHARED, bfd, 0);
	uint64_t b_uva = (uint64_t)(uintptr_t)bram;
	struct mem_reg rm = {.r = {b_gpa, 1u << 20, b_uva, 0}};
	struct mem_table t = {.n = 2};
	int fds[2] = {F.memfd, bfd};

	ck_assert_ptr_ne(bram, MAP_FAILED);
	negotiate(P_ALL);
	add_reg(GPA_BASE, a_size, uva(GPA_BASE), 0, F.memfd, 0);
	add_reg(b_gpa, 1u << 20, b_uva, 0, bfd, 0);
	ck_assert_uint_eq(STAT(mapped_regions), 2);
	drv_up();
	write_read(0, 8, 1);
	/* Data in region B, through the device, back in region A. */
	for (int i = 0; i < 4096; i++)
		bram[i] = (uint8_t)(i ^ 0x5a);
	ck_assert_int_eq(blk_io(0, VIRTIO_BLK_T_OUT, 40, b_gpa, 4096), VIRTIO_BLK_S_OK);
	ck_assert_int_eq(blk_io(1, VIRTIO_BLK_T_IN, 40, DATA_GPA(1), 4096), VIRTIO_BLK_S_OK);
	ck_assert_int_eq(memcmp(bram, gptr(DATA_GPA(1)), 4096), 0);
	/* Remove B while the rings run: they stop and start again where they
	 * were. A fd sent along is tolerated (and closed). */
	ck_assert_int_eq(call(REM_MEM_REG, &rm, sizeof(rm), &bfd, 1), 0);
	ck_assert_uint_eq(STAT(mapped_regions), 1);
	write_read(0, 9, 2);
	write_read(1, 10, 3);
	/* An unknown region: refused, the connection stays. */
	ck_assert_int_eq(call(REM_MEM_REG, &rm, sizeof(rm), NULL, 0), 1);
	ck_assert_int_eq(vdev_vhost_user_connected(F.vu), 1);
	/* The whole table replaced while running (QEMU's SET_MEM_TABLE). */
	t.r[0] = (struct region){GPA_BASE, a_size, uva(GPA_BASE), 0};
	t.r[1] = (struct region){b_gpa, 1u << 20, b_uva, 0};
	ck_assert_int_eq(call(SET_MEM_TABLE, &t, 8 + 2 * 32, fds, 2), 0);
	ck_assert_uint_eq(STAT(mapped_regions), 2);
	memset(bram, 0, 4096);
	ck_assert_int_eq(blk_io(0, VIRTIO_BLK_T_IN, 40, b_gpa, 4096), VIRTIO_BLK_S_OK);
	for (int i = 0; i < 4096; i++)
		ck_assert_uint_eq(bram[i], (uint8_t)(i ^ 0x5a));
	write_read(1, 11, 4);
	ck_assert_uint_eq(STAT(bad_messages), 0);
	munmap(bram, 1u << 20);
	close(bfd);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Dirty log (migration). */

static int log_bit(const uint8_t *log, uint64_t gpa)
{
	uint64_t page = gpa / 4096;

	return !!(log[page / 8] & (1u << (page % 8)));
}

static int log_count(const uint8_t *log, uint64_t size)
{
	int n = 0;

	for (uint64_t i = 0; i < size; i++)
		n += __builtin_popcount(log[i]);
	return n;
}

static uint8_t *log_new(uint64_t size, int *fd)
{
	struct log_desc ld = {size, 0};
	uint64_t v = 7;
	uint8_t *log;

	*fd = memfd_of(size);
	log = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, *fd, 0);
	ck_assert_ptr_ne(log, MAP_FAILED);
	send_msg(SET_LOG_BASE, F_VERSION | F_NEED_REPLY, &ld, sizeof(ld), fd, 1);
	pump();
	/* One reply, SET_LOG_BASE's own. */
	ck_assert_int_eq(recv_reply(SET_LOG_BASE, &v, sizeof(v), NULL), 8);
	ck_assert_uint_eq(v, 0);
	ck_assert_int_eq(recv_reply(SET_LOG_BASE, &v, sizeof(v), NULL), -1);
	return log;
}

START_TEST(t_dirty_log)
{
	const uint64_t size = ((GPA_BASE + MEM_SIZE) / 4096 + 7) / 8;
	uint64_t data = DATA_GPA(0);
	int fd, fd2;
	uint8_t *log, *log2;

	start_device(P_ALL);
	log = log_new(size, &fd);
	/* Not logging yet. */
	ck_assert_int_eq(blk_io(0, VIRTIO_BLK_T_IN, 0, data, 8192), VIRTIO_BLK_S_OK);
	ck_assert_int_eq(log_count(log, size), 0);
	/* LOG_ALL while the rings run: they keep running. */
	ck_assert_int_eq(call_u64(SET_FEATURES, acked_features() | BIT(VHOST_F_LOG_ALL)), 0);
	ck_assert_ptr_nonnull(vdev_device_get_queue(F.dev, 0));
	/* ... and so does the used-ring log flag QEMU sets next. */
	{
		struct vhost_vring_addr a = {
			.index = 0,
			.flags = 1u << VHOST_VRING_F_LOG,
			.desc_user_addr = uva(F.desc_gpa[0]),
			.used_user_addr = uva(F.used_gpa[0]),
			.avail_user_addr = uva(F.avail_gpa[0]),
			.log_guest_addr = F.used_gpa[0],
		};

		ck_assert_int_eq(call(SET_VRING_ADDR, &a, sizeof(a), NULL, 0), 0);
		ck_assert_ptr_nonnull(vdev_device_get_queue(F.dev, 0));
	}
	ck_assert_int_eq(blk_io(0, VIRTIO_BLK_T_IN, 0, data, 8192), VIRTIO_BLK_S_OK);
	ck_assert(log_bit(log, data));
	ck_assert(log_bit(log, data + 4096));
	ck_assert(log_bit(log, SCRATCH_GPA(0) + 16)); /* status byte */
	ck_assert(log_bit(log, F.used_gpa[0]));      /* used ring */
	ck_assert(!log_bit(log, data + 8192));
	ck_assert(!log_bit(log, DATA_GPA(1)));
	ck_assert(!log_bit(log, GPA_BASE + MEM_SIZE - 4096));
	ck_assert(!log_bit(log, F.used_gpa[1]) || (F.used_gpa[1] / 4096 == F.used_gpa[0] / 4096));
	/* A new log while logging: writes go there. */
	log2 = log_new(size, &fd2);
	memset(log, 0, size);
	ck_assert_int_eq(blk_io(1, VIRTIO_BLK_T_IN, 0, DATA_GPA(1), 512), VIRTIO_BLK_S_OK);
	ck_assert_int_eq(log_count(log, size), 0);
	ck_assert(log_bit(log2, DATA_GPA(1)));
	ck_assert(log_bit(log2, F.used_gpa[1]));
	/* Logging off. */
	ck_assert_int_eq(call_u64(SET_FEATURES, acked_features()), 0);
	memset(log2, 0, size);
	ck_assert_int_eq(blk_io(0, VIRTIO_BLK_T_IN, 0, data, 512), VIRTIO_BLK_S_OK);
	ck_assert_int_eq(log_count(log2, size), 0);
	/* SET_LOG_FD is accepted and its fd closed. */
	ck_assert_int_eq(call(SET_LOG_FD, NULL, 0, &fd, 1), 0);
	/* A log smaller than guest memory: pages past its end are skipped. */
	{
		int fd3;
		uint8_t *log3 = log_new(1, &fd3);

		ck_assert_int_eq(call_u64(SET_FEATURES, acked_features() | BIT(VHOST_F_LOG_ALL)),
				 0);
		ck_assert_int_eq(blk_io(0, VIRTIO_BLK_T_IN, 0, data, 512), VIRTIO_BLK_S_OK);
		/* The mapping is a whole page; only byte 0 belongs to the log. */
		for (int i = 0; i < 4096; i++)
			ck_assert_uint_eq(log3[i], 0);
		munmap(log3, 1);
		close(fd3);
	}
	munmap(log, size);
	munmap(log2, size);
	close(fd);
	close(fd2);
	ck_assert_uint_eq(STAT(bad_messages), 0);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* In-flight tracking: a request in flight when the back-end lost its
 * front-end is served after the reconnection. */

static int inflight_get(uint16_t nq, uint16_t qs, struct inflight_desc *d)
{
	int fd = -1;

	*d = (struct inflight_desc){0, 0, nq, qs, 0};
	send_msg(GET_INFLIGHT_FD, F_VERSION, d, sizeof(*d), NULL, 0);
	pump();
	ck_assert_int_eq(recv_reply(GET_INFLIGHT_FD, d, sizeof(*d), &fd), sizeof(*d));
	ck_assert_int_ge(fd, 0);
	ck_assert_uint_ge(d->mmap_size, (uint64_t)nq * qs * 16);
	ck_assert_uint_eq(d->num_queues, nq);
	ck_assert_uint_eq(d->queue_size, qs);
	return fd;
}

START_TEST(t_inflight)
{
	struct inflight_desc d;
	void *ta = (void *)(uintptr_t)1, *tb = (void *)(uintptr_t)2;
	int ifd;

	negotiate(P_ALL);
	mem_table();
	ifd = inflight_get(NQ, QSIZE, &d);
	ck_assert_int_eq(call(SET_INFLIGHT_FD, &d, sizeof(d), &ifd, 1), 0);
	drv_up();
	/* A is held by the backend, B completes: they finish out of order. */
	F.hold->hold_sector = 4;
	F.hold->holding = 1;
	memset(gptr(DATA_GPA(0)), 0, 1024);
	blk_submit(0, VIRTIO_BLK_T_IN, 4, DATA_GPA(0), 512, ta);
	blk_submit(0, VIRTIO_BLK_T_IN, 8, DATA_GPA(0) + 512, 512, tb);
	pump();
	ck_assert_ptr_eq(blk_used(0), tb);
	ck_assert_ptr_null(blk_used(0));
	ck_assert_int_eq(F.hold->nheld, 1);
	ck_assert_int_eq(memcmp(gptr(DATA_GPA(0) + 512), F.hold->disk + 8 * 512, 512), 0);
	/* The front-end goes away: the device is reset, A dropped unanswered. */
	F.hold->cancel = 1;
	close(F.sock);
	F.sock = -1;
	pump();
	ck_assert_int_eq(vdev_vhost_user_connected(F.vu), 0);
	ck_assert_int_eq(F.hold->nheld, 0);
	F.hold->cancel = 0;
	F.hold->holding = 0;
	/* It comes back with the area it kept; the guest never noticed. The
	 * ring resumes at the used index (1), as QEMU does after a back-end
	 * crash: without the area the device would take B again, not A. */
	connect_fe();
	negotiate(P_ALL);
	mem_table();
	ck_assert_int_eq(call(SET_INFLIGHT_FD, &d, sizeof(d), &ifd, 1), 0);
	ck_assert_int_eq(call_u64(SET_FEATURES, acked_features()), 0);
	ck_assert_int_eq(ring_setup(0, QSIZE, 1), 0);
	ck_assert_int_eq(ring_setup(1, QSIZE, 0), 0);
	pump();
	ck_assert_ptr_eq(blk_used(0), ta);
	ck_assert_uint_eq(status_of(0, ta), VIRTIO_BLK_S_OK);
	ck_assert_int_eq(memcmp(gptr(DATA_GPA(0)), F.hold->disk + 4 * 512, 512), 0);
	ck_assert_ptr_null(blk_used(0));
	write_read(0, 12, 9);
	/* The area may only change while no ring runs. */
	ck_assert_int_eq(call(SET_INFLIGHT_FD, &d, sizeof(d), &ifd, 1), 1);
	ck_assert(closed());
	close(ifd);
}
END_TEST

static void *release_later(void *arg)
{
	(void)arg;
	usleep(100 * 1000);
	__atomic_store_n(&F.hold->release, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* The table is replaced while the backend holds a request that writes into
 * guest memory: the old mapping must stay until the request is answered
 * (a write after munmap would crash here). */
START_TEST(t_table_swap_inflight)
{
	struct mem_table t = {.n = 1};
	void *tok = (void *)(uintptr_t)1;
	pthread_t th;

	start_device(P_ALL);
	F.hold->hold_sector = 4;
	F.hold->holding = 1;
	memset(gptr(DATA_GPA(0)), 0, 512);
	blk_submit(0, VIRTIO_BLK_T_IN, 4, DATA_GPA(0), 512, tok);
	pump();
	ck_assert_int_eq(F.hold->nheld, 1);
	ck_assert_ptr_null(blk_used(0));
	ck_assert_int_eq(pthread_create(&th, NULL, release_later, NULL), 0);
	t.r[0] = (struct region){GPA_BASE, MEM_SIZE, uva(GPA_BASE), 0};
	ck_assert_int_eq(call(SET_MEM_TABLE, &t, 8 + 32, &F.memfd, 1), 0);
	pthread_join(th, NULL);
	ck_assert_int_eq(F.hold->nheld, 0);
	ck_assert_ptr_eq(blk_used(0), tok);
	ck_assert_uint_eq(status_of(0, tok), VIRTIO_BLK_S_OK);
	ck_assert_int_eq(memcmp(gptr(DATA_GPA(0)), F.hold->disk + 4 * 512, 512), 0);
	F.hold->holding = 0;
	write_read(0, 12, 9);
	ck_assert_uint_eq(STAT(bad_messages), 0);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Connections. */

START_TEST(t_reconnect)
{
	start_device(P_ALL);
	write_read(0, 8, 1);
	drop_fe();
	ck_assert_int_eq(count_fds(), F.fds0);
	ck_assert_uint_eq(STAT(mapped_regions), 0);
	ck_assert_uint_eq(vdev_device_status(F.dev), 0);
	connect_fe();
	start_device(P_ALL);
	write_read(0, 8, 2);
	write_read(1, 9, 3);
	ck_assert_uint_eq(STAT(connections), 2);
	/* The VMM may drop the connection itself. */
	ck_assert_int_eq(vdev_vhost_user_disconnect(F.vu), 0);
	ck_assert_int_eq(vdev_vhost_user_disconnect(F.vu), -ENOTCONN);
	ck_assert(closed());
	drop_fe();
	ck_assert_int_eq(count_fds(), F.fds0);
	ck_assert_uint_eq(STAT(bad_messages), 0);
}
END_TEST

static int unix_connect(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

START_TEST(t_listen)
{
	struct vdev_vhost_user_config vc = VDEV_VHOST_USER_CONFIG_INIT;
	char dir[] = "/tmp/vhu-test-XXXXXX", path[96], longp[200];
	vdev_vhost_user *other = NULL;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat st;
	uint64_t v;
	int c1, c2, s;

	/* The fixture's connection is not used here. */
	drop_fe();
	vdev_vhost_user_free(F.vu);
	F.vu = NULL;
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/sock", dir);
	vc.socket_path = path;
	ck_assert_int_eq(vdev_vhost_user_new(&vc, F.dev, &F.vu), 0);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert(S_ISSOCK(st.st_mode));
	/* A live server on the path is not replaced. Finding that out is a
	 * connection, which the server sees come and go. */
	ck_assert_int_eq(vdev_vhost_user_new(&vc, F.dev, &other), -EADDRINUSE);
	pump();
	ck_assert_int_eq(vdev_vhost_user_connected(F.vu), 0);
	ck_assert_uint_eq(STAT(connections), 1);
	c1 = unix_connect(path);
	pump();
	ck_assert_int_eq(vdev_vhost_user_connected(F.vu), 1);
	F.sock = c1;
	ck_assert_uint_ne(get_u64(GET_FEATURES), 0);
	/* A second front-end waits in the backlog. */
	c2 = unix_connect(path);
	F.sock = c2;
	send_msg(GET_FEATURES, F_VERSION, NULL, 0, NULL, 0);
	pump();
	ck_assert_int_eq(recv_reply(GET_FEATURES, &v, 8, NULL), -1);
	/* ... and is served once the first one leaves. */
	close(c1);
	pump();
	ck_assert_int_eq(recv_reply(GET_FEATURES, &v, 8, NULL), 8);
	ck_assert_uint_eq(STAT(connections), 3);
	close(c2);
	F.sock = -1;
	pump();
	vdev_vhost_user_free(F.vu);
	F.vu = NULL;
	ck_assert_int_eq(stat(path, &st), -1); /* removed */
	/* A stale socket file (its server died) is replaced. */
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	ck_assert_int_eq(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(s);
	ck_assert_int_eq(vdev_vhost_user_new(&vc, F.dev, &F.vu), 0);
	vdev_vhost_user_free(F.vu);
	F.vu = NULL;
	/* A file that is not a socket is left alone. */
	s = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	ck_assert_int_ge(s, 0);
	close(s);
	ck_assert_int_eq(vdev_vhost_user_new(&vc, F.dev, &F.vu), -EADDRINUSE);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert(S_ISREG(st.st_mode));
	unlink(path);
	memset(longp, 'x', sizeof(longp) - 1);
	longp[sizeof(longp) - 1] = 0;
	vc.socket_path = longp;
	ck_assert_int_eq(vdev_vhost_user_new(&vc, F.dev, &F.vu), -ENAMETOOLONG);
	ck_assert_ptr_null(F.vu);
	rmdir(dir);
	/* Back to the fixture's state: nothing leaked on the way. */
	vc.socket_path = NULL;
	ck_assert_int_eq(vdev_vhost_user_new(&vc, F.dev, &F.vu), 0);
	ck_assert_int_eq(count_fds(), F.fds0);
}
END_TEST

/* A live server whose backlog is full (it serves someone else): finding
 * out the path is taken must not wait for it to accept. */
START_TEST(t_listen_busy)
{
	struct vdev_vhost_user_config vc = VDEV_VHOST_USER_CONFIG_INIT;
	char dir[] = "/tmp/vhu-test-XXXXXX", path[96];
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	vdev_vhost_user *other = NULL;
	int s, c[8], n = 0;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/sock", dir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(s, 0);
	ck_assert_int_eq(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(s, 0), 0);
	for (;;) {
		ck_assert_int_lt(n, 8);
		c[n] = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		ck_assert_int_ge(c[n], 0);
		if (connect(c[n], (struct sockaddr *)&sa, sizeof(sa)) < 0) {
			ck_assert_int_eq(errno, EAGAIN);
			close(c[n]);
			break;
		}
		n++;
	}
	vc.socket_path = path;
	ck_assert_int_eq(vdev_vhost_user_new(&vc, F.dev, &other), -EADDRINUSE);
	ck_assert_ptr_null(other);
	while (n-- > 0)
		close(c[n]);
	close(s);
	unlink(path);
	rmdir(dir);
}
END_TEST

START_TEST(t_args)
{
	struct vdev_vhost_user_config vc = VDEV_VHOST_USER_CONFIG_INIT;
	struct vdev_vhost_user_stats st = VDEV_VHOST_USER_STATS_INIT;
	vdev_vhost_user *x = NULL;
	int sv[2];

	ck_assert_int_eq(vdev_vhost_user_new(NULL, F.dev, &x), -EINVAL);
	ck_assert_int_eq(vdev_vhost_user_new(&vc, NULL, &x), -EINVAL);
	ck_assert_int_eq(vdev_vhost_user_new(&vc, F.dev, NULL), -EINVAL);
	vc.flags = 0x80;
	ck_assert_int_eq(vdev_vhost_user_new(&vc, F.dev, &x), -EINVAL);
	vc.flags = 0;
	vc.max_mem_slots = VDEV_MEM_MAX_REGIONS + 1;
	ck_assert_int_eq(vdev_vhost_user_new(&vc, F.dev, &x), -EINVAL);
	vc.max_mem_slots = 0;
	vc.struct_size = 2;
	ck_assert_int_eq(vdev_vhost_user_new(&vc, F.dev, &x), -EINVAL);
	ck_assert_ptr_null(x);
	vdev_vhost_user_free(NULL);
	ck_assert_int_eq(vdev_vhost_user_fd(NULL), -EINVAL);
	ck_assert_int_ge(vdev_vhost_user_fd(F.vu), 0);
	ck_assert_int_eq(vdev_vhost_user_process(NULL), -EINVAL);
	ck_assert_int_eq(vdev_vhost_user_serve_fd(F.vu, -1), -EINVAL);
	ck_assert_int_eq(vdev_vhost_user_connected(NULL), 0);
	ck_assert_int_eq(vdev_vhost_user_disconnect(NULL), -EINVAL);
	ck_assert_int_eq(vdev_vhost_user_get_stats(NULL, &st), -EINVAL);
	ck_assert_int_eq(vdev_vhost_user_get_stats(F.vu, NULL), -EINVAL);
	/* One connection at a time; serve_fd owns the fd even when refusing. */
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(vdev_vhost_user_serve_fd(F.vu, sv[1]), -EBUSY);
	close(sv[0]);
	ck_assert_int_eq(vdev_vhost_user_serve_fd(NULL, eventfd(0, EFD_CLOEXEC)), -EINVAL);
	/* Not a stream socket. */
	drop_fe();
	ck_assert_int_eq(vdev_vhost_user_serve_fd(F.vu, eventfd(0, EFD_CLOEXEC)), -EINVAL);
	ck_assert_int_eq(count_fds(), F.fds0);
	/* A device in use is refused. */
	connect_fe();
	start_device(P_ALL);
	vc.struct_size = sizeof(vc);
	ck_assert_int_eq(vdev_vhost_user_new(&vc, F.dev, &x), -EBUSY);
	/* An older caller's smaller stats struct gets only its part. */
	st.struct_size = offsetof(struct vdev_vhost_user_stats, messages);
	st.messages = 12345;
	ck_assert_int_eq(vdev_vhost_user_get_stats(F.vu, &st), 0);
	ck_assert_uint_eq(st.connections, 2);
	ck_assert_uint_eq(st.messages, 12345);
}
END_TEST

/* Interrupts from another thread while the call fd is replaced. */
static void *irq_thread(void *arg)
{
	(void)arg;
	for (int i = 0; i < 20000; i++)
		vdev_device_interrupt_queue(F.dev, 0);
	return NULL;
}

START_TEST(t_call_swap)
{
	pthread_t th;
	uint64_t calls0;

	start_device(P_ALL);
	calls0 = STAT(calls);
	ck_assert_int_eq(pthread_create(&th, NULL, irq_thread, NULL), 0);
	for (int i = 0; i < 300; i++) {
		int fd = new_eventfd();

		ck_assert_int_eq(call_fd(SET_VRING_CALL, 0, fd), 0);
		close(F.call[0]);
		F.call[0] = fd;
	}
	pthread_join(th, NULL);
	ck_assert_uint_eq(STAT(calls) - calls0, 20000);
	/* Without a call fd (polling front-end) interrupts go nowhere. */
	{
		uint64_t v = 0 | NOFD;

		ck_assert_int_eq(call(SET_VRING_CALL, &v, 8, NULL, 0), 0);
	}
	drain_eventfd(F.call[0]);
	calls0 = STAT(calls);
	write_read(0, 8, 1);
	ck_assert_uint_eq(STAT(calls), calls0);
	ck_assert_uint_eq(drain_eventfd(F.call[0]), 0);
}
END_TEST

/* A kick fd that reaches end of file stops being polled (no busy loop). */
START_TEST(t_kick_eof)
{
	struct pollfd p = {.fd = -1, .events = POLLIN};
	uint64_t kicks;
	int pfd[2];

	start_device(P_ALL);
	ck_assert_int_eq(pipe2(pfd, O_CLOEXEC), 0);
	ck_assert_int_eq(call_fd(SET_VRING_KICK, 0, pfd[0]), 0);
	close(pfd[0]);
	kicks = STAT(kicks);
	ck_assert_int_eq(write(pfd[1], "k", 1), 1);
	pump();
	ck_assert_uint_eq(STAT(kicks), kicks + 1);
	close(pfd[1]);
	pump();
	p.fd = vdev_vhost_user_fd(F.vu);
	ck_assert_int_eq(poll(&p, 1, 0), 0);
	ck_assert_int_eq(vdev_vhost_user_connected(F.vu), 1);
	ck_assert_uint_eq(STAT(bad_messages), 0);
}
END_TEST

/* A front-end that sends requests and never reads the replies: the
 * back-end never blocks on the full socket, it closes the connection. */
START_TEST(t_no_reader)
{
	struct hdr h = {GET_FEATURES, F_VERSION, 0};
	int i;

	for (i = 0; i < 100000 && vdev_vhost_user_connected(F.vu); i++) {
		if (send(F.sock, &h, sizeof(h), MSG_DONTWAIT | MSG_NOSIGNAL) != sizeof(h))
			ck_assert_int_eq(errno, EAGAIN);
		pump();
	}
	ck_assert_int_eq(vdev_vhost_user_connected(F.vu), 0);
	ck_assert_uint_eq(STAT(bad_messages), 0);
	ck_assert_uint_gt(STAT(messages), 10);
	drop_fe();
	ck_assert_int_eq(count_fds(), F.fds0);
}
END_TEST

/* Ring messages before the features (and the kick before the addresses):
 * the ring waits, and starts once everything is there. */
START_TEST(t_order)
{
	struct vhost_vring_addr a = {.index = 0};
	int kick = new_eventfd(), callfd = new_eventfd();

	negotiate(P_ALL);
	ck_assert_int_eq(call_fd(SET_VRING_KICK, 0, kick), 0);
	ck_assert_int_eq(call_fd(SET_VRING_CALL, 0, callfd), 0);
	ck_assert_int_eq(call_state(SET_VRING_ENABLE, 0, 1), 0);
	ck_assert_int_eq(call_state(SET_VRING_NUM, 0, 8), 0);
	mem_table();
	a.desc_user_addr = uva(GPA_BASE);
	a.avail_user_addr = uva(GPA_BASE + 0x1000);
	a.used_user_addr = uva(GPA_BASE + 0x2000);
	ck_assert_int_eq(call(SET_VRING_ADDR, &a, sizeof(a), NULL, 0), 0);
	ck_assert_ptr_null(vdev_device_get_queue(F.dev, 0));
	ck_assert_uint_eq(vdev_device_status(F.dev), 0);
	F.dev_features = get_u64(GET_FEATURES);
	ck_assert_int_eq(call_u64(SET_FEATURES, acked_features()), 0);
	ck_assert_ptr_nonnull(vdev_device_get_queue(F.dev, 0));
	ck_assert(vdev_device_status(F.dev) & VDEV_STATUS_DRIVER_OK);
	ck_assert_uint_eq(STAT(bad_messages), 0);
	close(kick);
	close(callfd);
}
END_TEST

static void set_blocking(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	ck_assert_int_ge(fl, 0);
	ck_assert_int_eq(fcntl(fd, F_SETFL, fl & ~O_NONBLOCK), 0);
}

/* The front-end shares the kick fds' file description with the back-end:
 * it can clear O_NONBLOCK and take the count itself. Here one eventfd kicks
 * both rings, so one wake-up gives the back-end two events and the first
 * read empties it: the second read must not block the event loop. */
START_TEST(t_kick_shared_blocking)
{
	int efd = eventfd(0, EFD_CLOEXEC);
	uint64_t one = 1, kicks;

	ck_assert_int_ge(efd, 0);
	start_device(P_ALL);
	ck_assert_int_eq(call_fd(SET_VRING_KICK, 0, efd), 0);
	ck_assert_int_eq(call_fd(SET_VRING_KICK, 1, efd), 0);
	close(F.kick[0]);
	close(F.kick[1]);
	F.kick[0] = efd;
	F.kick[1] = dup(efd);
	set_blocking(efd);
	kicks = STAT(kicks);
	ck_assert_int_eq(write(efd, &one, 8), 8);
	pump();
	ck_assert_uint_eq(STAT(kicks), kicks + 1);
	/* Ring 0 keeps the blocking one, ring 1 gets its own again. */
	close(F.kick[1]);
	F.kick[1] = new_eventfd();
	ck_assert_int_eq(call_fd(SET_VRING_KICK, 1, F.kick[1]), 0);
	write_read(0, 8, 1);
	write_read(1, 9, 2);
	ck_assert_uint_eq(STAT(bad_messages), 0);
}
END_TEST

/* A front-end that fills its call eventfd's counter and clears O_NONBLOCK
 * must not block the thread that completes requests: an interrupt is
 * pending anyway. */
START_TEST(t_call_full)
{
	uint64_t full = 0xfffffffffffffffeull;

	start_device(P_ALL);
	drain_eventfd(F.call[0]);
	set_blocking(F.call[0]);
	ck_assert_int_eq(write(F.call[0], &full, 8), 8);
	write_read(0, 8, 1);
	ck_assert_uint_eq(drain_eventfd(F.call[0]), full);
	/* Emptied by the front-end: interrupts come again. */
	write_read(0, 9, 2);
	ck_assert_uint_ge(drain_eventfd(F.call[0]), 1);
	ck_assert_int_eq(vdev_vhost_user_connected(F.vu), 1);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* A model without queue_reset: the device is rebuilt around the rings. */

static void *echo_io(uint32_t q, const char *msg, void *tok)
{
	uint64_t out = DATA_GPA(q), in = DATA_GPA(q) + 0x100;
	uint32_t n = (uint32_t)strlen(msg), len = 0;
	uint64_t addr[2] = {out, in};
	uint32_t lens[2] = {n, n};
	void *got = NULL;

	memcpy(gptr(out), msg, n);
	memset(gptr(in), 0, n);
	ck_assert_int_eq(vdev_drvq_add(F.q[q], addr, lens, 1, 1, tok, 0), 0);
	vdev_drvq_kick(F.q[q]);
	pump();
	if (vdev_drvq_get_used(F.q[q], &got, &len) != 1)
		return NULL;
	ck_assert_uint_eq(len, n);
	ck_assert_int_eq(memcmp(gptr(in), msg, n), 0);
	return got;
}

START_TEST(t_no_queue_reset)
{
	struct vhost_vring_state s = {0, 0};
	void *t1 = (void *)(uintptr_t)1, *t2 = (void *)(uintptr_t)2;

	ck_assert_uint_eq(vdev_device_features(F.dev) & BIT(VIRTIO_F_RING_RESET), 0);
	start_device(P_ALL);
	ck_assert_ptr_eq(echo_io(0, "hello", t1), t1);
	ck_assert_ptr_eq(echo_io(1, "world", t2), t2);
	ck_assert_ptr_eq(echo_io(0, "again", t1), t1);
	/* Stop ring 0: the device is reset and activated with ring 1 only,
	 * which carries on where it was. */
	send_msg(GET_VRING_BASE, F_VERSION, &s, sizeof(s), NULL, 0);
	pump();
	ck_assert_int_eq(recv_reply(GET_VRING_BASE, &s, sizeof(s), NULL), 8);
	ck_assert_uint_eq(s.num, 2);
	ck_assert_ptr_null(vdev_device_get_queue(F.dev, 0));
	ck_assert_ptr_eq(echo_io(1, "still", t2), t2);
	ck_assert_ptr_null(echo_io(0, "later", t1));
	ck_assert_int_eq(ring_setup(0, QSIZE, s.num), 0);
	pump();
	{
		void *got = NULL;
		uint32_t len = 0;

		ck_assert_int_eq(vdev_drvq_get_used(F.q[0], &got, &len), 1);
		ck_assert_ptr_eq(got, t1);
		ck_assert_int_eq(memcmp(gptr(DATA_GPA(0) + 0x100), "later", 5), 0);
	}
	ck_assert_ptr_eq(echo_io(0, "fine!", t1), t1);
	ck_assert_ptr_eq(echo_io(1, "both", t2), t2);
	ck_assert_uint_eq(F.echo->served, 7);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Hostile front-ends: one rule each. */

static void send_u64(uint32_t req, uint64_t v, const int *fds, int nfds)
{
	send_msg(req, F_VERSION | F_NEED_REPLY, &v, 8, fds, nfds);
}

static void send_state(uint32_t req, uint32_t index, uint32_t num)
{
	struct vhost_vring_state st = {index, num};

	send_msg(req, F_VERSION | F_NEED_REPLY, &st, 8, NULL, 0);
}

static void send_table(const struct region *r, uint32_t n, uint32_t nregions_field,
		       const int *fds, int nfds)
{
	struct mem_table t = {.n = nregions_field};

	if (n)
		memcpy(t.r, r, n * sizeof(*r));
	send_msg(SET_MEM_TABLE, F_VERSION | F_NEED_REPLY, &t, 8 + n * 32, fds, nfds);
}

static void send_addr(uint32_t index, uint32_t flags, uint64_t desc, uint64_t avail,
		      uint64_t used)
{
	struct vhost_vring_addr a = {.index = index, .flags = flags, .desc_user_addr = desc,
				     .avail_user_addr = avail, .used_user_addr = used};

	send_msg(SET_VRING_ADDR, F_VERSION | F_NEED_REPLY, &a, sizeof(a), NULL, 0);
}

static void b_size(void)
{
	uint32_t v = 1;

	send_msg(SET_FEATURES, F_VERSION, &v, 4, NULL, 0);
}

static void b_size_huge(void)
{
	struct hdr h = {SET_FEATURES, F_VERSION, 5000};

	send_raw(F.sock, &h, sizeof(h), NULL, 0);
}

static void b_get_payload(void)
{
	send_u64(GET_FEATURES, 0, NULL, 0);
}

static void b_version(void)
{
	send_msg(GET_FEATURES, 0x2, NULL, 0, NULL, 0);
}

static void b_reply_flag(void)
{
	send_msg(GET_FEATURES, F_VERSION | F_REPLY, NULL, 0, NULL, 0);
}

static void b_unknown(void)
{
	send_msg(99, F_VERSION | F_NEED_REPLY, NULL, 0, NULL, 0);
}

static void b_unsupported(void)
{
	uint8_t z[48] = {0};

	send_msg(IOTLB_MSG, F_VERSION, z, sizeof(z), NULL, 0);
}

static void b_fds_extra(void)
{
	int fd[2] = {new_eventfd(), new_eventfd()};

	send_u64(SET_VRING_CALL, 0, fd, 2);
	close(fd[0]);
	close(fd[1]);
}

static void b_fds_flood(void)
{
	int fd[12];

	for (int i = 0; i < 12; i++)
		fd[i] = new_eventfd();
	send_msg(SET_OWNER, F_VERSION, NULL, 0, fd, 12);
	for (int i = 0; i < 12; i++)
		close(fd[i]);
}

static void b_fds_missing(void)
{
	send_u64(SET_VRING_KICK, 0, NULL, 0);
}

static void b_fds_unexpected(void)
{
	int fd = new_eventfd();

	send_msg(GET_FEATURES, F_VERSION, NULL, 0, &fd, 1);
	close(fd);
}

static void b_mem_fds(void)
{
	struct region r[2] = {{GPA_BASE, MEM_SIZE / 2, uva(GPA_BASE), 0},
			      {GPA_BASE + MEM_SIZE / 2, MEM_SIZE / 2, uva(GPA_BASE + MEM_SIZE / 2),
			       MEM_SIZE / 2}};

	send_table(r, 2, 2, &F.memfd, 1);
}

static void b_mem_overlap_gpa(void)
{
	struct region r[2] = {{GPA_BASE, MEM_SIZE / 2, uva(GPA_BASE), 0},
			      {GPA_BASE + MEM_SIZE / 4, MEM_SIZE / 2, 0x7000000000ull,
			       MEM_SIZE / 2}};
	int fds[2] = {F.memfd, F.memfd};

	send_table(r, 2, 2, fds, 2);
}

static void b_mem_overlap_uva(void)
{
	struct region r[2] = {{GPA_BASE, MEM_SIZE / 2, uva(GPA_BASE), 0},
			      {0x80000000ull, MEM_SIZE / 2, uva(GPA_BASE) + 0x1000, MEM_SIZE / 2}};
	int fds[2] = {F.memfd, F.memfd};

	send_table(r, 2, 2, fds, 2);
}

static void b_mem_zero(void)
{
	struct region r = {GPA_BASE, 0, uva(GPA_BASE), 0};

	send_table(&r, 1, 1, &F.memfd, 1);
}

static void b_mem_wrap(void)
{
	struct region r = {UINT64_MAX - 4095, 8192, uva(GPA_BASE), 0};

	send_table(&r, 1, 1, &F.memfd, 1);
}

static void b_mem_offset_wrap(void)
{
	struct region r = {GPA_BASE, 8192, uva(GPA_BASE), UINT64_MAX - 4095};

	send_table(&r, 1, 1, &F.memfd, 1);
}

static void b_mem_short_fd(void)
{
	int small = memfd_of(4096);
	struct region r = {GPA_BASE, MEM_SIZE, uva(GPA_BASE), 0};

	send_table(&r, 1, 1, &small, 1);
	close(small);
}

static void b_mem_not_file(void)
{
	int fd = new_eventfd();
	struct region r = {GPA_BASE, 4096, uva(GPA_BASE), 0};

	send_table(&r, 1, 1, &fd, 1);
	close(fd);
}

static void b_mem_count(void)
{
	struct region r[8];
	int fds[8];

	for (int i = 0; i < 8; i++) {
		r[i] = (struct region){GPA_BASE + i * 0x10000ull, 0x10000,
				       uva(GPA_BASE) + i * 0x10000ull, i * 0x10000ull};
		fds[i] = F.memfd;
	}
	send_table(r, 8, 9, fds, 8);
}

static void b_mem_too_big(void)
{
	struct hdr h = {SET_MEM_TABLE, F_VERSION, 8 + 9 * 32};
	uint8_t buf[12 + 8 + 9 * 32] = {0};

	memcpy(buf, &h, 12);
	send_raw(F.sock, buf, sizeof(buf), &F.memfd, 1);
}

static void b_mem_size_mismatch(void)
{
	struct region r = {GPA_BASE, MEM_SIZE, uva(GPA_BASE), 0};
	int fds[2] = {F.memfd, F.memfd};

	send_table(&r, 1, 2, fds, 2);
}

static void b_mem_uva_wrap(void)
{
	struct region r = {GPA_BASE, 8192, UINT64_MAX - 4095, 0};

	send_table(&r, 1, 1, &F.memfd, 1);
}

static void b_add_short_fd(void)
{
	struct mem_reg m = {.r = {0x80000000ull, 1u << 20, 0x7000000000ull, 0}};
	int fd = memfd_of(4096);

	send_msg(ADD_MEM_REG, F_VERSION | F_NEED_REPLY, &m, sizeof(m), &fd, 1);
	close(fd);
}

static void b_get_base_index(void)
{
	send_state(GET_VRING_BASE, NQ, 0);
}

static void b_enable_index(void)
{
	send_state(SET_VRING_ENABLE, 200, 1);
}

static void b_config_257(void)
{
	uint8_t buf[12 + 257] = {0};
	uint32_t sz = 257;

	memcpy(buf + 4, &sz, 4);
	send_msg(GET_CONFIG, F_VERSION, buf, sizeof(buf), NULL, 0);
}

static void b_legacy_high_bits(void)
{
	send_u64(SET_FEATURES, BIT(VIRTIO_F_RING_PACKED), NULL, 0);
}

static void b_inflight_fd_short(void)
{
	struct inflight_desc d = {1u << 20, 0, NQ, QSIZE, 0};
	int fd = memfd_of(512); /* less than the two regions need */

	send_msg(SET_INFLIGHT_FD, F_VERSION, &d, sizeof(d), &fd, 1);
	close(fd);
}

static void b_mem_none(void)
{
	send_table(NULL, 0, 0, NULL, 0);
}

static void b_ring_index(void)
{
	send_state(SET_VRING_NUM, NQ, 8);
}

static void b_ring_index_fd(void)
{
	int fd = new_eventfd();

	send_u64(SET_VRING_CALL, NQ, &fd, 1);
	close(fd);
}

static void b_ring_index_addr(void)
{
	send_addr(NQ, 0, uva(GPA_BASE), uva(GPA_BASE + 0x1000), uva(GPA_BASE + 0x2000));
}

static void b_ring_outside(void)
{
	send_state(SET_VRING_NUM, 0, 8);
	send_addr(0, 0, uva(GPA_BASE + MEM_SIZE), uva(GPA_BASE + 0x1000), uva(GPA_BASE + 0x2000));
}

static void b_ring_straddles(void)
{
	/* The used ring starts inside memory but runs past its end. */
	send_state(SET_VRING_NUM, 0, QSIZE);
	send_addr(0, 0, uva(GPA_BASE), uva(GPA_BASE + 0x1000), uva(GPA_BASE + MEM_SIZE - 64));
}

static void b_ring_before_mem(void)
{
	send_addr(0, 0, uva(GPA_BASE), uva(GPA_BASE + 0x1000), uva(GPA_BASE + 0x2000));
}

static void b_num_zero(void)
{
	send_state(SET_VRING_NUM, 0, 0);
}

static void b_num_pow2(void)
{
	send_state(SET_VRING_NUM, 0, 3);
}

static void b_num_max(void)
{
	send_state(SET_VRING_NUM, 0, QSIZE * 2);
}

static void b_num_running(void)
{
	send_state(SET_VRING_NUM, 0, 32);
}

static void b_base_running(void)
{
	send_state(SET_VRING_BASE, 1, 0);
}

static void b_base_big(void)
{
	send_state(SET_VRING_BASE, 0, 0x10000);
}

static void b_addr_flags(void)
{
	send_addr(0, 0x2, uva(GPA_BASE), uva(GPA_BASE + 0x1000), uva(GPA_BASE + 0x2000));
}

static void b_addr_moved(void)
{
	send_addr(0, 0, uva(F.desc_gpa[0] + 0x1000), uva(F.avail_gpa[0]), uva(F.used_gpa[0]));
}

static void b_features_unoffered(void)
{
	send_u64(SET_FEATURES, BIT(VIRTIO_F_VERSION_1) | BIT(63), NULL, 0);
}

static void b_features_running(void)
{
	send_u64(SET_FEATURES, acked_features() & ~BIT(VIRTIO_BLK_F_FLUSH), NULL, 0);
}

static void b_protocol_unoffered(void)
{
	send_u64(SET_PROTOCOL_FEATURES, BIT(P_RARP), NULL, 0);
}

static void b_not_negotiated(void)
{
	struct config_msg c = {.offset = 0, .size = 4};

	send_msg(GET_CONFIG, F_VERSION, &c, 12 + 4, NULL, 0);
}

static void b_config_size(void)
{
	struct config_msg c = {.offset = 0, .size = 8};

	send_msg(GET_CONFIG, F_VERSION, &c, 12 + 4, NULL, 0);
}

static void b_config_flags(void)
{
	struct config_msg c = {.offset = 0, .size = 4, .flags = 7};

	send_msg(SET_CONFIG, F_VERSION | F_NEED_REPLY, &c, 12 + 4, NULL, 0);
}

static void b_config_wrap(void)
{
	struct config_msg c = {.offset = UINT32_MAX - 1, .size = 4};

	send_msg(GET_CONFIG, F_VERSION, &c, 12 + 4, NULL, 0);
}

static void b_enable_value(void)
{
	send_state(SET_VRING_ENABLE, 0, 2);
}

static void b_kick_nofd(void)
{
	send_u64(SET_VRING_KICK, 0 | NOFD, NULL, 0);
}

static void b_kick_file(void)
{
	int fd = memfd_of(4096);

	send_u64(SET_VRING_KICK, 0, &fd, 1);
	close(fd);
}

static void b_vring_bits(void)
{
	int fd = new_eventfd();

	send_u64(SET_VRING_CALL, 0x200, &fd, 1);
	close(fd);
}

/* Interrupts are eventfd writes: a pipe or socket whose reader is gone would
 * raise SIGPIPE in the thread that completes requests, a regular file would
 * grow with every interrupt. Only eventfds are taken for call and err. */
static void b_call_pipe(void)
{
	int p[2];

	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	send_u64(SET_VRING_CALL, 0, &p[1], 1);
	close(p[0]);
	close(p[1]);
	pump();
	vdev_device_interrupt_queue(F.dev, 0);
}

static void b_err_socket(void)
{
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	send_u64(SET_VRING_ERR, 1, &sv[1], 1);
	close(sv[0]);
	close(sv[1]);
	pump();
	if (vdev_vhost_user_connected(F.vu)) /* a broken ring would say so on err */
		vdev_device_set_needs_reset(F.dev);
}

static void b_call_file(void)
{
	int fd = memfd_of(0);

	send_u64(SET_VRING_CALL, 0, &fd, 1);
	close(fd);
}

static void b_log_offset_wrap(void)
{
	struct log_desc ld = {4096, UINT64_MAX - 100};
	int fd = memfd_of(4096);

	send_msg(SET_LOG_BASE, F_VERSION, &ld, sizeof(ld), &fd, 1);
	close(fd);
}

static void b_inflight_offset_wrap(void)
{
	struct inflight_desc d = {UINT64_MAX, UINT64_MAX - 100, NQ, QSIZE, 0};
	int fd = memfd_of(1u << 20);

	send_msg(SET_INFLIGHT_FD, F_VERSION, &d, sizeof(d), &fd, 1);
	close(fd);
}

static void b_base_index(void)
{
	send_state(SET_VRING_BASE, NQ, 0);
}

/* Two regions adjacent in guest and front-end memory (one file): a
 * descriptor table across their boundary is refused, not read across. */
static void b_ring_two_regions(void)
{
	struct region r[2] = {{GPA_BASE, 0x1000, uva(GPA_BASE), 0},
			      {GPA_BASE + 0x1000, MEM_SIZE - 0x1000, uva(GPA_BASE + 0x1000),
			       0x1000}};
	int fds[2] = {F.memfd, F.memfd};
	uint64_t ack = 9;

	send_table(r, 2, 2, fds, 2);
	pump();
	ck_assert_int_eq(recv_reply(SET_MEM_TABLE, &ack, 8, NULL), 8);
	ck_assert_uint_eq(ack, 0);
	send_state(SET_VRING_NUM, 0, QSIZE);
	pump();
	ck_assert_int_eq(recv_reply(SET_VRING_NUM, &ack, 8, NULL), 8);
	ck_assert_uint_eq(ack, 0);
	send_addr(0, 0, uva(GPA_BASE + 0x1000 - 0x200), uva(GPA_BASE + 0x2000),
		  uva(GPA_BASE + 0x3000));
}

static void b_log_size(void)
{
	struct log_desc ld = {0, 0};
	int fd = memfd_of(4096);

	send_msg(SET_LOG_BASE, F_VERSION, &ld, sizeof(ld), &fd, 1);
	close(fd);
}

static void b_log_short(void)
{
	struct log_desc ld = {1u << 20, 0};
	int fd = memfd_of(4096);

	send_msg(SET_LOG_BASE, F_VERSION, &ld, sizeof(ld), &fd, 1);
	close(fd);
}

static void b_inflight_zero(void)
{
	struct inflight_desc d = {0, 0, 0, QSIZE, 0};

	send_msg(GET_INFLIGHT_FD, F_VERSION, &d, sizeof(d), NULL, 0);
}

static void b_inflight_many(void)
{
	struct inflight_desc d = {0, 0, NQ + 1, QSIZE, 0};

	send_msg(GET_INFLIGHT_FD, F_VERSION, &d, sizeof(d), NULL, 0);
}

static void b_inflight_qsize(void)
{
	struct inflight_desc d = {0, 0, NQ, QSIZE * 2, 0};

	send_msg(GET_INFLIGHT_FD, F_VERSION, &d, sizeof(d), NULL, 0);
}

static void b_inflight_running(void)
{
	struct inflight_desc d = {0, 0, NQ, QSIZE, 0};

	send_msg(GET_INFLIGHT_FD, F_VERSION, &d, sizeof(d), NULL, 0);
}

static void b_inflight_short(void)
{
	struct inflight_desc d = {16, 0, NQ, QSIZE, 0};
	int fd = memfd_of(4096);

	send_msg(SET_INFLIGHT_FD, F_VERSION, &d, sizeof(d), &fd, 1);
	close(fd);
}

static void b_inflight_garbage(void)
{
	/* The area is the front-end's: a head out of range in it stops the
	 * ring from starting. */
	struct inflight_desc d = {0, 0, NQ, QSIZE, 0};
	uint8_t *a;
	int fd;

	fd = inflight_get(NQ, QSIZE, &d);
	a = mmap(NULL, d.mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ck_assert_ptr_ne(a, MAP_FAILED);
	for (uint32_t i = 0; i < QSIZE; i++)
		a[16 + i * 16] = 2; /* inflight flags must be 0 or 1 */
	munmap(a, d.mmap_size);
	ck_assert_int_eq(call(SET_INFLIGHT_FD, &d, sizeof(d), &fd, 1), 0);
	close(fd);
	mem_table();
	ck_assert_int_eq(call_u64(SET_FEATURES, acked_features()), 0);
	F.desc_gpa[0] = GPA_BASE;
	F.avail_gpa[0] = GPA_BASE + 0x1000;
	F.used_gpa[0] = GPA_BASE + 0x2000;
	ring_setup(0, QSIZE, 0);
}

static void b_slots(void)
{
	for (uint32_t i = 0; i < 33; i++) {
		struct mem_reg m = {.r = {0x80000000ull + i * 0x10000ull, 4096,
					  0x7000000000ull + i * 0x10000ull, i * 4096ull}};

		send_msg(ADD_MEM_REG, F_VERSION | F_NEED_REPLY, &m, sizeof(m), &F.memfd, 1);
		pump();
		if (i < 32) {
			uint64_t ack = 9;

			ck_assert_int_eq(recv_reply(ADD_MEM_REG, &ack, 8, NULL), 8);
			ck_assert_uint_eq(ack, 0);
		}
	}
}

static void b_add_overlap(void)
{
	struct mem_reg m = {.r = {GPA_BASE + 4096, 4096, 0x7000000000ull, 0}};

	send_msg(ADD_MEM_REG, F_VERSION | F_NEED_REPLY, &m, sizeof(m), &F.memfd, 1);
}

static void b_add_nofd(void)
{
	struct mem_reg m = {.r = {0x80000000ull, 4096, 0x7000000000ull, 0}};

	send_msg(ADD_MEM_REG, F_VERSION | F_NEED_REPLY, &m, sizeof(m), NULL, 0);
}

static void b_rem_ring(void)
{
	struct mem_reg m = {.r = {GPA_BASE, MEM_SIZE, uva(GPA_BASE), 0}};

	send_msg(REM_MEM_REG, F_VERSION | F_NEED_REPLY, &m, sizeof(m), NULL, 0);
}

static void b_status_big(void)
{
	send_u64(SET_STATUS, 0x100, NULL, 0);
}

static void g_trunc_header(void)
{
	struct hdr h = {GET_FEATURES, F_VERSION, 0};

	send_raw(F.sock, &h, 6, NULL, 0);
	shutdown(F.sock, SHUT_WR);
}

static void g_trunc_payload(void)
{
	uint8_t buf[16];
	struct hdr h = {SET_FEATURES, F_VERSION, 8};

	memcpy(buf, &h, 12);
	memset(buf + 12, 0, 4);
	send_raw(F.sock, buf, sizeof(buf), NULL, 0);
	shutdown(F.sock, SHUT_WR);
}

static void g_trunc_fds(void)
{
	struct hdr h = {SET_VRING_CALL, F_VERSION, 8};
	int fd = new_eventfd();

	send_raw(F.sock, &h, 12, &fd, 1);
	close(fd);
	shutdown(F.sock, SHUT_WR);
}

enum { L_CONN, L_NEG, L_NEG0, L_MEM, L_RUN };

struct bad_case {
	const char *name;
	int level;
	void (*fn)(void);
	int counts; /* 1: a bad message; 0: the front-end just went away */
};

static const struct bad_case bad_cases[] = {
	{"payload size", L_CONN, b_size, 1},
	{"payload too big", L_CONN, b_size_huge, 1},
	{"payload on a GET", L_CONN, b_get_payload, 1},
	{"version", L_CONN, b_version, 1},
	{"reply flag", L_CONN, b_reply_flag, 1},
	{"unknown request", L_CONN, b_unknown, 1},
	{"unsupported request", L_NEG, b_unsupported, 1},
	{"two fds", L_NEG, b_fds_extra, 1},
	{"more than 8 fds", L_CONN, b_fds_flood, 1},
	{"missing fd", L_NEG, b_fds_missing, 1},
	{"unexpected fd", L_CONN, b_fds_unexpected, 1},
	{"table: fewer fds", L_NEG, b_mem_fds, 1},
	{"table: gpa overlap", L_NEG, b_mem_overlap_gpa, 1},
	{"table: uva overlap", L_NEG, b_mem_overlap_uva, 1},
	{"table: size 0", L_NEG, b_mem_zero, 1},
	{"table: gpa wraps", L_NEG, b_mem_wrap, 1},
	{"table: offset wraps", L_NEG, b_mem_offset_wrap, 1},
	{"table: fd too short", L_NEG, b_mem_short_fd, 1},
	{"table: not a file", L_NEG, b_mem_not_file, 1},
	{"table: 9 regions", L_NEG, b_mem_count, 1},
	{"table: 9 regions sent", L_NEG, b_mem_too_big, 1},
	{"table: size mismatch", L_NEG, b_mem_size_mismatch, 1},
	{"table: uva wraps", L_NEG, b_mem_uva_wrap, 1},
	{"added region fd too short", L_NEG, b_add_short_fd, 1},
	{"get base index", L_NEG, b_get_base_index, 1},
	{"enable index", L_NEG, b_enable_index, 1},
	{"config above 256 bytes", L_NEG, b_config_257, 1},
	{"legacy with high bits", L_NEG, b_legacy_high_bits, 1},
	{"inflight fd too short", L_NEG, b_inflight_fd_short, 1},
	{"table: no region", L_NEG, b_mem_none, 1},
	{"ring index", L_NEG, b_ring_index, 1},
	{"ring index (fd)", L_NEG, b_ring_index_fd, 1},
	{"ring index (addr)", L_MEM, b_ring_index_addr, 1},
	{"ring outside memory", L_MEM, b_ring_outside, 1},
	{"ring past memory end", L_MEM, b_ring_straddles, 1},
	{"ring before memory", L_NEG, b_ring_before_mem, 1},
	{"num 0", L_NEG, b_num_zero, 1},
	{"num not a power of 2", L_NEG, b_num_pow2, 1},
	{"num above max", L_NEG, b_num_max, 1},
	{"num while running", L_RUN, b_num_running, 1},
	{"base while running", L_RUN, b_base_running, 1},
	{"base above 16 bits", L_NEG, b_base_big, 1},
	{"addr flags", L_MEM, b_addr_flags, 1},
	{"addr moved while running", L_RUN, b_addr_moved, 1},
	{"features not offered", L_NEG, b_features_unoffered, 1},
	{"features changed while running", L_RUN, b_features_running, 1},
	{"protocol features not offered", L_CONN, b_protocol_unoffered, 1},
	{"config not negotiated", L_NEG0, b_not_negotiated, 1},
	{"config size", L_NEG, b_config_size, 1},
	{"config flags", L_NEG, b_config_flags, 1},
	{"config offset wraps", L_NEG, b_config_wrap, 1},
	{"enable 2", L_NEG, b_enable_value, 1},
	{"kick without fd", L_NEG, b_kick_nofd, 1},
	{"kick fd not pollable", L_NEG, b_kick_file, 1},
	{"vring fd bits", L_NEG, b_vring_bits, 1},
	{"call fd is a pipe", L_RUN, b_call_pipe, 1},
	{"err fd is a socket", L_RUN, b_err_socket, 1},
	{"call fd is a file", L_NEG, b_call_file, 1},
	{"log size 0", L_NEG, b_log_size, 1},
	{"log offset wraps", L_NEG, b_log_offset_wrap, 1},
	{"inflight offset wraps", L_NEG, b_inflight_offset_wrap, 1},
	{"base index", L_NEG, b_base_index, 1},
	{"ring across two regions", L_NEG, b_ring_two_regions, 1},
	{"log fd too short", L_NEG, b_log_short, 1},
	{"inflight 0 queues", L_NEG, b_inflight_zero, 1},
	{"inflight too many queues", L_NEG, b_inflight_many, 1},
	{"inflight queue size", L_NEG, b_inflight_qsize, 1},
	{"inflight while running", L_RUN, b_inflight_running, 1},
	{"inflight area too short", L_NEG, b_inflight_short, 1},
	{"inflight area garbage", L_NEG, b_inflight_garbage, 1},
	{"too many regions", L_NEG, b_slots, 1},
	{"added region overlaps", L_MEM, b_add_overlap, 1},
	{"added region without fd", L_NEG, b_add_nofd, 1},
	{"removed region holds rings", L_RUN, b_rem_ring, 1},
	{"status above 8 bits", L_NEG, b_status_big, 1},
	{"truncated header", L_CONN, g_trunc_header, 0},
	{"truncated payload", L_CONN, g_trunc_payload, 0},
	{"truncated, with fd", L_CONN, g_trunc_fds, 0},
};

START_TEST(t_hostile)
{
	const struct bad_case *bc = &bad_cases[_i];
	uint64_t bad0;

	switch (bc->level) {
	case L_NEG:
		negotiate(P_ALL);
		break;
	case L_NEG0:
		negotiate(0);
		break;
	case L_MEM:
		negotiate(P_ALL);
		mem_table();
		break;
	case L_RUN:
		start_device(P_ALL);
		write_read(0, 8, 1);
		break;
	default:
		break;
	}
	bad0 = STAT(bad_messages);
	bc->fn();
	ck_assert_msg(closed(), "%s: the connection is still open", bc->name);
	ck_assert_msg(STAT(bad_messages) == bad0 + (uint64_t)bc->counts, "%s: bad_messages %llu",
		      bc->name, (unsigned long long)STAT(bad_messages));
	ck_assert_uint_eq(vdev_device_status(F.dev), 0);
	ck_assert_uint_eq(STAT(mapped_regions), 0);
	drop_fe();
	ck_assert_msg(count_fds() == F.fds0, "%s: %d fds open, %d before", bc->name, count_fds(),
		      F.fds0);
	/* The next front-end is served from scratch. */
	connect_fe();
	start_device(P_ALL);
	write_read(0, 8, 2);
	write_read(1, 9, 3);
}
END_TEST

/* ------------------------------------------------------------------------ */

static Suite *vhost_user_suite(void)
{
	Suite *s = suite_create("vhost-user");
	TCase *tc;

	tc = tcase_create("protocol");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, t_negotiate);
	tcase_add_test(tc, t_mem_sealed);
	tcase_add_test(tc, t_io_split);
	tcase_add_test(tc, t_io_packed);
	tcase_add_test(tc, t_multiqueue);
	tcase_add_test(tc, t_fragments);
	tcase_add_test(tc, t_vring_base);
	tcase_add_test(tc, t_enable_disable);
	tcase_add_loop_test(tc, t_no_protocol_features, 0, 2);
	tcase_add_test(tc, t_status);
	tcase_add_test(tc, t_reset_device);
	tcase_add_test(tc, t_mem_regs);
	tcase_add_test(tc, t_dirty_log);
	tcase_add_test(tc, t_reconnect);
	tcase_add_test(tc, t_listen);
	tcase_add_test(tc, t_args);
	tcase_add_test(tc, t_call_swap);
	tcase_add_test(tc, t_kick_eof);
	tcase_add_test(tc, t_kick_shared_blocking);
	tcase_add_test(tc, t_call_full);
	tcase_add_test(tc, t_listen_busy);
	tcase_add_test(tc, t_no_reader);
	tcase_add_test(tc, t_order);
	suite_add_tcase(s, tc);

	tc = tcase_create("inflight");
	tcase_add_checked_fixture(tc, setup_hold, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, t_inflight);
	tcase_add_test(tc, t_table_swap_inflight);
	suite_add_tcase(s, tc);

	tc = tcase_create("no-queue-reset");
	tcase_add_checked_fixture(tc, setup_echo, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, t_no_queue_reset);
	suite_add_tcase(s, tc);

	tc = tcase_create("hostile");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, t_hostile, 0, (int)(sizeof(bad_cases) / sizeof(bad_cases[0])));
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(vhost_user_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
