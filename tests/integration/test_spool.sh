#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Spool mode and cron use of sluice-send:
#   --watch OUTBOX sends what was there at start, files closed after writing,
#   directories moved in (as bundles); ignores dot-files; moves what it sent
#   to OUTBOX/sent (or deletes it); keeps what failed and retries it; stops
#   cleanly on SIGTERM and picks up what arrived while it was down.
#   A cron-style run (empty environment, no terminal) is silent on success
#   and says what went wrong, with a distinct exit status, on failure.
#
# Usage: test_spool.sh BUILD_DIR
set -euo pipefail
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh" "$@"

out=$T/outbox
mkdir -p "$out" "$T/stage"
next_ports
start_recv spool "$RP" --end-grace 0.3
inbox=$T/spool/inbox

# start_spool [extra args]: sets SPID; output in $T/spool.out / .err
start_spool() {
	"$B/sluice-send" --watch "$out" --to "127.0.0.1:$RP" --rate 300m --retry 1 \
		--key "$T/keys/sender/sender.key" --recipient "$T/keys/receiver/receiver.pub" \
		"$@" >>"$T/spool.out" 2>>"$T/spool.err" &
	SPID=$!
	PIDS+=("$SPID")
}
wait_file() { # wait_file PATH: up to 10 s
	for _ in $(seq 100); do
		[ -e "$1" ] && return 0
		sleep 0.1
	done
	return 1
}

head -c $((1 << 20)) /dev/urandom >"$out/was-there.bin"
touch -d '1 hour ago' "$out/was-there.bin"
echo "editor swap file" >"$out/.draft.swp"
start_spool
check "what was in the outbox at start is sent" wait_file "$inbox/was-there.bin"
check "and moved to OUTBOX/sent" wait_file "$out/sent/was-there.bin"
head -c $((3 << 20)) /dev/urandom >"$out/written.bin"
check "a file closed after writing is sent" wait_file "$inbox/written.bin"
mkdir -p "$T/stage/tree/sub"
echo one >"$T/stage/tree/sub/one.txt"
echo two >"$T/stage/tree/two.txt"
mv "$T/stage/tree" "$out/tree"
check "a directory moved in is sent as a bundle" wait_file "$inbox/tree/sub/one.txt"
sleep 0.5
check "the bundle arrived whole" diff -r "$out/sent/tree" "$inbox/tree"
check "the written file arrived identical" cmp -s "$out/sent/written.bin" "$inbox/written.bin"
check "dot-files are left alone" test -e "$out/.draft.swp" -a ! -e "$inbox/.draft.swp"

# a bundle that cannot be sent stays, and is retried once it is fixed
mkdir -p "$T/stage/bad"
echo data >"$T/stage/bad/data"
ln -s /etc/hostname "$T/stage/bad/link"
mv "$T/stage/bad" "$out/bad"
sleep 1.5
check "an entry that cannot be sent stays in the outbox" test -d "$out/bad" -a ! -e "$inbox/bad"
check "and the reason is logged" grep -q "bad/link is a symbolic link" "$T/spool.err"
rm "$out/bad/link"
check "it is retried and sent once fixed" wait_file "$inbox/bad/data"

kill -TERM "$SPID"
set +e
wait_exit "$SPID" 10
rc=$?
set -e
check "SIGTERM stops the spool with exit status 0" test "$rc" -eq 0
echo "arrived while down" >"$out/later.txt"
start_spool --delete-sent
check "after a restart, what arrived meanwhile is sent" wait_file "$inbox/later.txt"
for _ in $(seq 50); do [ -e "$out/later.txt" ] || break; sleep 0.1; done
check "--delete-sent deletes it once sent" test ! -e "$out/later.txt"
kill -TERM "$SPID"
wait_exit "$SPID" 10 || true
check "every spooled object has one published receipt" \
	test "$(receipt_count spool published)" -eq 5

# --- cron-style: empty environment, no terminal, settings in a config file ---
cat >"$T/send.conf" <<CONF
# written like docs/examples/sluice-send.conf
to = 127.0.0.1:$RP
rate = 300m
fec = 10%
key = $T/keys/sender/sender.key
recipient = $T/keys/receiver/receiver.pub
state-dir = $T/cron-state
quiet
CONF
chmod 600 "$T/send.conf"
cat >"$T/cron-job.sh" <<JOB
#!/bin/sh
exec "$B/sluice-send" --config "$T/send.conf" "\$1"
JOB
chmod +x "$T/cron-job.sh"
head -c 100000 /dev/urandom >"$T/nightly.bin"
set +e
env -i /bin/sh "$T/cron-job.sh" "$T/nightly.bin" </dev/null >"$T/cron.out" 2>&1
rc=$?
set -e
check "a cron run exits 0" test "$rc" -eq 0
check "and prints nothing" test ! -s "$T/cron.out"
check "and the file is published" wait_file "$inbox/nightly.bin"
set +e
env -i /bin/sh "$T/cron-job.sh" "$T/missing.bin" </dev/null >"$T/cron.out" 2>&1
rc=$?
set -e
check "a cron run with a missing file exits 1" test "$rc" -eq 1
check "and says which file" grep -q "cannot open .*missing.bin" "$T/cron.out"
chmod 644 "$T/keys/sender/sender.key"
set +e
env -i /bin/sh "$T/cron-job.sh" "$T/nightly.bin" </dev/null >"$T/cron.out" 2>&1
rc=$?
set -e
chmod 600 "$T/keys/sender/sender.key"
check "a readable secret key is refused with exit 3" test "$rc" -eq 3
check "and the message says how to fix it" grep -q "chmod 600" "$T/cron.out"

chmod 664 "$T/send.conf"
set +e
env -i /bin/sh "$T/cron-job.sh" "$T/nightly.bin" </dev/null >"$T/cron.out" 2>&1
rc=$?
set -e
check "a group-writable config file is refused (exit 2)" test "$rc" -eq 2
check "and the message says how to fix it" grep -q "chmod go-w" "$T/cron.out"

# the shipped examples parse (their paths are not there, so stop at --help)
parses() { "$B/$1" --config "$2" --help >/dev/null; }
for f in sluice-send sluice-recv; do
	cp "$(dirname "$0")/../../docs/examples/$f.conf" "$T/$f.conf"
	chmod 600 "$T/$f.conf"
	check "docs/examples/$f.conf is a valid $f configuration" \
		parses "$f" "$T/$f.conf"
done

kill -TERM "$RPID"
wait_exit "$RPID" 10 || true
finish
