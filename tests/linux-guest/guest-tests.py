#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Real Linux guest tests: Debian's cloud kernel under QEMU TCG drives
examples/vhost-user-blk (or qemu-storage-daemon with --peer) through
vhost-user-blk-pci. Each case checks the guest's view (its own checks, sent
back as "@@VDEV ok/fail" lines) and the host's (the image bytes after the
run, the daemon's counters). See doc/linux-guest.md.

usage: guest-tests.py [--daemon EXE [--daemon-arg ARG]... | --peer] --guest-dir DIR
                      [--keep] CASE...
Exit status: 0 passed, 1 failed, 77 skipped (no qemu, no kernel package).
"""

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', '..', 'scripts', 'linux-guest'))
import guestrun  # noqa: E402
from guestrun import Failure, Skip  # noqa: E402

KiB = 1024
MiB = 1024 * KiB
IMAGE_SIZE = 64 * MiB
GUEST_LIB = '. /lib/vdev-guest.sh\nwait_dev /dev/vda || { fail vda "no /dev/vda"; finish; }\n'


def pattern(seed, size):
    return random.Random(seed).randbytes(size)


def first_difference(a, b):
    """Offset of the first differing byte of two equal-length buffers."""
    lo, hi = 0, len(a)
    while hi - lo > 4096:
        mid = (lo + hi) // 2
        if a[lo:mid] != b[lo:mid]:
            hi = mid
        else:
            lo = mid
    return next(i for i in range(lo, hi) if a[i] != b[i])


def expect_image(path, expected, what):
    with open(path, 'rb') as f:
        got = f.read()
    if len(got) != len(expected):
        raise Failure('%s: image is %d bytes, expected %d' % (what, len(got), len(expected)))
    if got != expected:
        off = first_difference(got, expected)
        raise Failure('%s: image differs from the expected bytes at offset %d (0x%x): '
                      'got %s, expected %s' % (what, off, off, got[off:off + 16].hex(),
                                              expected[off:off + 16].hex()))
    print('host: %s: all %d image bytes as expected' % (what, len(got)))


def dd_blocks(off, length, bs=4096):
    """skip/seek and count for dd with bs-sized blocks."""
    assert off % bs == 0 and length % bs == 0
    return off // bs, length // bs


class Ctx:
    """One case's environment: work dir, image, guest, back-end factory."""

    def __init__(self, args, name):
        self.args = args
        self.name = name
        guestrun.qemu_binary()
        self.kernel, self.initrd = guestrun.build_guest(args.guest_dir)
        self.workdir = tempfile.mkdtemp(prefix='vdev-linux-guest-%s-' % name)
        self.image = os.path.join(self.workdir, 'disk.img')
        self.sock = os.path.join(self.workdir, 'vhost-user.sock')
        self.backends = []

    @property
    def ours(self):
        return not self.args.peer

    def make_image(self, content=None):
        with open(self.image, 'wb') as f:
            if content is not None:
                assert len(content) == IMAGE_SIZE
                f.write(content)
            else:
                f.truncate(IMAGE_SIZE)

    def backend(self, queues=1, readonly=False):
        if self.ours:
            b = guestrun.OurDaemon(self.args.daemon, self.workdir, self.image, self.sock,
                                   queues=queues, readonly=readonly,
                                   extra=self.args.daemon_arg)
        else:
            b = guestrun.PeerDaemon(self.workdir, self.image, self.sock, queues=queues,
                                    readonly=readonly)
        self.backends.append(b)
        b.start()
        return b

    def run(self, backend, script, **kw):
        res = guestrun.run_guest(self.workdir, self.kernel, self.initrd, backend,
                                 GUEST_LIB + script + '\nfinish\n', **kw)
        print('host: guest ran in %.1f s: %d checks ok (%s)%s' %
              (res.seconds, len(res.oks), ' '.join(res.oks),
               ''.join(' %s=%s' % kv for kv in res.kv.items())))
        return res

    def final_stats(self, backend):
        """Stop the daemon cleanly (no sanitizer report, status 0) and return
        the counters it wrote at exit (None for the peer)."""
        backend.check_clean_exit()
        if not self.ours:
            print('host: peer back-end: no counters to check')
            return None
        stats = backend.read_stats_file()
        print('host: daemon counters at exit: ' +
              ' '.join('%s=%d' % kv for kv in sorted(stats.items()) if kv[1]))
        return stats

    def cleanup(self, ok):
        for b in self.backends:
            b.kill()
        if ok and not self.args.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)
            return
        # The initrd (85 MiB) is made anew by every run: not worth keeping.
        initrd = os.path.join(self.workdir, 'initrd.cpio')
        if os.path.exists(initrd):
            os.unlink(initrd)
        print('work dir kept: %s' % self.workdir)


def expect_counters(stats, **minimums):
    """Each named counter is at least its minimum."""
    if stats is None:
        return
    bad = ['%s=%d (expected >= %d)' % (k, stats.get(k, -1), v)
           for k, v in minimums.items() if stats.get(k, -1) < v]
    if bad:
        raise Failure('daemon counters: ' + ', '.join(bad))


# --- 1 + 2: data written by the host is read by the guest and vice versa -------------
def case_data(ctx):
    host_off, host_len = 8 * MiB + 4 * KiB, 1 * MiB + 12 * KiB
    guest_off, guest_len = 24 * MiB + 64 * KiB, 2 * MiB + 28 * KiB
    host_data = pattern(1, host_len)
    guest_data = pattern(2, guest_len)
    image = bytearray(IMAGE_SIZE)
    image[host_off:host_off + host_len] = host_data
    ctx.make_image(bytes(image))
    hs, hc = dd_blocks(host_off, host_len)
    gs, gc = dd_blocks(guest_off, guest_len)
    script = f'''
check size [ "$(blockdev --getsize64 /dev/vda)" = {IMAGE_SIZE} ]
kv max_segments "$(cat /sys/block/vda/queue/max_segments)"
# 2: the host's pattern, read with O_DIRECT in 4 KiB requests and in one of
# 1 MiB + 12 KiB.
dd if=/dev/vda of=/tmp/h4k bs=4096 skip={hs} count={hc} iflag=direct status=none
check host-pattern-4k cmp /tmp/h4k /test/host.bin
dd if=/dev/vda of=/tmp/hbig bs={host_len} count=1 iflag=direct,skip_bytes skip={host_off} \\
	status=none
check host-pattern-big cmp /tmp/hbig /test/host.bin
# 1: the guest's pattern, written with O_DIRECT in 128 KiB requests (the last
# one shorter), read back through the device.
dd if=/test/guest.bin of=/dev/vda bs=131072 seek={guest_off} oflag=direct,seek_bytes \\
	conv=notrunc status=none
check guest-write [ $? = 0 ]
dd if=/dev/vda of=/tmp/g bs=4096 skip={gs} count={gc} iflag=direct status=none
check guest-readback cmp /tmp/g /test/guest.bin
'''
    backend = ctx.backend()
    res = ctx.run(backend, script, files={'host.bin': host_data, 'guest.bin': guest_data},
                  expect_ok=['size', 'host-pattern-4k', 'host-pattern-big', 'guest-write',
                             'guest-readback'])
    stats = ctx.final_stats(backend)
    # Whether a large request really becomes a chain longer than the queue
    # depends on how scattered the guest's pages are; the limit that allows
    # it is always visible: the device's seg_max, the guest's max_segments.
    segs = int(res.kv.get('max_segments', 0))
    if not 0 < segs <= guestrun.QUEUE_SIZE - 2:
        raise Failure('the guest may send %d data segments per request: chains of %d '
                      'descriptors, longer than the %d-entry queue (seg_max too large)' %
                      (segs, segs + 2, guestrun.QUEUE_SIZE))
    image[guest_off:guest_off + guest_len] = guest_data
    expect_image(ctx.image, bytes(image), 'host pattern kept, guest pattern written')
    expect_counters(stats, reads=hc + 1 + gc, writes=(guest_len + 131071) // 131072,
                    bytes_written=guest_len)


# --- 3: fio with crc32c verification, psync QD1 and libaio QD16 ----------------------
FIO_JOBS = [
    # name, engine, depth, offset, size, block sizes
    ('psync-qd1', 'psync', 1, 4 * MiB, 4 * MiB, '4k-4k'),
    ('libaio-qd16', 'libaio', 16, 16 * MiB, 8 * MiB, '4k-64k'),
]


def fio_args(job, filename, engine=None, depth=None):
    name, job_engine, job_depth, off, size, bs = job
    return ['--name=' + name, '--filename=' + filename, '--rw=randwrite',
            '--ioengine=' + (engine or job_engine), '--iodepth=%d' % (depth or job_depth),
            '--offset=%d' % off, '--size=%d' % size, '--bsrange=' + bs, '--verify=crc32c',
            '--verify_fatal=1', '--randseed=%d' % (4242 + job_depth), '--randrepeat=1']


def case_fio(ctx):
    ctx.make_image()
    script = ''
    for job in FIO_JOBS:
        name = job[0]
        script += f'''
fio {' '.join(fio_args(job, '/dev/vda'))} --direct=1 --output=/tmp/{name}.out
rc=$?
grep -E "err=|IOPS=" /tmp/{name}.out
check fio-{name} sh -c "[ $rc = 0 ] && grep -q 'err= 0' /tmp/{name}.out"
'''
    backend = ctx.backend()
    ctx.run(backend, script, timeout=240, expect_ok=['fio-' + j[0] for j in FIO_JOBS])
    stats = ctx.final_stats(backend)
    total = sum(j[4] for j in FIO_JOBS)
    expect_counters(stats, bytes_written=total, bytes_read=total, writes=1, reads=1)
    # The host reads the blocks back from the image with fio --verify_only:
    # every 4 KiB (the verify interval, the smallest block) starts with a
    # header holding its offset and the crc32c of its data, so data that is
    # missing, corrupt or in the wrong place fails.
    fio = shutil.which('fio')
    if not fio:
        # build-guest copied the host's fio into the guest: it was there.
        raise Failure('fio is not installed on the host: cannot verify the image')
    for job in FIO_JOBS:
        out = os.path.join(ctx.workdir, 'host-%s.out' % job[0])
        cmd = [fio] + fio_args(job, ctx.image, 'psync', 1) + ['--verify_only', '--output=' + out]
        if subprocess.run(cmd).returncode != 0:
            raise Failure('host fio --verify_only %s failed:\n%s' % (job[0], guestrun.tail(out)))
        print('host: fio --verify_only %s: the guest\'s blocks verify on the image' % job[0])


# --- 4: a guest fsync reaches the back-end as a flush --------------------------------
def case_flush(ctx):
    ctx.make_image()
    off, length = 4 * MiB, 256 * KiB
    data = pattern(4, length)
    snaps = {}

    def snapshot(tag):
        def take():
            if ctx.ours:
                snaps[tag] = backend.stats()
                print('host: at %s: flushes=%d backend_flushes_ok=%d bytes_written=%d' %
                      (tag, snaps[tag]['flushes'], snaps[tag]['backend_flushes_ok'],
                       snaps[tag]['bytes_written']))
        return take
    script = f'''
# The guest sends flushes only to a write-back disk. Ours offers one; the
# peer reports write-through (config wce=0), so the guest switches it
# (virtio-blk's cache_type writes wce; VIRTIO_BLK_F_CONFIG_WCE).
mode=$(cat /sys/block/vda/queue/write_cache)
kv cache-mode "$mode"
[ "$mode" = "write back" ] || echo "write back" >/sys/block/vda/cache_type
check write-back [ "$(cat /sys/block/vda/queue/write_cache)" = "write back" ]
# Buffered, with the disk held open: the last close of a block device writes
# its dirty pages back, so without fd 3 the data would leave at dd's exit.
exec 3</dev/vda
dd if=/test/data of=/dev/vda bs=65536 seek={off // 65536} conv=notrunc status=none
check buffered-write [ $? = 0 ]
host_wait written
host_wait idle
# fsync on the block device: write-back, then a flush (sync(2) alone writes
# a raw disk's pages back but sends no flush).
check fsync sync /dev/vda
host_wait synced
exec 3<&-
'''
    backend = ctx.backend()
    res = ctx.run(backend, script, files={'data': data},
                  on_wait={t: snapshot(t) for t in ('written', 'idle', 'synced')},
                  expect_ok=['write-back', 'buffered-write', 'fsync'])
    ctx.final_stats(backend)
    image = bytearray(IMAGE_SIZE)
    image[off:off + length] = data
    expect_image(ctx.image, bytes(image), 'data written back by fsync')
    if not ctx.ours:
        return
    if res.kv.get('cache-mode') != 'write back':
        raise Failure('the guest saw a %s disk, expected write back' % res.kv.get('cache-mode'))
    w, i, s = snaps['written'], snaps['idle'], snaps['synced']
    # Nothing reaches an idle disk: between the first two snapshots nothing
    # changes, so what grows after the fsync is the fsync's doing.
    for k in ('flushes', 'backend_flushes_ok', 'bytes_written'):
        if i[k] != w[k]:
            raise Failure('%s changed while the guest was idle: %d -> %d' % (k, w[k], i[k]))
    if s['flushes'] <= i['flushes'] or s['backend_flushes_ok'] <= i['backend_flushes_ok']:
        raise Failure('fsync did not reach the back-end: flushes %d -> %d, '
                      'backend_flushes_ok %d -> %d' % (i['flushes'], s['flushes'],
                                                        i['backend_flushes_ok'],
                                                        s['backend_flushes_ok']))
    if s['bytes_written'] - i['bytes_written'] < length:
        raise Failure('the data was written before the fsync: %d bytes after it, expected '
                      '>= %d' % (s['bytes_written'] - i['bytes_written'], length))
    print('host: fsync: flushes %d -> %d, backend_flushes_ok %d -> %d, %d bytes written' %
          (i['flushes'], s['flushes'], i['backend_flushes_ok'], s['backend_flushes_ok'],
           s['bytes_written'] - i['bytes_written']))


# --- 5: discard and write-zeroes ------------------------------------------------------
def case_discard(ctx):
    image = bytearray(pattern(5, IMAGE_SIZE))
    ctx.make_image(bytes(image))
    # Odd sizes (sector multiples) between untouched bytes.
    ranges = {
        'discard': (4 * MiB + 512, 1 * MiB + 3584),  # BLKDISCARD
        'zeroout': (12 * MiB + 4096, 1 * MiB + 512),  # WRITE_ZEROES, unmap clear
        'punch': (20 * MiB + 1024, 512 * KiB),  # WRITE_ZEROES, unmap set
    }
    do, dl = ranges['discard']
    zo, zl = ranges['zeroout']
    po, pl = ranges['punch']
    script = f'''
dmax=$(cat /sys/block/vda/queue/discard_max_bytes)
zmax=$(cat /sys/block/vda/queue/write_zeroes_max_bytes)
kv discard_max_bytes "$dmax"
kv write_zeroes_max_bytes "$zmax"
check discard-offered [ "$dmax" -gt 0 ]
check write-zeroes-offered [ "$zmax" -gt 0 ]
check discard blkdiscard -o {do} -l {dl} /dev/vda
check zeroout blkop zeroout /dev/vda {zo} {zl}
check punch blkop punch /dev/vda {po} {pl}
dd if=/dev/zero of=/tmp/zeros bs={max(zl, pl)} count=1 status=none
for r in "zeroout {zo} {zl}" "punch {po} {pl}"; do
	set -- $r
	dd if=/dev/vda of=/tmp/r bs=$3 count=1 skip=$2 iflag=direct,skip_bytes status=none
	check $1-reads-zeros cmp -n $3 /tmp/r /tmp/zeros
done
'''
    backend = ctx.backend()
    ctx.run(backend, script, expect_ok=[
        'discard-offered', 'write-zeroes-offered', 'discard', 'zeroout', 'punch',
        'zeroout-reads-zeros', 'punch-reads-zeros'])
    stats = ctx.final_stats(backend)
    # The back-ends punch a hole for a discard (the image is on a file system
    # that can), so all three ranges read as zeros on the host; the bytes
    # around them are untouched.
    for off, length in ranges.values():
        image[off:off + length] = bytes(length)
    expect_image(ctx.image, bytes(image), 'discard and write-zeroes ranges zero, rest intact')
    expect_counters(stats, discards=1, write_zeroes=2, backend_discards_ok=1,
                    backend_write_zeroes_ok=2)
    if stats is not None and stats.get('writes', 0):
        raise Failure('write-zeroes became %d plain writes' % stats['writes'])


# --- 6: two queues --------------------------------------------------------------------
def case_multiqueue(ctx):
    ctx.make_image()
    length = 1 * MiB
    datas = [pattern(60 + q, length) for q in range(2)]
    offs = [8 * MiB, 32 * MiB]
    script = f'''
check two-queues [ "$(ls /sys/block/vda/mq | wc -l)" = 2 ]
for q in 0 1; do kv cpus-of-queue-$q "$(cat /sys/block/vda/mq/$q/cpu_list)"; done
# Interrupts of queue $1 (its own MSI-X vector), summed over the CPUs.
irqs() {{
	grep -E "virtio[0-9]+-req\\.$1\\$" /proc/interrupts |
		awk '{{ n = 0; for (i = 2; i <= NF; i++) if ($i ~ /^[0-9]+$/) n += $i; print n }}'
}}
i0=$(irqs 0)
i1=$(irqs 1)
# One writer per CPU: blk-mq maps CPU n to queue n.
taskset -c 0 dd if=/test/d0 of=/dev/vda bs=16384 seek={offs[0] // 16384} oflag=direct \\
	conv=notrunc status=none &
p0=$!
taskset -c 1 dd if=/test/d1 of=/dev/vda bs=16384 seek={offs[1] // 16384} oflag=direct \\
	conv=notrunc status=none &
p1=$!
check write-cpu0 wait $p0
check write-cpu1 wait $p1
# Each queue completed requests: its interrupt count grew.
kv irqs-queue0 "$i0 -> $(irqs 0)"
kv irqs-queue1 "$i1 -> $(irqs 1)"
check queue0-used [ "$(irqs 0)" -gt "$i0" ]
check queue1-used [ "$(irqs 1)" -gt "$i1" ]
taskset -c 1 dd if=/dev/vda of=/tmp/r0 bs=65536 skip={offs[0] // 65536} count={length // 65536} \\
	iflag=direct status=none
taskset -c 0 dd if=/dev/vda of=/tmp/r1 bs=65536 skip={offs[1] // 65536} count={length // 65536} \\
	iflag=direct status=none
check readback0 cmp /tmp/r0 /test/d0
check readback1 cmp /tmp/r1 /test/d1
'''
    backend = ctx.backend(queues=2)
    ctx.run(backend, script, files={'d0': datas[0], 'd1': datas[1]}, queues=2, smp=2,
            expect_ok=['two-queues', 'write-cpu0', 'write-cpu1', 'queue0-used', 'queue1-used',
                       'readback0', 'readback1'])
    stats = ctx.final_stats(backend)
    image = bytearray(IMAGE_SIZE)
    for off, data in zip(offs, datas):
        image[off:off + length] = data
    expect_image(ctx.image, bytes(image), 'both queues\' writes')
    expect_counters(stats, bytes_written=2 * length)


# --- 7: read-only disk ----------------------------------------------------------------
def case_readonly(ctx):
    content = pattern(7, IMAGE_SIZE)
    ctx.make_image(content)
    script = f'''
check read-only-flag [ "$(cat /sys/block/vda/ro)" = 1 ]
dd if=/dev/vda of=/tmp/head bs=65536 count=16 iflag=direct status=none
check reads cmp /tmp/head /test/head
check_fails write-direct dd if=/test/head of=/dev/vda bs=65536 oflag=direct conv=notrunc
check_fails write-buffered sh -c "dd if=/test/head of=/dev/vda bs=65536 conv=notrunc,fsync"
check_fails discard blkdiscard -o 0 -l 65536 /dev/vda
check_fails zeroout blkop zeroout /dev/vda 0 65536
# Clearing the device node's flag must not make the disk writable either (the
# kernel keeps the disk read-only as the device said: VIRTIO_BLK_F_RO).
blockdev --setrw /dev/vda
check_fails write-after-setrw dd if=/test/head of=/dev/vda bs=65536 oflag=direct conv=notrunc
'''
    backend = ctx.backend(readonly=True)
    ctx.run(backend, script, files={'head': content[:MiB]},
            expect_ok=['read-only-flag', 'reads', 'write-direct', 'write-buffered', 'discard',
                       'zeroout', 'write-after-setrw'])
    stats = ctx.final_stats(backend)
    expect_image(ctx.image, content, 'read-only image unchanged')
    if stats is not None:
        done = {k: stats.get(k, 0) for k in ('backend_writes_ok', 'backend_discards_ok',
                                             'backend_write_zeroes_ok')}
        if any(done.values()):
            raise Failure('the back-end changed a read-only disk: %s' % done)


# --- 8: the daemon is killed and restarted while the guest is idle --------------------
def case_reconnect(ctx):
    ctx.make_image()
    length = 512 * KiB
    before, after = pattern(81, length), pattern(82, length)
    off_b, off_a = 2 * MiB, 40 * MiB
    state = {}

    def restart():
        old = state['backend']
        if ctx.ours:
            s = old.stats()
            print('host: before the kill: vu_connections=%d writes=%d' %
                  (s['vu_connections'], s['writes']))
        old.kill()
        print('host: back-end killed (SIGKILL)')
        new = ctx.backend()
        state['backend'] = new
        # QEMU retries the socket every second (reconnect=1) and then sets
        # the device up again: wait until the new daemon has guest memory.
        deadline = time.monotonic() + 30
        while ctx.ours:
            s = new.stats()
            if s['vu_connections'] >= 1 and s['vu_mapped_regions'] >= 1:
                print('host: front-end reconnected: vu_connections=%d' % s['vu_connections'])
                break
            if time.monotonic() > deadline:
                raise Failure('QEMU did not reconnect within 30 s')
            time.sleep(0.2)
        if not ctx.ours:
            time.sleep(3)
    script = f'''
dd if=/test/before of=/dev/vda bs=65536 seek={off_b // 65536} oflag=direct conv=notrunc \\
	status=none
check write-before [ $? = 0 ]
host_wait idle
dd if=/test/after of=/dev/vda bs=65536 seek={off_a // 65536} oflag=direct conv=notrunc \\
	status=none
check write-after [ $? = 0 ]
dd if=/dev/vda of=/tmp/b bs=65536 skip={off_b // 65536} count={length // 65536} iflag=direct \\
	status=none
check read-before cmp /tmp/b /test/before
dd if=/dev/vda of=/tmp/a bs=65536 skip={off_a // 65536} count={length // 65536} iflag=direct \\
	status=none
check read-after cmp /tmp/a /test/after
'''
    state['backend'] = ctx.backend()
    ctx.run(state['backend'], script, files={'before': before, 'after': after},
            reconnect=True, on_wait={'idle': restart},
            expect_ok=['write-before', 'write-after', 'read-before', 'read-after'])
    stats = ctx.final_stats(state['backend'])
    image = bytearray(IMAGE_SIZE)
    image[off_b:off_b + length] = before
    image[off_a:off_a + length] = after
    expect_image(ctx.image, bytes(image), 'writes before and after the restart')
    # The restarted daemon served the guest's later I/O.
    expect_counters(stats, vu_connections=1, bytes_written=length, bytes_read=2 * length)


CASES = {
    'data': case_data,
    'fio': case_fio,
    'flush': case_flush,
    'discard': case_discard,
    'multiqueue': case_multiqueue,
    'readonly': case_readonly,
    'reconnect': case_reconnect,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    who = ap.add_mutually_exclusive_group(required=True)
    who.add_argument('--daemon', help='examples/vhost-user-blk binary')
    who.add_argument('--peer', action='store_true', help='use qemu-storage-daemon instead')
    ap.add_argument('--guest-dir', required=True, help='where build-guest puts the guest')
    ap.add_argument('--daemon-arg', action='append', default=[],
                    help='extra option for the daemon (e.g. --daemon-arg=--backend=file)')
    ap.add_argument('--keep', action='store_true', help='keep the work dir')
    ap.add_argument('cases', nargs='+', choices=sorted(CASES))
    args = ap.parse_args()
    status = 0
    for name in args.cases:
        print('=== %s (%s)' % (name, 'qemu-storage-daemon' if args.peer else args.daemon),
              flush=True)
        ctx = None
        ok = False
        try:
            ctx = Ctx(args, name)
            CASES[name](ctx)
            ok = True
            print('PASS %s' % name)
        except Skip as e:
            print('SKIP %s: %s' % (name, e))
            status = status or guestrun.SKIP
            ok = True
        except Failure as e:
            print('FAIL %s: %s' % (name, e))
            status = 1
        finally:
            if ctx:
                ctx.cleanup(ok)
        sys.stdout.flush()
    return status


if __name__ == '__main__':
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    sys.exit(main())
