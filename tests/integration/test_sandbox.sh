#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The receiver's sandbox: after start-up it must not be able to read
# /etc/shadow, create files outside its inbox and state directories, open
# sockets or run programs; with --user it runs unprivileged and still
# receives and publishes.
#
#   sluice-send ──UDP 127.0.0.1──► sluice-recv --user nobody (Landlock + seccomp)
set -euo pipefail

. "$(dirname "$0")/lib.sh" "$@"
chmod 755 "$T"
mkdir -p "$T/inbox" "$T/probe"
recv() {
	"$B/sluice-recv" --listen "127.0.0.1:$PORT" --inbox "$T/inbox" \
		--key "$T/keys/receiver/receiver.key" --trust "$T/keys/sender/sender.pub" "$@"
}

set +e
timeout -k 5 20 "$B/sluice-recv" --listen "127.0.0.1:$PORT" --inbox "$T/inbox" \
	--key "$T/keys/receiver/receiver.key" --trust "$T/keys/sender/sender.pub" \
	--sandbox-selftest "$T/probe" -q 2>"$T/selftest.log"
rc=$?
set -e
cat "$T/selftest.log"
if [ "$rc" -eq 77 ]; then
	echo "this build applies no sandbox (sanitizer build): skipped"
	exit 77
fi
check "sandbox self-test: every escape attempt refused" test "$rc" -eq 0
check "/etc/shadow could not be opened" grep -q "open /etc/shadow: Permission denied" "$T/selftest.log"
check "no file created outside the allowed directories" test -z "$(ls -A "$T/probe")"
check "no program could be started" grep -q "exec /bin/false: Operation not permitted" "$T/selftest.log"

if [ "$(id -u)" -ne 0 ] || ! id nobody >/dev/null 2>&1; then
	echo "not root or no 'nobody' user: privilege drop not tested"
else
	chown nobody "$T/inbox"
	head -c $((3 << 20)) /dev/urandom >"$T/file.bin"
	recv --user nobody --once -q 2>"$T/recv.log" &
	RPID=$!
	PIDS+=("$RPID")
	sleep 0.5
	send "$PORT" "$T/file.bin" --rate 200m
	set +e
	wait_exit "$RPID" 30
	rc=$?
	set -e
	check "receiver running as nobody published the file" test "$rc" -eq 0
	check "published file is identical" cmp -s "$T/file.bin" "$T/inbox/file.bin"
	check "published by the unprivileged user" test "$(stat -c %U "$T/inbox/file.bin")" = nobody
fi

finish
