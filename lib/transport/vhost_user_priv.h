/* SPDX-License-Identifier: MIT */
/*
 * vhost-user back-end: what vhost_user.c (socket, messages, negotiation),
 * vhost_user_mem.c (guest memory, dirty log, in-flight area) and
 * vhost_user_ring.c (rings, kicks, calls) share. Private to the library.
 *
 * Wire format: QEMU's docs/interop/vhost-user.rst. Numbers are in the
 * host's byte order (the protocol is local to one machine).
 */
#ifndef VDI_VHOST_USER_PRIV_H
#define VDI_VHOST_USER_PRIV_H

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/vhost_types.h>

#include <virtio-dev/irq.h>
#include <virtio-dev/mem.h>
#include <virtio-dev/queue.h>
#include <virtio-dev/vhost-user.h>

/* Front-end requests (the ones this back-end knows by name). */
#define VHOST_USER_GET_FEATURES 1u
#define VHOST_USER_SET_FEATURES 2u
#define VHOST_USER_SET_OWNER 3u
#define VHOST_USER_RESET_OWNER 4u
#define VHOST_USER_SET_MEM_TABLE 5u
#define VHOST_USER_SET_LOG_BASE 6u
#define VHOST_USER_SET_LOG_FD 7u
#define VHOST_USER_SET_VRING_NUM 8u
#define VHOST_USER_SET_VRING_ADDR 9u
#define VHOST_USER_SET_VRING_BASE 10u
#define VHOST_USER_GET_VRING_BASE 11u
#define VHOST_USER_SET_VRING_KICK 12u
#define VHOST_USER_SET_VRING_CALL 13u
#define VHOST_USER_SET_VRING_ERR 14u
#define VHOST_USER_GET_PROTOCOL_FEATURES 15u
#define VHOST_USER_SET_PROTOCOL_FEATURES 16u
#define VHOST_USER_GET_QUEUE_NUM 17u
#define VHOST_USER_SET_VRING_ENABLE 18u
#define VHOST_USER_GET_CONFIG 24u
#define VHOST_USER_SET_CONFIG 25u
#define VHOST_USER_GET_INFLIGHT_FD 31u
#define VHOST_USER_SET_INFLIGHT_FD 32u
#define VHOST_USER_RESET_DEVICE 34u
#define VHOST_USER_GET_MAX_MEM_SLOTS 36u
#define VHOST_USER_ADD_MEM_REG 37u
#define VHOST_USER_REM_MEM_REG 38u
#define VHOST_USER_SET_STATUS 39u
#define VHOST_USER_GET_STATUS 40u
#define VHOST_USER_REQ_MAX 41u

/* Header flags. */
#define VHOST_USER_VERSION 0x1u
#define VHOST_USER_VERSION_MASK 0x3u
#define VHOST_USER_REPLY 0x4u
#define VHOST_USER_NEED_REPLY 0x8u

/* The feature bit that announces protocol features (a reserved virtio bit). */
#define VHOST_USER_F_PROTOCOL_FEATURES 30

#define VU_BIT(n) (1ull << (n))
/* Feature bits that are vhost's, not the device's. */
#define VU_VHOST_BITS (VU_BIT(VHOST_USER_F_PROTOCOL_FEATURES) | VU_BIT(VHOST_F_LOG_ALL))

/* Protocol features. */
#define VHOST_USER_PROTOCOL_F_MQ 0
#define VHOST_USER_PROTOCOL_F_LOG_SHMFD 1
#define VHOST_USER_PROTOCOL_F_REPLY_ACK 3
#define VHOST_USER_PROTOCOL_F_CONFIG 9
#define VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD 12
#define VHOST_USER_PROTOCOL_F_RESET_DEVICE 13
#define VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS 15
#define VHOST_USER_PROTOCOL_F_STATUS 16

/* SET_VRING_KICK / CALL / ERR payload. */
#define VHOST_USER_VRING_IDX_MASK 0xffu
#define VHOST_USER_VRING_NOFD 0x100u

#define VU_HDR_SIZE 12u
#define VU_MAX_FDS 8u
#define VU_MEM_TABLE_MAX 8u   /* regions in one SET_MEM_TABLE */
#define VU_MAX_CONFIG 256u    /* GET/SET_CONFIG bytes, as QEMU bounds them */
#define VU_MAX_RINGS 256u     /* the 8-bit index of SET_VRING_KICK/CALL/ERR */
#define VU_DEFAULT_SLOTS 32u
#define VU_LOG_PAGE 4096u

struct vu_region {
	uint64_t gpa;
	uint64_t size;
	uint64_t uva;
	uint64_t mmap_offset;
};

struct vu_mem_table {
	uint32_t nregions;
	uint32_t padding;
	struct vu_region regions[VU_MEM_TABLE_MAX];
};

struct vu_mem_reg {
	uint64_t padding;
	struct vu_region region;
};

struct vu_log {
	uint64_t size;
	uint64_t offset;
};

struct vu_config {
	uint32_t offset;
	uint32_t size;
	uint32_t flags;
	uint8_t data[VU_MAX_CONFIG];
};
#define VU_CONFIG_HDR_SIZE 12u

struct vu_inflight {
	uint64_t mmap_size;
	uint64_t mmap_offset;
	uint16_t num_queues;
	uint16_t queue_size;
	uint32_t padding; /* QEMU's struct is 8-byte aligned: 24 bytes */
};

union vu_payload {
	uint64_t u64;
	struct vhost_vring_state state;
	struct vhost_vring_addr addr;
	struct vu_mem_table mem;
	struct vu_mem_reg reg;
	struct vu_log log;
	struct vu_config config;
	struct vu_inflight inflight;
};

struct vu_hdr {
	uint32_t request;
	uint32_t flags;
	uint32_t size;
};

/* One message being received or handled. */
struct vu_msg {
	struct vu_hdr hdr;
	union vu_payload payload;
	int fds[VU_MAX_FDS]; /* received; a handler that keeps one sets it to -1 */
	uint32_t nfds;
	int replied;         /* the handler sent the reply itself */
};

/* A mapping of part of a front-end's file. */
struct vu_map {
	void *base;    /* what mmap returned, NULL when unmapped */
	size_t len;
	uint8_t *ptr;  /* the requested offset inside it */
};

/* A guest memory region. */
struct vu_mem_region {
	uint64_t gpa;
	uint64_t size;
	uint64_t uva;
	struct vu_map map;
};

struct vu_ring {
	uint32_t num;        /* SET_VRING_NUM, 0 until set */
	int addr_set;
	uint32_t addr_flags; /* VHOST_VRING_F_LOG */
	uint64_t desc_uva, avail_uva, used_uva;
	struct vdev_queue_state base; /* where the ring starts next */
	int used_known;      /* base.used_idx is ours (from a stop), else read from the ring */
	int kick_fd;
	int enabled;         /* SET_VRING_ENABLE */
	int started;         /* live in the device */
	/* call_fd and err_fd are written by device threads (interrupts). */
	pthread_mutex_t lock;
	int call_fd;
	int err_fd;
};

struct vdev_vhost_user {
	uint32_t flags;
	uint32_t max_slots;
	char *path;          /* the socket file we created, or NULL */
	uint64_t path_dev, path_ino; /* to remove only our own socket file */
	uint64_t efd_dev, efd_ino; /* what fstat says of an eventfd (0, 0: unknown) */
	vdev_device *dev;
	uint32_t caps;       /* vdi_device_caps */
	uint32_t nrings;
	vdev_mem *mem;
	vdev_irq *irq;
	int epfd;
	int listen_fd;
	int conn_fd;
	int connected;       /* atomic */

	/* Receive state of the current message. */
	struct vu_msg msg;
	size_t got;

	/* Connection state. */
	uint64_t protocol_features;
	uint64_t features;   /* SET_FEATURES as sent (vhost bits included) */
	int features_set;
	uint8_t status;      /* SET_STATUS */
	int suspended;       /* every ring held stopped (memory being replaced) */
	int asleep;          /* we put the device to sleep (quiesce) */

	struct vu_mem_region *regions; /* max_slots entries */
	uint32_t nregions;

	struct vu_map log;   /* SET_LOG_BASE */
	uint64_t log_size;
	int log_on;          /* installed in mem: LOG_ALL acked and a log mapped */

	struct vu_map inflight; /* GET/SET_INFLIGHT_FD */
	uint16_t inflight_queues;
	uint16_t inflight_qsize;
	size_t inflight_region;

	struct vu_ring *rings;
	struct vdev_vhost_user_stats stats; /* kicks, calls: atomic */
};

/* Handler results besides 0 (success): */
#define VU_FAIL 1           /* refused: REPLY_ACK answers 1, the connection stays */
#define VU_BAD (-EPROTO)    /* bad message: the connection closes */
#define VU_GONE (-EPIPE)    /* the socket failed: the connection closes */

/* Log why message @m is bad; returns VU_BAD. */
int vdi_vu_bad(const struct vu_msg *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *vdi_vu_req_name(uint32_t request);
/* Send the reply to @m (payload @size bytes, and @nfds fds). 0 or VU_GONE. */
int vdi_vu_reply(vdev_vhost_user *vu, struct vu_msg *m, const void *payload, uint32_t size,
		 const int *fds, uint32_t nfds);
int vdi_vu_has_protocol(const vdev_vhost_user *vu, unsigned bit);
int vdi_vu_packed(const vdev_vhost_user *vu);

/* vhost_user_mem.c */
int vdi_vu_map_fd(int fd, uint64_t offset, uint64_t size, struct vu_map *m);
void vdi_vu_unmap(struct vu_map *m);
int vdi_vu_uva_to_gpa(const vdev_vhost_user *vu, uint64_t uva, uint64_t len, uint64_t *gpa);
void vdi_vu_mem_release(vdev_vhost_user *vu);
int vdi_vu_log_update(vdev_vhost_user *vu);
int vdi_vu_inflight_for(const vdev_vhost_user *vu, uint32_t ring, void **region, size_t *len);
int vdi_vu_set_mem_table(vdev_vhost_user *vu, struct vu_msg *m);
int vdi_vu_add_mem_reg(vdev_vhost_user *vu, struct vu_msg *m);
int vdi_vu_rem_mem_reg(vdev_vhost_user *vu, struct vu_msg *m);
int vdi_vu_set_log_base(vdev_vhost_user *vu, struct vu_msg *m);
int vdi_vu_get_inflight_fd(vdev_vhost_user *vu, struct vu_msg *m);
int vdi_vu_set_inflight_fd(vdev_vhost_user *vu, struct vu_msg *m);

/* vhost_user_ring.c */
void vdi_vu_probe_eventfd(vdev_vhost_user *vu);
int vdi_vu_negotiate(vdev_vhost_user *vu);
int vdi_vu_quiesce_begin(vdev_vhost_user *vu);
void vdi_vu_quiesce_end(vdev_vhost_user *vu);
int vdi_vu_sync_rings(vdev_vhost_user *vu);
int vdi_vu_any_started(const vdev_vhost_user *vu);
void vdi_vu_rings_release(vdev_vhost_user *vu);
void vdi_vu_rings_forget(vdev_vhost_user *vu);
void vdi_vu_kick(vdev_vhost_user *vu, uint32_t ring);
int vdi_vu_irq_trigger(void *opaque, uint32_t kind, uint32_t queue);
int vdi_vu_set_vring_num(vdev_vhost_user *vu, struct vu_msg *m);
int vdi_vu_set_vring_addr(vdev_vhost_user *vu, struct vu_msg *m);
int vdi_vu_set_vring_base(vdev_vhost_user *vu, struct vu_msg *m);
int vdi_vu_get_vring_base(vdev_vhost_user *vu, struct vu_msg *m);
int vdi_vu_set_vring_fd(vdev_vhost_user *vu, struct vu_msg *m);
int vdi_vu_set_vring_enable(vdev_vhost_user *vu, struct vu_msg *m);

/* Epoll tags: kind in the high 32 bits, ring index in the low ones. */
#define VU_EV_LISTEN 1ull
#define VU_EV_CONN 2ull
#define VU_EV_KICK 3ull
#define VU_EV(kind, idx) (((kind) << 32) | (uint64_t)(idx))

#endif
