#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The exported symbols of the shared library, the version script and the
VDEV_EXPORT declarations of the public headers must name the same set.

usage: check-symbols.py LIBRARY.so VERSION-SCRIPT HEADER...

Also checks: every name starts with vdev_; the version script has one node
per minor release, LIBVIRTIO_DEV_0.1 first with `local: *;`, each later node
chained to the one before it; each symbol carries the version of the node
that lists it; no node is newer than the headers' VDEV_VERSION_MAJOR/MINOR.
"""
import os
import re
import subprocess
import sys

PREFIX = 'vdev_'
NODE_RE = re.compile(r'^LIBVIRTIO_DEV_(\d+)\.(\d+)$')
FIRST_NODE = 'LIBVIRTIO_DEV_0.1'
# nm types of defined global functions and data objects.
FUNC_TYPES = set('TWi')
DATA_TYPES = set('DBRVGS')

errors = []


def fail(msg):
    errors.append(msg)


def strip_c_comments(text):
    text = re.sub(r'/\*.*?\*/', ' ', text, flags=re.S)
    return re.sub(r'//[^\n]*', ' ', text)


def library_symbols(path):
    """{name: (nm type, version)} of the defined dynamic symbols."""
    nm = os.environ.get('NM', 'nm')
    out = subprocess.run([nm, '-D', '--defined-only', path], check=True,
                         stdout=subprocess.PIPE, universal_newlines=True).stdout
    syms = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        kind, name = parts[-2], parts[-1]
        if kind == 'A':  # version node names (LIBVIRTIO_DEV_0.1)
            continue
        if kind not in FUNC_TYPES | DATA_TYPES:
            fail('%s: unexpected dynamic symbol type %s for %s' % (path, kind, name))
            continue
        version = ''
        m = re.match(r'^([^@]+)@@?(.*)$', name)
        if m:
            name, version = m.group(1), m.group(2)
        syms[name] = (kind, version)
    return syms


def version_script(path):
    """[(node, parent, globals, has_local_star)] in file order."""
    text = strip_c_comments(open(path).read())
    text = re.sub(r'#[^\n]*', ' ', text)
    nodes = []
    pos = 0
    node_re = re.compile(r'\s*([A-Za-z0-9_.]+)\s*\{(.*?)\}\s*([A-Za-z0-9_.]*)\s*;', re.S)
    while True:
        m = node_re.match(text, pos)
        if not m:
            break
        name, body, parent = m.group(1), m.group(2), m.group(3) or None
        globs, has_local_star, section = [], False, None
        for stmt in body.split(';'):
            stmt = stmt.strip()
            lm = re.match(r'^(global|local)\s*:\s*(.*)$', stmt, re.S)
            if lm:
                section, stmt = lm.group(1), lm.group(2).strip()
            if not stmt:
                continue
            if section == 'local':
                if stmt == '*':
                    has_local_star = True
                else:
                    fail('%s: node %s: unexpected local entry %r' % (path, name, stmt))
            elif section == 'global':
                if not re.match(r'^[A-Za-z_][A-Za-z0-9_]*$', stmt):
                    fail('%s: node %s: wildcard or odd entry %r (list each symbol)'
                         % (path, name, stmt))
                globs.append(stmt)
            else:
                fail('%s: node %s: entry %r outside global:/local:' % (path, name, stmt))
        nodes.append((name, parent, globs, has_local_star))
        pos = m.end()
    if text[pos:].strip():
        fail('%s: cannot parse from: %r' % (path, text[pos:pos + 60].strip()))
    return nodes


def header_exports(paths):
    """{name: (header, is_function)} of the VDEV_EXPORT declarations."""
    found = {}
    for path in paths:
        text = strip_c_comments(open(path).read())
        # Drop preprocessor lines (the #define of VDEV_EXPORT itself).
        text = re.sub(r'^[ \t]*#(?:[^\n]*\\\n)*[^\n]*', ' ', text, flags=re.M)
        for m in re.finditer(r'\bVDEV_EXPORT\b([^;{]*)', text):
            decl = m.group(1)
            names = [n for n in re.findall(r'([A-Za-z_]\w*)\s*\(', decl)
                     if not n.startswith('__')]
            if names:
                name, is_func = names[0], True
            else:
                ids = re.findall(r'[A-Za-z_]\w*', decl.split('=')[0].split('[')[0])
                if not ids:
                    fail('%s: cannot read the declaration after VDEV_EXPORT: %r'
                         % (path, decl.strip()))
                    continue
                name, is_func = ids[-1], False
            if name in found:
                fail('%s: %s declared VDEV_EXPORT twice (also in %s)'
                     % (path, name, found[name][0]))
            found[name] = (os.path.basename(path), is_func)
    return found


def header_version(paths):
    for path in paths:
        text = open(path).read()
        ma = re.search(r'#define\s+VDEV_VERSION_MAJOR\s+(\d+)', text)
        mi = re.search(r'#define\s+VDEV_VERSION_MINOR\s+(\d+)', text)
        if ma and mi:
            return int(ma.group(1)), int(mi.group(1))
    return None


def show_diff(title_a, a, title_b, b):
    only_a, only_b = sorted(a - b), sorted(b - a)
    if only_a:
        fail('in %s but not in %s:\n    %s' % (title_a, title_b, '\n    '.join(only_a)))
    if only_b:
        fail('in %s but not in %s:\n    %s' % (title_b, title_a, '\n    '.join(only_b)))


def main(argv):
    if len(argv) < 4:
        print(__doc__)
        return 2
    lib, mapfile, headers = argv[1], argv[2], argv[3:]

    syms = library_symbols(lib)
    nodes = version_script(mapfile)
    exports = header_exports(headers)

    # The version script's shape.
    if not nodes:
        fail('%s: no version node found' % mapfile)
    else:
        if nodes[0][0] != FIRST_NODE:
            fail('%s: first node is %s, expected %s' % (mapfile, nodes[0][0], FIRST_NODE))
        if nodes[0][1] is not None:
            fail('%s: first node %s must not inherit' % (mapfile, nodes[0][0]))
        if not nodes[0][3]:
            fail('%s: first node %s lacks `local: *;`' % (mapfile, nodes[0][0]))
        prev_ver = None
        for i, (name, parent, globs, local_star) in enumerate(nodes):
            m = NODE_RE.match(name)
            if not m:
                fail('%s: node name %s is not LIBVIRTIO_DEV_<major>.<minor>' % (mapfile, name))
                continue
            ver = (int(m.group(1)), int(m.group(2)))
            if prev_ver is not None and ver <= prev_ver:
                fail('%s: node %s is not newer than the node before it' % (mapfile, name))
            if i > 0:
                if parent != nodes[i - 1][0]:
                    fail('%s: node %s must be chained to %s (found %s)'
                         % (mapfile, name, nodes[i - 1][0], parent))
                if local_star:
                    fail('%s: only the first node carries `local: *;` (%s has it too)'
                         % (mapfile, name))
            prev_ver = ver
        hv = header_version(headers)
        if hv is None:
            fail('no VDEV_VERSION_MAJOR/MINOR found in the headers')
        elif prev_ver is not None and prev_ver > hv:
            fail('%s: newest node %s is newer than the headers\' version %d.%d'
                 % (mapfile, nodes[-1][0], hv[0], hv[1]))

    map_version = {}
    for name, _, globs, _ in nodes:
        for g in globs:
            if g in map_version:
                fail('%s: %s listed in both %s and %s' % (mapfile, g, map_version[g], name))
            map_version[g] = name

    lib_set, map_set, hdr_set = set(syms), set(map_version), set(exports)
    show_diff('the library (nm -D)', lib_set, 'the version script', map_set)
    show_diff('the version script', map_set, 'the headers (VDEV_EXPORT)', hdr_set)
    show_diff('the library (nm -D)', lib_set, 'the headers (VDEV_EXPORT)', hdr_set)

    for name in sorted(lib_set | map_set | hdr_set):
        if not name.startswith(PREFIX):
            fail('%s does not start with %s' % (name, PREFIX))
    for name in sorted(lib_set & map_set):
        kind, ver = syms[name]
        if ver != map_version[name]:
            fail('%s has version %r in the library, but the version script lists it in %s'
                 % (name, ver, map_version[name]))
    for name in sorted(lib_set & hdr_set):
        kind = syms[name][0]
        is_func = exports[name][1]
        if is_func and kind not in FUNC_TYPES:
            fail('%s is a function in %s but nm type %s in the library'
                 % (name, exports[name][0], kind))
        if not is_func and kind not in DATA_TYPES:
            fail('%s is an object in %s but nm type %s in the library'
                 % (name, exports[name][0], kind))

    print('library: %d symbols, version script: %d in %d node(s), headers: %d VDEV_EXPORT'
          % (len(lib_set), len(map_set), len(nodes), len(hdr_set)))
    if errors:
        print('FAIL: exported symbols, version script and headers disagree:')
        for e in errors:
            print('  - ' + e)
        return 1
    print('OK: the three sets agree')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
