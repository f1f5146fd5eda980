/* SPDX-License-Identifier: MIT */
/*
 * virtio-blk disks for vdev-kvm-host: the library's vdev_blk over an
 * io_uring or file backend, behind vdev_mmio on the VM's MMIO bus (one irqfd,
 * an MSI to TG_IRQ_VECTOR) or behind vdev_virtio_pci on the PCI root (MSI-X:
 * one irqfd per vector, its GSI route following what the guest programs),
 * with one KVM ioeventfd per queue; and the I/O thread that serves the kicks
 * and backend completions.
 */
#ifndef KH_BLKDEV_H
#define KH_BLKDEV_H

#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "pciroot.h"
#include "vm.h"

#define KH_BACKEND_URING 0
#define KH_BACKEND_FILE 1
#define KH_TRANSPORT_MMIO 0
#define KH_TRANSPORT_PCI 1

struct kh_disk_opt {
	const char *path;
	int readonly;
	int backend;   /* KH_BACKEND_* */
	int transport; /* KH_TRANSPORT_* */
	int hotplug;   /* virtio-pci at KH_HOTPLUG_SLOT_ADDR, behind the hotplug port */
};

struct kh_blk;
struct kh_iothread;

/* Where virtio-mmio device i's registers live (TG_MMIO_BASE + i * 0x1000). */
uint64_t kh_blk_base(uint32_t index);
/* Where virtio-pci device i is: 00:(i + 1).0 (a hotplug disk: KH_HOTPLUG_SLOT_ADDR). */
uint32_t kh_blk_pci_addr(uint32_t index);

/**
 * kh_blk_new() - create disk @index from @o on @vm: backend, device,
 * transport, and for virtio-mmio its bus range, ioeventfds, MSI route and
 * irqfd; for virtio-pci the function on @pci (required then) with one MSI
 * route and irqfd per MSI-X vector, the ioeventfds following BAR 4 as the
 * guest places it. Prints why on failure. Returns 0 or a negative errno.
 */
int kh_blk_new(struct kh_vm *vm, struct kh_pci *pci, const struct kh_disk_opt *o,
	       uint32_t index, struct kh_blk **out);

/** kh_blk_free() - take it off the bus or root and free it (after kh_iothread_stop). */
void kh_blk_free(struct kh_blk *b);

uint32_t kh_blk_gsi(const struct kh_blk *b); /* virtio-mmio: its interrupt's GSI */
uint32_t kh_blk_pci_address(const struct kh_blk *b); /* virtio-pci: its function */
/* virtio-pci: where BAR @bar is on the MMIO bus now (0: not on it); *@last
 * (may be NULL) where it was last placed (0: never). The BAR reports come
 * from the vCPU thread: read them once the guest is done with the BARs. */
uint64_t kh_blk_bar_base(const struct kh_blk *b, uint32_t bar, uint64_t *last);
/* virtio-pci: where queue 0's notify ioeventfd is registered (0: nowhere). */
uint64_t kh_blk_notify_ioeventfd(const struct kh_blk *b);
uint64_t kh_blk_size(const struct kh_blk *b);
const char *kh_blk_transport_name(const struct kh_blk *b); /* "mmio" or "pci" */

/**
 * kh_blk_report() - print the device's state for the summary: status,
 * request counters, errors seen. Returns 1 if the device reported errors
 * (NEEDS_RESET at any time, malformed, failed or unsupported requests,
 * register accesses refused), else 0.
 */
int kh_blk_report(struct kh_blk *b, FILE *out);

/**
 * kh_iothread_start() - one thread serving every disk's kick eventfds and
 * completion fds; after work it polls the rings for up to @poll_ns before
 * sleeping in epoll again (0: never polls); pinned to @cpu unless it is -1.
 * Returns 0 or a negative errno.
 */
int kh_iothread_start(struct kh_blk **disks, uint32_t n, uint64_t poll_ns, int cpu,
		      struct kh_iothread **out);

/** kh_iothread_clock() - the I/O thread's CPU-time clock (while it runs). */
int kh_iothread_clock(struct kh_iothread *t, clockid_t *clock);

/**
 * kh_iothread_detach() - from another thread: the I/O thread stops serving
 * @b (its fds leave the epoll set, it is never polled again); returns when
 * the I/O thread has let go of it, so @b may then be freed. Returns 0 or
 * -ENOENT (not one of its disks).
 */
int kh_iothread_detach(struct kh_iothread *t, struct kh_blk *b);

/** kh_iothread_stop() - stop and join it; accepts NULL. */
void kh_iothread_stop(struct kh_iothread *t);

#endif
