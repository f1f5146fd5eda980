#!/usr/bin/env python3
"""Seeds for fuzz/fuzz-vhost-user.c: valid front-end conversations in the
harness's input format (see the comment at the top of that file).

usage: fuzz/gen-vhost-user-seeds.py fuzz/corpus/vhost-user"""
import os
import struct
import sys

UA = 0x7F0000000000           # user address of guest address 0
REGION = 0x10000               # 64 KiB region: fd size byte 15
QSIZE = 16
Q = [(0x000, 0x100, 0x140), (0x200, 0x300, 0x340)]  # desc, avail/driver, used/device
HDR, DATA, STATUS = 0x400, 0x600, 0xc00
TEMPLATE_LEN = 0x3000

F_VERSION_1, F_PROTOCOL, F_EVENT_IDX, F_INDIRECT, F_PACKED, F_LOG_ALL = 32, 30, 29, 28, 34, 26
BLK_FLUSH, BLK_MQ, BLK_DISCARD, BLK_WZ, BLK_SEG_MAX = 9, 12, 13, 14, 2
P_MQ, P_LOG_SHMFD, P_REPLY_ACK, P_CONFIG, P_INFLIGHT, P_RESET, P_MEM_SLOTS, P_STATUS = \
    0, 1, 3, 9, 12, 13, 15, 16


def b(*bits):
    return sum(1 << x for x in bits)


class Seed:
    def __init__(self, flags=0):
        self.flags = flags
        self.tmpl = bytearray(TEMPLATE_LEN)
        self.recs = b""
        self.nevt = 0

    def msg(self, req, payload=b"", fds=(), need_reply=False, op=0):
        """fds: memfd size bytes for memory messages, or a count of eventfds."""
        if isinstance(fds, int):
            nfds, sizes = fds, b""
            self.nevt += fds
        else:
            nfds, sizes = len(fds), bytes(fds)
        self.recs += struct.pack("<BBBHB", op, req, 0x08 if need_reply else 0, len(payload),
                                 nfds) + sizes + payload

    def kick(self, evt):
        self.recs += bytes([5, evt])

    def poke(self, memfd, off, val):
        self.recs += struct.pack("<BBHB", 6, memfd, off, val)

    def poke16(self, memfd, off, val):
        self.poke(memfd, off, val & 0xFF)
        self.poke(memfd, off + 1, val >> 8)

    def reconnect(self, backend_side):
        self.recs += bytes([7, 1 if backend_side else 0])

    def bytes(self):
        tmpl = bytes(self.tmpl).rstrip(b"\0")   # memfds start zeroed anyway
        return bytes([self.flags]) + struct.pack("<H", len(tmpl)) + tmpl + self.recs

    # ---- conversation pieces ----
    def negotiate(self, features, proto, config=True):
        self.msg(1)                                   # GET_FEATURES
        self.msg(15)                                  # GET_PROTOCOL_FEATURES
        self.msg(16, struct.pack("<Q", proto))        # SET_PROTOCOL_FEATURES
        if proto & b(P_MQ):
            self.msg(17)                              # GET_QUEUE_NUM
        self.msg(3)                                   # SET_OWNER
        if config and proto & b(P_CONFIG):
            self.msg(24, struct.pack("<III", 0, 60, 0) + bytes(60))  # GET_CONFIG
        self.msg(2, struct.pack("<Q", features))      # SET_FEATURES

    def mem_table(self):
        self.msg(5, struct.pack("<II", 1, 0) + struct.pack("<QQQQ", 0, REGION, UA, 0), [15])

    def ring(self, i, enable=True, base=0, log=False):
        d, a, u = Q[i]
        self.msg(8, struct.pack("<II", i, QSIZE), need_reply=True)     # SET_VRING_NUM
        self.msg(10, struct.pack("<II", i, base))                      # SET_VRING_BASE
        self.msg(9, struct.pack("<IIQQQQ", i, 1 if log else 0, UA + d, UA + u, UA + a,
                                0x8000 if log else 0))                 # SET_VRING_ADDR
        kick = self.nevt
        self.msg(12, struct.pack("<Q", i), 1)                          # SET_VRING_KICK
        self.msg(13, struct.pack("<Q", i), 1)                          # SET_VRING_CALL
        if enable:
            self.msg(18, struct.pack("<II", i, 1))                     # SET_VRING_ENABLE
        return kick

    # ---- guest memory ----
    def split_chain(self, qi, head, segs):
        """segs: (addr, len, write). Descriptors head.. chained."""
        d = Q[qi][0]
        for n, (addr, ln, wr) in enumerate(segs):
            last = n == len(segs) - 1
            struct.pack_into("<QIHH", self.tmpl, d + 16 * (head + n), addr, ln,
                             (2 if wr else 0) | (0 if last else 1), 0 if last else head + n + 1)

    def split_avail(self, qi, heads):
        a = Q[qi][1]
        struct.pack_into("<HH", self.tmpl, a, 0, len(heads))
        for n, h in enumerate(heads):
            struct.pack_into("<H", self.tmpl, a + 4 + 2 * n, h)

    def blk_req(self, typ, sector, data=b"", data_in=0, hdr=HDR, dat=DATA, st=STATUS):
        struct.pack_into("<IIQ", self.tmpl, hdr, typ, 0, sector)
        segs = [(hdr, 16, False)]
        if data:
            self.tmpl[dat:dat + len(data)] = data
            segs.append((dat, len(data), False))
        if data_in:
            segs.append((dat, data_in, True))
        segs.append((st, 1, True))
        return segs


def seed_negotiate():
    s = Seed()
    s.negotiate(b(F_VERSION_1, F_PROTOCOL, BLK_FLUSH),
                b(P_MQ, P_REPLY_ACK, P_CONFIG, P_RESET, P_STATUS))
    s.msg(40)                                   # GET_STATUS
    s.msg(39, struct.pack("<Q", 0x0f))          # SET_STATUS
    s.msg(25, struct.pack("<III", 32, 1, 0) + b"\x01")  # SET_CONFIG wce
    s.msg(34)                                   # RESET_DEVICE
    return s


def seed_split_io(two_queues=False, event_idx=False):
    s = Seed(flags=1 if two_queues else 0)
    feats = b(F_VERSION_1, F_PROTOCOL, BLK_FLUSH, BLK_DISCARD, BLK_WZ, BLK_SEG_MAX)
    if two_queues:
        feats |= b(BLK_MQ)
    if event_idx:
        feats |= b(F_EVENT_IDX)
    s.negotiate(feats, b(P_MQ, P_REPLY_ACK, P_CONFIG))
    # q0: write sector 1, flush; q1: GET_ID
    s.split_chain(0, 0, s.blk_req(1, 1, data=bytes(range(256)) * 2))
    s.split_chain(0, 3, s.blk_req(4, 0, hdr=HDR + 0x20, st=STATUS + 1))
    s.split_avail(0, [0, 3])
    s.mem_table()
    kick0 = s.ring(0)
    if two_queues:
        s.split_chain(1, 0, s.blk_req(8, 0, data_in=20, hdr=HDR + 0x40, dat=DATA + 0x400,
                                      st=STATUS + 2))
        s.split_avail(1, [0])
        kick1 = s.ring(1)
        s.kick(kick1)
    s.kick(kick0)
    # A third request on q0 written by the "guest" afterwards: read sector 1.
    segs = s.blk_req(0, 1, data_in=512, hdr=HDR + 0x60, dat=DATA + 0x200 * 0, st=STATUS + 3)
    # place descriptors 5..7 via pokes (memfd 0)
    d = Q[0][0]
    for n, (addr, ln, wr) in enumerate(segs):
        last = n == len(segs) - 1
        raw = struct.pack("<QIHH", addr, ln, (2 if wr else 0) | (0 if last else 1),
                          0 if last else 5 + n + 1)
        for k, v in enumerate(raw):
            s.poke(0, d + 16 * (5 + n) + k, v)
    hdr = struct.pack("<IIQ", 0, 0, 1)
    for k, v in enumerate(hdr):
        s.poke(0, HDR + 0x60 + k, v)
    s.poke16(0, Q[0][1] + 4 + 4, 5)
    s.poke16(0, Q[0][1] + 2, 3)
    s.kick(kick0)
    s.msg(11, struct.pack("<II", 0, 0))         # GET_VRING_BASE
    if two_queues:
        s.msg(11, struct.pack("<II", 1, 0))
    return s


def seed_packed():
    s = Seed()
    s.negotiate(b(F_VERSION_1, F_PROTOCOL, F_PACKED, BLK_FLUSH), b(P_MQ, P_REPLY_ACK, P_CONFIG))
    segs = s.blk_req(0, 2, data_in=1024)
    d = Q[0][0]
    for n, (addr, ln, wr) in enumerate(segs):
        last = n == len(segs) - 1
        flags = 0x80 | (2 if wr else 0) | (0 if last else 1)   # AVAIL=1, USED=0
        struct.pack_into("<QIHH", s.tmpl, d + 16 * n, addr, ln, 7, flags)
    s.mem_table()
    kick = s.ring(0, base=0x8000)               # last_avail_idx 0, wrap counter 1
    s.kick(kick)
    s.msg(11, struct.pack("<II", 0, 0))
    return s


def seed_mem_slots():
    s = Seed(flags=2 << 3)                      # max_mem_slots 8
    s.negotiate(b(F_VERSION_1, F_PROTOCOL), b(P_REPLY_ACK, P_MEM_SLOTS, P_CONFIG), config=False)
    s.msg(36)                                   # GET_MAX_MEM_SLOTS
    reg = struct.pack("<QQQQQ", 0, 0, 0x8000, UA, 0)
    s.msg(37, reg, [7])                         # ADD_MEM_REG 32 KiB at 0
    reg2 = struct.pack("<QQQQQ", 0, 0x100000, 0x4000, UA + 0x100000, 0)
    s.msg(37, reg2, [3])                        # ADD_MEM_REG 16 KiB at 1 MiB
    s.msg(38, reg2)                             # REM_MEM_REG
    s.split_chain(0, 0, s.blk_req(8, 0, data_in=20))
    s.split_avail(0, [0])
    kick = s.ring(0)
    s.kick(kick)
    return s


def seed_inflight():
    s = Seed()
    s.negotiate(b(F_VERSION_1, F_PROTOCOL, BLK_FLUSH), b(P_MQ, P_REPLY_ACK, P_CONFIG, P_INFLIGHT))
    s.msg(31, struct.pack("<QQHHI", 0, 0, 1, QSIZE, 0))   # GET_INFLIGHT_FD
    s.msg(32, struct.pack("<QQHHI", 4096, 0, 1, QSIZE, 0), [0x80])  # SET_INFLIGHT_FD, 4 KiB zeroed
    s.split_chain(0, 0, s.blk_req(1, 3, data=b"\xaa" * 512))
    s.split_avail(0, [0])
    s.mem_table()
    kick = s.ring(0)
    s.kick(kick)
    s.reconnect(False)                          # front-end goes away mid-session
    s.negotiate(b(F_VERSION_1, F_PROTOCOL, BLK_FLUSH), b(P_MQ, P_REPLY_ACK, P_CONFIG, P_INFLIGHT))
    s.msg(32, struct.pack("<QQHHI", 4096, 0, 1, QSIZE, 0), [0x80])
    s.mem_table()
    s.ring(0)
    s.reconnect(True)
    return s


def seed_log():
    s = Seed()
    s.negotiate(b(F_VERSION_1, F_PROTOCOL, F_LOG_ALL, BLK_FLUSH),
                b(P_MQ, P_REPLY_ACK, P_CONFIG, P_LOG_SHMFD))
    s.split_chain(0, 0, s.blk_req(1, 0, data=b"\x55" * 512))
    s.split_avail(0, [0])
    s.mem_table()
    s.msg(6, struct.pack("<QQ", 4096, 0), [0x80])  # SET_LOG_BASE, 4 KiB zeroed log
    s.msg(7, b"", 1)                            # SET_LOG_FD
    kick = s.ring(0, log=True)
    s.kick(kick)
    s.msg(11, struct.pack("<II", 0, 0))
    return s


SEEDS = {
    "negotiate": seed_negotiate,
    "split-io": seed_split_io,
    "split-io-mq-event-idx": lambda: seed_split_io(True, True),
    "packed-read": seed_packed,
    "mem-slots": seed_mem_slots,
    "inflight-reconnect": seed_inflight,
    "dirty-log": seed_log,
}

if __name__ == "__main__":
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, fn in SEEDS.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(fn().bytes())
    print("wrote %d seeds to %s" % (len(SEEDS), out))
