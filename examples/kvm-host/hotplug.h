/* SPDX-License-Identifier: MIT */
/*
 * PCIe hotplug for vdev-kvm-host (--blk FILE,transport=pci,hotplug): the
 * library's root port (vdev_pcie_port) at KH_HOTPLUG_PORT_ADDR with its
 * hotplug MSI on an irqfd, the disk's function at KH_HOTPLUG_SLOT_ADDR
 * behind it, and a control thread that plugs and unplugs the disk when the
 * guest asks (TG_PORT_HOTPLUG), waits for the port's completion eventfds,
 * checks after an unplug that the function and its BAR ranges are gone, and
 * frees the disk.
 */
#ifndef KH_HOTPLUG_H
#define KH_HOTPLUG_H

#include <stdint.h>
#include <stdio.h>

#include "blkdev.h"
#include "pciroot.h"
#include "vm.h"

struct kh_hotplug;

/**
 * kh_hotplug_new() - the root port on @pci (which needs bus KH_HOTPLUG_BUS).
 * Prints why on failure. Returns 0 or a negative errno.
 */
int kh_hotplug_new(struct kh_vm *vm, struct kh_pci *pci, struct kh_hotplug **out);

/**
 * kh_hotplug_start() - take over @disk (created with hotplug set, so it
 * sits at KH_HOTPLUG_SLOT_ADDR, not yet announced) and start the control
 * thread; @io serves the disk and is told to let go of it before it is
 * freed. Returns 0 or a negative errno.
 */
int kh_hotplug_start(struct kh_hotplug *h, struct kh_blk *disk, struct kh_iothread *io);

/** kh_hotplug_request() - the test device's TG_PORT_HOTPLUG hook (opaque = h). */
int kh_hotplug_request(void *opaque, uint32_t op);

/** kh_hotplug_stop() - after the vCPU stopped: finish a command the guest
 * completed, stop and join the control thread. Accepts NULL. */
void kh_hotplug_stop(struct kh_hotplug *h);

/**
 * kh_hotplug_report() - the summary: the disk's report (as it was when it
 * was unplugged), the port's interrupts and the commands. Returns 1 if the
 * disk reported errors or a host check after an unplug failed, else 0.
 */
int kh_hotplug_report(struct kh_hotplug *h, FILE *out);

/** kh_hotplug_cycles() - plugs and unplugs completed (either may be NULL). */
void kh_hotplug_cycles(const struct kh_hotplug *h, uint32_t *plugs, uint32_t *unplugs);

/** kh_hotplug_free() - the disk if still here, then the port; accepts NULL.
 * After kh_iothread_stop. */
void kh_hotplug_free(struct kh_hotplug *h);

#endif
