/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for vdev_bus: range bookkeeping (overlaps, edges at 2^64, many
 * ranges), dispatch with its access info, removal and destroy, concurrency
 * (a slow device, removal during an access, dispatch during insert/remove),
 * sleep/wake ordering and undo, snapshot/restore routing.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "virtio-dev/bus.h"

/* ---- a fake bus device ---- */

struct fdev {
	uint32_t id;
	uint64_t base; /* expected base of the single range (0: not checked) */
	int reads, writes, destroyed, inflight; /* atomic */
	int bad;                                /* atomic: a check inside a callback failed */
	struct vdev_bus_access last;            /* last access (single-threaded tests) */
	uint8_t wdata[8];
	int ret;    /* what read/write return */
	int shared; /* accessed from several threads: do not record last */
	/* When block is set, read posts entered and waits for release. */
	int block;
	sem_t entered, release;
	int read_returned; /* atomic: a blocked read returned */
	/* sleep/wake */
	int sleep_ret, wake_ret;
	/* snapshot */
	uint8_t state[16];
	uint64_t state_len;
};

static int ld(const int *p)
{
	return __atomic_load_n(p, __ATOMIC_SEQ_CST);
}

static void inc(int *p)
{
	__atomic_add_fetch(p, 1, __ATOMIC_SEQ_CST);
}

static void dec(int *p)
{
	__atomic_sub_fetch(p, 1, __ATOMIC_SEQ_CST);
}

static void put_id(void *data, uint32_t size, uint32_t id)
{
	uint8_t *d = data;

	if (size >= 4) {
		d[0] = (uint8_t)id;
		d[1] = (uint8_t)(id >> 8);
		d[2] = (uint8_t)(id >> 16);
		d[3] = (uint8_t)(id >> 24);
	} else {
		d[0] = (uint8_t)id;
	}
}

static uint32_t get_u32(const uint8_t *d)
{
	return (uint32_t)d[0] | (uint32_t)d[1] << 8 | (uint32_t)d[2] << 16 | (uint32_t)d[3] << 24;
}

static void check_access(struct fdev *d, const struct vdev_bus_access *a)
{
	if (a->struct_size != sizeof(*a) || a->offset != a->address - a->base ||
	    (d->base && a->base != d->base))
		inc(&d->bad);
}

static int f_read(void *opaque, const struct vdev_bus_access *a, void *data)
{
	struct fdev *d = opaque;
	const uint8_t *p = data;
	uint32_t i;

	inc(&d->inflight);
	check_access(d, a);
	/* The bus zero-fills before calling the device. */
	for (i = 0; i < a->size; i++)
		if (p[i] != 0)
			inc(&d->bad);
	if (!d->shared)
		d->last = *a;
	if (d->block) {
		sem_post(&d->entered);
		sem_wait(&d->release);
	}
	put_id(data, a->size, d->id);
	inc(&d->reads);
	if (d->block)
		__atomic_store_n(&d->read_returned, 1, __ATOMIC_SEQ_CST);
	dec(&d->inflight);
	return d->ret;
}

static int f_write(void *opaque, const struct vdev_bus_access *a, const void *data)
{
	struct fdev *d = opaque;

	inc(&d->inflight);
	check_access(d, a);
	if (!d->shared) {
		d->last = *a;
		memcpy(d->wdata, data, a->size);
	}
	inc(&d->writes);
	dec(&d->inflight);
	return d->ret;
}

static void f_destroy(void *opaque)
{
	struct fdev *d = opaque;

	/* Nothing may still run in the device, and a blocked read has returned. */
	if (ld(&d->inflight) != 0 || (d->block && !ld(&d->read_returned)))
		inc(&d->bad);
	inc(&d->destroyed);
}

static const char *f_label(void *opaque)
{
	return opaque ? "fake" : NULL;
}

/* Sleep/wake events, in call order: id * 2 + (1 for wake). */
static int pm_events[64];
static int pm_nevents;

static int f_sleep(void *opaque)
{
	struct fdev *d = opaque;

	ck_assert_int_lt(pm_nevents, 64);
	pm_events[pm_nevents++] = (int)d->id * 2;
	return d->sleep_ret;
}

static int f_wake(void *opaque)
{
	struct fdev *d = opaque;

	ck_assert_int_lt(pm_nevents, 64);
	pm_events[pm_nevents++] = (int)d->id * 2 + 1;
	return d->wake_ret;
}

static int f_snapshot(void *opaque, void *buf, uint64_t cap, uint64_t *len)
{
	struct fdev *d = opaque;

	*len = d->state_len;
	if (cap < d->state_len)
		return -ENOSPC;
	memcpy(buf, d->state, d->state_len);
	return 0;
}

static int f_restore(void *opaque, const void *buf, uint64_t len)
{
	struct fdev *d = opaque;

	if (len > sizeof(d->state))
		return -EINVAL;
	memcpy(d->state, buf, len);
	d->state_len = len;
	return 0;
}

static struct vdev_bus_device_ops fops(void)
{
	struct vdev_bus_device_ops ops = VDEV_BUS_DEVICE_OPS_INIT;

	ops.debug_label = f_label;
	ops.read = f_read;
	ops.write = f_write;
	ops.destroy = f_destroy;
	return ops;
}

static struct vdev_bus_device_ops fops_pm(void)
{
	struct vdev_bus_device_ops ops = fops();

	ops.sleep = f_sleep;
	ops.wake = f_wake;
	ops.snapshot = f_snapshot;
	ops.restore = f_restore;
	return ops;
}

static vdev_bus *new_bus(uint32_t kind)
{
	vdev_bus *bus = NULL;

	ck_assert_int_eq(vdev_bus_new(kind, &bus), 0);
	ck_assert_ptr_nonnull(bus);
	return bus;
}

static uint32_t read32(vdev_bus *bus, uint64_t addr, int *err)
{
	uint8_t d[4] = {0};

	*err = vdev_bus_read(bus, addr, 4, 0, d);
	return get_u32(d);
}

/* Waits up to 10 s (scaled like Check's timeouts would be) for @s. */
static int sem_wait_long(sem_t *s)
{
	struct timespec ts;
	int r;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 10;
	do
		r = sem_timedwait(s, &ts);
	while (r < 0 && errno == EINTR);
	return r;
}

static void fdev_block_init(struct fdev *d)
{
	d->block = 1;
	ck_assert_int_eq(sem_init(&d->entered, 0, 0), 0);
	ck_assert_int_eq(sem_init(&d->release, 0, 0), 0);
}

static void fdev_block_fini(struct fdev *d)
{
	sem_destroy(&d->entered);
	sem_destroy(&d->release);
}

/* ---- construction ---- */

START_TEST(test_new_kinds)
{
	vdev_bus *bus = (vdev_bus *)(uintptr_t)1;
	uint32_t kinds[] = {VDEV_BUS_MMIO, VDEV_BUS_PIO};
	size_t k;

	ck_assert_int_eq(vdev_bus_new(2, &bus), -EINVAL);
	ck_assert_ptr_eq(bus, (vdev_bus *)(uintptr_t)1); /* untouched on failure */
	ck_assert_int_eq(vdev_bus_new(UINT32_MAX, &bus), -EINVAL);
	ck_assert_int_eq(vdev_bus_new(VDEV_BUS_MMIO, NULL), -EINVAL);

	for (k = 0; k < 2; k++) {
		struct vdev_bus_device_ops ops = fops();
		struct fdev d = {.id = 7};
		uint8_t buf[2];

		bus = new_bus(kinds[k]);
		ck_assert_uint_eq(vdev_bus_num_ranges(bus), 0);
		ck_assert_int_eq(vdev_bus_insert(bus, 0x60, 8, &ops, &d), 0);
		ck_assert_uint_eq(vdev_bus_num_ranges(bus), 1);
		ck_assert_int_eq(vdev_bus_read(bus, 0x64, 2, 1, buf), 0);
		ck_assert_uint_eq(buf[0], 7);
		ck_assert_uint_eq(buf[1], 0);
		ck_assert_uint_eq(d.last.offset, 4);
		vdev_bus_free(bus);
		ck_assert_int_eq(d.destroyed, 1);
		ck_assert_int_eq(d.bad, 0);
	}
	vdev_bus_free(NULL);
	ck_assert_uint_eq(vdev_bus_num_ranges(NULL), 0);
}
END_TEST

/* ---- dispatch ---- */

START_TEST(test_dispatch_access_info)
{
	struct vdev_bus_device_ops ops = fops();
	struct fdev a = {.id = 0x11223344, .base = 0x1000};
	struct fdev b = {.id = 0x55, .base = 0x2000};
	vdev_bus *bus = new_bus(VDEV_BUS_MMIO);
	uint8_t buf[8], w[8] = {1, 2, 3, 4, 5, 6, 7, 8};

	ck_assert_int_eq(vdev_bus_insert(bus, 0x1000, 0x100, &ops, &a), 0);
	ck_assert_int_eq(vdev_bus_insert(bus, 0x2000, 0x10, &ops, &b), 0);

	/* Read: offset, base, size, vcpu; the bytes the device did not write
	 * are zero (the bus zero-fills first), not the caller's old contents. */
	memset(buf, 0xaa, sizeof(buf));
	ck_assert_int_eq(vdev_bus_read(bus, 0x1010, 8, 3, buf), 0);
	ck_assert_int_eq(a.reads, 1);
	ck_assert_int_eq(b.reads, 0);
	ck_assert_uint_eq(a.last.struct_size, sizeof(struct vdev_bus_access));
	ck_assert_uint_eq(a.last.address, 0x1010);
	ck_assert_uint_eq(a.last.base, 0x1000);
	ck_assert_uint_eq(a.last.offset, 0x10);
	ck_assert_uint_eq(a.last.size, 8);
	ck_assert_uint_eq(a.last.vcpu, 3);
	ck_assert_uint_eq(get_u32(buf), 0x11223344);
	ck_assert_uint_eq(get_u32(buf + 4), 0);

	/* Every size, the last bytes of the range. */
	ck_assert_int_eq(vdev_bus_read(bus, 0x10ff, 1, 0, buf), 0);
	ck_assert_uint_eq(a.last.offset, 0xff);
	ck_assert_uint_eq(a.last.size, 1);
	ck_assert_int_eq(vdev_bus_read(bus, 0x10fe, 2, 0, buf), 0);
	ck_assert_uint_eq(a.last.size, 2);
	ck_assert_int_eq(vdev_bus_read(bus, 0x10fc, 4, 0, buf), 0);
	ck_assert_uint_eq(a.last.size, 4);
	ck_assert_int_eq(vdev_bus_read(bus, 0x10f8, 8, 0, buf), 0);
	ck_assert_uint_eq(a.last.offset, 0xf8);

	/* Write: the data and the info reach the right device. */
	ck_assert_int_eq(vdev_bus_write(bus, 0x2004, 4, 9, w), 0);
	ck_assert_int_eq(b.writes, 1);
	ck_assert_int_eq(a.writes, 0);
	ck_assert_uint_eq(b.last.address, 0x2004);
	ck_assert_uint_eq(b.last.base, 0x2000);
	ck_assert_uint_eq(b.last.offset, 4);
	ck_assert_uint_eq(b.last.size, 4);
	ck_assert_uint_eq(b.last.vcpu, 9);
	ck_assert_mem_eq(b.wdata, w, 4);
	ck_assert_int_eq(vdev_bus_write(bus, 0x2008, 8, 0, w), 0);
	ck_assert_mem_eq(b.wdata, w, 8);

	/* The device's error is returned; a read still leaves data filled. */
	a.ret = -EIO;
	memset(buf, 0, sizeof(buf));
	ck_assert_int_eq(vdev_bus_read(bus, 0x1000, 4, 0, buf), -EIO);
	ck_assert_uint_eq(get_u32(buf), 0x11223344);
	ck_assert_int_eq(vdev_bus_write(bus, 0x1000, 4, 0, w), -EIO);
	a.ret = 0;

	ck_assert_int_eq(a.bad, 0);
	ck_assert_int_eq(b.bad, 0);
	vdev_bus_free(bus);
	ck_assert_int_eq(a.destroyed, 1);
	ck_assert_int_eq(b.destroyed, 1);
}
END_TEST

START_TEST(test_unclaimed)
{
	struct vdev_bus_device_ops ops = fops();
	struct fdev a = {.id = 1};
	vdev_bus *bus = new_bus(VDEV_BUS_PIO);
	uint64_t probes[] = {0, 0xfff, 0x1010, 0x1fff, 0x3000, UINT64_MAX};
	uint8_t buf[8], ones[8];
	size_t i;

	memset(ones, 0xff, sizeof(ones));
	/* An empty bus. */
	memset(buf, 0, sizeof(buf));
	ck_assert_int_eq(vdev_bus_read(bus, 0x1000, 8, 0, buf), -ENOENT);
	ck_assert_mem_eq(buf, ones, 8);

	ck_assert_int_eq(vdev_bus_insert(bus, 0x1000, 0x10, &ops, &a), 0);
	ck_assert_int_eq(vdev_bus_insert(bus, 0x2000, 0x1000, &ops, &a), 0);
	for (i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
		memset(buf, 0, sizeof(buf));
		ck_assert_int_eq(vdev_bus_read(bus, probes[i], 8, 0, buf), -ENOENT);
		ck_assert_mem_eq(buf, ones, 8);
		memset(buf, 0x12, sizeof(buf));
		ck_assert_int_eq(vdev_bus_read(bus, probes[i], 2, 0, buf), -ENOENT);
		ck_assert_uint_eq(buf[0], 0xff);
		ck_assert_uint_eq(buf[1], 0xff);
		ck_assert_uint_eq(buf[2], 0x12); /* only size bytes are written */
		ck_assert_int_eq(vdev_bus_write(bus, probes[i], 4, 0, buf), -ENOENT);
	}
	ck_assert_int_eq(a.reads, 0);
	ck_assert_int_eq(a.writes, 0);
	vdev_bus_free(bus);
	ck_assert_int_eq(a.destroyed, 1);
}
END_TEST

START_TEST(test_bad_sizes)
{
	struct vdev_bus_device_ops ops = fops();
	struct fdev a = {.id = 1};
	vdev_bus *bus = new_bus(VDEV_BUS_MMIO);
	uint32_t sizes[] = {0, 3, 5, 6, 7, 9, 16, UINT32_MAX};
	uint8_t buf[16];
	size_t i;

	ck_assert_int_eq(vdev_bus_insert(bus, 0x1000, 0x100, &ops, &a), 0);
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		ck_assert_int_eq(vdev_bus_read(bus, 0x1000, sizes[i], 0, buf), -EINVAL);
		ck_assert_int_eq(vdev_bus_write(bus, 0x1000, sizes[i], 0, buf), -EINVAL);
		/* A bad size is refused even where nothing is claimed. */
		ck_assert_int_eq(vdev_bus_read(bus, 0x9000, sizes[i], 0, buf), -EINVAL);
	}
	ck_assert_int_eq(vdev_bus_read(bus, 0x1000, 4, 0, NULL), -EINVAL);
	ck_assert_int_eq(vdev_bus_write(bus, 0x1000, 4, 0, NULL), -EINVAL);
	ck_assert_int_eq(vdev_bus_read(NULL, 0x1000, 4, 0, buf), -EINVAL);
	ck_assert_int_eq(vdev_bus_write(NULL, 0x1000, 4, 0, buf), -EINVAL);
	ck_assert_int_eq(a.reads, 0);
	ck_assert_int_eq(a.writes, 0);
	vdev_bus_free(bus);
}
END_TEST

START_TEST(test_cross_end)
{
	struct vdev_bus_device_ops ops = fops();
	struct fdev a = {.id = 1}, b = {.id = 2};
	vdev_bus *bus = new_bus(VDEV_BUS_MMIO);
	uint8_t buf[8] = {0};

	ck_assert_int_eq(vdev_bus_insert(bus, 0x1000, 4, &ops, &a), 0);
	ck_assert_int_eq(vdev_bus_insert(bus, 0x1004, 4, &ops, &b), 0);
	ck_assert_int_eq(vdev_bus_read(bus, 0x1000, 4, 0, buf), 0);
	ck_assert_int_eq(vdev_bus_read(bus, 0x1002, 2, 0, buf), 0);
	ck_assert_int_eq(a.reads, 2);
	/* Crossing into the neighbour (another device) or past the end. */
	ck_assert_int_eq(vdev_bus_read(bus, 0x1002, 4, 0, buf), -EINVAL);
	ck_assert_int_eq(vdev_bus_read(bus, 0x1000, 8, 0, buf), -EINVAL);
	ck_assert_int_eq(vdev_bus_write(bus, 0x1003, 2, 0, buf), -EINVAL);
	ck_assert_int_eq(vdev_bus_read(bus, 0x1006, 4, 0, buf), -EINVAL);
	ck_assert_int_eq(vdev_bus_write(bus, 0x1007, 8, 0, buf), -EINVAL);
	ck_assert_int_eq(a.reads, 2);
	ck_assert_int_eq(a.writes, 0);
	ck_assert_int_eq(b.reads, 0);
	ck_assert_int_eq(b.writes, 0);
	vdev_bus_free(bus);
}
END_TEST

/* ---- range bookkeeping ---- */

START_TEST(test_overlaps)
{
	struct vdev_bus_device_ops ops = fops();
	struct fdev a = {.id = 1}, b = {.id = 2};
	vdev_bus *bus = new_bus(VDEV_BUS_MMIO);
	/* Against [0x1000, 0x1fff]. */
	struct {
		uint64_t base, len;
	} bad[] = {
		{0x1100, 0x10},  /* inside */
		{0x1000, 1},     /* first byte */
		{0x1fff, 1},     /* last byte */
		{0xff0, 0x20},   /* straddling the start */
		{0x1ff0, 0x20},  /* straddling the end */
		{0x800, 0x2000}, /* covering */
		{0, UINT64_MAX}, /* covering everything */
		{0x1000, 0x1000}, /* identical */
		{0x1000, 0x800}, /* same base, shorter */
		{0x1800, 0x800}, /* same end */
	};
	size_t i;

	ck_assert_int_eq(vdev_bus_insert(bus, 0x1000, 0x1000, &ops, &a), 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(vdev_bus_insert(bus, bad[i].base, bad[i].len, &ops, &b) == -EEXIST,
			      "overlap case %zu accepted", i);
		/* Also for the same device. */
		ck_assert_int_eq(vdev_bus_insert(bus, bad[i].base, bad[i].len, &ops, &a), -EEXIST);
	}
	ck_assert_uint_eq(vdev_bus_num_ranges(bus), 1);
	ck_assert_int_eq(b.destroyed, 0); /* a refused insert owns nothing */

	/* Touching on both sides is fine; then a gap filled exactly. */
	ck_assert_int_eq(vdev_bus_insert(bus, 0xf00, 0x100, &ops, &b), 0);
	ck_assert_int_eq(vdev_bus_insert(bus, 0x2000, 0x100, &ops, &b), 0);
	ck_assert_int_eq(vdev_bus_insert(bus, 0x2200, 0x100, &ops, &b), 0);
	ck_assert_int_eq(vdev_bus_insert(bus, 0x2100, 0x101, &ops, &b), -EEXIST);
	ck_assert_int_eq(vdev_bus_insert(bus, 0x20ff, 0x100, &ops, &b), -EEXIST);
	ck_assert_int_eq(vdev_bus_insert(bus, 0x2100, 0x100, &ops, &b), 0);
	ck_assert_uint_eq(vdev_bus_num_ranges(bus), 5);

	/* Each byte goes to its owner. */
	{
		int err;

		ck_assert_uint_eq(read32(bus, 0xffc, &err), 2);
		ck_assert_int_eq(err, 0);
		ck_assert_uint_eq(read32(bus, 0x1000, &err), 1);
		ck_assert_uint_eq(read32(bus, 0x1ffc, &err), 1);
		ck_assert_uint_eq(read32(bus, 0x2000, &err), 2);
		ck_assert_uint_eq(read32(bus, 0x21fc, &err), 2);
		ck_assert_int_eq(err, 0);
	}
	vdev_bus_free(bus);
	ck_assert_int_eq(a.destroyed, 1);
	ck_assert_int_eq(b.destroyed, 1);
}
END_TEST

START_TEST(test_edges)
{
	struct vdev_bus_device_ops ops = fops();
	struct fdev a = {.id = 1}, b = {.id = 2};
	vdev_bus *bus = new_bus(VDEV_BUS_MMIO);
	uint8_t buf[8];
	int err;

	ck_assert_int_eq(vdev_bus_insert(bus, 0x1000, 0, &ops, &a), -EINVAL);
	ck_assert_int_eq(vdev_bus_insert(bus, UINT64_MAX, 0, &ops, &a), -EINVAL);
	/* Wraps past 2^64. */
	ck_assert_int_eq(vdev_bus_insert(bus, UINT64_MAX - 0xf, 0x20, &ops, &a), -EINVAL);
	ck_assert_int_eq(vdev_bus_insert(bus, UINT64_MAX - 0xf, 0x11, &ops, &a), -EINVAL);
	ck_assert_int_eq(vdev_bus_insert(bus, UINT64_MAX, 2, &ops, &a), -EINVAL);
	ck_assert_int_eq(vdev_bus_insert(bus, 2, UINT64_MAX, &ops, &a), -EINVAL);
	ck_assert_int_eq(vdev_bus_insert(bus, UINT64_MAX, UINT64_MAX, &ops, &a), -EINVAL);
	ck_assert_uint_eq(vdev_bus_num_ranges(bus), 0);

	/* Ending exactly at 2^64. */
	ck_assert_int_eq(vdev_bus_insert(bus, UINT64_MAX - 0xf, 0x10, &ops, &a), 0);
	ck_assert_uint_eq(read32(bus, UINT64_MAX - 3, &err), 1);
	ck_assert_int_eq(err, 0);
	ck_assert_uint_eq(a.last.offset, 0xc);
	ck_assert_int_eq(vdev_bus_read(bus, UINT64_MAX, 1, 0, buf), 0);
	ck_assert_uint_eq(a.last.offset, 0xf);
	ck_assert_int_eq(vdev_bus_read(bus, UINT64_MAX - 7, 8, 0, buf), 0);
	/* An access that would run past 2^64 crosses the end of the range. */
	ck_assert_int_eq(vdev_bus_read(bus, UINT64_MAX, 2, 0, buf), -EINVAL);
	ck_assert_int_eq(vdev_bus_write(bus, UINT64_MAX - 3, 8, 0, buf), -EINVAL);
	/* Everything below it, [0, 2^64 - 16), in one range. */
	ck_assert_int_eq(vdev_bus_insert(bus, 0, UINT64_MAX - 0xf, &ops, &b), 0);
	ck_assert_int_eq(vdev_bus_insert(bus, 0, 1, &ops, &b), -EEXIST);
	ck_assert_uint_eq(read32(bus, 0, &err), 2);
	ck_assert_uint_eq(read32(bus, UINT64_MAX - 0x13, &err), 2);
	ck_assert_uint_eq(b.last.offset, UINT64_MAX - 0x13);
	ck_assert_uint_eq(read32(bus, UINT64_MAX - 0xf, &err), 1);
	ck_assert_int_eq(vdev_bus_read(bus, UINT64_MAX - 0x11, 4, 0, buf), -EINVAL);
	ck_assert_uint_eq(vdev_bus_num_ranges(bus), 2);
	ck_assert_int_eq(vdev_bus_remove(bus, UINT64_MAX - 0xf), 0);
	ck_assert_int_eq(a.destroyed, 1);
	ck_assert_int_eq(vdev_bus_insert(bus, UINT64_MAX, 1, &ops, &a), 0);
	ck_assert_int_eq(vdev_bus_read(bus, UINT64_MAX, 1, 0, buf), 0);
	ck_assert_uint_eq(buf[0], 1);
	vdev_bus_free(bus);
	ck_assert_int_eq(a.destroyed, 2);
	ck_assert_int_eq(b.destroyed, 1);
}
END_TEST

/* A device whose opaque is NULL. */
static int null_destroyed;

static int null_read(void *opaque, const struct vdev_bus_access *a, void *data)
{
	ck_assert_ptr_null(opaque);
	put_id(data, a->size, 0x77);
	return 0;
}

static int null_write(void *opaque, const struct vdev_bus_access *a, const void *data)
{
	(void)a;
	(void)data;
	ck_assert_ptr_null(opaque);
	return 0;
}

static void null_destroy(void *opaque)
{
	ck_assert_ptr_null(opaque);
	null_destroyed++;
}

static struct vdev_bus_device_ops null_ops(void)
{
	struct vdev_bus_device_ops ops = VDEV_BUS_DEVICE_OPS_INIT;

	ops.debug_label = f_label;
	ops.read = null_read;
	ops.write = null_write;
	ops.destroy = null_destroy;
	return ops;
}

START_TEST(test_bad_ops)
{
	struct vdev_bus_device_ops ops = fops(), other = fops();
	struct {
		struct vdev_bus_device_ops ops;
		uint64_t future[4];
	} bigger;
	struct fdev a = {.id = 1}, b = {.id = 2};
	vdev_bus *bus = new_bus(VDEV_BUS_MMIO);
	uint8_t buf[4];

	ck_assert_int_eq(vdev_bus_insert(NULL, 0, 1, &ops, &a), -EINVAL);
	ck_assert_int_eq(vdev_bus_insert(bus, 0, 1, NULL, &a), -EINVAL);
	ops.struct_size = 0;
	ck_assert_int_eq(vdev_bus_insert(bus, 0, 1, &ops, &a), -EINVAL);
	ops = fops();
	ops.read = NULL;
	ck_assert_int_eq(vdev_bus_insert(bus, 0, 1, &ops, &a), -EINVAL);
	ops = fops();
	ops.write = NULL;
	ck_assert_int_eq(vdev_bus_insert(bus, 0, 1, &ops, &a), -EINVAL);
	ck_assert_uint_eq(vdev_bus_num_ranges(bus), 0);

	/* An older caller's struct that ends before destroy: what it does not
	 * have is zero (no destroy call, no garbage hook). */
	ops = fops();
	ops.struct_size = offsetof(struct vdev_bus_device_ops, destroy);
	ck_assert_int_eq(vdev_bus_insert(bus, 0x100, 4, &ops, &a), 0);
	ck_assert_int_eq(vdev_bus_read(bus, 0x100, 4, 0, buf), 0);
	ck_assert_int_eq(vdev_bus_remove(bus, 0x100), 0);
	ck_assert_int_eq(a.destroyed, 0);

	/* A newer caller's larger struct. */
	memset(&bigger, 0x5a, sizeof(bigger));
	bigger.ops = fops();
	bigger.ops.struct_size = sizeof(bigger);
	ck_assert_int_eq(vdev_bus_insert(bus, 0x200, 4, &bigger.ops, &b), 0);
	ck_assert_int_eq(vdev_bus_read(bus, 0x200, 4, 0, buf), 0);
	ck_assert_uint_eq(get_u32(buf), 2);

	/* The same opaque again with other ops is refused; with equal ops (a
	 * different copy) it is the same device. */
	other.destroy = NULL;
	ck_assert_int_eq(vdev_bus_insert(bus, 0x300, 4, &other, &b), -EINVAL);
	ops = fops();
	ck_assert_int_eq(vdev_bus_insert(bus, 0x300, 4, &ops, &b), 0);
	ck_assert_int_eq(vdev_bus_remove(bus, 0x200), 0);
	ck_assert_int_eq(b.destroyed, 0);

	/* A NULL opaque is a device like any other. */
	ops = null_ops();
	ck_assert_int_eq(vdev_bus_insert(bus, 0x400, 4, &ops, NULL), 0);
	ck_assert_int_eq(vdev_bus_insert(bus, 0x500, 4, &ops, NULL), 0);
	ck_assert_int_eq(vdev_bus_read(bus, 0x500, 4, 0, buf), 0);
	ck_assert_uint_eq(get_u32(buf), 0x77);
	ck_assert_int_eq(vdev_bus_remove(bus, 0x400), 0);
	ck_assert_int_eq(null_destroyed, 0);
	vdev_bus_free(bus);
	ck_assert_int_eq(b.destroyed, 1);
	ck_assert_int_eq(null_destroyed, 1);
}
END_TEST

START_TEST(test_remove)
{
	struct vdev_bus_device_ops ops = fops();
	struct fdev a = {.id = 1}, b = {.id = 2};
	vdev_bus *bus = new_bus(VDEV_BUS_MMIO);
	uint8_t buf[4];

	ck_assert_int_eq(vdev_bus_remove(bus, 0x1000), -ENOENT);
	ck_assert_int_eq(vdev_bus_remove(NULL, 0x1000), -EINVAL);
	ck_assert_int_eq(vdev_bus_insert(bus, 0x1000, 0x100, &ops, &a), 0);
	ck_assert_int_eq(vdev_bus_insert(bus, 0x2000, 0x100, &ops, &b), 0);
	/* Only the exact base removes. */
	ck_assert_int_eq(vdev_bus_remove(bus, 0x1001), -ENOENT);
	ck_assert_int_eq(vdev_bus_remove(bus, 0x10ff), -ENOENT);
	ck_assert_int_eq(vdev_bus_remove(bus, 0xfff), -ENOENT);
	ck_assert_int_eq(vdev_bus_remove(bus, 0x3000), -ENOENT);
	ck_assert_uint_eq(vdev_bus_num_ranges(bus), 2);

	ck_assert_int_eq(vdev_bus_remove(bus, 0x1000), 0);
	ck_assert_uint_eq(vdev_bus_num_ranges(bus), 1);
	ck_assert_int_eq(a.destroyed, 1);
	ck_assert_int_eq(vdev_bus_read(bus, 0x1000, 4, 0, buf), -ENOENT);
	ck_assert_int_eq(vdev_bus_write(bus, 0x1080, 4, 0, buf), -ENOENT);
	ck_assert_int_eq(vdev_bus_remove(bus, 0x1000), -ENOENT);
	/* The other device is untouched, and the space can be claimed again. */
	ck_assert_int_eq(vdev_bus_read(bus, 0x2000, 4, 0, buf), 0);
	ck_assert_uint_eq(get_u32(buf), 2);
	ck_assert_int_eq(vdev_bus_insert(bus, 0x1000, 0x1000, &ops, &b), 0);
	ck_assert_int_eq(vdev_bus_read(bus, 0x1000, 4, 0, buf), 0);
	ck_assert_uint_eq(get_u32(buf), 2);
	vdev_bus_free(bus);
	ck_assert_int_eq(a.destroyed, 1);
	ck_assert_int_eq(b.destroyed, 1);
}
END_TEST

START_TEST(test_destroy_once)
{
	struct vdev_bus_device_ops ops = fops();
	struct fdev d = {.id = 1}, e = {.id = 2}, f = {.id = 3};
	vdev_bus *bus = new_bus(VDEV_BUS_MMIO);
	uint8_t buf[4];

	/* d has three ranges, e two, f one. */
	ck_assert_int_eq(vdev_bus_insert(bus, 0x3000, 0x10, &ops, &d), 0);
	ck_assert_int_eq(vdev_bus_insert(bus, 0x1000, 0x10, &ops, &d), 0);
	ck_assert_int_eq(vdev_bus_insert(bus, 0x2000, 0x10, &ops, &d), 0);
	ck_assert_int_eq(vdev_bus_insert(bus, 0x4000, 0x10, &ops, &e), 0);
	ck_assert_int_eq(vdev_bus_insert(bus, 0x5000, 0x10, &ops, &e), 0);
	ck_assert_int_eq(vdev_bus_insert(bus, 0x6000, 0x10, &ops, &f), 0);
	ck_assert_uint_eq(vdev_bus_num_ranges(bus), 6);

	ck_assert_int_eq(vdev_bus_remove(bus, 0x2000), 0);
	ck_assert_int_eq(d.destroyed, 0);
	ck_assert_int_eq(vdev_bus_read(bus, 0x3000, 4, 0, buf), 0); /* still alive */
	ck_assert_uint_eq(get_u32(buf), 1);
	ck_assert_int_eq(vdev_bus_remove(bus, 0x1000), 0);
	ck_assert_int_eq(d.destroyed, 0);
	ck_assert_int_eq(vdev_bus_remove(bus, 0x3000), 0);
	ck_assert_int_eq(d.destroyed, 1);
	ck_assert_int_eq(vdev_bus_remove(bus, 0x4000), 0);
	ck_assert_int_eq(e.destroyed, 0);
	ck_assert_uint_eq(vdev_bus_num_ranges(bus), 2);

	vdev_bus_free(bus);
	ck_assert_int_eq(d.destroyed, 1);
	ck_assert_int_eq(e.destroyed, 1);
	ck_assert_int_eq(f.destroyed, 1);
	ck_assert_int_eq(d.bad + e.bad + f.bad, 0);
}
END_TEST

static uint64_t rng_next(uint64_t *s)
{
	/* xorshift64* */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * UINT64_C(2685821657736338717);
}

#define MANY 10000u

START_TEST(test_many_ranges)
{
	struct vdev_bus_device_ops ops = fops();
	struct fdev *devs = calloc(MANY, sizeof(*devs));
	uint32_t *order = calloc(MANY, sizeof(*order));
	vdev_bus *bus = new_bus(VDEV_BUS_MMIO);
	uint64_t seed = 0x9e3779b97f4a7c15u;
	uint32_t i, removed = 0;
	int err;

	ck_assert_ptr_nonnull(devs);
	ck_assert_ptr_nonnull(order);
	/* Range i: [i * 0x100 + 0x40, + 0x80), gaps between them. */
	for (i = 0; i < MANY; i++) {
		devs[i].id = i;
		devs[i].base = (uint64_t)i * 0x100 + 0x40;
		order[i] = i;
	}
	for (i = MANY - 1; i > 0; i--) {
		uint32_t j = (uint32_t)(rng_next(&seed) % (i + 1)), t = order[i];

		order[i] = order[j];
		order[j] = t;
	}
	for (i = 0; i < MANY; i++)
		ck_assert_int_eq(vdev_bus_insert(bus, devs[order[i]].base, 0x80, &ops,
						 &devs[order[i]]),
				 0);
	ck_assert_uint_eq(vdev_bus_num_ranges(bus), MANY);
	/* Neighbours of every range are still refused. */
	for (i = 0; i < MANY; i += 97)
		ck_assert_int_eq(vdev_bus_insert(bus, devs[i].base - 0x10, 0x11, &ops, &devs[i]),
				 -EEXIST);

	for (i = 0; i < MANY; i++) {
		uint64_t off = rng_next(&seed) % 0x7d;

		ck_assert_uint_eq(read32(bus, devs[i].base + off, &err), i);
		ck_assert_int_eq(err, 0);
		ck_assert_uint_eq(devs[i].last.offset, off);
		ck_assert_uint_eq(read32(bus, devs[i].base, &err), i);
		ck_assert_uint_eq(read32(bus, devs[i].base + 0x7c, &err), i);
		ck_assert_int_eq(err, 0);
		/* The gaps on both sides. */
		ck_assert_uint_eq(read32(bus, devs[i].base - 4, &err), UINT32_MAX);
		ck_assert_int_eq(err, -ENOENT);
		ck_assert_uint_eq(read32(bus, devs[i].base + 0x80, &err), UINT32_MAX);
		ck_assert_int_eq(err, -ENOENT);
	}

	/* Remove half (those at odd positions of the shuffled order). */
	for (i = 1; i < MANY; i += 2) {
		ck_assert_int_eq(vdev_bus_remove(bus, devs[order[i]].base), 0);
		removed++;
	}
	ck_assert_uint_eq(vdev_bus_num_ranges(bus), MANY - removed);
	for (i = 0; i < MANY; i++) {
		uint32_t k = order[i];

		(void)read32(bus, devs[k].base + 8, &err);
		ck_assert_int_eq(err, i % 2 ? -ENOENT : 0);
		ck_assert_int_eq(devs[k].destroyed, i % 2);
		ck_assert_int_eq(devs[k].reads, 3 + !(i % 2));
	}
	vdev_bus_free(bus);
	for (i = 0; i < MANY; i++) {
		ck_assert_int_eq(devs[i].destroyed, 1);
		ck_assert_int_eq(devs[i].bad, 0);
	}
	free(order);
	free(devs);
}
END_TEST

/* ---- concurrency ---- */

struct io_job {
	vdev_bus *bus;
	uint64_t addr;
	int err;
	uint32_t value;
	sem_t done;
};

static void *reader_thread(void *arg)
{
	struct io_job *j = arg;

	j->value = read32(j->bus, j->addr, &j->err);
	sem_post(&j->done);
	return NULL;
}

struct remove_job {
	vdev_bus *bus;
	uint64_t base;
	int err;
	int returned; /* atomic */
};

static void *remove_thread(void *arg)
{
	struct remove_job *j = arg;

	j->err = vdev_bus_remove(j->bus, j->base);
	__atomic_store_n(&j->returned, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

/* Accesses to other devices, and insert/remove of other ranges, while one
 * device is stuck in a read. */
struct other_job {
	vdev_bus *bus;
	struct fdev *b, *c;
	int ok;
	sem_t done;
};

static void *other_thread(void *arg)
{
	struct other_job *j = arg;
	struct vdev_bus_device_ops ops = fops();
	uint8_t w[4] = {9, 9, 9, 9};
	int err, i;

	j->ok = 0;
	for (i = 0; i < 100; i++) {
		if (read32(j->bus, 0x2000, &err) != 2 || err)
			goto out;
		if (vdev_bus_write(j->bus, 0x2004, 4, 1, w))
			goto out;
	}
	if (vdev_bus_insert(j->bus, 0x3000, 0x10, &ops, j->c) ||
	    read32(j->bus, 0x3000, &err) != 3 || err || vdev_bus_remove(j->bus, 0x3000) ||
	    vdev_bus_num_ranges(j->bus) != 2 || vdev_bus_sleep(j->bus) || vdev_bus_wake(j->bus))
		goto out;
	j->ok = 1;
out:
	sem_post(&j->done);
	return NULL;
}

START_TEST(test_slow_device_blocks_nobody_else)
{
	struct vdev_bus_device_ops ops = fops();
	struct fdev a = {.id = 1}, b = {.id = 2}, c = {.id = 3};
	vdev_bus *bus = new_bus(VDEV_BUS_MMIO);
	struct io_job ja = {.bus = bus, .addr = 0x1000};
	struct other_job jo = {.bus = bus, .b = &b, .c = &c};
	pthread_t ta, tb;

	fdev_block_init(&a);
	ck_assert_int_eq(vdev_bus_insert(bus, 0x1000, 0x10, &ops, &a), 0);
	ck_assert_int_eq(vdev_bus_insert(bus, 0x2000, 0x10, &ops, &b), 0);
	ck_assert_int_eq(sem_init(&ja.done, 0, 0), 0);
	ck_assert_int_eq(sem_init(&jo.done, 0, 0), 0);

	ck_assert_int_eq(pthread_create(&ta, NULL, reader_thread, &ja), 0);
	ck_assert_int_eq(sem_wait_long(&a.entered), 0); /* a is now stuck */

	ck_assert_int_eq(pthread_create(&tb, NULL, other_thread, &jo), 0);
	ck_assert_msg(sem_wait_long(&jo.done) == 0, "a slow device blocked the bus");
	ck_assert_int_eq(jo.ok, 1);
	ck_assert_int_eq(b.reads, 100);
	ck_assert_int_eq(b.writes, 100);
	ck_assert_int_eq(c.destroyed, 1);
	pthread_join(tb, NULL);

	/* a's access is still inside a. */
	ck_assert_int_eq(ld(&a.reads), 0);
	sem_post(&a.release);
	ck_assert_int_eq(sem_wait_long(&ja.done), 0);
	pthread_join(ta, NULL);
	ck_assert_int_eq(ja.err, 0);
	ck_assert_uint_eq(ja.value, 1);

	vdev_bus_free(bus);
	ck_assert_int_eq(a.bad + b.bad + c.bad, 0);
	fdev_block_fini(&a);
	sem_destroy(&ja.done);
	sem_destroy(&jo.done);
}
END_TEST

START_TEST(test_remove_waits_for_access)
{
	struct vdev_bus_device_ops ops = fops();
	struct fdev a = {.id = 1};
	vdev_bus *bus = new_bus(VDEV_BUS_MMIO);
	struct io_job ja = {.bus = bus, .addr = 0x1004};
	struct remove_job jr = {.bus = bus, .base = 0x1000};
	pthread_t ta, tr;
	uint8_t buf[4];

	fdev_block_init(&a);
	ck_assert_int_eq(vdev_bus_insert(bus, 0x1000, 0x10, &ops, &a), 0);
	ck_assert_int_eq(sem_init(&ja.done, 0, 0), 0);
	ck_assert_int_eq(pthread_create(&ta, NULL, reader_thread, &ja), 0);
	ck_assert_int_eq(sem_wait_long(&a.entered), 0);

	ck_assert_int_eq(pthread_create(&tr, NULL, remove_thread, &jr), 0);
	/* The range leaves the bus at once (new accesses miss it) ... */
	while (vdev_bus_num_ranges(bus) != 0)
		sched_yield();
	ck_assert_int_eq(vdev_bus_read(bus, 0x1000, 4, 0, buf), -ENOENT);
	/* ... but remove waits for the access inside it. */
	usleep(100 * 1000);
	ck_assert_int_eq(ld(&jr.returned), 0);
	ck_assert_int_eq(ld(&a.destroyed), 0);

	sem_post(&a.release);
	pthread_join(tr, NULL);
	ck_assert_int_eq(jr.err, 0);
	ck_assert_int_eq(ld(&a.read_returned), 1);
	ck_assert_int_eq(a.destroyed, 1);
	ck_assert_int_eq(a.bad, 0); /* destroy did not run under the read */
	pthread_join(ta, NULL);
	ck_assert_int_eq(ja.err, 0);
	ck_assert_uint_eq(ja.value, 1);

	vdev_bus_free(bus);
	ck_assert_int_eq(a.destroyed, 1);
	fdev_block_fini(&a);
	sem_destroy(&ja.done);
}
END_TEST

/* A device with two ranges, an access stuck in the first: removing the
 * second (not the last) does not wait; removing the first does; and when the
 * two removals race, destroy still waits for the access and runs once. */
START_TEST(test_remove_shared_device)
{
	struct vdev_bus_device_ops ops = fops();
	struct fdev a = {.id = 1};
	vdev_bus *bus = new_bus(VDEV_BUS_MMIO);
	struct io_job ja = {.bus = bus, .addr = 0x1000};
	struct remove_job j1 = {.bus = bus, .base = 0x1000}, j2 = {.bus = bus, .base = 0x2000};
	pthread_t ta, t1, t2;
	int round;

	fdev_block_init(&a);
	ck_assert_int_eq(sem_init(&ja.done, 0, 0), 0);
	for (round = 0; round < 2; round++) {
		__atomic_store_n(&a.read_returned, 0, __ATOMIC_SEQ_CST);
		j1.returned = j2.returned = 0;
		ck_assert_int_eq(vdev_bus_insert(bus, 0x1000, 0x10, &ops, &a), 0);
		ck_assert_int_eq(vdev_bus_insert(bus, 0x2000, 0x10, &ops, &a), 0);
		ck_assert_int_eq(pthread_create(&ta, NULL, reader_thread, &ja), 0);
		ck_assert_int_eq(sem_wait_long(&a.entered), 0);

		if (round == 0) {
			/* Other range first: returns while the access runs. */
			ck_assert_int_eq(vdev_bus_remove(bus, 0x2000), 0);
			ck_assert_int_eq(a.destroyed, 0);
			ck_assert_int_eq(pthread_create(&t1, NULL, remove_thread, &j1), 0);
			usleep(100 * 1000);
			ck_assert_int_eq(ld(&j1.returned), 0);
		} else {
			/* The busy range first (it waits), then the last, idle
			 * one: it must still wait for the device. */
			ck_assert_int_eq(pthread_create(&t1, NULL, remove_thread, &j1), 0);
			while (vdev_bus_num_ranges(bus) != 1)
				sched_yield();
			ck_assert_int_eq(pthread_create(&t2, NULL, remove_thread, &j2), 0);
			while (vdev_bus_num_ranges(bus) != 0)
				sched_yield();
			usleep(100 * 1000);
			ck_assert_int_eq(ld(&j1.returned), 0);
			ck_assert_int_eq(ld(&j2.returned), 0);
		}
		ck_assert_int_eq(ld(&a.destroyed), round);
		sem_post(&a.release);
		pthread_join(t1, NULL);
		if (round == 1)
			pthread_join(t2, NULL);
		pthread_join(ta, NULL);
		ck_assert_int_eq(j1.err, 0);
		ck_assert_int_eq(j2.err, 0);
		ck_assert_int_eq(a.destroyed, round + 1);
		ck_assert_int_eq(a.bad, 0);
	}
	vdev_bus_free(bus);
	ck_assert_int_eq(a.destroyed, 2);
	fdev_block_fini(&a);
	sem_destroy(&ja.done);
}
END_TEST

#define STABLE 16u
#define CHURN 16u
#define CHURN_BASE 0x100000u
#define DISPATCHERS 4
#define STABLE_LEN 0x100u

struct stress {
	vdev_bus *bus;
	struct fdev stable[STABLE];
	struct fdev churn[CHURN];
	int stop; /* atomic */
	int wrong; /* atomic */
	uint64_t seed;
};

static void *dispatch_thread(void *arg)
{
	struct stress *s = arg;
	uint64_t seed = __atomic_add_fetch(&s->seed, 0x12345, __ATOMIC_SEQ_CST) | 1;
	int i, err;

	for (i = 0; i < 200000 && !ld(&s->stop); i++) {
		uint64_t r = rng_next(&seed);
		uint32_t k, v;
		uint64_t addr;

		if (r & 1) {
			k = (uint32_t)((r >> 8) % STABLE);
			addr = s->stable[k].base + ((r >> 24) % (STABLE_LEN / 4)) * 4;
			v = read32(s->bus, addr, &err);
			if (err || v != s->stable[k].id)
				inc(&s->wrong);
		} else {
			/* The churning area: either unclaimed or its owner. */
			k = (uint32_t)((r >> 8) % CHURN);
			addr = CHURN_BASE + (uint64_t)k * 0x1000 + ((r >> 24) % 2) * 0x800 +
			       ((r >> 32) % 4) * 4;
			v = read32(s->bus, addr, &err);
			if (!(err == -ENOENT && v == UINT32_MAX) && !(err == 0 && v == s->churn[k].id))
				inc(&s->wrong);
		}
	}
	return NULL;
}

START_TEST(test_dispatch_during_insert_remove)
{
	struct vdev_bus_device_ops ops = fops();
	struct stress *s = calloc(1, sizeof(*s));
	int present[CHURN][2] = {{0}}, expected_destroys[CHURN] = {0}, inserts[CHURN] = {0};
	pthread_t t[DISPATCHERS];
	uint64_t seed = 42;
	uint32_t i;
	int n;

	ck_assert_ptr_nonnull(s);
	s->bus = new_bus(VDEV_BUS_MMIO);
	s->seed = 7;
	for (i = 0; i < STABLE; i++) {
		s->stable[i].id = 100 + i;
		s->stable[i].shared = 1;
		s->stable[i].base = 0x1000 + (uint64_t)i * 0x1000;
		ck_assert_int_eq(vdev_bus_insert(s->bus, s->stable[i].base, STABLE_LEN, &ops,
						 &s->stable[i]),
				 0);
	}
	for (i = 0; i < CHURN; i++) {
		s->churn[i].id = 1000 + i;
		s->churn[i].shared = 1;
	}

	for (n = 0; n < DISPATCHERS; n++)
		ck_assert_int_eq(pthread_create(&t[n], NULL, dispatch_thread, s), 0);

	/* Toggle the two ranges of each churning device; destroy must come
	 * exactly when the last one goes, before remove returns. */
	for (n = 0; n < 20000; n++) {
		uint64_t r = rng_next(&seed);
		uint32_t k = (uint32_t)(r % CHURN), slot = (uint32_t)((r >> 16) % 2);
		uint64_t base = CHURN_BASE + (uint64_t)k * 0x1000 + slot * 0x800;

		if (present[k][slot]) {
			ck_assert_int_eq(vdev_bus_remove(s->bus, base), 0);
			present[k][slot] = 0;
			if (!present[k][!slot])
				expected_destroys[k]++;
		} else {
			ck_assert_int_eq(vdev_bus_insert(s->bus, base, 0x10, &ops, &s->churn[k]), 0);
			if (!present[k][!slot])
				inserts[k]++;
			present[k][slot] = 1;
		}
		ck_assert_int_eq(ld(&s->churn[k].destroyed), expected_destroys[k]);
	}
	__atomic_store_n(&s->stop, 1, __ATOMIC_SEQ_CST);
	for (n = 0; n < DISPATCHERS; n++)
		pthread_join(t[n], NULL);

	ck_assert_int_eq(ld(&s->wrong), 0);
	vdev_bus_free(s->bus);
	for (i = 0; i < STABLE; i++) {
		ck_assert_int_eq(s->stable[i].destroyed, 1);
		ck_assert_int_eq(s->stable[i].bad, 0);
	}
	for (i = 0; i < CHURN; i++) {
		ck_assert_int_eq(s->churn[i].destroyed, inserts[i]);
		ck_assert_int_eq(s->churn[i].bad, 0);
	}
	free(s);
}
END_TEST

/* ---- sleep / wake ---- */

START_TEST(test_sleep_wake)
{
	struct vdev_bus_device_ops ops = fops_pm(), nopm = fops();
	struct fdev a = {.id = 1}, b = {.id = 2}, c = {.id = 3}, d = {.id = 4};
	vdev_bus *bus = new_bus(VDEV_BUS_MMIO);
	int i;

	pm_nevents = 0;
	ck_assert_int_eq(vdev_bus_sleep(bus), 0); /* empty */
	ck_assert_int_eq(vdev_bus_wake(bus), 0);
	ck_assert_int_eq(vdev_bus_sleep(NULL), -EINVAL);
	ck_assert_int_eq(vdev_bus_wake(NULL), -EINVAL);

	/* Address order of the lowest range: a (0x1000, 0x5000), c (0x2000),
	 * d without hooks (0x2800), b (0x3000, 0x4000). */
	ck_assert_int_eq(vdev_bus_insert(bus, 0x5000, 0x10, &ops, &a), 0);
	ck_assert_int_eq(vdev_bus_insert(bus, 0x3000, 0x10, &ops, &b), 0);
	ck_assert_int_eq(vdev_bus_insert(bus, 0x1000, 0x10, &ops, &a), 0);
	ck_assert_int_eq(vdev_bus_insert(bus, 0x2800, 0x10, &nopm, &d), 0);
	ck_assert_int_eq(vdev_bus_insert(bus, 0x4000, 0x10, &ops, &b), 0);
	ck_assert_int_eq(vdev_bus_insert(bus, 0x2000, 0x10, &ops, &c), 0);

	ck_assert_int_eq(vdev_bus_sleep(bus), 0);
	ck_assert_int_eq(pm_nevents, 3);
	ck_assert_int_eq(pm_events[0], 1 * 2);
	ck_assert_int_eq(pm_events[1], 3 * 2);
	ck_assert_int_eq(pm_events[2], 2 * 2);
	pm_nevents = 0;
	ck_assert_int_eq(vdev_bus_wake(bus), 0);
	ck_assert_int_eq(pm_nevents, 3);
	ck_assert_int_eq(pm_events[0], 1 * 2 + 1);
	ck_assert_int_eq(pm_events[1], 3 * 2 + 1);
	ck_assert_int_eq(pm_events[2], 2 * 2 + 1);

	/* b (the last) fails to sleep: c and a are woken again, newest first. */
	pm_nevents = 0;
	b.sleep_ret = -EBUSY;
	ck_assert_int_eq(vdev_bus_sleep(bus), -EBUSY);
	ck_assert_int_eq(pm_nevents, 5);
	ck_assert_int_eq(pm_events[0], 1 * 2);
	ck_assert_int_eq(pm_events[1], 3 * 2);
	ck_assert_int_eq(pm_events[2], 2 * 2);
	ck_assert_int_eq(pm_events[3], 3 * 2 + 1);
	ck_assert_int_eq(pm_events[4], 1 * 2 + 1);
	b.sleep_ret = 0;

	/* The first fails: nothing to undo. */
	pm_nevents = 0;
	a.sleep_ret = -EIO;
	ck_assert_int_eq(vdev_bus_sleep(bus), -EIO);
	ck_assert_int_eq(pm_nevents, 1);
	ck_assert_int_eq(pm_events[0], 1 * 2);
	a.sleep_ret = 0;

	/* A failed wake puts those already woken back to sleep. */
	ck_assert_int_eq(vdev_bus_sleep(bus), 0);
	pm_nevents = 0;
	c.wake_ret = -ENODEV;
	ck_assert_int_eq(vdev_bus_wake(bus), -ENODEV);
	ck_assert_int_eq(pm_nevents, 3);
	ck_assert_int_eq(pm_events[0], 1 * 2 + 1);
	ck_assert_int_eq(pm_events[1], 3 * 2 + 1);
	ck_assert_int_eq(pm_events[2], 1 * 2);
	c.wake_ret = 0;

	/* After removals the order follows what is left: b (0x3000) now comes
	 * before a (0x5000). */
	ck_assert_int_eq(vdev_bus_remove(bus, 0x1000), 0);
	ck_assert_int_eq(vdev_bus_remove(bus, 0x2000), 0);
	ck_assert_int_eq(c.destroyed, 1);
	pm_nevents = 0;
	ck_assert_int_eq(vdev_bus_wake(bus), 0);
	ck_assert_int_eq(pm_nevents, 2);
	ck_assert_int_eq(pm_events[0], 2 * 2 + 1);
	ck_assert_int_eq(pm_events[1], 1 * 2 + 1);
	for (i = 0; i < 2; i++)
		ck_assert_int_eq(vdev_bus_sleep(bus), 0);
	ck_assert_int_eq(pm_nevents, 6);

	vdev_bus_free(bus);
	ck_assert_int_eq(a.destroyed + b.destroyed + c.destroyed + d.destroyed, 4);
}
END_TEST

/* ---- snapshot / restore ---- */

START_TEST(test_snapshot_restore)
{
	struct vdev_bus_device_ops ops = fops_pm(), nopm = fops();
	struct fdev a = {.id = 1, .state = "alpha", .state_len = 5};
	struct fdev b = {.id = 2, .state = "bravo!", .state_len = 6};
	struct fdev c = {.id = 3};
	vdev_bus *bus = new_bus(VDEV_BUS_PIO);
	uint8_t buf[16];
	uint64_t len = 0;

	ck_assert_int_eq(vdev_bus_insert(bus, 0x10, 0x10, &ops, &a), 0);
	ck_assert_int_eq(vdev_bus_insert(bus, 0x80, 0x10, &ops, &a), 0);
	ck_assert_int_eq(vdev_bus_insert(bus, 0x40, 0x10, &ops, &b), 0);
	ck_assert_int_eq(vdev_bus_insert(bus, 0x60, 0x10, &nopm, &c), 0);

	/* Any address inside any range of the device reaches it. */
	ck_assert_int_eq(vdev_bus_snapshot_device(bus, 0x8f, buf, sizeof(buf), &len), 0);
	ck_assert_uint_eq(len, 5);
	ck_assert_mem_eq(buf, "alpha", 5);
	ck_assert_int_eq(vdev_bus_snapshot_device(bus, 0x44, buf, sizeof(buf), &len), 0);
	ck_assert_uint_eq(len, 6);
	ck_assert_mem_eq(buf, "bravo!", 6);
	/* The hook's -ENOSPC with the size needed passes through; a size query
	 * with no buffer is allowed. */
	len = 0;
	ck_assert_int_eq(vdev_bus_snapshot_device(bus, 0x40, buf, 2, &len), -ENOSPC);
	ck_assert_uint_eq(len, 6);
	len = 0;
	ck_assert_int_eq(vdev_bus_snapshot_device(bus, 0x40, NULL, 0, &len), -ENOSPC);
	ck_assert_uint_eq(len, 6);

	ck_assert_int_eq(vdev_bus_snapshot_device(bus, 0x60, buf, sizeof(buf), &len), -EOPNOTSUPP);
	ck_assert_int_eq(vdev_bus_restore_device(bus, 0x6f, buf, 4), -EOPNOTSUPP);
	ck_assert_int_eq(vdev_bus_snapshot_device(bus, 0x50, buf, sizeof(buf), &len), -ENOENT);
	ck_assert_int_eq(vdev_bus_restore_device(bus, 0x90, buf, 4), -ENOENT);
	ck_assert_int_eq(vdev_bus_snapshot_device(bus, 0x10, buf, sizeof(buf), NULL), -EINVAL);
	ck_assert_int_eq(vdev_bus_snapshot_device(bus, 0x10, NULL, 4, &len), -EINVAL);
	ck_assert_int_eq(vdev_bus_snapshot_device(NULL, 0x10, buf, 4, &len), -EINVAL);
	ck_assert_int_eq(vdev_bus_restore_device(bus, 0x10, NULL, 4), -EINVAL);
	ck_assert_int_eq(vdev_bus_restore_device(NULL, 0x10, buf, 4), -EINVAL);

	/* Restore goes to b only. */
	ck_assert_int_eq(vdev_bus_restore_device(bus, 0x4f, "xyz", 3), 0);
	ck_assert_uint_eq(b.state_len, 3);
	ck_assert_mem_eq(b.state, "xyz", 3);
	ck_assert_uint_eq(a.state_len, 5);
	ck_assert_mem_eq(a.state, "alpha", 5);
	/* The hook's error passes through. */
	ck_assert_int_eq(vdev_bus_restore_device(bus, 0x10, buf, 100), -EINVAL);
	vdev_bus_free(bus);
}
END_TEST

/* ---- logging ---- */

static int log_count, log_worst = 99;

static void sink(void *opaque, int level, const char *msg)
{
	(void)opaque;
	ck_assert_ptr_nonnull(msg);
	log_count++;
	if (level < log_worst)
		log_worst = level;
}

START_TEST(test_refusals_logged_at_debug)
{
	struct vdev_bus_device_ops ops = fops();
	struct fdev a = {.id = 1};
	vdev_bus *bus = new_bus(VDEV_BUS_MMIO);
	uint8_t buf[4];

	vdev_log_set(sink, NULL, VDEV_LOG_DEBUG);
	ck_assert_int_eq(vdev_bus_insert(bus, 0x1000, 0x10, &ops, &a), 0);
	ck_assert_int_eq(log_count, 0);
	ck_assert_int_eq(vdev_bus_insert(bus, 0x1008, 0x10, &ops, &a), -EEXIST);
	ck_assert_int_eq(log_count, 1);
	ck_assert_int_eq(vdev_bus_insert(bus, 0x2000, 0, &ops, &a), -EINVAL);
	ck_assert_int_eq(vdev_bus_read(bus, 0x3000, 4, 0, buf), -ENOENT);
	ck_assert_int_eq(vdev_bus_read(bus, 0x100e, 4, 0, buf), -EINVAL);
	ck_assert_int_eq(vdev_bus_remove(bus, 0x3000), -ENOENT);
	ck_assert_int_eq(log_count, 5);
	ck_assert_int_eq(log_worst, VDEV_LOG_DEBUG);
	/* Above the sink's level nothing is delivered. */
	vdev_log_set(sink, NULL, VDEV_LOG_INFO);
	ck_assert_int_eq(vdev_bus_remove(bus, 0x3000), -ENOENT);
	ck_assert_int_eq(log_count, 5);
	vdev_log_set(NULL, NULL, 0);
	vdev_bus_free(bus);
}
END_TEST

static Suite *bus_suite(void)
{
	Suite *s = suite_create("bus");
	TCase *tc = tcase_create("core");
	TCase *mt = tcase_create("threads");

	tcase_add_test(tc, test_new_kinds);
	tcase_add_test(tc, test_dispatch_access_info);
	tcase_add_test(tc, test_unclaimed);
	tcase_add_test(tc, test_bad_sizes);
	tcase_add_test(tc, test_cross_end);
	tcase_add_test(tc, test_overlaps);
	tcase_add_test(tc, test_edges);
	tcase_add_test(tc, test_bad_ops);
	tcase_add_test(tc, test_remove);
	tcase_add_test(tc, test_destroy_once);
	tcase_add_test(tc, test_many_ranges);
	tcase_add_test(tc, test_sleep_wake);
	tcase_add_test(tc, test_snapshot_restore);
	tcase_add_test(tc, test_refusals_logged_at_debug);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);

	tcase_add_test(mt, test_slow_device_blocks_nobody_else);
	tcase_add_test(mt, test_remove_waits_for_access);
	tcase_add_test(mt, test_remove_shared_device);
	tcase_add_test(mt, test_dispatch_during_insert_remove);
	tcase_set_timeout(mt, 120);
	suite_add_tcase(s, mt);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(bus_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
