/* SPDX-License-Identifier: MIT */
/*
 * The test guest's start: tables in guest RAM and the vCPU registers for
 * 64-bit long mode at CPL 3. On these machines KVM emulates CPL-0 code
 * instruction by instruction (see ENVIRONMENT.md), so the guest never runs
 * at CPL 0: the host builds what a kernel would build for itself, and the
 * guest's code segment is a DPL-3 one from its first instruction.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#include "boot.h"
#include "tg-abi.h"

#define PTE_P 0x1ull
#define PTE_W 0x2ull
#define PTE_U 0x4ull
#define PTE_PWT 0x8ull
#define PTE_PCD 0x10ull
#define PTE_PS 0x80ull
#define PTE_USER (PTE_P | PTE_W | PTE_U)

#define CR0_PE 0x1ull
#define CR0_MP 0x2ull
#define CR0_ET 0x10ull
#define CR0_NE 0x20ull
#define CR0_WP 0x10000ull
#define CR0_PG 0x80000000ull
#define CR4_PAE 0x20ull
#define CR4_OSFXSR 0x200ull
#define CR4_OSXMMEXCPT 0x400ull
#define EFER_LME 0x100ull
#define EFER_LMA 0x400ull

/* Page-table pages at TG_PT_GPA: PML4, PDPT, four page directories (4 GiB in
 * 2 MiB pages), one page table for the first 2 MiB (4 KiB pages, so that
 * page 0 can stay unmapped). */
#define PML4_GPA TG_PT_GPA
#define PDPT_GPA (TG_PT_GPA + 0x1000ull)
#define PD_GPA(i) (TG_PT_GPA + 0x2000ull + (uint64_t)(i) * 0x1000ull)
#define PT0_GPA (TG_PT_GPA + 0x6000ull)
#define PT_END (TG_PT_GPA + 0x7000ull)
#define UNCACHED_FROM 0xc0000000ull /* device windows and the APIC */

/* GDT slots (tg-abi.h: null, unused, unused, code 0x18, data 0x20, TSS 0x28) */
#define GDT_CODE 3
#define GDT_DATA 4
#define GDT_TSS 5
#define GDT_LIMIT (8u * 7u - 1u) /* the TSS descriptor takes two slots */
/* The TSS carries a full I/O permission bitmap allowing every port: KVM on
 * these machines (PVM) runs the guest with the hardware's IOPL 0 and emulates
 * a faulting IN/OUT, and its emulator then consults this bitmap (RFLAGS.IOPL
 * from KVM_SET_REGS does not survive the first exit). It lives in the page
 * table area, which tg-abi.h reserves for the host. */
#define TSS_GPA (TG_PT_GPA + 0x8000ull)
#define TSS_IOMAP 0x68u
#define TSS_LIMIT (TSS_IOMAP + 8192u) /* the bitmap's last byte is the 0xff end */
#define TSS_END (TSS_GPA + TSS_LIMIT + 1u)
#define IDT_LIMIT (256u * 16u - 1u)

_Static_assert(PT_END <= TSS_GPA && TSS_END <= 0xf0000ull, "page tables, then the TSS");

static void put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, sizeof(v)); /* x86: little endian */
}

static int build_page_tables(struct kh_vm *vm)
{
	uint8_t *pt = kh_vm_gpa(vm, TG_PT_GPA, PT_END - TG_PT_GPA);

	if (!pt)
		return -ENOMEM;
	memset(pt, 0, PT_END - TG_PT_GPA);
	put64(vm->ram + PML4_GPA, PDPT_GPA | PTE_USER);
	for (uint64_t i = 0; i < 4; i++)
		put64(vm->ram + PDPT_GPA + i * 8, PD_GPA(i) | PTE_USER);
	for (uint64_t i = 0; i < 4 * 512; i++) {
		uint64_t gpa = i << 21, e = gpa | PTE_USER | PTE_PS;

		if (gpa >= UNCACHED_FROM)
			e |= PTE_PCD | PTE_PWT;
		if (i == 0)
			e = PT0_GPA | PTE_USER;
		put64(vm->ram + PD_GPA(0) + i * 8, e); /* the four PDs are contiguous */
	}
	for (uint64_t i = 1; i < 512; i++) /* entry 0 stays 0: page 0 unmapped */
		put64(vm->ram + PT0_GPA + i * 8, (i << 12) | PTE_USER);
	return 0;
}

static uint64_t seg_desc(uint8_t access, uint8_t flags)
{
	/* base 0, limit 0xfffff (with G: 4 GiB) */
	return 0xffffull | ((uint64_t)access << 40) | (0xfull << 48) | ((uint64_t)flags << 52);
}

static int build_gdt(struct kh_vm *vm)
{
	uint8_t *gdt = kh_vm_gpa(vm, TG_GDT_GPA, 0x1000);
	uint8_t *tss = kh_vm_gpa(vm, TSS_GPA, TSS_END - TSS_GPA);
	uint64_t tss_lo;

	if (!gdt || !tss || !kh_vm_gpa(vm, TG_IDT_GPA, IDT_LIMIT + 1))
		return -ENOMEM;
	memset(gdt, 0, 0x1000);
	/* code: present, DPL 3, code exec/read accessed; G + L */
	put64(gdt + GDT_CODE * 8, seg_desc(0xfb, 0xa));
	/* data: present, DPL 3, data read/write accessed; G + D/B */
	put64(gdt + GDT_DATA * 8, seg_desc(0xf3, 0xc));
	/* 64-bit TSS, busy (it is loaded in TR) */
	tss_lo = (TSS_LIMIT & 0xffff) | ((TSS_GPA & 0xffffff) << 16) | (0x8bull << 40) |
		 ((uint64_t)(TSS_LIMIT >> 16) << 48) | ((TSS_GPA >> 24 & 0xff) << 56);
	put64(gdt + GDT_TSS * 8, tss_lo);
	put64(gdt + GDT_TSS * 8 + 8, TSS_GPA >> 32);
	/* TSS: every port allowed (bits 0), then the terminating byte */
	memset(tss, 0, TSS_END - TSS_GPA);
	tss[0x66] = TSS_IOMAP & 0xff;
	tss[0x67] = TSS_IOMAP >> 8;
	tss[TSS_LIMIT] = 0xff;
	/* The IDT starts empty: the guest installs its own gates (the page is
	 * mapped writable for it). A fault without a gate is a triple fault,
	 * which the host reports as a crash. */
	memset(vm->ram + TG_IDT_GPA, 0, IDT_LIMIT + 1);
	return 0;
}

static void set_seg(struct kvm_segment *s, uint16_t sel, uint8_t type, int code)
{
	memset(s, 0, sizeof(*s));
	s->base = 0;
	s->limit = 0xffffffffu;
	s->selector = sel;
	s->type = type;
	s->present = 1;
	s->dpl = sel & 3;
	s->s = 1;
	s->g = 1;
	s->l = code ? 1 : 0;
	s->db = code ? 0 : 1;
}

int kh_boot_test_guest(struct kh_vm *vm, uint64_t entry, uint64_t rflags)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	int r;

	r = build_page_tables(vm);
	if (r == 0)
		r = build_gdt(vm);
	if (r < 0) {
		fprintf(stderr, "vdev-kvm-host: guest RAM too small for the boot tables\n");
		return r;
	}
	if (ioctl(vm->vcpu_fd, KVM_GET_SREGS, &sregs) < 0)
		goto fail;
	set_seg(&sregs.cs, TG_SEL_CODE, 0xb, 1);
	set_seg(&sregs.ss, TG_SEL_DATA, 0x3, 0);
	sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss;
	memset(&sregs.tr, 0, sizeof(sregs.tr));
	sregs.tr.base = TSS_GPA;
	sregs.tr.limit = TSS_LIMIT;
	sregs.tr.selector = GDT_TSS * 8;
	sregs.tr.type = 0xb; /* 64-bit TSS, busy */
	sregs.tr.present = 1;
	memset(&sregs.ldt, 0, sizeof(sregs.ldt));
	sregs.ldt.type = 0x2;
	sregs.ldt.unusable = 1;
	sregs.gdt.base = TG_GDT_GPA;
	sregs.gdt.limit = GDT_LIMIT;
	sregs.idt.base = TG_IDT_GPA;
	sregs.idt.limit = IDT_LIMIT;
	sregs.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG;
	sregs.cr3 = PML4_GPA;
	sregs.cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT;
	sregs.efer = EFER_LME | EFER_LMA;
	if (ioctl(vm->vcpu_fd, KVM_SET_SREGS, &sregs) < 0)
		goto fail;

	memset(&regs, 0, sizeof(regs));
	regs.rip = entry;
	regs.rsp = TG_STACK_TOP;
	regs.rdi = TG_BOOT_INFO_GPA;
	regs.rflags = rflags;
	if (ioctl(vm->vcpu_fd, KVM_SET_REGS, &regs) < 0)
		goto fail;
	return 0;
fail:
	r = -errno;
	fprintf(stderr, "vdev-kvm-host: setting the vCPU registers: %s\n", strerror(-r));
	return r;
}
