#!/usr/bin/env bash
# End-to-end: the node agent's control period on a real 2-node Slurm cluster whose nodes
# have fake dual-socket Intel powercap trees (powergrad-hwemu make-tree), each with a power
# emulator advancing energy from the caps in force (powergrad-hwemu run), emulated counters
# and a static grant (250 W) below what the two 205 W packages want. Checks: a power-aware
# job on 2 nodes moves the caps in both trees (within the grant) and saves the admin's
# settings first; per-job energy is logged; the caps come back byte for byte and the saved
# file goes when the job ends; a plain job changes nothing; after kill -9 of slurmd during a
# power-aware job, the restarted agent restores the saved caps at start. And a job whose
# environment names another node (SLURM_STEP_NODELIST=n2) or a path (../../somewhere, where
# an ordinary user serves a socket) registers its task with its own node's agent only: n2's
# agent gets no phantom step, n2's caps do not move, the user's socket hears nothing. TAP.
# PG_HW_MACHINE=amd-genoa runs it all on AMD EPYC-shaped trees (sockets capped through HSMP
# hwmon, 205 W limits), mixed on one of each (lib.sh); test_amd_hsmp.sh does both.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

pg_parts
hwemu=$build/hardware/testing/powergrad-hwemu
[ -f "$spank" ] || skip_all "SPANK plugin not built: $spank"
[ -x "$hwemu" ] || skip_all "powergrad-hwemu not built (make check builds it): $hwemu"

pg_cluster_test_setup "node_power_${PG_HW_MACHINE:-intel}"
plan 23

grant_w=250
nodes_dir=$PG_CLUSTER_DIR/nodes
# The admin's settings: every enable and constraint setting file of a node's tree, with a
# checksum of its exact bytes.
# (With HSMP: the sockets' power1_cap too.)
settings() { pg_settings_files "$nodes_dir/$1/sys" | xargs md5sum; }
limit_uw() { cat "$(pg_cap_file "$nodes_dir/$1/sys" "$2")"; }
saved_file() { [ -e "$nodes_dir/$1/state/saved-caps" ]; }
for n in n1 n2; do
  mkdir -p "$nodes_dir/$n"
  pg_make_tree "$hwemu" "$n" "$nodes_dir/$n/sys" ||
    bail_out "powergrad-hwemu make-tree failed for $n"
  settings "$n" > "$nodes_dir/$n/settings.orig"
  "$hwemu" run --root "$nodes_dir/$n/sys" --period-s 0.1 --pid-file "$nodes_dir/$n/hwemu.pid" \
    > "$nodes_dir/$n/hwemu.log" 2>&1 &
  pg_on_exit kill "$!"
done
orig_uw=$(limit_uw n1 0)
# Both jobs' workloads: on package 0, mostly compute-bound; the rest default.
mkdir -p "$nodes_dir"
emulate=$nodes_dir/emulate.txt
echo "* memory_share=0.2,busy_cpus=2,zone=intel-rapl:0" > "$emulate"

export PG_SPANK_PLUGIN=$spank
export PG_SPANK_ARGS="log_level=info period=0.5 state_dir=$nodes_dir/%n/state \
sysfs_root=$nodes_dir/%n/sys counters=emulated emulate=$emulate grant=$grant_w"
if out=$("$PGCLUSTER" up 2 2>&1); then
  ok "cluster with fake dual-socket trees is up"
else
  not_ok "cluster with fake dual-socket trees is up" "$out"
  bail_out "the cluster did not come up"
fi
pg_cluster_env
log_n1=$("$PGCLUSTER" log n1)
log_n2=$("$PGCLUSTER" log n2)
both_logged() { grep -qF -- "$1" "$log_n1" && grep -qF -- "$1" "$log_n2"; }
# Each agent logs its power control once it has its domains (its first period with a job):
# wait for both, not for n1 only (n2's line may come a period later).
ctl_both() {
  grep -q "powergrad: power control on n1 (.*): 2 package domain(s), range 102.5..410.0 W, grant 250.0 W" "$log_n1" &&
    grep -q "powergrad: power control on n2 (.*): 2 package domain(s)" "$log_n2"
}
if wait_until 30 ctl_both; then
  ok "each agent found the 2 package domains of its own tree and the grant"
else
  not_ok "each agent found the 2 package domains of its own tree and the grant" \
    "$(grep -h 'powergrad:' "$log_n1" "$log_n2" | tail -n 20)"
fi
counter_lines="$(grep -c "powergrad: counters=" "$log_n1") $(grep -c "powergrad: counters=" "$log_n2")"
if both_logged "powergrad: counters=emulated" && [ "$counter_lines" = "1 1" ]; then
  ok "each agent logs its counter source once (counters=emulated)"
else
  not_ok "each agent logs its counter source once (counters=emulated)" "lines: $counter_lines" \
    "$(grep -h "powergrad: counters=" "$log_n1" "$log_n2")"
fi

# What each node can do, in the agent's start-up line (rapl on Intel, hsmp-hwmon on AMD).
caps_lines() {
  local n
  for n in n1 n2; do
    grep -q "powergrad: caps: $(pg_caps_word "$n") (2 socket(s), 102.5..410.0 W); counters: emulated; energy: powercap on $n" \
      "$("$PGCLUSTER" log "$n")" || return 1
  done
}
if wait_until 10 caps_lines; then
  ok "each agent says what its node can do ($(grep -ho "caps: [a-z-]*" "$log_n1" | head -n1) on n1, $(grep -ho "caps: [a-z-]*" "$log_n2" | head -n1) on n2)"
else
  not_ok "each agent says what its node can do" "$(grep -h "powergrad: caps:" "$log_n1" "$log_n2")"
fi

# --- a plain job: no cap change, nothing saved
plain_changed=0
srun -N2 -J plain sleep 3 &
plain_pid=$!
for _ in $(seq 1 12); do
  for n in n1 n2; do
    if saved_file "$n" || [ "$(settings "$n")" != "$(cat "$nodes_dir/$n/settings.orig")" ]; then
      plain_changed=1
    fi
  done
  sleep 0.25
done
wait "$plain_pid" || true
is "$plain_changed" "0" "a plain job on both nodes changes no cap and saves nothing"

# --- a power-aware job on 2 nodes
# It runs until the checks of its caps are done (pa.stop; 60 s at most): its agents hold the
# caps only while it runs, and give the admin's settings back after it.
rm -f "$nodes_dir/pa.stop"
# shellcheck disable=SC2016 # expanded by the job's shell
srun --power-aware=throughput -N2 -J pa bash -c 'echo "$SLURM_JOB_ID" > '"$nodes_dir"'/pa.id
for _ in $(seq 1 300); do [ -e '"$nodes_dir"'/pa.stop ] && break; sleep 0.2; done' &
pa_pid=$!
caps_moved() {
  for n in n1 n2; do
    saved_file "$n" && [ "$(limit_uw "$n" 0)" != "$orig_uw" ] && [ "$(limit_uw "$n" 1)" != "$orig_uw" ] || return 1
  done
}
# 60 s: the job may wait for the plain job's nodes to finish completing on a busy machine.
if wait_until 60 caps_moved; then
  ok "the power-aware job moved the caps of both packages on n1 and n2"
else
  not_ok "the power-aware job moved the caps of both packages on n1 and n2" \
    "n1: $(limit_uw n1 0) $(limit_uw n1 1), n2: $(limit_uw n2 0) $(limit_uw n2 1)" \
    "$(grep -h 'powergrad:' "$log_n1" | tail -n 15)"
fi
check "the admin's settings were saved first on both nodes" \
  both_logged "before the first change"
# Both caps at one moment: read twice in a row until both reads agree (stable, lib.sh). One
# read of each file in turn can take the first package's cap from before a move (the agent
# lowers one package, then raises the other) and the second's from after it: a sum that
# never was in force.
caps_of() { echo "$(limit_uw "$1" 0) $(limit_uw "$1" 1)"; }
within_grant=1
for _ in 1 2 3 4 5 6; do
  for n in n1 n2; do
    read -r c0 c1 <<< "$(stable caps_of "$n")"
    sum=$((c0 + c1))
    [ "$sum" -le $((grant_w * 1000000)) ] || { within_grant=0; diag "$n: sum of caps $sum uW"; }
  done
  sleep 0.3
done
is "$within_grant" "1" "the caps in force never sum above the $grant_w W grant on either node"
touch "$nodes_dir/pa.stop"
wait "$pa_pid" && rc=0 || rc=$?
is "$rc" "0" "the power-aware job completed"
pa=$(cat "$nodes_dir/pa.id" 2>/dev/null || echo unknown)
restored() {
  for n in n1 n2; do
    ! saved_file "$n" && [ "$(settings "$n")" = "$(cat "$nodes_dir/$n/settings.orig")" ] || return 1
  done
}
if wait_until 10 restored; then
  ok "after the job every constraint and enable file is byte-identical to before, on both nodes"
else
  not_ok "after the job every constraint and enable file is byte-identical to before, on both nodes" \
    "$(diff <(settings n1) "$nodes_dir/n1/settings.orig" || true)" \
    "$(diff <(settings n2) "$nodes_dir/n2/settings.orig" || true)"
fi
check "the saved-caps file is gone and the restore is logged on both nodes" \
  both_logged "caps restored on"
energy_line() {  # node job: the summary line's energy, when above 0
  local line
  line=$(grep -E "powergrad: job $2\.0 on $1: energy_j=[0-9.]+ avg_w=[0-9.]+ cap_min_w=[0-9.]+ cap_mean_w=[0-9.]+ cap_max_w=[0-9.]+ counters=emulated" \
    "$("$PGCLUSTER" log "$1")" | tail -n1)
  [ -n "$line" ] && awk -v l="$line" 'BEGIN { match(l, /energy_j=[0-9.]+/); e = substr(l, RSTART + 9, RLENGTH - 9); exit !(e > 0) }'
}
if wait_until 5 energy_line n1 "$pa" && energy_line n2 "$pa"; then
  ok "per-job energy and caps are logged for job $pa on both nodes"
else
  not_ok "per-job energy and caps are logged for job $pa on both nodes" \
    "$(grep -h "powergrad: job $pa" "$log_n1" "$log_n2")"
fi
line=$(grep -E "powergrad: job $pa\.0 on n1: energy_j=" "$log_n1" | tail -n1)
diag "${line#*powergrad: }"
cap_min=$(sed -n 's/.*cap_min_w=\([0-9.]*\).*/\1/p' <<<"$line")
if [ -n "$cap_min" ] && awk -v c="$cap_min" 'BEGIN { exit !(c < 205) }'; then
  ok "the job's summary shows a cap below the package maximum ($cap_min W)"
else
  not_ok "the job's summary shows a cap below the package maximum" "$line"
fi

# --- issue 11: the job's environment chooses where root registers its tasks. Run as an
# ordinary user: one job names n2 in SLURM_STEP_NODELIST, one names a path that state_dir's
# %n would turn into /tmp/pg-rogue-PID/state, where the user serves a socket that says "ok".
work=$PG_CLUSTER_DIR/work
mkdir -p "$work" && chmod 1777 "$work"
as_nobody() { runuser -u nobody -- env SLURM_CONF="$SLURM_CONF" "$@"; }
rogue_name=pg-rogue-$$
rogue_dir=$(dirname "$PG_CLUSTER_DIR")/$rogue_name
mkdir -p "$rogue_dir/state" && chown -R nobody "$rogue_dir"
pg_on_exit rm -rf "$rogue_dir"
runuser -u nobody -- python3 -c 'import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET); s.bind(sys.argv[1]); s.listen(16)
while True:
    c, _ = s.accept(); m = c.recv(4096)
    open(sys.argv[2], "ab").write(m + b"\n"); c.send(b"ok"); c.close()' \
  "$rogue_dir/state/agent.sock" "$rogue_dir/heard" > "$rogue_dir/out" 2>&1 &
pg_on_exit kill "$!"
rogue_up() { [ -S "$rogue_dir/state/agent.sock" ]; }
wait_until 10 rogue_up || bail_out "the user's socket did not come up"
n2_orig=$(cat "$nodes_dir/n2/settings.orig")
# The forged name comes in the submitting environment (sbatch's default --export=ALL passes
# it on). Not with --export=ALL,VAR=...: Slurm 24.11 and later then also make slurmd load the
# user's login environment, which fails for nobody and requeues the job.
forged=$(as_nobody env SLURM_STEP_NODELIST=n2 sbatch --parsable -w n1 -N1 \
  --power-aware=throughput -J forged -D "$work" --wrap 'sleep 6')
dotdot=$(as_nobody env "SLURM_STEP_NODELIST=../../$rogue_name" sbatch --parsable -w n1 -N1 \
  --power-aware=throughput -J dotdot -D "$work" --wrap 'sleep 6')
# Sampled while the jobs run: n2's caps and saved file.
n2_moved=0
jobs_running() { [ -n "$(squeue -h -j "$forged,$dotdot" -o %i 2>/dev/null)" ]; }
for _ in $(seq 1 80); do
  if saved_file n2 || [ "$(settings n2)" != "$n2_orig" ]; then n2_moved=1; fi
  jobs_running || break
  sleep 0.25
done
registered_n1() {
  grep -qE "powergrad: job $forged\.batch task pid [0-9]+ registered with the agent \(mode=throughput\)" "$log_n1" &&
    grep -qE "powergrad: job $dotdot\.batch task pid [0-9]+ registered with the agent \(mode=throughput\)" "$log_n1"
}
if wait_until 30 registered_n1; then
  ok "both jobs' tasks registered with n1's agent, where they run (jobs $forged, $dotdot)"
else
  not_ok "both jobs' tasks registered with n1's agent, where they run (jobs $forged, $dotdot)" \
    "$(grep -hE "powergrad: job ($forged|$dotdot)" "$log_n1" "$log_n2")"
fi
is "$n2_moved" "0" "n2's caps never moved and nothing was saved there while the jobs ran"
is "$(grep -cE "powergrad: job ($forged|$dotdot)\." "$log_n2" || true)" "0" \
  "n2's agent and stepd know nothing of the jobs (no phantom step)"
is "$(cat "$rogue_dir/heard" 2>/dev/null)" "" "the user's socket at ../../$rogue_name heard nothing"
lines=$(grep -hE "powergrad: job $forged\.batch on node" "$log_n1" "$log_n2" || true)
if grep -q "job $forged.batch on node n1: power-aware step" <<<"$lines" && ! grep -q "on node n2" <<<"$lines"; then
  ok "slurmstepd names its node n1, from its own environment, not the job's"
else
  not_ok "slurmstepd names its node n1, from its own environment, not the job's" "$lines"
fi
back_n1() { ! saved_file n1 && [ "$(settings n1)" = "$(cat "$nodes_dir/n1/settings.orig")" ]; }
wait_until 30 back_n1 || diag "n1 not back to its settings after the jobs: $(grep -h 'powergrad:' "$log_n1" | tail -n 5)"

# --- kill -9 of slurmd during a power-aware job, then a restart: caps restored at start
# The job's task ends while slurmd is dead (a STOP file), so that no step is left for the
# restarted agent to steer again: what the test sees after the restart is the restore alone
# (on a busy machine a still-running step could register again before the check).
stop_crash=$nodes_dir/crash.stop
rm -f "$stop_crash"
srun --power-aware -N1 -w n1 -J crash bash -c "while [ ! -e $stop_crash ]; do sleep 0.2; done" \
  >/dev/null 2>&1 &
crash_pid=$!
moved_n1() { saved_file n1 && [ "$(limit_uw n1 0)" != "$orig_uw" ]; }
if wait_until 60 moved_n1; then
  ok "a second power-aware job moved the caps on n1"
else
  not_ok "a second power-aware job moved the caps on n1" "$(grep -h 'powergrad:' "$log_n1" | tail -n 10)"
fi
"$PGCLUSTER" kill-slurmd n1 KILL >/dev/null 2>&1 || true
if saved_file n1 && [ "$(settings n1)" != "$(cat "$nodes_dir/n1/settings.orig")" ]; then
  ok "after kill -9 of slurmd the caps stay changed and the saved-caps file stays"
else
  not_ok "after kill -9 of slurmd the caps stay changed and the saved-caps file stays"
fi
touch "$stop_crash"
crash_gone() { ! pg_pid_alive "$crash_pid" && ! pgrep -f "while \[ ! -e $stop_crash" >/dev/null; }
wait_until 60 crash_gone || diag "the crash job's task is still there: $(pgrep -af "$stop_crash" || true)"
check "slurmd n1 starts again" "$PGCLUSTER" start-slurmd n1
recovered() { grep -q "powergrad: caps restored on n1 from $nodes_dir/n1/state/saved-caps left by a previous agent (crash recovery)" "$log_n1"; }
check "the restarted agent logs the crash recovery" wait_until 10 recovered
if ! saved_file n1 && [ "$(settings n1)" = "$(cat "$nodes_dir/n1/settings.orig")" ]; then
  ok "the restarted agent restored every setting byte for byte and removed the file"
else
  not_ok "the restarted agent restored every setting byte for byte and removed the file" \
    "$(diff <(settings n1) "$nodes_dir/n1/settings.orig" || true)"
fi
scancel -n crash >/dev/null 2>&1 || true
wait "$crash_pid" 2>/dev/null || true
