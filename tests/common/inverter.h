/* SPDX-License-Identifier: MIT */
/*
 * The "inverter" device model shared by the transport tests (test-mmio,
 * test-virtio-pci): every chain's readable bytes come back bitwise inverted
 * in its writable part, served synchronously from queue_notify, with
 * counters the tests check. Include after defining NQ (queues) and CFG_SIZE
 * (bytes of config space); the functions are static, one copy per program.
 */
#ifndef VDEV_TEST_INVERTER_H
#define VDEV_TEST_INVERTER_H

#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>

#include <virtio-dev/virtio-dev.h>

struct inv {
	unsigned activations, resets;
	unsigned kicks[NQ];
	unsigned served[NQ];
	unsigned queue_resets, queue_enables;
	unsigned irq_queue, irq_config; /* for a test's own vdev_irq callback */
	uint32_t ro_head; /* config bytes at the start the driver may not write */
	uint8_t config[CFG_SIZE];
};

static void inv_serve(struct inv *v, vdev_device *dev, uint32_t qi)
{
	vdev_queue *q = vdev_device_get_queue(dev, qi);
	struct iovec iov[16];
	uint64_t gpa[16];
	int r;

	ck_assert_ptr_nonnull(q);
	do {
		vdev_queue_set_notification(q, 0);
		for (;;) {
			struct vdev_queue_elem el = VDEV_QUEUE_ELEM_INIT;
			uint8_t tmp[4096];
			uint64_t n = 0, w = 0;

			el.iov = iov;
			el.gpa = gpa;
			el.iov_cap = 16;
			r = vdev_queue_pop(q, &el);
			ck_assert_int_ge(r, 0);
			if (!r)
				break;
			for (uint32_t i = 0; i < el.out_num; i++) {
				for (size_t k = 0; k < iov[i].iov_len && n < sizeof(tmp); k++)
					tmp[n++] = (uint8_t)~((uint8_t *)iov[i].iov_base)[k];
			}
			for (uint32_t i = el.out_num; i < el.out_num + el.in_num && w < n; i++) {
				uint64_t c = iov[i].iov_len < n - w ? iov[i].iov_len : n - w;

				memcpy(iov[i].iov_base, tmp + w, c);
				w += c;
			}
			ck_assert_int_eq(vdev_queue_fill(q, &el, (uint32_t)w), 0);
			v->served[qi]++;
		}
		r = vdev_queue_flush(q);
		ck_assert_int_ge(r, 0);
		if (r > 0)
			ck_assert_int_eq(vdev_device_interrupt_queue(dev, qi), 0);
	} while (vdev_queue_set_notification(q, 1) > 0);
}

static int inv_config_read(vdev_device *dev, void *opaque, uint32_t off, void *b, uint32_t len)
{
	struct inv *v = opaque;

	(void)dev;
	memcpy(b, v->config + off, len);
	return 0;
}

static int inv_config_write(vdev_device *dev, void *opaque, uint32_t off, const void *b,
			    uint32_t len)
{
	struct inv *v = opaque;

	(void)dev;
	if (off < v->ro_head)
		return -EPERM;
	memcpy(v->config + off, b, len);
	return 0;
}

static int inv_activate(vdev_device *dev, void *opaque)
{
	(void)dev;
	((struct inv *)opaque)->activations++;
	return 0;
}

static void inv_reset(vdev_device *dev, void *opaque)
{
	(void)dev;
	((struct inv *)opaque)->resets++;
}

static void inv_notify(vdev_device *dev, void *opaque, uint32_t qi)
{
	struct inv *v = opaque;

	ck_assert_uint_lt(qi, NQ);
	v->kicks[qi]++;
	inv_serve(v, dev, qi);
}

static void inv_queue_reset(vdev_device *dev, void *opaque, uint32_t qi)
{
	(void)dev;
	(void)qi;
	((struct inv *)opaque)->queue_resets++;
}

static int inv_queue_enable(vdev_device *dev, void *opaque, uint32_t qi)
{
	(void)dev;
	(void)qi;
	((struct inv *)opaque)->queue_enables++;
	return 0;
}

/* The model's ops; with @ring_reset also queue_reset / queue_enable. */
static struct vdev_device_ops inv_ops(int ring_reset)
{
	struct vdev_device_ops ops = VDEV_DEVICE_OPS_INIT;

	ops.config_read = inv_config_read;
	ops.config_write = inv_config_write;
	ops.activate = inv_activate;
	ops.reset = inv_reset;
	ops.queue_notify = inv_notify;
	if (ring_reset) {
		ops.queue_reset = inv_queue_reset;
		ops.queue_enable = inv_queue_enable;
	}
	return ops;
}

#endif
