#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Build tests/abi/subproject-consumer/ with libvirtio-dev as a subproject.

usage: check-subproject.py SOURCE-DIR VERSION --meson MESON... --cc CC...

Copies the consumer project and this source tree (without .git and build
directories) into a temporary directory, configures it with the subproject's
tests and examples off, builds it, checks that the subproject's tests were
indeed not configured, and runs the consumer.
"""
import os
import shlex
import shutil
import subprocess
import sys
import tempfile


def run(cmd, env=None, cwd=None):
    print('$ ' + ' '.join(shlex.quote(c) for c in cmd))
    r = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True)
    print(r.stdout.rstrip())
    if r.returncode != 0:
        raise RuntimeError('%s exited with %d' % (' '.join(cmd[:2]), r.returncode))
    return r.stdout


def ignore_tree(srcdir):
    def ignore(d, names):
        out = {n for n in names if n in ('.git', '__pycache__')}
        if os.path.samefile(d, srcdir):
            # build directories and whatever subprojects were downloaded into
            out |= {n for n in names if n.startswith('build')}
        if os.path.basename(d) == 'subprojects':
            out |= {n for n in names if not n.endswith('.wrap')}
        return out
    return ignore


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
    if len(pos) != 2 or not meson or not cc:
        print(__doc__)
        return 2
    srcdir, version = pos
    consumer = os.path.join(srcdir, 'tests', 'abi', 'subproject-consumer')

    with tempfile.TemporaryDirectory(prefix='vdev-subproject-') as tmp:
        proj = os.path.join(tmp, 'proj')
        build = os.path.join(tmp, 'build')
        shutil.copytree(consumer, proj)
        shutil.copytree(srcdir, os.path.join(proj, 'subprojects', 'libvirtio-dev'),
                        ignore=ignore_tree(srcdir), symlinks=True)
        env = dict(os.environ, CC=' '.join(shlex.quote(c) for c in cc))
        # Sanitizer settings of the outer build must not leak into this one.
        for k in ('CFLAGS', 'LDFLAGS'):
            env.pop(k, None)
        run(meson + ['setup', '--wrap-mode=nodownload', build, proj], env=env)
        run(meson + ['compile', '-C', build], env=env)
        sub = os.path.join(build, 'subprojects', 'libvirtio-dev')
        if not os.path.isdir(sub):
            print('FAIL: the subproject was not built under %s' % sub)
            return 1
        if os.path.exists(os.path.join(sub, 'tests')) or \
                os.path.exists(os.path.join(sub, 'examples')):
            print('FAIL: default_options tests=false/examples=false did not reach the '
                  'subproject (found its tests/ or examples/ build dir)')
            return 1
        out = run([os.path.join(build, 'consumer')], env=env)
        want = 'libvirtio-dev %s as a subproject: ok' % version
        if want not in out:
            print('FAIL: consumer printed %r, want %r' % (out, want))
            return 1
    print('OK: libvirtio-dev works as a meson subproject')
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main(sys.argv))
    except RuntimeError as e:
        print('FAIL: %s' % e)
        sys.exit(1)
