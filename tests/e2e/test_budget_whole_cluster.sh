#!/usr/bin/env bash
# End-to-end: the budget holds for the whole cluster, whatever runs on it. A real 3-node
# cluster (slurmctld with the controller, slurmdbd, slurmd with the node agent); every node a
# fake dual-socket Intel tree (2 x 205 W, 1230 W in all) with its power emulator; Budget=600,
# IdleCap=105, NodeFloor=120, PlainShare=usage. A sampler reads the caps in force in every
# tree every 0.1 s (and the controller's status every second). Phases:
#   A. a --power-aware job on n1 (compute-bound), a plain job on n2 (compute-bound too, no
#      option), n3 idle: the idle node sits at its idle cap, the plain node at most at its
#      fair share, the power-aware node gets the rest (more than the fair share: opting in
#      pays);
#   B. a plain job joins the power-aware one on n1 (each on its own package): what each gets;
#   C. n1's slurmd killed with -9 while both run, then started again: caps never raised, the
#      new agent finds the running steps (no new task) and steers the power-aware one again;
#   D. n2's slurmd stopped cleanly (SIGTERM) and started again: caps left as they are;
#   E. slurmctld restarted;
#   F. n3 leaves the groups (powergrad.conf, slurmctld restarted): its agent gives it back its
#      admin's settings, byte for byte; status lists it as not managed;
#   G. the plugin is removed from n2 (its slurmd stopped for good, the jobs over) and n2 taken
#      out of the groups: `powergrad release-node` refuses while the agent runs, then gives n2
#      back its admin's settings.
# At every sample after the first control period, the caps in force on the managed nodes sum
# to at most the budget. TAP.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

build=${PG_BUILDDIR:-$PG_TOP/build}
spank=$build/spank_powergrad/.libs/spank_powergrad.so
ctld_dir=$build/slurmctld_powergrad/.libs
pg=$build/tools/powergrad
hwemu=$build/hardware/testing/powergrad-hwemu
[ -f "$spank" ] || skip_all "SPANK plugin not built: $spank"
[ -f "$ctld_dir/prep_powergrad.so" ] ||
  skip_all "controller plugin not built (configure --with-slurm-source=DIR): $ctld_dir"
[ -x "$pg" ] || skip_all "powergrad command not built: $pg"
[ -x "$hwemu" ] || skip_all "powergrad-hwemu not built (make check builds it): $hwemu"
command -v python3 >/dev/null 2>&1 || skip_all "python3 is needed to sample and check"

pg_cluster_test_setup wholebudget
plan 29

# IdleCap at least the sum of the packages' lowest caps (2 x 51.25 W in these trees)
budget=600 period=1 lease=3 floor=120 idle=105
nodes="n1 n2 n3"
nodes_dir=$PG_CLUSTER_DIR/nodes
for n in $nodes; do
  mkdir -p "$nodes_dir/$n"
  "$hwemu" make-tree --root "$nodes_dir/$n/sys" --machine intel-server ||
    bail_out "powergrad-hwemu make-tree failed for $n"
  "$hwemu" run --root "$nodes_dir/$n/sys" --period-s 0.1 --pid-file "$nodes_dir/$n/hwemu.pid" \
    > "$nodes_dir/$n/hwemu.log" 2>&1 &
  pg_on_exit kill "$!"
done
# The admin's own settings, to compare after a node leaves management.
settings_of() {
  (cd "$nodes_dir/$1/sys/class/powercap" && for f in */constraint_* */enabled */*/constraint_* */*/enabled; do
    [ -f "$f" ] && printf '%s=%s\n' "$f" "$(cat "$f")"; done | sort)
}
admin_n3=$(settings_of n3)
admin_n2=$(settings_of n2)
emulate=$nodes_dir/emulate.txt
: > "$emulate"
port=$((PG_PORT_BASE + 3))
conf_common="Budget=$budget
ControlPeriod=$period
LeaseTime=$lease
NodeFloor=$floor
NodeMax=410
IdleCap=$idle
PlainShare=usage
AdminUsers=root"
export PG_CTLD_PLUGIN_DIR=$ctld_dir PG_SPANK_PLUGIN=$spank
export PG_POWERGRAD_CONF="$conf_common"
# No grant=: an agent holds the caps in force until the controller's first grant.
export PG_SPANK_ARGS="log_level=info period=0.5 state_dir=$nodes_dir/%n/state \
sysfs_root=$nodes_dir/%n/sys counters=emulated emulate=$emulate \
floor=$floor controller=127.0.0.1:$port"
if out=$("$PGCLUSTER" up 3 2>&1); then
  ok "3-node cluster with the controller, slurmdbd and fake dual-socket trees is up"
else
  not_ok "3-node cluster with the controller, slurmdbd and fake dual-socket trees is up" "$out"
  bail_out "the cluster did not come up"
fi
pg_cluster_env
export POWERGRAD_MUNGE_SOCKET=$PG_MUNGE_SOCKET
work=$PG_CLUSTER_DIR/work
mkdir -p "$work" && chmod 1777 "$work"
now() { python3 -c 'import time; print(time.time())'; }

status_json() { "$pg" status --json --controller "127.0.0.1:$port" --timeout 3 2>/dev/null; }
status_py() {
  local js
  js=$(status_json) || return 1
  python3 -c 'import json,sys
s = json.loads(sys.argv[1]); n = {x["name"]: x for x in s["nodes"]}
sys.exit(0 if eval(sys.argv[2]) else 1)' "$js" "$1"
}
pkg_w() { echo $(( $(cat "$nodes_dir/$1/sys/class/powercap/intel-rapl:$2/constraint_0_power_limit_uw") / 1000000 )); }
tree_w() { echo $(( $(pkg_w "$1" 0) + $(pkg_w "$1" 1) )); }
trees_line() { local n o=''; for n in $nodes; do o+="$n=$(pkg_w "$n" 0)+$(pkg_w "$n" 1) "; done; echo "$o"; }
_managed_sum() { local n t=0; for n in $nodes; do t=$((t + $(tree_w "$n"))); done; echo "$t"; }
managed_sum() { stable _managed_sum; }  # the caps at one moment

# --- the agents hold every node within the budget before any job runs (idle cap)
all_sessions='all(n[k]["connected"] and n[k]["grant_w"] is not None for k in ("n1","n2","n3"))'
check "all three node agents hold sessions and grants" wait_until 30 status_py "$all_sessions"
within() { [ "$(managed_sum)" -le "$budget" ]; }
if wait_until 20 within; then
  ok "with no job at all the caps in force sum to $(managed_sum) W <= $budget W ($(trees_line))"
else
  not_ok "with no job at all the caps in force sum to <= $budget W" "$(trees_line)"
fi
t_sampling=$(now)

# --- the sampler: every tree every 0.1 s, the status every second
samples=$PG_CLUSTER_DIR/samples.jsonl phases=$PG_CLUSTER_DIR/phases.txt
: > "$phases"
cat > "$PG_CLUSTER_DIR/sampler.py" <<'EOF'
import json, os, subprocess, sys, time
pg, port, nodes_dir, out, stop = sys.argv[1:6]
nodes = ["n1", "n2", "n3"]
def pkg(n, z):
    with open(f"{nodes_dir}/{n}/sys/class/powercap/intel-rapl:{z}/constraint_0_power_limit_uw") as f:
        return int(f.read()) / 1e6
def read_all():
    return {n: [pkg(n, 0), pkg(n, 1)] for n in nodes}
# One sample is a snapshot: the six files are read twice in a row until both passes agree.
# Each value then held from its first read to its second, so all held together between the
# passes. (A single pass on a busy machine can be preempted between two files while one node
# lowers its caps and another raises them after the confirmation: a sum that never was.)
def snapshot():
    a = read_all()
    for _ in range(50):
        b = read_all()
        if a == b:
            return b, True
        a = b
    return a, False
k = 0
with open(out, "a", buffering=1) as o:
    while not os.path.exists(stop):
        pkgs, consistent = snapshot()
        rec = {"t": time.time(), "pkgs": pkgs}
        if not consistent:
            rec["inconsistent"] = True
        if k % 10 == 0:
            try:
                r = subprocess.run([pg, "status", "--json", "--controller", f"127.0.0.1:{port}",
                                    "--timeout", "2"], capture_output=True, text=True, timeout=4)
                if r.returncode == 0:
                    s = json.loads(r.stdout)
                    rec["budget"] = s["budget_w"]
                    rec["nodes"] = {x["name"]: {k2: x.get(k2) for k2 in
                                    ("grant_w", "fair_share_w", "work", "jobs", "connected")}
                                    for x in s["nodes"]}
            except Exception:
                pass
        k += 1
        o.write(json.dumps(rec) + "\n")
        time.sleep(0.1)
EOF
# check.py SAMPLES PHASES BUDGET: per phase (lines "NAME T_FROM T_TO MANAGED_NODES"), the worst
# sum of caps in force over the managed nodes; exit 1 on any sample above the budget.
cat > "$PG_CLUSTER_DIR/check.py" <<'EOF'
import json, sys
samples, phases, budget = sys.argv[1], sys.argv[2], float(sys.argv[3])
only = sys.argv[4] if len(sys.argv) > 4 else None
recs = [json.loads(l) for l in open(samples)]
bad = []; out = []
for line in open(phases):
    name, t0, t1, managed = line.split()
    if only and name != only:
        continue
    t0, t1 = float(t0), float(t1); managed = managed.split(",")
    sums = [sum(sum(r["pkgs"][m]) for m in managed) for r in recs if t0 <= r["t"] <= t1]
    if not sums:
        bad.append(f"{name}: no samples"); continue
    worst = max(sums)
    out.append(f"{name}: {len(sums)} samples, worst {worst:.1f} W of {budget:.0f} W")
    if worst > budget + 0.5:
        over = [r for r in recs if t0 <= r["t"] <= t1 and sum(sum(r["pkgs"][m]) for m in managed) > budget + 0.5]
        bad.append(f"{name}: {len(over)} samples above the budget, first at {over[0]['t']:.3f}: "
                   f"{json.dumps(over[0]['pkgs'])}{' (not a consistent snapshot)' if over[0].get('inconsistent') else ''}")
print("; ".join(out + bad))
sys.exit(1 if bad else 0)
EOF
# means.py SAMPLES T_FROM T_TO: mean caps per node and package over a window
cat > "$PG_CLUSTER_DIR/means.py" <<'EOF'
import json, sys
samples, t0, t1 = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
recs = [json.loads(l) for l in open(samples) if t0 <= json.loads(l)["t"] <= t1]
out = {}
for n in ("n1", "n2", "n3"):
    for z in (0, 1):
        out[f"{n}.{z}"] = sum(r["pkgs"][n][z] for r in recs) / max(1, len(recs))
    out[n] = out[f"{n}.0"] + out[f"{n}.1"]
fair = [r["nodes"]["n1"]["fair_share_w"] for r in recs if "nodes" in r]
out["fair"] = fair[-1] if fair else 0.0
print(json.dumps(out))
EOF
python3 "$PG_CLUSTER_DIR/sampler.py" "$pg" "$port" "$nodes_dir" "$samples" "$PG_CLUSTER_DIR/sampler.stop" &
sampler=$!
pg_on_exit touch "$PG_CLUSTER_DIR/sampler.stop"
phase() { echo "$1 $2 $(now) $3" >> "$phases"; }  # NAME T_FROM MANAGED
check_phase() {  # NAME DESCRIPTION
  local out rc
  out=$(python3 "$PG_CLUSTER_DIR/check.py" "$samples" "$phases" "$budget" "$1") && rc=0 || rc=$?
  if [ "$rc" = 0 ]; then ok "$2: within the budget at every sample ($out)"
  else not_ok "$2: within the budget at every sample" "$out" "$(trees_line)"; fi
}
mean() { python3 "$PG_CLUSTER_DIR/means.py" "$samples" "$1" "$2"; }
# settled EXPR: the means of the last 4 s of samples satisfy EXPR (Python over the names
# means.py prints, dots as underscores: n1, n1_0, fair...). The phases wait for it, however
# long the agents take to learn on a busy machine, and then measure over a fresh window.
settled() {
  local t; t=$(now)
  mean "$(python3 -c "print($t - 4)")" "$t" | python3 -c 'import json, sys
m = {k.replace(".", "_"): v for k, v in json.load(sys.stdin).items()}
sys.exit(0 if m["fair"] > 0 and eval(sys.argv[1], {}, m) else 1)' "$1"
}
jget() { python3 -c 'import json,sys; print(round(json.loads(sys.argv[1])[sys.argv[2]], 1))' "$1" "$2"; }

# --- A: a power-aware job on n1, a plain job on n2, n3 idle
submit() {  # NAME NODE [OPTION...]: held until its workload is written
  local name=$1 node=$2; shift 2
  sbatch --parsable -H "$@" -N1 -w "$node" -J "$name" -D "$work" -o /dev/null \
    --wrap "srun $* bash -c 'while [ ! -e $work/STOP ]; do sleep 0.5; done'"
}
ja=$(submit aware n1 --power-aware=throughput) || bail_out "sbatch failed"
jp=$(submit plain n2) || bail_out "sbatch failed"
pg_on_exit scancel "$ja" "$jp"
{
  echo "$ja memory_share=0.1,busy_cpus=4,zone=intel-rapl:0"
  echo "$jp memory_share=0.1,busy_cpus=4,zone=intel-rapl:0"
} > "$emulate"
scontrol release "$ja" "$jp"
running() { [ "$(squeue -h -t R -j "$1" | wc -l)" = "$2" ]; }
check "power-aware job $ja on n1 and plain job $jp on n2 run" wait_until 30 running "$ja,$jp" 2
wait_until 90 settled "n3 <= $idle + 1 and n2 <= fair + 1 and n1 > fair + 20" ||
  diag "A: the caps did not settle as expected within 90 s (measured anyway)"
t_w=$(now); sleep 8
m=$(mean "$t_w" "$(now)")
phase A "$t_sampling" n1,n2,n3
n1=$(jget "$m" n1) n2=$(jget "$m" n2) n3=$(jget "$m" n3) fair=$(jget "$m" fair)
diag "A (means over 8 s): power-aware n1 $n1 W, plain n2 $n2 W, idle n3 $n3 W; fair share $fair W"
is "$(python3 -c "print($n3 <= $idle + 1)")" True "A: the idle node is held at its idle cap ($n3 W <= $idle W)"
is "$(python3 -c "print($n2 <= $fair + 1)")" True "A: the plain node gets at most its fair share ($n2 W <= $fair W)"
is "$(python3 -c "print($n1 > $fair + 20)")" True \
  "A: opting in pays: the power-aware node gets more than the fair share ($n1 W > $fair W)"
check_phase A "A (power-aware, plain, idle)"
echo "A n1=$n1 n2=$n2 n3=$n3 fair=$fair" >> "$PG_CLUSTER_DIR/figures.txt"

# --- B: a plain job shares n1 with the power-aware one (each on its own package)
t_b=$(now)
jq=$(submit plain2 n1) || bail_out "sbatch failed"
pg_on_exit scancel "$jq"
echo "$jq memory_share=0.1,busy_cpus=4,zone=intel-rapl:1" >> "$emulate"
scontrol release "$jq"
check "a plain job $jq joins the power-aware one on n1" wait_until 30 running "$jq" 1
wait_until 90 settled "n1_0 > n1_1" ||
  diag "B: the caps did not settle as expected within 90 s (measured anyway)"
t_w=$(now); sleep 8
m=$(mean "$t_w" "$(now)")
phase B "$t_b" n1,n2,n3
b_aware=$(jget "$m" n1.0) b_plain=$(jget "$m" n1.1) b_n2=$(jget "$m" n2) b_n3=$(jget "$m" n3)
diag "B (means over 8 s): n1 power-aware package $b_aware W, n1 plain package $b_plain W; plain n2 $b_n2 W; idle n3 $b_n3 W"
is "$(python3 -c "print($b_aware > $b_plain)")" True \
  "B: on the shared node the power-aware job's package gets more than the plain one's ($b_aware W vs $b_plain W)"
check_phase B "B (a power-aware and a plain job on one node)"
echo "B n1.aware=$b_aware n1.plain=$b_plain n2=$b_n2 n3=$b_n3" >> "$PG_CLUSTER_DIR/figures.txt"

# --- C: kill -9 of n1's slurmd with both jobs running, then start it again
log_n1=$("$PGCLUSTER" log n1)
# What the controller counts for a node (status in_force_w): its caps may never exceed it.
counted_w() {
  status_json | python3 -c 'import json,sys
print([x for x in json.load(sys.stdin)["nodes"] if x["name"] == sys.argv[1]][0]["in_force_w"])' "$1"
}
t_c=$(now)
"$PGCLUSTER" kill-slurmd n1 KILL >/dev/null 2>&1 || bail_out "could not kill slurmd n1"
at_kill=$(tree_w n1)
sleep 3
after_kill=$(tree_w n1) counted_n1=$(counted_w n1)
is "$(python3 -c "print($after_kill <= $at_kill and $after_kill <= $counted_n1 + 1)")" True \
  "C: n1's caps not raised while its slurmd is dead ($at_kill W at the kill, $after_kill W 3 s later; the controller counts $counted_n1 W)"
lines_before=$(wc -l < "$log_n1")
"$PGCLUSTER" start-slurmd n1 >/dev/null 2>&1 || bail_out "could not start slurmd n1"
found() { tail -n +"$((lines_before + 1))" "$log_n1" | grep -q "running steps of an earlier agent on n1: .*$ja\.0"; }
if wait_until 20 found; then
  ok "C: the new agent found the running steps ($(tail -n +"$((lines_before + 1))" "$log_n1" | grep -o 'running steps of an earlier agent.*' | head -n1))"
else
  not_ok "C: the new agent found the running steps" "$(tail -n 20 "$log_n1")"
fi
steered="n[\"n1\"][\"work\"] == \"power-aware\" and $ja in n[\"n1\"][\"jobs\"] and n[\"n1\"][\"connected\"]"
check "C: the power-aware job is steered again after the restart (no new task)" wait_until 20 status_py "$steered"
sleep 3
phase C "$t_c" n1,n2,n3
check_phase C "C (kill -9 and restart of n1's slurmd)"

# --- D: clean stop and start of n2's slurmd
log_n2=$("$PGCLUSTER" log n2)
t_d=$(now)
"$PGCLUSTER" kill-slurmd n2 TERM >/dev/null 2>&1 || bail_out "could not stop slurmd n2"
after_n2=$(tree_w n2) counted_n2=$(counted_w n2)
is "$(python3 -c "print($after_n2 <= $counted_n2 + 1)")" True \
  "D: n2's caps after its slurmd stopped are within what the controller counts ($after_n2 W, counted $counted_n2 W)"
sleep 2
is "$(tree_w n2)" "$after_n2" "D: while n2's slurmd is stopped its caps stay as they are ($after_n2 W)"
check "D: the agent said it left the caps" grep -q "agent stopping on managed node n2: caps left as they are" "$log_n2"
"$PGCLUSTER" start-slurmd n2 >/dev/null 2>&1 || bail_out "could not start slurmd n2"
check "D: n2 reports again" wait_until 20 status_py "n[\"n2\"][\"connected\"] and $jp in n[\"n2\"][\"jobs\"]"
sleep 2
phase D "$t_d" n1,n2,n3
check_phase D "D (clean stop and start of n2's slurmd)"

# --- E: slurmctld restart
t_e=$(now)
"$PGCLUSTER" restart-slurmctld >/dev/null 2>&1 || bail_out "slurmctld did not come back"
check "E: the agents reconnect to the restarted controller" wait_until 40 status_py "$all_sessions"
sleep 3
phase E "$t_e" n1,n2,n3
check_phase E "E (slurmctld restart)"

# --- F: n3 leaves the groups: not managed, its admin's settings back
t_f=$(now)
echo "Group=rack Nodes=n[1-2]" >> "$PG_CLUSTER_DIR/etc/powergrad.conf"
"$PGCLUSTER" restart-slurmctld >/dev/null 2>&1 || bail_out "slurmctld did not come back"
restored() { [ "$(settings_of n3)" = "$admin_n3" ]; }
check "F: n3 out of the groups: its agent restored its admin's settings byte for byte" wait_until 30 restored
check "F: n3's agent logged why" grep -q "node n3 leaves PowerGrad's management" "$("$PGCLUSTER" log n3)"
unmanaged_listed() {
  status_json | python3 -c 'import json,sys
s = json.load(sys.stdin)
sys.exit(0 if [u["name"] for u in s["unmanaged"]] == ["n3"] and "n3" not in [x["name"] for x in s["nodes"]] else 1)'
}
check "F: powergrad status lists n3 apart, as not managed" wait_until 10 unmanaged_listed
sleep 2
phase F "$t_f" n1,n2
check_phase F "F (n3 leaves management; n1 and n2 managed)"

touch "$PG_CLUSTER_DIR/sampler.stop"
wait "$sampler" 2>/dev/null || true
out=$(python3 "$PG_CLUSTER_DIR/check.py" "$samples" "$phases" "$budget") && rc=0 || rc=$?
diag "all phases: $out"
diag "$(cat "$PG_CLUSTER_DIR/figures.txt")"
touch "$work/STOP"
ended() { [ -z "$(squeue -h -j "$ja,$jp,$jq")" ]; }
wait_until 60 ended || diag "jobs still listed: $(squeue -j "$ja,$jp,$jq" 2>&1)"

# --- G: the plugin removed from n2: release-node gives it back its admin's settings
release_n2() { "$pg" release-node --state-dir "$nodes_dir/n2/state" --sysfs-root "$nodes_dir/n2/sys" 2>&1; }
out=$(release_n2) && rc=0 || rc=$?
if [ "$rc" = 1 ] && [[ "$out" == *"a node agent runs with state folder"* ]]; then
  ok "G: release-node refuses while n2's agent runs"
else
  not_ok "G: release-node refuses while n2's agent runs" "exit $rc: $out"
fi
"$PGCLUSTER" kill-slurmd n2 TERM >/dev/null 2>&1 || bail_out "could not stop slurmd n2"
is "$(python3 -c "print($(tree_w n2) <= $budget)")" True "G: n2's caps still held after its slurmd stopped ($(tree_w n2) W)"
sed -i 's/^Group=rack Nodes=n\[1-2\]$/Group=rack Nodes=n1/' "$PG_CLUSTER_DIR/etc/powergrad.conf"
"$PGCLUSTER" restart-slurmctld >/dev/null 2>&1 || bail_out "slurmctld did not come back"
out=$(release_n2) && rc=0 || rc=$?
if [ "$rc" = 0 ] && [ "$(settings_of n2)" = "$admin_n2" ] && [ ! -e "$nodes_dir/n2/state/saved-caps" ] &&
  [ ! -e "$nodes_dir/n2/state/managed" ]; then
  ok "G: release-node gave n2 back its admin's settings byte for byte"
else
  not_ok "G: release-node gave n2 back its admin's settings byte for byte" "exit $rc: $out" \
    "$(diff <(echo "$admin_n2") <(settings_of n2))"
fi
