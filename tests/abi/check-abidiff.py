#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Compare the built shared library with the committed ABI baseline.

usage: check-abidiff.py BASELINE.abi LIBRARY.so PUBLIC-HEADERS-DIR SUPPRESSIONS

Only types reachable from the public headers count (--headers-dir). abidiff's
exit status is a bit mask: 1 error, 2 usage error, 4 ABI change, 8 incompatible
ABI change. Bit 8 (e.g. a removed function) fails. Bit 4 alone passes when the
change is additions only (new functions or variables, members appended to a
versioned struct, which the suppression file allows); a changed existing
interface (a retyped parameter) also sets only bit 4 in abidiff, so the
report's "Changed" counts are checked too and fail the test. Because the
append suppression also hides reordered members, check-layout.py then compares
the public struct layouts of the baseline and of the library (abidw output).
The report is printed either way. Exits 77 when abigail-tools is not installed
or the library has no debug info.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

ABIDIFF_ERROR = 1
ABIDIFF_USAGE_ERROR = 2
ABIDIFF_ABI_CHANGE = 4
ABIDIFF_ABI_INCOMPATIBLE_CHANGE = 8


def has_debug_info(lib):
    r = subprocess.run(['readelf', '-S', '-W', lib], stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, universal_newlines=True)
    return r.returncode != 0 or '.debug_info' in r.stdout


def changed_counts(report):
    """Non-zero "Removed"/"Changed" counts of the report's summary lines."""
    found = []
    for line in report.splitlines():
        m = re.match(r'\s*(Functions|Variables|Function symbols|Variable symbols) changes '
                     r'summary:\s*(\d+) Removed,\s*(\d+) Changed', line)
        if m and (int(m.group(2)) or int(m.group(3))):
            found.append('%s: %s removed, %s changed' % (m.group(1), m.group(2), m.group(3)))
    return found


def layouts_ok(baseline, lib, hdrdir):
    headers = sorted(h for h in os.listdir(hdrdir) if h.endswith('.h'))
    with tempfile.TemporaryDirectory(prefix='vdev-abidw-') as tmp:
        cur = os.path.join(tmp, 'current.abi')
        cmd = ['abidw', '--headers-dir', hdrdir, '--no-corpus-path', '--no-comp-dir-path',
               '--short-locs', '--type-id-style', 'hash', '--drop-undefined-syms',
               '--out-file', cur, lib]
        print('$ ' + ' '.join(cmd))
        if subprocess.run(cmd).returncode != 0:
            print('abidw failed')
            return False
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'check-layout.py')
        return subprocess.run([sys.executable, script, baseline, cur] + headers).returncode == 0


def main(argv):
    if len(argv) != 5:
        print(__doc__)
        return 2
    baseline, lib, hdrdir, suppr = argv[1:]
    abidiff = shutil.which('abidiff')
    if not abidiff:
        print('SKIP: abidiff not found (install the Debian package abigail-tools)')
        return 77
    if not os.path.exists(baseline):
        print('FAIL: no ABI baseline at %s (generate it with scripts/abi-baseline '
              'together with a deliberate version bump; see doc/abi.md)' % baseline)
        return 1
    if not has_debug_info(lib):
        print('SKIP: %s has no debug info (configure with -g, e.g. the default '
              'buildtype=debugoptimized); abidiff cannot see types without it' % lib)
        return 77

    cmd = [abidiff, '--no-default-suppression', '--redundant', '--headers-dir2', hdrdir,
           '--suppressions', suppr, baseline, lib]
    print('$ ' + ' '.join(cmd))
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True)
    print(r.stdout.rstrip() or '(no differences)')
    status = r.returncode
    print('abidiff exit status %d' % status)
    if status < 0:
        print('FAIL: abidiff died with signal %d' % -status)
        return 1
    if status & (ABIDIFF_ERROR | ABIDIFF_USAGE_ERROR):
        print('FAIL: abidiff could not compare the baseline with the library')
        return 1
    if status & ABIDIFF_ABI_INCOMPATIBLE_CHANGE:
        print('FAIL: incompatible ABI change against %s. Undo it, or (for 1.0+ only '
              'with a major bump) see doc/abi.md' % os.path.basename(baseline))
        return 1
    if not layouts_ok(baseline, lib, hdrdir):
        print('FAIL: a public struct changed other than by appending members')
        return 1
    changed = changed_counts(r.stdout)
    if status & ABIDIFF_ABI_CHANGE and changed:
        print('FAIL: existing interfaces changed (%s); only additions are compatible'
              % ', '.join(changed))
        return 1
    if status & ABIDIFF_ABI_CHANGE:
        print('OK: compatible ABI change (additions); record them in a new version '
              'node and regenerate the baseline with scripts/abi-baseline at the '
              'version bump')
        return 0
    print('OK: no incompatible change against the baseline')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
