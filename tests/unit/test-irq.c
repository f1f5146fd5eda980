/* SPDX-License-Identifier: MIT */
/* Unit tests for vdev_irq: the eventfd and callback variants. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include "virtio-dev/irq.h"

/* Reads (and so resets) an eventfd counter; 0 when nothing is pending. */
static uint64_t drain(int fd)
{
	uint64_t v = 0;
	ssize_t n = read(fd, &v, sizeof(v));

	if (n < 0) {
		ck_assert_int_eq(errno, EAGAIN);
		return 0;
	}
	ck_assert_int_eq(n, sizeof(v));
	return v;
}

static int open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

START_TEST(test_eventfd_per_queue)
{
	vdev_irq *irq = NULL;
	int fd[4], i, j;

	ck_assert_int_eq(vdev_irq_new_eventfd(3, 0, &irq), 0);
	for (i = 0; i < 3; i++)
		fd[i] = vdev_irq_eventfd(irq, VDEV_IRQ_QUEUE, (uint32_t)i);
	fd[3] = vdev_irq_eventfd(irq, VDEV_IRQ_CONFIG, 0);
	for (i = 0; i < 4; i++) {
		ck_assert_int_ge(fd[i], 0);
		ck_assert_int_ne(fcntl(fd[i], F_GETFD) & FD_CLOEXEC, 0);
		ck_assert_int_ne(fcntl(fd[i], F_GETFL) & O_NONBLOCK, 0);
		for (j = 0; j < i; j++)
			ck_assert_int_ne(fd[i], fd[j]);
		ck_assert_uint_eq(drain(fd[i]), 0);
	}

	ck_assert_int_eq(vdev_irq_trigger(irq, VDEV_IRQ_QUEUE, 0), 0);
	ck_assert_uint_eq(drain(fd[0]), 1);
	ck_assert_uint_eq(drain(fd[1]), 0);
	ck_assert_uint_eq(drain(fd[2]), 0);
	ck_assert_uint_eq(drain(fd[3]), 0);

	ck_assert_int_eq(vdev_irq_trigger(irq, VDEV_IRQ_QUEUE, 2), 0);
	ck_assert_int_eq(vdev_irq_trigger(irq, VDEV_IRQ_QUEUE, 2), 0);
	ck_assert_uint_eq(drain(fd[0]), 0);
	ck_assert_uint_eq(drain(fd[1]), 0);
	ck_assert_uint_eq(drain(fd[2]), 2);
	ck_assert_uint_eq(drain(fd[3]), 0);

	ck_assert_int_eq(vdev_irq_trigger(irq, VDEV_IRQ_CONFIG, 0), 0);
	ck_assert_uint_eq(drain(fd[0]), 0);
	ck_assert_uint_eq(drain(fd[1]), 0);
	ck_assert_uint_eq(drain(fd[2]), 0);
	ck_assert_uint_eq(drain(fd[3]), 1);

	/* Freeing closes every eventfd it created. */
	vdev_irq_free(irq);
	for (i = 0; i < 4; i++) {
		ck_assert_int_eq(fcntl(fd[i], F_GETFD), -1);
		ck_assert_int_eq(errno, EBADF);
	}
}
END_TEST

START_TEST(test_eventfd_shared)
{
	vdev_irq *irq = NULL;
	int fd;
	uint32_t q;

	ck_assert_int_eq(vdev_irq_new_eventfd(4, VDEV_IRQ_F_SHARED, &irq), 0);
	fd = vdev_irq_eventfd(irq, VDEV_IRQ_CONFIG, 0);
	ck_assert_int_ge(fd, 0);
	for (q = 0; q < 4; q++)
		ck_assert_int_eq(vdev_irq_eventfd(irq, VDEV_IRQ_QUEUE, q), fd);
	ck_assert_int_ne(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
	ck_assert_int_ne(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);

	ck_assert_int_eq(vdev_irq_trigger(irq, VDEV_IRQ_QUEUE, 0), 0);
	ck_assert_int_eq(vdev_irq_trigger(irq, VDEV_IRQ_QUEUE, 3), 0);
	ck_assert_int_eq(vdev_irq_trigger(irq, VDEV_IRQ_CONFIG, 0), 0);
	ck_assert_uint_eq(drain(fd), 3);
	/* Queue indices are still checked against num_queues. */
	ck_assert_int_eq(vdev_irq_trigger(irq, VDEV_IRQ_QUEUE, 4), -EINVAL);
	ck_assert_int_eq(vdev_irq_eventfd(irq, VDEV_IRQ_QUEUE, 4), -EINVAL);
	ck_assert_uint_eq(drain(fd), 0);
	vdev_irq_free(irq);
	ck_assert_int_eq(fcntl(fd, F_GETFD), -1);
}
END_TEST

START_TEST(test_eventfd_invalid)
{
	vdev_irq *irq = NULL;
	int fd[4], i;

	ck_assert_int_eq(vdev_irq_new_eventfd(3, 0, &irq), 0);
	for (i = 0; i < 3; i++)
		fd[i] = vdev_irq_eventfd(irq, VDEV_IRQ_QUEUE, (uint32_t)i);
	fd[3] = vdev_irq_eventfd(irq, VDEV_IRQ_CONFIG, 0);

	ck_assert_int_eq(vdev_irq_eventfd(irq, 2, 0), -EINVAL);
	ck_assert_int_eq(vdev_irq_eventfd(irq, UINT32_MAX, 0), -EINVAL);
	ck_assert_int_eq(vdev_irq_eventfd(irq, VDEV_IRQ_QUEUE, 3), -EINVAL);
	ck_assert_int_eq(vdev_irq_eventfd(irq, VDEV_IRQ_QUEUE, UINT32_MAX), -EINVAL);
	ck_assert_int_eq(vdev_irq_eventfd(irq, VDEV_IRQ_CONFIG, 1), -EINVAL);
	ck_assert_int_eq(vdev_irq_eventfd(NULL, VDEV_IRQ_QUEUE, 0), -EINVAL);

	ck_assert_int_eq(vdev_irq_trigger(irq, 2, 0), -EINVAL);
	ck_assert_int_eq(vdev_irq_trigger(irq, VDEV_IRQ_QUEUE, 3), -EINVAL);
	ck_assert_int_eq(vdev_irq_trigger(irq, VDEV_IRQ_QUEUE, UINT32_MAX), -EINVAL);
	ck_assert_int_eq(vdev_irq_trigger(irq, VDEV_IRQ_CONFIG, 1), -EINVAL);
	ck_assert_int_eq(vdev_irq_trigger(NULL, VDEV_IRQ_QUEUE, 0), -EINVAL);
	/* None of the refused triggers reached an eventfd. */
	for (i = 0; i < 4; i++)
		ck_assert_uint_eq(drain(fd[i]), 0);
	vdev_irq_free(irq);
}
END_TEST

START_TEST(test_eventfd_new_invalid)
{
	vdev_irq *irq = (vdev_irq *)&irq;
	int before = open_fds();

	ck_assert_int_eq(vdev_irq_new_eventfd(0, 0, &irq), -EINVAL);
	ck_assert_int_eq(vdev_irq_new_eventfd(0, VDEV_IRQ_F_SHARED, &irq), -EINVAL);
	ck_assert_int_eq(vdev_irq_new_eventfd(65536, 0, &irq), -EINVAL);
	ck_assert_int_eq(vdev_irq_new_eventfd(1, 0x2, &irq), -EINVAL);
	ck_assert_int_eq(vdev_irq_new_eventfd(1, 0, NULL), -EINVAL);
	ck_assert_ptr_eq(irq, (vdev_irq *)&irq);
	ck_assert_int_eq(open_fds(), before);

	/* The maximum is accepted (shared, so it costs one fd). */
	ck_assert_int_eq(vdev_irq_new_eventfd(65535, VDEV_IRQ_F_SHARED, &irq), 0);
	ck_assert_int_ge(vdev_irq_eventfd(irq, VDEV_IRQ_QUEUE, 65534), 0);
	vdev_irq_free(irq);
	vdev_irq_free(NULL);
}
END_TEST

/* A constructor that runs out of fds half way closes what it opened: with
 * exactly 4 free fd slots, 8 queues + config fail with -EMFILE and afterwards
 * the same 4 slots are free again. */
static int fill_fds(int src, int *fds, int max)
{
	int n = 0;

	while (n < max) {
		int fd = dup(src);

		if (fd < 0) {
			ck_assert_int_eq(errno, EMFILE);
			break;
		}
		fds[n++] = fd;
	}
	return n;
}

START_TEST(test_eventfd_half_built)
{
	struct rlimit old, lim;
	vdev_irq *irq = (vdev_irq *)&irq;
	DIR *d;
	struct dirent *e;
	int maxfd = 2, fds[1024], n, m, i, ret, src;

	src = open("/dev/null", O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(src, 0);
	d = opendir("/proc/self/fd");
	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d)))
		if (e->d_name[0] != '.' && atoi(e->d_name) > maxfd)
			maxfd = atoi(e->d_name);
	closedir(d);

	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
	lim = old;
	lim.rlim_cur = (rlim_t)maxfd + 1 + 16;
	ck_assert_int_le(lim.rlim_cur, old.rlim_cur);
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &lim), 0);

	n = fill_fds(src, fds, 1024);
	ck_assert_int_ge(n, 4);
	ck_assert_int_lt(n, 1024);
	for (i = n - 4; i < n; i++)
		close(fds[i]);
	n -= 4;

	ret = vdev_irq_new_eventfd(8, 0, &irq);
	m = fill_fds(src, fds + n, 1024 - n);
	for (i = 0; i < n + m; i++)
		close(fds[i]);
	close(src);
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);

	ck_assert_int_eq(ret, -EMFILE);
	ck_assert_ptr_eq(irq, (vdev_irq *)&irq);
	ck_assert_int_eq(m, 4);
}
END_TEST

START_TEST(test_eventfd_saturated)
{
	vdev_irq *irq = NULL;
	uint64_t max = UINT64_C(0xfffffffffffffffe);
	int fd;

	ck_assert_int_eq(vdev_irq_new_eventfd(1, 0, &irq), 0);
	fd = vdev_irq_eventfd(irq, VDEV_IRQ_QUEUE, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, &max, sizeof(max)), sizeof(max));
	/* The counter cannot grow: the interrupt is already pending, which is
	 * success, not an error. */
	ck_assert_int_eq(vdev_irq_trigger(irq, VDEV_IRQ_QUEUE, 0), 0);
	ck_assert_uint_eq(drain(fd), max);
	ck_assert_int_eq(vdev_irq_trigger(irq, VDEV_IRQ_QUEUE, 0), 0);
	ck_assert_uint_eq(drain(fd), 1);
	vdev_irq_free(irq);
}
END_TEST

struct cb {
	int calls;
	void *opaque;
	uint32_t kind, queue;
	int ret;
};

static int cb_trigger(void *opaque, uint32_t kind, uint32_t queue)
{
	struct cb *c = opaque;

	c->calls++;
	c->opaque = opaque;
	c->kind = kind;
	c->queue = queue;
	return c->ret;
}

START_TEST(test_callback)
{
	struct vdev_irq_ops ops = VDEV_IRQ_OPS_INIT;
	struct cb c = {0};
	vdev_irq *irq = NULL;

	ops.trigger = cb_trigger;
	ck_assert_int_eq(vdev_irq_new(&ops, &c, &irq), 0);
	ops.trigger = NULL; /* copied: later changes do not matter */

	ck_assert_int_eq(vdev_irq_trigger(irq, VDEV_IRQ_QUEUE, 5), 0);
	ck_assert_int_eq(c.calls, 1);
	ck_assert_ptr_eq(c.opaque, &c);
	ck_assert_uint_eq(c.kind, VDEV_IRQ_QUEUE);
	ck_assert_uint_eq(c.queue, 5);

	ck_assert_int_eq(vdev_irq_trigger(irq, VDEV_IRQ_CONFIG, 0), 0);
	ck_assert_int_eq(c.calls, 2);
	ck_assert_uint_eq(c.kind, VDEV_IRQ_CONFIG);
	ck_assert_uint_eq(c.queue, 0);

	/* The callback's error comes back unchanged. */
	c.ret = -EIO;
	ck_assert_int_eq(vdev_irq_trigger(irq, VDEV_IRQ_QUEUE, 1), -EIO);
	ck_assert_int_eq(c.calls, 3);
	c.ret = -EAGAIN;
	ck_assert_int_eq(vdev_irq_trigger(irq, VDEV_IRQ_QUEUE, 1), -EAGAIN);

	/* Malformed requests never reach the callback. */
	c.calls = 0;
	ck_assert_int_eq(vdev_irq_trigger(irq, 2, 0), -EINVAL);
	ck_assert_int_eq(vdev_irq_trigger(irq, VDEV_IRQ_CONFIG, 3), -EINVAL);
	ck_assert_int_eq(c.calls, 0);

	/* No eventfd behind a callback irq. */
	ck_assert_int_eq(vdev_irq_eventfd(irq, VDEV_IRQ_QUEUE, 0), -EOPNOTSUPP);
	ck_assert_int_eq(vdev_irq_eventfd(irq, VDEV_IRQ_CONFIG, 0), -EOPNOTSUPP);
	vdev_irq_free(irq);
}
END_TEST

START_TEST(test_callback_new_invalid)
{
	struct vdev_irq_ops ops = VDEV_IRQ_OPS_INIT;
	struct cb c = {0};
	vdev_irq *irq = (vdev_irq *)&c;
	struct {
		struct vdev_irq_ops ops;
		uint64_t future;
	} bigger = {{0}, 0};

	ck_assert_int_eq(vdev_irq_new(&ops, NULL, &irq), -EINVAL); /* no trigger */
	ops.trigger = cb_trigger;
	ck_assert_int_eq(vdev_irq_new(NULL, NULL, &irq), -EINVAL);
	ck_assert_int_eq(vdev_irq_new(&ops, NULL, NULL), -EINVAL);
	ops.struct_size = 0;
	ck_assert_int_eq(vdev_irq_new(&ops, NULL, &irq), -EINVAL);
	/* A struct_size that stops before trigger means no trigger. */
	ops.struct_size = sizeof(uint32_t);
	ck_assert_int_eq(vdev_irq_new(&ops, NULL, &irq), -EINVAL);
	ck_assert_ptr_eq(irq, (vdev_irq *)&c);

	/* A newer caller's larger struct works. */
	bigger.ops.struct_size = sizeof(bigger);
	bigger.ops.trigger = cb_trigger;
	ck_assert_int_eq(vdev_irq_new(&bigger.ops, &c, &irq), 0);
	ck_assert_int_eq(vdev_irq_trigger(irq, VDEV_IRQ_QUEUE, 0), 0);
	ck_assert_int_eq(c.calls, 1);
	vdev_irq_free(irq);
	vdev_irq_free(NULL);
}
END_TEST

static Suite *irq_suite(void)
{
	Suite *s = suite_create("irq");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_eventfd_per_queue);
	tcase_add_test(tc, test_eventfd_shared);
	tcase_add_test(tc, test_eventfd_invalid);
	tcase_add_test(tc, test_eventfd_new_invalid);
	tcase_add_test(tc, test_eventfd_half_built);
	tcase_add_test(tc, test_eventfd_saturated);
	tcase_add_test(tc, test_callback);
	tcase_add_test(tc, test_callback_new_invalid);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(irq_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
