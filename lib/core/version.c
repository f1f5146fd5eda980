/* SPDX-License-Identifier: MIT */
/* vdev_version(): the version of the library that was actually loaded, which
 * may differ from the VDEV_VERSION_* macros the caller was compiled with. */
#include "vdi-config.h"

#include <virtio-dev/common.h>

VDEV_EXPORT const char *vdev_version(void)
{
	return VDI_VERSION;
}
