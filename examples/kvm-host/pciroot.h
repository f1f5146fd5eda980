/* SPDX-License-Identifier: MIT */
/*
 * The VM's PCI host bridge for vdev-kvm-host: the library's vdev_pci_root
 * with its two config mechanisms on the VM's buses (0xCF8/0xCFC on the port
 * I/O bus, ECAM at TG_ECAM_BASE on the MMIO bus), the windows the guest may
 * place BARs in, and the root's BAR-move reports passed on to whoever put
 * the function there (a disk moves its notify ioeventfds).
 */
#ifndef KH_PCIROOT_H
#define KH_PCIROOT_H

#include <stdint.h>
#include <stdio.h>

#include <virtio-dev/virtio-dev.h>

#include "vm.h"

/* Bus 0 (devices 0..31), and bus 1 behind the hotplug port when there is
 * one: ECAM is 1 MiB per bus. */
#define KH_PCI_MAX_BUSES 2u
#define KH_PCI_ECAM_SIZE(buses) ((uint64_t)(buses) * VDEV_PCI_ECAM_BUS_SIZE)
/* BAR windows: 32-bit between the top of the largest RAM (3 GiB) and the
 * virtio-mmio devices at TG_MMIO_BASE, which the guest maps; 64-bit above
 * 4 GiB, which the test guest does not map (it places every BAR in the
 * 32-bit window, as pci.h allows for 64-bit BARs too). */
#define KH_PCI_MMIO32_BASE 0xc0000000ull
#define KH_PCI_MMIO32_SIZE 0x10000000ull
#define KH_PCI_MMIO64_BASE 0x100000000ull
#define KH_PCI_MMIO64_SIZE 0x100000000ull

/* The hotplug root port (--blk FILE,hotplug): at 00:1f.0 with secondary
 * bus 1, whose slot (device 0) takes the hotplug disk; its memory window is
 * the top 16 MiB of the 32-bit window, which the guest assigns bus 0's BARs
 * below. */
#define KH_HOTPLUG_PORT_ADDR VDEV_PCI_ADDR(0, 0x1f, 0)
#define KH_HOTPLUG_BUS 1u
#define KH_HOTPLUG_SLOT_ADDR VDEV_PCI_ADDR(KH_HOTPLUG_BUS, 0, 0)
#define KH_HOTPLUG_WINDOW_SIZE (16ull << 20)
#define KH_HOTPLUG_WINDOW_BASE (KH_PCI_MMIO32_BASE + KH_PCI_MMIO32_SIZE - KH_HOTPLUG_WINDOW_SIZE)
struct kh_pci;

/* A BAR of the function moved (see struct vdev_pci_root_ops.bar_moved):
 * runs on the thread doing the config cycle, with the root's lock held. */
typedef void (*kh_pci_moved_fn)(void *opaque, const struct vdev_pci_bar_move *move);

/**
 * kh_pci_new() - the root on @vm's buses with @num_buses buses (1..
 * KH_PCI_MAX_BUSES; ECAM KH_PCI_ECAM_SIZE(num_buses) bytes). Prints why on
 * failure. Returns 0 or a negative errno.
 */
int kh_pci_new(struct kh_vm *vm, uint32_t num_buses, struct kh_pci **out);

/** kh_pci_root() - the library's root (for a root port, and the host's checks). */
vdev_pci_root *kh_pci_root(struct kh_pci *p);

/** kh_pci_free() - off the buses, every function removed; accepts NULL. */
void kh_pci_free(struct kh_pci *p);

/**
 * kh_pci_add() - put a function at @addr: @ops and @opaque as for
 * vdev_pci_root_add; @moved (may be NULL) hears of its BAR moves. Returns 0
 * or a negative errno.
 */
int kh_pci_add(struct kh_pci *p, uint32_t addr, const struct vdev_bus_device_ops *ops,
	       void *opaque, kh_pci_moved_fn moved, void *moved_opaque);

/** kh_pci_remove() - take the function at @addr off (its BARs leave the
 * bus), also when a hotplug port removed it already (then only its entry here). */
void kh_pci_remove(struct kh_pci *p, uint32_t addr);

/**
 * kh_pci_report() - print the root's summary for the host's report: config
 * writes it refused (a BAR onto another range or outside the windows).
 * Returns 1 if it refused any, else 0.
 */
int kh_pci_report(struct kh_pci *p, FILE *out);

#endif
