#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Crash recovery: the receiver is killed with SIGKILL at each of its crash
# points (common/crashpoint.h, armed by SLUICE_CRASH_AT) in the middle of a
# real transfer, then restarted normally.
#
#   sluice-send ──UDP 127.0.0.1──► sluice-recv (SLUICE_CRASH_AT=POINT) ✝ SIGKILL
#                                  sluice-recv (restart) → cleans staging
#
#   staging-created        staging file just fallocated, nothing written yet
#   before-publish-rename  file complete, verified and fsynced; not yet renamed
#   after-publish-rename   renamed into the inbox; no fsync of the inbox, no
#                          receipt yet
#   before-published-receipt  renamed, inbox fsynced, ledger updated; the
#                          receipt not yet written
#
# The promises checked: the process really died of SIGKILL at that point; the
# inbox never holds a partial file; a restart removes stale staging files and
# says so in its start receipt; a crash after the rename leaves the complete,
# byte-identical file and the restart writes its missing "published" receipt
# from the publication journal (a crash before it, a "failed" one); and the
# receiver then serves new transfers.
#
# Usage: test_crash.sh BUILD_DIR
set -euo pipefail

. "$(dirname "$0")/lib.sh" "$@"

log_verifies() { # LOG: sluice-receipts verify, output kept in $T/verify.out
	"$B/sluice-receipts" verify "$1" --log-pub "$T/keys/receiver/log.pub" >"$T/verify.out" 2>&1
}

head -c $((6 << 20)) /dev/urandom >"$T/data.bin"
head -c $((1 << 20)) /dev/urandom >"$T/small.bin"

for point in staging-created before-publish-rename after-publish-rename \
	before-published-receipt; do
	D=$T/$point
	PORT=$((PORT + 1))
	SLUICE_CRASH_AT=$point start_recv "$point" "$PORT" --end-grace 0.5
	set +e
	send "$PORT" "$T/data.bin" --rate 300m --fec 10% &
	spid=$!
	wait_exit "$RPID" 30
	rrc=$?
	wait "$spid" 2>/dev/null
	set -e
	check "$point: receiver died of SIGKILL (exit status $rrc, want 137)" test "$rrc" -eq 137
	check "$point: the crash point fired" grep -q 'crashpoint: SLUICE_CRASH_AT matched' "$D/recv.log"
	stale=$(staging_parts "$point")
	renamed=0
	case $point in after-publish-rename | before-published-receipt) renamed=1 ;; esac
	if [ "$renamed" = 1 ]; then
		check "$point: the renamed file is in the inbox, complete and identical" \
			cmp -s "$T/data.bin" "$D/inbox/data.bin"
		check "$point: nothing else in the inbox" test "$(inbox_files "$point")" -eq 1
		check "$point: no staging file left behind" test "$stale" -eq 0
		want_removed=0
	else
		check "$point: no file in the inbox after the crash" test "$(inbox_files "$point")" -eq 0
		check "$point: the crash left a staging file ($stale)" test "$stale" -eq 1
		want_removed=1
	fi

	# Restart normally: stale staging removed and recorded.
	start_recv "$point" "$PORT" --end-grace 0.5
	check "$point: restart empties staging" test "$(staging_parts "$point")" -eq 0
	check "$point: start receipt records stale_staging_removed=$want_removed" \
		grep -q "\"event\":\"start\",\"stale_staging_removed\":$want_removed" \
		"$D/inbox/.sluice/receipts.jsonl"
	# The restarted receiver serves a new transfer.
	set +e
	send "$PORT" "$T/small.bin" --rate 200m
	set -e
	for _ in $(seq 50); do [ -e "$D/inbox/small.bin" ] && break; sleep 0.1; done
	check "$point: a transfer after the restart publishes, identical" \
		cmp -s "$T/small.bin" "$D/inbox/small.bin"
	receipts=$D/inbox/.sluice/receipts.jsonl
	if [ "$renamed" = 1 ]; then
		check "$point: the restart writes the missing published receipt" \
			grep -q '"event":"published".*"name":"data.bin".*"recovered":"published just before' \
			"$receipts"
		check "$point: exactly one published receipt for it" \
			test "$(grep -c '"event":"published".*"name":"data.bin"' "$receipts")" -eq 1
		# Sending it again: the same object, logged as a duplicate, never
		# an overwrite.
		set +e
		send "$PORT" "$T/data.bin" --rate 300m
		set -e
		for _ in $(seq 50); do
			grep -q '"event":"duplicate"' "$receipts" && break
			sleep 0.1
		done
		check "$point: resending it is a duplicate, not an overwrite" \
			grep -q '"event":"duplicate".*"name":"data.bin"' "$receipts"
		check "$point: the file is still identical" cmp -s "$T/data.bin" "$D/inbox/data.bin"
	elif [ "$point" = before-publish-rename ]; then
		check "$point: the restart records that the object was not published" \
			grep -q '"event":"failed".*"name":"data.bin".*before it reached the inbox' \
			"$receipts"
	fi
	kill -TERM "$RPID"
	set +e
	wait_exit "$RPID" 10
	trc=$?
	set -e
	check "$point: the restarted receiver stops cleanly on SIGTERM" test "$trc" -eq 0
	check "$point: staging is empty at the end" test "$(staging_parts "$point")" -eq 0
	# The log, written across a SIGKILL, still verifies, checkpoints and all.
	check "$point: the receipt log verifies (chain and signed checkpoints)" \
		log_verifies "$receipts"
done

finish
