#!/usr/bin/env bash
# Runs every shipped scenario with every policy and writes, per scenario, the table, JSON,
# CSV and an SVG plot into OUTDIR (default build/evaluation), plus summary.md.
#   scripts/evaluate.sh [--sim PATH] [--out OUTDIR] [--seed N] [--duration SECONDS]
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
sim=${PG_SIM:-}
out=build/evaluation
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --sim) sim=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --seed) extra+=(--seed "$2"); shift 2 ;;
    --duration) extra+=(--duration "$2"); shift 2 ;;
    -h|--help) sed -n '2,4p' "$0"; exit 0 ;;
    *) echo "evaluate: unknown option '$1'" >&2; exit 2 ;;
  esac
done
if [ -z "$sim" ]; then
  for c in "$here/build/sim/powergrad-sim" "./sim/powergrad-sim"; do
    [ -x "$c" ] && { sim=$c; break; }
  done
fi
[ -n "$sim" ] && [ -x "$sim" ] || { echo "evaluate: powergrad-sim not found; build it or pass --sim PATH" >&2; exit 2; }

mkdir -p "$out"
summary=$out/summary.md
{
  echo "# PowerGrad simulator evaluation"
  echo
  echo "$(date -u +%Y-%m-%dT%H:%MZ), $("$sim" --help >/dev/null 2>&1 && echo "$sim")"
  echo
} > "$summary"
for scenario in "$here"/scenarios/*.yaml; do
  name=$(basename "$scenario" .yaml)
  echo "evaluate: $name" >&2
  "$sim" "$scenario" "${extra[@]}" --format table --json "$out/$name.json" \
    --csv "$out/$name.csv" --plot "$out/$name.svg" > "$out/$name.txt"
  { echo "## $name"; echo; echo '```'; cat "$out/$name.txt"; echo '```'; echo;
    echo "![${name}]($name.svg)"; echo; } >> "$summary"
done
echo "evaluate: results in $out (summary.md, per scenario .txt .json .csv .svg)" >&2
