# SPDX-License-Identifier: MIT
"""Run the Linux test guest (build-guest) under QEMU TCG against a
vhost-user-blk back-end: examples/vhost-user-blk (ours) or
qemu-storage-daemon (the peer).

A run: start the back-end on a unix socket, append the test script (and data
files) to the guest's initramfs, boot QEMU with vhost-user-blk-pci on that
socket, read the serial console, answer the guest's "wait" lines, collect its
"@@VDEV ..." result lines (see guest-lib.sh), enforce a deadline (everything
started is killed when it passes), stop the back-end.

Used by tests/linux-guest/guest-tests.py and scripts/bench-vhost-user-blk.
"""

import os
import queue
import re
import shutil
import signal
import subprocess
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SKIP = 77
MARK = '@@VDEV '
# vhost-user-blk-pci's queue-size (QEMU's default, set explicitly): a device
# must not let the guest build longer descriptor chains (seg_max + 2).
QUEUE_SIZE = 128
SANITIZER_RE = re.compile(r'ERROR: (Address|Leak|Memory|Thread)Sanitizer|runtime error:')


class Skip(Exception):
    """A resource the run needs is absent (exit status 77)."""


class Failure(Exception):
    """The run failed; the message says why."""


def _binary(name):
    path = shutil.which(name)
    if not path:
        raise Skip('%s is not installed' % name)
    return path


def qemu_binary():
    return _binary('qemu-system-x86_64')


def peer_binary():
    return _binary('qemu-storage-daemon')


def build_guest(outdir):
    """Build (or reuse) the guest in outdir; returns (vmlinuz, initramfs)."""
    proc = subprocess.run([os.path.join(HERE, 'build-guest'), outdir],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.stdout:
        print(proc.stdout, end='', flush=True)
    if proc.returncode == SKIP:
        lines = [l for l in proc.stdout.splitlines() if 'SKIP' in l]
        raise Skip(lines[-1] if lines else 'build-guest skipped')
    if proc.returncode != 0:
        raise Failure('build-guest failed with status %d' % proc.returncode)
    return os.path.join(outdir, 'vmlinuz'), os.path.join(outdir, 'initramfs.cpio')


def _cpio_entry(name, mode, data=b''):
    name_b = name.encode() + b'\0'
    # newc: magic, then 13 eight-digit hex fields (ino, mode, uid, gid, nlink,
    # mtime, filesize, devmajor, devminor, rdevmajor, rdevminor, namesize,
    # check); header + name and the data are each padded to 4 bytes.
    fields = (0, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name_b), 0)
    hdr = b'070701' + b''.join(b'%08X' % f for f in fields)
    out = hdr + name_b
    out += b'\0' * (-len(out) % 4)
    out += data + b'\0' * (-len(data) % 4)
    return out


def make_initrd(base, path, script, files=None):
    """Write base + a second newc archive holding /test/run.sh (script) and
    /test/<name> for each files item; the kernel unpacks both in turn."""
    extra = _cpio_entry('test', 0o040755)
    extra += _cpio_entry('test/run.sh', 0o100755, script.encode())
    for name, data in (files or {}).items():
        extra += _cpio_entry('test/' + name, 0o100644, data)
    extra += _cpio_entry('TRAILER!!!', 0)
    with open(path, 'wb') as out, open(base, 'rb') as src:
        shutil.copyfileobj(src, out, 1 << 20)
        # The first archive ends 4-byte aligned (GNU cpio pads to 512).
        out.write(b'\0' * (-out.tell() % 4))
        out.write(extra)


def proc_cpu_ticks(pid):
    """utime + stime of a process, in clock ticks (all its threads)."""
    with open('/proc/%d/stat' % pid) as f:
        # comm may hold spaces: the fields after the closing ')' are fixed.
        rest = f.read().rsplit(')', 1)[1].split()
    return int(rest[11]) + int(rest[12])


def unix_listening(path):
    """Whether a unix stream socket bound to path listens (/proc/net/unix;
    without connecting, which a back-end would take for a front-end)."""
    acceptcon = 0x10000  # __SO_ACCEPTCON in the Flags column: listen() was called
    with open('/proc/net/unix') as f:
        next(f)
        for line in f:
            # Num RefCount Protocol Flags Type St Inode Path (may hold spaces)
            fields = line.rstrip('\n').split(None, 7)
            if len(fields) == 8 and fields[7] == path and int(fields[3], 16) & acceptcon:
                return True
    return False


def tail(path, n=30):
    try:
        with open(path, errors='replace') as f:
            return ''.join(f.readlines()[-n:])
    except OSError:
        return ''


class Backend:
    """A vhost-user-blk back-end process serving image on sock."""

    name = 'backend'

    def __init__(self, workdir, image, sock, tag):
        self.workdir = workdir
        self.image = image
        self.sock = sock
        self.tag = tag
        self.proc = None
        self.log = None
        self.logs = []  # one per start

    def argv(self):
        raise NotImplementedError

    def ready(self):
        raise NotImplementedError

    def start(self, timeout=20):
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        # Numbered across the work dir: a back-end started anew for the same
        # case (a restart) keeps the first one's log.
        n = 1
        while os.path.exists(os.path.join(self.workdir, '%s.%d.log' % (self.tag, n))):
            n += 1
        self.log = os.path.join(self.workdir, '%s.%d.log' % (self.tag, n))
        self.logs.append(self.log)
        with open(self.log, 'wb') as log:
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.proc.poll() is not None:
                raise Failure('%s exited with status %d at start:\n%s' %
                              (self.name, self.proc.returncode, tail(self.log)))
            if time.monotonic() > deadline:
                self.kill()
                raise Failure('%s not ready after %d s:\n%s' % (self.name, timeout, tail(self.log)))
            time.sleep(0.02)

    @property
    def pid(self):
        return self.proc.pid

    def cpu_ticks(self):
        return proc_cpu_ticks(self.proc.pid)

    def kill(self):
        """SIGKILL and reap (no-op when not running)."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self, timeout=20):
        """SIGTERM, wait; returns the exit status (SIGKILL after timeout)."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise Failure('%s ignored SIGTERM for %d s' % (self.name, timeout))
        return self.proc.returncode

    def check_clean_exit(self):
        """Stop the back-end; fail on a non-zero status or a sanitizer report
        in any of its logs."""
        rc = self.stop()
        for path in self.logs:
            with open(path, errors='replace') as f:
                text = f.read()
            if SANITIZER_RE.search(text):
                raise Failure('sanitizer report in %s:\n%s' % (path, text[-4000:]))
        if rc != 0:
            raise Failure('%s exited with status %d:\n%s' % (self.name, rc, tail(self.log)))


class OurDaemon(Backend):
    """examples/vhost-user-blk."""

    name = 'vhost-user-blk'

    def __init__(self, exe, workdir, image, sock, queues=1, readonly=False, extra=None):
        super().__init__(workdir, image, sock, 'daemon')
        self.exe = exe
        self.queues = queues
        self.readonly = readonly
        self.extra = extra or []  # more options (--backend, --poll-us, ...)
        self.stats_path = os.path.join(workdir, 'daemon.stats')

    def argv(self):
        argv = [self.exe, '--socket', self.sock, '--image', self.image,
                '--queues', str(self.queues), '--stats', self.stats_path]
        if self.readonly:
            argv.append('--readonly')
        return argv + self.extra

    def ready(self):
        with open(self.log, errors='replace') as f:
            return 'listening on' in f.read()

    def read_stats_file(self):
        stats = {}
        with open(self.stats_path) as f:
            for line in f:
                key, sep, value = line.strip().partition('=')
                if sep:
                    stats[key] = int(value)
        return stats

    def stats(self, timeout=10):
        """SIGUSR1, then the counters once the daemon rewrote the file (it
        renames a complete file over the old one)."""
        def ident():
            try:
                st = os.stat(self.stats_path)
                return (st.st_ino, st.st_mtime_ns)
            except FileNotFoundError:
                return None
        before = ident()
        self.proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while ident() == before:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise Failure('%s did not write %s after SIGUSR1' % (self.name, self.stats_path))
            time.sleep(0.01)
        return self.read_stats_file()


class PeerDaemon(Backend):
    """qemu-storage-daemon --export type=vhost-user-blk."""

    name = 'qemu-storage-daemon'

    def __init__(self, workdir, image, sock, queues=1, readonly=False, aio=None):
        super().__init__(workdir, image, sock, 'peer')
        self.queues = queues
        self.readonly = readonly
        self.aio = aio  # the file driver's aio= (threads when None)

    def argv(self):
        exe = peer_binary()
        ro = 'on' if self.readonly else 'off'
        return [exe,
                '--blockdev', 'driver=file,node-name=file0,filename=%s,discard=unmap,'
                'read-only=%s%s' % (self.image, ro, ',aio=' + self.aio if self.aio else ''),
                '--export', 'type=vhost-user-blk,id=exp0,node-name=file0,addr.type=unix,'
                'addr.path=%s,writable=%s,num-queues=%d' %
                (self.sock, 'off' if self.readonly else 'on', self.queues)]

    def ready(self):
        # The socket file appears at bind(), a moment before listen():
        # QEMU connecting in between would be refused.
        return unix_listening(self.sock)


class Guest:
    """One QEMU process booting the guest; the console is read by a thread."""

    def __init__(self, workdir, kernel, initrd, sock, queues=1, smp=1, reconnect=False):
        self.console_path = os.path.join(workdir, 'console.log')
        self.lines = []
        self.marks = queue.Queue()
        argv = [qemu_binary(), '-M', 'q35,accel=tcg', '-m', '512', '-smp', str(smp),
                '-object', 'memory-backend-memfd,id=mem,size=512M,share=on',
                '-numa', 'node,memdev=mem',
                '-nodefaults', '-no-user-config', '-display', 'none', '-serial', 'stdio',
                '-no-reboot', '-kernel', kernel, '-initrd', initrd,
                '-append', 'console=ttyS0 loglevel=4 panic=-1',
                '-chardev', 'socket,id=vu0,path=%s%s' % (sock, ',reconnect=1' if reconnect else ''),
                '-device', 'vhost-user-blk-pci,chardev=vu0,num-queues=%d,queue-size=%d' %
                (queues, QUEUE_SIZE)]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        with open(self.console_path, 'wb') as log:
            for raw in self.proc.stdout:
                log.write(raw)
                log.flush()
                line = raw.decode(errors='replace').rstrip('\r\n')
                self.lines.append(line)
                i = line.find(MARK)
                if i >= 0:
                    self.marks.put(line[i + len(MARK):].split(' ', 1))
        self.marks.put(None)

    def next_mark(self, deadline):
        """The next [kind, rest] marker; None at console EOF; Failure when the
        deadline passes first."""
        try:
            return self.marks.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise Failure('guest timed out') from None

    def send(self, line):
        try:
            self.proc.stdin.write(line.encode() + b'\n')
            self.proc.stdin.flush()
        except OSError as e:
            raise Failure('cannot answer the guest: QEMU closed its console (%s)' % e) from None

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.reader.join(5)

    def tail(self, n=40):
        return '\n'.join(self.lines[-n:])


class Result:
    def __init__(self):
        self.oks = []
        self.fails = []
        self.kv = {}
        self.rc = None
        self.seconds = 0.0


def run_guest(workdir, kernel, base_initrd, backend, script, files=None, queues=1, smp=1,
              reconnect=False, on_wait=None, timeout=120, expect_ok=()):
    """Boot the guest against a started back-end and run script; returns a
    Result. on_wait maps a guest "wait" tag to a function called before the
    host answers "go" (it may raise Failure). Raises Failure on a timeout, a
    failed check (fail lines), a missing expected ok, a non-zero script
    status, or a QEMU error; the guest and QEMU are gone when it returns."""
    initrd = os.path.join(workdir, 'initrd.cpio')
    make_initrd(base_initrd, initrd, script, files)
    res = Result()
    start = time.monotonic()
    deadline = start + timeout
    guest = Guest(workdir, kernel, initrd, backend.sock, queues=queues, smp=smp,
                  reconnect=reconnect)
    try:
        while True:
            mark = guest.next_mark(deadline)
            if mark is None:
                break
            kind, rest = mark[0], (mark[1] if len(mark) > 1 else '')
            if kind == 'ok':
                res.oks.append(rest)
            elif kind == 'fail':
                res.fails.append(rest)
            elif kind == 'kv':
                key, _, value = rest.partition('=')
                res.kv[key] = value
            elif kind == 'wait':
                if on_wait and rest in on_wait:
                    on_wait[rest]()
                guest.send('go')
            elif kind == 'done':
                m = re.fullmatch(r'rc=(\d+)', rest.strip())
                res.rc = int(m.group(1)) if m else -1
        try:
            guest.proc.wait(max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise Failure('QEMU did not exit after the guest powered off') from None
    except Failure as e:
        guest.kill()
        raise Failure('%s (after %.1f s); console tail:\n%s' %
                      (e, time.monotonic() - start, guest.tail())) from None
    finally:
        guest.kill()
    res.seconds = time.monotonic() - start
    problems = ['guest check failed: ' + f for f in res.fails]
    problems += ['guest check missing: ' + n for n in expect_ok if n not in res.oks]
    if res.rc is None:
        problems.append('guest never reported its end (QEMU status %s)' % guest.proc.returncode)
    elif res.rc != 0:
        problems.append('guest script status %d' % res.rc)
    elif guest.proc.returncode != 0:
        problems.append('QEMU exited with status %d' % guest.proc.returncode)
    if problems:
        raise Failure('\n'.join(problems) + '\nconsole tail:\n' + guest.tail())
    return res
