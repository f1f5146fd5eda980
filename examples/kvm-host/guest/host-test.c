/* SPDX-License-Identifier: MIT */
/*
 * The test guest's logic without KVM. This file stands in for platform.c
 * and entry.S: its "guest" is tg_main on this thread, its "VMM" the
 * library's virtio-blk over a RAM disk behind virtio-mmio on an MMIO bus,
 * or behind virtio-pci on a PCI root whose ECAM window is on that bus, with
 * a device thread that reaps backend completions and delivers the device's
 * interrupts by calling tg_irq_handler. Guest memory is registered at its
 * own host address, so the guest's pointers are its guest-physical
 * addresses, as under KVM's identity mapping.
 *
 * Every mode runs once against a fresh device on each transport, and the
 * host side checks what the guest claims (the disk holds the pattern,
 * interrupts were taken on the vectors it programmed, marks were written,
 * BAR 4 moved). Then the guest must notice a device that corrupts data or
 * loses interrupts, a read-only disk, and bad boot info.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>

#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>
#include <linux/virtio_ring.h>

#include <virtio-dev/virtio-dev.h>

#include "../tg-pattern.h"
#include "tg.h"

#define RAM_SIZE (8u << 20)
#define DISK_SIZE (4u << 20)
#define MAX_MARKS 16u
#define PCI_ADDR VDEV_PCI_ADDR(0, 3, 0)
#define PCI_WINDOW_BASE 0xc0000000ull
#define PCI_WINDOW_SIZE 0x10000000ull

#define MMIO 0 /* the transports */
#define PCI 1
#define NUM_TRANSPORTS 2
#define ON_MMIO (1u << MMIO) /* struct test_case.transports */
#define ON_PCI (1u << PCI)
#define ON_BOTH (ON_MMIO | ON_PCI)

/* What a run may do to the guest on purpose. */
#define FAULT_CORRUPT 0x1u   /* flip a byte of block 5 once the guest flushed */
#define FAULT_DROP_IRQ 0x2u  /* never deliver an interrupt */
#define FAULT_READONLY 0x4u  /* a read-only disk */
#define FAULT_READY_LIES 0x8u /* QueueReady always reads 1 */

struct vmm {
	uint32_t faults;
	int transport;
	uint8_t *ram;
	vdev_mem *mem;
	vdev_blk_backend *backend;
	vdev_blk *blk;
	vdev_bus *bus;
	/* virtio-mmio */
	vdev_irq *irq;
	vdev_mmio *mmio;
	/* virtio-pci: MSI-X messages end in vector_fd[vector - TG_IRQ_VECTOR] */
	vdev_pci_root *root;
	vdev_virtio_pci *vpci;
	int vector_fd[TG_IRQ_VECTORS];
	uint64_t bar4_first, bar4_last; /* where the guest placed BAR 4 first and last */
	uint64_t irqs[TG_IRQ_VECTORS];   /* interrupts delivered, per vector */
	pthread_t thread;
	int stop_fd;
	int irq_on; /* the guest installed its handler */
	/* what the guest did */
	jmp_buf power_off;
	uint32_t exit_code, status, nmarks, marks[MAX_MARKS];
	int status_set;
	uint64_t eois;
	char failure[256];
};

static struct vmm vm;

/* ---- the platform, hosted ----------------------------------------------- */

void tg_put_line(const char *line)
{
	printf("guest: %s\n", line);
	fflush(stdout);
	if ((vm.faults & FAULT_CORRUPT) && !strcmp(line, "verify: flushed")) {
		uint8_t *disk = vdev_blk_backend_memory_data(vm.backend);

		disk[5 * TG_BLOCK + 100] ^= 0x40;
	}
}

void tg_set_status(uint32_t status)
{
	vm.status = status;
	vm.status_set = 1;
}

void tg_mark(uint32_t mark)
{
	if (vm.nmarks < MAX_MARKS)
		vm.marks[vm.nmarks++] = mark;
}

void tg_power_off(uint32_t code)
{
	vm.exit_code = code;
	longjmp(vm.power_off, 1);
}

uint64_t tg_mmio_read(uint64_t gpa, uint32_t width)
{
	uint8_t b[8] = {0};
	uint64_t v = 0;

	if ((vm.faults & FAULT_READY_LIES) && gpa == TG_MMIO_BASE + VIRTIO_MMIO_QUEUE_READY)
		return 1;
	if (width > sizeof(b))
		return 0;
	/* A refused access reads zeros, as a VMM answers an MMIO exit. */
	(void)vdev_bus_read(vm.bus, gpa, width, 0, b);
	for (uint32_t i = width; i-- > 0;)
		v = v << 8 | b[i];
	return v;
}

void tg_mmio_write(uint64_t gpa, uint32_t width, uint64_t value)
{
	uint8_t b[8];

	for (uint32_t i = 0; i < width && i < sizeof(b); i++)
		b[i] = (uint8_t)(value >> (8 * i));
	(void)vdev_bus_write(vm.bus, gpa, width, 0, b);
}

void tg_irq_install(void)
{
	__atomic_store_n(&vm.irq_on, 1, __ATOMIC_RELEASE);
}

void tg_irq_eoi(void)
{
	__atomic_add_fetch(&vm.eois, 1, __ATOMIC_RELAXED);
}

/* ---- the VMM -------------------------------------------------------------- */

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void fail(const char *fmt, ...)
{
	va_list ap;

	if (vm.failure[0])
		return;
	va_start(ap, fmt);
	vsnprintf(vm.failure, sizeof(vm.failure), fmt, ap);
	va_end(ap);
}

/* No PCIe root port here (hotplug runs under KVM only): a request is a
 * guest bug. */
void tg_hotplug_request(uint32_t op)
{
	fail("the guest asked for hotplug (%u); no mode run here does", op);
}

/* Backend completions and interrupts, as a VMM's event loop has them. */
static void *device_thread(void *arg)
{
	int cfd = vdev_blk_completion_fd(vm.blk, 0);
	struct pollfd p[2 + TG_IRQ_VECTORS];
	uint32_t n = 0, first_irq, i;

	(void)arg;
	p[n++] = (struct pollfd){.fd = vm.stop_fd, .events = POLLIN};
	p[n++] = (struct pollfd){.fd = cfd, .events = POLLIN}; /* -1: ignored */
	first_irq = n;
	if (vm.transport == MMIO)
		p[n++] = (struct pollfd){.fd = vdev_irq_eventfd(vm.irq, VDEV_IRQ_QUEUE, 0),
					 .events = POLLIN};
	else
		for (i = 0; i < TG_IRQ_VECTORS; i++)
			p[n++] = (struct pollfd){.fd = vm.vector_fd[i], .events = POLLIN};
	for (;;) {
		uint64_t v;

		if (poll(p, n, -1) < 0 && errno != EINTR)
			break;
		if (p[0].revents)
			break;
		if (cfd >= 0 && p[1].revents)
			vdev_blk_process_completions(vm.blk, 0);
		for (i = first_irq; i < n; i++) {
			if ((p[i].revents & POLLIN) && read(p[i].fd, &v, sizeof(v)) == sizeof(v) &&
			    __atomic_load_n(&vm.irq_on, __ATOMIC_ACQUIRE) &&
			    !(vm.faults & FAULT_DROP_IRQ)) {
				vm.irqs[i - first_irq]++;
				tg_irq_handler(i - first_irq);
			}
		}
	}
	return NULL;
}

/* MSI-X: what the guest programmed must be an interrupt it has a gate for. */
static int msi_signal(void *opaque, uint32_t vector, uint64_t address, uint32_t data)
{
	uint64_t one = 1;

	(void)opaque;
	if (address != TG_APIC_GPA || data < TG_IRQ_VECTOR ||
	    data - TG_IRQ_VECTOR >= TG_IRQ_VECTORS) {
		fail("MSI-X vector %u: message 0x%lx/0x%x is no interrupt of the guest", vector,
		     address, data);
		return -EINVAL;
	}
	if (write(vm.vector_fd[data - TG_IRQ_VECTOR], &one, sizeof(one)) != sizeof(one))
		return -errno;
	return 0;
}

static const struct vdev_pci_msi_ops msi_ops = {
	.struct_size = sizeof(struct vdev_pci_msi_ops),
	.signal = msi_signal,
};

static void bar_moved(void *opaque, const struct vdev_pci_bar_move *move)
{
	(void)opaque;
	if (move->bar != VDEV_VIRTIO_PCI_BAR_MODERN || !move->new_base)
		return;
	if (!vm.bar4_first)
		vm.bar4_first = move->new_base;
	vm.bar4_last = move->new_base;
}

static const struct vdev_pci_root_ops root_ops = {
	.struct_size = sizeof(struct vdev_pci_root_ops),
	.bar_moved = bar_moved,
};

static int vmm_mmio(vdev_device *dev)
{
	struct vdev_mmio_config mcfg = VDEV_MMIO_CONFIG_INIT;

	mcfg.base = TG_MMIO_BASE;
	if (vdev_irq_new_eventfd(vdev_device_num_queues(dev), VDEV_IRQ_F_SHARED, &vm.irq) < 0 ||
	    vdev_mmio_new(&mcfg, dev, vm.irq, &vm.mmio) < 0 ||
	    vdev_bus_insert(vm.bus, TG_MMIO_BASE, VDEV_MMIO_SIZE, vdev_mmio_bus_ops(), vm.mmio) < 0)
		return -1;
	return 0;
}

static int vmm_pci(vdev_device *dev)
{
	struct vdev_pci_root_config rcfg = VDEV_PCI_ROOT_CONFIG_INIT;
	struct vdev_virtio_pci_config pcfg = VDEV_VIRTIO_PCI_CONFIG_INIT;

	for (uint32_t i = 0; i < TG_IRQ_VECTORS; i++) {
		vm.vector_fd[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (vm.vector_fd[i] < 0)
			return -1;
	}
	rcfg.num_buses = 1;
	rcfg.mmio_bus = vm.bus;
	rcfg.mmio32_base = PCI_WINDOW_BASE;
	rcfg.mmio32_size = PCI_WINDOW_SIZE;
	rcfg.ops = &root_ops;
	pcfg.msi_ops = &msi_ops;
	if (vdev_pci_root_new(&rcfg, &vm.root) < 0 ||
	    vdev_bus_insert(vm.bus, TG_ECAM_BASE, VDEV_PCI_ECAM_BUS_SIZE, vdev_pci_root_ecam_ops(),
			    vm.root) < 0 ||
	    vdev_virtio_pci_new(&pcfg, dev, &vm.vpci) < 0 ||
	    vdev_pci_root_add(vm.root, PCI_ADDR, vdev_virtio_pci_bus_ops(), vm.vpci) < 0)
		return -1;
	return 0;
}

static int vmm_start(uint32_t faults, int transport)
{
	struct vdev_blk_config bcfg = VDEV_BLK_CONFIG_INIT;
	vdev_device *dev;

	memset(&vm, 0, sizeof(vm));
	vm.faults = faults;
	vm.transport = transport;
	vm.stop_fd = -1;
	for (uint32_t i = 0; i < TG_IRQ_VECTORS; i++)
		vm.vector_fd[i] = -1;
	vm.ram = aligned_alloc(4096, RAM_SIZE);
	if (!vm.ram)
		return -ENOMEM;
	memset(vm.ram, 0, RAM_SIZE);
	if (vdev_mem_new(&vm.mem) < 0 ||
	    vdev_mem_add_region(vm.mem, (uintptr_t)vm.ram, RAM_SIZE, vm.ram, 0) < 0 ||
	    vdev_blk_backend_new_memory(DISK_SIZE, faults & FAULT_READONLY ?
						       VDEV_BLK_BACKEND_F_READONLY : 0,
					&vm.backend) < 0)
		return -1;
	memcpy(bcfg.serial, "guest-host-test", 15);
	if (vdev_blk_new(&bcfg, vm.backend, &vm.blk) < 0)
		return -1;
	dev = vdev_blk_device(vm.blk);
	if (vdev_device_set_memory(dev, vm.mem) < 0 || vdev_bus_new(VDEV_BUS_MMIO, &vm.bus) < 0 ||
	    (transport == PCI ? vmm_pci(dev) : vmm_mmio(dev)) < 0)
		return -1;
	vm.stop_fd = eventfd(0, EFD_CLOEXEC);
	if (vm.stop_fd < 0 || pthread_create(&vm.thread, NULL, device_thread, NULL) != 0) {
		if (vm.stop_fd >= 0)
			close(vm.stop_fd);
		vm.stop_fd = -1;
		return -1;
	}
	return 0;
}

static void vmm_stop(void)
{
	uint64_t one = 1;

	if (vm.stop_fd >= 0) {
		if (write(vm.stop_fd, &one, sizeof(one)) != sizeof(one))
			abort();
		pthread_join(vm.thread, NULL);
		close(vm.stop_fd);
	}
	if (vm.root)
		vdev_bus_remove(vm.bus, TG_ECAM_BASE);
	vdev_pci_root_free(vm.root); /* takes the function's BARs off the bus */
	vdev_virtio_pci_free(vm.vpci);
	vdev_bus_free(vm.bus);
	vdev_mmio_free(vm.mmio);
	vdev_blk_free(vm.blk);
	vdev_blk_backend_free(vm.backend);
	vdev_irq_free(vm.irq);
	vdev_mem_free(vm.mem);
	for (uint32_t i = 0; i < TG_IRQ_VECTORS; i++)
		if (vm.vector_fd[i] >= 0)
			close(vm.vector_fd[i]);
	free(vm.ram);
}

static uint64_t tsc_khz(void)
{
	struct timespec a, b;
	uint64_t t0, t1, ns;

	clock_gettime(CLOCK_MONOTONIC, &a);
	t0 = tg_rdtsc();
	do {
		clock_gettime(CLOCK_MONOTONIC, &b);
		ns = (uint64_t)(b.tv_sec - a.tv_sec) * 1000000000u + (uint64_t)b.tv_nsec -
		     (uint64_t)a.tv_nsec;
	} while (ns < 20000000u);
	t1 = tg_rdtsc();
	return (t1 - t0) * 1000000u / ns;
}

static void boot_info(struct tg_boot_info *bi, uint32_t mode)
{
	memset(bi, 0, sizeof(*bi));
	bi->magic = TG_BOOT_MAGIC;
	bi->version = TG_BOOT_VERSION;
	bi->mode = mode;
	bi->seed = 0x5eed0001;
	/* "RAM" is the registered buffer; everything above its end is not. */
	bi->ram_size = (uintptr_t)vm.ram + RAM_SIZE;
	bi->heap_start = (uintptr_t)vm.ram;
	bi->heap_end = (uintptr_t)vm.ram + RAM_SIZE;
	bi->tsc_khz = tsc_khz();
	bi->num_devices = 1;
	if (vm.transport == PCI) {
		bi->devices[0].kind = TG_DEV_PCI_ECAM;
		bi->devices[0].base = TG_ECAM_BASE;
		bi->devices[0].size = VDEV_PCI_ECAM_BUS_SIZE;
		bi->pci_mem_base = PCI_WINDOW_BASE;
		bi->pci_mem_size = PCI_WINDOW_SIZE;
	} else {
		bi->devices[0].kind = TG_DEV_VIRTIO_MMIO;
		bi->devices[0].virtio_id = 2;
		bi->devices[0].base = TG_MMIO_BASE;
		bi->devices[0].size = VDEV_MMIO_SIZE;
	}
	bi->verify_blocks = 100;
	bi->bench_ms = 50;
	bi->num_depths = 2;
	bi->depths[0] = 1;
	bi->depths[1] = 16;
}

/* Run the guest; returns its exit code, or -1 if it never powered off
 * properly (no verdict). */
static int run_guest(struct tg_boot_info *bi)
{
	if (setjmp(vm.power_off) == 0)
		tg_main(bi);
	if (!vm.status_set && bi->magic == TG_BOOT_MAGIC)
		fail("powered off without a verdict");
	return (int)vm.exit_code;
}

/* ---- the cases ------------------------------------------------------------ */

#define BIT(n) (1ull << (n))

static void check_verify(const struct tg_boot_info *bi)
{
	const uint8_t *disk = vdev_blk_backend_memory_data(vm.backend);
	uint64_t f = (uint64_t)bi->features_hi << 32 | bi->features_lo;
	uint64_t want = BIT(VIRTIO_F_VERSION_1) | BIT(VIRTIO_RING_F_EVENT_IDX) |
			BIT(VIRTIO_RING_F_INDIRECT_DESC);
	uint32_t i;

	for (i = 0; i < bi->verify_blocks; i++) {
		const uint8_t *block = disk + (size_t)i * TG_BLOCK;

		if (tg_pattern_check(block, bi->seed, i) != TG_PATTERN_WORDS) {
			fail("block %u on the disk does not hold the pattern", i);
			return;
		}
	}
	for (i = bi->verify_blocks * TG_BLOCK; i < DISK_SIZE; i++) {
		if (disk[i]) {
			fail("byte %u past the verify blocks was written", i);
			return;
		}
	}
	if ((f & want) != want || (f & BIT(VIRTIO_F_RING_PACKED)))
		fail("features 0x%lx: want VERSION_1, EVENT_IDX, INDIRECT_DESC, split", f);
	if (vdev_device_acked_features(vdev_blk_device(vm.blk)) != 0 && !vm.failure[0])
		fail("the guest left the device running (features still acked)");
	if (vm.transport == PCI && (!vm.bar4_first || vm.bar4_last == vm.bar4_first))
		fail("BAR 4 was placed at 0x%lx and never moved (last 0x%lx)", vm.bar4_first,
		     vm.bar4_last);
}

static void check_irq(const struct tg_boot_info *bi)
{
	check_verify(bi);
	if (!bi->irqs_seen || vm.eois != bi->irqs_seen)
		fail("irqs_seen %lu, EOIs %lu", bi->irqs_seen, vm.eois);
	/* MSI-X: config changes on vector 0 (none here), the queue on 1. */
	if (vm.transport == PCI && (vm.irqs[0] || vm.irqs[1] != bi->irqs_seen))
		fail("MSI-X: %lu config and %lu queue interrupts, want 0 and %lu", vm.irqs[0],
		     vm.irqs[1], bi->irqs_seen);
}

static void check_bench(const struct tg_boot_info *bi)
{
	uint32_t i;

	if (vm.nmarks != 4)
		fail("%u marks, want 4", vm.nmarks);
	for (i = 0; i < vm.nmarks; i++) {
		if (vm.marks[i] != i)
			fail("mark %u is %u", i, vm.marks[i]);
	}
	for (i = 0; i < 2; i++) {
		if (!bi->ops_done[i] || bi->kicks[i] > bi->ops_done[i])
			fail("depth %u: %lu reads, %lu kicks", bi->depths[i], bi->ops_done[i],
			     bi->kicks[i]);
	}
}

static void check_first_io(const struct tg_boot_info *bi)
{
	(void)bi;
	if (vm.nmarks != 1 || vm.marks[0] != 0)
		fail("first-io: %u marks, want mark 0", vm.nmarks);
}

static void check_hostile(const struct tg_boot_info *bi)
{
	struct vdev_blk_stats st = VDEV_BLK_STATS_INIT;

	/* Only the control read may have reached the disk. */
	if (vdev_blk_get_stats(vm.blk, &st) < 0 || st.writes || st.reads != 1)
		fail("hostile %u: %lu reads, %lu writes; want the control read only", bi->hostile,
		     st.reads, st.writes);
}

static void bad_magic(struct tg_boot_info *bi)
{
	bi->magic ^= 1;
}

static void too_many_blocks(struct tg_boot_info *bi)
{
	bi->verify_blocks = DISK_SIZE / TG_BLOCK + 1;
}

/* The guest waits 10 s for a lost interrupt; make its clock run 20 times
 * faster so that this costs half a second. */
static void fast_clock(struct tg_boot_info *bi)
{
	bi->tsc_khz /= 20;
}

/* The guest is told of less RAM than the device maps: buffers "outside
 * RAM" then work, and a bad-desc guest must call that a failure. */
static void less_ram(struct tg_boot_info *bi)
{
	bi->ram_size -= 1u << 20;
	bi->heap_end = bi->ram_size;
}

struct test_case {
	const char *name;
	uint32_t transports; /* ON_*: run once on each */
	uint32_t mode, hostile, faults;
	int exit_code; /* what the guest must exit with */
	void (*tweak)(struct tg_boot_info *bi);
	void (*check)(const struct tg_boot_info *bi);
};

static const struct test_case cases[] = {
	{"verify", ON_BOTH, TG_MODE_VERIFY, 0, 0, 0, NULL, check_verify},
	{"irq", ON_BOTH, TG_MODE_IRQ, 0, 0, 0, NULL, check_irq},
	{"bench", ON_BOTH, TG_MODE_BENCH, 0, 0, 0, NULL, check_bench},
	{"first-io", ON_BOTH, TG_MODE_FIRST_IO, 0, 0, 0, NULL, check_first_io},
	{"hostile bad-desc", ON_BOTH, TG_MODE_HOSTILE, TG_HOSTILE_BAD_DESC, 0, 0, NULL,
	 check_hostile},
	{"hostile queue-size0", ON_BOTH, TG_MODE_HOSTILE, TG_HOSTILE_QUEUE_SIZE0, 0, 0, NULL,
	 check_hostile},
	{"hostile order", ON_BOTH, TG_MODE_HOSTILE, TG_HOSTILE_ORDER, 0, 0, NULL, check_hostile},
	{"hostile loop", ON_BOTH, TG_MODE_HOSTILE, TG_HOSTILE_LOOP, 0, 0, NULL, check_hostile},
	/* Here the device takes each chain inside the kick, before the guest can
	 * change it: every try is refused with an error status. */
	{"hostile grow-race", ON_BOTH, TG_MODE_HOSTILE, TG_HOSTILE_GROW_RACE, 0, 0, NULL,
	 check_hostile},
	{"hostile bar-overlap", ON_PCI, TG_MODE_HOSTILE, TG_HOSTILE_BAR_OVERLAP, 0, 0, NULL,
	 check_hostile},
	/* The guest must see through these. */
	{"verify, corrupting disk", ON_BOTH, TG_MODE_VERIFY, 0, FAULT_CORRUPT, 1, NULL, NULL},
	{"verify, read-only disk", ON_BOTH, TG_MODE_VERIFY, 0, FAULT_READONLY, 1, NULL, NULL},
	{"verify, disk too small", ON_BOTH, TG_MODE_VERIFY, 0, 0, 1, too_many_blocks, NULL},
	{"irq, interrupts lost", ON_BOTH, TG_MODE_IRQ, 0, FAULT_DROP_IRQ, 1, fast_clock, NULL},
	{"hostile bad-desc, device takes any buffer", ON_BOTH, TG_MODE_HOSTILE,
	 TG_HOSTILE_BAD_DESC, 0, 1, less_ram, NULL},
	{"hostile queue-size0, QueueReady lies", ON_MMIO, TG_MODE_HOSTILE, TG_HOSTILE_QUEUE_SIZE0,
	 FAULT_READY_LIES, 1, NULL, NULL},
	{"hostile order, QueueReady lies", ON_MMIO, TG_MODE_HOSTILE, TG_HOSTILE_ORDER,
	 FAULT_READY_LIES, 1, NULL, NULL},
	{"hostile bar-overlap without PCI", ON_MMIO, TG_MODE_HOSTILE, TG_HOSTILE_BAR_OVERLAP, 0, 1,
	 NULL, NULL},
	{"bad boot info", ON_MMIO, TG_MODE_VERIFY, 0, 0, 2, bad_magic, NULL},
	{"unknown mode", ON_MMIO, 99, 0, 0, 1, NULL, NULL},
	{"unknown hostile case", ON_MMIO, TG_MODE_HOSTILE, 99, 0, 1, NULL, NULL},
};

int main(void)
{
	static const char *const names[NUM_TRANSPORTS] = {"virtio-mmio", "virtio-pci"};
	uint32_t i, runs = 0, failed = 0;
	int t;

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		for (t = 0; t < NUM_TRANSPORTS; t++) {
			const struct test_case *c = &cases[i];
			struct tg_boot_info bi;
			int code;

			if (!(c->transports & (1u << t)))
				continue;
			runs++;
			printf("=== %s, %s\n", c->name, names[t]);
			if (vmm_start(c->faults, t) < 0) {
				printf("FAIL %s: cannot set the device up\n", c->name);
				return 1;
			}
			boot_info(&bi, c->mode);
			bi.hostile = c->hostile;
			if (c->tweak)
				c->tweak(&bi);
			code = run_guest(&bi);
			if (code != c->exit_code)
				fail("exit code %d, want %d", code, c->exit_code);
			else if (c->check)
				c->check(&bi);
			vmm_stop();
			if (vm.failure[0]) {
				printf("FAIL %s, %s: %s\n", c->name, names[t], vm.failure);
				failed++;
			} else {
				printf("ok %s, %s\n", c->name, names[t]);
			}
		}
	}
	printf("%u of %u runs failed\n", failed, runs);
	return failed ? 1 : 0;
}
