/* SPDX-License-Identifier: MIT */
/*
 * Tests for the PCIe root port with native hotplug (pcie.h).
 *
 * The guest side is a small model of Linux's pciehp (drivers/pci/hotplug/
 * pciehp_hpc.c and pciehp_ctrl.c): portdrv's MSI setup, pcie_init,
 * pcie_enable_notification, the hard ISR (read Slot Status, write the event
 * bits back, re-read in MSI mode, Command Completed handled at once, the
 * rest queued) and the IRQ thread with its slot state machine (button press
 * with the 5-second work made an explicit step, presence or link change,
 * enable/disable slot with power control, indicators and the link check).
 * It reaches config space through the root's ECAM window on the MMIO bus and
 * takes interrupts from a recording vdev_pci_msi_ops, as a guest would.
 *
 * Covered: the port's config space (header, bus numbers, windows, PCIe and
 * MSI capabilities, masks); plug and unplug of a plain function and of
 * virtio-blk over virtio-pci used through the driver side; cold plug before
 * pciehp is up; surprise removal; MSI masking with pending bits; INTx; the
 * hotplug bus ops and their errors; hostile guest writes; port free with a
 * device behind it; a concurrency smoke test.
 */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/pci_regs.h>
#include <linux/virtio_blk.h>

#include "virtio-dev/virtio-dev.h"
#include "virtio-dev/blk.h"
#include "virtio-dev/pci.h"
#include "virtio-dev/pcie.h"
#include "virtio-dev/virtio-pci.h"

#define ECAM_BASE 0xb0000000ull
#define NUM_BUSES 4u
#define MMIO32_BASE 0xc0000000ull
#define MMIO32_SIZE 0x10000000ull
#define PORT_ADDR VDEV_PCI_ADDR(0, 2, 0)
#define SEC 1u
#define SLOT VDEV_PCI_ADDR(SEC, 0, 0)
#define SLOT_NUMBER 5u
#define WIN_BASE 0xc0000000ull
#define WIN_SIZE (16ull << 20)
#define IO_BASE 0x1000u
#define IO_SIZE 0x1000u
#define MSI_ADDR 0xfee01000ull
#define MSI_DATA 0x4041u
#define EP_BAR_SIZE 0x1000u
#define ALL_ONES 0xffffffffu

#define SLTSTA_EVENTS                                                                     \
	(PCI_EXP_SLTSTA_ABP | PCI_EXP_SLTSTA_PFD | PCI_EXP_SLTSTA_MRLSC |                 \
	 PCI_EXP_SLTSTA_PDC | PCI_EXP_SLTSTA_CC | PCI_EXP_SLTSTA_DLLSC)
#define SLTCTL_WRITABLE                                                                   \
	(PCI_EXP_SLTCTL_ABPE | PCI_EXP_SLTCTL_PFDE | PCI_EXP_SLTCTL_MRLSCE |              \
	 PCI_EXP_SLTCTL_PDCE | PCI_EXP_SLTCTL_CCIE | PCI_EXP_SLTCTL_HPIE |                \
	 PCI_EXP_SLTCTL_AIC | PCI_EXP_SLTCTL_PIC | PCI_EXP_SLTCTL_PCC |                   \
	 PCI_EXP_SLTCTL_DLLSCE)
#define NOTIFY_MASK                                                                       \
	(PCI_EXP_SLTCTL_PDCE | PCI_EXP_SLTCTL_ABPE | PCI_EXP_SLTCTL_PFDE |                \
	 PCI_EXP_SLTCTL_HPIE | PCI_EXP_SLTCTL_CCIE | PCI_EXP_SLTCTL_DLLSCE)

/* ---- interrupts as the VMM sees them ---- */

struct irqrec {
	unsigned msgs; /* atomic */
	unsigned bad;  /* messages not matching what was programmed */
	uint64_t addr;
	uint32_t data;
	unsigned updates;
	uint32_t upd_masked;
	uint64_t upd_addr;
	int intx; /* atomic */
};

static int rec_signal(void *opaque, uint32_t vector, uint64_t address, uint32_t data)
{
	struct irqrec *r = opaque;

	if (vector != 0 || address != r->addr || data != r->data)
		__atomic_add_fetch(&r->bad, 1, __ATOMIC_SEQ_CST);
	__atomic_add_fetch(&r->msgs, 1, __ATOMIC_SEQ_CST);
	return 0;
}

static void rec_update(void *opaque, uint32_t vector, uint64_t address, uint32_t data,
		       uint32_t masked)
{
	struct irqrec *r = opaque;

	(void)vector;
	(void)data;
	r->updates++;
	r->upd_masked = masked;
	r->upd_addr = address;
}

static int rec_set_intx(void *opaque, uint32_t level)
{
	struct irqrec *r = opaque;

	if ((int)level == __atomic_load_n(&r->intx, __ATOMIC_SEQ_CST))
		r->bad++; /* no change reported as one */
	__atomic_store_n(&r->intx, (int)level, __ATOMIC_SEQ_CST);
	return 0;
}

static const struct vdev_pci_msi_ops rec_ops = {
	.struct_size = sizeof(struct vdev_pci_msi_ops),
	.signal = rec_signal,
	.update = rec_update,
	.set_intx = rec_set_intx,
};

/* Ops with no MSI: the port offers no MSI capability and uses INTx. */
static const struct vdev_pci_msi_ops intx_only_ops = {
	.struct_size = sizeof(struct vdev_pci_msi_ops),
	.set_intx = rec_set_intx,
};

/* Ops with MSI and no INTx: no interrupt pin. */
static const struct vdev_pci_msi_ops msi_only_ops = {
	.struct_size = sizeof(struct vdev_pci_msi_ops),
	.signal = rec_signal,
};

static unsigned msgs(const struct irqrec *r)
{
	return __atomic_load_n(&r->msgs, __ATOMIC_SEQ_CST);
}

/* ---- the guest: config access through ECAM ---- */

static uint64_t ecam_off(uint32_t addr, uint32_t off)
{
	return ((uint64_t)VDEV_PCI_ADDR_BUS(addr) << 20) |
	       ((uint64_t)VDEV_PCI_ADDR_DEV(addr) << 15) |
	       ((uint64_t)VDEV_PCI_ADDR_FN(addr) << 12) | off;
}

/* pciehp's controller states (pciehp.h). */
enum { OFF_STATE, ON_STATE, BLINKINGON_STATE, BLINKINGOFF_STATE, POWERON_STATE, POWEROFF_STATE };
#define DISABLE_SLOT 0x10000u /* a software request, as pciehp's */

struct guest {
	vdev_bus *mmio;
	struct irqrec *rec;
	uint32_t port;
	uint32_t exp, msi;
	int use_msi;
	int use_pdce; /* enable presence detect too (pciehp enables only the button) */
	/* pciehp's struct controller */
	int state;
	int cmd_busy;
	uint16_t slot_ctrl;
	uint32_t pending;
	int button_work;
	unsigned handled;
	/* what the model noticed */
	int timeouts;     /* a command whose completion never came */
	int stuck;        /* an interrupt the ISR found no event for */
	int no_link;      /* board_added found no link or no device */
	uint32_t before_power; /* the vendor dword read just before powering the slot */
	int enabled, disabled; /* slot enable / disable passes that succeeded */
	unsigned events_seen;  /* every event bit the ISR saw, ORed */
	void (*configure)(struct guest *g, void *ctx);
	void (*unconfigure)(struct guest *g, void *ctx);
	void *ctx;
	int configured;
};

static uint32_t g_rd(struct guest *g, uint32_t addr, uint32_t off, uint32_t size)
{
	uint32_t v = 0;

	vdev_bus_read(g->mmio, ECAM_BASE + ecam_off(addr, off), size, 0, &v);
	return v;
}

static void g_wr(struct guest *g, uint32_t addr, uint32_t off, uint32_t size, uint32_t v)
{
	vdev_bus_write(g->mmio, ECAM_BASE + ecam_off(addr, off), size, 0, &v);
}

static uint16_t x_rd16(struct guest *g, uint32_t reg)
{
	return (uint16_t)g_rd(g, g->port, g->exp + reg, 2);
}

static void x_wr16(struct guest *g, uint32_t reg, uint16_t v)
{
	g_wr(g, g->port, g->exp + reg, 2, v);
}

static int g_find_cap(struct guest *g, uint32_t addr, uint8_t id)
{
	uint32_t pos = g_rd(g, addr, PCI_CAPABILITY_LIST, 1) & ~3u;

	for (int n = 0; n < 48 && pos >= 0x40; n++) {
		if (g_rd(g, addr, pos, 1) == id)
			return (int)pos;
		pos = g_rd(g, addr, pos + 1, 1) & ~3u;
	}
	return -1;
}

static int g_irq_pending(struct guest *g)
{
	if (g->use_msi)
		return msgs(g->rec) != g->handled;
	return __atomic_load_n(&g->rec->intx, __ATOMIC_SEQ_CST);
}

/* pciehp_isr: collect and acknowledge events; Command Completed at once. */
static void g_isr(struct guest *g)
{
	uint32_t events = 0;
	uint16_t status;

	if (g->use_msi)
		g->handled = msgs(g->rec);
	if (!(g->slot_ctrl & PCI_EXP_SLTCTL_HPIE))
		return;
	for (;;) {
		status = x_rd16(g, PCI_EXP_SLTSTA);
		ck_assert_uint_ne(status, 0xffff);
		status &= PCI_EXP_SLTSTA_ABP | PCI_EXP_SLTSTA_PFD | PCI_EXP_SLTSTA_PDC |
			  PCI_EXP_SLTSTA_CC | PCI_EXP_SLTSTA_DLLSC;
		events |= status;
		if (!events) {
			g->stuck++;
			return;
		}
		if (!status)
			break;
		x_wr16(g, PCI_EXP_SLTSTA, status);
		if (!g->use_msi)
			break;
	}
	g->events_seen |= events;
	if (events & PCI_EXP_SLTSTA_CC) {
		g->cmd_busy = 0;
		events &= ~(uint32_t)PCI_EXP_SLTSTA_CC;
	}
	g->pending |= events;
}

/* pcie_wait_cmd: the interrupt (or, without one, polling) ends a command. */
static void g_wait_cmd(struct guest *g)
{
	if (!g->cmd_busy)
		return;
	if ((g->slot_ctrl & PCI_EXP_SLTCTL_HPIE) && (g->slot_ctrl & PCI_EXP_SLTCTL_CCIE)) {
		if (g_irq_pending(g))
			g_isr(g);
	} else if (x_rd16(g, PCI_EXP_SLTSTA) & PCI_EXP_SLTSTA_CC) {
		x_wr16(g, PCI_EXP_SLTSTA, PCI_EXP_SLTSTA_CC);
		g->cmd_busy = 0;
	}
	if (g->cmd_busy) {
		g->timeouts++;
		g->cmd_busy = 0;
	}
}

/* pcie_do_write_cmd */
static void g_write_cmd(struct guest *g, uint16_t cmd, uint16_t mask, int wait)
{
	uint16_t ctl;

	g_wait_cmd(g);
	ctl = x_rd16(g, PCI_EXP_SLTCTL);
	ctl = (uint16_t)((ctl & ~mask) | (cmd & mask));
	g->cmd_busy = 1;
	g->slot_ctrl = ctl;
	x_wr16(g, PCI_EXP_SLTCTL, ctl);
	if (wait)
		g_wait_cmd(g);
}

static void g_set_indicators(struct guest *g, int pwr, int attn)
{
	uint16_t cmd = 0, mask = 0;

	if (pwr >= 0) {
		cmd |= (uint16_t)pwr;
		mask |= PCI_EXP_SLTCTL_PIC;
	}
	if (attn >= 0) {
		cmd |= (uint16_t)attn;
		mask |= PCI_EXP_SLTCTL_AIC;
	}
	g_write_cmd(g, cmd, mask, 0);
}

static int g_link_active(struct guest *g)
{
	return !!(x_rd16(g, PCI_EXP_LNKSTA) & PCI_EXP_LNKSTA_DLLLA);
}

static int g_present(struct guest *g)
{
	return !!(x_rd16(g, PCI_EXP_SLTSTA) & PCI_EXP_SLTSTA_PDS);
}

static int g_power_on(struct guest *g)
{
	return !(x_rd16(g, PCI_EXP_SLTCTL) & PCI_EXP_SLTCTL_PCC);
}

static uint32_t g_slot_bus(struct guest *g)
{
	return g_rd(g, g->port, PCI_SECONDARY_BUS, 1);
}

/* pciehp_check_link_status */
static int g_check_link(struct guest *g)
{
	uint16_t lnk;
	int found;

	for (int i = 0; i < 100 && !g_link_active(g); i++)
		;
	if (!g_link_active(g))
		return -1;
	found = (g_rd(g, VDEV_PCI_ADDR(g_slot_bus(g), 0, 0), PCI_VENDOR_ID, 4) & 0xffff) !=
		0xffff;
	if (found)
		g->pending &= ~(uint32_t)(PCI_EXP_SLTSTA_DLLSC | PCI_EXP_SLTSTA_PDC);
	lnk = x_rd16(g, PCI_EXP_LNKSTA);
	if ((lnk & PCI_EXP_LNKSTA_LT) || !(lnk & PCI_EXP_LNKSTA_NLW))
		return -1;
	return found ? 0 : -1;
}

/* board_added */
static int g_board_added(struct guest *g)
{
	uint16_t lnkctl;

	g->before_power = g_rd(g, VDEV_PCI_ADDR(g_slot_bus(g), 0, 0), PCI_VENDOR_ID, 4);
	if (x_rd16(g, PCI_EXP_SLTSTA) & PCI_EXP_SLTSTA_PFD)
		x_wr16(g, PCI_EXP_SLTSTA, PCI_EXP_SLTSTA_PFD);
	g_write_cmd(g, PCI_EXP_SLTCTL_PWR_ON, PCI_EXP_SLTCTL_PCC, 1);
	lnkctl = x_rd16(g, PCI_EXP_LNKCTL);
	x_wr16(g, PCI_EXP_LNKCTL, lnkctl & (uint16_t)~PCI_EXP_LNKCTL_LD);
	g_set_indicators(g, PCI_EXP_SLTCTL_PWR_IND_BLINK, -1);
	if (g_check_link(g) < 0) {
		g->no_link++;
		g_write_cmd(g, PCI_EXP_SLTCTL_PWR_OFF, PCI_EXP_SLTCTL_PCC, 1);
		g_set_indicators(g, PCI_EXP_SLTCTL_PWR_IND_OFF, PCI_EXP_SLTCTL_ATTN_IND_ON);
		return -1;
	}
	if (g->configure)
		g->configure(g, g->ctx);
	g->configured = 1;
	g_set_indicators(g, PCI_EXP_SLTCTL_PWR_IND_ON, PCI_EXP_SLTCTL_ATTN_IND_OFF);
	return 0;
}

static void g_enable_slot(struct guest *g)
{
	int r = 0;

	if (!g_power_on(g))
		r = g_board_added(g);
	if (r)
		g_set_indicators(g, PCI_EXP_SLTCTL_PWR_IND_OFF, -1);
	else
		g->enabled++;
	g->state = r ? OFF_STATE : ON_STATE;
}

/* pciehp_disable_slot (remove_board) */
static void g_disable_slot(struct guest *g)
{
	if (g_power_on(g)) {
		if (g->configured && g->unconfigure)
			g->unconfigure(g, g->ctx);
		g->configured = 0;
		g_write_cmd(g, PCI_EXP_SLTCTL_PWR_OFF, PCI_EXP_SLTCTL_PCC, 1);
		g->pending &= ~(uint32_t)(PCI_EXP_SLTSTA_DLLSC | PCI_EXP_SLTSTA_PDC);
		g_set_indicators(g, PCI_EXP_SLTCTL_PWR_IND_OFF, -1);
		g->disabled++;
	}
	g->state = OFF_STATE;
}

static void g_button_press(struct guest *g)
{
	switch (g->state) {
	case OFF_STATE:
	case ON_STATE:
		g->state = g->state == ON_STATE ? BLINKINGOFF_STATE : BLINKINGON_STATE;
		g_set_indicators(g, PCI_EXP_SLTCTL_PWR_IND_BLINK, PCI_EXP_SLTCTL_ATTN_IND_OFF);
		g->button_work = 1;
		break;
	case BLINKINGOFF_STATE:
	case BLINKINGON_STATE:
		g->button_work = 0;
		if (g->state == BLINKINGOFF_STATE) {
			g->state = ON_STATE;
			g_set_indicators(g, PCI_EXP_SLTCTL_PWR_IND_ON, PCI_EXP_SLTCTL_ATTN_IND_OFF);
		} else {
			g->state = OFF_STATE;
			g_set_indicators(g, PCI_EXP_SLTCTL_PWR_IND_OFF,
					 PCI_EXP_SLTCTL_ATTN_IND_OFF);
		}
		break;
	default:
		break;
	}
}

/* pciehp_handle_presence_or_link_change */
static void g_presence_or_link_change(struct guest *g)
{
	int present, link;

	if (g->state == BLINKINGOFF_STATE || g->state == ON_STATE) {
		g->button_work = 0;
		g->state = POWEROFF_STATE;
		g_disable_slot(g); /* surprise removal */
	}
	present = g_present(g);
	link = g_link_active(g);
	if (!present && !link) {
		if (g->state == BLINKINGON_STATE) {
			g->state = OFF_STATE;
			g->button_work = 0;
			g_set_indicators(g, PCI_EXP_SLTCTL_PWR_IND_OFF, -1);
		}
		return;
	}
	if (g->state == BLINKINGON_STATE || g->state == OFF_STATE) {
		g->button_work = 0;
		g->state = POWERON_STATE;
		g_enable_slot(g);
	}
}

/* pciehp_ist */
static void g_ist(struct guest *g)
{
	uint32_t events = g->pending;

	g->pending = 0;
	if (events & PCI_EXP_SLTSTA_ABP)
		g_button_press(g);
	if (events & DISABLE_SLOT) {
		g->button_work = 0;
		g->state = POWEROFF_STATE;
		g_disable_slot(g);
	} else if (events & (PCI_EXP_SLTSTA_PDC | PCI_EXP_SLTSTA_DLLSC)) {
		g_presence_or_link_change(g);
	}
}

/* Run the ISR and the IRQ thread until the port is quiet. */
static void g_service(struct guest *g)
{
	for (int n = 0;; n++) {
		int progress = 0;

		ck_assert_int_lt(n, 100);
		if (g_irq_pending(g)) {
			uint32_t before = g->pending;

			g_isr(g);
			progress = 1;
			if (!g->use_msi && g->pending == before && g_irq_pending(g)) {
				g->stuck++;
				return;
			}
		}
		if (g->pending) {
			g_ist(g);
			progress = 1;
		}
		if (!progress)
			return;
	}
}

/* The 5 seconds after a button press have passed (pciehp_queue_pushbutton_work). */
static void g_button_timeout(struct guest *g)
{
	if (!g->button_work)
		return;
	g->button_work = 0;
	if (g->state == BLINKINGOFF_STATE)
		g->pending |= DISABLE_SLOT;
	else if (g->state == BLINKINGON_STATE)
		g->pending |= PCI_EXP_SLTSTA_PDC;
	g_service(g);
}

/* portdrv (MSI or INTx, bus mastering), then pcie_init and pciehp_probe. */
static void g_init(struct guest *g)
{
	uint16_t cmd;
	uint32_t slot_cap, occupied;

	g->exp = (uint32_t)g_find_cap(g, g->port, PCI_CAP_ID_EXP);
	ck_assert_int_gt((int)g->exp, 0);
	cmd = (uint16_t)g_rd(g, g->port, PCI_COMMAND, 2);
	g_wr(g, g->port, PCI_COMMAND, 2, cmd | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	if (g->use_msi) {
		int msi = g_find_cap(g, g->port, PCI_CAP_ID_MSI);

		ck_assert_int_gt(msi, 0);
		g->msi = (uint32_t)msi;
		g_wr(g, g->port, g->msi + PCI_MSI_ADDRESS_LO, 4, (uint32_t)MSI_ADDR);
		g_wr(g, g->port, g->msi + PCI_MSI_ADDRESS_HI, 4, (uint32_t)(MSI_ADDR >> 32));
		g_wr(g, g->port, g->msi + PCI_MSI_DATA_64, 2, MSI_DATA);
		g_wr(g, g->port, g->msi + PCI_MSI_MASK_64, 4, 1);
		g_wr(g, g->port, g->msi + PCI_MSI_FLAGS, 2, PCI_MSI_FLAGS_ENABLE);
		g_wr(g, g->port, g->msi + PCI_MSI_MASK_64, 4, 0);
	}
	g->handled = msgs(g->rec);
	/* portdrv: hotplug interrupts off until pciehp is ready. */
	x_wr16(g, PCI_EXP_SLTCTL,
	       x_rd16(g, PCI_EXP_SLTCTL) & (uint16_t)~(PCI_EXP_SLTCTL_CCIE | PCI_EXP_SLTCTL_HPIE));
	g->slot_ctrl = x_rd16(g, PCI_EXP_SLTCTL);

	/* pcie_init */
	slot_cap = g_rd(g, g->port, g->exp + PCI_EXP_SLTCAP, 4);
	ck_assert(slot_cap & PCI_EXP_SLTCAP_HPC);
	ck_assert(!(slot_cap & PCI_EXP_SLTCAP_NCCS));
	g->state = (g_rd(g, VDEV_PCI_ADDR(g_slot_bus(g), 0, 0), 0, 4) & 0xffff) != 0xffff ?
			   ON_STATE :
			   OFF_STATE;
	x_wr16(g, PCI_EXP_SLTSTA, SLTSTA_EVENTS);
	if (g_power_on(g) && !g_present(g) && !g_link_active(g)) {
		g_write_cmd(g, 0, NOTIFY_MASK | PCI_EXP_SLTCTL_MRLSCE, 1);
		g_write_cmd(g, PCI_EXP_SLTCTL_PWR_OFF, PCI_EXP_SLTCTL_PCC, 1);
	}
	/* pcie_enable_notification */
	g_write_cmd(g,
		    PCI_EXP_SLTCTL_DLLSCE | PCI_EXP_SLTCTL_HPIE | PCI_EXP_SLTCTL_CCIE |
			    PCI_EXP_SLTCTL_ABPE | (g->use_pdce ? PCI_EXP_SLTCTL_PDCE : 0),
		    NOTIFY_MASK, 0);
	/* pciehp_check_presence */
	occupied = g_present(g) || g_link_active(g);
	if ((occupied && (g->state == OFF_STATE || g->state == BLINKINGON_STATE)) ||
	    (!occupied && (g->state == ON_STATE || g->state == BLINKINGOFF_STATE)))
		g->pending |= PCI_EXP_SLTSTA_PDC;
	g_service(g);
	ck_assert_int_eq(g->timeouts, 0);
}

/* ---- the environment ---- */

struct env {
	vdev_bus *mmio;
	vdev_pci_root *root;
	vdev_pcie_port *port;
	const struct vdev_hotplug_bus_ops *hp;
	struct irqrec rec;
	struct guest g;
	vdev_pci_cfg *ep; /* a plain function for the slot */
	uint64_t ep_bar;  /* where the guest put its BAR */
	int ep_gone;      /* the function left the root (its destroy ran) */
	uint16_t ep_gone_sltsta; /* Slot Status at that moment */
};

static struct env *cur_env;

static struct vdev_pcie_port_config port_config(struct env *e)
{
	struct vdev_pcie_port_config pc = VDEV_PCIE_PORT_CONFIG_INIT;

	pc.addr = PORT_ADDR;
	pc.root = e->root;
	pc.secondary_bus = SEC;
	pc.slot_number = SLOT_NUMBER;
	pc.mem_base = WIN_BASE;
	pc.mem_size = WIN_SIZE;
	pc.io_base = IO_BASE;
	pc.io_size = IO_SIZE;
	pc.hotplug_key = 77;
	pc.host_addr = VDEV_PCI_ADDR(0, 0x1c, 0);
	pc.msi_ops = &rec_ops;
	pc.msi_opaque = &e->rec;
	return pc;
}

static struct env *env_new_ops(const struct vdev_pci_msi_ops *ops, uint32_t flags, int use_msi)
{
	struct vdev_pci_root_config rc = VDEV_PCI_ROOT_CONFIG_INIT;
	struct env *e = calloc(1, sizeof(*e));
	struct vdev_pcie_port_config pc;

	ck_assert_ptr_nonnull(e);
	ck_assert_int_eq(vdev_bus_new(VDEV_BUS_MMIO, &e->mmio), 0);
	rc.num_buses = NUM_BUSES;
	rc.mmio_bus = e->mmio;
	rc.mmio32_base = MMIO32_BASE;
	rc.mmio32_size = MMIO32_SIZE;
	ck_assert_int_eq(vdev_pci_root_new(&rc, &e->root), 0);
	ck_assert_int_eq(vdev_bus_insert(e->mmio, ECAM_BASE, NUM_BUSES * VDEV_PCI_ECAM_BUS_SIZE,
					 vdev_pci_root_ecam_ops(), e->root),
			 0);
	e->rec.addr = MSI_ADDR;
	e->rec.data = MSI_DATA;
	pc = port_config(e);
	pc.msi_ops = ops;
	pc.flags = flags;
	ck_assert_int_eq(vdev_pcie_port_new(&pc, &e->port), 0);
	e->hp = vdev_pcie_port_hotplug_ops();
	e->g.mmio = e->mmio;
	e->g.rec = &e->rec;
	e->g.port = PORT_ADDR;
	e->g.use_msi = use_msi;
	cur_env = e;
	return e;
}

static struct env *env_new(void)
{
	return env_new_ops(&rec_ops, 0, 1);
}

static void env_free(struct env *e)
{
	vdev_pcie_port_free(e->port);
	ck_assert_int_eq(vdev_bus_remove(e->mmio, ECAM_BASE), 0);
	vdev_pci_root_free(e->root);
	vdev_bus_free(e->mmio);
	vdev_pci_cfg_free(e->ep);
	free(e);
	cur_env = NULL;
}

/* The plain function leaves the root: note what the slot showed then. */
static void ep_destroy(void *opaque)
{
	struct env *e = cur_env;

	(void)opaque;
	if (!e || !e->port)
		return;
	e->ep_gone++;
	ck_assert_int_eq(vdev_pcie_port_slot_state(e->port, &e->ep_gone_sltsta, NULL), 0);
}

/* A new plain function with one 4 KiB memory BAR (a card fresh out of reset),
 * added to the root at @addr. The previous one must have left the root. */
static void ep_add(struct env *e, uint32_t addr)
{
	struct vdev_pci_cfg_config k = VDEV_PCI_CFG_CONFIG_INIT;
	struct vdev_bus_device_ops ops = *vdev_pci_cfg_bus_ops();

	ops.destroy = ep_destroy;
	ck_assert_ptr_null(vdev_pci_root_find(e->root, addr));
	vdev_pci_cfg_free(e->ep);
	k.vendor_id = 0x1234;
	k.device_id = 0x11e8;
	k.class_code = 0xff0000;
	ck_assert_int_eq(vdev_pci_cfg_new(&k, &e->ep), 0);
	ck_assert_int_eq(vdev_pci_cfg_add_bar(e->ep, 0, EP_BAR_SIZE, VDEV_PCI_BAR_MEM32), 0);
	ck_assert_int_eq(vdev_pci_root_add(e->root, addr, &ops, e->ep), 0);
}

/* The guest's driver for the plain function: place its BAR in the window. */
static void ep_configure(struct guest *g, void *ctx)
{
	struct env *e = ctx;
	uint32_t fn = VDEV_PCI_ADDR(g_slot_bus(g), 0, 0);
	uint8_t b;

	ck_assert_uint_eq(g_rd(g, fn, PCI_VENDOR_ID, 4), 0x11e81234u);
	e->ep_bar = WIN_BASE + 0x10000;
	g_wr(g, fn, PCI_BASE_ADDRESS_0, 4, (uint32_t)e->ep_bar);
	g_wr(g, fn, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	/* The BAR now reaches the function (whose BAR callbacks say -EIO). */
	ck_assert_int_eq(vdev_bus_read(e->mmio, e->ep_bar, 1, 0, &b), -EIO);
}

/* As pci_disable_device: bus mastering off, the BAR keeps decoding until the
 * function is gone. */
static void ep_unconfigure(struct guest *g, void *ctx)
{
	(void)ctx;
	g_wr(g, VDEV_PCI_ADDR(g_slot_bus(g), 0, 0), PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
}

static void use_ep(struct env *e)
{
	e->g.configure = ep_configure;
	e->g.unconfigure = ep_unconfigure;
	e->g.ctx = e;
}

static int fd_fired(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	uint64_t v = 0;

	if (poll(&p, 1, 0) != 1)
		return 0;
	ck_assert_int_eq(read(fd, &v, sizeof(v)), (int)sizeof(v));
	ck_assert_uint_eq(v, 1);
	return 1;
}

static uint16_t sltsta(struct env *e)
{
	uint16_t s = 0;

	ck_assert_int_eq(vdev_pcie_port_slot_state(e->port, &s, NULL), 0);
	return s;
}

static uint16_t sltctl(struct env *e)
{
	uint16_t c = 0;

	ck_assert_int_eq(vdev_pcie_port_slot_state(e->port, NULL, &c), 0);
	return c;
}

/* Plug the plain function and let the guest bring it up. */
static void plug_ep(struct env *e)
{
	int fd = -1;

	ep_add(e, SLOT);
	ck_assert(!g_irq_pending(&e->g));
	ck_assert_int_eq(e->hp->hot_plug(e->port, SLOT, &fd), 0);
	ck_assert_int_ge(fd, 0);
	ck_assert(g_irq_pending(&e->g));
	ck_assert(!fd_fired(fd));
	g_service(&e->g);
	ck_assert_int_eq(e->g.state, ON_STATE);
	ck_assert(fd_fired(fd));
	close(fd);
}

/* Unplug it by the attention button; the 5 s pass; the guest powers off. */
static void unplug_ep(struct env *e)
{
	int fd = -1;

	ck_assert_int_eq(e->hp->hot_unplug(e->port, SLOT, &fd), 0);
	g_service(&e->g);
	ck_assert_int_eq(e->g.state, BLINKINGOFF_STATE);
	ck_assert(!fd_fired(fd));
	ck_assert_ptr_nonnull(vdev_pci_root_find(e->root, SLOT));
	e->ep_gone = 0;
	g_button_timeout(&e->g);
	ck_assert_int_eq(e->g.state, OFF_STATE);
	ck_assert(fd_fired(fd));
	close(fd);
	ck_assert_ptr_null(vdev_pci_root_find(e->root, SLOT));
	/* The function left with the slot powered off and the link down,
	 * before presence cleared. */
	ck_assert_int_eq(e->ep_gone, 1);
	ck_assert(e->ep_gone_sltsta & PCI_EXP_SLTSTA_PDS);
	ck_assert(e->ep_gone_sltsta & PCI_EXP_SLTSTA_DLLSC);
}

/* ---- tests ---- */

START_TEST(test_config_space)
{
	struct env *e = env_new();
	struct guest *g = &e->g;
	uint32_t v;
	int exp, msi;

	ck_assert_uint_eq(g_rd(g, PORT_ADDR, PCI_VENDOR_ID, 4), 0x000c1b36u);
	ck_assert_uint_eq(g_rd(g, PORT_ADDR, PCI_CLASS_REVISION, 4) >> 8, 0x060400u);
	ck_assert_uint_eq(g_rd(g, PORT_ADDR, PCI_HEADER_TYPE, 1) & 0x7f, PCI_HEADER_TYPE_BRIDGE);
	ck_assert_uint_eq(g_rd(g, PORT_ADDR, PCI_PRIMARY_BUS, 4) & 0xffffff,
			  0u | SEC << 8 | SEC << 16);
	ck_assert_uint_eq(g_rd(g, PORT_ADDR, PCI_INTERRUPT_PIN, 1), 1);
	/* Windows as firmware would leave them. */
	ck_assert_uint_eq(g_rd(g, PORT_ADDR, PCI_MEMORY_BASE, 2), (WIN_BASE >> 16) & 0xfff0);
	ck_assert_uint_eq(g_rd(g, PORT_ADDR, PCI_MEMORY_LIMIT, 2),
			  ((WIN_BASE + WIN_SIZE - 1) >> 16) & 0xfff0);
	ck_assert_uint_eq(g_rd(g, PORT_ADDR, PCI_IO_BASE, 1) & 0xf0, (IO_BASE >> 8) & 0xf0);
	ck_assert_uint_eq(g_rd(g, PORT_ADDR, PCI_IO_LIMIT, 1) & 0xf0,
			  ((IO_BASE + IO_SIZE - 1) >> 8) & 0xf0);
	/* No prefetchable window: base above limit. */
	ck_assert_uint_gt(g_rd(g, PORT_ADDR, PCI_PREF_MEMORY_BASE, 2) & 0xfff0,
			  g_rd(g, PORT_ADDR, PCI_PREF_MEMORY_LIMIT, 2) & 0xfff0);

	exp = g_find_cap(g, PORT_ADDR, PCI_CAP_ID_EXP);
	msi = g_find_cap(g, PORT_ADDR, PCI_CAP_ID_MSI);
	ck_assert_int_gt(exp, 0);
	ck_assert_int_gt(msi, 0);
	v = g_rd(g, PORT_ADDR, exp + PCI_EXP_FLAGS, 2);
	ck_assert_uint_eq(v & PCI_EXP_FLAGS_VERS, 2);
	ck_assert_uint_eq((v & PCI_EXP_FLAGS_TYPE) >> 4, PCI_EXP_TYPE_ROOT_PORT);
	ck_assert(v & PCI_EXP_FLAGS_SLOT);
	ck_assert_uint_eq(v & PCI_EXP_FLAGS_IRQ, 0);
	v = g_rd(g, PORT_ADDR, exp + PCI_EXP_SLTCAP, 4);
	ck_assert_uint_eq(v & ~PCI_EXP_SLTCAP_PSN,
			  PCI_EXP_SLTCAP_ABP | PCI_EXP_SLTCAP_PCP | PCI_EXP_SLTCAP_AIP |
				  PCI_EXP_SLTCAP_PIP | PCI_EXP_SLTCAP_HPC);
	ck_assert_uint_eq(v >> 19, SLOT_NUMBER);
	v = g_rd(g, PORT_ADDR, exp + PCI_EXP_LNKCAP, 4);
	ck_assert(v & PCI_EXP_LNKCAP_DLLLARC);
	ck_assert_uint_eq(v & PCI_EXP_LNKCAP_SLS, PCI_EXP_LNKCAP_SLS_2_5GB);
	v = g_rd(g, PORT_ADDR, exp + PCI_EXP_LNKSTA, 2);
	ck_assert(!(v & PCI_EXP_LNKSTA_DLLLA));
	ck_assert_uint_eq(v & PCI_EXP_LNKSTA_NLW, PCI_EXP_LNKSTA_NLW_X1);
	/* An empty slot starts powered off, indicators off. */
	ck_assert_uint_eq(g_rd(g, PORT_ADDR, exp + PCI_EXP_SLTCTL, 2),
			  PCI_EXP_SLTCTL_PWR_OFF | PCI_EXP_SLTCTL_PWR_IND_OFF |
				  PCI_EXP_SLTCTL_ATTN_IND_OFF);
	ck_assert_uint_eq(g_rd(g, PORT_ADDR, exp + PCI_EXP_SLTSTA, 2), 0);
	v = g_rd(g, PORT_ADDR, msi + PCI_MSI_FLAGS, 2);
	ck_assert_uint_eq(v, PCI_MSI_FLAGS_64BIT | PCI_MSI_FLAGS_MASKBIT);
	/* The extended space ends at once. */
	ck_assert_uint_eq(g_rd(g, PORT_ADDR, 0x100, 4), 0);

	ck_assert_int_eq(e->hp->get_secondary_bus(e->port), SEC);
	/* Nothing behind the port yet. */
	ck_assert_uint_eq(g_rd(g, SLOT, 0, 4), ALL_ONES);
	env_free(e);
}
END_TEST

/* Linux's way: the button's interrupt enabled, not presence detect's
 * (@use_pdce: both). */
static void plug_unplug_cycle(int use_pdce)
{
	struct env *e = env_new();
	struct guest *g = &e->g;
	uint16_t s;
	int fd = -1;
	uint8_t b;

	g->use_pdce = use_pdce;
	use_ep(e);
	g_init(g);
	ck_assert_int_eq(g->state, OFF_STATE);
	ck_assert_uint_eq(sltctl(e) & NOTIFY_MASK,
			  PCI_EXP_SLTCTL_DLLSCE | PCI_EXP_SLTCTL_HPIE | PCI_EXP_SLTCTL_CCIE |
				  PCI_EXP_SLTCTL_ABPE | (use_pdce ? PCI_EXP_SLTCTL_PDCE : 0));

	/* Plug: presence with its change and the button, one MSI. */
	ep_add(e, SLOT);
	ck_assert_int_eq(e->hp->is_empty(e->port), 1);
	ck_assert_int_eq(e->hp->hot_plug(e->port, SLOT, &fd), 0);
	ck_assert_int_eq(e->hp->is_empty(e->port), 0);
	s = sltsta(e);
	ck_assert(s & PCI_EXP_SLTSTA_PDS);
	ck_assert(s & PCI_EXP_SLTSTA_PDC);
	ck_assert(s & PCI_EXP_SLTSTA_ABP);
	ck_assert_uint_eq(msgs(&e->rec), g->handled + 1);
	ck_assert_uint_eq(g_rd(g, SLOT, 0, 4), ALL_ONES); /* not powered yet */
	ck_assert(!fd_fired(fd));
	g_service(g);
	ck_assert_int_eq(g->state, ON_STATE);
	ck_assert_int_eq(g->enabled, 1);
	ck_assert_uint_eq(g->before_power, ALL_ONES);
	ck_assert(g->events_seen & PCI_EXP_SLTSTA_DLLSC);
	ck_assert(fd_fired(fd));
	close(fd);
	ck_assert(g_link_active(g));
	ck_assert_uint_eq(sltctl(e) &
				  (PCI_EXP_SLTCTL_PCC | PCI_EXP_SLTCTL_PIC | PCI_EXP_SLTCTL_AIC),
			  PCI_EXP_SLTCTL_PWR_ON | PCI_EXP_SLTCTL_PWR_IND_ON |
				  PCI_EXP_SLTCTL_ATTN_IND_OFF);
	ck_assert_uint_eq(g_rd(g, SLOT, 0, 4), 0x11e81234u);
	ck_assert_uint_eq(sltsta(e) & SLTSTA_EVENTS, 0);

	/* Unplug: the button, 5 s, power off, the function is gone. */
	ck_assert_int_eq(e->hp->hot_unplug(e->port, SLOT, &fd), 0);
	ck_assert(sltsta(e) & PCI_EXP_SLTSTA_ABP);
	g_service(g);
	ck_assert_int_eq(g->state, BLINKINGOFF_STATE);
	ck_assert_uint_eq(sltctl(e) & PCI_EXP_SLTCTL_PIC, PCI_EXP_SLTCTL_PWR_IND_BLINK);
	ck_assert(!fd_fired(fd));
	ck_assert_int_eq(vdev_bus_read(e->mmio, e->ep_bar, 1, 0, &b), -EIO);
	g_button_timeout(g);
	ck_assert_int_eq(g->state, OFF_STATE);
	ck_assert_int_eq(g->disabled, 1);
	ck_assert(fd_fired(fd));
	close(fd);
	ck_assert_ptr_null(vdev_pci_root_find(e->root, SLOT));
	ck_assert_int_eq(vdev_bus_read(e->mmio, e->ep_bar, 1, 0, &b), -ENOENT);
	ck_assert_uint_eq(g_rd(g, SLOT, 0, 4), ALL_ONES);
	ck_assert(!(sltsta(e) & PCI_EXP_SLTSTA_PDS));
	ck_assert(!g_link_active(g));
	ck_assert_int_eq(e->hp->is_empty(e->port), 1);

	/* And again: the slot is reusable. */
	plug_ep(e);
	ck_assert_uint_eq(g_rd(g, SLOT, 0, 4), 0x11e81234u);
	unplug_ep(e);
	ck_assert_int_eq(g->timeouts, 0);
	ck_assert_int_eq(g->stuck, 0);
	ck_assert_int_eq(g->no_link, 0);
	ck_assert_uint_eq(e->rec.bad, 0);
	env_free(e);
}

START_TEST(test_plug_unplug_button)
{
	plug_unplug_cycle(0);
}
END_TEST

START_TEST(test_plug_unplug_presence)
{
	plug_unplug_cycle(1);
}
END_TEST

/* ---- virtio-blk over virtio-pci behind the port, used by the driver side ---- */

#define GPA_BASE 0x100000ull
#define MEM_SIZE (4u << 20)
#define ARENA_SIZE (1u << 20)
#define DISK_SIZE (1u << 20)
#define HDR_GPA (GPA_BASE + (2u << 20))
#define STATUS_GPA (HDR_GPA + 0x100)
#define DATA_GPA (HDR_GPA + 0x1000)
#define MSIX_ADDR 0xfee02000ull
#define MSIX_DATA 0x60u

/* The virtio function's MSI-X: only queue 0's vector (1) may fire. */
static int vq_signal(void *opaque, uint32_t vector, uint64_t address, uint32_t data)
{
	struct irqrec *r = opaque;

	if (vector != 1 || address != MSIX_ADDR || data != MSIX_DATA + 1)
		__atomic_add_fetch(&r->bad, 1, __ATOMIC_SEQ_CST);
	__atomic_add_fetch(&r->msgs, 1, __ATOMIC_SEQ_CST);
	return 0;
}

static const struct vdev_pci_msi_ops vq_ops = {
	.struct_size = sizeof(struct vdev_pci_msi_ops),
	.signal = vq_signal,
};

struct blkenv {
	struct env *e;
	uint8_t *ram;
	vdev_mem *mem;
	vdev_blk_backend *be;
	vdev_blk *blk;
	vdev_virtio_pci *vp;
	struct irqrec vrec;
	void *dstore;
	vdev_drv_vpci *dp;
	vdev_drv *drv;
	vdev_drvq *q;
	uint64_t bar4;
	int ios;
};

static uint32_t io_cfg_read(void *ctx, uint32_t addr, uint32_t off, uint32_t width)
{
	struct blkenv *b = ctx;

	return g_rd(&b->e->g, addr, off, width);
}

static void io_cfg_write(void *ctx, uint32_t addr, uint32_t off, uint32_t width, uint32_t v)
{
	struct blkenv *b = ctx;

	g_wr(&b->e->g, addr, off, width, v);
}

static uint64_t io_mem_read(void *ctx, uint64_t gpa, uint32_t width)
{
	struct blkenv *b = ctx;
	uint64_t v = 0;

	vdev_bus_read(b->e->mmio, gpa, width, 0, &v);
	return v;
}

static void io_mem_write(void *ctx, uint64_t gpa, uint32_t width, uint64_t v)
{
	struct blkenv *b = ctx;

	vdev_bus_write(b->e->mmio, gpa, width, 0, &v);
}

static const struct vdev_drv_pci_io_ops pci_io = {
	.struct_size = sizeof(struct vdev_drv_pci_io_ops),
	.cfg_read = io_cfg_read,
	.cfg_write = io_cfg_write,
	.mem_read = io_mem_read,
	.mem_write = io_mem_write,
};

static int blk_pre_init(vdev_drv *drv, void *opaque)
{
	struct blkenv *b = opaque;

	return vdev_drv_queue_setup(drv, 0, 32, 0, &b->q);
}

static uint64_t blk_negotiate(vdev_drv *drv, void *opaque, uint64_t offered)
{
	(void)drv;
	(void)opaque;
	return offered;
}

static const struct vdev_driver_ops blk_drv_ops = {
	.struct_size = sizeof(struct vdev_driver_ops),
	.negotiate_features = blk_negotiate,
	.pre_device_initialization = blk_pre_init,
};

/* One request: header, optional data, status. Returns the status byte. */
static uint8_t blk_rq(struct blkenv *b, uint32_t type, uint64_t sector, uint32_t len)
{
	struct virtio_blk_outhdr h = { .type = type, .sector = sector };
	uint64_t addr[3] = { HDR_GPA, DATA_GPA, STATUS_GPA };
	uint32_t lens[3] = { sizeof(h), len, 1 };
	uint8_t *status = b->ram + (STATUS_GPA - GPA_BASE);
	unsigned before = msgs(&b->vrec);
	void *tok = NULL;
	uint32_t used = 0;
	int n = 0;

	memcpy(b->ram + (HDR_GPA - GPA_BASE), &h, sizeof(h));
	*status = 0xff;
	if (type == VIRTIO_BLK_T_OUT)
		ck_assert_int_eq(vdev_drvq_add(b->q, addr, lens, 2, 1, b, 0), 0);
	else
		ck_assert_int_eq(vdev_drvq_add(b->q, addr, lens, 1, 2, b, 0), 0);
	vdev_drvq_kick(b->q);
	for (;;) {
		int r = vdev_drvq_get_used(b->q, &tok, &used);

		ck_assert_int_ge(r, 0);
		if (r == 1)
			break;
		ck_assert_int_lt(++n, 20000);
		vdev_blk_process_completions(b->blk, 0);
		usleep(100);
	}
	ck_assert_ptr_eq(tok, b);
	/* The queue's MSI-X vector fired. */
	ck_assert_uint_gt(msgs(&b->vrec), before);
	b->ios++;
	return *status;
}

static void blk_configure(struct guest *g, void *ctx)
{
	struct blkenv *b = ctx;
	struct vdev_drv_pci_window win = { .base = WIN_BASE, .size = WIN_SIZE, .next = WIN_BASE };
	struct vdev_drv_config dc = VDEV_DRV_CONFIG_INIT;
	uint32_t fn = VDEV_PCI_ADDR(g_slot_bus(g), 0, 0);
	struct vdev_drv_pci_function found[8];
	uint8_t *data = b->ram + (DATA_GPA - GPA_BASE);
	int n;

	/* The guest finds the device behind the port. */
	n = vdev_drv_pci_enumerate(&pci_io, b, found, 8);
	ck_assert_int_eq(n, 2);
	ck_assert_uint_eq(found[0].addr, PORT_ADDR);
	ck_assert_uint_eq(found[0].secondary_bus, SEC);
	ck_assert_uint_eq(found[1].addr, fn);
	ck_assert_uint_eq(found[1].vendor_id, VDEV_VIRTIO_PCI_VENDOR_ID);
	ck_assert_uint_eq(found[1].device_id, VDEV_VIRTIO_PCI_DEVICE_ID_BASE + VIRTIO_ID_BLOCK);

	ck_assert_int_eq(vdev_drv_pci_assign_bars(&pci_io, b, fn, &win, NULL), 0);
	b->bar4 = vdev_drv_pci_bar_address(&pci_io, b, fn, VDEV_VIRTIO_PCI_BAR_MODERN);
	ck_assert_uint_ge(b->bar4, WIN_BASE);
	ck_assert_uint_le(b->bar4 + VDEV_VIRTIO_PCI_BAR4_SIZE, WIN_BASE + WIN_SIZE);
	b->dstore = calloc(1, vdev_drv_vpci_storage_size());
	ck_assert_ptr_nonnull(b->dstore);
	ck_assert_int_eq(vdev_drv_vpci_init(b->dstore, vdev_drv_vpci_storage_size(), &pci_io, b,
					    fn, &b->dp),
			 0);
	ck_assert_int_gt(vdev_drv_vpci_enable_msix(b->dp, MSIX_ADDR, MSIX_DATA), 0);
	dc.transport = vdev_drv_vpci_transport();
	dc.transport_opaque = b->dp;
	dc.driver = &blk_drv_ops;
	dc.driver_opaque = b;
	dc.arena = b->ram;
	dc.arena_gpa = GPA_BASE;
	dc.arena_size = ARENA_SIZE;
	ck_assert_int_eq(vdev_drv_new(&dc, &b->drv), 0);
	ck_assert_int_eq(vdev_drv_start(b->drv), 0);

	/* Write a pattern, read it back. */
	for (uint32_t i = 0; i < 4096; i++)
		data[i] = (uint8_t)(i * 13 + 7);
	ck_assert_uint_eq(blk_rq(b, VIRTIO_BLK_T_OUT, 8, 4096), VIRTIO_BLK_S_OK);
	ck_assert_int_eq(memcmp((uint8_t *)vdev_blk_backend_memory_data(b->be) + 8 * 512, data,
				4096),
			 0);
	memset(data, 0, 4096);
	ck_assert_uint_eq(blk_rq(b, VIRTIO_BLK_T_IN, 8, 4096), VIRTIO_BLK_S_OK);
	for (uint32_t i = 0; i < 4096; i++)
		ck_assert_uint_eq(data[i], (uint8_t)(i * 13 + 7));
}

static void blk_unconfigure(struct guest *g, void *ctx)
{
	struct blkenv *b = ctx;

	(void)g;
	vdev_drv_reset(b->drv);
	vdev_drv_free(b->drv);
	b->drv = NULL;
	free(b->dstore);
	b->dstore = NULL;
}

START_TEST(test_virtio_blk)
{
	struct vdev_virtio_pci_config vc = VDEV_VIRTIO_PCI_CONFIG_INIT;
	struct vdev_blk_config bc = VDEV_BLK_CONFIG_INIT;
	struct blkenv *b = calloc(1, sizeof(*b));
	struct env *e = env_new();
	uint8_t byte;
	int fd = -1;

	ck_assert_ptr_nonnull(b);
	b->e = e;
	b->ram = aligned_alloc(4096, MEM_SIZE);
	ck_assert_ptr_nonnull(b->ram);
	memset(b->ram, 0, MEM_SIZE);
	ck_assert_int_eq(vdev_mem_new(&b->mem), 0);
	ck_assert_int_eq(vdev_mem_add_region(b->mem, GPA_BASE, MEM_SIZE, b->ram, 0), 0);
	ck_assert_int_eq(vdev_blk_backend_new_memory(DISK_SIZE, 0, &b->be), 0);
	bc.queue_size = 64;
	ck_assert_int_eq(vdev_blk_new(&bc, b->be, &b->blk), 0);
	ck_assert_int_eq(vdev_device_set_memory(vdev_blk_device(b->blk), b->mem), 0);
	vc.msi_ops = &vq_ops;
	vc.msi_opaque = &b->vrec;
	ck_assert_int_eq(vdev_virtio_pci_new(&vc, vdev_blk_device(b->blk), &b->vp), 0);

	e->g.configure = blk_configure;
	e->g.unconfigure = blk_unconfigure;
	e->g.ctx = b;
	g_init(&e->g);

	ck_assert_int_eq(vdev_pci_root_add(e->root, SLOT, vdev_virtio_pci_bus_ops(), b->vp), 0);
	ck_assert_int_eq(e->hp->hot_plug(e->port, SLOT, &fd), 0);
	g_service(&e->g);
	ck_assert_int_eq(e->g.state, ON_STATE);
	ck_assert_int_eq(b->ios, 2);
	ck_assert(fd_fired(fd));
	close(fd);
	ck_assert_uint_eq(b->vrec.bad, 0);

	ck_assert_int_eq(e->hp->hot_unplug(e->port, SLOT, &fd), 0);
	g_service(&e->g);
	g_button_timeout(&e->g);
	ck_assert_int_eq(e->g.state, OFF_STATE);
	ck_assert(fd_fired(fd));
	close(fd);
	/* Gone from the root, the buses and config space. */
	ck_assert_ptr_null(vdev_pci_root_find(e->root, SLOT));
	ck_assert_int_eq(vdev_bus_read(e->mmio, b->bar4, 1, 0, &byte), -ENOENT);
	ck_assert_int_eq(vdev_bus_read(e->mmio, b->bar4 + VDEV_VIRTIO_PCI_NOTIFY_OFFSET, 1, 0,
				       &byte),
			 -ENOENT);
	ck_assert_uint_eq(g_rd(&e->g, SLOT, 0, 4), ALL_ONES);
	ck_assert_int_eq(e->g.timeouts, 0);
	ck_assert_uint_eq(e->rec.bad, 0);

	vdev_virtio_pci_free(b->vp);
	vdev_blk_free(b->blk);
	vdev_blk_backend_free(b->be);
	vdev_mem_free(b->mem);
	free(b->ram);
	free(b);
	env_free(e);
}
END_TEST

/* ---- other paths ---- */

START_TEST(test_surprise_removal)
{
	struct env *e = env_new_ops(&rec_ops, VDEV_PCIE_PORT_F_SURPRISE, 1);
	struct guest *g = &e->g;
	uint16_t s;
	int fd = -1;

	ck_assert(g_rd(g, PORT_ADDR, g_find_cap(g, PORT_ADDR, PCI_CAP_ID_EXP) + PCI_EXP_SLTCAP,
		       4) &
		  PCI_EXP_SLTCAP_HPS);
	use_ep(e);
	g_init(g);
	ck_assert_int_eq(vdev_pcie_port_surprise_remove(e->port), -ENOENT);
	plug_ep(e);

	/* The device dies while in use: presence and link change, one MSI;
	 * the link went down before the function left. */
	e->ep_gone = 0;
	ck_assert_int_eq(vdev_pcie_port_surprise_remove(e->port), 0);
	ck_assert_int_eq(e->ep_gone, 1);
	ck_assert(e->ep_gone_sltsta & PCI_EXP_SLTSTA_PDS);
	ck_assert(e->ep_gone_sltsta & PCI_EXP_SLTSTA_DLLSC);
	ck_assert_uint_eq(msgs(&e->rec), g->handled + 1);
	s = sltsta(e);
	ck_assert(!(s & PCI_EXP_SLTSTA_PDS));
	ck_assert(s & PCI_EXP_SLTSTA_PDC);
	ck_assert(s & PCI_EXP_SLTSTA_DLLSC);
	ck_assert(!g_link_active(g));
	ck_assert_ptr_null(vdev_pci_root_find(e->root, SLOT));
	ck_assert_uint_eq(g_rd(g, SLOT, 0, 4), ALL_ONES);
	g_service(g);
	ck_assert(g->events_seen & PCI_EXP_SLTSTA_PDC);
	ck_assert_int_eq(g->state, OFF_STATE);
	ck_assert(!g_power_on(g)); /* pciehp turned the slot off */
	ck_assert_int_eq(vdev_pcie_port_surprise_remove(e->port), -ENOENT);

	/* A pending unplug completes when the device disappears first. */
	plug_ep(e);
	ck_assert_int_eq(e->hp->hot_unplug(e->port, SLOT, &fd), 0);
	ck_assert(!fd_fired(fd));
	ck_assert_int_eq(vdev_pcie_port_surprise_remove(e->port), 0);
	ck_assert(fd_fired(fd));
	close(fd);
	g_service(g);
	g_button_timeout(g);
	ck_assert_int_eq(g->state, OFF_STATE);

	/* A plug the guest never acted on: surprise removal cancels it. */
	ep_add(e, SLOT);
	ck_assert_int_eq(e->hp->hot_plug(e->port, SLOT, &fd), 0);
	ck_assert_int_eq(vdev_pcie_port_surprise_remove(e->port), 0);
	ck_assert(!fd_fired(fd));
	close(fd);
	ck_assert_ptr_null(vdev_pci_root_find(e->root, SLOT));
	g_service(g);
	ck_assert_int_eq(g->state, OFF_STATE);
	ck_assert_int_eq(g->timeouts, 0);
	ck_assert_uint_eq(e->rec.bad, 0);
	env_free(e);
}
END_TEST

START_TEST(test_msi_mask_and_pending)
{
	struct env *e = env_new();
	struct guest *g = &e->g;
	unsigned before, upd;

	g_init(g);
	ck_assert_uint_eq(e->rec.upd_masked, 0);
	ck_assert_uint_eq(e->rec.upd_addr, MSI_ADDR);
	/* Masked: a command completes, the message waits in the pending bit. */
	upd = e->rec.updates;
	g_wr(g, PORT_ADDR, g->msi + PCI_MSI_MASK_64, 4, 1);
	ck_assert_uint_eq(e->rec.updates, upd + 1);
	ck_assert_uint_eq(e->rec.upd_masked, 1);
	before = msgs(&e->rec);
	g_write_cmd(g, PCI_EXP_SLTCTL_ATTN_IND_ON, PCI_EXP_SLTCTL_AIC, 0);
	ck_assert(sltsta(e) & PCI_EXP_SLTSTA_CC);
	ck_assert_uint_eq(msgs(&e->rec), before);
	ck_assert_uint_eq(g_rd(g, PORT_ADDR, g->msi + PCI_MSI_PENDING_64, 4), 1);
	/* The pending bit is read-only. */
	g_wr(g, PORT_ADDR, g->msi + PCI_MSI_PENDING_64, 4, 0);
	ck_assert_uint_eq(g_rd(g, PORT_ADDR, g->msi + PCI_MSI_PENDING_64, 4), 1);
	/* Unmask: delivered, pending clear. */
	g_wr(g, PORT_ADDR, g->msi + PCI_MSI_MASK_64, 4, 0);
	ck_assert_uint_eq(msgs(&e->rec), before + 1);
	ck_assert_uint_eq(g_rd(g, PORT_ADDR, g->msi + PCI_MSI_PENDING_64, 4), 0);
	ck_assert_uint_eq(e->rec.upd_masked, 0);
	g_wait_cmd(g);
	ck_assert_int_eq(g->timeouts, 0);

	/* While an event is unacknowledged, new ones send nothing (edge). */
	before = msgs(&e->rec);
	g_wr(g, PORT_ADDR, g->exp + PCI_EXP_SLTCTL, 2, g->slot_ctrl);
	ck_assert_uint_eq(msgs(&e->rec), before + 1);
	g_wr(g, PORT_ADDR, g->exp + PCI_EXP_SLTCTL, 2, g->slot_ctrl);
	ck_assert_uint_eq(msgs(&e->rec), before + 1);
	x_wr16(g, PCI_EXP_SLTSTA, PCI_EXP_SLTSTA_CC);
	g_wr(g, PORT_ADDR, g->exp + PCI_EXP_SLTCTL, 2, g->slot_ctrl);
	ck_assert_uint_eq(msgs(&e->rec), before + 2);
	x_wr16(g, PCI_EXP_SLTSTA, PCI_EXP_SLTSTA_CC);

	/* Enabling HPIE with an event already set sends one. */
	g_wr(g, PORT_ADDR, g->exp + PCI_EXP_SLTCTL, 2,
	     g->slot_ctrl & (uint16_t)~PCI_EXP_SLTCTL_HPIE);
	ck_assert(sltsta(e) & PCI_EXP_SLTSTA_CC);
	before = msgs(&e->rec);
	g_wr(g, PORT_ADDR, g->exp + PCI_EXP_SLTCTL, 2, g->slot_ctrl);
	ck_assert_uint_eq(msgs(&e->rec), before + 1);
	x_wr16(g, PCI_EXP_SLTSTA, PCI_EXP_SLTSTA_CC);

	/* Without bus mastering the message is dropped. */
	g_wr(g, PORT_ADDR, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	before = msgs(&e->rec);
	g_wr(g, PORT_ADDR, g->exp + PCI_EXP_SLTCTL, 2, g->slot_ctrl);
	ck_assert_uint_eq(msgs(&e->rec), before);
	x_wr16(g, PCI_EXP_SLTSTA, PCI_EXP_SLTSTA_CC);
	g_wr(g, PORT_ADDR, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);

	/* A new address and data reach the VMM (update) and the next message. */
	e->rec.addr = MSI_ADDR + 0x10000;
	e->rec.data = 0x55;
	g_wr(g, PORT_ADDR, g->msi + PCI_MSI_ADDRESS_LO, 4, (uint32_t)e->rec.addr);
	g_wr(g, PORT_ADDR, g->msi + PCI_MSI_DATA_64, 2, 0x55);
	ck_assert_uint_eq(e->rec.upd_addr, e->rec.addr);
	before = msgs(&e->rec);
	g_wr(g, PORT_ADDR, g->exp + PCI_EXP_SLTCTL, 2, g->slot_ctrl);
	ck_assert_uint_eq(msgs(&e->rec), before + 1);
	/* MSI off: the VMM hears of it as masked. */
	g_wr(g, PORT_ADDR, g->msi + PCI_MSI_FLAGS, 2, 0);
	ck_assert_uint_eq(e->rec.upd_masked, 1);
	ck_assert_uint_eq(e->rec.bad, 0);
	env_free(e);
}
END_TEST

START_TEST(test_intx)
{
	struct env *e = env_new_ops(&rec_ops, 0, 0);
	struct guest *g = &e->g;
	int fd = -1;

	use_ep(e);
	g_init(g);
	ck_assert_int_eq(e->rec.intx, 0);
	ep_add(e, SLOT);
	ck_assert_int_eq(e->hp->hot_plug(e->port, SLOT, &fd), 0);
	ck_assert_int_eq(e->rec.intx, 1);
	ck_assert(g_rd(g, PORT_ADDR, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
	/* INTx disabled in the command register: the pin drops, and rises
	 * again when it is allowed. Interrupt Status still shows the pending
	 * interrupt (PCI 3.0 6.2.3: Interrupt Disable has no effect on it). */
	g_wr(g, PORT_ADDR, PCI_COMMAND, 2,
	     PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_INTX_DISABLE);
	ck_assert_int_eq(e->rec.intx, 0);
	ck_assert(g_rd(g, PORT_ADDR, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
	g_wr(g, PORT_ADDR, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	ck_assert_int_eq(e->rec.intx, 1);
	g_service(g);
	ck_assert_int_eq(g->state, ON_STATE);
	ck_assert_int_eq(e->rec.intx, 0);
	ck_assert(!(g_rd(g, PORT_ADDR, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT));
	ck_assert(fd_fired(fd));
	close(fd);
	unplug_ep(e);
	ck_assert_int_eq(e->rec.intx, 0);
	ck_assert_uint_eq(msgs(&e->rec), 0);
	ck_assert_int_eq(g->timeouts, 0);
	ck_assert_int_eq(g->stuck, 0);
	ck_assert_uint_eq(e->rec.bad, 0);
	env_free(e);
}
END_TEST

START_TEST(test_interrupt_variants)
{
	struct env *e = env_new_ops(&intx_only_ops, 0, 0);

	ck_assert_int_lt(g_find_cap(&e->g, PORT_ADDR, PCI_CAP_ID_MSI), 0);
	ck_assert_uint_eq(g_rd(&e->g, PORT_ADDR, PCI_INTERRUPT_PIN, 1), 1);
	use_ep(e);
	g_init(&e->g);
	plug_ep(e);
	unplug_ep(e);
	env_free(e);

	e = env_new_ops(&msi_only_ops, 0, 1);
	ck_assert_int_gt(g_find_cap(&e->g, PORT_ADDR, PCI_CAP_ID_MSI), 0);
	ck_assert_uint_eq(g_rd(&e->g, PORT_ADDR, PCI_INTERRUPT_PIN, 1), 0);
	use_ep(e);
	g_init(&e->g);
	plug_ep(e);
	unplug_ep(e);
	ck_assert_int_eq(e->g.timeouts, 0);
	env_free(e);
}
END_TEST

START_TEST(test_cold_plug)
{
	struct env *e = env_new();
	struct guest *g = &e->g;
	int fd = -1;

	use_ep(e);
	/* Before pciehp: presence, power and link at once, silently. */
	ep_add(e, SLOT);
	ck_assert_int_eq(e->hp->hot_plug(e->port, SLOT, &fd), 0);
	ck_assert(fd_fired(fd));
	close(fd);
	ck_assert_uint_eq(sltsta(e) & SLTSTA_EVENTS, 0);
	ck_assert(sltsta(e) & PCI_EXP_SLTSTA_PDS);
	ck_assert_uint_eq(sltctl(e) & (PCI_EXP_SLTCTL_PCC | PCI_EXP_SLTCTL_PIC),
			  PCI_EXP_SLTCTL_PWR_ON | PCI_EXP_SLTCTL_PWR_IND_ON);
	ck_assert_uint_eq(g_rd(g, SLOT, 0, 4), 0x11e81234u);
	/* pciehp comes up and finds the slot on. */
	g_init(g);
	ck_assert_int_eq(g->state, ON_STATE);
	ck_assert_int_eq(g->enabled, 0);
	ck_assert_uint_eq(g_rd(g, SLOT, 0, 4), 0x11e81234u);
	g->configured = 1;
	unplug_ep(e);
	env_free(e);

	/* Unplug while the guest cannot be asked: removed at once. */
	e = env_new();
	ep_add(e, SLOT);
	ck_assert_int_eq(e->hp->hot_plug(e->port, SLOT, &fd), 0);
	ck_assert(fd_fired(fd));
	close(fd);
	ck_assert_int_eq(e->hp->hot_unplug(e->port, SLOT, &fd), 0);
	ck_assert(fd_fired(fd));
	close(fd);
	ck_assert_ptr_null(vdev_pci_root_find(e->root, SLOT));
	ck_assert(!(sltsta(e) & PCI_EXP_SLTSTA_PDS));
	ck_assert_uint_eq(g_rd(&e->g, SLOT, 0, 4), ALL_ONES);
	env_free(e);
}
END_TEST

/*
 * A guest whose pciehp drives the slot with its notifications off (poll
 * mode, pciehp_poll_mode=1, or between portdrv and pciehp) has still taken
 * the slot: a plug must be announced and wait for the guest to power the
 * slot, not power it silently (Linux would then find a powered slot it
 * never scanned: "Already enabled").
 */
START_TEST(test_plug_poll_mode)
{
	struct env *e = env_new();
	struct guest *g = &e->g;
	uint16_t sta;
	int fd = -1;

	g->exp = (uint32_t)g_find_cap(g, g->port, PCI_CAP_ID_EXP);
	ck_assert_int_gt((int)g->exp, 0);
	/* pciehp's init with notifications off: power the empty slot off. */
	x_wr16(g, PCI_EXP_SLTCTL, PCI_EXP_SLTCTL_PWR_OFF | PCI_EXP_SLTCTL_PWR_IND_OFF);
	x_wr16(g, PCI_EXP_SLTSTA, SLTSTA_EVENTS);
	ep_add(e, SLOT);
	ck_assert_int_eq(e->hp->hot_plug(e->port, SLOT, &fd), 0);
	ck_assert(!fd_fired(fd));
	sta = sltsta(e);
	ck_assert(sta & PCI_EXP_SLTSTA_PDS);
	ck_assert(sta & PCI_EXP_SLTSTA_PDC);
	ck_assert(!(sta & PCI_EXP_SLTSTA_DLLSC));
	ck_assert(sltctl(e) & PCI_EXP_SLTCTL_PCC); /* still off */
	ck_assert_uint_eq(g_rd(g, SLOT, 0, 4), ALL_ONES);
	/* The poll finds the presence change and powers the slot on. */
	x_wr16(g, PCI_EXP_SLTSTA, SLTSTA_EVENTS);
	x_wr16(g, PCI_EXP_SLTCTL, PCI_EXP_SLTCTL_PWR_ON | PCI_EXP_SLTCTL_PWR_IND_ON);
	ck_assert(fd_fired(fd));
	close(fd);
	ck_assert(x_rd16(g, PCI_EXP_LNKSTA) & PCI_EXP_LNKSTA_DLLLA);
	ck_assert_uint_eq(g_rd(g, SLOT, 0, 4), 0x11e81234u);
	env_free(e);
}
END_TEST

START_TEST(test_unplug_powered_off)
{
	struct env *e = env_new();
	struct guest *g = &e->g;
	unsigned before;
	int fd = -1;

	use_ep(e);
	g_init(g);
	plug_ep(e);
	/* The guest turns the slot off itself (sysfs): the device stays. */
	g->pending |= DISABLE_SLOT;
	g_service(g);
	ck_assert_int_eq(g->state, OFF_STATE);
	ck_assert(!g_link_active(g));
	ck_assert_ptr_nonnull(vdev_pci_root_find(e->root, SLOT));
	ck_assert(sltsta(e) & PCI_EXP_SLTSTA_PDS);
	ck_assert_uint_eq(g_rd(g, SLOT, 0, 4), ALL_ONES);
	/* and on again (sysfs enable). */
	g->pending |= PCI_EXP_SLTSTA_PDC;
	g_service(g);
	ck_assert_int_eq(g->state, ON_STATE);
	ck_assert_uint_eq(g_rd(g, SLOT, 0, 4), 0x11e81234u);
	g->pending |= DISABLE_SLOT;
	g_service(g);
	/* Unplug of a slot that is off: no button (pciehp would power it on
	 * after 5 s), removed at once; the guest hears of the presence change. */
	before = msgs(&e->rec);
	ck_assert_int_eq(e->hp->hot_unplug(e->port, SLOT, &fd), 0);
	ck_assert(fd_fired(fd));
	close(fd);
	ck_assert(!(sltsta(e) & PCI_EXP_SLTSTA_ABP));
	ck_assert_ptr_null(vdev_pci_root_find(e->root, SLOT));
	g_service(g);
	ck_assert_int_eq(g->state, OFF_STATE);
	ck_assert_uint_le(msgs(&e->rec), before + 1);
	ck_assert_int_eq(g->timeouts, 0);
	env_free(e);
}
END_TEST

START_TEST(test_hotplug_errors)
{
	struct env *e = env_new();
	struct guest *g = &e->g;
	int fd = -1, fd2 = -1;

	use_ep(e);
	g_init(g);
	ck_assert_int_eq(e->hp->hot_plug(NULL, SLOT, &fd), -EINVAL);
	ck_assert_int_eq(e->hp->hot_plug(e->port, SLOT, NULL), -EINVAL);
	ck_assert_int_eq(e->hp->hot_plug(e->port, 0x10000, &fd), -EINVAL);
	ck_assert_int_eq(e->hp->hot_plug(e->port, VDEV_PCI_ADDR(SEC + 1, 0, 0), &fd), -EINVAL);
	ck_assert_int_eq(e->hp->hot_plug(e->port, VDEV_PCI_ADDR(SEC, 1, 0), &fd), -EINVAL);
	ck_assert_int_eq(e->hp->hot_plug(e->port, SLOT, &fd), -ENOENT); /* not in the root */
	ck_assert_int_eq(e->hp->hot_unplug(e->port, SLOT, &fd), -ENOENT); /* empty */
	ck_assert_int_eq(e->hp->hot_unplug(NULL, SLOT, &fd), -EINVAL);
	ck_assert_int_eq(vdev_pcie_port_surprise_remove(NULL), -EINVAL);
	ck_assert_int_eq(vdev_pcie_port_slot_state(NULL, NULL, NULL), -EINVAL);
	ck_assert_uint_eq(sltsta(e), 0);

	ep_add(e, SLOT);
	ck_assert_int_eq(e->hp->hot_plug(e->port, SLOT, &fd), 0);
	/* A command is pending. */
	ck_assert_int_eq(e->hp->hot_plug(e->port, SLOT, &fd2), -EBUSY);
	ck_assert_int_eq(e->hp->hot_unplug(e->port, SLOT, &fd2), -EBUSY);
	/* The caller may close its fd before completion. */
	close(fd);
	g_service(g);
	ck_assert_int_eq(g->state, ON_STATE);
	/* Occupied. */
	ck_assert_int_eq(e->hp->hot_plug(e->port, SLOT, &fd2), -EBUSY);
	ck_assert_int_eq(e->hp->hot_unplug(e->port, VDEV_PCI_ADDR(SEC + 1, 0, 0), &fd), -EINVAL);
	ck_assert_int_eq(e->hp->hot_unplug(e->port, VDEV_PCI_ADDR(SEC, 3, 0), &fd), -EINVAL);
	ck_assert_int_eq(e->hp->hot_unplug(e->port, SLOT, NULL), -EINVAL);
	ck_assert_int_eq(e->hp->hot_unplug(e->port, SLOT, &fd), 0);
	/* A second press would cancel the first: refused. */
	ck_assert_int_eq(e->hp->hot_unplug(e->port, SLOT, &fd2), -EBUSY);
	ck_assert_int_eq(e->hp->hot_plug(e->port, SLOT, &fd2), -EBUSY);
	g_service(g);
	g_button_timeout(g);
	ck_assert(fd_fired(fd));
	close(fd);
	ck_assert_int_eq(g->state, OFF_STATE);
	env_free(e);
}
END_TEST

START_TEST(test_bus_ops)
{
	struct env *e = env_new();
	const struct vdev_hotplug_bus_ops *hp = e->hp;
	uint32_t addr = 0;

	ck_assert_uint_ge(hp->struct_size, offsetof(struct vdev_hotplug_bus_ops, get_hotplug_key));
	ck_assert_int_eq(hp->get_address(e->port, &addr), 0);
	ck_assert_uint_eq(addr, PORT_ADDR);
	ck_assert_int_eq(hp->get_address(e->port, NULL), -EINVAL);
	ck_assert_int_eq(hp->get_address(NULL, &addr), -EINVAL);
	ck_assert_int_eq(hp->get_secondary_bus(e->port), SEC);
	ck_assert_int_eq(hp->get_secondary_bus(NULL), -EINVAL);
	ck_assert_uint_eq(hp->get_hotplug_key(e->port), 77);
	ck_assert_uint_eq(hp->get_hotplug_key(NULL), VDEV_HOTPLUG_KEY_NONE);

	/* is_match: the host port itself, or a bus in sec..sub. */
	ck_assert_int_eq(hp->is_match(e->port, VDEV_PCI_ADDR(0, 0x1c, 0)), SEC);
	ck_assert_int_eq(hp->is_match(e->port, VDEV_PCI_ADDR(SEC, 0, 0)), SEC);
	ck_assert_int_eq(hp->is_match(e->port, VDEV_PCI_ADDR(SEC, 4, 2)), SEC);
	ck_assert_int_eq(hp->is_match(e->port, VDEV_PCI_ADDR(SEC + 1, 0, 0)), -ENOENT);
	ck_assert_int_eq(hp->is_match(e->port, VDEV_PCI_ADDR(0, 3, 0)), -ENOENT);
	ck_assert_int_eq(hp->is_match(e->port, VDEV_PCI_ADDR_NONE), -EINVAL);
	ck_assert_int_eq(hp->is_match(NULL, 0), -EINVAL);

	/* The device table: 8 entries, updates in place. */
	for (uint32_t i = 0; i < 8; i++)
		ck_assert_int_eq(hp->add_hotplug_device(e->port, 100 + i, VDEV_PCI_ADDR(SEC, 0, i)),
				 0);
	ck_assert_int_eq(hp->add_hotplug_device(e->port, 200, SLOT), -ENOSPC);
	ck_assert_int_eq(hp->add_hotplug_device(e->port, 103, VDEV_PCI_ADDR(SEC, 0, 7)), 0);
	ck_assert_int_eq(hp->get_hotplug_device(e->port, 103, &addr), 0);
	ck_assert_uint_eq(addr, VDEV_PCI_ADDR(SEC, 0, 7));
	ck_assert_int_eq(hp->get_hotplug_device(e->port, 107, &addr), 0);
	ck_assert_uint_eq(addr, VDEV_PCI_ADDR(SEC, 0, 7));
	ck_assert_int_eq(hp->get_hotplug_device(e->port, 200, &addr), -ENOENT);
	ck_assert_int_eq(hp->get_hotplug_device(e->port, VDEV_HOTPLUG_KEY_NONE, &addr), -EINVAL);
	ck_assert_int_eq(hp->get_hotplug_device(e->port, 100, NULL), -EINVAL);
	ck_assert_int_eq(hp->add_hotplug_device(e->port, VDEV_HOTPLUG_KEY_NONE, SLOT), -EINVAL);
	ck_assert_int_eq(hp->add_hotplug_device(e->port, 5, 0x10000), -EINVAL);
	ck_assert_int_eq(hp->add_hotplug_device(NULL, 5, SLOT), -EINVAL);

	/* is_empty follows presence; an unplug drops the slot's entries. */
	ck_assert_int_eq(hp->is_empty(e->port), 1);
	ck_assert_int_eq(hp->is_empty(NULL), -EINVAL);
	use_ep(e);
	g_init(&e->g);
	plug_ep(e);
	ck_assert_int_eq(hp->is_empty(e->port), 0);
	unplug_ep(e);
	ck_assert_int_eq(hp->is_empty(e->port), 1);
	ck_assert_int_eq(hp->get_hotplug_device(e->port, 100, &addr), -ENOENT);
	ck_assert_int_eq(hp->add_hotplug_device(e->port, 200, SLOT), 0);
	env_free(e);
}
END_TEST

START_TEST(test_new_invalid)
{
	struct env *e = env_new();
	struct vdev_pcie_port_config pc = port_config(e);
	struct vdev_pci_msi_ops none = VDEV_PCI_MSI_OPS_INIT;
	vdev_pcie_port *p = NULL;

	ck_assert_int_eq(vdev_pcie_port_new(NULL, &p), -EINVAL);
	ck_assert_int_eq(vdev_pcie_port_new(&pc, NULL), -EINVAL);
#define BAD(field, value)                                                                 \
	do {                                                                              \
		struct vdev_pcie_port_config c = pc;                                      \
		c.field = value;                                                          \
		c.addr = VDEV_PCI_ADDR(0, 9, 0);                                          \
		ck_assert_int_eq(vdev_pcie_port_new(&c, &p), -EINVAL);                    \
	} while (0)
	BAD(struct_size, 0);
	BAD(root, NULL);
	BAD(msi_ops, NULL);
	BAD(msi_ops, &none);
	BAD(secondary_bus, 0);
	BAD(slot_number, 8192);
	BAD(vendor_id, 0xffff);
	BAD(flags, 0x2);
	BAD(mem_base, WIN_BASE + 0x1000);
	BAD(mem_size, 0x1000);
	BAD(mem_base, 0xfff00000ull);
	BAD(pref_size, 0x1000);
	BAD(io_size, 0x800);
	BAD(mem_size, 0x100000000ull);
#undef BAD
	ck_assert_ptr_null(p);
	{
		struct vdev_pcie_port_config c = pc;

		c.addr = VDEV_PCI_ADDR(2, 0, 0);
		c.secondary_bus = 2; /* not above the port's own bus */
		ck_assert_int_eq(vdev_pcie_port_new(&c, &p), -EINVAL);
		c.addr = 0x10000;
		ck_assert_int_eq(vdev_pcie_port_new(&c, &p), -EINVAL);
		c.addr = VDEV_PCI_ADDR(0, 9, 0);
		c.secondary_bus = 2;
		c.subordinate_bus = 1;
		ck_assert_int_eq(vdev_pcie_port_new(&c, &p), -EINVAL);
	}
	/* The address is taken. */
	ck_assert_int_eq(vdev_pcie_port_new(&pc, &p), -EEXIST);
	ck_assert_ptr_null(p);
	/* A second port on another bus range works; both free cleanly. */
	pc.addr = VDEV_PCI_ADDR(0, 3, 0);
	pc.secondary_bus = 2;
	pc.subordinate_bus = 3;
	pc.pref_base = 0x800000000ull;
	pc.pref_size = 1ull << 30;
	ck_assert_int_eq(vdev_pcie_port_new(&pc, &p), 0);
	ck_assert_uint_eq(g_rd(&e->g, pc.addr, PCI_SUBORDINATE_BUS, 1), 3);
	ck_assert_uint_eq(g_rd(&e->g, pc.addr, PCI_PREF_BASE_UPPER32, 4), 8);
	ck_assert_uint_eq(g_rd(&e->g, pc.addr, PCI_PREF_MEMORY_LIMIT, 2) & 0xfff0, 0x3ff0);
	vdev_pcie_port_free(p);
	ck_assert_ptr_null(vdev_pci_root_find(e->root, pc.addr));
	vdev_pcie_port_free(NULL);
	env_free(e);
}
END_TEST

START_TEST(test_free_occupied)
{
	struct env *e = env_new();
	int fd = -1;

	use_ep(e);
	g_init(&e->g);
	ep_add(e, SLOT);
	ck_assert_int_eq(e->hp->hot_plug(e->port, SLOT, &fd), 0);
	/* Freed with the plug pending: the function leaves the root, the fd
	 * never fires. */
	vdev_pcie_port_free(e->port);
	e->port = NULL;
	ck_assert_ptr_null(vdev_pci_root_find(e->root, SLOT));
	ck_assert_ptr_null(vdev_pci_root_find(e->root, PORT_ADDR));
	ck_assert(!fd_fired(fd));
	close(fd);
	env_free(e);
}
END_TEST

START_TEST(test_free_renumbered)
{
	struct env *e = env_new();
	struct vdev_pcie_port_config pc = port_config(e);
	vdev_pci_cfg *other = NULL;
	struct vdev_pci_cfg_config k = VDEV_PCI_CFG_CONFIG_INIT;
	vdev_pcie_port *p2 = NULL;

	/* A second port owns bus 2, with a function there. */
	pc.addr = VDEV_PCI_ADDR(0, 3, 0);
	pc.secondary_bus = 2;
	pc.mem_size = 0;
	ck_assert_int_eq(vdev_pcie_port_new(&pc, &p2), 0);
	k.vendor_id = 0x1234;
	k.device_id = 0x2222;
	ck_assert_int_eq(vdev_pci_cfg_new(&k, &other), 0);
	ck_assert_int_eq(vdev_pci_root_add(e->root, VDEV_PCI_ADDR(2, 0, 0), vdev_pci_cfg_bus_ops(),
					   other),
			 0);
	/* Our port, empty, is pointed at bus 2 by the guest, then freed: the
	 * other port's function stays. */
	g_wr(&e->g, PORT_ADDR, PCI_SECONDARY_BUS, 2, 0x0202);
	vdev_pcie_port_free(e->port);
	e->port = NULL;
	ck_assert_ptr_nonnull(vdev_pci_root_find(e->root, VDEV_PCI_ADDR(2, 0, 0)));
	vdev_pcie_port_free(p2); /* its slot was never plugged: the function stays */
	ck_assert_int_eq(vdev_pci_root_remove(e->root, VDEV_PCI_ADDR(2, 0, 0)), 0);
	vdev_pci_cfg_free(other);
	env_free(e);
}
END_TEST

START_TEST(test_hostile_slot_control)
{
	struct env *e = env_new();
	struct guest *g = &e->g;
	uint32_t slotcap, lnkcap, flags;
	int fd = -1;

	use_ep(e);
	g_init(g);
	slotcap = g_rd(g, PORT_ADDR, g->exp + PCI_EXP_SLTCAP, 4);
	lnkcap = g_rd(g, PORT_ADDR, g->exp + PCI_EXP_LNKCAP, 4);
	flags = g_rd(g, PORT_ADDR, g->exp, 4);

	/* Every Slot Control value on an empty slot: only the writable bits
	 * stick, EIC reads 0, the link never comes up, nothing behind. */
	for (uint32_t v = 0; v <= 0xffff; v++) {
		x_wr16(g, PCI_EXP_SLTCTL, (uint16_t)v);
		ck_assert_uint_eq(x_rd16(g, PCI_EXP_SLTCTL), v & SLTCTL_WRITABLE);
		ck_assert(!g_link_active(g));
		if ((v & 0xff) == 0)
			ck_assert_uint_eq(g_rd(g, SLOT, 0, 4), ALL_ONES);
	}
	ck_assert_uint_eq(sltsta(e) & (PCI_EXP_SLTSTA_PDS | PCI_EXP_SLTSTA_DLLSC), 0);
	ck_assert(sltsta(e) & PCI_EXP_SLTSTA_CC);

	/* Read-only registers stay: all ones over every dword of both caps. */
	for (uint32_t off = 0; off < 0x3c; off += 4)
		g_wr(g, PORT_ADDR, g->exp + off, 4, ALL_ONES);
	for (uint32_t off = 0; off < 0x18; off += 4)
		g_wr(g, PORT_ADDR, g->msi + off, 4, ALL_ONES);
	ck_assert_uint_eq(g_rd(g, PORT_ADDR, g->exp + PCI_EXP_SLTCAP, 4), slotcap);
	ck_assert_uint_eq(g_rd(g, PORT_ADDR, g->exp + PCI_EXP_LNKCAP, 4), lnkcap);
	ck_assert_uint_eq(g_rd(g, PORT_ADDR, g->exp, 4), flags);
	ck_assert_uint_eq(g_rd(g, PORT_ADDR, g->msi, 1), PCI_CAP_ID_MSI);
	/* The ones cleared the events, then the command completed. */
	ck_assert_uint_eq(x_rd16(g, PCI_EXP_SLTSTA), PCI_EXP_SLTSTA_CC);
	ck_assert(!(x_rd16(g, PCI_EXP_LNKSTA) & PCI_EXP_LNKSTA_DLLLA));
	ck_assert_uint_eq(x_rd16(g, PCI_EXP_LNKCTL),
			  PCI_EXP_LNKCTL_RCB | PCI_EXP_LNKCTL_LD | PCI_EXP_LNKCTL_CCC |
				  PCI_EXP_LNKCTL_ES);
	ck_assert_uint_eq(x_rd16(g, PCI_EXP_SLTCTL), SLTCTL_WRITABLE);
	ck_assert_uint_eq(x_rd16(g, PCI_EXP_DEVCTL),
			  PCI_EXP_DEVCTL_CERE | PCI_EXP_DEVCTL_NFERE | PCI_EXP_DEVCTL_FERE |
				  PCI_EXP_DEVCTL_URRE | PCI_EXP_DEVCTL_RELAX_EN |
				  PCI_EXP_DEVCTL_PAYLOAD | PCI_EXP_DEVCTL_NOSNOOP_EN |
				  PCI_EXP_DEVCTL_READRQ);
	ck_assert_uint_eq(x_rd16(g, PCI_EXP_DEVSTA), 0);
	ck_assert_uint_eq(x_rd16(g, PCI_EXP_RTCTL),
			  PCI_EXP_RTCTL_SECEE | PCI_EXP_RTCTL_SENFEE | PCI_EXP_RTCTL_SEFEE |
				  PCI_EXP_RTCTL_PMEIE);
	ck_assert_uint_eq(x_rd16(g, PCI_EXP_RTCAP), 0);
	ck_assert_uint_eq(g_rd(g, PORT_ADDR, g->exp + PCI_EXP_RTSTA, 4), 0);
	ck_assert_uint_eq(g_rd(g, PORT_ADDR, g->exp + PCI_EXP_LNKCAP2, 4),
			  PCI_EXP_LNKCAP2_SLS_2_5GB);
	ck_assert_uint_eq(g_rd(g, PORT_ADDR, g->msi + PCI_MSI_FLAGS, 2),
			  PCI_MSI_FLAGS_ENABLE | PCI_MSI_FLAGS_QSIZE | PCI_MSI_FLAGS_64BIT |
				  PCI_MSI_FLAGS_MASKBIT);
	ck_assert_uint_eq(g_rd(g, PORT_ADDR, g->msi + PCI_MSI_ADDRESS_LO, 4), 0xfffffffcu);
	ck_assert_uint_eq(g_rd(g, PORT_ADDR, g->msi + PCI_MSI_DATA_64, 4), 0xffff);
	ck_assert_uint_eq(g_rd(g, PORT_ADDR, g->msi + PCI_MSI_MASK_64, 4), 1);
	ck_assert_uint_eq(g_rd(g, PORT_ADDR, g->msi + PCI_MSI_PENDING_64, 4) & ~1u, 0);
	/* Odd sizes and offsets inside the caps. */
	g_wr(g, PORT_ADDR, g->exp + PCI_EXP_SLTCTL + 1, 1, PCI_EXP_SLTCTL_PCC >> 8);
	g_wr(g, PORT_ADDR, g->exp + PCI_EXP_SLTSTA + 1, 1, 0xff);
	g_wr(g, PORT_ADDR, g->exp + PCI_EXP_LNKSTA, 2, 0xffff);
	ck_assert(!(x_rd16(g, PCI_EXP_LNKSTA) & PCI_EXP_LNKSTA_DLLLA));

	/* Back to a sane guest: it still works. */
	g_wr(g, PORT_ADDR, g->msi + PCI_MSI_ADDRESS_LO, 4, (uint32_t)MSI_ADDR);
	g_wr(g, PORT_ADDR, g->msi + PCI_MSI_ADDRESS_HI, 4, 0);
	g_wr(g, PORT_ADDR, g->msi + PCI_MSI_DATA_64, 2, MSI_DATA);
	g_wr(g, PORT_ADDR, g->msi + PCI_MSI_FLAGS, 2, PCI_MSI_FLAGS_ENABLE);
	x_wr16(g, PCI_EXP_LNKCTL, 0);
	g->timeouts = 0;
	g_init(g);
	plug_ep(e);

	/* Power toggling in a loop with the device in: the link and the
	 * device's reachability follow, the device stays. */
	for (int i = 0; i < 500; i++) {
		uint16_t ctl = x_rd16(g, PCI_EXP_SLTCTL);

		x_wr16(g, PCI_EXP_SLTCTL, ctl ^ PCI_EXP_SLTCTL_PCC);
		ck_assert_int_eq(g_link_active(g), !!(ctl & PCI_EXP_SLTCTL_PCC));
		ck_assert_uint_eq(g_rd(g, SLOT, 0, 4),
				  (ctl & PCI_EXP_SLTCTL_PCC) ? 0x11e81234u : ALL_ONES);
		ck_assert(sltsta(e) & PCI_EXP_SLTSTA_DLLSC);
		x_wr16(g, PCI_EXP_SLTSTA, SLTSTA_EVENTS);
	}
	ck_assert_ptr_nonnull(vdev_pci_root_find(e->root, SLOT));
	/* Link Disable takes the link down too. */
	x_wr16(g, PCI_EXP_LNKCTL, PCI_EXP_LNKCTL_LD);
	ck_assert(!g_link_active(g));
	ck_assert_uint_eq(g_rd(g, SLOT, 0, 4), ALL_ONES);
	x_wr16(g, PCI_EXP_LNKCTL, 0);
	ck_assert(g_link_active(g));

	/* Bus numbers rewritten: is_bridge follows, the function is reached
	 * only where the port now says its bus is. */
	g_wr(g, PORT_ADDR, PCI_SECONDARY_BUS, 2, 0x0202);
	ck_assert_int_eq(e->hp->get_secondary_bus(e->port), 2);
	ck_assert_uint_eq(g_rd(g, SLOT, 0, 4), ALL_ONES);
	ck_assert_uint_eq(g_rd(g, PORT_ADDR, 0, 4), 0x000c1b36u);
	ck_assert_int_eq(e->hp->hot_unplug(e->port, VDEV_PCI_ADDR(2, 0, 0), &fd), -EINVAL);
	g_wr(g, PORT_ADDR, PCI_SECONDARY_BUS, 2, 0);
	ck_assert_int_eq(e->hp->get_secondary_bus(e->port), 0);
	ck_assert_int_eq(e->hp->hot_plug(e->port, VDEV_PCI_ADDR(0, 0, 0), &fd), -EINVAL);
	ck_assert_uint_eq(g_rd(g, PORT_ADDR, 0, 4), 0x000c1b36u);
	g_wr(g, PORT_ADDR, PCI_SECONDARY_BUS, 2, SEC | SEC << 8);
	ck_assert_uint_eq(g_rd(g, SLOT, 0, 4), 0x11e81234u);

	/* The unplug still works after all that. */
	g->handled = msgs(&e->rec);
	x_wr16(g, PCI_EXP_SLTSTA, SLTSTA_EVENTS);
	unplug_ep(e);
	ck_assert_uint_eq(e->rec.bad, 0);
	env_free(e);
}
END_TEST

/* The VMM plugs and pulls while a guest thread hammers slot control. */
struct smoke {
	struct env *e;
	int stop;
};

static void *guest_thread(void *arg)
{
	struct smoke *s = arg;
	struct guest g = s->e->g;
	unsigned seed = 1;

	while (!__atomic_load_n(&s->stop, __ATOMIC_SEQ_CST)) {
		uint16_t ctl = x_rd16(&g, PCI_EXP_SLTCTL);

		seed = seed * 1103515245u + 12345u;
		x_wr16(&g, PCI_EXP_SLTCTL, (uint16_t)(ctl ^ ((seed >> 16) & PCI_EXP_SLTCTL_PCC)));
		x_wr16(&g, PCI_EXP_SLTSTA, SLTSTA_EVENTS);
		(void)g_rd(&g, SLOT, 0, 4);
	}
	return NULL;
}

START_TEST(test_concurrency_smoke)
{
	struct env *e = env_new();
	struct smoke s = { .e = e };
	int ok[3] = { 0 };
	pthread_t t;

	g_init(&e->g);
	ck_assert_int_eq(pthread_create(&t, NULL, guest_thread, &s), 0);
	/* Until every path has succeeded a few times (or a generous bound). */
	for (int i = 0; i < 300000 && (ok[0] < 20 || ok[1] < 20 || ok[2] < 20); i++) {
		int fd = -1, r;

		if (!vdev_pci_root_find(e->root, SLOT) && !(sltsta(e) & PCI_EXP_SLTSTA_PDS))
			ep_add(e, SLOT);
		switch (i % 3) {
		case 0:
			r = e->hp->hot_plug(e->port, SLOT, &fd);
			break;
		case 1:
			r = e->hp->hot_unplug(e->port, SLOT, &fd);
			break;
		default:
			r = vdev_pcie_port_surprise_remove(e->port);
			break;
		}
		ck_assert(r == 0 || r == -EBUSY || r == -ENOENT);
		ok[i % 3] += r == 0;
		if (fd >= 0)
			close(fd);
		sched_yield();
	}
	/* Every path ran. */
	ck_assert_int_gt(ok[0], 0);
	ck_assert_int_gt(ok[1], 0);
	ck_assert_int_gt(ok[2], 0);
	__atomic_store_n(&s.stop, 1, __ATOMIC_SEQ_CST);
	pthread_join(t, NULL);
	/* Quiet now: empty the slot whatever state it is in. */
	vdev_pcie_port_surprise_remove(e->port);
	vdev_pci_root_remove(e->root, SLOT); /* added but never plugged */
	ck_assert_ptr_null(vdev_pci_root_find(e->root, SLOT));
	ck_assert(!(sltsta(e) & PCI_EXP_SLTSTA_PDS));
	env_free(e);
}
END_TEST

static Suite *hotplug_suite(void)
{
	Suite *s = suite_create("hotplug");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_config_space);
	tcase_add_test(tc, test_plug_unplug_button);
	tcase_add_test(tc, test_plug_unplug_presence);
	tcase_add_test(tc, test_virtio_blk);
	tcase_add_test(tc, test_surprise_removal);
	tcase_add_test(tc, test_msi_mask_and_pending);
	tcase_add_test(tc, test_intx);
	tcase_add_test(tc, test_interrupt_variants);
	tcase_add_test(tc, test_cold_plug);
	tcase_add_test(tc, test_plug_poll_mode);
	tcase_add_test(tc, test_unplug_powered_off);
	tcase_add_test(tc, test_hotplug_errors);
	tcase_add_test(tc, test_bus_ops);
	tcase_add_test(tc, test_new_invalid);
	tcase_add_test(tc, test_free_occupied);
	tcase_add_test(tc, test_free_renumbered);
	tcase_add_test(tc, test_hostile_slot_control);
	tcase_add_test(tc, test_concurrency_smoke);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(hotplug_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
