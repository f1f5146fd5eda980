/* SPDX-License-Identifier: MIT */
/*
 * The KVM half of vdev-kvm-host: one VM with an in-kernel interrupt
 * controller, guest RAM from a memfd at GPA 0, one vCPU, the two address
 * spaces (MMIO and port I/O, both vdev_bus) its exits are dispatched to, MSI
 * routes for irqfds, and ioeventfds. It knows nothing about how a guest is
 * loaded (loader.h) or started (boot.h), nor about virtio (blkdev.h).
 */
#ifndef KH_VM_H
#define KH_VM_H

#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/kvm.h>

#include <virtio-dev/virtio-dev.h>

/* Guest RAM is one memslot from GPA 0 and must stay below the MMIO window. */
#define KH_RAM_MAX_MIB 3072u
#define KH_MAX_MSI_ROUTES 64u
/* Where x86 MSIs go: the local APIC's message window (APIC ID 0). */
#define KH_MSI_ADDRESS 0xfee00000u

struct kh_vm_config {
	const char *kvm_path; /* NULL: /dev/kvm */
	uint64_t ram_size;  /* bytes, a multiple of 2 MiB */
	int hugepages;      /* back RAM with MFD_HUGETLB (falls back with a message) */
};

/* Why kh_vm_run returned. */
enum kh_vm_outcome {
	KH_VM_STOPPED,   /* a device asked to stop (kh_vm_request_stop): power-off */
	KH_VM_CRASHED,   /* shutdown (triple fault), failed entry, internal error */
	KH_VM_TIMEOUT,   /* kh_vm_kick_out after the time limit */
	KH_VM_ERROR,     /* KVM_RUN failed, an exit we cannot handle */
};

struct kh_vm {
	int kvm_fd, vm_fd, vcpu_fd;
	int mem_fd;
	uint8_t *ram;
	uint64_t ram_size;
	int hugepages;          /* RAM really is on huge pages */
	struct kvm_run *run;
	size_t run_size;
	uint64_t tsc_khz;       /* 0 when KVM cannot tell */
	vdev_mem *mem;          /* guest RAM for the devices */
	vdev_bus *mmio_bus, *pio_bus;
	pthread_mutex_t routes_lock; /* routes: set-up, and a guest reprogramming MSI-X */
	struct kvm_irq_routing_entry routes[KH_MAX_MSI_ROUTES];
	uint32_t num_routes;
	pthread_t vcpu_thread;  /* the thread inside kh_vm_run */
	int vcpu_thread_set;
	int stop;               /* atomic: leave kh_vm_run after this exit */
	int timed_out;          /* atomic */
	uint64_t exits, io_exits, mmio_exits, unclaimed;
};

/**
 * kh_vm_new() - open /dev/kvm, create the VM, its irqchip, guest RAM and one
 * vCPU (with the host's supported CPUID). Prints why on failure; a KVM device
 * that cannot be opened is reported as "cannot open <path>: <reason>" (the
 * tests look for "cannot open /dev/kvm"). Returns 0 or a negative errno.
 */
int kh_vm_new(const struct kh_vm_config *cfg, struct kh_vm **out);

/** kh_vm_free() - close everything; accepts NULL. */
void kh_vm_free(struct kh_vm *vm);

/** kh_vm_gpa() - host pointer for [gpa, gpa + len) of RAM, or NULL. */
void *kh_vm_gpa(struct kh_vm *vm, uint64_t gpa, uint64_t len);

/**
 * kh_vm_add_msi_route() - a new GSI whose route is the MSI @address / @data
 * (KH_MSI_ADDRESS: the local APIC of APIC ID 0); *gsi receives it. Returns 0
 * or a negative errno (printed).
 */
int kh_vm_add_msi_route(struct kh_vm *vm, uint64_t address, uint32_t data, uint32_t *gsi);

/**
 * kh_vm_set_msi_route() - point @gsi (from kh_vm_add_msi_route) at another
 * MSI message. Thread-safe. Returns 0 or a negative errno (the old route
 * stays; -ENOENT: not one of ours).
 */
int kh_vm_set_msi_route(struct kh_vm *vm, uint32_t gsi, uint64_t address, uint32_t data);

/** kh_vm_signal_msi() - KVM_SIGNAL_MSI: deliver one MSI now. */
int kh_vm_signal_msi(struct kh_vm *vm, uint64_t address, uint32_t data);

/** kh_vm_irqfd() - KVM_IRQFD: writes to @fd raise @gsi. */
int kh_vm_irqfd(struct kh_vm *vm, int fd, uint32_t gsi);

/*
 * One MSI(-X) vector of a PCI function delivered by irqfd: an eventfd bound
 * to a GSI of its own, whose route is kept at the message the guest
 * programmed (struct vdev_pci_msi_ops.update), once it programmed one. The
 * caller serializes the calls for one vector.
 */
struct kh_msi_vec {
	int fd;                  /* -1 until kh_msi_vec_init */
	uint32_t gsi;
	int routed;              /* the route holds address/data */
	uint64_t address;
	uint32_t data;
	uint64_t irqfd, direct;  /* messages sent by irqfd / by KVM_SIGNAL_MSI */
	uint64_t routes, route_errors; /* route updates made / refused by KVM */
};

/** kh_msi_vec_init() - the eventfd, its GSI and irqfd. Returns 0 or a negative errno. */
int kh_msi_vec_init(struct kh_vm *vm, struct kh_msi_vec *v);
/** kh_msi_vec_close() - close the eventfd (the VM's irqfd goes with it); accepts fd -1. */
void kh_msi_vec_close(struct kh_msi_vec *v);
/** kh_msi_vec_signal() - through the irqfd when the route holds this very
 * message, else (no route yet, or KVM refused it) by KVM_SIGNAL_MSI. */
int kh_msi_vec_signal(struct kh_vm *vm, struct kh_msi_vec *v, uint64_t address, uint32_t data);
/** kh_msi_vec_update() - the guest changed the message or (un)masked it: a
 * masked vector is not signalled, its route waits for the unmask. */
void kh_msi_vec_update(struct kh_vm *vm, struct kh_msi_vec *v, uint64_t address, uint32_t data,
		       uint32_t masked);

/**
 * kh_vm_ioeventfd() - KVM_IOEVENTFD: @len-byte MMIO writes at @addr signal
 * @fd; only writes of *@datamatch when it is not NULL. @assign 0 undoes an
 * earlier call with the same arguments. Returns 0 or a negative errno
 * (printed).
 */
int kh_vm_ioeventfd(struct kh_vm *vm, uint64_t addr, uint32_t len, const uint32_t *datamatch,
		    int fd, int assign);

/**
 * kh_vm_run() - run the vCPU on the calling thread until a device asks to
 * stop, the guest crashes, or kh_vm_kick_out. MMIO and port I/O exits go to
 * the buses (unclaimed reads see all ones, unclaimed writes are dropped and
 * logged). On a crash the registers are printed.
 */
enum kh_vm_outcome kh_vm_run(struct kh_vm *vm);

/** kh_vm_request_stop() - from a device callback: stop after this exit. */
void kh_vm_request_stop(struct kh_vm *vm);

/** kh_vm_kick_out() - from another thread: make kh_vm_run return KH_VM_TIMEOUT. */
void kh_vm_kick_out(struct kh_vm *vm);

/** kh_vm_dump_regs() - print the vCPU's registers on stderr. */
void kh_vm_dump_regs(struct kh_vm *vm);

/* Pin @t to @cpu (-1: leave it); a failure is reported, not fatal. */
void kh_pin_thread(pthread_t t, int cpu, const char *what);

/* Host monotonic clock in nanoseconds. */
uint64_t kh_now_ns(void);

#endif
