#!/usr/bin/env bash
# End-to-end: the controller plugin in slurmctld with a powergrad.conf next to slurm.conf,
# and the admin command talking to it over the protocol's munge-authenticated admin
# session: `powergrad status` (table and JSON) for root and for an ordinary user (with
# slurm.conf's PrivateData=jobs, the user sees the ids of their own jobs only; node agents
# with fake trees report the jobs),
# `powergrad set-budget` by root changing the budget status shows (and still in force after
# a slurmctld restart), by an ordinary user refused, below the nodes' floors refused; a bad powergrad.conf line logged with file,
# line and reason while slurmctld stays up and keeps scheduling. TAP.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

build=${PG_BUILDDIR:-$PG_TOP/build}
ctld_dir=$build/slurmctld_powergrad/.libs
pg=$build/tools/powergrad
spank=$build/spank_powergrad/.libs/spank_powergrad.so
hwemu=$build/hardware/testing/powergrad-hwemu
[ -f "$spank" ] || skip_all "SPANK plugin not built: $spank"
[ -x "$hwemu" ] || skip_all "powergrad-hwemu not built (make check builds it): $hwemu"
[ -f "$ctld_dir/prep_powergrad.so" ] ||
  skip_all "controller plugin not built (configure --with-slurm-source=DIR): $ctld_dir"
[ -x "$pg" ] || skip_all "powergrad command not built: $pg"
command -v python3 >/dev/null 2>&1 || skip_all "python3 is needed to check the JSON output"

pg_cluster_test_setup ctladmin
plan 29

good_conf='# the test cluster: two nodes in one rack
Budget=600
ControlPeriod=1
LeaseTime=5
NodeFloor=50
NodeMax=300
AdminUsers=root
Group=rack1 Nodes=n[1-2] Limit=500'
export PG_CTLD_PLUGIN_DIR=$ctld_dir PG_POWERGRAD_CONF=$good_conf
# Node agents on fake trees report their jobs; jobs are private to their users.
nodes_dir=$PG_CLUSTER_DIR/nodes
for n in n1 n2; do
  mkdir -p "$nodes_dir/$n"
  "$hwemu" make-tree --root "$nodes_dir/$n/sys" --machine intel-server ||
    bail_out "powergrad-hwemu make-tree failed for $n"
done
export PG_SPANK_PLUGIN=$spank PG_SLURM_CONF_EXTRA="PrivateData=jobs"
export PG_SPANK_ARGS="log_level=info period=0.5 state_dir=$nodes_dir/%n/state \
sysfs_root=$nodes_dir/%n/sys controller=127.0.0.1:$((PG_PORT_BASE + 3))"
if out=$("$PGCLUSTER" up 2 2>&1); then
  ok "cluster with the controller plugin and a powergrad.conf is up"
else
  not_ok "cluster with the controller plugin and a powergrad.conf is up" "$out"
  bail_out "the cluster did not come up"
fi
pg_cluster_env
export POWERGRAD_MUNGE_SOCKET=$PG_MUNGE_SOCKET
conf=$(dirname "$SLURM_CONF")/powergrad.conf
log_ctld=$("$PGCLUSTER" log ctld)
port=$PG_POWERGRAD_PORT
as_nobody() {
  runuser -u nobody -- env SLURM_CONF="$SLURM_CONF" POWERGRAD_MUNGE_SOCKET="$PG_MUNGE_SOCKET" "$@"
}
# The budget as `powergrad status --json` shows it (as root).
budget() { "$pg" status --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["budget_w"])'; }
ctld_logged() { grep -qF -- "$1" "$log_ctld"; }

# --- the plugin reads powergrad.conf next to slurm.conf and listens
running_line="powergrad: controller running with $conf: budget 600 W, 2 managed nodes, 1 groups, listening on 127.0.0.1:$port"
if wait_until 20 ctld_logged "$running_line"; then
  ok "slurmctld's log: controller running with powergrad.conf, budget, nodes, groups, address"
else
  not_ok "slurmctld's log: controller running with powergrad.conf, budget, nodes, groups, address" \
    "want: $running_line" "$(grep powergrad "$log_ctld" | tail -n 10)"
fi
is "$(grep -c 'powergrad: configuration refused' "$log_ctld" || true)" "0" "no configuration error logged"

# --- status, as root (table) and as nobody (table and JSON)
out=$("$pg" status 2>&1) && rc=0 || rc=$?
if [ "$rc" = 0 ] && grep -q '^budget: 600.0 W' <<<"$out" &&
   grep -qE '^rack1 +- +500.0 ' <<<"$out" &&
   grep -qE '^NODE +GROUP +STATE +WORK +GRANT_W +FAIR_W +POWER_W +CAPS_W +GRADIENT +SPLIT +JOBS +LEASE_AGE_S$' <<<"$out" &&
   grep -qE '^n1 +rack1 ' <<<"$out" && grep -qE '^n2 +rack1 ' <<<"$out"; then
  ok "powergrad status (root): budget, the group and both nodes"
else
  not_ok "powergrad status (root): budget, the group and both nodes" "exit $rc" "$out"
fi
out=$(as_nobody "$pg" status 2>&1) && rc=0 || rc=$?
if [ "$rc" = 0 ] && grep -q '^budget: 600.0 W' <<<"$out" && grep -qE '^n2 +rack1 ' <<<"$out"; then
  ok "powergrad status works for an ordinary user (nobody)"
else
  not_ok "powergrad status works for an ordinary user (nobody)" "exit $rc" "$out"
fi
out=$(as_nobody "$pg" status --json 2>&1) && rc=0 || rc=$?
js=$(python3 -c 'import json,sys
s = json.loads(sys.argv[1])
print(s["budget_w"], len(s["nodes"]), s["nodes"][0]["name"], s["nodes"][0]["group"], s["groups"][0]["limit_w"],
      all(k in s["nodes"][1] for k in ("grant_w", "power_w", "gradient", "jobs", "lease_age_s")))' "$out" 2>&1) || true
is "$rc $js" "0 600 2 n1 rack1 500 True" "powergrad status --json (nobody): budget, nodes with grant/power/gradient/jobs/lease age, group limit"
check "slurmctld logged nobody's read-only admin session" \
  ctld_logged "powergrad: admin session opened: $(hostname) uid 65534"

# --- PrivateData=jobs: a user sees the ids of their own jobs only; root sees all
work=$PG_CLUSTER_DIR/work
mkdir -p "$work" && chmod 1777 "$work"
mine=$(as_nobody sbatch --parsable -N1 -w n1 -J nobodys -D "$work" --wrap 'sleep 120')
theirs=$(sbatch --parsable -N1 -w n2 -J roots -D "$work" --wrap 'sleep 120')
pg_on_exit scancel "$mine" "$theirs"
# The job ids status lists, over all nodes, sorted: as root, or as nobody with "nobody".
status_jobs() {
  local js
  if [ "${1:-}" = nobody ]; then js=$(as_nobody "$pg" status --json 2>/dev/null); else js=$("$pg" status --json 2>/dev/null); fi
  python3 -c 'import json,sys
s = json.loads(sys.argv[1])
print(s.get("jobs_shown"), ",".join(str(j) for j in sorted(j for n in s["nodes"] for j in n["jobs"])))' "$js"
}
both_listed() { [ "$(status_jobs)" = "all $(printf '%s\n' "$mine" "$theirs" | sort -n | paste -sd,)" ]; }
if wait_until 30 both_listed; then
  ok "root's status lists both running jobs ($mine of nobody's, $theirs of root's)"
else
  not_ok "root's status lists both running jobs ($mine of nobody's, $theirs of root's)" "$(status_jobs)" "$(squeue 2>&1)"
fi
is "$(status_jobs nobody)" "own $mine" "nobody's status --json lists nobody's job only (PrivateData=jobs)"
out=$(as_nobody "$pg" status 2>&1) && rc=0 || rc=$?
# The nodes' table only (the capability table below it lists the nodes again).
jobs_col=$(awk '/^NODE +GROUP/ { on = 1; next } on && NF == 0 { on = 0 }
  on && $1 ~ /^n[12]$/ { printf "%s=%s ", $1, $11 }' <<<"$out")
if [ "$rc" = 0 ] && [ "$jobs_col" = "n1=$mine n2=- " ] &&
   grep -q "JOBS lists your own jobs only (slurm.conf has PrivateData=jobs)" <<<"$out"; then
  ok "nobody's status table shows nobody's job and not root's, and says why"
else
  not_ok "nobody's status table shows nobody's job and not root's, and says why" "exit $rc" "$out"
fi
scancel "$mine" "$theirs" 2>/dev/null || true

# --- set-budget: root may, nobody may not, below the floors is refused
out=$("$pg" set-budget 450 2>&1) && rc=0 || rc=$?
is "$rc $out" "0 powergrad: budget set to 450.0 W (was 600.0 W)" "powergrad set-budget 450 by root succeeds"
is "$(budget)" "450" "status shows the new budget"
check "slurmctld logged the change and who made it" ctld_logged "powergrad: budget set to 450.0 W (was 600.0 W) by uid 0"
out=$(as_nobody "$pg" set-budget 100 2>&1) && rc=0 || rc=$?
if [ "$rc" = 1 ] && grep -q "powergrad: set-budget refused (permission denied)" <<<"$out"; then
  ok "powergrad set-budget by nobody is refused with a clear message"
else
  not_ok "powergrad set-budget by nobody is refused with a clear message" "exit $rc" "$out"
fi
is "$(budget)" "450" "the budget is unchanged after nobody's attempt"
wait_until 5 ctld_logged "powergrad: set-budget refused: uid 65534" || true
check "slurmctld logged the refused attempt with the uid" ctld_logged "powergrad: set-budget refused: uid 65534"
out=$("$pg" set-budget 60 2>&1) && rc=0 || rc=$?
if [ "$rc" = 1 ] && grep -q "powergrad: set-budget refused (invalid): budget 60.0 W refused: " <<<"$out"; then
  ok "a budget below the nodes' floors (2 x 50 W) is refused, naming the reason"
else
  not_ok "a budget below the nodes' floors (2 x 50 W) is refused, naming the reason" "exit $rc" "$out"
fi
out=$("$pg" set-budget lots 2>&1) && rc=0 || rc=$?
is "$rc $out" "2 powergrad: set-budget: 'lots' is not a number of watts" "a non-number is refused before connecting"

# --- the run-time budget survives a slurmctld restart while powergrad.conf's Budget is unchanged
"$PGCLUSTER" restart-slurmctld >/dev/null 2>&1 || diag "restart-slurmctld failed"
budget_is() { [ "$(budget)" = "$1" ]; }
restored="still applies; powergrad.conf says 600 W"
if wait_until 20 ctld_logged "$restored" && wait_until 20 budget_is 450 &&
   ctld_logged "powergrad: budget 450 W set at run time by uid 0 at "; then
  ok "after a slurmctld restart status shows the run-time budget 450 W, and the log says why"
else
  not_ok "after a slurmctld restart status shows the run-time budget 450 W, and the log says why" \
    "budget: $(budget)" "$(grep powergrad "$log_ctld" | tail -n 5)"
fi

# --- the address: --controller, and a clear error when nothing listens there
out=$(SLURM_CONF=/nonexistent/slurm.conf "$pg" status --json --controller "127.0.0.1:$port" 2>&1) && rc=0 || rc=$?
is "$rc $(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["budget_w"])' "$out" 2>&1)" "0 450" \
  "--controller HOST:PORT reaches the controller without powergrad.conf"
out=$("$pg" status --controller "127.0.0.1:$((PG_PORT_BASE + 4))" --timeout 5 2>&1) && rc=0 || rc=$?
if [ "$rc" = 1 ] && grep -q "powergrad: status: cannot reach the controller at 127.0.0.1:$((PG_PORT_BASE + 4))" <<<"$out"; then
  ok "no controller at the address: a clear error"
else
  not_ok "no controller at the address: a clear error" "exit $rc" "$out"
fi

# --- a bad line at a restart: refused with file, line and reason; the last configuration
# in force (saved at the last good start) stays in force
cp "$conf" "$conf.good"
printf '%s\n' "$good_conf" "Budgit=5" "Listen=127.0.0.1:$port" > "$conf"
state_save=$(scontrol show config | sed -n 's/^StateSaveLocation *= *//p')
last_good=$state_save/powergrad/powergrad.conf.last-good
if [ -f "$last_good" ] && [ "$(cat "$last_good")" = "$(cat "$conf.good")" ]; then
  ok "the configuration in force is kept for restarts ($last_good)"
else
  not_ok "the configuration in force is kept for restarts" "$(ls -la "$state_save/powergrad" 2>&1)"
fi
"$PGCLUSTER" restart-slurmctld >/dev/null 2>&1 || diag "restart-slurmctld failed"
kept_line="powergrad: configuration refused: $conf:9: unknown key 'budgit'; the last configuration in force stays (saved in $last_good)"
if wait_until 20 ctld_logged "$kept_line"; then
  ok "a bad file at a restart: the log names file, line and problem, and the last good one stays"
else
  not_ok "a bad file at a restart: the log names file, line and problem, and the last good one stays" \
    "want: $kept_line" "$(grep powergrad "$log_ctld" | tail -n 5)"
fi
refused_shown() {
  "$pg" status --json --controller "127.0.0.1:$port" 2>/dev/null | python3 -c '
import json, sys
s = json.load(sys.stdin)
sys.exit(0 if s["budget_w"] == 450 and (s["config_refused"] or "").startswith(sys.argv[1]) else 1)' "$conf:9: "
}
if wait_until 20 refused_shown; then
  ok "status: power control on with the run-time budget, config_refused names the bad line"
else
  not_ok "status: power control on with the run-time budget, config_refused names the bad line" \
    "$("$pg" status --json --controller "127.0.0.1:$port" 2>&1 | head -c 600)"
fi
# Without a saved configuration, a bad file leaves power control off.
rm -f "$last_good"
"$PGCLUSTER" restart-slurmctld >/dev/null 2>&1 && rc=0 || rc=$?
is "$rc" "0" "slurmctld restarts with a bad powergrad.conf"
bad_line="powergrad: configuration refused: $conf:9: unknown key 'budgit'; power control is off"
if wait_until 20 ctld_logged "$bad_line"; then
  ok "slurmctld's log names the file, the line and the problem"
else
  not_ok "slurmctld's log names the file, the line and the problem" "want: $bad_line" \
    "$(grep powergrad "$log_ctld" | tail -n 5)"
fi
out=$(timeout 60 srun -N2 true 2>&1) && rc=0 || rc=$?
if [ "$rc" = 0 ] && scontrol ping | grep -q UP; then
  ok "slurmctld stays up and runs jobs with the controller inert"
else
  not_ok "slurmctld stays up and runs jobs with the controller inert" "srun exit $rc: $out" "$(scontrol ping 2>&1)"
fi
out=$("$pg" status --controller "127.0.0.1:$port" --timeout 5 2>&1) && rc=0 || rc=$?
if [ "$rc" = 1 ] && grep -q "cannot reach the controller at 127.0.0.1:$port" <<<"$out"; then
  ok "the inert controller does not listen; status says it cannot reach it"
else
  not_ok "the inert controller does not listen; status says it cannot reach it" "exit $rc" "$out"
fi
out=$("$pg" status 2>&1) && rc=0 || rc=$?
is "$rc $out" "1 powergrad: cannot find the controller's address: $conf:9: unknown key 'budgit' (give --controller HOST:PORT)" \
  "powergrad status names the bad powergrad.conf line too"
