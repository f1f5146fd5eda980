/* SPDX-License-Identifier: MIT */
/*
 * vdev-loopback --device blk: the library's virtio-blk wired up the way a
 * VMM wires it, and driven the way a guest drives it.
 *
 *   backend     vdev_blk_backend_new_memory: a 256 KiB RAM disk
 *   device      vdev_blk_new: the virtio-blk model and its vdev_device
 *   transport   vdev_mmio_new: virtio-mmio (version 2) registers
 *   bus         vdev_bus_new(VDEV_BUS_MMIO), the transport inserted at
 *               MMIO_BASE with vdev_mmio_bus_ops()
 *   interrupts  vdev_irq_new_eventfd(..., VDEV_IRQ_F_SHARED): one eventfd,
 *               the line a KVM VMM hands to KVM_IRQFD
 *   guest       vdev_drv over vdev_drv_mmio_transport(); each register access
 *               is a vdev_bus_read / vdev_bus_write, as a vCPU's KVM_EXIT_MMIO
 *               reaches a VMM's bus
 *
 * The guest writes, reads, flushes, asks for the disk's id and sends a few
 * requests the device must refuse; at the end the RAM disk must hold exactly
 * what the guest wrote, and the device's counters must match what was sent.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>

#include <virtio-dev/virtio-dev.h>

#include "loopback.h"

#define GUEST_RAM_GPA UINT64_C(0x40000000)
#define GUEST_RAM_SIZE (UINT64_C(1) << 20)
#define ARENA_SIZE (UINT64_C(256) << 10) /* the driver's rings; requests use the rest */
#define MMIO_BASE UINT64_C(0xd0000000)
#define QUEUE_SIZE 256u
#define INDIRECT_MAX 4u
#define BATCH_MAX 32u
#define SECTOR 512u
#define DISK_SECTORS 512u
#define MAX_SECTORS 4u /* per read or write */
#define SERIAL "vdev-loopback-disk"
/* One request slot in guest RAM: header at +0, data at +64, then status. */
#define SLOT_SIZE 3072u
#define DATA_OFF 64u
#define STATUS_OFF (DATA_OFF + MAX_SECTORS * SECTOR)
#define DEVICE_FEATURE_BITS (BIT(24) - 1) /* device-specific bits 0..23 */
_Static_assert(STATUS_OFF < SLOT_SIZE, "a request must fit its slot");
_Static_assert(GUEST_RAM_SIZE - ARENA_SIZE >= QUEUE_SIZE * SLOT_SIZE, "slots must fit");

struct request {
	int busy;
	uint32_t type;
	uint8_t expect_status;
	uint32_t written;                   /* bytes the device must report */
	uint8_t expect[MAX_SECTORS * SECTOR]; /* IN, GET_ID: what the data must be */
};

struct blk_demo {
	const struct options *opt;
	uint64_t rand;
	/* the VMM's objects */
	uint8_t *ram;
	vdev_mem *mem;
	vdev_blk_backend *backend;
	vdev_blk *blk;
	vdev_irq *irq;
	vdev_mmio *mmio;
	vdev_bus *bus;
	/* the guest's */
	void *regs_storage;
	vdev_drv_mmio *regs;
	vdev_drv *drv;
	vdev_drvq *q;
	struct request req[QUEUE_SIZE];
	uint8_t shadow[DISK_SECTORS * SECTOR]; /* what the disk must hold */
	uint64_t sent_reads, sent_writes, sent_flushes, sent_ids, sent_ioerr, sent_unsupp;
	uint64_t served, bytes, kicks, interrupts, bad_accesses;
	char failure[256];
};

static void fail(struct blk_demo *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail(struct blk_demo *d, const char *fmt, ...)
{
	va_list ap;

	if (d->failure[0])
		return; /* keep the first reason */
	va_start(ap, fmt);
	vsnprintf(d->failure, sizeof(d->failure), fmt, ap);
	va_end(ap);
}

#define CHECK(call, what)                                                                          \
	do {                                                                                       \
		int r_ = (call);                                                                   \
		if (r_ < 0) {                                                                      \
			fail(d, "%s: %s", what, strerror(-r_));                                    \
			return -1;                                                                 \
		}                                                                                  \
	} while (0)

static uint8_t *host(const struct blk_demo *d, uint64_t gpa)
{
	return d->ram + (gpa - GUEST_RAM_GPA);
}

/* ---- the VMM side ------------------------------------------------------ */

static int setup_vmm(struct blk_demo *d)
{
	struct vdev_blk_config bcfg = VDEV_BLK_CONFIG_INIT;
	struct vdev_mmio_config mcfg = VDEV_MMIO_CONFIG_INIT;
	vdev_device *dev;

	/* Guest RAM: 1 MiB of host memory that the guest sees at 1 GiB. */
	d->ram = aligned_alloc(4096, GUEST_RAM_SIZE);
	if (!d->ram)
		CHECK(-ENOMEM, "guest RAM");
	memset(d->ram, 0, GUEST_RAM_SIZE);
	CHECK(vdev_mem_new(&d->mem), "guest memory");
	CHECK(vdev_mem_add_region(d->mem, GUEST_RAM_GPA, GUEST_RAM_SIZE, d->ram, 0), "guest memory");

	/* The disk: a RAM-disk backend under the virtio-blk model. */
	CHECK(vdev_blk_backend_new_memory((uint64_t)DISK_SECTORS * SECTOR, 0, &d->backend),
	      "backend");
	bcfg.queue_size = QUEUE_SIZE;
	memcpy(bcfg.serial, SERIAL, strlen(SERIAL));
	CHECK(vdev_blk_new(&bcfg, d->backend, &d->blk), "virtio-blk");
	dev = vdev_blk_device(d->blk);
	CHECK(vdev_device_set_memory(dev, d->mem), "virtio-blk memory");

	/* One interrupt line, as an eventfd (a KVM VMM: KVM_IRQFD on its GSI). */
	CHECK(vdev_irq_new_eventfd(vdev_device_num_queues(dev), VDEV_IRQ_F_SHARED, &d->irq),
	      "interrupt eventfd");

	/* virtio-mmio registers in front of the device, claimed on the MMIO bus. */
	mcfg.base = MMIO_BASE;
	CHECK(vdev_mmio_new(&mcfg, dev, d->irq, &d->mmio), "virtio-mmio");
	CHECK(vdev_bus_new(VDEV_BUS_MMIO, &d->bus), "bus");
	CHECK(vdev_bus_insert(d->bus, MMIO_BASE, VDEV_MMIO_SIZE, vdev_mmio_bus_ops(), d->mmio),
	      "bus insert");
	return 0;
}

/*
 * The device side of the event loop, after a kick. Here the kick was a
 * QueueNotify write that ran the device on this thread (a KVM VMM would
 * register KVM_IOEVENTFD at vdev_mmio_notify_address and call
 * vdev_device_queue_notify when the eventfd fires). An asynchronous backend
 * (io_uring) finishes I/O later and makes the device's completion fd
 * readable: then call vdev_blk_process_completions. A VMM registers that fd
 * once in its event loop. The memory backend's I/O is done when the kick
 * returns, so here the fd never fires.
 */
static void device_completions(struct blk_demo *d)
{
	int fd = vdev_blk_completion_fd(d->blk, 0);
	struct pollfd p = {.fd = fd, .events = POLLIN};

	/* Non-blocking: with the memory backend the fd never fires. */
	if (fd >= 0 && poll(&p, 1, 0) > 0)
		vdev_blk_process_completions(d->blk, 0);
}

/* ---- the guest side ----------------------------------------------------- */

/* Register accesses go through the bus, as KVM_EXIT_MMIO would. */
static uint32_t guest_read(void *ctx, uint32_t offset, uint32_t width)
{
	struct blk_demo *d = ctx;
	uint8_t b[4] = {0};

	if (vdev_bus_read(d->bus, MMIO_BASE + offset, width, 0, b) < 0)
		d->bad_accesses++;
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static void guest_write(void *ctx, uint32_t offset, uint32_t width, uint32_t value)
{
	struct blk_demo *d = ctx;
	uint8_t b[4] = {(uint8_t)value, (uint8_t)(value >> 8), (uint8_t)(value >> 16),
			(uint8_t)(value >> 24)};

	if (vdev_bus_write(d->bus, MMIO_BASE + offset, width, 0, b) < 0)
		d->bad_accesses++;
}

static const struct vdev_drv_mmio_io_ops guest_io = {
	.struct_size = sizeof(struct vdev_drv_mmio_io_ops),
	.read = guest_read,
	.write = guest_write,
};

static uint64_t drv_negotiate(vdev_drv *drv, void *opaque, uint64_t offered)
{
	struct blk_demo *d = opaque;

	(void)drv;
	return offered & (d->opt->want | DEVICE_FEATURE_BITS);
}

static int drv_pre_init(vdev_drv *drv, void *opaque)
{
	struct blk_demo *d = opaque;

	return vdev_drv_queue_setup(drv, 0, 0, INDIRECT_MAX, &d->q);
}

static const struct vdev_driver_ops driver_ops = {
	.struct_size = sizeof(struct vdev_driver_ops),
	.negotiate_features = drv_negotiate,
	.pre_device_initialization = drv_pre_init,
};

/* Probe the registers, negotiate, set up the queue, read the capacity. */
static int setup_guest(struct blk_demo *d)
{
	struct vdev_drv_config dcfg = VDEV_DRV_CONFIG_INIT;
	vdev_device *dev = vdev_blk_device(d->blk);
	uint64_t features, expected, sectors = 0, notify_addr;
	uint32_t id, notify_value;
	uint8_t cap[8];

	d->regs_storage = malloc(vdev_drv_mmio_storage_size());
	if (!d->regs_storage)
		CHECK(-ENOMEM, "driver");
	CHECK(vdev_drv_mmio_init(d->regs_storage, vdev_drv_mmio_storage_size(), &guest_io, d,
				 &d->regs),
	      "driver registers");
	CHECK(vdev_drv_mmio_probe(d->regs, &id), "probe");
	printf("device found at mmio 0x%" PRIx64 ": device id %" PRIu32 " (%s), vendor 0x%08" PRIx32
	       "\n",
	       MMIO_BASE, id, id == VIRTIO_ID_BLOCK ? "virtio-blk" : "unexpected",
	       guest_read(d, 0x00c, 4) /* VendorID */);
	if (id != VIRTIO_ID_BLOCK)
		CHECK(-ENODEV, "probe");
	print_features("offered", vdev_device_features(dev), id);

	dcfg.transport = vdev_drv_mmio_transport();
	dcfg.transport_opaque = d->regs;
	dcfg.driver = &driver_ops;
	dcfg.driver_opaque = d;
	dcfg.arena = d->ram;
	dcfg.arena_gpa = GUEST_RAM_GPA;
	dcfg.arena_size = ARENA_SIZE;
	CHECK(vdev_drv_new(&dcfg, &d->drv), "driver");
	CHECK(vdev_drv_start(d->drv), "driver initialization");
	features = vdev_drv_features(d->drv);
	print_features("negotiated", features, id);
	expected = vdev_device_features(dev) & (d->opt->want | DEVICE_FEATURE_BITS);
	if (features != expected || vdev_device_acked_features(dev) != features)
		fail(d, "negotiated 0x%" PRIx64 ", device acked 0x%" PRIx64 ", expected 0x%" PRIx64,
		     features, vdev_device_acked_features(dev), expected);

	CHECK(vdev_drv_config_read(d->drv, offsetof(struct virtio_blk_config, capacity), cap, 8),
	      "config read");
	for (int i = 7; i >= 0; i--)
		sectors = sectors << 8 | cap[i];
	printf("capacity: %" PRIu64 " sectors of 512 bytes (%" PRIu64 " KiB)\n", sectors,
	       sectors / 2);
	if (sectors != DISK_SECTORS)
		fail(d, "capacity %" PRIu64 ", expected %u", sectors, DISK_SECTORS);

	CHECK(vdev_mmio_notify_address(d->mmio, 0, &notify_addr, &notify_value), "notify address");
	printf("queue 0: %s ring of %" PRIu32 " entries; a kick is a 4-byte write of %" PRIu32
	       " at 0x%" PRIx64 " (the KVM_IOEVENTFD address)\n",
	       features & BIT(VIRTIO_F_RING_PACKED) ? "packed" : "split", vdev_drvq_size(d->q),
	       notify_value, notify_addr);
	return 0;
}

static void put_le(uint8_t *p, uint64_t v, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/*
 * One request: a 16-byte header, data, a status byte. Mostly writes and
 * reads of 1..4 sectors, some FLUSH and GET_ID, and a few the device must
 * refuse (a read past the end: IOERR; an unknown type: UNSUPP). Requests are
 * served in the order they were made available, so a read must see the
 * shadow disk as it is at submission.
 */
static int submit(struct blk_demo *d, struct request *rq)
{
	uint64_t base = GUEST_RAM_GPA + ARENA_SIZE + (uint64_t)(rq - d->req) * SLOT_SIZE;
	uint32_t pick = rnd(&d->rand, 0, 199), nsect = rnd(&d->rand, 1, MAX_SECTORS);
	uint32_t data = 0, out = 1, n = 0;
	uint64_t sector = rnd(&d->rand, 0, DISK_SECTORS - nsect), gpa[3];
	uint32_t len[3];
	int r;

	rq->expect_status = VIRTIO_BLK_S_OK;
	if (pick < 90) {
		rq->type = VIRTIO_BLK_T_OUT;
		data = nsect * SECTOR;
		for (uint32_t k = 0; k < data; k++)
			host(d, base + DATA_OFF)[k] = (uint8_t)rnd(&d->rand, 0, 255);
		memcpy(d->shadow + sector * SECTOR, host(d, base + DATA_OFF), data);
		d->sent_writes++;
	} else if (pick < 180) {
		rq->type = VIRTIO_BLK_T_IN;
		data = nsect * SECTOR;
		memcpy(rq->expect, d->shadow + sector * SECTOR, data);
		d->sent_reads++;
	} else if (pick < 186) {
		rq->type = VIRTIO_BLK_T_FLUSH;
		d->sent_flushes++;
	} else if (pick < 192) {
		rq->type = VIRTIO_BLK_T_GET_ID;
		data = VIRTIO_BLK_ID_BYTES;
		memset(rq->expect, 0, data);
		memcpy(rq->expect, SERIAL, strlen(SERIAL));
		d->sent_ids++;
	} else if (pick < 196) {
		rq->type = VIRTIO_BLK_T_IN; /* the last sector and one past the end */
		sector = DISK_SECTORS - 1;
		data = 2 * SECTOR;
		rq->expect_status = VIRTIO_BLK_S_IOERR;
		d->sent_ioerr++;
	} else {
		rq->type = 0x1234; /* no such request type */
		rq->expect_status = VIRTIO_BLK_S_UNSUPP;
		d->sent_unsupp++;
	}
	memset(host(d, base), 0, DATA_OFF);
	put_le(host(d, base), rq->type, 4);
	put_le(host(d, base + 8), sector, 8);
	*host(d, base + STATUS_OFF) = 0xff;

	gpa[n] = base;
	len[n++] = 16;
	if (data) {
		if (rq->type == VIRTIO_BLK_T_OUT)
			out = 2;
		else
			memset(host(d, base + DATA_OFF), 0, data);
		gpa[n] = base + DATA_OFF;
		len[n++] = data;
	}
	gpa[n] = base + STATUS_OFF;
	len[n++] = 1;
	/* What the device reports as written: the status, and data it returned. */
	rq->written = 1;
	if (rq->expect_status == VIRTIO_BLK_S_OK && rq->type != VIRTIO_BLK_T_OUT)
		rq->written += data;
	r = vdev_drvq_add(d->q, gpa, len, out, n - out, rq,
			  rnd(&d->rand, 0, 3) == 0 ? VDEV_DRVQ_ADD_NO_INDIRECT : 0);
	if (r == 0)
		rq->busy = 1;
	return r;
}

/* The guest's interrupt handler: was the line raised? Then read and
 * acknowledge InterruptStatus. Returns 1 if it was. */
static int take_interrupt(struct blk_demo *d)
{
	uint64_t count;
	uint32_t isr;

	if (read(vdev_irq_eventfd(d->irq, VDEV_IRQ_QUEUE, 0), &count, sizeof(count)) !=
	    (ssize_t)sizeof(count))
		return 0; /* not raised (the eventfd is non-blocking) */
	isr = vdev_drv_mmio_ack_interrupt(d->regs);
	if (isr & 2u)
		fail(d, "configuration-change interrupt (device status 0x%02" PRIx32 ")",
		     vdev_drv_status(d->drv));
	d->interrupts++;
	return 1;
}

/* Collect the used buffers and check each; returns how many. */
static uint32_t collect(struct blk_demo *d)
{
	uint32_t n = 0, len;
	void *token;
	int r;

	while ((r = vdev_drvq_get_used(d->q, &token, &len)) > 0) {
		struct request *rq = token;
		uint64_t base = GUEST_RAM_GPA + ARENA_SIZE + (uint64_t)(rq - d->req) * SLOT_SIZE;
		uint8_t status = *host(d, base + STATUS_OFF);

		if (rq < d->req || rq >= d->req + QUEUE_SIZE || !rq->busy) {
			fail(d, "the device returned a buffer that was not in flight");
			return n;
		}
		if (status != rq->expect_status)
			fail(d, "request type %" PRIu32 ": status %u, expected %u", rq->type, status,
			     rq->expect_status);
		else if (len != rq->written)
			fail(d, "request type %" PRIu32 ": %" PRIu32 " bytes written, expected %" PRIu32,
			     rq->type, len, rq->written);
		else if (len > 1 && memcmp(host(d, base + DATA_OFF), rq->expect, len - 1) != 0)
			fail(d, "request type %" PRIu32 " returned the wrong bytes", rq->type);
		rq->busy = 0;
		d->served++;
		n++;
	}
	if (r < 0)
		fail(d, "vdev_drvq_get_used: %s", strerror(-r));
	return n;
}

/*
 * Batches of 1..32 requests, one kick each. About one batch in four is
 * collected with interrupts off, as a polling driver would; with them on,
 * a batch that used buffers must have raised the line.
 */
static void run_requests(struct blk_demo *d)
{
	uint64_t submitted = 0, batches = 0, polled = 0;

	while (submitted < d->opt->requests && !d->failure[0]) {
		uint32_t batch = rnd(&d->rand, 1, BATCH_MAX), added = 0, done;
		int poll_mode = rnd(&d->rand, 0, 3) == 0, irq;

		vdev_drvq_enable_interrupts(d->q, !poll_mode);
		while (added < batch && submitted < d->opt->requests) {
			int r = submit(d, &d->req[added]);

			if (r < 0) {
				fail(d, "vdev_drvq_add: %s", strerror(-r));
				return;
			}
			added++;
			submitted++;
		}
		if (vdev_drvq_kick(d->q) > 0)
			d->kicks++;
		device_completions(d);
		irq = take_interrupt(d);
		done = collect(d);
		if (done != added)
			fail(d, "%" PRIu32 " of %" PRIu32 " requests answered after the kick", done,
			     added);
		if (!poll_mode && done && !irq)
			fail(d, "lost interrupt: %" PRIu32 " buffers used, line not raised", done);
		batches++;
		polled += poll_mode;
	}
	printf("served %" PRIu64 " requests in %" PRIu64 " batches (%" PRIu64
	       " polled); driver kicks: %" PRIu64 ", interrupts: %" PRIu64 "\n",
	       d->served, batches, polled, d->kicks, d->interrupts);
}

/* The device's counters against what the guest sent, the disk against the
 * shadow. */
static void check_results(struct blk_demo *d)
{
	struct vdev_blk_stats st = VDEV_BLK_STATS_INIT;
	uint8_t status = vdev_device_status(vdev_blk_device(d->blk));

	if (vdev_blk_get_stats(d->blk, &st) < 0) {
		fail(d, "vdev_blk_get_stats failed");
		return;
	}
	printf("requests by type: %" PRIu64 " reads (%" PRIu64 " bytes), %" PRIu64
	       " writes (%" PRIu64 " bytes), %" PRIu64 " flushes, %" PRIu64 " get-id; %" PRIu64
	       " refused (%" PRIu64 " IOERR, %" PRIu64 " UNSUPP)\n",
	       st.reads, st.bytes_read, st.writes, st.bytes_written, st.flushes, st.get_ids,
	       st.malformed, st.ioerr, st.unsupp);
	if (st.requests != d->served || st.reads != d->sent_reads ||
	    st.writes != d->sent_writes || st.flushes != d->sent_flushes ||
	    st.get_ids != d->sent_ids || st.ioerr != d->sent_ioerr ||
	    st.unsupp != d->sent_unsupp || st.malformed != d->sent_ioerr + d->sent_unsupp)
		fail(d, "device counters do not match what the guest sent");
	if (memcmp(vdev_blk_backend_memory_data(d->backend), d->shadow, sizeof(d->shadow)) != 0)
		fail(d, "the disk does not hold what the guest wrote");
	else
		printf("data: all %zu bytes of the backend match what the guest wrote\n",
		       sizeof(d->shadow));
	if (status & (VDEV_STATUS_NEEDS_RESET | VDEV_STATUS_FAILED))
		fail(d, "device status 0x%02x (needs reset or failed)", status);
	if (d->bad_accesses)
		fail(d, "%" PRIu64 " register accesses refused by the bus", d->bad_accesses);
}

int run_blk(const struct options *opt)
{
	struct blk_demo *d = calloc(1, sizeof(*d));
	int pass;

	if (!d) {
		printf("result: FAIL (out of memory)\n");
		return 1;
	}
	d->opt = opt;
	d->rand = opt->seed;
	if (setup_vmm(d) == 0 && setup_guest(d) == 0) {
		run_requests(d);
		check_results(d);
		/* Reset through the status register: the device must stop. */
		vdev_drv_reset(d->drv);
		if (vdev_device_status(vdev_blk_device(d->blk)) != 0)
			fail(d, "device still active after the guest reset it");
		else
			printf("reset: device stopped, status 0\n");
	}

	vdev_drv_free(d->drv);
	free(d->regs_storage);
	vdev_bus_free(d->bus);   /* the guest can no longer reach the registers */
	vdev_mmio_free(d->mmio); /* resets the device, detaches from it */
	vdev_blk_free(d->blk);
	vdev_blk_backend_free(d->backend);
	vdev_irq_free(d->irq);
	vdev_mem_free(d->mem);
	free(d->ram);
	pass = !d->failure[0];
	if (pass)
		printf("result: PASS\n");
	else
		printf("result: FAIL (%s)\n", d->failure);
	free(d);
	return pass ? 0 : 1;
}
