/* SPDX-License-Identifier: MIT */
/*
 * The test device of tg-abi.h on the port-I/O bus: the guest's console
 * (TG_PORT_PRINT), verdict (TG_PORT_STATUS), timing marks (TG_PORT_MARK),
 * power switch (TG_PORT_POWER_OFF) and hotplug requests (TG_PORT_HOTPLUG).
 */
#ifndef KH_TESTDEV_H
#define KH_TESTDEV_H

#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "vm.h"

#define KH_MAX_MARKS 64u

/* What the CPUs did up to a moment: every CPU's busy time, and this
 * process's share of it (both in ns), to tell how busy others were. */
struct kh_cpu_sample {
	uint64_t t_ns;
	uint64_t machine_busy_ns;
	uint64_t self_ns;
};

void kh_cpu_sample(struct kh_cpu_sample *s);

/* CPUs kept busy by other processes between @a and @b (e.g. 0.5 = half a CPU). */
double kh_cpu_others(const struct kh_cpu_sample *a, const struct kh_cpu_sample *b);

struct kh_testdev {
	struct kh_vm *vm;
	FILE *out;                     /* where guest lines go */
	int status_set;
	uint32_t status;               /* TG_STATUS_* (last written) */
	uint32_t exit_code;
	uint64_t marks[KH_MAX_MARKS];  /* host CLOCK_MONOTONIC ns; 0 = not marked */
	struct kh_cpu_sample mark_cpu[KH_MAX_MARKS];
	clockid_t io_clock;            /* the I/O thread's CPU clock, if io_clock_set */
	int io_clock_set;
	uint64_t mark_io_ns[KH_MAX_MARKS]; /* the I/O thread's CPU time at each mark */
	uint64_t bad_accesses;         /* reads, wrong sizes, bad marks, lines outside RAM */
	/* TG_PORT_HOTPLUG: called on the vCPU thread with the value written
	 * (NULL: no hotplug port, the write counts as a bad access; so does a
	 * value the hook refuses with a negative return). */
	int (*hotplug)(void *opaque, uint32_t op);
	void *hotplug_opaque;
};

/** kh_testdev_attach() - claim the test ports on @vm's PIO bus. */
int kh_testdev_attach(struct kh_testdev *td, struct kh_vm *vm, FILE *out);

#endif
