/* SPDX-License-Identifier: MIT */
/*
 * virtio-pci transport (the spec's "Virtio Over PCI Bus"), device side: a PCI
 * function in front of a vdev_device, to be put on a vdev_pci_root (pci.h).
 *
 * Layout (fixed, so a VMM can rely on it):
 *   BAR 0  I/O, the legacy register block (transitional devices only)
 *   BAR 1  32-bit memory: MSI-X table at 0, PBA at VDEV_VIRTIO_PCI_PBA_OFFSET
 *          (absent without MSI-X)
 *   BAR 4  64-bit prefetchable memory, VDEV_VIRTIO_PCI_BAR4_SIZE bytes (the
 *          next power of two holding 0x3000 + num_queues * multiplier if larger):
 *          common config at 0x0000, ISR at 0x1000, device config at 0x2000,
 *          notify at 0x3000 (queue q at q * notify_off_multiplier)
 * Capabilities: common, notify, ISR, device config (only when the device
 * has config space), PCI config access, then MSI-X (not with
 * VDEV_VIRTIO_PCI_F_NO_MSIX). queue_size (legacy: QUEUE_NUM) shows the
 * device's queue_max_size rounded down to a power of two unless
 * VIRTIO_F_RING_PACKED was negotiated. Features this transport cannot carry
 * (notification data, SR-IOV, admin virtqueues) are never offered.
 *
 * Interrupts: with MSI-X enabled, each source (config change, each queue)
 * goes to the vector the driver assigned (none for NO_VECTOR), honouring the
 * function mask and per-vector masks with pending bits in the PBA, and is
 * delivered through struct vdev_pci_msi_ops. Without MSI-X, the ISR bits are
 * set and INTx is asserted (set_intx, unless the command register's INTx
 * Disable is set) until the driver reads the ISR.
 *
 * Also the driver side: virtio-pci register access for vdev_drv
 * (freestanding).
 *
 * Thread-safety: register and config accesses to one function are serialized
 * by an internal lock. Notify writes and eventfd kicks bypass it (device.h).
 */
#ifndef VIRTIO_DEV_VIRTIO_PCI_H
#define VIRTIO_DEV_VIRTIO_PCI_H

#include <stdint.h>

#include "bus.h"
#include "common.h"
#include "device.h"
#include "driver.h"
#include "pci.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vdev_virtio_pci vdev_virtio_pci;

#define VDEV_VIRTIO_PCI_VENDOR_ID 0x1af4u
/* Modern device ID: 0x1040 + device type. */
#define VDEV_VIRTIO_PCI_DEVICE_ID_BASE 0x1040u

#define VDEV_VIRTIO_PCI_BAR_LEGACY 0u
#define VDEV_VIRTIO_PCI_BAR_MSIX 1u
#define VDEV_VIRTIO_PCI_BAR_MODERN 4u
#define VDEV_VIRTIO_PCI_BAR4_SIZE 0x4000u /* grows (power of two) with many queues */
#define VDEV_VIRTIO_PCI_COMMON_OFFSET 0x0000u
#define VDEV_VIRTIO_PCI_ISR_OFFSET 0x1000u
#define VDEV_VIRTIO_PCI_DEVICE_OFFSET 0x2000u
#define VDEV_VIRTIO_PCI_NOTIFY_OFFSET 0x3000u
#define VDEV_VIRTIO_PCI_PBA_OFFSET 0x8000u /* in BAR 1, after a 2048-entry table */

/* No vector (the spec's VIRTIO_MSI_NO_VECTOR). */
#define VDEV_VIRTIO_PCI_NO_VECTOR 0xffffu

/* Config flags. */
#define VDEV_VIRTIO_PCI_F_TRANSITIONAL 0x1u /* legacy I/O BAR 0, transitional IDs */
#define VDEV_VIRTIO_PCI_F_NO_MSIX 0x2u      /* INTx only, no MSI-X capability */

struct vdev_virtio_pci_config {
	uint32_t struct_size;
	uint32_t flags;
	/* MSI-X table size, 1..2048; 0 means num_queues + 1. */
	uint32_t msix_vectors;
	/* Bytes between queue notify addresses: 0 means 4; else a power of
	 * two, 2..4096 (the spec's "even power of 2"; 0 would put every queue
	 * on one address: not offered). */
	uint32_t notify_off_multiplier;
	uint16_t subsystem_vendor_id; /* 0 means 0x1af4 */
	uint16_t subsystem_id;        /* 0 means the device type */
	uint32_t class_code;          /* 0 means by device type (blk: 0x018000) */
	uint8_t revision;             /* 0 means 1; must be 0 with F_TRANSITIONAL */
	uint8_t interrupt_pin;        /* 0 means 1 (INTA) */
	uint16_t reserved;
	const struct vdev_pci_msi_ops *msi_ops; /* copied at _new; required */
	void *msi_opaque;
};

#define VDEV_VIRTIO_PCI_CONFIG_INIT VDEV_STRUCT_INIT(struct vdev_virtio_pci_config)

/**
 * vdev_virtio_pci_new() - a virtio-pci function in front of @dev.
 * @dev: borrowed; must outlive the transport, which installs its own
 *       interrupt sink in it.
 * Returns 0, -EINVAL, -EBUSY (@dev's status is not 0) or -ENOMEM. Since 0.2.
 */
VDEV_EXPORT int vdev_virtio_pci_new(const struct vdev_virtio_pci_config *cfg, vdev_device *dev,
				    vdev_virtio_pci **out);

/** vdev_virtio_pci_free() - reset the device and detach. Accepts NULL. Since 0.2. */
VDEV_EXPORT void vdev_virtio_pci_free(vdev_virtio_pci *vp);

/**
 * vdev_virtio_pci_bus_ops() - the function's bus-device ops (config space,
 * BAR accesses, virtual config registers: 1024 scratch dwords), for
 * vdev_pci_root_add with opaque = the vdev_virtio_pci. destroy is NULL: the
 * caller frees the transport after removing it. Since 0.2.
 */
VDEV_EXPORT const struct vdev_bus_device_ops *vdev_virtio_pci_bus_ops(void);

/**
 * vdev_virtio_pci_notify_address() - where a kick for @queue lands now: the
 * guest address (BAR 4 as programmed, decode on) and the 2-byte value
 * written (the queue index), for KVM_IOEVENTFD (datamatch optional, the
 * address is per queue). Call again after a bar_moved report. This is the
 * modern notify structure; a legacy driver of a transitional device kicks
 * through BAR 0's QUEUE_NOTIFY, served on the bus path. Returns 0,
 * -EINVAL (no such queue) or -ENXIO (BAR 4 unassigned or not decoding).
 * Since 0.2.
 */
VDEV_EXPORT int vdev_virtio_pci_notify_address(vdev_virtio_pci *vp, uint32_t queue,
					       uint64_t *addr, uint32_t *value);

/** vdev_virtio_pci_device() - the device behind the transport (borrowed). Since 0.2. */
VDEV_EXPORT vdev_device *vdev_virtio_pci_device(const vdev_virtio_pci *vp);

/* ---- driver side (freestanding) -------------------------------------------- */

typedef struct vdev_drv_vpci vdev_drv_vpci;

/** vdev_drv_vpci_storage_size() - bytes vdev_drv_vpci_init needs. Since 0.2. */
VDEV_EXPORT uint64_t vdev_drv_vpci_storage_size(void);

/**
 * vdev_drv_vpci_init() - driver-side access to the virtio-pci function at
 * @addr, whose BARs are assigned and decoding (vdev_drv_pci_assign_bars):
 * checks the IDs (vendor 0x1af4, device 0x1040..0x107f, or a transitional
 * 0x1000..0x103f with revision 0 driven through its modern capabilities),
 * walks the vendor capabilities and validates each one's BAR, offset and
 * length against the BAR's size, as Linux's virtio_pci_modern does.
 * BAR sizes are read by sizing (decode off meanwhile, everything restored).
 * @storage: vdev_drv_vpci_storage_size() bytes, 8-byte aligned; @io needs
 * cfg_read, cfg_write, mem_read and mem_write.
 * Returns 0; -ENODEV (not virtio); -EBADMSG (a capability missing or out of
 * its BAR); -EINVAL (also: memory decode off). MSI-X must be enabled again
 * after a new init. Since 0.2.
 */
VDEV_EXPORT int vdev_drv_vpci_init(void *storage, uint64_t storage_size,
				   const struct vdev_drv_pci_io_ops *io, void *ctx, uint32_t addr,
				   vdev_drv_vpci **out);

/** vdev_drv_vpci_device_type() - the virtio device type. Since 0.2. */
VDEV_EXPORT uint32_t vdev_drv_vpci_device_type(const vdev_drv_vpci *p);

/**
 * vdev_drv_vpci_transport() - vdev_drv transport ops over the function's
 * common, notify, ISR and device-config structures; transport_opaque = the
 * vdev_drv_vpci. Since 0.2.
 */
VDEV_EXPORT const struct vdev_drv_transport_ops *vdev_drv_vpci_transport(void);

/**
 * vdev_drv_vpci_enable_msix() - program the MSI-X table (vector i gets
 * @address and @data + i, unmasked), enable MSI-X and set INTx Disable in
 * the command register, and have the transport
 * assign config_msix_vector = 0 and queue q's vector = 1 + q (or all to 0
 * when the table has fewer entries) at queue setup; a vector the device
 * reads back as NO_VECTOR makes queue setup fail with -EIO. Call before
 * vdev_drv_start. Returns the table size, -ENOTSUP (no MSI-X), -EBADMSG
 * (malformed list, table outside a memory BAR) or -EINVAL. Since 0.2.
 */
VDEV_EXPORT int vdev_drv_vpci_enable_msix(vdev_drv_vpci *p, uint64_t address, uint32_t data);

/**
 * vdev_drv_vpci_read_isr() - read (and so clear) the ISR: bit 0 queue
 * interrupt, bit 1 config change. Since 0.2.
 */
VDEV_EXPORT uint32_t vdev_drv_vpci_read_isr(vdev_drv_vpci *p);

#ifdef __cplusplus
}
#endif

#endif
