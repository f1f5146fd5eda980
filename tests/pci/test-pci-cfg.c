/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for vdev_pci_cfg: type 0 and type 1 header fields and their
 * write masks, RW1C status bits, BAR sizing (32/64-bit memory, I/O,
 * prefetchable, the upper half of 64-bit BARs, byte and word writes; being
 * sized decided by what was written, so top addresses decode), the
 * capability chain and its write masks, the extended space, and refusal of
 * bad arguments.
 */
#include <check.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <linux/pci_regs.h>

#include "virtio-dev/pci.h"

static vdev_pci_cfg *new_cfg(uint32_t header_type)
{
	struct vdev_pci_cfg_config k = VDEV_PCI_CFG_CONFIG_INIT;
	vdev_pci_cfg *c = NULL;

	k.header_type = header_type;
	k.vendor_id = 0x1af4;
	k.device_id = 0x1042;
	k.subsystem_vendor_id = 0x1234;
	k.subsystem_id = 0x5678;
	k.class_code = 0x010000;
	k.revision = 1;
	k.interrupt_pin = 1;
	ck_assert_int_eq(vdev_pci_cfg_new(&k, &c), 0);
	ck_assert_ptr_nonnull(c);
	return c;
}

/* Guest writes of @size bytes at config byte @at (within one dword). */
static int wr(vdev_pci_cfg *c, uint32_t at, uint32_t size, uint32_t v)
{
	uint8_t b[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };

	return vdev_pci_cfg_write(c, at / 4, at % 4, b, size);
}

static uint32_t rd(vdev_pci_cfg *c, uint32_t at, uint32_t size)
{
	uint32_t v = vdev_pci_cfg_read(c, at / 4) >> (8 * (at % 4));

	return size == 4 ? v : v & ((1u << (8 * size)) - 1);
}

/* Writes @v, expects @expect to read back. */
static void wr_rd(vdev_pci_cfg *c, uint32_t at, uint32_t size, uint32_t v, uint32_t expect)
{
	ck_assert_int_eq(wr(c, at, size, v), 0);
	ck_assert_uint_eq(rd(c, at, size), expect);
}

START_TEST(test_type0_header)
{
	vdev_pci_cfg *c = new_cfg(0);

	ck_assert_uint_eq(rd(c, PCI_VENDOR_ID, 2), 0x1af4);
	ck_assert_uint_eq(rd(c, PCI_DEVICE_ID, 2), 0x1042);
	ck_assert_uint_eq(vdev_pci_cfg_read(c, PCI_CLASS_REVISION / 4), 0x01000001u);
	ck_assert_uint_eq(rd(c, PCI_HEADER_TYPE, 1), 0);
	ck_assert_uint_eq(rd(c, PCI_SUBSYSTEM_VENDOR_ID, 2), 0x1234);
	ck_assert_uint_eq(rd(c, PCI_SUBSYSTEM_ID, 2), 0x5678);
	ck_assert_uint_eq(rd(c, PCI_INTERRUPT_PIN, 1), 1);
	ck_assert_uint_eq(rd(c, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST, 0);
	ck_assert_uint_eq(rd(c, PCI_CAPABILITY_LIST, 1), 0);
	for (uint32_t b = 0; b < 6; b++)
		ck_assert_uint_eq(vdev_pci_cfg_read(c, PCI_BASE_ADDRESS_0 / 4 + b), 0);

	/* Read-only: IDs, class, header type, BIST, subsystem, pin, ROM. */
	ck_assert_int_eq(wr(c, PCI_VENDOR_ID, 4, 0xffffffff), 0);
	ck_assert_uint_eq(vdev_pci_cfg_read(c, 0), 0x10421af4u);
	ck_assert_int_eq(wr(c, PCI_CLASS_REVISION, 4, 0), 0);
	ck_assert_uint_eq(vdev_pci_cfg_read(c, PCI_CLASS_REVISION / 4), 0x01000001u);
	wr_rd(c, PCI_HEADER_TYPE, 2, 0xffff, 0);
	ck_assert_int_eq(wr(c, PCI_SUBSYSTEM_VENDOR_ID, 4, 0), 0);
	ck_assert_uint_eq(rd(c, PCI_SUBSYSTEM_ID, 2), 0x5678);
	wr_rd(c, PCI_ROM_ADDRESS, 4, 0xffffffff, 0);
	wr_rd(c, PCI_INTERRUPT_PIN, 1, 3, 1);
	wr_rd(c, PCI_CAPABILITY_LIST, 1, 0x40, 0);

	/* Writable: interrupt line, cache line size, latency timer. */
	ck_assert_int_eq(wr(c, PCI_INTERRUPT_LINE, 1, 0x0b), 0);
	ck_assert_uint_eq(rd(c, PCI_INTERRUPT_LINE, 2), 0x010b);
	wr_rd(c, PCI_CACHE_LINE_SIZE, 2, 0x4010, 0x4010);
	vdev_pci_cfg_free(c);
}
END_TEST

START_TEST(test_multifunction_and_type1_ids)
{
	struct vdev_pci_cfg_config k = VDEV_PCI_CFG_CONFIG_INIT;
	vdev_pci_cfg *c;

	k.header_type = 1;
	k.vendor_id = 0x1b36;
	k.device_id = 0x000c;
	k.class_code = 0x060400;
	k.subsystem_vendor_id = 0xaaaa; /* type 0 only: ignored */
	k.multifunction = 1;
	ck_assert_int_eq(vdev_pci_cfg_new(&k, &c), 0);
	ck_assert_uint_eq(rd(c, PCI_HEADER_TYPE, 1), 0x81);
	ck_assert_uint_eq(rd(c, PCI_CLASS_DEVICE, 2), 0x0604);
	ck_assert_uint_eq(rd(c, PCI_INTERRUPT_PIN, 1), 0);
	/* 0x2c is the prefetchable limit's upper half in type 1, not an ID. */
	ck_assert_uint_eq(rd(c, PCI_PREF_LIMIT_UPPER32, 4), 0);
	vdev_pci_cfg_free(c);
}
END_TEST

START_TEST(test_command_and_status)
{
	vdev_pci_cfg *c = new_cfg(0);
	uint16_t st;

	ck_assert_int_eq(wr(c, PCI_COMMAND, 2, 0xffff), 0);
	ck_assert_uint_eq(rd(c, PCI_COMMAND, 2),
			  PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER |
				  PCI_COMMAND_PARITY | PCI_COMMAND_SERR | PCI_COMMAND_INTX_DISABLE);
	ck_assert_int_eq(wr(c, PCI_COMMAND, 1, 0), 0);
	ck_assert_uint_eq(rd(c, PCI_COMMAND, 2), PCI_COMMAND_SERR | PCI_COMMAND_INTX_DISABLE);
	ck_assert_int_eq(wr(c, PCI_COMMAND + 1, 1, 0), 0);
	ck_assert_uint_eq(rd(c, PCI_COMMAND, 2), 0);

	/* The device sets status bits itself; the guest clears error bits by
	 * writing ones and cannot set anything. */
	st = PCI_STATUS_INTERRUPT | PCI_STATUS_PARITY | PCI_STATUS_REC_MASTER_ABORT |
	     PCI_STATUS_DETECTED_PARITY;
	ck_assert_int_eq(vdev_pci_cfg_poke(c, PCI_STATUS, &st, 2), 0);
	ck_assert_int_eq(wr(c, PCI_STATUS, 2, PCI_STATUS_REC_MASTER_ABORT), 0);
	ck_assert_uint_eq(rd(c, PCI_STATUS, 2),
			  PCI_STATUS_INTERRUPT | PCI_STATUS_PARITY | PCI_STATUS_DETECTED_PARITY);
	/* Writing zeros clears nothing; ones to RO bits change nothing. */
	ck_assert_int_eq(wr(c, PCI_STATUS, 2, 0), 0);
	ck_assert_uint_eq(rd(c, PCI_STATUS, 2),
			  PCI_STATUS_INTERRUPT | PCI_STATUS_PARITY | PCI_STATUS_DETECTED_PARITY);
	/* A dword write at 0x04 writes the command and clears status bits. */
	ck_assert_int_eq(wr(c, PCI_COMMAND, 4, 0xffff0000u | PCI_COMMAND_MEMORY), 0);
	ck_assert_uint_eq(rd(c, PCI_STATUS, 2), PCI_STATUS_INTERRUPT);
	ck_assert_uint_eq(rd(c, PCI_COMMAND, 2), PCI_COMMAND_MEMORY);
	vdev_pci_cfg_free(c);
}
END_TEST

START_TEST(test_type1_header)
{
	vdev_pci_cfg *c = new_cfg(1);
	uint16_t st;

	ck_assert_uint_eq(rd(c, PCI_HEADER_TYPE, 1), 1);
	/* Bus numbers and secondary latency timer. */
	wr_rd(c, PCI_PRIMARY_BUS, 4, 0x40050100, 0x40050100);
	ck_assert_int_eq(wr(c, PCI_SECONDARY_BUS, 1, 2), 0);
	ck_assert_uint_eq(rd(c, PCI_PRIMARY_BUS, 4), 0x40050200);
	/* I/O base/limit: 32-bit decoding (low nibble 1, read-only). */
	ck_assert_uint_eq(rd(c, PCI_IO_BASE, 2), 0x0101);
	wr_rd(c, PCI_IO_BASE, 2, 0xffff, 0xf1f1);
	wr_rd(c, PCI_IO_BASE, 2, 0x2010, 0x2111);
	wr_rd(c, PCI_IO_BASE_UPPER16, 4, 0x00020001, 0x00020001);
	/* Memory window: bits 15:4. */
	wr_rd(c, PCI_MEMORY_BASE, 4, 0xffffffff, 0xfff0fff0);
	/* Prefetchable window: 64-bit (low nibble 1) with upper halves. */
	ck_assert_uint_eq(rd(c, PCI_PREF_MEMORY_BASE, 4), 0x00010001);
	wr_rd(c, PCI_PREF_MEMORY_BASE, 4, 0xffffffff, 0xfff1fff1);
	ck_assert_int_eq(wr(c, PCI_PREF_BASE_UPPER32, 4, 0x12345678), 0);
	ck_assert_int_eq(wr(c, PCI_PREF_LIMIT_UPPER32, 4, 0x9abcdef0), 0);
	ck_assert_uint_eq(rd(c, PCI_PREF_BASE_UPPER32, 4), 0x12345678);
	ck_assert_uint_eq(rd(c, PCI_PREF_LIMIT_UPPER32, 4), 0x9abcdef0);
	/* Bridge control: bits 0..6. */
	wr_rd(c, PCI_BRIDGE_CONTROL, 2, 0xffff, 0x7f);
	/* Secondary status: RW1C error bits. */
	st = PCI_STATUS_REC_MASTER_ABORT | PCI_STATUS_SIG_SYSTEM_ERROR;
	ck_assert_int_eq(vdev_pci_cfg_poke(c, PCI_SEC_STATUS, &st, 2), 0);
	ck_assert_int_eq(wr(c, PCI_SEC_STATUS, 2, PCI_STATUS_SIG_SYSTEM_ERROR), 0);
	ck_assert_uint_eq(rd(c, PCI_SEC_STATUS, 2), PCI_STATUS_REC_MASTER_ABORT);
	/* Expansion ROM of type 1 is not implemented. */
	wr_rd(c, PCI_ROM_ADDRESS1, 4, 0xffffffff, 0);
	/* Two BARs only. */
	ck_assert_int_eq(vdev_pci_cfg_add_bar(c, 1, 0x1000, VDEV_PCI_BAR_MEM32), 0);
	ck_assert_int_eq(vdev_pci_cfg_add_bar(c, 2, 0x1000, VDEV_PCI_BAR_MEM32), -EINVAL);
	ck_assert_int_eq(vdev_pci_cfg_add_bar(c, 0, 0x1000, VDEV_PCI_BAR_MEM64), -EEXIST);
	vdev_pci_cfg_free(c);
}
END_TEST

static uint64_t bar_addr(vdev_pci_cfg *c, uint32_t bar)
{
	uint64_t a = 1, s = 0;
	uint32_t k = 0;

	ck_assert_int_eq(vdev_pci_cfg_bar(c, bar, &a, &s, &k), 0);
	return a;
}

START_TEST(test_bar_mem32)
{
	vdev_pci_cfg *c = new_cfg(0);
	uint64_t a = 1, s = 0;
	uint32_t k = 9;

	ck_assert_int_eq(vdev_pci_cfg_add_bar(c, 0, 0x1000, VDEV_PCI_BAR_MEM32), 0);
	ck_assert_int_eq(vdev_pci_cfg_bar(c, 0, &a, &s, &k), 0);
	ck_assert_uint_eq(a, 0);
	ck_assert_uint_eq(s, 0x1000);
	ck_assert_uint_eq(k, VDEV_PCI_BAR_MEM32);
	ck_assert_uint_eq(rd(c, PCI_BASE_ADDRESS_0, 4), 0);

	wr_rd(c, PCI_BASE_ADDRESS_0, 4, 0xffffffff, 0xfffff000u);
	ck_assert_uint_eq(bar_addr(c, 0), 0); /* being sized */
	wr_rd(c, PCI_BASE_ADDRESS_0, 4, 0xfebf1234, 0xfebf1000u);
	ck_assert_uint_eq(bar_addr(c, 0), 0xfebf1000u);

	/* Byte and word writes change only their bytes' address bits. */
	ck_assert_int_eq(wr(c, PCI_BASE_ADDRESS_0 + 3, 1, 0x80), 0);
	ck_assert_uint_eq(rd(c, PCI_BASE_ADDRESS_0, 4), 0x80bf1000u);
	ck_assert_int_eq(wr(c, PCI_BASE_ADDRESS_0, 2, 0xffff), 0);
	ck_assert_uint_eq(rd(c, PCI_BASE_ADDRESS_0, 4), 0x80bff000u);
	ck_assert_int_eq(wr(c, PCI_BASE_ADDRESS_0 + 1, 2, 0x0000), 0);
	ck_assert_uint_eq(rd(c, PCI_BASE_ADDRESS_0, 4), 0x80000000u);
	ck_assert_uint_eq(bar_addr(c, 0), 0x80000000u);

	/* Prefetchable 32-bit, 16 bytes (the smallest memory BAR). */
	ck_assert_int_eq(vdev_pci_cfg_add_bar(c, 1, 16, VDEV_PCI_BAR_MEM32 | VDEV_PCI_BAR_PREFETCH),
			 0);
	ck_assert_uint_eq(rd(c, PCI_BASE_ADDRESS_1, 4), PCI_BASE_ADDRESS_MEM_PREFETCH);
	wr_rd(c, PCI_BASE_ADDRESS_1, 4, 0xffffffff, 0xfffffff8u);
	ck_assert_int_eq(vdev_pci_cfg_bar(c, 1, NULL, NULL, &k), 0);
	ck_assert_uint_eq(k, VDEV_PCI_BAR_MEM32 | VDEV_PCI_BAR_PREFETCH);

	/* 2 GiB, the largest 32-bit BAR. */
	ck_assert_int_eq(vdev_pci_cfg_add_bar(c, 2, UINT64_C(1) << 31, VDEV_PCI_BAR_MEM32), 0);
	wr_rd(c, PCI_BASE_ADDRESS_2, 4, 0xffffffff, 0x80000000u);
	ck_assert_uint_eq(bar_addr(c, 2), 0);
	wr_rd(c, PCI_BASE_ADDRESS_2, 4, 0x7fffffff, 0);
	ck_assert_uint_eq(bar_addr(c, 2), 0);

	/* Unused BARs read 0 and ignore writes. */
	wr_rd(c, PCI_BASE_ADDRESS_5, 4, 0xffffffff, 0);
	vdev_pci_cfg_free(c);
}
END_TEST

START_TEST(test_bar_mem64)
{
	vdev_pci_cfg *c = new_cfg(0);
	uint64_t s;

	ck_assert_int_eq(vdev_pci_cfg_add_bar(c, 2, 0x4000,
					      VDEV_PCI_BAR_MEM64 | VDEV_PCI_BAR_PREFETCH),
			 0);
	ck_assert_uint_eq(rd(c, PCI_BASE_ADDRESS_2, 4),
			  PCI_BASE_ADDRESS_MEM_TYPE_64 | PCI_BASE_ADDRESS_MEM_PREFETCH);
	ck_assert_uint_eq(rd(c, PCI_BASE_ADDRESS_3, 4), 0);
	/* The upper half is not a BAR of its own. */
	ck_assert_int_eq(vdev_pci_cfg_bar(c, 3, NULL, &s, NULL), -ENOENT);

	/* Sizing as Linux does: low half, restore, high half, restore. */
	wr_rd(c, PCI_BASE_ADDRESS_2, 4, 0xffffffff, 0xffffc00cu);
	ck_assert_uint_eq(bar_addr(c, 2), 0);
	ck_assert_int_eq(wr(c, PCI_BASE_ADDRESS_2, 4, 0), 0);
	wr_rd(c, PCI_BASE_ADDRESS_3, 4, 0xffffffff, 0xffffffffu);
	ck_assert_uint_eq(bar_addr(c, 2), 0);

	/* A low half of 0 is a valid address once the high half is set. */
	ck_assert_int_eq(wr(c, PCI_BASE_ADDRESS_3, 4, 0x00000008), 0);
	ck_assert_uint_eq(bar_addr(c, 2), UINT64_C(8) << 32);
	wr_rd(c, PCI_BASE_ADDRESS_2, 4, 0xe0004567, 0xe000400cu);
	ck_assert_uint_eq(bar_addr(c, 2), UINT64_C(0x8e0004000));
	/* Byte write into the upper half. */
	ck_assert_int_eq(wr(c, PCI_BASE_ADDRESS_3 + 3, 1, 0x12), 0);
	ck_assert_uint_eq(bar_addr(c, 2), UINT64_C(0x12000008e0004000));

	/* 8 GiB: the low half has no address bits, the high half some. */
	ck_assert_int_eq(vdev_pci_cfg_add_bar(c, 0, UINT64_C(8) << 30, VDEV_PCI_BAR_MEM64), 0);
	ck_assert_int_eq(wr(c, PCI_BASE_ADDRESS_0, 4, 0xffffffff), 0);
	ck_assert_uint_eq(rd(c, PCI_BASE_ADDRESS_0, 4), PCI_BASE_ADDRESS_MEM_TYPE_64);
	wr_rd(c, PCI_BASE_ADDRESS_1, 4, 0xffffffff, 0xfffffffeu);
	ck_assert_uint_eq(bar_addr(c, 0), 0);
	wr_rd(c, PCI_BASE_ADDRESS_1, 4, 0x00000013, 0x12u);
	/* The low half was sized and not written since: still being sized,
	 * although it has no address bits. */
	ck_assert_uint_eq(bar_addr(c, 0), 0);
	ck_assert_int_eq(wr(c, PCI_BASE_ADDRESS_0, 4, PCI_BASE_ADDRESS_MEM_TYPE_64), 0);
	ck_assert_uint_eq(bar_addr(c, 0), UINT64_C(0x12) << 32);
	vdev_pci_cfg_free(c);
}
END_TEST

START_TEST(test_bar_io)
{
	vdev_pci_cfg *c = new_cfg(0);
	uint32_t k;

	ck_assert_int_eq(vdev_pci_cfg_add_bar(c, 5, 32, VDEV_PCI_BAR_IO), 0);
	ck_assert_uint_eq(rd(c, PCI_BASE_ADDRESS_5, 4), PCI_BASE_ADDRESS_SPACE_IO);
	wr_rd(c, PCI_BASE_ADDRESS_5, 4, 0xffffffff, 0xffffffe1u);
	ck_assert_uint_eq(bar_addr(c, 5), 0);
	wr_rd(c, PCI_BASE_ADDRESS_5, 4, 0xc03f, 0xc021u);
	ck_assert_uint_eq(bar_addr(c, 5), 0xc020);
	ck_assert_int_eq(vdev_pci_cfg_bar(c, 5, NULL, NULL, &k), 0);
	ck_assert_uint_eq(k, VDEV_PCI_BAR_IO);
	/* 4 and 256 bytes are the limits. */
	ck_assert_int_eq(vdev_pci_cfg_add_bar(c, 0, 4, VDEV_PCI_BAR_IO), 0);
	wr_rd(c, PCI_BASE_ADDRESS_0, 4, 0xffffffff, 0xfffffffdu);
	ck_assert_int_eq(vdev_pci_cfg_add_bar(c, 1, 256, VDEV_PCI_BAR_IO), 0);
	wr_rd(c, PCI_BASE_ADDRESS_1, 4, 0xffffffff, 0xffffff01u);
	vdev_pci_cfg_free(c);
}
END_TEST

/*
 * "Being sized" comes from what the guest wrote, not from the register: an
 * address with every address bit of a BAR dword set decodes like any other.
 */
START_TEST(test_bar_top_addresses)
{
	vdev_pci_cfg *c = new_cfg(0);
	uint64_t top = UINT64_C(0xffffc000) | UINT64_C(0xf) << 32;

	/* A 16 KiB 64-bit BAR in the last slot below 64 GiB, as a top-down
	 * allocator (EDK2) places it when the mmio64 window ends there. */
	ck_assert_int_eq(vdev_pci_cfg_add_bar(c, 0, 0x4000,
					      VDEV_PCI_BAR_MEM64 | VDEV_PCI_BAR_PREFETCH),
			 0);
	wr_rd(c, PCI_BASE_ADDRESS_0, 4, 0xffffc00c, 0xffffc00cu);
	wr_rd(c, PCI_BASE_ADDRESS_1, 4, 0xf, 0xfu);
	ck_assert_uint_eq(bar_addr(c, 0), top);
	/* Sizing either half: address 0 while the size mask reads back... */
	wr_rd(c, PCI_BASE_ADDRESS_0, 4, 0xffffffff, 0xffffc00cu);
	ck_assert_uint_eq(bar_addr(c, 0), 0);
	wr_rd(c, PCI_BASE_ADDRESS_1, 4, 0xffffffff, 0xffffffffu);
	ck_assert_uint_eq(bar_addr(c, 0), 0);
	/* ...until both halves were written an address again. */
	ck_assert_int_eq(wr(c, PCI_BASE_ADDRESS_0, 4, 0xffffc00c), 0);
	ck_assert_uint_eq(bar_addr(c, 0), 0);
	ck_assert_int_eq(wr(c, PCI_BASE_ADDRESS_1, 4, 0xf), 0);
	ck_assert_uint_eq(bar_addr(c, 0), top);
	/* The upper half alone sized: still being sized. */
	ck_assert_int_eq(wr(c, PCI_BASE_ADDRESS_1, 4, 0xffffffff), 0);
	ck_assert_uint_eq(bar_addr(c, 0), 0);
	ck_assert_int_eq(wr(c, PCI_BASE_ADDRESS_1, 4, 0xf), 0);
	ck_assert_uint_eq(bar_addr(c, 0), top);

	/* A 2 GiB 32-bit BAR has one address bit: 0x80000000 is its only
	 * address, and it is also its size mask. */
	ck_assert_int_eq(vdev_pci_cfg_add_bar(c, 2, UINT64_C(1) << 31, VDEV_PCI_BAR_MEM32), 0);
	wr_rd(c, PCI_BASE_ADDRESS_2, 4, 0x80000000, 0x80000000u);
	ck_assert_uint_eq(bar_addr(c, 2), 0x80000000u);
	wr_rd(c, PCI_BASE_ADDRESS_2, 4, 0xffffffff, 0x80000000u);
	ck_assert_uint_eq(bar_addr(c, 2), 0);
	ck_assert_int_eq(wr(c, PCI_BASE_ADDRESS_2, 4, 0x80000000), 0);
	ck_assert_uint_eq(bar_addr(c, 2), 0x80000000u);

	/* Byte and word writes of all ones size too, once they covered every
	 * byte of the dword; the first byte that is not 0xff ends it. */
	for (uint32_t i = 0; i < 4; i++) {
		ck_assert_uint_eq(bar_addr(c, 2), 0x80000000u);
		ck_assert_int_eq(wr(c, PCI_BASE_ADDRESS_2 + i, 1, 0xff), 0);
	}
	ck_assert_uint_eq(bar_addr(c, 2), 0);
	ck_assert_int_eq(wr(c, PCI_BASE_ADDRESS_2 + 3, 1, 0x80), 0);
	ck_assert_uint_eq(bar_addr(c, 2), 0x80000000u);
	ck_assert_int_eq(wr(c, PCI_BASE_ADDRESS_0 + 2, 2, 0xffff), 0);
	ck_assert_int_eq(wr(c, PCI_BASE_ADDRESS_0, 2, 0xffff), 0);
	ck_assert_uint_eq(bar_addr(c, 0), 0);
	ck_assert_int_eq(wr(c, PCI_BASE_ADDRESS_0, 1, 0x0c), 0);
	ck_assert_uint_eq(bar_addr(c, 0), top);
	/* An address written byte by byte is an address, whatever its last
	 * bytes are; so is one whose upper bytes are rewritten as 0xff. */
	ck_assert_int_eq(wr(c, PCI_BASE_ADDRESS_0, 4, 0xffffffff), 0);
	ck_assert_int_eq(wr(c, PCI_BASE_ADDRESS_0, 1, 0x0c), 0);
	ck_assert_int_eq(wr(c, PCI_BASE_ADDRESS_0 + 1, 1, 0xc0), 0);
	ck_assert_int_eq(wr(c, PCI_BASE_ADDRESS_0 + 2, 1, 0xff), 0);
	ck_assert_int_eq(wr(c, PCI_BASE_ADDRESS_0 + 3, 1, 0xff), 0);
	ck_assert_uint_eq(bar_addr(c, 0), top);
	ck_assert_int_eq(wr(c, PCI_BASE_ADDRESS_2, 4, 0x80000000), 0);
	ck_assert_int_eq(wr(c, PCI_BASE_ADDRESS_2 + 2, 2, 0xffff), 0);
	ck_assert_uint_eq(bar_addr(c, 2), 0x80000000u);

	/* The device setting the register itself ends sizing. */
	ck_assert_int_eq(wr(c, PCI_BASE_ADDRESS_2, 4, 0xffffffff), 0);
	ck_assert_uint_eq(bar_addr(c, 2), 0);
	ck_assert_int_eq(vdev_pci_cfg_poke(c, PCI_BASE_ADDRESS_2, (uint8_t[]){ 0, 0, 0, 0x80 }, 4),
			 0);
	ck_assert_uint_eq(bar_addr(c, 2), 0x80000000u);
	ck_assert_int_eq(wr(c, PCI_BASE_ADDRESS_1, 4, 0xffffffff), 0);
	ck_assert_int_eq(vdev_pci_cfg_poke(c, PCI_BASE_ADDRESS_1 + 3, (uint8_t[]){ 0xff }, 1), 0);
	ck_assert_uint_eq(bar_addr(c, 0), UINT64_C(0xffffffffffffc000));
	vdev_pci_cfg_free(c);
}
END_TEST

START_TEST(test_bad_bars)
{
	vdev_pci_cfg *c = new_cfg(0);
	uint64_t a;

	ck_assert_int_eq(vdev_pci_cfg_add_bar(NULL, 0, 0x1000, VDEV_PCI_BAR_MEM32), -EINVAL);
	ck_assert_int_eq(vdev_pci_cfg_add_bar(c, 6, 0x1000, VDEV_PCI_BAR_MEM32), -EINVAL);
	ck_assert_int_eq(vdev_pci_cfg_add_bar(c, UINT32_MAX, 0x1000, VDEV_PCI_BAR_MEM32), -EINVAL);
	/* Sizes: powers of two, memory >= 16, 32-bit <= 2 GiB, I/O 4..256. */
	ck_assert_int_eq(vdev_pci_cfg_add_bar(c, 0, 0, VDEV_PCI_BAR_MEM32), -EINVAL);
	ck_assert_int_eq(vdev_pci_cfg_add_bar(c, 0, 0x1800, VDEV_PCI_BAR_MEM32), -EINVAL);
	ck_assert_int_eq(vdev_pci_cfg_add_bar(c, 0, 8, VDEV_PCI_BAR_MEM32), -EINVAL);
	ck_assert_int_eq(vdev_pci_cfg_add_bar(c, 0, 8, VDEV_PCI_BAR_MEM64), -EINVAL);
	ck_assert_int_eq(vdev_pci_cfg_add_bar(c, 0, UINT64_C(1) << 32, VDEV_PCI_BAR_MEM32),
			 -EINVAL);
	ck_assert_int_eq(vdev_pci_cfg_add_bar(c, 0, 2, VDEV_PCI_BAR_IO), -EINVAL);
	ck_assert_int_eq(vdev_pci_cfg_add_bar(c, 0, 512, VDEV_PCI_BAR_IO), -EINVAL);
	ck_assert_int_eq(vdev_pci_cfg_add_bar(c, 0, 24, VDEV_PCI_BAR_IO), -EINVAL);
	/* Kinds. */
	ck_assert_int_eq(vdev_pci_cfg_add_bar(c, 0, 0x1000, 3), -EINVAL);
	ck_assert_int_eq(vdev_pci_cfg_add_bar(c, 0, 0x1000, 0x10), -EINVAL);
	ck_assert_int_eq(vdev_pci_cfg_add_bar(c, 0, 64, VDEV_PCI_BAR_IO | VDEV_PCI_BAR_PREFETCH),
			 -EINVAL);
	/* A 64-bit BAR needs the next slot. */
	ck_assert_int_eq(vdev_pci_cfg_add_bar(c, 5, 0x1000, VDEV_PCI_BAR_MEM64), -EINVAL);
	/* Overlapping declarations. */
	ck_assert_int_eq(vdev_pci_cfg_add_bar(c, 0, 0x1000, VDEV_PCI_BAR_MEM64), 0);
	ck_assert_int_eq(vdev_pci_cfg_add_bar(c, 0, 0x1000, VDEV_PCI_BAR_MEM32), -EEXIST);
	ck_assert_int_eq(vdev_pci_cfg_add_bar(c, 1, 0x1000, VDEV_PCI_BAR_MEM32), -EEXIST);
	ck_assert_int_eq(vdev_pci_cfg_add_bar(c, 3, 0x1000, VDEV_PCI_BAR_MEM32), 0);
	ck_assert_int_eq(vdev_pci_cfg_add_bar(c, 2, 0x1000, VDEV_PCI_BAR_MEM64), -EEXIST);
	ck_assert_int_eq(vdev_pci_cfg_add_bar(c, 2, 0x1000, VDEV_PCI_BAR_MEM32), 0);
	/* Nothing of the refused ones stuck. */
	ck_assert_int_eq(vdev_pci_cfg_bar(c, 4, &a, NULL, NULL), -ENOENT);
	ck_assert_int_eq(vdev_pci_cfg_bar(c, 5, &a, NULL, NULL), -ENOENT);
	ck_assert_int_eq(vdev_pci_cfg_bar(c, 6, &a, NULL, NULL), -ENOENT);
	ck_assert_int_eq(vdev_pci_cfg_bar(NULL, 0, &a, NULL, NULL), -ENOENT);
	wr_rd(c, PCI_BASE_ADDRESS_4, 4, 0xffffffff, 0);
	vdev_pci_cfg_free(c);

	/* Type 1: a 64-bit BAR only at 0. */
	c = new_cfg(1);
	ck_assert_int_eq(vdev_pci_cfg_add_bar(c, 1, 0x1000, VDEV_PCI_BAR_MEM64), -EINVAL);
	ck_assert_int_eq(vdev_pci_cfg_add_bar(c, 0, 0x1000, VDEV_PCI_BAR_MEM64), 0);
	vdev_pci_cfg_free(c);
}
END_TEST

/* Walks the list as a driver does; returns how many capabilities it saw. */
static int walk(vdev_pci_cfg *c, uint32_t *offs, int max)
{
	uint32_t at = rd(c, PCI_CAPABILITY_LIST, 1);
	int n = 0;

	while (at && n < max) {
		ck_assert_uint_eq(at % 4, 0);
		ck_assert_uint_ge(at, 0x40);
		offs[n++] = at;
		at = rd(c, at + 1, 1);
	}
	return n;
}

START_TEST(test_capabilities)
{
	vdev_pci_cfg *c = new_cfg(0);
	uint8_t body[16], mask[16];
	uint32_t off[64], o1, o2, o3;

	for (int i = 0; i < 16; i++)
		body[i] = (uint8_t)(0xa0 + i);
	memset(mask, 0, sizeof(mask));
	mask[0] = 0xff; /* body byte 0 fully writable */
	mask[3] = 0x0f; /* body byte 3: low nibble */

	ck_assert_int_eq(vdev_pci_cfg_add_capability(c, PCI_CAP_ID_VNDR, body, 3, NULL, &o1), 0);
	ck_assert_uint_eq(o1, 0x40);
	ck_assert_uint_ne(rd(c, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST, 0);
	ck_assert_uint_eq(rd(c, PCI_CAPABILITY_LIST, 1), 0x40);
	/* 5 bytes -> the next one starts at the next dword. */
	ck_assert_int_eq(vdev_pci_cfg_add_capability(c, PCI_CAP_ID_MSIX, body, 10, mask, &o2), 0);
	ck_assert_uint_eq(o2, 0x48);
	ck_assert_int_eq(vdev_pci_cfg_add_capability(c, PCI_CAP_ID_PM, NULL, 0, NULL, &o3), 0);
	ck_assert_uint_eq(o3, 0x54);
	ck_assert_int_eq(walk(c, off, 64), 3);
	ck_assert_uint_eq(off[0], o1);
	ck_assert_uint_eq(off[1], o2);
	ck_assert_uint_eq(off[2], o3);
	ck_assert_uint_eq(rd(c, o1, 1), PCI_CAP_ID_VNDR);
	ck_assert_uint_eq(rd(c, o2, 1), PCI_CAP_ID_MSIX);
	ck_assert_uint_eq(rd(c, o3, 2), PCI_CAP_ID_PM); /* next 0 */
	ck_assert_uint_eq(rd(c, o1 + 2, 2), 0xa1a0);
	ck_assert_uint_eq(rd(c, o1 + 4, 1), 0xa2);

	/* Write masks: ID and next are read-only; body bits per the mask. */
	ck_assert_int_eq(wr(c, o2, 4, 0x55aa0000), 0);
	ck_assert_uint_eq(rd(c, o2, 4), 0xa1aa0000u | (uint32_t)o3 << 8 | PCI_CAP_ID_MSIX);
	wr_rd(c, o2 + 4, 4, 0xffffffff, 0xa5a4afa2u);
	wr_rd(c, o2 + 5, 1, 0x00, 0xa0);
	/* A capability without a mask is read-only. */
	ck_assert_int_eq(wr(c, o1, 4, 0), 0);
	ck_assert_uint_eq(rd(c, o1, 4), 0xa1a00000u | o2 << 8 | PCI_CAP_ID_VNDR);
	ck_assert_int_eq(wr(c, o1 + 1, 1, 0x80), 0);
	ck_assert_int_eq(walk(c, off, 64), 3);
	vdev_pci_cfg_free(c);
}
END_TEST

START_TEST(test_capability_space)
{
	vdev_pci_cfg *c = new_cfg(0);
	uint8_t body[256];
	uint32_t off[64], o;
	int n = 0;

	memset(body, 0x11, sizeof(body));
	ck_assert_int_eq(vdev_pci_cfg_add_capability(c, PCI_CAP_ID_VNDR, body, 0xbe, NULL, &o), 0);
	ck_assert_uint_eq(o, 0x40);
	/* 0x40 + 0xc0 = 0x100: full. */
	ck_assert_int_eq(vdev_pci_cfg_add_capability(c, PCI_CAP_ID_VNDR, NULL, 0, NULL, &o),
			 -ENOSPC);
	vdev_pci_cfg_free(c);

	/* Small ones until the space runs out, ending exactly at 0xff. */
	c = new_cfg(0);
	while (vdev_pci_cfg_add_capability(c, PCI_CAP_ID_VNDR, body, 2, NULL, &o) == 0)
		n++;
	ck_assert_int_eq(n, (0x100 - 0x40) / 4);
	ck_assert_uint_eq(o, 0xfc);
	ck_assert_int_eq(walk(c, off, 64), n);
	ck_assert_uint_eq(rd(c, 0xfd, 1), 0);
	/* One past the end by a byte. */
	vdev_pci_cfg_free(c);
	c = new_cfg(0);
	ck_assert_int_eq(vdev_pci_cfg_add_capability(c, PCI_CAP_ID_VNDR, body, 0xbf, NULL, &o),
			 -ENOSPC);
	ck_assert_int_eq(vdev_pci_cfg_add_capability(c, PCI_CAP_ID_VNDR, body, 300, NULL, &o),
			 -EINVAL);
	ck_assert_int_eq(vdev_pci_cfg_add_capability(c, PCI_CAP_ID_VNDR, NULL, 4, NULL, &o),
			 -EINVAL);
	ck_assert_int_eq(vdev_pci_cfg_add_capability(NULL, PCI_CAP_ID_VNDR, body, 4, NULL, &o),
			 -EINVAL);
	/* Refusals left no trace. */
	ck_assert_uint_eq(rd(c, PCI_CAPABILITY_LIST, 1), 0);
	ck_assert_uint_eq(rd(c, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST, 0);
	ck_assert_int_eq(vdev_pci_cfg_add_capability(c, PCI_CAP_ID_VNDR, body, 0xbe, NULL, NULL),
			 0);
	vdev_pci_cfg_free(c);
}
END_TEST

START_TEST(test_extended_space)
{
	vdev_pci_cfg *c = new_cfg(0);
	uint32_t v = 0x12345678, got = 0;

	for (uint32_t reg = 64; reg < VDEV_PCI_CONFIG_DWORDS; reg += 37)
		ck_assert_uint_eq(vdev_pci_cfg_read(c, reg), 0);
	ck_assert_uint_eq(vdev_pci_cfg_read(c, VDEV_PCI_CONFIG_DWORDS - 1), 0);
	/* Read-only to the guest... */
	ck_assert_int_eq(wr(c, 0x100, 4, 0xffffffff), 0);
	ck_assert_uint_eq(vdev_pci_cfg_read(c, 64), 0);
	/* ...but the function may put things there. */
	ck_assert_int_eq(vdev_pci_cfg_poke(c, 0xffc, &v, 4), 0);
	ck_assert_uint_eq(vdev_pci_cfg_read(c, 1023), 0x12345678);
	ck_assert_int_eq(vdev_pci_cfg_peek(c, 0xffe, &got, 2), 0);
	ck_assert_uint_eq(got, 0x1234);
	ck_assert_int_eq(wr(c, 0xffc, 4, 0), 0);
	ck_assert_uint_eq(vdev_pci_cfg_read(c, 1023), 0x12345678);
	/* Past the end. */
	ck_assert_uint_eq(vdev_pci_cfg_read(c, 1024), 0);
	ck_assert_uint_eq(vdev_pci_cfg_read(c, UINT32_MAX), 0);
	ck_assert_uint_eq(vdev_pci_cfg_read(NULL, 0), 0xffffffffu);
	ck_assert_int_eq(vdev_pci_cfg_poke(c, 0xffd, &v, 4), -EINVAL);
	ck_assert_int_eq(vdev_pci_cfg_peek(c, 0x1000, &v, 1), -EINVAL);
	ck_assert_int_eq(vdev_pci_cfg_peek(c, UINT32_MAX, &v, 2), -EINVAL);
	ck_assert_int_eq(vdev_pci_cfg_poke(c, 0, NULL, 4), -EINVAL);
	ck_assert_int_eq(vdev_pci_cfg_peek(NULL, 0, &v, 4), -EINVAL);
	ck_assert_int_eq(vdev_pci_cfg_poke(c, 0x1000, &v, 0), 0);
	vdev_pci_cfg_free(c);
}
END_TEST

START_TEST(test_bad_writes)
{
	vdev_pci_cfg *c = new_cfg(0);
	uint8_t b[8] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

	ck_assert_int_eq(vdev_pci_cfg_write(c, 1024, 0, b, 4), -EINVAL);
	ck_assert_int_eq(vdev_pci_cfg_write(c, UINT32_MAX, 0, b, 4), -EINVAL);
	ck_assert_int_eq(vdev_pci_cfg_write(c, 1, 1, b, 4), -EINVAL);
	ck_assert_int_eq(vdev_pci_cfg_write(c, 1, 3, b, 2), -EINVAL);
	ck_assert_int_eq(vdev_pci_cfg_write(c, 1, 4, b, 1), -EINVAL);
	ck_assert_int_eq(vdev_pci_cfg_write(c, 1, UINT32_MAX, b, 2), -EINVAL);
	ck_assert_int_eq(vdev_pci_cfg_write(c, 1, 0, b, 3), -EINVAL);
	ck_assert_int_eq(vdev_pci_cfg_write(c, 1, 0, b, 0), -EINVAL);
	ck_assert_int_eq(vdev_pci_cfg_write(c, 1, 0, b, 8), -EINVAL);
	ck_assert_int_eq(vdev_pci_cfg_write(c, 1, 0, NULL, 4), -EINVAL);
	ck_assert_int_eq(vdev_pci_cfg_write(NULL, 1, 0, b, 4), -EINVAL);
	/* None of them did anything. */
	ck_assert_uint_eq(rd(c, PCI_COMMAND, 2), 0);
	vdev_pci_cfg_free(c);
}
END_TEST

START_TEST(test_bad_configs)
{
	struct vdev_pci_cfg_config k = VDEV_PCI_CFG_CONFIG_INIT;
	vdev_pci_cfg *c = (vdev_pci_cfg *)&k; /* must stay untouched */

	k.vendor_id = 0xffff;
	ck_assert_int_eq(vdev_pci_cfg_new(&k, &c), -EINVAL);
	ck_assert_ptr_eq(c, (vdev_pci_cfg *)&k);
	k.vendor_id = 0x1af4;
	k.header_type = 2;
	ck_assert_int_eq(vdev_pci_cfg_new(&k, &c), -EINVAL);
	k.header_type = 0;
	k.interrupt_pin = 5;
	ck_assert_int_eq(vdev_pci_cfg_new(&k, &c), -EINVAL);
	k.interrupt_pin = 4;
	k.class_code = 0x1000000;
	ck_assert_int_eq(vdev_pci_cfg_new(&k, &c), -EINVAL);
	k.class_code = 0;
	k.multifunction = 2;
	ck_assert_int_eq(vdev_pci_cfg_new(&k, &c), -EINVAL);
	k.multifunction = 0;
	ck_assert_int_eq(vdev_pci_cfg_new(NULL, &c), -EINVAL);
	ck_assert_int_eq(vdev_pci_cfg_new(&k, NULL), -EINVAL);
	k.struct_size = 0;
	ck_assert_int_eq(vdev_pci_cfg_new(&k, &c), -EINVAL);
	ck_assert_ptr_eq(c, (vdev_pci_cfg *)&k);
	/* An older, shorter struct: the missing fields are zero. */
	k.struct_size = offsetof(struct vdev_pci_cfg_config, device_id);
	ck_assert_int_eq(vdev_pci_cfg_new(&k, &c), 0);
	ck_assert_uint_eq(vdev_pci_cfg_read(c, 0), 0x1af4);
	vdev_pci_cfg_free(c);
	vdev_pci_cfg_free(NULL);
}
END_TEST

START_TEST(test_bus_ops)
{
	const struct vdev_bus_device_ops *ops = vdev_pci_cfg_bus_ops();
	vdev_pci_cfg *c = new_cfg(0);
	struct vdev_bus_access a = { .struct_size = sizeof(a), .size = 4 };
	uint8_t b[4] = { 0x06, 0x00, 0x00, 0x00 };
	uint32_t v = 0;

	ck_assert_ptr_nonnull(ops);
	ck_assert_uint_ge(ops->struct_size, offsetof(struct vdev_bus_device_ops, is_bridge));
	ck_assert(ops->config_register_read != NULL && ops->config_register_write != NULL);
	ck_assert(ops->destroy == NULL && ops->is_bridge == NULL);
	ck_assert_uint_eq(ops->config_register_read(c, 0), 0x10421af4u);
	ck_assert_int_eq(ops->config_register_write(c, 1, 0, b, 2), 0);
	ck_assert_uint_eq(rd(c, PCI_COMMAND, 2), PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	ck_assert_int_eq(ops->config_register_write(c, 1, 2, b, 4), -EINVAL);
	ck_assert_int_eq(ops->read(c, &a, &v), -EIO);
	ck_assert_int_eq(ops->write(c, &a, &v), -EIO);
	vdev_pci_cfg_free(c);
}
END_TEST

static Suite *cfg_suite(void)
{
	Suite *s = suite_create("pci-cfg");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_type0_header);
	tcase_add_test(tc, test_multifunction_and_type1_ids);
	tcase_add_test(tc, test_command_and_status);
	tcase_add_test(tc, test_type1_header);
	tcase_add_test(tc, test_bar_mem32);
	tcase_add_test(tc, test_bar_mem64);
	tcase_add_test(tc, test_bar_io);
	tcase_add_test(tc, test_bar_top_addresses);
	tcase_add_test(tc, test_bad_bars);
	tcase_add_test(tc, test_capabilities);
	tcase_add_test(tc, test_capability_space);
	tcase_add_test(tc, test_extended_space);
	tcase_add_test(tc, test_bad_writes);
	tcase_add_test(tc, test_bad_configs);
	tcase_add_test(tc, test_bus_ops);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(cfg_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
