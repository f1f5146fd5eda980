#!/bin/bash
# SPDX-License-Identifier: MIT
# Run vdev-loopback and check what it says, not only its exit status.
#   check-output.sh EXE [--negotiated F]... [--not-negotiated F]... [--exit N] -- ARGS...
# Without --exit: expects status 0 and "result: PASS"; each F must (or must
# not) appear on the "features negotiated:" line.
set -u
exe=$1
shift
want=() notwant=() rc_expected=0
while [ $# -gt 0 ]; do
	case $1 in
	--negotiated) want+=("$2"); shift 2 ;;
	--not-negotiated) notwant+=("$2"); shift 2 ;;
	--exit) rc_expected=$2; shift 2 ;;
	--) shift; break ;;
	*) echo "check-output.sh: bad argument $1" >&2; exit 99 ;;
	esac
done

out=$("$exe" "$@" 2>&1)
rc=$?
printf '%s\n' "$out"
if [ "$rc" -ne "$rc_expected" ]; then
	echo "FAILED: exit status $rc, expected $rc_expected"
	exit 1
fi
if [ "$rc_expected" -ne 0 ]; then
	if grep -q '^result: PASS$' <<<"$out"; then
		echo "FAILED: says PASS although it exited $rc"
		exit 1
	fi
	exit 0
fi
grep -q '^result: PASS$' <<<"$out" || { echo 'FAILED: no "result: PASS" line'; exit 1; }
grep -q '^served [1-9][0-9]* requests' <<<"$out" || { echo 'FAILED: no "served" line'; exit 1; }
neg=$(grep '^features negotiated:' <<<"$out") || { echo 'FAILED: no negotiated line'; exit 1; }
for f in VERSION_1 ${want[@]+"${want[@]}"}; do
	grep -qw -- "$f" <<<"$neg" || { echo "FAILED: $f not negotiated"; exit 1; }
done
for f in ${notwant[@]+"${notwant[@]}"}; do
	if grep -qw -- "$f" <<<"$neg"; then
		echo "FAILED: $f negotiated although the flags refused it"
		exit 1
	fi
done
exit 0
