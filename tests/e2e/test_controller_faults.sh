#!/usr/bin/env bash
# End-to-end: forged, replayed, tampered, truncated and oversized messages against the live
# controller in slurmctld (tests/tools/pg-rogue speaks the protocol with the real classes,
# then breaks it). Two nodes with fake powercap trees whose agents hold sessions and leases.
# Each attack must be refused with the protocol's error code, logged in slurmctld's log by
# that code's name (protocol/status.hpp), and leave slurmctld up, the agents' sessions open
# and the grants renewed every period:
#   - a HELLO with a credential from a munged with another key        -> cred_invalid
#   - a node HELLO with a valid credential of an ordinary user (nobody) -> uid_not_allowed
#   - a recorded HELLO sent again on a new connection                   -> cred_replayed
#   - a sealed frame sent twice in a session (same sequence number)     -> replayed
#   - a sealed frame with one bit of its MAC flipped                    -> bad_mac
#   - a HELLO whose header declares fewer bytes than its fields         -> payload_truncated
#   - half a frame, then end of stream                                  -> closed (or truncated)
#   - a header declaring a 64 MiB payload                               -> oversize
# Before that, the controller's port is held by another program when slurmctld starts: the
# controller says so, tries again with backoff and listens once the port is free, and
# status then shows how long it was taken. After the attacks, floods of garbage HELLOs and
# of an ordinary user's set-budget requests are summarised in the log (a few lines each),
# not written one line per event. TAP.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

build=${PG_BUILDDIR:-$PG_TOP/build}
spank=$build/spank_powergrad/.libs/spank_powergrad.so
ctld_dir=$build/slurmctld_powergrad/.libs
pg=$build/tools/powergrad
rogue=$build/tests/tools/pg-rogue
hwemu=$build/hardware/testing/powergrad-hwemu
[ -f "$spank" ] || skip_all "SPANK plugin not built: $spank"
[ -f "$ctld_dir/prep_powergrad.so" ] ||
  skip_all "controller plugin not built (configure --with-slurm-source=DIR): $ctld_dir"
[ -x "$pg" ] || skip_all "powergrad command not built: $pg"
[ -x "$rogue" ] || skip_all "pg-rogue not built (make check builds it): $rogue"
[ -x "$hwemu" ] || skip_all "powergrad-hwemu not built (make check builds it): $hwemu"
command -v python3 >/dev/null 2>&1 || skip_all "python3 is needed to read the status JSON"

pg_cluster_test_setup ctlfaults
plan 25

nodes_dir=$PG_CLUSTER_DIR/nodes
for n in n1 n2; do
  mkdir -p "$nodes_dir/$n"
  "$hwemu" make-tree --root "$nodes_dir/$n/sys" --machine intel-server ||
    bail_out "powergrad-hwemu make-tree failed for $n"
done
# Not pgcluster's own controller port (base + 3), which 'up' wants free: here another
# program holds this one when slurmctld starts.
port=$((PG_PORT_BASE + 50))
export PG_CTLD_PLUGIN_DIR=$ctld_dir PG_SPANK_PLUGIN=$spank
export PG_POWERGRAD_CONF='Budget=600
ControlPeriod=1
LeaseTime=5
NodeFloor=110
NodeMax=410
AdminUsers=root
Listen=127.0.0.1:'"$port"
export PG_SPANK_ARGS="log_level=info period=0.5 state_dir=$nodes_dir/%n/state \
sysfs_root=$nodes_dir/%n/sys controller=127.0.0.1:$port"
# Another program holds the controller's port while slurmctld starts.
python3 -c 'import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1); print("holding", flush=True); time.sleep(600)' \
  "$port" > "$nodes_dir/holder.out" 2>&1 &
holder=$!
stop_holder() { kill "$holder" 2>/dev/null || true; }
pg_on_exit stop_holder
holding() { grep -q holding "$nodes_dir/holder.out"; }
wait_until 10 holding || bail_out "could not hold port $port"
if out=$("$PGCLUSTER" up 2 2>&1); then
  ok "cluster with the controller and two node agents is up"
else
  not_ok "cluster with the controller and two node agents is up" "$out"
  bail_out "the cluster did not come up"
fi
pg_cluster_env
export POWERGRAD_MUNGE_SOCKET=$PG_MUNGE_SOCKET
log_ctld=$("$PGCLUSTER" log ctld)
ctld_pid=$(cat "$PG_CLUSTER_DIR/run/slurmctld.pid" 2>/dev/null || pgrep -f "slurmctld -D -f $SLURM_CONF" | head -n1)

status_json() { "$pg" status --json --controller "127.0.0.1:$port" 2>/dev/null; }

# --- the port is taken: the controller says so, retries, and listens once it is free
ctld_logged() { grep -qE -- "$1" "$log_ctld"; }
taken="powergrad: .*powergrad.conf: cannot listen on 127.0.0.1:$port: .*in use.*power control is off until it can.*\`powergrad status\` cannot reach the controller meanwhile; trying again in 1 s"
if wait_until 20 ctld_logged "$taken" && wait_until 10 ctld_logged "still cannot listen on 127.0.0.1:$port \(2 attempts since "; then
  ok "port taken: slurmctld's log says so, what it means, and each retry"
else
  not_ok "port taken: slurmctld's log says so, what it means, and each retry" "$(grep powergrad "$log_ctld" | tail -n 5)"
fi
out=$("$pg" status --controller "127.0.0.1:$port" --timeout 3 2>&1) && rc=0 || rc=$?
if [ "$rc" = 1 ] && grep -q "While the controller cannot listen (e.g. another program holds the port), it retries and slurmctld's log says why" <<<"$out"; then
  ok "powergrad status cannot reach it and points at slurmctld's log"
else
  not_ok "powergrad status cannot reach it and points at slurmctld's log" "exit $rc" "$out"
fi
sleep 4
stop_holder
listening="powergrad: controller running with .*listening on 127.0.0.1:$port.*; listening after [0-9]+ failed attempts since "
if wait_until 40 ctld_logged "$listening"; then
  ok "once the port is free the controller listens, and says after how many attempts"
else
  not_ok "once the port is free the controller listens, and says after how many attempts" "$(grep powergrad "$log_ctld" | tail -n 5)"
fi
out=$("$pg" status --controller "127.0.0.1:$port" 2>&1) && rc=0 || rc=$?
if [ "$rc" = 0 ] && grep -qE "^listening: yes, on 127.0.0.1:$port since .*, after [0-9]+ failed attempts from .*power control was off meanwhile" <<<"$out"; then
  ok "powergrad status shows the attempts that failed before it listened"
else
  not_ok "powergrad status shows the attempts that failed before it listened" "exit $rc" "$out"
fi
# True when every node has a session, a grant, and a lease renewed within 2.5 s.
granting() {
  status_json | python3 -c 'import json,sys
s = json.load(sys.stdin)
ok = all(n.get("grant_w") is not None and n.get("lease_age_s") is not None
         and n["lease_age_s"] < 2.5 and not n.get("silent") for n in s["nodes"])
sys.exit(0 if ok and len(s["nodes"]) == 2 else 1)'
}
if wait_until 30 granting; then
  ok "both node agents hold sessions and fresh leases"
else
  not_ok "both node agents hold sessions and fresh leases" "$(status_json)" \
    "$(grep powergrad "$log_ctld" | tail -n 10)"
fi
# Lines the controller logged after a mark, to look only at one attack's lines.
mark() { wc -l < "$log_ctld"; }
since() { tail -n "+$(( $1 + 1 ))" "$log_ctld"; }
logged_since() { since "$1" | grep -qE -- "$2"; }
# attack DESC EXPECT_OUTPUT_RE LOG_RE CMD...: runs CMD, checks its output and the log.
attack() {
  local desc=$1 want_out=$2 want_log=$3 m out; shift 3
  m=$(mark)
  out=$("$@" 2>&1) || true
  if grep -qE -- "$want_out" <<<"$out" && wait_until 5 logged_since "$m" "$want_log"; then
    ok "$desc"
  else
    not_ok "$desc" "client: $out" "want client output /$want_out/ and log /$want_log/" \
      "log since: $(since "$m" | grep powergrad | tail -n 5)"
  fi
}

# --- (a) forged: a credential from a munged with a different key
rm_dir=$PG_CLUSTER_DIR/rogue-munge
mkdir -p "$rm_dir" && chown munge:munge "$rm_dir" && chmod 755 "$rm_dir"
setpriv --reuid=munge --regid=munge --init-groups mungekey --create --keyfile="$rm_dir/munge.key" \
  >/dev/null 2>&1 || bail_out "mungekey failed for the rogue munged"
setpriv --reuid=munge --regid=munge --init-groups munged -F --socket="$rm_dir/munge.socket" \
  --key-file="$rm_dir/munge.key" --pid-file="$rm_dir/munged.pid" --log-file="$rm_dir/munged.log" \
  --seed-file="$rm_dir/munged.seed" >/dev/null 2>&1 &
rogue_munged=$!
pg_on_exit kill "$rogue_munged"
rm_up() { [ -S "$rm_dir/munge.socket" ]; }
wait_until 10 rm_up || bail_out "the rogue munged did not start"
attack "HELLO with a credential made under another munge key: refused (cred_invalid), logged" \
  "^refused cred_invalid" "refused: cred_invalid" \
  env POWERGRAD_MUNGE_SOCKET="$rm_dir/munge.socket" "$rogue" "127.0.0.1:$port" hello --role node --name n1

# --- (a) forged: a valid credential, but of an ordinary user claiming to be a node
attack "node HELLO from uid nobody (valid credential): refused (uid_not_allowed), logged" \
  "^refused uid_not_allowed" "refused: uid_not_allowed" \
  runuser -u nobody -- env POWERGRAD_MUNGE_SOCKET="$PG_MUNGE_SOCKET" "$rogue" "127.0.0.1:$port" hello --role node --name n2

# --- (b) replays
attack "a recorded HELLO sent again: refused (cred_replayed), logged" \
  "^replayed: refused cred_replayed" "refused: cred_replayed" \
  "$rogue" "127.0.0.1:$port" replay-hello
attack "a sealed frame sent twice (same sequence number): session dropped (replayed), logged" \
  "^replayed: (error replayed|closed)" "session closed: .*: replayed" \
  "$rogue" "127.0.0.1:$port" replay-seq
attack "a sealed frame with a flipped MAC bit: session dropped (bad_mac), logged" \
  "^tampered: (error bad_mac|closed)" "session closed: .*: bad_mac" \
  "$rogue" "127.0.0.1:$port" tamper

# --- (c) truncated and oversized frames
attack "a HELLO whose fields run past its declared length: refused (payload_truncated), logged" \
  "^truncated: (refused payload_truncated|closed)" "refused: payload_truncated" \
  "$rogue" "127.0.0.1:$port" truncated
attack "half a frame, then end of stream: connection refused (closed), logged" \
  "^partial: (refused truncated|closed)" "refused: (truncated|closed)" \
  "$rogue" "127.0.0.1:$port" partial
attack "a header declaring a 64 MiB payload: refused (oversize), logged" \
  "^oversize: (refused oversize|closed)" "refused: oversize" \
  "$rogue" "127.0.0.1:$port" oversize

# --- and an honest admin session still works
out=$("$rogue" "127.0.0.1:$port" hello --role admin --name "$(hostname)" 2>&1) || true
if grep -qE "^welcome session=[0-9]+ uid=0$" <<<"$out"; then
  ok "an honest root HELLO after all that gets a WELCOME"
else
  not_ok "an honest root HELLO after all that gets a WELCOME" "$out"
fi

# --- slurmctld survived, the agents' sessions were untouched, the grants go on
if [ -n "$ctld_pid" ] && pg_pid_alive "$ctld_pid" && scontrol ping 2>&1 | grep -q UP; then
  ok "slurmctld is still up (same process)"
else
  not_ok "slurmctld is still up (same process)" "pid $ctld_pid" "$(scontrol ping 2>&1)"
fi
is "$(grep -c 'node session closed: n[12] ' "$log_ctld" || true)" "0" \
  "the real agents' sessions (n1, n2) were never closed"
sleep 2  # two periods: the leases must have been renewed since the attacks
check "the controller keeps renewing both nodes' leases (lease age < 2.5 s)" wait_until 20 granting
out=$("$pg" set-budget 500 --controller "127.0.0.1:$port" 2>&1) && rc=0 || rc=$?
is "$rc $out" "0 powergrad: budget set to 500.0 W (was 600.0 W)" "the admin command still changes the budget"
grant_sum() {
  status_json | python3 -c 'import json,sys
s = json.load(sys.stdin)
print(sum(n["grant_w"] for n in s["nodes"] if n.get("grant_w") is not None))'
}
within() { awk -v g="$(grant_sum)" 'BEGIN { exit !(g != "" && g <= 500 + 1e-6) }'; }
check "the grants follow the new budget (sum <= 500 W)" wait_until 30 within
out=$(timeout 60 srun -N2 true 2>&1) && rc=0 || rc=$?
is "$rc" "0" "jobs still run on both nodes${out:+: $out}"
is "$(grep -c 'powergrad: controller thread stopped' "$log_ctld" || true)" "0" \
  "the controller thread never stopped"

# --- floods: garbage HELLOs, and an ordinary user's set-budget requests, 10 s each
flood() {  # DESC LINE_RE MAX_LINES CMD...: the log grows by at most MAX_LINES lines
  local desc=$1 re=$2 max=$3 m b0 b1 out lines; shift 3
  m=$(mark); b0=$(stat -c %s "$log_ctld")
  out=$("$@" 2>&1) || true
  sleep 11  # the summary of the last 10 s
  b1=$(stat -c %s "$log_ctld")
  lines=$(since "$m" | grep -cE -- "$re" || true)
  diag "$desc: $out; slurmctld's log grew by $((b1 - b0)) bytes, $lines lines about it"
  if [ "$lines" -ge 1 ] && [ "$lines" -le "$max" ] && since "$m" | grep -qE "[0-9]+ more like this in the last 1[0-9] s; last: .*$re"; then
    ok "$desc: summarised ($lines lines)"
  else
    not_ok "$desc: summarised ($lines lines)" "$(since "$m" | grep powergrad | head -n 5)"
  fi
}
flood "garbage HELLO flood" "refused: bad_magic" 4 "$rogue" "127.0.0.1:$port" flood-garbage 10
flood "set-budget flood by nobody" "set-budget refused: uid 65534" 4 \
  runuser -u nobody -- env POWERGRAD_MUNGE_SOCKET="$PG_MUNGE_SOCKET" "$rogue" "127.0.0.1:$port" flood-set-budget 10
check "the controller keeps renewing both nodes' leases after the floods" wait_until 10 granting
