/* SPDX-License-Identifier: MIT */
/*
 * virtio-mmio, device side: the register block of the spec's "Virtio Over
 * MMIO" chapter (version 2, and the legacy version 1 layout) in front of a
 * vdev_device.
 *
 * The transport keeps only what the registers need between accesses: the
 * selectors, and per queue the values the driver latched (QueueSize and the
 * three ring addresses; legacy: QueueAlign and QueuePFN). Everything with a
 * meaning beyond the register block (status, features, ISR, queue enable,
 * config generation) lives in the device object and is read from there, so
 * a reset from any path (the guest, the VMM, vdev_mmio_free) is seen the same.
 *
 * Locking: one recursive mutex serializes register accesses (vCPUs may race).
 * It is recursive because a device model may complete work, and so raise an
 * interrupt, from inside a status write (activation, reset); a VMM whose
 * interrupt callback reads InterruptStatus on the same thread must not
 * deadlock. QueueNotify does not hold it while the model runs: a register
 * kick then behaves exactly like an ioeventfd kick (vdev_device_queue_notify),
 * which never takes it either.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <linux/virtio_config.h>

#include <virtio-dev/mmio.h>

#include "core/device_internal.h"
#include "internal/mmio_regs.h"
#include "internal/util.h"

#define VDI_BIT(n) (1ull << (n))
/* Not in every <linux/virtio_config.h> yet. */
#define VDI_F_NOTIFICATION_DATA 38

#define MMIO_MAGIC 0x74726976u
#define MMIO_DEFAULT_VENDOR 0x56444556u /* "VDEV" */
#define MMIO_MAX_SHM 256u
#define MMIO_DEFAULT_PAGE 4096u

/* Register offsets, both layouts (legacy names in comments). */

/* What the driver latched for one queue, handed to the device on enable. */
struct mmio_queue {
	uint32_t size;
	uint64_t desc;
	uint64_t driver;
	uint64_t device;
	uint32_t align; /* legacy */
	uint32_t pfn;   /* legacy: as written, while the queue is enabled */
};

struct mmio_shm {
	uint64_t base;
	uint64_t len; /* 0: no such region */
};

struct vdev_mmio {
	pthread_mutex_t lock;
	vdev_device *dev;
	vdev_irq *irq;
	uint64_t base;
	uint32_t version;
	uint32_t vendor;
	uint32_t num_queues;

	uint32_t dev_features_sel;
	uint32_t drv_features_sel;
	uint32_t queue_sel;
	uint32_t shm_sel;
	uint32_t guest_page_size; /* legacy; kept across resets (Linux writes it once) */
	uint8_t last_status;      /* to notice resets done behind our back */
	struct mmio_queue *queues;
	struct mmio_shm shm[MMIO_MAX_SHM];
};

static uint32_t ld32(const void *p)
{
	const uint8_t *b = p;

	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static void st32(void *p, uint32_t v)
{
	uint8_t *b = p;

	b[0] = (uint8_t)v;
	b[1] = (uint8_t)(v >> 8);
	b[2] = (uint8_t)(v >> 16);
	b[3] = (uint8_t)(v >> 24);
}

static void queue_latch_clear(vdev_mmio *m, uint32_t q)
{
	struct mmio_queue *mq = &m->queues[q];

	memset(mq, 0, sizeof(*mq));
	/* A driver that never writes QueueSize gets the largest queue, as on
	 * virtio-pci; one that does overrides it. */
	mq->size = vdev_device_queue_max_size(m->dev);
	mq->align = MMIO_DEFAULT_PAGE;
}

/* Back to the register state of a freshly reset device. */
static void latches_reset(vdev_mmio *m)
{
	m->dev_features_sel = 0;
	m->drv_features_sel = 0;
	m->queue_sel = 0;
	for (uint32_t i = 0; i < m->num_queues; i++)
		queue_latch_clear(m, i);
}

/* Called at the start of every locked access: a reset done directly on the
 * device (by the VMM) must clear our latches as a guest reset does. */
static void sync_reset(vdev_mmio *m)
{
	uint8_t st = vdev_device_status(m->dev);

	if (st == 0 && m->last_status != 0)
		latches_reset(m);
	m->last_status = st;
}

static void refused(const vdev_mmio *m, const char *what, uint64_t offset, uint32_t size)
{
	vdi_log(VDEV_LOG_DEBUG, "virtio-mmio v%u dev %u: refused %s at 0x%llx size %u", m->version,
		vdev_device_type(m->dev), what, (unsigned long long)offset, size);
}

VDEV_EXPORT int vdev_mmio_new(const struct vdev_mmio_config *cfg, vdev_device *dev, vdev_irq *irq,
			      vdev_mmio **out)
{
	struct vdev_mmio_config c;
	pthread_mutexattr_t attr;
	vdev_mmio *m;
	int r;

	if (!cfg || !dev || !irq || !out || vdi_copy_versioned(&c, sizeof(c), cfg) < 0)
		return -EINVAL;
	if (c.version == 0)
		c.version = 2;
	if ((c.version != 1 && c.version != 2) || c.reserved != 0)
		return -EINVAL;
	if (c.base > UINT64_MAX - VDEV_MMIO_SIZE + 1)
		return -EINVAL;
	/* Changing the interface of a device in use would confuse its driver. */
	if (vdev_device_status(dev) != 0)
		return -EBUSY;

	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->num_queues = vdev_device_num_queues(dev);
	m->queues = calloc(m->num_queues, sizeof(*m->queues));
	if (!m->queues) {
		free(m);
		return -ENOMEM;
	}
	if (pthread_mutexattr_init(&attr) != 0) {
		free(m->queues);
		free(m);
		return -ENOMEM;
	}
	pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
	r = pthread_mutex_init(&m->lock, &attr);
	pthread_mutexattr_destroy(&attr);
	if (r != 0) {
		free(m->queues);
		free(m);
		return -ENOMEM;
	}
	r = vdi_device_set_legacy(dev, c.version == 1);
	if (r == 0)
		r = vdev_device_set_irq(dev, irq);
	if (r < 0) {
		(void)vdi_device_set_legacy(dev, 0);
		pthread_mutex_destroy(&m->lock);
		free(m->queues);
		free(m);
		return r;
	}
	m->dev = dev;
	m->irq = irq;
	m->base = c.base;
	m->version = c.version;
	m->vendor = c.vendor_id ? c.vendor_id : MMIO_DEFAULT_VENDOR;
	m->guest_page_size = MMIO_DEFAULT_PAGE;
	latches_reset(m);
	*out = m;
	return 0;
}

VDEV_EXPORT void vdev_mmio_free(vdev_mmio *m)
{
	if (!m)
		return;
	vdev_device_reset(m->dev);
	(void)vdev_device_set_irq(m->dev, NULL);
	(void)vdi_device_set_legacy(m->dev, 0);
	pthread_mutex_destroy(&m->lock);
	free(m->queues);
	free(m);
}

VDEV_EXPORT vdev_device *vdev_mmio_device(const vdev_mmio *m)
{
	return m ? m->dev : NULL;
}

VDEV_EXPORT int vdev_mmio_notify_address(vdev_mmio *m, uint32_t queue, uint64_t *addr,
					 uint32_t *value)
{
	if (!m || !addr || !value || queue >= m->num_queues)
		return -EINVAL;
	*addr = m->base + VDEV_MMIO_NOTIFY_OFFSET;
	*value = queue;
	return 0;
}

VDEV_EXPORT int vdev_mmio_set_shm(vdev_mmio *m, uint32_t id, uint64_t base, uint64_t len)
{
	if (!m || id >= MMIO_MAX_SHM)
		return -EINVAL;
	if (len && base + (len - 1) < base)
		return -EINVAL;
	pthread_mutex_lock(&m->lock);
	m->shm[id].base = len ? base : 0;
	m->shm[id].len = len;
	pthread_mutex_unlock(&m->lock);
	return 0;
}

/* ---- config space ------------------------------------------------------ */

/* One of @rbuf (read) and @wbuf (write) is set; a read buffer is already
 * zeroed, and stays zero where the access is refused. */
static int config_access(vdev_mmio *m, uint64_t offset, uint8_t *rbuf, const uint8_t *wbuf,
			 uint32_t size)
{
	uint32_t off, chunk, done;
	int r, ret = 0;

	if (size != 1 && size != 2 && size != 4 && size != 8) {
		refused(m, "config access width", offset, size);
		return -EINVAL;
	}
	if (offset + size > VDEV_MMIO_SIZE) {
		refused(m, "config access past the block", offset, size);
		return -EINVAL;
	}
	off = (uint32_t)(offset - R_CONFIG);
	/* All or nothing: an 8-byte access must not half-happen. */
	if (off + size > vdev_device_config_size(m->dev)) {
		refused(m, "config access past config space", offset, size);
		return -EINVAL;
	}
	/* Models see at most 4 bytes at a time, as a 32-bit guest would. */
	chunk = size == 8 ? 4 : size;
	for (done = 0; done < size; done += chunk) {
		if (wbuf)
			r = vdev_device_config_write(m->dev, off + done, wbuf + done, chunk);
		else
			r = vdev_device_config_read(m->dev, off + done, rbuf + done, chunk);
		if (r < 0) {
			refused(m, wbuf ? "config write" : "config read", offset + done, chunk);
			ret = r;
		}
	}
	return ret;
}

/* ---- control registers: reads ------------------------------------------ */

static int reg_read_common(vdev_mmio *m, uint32_t reg, uint32_t *v)
{
	switch (reg) {
	case R_MAGIC:
		*v = MMIO_MAGIC;
		return 0;
	case R_VERSION:
		*v = m->version;
		return 0;
	case R_DEVICE_ID:
		*v = vdev_device_type(m->dev);
		return 0;
	case R_VENDOR_ID:
		*v = m->vendor;
		return 0;
	case R_DEV_FEATURES:
		*v = m->dev_features_sel < 2 ? (uint32_t)(vdi_device_offered(m->dev) >>
							  (32 * m->dev_features_sel))
					     : 0;
		return 0;
	case R_QUEUE_SIZE_MAX:
		*v = m->queue_sel < m->num_queues ? vdev_device_queue_max_size(m->dev) : 0;
		return 0;
	case R_INTERRUPT_STATUS:
		*v = vdev_device_isr(m->dev);
		return 0;
	case R_STATUS:
		*v = vdev_device_status(m->dev);
		return 0;
	/* Write-only registers read as 0 (the driver must not read them). */
	case R_DEV_FEATURES_SEL:
	case R_DRV_FEATURES:
	case R_DRV_FEATURES_SEL:
	case R_QUEUE_SEL:
	case R_QUEUE_SIZE:
	case R_QUEUE_NOTIFY:
	case R_INTERRUPT_ACK:
		*v = 0;
		return 0;
	default:
		return -ENOENT;
	}
}

static int reg_read_modern(vdev_mmio *m, uint32_t reg, uint32_t *v)
{
	const struct mmio_shm *shm = m->shm_sel < MMIO_MAX_SHM ? &m->shm[m->shm_sel] : NULL;
	int present = shm && shm->len;

	switch (reg) {
	case R_QUEUE_READY:
		*v = m->queue_sel < m->num_queues ? (uint32_t)vdev_device_queue_enabled(
							    m->dev, m->queue_sel)
						  : 0;
		return 0;
	case R_SHM_LEN_LOW:
		*v = present ? (uint32_t)shm->len : UINT32_MAX;
		return 0;
	case R_SHM_LEN_HIGH:
		*v = present ? (uint32_t)(shm->len >> 32) : UINT32_MAX;
		return 0;
	case R_SHM_BASE_LOW:
		*v = present ? (uint32_t)shm->base : UINT32_MAX;
		return 0;
	case R_SHM_BASE_HIGH:
		*v = present ? (uint32_t)(shm->base >> 32) : UINT32_MAX;
		return 0;
	case R_QUEUE_RESET:
		/* A queue reset completes inside the write: never "ongoing". */
		*v = 0;
		return 0;
	case R_CONFIG_GENERATION:
		*v = vdev_device_config_generation(m->dev);
		return 0;
	case R_QUEUE_DESC_LOW:
	case R_QUEUE_DESC_HIGH:
	case R_QUEUE_DRIVER_LOW:
	case R_QUEUE_DRIVER_HIGH:
	case R_QUEUE_DEVICE_LOW:
	case R_QUEUE_DEVICE_HIGH:
	case R_SHM_SEL:
		*v = 0;
		return 0;
	default:
		return -ENOENT;
	}
}

static int reg_read_legacy(vdev_mmio *m, uint32_t reg, uint32_t *v)
{
	switch (reg) {
	case R_QUEUE_PFN:
		/* The page number written, while the queue is in use; 0 after a
		 * reset from wherever it came. */
		*v = m->queue_sel < m->num_queues &&
				     vdev_device_queue_enabled(m->dev, m->queue_sel)
			     ? m->queues[m->queue_sel].pfn
			     : 0;
		return 0;
	case R_GUEST_PAGE_SIZE:
	case R_QUEUE_ALIGN:
		*v = 0;
		return 0;
	default:
		return -ENOENT;
	}
}

/* ---- control registers: writes ----------------------------------------- */

/* QueueSize and the addresses: only for an existing queue that is not ready. */
static struct mmio_queue *latch_target(vdev_mmio *m, uint32_t reg)
{
	if (m->queue_sel >= m->num_queues) {
		refused(m, "queue register write for a missing queue", reg, 4);
		return NULL;
	}
	if (vdev_device_queue_enabled(m->dev, m->queue_sel)) {
		refused(m, "queue register write while the queue is ready", reg, 4);
		return NULL;
	}
	return &m->queues[m->queue_sel];
}

static void set_low(uint64_t *a, uint32_t v)
{
	*a = (*a & 0xffffffff00000000ull) | v;
}

static void set_high(uint64_t *a, uint32_t v)
{
	*a = (*a & 0xffffffffull) | (uint64_t)v << 32;
}

/* Hand the latched ring to the device and enable it. */
static int queue_go(vdev_mmio *m, uint32_t q, const struct mmio_queue *mq)
{
	struct vdev_queue_config qc = VDEV_QUEUE_CONFIG_INIT;
	int r;

	qc.size = mq->size;
	qc.desc_addr = mq->desc;
	qc.driver_addr = mq->driver;
	qc.device_addr = mq->device;
	r = vdev_device_queue_setup(m->dev, q, &qc);
	if (r == 0)
		r = vdev_device_queue_enable(m->dev, q, 1);
	if (r < 0)
		vdi_log(VDEV_LOG_DEBUG, "virtio-mmio dev %u: queue %u not enabled (%d)",
			vdev_device_type(m->dev), q, r);
	return r;
}

static int write_status(vdev_mmio *m, uint32_t v)
{
	int r;

	if (v > 0xff)
		return -EINVAL;
	r = vdev_device_set_status(m->dev, (uint8_t)v);
	if (v == 0)
		latches_reset(m);
	return r;
}

static int reg_write_common(vdev_mmio *m, uint32_t reg, uint32_t v)
{
	switch (reg) {
	case R_DEV_FEATURES_SEL:
		m->dev_features_sel = v;
		return 0;
	case R_DRV_FEATURES:
		return vdev_device_set_acked_features_page(m->dev, m->drv_features_sel, v);
	case R_DRV_FEATURES_SEL:
		m->drv_features_sel = v;
		return 0;
	case R_QUEUE_SEL:
		m->queue_sel = v;
		return 0;
	case R_INTERRUPT_ACK:
		(void)vdev_device_isr_ack(m->dev, v);
		return 0;
	case R_STATUS:
		return write_status(m, v);
	/* Read-only registers: the driver must not write them. */
	case R_MAGIC:
	case R_VERSION:
	case R_DEVICE_ID:
	case R_VENDOR_ID:
	case R_DEV_FEATURES:
	case R_QUEUE_SIZE_MAX:
	case R_INTERRUPT_STATUS:
		return -EINVAL;
	default:
		return -ENOENT;
	}
}

static int reg_write_modern(vdev_mmio *m, uint32_t reg, uint32_t v)
{
	struct mmio_queue *mq;
	uint32_t q = m->queue_sel;
	int r;

	switch (reg) {
	case R_QUEUE_SIZE:
	case R_QUEUE_DESC_LOW:
	case R_QUEUE_DESC_HIGH:
	case R_QUEUE_DRIVER_LOW:
	case R_QUEUE_DRIVER_HIGH:
	case R_QUEUE_DEVICE_LOW:
	case R_QUEUE_DEVICE_HIGH:
		mq = latch_target(m, reg);
		if (!mq)
			return -EBUSY;
		if (reg == R_QUEUE_SIZE)
			mq->size = v;
		else if (reg == R_QUEUE_DESC_LOW)
			set_low(&mq->desc, v);
		else if (reg == R_QUEUE_DESC_HIGH)
			set_high(&mq->desc, v);
		else if (reg == R_QUEUE_DRIVER_LOW)
			set_low(&mq->driver, v);
		else if (reg == R_QUEUE_DRIVER_HIGH)
			set_high(&mq->driver, v);
		else if (reg == R_QUEUE_DEVICE_LOW)
			set_low(&mq->device, v);
		else
			set_high(&mq->device, v);
		return 0;
	case R_QUEUE_READY:
		if (q >= m->num_queues)
			return -EINVAL;
		if (v == 0)
			return vdev_device_queue_enable(m->dev, q, 0);
		if (v != 1)
			return -EINVAL;
		if (vdev_device_queue_enabled(m->dev, q))
			return 0;
		return queue_go(m, q, &m->queues[q]);
	case R_SHM_SEL:
		m->shm_sel = v;
		return 0;
	case R_QUEUE_RESET:
		if (v != 1)
			return v == 0 ? 0 : -EINVAL;
		if (q >= m->num_queues)
			return -EINVAL;
		if (!(vdev_device_acked_features(m->dev) & VDI_BIT(VIRTIO_F_RING_RESET)))
			return -EPERM;
		r = vdev_device_queue_reset(m->dev, q);
		if (r == 0)
			queue_latch_clear(m, q);
		return r;
	case R_SHM_LEN_LOW:
	case R_SHM_LEN_HIGH:
	case R_SHM_BASE_LOW:
	case R_SHM_BASE_HIGH:
	case R_CONFIG_GENERATION:
		return -EINVAL;
	default:
		return -ENOENT;
	}
}

/* Legacy QueuePFN: the whole split ring in one block at pfn * page size,
 * the used ring at the next QueueAlign boundary after the avail ring. */
static int legacy_pfn(vdev_mmio *m, uint32_t q, uint32_t pfn)
{
	struct mmio_queue *mq = &m->queues[q];
	struct mmio_queue ring = *mq;
	uint64_t avail_end, used;
	int r;

	if (pfn == 0) {
		r = vdev_device_queue_enable(m->dev, q, 0);
		if (r == 0)
			mq->pfn = 0;
		return r;
	}
	if (vdev_device_queue_enabled(m->dev, q))
		return -EBUSY;
	if (!vdi_is_pow2(mq->size) || mq->size > VDEV_QUEUE_MAX_SIZE || !vdi_is_pow2(mq->align) ||
	    !vdi_is_pow2(m->guest_page_size))
		return -EINVAL;
	/* 32-bit pfn times a 32-bit page size, plus at most ~1 MiB of ring:
	 * well inside 64 bits. */
	ring.desc = (uint64_t)pfn * m->guest_page_size;
	ring.driver = ring.desc + 16ull * mq->size;
	avail_end = ring.driver + 6ull + 2ull * mq->size; /* flags, idx, ring, used_event */
	used = (avail_end + mq->align - 1) & ~((uint64_t)mq->align - 1);
	ring.device = used;
	r = queue_go(m, q, &ring);
	if (r == 0) {
		mq->desc = ring.desc;
		mq->driver = ring.driver;
		mq->device = ring.device;
		mq->pfn = pfn;
	}
	return r;
}

static int reg_write_legacy(vdev_mmio *m, uint32_t reg, uint32_t v)
{
	struct mmio_queue *mq;

	switch (reg) {
	case R_GUEST_PAGE_SIZE:
		if (!vdi_is_pow2(v))
			return -EINVAL;
		m->guest_page_size = v;
		return 0;
	case R_QUEUE_SIZE:
	case R_QUEUE_ALIGN:
		mq = latch_target(m, reg);
		if (!mq)
			return -EBUSY;
		if (reg == R_QUEUE_SIZE)
			mq->size = v;
		else
			mq->align = v;
		return 0;
	case R_QUEUE_PFN:
		if (m->queue_sel >= m->num_queues)
			return -EINVAL;
		return legacy_pfn(m, m->queue_sel, v);
	default:
		return -ENOENT;
	}
}

/* QueueNotify, outside the lock: identical to an ioeventfd kick. */
static int notify(vdev_mmio *m, uint32_t v)
{
	uint32_t q = v;

	if (vdev_device_acked_features(m->dev) & VDI_BIT(VDI_F_NOTIFICATION_DATA))
		q = v & 0xffffu;
	return vdev_device_queue_notify(m->dev, q);
}

static int control_ok(vdev_mmio *m, uint64_t offset, uint32_t size)
{
	if (size != 4 || (offset & 3u)) {
		refused(m, "control register access (needs 32-bit aligned)", offset, size);
		return 0;
	}
	return 1;
}

VDEV_EXPORT int vdev_mmio_read(vdev_mmio *m, uint64_t offset, void *data, uint32_t size)
{
	uint32_t v = 0;
	int r;

	if (!m || !data || size == 0 || size > 8)
		return -EINVAL;
	memset(data, 0, size);
	if (offset >= VDEV_MMIO_SIZE) {
		refused(m, "read past the block", offset, size);
		return -EINVAL;
	}
	pthread_mutex_lock(&m->lock);
	sync_reset(m);
	if (offset >= R_CONFIG) {
		r = config_access(m, offset, data, NULL, size);
	} else if (!control_ok(m, offset, size)) {
		r = -EINVAL;
	} else {
		r = reg_read_common(m, (uint32_t)offset, &v);
		if (r == -ENOENT)
			r = m->version == 2 ? reg_read_modern(m, (uint32_t)offset, &v)
					    : reg_read_legacy(m, (uint32_t)offset, &v);
		if (r == -ENOENT) {
			refused(m, "read of an unknown register", offset, size);
			r = -EINVAL;
			v = 0;
		}
		st32(data, v);
	}
	pthread_mutex_unlock(&m->lock);
	return r;
}

VDEV_EXPORT int vdev_mmio_write(vdev_mmio *m, uint64_t offset, const void *data, uint32_t size)
{
	uint32_t v;
	int r;

	if (!m || !data || size == 0 || size > 8)
		return -EINVAL;
	if (offset >= VDEV_MMIO_SIZE) {
		refused(m, "write past the block", offset, size);
		return -EINVAL;
	}
	if (offset < R_CONFIG && !control_ok(m, offset, size))
		return -EINVAL;
	if (offset == R_QUEUE_NOTIFY) {
		r = notify(m, ld32(data));
		if (r < 0)
			refused(m, "queue notify", offset, size);
		return r;
	}
	pthread_mutex_lock(&m->lock);
	sync_reset(m);
	if (offset >= R_CONFIG) {
		r = config_access(m, offset, NULL, data, size);
	} else {
		v = ld32(data);
		r = reg_write_common(m, (uint32_t)offset, v);
		if (r == -ENOENT)
			r = m->version == 2 ? reg_write_modern(m, (uint32_t)offset, v)
					    : reg_write_legacy(m, (uint32_t)offset, v);
		if (r == -ENOENT)
			r = -EINVAL;
		if (r < 0)
			refused(m, "register write", offset, size);
	}
	m->last_status = vdev_device_status(m->dev);
	pthread_mutex_unlock(&m->lock);
	return r;
}

/* ---- bus device --------------------------------------------------------- */

static const char *bus_label(void *opaque)
{
	VDI_UNUSED(opaque);
	return "virtio-mmio";
}

static int bus_read(void *opaque, const struct vdev_bus_access *a, void *data)
{
	return vdev_mmio_read(opaque, a->offset, data, a->size);
}

static int bus_write(void *opaque, const struct vdev_bus_access *a, const void *data)
{
	return vdev_mmio_write(opaque, a->offset, data, a->size);
}

/* Suspendable: vdev_bus_sleep pauses the device behind the registers (kicks
 * are held and delivered on wake). */
static int bus_sleep(void *opaque)
{
	vdev_mmio *m = opaque;

	return vdev_device_sleep(m->dev);
}

static int bus_wake(void *opaque)
{
	vdev_mmio *m = opaque;

	return vdev_device_wake(m->dev);
}

static const struct vdev_bus_device_ops mmio_bus_ops = {
	.struct_size = sizeof(struct vdev_bus_device_ops),
	.debug_label = bus_label,
	.read = bus_read,
	.write = bus_write,
	.destroy = NULL,
	.sleep = bus_sleep,
	.wake = bus_wake,
};

VDEV_EXPORT const struct vdev_bus_device_ops *vdev_mmio_bus_ops(void)
{
	return &mmio_bus_ops;
}
