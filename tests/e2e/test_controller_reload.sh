#!/usr/bin/env bash
# End-to-end: `scontrol reconfigure` applies a changed powergrad.conf. Two nodes with agents
# on fake trees hold leases. A changed lease time and group limit are applied and the admin's
# run-time budget stays; a lower Budget= is obeyed like set-budget; a bad file is refused
# with its file and line in slurmctld's log and in `powergrad status`, the configuration in
# force stays and slurmctld keeps scheduling. The caps in force in the nodes' trees, sampled
# every 0.2 s from before the first reconfigure, never exceed the run-time budget, and both
# agents are back on leases of the new controller. TAP.
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
command -v python3 >/dev/null 2>&1 || skip_all "python3 is needed to read the JSON output"

pg_cluster_test_setup ctlreload
plan 12

conf_text() {  # conf_text BUDGET LEASE LIMIT
  printf '%s\n' "# the test cluster" "Budget=$1" "ControlPeriod=1" "LeaseTime=$2" "NodeFloor=50" \
    "NodeMax=300" "AdminUsers=root" "Group=rack1 Nodes=n[1-2] Limit=$3"
}
export PG_CTLD_PLUGIN_DIR=$ctld_dir PG_POWERGRAD_CONF="$(conf_text 600 5 500)"
nodes_dir=$PG_CLUSTER_DIR/nodes
for n in n1 n2; do
  mkdir -p "$nodes_dir/$n"
  "$hwemu" make-tree --root "$nodes_dir/$n/sys" --machine intel-server ||
    bail_out "powergrad-hwemu make-tree failed for $n"
done
export PG_SPANK_PLUGIN=$spank
export PG_SPANK_ARGS="log_level=info period=0.5 state_dir=$nodes_dir/%n/state \
sysfs_root=$nodes_dir/%n/sys controller=127.0.0.1:$((PG_PORT_BASE + 3))"
if out=$("$PGCLUSTER" up 2 2>&1); then
  ok "cluster with the controller plugin and two node agents is up"
else
  not_ok "cluster with the controller plugin and two node agents is up" "$out"
  bail_out "the cluster did not come up"
fi
pg_cluster_env
export POWERGRAD_MUNGE_SOCKET=$PG_MUNGE_SOCKET
conf=$(dirname "$SLURM_CONF")/powergrad.conf
# pgcluster adds the test's own Listen= line: the rewritten files keep it.
listen_line=$(grep -i '^Listen=' "$conf" || true)
write_conf() { { conf_text "$@"; [ -z "$listen_line" ] || echo "$listen_line"; } > "$conf"; }
log_ctld=$("$PGCLUSTER" log ctld)
ctld_logged() { grep -qF -- "$1" "$log_ctld"; }
# field EXPR: a Python expression over the status JSON s.
field() {
  "$pg" status --json --controller "127.0.0.1:$PG_POWERGRAD_PORT" 2>/dev/null | python3 -c "import json,sys; s=json.load(sys.stdin); print($1)"
}
both_leased() {
  [ "$(field "sum(1 for n in s['nodes'] if n['connected'] and n['lease_age_s'] is not None)")" = 2 ]
}
if wait_until 60 both_leased; then
  ok "both node agents are connected and hold leases"
else
  not_ok "both node agents are connected and hold leases" "$("$pg" status 2>&1)"
fi

out=$("$pg" set-budget 450 2>&1) || true
is "$(field 's["budget_w"]')" "450" "run-time budget 450 W set by root ($out)"
# The caps in force in both trees (W, all packages' long-term limits), every 0.2 s.
trees_w() {
  local n z t=0
  for n in n1 n2; do
    for z in 0 1; do
      t=$((t + $(cat "$nodes_dir/$n/sys/class/powercap/intel-rapl:$z/constraint_0_power_limit_uw")))
    done
  done
  echo $((t / 1000000))
}
trees_within() { [ "$(trees_w)" -le "$1" ]; }
wait_until 30 trees_within 450 || true  # the agents obey the drop to 450 W at once
samples=$PG_CLUSTER_DIR/samples
: > "$samples"
( while :; do trees_w >> "$samples" 2>/dev/null || true; sleep 0.2; done ) &
sampler=$!
pg_on_exit kill "$sampler"

# reconfigure_and_wait LOGLINE: scontrol reconfigure, then wait for LOGLINE's next
# occurrence in slurmctld's log.
count_of() { grep -cF -- "$1" "$log_ctld" || true; }
more_than() { [ "$(count_of "$1")" -gt "$2" ]; }
# slurmctld stamps its reading of slurm.conf with whole seconds: two reconfigures within
# one second look like one to the plugin, so each waits for a second later than the one in
# which the previous was done. That second is taken when scontrol returns (slurmctld has
# read the file by then): taken before, a slow scontrol on a busy machine let the next
# reconfigure land in the same second as the previous one's reading.
last_reconf_s=0
later_second() { [ "$(date +%s)" -gt "$last_reconf_s" ]; }
reconfigure_and_wait() {
  local before
  before=$(count_of "$1")
  wait_until 5 later_second || true
  scontrol reconfigure
  last_reconf_s=$(date +%s)
  wait_until 60 more_than "$1" "$before"
}

# --- lease time and group limit change; the config budget does not: run-time budget stays
write_conf 600 6 480
# 22.05 logs "reconfigure: applying" and restarts the controller in its thread; 24.11 and
# later re-execute slurmctld: either way a controller starts again on the file.
running_line="powergrad: controller running with $conf: "
if reconfigure_and_wait "$running_line"; then
  ok "scontrol reconfigure: the changed powergrad.conf is applied"
else
  not_ok "scontrol reconfigure: the changed powergrad.conf is applied" "$(grep powergrad "$log_ctld" | tail -n 5)"
fi
applied() {
  [ "$(field 's["lease_s"], s["groups"][0]["limit_w"], s["budget_w"]')" = "6 480 450" ]
}
if wait_until 60 applied; then
  ok "status: lease 6 s, group limit 480 W, and the run-time budget 450 W stays"
else
  not_ok "status: lease 6 s, group limit 480 W, and the run-time budget 450 W stays" \
    "$(field 's["lease_s"], s["groups"][0]["limit_w"], s["budget_w"]' 2>&1)"
fi
if wait_until 60 both_leased; then
  ok "both agents reconnected and hold leases of the new controller"
else
  not_ok "both agents reconnected and hold leases of the new controller" "$("$pg" status 2>&1)"
fi

# --- a lower Budget= in the file: obeyed like set-budget
# The trees never held more than the run-time budget across that restart of the controller.
kill "$sampler" 2>/dev/null || true
wait "$sampler" 2>/dev/null || true
max_w=$(sort -n "$samples" | tail -n 1)
n_samples=$(wc -l < "$samples")
if [ "$n_samples" -ge 3 ] && [ "$max_w" -le 450 ]; then
  ok "the trees' caps stayed within the 450 W budget across the reload (max $max_w W, $n_samples samples)"
else
  not_ok "the trees' caps stayed within the 450 W budget across the reload" \
    "max $max_w W over $n_samples samples"
fi
write_conf 400 6 480
reconfigure_and_wait "$running_line" || true
budget_400() { [ "$(field 's["budget_w"]')" = 400 ] && trees_within 400; }
if wait_until 60 budget_400; then
  ok "a lower Budget= is in force after reconfigure, and the trees' caps are within it ($(trees_w) W)"
else
  not_ok "a lower Budget= is in force after reconfigure" "$(field 's["budget_w"]' 2>&1), trees $(trees_w) W"
fi

# --- a bad file: refused with file and line, the configuration in force stays
{ conf_text 350 6 480 | sed 's/^NodeFloor=50$/NodeFloor=lots/'; [ -z "$listen_line" ] || echo "$listen_line"; } > "$conf"
bad_line=$(grep -n '^NodeFloor=lots' "$conf" | cut -d: -f1)
# 22.05: "reconfigure: configuration refused: FILE:LINE: ..."; 24.11 and later, at the new
# start: "configuration refused: FILE:LINE: ...; the last configuration in force stays".
if reconfigure_and_wait "configuration refused: $conf:$bad_line: "; then
  ok "a bad powergrad.conf is refused on reconfigure with file and line ($conf:$bad_line)"
else
  not_ok "a bad powergrad.conf is refused on reconfigure with file and line" "$(grep powergrad "$log_ctld" | tail -n 5)"
fi
refused_in_status() {
  [ "$(field 's["budget_w"], (s["config_refused"] or "").startswith("'"$conf:$bad_line"':")')" = "400 True" ]
}
if wait_until 30 refused_in_status; then
  ok "status: the budget in force stays 400 W and config_refused names the file and line"
else
  not_ok "status: the budget in force stays 400 W and config_refused names the file and line" \
    "$(field 's["budget_w"], s["config_refused"]' 2>&1 | tail -n 2)"
fi
# (`powergrad status` reads Listen= from powergrad.conf, which is bad now: --controller.)
out=$("$pg" status --controller "127.0.0.1:$PG_POWERGRAD_PORT" 2>&1) || true
if grep -q "^configuration: the last reconfigure was refused, the one in force stays: $conf:$bad_line: " <<<"$out"; then
  ok "powergrad status says the last reconfigure was refused"
else
  not_ok "powergrad status says the last reconfigure was refused" "$out"
fi
out=$(timeout 60 srun -N2 true 2>&1) && rc=0 || rc=$?
if [ "$rc" = 0 ] && scontrol ping >/dev/null 2>&1; then
  ok "slurmctld stays up and runs jobs"
else
  not_ok "slurmctld stays up and runs jobs" "srun exit $rc: $out"
fi

