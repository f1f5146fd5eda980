#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Check the test guest's ELF the way vdev-kvm-host needs it, without KVM:
a static x86-64 executable whose PT_LOAD segments (physical = virtual
address) and entry point lie in [TG_IMAGE_GPA, TG_IMAGE_GPA + TG_IMAGE_MAX),
that needs no symbol from anywhere (no libc, no sanitizer runtime: the ASan
build dir must produce the same kind of guest).

usage: check-elf.py GUEST
"""
import os
import shutil
import struct
import subprocess
import sys

TG_IMAGE_GPA = 0x200000
TG_IMAGE_MAX = 0x200000
ET_EXEC, EM_X86_64, PT_LOAD, PT_INTERP, PT_DYNAMIC = 2, 62, 1, 3, 2


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(sys.argv[1], "rb") as f:
        data = f.read()
    errors = []
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        print("FAIL: not a little-endian ELF64 file", file=sys.stderr)
        return 1
    e_type, e_machine, _, e_entry, e_phoff = struct.unpack_from("<HHIQQ", data, 16)
    e_phentsize, e_phnum = struct.unpack_from("<HH", data, 54)
    lo, hi = TG_IMAGE_GPA, TG_IMAGE_GPA + TG_IMAGE_MAX
    if e_type != ET_EXEC or e_machine != EM_X86_64:
        errors.append(f"type {e_type} machine {e_machine}: want a static x86-64 executable")
    if not lo <= e_entry < hi:
        errors.append(f"entry 0x{e_entry:x} outside the image window")
    loads = 0
    for i in range(e_phnum):
        p_type, _, _, p_vaddr, p_paddr, p_filesz, p_memsz = struct.unpack_from(
            "<IIQQQQQ", data, e_phoff + i * e_phentsize)
        if p_type in (PT_INTERP, PT_DYNAMIC) and "dynamically linked" not in errors:
            errors.append("dynamically linked")
        if p_type != PT_LOAD:
            continue
        loads += 1
        print(f"PT_LOAD 0x{p_paddr:x}..0x{p_paddr + p_memsz:x} ({p_filesz} bytes in the file)")
        if p_vaddr != p_paddr or p_paddr < lo or p_memsz > hi - p_paddr or p_filesz > p_memsz:
            errors.append(f"PT_LOAD at 0x{p_paddr:x} (+0x{p_memsz:x}) outside the image window")
    if not loads:
        errors.append("no PT_LOAD segment")

    nm = shutil.which(os.environ.get("NM", "nm"))
    if nm:
        out = subprocess.run([nm, "-u", sys.argv[1]], capture_output=True, text=True, check=True)
        undefined = [line.split()[-1] for line in out.stdout.splitlines() if line.strip()]
        if undefined:
            errors.append("undefined symbols: " + " ".join(undefined))
        out = subprocess.run([nm, sys.argv[1]], capture_output=True, text=True, check=True)
        instrumented = [line.split()[-1] for line in out.stdout.splitlines()
                        if line.split() and line.split()[-1].startswith(("__asan", "__ubsan",
                                                                         "__gcov"))]
        if instrumented:
            errors.append("instrumented: " + " ".join(instrumented[:5]))
    for e in errors:
        print("FAIL:", e, file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
