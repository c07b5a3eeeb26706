#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A loss burst in the last, short group of an object (docs/PERFORMANCE.md,
# run 10). A group's frames are interleaved among its own rows, so a burst
# costs each row burst / rows frames: before the sender topped the short
# last group up to a full group's repair budget, a burst of 40 datagrams
# there lost the object, while a full group took 200.
#
#   sluice-send ──► udp_ceiling sink --record ··· replay --cut BACK:N ──► sluice-recv
#
# One recorded send, played back with N consecutive datagrams left out.
set -euo pipefail
. "$(dirname "$0")/lib.sh" "$@"
[ -x "$B/udp_ceiling" ] || { echo "missing $B/udp_ceiling: build first"; exit 1; }

# 6 MiB at MTU 1500: 35 blocks, a full group of 32 and a last group of 3.
head -c $((6 << 20)) /dev/urandom >"$T/obj.bin"
next_ports
"$B/udp_ceiling" sink --listen "127.0.0.1:$RP" --record "$T/rec.bin" --idle-ms 1000 \
	>"$T/sink.log" 2>&1 &
SPID=$!
PIDS+=("$SPID")
sleep 0.3
check "the send is recorded" send "$RP" "$T/obj.bin" --rate 300m
wait_exit "$SPID" 20 || true
total=$(grep -o 'received=[0-9]*' "$T/sink.log" | cut -d= -f2)
check "the recording has every frame ($total)" test "${total:-0}" -gt 5000

# replay NAME BACK N: the recording, N datagrams left out from BACK before
# the end, to a fresh receiver; succeeds when the object is published intact.
replay() {
	local name=$1 back=$2 n=$3
	next_ports
	start_recv "$name" "$RP" --once
	"$B/udp_ceiling" replay --to "127.0.0.1:$RP" --file "$T/rec.bin" --rate 150m \
		--cut "$back:$n" >/dev/null 2>"$T/$name.replay.log"
	wait_exit "$RPID" 30 || true
	cmp -s "$T/obj.bin" "$T/$name/inbox/obj.bin"
}

# The last group's frames are about the last 750 of the recording.
check "a burst of 120 in the last group still publishes" replay tail 600 120
check "a burst of 150 in a full group still publishes" replay full $((total / 2)) 150
# The cut is real: past what any group can absorb, nothing is published.
if replay lost $((total / 2)) 600; then
	not_ok "a burst of 600 in a full group loses the object"
else
	ok "a burst of 600 in a full group loses the object"
fi

# The sender's three END frames leave spread in wire time (PROTOCOL.md §10):
# the first after every other frame, the last up to 250 ms later and the
# middle one a fifth of the way, so a receiver that is dropping a backlog's
# worth of arrivals still gets one. A session shorter than 250 ms spreads
# them over its own length. A sink notes when each datagram arrives and its
# type (header byte 5).
if command -v python3 >/dev/null; then
	cat >"$T/endsink.py" <<'PYEOF'
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.settimeout(10)
first, last_other, ends = None, None, []
while len(ends) < 3:
    try:
        d = s.recv(65536)
    except socket.timeout:
        break
    t = time.monotonic()
    first = first or t
    if len(d) > 5 and d[5] == 5:
        ends.append(t)
    else:
        last_other = t
print("ends=%d" % len(ends))
if ends and last_other is not None:
    print("after_first_end=%d" % (last_other > ends[0]))
    print("phase_ms=%d" % round((ends[0] - first) * 1000))
for i in (1, 2):
    if len(ends) > i:
        print("gap%d_ms=%d" % (i, round((ends[i] - ends[0]) * 1000)))
PYEOF
	# end_times NAME FILE RATE: send FILE to the timing sink, keep its lines
	end_times() {
		next_ports
		python3 "$T/endsink.py" "$RP" >"$T/$1.times" 2>&1 &
		local tpid=$!
		PIDS+=("$tpid")
		sleep 0.5
		check "a send to the timing sink ($1)" send "$RP" "$2" --rate "$3"
		wait_exit "$tpid" 20 || true
		sed 's/^/# /' "$T/$1.times"
	}
	v() { grep "^$2=" "$T/$1.times" | cut -d= -f2; }
	# 6 MiB at 100 Mb/s: a send phase of about 0.55 s, so the full spread
	end_times long "$T/obj.bin" 100m
	check "three END frames arrive" test "$(v long ends)" = 3
	check "no other frame arrives after the first END" test "$(v long after_first_end)" = 0
	check "the second END arrives 50 ms after the first ($(v long gap1_ms) ms)" \
		test "$(v long gap1_ms)" -ge 45 -a "$(v long gap1_ms)" -le 150
	check "the third END arrives 250 ms after the first ($(v long gap2_ms) ms)" \
		test "$(v long gap2_ms)" -ge 245 -a "$(v long gap2_ms)" -le 600
	# 64 KiB: a send phase of a few ms, and no 250 ms wait for it
	head -c $((64 << 10)) /dev/urandom >"$T/small.bin"
	end_times short "$T/small.bin" 300m
	check "three END frames arrive (short session)" test "$(v short ends)" = 3
	check "the END frames of a short session spread over its length, not 250 ms" \
		test "$(v short gap2_ms)" -le $(($(v short phase_ms) + 20)) -a "$(v short gap2_ms)" -lt 150
else
	echo "ok - # skip END spacing: no python3"
fi

# A receiver publishes on the first END, so the later two usually reach a
# finished session. They still authenticate (its key is kept for 2 s) and
# land in late_status: counted for the sender's link, refused as nothing.
next_ports
start_recv late "$RP"
check "a send to a receiver that keeps running" send "$RP" "$T/obj.bin" --rate 100m
check "it is published" wait_receipt late published 1
sleep 0.5
kill -TERM "$RPID"
wait_exit "$RPID" 10 || true
check "the late END frames are not refused (late_status $(stat_of late late_status))" \
	test "$(stat_of late late_status)" -le 2 -a "$(stat_of late finished_session)" = 0
check "every datagram is in exactly one counter, and none is rejected" counters_add_up late
check "the stop record rejects nothing" \
	grep -q '"event":"stop".*"rejected_frames":0' "$T/late/inbox/.sluice/receipts.jsonl"
finish
