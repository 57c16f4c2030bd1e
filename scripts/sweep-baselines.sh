#!/usr/bin/env bash
# Runs the baselines usage and pool over a small grid of their settings per scenario and
# compares powergrad (default settings) with each baseline at its best setting (issue 12).
#   scripts/sweep-baselines.sh [--sim PATH] [--out OUTDIR] [--seeds LIST] [--duration SECONDS]
#                              [--only NAME[,NAME...]]
# Grid (powergrad-sim --set; doc/scenarios.md), the defaults included:
#   usage: (lower, upper) threshold in (0.85, 0.90), (0.90, 0.95), (0.95, 0.98)
#          x period_s in 10, 30, 60                                          (9 settings)
#   pool:  release_margin_w in 1.5, 5, 15 x interval_s in 1, 2, 5 at grant_step 0.05, then
#          grant_step 0.02 and 0.15 at the best of those nine                (11 settings)
# Each baseline's best setting per scenario is the one with the lowest mean latency
# averaged over the seeds. Only the policy in question runs in each simulator call, one call
# at a time. OUTDIR (default build/sweep) gets per scenario NAME/POLICY.SETTING.seedN.json
# and sweep.md (the table, then every setting's figures). --seeds: comma-separated
# (default 1); --duration overrides every scenario's duration (the figures are then not
# comparable with make evaluate); --only runs the named scenarios (file names without .yaml).
# Exit status: 0; 2 on a usage error or a failed run.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
sim=${PG_SIM:-}
out=build/sweep
seeds=1
only=
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --sim) sim=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --seed|--seeds) seeds=$2; shift 2 ;;
    --duration) extra+=(--duration "$2"); shift 2 ;;
    --only) only=$2; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "sweep: unknown option '$1'" >&2; exit 2 ;;
  esac
done
if [ -z "$sim" ]; then
  for c in "$here/build/sim/powergrad-sim" "./sim/powergrad-sim"; do
    [ -x "$c" ] && { sim=$c; break; }
  done
fi
[ -n "$sim" ] && [ -x "$sim" ] || { echo "sweep: powergrad-sim not found; build it or pass --sim PATH" >&2; exit 2; }
command -v python3 >/dev/null || { echo "sweep: python3 is needed for the table" >&2; exit 2; }
case "$seeds" in
  ''|*[!0-9,]*) echo "sweep: --seeds: expected a comma-separated list of numbers" >&2; exit 2 ;;
esac
table=$here/scripts/sweep-baselines-table.py

names=()
for scenario in "$here"/scenarios/*.yaml; do
  name=$(basename "$scenario" .yaml)
  if [ -n "$only" ] && [[ ",$only," != *",$name,"* ]]; then continue; fi
  names+=("$name")
done
[ ${#names[@]} -gt 0 ] || { echo "sweep: no scenario to run" >&2; exit 2; }

IFS=, read -r -a seed_list <<< "$seeds"
start=$(date +%s)

# run NAME POLICY TAG [--set KEY=VALUE]...: one simulator call per seed, skipped when its
# JSON is already there (an interrupted sweep resumes).
run() {
  local name=$1 policy=$2 tag=$3
  shift 3
  mkdir -p "$out/$name"
  for seed in "${seed_list[@]}"; do
    local file=$out/$name/$policy.$tag.seed$seed.json
    [ -s "$file" ] && continue
    local t0
    t0=$(date +%s)
    if ! "$sim" "$here/scenarios/$name.yaml" --policies "$policy" --seed "$seed" "${extra[@]}" \
        "$@" --quiet --format json > "$file.tmp"; then
      echo "sweep: $name $policy $tag seed $seed failed" >&2
      rm -f "$file.tmp"
      exit 2
    fi
    mv "$file.tmp" "$file"
    echo "sweep: $name $policy $tag seed $seed: $(( $(date +%s) - t0 )) s" >&2
  done
}

for name in "${names[@]}"; do
  run "$name" powergrad default
  for th in 0.85,0.90 0.90,0.95 0.95,0.98; do
    for period in 10 30 60; do
      run "$name" usage "t${th/,/-}_p$period" --set usage.lower_threshold="${th%,*}" \
        --set usage.upper_threshold="${th#*,}" --set usage.period_s="$period"
    done
  done
  for margin in 1.5 5 15; do
    for interval in 1 2 5; do
      run "$name" pool "m${margin}_i${interval}_g0.05" --set pool.release_margin_w="$margin" \
        --set pool.interval_s="$interval" --set pool.grant_step=0.05
    done
  done
  best=$(python3 "$table" "$out" "$name" --seeds "$seeds" --best pool) || exit 2
  margin=${best#m}; margin=${margin%%_*}
  interval=${best#*_i}; interval=${interval%%_*}
  for step in 0.02 0.15; do
    run "$name" pool "m${margin}_i${interval}_g$step" --set pool.release_margin_w="$margin" \
      --set pool.interval_s="$interval" --set pool.grant_step="$step"
  done
done
elapsed=$(( $(date +%s) - start ))

result=$(python3 "$table" "$out" "${names[@]}" --seeds "$seeds" --details "$out/details.md") || exit 2
{
  echo "# Baselines at their best setting"
  echo
  echo "$(date -u +%Y-%m-%dT%H:%MZ); ${#names[@]} scenarios x seeds $seeds;" \
       "$elapsed s${extra[*]:+; ${extra[*]}}"
  echo
  echo "$result"
  echo
  cat "$out/details.md"
} > "$out/sweep.md"
echo "$result"
echo
echo "sweep: ${#names[@]} scenarios in $elapsed s; results in $out (sweep.md)" >&2
