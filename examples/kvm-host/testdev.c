/* SPDX-License-Identifier: MIT */
/*
 * The test device. It runs on the vCPU thread (port I/O exits); the guest
 * is untrusted, so a line is read from guest RAM with a bound, and anything
 * that is not a 4-byte write to a known port is counted and ignored.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "testdev.h"
#include "tg-abi.h"

#define PORT_SPAN (TG_PORT_HOTPLUG + 4u - TG_PORT_PRINT)

static void print_line(struct kh_testdev *td, uint32_t gpa)
{
	char line[TG_LINE_MAX + 1];
	uint64_t avail;
	int terminated;
	size_t n;

	if (gpa >= td->vm->ram_size) {
		td->bad_accesses++;
		fprintf(td->out, "guest: [line at 0x%x is outside RAM]\n", gpa);
		return;
	}
	avail = td->vm->ram_size - gpa;
	n = avail < TG_LINE_MAX ? (size_t)avail : TG_LINE_MAX;
	memcpy(line, td->vm->ram + gpa, n); /* one copy: the guest may change it */
	line[n] = 0;
	terminated = memchr(line, 0, n) != NULL;
	n = strlen(line);
	if (n > 0 && line[n - 1] == '\n')
		line[--n] = 0;
	for (size_t i = 0; i < n; i++) /* no terminal escapes from the guest */
		if ((unsigned char)line[i] < 0x20 || (unsigned char)line[i] > 0x7e)
			line[i] = line[i] == '\t' ? ' ' : '?';
	fprintf(td->out, "guest: %s%s\n", line, terminated ? "" : " [truncated]");
	fflush(td->out);
}

void kh_cpu_sample(struct kh_cpu_sample *s)
{
	unsigned long long v[8] = {0};
	struct rusage ru;
	long hz = sysconf(_SC_CLK_TCK);
	FILE *f = fopen("/proc/stat", "re");

	memset(s, 0, sizeof(*s));
	s->t_ns = kh_now_ns();
	/* cpu  user nice system idle iowait irq softirq steal */
	if (f && fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
			&v[3], &v[4], &v[5], &v[6], &v[7]) == 8 && hz > 0)
		s->machine_busy_ns = (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) *
				     (1000000000ull / (unsigned long long)hz);
	if (f)
		fclose(f);
	if (getrusage(RUSAGE_SELF, &ru) == 0)
		s->self_ns = (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000ull +
			     (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000ull;
}

double kh_cpu_others(const struct kh_cpu_sample *a, const struct kh_cpu_sample *b)
{
	double busy, self;

	if (b->t_ns <= a->t_ns || !a->machine_busy_ns || b->machine_busy_ns < a->machine_busy_ns)
		return 0;
	busy = (double)(b->machine_busy_ns - a->machine_busy_ns);
	self = b->self_ns > a->self_ns ? (double)(b->self_ns - a->self_ns) : 0;
	return busy > self ? (busy - self) / (double)(b->t_ns - a->t_ns) : 0;
}

static int td_write(void *opaque, const struct vdev_bus_access *a, const void *data)
{
	struct kh_testdev *td = opaque;
	struct timespec ts;
	uint32_t v;

	if (a->size != 4 || (a->offset & 3)) {
		td->bad_accesses++;
		return -EINVAL;
	}
	memcpy(&v, data, sizeof(v));
	switch (a->address) {
	case TG_PORT_PRINT:
		print_line(td, v);
		break;
	case TG_PORT_STATUS:
		td->status = v;
		td->status_set = 1;
		break;
	case TG_PORT_MARK:
		if (v >= KH_MAX_MARKS) {
			td->bad_accesses++;
			return -EINVAL;
		}
		td->marks[v] = kh_now_ns();
		kh_cpu_sample(&td->mark_cpu[v]);
		if (td->io_clock_set && clock_gettime(td->io_clock, &ts) == 0)
			td->mark_io_ns[v] = (uint64_t)ts.tv_sec * 1000000000ull +
					    (uint64_t)ts.tv_nsec;
		break;
	case TG_PORT_POWER_OFF:
		td->exit_code = v;
		kh_vm_request_stop(td->vm);
		break;
	case TG_PORT_HOTPLUG:
		if (!td->hotplug || td->hotplug(td->hotplug_opaque, v) < 0) {
			td->bad_accesses++;
			return -EINVAL;
		}
		break;
	default:
		td->bad_accesses++;
		return -EINVAL;
	}
	return 0;
}

static int td_read(void *opaque, const struct vdev_bus_access *a, void *data)
{
	struct kh_testdev *td = opaque;

	(void)data; /* write-only ports read as 0 (the bus zero-filled it) */
	td->bad_accesses++;
	return 0;
}

static const char *td_label(void *opaque)
{
	(void)opaque;
	return "kvm-host test device";
}

int kh_testdev_attach(struct kh_testdev *td, struct kh_vm *vm, FILE *out)
{
	struct vdev_bus_device_ops ops = VDEV_BUS_DEVICE_OPS_INIT;

	memset(td, 0, sizeof(*td));
	td->vm = vm;
	td->out = out;
	ops.debug_label = td_label;
	ops.read = td_read;
	ops.write = td_write;
	return vdev_bus_insert(vm->pio_bus, TG_PORT_PRINT, PORT_SPAN, &ops, td);
}
