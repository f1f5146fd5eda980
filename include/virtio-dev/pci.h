/* SPDX-License-Identifier: MIT */
/*
 * PCI: a function's config space (vdev_pci_cfg), a PCI root that routes
 * config cycles from port I/O 0xCF8/0xCFC and from an ECAM window to the
 * functions and places their BARs on the MMIO and port I/O buses
 * (vdev_pci_root), the virtual config MMIO window (vdev_pci_vcfg, the C form
 * of crosvm's PciVirtualConfigMmio), MSI delivery (struct vdev_pci_msi_ops),
 * and the driver side's enumeration (freestanding).
 *
 * A PCI function is a bus device (bus.h) whose ops fill the PCI half:
 * config_register_read/write, and optionally the virtual config registers
 * and is_bridge. The library's functions are virtio-pci (virtio-pci.h) and
 * the PCIe root port (pcie.h); a VMM's own function can be built on
 * vdev_pci_cfg.
 *
 * Thread-safety: a vdev_pci_cfg is not locked (its owner serializes). A
 * vdev_pci_root serializes config cycles and BAR moves under one lock; its
 * functions may be called from any thread. vdev_pci_vcfg likewise.
 */
#ifndef VIRTIO_DEV_PCI_H
#define VIRTIO_DEV_PCI_H

#include <stdint.h>

#include "bus.h"
#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A function's address on segment 0: bus 0..255, device 0..31, function 0..7. */
#define VDEV_PCI_ADDR(bus, dev, fn)                                                      \
	((((uint32_t)(bus) & 0xffu) << 8) | (((uint32_t)(dev) & 0x1fu) << 3) |           \
	 ((uint32_t)(fn) & 0x7u))
#define VDEV_PCI_ADDR_BUS(a) (((uint32_t)(a) >> 8) & 0xffu)
#define VDEV_PCI_ADDR_DEV(a) (((uint32_t)(a) >> 3) & 0x1fu)
#define VDEV_PCI_ADDR_FN(a) ((uint32_t)(a) & 0x7u)
#define VDEV_PCI_ADDR_NONE 0xffffffffu

/* Config space: 4 KiB (PCIe), 1024 dwords; the first 256 bytes are legacy PCI. */
#define VDEV_PCI_CONFIG_SIZE 4096u
#define VDEV_PCI_CONFIG_DWORDS 1024u
#define VDEV_PCI_NUM_BARS 6u

/* ECAM: 1 MiB per bus, 4 KiB per function. */
#define VDEV_PCI_ECAM_BUS_SIZE (1u << 20)

/* Virtual config MMIO: 8 KiB per function (two 4 KiB pages). */
#define VDEV_PCI_VCFG_FN_SIZE (1u << 13)
#define VDEV_PCI_VCFG_BUS_SIZE (1u << 21)
/* Offset of dword @reg (0..1023) in @page (0 trapped, 1 shared) of a function. */
#define VDEV_PCI_VCFG_OFFSET(bus, dev, fn, page, reg)                                    \
	((((uint64_t)(bus) & 0xffu) << 21) | (((uint64_t)(dev) & 0x1fu) << 16) |         \
	 (((uint64_t)(fn) & 0x7u) << 13) | (((uint64_t)(page) & 1u) << 12) |             \
	 (((uint64_t)(reg) & 0x3ffu) << 2))

/* BAR kinds (vdev_pci_cfg_add_bar). */
#define VDEV_PCI_BAR_MEM32 0x0u
#define VDEV_PCI_BAR_IO 0x1u
#define VDEV_PCI_BAR_MEM64 0x2u
/* Flag, memory BARs only. */
#define VDEV_PCI_BAR_PREFETCH 0x4u

/* ---- MSI delivery ------------------------------------------------------ */

/*
 * How a PCI function (virtio-pci with MSI-X, the root port with MSI)
 * interrupts the guest. Called from whichever thread raises the interrupt;
 * must not call back into the function that raised it.
 */
struct vdev_pci_msi_ops {
	uint32_t struct_size;
	uint32_t reserved;
	/* Deliver one message: what the guest programmed into vector @vector
	 * (KVM_SIGNAL_MSI, or a write to the irqfd of a GSI routed to it).
	 * Return 0 or a negative errno. Required for MSI/MSI-X. */
	int (*signal)(void *opaque, uint32_t vector, uint64_t address, uint32_t data);
	/* Optional: vector @vector's message changed or it was (un)masked, or
	 * MSI(-X) was enabled or disabled (@masked 1 also when disabled). Lets
	 * a VMM keep GSI routes for irqfd up to date. */
	void (*update)(void *opaque, uint32_t vector, uint64_t address, uint32_t data,
		       uint32_t masked);
	/* Optional: the INTx pin's level (1 asserted, 0 deasserted); used
	 * while MSI(-X) is off. virtio-pci repeats an assert for each new
	 * interrupt while the line is up (for a resampling irqfd); the root
	 * port reports level changes only. A deassert comes once. */
	int (*set_intx)(void *opaque, uint32_t level);
};

#define VDEV_PCI_MSI_OPS_INIT VDEV_STRUCT_INIT(struct vdev_pci_msi_ops)

/* ---- a function's config space ----------------------------------------- */

typedef struct vdev_pci_cfg vdev_pci_cfg;

struct vdev_pci_cfg_config {
	uint32_t struct_size;
	uint32_t header_type; /* 0 (endpoint) or 1 (PCI-to-PCI bridge) */
	uint16_t vendor_id;   /* must not be 0xffff */
	uint16_t device_id;
	uint16_t subsystem_vendor_id; /* type 0 only */
	uint16_t subsystem_id;        /* type 0 only */
	uint32_t class_code;          /* class << 16 | subclass << 8 | prog-if */
	uint8_t revision;
	uint8_t interrupt_pin; /* 0 none, 1..4 INTA..INTD */
	uint8_t multifunction; /* 1 sets bit 7 of the header type */
	uint8_t reserved;
};

#define VDEV_PCI_CFG_CONFIG_INIT VDEV_STRUCT_INIT(struct vdev_pci_cfg_config)

/**
 * vdev_pci_cfg_new() - a config space with a type 0 or type 1 header: IDs,
 * command (I/O, memory, bus master, parity error response, SERR#, INTx
 * disable writable), cache line size and latency timer (writable), status (the
 * capability-list bit follows the capabilities; error bits RW1C), interrupt
 * line (writable) and pin, BARs, and for type 1 the bus numbers and the
 * I/O, memory and prefetchable windows (writable), plus the bridge control.
 * Returns 0, -EINVAL or -ENOMEM. Since 0.2.
 */
VDEV_EXPORT int vdev_pci_cfg_new(const struct vdev_pci_cfg_config *cfg, vdev_pci_cfg **out);

/** vdev_pci_cfg_free() - accepts NULL. Since 0.2. */
VDEV_EXPORT void vdev_pci_cfg_free(vdev_pci_cfg *c);

/**
 * vdev_pci_cfg_add_bar() - declare BAR @bar (0..5 for type 0, 0..1 for type
 * 1) of @size bytes (a power of two; memory at least 16, I/O 4..256) and
 * @kind (VDEV_PCI_BAR_MEM32, _IO or _MEM64, optionally | _PREFETCH for
 * memory). A 64-bit BAR also takes @bar + 1. The address starts at 0
 * (unassigned). Reads of the BAR return the address with the low flag bits;
 * writing all ones makes it read back the size mask (sizing).
 * While the guest sizes the BAR it does not decode (vdev_pci_cfg_bar
 * reports address 0; the root takes it off the bus): a BAR dword is being
 * sized once the guest's last write to each of its bytes wrote 0xff (all
 * ones, in one write or several), until a guest write puts any other value
 * into one of its bytes or vdev_pci_cfg_poke sets it; a 64-bit BAR is
 * being sized while either dword is. Any other value is an address, all
 * address bits set included (a 2 GiB 32-bit BAR at 0x80000000, a 64-bit
 * BAR in the last slot below a 4 GiB boundary); only an upper dword of all
 * ones (the top 4 GiB of the 64-bit space) cannot be told from sizing.
 * Returns 0, -EINVAL or -EEXIST (already used). Since 0.2.
 */
VDEV_EXPORT int vdev_pci_cfg_add_bar(vdev_pci_cfg *c, uint32_t bar, uint64_t size,
				     uint32_t kind);

/**
 * vdev_pci_cfg_add_capability() - append a capability to the list.
 * @id: capability ID (PCI_CAP_ID_*).
 * @body: the bytes after the 2-byte header (ID, next), @len of them; the
 *        capability occupies 2 + @len bytes, placed dword-aligned in
 *        0x40..0xff.
 * @write_mask: NULL (read-only), or @len bytes: the bits the guest may
 *        write in each byte of the body.
 * @offset: receives the capability's offset in config space.
 * Returns 0, -EINVAL or -ENOSPC (no room below 0x100). Since 0.2.
 */
VDEV_EXPORT int vdev_pci_cfg_add_capability(vdev_pci_cfg *c, uint8_t id, const void *body,
					    uint32_t len, const void *write_mask,
					    uint32_t *offset);

/**
 * vdev_pci_cfg_read() - dword @reg (0..1023); 0 past what exists (the
 * extended space reads 0, which ends its capability list). Since 0.2.
 */
VDEV_EXPORT uint32_t vdev_pci_cfg_read(const vdev_pci_cfg *c, uint32_t reg);

/**
 * vdev_pci_cfg_write() - a guest write (the config_register_write
 * contract): write masks, RW1C status bits and BAR sizing apply. Returns 0
 * or -EINVAL (bad @reg, @offset, @size). Since 0.2.
 */
VDEV_EXPORT int vdev_pci_cfg_write(vdev_pci_cfg *c, uint32_t reg, uint32_t offset,
				   const void *data, uint32_t size);

/**
 * vdev_pci_cfg_peek() / vdev_pci_cfg_poke() - the function's own access to
 * its config space at byte @offset (@len bytes, within 4 KiB), ignoring the
 * write masks: for registers the device changes itself (status, capability
 * state). Returns 0 or -EINVAL. Since 0.2.
 */
VDEV_EXPORT int vdev_pci_cfg_peek(const vdev_pci_cfg *c, uint32_t offset, void *buf,
				  uint32_t len);
VDEV_EXPORT int vdev_pci_cfg_poke(vdev_pci_cfg *c, uint32_t offset, const void *buf,
				  uint32_t len);

/**
 * vdev_pci_cfg_bar() - BAR @bar as programmed now: its address (0 when
 * unassigned or being sized), size and kind flags. Returns 0, or -ENOENT
 * (no such BAR, or the upper half of a 64-bit one). Since 0.2.
 */
VDEV_EXPORT int vdev_pci_cfg_bar(const vdev_pci_cfg *c, uint32_t bar, uint64_t *address,
				 uint64_t *size, uint32_t *kind);

/**
 * vdev_pci_cfg_bus_ops() - bus-device ops serving exactly this config space
 * (opaque = the vdev_pci_cfg): config_register_read/write only; read and
 * write of BAR space fail with -EIO. For plain functions and tests.
 * Since 0.2.
 */
VDEV_EXPORT const struct vdev_bus_device_ops *vdev_pci_cfg_bus_ops(void);

/* ---- the PCI root -------------------------------------------------------- */

typedef struct vdev_pci_root vdev_pci_root;

/* Where a BAR's range went (struct vdev_pci_root_ops.bar_moved). */
struct vdev_pci_bar_move {
	uint32_t struct_size;
	uint32_t addr;     /* the function, VDEV_PCI_ADDR */
	uint32_t bar;      /* 0..5 */
	uint32_t kind;     /* VDEV_PCI_BAR_MEM32 / _MEM64 / _IO */
	uint64_t old_base; /* 0: was not on the bus */
	uint64_t new_base; /* 0: no longer on the bus */
	uint64_t size;
};

struct vdev_pci_root_ops {
	uint32_t struct_size;
	uint32_t reserved;
	/* A BAR's range moved on the bus (the guest changed the BAR or the
	 * command register's decode bits, a preset BAR was placed at add, or
	 * the function left): move the ioeventfds in it. @move->kind has no
	 * prefetch flag. Called after the bus change, with the root's lock
	 * held, from the thread doing the config cycle or vdev_pci_root_add /
	 * _remove / _free: it must not call vdev_pci_root_* other than _find
	 * (those return -EDEADLK; vdev_pci_root_free returns without freeing).
	 * May be NULL. */
	void (*bar_moved)(void *opaque, const struct vdev_pci_bar_move *move);
};

#define VDEV_PCI_ROOT_OPS_INIT VDEV_STRUCT_INIT(struct vdev_pci_root_ops)

struct vdev_pci_root_config {
	uint32_t struct_size;
	uint32_t num_buses; /* 1..256 (ECAM window = num_buses MiB) */
	vdev_bus *mmio_bus; /* borrowed, required: memory BARs are placed here */
	vdev_bus *pio_bus;  /* borrowed, may be NULL: I/O BARs are placed here */
	/* Windows BARs must lie in (size 0: none). 32-bit memory BARs go in
	 * mmio32; 64-bit ones in mmio32 or mmio64; I/O BARs in io. */
	uint64_t mmio32_base, mmio32_size;
	uint64_t mmio64_base, mmio64_size;
	uint64_t io_base, io_size;
	const struct vdev_pci_root_ops *ops; /* copied at _new, may be NULL */
	void *opaque;
};

#define VDEV_PCI_ROOT_CONFIG_INIT VDEV_STRUCT_INIT(struct vdev_pci_root_config)

/**
 * vdev_pci_root_new() - an empty PCI root (host bridge, segment 0). The VMM
 * inserts it on its buses itself: vdev_pci_root_pio_ops() at 0xCF8 (8
 * bytes) on the port I/O bus, vdev_pci_root_ecam_ops() at its ECAM base
 * (num_buses * VDEV_PCI_ECAM_BUS_SIZE bytes) on the MMIO bus, both with
 * opaque = the root. Returns 0, -EINVAL or -ENOMEM. Since 0.2.
 */
VDEV_EXPORT int vdev_pci_root_new(const struct vdev_pci_root_config *cfg, vdev_pci_root **out);

/**
 * vdev_pci_root_free() - remove every function (as vdev_pci_root_remove),
 * then free the root. The VMM removes the root's own ranges from its buses
 * first. Accepts NULL. Since 0.2.
 */
VDEV_EXPORT void vdev_pci_root_free(vdev_pci_root *root);

/**
 * vdev_pci_root_add() - put a function at @addr.
 * @ops: copied; read, write, config_register_read and config_register_write
 *       are required. destroy, if set, runs when the function leaves the
 *       root (vdev_pci_root_remove / _free), not when a BAR leaves a bus.
 * @opaque: the function; also the opaque of its BAR ranges on the buses.
 *
 * The root sizes the function's BARs (decode off meanwhile, every register
 * restored) and places those that are already assigned and decoding. A
 * function on bus N > 0 is reached only through a bridge whose is_bridge
 * reports N (and, for a library root port, only while its slot's link is
 * up). Returns 0; -EINVAL; -EEXIST (@addr taken); -EBUSY (a preset BAR
 * overlaps or lies outside the windows); -ENOMEM; or the function's own
 * error when it refuses a write while its BARs are sized. Since 0.2.
 */
VDEV_EXPORT int vdev_pci_root_add(vdev_pci_root *root, uint32_t addr,
				  const struct vdev_bus_device_ops *ops, void *opaque);

/**
 * vdev_pci_root_remove() - take the function at @addr off the root and its
 * BAR ranges off the buses (after accesses running in them return; bar_moved
 * reports each), then run its destroy. Not from the function's own
 * callbacks. Returns 0, -EINVAL, -ENOENT, or -EDEADLK when called from a
 * callback the root runs under its lock. Since 0.2.
 */
VDEV_EXPORT int vdev_pci_root_remove(vdev_pci_root *root, uint32_t addr);

/**
 * vdev_pci_root_config_read() / vdev_pci_root_config_write() - one config
 * cycle to @addr: dword @reg (0..1023), @size bytes at byte @offset of it.
 * This is what the 0xCF8/0xCFC and ECAM paths call; a VMM with its own config
 * mechanism may call it too. A read of an absent function gives all ones
 * (and returns -ENOENT); a write to one is dropped (-ENOENT). The bus ops
 * below return 0 for those, as hardware does. A config cycle waits at most
 * 2 s for the root's lock (-ETIMEDOUT, reads all ones): that bounds a BAR
 * callback doing a config cycle while another thread moves its BAR. A
 * write that would move a BAR onto another range or outside the windows is
 * refused as a whole (-EBUSY; the register keeps its value). A BAR
 * written all ones (sizing) leaves the bus until it gets an address again.
 * Since 0.2.
 */
VDEV_EXPORT int vdev_pci_root_config_read(vdev_pci_root *root, uint32_t addr, uint32_t reg,
					  uint32_t offset, uint32_t size, void *data);
VDEV_EXPORT int vdev_pci_root_config_write(vdev_pci_root *root, uint32_t addr, uint32_t reg,
					   uint32_t offset, uint32_t size, const void *data);

/**
 * vdev_pci_root_find() - the opaque of the function at @addr (borrowed), or
 * NULL. Since 0.2.
 */
VDEV_EXPORT void *vdev_pci_root_find(vdev_pci_root *root, uint32_t addr);

/**
 * vdev_pci_root_pio_ops() - the CF8/CFC mechanism (insert 8 bytes at 0xCF8
 * on the port I/O bus, opaque = the root): 0xCF8 takes 4-byte accesses
 * (enable bit 31, bus, device, function, register; bits 27:24 reach the
 * extended space); 0xCFC..0xCFF take 1, 2 or 4 bytes within the dword.
 * Since 0.2.
 */
VDEV_EXPORT const struct vdev_bus_device_ops *vdev_pci_root_pio_ops(void);

/**
 * vdev_pci_root_ecam_ops() - the ECAM window (offset = bus << 20 | device <<
 * 15 | function << 12 | byte; 1, 2 or 4-byte accesses that do not cross a
 * dword). Since 0.2.
 */
VDEV_EXPORT const struct vdev_bus_device_ops *vdev_pci_root_ecam_ops(void);

/* ---- virtual config MMIO ------------------------------------------------- */

typedef struct vdev_pci_vcfg vdev_pci_vcfg;

struct vdev_pci_vcfg_config {
	uint32_t struct_size;
	uint32_t num_buses;  /* 1..256: the window is num_buses * 2 MiB */
	vdev_pci_root *root; /* borrowed, required */
};

#define VDEV_PCI_VCFG_CONFIG_INIT VDEV_STRUCT_INIT(struct vdev_pci_vcfg_config)

/**
 * vdev_pci_vcfg_new() - the virtual config window. Offsets as in
 * VDEV_PCI_VCFG_OFFSET: page 0 is trapped and served by the function's
 * virtual_config_register_read/write (4-byte aligned accesses only; absent
 * functions or NULL hooks read all ones and drop writes); page 1 is a 4 KiB
 * shared page per function (vdev_pci_vcfg_shared_page), which the VMM maps
 * into the guest; accesses that still reach the bus there are served from
 * the same memory (before the page exists they read all ones and writes
 * are dropped). Insert it with vdev_pci_vcfg_bus_ops(), opaque = the
 * vcfg. Returns 0, -EINVAL or -ENOMEM. Since 0.2.
 */
VDEV_EXPORT int vdev_pci_vcfg_new(const struct vdev_pci_vcfg_config *cfg, vdev_pci_vcfg **out);

/** vdev_pci_vcfg_free() - frees the shared pages too. Accepts NULL. Since 0.2. */
VDEV_EXPORT void vdev_pci_vcfg_free(vdev_pci_vcfg *v);

/** vdev_pci_vcfg_bus_ops() - see vdev_pci_vcfg_new. Since 0.2. */
VDEV_EXPORT const struct vdev_bus_device_ops *vdev_pci_vcfg_bus_ops(void);

/**
 * vdev_pci_vcfg_shared_page() - the shared page of function @addr: a
 * page-aligned, zero-filled 4 KiB host mapping (created on the first call,
 * owned by the vcfg, suitable for KVM_SET_USER_MEMORY_REGION at window base
 * + VDEV_PCI_VCFG_OFFSET(bus, dev, fn, 1, 0)). Returns 0, -EINVAL (address
 * beyond num_buses) or -ENOMEM. Since 0.2.
 */
VDEV_EXPORT int vdev_pci_vcfg_shared_page(vdev_pci_vcfg *v, uint32_t addr, void **host);

/* ---- driver side: enumeration (freestanding) ------------------------------ */

/*
 * How the driver side reaches config space and BARs. cfg_read/cfg_write
 * take a function address, a byte offset (0..4095) and a width (1, 2, 4);
 * mem_read/mem_write a guest-physical address and a width (1, 2, 4, 8);
 * io_read/io_write a port (may be NULL when no I/O BAR is used).
 */
struct vdev_drv_pci_io_ops {
	uint32_t struct_size;
	uint32_t (*cfg_read)(void *ctx, uint32_t addr, uint32_t offset, uint32_t width);
	void (*cfg_write)(void *ctx, uint32_t addr, uint32_t offset, uint32_t width,
			  uint32_t value);
	uint64_t (*mem_read)(void *ctx, uint64_t gpa, uint32_t width);
	void (*mem_write)(void *ctx, uint64_t gpa, uint32_t width, uint64_t value);
	uint32_t (*io_read)(void *ctx, uint32_t port, uint32_t width);
	void (*io_write)(void *ctx, uint32_t port, uint32_t width, uint32_t value);
};

#define VDEV_DRV_PCI_IO_OPS_INIT VDEV_STRUCT_INIT(struct vdev_drv_pci_io_ops)

/* One function found by vdev_drv_pci_enumerate. */
struct vdev_drv_pci_function {
	uint32_t addr;
	uint16_t vendor_id;
	uint16_t device_id;
	uint32_t class_code; /* class << 16 | subclass << 8 | prog-if */
	uint8_t header_type; /* without the multifunction bit */
	uint8_t revision;
	uint8_t secondary_bus; /* type 1 only */
	uint8_t subordinate_bus; /* type 1 only */
};

/**
 * vdev_drv_pci_enumerate() - depth-first scan from bus 0: every device
 * number, functions 1..7 only when function 0 is multi-function, and the
 * secondary bus of every bridge (as programmed; bus numbers are not
 * reassigned, and a bus is not scanned twice). Fills up to @max entries of
 * @out and returns the number of functions found (which may exceed @max).
 * Since 0.2.
 */
VDEV_EXPORT int vdev_drv_pci_enumerate(const struct vdev_drv_pci_io_ops *io, void *ctx,
				       struct vdev_drv_pci_function *out, uint32_t max);

/**
 * vdev_drv_pci_find_capability() - walk the capability list of @addr from
 * @start (0: from the header's pointer; else the offset of a capability to
 * continue after) for @cap_id. Loops and pointers into the header are
 * detected (at most 48 capabilities). Returns the offset, -ENOENT, or
 * -ELOOP / -EBADMSG for a malformed list. Since 0.2.
 */
VDEV_EXPORT int vdev_drv_pci_find_capability(const struct vdev_drv_pci_io_ops *io, void *ctx,
					     uint32_t addr, uint8_t cap_id, uint32_t start);

/* A window vdev_drv_pci_assign_bars allocates from (bump allocation). */
struct vdev_drv_pci_window {
	uint64_t base;
	uint64_t size;
	uint64_t next; /* set to base before the first call */
};

/**
 * vdev_drv_pci_assign_bars() - what firmware does for @addr: size every BAR
 * (decode off meanwhile), give each an aligned address from @mem (memory
 * BARs; 64-bit ones too) or @io (I/O BARs; may be NULL), then enable memory
 * decode and bus mastering, and I/O decode if an I/O BAR got an address.
 * Returns 0, -ENOSPC (a window ran out), -EIO (the function refused an
 * address) or -EINVAL (also: no function at @addr). After -ENOSPC or -EIO
 * decode stays off; on -EINVAL the command register is untouched. An I/O BAR is left as it was when
 * @io_win is NULL. Since 0.2.
 */
VDEV_EXPORT int vdev_drv_pci_assign_bars(const struct vdev_drv_pci_io_ops *io, void *ctx,
					 uint32_t addr, struct vdev_drv_pci_window *mem,
					 struct vdev_drv_pci_window *io_win);

/**
 * vdev_drv_pci_bar_address() - BAR @bar of @addr as programmed (0 when
 * unassigned; 64-bit BARs read whole). Returns the address or 0. Since 0.2.
 */
VDEV_EXPORT uint64_t vdev_drv_pci_bar_address(const struct vdev_drv_pci_io_ops *io, void *ctx,
					      uint32_t addr, uint32_t bar);

#ifdef __cplusplus
}
#endif

#endif
