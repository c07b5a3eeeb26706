#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A source that changes while sluice-send sends it, in a part not yet sent:
# the receiver publishes nothing of it (those blocks no longer match the
# signed manifest), and the sender says so with exit status 1 instead of
# "sent", so that cron and spool mode try again:
#   - a file overwritten near its end during the send (same size);
#   - a file cut short during the send;
#   - a bundle one of whose files is overwritten likewise.
#
# Usage: test_changing.sh BUILD_DIR
set -euo pipefail
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh" "$@"

next_ports
start_recv chg "$RP" --end-grace 0.3 --session-timeout 5
inbox=$T/chg/inbox

# wait_receipt_match NAME REGEX: up to 10 s for a receipt matching REGEX
wait_receipt_match() {
	for _ in $(seq 100); do
		grep -q "$2" "$T/$1/inbox/.sluice/receipts.jsonl" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# send_changing FILE ACTION...: send FILE at 100 Mb/s and run ACTION half a
# second in. By then the sender has read about 9 MiB: some 5 on the wire,
# 2 queued for the transmit thread, the rest read ahead; so each change
# below is 14 MiB or more into the object (16 MiB: about 1.4 s of frames).
send_changing() {
	local file=$1 rc=0
	shift
	send "$RP" "$file" --rate 100m 2>"$T/send.err" &
	local spid=$!
	sleep 0.5
	"$@"
	wait "$spid" || rc=$?
	return "$rc"
}

head -c $((16 << 20)) /dev/urandom >"$T/overwritten.bin"
set +e
send_changing "$T/overwritten.bin" \
	dd if=/dev/urandom of="$T/overwritten.bin" bs=1M seek=14 count=1 conv=notrunc status=none
rc=$?
set -e
check "a file overwritten during the send: exit 1 (status $rc)" test "$rc" -eq 1
check "... saying it was written to, and to send it again" \
	grep -q "overwritten.bin was written to while it was sent.*send it again" "$T/send.err"
check "... and the receiver refuses it: a block does not match the manifest" \
	wait_receipt_match chg '"event":"rejected".*"name":"overwritten.bin".*does not match'
check "... and nothing of it is published" test ! -e "$inbox/overwritten.bin"

head -c $((16 << 20)) /dev/urandom >"$T/cut.bin"
set +e
send_changing "$T/cut.bin" truncate -s $((4 << 20)) "$T/cut.bin"
rc=$?
set -e
check "a file cut short during the send: exit 1 (status $rc)" test "$rc" -eq 1
check "... saying it changed size while it was sent" \
	grep -q "cannot read .*cut.bin while sending it: a file is shorter or longer" "$T/send.err"
check "... and nothing of it is published" test ! -e "$inbox/cut.bin"

mkdir -p "$T/tree/sub"
head -c $((20 << 20)) /dev/urandom >"$T/tree/sub/big.bin"
echo small >"$T/tree/small.txt"
set +e
send_changing "$T/tree/" \
	dd if=/dev/urandom of="$T/tree/sub/big.bin" bs=1M seek=18 count=1 conv=notrunc status=none
rc=$?
set -e
check "a bundle with a file overwritten during the send: exit 1 (status $rc)" test "$rc" -eq 1
check "... naming that file" grep -q "tree/sub/big.bin was written to while it was sent" "$T/send.err"
check "... and the receiver refuses it" \
	wait_receipt_match chg '"event":"rejected".*"name":"tree".*does not match'

# and an unchanged file still goes through, exit 0
head -c $((2 << 20)) /dev/urandom >"$T/steady.bin"
check "an unchanged file is sent, exit 0" send "$RP" "$T/steady.bin" --rate 100m
wait_receipt chg published 1 || true
check "... and published identical" cmp -s "$T/steady.bin" "$inbox/steady.bin"
check "none of the changed sources was published" \
	test ! -e "$inbox/overwritten.bin" -a ! -e "$inbox/cut.bin" -a ! -e "$inbox/tree"
finish
