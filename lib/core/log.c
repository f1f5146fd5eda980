/* SPDX-License-Identifier: MIT */
/*
 * The process-wide log sink. The library never prints: every diagnostic goes
 * through vdi_log() to the sink the VMM installed with vdev_log_set(), or
 * nowhere.
 *
 * The level threshold is read with one atomic load before any formatting, so a
 * filtered message (or one with no sink) costs a load and a compare, and the
 * hot path never takes the lock. The (fn, opaque) pair is only read and written
 * under the mutex, so a sink is never called with another sink's opaque.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <virtio-dev/common.h>

#include "internal/util.h"

/* Long enough for any message the library writes; longer ones are cut. */
#define VDI_LOG_LINE_MAX 512

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static vdev_log_fn log_fn;
static void *log_opaque;
/* -1 while no sink is installed: every level (>= 0) is above it. */
static int log_max_level = -1;

VDEV_EXPORT void vdev_log_set(vdev_log_fn fn, void *opaque, int max_level)
{
	pthread_mutex_lock(&log_lock);
	log_fn = fn;
	log_opaque = opaque;
	__atomic_store_n(&log_max_level, fn ? max_level : -1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&log_lock);
}

void vdi_log(int level, const char *fmt, ...)
{
	char line[VDI_LOG_LINE_MAX];
	va_list ap;
	size_t n;
	int r;

	if (level < 0 || level > __atomic_load_n(&log_max_level, __ATOMIC_ACQUIRE))
		return;

	va_start(ap, fmt);
	r = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (r < 0)
		return;

	/* The sink gets a line without a trailing newline. vsnprintf always
	 * terminates, so a too-long message is simply cut at the buffer end. */
	n = strlen(line);
	while (n > 0 && line[n - 1] == '\n')
		line[--n] = '\0';

	pthread_mutex_lock(&log_lock);
	/* The sink may have been removed (or replaced) since the level check. */
	if (log_fn && level <= __atomic_load_n(&log_max_level, __ATOMIC_RELAXED))
		log_fn(log_opaque, level, line);
	pthread_mutex_unlock(&log_lock);
}
