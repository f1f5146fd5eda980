/* SPDX-License-Identifier: MIT */
/*
 * What only the real guest does: port I/O to the host's test device,
 * volatile MMIO, the IDT gates and the local APIC, and the memcpy/memset the
 * freestanding driver half needs. The host test (host-test.c) replaces this
 * file.
 */
#include <stddef.h>
#include <stdint.h>

#include "tg.h"

#define APIC_EOI 0x0b0u
#define APIC_SVR 0x0f0u
#define APIC_SVR_ENABLE 0x100u
#define APIC_SPURIOUS_VECTOR 0xffu

#define GATE_TRAP 0xfu
#define GATE_PRESENT 0x80u
#define GATE_DPL3 0x60u

/* The interrupt entry stubs (entry.S), one per vector from TG_IRQ_VECTOR:
 * each saves the registers, calls tg_irq_handler with its index, returns
 * with iretq. */
extern const uint64_t tg_irq_entries[TG_IRQ_VECTORS];

void *memcpy(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);

void *memcpy(void *dst, const void *src, size_t n)
{
	void *d = dst;

	__asm__ __volatile__("rep movsb" : "+D"(d), "+S"(src), "+c"(n) : : "memory");
	return dst;
}

void *memset(void *dst, int c, size_t n)
{
	void *d = dst;

	__asm__ __volatile__("rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory");
	return dst;
}

static void outl(uint16_t port, uint32_t value)
{
	/* "memory": whatever the host reads (the line, the boot info) is
	 * written before the exit. */
	__asm__ __volatile__("outl %0, %1" : : "a"(value), "Nd"(port) : "memory");
}

void tg_put_line(const char *line)
{
	/* The stack and image sit below 4 GiB (tg-abi.h), so the GPA fits. */
	outl(TG_PORT_PRINT, (uint32_t)(uintptr_t)line);
}

void tg_set_status(uint32_t status)
{
	outl(TG_PORT_STATUS, status);
}

void tg_mark(uint32_t mark)
{
	outl(TG_PORT_MARK, mark);
}

void tg_hotplug_request(uint32_t op)
{
	outl(TG_PORT_HOTPLUG, op);
}

void tg_power_off(uint32_t code)
{
	for (;;)
		outl(TG_PORT_POWER_OFF, code); /* the host does not come back */
}

/* Register accesses are ordered against ring memory both ways, as a
 * kernel's readl/writel are: a kick must not overtake the ring writes. */
uint64_t tg_mmio_read(uint64_t gpa, uint32_t width)
{
	uintptr_t p = (uintptr_t)gpa;
	uint64_t v;

	if (width == 1)
		v = *(volatile uint8_t *)p;
	else if (width == 2)
		v = *(volatile uint16_t *)p;
	else if (width == 8)
		v = *(volatile uint64_t *)p;
	else
		v = *(volatile uint32_t *)p;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return v;
}

void tg_mmio_write(uint64_t gpa, uint32_t width, uint64_t value)
{
	uintptr_t p = (uintptr_t)gpa;

	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (width == 1)
		*(volatile uint8_t *)p = (uint8_t)value;
	else if (width == 2)
		*(volatile uint16_t *)p = (uint16_t)value;
	else if (width == 8)
		*(volatile uint64_t *)p = value;
	else
		*(volatile uint32_t *)p = (uint32_t)value;
}

/*
 * Gates in the IDT page the host mapped writable for us. Their target is our
 * own CPL-3 code segment, so delivery changes no privilege level and needs
 * no TSS stack. A trap gate, not an interrupt gate: an interrupt gate clears
 * IF, and at CPL 3 without IOPL 3 (which this machine's KVM does not keep)
 * neither iretq nor popf can set it again, so only the first interrupt would
 * ever arrive. With IF left on, a second interrupt can nest only after our
 * EOI, which the handler writes last. The gate's DPL 3 only matters for
 * software int.
 */
void tg_irq_install(void)
{
	for (uint32_t i = 0; i < TG_IRQ_VECTORS; i++) {
		volatile uint32_t *gate =
			(volatile uint32_t *)(uintptr_t)(TG_IDT_GPA + 16 * (TG_IRQ_VECTOR + i));
		uint64_t handler = tg_irq_entries[i];

		gate[0] = (uint32_t)(handler & 0xffffu) | TG_SEL_CODE << 16;
		gate[1] = (uint32_t)(handler & 0xffff0000u) |
			  (GATE_PRESENT | GATE_DPL3 | GATE_TRAP) << 8;
		gate[2] = (uint32_t)(handler >> 32);
		gate[3] = 0;
	}
	tg_mmio_write(TG_APIC_GPA + APIC_SVR, 4, APIC_SVR_ENABLE | APIC_SPURIOUS_VECTOR);
}

void tg_irq_eoi(void)
{
	tg_mmio_write(TG_APIC_GPA + APIC_EOI, 4, 0);
}
