#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A receiver that falls behind loses frames itself, and its receipt must say
# so: the link is not to blame. The receiver is stopped (SIGSTOP) for 0.6 s
# early in a transfer of about 2 s, with a 1 MiB socket buffer, so the kernel
# drops most of what arrives meanwhile (counted through SO_RXQ_OVFL, in
# packets: on loopback each is a GSO train of about 44 datagrams). The
# object cannot be decoded; the "incomplete" receipt must carry socket_drops
# and say what to change. A second transfer with nothing in the way must
# publish, without such fields.
#
#   sluice-send --rate 400m ──UDP 127.0.0.1──► sluice-recv --rcvbuf 1m (stopped 0.6 s)
#
# The sender's END frames come after the stop, so the receiver learns that
# the sender finished and fails the object at once.
set -euo pipefail
. "$(dirname "$0")/lib.sh" "$@"

head -c $((80 << 20)) /dev/urandom >"$T/big.bin"
head -c $((2 << 20)) /dev/urandom >"$T/small.bin"
next_ports
start_recv over "$RP" --rcvbuf 1m
log=$T/over/inbox/.sluice/receipts.jsonl

send "$RP" "$T/big.bin" --rate 400m &
SPID=$!
PIDS+=("$SPID")
# The session exists once its staging file does; then stop the receiver.
for _ in $(seq 200); do
	[ "$(staging_parts over)" -gt 0 ] && break
	sleep 0.02
done
check "the transfer began" test "$(staging_parts over)" -gt 0
kill -STOP "$RPID"
sleep 0.6
kill -CONT "$RPID"
wait "$SPID" || true
check "the object is recorded incomplete" wait_receipt over incomplete 1
rec=$(grep '"event":"incomplete"' "$log" | tail -1)
echo "# $rec"
dropped=$(echo "$rec" | grep -o '"socket_drops":[0-9]*' | cut -d: -f2)
lost=$(echo "$rec" | grep -o '"frames_lost":[0-9]*' | cut -d: -f2)
check "the receipt counts the packets the receiver's socket dropped (${dropped:-none})" \
	test "${dropped:-0}" -gt 10
check "each held at least one of the lost frames (${lost:-none})" \
	test "${dropped:-0}" -le "${lost:-0}"
check "the reason says the receiver fell behind, and what to change" \
	grep -q '"reason":"sender finished but .*this receiver fell behind.*--rate' "$log"
check "nothing of it in the inbox" test "$(inbox_files over)" -eq 0

check "a transfer with nothing in the way is published" send "$RP" "$T/small.bin" --rate 200m
check "... published" wait_receipt over published 1
check "... and its receipt counts no drops of the receiver's own" \
	test -z "$(grep '"event":"published"' "$log" | grep -o '"\(socket_drops\|ring_dropped\|groups_evicted\)"' || true)"
kill -TERM "$RPID"
wait_exit "$RPID" 10 || true
check "the socket drops are in --stats ($(stat_of over socket_drops))" \
	test "$(stat_of over socket_drops)" -ge "${dropped:-1}"
finish
