/* SPDX-License-Identifier: MIT */
/*
 * virtio-pci, device side: the spec's "Virtio Over PCI Bus" (4.1) in front of
 * a vdev_device, as a PCI function for a vdev_pci_root. The layout is fixed
 * (virtio-pci.h): BAR 4 holds the common config, ISR, device config and
 * notify structures; BAR 1 the MSI-X table and PBA; BAR 0 (transitional
 * devices only) the legacy register block. The config header, BARs and the
 * capability list live in a vdev_pci_cfg; this file intercepts the parts of
 * config space with behaviour (MSI-X message control, the PCI config access
 * window, the command register's INTx disable, the status register's
 * interrupt bit).
 *
 * As in virtio-mmio, the transport keeps only what the registers need
 * between accesses (selectors, per-queue latches, MSI-X vectors and table);
 * status, features, ISR, queue enable and config generation live in the
 * device object, so a reset from any path is seen the same.
 *
 * Interfaces: a transitional device has both the modern structures and the
 * legacy block. The first access to either after a reset picks the
 * interface; the other is refused until the device is reset again (writing
 * 0 to device status is accepted through either, as it ends the previous
 * driver's session). The legacy interface puts the device object in legacy
 * mode (device_internal.h).
 *
 * Interrupts: the transport installs its own vdev_irq in the device. With
 * MSI-X enabled an interrupt goes to the vector the driver mapped for its
 * source (none for NO_VECTOR); a masked vector, or a function-masked MSI-X,
 * sets the vector's pending bit instead, and unmasking delivers it. Without
 * MSI-X, INTx follows the ISR: asserted (set_intx(1), repeated on every new
 * interrupt) while an ISR bit is set, unless the command register's INTx
 * disable is set; deasserted (set_intx(0), on the change only) when the
 * driver reads the ISR.
 *
 * Locking: `lock` (recursive) serializes register and config space
 * accesses; `irq_lock` (recursive) guards the interrupt state (MSI-X table,
 * PBA, vectors, INTx level) and is the only lock the interrupt path takes.
 * Order: lock, then irq_lock; nothing calls the device object with irq_lock
 * held, and the msi_ops callbacks run with irq_lock held (they must not call
 * back into this function, pci.h). Notify writes on the bus take no lock:
 * the decoded BAR addresses and the interface are kept in atomics, so a
 * register kick behaves exactly like an ioeventfd kick.
 */
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <linux/pci_regs.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_pci.h>

#include <virtio-dev/virtio-pci.h>

#include "core/device_internal.h"
#include "internal/util.h"

#define VDI_BIT(n) (1ull << (n))
/* Not offered whatever the model says (numbers retyped: not in every
 * <linux/virtio_config.h> yet): the notification-data variants change the
 * notify format; SR-IOV needs a capability and ADMIN_VQ common-config
 * fields this transport does not have. */
#define VP_F_SR_IOV 37
#define VP_F_NOTIFICATION_DATA 38
#define VP_F_NOTIF_CONFIG_DATA 39
#define VP_F_ADMIN_VQ 41
#define VP_HIDDEN_FEATURES                                                               \
	(VDI_BIT(VP_F_SR_IOV) | VDI_BIT(VP_F_NOTIFICATION_DATA) |                         \
	 VDI_BIT(VP_F_NOTIF_CONFIG_DATA) | VDI_BIT(VP_F_ADMIN_VQ))

/* The common config structure as far as we implement it: up to queue_reset. */
#define VP_COMMON_LEN (VIRTIO_PCI_COMMON_Q_RESET + 2u)
#define VP_ISR_LEN 1u
#define VP_MSIX_MAX 2048u
#define VP_MSIX_BAR_SIZE 0x10000u /* 2048-entry table, then the PBA at 0x8000 */
#define VP_LEGACY_HDR 20u         /* legacy registers without the MSI-X vectors */
#define VP_LEGACY_MSIX_HDR 24u    /* with them */
#define VP_LEGACY_PAGE 4096u      /* legacy queue PFN unit and ring alignment */
#define VP_IO_BAR_MAX 256u
#define VP_PCI_CFG_DATA ((uint32_t)offsetof(struct virtio_pci_cfg_cap, pci_cfg_data))
#define VP_CLASS_OTHER 0xff0000u
#define VP_CLASS_STORAGE_OTHER 0x018000u
#define VP_CLASS_NETWORK_ETHERNET 0x020000u

/* Our BARs, in the order of vp->bar_base[]. */
enum { VP_BAR_LEGACY, VP_BAR_MSIX, VP_BAR_MODERN, VP_NBARS };

/* Which register interface the driver is using since the last reset. */
enum { IFACE_NONE, IFACE_MODERN, IFACE_LEGACY };

struct vp_queue {
	uint32_t size; /* queue_size as latched (starts at the maximum) */
	uint64_t desc;
	uint64_t driver;
	uint64_t device;
	uint32_t pfn;    /* legacy: as written, while the queue is enabled */
	uint16_t vector; /* under irq_lock */
};

struct vp_msix_entry {
	uint32_t addr_lo;
	uint32_t addr_hi;
	uint32_t data;
	uint32_t ctrl;
};

struct vdev_virtio_pci {
	pthread_mutex_t lock;
	pthread_mutex_t irq_lock;
	int locks_made; /* how many of the two are initialized (for free) */
	vdev_device *dev;
	vdev_irq *irq;
	vdev_pci_cfg *cfg;
	struct vdev_pci_msi_ops msi;
	void *msi_opaque;

	uint32_t num_queues;
	uint32_t mult;        /* notify_off_multiplier */
	uint64_t bar4_size;
	uint32_t legacy_size; /* BAR 0 size, 0 when not transitional */
	uint32_t msix_cap;    /* config offset of the MSI-X capability, 0: none */
	uint32_t cfg_cap;     /* config offset of the PCI config access capability */
	uint32_t nvec;        /* MSI-X table size, 0: no MSI-X */

	/* Decoded base of each BAR (0: not on the bus), and the interface;
	 * atomics, read without the lock by notify writes. */
	uint64_t bar_base[VP_NBARS];
	int iface;

	/* Register latches, under lock. */
	uint32_t dfsel;
	uint32_t gfsel;
	uint32_t qsel;
	uint8_t last_status;
	struct vp_queue *queues;

	/* Interrupt state, under irq_lock. */
	uint16_t config_vector;
	struct vp_msix_entry *table;
	uint64_t *pba;
	int msix_enabled;
	int msix_fmask;
	int intx_disabled;
	int intx_level;

	/* The VMM's virtual config registers (vdev_pci_vcfg page 0): never
	 * cleared by a reset, they are not the guest driver's. Under lock. */
	uint32_t vcfg[VDEV_PCI_CONFIG_DWORDS];
};

static void refused(const vdev_virtio_pci *vp, const char *what, uint64_t offset, uint32_t size)
{
	vdi_log(VDEV_LOG_DEBUG, "virtio-pci dev %u: refused %s at 0x%llx size %u",
		vdev_device_type(vp->dev), what, (unsigned long long)offset, size);
}

static int vector_valid(const vdev_virtio_pci *vp, uint32_t v)
{
	return v < vp->nvec;
}

/* ---- interrupts (irq_lock held) ------------------------------------------ */

static int entry_masked(const vdev_virtio_pci *vp, uint32_t v)
{
	return !vp->msix_enabled || vp->msix_fmask ||
	       (vp->table[v].ctrl & PCI_MSIX_ENTRY_CTRL_MASKBIT);
}

static uint64_t entry_address(const struct vp_msix_entry *e)
{
	return (uint64_t)e->addr_hi << 32 | e->addr_lo;
}

static void msix_update(vdev_virtio_pci *vp, uint32_t v)
{
	if (vp->msi.update)
		vp->msi.update(vp->msi_opaque, v, entry_address(&vp->table[v]), vp->table[v].data,
			       (uint32_t)entry_masked(vp, v));
}

static int msix_signal(vdev_virtio_pci *vp, uint32_t v)
{
	int r = vp->msi.signal(vp->msi_opaque, v, entry_address(&vp->table[v]), vp->table[v].data);

	if (r < 0)
		vdi_log(VDEV_LOG_WARNING, "virtio-pci dev %u: MSI-X vector %u not delivered (%d)",
			vdev_device_type(vp->dev), v, r);
	return r;
}

/* An interrupt for vector @v with MSI-X enabled. */
static int msix_fire(vdev_virtio_pci *vp, uint32_t v)
{
	if (!vector_valid(vp, v))
		return 0;
	if (entry_masked(vp, v)) {
		vp->pba[v / 64] |= 1ull << (v % 64);
		return 0;
	}
	return msix_signal(vp, v);
}

/* Vector @v may have become deliverable: send what is pending. */
static void msix_deliver_pending(vdev_virtio_pci *vp, uint32_t v)
{
	uint64_t bit = 1ull << (v % 64);

	if (!entry_masked(vp, v) && (vp->pba[v / 64] & bit)) {
		vp->pba[v / 64] &= ~bit;
		(void)msix_signal(vp, v);
	}
}

/*
 * INTx follows the ISR while MSI-X is off. @raise: a new interrupt, which
 * asserts again even if the line is already up (harmless for a level line,
 * and what an irqfd-based VMM needs after a resample).
 */
static void intx_update(vdev_virtio_pci *vp, int raise)
{
	int level = !vp->msix_enabled && !vp->intx_disabled && vdev_device_isr(vp->dev) != 0;

	if (vp->msi.set_intx) {
		if (level && (raise || !vp->intx_level))
			(void)vp->msi.set_intx(vp->msi_opaque, 1);
		else if (!level && vp->intx_level)
			(void)vp->msi.set_intx(vp->msi_opaque, 0);
	}
	vp->intx_level = level;
}

/* The device's interrupt sink: the ISR bit is already set. */
static int vp_trigger(void *opaque, uint32_t kind, uint32_t queue)
{
	vdev_virtio_pci *vp = opaque;
	uint32_t v;
	int r = 0;

	pthread_mutex_lock(&vp->irq_lock);
	if (vp->msix_enabled) {
		if (kind == VDEV_IRQ_CONFIG)
			v = vp->config_vector;
		else
			v = queue < vp->num_queues ? vp->queues[queue].vector
						   : VDEV_VIRTIO_PCI_NO_VECTOR;
		r = msix_fire(vp, v);
	} else {
		intx_update(vp, 1);
	}
	pthread_mutex_unlock(&vp->irq_lock);
	return r;
}

/* A vector register write: vectors the table does not have read back as
 * NO_VECTOR (spec 4.1.5.1.2: a failed mapping). */
static uint16_t vector_accept(const vdev_virtio_pci *vp, uint32_t v)
{
	return vector_valid(vp, v) ? (uint16_t)v : VDEV_VIRTIO_PCI_NO_VECTOR;
}

static void set_config_vector(vdev_virtio_pci *vp, uint32_t v)
{
	pthread_mutex_lock(&vp->irq_lock);
	vp->config_vector = vector_accept(vp, v);
	pthread_mutex_unlock(&vp->irq_lock);
}

static void set_queue_vector(vdev_virtio_pci *vp, uint32_t q, uint32_t v)
{
	pthread_mutex_lock(&vp->irq_lock);
	vp->queues[q].vector = vector_accept(vp, v);
	pthread_mutex_unlock(&vp->irq_lock);
}

static uint16_t get_vector(vdev_virtio_pci *vp, const uint16_t *slot)
{
	uint16_t v;

	pthread_mutex_lock(&vp->irq_lock);
	v = *slot;
	pthread_mutex_unlock(&vp->irq_lock);
	return v;
}

/* The driver read the ISR: it is cleared and INTx goes down. */
static uint8_t isr_read_clear(vdev_virtio_pci *vp)
{
	uint32_t isr = vdev_device_isr_ack(vp->dev, UINT32_MAX);

	pthread_mutex_lock(&vp->irq_lock);
	intx_update(vp, 0);
	pthread_mutex_unlock(&vp->irq_lock);
	return (uint8_t)isr;
}

/* ---- latches, reset, interface (lock held) -------------------------------- */

static void queue_latch_clear(vdev_virtio_pci *vp, uint32_t q)
{
	struct vp_queue *vq = &vp->queues[q];

	vq->size = vdev_device_queue_max_size(vp->dev);
	vq->desc = vq->driver = vq->device = 0;
	vq->pfn = 0;
}

/* Back to the state of a freshly reset device: every source unmapped (spec
 * 4.1.5.1.2), pending bits of the old session dropped, no interface. The
 * MSI-X table and enable belong to PCI, not to the virtio device: kept. */
static void latches_reset(vdev_virtio_pci *vp)
{
	vp->dfsel = 0;
	vp->gfsel = 0;
	vp->qsel = 0;
	for (uint32_t i = 0; i < vp->num_queues; i++)
		queue_latch_clear(vp, i);
	pthread_mutex_lock(&vp->irq_lock);
	vp->config_vector = VDEV_VIRTIO_PCI_NO_VECTOR;
	for (uint32_t i = 0; i < vp->num_queues; i++)
		vp->queues[i].vector = VDEV_VIRTIO_PCI_NO_VECTOR;
	if (vp->nvec)
		memset(vp->pba, 0, sizeof(uint64_t) * ((vp->nvec + 63) / 64));
	intx_update(vp, 0);
	pthread_mutex_unlock(&vp->irq_lock);
	if (__atomic_load_n(&vp->iface, __ATOMIC_ACQUIRE) == IFACE_LEGACY)
		(void)vdi_device_set_legacy(vp->dev, 0);
	__atomic_store_n(&vp->iface, IFACE_NONE, __ATOMIC_RELEASE);
}

/* At the start of every locked access: a reset done directly on the device
 * (by the VMM) must clear our latches as a guest reset does. */
static void sync_reset(vdev_virtio_pci *vp)
{
	uint8_t st = vdev_device_status(vp->dev);

	if (st == 0 && vp->last_status != 0)
		latches_reset(vp);
	vp->last_status = st;
}

/* The driver uses interface @want: fine if it already does, or if none was
 * chosen since the reset. Mixing the two is refused (spec 4.1.4.10). */
static int claim_iface(vdev_virtio_pci *vp, int want)
{
	int cur = __atomic_load_n(&vp->iface, __ATOMIC_ACQUIRE);

	if (cur == want)
		return 0;
	if (cur != IFACE_NONE) {
		vdi_log(VDEV_LOG_DEBUG,
			"virtio-pci dev %u: %s access refused, the driver uses the %s interface",
			vdev_device_type(vp->dev), want == IFACE_LEGACY ? "legacy" : "modern",
			cur == IFACE_LEGACY ? "legacy" : "modern");
		return -EPERM;
	}
	if (want == IFACE_LEGACY && vdi_device_set_legacy(vp->dev, 1) < 0) {
		vdi_log(VDEV_LOG_DEBUG, "virtio-pci dev %u: legacy access while the device runs",
			vdev_device_type(vp->dev));
		return -EBUSY;
	}
	__atomic_store_n(&vp->iface, want, __ATOMIC_RELEASE);
	return 0;
}

static int write_status(vdev_virtio_pci *vp, uint32_t v)
{
	int r = vdev_device_set_status(vp->dev, (uint8_t)v);

	if (v == 0)
		latches_reset(vp);
	return r;
}

/* Queue size and ring addresses: only for an existing queue that is not
 * enabled (so never for a running one). */
static struct vp_queue *latch_target(vdev_virtio_pci *vp, uint64_t off)
{
	if (vp->qsel >= vp->num_queues) {
		refused(vp, "queue register write for a missing queue", off, 0);
		return NULL;
	}
	if (vdev_device_queue_enabled(vp->dev, vp->qsel)) {
		refused(vp, "queue register write while the queue is enabled", off, 0);
		return NULL;
	}
	return &vp->queues[vp->qsel];
}

static int ring_packed(const vdev_virtio_pci *vp)
{
	return !!(vdev_device_acked_features(vp->dev) & VDI_BIT(VIRTIO_F_RING_PACKED));
}

/* The largest power of two not above @v (> 0). */
/* queue_size as the driver sees it, and as the queue gets it. A split ring's
 * size is a power of two (4.1.4.3.2): a maximum that is none shows rounded
 * down (sizes written for a split ring are checked). */
static uint32_t queue_size_shown(const vdev_virtio_pci *vp, const struct vp_queue *vq)
{
	return ring_packed(vp) || vdi_is_pow2(vq->size) ? vq->size : vdi_pow2_floor(vq->size);
}

/* Hand a latched ring to the device and enable it. */
static int queue_go(vdev_virtio_pci *vp, uint32_t q, const struct vp_queue *vq)
{
	struct vdev_queue_config qc = VDEV_QUEUE_CONFIG_INIT;
	int r;

	qc.size = queue_size_shown(vp, vq);
	qc.desc_addr = vq->desc;
	qc.driver_addr = vq->driver;
	qc.device_addr = vq->device;
	r = vdev_device_queue_setup(vp->dev, q, &qc);
	if (r == 0)
		r = vdev_device_queue_enable(vp->dev, q, 1);
	if (r < 0)
		vdi_log(VDEV_LOG_DEBUG, "virtio-pci dev %u: queue %u not enabled (%d)",
			vdev_device_type(vp->dev), q, r);
	return r;
}

static uint64_t features_offered(const vdev_virtio_pci *vp)
{
	return vdi_device_offered(vp->dev) & ~VP_HIDDEN_FEATURES;
}

/* ---- common configuration (BAR 4 + 0) ------------------------------------ */

/* The natural width of the field at @off, 0 for none. */
static uint32_t common_width(uint64_t off)
{
	switch (off) {
	case VIRTIO_PCI_COMMON_DFSELECT:
	case VIRTIO_PCI_COMMON_DF:
	case VIRTIO_PCI_COMMON_GFSELECT:
	case VIRTIO_PCI_COMMON_GF:
	case VIRTIO_PCI_COMMON_Q_DESCLO:
	case VIRTIO_PCI_COMMON_Q_DESCHI:
	case VIRTIO_PCI_COMMON_Q_AVAILLO:
	case VIRTIO_PCI_COMMON_Q_AVAILHI:
	case VIRTIO_PCI_COMMON_Q_USEDLO:
	case VIRTIO_PCI_COMMON_Q_USEDHI:
		return 4;
	case VIRTIO_PCI_COMMON_MSIX:
	case VIRTIO_PCI_COMMON_NUMQ:
	case VIRTIO_PCI_COMMON_Q_SELECT:
	case VIRTIO_PCI_COMMON_Q_SIZE:
	case VIRTIO_PCI_COMMON_Q_MSIX:
	case VIRTIO_PCI_COMMON_Q_ENABLE:
	case VIRTIO_PCI_COMMON_Q_NOFF:
	case VIRTIO_PCI_COMMON_Q_NDATA:
	case VIRTIO_PCI_COMMON_Q_RESET:
		return 2;
	case VIRTIO_PCI_COMMON_STATUS:
	case VIRTIO_PCI_COMMON_CFGGENERATION:
		return 1;
	default:
		return 0;
	}
}

static int is_addr_lo(uint64_t off)
{
	return off == VIRTIO_PCI_COMMON_Q_DESCLO || off == VIRTIO_PCI_COMMON_Q_AVAILLO ||
	       off == VIRTIO_PCI_COMMON_Q_USEDLO;
}

/* Natural widths only; a 64-bit address also as one 8-byte access. */
static int common_access_ok(uint64_t off, uint32_t size)
{
	uint32_t w = common_width(off);

	return w != 0 && (size == w || (size == 8 && is_addr_lo(off)));
}

/* The latched 64-bit address a lo/hi offset belongs to. */
static uint64_t *queue_addr_slot(struct vp_queue *vq, uint64_t off)
{
	switch (off & ~7ull) {
	case VIRTIO_PCI_COMMON_Q_DESCLO:
		return &vq->desc;
	case VIRTIO_PCI_COMMON_Q_AVAILLO:
		return &vq->driver;
	default:
		return &vq->device;
	}
}

static uint64_t common_read(vdev_virtio_pci *vp, uint64_t off, uint32_t size)
{
	uint32_t q = vp->qsel;
	int have_q = q < vp->num_queues;
	uint64_t a;

	switch (off) {
	case VIRTIO_PCI_COMMON_DFSELECT:
		return vp->dfsel;
	case VIRTIO_PCI_COMMON_DF:
		return vp->dfsel < 2 ? (uint32_t)(features_offered(vp) >> (32 * vp->dfsel)) : 0;
	case VIRTIO_PCI_COMMON_GFSELECT:
		return vp->gfsel;
	case VIRTIO_PCI_COMMON_GF:
		return vp->gfsel < 2 ? (uint32_t)(vdev_device_acked_features(vp->dev) >>
						  (32 * vp->gfsel))
				     : 0;
	case VIRTIO_PCI_COMMON_MSIX:
		return get_vector(vp, &vp->config_vector);
	case VIRTIO_PCI_COMMON_NUMQ:
		return vp->num_queues;
	case VIRTIO_PCI_COMMON_STATUS:
		return vdev_device_status(vp->dev);
	case VIRTIO_PCI_COMMON_CFGGENERATION:
		return vdev_device_config_generation(vp->dev) & 0xffu;
	case VIRTIO_PCI_COMMON_Q_SELECT:
		return q;
	case VIRTIO_PCI_COMMON_Q_SIZE:
		/* 0: no such queue. */
		return have_q ? queue_size_shown(vp, &vp->queues[q]) : 0;
	case VIRTIO_PCI_COMMON_Q_MSIX:
		return have_q ? get_vector(vp, &vp->queues[q].vector) : VDEV_VIRTIO_PCI_NO_VECTOR;
	case VIRTIO_PCI_COMMON_Q_ENABLE:
		return have_q ? (uint32_t)vdev_device_queue_enabled(vp->dev, q) : 0;
	case VIRTIO_PCI_COMMON_Q_NOFF:
		return have_q ? q : 0;
	case VIRTIO_PCI_COMMON_Q_NDATA:
	case VIRTIO_PCI_COMMON_Q_RESET:
		/* No notification data; a queue reset completes inside the
		 * write, so it is never seen ongoing. */
		return 0;
	default:
		/* The ring addresses read back as latched. */
		if (!have_q)
			return 0;
		a = *queue_addr_slot(&vp->queues[q], off);
		if (size == 8)
			return a;
		return (off & 4) ? a >> 32 : (uint32_t)a;
	}
}

static int queue_size_write(vdev_virtio_pci *vp, struct vp_queue *vq, uint32_t v)
{
	if (v == 0 || v > vdev_device_queue_max_size(vp->dev) ||
	    (!ring_packed(vp) && !vdi_is_pow2(v)))
		return -EINVAL;
	vq->size = v;
	return 0;
}

static int queue_reset_write(vdev_virtio_pci *vp, uint32_t q, uint64_t v)
{
	int r;

	if (v != 1)
		return v == 0 ? 0 : -EINVAL;
	if (q >= vp->num_queues)
		return -EINVAL;
	if (!(vdev_device_acked_features(vp->dev) & VDI_BIT(VIRTIO_F_RING_RESET)))
		return -EPERM;
	r = vdev_device_queue_reset(vp->dev, q);
	if (r == 0)
		queue_latch_clear(vp, q);
	return r;
}

static int common_write(vdev_virtio_pci *vp, uint64_t off, uint32_t size, uint64_t v)
{
	uint32_t q = vp->qsel;
	struct vp_queue *vq;
	uint64_t *slot;

	switch (off) {
	case VIRTIO_PCI_COMMON_DFSELECT:
		vp->dfsel = (uint32_t)v;
		return 0;
	case VIRTIO_PCI_COMMON_GFSELECT:
		vp->gfsel = (uint32_t)v;
		return 0;
	case VIRTIO_PCI_COMMON_GF:
		/* What is not offered here cannot be acked either. */
		if (vp->gfsel < 2)
			v &= ~(VP_HIDDEN_FEATURES >> (32 * vp->gfsel));
		return vdev_device_set_acked_features_page(vp->dev, vp->gfsel, (uint32_t)v);
	case VIRTIO_PCI_COMMON_MSIX:
		set_config_vector(vp, (uint32_t)v);
		return 0;
	case VIRTIO_PCI_COMMON_STATUS:
		return write_status(vp, (uint32_t)v);
	case VIRTIO_PCI_COMMON_Q_SELECT:
		vp->qsel = (uint32_t)v;
		return 0;
	case VIRTIO_PCI_COMMON_Q_MSIX:
		/* Routing only: also for an enabled queue, as legacy drivers
		 * map vectors after activating the ring. */
		if (q >= vp->num_queues)
			return -EINVAL;
		set_queue_vector(vp, q, (uint32_t)v);
		return 0;
	case VIRTIO_PCI_COMMON_Q_ENABLE:
		/* The driver must not write 0 (spec 4.1.4.3.2). */
		if (q >= vp->num_queues || v != 1)
			return -EINVAL;
		if (vdev_device_queue_enabled(vp->dev, q))
			return 0;
		return queue_go(vp, q, &vp->queues[q]);
	case VIRTIO_PCI_COMMON_Q_RESET:
		return queue_reset_write(vp, q, v);
	case VIRTIO_PCI_COMMON_Q_SIZE:
	case VIRTIO_PCI_COMMON_Q_DESCLO:
	case VIRTIO_PCI_COMMON_Q_DESCHI:
	case VIRTIO_PCI_COMMON_Q_AVAILLO:
	case VIRTIO_PCI_COMMON_Q_AVAILHI:
	case VIRTIO_PCI_COMMON_Q_USEDLO:
	case VIRTIO_PCI_COMMON_Q_USEDHI:
		vq = latch_target(vp, off);
		if (!vq)
			return -EBUSY;
		if (off == VIRTIO_PCI_COMMON_Q_SIZE)
			return queue_size_write(vp, vq, (uint32_t)v);
		slot = queue_addr_slot(vq, off);
		if (size == 8)
			*slot = v;
		else if (off & 4)
			*slot = (*slot & 0xffffffffull) | v << 32;
		else
			*slot = (*slot & 0xffffffff00000000ull) | v;
		return 0;
	default:
		/* device_feature, num_queues, config_generation,
		 * queue_notify_off, queue_notify_data: read-only. */
		return -EINVAL;
	}
}

/* ---- BAR 4 ---------------------------------------------------------------- */

static uint64_t notify_len(const vdev_virtio_pci *vp)
{
	return (uint64_t)vp->num_queues * vp->mult;
}

/* The queue a notify write at @off (relative to the notify structure) names,
 * or -EINVAL: 2 bytes at the start of a queue's slot. The value written is
 * not checked: the address names the queue, as with an ioeventfd without
 * datamatch, so both paths behave the same. */
static int notify_queue(const vdev_virtio_pci *vp, uint64_t off, uint32_t size)
{
	if (size != 2 || off >= notify_len(vp) || off % vp->mult)
		return -EINVAL;
	return (int)(off / vp->mult);
}

/* A kick. From the bus it takes no lock, so it is identical to an
 * ioeventfd kick. */
static int notify_write(vdev_virtio_pci *vp, uint64_t off, uint32_t size)
{
	int q = notify_queue(vp, off, size);

	if (q < 0) {
		refused(vp, "notify write", VDEV_VIRTIO_PCI_NOTIFY_OFFSET + off, size);
		return q;
	}
	if (__atomic_load_n(&vp->iface, __ATOMIC_ACQUIRE) != IFACE_MODERN) {
		refused(vp, "modern notify outside the modern interface",
			VDEV_VIRTIO_PCI_NOTIFY_OFFSET + off, size);
		return -EPERM;
	}
	return vdev_device_queue_notify(vp->dev, (uint32_t)q);
}

/* Device-specific config through @rbuf (read, zeroed) or @wbuf; models see
 * at most 4 bytes at a time, as a 32-bit guest would. */
static int device_config_access(vdev_virtio_pci *vp, uint32_t off, uint8_t *rbuf,
				const uint8_t *wbuf, uint32_t size)
{
	uint32_t chunk = size == 8 ? 4 : size;
	int r, ret = 0;

	if (size != 1 && size != 2 && size != 4 && size != 8)
		return -EINVAL;
	/* All or nothing: an 8-byte access must not half-happen. */
	if (off + size > vdev_device_config_size(vp->dev))
		return -EINVAL;
	for (uint32_t done = 0; done < size; done += chunk) {
		if (wbuf)
			r = vdev_device_config_write(vp->dev, off + done, wbuf + done, chunk);
		else
			r = vdev_device_config_read(vp->dev, off + done, rbuf + done, chunk);
		if (r < 0)
			ret = r;
	}
	return ret;
}

/*
 * One access to BAR 4 at @off (lock held; @off + @size within the BAR), from
 * the bus or the PCI config access window. @rbuf is zeroed for a read.
 */
static int modern_access(vdev_virtio_pci *vp, uint64_t off, uint8_t *rbuf, const uint8_t *wbuf,
			 uint32_t size)
{
	int r;

	if (off >= VDEV_VIRTIO_PCI_NOTIFY_OFFSET) {
		if (rbuf) /* the notify area is write-only */
			return -EINVAL;
		r = claim_iface(vp, IFACE_MODERN);
		return r < 0 ? r : notify_write(vp, off - VDEV_VIRTIO_PCI_NOTIFY_OFFSET, size);
	}
	/* A status write of 0 resets whichever interface was in use. */
	if (!(wbuf && off == VIRTIO_PCI_COMMON_STATUS && size == 1 && wbuf[0] == 0)) {
		r = claim_iface(vp, IFACE_MODERN);
		if (r < 0)
			return r;
	}
	if (off >= VDEV_VIRTIO_PCI_DEVICE_OFFSET)
		return device_config_access(vp, (uint32_t)(off - VDEV_VIRTIO_PCI_DEVICE_OFFSET),
					    rbuf, wbuf, size);
	if (off >= VDEV_VIRTIO_PCI_ISR_OFFSET) {
		if (off != VDEV_VIRTIO_PCI_ISR_OFFSET || size != 1 || wbuf)
			return -EINVAL;
		rbuf[0] = isr_read_clear(vp);
		return 0;
	}
	if (off >= VP_COMMON_LEN || !common_access_ok(off, size))
		return -EINVAL;
	if (wbuf)
		return common_write(vp, off, size, vdi_ld_le(wbuf, size));
	vdi_st_le(rbuf, common_read(vp, off, size), size);
	return 0;
}

/* ---- the legacy block (BAR 0, transitional only) -------------------------- */

/* Legacy queue address: the whole split ring in one block at pfn * 4096, the
 * used ring at the next 4096 boundary (spec 2.7.2 legacy layout). Size: the
 * largest power of two up to the maximum, as QUEUE_NUM shows (legacy drivers
 * cannot choose). */
static int legacy_pfn(vdev_virtio_pci *vp, uint32_t q, uint32_t pfn)
{
	struct vp_queue *vq = &vp->queues[q];
	struct vp_queue ring = *vq;
	uint64_t avail_end;
	int r;

	if (pfn == 0) {
		r = vdev_device_queue_enable(vp->dev, q, 0);
		if (r == 0)
			vq->pfn = 0;
		return r;
	}
	if (vdev_device_queue_enabled(vp->dev, q))
		return -EBUSY;
	ring.size = vdi_pow2_floor(vdev_device_queue_max_size(vp->dev));
	ring.desc = (uint64_t)pfn * VP_LEGACY_PAGE;
	ring.driver = ring.desc + 16ull * ring.size;
	avail_end = ring.driver + 6ull + 2ull * ring.size; /* flags, idx, ring, used_event */
	ring.device = (avail_end + VP_LEGACY_PAGE - 1) & ~(uint64_t)(VP_LEGACY_PAGE - 1);
	r = queue_go(vp, q, &ring);
	if (r == 0) {
		ring.pfn = pfn;
		*vq = ring;
	}
	return r;
}

static int legacy_msix_on(vdev_virtio_pci *vp)
{
	int on;

	pthread_mutex_lock(&vp->irq_lock);
	on = vp->msix_enabled;
	pthread_mutex_unlock(&vp->irq_lock);
	return on;
}

/* Width of the legacy register at @off (0: none; the vectors only with
 * MSI-X enabled). */
static uint32_t legacy_width(uint32_t off, int msix)
{
	switch (off) {
	case VIRTIO_PCI_HOST_FEATURES:
	case VIRTIO_PCI_GUEST_FEATURES:
	case VIRTIO_PCI_QUEUE_PFN:
		return 4;
	case VIRTIO_PCI_QUEUE_NUM:
	case VIRTIO_PCI_QUEUE_SEL:
	case VIRTIO_PCI_QUEUE_NOTIFY:
		return 2;
	case VIRTIO_PCI_STATUS:
	case VIRTIO_PCI_ISR:
		return 1;
	case VIRTIO_MSI_CONFIG_VECTOR:
	case VIRTIO_MSI_QUEUE_VECTOR:
		return msix ? 2 : 0;
	default:
		return 0;
	}
}

static uint32_t legacy_read(vdev_virtio_pci *vp, uint32_t off)
{
	uint32_t q = vp->qsel;
	int have_q = q < vp->num_queues;

	switch (off) {
	case VIRTIO_PCI_HOST_FEATURES:
		return (uint32_t)features_offered(vp);
	case VIRTIO_PCI_GUEST_FEATURES:
		return (uint32_t)vdev_device_acked_features(vp->dev);
	case VIRTIO_PCI_QUEUE_PFN:
		/* As written while the queue is in use; 0 after any reset. */
		return have_q && vdev_device_queue_enabled(vp->dev, q) ? vp->queues[q].pfn : 0;
	case VIRTIO_PCI_QUEUE_NUM:
		return have_q ? vdi_pow2_floor(vdev_device_queue_max_size(vp->dev)) : 0;
	case VIRTIO_PCI_QUEUE_SEL:
		return q;
	case VIRTIO_PCI_STATUS:
		return vdev_device_status(vp->dev);
	case VIRTIO_PCI_ISR:
		return isr_read_clear(vp);
	case VIRTIO_MSI_CONFIG_VECTOR:
		return get_vector(vp, &vp->config_vector);
	case VIRTIO_MSI_QUEUE_VECTOR:
		return have_q ? get_vector(vp, &vp->queues[q].vector) : VDEV_VIRTIO_PCI_NO_VECTOR;
	default: /* QUEUE_NOTIFY is write-only */
		return 0;
	}
}

static int legacy_write(vdev_virtio_pci *vp, uint32_t off, uint32_t v)
{
	uint32_t q = vp->qsel;

	switch (off) {
	case VIRTIO_PCI_GUEST_FEATURES:
		return vdev_device_set_acked_features_page(vp->dev, 0, v);
	case VIRTIO_PCI_QUEUE_PFN:
		if (q >= vp->num_queues)
			return -EINVAL;
		return legacy_pfn(vp, q, v);
	case VIRTIO_PCI_QUEUE_SEL:
		vp->qsel = v;
		return 0;
	case VIRTIO_PCI_STATUS:
		return write_status(vp, v);
	case VIRTIO_MSI_CONFIG_VECTOR:
		set_config_vector(vp, v);
		return 0;
	case VIRTIO_MSI_QUEUE_VECTOR:
		if (q >= vp->num_queues)
			return -EINVAL;
		set_queue_vector(vp, q, v);
		return 0;
	default: /* HOST_FEATURES, QUEUE_NUM, ISR: read-only; QUEUE_NOTIFY is
		  * served without the lock (bar_access) */
		return -EINVAL;
	}
}

/* One access to BAR 0 at @off (lock held; within the BAR). */
static int legacy_access(vdev_virtio_pci *vp, uint64_t off, uint8_t *rbuf, const uint8_t *wbuf,
			 uint32_t size)
{
	int msix = legacy_msix_on(vp);
	uint32_t hdr = msix ? VP_LEGACY_MSIX_HDR : VP_LEGACY_HDR;
	int r;

	if (!(wbuf && off == VIRTIO_PCI_STATUS && size == 1 && wbuf[0] == 0)) {
		r = claim_iface(vp, IFACE_LEGACY);
		if (r < 0)
			return r;
	}
	if (off >= hdr) {
		/* Device config: any width up to 4 (spec 4.1.4.10). */
		if (size > 4)
			return -EINVAL;
		return device_config_access(vp, (uint32_t)(off - hdr), rbuf, wbuf, size);
	}
	if (size != legacy_width((uint32_t)off, msix))
		return -EINVAL;
	if (wbuf)
		return legacy_write(vp, (uint32_t)off, (uint32_t)vdi_ld_le(wbuf, size));
	vdi_st_le(rbuf, legacy_read(vp, (uint32_t)off), size);
	return 0;
}

/* ---- the MSI-X table and PBA (BAR 1; irq_lock only) ------------------------ */

static void msix_table_write(vdev_virtio_pci *vp, uint32_t v, uint32_t field, uint32_t val)
{
	struct vp_msix_entry *e = &vp->table[v];
	struct vp_msix_entry old = *e;

	switch (field) {
	case PCI_MSIX_ENTRY_LOWER_ADDR:
		e->addr_lo = val & ~3u; /* dword-aligned messages */
		break;
	case PCI_MSIX_ENTRY_UPPER_ADDR:
		e->addr_hi = val;
		break;
	case PCI_MSIX_ENTRY_DATA:
		e->data = val;
		break;
	default:
		e->ctrl = val & PCI_MSIX_ENTRY_CTRL_MASKBIT;
		break;
	}
	if (memcmp(&old, e, sizeof(old)) != 0) {
		msix_update(vp, v);
		msix_deliver_pending(vp, v);
	}
}

static uint32_t msix_table_read(const vdev_virtio_pci *vp, uint32_t v, uint32_t field)
{
	const struct vp_msix_entry *e = &vp->table[v];

	switch (field) {
	case PCI_MSIX_ENTRY_LOWER_ADDR:
		return e->addr_lo;
	case PCI_MSIX_ENTRY_UPPER_ADDR:
		return e->addr_hi;
	case PCI_MSIX_ENTRY_DATA:
		return e->data;
	default:
		return e->ctrl;
	}
}

/* 4-byte accesses to one field, or 8-byte ones to an aligned pair; the PBA
 * is read-only. */
static int msix_access(vdev_virtio_pci *vp, uint64_t off, uint8_t *rbuf, const uint8_t *wbuf,
		       uint32_t size)
{
	uint64_t table_len = (uint64_t)vp->nvec * PCI_MSIX_ENTRY_SIZE;
	uint64_t pba_len = 8ull * ((vp->nvec + 63) / 64);
	int r = 0;

	if ((size != 4 && size != 8) || off % size)
		return -EINVAL;
	pthread_mutex_lock(&vp->irq_lock);
	if (off + size <= table_len) {
		for (uint32_t done = 0; done < size; done += 4) {
			uint32_t v = (uint32_t)((off + done) / PCI_MSIX_ENTRY_SIZE);
			uint32_t field = (uint32_t)((off + done) % PCI_MSIX_ENTRY_SIZE);

			if (wbuf)
				msix_table_write(vp, v, field, (uint32_t)vdi_ld_le(wbuf + done, 4));
			else
				vdi_st_le(rbuf + done, msix_table_read(vp, v, field), 4);
		}
	} else if (off >= VDEV_VIRTIO_PCI_PBA_OFFSET &&
		   off + size <= VDEV_VIRTIO_PCI_PBA_OFFSET + pba_len && !wbuf) {
		uint64_t o = off - VDEV_VIRTIO_PCI_PBA_OFFSET;
		uint64_t q = vp->pba[o / 8];

		vdi_st_le(rbuf, size == 8 ? q : q >> (8 * (o % 8)), size);
	} else {
		r = -EINVAL;
	}
	pthread_mutex_unlock(&vp->irq_lock);
	return r;
}

/* ---- BAR routing ---------------------------------------------------------- */

static uint64_t bar_size(const vdev_virtio_pci *vp, int which)
{
	switch (which) {
	case VP_BAR_LEGACY:
		return vp->legacy_size;
	case VP_BAR_MSIX:
		return vp->nvec ? VP_MSIX_BAR_SIZE : 0;
	default:
		return vp->bar4_size;
	}
}

/* Which of our BARs the range at @a->base is, or -1 (gone, or ambiguous:
 * an I/O and a memory BAR the guest put at the same number). */
static int route(const vdev_virtio_pci *vp, const struct vdev_bus_access *a)
{
	int which = -1;

	for (int i = 0; i < VP_NBARS; i++) {
		uint64_t base = __atomic_load_n(&vp->bar_base[i], __ATOMIC_ACQUIRE);

		if (base == 0 || base != a->base)
			continue;
		if (which >= 0)
			return -1;
		which = i;
	}
	if (which < 0)
		return -1;
	if (a->offset >= bar_size(vp, which) || a->size > bar_size(vp, which) - a->offset)
		return -1;
	return which;
}

static int bar_access(vdev_virtio_pci *vp, const struct vdev_bus_access *a, uint8_t *rbuf,
		      const uint8_t *wbuf)
{
	int which = route(vp, a);
	int r;

	if (which < 0) {
		refused(vp, "access outside its BARs", a->address, a->size);
		return -EIO;
	}
	if (which == VP_BAR_MSIX) {
		r = msix_access(vp, a->offset, rbuf, wbuf, a->size);
	} else if (which == VP_BAR_MODERN && wbuf && a->offset >= VDEV_VIRTIO_PCI_NOTIFY_OFFSET) {
		r = notify_write(vp, a->offset - VDEV_VIRTIO_PCI_NOTIFY_OFFSET, a->size);
		return r; /* logged there */
	} else if (which == VP_BAR_LEGACY && wbuf && a->offset == VIRTIO_PCI_QUEUE_NOTIFY &&
		   a->size == 2) {
		if (__atomic_load_n(&vp->iface, __ATOMIC_ACQUIRE) != IFACE_LEGACY)
			r = -EPERM;
		else
			r = vdev_device_queue_notify(vp->dev, (uint32_t)vdi_ld_le(wbuf, 2));
	} else {
		pthread_mutex_lock(&vp->lock);
		sync_reset(vp);
		if (which == VP_BAR_MODERN)
			r = modern_access(vp, a->offset, rbuf, wbuf, a->size);
		else
			r = legacy_access(vp, a->offset, rbuf, wbuf, a->size);
		vp->last_status = vdev_device_status(vp->dev);
		pthread_mutex_unlock(&vp->lock);
	}
	if (r < 0) {
		refused(vp, wbuf ? "BAR write" : "BAR read", a->offset, a->size);
		if (rbuf)
			memset(rbuf, 0, a->size);
	}
	return r;
}

static int bus_read(void *opaque, const struct vdev_bus_access *a, void *data)
{
	if (!opaque || !a || !data || a->size == 0 || a->size > 8)
		return -EINVAL;
	memset(data, 0, a->size);
	return bar_access(opaque, a, data, NULL);
}

static int bus_write(void *opaque, const struct vdev_bus_access *a, const void *data)
{
	if (!opaque || !a || !data || a->size == 0 || a->size > 8)
		return -EINVAL;
	return bar_access(opaque, a, NULL, data);
}

/* ---- config space (lock held) --------------------------------------------- */

static uint32_t cfg_peek32(const vdev_virtio_pci *vp, uint32_t off)
{
	uint8_t b[4] = {0, 0, 0, 0};

	(void)vdev_pci_cfg_peek(vp->cfg, off, b, 4);
	return (uint32_t)vdi_ld_le(b, 4);
}

/*
 * After a config write: recompute what the BARs decode (for routing and
 * notify_address) and the interrupt state the command register and MSI-X
 * message control drive, acting on every change.
 */
static void config_changed(vdev_virtio_pci *vp)
{
	static const uint32_t bars[VP_NBARS] = {
		VDEV_VIRTIO_PCI_BAR_LEGACY, VDEV_VIRTIO_PCI_BAR_MSIX, VDEV_VIRTIO_PCI_BAR_MODERN};
	uint32_t cmd = cfg_peek32(vp, PCI_COMMAND) & 0xffffu;
	uint32_t ctl = vp->msix_cap ? cfg_peek32(vp, vp->msix_cap) >> 16 : 0;
	int en = !!(ctl & PCI_MSIX_FLAGS_ENABLE), fm = !!(ctl & PCI_MSIX_FLAGS_MASKALL);

	for (int i = 0; i < VP_NBARS; i++) {
		uint64_t addr = 0, size;
		uint32_t kind;
		uint32_t decode;

		if (bar_size(vp, i) &&
		    vdev_pci_cfg_bar(vp->cfg, bars[i], &addr, &size, &kind) == 0) {
			decode = (kind & 3u) == VDEV_PCI_BAR_IO ? PCI_COMMAND_IO
								: PCI_COMMAND_MEMORY;
			if (!(cmd & decode))
				addr = 0;
		}
		__atomic_store_n(&vp->bar_base[i], addr, __ATOMIC_RELEASE);
	}

	pthread_mutex_lock(&vp->irq_lock);
	vp->intx_disabled = !!(cmd & PCI_COMMAND_INTX_DISABLE);
	if (en != vp->msix_enabled || fm != vp->msix_fmask) {
		vp->msix_enabled = en;
		vp->msix_fmask = fm;
		for (uint32_t v = 0; v < vp->nvec; v++) {
			msix_update(vp, v);
			msix_deliver_pending(vp, v);
		}
	}
	intx_update(vp, 0);
	pthread_mutex_unlock(&vp->irq_lock);
}

/* The PCI config access window's target, or -EINVAL: BAR 4, length 1, 2 or
 * 4, offset aligned to it and inside the BAR. */
static int cfg_window(const vdev_virtio_pci *vp, uint64_t *off, uint32_t *len)
{
	uint32_t c = vp->cfg_cap;
	uint8_t bar = 0;
	uint32_t o = cfg_peek32(vp, c + VIRTIO_PCI_CAP_OFFSET);
	uint32_t l = cfg_peek32(vp, c + VIRTIO_PCI_CAP_LENGTH);

	(void)vdev_pci_cfg_peek(vp->cfg, c + VIRTIO_PCI_CAP_BAR, &bar, 1);
	if (bar != VDEV_VIRTIO_PCI_BAR_MODERN || (l != 1 && l != 2 && l != 4) || o % l ||
	    o + (uint64_t)l > vp->bar4_size) {
		refused(vp, "PCI config window", o, l);
		return -EINVAL;
	}
	*off = o;
	*len = l;
	return 0;
}

/* A read of pci_cfg_data: the BAR access happens now, its bytes land in the
 * field (the rest of the dword reads 0). */
static uint32_t cfg_window_read(vdev_virtio_pci *vp)
{
	uint8_t b[4] = {0, 0, 0, 0};
	uint64_t off;
	uint32_t len;

	if (cfg_window(vp, &off, &len) == 0) {
		sync_reset(vp);
		(void)modern_access(vp, off, b, NULL, len);
		vp->last_status = vdev_device_status(vp->dev);
	}
	(void)vdev_pci_cfg_poke(vp->cfg, vp->cfg_cap + VP_PCI_CFG_DATA, b, 4);
	return (uint32_t)vdi_ld_le(b, 4);
}

/* A write of pci_cfg_data (already stored): the first cap.length bytes go to
 * the BAR. A refused window or access is logged; the config write itself
 * (the field) happened, so it is not refused. */
static void cfg_window_write(vdev_virtio_pci *vp)
{
	uint8_t b[4];
	uint64_t off;
	uint32_t len;
	int r;

	if (cfg_window(vp, &off, &len) < 0)
		return;
	(void)vdev_pci_cfg_peek(vp->cfg, vp->cfg_cap + VP_PCI_CFG_DATA, b, 4);
	sync_reset(vp);
	r = modern_access(vp, off, NULL, b, len);
	vp->last_status = vdev_device_status(vp->dev);
	if (r < 0)
		refused(vp, "write through the PCI config window", off, len);
}

static uint32_t config_read(void *opaque, uint32_t reg)
{
	vdev_virtio_pci *vp = opaque;
	uint32_t v;

	if (!vp || reg >= VDEV_PCI_CONFIG_DWORDS)
		return 0;
	pthread_mutex_lock(&vp->lock);
	if (reg == (vp->cfg_cap + VP_PCI_CFG_DATA) / 4) {
		v = cfg_window_read(vp);
	} else {
		v = vdev_pci_cfg_read(vp->cfg, reg);
		/* Status: the interrupt bit is the OR of the ISR while MSI-X is
		 * off (spec 4.1.4.5). */
		if (reg == PCI_COMMAND / 4) {
			v &= ~((uint32_t)PCI_STATUS_INTERRUPT << 16);
			pthread_mutex_lock(&vp->irq_lock);
			if (!vp->msix_enabled && vdev_device_isr(vp->dev))
				v |= (uint32_t)PCI_STATUS_INTERRUPT << 16;
			pthread_mutex_unlock(&vp->irq_lock);
		}
	}
	pthread_mutex_unlock(&vp->lock);
	return v;
}

static int config_write(void *opaque, uint32_t reg, uint32_t offset, const void *data,
			uint32_t size)
{
	vdev_virtio_pci *vp = opaque;
	int r;

	if (!vp || !data || reg >= VDEV_PCI_CONFIG_DWORDS ||
	    (size != 1 && size != 2 && size != 4) || offset + size > 4)
		return -EINVAL;
	pthread_mutex_lock(&vp->lock);
	r = vdev_pci_cfg_write(vp->cfg, reg, offset, data, size);
	if (r == 0) {
		config_changed(vp);
		if (reg == (vp->cfg_cap + VP_PCI_CFG_DATA) / 4)
			cfg_window_write(vp);
	}
	pthread_mutex_unlock(&vp->lock);
	return r;
}

static uint32_t vcfg_read(void *opaque, uint32_t reg)
{
	vdev_virtio_pci *vp = opaque;
	uint32_t v;

	if (!vp || reg >= VDEV_PCI_CONFIG_DWORDS)
		return 0;
	pthread_mutex_lock(&vp->lock);
	v = vp->vcfg[reg];
	pthread_mutex_unlock(&vp->lock);
	return v;
}

static void vcfg_write(void *opaque, uint32_t reg, uint32_t value)
{
	vdev_virtio_pci *vp = opaque;

	if (!vp || reg >= VDEV_PCI_CONFIG_DWORDS)
		return;
	pthread_mutex_lock(&vp->lock);
	vp->vcfg[reg] = value;
	pthread_mutex_unlock(&vp->lock);
}

/* ---- bus device ------------------------------------------------------------ */

static const char *bus_label(void *opaque)
{
	VDI_UNUSED(opaque);
	return "virtio-pci";
}

/* Suspendable: vdev_bus_sleep pauses the device behind the function. A
 * transitional function has ranges on two buses, so each bus's pass reaches
 * it: the second finds the work done. */
static int bus_sleep(void *opaque)
{
	vdev_virtio_pci *vp = opaque;
	int r = vdev_device_sleep(vp->dev);

	return r == -EALREADY ? 0 : r;
}

static int bus_wake(void *opaque)
{
	vdev_virtio_pci *vp = opaque;
	int r = vdev_device_wake(vp->dev);

	return r == -EALREADY ? 0 : r;
}

static const struct vdev_bus_device_ops vp_bus_ops = {
	.struct_size = sizeof(struct vdev_bus_device_ops),
	.debug_label = bus_label,
	.read = bus_read,
	.write = bus_write,
	.destroy = NULL,
	.sleep = bus_sleep,
	.wake = bus_wake,
	.config_register_read = config_read,
	.config_register_write = config_write,
	.virtual_config_register_read = vcfg_read,
	.virtual_config_register_write = vcfg_write,
	.is_bridge = NULL,
};

VDEV_EXPORT const struct vdev_bus_device_ops *vdev_virtio_pci_bus_ops(void)
{
	return &vp_bus_ops;
}

/* ---- construction ---------------------------------------------------------- */

/* The spec's transitional device IDs (4.1.2.1), 0 for types without one. */
static uint16_t transitional_id(uint32_t type)
{
	switch (type) {
	case VIRTIO_ID_NET:
		return 0x1000;
	case VIRTIO_ID_BLOCK:
		return 0x1001;
	case VIRTIO_ID_BALLOON:
		return 0x1002;
	case VIRTIO_ID_CONSOLE:
		return 0x1003;
	case VIRTIO_ID_SCSI:
		return 0x1004;
	case VIRTIO_ID_RNG:
		return 0x1005;
	case VIRTIO_ID_9P:
		return 0x1009;
	default:
		return 0;
	}
}

static uint32_t default_class(uint32_t type)
{
	switch (type) {
	case VIRTIO_ID_BLOCK:
		return VP_CLASS_STORAGE_OTHER;
	case VIRTIO_ID_NET:
		return VP_CLASS_NETWORK_ETHERNET;
	default:
		return VP_CLASS_OTHER;
	}
}

/* The header fields from the caller's config; -EINVAL for what the spec or
 * the layout cannot have. */
static int header_config(const struct vdev_virtio_pci_config *c, const vdev_device *dev,
			 struct vdev_pci_cfg_config *pc)
{
	uint32_t type = vdev_device_type(dev);
	int trans = !!(c->flags & VDEV_VIRTIO_PCI_F_TRANSITIONAL);

	if (trans) {
		pc->device_id = transitional_id(type);
		/* Legacy drivers match revision 0 and subsystem = type. */
		if (!pc->device_id || c->revision != 0 ||
		    (c->subsystem_id && c->subsystem_id != type))
			return -EINVAL;
	} else {
		if (type > 0x3f)
			return -EINVAL;
		pc->device_id = (uint16_t)(VDEV_VIRTIO_PCI_DEVICE_ID_BASE + type);
	}
	if (c->interrupt_pin > 4 || c->class_code > 0xffffffu)
		return -EINVAL;
	pc->header_type = 0;
	pc->vendor_id = VDEV_VIRTIO_PCI_VENDOR_ID;
	pc->subsystem_vendor_id = c->subsystem_vendor_id ? c->subsystem_vendor_id
							 : VDEV_VIRTIO_PCI_VENDOR_ID;
	pc->subsystem_id = c->subsystem_id ? c->subsystem_id : (uint16_t)type;
	pc->class_code = c->class_code ? c->class_code : default_class(type);
	pc->revision = trans ? 0 : (c->revision ? c->revision : 1);
	pc->interrupt_pin = c->interrupt_pin ? c->interrupt_pin : 1;
	return 0;
}

static int add_virtio_cap(vdev_virtio_pci *vp, uint8_t type, uint8_t bar, uint32_t offset,
			  uint32_t length, uint32_t *where)
{
	struct virtio_pci_cap cap;

	memset(&cap, 0, sizeof(cap));
	cap.cap_len = sizeof(cap);
	cap.cfg_type = type;
	cap.bar = bar;
	cap.offset = vdi_le32(offset);
	cap.length = vdi_le32(length);
	return vdev_pci_cfg_add_capability(vp->cfg, PCI_CAP_ID_VNDR, (uint8_t *)&cap + 2,
					   sizeof(cap) - 2, NULL, where);
}

static int add_caps(vdev_virtio_pci *vp)
{
	struct virtio_pci_notify_cap ncap;
	struct virtio_pci_cfg_cap ccap;
	uint8_t cmask[sizeof(ccap) - 2];
	uint8_t msix[PCI_CAP_MSIX_SIZEOF - 2], mmask[sizeof(msix)];
	uint32_t cfgsz = vdev_device_config_size(vp->dev), at;
	int r;

	r = add_virtio_cap(vp, VIRTIO_PCI_CAP_COMMON_CFG, VDEV_VIRTIO_PCI_BAR_MODERN,
			   VDEV_VIRTIO_PCI_COMMON_OFFSET, VP_COMMON_LEN, &at);
	if (r < 0)
		return r;

	memset(&ncap, 0, sizeof(ncap));
	ncap.cap.cap_len = sizeof(ncap);
	ncap.cap.cfg_type = VIRTIO_PCI_CAP_NOTIFY_CFG;
	ncap.cap.bar = VDEV_VIRTIO_PCI_BAR_MODERN;
	ncap.cap.offset = vdi_le32(VDEV_VIRTIO_PCI_NOTIFY_OFFSET);
	ncap.cap.length = vdi_le32((uint32_t)notify_len(vp));
	ncap.notify_off_multiplier = vdi_le32(vp->mult);
	r = vdev_pci_cfg_add_capability(vp->cfg, PCI_CAP_ID_VNDR, (uint8_t *)&ncap + 2,
					sizeof(ncap) - 2, NULL, &at);
	if (r < 0)
		return r;

	r = add_virtio_cap(vp, VIRTIO_PCI_CAP_ISR_CFG, VDEV_VIRTIO_PCI_BAR_MODERN,
			   VDEV_VIRTIO_PCI_ISR_OFFSET, VP_ISR_LEN, &at);
	if (r == 0 && cfgsz)
		r = add_virtio_cap(vp, VIRTIO_PCI_CAP_DEVICE_CFG, VDEV_VIRTIO_PCI_BAR_MODERN,
				   VDEV_VIRTIO_PCI_DEVICE_OFFSET, cfgsz, &at);
	if (r < 0)
		return r;

	/* The access window: bar, offset, length and data are the driver's. */
	memset(&ccap, 0, sizeof(ccap));
	ccap.cap.cap_len = sizeof(ccap);
	ccap.cap.cfg_type = VIRTIO_PCI_CAP_PCI_CFG;
	memset(cmask, 0, sizeof(cmask));
	cmask[VIRTIO_PCI_CAP_BAR - 2] = 0xff;
	memset(cmask + VIRTIO_PCI_CAP_OFFSET - 2, 0xff, 8 + sizeof(ccap.pci_cfg_data));
	r = vdev_pci_cfg_add_capability(vp->cfg, PCI_CAP_ID_VNDR, (uint8_t *)&ccap + 2,
					sizeof(ccap) - 2, cmask, &vp->cfg_cap);
	if (r < 0 || !vp->nvec)
		return r;

	/* MSI-X: table at BAR 1 + 0, PBA at BAR 1 + 0x8000; enable and
	 * function mask writable. */
	memset(msix, 0, sizeof(msix));
	memset(mmask, 0, sizeof(mmask));
	vdi_st_le(msix + PCI_MSIX_FLAGS - 2, vp->nvec - 1, 2);
	vdi_st_le(msix + PCI_MSIX_TABLE - 2, VDEV_VIRTIO_PCI_BAR_MSIX, 4);
	vdi_st_le(msix + PCI_MSIX_PBA - 2, VDEV_VIRTIO_PCI_PBA_OFFSET | VDEV_VIRTIO_PCI_BAR_MSIX, 4);
	vdi_st_le(mmask + PCI_MSIX_FLAGS - 2, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL, 2);
	return vdev_pci_cfg_add_capability(vp->cfg, PCI_CAP_ID_MSIX, msix, sizeof(msix), mmask,
					   &vp->msix_cap);
}

static int add_bars(vdev_virtio_pci *vp)
{
	int r = 0;

	if (vp->legacy_size)
		r = vdev_pci_cfg_add_bar(vp->cfg, VDEV_VIRTIO_PCI_BAR_LEGACY, vp->legacy_size,
					 VDEV_PCI_BAR_IO);
	if (r == 0 && vp->nvec)
		r = vdev_pci_cfg_add_bar(vp->cfg, VDEV_VIRTIO_PCI_BAR_MSIX, VP_MSIX_BAR_SIZE,
					 VDEV_PCI_BAR_MEM32);
	if (r == 0)
		r = vdev_pci_cfg_add_bar(vp->cfg, VDEV_VIRTIO_PCI_BAR_MODERN, vp->bar4_size,
					 VDEV_PCI_BAR_MEM64 | VDEV_PCI_BAR_PREFETCH);
	return r;
}

/* Everything but the device hookup; vp is zeroed. */
static int vp_build(vdev_virtio_pci *vp, const struct vdev_pci_cfg_config *pc)
{
	struct vdev_irq_ops iops = VDEV_IRQ_OPS_INIT;
	pthread_mutexattr_t attr;
	int r;

	vp->queues = calloc(vp->num_queues, sizeof(*vp->queues));
	if (!vp->queues)
		return -ENOMEM;
	if (vp->nvec) {
		vp->table = calloc(vp->nvec, sizeof(*vp->table));
		vp->pba = calloc((vp->nvec + 63) / 64, sizeof(*vp->pba));
		if (!vp->table || !vp->pba)
			return -ENOMEM;
		/* Every vector starts masked (PCI MSI-X rules). */
		for (uint32_t i = 0; i < vp->nvec; i++)
			vp->table[i].ctrl = PCI_MSIX_ENTRY_CTRL_MASKBIT;
	}
	if (pthread_mutexattr_init(&attr) != 0)
		return -ENOMEM;
	pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
	r = pthread_mutex_init(&vp->lock, &attr);
	if (r == 0) {
		vp->locks_made = 1;
		r = pthread_mutex_init(&vp->irq_lock, &attr);
		if (r == 0)
			vp->locks_made = 2;
	}
	pthread_mutexattr_destroy(&attr);
	if (r != 0)
		return -ENOMEM;
	r = vdev_pci_cfg_new(pc, &vp->cfg);
	if (r == 0)
		r = add_bars(vp);
	if (r == 0)
		r = add_caps(vp);
	if (r < 0)
		return r;
	iops.trigger = vp_trigger;
	return vdev_irq_new(&iops, vp, &vp->irq);
}

static void vp_destroy(vdev_virtio_pci *vp)
{
	vdev_irq_free(vp->irq);
	vdev_pci_cfg_free(vp->cfg);
	if (vp->locks_made > 1)
		pthread_mutex_destroy(&vp->irq_lock);
	if (vp->locks_made > 0)
		pthread_mutex_destroy(&vp->lock);
	free(vp->pba);
	free(vp->table);
	free(vp->queues);
	free(vp);
}

VDEV_EXPORT int vdev_virtio_pci_new(const struct vdev_virtio_pci_config *cfg, vdev_device *dev,
				    vdev_virtio_pci **out)
{
	struct vdev_pci_cfg_config pc = VDEV_PCI_CFG_CONFIG_INIT;
	struct vdev_virtio_pci_config c;
	struct vdev_pci_msi_ops msi;
	vdev_virtio_pci *vp;
	uint32_t nq, cfgsz;
	int r;

	if (!cfg || !dev || !out || vdi_copy_versioned(&c, sizeof(c), cfg) < 0)
		return -EINVAL;
	if ((c.flags & ~(VDEV_VIRTIO_PCI_F_TRANSITIONAL | VDEV_VIRTIO_PCI_F_NO_MSIX)) ||
	    c.reserved != 0 || !c.msi_ops || vdi_copy_versioned(&msi, sizeof(msi), c.msi_ops) < 0)
		return -EINVAL;
	if (!(c.flags & VDEV_VIRTIO_PCI_F_NO_MSIX) && !msi.signal)
		return -EINVAL;
	if (c.msix_vectors > VP_MSIX_MAX)
		return -EINVAL;
	if (c.notify_off_multiplier &&
	    (c.notify_off_multiplier < 2 || c.notify_off_multiplier > 4096 ||
	     !vdi_is_pow2(c.notify_off_multiplier)))
		return -EINVAL;
	cfgsz = vdev_device_config_size(dev);
	if ((c.flags & VDEV_VIRTIO_PCI_F_TRANSITIONAL) &&
	    VP_LEGACY_MSIX_HDR + cfgsz > VP_IO_BAR_MAX)
		return -EINVAL;
	r = header_config(&c, dev, &pc);
	if (r < 0)
		return r;
	/* Changing the interface of a device in use would confuse its driver. */
	if (vdev_device_status(dev) != 0)
		return -EBUSY;

	vp = calloc(1, sizeof(*vp));
	if (!vp)
		return -ENOMEM;
	nq = vdev_device_num_queues(dev);
	vp->dev = dev;
	vp->msi = msi;
	vp->msi_opaque = c.msi_opaque;
	vp->num_queues = nq;
	vp->mult = c.notify_off_multiplier ? c.notify_off_multiplier : 4;
	vp->bar4_size = VDI_MAX(VDEV_VIRTIO_PCI_BAR4_SIZE,
				vdi_pow2_ceil(VDEV_VIRTIO_PCI_NOTIFY_OFFSET + notify_len(vp)));
	if (c.flags & VDEV_VIRTIO_PCI_F_TRANSITIONAL)
		vp->legacy_size = (uint32_t)vdi_pow2_ceil(VP_LEGACY_MSIX_HDR + cfgsz);
	if (!(c.flags & VDEV_VIRTIO_PCI_F_NO_MSIX))
		vp->nvec = c.msix_vectors ? c.msix_vectors : VDI_MIN(nq + 1, VP_MSIX_MAX);

	r = vp_build(vp, &pc);
	if (r == 0)
		r = vdi_device_set_legacy(dev, 0);
	if (r == 0)
		r = vdev_device_set_irq(dev, vp->irq);
	if (r < 0) {
		vp_destroy(vp);
		return r;
	}
	latches_reset(vp);
	config_changed(vp);
	*out = vp;
	return 0;
}

VDEV_EXPORT void vdev_virtio_pci_free(vdev_virtio_pci *vp)
{
	if (!vp)
		return;
	vdev_device_reset(vp->dev);
	(void)vdev_device_set_irq(vp->dev, NULL);
	(void)vdi_device_set_legacy(vp->dev, 0);
	/* Leave the line down. */
	pthread_mutex_lock(&vp->irq_lock);
	intx_update(vp, 0);
	pthread_mutex_unlock(&vp->irq_lock);
	vp_destroy(vp);
}

VDEV_EXPORT vdev_device *vdev_virtio_pci_device(const vdev_virtio_pci *vp)
{
	return vp ? vp->dev : NULL;
}

VDEV_EXPORT int vdev_virtio_pci_notify_address(vdev_virtio_pci *vp, uint32_t queue,
					       uint64_t *addr, uint32_t *value)
{
	uint64_t base;

	if (!vp || !addr || !value || queue >= vp->num_queues)
		return -EINVAL;
	base = __atomic_load_n(&vp->bar_base[VP_BAR_MODERN], __ATOMIC_ACQUIRE);
	if (base == 0)
		return -ENXIO;
	*addr = base + VDEV_VIRTIO_PCI_NOTIFY_OFFSET + (uint64_t)queue * vp->mult;
	*value = queue;
	return 0;
}
