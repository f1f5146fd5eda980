/* SPDX-License-Identifier: MIT */
/*
 * virtio-mmio, driver side: vdev_drv transport ops over the version 2
 * register block, reached through caller accessors or, in a guest, through
 * volatile loads and stores at the mapped block. Freestanding: no libc
 * beyond memcpy/memset, caller storage only.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <virtio-dev/mmio.h>

#include "internal/mmio_regs.h"
#include "internal/util.h"

#define MMIO_MAGIC 0x74726976u


struct vdev_drv_mmio {
	struct vdev_drv_mmio_io_ops io;
	int use_io; /* 0: volatile accesses at ctx */
	void *ctx;
};

uint64_t vdev_drv_mmio_storage_size(void)
{
	return sizeof(struct vdev_drv_mmio);
}

int vdev_drv_mmio_init(void *storage, uint64_t storage_size, const struct vdev_drv_mmio_io_ops *io,
		       void *ctx, vdev_drv_mmio **out)
{
	vdev_drv_mmio *m;
	struct vdev_drv_mmio_io_ops o;

	if (!storage || !out || storage_size < sizeof(*m) || ((uintptr_t)storage & 7u))
		return -EINVAL;
	if (io) {
		if (vdi_copy_versioned(&o, sizeof(o), io) < 0 || !o.read || !o.write)
			return -EINVAL;
	} else if (!ctx || ((uintptr_t)ctx & 3u)) {
		return -EINVAL;
	}
	m = storage;
	memset(m, 0, sizeof(*m));
	if (io) {
		m->io = o;
		m->use_io = 1;
	}
	m->ctx = ctx;
	*out = m;
	return 0;
}

/*
 * Device registers. The fences order ring memory against the register
 * access, as a guest's readl/writel do (a kick must not overtake the ring
 * writes it announces; a status read must not be overtaken by ring reads).
 */
static uint32_t rd(const vdev_drv_mmio *m, uint32_t off, uint32_t width)
{
	uint32_t v;

	if (m->use_io)
		return m->io.read(m->ctx, off, width);
	if (width == 1)
		v = *(volatile const uint8_t *)((const char *)m->ctx + off);
	else if (width == 2)
		v = vdi_le16(*(volatile const uint16_t *)((const char *)m->ctx + off));
	else
		v = vdi_le32(*(volatile const uint32_t *)((const char *)m->ctx + off));
	vdi_fence_seq_cst();
	return v;
}

static void wr(const vdev_drv_mmio *m, uint32_t off, uint32_t width, uint32_t v)
{
	if (m->use_io) {
		m->io.write(m->ctx, off, width, v);
		return;
	}
	vdi_fence_seq_cst();
	if (width == 1)
		*(volatile uint8_t *)((char *)m->ctx + off) = (uint8_t)v;
	else if (width == 2)
		*(volatile uint16_t *)((char *)m->ctx + off) = vdi_le16((uint16_t)v);
	else
		*(volatile uint32_t *)((char *)m->ctx + off) = vdi_le32(v);
}

static uint32_t rd32(const vdev_drv_mmio *m, uint32_t off)
{
	return rd(m, off, 4);
}

static void wr32(const vdev_drv_mmio *m, uint32_t off, uint32_t v)
{
	wr(m, off, 4, v);
}

int vdev_drv_mmio_probe(vdev_drv_mmio *m, uint32_t *device_id)
{
	uint32_t id;

	if (!m)
		return -EINVAL;
	/* Spec order: magic and version first; only then DeviceID. */
	if (rd32(m, R_MAGIC) != MMIO_MAGIC || rd32(m, R_VERSION) != 2)
		return -ENOTSUP;
	id = rd32(m, R_DEVICE_ID);
	if (!id)
		return -ENODEV;
	if (device_id)
		*device_id = id;
	return 0;
}

static uint32_t t_get_status(void *t)
{
	return rd32(t, R_STATUS);
}

static void t_set_status(void *t, uint32_t status)
{
	wr32(t, R_STATUS, status);
}

static uint32_t t_get_device_features(void *t, uint32_t page)
{
	wr32(t, R_DEV_FEATURES_SEL, page);
	return rd32(t, R_DEV_FEATURES);
}

static void t_set_driver_features(void *t, uint32_t page, uint32_t value)
{
	wr32(t, R_DRV_FEATURES_SEL, page);
	wr32(t, R_DRV_FEATURES, value);
}

static uint32_t t_queue_max_size(void *t, uint32_t queue)
{
	wr32(t, R_QUEUE_SEL, queue);
	return rd32(t, R_QUEUE_SIZE_MAX);
}

static int t_queue_setup(void *t, uint32_t queue, uint32_t size, uint64_t desc_addr,
			 uint64_t driver_addr, uint64_t device_addr)
{
	uint32_t max;

	wr32(t, R_QUEUE_SEL, queue);
	if (rd32(t, R_QUEUE_READY) != 0)
		return -EBUSY;
	max = rd32(t, R_QUEUE_SIZE_MAX);
	if (!max)
		return -ENODEV;
	if (!size || size > max)
		return -EINVAL;
	wr32(t, R_QUEUE_SIZE, size);
	wr32(t, R_QUEUE_DESC_LOW, (uint32_t)desc_addr);
	wr32(t, R_QUEUE_DESC_HIGH, (uint32_t)(desc_addr >> 32));
	wr32(t, R_QUEUE_DRIVER_LOW, (uint32_t)driver_addr);
	wr32(t, R_QUEUE_DRIVER_HIGH, (uint32_t)(driver_addr >> 32));
	wr32(t, R_QUEUE_DEVICE_LOW, (uint32_t)device_addr);
	wr32(t, R_QUEUE_DEVICE_HIGH, (uint32_t)(device_addr >> 32));
	wr32(t, R_QUEUE_READY, 1);
	/* The device refuses a ring it cannot use by leaving QueueReady 0. */
	return rd32(t, R_QUEUE_READY) == 1 ? 0 : -EIO;
}

static void t_queue_notify(void *t, uint32_t queue)
{
	wr32(t, R_QUEUE_NOTIFY, queue);
}

static uint32_t t_config_generation(void *t)
{
	return rd32(t, R_CONFIG_GENERATION);
}

/* Config space is VDEV_MMIO_SIZE - 0x100 bytes; never touch beyond it. */
static int cfg_ok(uint32_t offset, uint32_t width)
{
	return (width == 1 || width == 2 || width == 4) &&
	       offset <= VDEV_MMIO_SIZE - R_CONFIG - width;
}

static uint32_t t_config_read(void *t, uint32_t offset, uint32_t width)
{
	if (!cfg_ok(offset, width))
		return 0;
	return rd(t, R_CONFIG + offset, width);
}

static void t_config_write(void *t, uint32_t offset, uint32_t width, uint32_t value)
{
	if (!cfg_ok(offset, width))
		return;
	wr(t, R_CONFIG + offset, width, value);
}

static const struct vdev_drv_transport_ops mmio_drv_ops = {
	.struct_size = sizeof(struct vdev_drv_transport_ops),
	.get_status = t_get_status,
	.set_status = t_set_status,
	.get_device_features = t_get_device_features,
	.set_driver_features = t_set_driver_features,
	.queue_max_size = t_queue_max_size,
	.queue_setup = t_queue_setup,
	.queue_notify = t_queue_notify,
	.config_generation = t_config_generation,
	.config_read = t_config_read,
	.config_write = t_config_write,
};

const struct vdev_drv_transport_ops *vdev_drv_mmio_transport(void)
{
	return &mmio_drv_ops;
}

uint32_t vdev_drv_mmio_ack_interrupt(vdev_drv_mmio *m)
{
	uint32_t isr;

	if (!m)
		return 0;
	/* Only the two defined bits: the driver must not ack undefined ones. */
	isr = rd32(m, R_INTERRUPT_STATUS) & 3u;
	if (isr)
		wr32(m, R_INTERRUPT_ACK, isr);
	return isr;
}
