/* SPDX-License-Identifier: MIT */
/*
 * Entry points of the test guest. The host starts us at _start in 64-bit
 * mode at CPL 3 with RSP = TG_STACK_TOP and RDI = the boot info's address;
 * interrupts (TG_MODE_IRQ) arrive at the tg_irq_entries stubs through the
 * IDT gates platform.c installs.
 */
	.section .text.start, "ax"
	.globl _start
	.type _start, @function
_start:
	mov %rdi, %rbx			/* the boot info, kept across the clear */
	lea __bss_start(%rip), %rdi	/* guest RAM starts zeroed; make sure */
	lea __bss_end(%rip), %rcx
	sub %rdi, %rcx
	xor %eax, %eax
	cld
	rep stosb
	mov %rbx, %rdi
	and $-16, %rsp			/* the ABI's alignment at a call */
	call tg_main
	ud2				/* tg_main powers off; never here */
	.size _start, . - _start

/*
 * One stub per vector from TG_IRQ_VECTOR (TG_IRQ_VECTORS of them, tg-abi.h;
 * platform.c installs tg_irq_entries[i] as the gate of TG_IRQ_VECTOR + i):
 * each calls tg_irq_handler with its index.
 *
 * Same privilege level, so the CPU pushed SS, RSP, RFLAGS, CS, RIP on our
 * own stack (16-byte aligned first). Every general register is saved: the
 * guest is built without SSE (-mgeneral-regs-only), so there is no other
 * state the C handler could clobber. Needs -mno-red-zone everywhere: the
 * interrupted code's red zone would be under these pushes.
 */
	.macro IRQ_STUB index
	.type tg_irq_entry_\index, @function
tg_irq_entry_\index:
	push %rdi
	mov $\index, %edi
	jmp tg_irq_common
	.size tg_irq_entry_\index, . - tg_irq_entry_\index
	.endm

	.text
	IRQ_STUB 0
	IRQ_STUB 1
	IRQ_STUB 2
	IRQ_STUB 3

	.type tg_irq_common, @function
tg_irq_common:
	push %rax
	push %rbx
	push %rcx
	push %rdx
	push %rsi
	push %rbp
	push %r8
	push %r9
	push %r10
	push %r11
	push %r12
	push %r13
	push %r14
	push %r15
	cld
	mov %rsp, %rbx			/* callee-saved: survives the call */
	and $-16, %rsp
	call tg_irq_handler		/* %edi: the stub's index */
	mov %rbx, %rsp
	pop %r15
	pop %r14
	pop %r13
	pop %r12
	pop %r11
	pop %r10
	pop %r9
	pop %r8
	pop %rbp
	pop %rsi
	pop %rdx
	pop %rcx
	pop %rbx
	pop %rax
	pop %rdi
	iretq
	.size tg_irq_common, . - tg_irq_common

	.section .rodata
	.balign 8
	.globl tg_irq_entries
	.type tg_irq_entries, @object
tg_irq_entries:
	.quad tg_irq_entry_0, tg_irq_entry_1, tg_irq_entry_2, tg_irq_entry_3
	.size tg_irq_entries, . - tg_irq_entries

	.section .note.GNU-stack, "", @progbits
