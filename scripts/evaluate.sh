#!/usr/bin/env bash
# Runs every scenario in scenarios/ with every policy on seeds 1, 2 and 3 and prints one
# table: per scenario, powergrad against usage and uniform (mean, p99, p50), its share of
# the oracle's gain, the budget it used, violations, drops and a HARM flag (seed-averaged;
# scripts/evaluate-table.py says how each figure is computed).
#   scripts/evaluate.sh [--sim PATH] [--out OUTDIR] [--seeds LIST] [--duration SECONDS]
#                       [--only NAME[,NAME...]] [--set KEY=VALUE]...
# OUTDIR (default build/evaluation) gets, per scenario and seed, the simulator's table,
# JSON and CSV (NAME.seedN.txt/.json/.csv), a plot of seed 1 (NAME.svg), per-seed.md (the
# table's figures for every seed) and summary.md (the table, then each scenario's seed-1
# table and plot). --seeds takes a comma-separated list (default 1,2,3); --duration
# overrides every scenario's duration (a quick look; the table is then not comparable);
# --only runs the named scenarios (file names without .yaml); --set passes a setting to every
# run (powergrad-sim --set, e.g. powergrad.low_cap_knee=0.5; the table is then of that
# setting).
# Exit status: 0; 1 when powergrad does harm in some scenario or any policy violated a
# budget; 2 on a usage error or a failed run.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
sim=${PG_SIM:-}
out=build/evaluation
seeds=1,2,3
only=
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --sim) sim=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --seed|--seeds) seeds=$2; shift 2 ;;
    --duration) extra+=(--duration "$2"); shift 2 ;;
    --only) only=$2; shift 2 ;;
    --set) extra+=(--set "$2"); shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "evaluate: unknown option '$1'" >&2; exit 2 ;;
  esac
done
if [ -z "$sim" ]; then
  for c in "$here/build/sim/powergrad-sim" "./sim/powergrad-sim"; do
    [ -x "$c" ] && { sim=$c; break; }
  done
fi
[ -n "$sim" ] && [ -x "$sim" ] || { echo "evaluate: powergrad-sim not found; build it or pass --sim PATH" >&2; exit 2; }
command -v python3 >/dev/null || { echo "evaluate: python3 is needed for the table" >&2; exit 2; }
case "$seeds" in
  ''|*[!0-9,]*) echo "evaluate: --seeds: expected a comma-separated list of numbers" >&2; exit 2 ;;
esac

names=()
for scenario in "$here"/scenarios/*.yaml; do
  name=$(basename "$scenario" .yaml)
  if [ -n "$only" ] && [[ ",$only," != *",$name,"* ]]; then continue; fi
  names+=("$name")
done
[ ${#names[@]} -gt 0 ] || { echo "evaluate: no scenario to run" >&2; exit 2; }

mkdir -p "$out"
start=$(date +%s)
IFS=, read -r -a seed_list <<< "$seeds"
for name in "${names[@]}"; do
  for seed in "${seed_list[@]}"; do
    t0=$(date +%s)
    plot=()
    [ "$seed" = "${seed_list[0]}" ] && plot=(--plot "$out/$name.svg")
    base=$out/$name.seed$seed
    if ! "$sim" "$here/scenarios/$name.yaml" --seed "$seed" "${extra[@]}" --quiet --format table \
        --json "$base.json" --csv "$base.csv" "${plot[@]}" > "$base.txt"; then
      echo "evaluate: $name seed $seed failed" >&2
      exit 2
    fi
    echo "evaluate: $name seed $seed: $(( $(date +%s) - t0 )) s" >&2
  done
done
elapsed=$(( $(date +%s) - start ))

status=0
table=$(python3 "$here/scripts/evaluate-table.py" "$out" "${names[@]}" --seeds "$seeds" \
        --per-seed "$out/per-seed.md") || status=$?
[ "$status" -le 1 ] || exit 2
summary=$out/summary.md
{
  echo "# PowerGrad simulator evaluation"
  echo
  echo "$(date -u +%Y-%m-%dT%H:%MZ); ${#names[@]} scenarios x seeds $seeds, every policy;" \
       "$elapsed s${extra[*]:+; ${extra[*]}}"
  echo
  echo "$table"
  echo
  echo "Per-seed figures: per-seed.md."
  echo
  for name in "${names[@]}"; do
    echo "## $name (seed ${seed_list[0]})"
    echo
    echo '```'
    cat "$out/$name.seed${seed_list[0]}.txt"
    echo '```'
    echo
    echo "![${name}]($name.svg)"
    echo
  done
} > "$summary"
echo "$table"
echo
echo "evaluate: ${#names[@]} scenarios x ${#seed_list[@]} seeds in $elapsed s; results in $out" \
     "(summary.md, per-seed.md, per scenario and seed .txt .json .csv, .svg)" >&2
exit "$status"
