#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Checks of the linux-guest harness itself, without booting anything.

    check-harness.py fetch      build-guest's kernel fetch: which failures skip
    check-harness.py ready      guestrun's readiness test for a back-end socket

fetch: build-guest runs with fake apt-get / apt-cache first in PATH. Only a
missing network (apt's resolve/connect errors) or missing package lists may
end in 77 (skip); a package list it cannot parse, a download refused by the
mirror, a download that writes no file are failures (1). Offline with a
package fetched earlier, that package is used.

ready: a socket file that is bound but not listening yet (a back-end between
bind() and listen()) is not ready; QEMU would be refused if it connected then.

Exit status: 0 pass, 1 fail, 77 skip (build-guest's tools are missing).
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
GUEST_DIR = os.path.join(HERE, '..', '..', 'scripts', 'linux-guest')
BUILD_GUEST = os.path.join(GUEST_DIR, 'build-guest')
sys.dont_write_bytecode = True
sys.path.insert(0, GUEST_DIR)
import guestrun  # noqa: E402

PKG, VER = 'linux-image-6.1.0-99-cloud-amd64', '6.1.999-1'
URL = 'http://deb.debian.org/debian/pool/main/l/linux/%s_%s_amd64.deb' % (PKG, VER)
OFFLINE = "Temporary failure resolving 'deb.debian.org'"

# apt-cache: FAKE_LISTS says what the package lists hold. "updated": nothing
# until the fake apt-get update ran (it leaves $FAKE_STATE/updated).
FAKE_APT_CACHE = r'''#!/bin/sh
[ "$FAKE_LISTS" != updated ] || { [ -e "$FAKE_STATE/updated" ] && FAKE_LISTS=ok; }
case "$FAKE_LISTS" in
ok) printf 'Package: linux-image-cloud-amd64\nDepends: %(pkg)s (= %(ver)s)\n' ;;
weird) printf 'Package: linux-image-cloud-amd64\nPre-Depends: %(pkg)s\n' ;;
*) echo "N: Unable to locate package linux-image-cloud-amd64" >&2
   echo "E: No packages found" >&2
   exit 100 ;;
esac
''' % {'pkg': PKG, 'ver': VER}

# apt-get update: FAKE_UPDATE online (exit 0) or offline (warnings, exit 0,
# as apt does). apt-get download: FAKE_DOWNLOAD ok, offline, 404 or nofile.
FAKE_APT_GET = r'''#!/bin/sh
for a in "$@"; do
	case "$a" in
	update)
		echo update >>"$FAKE_STATE/log"
		if [ "$FAKE_UPDATE" = online ]; then
			touch "$FAKE_STATE/updated"
		else
			echo "W: Failed to fetch http://deb.debian.org/debian/dists/bookworm/InRelease  %(off)s"
			echo "W: Some index files failed to download. They have been ignored, or old ones used instead."
		fi
		exit 0 ;;
	download)
		echo download >>"$FAKE_STATE/log"
		case "$FAKE_DOWNLOAD" in
		ok) echo "not a real package" >%(pkg)s_%(ver)s_amd64.deb; exit 0 ;;
		nofile) exit 0 ;;
		404) echo "E: Failed to fetch %(url)s  404  Not Found [IP: 192.0.2.1 80]" >&2; exit 100 ;;
		*) echo "Err:1 http://deb.debian.org/debian bookworm/main amd64 %(pkg)s amd64 %(ver)s"
		   echo "  %(off)s"
		   echo "E: Failed to fetch %(url)s  %(off)s" >&2
		   exit 100 ;;
		esac ;;
	esac
done
echo "fake apt-get: unexpected arguments: $*" >&2
exit 100
''' % {'pkg': PKG, 'ver': VER, 'url': URL, 'off': OFFLINE}


class Fail(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Fail(what)


def fetch_cases(is_root):
    """(name, environment, cached package?, expected status, expected text)."""
    cases = [
        ('offline, lists present', dict(FAKE_LISTS='ok', FAKE_DOWNLOAD='offline',
                                        FAKE_UPDATE='offline'), False, 77, 'no network'),
        ('offline, no lists', dict(FAKE_LISTS='none', FAKE_UPDATE='offline'), False, 77,
         'cannot fetch'),
        ('offline, package fetched before', dict(FAKE_LISTS='ok', FAKE_DOWNLOAD='offline',
                                                 FAKE_UPDATE='offline'), True, 'not 77',
         'fetched before'),
        ('mirror answers 404', dict(FAKE_LISTS='ok', FAKE_DOWNLOAD='404', FAKE_UPDATE='online'),
         False, 1, '404  Not Found'),
        ('Depends line not understood', dict(FAKE_LISTS='weird', FAKE_UPDATE='online'), False, 1,
         'cannot find the kernel package'),
        ('download writes no file', dict(FAKE_LISTS='ok', FAKE_DOWNLOAD='nofile',
                                         FAKE_UPDATE='online'), False, 1, 'no file'),
    ]
    if is_root:
        # Lists appear with apt-get update; the (junk) package is then
        # fetched and dpkg refuses it: a failure, not a skip.
        cases.append(('lists after update', dict(FAKE_LISTS='updated', FAKE_DOWNLOAD='ok',
                                                 FAKE_UPDATE='online'), False, 'not 77',
                      'downloading %s' % PKG))
    return cases


def test_fetch():
    for tool in ('busybox', 'cpio', 'fio', 'dpkg', 'cc'):
        if not shutil.which(tool):
            print('SKIP: %s is not installed (build-guest needs it before the fetch)' % tool)
            return 77
    is_root = os.getuid() == 0
    with tempfile.TemporaryDirectory(prefix='vdev-harness-') as tmp:
        fakebin = os.path.join(tmp, 'bin')
        os.mkdir(fakebin)
        for name, text in (('apt-cache', FAKE_APT_CACHE), ('apt-get', FAKE_APT_GET)):
            with open(os.path.join(fakebin, name), 'w') as f:
                f.write(text)
            os.chmod(os.path.join(fakebin, name), 0o755)
        for n, (name, env_add, cached, want_rc, want_text) in enumerate(fetch_cases(is_root)):
            out = os.path.join(tmp, 'out%d' % n)
            state = os.path.join(tmp, 'state%d' % n)
            os.makedirs(os.path.join(out, 'deb'))
            os.mkdir(state)
            if cached:
                old = 'linux-image-6.1.0-1-cloud-amd64_6.1.1-1_amd64.deb'
                with open(os.path.join(out, 'deb', old), 'w') as f:
                    f.write('an older package\n')
            env = dict(os.environ, PATH=fakebin + ':' + os.environ['PATH'], FAKE_STATE=state,
                       **env_add)
            p = subprocess.run([BUILD_GUEST, out], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, timeout=120)
            print('--- %s: status %d\n%s' % (name, p.returncode, p.stdout.rstrip()))
            if want_rc == 'not 77':
                check(p.returncode not in (0, 77), '%s: status %d, expected a failure '
                      '(the package is junk)' % (name, p.returncode))
            else:
                check(p.returncode == want_rc, '%s: status %d, expected %d' %
                      (name, p.returncode, want_rc))
            check(want_text in p.stdout, '%s: expected %r in the output' % (name, want_text))
    return 0


def test_ready():
    with tempfile.TemporaryDirectory(prefix='vdev-harness-') as tmp:
        path = os.path.join(tmp, 'sock')
        peer = guestrun.PeerDaemon(tmp, os.path.join(tmp, 'disk.img'), path)
        check(not peer.ready(), 'ready before the socket exists')
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.bind(path)
            check(not peer.ready(), 'ready while the socket is bound but not listening')
            s.listen(1)
            check(peer.ready(), 'not ready once the socket listens')
        finally:
            s.close()
        check(not peer.ready(), 'ready after the listener closed (stale socket file)')
    return 0


def main():
    tests = {'fetch': test_fetch, 'ready': test_ready}
    if len(sys.argv) != 2 or sys.argv[1] not in tests:
        print('usage: check-harness.py {%s}' % '|'.join(tests), file=sys.stderr)
        return 2
    try:
        rc = tests[sys.argv[1]]()
    except Fail as e:
        print('FAILED: %s' % e)
        return 1
    if rc == 0:
        print('PASS: %s' % sys.argv[1])
    return rc


if __name__ == '__main__':
    sys.exit(main())
