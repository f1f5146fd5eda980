/* SPDX-License-Identifier: MIT */
/* The hosted convenience around vdev_drv_init: malloc'd storage. */
#include <errno.h>
#include <stdlib.h>

#include <virtio-dev/driver.h>

int vdev_drv_new(const struct vdev_drv_config *cfg, vdev_drv **out)
{
	uint64_t size = vdev_drv_storage_size();
	vdev_drv *drv;
	void *storage;
	int r;

	if (!cfg || !out)
		return -EINVAL;
	/* malloc's alignment covers the 8 bytes vdev_drv_init wants. */
	storage = malloc((size_t)size);
	if (!storage)
		return -ENOMEM;
	r = vdev_drv_init(storage, size, cfg, &drv);
	if (r < 0) {
		free(storage);
		return r;
	}
	*out = drv;
	return 0;
}

void vdev_drv_free(vdev_drv *drv)
{
	/* vdev_drv_init places the object at the start of its storage. */
	free(drv);
}
