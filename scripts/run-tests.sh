#!/usr/bin/env bash
# Runs every PowerGrad test on this machine: installs what the tests need (Debian 12, as
# root), builds, runs `make check` (Check unit tests and end-to-end tests on a real local
# Slurm cluster), then prints each runner's summary and a final "N passed, N failed" line.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${PG_BUILD_DIR:-$top/build}

if [ "$(id -u)" -eq 0 ]; then
  "$top/scripts/install-deps.sh"
else
  echo "run-tests: not root: skipping package installation; end-to-end tests will skip" >&2
fi
PG_BUILD_DIR=$build "$top/scripts/build.sh"
status=0
make -C "$build" -j1 check || status=$?
echo
echo "== test summary"
"$top/tests/summary.sh" "$build" || status=1
exit "$status"
