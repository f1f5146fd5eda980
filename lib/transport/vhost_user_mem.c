/* SPDX-License-Identifier: MIT */
/*
 * vhost-user back-end: guest memory (SET_MEM_TABLE, ADD_MEM_REG,
 * REM_MEM_REG), the shared dirty log (SET_LOG_BASE) and the in-flight area
 * (GET_INFLIGHT_FD, SET_INFLIGHT_FD).
 *
 * Each region is mapped from the front-end's fd (MAP_SHARED), entered in the
 * vdev_mem (GPA -> host pointer) the device uses, and kept with its
 * front-end virtual address (UVA), the address space of SET_VRING_ADDR. The
 * fds are closed once mapped. Only regular files are accepted, and only when
 * they are long enough for the region: touching a page past the end of a
 * file raises SIGBUS.
 *
 * mem.h forbids changing a region table while anyone translates through it,
 * and a live queue keeps host pointers to its ring. So a region is removed
 * or a table replaced only with every ring stopped (positions kept, started
 * again afterwards) and a region added only with the device asleep. A new
 * table is mapped and checked completely before the old one is touched, so
 * a refused message leaves the old one as it was.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <virtio-dev/device.h>

#include "core/mem_internal.h"
#include "core/queue_inflight.h"
#include "internal/util.h"
#include "transport/vhost_user_priv.h"

/*
 * A front-end that shrinks a file after we mapped it turns our next access
 * to the lost pages into SIGBUS. A memfd (QEMU's memory-backend-memfd) can be
 * sealed against that; QEMU seals its own, and when the front-end did not, we
 * add the seal (it only forbids shrinking, which a front-end never needs to
 * do to guest RAM). Other files cannot be protected (doc/vhost-user.md).
 */
static void seal_against_shrink(int fd)
{
	int seals = fcntl(fd, F_GET_SEALS);

	if (seals < 0 || (seals & F_SEAL_SHRINK))
		return;
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) < 0)
		vdi_log(VDEV_LOG_WARNING,
			"vhost-user: a memfd without F_SEAL_SHRINK that cannot be sealed (%d): "
			"a front-end that shrinks it can crash this process",
			-errno);
}

int vdi_vu_map_fd(int fd, uint64_t offset, uint64_t size, struct vu_map *m)
{
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE), start, delta;
	struct stat st;
	void *p;

	if (size == 0 || offset > (uint64_t)INT64_MAX - size)
		return -EINVAL;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size < offset + size)
		return -EINVAL;
	seal_against_shrink(fd);
	start = offset & ~(page - 1);
	delta = offset - start;
	if (size > SIZE_MAX - delta)
		return -EINVAL;
	p = mmap(NULL, (size_t)(size + delta), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE,
		 fd, (off_t)start);
	if (p == MAP_FAILED)
		return -errno;
	m->base = p;
	m->len = (size_t)(size + delta);
	m->ptr = (uint8_t *)p + delta;
	return 0;
}

void vdi_vu_unmap(struct vu_map *m)
{
	if (m->base)
		munmap(m->base, m->len);
	m->base = NULL;
	m->ptr = NULL;
	m->len = 0;
}

int vdi_vu_uva_to_gpa(const vdev_vhost_user *vu, uint64_t uva, uint64_t len, uint64_t *gpa)
{
	for (uint32_t i = 0; i < vu->nregions; i++) {
		const struct vu_mem_region *r = &vu->regions[i];
		uint64_t off = uva - r->uva;

		/* len >= 1; all of [uva, uva + len) inside this one region. */
		if (uva >= r->uva && off < r->size && len - 1 <= r->size - 1 - off) {
			*gpa = r->gpa + off;
			return 0;
		}
	}
	return -EFAULT;
}

static int ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	/* Both non-empty and not wrapping (checked before). */
	return a <= b + (blen - 1) && b <= a + (alen - 1);
}

/* Shape of one region; the index is for the log line. */
static int region_ok(const struct vu_msg *m, const struct vu_region *r, uint32_t i)
{
	if (r->size == 0)
		return vdi_vu_bad(m, "region %u has size 0", i);
	if (r->gpa > UINT64_MAX - (r->size - 1) || r->uva > UINT64_MAX - (r->size - 1) ||
	    r->mmap_offset > UINT64_MAX - r->size)
		return vdi_vu_bad(m, "region %u wraps (gpa 0x%llx uva 0x%llx offset 0x%llx size "
				  "0x%llx)", i, (unsigned long long)r->gpa, (unsigned long long)r->uva,
				  (unsigned long long)r->mmap_offset, (unsigned long long)r->size);
	return 0;
}

static int region_clash(const struct vu_msg *m, const struct vu_region *r, uint64_t gpa,
			uint64_t uva, uint64_t size)
{
	if (ranges_overlap(r->gpa, r->size, gpa, size))
		return vdi_vu_bad(m, "region at gpa 0x%llx overlaps another in guest memory",
				  (unsigned long long)r->gpa);
	if (ranges_overlap(r->uva, r->size, uva, size))
		return vdi_vu_bad(m, "region at uva 0x%llx overlaps another in front-end memory",
				  (unsigned long long)r->uva);
	return 0;
}

static void regions_unmap(struct vu_mem_region *r, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		vdi_vu_unmap(&r[i].map);
}

/* Take the regions out of vdev_mem (the mappings stay). */
static void regions_unplug(vdev_vhost_user *vu, const struct vu_mem_region *r, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		vdev_mem_remove_region(vu->mem, r[i].gpa);
}

static int regions_plug(vdev_vhost_user *vu, const struct vu_mem_region *r, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		int e = vdev_mem_add_region(vu->mem, r[i].gpa, r[i].size, r[i].map.ptr, 0);

		if (e < 0) {
			regions_unplug(vu, r, i);
			return e;
		}
	}
	return 0;
}

/* Every ring stopped (positions kept) before the table changes under them. */
static int rings_hold(vdev_vhost_user *vu)
{
	vu->suspended = 1;
	return vdi_vu_sync_rings(vu);
}

/* ... and started again on the new table: a ring outside it cannot start,
 * which closes the connection. */
static int rings_release(vdev_vhost_user *vu)
{
	vu->suspended = 0;
	return vdi_vu_sync_rings(vu);
}

static void set_mapped_stat(vdev_vhost_user *vu)
{
	__atomic_store_n(&vu->stats.mapped_regions, vu->nregions, __ATOMIC_RELAXED);
}

int vdi_vu_set_mem_table(vdev_vhost_user *vu, struct vu_msg *m)
{
	const struct vu_mem_table *t = &m->payload.mem;
	struct vu_mem_region nr[VU_MEM_TABLE_MAX];
	uint32_t n;
	int r;

	if (m->hdr.size < 8)
		return vdi_vu_bad(m, "payload of %u bytes", m->hdr.size);
	n = t->nregions;
	if (n == 0 || n > VU_MEM_TABLE_MAX || n > vu->max_slots)
		return vdi_vu_bad(m, "%u regions (1..%u)", n,
				  VDI_MIN(VU_MEM_TABLE_MAX, vu->max_slots));
	if (m->hdr.size != 8 + n * sizeof(struct vu_region))
		return vdi_vu_bad(m, "payload of %u bytes for %u regions", m->hdr.size, n);
	if (m->nfds != n)
		return vdi_vu_bad(m, "%u fds for %u regions", m->nfds, n);
	for (uint32_t i = 0; i < n; i++) {
		const struct vu_region *g = &t->regions[i];

		r = region_ok(m, g, i);
		for (uint32_t j = 0; r == 0 && j < i; j++)
			r = region_clash(m, &t->regions[j], g->gpa, g->uva, g->size);
		if (r < 0)
			return r;
	}
	memset(nr, 0, sizeof(nr));
	for (uint32_t i = 0; i < n; i++) {
		const struct vu_region *g = &t->regions[i];

		r = vdi_vu_map_fd(m->fds[i], g->mmap_offset, g->size, &nr[i].map);
		if (r < 0) {
			regions_unmap(nr, i);
			return vdi_vu_bad(m, "region %u cannot be mapped (%d)", i, r);
		}
		nr[i].gpa = g->gpa;
		nr[i].size = g->size;
		nr[i].uva = g->uva;
	}

	r = rings_hold(vu);
	if (r < 0) {
		regions_unmap(nr, n);
		return r;
	}
	regions_unplug(vu, vu->regions, vu->nregions);
	r = regions_plug(vu, nr, n);
	if (r < 0) {
		/* Only -ENOMEM: put the old table back (it fitted before). */
		regions_plug(vu, vu->regions, vu->nregions);
		regions_unmap(nr, n);
		rings_release(vu);
		return r;
	}
	regions_unmap(vu->regions, vu->nregions);
	memcpy(vu->regions, nr, n * sizeof(nr[0]));
	vu->nregions = n;
	set_mapped_stat(vu);
	return rings_release(vu);
}

int vdi_vu_add_mem_reg(vdev_vhost_user *vu, struct vu_msg *m)
{
	const struct vu_region *g = &m->payload.reg.region;
	struct vu_mem_region nr;
	int r;

	r = region_ok(m, g, vu->nregions);
	for (uint32_t j = 0; r == 0 && j < vu->nregions; j++) {
		const struct vu_mem_region *o = &vu->regions[j];
		struct vu_region old = {.gpa = o->gpa, .size = o->size, .uva = o->uva};

		r = region_clash(m, &old, g->gpa, g->uva, g->size);
	}
	if (r < 0)
		return r;
	if (vu->nregions >= vu->max_slots)
		return vdi_vu_bad(m, "more than %u regions", vu->max_slots);
	memset(&nr, 0, sizeof(nr));
	r = vdi_vu_map_fd(m->fds[0], g->mmap_offset, g->size, &nr.map);
	if (r < 0)
		return vdi_vu_bad(m, "region cannot be mapped (%d)", r);
	nr.gpa = g->gpa;
	nr.size = g->size;
	nr.uva = g->uva;
	/* Existing mappings stay valid: the device only has to stop
	 * translating while the table array changes. */
	r = vdi_vu_quiesce_begin(vu);
	if (r == 0) {
		r = vdev_mem_add_region(vu->mem, nr.gpa, nr.size, nr.map.ptr, 0);
		vdi_vu_quiesce_end(vu);
	}
	if (r < 0) {
		vdi_vu_unmap(&nr.map);
		return r;
	}
	vu->regions[vu->nregions++] = nr;
	set_mapped_stat(vu);
	return 0;
}

int vdi_vu_rem_mem_reg(vdev_vhost_user *vu, struct vu_msg *m)
{
	const struct vu_region *g = &m->payload.reg.region;
	struct vu_mem_region gone;
	uint32_t i;
	int r;

	for (i = 0; i < vu->nregions; i++) {
		const struct vu_mem_region *o = &vu->regions[i];

		if (o->gpa == g->gpa && o->uva == g->uva && o->size == g->size)
			break;
	}
	if (i == vu->nregions) {
		vdi_log(VDEV_LOG_DEBUG, "vhost-user: REM_MEM_REG of an unknown region (gpa 0x%llx)",
			(unsigned long long)g->gpa);
		return VU_FAIL;
	}
	r = rings_hold(vu);
	if (r < 0)
		return r;
	gone = vu->regions[i];
	vdev_mem_remove_region(vu->mem, gone.gpa);
	memmove(&vu->regions[i], &vu->regions[i + 1], (vu->nregions - i - 1) * sizeof(gone));
	vu->nregions--;
	vdi_vu_unmap(&gone.map);
	set_mapped_stat(vu);
	return rings_release(vu);
}

int vdi_vu_log_update(vdev_vhost_user *vu)
{
	int want = (vu->features & (1ull << VHOST_F_LOG_ALL)) && vu->log.base;
	int r;

	if (want == vu->log_on)
		return 0;
	r = vdi_vu_quiesce_begin(vu);
	if (r < 0)
		return r;
	vdi_mem_set_shared_log(vu->mem, want ? vu->log.ptr : NULL, vu->log_size);
	vdi_vu_quiesce_end(vu);
	vu->log_on = want;
	return 0;
}

int vdi_vu_set_log_base(vdev_vhost_user *vu, struct vu_msg *m)
{
	const struct vu_log *l = &m->payload.log;
	struct vu_map nl = {0}, old;
	uint64_t zero = 0;
	int r;

	r = vdi_vu_map_fd(m->fds[0], l->offset, l->size, &nl);
	if (r < 0)
		return vdi_vu_bad(m, "log of %llu bytes at offset %llu cannot be mapped (%d)",
				  (unsigned long long)l->size, (unsigned long long)l->offset, r);
	if (vu->log_on) {
		/* Switch the live log over to the new mapping. */
		r = vdi_vu_quiesce_begin(vu);
		if (r < 0) {
			vdi_vu_unmap(&nl);
			return r;
		}
		vdi_mem_set_shared_log(vu->mem, nl.ptr, l->size);
		vdi_vu_quiesce_end(vu);
	}
	old = vu->log;
	vu->log = nl;
	vu->log_size = l->size;
	vdi_vu_unmap(&old);
	r = vdi_vu_log_update(vu);
	if (r < 0)
		return r;
	/* With LOG_SHMFD the front-end waits for this reply. */
	return vdi_vu_reply(vu, m, &zero, sizeof(zero), NULL, 0);
}

/* The in-flight area may only change while no ring holds a region of it. */
static int inflight_check(const vdev_vhost_user *vu, const struct vu_msg *m,
			  const struct vu_inflight *in)
{
	if (in->num_queues == 0 || in->num_queues > vu->nrings)
		return vdi_vu_bad(m, "%u queues (1..%u)", in->num_queues, vu->nrings);
	if (in->queue_size == 0 || in->queue_size > vdev_device_queue_max_size(vu->dev))
		return vdi_vu_bad(m, "queue size %u (1..%u)", in->queue_size,
				  vdev_device_queue_max_size(vu->dev));
	if (vdi_vu_any_started(vu))
		return vdi_vu_bad(m, "while rings run");
	return 0;
}

static void inflight_install(vdev_vhost_user *vu, struct vu_map *nm, const struct vu_inflight *in)
{
	vdi_vu_unmap(&vu->inflight);
	vu->inflight = *nm;
	vu->inflight_queues = in->num_queues;
	vu->inflight_qsize = in->queue_size;
	vu->inflight_region = vdi_inflight_region_size(in->queue_size);
}

int vdi_vu_get_inflight_fd(vdev_vhost_user *vu, struct vu_msg *m)
{
	struct vu_inflight in = m->payload.inflight, out;
	size_t region, total;
	struct vu_map nm = {0};
	int fd, r;

	r = inflight_check(vu, m, &in);
	if (r < 0)
		return r;
	region = vdi_inflight_region_size(in.queue_size);
	total = region * in.num_queues;
	memset(&out, 0, sizeof(out));
	out.num_queues = in.num_queues;
	out.queue_size = in.queue_size;
	/* Sealed against resizing: the front-end keeps this fd and hands it to
	 * the next back-end, which must be able to map it safely. */
	fd = memfd_create("vdev-vhost-user-inflight", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd >= 0 && (ftruncate(fd, (off_t)total) < 0 ||
			fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0 ||
			vdi_vu_map_fd(fd, 0, total, &nm) < 0)) {
		close(fd);
		fd = -1;
	}
	if (fd < 0) {
		/* QEMU reads a zero size as "no in-flight tracking". */
		vdi_log(VDEV_LOG_WARNING, "vhost-user: cannot create the in-flight area");
		return vdi_vu_reply(vu, m, &out, sizeof(out), NULL, 0);
	}
	for (uint16_t i = 0; i < in.num_queues; i++)
		vdi_inflight_region_init(nm.ptr + (size_t)i * region, in.queue_size);
	inflight_install(vu, &nm, &in);
	out.mmap_size = total;
	r = vdi_vu_reply(vu, m, &out, sizeof(out), &fd, 1);
	close(fd);
	return r;
}

int vdi_vu_set_inflight_fd(vdev_vhost_user *vu, struct vu_msg *m)
{
	const struct vu_inflight *in = &m->payload.inflight;
	struct vu_map nm = {0};
	uint64_t need;
	int r;

	r = inflight_check(vu, m, in);
	if (r < 0)
		return r;
	need = (uint64_t)vdi_inflight_region_size(in->queue_size) * in->num_queues;
	if (in->mmap_size < need)
		return vdi_vu_bad(m, "area of %llu bytes, %llu needed",
				  (unsigned long long)in->mmap_size, (unsigned long long)need);
	r = vdi_vu_map_fd(m->fds[0], in->mmap_offset, need, &nm);
	if (r < 0)
		return vdi_vu_bad(m, "area cannot be mapped (%d)", r);
	inflight_install(vu, &nm, in);
	return 0;
}

int vdi_vu_inflight_for(const vdev_vhost_user *vu, uint32_t ring, void **region, size_t *len)
{
	if (!vu->inflight.base || ring >= vu->inflight_queues)
		return 0;
	*region = vu->inflight.ptr + (size_t)ring * vu->inflight_region;
	*len = vu->inflight_region;
	return 1;
}

void vdi_vu_mem_release(vdev_vhost_user *vu)
{
	/* The device is reset: nothing uses the memory any more. */
	vdi_mem_set_shared_log(vu->mem, NULL, 0);
	vu->log_on = 0;
	regions_unplug(vu, vu->regions, vu->nregions);
	regions_unmap(vu->regions, vu->nregions);
	vu->nregions = 0;
	set_mapped_stat(vu);
	vdi_vu_unmap(&vu->log);
	vu->log_size = 0;
	vdi_vu_unmap(&vu->inflight);
	vu->inflight_queues = 0;
	vu->inflight_qsize = 0;
	vu->inflight_region = 0;
}
