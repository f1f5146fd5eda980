/* SPDX-License-Identifier: MIT */
/*
 * The PCI host bridge. The root serializes config cycles itself; this file
 * only wires it to the buses and routes its BAR-move reports. The table of
 * functions has a lock of its own: a hotplug disk leaves it while the vCPU
 * runs, and the reports read it on the vCPU thread with the root's lock
 * held (root lock, then table lock; the table lock is never held across a
 * call into the root).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pciroot.h"
#include "tg-abi.h"

#define PCI_PIO_BASE 0xcf8u
#define PCI_PIO_SIZE 8u
#define MAX_FUNCTIONS 32u

_Static_assert(KH_PCI_MMIO32_BASE >= ((uint64_t)KH_RAM_MAX_MIB << 20) &&
		       KH_PCI_MMIO32_BASE + KH_PCI_MMIO32_SIZE <= TG_MMIO_BASE,
	       "the 32-bit BAR window lies between RAM and the virtio-mmio devices");
_Static_assert(TG_ECAM_BASE + KH_PCI_ECAM_SIZE(KH_PCI_MAX_BUSES) <= TG_APIC_GPA,
	       "ECAM below the APIC");
_Static_assert(KH_HOTPLUG_BUS < KH_PCI_MAX_BUSES, "the hotplug bus has ECAM space");

struct kh_pci_fn {
	uint32_t addr;
	kh_pci_moved_fn moved;
	void *opaque;
};

struct kh_pci {
	struct kh_vm *vm;
	vdev_pci_root *root;
	int on_pio, on_mmio;
	uint64_t ecam_size;
	uint64_t refused; /* atomic: config writes the root refused */
	pthread_mutex_t lock; /* fns, nfns */
	struct kh_pci_fn fns[MAX_FUNCTIONS];
	uint32_t nfns;
};

static void bar_moved(void *opaque, const struct vdev_pci_bar_move *move)
{
	struct kh_pci *p = opaque;

	pthread_mutex_lock(&p->lock);
	for (uint32_t i = 0; i < p->nfns; i++)
		if (p->fns[i].addr == move->addr && p->fns[i].moved)
			p->fns[i].moved(p->fns[i].opaque, move);
	pthread_mutex_unlock(&p->lock);
}

static const struct vdev_pci_root_ops root_ops = {
	.struct_size = sizeof(struct vdev_pci_root_ops),
	.bar_moved = bar_moved,
};

/*
 * The config mechanisms as the library has them, except that an access to
 * an absent function (reads all ones, -ENOENT) is what enumeration is made
 * of: the bus must not pass it on as an access nobody claimed. Refused
 * writes (a BAR moved onto another range or out of the windows) are counted.
 */
static int absent_ok(struct kh_pci *p, int r, int write)
{
	if (r == -ENOENT)
		return 0;
	if (r < 0 && write)
		__atomic_add_fetch(&p->refused, 1, __ATOMIC_RELAXED);
	return r;
}

static int ecam_read(void *opaque, const struct vdev_bus_access *a, void *data)
{
	struct kh_pci *p = opaque;

	return absent_ok(p, vdev_pci_root_ecam_ops()->read(p->root, a, data), 0);
}

static int ecam_write(void *opaque, const struct vdev_bus_access *a, const void *data)
{
	struct kh_pci *p = opaque;

	return absent_ok(p, vdev_pci_root_ecam_ops()->write(p->root, a, data), 1);
}

static int pio_read(void *opaque, const struct vdev_bus_access *a, void *data)
{
	struct kh_pci *p = opaque;

	return absent_ok(p, vdev_pci_root_pio_ops()->read(p->root, a, data), 0);
}

static int pio_write(void *opaque, const struct vdev_bus_access *a, const void *data)
{
	struct kh_pci *p = opaque;

	return absent_ok(p, vdev_pci_root_pio_ops()->write(p->root, a, data), 1);
}

static const char *ecam_label(void *opaque)
{
	(void)opaque;
	return "PCI ECAM";
}

static const char *pio_label(void *opaque)
{
	(void)opaque;
	return "PCI 0xCF8/0xCFC";
}

int kh_pci_new(struct kh_vm *vm, uint32_t num_buses, struct kh_pci **out)
{
	struct vdev_pci_root_config cfg = VDEV_PCI_ROOT_CONFIG_INIT;
	struct vdev_bus_device_ops ecam = VDEV_BUS_DEVICE_OPS_INIT;
	struct vdev_bus_device_ops pio = VDEV_BUS_DEVICE_OPS_INIT;
	struct kh_pci *p = calloc(1, sizeof(*p));
	int r;

	if (!p)
		return -ENOMEM;
	if (!num_buses || num_buses > KH_PCI_MAX_BUSES) {
		free(p);
		return -EINVAL;
	}
	pthread_mutex_init(&p->lock, NULL);
	p->vm = vm;
	p->ecam_size = KH_PCI_ECAM_SIZE(num_buses);
	cfg.num_buses = num_buses;
	cfg.mmio_bus = vm->mmio_bus;
	cfg.pio_bus = vm->pio_bus;
	cfg.mmio32_base = KH_PCI_MMIO32_BASE;
	cfg.mmio32_size = KH_PCI_MMIO32_SIZE;
	cfg.mmio64_base = KH_PCI_MMIO64_BASE;
	cfg.mmio64_size = KH_PCI_MMIO64_SIZE;
	cfg.ops = &root_ops;
	cfg.opaque = p;
	r = vdev_pci_root_new(&cfg, &p->root);
	ecam.debug_label = ecam_label;
	ecam.read = ecam_read;
	ecam.write = ecam_write;
	pio.debug_label = pio_label;
	pio.read = pio_read;
	pio.write = pio_write;
	if (r == 0)
		r = vdev_bus_insert(vm->mmio_bus, TG_ECAM_BASE, p->ecam_size, &ecam, p);
	p->on_mmio = r == 0;
	if (r == 0)
		r = vdev_bus_insert(vm->pio_bus, PCI_PIO_BASE, PCI_PIO_SIZE, &pio, p);
	p->on_pio = r == 0;
	if (r < 0) {
		fprintf(stderr, "vdev-kvm-host: PCI root: %s\n", strerror(-r));
		kh_pci_free(p);
		return r;
	}
	*out = p;
	return 0;
}

void kh_pci_free(struct kh_pci *p)
{
	if (!p)
		return;
	if (p->on_pio)
		vdev_bus_remove(p->vm->pio_bus, PCI_PIO_BASE);
	if (p->on_mmio)
		vdev_bus_remove(p->vm->mmio_bus, TG_ECAM_BASE);
	vdev_pci_root_free(p->root);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

vdev_pci_root *kh_pci_root(struct kh_pci *p)
{
	return p->root;
}

static void drop_fn(struct kh_pci *p, uint32_t addr)
{
	pthread_mutex_lock(&p->lock);
	for (uint32_t i = 0; i < p->nfns; i++) {
		if (p->fns[i].addr == addr) {
			p->fns[i] = p->fns[--p->nfns];
			break;
		}
	}
	pthread_mutex_unlock(&p->lock);
}

int kh_pci_add(struct kh_pci *p, uint32_t addr, const struct vdev_bus_device_ops *ops,
	       void *opaque, kh_pci_moved_fn moved, void *moved_opaque)
{
	struct kh_pci_fn *f;
	int r;

	pthread_mutex_lock(&p->lock);
	if (p->nfns == MAX_FUNCTIONS) {
		pthread_mutex_unlock(&p->lock);
		return -ENOSPC;
	}
	/* Known before the root may report a move (it places preset BARs). */
	f = &p->fns[p->nfns++];
	f->addr = addr;
	f->moved = moved;
	f->opaque = moved_opaque;
	pthread_mutex_unlock(&p->lock);
	r = vdev_pci_root_add(p->root, addr, ops, opaque);
	if (r < 0)
		drop_fn(p, addr);
	return r;
}

void kh_pci_remove(struct kh_pci *p, uint32_t addr)
{
	vdev_pci_root_remove(p->root, addr); /* reports the BARs leaving */
	drop_fn(p, addr);
}

int kh_pci_report(struct kh_pci *p, FILE *out)
{
	uint64_t refused = __atomic_load_n(&p->refused, __ATOMIC_RELAXED);

	fprintf(out, "kvm-host: pci: %" PRIu64 " config writes refused\n", refused);
	return refused != 0;
}
