#!/usr/bin/env bash
# What the SPANK plugin costs every srun: `srun -N1 true` (a plain job: allocation, the
# job step's slurmstepd, the task) and `srun --help` (srun alone) on a 1-node local cluster,
# without the plugin and with it, side by side in one run: the cases take turns, run after
# run, so that a machine that gets busier or quieter affects them alike. The node's slurmd
# runs the node agent (from the build's plugin) throughout; what changes between cases is
# plugstack.conf, which srun and every new slurmstepd read when they start.
#
# Cases: none (empty plugstack.conf), minimal (bench/spank_minimal.c, built here: what Slurm
# itself spends on having any SPANK plugin), plugin (this build's thin plugin), and one case
# per extra plugin path given (e.g. an older build's plugin, to compare). With the plugin, also
# `srun --power-aware -N1 true` (a power-aware step registering its task with the agent).
# Prints, per case, the median and 90th percentile in ms and the median added to `none`.
# Root only.
#
#   bench/srun_overhead.sh [RUNS [OTHER_PLUGIN.so ...]]   (default 30 runs per case)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../tests/e2e/lib.sh
. "$(dirname "$0")/../tests/e2e/lib.sh"
runs=${1:-30}
shift || true
others=("$@")
build=${PG_BUILDDIR:-$PG_TOP/build}
spank=$build/spank_powergrad/.libs/spank_powergrad.so
hwemu=$build/hardware/testing/powergrad-hwemu
[ "$(id -u)" -eq 0 ] || { echo "srun_overhead: must run as root" >&2; exit 2; }
[ -f "$spank" ] || { echo "srun_overhead: no $spank (build first)" >&2; exit 2; }
[ -x "$hwemu" ] || { echo "srun_overhead: no $hwemu (make check builds it)" >&2; exit 2; }
for o in "${others[@]}"; do
  [ -f "$o" ] || { echo "srun_overhead: no plugin $o" >&2; exit 2; }
done

pg_cluster_test_setup srun_overhead
minimal_dir=$(mktemp -d /tmp/pg-spank-minimal.XXXXXX)
chmod 755 "$minimal_dir"
pg_on_exit rm -rf "$minimal_dir"
minimal=$minimal_dir/spank_minimal.so
${CC:-cc} -shared -fPIC -O2 -o "$minimal" "$PG_TOP/bench/spank_minimal.c" ||
  { echo "srun_overhead: cannot build bench/spank_minimal.c" >&2; exit 1; }
nodes_dir=$PG_CLUSTER_DIR/nodes
mkdir -p "$nodes_dir/n1"
"$hwemu" make-tree --root "$nodes_dir/n1/sys" --machine intel-server >/dev/null
echo "* memory_share=0.2,busy_cpus=1" > "$nodes_dir/emulate.txt"
args="period=1 state_dir=$nodes_dir/%n/state sysfs_root=$nodes_dir/%n/sys counters=emulated \
emulate=$nodes_dir/emulate.txt grant=300 controller=none"
export PG_SPANK_PLUGIN=$spank PG_SPANK_ARGS=$args
"$PGCLUSTER" up 1 >/dev/null
pg_cluster_env
plugstack=$(scontrol show config | awk -F' = ' '/^PlugStackConfig/ {print $2}')
[ -f "$plugstack" ] || { echo "srun_overhead: no plugstack.conf at '$plugstack'" >&2; exit 1; }
# The first jobs after slurmctld starts wait for the node to register.
wait_until 60 sh -c 'srun -N1 -t 1 true' || { echo "srun_overhead: no job ran" >&2; exit 1; }

cases=(none minimal plugin)
declare -A so=([none]='' [minimal]=$minimal [plugin]=$spank)
for i in "${!others[@]}"; do
  cases+=("other$((i + 1))")
  so[other$((i + 1))]=${others[$i]}
done
use() { # CASE: plugstack.conf for it (written whole, then renamed)
  local f=$plugstack.new
  case $1 in
    none) : > "$f" ;;
    minimal) echo "required ${so[$1]}" > "$f" ;;
    *) echo "required ${so[$1]} $args" > "$f" ;;
  esac
  mv -f "$f" "$plugstack"
}
ms() { # CMD...: milliseconds it took (its output discarded); fails with it
  local t0=$EPOCHREALTIME rc=0
  "$@" >/dev/null 2>&1 || rc=$?
  awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.2f\n", (b - a) * 1000}'
  return "$rc"
}
declare -A times
for ((r = 0; r < runs; r++)); do
  for c in "${cases[@]}"; do
    use "$c"
    t=$(ms srun -N1 -t 1 true) || { echo "srun_overhead: srun failed in case $c" >&2; exit 1; }
    times[$c.job]+="$t "
    times[$c.help]+="$(ms srun --help) "
    if [ -n "${so[$c]}" ] && [ "$c" != minimal ]; then
      t=$(ms srun --power-aware -N1 -t 1 true) || {
        echo "srun_overhead: srun --power-aware failed in case $c" >&2; exit 1; }
      times[$c.aware]+="$t "
    fi
  done
done
use plugin

stats() { # "T T T ...": median p90
  tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{a[NR]=$1} END {
    m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
    p = a[int(0.9 * NR + 0.999)]; printf "%.1f %.1f\n", m, p }'
}
echo "srun_overhead: $runs runs per case, taking turns, 1-node cluster (Slurm $(srun --version | awk '{print $2}')), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
for what in job help aware; do
  read -r base _ < <(stats "${times[none.job]}")
  [ "$what" = help ] && read -r base _ < <(stats "${times[none.help]}")
  for c in "${cases[@]}"; do
    [ -n "${times[$c.$what]:-}" ] || continue
    read -r med p90 < <(stats "${times[$c.$what]}")
    label=${so[$c]:-no plugin}
    awk -v w="$what" -v c="$c" -v m="$med" -v p="$p90" -v b="$base" -v l="$label" 'BEGIN {
      cmd = (w == "help") ? "srun --help" : (w == "aware") ? "srun --power-aware -N1 true" : "srun -N1 true"
      printf "bench: srun_%s_%s_median_ms %.1f ms (p90 %.1f ms, %+.1f ms vs no plugin; %s: %s)\n",
        w, c, m, p, m - b, cmd, l }'
  done
done
