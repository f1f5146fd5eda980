/* SPDX-License-Identifier: MIT */
/*
 * TG_MODE_HOSTILE: a guest that breaks the rules on purpose. The library's
 * driver half refuses to do any of this, so these requests and register
 * sequences are written by hand: registers with tg_mmio_write (the
 * virtio-mmio block, or virtio-pci's common configuration and notify
 * address, through one table of the registers used), the split ring as
 * plain structs in guest memory. The device passes when it refuses (a
 * register that does not take, DEVICE_NEEDS_RESET, a request completed with
 * an error), fails when it goes along, and every wait is bounded. Each case
 * ends with a positive control: after a reset the same device must serve a
 * well-formed request, so a device that refuses everything cannot pass.
 */
#include <stdint.h>
#include <string.h>

#include <linux/pci_regs.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>
#include <linux/virtio_pci.h>
#include <linux/virtio_ring.h>

#include <virtio-dev/virtio-pci.h>

#include "tg.h"

#define RAW_QUEUE_SIZE 8u
#define WAIT_MS 3000u      /* for the device to react to a request */
#define RESET_TRIES 100000u
#define GROW_TABLE 32768u  /* the longest indirect table a device must take */
#define GROW_FIRST 300u    /* first chain length tried: above seg_max + 2 (256) */
#define GROW_STEP 200u     /* each try: GROW_STEP longer; the chain flips by half that */
#define GROW_HOLD_MS 500u  /* the request stays available this long after NEEDS_RESET */

/* The registers used, whatever the transport calls them. */
enum raw_reg {
	R_STATUS,
	R_DRIVER_FEATURES_SEL,
	R_DRIVER_FEATURES,
	R_QUEUE_SEL,
	R_QUEUE_NUM_MAX,
	R_QUEUE_NUM,
	R_QUEUE_READY,
	R_QUEUE_DESC_LOW,
	R_QUEUE_DESC_HIGH,
	R_QUEUE_AVAIL_LOW,
	R_QUEUE_AVAIL_HIGH,
	R_QUEUE_USED_LOW,
	R_QUEUE_USED_HIGH,
	R_NUM
};

struct raw_reg_at {
	uint32_t offset;
	uint32_t width;
};

static const struct raw_reg_at mmio_regs[R_NUM] = {
	[R_STATUS] = {VIRTIO_MMIO_STATUS, 4},
	[R_DRIVER_FEATURES_SEL] = {VIRTIO_MMIO_DRIVER_FEATURES_SEL, 4},
	[R_DRIVER_FEATURES] = {VIRTIO_MMIO_DRIVER_FEATURES, 4},
	[R_QUEUE_SEL] = {VIRTIO_MMIO_QUEUE_SEL, 4},
	[R_QUEUE_NUM_MAX] = {VIRTIO_MMIO_QUEUE_NUM_MAX, 4},
	[R_QUEUE_NUM] = {VIRTIO_MMIO_QUEUE_NUM, 4},
	[R_QUEUE_READY] = {VIRTIO_MMIO_QUEUE_READY, 4},
	[R_QUEUE_DESC_LOW] = {VIRTIO_MMIO_QUEUE_DESC_LOW, 4},
	[R_QUEUE_DESC_HIGH] = {VIRTIO_MMIO_QUEUE_DESC_HIGH, 4},
	[R_QUEUE_AVAIL_LOW] = {VIRTIO_MMIO_QUEUE_AVAIL_LOW, 4},
	[R_QUEUE_AVAIL_HIGH] = {VIRTIO_MMIO_QUEUE_AVAIL_HIGH, 4},
	[R_QUEUE_USED_LOW] = {VIRTIO_MMIO_QUEUE_USED_LOW, 4},
	[R_QUEUE_USED_HIGH] = {VIRTIO_MMIO_QUEUE_USED_HIGH, 4},
};

/* virtio-pci's common configuration. queue_size holds the maximum until the
 * driver writes it (after a reset: the maximum again), and reads back. */
static const struct raw_reg_at pci_regs[R_NUM] = {
	[R_STATUS] = {VIRTIO_PCI_COMMON_STATUS, 1},
	[R_DRIVER_FEATURES_SEL] = {VIRTIO_PCI_COMMON_GFSELECT, 4},
	[R_DRIVER_FEATURES] = {VIRTIO_PCI_COMMON_GF, 4},
	[R_QUEUE_SEL] = {VIRTIO_PCI_COMMON_Q_SELECT, 2},
	[R_QUEUE_NUM_MAX] = {VIRTIO_PCI_COMMON_Q_SIZE, 2},
	[R_QUEUE_NUM] = {VIRTIO_PCI_COMMON_Q_SIZE, 2},
	[R_QUEUE_READY] = {VIRTIO_PCI_COMMON_Q_ENABLE, 2},
	[R_QUEUE_DESC_LOW] = {VIRTIO_PCI_COMMON_Q_DESCLO, 4},
	[R_QUEUE_DESC_HIGH] = {VIRTIO_PCI_COMMON_Q_DESCHI, 4},
	[R_QUEUE_AVAIL_LOW] = {VIRTIO_PCI_COMMON_Q_AVAILLO, 4},
	[R_QUEUE_AVAIL_HIGH] = {VIRTIO_PCI_COMMON_Q_AVAILHI, 4},
	[R_QUEUE_USED_LOW] = {VIRTIO_PCI_COMMON_Q_USEDLO, 4},
	[R_QUEUE_USED_HIGH] = {VIRTIO_PCI_COMMON_Q_USEDHI, 4},
};

/* One hand-made split ring and one request, in four pages of guest memory. */
struct raw {
	uint64_t base;        /* register block / common configuration */
	const struct raw_reg_at *regs;
	int pci;              /* virtio-pci: queue_size reads back */
	uint64_t notify;      /* queue 0's notify address */
	uint32_t notify_width;
	uint32_t size;        /* queue size in use */
	uint8_t *mem;         /* the four pages */
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	struct virtio_blk_outhdr *hdr;
	uint8_t *status;
	uint8_t *data;        /* 4 KiB */
};

static uint32_t rd(const struct raw *r, enum raw_reg reg)
{
	return (uint32_t)tg_mmio_read(r->base + r->regs[reg].offset, r->regs[reg].width);
}

static void wr(const struct raw *r, enum raw_reg reg, uint32_t v)
{
	tg_mmio_write(r->base + r->regs[reg].offset, r->regs[reg].width, v);
}

static uint64_t gpa(const void *p)
{
	return (uintptr_t)p;
}

/* Write 0 to Status, wait until the device reads back 0, then clear our
 * rings (not before: a device still running would see them go back). */
static int raw_reset(struct raw *r)
{
	uint32_t i;

	wr(r, R_STATUS, 0);
	for (i = 0; i < RESET_TRIES; i++) {
		if (rd(r, R_STATUS) == 0) {
			memset(r->mem, 0, 4 * TG_BLOCK);
			return 0;
		}
	}
	tg_printf("hostile: the device never finished its reset");
	return -1;
}

/* ACKNOWLEDGE, DRIVER, VERSION_1 and @extra (bits 0-31), FEATURES_OK; 0 when
 * accepted. */
static int raw_features(struct raw *r, uint32_t extra)
{
	wr(r, R_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	wr(r, R_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	wr(r, R_DRIVER_FEATURES_SEL, 0);
	wr(r, R_DRIVER_FEATURES, extra);
	wr(r, R_DRIVER_FEATURES_SEL, 1);
	wr(r, R_DRIVER_FEATURES, 1u << (VIRTIO_F_VERSION_1 - 32));
	wr(r, R_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
			VIRTIO_CONFIG_S_FEATURES_OK);
	if (rd(r, R_STATUS) & VIRTIO_CONFIG_S_FEATURES_OK)
		return 0;
	tg_printf("hostile: the device refused VERSION_1 features (+0x%x)", extra);
	return -1;
}

/* Program queue 0 with @num entries and our ring, enable it; returns
 * whether it reads back enabled. */
static uint32_t raw_queue(struct raw *r, uint32_t num)
{
	wr(r, R_QUEUE_SEL, 0);
	wr(r, R_QUEUE_NUM, num);
	wr(r, R_QUEUE_DESC_LOW, (uint32_t)gpa(r->desc));
	wr(r, R_QUEUE_DESC_HIGH, (uint32_t)(gpa(r->desc) >> 32));
	wr(r, R_QUEUE_AVAIL_LOW, (uint32_t)gpa(r->avail));
	wr(r, R_QUEUE_AVAIL_HIGH, (uint32_t)(gpa(r->avail) >> 32));
	wr(r, R_QUEUE_USED_LOW, (uint32_t)gpa(r->used));
	wr(r, R_QUEUE_USED_HIGH, (uint32_t)(gpa(r->used) >> 32));
	wr(r, R_QUEUE_READY, 1);
	return rd(r, R_QUEUE_READY);
}

static uint32_t driver_ok(struct raw *r)
{
	wr(r, R_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
			VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
	return rd(r, R_STATUS);
}

/* Reset and bring the device up by the rules with our ring on queue 0 and
 * features VERSION_1 + @extra. */
static int raw_start(struct raw *r, uint32_t extra)
{
	uint32_t st;

	if (raw_reset(r) < 0 || raw_features(r, extra) < 0)
		return -1;
	if (raw_queue(r, r->size) != 1) {
		tg_printf("hostile: the device refused a well-formed queue of %u", r->size);
		return -1;
	}
	st = driver_ok(r);
	if (!(st & VIRTIO_CONFIG_S_DRIVER_OK) || (st & VIRTIO_CONFIG_S_NEEDS_RESET)) {
		tg_printf("hostile: DRIVER_OK refused (status 0x%x)", st);
		return -1;
	}
	return 0;
}

static void set_desc(struct raw *r, uint32_t i, uint64_t addr, uint32_t len, uint16_t flags,
		     uint16_t next)
{
	r->desc[i].addr = addr;
	r->desc[i].len = len;
	r->desc[i].flags = flags;
	r->desc[i].next = next;
}

/* A 4 KiB read of sector 0: header, data, status in descriptors 0, 1, 2. */
static void read_request(struct raw *r)
{
	r->hdr->type = VIRTIO_BLK_T_IN;
	r->hdr->sector = 0;
	*r->status = 0xff;
	set_desc(r, 0, gpa(r->hdr), sizeof(*r->hdr), VRING_DESC_F_NEXT, 1);
	set_desc(r, 1, gpa(r->data), TG_BLOCK, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 2);
	set_desc(r, 2, gpa(r->status), 1, VRING_DESC_F_WRITE, 0);
}

/* Make the chain at descriptor 0 available and kick. */
static void post(struct raw *r)
{
	uint16_t idx = r->avail->idx;

	r->avail->ring[idx % r->size] = 0;
	__atomic_store_n(&r->avail->idx, (uint16_t)(idx + 1), __ATOMIC_RELEASE);
	tg_mmio_write(r->notify, r->notify_width, 0); /* ordered after the ring */
}

/*
 * After a bad request: the device must set DEVICE_NEEDS_RESET or complete it
 * with an error status. Completing it with OK, or doing nothing at all,
 * fails. Returns 0 when the device behaved.
 */
static int expect_refusal(struct raw *r, const char *what)
{
	uint64_t deadline = tg_deadline_ms(WAIT_MS);

	for (;;) {
		uint16_t used = __atomic_load_n(&r->used->idx, __ATOMIC_ACQUIRE);
		uint32_t st = rd(r, R_STATUS);

		if (used && *r->status == VIRTIO_BLK_S_OK) {
			tg_printf("hostile: %s: FAIL, the device completed it with OK", what);
			return -1;
		}
		if (used) {
			tg_printf("hostile: %s: completed with error status %u (device status "
				  "0x%x)", what, *r->status, st);
			return 0;
		}
		if (st & VIRTIO_CONFIG_S_NEEDS_RESET) {
			tg_printf("hostile: %s: refused, device status 0x%x (NEEDS_RESET), "
				  "request not completed", what, st);
			return 0;
		}
		if (tg_expired(deadline)) {
			tg_printf("hostile: %s: FAIL, no reaction within %u ms (status 0x%x)", what,
				  WAIT_MS, st);
			return -1;
		}
		tg_relax();
	}
}

/* The positive control: a well-formed read after a reset. */
static int control(struct raw *r)
{
	uint64_t deadline;

	if (raw_start(r, 0) < 0)
		return -1;
	read_request(r);
	post(r);
	deadline = tg_deadline_ms(WAIT_MS);
	while (!__atomic_load_n(&r->used->idx, __ATOMIC_ACQUIRE)) {
		if (tg_expired(deadline)) {
			tg_printf("hostile: control: FAIL, a well-formed read was not answered "
				  "(status 0x%x)", rd(r, R_STATUS));
			return -1;
		}
		tg_relax();
	}
	if (*r->status != VIRTIO_BLK_S_OK) {
		tg_printf("hostile: control: FAIL, a well-formed read got status %u", *r->status);
		return -1;
	}
	tg_printf("hostile: control: after a reset a well-formed read succeeds");
	return 0;
}

/* Descriptors pointing outside guest RAM: at its end, across it, wrapping
 * the address space. */
static int bad_desc(struct raw *r, uint64_t ram_size)
{
	const char *what[3] = {"data buffer just past the end of RAM",
			       "data buffer across the end of RAM",
			       "data buffer wrapping the address space"};
	const uint64_t addr[3] = {ram_size, ram_size - 2048, 0xfffffffffffff000ull};
	int ret = 0;
	uint32_t i;

	for (i = 0; i < 3; i++) {
		if (raw_start(r, 0) < 0)
			return -1;
		read_request(r);
		r->desc[1].addr = addr[i];
		r->desc[1].len = 2 * TG_BLOCK;
		post(r);
		ret |= expect_refusal(r, what[i]);
	}
	return ret;
}

/* Chains that never end: a two-descriptor cycle, a descriptor that is its
 * own successor. */
static int loop(struct raw *r)
{
	int ret = 0;

	if (raw_start(r, 0) < 0)
		return -1;
	read_request(r);
	r->desc[2].flags |= VRING_DESC_F_NEXT;
	r->desc[2].next = 1; /* 0 -> 1 -> 2 -> 1 -> 2 ... */
	post(r);
	ret |= expect_refusal(r, "descriptor chain 1 -> 2 -> 1");

	if (raw_start(r, 0) < 0)
		return -1;
	read_request(r);
	r->desc[1].next = 1; /* 0 -> 1 -> 1 ... */
	post(r);
	ret |= expect_refusal(r, "descriptor 1 chained to itself");
	return ret;
}

/*
 * A chain that changes length while the device takes it: an indirect table
 * whose descriptor len - 1 keeps flipping between ending the chain (len
 * buffers) and going on (len + GROW_STEP / 2). Both are longer than a device
 * takes in one go (seg_max), so it may walk the chain twice, once to learn
 * its length and once to take it; each try is longer than any before, so
 * that the device's storage for long chains must grow again. The device may
 * refuse the request with an error status (then the next try) or see the
 * chain grow and set DEVICE_NEEDS_RESET; completing it with OK fails. After
 * NEEDS_RESET the guest keeps the request available, without a reset, for
 * GROW_HOLD_MS between marks 0 and 1: the host checks that its I/O thread
 * slept meanwhile instead of spinning on the dead ring.
 */
static int grow_race(struct raw *r)
{
	struct vring_desc *t = tg_alloc(GROW_TABLE * sizeof(*t), TG_BLOCK);
	uint32_t len, i, n, st = 0;
	uint64_t hold;

	if (!t) {
		tg_printf("hostile: out of heap");
		return -1;
	}
	for (len = GROW_FIRST; len + GROW_STEP / 2 <= GROW_TABLE; len += GROW_STEP) {
		uint32_t end = len + GROW_STEP / 2;
		volatile uint16_t *flip = &t[len - 1].flags;
		uint64_t deadline;

		if (raw_start(r, 1u << VIRTIO_RING_F_INDIRECT_DESC) < 0)
			return -1;
		r->hdr->type = VIRTIO_BLK_T_IN;
		r->hdr->sector = 0;
		t[0].addr = gpa(r->hdr);
		t[0].len = sizeof(*r->hdr);
		t[0].flags = VRING_DESC_F_NEXT;
		t[0].next = 1;
		for (i = 1; i < end; i++) { /* 8 bytes each; the last byte is a status */
			t[i].addr = gpa(r->data) + (i % (TG_BLOCK / 8)) * 8;
			t[i].len = 8;
			t[i].flags = VRING_DESC_F_WRITE | (i + 1 < end ? VRING_DESC_F_NEXT : 0);
			t[i].next = (uint16_t)(i + 1);
		}
		memset(r->data, 0xff, TG_BLOCK); /* no status byte reads OK yet */
		set_desc(r, 0, gpa(t), end * sizeof(*t), VRING_DESC_F_INDIRECT, 0);
		post(r);
		deadline = tg_deadline_ms(WAIT_MS);
		for (n = 1; !__atomic_load_n(&r->used->idx, __ATOMIC_ACQUIRE); n++) {
			/* Each state as long as the other: a walk sees either. */
			*flip = VRING_DESC_F_WRITE | (n & 1 ? 0 : VRING_DESC_F_NEXT);
			if (n % (1u << 20)) /* a register read exits: mostly flip */
				continue;
			st = rd(r, R_STATUS);
			if (st & VIRTIO_CONFIG_S_NEEDS_RESET)
				break;
			if (tg_expired(deadline)) {
				tg_printf("hostile: chain of %u or %u buffers: FAIL, no reaction "
					  "within %u ms (status 0x%x)", len, end, WAIT_MS, st);
				return -1;
			}
		}
		if (st & VIRTIO_CONFIG_S_NEEDS_RESET)
			break;
		for (i = 0; i < TG_BLOCK / 8; i++) {
			if (r->data[i * 8 + 7] == VIRTIO_BLK_S_OK) {
				tg_printf("hostile: chain of %u or %u buffers: FAIL, completed "
					  "with OK", len, end);
				return -1;
			}
		}
	}
	if (!(st & VIRTIO_CONFIG_S_NEEDS_RESET)) {
		tg_printf("hostile: the device refused every growing chain with an error status "
			  "(up to %u buffers); it never saw one grow", len - GROW_STEP);
		return 0;
	}
	tg_printf("hostile: chain of %u or %u buffers: the device saw it grow, status 0x%x "
		  "(NEEDS_RESET); keeping it available for %u ms", len, len + GROW_STEP / 2, st,
		  GROW_HOLD_MS);
	hold = tg_deadline_ms(GROW_HOLD_MS);
	tg_mark(0);
	while (!tg_expired(hold))
		tg_relax();
	tg_mark(1);
	return 0;
}

/*
 * Queue size 0 (and other sizes the device cannot take), then enable. The
 * device must not run the queue at that size: the enable does not take, or
 * (virtio-pci, where the size reads back) the size write did not.
 */
static int queue_size0(struct raw *r)
{
	uint32_t max, i, sizes[3];
	int ret = 0;

	if (raw_reset(r) < 0 || raw_features(r, 0) < 0)
		return -1;
	wr(r, R_QUEUE_SEL, 0);
	max = rd(r, R_QUEUE_NUM_MAX);
	sizes[0] = 0;
	sizes[1] = 3;       /* not a power of two: invalid for a split ring */
	sizes[2] = max * 2; /* above the maximum */
	for (i = 0; i < 3; i++) {
		uint32_t ready, num;

		if (i && (raw_reset(r) < 0 || raw_features(r, 0) < 0))
			return -1;
		ready = raw_queue(r, sizes[i]);
		num = r->pci ? rd(r, R_QUEUE_NUM) : sizes[i];
		tg_printf("hostile: queue size %u (max %u), enable: enabled %u, size %s %u%s",
			  sizes[i], max, ready, r->pci ? "reads" : "written", num,
			  ready && num == sizes[i] ? ", FAIL: accepted" : ", refused");
		if (ready && num == sizes[i])
			ret = -1;
	}
	return ret;
}

/* DRIVER_OK before FEATURES_OK; a queue set up after DRIVER_OK. */
static int order(struct raw *r)
{
	uint32_t st, ready;
	int ret = 0;

	if (raw_reset(r) < 0)
		return -1;
	wr(r, R_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	wr(r, R_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	wr(r, R_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
			VIRTIO_CONFIG_S_DRIVER_OK);
	st = rd(r, R_STATUS);
	if ((st & VIRTIO_CONFIG_S_DRIVER_OK) && !(st & VIRTIO_CONFIG_S_NEEDS_RESET)) {
		tg_printf("hostile: DRIVER_OK before FEATURES_OK: FAIL, accepted (status 0x%x)",
			  st);
		ret = -1;
	} else {
		tg_printf("hostile: DRIVER_OK before FEATURES_OK: refused (status 0x%x)", st);
	}

	if (raw_reset(r) < 0 || raw_features(r, 0) < 0)
		return -1;
	st = driver_ok(r); /* no queue yet: allowed, the device just has none */
	ready = raw_queue(r, r->size);
	tg_printf("hostile: queue set up after DRIVER_OK (status 0x%x): enabled %u%s", st, ready,
		  ready ? ", FAIL: accepted" : ", refused");
	if (ready)
		ret = -1;
	return ret;
}

/*
 * virtio-pci: a BAR rewritten, with memory decode on, onto another BAR of
 * the function, onto the ECAM window, into guest RAM below the BAR window.
 * The root must refuse each write as a whole: the BAR keeps its address and
 * the device keeps answering there (the common config reads as a device
 * after a reset does, not as all ones).
 */
static int bar_overlap(struct raw *r, const struct tg_vdev *dev)
{
	/* BAR i of bar_of, and where to: place[] (BAR 1, BAR 4, ECAM, RAM). */
	static const uint32_t bar_of[2] = {VDEV_VIRTIO_PCI_BAR_MSIX, VDEV_VIRTIO_PCI_BAR_MODERN};
	static const struct {
		const char *what;
		uint32_t bar, to;
	} tries[] = {
		{"BAR 4 onto BAR 1", 1, 0},
		{"BAR 1 onto BAR 4", 0, 1},
		{"BAR 4 onto the ECAM window", 1, 2},
		{"BAR 4 into guest RAM", 1, 3},
	};
	uint64_t place[4] = {0, 0, TG_ECAM_BASE, TG_HEAP_GPA};
	uint32_t i;
	int ret = 0;

	if (dev->kind != TG_DEV_PCI_ECAM) {
		tg_printf("hostile: bar-overlap needs a virtio-pci device");
		return -1;
	}
	for (i = 0; i < 2; i++)
		place[i] = vdev_drv_pci_bar_address(&tg_pci_io, dev->pci, dev->addr, bar_of[i]);
	if (raw_reset(r) < 0)
		return -1;
	for (i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
		uint32_t bar = bar_of[tries[i].bar];
		uint32_t reg = PCI_BASE_ADDRESS_0 + 4 * bar;
		uint32_t old = tg_pci_io.cfg_read(dev->pci, dev->addr, reg, 4), now, st;
		uint64_t addr;

		tg_pci_io.cfg_write(dev->pci, dev->addr, reg, 4, (uint32_t)place[tries[i].to] |
				    (old & ~PCI_BASE_ADDRESS_MEM_MASK));
		now = tg_pci_io.cfg_read(dev->pci, dev->addr, reg, 4);
		addr = vdev_drv_pci_bar_address(&tg_pci_io, dev->pci, dev->addr, bar);
		st = rd(r, R_STATUS);
		if (now == old && addr == place[tries[i].bar] && st == 0) {
			tg_printf("hostile: %s (0x%lx): refused, BAR %u still at 0x%lx",
				  tries[i].what, place[tries[i].to], bar, addr);
			continue;
		}
		tg_printf("hostile: %s (0x%lx): FAIL, BAR %u reads 0x%x (was 0x%x), device status "
			  "0x%x", tries[i].what, place[tries[i].to], bar, now, old, st);
		tg_pci_io.cfg_write(dev->pci, dev->addr, reg, 4, old);
		ret = -1;
	}
	return ret;
}

int tg_hostile(const struct tg_vdev *dev, struct tg_boot_info *bi)
{
	static const char *const names[] = {"?", "bad-desc", "queue-size0", "order", "loop",
					    "grow-race", "bar-overlap"};
	struct raw r;
	uint32_t max;
	int ret;

	memset(&r, 0, sizeof(r));
	if (dev->kind == TG_DEV_PCI_ECAM) {
		/* The driver side's checks first (its BAR sizing, decode off
		 * meanwhile), then reads only: queue 0's notify offset. */
		if (tg_pci_virtio_regs(dev->pci, dev->addr, 0, &r.base, &r.notify) < 0)
			return -1;
		r.regs = pci_regs;
		r.pci = 1;
		r.notify_width = 2;
	} else {
		r.base = dev->base;
		r.regs = mmio_regs;
		r.notify = dev->base + VIRTIO_MMIO_QUEUE_NOTIFY;
		r.notify_width = 4;
	}
	r.mem = tg_alloc(4 * TG_BLOCK, TG_BLOCK);
	if (!r.mem) {
		tg_printf("hostile: out of heap");
		return -1;
	}
	r.desc = (struct vring_desc *)(void *)r.mem;
	r.avail = (struct vring_avail *)(void *)(r.mem + TG_BLOCK / 2);
	r.used = (struct vring_used *)(void *)(r.mem + TG_BLOCK);
	r.hdr = (struct virtio_blk_outhdr *)(void *)(r.mem + 2 * TG_BLOCK);
	r.status = r.mem + 2 * TG_BLOCK + sizeof(*r.hdr);
	r.data = r.mem + 3 * TG_BLOCK;

	if (raw_reset(&r) < 0)
		return -1;
	wr(&r, R_QUEUE_SEL, 0);
	max = rd(&r, R_QUEUE_NUM_MAX);
	r.size = RAW_QUEUE_SIZE;
	while (r.size > max)
		r.size /= 2;
	if (!r.size) {
		tg_printf("hostile: the device has no queue 0");
		return -1;
	}
	bi->features_lo = 0;
	bi->features_hi = 1u << (VIRTIO_F_VERSION_1 - 32);
	tg_printf("hostile: mode %s, hand-made split ring of %u on queue 0, features VERSION_1, "
		  "over virtio-%s", bi->hostile < sizeof(names) / sizeof(names[0]) ?
		  names[bi->hostile] : "?", r.size, r.pci ? "pci" : "mmio");

	switch (bi->hostile) {
	case TG_HOSTILE_BAD_DESC:
		ret = bad_desc(&r, bi->ram_size);
		break;
	case TG_HOSTILE_QUEUE_SIZE0:
		ret = queue_size0(&r);
		break;
	case TG_HOSTILE_ORDER:
		ret = order(&r);
		break;
	case TG_HOSTILE_LOOP:
		ret = loop(&r);
		break;
	case TG_HOSTILE_GROW_RACE:
		ret = grow_race(&r);
		break;
	case TG_HOSTILE_BAR_OVERLAP:
		ret = bar_overlap(&r, dev);
		break;
	default:
		tg_printf("hostile: unknown hostile case %u", bi->hostile);
		return -1;
	}
	if (control(&r) < 0)
		ret = -1;
	raw_reset(&r);
	return ret;
}
