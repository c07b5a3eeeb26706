#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Loopback benchmark: sluice against the raw UDP ceiling and udpcast.
#
#   udp_ceiling send ──UDP GSO──► udp_ceiling sink          (a) raw ceiling, no FEC/crypto
#                                 (then --gro, as sluice-recv: its kernel CPU per GB)
#   sluice-send ──────FEC+AEAD──► sluice-recv → inbox       (b) sluice, --fec 10%
#   udp-sender --async --fec ──► udp-receiver → file        (c) udpcast one-way, ~10% FEC
#   bench_hash                                             (h) the content hash's bound
#   sluice-send ─────────────────► udp_ceiling sink          pacing: achieved vs --rate
#   sluice-send ─────────────────► udp_ceiling sink          sides: the sender alone
#   udp_ceiling replay (a recorded sluice-send run) ─► sluice-recv   the receiver alone
#
# For (a)-(c) a short bounded ladder of rates finds the highest one that still
# delivers (byte-identical output; for (a) no datagram lost). Goodput is file
# bytes per second; every figure is from this run, so compare the ratios
# rather than absolute numbers on a shared machine. Then: the compressible
# file, --mtu 9000, and a perf profile of sender and receiver. Every timed
# step also prints the hypervisor's steal over it: on a VM whose host is
# busy, that is CPU time neither program got.
#
# Usage: tools/bench.sh            (1 GiB files, about 8-10 minutes)
#   BENCH_MB=256 tools/bench.sh    smaller files for a quick run
#   BENCH_DIR=DIR                  work directory (default: a fresh /tmp dir, removed)
#   BUILD_DIR=DIR                  binaries (default build-bench, configured and built here)
#   BENCH_PACE_S=10                seconds per pacing run
#   BENCH_PACE_RATES="1 3 6"       Gb/s of the pacing runs (a rate above what the sender
#                                  can encode shows as 'waited for frames')
#   BENCH_SKIP="udpcast profile"   steps to skip: ceiling hash sluice text udpcast pacing
#                                  jumbo sides profile
#   BENCH_RSS_GB=10                also send a sparse N GiB file (--no-compress) for the
#                                  receiver's peak RSS (off by default: slow)
# Results are printed and kept in DIR/results.txt (the directory is kept when
# BENCH_DIR is given).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MB=${BENCH_MB:-1024}
PACE_S=${BENCH_PACE_S:-10}
PACE_RATES=${BENCH_PACE_RATES:-1 3 6}
SKIP=" ${BENCH_SKIP:-} "
RSS_GB=${BENCH_RSS_GB:-0}
FEC_PCT=10
# udpcast: 8 interleaved stripes of 128 data blocks + 13 FEC blocks each = 10.2%
UDPCAST_FEC=8x13/128

if [ -n "${BENCH_DIR:-}" ]; then
	W=$BENCH_DIR
	mkdir -p "$W"
	KEEP=1
else
	W=$(mktemp -d /tmp/sluice-bench.XXXXXX)
	KEEP=0
fi
W=$(cd "$W" && pwd)
PIDS=()
# shellcheck disable=SC2317 # called by the EXIT trap
killtree() { # PID: the process and what it started (time -> timeout -> program)
	killkids "$1"
	kill "$1" 2>/dev/null || true
}
killkids() { # PID: only what it started, so GNU time still writes its report
	local c
	for c in $(pgrep -P "$1" 2>/dev/null); do killtree "$c"; done
}
# shellcheck disable=SC2317
cleanup() {
	for p in "${PIDS[@]}"; do killtree "$p"; done
	if [ "$KEEP" = 0 ]; then
		rm -rf "$W"
	else
		rm -f "$W"/rand.bin "$W"/text.bin "$W"/sparse.bin
	fi
}
trap cleanup EXIT

RES=$W/results.txt
: >"$RES"
say() { echo "$*" | tee -a "$RES"; }
log() { echo "bench: $*" >&2; }
skip() { [[ $SKIP == *" $1 "* ]]; }
calc() { awk "BEGIN { printf \"%.${2:-3}f\", ($1) }"; }
now() { date +%s.%N; }
# Steal: CPU time the hypervisor gave to other guests while this VM wanted
# to run (/proc/stat, the cpu line's eighth value, in clock ticks). On a
# shared host it takes rate and pacing with it, so every timed step says
# how much it lost.
TICK=$(getconf CLK_TCK 2>/dev/null || echo 100)
steal_ticks() { awk '/^cpu / { print $9 + 0 }' /proc/stat 2>/dev/null || echo 0; }
steal_mark() { echo "$(now) $(steal_ticks)"; }
steal_since() { # MARK (from steal_mark): % of all CPUs stolen since then
	local secs
	secs=$(calc "$(now) - ${1% *}")
	calc "$secs > 0 ? ($(steal_ticks) - ${1#* }) / $TICK / ($secs * $(nproc)) * 100 : 0" 1
}

# --- build ---
if [ -z "${BUILD_DIR:-}" ]; then
	[ -x "$ROOT/tools/setup.sh" ] && "$ROOT/tools/setup.sh"
	B=$ROOT/build-bench
	cmake -S "$ROOT" -B "$B" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build "$B" -j"$(nproc)" --target sluice-send sluice-recv sluice-keygen udp_ceiling \
		bench_hash bench_aead bench_fec >/dev/null
else
	B=$(cd "$BUILD_DIR" && pwd)
fi
for bin in sluice-send sluice-recv sluice-keygen udp_ceiling; do
	[ -x "$B/$bin" ] || { echo "bench: missing $B/$bin" >&2; exit 1; }
done
TIME=/usr/bin/time
[ -x "$TIME" ] || { echo "bench: needs GNU time (/usr/bin/time, package 'time')" >&2; exit 1; }
if ! command -v udp-sender >/dev/null || ! command -v udp-receiver >/dev/null; then
	log "udpcast not installed: skipping (c)"
	SKIP="$SKIP udpcast "
fi

PORT=$((20000 + RANDOM % 20000))
PORT=$((PORT & ~1)) # udpcast wants an even port base
next_port() { PORT=$((PORT + 2)); }

# --- inputs ---
BYTES=$((MB << 20))
log "generating ${MB} MiB random and ${MB} MiB text files in $W"
head -c "$BYTES" /dev/urandom >"$W/rand.bin"
tar -cf "$W/inc.tar" -C /usr include 2>/dev/null || true
[ -s "$W/inc.tar" ] || head -c $((64 << 20)) /dev/zero | tr '\0' 'a' >"$W/inc.tar"
: >"$W/text.bin"
while [ "$(stat -c %s "$W/text.bin")" -lt "$BYTES" ]; do cat "$W/inc.tar" >>"$W/text.bin"; done
truncate -s "$BYTES" "$W/text.bin"
rm -f "$W/inc.tar"
rm -rf "$W/keys" && mkdir -p "$W/keys"
"$B/sluice-keygen" sender "$W/keys/s" >/dev/null
"$B/sluice-keygen" receiver "$W/keys/r" >/dev/null

say "sluice loopback benchmark, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, ${MB} MiB files"
say "host: $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
say "tree: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" \
	diff --quiet HEAD 2>/dev/null || echo ' with uncommitted changes')"
say "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
RUN_MARK=$(steal_mark)

# time_fields FILE -> "wall user sys maxrss_kib" from /usr/bin/time -f
TFMT='%e %U %S %M'
# (GNU time puts "Command exited with non-zero status N" first when it did)
# (and nothing at all when it was killed itself)
cpu_of() { tail -1 "$1" | awk '{ c = $2 + $3 } END { printf "%.2f", c }'; }
rss_of() { tail -1 "$1" | awk '{ m = $4 / 1024 } END { printf "%.0f", m }'; }
wall_of() { tail -1 "$1" | awk '{ w = $1 } END { printf "%.3f", (w > 0 ? w : 0.001) }'; }

# ================= (a) raw ceiling =================
CEIL=0 # payload Gb/s, loss-free
CEIL_PPS=0 # datagrams per second received at that rate
CEIL_CPU=0 # CPU-s (blaster + sink) per GB of payload at that rate: the kernel's UDP work alone
CEIL_GRO_CPU=0 # the same at the same rate with the sink on UDP_GRO, as sluice-recv receives
# ceiling_run RATE(0 = unpaced) SECONDS [sink options] -> sets C_SENT C_RECV C_GBPS C_PPS
# C_SWIRE C_CPU
ceiling_run() {
	local rate=$1 secs=$2 p
	shift 2
	next_port
	p=$PORT
	$TIME -f "$TFMT" -o "$W/ceil.sink.time" "$B/udp_ceiling" sink --listen "127.0.0.1:$p" \
		--idle-ms 700 "$@" >"$W/ceil.sink" 2>/dev/null &
	local spid=$!
	PIDS+=("$spid")
	sleep 0.2
	local args=(--to "127.0.0.1:$p" --seconds "$secs")
	[ "$rate" != 0 ] && args+=(--rate "$rate")
	$TIME -f "$TFMT" -o "$W/ceil.send.time" "$B/udp_ceiling" send "${args[@]}" >"$W/ceil.send"
	wait "$spid" || true
	local bytes
	bytes=$(grep -o ' bytes=[0-9]*' "$W/ceil.sink" | cut -d= -f2 || true)
	C_CPU=0
	if [ "${bytes:-0}" -gt 0 ]; then
		C_CPU=$(calc "($(cpu_of "$W/ceil.send.time") + $(cpu_of "$W/ceil.sink.time")) / ($bytes / 1e9)")
	fi
	C_SENT=$(grep -o 'sent=[0-9]*' "$W/ceil.send" | cut -d= -f2 || true)
	C_RECV=$(grep -o 'received=[0-9]*' "$W/ceil.sink" | cut -d= -f2 || true)
	C_GBPS=$(grep -o ' gbps=[0-9.]*' "$W/ceil.sink" | cut -d= -f2 || true)
	C_PPS=$(grep -o ' pps=[0-9]*' "$W/ceil.sink" | cut -d= -f2 || true)
	C_SWIRE=$(grep -o 'wire_gbps=[0-9.]*' "$W/ceil.send" | cut -d= -f2 || true)
	C_SENT=${C_SENT:-0} C_RECV=${C_RECV:--1} C_GBPS=${C_GBPS:-0} C_PPS=${C_PPS:-0}
	C_SWIRE=${C_SWIRE:-0}
}
if ! skip ceiling; then
	log "(a) raw UDP ceiling: GSO blaster -> recvmmsg sink, 1472-byte datagrams"
	ceiling_run 0 3
	say "(a) unpaced: sent $(calc "$C_SWIRE") Gb/s wire, received $(calc "$C_GBPS") Gb/s" \
		"payload, $(calc "$C_PPS / 1e6" 3) Mpps, lost $((C_SENT - C_RECV)) of $C_SENT"
	if [ "$C_SENT" = "$C_RECV" ]; then
		CEIL=$C_GBPS CEIL_PPS=$C_PPS CEIL_CPU=$C_CPU
	else
		# bisect paced wire rates between half and all of what the sender reached
		lo=$(calc "$C_SWIRE * 0.5"); hi=$C_SWIRE
		for _ in 1 2 3 4; do
			mid=$(calc "($lo + $hi) / 2")
			ceiling_run "${mid}g" 3
			if [ "$C_SENT" = "$C_RECV" ]; then
				lo=$mid
				if [ "$(calc "$C_GBPS > $CEIL" 0)" = 1 ]; then
					CEIL=$C_GBPS CEIL_PPS=$C_PPS CEIL_CPU=$C_CPU
				fi
				r=ok
			else
				hi=$mid
				r="lost $((C_SENT - C_RECV))"
			fi
			say "(a) paced ${mid}g: received $(calc "$C_GBPS") Gb/s payload," \
				"$(calc "$C_PPS / 1e6" 3) Mpps, $r"
		done
	fi
	say "(a) raw ceiling (loss-free): $(calc "$CEIL") Gb/s payload, $(calc "$CEIL_PPS / 1e6" 3) Mpps;" \
		"blaster + sink CPU $(calc "$CEIL_CPU") s per GB of payload (the kernel's UDP work alone)"
	# sluice-recv turns UDP_GRO on. On loopback a GSO super-datagram then reaches
	# the socket whole, never split into one skb per datagram, so the same
	# traffic costs the kernel less: measured at the ceiling's rate, for the CPU
	# budget below. Unpaced, the GRO sink's figure is close to memory bandwidth,
	# not a per-datagram ceiling; it is printed for completeness.
	if [ "$(calc "$CEIL > 0" 0)" = 1 ]; then
		ceiling_run "$(calc "$CEIL * 1500 / 1472")g" 3 --gro
		[ "$C_SENT" = "$C_RECV" ] && CEIL_GRO_CPU=$C_CPU
		say "(a) the same rate into a UDP_GRO sink (as sluice-recv receives): blaster + sink CPU" \
			"$(calc "$C_CPU") s per GB of payload, lost $((C_SENT - C_RECV)) of $C_SENT"
		ceiling_run 0 3 --gro
		say "(a) unpaced into a UDP_GRO sink: received $(calc "$C_GBPS") Gb/s payload," \
			"lost $((C_SENT - C_RECV)) of $C_SENT (coalesced buffers, not a per-datagram ceiling)"
	fi
fi

# ================= (h) the content hash's bound =================
# The receiver checks every byte with one sequential BLAKE2b stream (PROTOCOL.md
# §8.1), so one core's BLAKE2b speed bounds its goodput, whatever else it does
# and however many cores it has. bench_hash measures that stream as sluice runs it.
HASH_GBPS=0
PRIM_CPU=0 # CPU-s per GB that BLAKE2b, the AEAD and the RS encode need, from this run
# Symbols on the wire per file symbol at --fec 10%: (1 + P/G)(1 + m/k) with
# G = 32, P = 2, k = 128, m = 4 (DECISIONS.md §1); and UDP payload per file
# byte, each 1416-byte symbol in a 1472-byte frame.
WIRE_SYMS=$(calc "34 / 32 * 132 / 128" 4)
WIRE_BYTES=$(calc "$WIRE_SYMS * 1472 / 1416" 4)
if ! skip hash; then
	if [ ! -x "$B/bench_hash" ]; then
		log "no $B/bench_hash: skipping (h)"
	elif H=$("$B/bench_hash" 256); then
		HASH_GBPS=$(awk '/libsodium \(baseline\)/ { printf "%.3f", $(NF - 1) * 8 }' <<<"$H")
		say "(h) BLAKE2b content stream (libsodium, one core): $(calc "$HASH_GBPS / 8" 2) GB/s," \
			"so at most $(calc "$HASH_GBPS" 2) Gb/s of verified goodput"
		grep libgcrypt <<<"$H" | sed 's/^ */(h)   /' | tee -a "$RES"
	else
		log "bench_hash failed: skipping (h)"
	fi
	# What the send phase cannot do without, per GB of file, from single-thread
	# primitive speeds in this run: the receiver's BLAKE2b, one AEAD seal and one
	# open, and the RS encode at --fec 10% (inner k = 128, m = 4 over the 32 data
	# and 2 parity rows of a group; outer 32 + 2 across them, DECISIONS.md §1).
	# The parity frames are sealed and opened too (WIRE_SYMS), and a 1472-byte
	# frame seals 1424 bytes per 1416-byte symbol. File I/O, copies, zstd and
	# the UDP work come on top, so this is a floor.
	if [ "$(calc "$HASH_GBPS > 0" 0)" = 1 ] && [ -x "$B/bench_aead" ] && [ -x "$B/bench_fec" ]; then
		A=$("$B/bench_aead" 1472 || true)
		# seal_open ROW: the seal+open GB/s of bench_aead's row matching ROW
		seal_open() {
			awk -v row="$1" '$0 ~ row { for (i = 1; i < NF; i++) if ($i == "seal+open")
				print $(i + 1) }' <<<"$A"
		}
		AEAD_NAME="AES-256-GCM (libgcrypt)"
		AEAD_GBS=$(seal_open "aes256gcm  libgcrypt")
		if [ -z "$AEAD_GBS" ]; then
			AEAD_NAME="XChaCha20-Poly1305"
			AEAD_GBS=$(seal_open xchacha20poly1305)
		fi
		RS_IN=$("$B/bench_fec" 128 4 1416 | awk '/^encode/ && $6 == "MB/s" { print $5 }' || true)
		RS_OUT=$("$B/bench_fec" 32 2 181248 | awk '/^encode/ && $6 == "MB/s" { print $5 }' || true)
		if [ -n "$AEAD_GBS" ] && [ -n "$RS_IN" ] && [ -n "$RS_OUT" ]; then
			C_HASH=$(calc "8 / $HASH_GBPS") C_AEAD=$(calc "2 / $AEAD_GBS * $WIRE_SYMS * 1424 / 1416")
			C_RS=$(calc "1000 / $RS_IN * 34 / 32 + 1000 / $RS_OUT")
			PRIM_CPU=$(calc "$C_HASH + $C_AEAD + $C_RS")
			say "(h) primitives per GB of file: BLAKE2b $C_HASH + $AEAD_NAME seal and open $C_AEAD" \
				"+ RS encode $C_RS = $PRIM_CPU CPU-s (one thread each; before file I/O and UDP)"
		else
			log "bench_aead or bench_fec printed nothing usable: no primitive floor"
		fi
	fi
fi

# ================= (b) sluice =================
# sluice_run NAME FILE RATE [sluice-send options]: one transfer; sets S_OK S_GOOD
# (file Gb/s over the send phase) S_E2E (file Gb/s, sender start to publication)
# S_WIRE (sender's wire Mb/s) S_STEAL (% of the CPUs the hypervisor took over it)
# and leaves times in $W/NAME.{send,recv}.time
sluice_run() {
	local name=$1 file=$2 rate=$3 p out t0 t1 mark rrc=0 src=0 secs dgrams
	shift 3
	next_port
	p=$PORT
	out=$W/$name
	rm -rf "$out"
	mkdir -p "$out/inbox"
	"$TIME" -f "$TFMT" -o "$out.recv.time" timeout 300 "$B/sluice-recv" \
		--listen "127.0.0.1:$p" --inbox "$out/inbox" --key "$W/keys/r/receiver.key" \
		--trust "$W/keys/s/sender.pub" --once --stats "$out.stats" --end-grace 1 \
		--session-timeout 15 -q "${RECV_ARGS[@]}" 2>"$out.recv.log" &
	local rpid=$!
	PIDS+=("$rpid")
	sleep 0.3
	t0=$(now) mark=$(steal_mark)
	"$TIME" -f "$TFMT" -o "$out.send.time" timeout 600 "$B/sluice-send" \
		--to "127.0.0.1:$p" --rate "$rate" --fec "$FEC_PCT%" --key "$W/keys/s/sender.key" \
		--recipient "$W/keys/r/receiver.pub" --state-dir "$W/state" "$@" "$file" \
		>"$out.send.log" 2>&1 || src=$?
	wait "$rpid" || rrc=$?
	t1=$(now)
	S_STEAL=$(steal_since "$mark")
	S_OK=0
	if [ "$src" = 0 ] && [ "$rrc" = 0 ] && cmp -s "$file" "$out/inbox/$(basename "$file")"; then
		S_OK=1
	fi
	rm -rf "$out/inbox" # keep the disk free; receipts are in the logs
	secs=$(grep -o ' in [0-9.]* s' "$out.send.log" | awk '{ print $2 }' || true)
	S_WIRE=$(grep -o '[0-9]* Mb/s on the wire' "$out.send.log" | awk '{ print $1 }' || true)
	S_GOOD=$(calc "${secs:-0} > 0 ? $(stat -c %s "$file") * 8 / ${secs:-1} / 1e9 : 0" 3)
	S_E2E=$(calc "$(stat -c %s "$file") * 8 / ($t1 - $t0) / 1e9" 3)
	S_WIRE=${S_WIRE:-0}
	# datagrams the receiver took in, over the send phase
	dgrams=$(grep -o '^datagrams=[0-9]*' "$out.stats" 2>/dev/null | cut -d= -f2 || true)
	S_PPS=$(calc "${secs:-0} > 0 ? ${dgrams:-0} / ${secs:-1} / 1e6 : 0" 3)
}
sluice_line() { # LABEL NAME
	say "$1 requested $2: $([ "$S_OK" = 1 ] && echo identical || echo FAILED)," \
		"wire $(calc "$S_WIRE / 1000" 2) Gb/s ($S_PPS Mpps), goodput $S_GOOD Gb/s (send phase)," \
		"$S_E2E Gb/s end to end; CPU send $(cpu_of "$W/$3.send.time") s," \
		"recv $(cpu_of "$W/$3.recv.time") s; peak RSS send $(rss_of "$W/$3.send.time") MiB," \
		"recv $(rss_of "$W/$3.recv.time") MiB; steal $S_STEAL%"
}

RECV_ARGS=() # extra sluice-recv options
SL_BEST=0 SL_E2E=0 SL_PPS=0 SL_RATE="" SL_NAME=""
if ! skip sluice; then
	log "(b) sluice --fec $FEC_PCT%, full crypto, random file"
	# One unreported transfer first: on a VM with free page reporting the
	# first one after an idle spell lands on pages handed back to the host
	# and runs slower (docs/PERFORMANCE.md, run 8).
	sluice_run slwarm "$W/rand.bin" 2g
	# Ladder from 2g: double while it delivers, bisect between the last
	# success and the last failure otherwise. When the sender falls short
	# of the request (the pair shares two cores, so its pacer loses time
	# while descheduled) a higher request still gets more on the wire:
	# step up by a quarter instead of doubling. Six steps: 2, 4, 8, then
	# bisections down to half a Gb/s (run 25: 5g delivered and 6g did not,
	# and 5.5g, untried by a five-step ladder, delivered 5 of 6 by hand).
	lo=0; hi=0; rate=2
	for i in 1 2 3 4 5 6; do
		sluice_run "sl$i" "$W/rand.bin" "${rate}g"
		sluice_line "(b) sluice" "${rate}g" "sl$i"
		if [ "$S_OK" = 1 ]; then
			if [ "$(calc "$S_GOOD > $SL_BEST" 0)" = 1 ]; then
				SL_BEST=$S_GOOD SL_E2E=$S_E2E SL_PPS=$S_PPS SL_RATE=${rate}g SL_NAME=sl$i
			fi
			lo=$rate
		else
			hi=$rate
		fi
		if [ "$hi" != 0 ]; then
			[ "$(calc "$hi - $lo < 0.3" 0)" = 1 ] && break
			rate=$(calc "($lo + $hi) / 2" 2)
		elif [ "$(calc "$S_WIRE / 1000 < $rate * 0.9" 0)" = 1 ]; then
			rate=$(calc "$rate * 1.25" 2)
		else
			rate=$(calc "$rate * 2" 2)
		fi
	done
	say "(b) sluice best: $SL_BEST Gb/s goodput at --rate $SL_RATE ($SL_E2E Gb/s end to end)"
fi

if ! skip text && [ -n "$SL_RATE" ]; then
	log "(b') sluice on the compressible file at $SL_RATE"
	sluice_run sltext "$W/text.bin" "$SL_RATE"
	sluice_line "(b') sluice text (zstd)" "$SL_RATE" sltext
	grep -o 'stored [0-9.]*% of raw' "$W/sltext.send.log" | sed 's/^/     /' | tee -a "$RES" || true
fi

# ================= (c) udpcast =================
# udpcast_run NAME RATE: sets U_OK U_GOOD (file Gb/s, sender start to receiver
# exit) and U_SEND (file Gb/s over the sender's run). The receiver gets the
# largest socket buffer an ordinary SO_RCVBUF can have (net.core.rmem_max);
# sluice-recv takes 64 MiB with SO_RCVBUFFORCE when it runs as root.
udpcast_run() {
	local name=$1 rate=$2 p out t0 t1 rpid spid
	next_port
	p=$PORT
	out=$W/$name
	rm -f "$out.out"
	"$TIME" -f "$TFMT" -o "$out.recv.time" timeout 300 udp-receiver --nokbd --interface lo \
		--portbase "$p" --mcast-rdv-address 127.0.0.1 --file "$out.out" --rcvbuf "$RMEM" \
		--start-timeout 20 --receive-timeout 5 >"$out.recv.log" 2>&1 </dev/null &
	rpid=$!
	PIDS+=("$rpid")
	sleep 0.3
	t0=$(now)
	"$TIME" -f "$TFMT" -o "$out.send.time" timeout 300 udp-sender --async --nokbd \
		--interface lo --portbase "$p" --mcast-rdv-address 127.0.0.1 \
		--mcast-data-address 127.0.0.1 --fec "$UDPCAST_FEC" --max-bitrate "$rate" \
		--autostart 2 --rexmit-hello-interval 50 --file "$W/rand.bin" \
		>"$out.send.log" 2>&1 </dev/null &
	spid=$!
	PIDS+=("$spid")
	# In async mode the sender never learns that the receiver gave up.
	while kill -0 "$rpid" 2>/dev/null && kill -0 "$spid" 2>/dev/null; do sleep 0.05; done
	wait "$rpid" 2>/dev/null || true
	t1=$(now)
	killkids "$spid"
	wait "$spid" 2>/dev/null || true
	U_OK=0
	cmp -s "$W/rand.bin" "$out.out" && U_OK=1
	rm -f "$out.out"
	U_GOOD=$(calc "$BYTES * 8 / ($t1 - $t0) / 1e9" 3)
	U_SEND=$(calc "$BYTES * 8 / $(wall_of "$out.send.time") / 1e9" 3)
}
RMEM=$(cat /proc/sys/net/core/rmem_max 2>/dev/null || echo 4194304)
UC_BEST=0 UC_SEND=0 UC_RATE=""
if ! skip udpcast; then
	log "(c) udpcast --async --fec $UDPCAST_FEC, random file, receiver --rcvbuf $RMEM"
	# Same ladder as sluice, from 500m. Its --max-bitrate is a 32-bit int of
	# bit/s (3000m hangs before the first data packet), so the top is 2000m.
	lo=0; hi=0; rate=500
	for i in 1 2 3 4; do
		udpcast_run "uc$i" "${rate}m"
		say "(c) udpcast --max-bitrate ${rate}m: $([ "$U_OK" = 1 ] && echo identical || echo FAILED)," \
			"goodput $U_SEND Gb/s (sender run), $U_GOOD Gb/s end to end; CPU send" \
			"$(cpu_of "$W/uc$i.send.time") s, recv $(cpu_of "$W/uc$i.recv.time") s; peak RSS" \
			"send $(rss_of "$W/uc$i.send.time") MiB, recv $(rss_of "$W/uc$i.recv.time") MiB"
		if [ "$U_OK" = 1 ]; then
			if [ "$(calc "$U_GOOD > $UC_BEST" 0)" = 1 ]; then
				UC_BEST=$U_GOOD UC_SEND=$U_SEND UC_RATE=${rate}m
			fi
			lo=$rate
			# wire ~ goodput x 1.13 (FEC + headers): far below the request = CPU-bound
			[ "$(calc "$U_SEND * 1.13 < $rate / 1000 * 0.9" 0)" = 1 ] && break
			[ "$rate" = 2000 ] && break
		else
			hi=$rate
		fi
		if [ "$hi" = 0 ]; then rate=$((rate * 2 > 2000 ? 2000 : rate * 2)); else rate=$(((lo + hi) / 2)); fi
	done
	say "(c) udpcast best: $UC_SEND Gb/s (sender run), $UC_BEST Gb/s end to end," \
		"at --max-bitrate ${UC_RATE:-none}"
fi

# ================= pacing =================
PACE_SUM="" PACE_OK=1
if ! skip pacing; then
	for rate in $PACE_RATES; do
		# enough passes of the random file for about PACE_S seconds
		passes=$(calc "($rate * 1e9 * $PACE_S / 8) / ($BYTES * 1.1)" 0)
		[ "$passes" -lt 1 ] && passes=1
		[ "$passes" -gt 100 ] && passes=100
		next_port
		# The last two END frames (80 bytes) trail the data by 50 and 250 ms
		# (PROTOCOL.md §10): idle time, not pacing, so the sink leaves them out.
		# The sink takes UDP_GRO, as sluice-recv does. Without it, loopback
		# delivers every datagram as an skb of its own in the sending thread's
		# softirq, and at 6g on a slower host that starved the encoder: 4.92 and
		# 5.55 Gb/s on the wire against 5.91 and 5.93 with --gro (run 21).
		"$B/udp_ceiling" sink --listen "127.0.0.1:$PORT" --idle-ms 1500 --min-size 100 --gro \
			>"$W/pace$rate.sink" 2>/dev/null &
		spid=$!
		PIDS+=("$spid")
		sleep 0.2
		mark=$(steal_mark)
		"$B/sluice-send" -v --to "127.0.0.1:$PORT" --rate "${rate}g" --fec "$FEC_PCT%" \
			--repeat "$passes" --key "$W/keys/s/sender.key" \
			--recipient "$W/keys/r/receiver.pub" --state-dir "$W/state" "$W/rand.bin" \
			>"$W/pace$rate.log" 2>&1 || true
		wait "$spid" || true
		psteal=$(steal_since "$mark")
		wire=$(grep -o 'wire_gbps=[0-9.]*' "$W/pace$rate.sink" | cut -d= -f2 || true)
		secs=$(grep -o 'seconds=[0-9.]*' "$W/pace$rate.sink" | cut -d= -f2 || true)
		own=$(grep -o '[0-9]* Mb/s on the wire' "$W/pace$rate.log" | awk '{ print $1 }' || true)
		wire=${wire:-0} secs=${secs:-0}
		q=$(grep -o 'waited for frames.*' "$W/pace$rate.log" || echo "-")
		err=$(calc "($wire - $rate) / $rate * 100" 1)
		say "pacing --rate ${rate}g: sink saw $(calc "$wire" 3) Gb/s over $(calc "$secs" 1) s" \
			"(error $err%), sender says ${own:-?} Mb/s; transmit thread $q; steal $psteal%"
		PACE_SUM="${PACE_SUM:+$PACE_SUM, }$err% at ${rate}g (steal $psteal%)"
		[ "$(calc "$err < -2 || $err > 2" 0)" = 1 ] && PACE_OK=0
		# the same token bucket with nothing to encode: pacing alone
		ceiling_run "${rate}g" 5
		say "pacing --rate ${rate}g, udp_ceiling (no encoding): sink saw $(calc "$C_GBPS * 1500 / 1472" 3)" \
			"Gb/s wire (error $(calc "($C_GBPS * 1500 / 1472 - $rate) / $rate * 100" 1)%)," \
			"lost $((C_SENT - C_RECV))"
	done
fi

# ================= jumbo =================
if ! skip jumbo; then
	rate=${SL_RATE:-2g}
	# A jumbo group is ~39 MB in flight, and the default 64 MiB receive
	# ring holds only ~7 400 jumbo datagrams: also try a larger ring.
	log "jumbo: sluice --mtu 9000 at $rate (default and --ring 256 --memory 384) and at 8g"
	for r in "$rate" "$rate+ring" 8g+ring; do
		RECV_ARGS=()
		[[ $r == *+ring ]] && RECV_ARGS=(--ring 256 --memory 384)
		sluice_run "jumbo$r" "$W/rand.bin" "${r%+ring}" --mtu 9000
		sluice_line "jumbo --mtu 9000 ${RECV_ARGS[*]}" "${r%+ring}" "jumbo$r"
	done
	RECV_ARGS=()
fi

# ================= each side alone =================
# On a real diode each side has a machine of its own; on loopback the two
# share two cores, so (b) measures their sum. Sender alone: sluice-send at
# 8g into a sink with GRO (cheap). Receiver alone: one sluice-send run is
# recorded by the sink, then played back by udp_ceiling replay (a few
# tenths of a CPU-second per GiB) to a fresh sluice-recv, on a rate ladder.
# replay_run NAME RATE: sets R_OK R_GOOD (file Gb/s over the playback) R_WIRE R_STEAL
replay_run() {
	local name=$1 rate=$2 out=$W/$1 rrc=0 secs mark
	next_port
	rm -rf "$out"
	mkdir -p "$out/inbox"
	"$TIME" -f "$TFMT" -o "$out.recv.time" timeout 300 "$B/sluice-recv" \
		--listen "127.0.0.1:$PORT" --inbox "$out/inbox" --key "$W/keys/r/receiver.key" \
		--trust "$W/keys/s/sender.pub" --once --stats "$out.stats" --end-grace 1 \
		--session-timeout 15 -q 2>"$out.recv.log" &
	local rpid=$!
	PIDS+=("$rpid")
	sleep 0.3
	mark=$(steal_mark)
	"$B/udp_ceiling" replay --to "127.0.0.1:$PORT" --file "$W/rec.bin" --rate "$rate" \
		>"$out.replay" 2>&1 || true
	wait "$rpid" || rrc=$?
	R_STEAL=$(steal_since "$mark")
	R_OK=0
	[ "$rrc" = 0 ] && cmp -s "$W/rand.bin" "$out/inbox/rand.bin" && R_OK=1
	rm -rf "$out/inbox"
	secs=$(grep -o 'seconds=[0-9.]*' "$out.replay" | cut -d= -f2 || true)
	R_WIRE=$(grep -o 'wire_gbps=[0-9.]*' "$out.replay" | cut -d= -f2 || true)
	R_WIRE=${R_WIRE:-0}
	R_GOOD=$(calc "${secs:-0} > 0 ? $BYTES * 8 / ${secs:-1} / 1e9 : 0" 3)
}
SA_GOOD=0 SA_STEAL=0 RA_BEST=0 RA_RATE=""
if ! skip sides; then
	log "sides: sluice-send alone at 8g into a sink; sluice-recv alone from a recording"
	for what in alone rec; do
		next_port
		rec=()
		[ "$what" = rec ] && rec=(--record "$W/rec.bin")
		"$B/udp_ceiling" sink --listen "127.0.0.1:$PORT" --gro --idle-ms 1500 "${rec[@]}" \
			>"$W/s$what.sink" 2>/dev/null &
		spid=$!
		PIDS+=("$spid")
		sleep 0.2
		mark=$(steal_mark)
		r=8g
		[ "$what" = rec ] && r=1.5g # a rate the pair sustains with room to spare
		"$TIME" -f "$TFMT" -o "$W/s$what.send.time" "$B/sluice-send" --to "127.0.0.1:$PORT" \
			--rate "$r" --fec "$FEC_PCT%" --key "$W/keys/s/sender.key" \
			--recipient "$W/keys/r/receiver.pub" --state-dir "$W/state" "$W/rand.bin" \
			>"$W/s$what.send.log" 2>&1 || true
		wait "$spid" || true
		[ "$what" = alone ] && SA_STEAL=$(steal_since "$mark")
	done
	secs=$(grep -o ' in [0-9.]* s' "$W/salone.send.log" | awk '{ print $2 }' || true)
	wire=$(grep -o '[0-9]* Mb/s on the wire' "$W/salone.send.log" | awk '{ print $1 }' || true)
	SA_GOOD=$(calc "${secs:-0} > 0 ? $BYTES * 8 / ${secs:-1} / 1e9 : 0" 3)
	say "sender alone --rate 8g: wire $(calc "${wire:-0} / 1000" 2) Gb/s, goodput $SA_GOOD Gb/s" \
		"(send phase); CPU $(cpu_of "$W/salone.send.time") s; the sink got" \
		"$(grep -o 'received=[0-9]*' "$W/salone.sink" | cut -d= -f2 || echo 0) of" \
		"$(grep -o '[0-9]* frames' "$W/salone.send.log" | awk '{ print $1 }' || echo '?') frames;" \
		"steal $SA_STEAL%"
	sent=$(grep -o '[0-9]* frames' "$W/srec.send.log" | awk '{ print $1 }' || true)
	got=$(grep -o 'received=[0-9]*' "$W/srec.sink" | cut -d= -f2 || true)
	if [ -z "$sent" ] || [ "$sent" != "$got" ]; then
		say "receiver alone: the recording lost datagrams (${got:-0} of ${sent:-?}); skipped"
	else
		lo=0; hi=0; rate=4
		for i in 1 2 3 4 5; do
			replay_run "ra$i" "${rate}g"
			say "receiver alone, playback at ${rate}g: $([ "$R_OK" = 1 ] && echo identical ||
				echo FAILED), wire $(calc "$R_WIRE" 2) Gb/s, goodput $R_GOOD Gb/s; CPU recv" \
				"$(cpu_of "$W/ra$i.recv.time") s; peak RSS $(rss_of "$W/ra$i.recv.time") MiB;" \
				"steal $R_STEAL%"
			if [ "$R_OK" = 1 ]; then
				if [ "$(calc "$R_GOOD > $RA_BEST" 0)" = 1 ]; then RA_BEST=$R_GOOD RA_RATE=${rate}g; fi
				lo=$rate
			else
				hi=$rate
			fi
			if [ "$hi" = 0 ]; then rate=$(calc "$rate * 2" 2); else rate=$(calc "($lo + $hi) / 2" 2); fi
		done
	fi
	rm -f "$W/rec.bin"
fi

# ================= optional: receiver RSS on a large sparse file =================
# A file larger than the page cache lets be dirty (vm.dirty_ratio of RAM)
# reaches the disk at the disk's own sustained write speed: at a rate above
# that the receiver falls behind however fast its CPU (run 24). So the
# disk is measured first, and a failed run is repeated at a rate whose
# goodput (about 0.85 of the wire rate) fits in 80% of it.
RSS_LINE=""
if [ "$RSS_GB" != 0 ]; then
	log "receiver RSS: ${RSS_GB} GiB sparse file; first the disk's sustained write speed"
	dd if=/dev/zero of="$W/dd.bin" bs=1M count=$((RSS_GB * 512)) conv=fdatasync 2>"$W/dd.log" || true
	rm -f "$W/dd.bin"
	DISK_MBS=$(sed -n 's/.* copied, \([0-9.]*\) s, .*/\1/p' "$W/dd.log" |
		awk -v b=$((RSS_GB * 512 * 1048576)) '$1 > 0 { printf "%.0f", b / $1 / 1e6 }')
	DISK_MBS=${DISK_MBS:-0}
	say "disk: ${DISK_MBS} MB/s sustained write into $W ($((RSS_GB / 2)) GiB, dd conv=fdatasync)," \
		"$(calc "$DISK_MBS * 8 / 1000" 2) Gb/s; dirty limit $(cat /proc/sys/vm/dirty_ratio)% of RAM"
	truncate -s "${RSS_GB}G" "$W/sparse.bin"
	rate=${SL_RATE:-2g}
	sluice_run rss "$W/sparse.bin" "$rate" --no-compress
	sluice_line "RSS ${RSS_GB} GiB sparse --no-compress" "$rate" rss
	if [ "$S_OK" != 1 ] && [ "$DISK_MBS" -gt 0 ]; then
		say "  (receiver: ring_dropped $(grep -o '^ring_dropped=[0-9]*' "$W/rss.stats" | cut -d= -f2)," \
			"evicted_groups $(grep -o '^evicted_groups=[0-9]*' "$W/rss.stats" | cut -d= -f2))"
		rate=$(calc "$DISK_MBS * 8 / 1000 * 0.8 / 0.85" 2)g
		sluice_run rss2 "$W/sparse.bin" "$rate" --no-compress
		sluice_line "RSS ${RSS_GB} GiB sparse --no-compress, under the disk's speed," "$rate" rss2
		[ "$S_OK" = 1 ] && RSS_LINE="$(rss_of "$W/rss2.recv.time") MiB (${RSS_GB} GiB file at $rate)"
	elif [ "$S_OK" = 1 ]; then
		RSS_LINE="$(rss_of "$W/rss.recv.time") MiB (${RSS_GB} GiB file at $rate)"
	fi
	rm -f "$W/sparse.bin"
fi

# ================= profile =================
if ! skip profile; then
	PROF_RATE=${SL_RATE:-1g}
	log "profile: perf record (cpu-clock) of sender and receiver at $PROF_RATE"
	if perf record -q -e cpu-clock -o "$W/perf.probe" true >/dev/null 2>&1; then
		# prof_run RATE: one profiled transfer; its status is the receiver's
		# (0: published, verified). perf's own overhead can push the receiver
		# past its limit at the best rate, and a receiver that fell behind is
		# not the hot path, so a failed run is repeated once at 3/4 the rate.
		prof_run() {
			local rpid prc=0
			next_port
			rm -rf "$W/prof/inbox" && mkdir -p "$W/prof/inbox"
			perf record -q -e cpu-clock -F 999 -o "$W/recv.perf" -- "$B/sluice-recv" \
				--listen "127.0.0.1:$PORT" --inbox "$W/prof/inbox" \
				--key "$W/keys/r/receiver.key" --trust "$W/keys/s/sender.pub" --once \
				--end-grace 1 --session-timeout 15 -q >/dev/null 2>&1 &
			rpid=$!
			PIDS+=("$rpid")
			sleep 0.5
			perf record -q -e cpu-clock -F 999 -o "$W/send.perf" -- "$B/sluice-send" \
				--to "127.0.0.1:$PORT" --rate "$1" --key "$W/keys/s/sender.key" \
				--recipient "$W/keys/r/receiver.pub" --state-dir "$W/state" "$W/rand.bin" \
				>/dev/null 2>&1 || true
			wait "$rpid" || prc=$?
			rm -rf "$W/prof/inbox"
			return "$prc"
		}
		if prof_run "$PROF_RATE"; then
			say "profile: the profiled transfer at $PROF_RATE was published"
		else
			PROF_RATE="$(calc "${PROF_RATE%g} * 0.75" 2)g"
			if prof_run "$PROF_RATE"; then
				say "profile: the transfer at the best rate failed under perf; at $PROF_RATE" \
					"it was published"
			else
				say "profile: the profiled transfer FAILED also at $PROF_RATE: the figures" \
					"below are of a receiver that fell behind"
			fi
		fi
		for side in send recv; do
			say "profile $side, self time by library:"
			perf report -i "$W/$side.perf" --stdio --no-children --sort dso 2>/dev/null |
				grep -E '^ +[0-9.]+%' | sed -n '1,6p' | sed 's/^/    /' | tee -a "$RES"
			# libsodium's BLAKE2b compression functions are static, so perf
			# shows bare addresses in libsodium for them
			say "  of which libsodium without a symbol (BLAKE2b): $(perf report \
				-i "$W/$side.perf" --stdio --no-children --sort dso,symbol 2>/dev/null |
				awk '/libsodium/ && /\] 0x/ { sub("%", "", $1); u += $1 }
					END { printf "%.1f%%", u }')"
			say "  top symbols:"
			perf report -i "$W/$side.perf" --stdio --no-children --sort dso,symbol 2>/dev/null |
				grep -E '^ +[0-9.]+%' | grep -v '\] 0x' | sed -n '1,8p' |
				awk '{ printf "    %s %s %s\n", $1, $2, $4 }' | tee -a "$RES"
		done
		say "(full reports: perf report -i $W/{send,recv}.perf; BENCH_DIR keeps them)"
	else
		say "profile: perf not usable here; try valgrind --tool=callgrind on a small file"
	fi
fi

# ================= summary =================
say ""
say "summary (${MB} MiB, loopback, $(nproc) CPUs; load average now $(cut -d' ' -f1-3 /proc/loadavg)):"
skip ceiling ||
	say "  raw ceiling       $(calc "$CEIL" 2) Gb/s payload, $(calc "$CEIL_PPS / 1e6" 3) Mpps (1472-byte datagrams)"
skip sluice ||
	say "  sluice (10% FEC)  $SL_BEST Gb/s goodput, $SL_E2E Gb/s end to end, at --rate ${SL_RATE:-none}" \
		"($SL_PPS Mpps received)"
skip udpcast ||
	say "  udpcast async     $UC_SEND Gb/s goodput, $UC_BEST Gb/s end to end, at --max-bitrate ${UC_RATE:-none}"
if ! skip sluice && [ "$(calc "$CEIL > 0" 0)" = 1 ]; then
	say "  sluice / ceiling  $(calc "$SL_BEST / $CEIL * 100" 0)% (target >= 60%)"
fi
if [ "$(calc "$HASH_GBPS > 0" 0)" = 1 ]; then
	say "  hash bound        $(calc "$HASH_GBPS" 2) Gb/s (one BLAKE2b stream$(
		[ "$(calc "$SL_BEST > 0" 0)" = 1 ] &&
			echo "; sluice reached $(calc "$SL_BEST / $HASH_GBPS * 100" 0)% of it"))$(
		[ "$(calc "$CEIL > 0" 0)" = 1 ] && echo ", 60% of the ceiling is $(calc "$CEIL * 0.6" 2) Gb/s")"
fi
if [ "$(calc "$CEIL > 0 && $CEIL_CPU > 0" 0)" = 1 ]; then
	# At 60% of the ceiling, the UDP work alone (for the frames that carry that
	# much file) keeps this many CPUs busy; what is left, per GB of file, is all
	# sluice may spend on FEC, AEAD, hashing and file I/O.
	# Priced with the GRO sink's kernel cost when there is one: that is the path
	# sluice-recv takes, and the cheaper of the two.
	KCPU=$CEIL_CPU KHOW="no GRO"
	[ "$(calc "$CEIL_GRO_CPU > 0" 0)" = 1 ] && KCPU=$CEIL_GRO_CPU KHOW="with GRO, as sluice-recv"
	KFILE=$(calc "$KCPU * $WIRE_BYTES") # per GB of file: over the frames that carry it
	R60=$(calc "$CEIL * 0.6 / 8")       # GB/s of file
	K60=$(calc "$R60 * $KFILE" 2)
	say "  at 60% of ceiling the UDP work alone ($KHOW) keeps $K60 of $(nproc) CPUs busy, leaving" \
		"$(calc "($(nproc) - $K60) / $R60" 2) CPU-s per GB for FEC, AEAD, hashing and file I/O$(
			[ "$(calc "$HASH_GBPS > 0" 0)" = 1 ] &&
				echo " (the receiver's BLAKE2b alone needs $(calc "8 / $HASH_GBPS" 2))")"
	if [ "$(calc "$PRIM_CPU > 0" 0)" = 1 ]; then
		# the most goodput two CPUs could carry if sluice did nothing but its
		# primitives and the kernel's UDP work
		PMAX=$(calc "$(nproc) / ($PRIM_CPU + $KFILE) * 8" 2)
		say "  primitive floor   $PRIM_CPU + UDP $(calc "$KFILE" 2) CPU-s per GB of file: $(nproc) CPUs carry at most" \
			"$PMAX Gb/s, $(calc "$PMAX / $CEIL * 100" 0)% of the ceiling$(
				[ "$(calc "$SL_BEST > 0" 0)" = 1 ] &&
					echo " (sluice reached $(calc "$SL_BEST / $PMAX * 100" 0)% of that)")"
	fi
fi
if [ "$(calc "$UC_BEST > 0" 0)" = 1 ]; then
	say "  sluice / udpcast  $(calc "$SL_BEST / $UC_SEND" 2)x goodput, $(calc "$SL_E2E / $UC_BEST" 2)x" \
		"end to end (target >= 3x)"
fi
if ! skip pacing; then
	say "  pacing            ${PACE_SUM:-none} over ${PACE_S} s (target within 2%:" \
		"$([ "$PACE_OK" = 1 ] && echo met || echo "not met; see the pacing lines above"))"
fi
skip sluice || say "  target 4 Gb/s     $([ "$(calc "$SL_BEST >= 4" 0)" = 1 ] && echo met || echo "not met")"
if ! skip sides; then
	say "  sender alone      $SA_GOOD Gb/s goodput (send phase, --rate 8g into a sink)"
	say "  receiver alone    $RA_BEST Gb/s goodput (a recorded send played back at ${RA_RATE:-none})"
fi
[ -n "$SL_NAME" ] && say "  receiver peak RSS $(rss_of "$W/$SL_NAME.recv.time") MiB (${MB} MiB file)"
[ "$RSS_GB" != 0 ] && say "  receiver peak RSS ${RSS_LINE:-none: no ${RSS_GB} GiB transfer published} (target < 256 MiB)"
RUN_STEAL=$(steal_since "$RUN_MARK")
say "  hypervisor steal  $RUN_STEAL% of $(nproc) CPUs over the run (time the host ran other guests;" \
	"$([ "$(calc "$RUN_STEAL > 2" 0)" = 1 ] && echo "above 2%, rates and pacing measure the host as much as sluice" ||
		echo "too little to matter"))"
[ "$KEEP" = 1 ] && log "results and logs in $W"
exit 0
