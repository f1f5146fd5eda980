/* SPDX-License-Identifier: MIT */
/*
 * The disks and the I/O thread.
 *
 * Threads: the vCPU thread reaches a disk only through its registers (MMIO
 * exits to the register block or the BARs, and for virtio-pci config
 * cycles); the I/O thread runs the device (kicks from the ioeventfds,
 * backend completions) and, while polling, looks at the live queue itself
 * (vdev_queue_has_avail, vdev_queue_set_notification). The library wants
 * control calls (status writes: reset, DRIVER_OK) not to overlap queue runs
 * of the same device, and a register write may free the live queue the I/O
 * thread is polling. So each disk has a lock: the I/O thread holds it while
 * it works on the disk, the vCPU thread around each register access and
 * config cycle (virtio-pci can reach its registers through config space,
 * the PCI config access capability). The vCPU raises `pause` first, and the
 * polling I/O thread steps aside while it is set, so a register access
 * waits for one pass at most.
 *
 * virtio-pci interrupts (struct vdev_pci_msi_ops) are raised by calls the
 * vCPU or I/O thread makes with the disk's lock held, so the MSI-X vector
 * state here needs no lock of its own. BAR moves are reported by the root
 * with its lock held, on the vCPU thread; the disk's lock is not held then.
 */
#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <virtio-dev/virtio-dev.h>

#include "blkdev.h"
#include "tg-abi.h"

#define QUEUE_SIZE 256u
#define MAX_QUEUES 1u /* the test guest drives one queue per disk */
#define MAX_VECTORS (MAX_QUEUES + 1u) /* MSI-X: config, then one per queue */
#define NOTIFY_LEN 2u /* virtio-pci: a kick is a 16-bit write of the queue index */
#define EV_STOP UINT64_MAX
#define EV_CTL (UINT64_MAX - 1)
#define EV_KICK 0u
#define EV_COMPLETION 1u
#define EV(dev, kind, q) (((uint64_t)(dev) << 32) | ((uint64_t)(kind) << 16) | (q))

struct kh_blk {
	struct kh_vm *vm;
	uint32_t index;
	int transport;           /* KH_TRANSPORT_* */
	int hotplug;             /* virtio-pci behind the hotplug port's slot */
	const char *path;
	const char *backend_name;
	vdev_blk_backend *backend;
	vdev_blk *blk;
	vdev_device *dev;
	uint32_t num_queues;
	int kick_fd[MAX_QUEUES];
	pthread_mutex_t lock;
	int pause;               /* atomic: vCPU accesses waiting for the lock */
	uint64_t kicks;          /* atomic: ioeventfd kicks (eventfd counts) */
	uint64_t refused;        /* atomic: register accesses the transport refused */
	int needs_reset_seen;    /* atomic */

	/* virtio-mmio */
	uint64_t base;
	vdev_irq *irq;
	vdev_mmio *mmio;
	int on_bus;
	uint32_t gsi;

	/* virtio-pci */
	struct kh_pci *pci;
	uint32_t pci_addr;
	vdev_virtio_pci *vpci;
	int on_root;
	uint64_t notify_addr[MAX_QUEUES]; /* where the queue's ioeventfd is; 0: none */
	struct kh_msi_vec vec[MAX_VECTORS];
	uint32_t num_vectors;
	uint64_t bar4_moves;     /* BAR 4 reports (placed, moved, gone) */
	uint64_t bar_base[VDEV_PCI_NUM_BARS]; /* where each BAR is on the bus; 0: not */
	uint64_t bar_last[VDEV_PCI_NUM_BARS]; /* where it was last placed; 0: never */
	uint64_t notify_exits;   /* atomic: kicks that missed the ioeventfd */
};

struct kh_iothread {
	struct kh_blk **disks;   /* its own copy: a detached disk's entry is NULL */
	uint32_t n;
	uint64_t poll_ns;
	int epfd, stop_fd, ctl_fd;
	int stop;                /* atomic: leave the polling loop */
	pthread_t thread;
	int started;
	pthread_mutex_t ctl_lock; /* detach requests */
	pthread_cond_t ctl_cond;
	struct kh_blk *detach;   /* the disk to let go of, until it is let go */
	int exited;              /* the thread left its loop (under ctl_lock) */
};

uint64_t kh_blk_base(uint32_t index)
{
	return TG_MMIO_BASE + (uint64_t)index * VDEV_MMIO_SIZE;
}

uint32_t kh_blk_pci_addr(uint32_t index)
{
	return VDEV_PCI_ADDR(0, index + 1, 0);
}

uint32_t kh_blk_gsi(const struct kh_blk *b)
{
	return b->gsi;
}

const char *kh_blk_transport_name(const struct kh_blk *b)
{
	return b->transport == KH_TRANSPORT_PCI ? "pci" : "mmio";
}

uint32_t kh_blk_pci_address(const struct kh_blk *b)
{
	return b->pci_addr;
}

uint64_t kh_blk_bar_base(const struct kh_blk *b, uint32_t bar, uint64_t *last)
{
	if (bar >= VDEV_PCI_NUM_BARS)
		return 0;
	if (last)
		*last = b->bar_last[bar];
	return b->bar_base[bar];
}

uint64_t kh_blk_notify_ioeventfd(const struct kh_blk *b)
{
	return b->notify_addr[0];
}

uint64_t kh_blk_size(const struct kh_blk *b)
{
	return vdev_blk_backend_size(b->backend);
}

static void note_status(struct kh_blk *b)
{
	if (vdev_device_status(b->dev) & VDEV_STATUS_NEEDS_RESET)
		__atomic_store_n(&b->needs_reset_seen, 1, __ATOMIC_RELAXED);
}

/* ---- register accesses from the vCPU ----------------------------------- */

/* The vCPU announces itself, so that the polling I/O thread steps aside,
 * then takes the disk's lock. */
static void vcpu_lock(struct kh_blk *b)
{
	__atomic_add_fetch(&b->pause, 1, __ATOMIC_SEQ_CST);
	pthread_mutex_lock(&b->lock);
}

static void vcpu_unlock(struct kh_blk *b)
{
	note_status(b);
	pthread_mutex_unlock(&b->lock);
	__atomic_sub_fetch(&b->pause, 1, __ATOMIC_SEQ_CST);
}

/* virtio-pci: a write to a queue's notify address that exited, i.e. that
 * no ioeventfd caught (a stale or missing one, or another width). */
static void count_notify_exit(struct kh_blk *b, const struct vdev_bus_access *a)
{
	for (uint32_t q = 0; q < b->num_queues; q++) {
		uint64_t addr;
		uint32_t value;

		if (vdev_virtio_pci_notify_address(b->vpci, q, &addr, &value) == 0 &&
		    a->address == addr)
			__atomic_add_fetch(&b->notify_exits, 1, __ATOMIC_RELAXED);
	}
}

/* One register access (virtio-mmio block, or a virtio-pci BAR). */
static int reg_access(struct kh_blk *b, const struct vdev_bus_access *a, void *rdata,
		      const void *wdata)
{
	const struct vdev_bus_device_ops *pci = vdev_virtio_pci_bus_ops();
	int r;

	vcpu_lock(b);
	if (b->transport == KH_TRANSPORT_MMIO)
		r = wdata ? vdev_mmio_write(b->mmio, a->offset, wdata, a->size)
			  : vdev_mmio_read(b->mmio, a->offset, rdata, a->size);
	else
		r = wdata ? pci->write(b->vpci, a, wdata) : pci->read(b->vpci, a, rdata);
	vcpu_unlock(b);
	if (wdata && b->transport == KH_TRANSPORT_PCI)
		count_notify_exit(b, a);
	if (r < 0)
		__atomic_add_fetch(&b->refused, 1, __ATOMIC_RELAXED);
	return r;
}

static int reg_read(void *opaque, const struct vdev_bus_access *a, void *data)
{
	return reg_access(opaque, a, data, NULL);
}

static int reg_write(void *opaque, const struct vdev_bus_access *a, const void *data)
{
	return reg_access(opaque, a, NULL, data);
}

static const char *reg_label(void *opaque)
{
	const struct kh_blk *b = opaque;

	return b->transport == KH_TRANSPORT_PCI ? "virtio-blk (virtio-pci)"
						: "virtio-blk (virtio-mmio)";
}

/* virtio-pci config cycles (the root calls them with its lock held). */
static uint32_t cfg_read(void *opaque, uint32_t reg)
{
	struct kh_blk *b = opaque;
	uint32_t v;

	vcpu_lock(b);
	v = vdev_virtio_pci_bus_ops()->config_register_read(b->vpci, reg);
	vcpu_unlock(b);
	return v;
}

static int cfg_write(void *opaque, uint32_t reg, uint32_t offset, const void *data,
		     uint32_t size)
{
	struct kh_blk *b = opaque;
	int r;

	vcpu_lock(b);
	r = vdev_virtio_pci_bus_ops()->config_register_write(b->vpci, reg, offset, data, size);
	vcpu_unlock(b);
	if (r < 0)
		__atomic_add_fetch(&b->refused, 1, __ATOMIC_RELAXED);
	return r;
}

/* ---- set-up ------------------------------------------------------------ */

static int open_backend(struct kh_blk *b, const struct kh_disk_opt *o)
{
	struct vdev_blk_file_config fcfg = VDEV_BLK_FILE_CONFIG_INIT;
	int r = -1, ru = 0;

	fcfg.path = o->path;
	fcfg.flags = o->readonly ? VDEV_BLK_FILE_F_READONLY : 0;
	fcfg.queue_depth = QUEUE_SIZE;
	if (o->backend == KH_BACKEND_URING) {
		ru = r = vdev_blk_backend_new_uring(&fcfg, &b->backend);
		b->backend_name = "io_uring";
	}
	if (r < 0) {
		/* Also when io_uring is missing (not built in, or disabled in
		 * the kernel); the file backend then says whether the image
		 * itself is the problem. */
		r = vdev_blk_backend_new_file(&fcfg, &b->backend);
		b->backend_name = "file";
	}
	if (r < 0)
		fprintf(stderr, "vdev-kvm-host: cannot open disk image %s: %s\n", o->path,
			strerror(-r));
	else if (ru < 0)
		fprintf(stderr, "vdev-kvm-host: disk %u: io_uring backend unavailable (%s), "
				"using the file backend\n", b->index,
			ru == -EOPNOTSUPP ? "not built in" : strerror(-ru));
	return r;
}

static int new_kick_fds(struct kh_blk *b)
{
	for (uint32_t q = 0; q < b->num_queues; q++) {
		b->kick_fd[q] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (b->kick_fd[q] < 0)
			return -errno;
	}
	return 0;
}

static int wire_mmio(struct kh_blk *b)
{
	int r, fd;

	for (uint32_t q = 0; q < b->num_queues; q++) {
		uint64_t addr;
		uint32_t value;

		r = vdev_mmio_notify_address(b->mmio, q, &addr, &value);
		if (r == 0)
			r = kh_vm_ioeventfd(b->vm, addr, 4, &value, b->kick_fd[q], 1);
		if (r < 0)
			return r;
	}
	fd = vdev_irq_eventfd(b->irq, VDEV_IRQ_QUEUE, 0);
	if (fd < 0)
		return fd;
	r = kh_vm_add_msi_route(b->vm, KH_MSI_ADDRESS, TG_IRQ_VECTOR, &b->gsi);
	if (r == 0)
		r = kh_vm_irqfd(b->vm, fd, b->gsi);
	return r;
}

static int new_mmio(struct kh_blk *b)
{
	struct vdev_mmio_config mcfg = VDEV_MMIO_CONFIG_INIT;
	struct vdev_bus_device_ops ops = VDEV_BUS_DEVICE_OPS_INIT;
	int r;

	b->base = kh_blk_base(b->index);
	mcfg.base = b->base;
	r = vdev_irq_new_eventfd(b->num_queues, VDEV_IRQ_F_SHARED, &b->irq);
	if (r == 0)
		r = vdev_mmio_new(&mcfg, b->dev, b->irq, &b->mmio);
	if (r == 0)
		r = wire_mmio(b);
	if (r < 0)
		return r;
	ops.debug_label = reg_label;
	ops.read = reg_read;
	ops.write = reg_write;
	r = vdev_bus_insert(b->vm->mmio_bus, b->base, VDEV_MMIO_SIZE, &ops, b);
	b->on_bus = r == 0;
	return r;
}

/* ---- virtio-pci: MSI-X and the notify ioeventfds ------------------------- */

/* MSI-X: each vector has its irqfd (vm.c's kh_msi_vec); the calls come
 * with the disk's lock held, see the top of the file. */
static int msi_signal(void *opaque, uint32_t vector, uint64_t address, uint32_t data)
{
	struct kh_blk *b = opaque;

	if (vector >= b->num_vectors)
		return kh_vm_signal_msi(b->vm, address, data);
	return kh_msi_vec_signal(b->vm, &b->vec[vector], address, data);
}

static void msi_update(void *opaque, uint32_t vector, uint64_t address, uint32_t data,
		       uint32_t masked)
{
	struct kh_blk *b = opaque;

	if (vector < b->num_vectors)
		kh_msi_vec_update(b->vm, &b->vec[vector], address, data, masked);
}

static const struct vdev_pci_msi_ops msi_ops = {
	.struct_size = sizeof(struct vdev_pci_msi_ops),
	.signal = msi_signal,
	.update = msi_update,
};

/*
 * BAR 4 (common config, ISR, device config, notify) was placed, moved or
 * taken off the bus: the notify ioeventfds go where the kicks now land, so
 * they never exit. No datamatch: each queue has an address of its own.
 */
static void pci_bar_moved(void *opaque, const struct vdev_pci_bar_move *move)
{
	struct kh_blk *b = opaque;

	if (move->bar < VDEV_PCI_NUM_BARS) {
		b->bar_base[move->bar] = move->new_base;
		if (move->new_base)
			b->bar_last[move->bar] = move->new_base;
	}
	if (move->bar != VDEV_VIRTIO_PCI_BAR_MODERN)
		return;
	b->bar4_moves++;
	for (uint32_t q = 0; q < b->num_queues; q++) {
		uint64_t addr;
		uint32_t value;

		if (b->notify_addr[q]) {
			kh_vm_ioeventfd(b->vm, b->notify_addr[q], NOTIFY_LEN, NULL, b->kick_fd[q],
					0);
			b->notify_addr[q] = 0;
		}
		/* Not after the BAR left the bus: the function still has its
		 * address when the root takes it away (a hot unplug). */
		if (move->new_base &&
		    vdev_virtio_pci_notify_address(b->vpci, q, &addr, &value) == 0 &&
		    kh_vm_ioeventfd(b->vm, addr, NOTIFY_LEN, NULL, b->kick_fd[q], 1) == 0)
			b->notify_addr[q] = addr;
	}
}

static int new_pci(struct kh_blk *b, struct kh_pci *pci)
{
	struct vdev_virtio_pci_config pcfg = VDEV_VIRTIO_PCI_CONFIG_INIT;
	struct vdev_bus_device_ops ops = VDEV_BUS_DEVICE_OPS_INIT;
	int r;

	b->pci = pci;
	b->pci_addr = b->hotplug ? KH_HOTPLUG_SLOT_ADDR : kh_blk_pci_addr(b->index);
	b->num_vectors = b->num_queues + 1;
	/* Every vector has its irqfd and GSI from the start; the routes get
	 * the guest's messages as it programs them (msi_update). */
	for (uint32_t i = 0; i < b->num_vectors; i++) {
		r = kh_msi_vec_init(b->vm, &b->vec[i]);
		if (r < 0)
			return r;
	}
	pcfg.msix_vectors = b->num_vectors;
	pcfg.msi_ops = &msi_ops;
	pcfg.msi_opaque = b;
	r = vdev_virtio_pci_new(&pcfg, b->dev, &b->vpci);
	if (r < 0)
		return r;
	/* The library's function, with the disk's lock around every access
	 * (no virtual config window in this VM: those hooks stay NULL). */
	ops.debug_label = reg_label;
	ops.read = reg_read;
	ops.write = reg_write;
	ops.config_register_read = cfg_read;
	ops.config_register_write = cfg_write;
	r = kh_pci_add(pci, b->pci_addr, &ops, b, pci_bar_moved, b);
	b->on_root = r == 0;
	return r;
}

int kh_blk_new(struct kh_vm *vm, struct kh_pci *pci, const struct kh_disk_opt *o,
	       uint32_t index, struct kh_blk **out)
{
	struct vdev_blk_config bcfg = VDEV_BLK_CONFIG_INIT;
	struct kh_blk *b;
	int r;

	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->vm = vm;
	b->index = index;
	b->transport = o->transport;
	b->hotplug = o->hotplug;
	b->path = o->path;
	for (uint32_t q = 0; q < MAX_QUEUES; q++)
		b->kick_fd[q] = -1;
	for (uint32_t i = 0; i < MAX_VECTORS; i++)
		b->vec[i].fd = -1;
	pthread_mutex_init(&b->lock, NULL);
	*out = b; /* kh_blk_free copes with what is half built */

	r = open_backend(b, o);
	if (r < 0)
		return r;
	bcfg.num_queues = MAX_QUEUES;
	bcfg.queue_size = QUEUE_SIZE;
	bcfg.flags = o->readonly ? VDEV_BLK_F_READONLY : 0;
	snprintf((char *)bcfg.serial, sizeof(bcfg.serial), "vdev-kvm-disk%u", index);
	r = vdev_blk_new(&bcfg, b->backend, &b->blk);
	if (r < 0)
		goto fail;
	b->dev = vdev_blk_device(b->blk);
	b->num_queues = vdev_device_num_queues(b->dev);
	r = vdev_device_set_memory(b->dev, vm->mem);
	if (r == 0)
		r = new_kick_fds(b);
	if (r == 0)
		r = b->transport == KH_TRANSPORT_PCI ? new_pci(b, pci) : new_mmio(b);
	if (r == 0)
		return 0;
fail:
	fprintf(stderr, "vdev-kvm-host: disk %u (%s): %s\n", index, o->path, strerror(-r));
	return r;
}

void kh_blk_free(struct kh_blk *b)
{
	if (!b)
		return;
	if (b->on_bus)
		vdev_bus_remove(b->vm->mmio_bus, b->base);
	if (b->on_root)
		kh_pci_remove(b->pci, b->pci_addr); /* the ioeventfds leave with BAR 4 */
	vdev_mmio_free(b->mmio);
	vdev_virtio_pci_free(b->vpci);
	vdev_blk_free(b->blk);
	vdev_blk_backend_free(b->backend);
	vdev_irq_free(b->irq);
	for (uint32_t q = 0; q < MAX_QUEUES; q++)
		if (b->kick_fd[q] >= 0)
			close(b->kick_fd[q]);
	for (uint32_t i = 0; i < MAX_VECTORS; i++)
		kh_msi_vec_close(&b->vec[i]);
	pthread_mutex_destroy(&b->lock);
	free(b);
}

int kh_blk_report(struct kh_blk *b, FILE *out)
{
	struct vdev_blk_stats st = VDEV_BLK_STATS_INIT;
	uint64_t refused = __atomic_load_n(&b->refused, __ATOMIC_RELAXED);
	int needs_reset = __atomic_load_n(&b->needs_reset_seen, __ATOMIC_RELAXED);
	uint8_t status = vdev_device_status(b->dev);

	vdev_blk_get_stats(b->blk, &st);
	fprintf(out, "kvm-host: disk %u: %s, %s backend, ", b->index, b->path, b->backend_name);
	if (b->transport == KH_TRANSPORT_PCI)
		fprintf(out, "virtio-pci at %02x:%02x.%x%s, MSI-X %u vectors\n",
			VDEV_PCI_ADDR_BUS(b->pci_addr), VDEV_PCI_ADDR_DEV(b->pci_addr),
			VDEV_PCI_ADDR_FN(b->pci_addr), b->hotplug ? " (hotplug slot)" : "",
			b->num_vectors);
	else
		fprintf(out, "virtio-mmio at 0x%" PRIx64 ", GSI %u\n", b->base, b->gsi);
	fprintf(out, "kvm-host: disk %u: status 0x%02x, %" PRIu64 " requests (%" PRIu64
		" reads, %" PRIu64 " writes, %" PRIu64 " flushes, %" PRIu64 " get-id), %" PRIu64
		" kicks\n", b->index, status, st.requests, st.reads, st.writes, st.flushes,
		st.get_ids, __atomic_load_n(&b->kicks, __ATOMIC_RELAXED));
	fprintf(out, "kvm-host: disk %u: errors: NEEDS_RESET %s, %" PRIu64 " malformed, %" PRIu64
		" I/O errors, %" PRIu64 " unsupported, %" PRIu64 " register accesses refused\n",
		b->index, needs_reset ? "seen" : "not seen", st.malformed, st.ioerr, st.unsupp,
		refused);
	if (b->transport == KH_TRANSPORT_PCI) {
		uint64_t irqfd = 0, direct = 0, routes = 0, route_errors = 0;

		for (uint32_t i = 0; i < b->num_vectors; i++) {
			irqfd += b->vec[i].irqfd;
			direct += b->vec[i].direct;
			routes += b->vec[i].routes;
			route_errors += b->vec[i].route_errors;
		}
		fprintf(out, "kvm-host: disk %u: pci: BAR 4 placed or moved %" PRIu64 " times, "
			"notify ioeventfd at 0x%" PRIx64 ", %" PRIu64 " kicks missed it\n",
			b->index, b->bar4_moves, b->notify_addr[0],
			__atomic_load_n(&b->notify_exits, __ATOMIC_RELAXED));
		fprintf(out, "kvm-host: disk %u: pci: MSI-X: %" PRIu64 " interrupts by irqfd, %"
			PRIu64 " by KVM_SIGNAL_MSI, %" PRIu64 " route updates, %" PRIu64
			" refused by KVM\n", b->index, irqfd, direct, routes, route_errors);
	}
	return needs_reset || st.malformed || st.ioerr || st.unsupp || refused;
}

/* ---- the I/O thread ---------------------------------------------------- */

static void io_lock(struct kh_blk *b)
{
	/* Let a waiting vCPU go first: it holds up the guest. */
	while (__atomic_load_n(&b->pause, __ATOMIC_SEQ_CST))
		sched_yield();
	pthread_mutex_lock(&b->lock);
}

static void io_unlock(struct kh_blk *b)
{
	note_status(b);
	pthread_mutex_unlock(&b->lock);
}

static void handle_event(struct kh_iothread *t, uint64_t ev)
{
	struct kh_blk *b = t->disks[ev >> 32];
	uint32_t kind = (uint32_t)(ev >> 16) & 0xffff, q = (uint32_t)ev & 0xffff;

	if (!b)
		return; /* detached in this batch */
	if (kind == EV_KICK) {
		uint64_t n;

		if (read(b->kick_fd[q], &n, sizeof(n)) != (ssize_t)sizeof(n))
			return; /* already drained */
		__atomic_add_fetch(&b->kicks, n, __ATOMIC_RELAXED);
		io_lock(b);
		vdev_device_queue_notify(b->dev, q);
		io_unlock(b);
	} else {
		io_lock(b);
		vdev_blk_process_completions(b->blk, q);
		io_unlock(b);
	}
}

/*
 * One polling pass over disk @b: serve new buffers and finished backend I/O,
 * and keep kicks off (a queue run leaves them on). Returns 1 if it found work.
 */
static int poll_disk(struct kh_blk *b)
{
	int found = 0;

	/* A device that needs a reset ignores kicks: the ring would look
	 * busy for ever. */
	if (vdev_device_status(b->dev) & VDEV_STATUS_NEEDS_RESET)
		return 0;
	io_lock(b);
	for (uint32_t q = 0; q < b->num_queues; q++) {
		vdev_queue *vq = vdev_device_get_queue(b->dev, q);

		if (!vq)
			continue;
		if (vdev_queue_has_avail(vq) > 0) {
			vdev_device_queue_notify(b->dev, q);
			found = 1;
		}
		if (vdev_queue_inflight(vq) && vdev_blk_process_completions(b->blk, q) > 0)
			found = 1;
		vdev_queue_set_notification(vq, 0);
	}
	io_unlock(b);
	return found;
}

/* Kicks back on; 1 if a ring got buffers meanwhile (then keep polling). */
static int unpoll_disk(struct kh_blk *b)
{
	int again = 0;

	/* Not for a device that needs a reset: its ring may hold buffers it will
	 * never take, and the I/O thread would poll them for ever. */
	if (vdev_device_status(b->dev) & VDEV_STATUS_NEEDS_RESET)
		return 0;
	io_lock(b);
	for (uint32_t q = 0; q < b->num_queues; q++) {
		vdev_queue *vq = vdev_device_get_queue(b->dev, q);

		if (vq && vdev_queue_set_notification(vq, 1) > 0)
			again = 1;
	}
	io_unlock(b);
	return again;
}

static void poll_disks(struct kh_iothread *t)
{
	uint64_t deadline = kh_now_ns() + t->poll_ns;

	while (!__atomic_load_n(&t->stop, __ATOMIC_RELAXED)) {
		int found = 0;
		uint64_t now;

		for (uint32_t i = 0; i < t->n; i++)
			if (t->disks[i])
				found |= poll_disk(t->disks[i]);
		now = kh_now_ns();
		if (found) {
			deadline = now + t->poll_ns;
			continue;
		}
		if (now < deadline)
			continue;
		for (uint32_t i = 0; i < t->n; i++)
			if (t->disks[i])
				found |= unpoll_disk(t->disks[i]);
		if (!found)
			return;
		deadline = now + t->poll_ns;
	}
}

static void ep_del_disk(struct kh_iothread *t, struct kh_blk *b)
{
	for (uint32_t q = 0; q < b->num_queues; q++) {
		int cfd = vdev_blk_completion_fd(b->blk, q);

		epoll_ctl(t->epfd, EPOLL_CTL_DEL, b->kick_fd[q], NULL);
		if (cfd >= 0)
			epoll_ctl(t->epfd, EPOLL_CTL_DEL, cfd, NULL);
	}
}

/* A detach request (kh_iothread_detach): let go of the disk. */
static void handle_ctl(struct kh_iothread *t)
{
	uint64_t n;

	if (read(t->ctl_fd, &n, sizeof(n)) != (ssize_t)sizeof(n))
		return;
	pthread_mutex_lock(&t->ctl_lock);
	for (uint32_t i = 0; i < t->n && t->detach; i++) {
		if (t->disks[i] == t->detach) {
			ep_del_disk(t, t->disks[i]);
			t->disks[i] = NULL;
		}
	}
	t->detach = NULL;
	pthread_cond_broadcast(&t->ctl_cond);
	pthread_mutex_unlock(&t->ctl_lock);
}

static void iothread_loop(struct kh_iothread *t)
{
	struct epoll_event ev[16];

	for (;;) {
		int n = epoll_wait(t->epfd, ev, 16, -1);
		int stop = 0, ctl = 0;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			perror("vdev-kvm-host: epoll_wait");
			return;
		}
		for (int i = 0; i < n; i++) {
			if (ev[i].data.u64 == EV_STOP)
				stop = 1;
			else if (ev[i].data.u64 == EV_CTL)
				ctl = 1;
			else
				handle_event(t, ev[i].data.u64);
		}
		if (ctl) /* after the batch: its events may name the disk */
			handle_ctl(t);
		if (stop)
			return;
		if (t->poll_ns)
			poll_disks(t);
	}
}

static void *iothread_main(void *arg)
{
	struct kh_iothread *t = arg;

	iothread_loop(t);
	pthread_mutex_lock(&t->ctl_lock);
	t->exited = 1;
	pthread_cond_broadcast(&t->ctl_cond);
	pthread_mutex_unlock(&t->ctl_lock);
	return NULL;
}

int kh_iothread_detach(struct kh_iothread *t, struct kh_blk *b)
{
	uint64_t one = 1;
	int found = 0;

	pthread_mutex_lock(&t->ctl_lock);
	while (t->detach && !t->exited)
		pthread_cond_wait(&t->ctl_cond, &t->ctl_lock);
	for (uint32_t i = 0; i < t->n; i++)
		found |= t->disks[i] == b;
	if (found && t->exited) {
		/* Nobody serves it any more. */
		for (uint32_t i = 0; i < t->n; i++)
			if (t->disks[i] == b)
				t->disks[i] = NULL;
	} else if (found) {
		t->detach = b;
		if (write(t->ctl_fd, &one, sizeof(one)) != (ssize_t)sizeof(one))
			perror("vdev-kvm-host: detaching a disk from the I/O thread");
		while (t->detach == b && !t->exited)
			pthread_cond_wait(&t->ctl_cond, &t->ctl_lock);
	}
	pthread_mutex_unlock(&t->ctl_lock);
	return found ? 0 : -ENOENT;
}

static int ep_add(int epfd, int fd, uint64_t data)
{
	struct epoll_event e = {.events = EPOLLIN, .data.u64 = data};

	return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &e) < 0 ? -errno : 0;
}

int kh_iothread_start(struct kh_blk **disks, uint32_t n, uint64_t poll_ns, int cpu,
		      struct kh_iothread **out)
{
	struct kh_iothread *t = calloc(1, sizeof(*t));
	int r = 0;

	if (!t)
		return -ENOMEM;
	pthread_mutex_init(&t->ctl_lock, NULL);
	pthread_cond_init(&t->ctl_cond, NULL);
	t->n = n;
	t->poll_ns = poll_ns;
	t->disks = calloc(n ? n : 1, sizeof(*t->disks));
	t->epfd = epoll_create1(EPOLL_CLOEXEC);
	t->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	t->ctl_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (!t->disks)
		r = -ENOMEM;
	else if (t->epfd < 0 || t->stop_fd < 0 || t->ctl_fd < 0)
		r = -errno;
	if (r == 0) {
		memcpy(t->disks, disks, n * sizeof(*disks));
		r = ep_add(t->epfd, t->stop_fd, EV_STOP);
	}
	if (r == 0)
		r = ep_add(t->epfd, t->ctl_fd, EV_CTL);
	for (uint32_t i = 0; i < n && r == 0; i++) {
		struct kh_blk *b = disks[i];

		for (uint32_t q = 0; q < b->num_queues && r == 0; q++) {
			int cfd = vdev_blk_completion_fd(b->blk, q);

			r = ep_add(t->epfd, b->kick_fd[q], EV(i, EV_KICK, q));
			if (r == 0 && cfd >= 0)
				r = ep_add(t->epfd, cfd, EV(i, EV_COMPLETION, q));
		}
	}
	if (r == 0) {
		r = -pthread_create(&t->thread, NULL, iothread_main, t);
		t->started = r == 0;
		if (t->started) {
			kh_pin_thread(t->thread, cpu, "I/O");
			pthread_setname_np(t->thread, "kh-io");
		}
	}
	if (r < 0) {
		kh_iothread_stop(t);
		return r;
	}
	*out = t;
	return 0;
}

int kh_iothread_clock(struct kh_iothread *t, clockid_t *clock)
{
	return -pthread_getcpuclockid(t->thread, clock);
}

void kh_iothread_stop(struct kh_iothread *t)
{
	uint64_t one = 1;

	if (!t)
		return;
	if (t->started) {
		__atomic_store_n(&t->stop, 1, __ATOMIC_RELAXED);
		if (write(t->stop_fd, &one, sizeof(one)) != (ssize_t)sizeof(one))
			perror("vdev-kvm-host: stopping the I/O thread");
		pthread_join(t->thread, NULL);
	}
	if (t->epfd >= 0)
		close(t->epfd);
	if (t->stop_fd >= 0)
		close(t->stop_fd);
	if (t->ctl_fd >= 0)
		close(t->ctl_fd);
	pthread_cond_destroy(&t->ctl_cond);
	pthread_mutex_destroy(&t->ctl_lock);
	free(t->disks);
	free(t);
}
