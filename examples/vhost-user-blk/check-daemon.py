#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Run the vhost-user-blk daemon for one scenario and check what it does.

    check-daemon.py DAEMON SCENARIO

Scenarios: usage, missing-image, bad-image, busy-socket, sigterm,
sigterm-connected, sigterm-inflight, io-file, io-uring, io-readonly, io-cow,
io-multiqueue, io-poll, reconnect. The io-*, sigterm-* and reconnect
scenarios drive the daemon with the small vhost-user front-end below (memfd
guest memory, split rings, eventfd kicks and calls, as QEMU does) and check
the disk, the replies and the --stats file. Exit status: 0 pass, 1 fail, 77
skip (io-uring only: the kernel refuses io_uring, or VDEV_HAVE_LIBURING=0
says the library was built without it).
"""
import ctypes
import mmap
import os
import select
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import time
import traceback

TIMEOUT = 30.0  # seconds for anything the daemon must do (slow under ASan)

# vhost-user requests (QEMU docs/interop/vhost-user.rst)
GET_FEATURES, SET_FEATURES, SET_OWNER = 1, 2, 3
SET_MEM_TABLE = 5
SET_VRING_NUM, SET_VRING_ADDR, SET_VRING_BASE, GET_VRING_BASE = 8, 9, 10, 11
SET_VRING_KICK, SET_VRING_CALL = 12, 13
GET_PROTOCOL_FEATURES, SET_PROTOCOL_FEATURES, GET_QUEUE_NUM = 15, 16, 17
SET_VRING_ENABLE = 18
GET_CONFIG = 24
F_VERSION, F_REPLY, F_NEED_REPLY = 0x1, 0x4, 0x8

PROTO_MQ, PROTO_REPLY_ACK, PROTO_CONFIG = 0, 3, 9
F_PROTOCOL_FEATURES = 30

# virtio and virtio-blk
VIRTIO_F_VERSION_1 = 32
BLK_F_SEG_MAX, BLK_F_RO, BLK_F_BLK_SIZE, BLK_F_FLUSH = 2, 5, 6, 9
BLK_F_MQ, BLK_F_DISCARD, BLK_F_WRITE_ZEROES = 12, 13, 14
T_IN, T_OUT, T_FLUSH, T_GET_ID, T_DISCARD, T_WRITE_ZEROES = 0, 1, 4, 8, 11, 13
S_OK, S_IOERR, S_UNSUPP = 0, 1, 2
DESC_F_NEXT, DESC_F_WRITE = 1, 2

SERIAL = b"vdev-vhost-user-blk"
IMAGE_SIZE = 1 << 20
MEM_SIZE = 4 << 20
UADDR = 0x7F1200000000  # the front-end's "user address" of guest address 0
QSIZE = 16
RING_STRIDE = 0x4000     # queue q's rings at q * RING_STRIDE
DATA_BASE = 0x100000     # queue q's buffers at DATA_BASE + q * DATA_STRIDE
DATA_STRIDE = 0x10000


class Fail(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Fail(what)


def bit(n):
    return 1 << n


# ---- the daemon -------------------------------------------------------------

class Daemon:
    """The daemon as a child process; stdout is read for the ready line."""

    def __init__(self, exe, args):
        self.proc = subprocess.Popen([exe] + args, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.out = b""

    def wait_ready(self):
        deadline = time.monotonic() + TIMEOUT
        while b"\n" not in self.out:
            left = deadline - time.monotonic()
            check(left > 0, "no 'listening on' line within %ds" % TIMEOUT)
            r, _, _ = select.select([self.proc.stdout], [], [], left)
            if r:
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    self.finish()
                    raise Fail("daemon exited before it was ready (status %s): %s" %
                               (self.proc.returncode, self.err))
                self.out += chunk
        line = self.out.split(b"\n")[0].decode()
        print("daemon: " + line)
        check(line.startswith("vhost-user-blk: listening on "), "bad ready line: " + line)
        return line

    def signal(self, sig):
        self.proc.send_signal(sig)

    def finish(self, sig=None):
        """Optionally signal, then wait; returns the exit status."""
        if sig is not None:
            self.proc.send_signal(sig)
        try:
            out, err = self.proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            raise Fail("daemon did not exit within %ds" % TIMEOUT)
        self.out += out
        self.err = err.decode(errors="replace")
        if self.err:
            print("daemon stderr:\n" + self.err.rstrip())
        return self.proc.returncode


def run_expect(exe, args, status, message, stream="stderr"):
    """Run the daemon to completion; check its exit status and message."""
    p = subprocess.run([exe] + args, capture_output=True, timeout=TIMEOUT)
    text = (p.stderr if stream == "stderr" else p.stdout).decode(errors="replace")
    print("$ vhost-user-blk %s -> %d: %s" % (" ".join(args), p.returncode, text.strip()))
    check(p.returncode == status, "exit status %d, expected %d" % (p.returncode, status))
    check(message in text, "expected %r in its %s" % (message, stream))
    if stream == "stderr" and status:
        lines = text.strip().split("\n")
        check(len(lines) == 1, "expected a one-line message, got %d lines" % len(lines))
        check(b"listening" not in p.stdout, "said it was listening")
    return p


def read_stats(path):
    with open(path) as f:
        kv = dict(line.strip().split("=", 1) for line in f if line.strip())
    return {k: int(v) for k, v in kv.items()}


def request_stats(d, path):
    """SIGUSR1, then wait for the statistics file to appear."""
    if os.path.exists(path):
        os.unlink(path)
    d.signal(signal.SIGUSR1)
    deadline = time.monotonic() + TIMEOUT
    while not os.path.exists(path):
        check(time.monotonic() < deadline, "SIGUSR1 wrote no statistics file")
        time.sleep(0.02)
    return read_stats(path)


def wait_idle(env, d, connections):
    """Wait until the daemon has seen @connections connections and the last
    one end: until then it would turn a new front-end away."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        st = request_stats(d, env.stats)
        if st["vu_connections"] == connections and st["vu_connected"] == 0:
            return
        check(time.monotonic() < deadline, "still connected: %s" % st)
        time.sleep(0.05)


def wait_socket(path):
    deadline = time.monotonic() + TIMEOUT
    while not os.path.exists(path):
        check(time.monotonic() < deadline, "socket %s never appeared" % path)
        time.sleep(0.02)
    check(stat.S_ISSOCK(os.stat(path).st_mode), "%s is not a socket" % path)


# ---- a minimal vhost-user front-end ----------------------------------------

class Queue:
    def __init__(self, fe, index):
        self.fe = fe
        self.index = index
        self.base = index * RING_STRIDE
        self.desc, self.avail, self.used_ring = self.base, self.base + 0x1000, self.base + 0x2000
        self.data = DATA_BASE + index * DATA_STRIDE
        self.avail_idx = 0
        self.used_idx = 0
        self.kick = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.call = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)

    def setup(self):
        fe, i = self.fe, self.index
        fe.send(SET_VRING_NUM, struct.pack("<II", i, QSIZE))
        fe.send(SET_VRING_BASE, struct.pack("<II", i, 0))
        fe.send(SET_VRING_ADDR, struct.pack("<IIQQQQ", i, 0, UADDR + self.desc,
                                            UADDR + self.used_ring, UADDR + self.avail, 0))
        fe.send(SET_VRING_KICK, struct.pack("<Q", i), [self.kick])
        fe.send(SET_VRING_CALL, struct.pack("<Q", i), [self.call])
        if fe.acked & bit(F_PROTOCOL_FEATURES):
            fe.send(SET_VRING_ENABLE, struct.pack("<II", i, 1))

    def close(self):
        os.close(self.kick)
        os.close(self.call)

    def place(self, head, addr, req_type, sector, out=b"", in_len=0, payload=None):
        """Lay out one chain from descriptor @head, its buffers from guest
        address @addr, and make it available (no kick). Returns the chain's
        [(address, length)] and the next free address."""
        m = self.fe.mem
        hdr = struct.pack("<IIQ", req_type, 0, sector)
        segs = [(hdr, 0)]
        if payload is not None:
            segs.append((payload, 0))
        if out:
            segs.append((out, 0))
        if in_len:
            segs.append((b"\0" * in_len, DESC_F_WRITE))
        segs.append((b"\xff", DESC_F_WRITE))  # status byte
        for n, (buf, flags) in enumerate(segs):
            m[addr:addr + len(buf)] = buf
            last = n == len(segs) - 1
            struct.pack_into("<QIHH", m, self.desc + 16 * (head + n), addr, len(buf),
                             flags | (0 if last else DESC_F_NEXT), 0 if last else head + n + 1)
            segs[n] = (addr, len(buf))
            addr += (len(buf) + 511) & ~511
        struct.pack_into("<H", m, self.avail + 4 + 2 * (self.avail_idx % QSIZE), head)
        self.avail_idx = (self.avail_idx + 1) & 0xFFFF
        struct.pack_into("<HH", m, self.avail, 0, self.avail_idx)
        return segs, addr

    def used(self):
        """The (head, length) entries the device added to the used ring
        since the last look."""
        m = self.fe.mem
        idx = struct.unpack_from("<H", m, self.used_ring + 2)[0]
        out = []
        while self.used_idx != idx:
            elem = self.used_ring + 4 + 8 * (self.used_idx % QSIZE)
            out.append(struct.unpack_from("<II", m, elem))
            self.used_idx = (self.used_idx + 1) & 0xFFFF
        return out

    def submit(self, req_type, sector, out=b"", in_len=0, payload=None):
        """One request, waited for. Returns (status, data read, used len)."""
        m = self.fe.mem
        segs, _ = self.place(0, self.data, req_type, sector, out, in_len, payload)
        os.eventfd_write(self.kick, 1)
        deadline = time.monotonic() + TIMEOUT
        while True:
            used = self.used()
            if used:
                break
            left = deadline - time.monotonic()
            check(left > 0, "queue %d: request type %d not answered" % (self.index, req_type))
            r, _, _ = select.select([self.call], [], [], left)
            if r:
                os.eventfd_read(self.call)
        check(len(used) == 1, "queue %d: %d answers to one request" % (self.index, len(used)))
        head, used_len = used[0]
        check(head == 0, "used head %d, expected 0" % head)
        status_addr = segs[-1][0]
        data = bytes(m[segs[-2][0]:segs[-2][0] + in_len]) if in_len else b""
        return m[status_addr], data, used_len


class FrontEnd:
    def __init__(self, path, want_mq=True):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(TIMEOUT)
        self.sock.connect(path)
        self.reply_ack = False
        self.acked = 0
        self.mem = None
        self.memfd = -1
        self.queues = []
        self.want_mq = want_mq

    def send(self, req, payload=b"", fds=None, want_reply=False):
        flags = F_VERSION
        ack = self.reply_ack and not want_reply
        if ack:
            flags |= F_NEED_REPLY
        msg = struct.pack("<III", req, flags, len(payload)) + payload
        if fds:
            socket.send_fds(self.sock, [msg], fds)
        else:
            self.sock.sendall(msg)
        if ack:
            (rc,) = struct.unpack("<Q", self.recv(req))
            check(rc == 0, "request %d: REPLY_ACK says %d" % (req, rc))

    def recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            check(chunk, "the daemon closed the connection")
            buf += chunk
        return buf

    def recv(self, req):
        r, flags, size = struct.unpack("<III", self.recv_exact(12))
        check(r == req, "reply to request %d, expected %d" % (r, req))
        check(flags & F_REPLY and flags & 3 == 1, "reply flags %#x" % flags)
        check(size <= 4096, "reply of %d bytes" % size)
        return self.recv_exact(size)

    def call(self, req, payload=b""):
        self.send(req, payload, want_reply=True)
        return self.recv(req)

    def get_u64(self, req):
        reply = self.call(req)
        check(len(reply) == 8, "request %d: %d-byte reply" % (req, len(reply)))
        return struct.unpack("<Q", reply)[0]

    def negotiate(self):
        """QEMU's order: features, protocol features, queue count, owner."""
        self.offered = self.get_u64(GET_FEATURES)
        check(self.offered & bit(VIRTIO_F_VERSION_1), "VERSION_1 not offered")
        check(self.offered & bit(F_PROTOCOL_FEATURES), "PROTOCOL_FEATURES not offered")
        proto = self.get_u64(GET_PROTOCOL_FEATURES)
        self.proto = proto & (bit(PROTO_MQ) | bit(PROTO_REPLY_ACK) | bit(PROTO_CONFIG))
        check(self.proto & bit(PROTO_CONFIG), "protocol feature CONFIG not offered")
        self.send(SET_PROTOCOL_FEATURES, struct.pack("<Q", self.proto))
        self.reply_ack = bool(self.proto & bit(PROTO_REPLY_ACK))
        self.num_queues = self.get_u64(GET_QUEUE_NUM) if self.proto & bit(PROTO_MQ) else 1
        self.send(SET_OWNER)
        cfg = self.call(GET_CONFIG, struct.pack("<III", 0, 60, 0) + b"\0" * 60)
        check(len(cfg) == 12 + 60, "GET_CONFIG reply of %d bytes" % len(cfg))
        self.capacity = struct.unpack_from("<Q", cfg, 12)[0]
        self.seg_max = struct.unpack_from("<I", cfg, 12 + 12)[0]
        self.cfg_queues = struct.unpack_from("<H", cfg, 12 + 34)[0]

    def start(self, nqueues):
        want = (bit(VIRTIO_F_VERSION_1) | bit(F_PROTOCOL_FEATURES) | bit(BLK_F_SEG_MAX) |
                bit(BLK_F_RO) | bit(BLK_F_BLK_SIZE) | bit(BLK_F_FLUSH) | bit(BLK_F_DISCARD) |
                bit(BLK_F_WRITE_ZEROES) | (bit(BLK_F_MQ) if self.want_mq else 0))
        self.acked = self.offered & want
        self.send(SET_FEATURES, struct.pack("<Q", self.acked))
        # Sealable, as QEMU's memory-backend-memfd: the daemon seals it.
        self.memfd = os.memfd_create("guest-ram", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        os.ftruncate(self.memfd, MEM_SIZE)
        self.mem = mmap.mmap(self.memfd, MEM_SIZE)
        self.send(SET_MEM_TABLE, struct.pack("<IIQQQQ", 1, 0, 0, MEM_SIZE, UADDR, 0),
                  [self.memfd])
        self.queues = [Queue(self, i) for i in range(nqueues)]
        for q in self.queues:
            q.setup()

    def stop(self):
        """GET_VRING_BASE stops each ring and tells where it stopped."""
        for q in self.queues:
            i, num = struct.unpack("<II", self.call(GET_VRING_BASE, struct.pack("<II", q.index, 0)))
            check(i == q.index and num == q.avail_idx,
                  "GET_VRING_BASE(%d) = %d, expected %d" % (q.index, num, q.avail_idx))

    def close(self):
        self.sock.close()
        for q in self.queues:
            q.close()
        if self.mem is not None:
            self.mem.close()
        if self.memfd >= 0:
            os.close(self.memfd)


# ---- scenarios ------------------------------------------------------------

class Env:
    def __init__(self, exe):
        self.exe = exe
        self.daemons = []
        self.dir = tempfile.mkdtemp(prefix="vub-")
        self.sock = os.path.join(self.dir, "sock")
        self.image = os.path.join(self.dir, "disk.img")
        self.stats = os.path.join(self.dir, "stats")
        with open(self.image, "wb") as f:
            f.write(bytes(i * 7 & 0xFF for i in range(IMAGE_SIZE)))

    def args(self, *extra):
        return ["--socket", self.sock, "--image", self.image, "--stats", self.stats] + list(extra)

    def start(self, *extra):
        d = Daemon(self.exe, self.args(*extra))
        self.daemons.append(d)
        d.line = d.wait_ready()
        wait_socket(self.sock)
        return d

    def image_bytes(self, off, n):
        with open(self.image, "rb") as f:
            f.seek(off)
            return f.read(n)

    def cleanup(self):
        """Kill any daemon a failed check left running, remove the files."""
        for d in self.daemons:
            if d.proc.poll() is None:
                d.proc.kill()
            d.proc.wait()
            d.proc.stdout.close()
            d.proc.stderr.close()
        shutil.rmtree(self.dir)


def stop_daemon(env, d, sig=signal.SIGTERM):
    """Signal, expect exit 0, the socket gone and final statistics."""
    rc = d.finish(sig)
    check(rc == 0, "exit status %d after signal %d" % (rc, sig))
    check(not os.path.exists(env.sock), "socket not removed at exit")
    check(os.path.exists(env.stats), "no statistics file at exit")
    check(not os.path.exists(env.stats + ".tmp"), "temporary statistics file left behind")
    st = read_stats(env.stats)
    # Written after the connection closed: nothing is connected or mapped.
    check(st["vu_connected"] == 0 and st["vu_mapped_regions"] == 0, "final counters: %s" % st)
    return st


def sc_usage(env):
    exe, s, i = env.exe, env.sock, env.image
    base = ["--socket", s, "--image", i]
    cases = [
        ([], "--socket PATH and --image FILE are required"),
        (["--socket", s], "--socket PATH and --image FILE are required"),
        (["--image", i], "--socket PATH and --image FILE are required"),
        (base + ["--queues", "0"], "--queues must be a number from 1 to 64"),
        (base + ["--queues", "65"], "--queues must be a number from 1 to 64"),
        (base + ["--queues", "2x"], "--queues must be a number from 1 to 64"),
        (base + ["--queues", "-1"], "--queues must be a number from 1 to 64"),
        (base + ["--queue-size", "100"], "--queue-size must be a power of two"),
        (base + ["--queue-size", "1"], "--queue-size must be a power of two"),
        (base + ["--queue-size", "65536"], "--queue-size must be a power of two"),
        (base + ["--backend", "nvme"], "--backend takes io_uring or file"),
        (base + ["--cow", "--backend", "file"], "do not combine it with --backend"),
        (base + ["--poll-us", "1000001"], "--poll-us must be a number"),
        (base + ["--queues", "18446744073709551617"], "--queues must be a number from 1 to 64"),
        (base + ["--queues", "4294967297"], "--queues must be a number from 1 to 64"),
        (base + ["--queues", " 2"], "--queues must be a number from 1 to 64"),
        (base + ["--queues", "+2"], "--queues must be a number from 1 to 64"),
        (base + ["--queues", ""], "--queues must be a number from 1 to 64"),
        (base + ["--queues", "0x2"], "--queues must be a number from 1 to 64"),
        (base + ["--queue-size", "4294967296"], "--queue-size must be a power of two"),
        (base + ["--queue-size", "128k"], "--queue-size must be a power of two"),
        (base + ["--poll-us", "99999999999999999999"], "--poll-us must be a number"),
        (base + ["--poll-us", "10us"], "--poll-us must be a number"),
        (base + ["--frobnicate"], "unknown option '--frobnicate'"),
        (base + ["-xv"], "unknown option '-x'"),
        (base + ["-vx"], "unknown option '-x'"),
        (base + ["--readonly=yes"], "option --readonly takes no value"),
        (base + ["--verbose=1"], "option --verbose takes no value"),
        (base + ["--read=1"], "option --read takes no value"),
        (base + ["--queue=1"], "unknown option '--queue=1'"),  # ambiguous
        (["--socket", s, "--image", ""], "--image FILE must not be empty"),
        (base + ["--stats", ""], "--stats FILE must not be empty"),
        (base + ["--queues"], "option --queues needs a value"),
        (base + ["extra"], "unexpected argument 'extra'"),
        (["--socket", "/tmp/" + "x" * 120, "--image", i], "--socket path must be 1 to 107"),
    ]
    for args, msg in cases:
        run_expect(exe, args, 2, msg)
    run_expect(exe, ["--help"], 0, "usage: vhost-user-blk", stream="stdout")
    run_expect(exe, base + ["--stats", "/nonexistent-dir/stats"], 1,
               "cannot write the statistics file /nonexistent-dir/stats.tmp")
    # FILE.tmp could be made, but never renamed over a directory.
    run_expect(exe, base + ["--stats", env.dir], 1,
               "cannot write the statistics file %s: Is a directory" % env.dir)
    check(not os.path.exists(env.dir + ".tmp"), "left %s.tmp behind" % env.dir)
    check(not os.path.exists(s), "a refused start left a socket behind")


def sc_missing_image(env):
    missing = os.path.join(env.dir, "nope.img")
    run_expect(env.exe, ["--socket", env.sock, "--image", missing], 1,
               "image %s: No such file or directory" % missing)
    check(not os.path.exists(env.sock), "a refused start left a socket behind")


def sc_bad_image(env):
    run_expect(env.exe, ["--socket", env.sock, "--image", env.dir], 1,
               "image %s is not a regular file or a block device" % env.dir)
    run_expect(env.exe, ["--socket", env.sock, "--image", "/dev/null"], 1,
               "image /dev/null is not a regular file or a block device")
    small = os.path.join(env.dir, "small.img")
    with open(small, "wb") as f:
        f.write(b"x" * 511)
    for backend in (["--backend", "file"], ["--cow"]):
        run_expect(env.exe, ["--socket", env.sock, "--image", small] + backend, 1,
                   "image %s is smaller than one 512-byte sector" % small)
    check(not os.path.exists(env.sock), "a refused start left a socket behind")


def sc_busy_socket(env):
    d = env.start()
    try:
        run_expect(env.exe, ["--socket", env.sock, "--image", env.image], 1,
                   "socket %s is in use by another server" % env.sock)
        # The refused daemon's probe (is anybody listening?) was a
        # connection too.
        wait_idle(env, d, 1)
        # The first daemon still serves.
        fe = FrontEnd(env.sock)
        fe.negotiate()
        fe.close()
    finally:
        st = stop_daemon(env, d)
    check(st["vu_connections"] == 2, "vu_connections %d" % st["vu_connections"])
    # A stale socket file (nobody listens) is replaced.
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(env.sock)
    s.close()
    d = env.start()
    stop_daemon(env, d)
    # A path that is not a socket is left alone.
    with open(env.sock, "w") as f:
        f.write("precious\n")
    run_expect(env.exe, ["--socket", env.sock, "--image", env.image], 1,
               "cannot listen on %s: a file that is not a socket is in the way" % env.sock)
    with open(env.sock) as f:
        check(f.read() == "precious\n", "the daemon clobbered a regular file")
    os.unlink(env.sock)


def sc_sigterm(env):
    for sig in (signal.SIGTERM, signal.SIGINT):
        d = env.start()
        st = request_stats(d, env.stats)
        check(st["vu_connections"] == 0 and st["vu_connected"] == 0 and st["requests"] == 0,
              "idle counters: %s" % st)
        for key in ("backend_flushes_ok", "flushes", "writes", "discards", "write_zeroes",
                    "reads", "bytes_read", "bytes_written", "ioerr", "unsupp", "malformed",
                    "backend_completed", "vu_messages", "vu_kicks", "vu_calls"):
            check(key in st, "statistics file lacks %s" % key)
        os.unlink(env.stats)
        stop_daemon(env, d, sig)


def sc_sigterm_connected(env):
    d = env.start()
    fe = FrontEnd(env.sock)
    try:
        fe.negotiate()
        fe.start(1)
        q = fe.queues[0]
        status, _, _ = q.submit(T_OUT, 3, out=b"\x42" * 512)
        check(status == S_OK, "write status %d" % status)
        check(request_stats(d, env.stats)["vu_connected"] == 1, "not connected")
        st = stop_daemon(env, d)
        # The daemon closed our connection.
        check(fe.sock.recv(1) == b"", "connection still open after the daemon exited")
    finally:
        fe.close()
    check(st["vu_connections"] == 1 and st["writes"] == 1, "final counters: %s" % st)
    check(env.image_bytes(3 * 512, 512) == b"\x42" * 512, "write lost")


INFLIGHT_WRITES = 5  # chains of 3 descriptors in a 16-entry ring
INFLIGHT_LEN = 8192
INFLIGHT_ROUNDS = 10


def sc_sigterm_inflight(env):
    """SIGTERM right behind a kick of several writes, so that some may still
    be with the backend when the signal is handled: the daemon must finish
    them before it writes its final counters and exits. Whatever the timing,
    every write is then wholly in the image or not at all, every answered one
    is in it, and the final counters match the image."""
    dropped = 0
    for rnd in range(INFLIGHT_ROUNDS):
        d = env.start()
        fe = FrontEnd(env.sock)
        try:
            fe.negotiate()
            fe.start(1)
            q = fe.queues[0]
            old = env.image_bytes(0, IMAGE_SIZE)
            writes, addr = [], q.data
            for i in range(INFLIGHT_WRITES):
                sector = 64 + i * (INFLIGHT_LEN // 512 + 1)
                data = bytes((rnd * 37 + i * 11 + n) & 0xFF for n in range(INFLIGHT_LEN))
                _, addr = q.place(3 * i, addr, T_OUT, sector, out=data)
                writes.append((sector, data))
            os.eventfd_write(q.kick, 1)
            d.signal(signal.SIGTERM)
            st = stop_daemon(env, d)
            answered = q.used()
        finally:
            fe.close()
        image = env.image_bytes(0, IMAGE_SIZE)
        done = 0
        for i, (sector, data) in enumerate(writes):
            got = image[sector * 512:sector * 512 + INFLIGHT_LEN]
            was = old[sector * 512:sector * 512 + INFLIGHT_LEN]
            check(got in (data, was), "round %d: write %d is partly in the image" % (rnd, i))
            done += got == data
        heads = sorted(h for h, _ in answered)
        check(set(heads) <= {3 * i for i in range(INFLIGHT_WRITES)}, "used heads %s" % heads)
        for h in heads:
            sector, data = writes[h // 3]
            check(image[sector * 512:sector * 512 + INFLIGHT_LEN] == data,
                  "round %d: write %d was answered but is not in the image" % (rnd, h // 3))
        # Counted when answered (writes) and when the backend completed
        # (backend_*): the latter must cover every write in the image.
        check(st["writes"] == len(heads) and st["bytes_written"] == len(heads) * INFLIGHT_LEN,
              "round %d: %d answered, counters %s" % (rnd, len(heads), st))
        check(st["backend_writes_ok"] == done and
              st["backend_bytes_written"] == done * INFLIGHT_LEN,
              "round %d: %d writes in the image, backend counters %s" % (rnd, done, st))
        dropped += done - len(heads)
    # Not a check (it depends on timing): how often the signal came while
    # writes were with the backend, their answers dropped by the reset.
    print("%d of %d writes completed after SIGTERM without an answer" %
          (dropped, INFLIGHT_ROUNDS * INFLIGHT_WRITES))


def io_checks(env, d, fe, expect_queues, readonly=False, cow=False, queue_size=256):
    fe.negotiate()
    check(fe.capacity == IMAGE_SIZE // 512, "capacity %d sectors" % fe.capacity)
    # Linux's indirect tables (seg_max + 2) must fit QEMU's queue of 128.
    check(fe.offered & bit(BLK_F_SEG_MAX) and fe.seg_max == min(queue_size, 128) - 2,
          "seg_max %d" % fe.seg_max)
    check(bool(fe.offered & bit(BLK_F_RO)) == readonly, "RO offered: %s" % (not readonly))
    if fe.proto & bit(PROTO_MQ):
        check(fe.num_queues == expect_queues, "GET_QUEUE_NUM %d" % fe.num_queues)
    if expect_queues > 1:
        check(fe.offered & bit(BLK_F_MQ), "MQ not offered")
        check(fe.cfg_queues == expect_queues, "config num_queues %d" % fe.cfg_queues)
    fe.start(expect_queues)
    original = env.image_bytes(0, IMAGE_SIZE)
    writes = 0
    for q in fe.queues:
        sector = 8 + 2 * q.index
        status, ident, _ = q.submit(T_GET_ID, 0, in_len=20)
        check(status == S_OK and ident.rstrip(b"\0") == SERIAL, "GET_ID: %d %r" % (status, ident))
        pattern = bytes((q.index * 31 + n) & 0xFF for n in range(1024))
        status, _, _ = q.submit(T_OUT, sector, out=pattern)
        if readonly:
            check(status == S_IOERR, "write on a read-only disk: status %d" % status)
            pattern = original[sector * 512:sector * 512 + 1024]
        else:
            check(status == S_OK, "write status %d" % status)
            writes += 1
        status, _, _ = q.submit(T_FLUSH, 0)
        check(status == S_OK, "flush status %d" % status)
        status, data, used_len = q.submit(T_IN, sector, in_len=1024)
        check(status == S_OK and data == pattern, "read back: status %d, data %s" %
              (status, "equal" if data == pattern else "differs"))
        check(used_len == 1025, "read used length %d" % used_len)
        status, _, _ = q.submit(T_IN, IMAGE_SIZE // 512 - 1, in_len=1024)
        check(status == S_IOERR, "read past the end: status %d" % status)
    if readonly:
        # Not offered on a read-only disk: a driver that sends them anyway
        # is told they are not supported, and nothing changes.
        check(not fe.offered & (bit(BLK_F_DISCARD) | bit(BLK_F_WRITE_ZEROES)),
              "DISCARD / WRITE_ZEROES offered on a read-only disk")
        q = fe.queues[-1]
        for t in (T_WRITE_ZEROES, T_DISCARD):
            status, _, _ = q.submit(t, 0, payload=struct.pack("<QII", 8, 1, 0))
            check(status == S_UNSUPP, "request %d on a read-only disk: status %d" % (t, status))
    else:
        # Zero the first sector the last queue wrote.
        q = fe.queues[-1]
        sector = 8 + 2 * q.index
        check(fe.acked & bit(BLK_F_WRITE_ZEROES) and fe.acked & bit(BLK_F_DISCARD),
              "DISCARD / WRITE_ZEROES not offered")
        status, _, _ = q.submit(T_WRITE_ZEROES, 0, payload=struct.pack("<QII", sector, 1, 0))
        check(status == S_OK, "write-zeroes status %d" % status)
        status, data, _ = q.submit(T_IN, sector, in_len=512)
        check(status == S_OK and data == b"\0" * 512, "write-zeroes left data")
        status, _, _ = q.submit(T_DISCARD, 0, payload=struct.pack("<QII", 32, 4, 0))
        check(status == S_OK, "discard status %d" % status)
    st = request_stats(d, env.stats)
    n = len(fe.queues)
    # Refused requests (the write to a read-only disk, the read past the
    # end, the two unsupported ones) count as malformed, not in their type.
    check(st["writes"] == writes and st["flushes"] == n and
          st["reads"] == n + (0 if readonly else 1) and
          st["malformed"] == (n * 2 + 2 if readonly else n) and
          st["unsupp"] == (2 if readonly else 0), "counters: %s" % st)
    check(st["get_ids"] == n, "get_ids %d" % st["get_ids"])
    check(st["backend_flushes_ok"] >= n, "backend_flushes_ok %d" % st["backend_flushes_ok"])
    check(st["backend_writes_ok"] == writes, "backend_writes_ok %d" % st["backend_writes_ok"])
    check(st["ioerr"] == n * (2 if readonly else 1), "ioerr %d" % st["ioerr"])
    check(st["discards"] == (0 if readonly else 1), "discards %d" % st["discards"])
    check(st["write_zeroes"] == (0 if readonly else 1), "write_zeroes %d" % st["write_zeroes"])
    check(st["vu_connections"] == 1 and st["vu_connected"] == 1 and st["vu_kicks"] >= 1 and
          st["vu_calls"] >= 1 and st["vu_mapped_regions"] == 1, "vu counters: %s" % st)
    fe.stop()
    after = env.image_bytes(0, IMAGE_SIZE)
    if readonly or cow:
        check(after == original, "the image changed")
    else:
        # Every byte: the writes where they belong, nothing else touched.
        # The discarded sectors are zero where the file system can punch a
        # hole, else unchanged (a discard is advisory).
        want = bytearray(original)
        for q in fe.queues:
            sector = 8 + 2 * q.index
            want[sector * 512:sector * 512 + 1024] = bytes((q.index * 31 + n) & 0xFF
                                                           for n in range(1024))
        sector = 8 + 2 * fe.queues[-1].index
        want[sector * 512:sector * 512 + 512] = bytes(512)
        for q in fe.queues:
            sector = 8 + 2 * q.index
            check(after[sector * 512:sector * 512 + 1024] == want[sector * 512:sector * 512 + 1024],
                  "queue %d's write is not in the image" % q.index)
        check(after[32 * 512:36 * 512] in (bytes(4 * 512), original[32 * 512:36 * 512]),
              "discarded sectors neither zero nor unchanged")
        want[32 * 512:36 * 512] = after[32 * 512:36 * 512]
        check(after == want, "the image changed outside the sectors written")
    return st


def sc_io(env, extra, backend, queues=1, readonly=False, cow=False, queue_size=256):
    d = env.start(*extra)
    check(", backend %s," % backend in d.line, "not the %s backend" % backend)
    fe = FrontEnd(env.sock)
    try:
        io_checks(env, d, fe, queues, readonly=readonly, cow=cow, queue_size=queue_size)
    finally:
        fe.close()
        st = stop_daemon(env, d)
    check(st["vu_connections"] == 1, "final vu_connections %d" % st["vu_connections"])


def cpu_ticks(pid):
    """utime + stime of a process, in clock ticks."""
    with open("/proc/%d/stat" % pid) as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return int(rest[11]) + int(rest[12])


def sc_io_poll(env):
    """--poll-us: I/O works while the loop spins, and once nothing happens
    for that long the daemon sleeps again (no CPU time while idle)."""
    d = env.start("--poll-us", "20000")
    fe = FrontEnd(env.sock)
    try:
        io_checks(env, d, fe, 1)
        time.sleep(0.2)  # ten times the polling budget
        t0 = cpu_ticks(d.proc.pid)
        time.sleep(1.0)
        idle = cpu_ticks(d.proc.pid) - t0
        hz = os.sysconf("SC_CLK_TCK")
        check(idle <= hz // 10, "%d ticks of CPU in 1 s while idle: still spinning" % idle)
    finally:
        fe.close()
        stop_daemon(env, d)


def held(d):
    """The daemon's open fds and its mappings of the front-ends' memory."""
    fds = len(os.listdir("/proc/%d/fd" % d.proc.pid))
    with open("/proc/%d/maps" % d.proc.pid) as f:
        maps = sum("memfd:guest-ram" in line for line in f)
    return fds, maps


def sc_reconnect(env):
    d = env.start("--backend", "file")
    idle = held(d)
    check(idle[1] == 0, "guest memory mapped before any connection")
    try:
        fe = FrontEnd(env.sock)
        io_checks(env, d, fe, 1)
        check(held(d)[1] >= 1, "guest memory not mapped while connected")
        fe.close()
        wait_idle(env, d, 1)
        # A closed connection leaves no fd and no mapping behind.
        check(held(d) == idle, "fds and guest mappings %s, %s before the connection" %
              (held(d), idle))
        # A hostile message: a payload larger than any request.
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(TIMEOUT)
        s.connect(env.sock)
        s.sendall(struct.pack("<III", GET_FEATURES, F_VERSION, 0x10000000))
        check(s.recv(64) == b"", "the daemon kept a connection that sent a bad header")
        s.close()
        wait_idle(env, d, 2)
        check(held(d) == idle, "after a hostile connection: %s, %s before" % (held(d), idle))
        # A well-behaved front-end is served again, with fresh state.
        fe = FrontEnd(env.sock)
        fe.negotiate()
        fe.start(1)
        status, data, _ = fe.queues[0].submit(T_IN, 9, in_len=512)
        check(status == S_OK and data == bytes((31 * 0 + n) & 0xFF for n in range(512, 1024)),
              "read after reconnect")
        fe.close()
        wait_idle(env, d, 3)
        check(held(d) == idle, "after the third connection: %s, %s before" % (held(d), idle))
    finally:
        st = stop_daemon(env, d)
    check(st["vu_connections"] == 3, "vu_connections %d" % st["vu_connections"])
    check(st["vu_bad_messages"] >= 1, "vu_bad_messages %d" % st["vu_bad_messages"])


def io_uring_missing():
    """Why the daemon cannot have io_uring here, or None: the library was
    built without liburing (meson passes VDEV_HAVE_LIBURING), or this kernel
    refuses io_uring_setup (compiled out, disabled by sysctl or seccomp)."""
    if os.environ.get("VDEV_HAVE_LIBURING") == "0":
        return "the library was built without liburing"
    libc = ctypes.CDLL(None, use_errno=True)
    params = ctypes.create_string_buffer(120)  # struct io_uring_params, zeroed
    fd = libc.syscall(425, 2, params)  # __NR_io_uring_setup on x86-64 and arm64
    if fd < 0:
        return "io_uring_setup: %s" % os.strerror(ctypes.get_errno())
    os.close(fd)
    return None


def default_backend():
    return "file" if io_uring_missing() else "io_uring"


SCENARIOS = {
    "usage": sc_usage,
    "missing-image": sc_missing_image,
    "bad-image": sc_bad_image,
    "busy-socket": sc_busy_socket,
    "sigterm": sc_sigterm,
    "sigterm-connected": sc_sigterm_connected,
    "sigterm-inflight": sc_sigterm_inflight,
    "io-file": lambda env: sc_io(env, ["--backend", "file"], "file"),
    "io-uring": lambda env: sc_io(env, ["--backend", "io_uring"], "io_uring"),
    "io-readonly": lambda env: sc_io(env, ["--readonly", "--queue-size", "64"], default_backend(),
                                     readonly=True, queue_size=64),
    "io-cow": lambda env: sc_io(env, ["--cow"], "cow", cow=True),
    "io-multiqueue": lambda env: sc_io(env, ["--queues", "4"], default_backend(), queues=4),
    "io-poll": sc_io_poll,
    "reconnect": sc_reconnect,
}


def main():
    if len(sys.argv) != 3 or sys.argv[2] not in SCENARIOS:
        print("usage: check-daemon.py DAEMON {%s}" % ",".join(SCENARIOS), file=sys.stderr)
        return 99
    exe, name = sys.argv[1], sys.argv[2]
    if name == "io-uring" and io_uring_missing():
        print("SKIP: no io_uring: %s" % io_uring_missing())
        return 77
    env = Env(exe)
    try:
        SCENARIOS[name](env)
    except Fail as e:
        print("FAILED: %s" % e)
        return 1
    except Exception:  # a bug here or an unexpected reply: still a failure
        traceback.print_exc(file=sys.stdout)
        print("FAILED: unexpected exception")
        return 1
    finally:
        env.cleanup()
    print("PASS: %s" % name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
