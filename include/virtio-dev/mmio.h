/* SPDX-License-Identifier: MIT */
/*
 * virtio-mmio transport, device side: the register block of the spec's
 * "Virtio Over MMIO" chapter in front of a vdev_device, as version 2 (modern)
 * or version 1 (legacy). It is a bus device (vdev_mmio_bus_ops) and reports
 * each queue's notify address so the VMM can use KVM_IOEVENTFD with
 * datamatch instead of an exit per kick: a kick that arrives through the
 * eventfd (vdev_device_queue_notify) or as a register write is handled the
 * same.
 *
 * Also the driver side: register access to a virtio-mmio device for vdev_drv
 * (freestanding, for the test guest and the tests).
 *
 * Thread-safety: register accesses to one vdev_mmio are serialized by an
 * internal lock (vCPUs may race). QueueNotify writes and eventfd kicks bypass
 * it; the device object serializes the model's runs per queue (device.h).
 */
#ifndef VIRTIO_DEV_MMIO_H
#define VIRTIO_DEV_MMIO_H

#include <stdint.h>

#include "bus.h"
#include "common.h"
#include "device.h"
#include "driver.h"
#include "irq.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vdev_mmio vdev_mmio;

/* Bytes of register space one device claims (registers + 0x100 config). */
#define VDEV_MMIO_SIZE 0x1000u
/* The queue notify register, for ioeventfd: a 4-byte write of the queue index. */
#define VDEV_MMIO_NOTIFY_OFFSET 0x050u

struct vdev_mmio_config {
	uint32_t struct_size;
	uint32_t version;   /* 2 (modern; also when 0) or 1 (legacy) */
	uint64_t base;      /* guest-physical base the VMM maps it at */
	uint32_t vendor_id; /* VendorID register; 0 means 0x56444556 ("VDEV") */
	uint32_t reserved;
};

#define VDEV_MMIO_CONFIG_INIT VDEV_STRUCT_INIT(struct vdev_mmio_config)

/**
 * vdev_mmio_new() - put a virtio-mmio register block in front of @dev.
 * @dev: borrowed; must outlive the transport. The transport installs its own
 *       interrupt sink in @dev (it sets InterruptStatus, then raises @irq).
 * @irq: the device's interrupt line (borrowed): every notification is
 *       delivered as VDEV_IRQ_QUEUE/VDEV_IRQ_CONFIG on it; an eventfd vdev_irq
 *       made with VDEV_IRQ_F_SHARED suits a KVM irqfd line.
 *
 * Legacy (version 1) hides VIRTIO_F_VERSION_1 and the features it needs
 * (RING_PACKED, above bit 31), uses QueuePFN/GuestPageSize/QueueAlign and needs
 * no FEATURES_OK. Returns 0, -EINVAL, -EBUSY (@dev's status is not 0) or
 * -ENOMEM. Since 0.1.
 */
VDEV_EXPORT int vdev_mmio_new(const struct vdev_mmio_config *cfg, vdev_device *dev, vdev_irq *irq,
			      vdev_mmio **out);

/** vdev_mmio_free() - detach from the device (reset first). Accepts NULL. Since 0.1. */
VDEV_EXPORT void vdev_mmio_free(vdev_mmio *mmio);

/**
 * vdev_mmio_bus_ops() - the bus-device ops for this transport: insert with
 * opaque = the vdev_mmio, at cfg->base, VDEV_MMIO_SIZE bytes. destroy is
 * NULL: the caller still frees the vdev_mmio after removing it. Since 0.1.
 */
VDEV_EXPORT const struct vdev_bus_device_ops *vdev_mmio_bus_ops(void);

/**
 * vdev_mmio_read() / vdev_mmio_write() - one register access at @offset.
 * Control registers take 4-byte aligned accesses only; config space (0x100+)
 * takes 1, 2 and 4 (and 8) bytes. A refused access returns a negative errno
 * saying why (-EINVAL for a bad offset or width, -EPERM for a write the
 * device refused in its current state); a refused read yields zeros. The
 * guest never sees these: they are for the VMM's logs. Since 0.1.
 */
VDEV_EXPORT int vdev_mmio_read(vdev_mmio *mmio, uint64_t offset, void *data, uint32_t size);
VDEV_EXPORT int vdev_mmio_write(vdev_mmio *mmio, uint64_t offset, const void *data,
				uint32_t size);

/**
 * vdev_mmio_notify_address() - where a kick for @queue lands: the guest
 * address and the 4-byte value written (for KVM_IOEVENTFD with datamatch).
 * Returns 0 or -EINVAL (no such queue). Since 0.1.
 */
VDEV_EXPORT int vdev_mmio_notify_address(vdev_mmio *mmio, uint32_t queue, uint64_t *addr,
					 uint32_t *value);

/**
 * vdev_mmio_set_shm() - describe shared memory region @id (0..255) for the
 * SHMSel/SHMLen/SHMBase registers; len 0 removes it. Returns 0 or -EINVAL.
 * Since 0.1.
 */
VDEV_EXPORT int vdev_mmio_set_shm(vdev_mmio *mmio, uint32_t id, uint64_t base, uint64_t len);

/** vdev_mmio_device() - the device behind the transport (borrowed). Since 0.1. */
VDEV_EXPORT vdev_device *vdev_mmio_device(const vdev_mmio *mmio);

/* ---- driver side ------------------------------------------------------ */

typedef struct vdev_drv_mmio vdev_drv_mmio;

/* How the driver reaches the registers: 32-bit register reads and writes,
 * plus 8/16-bit for config space. */
struct vdev_drv_mmio_io_ops {
	uint32_t struct_size;
	uint32_t (*read)(void *ctx, uint32_t offset, uint32_t width);
	void (*write)(void *ctx, uint32_t offset, uint32_t width, uint32_t value);
};

#define VDEV_DRV_MMIO_IO_OPS_INIT VDEV_STRUCT_INIT(struct vdev_drv_mmio_io_ops)

/** vdev_drv_mmio_storage_size() - bytes vdev_drv_mmio_init needs. Since 0.1. */
VDEV_EXPORT uint64_t vdev_drv_mmio_storage_size(void);

/**
 * vdev_drv_mmio_init() - driver-side register access (freestanding).
 * @io: accessors (borrowed), or NULL to use volatile loads and stores at the
 *      address @ctx (a mapped register block, as in a guest).
 * Returns 0 or -EINVAL. Since 0.1.
 */
VDEV_EXPORT int vdev_drv_mmio_init(void *storage, uint64_t storage_size,
				   const struct vdev_drv_mmio_io_ops *io, void *ctx,
				   vdev_drv_mmio **out);

/**
 * vdev_drv_mmio_probe() - check MagicValue, Version 2 and a non-zero
 * DeviceID, which is returned in *device_id. Returns 0, -ENODEV (no device:
 * DeviceID 0) or -ENOTSUP (bad magic or version). Since 0.1.
 */
VDEV_EXPORT int vdev_drv_mmio_probe(vdev_drv_mmio *m, uint32_t *device_id);

/**
 * vdev_drv_mmio_transport() - vdev_drv transport ops over virtio-mmio
 * registers; transport_opaque = the vdev_drv_mmio. Since 0.1.
 */
VDEV_EXPORT const struct vdev_drv_transport_ops *vdev_drv_mmio_transport(void);

/**
 * vdev_drv_mmio_ack_interrupt() - read InterruptStatus and acknowledge those
 * bits; returns them (bit 0 used buffer, bit 1 config change). Since 0.1.
 */
VDEV_EXPORT uint32_t vdev_drv_mmio_ack_interrupt(vdev_drv_mmio *m);

#ifdef __cplusplus
}
#endif

#endif
