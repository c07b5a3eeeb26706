#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A full disk on the high side. The receiver's inbox (and so its state,
# staging and receipt log) lives on a 20 MiB tmpfs in a private mount
# namespace:
#
#   sluice-send ──UDP 127.0.0.1──► sluice-recv ──► INBOX on tmpfs (size=20m)
#                                                  └─ .sluice/{staging,receipts.jsonl}
#
# 1. an object bigger than the free space: refused up front, a "rejected"
#    receipt with a reason about disk space, nothing in the inbox, staging
#    empty;
# 2. an object that fits but would leave less than the receiver's 16 MiB
#    reserve: refused the same way;
# 3. a small object afterwards still publishes, identical;
# 4. the disk filled up by someone else while a transfer is under way: the
#    space reserved (fallocate) at the start carries the transfer through.
# 5. pwrite failing with ENOSPC or EIO while a block is stored (injected by
#    an LD_PRELOAD shim built with $CC): a "failed" receipt with the reason,
#    nothing published, the staging file discarded.
#
# Needs root (mount) and unshare(1); otherwise skipped (exit 77).
# Usage: test_diskfull.sh BUILD_DIR
set -euo pipefail

skip() {
	echo "test_diskfull: SKIP: $*"
	exit 77
}
# Re-run in a private mount namespace so the tmpfs is nobody else's business
# and disappears with us.
if [ -z "${SLUICE_DISKFULL_NS:-}" ]; then
	[ "$(id -u)" -eq 0 ] || skip "needs root to mount a tmpfs (unshare -m + mount)"
	command -v unshare >/dev/null || skip "unshare(1) is not installed"
	unshare -m --propagation private true 2>/dev/null ||
		skip "unshare -m is not permitted here (container without CAP_SYS_ADMIN?)"
	SLUICE_DISKFULL_NS=1 exec unshare -m --propagation private bash "$0" "$@"
fi

. "$(dirname "$0")/lib.sh" "$@"
on_cleanup() { umount "$T/fs" 2>/dev/null || true; }

# The receiver's inbox, staging and receipt log are on the tmpfs, its log and
# stats are not; the inbox is $T/fs/inbox, so lib.sh's helpers call it "fs".
mkdir -p "$T/fs"
mount -t tmpfs -o size=20m,mode=0755 tmpfs "$T/fs" 2>/dev/null || skip "cannot mount a tmpfs"
mkdir "$T/fs/inbox"
I=$T/fs/inbox
R=$I/.sluice/receipts.jsonl

"$B/sluice-recv" --listen "127.0.0.1:$PORT" --inbox "$I" \
	--key "$T/keys/receiver/receiver.key" --trust "$T/keys/sender/sender.pub" \
	--end-grace 0.5 --stats "$T/stats" -q 2>"$T/recv.log" &
RPID=$!
PIDS+=("$RPID")
sleep 0.3

staging_empty() { [ -z "$(ls -A "$I/.sluice/staging")" ]; }

# --- 1. bigger than the filesystem ---
head -c $((32 << 20)) /dev/urandom >"$T/huge.bin"
send "$PORT" "$T/huge.bin" --rate 500m || true
check "a 32 MiB object on a 20 MiB filesystem is refused with a receipt" wait_receipt fs rejected 1
check "the receipt's reason is about disk space" \
	grep -q '"event":"rejected".*"reason":"[^"]*disk space' "$R"
check "the receipt names the object's size" grep -q "\"event\":\"rejected\".*\"size\":$((32 << 20))" "$R"
check "nothing in the inbox" test "$(inbox_files fs)" -eq 0
check "staging is empty" staging_empty

# --- 2. fits, but not with the 16 MiB the receiver keeps free ---
head -c $((8 << 20)) /dev/urandom >"$T/mid.bin"
send "$PORT" "$T/mid.bin" --rate 500m || true
check "an 8 MiB object that would eat the 16 MiB reserve is refused" wait_receipt fs rejected 2
check "nothing in the inbox after the second refusal" test "$(inbox_files fs)" -eq 0
check "staging is still empty" staging_empty

# --- 3. a small object still publishes ---
head -c $((1 << 20)) /dev/urandom >"$T/small.bin"
send "$PORT" "$T/small.bin" --rate 200m || true
check "a 1 MiB object afterwards is published" wait_receipt fs published 1
check "and is identical" cmp -s "$T/small.bin" "$I/small.bin"
check "staging is empty after publication" staging_empty

# --- 4. the disk fills up during a transfer ---
head -c $((2 << 20)) /dev/urandom >"$T/during.bin"
send "$PORT" "$T/during.bin" --rate 8m --fec 10% &
SPID=$!
PIDS+=("$SPID")
started=0
for _ in $(seq 100); do
	if [ -n "$(ls -A "$I/.sluice/staging")" ]; then started=1; break; fi
	sleep 0.02
done
check "the transfer started (staging file present)" test "$started" -eq 1
# Someone else fills the filesystem to the last byte.
dd if=/dev/zero of="$T/fs/filler" bs=64k status=none 2>/dev/null || true
check "the filesystem is now full" test "$(df --output=avail -B1 "$T/fs" | tail -1)" -lt 65536
wait "$SPID" || true
for _ in $(seq 50); do [ -e "$I/during.bin" ] && break; sleep 0.1; done
check "the space reserved up front carried it: published and identical" \
	cmp -s "$T/during.bin" "$I/during.bin"
check "staging is empty afterwards" staging_empty
if ! grep -q '"event":"published".*"name":"during.bin"' "$R"; then
	echo "# note: during.bin was published but its receipt could not be written" \
		"(receipt log on the full filesystem): $(grep -c 'receipt log' "$T/recv.log" || true)" \
		"receipt-log errors in the receiver's log"
fi
rm -f "$T/fs/filler"

kill -TERM "$RPID"
rc=0
wait_exit "$RPID" 5 || rc=$?
check "the receiver exits 0 on SIGTERM (status $rc; no sanitizer report)" test "$rc" -eq 0

# --- 5. write errors while a block is stored (injected) ---
# The reservation above means a real filesystem rarely fails a staging
# write, so the failure is injected: the LD_PRELOAD shim pwrite_shim.c makes pwrite(2)
# fail with ENOSPC or EIO from the 3rd call on. The receiver must record
# "failed" with the reason, publish nothing and discard the staging file.
if ! ${CC:-cc} -shared -fPIC -O1 -o "$T/shim.so" "$(dirname "$0")/pwrite_shim.c" -ldl 2>"$T/shim.err"; then
	echo "# skip: section 5 needs a C compiler for the fault-injection shim"
else
	rm -f "$I/small.bin" "$I/during.bin" # the inbox's consumer took them
	R2=$T/receipts-inject.jsonl # on another filesystem, like an operator's --receipts
	head -c $((1 << 20)) /dev/urandom >"$T/inject.bin"
	for inj in "28 disk full while writing to staging" "5 write error in the staging directory"; do
		errno_v=${inj%% *}
		reason=${inj#* }
		PORT=$((PORT + 1))
		: >"$T/recv-inject.log"
		SHIM_FAIL_AFTER=2 SHIM_ERRNO=$errno_v LD_PRELOAD="$T/shim.so" \
			ASAN_OPTIONS="${ASAN_OPTIONS:-}:verify_asan_link_order=0" \
			"$B/sluice-recv" --listen "127.0.0.1:$PORT" --inbox "$I" --receipts "$R2" \
			--key "$T/keys/receiver/receiver.key" --trust "$T/keys/sender/sender.pub" \
			--end-grace 0.5 --once -q 2>>"$T/recv-inject.log" &
		IPID=$!
		PIDS+=("$IPID")
		sleep 0.3
		send "$PORT" "$T/inject.bin" --rate 200m --name "inject-$errno_v.bin" || true
		for _ in $(seq 100); do kill -0 "$IPID" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$IPID" 2>/dev/null || true
		wait "$IPID" 2>/dev/null || true
		if ! grep -q 'shim: injected' "$T/recv-inject.log" && [ -e "$I/inject-$errno_v.bin" ]; then
			# e.g. a sanitizer runtime linked into the binary intercepts
			# pwrite before any LD_PRELOAD library can
			echo "# skip: errno $errno_v: the fault-injection shim did not take effect in this build"
			rm -f "$I/inject-$errno_v.bin"
			continue
		fi
		check "errno $errno_v: the injected failure was hit" grep -q 'shim: injected' "$T/recv-inject.log" ||
			sed "s/^/#   /" "$T/recv-inject.log"
		check "errno $errno_v while storing a block: a \"failed\" receipt saying '$reason'" \
			grep -q "\"event\":\"failed\".*\"reason\":\"$reason\"" "$R2"
		check "errno $errno_v: nothing published" test ! -e "$I/inject-$errno_v.bin"
		check "errno $errno_v: the staging file is discarded" staging_empty
	done
fi

finish
