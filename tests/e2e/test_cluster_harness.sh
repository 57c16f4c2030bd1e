#!/usr/bin/env bash
# End-to-end test of the local cluster harness tests/cluster/pgcluster, on a real 2-node
# Slurm cluster in its own folder and port range: up, client environment, node identity,
# jobs as root and as nobody, accounting through slurmdbd + MariaDB, refusal of a second
# up, kill-slurmd/start-slurmd, restart-slurmctld, down with a job still running (nothing
# of the folder may survive), idempotent down, and the failure path of up (a slurm.conf
# that makes slurmctld fail: reported with its log, nothing left running). TAP output.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

pg_cluster_test_setup harness
plan 22

pgc=$PGCLUSTER
dir=$PG_CLUSTER_DIR
diag "cluster folder $dir, port base $PG_PORT_BASE"
key_sum() { sha256sum /etc/munge/munge.key 2>/dev/null | cut -d' ' -f1; }
key_before=$(key_sum)

# 1: up
t0=${EPOCHREALTIME/./}
if out=$("$pgc" up 2 2>&1); then
  ok "pgcluster up 2 ($(( (${EPOCHREALTIME/./} - t0) / 1000 )) ms)"
else
  not_ok "pgcluster up 2" "$out"
  bail_out "the cluster did not come up"
fi

# 2: env
pg_cluster_env
is "${SLURM_CONF:-}" "$dir/etc/slurm.conf" "env exports SLURM_CONF of the cluster folder"

# 3: nodes idle (up waits for them after its sanity job)
is "$(sinfo -h -N -o '%N %T' | sort | xargs)" "n1 idle n2 idle" "both nodes are idle"

# 4: node identity in each slurmd's environment
ident_ok() {
  local n pid envs
  for n in n1 n2; do
    pid=$(cat "$dir/run/slurmd.$n.pid") || return 1
    envs=$(tr '\0' '\n' < "/proc/$pid/environ") || return 1
    grep -Fxq "POWERGRAD_NODENAME=$n" <<<"$envs" || { echo "$n: no POWERGRAD_NODENAME"; return 1; }
    grep -Fxq "POWERGRAD_NODE_DIR=$dir/nodes/$n" <<<"$envs" || { echo "$n: no POWERGRAD_NODE_DIR"; return 1; }
    [ -d "$dir/nodes/$n" ] || { echo "no folder $dir/nodes/$n"; return 1; }
    tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q -- "-N $n" || { echo "$n: no -N $n"; return 1; }
  done
}
check "each slurmd runs with -N nX, POWERGRAD_NODENAME and POWERGRAD_NODE_DIR" ident_ok

# The tasks' output is compared alone: srun's own messages on stderr (on a
# busy machine "job N queued and waiting for resources" while the last job's
# nodes are still completing) are kept apart and shown when a check fails.
srun_err=$(mktemp)
pg_on_exit rm -f "$srun_err"

# 5-6: srun as root
out=$(srun -N2 hostname 2>"$srun_err") || true
is "$(wc -l <<<"$out" | xargs)" 2 "srun -N2 hostname as root prints two lines" \
  "srun's stderr: $(cat "$srun_err")"
is "$(srun -N2 printenv SLURMD_NODENAME 2>"$srun_err" | sort | xargs)" "n1 n2" "srun -N2 runs one task on n1 and one on n2" \
  "srun's stderr: $(cat "$srun_err")"

# 7: srun as nobody
h=$(hostname)
# shellcheck disable=SC2016 # expanded by the job's shell
out=$(cd /tmp && runuser -u nobody -- env SLURM_CONF="$SLURM_CONF" srun -N2 sh -c 'echo "$(id -un)@$(hostname)"' 2>"$srun_err") || true
is "$(xargs <<<"$out")" "nobody@$h nobody@$h" "srun -N2 hostname as nobody" \
  "srun's stderr: $(cat "$srun_err")"

# 8: accounting
name=pgh-acct-$$
srun -N2 -J "$name" true >/dev/null 2>&1 || true
acct_done() { [ "$(sacct -n -X -P -a --name="$name" -o State 2>/dev/null | head -n1)" = COMPLETED ]; }
if wait_until 20 acct_done; then
  ok "a finished job shows COMPLETED in sacct (slurmdbd + MariaDB)"
else
  not_ok "a finished job shows COMPLETED in sacct (slurmdbd + MariaDB)" "$(sacct -a -X 2>&1)"
fi

# 9: a second up is refused
rc=0; out=$("$pgc" up 2 2>&1) || rc=$?
if [ "$rc" -ne 0 ] && grep -q 'already running' <<<"$out"; then
  ok "up refuses while the cluster runs"
else
  not_ok "up refuses while the cluster runs" "exit $rc" "$out"
fi

# 10-11: kill-slurmd / start-slurmd
pid2=$(cat "$dir/run/slurmd.n2.pid")
rc=0; out=$("$pgc" kill-slurmd n2 2>&1) || rc=$?
if [ "$rc" -eq 0 ] && ! pg_pid_alive "$pid2"; then
  ok "kill-slurmd n2 kills that slurmd"
else
  not_ok "kill-slurmd n2 kills that slurmd" "exit $rc" "$out"
fi
rc=0; out=$("$pgc" start-slurmd n2 2>&1 && "$pgc" wait-idle 30 2>&1 &&
            srun -N2 printenv SLURMD_NODENAME 2>"$srun_err" | sort | xargs) || rc=$?
if [ "$rc" -eq 0 ] && [ "$(tail -n1 <<<"$out")" = "n1 n2" ]; then
  ok "start-slurmd n2: the node takes jobs again"
else
  not_ok "start-slurmd n2: the node takes jobs again" "exit $rc" "$out" "srun's stderr: $(cat "$srun_err")"
fi

# 12: restart-slurmctld
rc=0; out=$("$pgc" restart-slurmctld 2>&1 && srun -N2 true 2>&1) || rc=$?
if [ "$rc" -eq 0 ]; then ok "restart-slurmctld, then srun -N2 works"; else not_ok "restart-slurmctld, then srun -N2 works" "$out"; fi

# 13: status
rc=0; out=$("$pgc" status 2>&1) || rc=$?
if [ "$rc" -eq 0 ] && [ "$(grep -c ' running ' <<<"$out")" -eq 6 ]; then
  ok "status: all 6 daemons running"
else
  not_ok "status: all 6 daemons running" "exit $rc" "$out"
fi

# 14: down with a job still running (the srun client is a child of this test)
task=pghtask$$
srun -N2 bash -c "exec -a $task sleep 300" >/dev/null 2>&1 &
srun_pid=$!
job_running() { [ "$(pgrep -fc "^$task" || true)" -ge 2 ]; }
wait_until 20 job_running || diag "the long job did not start on both nodes"
rc=0; out=$("$pgc" down 2>&1) || rc=$?
if [ "$rc" -eq 0 ]; then ok "down succeeds with a job running"; else not_ok "down succeeds with a job running" "$out"; fi
wait "$srun_pid" 2>/dev/null || true

# 15: nothing left
left=$(pg_cluster_procs)
tasks=$({ pgrep -f "^$task" || true; } | while read -r p; do if pg_pid_alive "$p"; then echo "$p"; fi; done | xargs)
if [ -z "$left" ] && [ -z "$tasks" ] && ! pg_pid_alive "$srun_pid"; then
  ok "after down no process of the folder runs (daemons, job tasks, srun)"
else
  not_ok "after down no process of the folder runs (daemons, job tasks, srun)" \
    "left: $left tasks: $tasks" "$(ps -o pid,stat,args -p "$(echo "$left $tasks" | xargs | tr ' ' ,)" 2>&1 || true)"
fi

# 16: down again
rc=0; out=$("$pgc" down 2>&1) || rc=$?
if [ "$rc" -eq 0 ]; then ok "down is idempotent"; else not_ok "down is idempotent" "$out"; fi

# 17-18: failure path: slurmctld cannot load its select plugin
rc=0
out=$(PG_SLURM_CONF_EXTRA='SelectType=select/pgbogus' "$pgc" up 2 2>&1) || rc=$?
if [ "$rc" -ne 0 ] && grep -q 'slurmctld.log' <<<"$out" && grep -q 'select/pgbogus' <<<"$out"; then
  ok "up with a bad slurm.conf line fails and shows the slurmctld log"
else
  not_ok "up with a bad slurm.conf line fails and shows the slurmctld log" "exit $rc" "$out"
fi
left=$(pg_cluster_procs)
if [ -z "$left" ]; then ok "the failed up left nothing running"; else not_ok "the failed up left nothing running" "$left"; fi

# 19: a missing prerequisite is named, exit 2
rc=0; out=$(PG_SPANK_PLUGIN=/nonexistent/spank.so "$pgc" up 2 2>&1) || rc=$?
if [ "$rc" -eq 2 ] && grep -q '/nonexistent/spank.so' <<<"$out"; then
  ok "a missing PG_SPANK_PLUGIN is reported (exit 2)"
else
  not_ok "a missing PG_SPANK_PLUGIN is reported (exit 2)" "exit $rc" "$out"
fi

# 20: the system munge key was not touched
is "$(key_sum)" "$key_before" "the system munge key is unchanged"

# 21-22: a suite that cannot run is a skip for a developer, a failure where every suite must
# run (CI, scripts/run-tests.sh: PG_E2E_REQUIRED=1).
probe=$dir/skip-probe.sh
printf '. %q\nskip_all "nothing to test with"\n' "$PG_TOP/tests/e2e/lib.sh" > "$probe"
rc=0; out=$(env -u CI PG_E2E_REQUIRED=0 bash "$probe" 2>&1) || rc=$?
if [ "$rc" -eq 0 ] && [ "$out" = "1..0 # SKIP nothing to test with" ]; then
  ok "skip_all skips (exit 0) for a developer"
else
  not_ok "skip_all skips (exit 0) for a developer" "exit $rc" "$out"
fi
rc=0; out=$(CI=true bash "$probe" 2>&1) || rc=$?
if [ "$rc" -ne 0 ] && grep -q '^Bail out! .*must run here but cannot: nothing to test with' <<<"$out"; then
  ok "skip_all fails (Bail out, exit $rc) under CI"
else
  not_ok "skip_all fails under CI" "exit $rc" "$out"
fi
