/* SPDX-License-Identifier: MIT */
/*
 * PCIe native hotplug as the guest sees it, following the steps of Linux's
 * pciehp (drivers/pci/hotplug/pciehp_hpc.c and pciehp_ctrl.c; read, not
 * copied): find the root port (a PCI-to-PCI bridge whose PCIe capability
 * has a slot with Hot-Plug Capable), program its MSI and enable bus
 * mastering (portdrv), turn the hotplug interrupts off and clear stale
 * events (pcie_init), enable the notifications pciehp enables for a slot
 * with an attention button (ABPE, DLLSCE, CCIE, HPIE), and then:
 *
 *   plug:   ask the host; the port interrupts (attention button, presence
 *           changed); power the slot on (PCC clear), wait for Command
 *           Completed and the link (DLLLA, DLLSC), power indicator on;
 *           enumerate the secondary bus, assign the BARs from the bridge's
 *           memory window and drive the disk (TG_MODE_HOTPLUG: the verify
 *           workload with MSI-X interrupts).
 *   unplug: ask the host; the port interrupts (attention button); the
 *           driver stops using the device (reset), the slot is powered off
 *           (PCC set), Command Completed; config reads of the slot's
 *           function now give all ones and presence is gone.
 *
 * Every wait is for the port's interrupt (counted by tg_hotplug_irq), after
 * which the ISR reads Slot Status and writes the events back, re-reading
 * until it reads none (pciehp's MSI mode: a port interrupts again only once
 * every event was cleared). Linux's 5 s wait after a button press (time to
 * cancel with a second press) is not modelled: the guest acts at once.
 *
 * TG_HOSTILE_SLOT_POWER plugs the disk, then toggles slot power and Link
 * Disable many times and writes every Slot Control and Slot Status bit,
 * checking that the function disappears and comes back with the link,
 * before it unplugs the disk as above.
 */
#include <stddef.h>
#include <stdint.h>

#include <linux/pci_regs.h>
#include <linux/virtio_ids.h>

#include <virtio-dev/virtio-pci.h>

#include "tg.h"

#define MAX_FUNCTIONS 32u
#define WAIT_MS 5000u  /* for an interrupt the port owes us */
#define POWER_TOGGLES 50u
#define ALL_ONES 0xffffffffu
#define PCI_CLASS_BRIDGE_PCI_NORMAL 0x060400u
/* Slot Status bits pciehp's ISR looks at. */
#define EVENTS                                                                            \
	(PCI_EXP_SLTSTA_ABP | PCI_EXP_SLTSTA_PFD | PCI_EXP_SLTSTA_PDC | PCI_EXP_SLTSTA_CC |  \
	 PCI_EXP_SLTSTA_DLLSC)
#define NOTIFY_MASK                                                                       \
	(PCI_EXP_SLTCTL_PDCE | PCI_EXP_SLTCTL_ABPE | PCI_EXP_SLTCTL_PFDE |                \
	 PCI_EXP_SLTCTL_HPIE | PCI_EXP_SLTCTL_CCIE | PCI_EXP_SLTCTL_DLLSCE)

struct hp {
	struct tg_pci *pci;    /* config space (ECAM) */
	uint32_t port;         /* the root port's address */
	uint32_t exp;          /* its PCIe capability */
	uint32_t slot;         /* the slot's function 0: secondary bus, device 0 */
	uint64_t win_base, win_size; /* the bridge's memory window */
	uint64_t irqs_taken;   /* interrupts the ISR ran for */
	uint16_t events;       /* events the ISR collected, not yet consumed */
	int failed;
};

static uint64_t hp_irqs; /* atomic: hotplug MSIs taken by the handler */

void tg_hotplug_irq(void)
{
	__atomic_add_fetch(&hp_irqs, 1, __ATOMIC_RELEASE);
}

/* ---- config space ----------------------------------------------------------- */

static uint32_t cfg_rd(struct hp *h, uint32_t addr, uint32_t off, uint32_t width)
{
	return tg_pci_io.cfg_read(h->pci, addr, off, width);
}

static void cfg_wr(struct hp *h, uint32_t addr, uint32_t off, uint32_t width, uint32_t v)
{
	tg_pci_io.cfg_write(h->pci, addr, off, width, v);
}

static uint16_t x_rd(struct hp *h, uint32_t reg)
{
	return (uint16_t)cfg_rd(h, h->port, h->exp + reg, 2);
}

static void x_wr(struct hp *h, uint32_t reg, uint16_t v)
{
	cfg_wr(h, h->port, h->exp + reg, 2, v);
}

static int check(struct hp *h, int ok, const char *what)
{
	if (!ok) {
		tg_printf("hotplug: FAILED: %s (slot status 0x%x, control 0x%x, link status 0x%x)",
			  what, x_rd(h, PCI_EXP_SLTSTA), x_rd(h, PCI_EXP_SLTCTL),
			  x_rd(h, PCI_EXP_LNKSTA));
		h->failed = 1;
	}
	return ok;
}

static int link_up(struct hp *h)
{
	return !!(x_rd(h, PCI_EXP_LNKSTA) & PCI_EXP_LNKSTA_DLLLA);
}

static uint32_t slot_id(struct hp *h)
{
	return cfg_rd(h, h->slot, PCI_VENDOR_ID, 4);
}

/* ---- interrupts ---------------------------------------------------------------- */

/* pciehp_isr in MSI mode: acknowledge every event, re-read until none is left. */
static void isr(struct hp *h)
{
	for (int n = 0; n < 16; n++) {
		uint16_t status = x_rd(h, PCI_EXP_SLTSTA) & EVENTS;

		if (!status)
			return;
		x_wr(h, PCI_EXP_SLTSTA, status);
		h->events |= status;
	}
	check(h, 0, "Slot Status events keep coming back");
}

/*
 * Wait for port interrupts until the events in @want (all of them) were
 * collected; they are consumed. Returns 1, or 0 (printed) if no interrupt
 * brought them in time.
 */
static int wait_events(struct hp *h, uint16_t want, const char *what)
{
	uint64_t deadline = tg_deadline_ms(WAIT_MS);

	while ((h->events & want) != want) {
		uint64_t n = __atomic_load_n(&hp_irqs, __ATOMIC_ACQUIRE);

		if (n != h->irqs_taken) {
			h->irqs_taken = n;
			isr(h);
			continue;
		}
		if (tg_expired(deadline)) {
			tg_printf("hotplug: no interrupt brought %s within %u ms (events 0x%x, %lu "
				  "interrupts)", what, WAIT_MS, h->events, h->irqs_taken);
			return check(h, 0, "the port's interrupt");
		}
		tg_relax();
	}
	h->events &= (uint16_t)~want;
	return 1;
}

/* pcie_do_write_cmd + pcie_wait_cmd: one Slot Control command, completed
 * by the Command Completed interrupt (notifications are on) or, before
 * pciehp enabled them, by polling the bit. */
static int write_cmd(struct hp *h, uint16_t cmd, uint16_t mask, uint16_t also)
{
	uint16_t ctl = (uint16_t)((x_rd(h, PCI_EXP_SLTCTL) & ~mask) | (cmd & mask));

	x_wr(h, PCI_EXP_SLTCTL, ctl);
	if ((ctl & (PCI_EXP_SLTCTL_HPIE | PCI_EXP_SLTCTL_CCIE)) ==
	    (PCI_EXP_SLTCTL_HPIE | PCI_EXP_SLTCTL_CCIE))
		return wait_events(h, PCI_EXP_SLTSTA_CC | also, "Command Completed");
	if (!check(h, x_rd(h, PCI_EXP_SLTSTA) & PCI_EXP_SLTSTA_CC, "Command Completed (polled)"))
		return 0;
	x_wr(h, PCI_EXP_SLTSTA, PCI_EXP_SLTSTA_CC);
	return 1;
}

/* ---- finding and initializing the port ------------------------------------------- */

static int find_port(struct hp *h, const struct tg_boot_info *bi)
{
	struct vdev_drv_pci_function fns[MAX_FUNCTIONS];
	uint32_t n = bi->num_devices < TG_MAX_DEVICES ? bi->num_devices : TG_MAX_DEVICES, i;
	int found;

	for (i = 0; i < n && bi->devices[i].kind != TG_DEV_PCI_ECAM; i++)
		;
	h->pci = i < n ? tg_pci_open(&bi->devices[i], bi) : NULL;
	if (!h->pci) {
		tg_printf("hotplug: no PCI root");
		return -1;
	}
	found = vdev_drv_pci_enumerate(&tg_pci_io, h->pci, fns, MAX_FUNCTIONS);
	for (i = 0; found > 0 && i < (uint32_t)found && i < MAX_FUNCTIONS; i++) {
		const struct vdev_drv_pci_function *f = &fns[i];
		int exp;
		uint32_t flags, sltcap;

		tg_printf("pci " TG_PCI_FMT ": %04x:%04x class %06x", TG_PCI_ARGS(f->addr),
			  f->vendor_id, f->device_id, f->class_code);
		if (f->header_type != 1 || f->class_code != PCI_CLASS_BRIDGE_PCI_NORMAL || h->exp)
			continue;
		exp = vdev_drv_pci_find_capability(&tg_pci_io, h->pci, f->addr, PCI_CAP_ID_EXP, 0);
		if (exp <= 0)
			continue;
		flags = cfg_rd(h, f->addr, (uint32_t)exp + PCI_EXP_FLAGS, 2);
		sltcap = cfg_rd(h, f->addr, (uint32_t)exp + PCI_EXP_SLTCAP, 4);
		if (((flags & PCI_EXP_FLAGS_TYPE) >> 4) != PCI_EXP_TYPE_ROOT_PORT ||
		    !(flags & PCI_EXP_FLAGS_SLOT) || !(sltcap & PCI_EXP_SLTCAP_HPC))
			continue;
		h->port = f->addr;
		h->exp = (uint32_t)exp;
		h->slot = VDEV_PCI_ADDR(f->secondary_bus, 0, 0);
		tg_printf("hotplug: root port " TG_PCI_FMT ", slot %u on bus %u: capabilities 0x%x "
			  "(button %u, power controller %u, no command completed %u)",
			  TG_PCI_ARGS(f->addr), sltcap >> 19, f->secondary_bus, sltcap,
			  !!(sltcap & PCI_EXP_SLTCAP_ABP), !!(sltcap & PCI_EXP_SLTCAP_PCP),
			  !!(sltcap & PCI_EXP_SLTCAP_NCCS));
	}
	if (!h->exp) {
		tg_printf("hotplug: no PCIe root port with a hotplug slot (%d functions)", found);
		return -1;
	}
	return 0;
}

/* The bridge's memory window, as firmware programmed it (1 MiB granular). */
static int read_window(struct hp *h)
{
	uint64_t base = (uint64_t)(cfg_rd(h, h->port, PCI_MEMORY_BASE, 2) & 0xfff0u) << 16;
	uint64_t limit = (uint64_t)(cfg_rd(h, h->port, PCI_MEMORY_LIMIT, 2) & 0xfff0u) << 16 |
			 0xfffffu;

	if (!check(h, limit > base, "the port has a memory window"))
		return -1;
	h->win_base = base;
	h->win_size = limit - base + 1;
	tg_printf("hotplug: bridge memory window 0x%lx-0x%lx", base, limit);
	return 0;
}

/* portdrv: the port's MSI (vector TG_IRQ_VECTOR + TG_IRQ_INDEX_HOTPLUG), memory
 * and bus mastering. */
static int setup_msi(struct hp *h)
{
	int msi = vdev_drv_pci_find_capability(&tg_pci_io, h->pci, h->port, PCI_CAP_ID_MSI, 0);
	uint32_t m, flags, is64, maskable;

	if (!check(h, msi > 0, "the port has MSI"))
		return -1;
	m = (uint32_t)msi;
	flags = cfg_rd(h, h->port, m + PCI_MSI_FLAGS, 2);
	is64 = flags & PCI_MSI_FLAGS_64BIT;
	maskable = flags & PCI_MSI_FLAGS_MASKBIT;
	tg_irq_install();
	cfg_wr(h, h->port, m + PCI_MSI_ADDRESS_LO, 4, (uint32_t)TG_APIC_GPA);
	if (is64)
		cfg_wr(h, h->port, m + PCI_MSI_ADDRESS_HI, 4, 0);
	cfg_wr(h, h->port, m + (is64 ? PCI_MSI_DATA_64 : PCI_MSI_DATA_32), 2,
	       TG_IRQ_VECTOR + TG_IRQ_INDEX_HOTPLUG);
	if (maskable)
		cfg_wr(h, h->port, m + (is64 ? PCI_MSI_MASK_64 : PCI_MSI_MASK_32), 4, 1);
	cfg_wr(h, h->port, m + PCI_MSI_FLAGS, 2,
	       (flags & ~(uint32_t)PCI_MSI_FLAGS_QSIZE) | PCI_MSI_FLAGS_ENABLE);
	if (maskable)
		cfg_wr(h, h->port, m + (is64 ? PCI_MSI_MASK_64 : PCI_MSI_MASK_32), 4, 0);
	cfg_wr(h, h->port, PCI_COMMAND, 2,
	       cfg_rd(h, h->port, PCI_COMMAND, 2) | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	tg_printf("hotplug: port MSI %s-bit%s, vector 0x%x", is64 ? "64" : "32",
		  maskable ? ", maskable" : "", TG_IRQ_VECTOR + TG_IRQ_INDEX_HOTPLUG);
	return 0;
}

/* pcie_init and pcie_enable_notification. */
static int init_port(struct hp *h)
{
	/* portdrv leaves the hotplug interrupts off until pciehp is ready. */
	x_wr(h, PCI_EXP_SLTCTL, x_rd(h, PCI_EXP_SLTCTL) &
				     (uint16_t)~(PCI_EXP_SLTCTL_CCIE | PCI_EXP_SLTCTL_HPIE));
	x_wr(h, PCI_EXP_SLTSTA, EVENTS | PCI_EXP_SLTSTA_MRLSC);
	if (!check(h, slot_id(h) == ALL_ONES, "the slot is empty before the plug") ||
	    !check(h, !(x_rd(h, PCI_EXP_SLTSTA) & PCI_EXP_SLTSTA_PDS), "no presence yet"))
		return -1;
	/* With an attention button pciehp enables its interrupt, not presence
	 * detect's; Command Completed completes this very command. */
	if (!write_cmd(h, PCI_EXP_SLTCTL_ABPE | PCI_EXP_SLTCTL_DLLSCE | PCI_EXP_SLTCTL_CCIE |
			       PCI_EXP_SLTCTL_HPIE, NOTIFY_MASK, 0))
		return -1;
	tg_printf("hotplug: notifications on (slot control 0x%x), %lu interrupts so far",
		  x_rd(h, PCI_EXP_SLTCTL), h->irqs_taken);
	return 0;
}

/* ---- plug and unplug --------------------------------------------------------------- */

/* The host plugs; pciehp sees the button and presence, powers the slot on
 * (board_added), waits for the link, and finds the function. */
static int plug(struct hp *h)
{
	uint16_t sta;

	tg_hotplug_request(TG_HOTPLUG_PLUG);
	if (!wait_events(h, PCI_EXP_SLTSTA_ABP, "the attention button (plug)"))
		return -1;
	sta = x_rd(h, PCI_EXP_SLTSTA);
	tg_printf("hotplug: interrupt: attention button%s, slot %s",
		  (h->events & PCI_EXP_SLTSTA_PDC) ? ", presence detect changed" : "",
		  (sta & PCI_EXP_SLTSTA_PDS) ? "occupied" : "empty");
	h->events &= (uint16_t)~PCI_EXP_SLTSTA_PDC;
	if (!check(h, sta & PCI_EXP_SLTSTA_PDS, "presence after the plug") ||
	    !check(h, slot_id(h) == ALL_ONES, "no config access before the slot is powered"))
		return -1;
	/* Power on: Command Completed, and the link comes up (DLLSC). */
	if (!write_cmd(h, PCI_EXP_SLTCTL_PWR_ON, PCI_EXP_SLTCTL_PCC, PCI_EXP_SLTSTA_DLLSC))
		return -1;
	x_wr(h, PCI_EXP_LNKCTL, x_rd(h, PCI_EXP_LNKCTL) & (uint16_t)~PCI_EXP_LNKCTL_LD);
	if (!write_cmd(h, PCI_EXP_SLTCTL_PWR_IND_ON, PCI_EXP_SLTCTL_PIC, 0) ||
	    !check(h, link_up(h), "the link is up after power on") ||
	    !check(h, (slot_id(h) & 0xffffu) == VDEV_VIRTIO_PCI_VENDOR_ID,
		   "a virtio function in the slot"))
		return -1;
	tg_printf("hotplug: slot powered on, link up, " TG_PCI_FMT " is %04x:%04x; %lu "
		  "interrupts so far", TG_PCI_ARGS(h->slot), slot_id(h) & 0xffffu,
		  slot_id(h) >> 16, h->irqs_taken);
	return 0;
}

/* The host presses the button; pciehp takes the device down (@b: reset it)
 * and powers the slot off; the function must be gone. */
static int unplug(struct hp *h, struct tg_blk *b)
{
	tg_hotplug_request(TG_HOTPLUG_UNPLUG);
	if (!wait_events(h, PCI_EXP_SLTSTA_ABP, "the attention button (unplug)"))
		return -1;
	tg_printf("hotplug: interrupt: attention button, unplug (Linux would wait 5 s for a "
		  "second press here)");
	if (!write_cmd(h, PCI_EXP_SLTCTL_PWR_IND_BLINK | PCI_EXP_SLTCTL_ATTN_IND_OFF,
		       PCI_EXP_SLTCTL_PIC | PCI_EXP_SLTCTL_AIC, 0))
		return -1;
	if (b)
		tg_blk_close(b);
	/* Power off: Command Completed, the link goes down (DLLSC), and once the
	 * host took the function away presence clears (PDC). */
	if (!write_cmd(h, PCI_EXP_SLTCTL_PWR_OFF, PCI_EXP_SLTCTL_PCC, PCI_EXP_SLTSTA_DLLSC) ||
	    !wait_events(h, PCI_EXP_SLTSTA_PDC, "presence detect changed (unplug)") ||
	    !write_cmd(h, PCI_EXP_SLTCTL_PWR_IND_OFF, PCI_EXP_SLTCTL_PIC, 0))
		return -1;
	if (!check(h, slot_id(h) == ALL_ONES, "config reads of the slot give all ones") ||
	    !check(h, !link_up(h), "the link is down") ||
	    !check(h, !(x_rd(h, PCI_EXP_SLTSTA) & PCI_EXP_SLTSTA_PDS), "the slot is empty"))
		return -1;
	tg_printf("hotplug: slot powered off, " TG_PCI_FMT " reads all ones, slot empty; %lu "
		  "interrupts in all", TG_PCI_ARGS(h->slot), h->irqs_taken);
	return 0;
}

/* The function in the slot, found by enumeration, gets its BARs from the
 * bridge's window; returns its root context for the driver, or NULL. */
static struct tg_pci *assign_slot(struct hp *h)
{
	struct vdev_drv_pci_function fns[MAX_FUNCTIONS];
	int n = vdev_drv_pci_enumerate(&tg_pci_io, h->pci, fns, MAX_FUNCTIONS), found = 0;
	struct tg_pci *slot;

	for (int i = 0; i < n && i < (int)MAX_FUNCTIONS; i++)
		found |= fns[i].addr == h->slot && fns[i].vendor_id == VDEV_VIRTIO_PCI_VENDOR_ID &&
			 fns[i].device_id == VDEV_VIRTIO_PCI_DEVICE_ID_BASE + VIRTIO_ID_BLOCK;
	if (!check(h, found, "the enumeration finds the virtio-blk in the slot"))
		return NULL;
	tg_printf("pci " TG_PCI_FMT ": 1af4:%04x (virtio-blk), found by enumeration; %d functions "
		  "now", TG_PCI_ARGS(h->slot), VDEV_VIRTIO_PCI_DEVICE_ID_BASE + VIRTIO_ID_BLOCK, n);
	slot = tg_pci_open_bridge(h->pci, h->win_base, h->win_size);
	if (!slot || tg_pci_assign_bars(slot, h->slot, 0) < 0)
		return NULL;
	return slot;
}

/* TG_MODE_HOTPLUG: the verify workload on the disk with MSI-X interrupts
 * (BAR 4 moved once inside the window first). Returns the open disk or NULL. */
static struct tg_blk *use_disk(struct hp *h, struct tg_pci *slot, struct tg_boot_info *bi)
{
	struct tg_vdev dev = {.kind = TG_DEV_PCI_ECAM, .pci = slot, .addr = h->slot};
	struct tg_blk *b = tg_blk_open(&dev, 0);
	int r;

	if (!b)
		return NULL;
	bi->features_lo = (uint32_t)tg_blk_features(b);
	bi->features_hi = (uint32_t)(tg_blk_features(b) >> 32);
	r = tg_blk_verify(b, bi->seed, bi->verify_blocks, 1);
	bi->irqs_seen = tg_blk_irqs_seen();
	check(h, r == 0, "the verify workload on the hot-plugged disk");
	return b;
}

/* TG_HOSTILE_SLOT_POWER: power and link toggled under a plugged device. */
static void toggle_power(struct hp *h)
{
	uint32_t i;

	for (i = 0; i < POWER_TOGGLES && !h->failed; i++) {
		int ld = i % 5 == 4; /* now and then Link Disable instead of power */

		if (ld)
			x_wr(h, PCI_EXP_LNKCTL, x_rd(h, PCI_EXP_LNKCTL) | PCI_EXP_LNKCTL_LD);
		else
			write_cmd(h, PCI_EXP_SLTCTL_PWR_OFF, PCI_EXP_SLTCTL_PCC, 0);
		check(h, !link_up(h) && slot_id(h) == ALL_ONES, "the function is unreachable");
		if (ld)
			x_wr(h, PCI_EXP_LNKCTL, x_rd(h, PCI_EXP_LNKCTL) & (uint16_t)~PCI_EXP_LNKCTL_LD);
		else
			write_cmd(h, PCI_EXP_SLTCTL_PWR_ON, PCI_EXP_SLTCTL_PCC, 0);
		check(h, link_up(h) && (slot_id(h) & 0xffffu) == VDEV_VIRTIO_PCI_VENDOR_ID,
		      "the function is back with the link");
		/* Let the link-change events of both steps come and go. */
		isr(h);
		h->events = 0;
	}
	/* Every Slot Control bit at once (power off among them), then every
	 * Slot Status bit written back; then the notifications as before. */
	x_wr(h, PCI_EXP_SLTCTL, 0xffff);
	x_wr(h, PCI_EXP_SLTSTA, 0xffff);
	check(h, !link_up(h), "all of Slot Control powers the slot off");
	write_cmd(h, PCI_EXP_SLTCTL_ABPE | PCI_EXP_SLTCTL_DLLSCE | PCI_EXP_SLTCTL_CCIE |
			     PCI_EXP_SLTCTL_HPIE | PCI_EXP_SLTCTL_PWR_ON | PCI_EXP_SLTCTL_PWR_IND_ON |
			     PCI_EXP_SLTCTL_ATTN_IND_OFF,
		  0xffff, 0);
	check(h, link_up(h) && (slot_id(h) & 0xffffu) == VDEV_VIRTIO_PCI_VENDOR_ID,
	      "the function is back after the Slot Control storm");
	isr(h);
	h->events = 0;
	tg_printf("hostile: slot power and Link Disable toggled %u times with the disk plugged, "
		  "the function came and went with the link; %lu interrupts so far (over "
		  "virtio-pci)", i, h->irqs_taken);
}

int tg_hotplug(struct tg_boot_info *bi)
{
	struct hp h = {0};
	struct tg_blk *b = NULL;
	struct tg_pci *slot;

	if (find_port(&h, bi) < 0 || read_window(&h) < 0 || setup_msi(&h) < 0 ||
	    init_port(&h) < 0 || plug(&h) < 0)
		return -1;
	slot = assign_slot(&h);
	if (!slot)
		h.failed = 1;
	else if (bi->mode == TG_MODE_HOSTILE)
		toggle_power(&h);
	else if (!(b = use_disk(&h, slot, bi)))
		h.failed = 1;
	/* Unplug whatever happened, so that the host can check its side. */
	if (unplug(&h, b) < 0)
		return -1;
	tg_printf("hotplug: %s; %lu hotplug interrupts taken", h.failed ? "FAILED" : "passed",
		  h.irqs_taken);
	return h.failed ? -1 : 0;
}
