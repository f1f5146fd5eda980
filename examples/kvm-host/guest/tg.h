/* SPDX-License-Identifier: MIT */
/*
 * The test guest's internal interface. The guest is split in two:
 *
 *   platform  what only a real guest can do: port I/O to the test device,
 *             MMIO register accesses, the IDT gate and the local APIC, power
 *             off (platform.c, entry.S). host-test.c provides the same
 *             functions in a host process, so the rest can be tested there.
 *   the rest  plain C over the library's driver half (blk.c, hostile.c,
 *             main.c, lib.c). Guest-physical addresses are pointers: the
 *             guest runs identity-mapped, and the host test registers its
 *             buffers with the device at their own addresses.
 *
 * Everything the device reads or writes (rings, request headers, data) comes
 * from tg_alloc, never from the stack or static storage.
 */
#ifndef VDEV_TG_H
#define VDEV_TG_H

#include <stdint.h>

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

/* 1, 2 or 4-byte register access at guest-physical address @gpa. */
uint32_t tg_mmio_read(uint64_t gpa, uint32_t width);
void tg_mmio_write(uint64_t gpa, uint32_t width, uint32_t value);

/* Route TG_IRQ_VECTOR to tg_irq_handler and enable the local APIC; the
 * handler's end of interrupt. */
void tg_irq_install(void);
void tg_irq_eoi(void);

/* ---- the rest ----------------------------------------------------------- */

/* Called for every TG_IRQ_VECTOR interrupt (blk.c). */
void tg_irq_handler(void);

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

/* ---- virtio-blk (blk.c) -------------------------------------------------- */

struct tg_blk;

/* Check a virtio-mmio register block; 0 and its device id, or < 0. */
int tg_probe(const struct tg_device *dev, uint32_t *device_id);
/* Start a vdev_drv on the virtio-blk at @dev (split ring, EVENT_IDX and
 * INDIRECT_DESC if offered); @quiet: print nothing unless it fails. Returns
 * NULL after printing why. */
struct tg_blk *tg_blk_open(const struct tg_device *dev, int quiet);
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
int tg_hostile(const struct tg_device *dev, struct tg_boot_info *bi);

/* The unit of every data transfer: one 4 KiB disk block. */
#define TG_BLOCK 4096u

#endif
