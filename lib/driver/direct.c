/* SPDX-License-Identifier: MIT */
/*
 * The in-process transport: driver register accesses become vdev_device_*
 * calls on the vdev_device * given as transport_opaque. No bus, no ISR: the
 * device's interrupts go wherever its vdev_irq sends them.
 */
#include <stdint.h>

#include <virtio-dev/device.h>
#include <virtio-dev/driver.h>

static uint32_t direct_get_status(void *t)
{
	return vdev_device_status(t);
}

static void direct_set_status(void *t, uint32_t status)
{
	/* A refused write leaves the status unchanged; the driver sees that by
	 * reading it back, as it would on a real bus. */
	(void)vdev_device_set_status(t, (uint8_t)status);
}

static uint32_t direct_get_device_features(void *t, uint32_t page)
{
	return vdev_device_features_page(t, page);
}

static void direct_set_driver_features(void *t, uint32_t page, uint32_t value)
{
	(void)vdev_device_set_acked_features_page(t, page, value);
}

static uint32_t direct_queue_max_size(void *t, uint32_t queue)
{
	if (queue >= vdev_device_num_queues(t))
		return 0;
	return vdev_device_queue_max_size(t);
}

static int direct_queue_setup(void *t, uint32_t queue, uint32_t size, uint64_t desc_addr,
			      uint64_t driver_addr, uint64_t device_addr)
{
	struct vdev_queue_config qc = VDEV_QUEUE_CONFIG_INIT;
	int r;

	qc.size = size;
	qc.desc_addr = desc_addr;
	qc.driver_addr = driver_addr;
	qc.device_addr = device_addr;
	r = vdev_device_queue_setup(t, queue, &qc);
	if (r < 0)
		return r;
	return vdev_device_queue_enable(t, queue, 1);
}

static void direct_queue_notify(void *t, uint32_t queue)
{
	(void)vdev_device_queue_notify(t, queue);
}

static uint32_t direct_config_generation(void *t)
{
	return vdev_device_config_generation(t);
}

static uint32_t direct_config_read(void *t, uint32_t offset, uint32_t width)
{
	uint8_t b[4] = {0, 0, 0, 0};
	uint32_t v = 0, i;

	if (width != 1 && width != 2 && width != 4)
		return 0;
	/* On error the device leaves zeros in b: a bus reads 0 there too. */
	(void)vdev_device_config_read(t, offset, b, width);
	for (i = 0; i < width; i++)
		v |= (uint32_t)b[i] << (8 * i);
	return v;
}

static void direct_config_write(void *t, uint32_t offset, uint32_t width, uint32_t value)
{
	uint8_t b[4];
	uint32_t i;

	if (width != 1 && width != 2 && width != 4)
		return;
	for (i = 0; i < width; i++)
		b[i] = (uint8_t)(value >> (8 * i));
	(void)vdev_device_config_write(t, offset, b, width);
}

static const struct vdev_drv_transport_ops direct_ops = {
	.struct_size = sizeof(struct vdev_drv_transport_ops),
	.get_status = direct_get_status,
	.set_status = direct_set_status,
	.get_device_features = direct_get_device_features,
	.set_driver_features = direct_set_driver_features,
	.queue_max_size = direct_queue_max_size,
	.queue_setup = direct_queue_setup,
	.queue_notify = direct_queue_notify,
	.config_generation = direct_config_generation,
	.config_read = direct_config_read,
	.config_write = direct_config_write,
};

const struct vdev_drv_transport_ops *vdev_drv_direct_transport(void)
{
	return &direct_ops;
}
