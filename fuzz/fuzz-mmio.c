/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the virtio-mmio transport: the input is a hostile
 * guest driving the register block (version 2 or 1) of a small device whose
 * guest memory also comes from the input. Layout:
 *
 *   byte 0    flags: bit0 legacy (version 1), bit1 the model has
 *             queue_reset/queue_enable (RING_RESET offered), bit2 the model
 *             serves chains on a kick (else it only counts kicks)
 *   byte 1    number of 8-byte operations that follow (at most 255)
 *   ops       {code, a, b, c, v0, v1, v2, v3}, v little endian:
 *             code % 8 == 0/1  register read/write at a raw offset
 *                              ((b << 8 | a) % 0x1100), size {1,2,4,8,3,0}[c % 6]
 *             code % 8 == 2/3  4-byte read/write of a known register
 *                              (table[a % N]), or config space when a & 0x80
 *             code % 8 == 4    a kick through the ioeventfd path
 *             code % 8 == 5    the driver's whole queue setup for queue a % 3
 *                              with rings inside guest memory (size v)
 *             code % 8 == 6    device side: config change, queue interrupt,
 *                              needs-reset, VMM reset, sleep / wake
 *             code % 8 == 7    the init sequence up to (status) v % 5, features
 *                              from v (see ack_features), queues set up
 *                              when v & 0x80
 *   rest      guest memory image (64 KiB at GPA_BASE, zero padded)
 *
 * Checked (abort on violation): MagicValue and Version never change, refused
 * reads leave zeros, results are 0 or a negative errno, a reset leaves every
 * queue not ready and InterruptStatus 0, status never shows reserved bits.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <linux/virtio_config.h>

#include <virtio-dev/virtio-dev.h>

#define GPA_BASE 0x40000000ull
#define MEM_SIZE 0x10000u
#define NQ 2u
#define QMAX 16u
#define CFG_SIZE 12u
#define MAX_OPS 255u

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c))                                                                          \
			abort();                                                                   \
	} while (0)

struct fz {
	uint8_t *mem_buf;
	vdev_mem *mem;
	vdev_irq *irq;
	vdev_device *dev;
	vdev_mmio *mmio;
	int serve;
	int asleep;
	uint32_t version;
	uint8_t config[CFG_SIZE];
	volatile uint8_t sink;
};

static const uint32_t regs[] = {
	0x000, 0x004, 0x008, 0x00c, 0x010, 0x014, 0x020, 0x024, 0x028, 0x030, 0x034,
	0x038, 0x03c, 0x040, 0x044, 0x050, 0x060, 0x064, 0x070, 0x080, 0x084, 0x090,
	0x094, 0x0a0, 0x0a4, 0x0ac, 0x0b0, 0x0b4, 0x0b8, 0x0bc, 0x0c0, 0x0fc,
};

static void serve(struct fz *f, vdev_device *dev, uint32_t qi)
{
	vdev_queue *q = vdev_device_get_queue(dev, qi);
	struct iovec iov[8];
	uint64_t gpa[8];
	int r, n = 0;

	if (!q)
		return;
	do {
		for (;;) {
			struct vdev_queue_elem el = VDEV_QUEUE_ELEM_INIT;
			uint32_t i;

			el.iov = iov;
			el.gpa = gpa;
			el.iov_cap = 8;
			r = vdev_queue_pop(q, &el);
			if (r <= 0 || ++n > 64)
				break;
			for (i = 0; i < el.out_num; i++) {
				if (iov[i].iov_len)
					f->sink ^= ((uint8_t *)iov[i].iov_base)[0];
			}
			for (; i < el.out_num + el.in_num; i++) {
				if (iov[i].iov_len)
					((uint8_t *)iov[i].iov_base)[0] = 0x5a;
			}
			(void)vdev_queue_fill(q, &el, (uint32_t)el.in_len);
		}
		if (vdev_queue_flush(q) > 0)
			(void)vdev_device_interrupt_queue(dev, qi);
	} while (n <= 64 && vdev_queue_set_notification(q, 1) > 0);
}

static int m_config_read(vdev_device *dev, void *opaque, uint32_t off, void *buf, uint32_t len)
{
	struct fz *f = opaque;

	(void)dev;
	CHECK(off + len <= CFG_SIZE && len > 0);
	memcpy(buf, f->config + off, len);
	return 0;
}

static int m_config_write(vdev_device *dev, void *opaque, uint32_t off, const void *buf,
			  uint32_t len)
{
	struct fz *f = opaque;

	(void)dev;
	CHECK(off + len <= CFG_SIZE && len > 0);
	memcpy(f->config + off, buf, len);
	return off == 0 ? -EPERM : 0;
}

static int m_activate(vdev_device *dev, void *opaque)
{
	(void)dev;
	(void)opaque;
	return 0;
}

static void m_reset(vdev_device *dev, void *opaque)
{
	(void)dev;
	(void)opaque;
}

static void m_notify(vdev_device *dev, void *opaque, uint32_t qi)
{
	struct fz *f = opaque;

	CHECK(qi < NQ);
	if (f->serve)
		serve(f, dev, qi);
}

static void m_queue_reset(vdev_device *dev, void *opaque, uint32_t qi)
{
	(void)dev;
	(void)opaque;
	CHECK(qi < NQ);
}

static int m_queue_enable(vdev_device *dev, void *opaque, uint32_t qi)
{
	(void)dev;
	(void)opaque;
	CHECK(qi < NQ);
	return 0;
}

static int m_irq(void *opaque, uint32_t kind, uint32_t queue)
{
	(void)opaque;
	CHECK(kind == VDEV_IRQ_QUEUE || kind == VDEV_IRQ_CONFIG);
	CHECK(kind == VDEV_IRQ_CONFIG ? queue == 0 : queue < NQ);
	return 0;
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int wr32(struct fz *f, uint32_t off, uint32_t v)
{
	uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
	int r = vdev_mmio_write(f->mmio, off, b, 4);

	CHECK(r <= 0);
	return r;
}

static uint32_t rd32(struct fz *f, uint32_t off)
{
	uint8_t b[4];
	int r = vdev_mmio_read(f->mmio, off, b, 4);

	CHECK(r <= 0);
	if (r < 0)
		CHECK(get32(b) == 0);
	return get32(b);
}

/* After a reset from any path: nothing ready, nothing pending. */
static void check_reset_state(struct fz *f)
{
	CHECK(rd32(f, 0x070) == 0);
	CHECK(rd32(f, 0x060) == 0);
	for (uint32_t q = 0; q < NQ; q++) {
		wr32(f, 0x030, q);
		CHECK(rd32(f, f->version == 2 ? 0x044 : 0x040) == 0);
	}
}

static void raw_access(struct fz *f, const uint8_t *op, int write)
{
	static const uint32_t sizes[] = {1, 2, 4, 8, 3, 0};
	uint64_t off = ((uint32_t)op[2] << 8 | op[1]) % 0x1100u;
	uint32_t size = sizes[op[3] % 6];
	uint8_t b[8];
	int r;

	memcpy(b, op + 4, 4);
	memcpy(b + 4, op + 4, 4);
	if (write) {
		r = vdev_mmio_write(f->mmio, off, b, size);
	} else {
		memset(b, 0xcc, sizeof(b));
		r = vdev_mmio_read(f->mmio, off, b, size);
		if (r < 0) {
			for (uint32_t i = 0; i < size; i++)
				CHECK(b[i] == 0);
		}
	}
	CHECK(r <= 0);
	/* The access rules: control registers only as aligned 32-bit. */
	if (off < 0x100 && (size != 4 || (off & 3)))
		CHECK(r == -EINVAL);
	if (off >= 0x1000 || size == 0 || size == 3)
		CHECK(r == -EINVAL);
}

static void known_access(struct fz *f, const uint8_t *op, int write)
{
	uint32_t off = op[1] & 0x80 ? 0x100u + (op[1] & 0x7fu) % (CFG_SIZE + 4)
				   : regs[op[1] % (sizeof(regs) / sizeof(regs[0]))];
	uint32_t v = get32(op + 4);

	if (write) {
		if (off == 0x070 && v == 0) {
			CHECK(wr32(f, off, v) == 0);
			check_reset_state(f);
			return;
		}
		(void)wr32(f, off, v);
	} else {
		(void)rd32(f, off);
	}
}

/* What a driver does to set queue @q up, rings inside guest memory. */
static void queue_setup(struct fz *f, uint32_t q, uint32_t v)
{
	uint64_t base = GPA_BASE + (uint64_t)q * 0x4000;
	uint32_t size = 1u + v % QMAX;

	wr32(f, 0x030, q);
	wr32(f, 0x038, size);
	if (f->version == 2) {
		wr32(f, 0x080, (uint32_t)base);
		wr32(f, 0x084, (uint32_t)(base >> 32));
		wr32(f, 0x090, (uint32_t)(base + 0x1000));
		wr32(f, 0x094, (uint32_t)((base + 0x1000) >> 32));
		wr32(f, 0x0a0, (uint32_t)(base + 0x2000));
		wr32(f, 0x0a4, (uint32_t)((base + 0x2000) >> 32));
		if (v & 0x100)
			wr32(f, 0x0c0, 1); /* queue reset first */
		wr32(f, 0x044, 1);
	} else {
		wr32(f, 0x028, 4096);
		wr32(f, 0x03c, v & 0x200 ? 64 : 4096);
		wr32(f, 0x040, (uint32_t)(base / 4096));
	}
}

static void device_event(struct fz *f, const uint8_t *op)
{
	uint32_t q = op[2] % (NQ + 1);

	switch (op[1] % 6) {
	case 0:
		(void)vdev_device_config_changed(f->dev);
		break;
	case 1:
		(void)vdev_device_interrupt_queue(f->dev, q);
		break;
	case 2:
		vdev_device_set_needs_reset(f->dev);
		CHECK(rd32(f, 0x070) & VIRTIO_CONFIG_S_NEEDS_RESET);
		break;
	case 3:
		vdev_device_reset(f->dev);
		check_reset_state(f);
		break;
	case 4:
		if (!f->asleep && vdev_device_sleep(f->dev) == 0)
			f->asleep = 1;
		break;
	default:
		if (f->asleep && vdev_device_wake(f->dev) == 0)
			f->asleep = 0;
		break;
	}
}

/*
 * The driver's feature words for init_sequence: each offered bit on an input
 * bit of its own (bit 16: bit 0, 17: INDIRECT_DESC, 18: EVENT_IDX, 19:
 * RING_PACKED, 24: RING_RESET), and, when bits 20 and 21 are both set, bit 5,
 * which the device does not offer (FEATURES_OK must then fail). Raw bit
 * patterns (nearly always refused) come through the register ops.
 */
static void ack_features(struct fz *f, uint32_t v)
{
	uint32_t lo = (v >> 16 & 1u) | (v >> 17 & 1u) << 28 | (v >> 18 & 1u) << 29 |
		      (uint32_t)((v >> 20 & 3u) == 3u) << 5;
	uint32_t hi = f->version == 2 ? 1u | (v >> 19 & 1u) << 2 | (v >> 24 & 1u) << 8 : 0;

	wr32(f, 0x024, 0);
	wr32(f, 0x020, lo);
	wr32(f, 0x024, 1);
	wr32(f, 0x020, hi);
}

static void init_sequence(struct fz *f, uint32_t v)
{
	static const uint8_t steps[] = {0x01, 0x03, 0x0b, 0x0f};
	static const uint8_t legacy_steps[] = {0x01, 0x03, 0x07, 0x07};
	uint32_t upto = v % 5;

	wr32(f, 0x070, 0);
	for (uint32_t i = 0; i < upto; i++) {
		if (i == 2)
			ack_features(f, v);
		if (i == 3 && (v & 0x80)) {
			for (uint32_t q = 0; q < NQ; q++)
				queue_setup(f, q, v >> 4);
		}
		wr32(f, 0x070, f->version == 2 ? steps[i] : legacy_steps[i]);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vdev_device_config dc = VDEV_DEVICE_CONFIG_INIT;
	struct vdev_device_ops ops = VDEV_DEVICE_OPS_INIT;
	struct vdev_irq_ops iops = VDEV_IRQ_OPS_INIT;
	struct vdev_mmio_config mc = VDEV_MMIO_CONFIG_INIT;
	struct fz f;
	uint32_t nops, i;
	size_t pos;

	if (size < 2)
		return 0;
	memset(&f, 0, sizeof(f));
	f.version = data[0] & 1 ? 1 : 2;
	f.serve = !!(data[0] & 4);
	nops = data[1];
	pos = 2 + (size_t)nops * 8;
	if (pos > size) {
		nops = (uint32_t)((size - 2) / 8);
		pos = 2 + (size_t)nops * 8;
	}

	f.mem_buf = calloc(1, MEM_SIZE);
	CHECK(f.mem_buf);
	memcpy(f.mem_buf, data + pos, size - pos < MEM_SIZE ? size - pos : MEM_SIZE);
	for (i = 0; i < CFG_SIZE; i++)
		f.config[i] = (uint8_t)i;
	CHECK(vdev_mem_new(&f.mem) == 0);
	CHECK(vdev_mem_add_region(f.mem, GPA_BASE, MEM_SIZE, f.mem_buf, 0) == 0);
	iops.trigger = m_irq;
	CHECK(vdev_irq_new(&iops, &f, &f.irq) == 0);
	dc.device_type = 4;
	dc.features = (1ull << 28) | (1ull << 29) | (1ull << 34) | 1u;
	dc.num_queues = NQ;
	dc.queue_max_size = QMAX;
	dc.config_size = CFG_SIZE;
	ops.config_read = m_config_read;
	ops.config_write = m_config_write;
	ops.activate = m_activate;
	ops.reset = m_reset;
	ops.queue_notify = m_notify;
	if (data[0] & 2) {
		ops.queue_reset = m_queue_reset;
		ops.queue_enable = m_queue_enable;
	}
	CHECK(vdev_device_new(&dc, &ops, &f, &f.dev) == 0);
	CHECK(vdev_device_set_memory(f.dev, f.mem) == 0);
	mc.version = f.version;
	mc.base = 0xa0000000ull;
	CHECK(vdev_mmio_new(&mc, f.dev, f.irq, &f.mmio) == 0);
	if (data[0] & 8)
		CHECK(vdev_mmio_set_shm(f.mmio, data[0] >> 4, 0x1000, 0x2000) == 0);

	for (i = 0; i < nops && i < MAX_OPS; i++) {
		const uint8_t *op = data + 2 + (size_t)i * 8;

		switch (op[0] % 8) {
		case 0:
		case 1:
			raw_access(&f, op, op[0] % 8 == 1);
			break;
		case 2:
		case 3:
			known_access(&f, op, op[0] % 8 == 3);
			break;
		case 4:
			(void)vdev_device_queue_notify(f.dev, get32(op + 4) % (NQ + 2));
			break;
		case 5:
			queue_setup(&f, op[1] % (NQ + 1), get32(op + 4));
			break;
		case 6:
			device_event(&f, op);
			break;
		default:
			init_sequence(&f, get32(op + 4));
			break;
		}
		CHECK(rd32(&f, 0x000) == 0x74726976u);
		CHECK(rd32(&f, 0x004) == f.version);
		CHECK((vdev_device_status(f.dev) & 0x30) == 0);
	}
	if (f.asleep)
		(void)vdev_device_wake(f.dev);

	vdev_mmio_free(f.mmio);
	vdev_device_free(f.dev);
	vdev_irq_free(f.irq);
	vdev_mem_free(f.mem);
	free(f.mem_buf);
	return 0;
}
