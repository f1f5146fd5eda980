/* SPDX-License-Identifier: MIT */
/*
 * vhost-user back-end: rings. The SET_VRING_* messages fill in a ring's
 * setup; a ring runs in the device while it has a size, addresses inside
 * guest memory, a kick fd, is enabled (with VHOST_USER_F_PROTOCOL_FEATURES
 * negotiated only after SET_VRING_ENABLE 1; without it, as soon as the rest
 * is there), the features are set and guest memory is not being replaced.
 * vdi_vu_sync_rings brings the device in line with that after every message.
 *
 * A model with queue_reset/queue_enable gets its rings started and stopped
 * one by one (QEMU starts queue pairs one at a time and stops rings one
 * GET_VRING_BASE at a time); the device goes to DRIVER_OK with the first.
 * A model without them is reset and activated again with every ring that
 * should run whenever that set changes, each at its saved position.
 *
 * Stopping puts the device to sleep first when the model can sleep, which
 * answers every request in flight: the position GET_VRING_BASE returns then
 * has nothing outstanding behind it.
 *
 * Interrupts: the device's vdev_irq calls vdi_vu_irq_trigger, from whatever
 * thread completes requests, which writes the ring's call eventfd. The fd is
 * read and written under the ring's lock, so SET_VRING_CALL can replace it
 * at any time. A configuration-change interrupt with DEVICE_NEEDS_RESET set
 * (a broken ring) is reported on the rings' error fds.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <linux/virtio_config.h>

#include <virtio-dev/device.h>

#include "core/device_internal.h"
#include "core/queue_internal.h"
#include "internal/util.h"
#include "transport/vhost_user_priv.h"

int vdi_vu_quiesce_begin(vdev_vhost_user *vu)
{
	int r;

	if (vu->asleep || !(vdev_device_status(vu->dev) & VDEV_STATUS_DRIVER_OK))
		return 0;
	r = vdev_device_sleep(vu->dev);
	if (r < 0) {
		vdi_log(VDEV_LOG_WARNING, "vhost-user: the device cannot sleep (%d)", r);
		return r;
	}
	vu->asleep = 1;
	return 0;
}

void vdi_vu_quiesce_end(vdev_vhost_user *vu)
{
	if (!vu->asleep)
		return;
	vu->asleep = 0;
	vdev_device_wake(vu->dev);
}

static int ring_enabled(const vdev_vhost_user *vu, const struct vu_ring *r)
{
	/* Without protocol features a ring is enabled once it exists. */
	return !(vu->features & VU_BIT(VHOST_USER_F_PROTOCOL_FEATURES)) || r->enabled;
}

static int ring_wanted(const vdev_vhost_user *vu, const struct vu_ring *r)
{
	return vu->features_set && !vu->suspended && r->num && r->addr_set && r->kick_fd >= 0 &&
	       ring_enabled(vu, r);
}

int vdi_vu_any_started(const vdev_vhost_user *vu)
{
	for (uint32_t i = 0; i < vu->nrings; i++)
		if (vu->rings[i].started)
			return 1;
	return 0;
}

/* The ring's areas in guest-physical addresses, each inside one region. */
static int ring_gpas(const vdev_vhost_user *vu, const struct vu_ring *r, uint32_t num,
		     uint64_t gpa[3])
{
	const uint64_t uva[3] = {r->desc_uva, r->avail_uva, r->used_uva};
	uint64_t len[3];

	vdi_queue_area_sizes(vdi_vu_packed(vu), num, len);
	for (int i = 0; i < 3; i++) {
		/* num 0 (not known yet): check the first byte only. */
		if (vdi_vu_uva_to_gpa(vu, uva[i], len[i] ? len[i] : 1, &gpa[i]) < 0)
			return -EFAULT;
	}
	return 0;
}

/* The position the ring starts at. A split ring whose used index is not
 * ours (SET_VRING_BASE, or a first start) takes it from the used ring, as the
 * driver sees it. */
static int ring_start_state(vdev_vhost_user *vu, struct vu_ring *r, uint64_t used_gpa,
			    struct vdev_queue_state *st)
{
	*st = r->base;
	st->struct_size = sizeof(*st);
	if (!vdi_vu_packed(vu) && !r->used_known) {
		uint16_t idx;
		int e = vdev_mem_read(vu->mem, used_gpa + 2, &idx, sizeof(idx));

		if (e < 0)
			return e;
		st->used_idx = vdi_le16(idx);
	}
	return 0;
}

/* Hand ring @i to the device (recorded before DRIVER_OK, live after). */
static int ring_start(vdev_vhost_user *vu, uint32_t i)
{
	struct vu_ring *r = &vu->rings[i];
	struct vdev_queue_config qc = VDEV_QUEUE_CONFIG_INIT;
	struct vdev_queue_state st;
	uint64_t gpa[3];
	void *infl = NULL;
	size_t infl_len = 0;
	int e;

	e = ring_gpas(vu, r, r->num, gpa);
	if (e == 0)
		e = ring_start_state(vu, r, gpa[2], &st);
	if (e < 0) {
		vdi_log(VDEV_LOG_WARNING, "vhost-user: ring %u lies outside guest memory", i);
		return e;
	}
	qc.size = r->num;
	qc.desc_addr = gpa[0];
	qc.driver_addr = gpa[1];
	qc.device_addr = gpa[2];
	if (vdi_vu_inflight_for(vu, i, &infl, &infl_len) &&
	    (vdi_vu_packed(vu) || r->num > vu->inflight_qsize)) {
		/* The area is laid out for split rings of up to inflight_qsize. */
		vdi_log(VDEV_LOG_INFO, "vhost-user: ring %u runs without in-flight tracking", i);
		infl = NULL;
		infl_len = 0;
	}
	e = vdi_device_queue_start(vu->dev, i, &qc, &st, infl, infl_len);
	if (e < 0) {
		vdi_log(VDEV_LOG_WARNING, "vhost-user: ring %u cannot start (%d)", i, e);
		return e;
	}
	r->started = 1;
	return 0;
}

/* Status ACKNOWLEDGE | DRIVER, the acked features without the vhost-only
 * bits, FEATURES_OK: the driver's half of negotiation, on a reset device. */
int vdi_vu_negotiate(vdev_vhost_user *vu)
{
	uint64_t acked = vu->features & ~VU_VHOST_BITS;
	int legacy = !(acked & VU_BIT(VIRTIO_F_VERSION_1));
	int r;

	r = vdi_device_set_legacy(vu->dev, legacy);
	if (r == 0)
		r = vdev_device_set_status(vu->dev, VDEV_STATUS_ACKNOWLEDGE | VDEV_STATUS_DRIVER);
	if (r == 0 && (acked & ~vdi_device_offered(vu->dev)))
		r = -EPERM;
	if (r == 0)
		r = vdev_device_set_acked_features(vu->dev, acked);
	if (r == 0 && !legacy)
		r = vdev_device_set_status(vu->dev, VDEV_STATUS_ACKNOWLEDGE | VDEV_STATUS_DRIVER |
							    VDEV_STATUS_FEATURES_OK);
	return r;
}

static int driver_ok(vdev_vhost_user *vu)
{
	uint8_t st = vdev_device_status(vu->dev);

	if ((st & VDEV_STATUS_NEEDS_RESET) && !vdi_vu_any_started(vu)) {
		/* Broken earlier (a guest's bad ring) and every ring stopped
		 * since, as QEMU does when the guest resets: start afresh. */
		int e;

		vdev_device_reset(vu->dev);
		e = vdi_vu_negotiate(vu);
		if (e < 0)
			return e;
		st = vdev_device_status(vu->dev);
	}
	if (!(st & VDEV_STATUS_DRIVER_OK))
		vdev_device_set_status(vu->dev, st | VDEV_STATUS_DRIVER_OK);
	st = vdev_device_status(vu->dev);
	if (!(st & VDEV_STATUS_DRIVER_OK) || (st & VDEV_STATUS_NEEDS_RESET)) {
		vdi_log(VDEV_LOG_WARNING, "vhost-user: the device did not start (status 0x%x)", st);
		return -EIO;
	}
	return 0;
}

/* A model with per-queue reset: stop and start rings one at a time. */
static int sync_per_queue(vdev_vhost_user *vu, int need_stop)
{
	int e;

	if (need_stop) {
		e = vdi_vu_quiesce_begin(vu);
		if (e < 0)
			return e;
		for (uint32_t i = 0; i < vu->nrings; i++) {
			struct vu_ring *r = &vu->rings[i];

			if (!r->started || ring_wanted(vu, r))
				continue;
			if (vdi_device_queue_stop(vu->dev, i, &r->base) == 0)
				r->used_known = 1;
			r->started = 0;
		}
		vdi_vu_quiesce_end(vu);
	}
	for (uint32_t i = 0; i < vu->nrings; i++) {
		struct vu_ring *r = &vu->rings[i];

		if (r->started || !ring_wanted(vu, r))
			continue;
		/* The model is activated with no queue; each comes on its own. */
		e = driver_ok(vu);
		if (e == 0)
			e = ring_start(vu, i);
		if (e < 0)
			return e;
		/* Serve what the driver queued before the start, and the
		 * requests the in-flight area says to resubmit. */
		vdev_device_queue_notify(vu->dev, i);
	}
	return 0;
}

/* A model without per-queue reset: reset it and activate it again with the
 * rings that should run, each where it stood. */
static int sync_rebuild(vdev_vhost_user *vu)
{
	int any = 0, e;

	if (vdev_device_status(vu->dev) & VDEV_STATUS_DRIVER_OK) {
		e = vdi_vu_quiesce_begin(vu);
		if (e < 0)
			return e;
		for (uint32_t i = 0; i < vu->nrings; i++) {
			struct vu_ring *r = &vu->rings[i];

			if (r->started && vdi_device_queue_state(vu->dev, i, &r->base) == 0)
				r->used_known = 1;
		}
	}
	vdev_device_reset(vu->dev); /* also ends the sleep */
	vu->asleep = 0;
	for (uint32_t i = 0; i < vu->nrings; i++)
		vu->rings[i].started = 0;
	if (!vu->features_set)
		return 0;
	e = vdi_vu_negotiate(vu);
	for (uint32_t i = 0; e == 0 && i < vu->nrings; i++) {
		if (!ring_wanted(vu, &vu->rings[i]))
			continue;
		e = ring_start(vu, i);
		any = 1;
	}
	if (e == 0 && any)
		e = driver_ok(vu);
	for (uint32_t i = 0; e == 0 && i < vu->nrings; i++)
		if (vu->rings[i].started)
			vdev_device_queue_notify(vu->dev, i);
	return e;
}

int vdi_vu_sync_rings(vdev_vhost_user *vu)
{
	int need_stop = 0, need_start = 0;

	for (uint32_t i = 0; i < vu->nrings; i++) {
		const struct vu_ring *r = &vu->rings[i];
		int want = ring_wanted(vu, r);

		need_stop |= r->started && !want;
		need_start |= !r->started && want;
	}
	if (!need_stop && !need_start)
		return 0;
	if (vu->caps & VDI_DEVICE_CAP_QUEUE_RESET)
		return sync_per_queue(vu, need_stop);
	return sync_rebuild(vu);
}

static void fd_close(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void kick_close(vdev_vhost_user *vu, struct vu_ring *r)
{
	if (r->kick_fd < 0)
		return;
	epoll_ctl(vu->epfd, EPOLL_CTL_DEL, r->kick_fd, NULL);
	fd_close(&r->kick_fd);
}

/* Replace a fd device threads use (call, err) under the ring's lock. */
static void locked_fd_swap(struct vu_ring *r, int *slot, int fd)
{
	int old;

	pthread_mutex_lock(&r->lock);
	old = *slot;
	*slot = fd;
	pthread_mutex_unlock(&r->lock);
	if (old >= 0)
		close(old);
}

void vdi_vu_rings_release(vdev_vhost_user *vu)
{
	/* The device is reset: no thread triggers interrupts any more. */
	for (uint32_t i = 0; i < vu->nrings; i++) {
		struct vu_ring *r = &vu->rings[i];

		kick_close(vu, r);
		locked_fd_swap(r, &r->call_fd, -1);
		locked_fd_swap(r, &r->err_fd, -1);
	}
	vdi_vu_rings_forget(vu);
}

/* Back to "never set up" (the fds are the caller's business). */
void vdi_vu_rings_forget(vdev_vhost_user *vu)
{
	for (uint32_t i = 0; i < vu->nrings; i++) {
		struct vu_ring *r = &vu->rings[i];

		r->num = 0;
		r->addr_set = 0;
		r->addr_flags = 0;
		r->desc_uva = r->avail_uva = r->used_uva = 0;
		memset(&r->base, 0, sizeof(r->base));
		r->used_known = 0;
		r->enabled = 0;
		r->started = 0;
	}
}

/*
 * The front-end shares the file description of every kick, call and err fd
 * with us: it may clear the O_NONBLOCK we set, and read or fill the eventfd
 * itself. So a read asks for RWF_NOWAIT on each call (O_NONBLOCK alone on
 * kernels without it for this file), and a write first checks that the
 * eventfd counter has room (see signal_fd).
 */
static ssize_t read_nowait(int fd, void *buf, size_t len)
{
	struct iovec iov = {.iov_base = buf, .iov_len = len};
	ssize_t n = preadv2(fd, &iov, 1, -1, RWF_NOWAIT);

	if (n < 0 && (errno == EOPNOTSUPP || errno == ENOSYS))
		n = read(fd, buf, len);
	return n;
}

void vdi_vu_kick(vdev_vhost_user *vu, uint32_t ring)
{
	struct vu_ring *r = &vu->rings[ring];
	uint8_t buf[64];
	ssize_t n;

	if (r->kick_fd < 0)
		return;
	/* One read: an eventfd hands over its whole count; a pipe is read
	 * again on the next wake-up (level-triggered). */
	n = read_nowait(r->kick_fd, buf, sizeof(buf));
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		/* Would be readable forever: stop watching it. */
		vdi_log(VDEV_LOG_WARNING, "vhost-user: ring %u: kick fd closed or failing", ring);
		kick_close(vu, r);
		return;
	}
	if (n < 0)
		return;
	__atomic_fetch_add(&vu->stats.kicks, 1, __ATOMIC_RELAXED);
	if (r->started)
		vdev_device_queue_notify(vu->dev, ring);
}

static int signal_fd(int fd)
{
	const uint64_t one = 1;
	struct pollfd p = {.fd = fd, .events = POLLOUT};
	int n;

	/* A full counter already has an interrupt pending, and writing to it
	 * would block if the front-end cleared O_NONBLOCK. (A front-end that
	 * fills it between this check and the write can still block us:
	 * eventfds have no per-call non-blocking write.) */
	while ((n = poll(&p, 1, 0)) < 0 && errno == EINTR)
		;
	if (n <= 0 || !(p.revents & POLLOUT))
		return n < 0 ? -errno : 0;
	while (write(fd, &one, sizeof(one)) < 0) {
		if (errno == EINTR)
			continue;
		return errno == EAGAIN ? 0 : -errno;
	}
	return 0;
}

int vdi_vu_irq_trigger(void *opaque, uint32_t kind, uint32_t queue)
{
	vdev_vhost_user *vu = opaque;
	int r = 0;

	if (kind == VDEV_IRQ_QUEUE) {
		struct vu_ring *ring;

		if (queue >= vu->nrings)
			return -EINVAL;
		ring = &vu->rings[queue];
		pthread_mutex_lock(&ring->lock);
		if (ring->call_fd >= 0) {
			r = signal_fd(ring->call_fd);
			__atomic_fetch_add(&vu->stats.calls, 1, __ATOMIC_RELAXED);
		}
		pthread_mutex_unlock(&ring->lock);
		return r;
	}
	/* Config change: vhost-user has no channel for it without a back-end
	 * request socket; a device that needs a reset says so on the error
	 * fds (QEMU logs it). */
	if (!(vdev_device_status(vu->dev) & VDEV_STATUS_NEEDS_RESET))
		return 0;
	for (uint32_t i = 0; i < vu->nrings; i++) {
		struct vu_ring *ring = &vu->rings[i];

		pthread_mutex_lock(&ring->lock);
		if (ring->err_fd >= 0)
			signal_fd(ring->err_fd);
		pthread_mutex_unlock(&ring->lock);
	}
	return 0;
}

/* Remember what fstat says of an eventfd: an fd whose inode is not that one
 * is no eventfd (all eventfds share the kernel's anonymous inode). */
void vdi_vu_probe_eventfd(vdev_vhost_user *vu)
{
	int fd = eventfd(0, EFD_CLOEXEC);
	struct stat st;

	if (fd < 0)
		return;
	if (fstat(fd, &st) == 0) {
		vu->efd_dev = (uint64_t)st.st_dev;
		vu->efd_ino = (uint64_t)st.st_ino;
	}
	close(fd);
}

/* Call and err fds are written from device threads: a pipe or a socket
 * whose reader left raises SIGPIPE there, a file grows with each interrupt,
 * a tty may stop the process. Only eventfds (anonymous inodes) are taken. */
static int is_eventfd(const vdev_vhost_user *vu, int fd)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return 0;
	if ((uint64_t)st.st_dev == vu->efd_dev && (uint64_t)st.st_ino == vu->efd_ino &&
	    vu->efd_ino != 0)
		return 1;
	return (st.st_mode & S_IFMT) == 0;
}

/* The ring a state message is about, or NULL after logging. */
static struct vu_ring *state_ring(vdev_vhost_user *vu, const struct vu_msg *m)
{
	uint32_t i = m->payload.state.index;

	if (i >= vu->nrings) {
		vdi_vu_bad(m, "ring %u out of range (%u rings)", i, vu->nrings);
		return NULL;
	}
	return &vu->rings[i];
}

int vdi_vu_set_vring_num(vdev_vhost_user *vu, struct vu_msg *m)
{
	struct vu_ring *r = state_ring(vu, m);
	uint32_t num = m->payload.state.num;

	if (!r)
		return VU_BAD;
	if (r->started)
		return vdi_vu_bad(m, "ring %u is running", m->payload.state.index);
	if (num == 0 || num > vdev_device_queue_max_size(vu->dev) ||
	    (!vdi_vu_packed(vu) && !vdi_is_pow2(num)))
		return vdi_vu_bad(m, "ring size %u (max %u%s)", num,
				  vdev_device_queue_max_size(vu->dev),
				  vdi_vu_packed(vu) ? "" : ", a power of two");
	r->num = num;
	return vdi_vu_sync_rings(vu);
}

int vdi_vu_set_vring_addr(vdev_vhost_user *vu, struct vu_msg *m)
{
	const struct vhost_vring_addr *a = &m->payload.addr;
	struct vu_ring *r, probe;
	uint64_t gpa[3];

	if (a->index >= vu->nrings)
		return vdi_vu_bad(m, "ring %u out of range (%u rings)", a->index, vu->nrings);
	r = &vu->rings[a->index];
	if (a->flags & ~(1u << VHOST_VRING_F_LOG))
		return vdi_vu_bad(m, "ring %u: unknown flags 0x%x", a->index, a->flags);
	if (r->started) {
		/* Only logging may be switched on a running ring (migration). */
		if (a->desc_user_addr != r->desc_uva || a->avail_user_addr != r->avail_uva ||
		    a->used_user_addr != r->used_uva)
			return vdi_vu_bad(m, "ring %u moved while running", a->index);
		r->addr_flags = a->flags;
		return 0;
	}
	probe = *r;
	probe.desc_uva = a->desc_user_addr;
	probe.avail_uva = a->avail_user_addr;
	probe.used_uva = a->used_user_addr;
	if (ring_gpas(vu, &probe, r->num, gpa) < 0)
		return vdi_vu_bad(m, "ring %u lies outside guest memory", a->index);
	r->desc_uva = a->desc_user_addr;
	r->avail_uva = a->avail_user_addr;
	r->used_uva = a->used_user_addr;
	r->addr_flags = a->flags;
	r->addr_set = 1;
	return vdi_vu_sync_rings(vu);
}

int vdi_vu_set_vring_base(vdev_vhost_user *vu, struct vu_msg *m)
{
	struct vu_ring *r = state_ring(vu, m);
	uint32_t num = m->payload.state.num;

	if (!r)
		return VU_BAD;
	if (r->started)
		return vdi_vu_bad(m, "ring %u is running", m->payload.state.index);
	memset(&r->base, 0, sizeof(r->base));
	r->base.struct_size = sizeof(r->base);
	if (vdi_vu_packed(vu)) {
		/* avail index and wrap counter; QEMU adds the used ones above. */
		r->base.last_avail_idx = num & 0x7fff;
		r->base.avail_wrap = (num >> 15) & 1;
		r->base.used_idx = (num >> 16) & 0x7fff;
		r->base.used_wrap = (num >> 31) & 1;
	} else {
		if (num > 0xffff)
			return vdi_vu_bad(m, "ring %u: base %u", m->payload.state.index, num);
		r->base.last_avail_idx = (uint16_t)num;
	}
	r->used_known = vdi_vu_packed(vu);
	return 0;
}

int vdi_vu_get_vring_base(vdev_vhost_user *vu, struct vu_msg *m)
{
	struct vu_ring *r = state_ring(vu, m);
	struct vhost_vring_state out;
	int e;

	if (!r)
		return VU_BAD;
	/* Stop: the ring needs a new kick fd to start again. */
	kick_close(vu, r);
	e = vdi_vu_sync_rings(vu);
	if (e < 0)
		return e;
	out.index = m->payload.state.index;
	if (vdi_vu_packed(vu))
		out.num = (uint32_t)r->base.last_avail_idx | (uint32_t)r->base.avail_wrap << 15 |
			  (uint32_t)r->base.used_idx << 16 | (uint32_t)r->base.used_wrap << 31;
	else
		out.num = r->base.last_avail_idx;
	return vdi_vu_reply(vu, m, &out, sizeof(out), NULL, 0);
}

int vdi_vu_set_vring_fd(vdev_vhost_user *vu, struct vu_msg *m)
{
	uint64_t v = m->payload.u64;
	uint32_t i = (uint32_t)(v & VHOST_USER_VRING_IDX_MASK);
	int nofd = !!(v & VHOST_USER_VRING_NOFD), fd = -1, fl;
	struct vu_ring *r;

	if (v & ~(uint64_t)(VHOST_USER_VRING_IDX_MASK | VHOST_USER_VRING_NOFD))
		return vdi_vu_bad(m, "unknown bits in 0x%llx", (unsigned long long)v);
	if (i >= vu->nrings)
		return vdi_vu_bad(m, "ring %u out of range (%u rings)", i, vu->nrings);
	r = &vu->rings[i];
	if (!nofd) {
		fd = m->fds[0];
		if (m->hdr.request != VHOST_USER_SET_VRING_KICK && !is_eventfd(vu, fd))
			return vdi_vu_bad(m, "ring %u: the fd is not an eventfd", i);
		/* Ours must never block; the front-end's side does not care. */
		fl = fcntl(fd, F_GETFL);
		if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
			return vdi_vu_bad(m, "ring %u: unusable fd", i);
	}
	if (m->hdr.request == VHOST_USER_SET_VRING_KICK) {
		struct epoll_event ev = {.events = EPOLLIN, .data.u64 = VU_EV(VU_EV_KICK, i)};

		if (nofd)
			return vdi_vu_bad(m, "ring %u: no kick fd (polling) is not supported", i);
		if (epoll_ctl(vu->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
			return vdi_vu_bad(m, "ring %u: kick fd cannot be polled (%d)", i, -errno);
		kick_close(vu, r);
		r->kick_fd = fd;
		m->fds[0] = -1;
		if (r->started) /* a kick may have gone to the old fd */
			vdev_device_queue_notify(vu->dev, i);
		return vdi_vu_sync_rings(vu);
	}
	locked_fd_swap(r, m->hdr.request == VHOST_USER_SET_VRING_CALL ? &r->call_fd : &r->err_fd,
		       fd);
	if (!nofd)
		m->fds[0] = -1;
	return 0;
}

int vdi_vu_set_vring_enable(vdev_vhost_user *vu, struct vu_msg *m)
{
	struct vu_ring *r = state_ring(vu, m);

	if (!r)
		return VU_BAD;
	if (m->payload.state.num > 1)
		return vdi_vu_bad(m, "ring %u: enable %u", m->payload.state.index,
				  m->payload.state.num);
	r->enabled = (int)m->payload.state.num;
	return vdi_vu_sync_rings(vu);
}
