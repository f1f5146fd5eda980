/* SPDX-License-Identifier: MIT */
/*
 * vdev-kvm-host: a small VMM on /dev/kvm that boots the project's test guest
 * (examples/kvm-host/guest, contract in tg-abi.h) with virtio-blk disks from
 * libvirtio-dev behind virtio-mmio or virtio-pci, and reports what the guest
 * and the devices saw. See doc/kvm-host.md.
 *
 *   vm.c       KVM: VM, RAM, vCPU loop, MSI routes, ioeventfd / irqfd
 *   loader.c   the guest ELF into RAM (no KVM in there)
 *   boot.c     the test guest's tables and CPL-3 long-mode registers
 *   testdev.c  the port-I/O test device (console, verdict, marks, power)
 *   pciroot.c  the PCI host bridge (ECAM, 0xCF8/0xCFC, BAR windows)
 *   hotplug.c  the PCIe root port and the control thread that hot-plugs a disk
 *   blkdev.c   the disks and the I/O thread
 *   native.c   the plain-liburing reference for the benchmark
 *
 * Exit status: 0 the guest passed (and the host's own checks too), 1 setup
 * failed (no /dev/kvm, missing file, a KVM call), 2 bad command line, 3 the
 * guest or a host check failed, 4 the guest crashed, 5 time limit, 77 the
 * guest skipped.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>

#include <virtio-dev/virtio-dev.h>

#include "blkdev.h"
#include "boot.h"
#include "hotplug.h"
#include "loader.h"
#include "native.h"
#include "pciroot.h"
#include "testdev.h"
#include "tg-abi.h"
#include "tg-pattern.h"
#include "vm.h"

#define EXIT_SETUP 1
#define EXIT_USAGE 2
#define EXIT_GUEST_FAILED 3
#define EXIT_CRASHED 4
#define EXIT_TIMEOUT 5
#define EXIT_SKIPPED 77

struct options {
	const char *kvm_path;
	const char *guest;
	const char *mode_name;
	uint64_t mem_mib;
	int hugepages;
	uint32_t vcpus;
	struct kh_disk_opt disks[TG_MAX_DEVICES];
	uint32_t num_disks;
	uint32_t mode, hostile;
	uint64_t seed;
	uint32_t verify_blocks, bench_ms;
	uint32_t depths[TG_MAX_DEPTHS], num_depths;
	uint64_t disk_blocks;
	uint64_t poll_us;
	int vcpu_cpu, io_cpu; /* -1: wherever the scheduler likes */
	int cpus_auto;
	int native;
	uint32_t timeout_s;
	int verbose;
};

static const struct {
	const char *name;
	uint32_t mode, hostile;
} modes[] = {
	{"verify", TG_MODE_VERIFY, 0},
	{"bench", TG_MODE_BENCH, 0},
	{"irq", TG_MODE_IRQ, 0},
	{"first-io", TG_MODE_FIRST_IO, 0},
	{"hostile=bad-desc", TG_MODE_HOSTILE, TG_HOSTILE_BAD_DESC},
	{"hostile=queue-size0", TG_MODE_HOSTILE, TG_HOSTILE_QUEUE_SIZE0},
	{"hostile=order", TG_MODE_HOSTILE, TG_HOSTILE_ORDER},
	{"hostile=loop", TG_MODE_HOSTILE, TG_HOSTILE_LOOP},
	{"hostile=grow-race", TG_MODE_HOSTILE, TG_HOSTILE_GROW_RACE},
	{"hostile=bar-overlap", TG_MODE_HOSTILE, TG_HOSTILE_BAR_OVERLAP},
	{"hotplug", TG_MODE_HOTPLUG, 0},
	{"hostile=slot-power", TG_MODE_HOSTILE, TG_HOSTILE_SLOT_POWER},
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: vdev-kvm-host [options]\n"
		"  --guest PATH        the test guest ELF (default: guest/vdev-test-guest next to\n"
		"                      this program)\n"
		"  --blk FILE[,ro][,transport=mmio|pci][,backend=io_uring|file][,hotplug]\n"
		"                      a virtio-blk disk (repeatable, up to %u); disk i is\n"
		"                      virtio-mmio at 0x%llx + i * 0x1000, or PCI 00:(i+1).0;\n"
		"                      hotplug (disk 0, transport=pci): 01:00.0 behind the\n"
		"                      PCIe root port 00:1f.0, plugged when the guest asks\n"
		"  --mode M            verify (default), irq, bench, first-io,\n"
		"                      hostile=bad-desc|queue-size0|order|loop|grow-race,\n"
		"                      hostile=bar-overlap (virtio-pci),\n"
		"                      hotplug, hostile=slot-power (a hotplug disk 0)\n"
		"  --seed N            pattern seed (verify, irq; default 1)\n"
		"  --verify-blocks N   4 KiB blocks the verify workload writes (default 64)\n"
		"  --bench-ms N        bench: milliseconds per depth (default 1000)\n"
		"  --depths D1,D2..    bench: queue depths (default 1,32; at most %u)\n"
		"  --disk-blocks N     bench: read from the first N 4 KiB blocks (default: all)\n"
		"  --native            bench: also run plain liburing on disk 0, same depth/time\n"
		"  --poll-us N         I/O thread polls the rings N us after work (default 50)\n"
		"  --cpus V,I|auto|none\n"
		"                      pin the vCPU thread to CPU V, the I/O thread to CPU I;\n"
		"                      auto (default): the first two CPUs this process may use\n"
		"  --mem MiB           guest RAM (default 64, %u..%u)\n"
		"  --hugepages         back guest RAM with huge pages (falls back if none)\n"
		"  --vcpus N           only 1: the test guest runs on one vCPU\n"
		"  --timeout S         kill a guest that runs longer (default 60 s)\n"
		"  --verbose           the library's debug log\n"
		"  --kvm-device PATH   the KVM device (default /dev/kvm)\n"
		"exit: 0 pass, 1 setup error, 2 usage, 3 guest/check failed, 4 guest crashed,\n"
		"      5 timeout, 77 guest skipped\n",
		TG_MAX_DEVICES, (unsigned long long)TG_MMIO_BASE, TG_MAX_DEPTHS,
		(unsigned)(TG_MIN_RAM >> 20), KH_RAM_MAX_MIB);
}

__attribute__((format(printf, 1, 2))) static int bad_option(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "vdev-kvm-host: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	usage(stderr);
	return -1;
}

static int parse_u64(const char *s, uint64_t max, uint64_t *v)
{
	char *end;
	unsigned long long x;

	if (!s || !*s || *s == '-')
		return -1;
	errno = 0;
	x = strtoull(s, &end, 0);
	if (errno || *end || x > max)
		return -1;
	*v = x;
	return 0;
}

static int parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *v)
{
	uint64_t x;

	if (parse_u64(s, max, &x) < 0 || x < min)
		return -1;
	*v = (uint32_t)x;
	return 0;
}

static int parse_blk(char *spec, struct kh_disk_opt *d)
{
	char *save = NULL, *tok = strtok_r(spec, ",", &save);

	if (!tok || !*tok)
		return bad_option("--blk needs a file name");
	d->path = tok;
	d->backend = KH_BACKEND_URING;
	d->transport = KH_TRANSPORT_MMIO;
	while ((tok = strtok_r(NULL, ",", &save))) {
		if (strcmp(tok, "ro") == 0)
			d->readonly = 1;
		else if (strcmp(tok, "transport=mmio") == 0)
			d->transport = KH_TRANSPORT_MMIO;
		else if (strcmp(tok, "transport=pci") == 0)
			d->transport = KH_TRANSPORT_PCI;
		else if (strcmp(tok, "backend=io_uring") == 0)
			d->backend = KH_BACKEND_URING;
		else if (strcmp(tok, "backend=file") == 0)
			d->backend = KH_BACKEND_FILE;
		else if (strcmp(tok, "hotplug") == 0)
			d->hotplug = 1;
		else
			return bad_option("--blk: unknown option '%s'", tok);
	}
	if (d->hotplug && d->transport != KH_TRANSPORT_PCI)
		return bad_option("--blk: hotplug needs transport=pci");
	return 0;
}

static int parse_depths(char *list, struct options *o)
{
	char *save = NULL, *tok;

	o->num_depths = 0;
	for (tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (o->num_depths == TG_MAX_DEPTHS)
			return bad_option("--depths: at most 4 depths");
		if (parse_u32(tok, 1, 1024, &o->depths[o->num_depths]) < 0)
			return bad_option("--depths: '%s' is not a depth in 1..1024", tok);
		o->num_depths++;
	}
	if (o->num_depths == 0)
		return bad_option("--depths: empty list");
	return 0;
}

static int parse_cpus(char *list, struct options *o)
{
	char *comma = strchr(list, ',');
	uint32_t v, i;

	o->cpus_auto = strcmp(list, "auto") == 0;
	o->vcpu_cpu = o->io_cpu = -1;
	if (o->cpus_auto || strcmp(list, "none") == 0)
		return 0;
	if (!comma)
		return -1;
	*comma = 0;
	if (parse_u32(list, 0, CPU_SETSIZE - 1, &v) < 0 ||
	    parse_u32(comma + 1, 0, CPU_SETSIZE - 1, &i) < 0)
		return -1;
	o->vcpu_cpu = (int)v;
	o->io_cpu = (int)i;
	return 0;
}

static int is_hotplug_mode(const struct options *o)
{
	return o->mode == TG_MODE_HOTPLUG || o->hostile == TG_HOSTILE_SLOT_POWER;
}

static int parse_options(int argc, char **argv, struct options *o)
{
	enum { O_GUEST = 256, O_MEM, O_HUGE, O_VCPUS, O_BLK, O_MODE, O_SEED, O_VBLOCKS,
	       O_BENCH_MS, O_DEPTHS, O_DISK_BLOCKS, O_POLL, O_NATIVE, O_TIMEOUT, O_VERBOSE,
	       O_KVM, O_CPUS, O_HELP };
	static const struct option lo[] = {
		{"guest", required_argument, NULL, O_GUEST},
		{"mem", required_argument, NULL, O_MEM},
		{"hugepages", no_argument, NULL, O_HUGE},
		{"vcpus", required_argument, NULL, O_VCPUS},
		{"blk", required_argument, NULL, O_BLK},
		{"mode", required_argument, NULL, O_MODE},
		{"seed", required_argument, NULL, O_SEED},
		{"verify-blocks", required_argument, NULL, O_VBLOCKS},
		{"bench-ms", required_argument, NULL, O_BENCH_MS},
		{"depths", required_argument, NULL, O_DEPTHS},
		{"disk-blocks", required_argument, NULL, O_DISK_BLOCKS},
		{"poll-us", required_argument, NULL, O_POLL},
		{"native", no_argument, NULL, O_NATIVE},
		{"timeout", required_argument, NULL, O_TIMEOUT},
		{"verbose", no_argument, NULL, O_VERBOSE},
		{"kvm-device", required_argument, NULL, O_KVM},
		{"cpus", required_argument, NULL, O_CPUS},
		{"help", no_argument, NULL, O_HELP},
		{NULL, 0, NULL, 0},
	};
	int c;

	o->mem_mib = 64;
	o->vcpus = 1;
	o->mode = TG_MODE_VERIFY;
	o->mode_name = "verify";
	o->seed = 1;
	o->verify_blocks = 64;
	o->bench_ms = 1000;
	o->depths[0] = 1;
	o->depths[1] = 32;
	o->num_depths = 2;
	o->poll_us = 50;
	o->vcpu_cpu = o->io_cpu = -1;
	o->cpus_auto = 1;
	o->timeout_s = 60;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		const char *a = optarg;
		size_t i;

		switch (c) {
		case O_GUEST:
			o->guest = a;
			break;
		case O_MEM:
			if (parse_u64(a, KH_RAM_MAX_MIB, &o->mem_mib) < 0 ||
			    o->mem_mib < (TG_MIN_RAM >> 20) || o->mem_mib % 2)
				return bad_option("--mem: '%s' is not an even number in %u..%u",
						  a, (unsigned)(TG_MIN_RAM >> 20), KH_RAM_MAX_MIB);
			break;
		case O_HUGE:
			o->hugepages = 1;
			break;
		case O_VCPUS:
			if (parse_u32(a, 1, 1024, &o->vcpus) < 0)
				return bad_option("--vcpus: '%s' is not a number", a);
			if (o->vcpus != 1)
				return bad_option("--vcpus %s: the test guest runs on one vCPU", a);
			break;
		case O_BLK:
			if (o->num_disks == TG_MAX_DEVICES)
				return bad_option("--blk: at most 8 disks");
			if (parse_blk(optarg, &o->disks[o->num_disks]) < 0)
				return -1;
			o->num_disks++;
			break;
		case O_MODE:
			for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
				if (strcmp(a, modes[i].name) == 0)
					break;
			if (i == sizeof(modes) / sizeof(modes[0]))
				return bad_option("--mode: unknown mode '%s'", a);
			o->mode_name = modes[i].name;
			o->mode = modes[i].mode;
			o->hostile = modes[i].hostile;
			break;
		case O_SEED:
			if (parse_u64(a, UINT64_MAX, &o->seed) < 0)
				return bad_option("--seed: '%s' is not a number", a);
			break;
		case O_VBLOCKS:
			if (parse_u32(a, 1, 1u << 20, &o->verify_blocks) < 0)
				return bad_option("--verify-blocks: '%s' is not in 1..1048576", a);
			break;
		case O_BENCH_MS:
			if (parse_u32(a, 1, 3600000, &o->bench_ms) < 0)
				return bad_option("--bench-ms: '%s' is not in 1..3600000", a);
			break;
		case O_DEPTHS:
			if (parse_depths(optarg, o) < 0)
				return -1;
			break;
		case O_DISK_BLOCKS:
			if (parse_u64(a, UINT64_MAX / 4096, &o->disk_blocks) < 0)
				return bad_option("--disk-blocks: '%s' is not a number", a);
			break;
		case O_POLL:
			if (parse_u64(a, 1000000, &o->poll_us) < 0)
				return bad_option("--poll-us: '%s' is not in 0..1000000", a);
			break;
		case O_NATIVE:
			o->native = 1;
			break;
		case O_TIMEOUT:
			if (parse_u32(a, 1, 86400, &o->timeout_s) < 0)
				return bad_option("--timeout: '%s' is not in 1..86400 seconds", a);
			break;
		case O_VERBOSE:
			o->verbose = 1;
			break;
		case O_KVM:
			o->kvm_path = a;
			break;
		case O_CPUS:
			if (parse_cpus(optarg, o) < 0)
				return bad_option("--cpus: '%s' is not auto, none or CPUs V,I", a);
			break;
		case O_HELP:
			usage(stdout);
			exit(0);
		default:
			return bad_option("unknown or incomplete option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return bad_option("unexpected argument '%s'", argv[optind]);
	if (o->num_disks == 0)
		return bad_option("the test guest needs a disk: give --blk FILE");
	if (o->hostile == TG_HOSTILE_BAR_OVERLAP && o->disks[0].transport != KH_TRANSPORT_PCI)
		return bad_option("--mode hostile=bar-overlap needs disk 0 on transport=pci");
	for (uint32_t i = 1; i < o->num_disks; i++)
		if (o->disks[i].hotplug)
			return bad_option("--blk: only disk 0 can be hotplug (one slot)");
	if (is_hotplug_mode(o) != o->disks[0].hotplug)
		return bad_option("--mode hotplug and hostile=slot-power go with a hotplug disk 0 "
				  "(--blk FILE,transport=pci,hotplug), and only they");
	if (o->native && o->mode != TG_MODE_BENCH)
		return bad_option("--native only goes with --mode bench");
	if (o->native && !KH_HAVE_LIBURING)
		return bad_option("--native needs liburing, and this build has none");
	return 0;
}

/*
 * Both the guest (polling its used ring) and the I/O thread (polling the
 * rings) spin: on one CPU they take turns a scheduler slice at a time, which
 * costs a factor of 20 at queue depth 1. So by default they get one CPU each.
 */
static void auto_cpus(struct options *o)
{
	cpu_set_t set;
	int found = 0;

	if (!o->cpus_auto || sched_getaffinity(0, sizeof(set), &set) < 0)
		return;
	for (int c = 0; c < CPU_SETSIZE && found < 2; c++) {
		if (!CPU_ISSET(c, &set))
			continue;
		if (found++ == 0)
			o->vcpu_cpu = c;
		else
			o->io_cpu = c;
	}
	if (found < 2)
		o->vcpu_cpu = o->io_cpu = -1;
}

static char *default_guest_path(void)
{
	static char path[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
	char *slash;

	if (n <= 0)
		return NULL;
	path[n] = 0;
	slash = strrchr(path, '/');
	if (!slash || (size_t)(slash - path) + sizeof("/guest/vdev-test-guest") > sizeof(path))
		return NULL;
	strcpy(slash, "/guest/vdev-test-guest");
	return path;
}

static void log_sink(void *opaque, int level, const char *msg)
{
	(void)opaque;
	fprintf(stderr, "libvirtio-dev[%d]: %s\n", level, msg);
}

/* ---- running the vCPU with a time limit -------------------------------- */

struct vcpu_run {
	struct kh_vm *vm;
	enum kh_vm_outcome outcome;
	int done;
	pthread_mutex_t lock;
	pthread_cond_t cond;
};

static void *vcpu_main(void *arg)
{
	struct vcpu_run *vr = arg;
	enum kh_vm_outcome oc = kh_vm_run(vr->vm);

	pthread_mutex_lock(&vr->lock);
	vr->outcome = oc;
	vr->done = 1;
	pthread_cond_signal(&vr->cond);
	pthread_mutex_unlock(&vr->lock);
	return NULL;
}

static enum kh_vm_outcome run_guest(struct kh_vm *vm, uint32_t timeout_s, int cpu)
{
	struct vcpu_run vr = {.vm = vm};
	pthread_condattr_t ca;
	struct timespec dl;
	pthread_t t;
	int r;

	pthread_mutex_init(&vr.lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&vr.cond, &ca);
	pthread_condattr_destroy(&ca);
	r = pthread_create(&t, NULL, vcpu_main, &vr);
	if (r) {
		fprintf(stderr, "vdev-kvm-host: vCPU thread: %s\n", strerror(r));
		vr.outcome = KH_VM_ERROR;
		goto out;
	}
	kh_pin_thread(t, cpu, "vCPU");
	pthread_setname_np(t, "kh-vcpu0"); /* after the pinning: the tests look for it */
	clock_gettime(CLOCK_MONOTONIC, &dl);
	dl.tv_sec += timeout_s;
	pthread_mutex_lock(&vr.lock);
	while (!vr.done) {
		if (pthread_cond_timedwait(&vr.cond, &vr.lock, &dl) == ETIMEDOUT && !vr.done) {
			fprintf(stderr, "vdev-kvm-host: time limit (%u s) reached, stopping the "
					"guest\n", timeout_s);
			kh_vm_kick_out(vm);
			while (!vr.done)
				pthread_cond_wait(&vr.cond, &vr.lock);
		}
	}
	pthread_mutex_unlock(&vr.lock);
	pthread_join(t, NULL);
out:
	pthread_cond_destroy(&vr.cond);
	pthread_mutex_destroy(&vr.lock);
	return vr.outcome;
}

/* ---- boot info, results ------------------------------------------------ */

static void print_features(uint64_t f)
{
	static const struct {
		unsigned int bit;
		const char *name;
	} names[] = {
		{VIRTIO_BLK_F_SIZE_MAX, "SIZE_MAX"}, {VIRTIO_BLK_F_SEG_MAX, "SEG_MAX"},
		{VIRTIO_BLK_F_RO, "RO"}, {VIRTIO_BLK_F_BLK_SIZE, "BLK_SIZE"},
		{VIRTIO_BLK_F_FLUSH, "FLUSH"}, {VIRTIO_BLK_F_TOPOLOGY, "TOPOLOGY"},
		{VIRTIO_BLK_F_CONFIG_WCE, "CONFIG_WCE"}, {VIRTIO_BLK_F_MQ, "MQ"},
		{VIRTIO_BLK_F_DISCARD, "DISCARD"}, {VIRTIO_BLK_F_WRITE_ZEROES, "WRITE_ZEROES"},
		{VIRTIO_RING_F_INDIRECT_DESC, "INDIRECT_DESC"},
		{VIRTIO_RING_F_EVENT_IDX, "EVENT_IDX"}, {VIRTIO_F_VERSION_1, "VERSION_1"},
		{VIRTIO_F_RING_PACKED, "RING_PACKED"}, {VIRTIO_F_RING_RESET, "RING_RESET"},
	};

	printf("kvm-host: guest negotiated features 0x%016" PRIx64 " with disk 0:", f);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (f & (1ull << names[i].bit))
			printf(" %s", names[i].name);
		f &= ~(1ull << names[i].bit);
	}
	if (f)
		printf(" (and 0x%" PRIx64 ")", f);
	printf("\n");
}

static void fill_boot_info(struct tg_boot_info *bi, const struct options *o, struct kh_vm *vm,
			   struct kh_blk **disks, uint32_t pci_buses)
{
	memset(bi, 0, sizeof(*bi));
	bi->magic = TG_BOOT_MAGIC;
	bi->version = TG_BOOT_VERSION;
	bi->mode = o->mode;
	bi->hostile = o->hostile;
	bi->seed = o->seed;
	bi->ram_size = vm->ram_size;
	bi->heap_start = TG_HEAP_GPA;
	bi->heap_end = vm->ram_size;
	bi->tsc_khz = vm->tsc_khz;
	bi->verify_blocks = o->verify_blocks;
	bi->bench_ms = o->bench_ms;
	bi->num_depths = o->num_depths;
	memcpy(bi->depths, o->depths, sizeof(bi->depths));
	bi->disk_blocks = o->disk_blocks;
	/* In disk order, so that the guest's first virtio-blk is disk 0; the
	 * PCI disks are behind one ECAM entry, where the first of them is. */
	for (uint32_t i = 0; i < o->num_disks; i++) {
		struct tg_device *d = &bi->devices[bi->num_devices];

		if (o->disks[i].transport == KH_TRANSPORT_PCI) {
			if (bi->pci_mem_size)
				continue;
			d->kind = TG_DEV_PCI_ECAM;
			d->base = TG_ECAM_BASE;
			d->size = KH_PCI_ECAM_SIZE(pci_buses);
			/* Bus 0's BARs; the hotplug port's window is above. */
			bi->pci_mem_base = KH_PCI_MMIO32_BASE;
			bi->pci_mem_size = KH_PCI_MMIO32_SIZE -
					   (o->disks[0].hotplug ? KH_HOTPLUG_WINDOW_SIZE : 0);
		} else {
			d->kind = TG_DEV_VIRTIO_MMIO;
			d->virtio_id = VIRTIO_ID_BLOCK;
			d->base = kh_blk_base(i);
			d->size = VDEV_MMIO_SIZE;
			d->gsi = kh_blk_gsi(disks[i]);
		}
		bi->num_devices++;
	}
}

/* The verify workload's blocks, read back from the image on the host. */
static int check_image(const struct options *o)
{
	uint8_t *buf = malloc(TG_PATTERN_BLOCK);
	int fd = open(o->disks[0].path, O_RDONLY | O_CLOEXEC), bad = 0;

	if (fd < 0 || !buf) {
		fprintf(stderr, "vdev-kvm-host: cannot read back %s: %s\n", o->disks[0].path,
			strerror(errno));
		bad = -1;
		goto out;
	}
	for (uint32_t i = 0; i < o->verify_blocks; i++) {
		ssize_t n = pread(fd, buf, TG_PATTERN_BLOCK, (off_t)i * TG_PATTERN_BLOCK);
		uint32_t w;

		if (n != (ssize_t)TG_PATTERN_BLOCK) {
			printf("kvm-host: image check: block %u: short read\n", i);
			bad = -1;
			break;
		}
		w = tg_pattern_check(buf, o->seed, i);
		if (w != TG_PATTERN_WORDS) {
			if (bad++ < 4)
				printf("kvm-host: image check: block %u differs from word %u on\n",
				       i, w);
		}
	}
	if (bad == 0)
		printf("kvm-host: image check: the %u blocks the guest wrote are in %s, byte for "
		       "byte\n", o->verify_blocks, o->disks[0].path);
	else if (bad > 0)
		printf("kvm-host: image check: %d of %u blocks differ\n", bad, o->verify_blocks);
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return bad ? -1 : 0;
}

static int report_bench(const struct options *o, const struct kh_testdev *td,
			const struct tg_boot_info *bi, struct kh_blk *disk0)
{
	int bad = 0;

	for (uint32_t i = 0; i < o->num_depths; i++) {
		uint64_t t0 = td->marks[2 * i], t1 = td->marks[2 * i + 1];
		uint64_t ops = bi->ops_done[i];
		double secs, iops, native = 0, others, native_others = 0;

		if (!t0 || !t1 || t1 <= t0 || !ops) {
			printf("kvm-host: bench: depth %u has no valid marks or no completed I/O\n",
			       o->depths[i]);
			bad = 1;
			continue;
		}
		secs = (double)(t1 - t0) / 1e9;
		iops = (double)ops / secs;
		others = kh_cpu_others(&td->mark_cpu[2 * i], &td->mark_cpu[2 * i + 1]);
		printf("BENCH kvm-blk randread-4k-qd%u-%s iops=%.0f", o->depths[i],
		       kh_blk_transport_name(disk0), iops);
		if (o->native) {
			/* The guest's range: the disk, or less with --disk-blocks. */
			uint64_t blocks = kh_blk_size(disk0) / TG_PATTERN_BLOCK;
			struct kh_cpu_sample c0, c1;
			int r;

			if (o->disk_blocks && o->disk_blocks < blocks)
				blocks = o->disk_blocks;
			kh_cpu_sample(&c0);
			r = kh_native_randread(o->disks[0].path, o->depths[i], o->bench_ms, blocks,
					       o->seed, &native);
			kh_cpu_sample(&c1);
			if (r < 0) {
				printf("\n");
				fprintf(stderr, "vdev-kvm-host: native reference: %s\n",
					strerror(-r));
				bad = 1;
				continue;
			}
			printf(" native_iops=%.0f ratio=%.2f", native, iops / native);
			native_others = kh_cpu_others(&c0, &c1);
		}
		/* others: CPUs other processes kept busy meanwhile (guest run / native
		 * run); the two paths compete with them for the same CPUs. */
		printf(" kicks_per_io=%.4f others=%.2f", (double)bi->kicks[i] / (double)ops,
		       others);
		if (o->native)
			printf("/%.2f", native_others);
		printf("\n");
		printf("kvm-host: bench: depth %u: %" PRIu64 " reads in %.3f s\n", o->depths[i],
		       ops, secs);
	}
	return bad ? -1 : 0;
}

int main(int argc, char **argv)
{
	uint64_t t_start = kh_now_ns();
	struct options o = {0};
	struct kh_vm_config vcfg = {0};
	struct kh_vm *vm = NULL;
	struct kh_blk *disks[TG_MAX_DEVICES] = {0};
	struct kh_pci *pci = NULL;
	struct kh_hotplug *hp = NULL;
	struct kh_iothread *io = NULL;
	struct kh_testdev td;
	struct kh_image img;
	struct tg_boot_info bi;
	enum kh_vm_outcome oc;
	void *elf = NULL;
	size_t elf_len = 0;
	char err[256];
	int r, irq, rc = EXIT_SETUP, dev_errors = 0, hp_errors = 0;
	uint32_t pci_buses, plugs = 0, unplugs = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (parse_options(argc, argv, &o) < 0)
		return EXIT_USAGE;
	if (!o.guest)
		o.guest = default_guest_path();
	if (!o.guest) {
		fprintf(stderr, "vdev-kvm-host: no --guest given and no default path\n");
		return EXIT_USAGE;
	}
	vdev_log_set(log_sink, NULL, o.verbose ? VDEV_LOG_DEBUG : VDEV_LOG_WARNING);
	auto_cpus(&o);

	r = kh_read_file(o.guest, KH_IMAGE_FILE_MAX, &elf, &elf_len);
	if (r < 0) {
		fprintf(stderr, "vdev-kvm-host: cannot read the guest image %s: %s\n", o.guest,
			strerror(-r));
		return EXIT_SETUP;
	}
	vcfg.kvm_path = o.kvm_path;
	vcfg.ram_size = o.mem_mib << 20;
	vcfg.hugepages = o.hugepages;
	if (kh_vm_new(&vcfg, &vm) < 0)
		goto out;
	r = kh_load_elf(elf, elf_len, vm->ram, vm->ram_size, TG_IMAGE_GPA, TG_IMAGE_MAX, &img,
			err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "vdev-kvm-host: bad guest image %s: %s\n", o.guest, err);
		goto out;
	}
	r = kh_testdev_attach(&td, vm, stdout);
	if (r < 0) {
		fprintf(stderr, "vdev-kvm-host: test device: %s\n", strerror(-r));
		goto out;
	}
	pci_buses = o.disks[0].hotplug ? KH_HOTPLUG_BUS + 1 : 1;
	for (uint32_t i = 0; i < o.num_disks; i++) {
		if (o.disks[i].transport == KH_TRANSPORT_PCI && !pci &&
		    kh_pci_new(vm, pci_buses, &pci) < 0)
			goto out;
		if (o.disks[i].hotplug && kh_hotplug_new(vm, pci, &hp) < 0)
			goto out;
		if (kh_blk_new(vm, pci, &o.disks[i], i, &disks[i]) < 0)
			goto out;
	}
	if ((o.mode == TG_MODE_VERIFY || o.mode == TG_MODE_IRQ || o.mode == TG_MODE_HOTPLUG) &&
	    (o.disks[0].readonly ||
	     kh_blk_size(disks[0]) < (uint64_t)o.verify_blocks * TG_PATTERN_BLOCK)) {
		fprintf(stderr, "vdev-kvm-host: the verify workload writes %u blocks of 4 KiB: "
				"disk 0 must be writable and at least %" PRIu64 " bytes\n",
			o.verify_blocks, (uint64_t)o.verify_blocks * TG_PATTERN_BLOCK);
		rc = EXIT_USAGE;
		goto out;
	}
	fill_boot_info(&bi, &o, vm, disks, pci_buses);
	memcpy(vm->ram + TG_BOOT_INFO_GPA, &bi, sizeof(bi));
	irq = o.mode == TG_MODE_IRQ || o.mode == TG_MODE_HOSTILE || o.mode == TG_MODE_HOTPLUG;
	if (kh_boot_test_guest(vm, img.entry, irq ? KH_RFLAGS_IRQ : KH_RFLAGS_POLL) < 0)
		goto out;
	r = kh_iothread_start(disks, o.num_disks, o.poll_us * 1000, o.io_cpu, &io);
	if (r < 0) {
		fprintf(stderr, "vdev-kvm-host: I/O thread: %s\n", strerror(-r));
		goto out;
	}
	td.io_clock_set = kh_iothread_clock(io, &td.io_clock) == 0;
	if (hp) {
		/* The disk is the hotplug thread's now: it frees it after an unplug. */
		r = kh_hotplug_start(hp, disks[0], io);
		disks[0] = NULL;
		if (r < 0) {
			fprintf(stderr, "vdev-kvm-host: hotplug thread: %s\n", strerror(-r));
			goto out;
		}
		td.hotplug = kh_hotplug_request;
		td.hotplug_opaque = hp;
	}
	printf("kvm-host: guest %s: %u segment(s) at 0x%" PRIx64 "-0x%" PRIx64
	       ", entry 0x%" PRIx64 "; %" PRIu64 " MiB RAM%s, %u disk(s), mode %s\n",
	       o.guest, img.segments, img.lo, img.hi, img.entry, vm->ram_size >> 20,
	       vm->hugepages ? " (huge pages)" : "", o.num_disks, o.mode_name);
	printf("kvm-host: set-up took %.1f ms\n", (double)(kh_now_ns() - t_start) / 1e6);

	oc = run_guest(vm, o.timeout_s, o.vcpu_cpu);
	kh_hotplug_stop(hp); /* first: it may be detaching the disk from the I/O thread */
	kh_iothread_stop(io);
	io = NULL;

	/* The guest's results, copied once out of its RAM. */
	memcpy(&bi, vm->ram + TG_BOOT_INFO_GPA, sizeof(bi));
	for (uint32_t i = 0; i < o.num_disks; i++)
		if (disks[i])
			dev_errors |= kh_blk_report(disks[i], stdout);
	if (hp) {
		hp_errors = kh_hotplug_report(hp, stdout);
		kh_hotplug_cycles(hp, &plugs, &unplugs);
	}
	if (pci)
		dev_errors |= kh_pci_report(pci, stdout);
	printf("kvm-host: %" PRIu64 " exits (%" PRIu64 " port I/O, %" PRIu64 " MMIO), %" PRIu64
	       " unclaimed accesses, %" PRIu64 " bad test-device accesses\n",
	       vm->exits, vm->io_exits, vm->mmio_exits, vm->unclaimed, td.bad_accesses);
	print_features((uint64_t)bi.features_hi << 32 | bi.features_lo);
	if (irq)
		printf("kvm-host: interrupts taken by the guest: %" PRIu64 "\n", bi.irqs_seen);

	switch (oc) {
	case KH_VM_STOPPED:
		rc = 0;
		break;
	case KH_VM_TIMEOUT:
		kh_vm_dump_regs(vm);
		rc = EXIT_TIMEOUT;
		break;
	case KH_VM_CRASHED:
		rc = EXIT_CRASHED;
		break;
	case KH_VM_ERROR:
		rc = EXIT_SETUP;
		break;
	}
	if (rc == 0) {
		const char *v = !td.status_set ? "none" :
				td.status == TG_STATUS_PASS ? "PASS" :
				td.status == TG_STATUS_SKIP ? "SKIP" : "FAIL";

		printf("kvm-host: guest verdict %s, exit code %u\n", v, td.exit_code);
		if (td.status_set && td.status == TG_STATUS_SKIP && td.exit_code == 0)
			rc = EXIT_SKIPPED;
		else if (!td.status_set || td.status != TG_STATUS_PASS || td.exit_code != 0)
			rc = EXIT_GUEST_FAILED;
	}
	if (rc == 0 && (o.mode == TG_MODE_VERIFY || o.mode == TG_MODE_IRQ ||
			o.mode == TG_MODE_HOTPLUG) && check_image(&o) < 0)
		rc = EXIT_GUEST_FAILED;
	if (hp) {
		/* One plug and one unplug, each completed by the guest, and after
		 * the unplug the disk gone from the root, the bus and the
		 * ioeventfds (the hostile guest also plugs once). */
		int ok = plugs == 1 && unplugs == 1 && !hp_errors;

		printf("kvm-host: hotplug: %s\n", ok ? "plug and unplug completed, the disk is gone "
		       "from every bus" : "the hotplug cycle did not complete cleanly");
		if (!ok && rc == 0)
			rc = EXIT_GUEST_FAILED;
	}
	if (rc == 0 && o.mode == TG_MODE_IRQ && bi.irqs_seen == 0) {
		printf("kvm-host: irq mode, but the guest took no interrupt\n");
		rc = EXIT_GUEST_FAILED;
	}
	if (rc == 0 && o.mode == TG_MODE_BENCH && report_bench(&o, &td, &bi, disks[0]) < 0)
		rc = EXIT_GUEST_FAILED;
	if (o.mode == TG_MODE_FIRST_IO) {
		if (td.marks[0] > t_start)
			printf("kvm-host: start-up: %.2f ms from process start (main) to the guest's "
			       "first completed virtio request\n",
			       (double)(td.marks[0] - t_start) / 1e6);
		else if (rc == 0)
			rc = EXIT_GUEST_FAILED;
	}
	if (o.mode == TG_MODE_HOSTILE && td.marks[0] && td.marks[1] > td.marks[0] &&
	    td.mark_io_ns[0] && td.mark_io_ns[1] >= td.mark_io_ns[0]) {
		/* The guest held a request on a device that needs a reset. */
		printf("kvm-host: I/O thread: %.1f ms of CPU in the %.1f ms between the guest's "
		       "marks 0 and 1\n", (double)(td.mark_io_ns[1] - td.mark_io_ns[0]) / 1e6,
		       (double)(td.marks[1] - td.marks[0]) / 1e6);
	}
	if (o.mode == TG_MODE_HOSTILE && !hp) {
		printf("kvm-host: hostile guest: the devices %s errors; the host kept running\n",
		       dev_errors ? "reported" : "reported no");
		if (!dev_errors && rc == 0)
			rc = EXIT_GUEST_FAILED;
	}
	printf("kvm-host: result: %s (exit %d)\n",
	       rc == 0 ? "PASS" : rc == EXIT_SKIPPED ? "SKIP" : "FAIL", rc);
out:
	kh_hotplug_stop(hp);
	kh_iothread_stop(io);
	for (uint32_t i = 0; i < TG_MAX_DEVICES; i++)
		kh_blk_free(disks[i]);
	kh_hotplug_free(hp);
	kh_pci_free(pci);
	kh_vm_free(vm);
	free(elf);
	return rc;
}
