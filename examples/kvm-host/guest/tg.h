/* SPDX-License-Identifier: MIT */
/*
 * The test guest's internal interface. The guest is split in two:
 *
 *   platform  what only a real guest can do: port I/O to the test device,
 *             MMIO register accesses, the IDT gates and the local APIC, power
 *             off (platform.c, entry.S). host-test.c provides the same
 *             functions in a host process, so the rest can be tested there.
 *   the rest  plain C over the library's driver half (blk.c, pci.c,
 *             hostile.c, main.c, lib.c). Guest-physical addresses are pointers: the
 *             guest runs identity-mapped, and the host test registers its
 *             buffers with the device at their own addresses.
 *
 * Everything the device reads or writes (rings, request headers, data) comes
 * from tg_alloc, never from the stack or static storage.
 */
#ifndef VDEV_TG_H
#define VDEV_TG_H

#include <stdint.h>

#include <virtio-dev/pci.h>

#include "../tg-abi.h"

#define TG_NORETURN __attribute__((noreturn))
#define TG_PRINTF(f, a) __attribute__((format(printf, f, a)))

/* ---- platform ----------------------------------------------------------- */

/* One line to the host's console (without the newline). */
void tg_put_line(const char *line);
/* Write @value to test-device port TG_PORT_STATUS / TG_PORT_MARK. */
void tg_set_status(uint32_t status);
void tg_mark(uint32_t mark);
/* The end: TG_PORT_POWER_OFF with the exit code. */
void tg_power_off(uint32_t code) TG_NORETURN;
/* Ask the host to plug or unplug the hotplug slot's disk (TG_HOTPLUG_*). */
void tg_hotplug_request(uint32_t op);

/* 1, 2, 4 or 8-byte register access at guest-physical address @gpa. */
uint64_t tg_mmio_read(uint64_t gpa, uint32_t width);
void tg_mmio_write(uint64_t gpa, uint32_t width, uint64_t value);

/* Route the TG_IRQ_VECTORS vectors from TG_IRQ_VECTOR to tg_irq_handler and
 * enable the local APIC; the handler's end of interrupt. */
void tg_irq_install(void);
void tg_irq_eoi(void);

/* ---- the rest ----------------------------------------------------------- */

/* Called for every interrupt on vector TG_IRQ_VECTOR + @index (blk.c). */
void tg_irq_handler(uint32_t index);

/* The guest proper (main.c): never returns. */
void tg_main(struct tg_boot_info *bi) TG_NORETURN;

/* printf for the host console: %s %c %d %u %x with l/ll/z and a width
 * (0-padded if it starts with 0); longer lines are cut at TG_LINE_MAX. */
void tg_printf(const char *fmt, ...) TG_PRINTF(1, 2);

/* Take the heap and TSC rate from the boot info, before anything else. */
void tg_lib_init(const struct tg_boot_info *bi);
/* Bump allocator over the boot info's heap; never freed. NULL when full. */
void *tg_alloc(uint64_t size, uint64_t align);

static inline uint64_t tg_rdtsc(void)
{
	uint32_t lo, hi;

	__asm__ __volatile__("rdtsc" : "=a"(lo), "=d"(hi));
	return (uint64_t)hi << 32 | lo;
}

/* TSC deadline @ms milliseconds from now (tsc_khz from the boot info). */
uint64_t tg_deadline_ms(uint64_t ms);
static inline int tg_expired(uint64_t deadline)
{
	return tg_rdtsc() >= deadline;
}

/* Spin-wait hint: lets the sibling hyperthread (or the host) run. */
static inline void tg_relax(void)
{
	__asm__ __volatile__("pause" ::: "memory");
}

/* ---- PCI (pci.c) ------------------------------------------------------------ */

struct tg_pci;

/* tg_printf(TG_PCI_FMT, TG_PCI_ARGS(addr)): a function's bus:device.function. */
#define TG_PCI_FMT "%02x:%02x.%x"
#define TG_PCI_ARGS(a) VDEV_PCI_ADDR_BUS(a), VDEV_PCI_ADDR_DEV(a), VDEV_PCI_ADDR_FN(a)

/* A virtio device to drive: a virtio-mmio register block, or a virtio-pci
 * function (its BARs assigned) behind a PCI root. */
struct tg_vdev {
	uint32_t kind;       /* TG_DEV_VIRTIO_MMIO or TG_DEV_PCI_ECAM */
	uint64_t base;       /* virtio-mmio: the register block */
	struct tg_pci *pci;  /* virtio-pci: its root */
	uint32_t addr;       /* virtio-pci: the function, VDEV_PCI_ADDR */
};

/* The PCI root of a TG_DEV_PCI_ECAM device, BARs to come from the boot
 * info's pci_mem window. NULL after printing why. */
struct tg_pci *tg_pci_open(const struct tg_device *ecam, const struct tg_boot_info *bi);
/* The same root, with BARs to come from a bridge's window [@base, +@size).
 * NULL after printing why. */
struct tg_pci *tg_pci_open_bridge(const struct tg_pci *root, uint64_t base, uint64_t size);
/* Size and assign the BARs of @addr from the window, enable decode and bus
 * mastering; unless @quiet print where BARs 1 and 4 went. 0 or < 0 (printed). */
int tg_pci_assign_bars(struct tg_pci *p, uint32_t addr, int quiet);
/* Enumerate; unless @quiet, print every function and assign the BARs of
 * every virtio one. The first virtio-blk, its BARs assigned, goes to @blk.
 * Returns 0, or -1 when there is none (printed). */
int tg_pci_find_blk(struct tg_pci *p, int quiet, struct tg_vdev *blk);
/* Config space and BAR access for the driver side's vdev_drv_pci_* and
 * vdev_drv_vpci_* calls; the context is the struct tg_pci. */
extern const struct vdev_drv_pci_io_ops tg_pci_io;
/* Move BAR @bar of @addr to a new place in the window (decode off
 * meanwhile); returns the new address, or 0 (printed). */
uint64_t tg_pci_move_bar(struct tg_pci *p, uint32_t addr, uint32_t bar);
/* Where the virtio-pci function's common config and queue @queue's notify
 * address are (its capabilities, checked against its BARs); 0 or -1. */
int tg_pci_virtio_regs(struct tg_pci *p, uint32_t addr, uint32_t queue, uint64_t *common,
		       uint64_t *notify);

/* ---- virtio-blk (blk.c) -------------------------------------------------- */

struct tg_blk;

/* Check a virtio-mmio register block; 0 and its device id, or < 0. */
int tg_probe(const struct tg_device *dev, uint32_t *device_id);
/* Start a vdev_drv on the virtio-blk at @dev (split ring, EVENT_IDX and
 * INDIRECT_DESC if offered; over virtio-pci with MSI-X, after moving BAR 4
 * once unless @quiet); @quiet: print nothing unless it fails. Returns NULL
 * after printing why. */
struct tg_blk *tg_blk_open(const struct tg_vdev *dev, int quiet);
/* Reset the device (it stops using our memory). */
void tg_blk_close(struct tg_blk *b);
uint64_t tg_blk_features(const struct tg_blk *b);

/* The workloads; each returns 0 when it passed, after printing its result. */
int tg_blk_verify(struct tg_blk *b, uint64_t seed, uint32_t blocks, int use_irq);
int tg_blk_bench(struct tg_blk *b, struct tg_boot_info *bi);
int tg_blk_first_io(struct tg_blk *b);
uint64_t tg_blk_irqs_seen(void);

/* Hostile modes (hostile.c): 0 when the device behaved. Stores the
 * features it negotiated in @bi. */
int tg_hostile(const struct tg_vdev *dev, struct tg_boot_info *bi);

/* ---- PCIe hotplug (hotplug.c) --------------------------------------------- */

/* TG_MODE_HOTPLUG and TG_HOSTILE_SLOT_POWER: drive the root port's slot as
 * Linux's pciehp does. Returns 0 when every step passed (printed). */
int tg_hotplug(struct tg_boot_info *bi);
/* From tg_irq_handler: the port's hotplug MSI arrived. */
void tg_hotplug_irq(void);

/* The unit of every data transfer: one 4 KiB disk block. */
#define TG_BLOCK 4096u

#endif
