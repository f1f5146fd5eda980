/* SPDX-License-Identifier: MIT */
/*
 * virtio-blk disks for vdev-kvm-host: the library's vdev_blk over an
 * io_uring or file backend, behind vdev_mmio on the VM's MMIO bus, with one
 * KVM ioeventfd per queue and one irqfd (an MSI to TG_IRQ_VECTOR) per device;
 * and the I/O thread that serves the kicks and backend completions.
 */
#ifndef KH_BLKDEV_H
#define KH_BLKDEV_H

#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "vm.h"

#define KH_BACKEND_URING 0
#define KH_BACKEND_FILE 1

struct kh_disk_opt {
	const char *path;
	int readonly;
	int backend; /* KH_BACKEND_* */
};

struct kh_blk;
struct kh_iothread;

/* Where device i's registers live (TG_MMIO_BASE + i * 0x1000). */
uint64_t kh_blk_base(uint32_t index);

/**
 * kh_blk_new() - create disk @index from @o on @vm: backend, device,
 * transport, bus range, ioeventfds, MSI route and irqfd. Prints why on
 * failure. Returns 0 or a negative errno.
 */
int kh_blk_new(struct kh_vm *vm, const struct kh_disk_opt *o, uint32_t index,
	       struct kh_blk **out);

/** kh_blk_free() - take it off the bus and free it (after kh_iothread_stop). */
void kh_blk_free(struct kh_blk *b);

uint32_t kh_blk_gsi(const struct kh_blk *b);
uint64_t kh_blk_size(const struct kh_blk *b);

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

/** kh_iothread_stop() - stop and join it; accepts NULL. */
void kh_iothread_stop(struct kh_iothread *t);

#endif
