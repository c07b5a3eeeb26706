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

# Key memory: with a locked-memory limit of 64 KiB (and, as root, without
# CAP_IPC_LOCK), the 16 MiB AES-GCM key pool of --max-sessions 4096 (4096 + 8
# spare contexts of 4 KiB) cannot be locked. The receiver must say so, with
# the limit and the remedy, and not when the pool does fit.
nocap=()
[ "$(id -u)" -eq 0 ] && nocap=(setpriv --bounding-set -ipc_lock --inh-caps -ipc_lock)
memlock_recv() { # LIMIT_BYTES [receiver args]: up for 3 s, then SIGTERM
	local limit=$1
	shift
	mkdir -p "$T/mlock"
	timeout -k 5 3 "${nocap[@]}" prlimit --memlock="$limit" "$B/sluice-recv" \
		--listen "127.0.0.1:$PORT" --inbox "$T/mlock" --key "$T/keys/receiver/receiver.key" \
		--trust "$T/keys/sender/sender.pub" "$@" || true
}
lacks() { ! grep -q "$1" "$2"; }
if command -v prlimit >/dev/null && { [ "$(id -u)" -ne 0 ] || command -v setpriv >/dev/null; }; then
	memlock_recv 65536 --max-sessions 4096 2>"$T/mlock.log"
	check "a key pool that cannot be locked is reported, with the limit and the remedy" \
		grep -q "cannot lock 16416 KiB .*(locked-memory limit 64 KiB).*LimitMEMLOCK=" "$T/mlock.log"
	memlock_recv $((1 << 20)) 2>"$T/mlock2.log"
	check "the default pool fits a 1 MiB limit: no warning" lacks "cannot lock" "$T/mlock2.log"
else
	echo "no prlimit or setpriv: locked-memory warning not tested"
fi

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
	# An inbox the --user account cannot write to is found at start-up, with
	# the remedy, not by failing every object.
	set +e
	timeout -k 5 20 "$B/sluice-recv" --listen "127.0.0.1:$PORT" --inbox "$T/inbox" \
		--key "$T/keys/receiver/receiver.key" --trust "$T/keys/sender/sender.pub" \
		--user nobody --once 2>"$T/ro.log"
	rc=$?
	set -e
	check "an inbox nobody cannot write to: refused at start-up (exit 1)" test "$rc" -eq 1
	check "... saying so, with the remedy" \
		grep -q "cannot create files in the inbox .* as nobody: Permission denied.*chown or chmod" "$T/ro.log"
	check "... and no probe left behind" test -z "$(ls -A "$T/inbox" | grep -v '^\.sluice$')"
	check "... and the receipt log's start is closed by a stop with the reason" \
		grep -q '"event":"stop","reason":"cannot create files in the inbox"' \
		"$T/inbox/.sluice/receipts.jsonl"

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
