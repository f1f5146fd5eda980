/* SPDX-License-Identifier: MIT */
/*
 * The address-space bus: ranges of guest MMIO or port I/O space, each claimed
 * by a bus device (the C form of crosvm's BusDevice + Bus).
 *
 * Layout. The ranges live in an array of pointers sorted by base, so a
 * dispatch is one binary search. Ranges never overlap, so "the last range
 * whose base is <= addr" is the only candidate. A range is kept as an
 * inclusive [base, last] pair: a range that ends exactly at 2^64 has last =
 * UINT64_MAX, and no computation ever needs base + len. Several ranges may
 * share one device (one opaque); the device record (ops copy, opaque, number
 * of ranges) is shared by them and found on insert in a second array sorted
 * by opaque. The ops of a device are fixed by its first range: inserting
 * another range for the same opaque with different ops is refused, because
 * it would be ambiguous which destroy (or read) belongs to the device.
 *
 * Locking. bus->lock (a rwlock) protects the two arrays and the range counts
 * of the devices. Dispatch takes it in read mode only for the lookup: it
 * takes a reference on the range and on its device (atomic in-flight
 * counters), drops the lock, then calls the device. So no bus lock is held
 * while device code runs: a slow device delays only accesses to itself, and
 * insert/remove of other ranges proceeds. On glibc the rwlock prefers
 * writers, so a stream of dispatches cannot starve insert/remove; that is
 * safe because no thread ever takes the read lock twice (device callbacks
 * run unlocked, so a callback may dispatch to other devices).
 *
 * Removal. vdev_bus_remove unlinks the range under the write lock, so no new
 * access can find it, and marks its counter BUS_GONE. It then waits on
 * bus->wait_cond until the counter holds nothing but BUS_GONE, that is until
 * the accesses already inside the range have returned. If it was the
 * device's last range, it also marks the device counter and waits for every
 * access to the device (accesses through other ranges of the same device
 * whose concurrent removal has returned already may still run), and only then
 * calls destroy: destroy runs exactly once, with nothing running in the
 * device. Releasing a reference is a CAS on the counter while the object is
 * not marked (no lock: the hot path takes no mutex); once it is marked, the
 * decrement is done under wait_lock and followed by a broadcast, so the
 * waiter, which checks the counter under wait_lock, cannot miss the last
 * release, and the releaser never touches the object after the waiter can see
 * it idle (the waiter frees it right away).
 *
 * Why remove cannot deadlock: it holds no lock while it waits (the write lock
 * is dropped first; cond_wait releases wait_lock), and the accesses it waits
 * for hold no bus lock either, so they run to completion on their own unless
 * the device callback itself waits for the remover. That is why remove must
 * not be called from the callback of the device whose range is removed (it
 * would wait for itself), and why two devices must not remove each other's
 * ranges from inside their callbacks (each would wait for the other). A
 * callback may dispatch, insert, or remove ranges of devices that are not
 * waiting for it.
 *
 * Reusing an opaque: after the last range of a device is removed, inserting a
 * range with the same opaque before vdev_bus_remove returned creates a new
 * device record while the old one is still being destroyed; callers must not
 * do that.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <virtio-dev/bus.h>

#include "internal/util.h"

/* In a counter: the range was unlinked / the device lost its last range.
 * The low bits count the accesses running inside it. */
#define BUS_GONE (UINT64_C(1) << 63)

struct bus_dev {
	struct vdev_bus_device_ops ops; /* immutable after creation */
	void *opaque;
	uint32_t nranges; /* under bus->lock */
	uint64_t state;   /* atomic: running accesses | BUS_GONE */
	uint64_t pm_mark; /* under bus->pm_lock: sleep/wake pass that saw it */
};

struct bus_range {
	uint64_t base;
	uint64_t last; /* inclusive */
	struct bus_dev *dev;
	uint64_t state; /* atomic: running accesses | BUS_GONE */
};

struct vdev_bus {
	uint32_t kind;
	pthread_rwlock_t lock;
	struct bus_range **ranges; /* sorted by base */
	size_t nranges, cap_ranges;
	struct bus_dev **devs; /* sorted by opaque */
	size_t ndevs, cap_devs;
	/* Waiting for in-flight accesses to drain. */
	pthread_mutex_t wait_lock;
	pthread_cond_t wait_cond;
	/* Serializes sleep/wake passes. */
	pthread_mutex_t pm_lock;
	uint64_t pm_epoch;
};

static const char *kind_name(const vdev_bus *bus)
{
	return bus->kind == VDEV_BUS_PIO ? "pio" : "mmio";
}

static const char *ops_label(const struct vdev_bus_device_ops *ops, void *opaque)
{
	const char *s = ops->debug_label ? ops->debug_label(opaque) : NULL;

	return s ? s : "?";
}

/* ---- sorted arrays (callers hold bus->lock) ---- */

/* Index of the first range whose base is above @addr. */
static size_t range_upper(const vdev_bus *bus, uint64_t addr)
{
	size_t lo = 0, hi = bus->nranges;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (bus->ranges[mid]->base <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static struct bus_range *range_find(const vdev_bus *bus, uint64_t addr)
{
	size_t i = range_upper(bus, addr);
	struct bus_range *r;

	if (i == 0)
		return NULL;
	r = bus->ranges[i - 1];
	return addr <= r->last ? r : NULL;
}

/* Index of the device with @opaque, or where it would go; *found says which. */
static size_t dev_lower(const vdev_bus *bus, void *opaque, int *found)
{
	uintptr_t key = (uintptr_t)opaque;
	size_t lo = 0, hi = bus->ndevs;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if ((uintptr_t)bus->devs[mid]->opaque < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = lo < bus->ndevs && bus->devs[lo]->opaque == opaque;
	return lo;
}

static void dev_unlink(vdev_bus *bus, struct bus_dev *dev)
{
	int found;
	size_t i = dev_lower(bus, dev->opaque, &found);

	if (!found || bus->devs[i] != dev)
		return; /* cannot happen: a device with ranges is always listed */
	memmove(&bus->devs[i], &bus->devs[i + 1], (bus->ndevs - i - 1) * sizeof(bus->devs[0]));
	bus->ndevs--;
}

/* Makes room for one more of @n elements of @size bytes: returns the
 * (possibly moved) array, or NULL with @p untouched. */

static int ops_equal(const struct vdev_bus_device_ops *a, const struct vdev_bus_device_ops *b)
{
	return a->debug_label == b->debug_label && a->read == b->read && a->write == b->write &&
	       a->destroy == b->destroy && a->sleep == b->sleep && a->wake == b->wake &&
	       a->snapshot == b->snapshot && a->restore == b->restore &&
	       a->config_register_read == b->config_register_read &&
	       a->config_register_write == b->config_register_write &&
	       a->virtual_config_register_read == b->virtual_config_register_read &&
	       a->virtual_config_register_write == b->virtual_config_register_write &&
	       a->is_bridge == b->is_bridge;
}

/* ---- references ---- */

/* Taken under bus->lock (read or write), so it cannot race with the unlink,
 * which happens under the write lock. */
static void ref_get(uint64_t *state)
{
	__atomic_add_fetch(state, 1, __ATOMIC_RELAXED);
}

/* Drops a reference. Once the object is marked BUS_GONE, the decrement is
 * done under wait_lock so the waiter cannot miss it; after this returns, the
 * caller must not touch the object. */
static void ref_put(vdev_bus *bus, uint64_t *state)
{
	uint64_t v = __atomic_load_n(state, __ATOMIC_RELAXED);

	while (!(v & BUS_GONE)) {
		if (__atomic_compare_exchange_n(state, &v, v - 1, 1, __ATOMIC_ACQ_REL,
						__ATOMIC_RELAXED))
			return;
	}
	pthread_mutex_lock(&bus->wait_lock);
	if (__atomic_sub_fetch(state, 1, __ATOMIC_ACQ_REL) == BUS_GONE)
		pthread_cond_broadcast(&bus->wait_cond);
	pthread_mutex_unlock(&bus->wait_lock);
}

/* Marks an object unlinked; called under the write lock. */
static void ref_mark_gone(uint64_t *state)
{
	__atomic_fetch_or(state, BUS_GONE, __ATOMIC_ACQ_REL);
}

/* Waits until a marked object has no running access. Holds no bus lock. */
static void ref_wait_idle(vdev_bus *bus, uint64_t *state)
{
	pthread_mutex_lock(&bus->wait_lock);
	while (__atomic_load_n(state, __ATOMIC_ACQUIRE) != BUS_GONE)
		pthread_cond_wait(&bus->wait_cond, &bus->wait_lock);
	pthread_mutex_unlock(&bus->wait_lock);
}

static void dev_destroy(vdev_bus *bus, struct bus_dev *dev)
{
	ref_wait_idle(bus, &dev->state);
	if (dev->ops.destroy)
		dev->ops.destroy(dev->opaque);
	free(dev);
}

/* ---- lifetime ---- */

VDEV_EXPORT int vdev_bus_new(uint32_t kind, vdev_bus **out)
{
	pthread_rwlockattr_t attr;
	vdev_bus *bus;
	int r;

	if (!out || (kind != VDEV_BUS_MMIO && kind != VDEV_BUS_PIO)) {
		vdi_log(VDEV_LOG_DEBUG, "vdev_bus_new: invalid argument (kind %u)", kind);
		return -EINVAL;
	}
	bus = calloc(1, sizeof(*bus));
	if (!bus)
		return -ENOMEM;
	bus->kind = kind;

	if (pthread_rwlockattr_init(&attr) != 0)
		goto err_bus;
#ifdef __GLIBC__
	/* Dispatch never nests read locks, so writer preference is safe and keeps
	 * insert/remove from starving under a stream of guest accesses. */
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
#endif
	r = pthread_rwlock_init(&bus->lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	if (r != 0)
		goto err_bus;
	if (pthread_mutex_init(&bus->wait_lock, NULL) != 0)
		goto err_rwlock;
	if (pthread_cond_init(&bus->wait_cond, NULL) != 0)
		goto err_wait_lock;
	if (pthread_mutex_init(&bus->pm_lock, NULL) != 0)
		goto err_cond;
	*out = bus;
	return 0;

err_cond:
	pthread_cond_destroy(&bus->wait_cond);
err_wait_lock:
	pthread_mutex_destroy(&bus->wait_lock);
err_rwlock:
	pthread_rwlock_destroy(&bus->lock);
err_bus:
	free(bus);
	return -ENOMEM;
}

/*
 * Removes every range: each device's destroy runs once, after the accesses
 * still running in it returned. No other call on this bus may be running or
 * start once this is called (except accesses already inside a device).
 */
VDEV_EXPORT void vdev_bus_free(vdev_bus *bus)
{
	struct bus_range **ranges;
	size_t i, n;

	if (!bus)
		return;

	pthread_rwlock_wrlock(&bus->lock);
	ranges = bus->ranges;
	n = bus->nranges;
	bus->ranges = NULL;
	bus->nranges = bus->cap_ranges = 0;
	for (i = 0; i < n; i++)
		ref_mark_gone(&ranges[i]->state);
	for (i = 0; i < bus->ndevs; i++)
		ref_mark_gone(&bus->devs[i]->state);
	free(bus->devs);
	bus->devs = NULL;
	bus->ndevs = bus->cap_devs = 0;
	pthread_rwlock_unlock(&bus->lock);

	/* Devices are destroyed in the address order of their last range. */
	for (i = 0; i < n; i++) {
		struct bus_range *r = ranges[i];
		struct bus_dev *dev = r->dev;

		ref_wait_idle(bus, &r->state);
		free(r);
		if (--dev->nranges == 0)
			dev_destroy(bus, dev);
	}
	free(ranges);

	pthread_mutex_destroy(&bus->pm_lock);
	pthread_cond_destroy(&bus->wait_cond);
	pthread_mutex_destroy(&bus->wait_lock);
	pthread_rwlock_destroy(&bus->lock);
	free(bus);
}

/* ---- ranges ---- */

VDEV_EXPORT int vdev_bus_insert(vdev_bus *bus, uint64_t base, uint64_t len,
				const struct vdev_bus_device_ops *ops, void *opaque)
{
	struct vdev_bus_device_ops copy;
	struct bus_dev *dev, *newdev = NULL;
	struct bus_range *r, **ranges;
	uint64_t last;
	size_t i, di;
	int found, err;

	if (!bus || !ops)
		return -EINVAL;
	if (vdi_copy_versioned(&copy, sizeof(copy), ops) < 0 || !copy.read || !copy.write) {
		vdi_log(VDEV_LOG_DEBUG, "%s bus: insert at 0x%llx refused: bad ops", kind_name(bus),
			(unsigned long long)base);
		return -EINVAL;
	}
	/* len - 1 > UINT64_MAX - base: the range would run past 2^64. */
	if (len == 0 || len - 1 > UINT64_MAX - base) {
		vdi_log(VDEV_LOG_DEBUG, "%s bus: insert of %s at 0x%llx refused: bad length 0x%llx",
			kind_name(bus), ops_label(&copy, opaque), (unsigned long long)base,
			(unsigned long long)len);
		return -EINVAL;
	}
	last = base + (len - 1);

	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->base = base;
	r->last = last;

	pthread_rwlock_wrlock(&bus->lock);
	i = range_upper(bus, base);
	/* The predecessor starts at or below base: it overlaps if it reaches
	 * base. The successor starts above base: it overlaps if it starts at or
	 * below last. Nothing else can overlap, the ranges being disjoint. */
	if ((i > 0 && bus->ranges[i - 1]->last >= base) ||
	    (i < bus->nranges && bus->ranges[i]->base <= last)) {
		err = -EEXIST;
		goto refused;
	}
	if (bus->nranges >= UINT32_MAX) {
		err = -ENOMEM;
		goto refused;
	}
	di = dev_lower(bus, opaque, &found);
	if (found) {
		dev = bus->devs[di];
		if (!ops_equal(&dev->ops, &copy)) {
			err = -EINVAL;
			goto refused;
		}
	} else {
		/* Everything that can fail comes before the first change. */
		struct bus_dev **devs;

		newdev = calloc(1, sizeof(*newdev));
		devs = newdev ? vdi_grow(bus->devs, &bus->cap_devs, bus->ndevs, sizeof(*devs)) : NULL;
		if (!devs) {
			err = -ENOMEM;
			goto refused;
		}
		bus->devs = devs;
		newdev->ops = copy;
		newdev->opaque = opaque;
		dev = newdev;
	}
	ranges = vdi_grow(bus->ranges, &bus->cap_ranges, bus->nranges, sizeof(*ranges));
	if (!ranges) {
		err = -ENOMEM;
		goto refused;
	}
	bus->ranges = ranges;

	if (newdev) {
		memmove(&bus->devs[di + 1], &bus->devs[di],
			(bus->ndevs - di) * sizeof(bus->devs[0]));
		bus->devs[di] = newdev;
		bus->ndevs++;
	}
	dev->nranges++;
	r->dev = dev;
	memmove(&bus->ranges[i + 1], &bus->ranges[i], (bus->nranges - i) * sizeof(bus->ranges[0]));
	bus->ranges[i] = r;
	bus->nranges++;
	pthread_rwlock_unlock(&bus->lock);
	return 0;

refused:
	pthread_rwlock_unlock(&bus->lock);
	free(newdev);
	free(r);
	vdi_log(VDEV_LOG_DEBUG, "%s bus: insert of %s at [0x%llx, 0x%llx] refused (%d)%s",
		kind_name(bus), ops_label(&copy, opaque), (unsigned long long)base,
		(unsigned long long)last, err,
		err == -EEXIST  ? ": overlaps a claimed range"
		: err == -EINVAL ? ": the opaque is already inserted with other ops"
				 : "");
	return err;
}

VDEV_EXPORT int vdev_bus_remove(vdev_bus *bus, uint64_t base)
{
	struct bus_range *r;
	struct bus_dev *dev;
	int last;
	size_t i;

	if (!bus)
		return -EINVAL;

	pthread_rwlock_wrlock(&bus->lock);
	i = range_upper(bus, base);
	if (i == 0 || bus->ranges[i - 1]->base != base) {
		pthread_rwlock_unlock(&bus->lock);
		vdi_log(VDEV_LOG_DEBUG, "%s bus: remove at 0x%llx refused: no range starts there",
			kind_name(bus), (unsigned long long)base);
		return -ENOENT;
	}
	i--;
	r = bus->ranges[i];
	memmove(&bus->ranges[i], &bus->ranges[i + 1], (bus->nranges - i - 1) * sizeof(bus->ranges[0]));
	bus->nranges--;
	ref_mark_gone(&r->state);
	dev = r->dev;
	last = --dev->nranges == 0;
	if (last) {
		dev_unlink(bus, dev);
		ref_mark_gone(&dev->state);
	}
	pthread_rwlock_unlock(&bus->lock);

	/* No lock held: see "Why remove cannot deadlock" above. */
	ref_wait_idle(bus, &r->state);
	free(r);
	if (last)
		dev_destroy(bus, dev);
	return 0;
}

VDEV_EXPORT uint32_t vdev_bus_num_ranges(vdev_bus *bus)
{
	uint32_t n;

	if (!bus)
		return 0;
	pthread_rwlock_rdlock(&bus->lock);
	n = (uint32_t)bus->nranges;
	pthread_rwlock_unlock(&bus->lock);
	return n;
}

/* ---- dispatch ---- */

static int valid_size(uint32_t size)
{
	return size == 1 || size == 2 || size == 4 || size == 8;
}

/* Finds the range of an access and takes references on it and its device. */
static int access_get(vdev_bus *bus, uint64_t addr, uint32_t size, uint32_t vcpu,
		      struct bus_range **rp, struct vdev_bus_access *a)
{
	struct bus_range *r;

	pthread_rwlock_rdlock(&bus->lock);
	r = range_find(bus, addr);
	if (!r) {
		pthread_rwlock_unlock(&bus->lock);
		vdi_log(VDEV_LOG_DEBUG, "%s bus: vcpu %u: %u-byte access at unclaimed 0x%llx",
			kind_name(bus), vcpu, size, (unsigned long long)addr);
		return -ENOENT;
	}
	/* addr <= r->last, so r->last - addr cannot wrap. */
	if ((uint64_t)(size - 1) > r->last - addr) {
		uint64_t base = r->base, last = r->last;

		pthread_rwlock_unlock(&bus->lock);
		vdi_log(VDEV_LOG_DEBUG,
			"%s bus: vcpu %u: %u-byte access at 0x%llx crosses the end of [0x%llx, 0x%llx]",
			kind_name(bus), vcpu, size, (unsigned long long)addr,
			(unsigned long long)base, (unsigned long long)last);
		return -EINVAL;
	}
	ref_get(&r->state);
	ref_get(&r->dev->state);
	memset(a, 0, sizeof(*a));
	a->struct_size = sizeof(*a);
	a->size = size;
	a->address = addr;
	a->base = r->base;
	a->offset = addr - r->base;
	a->vcpu = vcpu;
	pthread_rwlock_unlock(&bus->lock);
	*rp = r;
	return 0;
}

static void access_put(vdev_bus *bus, struct bus_range *r, struct bus_dev *dev)
{
	/* The range first: once its reference is gone a remover may free it, but
	 * the device reference we still hold keeps the device (and, for
	 * vdev_bus_free, the bus) alive until the second put. */
	ref_put(bus, &r->state);
	ref_put(bus, &dev->state);
}

VDEV_EXPORT int vdev_bus_read(vdev_bus *bus, uint64_t addr, uint32_t size, uint32_t vcpu,
			      void *data)
{
	struct vdev_bus_access a;
	struct bus_range *r;
	struct bus_dev *dev;
	int err;

	if (!bus || !data || !valid_size(size))
		return -EINVAL;
	err = access_get(bus, addr, size, vcpu, &r, &a);
	if (err < 0) {
		/* What the guest reads from nothing: all ones, as on hardware. */
		memset(data, 0xff, size);
		return err;
	}
	dev = r->dev;
	memset(data, 0, size);
	err = dev->ops.read(dev->opaque, &a, data);
	access_put(bus, r, dev);
	return err;
}

VDEV_EXPORT int vdev_bus_write(vdev_bus *bus, uint64_t addr, uint32_t size, uint32_t vcpu,
			       const void *data)
{
	struct vdev_bus_access a;
	struct bus_range *r;
	struct bus_dev *dev;
	int err;

	if (!bus || !data || !valid_size(size))
		return -EINVAL;
	err = access_get(bus, addr, size, vcpu, &r, &a);
	if (err < 0)
		return err;
	dev = r->dev;
	err = dev->ops.write(dev->opaque, &a, data);
	access_put(bus, r, dev);
	return err;
}

/* ---- sleep / wake ---- */

static int call_pm(const struct bus_dev *dev, int wake)
{
	int (*hook)(void *) = wake ? dev->ops.wake : dev->ops.sleep;

	return hook ? hook(dev->opaque) : 0;
}

/*
 * One pass over the devices in address order (of their lowest range), each
 * once, without holding the bus lock while a hook runs (the devices are
 * pinned by a reference, so a concurrent remove waits for the pass and
 * destroy cannot run under a hook). On a failure the devices already done
 * are reverted in reverse order: woken again after a failed sleep, put back
 * to sleep after a failed wake, so the bus is left in one state and the call
 * can be retried. Hooks must not call vdev_bus_sleep/wake on the same bus
 * (pm_lock is held), nor remove their own device's ranges (the pass holds a
 * reference on the device, so that remove would wait for itself).
 */
static int bus_pm(vdev_bus *bus, int wake)
{
	struct bus_dev **list = NULL;
	size_t i, k = 0, done;
	uint64_t epoch;
	int err = 0;

	if (!bus)
		return -EINVAL;

	pthread_mutex_lock(&bus->pm_lock);
	pthread_rwlock_rdlock(&bus->lock);
	if (bus->ndevs) {
		list = malloc(bus->ndevs * sizeof(*list));
		if (!list) {
			pthread_rwlock_unlock(&bus->lock);
			pthread_mutex_unlock(&bus->pm_lock);
			return -ENOMEM;
		}
	}
	/* pm_mark is only touched under pm_lock, so the read lock suffices. */
	epoch = ++bus->pm_epoch;
	for (i = 0; i < bus->nranges && k < bus->ndevs; i++) {
		struct bus_dev *dev = bus->ranges[i]->dev;

		if (dev->pm_mark == epoch)
			continue;
		dev->pm_mark = epoch;
		ref_get(&dev->state);
		list[k++] = dev;
	}
	pthread_rwlock_unlock(&bus->lock);

	for (done = 0; done < k; done++) {
		err = call_pm(list[done], wake);
		if (err < 0)
			break;
	}
	if (err < 0) {
		vdi_log(VDEV_LOG_DEBUG, "%s bus: %s of %s failed (%d), reverting %zu device(s)",
			kind_name(bus), wake ? "wake" : "sleep",
			ops_label(&list[done]->ops, list[done]->opaque), err, done);
		while (done-- > 0) {
			int e = call_pm(list[done], !wake);

			if (e < 0)
				vdi_log(VDEV_LOG_DEBUG, "%s bus: reverting %s failed too (%d)",
					kind_name(bus),
					ops_label(&list[done]->ops, list[done]->opaque), e);
		}
	} else {
		err = 0;
	}
	for (i = 0; i < k; i++)
		ref_put(bus, &list[i]->state);
	free(list);
	pthread_mutex_unlock(&bus->pm_lock);
	return err;
}

VDEV_EXPORT int vdev_bus_sleep(vdev_bus *bus)
{
	return bus_pm(bus, 0);
}

VDEV_EXPORT int vdev_bus_wake(vdev_bus *bus)
{
	return bus_pm(bus, 1);
}

/* ---- snapshot / restore ---- */

/* Finds the device claiming @addr and takes a reference on it, if it has the
 * snapshot (or restore) hook. */
static int device_get(vdev_bus *bus, uint64_t addr, int snapshot, struct bus_dev **out)
{
	struct bus_range *r;
	struct bus_dev *dev;

	pthread_rwlock_rdlock(&bus->lock);
	r = range_find(bus, addr);
	if (!r) {
		pthread_rwlock_unlock(&bus->lock);
		vdi_log(VDEV_LOG_DEBUG, "%s bus: %s at unclaimed 0x%llx", kind_name(bus),
			snapshot ? "snapshot" : "restore", (unsigned long long)addr);
		return -ENOENT;
	}
	dev = r->dev;
	if (snapshot ? !dev->ops.snapshot : !dev->ops.restore) {
		pthread_rwlock_unlock(&bus->lock);
		vdi_log(VDEV_LOG_DEBUG, "%s bus: the device at 0x%llx has no %s hook", kind_name(bus),
			(unsigned long long)addr, snapshot ? "snapshot" : "restore");
		return -EOPNOTSUPP;
	}
	ref_get(&dev->state);
	pthread_rwlock_unlock(&bus->lock);
	*out = dev;
	return 0;
}

VDEV_EXPORT int vdev_bus_snapshot_device(vdev_bus *bus, uint64_t addr, void *buf, uint64_t cap,
					 uint64_t *len)
{
	struct bus_dev *dev;
	int err;

	if (!bus || !len || (!buf && cap))
		return -EINVAL;
	err = device_get(bus, addr, 1, &dev);
	if (err < 0)
		return err;
	err = dev->ops.snapshot(dev->opaque, buf, cap, len);
	ref_put(bus, &dev->state);
	return err;
}

VDEV_EXPORT int vdev_bus_restore_device(vdev_bus *bus, uint64_t addr, const void *buf,
					uint64_t len)
{
	struct bus_dev *dev;
	int err;

	if (!bus || (!buf && len))
		return -EINVAL;
	err = device_get(bus, addr, 0, &dev);
	if (err < 0)
		return err;
	err = dev->ops.restore(dev->opaque, buf, len);
	ref_put(bus, &dev->state);
	return err;
}
