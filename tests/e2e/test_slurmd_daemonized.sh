#!/usr/bin/env bash
# End-to-end: slurmd started without -D, as init scripts and some unit files start it. Up to
# Slurm 24.05 slurmd loads its plugins and then forks into the background (twice): the node
# agent must run in the process that serves, not in the one that exits. One node with a fake
# dual-socket Intel tree, its power emulator, a static grant below what the packages want and
# no controller. Checks: slurmd daemonized; the agent runs in the daemon (its log line names
# the daemon's pid and it answers on its step socket); a power-aware job's task registers at
# once (no "unreachable" in slurmstepd's log) and the agent caps the packages within the
# grant; the admin's settings come back byte for byte after the job; SIGTERM stops the
# daemon and its agent cleanly; started again, the agent comes back. TAP.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

build=${PG_BUILDDIR:-$PG_TOP/build}
spank=$build/spank_powergrad/.libs/spank_powergrad.so
hwemu=$build/hardware/testing/powergrad-hwemu
[ -f "$spank" ] || skip_all "SPANK plugin not built: $spank"
[ -x "$hwemu" ] || skip_all "powergrad-hwemu not built (make check builds it): $hwemu"

pg_cluster_test_setup slurmd_daemonized
plan 10

grant_w=250
nodes_dir=$PG_CLUSTER_DIR/nodes
n=n1
settings() {
  (cd "$nodes_dir/$n/sys/devices/virtual/powercap" &&
    find . \( -name enabled -o -name 'constraint_*_power_limit_uw' -o \
      -name 'constraint_*_time_window_us' \) -type f | sort | xargs md5sum)
}
limit_uw() { cat "$nodes_dir/$n/sys/class/powercap/intel-rapl:$1/constraint_0_power_limit_uw"; }
mkdir -p "$nodes_dir/$n"
"$hwemu" make-tree --root "$nodes_dir/$n/sys" --machine intel-server ||
  bail_out "powergrad-hwemu make-tree failed"
settings > "$nodes_dir/$n/settings.orig"
"$hwemu" run --root "$nodes_dir/$n/sys" --period-s 0.1 --pid-file "$nodes_dir/$n/hwemu.pid" \
  > "$nodes_dir/$n/hwemu.log" 2>&1 &
pg_on_exit kill "$!"
emulate=$nodes_dir/emulate.txt
echo "* memory_share=0.1,busy_cpus=4" > "$emulate"

export PG_SLURMD_DAEMONIZE=1
export PG_SPANK_PLUGIN=$spank
export PG_SPANK_ARGS="log_level=debug period=0.5 state_dir=$nodes_dir/%n/state \
sysfs_root=$nodes_dir/%n/sys counters=emulated emulate=$emulate grant=$grant_w controller=none"
if out=$("$PGCLUSTER" up 1 2>&1); then
  ok "one-node cluster is up with slurmd started without -D"
else
  not_ok "one-node cluster is up with slurmd started without -D" "$out"
  bail_out "the cluster did not come up"
fi
pg_cluster_env
log=$("$PGCLUSTER" log $n)
daemon_pid=$(cat "$PG_CLUSTER_DIR/run/slurmd.$n.pid")

# The daemon is not the process the harness started: that one exited after forking.
cmdline=$(tr '\0' ' ' < "/proc/$daemon_pid/cmdline" 2>/dev/null || true)
case $cmdline in
  *" -D "*) not_ok "slurmd runs as a daemon (no -D)" "$cmdline" ;;
  *slurmd*) ok "slurmd runs as a daemon (no -D), pid $daemon_pid" ;;
  *) not_ok "slurmd runs as a daemon (no -D)" "no slurmd at pid $daemon_pid: '$cmdline'" ;;
esac

started_line() { grep -E "powergrad: slurmd daemonized \(pid [0-9]+\): starting the node agent on $n" "$log" | tail -n1; }
agent_runs() { grep -q "powergrad: node agent started on $n" "$log" && [ -n "$(started_line)" ]; }
if wait_until 20 agent_runs; then
  is "$(sed -n 's/.*daemonized (pid \([0-9]*\)).*/\1/p' <<<"$(started_line)")" "$daemon_pid" \
    "the node agent started in the daemon (the pid its log names is the daemon's)"
else
  not_ok "the node agent started in the daemon" "$(grep 'powergrad:' "$log" | tail -n 10)"
fi
socket=$nodes_dir/$n/state/agent.sock
answers() {
  python3 - "$socket" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.settimeout(2)
s.connect(sys.argv[1])
PY
}
check "the agent's step socket answers (someone accepts on it in the daemon)" answers

job=$(sbatch --parsable --power-aware=throughput -w $n -n1 -o /dev/null \
  --wrap "srun --power-aware=throughput sleep 30") || bail_out "sbatch failed"
pg_on_exit scancel "$job"
registered() { grep -q "powergrad: job $job.0 task pid [0-9]* registered with the agent" "$log"; }
check "the power-aware step's task registered with the agent" wait_until 30 registered
capped() { [ $(( $(limit_uw 0) + $(limit_uw 1) )) -le $((grant_w * 1000000)) ]; }
check "the agent caps the packages within the $grant_w W grant" wait_until 20 capped
stepd_log_says_unreachable() { grep -q "node agent unreachable" "$log"; }
if stepd_log_says_unreachable; then
  not_ok "no step ran unsteered for want of an agent" "$(grep 'unreachable' "$log" | head -n 3)"
else
  ok "no step ran unsteered for want of an agent"
fi
scancel "$job"
restored() { [ ! -e "$nodes_dir/$n/state/saved-caps" ] && [ "$(settings)" = "$(cat "$nodes_dir/$n/settings.orig")" ]; }
check "after the job every setting is byte-identical to before" wait_until 20 restored

# SIGTERM: the daemon stops its agent (joins the thread it runs) and exits.
"$PGCLUSTER" kill-slurmd $n TERM >/dev/null 2>&1 || true
gone() { ! kill -0 "$daemon_pid" 2>/dev/null; }
stopped() { gone && grep -q "powergrad: node agent on $n stopped" "$log"; }
check "SIGTERM stops the daemon and its agent cleanly" wait_until 20 stopped

"$PGCLUSTER" start-slurmd $n >/dev/null 2>&1 || bail_out "slurmd did not start again"
again() { [ "$(grep -cE "powergrad: slurmd daemonized \(pid [0-9]+\): starting the node agent on $n" "$log")" -ge 2 ]; }
check "started again without -D, the agent starts in the new daemon" wait_until 20 again
