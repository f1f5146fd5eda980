#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Public struct layouts: the baseline's members must be a prefix of today's.

usage: check-layout.py BASELINE.abi CURRENT.abi PUBLIC-HEADER-NAMES...

Both files are abidw XML. For every struct defined in a public header (by
file name) in the baseline, today's struct must exist and start with exactly
the same members: same names, same types, same bit offsets. New members may
only follow them (the struct_size rule of doc/abi.md). abidiff's own
"members inserted at the end" suppression is too lenient for this (it also
hides reordered members), so this check complements it.
"""
import sys
import xml.etree.ElementTree as ET


def index(path):
    root = ET.parse(path).getroot()
    types = {}
    for el in root.iter():
        tid = el.get('id')
        if tid is not None and tid not in types:
            types[tid] = el
    return root, types


def type_name(types, tid, depth=0):
    el = types.get(tid)
    if el is None or depth > 20:
        return '?'
    tag = el.tag
    sub = lambda t: type_name(types, t, depth + 1)
    if tag in ('type-decl', 'typedef-decl', 'enum-decl'):
        return el.get('name')
    if tag in ('class-decl', 'union-decl'):
        return ('union ' if tag == 'union-decl' else 'struct ') + (el.get('name') or '<anon>')
    if tag == 'pointer-type-def':
        return sub(el.get('type-id')) + '*'
    if tag == 'reference-type-def':
        return sub(el.get('type-id')) + '&'
    if tag == 'qualified-type-def':
        quals = [q for q in ('const', 'volatile', 'restrict') if el.get(q) == 'yes']
        return ' '.join(quals + [sub(el.get('type-id'))])
    if tag == 'array-type-def':
        dims = ''.join('[%s]' % (s.get('length') or '') for s in el.findall('subrange'))
        return sub(el.get('type-id')) + dims
    if tag == 'function-type':
        params = [sub(p.get('type-id')) if p.get('type-id') else '...'
                  for p in el.findall('parameter')]
        ret = el.find('return')
        return '%s(%s)' % (sub(ret.get('type-id')) if ret is not None else 'void',
                           ', '.join(params))
    return tag


def public_structs(path, headers):
    root, types = index(path)
    out = {}
    for el in root.iter('class-decl'):
        name = el.get('name')
        if not name or el.get('is-declaration-only') == 'yes':
            continue
        if (el.get('filepath') or '').split('/')[-1] not in headers:
            continue
        if name in out:
            continue
        members = []
        for dm in el.findall('data-member'):
            var = dm.find('var-decl')
            members.append((var.get('name'), type_name(types, var.get('type-id')),
                            int(dm.get('layout-offset-in-bits', '0'))))
        out[name] = members
    return out


def main(argv):
    if len(argv) < 4:
        print(__doc__)
        return 2
    headers = set(argv[3:])
    old = public_structs(argv[1], headers)
    new = public_structs(argv[2], headers)
    bad = 0
    for name in sorted(old):
        if name not in new:
            print('struct %s: in the baseline, no longer reachable from the exported '
                  'functions' % name)
            bad += 1
            continue
        o, n = old[name], new[name]
        if n[:len(o)] != o:
            bad += 1
            print('struct %s: existing members changed (only appending is allowed):' % name)
            for i in range(max(len(o), len(n))):
                a = o[i] if i < len(o) else None
                b = n[i] if i < len(n) else None
                mark = '  ' if a == b else '! '
                print('  %s%-50s -> %s' % (mark, '%s %s @%d' % (a[1], a[0], a[2]) if a else '-',
                                           '%s %s @%d' % (b[1], b[0], b[2]) if b else '-'))
        elif len(n) > len(o):
            print('struct %s: %d member(s) appended: %s' % (
                name, len(n) - len(o), ', '.join(m[0] for m in n[len(o):])))
    print('%d public struct(s) in the baseline, %d changed incompatibly' % (len(old), bad))
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
