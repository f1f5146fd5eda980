#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""One case of the kvm suite: run examples/kvm-host (vdev-kvm-host) with the
test guest, or with a small hand-made guest, and check its exit status and
output.

    run-case.py --host PATH --guest PATH CASE

Exits 0 (pass), 1 (fail) or 77 (skip: /dev/kvm cannot be opened; the host
says "cannot open /dev/kvm").
"""
import argparse
import os
import re
import struct
import subprocess
import sys
import tempfile
import time

SKIP = 77
MASK = (1 << 64) - 1
BLOCK = 4096


class Fail(Exception):
    pass


def pattern_word(seed, block, word):
    """tg_pattern_word() from examples/kvm-host/tg-pattern.h, independently."""
    z = (seed + block * 0x9E3779B97F4A7C15 + word * 0xD1B54A32D192ED03) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def pattern_block(seed, block):
    return struct.pack("<512Q", *(pattern_word(seed, block, w) for w in range(512)))


def run(host, args, timeout=90):
    p = subprocess.run([host] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=timeout)
    out = p.stdout + p.stderr
    print("$ vdev-kvm-host " + " ".join(args))
    print(out)
    print(f"(exit status {p.returncode})")
    if "cannot open /dev/kvm" in out:
        print("SKIP: /dev/kvm cannot be opened on this machine")
        sys.exit(SKIP)
    return p.returncode, out


def expect(cond, what):
    if not cond:
        raise Fail(what)


def expect_rc(rc, want, out):
    expect(rc == want, f"exit status {rc}, expected {want}")
    expect(f"(exit {want})" in out or want in (1, 2), "the summary line names the exit status")


def make_disk(tmp, mib, name="disk.img"):
    path = os.path.join(tmp, name)
    with open(path, "wb") as f:
        f.truncate(mib << 20)
    return path


def check_blocks(path, seed, blocks):
    """The guest's pattern, read back here, not through the host's own check."""
    with open(path, "rb") as f:
        for i in sorted({0, 1, blocks // 2, blocks - 1}):
            f.seek(i * BLOCK)
            expect(f.read(BLOCK) == pattern_block(seed, i),
                   f"block {i} of the image is not the seed-{seed} pattern")
        f.seek(blocks * BLOCK)
        expect(f.read(BLOCK) == bytes(BLOCK), "the guest wrote past its blocks")


def number(out, regex):
    m = re.search(regex, out, re.M)
    expect(m is not None, f"output lacks /{regex}/")
    return int(m.group(1))


# ---- a hand-made guest (no compiler needed) ---------------------------------

def tiny_elf(code):
    """A static x86-64 ELF with one R+X PT_LOAD of @code at 0x200000."""
    base, off = 0x200000, 0x1000
    eh = struct.pack("<16sHHIQQQIHHHHHH", b"\x7fELF\x02\x01\x01" + bytes(9), 2, 62, 1,
                     base, 64, 0, 0, 64, 56, 1, 0, 0, 0)
    ph = struct.pack("<IIQQQQQQ", 1, 5, off, base, base, len(code), len(code), 0x1000)
    img = eh + ph
    return img + bytes(off - len(img)) + code


SPIN = b"\xeb\xfe"      # jmp .
CRASH = b"\x0f\x0b"     # ud2: no IDT gate -> triple fault

# A guest that misuses the test device and touches unclaimed addresses, then
# reports PASS only if those reads returned what the host promises:
#   outb to the print port (wrong size); mark 999; print a line at 0x7ffff000
#   (outside RAM); print 600 'A's without a NUL in the first 512 bytes; print
#   "\e[31mred\n"; in from port 0x80 must be ~0; in from the status port
#   must be 0; a read at 0xe0000000 (no device) must be ~0, then a write there;
#   mark 0, status 0, power-off 0 (on a failed check: status 1, power-off 1).
#   Run in first-io mode, whose only host check is that mark 0 came.
TESTDEV_ABUSE = bytes.fromhex(
    "66ba000fb041ee66ba080fb8e7030000ef66ba000fb800f0ff7fefbf00003000b958020000"
    "b041f3aac60700b800003000efc70425001030001b5b3331c70425041030006d726564c704"
    "25081030000a000000b800103000ef66ba8000ed83f8ff752c66ba040fed85c07523bb0000"
    "00e08b0383f8ff7517c7030100000031c066ba080fef66ba040fef66ba0c0fefb801000000"
    "66ba040fef66ba0c0fefebef")


def write_file(tmp, name, data):
    path = os.path.join(tmp, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def run_tiny(host, tmp, code, args):
    """Boot a hand-made guest of @code with a scratch disk."""
    guest = write_file(tmp, "tiny.elf", tiny_elf(code))
    return run(host, ["--guest", guest, "--blk", make_disk(tmp, 16)] + args)


# ---- cases --------------------------------------------------------------------

NOTIFY_OFFSET = 0x3000  # VDEV_VIRTIO_PCI_NOTIFY_OFFSET in BAR 4; queue 0's notify_off is 0


def check_pci(out, disk=0, driven=True, quiet=False):
    """What a virtio-pci disk must show: found by the guest's enumeration
    (listed unless @quiet), every kick caught by an ioeventfd (some kicks if
    the guest @driven it), and that ioeventfd at the notify address of BAR 4
    where the guest last put it (a driven disk's BAR 4 moves once unless
    @quiet)."""
    expect(f"kvm-host: disk {disk}: " in out and f"virtio-pci at 00:{disk + 1:02x}.0" in out,
           f"disk {disk} is virtio-pci at 00:{disk + 1:02x}.0")
    expect(quiet or f"guest: pci 00:{disk + 1:02x}.0: 1af4:1042 class 018000" in out,
           "the guest's enumeration found the virtio-blk function")
    m = re.search(rf"^kvm-host: disk {disk}: pci: BAR 4 placed or moved (\d+) times, notify "
                  rf"ioeventfd at 0x([0-9a-f]+), (\d+) kicks missed it$", out, re.M)
    expect(m is not None, "the host's PCI summary line")
    moves, notify, missed = int(m.group(1)), int(m.group(2), 16), int(m.group(3))
    expect(missed == 0, f"{missed} kicks exited instead of hitting the ioeventfd")
    kicks = number(out, rf"^kvm-host: disk {disk}: status .* (\d+) kicks$")
    expect(kicks > 0 or not driven, "kicks arrived through the ioeventfd")
    if driven and not quiet:
        m = re.search(r"^guest: blk: moved BAR 4 from 0x([0-9a-f]+) to 0x([0-9a-f]+)$", out,
                      re.M)
        expect(m is not None, "the guest moved BAR 4")
        expect(notify == int(m.group(2), 16) + NOTIFY_OFFSET,
               f"the ioeventfd (0x{notify:x}) is at the notify address of BAR 4's new place")
        # placed by the guest's firmware step, off and on again for the move
        expect(moves >= 3, f"BAR 4 reported placed/moved {moves} times, want >= 3")
    elif not quiet:
        m = re.search(rf"^guest: pci 00:{disk + 1:02x}\.0: BAR 1 at 0x[0-9a-f]+, BAR 4 at "
                      rf"0x([0-9a-f]+)$", out, re.M)
        expect(m is not None and notify == int(m.group(1), 16) + NOTIFY_OFFSET,
               f"the ioeventfd (0x{notify:x}) is at the notify address of BAR 4")
    expect(number(out, r"(\d+) unclaimed accesses") == 0, "no unclaimed accesses")


def case_verify(host, guest, tmp, backend="io_uring", seed=1, blocks=64, transport="mmio"):
    disk = make_disk(tmp, 16)
    rc, out = run(host, ["--guest", guest,
                         "--blk", f"{disk},backend={backend},transport={transport}",
                         "--mode", "verify", "--seed", str(seed),
                         "--verify-blocks", str(blocks)])
    expect_rc(rc, 0, out)
    expect("guest verdict PASS, exit code 0" in out, "guest verdict PASS")
    expect(f"{backend} backend" in out, f"the {backend} backend was used")
    expect("byte for byte" in out, "the host's image check passed")
    expect(number(out, r"(\d+) writes") >= blocks, "the device saw the writes")
    expect(number(out, r"(\d+) reads") >= blocks, "the device saw the reads")
    expect("NEEDS_RESET not seen, 0 malformed, 0 I/O errors" in out, "no device errors")
    if transport == "pci":
        check_pci(out)
    check_blocks(disk, seed, blocks)


def case_verify_file_backend(host, guest, tmp):
    case_verify(host, guest, tmp, backend="file", seed=0xC0FFEE, blocks=100)


def case_verify_pci(host, guest, tmp):
    case_verify(host, guest, tmp, seed=0xBADC0DE, blocks=100, transport="pci")


def case_verify_pci_multi(host, guest, tmp):
    """Three disks, PCI, mmio, PCI: the guest lists them all (two functions
    through one ECAM window, each with BARs of its own) and drives disk 0;
    the others stay untouched."""
    disks = [make_disk(tmp, 16, f"d{i}.img") for i in range(3)]
    rc, out = run(host, ["--guest", guest, "--blk", f"{disks[0]},transport=pci",
                         "--blk", disks[1], "--blk", f"{disks[2]},transport=pci",
                         "--mode", "verify", "--seed", "3"])
    expect_rc(rc, 0, out)
    expect("guest verdict PASS, exit code 0" in out, "guest verdict PASS")
    expect("guest: pci: ECAM at 0xe0000000, 2 functions" in out, "one ECAM window, two functions")
    bars = re.findall(r"^guest: pci 00:0([13])\.0: BAR 1 at 0x([0-9a-f]+), BAR 4 at 0x([0-9a-f]+)$",
                      out, re.M)
    expect(len(bars) == 2, "both functions got their BARs")
    expect(len({b[1] for b in bars} | {b[2] for b in bars}) == 4, "four distinct BAR addresses")
    expect("guest: device 1: virtio-mmio at 0xd0001000, device id 2 (virtio-blk)" in out,
           "the virtio-mmio disk in between is listed")
    check_pci(out, 0)
    check_pci(out, 2, driven=False)
    check_blocks(disks[0], 3, 64)
    for d in disks[1:]:
        with open(d, "rb") as f:
            expect(f.read(BLOCK) == bytes(BLOCK), f"{os.path.basename(d)} was not written")


def case_irq(host, guest, tmp, transport="mmio"):
    disk = make_disk(tmp, 16)
    rc, out = run(host, ["--guest", guest, "--blk", f"{disk},transport={transport}",
                         "--mode", "irq", "--seed", "7"])
    expect_rc(rc, 0, out)
    expect("guest verdict PASS, exit code 0" in out, "guest verdict PASS")
    taken = number(out, r"interrupts taken by the guest: (\d+)")
    expect(taken > 0, "interrupts taken")
    if transport == "pci":
        check_pci(out)
        m = re.search(r"pci: MSI-X: (\d+) interrupts by irqfd, (\d+) by KVM_SIGNAL_MSI, (\d+) "
                      r"route updates, (\d+) refused by KVM", out)
        expect(m is not None, "the host's MSI-X summary")
        irqfd, direct, routes, refused = (int(g) for g in m.groups())
        # The LAPIC may merge two messages into one interrupt: at least as many sent.
        expect(irqfd >= taken and direct == 0, f"MSI-X through the irqfd routes ({irqfd} sent, "
               f"{direct} injected directly, {taken} taken)")
        expect(routes >= 2 and refused == 0, "the config and queue vectors' routes were set")
    check_blocks(disk, 7, 64)


def case_irq_pci(host, guest, tmp):
    case_irq(host, guest, tmp, transport="pci")


def hostile(kind, marker, transport="mmio"):
    def case(host, guest, tmp):
        disk = make_disk(tmp, 16)
        rc, out = run(host, ["--guest", guest, "--blk", f"{disk},transport={transport}",
                             "--mode", "hostile=" + kind])
        expect_rc(rc, 0, out)
        expect("guest verdict PASS, exit code 0" in out,
               "the guest found the device behaving (verdict PASS)")
        expect(f"over virtio-{transport}" in out, f"the guest used virtio-{transport}")
        expect("the devices reported errors; the host kept running" in out,
               "the host reports the device errors")
        expect(re.search(marker, out, re.M) is not None, f"device error /{marker}/")
    return case


def case_hostile_grow_race(host, guest, tmp, transport="mmio"):
    """A chain that grows while the device takes it: the device must need a
    reset, and while the guest keeps that dead request available (between its
    marks 0 and 1) the host's I/O thread must sleep, not spin on the ring.
    The race needs the guest to run while the device walks the chain: the vCPU
    and I/O threads on CPUs of their own (the default, --cpus auto). It relies
    on the library needing a reset when a chain grows between its two walks;
    should that change, leave a dead request on the ring some other way."""
    if len(os.sched_getaffinity(0)) < 2:
        print("SKIP: the race needs two CPUs, this process may use one")
        sys.exit(SKIP)
    disk = make_disk(tmp, 16)
    rc, out = run(host, ["--guest", guest, "--blk", f"{disk},transport={transport}",
                         "--mode", "hostile=grow-race"])
    expect_rc(rc, 0, out)
    expect("guest verdict PASS, exit code 0" in out, "the device refused every chain (PASS)")
    expect(f"over virtio-{transport}" in out, f"the guest used virtio-{transport}")
    expect("the device saw it grow" in out and "NEEDS_RESET seen" in out,
           "the guest changed a chain under the device, which then needed a reset")
    m = re.search(r"I/O thread: (\d+\.\d) ms of CPU in the (\d+\.\d) ms between the guest's "
                  r"marks 0 and 1", out)
    expect(m is not None, "the host measured its I/O thread during the guest's hold")
    cpu, wall = float(m.group(1)), float(m.group(2))
    expect(wall >= 400, f"the guest held the request {wall} ms, not 500")
    expect(cpu < 0.1 * wall, f"the I/O thread spun on a device that needs a reset: {cpu} ms "
           f"of CPU in {wall} ms")


def case_hostile_grow_race_pci(host, guest, tmp):
    case_hostile_grow_race(host, guest, tmp, transport="pci")


def case_bench_smoke(host, guest, tmp, transport="mmio"):
    disk = make_disk(tmp, 64)
    with open(disk, "r+b") as f:  # real blocks, not a hole
        f.write(os.urandom(1 << 20) * 64)
    blk = f"{disk},transport={transport}"
    args = ["--guest", guest, "--blk", blk, "--mode", "bench", "--bench-ms", "200",
            "--depths", "1,32"]
    rc, out = run(host, args + ["--native"])
    native = "needs liburing" not in out
    if not native:  # a build without liburing: no reference, the rest still holds
        rc, out = run(host, args)
    expect_rc(rc, 0, out)
    for d in (1, 32):
        ref = r" native_iops=(\d+) ratio=(\d+\.\d+)" if native else ""
        m = re.search(rf"^BENCH kvm-blk randread-4k-qd{d}-{transport} iops=(\d+){ref} "
                      rf"kicks_per_io=\d+\.\d+ others=\d+\.\d+(/\d+\.\d+)?$", out, re.M)
        expect(m is not None, f"a BENCH line for depth {d}")
        expect(int(m.group(1)) > 0, f"depth {d}: a rate above 0")
        if native:
            iops, nat, ratio = int(m.group(1)), int(m.group(2)), float(m.group(3))
            expect(nat > 0, f"depth {d}: a native rate above 0")
            expect(abs(ratio - iops / nat) < 0.01, f"depth {d}: ratio = iops / native_iops")
    if transport == "pci":
        check_pci(out)
    if native:
        # --disk-blocks beyond the disk: both the guest and the native
        # reference read the whole disk and nothing past its end.
        rc, out = run(host, ["--guest", guest, "--blk", blk, "--mode", "bench", "--bench-ms",
                             "50", "--depths", "4", "--native", "--disk-blocks", "100000000"])
        expect_rc(rc, 0, out)
        expect("reads over 16384 blocks" in out, "the guest kept to the disk's 16384 blocks")
        expect(re.search(rf"^BENCH kvm-blk randread-4k-qd4-{transport} iops=[1-9]\d* "
                         rf"native_iops=[1-9]", out, re.M) is not None,
               "a native reference within the disk")


def case_bench_smoke_pci(host, guest, tmp):
    case_bench_smoke(host, guest, tmp, transport="pci")


def case_first_io(host, guest, tmp, transport="mmio"):
    disk = make_disk(tmp, 16)
    rc, out = run(host, ["--guest", guest, "--blk", f"{disk},transport={transport}",
                         "--mode", "first-io"])
    expect_rc(rc, 0, out)
    m = re.search(r"start-up: (\d+\.\d+) ms from process start \(main\) to the guest's first "
                  r"completed virtio request", out)
    expect(m is not None, "a start-up line")
    expect(0 < float(m.group(1)) < 10000, "a plausible start-up time")
    expect(number(out, r"(\d+) reads") == 1, "exactly one read")
    if transport == "pci":
        check_pci(out, quiet=True)


def case_first_io_pci(host, guest, tmp):
    case_first_io(host, guest, tmp, transport="pci")


HOTPLUG_WINDOW = (0xcf000000, 0xd0000000)  # KH_HOTPLUG_WINDOW_BASE/SIZE in pciroot.h


def check_hotplug(out):
    """What every hotplug run must show on the host: one plug and one unplug,
    each asked for and then completed by the guest, in that order; after the
    unplug the function gone from the root, its BAR ranges from the MMIO bus
    (as many ranges as before the plug) and its notify ioeventfd removed, the
    disk freed; the port's MSIs all through the irqfd. Returns the number of
    hotplug interrupts the guest took."""
    steps = [r"^kvm-host: hotplug: plug requested \(presence and the attention button shown to "
             r"the guest\): 01:00\.0$",
             r"^kvm-host: hotplug: plug completed \(the guest powered the slot on, link up\): "
             r"01:00\.0$",
             r"^kvm-host: hotplug: unplug requested \(attention button pressed\): 01:00\.0$",
             r"^kvm-host: hotplug: unplug completed \(the guest powered the slot off\): "
             r"01:00\.0$",
             r"^kvm-host: hotplug: disk freed$"]
    found = []
    at = 0
    for step in steps:
        m = re.compile(step, re.M).search(out, at)
        expect(m is not None, f"/{step}/ after the steps before it")
        at = m.end()
        found.append(m)
    for step in steps:
        expect(len(re.findall(step, out, re.M)) == 1, f"/{step}/ exactly once")
    # The guest's line and the host's "plug completed" race (the host's
    # control thread prints when the eventfd fires, while the vCPU goes on):
    # the guest's line only has to fall between the plug and unplug requests.
    powered = r"^guest: hotplug: slot powered on, link up, 01:00\.0 is 1af4:1042"
    m = re.compile(powered, re.M).search(out, found[0].end())
    expect(m is not None and m.end() < found[2].start(),
           f"/{powered}/ after the plug request and before the unplug request")
    m = re.search(r"^kvm-host: hotplug: after the unplug: function gone from the root, 0 of its "
                  r"(\d+) BAR ranges on the MMIO bus \((\d+) ranges there, (\d+) before the "
                  r"plug\), notify ioeventfd removed$", out, re.M)
    expect(m is not None, "after the unplug: off the root, off the bus, no ioeventfd")
    placed, now, before = (int(g) for g in m.groups())
    expect(placed == 2 and now == before, f"{placed} BARs placed (want 2: BARs 1 and 4), "
           f"{now} ranges on the bus after, {before} before")
    expect("kvm-host: hotplug: port 00:1f.0: 1 plugs and 1 unplugs completed, 0 requests refused; "
           "slot status 0x0000" in out, "the port's summary: one cycle, slot empty")
    expect("guest: hotplug: slot powered off, 01:00.0 reads all ones, slot empty" in out,
           "the guest saw the function gone")
    taken = number(out, r"^guest: hotplug: passed; (\d+) hotplug interrupts taken$")
    m = re.search(r"^kvm-host: hotplug: port MSI: (\d+) interrupts by irqfd, (\d+) by "
                  r"KVM_SIGNAL_MSI, (\d+) route updates, (\d+) refused by KVM$", out, re.M)
    expect(m is not None, "the port's MSI summary")
    irqfd, direct, routes, refused = (int(g) for g in m.groups())
    # notifications on, button (plug), power on, indicator, button (unplug),
    # blink, power off, indicator off: at least 8 interrupts.
    expect(taken >= 8, f"the guest took {taken} hotplug interrupts, want >= 8")
    expect(irqfd >= taken and direct == 0, f"hotplug MSIs through the irqfd route ({irqfd} sent, "
           f"{direct} injected directly, {taken} taken)")
    expect(routes >= 1 and refused == 0, "the port's route was set")
    expect("kvm-host: hotplug: plug and unplug completed, the disk is gone from every bus" in out,
           "the host's verdict on the hotplug cycle")
    expect(number(out, r"(\d+) unclaimed accesses") == 0, "no unclaimed accesses")
    expect(number(out, r"(\d+) bad test-device accesses") == 0, "no bad test-device accesses")
    return taken


def case_hotplug_pci(host, guest, tmp):
    """A virtio-blk disk hot-plugged behind the PCIe root port 00:1f.0 when
    the guest asks, driven (verify with MSI-X), and hot-unplugged."""
    disk = make_disk(tmp, 16)
    seed, blocks = 0x5107, 64
    rc, out = run(host, ["--guest", guest, "--blk", f"{disk},transport=pci,hotplug",
                         "--mode", "hotplug", "--seed", str(seed), "--verify-blocks", str(blocks)])
    expect_rc(rc, 0, out)
    expect("guest verdict PASS, exit code 0" in out, "guest verdict PASS")
    check_hotplug(out)
    expect("guest: hotplug: root port 00:1f.0, slot 1 on bus 1:" in out, "the guest found the port")
    expect("guest: pci 01:00.0: 1af4:1042 (virtio-blk), found by enumeration" in out,
           "the guest enumerated the disk behind the port")
    m = re.search(r"^guest: pci 01:00\.0: BAR 1 at 0x([0-9a-f]+), BAR 4 at 0x([0-9a-f]+)$", out,
                  re.M)
    expect(m is not None, "the disk's BARs were assigned")
    bars = [int(g, 16) for g in m.groups()]
    m = re.search(r"^guest: blk: moved BAR 4 from 0x([0-9a-f]+) to 0x([0-9a-f]+)$", out, re.M)
    expect(m is not None and int(m.group(1), 16) == bars[1], "the guest moved BAR 4")
    bars.append(int(m.group(2), 16))
    expect(all(HOTPLUG_WINDOW[0] <= b < HOTPLUG_WINDOW[1] for b in bars),
           "every BAR inside the port's memory window")
    expect("kvm-host: disk 0: /" in out and "virtio-pci at 01:00.0 (hotplug slot)" in out,
           "the disk's report, taken at the unplug")
    m = re.search(r"^kvm-host: disk 0: pci: BAR 4 placed or moved (\d+) times, notify ioeventfd "
                  r"at 0x([0-9a-f]+), (\d+) kicks missed it$", out, re.M)
    expect(m is not None, "the disk's PCI summary")
    # placed, off and on again for the move, gone with the function
    expect(int(m.group(1)) >= 4, f"BAR 4 reported {m.group(1)} times, want >= 4")
    expect(int(m.group(2), 16) == 0 and int(m.group(3)) == 0,
           "no ioeventfd left after the unplug, no kick missed it before")
    expect(number(out, r"^kvm-host: disk 0: status .* (\d+) kicks$") > 0, "kicks by ioeventfd")
    m = re.search(r"disk 0: pci: MSI-X: (\d+) interrupts by irqfd, (\d+) by KVM_SIGNAL_MSI", out)
    expect(m is not None and int(m.group(1)) > 0 and int(m.group(2)) == 0,
           "the disk's MSI-X interrupts through the irqfd routes")
    expect("NEEDS_RESET not seen, 0 malformed, 0 I/O errors" in out, "no device errors")
    expect("byte for byte" in out, "the host's image check passed")
    check_blocks(disk, seed, blocks)


def case_hostile_slot_power_pci(host, guest, tmp):
    """The guest toggles slot power and Link Disable 50 times with the disk
    plugged, then writes every Slot Control and Slot Status bit: the
    function must come and go with the link, and the unplug after it must
    still end with the disk gone from every bus."""
    disk = make_disk(tmp, 16)
    rc, out = run(host, ["--guest", guest, "--blk", f"{disk},transport=pci,hotplug",
                         "--mode", "hostile=slot-power"])
    expect_rc(rc, 0, out)
    expect("guest verdict PASS, exit code 0" in out, "guest verdict PASS")
    expect("guest: hostile: slot power and Link Disable toggled 50 times with the disk plugged"
           in out, "the guest toggled the slot 50 times")
    taken = check_hotplug(out)
    expect(taken >= 50, f"{taken} hotplug interrupts, want one per power toggle at least")
    with open(disk, "rb") as f:
        expect(f.read(BLOCK) == bytes(BLOCK), "the disk was not written")


def case_usage(host, guest, tmp):
    disk = make_disk(tmp, 16)
    bad = [
        (["--mode", "nope"], "unknown mode"),
        (["--mode", "hostile=nope"], "unknown mode"),
        (["--vcpus", "2"], "one vCPU"),
        (["--blk", disk + ",transport=usb"], "unknown option 'transport=usb'"),
        (["--mode", "hostile=bar-overlap"], "needs disk 0 on transport=pci"),
        (["--blk", disk + ",backend=spdk"], "unknown option 'backend=spdk'"),
        (["--mem", "1"], "--mem"),
        (["--mem", "5000"], "--mem"),
        (["--depths", "1,2,3,4,5"], "at most 4"),
        (["--depths", "0"], "not a depth"),
        (["--timeout", "-1"], "--timeout"),
        (["--frobnicate"], "unknown or incomplete option"),
        (["--seed"], "unknown or incomplete option"),
        (["stray"], "unexpected argument"),
        ([], "needs a disk"),
        (["--native"], "only goes with --mode bench"),
        (["--cpus", "bogus"], "--cpus: 'bogus'"),
        (["--cpus", "1"], "--cpus: '1'"),
        (["--cpus", "0,x"], "--cpus"),
        (["--blk", disk + ",hotplug"], "hotplug needs transport=pci"),
        (["--blk", disk + ",transport=pci,hotplug"], "go with a hotplug disk 0"),
        (["--mode", "hotplug"], "go with a hotplug disk 0"),
        (["--mode", "hostile=slot-power"], "go with a hotplug disk 0"),
        (["--blk", disk, "--blk", disk + ",transport=pci,hotplug", "--mode", "hotplug"],
         "only disk 0 can be hotplug"),
    ]
    for args, msg in bad:
        full = ["--guest", guest]
        if "--blk" not in args and msg != "needs a disk":
            full += ["--blk", disk]
        full += args
        rc, out = run(host, full)
        expect(rc == 2, f"{args}: exit status {rc}, expected 2")
        expect(msg in out, f"{args}: message lacks '{msg}'")
        expect("usage: vdev-kvm-host" in out, f"{args}: usage printed")
    rc, out = run(host, ["--help"])
    expect(rc == 0 and "--blk FILE" in out, "--help")
    disk_small = make_disk(tmp, 1, "small.img")
    rc, out = run(host, ["--guest", guest, "--blk", disk_small, "--verify-blocks", "1000"])
    expect(rc == 2 and "at least" in out, "a disk too small for the verify workload")


def case_missing_image(host, guest, tmp):
    rc, out = run(host, ["--guest", guest, "--blk", os.path.join(tmp, "nope.img")])
    expect(rc == 1, f"exit status {rc}, expected 1")
    expect("cannot open disk image" in out and "No such file" in out, "a clear message")


def case_missing_guest(host, guest, tmp):
    disk = make_disk(tmp, 16)
    rc, out = run(host, ["--guest", os.path.join(tmp, "nope.elf"), "--blk", disk])
    expect(rc == 1, f"exit status {rc}, expected 1")
    expect("cannot read the guest image" in out and "No such file" in out, "a clear message")


def case_bad_guest(host, guest, tmp):
    disk = make_disk(tmp, 16)
    text = write_file(tmp, "text.elf", b"#!/bin/sh\n" + b"echo this is not an ELF file\n" * 4)
    low = bytearray(tiny_elf(SPIN))
    struct.pack_into("<QQ", low, 64 + 16, 0x100000, 0x100000)  # p_vaddr, p_paddr: 1 MiB
    low = write_file(tmp, "low.elf", bytes(low))
    with open(guest, "rb") as f:
        cut = write_file(tmp, "cut.elf", f.read(100))
    for path, msg in [(text, "not an ELF file"), (low, "outside"),
                      (cut, "program headers outside the file")]:
        rc, out = run(host, ["--guest", path, "--blk", disk])
        expect(rc == 1, f"{os.path.basename(path)}: exit status {rc}, expected 1")
        expect("bad guest image" in out and msg in out,
               f"{os.path.basename(path)}: message lacks '{msg}'")


def case_no_kvm_message(host, guest, tmp):
    disk = make_disk(tmp, 16)
    p = subprocess.run([host, "--guest", guest, "--blk", disk, "--kvm-device",
                        os.path.join(tmp, "no-kvm")], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=30)
    print(p.stdout)
    expect(p.returncode == 1, f"exit status {p.returncode}, expected 1")
    expect(f"cannot open {tmp}/no-kvm: No such file or directory" in p.stdout,
           "a clear message naming the device")


def case_timeout(host, guest, tmp):
    rc, out = run_tiny(host, tmp, SPIN, ["--timeout", "1"])
    expect_rc(rc, 5, out)
    expect("time limit (1 s) reached" in out, "the time limit is reported")
    expect("rip 0000000000200000" in out, "the registers are printed")
    rc, out = run_tiny(host, tmp, CRASH, [])
    expect_rc(rc, 4, out)
    expect("the guest crashed" in out and "rip " in out, "the crash and registers reported")


def thread_cpus(host, tmp, args):
    """Run a spinning guest with @args; the CPUs its vCPU and I/O threads
    (named kh-vcpu0 and kh-io once pinned) may run on, read from /proc."""
    guest = write_file(tmp, "spin.elf", tiny_elf(SPIN))
    cmd = [host, "--guest", guest, "--blk", make_disk(tmp, 16), "--timeout", "2"] + args
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    found = {}
    deadline = time.monotonic() + 1.5
    while len(found) < 2 and time.monotonic() < deadline and p.poll() is None:
        for tid in os.listdir(f"/proc/{p.pid}/task"):
            try:
                with open(f"/proc/{p.pid}/task/{tid}/comm") as f:
                    name = f.read().strip()
                if name in ("kh-vcpu0", "kh-io"):
                    found[name] = os.sched_getaffinity(int(tid))
            except OSError:
                pass  # the thread is gone
        time.sleep(0.02)
    out = p.communicate(timeout=60)[0]
    print("$ vdev-kvm-host " + " ".join(cmd[1:]))
    print(out)
    if "cannot open /dev/kvm" in out:
        print("SKIP: /dev/kvm cannot be opened on this machine")
        sys.exit(SKIP)
    expect_rc(p.returncode, 5, out)
    expect(len(found) == 2, f"found the vCPU and I/O threads by name (found {sorted(found)})")
    print(f"{args}: vCPU thread on {sorted(found['kh-vcpu0'])}, I/O thread on "
          f"{sorted(found['kh-io'])}")
    return found["kh-vcpu0"], found["kh-io"]


def case_cpus(host, guest, tmp):
    allowed = sorted(os.sched_getaffinity(0))
    vcpu, io = thread_cpus(host, tmp, ["--cpus", "none"])
    expect(vcpu == io == set(allowed), "--cpus none: the threads are not pinned")
    vcpu, io = thread_cpus(host, tmp, [])
    if len(allowed) < 2:
        expect(vcpu == io == set(allowed), "one CPU: the default (auto) pins nothing")
        return
    expect(vcpu == {allowed[0]} and io == {allowed[1]},
           "by default (auto) the vCPU and I/O threads get the first two CPUs, one each")
    vcpu, io = thread_cpus(host, tmp, ["--cpus", f"{allowed[1]},{allowed[0]}"])
    expect(vcpu == {allowed[1]} and io == {allowed[0]}, "--cpus V,I pins them there")


def case_testdev_abuse(host, guest, tmp):
    rc, out = run_tiny(host, tmp, TESTDEV_ABUSE, ["--mode", "first-io"])
    expect_rc(rc, 0, out)
    expect("guest verdict PASS, exit code 0" in out, "the guest's checks of the reads passed")
    expect("guest: [line at 0x7ffff000 is outside RAM]" in out, "a line outside RAM")
    expect("guest: " + "A" * 512 + " [truncated]\n" in out, "a line without NUL, cut at 512")
    expect("guest: ?[31mred\n" in out, "control characters replaced, newline dropped")
    expect(number(out, r"(\d+) bad test-device accesses") == 4,
           "4 bad test-device accesses (size, mark, line outside RAM, read)")
    expect(number(out, r"(\d+) unclaimed accesses") == 3,
           "3 unclaimed accesses (port read, MMIO read, MMIO write)")
    expect("unclaimed port read of 4 bytes at 0x80" in out, "the unclaimed port is named")
    expect("unclaimed MMIO write of 4 bytes at 0xe0000000" in out, "the unclaimed MMIO too")


CASES = {
    "verify": case_verify,
    "verify-file-backend": case_verify_file_backend,
    "irq": case_irq,
    "hostile-bad-desc": hostile("bad-desc", r"NEEDS_RESET seen"),
    "hostile-loop": hostile("loop", r"NEEDS_RESET seen"),
    "hostile-queue-size0": hostile("queue-size0", r"[1-9]\d* register accesses refused"),
    "hostile-order": hostile("order", r"[1-9]\d* register accesses refused"),
    "hostile-grow-race": case_hostile_grow_race,
    "bench-smoke": case_bench_smoke,
    "first-io": case_first_io,
    "verify-pci": case_verify_pci,
    "verify-pci-multi": case_verify_pci_multi,
    "irq-pci": case_irq_pci,
    "hostile-bad-desc-pci": hostile("bad-desc", r"NEEDS_RESET seen", "pci"),
    "hostile-loop-pci": hostile("loop", r"NEEDS_RESET seen", "pci"),
    "hostile-queue-size0-pci": hostile("queue-size0", r"[1-9]\d* register accesses refused",
                                       "pci"),
    "hostile-order-pci": hostile("order", r"[1-9]\d* register accesses refused", "pci"),
    "hostile-grow-race-pci": case_hostile_grow_race_pci,
    "hostile-bar-overlap-pci": hostile("bar-overlap", r"^kvm-host: pci: [1-9]\d* config writes "
                                       r"refused$", "pci"),
    "bench-smoke-pci": case_bench_smoke_pci,
    "first-io-pci": case_first_io_pci,
    "hotplug-pci": case_hotplug_pci,
    "hostile-slot-power-pci": case_hostile_slot_power_pci,
    "usage": case_usage,
    "missing-image": case_missing_image,
    "missing-guest": case_missing_guest,
    "bad-guest": case_bad_guest,
    "no-kvm-message": case_no_kvm_message,
    "timeout": case_timeout,
    "testdev-abuse": case_testdev_abuse,
    "cpus": case_cpus,
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--guest", required=True)
    ap.add_argument("case", choices=sorted(CASES))
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="vdev-kvm-") as tmp:
        try:
            CASES[a.case](a.host, a.guest, tmp)
        except Fail as e:
            print(f"FAIL: {a.case}: {e}")
            return 1
        except subprocess.TimeoutExpired as e:
            print(f"FAIL: {a.case}: the host did not finish: {e}")
            return 1
    print(f"PASS: {a.case}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
