/* SPDX-License-Identifier: MIT */
/*
 * vdev-loopback: a device model and the library's driver side in one
 * process, wired together the way a VMM embeds libvirtio-dev.
 *
 * --device rng (this file): your own device model. A virtio entropy device
 * (rng.c, written against the public API only) with
 *   guest memory (vdev_mem over a malloc'd buffer)
 *   interrupts   (vdev_irq with a counting callback)
 *   device       (vdev_device + the virtio-rng model in rng.c)
 *   driver       (vdev_drv over vdev_drv_direct_transport: no bus, no
 *                registers; the quickest way to exercise a model)
 * The driver negotiates features, sets up the queue, submits requests of
 * varying sizes and checks what comes back.
 *
 * --device blk (blk-mmio.c): the library's virtio-blk behind virtio-mmio on
 * an MMIO bus, driven through register accesses.
 *
 * Exit status: 0 pass, 1 fail, 2 bad usage.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>

#include <virtio-dev/virtio-dev.h>

#include "loopback.h"
#include "rng.h"

#define GUEST_RAM_GPA UINT64_C(0x40000000)
#define GUEST_RAM_SIZE (UINT64_C(1) << 20)
/* The driver carves its rings from the first 256 KiB, buffers use the rest. */
#define ARENA_SIZE (UINT64_C(256) << 10)
#define QUEUE_SIZE 256u
#define INDIRECT_MAX 4u
#define MAX_SEGS 3u
#define SEG_MIN 16u   /* big enough that "all zero" cannot be chance */
#define SEG_MAX 1024u
#define BATCH_MAX 32u
_Static_assert(GUEST_RAM_SIZE - ARENA_SIZE >= QUEUE_SIZE * MAX_SEGS * SEG_MAX,
	       "request slots must fit in guest RAM");

static const struct {
	unsigned int bit;
	const char *name;
} feature_names[] = {
	{VIRTIO_F_VERSION_1, "VERSION_1"},
	{VIRTIO_F_RING_PACKED, "RING_PACKED"},
	{VIRTIO_RING_F_EVENT_IDX, "EVENT_IDX"},
	{VIRTIO_RING_F_INDIRECT_DESC, "INDIRECT_DESC"},
	{VIRTIO_F_ANY_LAYOUT, "ANY_LAYOUT"},
	{VIRTIO_F_NOTIFY_ON_EMPTY, "NOTIFY_ON_EMPTY"},
	{VIRTIO_F_ACCESS_PLATFORM, "ACCESS_PLATFORM"},
	{VIRTIO_F_IN_ORDER, "IN_ORDER"},
	{VIRTIO_F_ORDER_PLATFORM, "ORDER_PLATFORM"},
	{VIRTIO_F_SR_IOV, "SR_IOV"},
	{VIRTIO_F_RING_RESET, "RING_RESET"},
};

/* virtio-blk's own bits (<linux/virtio_blk.h>). */
static const struct {
	unsigned int bit;
	const char *name;
} blk_feature_names[] = {
	{VIRTIO_BLK_F_SIZE_MAX, "SIZE_MAX"},
	{VIRTIO_BLK_F_SEG_MAX, "SEG_MAX"},
	{VIRTIO_BLK_F_GEOMETRY, "GEOMETRY"},
	{VIRTIO_BLK_F_RO, "RO"},
	{VIRTIO_BLK_F_BLK_SIZE, "BLK_SIZE"},
	{VIRTIO_BLK_F_FLUSH, "FLUSH"},
	{VIRTIO_BLK_F_TOPOLOGY, "TOPOLOGY"},
	{VIRTIO_BLK_F_CONFIG_WCE, "CONFIG_WCE"},
	{VIRTIO_BLK_F_MQ, "MQ"},
	{VIRTIO_BLK_F_DISCARD, "DISCARD"},
	{VIRTIO_BLK_F_WRITE_ZEROES, "WRITE_ZEROES"},
};

static const struct {
	uint32_t bit;
	const char *name;
} status_names[] = {
	{VDEV_STATUS_ACKNOWLEDGE, "ACKNOWLEDGE"}, {VDEV_STATUS_DRIVER, "DRIVER"},
	{VDEV_STATUS_FEATURES_OK, "FEATURES_OK"}, {VDEV_STATUS_DRIVER_OK, "DRIVER_OK"},
	{VDEV_STATUS_NEEDS_RESET, "DEVICE_NEEDS_RESET"}, {VDEV_STATUS_FAILED, "FAILED"},
};

/* One request slot: where its buffers live and what was asked for. */
struct request {
	uint32_t nseg;
	uint64_t gpa[MAX_SEGS];
	uint32_t len[MAX_SEGS];
	uint32_t total; /* bytes the device must report as written */
	int busy;
};

struct loopback {
	struct options opt;
	uint8_t *ram; /* host view of guest RAM */
	vdev_mem *mem;
	vdev_irq *irq;
	struct rng *rng;
	vdev_device *dev;
	vdev_drv *drv;
	vdev_drvq *q;
	uint64_t kicks;          /* notifications vdev_drvq_kick sent */
	uint64_t queue_irqs;     /* used-buffer interrupts delivered */
	uint64_t config_irqs;    /* configuration-change interrupts delivered */
	struct request req[QUEUE_SIZE];
	uint64_t served, bytes;
	uint64_t rand_state;
	char failure[256];
};

static void fail(struct loopback *lb, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void fail(struct loopback *lb, const char *fmt, ...)
{
	va_list ap;

	if (lb->failure[0])
		return; /* keep the first reason */
	va_start(ap, fmt);
	vsnprintf(lb->failure, sizeof(lb->failure), fmt, ap);
	va_end(ap);
}

void print_features(const char *what, uint64_t f, uint32_t device_type)
{
	size_t i;

	printf("features %s:", what);
	for (i = 0; i < sizeof(feature_names) / sizeof(feature_names[0]); i++) {
		if (f & BIT(feature_names[i].bit)) {
			printf(" %s", feature_names[i].name);
			f &= ~BIT(feature_names[i].bit);
		}
	}
	for (i = 0; device_type == VIRTIO_ID_BLOCK && i < sizeof(blk_feature_names) /
							   sizeof(blk_feature_names[0]); i++) {
		if (f & BIT(blk_feature_names[i].bit)) {
			printf(" %s", blk_feature_names[i].name);
			f &= ~BIT(blk_feature_names[i].bit);
		}
	}
	for (i = 0; i < 64; i++)
		if (f & BIT(i))
			printf(" bit%zu", i);
	printf("\n");
}

static void print_status(uint32_t status)
{
	size_t i;

	printf("status:");
	for (i = 0; i < sizeof(status_names) / sizeof(status_names[0]); i++)
		if (status & status_names[i].bit)
			printf(" %s", status_names[i].name);
	if (!status)
		printf(" 0 (reset)");
	printf("\n");
}

/* ---- library plumbing: log sink and interrupt sink ---- */

static void log_sink(void *opaque, int level, const char *msg)
{
	(void)opaque;
	fprintf(stderr, "libvirtio-dev[%d]: %s\n", level, msg);
}

static int irq_trigger(void *opaque, uint32_t kind, uint32_t queue)
{
	struct loopback *lb = opaque;

	(void)queue; /* one queue */
	/* A real VMM would inject a guest interrupt here (or use the eventfd
	 * flavour of vdev_irq with KVM_IRQFD). We count. */
	if (kind == VDEV_IRQ_QUEUE)
		lb->queue_irqs++;
	else
		lb->config_irqs++;
	return 0;
}

/* ---- the driver side ---- */

static uint64_t drv_negotiate(vdev_drv *drv, void *opaque, uint64_t offered)
{
	struct loopback *lb = opaque;

	(void)drv;
	return offered & lb->opt.want;
}

static int drv_pre_init(vdev_drv *drv, void *opaque)
{
	struct loopback *lb = opaque;

	/* 0: the largest size the device offers. */
	return vdev_drv_queue_setup(drv, 0, 0, INDIRECT_MAX, &lb->q);
}

static const struct vdev_driver_ops driver_ops = {
	.struct_size = sizeof(struct vdev_driver_ops),
	.negotiate_features = drv_negotiate,
	.pre_device_initialization = drv_pre_init,
};

static struct request *free_slot(struct loopback *lb)
{
	uint32_t i;

	for (i = 0; i < QUEUE_SIZE; i++)
		if (!lb->req[i].busy)
			return &lb->req[i];
	return NULL;
}

static uint32_t outstanding(const struct loopback *lb)
{
	uint32_t i, n = 0;

	for (i = 0; i < QUEUE_SIZE; i++)
		n += lb->req[i].busy != 0;
	return n;
}

static uint64_t slot_gpa(const struct loopback *lb, const struct request *rq)
{
	return GUEST_RAM_GPA + ARENA_SIZE + (uint64_t)(rq - lb->req) * MAX_SEGS * SEG_MAX;
}

static uint8_t *host(const struct loopback *lb, uint64_t gpa)
{
	return lb->ram + (gpa - GUEST_RAM_GPA);
}

/* virtio-rng: 1..3 writable segments of 16..1024 bytes. */
static int submit_rng(struct loopback *lb, struct request *rq)
{
	uint64_t base = slot_gpa(lb, rq);
	uint32_t k, flags = 0;
	int r;

	rq->nseg = rnd(&lb->rand_state, 1, MAX_SEGS);
	rq->total = 0;
	for (k = 0; k < rq->nseg; k++) {
		rq->gpa[k] = base + (uint64_t)k * SEG_MAX;
		rq->len[k] = rnd(&lb->rand_state, SEG_MIN, SEG_MAX);
		/* Zero it, so stale bytes cannot pass for an answer. */
		memset(host(lb, rq->gpa[k]), 0, rq->len[k]);
		rq->total += rq->len[k];
	}
	/* Now and then chain descriptors even when an indirect table would do,
	 * so both layouts are exercised. */
	if (rq->nseg > 1 && rnd(&lb->rand_state, 0, 3) == 0)
		flags |= VDEV_DRVQ_ADD_NO_INDIRECT;
	r = vdev_drvq_add(lb->q, rq->gpa, rq->len, 0, rq->nseg, rq, flags);
	if (r == 0)
		rq->busy = 1;
	return r;
}

static int all_zero(const uint8_t *p, uint32_t len)
{
	uint32_t i;

	for (i = 0; i < len; i++)
		if (p[i])
			return 0;
	return 1;
}

/* Collect every used buffer and check it; returns how many were collected. */
static uint32_t collect(struct loopback *lb)
{
	uint32_t n = 0, k;
	uint32_t len;
	void *token;
	int r;

	while ((r = vdev_drvq_get_used(lb->q, &token, &len)) > 0) {
		struct request *rq = token;

		if (rq < lb->req || rq >= lb->req + QUEUE_SIZE || !rq->busy) {
			fail(lb, "the device returned a buffer that was not in flight");
			return n;
		}
		if (len != rq->total)
			fail(lb, "request in slot %td: %" PRIu32 " of %" PRIu32 " bytes written",
			     rq - lb->req, len, rq->total);
		for (k = 0; k < rq->nseg; k++)
			if (all_zero(host(lb, rq->gpa[k]), rq->len[k]))
				fail(lb, "request in slot %td: segment %" PRIu32 " (%" PRIu32
					 " bytes) is all zero", rq - lb->req, k, rq->len[k]);
		lb->bytes += len;
		rq->busy = 0;
		lb->served++;
		n++;
	}
	if (r < 0)
		fail(lb, "vdev_drvq_get_used: %s", strerror(-r));
	return n;
}

/*
 * Submit the requests in batches of 1..32. Everything runs in this thread:
 * a kick goes through the direct transport into the device's queue_notify,
 * which serves the whole batch before vdev_drvq_kick returns. So after each
 * kick nothing may be left outstanding, and with interrupts enabled at least
 * one interrupt must have arrived. About one batch in four is collected with
 * interrupts disabled, as a polling driver would.
 */
static uint64_t run_requests(struct loopback *lb, uint64_t *polled)
{
	uint64_t submitted = 0, batches = 0;

	while (lb->served < lb->opt.requests && !lb->failure[0]) {
		uint32_t batch = rnd(&lb->rand_state, 1, BATCH_MAX), added = 0, done;
		int poll = rnd(&lb->rand_state, 0, 3) == 0;
		uint64_t irqs_before;
		int r;

		if (vdev_drvq_enable_interrupts(lb->q, !poll) > 0) {
			fail(lb, "used buffers pending before anything was submitted");
			break;
		}
		irqs_before = lb->queue_irqs;
		while (added < batch && submitted < lb->opt.requests) {
			struct request *rq = free_slot(lb);

			if (!rq)
				break;
			r = submit_rng(lb, rq);
			if (r == -ENOSPC)
				break;
			if (r < 0) {
				fail(lb, "vdev_drvq_add: %s", strerror(-r));
				return batches;
			}
			added++;
			submitted++;
		}
		if (!added) {
			fail(lb, "no room in the ring with %" PRIu32 " requests outstanding",
			     outstanding(lb));
			break;
		}
		batches++;
		*polled += poll;
		r = vdev_drvq_kick(lb->q);
		if (r > 0)
			lb->kicks++;
		done = collect(lb);
		if (outstanding(lb)) {
			fail(lb, "%" PRIu32 " requests still outstanding after the kick (%s)",
			     outstanding(lb), r > 0 ? "device did not serve them"
						: "kick suppressed although the device was idle");
			break;
		}
		if (!poll && done && lb->queue_irqs == irqs_before)
			fail(lb, "lost interrupt: %" PRIu32 " buffers used with interrupts enabled,"
				 " no interrupt", done);
	}
	return batches;
}

static const char *device_name(uint32_t type)
{
	switch (type) {
	case VIRTIO_ID_RNG:
		return "virtio-rng";
	case VIRTIO_ID_BLOCK:
		return "virtio-blk";
	default:
		return "unknown";
	}
}

static void usage(FILE *f, const char *argv0)
{
	fprintf(f,
		"usage: %s [--device rng|blk] [--requests N] [--split] [--no-event-idx]\n"
		"          [--no-indirect] [--seed N] [--verbose]\n"
		"Runs a virtio device and the library's driver side in one process.\n"
		"  --device rng     entropy device (the default)\n"
		"  --device blk     the library's virtio-blk (256 KiB RAM disk) over virtio-mmio\n"
		"  --requests N     requests to submit (default 1000)\n"
		"  --split          do not accept RING_PACKED (use the split ring)\n"
		"  --no-event-idx   do not accept EVENT_IDX\n"
		"  --no-indirect    do not accept INDIRECT_DESC\n"
		"  --seed N         seed for the request sizes (default 1)\n"
		"  --verbose        show the library's debug log on stderr\n"
		"Exit status: 0 pass, 1 fail, 2 bad usage.\n",
		argv0);
}

static int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || *end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* Returns 0, 1 for --help, -1 for bad usage (after saying why). */
static int parse_args(int argc, char **argv, struct options *opt)
{
	int i;

	opt->requests = 1000;
	opt->seed = 1;
	opt->verbose = 0;
	opt->want = BIT(VIRTIO_F_VERSION_1) | BIT(VIRTIO_F_RING_PACKED) |
		    BIT(VIRTIO_RING_F_EVENT_IDX) | BIT(VIRTIO_RING_F_INDIRECT_DESC);
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "--requests") || !strcmp(a, "-n")) {
			if (i + 1 >= argc || parse_u64(argv[++i], 1, 100000000, &opt->requests)) {
				fprintf(stderr, "%s: --requests needs a number from 1 to 100000000\n",
					argv[0]);
				return -1;
			}
		} else if (!strcmp(a, "--seed")) {
			if (i + 1 >= argc || parse_u64(argv[++i], 1, UINT64_MAX, &opt->seed)) {
				fprintf(stderr, "%s: --seed needs a non-zero number\n", argv[0]);
				return -1;
			}
		} else if (!strcmp(a, "--device")) {
			if (i + 1 < argc && !strcmp(argv[i + 1], "rng")) {
				opt->blk = 0;
			} else if (i + 1 < argc && !strcmp(argv[i + 1], "blk")) {
				opt->blk = 1;
			} else {
				fprintf(stderr, "%s: --device takes rng or blk\n", argv[0]);
				return -1;
			}
			i++;
		} else if (!strcmp(a, "--split")) {
			opt->want &= ~BIT(VIRTIO_F_RING_PACKED);
		} else if (!strcmp(a, "--no-event-idx")) {
			opt->want &= ~BIT(VIRTIO_RING_F_EVENT_IDX);
		} else if (!strcmp(a, "--no-indirect")) {
			opt->want &= ~BIT(VIRTIO_RING_F_INDIRECT_DESC);
		} else if (!strcmp(a, "--verbose") || !strcmp(a, "-v")) {
			opt->verbose = 1;
		} else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			return 1;
		} else {
			fprintf(stderr, "%s: unknown argument '%s'\n", argv[0], a);
			return -1;
		}
	}
	return 0;
}

/* Everything after the run: do the device's and the driver's views agree? */
static void check_final_state(struct loopback *lb)
{
	uint8_t status = vdev_device_status(lb->dev);
	const struct rng_stats *st = rng_stats(lb->rng);
	uint64_t requests = st->requests, notifies = st->notifies;
	uint64_t interrupts = st->interrupts, queue_errors = st->errors;

	if (st->bytes != lb->bytes)
		fail(lb, "device wrote %" PRIu64 " bytes, driver collected %" PRIu64, st->bytes,
		     lb->bytes);
	if (status & (VDEV_STATUS_NEEDS_RESET | VDEV_STATUS_FAILED))
		fail(lb, "device status 0x%02x (needs reset or failed)", status);
	if (queue_errors)
		fail(lb, "the device model saw %" PRIu64 " queue errors", queue_errors);
	if (requests != lb->served)
		fail(lb, "device served %" PRIu64 " requests, driver collected %" PRIu64,
		     requests, lb->served);
	if (notifies != lb->kicks)
		fail(lb, "driver sent %" PRIu64 " kicks, device saw %" PRIu64, lb->kicks,
		     notifies);
	if (interrupts != lb->queue_irqs)
		fail(lb, "device sent %" PRIu64 " interrupts, %" PRIu64 " arrived", interrupts,
		     lb->queue_irqs);
	if (lb->config_irqs)
		fail(lb, "%" PRIu64 " unexpected configuration-change interrupts",
		     lb->config_irqs);
}

int main(int argc, char **argv)
{
	struct vdev_irq_ops irq_ops = VDEV_IRQ_OPS_INIT;
	struct vdev_drv_config dcfg = VDEV_DRV_CONFIG_INIT;
	struct loopback *lb;
	vdev_device *dev = NULL;
	uint64_t batches = 0, polled = 0, negotiated, expected;
	int r, pass;

	lb = calloc(1, sizeof(*lb));
	if (!lb) {
		printf("result: FAIL (out of memory)\n");
		return 1;
	}
	r = parse_args(argc, argv, &lb->opt);
	if (r) {
		if (r > 0)
			usage(stdout, argv[0]);
		else
			fprintf(stderr, "Try '%s --help'.\n", argv[0]);
		free(lb);
		return r > 0 ? 0 : 2;
	}
	vdev_log_set(log_sink, NULL, lb->opt.verbose ? VDEV_LOG_DEBUG : VDEV_LOG_WARNING);
	if (lb->opt.blk) {
		r = run_blk(&lb->opt);
		free(lb);
		return r;
	}
	lb->rand_state = lb->opt.seed;

	/* Guest RAM: 1 MiB of ordinary host memory, seen by the guest at 1 GiB. */
	lb->ram = aligned_alloc(4096, GUEST_RAM_SIZE);
	if (!lb->ram) {
		fail(lb, "out of memory");
		goto out;
	}
	memset(lb->ram, 0, GUEST_RAM_SIZE);
	r = vdev_mem_new(&lb->mem);
	if (r == 0)
		r = vdev_mem_add_region(lb->mem, GUEST_RAM_GPA, GUEST_RAM_SIZE, lb->ram, 0);
	if (r < 0) {
		fail(lb, "guest memory: %s", strerror(-r));
		goto out;
	}

	/* Interrupts: a callback that counts (a KVM VMM would use eventfds). */
	irq_ops.trigger = irq_trigger;
	r = vdev_irq_new(&irq_ops, lb, &lb->irq);
	if (r < 0) {
		fail(lb, "interrupts: %s", strerror(-r));
		goto out;
	}

	/* The device model, with memory and interrupts attached. */
	r = rng_new(lb->mem, lb->irq, QUEUE_SIZE, &lb->rng);
	if (r < 0) {
		fail(lb, "device: %s", strerror(-r));
		goto out;
	}
	dev = lb->dev = rng_device(lb->rng);
	printf("device: %s (type %" PRIu32 "), %" PRIu32 " queue%s of up to %" PRIu32
	       " entries\n",
	       device_name(vdev_device_type(dev)), vdev_device_type(dev),
	       vdev_device_num_queues(dev), vdev_device_num_queues(dev) == 1 ? "" : "s",
	       vdev_device_queue_max_size(dev));
	print_features("offered", vdev_device_features(dev), vdev_device_type(dev));

	/* The driver side, talking to the device through direct calls. Its
	 * rings live in the first 256 KiB of guest RAM. */
	dcfg.transport = vdev_drv_direct_transport();
	dcfg.transport_opaque = dev;
	dcfg.driver = &driver_ops;
	dcfg.driver_opaque = lb;
	dcfg.arena = lb->ram;
	dcfg.arena_gpa = GUEST_RAM_GPA;
	dcfg.arena_size = ARENA_SIZE;
	r = vdev_drv_new(&dcfg, &lb->drv);
	if (r < 0) {
		fail(lb, "driver: %s", strerror(-r));
		goto out;
	}
	r = vdev_drv_start(lb->drv);
	negotiated = vdev_drv_features(lb->drv);
	print_features("negotiated", negotiated, vdev_device_type(dev));
	print_status(vdev_drv_status(lb->drv));
	if (r < 0) {
		fail(lb, "driver initialization: %s", strerror(-r));
		goto out;
	}
	expected = vdev_device_features(dev) & (lb->opt.want | BIT(VIRTIO_F_VERSION_1));
	if (negotiated != expected)
		fail(lb, "negotiated 0x%" PRIx64 ", expected 0x%" PRIx64, negotiated, expected);
	if (vdev_device_acked_features(dev) != negotiated)
		fail(lb, "device acked 0x%" PRIx64 ", driver says 0x%" PRIx64,
		     vdev_device_acked_features(dev), negotiated);
	if (!rng_active(lb->rng) || !vdev_device_get_queue(dev, 0) || !lb->q) {
		fail(lb, "device not activated");
		goto out;
	}
	printf("queue 0: %s ring of %" PRIu32 " entries, event index %s, "
	       "indirect descriptors %s\n",
	       negotiated & BIT(VIRTIO_F_RING_PACKED) ? "packed" : "split",
	       vdev_drvq_size(lb->q), negotiated & BIT(VIRTIO_RING_F_EVENT_IDX) ? "on" : "off",
	       negotiated & BIT(VIRTIO_RING_F_INDIRECT_DESC) ? "on" : "off");

	batches = run_requests(lb, &polled);
	check_final_state(lb);
	printf("served %" PRIu64 " requests, %" PRIu64 " bytes in %" PRIu64 " batch%s; "
	       "driver kicks: %" PRIu64 ", device interrupts: %" PRIu64
	       " (%" PRIu64 " of the batches polled with interrupts off)\n",
	       lb->served, lb->bytes, batches, batches == 1 ? "" : "es", lb->kicks,
	       lb->queue_irqs, polled);

	/* Reset through the driver: the device must stop and drop its queue. */
	vdev_drv_reset(lb->drv);
	if (vdev_device_status(dev) != 0 || vdev_device_get_queue(dev, 0) ||
	    rng_active(lb->rng))
		fail(lb, "device still active after the driver reset it");
	else
		printf("reset: device stopped, status 0\n");

out:
	vdev_drv_free(lb->drv);
	rng_free(lb->rng);
	vdev_irq_free(lb->irq);
	vdev_mem_free(lb->mem);
	free(lb->ram);
	pass = !lb->failure[0];
	if (pass)
		printf("result: PASS\n");
	else
		printf("result: FAIL (%s)\n", lb->failure);
	free(lb);
	return pass ? 0 : 1;
}
