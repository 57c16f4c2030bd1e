#!/usr/bin/env bash
# The status-flood attack of issue 11, measured: an unprivileged user opens SESSIONS admin
# sessions (default 60) and sends status requests on all of them for SECONDS (default 30)
# without ever reading an answer (tests/tools/pg-rogue flood-status), against the real
# controller in slurmctld on a 2-node local cluster whose agents hold leases (period 1 s,
# lease 5 s). Sampled every 0.5 s before and during the attack: slurmctld's RSS, how long
# root's `powergrad status` takes, and the oldest lease of the nodes (a lease older than
# the lease time means that node fell to its floor). Before the fix: RSS 105 -> 599 MB,
# root's status timed out, lease ages 3.8-5.4 s, every node at its floor in 31% of samples.
# Prints "bench: admin_flood_* VALUE UNIT" lines. Root only.
#
#   bench/admin_flood.sh [SESSIONS [SECONDS]]
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../tests/e2e/lib.sh
. "$(dirname "$0")/../tests/e2e/lib.sh"
sessions=${1:-60}
seconds=${2:-30}
build=${PG_BUILDDIR:-$PG_TOP/build}
spank=$build/spank_powergrad/.libs/spank_powergrad.so
ctld_dir=$build/slurmctld_powergrad/.libs
hwemu=$build/hardware/testing/powergrad-hwemu
rogue=$build/tests/tools/pg-rogue
pg=$build/tools/powergrad
[ "$(id -u)" -eq 0 ] || { echo "admin_flood: must run as root" >&2; exit 2; }
for f in "$spank" "$ctld_dir/prep_powergrad.so" "$hwemu" "$rogue" "$pg"; do
  [ -e "$f" ] || { echo "admin_flood: $f not built (make check builds the test tools)" >&2; exit 2; }
done

pg_cluster_test_setup admin_flood
nodes_dir=$PG_CLUSTER_DIR/nodes
for n in n1 n2; do
  mkdir -p "$nodes_dir/$n"
  "$hwemu" make-tree --root "$nodes_dir/$n/sys" --machine intel-server >/dev/null
  "$hwemu" run --root "$nodes_dir/$n/sys" --period-s 0.2 > "$nodes_dir/$n/hwemu.log" 2>&1 &
  pg_on_exit kill "$!"
done
echo "* memory_share=0.2,busy_cpus=1" > "$nodes_dir/emulate.txt"
port=$((PG_PORT_BASE + 3))
export PG_SPANK_PLUGIN=$spank PG_CTLD_PLUGIN_DIR=$ctld_dir
export PG_SPANK_ARGS="period=0.5 state_dir=$nodes_dir/%n/state sysfs_root=$nodes_dir/%n/sys \
counters=emulated emulate=$nodes_dir/emulate.txt floor=120 controller=127.0.0.1:$port"
export PG_POWERGRAD_CONF="Budget=600
NodeFloor=120
NodeMax=410
ControlPeriod=1
LeaseTime=5"
"$PGCLUSTER" up 2 >/dev/null
pg_cluster_env
export POWERGRAD_MUNGE_SOCKET=$PG_MUNGE_SOCKET
ctld=$(pgrep -f "slurmctld -D -f $SLURM_CONF" | head -n1)
leases_held() {
  "$pg" status --json --controller "127.0.0.1:$port" --timeout 2 2>/dev/null | python3 -c '
import json, sys
s = json.load(sys.stdin)
sys.exit(0 if all(n["lease_age_s"] is not None for n in s["nodes"]) else 1)'
}
wait_until 60 leases_held || { echo "admin_flood: the nodes never held leases" >&2; exit 1; }

samples=$PG_CLUSTER_DIR/samples.txt
sample() { # PHASE: one line "PHASE rss_kb status_ms max_lease_age_s|timeout"
  local rss t0 out age
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$ctld/status")
  t0=$EPOCHREALTIME
  if out=$("$pg" status --json --controller "127.0.0.1:$port" --timeout 5 2>/dev/null); then
    age=$(python3 -c 'import json, sys
s = json.loads(sys.argv[1])
a = [n["lease_age_s"] for n in s["nodes"]]
print("none" if None in a else max(a))' "$out")
  else
    age=timeout
  fi
  echo "$1 $rss $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.1f", (b - a) * 1000}') $age" >> "$samples"
}
end=$((SECONDS + 10))
while [ "$SECONDS" -lt "$end" ]; do sample before; sleep 0.5; done
flood_out=$PG_CLUSTER_DIR/flood.out
runuser -u nobody -- env POWERGRAD_MUNGE_SOCKET="$PG_MUNGE_SOCKET" \
  "$rogue" "127.0.0.1:$port" flood-status "$sessions" "$seconds" > "$flood_out" 2>&1 &
flood=$!
while pg_pid_alive "$flood"; do sample during; sleep 0.5; done
wait "$flood" || true

echo "admin_flood: $sessions sessions as nobody for $seconds s, 2 nodes, period 1 s, lease 5 s, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
grep -E '^status: ' "$flood_out" | sed 's/^/admin_flood: attacker: /'
echo "admin_flood: sessions refused: $(grep -c '^session: refused' "$flood_out" || true) ($(grep -m1 '^session: refused' "$flood_out" | cut -c10- || true))"
python3 - "$samples" <<'EOF'
import sys
rows = [l.split() for l in open(sys.argv[1])]
for phase in ("before", "during"):
    r = [x for x in rows if x[0] == phase]
    rss = [int(x[1]) / 1024 for x in r]
    ms = sorted(float(x[2]) for x in r)
    ages = [x[3] for x in r]
    timeouts = sum(1 for a in ages if a == "timeout")
    known = [float(a) for a in ages if a not in ("timeout", "none")]
    over = sum(1 for a in known if a > 5.0)
    print(f"bench: admin_flood_{phase}_rss_max_mb {max(rss):.0f} MB (slurmctld, {len(r)} samples)")
    print(f"bench: admin_flood_{phase}_status_p50_ms {ms[len(ms) // 2]:.0f} ms (root's powergrad status; max {ms[-1]:.0f} ms, {timeouts} timed out)")
    print(f"bench: admin_flood_{phase}_lease_age_max_s {max(known) if known else float('nan'):.2f} s (oldest lease of the nodes; {over} samples past the 5 s lease)")
EOF
