#!/usr/bin/env bash
# Runs every PowerGrad test on this machine: installs what the tests need (Debian 12, as
# root), builds, runs `make check` (Check unit tests and end-to-end tests on a real local
# Slurm cluster), then prints each runner's summary and a final "N passed, N failed" line.
#
#   scripts/run-tests.sh                  this machine's Slurm (22.05 on Debian 12), ./build
#   scripts/run-tests.sh --slurm VERSION  one Slurm version: 22.05 here; 24.11 or 26.05 in
#                                         the Debian root that carries it (made and cached
#                                         by scripts/slurm-root.sh), built in ./build-VERSION
#                                         with that release's compiler
#   scripts/run-tests.sh --matrix         22.05, 24.11 and 26.05 one after the other, then a
#                                         table: test x version -> passed/failed/skipped
#                                         (a skipped end-to-end suite counts as failed)
#   scripts/run-tests.sh --matrix-table   only that table, from the build folders as they are
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)

mode=one
slurm=
while [ $# -gt 0 ]; do
  case "$1" in
    --slurm) [ $# -ge 2 ] || { echo "run-tests: --slurm needs a version" >&2; exit 2; }
             slurm=$2; shift ;;
    --slurm=*) slurm=${1#--slurm=} ;;
    --matrix) mode=matrix ;;
    --matrix-table) mode=table ;;
    --in-root) mode=in-root ;;  # run_version's call inside a root; PG_BUILD_DIR is set
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "run-tests: unknown option '$1'" >&2; exit 2 ;;
  esac
  shift
done
case "$slurm" in
  ''|22.05|24.11|26.05) ;;
  *) echo "run-tests: unsupported Slurm version '$slurm' (22.05, 24.11 or 26.05)" >&2; exit 2 ;;
esac

# One version, here (22.05) or inside its root: build and `make check` in $build.
run_here() {
  local build=$1 status=0
  if [ "$(id -u)" -eq 0 ]; then
    "$top/scripts/install-deps.sh"
  else
    echo "run-tests: not root: skipping package installation; end-to-end tests will skip" >&2
  fi
  PG_BUILD_DIR=$build "$top/scripts/build.sh"
  make -C "$build" -j1 check || status=$?
  echo
  echo "== test summary"
  "$top/tests/summary.sh" "$build" || status=1
  return "$status"
}

build_dir_of() {
  case "$1" in
    ''|22.05) echo "${PG_BUILD_DIR:-$top/build}" ;;
    *) echo "$top/build-slurm-$1" ;;
  esac
}

run_version() {
  local v=$1 build
  build=$(build_dir_of "$v")
  case "$v" in
    ''|22.05) run_here "$build" ;;
    *)
      if [ "$(id -u)" -ne 0 ]; then
        echo "run-tests: Slurm $v runs in a Debian root: needs root" >&2
        return 1
      fi
      "$top/scripts/slurm-root.sh" "$v" >/dev/null
      "$top/scripts/slurm-root.sh" --enter "$v" -- env PG_BUILD_DIR="$build" \
        bash "$top/scripts/run-tests.sh" --in-root
      ;;
  esac
}

if [ "$mode" = in-root ]; then
  run_here "${PG_BUILD_DIR:?--in-root needs PG_BUILD_DIR}"
  exit $?
fi
if [ "$mode" = one ]; then
  run_version "$slurm"
  exit $?
fi

# ---------------------------------------------------------------- the matrix
versions=(22.05 24.11 26.05)
declare -A status_of
for v in "${versions[@]}"; do status_of[$v]=0; done
if [ "$mode" = matrix ]; then
  for v in "${versions[@]}"; do
    echo "== Slurm $v"
    start=$(date +%s)
    if (run_version "$v"); then status_of[$v]=0; else status_of[$v]=$?; fi
    echo "== Slurm $v: exit ${status_of[$v]} after $(( $(date +%s) - start )) s"
  done
fi

# Per test runner and version: "passed", "failed" or "skipped"; counts of TAP points and
# Check tests summed as in tests/summary.sh. A skipped end-to-end suite is a failure here:
# the matrix exists to run them all.
echo
echo "== Slurm version matrix"
tests=$(for v in "${versions[@]}"; do
  b=$(build_dir_of "$v")
  [ -d "$b" ] && find "$b" -name '*.trs' -type f | sed "s#^$b/##; s#\\.trs\$##"
done | sort -u)
printf '%-40s' test; for v in "${versions[@]}"; do printf ' %-8s' "$v"; done; echo
passed=0 failed=0 skipped=0
for t in $tests; do
  printf '%-40s' "$t"
  for v in "${versions[@]}"; do
    b=$(build_dir_of "$v")
    trs=$b/$t.trs
    r=missing
    if [ -f "$trs" ]; then
      case "$(sed -n 's/^:global-test-result: //p' "$trs")" in
        PASS|XFAIL) r=passed ;;
        SKIP) r=skipped ;;
        *) r=failed ;;
      esac
    fi
    case "$r" in
      passed) passed=$((passed + 1)) ;;
      skipped) skipped=$((skipped + 1)); case "$t" in tests/e2e/*) failed=$((failed + 1)) ;; esac ;;
      *) failed=$((failed + 1)) ;;
    esac
    printf ' %-8s' "$r"
  done
  echo
done
for v in "${versions[@]}"; do
  [ "${status_of[$v]}" -eq 0 ] || echo "Slurm $v: the run failed (exit ${status_of[$v]})"
done
echo "(counted per test runner and version; a skipped end-to-end suite counts as failed too)"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
