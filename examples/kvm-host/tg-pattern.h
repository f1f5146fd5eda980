/* SPDX-License-Identifier: MIT */
/*
 * The seeded data pattern of the verify workload (TG_MODE_VERIFY and
 * TG_MODE_IRQ), shared by the test guest, which writes it, and the host,
 * which checks the disk image after the guest powered off. Freestanding:
 * <stdint.h> only, no libc.
 *
 * Block i of the workload (4 KiB, TG_PATTERN_BLOCK) lives at byte offset
 * i * 4096 of disk 0, for i in [0, tg_boot_info.verify_blocks). Its bytes are
 * 512 little-endian 64-bit words; word w is
 * tg_pattern_word(seed, i, w): splitmix64 of a value mixed from the three,
 * so every block and every seed gives different data and a block written at
 * the wrong offset cannot match.
 */
#ifndef VDEV_TG_PATTERN_H
#define VDEV_TG_PATTERN_H

#include <stdint.h>

#define TG_PATTERN_BLOCK 4096u
#define TG_PATTERN_WORDS (TG_PATTERN_BLOCK / 8u)

static inline uint64_t tg_pattern_word(uint64_t seed, uint64_t block, uint32_t word)
{
	uint64_t z = seed + block * 0x9e3779b97f4a7c15ull + (uint64_t)word * 0xd1b54a32d192ed03ull;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Fill @buf (TG_PATTERN_BLOCK bytes, 8-byte aligned) with block @block. */
static inline void tg_pattern_fill(void *buf, uint64_t seed, uint64_t block)
{
	uint64_t *w = (uint64_t *)buf;
	uint32_t i;

	for (i = 0; i < TG_PATTERN_WORDS; i++)
		w[i] = tg_pattern_word(seed, block, i); /* x86-64: little endian */
}

/* The index of the first word of @buf that differs from block @block, or
 * TG_PATTERN_WORDS when the whole block matches. */
static inline uint32_t tg_pattern_check(const void *buf, uint64_t seed, uint64_t block)
{
	const uint64_t *w = (const uint64_t *)buf;
	uint32_t i;

	for (i = 0; i < TG_PATTERN_WORDS; i++)
		if (w[i] != tg_pattern_word(seed, block, i))
			return i;
	return TG_PATTERN_WORDS;
}

#endif
