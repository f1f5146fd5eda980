/* SPDX-License-Identifier: MIT */
/*
 * Plain liburing random reads: what the host does without a guest and a
 * virtio device in between. One ring of @depth entries, the file registered,
 * every completion resubmitted at once, one io_uring_submit_and_wait per
 * round: the natural best of plain liburing for this job.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "native.h"
#include "vm.h"

#if KH_HAVE_LIBURING
#include <liburing.h>

#define BLOCK 4096u

static uint64_t next_rand(uint64_t *s)
{
	/* xorshift64*: cheap, and the offsets only need to be spread out */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dull;
}

static void queue_read(struct io_uring *ring, uint8_t *buf, uint32_t slot, uint64_t blocks,
		       uint64_t *rnd, uint32_t *inflight)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring); /* never NULL: depth slots */

	io_uring_prep_read(sqe, 0, buf + (size_t)slot * BLOCK, BLOCK,
			   (next_rand(rnd) % blocks) * BLOCK);
	sqe->flags |= IOSQE_FIXED_FILE;
	io_uring_sqe_set_data64(sqe, slot);
	(*inflight)++;
}

int kh_native_randread(const char *path, uint32_t depth, uint32_t ms, uint64_t blocks,
		       uint64_t seed, double *iops)
{
	struct io_uring ring;
	uint64_t rnd = seed | 1, done = 0, t0, t1, deadline;
	uint32_t inflight = 0;
	uint8_t *buf = NULL;
	int fd, r;

	if (!path || !depth || !blocks || !iops)
		return -EINVAL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = io_uring_queue_init(depth, &ring, 0);
	if (r < 0) {
		close(fd);
		return r;
	}
	r = io_uring_register_files(&ring, &fd, 1);
	if (r == 0 && posix_memalign((void **)&buf, BLOCK, (size_t)depth * BLOCK) != 0)
		r = -ENOMEM;
	if (r < 0)
		goto out;
	for (uint32_t i = 0; i < depth; i++)
		queue_read(&ring, buf, i, blocks, &rnd, &inflight);
	t0 = kh_now_ns();
	deadline = t0 + (uint64_t)ms * 1000000ull;
	for (;;) {
		struct io_uring_cqe *cqe;
		unsigned int head, n = 0;

		r = io_uring_submit_and_wait(&ring, 1);
		if (r < 0 && r != -EINTR)
			goto out;
		io_uring_for_each_cqe(&ring, head, cqe) {
			n++;
			inflight--;
			if (cqe->res != (int)BLOCK) {
				r = cqe->res < 0 ? cqe->res : -EIO;
				break;
			}
			queue_read(&ring, buf, (uint32_t)io_uring_cqe_get_data64(cqe), blocks, &rnd,
				   &inflight);
		}
		io_uring_cq_advance(&ring, n);
		if (r < 0 && r != -EINTR)
			goto out;
		done += n;
		t1 = kh_now_ns();
		if (t1 >= deadline)
			break;
	}
	*iops = (double)done * 1e9 / (double)(t1 - t0);
	r = 0;
out:
	/* Let the reads still in flight land in buf before it is freed. */
	io_uring_submit(&ring);
	while (inflight) {
		struct io_uring_cqe *cqe;

		if (io_uring_wait_cqe(&ring, &cqe) < 0)
			break;
		io_uring_cqe_seen(&ring, cqe);
		inflight--;
	}
	io_uring_queue_exit(&ring);
	free(buf);
	close(fd);
	return r;
}
#else
int kh_native_randread(const char *path, uint32_t depth, uint32_t ms, uint64_t blocks,
		       uint64_t seed, double *iops)
{
	(void)path, (void)depth, (void)ms, (void)blocks, (void)seed, (void)iops;
	return -EOPNOTSUPP;
}
#endif
