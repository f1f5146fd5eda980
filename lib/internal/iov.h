/* SPDX-License-Identifier: MIT */
/* An iovec cursor: walk, copy into and out of, and slice a list of guest
 * buffers without modifying it. Used by the blk device and the backends. */
#ifndef VDI_IOV_H
#define VDI_IOV_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>

struct vdi_iovc {
	const struct iovec *iov;
	uint32_t cnt;
	uint32_t idx;
	size_t off; /* within iov[idx] */
};

static inline void vdi_iovc_init(struct vdi_iovc *c, const struct iovec *iov, uint32_t cnt)
{
	c->iov = iov;
	c->cnt = cnt;
	c->idx = 0;
	c->off = 0;
}

static inline void vdi_iovc_advance(struct vdi_iovc *c, uint64_t n)
{
	while (n && c->idx < c->cnt) {
		size_t left = c->iov[c->idx].iov_len - c->off;

		if (n < left) {
			c->off += (size_t)n;
			return;
		}
		n -= left;
		c->idx++;
		c->off = 0;
	}
}

/* Copy @n bytes from the iovecs at the cursor into @dst (a write's data). */
static inline void vdi_iovc_to_flat(struct vdi_iovc *c, uint8_t *dst, uint64_t n)
{
	while (n && c->idx < c->cnt) {
		size_t left = c->iov[c->idx].iov_len - c->off;
		size_t k = n < left ? (size_t)n : left;

		if (k)
			memcpy(dst, (const uint8_t *)c->iov[c->idx].iov_base + c->off, k);
		dst += k;
		n -= k;
		vdi_iovc_advance(c, k);
		if (!k && !left) { /* empty segment */
			c->idx++;
			c->off = 0;
		}
	}
}

/* Copy @n bytes from @src into the iovecs at the cursor (a read's data). */
static inline void vdi_iovc_from_flat(struct vdi_iovc *c, const uint8_t *src, uint64_t n)
{
	while (n && c->idx < c->cnt) {
		size_t left = c->iov[c->idx].iov_len - c->off;
		size_t k = n < left ? (size_t)n : left;

		if (k)
			memcpy((uint8_t *)c->iov[c->idx].iov_base + c->off, src, k);
		src += k;
		n -= k;
		vdi_iovc_advance(c, k);
		if (!k && !left) {
			c->idx++;
			c->off = 0;
		}
	}
}

#define VDI_IOV_WINDOW 64u

/* Up to @max iovecs covering up to @n bytes from the cursor (not advanced). */
static inline uint32_t vdi_iovc_window(const struct vdi_iovc *c, uint64_t n, struct iovec *win,
				       uint32_t max)
{
	uint32_t i = c->idx, k = 0;
	size_t off = c->off;

	while (n && i < c->cnt && k < max) {
		size_t left = c->iov[i].iov_len - off;
		size_t take = n < left ? (size_t)n : left;

		if (take) {
			win[k].iov_base = (uint8_t *)c->iov[i].iov_base + off;
			win[k].iov_len = take;
			k++;
			n -= take;
		}
		i++;
		off = 0;
	}
	return k;
}

#endif
