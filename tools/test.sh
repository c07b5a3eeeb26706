#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The whole test suite, as CI runs it:
#   1. release build with gcc, -Werror; unit + integration tests (ctest)
#   2. the same suite built with clang + ASan + UBSan (smaller transfers)
#   3. libFuzzer targets, a short run of each over its corpus
#   4. clang-format check, and a check that the build left the tree clean
# Exits non-zero on the first failure; prints "N passed, M failed" at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
JOBS=$(nproc)
FUZZ_SECONDS=${FUZZ_SECONDS:-15} # 7 targets; the corpora are also replayed by ctest
passed=0
failed=0
step() { echo; echo "=== $*"; }
result() {
	if [ "$1" -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAILED: $2"; fi
}

step "installing missing Debian packages"
"$ROOT/tools/setup.sh"

step "release build (gcc)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=gcc >/dev/null
cmake --build build -j"$JOBS"
step "tests (release build)"
set +e
(cd build && ctest --output-on-failure --timeout 900)
result $? "ctest (release)"
set -e

step "sanitizer build (clang, ASan + UBSan)"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=clang \
	-DSLUICE_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$JOBS"
step "tests (sanitizer build)"
set +e
(cd build-asan && SLUICE_TEST_SIZE_MB=32 ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ctest --output-on-failure --timeout 900)
result $? "ctest (sanitizers)"
set -e

step "fuzz targets (libFuzzer, ${FUZZ_SECONDS}s each)"
cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=clang \
	-DSLUICE_FUZZ=ON -DSLUICE_TESTS=OFF >/dev/null
cmake --build build-fuzz -j"$JOBS"
for f in build-fuzz/fuzz_*; do
	case $f in *.log) continue ;; esac # logs of an earlier run
	[ -f "$f" ] && [ -x "$f" ] || continue
	name=$(basename "$f")
	corpus="$ROOT/tests/fuzz/corpus/${name#fuzz_}"
	work=$(mktemp -d)
	[ -d "$corpus" ] && cp -r "$corpus"/. "$work"/
	set +e
	"$f" -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 "$work" \
		>"build-fuzz/$name.log" 2>&1
	rc=$?
	set -e
	tail -n 2 "build-fuzz/$name.log"
	result $rc "$name (log: build-fuzz/$name.log)"
	rm -rf "$work"
done

step "clang-format"
set +e
git ls-files '*.c' '*.h' | xargs clang-format --dry-run -Werror
result $? "clang-format (run: git ls-files '*.c' '*.h' | xargs clang-format -i)"
step "tree clean after build"
test -z "$(git status --porcelain --untracked-files=normal | grep -v '^?? build')"
result $? "build wrote into the source tree: $(git status --porcelain | head -5)"
set -e

echo
echo "suites: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
