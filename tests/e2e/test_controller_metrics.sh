#!/usr/bin/env bash
# End-to-end: the controller's Prometheus metrics. The controller plugin in slurmctld writes
# MetricsFile= (a textfile for node_exporter's textfile collector) every MetricsInterval=;
# `promtool check metrics` finds nothing to complain about; Debian's prometheus-node-exporter
# serves the file and a real Prometheus (Debian's prometheus) scrapes it; the values read back
# through Prometheus' HTTP query API are those of `powergrad status --json`, also after an
# admin changes the budget; every query of the example Grafana dashboard
# (etc/grafana-powergrad.json) is valid PromQL for that Prometheus, and its budget panel has
# data. TAP.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

build=${PG_BUILDDIR:-$PG_TOP/build}
ctld_dir=$build/slurmctld_powergrad/.libs
pg=$build/tools/powergrad
[ -f "$ctld_dir/prep_powergrad.so" ] ||
  skip_all "controller plugin not built (configure --with-slurm-source=DIR): $ctld_dir"
[ -x "$pg" ] || skip_all "powergrad command not built: $pg"
for cmd in python3 promtool prometheus prometheus-node-exporter; do
  command -v "$cmd" >/dev/null 2>&1 ||
    skip_all "$cmd is needed (scripts/install-deps.sh installs prometheus and prometheus-node-exporter)"
done

pg_cluster_test_setup ctlmetrics
plan 11

# node_exporter's textfile folder, and Prometheus' own files (outside the cluster folder,
# which pgcluster creates itself).
work=$(mktemp -d /tmp/pg-metrics.XXXXXX)
pg_on_exit rm -rf "$work"
textfile_dir=$work/textfile
mkdir -p "$textfile_dir"
prom_file=$textfile_dir/powergrad.prom
export PG_CTLD_PLUGIN_DIR=$ctld_dir PG_POWERGRAD_CONF="Budget=600
ControlPeriod=1
NodeFloor=50
NodeMax=300
AdminUsers=root
MetricsFile=$prom_file
MetricsInterval=1
Group=rack1 Nodes=n[1-2] Limit=500"
if out=$("$PGCLUSTER" up 2 2>&1); then
  ok "cluster with the controller plugin and MetricsFile= is up"
else
  not_ok "cluster with the controller plugin and MetricsFile= is up" "$out"
  bail_out "the cluster did not come up"
fi
pg_cluster_env
export POWERGRAD_MUNGE_SOCKET=$PG_MUNGE_SOCKET

if wait_until 30 test -s "$prom_file"; then
  ok "the controller writes the metrics file"
else
  not_ok "the controller writes the metrics file" "$(grep powergrad "$("$PGCLUSTER" log ctld)" | tail -n 5)"
fi
if out=$(promtool check metrics < "$prom_file" 2>&1); then
  ok "promtool check metrics: clean"
else
  not_ok "promtool check metrics: clean" "$out"
fi

# node_exporter with the textfile collector only, and Prometheus scraping it every second.
ne_port=$((PG_PORT_BASE + 50))
prom_port=$((PG_PORT_BASE + 51))
prometheus-node-exporter --web.listen-address="127.0.0.1:$ne_port" --collector.disable-defaults \
  --collector.textfile --collector.textfile.directory="$textfile_dir" \
  > "$work/node-exporter.log" 2>&1 &
ne_pid=$!
pg_on_exit kill "$ne_pid"
cat > "$work/prometheus.yml" <<YML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: powergrad
    static_configs:
      - targets: ['127.0.0.1:$ne_port']
YML
prometheus --config.file="$work/prometheus.yml" \
  --storage.tsdb.path="$work/tsdb" --web.listen-address="127.0.0.1:$prom_port" \
  > "$work/prometheus.log" 2>&1 &
prom_pid=$!
pg_on_exit kill "$prom_pid"

# query EXPR: the value of Prometheus' instant query (one series; empty if none).
query() {
  python3 - "$prom_port" "$1" <<'PY'
import json, sys, urllib.parse, urllib.request
port, expr = sys.argv[1], sys.argv[2]
url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
r = json.load(urllib.request.urlopen(url, timeout=5))
res = r["data"]["result"]
if len(res) == 1:
    print(float(res[0]["value"][1]))
PY
}
status() { "$pg" status --json 2>/dev/null; }
from_status() { status | python3 -c "import json,sys; s=json.load(sys.stdin); print(float($1))"; }
query_is() { [ "$(query "$1" 2>/dev/null)" = "$2" ]; }

budget=$(from_status 's["budget_w"]')
if wait_until 90 query_is powergrad_budget_watts "$budget"; then
  ok "Prometheus scraped the budget through node_exporter: $budget W, as status says"
else
  not_ok "Prometheus scraped the budget through node_exporter" "status: $budget" \
    "prometheus: '$(query powergrad_budget_watts 2>&1)'" "$(tail -n 5 "$work/prometheus.log")" \
    "$(tail -n 5 "$work/node-exporter.log")"
fi
for n in n1 n2; do
  want=$(from_status "[x for x in s['nodes'] if x['name']=='$n'][0]['max_w']")
  is "$(query "powergrad_node_max_watts{node=\"$n\",group=\"rack1\"}")" "$want" \
    "node $n's maximum, from Prometheus, is status's"
done
is "$(query 'powergrad_group_limit_watts{group="rack1"}')" \
  "$(from_status '[g for g in s["groups"] if g["name"]=="rack1"][0]["limit_w"]')" \
  "the group's limit, from Prometheus, is status's"

out=$("$pg" set-budget 550 2>&1) || true
if wait_until 60 query_is powergrad_budget_watts 550.0 &&
   [ "$(from_status 's["budget_w"]')" = 550.0 ]; then
  ok "after set-budget 550 Prometheus shows the new budget, as status does"
else
  not_ok "after set-budget 550 Prometheus shows the new budget, as status does" "$out" \
    "prometheus: $(query powergrad_budget_watts 2>&1)"
fi
if wait_until 30 query_is powergrad_budget_changes_total 1.0; then
  ok "the budget change is counted (powergrad_budget_changes_total 1)"
else
  not_ok "the budget change is counted" "$(query powergrad_budget_changes_total 2>&1)"
fi
# The control loop runs: its period counter rises in Prometheus.
p1=$(query powergrad_control_periods_total)
periods_rose() { python3 -c "import sys; sys.exit(0 if float('$(query powergrad_control_periods_total)') > float('$p1' or 0) else 1)"; }
if [ -n "$p1" ] && wait_until 30 periods_rose; then
  ok "powergrad_control_periods_total rises ($p1 -> $(query powergrad_control_periods_total))"
else
  not_ok "powergrad_control_periods_total rises" "first: '$p1'"
fi

# The example dashboard: every target's expression is accepted by Prometheus' query API,
# and the budget-vs-caps panel's queries return data.
dash=$PG_TOP/etc/grafana-powergrad.json
if out=$(python3 - "$prom_port" "$dash" <<'PY' 2>&1
import json, sys, urllib.error, urllib.parse, urllib.request
port, path = sys.argv[1], sys.argv[2]
bad = []
for panel in json.load(open(path))["panels"]:
    for t in panel["targets"]:
        url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": t["expr"]})
        try:
            r = json.load(urllib.request.urlopen(url, timeout=5))
        except urllib.error.HTTPError as e:
            bad.append(f"{panel['title']}: {t['expr']}: {e.read().decode()}")
            continue
        if r.get("status") != "success":
            bad.append(f"{panel['title']}: {t['expr']}: {r}")
        elif panel["id"] == 1 and t["refId"] in "ABC" and not r["data"]["result"]:
            bad.append(f"{panel['title']}: {t['expr']}: no data")
print("\n".join(bad))
sys.exit(1 if bad else 0)
PY
); then
  ok "the Grafana dashboard's queries are valid PromQL and its budget panel has data"
else
  not_ok "the Grafana dashboard's queries are valid PromQL and its budget panel has data" "$out"
fi
