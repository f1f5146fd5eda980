/* SPDX-License-Identifier: MIT */
/*
 * A virtio entropy device (virtio-rng) written against the public API only,
 * as a VMM would write its own device model.
 */
#ifndef LOOPBACK_RNG_H
#define LOOPBACK_RNG_H

#include <stdint.h>

#include <virtio-dev/virtio-dev.h>

struct rng_stats {
	uint64_t requests;   /* chains served */
	uint64_t bytes;      /* bytes of entropy written into guest buffers */
	uint64_t notifies;   /* queue_notify callbacks (kicks that reached us) */
	uint64_t interrupts; /* used-buffer notifications we sent */
	uint64_t errors;     /* pops that failed (broken ring, no memory) */
};

struct rng;

/*
 * Create the model and the vdev_device that carries it, with guest memory and
 * the interrupt sink attached (both borrowed). @queue_size is the largest
 * queue the device offers. Returns 0 or a negative errno.
 */
int rng_new(vdev_mem *mem, vdev_irq *irq, uint32_t queue_size, struct rng **out);

/* Frees the device (resetting it if active), then the model. Accepts NULL. */
void rng_free(struct rng *rng);

vdev_device *rng_device(const struct rng *rng);
const struct rng_stats *rng_stats(const struct rng *rng);
/* 1 between a successful activate and the following reset. */
int rng_active(const struct rng *rng);

#endif
