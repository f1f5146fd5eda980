/* SPDX-License-Identifier: MIT */
/*
 * virtio-blk as the guest sees it. The library's driver half (vdev_drv over
 * vdev_drv_mmio or vdev_drv_vpci) runs the initialization sequence and the
 * split ring; the requests (header, data, status byte) are built here by
 * hand. Completions come by polling the used ring or, in TG_MODE_IRQ, by
 * interrupt (virtio-mmio: its one interrupt, acknowledged in the device;
 * virtio-pci: MSI-X, config on vector 0, the queue on vector 1).
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_mmio.h>
#include <linux/virtio_ring.h>

#include <virtio-dev/driver.h>
#include <virtio-dev/mmio.h>
#include <virtio-dev/virtio-pci.h>

#include "../tg-pattern.h"
#include "tg.h"

#define BIT(n) (1ull << (n))

#define QUEUE_SIZE 256u        /* at most; less if the device offers less */
#define ARENA_SIZE (128u << 10) /* rings and the driver's bookkeeping */
#define INDIRECT_MAX 4u         /* header, data, status (+1 spare) */
#define VERIFY_BATCH 32u        /* verify requests in flight at once */
#define IO_TIMEOUT_MS 10000u    /* no completion for this long: the device is stuck */
#define SECTORS_PER_BLOCK (TG_BLOCK / 512u)

/* Features this guest asks for; the driver half adds VERSION_1 and withholds
 * what its rings do not implement. No RING_PACKED: the split ring is used. */
#define WANTED                                                                            \
	(BIT(VIRTIO_RING_F_EVENT_IDX) | BIT(VIRTIO_RING_F_INDIRECT_DESC) |                   \
	 BIT(VIRTIO_BLK_F_FLUSH) | BIT(VIRTIO_BLK_F_BLK_SIZE) | BIT(VIRTIO_BLK_F_SEG_MAX) |  \
	 BIT(VIRTIO_BLK_F_RO))

/* One request: the header and status byte, then the guest's bookkeeping. */
struct tg_req {
	struct virtio_blk_outhdr hdr; /* device-readable */
	uint8_t status;               /* device-writable */
	uint32_t used_len;            /* bytes the device said it wrote */
	uint8_t *data;                /* TG_BLOCK bytes, 4 KiB aligned */
	struct tg_req *next_free;
};

struct tg_blk {
	const struct vdev_drv_transport_ops *t;
	void *tp;              /* t's opaque */
	uint64_t base;         /* virtio-mmio: the register block */
	vdev_drv_mmio *regs;   /* virtio-mmio */
	vdev_drv_vpci *vpci;   /* virtio-pci */
	int msix;              /* virtio-pci: MSI-X enabled */
	vdev_drv *drv;
	vdev_drvq *q;
	uint64_t features;
	uint64_t sectors;
	struct tg_req *free;
	uint32_t nreqs; /* requests that fit in the ring at once */
	uint64_t kicks;
	int draining; /* TG_MODE_IRQ: an interrupt came, collecting until empty */
	int broken;   /* the used ring returned garbage: stop using the queue */
};

/* ---- interrupts ---------------------------------------------------------- */

static struct tg_blk *irq_blk; /* the device whose interrupts we take */
static uint32_t irq_flag;      /* set by the handler, taken by the waiter */
static uint64_t irqs_seen, irqs_config;

/* MSI-X vector 0 is the configuration change (vdev_drv_vpci_enable_msix). */
#define VECTOR_CONFIG 0u

void tg_irq_handler(uint32_t index)
{
	const struct tg_blk *b = irq_blk;
	int config = 0;

	if (index == TG_IRQ_INDEX_HOTPLUG) { /* the PCIe root port's, not ours */
		tg_hotplug_irq();
		tg_irq_eoi();
		return;
	}
	if (b && b->regs)
		config = vdev_drv_mmio_ack_interrupt(b->regs) & VIRTIO_MMIO_INT_CONFIG;
	else if (b && b->vpci)
		config = index == VECTOR_CONFIG;
	if (config)
		irqs_config++;
	irqs_seen++;
	__atomic_store_n(&irq_flag, 1, __ATOMIC_RELEASE);
	tg_irq_eoi();
}

uint64_t tg_blk_irqs_seen(void)
{
	return irqs_seen;
}

/* ---- set-up -------------------------------------------------------------- */

static uint32_t regs_read(void *ctx, uint32_t offset, uint32_t width)
{
	const struct tg_blk *b = ctx;

	return (uint32_t)tg_mmio_read(b->base + offset, width);
}

static void regs_write(void *ctx, uint32_t offset, uint32_t width, uint32_t value)
{
	const struct tg_blk *b = ctx;

	tg_mmio_write(b->base + offset, width, value);
}

static const struct vdev_drv_mmio_io_ops regs_io = {
	.struct_size = sizeof(struct vdev_drv_mmio_io_ops),
	.read = regs_read,
	.write = regs_write,
};

static uint64_t negotiate(vdev_drv *drv, void *opaque, uint64_t offered)
{
	(void)drv;
	(void)opaque;
	return offered & WANTED;
}

static int pre_init(vdev_drv *drv, void *opaque)
{
	struct tg_blk *b = opaque;
	uint32_t max = b->t->queue_max_size(b->tp, 0), size = QUEUE_SIZE;

	while (size > max)
		size /= 2;
	return vdev_drv_queue_setup(drv, 0, size, INDIRECT_MAX, &b->q);
}

static const struct vdev_driver_ops blk_ops = {
	.struct_size = sizeof(struct vdev_driver_ops),
	.negotiate_features = negotiate,
	.pre_device_initialization = pre_init,
};

static const struct {
	uint32_t bit;
	const char *name;
} feature_names[] = {
	{VIRTIO_BLK_F_SIZE_MAX, "SIZE_MAX"},   {VIRTIO_BLK_F_SEG_MAX, "SEG_MAX"},
	{VIRTIO_BLK_F_RO, "RO"},               {VIRTIO_BLK_F_BLK_SIZE, "BLK_SIZE"},
	{VIRTIO_BLK_F_FLUSH, "FLUSH"},         {VIRTIO_BLK_F_TOPOLOGY, "TOPOLOGY"},
	{VIRTIO_BLK_F_CONFIG_WCE, "CONFIG_WCE"}, {VIRTIO_BLK_F_MQ, "MQ"},
	{VIRTIO_BLK_F_DISCARD, "DISCARD"},     {VIRTIO_BLK_F_WRITE_ZEROES, "WRITE_ZEROES"},
	{VIRTIO_RING_F_INDIRECT_DESC, "INDIRECT_DESC"}, {VIRTIO_RING_F_EVENT_IDX, "EVENT_IDX"},
	{VIRTIO_F_VERSION_1, "VERSION_1"},     {VIRTIO_F_RING_PACKED, "RING_PACKED"},
	{VIRTIO_F_RING_RESET, "RING_RESET"},
};

static void print_features(const char *what, uint64_t f)
{
	char names[TG_LINE_MAX - 64];
	uint32_t len = 0, i;
	const char *s;

	names[0] = 0;
	for (i = 0; i < sizeof(feature_names) / sizeof(feature_names[0]); i++) {
		if (!(f & BIT(feature_names[i].bit)))
			continue;
		for (s = len ? " " : ""; *s && len + 1 < sizeof(names); s++)
			names[len++] = *s;
		for (s = feature_names[i].name; *s && len + 1 < sizeof(names); s++)
			names[len++] = *s;
		names[len] = 0;
	}
	tg_printf("%s features 0x%016lx: %s", what, f, names);
}

static uint64_t config_u64(vdev_drv *drv, uint32_t offset)
{
	uint8_t v[8];
	uint64_t x = 0;
	int i;

	if (vdev_drv_config_read(drv, offset, v, sizeof(v)) < 0)
		return 0;
	for (i = 7; i >= 0; i--)
		x = x << 8 | v[i];
	return x;
}

int tg_probe(const struct tg_device *dev, uint32_t *device_id)
{
	static struct tg_blk probe; /* register access needs only base */
	uint64_t storage[8];
	vdev_drv_mmio *regs;

	if (dev->kind != TG_DEV_VIRTIO_MMIO || vdev_drv_mmio_storage_size() > sizeof(storage))
		return -1;
	probe.base = dev->base;
	if (vdev_drv_mmio_init(storage, sizeof(storage), &regs_io, &probe, &regs) < 0)
		return -1;
	return vdev_drv_mmio_probe(regs, device_id);
}

static int open_mmio(struct tg_blk *b, const struct tg_vdev *dev)
{
	void *regs_mem = tg_alloc(vdev_drv_mmio_storage_size(), 16);
	uint32_t id;
	int r;

	b->base = dev->base;
	r = regs_mem ? vdev_drv_mmio_init(regs_mem, vdev_drv_mmio_storage_size(), &regs_io, b,
					  &b->regs) : -1;
	if (r == 0)
		r = vdev_drv_mmio_probe(b->regs, &id);
	if (r < 0 || id != VIRTIO_ID_BLOCK) {
		tg_printf("blk: no virtio-blk at 0x%lx (%d, device id %u)", dev->base, r,
			  r < 0 ? 0 : id);
		return -1;
	}
	b->t = vdev_drv_mmio_transport();
	b->tp = b->regs;
	return 0;
}

/*
 * Unless @quiet, BAR 4 moves first (to a new place in the window, decode
 * off meanwhile, as an OS that rebalances BARs before it binds a driver):
 * the kicks then go to its new notify address, where the host must have
 * moved its ioeventfd.
 */
static int open_pci(struct tg_blk *b, const struct tg_vdev *dev, int quiet)
{
	uint64_t size = vdev_drv_vpci_storage_size(), bar4;
	void *mem = tg_alloc(size, 16);
	int r;

	if (!quiet) {
		uint64_t from = vdev_drv_pci_bar_address(&tg_pci_io, dev->pci, dev->addr,
							 VDEV_VIRTIO_PCI_BAR_MODERN);

		bar4 = tg_pci_move_bar(dev->pci, dev->addr, VDEV_VIRTIO_PCI_BAR_MODERN);
		if (!bar4)
			return -1;
		tg_printf("blk: moved BAR 4 from 0x%lx to 0x%lx", from, bar4);
	}
	r = mem ? vdev_drv_vpci_init(mem, size, &tg_pci_io, dev->pci, dev->addr, &b->vpci) : -1;
	if (r < 0 || vdev_drv_vpci_device_type(b->vpci) != VIRTIO_ID_BLOCK) {
		tg_printf("blk: no virtio-blk at pci " TG_PCI_FMT " (%d)", TG_PCI_ARGS(dev->addr),
			  r);
		return -1;
	}
	/* Vector i carries TG_IRQ_VECTOR + i: config, then queue 0. */
	r = vdev_drv_vpci_enable_msix(b->vpci, TG_APIC_GPA, TG_IRQ_VECTOR);
	b->msix = r > 0;
	if (!quiet)
		tg_printf(r > 0 ? "blk: MSI-X, %d vectors from vector 0x%x" :
				  "blk: no MSI-X (%d); vector 0x%x unused", r, TG_IRQ_VECTOR);
	b->t = vdev_drv_vpci_transport();
	b->tp = b->vpci;
	return 0;
}

struct tg_blk *tg_blk_open(const struct tg_vdev *dev, int quiet)
{
	struct vdev_drv_config cfg = VDEV_DRV_CONFIG_INIT;
	struct tg_blk *b = tg_alloc(sizeof(*b), 16);
	void *drv_mem = tg_alloc(vdev_drv_storage_size(), 16);
	void *arena = tg_alloc(ARENA_SIZE, 4096);
	struct tg_req *reqs;
	uint32_t i;
	int r;

	if (!b || !drv_mem || !arena) {
		tg_printf("blk: out of heap");
		return NULL;
	}
	memset(b, 0, sizeof(*b));
	r = dev->kind == TG_DEV_PCI_ECAM ? open_pci(b, dev, quiet) : open_mmio(b, dev);
	if (r < 0)
		return NULL;
	if (!quiet) {
		uint64_t offered = b->t->get_device_features(b->tp, 0) |
				   (uint64_t)b->t->get_device_features(b->tp, 1) << 32;

		print_features("offered", offered);
	}
	cfg.transport = b->t;
	cfg.transport_opaque = b->tp;
	cfg.driver = &blk_ops;
	cfg.driver_opaque = b;
	cfg.arena = arena;
	cfg.arena_gpa = (uintptr_t)arena; /* identity-mapped */
	cfg.arena_size = ARENA_SIZE;
	r = vdev_drv_init(drv_mem, vdev_drv_storage_size(), &cfg, &b->drv);
	if (r == 0)
		r = vdev_drv_start(b->drv);
	if (r < 0) {
		tg_printf("blk: device initialization failed (%d), status 0x%x", r,
			  b->drv ? vdev_drv_status(b->drv) : 0);
		return NULL;
	}
	b->features = vdev_drv_features(b->drv);
	b->sectors = config_u64(b->drv, offsetof(struct virtio_blk_config, capacity));
	/* With indirect descriptors a request takes one ring slot, else three. */
	b->nreqs = vdev_drvq_size(b->q);
	if (!(b->features & BIT(VIRTIO_RING_F_INDIRECT_DESC)))
		b->nreqs /= 3;
	if (!b->nreqs) {
		tg_printf("blk: a queue of %u cannot hold one request", vdev_drvq_size(b->q));
		return NULL;
	}

	reqs = tg_alloc((uint64_t)b->nreqs * sizeof(*reqs), 16);
	if (!reqs) {
		tg_printf("blk: out of heap for %u requests", b->nreqs);
		return NULL;
	}
	for (i = 0; i < b->nreqs; i++) {
		reqs[i].data = tg_alloc(TG_BLOCK, TG_BLOCK);
		if (!reqs[i].data) {
			tg_printf("blk: out of heap for %u request buffers", b->nreqs);
			return NULL;
		}
		reqs[i].next_free = b->free;
		b->free = &reqs[i];
	}
	if (!quiet) {
		print_features("negotiated", b->features);
		tg_printf("blk: capacity %lu sectors (%lu MiB), split ring of %u, up to %u "
			  "requests in flight", b->sectors, b->sectors >> 11, vdev_drvq_size(b->q),
			  b->nreqs);
	}
	irq_blk = NULL;
	irqs_seen = irqs_config = 0;
	return b;
}

void tg_blk_close(struct tg_blk *b)
{
	irq_blk = NULL;
	vdev_drv_reset(b->drv);
}

uint64_t tg_blk_features(const struct tg_blk *b)
{
	return b->features;
}

/* ---- requests ------------------------------------------------------------ */

static struct tg_req *req_get(struct tg_blk *b)
{
	struct tg_req *rq = b->free;

	if (rq)
		b->free = rq->next_free;
	return rq;
}

static void req_put(struct tg_blk *b, struct tg_req *rq)
{
	rq->next_free = b->free;
	b->free = rq;
}

/* Make @rq available as a @type request for 4 KiB block @block. */
static int submit(struct tg_blk *b, struct tg_req *rq, uint32_t type, uint64_t block)
{
	uint64_t addr[3];
	uint32_t len[3], n = 0, out = 1;

	rq->hdr.type = type;
	rq->hdr.ioprio = 0;
	rq->hdr.sector = type == VIRTIO_BLK_T_FLUSH ? 0 : block * SECTORS_PER_BLOCK;
	rq->status = 0xff; /* no VIRTIO_BLK_S_*: the device must overwrite it */
	rq->used_len = 0;
	addr[n] = (uintptr_t)&rq->hdr;
	len[n++] = sizeof(rq->hdr);
	if (type == VIRTIO_BLK_T_OUT || type == VIRTIO_BLK_T_IN) {
		addr[n] = (uintptr_t)rq->data;
		len[n++] = TG_BLOCK;
		out += type == VIRTIO_BLK_T_OUT;
	} else if (type == VIRTIO_BLK_T_GET_ID) {
		addr[n] = (uintptr_t)rq->data;
		len[n++] = VIRTIO_BLK_ID_BYTES;
	}
	addr[n] = (uintptr_t)&rq->status;
	len[n++] = 1;
	return vdev_drvq_add(b->q, addr, len, out, n - out, rq, 0);
}

static void kick(struct tg_blk *b)
{
	if (vdev_drvq_kick(b->q) > 0)
		b->kicks++;
}

/* One completed request, or NULL: none yet, or the ring broke (b->broken). */
static struct tg_req *reap(struct tg_blk *b)
{
	void *token;
	uint32_t len;
	int r = vdev_drvq_get_used(b->q, &token, &len);
	struct tg_req *rq = token;

	if (r == 0)
		return NULL;
	if (r < 0) {
		if (!b->broken)
			tg_printf("blk: used ring unusable (%d): the device returned a buffer "
				  "that was not in flight", r);
		b->broken = 1;
		return NULL;
	}
	rq->used_len = len;
	return rq;
}

/*
 * Wait for one completion until @deadline. With @use_irq the used ring is
 * drained only after an interrupt, until it is empty: then nothing more is
 * collected before the next interrupt, so lost interrupts show as a timeout
 * instead of being papered over by polling. (The driver half re-arms
 * used_event before each look at the ring, so an entry the empty look missed
 * raises an interrupt.)
 */
static struct tg_req *wait_one(struct tg_blk *b, int use_irq, uint64_t deadline)
{
	struct tg_req *rq;

	for (;;) {
		if (!use_irq || b->draining) {
			rq = reap(b);
			if (rq || b->broken)
				return rq;
			b->draining = 0;
		}
		if (use_irq && __atomic_exchange_n(&irq_flag, 0, __ATOMIC_ACQ_REL)) {
			b->draining = 1;
			continue;
		}
		if (tg_expired(deadline))
			return NULL;
		tg_relax();
	}
}

/* Called with nothing in flight, before new requests: interrupts for what
 * was collected already are forgotten, so new completions must raise their
 * own. (Not after the kick: a polling device may be done before it.) */
static void new_work(struct tg_blk *b)
{
	__atomic_store_n(&irq_flag, 0, __ATOMIC_SEQ_CST);
	b->draining = 0;
}

static void report_timeout(struct tg_blk *b, const char *what)
{
	tg_printf("blk: %s: no completion within %u ms (device status 0x%x, %lu interrupts, "
		  "%lu config changes)", what, IO_TIMEOUT_MS, vdev_drv_status(b->drv), irqs_seen,
		  irqs_config);
}

/* One request start to finish. Returns its status byte, or -1 (timeout). */
static int do_one(struct tg_blk *b, uint32_t type, uint64_t block, int use_irq,
		  struct tg_req **out)
{
	struct tg_req *rq = req_get(b), *done;
	int r;

	if (!rq)
		return -1; /* cannot happen: nothing else is in flight */
	new_work(b);
	r = submit(b, rq, type, block);
	if (r < 0) {
		tg_printf("blk: cannot queue a request (%d)", r);
		req_put(b, rq);
		return -1;
	}
	kick(b);
	done = wait_one(b, use_irq, tg_deadline_ms(IO_TIMEOUT_MS));
	if (!done) {
		report_timeout(b, "single request");
		return -1;
	}
	req_put(b, done);
	*out = done;
	return done->status;
}

/*
 * Blocks [first, first + n) as @type (IN or OUT) requests, all in flight at
 * once, one kick. Writes carry the pattern; reads are compared with it.
 * Returns the number of failed blocks, or -1 when the device stopped
 * answering.
 */
static int batch(struct tg_blk *b, uint32_t type, uint64_t first, uint32_t n, uint64_t seed,
		 int use_irq)
{
	uint64_t deadline;
	uint32_t i, bad = 0;

	new_work(b);
	for (i = 0; i < n; i++) {
		struct tg_req *rq = req_get(b);
		int r;

		if (type == VIRTIO_BLK_T_OUT)
			tg_pattern_fill(rq->data, seed, first + i);
		else
			memset(rq->data, 0, TG_BLOCK); /* stale data must not pass */
		r = submit(b, rq, type, first + i);
		if (r < 0) {
			tg_printf("blk: cannot queue block %lu (%d)", first + i, r);
			return -1;
		}
	}
	kick(b);
	deadline = tg_deadline_ms(IO_TIMEOUT_MS);
	for (i = 0; i < n; i++) {
		struct tg_req *rq = wait_one(b, use_irq, deadline);
		uint64_t block;
		uint32_t word, want_len;

		if (!rq) {
			report_timeout(b, type == VIRTIO_BLK_T_OUT ? "write" : "read");
			return -1;
		}
		req_put(b, rq);
		block = rq->hdr.sector / SECTORS_PER_BLOCK;
		want_len = type == VIRTIO_BLK_T_IN ? TG_BLOCK + 1 : 1;
		if (rq->status != VIRTIO_BLK_S_OK || rq->used_len != want_len) {
			if (bad++ < 4)
				tg_printf("blk: %s of block %lu: status %u, %u bytes written "
					  "(want %u)", type == VIRTIO_BLK_T_OUT ? "write" : "read",
					  block, rq->status, rq->used_len, want_len);
			continue;
		}
		if (type != VIRTIO_BLK_T_IN)
			continue;
		word = tg_pattern_check(rq->data, seed, block);
		if (word != TG_PATTERN_WORDS && bad++ < 4)
			tg_printf("blk: block %lu differs at byte %u", block, word * 8);
	}
	return (int)bad;
}

static void print_serial(const uint8_t *id)
{
	char s[VIRTIO_BLK_ID_BYTES + 1];
	uint32_t i;

	for (i = 0; i < VIRTIO_BLK_ID_BYTES && id[i]; i++)
		s[i] = id[i] >= 0x20 && id[i] < 0x7f ? (char)id[i] : '?';
	s[i] = 0;
	tg_printf("blk: serial (GET_ID) \"%s\"", s);
}

int tg_blk_verify(struct tg_blk *b, uint64_t seed, uint32_t blocks, int use_irq)
{
	uint32_t per = b->nreqs < VERIFY_BATCH ? b->nreqs : VERIFY_BATCH, n, pass;
	uint64_t first, bad = 0;
	struct tg_req *rq;
	int st;

	if (b->features & BIT(VIRTIO_BLK_F_RO)) {
		tg_printf("verify: the disk is read-only; it needs a writable one");
		return -1;
	}
	if (!blocks || (uint64_t)blocks * SECTORS_PER_BLOCK > b->sectors) {
		tg_printf("verify: %u blocks: not 1..%lu (the disk's size)", blocks,
			  b->sectors / SECTORS_PER_BLOCK);
		return -1;
	}
	if (use_irq && b->vpci && !b->msix) {
		tg_printf("verify: interrupts over virtio-pci need MSI-X (no INTx here)");
		return -1;
	}
	if (use_irq) {
		irq_blk = b;
		tg_irq_install();
	}
	/* With interrupts on, enabling may report buffers already used: there
	 * are none yet, so the answer must be 0. */
	if (vdev_drvq_enable_interrupts(b->q, use_irq) != 0) {
		tg_printf("verify: used buffers before any request");
		return -1;
	}

	st = do_one(b, VIRTIO_BLK_T_GET_ID, 0, use_irq, &rq);
	if (st != VIRTIO_BLK_S_OK) {
		tg_printf("verify: GET_ID failed (status %d)", st);
		return -1;
	}
	print_serial(rq->data);

	for (pass = 0; pass < 2; pass++) {
		uint32_t type = pass == 0 ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN;

		for (first = 0; first < blocks; first += n) {
			int r;

			n = blocks - first < per ? (uint32_t)(blocks - first) : per;
			r = batch(b, type, first, n, seed, use_irq);
			if (r < 0)
				return -1;
			bad += (uint64_t)r;
		}
		if (pass == 0 && !bad) {
			tg_printf("verify: wrote %u blocks of 4 KiB (seed 0x%lx), %u in flight",
				  blocks, seed, per);
			if (!(b->features & BIT(VIRTIO_BLK_F_FLUSH))) {
				tg_printf("verify: no FLUSH offered, not flushing");
				continue;
			}
			st = do_one(b, VIRTIO_BLK_T_FLUSH, 0, use_irq, &rq);
			if (st != VIRTIO_BLK_S_OK) {
				tg_printf("verify: FLUSH failed (status %d)", st);
				return -1;
			}
			tg_printf("verify: flushed");
		}
	}
	if (use_irq)
		tg_printf("verify: %lu interrupts taken, %lu kicks", irqs_seen, b->kicks);
	if (bad) {
		tg_printf("verify: %lu blocks failed", bad);
		return -1;
	}
	if (use_irq && !irqs_seen) {
		tg_printf("verify: completions arrived without a single interrupt");
		return -1;
	}
	tg_printf("verify: read back %u blocks, all match", blocks);
	return 0;
}

int tg_blk_first_io(struct tg_blk *b)
{
	struct tg_req *rq;

	vdev_drvq_enable_interrupts(b->q, 0);
	return do_one(b, VIRTIO_BLK_T_IN, 0, 0, &rq) == VIRTIO_BLK_S_OK ? 0 : -1;
}

/* xorshift64*: cheap, and good enough to spread reads over the disk. */
static uint64_t rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dull;
}

/*
 * @depth 4 KiB random reads in flight for @ms milliseconds, by polling with
 * interrupts suppressed: every completion is replaced at once, and the
 * device is kicked only when the driver half says it asked for one.
 * Returns 0, or -1 on an error or a stuck device.
 */
static int bench_depth(struct tg_blk *b, uint32_t depth, uint32_t ms, uint64_t nblocks,
		       uint64_t *rng, uint64_t *ops)
{
	uint64_t end = tg_deadline_ms(ms), stuck = tg_deadline_ms(ms + IO_TIMEOUT_MS), errors = 0;
	uint32_t inflight = 0;
	struct tg_req *rq;

	*ops = 0;
	while (inflight < depth) {
		rq = req_get(b);
		if (submit(b, rq, VIRTIO_BLK_T_IN, rnd(rng) % nblocks) < 0)
			return -1;
		inflight++;
	}
	kick(b);
	while (inflight) {
		uint32_t added = 0;

		while ((rq = reap(b))) {
			inflight--;
			(*ops)++;
			if (rq->status != VIRTIO_BLK_S_OK && errors++ < 4)
				tg_printf("bench: read of sector %lu: status %u",
					  (uint64_t)rq->hdr.sector, rq->status);
			if (tg_expired(end)) {
				req_put(b, rq);
				continue;
			}
			if (submit(b, rq, VIRTIO_BLK_T_IN, rnd(rng) % nblocks) < 0)
				return -1;
			inflight++;
			added++;
		}
		if (b->broken)
			return -1;
		if (added) {
			kick(b);
			stuck = tg_deadline_ms(ms + IO_TIMEOUT_MS);
		} else if (tg_expired(stuck)) {
			report_timeout(b, "bench");
			return -1;
		} else {
			tg_relax();
		}
	}
	return errors ? -1 : 0;
}

int tg_blk_bench(struct tg_blk *b, struct tg_boot_info *bi)
{
	uint64_t nblocks = b->sectors / SECTORS_PER_BLOCK, rng = bi->seed | 1;
	uint32_t i, n = bi->num_depths < TG_MAX_DEPTHS ? bi->num_depths : TG_MAX_DEPTHS;
	int ret = 0;

	if (bi->disk_blocks && bi->disk_blocks < nblocks)
		nblocks = bi->disk_blocks;
	if (!nblocks || !n || !bi->bench_ms) {
		tg_printf("bench: nothing to do (%lu blocks, %u depths, %u ms)", nblocks, n,
			  bi->bench_ms);
		return -1;
	}
	vdev_drvq_enable_interrupts(b->q, 0);
	for (i = 0; i < n; i++) {
		uint32_t depth = bi->depths[i];
		uint64_t kicks = b->kicks, ops, milli;
		int r;

		if (!depth || depth > b->nreqs) {
			tg_printf("bench: depth %u is outside 1..%u (the ring's limit)", depth,
				  b->nreqs);
			ret = -1;
			continue;
		}
		tg_mark(2 * i);
		r = bench_depth(b, depth, bi->bench_ms, nblocks, &rng, &ops);
		tg_mark(2 * i + 1);
		bi->ops_done[i] = ops;
		bi->kicks[i] = b->kicks - kicks;
		milli = ops ? bi->kicks[i] * 100000 / ops : 0; /* kicks per 1000 reads, x100 */
		tg_printf("bench: depth %u: %lu reads over %lu blocks, %lu kicks (%lu.%02lu per "
			  "1000 reads)%s", depth, ops, nblocks, bi->kicks[i], milli / 100,
			  milli % 100, r < 0 ? ", FAILED" : "");
		if (r < 0)
			return -1;
	}
	return ret;
}
