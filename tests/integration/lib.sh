# SPDX-License-Identifier: MIT
# Shared by the integration tests that run the real binaries over loopback.
# Source it after `set -euo pipefail` with the build directory as $1:
#
#   . "$(dirname "$0")/lib.sh" "$@"
#
# It sets B (binaries), T (a scratch directory removed at exit), demo keys in
# $T/keys (sender, receiver, intruder), and the helpers below; `finish`
# prints the tally and gives the script's exit status.

B=$(cd "${1:-${BUILD_DIR:-build}}" && pwd)
T=$(mktemp -d /tmp/sluice-test.XXXXXX)
PIDS=()
passed=0
failed=0

# A script that has more to undo at exit (a mount, a network namespace)
# defines on_cleanup, before or after sourcing this file: it runs after the
# processes in PIDS are killed and before $T is removed.
NETNS=() # network namespaces made by netns_pair
cleanup() {
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	if declare -F on_cleanup >/dev/null; then on_cleanup || true; fi
	for ns in "${NETNS[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
	rm -rf "$T"
}
trap cleanup EXIT

for bin in sluice-send sluice-recv sluice-keygen sluice-impair; do
	[ -x "$B/$bin" ] || { echo "missing $B/$bin: build first"; exit 1; }
done

ok() { passed=$((passed + 1)); echo "ok - $*"; }
not_ok() { failed=$((failed + 1)); echo "not ok - $*"; }
check() { # check DESCRIPTION COMMAND...
	local what=$1
	shift
	if "$@"; then ok "$what"; else not_ok "$what"; fi
}

PORT=$((20000 + RANDOM % 20000))
next_ports() { # sets RP (receiver) and PP (proxy) to fresh ports
	RP=$((PORT + 1))
	PP=$((PORT + 2))
	PORT=$((PORT + 2))
}

mkdir -p "$T/keys"
"$B/sluice-keygen" sender "$T/keys/sender" >/dev/null
"$B/sluice-keygen" receiver "$T/keys/receiver" >/dev/null
"$B/sluice-keygen" sender "$T/keys/intruder" >/dev/null
export SLUICE_STATE_DIR="$T/sender-state"

# start_recv NAME PORT [extra args]: a receiver with its own inbox; sets RPID
start_recv() {
	local name=$1 port=$2
	shift 2
	mkdir -p "$T/$name/inbox"
	local before
	before=$(receipt_count "$name" start)
	"$B/sluice-recv" --listen "127.0.0.1:$port" --inbox "$T/$name/inbox" \
		--key "$T/keys/receiver/receiver.key" --trust "$T/keys/sender/sender.pub" \
		--stats "$T/$name/stats" --end-grace 1 --session-timeout 30 -q "$@" \
		2>"$T/$name/recv.log" &
	RPID=$!
	PIDS+=("$RPID")
	# Ready once it has cleaned staging and logged "start" (then it listens).
	for _ in $(seq 200); do
		[ "$(receipt_count "$name" start)" -gt "$before" ] && break
		kill -0 "$RPID" 2>/dev/null || break
		sleep 0.05
	done
	sleep 0.05
}

# start_proxy LISTEN_PORT TO_PORT [impairments]: sets XPID
start_proxy() {
	local lp=$1 tp=$2
	shift 2
	"$B/sluice-impair" --listen "127.0.0.1:$lp" --to "127.0.0.1:$tp" --quiet "$@" &
	XPID=$!
	PIDS+=("$XPID")
	sleep 0.2
}

send() { # send PORT FILE [extra args]
	local port=$1 file=$2
	shift 2
	timeout 300 "$B/sluice-send" --to "127.0.0.1:$port" --key "$T/keys/sender/sender.key" \
		--recipient "$T/keys/receiver/receiver.pub" -q "$@" "$file"
}

wait_exit() { # wait_exit PID SECONDS -> exit status of PID (124 on timeout)
	local pid=$1 limit=$2 i=0
	while kill -0 "$pid" 2>/dev/null; do
		i=$((i + 1))
		if [ "$i" -gt $((limit * 10)) ]; then
			kill -9 "$pid" 2>/dev/null || true
			wait "$pid" 2>/dev/null || true
			return 124
		fi
		sleep 0.1
	done
	local rc=0
	wait "$pid" 2>/dev/null || rc=$?
	return "$rc"
}

stat_of() { grep "^$2=" "$T/$1/stats" | cut -d= -f2; }
receipts() { cat "$T/$1/inbox/.sluice/receipts.jsonl"; }
inbox_files() { find "$T/$1/inbox" -mindepth 1 -not -path '*/.sluice*' | wc -l; }
# staging_parts NAME: staging files (*.part) in NAME's inbox
staging_parts() { find "$T/$1/inbox/.sluice/staging" -name '*.part' 2>/dev/null | wc -l; }

# counters_add_up NAME: NAME's --stats (written at exit) puts every
# datagram in exactly one counter, and the last stop record's
# rejected_frames is the sum of the refusal counters. Prints the figures.
REFUSALS="bad_header bad_length unknown_session finished_session replayed bad_tag bad_symbol
	announce_bad announce_not_for_us announce_untrusted announce_bad_signature announce_refused
	beacon_bad beacon_bad_signature beacon_stale beacon_rate_limited"
counters_add_up() {
	local refused=0 c v total rej
	for c in $REFUSALS; do
		v=$(stat_of "$1" "$c")
		refused=$((refused + ${v:-0}))
	done
	total=$(($(stat_of "$1" accepted) + $(stat_of "$1" announce_repeat) + $(stat_of "$1" late_status) +
		$(stat_of "$1" beacon_ok) + refused))
	rej=$(receipts "$1" | grep '"event":"stop"' | tail -1 | grep -o '"rejected_frames":[0-9]*' |
		cut -d: -f2)
	echo "# $1: datagrams $(stat_of "$1" datagrams), counted $total, refused $refused," \
		"stop record rejected_frames ${rej:-none}"
	[ "$total" -eq "$(stat_of "$1" datagrams)" ] && [ "${rej:-x}" = "$refused" ]
}

# netns_pair NAME NET: two network namespaces, sl-NAME-low-PID and
# sl-NAME-high-PID, joined by a veth pair: veth-low NET.1/24 in the low one,
# veth-high NET.2/24 in the high one, loopback up in both, veth-high up.
# Sets LOW and HIGH; both are deleted at exit. Without ip(8) or the right
# to make namespaces (root), the test is skipped (exit 77). veth-low stays
# down until netns_low_up.
netns_pair() {
	local what
	what=$(basename "$0" .sh)
	command -v ip >/dev/null || { echo "$what: SKIP: ip(8) (iproute2) is not installed"; exit 77; }
	LOW=sl-$1-low-$$
	HIGH=sl-$1-high-$$
	NETNS_NET=$2
	if ! ip netns add "$LOW" 2>/dev/null; then
		echo "$what: SKIP: ip netns add is not permitted (needs root / CAP_SYS_ADMIN)"
		exit 77
	fi
	NETNS+=("$LOW")
	ip netns add "$HIGH"
	NETNS+=("$HIGH")
	ip link add veth-low netns "$LOW" type veth peer name veth-high netns "$HIGH"
	ip -n "$LOW" addr add "$NETNS_NET.1/24" dev veth-low
	ip -n "$HIGH" addr add "$NETNS_NET.2/24" dev veth-high
	for ns in "$LOW" "$HIGH"; do ip -n "$ns" link set lo up; done
	ip -n "$HIGH" link set veth-high up
}
# netns_low_up: veth-low up. One way only, like a diode: the low side never
# hears from the high side, so it gets a static neighbour entry for NET.2
# instead of ARP (the receiver sends nothing anyway).
netns_low_up() {
	local mac
	ip -n "$LOW" link set veth-low up
	mac=$(ip -n "$HIGH" -o link show veth-high | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p')
	ip -n "$LOW" neigh replace "$NETNS_NET.2" lladdr "$mac" dev veth-low nud permanent
}

# receipt_count NAME EVENT: records of that event in NAME's receipt log
receipt_count() {
	local log=$T/$1/inbox/.sluice/receipts.jsonl
	if [ -f "$log" ]; then grep -c "\"event\":\"$2\"" "$log" || true; else echo 0; fi
}
# wait_receipt NAME EVENT COUNT: wait up to 10 s for COUNT such records
wait_receipt() {
	for _ in $(seq 100); do
		[ "$(receipt_count "$1" "$2")" -ge "$3" ] && return 0
		sleep 0.1
	done
	return 1
}

finish() {
	echo "$passed passed, $failed failed"
	[ "$failed" -eq 0 ]
}
