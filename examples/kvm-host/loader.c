/* SPDX-License-Identifier: MIT */
/*
 * The ELF loader of vdev-kvm-host. The image is input from outside the
 * host's control (any file named on the command line), so every offset and
 * size is checked in 64 bits without overflow before anything is copied.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "loader.h"

#define MAX_PHDRS 64u

static int refuse(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -ENOEXEC;
}

/* [off, off + size) inside [0, limit), without overflow. */
static int inside(uint64_t off, uint64_t size, uint64_t limit)
{
	return off <= limit && size <= limit - off;
}

int kh_load_elf(const void *buf, size_t len, uint8_t *ram, uint64_t ram_size, uint64_t win_lo,
		uint64_t win_size, struct kh_image *img, char *err, size_t errlen)
{
	Elf64_Phdr ph[MAX_PHDRS];
	Elf64_Ehdr eh;
	uint64_t lo = UINT64_MAX, hi = 0;
	uint32_t nload = 0;
	int entry_ok = 0;

	if (!buf || !ram || !img || !inside(win_lo, win_size, ram_size) || !win_size)
		return -EINVAL;
	if (len < sizeof(eh))
		return refuse(err, errlen, "file too short for an ELF header (%zu bytes)", len);
	memcpy(&eh, buf, sizeof(eh));
	if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0)
		return refuse(err, errlen, "not an ELF file");
	if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB ||
	    eh.e_ident[EI_VERSION] != EV_CURRENT)
		return refuse(err, errlen, "not a 64-bit little-endian ELF file");
	if (eh.e_machine != EM_X86_64)
		return refuse(err, errlen, "not an x86-64 ELF file (e_machine %u)", eh.e_machine);
	if (eh.e_type != ET_EXEC)
		return refuse(err, errlen, "not a static executable (e_type %u; PIE and shared "
					   "objects are refused)", eh.e_type);
	if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phnum > MAX_PHDRS)
		return refuse(err, errlen, "bad program header table (%u entries of %u bytes)",
			      eh.e_phnum, eh.e_phentsize);
	if (!inside(eh.e_phoff, (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr), len))
		return refuse(err, errlen, "program headers outside the file");
	memcpy(ph, (const uint8_t *)buf + eh.e_phoff, eh.e_phnum * sizeof(Elf64_Phdr));

	/* Validate everything before touching guest RAM. */
	for (uint32_t i = 0; i < eh.e_phnum; i++) {
		const Elf64_Phdr *p = &ph[i];

		if (p->p_type == PT_INTERP || p->p_type == PT_DYNAMIC)
			return refuse(err, errlen, "dynamically linked (segment %u is %s)", i,
				      p->p_type == PT_INTERP ? "PT_INTERP" : "PT_DYNAMIC");
		if (p->p_type != PT_LOAD || p->p_memsz == 0)
			continue;
		if (p->p_filesz > p->p_memsz)
			return refuse(err, errlen, "segment %u: file size above memory size", i);
		if (!inside(p->p_offset, p->p_filesz, len))
			return refuse(err, errlen, "segment %u: file range outside the file", i);
		if (p->p_vaddr != p->p_paddr)
			return refuse(err, errlen, "segment %u: virtual address 0x%" PRIx64
						   " != physical 0x%" PRIx64 " (the guest runs "
						   "identity-mapped)", i, (uint64_t)p->p_vaddr,
				      (uint64_t)p->p_paddr);
		if (p->p_paddr < win_lo || !inside(p->p_paddr - win_lo, p->p_memsz, win_size))
			return refuse(err, errlen, "segment %u at 0x%" PRIx64 "+0x%" PRIx64
						   " is outside [0x%" PRIx64 ", 0x%" PRIx64 ")",
				      i, (uint64_t)p->p_paddr, (uint64_t)p->p_memsz, win_lo,
				      win_lo + win_size);
		for (uint32_t j = 0; j < i; j++) {
			const Elf64_Phdr *q = &ph[j];

			if (q->p_type == PT_LOAD && q->p_memsz &&
			    p->p_paddr < q->p_paddr + q->p_memsz &&
			    q->p_paddr < p->p_paddr + p->p_memsz)
				return refuse(err, errlen, "segments %u and %u overlap", j, i);
		}
		if ((p->p_flags & PF_X) && eh.e_entry >= p->p_paddr &&
		    eh.e_entry - p->p_paddr < p->p_memsz)
			entry_ok = 1;
		lo = p->p_paddr < lo ? p->p_paddr : lo;
		hi = p->p_paddr + p->p_memsz > hi ? p->p_paddr + p->p_memsz : hi;
		nload++;
	}
	if (nload == 0)
		return refuse(err, errlen, "no loadable segment");
	if (!entry_ok)
		return refuse(err, errlen, "entry point 0x%" PRIx64 " is not inside an "
					   "executable segment", (uint64_t)eh.e_entry);

	for (uint32_t i = 0; i < eh.e_phnum; i++) {
		const Elf64_Phdr *p = &ph[i];

		if (p->p_type != PT_LOAD || p->p_memsz == 0)
			continue;
		memcpy(ram + p->p_paddr, (const uint8_t *)buf + p->p_offset, p->p_filesz);
		memset(ram + p->p_paddr + p->p_filesz, 0, p->p_memsz - p->p_filesz);
	}
	img->entry = eh.e_entry;
	img->lo = lo;
	img->hi = hi;
	img->segments = nload;
	return 0;
}

int kh_read_file(const char *path, size_t max, void **buf, size_t *len)
{
	struct stat st;
	uint8_t *b = NULL;
	size_t n = 0;
	int fd, r = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = -EINVAL;
		goto out;
	}
	if ((uint64_t)st.st_size > max) {
		r = -EFBIG;
		goto out;
	}
	b = malloc((size_t)st.st_size + 1);
	if (!b) {
		r = -ENOMEM;
		goto out;
	}
	while (n < (size_t)st.st_size) {
		ssize_t k = read(fd, b + n, (size_t)st.st_size - n);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			r = -errno;
			goto out;
		}
		if (k == 0)
			break; /* the file shrank: load what is there */
		n += (size_t)k;
	}
	*buf = b;
	*len = n;
	b = NULL;
out:
	free(b);
	close(fd);
	return r;
}
