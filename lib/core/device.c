/* SPDX-License-Identifier: MIT */
/*
 * The device object: feature negotiation, the device status state machine,
 * the config generation counter and the virtqueues of one virtio device. The
 * device model behind it is a const ops table plus an opaque pointer.
 *
 * Concurrency: the control calls are serialized by the transport. Status,
 * ISR, generation, the "active" flag and the irq pointer are also touched by
 * device threads (queue_notify, interrupt_queue, set_needs_reset,
 * config_changed), so they are only accessed with __atomic builtins. Status
 * writes by the driver only ever add bits (or reset to 0), so they are done
 * with an atomic OR that cannot lose a NEEDS_RESET set concurrently by a device
 * thread.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include <virtio-dev/device.h>

#include "core/device_internal.h"
#include "core/queue_inflight.h"
#include "core/queue_internal.h"
#include "internal/util.h"

#define VDI_BIT(n) (1ull << (n))

/* Status bits the driver may set; 0x10 (SUSPEND) and 0x20 are not supported. */
#define VDI_STATUS_RESERVED 0x30u
#define VDI_STATUS_DRIVER_BITS                                                                    \
	(VDEV_STATUS_ACKNOWLEDGE | VDEV_STATUS_DRIVER | VDEV_STATUS_FEATURES_OK |                  \
	 VDEV_STATUS_DRIVER_OK | VDEV_STATUS_FAILED)

/* ISR bits. */
#define VDI_ISR_QUEUE 0x1u
#define VDI_ISR_CONFIG 0x2u

struct vdi_dev_queue {
	uint32_t size;
	int configured; /* vdev_device_queue_setup() succeeded since reset */
	int enabled;
	uint64_t desc_addr;
	uint64_t driver_addr;
	uint64_t device_addr;
	/* Set by vdi_device_queue_start, applied when the queue is created. */
	int has_state;
	struct vdev_queue_state state;
	void *inflight;
	size_t inflight_len;
	vdev_queue *q; /* live queue: between DRIVER_OK and reset */
	/* Serializes every run of the model on this queue (kicks from several
	 * vCPUs, completions, control calls): see queue_kick(). */
	pthread_mutex_t run;
	int pending; /* atomic: a kick arrived that nobody has served yet */
};

struct vdev_device {
	struct vdev_device_config cfg;
	struct vdev_device_ops ops;
	void *opaque;
	uint64_t offered;
	uint64_t acked;
	vdev_mem *mem;
	vdev_irq *irq;      /* atomic: read by device threads */
	uint8_t status;     /* atomic */
	uint32_t isr;       /* atomic */
	uint32_t generation; /* atomic */
	int active;         /* atomic: the model's activate succeeded */
	int legacy;         /* pre-1.0 interface (virtio-mmio version 1) */
	int asleep;         /* atomic: between vdev_device_sleep and wake */
	uint64_t *kicks_asleep; /* atomic bitmap: kicks that arrived while asleep */
	struct vdi_dev_queue *queues;
};

static uint8_t status_load(const vdev_device *dev)
{
	return __atomic_load_n(&dev->status, __ATOMIC_ACQUIRE);
}

static vdev_irq *irq_load(const vdev_device *dev)
{
	return __atomic_load_n(&dev->irq, __ATOMIC_ACQUIRE);
}

/* The config-change notification the spec pairs with DEVICE_NEEDS_RESET and
 * with config changes. */
static int send_config_irq(vdev_device *dev)
{
	vdev_irq *irq = irq_load(dev);

	__atomic_fetch_or(&dev->isr, VDI_ISR_CONFIG, __ATOMIC_SEQ_CST);
	if (!irq)
		return -EAGAIN;
	return vdev_irq_trigger(irq, VDEV_IRQ_CONFIG, 0);
}

/* Unpublish a live queue (kicks check it without the lock), then free it. */
static void drop_live_queue(struct vdi_dev_queue *dq)
{
	vdev_queue *q = dq->q;

	__atomic_store_n(&dq->q, NULL, __ATOMIC_RELEASE);
	vdev_queue_free(q);
}

static void free_live_queues(vdev_device *dev)
{
	for (uint32_t i = 0; i < dev->cfg.num_queues; i++)
		drop_live_queue(&dev->queues[i]);
}

/* Forget what the driver set up for a queue (not its lock). */
static void clear_queue_setup(struct vdi_dev_queue *dq)
{
	dq->size = 0;
	dq->configured = 0;
	dq->enabled = 0;
	dq->desc_addr = dq->driver_addr = dq->device_addr = 0;
	dq->has_state = 0;
	dq->inflight = NULL;
	dq->inflight_len = 0;
	__atomic_store_n(&dq->q, NULL, __ATOMIC_RELEASE);
	__atomic_store_n(&dq->pending, 0, __ATOMIC_SEQ_CST);
}

/* Control calls take every queue's run lock (in index order), so no kick or
 * completion is inside the model while it resets, sleeps or wakes. */
static void lock_all_queues(vdev_device *dev)
{
	for (uint32_t i = 0; i < dev->cfg.num_queues; i++)
		pthread_mutex_lock(&dev->queues[i].run);
}

static void unlock_all_queues(vdev_device *dev)
{
	for (uint32_t i = dev->cfg.num_queues; i-- > 0;)
		pthread_mutex_unlock(&dev->queues[i].run);
}

static void do_reset(vdev_device *dev)
{
	/* New kicks bounce from here on; the ones already running finish
	 * before we get every lock. Then the model stops using queues and
	 * memory before they go away. */
	int was_active = __atomic_exchange_n(&dev->active, 0, __ATOMIC_SEQ_CST);

	lock_all_queues(dev);
	if (was_active)
		dev->ops.reset(dev, dev->opaque);
	free_live_queues(dev);
	for (uint32_t i = 0; i < dev->cfg.num_queues; i++)
		clear_queue_setup(&dev->queues[i]);
	dev->acked = 0;
	__atomic_store_n(&dev->asleep, 0, __ATOMIC_SEQ_CST);
	memset(dev->kicks_asleep, 0, sizeof(uint64_t) * ((dev->cfg.num_queues + 63) / 64));
	__atomic_store_n(&dev->isr, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&dev->status, 0, __ATOMIC_SEQ_CST);
	unlock_all_queues(dev);
	/* Config may read differently after a reset (feature-dependent fields):
	 * a driver that straddles the reset must notice. Never decreases. */
	__atomic_add_fetch(&dev->generation, 1, __ATOMIC_SEQ_CST);
}

static void queue_broken(void *ctx, vdev_queue *q, int err)
{
	vdev_device *dev = ctx;

	VDI_UNUSED(q);
	vdi_log(VDEV_LOG_WARNING, "device %u: a virtqueue broke (%d), needs reset",
		dev->cfg.device_type, err);
	vdev_device_set_needs_reset(dev);
}

/* Is the model allowed to run on queue @i now? (Under its run lock.) */
static int queue_live(const vdev_device *dev, uint32_t i)
{
	return __atomic_load_n(&dev->active, __ATOMIC_ACQUIRE) &&
	       !(status_load(dev) & VDEV_STATUS_NEEDS_RESET) &&
	       __atomic_load_n(&dev->queues[i].q, __ATOMIC_ACQUIRE);
}

/* Serve the kicks of queue @i that are pending, under its run lock. */
static void serve_pending(vdev_device *dev, uint32_t i)
{
	struct vdi_dev_queue *dq = &dev->queues[i];

	while (__atomic_exchange_n(&dq->pending, 0, __ATOMIC_SEQ_CST)) {
		if (!queue_live(dev, i))
			break;
		if (__atomic_load_n(&dev->asleep, __ATOMIC_SEQ_CST)) {
			/* Held until wake. */
			__atomic_fetch_or(&dev->kicks_asleep[i / 64], 1ull << (i % 64),
					  __ATOMIC_SEQ_CST);
			break;
		}
		dev->ops.queue_notify(dev, dev->opaque, i);
	}
}

/*
 * A kick for queue @i, from any thread (vCPUs writing QueueNotify, ioeventfd
 * threads, wake). Only one thread runs the model on a queue at a time: a kick
 * that finds the queue busy leaves `pending` set and returns, and the thread
 * inside serves it before it leaves; the re-check after unlocking closes the
 * window between its last look and the unlock. No kick is lost, none waits.
 */
static void queue_kick(vdev_device *dev, uint32_t i)
{
	struct vdi_dev_queue *dq = &dev->queues[i];

	__atomic_store_n(&dq->pending, 1, __ATOMIC_SEQ_CST);
	do {
		if (pthread_mutex_trylock(&dq->run) != 0)
			return;
		serve_pending(dev, i);
		pthread_mutex_unlock(&dq->run);
	} while (__atomic_load_n(&dq->pending, __ATOMIC_SEQ_CST));
}

int vdi_device_queue_enter(vdev_device *dev, uint32_t i)
{
	pthread_mutex_lock(&dev->queues[i].run);
	if (queue_live(dev, i))
		return 0;
	pthread_mutex_unlock(&dev->queues[i].run);
	return -EAGAIN;
}

void vdi_device_queue_leave(vdev_device *dev, uint32_t i)
{
	pthread_mutex_unlock(&dev->queues[i].run);
	/* Kicks that bounced off while we held the lock. */
	if (__atomic_load_n(&dev->queues[i].pending, __ATOMIC_SEQ_CST))
		queue_kick(dev, i);
}

/* Kicks that arrived while asleep, delivered once awake. */
static void deliver_held_kicks(vdev_device *dev)
{
	for (uint32_t w = 0; w < (dev->cfg.num_queues + 63) / 64; w++) {
		uint64_t bits = __atomic_exchange_n(&dev->kicks_asleep[w], 0, __ATOMIC_SEQ_CST);

		while (bits) {
			uint32_t q = w * 64 + (uint32_t)__builtin_ctzll(bits);

			bits &= bits - 1;
			queue_kick(dev, q);
		}
	}
}

VDEV_EXPORT int vdev_device_new(const struct vdev_device_config *cfg,
				const struct vdev_device_ops *ops, void *opaque,
				vdev_device **out)
{
	struct vdev_device_config c;
	struct vdev_device_ops o;
	vdev_device *dev;

	if (!cfg || !ops || !out)
		return -EINVAL;
	if (vdi_copy_versioned(&c, sizeof(c), cfg) < 0 ||
	    vdi_copy_versioned(&o, sizeof(o), ops) < 0)
		return -EINVAL;
	c.struct_size = sizeof(c);
	o.struct_size = sizeof(o);
	if (c.device_type == 0 || c.num_queues == 0 || c.num_queues > VDEV_DEVICE_MAX_QUEUES ||
	    c.queue_max_size == 0 || c.queue_max_size > VDEV_QUEUE_MAX_SIZE ||
	    c.config_size > VDEV_DEVICE_MAX_CONFIG || c.reserved != 0) {
		vdi_log(VDEV_LOG_DEBUG, "vdev_device_new: invalid config");
		return -EINVAL;
	}
	if (!o.config_read || !o.activate || !o.reset || !o.queue_notify ||
	    !o.queue_reset != !o.queue_enable) {
		vdi_log(VDEV_LOG_DEBUG, "vdev_device_new: a required device op is missing");
		return -EINVAL;
	}

	dev = calloc(1, sizeof(*dev));
	if (!dev)
		return -ENOMEM;
	dev->queues = calloc(c.num_queues, sizeof(*dev->queues));
	dev->kicks_asleep = calloc((c.num_queues + 63) / 64, sizeof(uint64_t));
	if (!dev->queues || !dev->kicks_asleep) {
		free(dev->queues);
		free(dev->kicks_asleep);
		free(dev);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < c.num_queues; i++)
		pthread_mutex_init(&dev->queues[i].run, NULL);
	dev->cfg = c;
	dev->ops = o;
	dev->opaque = opaque;
	dev->offered = c.features | VDI_BIT(VIRTIO_F_VERSION_1);
	/* Per-queue reset needs the model's help; offer it only then. */
	if (o.queue_reset)
		dev->offered |= VDI_BIT(VIRTIO_F_RING_RESET);
	else
		dev->offered &= ~VDI_BIT(VIRTIO_F_RING_RESET);
	*out = dev;
	return 0;
}

VDEV_EXPORT void vdev_device_free(vdev_device *dev)
{
	if (!dev)
		return;
	do_reset(dev);
	for (uint32_t i = 0; i < dev->cfg.num_queues; i++)
		pthread_mutex_destroy(&dev->queues[i].run);
	free(dev->queues);
	free(dev->kicks_asleep);
	free(dev);
}

VDEV_EXPORT int vdev_device_set_memory(vdev_device *dev, vdev_mem *mem)
{
	if (!dev)
		return -EINVAL;
	if (status_load(dev) & VDEV_STATUS_DRIVER_OK)
		return -EBUSY;
	dev->mem = mem;
	return 0;
}

VDEV_EXPORT int vdev_device_set_irq(vdev_device *dev, vdev_irq *irq)
{
	if (!dev)
		return -EINVAL;
	if (status_load(dev) & VDEV_STATUS_DRIVER_OK)
		return -EBUSY;
	__atomic_store_n(&dev->irq, irq, __ATOMIC_RELEASE);
	return 0;
}

VDEV_EXPORT void *vdev_device_opaque(const vdev_device *dev)
{
	return dev ? dev->opaque : NULL;
}

VDEV_EXPORT uint32_t vdev_device_type(const vdev_device *dev)
{
	return dev ? dev->cfg.device_type : 0;
}

VDEV_EXPORT uint32_t vdev_device_num_queues(const vdev_device *dev)
{
	return dev ? dev->cfg.num_queues : 0;
}

VDEV_EXPORT uint32_t vdev_device_queue_max_size(const vdev_device *dev)
{
	return dev ? dev->cfg.queue_max_size : 0;
}

VDEV_EXPORT uint32_t vdev_device_config_size(const vdev_device *dev)
{
	return dev ? dev->cfg.config_size : 0;
}

VDEV_EXPORT vdev_mem *vdev_device_memory(const vdev_device *dev)
{
	return dev ? dev->mem : NULL;
}

VDEV_EXPORT uint64_t vdev_device_features(const vdev_device *dev)
{
	return dev ? dev->offered : 0;
}

VDEV_EXPORT uint32_t vdev_device_features_page(const vdev_device *dev, uint32_t page)
{
	if (!dev || page > 1)
		return 0;
	return (uint32_t)(vdi_device_offered(dev) >> (32 * page));
}

VDEV_EXPORT uint64_t vdev_device_acked_features(const vdev_device *dev)
{
	return dev ? dev->acked : 0;
}

uint64_t vdi_device_offered(const vdev_device *dev)
{
	/* A legacy interface has 32 feature bits, and none of the 1.0 ones. */
	return dev->legacy ? dev->offered & 0xffffffffull : dev->offered;
}

int vdi_device_set_legacy(vdev_device *dev, int legacy)
{
	if (status_load(dev) != 0)
		return -EBUSY;
	dev->legacy = !!legacy;
	return 0;
}

static int features_writable(const vdev_device *dev)
{
	uint8_t st = status_load(dev);
	/* Legacy has no FEATURES_OK: features settle at DRIVER_OK. */
	uint8_t closed = dev->legacy ? VDEV_STATUS_DRIVER_OK : VDEV_STATUS_FEATURES_OK;

	if (!(st & VDEV_STATUS_DRIVER) || (st & closed)) {
		vdi_log(VDEV_LOG_DEBUG, "device %u: feature write refused in status 0x%x",
			dev->cfg.device_type, st);
		return 0;
	}
	return 1;
}

VDEV_EXPORT int vdev_device_set_acked_features(vdev_device *dev, uint64_t features)
{
	if (!dev)
		return -EINVAL;
	if (!features_writable(dev))
		return -EPERM;
	dev->acked = features;
	return 0;
}

VDEV_EXPORT int vdev_device_set_acked_features_page(vdev_device *dev, uint32_t page,
						    uint32_t value)
{
	if (!dev)
		return -EINVAL;
	if (!features_writable(dev))
		return -EPERM;
	switch (page) {
	case 0:
		dev->acked = (dev->acked & 0xffffffff00000000ull) | value;
		return 0;
	case 1:
		dev->acked = (dev->acked & 0xffffffffull) | ((uint64_t)value << 32);
		return 0;
	default:
		return value == 0 ? 0 : -EINVAL;
	}
}

VDEV_EXPORT uint8_t vdev_device_status(const vdev_device *dev)
{
	return dev ? status_load(dev) : 0;
}

/* FEATURES_OK: may the driver's acked set be accepted? */
static int features_acceptable(vdev_device *dev)
{
	uint64_t acked = dev->acked, offered = vdi_device_offered(dev);
	int r;

	if (acked & ~offered) {
		vdi_log(VDEV_LOG_DEBUG,
			"device %u: FEATURES_OK refused, unoffered features 0x%llx acked",
			dev->cfg.device_type, (unsigned long long)(acked & ~offered));
		return 0;
	}
	if (!dev->legacy && !(acked & VDI_BIT(VIRTIO_F_VERSION_1))) {
		vdi_log(VDEV_LOG_DEBUG, "device %u: FEATURES_OK refused, VERSION_1 not acked",
			dev->cfg.device_type);
		return 0;
	}
	if (dev->ops.features_check) {
		r = dev->ops.features_check(dev, dev->opaque, acked);
		if (r < 0) {
			vdi_log(VDEV_LOG_DEBUG,
				"device %u: FEATURES_OK refused by the model (%d)",
				dev->cfg.device_type, r);
			return 0;
		}
	}
	return 1;
}

static uint32_t queue_flags(uint64_t acked)
{
	uint32_t flags = 0;

	if (acked & VDI_BIT(VIRTIO_F_RING_PACKED))
		flags |= VDEV_QUEUE_F_PACKED;
	if (acked & VDI_BIT(VIRTIO_RING_F_EVENT_IDX))
		flags |= VDEV_QUEUE_F_EVENT_IDX;
	if (acked & VDI_BIT(VIRTIO_RING_F_INDIRECT_DESC))
		flags |= VDEV_QUEUE_F_INDIRECT;
	return flags;
}

/* The position and in-flight region vdi_device_queue_start asked for. */
static int queue_apply_start(const struct vdi_dev_queue *dq, vdev_queue *q)
{
	int r = 0;

	if (dq->has_state)
		r = vdev_queue_set_state(q, &dq->state);
	if (r == 0 && dq->inflight) {
		r = vdi_queue_set_inflight(q, dq->inflight, dq->inflight_len);
		if (r > 0)
			r = 0; /* requests to resubmit: the next pops return them */
	}
	return r;
}

/* Make queue @i live from what the driver set up. */
static int create_queue(vdev_device *dev, uint32_t i)
{
	struct vdi_dev_queue *dq = &dev->queues[i];
	struct vdev_queue_config qc = VDEV_QUEUE_CONFIG_INIT;
	vdev_queue *q;
	int r;

	qc.size = dq->size;
	qc.flags = queue_flags(dev->acked);
	qc.desc_addr = dq->desc_addr;
	qc.driver_addr = dq->driver_addr;
	qc.device_addr = dq->device_addr;
	r = vdev_queue_new(&qc, dev->mem, &q);
	if (r == 0) {
		r = queue_apply_start(dq, q);
		if (r < 0)
			vdev_queue_free(q);
	}
	if (r < 0) {
		vdi_log(VDEV_LOG_WARNING, "device %u: queue %u cannot be created (%d)",
			dev->cfg.device_type, i, r);
		return r;
	}
	vdi_queue_set_owner(q, queue_broken, dev);
	__atomic_store_n(&dq->q, q, __ATOMIC_RELEASE);
	return 0;
}

/* Create every enabled queue. On failure the ones created are freed. */
static int create_queues(vdev_device *dev)
{
	for (uint32_t i = 0; i < dev->cfg.num_queues; i++) {
		int r;

		if (!dev->queues[i].enabled)
			continue;
		r = create_queue(dev, i);
		if (r < 0) {
			free_live_queues(dev);
			return r;
		}
	}
	return 0;
}

/* DRIVER_OK has just been recorded: bring the queues and the model up. A
 * failure leaves the device broken (NEEDS_RESET), not the write refused. */
static void activate(vdev_device *dev, uint8_t old_status)
{
	int r;

	if (old_status & VDEV_STATUS_NEEDS_RESET) {
		/* Broken before DRIVER_OK: stay down, and tell the driver now that
		 * it listens for config changes. */
		send_config_irq(dev);
		return;
	}
	r = create_queues(dev);
	if (r == 0) {
		r = dev->ops.activate(dev, dev->opaque);
		if (r == 0) {
			__atomic_store_n(&dev->active, 1, __ATOMIC_RELEASE);
			return;
		}
		vdi_log(VDEV_LOG_WARNING, "device %u: activation failed (%d)",
			dev->cfg.device_type, r);
		free_live_queues(dev);
	}
	vdev_device_set_needs_reset(dev);
}

VDEV_EXPORT int vdev_device_set_status(vdev_device *dev, uint8_t status)
{
	uint8_t cur, want, added, old;

	if (!dev)
		return -EINVAL;
	if (status == 0) {
		do_reset(dev);
		return 0;
	}
	/* NEEDS_RESET belongs to the device: whatever the driver wrote there is
	 * not a request. */
	want = status & (uint8_t)~VDEV_STATUS_NEEDS_RESET;
	cur = status_load(dev) & VDI_STATUS_DRIVER_BITS;
	if (want & VDI_STATUS_RESERVED) {
		vdi_log(VDEV_LOG_DEBUG, "device %u: status 0x%x has reserved bits",
			dev->cfg.device_type, status);
		return -EPERM;
	}
	if (cur & ~want) {
		vdi_log(VDEV_LOG_DEBUG, "device %u: status 0x%x clears bits of 0x%x",
			dev->cfg.device_type, status, cur);
		return -EPERM;
	}
	added = want & ~cur;
	if (added == 0)
		return 0;
	if ((cur & VDEV_STATUS_FAILED) && (added & ~VDEV_STATUS_FAILED)) {
		/* The driver gave up: only a reset starts over. */
		vdi_log(VDEV_LOG_DEBUG, "device %u: status 0x%x after FAILED, reset first",
			dev->cfg.device_type, status);
		return -EPERM;
	}
	if (((added & VDEV_STATUS_DRIVER) && !(want & VDEV_STATUS_ACKNOWLEDGE)) ||
	    ((added & VDEV_STATUS_FEATURES_OK) && !(want & VDEV_STATUS_DRIVER)) ||
	    ((added & VDEV_STATUS_DRIVER_OK) &&
	     !(want & (dev->legacy ? VDEV_STATUS_DRIVER : VDEV_STATUS_FEATURES_OK)))) {
		vdi_log(VDEV_LOG_DEBUG, "device %u: status 0x%x out of order (was 0x%x)",
			dev->cfg.device_type, status, cur);
		return -EPERM;
	}
	/* Cheap refusals first, so a refused write never reaches the model's
	 * features_check. */
	if ((added & VDEV_STATUS_DRIVER_OK) && (!dev->mem || !irq_load(dev))) {
		vdi_log(VDEV_LOG_WARNING,
			"device %u: DRIVER_OK refused, no guest memory or interrupts set",
			dev->cfg.device_type);
		return -EPERM;
	}
	if ((added & VDEV_STATUS_FEATURES_OK) && !features_acceptable(dev))
		return -EPERM;
	/* Legacy drivers never set FEATURES_OK: check their features here. */
	if (dev->legacy && (added & VDEV_STATUS_DRIVER_OK) && !(want & VDEV_STATUS_FEATURES_OK) &&
	    !features_acceptable(dev))
		return -EPERM;

	old = __atomic_fetch_or(&dev->status, added, __ATOMIC_SEQ_CST);
	if (added & VDEV_STATUS_DRIVER_OK)
		activate(dev, old);
	return 0;
}

VDEV_EXPORT void vdev_device_reset(vdev_device *dev)
{
	if (dev)
		do_reset(dev);
}

static int ring_reset_on(const vdev_device *dev)
{
	return !!(dev->acked & VDI_BIT(VIRTIO_F_RING_RESET)) &&
	       __atomic_load_n(&dev->active, __ATOMIC_ACQUIRE);
}

/* May the driver set queues up now? Before DRIVER_OK (after FEATURES_OK, or
 * DRIVER for legacy), or later for a reset queue with RING_RESET. */
static int queue_setup_phase(const vdev_device *dev, uint8_t st)
{
	if (st & VDEV_STATUS_DRIVER_OK)
		return ring_reset_on(dev) && !(st & VDEV_STATUS_NEEDS_RESET);
	return !!(st & (dev->legacy ? VDEV_STATUS_DRIVER : VDEV_STATUS_FEATURES_OK));
}

static int queue_size_ok(const vdev_device *dev, uint32_t queue, uint32_t size)
{
	int split = dev->legacy || !(dev->acked & VDI_BIT(VIRTIO_F_RING_PACKED));

	if (size == 0 || size > dev->cfg.queue_max_size || (split && !vdi_is_pow2(size))) {
		vdi_log(VDEV_LOG_DEBUG, "device %u: queue %u: bad size %u", dev->cfg.device_type,
			queue, size);
		return 0;
	}
	return 1;
}

static void record_setup(struct vdi_dev_queue *dq, const struct vdev_queue_config *qc)
{
	dq->size = qc->size;
	dq->desc_addr = qc->desc_addr;
	dq->driver_addr = qc->driver_addr;
	dq->device_addr = qc->device_addr;
	dq->configured = 1;
}

/* After DRIVER_OK: make a configured queue live and hand it to the model.
 * The queue is visible to kicks once created: its lock is held until the
 * model has taken it. On failure the queue is not enabled. */
static int enable_live_queue(vdev_device *dev, uint32_t queue)
{
	struct vdi_dev_queue *dq = &dev->queues[queue];
	int r;

	pthread_mutex_lock(&dq->run);
	r = create_queue(dev, queue);
	if (r == 0) {
		dq->enabled = 1;
		r = dev->ops.queue_enable(dev, dev->opaque, queue);
		if (r < 0) {
			drop_live_queue(dq);
			dq->enabled = 0;
		}
	}
	pthread_mutex_unlock(&dq->run);
	return r;
}

VDEV_EXPORT int vdev_device_queue_setup(vdev_device *dev, uint32_t queue,
					const struct vdev_queue_config *cfg)
{
	struct vdev_queue_config qc;
	struct vdi_dev_queue *dq;
	uint8_t st;

	if (!dev || !cfg || vdi_copy_versioned(&qc, sizeof(qc), cfg) < 0)
		return -EINVAL;
	st = status_load(dev);
	if (!queue_setup_phase(dev, st)) {
		vdi_log(VDEV_LOG_DEBUG, "device %u: queue setup refused in status 0x%x",
			dev->cfg.device_type, st);
		return -EPERM;
	}
	if (queue >= dev->cfg.num_queues)
		return -EINVAL;
	dq = &dev->queues[queue];
	if (dq->enabled)
		return -EBUSY;
	if (!queue_size_ok(dev, queue, qc.size))
		return -EINVAL;
	record_setup(dq, &qc);
	return 0;
}

VDEV_EXPORT int vdev_device_queue_enable(vdev_device *dev, uint32_t queue, int enable)
{
	struct vdi_dev_queue *dq;

	if (!dev || queue >= dev->cfg.num_queues)
		return -EINVAL;
	dq = &dev->queues[queue];
	if (!!enable == dq->enabled)
		return 0;
	if (status_load(dev) & VDEV_STATUS_DRIVER_OK) {
		/* Queues go live at DRIVER_OK; afterwards only a queue that was
		 * reset (VIRTIO_F_RING_RESET) comes back, and nothing is disabled
		 * except through a queue reset. */
		if (!enable || !queue_setup_phase(dev, status_load(dev)))
			return -EBUSY;
		if (!dq->configured)
			return -EINVAL;
		if (enable_live_queue(dev, queue) < 0)
			vdev_device_set_needs_reset(dev);
		return 0;
	}
	if (enable && !dq->configured)
		return -EINVAL;
	dq->enabled = !!enable;
	return 0;
}

VDEV_EXPORT int vdev_device_queue_reset(vdev_device *dev, uint32_t queue)
{
	struct vdi_dev_queue *dq;

	if (!dev || queue >= dev->cfg.num_queues)
		return -EINVAL;
	if (!(status_load(dev) & VDEV_STATUS_DRIVER_OK) || !ring_reset_on(dev))
		return -EPERM;
	dq = &dev->queues[queue];
	pthread_mutex_lock(&dq->run);
	if (dq->q)
		dev->ops.queue_reset(dev, dev->opaque, queue);
	drop_live_queue(dq);
	clear_queue_setup(dq);
	pthread_mutex_unlock(&dq->run);
	return 0;
}

VDEV_EXPORT int vdev_device_queue_config(const vdev_device *dev, uint32_t queue,
					 struct vdev_queue_config *cfg)
{
	const struct vdi_dev_queue *dq;

	if (!dev || !cfg || queue >= dev->cfg.num_queues ||
	    cfg->struct_size < sizeof(struct vdev_queue_config))
		return -EINVAL;
	dq = &dev->queues[queue];
	cfg->size = dq->size;
	cfg->flags = queue_flags(dev->acked); /* as create_queue builds it */
	cfg->reserved = 0;
	cfg->desc_addr = dq->desc_addr;
	cfg->driver_addr = dq->driver_addr;
	cfg->device_addr = dq->device_addr;
	return 0;
}

VDEV_EXPORT int vdev_device_sleep(vdev_device *dev)
{
	int r = 0;

	if (!dev)
		return -EINVAL;
	/* Mark first, so kicks racing with the model's sleep are held back. */
	if (__atomic_exchange_n(&dev->asleep, 1, __ATOMIC_SEQ_CST))
		return -EALREADY;
	lock_all_queues(dev);
	if (__atomic_load_n(&dev->active, __ATOMIC_ACQUIRE) && dev->ops.sleep)
		r = dev->ops.sleep(dev, dev->opaque);
	unlock_all_queues(dev);
	if (r < 0) {
		__atomic_store_n(&dev->asleep, 0, __ATOMIC_SEQ_CST);
		deliver_held_kicks(dev);
	}
	return r;
}

VDEV_EXPORT int vdev_device_wake(vdev_device *dev)
{
	int r = 0;

	if (!dev)
		return -EINVAL;
	if (!__atomic_load_n(&dev->asleep, __ATOMIC_SEQ_CST))
		return -EALREADY;
	lock_all_queues(dev);
	if (__atomic_load_n(&dev->active, __ATOMIC_ACQUIRE) && dev->ops.wake)
		r = dev->ops.wake(dev, dev->opaque);
	if (r == 0)
		__atomic_store_n(&dev->asleep, 0, __ATOMIC_SEQ_CST);
	unlock_all_queues(dev);
	if (r < 0)
		return r;
	deliver_held_kicks(dev);
	return 0;
}

VDEV_EXPORT int vdev_device_queue_enabled(const vdev_device *dev, uint32_t queue)
{
	if (!dev || queue >= dev->cfg.num_queues)
		return 0;
	return dev->queues[queue].enabled;
}

VDEV_EXPORT vdev_queue *vdev_device_get_queue(const vdev_device *dev, uint32_t queue)
{
	if (!dev || queue >= dev->cfg.num_queues)
		return NULL;
	return __atomic_load_n(&dev->queues[queue].q, __ATOMIC_ACQUIRE);
}

VDEV_EXPORT int vdev_device_queue_notify(vdev_device *dev, uint32_t queue)
{
	if (!dev || queue >= dev->cfg.num_queues)
		return -EINVAL;
	/* A quick answer for the caller; queue_kick re-checks under the lock. */
	if (!queue_live(dev, queue))
		return -EAGAIN;
	queue_kick(dev, queue);
	return 0;
}

/* offset + len <= size without overflow, and len > 0. */
static int config_range_ok(const vdev_device *dev, uint32_t offset, uint32_t len)
{
	return len > 0 && offset <= dev->cfg.config_size &&
	       len <= dev->cfg.config_size - offset;
}

VDEV_EXPORT int vdev_device_config_read(vdev_device *dev, uint32_t offset, void *buf,
					uint32_t len)
{
	int r;

	if (!buf)
		return -EINVAL;
	if (!dev || !config_range_ok(dev, offset, len)) {
		memset(buf, 0, len);
		return -EINVAL;
	}
	r = dev->ops.config_read(dev, dev->opaque, offset, buf, len);
	if (r < 0) {
		memset(buf, 0, len);
		return r;
	}
	return 0;
}

VDEV_EXPORT int vdev_device_config_write(vdev_device *dev, uint32_t offset, const void *buf,
					 uint32_t len)
{
	if (!dev || !buf || !config_range_ok(dev, offset, len))
		return -EINVAL;
	if (!dev->ops.config_write)
		return 0;
	return dev->ops.config_write(dev, dev->opaque, offset, buf, len);
}

VDEV_EXPORT uint32_t vdev_device_config_generation(const vdev_device *dev)
{
	return dev ? __atomic_load_n(&dev->generation, __ATOMIC_SEQ_CST) : 0;
}

VDEV_EXPORT int vdev_device_config_changed(vdev_device *dev)
{
	if (!dev)
		return -EINVAL;
	__atomic_add_fetch(&dev->generation, 1, __ATOMIC_SEQ_CST);
	if (!(status_load(dev) & VDEV_STATUS_DRIVER_OK))
		return 0;
	return send_config_irq(dev);
}

VDEV_EXPORT int vdev_device_interrupt_queue(vdev_device *dev, uint32_t queue)
{
	vdev_irq *irq;

	if (!dev || queue >= dev->cfg.num_queues)
		return -EINVAL;
	/* The spec forbids used buffer notifications before DRIVER_OK (and so
	 * after a reset). */
	if (!(status_load(dev) & VDEV_STATUS_DRIVER_OK))
		return -EAGAIN;
	irq = irq_load(dev);
	if (!irq)
		return -EAGAIN;
	__atomic_fetch_or(&dev->isr, VDI_ISR_QUEUE, __ATOMIC_SEQ_CST);
	return vdev_irq_trigger(irq, VDEV_IRQ_QUEUE, queue);
}

VDEV_EXPORT void vdev_device_set_needs_reset(vdev_device *dev)
{
	uint8_t old;

	if (!dev)
		return;
	old = __atomic_fetch_or(&dev->status, VDEV_STATUS_NEEDS_RESET, __ATOMIC_SEQ_CST);
	/* One notification per reset cycle: only the first setter sends it. If
	 * DRIVER_OK is not set yet, setting it later sends it (see activate). */
	if (!(old & VDEV_STATUS_NEEDS_RESET) && (old & VDEV_STATUS_DRIVER_OK))
		send_config_irq(dev);
}

VDEV_EXPORT uint32_t vdev_device_isr(const vdev_device *dev)
{
	return dev ? __atomic_load_n(&dev->isr, __ATOMIC_SEQ_CST) : 0;
}

VDEV_EXPORT uint32_t vdev_device_isr_ack(vdev_device *dev, uint32_t mask)
{
	return dev ? __atomic_fetch_and(&dev->isr, ~mask, __ATOMIC_SEQ_CST) : 0;
}

uint32_t vdi_device_caps(const vdev_device *dev)
{
	uint32_t caps = 0;

	if (dev->ops.queue_reset)
		caps |= VDI_DEVICE_CAP_QUEUE_RESET;
	if (dev->ops.sleep)
		caps |= VDI_DEVICE_CAP_SLEEP;
	return caps;
}

int vdi_device_queue_start(vdev_device *dev, uint32_t queue, const struct vdev_queue_config *cfg,
			   const struct vdev_queue_state *st, void *inflight, size_t inflight_len)
{
	struct vdi_dev_queue *dq;
	uint8_t st_now;
	int live, r;

	if (!dev || !cfg || queue >= dev->cfg.num_queues || (inflight && inflight_len == 0))
		return -EINVAL;
	dq = &dev->queues[queue];
	if (dq->enabled)
		return -EBUSY;
	st_now = status_load(dev);
	live = !!(st_now & VDEV_STATUS_DRIVER_OK);
	if (!(st_now & (dev->legacy ? VDEV_STATUS_DRIVER : VDEV_STATUS_FEATURES_OK)) ||
	    (st_now & (VDEV_STATUS_NEEDS_RESET | VDEV_STATUS_FAILED)) ||
	    (live && !__atomic_load_n(&dev->active, __ATOMIC_ACQUIRE)))
		return -EPERM;
	if (live && !dev->ops.queue_enable)
		return -EOPNOTSUPP;
	if (!queue_size_ok(dev, queue, cfg->size))
		return -EINVAL;
	record_setup(dq, cfg);
	dq->has_state = st != NULL;
	if (st)
		dq->state = *st;
	dq->inflight = inflight;
	dq->inflight_len = inflight ? inflight_len : 0;
	if (!live) {
		dq->enabled = 1;
		return 0;
	}
	r = enable_live_queue(dev, queue);
	if (r < 0)
		clear_queue_setup(dq);
	return r;
}

int vdi_device_queue_stop(vdev_device *dev, uint32_t queue, struct vdev_queue_state *st)
{
	struct vdi_dev_queue *dq;

	if (!dev || queue >= dev->cfg.num_queues)
		return -EINVAL;
	if (!dev->ops.queue_reset)
		return -EOPNOTSUPP;
	dq = &dev->queues[queue];
	pthread_mutex_lock(&dq->run);
	if (!dq->q) {
		pthread_mutex_unlock(&dq->run);
		return -ENOENT;
	}
	dev->ops.queue_reset(dev, dev->opaque, queue);
	if (st) {
		st->struct_size = sizeof(*st);
		vdev_queue_get_state(dq->q, st);
	}
	drop_live_queue(dq);
	clear_queue_setup(dq);
	pthread_mutex_unlock(&dq->run);
	return 0;
}

int vdi_device_queue_state(vdev_device *dev, uint32_t queue, struct vdev_queue_state *st)
{
	struct vdi_dev_queue *dq;
	int r = -ENOENT;

	if (!dev || !st || queue >= dev->cfg.num_queues)
		return -EINVAL;
	dq = &dev->queues[queue];
	pthread_mutex_lock(&dq->run);
	if (dq->q) {
		st->struct_size = sizeof(*st);
		r = vdev_queue_get_state(dq->q, st);
	}
	pthread_mutex_unlock(&dq->run);
	return r;
}
