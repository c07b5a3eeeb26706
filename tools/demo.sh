#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# First run on a fresh Debian machine: install what is missing, build, make
# demo keys, and push a generated file through a real loopback transfer:
#
#   sluice-send ──UDP 127.0.0.1:7878──► sluice-recv → demo/inbox
#
# Everything lands in ./demo (keys, inbox, receipt log). Run it again any time.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SIZE_MB=${DEMO_SIZE_MB:-64}
PORT=${DEMO_PORT:-7878}

"$ROOT/tools/setup.sh"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
B="$ROOT/build"

D="$ROOT/demo"
rm -rf "$D/inbox" "$D/file"
mkdir -p "$D/inbox" "$D/file"
mkdir -p "$D/keys"
[ -f "$D/keys/sender/sender.key" ] || "$B/sluice-keygen" sender "$D/keys/sender"
[ -f "$D/keys/receiver/receiver.key" ] || "$B/sluice-keygen" receiver "$D/keys/receiver"

# Half random, half text: shows zstd working on the compressible part.
FILE="$D/file/release-image.bin"
head -c $((SIZE_MB << 19)) /dev/urandom >"$FILE"
head -c $((SIZE_MB << 19)) < <(yes "sluice demo line: one-way transfer, verified on arrival") >>"$FILE"

"$B/sluice-recv" --listen "127.0.0.1:$PORT" --inbox "$D/inbox" \
	--key "$D/keys/receiver/receiver.key" --trust "$D/keys/sender/sender.pub" --once &
RPID=$!
trap 'kill $RPID 2>/dev/null || true' EXIT
sleep 0.3

SLUICE_STATE_DIR="$D/sender-state" "$B/sluice-send" --to "127.0.0.1:$PORT" --rate 1g --fec 10% \
	--key "$D/keys/sender/sender.key" --recipient "$D/keys/receiver/receiver.pub" "$FILE"

wait "$RPID"
trap - EXIT
echo
echo "inbox:"
ls -l "$D/inbox"
echo
echo "its receipt (then: sluice-receipts verify $D/inbox/.sluice/receipts.jsonl --log-pub $D/keys/receiver/log.pub):"
grep '"event":"published"' "$D/inbox/.sluice/receipts.jsonl" | tail -n 1
echo
if cmp "$FILE" "$D/inbox/release-image.bin"; then
	echo "demo: published and byte-identical ($(b2sum -l 256 "$FILE" | cut -c1-16)...)"
else
	echo "demo: FAILED: the published file differs" >&2
	exit 1
fi
