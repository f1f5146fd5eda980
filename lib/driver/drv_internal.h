/* SPDX-License-Identifier: MIT */
/*
 * Private layout of the driver objects, shared by drv.c (init sequence,
 * config, queue setup) and drvq.c (the rings). Freestanding: only the headers
 * the freestanding half is allowed to use.
 */
#ifndef VDI_DRV_INTERNAL_H
#define VDI_DRV_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <linux/virtio_ring.h>
#include <virtio-dev/driver.h>

/* Where a vdev_drv is in its life; queue setup is legal only in PRE_INIT. */
#define VDI_DRV_IDLE 0u
#define VDI_DRV_PRE_INIT 1u /* inside pre_device_initialization */
#define VDI_DRV_RUNNING 2u

struct vdev_drvq {
	vdev_drv *drv;
	struct vdev_drvq *next; /* the driver's list of set-up queues */
	uint32_t index;
	uint32_t size;
	int packed;
	int event_idx;
	int indirect;           /* negotiated and indirect_max > 0 */
	uint32_t indirect_max;  /* descriptors per indirect table */
	int err;                /* 0, or what every call returns from now on */
	int irq_enabled;        /* shadow of what we asked the device */

	uint32_t num_free;      /* free descriptors (split) / ring slots (packed) */
	uint32_t inflight;      /* buffers made available and not yet used */
	uint32_t num_added;     /* descriptors (packed) / buffers (split) since kick */

	/* Per id (split: head descriptor; packed: buffer id). */
	void **tokens;          /* NULL when not in flight */
	uint16_t *ndescs;       /* descriptors (split) / ring slots (packed) */
	uint32_t *in_len;       /* writable bytes, to clamp the device's len */
	uint16_t *next_free;    /* split: chain + free list links; packed: id free list */
	uint16_t free_head;

	/* Indirect tables: indirect_max entries per id. */
	void *indir;
	uint64_t indir_gpa;

	/* Split ring. */
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint16_t avail_idx;     /* shadow of avail->idx */
	uint16_t last_used;     /* next used entry to read */

	/* Packed ring. */
	struct vring_packed_desc *pdesc;
	struct vring_packed_desc_event *drv_event;
	struct vring_packed_desc_event *dev_event;
	uint16_t next_avail;    /* next ring slot to fill */
	uint16_t used_pos;      /* next ring slot the device writes used */
	uint8_t avail_wrap;
	uint8_t used_wrap;

	uint64_t desc_gpa;
	uint64_t driver_gpa;
	uint64_t device_gpa;
};

struct vdev_drv {
	struct vdev_drv_config cfg;
	struct vdev_drv_transport_ops t;
	struct vdev_driver_ops ops;
	uint64_t features;
	uint64_t arena_used;
	uint32_t status; /* the bits we wrote */
	uint32_t phase;
	struct vdev_drvq *queues;
};

/* Guest address of a host pointer inside the arena. */
static inline uint64_t vdi_drv_gpa(const vdev_drv *drv, const void *p)
{
	return drv->cfg.arena_gpa + (uint64_t)((const char *)p - (const char *)drv->cfg.arena);
}

/* Lay out and zero the rings and bookkeeping of @q (size, packed, indirect
 * and indirect_max already set). Returns 0 or -ENOMEM. */
int vdi_drvq_alloc(vdev_drv *drv, struct vdev_drvq *q);

/* Carve @size bytes aligned to @align (power of two) in guest-address terms
 * out of the arena; NULL when it does not fit. */
void *vdi_drv_arena_alloc(vdev_drv *drv, uint64_t size, uint64_t align);

#endif
