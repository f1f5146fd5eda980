/* SPDX-License-Identifier: MIT */
/*
 * virtio-pci, driver side (spec 4.1, modern interface only): find the
 * common, notify, ISR and device-config structures through the vendor
 * capabilities, check each against its BAR as Linux's virtio_pci_modern_dev
 * does, and give vdev_drv transport ops over them. MSI-X: program the table
 * and assign vectors; INTx: read the ISR.
 *
 * Every value read from the device (capability pointers, BAR numbers,
 * offsets, lengths, queue_notify_off, queue sizes, vector read-backs) is
 * checked before it is used to form an address: a hostile device gets an
 * error, never an access outside the structures it described.
 *
 * Freestanding: no libc beyond memcpy/memset, caller storage only.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <linux/pci_regs.h>
#include <linux/virtio_config.h>
#include <linux/virtio_pci.h>

#include <virtio-dev/virtio-pci.h>

#include "internal/util.h"
#include "pci_drv_internal.h"

/* Transitional device IDs 0x1000..0x103f (type in the subsystem ID). */
#define TRANSITIONAL_FIRST 0x1000u
#define TRANSITIONAL_LAST 0x103fu
#define MODERN_LAST 0x107fu
/* Queues whose notify offset is kept; higher ones re-read theirs per kick. */
#define NOTIFY_CACHE 64u
#define NOTIFY_NONE 0xffffffffu

/* One structure the device described: guest address and length. */
struct region {
	uint64_t gpa;
	uint32_t len;
	uint32_t present;
};

struct vdev_drv_vpci {
	struct vdev_drv_pci_io_ops io;
	void *ctx;
	uint32_t addr;
	uint32_t type;
	uint32_t num_queues;
	uint32_t notify_mult;
	struct vdi_pci_bar bars[PCI_STD_NUM_BARS];
	struct region common, notify, isr, device;
	/* MSI-X: table size (0: off), all sources on vector 0, and whether
	 * config_msix_vector was set since the last reset. */
	uint32_t msix_vectors;
	uint32_t msix_shared;
	uint32_t config_vector_set;
	/* Offset in the notify region of each set-up queue, NOTIFY_NONE otherwise. */
	uint32_t notify_off[NOTIFY_CACHE];
};

uint64_t vdev_drv_vpci_storage_size(void)
{
	return sizeof(struct vdev_drv_vpci);
}

/* ---- register access ------------------------------------------------------- */

static uint32_t cfg_rd(const vdev_drv_vpci *p, uint32_t off, uint32_t width)
{
	return vdi_drv_pci_cfg_rd(&p->io, p->ctx, p->addr, off, width);
}

static void cfg_wr(const vdev_drv_vpci *p, uint32_t off, uint32_t width, uint32_t v)
{
	p->io.cfg_write(p->ctx, p->addr, off, width, v);
}

static uint32_t mem_rd(const vdev_drv_vpci *p, uint64_t gpa, uint32_t width)
{
	uint64_t v = p->io.mem_read(p->ctx, gpa, width);

	if (width == 1)
		return (uint32_t)(v & 0xffu);
	if (width == 2)
		return (uint32_t)(v & 0xffffu);
	return (uint32_t)v;
}

static void mem_wr(const vdev_drv_vpci *p, uint64_t gpa, uint32_t width, uint32_t v)
{
	p->io.mem_write(p->ctx, gpa, width, v);
}

/* Common configuration: every field lies in the 56 bytes init checked. */
static uint32_t c_rd(const vdev_drv_vpci *p, uint32_t off, uint32_t width)
{
	return mem_rd(p, p->common.gpa + off, width);
}

static void c_wr(const vdev_drv_vpci *p, uint32_t off, uint32_t width, uint32_t v)
{
	mem_wr(p, p->common.gpa + off, width, v);
}

/* After a reset: vectors unassigned, no queue set up. */
static void forget_queues(vdev_drv_vpci *p)
{
	p->config_vector_set = 0;
	memset(p->notify_off, 0xff, sizeof(p->notify_off));
}

/* ---- init ------------------------------------------------------------------- */

/*
 * The device's BARs. Their sizes are not in config space: like the PCI core
 * before a driver binds, size them, with memory and I/O decode off meanwhile
 * and every BAR and the command register restored exactly afterwards (the
 * root takes the ranges off the bus and puts them back). This is the same
 * sizing vdev_drv_pci_assign_bars does; it runs once per init, before the
 * device is driven.
 */
static int read_bars(vdev_drv_vpci *p)
{
	uint32_t cmd = cfg_rd(p, PCI_COMMAND, 2);
	int r;

	if (!(cmd & PCI_COMMAND_MEMORY))
		return -EINVAL; /* not decoding: BARs not assigned yet */
	cfg_wr(p, PCI_COMMAND, 2, cmd & ~(uint32_t)(PCI_COMMAND_IO | PCI_COMMAND_MEMORY));
	r = vdi_drv_pci_size_bars(&p->io, p->ctx, p->addr, PCI_STD_NUM_BARS, p->bars);
	cfg_wr(p, PCI_COMMAND, 2, cmd);
	return r < 0 ? -EBADMSG : 0;
}

/* A memory BAR with an address and a size that does not wrap, or NULL. */
static const struct vdi_pci_bar *mem_bar(const vdev_drv_vpci *p, uint32_t bar)
{
	const struct vdi_pci_bar *b;

	if (bar >= PCI_STD_NUM_BARS)
		return NULL;
	b = &p->bars[bar];
	if (!b->size || (b->kind & VDEV_PCI_BAR_IO) || !b->address ||
	    b->address + b->size < b->address)
		return NULL;
	return b;
}

/* Minimum length and alignment of each structure (Linux's probe). */
struct cap_rule {
	uint32_t minlen;
	uint32_t align;
	uint32_t cap_len;
};

static const struct cap_rule cap_rules[] = {
	[VIRTIO_PCI_CAP_COMMON_CFG] = {sizeof(struct virtio_pci_common_cfg), 4,
				       sizeof(struct virtio_pci_cap)},
	[VIRTIO_PCI_CAP_NOTIFY_CFG] = {2, 2, sizeof(struct virtio_pci_notify_cap)},
	[VIRTIO_PCI_CAP_ISR_CFG] = {1, 1, sizeof(struct virtio_pci_cap)},
	[VIRTIO_PCI_CAP_DEVICE_CFG] = {0, 4, sizeof(struct virtio_pci_cap)},
};

/*
 * Check the capability at @pos (type @type) and fill @reg. Returns 0, or
 * -EBADMSG when it does not describe a structure inside its BAR.
 */
static int map_cap(vdev_drv_vpci *p, uint32_t pos, uint32_t type, struct region *reg)
{
	const struct cap_rule *rule = &cap_rules[type];
	const struct vdi_pci_bar *b;
	uint32_t cap_len, off, len;

	cap_len = cfg_rd(p, pos + offsetof(struct virtio_pci_cap, cap_len), 1);
	if (cap_len < rule->cap_len || pos + cap_len > 0x100u)
		return -EBADMSG;
	b = mem_bar(p, cfg_rd(p, pos + offsetof(struct virtio_pci_cap, bar), 1));
	off = cfg_rd(p, pos + offsetof(struct virtio_pci_cap, offset), 4);
	len = cfg_rd(p, pos + offsetof(struct virtio_pci_cap, length), 4);
	if (!b || len < rule->minlen || (off & (rule->align - 1)) ||
	    (uint64_t)off + len > b->size)
		return -EBADMSG;
	if (type == VIRTIO_PCI_CAP_NOTIFY_CFG) {
		/* Even or 0 (4.1.4.4): an odd one would misalign 2-byte kicks. */
		p->notify_mult = cfg_rd(p, pos + offsetof(struct virtio_pci_notify_cap,
							  notify_off_multiplier),
					4);
		if (p->notify_mult & 1u)
			return -EBADMSG;
	}
	reg->gpa = b->address + off;
	reg->len = len;
	reg->present = 1;
	return 0;
}

/*
 * Walk the vendor capabilities. The first of each type whose BAR is a
 * memory BAR is used (as Linux does); a bad one of those fails the init.
 */
static int find_structures(vdev_drv_vpci *p)
{
	struct region *regs[] = {
		[VIRTIO_PCI_CAP_COMMON_CFG] = &p->common,
		[VIRTIO_PCI_CAP_NOTIFY_CFG] = &p->notify,
		[VIRTIO_PCI_CAP_ISR_CFG] = &p->isr,
		[VIRTIO_PCI_CAP_DEVICE_CFG] = &p->device,
	};
	uint32_t type, steps;
	int pos = 0, r;

	/* Each lookup is bounded; the bound on the whole walk stops a list of
	 * vendor capabilities that point at each other in a circle. */
	for (steps = 0;; steps++) {
		if (steps == VDI_PCI_CAP_TTL)
			return -EBADMSG;
		pos = vdi_drv_pci_find_cap(&p->io, p->ctx, p->addr, PCI_CAP_ID_VNDR,
					   (uint32_t)pos);
		if (pos == -ENOENT)
			break;
		if (pos < 0)
			return -EBADMSG;
		type = cfg_rd(p, (uint32_t)pos + offsetof(struct virtio_pci_cap, cfg_type), 1);
		if (type >= VDI_ARRAY_SIZE(regs) || !regs[type] || regs[type]->present ||
		    !mem_bar(p, cfg_rd(p, (uint32_t)pos + offsetof(struct virtio_pci_cap, bar),
				       1)))
			continue;
		r = map_cap(p, (uint32_t)pos, type, regs[type]);
		if (r < 0)
			return r;
	}
	if (!p->common.present || !p->notify.present || !p->isr.present)
		return -EBADMSG;
	return 0;
}

/* The virtio device type, or 0 when @addr is not a virtio-pci function. */
static uint32_t device_type(const vdev_drv_vpci *p)
{
	uint32_t id = cfg_rd(p, PCI_VENDOR_ID, 4);
	uint32_t dev = id >> 16;

	if ((id & 0xffffu) != VDEV_VIRTIO_PCI_VENDOR_ID ||
	    (cfg_rd(p, PCI_HEADER_TYPE, 1) & PCI_HEADER_TYPE_MASK) != PCI_HEADER_TYPE_NORMAL)
		return 0;
	if (dev >= VDEV_VIRTIO_PCI_DEVICE_ID_BASE && dev <= MODERN_LAST)
		return dev - VDEV_VIRTIO_PCI_DEVICE_ID_BASE;
	/* Transitional: revision 0, the type in the subsystem ID (4.1.2.1). */
	if (dev >= TRANSITIONAL_FIRST && dev <= TRANSITIONAL_LAST &&
	    cfg_rd(p, PCI_REVISION_ID, 1) == 0)
		return cfg_rd(p, PCI_SUBSYSTEM_ID, 2);
	return 0;
}

int vdev_drv_vpci_init(void *storage, uint64_t storage_size, const struct vdev_drv_pci_io_ops *io,
		       void *ctx, uint32_t addr, vdev_drv_vpci **out)
{
	vdev_drv_vpci *p;
	int r;

	if (!storage || !out || storage_size < sizeof(*p) || ((uintptr_t)storage & 7u) ||
	    addr > 0xffffu)
		return -EINVAL;
	p = storage;
	memset(p, 0, sizeof(*p));
	if (vdi_drv_pci_io_copy(&p->io, io) < 0 || !p->io.mem_read || !p->io.mem_write)
		return -EINVAL;
	p->ctx = ctx;
	p->addr = addr;
	forget_queues(p);

	p->type = device_type(p);
	if (!p->type)
		return -ENODEV;
	r = read_bars(p);
	if (r < 0)
		return r;
	r = find_structures(p);
	if (r < 0)
		return r;
	p->num_queues = c_rd(p, VIRTIO_PCI_COMMON_NUMQ, 2);
	*out = p;
	return 0;
}

uint32_t vdev_drv_vpci_device_type(const vdev_drv_vpci *p)
{
	return p ? p->type : 0;
}

/* ---- transport ops ---------------------------------------------------------- */

/*
 * Vectors: config 0 and queue q 1 + q, or everything on 0 when the table is
 * too small. A reset clears the device's vector registers, so the config
 * vector is written again before the first queue is set up (where Linux
 * writes it too) or, for a device without queues, with DRIVER_OK.
 */
static int set_config_vector(vdev_drv_vpci *p)
{
	c_wr(p, VIRTIO_PCI_COMMON_MSIX, 2, 0);
	if (c_rd(p, VIRTIO_PCI_COMMON_MSIX, 2) != 0)
		return -EIO;
	p->config_vector_set = 1;
	return 0;
}

static uint32_t t_get_status(void *t)
{
	return c_rd(t, VIRTIO_PCI_COMMON_STATUS, 1);
}

static void t_set_status(void *t, uint32_t status)
{
	vdev_drv_vpci *p = t;

	if (!status)
		forget_queues(p);
	else if ((status & VIRTIO_CONFIG_S_DRIVER_OK) && p->msix_vectors && !p->config_vector_set)
		(void)set_config_vector(p); /* refused: no config interrupts, as NO_VECTOR */
	c_wr(p, VIRTIO_PCI_COMMON_STATUS, 1, status);
}

static uint32_t t_get_device_features(void *t, uint32_t page)
{
	c_wr(t, VIRTIO_PCI_COMMON_DFSELECT, 4, page);
	return c_rd(t, VIRTIO_PCI_COMMON_DF, 4);
}

static void t_set_driver_features(void *t, uint32_t page, uint32_t value)
{
	c_wr(t, VIRTIO_PCI_COMMON_GFSELECT, 4, page);
	c_wr(t, VIRTIO_PCI_COMMON_GF, 4, value);
}

/* Select @queue if the device has it. */
static int select_queue(const vdev_drv_vpci *p, uint32_t queue)
{
	if (queue >= p->num_queues)
		return -ENODEV;
	c_wr(p, VIRTIO_PCI_COMMON_Q_SELECT, 2, queue);
	return 0;
}

static uint32_t t_queue_max_size(void *t, uint32_t queue)
{
	if (select_queue(t, queue) < 0)
		return 0;
	return c_rd(t, VIRTIO_PCI_COMMON_Q_SIZE, 2);
}

/* Where the selected queue's kicks go, checked against the notify region. */
static int notify_offset(const vdev_drv_vpci *p, uint32_t *off)
{
	uint64_t o = (uint64_t)c_rd(p, VIRTIO_PCI_COMMON_Q_NOFF, 2) * p->notify_mult;

	if (o + 2 > p->notify.len)
		return -EBADMSG;
	*off = (uint32_t)o;
	return 0;
}

/* Write a vector register and check the device took it (4.1.5.1.2). */
static int set_vector(const vdev_drv_vpci *p, uint32_t reg, uint32_t vec)
{
	c_wr(p, reg, 2, vec);
	return c_rd(p, reg, 2) == vec ? 0 : -EIO;
}

static void wr_addr(const vdev_drv_vpci *p, uint32_t lo, uint64_t v)
{
	/* Two 32-bit halves, low first, as Linux writes them. */
	c_wr(p, lo, 4, (uint32_t)v);
	c_wr(p, lo + 4, 4, (uint32_t)(v >> 32));
}

static int t_queue_setup(void *t, uint32_t queue, uint32_t size, uint64_t desc_addr,
			 uint64_t driver_addr, uint64_t device_addr)
{
	vdev_drv_vpci *p = t;
	uint32_t max, off;
	int r;

	if (p->msix_vectors && !p->config_vector_set) {
		r = set_config_vector(p);
		if (r < 0)
			return r;
	}
	if (select_queue(p, queue) < 0)
		return -ENODEV;
	if (c_rd(p, VIRTIO_PCI_COMMON_Q_ENABLE, 2))
		return -EBUSY;
	max = c_rd(p, VIRTIO_PCI_COMMON_Q_SIZE, 2);
	if (!max)
		return -ENODEV;
	if (!size || size > max)
		return -EINVAL;
	r = notify_offset(p, &off);
	if (r < 0)
		return r;
	c_wr(p, VIRTIO_PCI_COMMON_Q_SIZE, 2, size);
	wr_addr(p, VIRTIO_PCI_COMMON_Q_DESCLO, desc_addr);
	wr_addr(p, VIRTIO_PCI_COMMON_Q_AVAILLO, driver_addr);
	wr_addr(p, VIRTIO_PCI_COMMON_Q_USEDLO, device_addr);
	if (p->msix_vectors) {
		r = set_vector(p, VIRTIO_PCI_COMMON_Q_MSIX, p->msix_shared ? 0 : 1 + queue);
		if (r < 0)
			return r;
	}
	c_wr(p, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
	if (c_rd(p, VIRTIO_PCI_COMMON_Q_ENABLE, 2) != 1)
		return -EIO;
	if (queue < NOTIFY_CACHE)
		p->notify_off[queue] = off;
	return 0;
}

static void t_queue_notify(void *t, uint32_t queue)
{
	vdev_drv_vpci *p = t;
	uint32_t off;

	if (queue < NOTIFY_CACHE) {
		off = p->notify_off[queue];
		if (off == NOTIFY_NONE)
			return;
	} else if (select_queue(p, queue) < 0 || notify_offset(p, &off) < 0) {
		return;
	}
	mem_wr(p, p->notify.gpa + off, 2, queue);
}

static uint32_t t_config_generation(void *t)
{
	return c_rd(t, VIRTIO_PCI_COMMON_CFGGENERATION, 1);
}

/* Device config accesses stay inside the structure the device described. */
static int dev_cfg_ok(const vdev_drv_vpci *p, uint32_t offset, uint32_t width)
{
	return p->device.present && (width == 1 || width == 2 || width == 4) &&
	       (uint64_t)offset + width <= p->device.len;
}

static uint32_t t_config_read(void *t, uint32_t offset, uint32_t width)
{
	vdev_drv_vpci *p = t;

	if (!dev_cfg_ok(p, offset, width))
		return 0;
	return mem_rd(p, p->device.gpa + offset, width);
}

static void t_config_write(void *t, uint32_t offset, uint32_t width, uint32_t value)
{
	vdev_drv_vpci *p = t;

	if (!dev_cfg_ok(p, offset, width))
		return;
	mem_wr(p, p->device.gpa + offset, width, value);
}

static const struct vdev_drv_transport_ops vpci_drv_ops = {
	.struct_size = sizeof(struct vdev_drv_transport_ops),
	.get_status = t_get_status,
	.set_status = t_set_status,
	.get_device_features = t_get_device_features,
	.set_driver_features = t_set_driver_features,
	.queue_max_size = t_queue_max_size,
	.queue_setup = t_queue_setup,
	.queue_notify = t_queue_notify,
	.config_generation = t_config_generation,
	.config_read = t_config_read,
	.config_write = t_config_write,
};

const struct vdev_drv_transport_ops *vdev_drv_vpci_transport(void)
{
	return &vpci_drv_ops;
}

/* ---- interrupts ----------------------------------------------------------- */

int vdev_drv_vpci_enable_msix(vdev_drv_vpci *p, uint64_t address, uint32_t data)
{
	const struct vdi_pci_bar *b;
	uint32_t ctrl, table, off, n, i;
	uint64_t entry;
	int pos;

	if (!p)
		return -EINVAL;
	pos = vdi_drv_pci_find_cap(&p->io, p->ctx, p->addr, PCI_CAP_ID_MSIX, 0);
	if (pos == -ENOENT)
		return -ENOTSUP;
	if (pos < 0)
		return -EBADMSG;
	ctrl = cfg_rd(p, (uint32_t)pos + PCI_MSIX_FLAGS, 2);
	table = cfg_rd(p, (uint32_t)pos + PCI_MSIX_TABLE, 4);
	n = (ctrl & PCI_MSIX_FLAGS_QSIZE) + 1;
	off = table & PCI_MSIX_TABLE_OFFSET;
	b = mem_bar(p, table & PCI_MSIX_TABLE_BIR);
	if (!b || (uint64_t)off + (uint64_t)n * PCI_MSIX_ENTRY_SIZE > b->size)
		return -EBADMSG;

	/* Linux's order: enable with the function masked, fill the table,
	 * then unmask the function; INTx off while MSI-X is on. */
	cfg_wr(p, (uint32_t)pos + PCI_MSIX_FLAGS, 2,
	       ctrl | PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
	for (i = 0; i < n; i++) {
		entry = b->address + off + (uint64_t)i * PCI_MSIX_ENTRY_SIZE;
		mem_wr(p, entry + PCI_MSIX_ENTRY_LOWER_ADDR, 4, (uint32_t)address);
		mem_wr(p, entry + PCI_MSIX_ENTRY_UPPER_ADDR, 4, (uint32_t)(address >> 32));
		mem_wr(p, entry + PCI_MSIX_ENTRY_DATA, 4, data + i);
		mem_wr(p, entry + PCI_MSIX_ENTRY_VECTOR_CTRL, 4, 0);
	}
	cfg_wr(p, PCI_COMMAND, 2, cfg_rd(p, PCI_COMMAND, 2) | PCI_COMMAND_INTX_DISABLE);
	cfg_wr(p, (uint32_t)pos + PCI_MSIX_FLAGS, 2,
	       (ctrl & ~(uint32_t)PCI_MSIX_FLAGS_MASKALL) | PCI_MSIX_FLAGS_ENABLE);
	p->msix_vectors = n;
	p->msix_shared = n < p->num_queues + 1;
	p->config_vector_set = 0;
	return (int)n;
}

uint32_t vdev_drv_vpci_read_isr(vdev_drv_vpci *p)
{
	if (!p)
		return 0;
	return mem_rd(p, p->isr.gpa, 1);
}
