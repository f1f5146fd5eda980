/* SPDX-License-Identifier: MIT */
/*
 * A PCI function's config space: the type 0 or type 1 header, BARs with
 * sizing, and the capability list, as the guest sees them through config
 * cycles.
 *
 * Layout. The 4 KiB space is one byte array, in guest (little-endian)
 * order, so config cycles, peek and poke all read and write the same bytes.
 * Beside it, for the legacy 256 bytes only, two per-byte masks: the bits the
 * guest may write, and the bits it clears by writing one (RW1C status
 * bits). A guest write of byte b over old value o gives
 * (o & ~wmask) | (b & wmask), then clears b & w1cmask. Everything else is
 * read-only to the guest, including the whole extended space (which reads
 * 0 unless the function pokes something there).
 *
 * BAR registers need no code of their own on the write path: a BAR's write
 * mask is its address bits (~(size - 1) without the flag bits), so writing
 * all ones reads back the size mask with the flags, byte and word writes
 * work as on hardware, and a 64-bit BAR's upper dword simply has a mask of
 * its own. Whether a BAR is being sized (vdev_pci_cfg_bar reports address
 * 0 then) is not in the registers: guest writes keep a sizing state per
 * BAR dword (pci_internal.h), and poke clears it for the bytes it sets.
 * I/O BARs decode all 32 address bits (none of the upper 16 read as 0);
 * the root's windows keep them where port I/O exists.
 *
 * Not locked: the owner serializes (pci.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <linux/pci_regs.h>

#include <virtio-dev/pci.h>

#include "bus/pci_internal.h"
#include "internal/util.h"

/* The legacy (PCI) part of config space: masks exist only for it. */
#define CFG_LEGACY_SIZE 256u
#define CFG_CAP_START 0x40u
#define CFG_REG_BAR0 (PCI_BASE_ADDRESS_0 / 4)

#define CFG_CMD_WRITABLE                                                                   \
	(PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_PARITY |     \
	 PCI_COMMAND_SERR | PCI_COMMAND_INTX_DISABLE)
/* The error bits of the status (and a bridge's secondary status) register. */
#define CFG_STATUS_RW1C                                                                    \
	(PCI_STATUS_PARITY | PCI_STATUS_SIG_TARGET_ABORT | PCI_STATUS_REC_TARGET_ABORT |     \
	 PCI_STATUS_REC_MASTER_ABORT | PCI_STATUS_SIG_SYSTEM_ERROR | PCI_STATUS_DETECTED_PARITY)
/* Bridge control bits a PCIe bridge implements (7..11 are PCI-only, RO 0). */
#define CFG_BRIDGE_CTL_WRITABLE                                                            \
	(PCI_BRIDGE_CTL_PARITY | PCI_BRIDGE_CTL_SERR | PCI_BRIDGE_CTL_ISA | PCI_BRIDGE_CTL_VGA | \
	 0x10u /* VGA 16-bit decode */ | PCI_BRIDGE_CTL_MASTER_ABORT | PCI_BRIDGE_CTL_BUS_RESET)

struct cfg_bar {
	uint64_t size;    /* 0: not declared (or the upper half of a 64-bit BAR) */
	uint32_t kind;    /* as declared */
	uint32_t lo_mask; /* address bits of the BAR dword */
	uint32_t hi_mask; /* address bits of the next dword (64-bit) */
	uint8_t used;     /* declared, or the upper half of a 64-bit BAR */
};

struct vdev_pci_cfg {
	uint8_t data[VDEV_PCI_CONFIG_SIZE];
	uint8_t wmask[CFG_LEGACY_SIZE];
	uint8_t w1cmask[CFG_LEGACY_SIZE];
	struct cfg_bar bars[VDEV_PCI_NUM_BARS];
	uint8_t sizing[VDEV_PCI_NUM_BARS]; /* per BAR dword (vdi_pci_sizing_write) */
	uint32_t header_type; /* 0 or 1 */
	uint32_t nbars;       /* 6 or 2 */
	uint32_t next_cap;    /* where the next capability may start */
	uint32_t last_cap;    /* offset of the last capability, 0: none */
};

static void put16(uint8_t *p, uint32_t off, uint16_t v)
{
	vdi_st_le(p + off, v, 2);
}

static void put32(uint8_t *p, uint32_t off, uint32_t v)
{
	vdi_st_le(p + off, v, 4);
}

static uint32_t get32(const uint8_t *p, uint32_t off)
{
	return (uint32_t)vdi_ld_le(p + off, 4);
}

static void init_type1(vdev_pci_cfg *c)
{
	uint8_t *d = c->data, *w = c->wmask;

	/* Primary, secondary, subordinate bus, secondary latency timer. */
	memset(&w[PCI_PRIMARY_BUS], 0xff, 4);
	/* I/O base/limit with 32-bit decoding: the low nibble says so, the
	 * upper 16 bits live at 0x30. */
	d[PCI_IO_BASE] = d[PCI_IO_LIMIT] = PCI_IO_RANGE_TYPE_32;
	w[PCI_IO_BASE] = w[PCI_IO_LIMIT] = (uint8_t)PCI_IO_RANGE_MASK;
	memset(&w[PCI_IO_BASE_UPPER16], 0xff, 4);
	put16(c->w1cmask, PCI_SEC_STATUS, CFG_STATUS_RW1C);
	/* Memory window: bits 15:4 are address bits 31:20. */
	put16(w, PCI_MEMORY_BASE, (uint16_t)PCI_MEMORY_RANGE_MASK);
	put16(w, PCI_MEMORY_LIMIT, (uint16_t)PCI_MEMORY_RANGE_MASK);
	/* Prefetchable window, 64-bit, upper halves at 0x28 / 0x2c. */
	put16(d, PCI_PREF_MEMORY_BASE, PCI_PREF_RANGE_TYPE_64);
	put16(d, PCI_PREF_MEMORY_LIMIT, PCI_PREF_RANGE_TYPE_64);
	put16(w, PCI_PREF_MEMORY_BASE, (uint16_t)PCI_PREF_RANGE_MASK);
	put16(w, PCI_PREF_MEMORY_LIMIT, (uint16_t)PCI_PREF_RANGE_MASK);
	memset(&w[PCI_PREF_BASE_UPPER32], 0xff, 8);
	put16(w, PCI_BRIDGE_CONTROL, CFG_BRIDGE_CTL_WRITABLE);
}

VDEV_EXPORT int vdev_pci_cfg_new(const struct vdev_pci_cfg_config *cfg, vdev_pci_cfg **out)
{
	struct vdev_pci_cfg_config k;
	vdev_pci_cfg *c;

	if (!cfg || !out || vdi_copy_versioned(&k, sizeof(k), cfg) < 0)
		return -EINVAL;
	if (k.header_type > PCI_HEADER_TYPE_BRIDGE || k.vendor_id == 0xffff ||
	    k.class_code > 0xffffff || k.interrupt_pin > 4 || k.multifunction > 1) {
		vdi_log(VDEV_LOG_DEBUG,
			"pci cfg: refused: header type %u, vendor 0x%04x, class 0x%x, pin %u, "
			"multifunction %u",
			k.header_type, k.vendor_id, k.class_code, k.interrupt_pin, k.multifunction);
		return -EINVAL;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->header_type = k.header_type;
	c->nbars = k.header_type == PCI_HEADER_TYPE_NORMAL ? 6 : 2;
	c->next_cap = CFG_CAP_START;

	put16(c->data, PCI_VENDOR_ID, k.vendor_id);
	put16(c->data, PCI_DEVICE_ID, k.device_id);
	put32(c->data, PCI_CLASS_REVISION, k.class_code << 8 | k.revision);
	c->data[PCI_HEADER_TYPE] = (uint8_t)(k.header_type | (k.multifunction ? 0x80 : 0));
	c->data[PCI_INTERRUPT_PIN] = k.interrupt_pin;

	put16(c->wmask, PCI_COMMAND, CFG_CMD_WRITABLE);
	put16(c->w1cmask, PCI_STATUS, CFG_STATUS_RW1C);
	c->wmask[PCI_CACHE_LINE_SIZE] = 0xff;
	c->wmask[PCI_LATENCY_TIMER] = 0xff;
	c->wmask[PCI_INTERRUPT_LINE] = 0xff;
	if (k.header_type == PCI_HEADER_TYPE_NORMAL) {
		put16(c->data, PCI_SUBSYSTEM_VENDOR_ID, k.subsystem_vendor_id);
		put16(c->data, PCI_SUBSYSTEM_ID, k.subsystem_id);
	} else {
		init_type1(c);
	}
	*out = c;
	return 0;
}

VDEV_EXPORT void vdev_pci_cfg_free(vdev_pci_cfg *c)
{
	free(c);
}

static int bar_kind_ok(uint32_t kind, uint64_t size)
{
	uint32_t type = kind & ~VDEV_PCI_BAR_PREFETCH;

	if (!vdi_is_pow2(size))
		return 0;
	switch (type) {
	case VDEV_PCI_BAR_IO:
		return !(kind & VDEV_PCI_BAR_PREFETCH) && size >= 4 && size <= 256;
	case VDEV_PCI_BAR_MEM32:
		return size >= 16 && size <= (UINT64_C(1) << 31);
	case VDEV_PCI_BAR_MEM64:
		return size >= 16 && size <= (UINT64_C(1) << 63);
	default:
		return 0;
	}
}

VDEV_EXPORT int vdev_pci_cfg_add_bar(vdev_pci_cfg *c, uint32_t bar, uint64_t size, uint32_t kind)
{
	uint32_t type, off, flags;
	struct cfg_bar *b;
	uint64_t mask;
	int is64;

	if (!c || bar >= c->nbars || !bar_kind_ok(kind, size))
		goto invalid;
	type = kind & ~VDEV_PCI_BAR_PREFETCH;
	is64 = type == VDEV_PCI_BAR_MEM64;
	if (is64 && bar + 1 >= c->nbars)
		goto invalid;
	if (c->bars[bar].used || (is64 && c->bars[bar + 1].used))
		return -EEXIST;

	mask = ~(size - 1);
	b = &c->bars[bar];
	b->used = 1;
	b->size = size;
	b->kind = kind;
	if (type == VDEV_PCI_BAR_IO) {
		flags = PCI_BASE_ADDRESS_SPACE_IO;
		b->lo_mask = (uint32_t)mask & (uint32_t)PCI_BASE_ADDRESS_IO_MASK;
	} else {
		flags = (is64 ? PCI_BASE_ADDRESS_MEM_TYPE_64 : PCI_BASE_ADDRESS_MEM_TYPE_32) |
			(kind & VDEV_PCI_BAR_PREFETCH ? PCI_BASE_ADDRESS_MEM_PREFETCH : 0);
		b->lo_mask = (uint32_t)mask & (uint32_t)PCI_BASE_ADDRESS_MEM_MASK;
	}
	off = PCI_BASE_ADDRESS_0 + 4 * bar;
	put32(c->data, off, flags);
	put32(c->wmask, off, b->lo_mask);
	if (is64) {
		b->hi_mask = (uint32_t)(mask >> 32);
		c->bars[bar + 1].used = 1;
		put32(c->data, off + 4, 0);
		put32(c->wmask, off + 4, b->hi_mask);
	}
	return 0;

invalid:
	vdi_log(VDEV_LOG_DEBUG, "pci cfg: BAR %u of 0x%llx bytes, kind 0x%x refused", bar,
		(unsigned long long)size, kind);
	return -EINVAL;
}

VDEV_EXPORT int vdev_pci_cfg_add_capability(vdev_pci_cfg *c, uint8_t id, const void *body,
					    uint32_t len, const void *write_mask,
					    uint32_t *offset)
{
	uint32_t at;

	if (!c || (len && !body) || len > CFG_LEGACY_SIZE)
		return -EINVAL;
	at = c->next_cap;
	if (2 + len > CFG_LEGACY_SIZE - at) {
		vdi_log(VDEV_LOG_DEBUG, "pci cfg: capability 0x%02x (%u bytes) does not fit at 0x%x",
			id, 2 + len, at);
		return -ENOSPC;
	}
	c->data[at] = id;
	c->data[at + 1] = 0; /* next: the end of the list */
	if (len) {
		memcpy(&c->data[at + 2], body, len);
		if (write_mask)
			memcpy(&c->wmask[at + 2], write_mask, len);
	}
	if (c->last_cap)
		c->data[c->last_cap + 1] = (uint8_t)at;
	else
		c->data[PCI_CAPABILITY_LIST] = (uint8_t)at;
	c->data[PCI_STATUS] |= PCI_STATUS_CAP_LIST;
	c->last_cap = at;
	c->next_cap = (at + 2 + len + 3) & ~3u;
	if (offset)
		*offset = at;
	return 0;
}

VDEV_EXPORT uint32_t vdev_pci_cfg_read(const vdev_pci_cfg *c, uint32_t reg)
{
	if (!c)
		return 0xffffffffu;
	if (reg >= VDEV_PCI_CONFIG_DWORDS)
		return 0;
	return get32(c->data, reg * 4);
}

VDEV_EXPORT int vdev_pci_cfg_write(vdev_pci_cfg *c, uint32_t reg, uint32_t offset,
				   const void *data, uint32_t size)
{
	const uint8_t *src = data;
	uint32_t i;

	if (!c || !data || reg >= VDEV_PCI_CONFIG_DWORDS || offset > 3 ||
	    (size != 1 && size != 2 && size != 4) || offset + size > 4) {
		vdi_log(VDEV_LOG_DEBUG, "pci cfg: write of %u bytes at reg %u + %u refused", size,
			reg, offset);
		return -EINVAL;
	}
	for (i = 0; i < size; i++) {
		uint32_t at = reg * 4 + offset + i;
		uint8_t v;

		if (at >= CFG_LEGACY_SIZE)
			break; /* the extended space is read-only to the guest */
		v = (uint8_t)((c->data[at] & ~c->wmask[at]) | (src[i] & c->wmask[at]));
		c->data[at] = (uint8_t)(v & ~(src[i] & c->w1cmask[at]));
	}
	if (reg >= CFG_REG_BAR0 && reg < CFG_REG_BAR0 + c->nbars)
		c->sizing[reg - CFG_REG_BAR0] =
			vdi_pci_sizing_write(c->sizing[reg - CFG_REG_BAR0], offset, data, size);
	return 0;
}

static int range_ok(uint32_t offset, uint32_t len)
{
	return offset <= VDEV_PCI_CONFIG_SIZE && len <= VDEV_PCI_CONFIG_SIZE - offset;
}

VDEV_EXPORT int vdev_pci_cfg_peek(const vdev_pci_cfg *c, uint32_t offset, void *buf, uint32_t len)
{
	if (!c || !buf || !range_ok(offset, len))
		return -EINVAL;
	memcpy(buf, &c->data[offset], len);
	return 0;
}

VDEV_EXPORT int vdev_pci_cfg_poke(vdev_pci_cfg *c, uint32_t offset, const void *buf, uint32_t len)
{
	uint32_t at;

	if (!c || !buf || !range_ok(offset, len))
		return -EINVAL;
	memcpy(&c->data[offset], buf, len);
	/* The function set these BAR bytes itself: not a sizing write. */
	for (at = VDI_MAX(offset, (uint32_t)PCI_BASE_ADDRESS_0);
	     at < VDI_MIN(offset + len, PCI_BASE_ADDRESS_0 + 4 * c->nbars); at++)
		c->sizing[at / 4 - CFG_REG_BAR0] &= (uint8_t)~(1u << (at % 4));
	return 0;
}

VDEV_EXPORT int vdev_pci_cfg_bar(const vdev_pci_cfg *c, uint32_t bar, uint64_t *address,
				 uint64_t *size, uint32_t *kind)
{
	const struct cfg_bar *b;
	uint32_t off;
	int is64;

	if (!c || bar >= c->nbars || !c->bars[bar].size)
		return -ENOENT;
	b = &c->bars[bar];
	off = PCI_BASE_ADDRESS_0 + 4 * bar;
	is64 = (b->kind & ~VDEV_PCI_BAR_PREFETCH) == VDEV_PCI_BAR_MEM64;
	if (address)
		*address = vdi_pci_bar_base(get32(c->data, off), is64 ? get32(c->data, off + 4) : 0,
					    b->lo_mask, b->hi_mask, c->sizing[bar],
					    is64 ? c->sizing[bar + 1] : 0);
	if (size)
		*size = b->size;
	if (kind)
		*kind = b->kind;
	return 0;
}

/* ---- bus-device ops ---- */

int vdi_pci_no_bar_read(void *opaque, const struct vdev_bus_access *a, void *data)
{
	VDI_UNUSED(opaque);
	VDI_UNUSED(a);
	VDI_UNUSED(data);
	return -EIO;
}

int vdi_pci_no_bar_write(void *opaque, const struct vdev_bus_access *a, const void *data)
{
	VDI_UNUSED(opaque);
	VDI_UNUSED(a);
	VDI_UNUSED(data);
	return -EIO;
}

static uint32_t cfg_reg_read(void *opaque, uint32_t reg)
{
	return vdev_pci_cfg_read(opaque, reg);
}

static int cfg_reg_write(void *opaque, uint32_t reg, uint32_t offset, const void *data,
			 uint32_t size)
{
	return vdev_pci_cfg_write(opaque, reg, offset, data, size);
}

static const struct vdev_bus_device_ops cfg_bus_ops = {
	.struct_size = sizeof(struct vdev_bus_device_ops),
	.read = vdi_pci_no_bar_read,
	.write = vdi_pci_no_bar_write,
	.config_register_read = cfg_reg_read,
	.config_register_write = cfg_reg_write,
};

VDEV_EXPORT const struct vdev_bus_device_ops *vdev_pci_cfg_bus_ops(void)
{
	return &cfg_bus_ops;
}
