#!/usr/bin/env bash
# Soak (issue 11): the controller in slurmctld for MINUTES (default 30) under AGENTS
# (default 2000) node agents that connect, disconnect and restart at random
# (tests/tools/pg-loadgen --churn: each agent about once per CHURN_EVERY_S, default 600 s,
# i.e. 3 to 4 events a second; half reconnect, half restart with a new incarnation), their
# jobs starting and ending (mean 60 s), beside two real nodes (slurmd with the SPANK plugin
# and its node agent on fake powercap trees) that run real power-aware jobs one after the
# other the whole time (sbatch --power-aware, 5-25 s each).
#
# Checked at the end, and printed as "bench: soak_* VALUE UNIT" lines:
#   - slurmctld's RSS and open fds flat: growth from minute 10 to the end (medians of a
#     minute) under 1%;
#   - no violation: the loadgen nodes' caps, summed at every grant and every 50 ms, never
#     above their group's limit once within it (the group limit is the loadgen's budget);
#   - no session lost other than by churn (sessions dropped by the controller: 0);
#   - every real job has its PowerGrad record in sacct's AdminComment.
# Exit status 0 when all hold. Root only.
#
#   bench/soak.sh [MINUTES [AGENTS]]
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../tests/e2e/lib.sh
. "$(dirname "$0")/../tests/e2e/lib.sh"
minutes=${1:-30}
agents=${2:-2000}
churn_every=${CHURN_EVERY_S:-600}
build=${PG_BUILDDIR:-$PG_TOP/build}
spank=$build/spank_powergrad/.libs/spank_powergrad.so
ctld_dir=$build/slurmctld_powergrad/.libs
hwemu=$build/hardware/testing/powergrad-hwemu
loadgen=$build/tests/tools/pg-loadgen
[ "$(id -u)" -eq 0 ] || { echo "soak: must run as root" >&2; exit 2; }
for f in "$spank" "$ctld_dir/prep_powergrad.so" "$hwemu" "$loadgen"; do
  [ -e "$f" ] || { echo "soak: $f not built (make check builds the test tools)" >&2; exit 2; }
done
case "$minutes$agents" in *[!0-9]*) echo "soak: MINUTES and AGENTS are whole numbers" >&2; exit 2 ;; esac
[ "$minutes" -ge 12 ] || { echo "soak: at least 12 minutes (growth is judged from minute 10)" >&2; exit 2; }
ulimit -n "$(ulimit -Hn)"

pg_cluster_test_setup soak
out=$(mktemp -d /tmp/pg-soak-out.XXXXXX)
# The daemons load copies: a rebuild during the half hour must not change them under a job.
mkdir -p "$out/plugins"
cp "$spank" "$(dirname "$spank")/powergrad_agent.so" "$ctld_dir/prep_powergrad.so" "$out/plugins/"
chmod 755 "$out" "$out/plugins"
spank=$out/plugins/spank_powergrad.so
ctld_dir=$out/plugins
nodes_dir=$PG_CLUSTER_DIR/nodes
for n in n1 n2; do
  mkdir -p "$nodes_dir/$n"
  "$hwemu" make-tree --root "$nodes_dir/$n/sys" --machine intel-server >/dev/null
  "$hwemu" run --root "$nodes_dir/$n/sys" --period-s 0.2 > "$nodes_dir/$n/hwemu.log" 2>&1 &
  pg_on_exit kill "$!"
done
echo "* memory_share=0.2,busy_cpus=1" > "$nodes_dir/emulate.txt"
port=$((PG_PORT_BASE + 3))
last=$(printf '%05d' "$agents")
limit=$((agents * 250))
export PG_SPANK_PLUGIN=$spank PG_CTLD_PLUGIN_DIR=$ctld_dir
export PG_SPANK_ARGS="period=0.5 state_dir=$nodes_dir/%n/state sysfs_root=$nodes_dir/%n/sys \
counters=emulated emulate=$nodes_dir/emulate.txt floor=120 controller=127.0.0.1:$port"
export PG_SLURM_CONF_EXTRA="NodeName=lg[00001-$last] CPUs=2 State=FUTURE"
export PG_POWERGRAD_CONF="Budget=$((limit + 900))
NodeFloor=80
NodeMax=400
ControlPeriod=1
LeaseTime=5
Group=load Nodes=lg[00001-$last] Limit=$limit
Group=real Nodes=n[1-2]
Node=n[1-2] Floor=120 Max=410"
"$PGCLUSTER" up 2 > "$out/up.txt" 2>&1 || { cat "$out/up.txt" >&2; exit 1; }
pg_cluster_env
export POWERGRAD_MUNGE_SOCKET=$PG_MUNGE_SOCKET
ctld=$(pgrep -f "slurmctld -D -f $SLURM_CONF" | head -n1)
echo "# bench/soak.sh: $(date -u +%FT%TZ), $(nproc) CPUs, $(slurmctld -V), $minutes min, $agents agents (churn: each about once per ${churn_every} s), 2 real nodes"

"$loadgen" "127.0.0.1:$port" --nodes "lg[00001-$last]" --budget "$limit" --floor 80 --max 400 \
  --seconds $((minutes * 60)) --churn "$(awk -v s="$churn_every" 'BEGIN {print 1 / s}')" \
  --job-life 60 --watch-pid "$ctld" --series "$out/series.csv" --json "$out/loadgen.json" \
  > "$out/loadgen.txt" 2>&1 &
lg=$!
stop_loadgen() { kill "$lg" 2>/dev/null || true; }
pg_on_exit stop_loadgen

# Real power-aware jobs, one after the other on each real node, until the loadgen is done.
: > "$out/jobs.txt"
submit_loop() {
  local node=$1 id
  while pg_pid_alive "$lg"; do
    if [ -z "$(squeue -h -w "$node" -o %i 2>/dev/null)" ]; then
      id=$(sbatch --parsable --power-aware -N1 -w "$node" -o /dev/null \
        --wrap "srun --power-aware sleep $((5 + RANDOM % 20))" 2>>"$out/sbatch.err") &&
        echo "$id" >> "$out/jobs.txt"
    fi
    sleep 2
  done
}
submit_loop n1 & s1=$!
submit_loop n2 & s2=$!
wait "$lg" && lg_rc=0 || lg_rc=$?
wait "$s1" "$s2" || true
sed 's/^/# /' "$out/loadgen.txt"

# Every real job's record in sacct, once all have ended.
all_ended() { [ -z "$(squeue -h -o %i 2>/dev/null)" ]; }
wait_until 120 all_ended || echo "# jobs still listed: $(squeue -h 2>&1 | head -5)"
jobs=$(wc -l < "$out/jobs.txt")
has_record() { sacct -n -X -j "$1" --format=AdminComment%400 | grep -q 'powergrad={v=1 '; }
missing=()
for id in $(cat "$out/jobs.txt"); do
  wait_until 30 has_record "$id" || missing+=("$id")
done

rc=0
python3 - "$out/series.csv" "$out/loadgen.json" "$jobs" "${#missing[@]}" "$lg_rc" "$minutes" <<'EOF' || rc=$?
import csv, json, statistics, sys
rows = [r for r in csv.DictReader(open(sys.argv[1])) if r["phase"] == "run"]
j = json.load(open(sys.argv[2]))
jobs, missing, lg_rc, minutes = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
t0 = float(rows[0]["t_s"])
def window(key, a, b):
    v = [float(r[key]) for r in rows if a <= float(r["t_s"]) - t0 < b]
    return statistics.median(v)
end = float(rows[-1]["t_s"]) - t0
rss10, rss_end = window("rss_mb", 600, 660), window("rss_mb", end - 60, end + 1)
fd10, fd_end = window("fds", 600, 660), window("fds", end - 60, end + 1)
def out(k, v, u=""):
    print(f"bench: soak_{k} {v} {u}".rstrip())
out("minutes", "%.1f" % (end / 60))
out("slurmctld_rss_min10", "%.1f" % rss10, "MB")
out("slurmctld_rss_end", "%.1f" % rss_end, "MB")
out("slurmctld_rss_growth", "%.2f" % (100 * (rss_end - rss10) / rss10), "%")
out("slurmctld_fds_min10", "%.0f" % fd10)
out("slurmctld_fds_end", "%.0f" % fd_end)
out("slurmctld_fds_growth", "%.2f" % (100 * (fd_end - fd10) / fd10), "%")
out("slurmctld_cpu", "%.1f" % (100 * j["cpu_share"]), "% of a core")
out("sessions_reopened", j["reopened"])
out("sessions_dropped", j["dropped"])
out("sessions_refused", j["refused"])
out("report_to_grant_p99", "%.0f" % j["latency_ms"]["p99"], "ms")
out("budget_violations", j["violations"])
out("real_jobs", jobs)
out("real_jobs_without_record", missing)
ok = (abs(rss_end - rss10) / rss10 < 0.01 and abs(fd_end - fd10) / fd10 < 0.01 and
      j["violations"] == 0 and j["dropped"] == 0 and missing == 0 and jobs > 0 and lg_rc == 0)
print("bench: soak_result", "PASS" if ok else "FAIL")
sys.exit(0 if ok else 1)
EOF
[ "${#missing[@]}" -eq 0 ] || echo "# jobs without a record: ${missing[*]}"
echo "# samples and logs kept in $out"
exit "$rc"
