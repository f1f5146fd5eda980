/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the virtio-blk device model: the input is a hostile
 * guest. A blk device over a small memory disk is driven through the
 * vdev_device_* control calls; the guest memory (rings, headers, data,
 * discard segments) comes from the input. Layout:
 *
 *   byte 0    features: bit0 packed, bit1 EVENT_IDX, bit2 INDIRECT,
 *             bit3 FLUSH, bit4 DISCARD + WRITE_ZEROES, bit5 read-only
 *             device, bit6 CONFIG_WCE, bit7 two queues (MQ)
 *   byte 1    queue size (split: 1 << (b % 6), packed: 1 + b % 32)
 *   byte 2    seg_max (1 + b % 8)
 *   byte 3    number of 4-byte operations that follow (at most 32)
 *   ops       {code, a, b, c}: kick queue a & 1 / poke guest byte at
 *             (b << 8 | c) with a / process completions / sleep + wake /
 *             writeback config write / queue reset + re-enable / device reset
 *             and re-init
 *   rest      guest memory image (rings at fixed offsets)
 *
 * Invariants (a violation aborts): every control call returns, the counters
 * add up (requests == sum of types + malformed), a read-only device never
 * changes its disk.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include <virtio-dev/blk.h>
#include <virtio-dev/device.h>
#include <virtio-dev/irq.h>
#include <virtio-dev/mem.h>

#define GPA 0x10000ull
#define MEM_SIZE 0x10000u
#define DISK 0x8000u
#define NQ 2u

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c))                                                                          \
			abort();                                                                   \
	} while (0)

#define BIT(n) (1ull << (n))

static int irq_cb(void *opaque, uint32_t kind, uint32_t queue)
{
	(void)opaque;
	(void)kind;
	(void)queue;
	return 0;
}

struct fz {
	vdev_device *dev;
	uint64_t want;
	uint32_t qsize;
	uint32_t nq;
};

/* Queue @i's rings: 0x0 + i * 0x3000 (desc), +0x1000 (driver), +0x2000 (device). */
static void queue_setup(struct fz *f, uint32_t i)
{
	struct vdev_queue_config qc = VDEV_QUEUE_CONFIG_INIT;

	qc.size = f->qsize;
	qc.desc_addr = GPA + i * 0x3000u;
	qc.driver_addr = GPA + i * 0x3000u + 0x1000;
	qc.device_addr = GPA + i * 0x3000u + 0x2000;
	if (vdev_device_queue_setup(f->dev, i, &qc) == 0)
		vdev_device_queue_enable(f->dev, i, 1);
}

static void init_device(struct fz *f)
{
	uint8_t st = VDEV_STATUS_ACKNOWLEDGE;

	vdev_device_reset(f->dev);
	vdev_device_set_status(f->dev, st);
	st |= VDEV_STATUS_DRIVER;
	vdev_device_set_status(f->dev, st);
	vdev_device_set_acked_features(f->dev, f->want & vdev_device_features(f->dev));
	st |= VDEV_STATUS_FEATURES_OK;
	if (vdev_device_set_status(f->dev, st) < 0)
		return;
	for (uint32_t i = 0; i < f->nq; i++)
		queue_setup(f, i);
	vdev_device_set_status(f->dev, st | VDEV_STATUS_DRIVER_OK);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vdev_blk_config bc = VDEV_BLK_CONFIG_INIT;
	struct vdev_irq_ops iops = VDEV_IRQ_OPS_INIT;
	struct vdev_blk_stats s = VDEV_BLK_STATS_INIT;
	vdev_blk_backend *be = NULL;
	vdev_blk *blk = NULL;
	vdev_irq *irq = NULL;
	vdev_mem *mem = NULL;
	uint8_t *gm, *disk_copy = NULL;
	struct fz f = {0};
	uint8_t flags;
	uint32_t nops;
	const uint8_t *ops;

	if (size < 4)
		return 0;
	flags = data[0];
	nops = data[3] % 33;
	if (size < 4 + (size_t)nops * 4)
		return 0;
	ops = data + 4;

	gm = aligned_alloc(4096, MEM_SIZE);
	CHECK(gm);
	memset(gm, 0, MEM_SIZE);
	{
		size_t img = size - 4 - (size_t)nops * 4;

		memcpy(gm, ops + nops * 4, img < MEM_SIZE ? img : MEM_SIZE);
	}
	CHECK(vdev_mem_new(&mem) == 0);
	CHECK(vdev_mem_add_region(mem, GPA, MEM_SIZE, gm, 0) == 0);
	iops.trigger = irq_cb;
	CHECK(vdev_irq_new(&iops, NULL, &irq) == 0);
	CHECK(vdev_blk_backend_new_memory(DISK, 0, &be) == 0);
	memset(vdev_blk_backend_memory_data(be), 0xa5, DISK);

	f.nq = (flags & 0x80) ? NQ : 1;
	bc.num_queues = f.nq;
	bc.queue_size = 32;
	bc.seg_max = 1 + data[2] % 8;
	bc.max_discard_seg = 2;
	bc.max_write_zeroes_seg = 3;
	bc.flags = (flags & 0x20) ? VDEV_BLK_F_READONLY : 0;
	memcpy(bc.serial, "fuzz-serial", 11);
	CHECK(vdev_blk_new(&bc, be, &blk) == 0);
	f.dev = vdev_blk_device(blk);
	CHECK(vdev_device_set_memory(f.dev, mem) == 0);
	CHECK(vdev_device_set_irq(f.dev, irq) == 0);

	f.want = BIT(VIRTIO_F_VERSION_1) | BIT(VIRTIO_BLK_F_MQ) | BIT(VIRTIO_F_RING_RESET);
	if (flags & 0x01)
		f.want |= BIT(VIRTIO_F_RING_PACKED);
	if (flags & 0x02)
		f.want |= BIT(VIRTIO_RING_F_EVENT_IDX);
	if (flags & 0x04)
		f.want |= BIT(VIRTIO_RING_F_INDIRECT_DESC);
	if (flags & 0x08)
		f.want |= BIT(VIRTIO_BLK_F_FLUSH);
	if (flags & 0x10)
		f.want |= BIT(VIRTIO_BLK_F_DISCARD) | BIT(VIRTIO_BLK_F_WRITE_ZEROES);
	if (flags & 0x40)
		f.want |= BIT(VIRTIO_BLK_F_CONFIG_WCE);
	f.qsize = (flags & 0x01) ? 1u + data[1] % 32u : 1u << (data[1] % 6);
	if (flags & 0x20) {
		disk_copy = malloc(DISK);
		CHECK(disk_copy);
		memcpy(disk_copy, vdev_blk_backend_memory_data(be), DISK);
	}
	init_device(&f);

	for (uint32_t i = 0; i < nops; i++) {
		const uint8_t *op = ops + i * 4;
		uint32_t q = op[1] % f.nq;
		uint32_t off = ((uint32_t)op[2] << 8 | op[3]) % MEM_SIZE;
		uint8_t v;

		switch (op[0] % 10) {
		case 0:
		case 1:
		case 2:
			vdev_device_queue_notify(f.dev, q);
			break;
		case 3:
		case 4:
			gm[off] = op[1];
			break;
		case 5:
			vdev_blk_process_completions(blk, q);
			break;
		case 6:
			if (vdev_device_sleep(f.dev) == 0)
				CHECK(vdev_device_wake(f.dev) == 0);
			break;
		case 7:
			v = op[1] & 1;
			vdev_device_config_write(f.dev, offsetof(struct virtio_blk_config, wce), &v,
						 1);
			break;
		case 8:
			if (vdev_device_queue_reset(f.dev, q) == 0)
				queue_setup(&f, q);
			break;
		default:
			if (op[1] & 1)
				init_device(&f);
			else
				vdev_device_queue_notify(f.dev, q);
			break;
		}
	}

	CHECK(vdev_blk_get_stats(blk, &s) == 0);
	CHECK(s.requests == s.reads + s.writes + s.flushes + s.discards + s.write_zeroes +
				    s.get_ids + s.malformed);
	CHECK(s.ioerr + s.unsupp <= s.requests);
	if (disk_copy) {
		CHECK(memcmp(disk_copy, vdev_blk_backend_memory_data(be), DISK) == 0);
		CHECK(s.bytes_written == 0);
	}
	vdev_blk_free(blk);
	vdev_blk_backend_free(be);
	vdev_irq_free(irq);
	vdev_mem_free(mem);
	free(disk_copy);
	free(gm);
	return 0;
}
