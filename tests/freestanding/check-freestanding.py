#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Link the freestanding driver objects into one relocatable object and fail
when it needs any symbol other than memcpy and memset.

usage: check-freestanding.py ARCHIVE OUTPUT.o --cc CC [ARGS...]
"""
import os
import shutil
import subprocess
import sys

ALLOWED = {"memcpy", "memset"}
# Symbols the driver half must define, so that an empty object cannot pass.
REQUIRED = {"vdev_drv_init", "vdev_drv_start", "vdev_drv_queue_setup", "vdev_drvq_add",
            "vdev_drvq_kick", "vdev_drvq_get_used", "vdev_drvq_enable_interrupts"}


def main():
    args = sys.argv[1:]
    if len(args) < 4 or args[2] != "--cc":
        print(__doc__, file=sys.stderr)
        return 2
    archive, output, cc = args[0], args[1], args[3:]
    nm = shutil.which(os.environ.get("NM", "nm"))
    if not nm:
        print("nm not found", file=sys.stderr)
        return 77

    link = cc + ["-r", "-nostdlib", "-o", output, "-Wl,--whole-archive", archive,
                 "-Wl,--no-whole-archive"]
    res = subprocess.run(link, capture_output=True, text=True)
    if res.returncode != 0:
        print("relocatable link failed:", " ".join(link), res.stdout, res.stderr,
              file=sys.stderr)
        return 1

    def symbols(flag):
        out = subprocess.run([nm, flag, output], capture_output=True, text=True, check=True)
        return {line.split()[-1] for line in out.stdout.splitlines() if line.strip()}

    undefined = symbols("-u")
    defined = symbols("--defined-only")
    bad = sorted(undefined - ALLOWED)
    missing = sorted(REQUIRED - defined)
    print("undefined symbols:", " ".join(sorted(undefined)) or "(none)")
    if bad:
        print("FAIL: the freestanding driver needs symbols beyond memcpy/memset: "
              + " ".join(bad), file=sys.stderr)
    if missing:
        print("FAIL: driver symbols not defined: " + " ".join(missing), file=sys.stderr)
    return 1 if bad or missing else 0


if __name__ == "__main__":
    sys.exit(main())
