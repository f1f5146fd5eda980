/* SPDX-License-Identifier: MIT */
/*
 * The ELF loader of vdev-kvm-host (examples/kvm-host/loader.c) against
 * hand-made images: one that loads, and one for each refusal rule. A refused
 * image must leave guest RAM untouched. Needs no KVM.
 */
#include <elf.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loader.h"

#define RAM_SIZE (8u << 20)
#define WIN_LO 0x200000u
#define WIN_SIZE 0x200000u
#define FILE_SIZE 0x3000u

static int failures;

#define CHECK(cond, ...)                                                                   \
	do {                                                                               \
		if (!(cond)) {                                                             \
			failures++;                                                        \
			printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);             \
			printf(__VA_ARGS__);                                               \
			printf("\n");                                                      \
		}                                                                          \
	} while (0)

/* A valid image: text (R+X, 0x100 bytes of 0xc3) at WIN_LO, data (R+W,
 * 0x80 file bytes of 0x5a, 0x1000 in memory) at WIN_LO + 0x1000, entry at
 * WIN_LO + 0x10. Returned in a FILE_SIZE buffer the tests then break. */
struct image {
	uint8_t b[FILE_SIZE];
};

static Elf64_Ehdr *eh(struct image *im)
{
	return (Elf64_Ehdr *)im->b;
}

static Elf64_Phdr *ph(struct image *im, int i)
{
	return (Elf64_Phdr *)(im->b + sizeof(Elf64_Ehdr)) + i;
}

static void make_image(struct image *im)
{
	Elf64_Ehdr *e = eh(im);
	Elf64_Phdr *p;

	memset(im, 0, sizeof(*im));
	memcpy(e->e_ident, ELFMAG, SELFMAG);
	e->e_ident[EI_CLASS] = ELFCLASS64;
	e->e_ident[EI_DATA] = ELFDATA2LSB;
	e->e_ident[EI_VERSION] = EV_CURRENT;
	e->e_type = ET_EXEC;
	e->e_machine = EM_X86_64;
	e->e_version = EV_CURRENT;
	e->e_entry = WIN_LO + 0x10;
	e->e_phoff = sizeof(Elf64_Ehdr);
	e->e_ehsize = sizeof(Elf64_Ehdr);
	e->e_phentsize = sizeof(Elf64_Phdr);
	e->e_phnum = 3;

	p = ph(im, 0);
	p->p_type = PT_LOAD;
	p->p_flags = PF_R | PF_X;
	p->p_offset = 0x1000;
	p->p_vaddr = p->p_paddr = WIN_LO;
	p->p_filesz = p->p_memsz = 0x100;
	memset(im->b + 0x1000, 0xc3, 0x100);

	p = ph(im, 1);
	p->p_type = PT_LOAD;
	p->p_flags = PF_R | PF_W;
	p->p_offset = 0x2000;
	p->p_vaddr = p->p_paddr = WIN_LO + 0x1000;
	p->p_filesz = 0x80;
	p->p_memsz = 0x1000;
	memset(im->b + 0x2000, 0x5a, 0x80);

	p = ph(im, 2);
	p->p_type = PT_NOTE; /* ignored */
	p->p_offset = 0xffffffff;
}

static uint8_t *ram;

static int load(struct image *im, size_t len, struct kh_image *out, char *err, size_t errlen)
{
	return kh_load_elf(im->b, len, ram, RAM_SIZE, WIN_LO, WIN_SIZE, out, err, errlen);
}

static void test_valid(void)
{
	struct image im;
	struct kh_image out;
	char err[200] = "";
	int r;

	make_image(&im);
	memset(ram, 0xee, RAM_SIZE);
	r = load(&im, sizeof(im.b), &out, err, sizeof(err));
	CHECK(r == 0, "valid image refused: %d (%s)", r, err);
	CHECK(out.entry == WIN_LO + 0x10, "entry 0x%llx", (unsigned long long)out.entry);
	CHECK(out.lo == WIN_LO && out.hi == WIN_LO + 0x2000, "range 0x%llx-0x%llx",
	      (unsigned long long)out.lo, (unsigned long long)out.hi);
	CHECK(out.segments == 2, "segments %u", out.segments);
	CHECK(ram[WIN_LO] == 0xc3 && ram[WIN_LO + 0xff] == 0xc3, "text not copied");
	CHECK(ram[WIN_LO + 0x100] == 0xee, "bytes after a segment touched");
	CHECK(ram[WIN_LO + 0x1000] == 0x5a && ram[WIN_LO + 0x107f] == 0x5a, "data not copied");
	CHECK(ram[WIN_LO + 0x1080] == 0 && ram[WIN_LO + 0x1fff] == 0, "bss not zeroed");
	CHECK(ram[WIN_LO + 0x2000] == 0xee, "bytes after bss touched");
}

/* Each case breaks one rule of a valid image; the refusal must name it. */
static const struct {
	const char *name;
	const char *why; /* a word the refusal must contain */
} bad[] = {
	{"short file", "short"},
	{"bad magic", "not an ELF"},
	{"32-bit", "64-bit"},
	{"big endian", "little-endian"},
	{"aarch64", "x86-64"},
	{"ET_DYN", "static"},
	{"phentsize", "program header"},
	{"no program headers", "program header"},
	{"65 program headers", "program header"},
	{"phdrs past the end", "outside the file"},
	{"phoff wraps", "outside the file"},
	{"PT_INTERP", "PT_INTERP"},
	{"PT_DYNAMIC", "PT_DYNAMIC"},
	{"filesz > memsz", "file size"},
	{"segment past the file", "outside the file"},
	{"segment offset wraps", "outside the file"},
	{"vaddr != paddr", "identity"},
	{"segment below the window", "outside"},
	{"segment past the window", "outside"},
	{"segment address wraps", "outside"},
	{"memsz huge", "outside"},
	{"overlapping segments", "overlap"},
	{"entry in a data segment", "entry point"},
	{"entry outside segments", "entry point"},
	{"no PT_LOAD", "no loadable"},
};

_Static_assert(sizeof(bad) / sizeof(bad[0]) == 25, "one break_image case per entry");

static void set_addr(Elf64_Phdr *p, uint64_t a)
{
	p->p_vaddr = p->p_paddr = a;
}

static void break_image(struct image *im, size_t *len, size_t which)
{
	Elf64_Ehdr *e = eh(im);
	Elf64_Phdr *data = ph(im, 1);

	switch (which) {
	case 0: *len = sizeof(Elf64_Ehdr) - 1; break;
	case 1: e->e_ident[1] = 'X'; break;
	case 2: e->e_ident[EI_CLASS] = ELFCLASS32; break;
	case 3: e->e_ident[EI_DATA] = ELFDATA2MSB; break;
	case 4: e->e_machine = EM_AARCH64; break;
	case 5: e->e_type = ET_DYN; break;
	case 6: e->e_phentsize = 32; break;
	case 7: e->e_phnum = 0; break;
	case 8: e->e_phnum = 65; break;
	case 9: e->e_phoff = FILE_SIZE - 100; break;
	case 10: e->e_phoff = UINT64_MAX - 8; break;
	case 11: ph(im, 2)->p_type = PT_INTERP; break;
	case 12: ph(im, 2)->p_type = PT_DYNAMIC; break;
	case 13: data->p_filesz = 0x1001; break;
	case 14: data->p_offset = FILE_SIZE - 0x40; break;
	case 15: data->p_offset = UINT64_MAX - 0x10; break;
	case 16: data->p_vaddr += 0x1000; break;
	case 17: set_addr(data, WIN_LO - 0x1000); break;
	case 18: set_addr(data, WIN_LO + WIN_SIZE - 0x800); break;
	case 19: set_addr(data, UINT64_MAX - 0x100); break;
	case 20: data->p_memsz = UINT64_MAX; break;
	case 21: set_addr(data, WIN_LO + 0x80); break;
	case 22: e->e_entry = WIN_LO + 0x1010; break;
	case 23: e->e_entry = WIN_LO + 0x100; break;
	case 24: ph(im, 0)->p_type = data->p_type = PT_NOTE; break;
	}
}

static void test_refusals(void)
{
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct image im;
		struct kh_image out;
		size_t len = sizeof(im.b);
		char err[200] = "";
		int r;

		make_image(&im);
		break_image(&im, &len, i);
		memset(ram, 0xee, RAM_SIZE);
		r = load(&im, len, &out, err, sizeof(err));
		CHECK(r == -ENOEXEC, "%s: returned %d", bad[i].name, r);
		CHECK(strstr(err, bad[i].why) != NULL, "%s: message '%s' lacks '%s'", bad[i].name,
		      err, bad[i].why);
		CHECK(ram[WIN_LO] == 0xee && ram[WIN_LO + 0x1000] == 0xee &&
		      ram[WIN_LO + 0x1fff] == 0xee, "%s: RAM touched by a refused image",
		      bad[i].name);
	}
}

static void test_bad_arguments(void)
{
	struct image im;
	struct kh_image out;

	make_image(&im);
	/* a window that is not inside RAM */
	CHECK(kh_load_elf(im.b, sizeof(im.b), ram, RAM_SIZE, RAM_SIZE - 0x1000, 0x2000, &out,
			  NULL, 0) == -EINVAL, "window past RAM accepted");
	CHECK(kh_load_elf(im.b, sizeof(im.b), ram, RAM_SIZE, 0, 0, &out, NULL, 0) == -EINVAL,
	      "empty window accepted");
	CHECK(kh_load_elf(NULL, 0, ram, RAM_SIZE, WIN_LO, WIN_SIZE, &out, NULL, 0) == -EINVAL,
	      "NULL image accepted");
}

static void test_read_file(void)
{
	void *buf = NULL;
	size_t len = 0;

	CHECK(kh_read_file("/nonexistent/vdev-test", 100, &buf, &len) == -ENOENT,
	      "missing file");
	CHECK(kh_read_file("/proc/self", 100, &buf, &len) == -EINVAL, "directory accepted");
	CHECK(kh_read_file("/proc/self/exe", 100, &buf, &len) == -EFBIG, "size limit ignored");
	CHECK(kh_read_file("/proc/self/exe", KH_IMAGE_FILE_MAX, &buf, &len) == 0 && len > 0 &&
	      memcmp(buf, ELFMAG, SELFMAG) == 0, "reading this test's own ELF");
	free(buf);
}

int main(void)
{
	ram = malloc(RAM_SIZE);
	if (!ram)
		return 99;
	test_valid();
	test_refusals();
	test_bad_arguments();
	test_read_file();
	free(ram);
	printf("%s: %zu refusal cases, %d failures\n", failures ? "FAIL" : "PASS",
	       sizeof(bad) / sizeof(bad[0]), failures);
	return failures ? 1 : 0;
}
