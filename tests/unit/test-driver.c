/* SPDX-License-Identifier: MIT */
/*
 * The driver side against a real vdev_device: an "echo" device model (copies
 * each chain's readable bytes into its writable part) behind
 * vdev_drv_direct_transport, wrapped by a transport that can hide features,
 * record ring addresses and config accesses, and change the config space in
 * the middle of a read. Guest memory is a malloc'd buffer mapped at
 * GPA_BASE; the driver's arena and the data buffers live in it.
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include <virtio-dev/virtio-dev.h>

#define BIT(n) (1ull << (n))
#define GPA_BASE 0x100000ull
#define MEM_SIZE (4u << 20)
#define ARENA_SIZE (1u << 20)
#define DATA_OFF ARENA_SIZE
#define SLOT_SIZE 8192u /* per request: out data, then in data at +4096 */
#define NSLOTS 64u
#define QMAX 16u
#define NQUEUES 2u
#define CFG_SIZE 32u
#define MAX_SEGS 20u

/* ------------------------------------------------------------------------ */
/* The echo device model. */

struct echo {
	int defer;    /* queue_notify only records; echo_run serves later */
	int suppress; /* disable kicks from the first one until drained */
	int reverse;  /* complete each batch in reverse order */
	int refuse;   /* features_check refuses */
	int fail_activate;
	int activated;
	unsigned kicks[NQUEUES];
	int pending[NQUEUES];
	unsigned irqs[NQUEUES];
	unsigned config_irqs;
	unsigned served;
	uint8_t config[CFG_SIZE];
};

struct env {
	uint8_t *mem_buf;
	vdev_mem *mem;
	vdev_irq *irq;
	vdev_device *dev;
	struct echo echo;
	vdev_drv *drv;
	uint64_t offered;

	/* transport wrapper */
	uint64_t hide_features;
	int stuck_status;   /* status never reads back 0 */
	int fail_setup;     /* queue_setup fails */
	int fail_initialized;
	int bump_gen;       /* 1: during the first config read; 2: every read */
	unsigned gen_reads, cfg_reads;
	unsigned cfg_off[64], cfg_width[64], ncfg;
	uint64_t ring_addr[NQUEUES][3];

	/* driver ops */
	uint64_t wanted;
	int pre_mode; /* 0: set up queue 0; 1: also probe the errors; 2: fail */
	uint32_t qsize, indirect_max;
	int setup_ret, late_setup_ret, initialized;
	vdev_drvq *q;
};

static struct env *E;
static uint32_t g_arena_size = ARENA_SIZE;

static void echo_serve(struct echo *e, vdev_queue *q, struct vdev_queue_elem *elem,
		       uint32_t *written)
{
	static uint8_t tmp[MAX_SEGS * 4096];
	uint64_t out = 0, w, off;
	uint32_t i;

	(void)e;
	for (i = 0; i < elem->out_num; i++) {
		ck_assert_uint_le(out + elem->iov[i].iov_len, sizeof(tmp));
		memcpy(tmp + out, elem->iov[i].iov_base, elem->iov[i].iov_len);
		out += elem->iov[i].iov_len;
	}
	if (!out) {
		for (i = elem->out_num; i < elem->out_num + elem->in_num; i++)
			memset(elem->iov[i].iov_base, 0xee, elem->iov[i].iov_len);
		*written = (uint32_t)elem->in_len;
		return;
	}
	w = out < elem->in_len ? out : elem->in_len;
	off = 0;
	for (i = elem->out_num; i < elem->out_num + elem->in_num && off < w; i++) {
		uint64_t n = elem->iov[i].iov_len;

		if (n > w - off)
			n = w - off;
		memcpy(elem->iov[i].iov_base, tmp + off, n);
		off += n;
	}
	*written = (uint32_t)w;
	(void)q;
}

static void echo_run(struct echo *e, uint32_t qi)
{
	vdev_queue *q = vdev_device_get_queue(E->dev, qi);
	static struct iovec iov[QMAX][MAX_SEGS + 4];
	static uint64_t gpa[QMAX][MAX_SEGS + 4];
	static struct vdev_queue_elem elems[QMAX];
	static uint32_t lens[QMAX];
	int r;

	ck_assert_ptr_nonnull(q);
	e->pending[qi] = 0;
	do {
		unsigned n = 0;

		if (e->suppress)
			vdev_queue_set_notification(q, 0);
		for (;;) {
			struct vdev_queue_elem *el = &elems[n];

			*el = (struct vdev_queue_elem)VDEV_QUEUE_ELEM_INIT;
			el->iov = iov[n];
			el->gpa = gpa[n];
			el->iov_cap = MAX_SEGS + 4;
			r = vdev_queue_pop(q, el);
			ck_assert_int_ge(r, 0);
			if (!r)
				break;
			echo_serve(e, q, el, &lens[n]);
			e->served++;
			if (e->reverse) {
				/* Hold the element (and its iovecs: fill marks the
				 * written part dirty from them). */
				n++;
				ck_assert_uint_le(n, QMAX);
				if (n == QMAX)
					break;
			} else {
				ck_assert_int_eq(vdev_queue_fill(q, el, lens[n]), 0);
			}
		}
		while (n--)
			ck_assert_int_eq(vdev_queue_fill(q, &elems[n], lens[n]), 0);
		r = vdev_queue_flush(q);
		ck_assert_int_ge(r, 0);
		if (r > 0)
			ck_assert_int_eq(vdev_device_interrupt_queue(E->dev, qi), 0);
	} while (e->suppress && vdev_queue_set_notification(q, 1) > 0);
}

static int echo_config_read(vdev_device *dev, void *opaque, uint32_t offset, void *buf,
			    uint32_t len)
{
	struct echo *e = opaque;

	memcpy(buf, e->config + offset, len);
	return 0;
}

static int echo_config_write(vdev_device *dev, void *opaque, uint32_t offset, const void *buf,
			     uint32_t len)
{
	struct echo *e = opaque;

	memcpy(e->config + offset, buf, len);
	return 0;
}

static int echo_features_check(vdev_device *dev, void *opaque, uint64_t acked)
{
	struct echo *e = opaque;

	return e->refuse ? -EINVAL : 0;
}

static int echo_activate(vdev_device *dev, void *opaque)
{
	struct echo *e = opaque;

	if (e->fail_activate)
		return -EIO;
	e->activated = 1;
	return 0;
}

static void echo_reset(vdev_device *dev, void *opaque)
{
	struct echo *e = opaque;

	e->activated = 0;
}

static void echo_queue_notify(vdev_device *dev, void *opaque, uint32_t queue)
{
	struct echo *e = opaque;

	ck_assert_uint_lt(queue, NQUEUES);
	e->kicks[queue]++;
	e->pending[queue] = 1;
	if (e->suppress)
		vdev_queue_set_notification(vdev_device_get_queue(dev, queue), 0);
	if (!e->defer)
		echo_run(e, queue);
}

static int irq_trigger(void *opaque, uint32_t kind, uint32_t queue)
{
	struct echo *e = opaque;

	if (kind == VDEV_IRQ_QUEUE) {
		ck_assert_uint_lt(queue, NQUEUES);
		e->irqs[queue]++;
	} else {
		e->config_irqs++;
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* The transport wrapper: direct transport plus instrumentation. */

static const struct vdev_drv_transport_ops *direct(void)
{
	return vdev_drv_direct_transport();
}

static uint32_t w_get_status(void *t)
{
	struct env *env = t;

	return direct()->get_status(env->dev) | (env->stuck_status ? 1u : 0u);
}

static void w_set_status(void *t, uint32_t s)
{
	direct()->set_status(((struct env *)t)->dev, s);
}

static uint32_t w_get_device_features(void *t, uint32_t page)
{
	struct env *env = t;

	return direct()->get_device_features(env->dev, page) &
	       ~(uint32_t)(env->hide_features >> (32 * page));
}

static void w_set_driver_features(void *t, uint32_t page, uint32_t v)
{
	direct()->set_driver_features(((struct env *)t)->dev, page, v);
}

static uint32_t w_queue_max_size(void *t, uint32_t queue)
{
	return direct()->queue_max_size(((struct env *)t)->dev, queue);
}

static int w_queue_setup(void *t, uint32_t queue, uint32_t size, uint64_t d, uint64_t dr,
			 uint64_t dv)
{
	struct env *env = t;

	if (env->fail_setup)
		return -EIO;
	if (queue < NQUEUES) {
		env->ring_addr[queue][0] = d;
		env->ring_addr[queue][1] = dr;
		env->ring_addr[queue][2] = dv;
	}
	return direct()->queue_setup(env->dev, queue, size, d, dr, dv);
}

static void w_queue_notify(void *t, uint32_t queue)
{
	direct()->queue_notify(((struct env *)t)->dev, queue);
}

static uint32_t w_config_generation(void *t)
{
	struct env *env = t;

	env->gen_reads++;
	return direct()->config_generation(env->dev);
}

static uint32_t w_config_read(void *t, uint32_t off, uint32_t width)
{
	struct env *env = t;

	env->cfg_reads++;
	if (env->ncfg < 64) {
		env->cfg_off[env->ncfg] = off;
		env->cfg_width[env->ncfg++] = width;
	}
	if ((env->bump_gen == 1 && env->cfg_reads == 1) || env->bump_gen == 2) {
		/* The device changes its config between two of our accesses. */
		for (unsigned i = 0; i < CFG_SIZE; i++)
			env->echo.config[i] = (uint8_t)(0x80 + i);
		ck_assert_int_eq(vdev_device_config_changed(env->dev), 0);
	}
	return direct()->config_read(env->dev, off, width);
}

static void w_config_write(void *t, uint32_t off, uint32_t width, uint32_t v)
{
	struct env *env = t;

	if (env->ncfg < 64) {
		env->cfg_off[env->ncfg] = off;
		env->cfg_width[env->ncfg++] = width;
	}
	direct()->config_write(env->dev, off, width, v);
}

static const struct vdev_drv_transport_ops wrap_ops = {
	.struct_size = sizeof(struct vdev_drv_transport_ops),
	.get_status = w_get_status,
	.set_status = w_set_status,
	.get_device_features = w_get_device_features,
	.set_driver_features = w_set_driver_features,
	.queue_max_size = w_queue_max_size,
	.queue_setup = w_queue_setup,
	.queue_notify = w_queue_notify,
	.config_generation = w_config_generation,
	.config_read = w_config_read,
	.config_write = w_config_write,
};

/* ------------------------------------------------------------------------ */
/* The driver ops. */

static uint64_t d_negotiate(vdev_drv *drv, void *opaque, uint64_t offered)
{
	struct env *env = opaque;

	ck_assert(offered & BIT(VIRTIO_F_VERSION_1));
	return env->wanted;
}

static int d_pre_init(vdev_drv *drv, void *opaque)
{
	struct env *env = opaque;
	vdev_drvq *q = NULL;

	if (env->pre_mode == 2)
		return -EIO;
	if (env->pre_mode == 1) {
		int packed = !!(vdev_drv_features(drv) & BIT(VIRTIO_F_RING_PACKED));

		ck_assert_int_eq(vdev_drv_queue_setup(drv, NQUEUES, 0, 0, &q), -ENODEV);
		ck_assert_int_eq(vdev_drv_queue_setup(drv, 0, QMAX * 2, 0, &q), -EINVAL);
		if (!packed)
			ck_assert_int_eq(vdev_drv_queue_setup(drv, 0, 12, 0, &q), -EINVAL);
		ck_assert_ptr_null(q);
		ck_assert_ptr_null(vdev_drv_queue(drv, 0));
	}
	env->setup_ret = vdev_drv_queue_setup(drv, 0, env->qsize, env->indirect_max, &env->q);
	if (env->setup_ret < 0)
		return env->setup_ret;
	if (env->pre_mode == 1) {
		ck_assert_ptr_eq(vdev_drv_queue(drv, 0), env->q);
		ck_assert_ptr_null(vdev_drv_queue(drv, 1));
		ck_assert_int_eq(vdev_drv_queue_setup(drv, 0, 0, 0, &q), -EINVAL);
	}
	return 0;
}

static int d_initialized(vdev_drv *drv, void *opaque)
{
	struct env *env = opaque;
	vdev_drvq *q;

	env->initialized = 1;
	env->late_setup_ret = vdev_drv_queue_setup(drv, 1, 0, 0, &q);
	return env->fail_initialized ? -EPROTO : 0;
}

static const struct vdev_driver_ops drv_ops = {
	.struct_size = sizeof(struct vdev_driver_ops),
	.negotiate_features = d_negotiate,
	.pre_device_initialization = d_pre_init,
	.device_initialized = d_initialized,
};

/* ------------------------------------------------------------------------ */
/* Environment. */

static void env_init(uint64_t offered)
{
	struct vdev_device_config dc = VDEV_DEVICE_CONFIG_INIT;
	struct vdev_device_ops dops = VDEV_DEVICE_OPS_INIT;
	struct vdev_irq_ops iops = VDEV_IRQ_OPS_INIT;
	struct vdev_drv_config cfg = VDEV_DRV_CONFIG_INIT;

	E = calloc(1, sizeof(*E));
	ck_assert_ptr_nonnull(E);
	E->mem_buf = aligned_alloc(4096, MEM_SIZE);
	ck_assert_ptr_nonnull(E->mem_buf);
	memset(E->mem_buf, 0x5a, MEM_SIZE);
	ck_assert_int_eq(vdev_mem_new(&E->mem), 0);
	ck_assert_int_eq(vdev_mem_add_region(E->mem, GPA_BASE, MEM_SIZE, E->mem_buf, 0), 0);

	iops.trigger = irq_trigger;
	ck_assert_int_eq(vdev_irq_new(&iops, &E->echo, &E->irq), 0);

	for (unsigned i = 0; i < CFG_SIZE; i++)
		E->echo.config[i] = (uint8_t)i;
	dc.device_type = 0x7f;
	dc.features = offered;
	dc.num_queues = NQUEUES;
	dc.queue_max_size = QMAX;
	dc.config_size = CFG_SIZE;
	dops.config_read = echo_config_read;
	dops.config_write = echo_config_write;
	dops.features_check = echo_features_check;
	dops.activate = echo_activate;
	dops.reset = echo_reset;
	dops.queue_notify = echo_queue_notify;
	ck_assert_int_eq(vdev_device_new(&dc, &dops, &E->echo, &E->dev), 0);
	ck_assert_int_eq(vdev_device_set_memory(E->dev, E->mem), 0);
	ck_assert_int_eq(vdev_device_set_irq(E->dev, E->irq), 0);
	E->offered = offered;
	E->wanted = offered;
	E->indirect_max = 8;

	cfg.transport = &wrap_ops;
	cfg.transport_opaque = E;
	cfg.driver = &drv_ops;
	cfg.driver_opaque = E;
	cfg.arena = E->mem_buf;
	cfg.arena_gpa = GPA_BASE;
	cfg.arena_size = g_arena_size;
	ck_assert_int_eq(vdev_drv_new(&cfg, &E->drv), 0);
}

static void env_fini(void)
{
	if (!E)
		return;
	vdev_drv_free(E->drv);
	vdev_device_free(E->dev);
	vdev_irq_free(E->irq);
	vdev_mem_free(E->mem);
	free(E->mem_buf);
	free(E);
	E = NULL;
}

static uint64_t ring_bits(int mode)
{
	return ((mode & 1) ? BIT(VIRTIO_F_RING_PACKED) : 0) |
	       ((mode & 2) ? BIT(VIRTIO_RING_F_INDIRECT_DESC) : 0) |
	       ((mode & 4) ? BIT(VIRTIO_RING_F_EVENT_IDX) : 0);
}

/* A started device whose queue 0 uses the ring layout of @mode. */
static void env_start_mode(int mode)
{
	env_init(ring_bits(mode) | BIT(0) | BIT(5));
	ck_assert_int_eq(vdev_drv_start(E->drv), 0);
	ck_assert_ptr_nonnull(E->q);
	ck_assert_uint_eq(vdev_drv_features(E->drv),
			  ring_bits(mode) | BIT(0) | BIT(5) | BIT(VIRTIO_F_VERSION_1));
}

static uint8_t *slot_host(unsigned slot)
{
	return E->mem_buf + DATA_OFF + (size_t)slot * SLOT_SIZE;
}

static uint64_t slot_gpa(unsigned slot)
{
	return GPA_BASE + DATA_OFF + (uint64_t)slot * SLOT_SIZE;
}

/* One request in @slot: one readable and one writable segment. */
static int add_simple(vdev_drvq *q, unsigned slot, void *token, uint32_t flags)
{
	uint64_t addr[2] = {slot_gpa(slot), slot_gpa(slot) + 4096};
	uint32_t len[2] = {64, 64};

	memset(slot_host(slot), (int)(slot + 1), 64);
	memset(slot_host(slot) + 4096, 0, 64);
	return vdev_drvq_add(q, addr, len, 1, 1, token, flags);
}

/* ------------------------------------------------------------------------ */
/* Initialization sequence. */

START_TEST(test_init_args)
{
	struct vdev_drv_config cfg = VDEV_DRV_CONFIG_INIT;
	uint64_t sz = vdev_drv_storage_size();
	uint8_t *st = aligned_alloc(16, ((size_t)sz + 31) & ~(size_t)15);
	vdev_drv *drv = NULL;
	uint8_t arena[64] __attribute__((aligned(16)));

	ck_assert_ptr_nonnull(st);
	ck_assert_uint_gt(sz, 0);
	cfg.transport = vdev_drv_direct_transport();
	cfg.driver = &drv_ops;

	ck_assert_int_eq(vdev_drv_init(NULL, sz, &cfg, &drv), -EINVAL);
	ck_assert_int_eq(vdev_drv_init(st, sz - 1, &cfg, &drv), -EINVAL);
	ck_assert_int_eq(vdev_drv_init(st + 4, sz, &cfg, &drv), -EINVAL);
	ck_assert_int_eq(vdev_drv_init(st, sz, NULL, &drv), -EINVAL);
	ck_assert_int_eq(vdev_drv_init(st, sz, &cfg, NULL), -EINVAL);
	cfg.transport = NULL;
	ck_assert_int_eq(vdev_drv_init(st, sz, &cfg, &drv), -EINVAL);
	cfg.transport = vdev_drv_direct_transport();
	cfg.driver = NULL;
	ck_assert_int_eq(vdev_drv_init(st, sz, &cfg, &drv), -EINVAL);
	cfg.driver = &drv_ops;
	cfg.arena = arena + 8; /* host and guest views must be 16-aligned */
	cfg.arena_gpa = 0x1000;
	cfg.arena_size = 32;
	ck_assert_int_eq(vdev_drv_init(st, sz, &cfg, &drv), -EINVAL);
	cfg.arena = arena;
	cfg.arena_gpa = 0x1008;
	ck_assert_int_eq(vdev_drv_init(st, sz, &cfg, &drv), -EINVAL);
	cfg.arena_gpa = UINT64_MAX - 15;
	ck_assert_int_eq(vdev_drv_init(st, sz, &cfg, &drv), -EINVAL);
	cfg.struct_size = 2;
	ck_assert_int_eq(vdev_drv_init(st, sz, &cfg, &drv), -EINVAL);
	ck_assert_ptr_null(drv);

	/* An older caller's shorter config: the arena fields read as zero. */
	cfg.struct_size = offsetof(struct vdev_drv_config, arena);
	ck_assert_int_eq(vdev_drv_init(st, sz, &cfg, &drv), 0);
	ck_assert_ptr_eq(drv, (vdev_drv *)st);

	vdev_drv_free(NULL);
	ck_assert_int_eq(vdev_drv_new(NULL, &drv), -EINVAL);
	ck_assert_int_eq(vdev_drv_start(NULL), -EINVAL);
	ck_assert_int_eq(vdev_drv_queue_setup(NULL, 0, 0, 0, NULL), -EINVAL);
	ck_assert_ptr_null(vdev_drv_queue(NULL, 0));
	ck_assert_int_eq(vdev_drvq_add(NULL, NULL, NULL, 1, 0, st, 0), -EINVAL);
	ck_assert_int_eq(vdev_drvq_kick(NULL), -EINVAL);
	ck_assert_int_eq(vdev_drvq_get_used(NULL, NULL, NULL), -EINVAL);
	ck_assert_int_eq(vdev_drvq_enable_interrupts(NULL, 1), -EINVAL);
	ck_assert_uint_eq(vdev_drvq_num_free(NULL), 0);
	ck_assert_uint_eq(vdev_drvq_size(NULL), 0);
	vdev_drv_reset(NULL);
	free(st);
}
END_TEST

START_TEST(test_start_sequence)
{
	/* IN_ORDER (35) is offered and wanted, but the rings here do not
	 * implement it, so the driver must not accept it. */
	uint64_t offered = BIT(0) | BIT(3) | BIT(7) | BIT(VIRTIO_RING_F_EVENT_IDX) |
			   BIT(VIRTIO_F_IN_ORDER);

	env_init(offered);
	E->wanted = BIT(0) | BIT(7) | BIT(9) | BIT(VIRTIO_RING_F_EVENT_IDX) |
		    BIT(VIRTIO_F_IN_ORDER) | BIT(VIRTIO_RING_F_INDIRECT_DESC);
	E->pre_mode = 1;
	ck_assert_int_eq(vdev_drv_start(E->drv), 0);
	ck_assert_uint_eq(vdev_drv_status(E->drv),
			  VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
				  VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
	ck_assert_uint_eq(vdev_drv_features(E->drv), BIT(0) | BIT(7) |
							     BIT(VIRTIO_RING_F_EVENT_IDX) |
							     BIT(VIRTIO_F_VERSION_1));
	ck_assert_uint_eq(vdev_device_acked_features(E->dev), vdev_drv_features(E->drv));
	ck_assert(E->echo.activated);
	ck_assert(E->initialized);
	ck_assert_int_eq(E->setup_ret, 0);
	ck_assert_uint_eq(vdev_drvq_size(E->q), QMAX);
	ck_assert_uint_eq(vdev_drvq_num_free(E->q), QMAX);
	ck_assert_int_eq(vdev_device_queue_enabled(E->dev, 0), 1);
	ck_assert_int_eq(vdev_device_queue_enabled(E->dev, 1), 0);
	ck_assert_ptr_nonnull(vdev_device_get_queue(E->dev, 0));
	/* Queue setup is only legal inside pre_device_initialization. */
	ck_assert_int_eq(E->late_setup_ret, -EPERM);
	ck_assert_int_eq(vdev_drv_queue_setup(E->drv, 1, 0, 0, NULL), -EPERM);
	/* Spec alignments of the programmed rings (split: 16 / 2 / 4). */
	ck_assert_uint_eq(E->ring_addr[0][0] % 4096, 0);
	ck_assert_uint_eq(E->ring_addr[0][1] % 2, 0);
	ck_assert_uint_eq(E->ring_addr[0][2] % 4096, 0);
	ck_assert_uint_ge(E->ring_addr[0][0], GPA_BASE);
	ck_assert_uint_le(E->ring_addr[0][2], GPA_BASE + ARENA_SIZE);
	env_fini();
}
END_TEST

START_TEST(test_setup_before_start)
{
	env_init(0);
	ck_assert_int_eq(vdev_drv_queue_setup(E->drv, 0, 0, 0, NULL), -EPERM);
	env_fini();
}
END_TEST

START_TEST(test_features_refused)
{
	env_init(BIT(1));
	E->echo.refuse = 1;
	ck_assert_int_eq(vdev_drv_start(E->drv), -ENOTSUP);
	ck_assert(vdev_drv_status(E->drv) & VIRTIO_CONFIG_S_FAILED);
	ck_assert(!(vdev_drv_status(E->drv) & VIRTIO_CONFIG_S_FEATURES_OK));
	ck_assert(!(vdev_drv_status(E->drv) & VIRTIO_CONFIG_S_DRIVER_OK));
	ck_assert(!E->echo.activated);
	ck_assert_ptr_null(E->q);
	env_fini();
}
END_TEST

START_TEST(test_no_version_1)
{
	env_init(BIT(1));
	E->hide_features = BIT(VIRTIO_F_VERSION_1);
	ck_assert_int_eq(vdev_drv_start(E->drv), -ENOTSUP);
	ck_assert(vdev_drv_status(E->drv) & VIRTIO_CONFIG_S_FAILED);
	ck_assert(!(vdev_drv_status(E->drv) & VIRTIO_CONFIG_S_FEATURES_OK));
	env_fini();
}
END_TEST

START_TEST(test_pre_init_error)
{
	env_init(0);
	E->pre_mode = 2;
	ck_assert_int_eq(vdev_drv_start(E->drv), -EIO);
	ck_assert(vdev_drv_status(E->drv) & VIRTIO_CONFIG_S_FAILED);
	ck_assert(!(vdev_drv_status(E->drv) & VIRTIO_CONFIG_S_DRIVER_OK));
	ck_assert(!E->initialized);
	env_fini();
}
END_TEST

START_TEST(test_start_failures)
{
	struct vdev_drv_transport_ops partial = wrap_ops;
	struct vdev_drv_config cfg = VDEV_DRV_CONFIG_INIT;
	vdev_drv *drv = NULL;

	env_init(0);
	/* A transport without a required op is refused up front. */
	partial.queue_notify = NULL;
	cfg.transport = &partial;
	cfg.transport_opaque = E;
	cfg.driver = &drv_ops;
	cfg.driver_opaque = E;
	ck_assert_int_eq(vdev_drv_new(&cfg, &drv), -EINVAL);
	ck_assert_ptr_null(drv);

	/* A reset that never completes: bounded. */
	E->stuck_status = 1;
	ck_assert_int_eq(vdev_drv_start(E->drv), -ETIMEDOUT);
	E->stuck_status = 0;

	/* The transport refuses the queue. */
	E->fail_setup = 1;
	ck_assert_int_eq(vdev_drv_start(E->drv), -EIO);
	ck_assert_int_eq(E->setup_ret, -EIO);
	ck_assert_ptr_null(vdev_drv_queue(E->drv, 0));
	ck_assert(vdev_drv_status(E->drv) & VIRTIO_CONFIG_S_FAILED);
	E->fail_setup = 0;

	/* The device model refuses to activate: DRIVER_OK ends in NEEDS_RESET. */
	E->echo.fail_activate = 1;
	ck_assert_int_eq(vdev_drv_start(E->drv), -EIO);
	ck_assert(vdev_drv_status(E->drv) & VIRTIO_CONFIG_S_FAILED);
	ck_assert(!E->initialized);
	E->echo.fail_activate = 0;

	/* device_initialized's error is returned, after DRIVER_OK. */
	E->fail_initialized = 1;
	ck_assert_int_eq(vdev_drv_start(E->drv), -EPROTO);
	ck_assert(E->initialized);
	ck_assert(vdev_drv_status(E->drv) & VIRTIO_CONFIG_S_FAILED);
	E->fail_initialized = 0;

	/* And a clean start after all that. */
	ck_assert_int_eq(vdev_drv_start(E->drv), 0);
	ck_assert_uint_eq(vdev_drv_status(E->drv), 0x0f);
	env_fini();
}
END_TEST

START_TEST(test_arena_exhausted)
{
	/* Three pages: the rings fit, 16 indirect tables of 16 entries do not. */
	g_arena_size = 3 * 4096;
	env_init(BIT(VIRTIO_RING_F_INDIRECT_DESC));
	E->indirect_max = 16;
	ck_assert_int_eq(vdev_drv_start(E->drv), -ENOMEM);
	ck_assert_int_eq(E->setup_ret, -ENOMEM);
	ck_assert(vdev_drv_status(E->drv) & VIRTIO_CONFIG_S_FAILED);
	/* Without indirect tables it fits, in the same arena. */
	E->indirect_max = 0;
	ck_assert_int_eq(vdev_drv_start(E->drv), 0);
	ck_assert_int_eq(E->setup_ret, 0);
	ck_assert_uint_eq(vdev_drvq_size(E->q), QMAX);
	env_fini();
}
END_TEST

START_TEST(test_reset_restart)
{
	void *tok;
	uint32_t len;
	int tokens[2];

	env_start_mode(_i);
	ck_assert_int_eq(add_simple(E->q, 0, &tokens[0], 0), 0);
	ck_assert_int_eq(vdev_drvq_kick(E->q), 1);
	vdev_drv_reset(E->drv);
	ck_assert_uint_eq(vdev_drv_status(E->drv), 0);
	ck_assert(!E->echo.activated);
	ck_assert_ptr_null(vdev_drv_queue(E->drv, 0));
	ck_assert_int_eq(vdev_drvq_get_used(E->q, &tok, &len), -ENODEV);
	ck_assert_int_eq(add_simple(E->q, 1, &tokens[1], 0), -ENODEV);
	ck_assert_uint_eq(vdev_drvq_num_free(E->q), 0);

	/* A second start recycles the arena and works like the first. */
	E->q = NULL;
	ck_assert_int_eq(vdev_drv_start(E->drv), 0);
	ck_assert_ptr_nonnull(E->q);
	ck_assert_uint_eq(vdev_drvq_num_free(E->q), QMAX);
	ck_assert_int_eq(add_simple(E->q, 1, &tokens[1], 0), 0);
	ck_assert_int_eq(vdev_drvq_kick(E->q), 1);
	ck_assert_int_eq(vdev_drvq_get_used(E->q, &tok, &len), 1);
	ck_assert_ptr_eq(tok, &tokens[1]);
	ck_assert_uint_eq(len, 64);
	ck_assert_int_eq(memcmp(slot_host(1) + 4096, slot_host(1), 64), 0);
	env_fini();
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Config space. */

START_TEST(test_config_read_generation)
{
	uint8_t buf[CFG_SIZE];
	unsigned i;

	env_init(0);
	ck_assert_int_eq(vdev_drv_start(E->drv), 0);

	/* Widest aligned accesses: offset 1, length 7 -> 1 @1, 2 @2, 4 @4. */
	E->ncfg = 0;
	ck_assert_int_eq(vdev_drv_config_read(E->drv, 1, buf, 7), 0);
	ck_assert_uint_eq(E->ncfg, 3);
	ck_assert_uint_eq(E->cfg_off[0], 1);
	ck_assert_uint_eq(E->cfg_width[0], 1);
	ck_assert_uint_eq(E->cfg_off[1], 2);
	ck_assert_uint_eq(E->cfg_width[1], 2);
	ck_assert_uint_eq(E->cfg_off[2], 4);
	ck_assert_uint_eq(E->cfg_width[2], 4);
	for (i = 0; i < 7; i++)
		ck_assert_uint_eq(buf[i], i + 1);

	/* The config changes under the first pass: the driver must retry and
	 * return only the new contents. */
	E->bump_gen = 1;
	E->cfg_reads = 0;
	E->gen_reads = 0;
	memset(buf, 0, sizeof(buf));
	ck_assert_int_eq(vdev_drv_config_read(E->drv, 0, buf, 12), 0);
	for (i = 0; i < 12; i++)
		ck_assert_uint_eq(buf[i], 0x80 + i);
	ck_assert_uint_eq(E->cfg_reads, 6); /* two passes of 3 dword reads */
	ck_assert_uint_eq(E->gen_reads, 4);
	ck_assert_uint_eq(E->echo.config_irqs, 1);

	/* A config that never settles: bounded, -EAGAIN. */
	E->bump_gen = 2;
	ck_assert_int_eq(vdev_drv_config_read(E->drv, 0, buf, 4), -EAGAIN);
	E->bump_gen = 0;

	ck_assert_int_eq(vdev_drv_config_read(E->drv, 0, NULL, 4), -EINVAL);
	ck_assert_int_eq(vdev_drv_config_read(E->drv, UINT32_MAX, buf, 2), -EINVAL);
	ck_assert_int_eq(vdev_drv_config_read(NULL, 0, buf, 2), -EINVAL);
	ck_assert_int_eq(vdev_drv_config_read(E->drv, 0, buf, 0), 0);
	env_fini();
}
END_TEST

START_TEST(test_config_write)
{
	const uint8_t data[5] = {0x11, 0x22, 0x33, 0x44, 0x55};
	uint8_t buf[8];

	env_init(0);
	ck_assert_int_eq(vdev_drv_start(E->drv), 0);
	E->ncfg = 0;
	ck_assert_int_eq(vdev_drv_config_write(E->drv, 2, data, 5), 0);
	ck_assert_int_eq(memcmp(E->echo.config + 2, data, 5), 0);
	ck_assert_uint_eq(E->echo.config[1], 1);
	ck_assert_uint_eq(E->echo.config[7], 7);
	ck_assert_uint_eq(E->ncfg, 3);
	ck_assert_uint_eq(E->cfg_width[0], 2);
	ck_assert_uint_eq(E->cfg_width[1], 2);
	ck_assert_uint_eq(E->cfg_width[2], 1);
	ck_assert_int_eq(vdev_drv_config_read(E->drv, 1, buf, 8), 0);
	ck_assert_uint_eq(buf[0], 1);
	ck_assert_int_eq(memcmp(buf + 1, data, 5), 0);
	ck_assert_int_eq(vdev_drv_config_write(E->drv, 0, NULL, 1), -EINVAL);
	ck_assert_int_eq(vdev_drv_config_write(NULL, 0, data, 1), -EINVAL);
	env_fini();
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Rings. The loop tests run over _i = 0..7: bit 0 packed, bit 1 indirect,
 * bit 2 EVENT_IDX. */

START_TEST(test_roundtrip_segments)
{
	int indirect = !!(_i & 2);
	int tokens[MAX_SEGS + 1];
	uint64_t addr[MAX_SEGS];
	uint32_t len[MAX_SEGS];
	uint32_t nseg, k;

	env_start_mode(_i);
	for (nseg = 1; nseg <= 12; nseg++) {
		uint32_t out_num = (nseg + 1) / 2, in_num = nseg - out_num;
		uint32_t out_total = 0, in_total = 0, expect, got_len = 0, before, used;
		uint8_t *p = slot_host(nseg), *in = slot_host(nseg) + 4096;
		void *tok = NULL;

		/* Segments of odd sizes packed one after the other. */
		for (k = 0; k < out_num; k++) {
			len[k] = 50 + 13 * k + nseg;
			addr[k] = slot_gpa(nseg) + out_total;
			for (uint32_t b = 0; b < len[k]; b++)
				p[out_total + b] = (uint8_t)(nseg * 31 + out_total + b);
			out_total += len[k];
		}
		for (k = 0; k < in_num; k++) {
			len[out_num + k] = 40 + 7 * k;
			addr[out_num + k] = slot_gpa(nseg) + 4096 + in_total;
			in_total += len[out_num + k];
		}
		memset(in, 0, 4096);
		expect = out_total < in_total ? out_total : in_total;

		before = vdev_drvq_num_free(E->q);
		ck_assert_int_eq(vdev_drvq_add(E->q, addr, len, out_num, in_num, &tokens[nseg], 0),
				 0);
		used = (indirect && nseg > 1 && nseg <= E->indirect_max) ? 1 : nseg;
		ck_assert_uint_eq(before - vdev_drvq_num_free(E->q), used);
		ck_assert_int_eq(vdev_drvq_get_used(E->q, &tok, &got_len), 0);
		ck_assert_int_eq(vdev_drvq_kick(E->q), 1);
		ck_assert_int_eq(vdev_drvq_get_used(E->q, &tok, &got_len), 1);
		ck_assert_ptr_eq(tok, &tokens[nseg]);
		ck_assert_uint_eq(got_len, expect);
		ck_assert_int_eq(memcmp(in, p, expect), 0);
		ck_assert_uint_eq(in[expect], 0);
		ck_assert_int_eq(vdev_drvq_get_used(E->q, &tok, &got_len), 0);
		ck_assert_uint_eq(vdev_drvq_num_free(E->q), QMAX);
	}

	/* Writable-only request: the echo device fills it. */
	addr[0] = slot_gpa(0) + 4096;
	len[0] = 100;
	ck_assert_int_eq(vdev_drvq_add(E->q, addr, len, 0, 1, &tokens[0], 0), 0);
	ck_assert_int_eq(vdev_drvq_kick(E->q), 1);
	{
		void *tok;
		uint32_t l;

		ck_assert_int_eq(vdev_drvq_get_used(E->q, &tok, &l), 1);
		ck_assert_ptr_eq(tok, &tokens[0]);
		ck_assert_uint_eq(l, 100);
		ck_assert_uint_eq(slot_host(0)[4096 + 99], 0xee);
	}

	/* NO_INDIRECT forces a chain even when a table would do. */
	for (k = 0; k < 3; k++) {
		addr[k] = slot_gpa(1) + 64 * k;
		len[k] = 64;
	}
	ck_assert_int_eq(vdev_drvq_add(E->q, addr, len, 2, 1, &tokens[1],
				       VDEV_DRVQ_ADD_NO_INDIRECT), 0);
	ck_assert_uint_eq(vdev_drvq_num_free(E->q), QMAX - 3);
	ck_assert_int_eq(vdev_drvq_kick(E->q), 1);
	ck_assert_int_eq(vdev_drvq_get_used(E->q, NULL, NULL), 1);

	/* Argument checks. */
	ck_assert_int_eq(vdev_drvq_add(E->q, addr, len, 1, 0, NULL, 0), -EINVAL);
	ck_assert_int_eq(vdev_drvq_add(E->q, addr, len, 0, 0, &tokens[0], 0), -EINVAL);
	ck_assert_int_eq(vdev_drvq_add(E->q, NULL, len, 1, 0, &tokens[0], 0), -EINVAL);
	ck_assert_int_eq(vdev_drvq_add(E->q, addr, NULL, 1, 0, &tokens[0], 0), -EINVAL);
	ck_assert_int_eq(vdev_drvq_add(E->q, addr, len, 1, 0, &tokens[0], 0x80), -EINVAL);
	ck_assert_int_eq(vdev_drvq_add(E->q, addr, len, UINT32_MAX, 2, &tokens[0], 0), -EINVAL);
	/* More segments than the ring has descriptors can never fit. */
	for (k = 0; k < MAX_SEGS; k++) {
		addr[k] = slot_gpa(2) + 16 * k;
		len[k] = 16;
	}
	ck_assert_int_eq(vdev_drvq_add(E->q, addr, len, QMAX + 1, 0, &tokens[0], 0), -EINVAL);
	/* Nor a chain of more than 4 GiB. */
	len[0] = UINT32_MAX;
	ck_assert_int_eq(vdev_drvq_add(E->q, addr, len, 2, 0, &tokens[0], 0), -EINVAL);
	ck_assert_uint_eq(vdev_drvq_num_free(E->q), QMAX);
	env_fini();
}
END_TEST

START_TEST(test_fill_and_drain)
{
	int indirect = !!(_i & 2);
	int tokens[QMAX];
	int seen[QMAX];
	unsigned round, n, i;

	env_start_mode(_i);
	E->echo.defer = 1;
	for (round = 0; round < 5; round++) {
		for (n = 0;; n++) {
			int r = add_simple(E->q, n, &tokens[n], 0);

			if (r == -ENOSPC)
				break;
			ck_assert_int_eq(r, 0);
			ck_assert_uint_lt(n, QMAX);
		}
		/* Two descriptors per request, or one indirect each. */
		ck_assert_uint_eq(n, indirect ? QMAX : QMAX / 2);
		ck_assert_uint_eq(vdev_drvq_num_free(E->q), 0);
		ck_assert_int_eq(vdev_drvq_kick(E->q), 1);
		ck_assert(E->echo.pending[0]);
		E->echo.reverse = round & 1;
		echo_run(&E->echo, 0);
		ck_assert_uint_eq(E->echo.served, (round + 1) * n);

		memset(seen, 0, sizeof(seen));
		for (i = 0; i < n; i++) {
			void *tok;
			uint32_t len;
			unsigned idx;

			ck_assert_int_eq(vdev_drvq_get_used(E->q, &tok, &len), 1);
			ck_assert((int *)tok >= &tokens[0] && (int *)tok < &tokens[n]);
			idx = (unsigned)((int *)tok - tokens);
			ck_assert_int_eq(seen[idx]++, 0);
			ck_assert_uint_eq(len, 64);
			ck_assert_int_eq(memcmp(slot_host(idx) + 4096, slot_host(idx), 64), 0);
		}
		ck_assert_int_eq(vdev_drvq_get_used(E->q, NULL, NULL), 0);
		ck_assert_uint_eq(vdev_drvq_num_free(E->q), QMAX);
	}
	env_fini();
}
END_TEST

/* A deterministic mix of adds of 1..5 segments, kicks, device runs (in and
 * out of order) and collections: tokens come back exactly once, with their
 * data, across many ring wraps. _i also picks an odd packed size. */
static void random_workload(int mode, uint32_t qsize)
{
	enum { NTOK = NSLOTS };
	int tokens[NTOK];
	int inflight[NTOK];
	uint32_t state = 12345u + (uint32_t)mode, pending_cnt = 0, done = 0, step;

	env_init(ring_bits(mode));
	E->qsize = qsize;
	E->indirect_max = 3;
	ck_assert_int_eq(vdev_drv_start(E->drv), 0);
	ck_assert_uint_eq(vdev_drvq_size(E->q), qsize ? qsize : QMAX);
	E->echo.defer = 1;
	memset(inflight, 0, sizeof(inflight));

	for (step = 0; step < 3000; step++) {
		uint32_t op;

		state = state * 1103515245u + 12345u;
		op = (state >> 16) % 10;
		if (op < 5) {
			unsigned slot = (state >> 8) % NTOK, nseg = 1 + (state >> 4) % 5, k;
			uint64_t addr[5];
			uint32_t len[5];
			uint32_t out_num = nseg > 1 ? nseg - 1 : 1, in_num = nseg - out_num;
			int r;

			if (inflight[slot])
				continue;
			for (k = 0; k < out_num; k++) {
				addr[k] = slot_gpa(slot) + 16 * k;
				len[k] = 16;
				memset(slot_host(slot) + 16 * k, (int)(step + k), 16);
			}
			for (k = 0; k < in_num; k++) {
				addr[out_num + k] = slot_gpa(slot) + 4096 + 64 * k;
				len[out_num + k] = 64;
			}
			memset(slot_host(slot) + 4096, 0, 256);
			r = vdev_drvq_add(E->q, addr, len, out_num, in_num, &tokens[slot],
					  (state & 0x100) ? VDEV_DRVQ_ADD_NO_INDIRECT : 0);
			if (r == -ENOSPC)
				continue;
			ck_assert_int_eq(r, 0);
			inflight[slot] = in_num ? (int)(16 * out_num) + 1 : 1;
			pending_cnt++;
		} else if (op < 7) {
			int r = vdev_drvq_kick(E->q);

			ck_assert_int_ge(r, 0);
			if (E->echo.pending[0]) {
				E->echo.reverse = (state >> 20) & 1;
				echo_run(&E->echo, 0);
			}
		} else {
			void *tok;
			uint32_t len;
			int r = vdev_drvq_get_used(E->q, &tok, &len);
			unsigned idx;

			ck_assert_int_ge(r, 0);
			if (!r)
				continue;
			idx = (unsigned)((int *)tok - tokens);
			ck_assert_uint_lt(idx, NTOK);
			ck_assert_int_ne(inflight[idx], 0);
			ck_assert_uint_eq(len, (uint32_t)inflight[idx] - 1);
			ck_assert_int_eq(memcmp(slot_host(idx) + 4096, slot_host(idx), len), 0);
			inflight[idx] = 0;
			pending_cnt--;
			done++;
		}
	}
	/* Drain. */
	ck_assert_int_ge(vdev_drvq_kick(E->q), 0);
	if (E->echo.pending[0])
		echo_run(&E->echo, 0);
	for (;;) {
		void *tok;
		uint32_t len;
		int r = vdev_drvq_get_used(E->q, &tok, &len);
		unsigned idx;

		ck_assert_int_ge(r, 0);
		if (!r)
			break;
		idx = (unsigned)((int *)tok - tokens);
		ck_assert_int_ne(inflight[idx], 0);
		inflight[idx] = 0;
		pending_cnt--;
		done++;
	}
	ck_assert_uint_eq(pending_cnt, 0);
	ck_assert_uint_eq(vdev_drvq_num_free(E->q), vdev_drvq_size(E->q));
	ck_assert_uint_gt(done, 500);
	env_fini();
}

START_TEST(test_random_workload)
{
	random_workload(_i, 0);
}
END_TEST

START_TEST(test_random_workload_odd_packed)
{
	/* Packed rings may have any size; 7 and 13 wrap at odd places. */
	random_workload(1 | (_i & 6), (_i & 1) ? 13 : 7);
}
END_TEST

START_TEST(test_kick_suppression)
{
	int tokens[NSLOTS];
	unsigned i, sent = 0, collected = 0, calls = 0;
	int suppress = _i >= 8;

	env_start_mode(_i & 7);
	E->echo.defer = 1;
	E->echo.suppress = suppress;
	for (i = 0; i < NSLOTS; i++) {
		int r;

		ck_assert_int_eq(add_simple(E->q, i, &tokens[i], 0), 0);
		r = vdev_drvq_kick(E->q);
		ck_assert_int_ge(r, 0);
		sent += (unsigned)r;
		calls++;
		/* The device thread gets to run only every fourth request, and
		 * only if it was notified: a lost kick leaves requests behind. */
		if (i % 4 == 3 && E->echo.pending[0]) {
			echo_run(&E->echo, 0);
			while (vdev_drvq_get_used(E->q, NULL, NULL) == 1)
				collected++;
		}
	}
	if (E->echo.pending[0])
		echo_run(&E->echo, 0);
	while (vdev_drvq_get_used(E->q, NULL, NULL) == 1)
		collected++;
	ck_assert_uint_eq(collected, NSLOTS);
	ck_assert_uint_eq(E->echo.kicks[0], sent);
	/* With EVENT_IDX a device that has not caught up yet is not kicked
	 * again even if it never asked: avail_event stays where it last
	 * looked. */
	if (suppress || (_i & 4))
		ck_assert_uint_le(sent, NSLOTS / 4);
	else
		ck_assert_uint_eq(sent, calls);
	/* Nothing added since the last kick: nothing to say. */
	ck_assert_int_eq(vdev_drvq_kick(E->q), 0);
	env_fini();
}
END_TEST

START_TEST(test_interrupt_suppression)
{
	int event_idx = !!(_i & 4);
	int tokens[8];
	unsigned i;

	env_start_mode(_i);
	ck_assert_int_eq(vdev_drvq_enable_interrupts(E->q, 1), 0);
	ck_assert_int_eq(add_simple(E->q, 0, &tokens[0], 0), 0);
	ck_assert_int_eq(vdev_drvq_kick(E->q), 1);
	ck_assert_uint_eq(E->echo.irqs[0], 1);
	ck_assert_int_eq(vdev_drvq_get_used(E->q, NULL, NULL), 1);

	/* Disabled: work completes without interrupts. */
	ck_assert_int_eq(vdev_drvq_enable_interrupts(E->q, 0), 0);
	for (i = 1; i < 6; i++) {
		ck_assert_int_eq(add_simple(E->q, i, &tokens[i], 0), 0);
		ck_assert_int_eq(vdev_drvq_kick(E->q), 1);
	}
	ck_assert_uint_eq(E->echo.served, 6);
	ck_assert_uint_eq(E->echo.irqs[0], 1);
	/* Re-enabling reports what is already there. */
	ck_assert_int_eq(vdev_drvq_enable_interrupts(E->q, 1), 1);
	for (i = 1; i < 6; i++)
		ck_assert_int_eq(vdev_drvq_get_used(E->q, NULL, NULL), 1);
	ck_assert_int_eq(vdev_drvq_enable_interrupts(E->q, 1), 0);
	ck_assert_uint_eq(E->echo.irqs[0], 1);

	/* Enabled and collected each time: one interrupt per completion. */
	for (i = 0; i < 3; i++) {
		ck_assert_int_eq(add_simple(E->q, i, &tokens[i], 0), 0);
		ck_assert_int_eq(vdev_drvq_kick(E->q), 1);
		ck_assert_uint_eq(E->echo.irqs[0], 2 + i);
		ck_assert_int_eq(vdev_drvq_get_used(E->q, NULL, NULL), 1);
	}
	/* Two completions before the driver looks: with EVENT_IDX the device
	 * interrupts only for the first. */
	for (i = 0; i < 2; i++) {
		ck_assert_int_eq(add_simple(E->q, i, &tokens[i], 0), 0);
		ck_assert_int_eq(vdev_drvq_kick(E->q), 1);
	}
	ck_assert_uint_eq(E->echo.irqs[0], event_idx ? 5 : 6);
	ck_assert_int_eq(vdev_drvq_get_used(E->q, NULL, NULL), 1);
	ck_assert_int_eq(vdev_drvq_get_used(E->q, NULL, NULL), 1);
	ck_assert_int_eq(vdev_drvq_get_used(E->q, NULL, NULL), 0);
	env_fini();
}
END_TEST

/* ------------------------------------------------------------------------ */
/* A device that returns what is not in flight. */

static void *ring_ptr(unsigned which, uint64_t len)
{
	void *p = vdev_mem_ptr(E->mem, E->ring_addr[0][which], len, VDEV_MEM_WRITE);

	ck_assert_ptr_nonnull(p);
	return p;
}

static void check_broken(void)
{
	int t;
	void *tok;
	uint32_t len;

	ck_assert_int_eq(vdev_drvq_get_used(E->q, &tok, &len), -EBADMSG);
	ck_assert_int_eq(add_simple(E->q, 3, &t, 0), -EBADMSG);
	ck_assert_int_eq(vdev_drvq_kick(E->q), -EBADMSG);
	ck_assert_int_eq(vdev_drvq_enable_interrupts(E->q, 1), -EBADMSG);
	ck_assert_uint_eq(vdev_drvq_num_free(E->q), 0);
}

/* _i: 0 good id (control), 1 free id, 2 id out of range, 3 index too far. */
START_TEST(test_bad_used_split)
{
	int token;
	void *tok;
	uint32_t len;
	struct vring_used *u;
	static const uint32_t ids[4] = {0, 5, 1000, 0};

	env_start_mode(0);
	E->echo.defer = 1;
	ck_assert_int_eq(add_simple(E->q, 0, &token, 0), 0); /* head 0 */
	u = ring_ptr(2, 6 + 8 * QMAX);
	__atomic_store_n(&u->ring[0].id, ids[_i], __ATOMIC_RELAXED);
	__atomic_store_n(&u->ring[0].len, 64, __ATOMIC_RELAXED);
	__atomic_store_n(&u->idx, (uint16_t)(_i == 3 ? 2 : 1), __ATOMIC_RELEASE);
	if (_i == 0) {
		ck_assert_int_eq(vdev_drvq_get_used(E->q, &tok, &len), 1);
		ck_assert_ptr_eq(tok, &token);
		ck_assert_uint_eq(len, 64);
		ck_assert_int_eq(vdev_drvq_get_used(E->q, &tok, &len), 0);
	} else {
		ck_assert_int_eq(vdev_drvq_get_used(E->q, &tok, &len), -EBADMSG);
		check_broken();
	}
	env_fini();
}
END_TEST

/* _i: 0 good id (control), 1 free id, 2 id out of range. */
START_TEST(test_bad_used_packed)
{
	int token;
	void *tok;
	uint32_t len;
	struct vring_packed_desc *d;
	static const uint16_t ids[3] = {0, 7, 999};

	env_start_mode(1);
	E->echo.defer = 1;
	ck_assert_int_eq(add_simple(E->q, 0, &token, 0), 0); /* id 0, slots 0-1 */
	d = ring_ptr(0, 16 * QMAX);
	__atomic_store_n(&d[0].id, ids[_i], __ATOMIC_RELAXED);
	__atomic_store_n(&d[0].len, 64, __ATOMIC_RELAXED);
	__atomic_store_n(&d[0].flags,
			 (uint16_t)((1u << VRING_PACKED_DESC_F_AVAIL) |
				    (1u << VRING_PACKED_DESC_F_USED)),
			 __ATOMIC_RELEASE);
	if (_i == 0) {
		ck_assert_int_eq(vdev_drvq_get_used(E->q, &tok, &len), 1);
		ck_assert_ptr_eq(tok, &token);
		ck_assert_uint_eq(len, 64);
		ck_assert_int_eq(vdev_drvq_get_used(E->q, &tok, &len), 0);
		ck_assert_uint_eq(vdev_drvq_num_free(E->q), QMAX);
	} else {
		ck_assert_int_eq(vdev_drvq_get_used(E->q, &tok, &len), -EBADMSG);
		check_broken();
	}
	env_fini();
}
END_TEST

START_TEST(test_used_len_clamped)
{
	int token;
	void *tok;
	uint32_t len;
	struct vring_used *u;

	env_start_mode(0);
	E->echo.defer = 1;
	ck_assert_int_eq(add_simple(E->q, 0, &token, 0), 0);
	u = ring_ptr(2, 6 + 8 * QMAX);
	__atomic_store_n(&u->ring[0].id, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&u->ring[0].len, 100000, __ATOMIC_RELAXED);
	__atomic_store_n(&u->idx, (uint16_t)1, __ATOMIC_RELEASE);
	ck_assert_int_eq(vdev_drvq_get_used(E->q, &tok, &len), 1);
	ck_assert_uint_eq(len, 64); /* no more than the writable part */
	env_fini();
}
END_TEST

static Suite *driver_suite(void)
{
	Suite *s = suite_create("driver");
	TCase *tc = tcase_create("init");

	tcase_add_test(tc, test_init_args);
	tcase_add_test(tc, test_start_sequence);
	tcase_add_test(tc, test_setup_before_start);
	tcase_add_test(tc, test_features_refused);
	tcase_add_test(tc, test_no_version_1);
	tcase_add_test(tc, test_pre_init_error);
	tcase_add_test(tc, test_start_failures);
	tcase_add_test(tc, test_arena_exhausted);
	tcase_add_loop_test(tc, test_reset_restart, 0, 8);
	suite_add_tcase(s, tc);

	tc = tcase_create("config");
	tcase_add_test(tc, test_config_read_generation);
	tcase_add_test(tc, test_config_write);
	suite_add_tcase(s, tc);

	tc = tcase_create("rings");
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_roundtrip_segments, 0, 8);
	tcase_add_loop_test(tc, test_fill_and_drain, 0, 8);
	tcase_add_loop_test(tc, test_random_workload, 0, 8);
	tcase_add_loop_test(tc, test_random_workload_odd_packed, 0, 8);
	tcase_add_loop_test(tc, test_kick_suppression, 0, 16);
	tcase_add_loop_test(tc, test_interrupt_suppression, 0, 8);
	suite_add_tcase(s, tc);

	tc = tcase_create("hostile");
	tcase_add_loop_test(tc, test_bad_used_split, 0, 4);
	tcase_add_loop_test(tc, test_bad_used_packed, 0, 3);
	tcase_add_test(tc, test_used_len_clamped);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(driver_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
