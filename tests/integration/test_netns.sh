#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A transfer between two real network stacks: two network namespaces joined
# by a veth pair, with netem loss, delay, jitter and reordering on the
# sender's side (the "diode" here), no loopback shortcuts.
#
#   ┌─ netns sl-netns-low-N ─────────┐        ┌─ netns sl-netns-high-N ────────┐
#   │ sluice-send                    │        │ sluice-recv --listen 10.91.0.2 │
#   │   └─► veth-low 10.91.0.1/24 ───┼─veth───┼─► veth-high 10.91.0.2/24       │
#   │       tc netem loss 3% delay   │        │     → inbox, receipts          │
#   │       2ms 1ms reorder 5%       │        │                                │
#   └────────────────────────────────┘        └────────────────────────────────┘
#
# When the kernel has no sch_netem, the same loss and reordering come from
# sluice-impair running inside the sender's namespace (no delay then); the
# output says which was used.
#
# Checks: 32 MiB with 10% FEC publishes byte-identical, the receipt shows the
# loss was real and repaired, staging is empty. Needs root (ip netns add);
# otherwise skipped (exit 77).
# Usage: test_netns.sh BUILD_DIR
set -euo pipefail

. "$(dirname "$0")/lib.sh" "$@"
SIZE_MB=${SLUICE_NETNS_SIZE_MB:-32}
netns_pair netns 10.91.0
netns_low_up

if ip netns exec "$LOW" tc qdisc add dev veth-low root netem limit 100000 \
	loss 3% delay 2ms 1ms reorder 5% 2>"$T/tc.err"; then
	IMPAIR=netem
	TARGET=10.91.0.2:7000
	echo "# impairment: tc netem loss 3% delay 2ms 1ms reorder 5% on veth-low"
else
	IMPAIR=sluice-impair
	TARGET=127.0.0.1:7001
	echo "# impairment: netem unavailable ($(head -1 "$T/tc.err")); sluice-impair" \
		"--drop 3 --reorder 5 inside the sender's namespace instead (no delay)"
	ip netns exec "$LOW" "$B/sluice-impair" --listen 127.0.0.1:7001 --to 10.91.0.2:7000 \
		--drop 3 --reorder 5 --seed 7 --quiet &
	PIDS+=("$!")
	sleep 0.2
fi

mkdir -p "$T/inbox"
head -c $((SIZE_MB << 20)) /dev/urandom >"$T/payload.bin"

# recv_high [args]: a --once receiver in the high namespace; sets RPID
recv_high() {
	ip netns exec "$HIGH" "$B/sluice-recv" --listen 10.91.0.2:7000 --inbox "$T/inbox" \
		--key "$T/keys/receiver/receiver.key" --trust "$T/keys/sender/sender.pub" \
		--once --end-grace 1 --session-timeout 20 -q "$@" 2>>"$T/recv.log" &
	RPID=$!
	PIDS+=("$RPID")
	sleep 0.3
}
# send_low FILE: from the low namespace through the impairment
send_low() {
	timeout 60 ip netns exec "$LOW" "$B/sluice-send" \
		--to "$TARGET" --rate 300m --fec 10% --key "$T/keys/sender/sender.key" \
		--recipient "$T/keys/receiver/receiver.pub" -q "$1"
}

recv_high --stats "$T/stats"
set +e
send_low "$T/payload.bin"
src=$?
wait_exit "$RPID" 30
rrc=$?
set -e
R=$T/inbox/.sluice/receipts.jsonl
check "sender exits 0 ($IMPAIR)" test "$src" -eq 0
check "receiver published and exited 0 ($IMPAIR; status $rrc)" test "$rrc" -eq 0
check "${SIZE_MB} MiB published byte-identical across the namespaces" \
	cmp -s "$T/payload.bin" "$T/inbox/payload.bin"
lost=$(grep '"event":"published"' "$R" 2>/dev/null | sed -n 's/.*"frames_lost":\([0-9]*\).*/\1/p')
check "the receipt shows real loss, all repaired (frames_lost=${lost:-none})" \
	test "${lost:-0}" -gt 0
check "staging empty after publication" test -z "$(ls -A "$T/inbox/.sluice/staging")"
if [ "$IMPAIR" = netem ]; then
	drops=$(ip netns exec "$LOW" tc -s qdisc show dev veth-low | sed -n 's/.*dropped \([0-9]*\).*/\1/p' | head -1)
	echo "# netem dropped ${drops:-?} packets"
fi

# --- above the FEC budget: nothing published, the receipt says why ---
if [ "$IMPAIR" = netem ]; then
	ip netns exec "$LOW" tc qdisc change dev veth-low root netem limit 100000 \
		loss 30% delay 2ms 1ms reorder 5%
else
	ip netns exec "$LOW" "$B/sluice-impair" --listen 127.0.0.1:7002 --to 10.91.0.2:7000 \
		--drop 30 --reorder 5 --seed 8 --quiet &
	PIDS+=("$!")
	TARGET=127.0.0.1:7002
	sleep 0.2
fi
head -c $((4 << 20)) /dev/urandom >"$T/lossy.bin"
recv_high
set +e
send_low "$T/lossy.bin"
wait_exit "$RPID" 30
rrc=$?
set -e
check "at 30% loss with 10% FEC the receiver reports failure (status $rrc)" test "$rrc" -eq 1
check "nothing of it is published" test ! -e "$T/inbox/lossy.bin"
check "the receipt says incomplete, with what was missing" \
	grep -q '"event":"incomplete".*"name":"lossy.bin".*"symbols_missing_at_least":[1-9]' "$R"
check "its verified blocks are kept for a resend, not left in staging" \
	test -z "$(ls -A "$T/inbox/.sluice/staging")"

finish
