#!/usr/bin/env bash
# The code that runs on threads, under ThreadSanitizer. A second build of PowerGrad, in a
# temporary folder, configured as this one is but with -fsanitize=thread, builds the unit
# tests of every part that shares data between threads, and runs them:
#   - the allocator's (sibling groups split side by side, a large tree's root in chunks) and
#     the cluster controller's "threads" case (the step's per-node loops on 1 and on 2-4
#     threads, grants compared): the controller plugin's step;
#   - the per-job ledger's (slurmctld's job hooks and the series writer's thread read it
#     while the service's thread drives it), the series writer's (its own thread) and the
#     controller service's;
#   - the node agent's (its period and channel threads) and its link to the controller;
#   - the simulator's "threads" case (policies run side by side, powergrad-sim --threads).
# Any report of a data race fails. No cluster needed. About 3 minutes on 2 cores. TAP.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../e2e/lib.sh
. "$(dirname "$0")/../e2e/lib.sh"

build=${PG_BUILDDIR:-$PG_TOP/build}
if [ ! -f "$build/Makefile" ] || [ ! -x "$build/config.status" ]; then
  skip_all "no configured build folder: $build"
fi
if grep -qE '^PG_CXXFLAGS = .*-fsanitize=address' "$build/Makefile"; then
  skip_all "an AddressSanitizer build (--enable-asan): its flags cannot be mixed with ThreadSanitizer's"
fi
src=$(sed -n 's/^abs_top_srcdir = //p' "$build/Makefile")
if [ -z "$src" ] || [ ! -x "$src/configure" ]; then
  skip_all "no configure script in the source folder '$src'"
fi
if [ -f "$src/config.status" ]; then
  skip_all "the source folder $src is configured in place, so a second build cannot be configured from it: configure PowerGrad in a separate build folder to run this"
fi

# name [CK_RUN_CASE]: the unit tests built with -fsanitize=thread, and the Check case to run
# (all when empty).
tests=(
  "test_allocator:"
  "test_cluster_controller:threads"
  "test_job_power:"
  "test_series:"
  "test_controller_service:"
  "test_nodeagent:"
  "test_agent_link:"
  "test_sim_policies:threads"
)
plan $((2 + ${#tests[@]}))
work=$(mktemp -d /tmp/pg-tsan.XXXXXX)
pg_on_exit rm -rf "$work"

# The build's own configure arguments (quoted as config.status prints them), without those
# that name the build's folders or flags.
eval "set -- $("$build/config.status" --config)"
args=()
for a in "$@"; do
  case $a in
    --srcdir=* | --cache-file=* | CFLAGS=* | CXXFLAGS=* | LDFLAGS=*) ;;
    *) args+=("$a") ;;
  esac
done
flags="-fsanitize=thread -fno-omit-frame-pointer -O1 -g"
mkdir "$work/build"
if (cd "$work/build" && "$src/configure" -q "${args[@]}" CFLAGS="$flags" CXXFLAGS="$flags" \
      LDFLAGS=-fsanitize=thread) > "$work/configure.log" 2>&1; then
  ok "a second build configured with -fsanitize=thread (${args[*]})"
else
  not_ok "a second build configured with -fsanitize=thread (${args[*]})" \
    "$(tail -n 30 "$work/configure.log")"
fi

targets=()
for t in "${tests[@]}"; do targets+=("tests/unit/${t%%:*}"); done
if make -s -j"$(nproc)" -C "$work/build" "${targets[@]}" > "$work/build.log" 2>&1; then
  ok "${#targets[@]} unit test programs build with -fsanitize=thread"
else
  not_ok "${#targets[@]} unit test programs build with -fsanitize=thread" \
    "$(grep -m5 -B2 -A8 'error' "$work/build.log" || tail -n 30 "$work/build.log")"
fi

# run_tsan NAME CASE: runs NAME (only its Check case CASE when not empty); passes when Check
# counts no failure and ThreadSanitizer reports nothing (each forked test exits 66 on a
# report: an error).
run_tsan() {
  local name=$1 case=$2 log=$work/$1.log rc=0 line what
  what="$name${case:+ (case $case)} under ThreadSanitizer"
  if [ ! -x "$work/build/tests/unit/$name" ]; then
    not_ok "$what" "not built"
    return
  fi
  env TSAN_OPTIONS="halt_on_error=1 history_size=4" CK_FORK=yes ${case:+CK_RUN_CASE=$case} \
    "$work/build/tests/unit/$name" > "$log" 2>&1 || rc=$?
  line=$(grep -E '^[0-9]+%: Checks: [0-9]+' "$log" | tail -n1 || true)
  if [ "$rc" -eq 0 ] && ! grep -q 'WARNING: ThreadSanitizer' "$log" &&
     grep -qE '^100%: Checks: [1-9][0-9]*, Failures: 0, Errors: 0' <<< "$line"; then
    ok "$what: $line"
  else
    not_ok "$what: ${line:-no summary} (exit $rc)" \
      "$(grep -m1 -A24 'WARNING: ThreadSanitizer' "$log" || tail -n 30 "$log")"
  fi
}
for t in "${tests[@]}"; do run_tsan "${t%%:*}" "${t#*:}"; done
