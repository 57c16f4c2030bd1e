#!/usr/bin/env bash
# The end-to-end suites on a busy machine: ROUNDS times in a row (default 3), each with
# stress-ng keeping every CPU busy beside them (`stress-ng --cpu N`, N = the CPUs), on this
# machine's Slurm (./build or $PG_BUILD_DIR, built first). A suite that fails only because
# the machine is slow blocks every submission in CI: this shows it does not happen.
# Prints each round's per-suite results, then "N passed, N failed, N skipped" over all
# rounds (TAP points; a suite skipped as a whole counts as failed). Root only.
#
#   scripts/stress-tests.sh [ROUNDS]          (also: scripts/run-tests.sh --stress [ROUNDS])
#
# PG_STRESS_TESTS: the suites (default: every tests/e2e/ suite of `make check`);
# PG_TEST_JOBS: suites at once (default 3, as scripts/run-tests.sh runs them).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
rounds=${1:-3}
case "$rounds" in ''|*[!0-9]*|0) echo "stress-tests: ROUNDS must be a positive number" >&2; exit 2 ;; esac
build=${PG_BUILD_DIR:-$top/build}
[ "$(id -u)" -eq 0 ] || { echo "stress-tests: must run as root (the suites start Slurm daemons)" >&2; exit 2; }

"$top/scripts/install-deps.sh"
if ! command -v stress-ng >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends stress-ng
fi
PG_BUILD_DIR=$build "$top/scripts/build.sh"
make -s -C "$build" -j"$(nproc)" check TESTS= >/dev/null
tests=${PG_STRESS_TESTS:-$(make -s -C "$build" print-e2e-tests)}
[ -n "$tests" ] || { echo "stress-tests: no suites to run" >&2; exit 2; }

stress=
stop_stress() { [ -z "$stress" ] || { kill "$stress" 2>/dev/null || true; wait "$stress" 2>/dev/null || true; stress=; }; }
trap stop_stress EXIT
passed=0 failed=0 skipped=0
for ((r = 1; r <= rounds; r++)); do
  stress-ng --cpu "$(nproc)" --timeout 0 --quiet &
  stress=$!
  echo "== round $r of $rounds: $(wc -w <<<"$tests") suites beside stress-ng --cpu $(nproc), load $(cut -d' ' -f1-3 /proc/loadavg)"
  s=$(date +%s)
  make -C "$build" -j"${PG_TEST_JOBS:-3}" check TESTS="$tests" >/dev/null 2>&1 || true
  stop_stress
  echo "   took $(( $(date +%s) - s )) s"
  for t in $tests; do
    trs=$build/${t%.sh}.trs
    if [ ! -f "$trs" ]; then
      echo "   ${t%.sh}: no result"; failed=$((failed + 1)); continue
    fi
    p=$(grep -cE '^:test-result: (PASS|XFAIL)' "$trs" || true)
    x=$(grep -cE '^:test-result: (FAIL|XPASS|ERROR)' "$trs" || true)
    k=$(grep -cE '^:test-result: SKIP' "$trs" || true)
    if [ "$p" -eq 0 ] && [ "$x" -eq 0 ]; then
      echo "   ${t%.sh}: skipped as a whole: counted as failed"; failed=$((failed + 1)); continue
    fi
    [ "$x" -gt 0 ] || ! grep -qE '^:global-test-result: (FAIL|ERROR)' "$trs" || x=1
    echo "   ${t%.sh}: $p passed, $x failed, $k skipped"
    if [ "$x" -gt 0 ]; then
      grep -E '^not ok' "${trs%.trs}.log" | sed 's/^/     /' || true
      # keep the log of a failed round
      cp "${trs%.trs}.log" "$build/${t%.sh}.stress-round-$r.log"
    fi
    passed=$((passed + p)); failed=$((failed + x)); skipped=$((skipped + k))
  done
done
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
