#!/usr/bin/env bash
# The code that runs on threads, under ThreadSanitizer: the allocator's unit tests (sibling
# groups built and split side by side, a large tree's root in chunks) and the cluster
# controller's "threads" case (the step's per-node loops on 1 and on 2-4 threads, grants
# compared), built with -fsanitize=thread (tests/tsan/, tests/local.mk). Any report of a
# data race fails. No cluster needed. TAP.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../e2e/lib.sh
. "$(dirname "$0")/../e2e/lib.sh"

build=${PG_BUILDDIR:-$PG_TOP/build}
[ -f "$build/Makefile" ] || skip_all "no build folder: $build"
if grep -qE '^PG_CXXFLAGS = .*-fsanitize=address' "$build/Makefile"; then
  skip_all "an AddressSanitizer build (--enable-asan): its flags cannot be mixed with ThreadSanitizer's"
fi

plan 3
work=$(mktemp -d /tmp/pg-tsan.XXXXXX)
pg_on_exit rm -rf "$work"

if make -s -C "$build" tests/tsan/test_allocator tests/tsan/test_cluster_controller \
    > "$work/build.log" 2>&1; then
  ok "the allocator's and the cluster controller's unit tests build with -fsanitize=thread"
else
  not_ok "the allocator's and the cluster controller's unit tests build with -fsanitize=thread" \
    "$(tail -n 30 "$work/build.log")"
fi

# run_tsan NAME [ENV...]: runs tests/tsan/NAME; passes when Check counts no failure and
# ThreadSanitizer reports nothing (each forked test exits 66 on a report: an error).
run_tsan() {
  local name=$1 log=$work/$1.log rc=0 line
  shift
  env TSAN_OPTIONS="halt_on_error=1 history_size=4" CK_FORK=yes "$@" \
    "$build/tests/tsan/$name" > "$log" 2>&1 || rc=$?
  line=$(grep -E '^[0-9]+%: Checks: [0-9]+' "$log" | tail -n1 || true)
  if [ "$rc" -eq 0 ] && ! grep -q 'WARNING: ThreadSanitizer' "$log" &&
     grep -qE '^100%: Checks: [1-9][0-9]*, Failures: 0, Errors: 0' <<< "$line"; then
    ok "$name under ThreadSanitizer: ${line:-no summary}"
  else
    not_ok "$name under ThreadSanitizer: ${line:-no summary} (exit $rc)" \
      "$(grep -m1 -A24 'WARNING: ThreadSanitizer' "$log" || tail -n 30 "$log")"
  fi
}
if [ -x "$build/tests/tsan/test_allocator" ]; then
  run_tsan test_allocator
  run_tsan test_cluster_controller CK_RUN_CASE=threads
else
  not_ok "test_allocator under ThreadSanitizer" "not built"
  not_ok "test_cluster_controller under ThreadSanitizer" "not built"
fi
