/* SPDX-License-Identifier: MIT */
/*
 * The contract between examples/kvm-host (the VMM) and its freestanding
 * test guest (examples/kvm-host/guest): guest-physical memory layout, the
 * boot-info block, and the port-I/O test device. Shared by both sides, so it
 * is plain C11 with fixed-width types only (no libc beyond <stdint.h>).
 *
 * The guest runs in 64-bit long mode at CPL 3 (CS 0x1b, SS/DS 0x23,
 * RFLAGS.IOPL = 3), on identity-mapped pages with the U/S bit set (see
 * ../shared/ENVIRONMENT.md: CPL 0 code is emulated and slow on these
 * machines). It may use port I/O and touch MMIO; it cannot halt, so it ends
 * with a write to TG_PORT_POWER_OFF.
 */
#ifndef VDEV_TG_ABI_H
#define VDEV_TG_ABI_H

#include <stdint.h>

/* ---- guest-physical layout ---------------------------------------------- */

#define TG_GDT_GPA 0x1000ull        /* GDT: null, (unused), code64 DPL3 (0x18), data DPL3 (0x20), TSS */
#define TG_IDT_GPA 0x2000ull        /* 256 gates, 16 bytes each */
#define TG_PT_GPA 0x10000ull        /* page tables (PML4 first), up to 0xf0000 */
#define TG_BOOT_INFO_GPA 0x100000ull /* struct tg_boot_info, one 4 KiB page */
#define TG_STACK_TOP 0x1f0000ull    /* initial RSP (stack grows down, 64 KiB min) */
#define TG_IMAGE_GPA 0x200000ull    /* the guest ELF is linked here (PT_LOAD p_paddr) */
#define TG_IMAGE_MAX 0x200000ull    /* at most 2 MiB of image */
#define TG_HEAP_GPA 0x400000ull     /* free RAM for rings and buffers starts here */
#define TG_MIN_RAM (16ull << 20)

#define TG_MMIO_BASE 0xd0000000ull  /* virtio-mmio device i at TG_MMIO_BASE + i * 0x1000 */
#define TG_ECAM_BASE 0xe0000000ull  /* PCI ECAM window (1 MiB per bus) */
#define TG_APIC_GPA 0xfee00000ull   /* local APIC page (mapped with U/S) */

/* Selectors (RPL 3). */
#define TG_SEL_CODE 0x1bu
#define TG_SEL_DATA 0x23u

/* The vector device interrupts arrive on (MSI data; IDT gate at this index).
 * virtio-mmio interrupts use TG_IRQ_VECTOR; a virtio-pci function's MSI-X
 * vector i (0: config, 1 + q: queue q) uses TG_IRQ_VECTOR + i; the PCIe root
 * port's hotplug MSI uses TG_IRQ_VECTOR + TG_IRQ_INDEX_HOTPLUG. The guest
 * installs gates for TG_IRQ_VECTORS vectors from TG_IRQ_VECTOR. */
#define TG_IRQ_VECTOR 0x40u
#define TG_IRQ_VECTORS 4u
#define TG_IRQ_INDEX_HOTPLUG (TG_IRQ_VECTORS - 1u)

/* ---- the test device (port I/O, 4-byte accesses) ------------------------ */

/* Write: the GPA of a NUL-terminated line (at most TG_LINE_MAX bytes). The
 * host prints it, prefixed with "guest: ". */
#define TG_PORT_PRINT 0x0f00u
/* Write: a status code (TG_STATUS_*), recorded as the guest's verdict. */
#define TG_PORT_STATUS 0x0f04u
/* Write: the host notes its CLOCK_MONOTONIC time for mark number <value>
 * (the guest's benchmark phases start and end with marks; the host computes
 * rates from its own clock, the guest's TSC is only for pacing). */
#define TG_PORT_MARK 0x0f08u
/* Write: power off; the value is the guest's exit code (0 = all passed). */
#define TG_PORT_POWER_OFF 0x0f0cu

/* Write: ask the host to hot-plug (TG_HOTPLUG_PLUG) or hot-unplug
 * (TG_HOTPLUG_UNPLUG) the disk behind the PCIe root port's slot. The host
 * acts on it from another thread, as a VMM's control plane would; the guest
 * sees the result through the port (its hotplug interrupt). */
#define TG_PORT_HOTPLUG 0x0f10u
#define TG_HOTPLUG_PLUG 1u
#define TG_HOTPLUG_UNPLUG 2u

#define TG_LINE_MAX 512u

#define TG_STATUS_PASS 0u
#define TG_STATUS_FAIL 1u
#define TG_STATUS_SKIP 2u

/* ---- boot info ---------------------------------------------------------- */

#define TG_BOOT_MAGIC 0x31475456u /* "VTG1" */
#define TG_BOOT_VERSION 1u

/* tg_boot_info.mode */
#define TG_MODE_VERIFY 1u  /* write a seeded pattern, flush, read back, compare */
#define TG_MODE_BENCH 2u   /* 4 KiB random reads at the depths given, by polling */
#define TG_MODE_IRQ 3u     /* the verify workload, completions by interrupt */
#define TG_MODE_HOSTILE 4u /* misbehave (tg_boot_info.hostile); expect errors */
#define TG_MODE_FIRST_IO 5u /* one read as early as possible, then power off */
#define TG_MODE_HOTPLUG 6u  /* PCIe hotplug: plug the disk, verify, unplug (pciehp's steps) */

/* tg_boot_info.hostile: what a TG_MODE_HOSTILE guest does (one per run) */
#define TG_HOSTILE_BAD_DESC 1u     /* descriptors pointing outside guest RAM */
#define TG_HOSTILE_QUEUE_SIZE0 2u  /* QueueNum 0, then QueueReady */
#define TG_HOSTILE_ORDER 3u        /* DRIVER_OK before FEATURES_OK, queue setup after DRIVER_OK */
#define TG_HOSTILE_LOOP 4u         /* a descriptor chain that loops */
#define TG_HOSTILE_GROW_RACE 5u    /* a chain that grows while the device takes it */
#define TG_HOSTILE_BAR_OVERLAP 6u  /* virtio-pci: BARs moved onto each other, ECAM, RAM */
#define TG_HOSTILE_SLOT_POWER 7u   /* hotplug: slot power and link toggled with the disk plugged */

/* tg_device.kind */
#define TG_DEV_VIRTIO_MMIO 1u
#define TG_DEV_PCI_ECAM 2u /* a PCI root: base/size are its ECAM window; the guest
			    * enumerates it and assigns BARs from pci_mem_* */

struct tg_device {
	uint32_t kind;
	uint32_t virtio_id;   /* VIRTIO_ID_* the host put there (informational) */
	uint64_t base;        /* GPA of the register block / ECAM window */
	uint64_t size;
	uint32_t gsi;         /* interrupt line the host wired (informational) */
	uint32_t reserved;
};

#define TG_MAX_DEVICES 8u
#define TG_MAX_DEPTHS 4u

struct tg_boot_info {
	uint32_t magic;       /* TG_BOOT_MAGIC */
	uint32_t version;     /* TG_BOOT_VERSION */
	uint32_t mode;        /* TG_MODE_* */
	uint32_t hostile;     /* TG_HOSTILE_* for TG_MODE_HOSTILE */
	uint64_t seed;        /* pattern seed */
	uint64_t ram_size;    /* bytes of guest RAM from GPA 0 */
	uint64_t heap_start;  /* free RAM [heap_start, heap_end) */
	uint64_t heap_end;
	uint64_t tsc_khz;     /* from KVM_GET_TSC_KHZ, 0 when unknown */
	uint32_t num_devices;
	uint32_t verify_blocks;   /* TG_MODE_VERIFY/IRQ: 4 KiB blocks to write and check */
	uint32_t bench_ms;        /* TG_MODE_BENCH: milliseconds per depth */
	uint32_t num_depths;      /* TG_MODE_BENCH: entries used in depths[] */
	uint32_t depths[TG_MAX_DEPTHS];
	uint64_t disk_blocks;     /* TG_MODE_BENCH: read offsets are drawn from [0, disk_blocks) 4 KiB blocks; 0 = the disk's capacity */
	struct tg_device devices[TG_MAX_DEVICES];

	/* Written by the guest, read by the host after power-off. */
	uint32_t features_lo;     /* features the guest negotiated with device 0 */
	uint32_t features_hi;
	uint64_t ops_done[TG_MAX_DEPTHS]; /* TG_MODE_BENCH: requests completed per depth (between marks 2i and 2i+1) */
	uint64_t kicks[TG_MAX_DEPTHS];    /* TG_MODE_BENCH: notifies the guest sent per depth */
	uint64_t irqs_seen;               /* interrupts the guest's handler took */

	/* Set by the host with a TG_DEV_PCI_ECAM device: the guest-physical
	 * window (mapped, uncached) the guest assigns memory BARs from. */
	uint64_t pci_mem_base;
	uint64_t pci_mem_size;
};

#endif
