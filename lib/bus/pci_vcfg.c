/* SPDX-License-Identifier: MIT */
/*
 * The virtual config MMIO window (the C form of crosvm's
 * PciVirtualConfigMmio): 8 KiB per function, at
 * bus << 21 | device << 16 | function << 13.
 *
 * Page 0 is trapped: a 4-byte aligned dword access reaches the function's
 * virtual_config_register_read/write through the root, with the same
 * visibility as a config cycle (bus 0, or behind a bridge chain whose gates
 * are open), and with the root's lock held like a config cycle. Other sizes
 * or alignments are refused (-EINVAL; reads give all ones). An absent
 * function or a NULL hook reads all ones and drops writes (returning 0: for
 * the bus this is an ordinary access, as an absent function's config space
 * is).
 *
 * Page 1 is the function's shared page: 4 KiB of anonymous memory created
 * on the first vdev_pci_vcfg_shared_page call for that address and kept
 * until vdev_pci_vcfg_free (whether or not a function sits at the address:
 * the page belongs to the address, like the memory slot the VMM maps there).
 * Accesses that reach the bus anyway (the VMM did not map it) are served
 * from the same memory: 1, 2, 4 or 8 bytes within the page, any alignment.
 * Before the page exists, page 1 reads all ones and drops writes; an access
 * does not create it.
 *
 * Locking: a mutex guards the table of pages (a sorted array by address:
 * only the functions that have a page take space); the page memory itself
 * is accessed without it (the guest shares it anyway), with single loads
 * and stores where the access is naturally aligned.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <virtio-dev/pci.h>

#include "bus/pci_internal.h"
#include "internal/util.h"

#define VCFG_PAGE_SIZE 4096u

struct vcfg_page {
	uint32_t addr;
	uint8_t *mem;
};

struct vdev_pci_vcfg {
	pthread_mutex_t lock;
	vdev_pci_root *root;
	uint32_t num_buses;
	struct vcfg_page *pages; /* sorted by addr */
	size_t npages, cap_pages;
};

VDEV_EXPORT int vdev_pci_vcfg_new(const struct vdev_pci_vcfg_config *cfg, vdev_pci_vcfg **out)
{
	struct vdev_pci_vcfg_config k;
	vdev_pci_vcfg *v;

	if (!cfg || !out || vdi_copy_versioned(&k, sizeof(k), cfg) < 0)
		return -EINVAL;
	if (!k.root || k.num_buses < 1 || k.num_buses > 256) {
		vdi_log(VDEV_LOG_DEBUG, "pci vcfg: refused: %u buses, root %s", k.num_buses,
			k.root ? "set" : "missing");
		return -EINVAL;
	}
	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	if (pthread_mutex_init(&v->lock, NULL) != 0) {
		free(v);
		return -ENOMEM;
	}
	v->root = k.root;
	v->num_buses = k.num_buses;
	*out = v;
	return 0;
}

VDEV_EXPORT void vdev_pci_vcfg_free(vdev_pci_vcfg *v)
{
	size_t i;

	if (!v)
		return;
	for (i = 0; i < v->npages; i++)
		munmap(v->pages[i].mem, VCFG_PAGE_SIZE);
	free(v->pages);
	pthread_mutex_destroy(&v->lock);
	free(v);
}

/* Index of the page of @addr, or where it would go. Lock held. */
static size_t page_lower(const vdev_pci_vcfg *v, uint32_t addr)
{
	size_t lo = 0, hi = v->npages;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (v->pages[mid].addr < addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static uint8_t *page_find(vdev_pci_vcfg *v, uint32_t addr)
{
	uint8_t *mem = NULL;
	size_t i;

	pthread_mutex_lock(&v->lock);
	i = page_lower(v, addr);
	if (i < v->npages && v->pages[i].addr == addr)
		mem = v->pages[i].mem;
	pthread_mutex_unlock(&v->lock);
	return mem;
}

VDEV_EXPORT int vdev_pci_vcfg_shared_page(vdev_pci_vcfg *v, uint32_t addr, void **host)
{
	struct vcfg_page *pages;
	void *mem;
	size_t i;
	int r = 0;

	if (!v || !host || addr > 0xffff || VDEV_PCI_ADDR_BUS(addr) >= v->num_buses)
		return -EINVAL;
	pthread_mutex_lock(&v->lock);
	i = page_lower(v, addr);
	if (i < v->npages && v->pages[i].addr == addr) {
		*host = v->pages[i].mem;
		goto out;
	}
	pages = vdi_grow(v->pages, &v->cap_pages, v->npages, sizeof(*pages));
	if (!pages) {
		r = -ENOMEM;
		goto out;
	}
	v->pages = pages;
	/* Anonymous memory: page-aligned and zero-filled. */
	mem = mmap(NULL, VCFG_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		r = -ENOMEM;
		goto out;
	}
	memmove(&v->pages[i + 1], &v->pages[i], (v->npages - i) * sizeof(v->pages[0]));
	v->pages[i].addr = addr;
	v->pages[i].mem = mem;
	v->npages++;
	*host = mem;
out:
	pthread_mutex_unlock(&v->lock);
	return r;
}

/* ---- the window ---- */

struct vcfg_call {
	uint32_t reg;
	uint32_t value;
	int write;
};

static int vcfg_call(const struct vdev_bus_device_ops *ops, void *opaque, void *arg)
{
	struct vcfg_call *c = arg;

	if (c->write) {
		if (!ops->virtual_config_register_write)
			return -ENOENT;
		ops->virtual_config_register_write(opaque, c->reg, c->value);
	} else {
		if (!ops->virtual_config_register_read)
			return -ENOENT;
		c->value = ops->virtual_config_register_read(opaque, c->reg);
	}
	return 0;
}

/* Single loads and stores where aligned: the guest may access the page at
 * the same time through its own mapping. */
static void shared_copy(uint8_t *dst, const uint8_t *src, uint32_t size)
{
	uint32_t i;

	if (((uintptr_t)dst | (uintptr_t)src) % size == 0) {
		switch (size) {
		case 2:
			vdi_store_relaxed((uint16_t *)(void *)dst,
					  vdi_load_relaxed((const uint16_t *)(const void *)src));
			return;
		case 4:
			vdi_store_relaxed((uint32_t *)(void *)dst,
					  vdi_load_relaxed((const uint32_t *)(const void *)src));
			return;
		case 8:
			vdi_store_relaxed((uint64_t *)(void *)dst,
					  vdi_load_relaxed((const uint64_t *)(const void *)src));
			return;
		default:
			break;
		}
	}
	for (i = 0; i < size; i++)
		vdi_store_relaxed(&dst[i], vdi_load_relaxed(&src[i]));
}

static int vcfg_access(void *opaque, const struct vdev_bus_access *a, void *data, int write)
{
	vdev_pci_vcfg *v = opaque;
	uint64_t off = a->offset;
	uint32_t addr = (uint32_t)(off >> 13) & 0xffff, in_page = (uint32_t)(off & 0xfff);
	int page1 = (off >> 12) & 1, r;

	if (off >> 21 >= v->num_buses ||
	    (page1 ? a->size > VCFG_PAGE_SIZE - in_page : a->size != 4 || in_page % 4)) {
		vdi_log(VDEV_LOG_DEBUG, "pci vcfg: %u-byte access at +0x%llx refused", a->size,
			(unsigned long long)off);
		r = -EINVAL;
		goto ones;
	}
	if (page1) {
		uint8_t *mem = page_find(v, addr);

		if (!mem)
			goto absent;
		if (write)
			shared_copy(mem + in_page, data, a->size);
		else
			shared_copy(data, mem + in_page, a->size);
		return 0;
	} else {
		struct vcfg_call c = { .reg = in_page >> 2, .write = write };

		if (write)
			c.value = (uint32_t)vdi_ld_le(data, 4);
		r = vdi_pci_root_call(v->root, addr, vcfg_call, &c);
		/* -EINVAL: a bus the root does not have (its num_buses may be
		 * smaller than the window's), so no function can be there. */
		if (r == -ENOENT || r == -EINVAL)
			goto absent;
		if (r < 0)
			goto ones;
		if (!write)
			vdi_st_le(data, c.value, 4);
		return 0;
	}
absent:
	r = 0;
ones:
	if (!write)
		memset(data, 0xff, a->size);
	return r;
}

static int vcfg_read(void *opaque, const struct vdev_bus_access *a, void *data)
{
	return vcfg_access(opaque, a, data, 0);
}

static int vcfg_write(void *opaque, const struct vdev_bus_access *a, const void *data)
{
	return vcfg_access(opaque, a, (void *)data, 1);
}

static const char *vcfg_label(void *opaque)
{
	VDI_UNUSED(opaque);
	return "pci-vcfg";
}

static const struct vdev_bus_device_ops vcfg_ops = {
	.struct_size = sizeof(struct vdev_bus_device_ops),
	.debug_label = vcfg_label,
	.read = vcfg_read,
	.write = vcfg_write,
};

VDEV_EXPORT const struct vdev_bus_device_ops *vdev_pci_vcfg_bus_ops(void)
{
	return &vcfg_ops;
}
