/* SPDX-License-Identifier: MIT */
/*
 * Shared between the driver side's PCI enumeration (pci_drv.c) and its
 * virtio-pci transport (vpci_drv.c). Freestanding.
 */
#ifndef VDI_PCI_DRV_INTERNAL_H
#define VDI_PCI_DRV_INTERNAL_H

#include <stdint.h>

#include <virtio-dev/pci.h>

/* Linux's PCI_FIND_CAP_TTL: more capabilities than fit in 192 bytes is a loop. */
#define VDI_PCI_CAP_TTL 48u

/* A BAR as found by sizing. */
struct vdi_pci_bar {
	uint64_t address; /* as programmed (flag bits cleared) */
	uint64_t size;    /* 0: not implemented */
	uint32_t kind;    /* VDEV_PCI_BAR_MEM32 / _IO / _MEM64, | _PREFETCH */
	uint32_t regs;    /* registers it takes: 1, or 2 for a 64-bit BAR */
};

/* Copy and check the caller's io ops (cfg_read and cfg_write required).
 * Returns 0 or -EINVAL. */
int vdi_drv_pci_io_copy(struct vdev_drv_pci_io_ops *dst, const struct vdev_drv_pci_io_ops *src);

/* Config reads of @width bytes, masked to that width. */
uint32_t vdi_drv_pci_cfg_rd(const struct vdev_drv_pci_io_ops *o, void *ctx, uint32_t addr,
			    uint32_t offset, uint32_t width);

/* BAR registers the header type of @addr has: 6 (type 0), 2 (type 1), else 0. */
uint32_t vdi_drv_pci_num_bars(const struct vdev_drv_pci_io_ops *o, void *ctx, uint32_t addr);

/*
 * Size BARs 0..@nbars-1 of @addr into @bars (each register written all ones,
 * read back and restored). The caller turns decode off around it. A 64-bit
 * BAR fills bars[i] and leaves bars[i + 1] empty. Returns 0, or -EIO for a
 * 64-bit BAR in the last register.
 */
int vdi_drv_pci_size_bars(const struct vdev_drv_pci_io_ops *o, void *ctx, uint32_t addr,
			  uint32_t nbars, struct vdi_pci_bar *bars);

/* vdev_drv_pci_find_capability over checked ops. */
int vdi_drv_pci_find_cap(const struct vdev_drv_pci_io_ops *o, void *ctx, uint32_t addr,
			 uint8_t cap_id, uint32_t start);

#endif
