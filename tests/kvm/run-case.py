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

def case_verify(host, guest, tmp, backend="io_uring", seed=1, blocks=64):
    disk = make_disk(tmp, 16)
    rc, out = run(host, ["--guest", guest, "--blk", f"{disk},backend={backend}",
                         "--mode", "verify", "--seed", str(seed),
                         "--verify-blocks", str(blocks)])
    expect_rc(rc, 0, out)
    expect("guest verdict PASS, exit code 0" in out, "guest verdict PASS")
    expect(f"{backend} backend" in out, f"the {backend} backend was used")
    expect("byte for byte" in out, "the host's image check passed")
    expect(number(out, r"(\d+) writes") >= blocks, "the device saw the writes")
    expect(number(out, r"(\d+) reads") >= blocks, "the device saw the reads")
    expect("NEEDS_RESET not seen, 0 malformed, 0 I/O errors" in out, "no device errors")
    check_blocks(disk, seed, blocks)


def case_verify_file_backend(host, guest, tmp):
    case_verify(host, guest, tmp, backend="file", seed=0xC0FFEE, blocks=100)


def case_irq(host, guest, tmp):
    disk = make_disk(tmp, 16)
    rc, out = run(host, ["--guest", guest, "--blk", disk, "--mode", "irq", "--seed", "7"])
    expect_rc(rc, 0, out)
    expect("guest verdict PASS, exit code 0" in out, "guest verdict PASS")
    expect(number(out, r"interrupts taken by the guest: (\d+)") > 0, "interrupts taken")
    check_blocks(disk, 7, 64)


def hostile(kind, marker):
    def case(host, guest, tmp):
        disk = make_disk(tmp, 16)
        rc, out = run(host, ["--guest", guest, "--blk", disk, "--mode", "hostile=" + kind])
        expect_rc(rc, 0, out)
        expect("guest verdict PASS, exit code 0" in out,
               "the guest found the device behaving (verdict PASS)")
        expect("the devices reported errors; the host kept running" in out,
               "the host reports the device errors")
        expect(re.search(marker, out, re.M) is not None, f"device error /{marker}/")
    return case


def case_hostile_grow_race(host, guest, tmp):
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
    rc, out = run(host, ["--guest", guest, "--blk", disk, "--mode", "hostile=grow-race"])
    expect_rc(rc, 0, out)
    expect("guest verdict PASS, exit code 0" in out, "the device refused every chain (PASS)")
    expect("the device saw it grow" in out and "NEEDS_RESET seen" in out,
           "the guest changed a chain under the device, which then needed a reset")
    m = re.search(r"I/O thread: (\d+\.\d) ms of CPU in the (\d+\.\d) ms between the guest's "
                  r"marks 0 and 1", out)
    expect(m is not None, "the host measured its I/O thread during the guest's hold")
    cpu, wall = float(m.group(1)), float(m.group(2))
    expect(wall >= 400, f"the guest held the request {wall} ms, not 500")
    expect(cpu < 0.1 * wall, f"the I/O thread spun on a device that needs a reset: {cpu} ms "
           f"of CPU in {wall} ms")


def case_bench_smoke(host, guest, tmp):
    disk = make_disk(tmp, 64)
    with open(disk, "r+b") as f:  # real blocks, not a hole
        f.write(os.urandom(1 << 20) * 64)
    args = ["--guest", guest, "--blk", disk, "--mode", "bench", "--bench-ms", "200",
            "--depths", "1,32"]
    rc, out = run(host, args + ["--native"])
    native = "needs liburing" not in out
    if not native:  # a build without liburing: no reference, the rest still holds
        rc, out = run(host, args)
    expect_rc(rc, 0, out)
    for d in (1, 32):
        ref = r" native_iops=(\d+) ratio=(\d+\.\d+)" if native else ""
        m = re.search(rf"^BENCH kvm-blk randread-4k-qd{d}-mmio iops=(\d+){ref} "
                      rf"kicks_per_io=\d+\.\d+ others=\d+\.\d+(/\d+\.\d+)?$", out, re.M)
        expect(m is not None, f"a BENCH line for depth {d}")
        expect(int(m.group(1)) > 0, f"depth {d}: a rate above 0")
        if native:
            iops, nat, ratio = int(m.group(1)), int(m.group(2)), float(m.group(3))
            expect(nat > 0, f"depth {d}: a native rate above 0")
            expect(abs(ratio - iops / nat) < 0.01, f"depth {d}: ratio = iops / native_iops")
    if native:
        # --disk-blocks beyond the disk: both the guest and the native
        # reference read the whole disk and nothing past its end.
        rc, out = run(host, ["--guest", guest, "--blk", disk, "--mode", "bench", "--bench-ms",
                             "50", "--depths", "4", "--native", "--disk-blocks", "100000000"])
        expect_rc(rc, 0, out)
        expect("reads over 16384 blocks" in out, "the guest kept to the disk's 16384 blocks")
        expect(re.search(r"^BENCH kvm-blk randread-4k-qd4-mmio iops=[1-9]\d* native_iops=[1-9]",
                         out, re.M) is not None, "a native reference within the disk")


def case_first_io(host, guest, tmp):
    disk = make_disk(tmp, 16)
    rc, out = run(host, ["--guest", guest, "--blk", disk, "--mode", "first-io"])
    expect_rc(rc, 0, out)
    m = re.search(r"start-up: (\d+\.\d+) ms from process start \(main\) to the guest's first "
                  r"completed virtio request", out)
    expect(m is not None, "a start-up line")
    expect(0 < float(m.group(1)) < 10000, "a plausible start-up time")
    expect(number(out, r"(\d+) reads") == 1, "exactly one read")


def case_usage(host, guest, tmp):
    disk = make_disk(tmp, 16)
    bad = [
        (["--mode", "nope"], "unknown mode"),
        (["--mode", "hostile=nope"], "unknown mode"),
        (["--vcpus", "2"], "one vCPU"),
        (["--blk", disk + ",transport=pci"], "not yet supported"),
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
