#!/usr/bin/env python3
"""Seeds for fuzz/fuzz-pci.c: meaningful guest and VMM sequences in the
harness's input format (see the comment at the top of that file).

usage: fuzz/gen-pci-seeds.py fuzz/corpus/pci"""
import os
import struct
import sys

# The harness's machine (fuzz-pci.c).
VP1, PORT, PLAIN, VP2 = 0, 1, 2, 3           # function indices
PATH_DIRECT, PATH_CF8, PATH_ECAM = 0, 1, 2
RAM_BASE, RAM_SIZE = 0x10000000, 0x10000
MMIO32_BASE = 0xE0000000
ECAM_BASE = 0xE1000000

# Op codes.
OP_CF8, OP_CFC, OP_ECAM, OP_DIRECT, OP_CAP, OP_BAR, OP_MMIO, OP_PIO, OP_VCFG, \
    OP_FIRMWARE, OP_HOTPLUG, OP_DEVICE, OP_RAM, OP_READD = range(14)
HP_PLUG, HP_UNPLUG, HP_SURPRISE, HP_QUERY, HP_SLOT, HP_ANNOUNCE = range(6)
DEV_NOTIFY, DEV_CONFIG, DEV_COMPLETIONS, DEV_NOTIFY_ADDR, DEV_NEEDS_RESET, DEV_RESET, \
    DEV_NUMQ, DEV_BUS_SLEEP = range(8)

# <linux/pci_regs.h>
PCI_COMMAND, PCI_STATUS, PCI_HEADER_TYPE, PCI_BAR0 = 0x04, 0x06, 0x0E, 0x10
PCI_CAP_ID_MSI, PCI_CAP_ID_VNDR, PCI_CAP_ID_EXP, PCI_CAP_ID_MSIX = 0x05, 0x09, 0x10, 0x11
PCI_MSIX_FLAGS_ENABLE, PCI_MSIX_FLAGS_MASKALL = 0x8000, 0x4000
PCI_EXP_LNKCTL, PCI_EXP_LNKSTA, PCI_EXP_SLTCTL, PCI_EXP_SLTSTA = 0x10, 0x12, 0x18, 0x1A
PCI_EXP_LNKCTL_RL = 0x20
PCI_MSI_MASK_64 = 16
SLTCTL_ABPE, SLTCTL_PDCE, SLTCTL_CCIE, SLTCTL_HPIE = 0x01, 0x08, 0x10, 0x20
SLTCTL_PWR_IND_ON, SLTCTL_PWR_IND_OFF, SLTCTL_PCC, SLTCTL_DLLSCE = 0x100, 0x300, 0x400, 0x1000
SLTSTA_ABP, SLTSTA_PDC, SLTSTA_CC, SLTSTA_DLLSC = 0x01, 0x08, 0x10, 0x100

# <linux/virtio_pci.h>, virtio-pci.h's fixed layout
COMMON, ISR, DEVCFG, NOTIFY = 0x0000, 0x1000, 0x2000, 0x3000
C_DFSELECT, C_DF, C_GFSELECT, C_GF, C_MSIX, C_NUMQ, C_STATUS = 0, 4, 8, 12, 16, 18, 20
C_Q_SELECT, C_Q_SIZE, C_Q_MSIX, C_Q_ENABLE, C_Q_NOFF = 22, 24, 26, 28, 30
C_Q_DESCLO, C_Q_DESCHI, C_Q_AVAILLO, C_Q_AVAILHI, C_Q_USEDLO, C_Q_USEDHI = \
    32, 36, 40, 44, 48, 52
C_Q_RESET = 58
F_RING_RESET_HI = 1 << (40 - 32)
PBA = 0x8000
BAR_LEGACY, BAR_MSIX, BAR_MODERN = 0, 1, 4
# Legacy I/O block (VIRTIO_PCI_* in <linux/virtio_pci.h>).
L_HOST_FEATURES, L_GUEST_FEATURES, L_QUEUE_PFN, L_QUEUE_NUM, L_QUEUE_SEL, \
    L_QUEUE_NOTIFY, L_STATUS, L_ISR, L_CONFIG_VECTOR, L_QUEUE_VECTOR = \
    0, 4, 8, 12, 14, 16, 18, 19, 20, 22

# Guest RAM layout for one queue (16 entries): rings, request header, data, status.
DESC, AVAIL, USED, REQ, DATA, STATUS = 0x0000, 0x0200, 0x0400, 0x1000, 0x2000, 0x3000
QSIZE = 16
VRING_DESC_F_NEXT, VRING_DESC_F_WRITE = 1, 2
VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT = 0, 1
MSI_ADDR = 0xFEE00000

WIDTH = {1: 0, 2: 1, 4: 2, 8: 3}


class Seed:
    def __init__(self, flags=0, vecs=0):
        self.flags, self.vecs = flags, vecs
        self.ops = []
        self.ram = bytearray(RAM_SIZE)

    def op(self, code, p=(), v=0):
        p = bytes(p) + bytes(7 - len(p))
        self.ops.append(bytes([code]) + p + struct.pack("<I", v & 0xFFFFFFFF))

    def data(self):
        hdr = bytes([self.flags, self.vecs]) + struct.pack("<H", len(self.ops))
        ram = bytes(self.ram).rstrip(b"\0")
        return hdr + b"".join(self.ops) + ram

    # config space
    def cf8(self, fn, off, raw=None, enable=True):
        if raw is not None:
            self.op(OP_CF8, [1], raw)
        else:
            self.op(OP_CF8, [0 if enable else 2, fn, 0, off & 0xFF, off >> 8])

    def cfc(self, size, byte=0, write=False, v=0):
        self.op(OP_CFC, [int(write), {1: 0, 2: 1, 4: 2}[size], byte], v)

    def ecam(self, fn, off, size, write=False, v=0):
        self.op(OP_ECAM, [int(write), [1, 2, 4, 8, 3].index(size), fn, 0,
                          off & 0xFF, off >> 8], v)

    def ecam_raw(self, bus, dev, fn, off, size, write=False, v=0):
        self.op(OP_ECAM, [int(write), [1, 2, 4, 8, 3].index(size), 0x80 | bus,
                          dev << 3 | fn, off & 0xFF, off >> 8], v)

    def direct(self, fn, off, size, write=False, v=0):
        self.op(OP_DIRECT, [int(write), [1, 2, 4, 3, 0, 8].index(size), fn, 0,
                            (off >> 2) & 0xFF, off >> 10, off & 3], v)

    def cap(self, fn, cap_id, off, size, write=False, v=0, nth=0, path=PATH_DIRECT):
        self.op(OP_CAP, [int(write) | path << 1, {1: 0, 2: 1, 4: 2}[size], fn, cap_id,
                         nth, off], v)

    def firmware(self, fn, path=PATH_DIRECT, slot=0, mem64=True, port_windows=False,
                 no_decode=False, any_slot=False):
        self.op(OP_FIRMWARE, [fn, path, slot, int(mem64) | int(port_windows) << 1 |
                              int(no_decode) << 2 | int(any_slot) << 3])

    # BARs and buses
    def bar(self, fn, bar, off, size, write=False, v=0):
        self.op(OP_BAR, [int(write) | WIDTH[size] << 1, fn, bar, off & 0xFF,
                         (off >> 8) & 0xFF, off >> 16], v)

    def mmio(self, addr, size, write=False, v=0):
        self.op(OP_MMIO, [int(write) | [1, 2, 4, 8, 3].index(size) << 1, 3,
                          *struct.pack("<I", addr & 0xFFFFFFFF), (addr >> 32) & 0xFF], v)

    def pio(self, port, size, write=False, v=0):
        self.op(OP_PIO, [int(write) | [1, 2, 4, 8, 3].index(size) << 1, 2,
                         port & 0xFF, port >> 8], v)

    def vcfg(self, fn, page, reg, size=4, write=False, v=0, map_page=False, sub=0):
        self.op(OP_VCFG, [int(write) | [4, 1, 2, 8].index(size) << 1 | page << 3 |
                          int(map_page) << 4, fn, 0, reg & 0xFF, reg >> 8, sub], v)

    # VMM side
    def hotplug(self, what, key=0, other=None):
        if other is None:
            self.op(OP_HOTPLUG, [what, 0, 0, 0, key])
        else:
            self.op(OP_HOTPLUG, [what, 1, 0x80 | other[0], other[1], key])

    def device(self, which, what, queue=0):
        self.op(OP_DEVICE, [which, what, queue])

    def readd(self, which):
        self.op(OP_READD, [1 if which == PLAIN else 0])

    def ram_store(self, off, v):
        self.op(OP_RAM, [off & 0xFF, off >> 8], v)

    # what a guest does
    def enumerate(self, path):
        for dev in range(6):
            for off, size in ((0, 4), (PCI_HEADER_TYPE, 1), (0x08, 4)):
                if path == PATH_CF8:
                    self.op(OP_CF8, [0, 0x80, dev << 3, off & 0xFC])
                    self.cfc(size, off & 3)
                else:
                    self.ecam_raw(0, dev, 0, off, size)
        if path == PATH_CF8:
            self.op(OP_CF8, [0, 0x81, 0, 0])
            self.cfc(4)
        else:
            self.ecam_raw(1, 0, 0, 0, 4)

    def common(self, fn, off, size, v=None):
        self.bar(fn, BAR_MODERN, COMMON + off, size, v is not None, v or 0)

    def virtio_init(self, fn, msix=True, qsize=QSIZE, ram_off=0, features_hi=1):
        base = RAM_BASE + ram_off
        self.common(fn, C_STATUS, 1, 0)
        self.common(fn, C_STATUS, 1, 1)
        self.common(fn, C_STATUS, 1, 3)
        self.common(fn, C_DFSELECT, 4, 1)
        self.common(fn, C_DF, 4)
        self.common(fn, C_GFSELECT, 4, 1)
        self.common(fn, C_GF, 4, features_hi)    # VIRTIO_F_VERSION_1 (bit 32), ...
        self.common(fn, C_GF, 4)
        self.common(fn, C_GFSELECT, 4, 0)
        self.common(fn, C_GF, 4, 0)
        self.common(fn, C_GFSELECT, 4)
        self.common(fn, C_STATUS, 1, 0xB)
        self.common(fn, C_STATUS, 1)
        if msix:
            self.common(fn, C_MSIX, 2, 0)
            self.common(fn, C_MSIX, 2)
        self.common(fn, C_NUMQ, 2)
        self.common(fn, C_Q_SELECT, 2, 0)
        self.common(fn, C_Q_SIZE, 2, qsize)
        self.common(fn, C_Q_SIZE, 2)
        if msix:
            self.common(fn, C_Q_MSIX, 2, 1)
            self.common(fn, C_Q_MSIX, 2)
        self.queue_addrs(fn, ram_off)
        self.common(fn, C_Q_DESCLO, 8)
        self.common(fn, C_Q_USEDLO, 4)
        self.common(fn, C_Q_NOFF, 2)
        self.common(fn, C_Q_ENABLE, 2, 1)
        self.common(fn, C_Q_ENABLE, 2)
        self.common(fn, C_STATUS, 1, 0xF)

    def queue_addrs(self, fn, ram_off=0):
        base = RAM_BASE + ram_off
        self.common(fn, C_Q_DESCLO, 4, base + DESC)
        self.common(fn, C_Q_DESCHI, 4, 0)
        self.common(fn, C_Q_AVAILLO, 4, base + AVAIL)
        self.common(fn, C_Q_AVAILHI, 4, 0)
        self.common(fn, C_Q_USEDLO, 4, base + USED)
        self.common(fn, C_Q_USEDHI, 4, 0)

    def msix_enable(self, fn, nvec=2, path=PATH_DIRECT):
        for i in range(nvec):
            self.bar(fn, BAR_MSIX, 16 * i + 0, 4, True, MSI_ADDR)
            self.bar(fn, BAR_MSIX, 16 * i + 4, 4, True, 0)
            self.bar(fn, BAR_MSIX, 16 * i + 8, 4, True, 0x40 + i)
            self.bar(fn, BAR_MSIX, 16 * i + 12, 4, True, 0)
        self.cap(fn, PCI_CAP_ID_MSIX, 2, 2, True, PCI_MSIX_FLAGS_ENABLE, path=path)

    def request(self, ram_off=0, write=False, n=0, late=False):
        """A blk request as avail entry n; the ring's idx becomes n + 1 in the
        RAM image, or (late) by a guest store at this point of the sequence."""
        r = self.ram
        d = ram_off + DESC + 48 * n
        hdr, data, st = ram_off + REQ + 16 * n, ram_off + DATA + 512 * n, ram_off + STATUS + n
        struct.pack_into("<QIHH", r, d, RAM_BASE + hdr, 16, VRING_DESC_F_NEXT, 3 * n + 1)
        struct.pack_into("<QIHH", r, d + 16, RAM_BASE + data, 512,
                         VRING_DESC_F_NEXT | (0 if write else VRING_DESC_F_WRITE), 3 * n + 2)
        struct.pack_into("<QIHH", r, d + 32, RAM_BASE + st, 1, VRING_DESC_F_WRITE, 0)
        struct.pack_into("<IIQ", r, hdr, VIRTIO_BLK_T_OUT if write else VIRTIO_BLK_T_IN, 0, n)
        if write:
            r[data:data + 512] = bytes([0x5A]) * 512
        struct.pack_into("<H", r, ram_off + AVAIL + 4 + 2 * n, 3 * n)
        if late:
            self.ram_store(ram_off + AVAIL, (n + 1) << 16)
        else:
            struct.pack_into("<HH", r, ram_off + AVAIL, 0, n + 1)


def enum_cf8():
    s = Seed()
    s.enumerate(PATH_CF8)
    s.cf8(0, 0, enable=False)
    s.cfc(4)
    s.cf8(0, 0, raw=0x80000000 | 0x7F << 16)  # a bus past num_buses
    s.cfc(2, 2)
    s.cf8(0, 0x100)                           # extended space through bits 27:24
    s.cfc(4)
    s.pio(0xCF8, 2, True, 0x1234)             # not a latch write
    s.pio(0xCFE, 2)
    return s


def enum_ecam():
    s = Seed()
    s.enumerate(PATH_ECAM)
    for fn in (VP1, PORT, PLAIN):
        s.ecam(fn, 0x34, 1)
        s.cap(fn, PCI_CAP_ID_VNDR, 0, 4, path=PATH_ECAM)
        s.ecam(fn, 0x100, 4)
    s.ecam(VP1, 0x3, 2)                       # crosses the dword
    s.ecam(VP1, 0x0, 8)
    return s


def bars():
    s = Seed()
    for fn, path in ((VP1, PATH_CF8), (PORT, PATH_ECAM), (PLAIN, PATH_DIRECT)):
        s.firmware(fn, path, slot=fn * 8)
    s.bar(PLAIN, 0, 0, 4)
    s.bar(PLAIN, 4, 0, 1, True, 7)
    s.bar(VP1, BAR_MODERN, COMMON + C_NUMQ, 2)
    # move BAR 4 of 00:01.0 within the 64-bit window with decode on, then
    # below 4 GiB with decode off meanwhile, then onto the ECAM window and
    # onto 00:03.0's BAR 0
    s.direct(VP1, PCI_BAR0 + 16, 4, True, 0x00400000 | 0xC)
    s.device(VP1, DEV_NOTIFY_ADDR)
    s.direct(VP1, PCI_COMMAND, 2, True, 0)
    s.direct(VP1, PCI_BAR0 + 16, 4, True, 0xE0400000 | 0xC)
    s.direct(VP1, PCI_BAR0 + 20, 4, True, 0)
    s.direct(VP1, PCI_COMMAND, 2, True, 6)
    s.device(VP1, DEV_NOTIFY_ADDR)
    s.device(VP1, DEV_NUMQ)
    s.direct(VP1, PCI_BAR0 + 16, 4, True, ECAM_BASE | 0xC)
    s.direct(VP1, PCI_BAR0 + 4, 4, True, MMIO32_BASE + 16 * 0x1000)
    # sizing with decode on takes a BAR off; an address puts it back
    s.direct(PLAIN, PCI_BAR0, 4, True, 0xFFFFFFFF)
    s.direct(PLAIN, PCI_BAR0, 4)
    s.direct(PLAIN, PCI_BAR0, 4, True, 0xE0300000)
    # decode off and on, byte writes into a BAR, a 64-bit BAR's upper half
    s.direct(PLAIN, PCI_COMMAND, 2, True, 0)
    s.direct(PLAIN, PCI_BAR0 + 1, 1, True, 0x20)
    s.direct(PLAIN, PCI_COMMAND, 2, True, 7)
    s.direct(PLAIN, PCI_BAR0 + 12, 4, True, 0x80)
    s.firmware(VP1, PATH_DIRECT, slot=3, mem64=False)
    s.firmware(PLAIN, PATH_CF8, slot=200, any_slot=True)
    s.device(VP1, DEV_NOTIFY_ADDR)
    return s


def virtio_msix():
    s = Seed()
    s.firmware(VP1, PATH_CF8, slot=1)
    s.msix_enable(VP1)
    s.virtio_init(VP1)
    s.request(0, write=False, n=0)
    s.bar(VP1, BAR_MODERN, NOTIFY, 2, True, 0)
    s.bar(VP1, BAR_MODERN, DEVCFG, 4)
    s.bar(VP1, BAR_MODERN, DEVCFG + 8, 8)
    # mask vector 1, kick (pending), read the PBA, unmask (delivered)
    s.bar(VP1, BAR_MSIX, 16 + 12, 4, True, 1)
    s.request(0, write=True, n=1, late=True)
    s.bar(VP1, BAR_MODERN, NOTIFY, 2, True, 0)
    s.bar(VP1, BAR_MSIX, PBA, 8)
    s.bar(VP1, BAR_MSIX, 16 + 12, 4, True, 0)
    # function mask, config change, NO_VECTOR read-back, a reset
    s.cap(VP1, PCI_CAP_ID_MSIX, 2, 2, True, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL)
    s.device(VP1, DEV_CONFIG)
    s.cap(VP1, PCI_CAP_ID_MSIX, 2, 2, True, PCI_MSIX_FLAGS_ENABLE)
    s.common(VP1, C_MSIX, 2, 0x7FF)
    s.common(VP1, C_MSIX, 2)
    s.device(VP1, DEV_NOTIFY, 0)
    s.common(VP1, C_STATUS, 1, 0)
    return s


def queue_reset():
    """VIRTIO_F_RING_RESET: reset queue 0 and set it up again; sleep and wake meanwhile."""
    s = Seed(flags=0x40)                      # notify_off_multiplier 2
    s.firmware(VP1, PATH_DIRECT, slot=9)
    s.msix_enable(VP1)
    s.virtio_init(VP1, features_hi=1 | F_RING_RESET_HI)
    s.device(VP1, DEV_BUS_SLEEP)
    s.request(0, write=True, n=0)
    s.bar(VP1, BAR_MODERN, NOTIFY, 2, True, 0)   # held while asleep
    s.device(VP1, DEV_BUS_SLEEP)
    s.common(VP1, C_Q_SELECT, 2, 0)
    s.common(VP1, C_Q_RESET, 2, 1)
    s.common(VP1, C_Q_RESET, 2)
    s.common(VP1, C_Q_ENABLE, 2)
    s.common(VP1, C_Q_SIZE, 2, 8)
    s.queue_addrs(VP1)
    s.common(VP1, C_Q_ENABLE, 2, 1)
    s.request(0, write=False, n=1, late=True)
    s.bar(VP1, BAR_MODERN, NOTIFY, 2, True, 0)
    s.common(VP1, C_Q_RESET, 2, 1)
    s.common(VP1, C_STATUS, 1, 0)
    return s


def virtio_intx():
    s = Seed(flags=0x02 | 0x20)              # 00:01.0 without MSI-X, two queues
    s.firmware(VP1, PATH_ECAM, slot=5)
    s.virtio_init(VP1, msix=False)
    s.request(0, write=True, n=0)
    s.bar(VP1, BAR_MODERN, NOTIFY, 2, True, 0)
    s.bar(VP1, BAR_MODERN, ISR, 1)
    s.bar(VP1, BAR_MODERN, ISR, 1)
    s.direct(VP1, PCI_COMMAND, 2, True, 0x406)  # INTx disable
    s.device(VP1, DEV_CONFIG)
    s.bar(VP1, BAR_MODERN, ISR, 1)
    s.device(VP1, DEV_NEEDS_RESET)
    s.common(VP1, C_STATUS, 1)
    return s


def pci_cfg_window():
    """The VIRTIO_PCI_CAP_PCI_CFG window: BAR 4's common config through config space."""
    s = Seed()
    s.firmware(VP1, PATH_DIRECT, slot=2)
    # nth=4: the fifth vendor capability (common, notify, ISR, device, pci cfg)
    for bar, off, length in ((BAR_MODERN, C_NUMQ, 2), (BAR_MODERN, C_STATUS, 1),
                             (BAR_MSIX, 0, 4), (7, 0, 4), (BAR_MODERN, 0x3FFF, 4)):
        s.cap(VP1, PCI_CAP_ID_VNDR, 4, 1, True, bar, nth=4)
        s.cap(VP1, PCI_CAP_ID_VNDR, 8, 4, True, off, nth=4)
        s.cap(VP1, PCI_CAP_ID_VNDR, 12, 4, True, length, nth=4)
        s.cap(VP1, PCI_CAP_ID_VNDR, 16, 4, nth=4)
        s.cap(VP1, PCI_CAP_ID_VNDR, 16, 4, True, 1, nth=4)
    return s


def transitional():
    s = Seed(flags=0x01)                     # 00:01.0 transitional: legacy I/O BAR 0
    s.firmware(VP1, PATH_CF8, slot=4)
    s.bar(VP1, BAR_LEGACY, L_HOST_FEATURES, 4)
    s.bar(VP1, BAR_LEGACY, L_STATUS, 1, True, 3)
    s.bar(VP1, BAR_LEGACY, L_GUEST_FEATURES, 4, True, 0)
    s.bar(VP1, BAR_LEGACY, L_QUEUE_SEL, 2, True, 0)
    s.bar(VP1, BAR_LEGACY, L_QUEUE_NUM, 2)
    s.bar(VP1, BAR_LEGACY, L_QUEUE_PFN, 4, True, RAM_BASE >> 12)
    s.bar(VP1, BAR_LEGACY, L_STATUS, 1, True, 7)
    s.bar(VP1, BAR_LEGACY, L_QUEUE_NOTIFY, 2, True, 0)
    s.bar(VP1, BAR_LEGACY, L_ISR, 1)
    s.msix_enable(VP1)                       # the vector registers appear at 20, 22
    s.bar(VP1, BAR_LEGACY, L_CONFIG_VECTOR, 2, True, 0)
    s.bar(VP1, BAR_LEGACY, L_QUEUE_VECTOR, 2, True, 1)
    s.bar(VP1, BAR_LEGACY, L_CONFIG_VECTOR, 2)
    s.bar(VP1, BAR_LEGACY, L_QUEUE_VECTOR, 2)
    s.bar(VP1, BAR_LEGACY, L_QUEUE_SEL, 2)
    s.bar(VP1, BAR_LEGACY, L_GUEST_FEATURES, 4)
    s.bar(VP1, BAR_LEGACY, 24, 4)            # device config after the vectors
    s.device(VP1, DEV_CONFIG)
    s.bar(VP1, BAR_LEGACY, L_QUEUE_PFN, 4, True, 0)
    s.common(VP1, C_STATUS, 1, 1)            # the modern interface is now refused
    s.bar(VP1, BAR_LEGACY, L_STATUS, 1, True, 0)
    s.common(VP1, C_STATUS, 1, 1)
    return s


def port_init(s):
    """What pciehp does at probe: MSI, then the slot's notifications."""
    s.firmware(PORT, PATH_DIRECT)
    s.cap(PORT, PCI_CAP_ID_MSI, 4, 4, True, MSI_ADDR)
    s.cap(PORT, PCI_CAP_ID_MSI, 8, 4, True, 0)
    s.cap(PORT, PCI_CAP_ID_MSI, 12, 2, True, 0x50)
    s.cap(PORT, PCI_CAP_ID_MSI, 2, 2, True, 1)
    s.cap(PORT, PCI_CAP_ID_EXP, 0x14, 4)     # slot capabilities
    s.cap(PORT, PCI_CAP_ID_EXP, PCI_EXP_SLTSTA, 2, True, 0x1FF)
    s.cap(PORT, PCI_CAP_ID_EXP, PCI_EXP_SLTCTL, 2, True,
          SLTCTL_ABPE | SLTCTL_PDCE | SLTCTL_CCIE | SLTCTL_HPIE | SLTCTL_DLLSCE |
          SLTCTL_PCC | SLTCTL_PWR_IND_OFF)


def ctl_on():
    return (SLTCTL_ABPE | SLTCTL_PDCE | SLTCTL_CCIE | SLTCTL_HPIE | SLTCTL_DLLSCE |
            SLTCTL_PWR_IND_ON)


def hotplug():
    s = Seed()
    port_init(s)
    s.direct(VP2, 0, 4)                       # nothing behind the port yet
    s.hotplug(HP_PLUG)
    s.cap(PORT, PCI_CAP_ID_EXP, PCI_EXP_SLTSTA, 2)
    s.cap(PORT, PCI_CAP_ID_EXP, PCI_EXP_SLTSTA, 2, True, SLTSTA_PDC | SLTSTA_CC)
    s.cap(PORT, PCI_CAP_ID_EXP, PCI_EXP_SLTCTL, 2, True, ctl_on())   # power on
    s.cap(PORT, PCI_CAP_ID_EXP, PCI_EXP_LNKSTA, 2)
    s.cap(PORT, PCI_CAP_ID_EXP, PCI_EXP_SLTSTA, 2, True, SLTSTA_DLLSC | SLTSTA_CC)
    s.op(OP_CF8, [0, 0x81, 0, 0])
    s.cfc(4)
    s.firmware(VP2, PATH_ECAM, slot=1, port_windows=True)
    s.virtio_init(VP2, ram_off=0x8000)
    s.request(0x8000, write=False, n=0)
    s.bar(VP2, BAR_MODERN, NOTIFY, 2, True, 0)
    s.device(1, DEV_NOTIFY_ADDR)
    s.device(1, DEV_NUMQ)
    s.hotplug(HP_QUERY, key=3)
    s.hotplug(HP_SLOT)
    # unplug: the button, the guest powers the slot off, the function goes
    s.hotplug(HP_UNPLUG)
    s.cap(PORT, PCI_CAP_ID_EXP, PCI_EXP_SLTSTA, 2, True, SLTSTA_ABP)
    s.cap(PORT, PCI_CAP_ID_EXP, PCI_EXP_SLTCTL, 2, True,
          ctl_on() ^ SLTCTL_PWR_IND_ON ^ SLTCTL_PWR_IND_OFF | SLTCTL_PCC)
    s.direct(VP2, 0, 4)
    s.hotplug(HP_SLOT)
    # plug again, power on, then pull it
    s.hotplug(HP_PLUG)
    s.cap(PORT, PCI_CAP_ID_EXP, PCI_EXP_SLTSTA, 2, True, 0x1FF)
    s.cap(PORT, PCI_CAP_ID_EXP, PCI_EXP_SLTCTL, 2, True, ctl_on())
    s.firmware(VP2, PATH_CF8, slot=2, port_windows=True)
    s.hotplug(HP_SURPRISE)
    s.cap(PORT, PCI_CAP_ID_EXP, PCI_EXP_SLTSTA, 2)
    s.hotplug(HP_UNPLUG)
    return s


def hotplug_hostile():
    s = Seed(flags=0x10 | 0x08)               # surprise capable; 01:00.0 without MSI-X
    port_init(s)
    s.hotplug(HP_ANNOUNCE)                    # nothing added at the slot
    s.hotplug(HP_PLUG, other=(1, 8))          # not device 0
    s.hotplug(HP_PLUG)
    s.hotplug(HP_PLUG)                        # busy
    s.hotplug(HP_UNPLUG)                      # before the guest powered it on
    for v in (0, 0xFFFF, SLTCTL_PCC, 0, SLTCTL_PCC):
        s.cap(PORT, PCI_CAP_ID_EXP, PCI_EXP_SLTCTL, 2, True, v)
    s.direct(PORT, 0x19, 1, True, 0)          # secondary bus number rewritten
    s.direct(PORT, 0x18, 4)
    s.cap(PORT, PCI_CAP_ID_MSI, PCI_MSI_MASK_64, 4, True, 1)
    s.hotplug(HP_SURPRISE)                    # pending while masked
    s.cap(PORT, PCI_CAP_ID_MSI, PCI_MSI_MASK_64, 4, True, 0)
    s.cap(PORT, PCI_CAP_ID_EXP, PCI_EXP_LNKCTL, 2, True, PCI_EXP_LNKCTL_RL)
    s.direct(PORT, 0x19, 1, True, 1)
    s.hotplug(HP_QUERY, key=0xFF)
    for k in range(10):
        s.hotplug(HP_QUERY, key=k)
    s.readd(VP1)
    s.hotplug(HP_PLUG)
    return s


def vcfg():
    s = Seed()
    for fn in (VP1, PORT, PLAIN, VP2):
        s.vcfg(fn, 0, 5, write=True, v=0x1234 + fn)
        s.vcfg(fn, 0, 5)
        s.vcfg(fn, 1, 7, write=True, v=0xABCD, map_page=True)
        s.vcfg(fn, 1, 7, size=8)
    s.vcfg(VP1, 0, 1023, write=True, v=1)
    s.vcfg(VP1, 0, 3, size=2, sub=2)
    s.vcfg(VP1, 1, 1023, size=8)              # crosses into the next page
    s.op(OP_VCFG, [0x20 | 0x10 | 8, 0x83, 0x10, 1, 0, 0], 5)   # bus 3, shared page; bus 7 refused
    return s


def hostile():
    s = Seed(flags=0x20 | 0xC0, vecs=3)      # two queues, multiplier 4096, 3 vectors
    for v in (0xFFFFFFFF, 0x7FFFFFFF, 0x80FFFF00, 0x8F00FFFC, 0x80000803):
        s.cf8(0, 0, raw=v)
        s.cfc(4)
        s.cfc(2, 3)
    s.direct(VP1, 4096, 4)                    # dword 1024
    s.direct(VP1, 0, 3)
    s.direct(VP1, 0, 0)
    s.direct(VP1, 2, 4)
    s.op(OP_DIRECT, [0, 2, 0x85, 0, 0, 0, 0]) # bus 5: beyond num_buses
    for off in range(0, 0x40, 4):             # header garbage
        s.direct(PLAIN, off, 4, True, 0xFFFFFFFF)
    s.cap(PLAIN, PCI_CAP_ID_VNDR, 2, 4, True, 0xFFFFFFFF)
    s.cap(PLAIN, PCI_CAP_ID_VNDR, 0, 1, True, 0)  # ID and next are read-only
    s.firmware(VP1, slot=7)
    s.firmware(PLAIN, slot=7)                  # the same addresses: refused
    s.direct(VP1, PCI_BAR0 + 20, 4, True, 0x1)     # upper half of BAR 4
    s.direct(VP1, PCI_BAR0 + 16, 4, True, 0)
    s.bar(VP1, BAR_MSIX, 0x7FF0, 4, True, 1)
    s.bar(VP1, BAR_MSIX, PBA, 4, True, 1)
    s.bar(VP1, BAR_MSIX, 3, 4, True, 1)
    s.bar(VP1, BAR_MODERN, C_Q_SELECT, 2, True, 9)
    s.bar(VP1, BAR_MODERN, C_Q_SIZE, 2, True, 3)
    s.bar(VP1, BAR_MODERN, C_Q_MSIX, 2, True, 0x800)
    s.bar(VP1, BAR_MODERN, NOTIFY + 4096, 2, True, 1)
    s.bar(VP1, BAR_MODERN, NOTIFY + 8192, 4, True, 5)
    s.bar(VP1, BAR_MODERN, 0x3FFF, 1)
    s.mmio(ECAM_BASE + 0x3FFFFC, 8, True, 0)
    s.mmio(0xFFFFFFFFFFFFFFF8, 8)
    s.pio(0xCFF, 2)
    s.pio(0xCFC, 8)
    s.readd(PLAIN)
    s.readd(PLAIN)
    s.readd(VP1)
    s.bar(VP1, BAR_MODERN, 0, 4)
    s.readd(VP1)
    s.device(VP1, DEV_NOTIFY_ADDR, 1)
    return s


SEEDS = {
    "enum-cf8": enum_cf8, "enum-ecam": enum_ecam, "bars": bars, "virtio-msix": virtio_msix,
    "virtio-intx": virtio_intx, "queue-reset": queue_reset, "pci-cfg-window": pci_cfg_window, "transitional": transitional,
    "hotplug": hotplug, "hotplug-hostile": hotplug_hostile, "vcfg": vcfg, "hostile": hostile,
}


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    os.makedirs(sys.argv[1], exist_ok=True)
    for name, make in SEEDS.items():
        with open(os.path.join(sys.argv[1], name), "wb") as fp:
            fp.write(make().data())


if __name__ == "__main__":
    main()
