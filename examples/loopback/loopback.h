/* SPDX-License-Identifier: MIT */
/*
 * vdev-loopback: what the two modes share (options, reproducible random
 * numbers, printing feature bits by name).
 *   loopback.c  main, and the rng mode: your own device model, driven
 *               in-process through vdev_drv_direct_transport
 *   blk-mmio.c  the blk mode: the library's virtio-blk behind virtio-mmio on
 *               an MMIO bus, driven through register reads and writes
 */
#ifndef LOOPBACK_H
#define LOOPBACK_H

#include <stdint.h>

#define BIT(n) (UINT64_C(1) << (n))

struct options {
	uint64_t requests;
	uint64_t want; /* transport/ring features the driver accepts when offered */
	uint64_t seed;
	int verbose;
	int blk; /* --device blk */
};

/* xorshift64*: a number in [lo, hi], reproducible for a given --seed. */
static inline uint32_t rnd(uint64_t *state, uint32_t lo, uint32_t hi)
{
	uint64_t x = *state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return lo + (uint32_t)((x * UINT64_C(2685821657736338717)) >> 32) % (hi - lo + 1);
}

/* "features WHAT: VERSION_1 RING_PACKED ..." (device bits named for blk). */
void print_features(const char *what, uint64_t features, uint32_t device_type);

/* The blk mode (blk-mmio.c). Prints its report; returns 0 pass, 1 fail. */
int run_blk(const struct options *opt);

#endif
