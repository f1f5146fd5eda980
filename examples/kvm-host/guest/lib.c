/* SPDX-License-Identifier: MIT */
/*
 * The guest's small runtime: formatted lines for the host console, a bump
 * allocator over the heap the boot info describes, TSC deadlines.
 */
#include <stdarg.h>
#include <stdint.h>

#include "tg.h"

/* When the host does not know the TSC rate: pacing only, the host measures
 * rates with its own clock. */
#define TG_TSC_KHZ_GUESS 2000000u

static uint64_t heap_next, heap_end, tsc_khz;

void tg_lib_init(const struct tg_boot_info *bi)
{
	heap_next = bi->heap_start;
	heap_end = bi->heap_end;
	tsc_khz = bi->tsc_khz ? bi->tsc_khz : TG_TSC_KHZ_GUESS;
}

void *tg_alloc(uint64_t size, uint64_t align)
{
	uint64_t p = (heap_next + align - 1) & ~(align - 1);

	if (p < heap_next || p > heap_end || size > heap_end - p)
		return 0;
	heap_next = p + size;
	return (void *)(uintptr_t)p;
}

uint64_t tg_deadline_ms(uint64_t ms)
{
	return tg_rdtsc() + ms * tsc_khz;
}

struct out {
	char *buf;
	uint32_t size, len; /* len < size always: room for the NUL */
};

static void put(struct out *o, char c)
{
	if (o->len + 1 < o->size)
		o->buf[o->len++] = c;
}

static void put_num(struct out *o, uint64_t v, uint32_t base, int neg, uint32_t width, char pad)
{
	char digits[24];
	uint32_t n = 0;

	do {
		digits[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	if (neg)
		digits[n++] = '-';
	while (width > n) {
		put(o, pad);
		width--;
	}
	while (n)
		put(o, digits[--n]);
}

static void format(char *buf, uint32_t size, const char *fmt, va_list ap)
{
	struct out o = {buf, size, 0};

	if (!size)
		return;
	for (; *fmt; fmt++) {
		uint32_t width = 0, longs = 0;
		char pad = ' ';
		uint64_t v;

		if (*fmt != '%') {
			put(&o, *fmt);
			continue;
		}
		fmt++;
		if (*fmt == '0')
			pad = '0';
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + (uint32_t)(*fmt++ - '0');
		while (*fmt == 'l' || *fmt == 'z') {
			longs++;
			fmt++;
		}
		switch (*fmt) {
		case 's': {
			const char *s = va_arg(ap, const char *);

			while (*s)
				put(&o, *s++);
			break;
		}
		case 'c':
			put(&o, (char)va_arg(ap, int));
			break;
		case 'd': {
			int64_t s = longs ? va_arg(ap, int64_t) : va_arg(ap, int);

			put_num(&o, s < 0 ? 0 - (uint64_t)s : (uint64_t)s, 10, s < 0, width, pad);
			break;
		}
		case 'u':
		case 'x':
			v = longs ? va_arg(ap, uint64_t) : va_arg(ap, unsigned int);
			put_num(&o, v, *fmt == 'u' ? 10 : 16, 0, width, pad);
			break;
		case '%':
			put(&o, '%');
			break;
		default: /* unknown conversion (or the string ended): stop here */
			buf[o.len] = 0;
			return;
		}
	}
	buf[o.len] = 0;
}

void tg_printf(const char *fmt, ...)
{
	char line[TG_LINE_MAX];
	va_list ap;

	va_start(ap, fmt);
	format(line, sizeof(line), fmt, ap);
	va_end(ap);
	tg_put_line(line);
}
