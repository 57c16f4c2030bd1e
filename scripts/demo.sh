#!/usr/bin/env bash
# PowerGrad's main job on a local demo cluster. Installs and builds what is needed, brings up
# a real Slurm cluster (munged, slurmctld, 4 slurmd, slurmdbd + MariaDB) with both PowerGrad
# plugins; every node has an emulated dual-socket powercap tree (2 x 205 W packages) and a
# power emulator, and the cluster budget (700 W) is below what the nodes can draw (1640 W).
# Runs a compute-bound and a memory-bound --power-aware job (n1, n2), a plain job (n3, not
# power-aware) and leaves n4 idle, and shows, while they run, `powergrad status` and the caps
# in force per node: the idle node at its idle cap, the plain one at most at its fair share,
# the power-aware ones sharing the rest by gradient (the compute-bound job gets more); lowers
# the budget with `powergrad set-budget`, then shows the jobs' records in sacct, `powergrad
# report` and a job's power plot (SVG). Under a minute after the build.
# Tears the cluster down at the end (--keep leaves it up; then
# `PG_CLUSTER_DIR=/tmp/powergrad-demo tests/cluster/pgcluster down` stops it).
# PG_SLURM=24.11 (or 26.05) runs it on that Slurm version instead of this machine's.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
keep=0
for a in "$@"; do
  case "$a" in
    --keep) keep=1 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "demo: unknown option '$a'" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "demo: run as root (it installs packages and starts daemons)" >&2; exit 1; }
# PG_SLURM=24.11 or 26.05: the same demo inside the Debian root that carries that Slurm
# version (scripts/slurm-root.sh makes it once, then it is cached), built in build-slurm-V.
case "${PG_SLURM:-22.05}" in
  22.05) ;;
  24.11|26.05)
    if [ -z "${PG_SLURM_ROOT:-}" ]; then
      "$top/scripts/slurm-root.sh" "$PG_SLURM" >/dev/null
      exec "$top/scripts/slurm-root.sh" --enter "$PG_SLURM" -- \
        env PG_BUILD_DIR="${PG_BUILD_DIR:-$top/build-slurm-$PG_SLURM}" bash "$top/scripts/demo.sh" "$@"
    fi ;;
  *) echo "demo: unsupported PG_SLURM '$PG_SLURM' (22.05, 24.11 or 26.05)" >&2; exit 2 ;;
esac
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

build=${PG_BUILD_DIR:-$top/build}
"$top/scripts/install-deps.sh"
PG_BUILD_DIR=$build "$top/scripts/build.sh" >/dev/null
# the power emulator is a test program (make check builds it): build just that one
make -C "$build" hardware/testing/powergrad-hwemu >/dev/null
echo "demo: built PowerGrad in $build"

pg=$build/tools/powergrad
hwemu=$build/hardware/testing/powergrad-hwemu
export PG_SPANK_PLUGIN=$build/spank_powergrad/.libs/spank_powergrad.so
export PG_CTLD_PLUGIN_DIR=$build/slurmctld_powergrad/.libs
[ -f "$PG_CTLD_PLUGIN_DIR/prep_powergrad.so" ] ||
  { echo "demo: controller plugin not built (Slurm source missing?)" >&2; exit 1; }
for f in "$PG_SPANK_PLUGIN" "$pg" "$hwemu"; do
  [ -e "$f" ] || { echo "demo: $f not built" >&2; exit 1; }
done

# ------------------------------------------------------------------ helpers
section() { printf '\n=== %s\n' "$*"; }
say() { printf '    %s\n' "$@"; }
indent() { sed 's/^/    /'; }
now() { echo "${EPOCHREALTIME}"; }
# wait_until TIMEOUT_S CMD...: runs CMD every 0.2 s until it succeeds (0) or time runs out (1)
wait_until() {
  local deadline=$(( ${EPOCHREALTIME/./} + $1 * 1000000 )); shift
  until "$@" >/dev/null 2>&1; do
    [ "${EPOCHREALTIME/./}" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}

export PG_CLUSTER_DIR=${PG_CLUSTER_DIR:-/tmp/powergrad-demo}
export PG_PORT_BASE=${PG_PORT_BASE:-17000}
pgc=$top/tests/cluster/pgcluster
nodes="n1 n2 n3 n4"
nodes_dir=$PG_CLUSTER_DIR/nodes
work=$PG_CLUSTER_DIR/work
budget=700 low_budget=560 floor=110 idle_cap=105 pkg_w=205
node_max=$((2 * pkg_w)) cluster_max=$((4 * 2 * pkg_w))
port=$((PG_PORT_BASE + 3))
sampler=''

cleanup() {
  [ -z "$sampler" ] || kill "$sampler" 2>/dev/null || true
  [ ! -d "$work" ] || touch "$work/STOP"
  if [ "$keep" -eq 0 ]; then
    "$pgc" down >/dev/null 2>&1 || true
    local f
    for f in "$nodes_dir"/*/hwemu.pid; do
      if [ -f "$f" ]; then kill "$(cat "$f")" 2>/dev/null || true; fi
    done
  fi
}
# a fresh folder (a cluster of an earlier run is stopped first): `up` wants one of its own
# when the nodes' trees and emulators are prepared before it
"$pgc" down --purge >/dev/null 2>&1 || true
trap cleanup EXIT

# ------------------------------------------------------------------ 1. the cluster
section "1. A 4-node cluster whose power budget is below what its nodes can draw"
for n in $nodes; do
  mkdir -p "$nodes_dir/$n"
  # a fake dual-socket Intel server: two RAPL packages of $pkg_w W each
  "$hwemu" make-tree --root "$nodes_dir/$n/sys" --machine intel-server
  # the power emulator: advances the packages' energy counters from the caps in force
  "$hwemu" run --root "$nodes_dir/$n/sys" --period-s 0.1 --pid-file "$nodes_dir/$n/hwemu.pid" \
    > "$nodes_dir/$n/hwemu.log" 2>&1 &
done
emulate=$nodes_dir/emulate.txt   # per-job workloads of the emulated counters
: > "$emulate"
export PG_POWERGRAD_CONF="Budget=$budget
ControlPeriod=1
LeaseTime=3
NodeFloor=$floor
NodeMax=$node_max
IdleCap=$idle_cap
PlainShare=usage
AdminUsers=root"
# The node agent (SPANK plugin) of each slurmd: its own state folder and powercap tree (%n),
# emulated counters, and the controller in slurmctld to report to.
export PG_SPANK_ARGS="log_level=info period=0.5 state_dir=$nodes_dir/%n/state \
sysfs_root=$nodes_dir/%n/sys counters=emulated emulate=$emulate grant=$((budget / 4)) \
floor=$floor controller=127.0.0.1:$port"
"$pgc" up 4 | indent
eval "$("$pgc" env)"
export POWERGRAD_MUNGE_SOCKET=$PG_MUNGE_SOCKET
mkdir -p "$work" && chmod 1777 "$work"
say "" "each node: 2 packages x $pkg_w W = $node_max W at most; 4 nodes: $cluster_max W" \
  "cluster budget (powergrad.conf Budget=): $budget W, i.e. $((budget * 100 / cluster_max))% of the nodes' maximum" \
  "PowerGrad's controller (in slurmctld) divides it among the nodes every second"

# ------------------------------------------------------------------ 2. the option
section "2. The --power-aware option"
say "srun --help lists it:"
srun --help | grep -A1 -- '--power-aware' | indent
say "a bad mode is refused:"
srun --power-aware=fast -N1 true 2>&1 | indent || true

# ------------------------------------------------------------------ 3. two jobs
section "3. Two power-aware jobs, a plain job and an idle node under one budget"
tree_uw() { cat "$nodes_dir/$1/sys/class/powercap/intel-rapl:$2/constraint_0_power_limit_uw"; }
tree_w() { echo $(( ($(tree_uw "$1" 0) + $(tree_uw "$1" 1)) / 1000000 )); }
trees_sum() { local n t=0; for n in $nodes; do t=$((t + $(tree_w "$n"))); done; echo "$t"; }
status_ok() { "$pg" status --json --timeout 3 >/dev/null 2>&1; }
sessions() {
  "$pg" status --json --timeout 3 2>/dev/null | python3 -c 'import json,sys
n = {x["name"]: x for x in json.load(sys.stdin)["nodes"]}
sys.exit(0 if all(k in n and n[k]["connected"] and n[k]["grant_w"] is not None
                  for k in ("n1","n2","n3","n4")) else 1)'
}
wait_until 30 sessions || say "(not every node agent reports to the controller yet)"

submit() {  # NAME NODE [OPTION]: held until its workload is written under its id
  sbatch --parsable -H ${3:+"$3"} -N1 -w "$2" -J "$1" -t 3 -D "$work" -o /dev/null \
    --wrap "srun ${3:-} bash -c 'while [ ! -e $work/STOP ]; do sleep 0.5; done'"
}
ja=$(submit resnet-like n1 --power-aware=throughput)
jb=$(submit dlrm-like n2 --power-aware=throughput)
jp=$(submit plain n3)
{
  echo "$ja memory_share=0.1,busy_cpus=4,zone=intel-rapl:0"
  echo "$jb memory_share=0.8,busy_cpus=4,zone=intel-rapl:0"
  echo "$jp memory_share=0.1,busy_cpus=4,zone=intel-rapl:0"
} > "$emulate"
scontrol release "$ja" "$jb" "$jp"
t_jobs=$(now)
declare -A job_of=([n1]="$ja resnet-like" [n2]="$jb dlrm-like" [n3]="$jp plain" [n4]="(idle)")
printf '    %-7s %-12s %-5s %-13s %-32s %s\n' JOBID NAME NODE WORKLOAD "MEMORY_SHARE (emulated counters)" OPTION
printf '    %-7s %-12s %-5s %-13s %-32s %s\n' "$ja" resnet-like n1 compute-bound 0.1 --power-aware=throughput
printf '    %-7s %-12s %-5s %-13s %-32s %s\n' "$jb" dlrm-like n2 memory-bound 0.8 --power-aware=throughput
printf '    %-7s %-12s %-5s %-13s %-32s %s\n' "$jp" plain n3 compute-bound 0.1 "(none: a plain job)"
say "n4 runs nothing (idle)"
running() { [ "$(squeue -h -t R -j "$ja,$jb,$jp" | wc -l)" = 3 ]; }
wait_until 30 running || { say "the jobs did not start:"; squeue | indent; exit 1; }
within_budget() { [ "$(trees_sum)" -le "$budget" ]; }
wait_until 20 within_budget || say "(the caps are not yet within the budget)"
say "" "both run; every node's agent has applied the caps its grant allows"

# Samples the caps in force every 0.5 s (for the means below): "time n1 n2 n3 n4".
samples=$PG_CLUSTER_DIR/caps-samples.txt
: > "$samples"
( while [ ! -e "$work/STOP" ]; do
    echo "${EPOCHREALTIME} $(tree_w n1) $(tree_w n2) $(tree_w n3) $(tree_w n4)" >> "$samples"
    sleep 0.5
  done ) &
sampler=$!

caps_table() {  # BUDGET
  local n sum=0 w
  printf '    %-5s %-19s %9s %9s %9s\n' NODE JOB PKG0_CAP PKG1_CAP NODE_CAP
  for n in $nodes; do
    w=$(tree_w "$n"); sum=$((sum + w))
    printf '    %-5s %-19s %7d W %7d W %7d W\n' "$n" "${job_of[$n]}" \
      $(( $(tree_uw "$n" 0) / 1000000 )) $(( $(tree_uw "$n" 1) / 1000000 )) "$w"
  done
  printf '    %-25s %29s\n' "sum of the caps" "$sum W"
  printf '    %-25s %29s  (%s)\n' "cluster budget" "$1 W" \
    "$([ "$sum" -le "$1" ] && echo "within it" || echo "ABOVE IT")"
}
caps_mean() {  # FROM_T TO_T: mean caps of each node in that window
  awk -v a="$1" -v b="$2" -v ja="$ja" -v jb="$jb" -v jp="$jp" '
    $1 >= a && $1 <= b { w += $2; x += $3; y += $4; z += $5; k++ }
    END { if (k) printf "    %-38s %5.0f W\n    %-38s %5.0f W\n    %-38s %5.0f W\n    %-38s %5.0f W\n    (means of each node'"'"'s caps over the last %.0f s)\n",
                        "n1 job " ja " resnet-like (power-aware):", w / k,
                        "n2 job " jb " dlrm-like (power-aware):", x / k,
                        "n3 job " jp " plain:", y / k, "n4 idle:", z / k, b - a }' "$samples"
}

section "4. While they run: the controller's view and the caps in the nodes' trees"
sleep 10
t_win=$(now)
say "\$ powergrad status"
"$pg" status | indent
sleep 5
say "" "\$ powergrad status   (5 s later)"
"$pg" status | indent
say "" "caps in force (each node's powercap tree, long-term limit of both packages; the" \
  "emulated work runs on package 0, so PowerGrad gives the node's cap to it):"
caps_table "$budget"
say "" "n4 (idle) is held at its idle cap ($idle_cap W), n3 (plain) at most at its fair share" \
  "($((budget / 4)) W), and the power-aware jobs share the rest by gradient: the compute-bound" \
  "one (a watt buys it more progress) gets more than the memory-bound one:"
caps_mean "$t_win" "$(now)"

section "5. The admin lowers the budget at run time"
say "\$ powergrad set-budget $low_budget"
"$pg" set-budget "$low_budget" 2>&1 | indent
t_set=$(now)
sleep 3
say "" "3 s (3 control periods) later:" "\$ powergrad status"
"$pg" status | indent
say "" "caps in force:"
caps_table "$low_budget"
sleep 5
say "" "since the change (fair share now $((low_budget / 4)) W):"
caps_mean "$t_set" "$(now)"

# ------------------------------------------------------------------ 6. the records
section "6. After the jobs: PowerGrad's records in Slurm accounting"
touch "$work/STOP"
wait "$sampler" 2>/dev/null || true
sampler=''
say "the jobs end (they ran ~$(awk -v a="$t_jobs" -v b="$(now)" 'BEGIN { printf "%.0f", b - a }') s)"
ended() { [ -z "$(squeue -h -j "$ja,$jb,$jp")" ]; }
wait_until 60 ended || { say "the jobs are still listed:"; squeue | indent; }
recorded() {
  local c
  c=$(sacct -n -X -j "$ja,$jb" --format=AdminComment%400)
  [ "$(grep -c 'energy_j=' <<<"$c")" = 2 ] && [ "$(sacct -n -X -j "$ja,$jb" -o State | grep -c COMPLETED)" = 2 ]
}
wait_until 30 recorded || say "(sacct does not show both records yet)"
plain_recorded() { [ -n "$(sacct -n -X --name=plain -o JobID)" ]; }
wait_until 10 plain_recorded || true
say "" "\$ sacct -X --name=resnet-like,dlrm-like,plain --format=JobID,JobName,State,Elapsed,NNodes"
sacct -X --name=resnet-like,dlrm-like,plain --format=JobID,JobName%12,State,Elapsed,NNodes | indent
say "" "their AdminComment (PowerGrad's record; the plain job has none):"
for j in "$ja" "$jb"; do
  sacct -n -X -j "$j" --format=AdminComment%600 | sed 's/^[[:space:]]*//; s/[[:space:]]*$//' |
    fold -s -w 88 | sed "s/ *\$//; 1s/^/    $j  /; 2,\$s/^/    $(printf '%*s' ${#j} '')  /"
done
say "" "\$ powergrad report"
"$pg" report 2>&1 | indent
svg=$PG_CLUSTER_DIR/job-$ja.svg
plot() { "$pg" report -j "$ja" --plot "$svg" > "$work/plot.out" 2>&1; }
say "" "\$ powergrad report -j $ja --plot $svg"
if wait_until 20 plot; then
  indent < "$work/plot.out"
  say "power, cap and grant of job $ja over time: open $svg in a browser"
else
  indent < "$work/plot.out"
fi

if [ "$keep" -eq 1 ]; then
  section "The cluster is left up"
  say "export PG_CLUSTER_DIR=$PG_CLUSTER_DIR" "eval \"\$($pgc env)\"   to use it" \
    "$pgc down   to stop it (and the power emulators)"
else
  section "Done: the cluster is torn down (bash scripts/demo.sh --keep leaves it up)"
fi
