/* SPDX-License-Identifier: MIT */
/*
 * libvirtio-dev: common definitions (export macro, version, logging).
 *
 * Thread-safety: every function here may be called from any thread.
 */
#ifndef VIRTIO_DEV_COMMON_H
#define VIRTIO_DEV_COMMON_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define VDEV_EXPORT __attribute__((visibility("default")))
#else
#define VDEV_EXPORT
#endif

/*
 * Initializer of a versioned struct: struct_size set, everything else zero.
 * C gets designated initializers; C++ (where g++ -Wextra warns about missing
 * designated members, and C++ before 20 has none at all) gets a
 * value-initialized copy from an inline template (a positional {sizeof}
 * would trip -Wmissing-field-initializers).
 */
#ifdef __cplusplus
} /* extern "C" */
template <typename T> static inline T vdev_struct_init_(void)
{
	T v = T();
	v.struct_size = sizeof(T);
	return v;
}
extern "C" {
#define VDEV_STRUCT_INIT(type) vdev_struct_init_<type>()
#else
#define VDEV_STRUCT_INIT(type) {.struct_size = sizeof(type)}
#endif

/* Version of the headers; vdev_version() gives the library's. */
#define VDEV_VERSION_MAJOR 0
#define VDEV_VERSION_MINOR 2
#define VDEV_VERSION_MICRO 0

/**
 * vdev_version() - version string of the loaded library, "MAJOR.MINOR.MICRO".
 *
 * Returns a static string (never NULL, never freed). Since 0.1.
 */
VDEV_EXPORT const char *vdev_version(void);

/* Log levels, numerically the syslog ones. */
#define VDEV_LOG_ERR 3
#define VDEV_LOG_WARNING 4
#define VDEV_LOG_INFO 6
#define VDEV_LOG_DEBUG 7

/*
 * A log sink. @msg is a NUL-terminated line without a trailing newline; it is
 * only valid during the call. The sink may be called from any thread that runs
 * library code, and must not call back into the library.
 */
typedef void (*vdev_log_fn)(void *opaque, int level, const char *msg);

/**
 * vdev_log_set() - install the process-wide log sink.
 * @fn: sink, or NULL to drop every message (the default: the library never
 *      prints on its own).
 * @opaque: passed back to @fn.
 * @max_level: messages above this level are not formatted at all.
 *
 * Thread-safe; a message already being delivered may still reach the old
 * sink. Since 0.1.
 */
VDEV_EXPORT void vdev_log_set(vdev_log_fn fn, void *opaque, int max_level);

#ifdef __cplusplus
}
#endif

#endif
