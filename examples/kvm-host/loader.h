/* SPDX-License-Identifier: MIT */
/*
 * Guest image loaders: put an image into guest RAM and say where it starts.
 * They know nothing about KVM or the vCPU state (boot.h does that), so a
 * second loader (a Linux bzImage, per the x86 boot protocol) can sit next to
 * the ELF one and reuse the VM and device code unchanged.
 */
#ifndef KH_LOADER_H
#define KH_LOADER_H

#include <stddef.h>
#include <stdint.h>

/* The largest image file a loader reads. */
#define KH_IMAGE_FILE_MAX (64u << 20)

struct kh_image {
	uint64_t entry;    /* guest-physical entry point */
	uint64_t lo, hi;   /* [lo, hi): the guest-physical bytes the image occupies */
	uint32_t segments; /* PT_LOAD segments loaded */
};

/**
 * kh_load_elf() - load a static x86-64 ELF executable into @ram.
 * @buf, @len: the file's bytes.
 * @ram, @ram_size: guest RAM from GPA 0.
 * @win_lo, @win_size: every PT_LOAD segment (by p_paddr, p_memsz) and the
 *   entry point must lie inside [win_lo, win_lo + win_size), which must lie
 *   inside RAM.
 * @err, @errlen: on failure, why (a sentence without a newline).
 *
 * Refuses anything but ELF64, little endian, x86-64, ET_EXEC; program
 * headers outside the file; PT_INTERP or PT_DYNAMIC (not static); segments
 * with p_filesz > p_memsz, file ranges outside the file, p_vaddr != p_paddr
 * (the guest runs identity-mapped), overlapping segments, an entry point
 * outside an executable segment. Segments are copied and their tails zeroed.
 * Returns 0 or -ENOEXEC (bad image) / -EINVAL (bad arguments).
 */
int kh_load_elf(const void *buf, size_t len, uint8_t *ram, uint64_t ram_size, uint64_t win_lo,
		uint64_t win_size, struct kh_image *img, char *err, size_t errlen);

/**
 * kh_read_file() - read a whole file of at most @max bytes into a malloc'd
 * buffer. Returns 0, -EFBIG or the errno of open/read.
 */
int kh_read_file(const char *path, size_t max, void **buf, size_t *len);

#endif
