/* SPDX-License-Identifier: MIT */
/*
 * PCIe root port with native hotplug (pcie.h): a type 1 function on a
 * vdev_pci_root with the PCIe capability (root port, slot implemented) and
 * MSI, one hotplug slot on its secondary bus, and its implementation of the
 * hotplug bus interface.
 *
 * Config space. The header, the bus numbers and the bridge windows live in
 * a vdev_pci_cfg, which serves every read. The PCIe and MSI capabilities are
 * added to it read-only; guest writes that land in them come here instead,
 * and this file applies its own per-byte write masks and write-one-to-clear
 * masks, then acts on what changed. So the cfg stays the one store of every
 * register value, and the state below is only what the registers cannot
 * hold (where the slot is in a plug or unplug, the completion eventfds).
 *
 * The registers follow the PCIe base spec and what Linux's pciehp
 * (drivers/pci/hotplug/pciehp_hpc.c) reads and writes: the slot advertises
 * an attention button, a power controller, power and attention indicators,
 * hot-plug capability and (F_SURPRISE) hot-plug surprise; Command Completed
 * is supported and immediate (every Slot Control write is one command); the
 * link advertises Data Link Layer Link Active reporting, so pciehp waits for
 * DLLLA after powering the slot. The link is up exactly when presence is
 * detected, the power controller is on (PCC clear), Link Disable is clear
 * and no removal is under way; every change of it sets DLLSC. Config cycles
 * reach the slot's functions only while the link is up (the root's gate).
 *
 * The slot. IDLE: empty, or occupied with no command outstanding.
 * hot_plug sets presence (PDS) with PDC and ABP (the attention button too:
 * pciehp enables only the button's interrupt, not presence detect's, when the
 * slot has a button; seeing both it powers the slot on at once, as with
 * QEMU) and waits in PLUGGING for the guest to power the slot on; the link
 * comes up and the plug eventfd fires. hot_unplug presses the attention
 * button and waits in UNPLUGGING; when the guest powers the slot off the
 * port enters REMOVING: the functions are taken off the root (deferred to
 * the end of the guest's config cycle, vdi_pci_root_remove_deferred), then
 * presence clears (PDC) and the unplug eventfd fires. A slot whose guest has
 * never written Slot Control (at boot, before pciehp takes it) gets a cold
 * plug instead: presence, power and link come up silently, as firmware
 * would leave a populated slot, and the eventfd fires at once; a slot that
 * is powered off, or never taken, is emptied directly on hot_unplug (nobody
 * in the guest is using it). Once taken, plugs are always announced, also
 * to a pciehp in poll mode (notifications off): a slot powered behind its
 * back would be one it never scans. Surprise removal empties
 * the slot without asking: link down, functions removed, presence clear.
 *
 * Interrupts (spec 6.7.3.4). The hotplug interrupt condition is HPIE and at
 * least one event status bit whose enable bit is set (ABP/ABPE, PFD/PFDE,
 * MRLSC/MRLSCE, PDC/PDCE, CC/CCIE, DLLSC/DLLSCE). With MSI enabled a
 * message is sent each time the condition goes from false to true (so
 * software must clear every event before the next one interrupts, which is
 * why pciehp's ISR re-reads Slot Status; enabling HPIE or an enable bit while
 * the status is set also sends one); a masked vector sets its pending bit
 * instead and is sent on unmask; without bus mastering the message is
 * dropped, as the write of a real port would be. With MSI disabled INTx
 * follows the condition as a level (unless INTx is disabled in the command
 * register), and the status register's interrupt bit shows the condition.
 *
 * Locking. port->lock covers the cfg and all state. The root calls the
 * config hooks with its own lock held, and the root-then-port order is the
 * only order: the port never calls into the root while holding its lock
 * (the hotplug ops drop it around vdev_pci_root_find/_remove; a config
 * write that starts a removal queues it after dropping the lock). The MSI
 * and INTx callbacks run with the port lock held (during config cycles also
 * the root's): they must not call into the port or the root. The gate's
 * link_up reads an atomic copy of the link state and takes no lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <linux/pci_regs.h>

#include <virtio-dev/pcie.h>

#include "bus/pci_internal.h"
#include "internal/util.h"

#define PORT_DEFAULT_VENDOR 0x1b36u
#define PORT_DEFAULT_DEVICE 0x000cu
#define PORT_CLASS 0x060400u /* PCI-to-PCI bridge, normal decode */

/* The version 2 PCIe capability of a port runs through Slot Status 2. */
#define EXP_SIZE (PCI_EXP_SLTSTA2 + 2u)
/* MSI with a 64-bit address and per-vector masking: through Pending Bits. */
#define MSI_SIZE (PCI_MSI_PENDING_64 + 4u)

/* Slot Status bits that are events (RW1C), and the Slot Control bits the
 * guest may write. EIC is accepted but reads 0 (no interlock). */
#define SLTSTA_EVENTS                                                                     \
	(PCI_EXP_SLTSTA_ABP | PCI_EXP_SLTSTA_PFD | PCI_EXP_SLTSTA_MRLSC |                 \
	 PCI_EXP_SLTSTA_PDC | PCI_EXP_SLTSTA_CC | PCI_EXP_SLTSTA_DLLSC)
#define SLTCTL_WRITABLE                                                                   \
	(PCI_EXP_SLTCTL_ABPE | PCI_EXP_SLTCTL_PFDE | PCI_EXP_SLTCTL_MRLSCE |              \
	 PCI_EXP_SLTCTL_PDCE | PCI_EXP_SLTCTL_CCIE | PCI_EXP_SLTCTL_HPIE |                \
	 PCI_EXP_SLTCTL_AIC | PCI_EXP_SLTCTL_PIC | PCI_EXP_SLTCTL_PCC |                   \
	 PCI_EXP_SLTCTL_EIC | PCI_EXP_SLTCTL_DLLSCE)
/* The five low enable bits sit where their status bits do. */
#define SLTCTL_LOW_ENABLES                                                                \
	(PCI_EXP_SLTCTL_ABPE | PCI_EXP_SLTCTL_PFDE | PCI_EXP_SLTCTL_MRLSCE |              \
	 PCI_EXP_SLTCTL_PDCE | PCI_EXP_SLTCTL_CCIE)
#define DEVCTL_WRITABLE                                                                   \
	(PCI_EXP_DEVCTL_CERE | PCI_EXP_DEVCTL_NFERE | PCI_EXP_DEVCTL_FERE |               \
	 PCI_EXP_DEVCTL_URRE | PCI_EXP_DEVCTL_RELAX_EN | PCI_EXP_DEVCTL_PAYLOAD |         \
	 PCI_EXP_DEVCTL_NOSNOOP_EN | PCI_EXP_DEVCTL_READRQ)
#define DEVSTA_EVENTS                                                                     \
	(PCI_EXP_DEVSTA_CED | PCI_EXP_DEVSTA_NFED | PCI_EXP_DEVSTA_FED | PCI_EXP_DEVSTA_URD)
/* No ASPM support, so ASPM Control stays 0; Retrain Link reads 0. */
#define LNKCTL_WRITABLE                                                                   \
	(PCI_EXP_LNKCTL_RCB | PCI_EXP_LNKCTL_LD | PCI_EXP_LNKCTL_RL | PCI_EXP_LNKCTL_CCC | \
	 PCI_EXP_LNKCTL_ES)
#define RTCTL_WRITABLE                                                                    \
	(PCI_EXP_RTCTL_SECEE | PCI_EXP_RTCTL_SENFEE | PCI_EXP_RTCTL_SEFEE |               \
	 PCI_EXP_RTCTL_PMEIE)

#define PORT_MAX_HOTPLUG_DEVICES 8u
#define PORT_FNS 8u

enum slot_state {
	SLOT_IDLE,
	SLOT_PLUGGING,   /* presence shown, waiting for the guest to power on */
	SLOT_UNPLUGGING, /* button pressed, waiting for the guest to power off */
	SLOT_REMOVING,   /* the functions are leaving the root */
};

struct hotplug_dev {
	uint64_t key; /* VDEV_HOTPLUG_KEY_NONE: free */
	uint32_t addr;
};

struct vdev_pcie_port {
	pthread_mutex_t lock;
	pthread_cond_t cond; /* removals reached 0 */
	vdev_pci_root *root;
	vdev_pci_cfg *cfg;
	struct vdev_pci_msi_ops msi;
	void *msi_opaque;
	uint32_t addr;
	uint32_t host_addr;
	uint64_t key;
	uint32_t exp;     /* offset of the PCIe capability */
	uint32_t msi_cap; /* offset of the MSI capability, 0: none (no signal op) */
	uint8_t wmask[256];
	uint8_t w1c[256];

	int link;       /* atomic copy of DLLLA, for the gate */
	int irq_cond;   /* the interrupt condition when last evaluated */
	int intx;       /* the INTx level last reported */
	int driven;     /* the guest has written Slot Control: its pciehp owns the slot */
	enum slot_state state;
	uint32_t slot_bus; /* bus of the slot's functions while occupied */
	int plug_fd;       /* ours; the caller holds a dup */
	int unplug_fd;
	/* Deferred removals whose done callback has not run, plus one while the
	 * config write that queues them is still queueing. */
	uint32_t removals;
	struct hotplug_dev devs[PORT_MAX_HOTPLUG_DEVICES];
};

/* ---- config space access (port->lock held) ---- */

static uint32_t cfg_get(const vdev_pcie_port *p, uint32_t off, uint32_t len)
{
	uint8_t b[4] = { 0 };

	vdev_pci_cfg_peek(p->cfg, off, b, len);
	return (uint32_t)vdi_ld_le(b, len);
}

static void cfg_set(vdev_pcie_port *p, uint32_t off, uint32_t len, uint32_t v)
{
	uint8_t b[4];

	vdi_st_le(b, v, len);
	vdev_pci_cfg_poke(p->cfg, off, b, len);
}

static uint16_t exp_get16(const vdev_pcie_port *p, uint32_t reg)
{
	return (uint16_t)cfg_get(p, p->exp + reg, 2);
}

static void exp_set16(vdev_pcie_port *p, uint32_t reg, uint16_t v)
{
	cfg_set(p, p->exp + reg, 2, v);
}

static uint8_t secondary_bus(const vdev_pcie_port *p)
{
	return (uint8_t)cfg_get(p, PCI_SECONDARY_BUS, 1);
}

static void mask_set(uint8_t *m, uint32_t off, uint32_t len, uint32_t v)
{
	vdi_st_le(m + off, v, len);
}

/* ---- interrupts (port->lock held) ---- */

static uint64_t msi_address(const vdev_pcie_port *p)
{
	return (uint64_t)cfg_get(p, p->msi_cap + PCI_MSI_ADDRESS_HI, 4) << 32 |
	       cfg_get(p, p->msi_cap + PCI_MSI_ADDRESS_LO, 4);
}

static uint32_t msi_data(const vdev_pcie_port *p)
{
	return cfg_get(p, p->msi_cap + PCI_MSI_DATA_64, 2);
}

static int msi_enabled(const vdev_pcie_port *p)
{
	return p->msi_cap && (cfg_get(p, p->msi_cap + PCI_MSI_FLAGS, 2) & PCI_MSI_FLAGS_ENABLE);
}

static int msi_masked(const vdev_pcie_port *p)
{
	return cfg_get(p, p->msi_cap + PCI_MSI_MASK_64, 4) & 1u;
}

static void msi_update(vdev_pcie_port *p)
{
	if (p->msi.update)
		p->msi.update(p->msi_opaque, 0, msi_address(p), msi_data(p),
			      !msi_enabled(p) || msi_masked(p));
}

/* Send the message now; the caller checked enable and mask. */
static void msi_send(vdev_pcie_port *p)
{
	int r;

	if (!(cfg_get(p, PCI_COMMAND, 2) & PCI_COMMAND_MASTER)) {
		vdi_log(VDEV_LOG_DEBUG, "pcie port %04x: MSI dropped: bus mastering is off",
			p->addr);
		return;
	}
	r = p->msi.signal(p->msi_opaque, 0, msi_address(p), msi_data(p));
	if (r < 0)
		vdi_log(VDEV_LOG_WARNING, "pcie port %04x: MSI signal failed (%d)", p->addr, r);
}

static void msi_fire(vdev_pcie_port *p)
{
	if (msi_masked(p))
		cfg_set(p, p->msi_cap + PCI_MSI_PENDING_64, 4, 1);
	else
		msi_send(p);
}

/* Interrupt Status shows @pending whatever INTx Disable says (PCI 3.0
 * 6.2.3); the pin carries @level. */
static void set_intx(vdev_pcie_port *p, int pending, int level)
{
	uint32_t status = cfg_get(p, PCI_STATUS, 2) & ~(uint32_t)PCI_STATUS_INTERRUPT;

	cfg_set(p, PCI_STATUS, 2, status | (pending ? PCI_STATUS_INTERRUPT : 0));
	if (level == p->intx)
		return;
	p->intx = level;
	if (p->msi.set_intx)
		p->msi.set_intx(p->msi_opaque, (uint32_t)level);
}

/* Re-evaluate the hotplug interrupt condition after any change to Slot
 * Status, Slot Control, MSI or the command register. */
static void eval_irq(vdev_pcie_port *p)
{
	uint16_t ctl = exp_get16(p, PCI_EXP_SLTCTL);
	uint16_t sta = exp_get16(p, PCI_EXP_SLTSTA);
	uint16_t events = sta & ctl & SLTCTL_LOW_ENABLES;
	int cond;

	if (ctl & PCI_EXP_SLTCTL_DLLSCE)
		events |= sta & PCI_EXP_SLTSTA_DLLSC;
	cond = (ctl & PCI_EXP_SLTCTL_HPIE) && events;

	if (msi_enabled(p)) {
		set_intx(p, 0, 0);
		if (cond && !p->irq_cond)
			msi_fire(p);
	} else {
		/* No set_intx: no interrupt pin, nothing pending or asserted. */
		int pending = p->msi.set_intx && cond;

		set_intx(p, pending,
			 pending && !(cfg_get(p, PCI_COMMAND, 2) & PCI_COMMAND_INTX_DISABLE));
	}
	p->irq_cond = cond;
}

/* ---- the slot (port->lock held) ---- */

static void fd_complete(int *fd)
{
	uint64_t one = 1;

	if (*fd < 0)
		return;
	if (write(*fd, &one, sizeof(one)) != (ssize_t)sizeof(one))
		vdi_log(VDEV_LOG_WARNING, "pcie port: completion eventfd write failed");
	close(*fd);
	*fd = -1;
}

static void fd_drop(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void set_status(vdev_pcie_port *p, uint16_t set, uint16_t clear)
{
	uint16_t sta = exp_get16(p, PCI_EXP_SLTSTA);

	exp_set16(p, PCI_EXP_SLTSTA, (uint16_t)((sta & ~clear) | set));
}

/*
 * Bring the link to what presence, power, Link Disable and the slot state
 * say. A change sets DLLSC when @event (a cold plug is silent); a link that
 * comes up completes a plug.
 */
static void link_update(vdev_pcie_port *p, int event)
{
	uint16_t sta = exp_get16(p, PCI_EXP_SLTSTA);
	uint16_t ctl = exp_get16(p, PCI_EXP_SLTCTL);
	uint16_t lnkctl = exp_get16(p, PCI_EXP_LNKCTL);
	uint16_t lnksta = exp_get16(p, PCI_EXP_LNKSTA);
	int up = (sta & PCI_EXP_SLTSTA_PDS) && !(ctl & PCI_EXP_SLTCTL_PCC) &&
		 !(lnkctl & PCI_EXP_LNKCTL_LD) && p->state != SLOT_REMOVING;

	if (up == !!(lnksta & PCI_EXP_LNKSTA_DLLLA))
		return;
	lnksta = up ? lnksta | PCI_EXP_LNKSTA_DLLLA : lnksta & ~PCI_EXP_LNKSTA_DLLLA;
	exp_set16(p, PCI_EXP_LNKSTA, lnksta);
	if (event)
		set_status(p, PCI_EXP_SLTSTA_DLLSC, 0);
	__atomic_store_n(&p->link, up, __ATOMIC_RELEASE);
	if (up && p->state == SLOT_PLUGGING) {
		p->state = SLOT_IDLE;
		fd_complete(&p->plug_fd);
	}
}

/* The functions are gone: clear presence, finish the commands. */
static void finish_removal(vdev_pcie_port *p)
{
	p->state = SLOT_IDLE;
	set_status(p, PCI_EXP_SLTSTA_PDC, PCI_EXP_SLTSTA_PDS);
	link_update(p, 1);
	fd_complete(&p->unplug_fd);
	fd_drop(&p->plug_fd);
	for (uint32_t i = 0; i < PORT_MAX_HOTPLUG_DEVICES; i++) {
		struct hotplug_dev *d = &p->devs[i];

		if (d->key != VDEV_HOTPLUG_KEY_NONE && VDEV_PCI_ADDR_BUS(d->addr) == p->slot_bus &&
		    VDEV_PCI_ADDR_DEV(d->addr) == 0)
			d->key = VDEV_HOTPLUG_KEY_NONE;
	}
	eval_irq(p);
}

static void removal_put(vdev_pcie_port *p)
{
	if (--p->removals > 0)
		return;
	if (p->state == SLOT_REMOVING)
		finish_removal(p);
	pthread_cond_broadcast(&p->cond);
}

static void removal_done(void *opaque, uint32_t addr)
{
	vdev_pcie_port *p = opaque;

	VDI_UNUSED(addr);
	pthread_mutex_lock(&p->lock);
	removal_put(p);
	pthread_mutex_unlock(&p->lock);
}

/*
 * From a config write, port lock not held, root lock held: queue the removal
 * of the slot's functions; the last done callback (or this, when none was
 * queued) finishes it. removals holds the reference taken when the slot
 * entered REMOVING.
 */
static void queue_removal(vdev_pcie_port *p)
{
	uint32_t bus;

	pthread_mutex_lock(&p->lock);
	bus = p->slot_bus;
	pthread_mutex_unlock(&p->lock);
	for (uint32_t fn = 0; fn < PORT_FNS; fn++) {
		int r;

		pthread_mutex_lock(&p->lock);
		p->removals++;
		pthread_mutex_unlock(&p->lock);
		r = vdi_pci_root_remove_deferred(p->root, VDEV_PCI_ADDR(bus, 0, fn), removal_done,
						 p);
		if (r < 0) {
			pthread_mutex_lock(&p->lock);
			removal_put(p);
			pthread_mutex_unlock(&p->lock);
			if (r != -ENOENT)
				vdi_log(VDEV_LOG_ERR,
					"pcie port %04x: removing %02x:00.%u failed (%d)", p->addr,
					bus, fn, r);
		}
	}
	pthread_mutex_lock(&p->lock);
	removal_put(p);
	pthread_mutex_unlock(&p->lock);
}

/* The slot's functions leave the root (outside any config cycle, port lock
 * not held). */
static void remove_slot(vdev_pci_root *root, uint32_t bus)
{
	for (uint32_t fn = 0; fn < PORT_FNS; fn++)
		vdev_pci_root_remove(root, VDEV_PCI_ADDR(bus, 0, fn));
}

/*
 * Outside any config cycle, port lock not held, slot in REMOVING with its
 * link down: remove the functions now and finish.
 */
static void remove_now(vdev_pcie_port *p)
{
	uint32_t bus;

	pthread_mutex_lock(&p->lock);
	bus = p->slot_bus;
	pthread_mutex_unlock(&p->lock);
	remove_slot(p->root, bus);
	pthread_mutex_lock(&p->lock);
	finish_removal(p);
	pthread_mutex_unlock(&p->lock);
}

/* Enter REMOVING: the link drops (DLLSC) and stays down until finish. */
static void begin_removal(vdev_pcie_port *p)
{
	p->state = SLOT_REMOVING;
	link_update(p, 1);
}

/*
 * A Slot Control write: one command. Returns 1 when it powered off a slot
 * whose unplug was pending, so the caller must queue the removal.
 */
static int slot_command(vdev_pcie_port *p, uint16_t old_ctl)
{
	uint16_t ctl = exp_get16(p, PCI_EXP_SLTCTL);
	int rm = 0;

	if (ctl & PCI_EXP_SLTCTL_EIC) {
		ctl &= (uint16_t)~PCI_EXP_SLTCTL_EIC;
		exp_set16(p, PCI_EXP_SLTCTL, ctl);
	}
	link_update(p, 1);
	if (!(old_ctl & PCI_EXP_SLTCTL_PCC) && (ctl & PCI_EXP_SLTCTL_PCC) &&
	    p->state == SLOT_UNPLUGGING) {
		p->removals++; /* dropped by queue_removal */
		begin_removal(p);
		rm = 1;
	}
	set_status(p, PCI_EXP_SLTSTA_CC, 0);
	return rm;
}

/* ---- the capabilities' registers ---- */

static int in_caps(const vdev_pcie_port *p, uint32_t off)
{
	return (off >= p->exp && off < p->exp + EXP_SIZE) ||
	       (p->msi_cap && off >= p->msi_cap && off < p->msi_cap + MSI_SIZE);
}

static int touches(uint32_t start, uint32_t size, uint32_t reg, uint32_t len)
{
	return start < reg + len && reg < start + size;
}

/* A guest write into the PCIe or MSI capability. Returns 1 as slot_command. */
static int caps_write(vdev_pcie_port *p, uint32_t start, const uint8_t *data, uint32_t size)
{
	uint16_t old_ctl = exp_get16(p, PCI_EXP_SLTCTL);
	uint64_t old_addr = 0;
	uint32_t old_data = 0, old_flags = 0, old_mask = 0;
	int rm = 0;

	if (p->msi_cap) {
		old_addr = msi_address(p);
		old_data = msi_data(p);
		old_flags = cfg_get(p, p->msi_cap + PCI_MSI_FLAGS, 2);
		old_mask = cfg_get(p, p->msi_cap + PCI_MSI_MASK_64, 4);
	}
	for (uint32_t i = 0; i < size; i++) {
		uint32_t o = start + i;
		uint8_t b = (uint8_t)cfg_get(p, o, 1);

		b = (uint8_t)((b & ~p->wmask[o]) | (data[i] & p->wmask[o]));
		b &= (uint8_t)~(data[i] & p->w1c[o]);
		cfg_set(p, o, 1, b);
	}

	if (touches(start, size, p->exp + PCI_EXP_SLTCTL, 2)) {
		p->driven = 1;
		rm = slot_command(p, old_ctl);
	}
	if (touches(start, size, p->exp + PCI_EXP_LNKCTL, 2)) {
		/* Retraining is instant; the bit reads 0. */
		exp_set16(p, PCI_EXP_LNKCTL,
			  exp_get16(p, PCI_EXP_LNKCTL) & (uint16_t)~PCI_EXP_LNKCTL_RL);
		link_update(p, 1);
	}
	if (p->msi_cap) {
		uint32_t flags = cfg_get(p, p->msi_cap + PCI_MSI_FLAGS, 2);
		uint32_t mask = cfg_get(p, p->msi_cap + PCI_MSI_MASK_64, 4);

		if (old_addr != msi_address(p) || old_data != msi_data(p) ||
		    ((old_flags ^ flags) & PCI_MSI_FLAGS_ENABLE) || old_mask != mask)
			msi_update(p);
		if ((flags & PCI_MSI_FLAGS_ENABLE) && !(mask & 1u) &&
		    (cfg_get(p, p->msi_cap + PCI_MSI_PENDING_64, 4) & 1u)) {
			cfg_set(p, p->msi_cap + PCI_MSI_PENDING_64, 4, 0);
			msi_send(p);
		}
	}
	eval_irq(p);
	return rm;
}

/* ---- bus-device ops: the port as a function on the root ---- */

static const char *port_label(void *opaque)
{
	VDI_UNUSED(opaque);
	return "pcie-root-port";
}

static uint32_t port_cfg_read(void *opaque, uint32_t reg)
{
	vdev_pcie_port *p = opaque;
	uint32_t v;

	if (reg >= VDEV_PCI_CONFIG_DWORDS)
		return 0xffffffffu;
	pthread_mutex_lock(&p->lock);
	v = vdev_pci_cfg_read(p->cfg, reg);
	pthread_mutex_unlock(&p->lock);
	return v;
}

static int port_cfg_write(void *opaque, uint32_t reg, uint32_t offset, const void *data,
			  uint32_t size)
{
	vdev_pcie_port *p = opaque;
	uint32_t start = reg * 4 + offset;
	int r = 0, rm = 0;

	if (!data || reg >= VDEV_PCI_CONFIG_DWORDS || (size != 1 && size != 2 && size != 4) ||
	    offset + size > 4)
		return -EINVAL;
	pthread_mutex_lock(&p->lock);
	if (in_caps(p, start)) {
		rm = caps_write(p, start, data, size);
	} else {
		r = vdev_pci_cfg_write(p->cfg, reg, offset, data, size);
		if (touches(start, size, PCI_COMMAND, 2))
			eval_irq(p);
	}
	pthread_mutex_unlock(&p->lock);
	if (rm)
		queue_removal(p);
	return r;
}

static int32_t port_is_bridge(void *opaque)
{
	vdev_pcie_port *p = opaque;
	int32_t bus;

	pthread_mutex_lock(&p->lock);
	bus = secondary_bus(p);
	pthread_mutex_unlock(&p->lock);
	return bus;
}

static const struct vdev_bus_device_ops port_bus_ops = {
	.struct_size = sizeof(struct vdev_bus_device_ops),
	.debug_label = port_label,
	/* The port has no BARs: nothing of it is ever placed on a bus. */
	.read = vdi_pci_no_bar_read,
	.write = vdi_pci_no_bar_write,
	.config_register_read = port_cfg_read,
	.config_register_write = port_cfg_write,
	.is_bridge = port_is_bridge,
};

static int port_link_up(void *opaque)
{
	vdev_pcie_port *p = opaque;

	return __atomic_load_n(&p->link, __ATOMIC_ACQUIRE);
}

/* ---- creation ---- */

static int windows_valid(const struct vdev_pcie_port_config *c)
{
	const uint64_t mib = 1ull << 20, gib4 = 1ull << 32;

	if (c->mem_size && ((c->mem_base | c->mem_size) & (mib - 1) || c->mem_base >= gib4 ||
			    c->mem_size > gib4 - c->mem_base))
		return 0;
	if (c->pref_size && ((c->pref_base | c->pref_size) & (mib - 1) ||
			     c->pref_size - 1 > UINT64_MAX - c->pref_base))
		return 0;
	if (c->io_size && ((c->io_base | c->io_size) & 0xfffu || c->io_size > gib4 - c->io_base))
		return 0;
	return 1;
}

/*
 * Program the bus numbers and the windows as firmware would. The I/O and
 * prefetchable windows keep the addressing type the cfg reports (16/32-bit
 * I/O, 32/64-bit prefetchable); a window the type cannot hold is refused.
 */
static int program_bridge(vdev_pcie_port *p, const struct vdev_pcie_port_config *c,
			  uint8_t subordinate)
{
	uint32_t io_type = cfg_get(p, PCI_IO_BASE, 1) & PCI_IO_RANGE_TYPE_MASK;
	uint32_t pref_type = cfg_get(p, PCI_PREF_MEMORY_BASE, 2) & PCI_PREF_RANGE_TYPE_MASK;

	cfg_set(p, PCI_PRIMARY_BUS, 1, VDEV_PCI_ADDR_BUS(c->addr));
	cfg_set(p, PCI_SECONDARY_BUS, 1, c->secondary_bus);
	cfg_set(p, PCI_SUBORDINATE_BUS, 1, subordinate);

	if (c->mem_size) {
		uint64_t last = c->mem_base + c->mem_size - 1;

		cfg_set(p, PCI_MEMORY_BASE, 2, (uint32_t)(c->mem_base >> 16) & 0xfff0u);
		cfg_set(p, PCI_MEMORY_LIMIT, 2, (uint32_t)(last >> 16) & 0xfff0u);
	} else {
		cfg_set(p, PCI_MEMORY_BASE, 2, 0xfff0u);
		cfg_set(p, PCI_MEMORY_LIMIT, 2, 0);
	}

	if (c->pref_size) {
		uint64_t last = c->pref_base + c->pref_size - 1;

		if (pref_type != PCI_PREF_RANGE_TYPE_64 && (last >> 32))
			return -EINVAL;
		cfg_set(p, PCI_PREF_MEMORY_BASE, 2,
			((uint32_t)(c->pref_base >> 16) & 0xfff0u) | pref_type);
		cfg_set(p, PCI_PREF_MEMORY_LIMIT, 2,
			((uint32_t)(last >> 16) & 0xfff0u) | pref_type);
		if (pref_type == PCI_PREF_RANGE_TYPE_64) {
			cfg_set(p, PCI_PREF_BASE_UPPER32, 4, (uint32_t)(c->pref_base >> 32));
			cfg_set(p, PCI_PREF_LIMIT_UPPER32, 4, (uint32_t)(last >> 32));
		}
	} else {
		cfg_set(p, PCI_PREF_MEMORY_BASE, 2, 0xfff0u | pref_type);
		cfg_set(p, PCI_PREF_MEMORY_LIMIT, 2, pref_type);
	}

	if (c->io_size) {
		uint64_t last = c->io_base + (uint64_t)c->io_size - 1;

		if (io_type != PCI_IO_RANGE_TYPE_32 && last > 0xffffu)
			return -EINVAL;
		cfg_set(p, PCI_IO_BASE, 1, ((c->io_base >> 8) & 0xf0u) | io_type);
		cfg_set(p, PCI_IO_LIMIT, 1, ((uint32_t)(last >> 8) & 0xf0u) | io_type);
		if (io_type == PCI_IO_RANGE_TYPE_32) {
			cfg_set(p, PCI_IO_BASE_UPPER16, 2, c->io_base >> 16);
			cfg_set(p, PCI_IO_LIMIT_UPPER16, 2, (uint32_t)(last >> 16));
		}
	} else {
		cfg_set(p, PCI_IO_BASE, 1, 0xf0u | io_type);
		cfg_set(p, PCI_IO_LIMIT, 1, io_type);
	}
	return 0;
}

static int add_pcie_cap(vdev_pcie_port *p, const struct vdev_pcie_port_config *c)
{
	uint8_t body[EXP_SIZE] = { 0 };
	uint32_t sltcap = PCI_EXP_SLTCAP_ABP | PCI_EXP_SLTCAP_PCP | PCI_EXP_SLTCAP_AIP |
			  PCI_EXP_SLTCAP_PIP | PCI_EXP_SLTCAP_HPC |
			  ((uint32_t)c->slot_number << 19);
	uint32_t off;
	int r;

	if (c->flags & VDEV_PCIE_PORT_F_SURPRISE)
		sltcap |= PCI_EXP_SLTCAP_HPS;
	/* body[] is indexed by register offset; the first 2 bytes (ID, next)
	 * are not passed. */
	mask_set(body, PCI_EXP_FLAGS, 2,
		 2u | PCI_EXP_TYPE_ROOT_PORT << 4 | PCI_EXP_FLAGS_SLOT);
	mask_set(body, PCI_EXP_DEVCAP, 4, PCI_EXP_DEVCAP_RBER);
	mask_set(body, PCI_EXP_LNKCAP, 4,
		 PCI_EXP_LNKCAP_SLS_2_5GB | 1u << 4 | PCI_EXP_LNKCAP_DLLLARC |
			 VDEV_PCI_ADDR_DEV(c->addr) << 24);
	mask_set(body, PCI_EXP_LNKSTA, 2, PCI_EXP_LNKSTA_CLS_2_5GB | PCI_EXP_LNKSTA_NLW_X1);
	mask_set(body, PCI_EXP_SLTCAP, 4, sltcap);
	mask_set(body, PCI_EXP_SLTCTL, 2,
		 PCI_EXP_SLTCTL_PWR_OFF | PCI_EXP_SLTCTL_PWR_IND_OFF | PCI_EXP_SLTCTL_ATTN_IND_OFF);
	mask_set(body, PCI_EXP_LNKCAP2, 4, PCI_EXP_LNKCAP2_SLS_2_5GB);
	mask_set(body, PCI_EXP_LNKCTL2, 2, PCI_EXP_LNKCTL2_TLS_2_5GT);
	r = vdev_pci_cfg_add_capability(p->cfg, PCI_CAP_ID_EXP, body + 2, EXP_SIZE - 2, NULL,
					&off);
	if (r < 0)
		return r;
	p->exp = off;
	mask_set(p->wmask, off + PCI_EXP_DEVCTL, 2, DEVCTL_WRITABLE);
	mask_set(p->w1c, off + PCI_EXP_DEVSTA, 2, DEVSTA_EVENTS);
	mask_set(p->wmask, off + PCI_EXP_LNKCTL, 2, LNKCTL_WRITABLE);
	mask_set(p->wmask, off + PCI_EXP_SLTCTL, 2, SLTCTL_WRITABLE);
	mask_set(p->w1c, off + PCI_EXP_SLTSTA, 2, SLTSTA_EVENTS);
	mask_set(p->wmask, off + PCI_EXP_RTCTL, 2, RTCTL_WRITABLE);
	mask_set(p->w1c, off + PCI_EXP_RTSTA, 4, PCI_EXP_RTSTA_PME);
	return 0;
}

static int add_msi_cap(vdev_pcie_port *p)
{
	uint8_t body[MSI_SIZE] = { 0 };
	uint32_t off;
	int r;

	mask_set(body, PCI_MSI_FLAGS, 2, PCI_MSI_FLAGS_64BIT | PCI_MSI_FLAGS_MASKBIT);
	r = vdev_pci_cfg_add_capability(p->cfg, PCI_CAP_ID_MSI, body + 2, MSI_SIZE - 2, NULL,
					&off);
	if (r < 0)
		return r;
	p->msi_cap = off;
	mask_set(p->wmask, off + PCI_MSI_FLAGS, 2, PCI_MSI_FLAGS_ENABLE | PCI_MSI_FLAGS_QSIZE);
	mask_set(p->wmask, off + PCI_MSI_ADDRESS_LO, 4, 0xfffffffcu);
	mask_set(p->wmask, off + PCI_MSI_ADDRESS_HI, 4, 0xffffffffu);
	mask_set(p->wmask, off + PCI_MSI_DATA_64, 2, 0xffffu);
	mask_set(p->wmask, off + PCI_MSI_MASK_64, 4, 1u);
	return 0;
}

static void port_destroy(vdev_pcie_port *p)
{
	fd_drop(&p->plug_fd);
	fd_drop(&p->unplug_fd);
	vdev_pci_cfg_free(p->cfg);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

VDEV_EXPORT int vdev_pcie_port_new(const struct vdev_pcie_port_config *cfg, vdev_pcie_port **out)
{
	struct vdev_pci_cfg_config hc = VDEV_PCI_CFG_CONFIG_INIT;
	struct vdev_pcie_port_config c;
	uint8_t subordinate;
	vdev_pcie_port *p;
	int r;

	if (!cfg || !out || vdi_copy_versioned(&c, sizeof(c), cfg) < 0 || !c.root ||
	    !c.msi_ops || c.addr > 0xffffu || c.slot_number > 8191 || c.vendor_id == 0xffffu ||
	    (c.flags & ~VDEV_PCIE_PORT_F_SURPRISE) || !windows_valid(&c))
		goto inval;
	subordinate = c.subordinate_bus ? c.subordinate_bus : c.secondary_bus;
	if (c.secondary_bus == 0 || c.secondary_bus <= VDEV_PCI_ADDR_BUS(c.addr) ||
	    subordinate < c.secondary_bus)
		goto inval;

	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	if (vdi_copy_versioned(&p->msi, sizeof(p->msi), c.msi_ops) < 0 ||
	    (!p->msi.signal && !p->msi.set_intx)) {
		free(p);
		goto inval;
	}
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	p->root = c.root;
	p->msi_opaque = c.msi_opaque;
	p->addr = c.addr;
	p->host_addr = c.host_addr;
	p->key = c.hotplug_key;
	p->plug_fd = p->unplug_fd = -1;
	for (uint32_t i = 0; i < PORT_MAX_HOTPLUG_DEVICES; i++)
		p->devs[i].key = VDEV_HOTPLUG_KEY_NONE;

	hc.header_type = 1;
	hc.vendor_id = c.vendor_id ? c.vendor_id : PORT_DEFAULT_VENDOR;
	hc.device_id = c.device_id ? c.device_id : PORT_DEFAULT_DEVICE;
	hc.class_code = PORT_CLASS;
	hc.interrupt_pin = p->msi.set_intx ? 1 : 0;
	r = vdev_pci_cfg_new(&hc, &p->cfg);
	if (r < 0)
		goto fail;
	r = program_bridge(p, &c, subordinate);
	if (r == 0)
		r = add_pcie_cap(p, &c);
	if (r == 0 && p->msi.signal)
		r = add_msi_cap(p);
	if (r < 0)
		goto fail;

	r = vdev_pci_root_add(c.root, c.addr, &port_bus_ops, p);
	if (r < 0)
		goto fail;
	r = vdi_pci_root_set_gate(c.root, c.addr, port_link_up, p);
	if (r < 0) {
		vdev_pci_root_remove(c.root, c.addr);
		goto fail;
	}
	*out = p;
	return 0;

fail:
	vdi_log(VDEV_LOG_DEBUG, "vdev_pcie_port_new: %04x refused (%d)", c.addr, r);
	port_destroy(p);
	return r;
inval:
	vdi_log(VDEV_LOG_DEBUG, "vdev_pcie_port_new: invalid argument");
	return -EINVAL;
}

VDEV_EXPORT void vdev_pcie_port_free(vdev_pcie_port *p)
{
	uint32_t slot_bus;
	int occupied;

	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	occupied = !!(exp_get16(p, PCI_EXP_SLTSTA) & PCI_EXP_SLTSTA_PDS);
	slot_bus = p->slot_bus;
	pthread_mutex_unlock(&p->lock);

	vdi_pci_root_set_gate(p->root, p->addr, NULL, NULL);
	/* What is behind the port is what was plugged into its slot, on the bus
	 * it was plugged on: the secondary bus number is the guest's to
	 * rewrite, and another bus is not this port's to empty. */
	if (occupied)
		remove_slot(p->root, slot_bus);
	vdev_pci_root_remove(p->root, p->addr);

	/* Done callbacks of removals a last config cycle queued may still be on
	 * their way (the root calls them after dropping its lock). */
	pthread_mutex_lock(&p->lock);
	while (p->removals > 0)
		pthread_cond_wait(&p->cond, &p->lock);
	pthread_mutex_unlock(&p->lock);
	port_destroy(p);
}

VDEV_EXPORT int vdev_pcie_port_slot_state(vdev_pcie_port *p, uint16_t *slot_status,
					  uint16_t *slot_control)
{
	if (!p)
		return -EINVAL;
	pthread_mutex_lock(&p->lock);
	if (slot_status)
		*slot_status = exp_get16(p, PCI_EXP_SLTSTA);
	if (slot_control)
		*slot_control = exp_get16(p, PCI_EXP_SLTCTL);
	pthread_mutex_unlock(&p->lock);
	return 0;
}

VDEV_EXPORT int vdev_pcie_port_surprise_remove(vdev_pcie_port *p)
{
	if (!p)
		return -EINVAL;
	pthread_mutex_lock(&p->lock);
	if (!(exp_get16(p, PCI_EXP_SLTSTA) & PCI_EXP_SLTSTA_PDS)) {
		pthread_mutex_unlock(&p->lock);
		return -ENOENT;
	}
	if (p->state == SLOT_REMOVING) {
		pthread_mutex_unlock(&p->lock);
		return -EBUSY;
	}
	begin_removal(p);
	eval_irq(p);
	pthread_mutex_unlock(&p->lock);
	remove_now(p);
	return 0;
}

/* ---- the hotplug bus interface ---- */

/*
 * The guest's pciehp has taken the slot (it wrote Slot Control): announce
 * plugs and ask before unplugs, even if its notifications are off now (poll
 * mode, or between pciehp's probe steps); it powers the slot itself. Before
 * that, as at boot before the bus scan, a plug is a cold plug: the device is
 * there when the guest first looks, as firmware leaves a populated slot.
 */
static int notify_ready(const vdev_pcie_port *p)
{
	return p->driven;
}

/* An eventfd for a command: ours in *mine, the caller's dup in *theirs. */
static int new_completion(int *mine, int *theirs)
{
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), dup_fd;

	if (fd < 0)
		return -errno;
	dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (dup_fd < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	*mine = fd;
	*theirs = dup_fd;
	return 0;
}

static int hp_plug(void *opaque, uint32_t addr, int *event_fd)
{
	vdev_pcie_port *p = opaque;
	int mine, theirs, r;
	uint32_t sec;

	if (!p || !event_fd || addr > 0xffffu || VDEV_PCI_ADDR_DEV(addr) != 0)
		return -EINVAL;
	pthread_mutex_lock(&p->lock);
	sec = secondary_bus(p);
	/* A secondary bus at or below the port's own is a misprogrammed bridge:
	 * nothing can be behind it. */
	if (VDEV_PCI_ADDR_BUS(addr) != sec || sec <= VDEV_PCI_ADDR_BUS(p->addr))
		r = -EINVAL;
	else if (p->state != SLOT_IDLE || (exp_get16(p, PCI_EXP_SLTSTA) & PCI_EXP_SLTSTA_PDS))
		r = -EBUSY;
	else
		r = 0;
	pthread_mutex_unlock(&p->lock);
	if (r < 0)
		return r;
	if (!vdev_pci_root_find(p->root, addr))
		return -ENOENT;
	r = new_completion(&mine, &theirs);
	if (r < 0)
		return r;

	pthread_mutex_lock(&p->lock);
	/* Another command may have got in while the lock was dropped. */
	if (p->state != SLOT_IDLE || (exp_get16(p, PCI_EXP_SLTSTA) & PCI_EXP_SLTSTA_PDS) ||
	    secondary_bus(p) != sec) {
		pthread_mutex_unlock(&p->lock);
		close(mine);
		close(theirs);
		return -EBUSY;
	}
	p->slot_bus = sec;
	p->plug_fd = mine;
	if (notify_ready(p)) {
		p->state = SLOT_PLUGGING;
		set_status(p, PCI_EXP_SLTSTA_PDS | PCI_EXP_SLTSTA_PDC | PCI_EXP_SLTSTA_ABP, 0);
		link_update(p, 1); /* completes at once if the slot is powered */
	} else {
		uint16_t ctl = exp_get16(p, PCI_EXP_SLTCTL);

		ctl &= (uint16_t)~(PCI_EXP_SLTCTL_PCC | PCI_EXP_SLTCTL_PIC);
		exp_set16(p, PCI_EXP_SLTCTL,
			  ctl | PCI_EXP_SLTCTL_PWR_ON | PCI_EXP_SLTCTL_PWR_IND_ON);
		p->state = SLOT_PLUGGING;
		set_status(p, PCI_EXP_SLTSTA_PDS, 0);
		link_update(p, 0);
	}
	eval_irq(p);
	pthread_mutex_unlock(&p->lock);
	*event_fd = theirs;
	return 0;
}

static int hp_unplug(void *opaque, uint32_t addr, int *event_fd)
{
	vdev_pcie_port *p = opaque;
	int mine, theirs, r, press;

	if (!p || !event_fd || addr > 0xffffu)
		return -EINVAL;
	pthread_mutex_lock(&p->lock);
	if (!(exp_get16(p, PCI_EXP_SLTSTA) & PCI_EXP_SLTSTA_PDS))
		r = -ENOENT;
	else if (VDEV_PCI_ADDR_BUS(addr) != p->slot_bus || VDEV_PCI_ADDR_DEV(addr) != 0)
		r = -EINVAL;
	else if (p->state != SLOT_IDLE)
		r = -EBUSY; /* a second press would cancel the first: never sent */
	else
		r = new_completion(&mine, &theirs);
	if (r < 0) {
		pthread_mutex_unlock(&p->lock);
		return r;
	}
	p->unplug_fd = mine;
	press = notify_ready(p) && !(exp_get16(p, PCI_EXP_SLTCTL) & PCI_EXP_SLTCTL_PCC);
	if (press) {
		p->state = SLOT_UNPLUGGING;
		set_status(p, PCI_EXP_SLTSTA_ABP, 0);
	} else {
		begin_removal(p);
	}
	eval_irq(p);
	pthread_mutex_unlock(&p->lock);
	if (!press)
		remove_now(p);
	*event_fd = theirs;
	return 0;
}

/*
 * A device at @host_addr belongs behind this port when it is the host port
 * the port stands for (config host_addr; 0 and VDEV_PCI_ADDR_NONE mean none)
 * or its bus lies in the port's secondary..subordinate range as programmed.
 */
static int hp_is_match(void *opaque, uint32_t host_addr)
{
	vdev_pcie_port *p = opaque;
	uint32_t bus, sec, sub;

	if (!p || host_addr > 0xffffu)
		return -EINVAL;
	bus = VDEV_PCI_ADDR_BUS(host_addr);
	pthread_mutex_lock(&p->lock);
	sec = secondary_bus(p);
	sub = cfg_get(p, PCI_SUBORDINATE_BUS, 1);
	pthread_mutex_unlock(&p->lock);
	if ((p->host_addr != 0 && p->host_addr == host_addr) || (bus >= sec && bus <= sub))
		return (int)sec;
	return -ENOENT;
}

static int hp_get_address(void *opaque, uint32_t *addr)
{
	vdev_pcie_port *p = opaque;

	if (!p || !addr)
		return -EINVAL;
	*addr = p->addr;
	return 0;
}

static int hp_get_secondary_bus(void *opaque)
{
	vdev_pcie_port *p = opaque;

	if (!p)
		return -EINVAL;
	return port_is_bridge(p);
}

static int hp_add_device(void *opaque, uint64_t key, uint32_t addr)
{
	vdev_pcie_port *p = opaque;
	struct hotplug_dev *slot = NULL;
	int r = 0;

	if (!p || key == VDEV_HOTPLUG_KEY_NONE || addr > 0xffffu)
		return -EINVAL;
	pthread_mutex_lock(&p->lock);
	for (uint32_t i = 0; i < PORT_MAX_HOTPLUG_DEVICES; i++) {
		struct hotplug_dev *d = &p->devs[i];

		if (d->key == key) {
			slot = d;
			break;
		}
		if (!slot && d->key == VDEV_HOTPLUG_KEY_NONE)
			slot = d;
	}
	if (slot) {
		slot->key = key;
		slot->addr = addr;
	} else {
		r = -ENOSPC;
	}
	pthread_mutex_unlock(&p->lock);
	return r;
}

static int hp_get_device(void *opaque, uint64_t key, uint32_t *addr)
{
	vdev_pcie_port *p = opaque;
	int r = -ENOENT;

	if (!p || !addr || key == VDEV_HOTPLUG_KEY_NONE)
		return -EINVAL;
	pthread_mutex_lock(&p->lock);
	for (uint32_t i = 0; i < PORT_MAX_HOTPLUG_DEVICES; i++) {
		if (p->devs[i].key == key) {
			*addr = p->devs[i].addr;
			r = 0;
			break;
		}
	}
	pthread_mutex_unlock(&p->lock);
	return r;
}

/* Empty: presence clear (no plug, unplug or removal is under way then). */
static int hp_is_empty(void *opaque)
{
	vdev_pcie_port *p = opaque;
	int empty;

	if (!p)
		return -EINVAL;
	pthread_mutex_lock(&p->lock);
	empty = !(exp_get16(p, PCI_EXP_SLTSTA) & PCI_EXP_SLTSTA_PDS);
	pthread_mutex_unlock(&p->lock);
	return empty;
}

static uint64_t hp_get_key(void *opaque)
{
	vdev_pcie_port *p = opaque;

	return p ? p->key : VDEV_HOTPLUG_KEY_NONE;
}

static const struct vdev_hotplug_bus_ops port_hotplug_ops = {
	.struct_size = sizeof(struct vdev_hotplug_bus_ops),
	.hot_plug = hp_plug,
	.hot_unplug = hp_unplug,
	.is_match = hp_is_match,
	.get_address = hp_get_address,
	.get_secondary_bus = hp_get_secondary_bus,
	.add_hotplug_device = hp_add_device,
	.get_hotplug_device = hp_get_device,
	.is_empty = hp_is_empty,
	.get_hotplug_key = hp_get_key,
};

VDEV_EXPORT const struct vdev_hotplug_bus_ops *vdev_pcie_port_hotplug_ops(void)
{
	return &port_hotplug_ops;
}
