/* SPDX-License-Identifier: MIT */
/* Internal helpers shared by every layer. Never installed; the vdi_ prefix
 * keeps them apart from the public vdev_ names (they are hidden anyway). */
#ifndef VDI_UTIL_H
#define VDI_UTIL_H

#include <stdint.h>
#include <string.h>

#define VDI_MIN(a, b) ((a) < (b) ? (a) : (b))
#define VDI_MAX(a, b) ((a) > (b) ? (a) : (b))
#define VDI_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define VDI_UNUSED(x) ((void)(x))
#define VDI_LIKELY(x) __builtin_expect(!!(x), 1)
#define VDI_UNLIKELY(x) __builtin_expect(!!(x), 0)

/*
 * Copy a caller's versioned struct (first member uint32_t struct_size) into
 * zeroed storage of our size: an older caller's smaller struct leaves the new
 * members zero; a newer caller's larger struct is truncated to what we know.
 * Returns 0, or -EINVAL when struct_size is too small to hold struct_size.
 */
static inline int vdi_copy_versioned(void *dst, size_t dst_size, const void *src)
{
	uint32_t n;

	memcpy(&n, src, sizeof(n));
	if (n < sizeof(uint32_t))
		return -22; /* -EINVAL, without needing errno.h here */
	memset(dst, 0, dst_size);
	memcpy(dst, src, n < dst_size ? n : dst_size);
	return 0;
}

/*
 * The other direction, for getters: copy our @src (@src_size bytes, a
 * struct that starts with struct_size) out to the caller's @dst, as much as
 * the caller's struct_size says it holds, keeping that struct_size.
 * Returns 0, or -EINVAL when the caller's struct_size is too small.
 */
static inline int vdi_copy_out_versioned(void *dst, const void *src, size_t src_size)
{
	uint32_t n;

	memcpy(&n, dst, sizeof(n));
	if (n < sizeof(uint32_t))
		return -22; /* -EINVAL */
	memcpy((char *)dst + sizeof(n), (const char *)src + sizeof(n),
	       (n < src_size ? n : src_size) - sizeof(n));
	return 0;
}

/* Little-endian guest fields. x86 and arm64 are little endian; the swaps
 * keep big-endian hosts correct. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define vdi_le16(x) __builtin_bswap16(x)
#define vdi_le32(x) __builtin_bswap32(x)
#define vdi_le64(x) __builtin_bswap64(x)
#else
#define vdi_le16(x) ((uint16_t)(x))
#define vdi_le32(x) ((uint32_t)(x))
#define vdi_le64(x) ((uint64_t)(x))
#endif

/* Loads and stores of guest-shared memory: single accesses the compiler may
 * not split, repeat or elide (a guest can change the value at any time). */
#define vdi_load_relaxed(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define vdi_load_acquire(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define vdi_store_relaxed(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define vdi_store_release(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define vdi_fence_seq_cst() __atomic_thread_fence(__ATOMIC_SEQ_CST)
#define vdi_fence_acquire() __atomic_thread_fence(__ATOMIC_ACQUIRE)
#define vdi_fence_release() __atomic_thread_fence(__ATOMIC_RELEASE)

/* The largest power of two <= @v (1 for 0 and 1). */
static inline uint32_t vdi_pow2_floor(uint32_t v)
{
	uint32_t p = 1;

	while (p <= v / 2)
		p <<= 1;
	return p;
}

/* The smallest power of two >= @v (1 for 0); @v at most 2^63. */
static inline uint64_t vdi_pow2_ceil(uint64_t v)
{
	uint64_t p = 1;

	while (p < v)
		p <<= 1;
	return p;
}

/* Little-endian load / store of @n (1..8) bytes: guest-visible registers are
 * little endian whatever the host is. */
static inline uint64_t vdi_ld_le(const void *p, uint32_t n)
{
	const uint8_t *b = (const uint8_t *)p;
	uint64_t v = 0;

	while (n-- > 0)
		v = v << 8 | b[n];
	return v;
}

static inline void vdi_st_le(void *p, uint64_t v, uint32_t n)
{
	uint8_t *b = (uint8_t *)p;

	for (uint32_t i = 0; i < n; i++)
		b[i] = (uint8_t)(v >> (8 * i));
}

static inline int vdi_is_pow2(uint64_t v)
{
	return v != 0 && (v & (v - 1)) == 0;
}

/* The spec's EVENT_IDX test: notify if new_idx passed event_idx since old. */
static inline int vdi_need_event(uint16_t event_idx, uint16_t new_idx, uint16_t old_idx)
{
	return (uint16_t)(new_idx - event_idx - 1) < (uint16_t)(new_idx - old_idx);
}

#ifndef VDI_FREESTANDING
/* Deliver a message to the installed log sink (printf-style). */
void vdi_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#else
#define vdi_log(...) ((void)0)
#endif

#ifndef VDI_FREESTANDING
#include <stdlib.h>

/*
 * Room for element @n of a growing array of @size-byte elements with
 * capacity *@cap (doubling from 16). Returns the (possibly moved) array, or
 * NULL on overflow or allocation failure (the old array is still valid).
 */
static inline void *vdi_grow(void *p, size_t *cap, size_t n, size_t size)
{
	size_t ncap;
	void *q;

	if (n < *cap)
		return p;
	ncap = *cap ? *cap * 2 : 16;
	if (ncap > SIZE_MAX / size)
		return NULL;
	q = realloc(p, ncap * size);
	if (q)
		*cap = ncap;
	return q;
}
#endif

#endif
