#!/usr/bin/env bash
# End-to-end on AMD EPYC nodes: the node power and controller power suites, unchanged in
# what they check, run on fake dual-socket Genoa trees (powergrad-hwemu make-tree --machine
# amd-genoa: energy-only powercap zones, one amd_hsmp_hwmon device per socket, 205 W socket
# limits so the suites' figures hold), and the controller power suite once more on a mixed
# cluster (n1, n3 Intel RAPL; n2, n4 AMD HSMP). Each run is one test point here, ok when its
# whole plan ran and passed; its TAP lines follow as diagnostics, with the figures. What is
# checked on AMD trees, among the rest: caps written through power1_cap within the grant
# and the budget, the admin's socket limits back byte for byte after the job and after a
# kill -9 of slurmd, each agent's start-up line "caps: hsmp-hwmon ...", and status showing
# each node's capabilities (rapl or hsmp-hwmon). TAP.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

build=${PG_BUILDDIR:-$PG_TOP/build}
[ -f "$build/spank_powergrad/.libs/spank_powergrad.so" ] || skip_all "SPANK plugin not built"
[ -f "$build/slurmctld_powergrad/.libs/prep_powergrad.so" ] ||
  skip_all "controller plugin not built (configure --with-slurm-source=DIR)"
[ -x "$build/hardware/testing/powergrad-hwemu" ] ||
  skip_all "powergrad-hwemu not built (make check builds it)"
[ "$(id -u)" -eq 0 ] || skip_all "needs root (starts Slurm daemons, munged and MariaDB)"
if ! out=$("$PGCLUSTER" check 2>&1); then
  skip_all "cluster prerequisites missing: $(grep -m1 -- ' - ' <<<"$out" | sed 's/^.* - //')"
fi

plan 3

# run_suite MACHINE SUITE: one test point for the whole suite run on MACHINE's trees.
run_suite() {
  local machine=$1 suite=$2 out planned ran failed started desc
  started=$(date +%s)
  out=$(PG_HW_MACHINE=$machine bash "$PG_TOP/tests/e2e/$suite" 2>&1) || true
  planned=$(sed -n 's/^1\.\.\([0-9][0-9]*\).*/\1/p' <<<"$out" | head -n1)
  ran=$(grep -cE '^(not )?ok [0-9]+' <<<"$out" || true)
  failed=$(grep -cE '^not ok [0-9]+' <<<"$out" || true)
  desc="$suite on $machine trees: $ran/${planned:-?} passed in $(($(date +%s) - started)) s"
  if grep -q '^1\.\.0 # SKIP' <<<"$out"; then
    not_ok "$suite on $machine trees" "skipped: $(grep -m1 '^1\.\.0' <<<"$out")"
  elif [ -n "$planned" ] && [ "$ran" = "$planned" ] && [ "$failed" = 0 ] &&
    ! grep -q '^Bail out!' <<<"$out"; then
    ok "$desc"
  else
    desc="$suite on $machine trees: $((ran - failed))/${planned:-?} passed, $failed failed"
    not_ok "$desc" "$(grep -E '^(not ok|Bail out)' <<<"$out")"
  fi
  # The run's own lines, for the record (figures: caps, grants, budgets, timings).
  sed 's/^/  /' <<<"$out" | while IFS= read -r l; do diag "$l"; done
}

run_suite amd-genoa test_node_power.sh
run_suite amd-genoa test_controller_power.sh
run_suite mixed test_controller_power.sh
