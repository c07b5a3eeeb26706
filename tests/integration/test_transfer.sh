#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# End-to-end transfers with the real binaries over loopback, through the
# seeded impairment proxy:
#
#   sluice-send ──UDP──► sluice-impair (drop/burst/dup/reorder/flip) ──UDP──► sluice-recv
#   (low side)           127.0.0.1:P1                                  127.0.0.1:P2 → inbox
#
# Usage: test_transfer.sh BUILD_DIR. SLUICE_TEST_SIZE_MB sets the size of
# the large transfer (default 256).
set -euo pipefail

SIZE_MB=${SLUICE_TEST_SIZE_MB:-256}
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh" "$@"

# --- 1. large random file, 5% random loss, 10% FEC: published, identical ---
head -c $((SIZE_MB << 20)) /dev/urandom >"$T/big.bin"
next_ports
rp=$RP
pp=$PP
start_recv loss5 "$rp" --once
start_proxy "$pp" "$rp" --drop 5 --seed 11
set +e
send "$pp" "$T/big.bin" --rate 600m --fec 10%
src=$?
wait_exit "$RPID" 120
rrc=$?
set -e
kill "$XPID" 2>/dev/null || true
check "sender exits 0 after sending ${SIZE_MB} MiB" test "$src" -eq 0
check "receiver published (exit 0) with 5% loss and 10% FEC" test "$rrc" -eq 0
# Before anything reads it back: the receiver's drop-behind (writer.c) left
# only the tail of the published file in the page cache (58 of 256 MiB
# when measured; all of it without drop-behind).
if [ "$SIZE_MB" -ge 128 ]; then
	res=$(fincore --bytes --noheadings --output RES "$T/loss5/inbox/big.bin" 2>/dev/null ||
		echo -1)
	check "drop-behind: at most half of the file stays in the page cache ($res bytes)" \
		test "$res" -ge 0 -a "$res" -le $((SIZE_MB << 19))
fi
check "published file is byte-identical" cmp -s "$T/big.bin" "$T/loss5/inbox/big.bin"
check "published file mode is the receiver's (0644)" \
	test "$(stat -c %a "$T/loss5/inbox/big.bin" 2>/dev/null)" = 644
check "receipt says published, with loss and repairs" \
	bash -c "grep '\"event\":\"published\"' '$T/loss5/inbox/.sluice/receipts.jsonl' |
		grep -q '\"frames_repaired\":[1-9]'"
check "receipt records the blake2b-256 of the file" \
	grep -q "$(b2sum -l 256 "$T/big.bin" | cut -c1-64)" "$T/loss5/inbox/.sluice/receipts.jsonl"
check "staging is empty after publication" \
	test -z "$(ls -A "$T/loss5/inbox/.sluice/staging")"

# --- 2. loss far above the FEC budget: nothing published, reason recorded ---
head -c $((16 << 20)) /dev/urandom >"$T/lossy.bin"
next_ports
rp=$RP
pp=$PP
start_recv loss40 "$rp" --once
start_proxy "$pp" "$rp" --drop 40 --seed 3
set +e
send "$pp" "$T/lossy.bin" --rate 300m --fec 10%
wait_exit "$RPID" 60
rrc=$?
set -e
kill "$XPID" 2>/dev/null || true
check "receiver reports failure (exit 1) at 40% loss" test "$rrc" -eq 1
check "nothing published at 40% loss" test "$(inbox_files loss40)" -eq 0
check "receipt says incomplete with how much was missing" \
	bash -c "grep '\"event\":\"incomplete\"' '$T/loss40/inbox/.sluice/receipts.jsonl' |
		grep -q 'symbols_missing_at_least'"
check "staging reclaimed after the incomplete transfer" \
	test -z "$(ls -A "$T/loss40/inbox/.sluice/staging")"

# --- 3. a sender whose key the receiver does not trust ---
head -c $((1 << 20)) /dev/urandom >"$T/evil.bin"
next_ports
rp=$RP
start_recv forged "$rp" --metrics "$T/forged/metrics.prom"
set +e
timeout 60 "$B/sluice-send" --to "127.0.0.1:$rp" --key "$T/keys/intruder/sender.key" \
	--recipient "$T/keys/receiver/receiver.pub" --rate 200m -q "$T/evil.bin"
set -e
sleep 0.5
kill -TERM "$RPID"
wait_exit "$RPID" 10 || true
check "frames from an untrusted key are counted and dropped" \
	test "$(stat_of forged announce_untrusted)" -gt 0
check "frames of the unknown session are counted and dropped" \
	test "$(stat_of forged unknown_session)" -gt 0
check "nothing published from the untrusted key" test "$(inbox_files forged)" -eq 0
check "Prometheus metrics count the untrusted announcements" \
	grep -Eq '^sluice_recv_announce_untrusted_total [1-9]' "$T/forged/metrics.prom"

# --- 4. corruption, duplication, reordering and a burst: still identical ---
head -c $((24 << 20)) /dev/urandom >"$T/mixed.bin"
next_ports
rp=$RP
pp=$PP
start_recv mixed "$rp" --once
start_proxy "$pp" "$rp" --drop 1 --burst-drop 0.01 --burst-len 40 --duplicate 2 \
	--reorder 2 --corrupt 1 --truncate 0.5 --seed 5
set +e
send "$pp" "$T/mixed.bin" --rate 300m --fec 15%
wait_exit "$RPID" 60
rrc=$?
set -e
kill "$XPID" 2>/dev/null || true
check "published through drop+burst+dup+reorder+bit flips+truncation" test "$rrc" -eq 0
check "file identical after impairments" cmp -s "$T/mixed.bin" "$T/mixed/inbox/mixed.bin"
check "corrupted frames were rejected by the AEAD tag" test "$(stat_of mixed bad_tag)" -gt 0
check "truncated frames were rejected by length" \
	test $(($(stat_of mixed bad_length) + $(stat_of mixed bad_header))) -gt 0
check "duplicated frames were recognised" \
	test $(($(stat_of mixed duplicate) + $(stat_of mixed replayed))) -gt 0

# --- 5. kill -9 of the receiver mid-transfer: no partial file, ever ---
next_ports
rp=$RP
start_recv killed "$rp"
# paced so the send lasts about 9 s whatever SIZE_MB is: the kill lands mid-transfer
send "$rp" "$T/big.bin" --rate "${SIZE_MB}m" --fec 10% &
SPID=$!
PIDS+=("$SPID")
staged=0
for _ in $(seq 50); do
	staged=$(find "$T/killed/inbox/.sluice/staging" -name '*.part' | wc -l)
	[ "$staged" -ge 1 ] && break
	sleep 0.1
done
sleep 1
kill -9 "$RPID"
wait "$RPID" 2>/dev/null || true
check "a transfer was in progress in staging when killed" test "$staged" -ge 1
check "no partial file in the inbox after kill -9" test "$(inbox_files killed)" -eq 0
kill "$SPID" 2>/dev/null || true
wait "$SPID" 2>/dev/null || true
start_recv killed "$rp"
kill -TERM "$RPID"
wait_exit "$RPID" 10 || true
check "restart reclaims the stale staging file" \
	test -z "$(ls -A "$T/killed/inbox/.sluice/staging")"
check "restart records what it reclaimed" \
	grep -q '"event":"start".*"stale_staging_removed":1' \
	"$T/killed/inbox/.sluice/receipts.jsonl"
check "still nothing in the inbox after restart" test "$(inbox_files killed)" -eq 0

# --- 7. repeated send and replayed (old-sequence) manifests ---
head -c $((2 << 20)) /dev/urandom >"$T/small.bin"
head -c $((2 << 20)) /dev/urandom >"$T/other.bin"
next_ports
start_recv history "$RP"
send "$RP" "$T/small.bin" --rate 200m
check "first send published" wait_receipt history published 1
send "$RP" "$T/small.bin" --rate 200m
check "the same content sent again is logged as a duplicate" wait_receipt history duplicate 1
check "and not published twice" test "$(inbox_files history)" -eq 1
send "$RP" "$T/other.bin" --rate 200m --sequence 5
check "a manifest with an old sequence is rejected as a replay" wait_receipt history replay 1
check "the replayed object is not published" test ! -e "$T/history/inbox/other.bin"
kill -TERM "$RPID"
wait_exit "$RPID" 10 || true
start_recv history "$RP"
send "$RP" "$T/other.bin" --rate 200m --sequence 6
check "the sequence floor survives a restart" wait_receipt history replay 2
send "$RP" "$T/other.bin" --rate 200m
check "a fresh sequence from the same sender is accepted" wait_receipt history published 2
kill -TERM "$RPID"
wait_exit "$RPID" 10 || true

# --- 8. a resend completes an object that a lossy send left incomplete ---
# Loss bursts (600 frames) beat the FEC of some groups in each send;
# the receiver keeps the blocks it verified (also across a restart) and the
# next send of the same content needs only the rest.
head -c $((16 << 20)) /dev/urandom >"$T/resume.bin"
next_ports
rp=$RP
pp=$PP
start_recv resume "$rp" --session-timeout 2
for seed in 1 2 3 4 5; do
	start_proxy "$pp" "$rp" --burst-drop 0.015 --burst-len 600 --drop 2 --seed "$seed"
	send "$pp" "$T/resume.bin" --rate 300m --fec 10%
	for _ in $(seq 40); do # the session ends: published, or incomplete after 2 s
		[ $(($(receipt_count resume published) + $(receipt_count resume incomplete))) -ge "$seed" ] &&
			break
		sleep 0.1
	done
	kill "$XPID" 2>/dev/null || true
	wait "$XPID" 2>/dev/null || true
	[ "$(receipt_count resume published)" -ge 1 ] && break
	if [ "$seed" = 1 ]; then # the kept blocks survive a restart
		kill -TERM "$RPID"
		wait_exit "$RPID" 10 || true
		start_recv resume "$rp" --session-timeout 2
	fi
done
check "the first lossy send was incomplete and kept its verified blocks" \
	grep -q '"event":"incomplete".*"blocks_kept_for_resend":[1-9]' \
	"$T/resume/inbox/.sluice/receipts.jsonl"
check "a later send resumed from them and published" \
	grep -q '"event":"published".*"blocks_resumed":[1-9]' "$T/resume/inbox/.sluice/receipts.jsonl"
check "the resumed object is identical" cmp -s "$T/resume.bin" "$T/resume/inbox/resume.bin"
check "no partial is left once published" \
	test -z "$(ls -A "$T/resume/inbox/.sluice/partial" 2>/dev/null)"
kill -TERM "$RPID"
wait_exit "$RPID" 10 || true

# --- 9. a receiver that starts in the middle of a send ---
# It misses the first announcements and blocks. The repeated announcement
# and the manifest carousel let it join; blocks decoded before the manifest
# is complete are written at once and checked against their block hashes
# when it has verified (the content stream waits for it), and the second
# pass brings what was missed.
head -c $((16 << 20)) /dev/urandom >"$T/late.bin"
next_ports
mkdir -p "$T/late"
send "$RP" "$T/late.bin" --rate 60m --repeat 2 &
lpid=$!
PIDS+=("$lpid")
sleep 1
start_recv late "$RP" --once
set +e
wait "$lpid"
src=$?
wait_exit "$RPID" 30
rrc=$?
set -e
check "sender of the late-joined transfer exits 0" test "$src" -eq 0
check "a receiver that joined mid-send published (exit 0)" test "$rrc" -eq 0
check "the late-joined object is identical" cmp -s "$T/late.bin" "$T/late/inbox/late.bin"

# --- 6. an object larger than 4 GiB (offsets past 32 bits) ---
# Sparse, with random data at the start and past the 4 GiB mark, so every
# 64-bit offset path is exercised without moving 4 GiB of random bytes.
if [ "${SLUICE_TEST_LARGE:-$([ "$SIZE_MB" -ge 256 ] && echo 1 || echo 0)}" = 1 ]; then
	big=$T/large.img
	truncate -s $((4608 << 20)) "$big"
	head -c $((3 << 20)) /dev/urandom | dd of="$big" conv=notrunc status=none
	head -c $((3 << 20)) /dev/urandom | dd of="$big" bs=1M seek=4400 conv=notrunc status=none
	next_ports
	start_recv large "$RP" --once --session-timeout 120
	set +e
	# Uncompressed, so the rate limit applies to every byte the receiver
	# must hash and write (zeros would compress 1000:1 and outrun it), and
	# at 700 Mb/s, below what this machine's disk absorbs: the receiver is
	# single-threaded and a writeback stall turns into a loss burst.
	send "$RP" "$big" --rate 700m --fec 10% --no-compress
	wait_exit "$RPID" 240
	rrc=$?
	set -e
	check "a 4.5 GiB object published" test "$rrc" -eq 0
	check "the 4.5 GiB object is identical" cmp -s "$big" "$T/large/inbox/large.img"
	rm -f "$big" "$T/large/inbox/large.img"
fi

finish
