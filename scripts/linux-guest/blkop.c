// SPDX-License-Identifier: MIT
/*
 * blkop: block-device requests busybox cannot make, for the Linux test guest
 * (built static by build-guest).
 *
 *   blkop zeroout DEV OFFSET LENGTH   BLKZEROOUT: virtio-blk WRITE_ZEROES with
 *                                     the unmap flag clear (the kernel falls
 *                                     back to writing zero pages without it)
 *   blkop punch DEV OFFSET LENGTH     fallocate(PUNCH_HOLE|KEEP_SIZE):
 *                                     WRITE_ZEROES with unmap set, no fallback
 *
 * Prints why on failure and exits 1 (2 for a usage error).
 */
#define _GNU_SOURCE /* fallocate */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;

	errno = 0;
	*out = strtoull(s, &end, 0);
	return (errno || end == s || *end) ? -1 : 0;
}

int main(int argc, char **argv)
{
	uint64_t off, len;
	int fd, r;

	if (argc != 5 || parse_u64(argv[3], &off) || parse_u64(argv[4], &len)) {
		fprintf(stderr, "usage: blkop zeroout|punch DEV OFFSET LENGTH\n");
		return 2;
	}
	fd = open(argv[2], O_RDWR);
	if (fd < 0) {
		fprintf(stderr, "blkop: open %s: %s\n", argv[2], strerror(errno));
		return 1;
	}
	if (!strcmp(argv[1], "zeroout")) {
		uint64_t range[2] = { off, len };

		r = ioctl(fd, BLKZEROOUT, range);
	} else if (!strcmp(argv[1], "punch")) {
		r = fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len);
	} else {
		fprintf(stderr, "blkop: unknown operation %s\n", argv[1]);
		close(fd);
		return 2;
	}
	if (r) {
		fprintf(stderr, "blkop: %s %s: %s\n", argv[1], argv[2], strerror(errno));
		close(fd);
		return 1;
	}
	close(fd);
	return 0;
}
