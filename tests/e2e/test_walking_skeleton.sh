#!/usr/bin/env bash
# End-to-end walking skeleton on a real 2-node Slurm cluster with both PowerGrad plugins:
# --power-aware in srun/sbatch (listed in --help, validated, refused with a clear message),
# the choice reaching slurmstepd on every node (its log lines), the node agent in each
# slurmd (steps register with it over its root-only socket; users cannot reach it), and
# slurmctld (the job's AdminComment record), sacct showing the record for power-aware jobs
# only, other text in AdminComment kept, `powergrad report` not fooled by job names with '|',
# newlines or escape sequences, and a bad plugstack.conf argument reported by srun and
# slurmd. TAP.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

pg_parts
[ -f "$spank" ] || skip_all "SPANK plugin not built: $spank"
[ -f "$ctld_dir/prep_powergrad.so" ] ||
  skip_all "controller plugin not built (configure --with-slurm-source=DIR): $ctld_dir"

pg_cluster_test_setup skeleton
plan 31

export PG_SPANK_PLUGIN=$spank PG_CTLD_PLUGIN_DIR=$ctld_dir
export PG_SPANK_ARGS="log_level=info period=0.5 state_dir=$PG_CLUSTER_DIR/nodes/%n/state"
if out=$("$PGCLUSTER" up 2 2>&1); then
  ok "cluster with both plugins is up"
else
  not_ok "cluster with both plugins is up" "$out"
  bail_out "the cluster did not come up"
fi
pg_cluster_env
log_n1=$("$PGCLUSTER" log n1)
log_n2=$("$PGCLUSTER" log n2)
log_ctld=$("$PGCLUSTER" log ctld)
as_nobody() { runuser -u nobody -- env SLURM_CONF="$SLURM_CONF" "$@"; }
# Batch jobs write their output here, not into the caller's cwd (nobody could not write it).
work=$PG_CLUSTER_DIR/work
mkdir -p "$work" && chmod 1777 "$work"

# Lines slurmstepd logged for power-aware steps of job $1 on either node.
job_lines() { grep -hE "powergrad: job $1\.[a-z0-9]+ on node" "$log_n1" "$log_n2" || true; }
# The AdminComment of job $1 as sacct shows it (allocation line only).
admin_comment() { sacct -n -X -j "$1" --format=AdminComment%300 | sed 's/[[:space:]]*$//; s/^[[:space:]]*//'; }
job_state() { sacct -n -X -j "$1" --format=State%20 | tr -d ' '; }
ended() { case "$(job_state "$1")" in COMPLETED|FAILED|CANCELLED*|TIMEOUT) return 0 ;; *) return 1 ;; esac; }

# --- the option, as users see it
help=$(as_nobody srun --help 2>&1)
if grep -q -- '--power-aware=MODE' <<<"$help" && grep -q 'latency (default' <<<"$help"; then
  ok "srun --help lists --power-aware and its modes"
else
  not_ok "srun --help lists --power-aware and its modes" "$help"
fi
help=$(as_nobody sbatch --help 2>&1)
if grep -q -- '--power-aware=MODE' <<<"$help"; then ok "sbatch --help lists --power-aware"; else not_ok "sbatch --help lists --power-aware" "$help"; fi

# --- plugins loaded by the daemons
check "slurmd on n1 and n2 loaded the SPANK plugin" \
  grep -q "powergrad: loaded in slurmd on node n1" "$log_n1"
check "slurmd on n2 names its own node" grep -q "powergrad: loaded in slurmd on node n2" "$log_n2"
check "slurmctld loaded the controller plugin" grep -q "powergrad: controller thread started" "$log_ctld"
agents_started() {
  grep -q "powergrad: node agent started on n1 (state $PG_CLUSTER_DIR/nodes/n1/state" "$log_n1" &&
    grep -q "powergrad: node agent started on n2 (state $PG_CLUSTER_DIR/nodes/n2/state" "$log_n2"
}
check "a node agent runs in each slurmd, with its own state folder (%n)" agents_started
sock=$PG_CLUSTER_DIR/nodes/n1/state/agent.sock
is "$(stat -c '%a %U' "$PG_CLUSTER_DIR/nodes/n1/state" "$sock" 2>&1 | xargs)" "700 root 600 root" \
  "the agent's folder and socket are root-only"
out=$(runuser -u nobody -- python3 -c 'import socket,sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
try:
    s.connect(sys.argv[1]); s.send(b"v=1 op=step_end job=1 step=0"); print("connected")
except OSError as e:
    print(type(e).__name__)' "$sock" 2>&1)
is "$out" "PermissionError" "an ordinary user cannot reach the node agent's socket"

# --- a power-aware job as an ordinary user, and a plain one
# The job id is read from the tasks' output alone: srun's own messages on stderr (on a busy
# machine "job N queued and waiting for resources", or an error after the output) are kept
# apart and shown when the check fails.
pa_err=$work/pa-job.err plain_err=$work/plain-job.err
# shellcheck disable=SC2016 # expanded by the job's shell
pa=$(as_nobody srun --power-aware -N2 -J pa-job bash -c 'sleep 2; [ "$SLURM_NODEID" = 0 ] && echo "$SLURM_JOB_ID"; true' 2>"$pa_err" | tail -n1)
# shellcheck disable=SC2016
plain=$(as_nobody srun -N2 -J plain-job bash -c 'sleep 1; [ "$SLURM_NODEID" = 0 ] && echo "$SLURM_JOB_ID"; true' 2>"$plain_err" | tail -n1)
if [[ "$pa" =~ ^[0-9]+$ ]] && [[ "$plain" =~ ^[0-9]+$ ]]; then
  ok "srun --power-aware and a plain srun ran as nobody (jobs $pa, $plain)"
else
  not_ok "srun --power-aware and a plain srun ran as nobody" "pa: $pa" "plain: $plain" \
    "pa's srun stderr: $(cat "$pa_err" 2>&1)" "plain's srun stderr: $(cat "$plain_err" 2>&1)"
  bail_out "no job ids"
fi
lines=$(job_lines "$pa")
steps_ok=1
for n in n1 n2; do
  grep -q "job $pa.0 on node $n: power-aware step, mode=latency" <<<"$lines" || steps_ok=0
  grep -qE "job $pa.0 on node $n: task [01] pid [0-9]+ registered" <<<"$lines" || steps_ok=0
  grep -qE "job $pa.0 on node $n: task [01] exited \(status 0\), unregistered" <<<"$lines" || steps_ok=0
done
if [ "$steps_ok" = 1 ]; then
  ok "slurmstepd on n1 and n2 saw the power-aware step and its tasks"
else
  not_ok "slurmstepd on n1 and n2 saw the power-aware step and its tasks" "$lines"
fi
# Each node logs only its own tasks.
is "$(grep -c "job $pa.0 on node n2" "$log_n1" || true)" "0" "n1's log has no line claiming node n2"
agent_saw() {  # node job mode
  grep -qE "powergrad: job $2\.0 task pid [0-9]+ registered with the agent \(mode=$3\)" "$("$PGCLUSTER" log "$1")"
}
if agent_saw n1 "$pa" latency && agent_saw n2 "$pa" latency &&
   agent_saw n1 "$plain" off && agent_saw n2 "$plain" off; then
  ok "both node agents registered the power-aware (latency) and the plain (off) job's tasks"
else
  not_ok "both node agents registered the power-aware (latency) and the plain (off) job's tasks" \
    "$(grep -h 'registered with the agent' "$log_n1" "$log_n2")"
fi
is "$(job_lines "$plain")" "" "slurmstepd logged no power-aware step for the plain job"

# --- sbatch: the mode reaches the batch step and every srun inside; srun overrides it
sb=$(as_nobody sbatch --parsable --power-aware=throughput -N2 -J sb-job -D "$work" \
  --wrap 'srun -N2 sleep 1; srun --power-aware=monitor -N1 sleep 1')
wait_until 60 ended "$sb" || true
is "$(job_state "$sb")" "COMPLETED" "sbatch --power-aware=throughput job $sb completed"
lines=$(job_lines "$sb")
if grep -q "job $sb.batch on node n1: power-aware step, mode=throughput" <<<"$lines" &&
   grep -q "job $sb.0 on node n1: power-aware step, mode=throughput" <<<"$lines" &&
   grep -q "job $sb.0 on node n2: power-aware step, mode=throughput" <<<"$lines"; then
  ok "the batch step and the inner srun got mode=throughput on both nodes"
else
  not_ok "the batch step and the inner srun got mode=throughput on both nodes" "$lines"
fi
if grep -q "job $sb.1 on node n1: power-aware step, mode=monitor" <<<"$lines"; then
  ok "srun --power-aware=monitor overrides the sbatch mode for its step"
else
  not_ok "srun --power-aware=monitor overrides the sbatch mode for its step" "$lines"
fi

# --- AdminComment in sacct
has_comment() { [ -n "$(admin_comment "$1")" ]; }
# The record set at a job's end reaches slurmdbd in a second completion message, after the
# one that makes sacct show the job ended (slurm_adapter.c, resend_completion).
comment_is() { [ "$(admin_comment "$1")" = "$2" ]; }
wait_until 30 has_comment "$pa" || true
wait_until 30 comment_is "$sb" "powergrad={v=1 mode=throughput nodes=n[1-2]}" || true
is "$(admin_comment "$pa")" "powergrad={v=1 mode=latency nodes=n[1-2]}" \
  "sacct shows the PowerGrad record of the power-aware job"
is "$(admin_comment "$plain")" "" "sacct shows no PowerGrad record for the plain job"
is "$(admin_comment "$sb")" "powergrad={v=1 mode=throughput nodes=n[1-2]}" \
  "sacct shows mode=throughput for the sbatch job"

# --- powergrad report reads the records back from sacct, for power-aware jobs only
out=$(as_nobody "$pg" report -j "$pa,$plain,$sb" --format csv 2>&1) && rc=0 || rc=$?
want_pa="$pa,pa-job,nobody,COMPLETED,"
if [ "$rc" = 0 ] && grep -q "^job_id,name,user,state,elapsed_s,mode,nodes$" <<<"$out" &&
   grep -qE "^${want_pa}[0-9]+,latency,n\[1-2\]$" <<<"$out" &&
   grep -qE "^$sb,sb-job,nobody,COMPLETED,[0-9]+,throughput,n\[1-2\]$" <<<"$out" &&
   ! grep -q "^$plain," <<<"$out"; then
  ok "powergrad report (CSV) lists the power-aware jobs with their records, not the plain one"
else
  not_ok "powergrad report (CSV) lists the power-aware jobs with their records, not the plain one" "exit $rc" "$out"
fi

# --- issue 11: job names that try to forge rows of powergrad report (as nobody, with sacct)
forge_name='fake|root|COMPLETED|2026-01-01T00:00:00|2026-01-01T00:00:01|1|powergrad={v=1 mode=latency nodes=n1 energy_j=99999999}'
nl_name=$'x\n999|phantom|root|COMPLETED|S|E|1|powergrad={v=1 mode=latency nodes=n2 energy_j=99999999}'
esc_name=$'\e]0;pwned\a\e[2J\e[Hroot'
# Long enough for slurmctld to send its start (with the name) to slurmdbd: a plain job that
# ends at once may reach sacct named "allocation".
f1=$(as_nobody sbatch --parsable -N1 -J "$forge_name" -D "$work" --wrap 'sleep 7')
# Power-aware: its start reaches slurmdbd before its end, so sacct has its name.
f2=$(as_nobody sbatch --parsable -N1 --power-aware=monitor -J "$nl_name" -D "$work" --wrap true)
f3=$(as_nobody sbatch --parsable -N1 --power-aware=monitor -J "$esc_name" -D "$work" --wrap true)
wait_until 60 ended "$f1" || true
wait_until 60 ended "$f2" || true
wait_until 60 ended "$f3" || true
wait_until 30 has_comment "$f2" || true
wait_until 30 has_comment "$f3" || true
out=$(as_nobody "$pg" report -j "$f1,$f2,$f3" --format csv 2>&1) && rc=0 || rc=$?
# Only the real records: no energy_j column (the forged names carry one), no row for the
# plain job or a job 999; the newline stays inside job f2's quoted name.
if [ "$rc" = 0 ] && [ "$(head -n1 <<<"$out")" = "job_id,name,user,state,elapsed_s,mode,nodes" ] &&
   ! grep -qE "^($f1|999)," <<<"$out" && grep -q "^$f2,\"x$" <<<"$out" &&
   grep -qE "^999\|phantom\|root\|.*\",nobody,COMPLETED,[0-9]+,monitor,n[12]$" <<<"$out" &&
   grep -q "^$f3,.*,nobody,COMPLETED,[0-9]*,monitor,n[12]$" <<<"$out"; then
  ok "powergrad report: names with '|' and newlines make no rows (plain $f1, power-aware $f2), the records stay"
else
  not_ok "powergrad report: names with '|' and newlines make no rows (plain $f1, power-aware $f2), the records stay" \
    "exit $rc" "$(cat -v <<<"$out")" "sacct: $(sacct -n -X -j "$f1,$f2,$f3" -P --format=JobID,JobName,User,AdminComment | cat -v)"
fi
out=$(as_nobody "$pg" report -j "$f3" 2>&1) && rc=0 || rc=$?
if [ "$rc" = 0 ] && ! grep -q $'\e' <<<"$out" && ! grep -q $'\a' <<<"$out" &&
   grep -qF '\x1b]0;pwned\x07\x1b[2J\x1b[Hroot' <<<"$out"; then
  ok "powergrad report's table shows escape sequences in a job name as text"
else
  not_ok "powergrad report's table shows escape sequences in a job name as text" "exit $rc" "$(cat -v <<<"$out")"
fi

# --- other text in AdminComment is kept: an admin overwrites it while the job runs
keep=$(sbatch --parsable --power-aware=monitor -N1 -J keep-job -D "$work" --wrap 'sleep 4')
running() { [ "$(job_state "$keep")" = RUNNING ] || squeue -h -j "$keep" -o %T | grep -q RUNNING; }
wait_until 30 running || true
scontrol update jobid="$keep" AdminComment="site: rack 7 maintenance"
wait_until 30 ended "$keep" || true
wait_until 30 comment_is "$keep" "site: rack 7 maintenance; powergrad={v=1 mode=monitor nodes=n1}" || true
is "$(admin_comment "$keep")" "site: rack 7 maintenance; powergrad={v=1 mode=monitor nodes=n1}" \
  "the controller re-adds its record after the admin's text, keeping it"

# --- bad --power-aware values are refused with a clear message
out=$(as_nobody srun --power-aware=fast -N1 true 2>&1) && rc=0 || rc=$?
if [ "$rc" -ne 0 ] && grep -q "invalid --power-aware mode 'fast' (choose one of latency, throughput, monitor, off)" <<<"$out"; then
  ok "srun --power-aware=fast fails naming the value and the choices"
else
  not_ok "srun --power-aware=fast fails naming the value and the choices" "exit $rc" "$out"
fi
out=$(as_nobody sbatch --power-aware=warp9 --wrap true 2>&1) && rc=0 || rc=$?
if [ "$rc" -ne 0 ] && grep -q "invalid --power-aware mode 'warp9'" <<<"$out"; then
  ok "sbatch --power-aware=warp9 is refused"
else
  not_ok "sbatch --power-aware=warp9 is refused" "exit $rc" "$out"
fi

# --- a bad plugstack.conf argument: srun refuses to start; slurmd reports it
bad_dir=$PG_CLUSTER_DIR/bad-plugstack
mkdir -p "$bad_dir"
echo "required $spank log_level=info perido=2" > "$bad_dir/plugstack.conf"
sed "s|^PlugStackConfig=.*|PlugStackConfig=$bad_dir/plugstack.conf|" "$SLURM_CONF" > "$bad_dir/slurm.conf"
grep -q "^PlugStackConfig=$bad_dir/plugstack.conf" "$bad_dir/slurm.conf" ||
  bail_out "slurm.conf has no PlugStackConfig line to replace"
out=$(SLURM_CONF=$bad_dir/slurm.conf srun -N1 true 2>&1) && rc=0 || rc=$?
if [ "$rc" -ne 0 ] && grep -q "powergrad: unknown plugin argument 'perido'" <<<"$out"; then
  ok "srun with an unknown plugin argument fails naming the key"
else
  not_ok "srun with an unknown plugin argument fails naming the key" "exit $rc" "$out"
fi
# slurmd reads the same plugstack.conf at start: give n2 the bad one for one start.
plugstack=$(sed -n 's/^PlugStackConfig=//p' "$SLURM_CONF")
cp "$plugstack" "$bad_dir/plugstack.good"
"$PGCLUSTER" kill-slurmd n2 TERM >/dev/null 2>&1 || true
check "slurmd n2 stopped its node agent on SIGTERM" grep -q "powergrad: node agent on n2 stopped" "$log_n2"
cp "$bad_dir/plugstack.conf" "$plugstack"
"$PGCLUSTER" start-slurmd n2 >/dev/null 2>&1 || true
reported() { grep -q "powergrad: unknown plugin argument 'perido'" "$log_n2"; }
if wait_until 20 reported; then
  ok "slurmd n2 reports the unknown plugin argument in its log"
else
  not_ok "slurmd n2 reports the unknown plugin argument in its log" "$(tail -n 20 "$log_n2")"
fi
"$PGCLUSTER" kill-slurmd n2 KILL >/dev/null 2>&1 || true
cp "$bad_dir/plugstack.good" "$plugstack"
check "slurmd n2 starts again with the good arguments" "$PGCLUSTER" start-slurmd n2

# --- the cluster still works after all of it
out=$(srun --power-aware -N2 true 2>&1) && rc=0 || rc=$?
is "$rc" "0" "a power-aware job runs on both nodes afterwards${out:+: $out}"
