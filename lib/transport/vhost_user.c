/* SPDX-License-Identifier: MIT */
/*
 * vhost-user back-end: the object, the socket, message framing, negotiation
 * and the request table. Rings are in vhost_user_ring.c, guest memory, the
 * dirty log and the in-flight area in vhost_user_mem.c; doc/vhost-user.md
 * lists what each request does.
 *
 * One thread runs everything here (vdev_vhost_user_process): it accepts,
 * reads messages, and delivers kicks, so the connection state needs no lock.
 * Only the call/err fds (interrupts come from device threads) and the
 * counters are shared, see vhost_user_ring.c.
 *
 * Framing: a message is a 12-byte header and up to sizeof(union vu_payload)
 * bytes, read without blocking as the bytes arrive (a message may come in
 * pieces); fds arrive with its bytes (SCM_RIGHTS, at most 8 in all). Each
 * request has a table entry with its exact payload size, fd count and the
 * protocol feature it needs; anything else is a bad message. A bad message
 * closes the connection: the device is reset (waiting for its in-flight
 * requests), every mapping and fd of the connection released, and the next
 * connection starts from scratch. Requests this back-end does not know are
 * bad messages too: the front-end only sends what it negotiated, so an
 * unknown one means the two sides disagree about the protocol.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <linux/virtio_config.h>

#include <virtio-dev/device.h>

#include "core/device_internal.h"
#include "internal/util.h"
#include "transport/vhost_user_priv.h"

#define VU_MSGS_PER_CALL 32 /* then let the kicks in */

#define VU_PROTOCOL_OFFERED                                                                       \
	(VU_BIT(VHOST_USER_PROTOCOL_F_MQ) | VU_BIT(VHOST_USER_PROTOCOL_F_LOG_SHMFD) |             \
	 VU_BIT(VHOST_USER_PROTOCOL_F_REPLY_ACK) | VU_BIT(VHOST_USER_PROTOCOL_F_CONFIG) |         \
	 VU_BIT(VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD) |                                           \
	 VU_BIT(VHOST_USER_PROTOCOL_F_RESET_DEVICE) |                                             \
	 VU_BIT(VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS) | VU_BIT(VHOST_USER_PROTOCOL_F_STATUS))

/* ------------------------------------------------------------------------ */
/* Helpers shared with the other files. */

int vdi_vu_has_protocol(const vdev_vhost_user *vu, unsigned bit)
{
	return !!(vu->protocol_features & VU_BIT(bit));
}

int vdi_vu_packed(const vdev_vhost_user *vu)
{
	return !!(vu->features & VU_BIT(VIRTIO_F_RING_PACKED));
}

/* The device's features as offered over vhost-user: ring addresses are the
 * front-end's virtual addresses, so there is no IOTLB (ACCESS_PLATFORM). */
static uint64_t features_offered(const vdev_vhost_user *vu)
{
	return (vdev_device_features(vu->dev) & ~VU_BIT(VIRTIO_F_ACCESS_PLATFORM)) | VU_VHOST_BITS;
}

static uint64_t protocol_offered(const vdev_vhost_user *vu)
{
	uint64_t p = VU_PROTOCOL_OFFERED;

	if (vu->flags & VDEV_VHOST_USER_F_NO_INFLIGHT)
		p &= ~VU_BIT(VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD);
	return p;
}

int vdi_vu_bad(const struct vu_msg *m, const char *fmt, ...)
{
	char why[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	vdi_log(VDEV_LOG_WARNING, "vhost-user: bad %s: %s; closing the connection",
		vdi_vu_req_name(m->hdr.request), why);
	return VU_BAD;
}

int vdi_vu_reply(vdev_vhost_user *vu, struct vu_msg *m, const void *payload, uint32_t size,
		 const int *fds, uint32_t nfds)
{
	struct vu_hdr h = {.request = m->hdr.request,
			   .flags = VHOST_USER_VERSION | VHOST_USER_REPLY,
			   .size = size};
	struct iovec iov[2] = {{.iov_base = &h, .iov_len = VU_HDR_SIZE},
			       {.iov_base = (void *)payload, .iov_len = size}};
	union {
		char buf[CMSG_SPACE(sizeof(int) * VU_MAX_FDS)];
		struct cmsghdr align;
	} c;
	struct msghdr mh;
	ssize_t n;

	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = iov;
	mh.msg_iovlen = size ? 2 : 1;
	if (nfds) {
		struct cmsghdr *cm;

		memset(&c, 0, sizeof(c));
		mh.msg_control = c.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
	}
	m->replied = 1;
	do
		n = sendmsg(vu->conn_fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)(VU_HDR_SIZE + size)) {
		/* Replies are small: a full socket means the front-end stopped
		 * reading. */
		vdi_log(VDEV_LOG_WARNING, "vhost-user: cannot send the %s reply (%d)",
			vdi_vu_req_name(m->hdr.request), n < 0 ? -errno : -EIO);
		return VU_GONE;
	}
	return 0;
}

static int reply_u64(vdev_vhost_user *vu, struct vu_msg *m, uint64_t v)
{
	return vdi_vu_reply(vu, m, &v, sizeof(v), NULL, 0);
}

/* ------------------------------------------------------------------------ */
/* Requests about the device as a whole. */

static int h_get_features(vdev_vhost_user *vu, struct vu_msg *m)
{
	return reply_u64(vu, m, features_offered(vu));
}

static int h_set_features(vdev_vhost_user *vu, struct vu_msg *m)
{
	uint64_t v = m->payload.u64, dev_new = v & ~VU_VHOST_BITS;
	int r;

	if (v & ~features_offered(vu))
		return vdi_vu_bad(m, "features 0x%llx were not offered",
				  (unsigned long long)(v & ~features_offered(vu)));
	if (!vu->features_set || dev_new != (vu->features & ~VU_VHOST_BITS)) {
		/* New device features: negotiate again from a reset device
		 * (QEMU sends them again on every start; only the vhost bits
		 * change while rings run). */
		if (vdi_vu_any_started(vu))
			return vdi_vu_bad(m, "device features changed while rings run");
		vdev_device_reset(vu->dev);
		vu->features = v;
		vu->features_set = 0;
		r = vdi_vu_negotiate(vu);
		if (r < 0) {
			vdev_device_reset(vu->dev);
			return vdi_vu_bad(m, "the device refused features 0x%llx (%d)",
					  (unsigned long long)dev_new, r);
		}
		vu->features_set = 1;
	}
	vu->features = v;
	r = vdi_vu_log_update(vu);
	return r < 0 ? r : vdi_vu_sync_rings(vu);
}

static int h_get_protocol_features(vdev_vhost_user *vu, struct vu_msg *m)
{
	return reply_u64(vu, m, protocol_offered(vu));
}

static int h_set_protocol_features(vdev_vhost_user *vu, struct vu_msg *m)
{
	uint64_t v = m->payload.u64;

	if (v & ~protocol_offered(vu))
		return vdi_vu_bad(m, "protocol features 0x%llx were not offered",
				  (unsigned long long)(v & ~protocol_offered(vu)));
	vu->protocol_features = v;
	return 0;
}

static int h_nothing(vdev_vhost_user *vu, struct vu_msg *m)
{
	/* SET_OWNER marks the session start: the connection is one already.
	 * SET_LOG_FD: the log is shared memory, nobody waits on this fd (the
	 * dispatcher closes it). */
	VDI_UNUSED(vu);
	VDI_UNUSED(m);
	return 0;
}

/* RESET_DEVICE, and the deprecated RESET_OWNER read as "disable all rings":
 * the device and every ring back to their initial state. Memory, the log and
 * the in-flight area stay: they belong to the session, not the device. */
static int h_reset_device(vdev_vhost_user *vu, struct vu_msg *m)
{
	VDI_UNUSED(m);
	vdev_device_reset(vu->dev);
	vu->asleep = 0;
	vdi_device_set_legacy(vu->dev, 0);
	vdi_vu_rings_release(vu);
	vu->features = 0;
	vu->features_set = 0;
	vu->status = 0;
	return vdi_vu_log_update(vu);
}

static int h_get_queue_num(vdev_vhost_user *vu, struct vu_msg *m)
{
	return reply_u64(vu, m, vu->nrings);
}

static int h_get_max_mem_slots(vdev_vhost_user *vu, struct vu_msg *m)
{
	return reply_u64(vu, m, vu->max_slots);
}

static int h_set_status(vdev_vhost_user *vu, struct vu_msg *m)
{
	/* Recorded for GET_STATUS only: rings start and stop through their own
	 * messages, and QEMU 7.2 sends 0 before it collects the ring
	 * positions, so 0 must not reset anything. */
	if (m->payload.u64 > 0xff)
		return vdi_vu_bad(m, "status 0x%llx", (unsigned long long)m->payload.u64);
	vu->status = (uint8_t)m->payload.u64;
	return 0;
}

static int h_get_status(vdev_vhost_user *vu, struct vu_msg *m)
{
	uint8_t dev_st = vdev_device_status(vu->dev);

	return reply_u64(vu, m, vu->status | (dev_st & VDEV_STATUS_NEEDS_RESET));
}

/* The config header's shape; 0 or VU_BAD. */
static int config_check(const struct vu_msg *m)
{
	const struct vu_config *c = &m->payload.config;

	if (m->hdr.size < VU_CONFIG_HDR_SIZE || c->size > VU_MAX_CONFIG ||
	    m->hdr.size != VU_CONFIG_HDR_SIZE + c->size)
		return vdi_vu_bad(m, "payload of %u bytes", m->hdr.size);
	if (c->offset > UINT32_MAX - c->size)
		return vdi_vu_bad(m, "offset %u + size %u wraps", c->offset, c->size);
	if (c->flags > 1) /* 0: a driver's write, 1: migration */
		return vdi_vu_bad(m, "flags 0x%x", c->flags);
	return 0;
}

static int h_get_config(vdev_vhost_user *vu, struct vu_msg *m)
{
	struct vu_config *c = &m->payload.config;
	uint32_t cs = vdev_device_config_size(vu->dev), n;
	int r = config_check(m);

	if (r < 0)
		return r;
	/* Bytes past the device's config space read as zeros (a newer
	 * front-end may ask for a longer structure). */
	memset(c->data, 0, c->size);
	n = c->offset < cs ? VDI_MIN(c->size, cs - c->offset) : 0;
	if (n && vdev_device_config_read(vu->dev, c->offset, c->data, n) < 0)
		/* The spec's way to say "failed": an empty payload. */
		return vdi_vu_reply(vu, m, NULL, 0, NULL, 0);
	return vdi_vu_reply(vu, m, c, VU_CONFIG_HDR_SIZE + c->size, NULL, 0);
}

static int h_set_config(vdev_vhost_user *vu, struct vu_msg *m)
{
	const struct vu_config *c = &m->payload.config;
	int r = config_check(m);

	if (r < 0)
		return r;
	/* The model decides what is writable; a refusal is an answer, not a
	 * protocol error. */
	return vdev_device_config_write(vu->dev, c->offset, c->data, c->size) < 0 ? VU_FAIL : 0;
}

/* ------------------------------------------------------------------------ */
/* The request table. */

#define SZ_VAR UINT32_MAX /* the handler checks the size */
#define NO_PROTO (-1)

enum vu_fds {
	FDS_NONE,  /* no fd */
	FDS_ONE,   /* exactly one */
	FDS_OPT,   /* none or one (REM_MEM_REG: tolerated, closed) */
	FDS_VRING, /* one unless the payload has VHOST_USER_VRING_NOFD */
	FDS_ANY,   /* the handler checks (SET_MEM_TABLE: one per region) */
};

struct vu_req {
	const char *name;
	int (*fn)(vdev_vhost_user *vu, struct vu_msg *m);
	uint32_t size;
	int8_t proto;
	uint8_t fds;
};

#define REQ(id, f, sz, pr, fd) [VHOST_USER_##id] = {#id, f, sz, pr, fd}
#define PF(x) VHOST_USER_PROTOCOL_F_##x

static const struct vu_req vu_reqs[VHOST_USER_REQ_MAX] = {
	REQ(GET_FEATURES, h_get_features, 0, NO_PROTO, FDS_NONE),
	REQ(SET_FEATURES, h_set_features, 8, NO_PROTO, FDS_NONE),
	REQ(SET_OWNER, h_nothing, 0, NO_PROTO, FDS_NONE),
	REQ(RESET_OWNER, h_reset_device, 0, NO_PROTO, FDS_NONE),
	REQ(SET_MEM_TABLE, vdi_vu_set_mem_table, SZ_VAR, NO_PROTO, FDS_ANY),
	REQ(SET_LOG_BASE, vdi_vu_set_log_base, sizeof(struct vu_log), PF(LOG_SHMFD), FDS_ONE),
	REQ(SET_LOG_FD, h_nothing, 0, NO_PROTO, FDS_ONE),
	REQ(SET_VRING_NUM, vdi_vu_set_vring_num, 8, NO_PROTO, FDS_NONE),
	REQ(SET_VRING_ADDR, vdi_vu_set_vring_addr, sizeof(struct vhost_vring_addr), NO_PROTO,
	    FDS_NONE),
	REQ(SET_VRING_BASE, vdi_vu_set_vring_base, 8, NO_PROTO, FDS_NONE),
	REQ(GET_VRING_BASE, vdi_vu_get_vring_base, 8, NO_PROTO, FDS_NONE),
	REQ(SET_VRING_KICK, vdi_vu_set_vring_fd, 8, NO_PROTO, FDS_VRING),
	REQ(SET_VRING_CALL, vdi_vu_set_vring_fd, 8, NO_PROTO, FDS_VRING),
	REQ(SET_VRING_ERR, vdi_vu_set_vring_fd, 8, NO_PROTO, FDS_VRING),
	REQ(GET_PROTOCOL_FEATURES, h_get_protocol_features, 0, NO_PROTO, FDS_NONE),
	REQ(SET_PROTOCOL_FEATURES, h_set_protocol_features, 8, NO_PROTO, FDS_NONE),
	REQ(GET_QUEUE_NUM, h_get_queue_num, 0, PF(MQ), FDS_NONE),
	REQ(SET_VRING_ENABLE, vdi_vu_set_vring_enable, 8, NO_PROTO, FDS_NONE),
	REQ(GET_CONFIG, h_get_config, SZ_VAR, PF(CONFIG), FDS_NONE),
	REQ(SET_CONFIG, h_set_config, SZ_VAR, PF(CONFIG), FDS_NONE),
	REQ(GET_INFLIGHT_FD, vdi_vu_get_inflight_fd, sizeof(struct vu_inflight), PF(INFLIGHT_SHMFD),
	    FDS_NONE),
	REQ(SET_INFLIGHT_FD, vdi_vu_set_inflight_fd, sizeof(struct vu_inflight), PF(INFLIGHT_SHMFD),
	    FDS_ONE),
	REQ(RESET_DEVICE, h_reset_device, 0, PF(RESET_DEVICE), FDS_NONE),
	REQ(GET_MAX_MEM_SLOTS, h_get_max_mem_slots, 0, PF(CONFIGURE_MEM_SLOTS), FDS_NONE),
	REQ(ADD_MEM_REG, vdi_vu_add_mem_reg, sizeof(struct vu_mem_reg), PF(CONFIGURE_MEM_SLOTS),
	    FDS_ONE),
	REQ(REM_MEM_REG, vdi_vu_rem_mem_reg, sizeof(struct vu_mem_reg), PF(CONFIGURE_MEM_SLOTS),
	    FDS_OPT),
	REQ(SET_STATUS, h_set_status, 8, PF(STATUS), FDS_NONE),
	REQ(GET_STATUS, h_get_status, 0, PF(STATUS), FDS_NONE),
};

const char *vdi_vu_req_name(uint32_t request)
{
	if (request < VHOST_USER_REQ_MAX && vu_reqs[request].name)
		return vu_reqs[request].name;
	return "unknown request";
}

/* The checks every request gets from its table entry. */
static int msg_check(const vdev_vhost_user *vu, const struct vu_msg *m, const struct vu_req *rq)
{
	uint32_t want_fds;

	if (!rq || !rq->fn)
		return vdi_vu_bad(m, "request %u is not supported", m->hdr.request);
	if (rq->proto != NO_PROTO && !vdi_vu_has_protocol(vu, (unsigned)rq->proto))
		return vdi_vu_bad(m, "protocol feature %d was not negotiated", rq->proto);
	if (rq->size != SZ_VAR && m->hdr.size != rq->size)
		return vdi_vu_bad(m, "payload of %u bytes, %u expected", m->hdr.size, rq->size);
	switch (rq->fds) {
	case FDS_NONE:
		want_fds = 0;
		break;
	case FDS_ONE:
		want_fds = 1;
		break;
	case FDS_OPT:
		want_fds = m->nfds <= 1 ? m->nfds : 1;
		break;
	case FDS_VRING:
		want_fds = (m->payload.u64 & VHOST_USER_VRING_NOFD) ? 0 : 1;
		break;
	default:
		return 0;
	}
	if (m->nfds != want_fds)
		return vdi_vu_bad(m, "%u fds, %u expected", m->nfds, want_fds);
	return 0;
}

static void msg_close_fds(struct vu_msg *m)
{
	for (uint32_t i = 0; i < m->nfds; i++)
		if (m->fds[i] >= 0)
			close(m->fds[i]);
	m->nfds = 0;
}

/* ------------------------------------------------------------------------ */
/* The connection. */

static void listener_watch(vdev_vhost_user *vu, int on)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = VU_EV(VU_EV_LISTEN, 0)};

	if (vu->listen_fd < 0)
		return;
	/* While a front-end is served, further ones wait in the backlog. */
	if (on)
		epoll_ctl(vu->epfd, EPOLL_CTL_ADD, vu->listen_fd, &ev);
	else
		epoll_ctl(vu->epfd, EPOLL_CTL_DEL, vu->listen_fd, NULL);
}

static int conn_open(vdev_vhost_user *vu, int fd)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = VU_EV(VU_EV_CONN, 0)};

	if (epoll_ctl(vu->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	listener_watch(vu, 0);
	vu->conn_fd = fd;
	vu->got = 0;
	vu->msg.nfds = 0;
	__atomic_store_n(&vu->connected, 1, __ATOMIC_RELEASE);
	__atomic_fetch_add(&vu->stats.connections, 1, __ATOMIC_RELAXED);
	vdi_log(VDEV_LOG_INFO, "vhost-user: front-end connected");
	return 0;
}

/* Everything of the connection goes: the device is reset first (it waits
 * for its in-flight requests), so nothing uses the mappings and fds after. */
static void conn_close(vdev_vhost_user *vu)
{
	vdev_device_reset(vu->dev);
	vu->asleep = 0;
	vdi_device_set_legacy(vu->dev, 0);
	vdi_vu_rings_release(vu);
	vdi_vu_mem_release(vu);
	msg_close_fds(&vu->msg);
	vu->got = 0;
	epoll_ctl(vu->epfd, EPOLL_CTL_DEL, vu->conn_fd, NULL);
	close(vu->conn_fd);
	vu->conn_fd = -1;
	vu->protocol_features = 0;
	vu->features = 0;
	vu->features_set = 0;
	vu->status = 0;
	vu->suspended = 0;
	__atomic_store_n(&vu->connected, 0, __ATOMIC_RELEASE);
	listener_watch(vu, 1);
}

/* Take the fds of one recvmsg. Returns 0, or -1 when there were too many. */
static int take_fds(struct vu_msg *m, struct msghdr *mh)
{
	int over = !!(mh->msg_flags & MSG_CTRUNC); /* the kernel dropped some */

	for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
		size_t n;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
			if (m->nfds < VU_MAX_FDS) {
				m->fds[m->nfds++] = fd;
			} else {
				close(fd);
				over = 1;
			}
		}
	}
	return over ? -1 : 0;
}

/*
 * Read what is there of the current message. Returns 1 when it is complete,
 * 0 when more bytes are needed, VU_GONE when the front-end went away and
 * VU_BAD for a malformed header or too many fds.
 */
static int conn_recv(vdev_vhost_user *vu)
{
	struct vu_msg *m = &vu->msg;

	for (;;) {
		union {
			char buf[CMSG_SPACE(sizeof(int) * VU_MAX_FDS)];
			struct cmsghdr align;
		} c;
		struct iovec iov;
		struct msghdr mh;
		ssize_t n;

		if (vu->got < VU_HDR_SIZE) {
			iov.iov_base = (uint8_t *)&m->hdr + vu->got;
			iov.iov_len = VU_HDR_SIZE - vu->got;
		} else {
			iov.iov_base = (uint8_t *)&m->payload + (vu->got - VU_HDR_SIZE);
			iov.iov_len = VU_HDR_SIZE + m->hdr.size - vu->got;
		}
		memset(&mh, 0, sizeof(mh));
		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		mh.msg_control = c.buf;
		mh.msg_controllen = sizeof(c.buf);
		n = recvmsg(vu->conn_fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			vdi_log(VDEV_LOG_INFO, "vhost-user: connection failed (%d)", -errno);
			return VU_GONE;
		}
		if (take_fds(m, &mh) < 0)
			return vdi_vu_bad(m, "more than %u fds", VU_MAX_FDS);
		if (n == 0) {
			vdi_log(VDEV_LOG_INFO, "vhost-user: front-end disconnected%s",
				vu->got ? " in the middle of a message" : "");
			return VU_GONE;
		}
		vu->got += (size_t)n;
		if (vu->got == VU_HDR_SIZE) {
			if ((m->hdr.flags & VHOST_USER_VERSION_MASK) != VHOST_USER_VERSION ||
			    (m->hdr.flags & VHOST_USER_REPLY))
				return vdi_vu_bad(m, "header flags 0x%x", m->hdr.flags);
			if (m->hdr.size > sizeof(m->payload))
				return vdi_vu_bad(m, "payload of %u bytes", m->hdr.size);
			memset(&m->payload, 0, sizeof(m->payload));
		}
		if (vu->got >= VU_HDR_SIZE && vu->got == VU_HDR_SIZE + m->hdr.size)
			return 1;
	}
}

/* Handle the complete message. Returns 0, or < 0 when the connection must
 * close (bad message or dead socket). */
static int conn_handle(vdev_vhost_user *vu)
{
	struct vu_msg *m = &vu->msg;
	const struct vu_req *rq = m->hdr.request < VHOST_USER_REQ_MAX ? &vu_reqs[m->hdr.request]
									 : NULL;
	int need_reply = !!(m->hdr.flags & VHOST_USER_NEED_REPLY);
	int r;

	m->replied = 0;
	vdi_log(VDEV_LOG_DEBUG, "vhost-user: %s (%u bytes, %u fds, flags 0x%x)",
		vdi_vu_req_name(m->hdr.request), m->hdr.size, m->nfds, m->hdr.flags);
	r = msg_check(vu, m, rq);
	if (r == 0)
		r = rq->fn(vu, m);
	/* REPLY_ACK: 0 for success, 1 for failure, unless the request has a
	 * reply of its own. Sent before a bad message closes the connection,
	 * so the front-end knows why. */
	if (need_reply && !m->replied && r != VU_GONE) {
		int e = reply_u64(vu, m, r == 0 ? 0 : 1);

		if (r >= 0)
			r = e;
	}
	msg_close_fds(m);
	vu->got = 0;
	if (r >= 0) {
		__atomic_fetch_add(&vu->stats.messages, 1, __ATOMIC_RELAXED);
		return 0;
	}
	/* A message that could not be carried out (a ring that cannot start,
	 * a device that cannot sleep) ends the connection like a bad one. */
	if (r != VU_BAD && r != VU_GONE) {
		vdi_log(VDEV_LOG_WARNING, "vhost-user: %s failed (%d); closing the connection",
			vdi_vu_req_name(m->hdr.request), r);
		r = VU_BAD;
	}
	return r;
}

static void conn_input(vdev_vhost_user *vu)
{
	for (int i = 0; i < VU_MSGS_PER_CALL && vu->conn_fd >= 0; i++) {
		int r = conn_recv(vu);

		if (r == 1)
			r = conn_handle(vu);
		else if (r == 0)
			return;
		if (r < 0) {
			if (r == VU_BAD)
				__atomic_fetch_add(&vu->stats.bad_messages, 1, __ATOMIC_RELAXED);
			conn_close(vu);
			return;
		}
	}
}

static void listener_accept(vdev_vhost_user *vu)
{
	int fd = accept4(vu->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

	if (fd < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
		    errno != ECONNABORTED)
			vdi_log(VDEV_LOG_WARNING, "vhost-user: accept failed (%d)", -errno);
		return;
	}
	if (vu->conn_fd >= 0) {
		/* Not reached while the listener is out of the epoll set, but
		 * one event may have been pending when the connection came. */
		vdi_log(VDEV_LOG_WARNING, "vhost-user: a second front-end was refused");
		close(fd);
		return;
	}
	if (conn_open(vu, fd) < 0)
		vdi_log(VDEV_LOG_WARNING, "vhost-user: cannot watch the new connection");
}

/* ------------------------------------------------------------------------ */
/* The listening socket. */

static int socket_addr(const char *path, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	strcpy(sa->sun_path, path);
	return 0;
}

/* A socket file at @path: refuse it if a server answers, remove it if not. */
static int clear_stale(const struct sockaddr_un *sa)
{
	struct stat st;
	int fd, r;

	if (lstat(sa->sun_path, &st) < 0 || !S_ISSOCK(st.st_mode))
		return 0; /* nothing there, or not ours to remove: bind decides */
	/* Non-blocking: a live server with a full backlog (EAGAIN) must not
	 * keep us waiting until it accepts. */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	r = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
	if (r == 0 || errno == EAGAIN) {
		close(fd);
		return -EADDRINUSE;
	}
	r = errno;
	close(fd);
	if (r == ECONNREFUSED && unlink(sa->sun_path) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

static int listener_open(vdev_vhost_user *vu, const char *path)
{
	struct sockaddr_un sa;
	struct stat st;
	int fd, r;

	r = socket_addr(path, &sa);
	if (r == 0)
		r = clear_stale(&sa);
	if (r < 0)
		return r;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	/* Owner only, set before listen() so that nobody else can connect
	 * in between (the VMM may chmod/chown the file afterwards). */
	if (bind(fd, (const struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	if (chmod(path, 0600) < 0 || listen(fd, 16) < 0 || stat(path, &st) < 0) {
		r = -errno;
		unlink(path);
		close(fd);
		return r;
	}
	vu->listen_fd = fd;
	vu->path_dev = st.st_dev;
	vu->path_ino = st.st_ino;
	return 0;
}

/* Remove the socket file, unless someone else's replaced it meanwhile. */
static void listener_close(vdev_vhost_user *vu)
{
	struct stat st;

	if (vu->listen_fd < 0)
		return;
	if (stat(vu->path, &st) == 0 && (uint64_t)st.st_dev == vu->path_dev &&
	    (uint64_t)st.st_ino == vu->path_ino)
		unlink(vu->path);
	close(vu->listen_fd);
	vu->listen_fd = -1;
}

/* ------------------------------------------------------------------------ */
/* Public API. */

static void vu_destroy(vdev_vhost_user *vu)
{
	listener_close(vu);
	if (vu->epfd >= 0)
		close(vu->epfd);
	vdev_irq_free(vu->irq);
	vdev_mem_free(vu->mem);
	if (vu->rings)
		for (uint32_t i = 0; i < vu->nrings; i++)
			pthread_mutex_destroy(&vu->rings[i].lock);
	free(vu->rings);
	free(vu->regions);
	free(vu->path);
	free(vu);
}

VDEV_EXPORT int vdev_vhost_user_new(const struct vdev_vhost_user_config *cfg, vdev_device *dev,
				    vdev_vhost_user **out)
{
	struct vdev_vhost_user_config c;
	struct vdev_irq_ops irq_ops = VDEV_IRQ_OPS_INIT;
	vdev_vhost_user *vu;
	int r;

	if (!cfg || !dev || !out || vdi_copy_versioned(&c, sizeof(c), cfg) < 0)
		return -EINVAL;
	if ((c.flags & ~VDEV_VHOST_USER_F_NO_INFLIGHT) || c.max_mem_slots > VDEV_MEM_MAX_REGIONS ||
	    c.reserved != 0)
		return -EINVAL;
	if (vdev_device_status(dev) != 0)
		return -EBUSY;
	vu = calloc(1, sizeof(*vu));
	if (!vu)
		return -ENOMEM;
	vu->epfd = vu->listen_fd = vu->conn_fd = -1;
	vu->flags = c.flags;
	vu->max_slots = c.max_mem_slots ? c.max_mem_slots : VU_DEFAULT_SLOTS;
	vu->dev = dev;
	vu->caps = vdi_device_caps(dev);
	vu->nrings = VDI_MIN(vdev_device_num_queues(dev), VU_MAX_RINGS);
	if (vu->nrings < vdev_device_num_queues(dev))
		vdi_log(VDEV_LOG_WARNING, "vhost-user: only the first %u of %u queues are served",
			vu->nrings, vdev_device_num_queues(dev));
	vu->rings = calloc(vu->nrings, sizeof(*vu->rings));
	vu->regions = calloc(vu->max_slots, sizeof(*vu->regions));
	vu->path = c.socket_path ? strdup(c.socket_path) : NULL;
	if (!vu->rings || !vu->regions || (c.socket_path && !vu->path)) {
		free(vu->rings);
		vu->rings = NULL;
		vu_destroy(vu);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < vu->nrings; i++) {
		pthread_mutex_init(&vu->rings[i].lock, NULL);
		vu->rings[i].kick_fd = vu->rings[i].call_fd = vu->rings[i].err_fd = -1;
	}
	vdi_vu_probe_eventfd(vu);
	irq_ops.trigger = vdi_vu_irq_trigger;
	r = vdev_mem_new(&vu->mem);
	if (r == 0)
		r = vdev_irq_new(&irq_ops, vu, &vu->irq);
	if (r == 0) {
		vu->epfd = epoll_create1(EPOLL_CLOEXEC);
		if (vu->epfd < 0)
			r = -errno;
	}
	if (r == 0 && vu->path) {
		r = listener_open(vu, vu->path);
		if (r == 0)
			listener_watch(vu, 1);
	}
	if (r < 0) {
		vu_destroy(vu);
		return r;
	}
	/* Status 0 (checked above): neither can be refused. */
	vdev_device_set_memory(dev, vu->mem);
	vdev_device_set_irq(dev, vu->irq);
	vu->stats.struct_size = sizeof(vu->stats);
	*out = vu;
	return 0;
}

VDEV_EXPORT void vdev_vhost_user_free(vdev_vhost_user *vu)
{
	if (!vu)
		return;
	if (vu->conn_fd >= 0)
		conn_close(vu);
	vdev_device_reset(vu->dev);
	vdev_device_set_memory(vu->dev, NULL);
	vdev_device_set_irq(vu->dev, NULL);
	vu_destroy(vu);
}

VDEV_EXPORT int vdev_vhost_user_fd(const vdev_vhost_user *vu)
{
	return vu ? vu->epfd : -EINVAL;
}

VDEV_EXPORT int vdev_vhost_user_process(vdev_vhost_user *vu)
{
	struct epoll_event ev[16];
	int n;

	if (!vu)
		return -EINVAL;
	n = epoll_wait(vu->epfd, ev, (int)VDI_ARRAY_SIZE(ev), 0);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	for (int i = 0; i < n; i++) {
		uint64_t kind = ev[i].data.u64 >> 32;
		uint32_t idx = (uint32_t)ev[i].data.u64;

		/* Events of one batch may be stale (a connection closed by an
		 * earlier one): every handler copes with a fd that has nothing
		 * to read or is gone. */
		if (kind == VU_EV_LISTEN)
			listener_accept(vu);
		else if (kind == VU_EV_CONN)
			conn_input(vu);
		else if (kind == VU_EV_KICK && idx < vu->nrings)
			vdi_vu_kick(vu, idx);
	}
	return 0;
}

VDEV_EXPORT int vdev_vhost_user_serve_fd(vdev_vhost_user *vu, int fd)
{
	int type = 0, fl;
	socklen_t len = sizeof(type);

	if (fd < 0)
		return -EINVAL;
	if (!vu) {
		close(fd);
		return -EINVAL;
	}
	if (vu->conn_fd >= 0) {
		close(fd);
		return -EBUSY;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_STREAM ||
	    (fl = fcntl(fd, F_GETFL)) < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
		close(fd);
		return -EINVAL;
	}
	return conn_open(vu, fd);
}

VDEV_EXPORT int vdev_vhost_user_connected(const vdev_vhost_user *vu)
{
	return vu ? __atomic_load_n(&vu->connected, __ATOMIC_ACQUIRE) : 0;
}

VDEV_EXPORT int vdev_vhost_user_disconnect(vdev_vhost_user *vu)
{
	if (!vu)
		return -EINVAL;
	if (vu->conn_fd < 0)
		return -ENOTCONN;
	conn_close(vu);
	return 0;
}

VDEV_EXPORT int vdev_vhost_user_get_stats(const vdev_vhost_user *vu,
					  struct vdev_vhost_user_stats *st)
{
	struct vdev_vhost_user_stats s = VDEV_VHOST_USER_STATS_INIT;

	if (!vu || !st)
		return -EINVAL;
#define LD(f) s.f = __atomic_load_n(&vu->stats.f, __ATOMIC_RELAXED)
	LD(connections);
	LD(messages);
	LD(bad_messages);
	LD(kicks);
	LD(calls);
	LD(mapped_regions);
#undef LD
	return vdi_copy_out_versioned(st, &s, sizeof(s));
}
