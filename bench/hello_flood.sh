#!/usr/bin/env bash
# HELLO floods against the controller in slurmctld while real node sessions come and run
# (issue 11): do connections that never finish a handshake, or send garbage or honest but
# useless HELLOs at full speed, slow the handling of the nodes?
#
# A local cluster with AGENTS (default 1000) extra nodes in one group; tests/tools/pg-loadgen
# opens their sessions and runs them for SECONDS (default 30) once all are open (see
# bench/load_test.sh for what it measures). Twice: quiet, then while an unprivileged user
# (nobody) on another address (127.0.0.2; the nodes come from 127.0.0.1) runs, from before
# the agents connect until after they are done:
#   - hold-pending 3000: 3,000 connections that never send a HELLO;
#   - flood-garbage: connect, 64 bytes that are no frame, close, as fast as it can;
#   - 2 x flood-hello: connect, an honest admin HELLO (a fresh munge credential the
#     controller must decode), close without reading, as fast as munge allows.
# Printed: "bench: hello_flood_{quiet,flood}_* VALUE UNIT" (time for all sessions to open,
# report-to-grant p50/p99, sessions refused and dropped, controller thread CPU) and what the
# floods achieved. Root only.
#
#   bench/hello_flood.sh [AGENTS [SECONDS]]
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../tests/e2e/lib.sh
. "$(dirname "$0")/../tests/e2e/lib.sh"
agents=${1:-1000}
seconds=${2:-30}
build=${PG_BUILDDIR:-$PG_TOP/build}
ctld_dir=$build/slurmctld_powergrad/.libs
loadgen=$build/tests/tools/pg-loadgen
rogue=$build/tests/tools/pg-rogue
[ "$(id -u)" -eq 0 ] || { echo "hello_flood: must run as root" >&2; exit 2; }
for f in "$ctld_dir/prep_powergrad.so" "$loadgen" "$rogue"; do
  [ -e "$f" ] || { echo "hello_flood: $f not built (make check builds the test tools)" >&2; exit 2; }
done
ulimit -n "$(ulimit -Hn)"

pg_cluster_test_setup hello_flood
out=$(mktemp -d /tmp/pg-hello-flood.XXXXXX)
chmod 755 "$out"
last=$(printf '%05d' "$agents")
export PG_CTLD_PLUGIN_DIR=$ctld_dir
export PG_SLURM_CONF_EXTRA="NodeName=lg[00001-$last] CPUs=2 State=FUTURE"
export PG_POWERGRAD_CONF="Budget=$((agents * 250))
ControlPeriod=1
LeaseTime=5
NodeFloor=80
NodeMax=400
Group=load Nodes=lg[00001-$last]"
"$PGCLUSTER" up 1 > "$out/up.txt" 2>&1 || { cat "$out/up.txt" >&2; exit 1; }
pg_cluster_env
export POWERGRAD_MUNGE_SOCKET=$PG_MUNGE_SOCKET
ctld=$(pgrep -f "slurmctld -D -f $SLURM_CONF" | head -n1)
port=$PG_POWERGRAD_PORT
echo "# bench/hello_flood.sh: $(date -u +%FT%TZ), $(nproc) CPUs, $(slurmctld -V), $agents agents, ${seconds} s measured"

run_agents() {  # TAG
  "$loadgen" "127.0.0.1:$port" --nodes "lg[00001-$last]" --budget $((agents * 250)) \
    --floor 80 --max 400 --seconds "$seconds" --watch-pid "$ctld" --json "$out/$1.json" \
    > "$out/$1.txt" 2>&1 || true
  sed "s/^/# $1: /" "$out/$1.txt"
}
as_nobody() {
  runuser -u nobody -- env POWERGRAD_MUNGE_SOCKET="$PG_MUNGE_SOCKET" PG_ROGUE_SOURCE=127.0.0.2 "$@"
}

run_agents quiet
flood_s=$((seconds + 60))
as_nobody "$rogue" "127.0.0.1:$port" hold-pending 3000 "$flood_s" > "$out/pending.txt" 2>&1 &
p1=$!
as_nobody "$rogue" "127.0.0.1:$port" flood-garbage "$flood_s" > "$out/garbage.txt" 2>&1 &
p2=$!
as_nobody "$rogue" "127.0.0.1:$port" flood-hello "$flood_s" > "$out/hello1.txt" 2>&1 &
p3=$!
as_nobody "$rogue" "127.0.0.1:$port" flood-hello "$flood_s" > "$out/hello2.txt" 2>&1 &
p4=$!
sleep 5  # the floods at full speed before the agents come
run_agents flood
wait "$p1" "$p2" "$p3" "$p4" || true
for f in pending garbage hello1 hello2; do echo "# attacker $f: $(cat "$out/$f.txt")"; done
grep -c 'more like this' "$("$PGCLUSTER" log ctld)" | sed 's/^/# summary lines in the log: /'
for tag in quiet flood; do
  python3 - "$out/$tag.json" "$tag" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
t = sys.argv[2]
def out(k, v, u=""):
    print(f"bench: hello_flood_{t}_{k} {v} {u}".rstrip())
out("sessions_open_after", "%.1f" % j["open_s"], "s")
out("report_to_grant_p50", "%.0f" % j["latency_ms"]["p50"], "ms")
out("report_to_grant_p99", "%.0f" % j["latency_ms"]["p99"], "ms")
out("sessions_refused", j["refused"])
out("sessions_dropped", j["dropped"])
out("budget_violations", j["violations"])
out("pg_controller_thread_cpu", "%.1f" % (100 * j["thread_share"]), "% of a core")
EOF
done
echo "# kept in $out"
