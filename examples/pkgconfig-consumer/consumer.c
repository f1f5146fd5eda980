/* SPDX-License-Identifier: MIT */
/*
 * The smallest program that uses an installed libvirtio-dev through
 * pkg-config: print the library version, map one guest region, translate an
 * address in it and check the answer.
 *
 *   cc consumer.c $(pkg-config --cflags --libs libvirtio-dev) -o consumer
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <virtio-dev/virtio-dev.h>

#define GUEST_BASE 0x100000u
#define GUEST_SIZE 0x10000u

static unsigned char guest_ram[GUEST_SIZE];

int main(void)
{
	vdev_mem *mem = NULL;
	uint64_t contig = 0;
	void *hva = NULL;
	int ret;

	printf("libvirtio-dev %s (headers %d.%d.%d)\n", vdev_version(), VDEV_VERSION_MAJOR,
	       VDEV_VERSION_MINOR, VDEV_VERSION_MICRO);

	ret = vdev_mem_new(&mem);
	if (ret < 0) {
		fprintf(stderr, "vdev_mem_new: %s\n", strerror(-ret));
		return 1;
	}
	ret = vdev_mem_add_region(mem, GUEST_BASE, GUEST_SIZE, guest_ram, 0);
	if (ret < 0) {
		fprintf(stderr, "vdev_mem_add_region: %s\n", strerror(-ret));
		vdev_mem_free(mem);
		return 1;
	}
	ret = vdev_mem_translate(mem, GUEST_BASE + 0x1230, 0x100, VDEV_MEM_READ | VDEV_MEM_WRITE,
				 &hva, &contig);
	if (ret < 0 || hva != guest_ram + 0x1230 || contig != 0x100) {
		fprintf(stderr, "vdev_mem_translate: ret %d hva %p (want %p) contig %llu\n", ret,
			hva, (void *)(guest_ram + 0x1230), (unsigned long long)contig);
		vdev_mem_free(mem);
		return 1;
	}
	/* An address outside every region must not translate. */
	ret = vdev_mem_translate(mem, GUEST_BASE + GUEST_SIZE, 1, VDEV_MEM_READ, &hva, &contig);
	if (ret != -EFAULT) {
		fprintf(stderr, "unmapped address: ret %d, want -EFAULT\n", ret);
		vdev_mem_free(mem);
		return 1;
	}
	vdev_mem_free(mem);
	printf("translate ok\n");
	return 0;
}
