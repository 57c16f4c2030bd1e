#!/usr/bin/env bash
# PowerGrad's main job on a local demo cluster: installs and builds what is needed, brings
# up a real Slurm cluster (munged, slurmctld, 4 slurmd, slurmdbd + MariaDB) with both
# PowerGrad plugins, runs a --power-aware job and a plain job, and shows what PowerGrad did:
# the per-node step log lines and the jobs' records in sacct. Tears the cluster down at the
# end (--keep leaves it up; `tests/cluster/pgcluster down` stops it later).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
keep=0
for a in "$@"; do
  case "$a" in
    --keep) keep=1 ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) echo "demo: unknown option '$a'" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "demo: run as root (it installs packages and starts daemons)" >&2; exit 1; }

build=${PG_BUILD_DIR:-$top/build}
"$top/scripts/install-deps.sh"
PG_BUILD_DIR=$build "$top/scripts/build.sh" >/dev/null
echo "demo: built PowerGrad in $build"

export PG_CLUSTER_DIR=${PG_CLUSTER_DIR:-/tmp/powergrad-demo}
export PG_SPANK_PLUGIN=$build/spank_powergrad/.libs/spank_powergrad.so
export PG_CTLD_PLUGIN_DIR=$build/slurmctld_powergrad/.libs
# Four slurmd share this host: each node agent needs its own state folder (%n).
export PG_SPANK_ARGS="state_dir=$PG_CLUSTER_DIR/nodes/%n/state"
[ -f "$PG_CTLD_PLUGIN_DIR/slurmctld_powergrad.so" ] ||
  { echo "demo: controller plugin not built (Slurm source missing?)" >&2; exit 1; }
pgc=$top/tests/cluster/pgcluster
"$pgc" down >/dev/null 2>&1 || true
if [ "$keep" -eq 0 ]; then trap '"$pgc" down >/dev/null 2>&1 || true' EXIT; fi
"$pgc" up 4
eval "$("$pgc" env)"

echo
echo "demo: srun --help lists the option:"
srun --help | grep -A1 -- '--power-aware' | sed 's/^/    /'

echo
echo "demo: a power-aware inference-like job on 2 nodes, and a plain job:"
srun --power-aware=latency -N2 -J pa-service bash -c 'sleep 3; echo "    $SLURMD_NODENAME served"'
srun -N1 -J plain bash -c 'sleep 1; echo "    $SLURMD_NODENAME plain job done"'
echo
echo "demo: a bad mode is refused:"
srun --power-aware=fast -N1 true 2>&1 | sed 's/^/    /' || true

echo
echo "demo: what the node side logged (slurmstepd on each node):"
for n in $(scontrol show hostnames "$(sinfo -h -o %N)"); do
  grep -h 'powergrad: job' "$("$pgc" log "$n")" 2>/dev/null | sed 's/^/    /' || true
done

echo
echo "demo: sacct (the power-aware job carries PowerGrad's record):"
for _ in $(seq 1 30); do
  out=$(sacct -X -n --format=JobID,JobName%12,State,AdminComment%70 2>/dev/null || true)
  if grep -q 'powergrad=' <<<"$out" && grep -q plain <<<"$out"; then break; fi
  sleep 1
done
sacct -X --format=JobID,JobName%12,State,AdminComment%70 | sed 's/^/    /'
if [ "$keep" -eq 1 ]; then
  echo
  echo "demo: cluster left up; eval \"\$($pgc env)\" to use it, '$pgc down' to stop it"
fi
