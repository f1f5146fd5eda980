/* SPDX-License-Identifier: MIT */
/*
 * Interrupts: a VMM callback, or eventfds the VMM hands to KVM_IRQFD.
 *
 * The object is immutable after construction, so trigger needs no lock and
 * may run from every queue thread at once.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "internal/util.h"
#include "virtio-dev/irq.h"

#define IRQ_MAX_QUEUES 65535u

struct vdev_irq {
	int is_eventfd;
	struct vdev_irq_ops ops;
	void *opaque;
	uint32_t num_queues; /* eventfd variant only */
	uint32_t nfds;       /* 1 when shared, else num_queues + 1 (config last) */
	int fds[];
};

int vdev_irq_new(const struct vdev_irq_ops *ops, void *opaque, vdev_irq **out)
{
	struct vdev_irq_ops copy;
	vdev_irq *irq;

	if (!ops || !out)
		return -EINVAL;
	if (vdi_copy_versioned(&copy, sizeof(copy), ops) < 0 || !copy.trigger)
		return -EINVAL;
	irq = calloc(1, sizeof(*irq));
	if (!irq)
		return -ENOMEM;
	irq->ops = copy;
	irq->opaque = opaque;
	*out = irq;
	return 0;
}

int vdev_irq_new_eventfd(uint32_t num_queues, uint32_t flags, vdev_irq **out)
{
	vdev_irq *irq;
	uint32_t i, nfds;

	if (!out || num_queues == 0 || num_queues > IRQ_MAX_QUEUES || (flags & ~VDEV_IRQ_F_SHARED))
		return -EINVAL;
	nfds = (flags & VDEV_IRQ_F_SHARED) ? 1 : num_queues + 1;
	irq = calloc(1, sizeof(*irq) + (size_t)nfds * sizeof(irq->fds[0]));
	if (!irq)
		return -ENOMEM;
	irq->is_eventfd = 1;
	irq->num_queues = num_queues;
	irq->nfds = nfds;
	for (i = 0; i < nfds; i++)
		irq->fds[i] = -1;
	for (i = 0; i < nfds; i++) {
		irq->fds[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (irq->fds[i] < 0) {
			int err = errno ? -errno : -EIO;

			vdev_irq_free(irq);
			return err;
		}
	}
	*out = irq;
	return 0;
}

void vdev_irq_free(vdev_irq *irq)
{
	uint32_t i;

	if (!irq)
		return;
	if (irq->is_eventfd) {
		/* Slots not reached by a failed constructor still hold -1. */
		for (i = 0; i < irq->nfds; i++)
			if (irq->fds[i] >= 0)
				close(irq->fds[i]);
	}
	free(irq);
}

/* Index into fds for kind/queue, or -EINVAL. */
static int irq_slot(const vdev_irq *irq, uint32_t kind, uint32_t queue)
{
	uint32_t slot;

	if (kind == VDEV_IRQ_QUEUE) {
		if (queue >= irq->num_queues)
			return -EINVAL;
		slot = queue;
	} else if (kind == VDEV_IRQ_CONFIG) {
		if (queue != 0)
			return -EINVAL;
		slot = irq->num_queues;
	} else {
		return -EINVAL;
	}
	return irq->nfds == 1 ? 0 : (int)slot;
}

int vdev_irq_eventfd(vdev_irq *irq, uint32_t kind, uint32_t queue)
{
	int slot;

	if (!irq)
		return -EINVAL;
	if (!irq->is_eventfd)
		return -EOPNOTSUPP;
	slot = irq_slot(irq, kind, queue);
	return slot < 0 ? slot : irq->fds[slot];
}

int vdev_irq_trigger(vdev_irq *irq, uint32_t kind, uint32_t queue)
{
	const uint64_t one = 1;
	int slot;

	if (!irq)
		return -EINVAL;
	if (!irq->is_eventfd) {
		/* The callback knows the queue count; we only check the shape. */
		if ((kind != VDEV_IRQ_QUEUE && kind != VDEV_IRQ_CONFIG) ||
		    (kind == VDEV_IRQ_CONFIG && queue != 0))
			return -EINVAL;
		return irq->ops.trigger(irq->opaque, kind, queue);
	}
	slot = irq_slot(irq, kind, queue);
	if (slot < 0)
		return slot;
	for (;;) {
		ssize_t n = write(irq->fds[slot], &one, sizeof(one));

		if (n == (ssize_t)sizeof(one))
			return 0;
		if (n >= 0)
			return -EIO;
		if (errno == EINTR)
			continue;
		/* Counter saturated: an interrupt is already pending, which is
		 * all a level of "at least one" needs. */
		if (errno == EAGAIN)
			return 0;
		return -errno;
	}
}
