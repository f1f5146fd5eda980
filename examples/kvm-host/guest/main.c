/* SPDX-License-Identifier: MIT */
/*
 * The test guest: check the boot info, list the devices (enumerating a PCI
 * root), drive the first virtio-blk in the mode the host asked for, report
 * the verdict, power off.
 */
#include <stddef.h>
#include <stdint.h>

#include <linux/virtio_ids.h>

#include "tg.h"

static const char *mode_name(uint32_t mode)
{
	switch (mode) {
	case TG_MODE_VERIFY:
		return "verify";
	case TG_MODE_BENCH:
		return "bench";
	case TG_MODE_IRQ:
		return "irq";
	case TG_MODE_HOSTILE:
		return "hostile";
	case TG_MODE_FIRST_IO:
		return "first-io";
	case TG_MODE_HOTPLUG:
		return "hotplug";
	default:
		return "unknown";
	}
}

static void TG_NORETURN finish(int ok)
{
	tg_printf("result: %s", ok ? "PASS" : "FAIL");
	tg_set_status(ok ? TG_STATUS_PASS : TG_STATUS_FAIL);
	tg_power_off(ok ? 0 : 1);
}

/*
 * Find the first virtio-blk, in the boot info's order: a virtio-mmio block,
 * or the first virtio-blk function behind a PCI root (which gets its BARs
 * here). Unless @quiet, list everything on the way. Returns 0 or -1.
 */
static int find_blk(const struct tg_boot_info *bi, int quiet, struct tg_vdev *blk)
{
	uint32_t i, n = bi->num_devices < TG_MAX_DEVICES ? bi->num_devices : TG_MAX_DEVICES;
	int found = 0;

	for (i = 0; i < n && !(found && quiet); i++) {
		const struct tg_device *d = &bi->devices[i];
		struct tg_vdev v = {.kind = d->kind, .base = d->base};
		uint32_t id = 0;
		int r;

		if (d->kind == TG_DEV_PCI_ECAM) {
			struct tg_pci *p = tg_pci_open(d, bi);

			if (!p || tg_pci_find_blk(p, quiet, &v) < 0)
				continue;
		} else if (d->kind != TG_DEV_VIRTIO_MMIO) {
			if (!quiet)
				tg_printf("device %u: kind %u at 0x%lx, not driven here", i,
					  d->kind, d->base);
			continue;
		} else if (!quiet) {
			/* (Quiet: tg_blk_open checks it.) */
			r = tg_probe(d, &id);
			if (r < 0) {
				tg_printf("device %u: virtio-mmio at 0x%lx: no device (%d)", i,
					  d->base, r);
				continue;
			}
			tg_printf("device %u: virtio-mmio at 0x%lx, device id %u%s, gsi %u", i,
				  d->base, id, id == VIRTIO_ID_BLOCK ? " (virtio-blk)" : "",
				  d->gsi);
			if (id != VIRTIO_ID_BLOCK)
				continue;
		}
		if (!found)
			*blk = v;
		found = 1;
	}
	return found ? 0 : -1;
}

/* TG_MODE_FIRST_IO: nothing before the read that is not needed for it. */
static void TG_NORETURN first_io(struct tg_boot_info *bi)
{
	struct tg_vdev dev;
	struct tg_blk *b = find_blk(bi, 1, &dev) == 0 ? tg_blk_open(&dev, 1) : NULL;
	int r = b ? tg_blk_first_io(b) : -1;

	if (r == 0)
		tg_mark(0);
	tg_printf("first-io: %s", r == 0 ? "read 4 KiB from device 0" : "no read completed");
	if (b) {
		bi->features_lo = (uint32_t)tg_blk_features(b);
		bi->features_hi = (uint32_t)(tg_blk_features(b) >> 32);
		tg_blk_close(b);
	}
	finish(r == 0);
}

void tg_main(struct tg_boot_info *bi)
{
	struct tg_vdev dev;
	struct tg_blk *b;
	int r = -1;

	if (bi->magic != TG_BOOT_MAGIC || bi->version != TG_BOOT_VERSION) {
		/* Not ours: no heap to trust, so say it and stop. */
		tg_put_line("bad boot info (magic or version)");
		tg_set_status(TG_STATUS_FAIL);
		tg_power_off(2);
	}
	tg_lib_init(bi);
	if (bi->mode == TG_MODE_FIRST_IO)
		first_io(bi);

	tg_printf("boot: mode %s, %lu MiB RAM, heap 0x%lx..0x%lx, TSC %lu kHz, %u devices",
		  mode_name(bi->mode), bi->ram_size >> 20, bi->heap_start, bi->heap_end,
		  bi->tsc_khz, bi->num_devices);
	if (bi->mode == TG_MODE_HOTPLUG ||
	    (bi->mode == TG_MODE_HOSTILE && bi->hostile == TG_HOSTILE_SLOT_POWER))
		finish(tg_hotplug(bi) == 0);
	if (find_blk(bi, 0, &dev) < 0) {
		tg_printf("no virtio-blk device");
		finish(0);
	}
	if (bi->mode == TG_MODE_HOSTILE)
		finish(tg_hostile(&dev, bi) == 0);

	b = tg_blk_open(&dev, 0);
	if (!b)
		finish(0);
	bi->features_lo = (uint32_t)tg_blk_features(b);
	bi->features_hi = (uint32_t)(tg_blk_features(b) >> 32);
	switch (bi->mode) {
	case TG_MODE_VERIFY:
		r = tg_blk_verify(b, bi->seed, bi->verify_blocks, 0);
		break;
	case TG_MODE_IRQ:
		r = tg_blk_verify(b, bi->seed, bi->verify_blocks, 1);
		bi->irqs_seen = tg_blk_irqs_seen();
		break;
	case TG_MODE_BENCH:
		r = tg_blk_bench(b, bi);
		break;
	default:
		tg_printf("unknown mode %u", bi->mode);
		break;
	}
	tg_blk_close(b);
	finish(r == 0);
}
