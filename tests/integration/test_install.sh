#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# `cmake --install`: the five programs, the docs, and the example configs
# and systemd units; with the default prefix (staged under DESTDIR) the
# units' ExecStart programs are where the install put them, and the
# installed programs run.
# Usage: test_install.sh BUILD_DIR
set -euo pipefail
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh" "$@"

command -v cmake >/dev/null || { echo "test_install: SKIP: cmake is not installed"; exit 77; }
cmake --install "$B" --prefix "$T/prefix" >"$T/install.log" 2>&1 ||
	{ sed 's/^/#   /' "$T/install.log"; not_ok "cmake --install --prefix"; finish; }
for p in sluice-send sluice-recv sluice-keygen sluice-receipts sluice-impair; do
	check "$p installed, executable, and it runs (--help)" \
		sh -c "test -x '$T/prefix/bin/$p' && '$T/prefix/bin/$p' --help >/dev/null 2>&1"
done
check "no test or benchmark program installed" \
	test "$(find "$T/prefix/bin" -type f | wc -l)" -eq 5
docs=$T/prefix/share/doc/sluice
for f in README.md OPERATIONS.md COMMANDS.md PROTOCOL.md RECEIPTS.md SECURITY.md; do
	check "$f installed" test -s "$docs/$f"
done
check "the example configs and units installed" \
	test -s "$docs/examples/sluice-recv.service" -a -s "$docs/examples/sluice-send.conf"

# The units name /usr/local/bin: the default prefix must put the programs there.
prefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$B/CMakeCache.txt")
if [ "$prefix" != /usr/local ]; then
	echo "# this build's prefix is $prefix, not the default: the units' paths are not checked"
	finish
	exit
fi
DESTDIR=$T/stage cmake --install "$B" >"$T/stage.log" 2>&1
for unit in "$docs"/examples/*.service; do
	prog=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$unit")
	check "$(basename "$unit"): ExecStart $prog is what the default install puts there" \
		test -x "$T/stage$prog"
	doc=$(sed -n 's/^Documentation=file:\(.*\)/\1/p' "$unit")
	[ -z "$doc" ] || check "$(basename "$unit"): its Documentation= file is installed" test -s "$T/stage$doc"
done
finish
