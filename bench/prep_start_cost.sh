#!/usr/bin/env bash
# What the PrEp start hook costs a job's start: the time from `sbatch` to the first line of
# the job's script, for N jobs one after the other on a 1-node local cluster, with the
# controller plugin loaded as deployed (no start hook: POWERGRAD_START_HOOK unset) and with
# the start hook declared required (POWERGRAD_START_HOOK=1: every job passes through
# CONFIGURING and a detached thread of slurmctld), and without the plugin at all.
# Prints "bench: prep_start_<case>_median_ms VALUE ms" lines and the ratios. Root only.
#
#   bench/prep_start_cost.sh [N]      (default 20 jobs per case)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../tests/e2e/lib.sh
. "$(dirname "$0")/../tests/e2e/lib.sh"
n=${1:-20}
build=${PG_BUILDDIR:-$PG_TOP/build}
ctld_dir=$build/slurmctld_powergrad/.libs
[ "$(id -u)" -eq 0 ] || { echo "prep_start_cost: must run as root" >&2; exit 2; }
[ -f "$ctld_dir/prep_powergrad.so" ] || { echo "prep_start_cost: no $ctld_dir/prep_powergrad.so" >&2; exit 2; }

pg_cluster_test_setup prepcost
work=$PG_CLUSTER_DIR/work

# Median of the sbatch -> script start latencies (ms) of $n jobs.
measure() {
  local i t0 t1 id ms=()
  mkdir -p "$work" && chmod 1777 "$work"
  for ((i = 0; i < n; i++)); do
    rm -f "$work/start"
    t0=$(date +%s%N)
    id=$(sbatch --parsable -N1 -o /dev/null --wrap "date +%s%N > $work/start")
    wait_until 30 test -s "$work/start" || { echo "job $id did not start" >&2; return 1; }
    t1=$(cat "$work/start")
    ms+=($(( (t1 - t0) / 1000000 )))
    wait_until 30 sh -c "[ -z \"\$(squeue -h -j $id 2>/dev/null)\" ]" || true
  done
  printf '%s\n' "${ms[@]}" | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2)}'
}

run_case() { # NAME, then env assignments for the cluster
  local name=$1 med
  shift
  env "$@" "$PGCLUSTER" up 1 >/dev/null
  pg_cluster_env
  sleep 6  # jobs submitted in the first seconds after slurmctld starts wait to be scheduled
  med=$(measure)
  "$PGCLUSTER" down >/dev/null
  echo "bench: prep_start_${name}_median_ms $med ms" >&2
  echo "$med"
}

none=$(run_case none PG_CTLD_PLUGIN_DIR=)
plugin=$(run_case plugin PG_CTLD_PLUGIN_DIR="$ctld_dir")
hook=$(run_case start_hook PG_CTLD_PLUGIN_DIR="$ctld_dir" POWERGRAD_START_HOOK=1)
echo "bench: prep_start_none_median_ms $none ms"
echo "bench: prep_start_plugin_median_ms $plugin ms"
echo "bench: prep_start_start_hook_median_ms $hook ms"
awk -v a="$none" -v b="$plugin" -v c="$hook" 'BEGIN {
  printf "bench: prep_start_plugin_ratio %.2f x (plugin, no start hook / no plugin)\n", b / a
  printf "bench: prep_start_start_hook_ratio %.2f x (start hook / no plugin)\n", c / a }'
