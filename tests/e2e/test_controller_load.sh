#!/usr/bin/env bash
# End-to-end: many node agents at once against the live controller in slurmctld, through
# tests/tools/pg-loadgen (real munge handshakes, a report per second each with a job and its
# demand curve, grants obeyed as a node agent obeys them; see its top comment). 300 agents
# (nodes lg[001-300], State=FUTURE in slurm.conf, one group), budget 300 x 250 W, floor 80,
# maximum 400. Small enough for CI; bench/load_test.sh runs 1,000 to 10,000 and measures.
#   - steady: every session opens and none is lost, every agent keeps getting grants, and the
#     agents' caps, summed at every grant and every 50 ms, stay within the budget; after a
#     10 s warm-up the half of them that follow the controller's step (protocol/report_phase.hpp)
#     wait at least 100 ms less for their grants at the median than the half that keep their
#     own phases, spread over the period (the same run, so a slow machine slows both alike);
#     the watts that confirmed decreases free are granted between periods (status' loop);
#   - churn: agents disconnect and restart (new incarnation) at random: the sum stays within
#     the budget and the controller drops no session; the run's agents start at their
#     maximum caps, above the steady run's grants, and the controller steps at once for them;
#   - the controller refused none of the agents' reports in either run (a second run of
#     pg-loadgen is a restart of every agent: its reports are newer than the first run's);
#   - when all 300 go at once, slurmctld's log gets at most 20 "node session closed" lines
#     in full and a summary line with the count, not 300 lines; status says they are gone;
#   - slurmctld is up all along.
# TAP.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

build=${PG_BUILDDIR:-$PG_TOP/build}
ctld_dir=$build/slurmctld_powergrad/.libs
pg=$build/tools/powergrad
loadgen=$build/tests/tools/pg-loadgen
[ -f "$ctld_dir/prep_powergrad.so" ] ||
  skip_all "controller plugin not built (configure --with-slurm-source=DIR): $ctld_dir"
[ -x "$pg" ] || skip_all "powergrad command not built: $pg"
[ -x "$loadgen" ] || skip_all "pg-loadgen not built (make check builds it): $loadgen"
command -v python3 >/dev/null 2>&1 || skip_all "python3 is needed to read JSON"

pg_cluster_test_setup ctlload
plan 13

agents=300
budget=$((agents * 250))
export PG_CTLD_PLUGIN_DIR=$ctld_dir
export PG_SLURM_CONF_EXTRA="NodeName=lg[001-$agents] CPUs=2 State=FUTURE"
export PG_POWERGRAD_CONF="Budget=$budget
ControlPeriod=1
LeaseTime=5
NodeFloor=80
NodeMax=400
AdminUsers=root
Group=load Nodes=lg[001-$agents]"
if out=$("$PGCLUSTER" up 1 2>&1); then
  ok "cluster with the controller and $agents FUTURE nodes in its group is up"
else
  not_ok "cluster with the controller and $agents FUTURE nodes in its group is up" "$out"
  bail_out "the cluster did not come up"
fi
pg_cluster_env
export POWERGRAD_MUNGE_SOCKET=$PG_MUNGE_SOCKET
log_ctld=$("$PGCLUSTER" log ctld)
ctld_pid=$(pgrep -f "slurmctld -D -f $SLURM_CONF" | head -n1)
port=$PG_POWERGRAD_PORT
json() { python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(eval(sys.argv[2], {}, {"d": d}))' "$@"; }
# A count of the controller's "loop" record in status (none if status cannot be read).
loop_count() {
  "$pg" status --json --controller "127.0.0.1:$port" 2>/dev/null |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["loop"][sys.argv[1]])' "$1" 2>/dev/null || echo none
}

# What a failed pg-loadgen run said of its sessions, on one line: a failed point's name is
# what CI's excerpt keeps of it when the log around it is cut.
loadgen_why() {
  grep -E 'loadgen: (sessions opened|  refused|  dropped|FAIL)|pg-loadgen: ' "$1" |
    sed 's/^p\?g\?-\?loadgen: *//' | paste -sd ';' - || true
}

# --- steady: 20 s once every session is open
rc=0
"$loadgen" "127.0.0.1:$port" --nodes "lg[001-$agents]" --budget "$budget" --floor 80 --max 400 \
  --seconds 20 --watch-pid "$ctld_pid" --report-phase mixed --json "$PG_CLUSTER_DIR/steady.json" \
  > "$PG_CLUSTER_DIR/steady.txt" 2>&1 || rc=$?
if [ "$rc" = 0 ] && [ "$(json "$PG_CLUSTER_DIR/steady.json" 'd["opened"]')" = "$agents" ] &&
  [ "$(json "$PG_CLUSTER_DIR/steady.json" 'd["dropped"] + d["refused"]')" = 0 ]; then
  ok "steady: all $agents sessions open, none refused or dropped"
else
  # and what slurmctld's log says of connections refused and of sessions it closed (the
  # run's end closes all 300 from the agents' side: "peer closed the connection")
  ctld_said=$(grep -E 'connection from .* refused|node session closed: lg' "$log_ctld" |
    grep -v 'peer closed the connection' | head -n 10 || true)
  not_ok "steady: all $agents sessions open, none refused or dropped (exit $rc: $(loadgen_why "$PG_CLUSTER_DIR/steady.txt"); slurmctld: $(printf '%s\n' "$ctld_said" | head -n 1))" \
    "exit $rc" "$(cat "$PG_CLUSTER_DIR/steady.txt")" "slurmctld's log:" "$ctld_said"
fi
# Each agent is granted once a period: over 20 s at least 15 grants each (a busy machine may
# stretch periods; 5 periods of slack), and every report got its grant.
grants=$(json "$PG_CLUSTER_DIR/steady.json" 'd["grants"]')
if [ "$grants" -ge $((agents * 15)) ] && [ "$(json "$PG_CLUSTER_DIR/steady.json" 'd["latency_ms"]["n"] > 0')" = True ]; then
  ok "steady: grants keep coming ($grants for $agents agents in 20+ s)"
else
  not_ok "steady: grants keep coming" "$grants grants" "$(cat "$PG_CLUSTER_DIR/steady.txt")"
fi
if [ "$(json "$PG_CLUSTER_DIR/steady.json" 'd["violations"] == 0 and d["armed_at_s"] >= 0')" = True ]; then
  ok "steady: the agents' caps stay within the budget ($(grep -o 'mean while measured.*budget)' "$PG_CLUSTER_DIR/steady.txt"))"
else
  not_ok "steady: the agents' caps stay within the budget" "$(cat "$PG_CLUSTER_DIR/steady.txt")"
fi
# Half the agents send their reports just before the controller's step, as node agents do
# (protocol/report_phase.hpp): after the warm-up such a report waits 10-50% of a period plus
# the step for its grant. The other half keep their own phases, spread evenly over the
# period, and wait half a period plus the step at the median. A busy machine stretches the
# step for both halves alike, so the test compares them in one run (185-216 ms apart here,
# also with three busy loops on the two cores; 100 ms asked) instead of holding a
# wall-clock figure to a limit.
p50_follow=$(json "$PG_CLUSTER_DIR/steady.json" 'round(d["latency_follow_ms"]["p50"])')
p50_own=$(json "$PG_CLUSTER_DIR/steady.json" 'round(d["latency_own_ms"]["p50"])')
n_follow=$(json "$PG_CLUSTER_DIR/steady.json" 'd["latency_follow_ms"]["n"]')
n_own=$(json "$PG_CLUSTER_DIR/steady.json" 'd["latency_own_ms"]["n"]')
if [ "$n_follow" -gt 0 ] && [ "$n_own" -gt 0 ] && [ "$p50_follow" -ge 0 ] &&
  [ $((p50_own - p50_follow)) -ge 100 ]; then
  ok "steady: reports that follow the controller's step wait less for their grants (p50 $p50_follow ms against $p50_own ms at phases spread over the period, period 1 s)"
else
  not_ok "steady: reports that follow the controller's step wait less for their grants" "report-to-grant p50 $p50_follow ms ($n_follow samples) following the step, $p50_own ms ($n_own samples) at phases spread over the period" "$(cat "$PG_CLUSTER_DIR/steady.txt")"
fi
diag "$(sed 's/^/steady: /' "$PG_CLUSTER_DIR/steady.txt")"
# The agents confirm a lowered cap at once, as node agents do: the controller hands those
# watts to the raises that waited for them between periods, not one period later (its
# "loop" record in status counts the grants it sent so).
released=$(loop_count released_grants)
if [ "$released" != none ] && [ "$released" -gt 0 ]; then
  ok "steady: confirmed decreases are handed on between periods ($released grants)"
else
  not_ok "steady: confirmed decreases are handed on between periods" "released_grants: $released"
fi

# --- churn: each agent about once per 20 s drops its session or restarts
rc=0
"$loadgen" "127.0.0.1:$port" --nodes "lg[001-$agents]" --budget "$budget" --floor 80 --max 400 \
  --seconds 20 --warmup 0 --churn 0.05 --job-life 10 --json "$PG_CLUSTER_DIR/churn.json" --seed 7 \
  > "$PG_CLUSTER_DIR/churn.txt" 2>&1 || rc=$?
if [ "$rc" = 0 ] && [ "$(json "$PG_CLUSTER_DIR/churn.json" 'd["violations"] == 0 and d["reopened"] > 50')" = True ]; then
  ok "churn: $(json "$PG_CLUSTER_DIR/churn.json" 'd["reopened"]') sessions reopened, the caps within the budget all along"
else
  not_ok "churn: sessions reopened, the caps within the budget all along (exit $rc: $(loadgen_why "$PG_CLUSTER_DIR/churn.txt"))" "exit $rc" "$(cat "$PG_CLUSTER_DIR/churn.txt")"
fi
if [ "$(json "$PG_CLUSTER_DIR/churn.json" 'd["dropped"]')" = 0 ]; then
  ok "churn: the controller dropped no session"
else
  not_ok "churn: the controller dropped no session ($(loadgen_why "$PG_CLUSTER_DIR/churn.txt"))" "$(cat "$PG_CLUSTER_DIR/churn.txt")"
fi
diag "$(sed 's/^/churn: /' "$PG_CLUSTER_DIR/churn.txt")"
# The churn run's agents start at their maximum caps (as after a reboot), above the grants
# the controller sent these nodes in the steady run: their first reports make it step at
# once, not at the next period ("loop" in status counts those steps).
early=$(loop_count early_steps)
if [ "$early" != none ] && [ "$early" -gt 0 ]; then
  ok "churn: caps above every grant (agents restarted at their maximum) lowered between periods ($early early steps)"
else
  not_ok "churn: caps above every grant lowered between periods" "early_steps: $early"
fi

# Every report of both runs was taken: a refused report leaves the controller counting the
# node at what it knew before (pg-loadgen once numbered each run's agents from 1, so the
# churn run's reports were all "not newer", and the caps they started with were unknown).
refusal='powergrad: report from lg[0-9]* refused'
refused=$(grep -c "$refusal" "$log_ctld" || true)
if [ "$refused" = 0 ]; then
  ok "the controller refused none of the agents' reports (steady and churn)"
else
  not_ok "the controller refused none of the agents' reports (steady and churn)" \
    "$refused refusals logged" "$(grep "$refusal" "$log_ctld" | head -n 5)"
fi

# --- all gone at once: a few lines and a count, not one line per node
summarised() { grep -q 'more like this in the last .*node session closed' "$log_ctld"; }
wait_until 30 summarised || true
full=$(grep -c 'powergrad: node session closed: lg' "$log_ctld" || true)
summary=$(grep 'more like this in the last .*node session closed' "$log_ctld" | tail -n1 || true)
# Two runs ended (steady, churn: each closes 300 at once), churn's own closes come one by one:
# the first 20 of an episode (until 10 s without one) in full, the rest counted: at most 3
# episodes here (the steady run's end, the churn, its end), so 60 lines at most.
closes=$(json "$PG_CLUSTER_DIR/churn.json" 'd["reopened"]')
if [ -n "$summary" ] && [ "$full" -le 60 ]; then
  ok "node sessions closing by the hundred are summarised ($full lines in full for $((2 * agents + closes))+ closes; $summary)"
else
  not_ok "node sessions closing by the hundred are summarised" "$full lines in full" "summary: '$summary'"
fi
gone() {
  "$pg" status --json --controller "127.0.0.1:$port" 2>/dev/null | python3 -c '
import json, sys
s = json.load(sys.stdin)
sys.exit(0 if s["nodes"] and not any(n.get("connected") for n in s["nodes"]) else 1)'
}
if wait_until 30 gone; then
  ok "status: no agent connected any more"
else
  not_ok "status: no agent connected any more" "$("$pg" status --controller "127.0.0.1:$port" 2>&1 | head -20)"
fi
if pg_pid_alive "$ctld_pid"; then ok "slurmctld is up"; else not_ok "slurmctld is up"; fi
