/* SPDX-License-Identifier: MIT */
/*
 * What the PCIe root port and the virtual config window need from the PCI
 * root beyond the public API, and the BAR decoding rule (with its sizing
 * state) shared by the config space and the root. Lock order: the root's
 * lock, then a port's lock. The root calls a function's config_register_*
 * and a gate's link_up with its lock held, so a port must never hold its
 * own lock while calling into the root.
 */
#ifndef VDI_PCI_INTERNAL_H
#define VDI_PCI_INTERNAL_H

#include <stdint.h>

#include <virtio-dev/pci.h>

/*
 * Gate the secondary bus of the bridge at @bridge_addr: config cycles to
 * functions on that bus reach them only while link_up(@opaque) returns
 * nonzero (otherwise they read all ones and writes are dropped, as with no
 * device). link_up runs with the root's lock held. @link_up NULL removes
 * the gate. Callable from inside a config cycle of the same root (the lock
 * is already held then). Returns 0, -EINVAL or -ENOENT (no such function).
 */
int vdi_pci_root_set_gate(vdev_pci_root *root, uint32_t bridge_addr, int (*link_up)(void *opaque),
			  void *opaque);

/*
 * Remove the function at @addr as vdev_pci_root_remove does, but callable
 * from inside a config cycle (a function's config_register_write, root lock
 * held): the removal runs when the current cycle is done, before the config
 * call returns to its caller; then done(@opaque, @addr) is called (no root
 * lock held). Outside a config cycle it runs at once. Returns 0, -EINVAL,
 * -ENOENT or -ENOMEM.
 */
int vdi_pci_root_remove_deferred(vdev_pci_root *root, uint32_t addr,
				 void (*done)(void *opaque, uint32_t addr), void *opaque);

/*
 * Run @fn on the function at @addr if a config cycle would reach it now (bus
 * 0, or behind a bridge chain with open gates), with the root's lock held:
 * @fn gets the function's ops and opaque and must not call vdev_pci_root_*
 * functions. Returns @fn's result, -ENOENT (not reachable), -EINVAL, or
 * -ETIMEDOUT / -EDEADLK as a config cycle does (see pci_root.c, "Locking").
 */
int vdi_pci_root_call(vdev_pci_root *root, uint32_t addr,
		      int (*fn)(const struct vdev_bus_device_ops *ops, void *opaque, void *arg),
		      void *arg);

/* Config dwords as the guest sees them: little-endian bytes. */
/*
 * BAR sizing state. A guest sizes a BAR dword by writing all ones to it,
 * which reads back the size mask; but every address bit set is also a real
 * address (a 2 GiB 32-bit BAR has only 0x80000000; a 64-bit one has the
 * last BAR-sized slot below each 4 GiB boundary, where top-down allocators
 * put it), so "being sized" is decided from what was written, never from
 * the register. Per BAR dword, a state whose bit i is set iff the last
 * write to byte i of the dword wrote 0xff; the dword is being sized iff
 * all four are. A sizing write is all ones. An address written to a BAR's
 * first dword never is, however it is split into byte or word writes: its
 * low byte holds the flag bits (as read, or zeros), whose bit 1 is 0. The
 * one address that still counts as sizing is an upper dword of all ones:
 * a 64-bit BAR in the top 4 GiB of the 64-bit space.
 */
#define VDI_PCI_SIZING_ALL 0xfu

/* The state of a dword after a write of @size bytes at byte @offset. */
static inline uint8_t vdi_pci_sizing_write(uint8_t state, uint32_t offset, const void *data,
					   uint32_t size)
{
	const uint8_t *b = (const uint8_t *)data;
	uint32_t i;

	for (i = 0; i < size && offset + i < 4; i++) {
		uint8_t bit = (uint8_t)(1u << (offset + i));

		state = (uint8_t)(b[i] == 0xff ? state | bit : state & ~bit);
	}
	return state;
}

/*
 * Where a BAR decodes. @lo is the BAR's dword, @hi the next one (64-bit
 * BARs; 0 otherwise); @lo_mask / @hi_mask are the address bits the BAR
 * implements in each (what reads back as ones after writing all ones, flag
 * bits excluded); @lo_state / @hi_state are the dwords' sizing states
 * (@hi_state 0 for a 32-bit BAR). Returns the base address, or 0 when the
 * BAR is not implemented, unassigned (address 0), or being sized (either
 * dword, see above): sizing with decode on takes the BAR off the bus, never
 * moves it to the size mask.
 */
static inline uint64_t vdi_pci_bar_base(uint32_t lo, uint32_t hi, uint32_t lo_mask,
					uint32_t hi_mask, uint8_t lo_state, uint8_t hi_state)
{
	if (lo_state == VDI_PCI_SIZING_ALL || hi_state == VDI_PCI_SIZING_ALL)
		return 0;
	return (uint64_t)(hi & hi_mask) << 32 | (lo & lo_mask);
}

/* Bus-device read / write of a function without BARs (pci_cfg.c): never
 * placed on a bus, so any call is a misrouted access: -EIO. */
int vdi_pci_no_bar_read(void *opaque, const struct vdev_bus_access *a, void *data);
int vdi_pci_no_bar_write(void *opaque, const struct vdev_bus_access *a, const void *data);

#endif
