# SPDX-License-Identifier: MIT
#
# Helpers for guest test scripts (/lib/vdev-guest.sh in the guest; a script
# starts with ". /lib/vdev-guest.sh"). Results go to the console as lines
# "@@VDEV <kind> <words>", read by scripts/linux-guest/guestrun.py:
#   ok NAME            a check passed
#   fail NAME WHY      a check failed (the script goes on; its status is 1)
#   kv KEY=VALUE       a measurement for the host
#   wait TAG           the guest waits for one line from the host ("go")
vdev_status=0

mark() { echo "@@VDEV $*"; }
ok() { mark ok "$1"; }
fail() {
	mark fail "$@"
	vdev_status=1
}
kv() { mark kv "$1=$2"; }

# check NAME COMMAND...: ok NAME when COMMAND succeeds, fail otherwise.
check() {
	_name=$1
	shift
	if "$@"; then
		ok "$_name"
	else
		fail "$_name" "exit status $? from: $*"
	fi
}

# check_fails NAME COMMAND...: ok NAME when COMMAND fails.
check_fails() {
	_name=$1
	shift
	if "$@"; then
		fail "$_name" "succeeded but should fail: $*"
	else
		ok "$_name"
	fi
}

# host_wait TAG: tell the host we reached TAG and block until it answers.
host_wait() {
	mark wait "$1"
	if ! read -r _reply; then
		fail "wait-$1" "console closed"
		return 1
	fi
	_reply=$(echo "$_reply" | tr -d '\r')
	[ "$_reply" = go ] || { fail "wait-$1" "host answered '$_reply'"; return 1; }
}

# wait_dev PATH [SECONDS]: the device node appears (probing is asynchronous).
wait_dev() {
	_n=$((${2:-10} * 10))
	while [ ! -b "$1" ] && [ "$_n" -gt 0 ]; do
		usleep 100000
		_n=$((_n - 1))
	done
	[ -b "$1" ]
}

# finish: the script's exit status (1 when any check failed).
finish() { exit "$vdev_status"; }
