#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Directory bundles end to end: a tree with nested and empty directories,
# empty, executable and setuid files and awkward names goes through the
# impairment proxy and is published as one directory, identical, with the
# receiver's modes; a resend is a duplicate; a different tree under the same
# name is a conflict; symlinks and special files are refused by the sender;
# a crash while the tree is being built leaves nothing in the inbox; a
# slow build does not hold up the transfer after it, nor loses its place
# in a full session table.
#
# Usage: test_bundle.sh BUILD_DIR
set -euo pipefail
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh" "$@"

src=$T/src/feed
mkdir -p "$src/empty-dir" "$src/a/b/c" "$src/spaces and é"
head -c $((12 << 20)) /dev/urandom >"$src/a/random.bin"
seq 1 200000 >"$src/a/b/c/numbers.txt"
: >"$src/a/empty-file"
printf '#!/bin/sh\necho hi\n' >"$src/a/b/run.sh"
chmod 755 "$src/a/b/run.sh"
printf 'not really setuid\n' >"$src/a/suid"
chmod 4755 "$src/a/suid"
for i in $(seq 1 150); do echo "small file $i" >"$src/spaces and é/f$i.txt"; done
cp -a "$src" "$T/original"

# --- 1. published whole, identical, with the receiver's modes ---
next_ports
start_recv bundle "$RP"
start_proxy "$PP" "$RP" --drop 5 --seed 3
set +e
out=$(send "$PP" "$src" --rate 400m --fec 15% 2>&1)
src_rc=$?
set -e
check "sender sends a directory (exit 0)" test "$src_rc" -eq 0
check "the bundle is published" wait_receipt bundle published 1
pub=$T/bundle/inbox/feed
check "the published tree is identical to the source" diff -r "$T/original" "$pub"
check "empty directories arrive" test -d "$pub/empty-dir"
check "no setuid or setgid bit survives" test -z "$(find "$pub" -perm /6000)"
check "executables get 0755" test "$(stat -c %a "$pub/a/b/run.sh")" = 755
check "files get the receiver's 0644" test "$(stat -c %a "$pub/a/b/c/numbers.txt")" = 644
check "directories get 0755" test "$(stat -c %a "$pub/a/b")" = 755
check "the receipt says bundle with its entry count" \
	grep -q "\"event\":\"published\".*\"name\":\"feed\".*\"kind\":\"bundle\",\"entries\":$(find "$src" -mindepth 1 | wc -l)" \
	"$T/bundle/inbox/.sluice/receipts.jsonl"
check "losses were repaired on the way" \
	grep -q '"event":"published".*"frames_lost":[1-9]' "$T/bundle/inbox/.sluice/receipts.jsonl"
check "staging is empty after publication" \
	test -z "$(ls -A "$T/bundle/inbox/.sluice/staging")"

# --- 2. the same tree again: a duplicate; 3. another tree, same name: conflict ---
send "$RP" "$src" --rate 400m
check "the same bundle sent again is logged as a duplicate" wait_receipt bundle duplicate 1
echo "changed" >"$src/a/b/c/numbers.txt"
send "$RP" "$src" --rate 400m
check "a different bundle under a taken name is a conflict" wait_receipt bundle conflict 1
check "the published bundle is untouched" diff -r "$T/original" "$pub"

# --- 4. what a bundle cannot carry: refused at the sender ---
ln -s /etc/passwd "$src/a/link"
set +e
msg=$(send "$RP" "$src" --rate 400m 2>&1)
rc=$?
set -e
check "a symlink in the tree is refused (exit 1)" test "$rc" -eq 1
check "the message names it" grep -q "feed/a/link is a symbolic link" <<<"$msg"
rm "$src/a/link"
mkfifo "$src/a/fifo"
set +e
msg=$(send "$RP" "$src" --rate 400m 2>&1)
rc=$?
set -e
check "a FIFO in the tree is refused (exit 1)" test "$rc" -eq 1
check "the message calls it a special file" grep -q "feed/a/fifo is a special file" <<<"$msg"
rm "$src/a/fifo"
kill -TERM "$RPID"
wait_exit "$RPID" 10 || true

# --- 5. a crash while the tree is being built leaves nothing in the inbox ---
next_ports
mkdir -p "$T/crash/inbox"
SLUICE_CRASH_AT=bundle-built "$B/sluice-recv" --listen "127.0.0.1:$RP" \
	--inbox "$T/crash/inbox" --key "$T/keys/receiver/receiver.key" \
	--trust "$T/keys/sender/sender.pub" --end-grace 1 -q 2>/dev/null &
RPID=$!
PIDS+=("$RPID")
sleep 0.3
send "$RP" "$src" --rate 400m
set +e
wait_exit "$RPID" 20
rc=$?
set -e
check "the receiver died at the crash point (SIGKILL)" test "$rc" -eq 137
check "nothing is in the inbox after the crash" test "$(inbox_files crash)" -eq 0
check "the half-built tree is in staging" \
	test -n "$(find "$T/crash/inbox/.sluice/staging" -maxdepth 1 -name '*.tree')"
start_recv crash "$RP"
kill -TERM "$RPID"
wait_exit "$RPID" 10 || true
check "a restart removes the tree and the stream" \
	test -z "$(ls -A "$T/crash/inbox/.sluice/staging")"
check "and records what it removed" \
	grep -q '"event":"start".*"stale_staging_removed":2' "$T/crash/inbox/.sluice/receipts.jsonl"

# --- 6. building a bundle does not hold up the next transfer ---
# The tree is built on a thread of its own: a file sent right after a
# bundle is received, and published, while the bundle's files are still
# being copied. The LD_PRELOAD shim makes each 1 MiB copy of the builder
# wait 50 ms (a 32 MiB bundle: 1.6 s, a slow disk or a large bundle); the
# receiving loop used to stand still meanwhile, beacons and the next file's
# frames piling up in the ring.
# slow_build NAME [sluice-recv options]: a-bundle, then b-next.bin, through
# a --watch sender into receiver NAME whose bundle builds are slowed; sets
# ORDER (the names in the order they were published), or returns 1 when the
# shim did not take effect in this build.
slow_build() {
	local name=$1 out=$T/out-$1 log
	shift
	mkdir -p "$out/a-bundle"
	for i in 1 2 3 4; do head -c $((8 << 20)) /dev/urandom >"$out/a-bundle/part$i"; done
	head -c $((16 << 20)) /dev/urandom >"$T/b-next.bin"
	rm -rf "$T/ref"
	mkdir -p "$T/ref"
	cp -a "$out/a-bundle" "$T/b-next.bin" "$T/ref/"
	next_ports
	LD_PRELOAD="$T/slow.so" SHIM_WRITE_DELAY_US=50000 \
		ASAN_OPTIONS="${ASAN_OPTIONS:-}:verify_asan_link_order=0" start_recv "$name" "$RP" "$@"
	"$B/sluice-send" --watch "$out" --to "127.0.0.1:$RP" --rate 400m \
		--key "$T/keys/sender/sender.key" --recipient "$T/keys/receiver/receiver.pub" -q &
	SPID=$!
	PIDS+=("$SPID")
	for _ in $(seq 100); do # the bundle is on its way: the file goes next
		[ "$(staging_parts "$name")" -gt 0 ] && break
		sleep 0.1
	done
	mv "$T/b-next.bin" "$out/"
	for _ in $(seq 100); do # the bundle's verdict, then time for the file's
		[ "$(receipt_count "$name" published)" -ge 1 ] && break
		[ "$(receipt_count "$name" incomplete)" -ge 1 ] && break
		sleep 0.1
	done
	for _ in $(seq 50); do
		[ "$(receipt_count "$name" published)" -ge 2 ] && break
		sleep 0.1
	done
	kill -TERM "$SPID" "$RPID"
	wait_exit "$SPID" 10 || true
	wait_exit "$RPID" 10 || true
	grep -q "shim: slowing large writes" "$T/$name/recv.log" || return 1
	log=$T/$name/inbox/.sluice/receipts.jsonl
	ORDER=$(grep -o '"event":"published","object":"[0-9a-f]*","name":"[^"]*"' "$log" |
		sed 's/.*"name":"//; s/"$//' | tr '\n' ' ')
	echo "# $name: published in this order: $ORDER"
}
if ! ${CC:-cc} -shared -fPIC -O1 -o "$T/slow.so" "$(dirname "$0")/pwrite_shim.c" -ldl 2>"$T/slow.err"; then
	echo "# skip: the slow-build cases need a C compiler for their shim"
elif ! slow_build slow; then
	echo "# skip: the slow-build shim did not take effect in this build"
else
	check "both are published" test "$(receipt_count slow published)" -eq 2
	check "the file sent after the bundle is published first, while the tree is built" \
		test "$ORDER" = "b-next.bin a-bundle "
	check "... identical" cmp -s "$T/ref/b-next.bin" "$T/slow/inbox/b-next.bin"
	check "the bundle identical" diff -r "$T/ref/a-bundle" "$T/slow/inbox/a-bundle"
	check "staging is empty" test -z "$(ls -A "$T/slow/inbox/.sluice/staging")"

	# --- 7. a bundle being built keeps its place in a full session table ---
	# With --max-sessions 1 the next file's announcement finds the table
	# full: the bundle, every block in and its tree being built, is not
	# the transfer that makes room (it used to be evicted, incomplete).
	slow_build full --max-sessions 1 || true
	check "a full table: the bundle being built is published, not evicted" \
		grep -q '"event":"published".*"name":"a-bundle"' "$T/full/inbox/.sluice/receipts.jsonl"
	check "... identical" diff -r "$T/ref/a-bundle" "$T/full/inbox/a-bundle"
	check "... and nothing ended for want of a place" \
		test "$(grep -c 'the session table was full' "$T/full/inbox/.sluice/receipts.jsonl")" -eq 0
fi

finish
