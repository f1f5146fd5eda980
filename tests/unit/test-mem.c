/* SPDX-License-Identifier: MIT */
/* Unit tests for vdev_mem: region table, translation, copies, dirty log,
 * custom translation ops. */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "virtio-dev/mem.h"

#define PAGE 4096u

static vdev_mem *new_mem(void)
{
	vdev_mem *mem = NULL;

	ck_assert_int_eq(vdev_mem_new(&mem), 0);
	ck_assert_ptr_nonnull(mem);
	return mem;
}

/* Dirty bits of [gpa, gpa + npages pages), asserting success. */
static uint64_t dirty_word(vdev_mem *mem, uint64_t gpa, uint64_t npages, int clear, int64_t *count)
{
	uint64_t bm[1] = {~(uint64_t)0};
	int64_t n;

	ck_assert_uint_le(npages, 64);
	n = vdev_mem_dirty_log_get(mem, gpa, npages, bm, 1, clear);
	ck_assert_int_ge(n, 0);
	ck_assert_int_eq(n, __builtin_popcountll(bm[0]));
	if (count)
		*count = n;
	return bm[0];
}

/* ---- construction ---------------------------------------------------- */

START_TEST(test_new_free)
{
	vdev_mem *mem = NULL;

	ck_assert_int_eq(vdev_mem_new(NULL), -EINVAL);
	ck_assert_int_eq(vdev_mem_new(&mem), 0);
	vdev_mem_free(mem);
	vdev_mem_free(NULL);
}
END_TEST

/* ---- region table ---------------------------------------------------- */

START_TEST(test_add_remove)
{
	static uint8_t buf[2 * PAGE];
	vdev_mem *mem = new_mem();
	void *hva;
	uint64_t contig;

	ck_assert_int_eq(vdev_mem_translate(mem, 0x10000, 1, VDEV_MEM_READ, &hva, &contig), -EFAULT);
	ck_assert_int_eq(vdev_mem_add_region(mem, 0x10000, sizeof(buf), buf, 0), 0);
	ck_assert_int_eq(vdev_mem_translate(mem, 0x10010, 4, VDEV_MEM_READ, &hva, &contig), 0);
	ck_assert_ptr_eq(hva, buf + 0x10);
	ck_assert_uint_eq(contig, 4);

	ck_assert_int_eq(vdev_mem_remove_region(mem, 0x10000), 0);
	ck_assert_int_eq(vdev_mem_translate(mem, 0x10010, 4, VDEV_MEM_READ, &hva, &contig), -EFAULT);
	ck_assert_int_eq(vdev_mem_remove_region(mem, 0x10000), -ENOENT);
	/* The slot is free again. */
	ck_assert_int_eq(vdev_mem_add_region(mem, 0x10000, sizeof(buf), buf, 0), 0);
	vdev_mem_free(mem);
}
END_TEST

START_TEST(test_overlap_refused)
{
	static uint8_t buf[0x40000];
	vdev_mem *mem = new_mem();
	/* Existing: [0x10000, 0x20000) and [0x30000, 0x38000). */
	const struct {
		uint64_t gpa, size;
	} bad[] = {
		{0x10000, 0x10000}, /* identical */
		{0x10000, 1},       /* same start, shorter */
		{0x8000, 0x8001},   /* ends on the first byte */
		{0x1ffff, 0x10},    /* starts on the last byte */
		{0x14000, 0x1000},  /* strictly inside */
		{0x8000, 0x20000},  /* contains it */
		{0x18000, 0x10000}, /* starts inside, ends in the gap */
		{0x28000, 0x10000}, /* starts in the gap, ends inside the second */
		{0x1f000, 0x12000}, /* bridges both */
		{0x0, 0x40000},     /* covers both */
	};
	size_t i;

	ck_assert_int_eq(vdev_mem_add_region(mem, 0x10000, 0x10000, buf, 0), 0);
	ck_assert_int_eq(vdev_mem_add_region(mem, 0x30000, 0x8000, buf, 0), 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(vdev_mem_add_region(mem, bad[i].gpa, bad[i].size, buf, 0) == -EEXIST,
			      "overlap %zu accepted", i);

	/* Touching is not overlapping: exactly adjacent on both sides, and filling
	 * the gap exactly. */
	ck_assert_int_eq(vdev_mem_add_region(mem, 0xf000, 0x1000, buf, 0), 0);
	ck_assert_int_eq(vdev_mem_add_region(mem, 0x20000, 0x10000, buf, 0), 0);
	ck_assert_int_eq(vdev_mem_add_region(mem, 0x38000, 0x1, buf, 0), 0);
	vdev_mem_free(mem);
}
END_TEST

START_TEST(test_add_invalid)
{
	static uint8_t buf[PAGE];
	vdev_mem *mem = new_mem();

	ck_assert_int_eq(vdev_mem_add_region(NULL, 0, PAGE, buf, 0), -EINVAL);
	ck_assert_int_eq(vdev_mem_add_region(mem, 0, 0, buf, 0), -EINVAL);
	ck_assert_int_eq(vdev_mem_add_region(mem, 0, PAGE, NULL, 0), -EINVAL);
	ck_assert_int_eq(vdev_mem_add_region(mem, 0, PAGE, buf, 0x2), -EINVAL);
	ck_assert_int_eq(vdev_mem_add_region(mem, 0, PAGE, buf, 0x80000000u), -EINVAL);
	/* gpa + size wraps past 2^64. */
	ck_assert_int_eq(vdev_mem_add_region(mem, UINT64_MAX - 0xfff, 0x2000, buf, 0), -EINVAL);
	ck_assert_int_eq(vdev_mem_add_region(mem, 1, UINT64_MAX, buf, 0), -EINVAL);
	ck_assert_int_eq(vdev_mem_add_region(mem, UINT64_MAX, 2, buf, 0), -EINVAL);
	/* Nothing was added by the refusals. */
	ck_assert_ptr_null(vdev_mem_ptr(mem, 0, 1, VDEV_MEM_READ));

	/* A region may end exactly at 2^64 (its last byte is UINT64_MAX). */
	ck_assert_int_eq(vdev_mem_add_region(mem, UINT64_MAX - (PAGE - 1), PAGE, buf, 0), 0);
	ck_assert_ptr_eq(vdev_mem_ptr(mem, UINT64_MAX, 1, VDEV_MEM_READ), buf + PAGE - 1);
	vdev_mem_free(mem);
}
END_TEST

START_TEST(test_table_full)
{
	static uint8_t buf[VDEV_MEM_MAX_REGIONS];
	vdev_mem *mem = new_mem();
	uint32_t i, k;

	/* Insert in a scrambled order (7 is coprime with 509) so the sorted
	 * insertion and the binary search are both exercised. */
	for (i = 0; i < VDEV_MEM_MAX_REGIONS; i++) {
		k = (i * 7u) % VDEV_MEM_MAX_REGIONS;
		ck_assert_int_eq(vdev_mem_add_region(mem, (uint64_t)k * 2 * PAGE, PAGE, &buf[k], 0), 0);
	}
	ck_assert_int_eq(vdev_mem_add_region(mem, (uint64_t)VDEV_MEM_MAX_REGIONS * 2 * PAGE, PAGE,
					     buf, 0),
			 -ENOSPC);
	for (k = 0; k < VDEV_MEM_MAX_REGIONS; k++) {
		void *hva;
		uint64_t contig;

		ck_assert_int_eq(vdev_mem_translate(mem, (uint64_t)k * 2 * PAGE, 1, VDEV_MEM_READ,
						    &hva, &contig),
				 0);
		ck_assert_ptr_eq(hva, &buf[k]);
		/* The gaps between regions are unmapped. */
		ck_assert_int_eq(vdev_mem_translate(mem, (uint64_t)k * 2 * PAGE + PAGE, 1,
						    VDEV_MEM_READ, &hva, &contig),
				 -EFAULT);
	}
	/* Removing one makes room for exactly one more. */
	ck_assert_int_eq(vdev_mem_remove_region(mem, 10 * 2 * PAGE), 0);
	ck_assert_int_eq(vdev_mem_add_region(mem, (uint64_t)VDEV_MEM_MAX_REGIONS * 2 * PAGE, PAGE,
					     buf, 0),
			 0);
	ck_assert_int_eq(vdev_mem_add_region(mem, 10 * 2 * PAGE, PAGE, buf, 0), -ENOSPC);
	vdev_mem_free(mem);
}
END_TEST

START_TEST(test_remove_unknown)
{
	static uint8_t buf[PAGE];
	vdev_mem *mem = new_mem();

	ck_assert_int_eq(vdev_mem_remove_region(NULL, 0), -EINVAL);
	ck_assert_int_eq(vdev_mem_remove_region(mem, 0), -ENOENT);
	ck_assert_int_eq(vdev_mem_add_region(mem, 0x1000, PAGE, buf, 0), 0);
	/* Only the exact start identifies a region. */
	ck_assert_int_eq(vdev_mem_remove_region(mem, 0x1001), -ENOENT);
	ck_assert_int_eq(vdev_mem_remove_region(mem, 0x0), -ENOENT);
	ck_assert_int_eq(vdev_mem_remove_region(mem, 0x2000), -ENOENT);
	ck_assert_ptr_nonnull(vdev_mem_ptr(mem, 0x1000, PAGE, VDEV_MEM_READ));
	vdev_mem_free(mem);
}
END_TEST

/* ---- translation ----------------------------------------------------- */

START_TEST(test_translate)
{
	static uint8_t a[PAGE], b[PAGE];
	vdev_mem *mem = new_mem();
	void *hva;
	uint64_t contig;

	ck_assert_int_eq(vdev_mem_add_region(mem, 0x1000, PAGE, a, 0), 0);
	ck_assert_int_eq(vdev_mem_add_region(mem, 0x2000, PAGE, b, 0), 0);

	/* Inside. */
	ck_assert_int_eq(vdev_mem_translate(mem, 0x1100, 0x100, VDEV_MEM_READ, &hva, &contig), 0);
	ck_assert_ptr_eq(hva, a + 0x100);
	ck_assert_uint_eq(contig, 0x100);
	/* First byte, whole region. */
	ck_assert_int_eq(vdev_mem_translate(mem, 0x1000, PAGE, VDEV_MEM_WRITE, &hva, &contig), 0);
	ck_assert_ptr_eq(hva, a);
	ck_assert_uint_eq(contig, PAGE);
	/* Last byte. */
	ck_assert_int_eq(vdev_mem_translate(mem, 0x1fff, 1, VDEV_MEM_READ, &hva, &contig), 0);
	ck_assert_ptr_eq(hva, a + PAGE - 1);
	ck_assert_uint_eq(contig, 1);
	/* Straddling into the next region: clipped at the region end even though
	 * the next byte is mapped (elsewhere in host memory). */
	ck_assert_int_eq(vdev_mem_translate(mem, 0x1ff0, 0x40, VDEV_MEM_READ, &hva, &contig), 0);
	ck_assert_ptr_eq(hva, a + PAGE - 0x10);
	ck_assert_uint_eq(contig, 0x10);
	/* Straddling into unmapped space: clipped too. */
	ck_assert_int_eq(vdev_mem_translate(mem, 0x2ffe, 0x1000, VDEV_MEM_READ, &hva, &contig), 0);
	ck_assert_ptr_eq(hva, b + PAGE - 2);
	ck_assert_uint_eq(contig, 2);
	/* Enormous len, still clipped. */
	ck_assert_int_eq(vdev_mem_translate(mem, 0x2000, UINT64_MAX - 0x2000 + 1, VDEV_MEM_READ,
					    &hva, &contig),
			 0);
	ck_assert_uint_eq(contig, PAGE);

	/* Unmapped: before, in a gap, after. */
	ck_assert_int_eq(vdev_mem_translate(mem, 0xfff, 2, VDEV_MEM_READ, &hva, &contig), -EFAULT);
	ck_assert_int_eq(vdev_mem_translate(mem, 0x3000, 1, VDEV_MEM_READ, &hva, &contig), -EFAULT);
	ck_assert_int_eq(vdev_mem_translate(mem, UINT64_MAX, 1, VDEV_MEM_READ, &hva, &contig),
			 -EFAULT);

	/* Invalid arguments. */
	ck_assert_int_eq(vdev_mem_translate(mem, 0x1000, 0, VDEV_MEM_READ, &hva, &contig), -EINVAL);
	ck_assert_int_eq(vdev_mem_translate(mem, 0x1000, UINT64_MAX, VDEV_MEM_READ, &hva, &contig),
			 -EINVAL);
	ck_assert_int_eq(vdev_mem_translate(mem, UINT64_MAX, 2, VDEV_MEM_READ, &hva, &contig),
			 -EINVAL);
	ck_assert_int_eq(vdev_mem_translate(NULL, 0x1000, 1, VDEV_MEM_READ, &hva, &contig), -EINVAL);
	ck_assert_int_eq(vdev_mem_translate(mem, 0x1000, 1, VDEV_MEM_READ, NULL, &contig), -EINVAL);
	ck_assert_int_eq(vdev_mem_translate(mem, 0x1000, 1, VDEV_MEM_READ, &hva, NULL), -EINVAL);
	ck_assert_int_eq(vdev_mem_translate(mem, 0x1000, 1, 0x4, &hva, &contig), -EINVAL);
	vdev_mem_free(mem);
}
END_TEST

START_TEST(test_readonly)
{
	static uint8_t rw[PAGE], ro[PAGE];
	uint8_t data[32], back[32];
	vdev_mem *mem = new_mem();
	void *hva;
	uint64_t contig;

	memset(rw, 0xaa, sizeof(rw));
	memset(ro, 0x55, sizeof(ro));
	ck_assert_int_eq(vdev_mem_add_region(mem, 0x0, PAGE, rw, 0), 0);
	ck_assert_int_eq(vdev_mem_add_region(mem, 0x1000, PAGE, ro, VDEV_MEM_F_READONLY), 0);

	ck_assert_int_eq(vdev_mem_translate(mem, 0x1000, 8, VDEV_MEM_READ, &hva, &contig), 0);
	ck_assert_ptr_eq(hva, ro);
	ck_assert_int_eq(vdev_mem_translate(mem, 0x1000, 8, VDEV_MEM_WRITE, &hva, &contig), -EFAULT);
	ck_assert_int_eq(vdev_mem_translate(mem, 0x1000, 8, VDEV_MEM_READ | VDEV_MEM_WRITE, &hva,
					    &contig),
			 -EFAULT);
	ck_assert_ptr_null(vdev_mem_ptr(mem, 0x1000, 8, VDEV_MEM_WRITE));
	ck_assert_ptr_eq(vdev_mem_ptr(mem, 0x1000, 8, VDEV_MEM_READ), ro);

	memset(data, 0x11, sizeof(data));
	ck_assert_int_eq(vdev_mem_write(mem, 0x1008, data, sizeof(data)), -EFAULT);
	ck_assert_uint_eq(ro[8], 0x55);
	/* A write that starts in writable memory and runs into the read-only
	 * region is refused before any byte lands. */
	ck_assert_int_eq(vdev_mem_write(mem, 0x1000 - 16, data, sizeof(data)), -EFAULT);
	ck_assert_uint_eq(rw[PAGE - 16], 0xaa);
	ck_assert_uint_eq(rw[PAGE - 1], 0xaa);
	ck_assert_uint_eq(ro[0], 0x55);

	/* Reading across both is fine. */
	ck_assert_int_eq(vdev_mem_read(mem, 0x1000 - 16, back, sizeof(back)), 0);
	ck_assert_uint_eq(back[0], 0xaa);
	ck_assert_uint_eq(back[15], 0xaa);
	ck_assert_uint_eq(back[16], 0x55);
	ck_assert_uint_eq(back[31], 0x55);
	vdev_mem_free(mem);
}
END_TEST

START_TEST(test_ptr)
{
	static uint8_t a[PAGE], b[PAGE];
	vdev_mem *mem = new_mem();

	ck_assert_int_eq(vdev_mem_add_region(mem, 0x1000, PAGE, a, 0), 0);
	ck_assert_int_eq(vdev_mem_add_region(mem, 0x2000, PAGE, b, 0), 0);
	ck_assert_ptr_eq(vdev_mem_ptr(mem, 0x1000, PAGE, VDEV_MEM_READ), a);
	ck_assert_ptr_eq(vdev_mem_ptr(mem, 0x1ff8, 8, VDEV_MEM_WRITE), a + PAGE - 8);
	ck_assert_ptr_eq(vdev_mem_ptr(mem, 0x2000, 8, VDEV_MEM_READ), b);
	/* Mapped but not contiguous in host memory. */
	ck_assert_ptr_null(vdev_mem_ptr(mem, 0x1ff8, 16, VDEV_MEM_READ));
	/* Runs off the end into unmapped memory. */
	ck_assert_ptr_null(vdev_mem_ptr(mem, 0x2ff8, 16, VDEV_MEM_READ));
	ck_assert_ptr_null(vdev_mem_ptr(mem, 0x0, 1, VDEV_MEM_READ));
	ck_assert_ptr_null(vdev_mem_ptr(mem, 0x1000, 0, VDEV_MEM_READ));
	ck_assert_ptr_null(vdev_mem_ptr(mem, 0x1000, UINT64_MAX, VDEV_MEM_READ));
	ck_assert_ptr_null(vdev_mem_ptr(NULL, 0x1000, 1, VDEV_MEM_READ));
	vdev_mem_free(mem);
}
END_TEST

START_TEST(test_read_write_across)
{
	static uint8_t a[PAGE], b[PAGE];
	uint8_t data[64], back[64];
	vdev_mem *mem = new_mem();
	size_t i;

	ck_assert_int_eq(vdev_mem_add_region(mem, 0x1000, PAGE, a, 0), 0);
	ck_assert_int_eq(vdev_mem_add_region(mem, 0x2000, PAGE, b, 0), 0);
	for (i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i + 1);

	ck_assert_int_eq(vdev_mem_write(mem, 0x2000 - 24, data, sizeof(data)), 0);
	ck_assert_int_eq(memcmp(a + PAGE - 24, data, 24), 0);
	ck_assert_int_eq(memcmp(b, data + 24, sizeof(data) - 24), 0);
	ck_assert_uint_eq(b[sizeof(data) - 24], 0);

	memset(back, 0, sizeof(back));
	ck_assert_int_eq(vdev_mem_read(mem, 0x2000 - 24, back, sizeof(back)), 0);
	ck_assert_int_eq(memcmp(back, data, sizeof(data)), 0);

	/* Running off the mapped area faults (read and write). */
	ck_assert_int_eq(vdev_mem_read(mem, 0x3000 - 8, back, 16), -EFAULT);
	ck_assert_int_eq(vdev_mem_write(mem, 0x3000 - 8, data, 16), -EFAULT);
	ck_assert_uint_eq(b[PAGE - 8], 0);
	ck_assert_int_eq(vdev_mem_read(mem, 0x1000 - 8, back, 16), -EFAULT);

	/* Invalid arguments. */
	ck_assert_int_eq(vdev_mem_read(mem, 0x1000, back, 0), -EINVAL);
	ck_assert_int_eq(vdev_mem_read(mem, 0x1000, NULL, 1), -EINVAL);
	ck_assert_int_eq(vdev_mem_read(NULL, 0x1000, back, 1), -EINVAL);
	ck_assert_int_eq(vdev_mem_read(mem, UINT64_MAX, back, 2), -EINVAL);
	ck_assert_int_eq(vdev_mem_write(mem, 0x1000, data, 0), -EINVAL);
	ck_assert_int_eq(vdev_mem_write(mem, 0x1000, NULL, 1), -EINVAL);
	ck_assert_int_eq(vdev_mem_write(NULL, 0x1000, data, 1), -EINVAL);
	ck_assert_int_eq(vdev_mem_write(mem, UINT64_MAX, data, 2), -EINVAL);
	vdev_mem_free(mem);
}
END_TEST

/* ---- dirty log ------------------------------------------------------- */

START_TEST(test_dirty_off)
{
	static uint8_t a[16 * PAGE];
	uint64_t bm[1];
	uint8_t x = 1;
	vdev_mem *mem = new_mem();

	ck_assert_int_eq(vdev_mem_add_region(mem, 0, sizeof(a), a, 0), 0);
	ck_assert_int_eq(vdev_mem_dirty_log_get(mem, 0, 16, bm, 1, 0), -ENODATA);
	/* Marks while off are not recorded (and do not crash). */
	ck_assert_int_eq(vdev_mem_write(mem, 0x3000, &x, 1), 0);
	vdev_mem_mark_dirty(mem, 0x4000, PAGE);
	ck_assert_int_eq(vdev_mem_dirty_log_enable(mem, 1), 0);
	ck_assert_uint_eq(dirty_word(mem, 0, 16, 0, NULL), 0);

	/* Disable drops the log. */
	ck_assert_int_eq(vdev_mem_write(mem, 0x3000, &x, 1), 0);
	ck_assert_uint_eq(dirty_word(mem, 0, 16, 0, NULL), 1u << 3);
	ck_assert_int_eq(vdev_mem_dirty_log_enable(mem, 0), 0);
	ck_assert_int_eq(vdev_mem_dirty_log_get(mem, 0, 16, bm, 1, 0), -ENODATA);
	ck_assert_int_eq(vdev_mem_dirty_log_enable(mem, 0), 0);
	ck_assert_int_eq(vdev_mem_dirty_log_enable(NULL, 1), -EINVAL);
	vdev_mem_free(mem);
}
END_TEST

START_TEST(test_dirty_exact_pages)
{
	static uint8_t a[16 * PAGE], b[16 * PAGE];
	uint8_t data[64] = {0};
	int64_t n;
	vdev_mem *mem = new_mem();

	ck_assert_int_eq(vdev_mem_add_region(mem, 0, sizeof(a), a, 0), 0);
	ck_assert_int_eq(vdev_mem_add_region(mem, sizeof(a), sizeof(b), b, 0), 0);
	ck_assert_int_eq(vdev_mem_dirty_log_enable(mem, 1), 0);
	ck_assert_uint_eq(dirty_word(mem, 0, 16, 0, &n), 0);
	ck_assert_int_eq(n, 0);

	/* One byte in page 3. */
	ck_assert_int_eq(vdev_mem_write(mem, 3 * PAGE + 100, data, 1), 0);
	ck_assert_uint_eq(dirty_word(mem, 0, 16, 1, &n), UINT64_C(1) << 3);
	ck_assert_int_eq(n, 1);
	/* The last byte of page 4 and the first of page 5, nothing else. */
	ck_assert_int_eq(vdev_mem_write(mem, 5 * PAGE - 1, data, 2), 0);
	ck_assert_uint_eq(dirty_word(mem, 0, 16, 1, &n), UINT64_C(3) << 4);
	ck_assert_int_eq(n, 2);
	/* Exactly one full page marks only that page. */
	ck_assert_int_eq(vdev_mem_write(mem, 7 * PAGE, a, PAGE), 0);
	ck_assert_uint_eq(dirty_word(mem, 0, 16, 1, NULL), UINT64_C(1) << 7);

	/* Straddling the two regions: page 15 of the first, page 0 of the second. */
	ck_assert_int_eq(vdev_mem_write(mem, sizeof(a) - 8, data, 16), 0);
	ck_assert_uint_eq(dirty_word(mem, 0, 16, 0, NULL), UINT64_C(1) << 15);
	ck_assert_uint_eq(dirty_word(mem, sizeof(a), 16, 0, NULL), 1);

	/* Query without clear keeps the bits... */
	ck_assert_uint_eq(dirty_word(mem, 0, 16, 0, NULL), UINT64_C(1) << 15);
	/* ...a sub-range query sees the same page at its own bit position... */
	ck_assert_uint_eq(dirty_word(mem, 12 * PAGE, 4, 0, NULL), UINT64_C(1) << 3);
	/* ...with clear returns them once and then they are gone. */
	ck_assert_uint_eq(dirty_word(mem, 12 * PAGE, 4, 1, &n), UINT64_C(1) << 3);
	ck_assert_int_eq(n, 1);
	ck_assert_uint_eq(dirty_word(mem, 0, 16, 0, NULL), 0);
	ck_assert_uint_eq(dirty_word(mem, sizeof(a), 16, 1, NULL), 1);
	ck_assert_uint_eq(dirty_word(mem, sizeof(a), 16, 0, NULL), 0);

	/* mark_dirty directly: partly unmapped ranges mark the mapped part. */
	vdev_mem_mark_dirty(mem, 2 * sizeof(a) - PAGE, 5 * PAGE);
	ck_assert_uint_eq(dirty_word(mem, sizeof(a), 16, 1, NULL), UINT64_C(1) << 15);
	/* A range that wraps marks up to the end of the address space: nothing
	 * mapped there, and nothing elsewhere. */
	vdev_mem_mark_dirty(mem, UINT64_MAX - 10, 100);
	vdev_mem_mark_dirty(mem, 0, 0);
	ck_assert_uint_eq(dirty_word(mem, 0, 16, 0, NULL), 0);
	ck_assert_uint_eq(dirty_word(mem, sizeof(a), 16, 0, NULL), 0);

	/* Re-enabling clears every bitmap. */
	vdev_mem_mark_dirty(mem, 0, 2 * sizeof(a));
	ck_assert_uint_eq(dirty_word(mem, 0, 16, 0, NULL), 0xffff);
	ck_assert_int_eq(vdev_mem_dirty_log_enable(mem, 1), 0);
	ck_assert_uint_eq(dirty_word(mem, 0, 16, 0, NULL), 0);
	ck_assert_uint_eq(dirty_word(mem, sizeof(a), 16, 0, NULL), 0);
	vdev_mem_free(mem);
}
END_TEST

START_TEST(test_dirty_large_bitmap)
{
	/* More than one bitmap word, with the query window not word aligned. */
	const uint64_t pages = 200;
	uint8_t *a = malloc(pages * PAGE);
	uint64_t bm[4];
	vdev_mem *mem = new_mem();
	int64_t n;
	uint64_t p;

	ck_assert_ptr_nonnull(a);
	ck_assert_int_eq(vdev_mem_add_region(mem, 0x100000, pages * PAGE, a, 0), 0);
	ck_assert_int_eq(vdev_mem_dirty_log_enable(mem, 1), 0);
	for (p = 0; p < pages; p += 3)
		vdev_mem_mark_dirty(mem, 0x100000 + p * PAGE + 17, 1);

	/* Query pages 10..199 (190 pages, 3 words). */
	memset(bm, 0xff, sizeof(bm));
	n = vdev_mem_dirty_log_get(mem, 0x100000 + 10 * PAGE, 190, bm, 3, 0);
	ck_assert_int_eq(n, 63); /* multiples of 3 in [12, 198] */
	for (p = 0; p < 190; p++)
		ck_assert_msg(!!(bm[p / 64] & (UINT64_C(1) << (p % 64))) == ((p + 10) % 3 == 0),
			      "page %u", (unsigned)(p + 10));
	/* Words beyond what npages needs are left alone. */
	ck_assert_uint_eq(bm[3], ~(uint64_t)0);
	/* Bits past npages in the last word are zero. */
	ck_assert_uint_eq(bm[2] >> (190 - 128), 0);

	n = vdev_mem_dirty_log_get(mem, 0x100000, pages, bm, 4, 1);
	ck_assert_int_eq(n, 67);
	n = vdev_mem_dirty_log_get(mem, 0x100000, pages, bm, 4, 0);
	ck_assert_int_eq(n, 0);
	vdev_mem_free(mem);
	free(a);
}
END_TEST

START_TEST(test_dirty_get_invalid)
{
	static uint8_t a[16 * PAGE], b[16 * PAGE], c[65 * PAGE];
	uint64_t bm[2];
	vdev_mem *mem = new_mem();

	ck_assert_int_eq(vdev_mem_add_region(mem, 0x10000, sizeof(a), a, 0), 0);
	ck_assert_int_eq(vdev_mem_add_region(mem, 0x20000, sizeof(b), b, 0), 0);
	ck_assert_int_eq(vdev_mem_dirty_log_enable(mem, 1), 0);

	ck_assert_int_eq(vdev_mem_dirty_log_get(mem, 0x10000, 16, bm, 1, 0), 0);
	/* Unaligned gpa. */
	ck_assert_int_eq(vdev_mem_dirty_log_get(mem, 0x10001, 1, bm, 1, 0), -EINVAL);
	ck_assert_int_eq(vdev_mem_dirty_log_get(mem, 0x10800, 1, bm, 1, 0), -EINVAL);
	/* Bitmap too small: 65 pages need 2 words. */
	ck_assert_int_eq(vdev_mem_add_region(mem, 0x100000, sizeof(c), c, 0), 0);
	ck_assert_int_eq(vdev_mem_dirty_log_get(mem, 0x100000, 65, bm, 1, 0), -EINVAL);
	ck_assert_int_eq(vdev_mem_dirty_log_get(mem, 0x100000, 65, bm, 2, 0), 0);
	ck_assert_int_eq(vdev_mem_dirty_log_get(mem, 0x10000, 16, bm, 0, 0), -EINVAL);
	/* Range past the end of the region, even into an adjacent one. */
	ck_assert_int_eq(vdev_mem_dirty_log_get(mem, 0x10000, 17, bm, 1, 0), -EINVAL);
	ck_assert_int_eq(vdev_mem_dirty_log_get(mem, 0x1f000, 2, bm, 1, 0), -EINVAL);
	/* Range entirely unmapped, or starting before the region. */
	ck_assert_int_eq(vdev_mem_dirty_log_get(mem, 0x40000, 1, bm, 1, 0), -EINVAL);
	ck_assert_int_eq(vdev_mem_dirty_log_get(mem, 0xf000, 2, bm, 1, 0), -EINVAL);
	/* npages 0, npages so large that the range wraps, NULL bitmap. */
	ck_assert_int_eq(vdev_mem_dirty_log_get(mem, 0x10000, 0, bm, 1, 0), -EINVAL);
	ck_assert_int_eq(vdev_mem_dirty_log_get(mem, 0x10000, UINT64_MAX, bm, UINT64_MAX, 0),
			 -EINVAL);
	ck_assert_int_eq(vdev_mem_dirty_log_get(mem, 0x10000, UINT64_C(1) << 52, bm, UINT64_MAX, 0),
			 -EINVAL);
	ck_assert_int_eq(vdev_mem_dirty_log_get(mem, 0x10000, 1, NULL, 1, 0), -EINVAL);
	ck_assert_int_eq(vdev_mem_dirty_log_get(NULL, 0x10000, 1, bm, 1, 0), -EINVAL);
	vdev_mem_free(mem);
}
END_TEST

START_TEST(test_dirty_unaligned_region)
{
	static uint8_t a[0x2000], b[0x2000], c[0x800];
	uint8_t x = 7;
	vdev_mem *mem = new_mem();
	uint64_t bm[1];

	/* a covers [0x1800, 0x3800): pages 1, 2 and 3, none of them whole. */
	ck_assert_int_eq(vdev_mem_add_region(mem, 0x1800, sizeof(a), a, 0), 0);
	ck_assert_int_eq(vdev_mem_dirty_log_enable(mem, 1), 0);
	ck_assert_int_eq(vdev_mem_write(mem, 0x1800, &x, 1), 0);
	ck_assert_int_eq(vdev_mem_write(mem, 0x37ff, &x, 1), 0);
	/* The query may start at the page holding the region start, though that
	 * address itself is unmapped. */
	ck_assert_uint_eq(dirty_word(mem, 0x1000, 3, 0, NULL), 0x5);
	ck_assert_uint_eq(dirty_word(mem, 0x3000, 1, 0, NULL), 0x1);
	ck_assert_int_eq(vdev_mem_dirty_log_get(mem, 0x0, 2, bm, 1, 0), -EINVAL);
	ck_assert_int_eq(vdev_mem_dirty_log_get(mem, 0x1000, 4, bm, 1, 0), -EINVAL);
	ck_assert_uint_eq(dirty_word(mem, 0x1000, 3, 1, NULL), 0x5);
	ck_assert_uint_eq(dirty_word(mem, 0x1000, 3, 0, NULL), 0);

	/* b starts where a ends, in the middle of page 3; c sits in the first
	 * half of page 1, before a. Each region keeps its own bit for a shared
	 * page; a query reports the page when any part of it was written. */
	ck_assert_int_eq(vdev_mem_add_region(mem, 0x3800, sizeof(b), b, 0), 0);
	ck_assert_int_eq(vdev_mem_add_region(mem, 0x1000, sizeof(c), c, 0), 0);
	ck_assert_int_eq(vdev_mem_dirty_log_enable(mem, 1), 0);
	ck_assert_int_eq(vdev_mem_write(mem, 0x3900, &x, 1), 0); /* b, page 3 */
	ck_assert_int_eq(vdev_mem_write(mem, 0x1000, &x, 1), 0); /* c, page 1 */
	ck_assert_uint_eq(dirty_word(mem, 0x1000, 3, 0, NULL), 0x5);
	ck_assert_uint_eq(dirty_word(mem, 0x3000, 3, 0, NULL), 0x1);
	ck_assert_uint_eq(dirty_word(mem, 0x3000, 1, 1, NULL), 0x1);
	ck_assert_uint_eq(dirty_word(mem, 0x1000, 1, 1, NULL), 0x1);
	ck_assert_uint_eq(dirty_word(mem, 0x1000, 3, 0, NULL), 0);
	ck_assert_uint_eq(dirty_word(mem, 0x3000, 3, 0, NULL), 0);
	vdev_mem_free(mem);
}
END_TEST

/* 4 markers interleave pages so neighbouring bits of a word are set by
 * different threads while a 5th thread queries and clears. Every page is
 * marked exactly once per round, so with an atomic query-and-clear each page
 * must be reported exactly once: never lost, never twice. */
#define CONC_PAGES 8192u
#define CONC_MARKERS 4u
#define CONC_BASE UINT64_C(0x40000000)

struct conc {
	vdev_mem *mem;
	unsigned id;
	int done; /* markers finished (atomic counter) */
	uint64_t seen[CONC_PAGES / 64];
	int64_t reported;
	int error;
};

static void *conc_marker(void *arg)
{
	struct conc *c = arg;
	unsigned id = __atomic_fetch_add(&c->id, 1, __ATOMIC_RELAXED);
	uint64_t p;

	for (p = id; p < CONC_PAGES; p += CONC_MARKERS)
		vdev_mem_mark_dirty(c->mem, CONC_BASE + p * PAGE + (p % 7), 1);
	__atomic_fetch_add(&c->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void conc_collect(struct conc *c)
{
	uint64_t bm[CONC_PAGES / 64];
	int64_t n = vdev_mem_dirty_log_get(c->mem, CONC_BASE, CONC_PAGES, bm, CONC_PAGES / 64, 1);
	size_t w;

	if (n < 0) {
		c->error = 1;
		return;
	}
	c->reported += n;
	for (w = 0; w < CONC_PAGES / 64; w++) {
		if (c->seen[w] & bm[w])
			c->error = 1; /* reported twice */
		c->seen[w] |= bm[w];
	}
}

static void *conc_querier(void *arg)
{
	struct conc *c = arg;

	while (__atomic_load_n(&c->done, __ATOMIC_ACQUIRE) < (int)CONC_MARKERS)
		conc_collect(c);
	return NULL;
}

START_TEST(test_dirty_concurrent)
{
	void *region = mmap(NULL, (size_t)CONC_PAGES * PAGE, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	vdev_mem *mem = new_mem();
	int round;

	ck_assert_ptr_ne(region, MAP_FAILED);
	ck_assert_int_eq(vdev_mem_add_region(mem, CONC_BASE, (uint64_t)CONC_PAGES * PAGE, region, 0),
			 0);
	ck_assert_int_eq(vdev_mem_dirty_log_enable(mem, 1), 0);
	for (round = 0; round < 20; round++) {
		static struct conc c;
		pthread_t th[CONC_MARKERS + 1];
		unsigned i;
		size_t w;

		memset(&c, 0, sizeof(c));
		c.mem = mem;
		ck_assert_int_eq(pthread_create(&th[CONC_MARKERS], NULL, conc_querier, &c), 0);
		for (i = 0; i < CONC_MARKERS; i++)
			ck_assert_int_eq(pthread_create(&th[i], NULL, conc_marker, &c), 0);
		for (i = 0; i <= CONC_MARKERS; i++)
			ck_assert_int_eq(pthread_join(th[i], NULL), 0);
		conc_collect(&c); /* what remains after the querier stopped */
		ck_assert_int_eq(c.error, 0);
		for (w = 0; w < CONC_PAGES / 64; w++)
			ck_assert_msg(c.seen[w] == ~(uint64_t)0, "round %d word %zu: %016llx", round,
				      w, (unsigned long long)c.seen[w]);
		ck_assert_int_eq(c.reported, CONC_PAGES);
	}
	vdev_mem_free(mem);
	munmap(region, (size_t)CONC_PAGES * PAGE);
}
END_TEST

/* ---- custom ops ------------------------------------------------------ */

struct fake {
	uint8_t mem[256];    /* guest [0x1000, 0x1100), in chunks of 16 bytes */
	int mode;            /* 0 good, 1 contig 0, 2 contig > len, 3 NULL hva, 4 -EIO */
	int calls;
	uint64_t last_gpa, last_len;
	uint32_t last_access;
	int dirty_calls;
	uint64_t dirty_gpa, dirty_len;
};

static int fake_translate(void *opaque, uint64_t gpa, uint64_t len, uint32_t access, void **hva,
			  uint64_t *contig)
{
	struct fake *f = opaque;
	uint64_t chunk_left;

	f->calls++;
	f->last_gpa = gpa;
	f->last_len = len;
	f->last_access = access;
	if (gpa < 0x1000 || gpa >= 0x1100)
		return -EFAULT;
	chunk_left = 16 - (gpa % 16);
	*hva = &f->mem[gpa - 0x1000];
	*contig = len < chunk_left ? len : chunk_left;
	switch (f->mode) {
	case 1:
		*contig = 0;
		break;
	case 2:
		*contig = len + 1;
		break;
	case 3:
		*hva = NULL;
		break;
	case 4:
		return -EIO;
	}
	return 0;
}

static void fake_mark_dirty(void *opaque, uint64_t gpa, uint64_t len)
{
	struct fake *f = opaque;

	f->dirty_calls++;
	f->dirty_gpa = gpa;
	f->dirty_len = len;
}

START_TEST(test_custom)
{
	static struct fake f;
	struct vdev_mem_ops ops = VDEV_MEM_OPS_INIT;
	vdev_mem *mem = NULL;
	uint8_t data[40], back[40];
	uint64_t bm[1], contig;
	void *hva;
	size_t i;

	memset(&f, 0, sizeof(f));
	ops.translate = fake_translate;
	ops.mark_dirty = fake_mark_dirty;
	ck_assert_int_eq(vdev_mem_new_custom(&ops, &f, &mem), 0);
	/* The ops were copied: changing ours afterwards has no effect. */
	ops.translate = NULL;
	ops.mark_dirty = NULL;

	ck_assert_int_eq(vdev_mem_translate(mem, 0x1004, 100, VDEV_MEM_WRITE, &hva, &contig), 0);
	ck_assert_ptr_eq(hva, &f.mem[4]);
	ck_assert_uint_eq(contig, 12);
	ck_assert_int_eq(f.calls, 1);
	ck_assert_uint_eq(f.last_gpa, 0x1004);
	ck_assert_uint_eq(f.last_len, 100);
	ck_assert_uint_eq(f.last_access, VDEV_MEM_WRITE);
	ck_assert_int_eq(vdev_mem_translate(mem, 0x2000, 1, VDEV_MEM_READ, &hva, &contig), -EFAULT);
	/* Argument checks happen before the callback: never called with len 0. */
	f.calls = 0;
	ck_assert_int_eq(vdev_mem_translate(mem, 0x1000, 0, VDEV_MEM_READ, &hva, &contig), -EINVAL);
	ck_assert_int_eq(vdev_mem_translate(mem, UINT64_MAX, 2, VDEV_MEM_READ, &hva, &contig),
			 -EINVAL);
	ck_assert_int_eq(f.calls, 0);

	/* Copies go chunk by chunk; writes are reported to ops->mark_dirty. */
	for (i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(0x80 + i);
	ck_assert_int_eq(vdev_mem_write(mem, 0x100a, data, sizeof(data)), 0);
	ck_assert_int_eq(memcmp(&f.mem[0xa], data, sizeof(data)), 0);
	ck_assert_int_eq(f.dirty_calls, 1);
	ck_assert_uint_eq(f.dirty_gpa, 0x100a);
	ck_assert_uint_eq(f.dirty_len, sizeof(data));
	ck_assert_int_eq(vdev_mem_read(mem, 0x100a, back, sizeof(back)), 0);
	ck_assert_int_eq(memcmp(back, data, sizeof(data)), 0);
	vdev_mem_mark_dirty(mem, 0x1234, 5);
	ck_assert_int_eq(f.dirty_calls, 2);
	ck_assert_uint_eq(f.dirty_gpa, 0x1234);
	ck_assert_uint_eq(f.dirty_len, 5);
	/* A faulting write writes nothing and reports nothing. */
	ck_assert_int_eq(vdev_mem_write(mem, 0x10f0, data, 32), -EFAULT);
	ck_assert_int_eq(f.dirty_calls, 2);
	ck_assert_uint_eq(f.mem[0xf0], 0);

	/* Region and dirty-log functions are not available. */
	ck_assert_int_eq(vdev_mem_add_region(mem, 0, PAGE, data, 0), -EOPNOTSUPP);
	ck_assert_int_eq(vdev_mem_remove_region(mem, 0), -EOPNOTSUPP);
	ck_assert_int_eq(vdev_mem_dirty_log_enable(mem, 1), -EOPNOTSUPP);
	ck_assert_int_eq(vdev_mem_dirty_log_enable(mem, 0), -EOPNOTSUPP);
	ck_assert_int_eq(vdev_mem_dirty_log_get(mem, 0, 1, bm, 1, 0), -EOPNOTSUPP);
	vdev_mem_free(mem);
}
END_TEST

START_TEST(test_custom_buggy_translate)
{
	static struct fake f;
	struct vdev_mem_ops ops = VDEV_MEM_OPS_INIT;
	vdev_mem *mem = NULL;
	uint8_t byte = 0;
	uint64_t contig;
	void *hva;
	int mode;

	memset(&f, 0, sizeof(f));
	ops.translate = fake_translate;
	ck_assert_int_eq(vdev_mem_new_custom(&ops, &f, &mem), 0);
	for (mode = 1; mode <= 4; mode++) {
		f.mode = mode;
		hva = (void *)&byte;
		contig = 77;
		ck_assert_msg(vdev_mem_translate(mem, 0x1000, 8, VDEV_MEM_READ, &hva, &contig) ==
				      -EFAULT,
			      "mode %d accepted", mode);
		/* Outputs are untouched on failure. */
		ck_assert_ptr_eq(hva, &byte);
		ck_assert_uint_eq(contig, 77);
		ck_assert_ptr_null(vdev_mem_ptr(mem, 0x1000, 8, VDEV_MEM_READ));
		/* read/write must not loop forever on contig 0 or overrun on > len. */
		ck_assert_int_eq(vdev_mem_read(mem, 0x1000, &byte, 1), -EFAULT);
		ck_assert_int_eq(vdev_mem_write(mem, 0x1000, &byte, 1), -EFAULT);
	}
	/* No mark_dirty op: marking is a no-op. */
	f.mode = 0;
	ck_assert_int_eq(vdev_mem_write(mem, 0x1000, &byte, 1), 0);
	vdev_mem_mark_dirty(mem, 0x1000, 1);
	vdev_mem_free(mem);
}
END_TEST

START_TEST(test_custom_new_invalid)
{
	struct vdev_mem_ops ops = VDEV_MEM_OPS_INIT;
	struct fake f;
	vdev_mem *mem = (vdev_mem *)&f;
	struct {
		struct vdev_mem_ops ops;
		uint64_t future;
	} bigger;

	ck_assert_int_eq(vdev_mem_new_custom(&ops, NULL, &mem), -EINVAL); /* no translate */
	ck_assert_ptr_eq(mem, (vdev_mem *)&f);
	ops.translate = fake_translate;
	ck_assert_int_eq(vdev_mem_new_custom(NULL, NULL, &mem), -EINVAL);
	ck_assert_int_eq(vdev_mem_new_custom(&ops, NULL, NULL), -EINVAL);
	ops.struct_size = 0;
	ck_assert_int_eq(vdev_mem_new_custom(&ops, NULL, &mem), -EINVAL);
	ck_assert_ptr_eq(mem, (vdev_mem *)&f);

	/* An older caller's struct without mark_dirty: the member reads as NULL
	 * even though the caller's memory behind it holds garbage. */
	memset(&f, 0, sizeof(f));
	ops.struct_size = (uint32_t)offsetof(struct vdev_mem_ops, mark_dirty);
	ops.mark_dirty = fake_mark_dirty;
	ck_assert_int_eq(vdev_mem_new_custom(&ops, &f, &mem), 0);
	vdev_mem_mark_dirty(mem, 0x1000, 1);
	ck_assert_int_eq(f.dirty_calls, 0);
	vdev_mem_free(mem);

	/* A newer caller's larger struct is accepted. */
	memset(&bigger, 0, sizeof(bigger));
	bigger.ops.struct_size = sizeof(bigger);
	bigger.ops.translate = fake_translate;
	bigger.ops.mark_dirty = fake_mark_dirty;
	ck_assert_int_eq(vdev_mem_new_custom(&bigger.ops, &f, &mem), 0);
	vdev_mem_mark_dirty(mem, 0x1000, 1);
	ck_assert_int_eq(f.dirty_calls, 1);
	vdev_mem_free(mem);
}
END_TEST

static Suite *mem_suite(void)
{
	Suite *s = suite_create("mem");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_new_free);
	tcase_add_test(tc, test_add_remove);
	tcase_add_test(tc, test_overlap_refused);
	tcase_add_test(tc, test_add_invalid);
	tcase_add_test(tc, test_table_full);
	tcase_add_test(tc, test_remove_unknown);
	tcase_add_test(tc, test_translate);
	tcase_add_test(tc, test_readonly);
	tcase_add_test(tc, test_ptr);
	tcase_add_test(tc, test_read_write_across);
	tcase_add_test(tc, test_dirty_off);
	tcase_add_test(tc, test_dirty_exact_pages);
	tcase_add_test(tc, test_dirty_large_bitmap);
	tcase_add_test(tc, test_dirty_get_invalid);
	tcase_add_test(tc, test_dirty_unaligned_region);
	tcase_add_test(tc, test_dirty_concurrent);
	tcase_add_test(tc, test_custom);
	tcase_add_test(tc, test_custom_buggy_translate);
	tcase_add_test(tc, test_custom_new_invalid);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(mem_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
