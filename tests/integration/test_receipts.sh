#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# sluice-receipts against the receipt log of a real transfer, then against
# tampered and forged copies of that log and of the inbox:
#
#   sluice-send ──UDP──► sluice-recv 127.0.0.1:P ──► inbox/f.bin
#                        (keys/receiver/log.key)      inbox/.sluice/receipts.jsonl
#                                                       │ start, published, stop, checkpoint
#                                       sluice-receipts verify --log-pub log.pub / report
#
# Every tampered copy must make "verify" exit 1 and say what is wrong.
#
# Usage: test_receipts.sh BUILD_DIR
set -euo pipefail

. "$(dirname "$0")/lib.sh" "$@"
[ -x "$B/sluice-receipts" ] || { echo "missing $B/sluice-receipts: build first"; exit 1; }

# check_exit DESCRIPTION CODE COMMAND...: output in $T/out
check_exit() {
	local what=$1 want=$2 rc=0
	shift 2
	timeout 60 "$@" >"$T/out" 2>&1 || rc=$?
	if [ "$rc" = "$want" ]; then
		ok "$what"
	else
		not_ok "$what (exit $rc, want $want)"
		sed 's/^/    /' "$T/out"
	fi
}
out_has() { grep -q -- "$1" "$T/out"; }
RCPT=$B/sluice-receipts

"$B/sluice-keygen" receiver "$T/keys/attacker" >/dev/null
PUB=$T/keys/receiver/log.pub

# start_logged NAME [extra args]: a receiver on $PORT with inbox NAME/inbox,
# like lib.sh's start_recv but without -q (its log-key line is checked),
# appending to NAME/recv.log and not waiting for a start record (one run
# keeps its receipt log elsewhere); sets RPID
start_logged() {
	local name=$1
	shift
	mkdir -p "$T/$name/inbox"
	"$B/sluice-recv" --listen "127.0.0.1:$PORT" --inbox "$T/$name/inbox" \
		--key "$T/keys/receiver/receiver.key" --trust "$T/keys/sender/sender.pub" \
		--end-grace 0.5 --session-timeout 30 "$@" 2>>"$T/$name/recv.log" &
	RPID=$!
	PIDS+=("$RPID")
	sleep 0.3
}

# --- a real transfer, stopped with SIGTERM ---------------------------------
head -c $((256 << 10)) /dev/urandom >"$T/f.bin"
start_logged r
LOG=$T/r/inbox/.sluice/receipts.jsonl
send "$PORT" "$T/f.bin" --rate 200m
check "the transfer is published" wait_receipt r published 1
kill -TERM "$RPID"
wait_exit "$RPID" 10 || true
check "the receiver picked up log.key beside --key" \
	grep -q 'checkpoints signed with log key' "$T/r/recv.log"
check "the log ends with a signed checkpoint after the stop record" \
	bash -c "tail -n 2 '$LOG' | head -n 1 | grep -q '\"event\":\"stop\"' &&
		tail -n 1 '$LOG' | grep -q '\"event\":\"checkpoint\",\"records\":[0-9]*,\"head\":\"[0-9a-f]\{64\}\",\"key\":\"[0-9a-f]\{16\}\",\"sig\":\"[0-9a-f]\{128\}\"'"
cp "$LOG" "$T/good.jsonl"
n_lines=$(wc -l <"$T/good.jsonl")
pub_line=$(grep -n '"event":"published"' "$T/good.jsonl" | cut -d: -f1)

check_exit "verify passes on the untouched log and inbox" 0 \
	"$RCPT" verify "$LOG" --log-pub "$PUB" --inbox "$T/r/inbox" --rehash
check "verify reports the verified checkpoint" out_has "checkpoints: 1 verified, the last at line $n_lines"
check "verify says every record is covered" out_has "every record is covered by a signed checkpoint"
check "verify re-hashed the published file" out_has "rehash: 1 published file identical, 0 missing, 0 modified"
check "verify ends with OK" out_has "verify: OK"
check_exit "verify without --log-pub checks the chain only" 0 "$RCPT" verify "$LOG"
check "and says the checkpoints were not checked" out_has "signatures NOT checked"

# --- report ----------------------------------------------------------------
check_exit "report runs" 0 "$RCPT" report "$LOG"
check "report lists the published object by name and size" out_has "f.bin  262144 bytes  sender "
check "report names the sender key id" \
	out_has "sender $("$B/sluice-keygen" id "$T/keys/sender/sender.pub" | cut -d' ' -f1)"
check "report counts events" out_has "published        1"
check "report shows the last checkpoint" out_has "last checkpoint: line $n_lines"
check_exit "report --since a later date shows nothing published" 0 \
	"$RCPT" report "$LOG" --since 2999-01-01
check "  (published (0))" out_has "published (0):"
check_exit "report --since an invalid date is a usage error" 2 "$RCPT" report "$LOG" --since yesterday

# --- tampering, each on a fresh copy ----------------------------------------
cp "$T/good.jsonl" "$T/t.jsonl"
sed -i "${pub_line}s/\"size\":262144/\"size\":262145/" "$T/t.jsonl"
check_exit "an edited byte in the published record is detected" 1 "$RCPT" verify "$T/t.jsonl" --log-pub "$PUB"
check "  and the line after it is named" out_has "FAIL line $((pub_line + 1)) .*prev is not the hash of line $pub_line"

# The attacker also rewrites every later "prev" (and the checkpoint's head):
# the chain is whole again, and only the signature can tell.
rechain() { # rechain FILE FIRST_EDITED_LINE
	python3 - "$1" "$2" <<'EOF'
import hashlib, re, sys
path, first = sys.argv[1], int(sys.argv[2])
lines = open(path, "rb").read().split(b"\n")[:-1]
for i in range(first, len(lines)):
    h = hashlib.blake2b(lines[i - 1], digest_size=32).hexdigest().encode()
    lines[i] = re.sub(rb'"prev":"[0-9a-f]{64}"}$', b'"prev":"' + h + b'"}', lines[i])
    lines[i] = re.sub(rb'"head":"[0-9a-f]{64}"', b'"head":"' + h + b'"', lines[i])
open(path, "wb").write(b"\n".join(lines) + b"\n")
EOF
}
if command -v python3 >/dev/null; then
	rechain "$T/t.jsonl" "$pub_line"
	cp "$T/t.jsonl" "$T/rechained.jsonl"
	check_exit "an edited record with the chain rewritten after it is detected" 1 \
		"$RCPT" verify "$T/t.jsonl" --log-pub "$PUB"
	check "  by the checkpoint signature" out_has "FAIL line $n_lines .*signature does not verify"
	check_exit "  (the rewritten chain alone looks whole)" 0 "$RCPT" verify "$T/t.jsonl"
else
	echo "ok - # skip re-chain cases: no python3"
fi

sed "${pub_line}d" "$T/good.jsonl" >"$T/t.jsonl"
check_exit "a deleted line is detected" 1 "$RCPT" verify "$T/t.jsonl" --log-pub "$PUB"
check "  as records removed" out_has "FAIL line $pub_line .*records were removed or inserted"

# one hex digit of the signature changed: 0 -> 1, anything else -> 0
sed '$s/"sig":"0/"sig":"Q/; $s/"sig":"[1-9a-f]/"sig":"0/; $s/"sig":"Q/"sig":"1/' \
	"$T/good.jsonl" >"$T/t.jsonl"
check "  (the forged copy differs only in the signature)" \
	bash -c "! cmp -s '$T/good.jsonl' '$T/t.jsonl' && [ \$(diff '$T/good.jsonl' '$T/t.jsonl' | grep -c '^>') = 1 ]"
check_exit "a forged checkpoint signature is detected" 1 "$RCPT" verify "$T/t.jsonl" --log-pub "$PUB"
check "  as a signature that does not verify" out_has "FAIL line $n_lines .*signature does not verify"

# Someone with their own log key appends records and signs them: a
# checkpoint by a key that is not the receiver's.
mkdir -p "$T/forger/inbox"
cp "$T/good.jsonl" "$T/forger/receipts.jsonl"
PORT=$((PORT + 1))
start_logged forger --receipts "$T/forger/receipts.jsonl" --log-key "$T/keys/attacker/log.key"
kill -TERM "$RPID"
wait_exit "$RPID" 10 || true
check_exit "a checkpoint signed by another log key is detected" 1 \
	"$RCPT" verify "$T/forger/receipts.jsonl" --log-pub "$PUB"
check "  and named as not a --log-pub key" out_has "which is not a --log-pub key"
check_exit "  (the same log verifies with both keys given)" 0 "$RCPT" verify \
	"$T/forger/receipts.jsonl" --log-pub "$PUB" --log-pub "$T/keys/attacker/log.pub"

check_exit "the right log with the wrong --log-pub fails" 1 \
	"$RCPT" verify "$T/good.jsonl" --log-pub "$T/keys/attacker/log.pub"

# A record appended after the last checkpoint chains but is not signed.
if command -v python3 >/dev/null; then
	cp "$T/good.jsonl" "$T/t.jsonl"
	python3 - "$T/t.jsonl" <<'EOF'
import hashlib, json, sys
path = sys.argv[1]
last = open(path, "rb").read().split(b"\n")[-2]
h = hashlib.blake2b(last, digest_size=32).hexdigest()
rec = '{"n":%d,"time":"2026-11-24T00:00:00.000Z","event":"published","name":"late.bin","prev":"%s"}\n'
open(path, "a").write(rec % (json.loads(last)["n"] + 1, h))
EOF
	check_exit "a record after the last checkpoint still verifies" 0 \
		"$RCPT" verify "$T/t.jsonl" --log-pub "$PUB"
	check "  but is reported as not yet covered" \
		out_has "not yet covered by a signed checkpoint: 1 record after line $n_lines"
fi

cp "$T/good.jsonl" "$T/t.jsonl"
printf '{"n":%d,"time":"2026-11-2' $((n_lines + 1)) >>"$T/t.jsonl"
check_exit "a torn last line fails verification" 1 "$RCPT" verify "$T/t.jsonl" --log-pub "$PUB"
check "  as a line without its newline" out_has "the last line has no newline"

# The receiver reports the torn tail as damage and covers it with a checkpoint.
cp "$T/t.jsonl" "$LOG"
PORT=$((PORT + 1))
start_logged r
kill -TERM "$RPID"
wait_exit "$RPID" 10 || true
check_exit "after a restart the log-damaged record makes it verify again" 0 \
	"$RCPT" verify "$LOG" --log-pub "$PUB"
check "  with the damaged range skipped" out_has "1 damaged range skipped"
check "  and every record covered" out_has "every record is covered by a signed checkpoint"
check_exit "report shows the damaged range" 0 "$RCPT" report "$LOG"
check "  (damaged ranges (1))" out_has "damaged ranges (1):"
check "report has a per-day summary with the object" \
	out_has "^  [0-9-]\{10\}  *1  *262144  *0 "

# --- anchors: a log cut back to an earlier checkpoint ------------------------
grep '"event":"checkpoint"' "$LOG" | tail -n 1 >"$T/anchor.jsonl"
check_exit "verify --anchor passes while the anchored checkpoint is in the log" 0 \
	"$RCPT" verify "$LOG" --log-pub "$PUB" --anchor "$T/anchor.jsonl"
check "  and says it found it" out_has "anchors: 1 checkpoint from .* found unchanged"
head -n "$n_lines" "$LOG" >"$T/cut.jsonl" # back to the first run's checkpoint
check_exit "a log cut back to an earlier checkpoint still verifies on its own" 0 \
	"$RCPT" verify "$T/cut.jsonl" --log-pub "$PUB"
check_exit "but not against the anchor" 1 \
	"$RCPT" verify "$T/cut.jsonl" --log-pub "$PUB" --anchor "$T/anchor.jsonl"
check "  which names the missing checkpoint" out_has "FAIL anchor .*is not in the log: it was cut back"

# --- the by-hand verifier in docs/RECEIPTS.md, an independent implementation ---
DOC=$(dirname "$0")/../../docs/RECEIPTS.md
# Debian's python3 has python3-cryptography (tools/setup.sh); another python3
# first in PATH may not.
PY=python3
for p in /usr/bin/python3 python3; do
	if "$p" -c 'import cryptography.hazmat.primitives.asymmetric.ed25519' 2>/dev/null; then
		PY=$p
		break
	fi
done
if "$PY" -c 'import cryptography.hazmat.primitives.asymmetric.ed25519' 2>/dev/null &&
	[ -f "$DOC" ]; then
	awk '/<!-- verify-receipts.py -->/ {f = 1; next} f && /^```python/ {g = 1; next}
		g && /^```/ {exit} g {print}' "$DOC" >"$T/by-hand.py"
	check_exit "the by-hand script verifies the receiver's signatures" 0 \
		"$PY" "$T/by-hand.py" "$T/good.jsonl" "$PUB"
	check "  through the last line" out_has "signed through n=$n_lines"
	check_exit "the by-hand script follows the log-damaged skip" 0 \
		"$PY" "$T/by-hand.py" "$LOG" "$PUB"
	check_exit "the by-hand script rejects a re-chained edit" 1 \
		"$PY" "$T/by-hand.py" "$T/rechained.jsonl" "$PUB"
	check_exit "the by-hand script rejects another log key" 1 \
		"$PY" "$T/by-hand.py" "$T/good.jsonl" "$T/keys/attacker/log.pub"
else
	echo "ok - # skip by-hand verifier: python3 with the cryptography package not found"
fi

# --- the inbox --------------------------------------------------------------
# Flip every bit of byte 1000: writing a fixed byte left the random file
# unchanged one run in 256, and the check then failed.
b=$(od -An -tu1 -j1000 -N1 "$T/r/inbox/f.bin" | tr -d ' ')
# shellcheck disable=SC2059 # the format is the octal escape of the flipped byte
printf "\\$(printf '%03o' $((b ^ 255)))" |
	dd of="$T/r/inbox/f.bin" bs=1 seek=1000 conv=notrunc status=none
check_exit "a modified published file is detected by --rehash" 1 \
	"$RCPT" verify "$LOG" --log-pub "$PUB" --inbox "$T/r/inbox" --rehash
check "  by its hash" out_has "f.bin in the inbox has blake2b .* modified after publication"
head -c 100 "$T/f.bin" >"$T/r/inbox/f.bin"
check_exit "a truncated published file is detected by --rehash" 1 \
	"$RCPT" verify "$LOG" --log-pub "$PUB" --inbox "$T/r/inbox" --rehash
check "  by its size" out_has "f.bin in the inbox is 100 bytes"
rm "$T/r/inbox/f.bin"
ln -s "$T/f.bin" "$T/r/inbox/f.bin"
check_exit "a symbolic link in place of a published file is detected" 1 \
	"$RCPT" verify "$LOG" --log-pub "$PUB" --inbox "$T/r/inbox" --rehash
rm "$T/r/inbox/f.bin"
echo planted >"$T/r/inbox/planted.txt"
check_exit "a published file moved away is only reported missing" 0 \
	"$RCPT" verify "$LOG" --log-pub "$PUB" --inbox "$T/r/inbox" --rehash
check "  as missing" out_has "missing: line $pub_line: f.bin"
check "  and a file without a record is noted" out_has "planted.txt is in the inbox but no published record"

# --- usage -----------------------------------------------------------------
check_exit "no command is a usage error" 2 "$RCPT"
check_exit "an unknown command is a usage error" 2 "$RCPT" frobnicate "$LOG"
check_exit "--rehash without --inbox is a usage error" 2 "$RCPT" verify "$LOG" --rehash
check_exit "a secret key as --log-pub is a usage error" 2 \
	"$RCPT" verify "$LOG" --log-pub "$T/keys/receiver/log.key"
check "  with a message naming the kinds" out_has "log-secret key, but a log-public key is needed"
check_exit "a missing log fails" 1 "$RCPT" verify "$T/nonexistent.jsonl"

finish
