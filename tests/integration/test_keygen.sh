#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# End-to-end test of sluice-keygen: key sets, file modes, never overwriting,
# all-or-nothing writes, "id" output, and refusal of unsafe or forged files.
#
# usage: test_keygen.sh [BUILD_DIR]   (default: $BUILD_DIR, else ./build)
set -euo pipefail

bin_dir=${1:-${BUILD_DIR:-./build}}
keygen=$bin_dir/sluice-keygen
if [[ ! -x $keygen ]]; then
	echo "test_keygen: $keygen not found or not executable; build first or pass the build dir" >&2
	exit 1
fi

umask 022
tmp=$(mktemp -d "${TMPDIR:-/tmp}/sluice-test-keygen.XXXXXX")
trap 'rm -rf -- "$tmp"' EXIT

passed=0
failed=0

# Every invocation is bounded: a hang is a failure, not a stuck CI job.
kg() { timeout 10 "$keygen" "$@"; }

ok() {
	passed=$((passed + 1))
	echo "ok   $1"
}
fail() {
	failed=$((failed + 1))
	echo "FAIL $1" >&2
}
# check NAME CMD...: CMD must succeed.
check() {
	local name=$1
	shift
	if "$@"; then ok "$name"; else fail "$name"; fi
}
# check_exit NAME CODE CMD...: CMD must exit with CODE.
check_exit() {
	local name=$1 want=$2 rc=0
	shift 2
	"$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
	if [[ $rc == "$want" ]]; then
		ok "$name"
	else
		fail "$name (exit $rc, want $want; stderr: $(cat "$tmp/err"))"
	fi
}
mode_is() { [[ $(stat -c %a "$1") == "$2" ]]; }
out_has() { grep -q -- "$1" "$tmp/out"; }
err_has() { grep -q -- "$1" "$tmp/err"; }
differs() { ! cmp -s "$1" "$2"; }
# Content and metadata of every file in a dir, to prove nothing changed.
snapshot() { (cd "$1" && for f in *; do stat -c '%n %a %s %Y %i' "$f"; sha256sum "$f"; done); }

# --- sender ---------------------------------------------------------------
check_exit "sender: creates a missing dir and two files" 0 kg sender "$tmp/s"
check "sender: prints both paths" out_has "wrote $tmp/s/sender.key .* and $tmp/s/sender.pub"
sender_id=$(sed -n 's/^sender key \([0-9a-f]\{16\}\): .*/\1/p' "$tmp/out")
check "sender: prints a 16-hex-digit key id" test -n "$sender_id"
check "sender: DIR is 0700" mode_is "$tmp/s" 700
check "sender: sender.key is 0600" mode_is "$tmp/s/sender.key" 600
check "sender: sender.pub is 0644" mode_is "$tmp/s/sender.pub" 644
check "sender: nothing else written" test "$(cd "$tmp/s" && echo ./*)" = "./sender.key ./sender.pub"
check "sender: header of sender.key" \
	grep -qx "sluice sign-secret v1 keyid=$sender_id" "$tmp/s/sender.key"
check "sender: header of sender.pub" \
	grep -qx "sluice sign-public v1 keyid=$sender_id" "$tmp/s/sender.pub"

# --- receiver -------------------------------------------------------------
check_exit "receiver: creates four files" 0 kg receiver "$tmp/r"
box_id=$(sed -n 's/^receiver key \([0-9a-f]\{16\}\): .*/\1/p' "$tmp/out")
log_id=$(sed -n 's/^receipt-log key \([0-9a-f]\{16\}\): .*/\1/p' "$tmp/out")
check "receiver: prints both key ids" test -n "$box_id" -a -n "$log_id"
check "receiver: DIR is 0700" mode_is "$tmp/r" 700
for f in receiver.key log.key; do
	check "receiver: $f is 0600" mode_is "$tmp/r/$f" 600
done
for f in receiver.pub log.pub; do
	check "receiver: $f is 0644" mode_is "$tmp/r/$f" 644
done
check "receiver: box and log keys differ" test "$box_id" != "$log_id"

# --- id -------------------------------------------------------------------
while read -r file want_id want_kind; do
	check_exit "id $file: succeeds" 0 kg id "$tmp/$file"
	check "id $file: prints '$want_kind' and the id keygen printed" \
		test "$(cat "$tmp/out")" = "$want_id $want_kind"
done <<EOF
s/sender.key $sender_id sign-secret
s/sender.pub $sender_id sign-public
r/receiver.key $box_id box-secret
r/receiver.pub $box_id box-public
r/log.key $log_id log-secret
r/log.pub $log_id log-public
EOF

# --- never overwrite, all or nothing ---------------------------------------
before=$(snapshot "$tmp/s")
check_exit "sender again: refused" 1 kg sender "$tmp/s"
check "sender again: says the file exists" err_has "already exists"
check "sender again: files untouched" test "$before" = "$(snapshot "$tmp/s")"

# Only log.pub missing: the run must still write nothing at all.
rm "$tmp/r/log.pub"
before=$(snapshot "$tmp/r")
check_exit "receiver with one file left: refused" 1 kg receiver "$tmp/r"
check "receiver with one file left: nothing written or changed" \
	test "$before" = "$(snapshot "$tmp/r")"

# A dangling symlink in the way counts as existing and is not followed.
mkdir -m 700 "$tmp/l"
ln -s "$tmp/l/elsewhere" "$tmp/l/sender.pub"
check_exit "symlink in the way: refused" 1 kg sender "$tmp/l"
check "symlink in the way: no file created anywhere" \
	test ! -e "$tmp/l/sender.key" -a ! -e "$tmp/l/elsewhere"

check_exit "second run: new keys" 0 kg sender "$tmp/s2"
check "second run: a different key id" \
	test "$(kg id "$tmp/s2/sender.pub" | cut -d' ' -f1)" != "$sender_id"

# --- unsafe and forged key files -------------------------------------------
cp -p "$tmp/s/sender.key" "$tmp/open.key"
chmod 640 "$tmp/open.key"
check_exit "group-readable secret: refused" 1 kg id "$tmp/open.key"
check "group-readable secret: says how to fix it" err_has "chmod 600 $tmp/open.key"

ln -s "$tmp/s/sender.pub" "$tmp/link.pub"
check_exit "symlinked key file: refused" 1 kg id "$tmp/link.pub"

sed '1s/keyid=\(.\)/keyid=\1\1/; 1s/keyid=\(.\{16\}\)./keyid=\1/' "$tmp/s/sender.pub" >"$tmp/forged.pub"
check "forged header id: fixture differs" differs "$tmp/s/sender.pub" "$tmp/forged.pub"
check_exit "forged header id: refused" 1 kg id "$tmp/forged.pub"

head -c 60 "$tmp/s/sender.pub" >"$tmp/short.pub"
check_exit "truncated key file: refused" 1 kg id "$tmp/short.pub"
check_exit "missing key file: refused" 1 kg id "$tmp/nonexistent.pub"

# --- a directory others can write to ----------------------------------------
# Whoever can rename entries in DIR could swap the keys for their own.
mkdir -m 0777 "$tmp/open"
chmod 0777 "$tmp/open"
check_exit "world-writable DIR: refused" 1 kg sender "$tmp/open"
check "world-writable DIR: says why and what to do" err_has "can be changed by other users.*chmod go-w"
check "world-writable DIR: nothing created" test -z "$(ls -A "$tmp/open")"
mkdir -m 1777 "$tmp/sticky"
chmod 1777 "$tmp/sticky"
check_exit "sticky world-writable DIR (like /tmp): taken" 0 kg sender "$tmp/sticky"

# --- usage ------------------------------------------------------------------
check_exit "no arguments: usage" 2 kg
check_exit "unknown command: usage" 2 kg frobnicate "$tmp/x"
check_exit "extra argument: usage" 2 kg sender "$tmp/x" extra
check_exit "no --force option" 2 kg --force sender "$tmp/s"
check_exit "--help: ok" 0 kg --help
check "usage error: nothing created" test ! -e "$tmp/x"

echo "$passed passed, $failed failed"
[[ $failed == 0 ]]
