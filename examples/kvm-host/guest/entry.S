/* SPDX-License-Identifier: MIT */
/*
 * Entry points of the test guest. The host starts us at _start in 64-bit
 * mode at CPL 3 with RSP = TG_STACK_TOP and RDI = the boot info's address;
 * interrupts (TG_MODE_IRQ) arrive at tg_irq_entry through the IDT gate
 * platform.c installs.
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
 * Same privilege level, so the CPU pushed SS, RSP, RFLAGS, CS, RIP on our
 * own stack (16-byte aligned first). Every general register is saved: the
 * guest is built without SSE (-mgeneral-regs-only), so there is no other
 * state the C handler could clobber. Needs -mno-red-zone everywhere: the
 * interrupted code's red zone would be under these pushes.
 */
	.text
	.globl tg_irq_entry
	.type tg_irq_entry, @function
tg_irq_entry:
	push %rax
	push %rbx
	push %rcx
	push %rdx
	push %rsi
	push %rdi
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
	call tg_irq_handler
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
	pop %rdi
	pop %rsi
	pop %rdx
	pop %rcx
	pop %rbx
	pop %rax
	iretq
	.size tg_irq_entry, . - tg_irq_entry

	.section .note.GNU-stack, "", @progbits
