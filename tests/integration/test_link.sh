#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Beacons end to end: a spooling sender (--beacon 0.5) through the seeded
# impairment proxy at 5% loss. The receiver logs link-up, link-down when the
# sender stops cleanly and when it is killed, a new link-up after a restart,
# and an hourly record whose loss matches what the proxy really dropped.
# Then a large object: no link-down while the sender hashes it, and the
# progress bar shows the hashing.
#
# Usage: test_link.sh BUILD_DIR
set -euo pipefail
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh" "$@"

next_ports
start_recv link "$RP" --link-timeout 2 --end-grace 0.5
"$B/sluice-impair" --listen "127.0.0.1:$PP" --to "127.0.0.1:$RP" --drop 5 --seed 4 \
	>"$T/impair.out" 2>/dev/null &
XPID=$!
PIDS+=("$XPID")
sleep 0.2
mkdir -p "$T/out"
spool() {
	"$B/sluice-send" --watch "$T/out" --beacon 0.5 --to "127.0.0.1:$PP" --rate 200m \
		--key "$T/keys/sender/sender.key" --recipient "$T/keys/receiver/receiver.pub" -q &
	SPID=$!
	PIDS+=("$SPID")
}
log=$T/link/inbox/.sluice/receipts.jsonl

spool
check "a beaconing sender brings the link up" wait_receipt link link-up 1
head -c $((6 << 20)) /dev/urandom >"$T/out/a.bin"
check "a file is sent while the link is up" wait_receipt link published 1
kill -TERM "$SPID"
wait_exit "$SPID" 10 || true
check "a clean stop is logged as link-down" wait_receipt link link-down 1
check "with the reason" grep -q '"event":"link-down".*"reason":"the sender stopped"' "$log"

spool
check "a restarted sender is a new link-up" wait_receipt link link-up 2
sleep 2.5 # idle: beacons only, every 0.5 s
kill -9 "$SPID"
wait "$SPID" 2>/dev/null || true
check "a killed sender is logged as link-down after --link-timeout" wait_receipt link link-down 2
check "with the silence as reason" grep -q '"reason":"nothing authenticated for [0-9]* s"' "$log"
ids=$(grep -o '"event":"link-up","sender":"[0-9a-f]*","link":"[0-9a-f]*"' "$log" | sort -u | wc -l)
check "the two runs have different link ids" test "$ids" -eq 2

kill -TERM "$XPID"
wait "$XPID" 2>/dev/null || true
kill -TERM "$RPID"
wait_exit "$RPID" 10 || true
dropped=$(grep '^dropped=' "$T/impair.out" | cut -d= -f2)
lost=$(grep -o '"event":"hourly".*' "$log" | grep -o '"datagrams_lost":[0-9]*' |
	awk -F: "{s += \$2} END {print s + 0}")
sent=$(grep -o '"event":"hourly".*' "$log" | grep -o '"datagrams_sent":[0-9]*' |
	awk -F: "{s += \$2} END {print s + 0}")
echo "# proxy dropped $dropped; hourly records: $sent sent, $lost lost"
check "an hourly record counts the datagrams sent" test "${sent:-0}" -gt 4000
# Exact between beacons: every datagram the sender sent is in its beacon
# count, and every one that arrived is counted, ANNOUNCE copies and the END
# frames that reach an object already published included. Only what the
# proxy dropped after a run's last beacon is in neither count.
check "its loss is what the proxy dropped ($lost of $dropped), never more" \
	test "$lost" -le "$dropped" -a $((dropped - lost)) -le 3
check "idle beacons arrive every half second ($(stat_of link beacon_ok) accepted)" \
	test "$(stat_of link beacon_ok)" -ge 5
check "every datagram is in exactly one counter, and rejected_frames adds up" \
	counters_add_up link

# A large object is hashed before its first frame (seconds per GiB). The
# spool keeps beaconing meanwhile: the receiver must not log the link down.
next_ports
start_recv plan "$RP" --link-timeout 1
mkdir -p "$T/out2"
"$B/sluice-send" --watch "$T/out2" --beacon 0.2 --to "127.0.0.1:$RP" --rate 1g \
	--key "$T/keys/sender/sender.key" --recipient "$T/keys/receiver/receiver.pub" -q \
	--progress 2>"$T/plan.err" &
SPID=$!
PIDS+=("$SPID")
check "the spool brings the link up" wait_receipt plan link-up 1
truncate -s 3G "$T/big.bin" # BLAKE2b alone needs 3 s for it on the fastest host seen
t0=$(date +%s%N)
mv "$T/big.bin" "$T/out2/"
for _ in $(seq 600); do
	[ "$(staging_parts plan)" -gt 0 ] && break
	sleep 0.1
done
waited=$((($(date +%s%N) - t0) / 1000000))
echo "# the transfer began ${waited} ms after the move (2 s of it the spool's settle time)"
check "the hashing pass outlasted the link timeout twice" test "$waited" -gt 4000
check "no link-down while the sender hashed" test "$(receipt_count plan link-down)" -eq 0
check "the progress bar showed the hashing pass, to its end" \
	grep -q 'big.bin hashing 100.0% 3.00 GiB / 3.00 GiB' "$T/plan.err"
kill -9 "$SPID"
wait "$SPID" 2>/dev/null || true
check "the link is logged down once the sender is gone" wait_receipt plan link-down 1
kill -TERM "$RPID"
wait_exit "$RPID" 10 || true
finish
