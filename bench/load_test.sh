#!/usr/bin/env bash
# The controller in slurmctld under N node agents (issue 11's load test), on this machine.
#
# For each N (default 1000 5000 10000): a local cluster whose slurm.conf has N more nodes
# lg[00001-N] (State=FUTURE: slurmctld keeps them in its node table, never pings them) in one
# PowerGrad group, budget N x 250 W (floor 80 W, maximum 400 W, period 1 s, lease 5 s), and
# tests/tools/pg-loadgen running N node agents' sessions against it (real munge handshakes,
# a report per second with a job and its demand curve, grants obeyed, jobs starting and
# ending; see the top of pg-loadgen.cpp). pg-loadgen measures, once every session is open,
# for SECONDS (default 60): report-to-grant latency, sessions refused or dropped, the sum of
# the simulated nodes' caps against the budget at every grant and every 50 ms, and
# slurmctld's CPU (the pg-controller thread apart), RSS and open fds.
#
# slurmctld's own RPC latency: the same RPC load (squeue, sinfo, scontrol show job/node,
# sbatch of a one-second job, from 2 client loops) for RPC_SECONDS (default 30) while the
# agents run, and in a run of the same cluster without PowerGrad (PrEpPlugins without
# prep/powergrad, no agents); sdiag's per-RPC mean times compared. slurmctld runs on CPU 0,
# the agents, munged, the client loops and everything else on CPU 1, in both runs, so that
# the comparison is of slurmctld's own work (on a real cluster the agents run elsewhere).
# Prints "bench: load_N_* VALUE UNIT" lines. Root only; about 2 + SECONDS/60 minutes per N.
#
# The agents place their reports as node agents do: just before the controller's step
# (protocol/report_phase.hpp); REPORT_PHASE=own keeps each agent's random phase instead (how
# agents reported before), for comparison; REPORT_PHASE=mixed does both in one run (every
# other agent follows the step; pg-loadgen prints the latency of each half).
#
#   [REPORT_PHASE=follow|own|mixed] bench/load_test.sh [SECONDS [N...]]
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../tests/e2e/lib.sh
. "$(dirname "$0")/../tests/e2e/lib.sh"
seconds=${1:-60}
shift || true
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(1000 5000 10000)
rpc_seconds=${RPC_SECONDS:-30}
build=${PG_BUILDDIR:-$PG_TOP/build}
ctld_dir=$build/slurmctld_powergrad/.libs
loadgen=$build/tests/tools/pg-loadgen
[ "$(id -u)" -eq 0 ] || { echo "load_test: must run as root" >&2; exit 2; }
for f in "$ctld_dir/prep_powergrad.so" "$loadgen"; do
  [ -e "$f" ] || { echo "load_test: $f not built (make check builds the test tools)" >&2; exit 2; }
done
command -v taskset >/dev/null || { echo "load_test: taskset (util-linux) is needed" >&2; exit 2; }
[ "$(nproc)" -ge 2 ] || { echo "load_test: needs 2 CPUs (slurmctld on one, the load on the other)" >&2; exit 2; }
for n in "${sizes[@]}"; do
  case $n in '' | *[!0-9]*) echo "load_test: N must be a number (got '$n')" >&2; exit 2 ;; esac
  [ "$n" -ge 1 ] && [ "$n" -le 15000 ] || { echo "load_test: N must be 1..15000" >&2; exit 2; }
done
# The agents' sockets, and slurmctld's (it raises its soft limit to the hard one).
ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -ge $((${sizes[-1]} + 500)) ] ||
  { echo "load_test: open-file limit $(ulimit -n) is too low for ${sizes[-1]} agents" >&2; exit 2; }

cpus=$(nproc)
pg_cluster_test_setup load
out=$(mktemp -d /tmp/pg-load-out.XXXXXX)  # kept: the agents' samples, sdiag tables
taskset -p -c 1 $$ >/dev/null  # this shell and all it starts: CPU 1

ctld_pid() { pgrep -f "slurmctld -D -f $PG_CLUSTER_DIR/etc/slurm.conf" | head -n1; }

# Cluster with N extra nodes; $1: N, $2: 1 with the controller plugin, 0 without.
cluster_up() {
  local n=$1 with=$2 pid
  "$PGCLUSTER" down >/dev/null 2>&1 || true
  export PG_SLURM_CONF_EXTRA="NodeName=lg[$(printf '%05d' 1)-$(printf '%05d' "$n")] CPUs=2 State=FUTURE"
  if [ "$with" = 1 ]; then
    export PG_CTLD_PLUGIN_DIR=$ctld_dir
    export PG_POWERGRAD_CONF="Budget=$((n * 250))
ControlPeriod=1
LeaseTime=5
NodeFloor=80
NodeMax=400
Group=load Nodes=lg[$(printf '%05d' 1)-$(printf '%05d' "$n")]"
  else
    unset PG_CTLD_PLUGIN_DIR PG_POWERGRAD_CONF
  fi
  "$PGCLUSTER" up 1 > "$out/up.$n.$with.txt" 2>&1 || { cat "$out/up.$n.$with.txt" >&2; exit 1; }
  pg_cluster_env
  export POWERGRAD_MUNGE_SOCKET=$PG_MUNGE_SOCKET
  pid=$(ctld_pid)
  taskset -a -p -c 0 "$pid" >/dev/null  # every thread of slurmctld, and those it starts
}

# The RPC load for $rpc_seconds, then sdiag's table: "NAME count mean_us" per RPC type.
rpc_load() {
  local tag=$1 end i pids=()
  sdiag -r >/dev/null
  end=$((SECONDS + rpc_seconds))
  for i in 1 2; do
    (
      while [ "$SECONDS" -lt "$end" ]; do
        squeue -h >/dev/null 2>&1 || true
        sinfo -h >/dev/null 2>&1 || true
        scontrol show job >/dev/null 2>&1 || true
        scontrol show node n1 >/dev/null 2>&1 || true
        [ "$i" = 1 ] && { sbatch -Q -N1 -w n1 -o /dev/null --wrap 'sleep 1' >/dev/null 2>&1 || true; }
      done
    ) &
    pids+=("$!")
  done
  wait "${pids[@]}" || true
  sdiag > "$out/sdiag.$tag.txt"
  # "REQUEST_JOB_INFO                        ( 2003) count:123 ave_time:456 total_time:..."
  awk '/Remote Procedure Call statistics by message type/ {on = 1; next}
       /Remote Procedure Call statistics by user/ {on = 0}
       on && /count:/ {
         name = $1; c = ""; a = ""
         for (i = 2; i <= NF; i++) {
           if ($i ~ /^count:/) c = substr($i, 7)
           if ($i ~ /^ave_time:/) a = substr($i, 10)
         }
         if (c != "" && a != "") print name, c, a
       }' "$out/sdiag.$tag.txt" > "$out/rpc.$tag.txt"
}

# Mean RPC time over the RPC types both runs saw, weighted by the baseline's counts.
compare_rpc() {
  awk 'NR == FNR { base[$1] = $3; cnt[$1] = $2; next }
       ($1 in base) && cnt[$1] >= 20 { w += cnt[$1]; b += cnt[$1] * base[$1]; p += cnt[$1] * $3
                                       printf "#   %-32s %6d calls: %8.0f us without, %8.0f us with\n", $1, cnt[$1], base[$1], $3 }
       END { if (w > 0) printf "%.1f %.1f\n", b / w, p / w; else print "nan nan" }' "$1" "$2"
}

echo "# bench/load_test.sh: $(date -u +%F), $cpus CPUs, load $(cut -d' ' -f1 /proc/loadavg), $(slurmctld -V 2>/dev/null)"
echo "# slurmctld on CPU 0; agents, munged and RPC clients on CPU 1; measured ${seconds} s once all sessions are open; report phase: ${REPORT_PHASE:-follow}"
for n in "${sizes[@]}"; do
  # Without PowerGrad: slurmctld's RPC times on the same node table.
  cluster_up "$n" 0
  rpc_load "$n.without"
  # With PowerGrad and N agents.
  cluster_up "$n" 1
  pid=$(ctld_pid)
  "$loadgen" "127.0.0.1:$PG_POWERGRAD_PORT" --nodes "lg[$(printf '%05d' 1)-$(printf '%05d' "$n")]" \
    --budget $((n * 250)) --floor 80 --max 400 --seconds "$seconds" --watch-pid "$pid" \
    --series "$out/series.$n.csv" --json "$out/loadgen.$n.json" \
    --report-phase "${REPORT_PHASE:-follow}" > "$out/loadgen.$n.txt" 2>&1 &
  lg=$!
  opened() { grep -q "sessions open after" "$out/loadgen.$n.txt"; }
  wait_until 600 opened || { cat "$out/loadgen.$n.txt" >&2; echo "load_test: sessions never all open" >&2; exit 1; }
  rpc_load "$n.with"
  rc=0
  wait "$lg" || rc=$?
  sed 's/^/# /' "$out/loadgen.$n.txt"
  compare_rpc "$out/rpc.$n.without.txt" "$out/rpc.$n.with.txt" > "$out/rpc.$n.compare.txt"
  echo "# sdiag, mean time per RPC type (types with at least 20 calls):"
  grep '^#' "$out/rpc.$n.compare.txt"
  read -r without with < <(tail -n1 "$out/rpc.$n.compare.txt")
  python3 - "$out/loadgen.$n.json" "$n" "$without" "$with" "$rc" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
n = sys.argv[2]
without, with_ = float(sys.argv[3]), float(sys.argv[4])
def out(k, v, u=""):
    print(f"bench: load_{n}_{k} {v} {u}".rstrip())
out("sessions_open_after", "%.1f" % j["open_s"], "s")
out("report_to_grant_p50", "%.0f" % j["latency_ms"]["p50"], "ms")
out("report_to_grant_p99", "%.0f" % j["latency_ms"]["p99"], "ms")
if j.get("report_phase") == "mixed":
    out("report_to_grant_p50_following", "%.0f" % j["latency_follow_ms"]["p50"], "ms")
    out("report_to_grant_p50_own_phase", "%.0f" % j["latency_own_ms"]["p50"], "ms")
out("sessions_refused", j["refused"])
out("sessions_dropped", j["dropped"])
out("budget_violations", j["violations"])
out("caps_mean_share_of_budget", "%.1f" % (100 * j["mean_sum_w"] / j["budget_w"]), "%")
out("slurmctld_cpu", "%.1f" % (100 * j["cpu_share"]), "% of a core")
out("pg_controller_thread_cpu", "%.1f" % (100 * j["thread_share"]), "% of a core")
out("slurmctld_rss_start", j["rss_mb"][0], "MB")
out("slurmctld_rss_end", j["rss_mb"][2], "MB")
out("sdiag_rpc_mean_without", "%.0f" % without, "us")
out("sdiag_rpc_mean_with", "%.0f" % with_, "us")
if without > 0:
    out("sdiag_rpc_ratio", "%.2f" % (with_ / without))
out("loadgen_exit", sys.argv[5])
EOF
done
"$PGCLUSTER" down >/dev/null 2>&1 || true
echo "# figures and samples kept in $out"
