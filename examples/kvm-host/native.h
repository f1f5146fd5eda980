/* SPDX-License-Identifier: MIT */
/*
 * The host-native reference for the benchmark: plain liburing 4 KiB random
 * reads on the same file, at the same depth, for the same time as the guest.
 */
#ifndef KH_NATIVE_H
#define KH_NATIVE_H

#include <stdint.h>

/**
 * kh_native_randread() - keep @depth 4 KiB reads at random 4 KiB-aligned
 * offsets in [0, @blocks * 4096) of @path in flight for @ms milliseconds;
 * *iops receives the rate. Returns 0, -EOPNOTSUPP (built without liburing)
 * or a negative errno.
 */
int kh_native_randread(const char *path, uint32_t depth, uint32_t ms, uint64_t blocks,
		       uint64_t seed, double *iops);

#endif
