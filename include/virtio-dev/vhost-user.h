/* SPDX-License-Identifier: MIT */
/*
 * vhost-user transport, back-end side: serves any vdev_device to a
 * vhost-user front-end (QEMU, cloud-hypervisor, crosvm) over a unix socket,
 * per QEMU's docs/interop/vhost-user.rst.
 *
 * The transport owns the guest memory (mapped from the fds of SET_MEM_TABLE /
 * ADD_MEM_REG) and the interrupt sink (the call eventfds) of the device: it
 * installs both in @dev with vdev_device_set_memory / vdev_device_set_irq.
 * It drives @dev's state machine itself (features, queue setup, start and
 * stop of each ring), so the VMM-facing control calls of device.h must not be
 * used on @dev while it is attached.
 *
 * Event loop: the library owns no thread. vdev_vhost_user_fd() is an epoll
 * fd that becomes readable when vdev_vhost_user_process() has work (a new
 * connection, a message, a kick). A device model with its own completion
 * fds (vdev_blk_completion_fd) is polled by the caller next to it, on the
 * same thread or on others (the device object serializes per queue).
 *
 * A front-end is untrusted: every message is checked (size, fd count,
 * region bounds and overlaps, queue index, ring addresses inside mapped
 * memory). A bad message closes that connection with a log line; the device
 * is reset, every mapping and fd of the connection released, and the
 * transport waits for the next connection (QEMU's reconnect=).
 *
 * Thread-safety: one thread calls process / serve_fd / disconnect / free
 * for a given vdev_vhost_user; vdev_vhost_user_fd, vdev_vhost_user_connected
 * and vdev_vhost_user_get_stats may be called from any thread. The device's
 * interrupts (call eventfd writes) come from whichever thread completes
 * requests.
 *
 * doc/vhost-user.md lists what each message does and what is not supported.
 */
#ifndef VIRTIO_DEV_VHOST_USER_H
#define VIRTIO_DEV_VHOST_USER_H

#include <stdint.h>

#include "common.h"
#include "device.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vdev_vhost_user vdev_vhost_user;

/* vdev_vhost_user_config.flags */
/* Do not offer VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD. */
#define VDEV_VHOST_USER_F_NO_INFLIGHT 0x1u

struct vdev_vhost_user_config {
	uint32_t struct_size;
	uint32_t flags;          /* VDEV_VHOST_USER_F_* */
	/*
	 * Listen on this unix socket path. The socket file is made mode 0600
	 * before it listens (chmod/chown it for a front-end running as another
	 * user) and removed by vdev_vhost_user_free (if it is still ours). A
	 * path that a live server answers on is refused with -EADDRINUSE (the
	 * probe is one short connection to that server); a stale socket file
	 * nobody listens on is replaced; any other file is left alone
	 * (-EADDRINUSE). NULL: no listener, connections come only from
	 * vdev_vhost_user_serve_fd().
	 */
	const char *socket_path;
	/* Largest number of memory regions accepted (0: 32, max 509). */
	uint32_t max_mem_slots;
	uint32_t reserved;
};
#define VDEV_VHOST_USER_CONFIG_INIT VDEV_STRUCT_INIT(struct vdev_vhost_user_config)

/**
 * vdev_vhost_user_new() - serve @dev over vhost-user.
 * @cfg: copied (the socket path too).
 * @dev: borrowed; must outlive the transport; its status must be 0 (-EBUSY).
 * @out: receives the object; untouched on failure.
 *
 * Returns 0, -EINVAL, -EBUSY, -EADDRINUSE, -ENAMETOOLONG (path longer than a
 * unix socket address holds), -ENOMEM or the errno of socket/bind/listen.
 * Since 0.2.
 */
VDEV_EXPORT int vdev_vhost_user_new(const struct vdev_vhost_user_config *cfg, vdev_device *dev,
				    vdev_vhost_user **out);

/**
 * vdev_vhost_user_free() - close the connection (resetting the device, which
 * waits for its in-flight requests), unmap guest memory, close every fd, and
 * remove the socket file it created. Accepts NULL. Since 0.2.
 */
VDEV_EXPORT void vdev_vhost_user_free(vdev_vhost_user *vu);

/**
 * vdev_vhost_user_fd() - an fd (epoll) that polls readable when
 * vdev_vhost_user_process() has something to do. Stable for the object's
 * lifetime; borrowed. Since 0.2.
 */
VDEV_EXPORT int vdev_vhost_user_fd(const vdev_vhost_user *vu);

/**
 * vdev_vhost_user_process() - do what is ready, without blocking: accept a
 * connection, handle the messages that arrived, deliver kicks to the device.
 * A front-end's error closes its connection and is not returned.
 * Returns 0, or a negative errno for a failure of the object itself
 * (e.g. -ENOMEM, epoll errors). Since 0.2.
 */
VDEV_EXPORT int vdev_vhost_user_process(vdev_vhost_user *vu);

/**
 * vdev_vhost_user_serve_fd() - serve an already connected stream socket
 * (socketpair(), a socket the VMM accepted itself). Takes ownership of @fd,
 * also on failure. Returns 0, -EINVAL or -EBUSY (a connection is being
 * served). Since 0.2.
 */
VDEV_EXPORT int vdev_vhost_user_serve_fd(vdev_vhost_user *vu, int fd);

/**
 * vdev_vhost_user_connected() - 1 while a front-end is connected, else 0.
 * Since 0.2.
 */
VDEV_EXPORT int vdev_vhost_user_connected(const vdev_vhost_user *vu);

/**
 * vdev_vhost_user_disconnect() - close the current connection as if the
 * front-end had gone (device reset after its in-flight requests, mappings
 * and fds released); a listener keeps listening. Returns 0 or -ENOTCONN.
 * Since 0.2.
 */
VDEV_EXPORT int vdev_vhost_user_disconnect(vdev_vhost_user *vu);

/* Counters, for tests and monitoring. */
struct vdev_vhost_user_stats {
	uint32_t struct_size;
	uint32_t reserved;
	uint64_t connections;    /* accepted or served so far */
	uint64_t messages;       /* handled successfully */
	uint64_t bad_messages;   /* messages that closed a connection */
	uint64_t kicks;          /* kick eventfd wake-ups delivered */
	uint64_t calls;          /* interrupts signalled on a call eventfd */
	uint64_t mapped_regions; /* memory regions currently mapped */
};
#define VDEV_VHOST_USER_STATS_INIT VDEV_STRUCT_INIT(struct vdev_vhost_user_stats)

/** vdev_vhost_user_get_stats() - copy the counters. Returns 0 or -EINVAL. Since 0.2. */
VDEV_EXPORT int vdev_vhost_user_get_stats(const vdev_vhost_user *vu,
					  struct vdev_vhost_user_stats *st);

#ifdef __cplusplus
}
#endif

#endif
