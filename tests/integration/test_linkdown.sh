#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A spool-mode sender (--watch) outlives a link that goes down and comes
# back: the low side's interface is down when a file is dropped in the
# outbox, so every send fails with "Network is unreachable"; the file stays
# in the outbox and is retried; once the interface is up again the next try
# delivers it, without restarting sluice-send. Beacons stop while the link
# is down and resume after it (the receiver records link-up).
#
#   ┌─ netns sl-linkdown-low-N ─────┐        ┌─ netns sl-linkdown-high-N ─────┐
#   │ sluice-send --watch --beacon  │        │ sluice-recv --listen 10.92.0.2 │
#   │   └─► veth-low 10.92.0.1/24 ──┼─veth───┼─► veth-high 10.92.0.2/24       │
#   │       (set down, then up)     │        │     → inbox, receipts          │
#   └───────────────────────────────┘        └────────────────────────────────┘
#
# Needs root (ip netns add); otherwise skipped (exit 77).
# Usage: test_linkdown.sh BUILD_DIR
set -euo pipefail

# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh" "$@"
# veth-low stays down for now: no route to 10.92.0.0/24 from the low side.
netns_pair linkdown 10.92.0

mkdir -p "$T/inbox" "$T/outbox"
R=$T/inbox/.sluice/receipts.jsonl
ip netns exec "$HIGH" "$B/sluice-recv" --listen 10.92.0.2:7000 --inbox "$T/inbox" \
	--key "$T/keys/receiver/receiver.key" --trust "$T/keys/sender/sender.pub" \
	--end-grace 0.3 --session-timeout 20 --link-timeout 3 -q 2>>"$T/recv.log" &
RPID=$!
PIDS+=("$RPID")
ip netns exec "$LOW" "$B/sluice-send" --watch "$T/outbox" --to 10.92.0.2:7000 --rate 300m \
	--retry 1 --beacon 0.5 --key "$T/keys/sender/sender.key" \
	--recipient "$T/keys/receiver/receiver.pub" >>"$T/send.out" 2>>"$T/send.err" &
SPID=$!
PIDS+=("$SPID")

head -c $((2 << 20)) /dev/urandom >"$T/outbox/while-down.bin"
tries() { grep -c 'while-down.bin stays in the outbox' "$T/send.err" || true; }
for _ in $(seq 100); do
	[ "$(tries)" -ge 2 ] && break
	sleep 0.1
done
check "with the link down the send fails and is retried ($(tries) tries)" test "$(tries)" -ge 2
check "the reason is in the log" grep -q 'Network is unreachable' "$T/send.err"
check "the file stays in the outbox" test -e "$T/outbox/while-down.bin" -a ! -e "$T/inbox/while-down.bin"
check "the sender keeps running" kill -0 "$SPID"

netns_low_up
for _ in $(seq 100); do
	[ -e "$T/outbox/sent/while-down.bin" ] && break
	sleep 0.1
done
check "once the link is back the next try delivers it" \
	cmp -s "$T/outbox/sent/while-down.bin" "$T/inbox/while-down.bin"
head -c $((1 << 20)) /dev/urandom >"$T/after.bin"
cp "$T/after.bin" "$T/outbox/after.bin"
for _ in $(seq 100); do
	[ -e "$T/inbox/after.bin" ] && break
	sleep 0.1
done
check "and the next file goes through too" cmp -s "$T/after.bin" "$T/inbox/after.bin"
for _ in $(seq 50); do
	grep -q '"event":"link-up"' "$R" 2>/dev/null && break
	sleep 0.1
done
check "beacons reach the receiver again (link-up recorded)" grep -q '"event":"link-up"' "$R"

kill -TERM "$SPID"
set +e
wait_exit "$SPID" 10
rc=$?
set -e
check "the sender stops cleanly on SIGTERM (status $rc)" test "$rc" -eq 0
kill -TERM "$RPID"
wait_exit "$RPID" 10 || true
if [ "$failed" -ne 0 ]; then
	echo "# sender log:"
	sed 's/^/#   /' "$T/send.err" | tail -20
	echo "# receiver log:"
	sed 's/^/#   /' "$T/recv.log" | tail -20
fi
finish
