#!/usr/bin/env bash
# Prints the result of a `make check` run in build dir $1: each Check runner's own
# "N%: Checks: N, Failures: N, Errors: N" line, each TAP test's counts, and last one plain
# line "N passed, N failed, N skipped" that counts Check tests and TAP points one by one.
# Exits 1 when anything failed or nothing ran.
set -u
build=${1:?usage: tests/summary.sh BUILD_DIR}
passed=0 failed=0 skipped=0
while IFS= read -r trs; do
  log=${trs%.trs}.log
  name=${trs#"$build"/}
  name=${name%.trs}
  check_line=$(grep -E '^[0-9]+%: Checks: [0-9]+, Failures: [0-9]+, Errors: [0-9]+' "$log" 2>/dev/null | tail -n1)
  if [ -n "$check_line" ]; then
    read -r n f e < <(sed -E 's/^[0-9]+%: Checks: ([0-9]+), Failures: ([0-9]+), Errors: ([0-9]+).*/\1 \2 \3/' <<<"$check_line")
    passed=$((passed + n - f - e))
    failed=$((failed + f + e))
    echo "$name: $check_line"
  else
    p=$(grep -cE '^:test-result: (PASS|XFAIL)' "$trs")
    x=$(grep -cE '^:test-result: (FAIL|XPASS|ERROR)' "$trs")
    s=$(grep -cE '^:test-result: SKIP' "$trs")
    passed=$((passed + p)); failed=$((failed + x)); skipped=$((skipped + s))
    echo "$name: $p passed, $x failed, $s skipped"
  fi
done < <(find "$build" -name '*.trs' -type f | sort)
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ $((passed + skipped)) -gt 0 ]
