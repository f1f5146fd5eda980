/* SPDX-License-Identifier: MIT */
/*
 * PCIe hotplug: the root port and its control thread.
 *
 * Threads. The guest's request (TG_PORT_HOTPLUG) arrives on the vCPU thread,
 * which only records it and wakes the control thread: the hotplug ops are
 * the VMM's control plane, and an unplug ends in freeing the disk, which
 * must not happen on the thread that may be inside its registers. The
 * control thread calls hot_plug / hot_unplug, polls the eventfd each
 * returns, and when it fires reports, checks and (after an unplug) detaches
 * the disk from the I/O thread and frees it. The port removes the function
 * from the root itself, on the vCPU thread, at the end of the guest's config
 * write that powers the slot off; the root reports its BARs leaving, which
 * takes the disk's notify ioeventfd away (blkdev.c).
 *
 * The port's MSI callbacks run with the port's lock held (from the vCPU
 * thread's config cycles or from the control thread's hotplug calls), so
 * the vector state needs no lock of its own.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <virtio-dev/virtio-dev.h>

#include "hotplug.h"
#include "tg-abi.h"

#define SLOT_NUMBER 1u

enum { CMD_NONE, CMD_PLUG = TG_HOTPLUG_PLUG, CMD_UNPLUG = TG_HOTPLUG_UNPLUG };

struct kh_hotplug {
	struct kh_vm *vm;
	struct kh_pci *pci;
	vdev_pcie_port *port;
	const struct vdev_hotplug_bus_ops *ops;
	struct kh_msi_vec vec;   /* the port's one MSI vector */
	struct kh_blk *disk;     /* owned until it is freed after the unplug */
	struct kh_iothread *io;
	uint32_t addr;           /* the disk's function */

	pthread_t thread;
	int started;
	int req_fd, stop_fd;
	uint32_t request;        /* atomic: a guest request not yet taken, CMD_* */
	/* The control thread's own state. */
	uint32_t cmd;            /* the command in progress, CMD_* */
	int cmd_fd;              /* its completion eventfd, -1: none */
	uint32_t ranges_before;  /* MMIO bus ranges when the plug was asked for */
	uint32_t plugs, unplugs, refused; /* completed / refused commands */
	int check_failed;        /* a check after an unplug failed */
	int disk_errors;         /* the disk's report said so */
	char *disk_report;       /* the disk's report, taken before it was freed */
	size_t disk_report_len;
};

/* ---- the port's MSI ---------------------------------------------------- */

static int port_msi_signal(void *opaque, uint32_t vector, uint64_t address, uint32_t data)
{
	struct kh_hotplug *h = opaque;

	(void)vector; /* one vector */
	return kh_msi_vec_signal(h->vm, &h->vec, address, data);
}

static void port_msi_update(void *opaque, uint32_t vector, uint64_t address, uint32_t data,
			    uint32_t masked)
{
	struct kh_hotplug *h = opaque;

	(void)vector;
	kh_msi_vec_update(h->vm, &h->vec, address, data, masked);
}

static const struct vdev_pci_msi_ops port_msi_ops = {
	.struct_size = sizeof(struct vdev_pci_msi_ops),
	.signal = port_msi_signal,
	.update = port_msi_update,
};

int kh_hotplug_new(struct kh_vm *vm, struct kh_pci *pci, struct kh_hotplug **out)
{
	struct vdev_pcie_port_config pc = VDEV_PCIE_PORT_CONFIG_INIT;
	struct kh_hotplug *h = calloc(1, sizeof(*h));
	int r;

	if (!h)
		return -ENOMEM;
	h->vm = vm;
	h->pci = pci;
	h->ops = vdev_pcie_port_hotplug_ops();
	h->addr = KH_HOTPLUG_SLOT_ADDR;
	h->req_fd = h->stop_fd = h->cmd_fd = h->vec.fd = -1;
	*out = h;
	r = kh_msi_vec_init(vm, &h->vec);
	if (r < 0)
		goto fail;
	pc.addr = KH_HOTPLUG_PORT_ADDR;
	pc.root = kh_pci_root(pci);
	pc.secondary_bus = KH_HOTPLUG_BUS;
	pc.slot_number = SLOT_NUMBER;
	pc.mem_base = KH_HOTPLUG_WINDOW_BASE;
	pc.mem_size = KH_HOTPLUG_WINDOW_SIZE;
	pc.hotplug_key = VDEV_HOTPLUG_KEY_NONE;
	pc.msi_ops = &port_msi_ops;
	pc.msi_opaque = h;
	r = vdev_pcie_port_new(&pc, &h->port);
	if (r == 0)
		return 0;
fail:
	fprintf(stderr, "vdev-kvm-host: hotplug root port: %s\n", strerror(-r));
	return r;
}

/* ---- commands (control thread) ---------------------------------------- */

static void print_addr(const char *what, uint32_t a)
{
	printf("kvm-host: hotplug: %s %02x:%02x.%x\n", what, VDEV_PCI_ADDR_BUS(a),
	       VDEV_PCI_ADDR_DEV(a), VDEV_PCI_ADDR_FN(a));
}

static void start_command(struct kh_hotplug *h, uint32_t cmd)
{
	int r = -EINVAL, fd = -1;

	if (h->cmd != CMD_NONE) {
		r = -EBUSY;
	} else if (!h->disk) {
		r = -ENODEV; /* freed after an unplug: nothing to plug */
	} else if (cmd == CMD_PLUG) {
		h->ranges_before = vdev_bus_num_ranges(h->vm->mmio_bus);
		/* Printed first: once hot_plug runs, the guest may react (and
		 * print) before this thread gets on. */
		print_addr("plug requested (presence and the attention button shown to the "
			   "guest):",
			   h->addr);
		r = h->ops->hot_plug(h->port, h->addr, &fd);
	} else if (cmd == CMD_UNPLUG) {
		print_addr("unplug requested (attention button pressed):", h->addr);
		r = h->ops->hot_unplug(h->port, h->addr, &fd);
	}
	if (r < 0) {
		h->refused++;
		printf("kvm-host: hotplug: %s refused: %s\n", cmd == CMD_PLUG ? "plug" : "unplug",
		       strerror(-r));
		return;
	}
	h->cmd = cmd;
	h->cmd_fd = fd;
}

/*
 * The function left the root: check that it is gone from the root and its
 * BARs from the MMIO bus and from the ioeventfds, then let the I/O thread
 * go of the disk and free it (its report kept for the summary).
 */
static void finish_unplug(struct kh_hotplug *h)
{
	vdev_bus *mmio = h->vm->mmio_bus;
	uint32_t placed = 0, on_bus = 0, ranges = vdev_bus_num_ranges(mmio);
	int on_root = vdev_pci_root_find(kh_pci_root(h->pci), h->addr) != NULL;
	uint64_t notify = kh_blk_notify_ioeventfd(h->disk), len;
	FILE *f;

	for (uint32_t bar = 0; bar < VDEV_PCI_NUM_BARS; bar++) {
		uint64_t last, now = kh_blk_bar_base(h->disk, bar, &last);

		if (!last)
			continue;
		placed++;
		/* A lookup without side effects: -ENOENT iff nothing claims it. */
		if (now || vdev_bus_snapshot_device(mmio, last, NULL, 0, &len) != -ENOENT)
			on_bus++;
	}
	printf("kvm-host: hotplug: after the unplug: function %s the root, %u of its %u BAR "
	       "ranges on the MMIO bus (%u ranges there, %u before the plug), notify ioeventfd "
	       "%s\n", on_root ? "still on" : "gone from", on_bus, placed, ranges,
	       h->ranges_before, notify ? "still registered" : "removed");
	if (on_root || on_bus || !placed || ranges != h->ranges_before || notify)
		h->check_failed = 1;

	f = open_memstream(&h->disk_report, &h->disk_report_len);
	if (f) {
		h->disk_errors = kh_blk_report(h->disk, f);
		fclose(f);
	}
	kh_iothread_detach(h->io, h->disk);
	kh_blk_free(h->disk);
	h->disk = NULL;
	printf("kvm-host: hotplug: disk freed\n");
}

/* The command's eventfd fired: the guest completed it. */
static void complete_command(struct kh_hotplug *h)
{
	uint64_t n;

	if (read(h->cmd_fd, &n, sizeof(n)) != (ssize_t)sizeof(n))
		return; /* not yet */
	close(h->cmd_fd);
	h->cmd_fd = -1;
	if (h->cmd == CMD_PLUG) {
		h->plugs++;
		print_addr("plug completed (the guest powered the slot on, link up):", h->addr);
	} else {
		h->unplugs++;
		print_addr("unplug completed (the guest powered the slot off):", h->addr);
		finish_unplug(h);
	}
	h->cmd = CMD_NONE;
}

static void *control_main(void *arg)
{
	struct kh_hotplug *h = arg;

	for (;;) {
		struct pollfd pf[3] = {
			{.fd = h->stop_fd, .events = POLLIN},
			{.fd = h->req_fd, .events = POLLIN},
			{.fd = h->cmd_fd, .events = POLLIN},
		};
		uint64_t n;
		int r = poll(pf, 3, -1); /* cmd_fd -1 is skipped */

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			perror("vdev-kvm-host: hotplug: poll");
			return NULL;
		}
		if (pf[2].revents & POLLIN)
			complete_command(h);
		if ((pf[1].revents & POLLIN) && read(h->req_fd, &n, sizeof(n)) == sizeof(n)) {
			uint32_t cmd = __atomic_exchange_n(&h->request, CMD_NONE, __ATOMIC_ACQ_REL);

			if (cmd != CMD_NONE)
				start_command(h, cmd);
		}
		if (pf[0].revents & POLLIN) {
			/* The vCPU has stopped: a command the guest completed
			 * before it powered off has its eventfd written. */
			if (h->cmd_fd >= 0)
				complete_command(h);
			return NULL;
		}
	}
}

int kh_hotplug_start(struct kh_hotplug *h, struct kh_blk *disk, struct kh_iothread *io)
{
	int r;

	h->disk = disk;
	h->io = io;
	h->req_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	h->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (h->req_fd < 0 || h->stop_fd < 0)
		return -errno;
	r = -pthread_create(&h->thread, NULL, control_main, h);
	h->started = r == 0;
	if (h->started)
		pthread_setname_np(h->thread, "kh-hotplug");
	return r;
}

int kh_hotplug_request(void *opaque, uint32_t op)
{
	struct kh_hotplug *h = opaque;
	uint32_t none = CMD_NONE;
	uint64_t one = 1;

	if (op != TG_HOTPLUG_PLUG && op != TG_HOTPLUG_UNPLUG)
		return -EINVAL;
	/* One request at a time: the guest waits for the port's answer. */
	if (!__atomic_compare_exchange_n(&h->request, &none, op, 0, __ATOMIC_ACQ_REL,
					 __ATOMIC_ACQUIRE))
		return -EBUSY;
	return write(h->req_fd, &one, sizeof(one)) == (ssize_t)sizeof(one) ? 0 : -errno;
}

void kh_hotplug_stop(struct kh_hotplug *h)
{
	uint64_t one = 1;

	if (!h || !h->started)
		return;
	if (write(h->stop_fd, &one, sizeof(one)) != (ssize_t)sizeof(one))
		perror("vdev-kvm-host: stopping the hotplug thread");
	pthread_join(h->thread, NULL);
	h->started = 0;
}

void kh_hotplug_cycles(const struct kh_hotplug *h, uint32_t *plugs, uint32_t *unplugs)
{
	if (plugs)
		*plugs = h->plugs;
	if (unplugs)
		*unplugs = h->unplugs;
}

int kh_hotplug_report(struct kh_hotplug *h, FILE *out)
{
	uint16_t sta = 0, ctl = 0;

	if (h->disk)
		h->disk_errors = kh_blk_report(h->disk, out);
	else if (h->disk_report)
		fwrite(h->disk_report, 1, h->disk_report_len, out);
	vdev_pcie_port_slot_state(h->port, &sta, &ctl);
	fprintf(out, "kvm-host: hotplug: port 00:%02x.0: %u plugs and %u unplugs completed, %u "
		"requests refused; slot status 0x%04x, control 0x%04x\n",
		VDEV_PCI_ADDR_DEV(KH_HOTPLUG_PORT_ADDR), h->plugs, h->unplugs, h->refused, sta,
		ctl);
	fprintf(out, "kvm-host: hotplug: port MSI: %" PRIu64 " interrupts by irqfd, %" PRIu64
		" by KVM_SIGNAL_MSI, %" PRIu64 " route updates, %" PRIu64 " refused by KVM\n",
		h->vec.irqfd, h->vec.direct, h->vec.routes, h->vec.route_errors);
	return h->disk_errors || h->check_failed;
}

void kh_hotplug_free(struct kh_hotplug *h)
{
	if (!h)
		return;
	kh_hotplug_stop(h);
	if (h->cmd_fd >= 0)
		close(h->cmd_fd);
	kh_blk_free(h->disk);
	vdev_pcie_port_free(h->port);
	kh_msi_vec_close(&h->vec);
	if (h->req_fd >= 0)
		close(h->req_fd);
	if (h->stop_fd >= 0)
		close(h->stop_fd);
	free(h->disk_report);
	free(h);
}
