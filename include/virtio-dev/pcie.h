/* SPDX-License-Identifier: MIT */
/*
 * PCIe root port with native hotplug, and the hotplug bus interface (the C
 * form of crosvm's HotPlugBus).
 *
 * The root port is a type 1 function on a vdev_pci_root with the PCIe
 * capability (root port, slot implemented), MSI, and the slot registers
 * Linux's pciehp drives: attention button, power controller, power and
 * attention indicators, presence detect, data-link-layer state changed with
 * link-active reporting, and command completed. Its secondary bus holds one
 * hotplug slot (device 0). Config cycles reach the slot's functions only
 * while the slot is powered and its link is up.
 *
 * Hot plug: the VMM adds the function to the root at an address on the
 * port's secondary bus (vdev_pci_root_add), then calls hot_plug: presence
 * detect changes, the attention button is pressed (as QEMU does: with a
 * button present Linux enables only its interrupt) and the port interrupts;
 * the guest powers the slot on, the link comes up (data-link-layer state
 * changed), the guest enumerates. Before the guest has first written Slot
 * Control (at boot, before its bus scan), hot_plug powers the slot on at
 * once, as firmware leaves a populated slot; after that the guest's pciehp
 * owns the slot and powers it itself, also in poll mode.
 * Hot unplug: hot_unplug presses the attention button; the guest takes the
 * device down and powers the slot off; the port then removes the function
 * from the root (its BAR ranges leave the buses), clears presence, and
 * signals the completion eventfd. A slot that is powered off, or one the
 * guest never took, is emptied at once. Surprise removal
 * (vdev_pcie_port_surprise_remove) does not wait for the guest.
 *
 * Thread-safety: every function may be called from any thread; the port
 * serializes itself. hotplug ops must not be called from the port's own
 * msi callbacks, which run with the port's lock held (during config cycles
 * also the root's) and must not call vdev_pcie_port_* or vdev_pci_root_*.
 */
#ifndef VIRTIO_DEV_PCIE_H
#define VIRTIO_DEV_PCIE_H

#include <stdint.h>

#include "bus.h"
#include "common.h"
#include "pci.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- the hotplug bus interface ------------------------------------------- */

/*
 * A key naming a hotplugged device (or a port) across hot_plug/hot_unplug:
 * any value the VMM chooses except VDEV_HOTPLUG_KEY_NONE.
 */
#define VDEV_HOTPLUG_KEY_NONE UINT64_MAX

struct vdev_hotplug_bus_ops {
	uint32_t struct_size;
	uint32_t reserved;
	/*
	 * Announce the function(s) at @addr (already added to the root) to the
	 * guest. *event_fd receives an eventfd (the caller's to close;
	 * non-blocking and close-on-exec: poll it) that becomes readable when
	 * the guest has completed the command, or -1 where the mechanism has
	 * no completion. Return 0 or a negative errno (-EBUSY: a command is
	 * still in progress or the slot is occupied; -ENOENT: no function at
	 * @addr on the root (hot_plug) or the slot is empty (hot_unplug);
	 * -EINVAL: not the slot's address).
	 */
	int (*hot_plug)(void *opaque, uint32_t addr, int *event_fd);
	/* Ask the guest to release @addr; as hot_plug. */
	int (*hot_unplug)(void *opaque, uint32_t addr, int *event_fd);
	/* The secondary bus number if a device at host address @host_addr
	 * belongs behind this bus, else -ENOENT (-EINVAL: not an address). */
	int (*is_match)(void *opaque, uint32_t host_addr);
	/* This bus's own address (VDEV_PCI_ADDR), or -ENOENT. */
	int (*get_address)(void *opaque, uint32_t *addr);
	/* The secondary bus number (0..255), or -ENOENT. */
	int (*get_secondary_bus)(void *opaque);
	/* Remember that the device named @key sits at guest address @addr.
	 * Returns 0, -EINVAL or -ENOSPC (the root port keeps 8 keys; those of
	 * the slot's functions are forgotten when the slot is emptied). */
	int (*add_hotplug_device)(void *opaque, uint64_t key, uint32_t addr);
	/* The guest address of @key, or -ENOENT. */
	int (*get_hotplug_device)(void *opaque, uint64_t key, uint32_t *addr);
	/* 1 when no device sits behind this bus, 0 otherwise. */
	int (*is_empty)(void *opaque);
	/* The key this bus itself was given, or VDEV_HOTPLUG_KEY_NONE. */
	uint64_t (*get_hotplug_key)(void *opaque);
};

#define VDEV_HOTPLUG_BUS_OPS_INIT VDEV_STRUCT_INIT(struct vdev_hotplug_bus_ops)

/* ---- the PCIe root port --------------------------------------------------- */

typedef struct vdev_pcie_port vdev_pcie_port;

struct vdev_pcie_port_config {
	uint32_t struct_size;
	uint32_t addr;           /* where the port sits on the root (VDEV_PCI_ADDR) */
	vdev_pci_root *root;     /* borrowed, required */
	uint8_t secondary_bus;   /* 1..255: programmed as if by firmware */
	uint8_t subordinate_bus; /* 0 means secondary_bus */
	uint16_t slot_number;    /* physical slot number (0..8191) */
	uint16_t vendor_id;      /* 0 means 0x1b36 (QEMU's, as Linux guests know it) */
	uint16_t device_id;      /* 0 means 0x000c (a generic root port) */
	/* Bridge windows programmed as if by firmware (size 0: closed). The
	 * guest assigns the hotplugged device's BARs inside them. */
	uint64_t mem_base, mem_size;         /* 1 MiB granular, below 4 GiB */
	uint64_t pref_base, pref_size;       /* 1 MiB granular, 64-bit */
	uint32_t io_base, io_size;           /* 4 KiB granular */
	uint32_t flags;                      /* VDEV_PCIE_PORT_F_* */
	uint64_t hotplug_key; /* the port's key; VDEV_HOTPLUG_KEY_NONE: none (INIT gives 0) */
	uint32_t host_addr; /* is_match: the host port it stands for; 0 or VDEV_PCI_ADDR_NONE: none */
	uint32_t reserved;
	const struct vdev_pci_msi_ops *msi_ops; /* copied at _new; signal and/or set_intx */
	void *msi_opaque;
};

#define VDEV_PCIE_PORT_CONFIG_INIT VDEV_STRUCT_INIT(struct vdev_pcie_port_config)

/* Flag: advertise Hot-Plug Surprise in the slot capabilities. */
#define VDEV_PCIE_PORT_F_SURPRISE 0x1u

/**
 * vdev_pcie_port_new() - a root port, added to @cfg->root at @cfg->addr.
 * Returns 0, -EINVAL, -EEXIST (the address is taken) or -ENOMEM. Since 0.2.
 */
VDEV_EXPORT int vdev_pcie_port_new(const struct vdev_pcie_port_config *cfg,
				   vdev_pcie_port **out);

/**
 * vdev_pcie_port_free() - remove the port (and any function plugged behind
 * it with hot_plug) from the root, and close its own ends of pending
 * completion eventfds: the caller's never fire, and the caller still closes
 * them. Accepts NULL. Since 0.2.
 */
VDEV_EXPORT void vdev_pcie_port_free(vdev_pcie_port *port);

/**
 * vdev_pcie_port_hotplug_ops() - the port's implementation of the hotplug
 * bus interface; opaque = the vdev_pcie_port. hot_plug takes an address on
 * the secondary bus, device 0 (the slot); its eventfd fires when the guest
 * powers the slot on. hot_unplug's fires once the guest has powered the slot
 * off and the function is gone from the root and every bus. Since 0.2.
 */
VDEV_EXPORT const struct vdev_hotplug_bus_ops *vdev_pcie_port_hotplug_ops(void);

/**
 * vdev_pcie_port_surprise_remove() - the device behind the port is gone now
 * (its backend died, the VMM pulls it): remove the functions from the root,
 * clear presence, drop the link, and interrupt the guest (presence detect
 * and link state changed). A pending hot_unplug completes; a pending
 * hot_plug is cancelled (its eventfd never fires). Returns 0, -ENOENT
 * (slot empty), -EBUSY (a removal is still finishing) or -EINVAL.
 * Since 0.2.
 */
VDEV_EXPORT int vdev_pcie_port_surprise_remove(vdev_pcie_port *port);

/**
 * vdev_pcie_port_slot_state() - for VMM logs and tests: the slot status and
 * slot control registers as the guest sees them (either pointer may be
 * NULL). Returns 0 or -EINVAL. Since 0.2.
 */
VDEV_EXPORT int vdev_pcie_port_slot_state(vdev_pcie_port *port, uint16_t *slot_status,
					  uint16_t *slot_control);

#ifdef __cplusplus
}
#endif

#endif
