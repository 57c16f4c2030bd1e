#!/usr/bin/env bash
# Runs PowerGrad's tests on every supported Slurm version (the version matrix) on this
# machine, as root: installs what the tests need, builds each version with its own
# distribution's compiler, runs its tests, then prints a table (test x version ->
# passed/failed/skipped/n/a), each test runner's summary line and, last, one plain line
# "N passed, N failed, N skipped".
#
#   scripts/run-tests.sh                  the matrix: Slurm 22.05 here (Debian 12), ./build,
#                                         every test (`make check`); 24.11 and 26.05 each in
#                                         the Debian root that carries it (Debian 13 and
#                                         unstable, scripts/slurm-root.sh, made in the
#                                         background while 22.05 builds and tests), in
#                                         ./build-slurm-VERSION, the short list (`make
#                                         check-matrix`: every unit test and the end-to-end
#                                         suites of MATRIX_E2E_TESTS in tests/local.mk)
#                                         and, after 22.05, the sanitizer run: a build
#                                         with --enable-asan in ./build-asan, its unit tests
#                                         and SANITIZE_E2E_TESTS with the sanitized plugins
#                                         in the real daemons (any report fails it)
#   scripts/run-tests.sh --slurm VERSION  one version as in the matrix (22.05, 24.11, 26.05)
#   scripts/run-tests.sh --sanitize       the sanitizer run alone
#   scripts/run-tests.sh --matrix         the same as no option
#   scripts/run-tests.sh --matrix-table   only the table and summary, from the build folders
#   scripts/run-tests.sh --stress [ROUNDS]
#                                         the end-to-end suites ROUNDS times (default 3)
#                                         with stress-ng keeping every CPU busy
#                                         (scripts/stress-tests.sh)
#
# A skipped end-to-end suite counts as failed. A suite that needs the controller plugin is
# n/a (not run, not counted) on a version built without its configured Slurm source, with
# a footnote giving the reason (Slurm 26.05.5: its source is not on the mirror).
# End-to-end suites run PG_TEST_JOBS at a time (default 3: each mostly waits on its daemons).
# Compilations are cached with ccache under /var/cache/powergrad/ccache (inside each root
# for its version); PG_NO_CCACHE=1 turns that off. Logs of the roots made in the
# background: build-matrix/root-VERSION.log; PG_ROOT_TIMEOUT (seconds, default 2700) bounds
# the making of one root.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
versions=(22.05 24.11 26.05)
# Columns of the table: the versions, and the sanitizer run on this machine's Slurm.
legs=(22.05 asan 24.11 26.05)

mode=matrix
slurm=
while [ $# -gt 0 ]; do
  case "$1" in
    --slurm) [ $# -ge 2 ] || { echo "run-tests: --slurm needs a version" >&2; exit 2; }
             slurm=$2; mode=one; shift ;;
    --slurm=*) slurm=${1#--slurm=}; mode=one ;;
    --matrix) mode=matrix ;;
    --sanitize) mode=one; slurm=asan ;;
    --stress) shift; exec "$(dirname "$0")/stress-tests.sh" "$@" ;;
    --matrix-table) mode=table ;;
    --in-root) mode=in-root ;;  # a leg's call inside its root; PG_BUILD_DIR is set
    -h|--help) sed -n '2,38p' "$0"; exit 0 ;;
    *) echo "run-tests: unknown option '$1'" >&2; exit 2 ;;
  esac
  shift
done
case "$slurm" in
  ''|22.05|24.11|26.05|asan) ;;
  *) echo "run-tests: unsupported Slurm version '$slurm' (22.05, 24.11 or 26.05)" >&2; exit 2 ;;
esac

now() { date +%s; }
t0=$(now)
say() { echo "== [$(date +%T) +$(( $(now) - t0 ))s] $*"; }
timings=()
timed() {  # timed LABEL CMD...: runs CMD, records how long it took
  local label=$1 s rc=0; shift
  s=$(now)
  "$@" || rc=$?
  timings+=("$label: $(( $(now) - s )) s$([ "$rc" -eq 0 ] || echo " (exit $rc)")")
  return "$rc"
}

build_dir_of() {
  case "$1" in
    ''|22.05) echo "${PG_BUILD_DIR:-$top/build}" ;;
    asan) echo "$top/build-asan" ;;
    *) echo "$top/build-slurm-$1" ;;
  esac
}
# What a leg runs: "all" (`make check`) on this machine's Slurm, "sanitize" (`make
# check-sanitize`) in the sanitizer run, "short" (`make check-matrix`) elsewhere.
list_of() { case "$1" in ''|22.05) echo all ;; asan) echo sanitize ;; *) echo short ;; esac; }

use_ccache() {
  [ "${PG_NO_CCACHE:-0}" != 1 ] && [ -d /usr/lib/ccache ] || return 0
  export PATH="/usr/lib/ccache:$PATH"
  export CCACHE_DIR=${CCACHE_DIR:-/var/cache/powergrad/ccache}
  # Hits across clones in other folders (CI's clean clones): paths under the checkout are
  # hashed relative to it.
  export CCACHE_BASEDIR=$top CCACHE_NOHASHDIR=1
  mkdir -p "$CCACHE_DIR"
  ccache -M 4G >/dev/null 2>&1 || true
  ccache -z >/dev/null 2>&1 || true
}

# One version, here (22.05) or inside its root: packages, build, then `make check` (list
# "all") or `make check-matrix` (list "short") in $1. (Explicit returns: this runs where
# `set -e` does not apply, in the condition of an `if`.)
run_here() {
  local build=$1 list=$2 status=0 target=check leg=${PG_LEG:-here}
  if [ -n "${PG_SLURM_ROOT:-}" ]; then
    :  # inside a root: scripts/slurm-root.sh has just installed or refreshed everything
  elif [ "$(id -u)" -eq 0 ]; then
    timed "$leg: packages and Slurm source" "$top/scripts/install-deps.sh" || return 1
  else
    echo "run-tests: not root: skipping package installation; end-to-end tests will skip" >&2
  fi
  use_ccache
  local configure_args=()
  [ "$list" != sanitize ] || configure_args=(--enable-asan)
  timed "$leg: build" env PG_BUILD_DIR="$build" "$top/scripts/build.sh" "${configure_args[@]}" || return 1
  if [ -n "${CCACHE_DIR:-}" ]; then
    echo "run-tests: ccache ($CCACHE_DIR): $(ccache --print-stats 2>/dev/null |
      awk -F'\t' '$1 ~ /^(direct_cache_hit|preprocessed_cache_hit|cache_miss)$/ { printf "%s=%s ", $1, $2 }')"
  fi
  make -s -C "$build" matrix-lists || return 1
  if [ -n "${PG_SLURM_ROOT:-}" ] && [ ! -e /.powergrad-no-source ] &&
     grep -q '^na: .' "$build/matrix-lists.txt"; then
    echo "run-tests: this root has Slurm's source, but the build has no controller plugin" >&2
    return 1
  fi
  # Check's per-test timeouts guard against hangs, not slowness: on a busy machine (CI
  # builds the other versions' roots at the same time) and under the sanitizers a heavy unit
  # test took more than three times its usual time (test_sim_policies' property test, over
  # its 300 s under ASan). Stretched here unless the caller set it.
  export CK_TIMEOUT_MULTIPLIER=${CK_TIMEOUT_MULTIPLIER:-4}
  case "$list" in
    short) target=check-matrix ;;
    sanitize) target=check-sanitize
      [ "${CK_TIMEOUT_MULTIPLIER}" -ge 12 ] 2>/dev/null || export CK_TIMEOUT_MULTIPLIER=12
      # Every process of the tests gets the sanitizer runtime and writes its reports here
      # (tests/e2e/lib.sh); the summary counts each as a failure.
      rm -rf "$build/sanitizer-reports"
      export PG_SANITIZE=1 PG_SANITIZE_LOG_DIR=$build/sanitizer-reports ;;
  esac
  timed "$leg: tests (make $target)" make -C "$build" -j"${PG_TEST_JOBS:-3}" "$target" || status=$?
  # The release tarball (make distcheck: unpacked, configured as a user would, built, its
  # unit and tool tests run, installed and uninstalled), once, on this machine's Slurm.
  if [ "$list" = all ]; then
    if timed "$leg: make distcheck" make -C "$build" distcheck > "$build/distcheck.log" 2>&1; then
      echo "run-tests: make distcheck: passed ($(grep -m1 -o 'powergrad-[0-9.]*\.tar\.gz' "$build/distcheck.log" || true))"
    else
      echo "run-tests: make distcheck: FAILED (the last lines of $build/distcheck.log:)"
      tail -n 30 "$build/distcheck.log"
      status=1
    fi
  fi
  printf '%s\n' "${timings[@]}" > "$build/matrix-timings.txt"
  return "$status"
}

# The root of a version ("" for this machine's).
root_of() { case "$1" in 22.05|asan) return 0 ;; esac; "$top/scripts/slurm-root.sh" --path "$1"; }

run_version() {
  local v=$1 build
  build=$(build_dir_of "$v")
  rm -f "$build/matrix-timings.txt"
  case "$v" in
    22.05|asan) PG_LEG=$v run_here "$build" "$(list_of "$v")" ;;
    *)
      if [ "$(id -u)" -ne 0 ]; then
        echo "run-tests: Slurm $v runs in a Debian root: needs root" >&2
        return 1
      fi
      if ! "$top/scripts/slurm-root.sh" "$v" >/dev/null; then
        echo "run-tests: the Slurm $v root could not be made or refreshed" >&2
        return 1
      fi
      "$top/scripts/slurm-root.sh" --enter "$v" -- env PG_BUILD_DIR="$build" PG_LEG="$v" \
        bash "$top/scripts/run-tests.sh" --in-root
      ;;
  esac
}

if [ "$mode" = in-root ]; then
  run_here "${PG_BUILD_DIR:?--in-root needs PG_BUILD_DIR}" short
  exit $?
fi

# ---------------------------------------------------------------- the table and summary
# Result of runner $2 (e.g. tests/unit/test_x) in build folder $1: passed, failed, skipped,
# missing.
result_of() {
  local trs=$1/$2.trs
  [ -f "$trs" ] || { echo missing; return; }
  case "$(sed -n 's/^:global-test-result: //p' "$trs")" in
    PASS|XFAIL) echo passed ;;
    SKIP) echo skipped ;;
    *) echo failed ;;
  esac
}
# The list $2 (all, short, na) of build folder $1's matrix-lists.txt, one per line.
list_in() {
  [ -f "$1/matrix-lists.txt" ] || return 0
  sed -n "s/^$2: //p" "$1/matrix-lists.txt" 2>/dev/null | tr ' ' '\n' | sed '/^$/d; s/\.sh$//'
}

declare -A status_of
for v in "${legs[@]}"; do status_of[$v]=0; done

print_table() {
  local v b t r tests na_note=() expected passed=0 failed=0 skipped=0 line n f e p x s
  shown=("$@")
  echo
  echo "== Slurm version matrix"
  tests=$(for v in "${shown[@]}"; do
    b=$(build_dir_of "$v")
    list_in "$b" all; list_in "$b" short; list_in "$b" na
    if [ -d "$b" ]; then find "$b" -name '*.trs' -type f | sed "s#^$b/##; s#\\.trs\$##"; fi
  done | sort -u)
  printf '%-40s' test; for v in "${shown[@]}"; do printf ' %-8s' "$v"; done; echo
  for t in $tests; do
    printf '%-40s' "$t"
    for v in "${shown[@]}"; do
      b=$(build_dir_of "$v")
      if list_in "$b" na | grep -qxF "$t"; then
        r='n/a*'
      elif list_in "$b" "$(list_of "$v")" | grep -qxF "$t"; then
        r=$(result_of "$b" "$t")
        [ "$r" != missing ] || r=failed   # in the version's list, yet no result
      elif [ -f "$b/$t.trs" ]; then
        r=$(result_of "$b" "$t")
      elif [ -f "$b/matrix-lists.txt" ]; then
        r=-
      else
        r=failed                          # the version never got as far as its lists
      fi
      printf ' %-8s' "$r"
    done
    echo
  done
  echo "(-: not in that version's list; only Slurm 22.05 runs every test, the others the unit"
  echo " tests and the end-to-end suites of MATRIX_E2E_TESTS in tests/local.mk; asan: the"
  echo " sanitizer run on 22.05, unit tests and SANITIZE_E2E_TESTS)"
  for v in "${shown[@]}"; do
    b=$(build_dir_of "$v")
    [ -n "$(list_in "$b" na)" ] || continue
    root=$(root_of "$v" 2>/dev/null || true)
    if [ -n "$root" ] && [ -e "$root/.powergrad-no-source" ]; then
      echo "n/a* on $v: no Slurm $v source on the mirror: controller plugin not built ($(head -n1 "$root/.powergrad-no-source" 2>/dev/null || true))"
    else
      echo "n/a* on $v: built without a configured Slurm $v source tree: controller plugin not built"
    fi
  done
  for v in "${shown[@]}"; do
    [ "${status_of[$v]}" -eq 0 ] || echo "Slurm $v: the run failed (exit ${status_of[$v]})"
  done

  # Each runner's own summary line, as tests/summary.sh prints them, then the counts of
  # Check tests and TAP points: a skipped end-to-end suite, or a runner of a version's
  # list without a result, counts as one failure; n/a runners are not counted.
  echo
  echo "== test summary"
  local failed_before
  for v in "${shown[@]}"; do
    b=$(build_dir_of "$v")
    failed_before=$failed
    if [ ! -f "$b/matrix-lists.txt" ]; then
      echo "[$v] no results: the build did not get as far as its test lists"
      failed=$((failed + 1))
      continue
    fi
    expected=$(list_in "$b" "$(list_of "$v")")
    for r in $expected; do
      if [ ! -f "$b/$r.trs" ]; then
        echo "[$v] $r: no result"
        failed=$((failed + 1))
        continue
      fi
      line=$(grep -E '^[0-9]+%: Checks: [0-9]+, Failures: [0-9]+, Errors: [0-9]+' "$b/$r.log" 2>/dev/null | tail -n1 || true)
      if [ -n "$line" ]; then
        read -r n f e < <(sed -E 's/^[0-9]+%: Checks: ([0-9]+), Failures: ([0-9]+), Errors: ([0-9]+).*/\1 \2 \3/' <<<"$line")
        passed=$((passed + n - f - e)); failed=$((failed + f + e))
        [ "$(result_of "$b" "$r")" != failed ] || [ $((f + e)) -gt 0 ] || failed=$((failed + 1))
        echo "[$v] $r: $line"
      else
        p=$(grep -cE '^:test-result: (PASS|XFAIL)' "$b/$r.trs" || true)
        x=$(grep -cE '^:test-result: (FAIL|XPASS|ERROR)' "$b/$r.trs" || true)
        s=$(grep -cE '^:test-result: SKIP' "$b/$r.trs" || true)
        if [ "$(result_of "$b" "$r")" = skipped ] && [ "$p" -eq 0 ] && [ "$x" -eq 0 ]; then
          case "$r" in
            tests/e2e/*) echo "[$v] $r: skipped as a whole: counted as failed"
                         failed=$((failed + 1)); continue ;;
          esac
        fi
        [ "$(result_of "$b" "$r")" != failed ] || [ "$x" -gt 0 ] || x=1
        passed=$((passed + p)); failed=$((failed + x)); skipped=$((skipped + s))
        echo "[$v] $r: $p passed, $x failed, $s skipped"
      fi
    done
    if [ -d "$b/sanitizer-reports" ]; then
      # Reports only: asan.PID, ubsan.PID (tests/e2e/lib.sh keeps its own files as dot files,
      # which the glob leaves out).
      for f in "$b"/sanitizer-reports/*; do
        [ -f "$f" ] || continue
        echo "[$v] sanitizer report ${f##*/}: $(grep -m1 -E 'ERROR|runtime error' "$f" || head -n1 "$f")"
        failed=$((failed + 1))
      done
    fi
    if [ "${status_of[$v]}" -ne 0 ] && [ "$failed" -eq "$failed_before" ]; then
      echo "[$v] the run failed (exit ${status_of[$v]}) with no failed test: counted as one failure"
      failed=$((failed + 1))
    fi
  done
  echo "$passed passed, $failed failed, $skipped skipped"
  [ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
}

if [ "$mode" = table ]; then
  print_table "${legs[@]}"
  exit $?
fi

if [ "$mode" = one ]; then
  v=${slurm:-22.05}
  say "leg $v"
  if run_version "$v"; then status_of[$v]=0; else status_of[$v]=$?; fi
  say "Slurm $v: exit ${status_of[$v]}"
  print_table "$v"
  exit $?
fi

# ---------------------------------------------------------------- the matrix
# Roots for the versions after 22.05 are made in the background (mostly waiting on the
# mirror) while 22.05 installs, builds and tests; each leg then waits for its root.
logs=$top/build-matrix
mkdir -p "$logs"
declare -A root_pid
if [ "$(id -u)" -eq 0 ]; then
  say "packages (Slurm 22.05, this machine)"
  timed "22.05: packages" "$top/scripts/install-deps.sh" --no-source
  # (slurm-root.sh would install mmdebstrap itself; two at once would race for dpkg's lock)
  if ! command -v mmdebstrap >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends mmdebstrap
  fi
  for v in "${versions[@]}"; do
    [ "$v" != 22.05 ] || continue
    rm -f "$logs/root-$v.rc" "$logs/root-$v.pid"
    ( s=$(now); rc=0
      timeout --kill-after=60 "${PG_ROOT_TIMEOUT:-2700}" "$top/scripts/slurm-root.sh" "$v" &
      echo $! > "$logs/root-$v.pid"
      wait $! || rc=$?
      [ "$rc" -ne 124 ] || echo "run-tests: making the root timed out after ${PG_ROOT_TIMEOUT:-2700} s"
      echo "$rc $(( $(now) - s ))" > "$logs/root-$v.rc" ) < /dev/null > "$logs/root-$v.log" 2>&1 &
    root_pid[$v]=$!
    say "making the Slurm $v root in the background (log: $logs/root-$v.log)"
  done
fi

# Leaving early: stop the roots still being made (timeout passes the signal on to its
# command's process group).
stop_roots() {
  local v p
  for v in "${!root_pid[@]}"; do
    p=$(cat "$logs/root-$v.pid" 2>/dev/null || true)
    if [ -n "$p" ] && kill -0 "$p" 2>/dev/null && [ ! -f "$logs/root-$v.rc" ]; then
      echo "run-tests: stopping the making of the Slurm $v root (pid $p)" >&2
      kill -TERM "$p" 2>/dev/null || true
    fi
  done
}
trap stop_roots EXIT

wait_root() {
  local v=$1 rc secs last
  [ -n "${root_pid[$v]:-}" ] || return 0
  say "waiting for the Slurm $v root"
  while kill -0 "${root_pid[$v]}" 2>/dev/null; do
    last=$(grep -E '^slurm-root\[' "$logs/root-$v.log" 2>/dev/null | tail -n1 || true)
    say "  still making the Slurm $v root: ${last:-starting}"
    # wait for the background job, at most a minute between reports
    for _ in $(seq 60); do kill -0 "${root_pid[$v]}" 2>/dev/null || break; sleep 1; done
  done
  wait "${root_pid[$v]}" 2>/dev/null || true
  read -r rc secs < "$logs/root-$v.rc" || { rc=1; secs=?; }
  timings+=("$v: root ready after $secs s (made in the background)")
  grep -E '^slurm-root\[' "$logs/root-$v.log" | sed 's/^/    /' || true
  if [ "$rc" -ne 0 ]; then
    say "the Slurm $v root FAILED (exit $rc); the end of its log:"
    tail -n 40 "$logs/root-$v.log" | sed 's/^/    /'
    return 1
  fi
}

for v in "${legs[@]}"; do
  say "leg $v"
  start=$(now)
  if wait_root "$v" && (run_version "$v"); then status_of[$v]=0; else status_of[$v]=$?; fi
  b=$(build_dir_of "$v")
  [ ! -f "$b/matrix-timings.txt" ] || while IFS= read -r l; do timings+=("$l"); done < "$b/matrix-timings.txt"
  timings+=("$v: whole leg $(( $(now) - start )) s")
  say "Slurm $v: exit ${status_of[$v]} after $(( $(now) - start )) s"
done
# A root that failed while another leg ran is reported too.
wait || true

echo
echo "== timings (total $(( $(now) - t0 )) s)"
printf '  %s\n' "${timings[@]}"
print_table "${legs[@]}"
