#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Command-line values: what strtoul or strtod would quietly turn into
# something else (an empty string into 0, "-1" into 2^64-1, " 5" into 5) is
# a usage error with a message, and the values at the edges of each range are
# still taken. Nothing is sent or received here: an accepted command line
# goes on to the key check, which the missing key file fails (exit 3).
set -euo pipefail

. "$(dirname "$0")/lib.sh" "$@"
K=$T/keys
echo data >"$T/file"

# expect CODE DESCRIPTION PROGRAM ARGS...: exit status CODE; for 2, a message
# on stderr naming the option (DESCRIPTION's second word, "PROGRAM --OPTION ...")
expect() {
	local want=$1 what=$2 rc=0 opt
	shift 2
	opt=$(echo "$what" | cut -d' ' -f2)
	"$@" >"$T/out" 2>"$T/err" </dev/null || rc=$?
	if [ "$rc" -ne "$want" ]; then
		not_ok "$what (exit $rc, want $want: $(head -c 300 "$T/err"))"
	elif [ "$want" -eq 2 ] && ! grep -q -- "$opt\b" "$T/err"; then
		not_ok "$what (exit 2 but no message naming $opt: $(cat "$T/err"))"
	else
		ok "$what"
	fi
}
snd() { # snd OPTION VALUE...: everything else valid, the signing key missing
	timeout 10 "$B/sluice-send" --to 127.0.0.1:9 --rate 10m --key "$T/no-such.key" \
		--recipient "$K/receiver/receiver.pub" "$@" "$T/file"
}
rcv() { # rcv OPTION VALUE...: everything else valid, the receiver key missing
	mkdir -p "$T/inbox"
	timeout 10 "$B/sluice-recv" --listen 127.0.0.1:9 --inbox "$T/inbox" --key "$T/no-such.key" \
		--trust "$K/sender/sender.pub" "$@"
}

for v in "" -1 " 1500" 1099 9001 1500x 0x5dc; do
	expect 2 "sluice-send --mtu '$v': usage error" snd --mtu "$v"
done
expect 3 "sluice-send --mtu 1100 and 9000: taken" snd --mtu 1100 --mtu 9000
for v in "" -1 0 101 +2; do
	expect 2 "sluice-send --repeat '$v': usage error" snd --repeat "$v"
done
# --expires -1 used to wrap round to an expiry in the past, which the
# receiver then refused while the sender said "sent"
for v in "" -1 0 316224001 18446744073709551615 1e3; do
	expect 2 "sluice-send --expires '$v': usage error" snd --expires "$v"
done
expect 3 "sluice-send --expires 1 and 316224000: taken" snd --expires 1 --expires 316224000
# --sequence -1 used to set the receiver's floor near 2^64: every later send refused
for v in "" -1 0 9223372036854775808; do
	expect 2 "sluice-send --sequence '$v': usage error" snd --sequence "$v"
done
expect 3 "sluice-send --sequence 9223372036854775807: taken" snd --sequence 9223372036854775807
for v in "" -1 0.05 3601 nan inf 1e1; do
	expect 2 "sluice-send --beacon '$v': usage error" snd --beacon "$v"
done
expect 3 "sluice-send --beacon 0, 0.1 and 3600: taken" snd --beacon 0 --beacon .1 --beacon 3600
for v in "" 0 -5 86401 0x10; do
	expect 2 "sluice-send --retry '$v': usage error" snd --retry "$v"
done
for v in "" -1m 10q 0; do
	expect 2 "sluice-send --rate '$v': usage error" snd --rate "$v"
done
expect 2 "sluice-send --aead rot13: usage error" snd --aead rot13
if grep -qw aes /proc/cpuinfo; then
	expect 3 "sluice-send --aead aes256gcm on a CPU with AES-NI: taken" snd --aead aes256gcm
fi

# --file-mode '' used to publish files with mode 0000
for v in "" 8 -644 1000 " 644" 0x1a4; do
	expect 2 "sluice-recv --file-mode '$v': usage error" rcv --file-mode "$v"
done
expect 3 "sluice-recv --file-mode 0 and 0777: taken" rcv --file-mode 0 --file-mode 0777
# --keep-partial '' used to keep nothing
for v in "" -1 8761 nan; do
	expect 2 "sluice-recv --keep-partial '$v': usage error" rcv --keep-partial "$v"
done
expect 3 "sluice-recv --keep-partial 0 and 8760: taken" rcv --keep-partial 0 --keep-partial 8760
for v in "" 0 -1 604801; do
	expect 2 "sluice-recv --session-timeout '$v': usage error" rcv --session-timeout "$v"
done
for v in "" 0 4097 -3; do
	expect 2 "sluice-recv --max-sessions '$v': usage error" rcv --max-sessions "$v"
done
for v in "" -5 7 " 64" 65537; do
	expect 2 "sluice-recv --memory '$v': usage error" rcv --memory "$v"
done
expect 3 "sluice-recv --memory 8 and 65536: taken" rcv --memory 8 --memory 65536
expect 2 "sluice-recv --user with no such account: usage error, before anything is opened" \
	rcv --user no-such-user-sluice
check "... saying which account and how to make one" grep -q "no such user 'no-such-user-sluice'.*useradd" "$T/err"
check "... and the inbox untouched" test -z "$(ls -A "$T/inbox")"

# Paths the receiver cannot use: what is wrong and what to do, exit 1.
rcvk() { # rcvk ARGS...: a valid key and trust, port 0
	timeout 10 "$B/sluice-recv" --listen 127.0.0.1:0 --key "$K/receiver/receiver.key" \
		--trust "$K/sender/sender.pub" --once "$@"
}
next_ports
"$B/sluice-impair" --listen "127.0.0.1:$RP" --to 127.0.0.1:9 --quiet &
PIDS+=("$!")
sleep 0.2
expect 1 "sluice-recv on a port another program listens on: exit 1" \
	timeout 10 "$B/sluice-recv" --listen "127.0.0.1:$RP" --key "$K/receiver/receiver.key" \
	--trust "$K/sender/sender.pub" --once --inbox "$T/inbox"
check "... naming the port, and what to do" \
	grep -q "cannot listen on 127.0.0.1 port $RP: Address already in use (another program.*choose another port)" "$T/err"
expect 1 "sluice-recv with a missing inbox: exit 1" rcvk --inbox "$T/no-inbox"
check "... saying to create it" \
	grep -q "cannot open the inbox directory .*/no-inbox: No such file or directory; create it" \
	"$T/err"
ln -s "$T/inbox" "$T/inbox-link"
expect 1 "sluice-recv with an inbox that is a symbolic link: exit 1" rcvk --inbox "$T/inbox-link"
check "... saying a link is not followed" grep -q "symbolic link is not followed" "$T/err"
expect 1 "sluice-recv --receipts in a missing directory: exit 1" \
	rcvk --inbox "$T/inbox" --receipts "$T/no-dir/receipts.jsonl"
check "... saying to create the directory" \
	grep -q "cannot open the receipt log .*: No such file or directory; create it (or the directory it goes in)" \
	"$T/err"

finish
