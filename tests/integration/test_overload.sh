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
check "... which is not the disk here" \
	test -z "$(grep '"event":"incomplete"' "$log" | grep 'disk is the limit' || true)"
check "nothing of it in the inbox" test "$(inbox_files over)" -eq 0

check "a transfer with nothing in the way is published" send "$RP" "$T/small.bin" --rate 200m
check "... published" wait_receipt over published 1
check "... and its receipt counts no drops of the receiver's own" \
	test -z "$(grep '"event":"published"' "$log" | grep -o '"\(socket_drops\|ring_dropped\|groups_evicted\)"' || true)"
kill -TERM "$RPID"
wait_exit "$RPID" 10 || true
check "the socket drops are in --stats ($(stat_of over socket_drops))" \
	test "$(stat_of over socket_drops)" -ge "${dropped:-1}"

# --- a disk slower than the rate ---
# The LD_PRELOAD shim pwrite_shim.c makes every staging write (64 KiB or
# more) wait 20 ms first: a disk of about 9 MB/s, fed 25 MB/s. With the smallest
# --memory and --ring the receiver falls behind at once; the receipt must
# name the disk, not the CPU settings, as what to change.
if ! ${CC:-cc} -shared -fPIC -O1 -o "$T/slow.so" "$(dirname "$0")/pwrite_shim.c" -ldl 2>"$T/slow.err"; then
	echo "# skip: the slow-disk case needs a C compiler for its shim"
else
	head -c $((32 << 20)) /dev/urandom >"$T/slowdisk.bin"
	next_ports
	export LD_PRELOAD="$T/slow.so" SHIM_DELAY_US=20000
	export ASAN_OPTIONS="${ASAN_OPTIONS:-}:verify_asan_link_order=0"
	start_recv slow "$RP" --memory 8 --ring 2
	unset LD_PRELOAD SHIM_DELAY_US
	slog=$T/slow/inbox/.sluice/receipts.jsonl
	send "$RP" "$T/slowdisk.bin" --rate 200m || true
	for _ in $(seq 300); do
		grep -q '"event":"\(incomplete\|published\)"' "$slog" 2>/dev/null && break
		sleep 0.1
	done
	if grep -q '"event":"published"' "$slog"; then
		# e.g. a sanitizer runtime that intercepts pwrite before any
		# LD_PRELOAD library can
		echo "# skip: the slow-disk shim did not take effect in this build"
	else
		grep '"event":"incomplete"' "$slog" | tail -1 | sed 's/^/# /'
		check "a disk slower than the rate: incomplete, and the reason names the disk" \
			grep -q '"event":"incomplete".*"reason":"sender finished but .*(socket_drops, ring_dropped, groups_evicted): the disk is the limit, it waited [0-9.]* s for it: keep the sender.s --rate under the disk.s sustained write speed' "$slog"
		check "... nothing of it in the inbox" test "$(inbox_files slow)" -eq 0
	fi
fi
finish
