/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the vhost-user back-end: the input is a hostile
 * front-end. A virtio-blk device over a small memory disk is served with
 * vdev_vhost_user (no listener) on one end of a socketpair; the harness
 * plays the front-end on the other end, sending messages with file
 * descriptors attached (SCM_RIGHTS), kicking rings and writing into the
 * shared guest memory the back-end mapped. Layout:
 *
 *   byte 0    flags: bit0 two queues (MQ), bit1 VDEV_VHOST_USER_F_NO_INFLIGHT,
 *             bit2 read-only disk, bits 3-4 max_mem_slots (default, 1, 8, 509)
 *   byte 1-2  T (little endian, at most 16 KiB): the memory template length
 *   T bytes   memory template: copied to the start of every memfd created
 *   records   until the input ends (at most MAX_RECORDS):
 *     op % 8 < 5  a message: {op, req, fl, len_lo, len_hi, nfds, fdsz...,
 *                 payload}: request req % 48; header flags 1 | (fl & 0x08)
 *                 (need_reply), or fl & 0x7f when fl & 0x80 (any version /
 *                 reply bits); payload length len % 601 (what is left of the
 *                 input at most); nfds % 10 descriptors, each with a size byte
 *                 when it is a memfd (memory, log and inflight messages:
 *                 (fdsz % 16 + 1) * 4 KiB, the template copied in unless
 *                 fdsz & 0x80), an eventfd otherwise; nfds >= 0xf0 makes the
 *                 header claim 8 bytes more payload than sent
 *     op % 8 == 5 {op, i}: write 1 to the harness's copy of eventfd i
 *                 (a kick, when the back-end took it as one)
 *     op % 8 == 6 {op, m, off_lo, off_hi, v}: store v in memfd m at off
 *     op % 8 == 7 {op, how}: end the connection (how & 1: first the
 *                 back-end's vdev_vhost_user_disconnect), close the
 *                 front-end's end, and start a fresh one with serve_fd
 *   After each record the harness runs vdev_vhost_user_process while the
 *   transport's fd polls readable, reaps blk completions, and reads every
 *   reply without blocking (closing any fd a reply carried).
 *
 * Checked (abort on violation): process never fails, never blocks (the
 * fuzzer's timeout), every reply has the reply flag and version 1 and a
 * sane size; after end-of-file on the socket the transport says it is not
 * connected, and when the front-end closes its end the transport notices
 * within a few process calls; the mapped regions stay within max_mem_slots; the blk
 * counters add up. Every fd and mapping the harness made is released at the
 * end of each run (the transport owns the copies it received).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <virtio-dev/virtio-dev.h>

#define DISK 0x10000u
#define MAX_TEMPLATE 0x4000u
#define MAX_RECORDS 96u
#define MAX_PAYLOAD 600u
#define MAX_FDS_PER_MSG 9u
#define MAX_MEMFDS 32u
#define MAX_EVENTFDS 64u
#define MAX_PUMP 16u
#define HDR_SIZE 12u
#define REPLY_MAX 4096u /* larger than any reply the protocol defines */

/* vhost-user requests that carry shared memory (QEMU docs/interop/vhost-user.rst). */
#define VU_SET_MEM_TABLE 5u
#define VU_SET_LOG_BASE 6u
#define VU_SET_INFLIGHT_FD 32u
#define VU_ADD_MEM_REG 37u
#define VU_REM_MEM_REG 38u
#define VU_FLAG_VERSION 0x1u
#define VU_FLAG_REPLY 0x4u
#define VU_FLAG_NEED_REPLY 0x8u

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c))                                                                          \
			abort();                                                                   \
	} while (0)

struct memfd {
	int fd;
	uint8_t *map;
	size_t size;
};

struct fz {
	const uint8_t *in;
	size_t len, pos;
	const uint8_t *tmpl;
	size_t tmpl_len;
	vdev_vhost_user *vu;
	vdev_blk *blk;
	uint32_t nq;
	uint32_t max_slots;
	int sock; /* the front-end's end */
	struct memfd mfd[MAX_MEMFDS];
	uint32_t n_mfd;
	int efd[MAX_EVENTFDS];
	uint32_t n_efd;
	/* Reply stream reassembly: bytes of the current reply seen so far. */
	uint8_t rbuf[HDR_SIZE];
	uint32_t rgot, rskip;
};

static int take(struct fz *f, size_t n, const uint8_t **p)
{
	if (f->len - f->pos < n)
		return -1;
	*p = f->in + f->pos;
	f->pos += n;
	return 0;
}

static int is_memfd_request(uint32_t req)
{
	return req == VU_SET_MEM_TABLE || req == VU_SET_LOG_BASE || req == VU_SET_INFLIGHT_FD ||
	       req == VU_ADD_MEM_REG || req == VU_REM_MEM_REG;
}

/* A memfd of (@sz % 16 + 1) pages holding the template (zeros when
 * @sz & 0x80); the harness keeps a mapping. */
static int new_memfd(struct fz *f, uint8_t sz)
{
	size_t size = ((size_t)(sz % 16u) + 1) * 4096u;
	struct memfd *m;

	if (f->n_mfd == MAX_MEMFDS)
		return -1;
	m = &f->mfd[f->n_mfd];
	m->fd = memfd_create("fuzz-guest", MFD_CLOEXEC);
	CHECK(m->fd >= 0);
	CHECK(ftruncate(m->fd, (off_t)size) == 0);
	m->map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, m->fd, 0);
	CHECK(m->map != MAP_FAILED);
	m->size = size;
	if (!(sz & 0x80))
		memcpy(m->map, f->tmpl, f->tmpl_len < size ? f->tmpl_len : size);
	f->n_mfd++;
	return m->fd;
}

static int new_eventfd(struct fz *f)
{
	int fd;

	if (f->n_efd == MAX_EVENTFDS)
		return -1;
	fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	CHECK(fd >= 0);
	f->efd[f->n_efd++] = fd;
	return fd;
}

/* A fresh connection: the back-end gets a blocking stream socket (as a VMM
 * might hand it), the front-end's end never blocks. */
static void connect_fresh(struct fz *f)
{
	int sv[2];

	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	CHECK(fcntl(sv[0], F_SETFL, O_NONBLOCK) == 0);
	CHECK(vdev_vhost_user_serve_fd(f->vu, sv[1]) == 0);
	f->sock = sv[0];
	f->rgot = 0;
	f->rskip = 0;
}

/* Check the replies in what the back-end wrote: whole messages, each with the
 * reply flag, version 1 and a payload of sane size. */
static void parse_replies(struct fz *f, const uint8_t *p, size_t n)
{
	while (n) {
		if (f->rskip) {
			uint32_t k = f->rskip < n ? f->rskip : (uint32_t)n;

			f->rskip -= k;
			p += k;
			n -= k;
			continue;
		}
		f->rbuf[f->rgot++] = *p++;
		n--;
		if (f->rgot == HDR_SIZE) {
			uint32_t flags, size;

			memcpy(&flags, f->rbuf + 4, 4);
			memcpy(&size, f->rbuf + 8, 4);
			CHECK((flags & 3u) == VU_FLAG_VERSION && (flags & VU_FLAG_REPLY));
			CHECK(size <= REPLY_MAX);
			f->rskip = size;
			f->rgot = 0;
		}
	}
}

/* Read whatever the back-end sent. Returns 1 at end of file. */
static int drain_replies(struct fz *f)
{
	for (;;) {
		uint8_t buf[8192];
		union {
			char c[CMSG_SPACE(sizeof(int) * 16)];
			struct cmsghdr align;
		} ctl;
		struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};
		struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.c,
				    .msg_controllen = sizeof(ctl.c)};
		struct cmsghdr *c;
		ssize_t r = recvmsg(f->sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

		if (r < 0) {
			CHECK(errno == EAGAIN || errno == ECONNRESET);
			return errno == ECONNRESET;
		}
		for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
			if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
				size_t nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
				int fds[16];

				memcpy(fds, CMSG_DATA(c), nfd * sizeof(int));
				for (size_t i = 0; i < nfd; i++)
					close(fds[i]);
			}
		}
		if (r == 0)
			return 1;
		parse_replies(f, buf, (size_t)r);
	}
}

/* Let the back-end handle what is ready, then collect its replies. */
static void pump(struct fz *f)
{
	struct pollfd p = {.fd = vdev_vhost_user_fd(f->vu), .events = POLLIN};

	for (uint32_t i = 0; i < MAX_PUMP && poll(&p, 1, 0) == 1; i++)
		CHECK(vdev_vhost_user_process(f->vu) == 0);
	for (uint32_t q = 0; q < f->nq; q++)
		(void)vdev_blk_process_completions(f->blk, q);
	if (drain_replies(f)) {
		/* End of file: the back-end closed the connection; it must know. */
		CHECK(!vdev_vhost_user_connected(f->vu));
		close(f->sock);
		connect_fresh(f);
	}
}

static void send_message(struct fz *f, const uint8_t *op)
{
	union {
		char c[CMSG_SPACE(sizeof(int) * MAX_FDS_PER_MSG)];
		struct cmsghdr align;
	} ctl;
	uint8_t msg[HDR_SIZE + MAX_PAYLOAD];
	int fds[MAX_FDS_PER_MSG];
	uint32_t req = op[1] % 48u, flags, len, size, nfds, i;
	const uint8_t *payload;
	struct iovec iov;
	struct msghdr mh;

	flags = (op[2] & 0x80) ? (op[2] & 0x7fu) : VU_FLAG_VERSION | (op[2] & VU_FLAG_NEED_REPLY);
	len = (uint32_t)(op[3] | op[4] << 8) % (MAX_PAYLOAD + 1);
	nfds = op[5] % (MAX_FDS_PER_MSG + 1);
	for (i = 0; i < nfds; i++) {
		const uint8_t *sz;
		int fd;

		if (is_memfd_request(req)) {
			if (take(f, 1, &sz) < 0)
				break;
			fd = new_memfd(f, *sz);
		} else {
			fd = new_eventfd(f);
		}
		if (fd < 0)
			break;
		fds[i] = fd;
	}
	nfds = i;
	if (len > f->len - f->pos)
		len = (uint32_t)(f->len - f->pos);
	CHECK(take(f, len, &payload) == 0);
	size = op[5] >= 0xf0 ? len + 8 : len;
	memcpy(msg, &req, 4);
	memcpy(msg + 4, &flags, 4);
	memcpy(msg + 8, &size, 4);
	if (len)
		memcpy(msg + HDR_SIZE, payload, len);

	iov.iov_base = msg;
	iov.iov_len = HDR_SIZE + len;
	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	if (nfds) {
		struct cmsghdr *c;

		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.c;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	/* A full socket (the back-end stopped reading) or a closed one drops
	 * the message, as it would for a real front-end. */
	(void)sendmsg(f->sock, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
}

static void record(struct fz *f)
{
	static const uint8_t rec_len[8] = {6, 6, 6, 6, 6, 2, 5, 2};
	const uint8_t *op;
	uint64_t one = 1;
	uint8_t kind = f->in[f->pos] % 8;

	if (take(f, rec_len[kind], &op) < 0) {
		f->pos = f->len;
		return;
	}
	if (kind < 5) {
		send_message(f, op);
	} else if (kind == 5) {
		if (f->n_efd)
			(void)!write(f->efd[op[1] % f->n_efd], &one, sizeof(one));
	} else if (kind == 6) {
		if (f->n_mfd) {
			struct memfd *m = &f->mfd[op[1] % f->n_mfd];

			m->map[(size_t)(op[2] | op[3] << 8) % m->size] = op[4];
		}
	} else {
		if (op[1] & 1)
			(void)vdev_vhost_user_disconnect(f->vu);
		close(f->sock);
		/* The back-end must notice the end of file without delay. */
		for (uint32_t i = 0; i < MAX_PUMP && vdev_vhost_user_connected(f->vu); i++)
			CHECK(vdev_vhost_user_process(f->vu) == 0);
		CHECK(!vdev_vhost_user_connected(f->vu));
		connect_fresh(f);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint32_t slots[4] = {0, 1, 8, 509};
	struct vdev_vhost_user_config vc = VDEV_VHOST_USER_CONFIG_INIT;
	struct vdev_vhost_user_stats vs = VDEV_VHOST_USER_STATS_INIT;
	struct vdev_blk_config bc = VDEV_BLK_CONFIG_INIT;
	struct vdev_blk_stats s = VDEV_BLK_STATS_INIT;
	vdev_blk_backend *be = NULL;
	struct fz f;
	uint32_t i;

	if (size < 3)
		return 0;
	memset(&f, 0, sizeof(f));
	f.in = data;
	f.len = size;
	f.tmpl_len = (size_t)(data[1] | data[2] << 8) % (MAX_TEMPLATE + 1);
	if (f.tmpl_len > size - 3)
		f.tmpl_len = size - 3;
	f.tmpl = data + 3;
	f.pos = 3 + f.tmpl_len;

	CHECK(vdev_blk_backend_new_memory(DISK, (data[0] & 4) ? VDEV_BLK_BACKEND_F_READONLY : 0,
					  &be) == 0);
	f.nq = (data[0] & 1) ? 2 : 1;
	bc.num_queues = f.nq;
	bc.queue_size = 64;
	bc.max_discard_seg = 2;
	bc.max_write_zeroes_seg = 2;
	memcpy(bc.serial, "fuzz-vhost-user", 15);
	CHECK(vdev_blk_new(&bc, be, &f.blk) == 0);
	vc.flags = (data[0] & 2) ? VDEV_VHOST_USER_F_NO_INFLIGHT : 0;
	vc.max_mem_slots = slots[(data[0] >> 3) & 3];
	f.max_slots = vc.max_mem_slots ? vc.max_mem_slots : 32;
	CHECK(vdev_vhost_user_new(&vc, vdev_blk_device(f.blk), &f.vu) == 0);
	connect_fresh(&f);

	for (i = 0; i < MAX_RECORDS && f.pos < f.len; i++) {
		record(&f);
		pump(&f);
		CHECK(vdev_vhost_user_get_stats(f.vu, &vs) == 0);
		CHECK(vs.mapped_regions <= f.max_slots);
	}

	CHECK(vdev_blk_get_stats(f.blk, &s) == 0);
	CHECK(s.requests == s.reads + s.writes + s.flushes + s.discards + s.write_zeroes +
				    s.get_ids + s.malformed);
	if (data[0] & 4)
		CHECK(s.bytes_written == 0);
	vdev_vhost_user_free(f.vu);
	vdev_blk_free(f.blk);
	vdev_blk_backend_free(be);
	close(f.sock);
	for (i = 0; i < f.n_mfd; i++) {
		munmap(f.mfd[i].map, f.mfd[i].size);
		close(f.mfd[i].fd);
	}
	for (i = 0; i < f.n_efd; i++)
		close(f.efd[i]);
	return 0;
}
