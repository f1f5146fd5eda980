#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Install the build into a temporary DESTDIR and use it as a VMM would.

usage: check-install.py BUILD-DIR SOURCE-DIR VERSION SANITIZE --meson MESON... --cc CC...

Runs `meson install --no-rebuild --destdir TMP`, checks the installed files
(public headers, libvirtio-dev.so.0 SONAME, the static library, the .pc),
builds examples/pkgconfig-consumer/consumer.c with pkg-config pointed into
TMP, once against the shared and once against the static library, and runs
both. SANITIZE is the build's b_sanitize ("none" or e.g. "address,undefined");
the consumer is then built with the same -fsanitize flags, because an
instrumented library needs the sanitizer runtime in the executable.
"""
import json
import os
import shlex
import subprocess
import sys
import tempfile

errors = []


def fail(msg):
    print('FAIL: ' + msg)
    errors.append(msg)


def run(cmd, env=None, check=True, quiet=False):
    print('$ ' + ' '.join(shlex.quote(c) for c in cmd))
    r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True)
    if r.stdout.strip() and (not quiet or r.returncode != 0):
        print(r.stdout.rstrip())
    if check and r.returncode != 0:
        raise RuntimeError('%s exited with %d' % (cmd[0], r.returncode))
    return r


def build_options(meson, builddir):
    out = subprocess.run(meson + ['introspect', '--buildoptions', builddir], check=True,
                         stdout=subprocess.PIPE, universal_newlines=True).stdout
    return {o['name']: o['value'] for o in json.loads(out)}


def under(root, path):
    return os.path.join(root, path.lstrip('/'))


def main(argv):
    groups, pos, cur = {'--meson': [], '--cc': []}, [], None
    for a in argv[1:]:
        if a in groups:
            cur = groups[a]
        elif cur is not None:
            cur.append(a)
        else:
            pos.append(a)
    meson, cc = groups['--meson'], groups['--cc']
    if len(pos) != 4 or not meson or not cc:
        print(__doc__)
        return 2
    builddir, srcdir, version, sanitize = pos

    opts = build_options(meson, builddir)
    prefix = opts['prefix']
    libdir = opts['libdir'] if os.path.isabs(opts['libdir']) else \
        os.path.join(prefix, opts['libdir'])
    incdir = opts['includedir'] if os.path.isabs(opts['includedir']) else \
        os.path.join(prefix, opts['includedir'])
    san_flags = [] if sanitize in ('', 'none') else ['-fsanitize=' + sanitize]

    with tempfile.TemporaryDirectory(prefix='vdev-install-') as tmp:
        dest = os.path.join(tmp, 'destdir')
        run(meson + ['install', '--no-rebuild', '--quiet', '-C', builddir,
                     '--destdir', dest])
        dlib, dinc = under(dest, libdir), under(dest, incdir)

        # Headers: every public header of the source tree, under virtio-dev/.
        src_headers = sorted(os.listdir(os.path.join(srcdir, 'include', 'virtio-dev')))
        hdir = os.path.join(dinc, 'virtio-dev')
        inst_headers = sorted(os.listdir(hdir)) if os.path.isdir(hdir) else []
        if inst_headers != src_headers:
            fail('installed headers in %s are %s, the source tree has %s'
                 % (hdir, inst_headers, src_headers))

        # Libraries.
        so_real = os.path.join(dlib, 'libvirtio-dev.so.' + version)
        so_name = os.path.join(dlib, 'libvirtio-dev.so.' + version.split('.')[0])
        so_dev = os.path.join(dlib, 'libvirtio-dev.so')
        static = os.path.join(dlib, 'libvirtio-dev.a')
        pc = os.path.join(dlib, 'pkgconfig', 'libvirtio-dev.pc')
        for path in (so_real, so_name, so_dev, static, pc):
            if not os.path.exists(path):
                fail('not installed: %s' % path[len(dest):])
        if os.path.exists(so_real):
            dyn = run(['readelf', '-d', so_real], quiet=True).stdout
            want = '[libvirtio-dev.so.%s]' % version.split('.')[0]
            if 'Library soname: ' + want not in dyn:
                fail('SONAME of %s is not %s' % (os.path.basename(so_real), want))
            if '(RPATH)' in dyn or '(RUNPATH)' in dyn:
                fail('installed library still carries an RPATH/RUNPATH')
        if errors:
            return 1

        # pkg-config, looking only into the DESTDIR; the sysroot prefixes the
        # -I/-L paths with it. System dirs are kept in case prefix is /usr.
        pkgconf = os.environ.get('PKG_CONFIG', 'pkg-config')
        # The system's search path stays behind ours so that Requires.private
        # (liburing) still resolves.
        sys_path = run([pkgconf, '--variable', 'pc_path', 'pkg-config']).stdout.strip()
        env = dict(os.environ)
        env.pop('PKG_CONFIG_PATH', None)
        env.update(PKG_CONFIG_LIBDIR=os.path.dirname(pc) + (':' + sys_path if sys_path else ''),
                   PKG_CONFIG_SYSROOT_DIR=dest,
                   PKG_CONFIG_ALLOW_SYSTEM_CFLAGS='1',
                   PKG_CONFIG_ALLOW_SYSTEM_LIBS='1')
        modver = run([pkgconf, '--modversion', 'libvirtio-dev'], env=env).stdout.strip()
        if modver != version:
            fail('pkg-config --modversion says %r, the build is %r' % (modver, version))
        cflags = shlex.split(run([pkgconf, '--cflags', 'libvirtio-dev'], env=env).stdout)
        libs = shlex.split(run([pkgconf, '--libs', 'libvirtio-dev'], env=env).stdout)
        static_libs = shlex.split(run([pkgconf, '--static', '--libs', 'libvirtio-dev'],
                                      env=env).stdout)
        if not any(f.startswith('-I' + dest) for f in cflags):
            fail('pkg-config --cflags does not point into the DESTDIR: %s' % cflags)
        if not any(f.startswith('-L' + dest) for f in libs):
            fail('pkg-config --libs does not point into the DESTDIR: %s' % libs)
        if errors:
            return 1

        src = os.path.join(srcdir, 'examples', 'pkgconfig-consumer', 'consumer.c')
        shared_exe = os.path.join(tmp, 'consumer')
        static_exe = os.path.join(tmp, 'consumer-static')
        cflags_common = ['-std=c11', '-Wall', '-Wextra', '-pedantic', '-Werror'] + san_flags
        run(cc + cflags_common + [src] + cflags + libs + san_flags + ['-o', shared_exe])
        # Static: the archive by path, plus the private libs it needs.
        static_rest = [f for f in static_libs if f != '-lvirtio-dev']
        run(cc + cflags_common + [src] + cflags + [static] + static_rest + san_flags +
            ['-o', static_exe])

        if 'libvirtio-dev.so' not in run(['readelf', '-d', shared_exe], quiet=True).stdout:
            fail('the shared consumer does not link libvirtio-dev.so')
        if 'libvirtio-dev.so' in run(['readelf', '-d', static_exe], quiet=True).stdout:
            fail('the static consumer still needs libvirtio-dev.so')

        renv = dict(os.environ, LD_LIBRARY_PATH=dlib)
        for exe in (shared_exe, static_exe):
            r = run([exe], env=renv, check=False)
            first = 'libvirtio-dev %s ' % version
            if r.returncode != 0:
                fail('%s exited with %d' % (os.path.basename(exe), r.returncode))
            elif not r.stdout.startswith(first) or 'translate ok' not in r.stdout:
                fail('%s printed %r; want a first line starting %r and "translate ok"'
                     % (os.path.basename(exe), r.stdout, first))

    if errors:
        return 1
    print('OK: installed files, pkg-config and both consumers work')
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main(sys.argv))
    except RuntimeError as e:
        print('FAIL: %s' % e)
        sys.exit(1)
