/* SPDX-License-Identifier: MIT */
/*
 * The driver side of PCI, end to end through public interfaces: a PCI root
 * reached through 0xCF8/0xCFC on a port I/O bus and through ECAM on an MMIO
 * bus, holding a virtio-blk behind virtio-pci at 00:03.0, a multi-function
 * device (00:05.0, 00:05.1) and a bridge (00:07.0) with a function behind it
 * (01:00.0). The driver half enumerates, walks capabilities, assigns BARs and
 * drives the disk with vdev_drv over vdev_drv_vpci, with MSI-X and with
 * INTx. Test-made functions play hostile devices: broken capability lists
 * (raw config space), virtio capabilities that lie about their BARs, and a
 * common config that returns bad queue_notify_off, vector and enable values.
 */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <linux/pci_regs.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_pci.h>
#include <linux/virtio_ring.h>

#include <virtio-dev/virtio-dev.h>

#define BIT(n) (1ull << (n))
#define GPA_BASE 0x100000ull
#define MEM_SIZE (8u << 20)
#define ARENA_SIZE (2u << 20)
#define HDR_GPA(q) (GPA_BASE + ARENA_SIZE + (uint64_t)(q) * 0x100000u)
#define STATUS_GPA(q) (HDR_GPA(q) + 0x100)
#define DATA_GPA(q) (HDR_GPA(q) + 0x1000)
#define IO_LEN 8192u
#define DISK_SIZE (1u << 20)

#define ECAM_BASE 0xe0000000ull
#define NUM_BUSES 4u
#define MMIO32_BASE 0xc0000000ull
#define MMIO32_SIZE 0x10000000ull
#define MMIO64_BASE 0x8000000000ull
#define MMIO64_SIZE 0x40000000ull
#define IO_BASE 0xc000ull
#define IO_SIZE 0x4000ull
#define MSI_ADDR 0xfee00000ull
#define MSI_DATA 0x40u
#define MAXVEC 8u
#define MAXQ 2u

#define VP_ADDR VDEV_PCI_ADDR(0, 3, 0)
#define MF0_ADDR VDEV_PCI_ADDR(0, 5, 0)
#define MF1_ADDR VDEV_PCI_ADDR(0, 5, 1)
#define BR_ADDR VDEV_PCI_ADDR(0, 7, 0)
#define LEAF_ADDR VDEV_PCI_ADDR(1, 0, 0)
#define FAKE_ADDR VDEV_PCI_ADDR(0, 9, 0)
#define NFUNCS 5u

/* A test-made function with a raw 256-byte config space: anything goes. */
struct rawfn {
	uint8_t cfg[256];
};

/* A virtio-pci function built by the test on vdev_pci_cfg, whose BAR 4
 * serves a common config that can lie. */
struct fakevp {
	vdev_pci_cfg *cfg;
	uint8_t regs[0x4000];
	uint32_t dfselect;
	uint16_t noff;     /* queue_notify_off it reports */
	int vec_refuse;    /* vector registers read back NO_VECTOR: 1 all, 2 queues' */
	int enable_stuck;  /* queue_enable stays 0 */
	unsigned accesses; /* BAR accesses that reached it */
};

struct env {
	uint8_t *ram;
	vdev_mem *mem;
	vdev_bus *mmio, *pio;
	vdev_pci_root *root;
	vdev_blk_backend *be;
	vdev_blk *blk;
	vdev_device *dev;
	vdev_virtio_pci *vp;
	vdev_pci_cfg *mf0, *mf1, *br, *leaf;
	struct rawfn *raw;
	struct fakevp *fake;
	unsigned stray; /* driver accesses that hit nothing */
	unsigned msi[MAXVEC], msi_bad, intx_raises;
	int intx;
	uint32_t nq;
	uint64_t hide;
	_Alignas(8) uint8_t vpci_storage[4096];
	vdev_drv_vpci *dp;
	vdev_drv *drv;
	vdev_drvq *q[MAXQ];
};

/* ---- the driver's access paths ------------------------------------------ */

/* Config cycles to absent functions legitimately end in -ENOENT (all ones);
 * only BAR accesses count as strays. */
static uint64_t bus_rd(struct env *e, vdev_bus *bus, uint64_t a, uint32_t width, int count)
{
	uint64_t v = 0;

	if (vdev_bus_read(bus, a, width, 0, &v) == -ENOENT && count)
		e->stray++;
	return v;
}

static void bus_wr(struct env *e, vdev_bus *bus, uint64_t a, uint32_t width, uint64_t v,
		   int count)
{
	if (vdev_bus_write(bus, a, width, 0, &v) == -ENOENT && count)
		e->stray++;
}

static uint32_t cf8_select(struct env *e, uint32_t addr, uint32_t off)
{
	uint32_t sel = 0x80000000u | (addr << 8) | (off & 0xfcu) | ((off & 0xf00u) << 16);

	bus_wr(e, e->pio, 0xcf8, 4, sel, 0);
	return 0xcfcu + (off & 3u);
}

static uint32_t cf8_read(void *ctx, uint32_t addr, uint32_t off, uint32_t width)
{
	struct env *e = ctx;

	return (uint32_t)bus_rd(e, e->pio, cf8_select(e, addr, off), width, 0);
}

static void cf8_write(void *ctx, uint32_t addr, uint32_t off, uint32_t width, uint32_t v)
{
	struct env *e = ctx;

	bus_wr(e, e->pio, cf8_select(e, addr, off), width, v, 0);
}

static uint64_t ecam_addr(uint32_t addr, uint32_t off)
{
	return ECAM_BASE + ((uint64_t)addr << 12) + off;
}

static uint32_t ecam_read(void *ctx, uint32_t addr, uint32_t off, uint32_t width)
{
	struct env *e = ctx;

	return (uint32_t)bus_rd(e, e->mmio, ecam_addr(addr, off), width, 0);
}

static void ecam_write(void *ctx, uint32_t addr, uint32_t off, uint32_t width, uint32_t v)
{
	struct env *e = ctx;

	bus_wr(e, e->mmio, ecam_addr(addr, off), width, v, 0);
}

static uint64_t m_read(void *ctx, uint64_t gpa, uint32_t width)
{
	struct env *e = ctx;

	return bus_rd(e, e->mmio, gpa, width, 1);
}

static void m_write(void *ctx, uint64_t gpa, uint32_t width, uint64_t v)
{
	struct env *e = ctx;

	bus_wr(e, e->mmio, gpa, width, v, 1);
}

static uint32_t p_read(void *ctx, uint32_t port, uint32_t width)
{
	struct env *e = ctx;

	return (uint32_t)bus_rd(e, e->pio, port, width, 1);
}

static void p_write(void *ctx, uint32_t port, uint32_t width, uint32_t v)
{
	struct env *e = ctx;

	bus_wr(e, e->pio, port, width, v, 1);
}

static const struct vdev_drv_pci_io_ops io_cf8 = {
	.struct_size = sizeof(struct vdev_drv_pci_io_ops),
	.cfg_read = cf8_read,
	.cfg_write = cf8_write,
	.mem_read = m_read,
	.mem_write = m_write,
	.io_read = p_read,
	.io_write = p_write,
};

static const struct vdev_drv_pci_io_ops io_ecam = {
	.struct_size = sizeof(struct vdev_drv_pci_io_ops),
	.cfg_read = ecam_read,
	.cfg_write = ecam_write,
	.mem_read = m_read,
	.mem_write = m_write,
	.io_read = p_read,
	.io_write = p_write,
};

static const struct vdev_drv_pci_io_ops *const flavours[] = {&io_cf8, &io_ecam};

/* ---- interrupts ----------------------------------------------------------- */

static int msi_signal(void *opaque, uint32_t vector, uint64_t address, uint32_t data)
{
	struct env *e = opaque;

	if (vector < MAXVEC)
		__atomic_fetch_add(&e->msi[vector], 1, __ATOMIC_RELAXED);
	if (vector >= MAXVEC || address != MSI_ADDR || data != MSI_DATA + vector)
		__atomic_fetch_add(&e->msi_bad, 1, __ATOMIC_RELAXED);
	return 0;
}

static int msi_set_intx(void *opaque, uint32_t level)
{
	struct env *e = opaque;

	__atomic_store_n(&e->intx, (int)level, __ATOMIC_RELAXED);
	if (level)
		__atomic_fetch_add(&e->intx_raises, 1, __ATOMIC_RELAXED);
	return 0;
}

static const struct vdev_pci_msi_ops msi_ops = {
	.struct_size = sizeof(struct vdev_pci_msi_ops),
	.signal = msi_signal,
	.set_intx = msi_set_intx,
};

/* ---- test-made functions ---------------------------------------------------- */

static int bar_eio_read(void *opaque, const struct vdev_bus_access *a, void *data)
{
	(void)opaque;
	(void)a;
	(void)data;
	return -EIO;
}

static int bar_eio_write(void *opaque, const struct vdev_bus_access *a, const void *data)
{
	(void)opaque;
	(void)a;
	(void)data;
	return -EIO;
}

static uint32_t raw_cfg_read(void *opaque, uint32_t reg)
{
	struct rawfn *f = opaque;
	uint32_t v = 0;

	if (reg < 64)
		memcpy(&v, f->cfg + reg * 4, 4);
	return v;
}

/* Only the command register takes writes; BARs are unimplemented. */
static int raw_cfg_write(void *opaque, uint32_t reg, uint32_t offset, const void *data,
			 uint32_t size)
{
	struct rawfn *f = opaque;

	if (reg == PCI_COMMAND / 4 && offset + size <= 2)
		memcpy(f->cfg + PCI_COMMAND + offset, data, size);
	return 0;
}

static const struct vdev_bus_device_ops raw_ops = {
	.struct_size = sizeof(struct vdev_bus_device_ops),
	.read = bar_eio_read,
	.write = bar_eio_write,
	.config_register_read = raw_cfg_read,
	.config_register_write = raw_cfg_write,
};

static int32_t bridge_secondary(void *opaque)
{
	return (int32_t)((vdev_pci_cfg_read(opaque, PCI_PRIMARY_BUS / 4) >> 8) & 0xffu);
}

static struct vdev_bus_device_ops bridge_ops;

static uint32_t fake_cfg_read(void *opaque, uint32_t reg)
{
	return vdev_pci_cfg_read(((struct fakevp *)opaque)->cfg, reg);
}

static int fake_cfg_write(void *opaque, uint32_t reg, uint32_t offset, const void *data,
			  uint32_t size)
{
	return vdev_pci_cfg_write(((struct fakevp *)opaque)->cfg, reg, offset, data, size);
}

static int fake_is_bar4(struct fakevp *f, const struct vdev_bus_access *a)
{
	uint64_t addr, size;
	uint32_t kind;

	return vdev_pci_cfg_bar(f->cfg, 4, &addr, &size, &kind) == 0 && a->base == addr &&
	       a->offset + a->size <= sizeof(f->regs);
}

static int fake_read(void *opaque, const struct vdev_bus_access *a, void *data)
{
	struct fakevp *f = opaque;
	uint64_t v = 0;

	f->accesses++;
	if (!fake_is_bar4(f, a))
		return 0; /* the MSI-X BAR: reads 0 */
	memcpy(&v, f->regs + a->offset, a->size);
	if (a->offset == VIRTIO_PCI_COMMON_DF)
		v = f->dfselect == 1 ? 1 : 0; /* VERSION_1 only */
	else if (a->offset == VIRTIO_PCI_COMMON_Q_NOFF)
		v = f->noff;
	memcpy(data, &v, a->size);
	return 0;
}

static int fake_write(void *opaque, const struct vdev_bus_access *a, const void *data)
{
	struct fakevp *f = opaque;
	uint32_t v = 0;

	f->accesses++;
	if (!fake_is_bar4(f, a))
		return 0;
	memcpy(&v, data, a->size < 4 ? a->size : 4);
	if (a->offset == VIRTIO_PCI_COMMON_DFSELECT)
		f->dfselect = v;
	if ((a->offset == VIRTIO_PCI_COMMON_MSIX && f->vec_refuse == 1) ||
	    (a->offset == VIRTIO_PCI_COMMON_Q_MSIX && f->vec_refuse))
		v = VIRTIO_MSI_NO_VECTOR;
	if (a->offset == VIRTIO_PCI_COMMON_Q_ENABLE && f->enable_stuck)
		v = 0;
	memcpy(f->regs + a->offset, &v, a->size < 4 ? a->size : 4);
	return 0;
}

static const struct vdev_bus_device_ops fake_ops = {
	.struct_size = sizeof(struct vdev_bus_device_ops),
	.read = fake_read,
	.write = fake_write,
	.config_register_read = fake_cfg_read,
	.config_register_write = fake_cfg_write,
};

/* ---- environment ------------------------------------------------------------ */

struct opts {
	uint32_t vp_flags;     /* VDEV_VIRTIO_PCI_F_* */
	uint32_t msix_vectors; /* 0: default */
	uint32_t nq;           /* blk queues (0: 1) */
};

static vdev_pci_cfg *plain_fn(uint16_t device, uint32_t header_type, uint8_t mf)
{
	struct vdev_pci_cfg_config c = VDEV_PCI_CFG_CONFIG_INIT;
	vdev_pci_cfg *cfg;

	c.header_type = header_type;
	c.vendor_id = 0x1234;
	c.device_id = device;
	c.class_code = header_type ? 0x060400u : 0x058000u;
	c.revision = (uint8_t)(device >> 8);
	c.multifunction = mf;
	ck_assert_int_eq(vdev_pci_cfg_new(&c, &cfg), 0);
	return cfg;
}

static struct env *env_new(const struct opts *o)
{
	struct vdev_pci_root_config rc = VDEV_PCI_ROOT_CONFIG_INIT;
	struct vdev_virtio_pci_config vc = VDEV_VIRTIO_PCI_CONFIG_INIT;
	struct vdev_blk_config bc = VDEV_BLK_CONFIG_INIT;
	struct env *e = calloc(1, sizeof(*e));
	uint32_t bridge_buses = 0x00010100u; /* primary 0, secondary 1, subordinate 1 */

	ck_assert_ptr_nonnull(e);
	e->ram = aligned_alloc(4096, MEM_SIZE);
	ck_assert_ptr_nonnull(e->ram);
	memset(e->ram, 0, MEM_SIZE);
	ck_assert_int_eq(vdev_mem_new(&e->mem), 0);
	ck_assert_int_eq(vdev_mem_add_region(e->mem, GPA_BASE, MEM_SIZE, e->ram, 0), 0);
	ck_assert_int_eq(vdev_bus_new(VDEV_BUS_MMIO, &e->mmio), 0);
	ck_assert_int_eq(vdev_bus_new(VDEV_BUS_PIO, &e->pio), 0);

	rc.num_buses = NUM_BUSES;
	rc.mmio_bus = e->mmio;
	rc.pio_bus = e->pio;
	rc.mmio32_base = MMIO32_BASE;
	rc.mmio32_size = MMIO32_SIZE;
	rc.mmio64_base = MMIO64_BASE;
	rc.mmio64_size = MMIO64_SIZE;
	rc.io_base = IO_BASE;
	rc.io_size = IO_SIZE;
	ck_assert_int_eq(vdev_pci_root_new(&rc, &e->root), 0);
	ck_assert_int_eq(vdev_bus_insert(e->pio, 0xcf8, 8, vdev_pci_root_pio_ops(), e->root), 0);
	ck_assert_int_eq(vdev_bus_insert(e->mmio, ECAM_BASE, NUM_BUSES * VDEV_PCI_ECAM_BUS_SIZE,
					 vdev_pci_root_ecam_ops(), e->root),
			 0);

	/* virtio-blk behind virtio-pci at 00:03.0. */
	e->nq = o && o->nq ? o->nq : 1;
	ck_assert_int_eq(vdev_blk_backend_new_memory(DISK_SIZE, 0, &e->be), 0);
	bc.num_queues = e->nq;
	bc.queue_size = 64;
	ck_assert_int_eq(vdev_blk_new(&bc, e->be, &e->blk), 0);
	e->dev = vdev_blk_device(e->blk);
	ck_assert_int_eq(vdev_device_set_memory(e->dev, e->mem), 0);
	vc.flags = o ? o->vp_flags : 0;
	vc.msix_vectors = o ? o->msix_vectors : 0;
	vc.msi_ops = &msi_ops;
	vc.msi_opaque = e;
	ck_assert_int_eq(vdev_virtio_pci_new(&vc, e->dev, &e->vp), 0);
	ck_assert_int_eq(vdev_pci_root_add(e->root, VP_ADDR, vdev_virtio_pci_bus_ops(), e->vp), 0);

	/* A two-function device with a 64-bit, an I/O and a 32-bit BAR. */
	e->mf0 = plain_fn(0x5000, 0, 1);
	ck_assert_int_eq(vdev_pci_cfg_add_bar(e->mf0, 0, 0x10000,
					      VDEV_PCI_BAR_MEM64 | VDEV_PCI_BAR_PREFETCH),
			 0);
	ck_assert_int_eq(vdev_pci_cfg_add_bar(e->mf0, 2, 0x20, VDEV_PCI_BAR_IO), 0);
	ck_assert_int_eq(vdev_pci_cfg_add_bar(e->mf0, 3, 0x1000, VDEV_PCI_BAR_MEM32), 0);
	ck_assert_int_eq(vdev_pci_root_add(e->root, MF0_ADDR, vdev_pci_cfg_bus_ops(), e->mf0), 0);
	e->mf1 = plain_fn(0x5001, 0, 0);
	/* Two 64-bit BARs, the smaller first. */
	ck_assert_int_eq(vdev_pci_cfg_add_bar(e->mf1, 0, 0x1000, VDEV_PCI_BAR_MEM64), 0);
	ck_assert_int_eq(vdev_pci_cfg_add_bar(e->mf1, 2, 0x100000, VDEV_PCI_BAR_MEM64), 0);
	ck_assert_int_eq(vdev_pci_root_add(e->root, MF1_ADDR, vdev_pci_cfg_bus_ops(), e->mf1), 0);

	/* A bridge to bus 1 with one function behind it. */
	bridge_ops = *vdev_pci_cfg_bus_ops();
	bridge_ops.is_bridge = bridge_secondary;
	e->br = plain_fn(0x6000, 1, 0);
	ck_assert_int_eq(vdev_pci_root_add(e->root, BR_ADDR, &bridge_ops, e->br), 0);
	e->leaf = plain_fn(0x7000, 0, 0);
	ck_assert_int_eq(vdev_pci_root_add(e->root, LEAF_ADDR, vdev_pci_cfg_bus_ops(), e->leaf), 0);
	ck_assert_int_eq(vdev_pci_root_config_write(e->root, BR_ADDR, PCI_PRIMARY_BUS / 4, 0, 4,
						    &bridge_buses),
			 0);
	return e;
}

static void env_free(struct env *e)
{
	if (e->drv)
		vdev_drv_reset(e->drv);
	vdev_drv_free(e->drv);
	ck_assert_int_eq(vdev_bus_remove(e->pio, 0xcf8), 0);
	ck_assert_int_eq(vdev_bus_remove(e->mmio, ECAM_BASE), 0);
	vdev_pci_root_free(e->root);
	vdev_virtio_pci_free(e->vp);
	vdev_blk_free(e->blk);
	vdev_blk_backend_free(e->be);
	vdev_pci_cfg_free(e->mf0);
	vdev_pci_cfg_free(e->mf1);
	vdev_pci_cfg_free(e->br);
	vdev_pci_cfg_free(e->leaf);
	if (e->fake)
		vdev_pci_cfg_free(e->fake->cfg);
	free(e->fake);
	free(e->raw);
	vdev_bus_free(e->mmio);
	vdev_bus_free(e->pio);
	vdev_mem_free(e->mem);
	free(e->ram);
	free(e);
}

static struct vdev_drv_pci_window mem_window(uint64_t base, uint64_t size)
{
	struct vdev_drv_pci_window w = {.base = base, .size = size, .next = base};

	return w;
}

static uint32_t cfg16(struct env *e, uint32_t addr, uint32_t off)
{
	return io_ecam.cfg_read(e, addr, off, 2);
}

/* Is [a, a+1) claimed on @bus? (Functions built on vdev_pci_cfg_bus_ops
 * answer BAR accesses with -EIO; nothing there gives -ENOENT.) */
static int claimed(vdev_bus *bus, uint64_t a)
{
	uint8_t v;

	return vdev_bus_read(bus, a, 1, 0, &v) != -ENOENT;
}

/* ---- enumeration --------------------------------------------------------------- */

static void check_found(const struct vdev_drv_pci_function *f, int n)
{
	ck_assert_int_eq(n, NFUNCS);
	/* Depth-first: the function behind the bridge right after the bridge. */
	ck_assert_uint_eq(f[0].addr, VP_ADDR);
	ck_assert_uint_eq(f[0].vendor_id, VDEV_VIRTIO_PCI_VENDOR_ID);
	ck_assert_uint_eq(f[0].device_id, VDEV_VIRTIO_PCI_DEVICE_ID_BASE + VIRTIO_ID_BLOCK);
	ck_assert_uint_eq(f[0].class_code, 0x018000);
	ck_assert_uint_eq(f[1].addr, MF0_ADDR);
	ck_assert_uint_eq(f[1].device_id, 0x5000);
	ck_assert_uint_eq(f[1].revision, 0x50);
	ck_assert_uint_eq(f[1].header_type, 0);
	ck_assert_uint_eq(f[2].addr, MF1_ADDR);
	ck_assert_uint_eq(f[2].device_id, 0x5001);
	ck_assert_uint_eq(f[3].addr, BR_ADDR);
	ck_assert_uint_eq(f[3].header_type, 1);
	ck_assert_uint_eq(f[3].class_code, 0x060400);
	ck_assert_uint_eq(f[3].secondary_bus, 1);
	ck_assert_uint_eq(f[3].subordinate_bus, 1);
	ck_assert_uint_eq(f[4].addr, LEAF_ADDR);
	ck_assert_uint_eq(f[4].device_id, 0x7000);
}

START_TEST(test_enumerate)
{
	struct env *e = env_new(NULL);
	struct vdev_drv_pci_function a[16], b[16], c[2];
	uint32_t sec = 0;
	int n;

	memset(a, 0xaa, sizeof(a));
	memset(b, 0x55, sizeof(b));
	n = vdev_drv_pci_enumerate(&io_cf8, e, a, 16);
	check_found(a, n);
	ck_assert_int_eq(vdev_drv_pci_enumerate(&io_ecam, e, b, 16), n);
	ck_assert_mem_eq(a, b, n * sizeof(a[0]));

	/* A short array: the count is still the total. */
	ck_assert_int_eq(vdev_drv_pci_enumerate(&io_ecam, e, c, 2), NFUNCS);
	ck_assert_mem_eq(a, c, sizeof(c));
	ck_assert_int_eq(vdev_drv_pci_enumerate(&io_ecam, e, NULL, 0), NFUNCS);

	/* A bridge whose secondary bus points back at its own bus is not
	 * followed; one to an empty bus finds nothing more. */
	io_ecam.cfg_write(e, BR_ADDR, PCI_SECONDARY_BUS, 1, sec);
	ck_assert_int_eq(vdev_drv_pci_enumerate(&io_cf8, e, a, 16), NFUNCS - 1);
	ck_assert_uint_eq(a[3].secondary_bus, 0);
	io_ecam.cfg_write(e, BR_ADDR, PCI_SECONDARY_BUS, 1, 2);
	ck_assert_int_eq(vdev_drv_pci_enumerate(&io_cf8, e, a, 16), NFUNCS - 1);
	ck_assert_uint_eq(a[3].secondary_bus, 2);

	ck_assert_int_eq(vdev_drv_pci_enumerate(NULL, e, a, 16), -EINVAL);
	ck_assert_int_eq(vdev_drv_pci_enumerate(&io_cf8, e, NULL, 1), -EINVAL);
	ck_assert_uint_eq(e->stray, 0);
	env_free(e);
}
END_TEST

/* ---- capabilities ----------------------------------------------------------------- */

START_TEST(test_capabilities)
{
	struct env *e = env_new(NULL);
	const struct vdev_drv_pci_io_ops *io = flavours[_i];
	uint32_t seen = 0;
	int pos, msix, n = 0;

	msix = vdev_drv_pci_find_capability(io, e, VP_ADDR, PCI_CAP_ID_MSIX, 0);
	ck_assert_int_ge(msix, 0x40);
	ck_assert_int_eq(msix & 3, 0);
	ck_assert_int_eq(vdev_drv_pci_find_capability(io, e, VP_ADDR, PCI_CAP_ID_MSIX, msix),
			 -ENOENT);
	for (pos = 0;;) {
		uint32_t type;

		pos = vdev_drv_pci_find_capability(io, e, VP_ADDR, PCI_CAP_ID_VNDR, (uint32_t)pos);
		if (pos == -ENOENT)
			break;
		ck_assert_int_ge(pos, 0x40);
		ck_assert_int_lt(++n, 16);
		type = io->cfg_read(e, VP_ADDR, (uint32_t)pos + VIRTIO_PCI_CAP_CFG_TYPE, 1);
		ck_assert_uint_eq(seen & (1u << type), 0);
		seen |= 1u << type;
	}
	ck_assert_uint_eq(seen, (1u << VIRTIO_PCI_CAP_COMMON_CFG) |
					(1u << VIRTIO_PCI_CAP_NOTIFY_CFG) |
					(1u << VIRTIO_PCI_CAP_ISR_CFG) |
					(1u << VIRTIO_PCI_CAP_DEVICE_CFG) |
					(1u << VIRTIO_PCI_CAP_PCI_CFG));
	/* No capabilities at all. */
	ck_assert_int_eq(vdev_drv_pci_find_capability(io, e, MF1_ADDR, PCI_CAP_ID_MSIX, 0),
			 -ENOENT);
	/* Absent function: all ones, not a list. */
	ck_assert_int_eq(vdev_drv_pci_find_capability(io, e, VDEV_PCI_ADDR(0, 20, 0),
						      PCI_CAP_ID_MSIX, 0),
			 -ENOENT);
	ck_assert_int_eq(vdev_drv_pci_find_capability(io, e, VP_ADDR, PCI_CAP_ID_MSIX, 0x10),
			 -EINVAL);
	ck_assert_int_eq(vdev_drv_pci_find_capability(NULL, e, VP_ADDR, PCI_CAP_ID_MSIX, 0),
			 -EINVAL);
	ck_assert_int_eq(vdev_drv_pci_find_capability(io, e, 0x10000, PCI_CAP_ID_MSIX, 0),
			 -EINVAL);
	ck_assert_uint_eq(e->stray, 0);
	env_free(e);
}
END_TEST

/* Malformed lists in a raw config space end the walk, never hang it. */
START_TEST(test_capabilities_malformed)
{
	struct env *e = env_new(NULL);
	const struct vdev_drv_pci_io_ops *io = flavours[_i];
	struct rawfn *f = calloc(1, sizeof(*f));
	uint8_t *c;

	ck_assert_ptr_nonnull(f);
	e->raw = f;
	c = f->cfg;
	c[0] = 0x34;
	c[1] = 0x12;
	c[2] = 0x01;
	c[PCI_STATUS] = PCI_STATUS_CAP_LIST;
	ck_assert_int_eq(vdev_pci_root_add(e->root, FAKE_ADDR, &raw_ops, f), 0);

	/* 0x40 -> 0x40: a loop. */
	c[PCI_CAPABILITY_LIST] = 0x40;
	c[0x40] = PCI_CAP_ID_VNDR;
	c[0x41] = 0x40;
	ck_assert_int_eq(vdev_drv_pci_find_capability(io, e, FAKE_ADDR, PCI_CAP_ID_MSIX, 0),
			 -ELOOP);
	ck_assert_int_eq(vdev_drv_pci_find_capability(io, e, FAKE_ADDR, PCI_CAP_ID_VNDR, 0), 0x40);
	/* A longer loop: 0x40 -> 0x80 -> 0x40, continued from the middle. */
	c[0x41] = 0x80;
	c[0x80] = PCI_CAP_ID_PM;
	c[0x81] = 0x40;
	ck_assert_int_eq(vdev_drv_pci_find_capability(io, e, FAKE_ADDR, PCI_CAP_ID_MSIX, 0x80),
			 -ELOOP);
	/* Pointers into the header. */
	c[PCI_CAPABILITY_LIST] = 0x20;
	ck_assert_int_eq(vdev_drv_pci_find_capability(io, e, FAKE_ADDR, PCI_CAP_ID_MSIX, 0),
			 -EBADMSG);
	c[PCI_CAPABILITY_LIST] = 0x40;
	c[0x81] = 0x3c;
	ck_assert_int_eq(vdev_drv_pci_find_capability(io, e, FAKE_ADDR, PCI_CAP_ID_MSIX, 0),
			 -EBADMSG);
	/* The low two bits of a pointer are masked off (reserved). */
	c[0x81] = 0xc3;
	c[0xc0] = PCI_CAP_ID_MSIX;
	ck_assert_int_eq(vdev_drv_pci_find_capability(io, e, FAKE_ADDR, PCI_CAP_ID_MSIX, 0), 0xc0);
	c[0xc1] = 0;
	ck_assert_int_eq(vdev_drv_pci_find_capability(io, e, FAKE_ADDR, PCI_CAP_ID_EXP, 0),
			 -ENOENT);
	/* An ID of 0xff reads as a vanished function: the end. */
	c[0xc0] = 0xff;
	c[0xc1] = 0x40;
	ck_assert_int_eq(vdev_drv_pci_find_capability(io, e, FAKE_ADDR, PCI_CAP_ID_EXP, 0),
			 -ENOENT);
	/* No capability-list bit, or a CardBus header: no list. */
	c[PCI_STATUS] = 0;
	ck_assert_int_eq(vdev_drv_pci_find_capability(io, e, FAKE_ADDR, PCI_CAP_ID_VNDR, 0),
			 -ENOENT);
	c[PCI_STATUS] = PCI_STATUS_CAP_LIST;
	c[PCI_HEADER_TYPE] = PCI_HEADER_TYPE_CARDBUS;
	ck_assert_int_eq(vdev_drv_pci_find_capability(io, e, FAKE_ADDR, PCI_CAP_ID_VNDR, 0),
			 -ENOENT);
	/* And nothing to assign or to drive. */
	{
		struct vdev_drv_pci_window w = mem_window(MMIO32_BASE, MMIO32_SIZE);

		ck_assert_int_eq(vdev_drv_pci_assign_bars(io, e, FAKE_ADDR, &w, NULL), -EINVAL);
		ck_assert_uint_eq(vdev_drv_pci_bar_address(io, e, FAKE_ADDR, 0), 0);
	}
	ck_assert_uint_eq(e->stray, 0);
	env_free(e);
}
END_TEST

/* ---- BAR assignment ----------------------------------------------------------- */

START_TEST(test_assign_bars)
{
	struct env *e = env_new(NULL);
	const struct vdev_drv_pci_io_ops *io = flavours[_i];
	struct vdev_drv_pci_window mem = mem_window(MMIO32_BASE, 0x1000000);
	struct vdev_drv_pci_window iow = mem_window(IO_BASE, IO_SIZE);
	struct vdev_drv_pci_window hi = mem_window(MMIO64_BASE, MMIO64_SIZE);
	struct vdev_drv_pci_window tiny = mem_window(MMIO32_BASE + 0x2000000, 0x1000);
	uint64_t b1, b4, a0, a3, io2, cap;

	ck_assert(!claimed(e->mmio, MMIO32_BASE));
	ck_assert_int_eq(vdev_drv_pci_assign_bars(io, e, VP_ADDR, &mem, NULL), 0);
	b1 = vdev_drv_pci_bar_address(io, e, VP_ADDR, VDEV_VIRTIO_PCI_BAR_MSIX);
	b4 = vdev_drv_pci_bar_address(io, e, VP_ADDR, VDEV_VIRTIO_PCI_BAR_MODERN);
	ck_assert_uint_ge(b4, MMIO32_BASE);
	ck_assert_uint_eq(b4 % VDEV_VIRTIO_PCI_BAR4_SIZE, 0);
	ck_assert_uint_ge(b1, MMIO32_BASE);
	ck_assert_uint_ne(b1, b4);
	ck_assert_uint_le(mem.next, MMIO32_BASE + 0x1000000);
	ck_assert_uint_eq(vdev_drv_pci_bar_address(io, e, VP_ADDR, 5), 0); /* upper half */
	ck_assert_uint_eq(cfg16(e, VP_ADDR, PCI_COMMAND) &
				  (PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_IO),
			  PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	/* The root placed BAR 4: the device answers there. */
	ck_assert_uint_eq(m_read(e, b4 + VDEV_VIRTIO_PCI_COMMON_OFFSET + VIRTIO_PCI_COMMON_NUMQ, 2),
			  1);
	cap = m_read(e, b4 + VDEV_VIRTIO_PCI_DEVICE_OFFSET, 4);
	ck_assert_uint_eq(cap, DISK_SIZE / 512);

	/* 64-bit, I/O and 32-bit BARs; largest first, all aligned, no overlap. */
	ck_assert_int_eq(vdev_drv_pci_assign_bars(io, e, MF0_ADDR, &mem, &iow), 0);
	a0 = vdev_drv_pci_bar_address(io, e, MF0_ADDR, 0);
	io2 = vdev_drv_pci_bar_address(io, e, MF0_ADDR, 2);
	a3 = vdev_drv_pci_bar_address(io, e, MF0_ADDR, 3);
	ck_assert_uint_eq(a0 % 0x10000, 0);
	ck_assert_uint_eq(a3 % 0x1000, 0);
	ck_assert_uint_eq(io2 % 0x20, 0);
	ck_assert_uint_ge(io2, IO_BASE);
	ck_assert(a0 + 0x10000 <= a3 || a3 + 0x1000 <= a0);
	ck_assert(a0 + 0x10000 <= b4 || b4 + VDEV_VIRTIO_PCI_BAR4_SIZE <= a0);
	ck_assert_uint_eq(vdev_drv_pci_bar_address(io, e, MF0_ADDR, 1), 0);
	ck_assert_uint_eq(cfg16(e, MF0_ADDR, PCI_COMMAND) &
				  (PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_IO),
			  PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_IO);
	ck_assert(claimed(e->mmio, a0));
	ck_assert(claimed(e->mmio, a3));
	ck_assert(claimed(e->pio, io2));

	/* 64-bit BARs above 4 GiB, packed largest first into a window that
	 * holds them exactly. */
	hi.size = 0x101000;
	ck_assert_int_eq(vdev_drv_pci_assign_bars(io, e, MF1_ADDR, &hi, NULL), 0);
	ck_assert_uint_eq(vdev_drv_pci_bar_address(io, e, MF1_ADDR, 2), MMIO64_BASE);
	ck_assert_uint_eq(vdev_drv_pci_bar_address(io, e, MF1_ADDR, 0), MMIO64_BASE + 0x100000);
	ck_assert_uint_eq(hi.next, MMIO64_BASE + 0x101000);
	ck_assert(claimed(e->mmio, MMIO64_BASE + 0x100fff));
	ck_assert(!claimed(e->mmio, MMIO64_BASE + 0x101000));
	hi.size = MMIO64_SIZE;

	/* Out of room: -ENOSPC, and the function decodes nothing. */
	ck_assert_int_eq(vdev_drv_pci_assign_bars(io, e, VP_ADDR, &tiny, NULL), -ENOSPC);
	ck_assert_uint_eq(cfg16(e, VP_ADDR, PCI_COMMAND) & (PCI_COMMAND_MEMORY | PCI_COMMAND_IO),
			  0);
	ck_assert(!claimed(e->mmio, b4));
	/* A 32-bit BAR cannot go above 4 GiB. */
	ck_assert_int_eq(vdev_drv_pci_assign_bars(io, e, MF0_ADDR, &hi, &iow), -ENOSPC);
	/* Without an I/O window the I/O BAR is left alone and I/O decode off. */
	mem = mem_window(MMIO32_BASE + 0x4000000, 0x1000000);
	ck_assert_int_eq(vdev_drv_pci_assign_bars(io, e, MF0_ADDR, &mem, NULL), 0);
	ck_assert_uint_eq(cfg16(e, MF0_ADDR, PCI_COMMAND) & PCI_COMMAND_IO, 0);
	ck_assert(!claimed(e->pio, io2));

	ck_assert_int_eq(vdev_drv_pci_assign_bars(io, e, VDEV_PCI_ADDR(0, 20, 0), &mem, NULL),
			 -EINVAL);
	ck_assert_int_eq(vdev_drv_pci_assign_bars(io, e, VP_ADDR, NULL, NULL), -EINVAL);
	ck_assert_int_eq(vdev_drv_pci_assign_bars(NULL, e, VP_ADDR, &mem, NULL), -EINVAL);
	ck_assert_uint_eq(vdev_drv_pci_bar_address(io, e, VP_ADDR, 6), 0);
	ck_assert_uint_eq(e->stray, 0);
	env_free(e);
}
END_TEST

/* ---- virtio-blk over virtio-pci ---------------------------------------------------- */

static uint64_t d_negotiate(vdev_drv *drv, void *opaque, uint64_t offered)
{
	struct env *e = opaque;

	(void)drv;
	return offered & ~e->hide;
}

static int d_pre_init(vdev_drv *drv, void *opaque)
{
	struct env *e = opaque;

	for (uint32_t i = 0; i < e->nq; i++) {
		int r = vdev_drv_queue_setup(drv, i, 32, 8, &e->q[i]);

		if (r < 0)
			return r;
	}
	return 0;
}

static const struct vdev_driver_ops drv_ops = {
	.struct_size = sizeof(struct vdev_driver_ops),
	.negotiate_features = d_negotiate,
	.pre_device_initialization = d_pre_init,
};

/* vdev_drv over vdev_drv_vpci at @addr (vdev_drv_vpci_init already done). */
static int drv_start(struct env *e)
{
	struct vdev_drv_config dc = VDEV_DRV_CONFIG_INIT;

	if (!e->drv) {
		dc.transport = vdev_drv_vpci_transport();
		dc.transport_opaque = e->dp;
		dc.driver = &drv_ops;
		dc.driver_opaque = e;
		dc.arena = e->ram;
		dc.arena_gpa = GPA_BASE;
		dc.arena_size = ARENA_SIZE;
		ck_assert_int_eq(vdev_drv_new(&dc, &e->drv), 0);
	}
	return vdev_drv_start(e->drv);
}

/* One request on queue @qi: @len bytes at @sector, written from or read
 * into DATA_GPA(qi). Waits for it and returns the status byte. */
static uint8_t blk_rw(struct env *e, uint32_t qi, int write, uint64_t sector, uint32_t len)
{
	struct virtio_blk_outhdr h = {.type = write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN,
				      .sector = sector};
	uint64_t addr[3] = {HDR_GPA(qi), DATA_GPA(qi), STATUS_GPA(qi)};
	uint32_t lens[3] = {sizeof(h), len, 1};
	uint8_t *status = e->ram + (STATUS_GPA(qi) - GPA_BASE);
	void *tok = NULL;
	uint32_t used = 0;
	int n = 0;

	memcpy(e->ram + (HDR_GPA(qi) - GPA_BASE), &h, sizeof(h));
	*status = 0xee;
	ck_assert_int_eq(vdev_drvq_add(e->q[qi], addr, lens, write ? 2 : 1, write ? 1 : 2, &h, 0),
			 0);
	vdev_drvq_kick(e->q[qi]);
	for (;;) {
		int r = vdev_drvq_get_used(e->q[qi], &tok, &used);
		int fd;

		ck_assert_int_ge(r, 0);
		if (r == 1)
			break;
		ck_assert_int_lt(++n, 20000);
		fd = vdev_blk_completion_fd(e->blk, qi);
		if (fd >= 0) {
			struct pollfd p = {.fd = fd, .events = POLLIN};

			poll(&p, 1, 5);
		}
		vdev_blk_process_completions(e->blk, qi);
	}
	ck_assert_ptr_eq(tok, &h);
	return *status;
}

/* Write a pattern through each queue, read it back, check the disk bytes. */
static void blk_roundtrip(struct env *e, uint8_t seed)
{
	const uint8_t *disk = vdev_blk_backend_memory_data(e->be);

	for (uint32_t qi = 0; qi < e->nq; qi++) {
		uint8_t *data = e->ram + (DATA_GPA(qi) - GPA_BASE);
		uint64_t sector = 64u * qi + seed;
		uint8_t expect[IO_LEN];

		for (uint32_t i = 0; i < IO_LEN; i++)
			expect[i] = (uint8_t)(i * 13 + seed + qi);
		memcpy(data, expect, IO_LEN);
		ck_assert_uint_eq(blk_rw(e, qi, 1, sector, IO_LEN), VIRTIO_BLK_S_OK);
		ck_assert_mem_eq(disk + sector * 512, expect, IO_LEN);
		memset(data, 0, IO_LEN);
		ck_assert_uint_eq(blk_rw(e, qi, 0, sector, IO_LEN), VIRTIO_BLK_S_OK);
		ck_assert_mem_eq(data, expect, IO_LEN);
	}
}

/* Assign the virtio function's BARs, init the driver side, start vdev_drv. */
static void vp_bring_up(struct env *e, const struct vdev_drv_pci_io_ops *io, int msix,
			int expect_vectors)
{
	struct vdev_drv_pci_window mem = mem_window(MMIO32_BASE, 0x1000000);

	ck_assert_int_eq(vdev_drv_pci_assign_bars(io, e, VP_ADDR, &mem, NULL), 0);
	ck_assert_int_eq(vdev_drv_vpci_init(e->vpci_storage, sizeof(e->vpci_storage), io, e,
					    VP_ADDR, &e->dp),
			 0);
	ck_assert_uint_eq(vdev_drv_vpci_device_type(e->dp), VIRTIO_ID_BLOCK);
	if (msix)
		ck_assert_int_eq(vdev_drv_vpci_enable_msix(e->dp, MSI_ADDR, MSI_DATA),
				 expect_vectors);
	ck_assert_int_eq(drv_start(e), 0);
	ck_assert(vdev_drv_status(e->drv) & VIRTIO_CONFIG_S_DRIVER_OK);
}

enum { V_MSIX, V_MSIX_PACKED, V_MSIX_2Q, V_MSIX_SHARED, V_INTX, V_NO_MSIX_CAP, V_COUNT };

START_TEST(test_blk)
{
	struct opts o = {0};
	struct env *e;
	int msix = _i != V_INTX && _i != V_NO_MSIX_CAP;
	int vectors = 2;

	if (_i == V_MSIX_2Q || _i == V_MSIX_SHARED) {
		o.nq = 2;
		vectors = 3;
	}
	if (_i == V_MSIX_SHARED)
		o.msix_vectors = vectors = 2; /* fewer than 1 + 2 queues: all on vector 0 */
	if (_i == V_NO_MSIX_CAP)
		o.vp_flags = VDEV_VIRTIO_PCI_F_NO_MSIX;
	e = env_new(&o);
	if (_i != V_MSIX_PACKED)
		e->hide = BIT(VIRTIO_F_RING_PACKED);
	vp_bring_up(e, flavours[_i & 1], msix, vectors);
	if (_i == V_MSIX_PACKED)
		ck_assert(vdev_drv_features(e->drv) & BIT(VIRTIO_F_RING_PACKED));
	else
		ck_assert(!(vdev_drv_features(e->drv) & BIT(VIRTIO_F_RING_PACKED)));
	if (_i == V_NO_MSIX_CAP)
		ck_assert_int_eq(vdev_drv_vpci_enable_msix(e->dp, MSI_ADDR, MSI_DATA), -ENOTSUP);

	blk_roundtrip(e, 3);

	if (msix) {
		/* Each queue's interrupts on its own vector (or all on 0 when
		 * shared); the config vector stayed quiet; no INTx. */
		for (uint32_t qi = 0; qi < e->nq; qi++) {
			if (_i == V_MSIX_SHARED)
				ck_assert_uint_gt(e->msi[0], 0);
			else
				ck_assert_uint_gt(e->msi[1 + qi], 0);
		}
		if (_i != V_MSIX_SHARED)
			ck_assert_uint_eq(e->msi[0], 0);
		ck_assert_uint_eq(e->msi_bad, 0);
		ck_assert_uint_eq(e->intx_raises, 0);
		ck_assert_uint_eq(cfg16(e, VP_ADDR, PCI_COMMAND) & PCI_COMMAND_INTX_DISABLE,
				  PCI_COMMAND_INTX_DISABLE);
	} else {
		/* INTx: raised with the used buffer, lowered by reading the ISR. */
		for (uint32_t v = 0; v < MAXVEC; v++)
			ck_assert_uint_eq(e->msi[v], 0);
		ck_assert_uint_gt(e->intx_raises, 0);
		ck_assert_int_eq(e->intx, 1);
		ck_assert_uint_eq(vdev_drv_vpci_read_isr(e->dp) & 1u, 1);
		ck_assert_int_eq(e->intx, 0);
		ck_assert_uint_eq(vdev_drv_vpci_read_isr(e->dp), 0);
		memset(e->ram + (DATA_GPA(0) - GPA_BASE), 0, IO_LEN);
		ck_assert_uint_eq(blk_rw(e, 0, 0, 3, IO_LEN), VIRTIO_BLK_S_OK);
		ck_assert_int_eq(e->intx, 1);
		ck_assert_uint_eq(vdev_drv_vpci_read_isr(e->dp), 1);
	}

	/* A restart re-programs the vectors the reset cleared. */
	memset(e->msi, 0, sizeof(e->msi));
	ck_assert_int_eq(vdev_drv_start(e->drv), 0);
	blk_roundtrip(e, 7);
	if (msix && _i != V_MSIX_SHARED)
		ck_assert_uint_gt(e->msi[1], 0);
	ck_assert_uint_eq(e->stray, 0);
	env_free(e);
}
END_TEST

/* The guest moves BAR 4: the driver re-reads it and requests still work. */
START_TEST(test_blk_bar_move)
{
	struct env *e = env_new(NULL);
	const struct vdev_drv_pci_io_ops *io = flavours[_i];
	uint64_t old, moved, kick;
	uint32_t cmd, value;

	e->hide = _i ? 0 : BIT(VIRTIO_F_RING_PACKED);
	vp_bring_up(e, io, 1, 2);
	blk_roundtrip(e, 1);
	old = vdev_drv_pci_bar_address(io, e, VP_ADDR, VDEV_VIRTIO_PCI_BAR_MODERN);
	moved = MMIO32_BASE + 0x4000000;

	vdev_drv_reset(e->drv);
	cmd = io->cfg_read(e, VP_ADDR, PCI_COMMAND, 2);
	io->cfg_write(e, VP_ADDR, PCI_COMMAND, 2, cmd & ~(uint32_t)PCI_COMMAND_MEMORY);
	io->cfg_write(e, VP_ADDR, PCI_BASE_ADDRESS_4, 4, (uint32_t)moved);
	io->cfg_write(e, VP_ADDR, PCI_BASE_ADDRESS_5, 4, (uint32_t)(moved >> 32));
	io->cfg_write(e, VP_ADDR, PCI_COMMAND, 2, cmd);
	ck_assert_uint_eq(vdev_drv_pci_bar_address(io, e, VP_ADDR, VDEV_VIRTIO_PCI_BAR_MODERN),
			  moved);
	ck_assert(!claimed(e->mmio, old));
	ck_assert(claimed(e->mmio, moved));
	ck_assert_int_eq(vdev_virtio_pci_notify_address(e->vp, 0, &kick, &value), 0);
	ck_assert_uint_eq(kick, moved + VDEV_VIRTIO_PCI_NOTIFY_OFFSET);
	ck_assert_uint_eq(value, 0);

	ck_assert_int_eq(vdev_drv_vpci_init(e->vpci_storage, sizeof(e->vpci_storage), io, e,
					    VP_ADDR, &e->dp),
			 0);
	ck_assert_int_eq(vdev_drv_vpci_enable_msix(e->dp, MSI_ADDR, MSI_DATA), 2);
	memset(e->msi, 0, sizeof(e->msi));
	ck_assert_int_eq(vdev_drv_start(e->drv), 0);
	blk_roundtrip(e, 9);
	ck_assert_uint_gt(e->msi[1], 0);
	ck_assert_uint_eq(e->stray, 0);
	env_free(e);
}
END_TEST

/* ---- hostile virtio-pci functions ------------------------------------------------ */

struct vcap {
	uint8_t type, bar, cap_len; /* cap_len 0: the right one */
	uint32_t offset, length;
	uint32_t mult; /* notify only */
};

static void add_vcap(vdev_pci_cfg *c, const struct vcap *v, uint32_t *pos)
{
	uint8_t body[18] = {0};
	uint32_t len = v->type == VIRTIO_PCI_CAP_NOTIFY_CFG ? 18 : 14;

	body[0] = v->cap_len ? v->cap_len : (uint8_t)(len + 2);
	body[1] = v->type;
	body[2] = v->bar;
	memcpy(body + 6, &v->offset, 4);
	memcpy(body + 10, &v->length, 4);
	memcpy(body + 14, &v->mult, 4);
	ck_assert_int_eq(vdev_pci_cfg_add_capability(c, PCI_CAP_ID_VNDR, body, len, NULL, pos), 0);
}

enum {
	H_GOOD,
	H_COMMON_OUTSIDE,
	H_COMMON_SHORT,
	H_COMMON_WRAP,
	H_COMMON_MISALIGNED,
	H_COMMON_RESERVED_BAR,
	H_COMMON_EMPTY_BAR,
	H_COMMON_CAP_LEN,
	H_NOTIFY_ODD_MULT,
	H_NOTIFY_SHORT,
	H_NO_ISR,
	H_DEVICE_OUTSIDE,
	H_CAP_LOOP,
	H_SECOND_COMMON_USED,
	H_NOT_VIRTIO,
	H_TYPE_ZERO,
	H_TRANSITIONAL_REV1,
	H_NO_DECODE,
	H_COUNT
};

/* A virtio-blk look-alike whose capabilities follow @variant. Returns the
 * result of assigning its BARs and running vdev_drv_vpci_init. */
static int fake_init(struct env *e, const struct vdev_drv_pci_io_ops *io, int variant)
{
	struct vdev_pci_cfg_config cc = VDEV_PCI_CFG_CONFIG_INIT;
	struct vcap caps[] = {
		{VIRTIO_PCI_CAP_COMMON_CFG, 4, 0, 0, sizeof(struct virtio_pci_common_cfg), 0},
		{VIRTIO_PCI_CAP_NOTIFY_CFG, 4, 0, 0x3000, 0x1000, 4},
		{VIRTIO_PCI_CAP_ISR_CFG, 4, 0, 0x1000, 1, 0},
		{VIRTIO_PCI_CAP_DEVICE_CFG, 4, 0, 0x2000, 0x100, 0},
	};
	uint8_t msix[10] = {0x01, 0x00, VDEV_VIRTIO_PCI_BAR_MSIX, 0, 0, 0, 0x01, 0x08, 0, 0};
	uint8_t msix_mask[10] = {0x00, 0xc0};
	struct vdev_drv_pci_window mem = mem_window(MMIO32_BASE + 0x8000000, 0x1000000);
	struct fakevp *f = calloc(1, sizeof(*f));
	uint32_t pos[6], i, first = 0;
	uint16_t numq = 1, qsize = 64;

	ck_assert_ptr_nonnull(f);
	e->fake = f;
	cc.vendor_id = variant == H_NOT_VIRTIO ? 0x1234 : VDEV_VIRTIO_PCI_VENDOR_ID;
	cc.device_id = VDEV_VIRTIO_PCI_DEVICE_ID_BASE + VIRTIO_ID_BLOCK;
	cc.revision = 1;
	if (variant == H_TYPE_ZERO)
		cc.device_id = VDEV_VIRTIO_PCI_DEVICE_ID_BASE;
	if (variant == H_TRANSITIONAL_REV1) {
		cc.device_id = 0x1001;
		cc.subsystem_id = VIRTIO_ID_BLOCK;
	}
	cc.class_code = 0x018000;
	ck_assert_int_eq(vdev_pci_cfg_new(&cc, &f->cfg), 0);
	ck_assert_int_eq(vdev_pci_cfg_add_bar(f->cfg, VDEV_VIRTIO_PCI_BAR_MSIX, 0x1000,
					      VDEV_PCI_BAR_MEM32),
			 0);
	ck_assert_int_eq(vdev_pci_cfg_add_bar(f->cfg, VDEV_VIRTIO_PCI_BAR_MODERN, sizeof(f->regs),
					      VDEV_PCI_BAR_MEM64 | VDEV_PCI_BAR_PREFETCH),
			 0);
	switch (variant) {
	case H_COMMON_OUTSIDE:
		caps[0].offset = sizeof(f->regs) - 0x10;
		break;
	case H_COMMON_SHORT:
		caps[0].length = 0x20;
		break;
	case H_COMMON_WRAP:
		caps[0].offset = 0xfffffff0u;
		break;
	case H_COMMON_MISALIGNED:
		caps[0].offset = 2;
		break;
	case H_COMMON_RESERVED_BAR:
		caps[0].bar = 6;
		break;
	case H_COMMON_EMPTY_BAR:
		caps[0].bar = 2;
		break;
	case H_COMMON_CAP_LEN:
		caps[0].cap_len = 8;
		break;
	case H_NOTIFY_ODD_MULT:
		caps[1].mult = 3;
		break;
	case H_NOTIFY_SHORT:
		caps[1].length = 1;
		break;
	case H_NO_ISR:
		caps[2].type = VIRTIO_PCI_CAP_PCI_CFG;
		break;
	case H_DEVICE_OUTSIDE:
		caps[3].offset = 0x3f00;
		caps[3].length = 0x200;
		break;
	case H_SECOND_COMMON_USED: {
		/* A first common cap in a reserved BAR is skipped, as by Linux. */
		struct vcap bad = caps[0];

		bad.bar = 7;
		add_vcap(f->cfg, &bad, &first);
		break;
	}
	default:
		break;
	}
	for (i = 0; i < 4; i++)
		add_vcap(f->cfg, &caps[i], &pos[i]);
	ck_assert_int_eq(vdev_pci_cfg_add_capability(f->cfg, PCI_CAP_ID_MSIX, msix, sizeof(msix),
						     msix_mask, &pos[4]),
			 0);
	if (variant == H_CAP_LOOP) {
		/* The last vendor capability points back at the first. */
		uint8_t back = (uint8_t)pos[0];

		ck_assert_int_eq(vdev_pci_cfg_poke(f->cfg, pos[3] + 1, &back, 1), 0);
	}
	memcpy(f->regs + VIRTIO_PCI_COMMON_NUMQ, &numq, 2);
	memcpy(f->regs + VIRTIO_PCI_COMMON_Q_SIZE, &qsize, 2);
	ck_assert_int_eq(vdev_pci_root_add(e->root, FAKE_ADDR, &fake_ops, f), 0);
	if (variant != H_NO_DECODE)
		ck_assert_int_eq(vdev_drv_pci_assign_bars(io, e, FAKE_ADDR, &mem, NULL), 0);
	return vdev_drv_vpci_init(e->vpci_storage, sizeof(e->vpci_storage), io, e, FAKE_ADDR,
				  &e->dp);
}

START_TEST(test_hostile_caps)
{
	struct env *e = env_new(NULL);
	int expect = -EBADMSG;
	unsigned before;

	switch (_i) {
	case H_GOOD:
	case H_SECOND_COMMON_USED:
		expect = 0;
		break;
	case H_NOT_VIRTIO:
	case H_TYPE_ZERO:
	case H_TRANSITIONAL_REV1:
		expect = -ENODEV;
		break;
	case H_NO_DECODE:
		expect = -EINVAL;
		break;
	default:
		break;
	}
	before = e->stray;
	ck_assert_int_eq(fake_init(e, flavours[_i & 1], _i), expect);
	/* Init reads config space (BAR sizing included) and, once the
	 * structures check out, num_queues: nothing else, whatever the
	 * capabilities said. */
	ck_assert_uint_eq(e->fake->accesses, expect == 0 ? 1 : 0);
	ck_assert_uint_eq(e->stray, before);
	if (expect == 0) {
		/* It works as far as it claims: the driver starts on it. */
		ck_assert_int_eq(drv_start(e), 0);
		ck_assert_uint_gt(e->fake->accesses, 0);
	}
	env_free(e);
}
END_TEST

enum { Q_NOTIFY_OFF, Q_CONFIG_VECTOR, Q_QUEUE_VECTOR, Q_ENABLE, Q_SIZE_ZERO, Q_COUNT };

/* Common config values that lie: queue setup fails, nothing is written
 * outside the structures. */
START_TEST(test_hostile_common)
{
	struct env *e = env_new(NULL);
	struct fakevp *f;
	uint8_t buf[8];
	unsigned n;
	int expect = -EIO;

	ck_assert_int_eq(fake_init(e, &io_ecam, H_GOOD), 0);
	f = e->fake;
	switch (_i) {
	case Q_NOTIFY_OFF:
		f->noff = 0x400; /* 0x400 * 4 + 2 > 0x1000 */
		expect = -EBADMSG;
		break;
	case Q_CONFIG_VECTOR:
	case Q_QUEUE_VECTOR:
		f->vec_refuse = _i == Q_CONFIG_VECTOR ? 1 : 2;
		ck_assert_int_eq(vdev_drv_vpci_enable_msix(e->dp, MSI_ADDR, MSI_DATA), 2);
		break;
	case Q_ENABLE:
		f->enable_stuck = 1;
		break;
	case Q_SIZE_ZERO:
		memset(f->regs + VIRTIO_PCI_COMMON_Q_SIZE, 0, 2);
		expect = -ENODEV;
		break;
	}
	ck_assert_int_eq(drv_start(e), expect);
	ck_assert(vdev_drv_status(e->drv) & VIRTIO_CONFIG_S_FAILED);
	ck_assert_uint_eq(e->stray, 0);

	/* Device config beyond the structure's 0x100 bytes is not accessed. */
	n = f->accesses;
	memset(buf, 0x77, sizeof(buf));
	ck_assert_int_eq(vdev_drv_config_read(e->drv, 0xfc, buf, 8), 0);
	ck_assert_uint_eq(buf[4], 0);
	ck_assert_uint_eq(buf[7], 0);
	/* Two generation reads, 0xfc (4 bytes) and nothing past the end. */
	ck_assert_uint_eq(f->accesses - n, 3);
	env_free(e);
}
END_TEST

/* Without queues the config vector is still assigned, with DRIVER_OK. */
START_TEST(test_config_vector_without_queues)
{
	struct env *e = env_new(NULL);
	uint16_t vec = VIRTIO_MSI_NO_VECTOR;

	ck_assert_int_eq(fake_init(e, &io_ecam, H_GOOD), 0);
	memcpy(e->fake->regs + VIRTIO_PCI_COMMON_MSIX, &vec, 2);
	ck_assert_int_eq(vdev_drv_vpci_enable_msix(e->dp, MSI_ADDR, MSI_DATA), 2);
	e->nq = 0;
	ck_assert_int_eq(drv_start(e), 0);
	memcpy(&vec, e->fake->regs + VIRTIO_PCI_COMMON_MSIX, 2);
	ck_assert_uint_eq(vec, 0);
	ck_assert_uint_eq(e->stray, 0);
	env_free(e);
}
END_TEST

/* The MSI-X table must fit its BAR; arguments are checked. */
START_TEST(test_hostile_msix_and_args)
{
	struct env *e = env_new(NULL);
	struct vdev_drv_pci_io_ops no_mem = io_ecam;
	uint32_t table = 0x0ff8u | VDEV_VIRTIO_PCI_BAR_MSIX; /* 2 entries from 0xff8: 0x1018 */
	vdev_drv_vpci *p = NULL;
	unsigned n;
	int pos;

	ck_assert_int_eq(fake_init(e, &io_ecam, H_GOOD), 0);
	pos = vdev_drv_pci_find_capability(&io_ecam, e, FAKE_ADDR, PCI_CAP_ID_MSIX, 0);
	ck_assert_int_gt(pos, 0);
	n = e->fake->accesses;
	ck_assert_int_eq(vdev_pci_cfg_poke(e->fake->cfg, (uint32_t)pos + PCI_MSIX_TABLE, &table, 4),
			 0);
	ck_assert_int_eq(vdev_drv_vpci_enable_msix(e->dp, MSI_ADDR, MSI_DATA), -EBADMSG);
	table = 3; /* BAR 3: not a BAR */
	ck_assert_int_eq(vdev_pci_cfg_poke(e->fake->cfg, (uint32_t)pos + PCI_MSIX_TABLE, &table, 4),
			 0);
	ck_assert_int_eq(vdev_drv_vpci_enable_msix(e->dp, MSI_ADDR, MSI_DATA), -EBADMSG);
	ck_assert_uint_eq(e->fake->accesses, n);
	ck_assert_int_eq(vdev_drv_vpci_enable_msix(NULL, MSI_ADDR, MSI_DATA), -EINVAL);

	no_mem.mem_read = NULL;
	ck_assert_int_eq(vdev_drv_vpci_init(e->vpci_storage, sizeof(e->vpci_storage), &no_mem, e,
					    FAKE_ADDR, &p),
			 -EINVAL);
	ck_assert_int_eq(vdev_drv_vpci_init(e->vpci_storage, vdev_drv_vpci_storage_size() - 1,
					    &io_ecam, e, FAKE_ADDR, &p),
			 -EINVAL);
	ck_assert_int_eq(vdev_drv_vpci_init(e->vpci_storage + 4, sizeof(e->vpci_storage) - 4,
					    &io_ecam, e, FAKE_ADDR, &p),
			 -EINVAL);
	ck_assert_int_eq(vdev_drv_vpci_init(NULL, sizeof(e->vpci_storage), &io_ecam, e, FAKE_ADDR,
					    &p),
			 -EINVAL);
	ck_assert_int_eq(vdev_drv_vpci_init(e->vpci_storage, sizeof(e->vpci_storage), &io_ecam, e,
					    MF0_ADDR, &p),
			 -ENODEV);
	ck_assert_ptr_null(p);
	ck_assert_uint_le(vdev_drv_vpci_storage_size(), sizeof(e->vpci_storage));
	ck_assert_uint_eq(vdev_drv_vpci_device_type(NULL), 0);
	ck_assert_uint_eq(vdev_drv_vpci_read_isr(NULL), 0);
	env_free(e);
}
END_TEST

static Suite *pci_blk_suite(void)
{
	Suite *s = suite_create("pci-blk");
	TCase *tc = tcase_create("driver");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_enumerate);
	tcase_add_loop_test(tc, test_capabilities, 0, 2);
	tcase_add_loop_test(tc, test_capabilities_malformed, 0, 2);
	tcase_add_loop_test(tc, test_assign_bars, 0, 2);
	tcase_add_loop_test(tc, test_blk, 0, V_COUNT);
	tcase_add_loop_test(tc, test_blk_bar_move, 0, 2);
	tcase_add_loop_test(tc, test_hostile_caps, 0, H_COUNT);
	tcase_add_loop_test(tc, test_hostile_common, 0, Q_COUNT);
	tcase_add_test(tc, test_config_vector_without_queues);
	tcase_add_test(tc, test_hostile_msix_and_args);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(pci_blk_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
