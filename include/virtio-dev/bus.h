/* SPDX-License-Identifier: MIT */
/*
 * An address space (guest MMIO or port I/O) where bus devices claim ranges:
 * the C form of crosvm's BusDevice. The VMM hands every KVM_EXIT_MMIO /
 * KVM_EXIT_IO to vdev_bus_read / vdev_bus_write; the bus finds the range in
 * O(log n) and calls its device.
 *
 * Thread-safety: every function may be called from any thread. Dispatch holds
 * no lock while a device callback runs, so a slow device delays only accesses
 * to itself; concurrent accesses to the same device reach it concurrently (a
 * device serializes itself if it must). vdev_bus_remove waits until accesses
 * already inside the removed range have returned, and must not be called from
 * that device's own callback.
 */
#ifndef VIRTIO_DEV_BUS_H
#define VIRTIO_DEV_BUS_H

#include <stdint.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vdev_bus vdev_bus;

/* Bus kinds. */
#define VDEV_BUS_MMIO 0u
#define VDEV_BUS_PIO 1u

/* What a device learns about one access. */
struct vdev_bus_access {
	uint32_t struct_size;
	uint32_t size;    /* 1, 2, 4 or 8 bytes */
	uint64_t address; /* absolute bus address */
	uint64_t base;    /* base of the range that matched */
	uint64_t offset;  /* address - base */
	uint32_t vcpu;    /* as passed by the VMM */
	uint32_t reserved;
};

struct vdev_bus_device_ops {
	uint32_t struct_size;
	/* A short name for logs (may be NULL). */
	const char *(*debug_label)(void *opaque);
	/* @data holds size bytes in guest (little-endian) order; for a read the
	 * bus zero-fills it first. Return 0 or a negative errno (the VMM decides
	 * what the guest sees: vdev_bus_read still leaves @data filled). */
	int (*read)(void *opaque, const struct vdev_bus_access *a, void *data);
	int (*write)(void *opaque, const struct vdev_bus_access *a, const void *data);
	/* The device's last range left the bus and no access to it is running.
	 * May be NULL. */
	void (*destroy)(void *opaque);
	/* Suspendable (may be NULL): stop / resume touching guest state. */
	int (*sleep)(void *opaque);
	int (*wake)(void *opaque);
	/* Snapshot (may be NULL): write the device's state into @buf (@cap
	 * bytes), its length into *len; -ENOSPC with *len = the size needed. */
	int (*snapshot)(void *opaque, void *buf, uint64_t cap, uint64_t *len);
	int (*restore)(void *opaque, const void *buf, uint64_t len);

	/* ---- Since 0.2: the PCI half (pci.h). All may be NULL for a device
	 * that is not a PCI function; a vdev_pci_root needs the first two. ---- */
	/* Config space dword @reg (0..1023: 0..63 the legacy 256 bytes, the rest
	 * PCIe extended space), in guest (little-endian) order. */
	uint32_t (*config_register_read)(void *opaque, uint32_t reg);
	/* Write @size (1, 2 or 4) bytes of @data at byte @offset (0..3,
	 * @offset + @size <= 4) of dword @reg. Return 0, or a negative errno
	 * when the write was refused as a whole (nothing changed). Read-only
	 * bits are simply kept: that is not a refusal. */
	int (*config_register_write)(void *opaque, uint32_t reg, uint32_t offset, const void *data,
				     uint32_t size);
	/* The function's virtual config registers (vdev_pci_vcfg's trapped
	 * page): dword @reg, 0..1023. */
	uint32_t (*virtual_config_register_read)(void *opaque, uint32_t reg);
	void (*virtual_config_register_write)(void *opaque, uint32_t reg, uint32_t value);
	/* A PCI-to-PCI bridge returns its secondary bus number (0..255) as
	 * currently programmed; any other function returns -1 (or leaves this
	 * NULL). A vdev_pci_root calls these five with its lock held: they
	 * must not call vdev_pci_root_* other than vdev_pci_root_find. */
	int32_t (*is_bridge)(void *opaque);
};

#define VDEV_BUS_DEVICE_OPS_INIT VDEV_STRUCT_INIT(struct vdev_bus_device_ops)

/**
 * vdev_bus_new() - an empty address space of @kind (VDEV_BUS_MMIO or
 * VDEV_BUS_PIO). Returns 0, -EINVAL or -ENOMEM. Since 0.1.
 */
VDEV_EXPORT int vdev_bus_new(uint32_t kind, vdev_bus **out);

/**
 * vdev_bus_free() - remove every range (calling destroy once per device),
 * then free the bus. Accepts NULL. Since 0.1.
 */
VDEV_EXPORT void vdev_bus_free(vdev_bus *bus);

/**
 * vdev_bus_insert() - claim [base, base + len) for a device.
 * @ops: copied; read and write are required.
 * @opaque: identifies the device: several ranges may share one opaque, and
 *          destroy runs when its last range goes.
 *
 * Returns 0; -EINVAL (len 0, range past 2^64, bad ops, or an opaque already
 * on the bus with other ops); -EEXIST (overlaps a claimed range); -ENOMEM.
 * Since 0.1.
 */
VDEV_EXPORT int vdev_bus_insert(vdev_bus *bus, uint64_t base, uint64_t len,
				const struct vdev_bus_device_ops *ops, void *opaque);

/**
 * vdev_bus_remove() - release the range starting exactly at @base, after the
 * accesses running inside it finish. Returns 0, -EINVAL or -ENOENT.
 * Since 0.1.
 */
VDEV_EXPORT int vdev_bus_remove(vdev_bus *bus, uint64_t base);

/**
 * vdev_bus_read() / vdev_bus_write() - dispatch one guest access.
 * @size: 1, 2, 4 or 8; the access must lie inside one range.
 *
 * Returns the device's result (0 or a negative errno); -ENOENT when no range
 * claims the address (the VMM decides: for a read, @data is all ones, as on
 * real hardware); -EINVAL for a bad size or an access that crosses the end of
 * its range. Since 0.1.
 */
VDEV_EXPORT int vdev_bus_read(vdev_bus *bus, uint64_t addr, uint32_t size, uint32_t vcpu,
			      void *data);
VDEV_EXPORT int vdev_bus_write(vdev_bus *bus, uint64_t addr, uint32_t size, uint32_t vcpu,
			       const void *data);

/**
 * vdev_bus_sleep() / vdev_bus_wake() - call every device's sleep (wake) hook
 * once, in address order. On a failure the devices already done are put back
 * (woken again after a failed sleep, put to sleep again after a failed wake)
 * and the error is returned, so the bus is in one state and the call can be
 * retried. Since 0.1.
 */
VDEV_EXPORT int vdev_bus_sleep(vdev_bus *bus);
VDEV_EXPORT int vdev_bus_wake(vdev_bus *bus);

/**
 * vdev_bus_snapshot_device() / vdev_bus_restore_device() - run the snapshot
 * (restore) hook of the device that claims @addr. Returns the hook's result,
 * -ENOENT (unclaimed) or -EOPNOTSUPP (no hook). Since 0.1.
 */
VDEV_EXPORT int vdev_bus_snapshot_device(vdev_bus *bus, uint64_t addr, void *buf, uint64_t cap,
					 uint64_t *len);
VDEV_EXPORT int vdev_bus_restore_device(vdev_bus *bus, uint64_t addr, const void *buf,
					uint64_t len);

/** vdev_bus_num_ranges() - ranges currently claimed. Since 0.1. */
VDEV_EXPORT uint32_t vdev_bus_num_ranges(vdev_bus *bus);

#ifdef __cplusplus
}
#endif

#endif
