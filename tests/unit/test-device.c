/* SPDX-License-Identifier: MIT */
/*
 * The device object through its public API: construction, feature
 * negotiation, the status state machine, queue setup and activation, config
 * space and generation, interrupts, kicks, reset, and DEVICE_NEEDS_RESET when
 * a queue breaks. The device model is a counting fake; interrupts go to a
 * callback vdev_irq that records them; guest memory is a malloc'd buffer.
 */
#include <check.h>
#include <endian.h>
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>

#include <virtio-dev/virtio-dev.h>

#include "core/device_internal.h" /* white-box: the legacy interface */

#define BIT(n) (1ull << (n))
#define V1 BIT(VIRTIO_F_VERSION_1)

#define MEM_GPA 0x100000ull
#define MEM_SIZE 0x10000ull
#define DESC_GPA (MEM_GPA + 0x0000)
#define AVAIL_GPA (MEM_GPA + 0x1000)
#define USED_GPA (MEM_GPA + 0x2000)
#define DATA_GPA (MEM_GPA + 0x3000)
/* Per-queue stride, so several queues fit side by side. */
#define QSTRIDE 0x4000ull

#define CFG_SIZE 16u
#define NQ 3u

#define ACK VDEV_STATUS_ACKNOWLEDGE
#define DRV VDEV_STATUS_DRIVER
#define FOK VDEV_STATUS_FEATURES_OK
#define DOK VDEV_STATUS_DRIVER_OK
#define NRS VDEV_STATUS_NEEDS_RESET
#define FAIL VDEV_STATUS_FAILED

/* ---- fake device model -------------------------------------------------- */

struct fake {
	uint8_t config[CFG_SIZE];
	int config_reads, config_writes;
	uint32_t last_write_off, last_write_len;
	uint8_t last_write[CFG_SIZE];
	int config_read_ret;
	int config_write_ret;
	int features_checks;
	uint64_t checked;
	int features_check_ret;
	int activates;
	int activate_ret;
	int queues_seen_in_activate; /* live queues visible during activate */
	int resets;
	int notifies;
	uint32_t last_notify;
	int pop_on_notify; /* queue_notify pops from the kicked queue */
	int last_pop;
};

static int fake_config_read(vdev_device *dev, void *opaque, uint32_t off, void *buf,
			    uint32_t len)
{
	struct fake *f = opaque;

	ck_assert_ptr_eq(vdev_device_opaque(dev), f);
	ck_assert_uint_le((uint64_t)off + len, CFG_SIZE);
	f->config_reads++;
	if (f->config_read_ret < 0) {
		memset(buf, 0x5a, len); /* the library must not pass this on */
		return f->config_read_ret;
	}
	memcpy(buf, f->config + off, len);
	return 0;
}

static int fake_config_write(vdev_device *dev, void *opaque, uint32_t off, const void *buf,
			     uint32_t len)
{
	struct fake *f = opaque;

	(void)dev;
	ck_assert_uint_le((uint64_t)off + len, CFG_SIZE);
	f->config_writes++;
	f->last_write_off = off;
	f->last_write_len = len;
	memcpy(f->last_write, buf, len);
	return f->config_write_ret;
}

static int fake_features_check(vdev_device *dev, void *opaque, uint64_t acked)
{
	struct fake *f = opaque;

	(void)dev;
	f->features_checks++;
	f->checked = acked;
	return f->features_check_ret;
}

static int fake_activate(vdev_device *dev, void *opaque)
{
	struct fake *f = opaque;

	f->activates++;
	f->queues_seen_in_activate = 0;
	for (uint32_t i = 0; i < vdev_device_num_queues(dev); i++)
		if (vdev_device_get_queue(dev, i))
			f->queues_seen_in_activate++;
	return f->activate_ret;
}

static void fake_reset(vdev_device *dev, void *opaque)
{
	struct fake *f = opaque;

	(void)dev;
	f->resets++;
}

static void fake_queue_notify(vdev_device *dev, void *opaque, uint32_t queue)
{
	struct fake *f = opaque;

	f->notifies++;
	f->last_notify = queue;
	if (f->pop_on_notify) {
		struct iovec iov[8];
		uint64_t gpa[8];
		struct vdev_queue_elem elem = VDEV_QUEUE_ELEM_INIT;
		vdev_queue *q = vdev_device_get_queue(dev, queue);

		ck_assert_ptr_nonnull(q);
		elem.iov_cap = 8;
		elem.iov = iov;
		elem.gpa = gpa;
		f->last_pop = vdev_queue_pop(q, &elem);
	}
}

static const struct vdev_device_ops fake_ops = {
	.struct_size = sizeof(struct vdev_device_ops),
	.config_read = fake_config_read,
	.config_write = fake_config_write,
	.features_check = fake_features_check,
	.activate = fake_activate,
	.reset = fake_reset,
	.queue_notify = fake_queue_notify,
};

/* ---- recording interrupt sink ------------------------------------------- */

struct irqrec {
	int queue_irqs;
	int config_irqs;
	uint32_t last_queue;
	int bad; /* unknown kind, or a config interrupt with a queue index */
};

static int rec_trigger(void *opaque, uint32_t kind, uint32_t queue)
{
	struct irqrec *r = opaque;

	/* Atomic: the concurrency test triggers from several threads. */
	if (kind == VDEV_IRQ_CONFIG && queue == 0) {
		__atomic_add_fetch(&r->config_irqs, 1, __ATOMIC_SEQ_CST);
	} else if (kind == VDEV_IRQ_QUEUE) {
		__atomic_add_fetch(&r->queue_irqs, 1, __ATOMIC_SEQ_CST);
		__atomic_store_n(&r->last_queue, queue, __ATOMIC_SEQ_CST);
	} else {
		__atomic_add_fetch(&r->bad, 1, __ATOMIC_SEQ_CST);
		return -EINVAL;
	}
	return 0;
}

/* ---- fixture ------------------------------------------------------------ */

static struct fake fk;
static struct irqrec ir;
static vdev_device *dev;
static vdev_mem *mem;
static vdev_irq *irq;
static uint8_t *guest;

static uint64_t offered_features = BIT(VIRTIO_RING_F_EVENT_IDX) | BIT(VIRTIO_F_RING_PACKED) | 0x1;

static struct vdev_device_config base_cfg(void)
{
	struct vdev_device_config c = VDEV_DEVICE_CONFIG_INIT;

	c.device_type = VIRTIO_ID_RNG;
	c.features = offered_features;
	c.num_queues = NQ;
	c.queue_max_size = 256;
	c.config_size = CFG_SIZE;
	return c;
}

static void setup(void)
{
	struct vdev_device_config c = base_cfg();
	struct vdev_irq_ops io = VDEV_IRQ_OPS_INIT;

	memset(&fk, 0, sizeof(fk));
	memset(&ir, 0, sizeof(ir));
	for (unsigned i = 0; i < CFG_SIZE; i++)
		fk.config[i] = (uint8_t)(0x10 + i);
	ck_assert_int_eq(vdev_device_new(&c, &fake_ops, &fk, &dev), 0);

	guest = calloc(1, MEM_SIZE);
	ck_assert_ptr_nonnull(guest);
	ck_assert_int_eq(vdev_mem_new(&mem), 0);
	ck_assert_int_eq(vdev_mem_add_region(mem, MEM_GPA, MEM_SIZE, guest, 0), 0);

	io.trigger = rec_trigger;
	ck_assert_int_eq(vdev_irq_new(&io, &ir, &irq), 0);
}

static void teardown(void)
{
	ck_assert_int_eq(ir.bad, 0);
	vdev_device_free(dev);
	dev = NULL;
	vdev_irq_free(irq);
	irq = NULL;
	vdev_mem_free(mem);
	mem = NULL;
	free(guest);
	guest = NULL;
}

/* ACKNOWLEDGE, DRIVER, features, FEATURES_OK. */
static void negotiate(uint64_t features)
{
	ck_assert_int_eq(vdev_device_set_status(dev, ACK), 0);
	ck_assert_int_eq(vdev_device_set_status(dev, ACK | DRV), 0);
	ck_assert_int_eq(vdev_device_set_acked_features(dev, features), 0);
	ck_assert_int_eq(vdev_device_set_status(dev, ACK | DRV | FOK), 0);
	ck_assert_uint_eq(vdev_device_status(dev), ACK | DRV | FOK);
}

static struct vdev_queue_config ring_at(uint32_t size, uint64_t base)
{
	struct vdev_queue_config qc = VDEV_QUEUE_CONFIG_INIT;

	qc.size = size;
	qc.desc_addr = base + (DESC_GPA - MEM_GPA);
	qc.driver_addr = base + (AVAIL_GPA - MEM_GPA);
	qc.device_addr = base + (USED_GPA - MEM_GPA);
	return qc;
}

static void setup_queue(uint32_t i, uint32_t size)
{
	struct vdev_queue_config qc = ring_at(size, MEM_GPA + i * QSTRIDE);

	ck_assert_int_eq(vdev_device_queue_setup(dev, i, &qc), 0);
	ck_assert_int_eq(vdev_device_queue_enable(dev, i, 1), 0);
}

static void attach(void)
{
	ck_assert_int_eq(vdev_device_set_memory(dev, mem), 0);
	ck_assert_int_eq(vdev_device_set_irq(dev, irq), 0);
}

/* Negotiated, queue 0 live, model active. */
static void bring_up(void)
{
	int before = fk.activates;

	negotiate(V1);
	setup_queue(0, 8);
	attach();
	ck_assert_int_eq(vdev_device_set_status(dev, ACK | DRV | FOK | DOK), 0);
	ck_assert_uint_eq(vdev_device_status(dev), ACK | DRV | FOK | DOK);
	ck_assert_int_eq(fk.activates, before + 1);
}

/* ---- construction and features ------------------------------------------ */

static int bad_new(const struct vdev_device_config *c, const struct vdev_device_ops *o)
{
	vdev_device *d = (vdev_device *)&fk; /* sentinel: must stay untouched */
	int r = vdev_device_new(c, o, &fk, &d);

	ck_assert_ptr_eq(d, (vdev_device *)&fk);
	return r;
}

START_TEST(test_new_validation)
{
	struct vdev_device_config c;
	struct vdev_device_ops o;
	vdev_device *d = NULL;

	c = base_cfg();
	ck_assert_int_eq(vdev_device_new(NULL, &fake_ops, NULL, &d), -EINVAL);
	ck_assert_int_eq(vdev_device_new(&c, NULL, NULL, &d), -EINVAL);
	ck_assert_int_eq(vdev_device_new(&c, &fake_ops, NULL, NULL), -EINVAL);

	c = base_cfg();
	c.struct_size = 0;
	ck_assert_int_eq(bad_new(&c, &fake_ops), -EINVAL);
	c = base_cfg();
	c.device_type = 0;
	ck_assert_int_eq(bad_new(&c, &fake_ops), -EINVAL);
	c = base_cfg();
	c.num_queues = 0;
	ck_assert_int_eq(bad_new(&c, &fake_ops), -EINVAL);
	c.num_queues = VDEV_DEVICE_MAX_QUEUES + 1;
	ck_assert_int_eq(bad_new(&c, &fake_ops), -EINVAL);
	c = base_cfg();
	c.queue_max_size = 0;
	ck_assert_int_eq(bad_new(&c, &fake_ops), -EINVAL);
	c.queue_max_size = 32769;
	ck_assert_int_eq(bad_new(&c, &fake_ops), -EINVAL);
	c = base_cfg();
	c.config_size = VDEV_DEVICE_MAX_CONFIG + 1;
	ck_assert_int_eq(bad_new(&c, &fake_ops), -EINVAL);

	c = base_cfg();
	o = fake_ops;
	o.struct_size = 0;
	ck_assert_int_eq(bad_new(&c, &o), -EINVAL);
	o = fake_ops;
	o.config_read = NULL;
	ck_assert_int_eq(bad_new(&c, &o), -EINVAL);
	o = fake_ops;
	o.activate = NULL;
	ck_assert_int_eq(bad_new(&c, &o), -EINVAL);
	o = fake_ops;
	o.reset = NULL;
	ck_assert_int_eq(bad_new(&c, &o), -EINVAL);
	o = fake_ops;
	o.queue_notify = NULL;
	ck_assert_int_eq(bad_new(&c, &o), -EINVAL);
	/* An old caller whose ops struct ends before queue_notify. */
	o = fake_ops;
	o.struct_size = (uint32_t)offsetof(struct vdev_device_ops, queue_notify);
	ck_assert_int_eq(bad_new(&c, &o), -EINVAL);

	/* The limits themselves are fine; optional ops may be NULL. */
	c.num_queues = VDEV_DEVICE_MAX_QUEUES;
	c.queue_max_size = 32768;
	c.config_size = VDEV_DEVICE_MAX_CONFIG;
	o = fake_ops;
	o.config_write = NULL;
	o.features_check = NULL;
	ck_assert_int_eq(vdev_device_new(&c, &o, &fk, &d), 0);
	ck_assert_ptr_nonnull(d);
	ck_assert_uint_eq(vdev_device_num_queues(d), VDEV_DEVICE_MAX_QUEUES);
	ck_assert_uint_eq(vdev_device_queue_max_size(d), 32768);
	ck_assert_uint_eq(vdev_device_config_size(d), VDEV_DEVICE_MAX_CONFIG);
	vdev_device_free(d);
	vdev_device_free(NULL);
}
END_TEST

START_TEST(test_getters_and_features)
{
	struct vdev_device_config c = base_cfg();
	vdev_device *d;

	ck_assert_ptr_eq(vdev_device_opaque(dev), &fk);
	ck_assert_uint_eq(vdev_device_type(dev), VIRTIO_ID_RNG);
	ck_assert_uint_eq(vdev_device_num_queues(dev), NQ);
	ck_assert_uint_eq(vdev_device_queue_max_size(dev), 256);
	ck_assert_uint_eq(vdev_device_config_size(dev), CFG_SIZE);
	ck_assert_ptr_null(vdev_device_memory(dev));
	ck_assert_uint_eq(vdev_device_status(dev), 0);
	ck_assert_uint_eq(vdev_device_acked_features(dev), 0);

	ck_assert_uint_eq(vdev_device_features(dev), offered_features | V1);
	ck_assert_uint_eq(vdev_device_features_page(dev, 0), (uint32_t)offered_features);
	ck_assert_uint_eq(vdev_device_features_page(dev, 1),
			  (uint32_t)((offered_features | V1) >> 32));
	ck_assert_uint_eq(vdev_device_features_page(dev, 2), 0);
	ck_assert_uint_eq(vdev_device_features_page(dev, 0xffffffffu), 0);

	/* VERSION_1 is added even when the model offers nothing. */
	c.features = 0;
	ck_assert_int_eq(vdev_device_new(&c, &fake_ops, &fk, &d), 0);
	ck_assert_uint_eq(vdev_device_features(d), V1);
	ck_assert_uint_eq(vdev_device_features_page(d, 0), 0);
	ck_assert_uint_eq(vdev_device_features_page(d, 1), 1);
	vdev_device_free(d);

	ck_assert_int_eq(vdev_device_set_memory(dev, mem), 0);
	ck_assert_ptr_eq(vdev_device_memory(dev), mem);
}
END_TEST

START_TEST(test_feature_writes)
{
	/* Before DRIVER: refused. */
	ck_assert_int_eq(vdev_device_set_acked_features(dev, V1), -EPERM);
	ck_assert_int_eq(vdev_device_set_acked_features_page(dev, 1, 1), -EPERM);
	ck_assert_int_eq(vdev_device_set_status(dev, ACK), 0);
	ck_assert_int_eq(vdev_device_set_acked_features(dev, V1), -EPERM);
	ck_assert_uint_eq(vdev_device_acked_features(dev), 0);

	ck_assert_int_eq(vdev_device_set_status(dev, ACK | DRV), 0);
	ck_assert_int_eq(vdev_device_set_acked_features_page(dev, 0, 0x1), 0);
	ck_assert_int_eq(vdev_device_set_acked_features_page(dev, 1, 0x1), 0);
	ck_assert_uint_eq(vdev_device_acked_features(dev), V1 | 0x1);
	/* Rewriting one page leaves the other alone. */
	ck_assert_int_eq(vdev_device_set_acked_features_page(dev, 0, 0), 0);
	ck_assert_uint_eq(vdev_device_acked_features(dev), V1);
	/* Pages above 1 only take zeros. */
	ck_assert_int_eq(vdev_device_set_acked_features_page(dev, 2, 0), 0);
	ck_assert_int_eq(vdev_device_set_acked_features_page(dev, 2, 1), -EINVAL);
	ck_assert_int_eq(vdev_device_set_acked_features_page(dev, 7, 0x80000000u), -EINVAL);
	ck_assert_uint_eq(vdev_device_acked_features(dev), V1);

	ck_assert_int_eq(vdev_device_set_status(dev, ACK | DRV | FOK), 0);
	/* After FEATURES_OK: no more feature writes. */
	ck_assert_int_eq(vdev_device_set_acked_features(dev, V1 | 0x1), -EPERM);
	ck_assert_int_eq(vdev_device_set_acked_features_page(dev, 0, 0x1), -EPERM);
	ck_assert_uint_eq(vdev_device_acked_features(dev), V1);
}
END_TEST

/* ---- status state machine ----------------------------------------------- */

START_TEST(test_status_order)
{
	/* DRIVER without ACKNOWLEDGE. */
	ck_assert_int_eq(vdev_device_set_status(dev, DRV), -EPERM);
	ck_assert_uint_eq(vdev_device_status(dev), 0);
	/* FEATURES_OK / DRIVER_OK out of order from scratch. */
	ck_assert_int_eq(vdev_device_set_status(dev, ACK | FOK), -EPERM);
	ck_assert_int_eq(vdev_device_set_status(dev, ACK | DRV | DOK), -EPERM);
	ck_assert_uint_eq(vdev_device_status(dev), 0);

	ck_assert_int_eq(vdev_device_set_status(dev, ACK), 0);
	ck_assert_uint_eq(vdev_device_status(dev), ACK);
	/* FEATURES_OK without DRIVER. */
	ck_assert_int_eq(vdev_device_set_status(dev, ACK | FOK), -EPERM);
	ck_assert_uint_eq(vdev_device_status(dev), ACK);
	/* Rewriting the same value is harmless. */
	ck_assert_int_eq(vdev_device_set_status(dev, ACK), 0);

	ck_assert_int_eq(vdev_device_set_status(dev, ACK | DRV), 0);
	ck_assert_int_eq(vdev_device_set_acked_features(dev, V1), 0);
	/* DRIVER_OK without FEATURES_OK, even with memory and irq. */
	attach();
	ck_assert_int_eq(vdev_device_set_status(dev, ACK | DRV | DOK), -EPERM);
	ck_assert_uint_eq(vdev_device_status(dev), ACK | DRV);
	ck_assert_int_eq(fk.activates, 0);

	/* Clearing bits is refused, whatever else is added. */
	ck_assert_int_eq(vdev_device_set_status(dev, ACK), -EPERM);
	ck_assert_int_eq(vdev_device_set_status(dev, DRV), -EPERM);
	ck_assert_int_eq(vdev_device_set_status(dev, DRV | FOK), -EPERM);
	ck_assert_uint_eq(vdev_device_status(dev), ACK | DRV);

	/* Reserved bits. */
	ck_assert_int_eq(vdev_device_set_status(dev, ACK | DRV | 0x10), -EPERM);
	ck_assert_int_eq(vdev_device_set_status(dev, ACK | DRV | 0x20), -EPERM);
	ck_assert_uint_eq(vdev_device_status(dev), ACK | DRV);

	/* NEEDS_RESET written by the driver is ignored, not set. */
	ck_assert_int_eq(vdev_device_set_status(dev, ACK | DRV | NRS), 0);
	ck_assert_uint_eq(vdev_device_status(dev), ACK | DRV);

	/* Several steps in one write when each one's prerequisite is there. */
	ck_assert_int_eq(vdev_device_set_status(dev, ACK | DRV | FOK | DOK), 0);
	ck_assert_uint_eq(vdev_device_status(dev), ACK | DRV | FOK | DOK);
	ck_assert_int_eq(fk.activates, 1);
	ck_assert_int_eq(fk.features_checks, 1);
}
END_TEST

START_TEST(test_status_multi_from_zero)
{
	ck_assert_int_eq(vdev_device_set_status(dev, ACK | DRV), 0);
	ck_assert_uint_eq(vdev_device_status(dev), ACK | DRV);
	ck_assert_int_eq(vdev_device_set_status(dev, 0), 0);
	ck_assert_uint_eq(vdev_device_status(dev), 0);
	/* Features were never written, so FEATURES_OK in the same write fails
	 * (no VERSION_1), and the whole write is refused. */
	ck_assert_int_eq(vdev_device_set_status(dev, ACK | DRV | FOK), -EPERM);
	ck_assert_uint_eq(vdev_device_status(dev), 0);
}
END_TEST

START_TEST(test_features_ok_rules)
{
	ck_assert_int_eq(vdev_device_set_status(dev, ACK | DRV), 0);

	/* A bit that was not offered. */
	ck_assert_int_eq(vdev_device_set_acked_features(dev, V1 | BIT(5)), 0);
	ck_assert_uint_eq(vdev_device_acked_features(dev), V1 | BIT(5));
	ck_assert_int_eq(vdev_device_set_status(dev, ACK | DRV | FOK), -EPERM);
	ck_assert_uint_eq(vdev_device_status(dev) & FOK, 0);
	ck_assert_int_eq(fk.features_checks, 0);

	/* VERSION_1 missing. */
	ck_assert_int_eq(vdev_device_set_acked_features(dev, 0x1), 0);
	ck_assert_int_eq(vdev_device_set_status(dev, ACK | DRV | FOK), -EPERM);
	ck_assert_uint_eq(vdev_device_status(dev) & FOK, 0);
	ck_assert_int_eq(fk.features_checks, 0);

	/* The model refuses the combination. */
	fk.features_check_ret = -ENOTSUP;
	ck_assert_int_eq(vdev_device_set_acked_features(dev, V1 | 0x1), 0);
	ck_assert_int_eq(vdev_device_set_status(dev, ACK | DRV | FOK), -EPERM);
	ck_assert_uint_eq(vdev_device_status(dev), ACK | DRV);
	ck_assert_int_eq(fk.features_checks, 1);
	ck_assert_uint_eq(fk.checked, V1 | 0x1);

	/* Still negotiable: the driver may try another subset. */
	fk.features_check_ret = 0;
	ck_assert_int_eq(vdev_device_set_acked_features(dev, V1), 0);
	ck_assert_int_eq(vdev_device_set_status(dev, ACK | DRV | FOK), 0);
	ck_assert_uint_eq(vdev_device_status(dev), ACK | DRV | FOK);
	ck_assert_int_eq(fk.features_checks, 2);
	ck_assert_uint_eq(fk.checked, V1);
}
END_TEST

START_TEST(test_features_check_optional)
{
	struct vdev_device_config c = base_cfg();
	struct vdev_device_ops o = fake_ops;
	vdev_device *d;

	o.features_check = NULL;
	ck_assert_int_eq(vdev_device_new(&c, &o, &fk, &d), 0);
	ck_assert_int_eq(vdev_device_set_status(d, ACK | DRV), 0);
	ck_assert_int_eq(vdev_device_set_acked_features(d, V1 | 0x1), 0);
	ck_assert_int_eq(vdev_device_set_status(d, ACK | DRV | FOK), 0);
	ck_assert_uint_eq(vdev_device_status(d), ACK | DRV | FOK);
	vdev_device_free(d);
}
END_TEST

START_TEST(test_failed_any_time)
{
	/* From scratch. */
	ck_assert_int_eq(vdev_device_set_status(dev, FAIL), 0);
	ck_assert_uint_eq(vdev_device_status(dev), FAIL);
	/* Once FAILED, only a reset starts over. */
	ck_assert_int_eq(vdev_device_set_status(dev, FAIL | ACK), -EPERM);
	ck_assert_int_eq(vdev_device_set_status(dev, 0), 0);

	/* In the middle of negotiation. */
	ck_assert_int_eq(vdev_device_set_status(dev, ACK | DRV), 0);
	ck_assert_int_eq(vdev_device_set_status(dev, ACK | DRV | FAIL), 0);
	ck_assert_uint_eq(vdev_device_status(dev), ACK | DRV | FAIL);
	ck_assert_int_eq(vdev_device_set_status(dev, 0), 0);

	/* On a live device. */
	bring_up();
	ck_assert_int_eq(vdev_device_set_status(dev, ACK | DRV | FOK | DOK | FAIL), 0);
	ck_assert_uint_eq(vdev_device_status(dev), ACK | DRV | FOK | DOK | FAIL);
	/* Clearing FAILED is still clearing. */
	ck_assert_int_eq(vdev_device_set_status(dev, ACK | DRV | FOK | DOK), -EPERM);
}
END_TEST

/* ---- DRIVER_OK and activation ------------------------------------------- */

START_TEST(test_driver_ok_needs_mem_and_irq)
{
	negotiate(V1);
	setup_queue(0, 8);

	ck_assert_int_eq(vdev_device_set_status(dev, ACK | DRV | FOK | DOK), -EPERM);
	ck_assert_uint_eq(vdev_device_status(dev), ACK | DRV | FOK);

	ck_assert_int_eq(vdev_device_set_memory(dev, mem), 0);
	ck_assert_int_eq(vdev_device_set_status(dev, ACK | DRV | FOK | DOK), -EPERM);
	ck_assert_uint_eq(vdev_device_status(dev), ACK | DRV | FOK);

	ck_assert_int_eq(vdev_device_set_memory(dev, NULL), 0);
	ck_assert_int_eq(vdev_device_set_irq(dev, irq), 0);
	ck_assert_int_eq(vdev_device_set_status(dev, ACK | DRV | FOK | DOK), -EPERM);
	ck_assert_int_eq(fk.activates, 0);
	ck_assert_ptr_null(vdev_device_get_queue(dev, 0));

	ck_assert_int_eq(vdev_device_set_memory(dev, mem), 0);
	ck_assert_int_eq(vdev_device_set_status(dev, ACK | DRV | FOK | DOK), 0);
	ck_assert_int_eq(fk.activates, 1);

	/* Memory and interrupts are pinned while DRIVER_OK is set. */
	ck_assert_int_eq(vdev_device_set_memory(dev, NULL), -EBUSY);
	ck_assert_int_eq(vdev_device_set_irq(dev, NULL), -EBUSY);
	ck_assert_ptr_eq(vdev_device_memory(dev), mem);
}
END_TEST

START_TEST(test_activate_once_with_live_queues)
{
	negotiate(V1);
	setup_queue(0, 8);
	setup_queue(2, 256);
	attach();
	ck_assert_int_eq(vdev_device_queue_enabled(dev, 0), 1);
	ck_assert_int_eq(vdev_device_queue_enabled(dev, 1), 0);
	ck_assert_int_eq(vdev_device_queue_enabled(dev, 2), 1);
	ck_assert_int_eq(vdev_device_queue_enabled(dev, NQ), 0);
	/* Nothing is live before DRIVER_OK. */
	for (uint32_t i = 0; i < NQ; i++)
		ck_assert_ptr_null(vdev_device_get_queue(dev, i));

	ck_assert_int_eq(vdev_device_set_status(dev, ACK | DRV | FOK | DOK), 0);
	ck_assert_int_eq(fk.activates, 1);
	ck_assert_int_eq(fk.queues_seen_in_activate, 2);
	ck_assert_ptr_nonnull(vdev_device_get_queue(dev, 0));
	ck_assert_ptr_null(vdev_device_get_queue(dev, 1));
	ck_assert_ptr_nonnull(vdev_device_get_queue(dev, 2));
	ck_assert_ptr_null(vdev_device_get_queue(dev, NQ));
	ck_assert_uint_eq(vdev_queue_size(vdev_device_get_queue(dev, 0)), 8);
	ck_assert_uint_eq(vdev_queue_size(vdev_device_get_queue(dev, 2)), 256);

	/* Writing DRIVER_OK again does not activate again. */
	ck_assert_int_eq(vdev_device_set_status(dev, ACK | DRV | FOK | DOK), 0);
	ck_assert_int_eq(fk.activates, 1);
	ck_assert_uint_eq(vdev_device_status(dev) & NRS, 0);
	ck_assert_int_eq(ir.config_irqs, 0);

	/* The queue set is frozen now. */
	ck_assert_int_eq(vdev_device_queue_enable(dev, 0, 0), -EBUSY);
	ck_assert_int_eq(vdev_device_queue_enable(dev, 0, 1), 0);
	ck_assert_int_eq(vdev_device_queue_enable(dev, 1, 1), -EBUSY);
	ck_assert_int_eq(vdev_device_queue_enabled(dev, 0), 1);
}
END_TEST

START_TEST(test_activate_packed_odd_size)
{
	negotiate(V1 | BIT(VIRTIO_F_RING_PACKED) | BIT(VIRTIO_RING_F_EVENT_IDX));
	/* Not a power of two: only valid because the ring is packed, so the
	 * queue must be created as a packed one. */
	setup_queue(1, 6);
	attach();
	ck_assert_int_eq(vdev_device_set_status(dev, ACK | DRV | FOK | DOK), 0);
	ck_assert_uint_eq(vdev_device_status(dev) & NRS, 0);
	ck_assert_int_eq(fk.activates, 1);
	ck_assert_ptr_nonnull(vdev_device_get_queue(dev, 1));
	ck_assert_uint_eq(vdev_queue_size(vdev_device_get_queue(dev, 1)), 6);
}
END_TEST

START_TEST(test_activation_failure)
{
	fk.activate_ret = -EIO;
	negotiate(V1);
	setup_queue(0, 8);
	attach();
	/* The write took effect: DRIVER_OK is recorded, the device is broken. */
	ck_assert_int_eq(vdev_device_set_status(dev, ACK | DRV | FOK | DOK), 0);
	ck_assert_int_eq(fk.activates, 1);
	ck_assert_uint_eq(vdev_device_status(dev), ACK | DRV | FOK | DOK | NRS);
	ck_assert_int_eq(ir.config_irqs, 1);
	ck_assert_uint_eq(vdev_device_isr(dev) & 0x2, 0x2);
	ck_assert_ptr_null(vdev_device_get_queue(dev, 0));
	/* Kicks are ignored. */
	ck_assert_int_eq(vdev_device_queue_notify(dev, 0), -EAGAIN);
	ck_assert_int_eq(fk.notifies, 0);
	/* The model never became active, so its reset is not called. */
	vdev_device_reset(dev);
	ck_assert_int_eq(fk.resets, 0);
	ck_assert_uint_eq(vdev_device_status(dev), 0);

	/* A second attempt after reset works. */
	fk.activate_ret = 0;
	bring_up();
	ck_assert_ptr_nonnull(vdev_device_get_queue(dev, 0));
	ck_assert_int_eq(fk.activates, 2);
}
END_TEST

START_TEST(test_bad_ring_address)
{
	struct vdev_queue_config qc = ring_at(8, MEM_GPA);

	negotiate(V1);
	qc.desc_addr = MEM_GPA + MEM_SIZE + 0x1000; /* outside guest memory */
	ck_assert_int_eq(vdev_device_queue_setup(dev, 0, &qc), 0);
	ck_assert_int_eq(vdev_device_queue_enable(dev, 0, 1), 0);
	setup_queue(1, 8); /* a good one: must not stay live either */
	attach();
	ck_assert_int_eq(vdev_device_set_status(dev, ACK | DRV | FOK | DOK), 0);
	ck_assert_uint_eq(vdev_device_status(dev), ACK | DRV | FOK | DOK | NRS);
	ck_assert_int_eq(fk.activates, 0);
	ck_assert_int_eq(ir.config_irqs, 1);
	ck_assert_ptr_null(vdev_device_get_queue(dev, 0));
	ck_assert_ptr_null(vdev_device_get_queue(dev, 1));
	ck_assert_int_eq(vdev_device_queue_notify(dev, 1), -EAGAIN);
	vdev_device_reset(dev);
	ck_assert_int_eq(fk.resets, 0);
}
END_TEST

START_TEST(test_needs_reset_notification)
{
	/* Before DRIVER_OK: the bit is set, nobody listens yet. */
	vdev_device_set_needs_reset(dev);
	ck_assert_uint_eq(vdev_device_status(dev), NRS);
	ck_assert_int_eq(ir.config_irqs, 0);
	vdev_device_reset(dev);
	ck_assert_uint_eq(vdev_device_status(dev), 0);

	/* Broken during negotiation: DRIVER_OK is recorded but the model stays
	 * down, and the driver now hears about it. */
	negotiate(V1);
	setup_queue(0, 8);
	attach();
	vdev_device_set_needs_reset(dev);
	ck_assert_int_eq(ir.config_irqs, 0);
	ck_assert_int_eq(vdev_device_set_status(dev, ACK | DRV | FOK | DOK), 0);
	ck_assert_uint_eq(vdev_device_status(dev), ACK | DRV | FOK | DOK | NRS);
	ck_assert_int_eq(fk.activates, 0);
	ck_assert_ptr_null(vdev_device_get_queue(dev, 0));
	ck_assert_int_eq(ir.config_irqs, 1);
	vdev_device_reset(dev);
	ck_assert_int_eq(fk.resets, 0);
	ir.config_irqs = 0;

	bring_up();
	vdev_device_set_needs_reset(dev);
	ck_assert_uint_eq(vdev_device_status(dev), ACK | DRV | FOK | DOK | NRS);
	ck_assert_int_eq(ir.config_irqs, 1);
	ck_assert_uint_eq(vdev_device_isr(dev), 0x2);
	/* Once per reset cycle. */
	vdev_device_set_needs_reset(dev);
	ck_assert_int_eq(ir.config_irqs, 1);
	/* The driver writing its bits back (NEEDS_RESET included) is fine. */
	ck_assert_int_eq(vdev_device_set_status(dev, ACK | DRV | FOK | DOK | NRS), 0);
	ck_assert_int_eq(vdev_device_queue_notify(dev, 0), -EAGAIN);
	ck_assert_int_eq(fk.notifies, 0);

	/* After a reset the next error notifies again. */
	vdev_device_reset(dev);
	bring_up();
	vdev_device_set_needs_reset(dev);
	ck_assert_int_eq(ir.config_irqs, 2);
}
END_TEST

/* ---- queue setup -------------------------------------------------------- */

START_TEST(test_queue_setup_rules)
{
	struct vdev_queue_config qc = ring_at(8, MEM_GPA);

	/* Before FEATURES_OK. */
	ck_assert_int_eq(vdev_device_queue_setup(dev, 0, &qc), -EPERM);
	ck_assert_int_eq(vdev_device_queue_enable(dev, 0, 1), -EINVAL); /* no setup */
	ck_assert_int_eq(vdev_device_set_status(dev, ACK | DRV), 0);
	ck_assert_int_eq(vdev_device_queue_setup(dev, 0, &qc), -EPERM);
	ck_assert_int_eq(vdev_device_set_acked_features(dev, V1), 0);
	ck_assert_int_eq(vdev_device_set_status(dev, ACK | DRV | FOK), 0);

	ck_assert_int_eq(vdev_device_queue_setup(dev, 0, NULL), -EINVAL);
	ck_assert_int_eq(vdev_device_queue_setup(NULL, 0, &qc), -EINVAL);
	ck_assert_int_eq(vdev_device_queue_setup(dev, NQ, &qc), -EINVAL);
	ck_assert_int_eq(vdev_device_queue_setup(dev, 0xffffffffu, &qc), -EINVAL);
	ck_assert_int_eq(vdev_device_queue_enable(dev, NQ, 1), -EINVAL);

	qc.size = 0;
	ck_assert_int_eq(vdev_device_queue_setup(dev, 0, &qc), -EINVAL);
	qc.size = 6; /* split rings are powers of two */
	ck_assert_int_eq(vdev_device_queue_setup(dev, 0, &qc), -EINVAL);
	qc.size = 512; /* above queue_max_size (256) */
	ck_assert_int_eq(vdev_device_queue_setup(dev, 0, &qc), -EINVAL);
	qc.size = 1;
	ck_assert_int_eq(vdev_device_queue_setup(dev, 0, &qc), 0);
	qc.size = 256;
	ck_assert_int_eq(vdev_device_queue_setup(dev, 0, &qc), 0);
	/* Still not enabled: enabling needs the setup done above. */
	ck_assert_int_eq(vdev_device_queue_enable(dev, 1, 1), -EINVAL);
	ck_assert_int_eq(vdev_device_queue_enable(dev, 0, 1), 0);
	ck_assert_int_eq(vdev_device_queue_enabled(dev, 0), 1);
	/* An enabled queue cannot be reconfigured... */
	qc.size = 8;
	ck_assert_int_eq(vdev_device_queue_setup(dev, 0, &qc), -EBUSY);
	/* ...until disabled (allowed before DRIVER_OK). */
	ck_assert_int_eq(vdev_device_queue_enable(dev, 0, 0), 0);
	ck_assert_int_eq(vdev_device_queue_enabled(dev, 0), 0);
	ck_assert_int_eq(vdev_device_queue_setup(dev, 0, &qc), 0);
	ck_assert_int_eq(vdev_device_queue_enable(dev, 0, 1), 0);

	attach();
	ck_assert_int_eq(vdev_device_set_status(dev, ACK | DRV | FOK | DOK), 0);
	ck_assert_uint_eq(vdev_queue_size(vdev_device_get_queue(dev, 0)), 8);
	/* After DRIVER_OK. */
	ck_assert_int_eq(vdev_device_queue_setup(dev, 1, &qc), -EPERM);
}
END_TEST

START_TEST(test_queue_setup_packed_sizes)
{
	struct vdev_queue_config qc = ring_at(6, MEM_GPA);

	negotiate(V1 | BIT(VIRTIO_F_RING_PACKED));
	ck_assert_int_eq(vdev_device_queue_setup(dev, 0, &qc), 0);
	qc.size = 255;
	ck_assert_int_eq(vdev_device_queue_setup(dev, 0, &qc), 0);
	qc.size = 257;
	ck_assert_int_eq(vdev_device_queue_setup(dev, 0, &qc), -EINVAL);
	qc.size = 0;
	ck_assert_int_eq(vdev_device_queue_setup(dev, 0, &qc), -EINVAL);
}
END_TEST

/* ---- config space ------------------------------------------------------- */

START_TEST(test_config_access)
{
	uint8_t buf[CFG_SIZE + 8];
	uint8_t w[CFG_SIZE + 8] = {1, 2, 3, 4};

	/* Readable before any negotiation. */
	memset(buf, 0xaa, sizeof(buf));
	ck_assert_int_eq(vdev_device_config_read(dev, 0, buf, CFG_SIZE), 0);
	ck_assert_mem_eq(buf, fk.config, CFG_SIZE);
	ck_assert_int_eq(vdev_device_config_read(dev, 12, buf, 4), 0);
	ck_assert_mem_eq(buf, fk.config + 12, 4);
	ck_assert_int_eq(fk.config_reads, 2);

	/* Out of range, zero length, overflowing offset + len: refused, zeros,
	 * and the model never sees them. */
	static const struct {
		uint32_t off, len;
	} bad[] = {
		{CFG_SIZE, 1}, {12, 5}, {0, CFG_SIZE + 1}, {0, 0}, {CFG_SIZE + 100, 1},
		{0xffffffffu, 2}, {0xfffffff8u, 12}, {4, 0xfffffffdu},
	};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint32_t n = bad[i].len <= sizeof(buf) ? bad[i].len : sizeof(buf);

		memset(buf, 0xaa, sizeof(buf));
		ck_assert_int_eq(vdev_device_config_read(dev, bad[i].off, buf, n), -EINVAL);
		for (uint32_t j = 0; j < n; j++)
			ck_assert_uint_eq(buf[j], 0);
		ck_assert_int_eq(vdev_device_config_write(dev, bad[i].off, w, n), -EINVAL);
	}
	/* Overflowing ranges with a length the buffer cannot hold are checked
	 * on writes only (the read would need that much room). */
	ck_assert_int_eq(vdev_device_config_write(dev, 4, w, 0xfffffffdu), -EINVAL);
	ck_assert_int_eq(vdev_device_config_write(dev, 0xfffffff0u, w, 0x20), -EINVAL);
	ck_assert_int_eq(fk.config_reads, 2);
	ck_assert_int_eq(fk.config_writes, 0);
	ck_assert_int_eq(vdev_device_config_read(dev, 0, NULL, 4), -EINVAL);
	ck_assert_int_eq(vdev_device_config_write(dev, 0, NULL, 4), -EINVAL);

	/* A model error reads as zeros and is passed back. */
	fk.config_read_ret = -EIO;
	memset(buf, 0xaa, sizeof(buf));
	ck_assert_int_eq(vdev_device_config_read(dev, 0, buf, 8), -EIO);
	for (unsigned j = 0; j < 8; j++)
		ck_assert_uint_eq(buf[j], 0);
	fk.config_read_ret = 0;

	/* Writes reach the model with the right offset and bytes. */
	ck_assert_int_eq(vdev_device_config_write(dev, 12, w, 4), 0);
	ck_assert_int_eq(fk.config_writes, 1);
	ck_assert_uint_eq(fk.last_write_off, 12);
	ck_assert_uint_eq(fk.last_write_len, 4);
	ck_assert_mem_eq(fk.last_write, w, 4);
	fk.config_write_ret = -EPERM;
	ck_assert_int_eq(vdev_device_config_write(dev, 0, w, 1), -EPERM);
	ck_assert_int_eq(fk.config_writes, 2);
}
END_TEST

START_TEST(test_config_write_optional)
{
	struct vdev_device_config c = base_cfg();
	struct vdev_device_ops o = fake_ops;
	uint8_t w[2] = {9, 9};
	vdev_device *d;

	o.config_write = NULL;
	ck_assert_int_eq(vdev_device_new(&c, &o, &fk, &d), 0);
	ck_assert_int_eq(vdev_device_config_write(d, 0, w, 2), 0);
	ck_assert_int_eq(vdev_device_config_write(d, CFG_SIZE, w, 2), -EINVAL);
	ck_assert_int_eq(fk.config_writes, 0);
	vdev_device_free(d);
}
END_TEST

START_TEST(test_config_zero_size)
{
	struct vdev_device_config c = base_cfg();
	uint8_t b = 0xaa;
	vdev_device *d;

	c.config_size = 0;
	ck_assert_int_eq(vdev_device_new(&c, &fake_ops, &fk, &d), 0);
	ck_assert_int_eq(vdev_device_config_read(d, 0, &b, 1), -EINVAL);
	ck_assert_uint_eq(b, 0);
	ck_assert_int_eq(fk.config_reads, 0);
	vdev_device_free(d);
}
END_TEST

START_TEST(test_generation_and_isr)
{
	uint32_t g0 = vdev_device_config_generation(dev);

	/* Before DRIVER_OK: the generation moves, no interrupt. */
	ck_assert_int_eq(vdev_device_config_changed(dev), 0);
	ck_assert_uint_eq(vdev_device_config_generation(dev), g0 + 1);
	ck_assert_int_eq(ir.config_irqs, 0);
	ck_assert_uint_eq(vdev_device_isr(dev), 0);
	/* No used buffer notifications before DRIVER_OK either. */
	ck_assert_int_eq(vdev_device_interrupt_queue(dev, 0), -EAGAIN);
	ck_assert_int_eq(ir.queue_irqs, 0);

	bring_up();
	uint32_t g1 = vdev_device_config_generation(dev);
	ck_assert_uint_ge(g1, g0 + 1);
	ck_assert_int_eq(vdev_device_config_changed(dev), 0);
	ck_assert_uint_eq(vdev_device_config_generation(dev), g1 + 1);
	ck_assert_int_eq(ir.config_irqs, 1);
	ck_assert_uint_eq(vdev_device_isr(dev), 0x2);

	ck_assert_int_eq(vdev_device_interrupt_queue(dev, 2), 0);
	ck_assert_int_eq(ir.queue_irqs, 1);
	ck_assert_uint_eq(ir.last_queue, 2);
	ck_assert_uint_eq(vdev_device_isr(dev), 0x3);
	ck_assert_int_eq(vdev_device_interrupt_queue(dev, NQ), -EINVAL);
	ck_assert_int_eq(ir.queue_irqs, 1);

	/* Acknowledge bit by bit. */
	ck_assert_uint_eq(vdev_device_isr_ack(dev, 0x1), 0x3);
	ck_assert_uint_eq(vdev_device_isr(dev), 0x2);
	ck_assert_uint_eq(vdev_device_isr_ack(dev, 0xffffffffu), 0x2);
	ck_assert_uint_eq(vdev_device_isr(dev), 0);
}
END_TEST

/* ---- kicks -------------------------------------------------------------- */

START_TEST(test_queue_notify_routing)
{
	/* Not active yet. */
	ck_assert_int_eq(vdev_device_queue_notify(dev, 0), -EAGAIN);
	ck_assert_int_eq(vdev_device_queue_notify(dev, NQ), -EINVAL);

	negotiate(V1);
	setup_queue(0, 8);
	setup_queue(1, 8);
	attach();
	ck_assert_int_eq(vdev_device_queue_notify(dev, 1), -EAGAIN);
	ck_assert_int_eq(vdev_device_set_status(dev, ACK | DRV | FOK | DOK), 0);

	ck_assert_int_eq(vdev_device_queue_notify(dev, 1), 0);
	ck_assert_int_eq(fk.notifies, 1);
	ck_assert_uint_eq(fk.last_notify, 1);
	ck_assert_int_eq(vdev_device_queue_notify(dev, 0), 0);
	ck_assert_int_eq(fk.notifies, 2);
	ck_assert_uint_eq(fk.last_notify, 0);

	ck_assert_int_eq(vdev_device_queue_notify(dev, NQ), -EINVAL);
	ck_assert_int_eq(vdev_device_queue_notify(dev, 0xffffffffu), -EINVAL);
	ck_assert_int_eq(vdev_device_queue_notify(NULL, 0), -EINVAL);
	/* Queue 2 exists but was not enabled. */
	ck_assert_int_eq(vdev_device_queue_notify(dev, 2), -EAGAIN);
	ck_assert_int_eq(fk.notifies, 2);

	vdev_device_reset(dev);
	ck_assert_int_eq(vdev_device_queue_notify(dev, 0), -EAGAIN);
	ck_assert_int_eq(fk.notifies, 2);
}
END_TEST

/* ---- reset -------------------------------------------------------------- */

START_TEST(test_reset_clears_state)
{
	negotiate(V1 | 0x1);
	setup_queue(0, 8);
	setup_queue(2, 8);
	attach();
	ck_assert_int_eq(vdev_device_set_status(dev, ACK | DRV | FOK | DOK), 0);
	ck_assert_int_eq(vdev_device_interrupt_queue(dev, 0), 0);
	ck_assert_int_eq(vdev_device_config_changed(dev), 0);
	uint32_t gen = vdev_device_config_generation(dev);

	vdev_device_reset(dev);
	ck_assert_int_eq(fk.resets, 1);
	ck_assert_uint_eq(vdev_device_status(dev), 0);
	ck_assert_uint_eq(vdev_device_acked_features(dev), 0);
	ck_assert_uint_eq(vdev_device_isr(dev), 0);
	ck_assert_uint_ge(vdev_device_config_generation(dev), gen);
	for (uint32_t i = 0; i < NQ; i++) {
		ck_assert_int_eq(vdev_device_queue_enabled(dev, i), 0);
		ck_assert_ptr_null(vdev_device_get_queue(dev, i));
	}
	/* Memory and irq are the VMM's, they stay attached. */
	ck_assert_ptr_eq(vdev_device_memory(dev), mem);

	/* Queue setup is gone: enabling needs a new setup. */
	negotiate(V1);
	ck_assert_int_eq(vdev_device_queue_enable(dev, 0, 1), -EINVAL);

	/* A second reset of an inactive device does not reach the model. */
	vdev_device_reset(dev);
	ck_assert_int_eq(fk.resets, 1);

	/* Status 0 is a reset too. */
	bring_up();
	ck_assert_int_eq(fk.activates, 2);
	gen = vdev_device_config_generation(dev);
	ck_assert_int_eq(vdev_device_set_status(dev, 0), 0);
	ck_assert_int_eq(fk.resets, 2);
	ck_assert_uint_eq(vdev_device_status(dev), 0);
	ck_assert_ptr_null(vdev_device_get_queue(dev, 0));
	ck_assert_uint_ge(vdev_device_config_generation(dev), gen);
	ck_assert_int_eq(vdev_device_set_status(dev, 0), 0);
	ck_assert_int_eq(fk.resets, 2);
}
END_TEST

START_TEST(test_reset_before_activation)
{
	negotiate(V1);
	setup_queue(0, 8);
	vdev_device_reset(dev);
	ck_assert_int_eq(fk.resets, 0);
	ck_assert_uint_eq(vdev_device_status(dev), 0);
	ck_assert_int_eq(vdev_device_queue_enabled(dev, 0), 0);
}
END_TEST

START_TEST(test_free_active_resets)
{
	bring_up();
	ck_assert_int_eq(fk.resets, 0);
	vdev_device_free(dev);
	dev = NULL;
	ck_assert_int_eq(fk.resets, 1);
}
END_TEST

/* ---- a broken queue marks the device --------------------------------------- */

static void put16(uint64_t gpa, uint16_t v)
{
	v = htole16(v);
	memcpy(guest + (gpa - MEM_GPA), &v, sizeof(v));
}

static void put32(uint64_t gpa, uint32_t v)
{
	v = htole32(v);
	memcpy(guest + (gpa - MEM_GPA), &v, sizeof(v));
}

static void put64(uint64_t gpa, uint64_t v)
{
	v = htole64(v);
	memcpy(guest + (gpa - MEM_GPA), &v, sizeof(v));
}

START_TEST(test_broken_queue_sets_needs_reset)
{
	bring_up();
	/* desc[0] chains to itself. */
	put64(DESC_GPA + 0, DATA_GPA);
	put32(DESC_GPA + 8, 16);
	put16(DESC_GPA + 12, VRING_DESC_F_NEXT);
	put16(DESC_GPA + 14, 0);
	/* avail: flags 0, idx 1, ring[0] = 0. */
	put16(AVAIL_GPA + 0, 0);
	put16(AVAIL_GPA + 4, 0);
	put16(AVAIL_GPA + 2, 1);

	fk.pop_on_notify = 1;
	ck_assert_int_eq(vdev_device_queue_notify(dev, 0), 0);
	ck_assert_int_eq(fk.notifies, 1);
	ck_assert_int_eq(fk.last_pop, -EBADMSG);
	ck_assert_int_eq(vdev_queue_is_broken(vdev_device_get_queue(dev, 0)), -EBADMSG);
	ck_assert_uint_eq(vdev_device_status(dev), ACK | DRV | FOK | DOK | NRS);
	ck_assert_int_eq(ir.config_irqs, 1);
	ck_assert_uint_eq(vdev_device_isr(dev) & 0x2, 0x2);

	/* Further kicks are ignored until the driver resets. */
	ck_assert_int_eq(vdev_device_queue_notify(dev, 0), -EAGAIN);
	ck_assert_int_eq(fk.notifies, 1);

	vdev_device_reset(dev);
	ck_assert_int_eq(fk.resets, 1);
	ck_assert_uint_eq(vdev_device_status(dev), 0);
}
END_TEST

/* ---- several threads ----------------------------------------------------- */

#define NTHREADS 8

static int go;

static void *hammer(void *arg)
{
	(void)arg;
	while (!__atomic_load_n(&go, __ATOMIC_ACQUIRE))
		;
	for (int i = 0; i < 100; i++) {
		vdev_device_interrupt_queue(dev, 0);
		vdev_device_set_needs_reset(dev);
		vdev_device_config_changed(dev);
		(void)vdev_device_status(dev);
		(void)vdev_device_config_generation(dev);
	}
	return NULL;
}

START_TEST(test_concurrent_interrupts)
{
	pthread_t t[NTHREADS];
	uint32_t gen;

	bring_up();
	gen = vdev_device_config_generation(dev);
	__atomic_store_n(&go, 0, __ATOMIC_RELEASE);
	for (int i = 0; i < NTHREADS; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, hammer, NULL), 0);
	__atomic_store_n(&go, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(t[i], NULL);

	/* No update lost: every bump and interrupt counted, NEEDS_RESET
	 * announced by exactly one config interrupt on top of the changes. */
	ck_assert_uint_eq(vdev_device_config_generation(dev), gen + NTHREADS * 100);
	ck_assert_int_eq(ir.queue_irqs, NTHREADS * 100);
	ck_assert_int_eq(ir.config_irqs, NTHREADS * 100 + 1);
	ck_assert_int_eq(ir.bad, 0);
	ck_assert_uint_eq(vdev_device_status(dev), ACK | DRV | FOK | DOK | NRS);
	ck_assert_uint_eq(vdev_device_isr(dev), 0x3);
}
END_TEST

/* ---- logging ------------------------------------------------------------ */

static int log_lines;

static void count_log(void *opaque, int level, const char *msg)
{
	(void)opaque;
	ck_assert_int_le(level, VDEV_LOG_DEBUG);
	ck_assert_ptr_nonnull(msg);
	log_lines++;
}

START_TEST(test_refusals_are_logged)
{
	log_lines = 0;
	vdev_log_set(count_log, NULL, VDEV_LOG_DEBUG);
	ck_assert_int_eq(vdev_device_set_status(dev, DRV), -EPERM);
	vdev_log_set(NULL, NULL, 0);
	ck_assert_int_ge(log_lines, 1);
}
END_TEST


/* ---- queue reset, sleep/wake, legacy (lead's additions) ----------------- */

static int qresets, qenables, qenable_ret, sleeps, wakes, sleep_ret;

static void fake_queue_reset(vdev_device *d, void *opaque, uint32_t queue)
{
	(void)opaque;
	qresets++;
	/* The queue is still live while the model stops using it. */
	ck_assert_ptr_nonnull(vdev_device_get_queue(d, queue));
}

static int fake_queue_enable(vdev_device *d, void *opaque, uint32_t queue)
{
	(void)opaque;
	qenables++;
	ck_assert_ptr_nonnull(vdev_device_get_queue(d, queue));
	return qenable_ret;
}

static int fake_sleep(vdev_device *d, void *opaque)
{
	(void)d;
	(void)opaque;
	sleeps++;
	return sleep_ret;
}

static int fake_wake(vdev_device *d, void *opaque)
{
	(void)d;
	(void)opaque;
	wakes++;
	return 0;
}

static struct vdev_device_ops ops_with_reset(void)
{
	struct vdev_device_ops o = fake_ops;

	o.queue_reset = fake_queue_reset;
	o.queue_enable = fake_queue_enable;
	o.sleep = fake_sleep;
	o.wake = fake_wake;
	return o;
}

/* Replace the fixture's device by one whose model has the optional ops. */
static void use_full_model(void)
{
	struct vdev_device_config c = base_cfg();
	struct vdev_device_ops o = ops_with_reset();

	vdev_device_free(dev);
	c.features |= BIT(VIRTIO_F_RING_RESET);
	ck_assert_int_eq(vdev_device_new(&c, &o, &fk, &dev), 0);
	qresets = qenables = qenable_ret = sleeps = wakes = sleep_ret = 0;
}

START_TEST(test_ring_reset_offered_only_with_ops)
{
	struct vdev_device_config c = base_cfg();
	struct vdev_device_ops o = fake_ops;
	vdev_device *d;

	/* Asked for, but the model cannot reset a queue: not offered. */
	c.features |= BIT(VIRTIO_F_RING_RESET);
	ck_assert_int_eq(vdev_device_new(&c, &fake_ops, &fk, &d), 0);
	ck_assert_uint_eq(vdev_device_features(d) & BIT(VIRTIO_F_RING_RESET), 0);
	vdev_device_free(d);
	/* Only one of the pair: refused. */
	o.queue_reset = fake_queue_reset;
	ck_assert_int_eq(bad_new(&c, &o), -EINVAL);
	o.queue_reset = NULL;
	o.queue_enable = fake_queue_enable;
	ck_assert_int_eq(bad_new(&c, &o), -EINVAL);
	/* Both: offered, even when the config did not ask. */
	o = ops_with_reset();
	c.features &= ~BIT(VIRTIO_F_RING_RESET);
	ck_assert_int_eq(vdev_device_new(&c, &o, &fk, &d), 0);
	ck_assert_uint_ne(vdev_device_features(d) & BIT(VIRTIO_F_RING_RESET), 0);
	vdev_device_free(d);
}
END_TEST

START_TEST(test_queue_reset_and_reenable)
{
	struct vdev_queue_config qc = VDEV_QUEUE_CONFIG_INIT;

	use_full_model();
	negotiate(V1 | BIT(VIRTIO_F_RING_RESET));
	setup_queue(0, 8);
	setup_queue(1, 8);
	attach();
	ck_assert_int_eq(vdev_device_set_status(dev, ACK | DRV | FOK | DOK), 0);
	ck_assert_ptr_nonnull(vdev_device_get_queue(dev, 0));

	ck_assert_int_eq(vdev_device_queue_reset(dev, NQ), -EINVAL);
	ck_assert_int_eq(vdev_device_queue_reset(dev, 0), 0);
	ck_assert_int_eq(qresets, 1);
	ck_assert_ptr_null(vdev_device_get_queue(dev, 0));
	ck_assert_int_eq(vdev_device_queue_enabled(dev, 0), 0);
	ck_assert_int_eq(vdev_device_queue_config(dev, 0, &qc), 0);
	ck_assert_uint_eq(qc.size, 0);
	ck_assert_int_eq(vdev_device_queue_notify(dev, 0), -EAGAIN);
	/* The other queue is untouched. */
	ck_assert_ptr_nonnull(vdev_device_get_queue(dev, 1));

	/* Enabling without a new setup is refused; with one it goes live. */
	ck_assert_int_eq(vdev_device_queue_enable(dev, 0, 1), -EINVAL);
	qc = ring_at(4, MEM_GPA + 2 * QSTRIDE);
	ck_assert_int_eq(vdev_device_queue_setup(dev, 0, &qc), 0);
	ck_assert_int_eq(vdev_device_queue_enable(dev, 0, 1), 0);
	ck_assert_int_eq(qenables, 1);
	ck_assert_ptr_nonnull(vdev_device_get_queue(dev, 0));
	ck_assert_uint_eq(vdev_queue_size(vdev_device_get_queue(dev, 0)), 4);
	ck_assert_int_eq(vdev_device_queue_notify(dev, 0), 0);
	/* A live queue cannot be set up or disabled, only reset. */
	ck_assert_int_eq(vdev_device_queue_setup(dev, 0, &qc), -EBUSY);
	ck_assert_int_eq(vdev_device_queue_enable(dev, 0, 0), -EBUSY);

	/* A model that cannot bring the queue back breaks the device. */
	ck_assert_int_eq(vdev_device_queue_reset(dev, 1), 0);
	qenable_ret = -EIO;
	qc = ring_at(8, MEM_GPA + 1 * QSTRIDE);
	ck_assert_int_eq(vdev_device_queue_setup(dev, 1, &qc), 0);
	ck_assert_int_eq(vdev_device_queue_enable(dev, 1, 1), 0);
	ck_assert_ptr_null(vdev_device_get_queue(dev, 1));
	ck_assert_uint_ne(vdev_device_status(dev) & NRS, 0);
}
END_TEST

START_TEST(test_queue_reset_needs_feature)
{
	use_full_model();
	negotiate(V1);
	setup_queue(0, 8);
	attach();
	ck_assert_int_eq(vdev_device_set_status(dev, ACK | DRV | FOK | DOK), 0);
	ck_assert_int_eq(vdev_device_queue_reset(dev, 0), -EPERM);
	ck_assert_int_eq(qresets, 0);
	ck_assert_ptr_nonnull(vdev_device_get_queue(dev, 0));
}
END_TEST

START_TEST(test_queue_config_getter)
{
	struct vdev_queue_config qc = VDEV_QUEUE_CONFIG_INIT, want;

	negotiate(V1 | BIT(VIRTIO_RING_F_EVENT_IDX));
	setup_queue(2, 16);
	want = ring_at(16, MEM_GPA + 2 * QSTRIDE);
	ck_assert_int_eq(vdev_device_queue_config(dev, 2, &qc), 0);
	ck_assert_uint_eq(qc.size, 16);
	ck_assert_uint_eq(qc.flags, VDEV_QUEUE_F_EVENT_IDX);
	ck_assert_uint_eq(qc.desc_addr, want.desc_addr);
	ck_assert_uint_eq(qc.driver_addr, want.driver_addr);
	ck_assert_uint_eq(qc.device_addr, want.device_addr);
	ck_assert_int_eq(vdev_device_queue_config(dev, NQ, &qc), -EINVAL);
	ck_assert_int_eq(vdev_device_queue_config(dev, 0, NULL), -EINVAL);
	qc.struct_size = 4;
	ck_assert_int_eq(vdev_device_queue_config(dev, 0, &qc), -EINVAL);
}
END_TEST

START_TEST(test_sleep_wake_holds_kicks)
{
	use_full_model();
	negotiate(V1);
	setup_queue(0, 8);
	setup_queue(1, 8);
	attach();
	ck_assert_int_eq(vdev_device_set_status(dev, ACK | DRV | FOK | DOK), 0);

	ck_assert_int_eq(vdev_device_sleep(dev), 0);
	ck_assert_int_eq(sleeps, 1);
	ck_assert_int_eq(vdev_device_sleep(dev), -EALREADY);
	fk.notifies = 0;
	ck_assert_int_eq(vdev_device_queue_notify(dev, 1), 0);
	ck_assert_int_eq(vdev_device_queue_notify(dev, 1), 0);
	ck_assert_int_eq(fk.notifies, 0); /* held */
	ck_assert_int_eq(vdev_device_wake(dev), 0);
	ck_assert_int_eq(wakes, 1);
	ck_assert_int_eq(fk.notifies, 1); /* delivered once, for queue 1 */
	ck_assert_uint_eq(fk.last_notify, 1);
	ck_assert_int_eq(vdev_device_wake(dev), -EALREADY);
	ck_assert_int_eq(vdev_device_queue_notify(dev, 0), 0);
	ck_assert_int_eq(fk.notifies, 2);

	/* A model that cannot sleep leaves the device awake. */
	sleep_ret = -EBUSY;
	ck_assert_int_eq(vdev_device_sleep(dev), -EBUSY);
	ck_assert_int_eq(vdev_device_queue_notify(dev, 0), 0);
	ck_assert_int_eq(fk.notifies, 3);

	/* Reset while asleep: awake and clean afterwards. */
	sleep_ret = 0;
	ck_assert_int_eq(vdev_device_sleep(dev), 0);
	ck_assert_int_eq(vdev_device_queue_notify(dev, 0), 0);
	vdev_device_reset(dev);
	ck_assert_int_eq(vdev_device_wake(dev), -EALREADY);
	ck_assert_int_eq(fk.notifies, 3);
}
END_TEST

START_TEST(test_legacy_interface)
{
	struct vdev_queue_config qc = ring_at(8, MEM_GPA);

	ck_assert_int_eq(vdi_device_set_legacy(dev, 1), 0);
	ck_assert_uint_eq(vdev_device_features_page(dev, 1), 0); /* no VERSION_1 */
	ck_assert_uint_eq(vdev_device_features_page(dev, 0), (uint32_t)offered_features);
	ck_assert_int_eq(vdev_device_set_status(dev, ACK), 0);
	ck_assert_int_eq(vdi_device_set_legacy(dev, 0), -EBUSY);
	ck_assert_int_eq(vdev_device_set_status(dev, ACK | DRV), 0);
	/* No FEATURES_OK in legacy: queues are set up with DRIVER alone. */
	ck_assert_int_eq(vdev_device_set_acked_features_page(dev, 0, BIT(VIRTIO_RING_F_EVENT_IDX)), 0);
	ck_assert_int_eq(vdev_device_queue_setup(dev, 0, &qc), 0);
	ck_assert_int_eq(vdev_device_queue_enable(dev, 0, 1), 0);
	attach();
	/* An unoffered bit is refused at DRIVER_OK. */
	ck_assert_int_eq(vdev_device_set_acked_features_page(dev, 0, 0x80000000u), 0);
	ck_assert_int_eq(vdev_device_set_status(dev, ACK | DRV | DOK), -EPERM);
	ck_assert_int_eq(fk.activates, 0);
	ck_assert_int_eq(vdev_device_set_acked_features_page(dev, 0, BIT(VIRTIO_RING_F_EVENT_IDX)), 0);
	ck_assert_int_eq(vdev_device_set_status(dev, ACK | DRV | DOK), 0);
	ck_assert_int_eq(fk.activates, 1);
	ck_assert_ptr_nonnull(vdev_device_get_queue(dev, 0));
	/* Features are frozen once the driver is running. */
	ck_assert_int_eq(vdev_device_set_acked_features_page(dev, 0, 0), -EPERM);
	/* Packed layout sizes are not allowed on a legacy interface. */
	vdev_device_reset(dev);
	ck_assert_int_eq(vdev_device_set_status(dev, ACK | DRV), 0);
	qc.size = 6;
	ck_assert_int_eq(vdev_device_queue_setup(dev, 0, &qc), -EINVAL);
}
END_TEST

/* ---- kicks from several threads (several vCPUs writing QueueNotify) ----- */

static int race_inside, race_reentered, race_in_reset, race_bad;
static uint64_t race_kick_seq, race_seen_seq;
static uint64_t race_runs;

static void race_queue_notify(vdev_device *d, void *opaque, uint32_t queue)
{
	vdev_queue *q = vdev_device_get_queue(d, queue);

	(void)opaque;
	if (__atomic_fetch_add(&race_inside, 1, __ATOMIC_SEQ_CST) != 0)
		__atomic_store_n(&race_reentered, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&race_in_reset, __ATOMIC_SEQ_CST) || !q)
		__atomic_store_n(&race_bad, 1, __ATOMIC_SEQ_CST);
	/* Every kick up to here is served by this run. */
	__atomic_store_n(&race_seen_seq, __atomic_load_n(&race_kick_seq, __ATOMIC_SEQ_CST),
			 __ATOMIC_SEQ_CST);
	if (q)
		(void)vdev_queue_has_avail(q); /* touches the queue: ASan sees a freed one */
	race_runs++;
	for (volatile int i = 0; i < 200; i++)
		;
	__atomic_fetch_sub(&race_inside, 1, __ATOMIC_SEQ_CST);
}

static void race_reset(vdev_device *d, void *opaque)
{
	(void)d;
	(void)opaque;
	__atomic_store_n(&race_in_reset, 1, __ATOMIC_SEQ_CST);
	for (volatile int i = 0; i < 2000; i++)
		;
	if (__atomic_load_n(&race_inside, __ATOMIC_SEQ_CST))
		__atomic_store_n(&race_bad, 1, __ATOMIC_SEQ_CST);
	__atomic_store_n(&race_in_reset, 0, __ATOMIC_SEQ_CST);
}

static int race_stop;

static void *race_kicker(void *arg)
{
	long n = (long)arg;

	for (long i = 0; n ? i < n : !__atomic_load_n(&race_stop, __ATOMIC_SEQ_CST); i++) {
		__atomic_add_fetch(&race_kick_seq, 1, __ATOMIC_SEQ_CST);
		(void)vdev_device_queue_notify(dev, 0);
	}
	return NULL;
}

static void use_race_model(void)
{
	struct vdev_device_config c = base_cfg();
	struct vdev_device_ops o = fake_ops;

	o.queue_notify = race_queue_notify;
	o.reset = race_reset;
	vdev_device_free(dev);
	ck_assert_int_eq(vdev_device_new(&c, &o, &fk, &dev), 0);
	race_inside = race_reentered = race_in_reset = race_bad = race_stop = 0;
	race_kick_seq = race_seen_seq = race_runs = 0;
}

START_TEST(test_concurrent_kicks_serialized)
{
	pthread_t th[4];

	use_race_model();
	bring_up();
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, race_kicker, (void *)20000L), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	ck_assert_int_eq(race_reentered, 0); /* never two runs at once */
	ck_assert_int_eq(race_bad, 0);
	ck_assert_uint_gt(race_runs, 0);
	/* No kick lost: the last one was served by a run that started after it. */
	ck_assert_uint_eq(race_seen_seq, race_kick_seq);
}
END_TEST

START_TEST(test_reset_races_with_kicks)
{
	pthread_t th[2];

	use_race_model();
	bring_up();
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, race_kicker, (void *)0L), 0);
	for (int round = 0; round < 300; round++) {
		vdev_device_reset(dev); /* as a vCPU writing Status = 0 would */
		bring_up();
	}
	__atomic_store_n(&race_stop, 1, __ATOMIC_SEQ_CST);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	ck_assert_int_eq(race_reentered, 0);
	ck_assert_int_eq(race_bad, 0); /* no run during reset, none without a queue */
}
END_TEST

static Suite *device_suite(void)
{
	Suite *s = suite_create("device");
	TCase *tc;

	tc = tcase_create("construction");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_new_validation);
	tcase_add_test(tc, test_getters_and_features);
	tcase_add_test(tc, test_feature_writes);
	suite_add_tcase(s, tc);

	tc = tcase_create("status");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_status_order);
	tcase_add_test(tc, test_status_multi_from_zero);
	tcase_add_test(tc, test_features_ok_rules);
	tcase_add_test(tc, test_features_check_optional);
	tcase_add_test(tc, test_failed_any_time);
	suite_add_tcase(s, tc);

	tc = tcase_create("activation");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_driver_ok_needs_mem_and_irq);
	tcase_add_test(tc, test_activate_once_with_live_queues);
	tcase_add_test(tc, test_activate_packed_odd_size);
	tcase_add_test(tc, test_activation_failure);
	tcase_add_test(tc, test_bad_ring_address);
	tcase_add_test(tc, test_needs_reset_notification);
	suite_add_tcase(s, tc);

	tc = tcase_create("queues");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_queue_setup_rules);
	tcase_add_test(tc, test_queue_setup_packed_sizes);
	tcase_add_test(tc, test_queue_notify_routing);
	tcase_add_test(tc, test_broken_queue_sets_needs_reset);
	suite_add_tcase(s, tc);

	tc = tcase_create("config");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_config_access);
	tcase_add_test(tc, test_config_write_optional);
	tcase_add_test(tc, test_config_zero_size);
	tcase_add_test(tc, test_generation_and_isr);
	tcase_add_test(tc, test_concurrent_interrupts);
	suite_add_tcase(s, tc);

	tc = tcase_create("reset");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_reset_clears_state);
	tcase_add_test(tc, test_reset_before_activation);
	tcase_add_test(tc, test_free_active_resets);
	tcase_add_test(tc, test_refusals_are_logged);
	suite_add_tcase(s, tc);

	tc = tcase_create("queue-reset-sleep-legacy");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_ring_reset_offered_only_with_ops);
	tcase_add_test(tc, test_queue_reset_and_reenable);
	tcase_add_test(tc, test_queue_reset_needs_feature);
	tcase_add_test(tc, test_queue_config_getter);
	tcase_add_test(tc, test_sleep_wake_holds_kicks);
	tcase_add_test(tc, test_legacy_interface);
	suite_add_tcase(s, tc);

	tc = tcase_create("concurrency");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_concurrent_kicks_serialized);
	tcase_add_test(tc, test_reset_races_with_kicks);
	suite_add_tcase(s, tc);

	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(device_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
