#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Compile one public header alone, as C11 and as C++11, warnings as errors.

usage: check-header.py HEADER INCLUDE-DIR --cc CC... [--cxx CXX...]

The translation unit includes only <virtio-dev/NAME.h>, so the header must be
self-contained; it is included twice to prove the include guard. Exits 0 when
both compile, 1 naming the header and language otherwise, 77 when there is no
C++ compiler.
"""
import os
import re
import subprocess
import sys
import tempfile

C_FLAGS = ['-std=c11', '-Wall', '-Wextra', '-pedantic', '-Werror',
           '-Wstrict-prototypes', '-Wmissing-prototypes', '-Wshadow', '-Wundef']
CXX_FLAGS = ['-std=c++11', '-Wall', '-Wextra', '-pedantic', '-Werror', '-Wshadow', '-Wundef',
             '-Wold-style-cast']


def split_args(argv):
    header, incdir = argv[1], argv[2]
    cc, cxx, cur = [], [], None
    for a in argv[3:]:
        if a == '--cc':
            cur = cc
        elif a == '--cxx':
            cur = cxx
        elif cur is not None:
            cur.append(a)
    return header, incdir, cc, cxx


INIT_RE = re.compile(r'^#define (VDEV_[A-Z0-9_]+_INIT) .*?(?:sizeof\(|VDEV_STRUCT_INIT\()(struct [a-z0-9_]+)\)', re.M)


def init_uses(incdir, name):
    """Every VDEV_*_INIT macro of the header, expanded into a variable, so the
    macros themselves must compile warning-free (-Wmissing-field-initializers
    included) in both languages."""
    with open(os.path.join(incdir, 'virtio-dev', name)) as f:
        text = f.read()
    seen, lines = set(), []
    for macro, typ in INIT_RE.findall(text):
        if macro in seen:
            continue
        seen.add(macro)
        lines.append('\t{ %s v = %s; n += v.struct_size != 0; }' % (typ, macro))
    return lines


def compile_tu(compiler, flags, incdir, name, suffix, tmp):
    src = os.path.join(tmp, 'tu-' + name.replace('.', '_') + suffix)
    with open(src, 'w') as f:
        f.write('/* generated: the header alone */\n'
                '#include <virtio-dev/%s>\n#include <virtio-dev/%s>\n'
                'int vdi_header_check_tu(void);\n'
                'int vdi_header_check_tu(void)\n{\n\tint n = 0;\n%s\n\treturn n;\n}\n'
                % (name, name, '\n'.join(init_uses(incdir, name))))
    cmd = compiler + flags + ['-I', incdir, '-c', src, '-o', src + '.o']
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True)
    return r.returncode, ' '.join(cmd), r.stdout


def main(argv):
    if len(argv) < 5:
        print(__doc__)
        return 2
    header, incdir, cc, cxx = split_args(argv)
    name = os.path.basename(header)
    # The test compiles against the source tree's include/ directory.
    if not os.path.exists(os.path.join(incdir, 'virtio-dev', name)):
        print('FAIL: %s is not under %s/virtio-dev/' % (name, incdir))
        return 1
    failed = []
    with tempfile.TemporaryDirectory(prefix='vdev-hdr-') as tmp:
        for lang, compiler, flags, suffix in (('C11', cc, C_FLAGS, '.c'),
                                              ('C++11', cxx, CXX_FLAGS, '.cpp')):
            if not compiler:
                print('%s: no %s compiler given, not checked' % (name, lang))
                continue
            rc, cmd, out = compile_tu(compiler, flags, incdir, name, suffix, tmp)
            print('%s as %s: %s' % (name, lang, 'ok' if rc == 0 else 'FAILED'))
            if rc != 0:
                print('  $ ' + cmd)
                print(out)
                failed.append(lang)
    if failed:
        print('FAIL: public header %s does not compile alone as %s'
              % (name, ' and '.join(failed)))
        return 1
    if not cxx:
        print('SKIP: %s: no C++ compiler (install g++) to check it as C++' % name)
        return 77
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
