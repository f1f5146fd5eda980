/* SPDX-License-Identifier: MIT */
/*
 * KVM plumbing for vdev-kvm-host: VM, memory, vCPU, exits, routes.
 *
 * Every exit the vCPU takes is a guest access to something that is not RAM:
 * port I/O goes to the PIO bus (the test device), MMIO to the MMIO bus (the
 * virtio-mmio register blocks). The vCPU loop runs on one thread; stopping
 * it from another thread uses kvm_run.immediate_exit plus a signal, so a
 * guest spinning at native speed is interrupted at once.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "vm.h"

#define KICK_SIGNAL SIGUSR1
#define MAX_CPUID_ENTRIES 256u
#define UNCLAIMED_LOG_MAX 16u /* report the first unclaimed accesses only */
/* MSI routes start above the IOAPIC's 24 pins, which the table no longer
 * routes: KVM_SET_GSI_ROUTING replaces the whole table, and this VM uses
 * MSIs only. */
#define FIRST_MSI_GSI 24u

uint64_t kh_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void kh_pin_thread(pthread_t t, int cpu, const char *what)
{
	cpu_set_t set;
	int r;

	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	r = pthread_setaffinity_np(t, sizeof(set), &set);
	if (r)
		fprintf(stderr, "vdev-kvm-host: cannot pin the %s thread to CPU %d: %s\n", what,
			cpu, strerror(r));
}

static int kvm_ioctl_err(const char *what)
{
	int e = errno;

	fprintf(stderr, "vdev-kvm-host: %s: %s\n", what, strerror(e));
	return -e;
}

static int ram_map(struct kh_vm *vm, int hugepages)
{
	unsigned int flags = MFD_CLOEXEC | (hugepages ? MFD_HUGETLB : 0);
	void *p = MAP_FAILED;
	int e;

	vm->mem_fd = memfd_create("vdev-kvm-host-ram", flags);
	if (vm->mem_fd < 0)
		return -errno;
	/* MAP_POPULATE: with huge pages a missing reservation fails here, not
	 * as a SIGBUS in the middle of the run. */
	if (ftruncate(vm->mem_fd, (off_t)vm->ram_size) == 0)
		p = mmap(NULL, vm->ram_size, PROT_READ | PROT_WRITE,
			 MAP_SHARED | (hugepages ? MAP_POPULATE : 0), vm->mem_fd, 0);
	if (p == MAP_FAILED) {
		e = -errno;
		close(vm->mem_fd);
		vm->mem_fd = -1;
		return e;
	}
	vm->ram = p;
	vm->hugepages = hugepages;
	return 0;
}

static int set_cpuid(struct kh_vm *vm)
{
	size_t sz = sizeof(struct kvm_cpuid2) + MAX_CPUID_ENTRIES * sizeof(struct kvm_cpuid_entry2);
	struct kvm_cpuid2 *c = calloc(1, sz);
	int r = 0;

	if (!c)
		return -ENOMEM;
	c->nent = MAX_CPUID_ENTRIES;
	if (ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, c) < 0)
		r = kvm_ioctl_err("KVM_GET_SUPPORTED_CPUID");
	else if (ioctl(vm->vcpu_fd, KVM_SET_CPUID2, c) < 0)
		r = kvm_ioctl_err("KVM_SET_CPUID2");
	free(c);
	return r;
}

static void kick_handler(int sig)
{
	(void)sig; /* only there to make KVM_RUN return -EINTR */
}

int kh_vm_new(const struct kh_vm_config *cfg, struct kh_vm **out)
{
	struct kvm_userspace_memory_region region = {0};
	struct sigaction sa = {0};
	const char *kvm_path;
	struct kh_vm *vm;
	int r, mmap_size;

	if (!cfg || !out || !cfg->ram_size || cfg->ram_size % (2u << 20) ||
	    cfg->ram_size > ((uint64_t)KH_RAM_MAX_MIB << 20))
		return -EINVAL;
	vm = calloc(1, sizeof(*vm));
	if (!vm)
		return -ENOMEM;
	vm->kvm_fd = vm->vm_fd = vm->vcpu_fd = vm->mem_fd = -1;
	vm->ram_size = cfg->ram_size;
	pthread_mutex_init(&vm->routes_lock, NULL);

	kvm_path = cfg->kvm_path ? cfg->kvm_path : "/dev/kvm";
	vm->kvm_fd = open(kvm_path, O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0) {
		r = -errno;
		fprintf(stderr, "vdev-kvm-host: cannot open %s: %s\n", kvm_path, strerror(-r));
		goto fail;
	}
	r = ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0);
	if (r != KVM_API_VERSION) {
		fprintf(stderr, "vdev-kvm-host: %s: KVM API version %d, expected %d\n", kvm_path,
			r, KVM_API_VERSION);
		r = -ENOTSUP;
		goto fail;
	}
	static const struct {
		int cap;
		const char *name;
	} caps[] = {
		{KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP"},
		{KVM_CAP_IRQFD, "KVM_CAP_IRQFD"},
		{KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD"},
		{KVM_CAP_IRQ_ROUTING, "KVM_CAP_IRQ_ROUTING"},
		{KVM_CAP_SIGNAL_MSI, "KVM_CAP_SIGNAL_MSI"},
		{KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"},
	};
	for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
		if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, caps[i].cap) <= 0) {
			fprintf(stderr, "vdev-kvm-host: KVM lacks %s\n", caps[i].name);
			r = -ENOTSUP;
			goto fail;
		}
	}
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0) {
		r = kvm_ioctl_err("KVM_CREATE_VM");
		goto fail;
	}
	/* Intel needs a TSS area for real-mode emulation even though we never
	 * run real mode; put it out of the way, above the APIC page. */
	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, 0xfffbd000ul) < 0) {
		r = kvm_ioctl_err("KVM_SET_TSS_ADDR");
		goto fail;
	}
	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0) {
		r = kvm_ioctl_err("KVM_CREATE_IRQCHIP");
		goto fail;
	}

	r = cfg->hugepages ? ram_map(vm, 1) : -EINVAL;
	if (cfg->hugepages && r < 0)
		fprintf(stderr, "vdev-kvm-host: huge pages unavailable (%s), using normal pages\n",
			strerror(-r));
	if (r < 0)
		r = ram_map(vm, 0);
	if (r < 0) {
		fprintf(stderr, "vdev-kvm-host: guest RAM (%" PRIu64 " MiB): %s\n",
			vm->ram_size >> 20, strerror(-r));
		goto fail;
	}
	region.slot = 0;
	region.guest_phys_addr = 0;
	region.memory_size = vm->ram_size;
	region.userspace_addr = (uintptr_t)vm->ram;
	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0) {
		r = kvm_ioctl_err("KVM_SET_USER_MEMORY_REGION");
		goto fail;
	}

	r = vdev_mem_new(&vm->mem);
	if (r == 0)
		r = vdev_mem_add_region(vm->mem, 0, vm->ram_size, vm->ram, 0);
	if (r == 0)
		r = vdev_bus_new(VDEV_BUS_MMIO, &vm->mmio_bus);
	if (r == 0)
		r = vdev_bus_new(VDEV_BUS_PIO, &vm->pio_bus);
	if (r < 0) {
		fprintf(stderr, "vdev-kvm-host: guest memory map / buses: %s\n", strerror(-r));
		goto fail;
	}

	vm->vcpu_fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, 0);
	if (vm->vcpu_fd < 0) {
		r = kvm_ioctl_err("KVM_CREATE_VCPU");
		goto fail;
	}
	mmap_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (mmap_size < 0) {
		r = kvm_ioctl_err("KVM_GET_VCPU_MMAP_SIZE");
		goto fail;
	}
	if (mmap_size < (int)sizeof(struct kvm_run)) {
		fprintf(stderr, "vdev-kvm-host: KVM's vCPU area is too small (%d bytes)\n",
			mmap_size);
		r = -EIO;
		goto fail;
	}
	vm->run_size = (size_t)mmap_size;
	vm->run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vm->vcpu_fd, 0);
	if (vm->run == MAP_FAILED) {
		vm->run = NULL;
		r = kvm_ioctl_err("mmap(kvm_run)");
		goto fail;
	}
	r = set_cpuid(vm);
	if (r < 0)
		goto fail;
	r = ioctl(vm->vcpu_fd, KVM_GET_TSC_KHZ, 0);
	vm->tsc_khz = r > 0 ? (uint64_t)r : 0;

	sa.sa_handler = kick_handler; /* no SA_RESTART: KVM_RUN must return */
	sigemptyset(&sa.sa_mask);
	sigaction(KICK_SIGNAL, &sa, NULL);
	*out = vm;
	return 0;
fail:
	kh_vm_free(vm);
	return r < 0 ? r : -EIO;
}

void kh_vm_free(struct kh_vm *vm)
{
	if (!vm)
		return;
	if (vm->run)
		munmap(vm->run, vm->run_size);
	if (vm->vcpu_fd >= 0)
		close(vm->vcpu_fd);
	vdev_bus_free(vm->pio_bus);
	vdev_bus_free(vm->mmio_bus);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	vdev_mem_free(vm->mem);
	if (vm->ram)
		munmap(vm->ram, vm->ram_size);
	if (vm->mem_fd >= 0)
		close(vm->mem_fd);
	pthread_mutex_destroy(&vm->routes_lock);
	free(vm);
}

void *kh_vm_gpa(struct kh_vm *vm, uint64_t gpa, uint64_t len)
{
	if (gpa > vm->ram_size || len > vm->ram_size - gpa)
		return NULL;
	return vm->ram + gpa;
}

static void msi_entry(struct kvm_irq_routing_entry *e, uint32_t gsi, uint64_t address,
		      uint32_t data)
{
	memset(e, 0, sizeof(*e));
	e->gsi = gsi;
	e->type = KVM_IRQ_ROUTING_MSI;
	e->u.msi.address_lo = (uint32_t)address;
	e->u.msi.address_hi = (uint32_t)(address >> 32);
	e->u.msi.data = data;
}

/* Hand KVM the first @n entries of vm->routes, with entry @i replaced by
 * @e (@i may be the new one at the end). Called with routes_lock held. */
static int push_routes(struct kh_vm *vm, uint32_t n, uint32_t i,
		       const struct kvm_irq_routing_entry *e)
{
	struct kvm_irq_routing *tbl;
	int r = 0;

	tbl = calloc(1, sizeof(*tbl) + n * sizeof(*e));
	if (!tbl)
		return -ENOMEM;
	tbl->nr = n;
	memcpy(tbl->entries, vm->routes, n * sizeof(*e));
	tbl->entries[i] = *e;
	if (ioctl(vm->vm_fd, KVM_SET_GSI_ROUTING, tbl) < 0)
		r = kvm_ioctl_err("KVM_SET_GSI_ROUTING");
	free(tbl);
	return r;
}

int kh_vm_add_msi_route(struct kh_vm *vm, uint64_t address, uint32_t data, uint32_t *gsi)
{
	struct kvm_irq_routing_entry e;
	int r;

	pthread_mutex_lock(&vm->routes_lock);
	if (vm->num_routes >= KH_MAX_MSI_ROUTES) {
		pthread_mutex_unlock(&vm->routes_lock);
		return -ENOSPC;
	}
	msi_entry(&e, FIRST_MSI_GSI + vm->num_routes, address, data);
	r = push_routes(vm, vm->num_routes + 1, vm->num_routes, &e);
	if (r == 0) {
		vm->routes[vm->num_routes++] = e;
		*gsi = e.gsi;
	}
	pthread_mutex_unlock(&vm->routes_lock);
	return r;
}

int kh_vm_set_msi_route(struct kh_vm *vm, uint32_t gsi, uint64_t address, uint32_t data)
{
	struct kvm_irq_routing_entry e;
	uint32_t i = gsi - FIRST_MSI_GSI;
	int r;

	pthread_mutex_lock(&vm->routes_lock);
	if (gsi < FIRST_MSI_GSI || i >= vm->num_routes) {
		pthread_mutex_unlock(&vm->routes_lock);
		return -ENOENT;
	}
	msi_entry(&e, gsi, address, data);
	r = push_routes(vm, vm->num_routes, i, &e);
	if (r == 0)
		vm->routes[i] = e;
	pthread_mutex_unlock(&vm->routes_lock);
	return r;
}

int kh_vm_signal_msi(struct kh_vm *vm, uint64_t address, uint32_t data)
{
	struct kvm_msi msi = {0};

	msi.address_lo = (uint32_t)address;
	msi.address_hi = (uint32_t)(address >> 32);
	msi.data = data;
	/* > 0: delivered, 0: the guest blocked it (APIC disabled), both fine. */
	return ioctl(vm->vm_fd, KVM_SIGNAL_MSI, &msi) < 0 ? -errno : 0;
}

int kh_vm_irqfd(struct kh_vm *vm, int fd, uint32_t gsi)
{
	struct kvm_irqfd irqfd = {0};

	irqfd.fd = (uint32_t)fd;
	irqfd.gsi = gsi;
	if (ioctl(vm->vm_fd, KVM_IRQFD, &irqfd) < 0)
		return kvm_ioctl_err("KVM_IRQFD");
	return 0;
}

int kh_msi_vec_init(struct kh_vm *vm, struct kh_msi_vec *v)
{
	int r;

	v->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (v->fd < 0)
		return -errno;
	r = kh_vm_add_msi_route(vm, KH_MSI_ADDRESS, 0, &v->gsi);
	if (r == 0)
		r = kh_vm_irqfd(vm, v->fd, v->gsi);
	return r;
}

void kh_msi_vec_close(struct kh_msi_vec *v)
{
	if (v->fd >= 0)
		close(v->fd);
	v->fd = -1;
}

int kh_msi_vec_signal(struct kh_vm *vm, struct kh_msi_vec *v, uint64_t address, uint32_t data)
{
	uint64_t one = 1;

	if (v->fd >= 0 && v->routed && v->address == address && v->data == data) {
		v->irqfd++;
		return write(v->fd, &one, sizeof(one)) == (ssize_t)sizeof(one) ? 0 : -errno;
	}
	v->direct++;
	return kh_vm_signal_msi(vm, address, data);
}

void kh_msi_vec_update(struct kh_vm *vm, struct kh_msi_vec *v, uint64_t address, uint32_t data,
		       uint32_t masked)
{
	if (v->fd < 0 || masked || (v->routed && v->address == address && v->data == data))
		return;
	v->routed = 0;
	if (kh_vm_set_msi_route(vm, v->gsi, address, data) < 0) {
		v->route_errors++; /* signal injects it directly */
		return;
	}
	v->address = address;
	v->data = data;
	v->routed = 1;
	v->routes++;
}

int kh_vm_ioeventfd(struct kh_vm *vm, uint64_t addr, uint32_t len, const uint32_t *datamatch,
		    int fd, int assign)
{
	struct kvm_ioeventfd io = {0};

	io.addr = addr;
	io.len = len;
	io.fd = fd;
	if (datamatch) {
		io.datamatch = *datamatch;
		io.flags |= KVM_IOEVENTFD_FLAG_DATAMATCH;
	}
	if (!assign)
		io.flags |= KVM_IOEVENTFD_FLAG_DEASSIGN;
	if (ioctl(vm->vm_fd, KVM_IOEVENTFD, &io) < 0)
		return kvm_ioctl_err(assign ? "KVM_IOEVENTFD" : "KVM_IOEVENTFD (deassign)");
	return 0;
}

void kh_vm_request_stop(struct kh_vm *vm)
{
	__atomic_store_n(&vm->stop, 1, __ATOMIC_SEQ_CST);
}

void kh_vm_kick_out(struct kh_vm *vm)
{
	__atomic_store_n(&vm->timed_out, 1, __ATOMIC_SEQ_CST);
	__atomic_store_n(&vm->stop, 1, __ATOMIC_SEQ_CST);
	__atomic_store_n(&vm->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&vm->vcpu_thread_set, __ATOMIC_SEQ_CST))
		pthread_kill(vm->vcpu_thread, KICK_SIGNAL);
}

static void unclaimed(struct kh_vm *vm, const char *space, int is_write, uint64_t addr,
		      uint32_t size)
{
	if (++vm->unclaimed <= UNCLAIMED_LOG_MAX)
		fprintf(stderr, "vdev-kvm-host: unclaimed %s %s of %u bytes at 0x%" PRIx64 "%s\n",
			space, is_write ? "write" : "read", size, addr,
			vm->unclaimed == UNCLAIMED_LOG_MAX ? " (no more such messages)" : "");
}

static int handle_io(struct kh_vm *vm)
{
	struct kvm_run *run = vm->run;
	uint32_t size = run->io.size, count = run->io.count;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	int is_write = run->io.direction == KVM_EXIT_IO_OUT;

	/* KVM puts the data of all `count` (rep ins/outs) elements inside the
	 * run page; check anyway, the offsets come from the kernel but cost
	 * nothing to verify. */
	if (run->io.data_offset >= vm->run_size || (uint64_t)size * count >
						   vm->run_size - run->io.data_offset)
		return -EIO;
	vm->io_exits++;
	for (uint32_t i = 0; i < count; i++, data += size) {
		int r = is_write ? vdev_bus_write(vm->pio_bus, run->io.port, size, 0, data)
				 : vdev_bus_read(vm->pio_bus, run->io.port, size, 0, data);
		if (r == -ENOENT)
			unclaimed(vm, "port", is_write, run->io.port, size);
	}
	return 0;
}

static int handle_mmio(struct kh_vm *vm)
{
	struct kvm_run *run = vm->run;
	uint32_t len = run->mmio.len;
	int r;

	vm->mmio_exits++;
	if (len == 0 || len > sizeof(run->mmio.data))
		return -EIO;
	if (run->mmio.is_write) {
		r = vdev_bus_write(vm->mmio_bus, run->mmio.phys_addr, len, 0, run->mmio.data);
	} else {
		r = vdev_bus_read(vm->mmio_bus, run->mmio.phys_addr, len, 0, run->mmio.data);
		if (r == -EINVAL) /* a size the bus refuses: the guest reads ones */
			memset(run->mmio.data, 0xff, len);
	}
	if (r == -ENOENT)
		unclaimed(vm, "MMIO", run->mmio.is_write, run->mmio.phys_addr, len);
	return 0;
}

void kh_vm_dump_regs(struct kh_vm *vm)
{
	struct kvm_regs r;
	struct kvm_sregs s;

	if (ioctl(vm->vcpu_fd, KVM_GET_REGS, &r) < 0 || ioctl(vm->vcpu_fd, KVM_GET_SREGS, &s) < 0) {
		fprintf(stderr, "vdev-kvm-host: cannot read the vCPU registers: %s\n",
			strerror(errno));
		return;
	}
	fprintf(stderr,
		"  rip %016llx rsp %016llx rflags %016llx\n"
		"  rax %016llx rbx %016llx rcx %016llx rdx %016llx\n"
		"  rsi %016llx rdi %016llx rbp %016llx\n"
		"  r8  %016llx r9  %016llx r10 %016llx r11 %016llx\n"
		"  r12 %016llx r13 %016llx r14 %016llx r15 %016llx\n"
		"  cs %04x ss %04x cr0 %llx cr2 %llx cr3 %llx cr4 %llx efer %llx\n"
		"  gdt %llx/%x idt %llx/%x\n",
		r.rip, r.rsp, r.rflags, r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, r.r8,
		r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15, s.cs.selector, s.ss.selector,
		s.cr0, s.cr2, s.cr3, s.cr4, s.efer, s.gdt.base, s.gdt.limit, s.idt.base,
		s.idt.limit);
}

enum kh_vm_outcome kh_vm_run(struct kh_vm *vm)
{
	struct kvm_run *run = vm->run;

	vm->vcpu_thread = pthread_self();
	__atomic_store_n(&vm->vcpu_thread_set, 1, __ATOMIC_SEQ_CST);
	while (!__atomic_load_n(&vm->stop, __ATOMIC_SEQ_CST)) {
		int r = ioctl(vm->vcpu_fd, KVM_RUN, 0);

		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue; /* the loop condition sees a stop request */
			fprintf(stderr, "vdev-kvm-host: KVM_RUN: %s\n", strerror(errno));
			return KH_VM_ERROR;
		}
		vm->exits++;
		switch (run->exit_reason) {
		case KVM_EXIT_IO:
			r = handle_io(vm);
			break;
		case KVM_EXIT_MMIO:
			r = handle_mmio(vm);
			break;
		case KVM_EXIT_INTR:
			r = 0;
			break;
		case KVM_EXIT_SHUTDOWN:
			fprintf(stderr, "vdev-kvm-host: the guest crashed (KVM_EXIT_SHUTDOWN: "
					"triple fault, or a fault without a handler)\n");
			kh_vm_dump_regs(vm);
			return KH_VM_CRASHED;
		case KVM_EXIT_FAIL_ENTRY:
			fprintf(stderr, "vdev-kvm-host: KVM_EXIT_FAIL_ENTRY, reason 0x%llx\n",
				(unsigned long long)run->fail_entry.hardware_entry_failure_reason);
			kh_vm_dump_regs(vm);
			return KH_VM_CRASHED;
		case KVM_EXIT_INTERNAL_ERROR:
			fprintf(stderr, "vdev-kvm-host: KVM_EXIT_INTERNAL_ERROR, suberror %u\n",
				run->internal.suberror);
			kh_vm_dump_regs(vm);
			return KH_VM_CRASHED;
		case KVM_EXIT_HLT:
			fprintf(stderr, "vdev-kvm-host: the guest halted (it must power off "
					"through the test device)\n");
			kh_vm_dump_regs(vm);
			return KH_VM_CRASHED;
		default:
			fprintf(stderr, "vdev-kvm-host: unexpected exit reason %u\n",
				run->exit_reason);
			kh_vm_dump_regs(vm);
			return KH_VM_ERROR;
		}
		if (r < 0) {
			fprintf(stderr, "vdev-kvm-host: bad exit data from KVM\n");
			return KH_VM_ERROR;
		}
	}
	return __atomic_load_n(&vm->timed_out, __ATOMIC_SEQ_CST) ? KH_VM_TIMEOUT : KH_VM_STOPPED;
}
