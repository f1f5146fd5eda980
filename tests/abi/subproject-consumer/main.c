/* SPDX-License-Identifier: MIT */
/* Uses libvirtio-dev built as a subproject: version, one region, a translation. */
#include <stdint.h>
#include <stdio.h>

#include <virtio-dev/virtio-dev.h>

static unsigned char ram[4096];

int main(void)
{
	vdev_mem *mem = NULL;
	uint64_t contig = 0;
	void *hva = NULL;
	int ok;

	if (vdev_mem_new(&mem) < 0)
		return 1;
	ok = vdev_mem_add_region(mem, 0x1000, sizeof(ram), ram, 0) == 0 &&
	     vdev_mem_translate(mem, 0x1010, 16, VDEV_MEM_READ, &hva, &contig) == 0 &&
	     hva == ram + 0x10 && contig == 16;
	vdev_mem_free(mem);
	printf("libvirtio-dev %s as a subproject: %s\n", vdev_version(), ok ? "ok" : "BROKEN");
	return ok ? 0 : 1;
}
