#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# End-to-end test of sluice-impair over loopback: every impairment, seeded
# determinism, the reorder idle flush, jumbo datagrams, IPv6, the stats file,
# signals and usage errors.
#
#   udp_blast send ──UDP──▶ sluice-impair ──UDP──▶ udp_blast sink
#   (numbered, self-       (--listen H:0)         (--listen H:0; counts
#    checking datagrams)                           intact / corrupt / truncated)
#
# usage: test_impair.sh [BUILD_DIR]   (default: $BUILD_DIR, else ./build)
# Exit 77 (skip) if a binary or a needed tool is missing.
set -euo pipefail

bin_dir=${1:-${BUILD_DIR:-./build}}
impair=$bin_dir/sluice-impair
blast=$bin_dir/udp_blast

skip() {
	echo "test_impair: SKIP: $*" >&2
	exit 77
}
for tool in timeout sed grep tr cmp awk mktemp sleep; do
	command -v "$tool" >/dev/null || skip "'$tool' is not installed"
done
[[ -x $impair ]] || skip "$impair not found; build first or pass the build dir"
[[ -x $blast ]] || skip "$blast not found; build first or pass the build dir"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sluice-test-impair.XXXXXX")
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	rm -rf -- "$tmp"
}
trap cleanup EXIT

passed=0
failed=0
ok() {
	passed=$((passed + 1))
	echo "ok   $1"
}
fail() {
	failed=$((failed + 1))
	echo "FAIL $1" >&2
}
check() {
	local name=$1
	shift
	if "$@"; then ok "$name"; else fail "$name"; fi
}
# expect NAME 'ARITHMETIC': the expression, with values already expanded, is shown on failure.
expect() {
	if (($2)); then ok "$1"; else fail "$1 ($2)"; fi
}
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
err_has() { grep -q -- "$1" "$tmp/err"; }

# A value from the sink's "k=v k=v" line or the proxy's "k=v" lines; -1 if absent.
sk() {
	local v
	v=$(tr ' ' '\n' <"$tmp/$1.sink" | sed -n "s/^$2=//p")
	echo "${v:--1}"
}
px() {
	local v
	v=$(sed -n "s/^$2=//p" "$tmp/$1.px")
	echo "${v:--1}"
}

# listen_port FILE PID: the port of the "listening on ADDR:PORT" line in FILE,
# waiting up to 5 s; fails if PID exits first.
listen_port() {
	local i port
	for ((i = 0; i < 100; i++)); do
		port=$(sed -n 's/.*listening on [^ ,]*:\([0-9]\{1,5\}\).*/\1/p' "$1")
		if [[ -n $port ]]; then
			echo "$port"
			return 0
		fi
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}

# start_proxy NAME HOST TO-PORT [ARGS...]: run sluice-impair in the background;
# sets px_pid and px_port.  Its stdout goes to NAME.px, stderr to NAME.pxerr.
# --foreground: a plain timeout follows a forwarded SIGTERM with SIGCONT, and a
# SIGCONT that lands while LeakSanitizer ptrace-attaches at exit cancels the
# attach's SIGSTOP, hanging an ASan build for good.  -k 5: hung means killed.
start_proxy() {
	local name=$1 host=$2 to=$3
	shift 3
	timeout --foreground -k 5 60 "$impair" --listen "$host:0" --to "$host:$to" "$@" \
		>"$tmp/$name.px" 2>"$tmp/$name.pxerr" &
	px_pid=$!
	pids+=("$px_pid")
	px_port=$(listen_port "$tmp/$name.pxerr" "$px_pid")
}

# stop_proxy NAME SIGNAL: signal the proxy, wait, store its exit code in NAME.pxrc.
# (timeout passes TERM and INT on to the proxy and exits with its status.)
stop_proxy() {
	local rc=0
	kill -"$2" "$px_pid" 2>/dev/null || true
	wait "$px_pid" || rc=$?
	echo "$rc" >"$tmp/$1.pxrc"
}

# run_once NAME HOST COUNT SIZE RATE [IMPAIR-ARGS...]: send COUNT numbered
# datagrams of SIZE bytes at RATE per second through a fresh proxy into a fresh
# sink, which stops after 400 ms of quiet.  Leaves NAME.{sink,px,stats,rec,rc,pxrc}.
run_once() {
	local name=$1 host=$2 count=$3 size=$4 rate=$5 sink_pid sink_port rc=0
	shift 5
	timeout -k 5 60 "$blast" sink --listen "$host:0" --idle 400 --record "$tmp/$name.rec" \
		>"$tmp/$name.sink" 2>"$tmp/$name.sinkerr" &
	sink_pid=$!
	pids+=("$sink_pid")
	if ! sink_port=$(listen_port "$tmp/$name.sinkerr" "$sink_pid"); then
		fail "$name: sink did not start: $(cat "$tmp/$name.sinkerr")"
		return 1
	fi
	if ! start_proxy "$name" "$host" "$sink_port" --stats "$tmp/$name.stats" "$@"; then
		fail "$name: proxy did not start: $(cat "$tmp/$name.pxerr")"
		kill "$sink_pid" 2>/dev/null || true
		return 1
	fi
	timeout -k 5 60 "$blast" send --to "$host:$px_port" --count "$count" --size "$size" \
		--rate "$rate" >"$tmp/$name.sent" 2>&1 || rc=$?
	wait "$sink_pid" || rc=$?
	stop_proxy "$name" TERM
	echo "$rc" >"$tmp/$name.rc"
	# On any failure below, these lines say whether the kernel dropped anything.
	echo "     $name: sink: $(cat "$tmp/$name.sink"); proxy: $(tr '\n' ' ' <"$tmp/$name.px")"
}

# run: run_once, but if the kernel dropped datagrams on the proxy's or the
# sink's socket (a busy machine, not a proxy bug, and it would make the counts
# meaningless), try again at half the rate, three tries in all.
run() {
	local name=$1 host=$2 count=$3 size=$4 rate=$5 try
	shift 5
	for try in 1 2 3; do
		run_once "$name" "$host" "$count" "$size" "$rate" "$@" || return 0
		if (($(px "$name" kernel_dropped) <= 0 && $(sk "$name" kernel_dropped) <= 0)); then
			return 0
		fi
		echo "     $name: try $try: the kernel dropped datagrams; again at half the rate"
		rate=$((rate > 1 ? rate / 2 : 1))
	done
}

# ran_ok NAME: sender and sink succeeded and the proxy exited 0 on SIGTERM.
ran_ok() {
	local name
	for name; do
		[[ $(cat "$tmp/$name.rc" 2>/dev/null) == 0 ]] || return 1
		[[ $(cat "$tmp/$name.pxrc" 2>/dev/null) == 0 ]] || return 1
	done
}
differs() { ! cmp -s "$1" "$2"; }

N=20000
RATE=40000
L4=127.0.0.1

# --- no impairment: everything arrives, intact and in order ----------------------------
run clean $L4 $N 512 $RATE
check "clean: sender, sink and proxy (SIGTERM) exit 0" ran_ok clean
expect "clean: sink got all $N, each once" \
	"$(sk clean received) == $N && $(sk clean distinct) == $N"
expect "clean: nothing corrupted, truncated or out of order" \
	"$(sk clean corrupted) + $(sk clean truncated) + $(sk clean out_of_order) == 0"
expect "clean: proxy received=forwarded=$N" \
	"$(px clean received) == $N && $(px clean forwarded) == $N"
check "clean: final stats file equals the counters printed at exit" \
	cmp -s "$tmp/clean.stats" "$tmp/clean.px"
check "clean: stats file has all ten counters" \
	test "$(grep -cE '^[a-z_]+=[0-9]+$' "$tmp/clean.stats")" = 10
check "clean: no stats .tmp file left behind" test ! -e "$tmp/clean.stats.tmp"

# --- drop: a sane rate, the same datagrams every time for the same seed -----------------
run drop7a $L4 $N 512 $RATE --drop 10 --seed 7
run drop7b $L4 $N 512 $RATE --drop 10 --seed 7
run drop8 $L4 $N 512 $RATE --drop 10 --seed 8
d7=$(px drop7a dropped)
check "drop: all runs exit cleanly" ran_ok drop7a drop7b drop8
expect "drop 10%: dropped $d7 of $N is within 1700..2300" "$d7 >= 1700 && $d7 <= 2300"
expect "drop 10% seed 7: same count twice" "$(px drop7b dropped) == $d7"
expect "drop 10% seed 7: sink got exactly the rest" \
	"$(sk drop7a received) == $N - $d7 && $(sk drop7a distinct) == $N - $d7"
check "drop 10% seed 7: the same datagrams survive both runs" \
	cmp -s "$tmp/drop7a.rec" "$tmp/drop7b.rec"
check "drop 10% seed 8: a different seed drops different datagrams" \
	differs "$tmp/drop7a.rec" "$tmp/drop8.rec"
expect "drop: forwarded + dropped == received" \
	"$(px drop7a forwarded) + $d7 == $(px drop7a received)"

# Each impairment has its own PRNG stream: adding one must not move another's decisions.
run dropdup $L4 $N 512 $RATE --drop 10 --seed 7 --duplicate 5
awk '!seen[$0]++' "$tmp/dropdup.rec" >"$tmp/dropdup.uniq"
expect "drop+duplicate seed 7: drops the same count as drop alone" \
	"$(px dropdup dropped) == $d7"
check "drop+duplicate seed 7: the same datagrams survive" \
	cmp -s "$tmp/drop7a.rec" "$tmp/dropdup.uniq"

# --- burst drop -----------------------------------------------------------------------
run burst $L4 $N 512 $RATE --burst-drop 1 --burst-len 10 --seed 3
b=$(px burst burst_dropped)
check "burst: runs cleanly" ran_ok burst
expect "burst 1% x10: drops in bursts (~1800), $b" "$b >= 1000 && $b <= 2700"
expect "burst: sink got exactly the rest, plain drop untouched" \
	"$(sk burst distinct) == $N - $b && $(sk burst received) == $N - $b && $(px burst dropped) == 0"
# Burst losses are runs: the gaps in the received sequence add up to b.
gaps=$(awk 'BEGIN { prev = -1 } { if ($1 > prev + 1) g++; prev = $1 } END { print g + 0 }' \
	"$tmp/burst.rec")
expect "burst: losses come in runs (fewer gaps than losses), $gaps gaps" \
	"$gaps > 0 && $gaps * 5 < $b"

# --- duplicate ------------------------------------------------------------------------
run dup $L4 $N 512 $RATE --duplicate 5 --seed 2
u=$(px dup duplicated)
check "duplicate: runs cleanly" ran_ok dup
expect "duplicate 5%: sink received more than sent" "$(sk dup received) > $N"
expect "duplicate 5%: $u duplicated is within 800..1200" "$u >= 800 && $u <= 1200"
expect "duplicate 5%: every datagram once, plus exactly the duplicates" \
	"$(sk dup distinct) == $N && $(sk dup duplicates) == $u && $(sk dup received) == $N + $u"

# --- corrupt --------------------------------------------------------------------------
run corrupt $L4 $N 512 $RATE --corrupt 100 --seed 4
check "corrupt: runs cleanly" ran_ok corrupt
expect "corrupt 100%: every datagram arrives corrupted" \
	"$(sk corrupt received) == $N && $(sk corrupt corrupted) == $N && $(sk corrupt distinct) == 0"
expect "corrupt 100%: each by exactly one bit" "$(sk corrupt onebit) == $N"
expect "corrupt 100%: proxy counted them" "$(px corrupt corrupted) == $N"

# --- truncate -------------------------------------------------------------------------
run trunc $L4 $N 512 $RATE --truncate 100 --seed 5
check "truncate: runs cleanly" ran_ok trunc
expect "truncate 100%: every datagram arrives shorter" \
	"$(sk trunc received) == $N && $(sk trunc truncated) == $N && $(px trunc truncated) == $N"

# --- reorder --------------------------------------------------------------------------
run reorder $L4 $N 512 $RATE --reorder 10 --reorder-depth 8 --seed 6
r=$(px reorder reordered)
check "reorder: runs cleanly" ran_ok reorder
expect "reorder 10%: all $N delivered, none twice" \
	"$(sk reorder received) == $N && $(sk reorder distinct) == $N"
expect "reorder 10%: $r held back is within 1700..2300" "$r >= 1700 && $r <= 2300"
expect "reorder 10%: not in order ($(sk reorder out_of_order) late)" \
	"$(sk reorder out_of_order) > 0 && $(sk reorder out_of_order) <= $r"

# Fewer datagrams than the depth: only the 50 ms idle flush can release them.
run idle $L4 5 512 1000 --reorder 100 --reorder-depth 8
expect "reorder 100% of 5 (depth 8): the idle flush delivers all 5" \
	"$(sk idle distinct) == 5 && $(px idle reordered) == 5"

# --- jumbo datagrams and IPv6 -----------------------------------------------------------
run jumbo $L4 300 65000 500 --duplicate 10 --seed 9
expect "jumbo 65000-byte datagrams: all arrive intact" \
	"$(sk jumbo distinct) == 300 && $(sk jumbo corrupted) == 0 && $(sk jumbo truncated) == 0"

if timeout -k 5 5 "$blast" sink --listen '[::1]:0' --wait 1 >/dev/null 2>&1; then
	run v6 '[::1]' 5000 1200 $RATE --drop 10 --seed 7
	check "IPv6 [::1]: runs cleanly" ran_ok v6
	expect "IPv6 [::1]: sink got exactly what was not dropped" \
		"$(sk v6 distinct) == 5000 - $(px v6 dropped) && $(px v6 dropped) > 0"
else
	echo "skip IPv6: ::1 is not usable here"
fi

# --- stats file while idle, SIGINT, --quiet ------------------------------------------
start_proxy idle_stats $L4 9 --stats "$tmp/periodic.stats" || true
sleep 1.5
check "stats: written every second even when idle" \
	grep -qx 'received=0' "$tmp/periodic.stats"
stop_proxy idle_stats INT
check "SIGINT: exits 0" test "$(cat "$tmp/idle_stats.pxrc")" = 0
check "SIGINT: prints the counters" grep -qx 'forwarded=0' "$tmp/idle_stats.px"

start_proxy quiet $L4 9 --quiet || true
sleep 0.3
stop_proxy quiet TERM
check "--quiet: exits 0 and prints nothing" \
	test "$(cat "$tmp/quiet.pxrc")" = 0 -a ! -s "$tmp/quiet.px" -a ! -s "$tmp/quiet.pxerr"

# --- usage and start-up errors --------------------------------------------------------
pi() { timeout -k 5 10 "$impair" "$@"; }
to=(--listen 127.0.0.1:0 --to 127.0.0.1:9)
check_exit "usage: no arguments" 2 pi
check_exit "usage: --to missing" 2 pi --listen 127.0.0.1:0
check_exit "usage: --drop over 100" 2 pi "${to[@]}" --drop 101
check "usage: says what a percentage is" err_has "from 0 to 100"
check_exit "usage: --drop not a number" 2 pi "${to[@]}" --drop 5x
check_exit "usage: --drop nan" 2 pi "${to[@]}" --drop nan
check_exit "usage: --burst-drop without --burst-len" 2 pi "${to[@]}" --burst-drop 5
check "usage: asks for --burst-len" err_has "needs --burst-len"
check_exit "usage: --reorder-depth 0" 2 pi "${to[@]}" --reorder 5 --reorder-depth 0
check_exit "usage: --seed negative" 2 pi "${to[@]}" --seed -1
check_exit "usage: address without a port" 2 pi --listen 127.0.0.1 --to 127.0.0.1:9
check_exit "usage: IPv6 address without brackets" 2 pi --listen ::1:9000 --to 127.0.0.1:9
check "usage: says to use brackets" err_has "brackets"
check_exit "usage: destination port 0" 2 pi --listen 127.0.0.1:0 --to 127.0.0.1:0
check_exit "usage: unknown option" 2 pi "${to[@]}" --frobnicate
check_exit "usage: stray argument" 2 pi "${to[@]}" extra
check_exit "--help: exit 0" 0 pi --help
check "--help: prints usage" grep -q "usage: sluice-impair" "$tmp/out"
check_exit "bind to an address not on this host: exit 1" 1 \
	pi --listen 192.0.2.1:9 --to 127.0.0.1:9
check "bind failure: a sentence naming the address" err_has "cannot listen on 192.0.2.1:9"
check "... and what to do about it" err_has "not one of this host's; check --listen"

echo "$passed passed, $failed failed"
[[ $failed == 0 ]]
