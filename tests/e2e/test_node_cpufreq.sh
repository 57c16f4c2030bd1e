#!/usr/bin/env bash
# End-to-end: per-core frequency limits between two power-aware jobs that share a package,
# with real CPU binding. The one node runs Slurm's task/affinity (pgcluster's
# PG_TASK_PLUGIN=task/affinity), so each job's task is bound (sched_setaffinity) to the CPU
# of its allocation: the agent reads those CPUs from the real /proc/PID/status
# (Cpus_allowed_list) and maps them onto the fake dual-socket Intel tree (powergrad-hwemu
# make-tree: CPUs 0-3 are package 0, 4-7 package 1) with a power emulator running. Job A is
# compute-bound (memory_share 0.1), job B memory-bound (memory_share 0.8), both throughput
# mode and both on package 0 (intel-rapl:0), each on a CPU of its own. The admin has set
# scaling_max_freq of every CPU below the hardware maximum (and one CPU lower still).
# Checks: the tasks are bound to two different CPUs; while both run the memory-bound job's CPU
# gets a lower scaling_max_freq than the compute-bound job's (which keeps the admin's value),
# and no other CPU is touched; after both jobs every scaling_max_freq is the admin's value
# again, byte for byte, and so are the caps. TAP.
#
# The compute-bound job is a plain 'srun -H', the memory-bound one 'sbatch -H --wrap srun'
# (both held, released once their workloads are written): the batch step is bound to the
# same CPU as its job's step, and the agent must treat the steps of one job as one (a CPU
# is shared only with another job's step).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

build=${PG_BUILDDIR:-$PG_TOP/build}
spank=$build/spank_powergrad/.libs/spank_powergrad.so
hwemu=$build/hardware/testing/powergrad-hwemu
[ -f "$spank" ] || skip_all "SPANK plugin not built: $spank"
[ -x "$hwemu" ] || skip_all "powergrad-hwemu not built (make check builds it): $hwemu"
# Two jobs bound to different CPUs need two CPUs this process may run on.
ncpu=$(nproc)
[ "$ncpu" -ge 2 ] || skip_all "needs at least 2 usable CPUs to bind two jobs apart (nproc: $ncpu)"

pg_cluster_test_setup node_cpufreq
plan 8

admin_khz=3300000   # the admin's scaling_max_freq on every CPU (hardware max: 3400000)
odd_cpu=5 odd_khz=3000000
nodes_dir=$PG_CLUSTER_DIR/nodes
n=n1
cpufreq_dir=$nodes_dir/$n/sys/devices/system/cpu/cpufreq
settings() {
  (cd "$nodes_dir/$n/sys/devices/virtual/powercap" &&
    find . \( -name enabled -o -name 'constraint_*_power_limit_uw' -o \
      -name 'constraint_*_time_window_us' \) -type f | sort | xargs md5sum)
}
freqs() { (cd "$cpufreq_dir" && find . -name scaling_max_freq -type f | sort | xargs grep -H .); }
freq_of() { cat "$cpufreq_dir/policy$1/scaling_max_freq"; }
mkdir -p "$nodes_dir/$n"
"$hwemu" make-tree --root "$nodes_dir/$n/sys" --machine intel-server ||
  bail_out "powergrad-hwemu make-tree failed"
for f in "$cpufreq_dir"/policy*/scaling_max_freq; do echo "$admin_khz" > "$f"; done
echo "$odd_khz" > "$cpufreq_dir/policy$odd_cpu/scaling_max_freq"
settings > "$nodes_dir/$n/settings.orig"
freqs > "$nodes_dir/$n/freqs.orig"
"$hwemu" run --root "$nodes_dir/$n/sys" --period-s 0.1 --pid-file "$nodes_dir/$n/hwemu.pid" \
  > "$nodes_dir/$n/hwemu.log" 2>&1 &
hwemu_pid=$!
stop_hwemu() { kill "$hwemu_pid" 2>/dev/null || true; }
pg_on_exit stop_hwemu
emulate=$nodes_dir/emulate.txt
: > "$emulate"

export PG_TASK_PLUGIN=task/affinity
export PG_SPANK_PLUGIN=$spank
export PG_SPANK_ARGS="log_level=debug period=0.5 state_dir=$nodes_dir/%n/state \
sysfs_root=$nodes_dir/%n/sys counters=emulated emulate=$emulate grant=250 controller=none"
if out=$("$PGCLUSTER" up 1 2>&1); then
  ok "one-node cluster with task/affinity and a fake dual-socket tree is up"
else
  not_ok "one-node cluster with task/affinity and a fake dual-socket tree is up" "$out"
  bail_out "the cluster did not come up"
fi
pg_cluster_env
log=$("$PGCLUSTER" log $n)

# Held, so that their workloads can be written under their job ids before they start.
srun_pids=()
submit() { # NAME
  srun -H --power-aware=throughput -w $n -n1 --cpu-bind=cores -J "$1" -t 2 sleep 40 \
    </dev/null >/dev/null 2>"$nodes_dir/$1.err" &
  srun_pids+=("$!")
}
job_id() { squeue -h -n "$1" -o %i | head -n1; }
submit cpufreq-compute
sbatch -H --power-aware=throughput -w $n -n1 -J cpufreq-memory -t 2 \
  -o /dev/null --wrap "srun --cpu-bind=cores sleep 40" >/dev/null 2>"$nodes_dir/cpufreq-memory.err"
stop_sruns() { kill "${srun_pids[@]}" 2>/dev/null || true; }
pg_on_exit stop_sruns
have_ids() { [ -n "$(job_id cpufreq-compute)" ] && [ -n "$(job_id cpufreq-memory)" ]; }
wait_until 15 have_ids || bail_out "the held jobs did not show in squeue: $(cat "$nodes_dir"/*.err)"
ja=$(job_id cpufreq-compute) jb=$(job_id cpufreq-memory)
pg_on_exit scancel "$ja" "$jb"
{
  echo "$ja memory_share=0.1,busy_cpus=2,zone=intel-rapl:0"
  echo "$jb memory_share=0.8,busy_cpus=2,zone=intel-rapl:0"
} > "$emulate"
scontrol release "$ja" "$jb"
running() { [ "$(squeue -h -t R -j "$ja,$jb" | wc -l)" = 2 ]; }
check "both jobs run on $n" wait_until 20 running
registered() { grep -q "job $ja.0 task pid" "$log" && grep -q "job $jb.0 task pid" "$log"; }
check "both jobs' steps registered with the agent" wait_until 20 registered

# The CPUs the tasks are bound to, as the agent reads them: the real procfs of the task pids.
task_pid() { grep -o "job $1\.0 task pid [0-9]* registered" "$log" | tail -n1 | awk '{print $5}'; }
bound_cpus() { sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' "/proc/$(task_pid "$1")/status" 2>/dev/null; }
ca=$(bound_cpus "$ja") cb=$(bound_cpus "$jb")
diag "Cpus_allowed_list: compute-bound job $ja: '$ca', memory-bound job $jb: '$cb'"
if [[ $ca =~ ^[0-3]$ ]] && [[ $cb =~ ^[0-3]$ ]] && [ "$ca" != "$cb" ]; then
  ok "task/affinity binds the two tasks to different CPUs of package 0 ($ca and $cb)"
else
  not_ok "task/affinity binds the two tasks to different CPUs of package 0" \
    "compute-bound: '$ca', memory-bound: '$cb' (want two different single CPUs in 0-3)" \
    "$(grep -i 'affinity\|cpu.bind\|cpu_bind' "$log" | tail -n 5)"
  bail_out "the tasks are not bound apart: the per-core limits cannot be checked"
fi

# While both run: B's CPU below A's, A's at the admin's value, no other CPU touched.
others_untouched() {
  local c
  for c in 0 1 2 3 4 5 6 7; do
    [ "$c" = "$ca" ] || [ "$c" = "$cb" ] && continue
    [ "$(freq_of "$c")" = "$(sed -n "s|^./policy$c/scaling_max_freq:||p" "$nodes_dir/$n/freqs.orig")" ] || return 1
  done
}
separated() {
  local fa fb
  fa=$(freq_of "$ca") fb=$(freq_of "$cb")
  [ "$fa" = "$admin_khz" ] && [ "$fb" -le $((admin_khz - 600000)) ]
}
# The agent learns first (8 s when quiet, 12 s seen on a busy machine: test_node_gradient.sh).
if wait_until 60 separated; then
  # 12 samples over 6 s. Tolerance, and why: the agent lowers the memory-bound job's CPU in
  # steps and, when that job's marginal gain measured at the lowered frequency comes level
  # with the other's, gives the admin's value back for a period before lowering it again
  # (seen here about every 3 s: a limit cycle of the per-core split, not a fault of the
  # test). So: lower in at least 9 of 12 samples, and lower by at least 400 MHz on average.
  samples=() held=0 untouched=1 sum_a=0 sum_b=0
  for _ in 1 2 3 4 5 6 7 8 9 10 11 12; do
    fa=$(freq_of "$ca") fb=$(freq_of "$cb")
    samples+=("$((fa / 1000))/$((fb / 1000))")
    [ "$fb" -lt "$fa" ] && held=$((held + 1))
    sum_a=$((sum_a + fa / 1000)) sum_b=$((sum_b + fb / 1000))
    others_untouched || untouched=0
    sleep 0.5
  done
  diag "scaling_max_freq MHz (compute-bound cpu$ca / memory-bound cpu$cb): ${samples[*]}"
  diag "$(grep 'frequency limits' "$log" | tail -n 1)"
  gap=$(((sum_a - sum_b) / 12))
  if [ "$held" -ge 9 ] && [ "$gap" -ge 400 ]; then
    ok "the memory-bound job's CPU runs at a lower scaling_max_freq than the compute-bound job's ($held of 12 samples, $gap MHz lower on average)"
  else
    not_ok "the memory-bound job's CPU runs at a lower scaling_max_freq than the compute-bound job's" \
      "lower in $held of 12 samples, $gap MHz lower on average (want >= 9 and >= 400)"
  fi
  is "$untouched" 1 "no CPU other than the two jobs' has its scaling_max_freq changed"
else
  not_ok "the memory-bound job's CPU runs at a lower scaling_max_freq than the compute-bound job's" \
    "cpu$ca (compute-bound): $(freq_of "$ca") kHz, cpu$cb (memory-bound): $(freq_of "$cb") kHz" \
    "$(grep 'powergrad:' "$log" | grep -v 'task pid' | tail -n 15)"
  skip "no CPU other than the two jobs' has its scaling_max_freq changed" "no limits to compare with"
fi

scancel "$ja" "$jb"
restored() { [ ! -e "$nodes_dir/$n/state/saved-caps" ] && [ "$(settings)" = "$(cat "$nodes_dir/$n/settings.orig")" ]; }
check "after both jobs every cap setting is byte-identical to before" wait_until 15 restored
freqs_back() { [ "$(freqs)" = "$(cat "$nodes_dir/$n/freqs.orig")" ]; }
if wait_until 5 freqs_back; then
  ok "after both jobs every scaling_max_freq is exactly the admin's value again"
else
  not_ok "after both jobs every scaling_max_freq is exactly the admin's value again" \
    "$(diff <(cat "$nodes_dir/$n/freqs.orig") <(freqs) || true)"
fi
