/* SPDX-License-Identifier: MIT */
/* vdev_version() and the log sink (vdev_log_set + the internal vdi_log). */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <virtio-dev/virtio-dev.h>

#include "internal/util.h"

#define STR_(x) #x
#define STR(x) STR_(x)

START_TEST(version_matches_header)
{
	const char *v = vdev_version();
	char want[64];

	ck_assert_ptr_nonnull(v);
	snprintf(want, sizeof(want), "%d.%d.%d", VDEV_VERSION_MAJOR, VDEV_VERSION_MINOR,
		 VDEV_VERSION_MICRO);
	ck_assert_str_eq(v, want);
	ck_assert_str_eq(v, STR(VDEV_VERSION_MAJOR) "." STR(VDEV_VERSION_MINOR) "." STR(
				    VDEV_VERSION_MICRO));
	/* A static string: the same pointer every time. */
	ck_assert_ptr_eq(v, vdev_version());
}
END_TEST

/* A recording sink. */
struct rec {
	int calls;
	int level;
	char msg[4096];
	size_t len;
};

static void rec_sink(void *opaque, int level, const char *msg)
{
	struct rec *r = opaque;

	r->calls++;
	r->level = level;
	r->len = strlen(msg);
	snprintf(r->msg, sizeof(r->msg), "%s", msg);
}

START_TEST(sink_receives_message)
{
	struct rec r = {0};

	vdev_log_set(rec_sink, &r, VDEV_LOG_DEBUG);
	vdi_log(VDEV_LOG_WARNING, "queue %d: bad index %u", 3, 70000u);
	ck_assert_int_eq(r.calls, 1);
	ck_assert_int_eq(r.level, VDEV_LOG_WARNING);
	ck_assert_str_eq(r.msg, "queue 3: bad index 70000");

	vdi_log(VDEV_LOG_ERR, "%s", "second");
	ck_assert_int_eq(r.calls, 2);
	ck_assert_int_eq(r.level, VDEV_LOG_ERR);
	ck_assert_str_eq(r.msg, "second");
	vdev_log_set(NULL, NULL, 0);
}
END_TEST

START_TEST(trailing_newline_stripped)
{
	struct rec r = {0};

	vdev_log_set(rec_sink, &r, VDEV_LOG_DEBUG);
	vdi_log(VDEV_LOG_INFO, "line\n");
	ck_assert_int_eq(r.calls, 1);
	ck_assert_str_eq(r.msg, "line");
	vdev_log_set(NULL, NULL, 0);
}
END_TEST

START_TEST(max_level_filters)
{
	struct rec r = {0};

	vdev_log_set(rec_sink, &r, VDEV_LOG_WARNING);
	vdi_log(VDEV_LOG_DEBUG, "debug");
	vdi_log(VDEV_LOG_INFO, "info");
	ck_assert_int_eq(r.calls, 0);
	vdi_log(VDEV_LOG_WARNING, "warning");
	ck_assert_int_eq(r.calls, 1);
	ck_assert_str_eq(r.msg, "warning");
	vdi_log(VDEV_LOG_ERR, "err");
	ck_assert_int_eq(r.calls, 2);
	ck_assert_int_eq(r.level, VDEV_LOG_ERR);

	/* Raising the threshold again lets debug through. */
	vdev_log_set(rec_sink, &r, VDEV_LOG_DEBUG);
	vdi_log(VDEV_LOG_DEBUG, "debug");
	ck_assert_int_eq(r.calls, 3);
	ck_assert_str_eq(r.msg, "debug");

	/* A negative threshold drops everything. */
	vdev_log_set(rec_sink, &r, -1);
	vdi_log(VDEV_LOG_ERR, "err");
	ck_assert_int_eq(r.calls, 3);
	vdev_log_set(NULL, NULL, 0);
}
END_TEST

START_TEST(null_sink_drops)
{
	struct rec r = {0};

	/* Default: no sink, nothing happens (and nothing is printed). */
	vdi_log(VDEV_LOG_ERR, "nobody listens");

	vdev_log_set(rec_sink, &r, VDEV_LOG_DEBUG);
	vdi_log(VDEV_LOG_ERR, "one");
	ck_assert_int_eq(r.calls, 1);

	/* Removing the sink, even with a permissive level, drops messages. */
	vdev_log_set(NULL, &r, VDEV_LOG_DEBUG);
	vdi_log(VDEV_LOG_ERR, "two");
	ck_assert_int_eq(r.calls, 1);
	ck_assert_str_eq(r.msg, "one");
}
END_TEST

START_TEST(sink_gets_its_opaque)
{
	struct rec a = {0}, b = {0};

	vdev_log_set(rec_sink, &a, VDEV_LOG_DEBUG);
	vdi_log(VDEV_LOG_INFO, "to a");
	vdev_log_set(rec_sink, &b, VDEV_LOG_DEBUG);
	vdi_log(VDEV_LOG_INFO, "to b");
	ck_assert_int_eq(a.calls, 1);
	ck_assert_int_eq(b.calls, 1);
	ck_assert_str_eq(a.msg, "to a");
	ck_assert_str_eq(b.msg, "to b");
	vdev_log_set(NULL, NULL, 0);
}
END_TEST

START_TEST(long_message_truncated)
{
	static char big[8192];
	struct rec r = {0};
	size_t i;

	for (i = 0; i < sizeof(big) - 1; i++)
		big[i] = (char)('a' + i % 26);
	big[sizeof(big) - 1] = '\0';

	vdev_log_set(rec_sink, &r, VDEV_LOG_DEBUG);
	vdi_log(VDEV_LOG_ERR, "x=%s", big);
	ck_assert_int_eq(r.calls, 1);
	/* Cut, not dropped: a non-empty prefix of the full message. */
	ck_assert_uint_gt(r.len, 100);
	ck_assert_uint_lt(r.len, sizeof(big));
	ck_assert_int_eq(strncmp(r.msg, "x=", 2), 0);
	ck_assert_int_eq(memcmp(r.msg + 2, big, r.len - 2), 0);
	vdev_log_set(NULL, NULL, 0);
}
END_TEST

/* Concurrent logging and sink replacement: each sink must only ever see its
 * own opaque, and nothing may crash or race (run under TSan/ASan). */
struct pair {
	unsigned long calls;
	struct pair *self;
};

static void pair_sink(void *opaque, int level, const char *msg)
{
	struct pair *p = opaque;

	(void)level;
	(void)msg;
	if (p->self != p)
		abort();
	p->calls++; /* serialised by the library's delivery lock */
}

static void *log_thread(void *arg)
{
	int i;

	(void)arg;
	for (i = 0; i < 20000; i++)
		vdi_log(VDEV_LOG_INFO, "msg %d", i);
	return NULL;
}

START_TEST(concurrent_set_and_log)
{
	struct pair a = {0, NULL}, b = {0, NULL};
	pthread_t t[2];
	int i;

	a.self = &a;
	b.self = &b;
	for (i = 0; i < 2; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, log_thread, NULL), 0);
	for (i = 0; i < 2000; i++) {
		vdev_log_set(pair_sink, (i & 1) ? &a : &b, VDEV_LOG_DEBUG);
		if (i % 3 == 0)
			vdev_log_set(NULL, NULL, VDEV_LOG_DEBUG);
	}
	for (i = 0; i < 2; i++)
		ck_assert_int_eq(pthread_join(t[i], NULL), 0);
	vdev_log_set(NULL, NULL, 0);
}
END_TEST

static Suite *version_suite(void)
{
	Suite *s = suite_create("version");
	TCase *tc = tcase_create("version");
	TCase *tl = tcase_create("log");

	tcase_add_test(tc, version_matches_header);
	suite_add_tcase(s, tc);

	tcase_add_test(tl, sink_receives_message);
	tcase_add_test(tl, trailing_newline_stripped);
	tcase_add_test(tl, max_level_filters);
	tcase_add_test(tl, null_sink_drops);
	tcase_add_test(tl, sink_gets_its_opaque);
	tcase_add_test(tl, long_message_truncated);
	tcase_add_test(tl, concurrent_set_and_log);
	tcase_set_timeout(tl, 60);
	suite_add_tcase(s, tl);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(version_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
