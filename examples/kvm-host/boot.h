/* SPDX-License-Identifier: MIT */
/*
 * Starting the test guest (tg-abi.h): its GDT/TSS, identity page tables, and
 * the vCPU state of 64-bit long mode at CPL 3. A Linux boot would be a second
 * function here (64-bit boot protocol: CPL 0, boot_params in RSI), fed by a
 * bzImage loader in loader.h, with the same VM underneath.
 */
#ifndef KH_BOOT_H
#define KH_BOOT_H

#include <stdint.h>

#include "vm.h"

/* RFLAGS at entry: IOPL 3 (port I/O at CPL 3), bit 1, and IF in irq mode
 * (`sti` faults at CPL 3, so the host sets it). */
#define KH_RFLAGS_POLL 0x3002ull
#define KH_RFLAGS_IRQ 0x3202ull

/**
 * kh_boot_test_guest() - write the GDT (with a TSS), an empty IDT and page
 * tables into guest RAM at the tg-abi.h addresses, then set the vCPU's
 * registers: long mode, CS 0x1b / SS DS 0x23 (DPL 3), RIP @entry,
 * RSP TG_STACK_TOP, RDI TG_BOOT_INFO_GPA, RFLAGS @rflags. The page tables map
 * [0, 4 GiB) identity with U/S and writable set: RAM, the virtio-mmio and
 * ECAM windows and the APIC page (uncached above 3 GiB); page 0 is left
 * unmapped so a guest NULL dereference faults. Returns 0 or a negative
 * errno (printed).
 */
int kh_boot_test_guest(struct kh_vm *vm, uint64_t entry, uint64_t rflags);

#endif
