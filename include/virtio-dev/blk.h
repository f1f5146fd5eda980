/* SPDX-License-Identifier: MIT */
/*
 * virtio-blk: the device model and its pluggable block backends.
 *
 * A vdev_blk is a device model (it owns a vdev_device: attach that to a
 * transport) that turns requests into backend I/O. Backends are
 * asynchronous: the device enqueues everything it popped from a drained ring,
 * submits once, and reaps completions when the backend's completion fd is
 * readable (or right after submit for synchronous backends).
 *
 * Built-in backends: io_uring (liburing; -EOPNOTSUPP when built without it),
 * plain file (preadv/pwritev), memory, and copy-on-write over a read-only base
 * image. A VMM may supply its own (vdev_blk_backend_new).
 *
 * Thread-safety: kicks (vdev_device_queue_notify) and
 * vdev_blk_process_completions may come from any threads; the device object
 * runs at most one of them at a time per queue, and control calls (reset,
 * queue reset, sleep) wait for the running one. For speed give each queue
 * its own thread: distinct queues share nothing on the data path. Backend objects
 * follow the same rule per queue context; vdev_blk_backend_cow_reset/commit
 * need every queue idle (device reset or asleep).
 */
#ifndef VIRTIO_DEV_BLK_H
#define VIRTIO_DEV_BLK_H

#include <stdint.h>
#include <sys/uio.h>

#include "common.h"
#include "device.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vdev_blk vdev_blk;
typedef struct vdev_blk_backend vdev_blk_backend;

/* ---- backends --------------------------------------------------------- */

/* vdev_blk_io.op */
#define VDEV_BLK_IO_READ 0u
#define VDEV_BLK_IO_WRITE 1u
#define VDEV_BLK_IO_FLUSH 2u
#define VDEV_BLK_IO_DISCARD 3u
#define VDEV_BLK_IO_WRITE_ZEROES 4u

/* vdev_blk_io.flags */
#define VDEV_BLK_IO_F_UNMAP 0x1u /* write-zeroes may deallocate */

/* One backend request. The submitter owns it until it comes back from reap. */
struct vdev_blk_io {
	uint32_t struct_size;
	uint32_t op;              /* VDEV_BLK_IO_* */
	uint64_t offset;          /* bytes from the start of the disk */
	uint64_t len;             /* bytes: the iovecs' total for read/write,
				     the range for discard/write-zeroes, 0 for flush */
	const struct iovec *iov;  /* read/write buffers (guest memory) */
	uint32_t iovcnt;
	uint32_t flags;           /* VDEV_BLK_IO_F_* */
	int32_t result;           /* at completion: 0, or a negative errno */
	uint32_t reserved;
	void *priv;               /* the submitter's; backends never touch it */
};

/* Backend capability flags (vdev_blk_backend_new, vdev_blk_backend_flags). */
#define VDEV_BLK_BACKEND_F_READONLY 0x1u
#define VDEV_BLK_BACKEND_F_DISCARD 0x2u
#define VDEV_BLK_BACKEND_F_WRITE_ZEROES 0x4u

struct vdev_blk_backend_ops {
	uint32_t struct_size;
	/* Disk size in bytes (a multiple of 512). */
	uint64_t (*size)(void *opaque);
	/* A context per device queue, used by that queue's thread only. */
	int (*queue_open)(void *opaque, uint32_t queue, void **qctx);
	/* Called with nothing in flight on the context. */
	void (*queue_close)(void *opaque, void *qctx);
	/* Take @io. 0: it will come back through reap (perhaps after submit);
	 * -EAGAIN: no room now (submit and reap, then retry); another negative
	 * errno: refused, it will not come back. Ranges are already checked. */
	int (*enqueue)(void *opaque, void *qctx, struct vdev_blk_io *io);
	/* Start everything enqueued (one system call for the batch). */
	int (*submit)(void *opaque, void *qctx);
	/* Non-blocking: up to @max finished ios into @done, results set.
	 * Returns how many, or a negative errno. */
	int (*reap)(void *opaque, void *qctx, struct vdev_blk_io **done, uint32_t max);
	/* An fd that is readable while completions wait (an eventfd), or -1
	 * when every io is finished by the time submit returns. */
	int (*completion_fd)(void *opaque, void *qctx);
	/* Called once by vdev_blk_backend_free (may be NULL). */
	void (*destroy)(void *opaque);
};

#define VDEV_BLK_BACKEND_OPS_INIT VDEV_STRUCT_INIT(struct vdev_blk_backend_ops)

/**
 * vdev_blk_backend_new() - wrap a VMM's own backend.
 * @ops: copied; all but destroy are required. @flags: VDEV_BLK_BACKEND_F_*.
 * Returns 0, -EINVAL or -ENOMEM. Since 0.1.
 */
VDEV_EXPORT int vdev_blk_backend_new(const struct vdev_blk_backend_ops *ops, void *opaque,
				     uint32_t flags, vdev_blk_backend **out);

/* vdev_blk_file_config.flags */
#define VDEV_BLK_FILE_F_READONLY 0x1u /* open O_RDONLY, refuse writes */
#define VDEV_BLK_FILE_F_DIRECT 0x2u   /* O_DIRECT (buffers must be aligned) */

struct vdev_blk_file_config {
	uint32_t struct_size;
	uint32_t flags;       /* VDEV_BLK_FILE_F_* */
	const char *path;     /* the image; or NULL to use fd */
	int32_t fd;           /* with path NULL: duplicated, the caller keeps its own */
	uint32_t queue_depth; /* io_uring: entries per queue ring (0: 128) */
};

#ifdef __cplusplus
} /* extern "C" */
static inline struct vdev_blk_file_config vdev_blk_file_config_init_(void)
{
	struct vdev_blk_file_config c = VDEV_STRUCT_INIT(struct vdev_blk_file_config);
	c.fd = -1;
	return c;
}
extern "C" {
#define VDEV_BLK_FILE_CONFIG_INIT vdev_blk_file_config_init_()
#else
#define VDEV_BLK_FILE_CONFIG_INIT {.struct_size = sizeof(struct vdev_blk_file_config), .fd = -1}
#endif

/**
 * vdev_blk_backend_new_file() - synchronous preadv/pwritev backend.
 * Returns 0, -EINVAL, or the errno of open/fstat. Since 0.1.
 */
VDEV_EXPORT int vdev_blk_backend_new_file(const struct vdev_blk_file_config *cfg,
					  vdev_blk_backend **out);

/**
 * vdev_blk_backend_new_uring() - io_uring backend: one ring per queue with
 * the file registered, readv/writev straight into guest memory, fdatasync for
 * flush, fallocate for discard and write-zeroes, short transfers resubmitted,
 * completions signalled on an eventfd. Returns 0, -EINVAL, -EOPNOTSUPP (built
 * without liburing), or the errno of open/fstat. Since 0.1.
 */
VDEV_EXPORT int vdev_blk_backend_new_uring(const struct vdev_blk_file_config *cfg,
					   vdev_blk_backend **out);

/**
 * vdev_blk_backend_new_memory() - a zero-filled RAM disk of @size bytes (a
 * non-zero multiple of 512). @flags: VDEV_BLK_BACKEND_F_READONLY or 0.
 * Returns 0, -EINVAL or -ENOMEM. Since 0.1.
 */
VDEV_EXPORT int vdev_blk_backend_new_memory(uint64_t size, uint32_t flags,
					    vdev_blk_backend **out);

/**
 * vdev_blk_backend_memory_data() - the bytes of a memory backend (borrowed;
 * NULL for other kinds). Since 0.1.
 */
VDEV_EXPORT void *vdev_blk_backend_memory_data(vdev_blk_backend *b);

struct vdev_blk_cow_config {
	uint32_t struct_size;
	uint32_t chunk_size;      /* copy-on-write granularity: a power of two,
				     512..1 MiB (0: 4096) */
	const char *base_path;    /* read-only base image; or NULL to use base_fd */
	int32_t base_fd;          /* duplicated */
	uint32_t reserved;
	const char *overlay_path; /* sparse overlay file (created, truncated);
				     NULL keeps the overlay in memory */
};

#ifdef __cplusplus
} /* extern "C" */
static inline struct vdev_blk_cow_config vdev_blk_cow_config_init_(void)
{
	struct vdev_blk_cow_config c = VDEV_STRUCT_INIT(struct vdev_blk_cow_config);
	c.base_fd = -1;
	return c;
}
extern "C" {
#define VDEV_BLK_COW_CONFIG_INIT vdev_blk_cow_config_init_()
#else
#define VDEV_BLK_COW_CONFIG_INIT {.struct_size = sizeof(struct vdev_blk_cow_config), .base_fd = -1}
#endif

/**
 * vdev_blk_backend_new_cow() - copy-on-write: reads fall through to the base
 * image, writes land in the overlay (whole chunks; a partial write first
 * copies the rest of its chunk from the base), discard and write-zeroes
 * become zeroed overlay chunks. The base is never written. Returns 0,
 * -EINVAL, -ENOMEM or the errno of open. Since 0.1.
 */
VDEV_EXPORT int vdev_blk_backend_new_cow(const struct vdev_blk_cow_config *cfg,
					 vdev_blk_backend **out);

/**
 * vdev_blk_backend_cow_reset() - drop the overlay: the disk reads as the base
 * again, at once (for snapshot fuzzing). Every queue must be idle. Returns 0,
 * -EINVAL (not a copy-on-write backend) or -EBUSY (I/O in flight). Since 0.1.
 */
VDEV_EXPORT int vdev_blk_backend_cow_reset(vdev_blk_backend *b);

/**
 * vdev_blk_backend_cow_commit() - write every overlay chunk into @fd at its
 * offset (e.g. a copy of the base, or the base opened read-write), then
 * fdatasync it. The overlay is kept. Returns 0, -EINVAL, -EBUSY or the errno
 * of the write. Since 0.1.
 */
VDEV_EXPORT int vdev_blk_backend_cow_commit(vdev_blk_backend *b, int fd);

/** vdev_blk_backend_size() - disk size in bytes. Since 0.1. */
VDEV_EXPORT uint64_t vdev_blk_backend_size(const vdev_blk_backend *b);

/** vdev_blk_backend_flags() - VDEV_BLK_BACKEND_F_* capabilities. Since 0.1. */
VDEV_EXPORT uint32_t vdev_blk_backend_flags(const vdev_blk_backend *b);

/*
 * What a backend completed for the devices using it, counted as the device
 * reaps each request (so a custom backend is counted too). "ok" counts only
 * requests that succeeded: flushes_ok is the number of fdatasync (or
 * IORING_OP_FSYNC with DATASYNC) calls that reached the disk and returned 0.
 */
struct vdev_blk_backend_stats {
	uint32_t struct_size;
	uint32_t reserved;
	uint64_t completed;      /* requests completed, any result */
	uint64_t errors;         /* completed with a result other than 0 */
	uint64_t reads_ok, writes_ok, flushes_ok, discards_ok, write_zeroes_ok;
	uint64_t bytes_read, bytes_written; /* by successful reads and writes */
};

#define VDEV_BLK_BACKEND_STATS_INIT VDEV_STRUCT_INIT(struct vdev_blk_backend_stats)

/**
 * vdev_blk_backend_get_stats() - the backend's counters (each read
 * atomically; the set is approximate while queues run). Returns 0 or -EINVAL.
 * Thread-safe. Since 0.2.
 */
VDEV_EXPORT int vdev_blk_backend_get_stats(const vdev_blk_backend *b,
					   struct vdev_blk_backend_stats *st);

/** vdev_blk_backend_free() - accepts NULL; no device may still use it. Since 0.1. */
VDEV_EXPORT void vdev_blk_backend_free(vdev_blk_backend *b);

/* ---- the device ------------------------------------------------------- */

#define VDEV_BLK_MAX_QUEUES 64u

/* vdev_blk_config.flags */
#define VDEV_BLK_F_READONLY 0x1u     /* offer VIRTIO_BLK_F_RO, refuse writes */
#define VDEV_BLK_F_WRITETHROUGH 0x2u /* start with the write cache off (CONFIG_WCE) */

struct vdev_blk_config {
	uint32_t struct_size;
	uint32_t num_queues;      /* 1..VDEV_BLK_MAX_QUEUES (0: 1); > 1 offers MQ */
	uint32_t queue_size;      /* largest queue size, a power of two (0: 256) */
	uint32_t flags;           /* VDEV_BLK_F_* */
	uint32_t blk_size;        /* logical block size, power of two >= 512 (0: 512) */
	uint32_t seg_max;         /* segments per request, <= 4096 (0: queue_size - 2) */
	uint32_t size_max;        /* bytes per segment, 0: not offered */
	uint32_t opt_io_size;     /* topology, in logical blocks */
	uint16_t min_io_size;     /* topology, in logical blocks */
	uint8_t physical_block_exp; /* topology: log2(physical / logical) */
	uint8_t alignment_offset; /* topology */
	uint32_t max_discard_sectors;      /* 0: offered up to the disk size */
	uint32_t max_discard_seg;          /* <= 1024 (0: 1) */
	uint32_t discard_sector_alignment; /* 0: blk_size / 512 */
	uint32_t max_write_zeroes_sectors; /* 0: up to the disk size */
	uint32_t max_write_zeroes_seg;     /* <= 1024 (0: 1) */
	uint8_t serial[20];       /* GET_ID answer, NUL-padded */
	uint32_t reserved;        /* 0 */
	uint64_t disable_features; /* feature bits not to offer (e.g. RING_PACKED) */
};

#define VDEV_BLK_CONFIG_INIT VDEV_STRUCT_INIT(struct vdev_blk_config)

/**
 * vdev_blk_new() - a virtio-blk device over @backend (borrowed: it must
 * outlive the device). Offers VERSION_1, RING_PACKED, INDIRECT_DESC,
 * EVENT_IDX, RING_RESET, FLUSH, BLK_SIZE, SEG_MAX, TOPOLOGY, CONFIG_WCE;
 * MQ when num_queues > 1; SIZE_MAX when size_max is set; RO when asked or
 * the backend is read-only; DISCARD and WRITE_ZEROES when the backend can
 * (and the disk is writable). GET_ID requests are always served.
 * Returns 0, -EINVAL (including seg_max above 4096, or discard or
 * write-zeroes segment counts above 1024) or -ENOMEM. Since 0.1.
 */
VDEV_EXPORT int vdev_blk_new(const struct vdev_blk_config *cfg, vdev_blk_backend *backend,
			     vdev_blk **out);

/** vdev_blk_free() - reset (draining I/O) and free. Accepts NULL. Since 0.1. */
VDEV_EXPORT void vdev_blk_free(vdev_blk *blk);

/** vdev_blk_device() - the generic device, for a transport (borrowed). Since 0.1. */
VDEV_EXPORT vdev_device *vdev_blk_device(const vdev_blk *blk);

/**
 * vdev_blk_completion_fd() - the fd to watch for queue @queue's backend
 * completions: readable while some wait (then call
 * vdev_blk_process_completions). It is the same fd from vdev_blk_new to
 * vdev_blk_free, so a VMM registers it once in its event loop; with a
 * synchronous backend (file, memory, cow) it never becomes readable, since
 * their I/O is finished when the kick returns. Owned by the device: do not
 * close it. Returns the fd or -EINVAL. Since 0.1.
 */
VDEV_EXPORT int vdev_blk_completion_fd(vdev_blk *blk, uint32_t queue);

/**
 * vdev_blk_process_completions() - reap queue @queue's finished I/O, answer
 * the requests, interrupt the driver once per batch, and resume requests
 * that waited for backend room. Returns the number of requests completed or
 * a negative errno. Since 0.1.
 */
VDEV_EXPORT int vdev_blk_process_completions(vdev_blk *blk, uint32_t queue);

/* Counters, summed over queues. */
struct vdev_blk_stats {
	uint32_t struct_size;
	uint32_t reserved;
	uint64_t requests;     /* answered */
	uint64_t reads, writes, flushes, discards, write_zeroes, get_ids;
	uint64_t bytes_read, bytes_written;
	uint64_t ioerr;        /* answered VIRTIO_BLK_S_IOERR */
	uint64_t unsupp;       /* answered VIRTIO_BLK_S_UNSUPP */
	uint64_t malformed;    /* requests refused by validation */
};

#define VDEV_BLK_STATS_INIT VDEV_STRUCT_INIT(struct vdev_blk_stats)

/**
 * vdev_blk_get_stats() - counters (approximate while queues run on other
 * threads). Returns 0 or -EINVAL. Since 0.1.
 */
VDEV_EXPORT int vdev_blk_get_stats(vdev_blk *blk, struct vdev_blk_stats *st);

#ifdef __cplusplus
}
#endif

#endif
