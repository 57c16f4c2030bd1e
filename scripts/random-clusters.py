#!/usr/bin/env python3
"""Random clusters for powergrad-sim: PowerGrad on clusters nobody tuned it on.

The shipped scenarios are what PowerGrad was developed against. This script writes clusters
at random (socket types, workloads with redrawn service times and memory shares, services,
loads, plain services, counters, transport delay, progress signal, arrivals, budget) and
runs uniform, usage, powergrad and the oracle on each, so that every figure the README gives
for "random clusters" can be rebuilt, and new sets checked that no change was tuned on.

  scripts/random-clusters.py generate --seed S [--count N] --out DIR
      writes DIR/rndS-K.yaml for K = 0..N-1 (default 24). The same seed always gives the
      same files (Python's random.Random, seeded per cluster); the README's sets are seeds
      71 to 79.
  scripts/random-clusters.py run [--sim PATH] [--seeds 1,2] [--jobs J] [--out FILE] DIR...
      runs every DIR/*.yaml with the four policies on each seed; prints one line per run,
      then per set (the scenarios' names before their last '-'): runs, runs the simulator
      refused (a budget that falls below the sockets' floors), harm, the oracle's harm
      under the same limits (and how many runs have both), runs under 99.5% of
      the budget where some socket wanted more, the share of the oracle's gain (runs where
      the oracle gains at least 3% over usage: how many, how many under 80%, the median),
      how far powergrad follows bursts (burst-follow, below), powergrad's mean and p99
      against the better of uniform and usage, averaged over the runs, and budget
      violations; with more than one set, the same over all of them
      ("all"). --out also writes the lines to FILE. --set passes a
      setting to every run (powergrad-sim --set KEY=VALUE).
  scripts/random-clusters.py summary FILE...
      the per-set summary of lines an earlier run wrote (the same as the run printed: both
      are computed from the lines as written).

A run line: scenario, seed, powergrad's mean and p99 latency reduction against the better of
uniform and usage (negative: worse), its share of the oracle's mean gain over usage (nan
where the oracle gains under 1%), the oracle's gain, the budget held as caps over the
measured ticks and over the ticks in which some socket wanted more, the budget violations
of all four policies, the oracle's p99 and mean against the better baseline, ORACLE-HARM
where the oracle's are over the harm limits below, and HARM where powergrad's mean is more
than 0.5% or its p99 more than 1% worse than the better baseline (issue 12's limits). The
oracle optimises the mean with true curves under the same rules for plain work, so its
harm is what the objective and those rules leave to any policy: a p99 traded for the mean,
plain work held at its fair share where `usage` gives it more. Lines written before the
oracle's mean was added (no orcmean) give "oracle-harm n/a" in the summary. With bursty
(mmpp) arrivals, a line also has `burst4 P W/O W`: how far powergrad (P) and the oracle (O)
had raised a bursting service's socket cap 4 s into its burst, on average (the simulator's
burst_response); the summary's burst-follow is powergrad's rises summed over the oracle's,
over the runs where the oracle's is 1 W or more (n/a without any). The figures are those of the scenario table's runs
(scripts/evaluate-table.py, seed_figures), which this script loads. A scenario the simulator refuses (e.g. a budget that falls below the sockets'
floors) gives an ERROR line and counts as refused in the summary.

Exit status: 0; 1 when any policy violated a budget (a safety invariant, unlike harm, which
is a figure); 2 on a usage error or a failed simulator run.
"""
import argparse
import glob
import importlib.util
import json
import os
import random
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor


def _evaluate_table():
    """scripts/evaluate-table.py, whose seed_figures() computes a run's figures for the
    scenario table: the same definitions (share, harm limits, violations) here."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "evaluate-table.py")
    spec = importlib.util.spec_from_file_location("evaluate_table", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


seed_figures = _evaluate_table().seed_figures

PRESETS = ["resnet50", "bert", "lstm", "dlrm", "llm-prefill", "llm-decode"]
SERVICE_MS = {"resnet50": 60, "bert": 120, "lstm": 50, "dlrm": 40, "llm-prefill": 800,
              "llm-decode": 2000}
# The simulator's refusal of a cluster whose budget falls below its sockets' floors.
REFUSED = "no policy could stay under it"


def generate(seed, count, out):
    """Writes count clusters; the draws' order is part of the format (same seed, same files)."""
    os.makedirs(out, exist_ok=True)
    for k in range(count):
        r = random.Random(seed * 1000 + k)
        counters = r.choice(["hardware", "hardware", "software"])
        delay = r.choice([0, 0, 0.2, 0.5, 0.8]) if counters == "software" else r.choice([0, 0, 0.3])
        progress = counters == "software" and r.random() < 0.5
        share = round(r.uniform(0.48, 0.8), 2)
        arr = r.choice(["poisson", "poisson", "mmpp", "diurnal"])
        lines = [f"# random cluster {seed}-{k}", f"name: rnd{seed}-{k}",
                 "duration_s: 300\nwarmup_s: 60\ntick_s: 0.1\ncontrol_period_s: 1",
                 f"counters: {counters}\ntransport_delay_s: {delay}\n"
                 f"progress_signal: {'true' if progress else 'false'}",
                 f"seed: 1\nbudget:\n  share_of_max: {share}"]
        if arr == "mmpp":
            lines.append(f"arrivals:\n  kind: mmpp\n  burst_factor: {round(r.uniform(1.2, 2.0), 2)}\n"
                         f"  burst_mean_s: {r.choice([5, 10, 20])}\n"
                         f"  calm_mean_s: {r.choice([30, 60, 100])}")
        elif arr == "diurnal":
            lines.append(f"arrivals:\n  diurnal_amplitude: {round(r.uniform(0.2, 0.5), 2)}\n"
                         f"  diurnal_period_s: {r.choice([120, 300, 600])}")
        lines.append("socket_types:")
        types = []
        for t in range(r.choice([1, 1, 2])):
            tdp = r.choice([150, 205, 250, 280])
            p0 = round(tdp * r.uniform(0.2, 0.35))
            lines.append(f"  t{t}:\n    tdp_w: {tdp}\n    p0_w: {p0}\n"
                         f"    f_max_ghz: {r.choice([2.8, 3.4, 3.7])}\n"
                         f"    min_cap_w: {round(tdp * r.uniform(0.42, 0.5))}")
            if counters == "software":
                lines.append(f"    power_noise: {r.choice([0.01, 0.02, 0.03])}")
            types.append(f"t{t}")
        lines.append("workloads:")
        workloads = []
        for w in range(r.randint(2, 5)):
            p = r.choice(PRESETS)
            lines.append(f"  w{w}:\n    like: {p}\n"
                         f"    service_time_ms: {round(SERVICE_MS[p] * r.uniform(0.3, 2.0))}\n"
                         f"    memory_share: {round(r.uniform(0.05, 0.85), 2)}")
            workloads.append(f"w{w}")
        lines.append("node_templates:")
        templates = []
        for t in range(r.randint(1, 4)):
            sockets = r.choice([1, 2, 2])
            lines.append(f"  nt{t}:\n    sockets:")
            socket_type = r.choice(types)
            for _ in range(sockets):
                lines.append(f"      - type: {socket_type}\n        services:")
                for _ in range(r.choice([1, 1, 2, 3])):
                    lo = round(r.uniform(0.3, 0.85), 2)
                    hi = round(min(0.95, lo + r.uniform(0, 0.15)), 2)
                    plain = ", power_aware: false" if r.random() < 0.2 else ""
                    lines.append(f"          - {{workload: {r.choice(workloads)}, "
                                 f"servers: {r.choice([2, 4, 4, 8])}, load: [{lo}, {hi}]{plain}}}")
            templates.append(f"nt{t}")
        lines.append("groups:\n  - name: g0\n    nodes:")
        for t in templates:
            lines.append(f"      - {{template: {t}, count: {r.randint(1, 6)}}}")
        with open(os.path.join(out, f"rnd{seed}-{k}.yaml"), "w") as f:
            f.write("\n".join(lines) + "\n")


def run_one(sim, path, seed, extra):
    name = os.path.basename(path)[:-5]
    p = subprocess.run([sim, path, "--policies", "uniform,usage,powergrad,oracle", "--seed",
                        str(seed), "--format", "json", "--quiet"] + extra,
                       capture_output=True, text=True)
    if p.returncode != 0:
        msg = p.stderr.strip().splitlines()
        return {"name": name, "seed": seed, "error": msg[-1] if msg else f"exit {p.returncode}",
                "refused": p.returncode == 2 and REFUSED in p.stderr}
    try:
        doc = json.loads(p.stdout)
        f = seed_figures(doc)
        wanted = doc["policies"]["powergrad"].get("budget_used_wanted")
        burst4 = burst_rise_4s(doc)
    except (ValueError, KeyError, TypeError) as e:
        return {"name": name, "seed": seed, "refused": False,
                "error": f"the simulator's JSON is not what this script reads ({e!r})"}
    return {"name": name, "seed": seed, "mean": -f["worse_mean"], "p99": -f["worse_p99"],
            "share": f["share"], "oracle_gain": f["oracle_vs_usage_mean"],
            "budget": f["budget_used"], "wanted": 1.0 if wanted is None else wanted,
            "violations": f["viol_all"],
            "oracle_p99": (f["best_p99"] - f["oracle_p99"]) / f["best_p99"],
            "oracle_mean": -f["oracle_worse_mean"], "oracle_harm": f["oracle_harm"],
            "burst4": burst4, "harm": f["harm"]}


def burst_rise_4s(doc):
    """(powergrad's, the oracle's) mean rise of a bursting service's socket cap 4 s after
    its burst began (the simulator's burst_response), or None without such bursts."""
    rises = []
    for policy in ("powergrad", "oracle"):
        b = doc["policies"][policy].get("burst_response")
        if not b or 4 not in b["offsets_s"]:
            return None
        k = b["offsets_s"].index(4)
        if not b["count"][k] or b["rise_w"][k] is None:
            return None
        rises.append(float(b["rise_w"][k]))
    return tuple(rises)


def line(r):
    if "error" in r:
        return f"{r['name']} s{r['seed']} ERROR {r['error']}"
    return (f"{r['name']} s{r['seed']} vsbest {100 * r['mean']:+.1f}% {100 * r['p99']:+.1f}% "
            f"share {100 * r['share']:.0f}% orc {100 * r['oracle_gain']:+.1f}% "
            f"budget {100 * r['budget']:.1f}% wanted {100 * r['wanted']:.2f}% "
            f"viol {r['violations']} orcp99 {100 * r['oracle_p99']:+.1f}% "
            f"orcmean {100 * r['oracle_mean']:+.1f}%"
            + (f" burst4 {r['burst4'][0]:+.1f}W/{r['burst4'][1]:+.1f}W" if r.get("burst4") else "")
            + (" ORACLE-HARM" if r["oracle_harm"] else "") + (" HARM" if r["harm"] else ""))


class BadLine(ValueError):
    """A run line (NAME sSEED vsbest ... or NAME sSEED ERROR ...) with a field that does
    not read: the message names the field."""


def parse(text):
    """A run line back into the figures the summary needs (None for any other line, e.g.
    a summary line); BadLine for a run line that does not read."""
    p = text.split()
    if len(p) < 3 or p[2] not in ("vsbest", "ERROR"):
        return None

    def field(i, what, conv, suffix=""):
        if i >= len(p):
            raise BadLine(f"no {what} (the line ends after {len(p)} fields)")
        s = p[i]
        try:
            if suffix and not s.endswith(suffix):
                raise ValueError
            return conv(s[:-len(suffix)] if suffix else s)
        except ValueError:
            raise BadLine(f"{what} '{s}' does not read as a number"
                          + (f" followed by '{suffix}'" if suffix else "")) from None

    def seed_of(s):
        if not s.startswith("s"):
            raise ValueError
        return int(s[1:])

    seed = field(1, "seed (sN)", seed_of)
    if p[2] == "ERROR":
        return {"name": p[0], "seed": seed, "error": " ".join(p[3:]),
                "refused": REFUSED in text}
    labels = {5: "share", 7: "orc", 9: "budget", 11: "wanted", 13: "viol"}
    for i, label in labels.items():
        if i >= len(p):
            raise BadLine(f"the line ends after {len(p)} fields, before '{label}'")
        if p[i] != label:
            raise BadLine(f"field {i + 1} is '{p[i]}', not '{label}'")
    pct = lambda i, what: field(i, what, float, "%") / 100.0
    # Lines written before the oracle's harm was counted lack orcmean: None.
    oracle_harm = "ORACLE-HARM" in p if "orcmean" in p else None
    burst4 = None
    if "burst4" in p:
        i = p.index("burst4")
        if i + 1 >= len(p) or p[i + 1].count("/") != 1:
            raise BadLine("burst4 is not P W/O W (e.g. +2.0W/+20.0W)")
        a, b = p[i + 1].split("/")
        try:
            if not (a.endswith("W") and b.endswith("W")):
                raise ValueError
            burst4 = (float(a[:-1]), float(b[:-1]))
        except ValueError:
            raise BadLine(f"burst4 '{p[i + 1]}' is not P W/O W (e.g. +2.0W/+20.0W)") from None
    return {"name": p[0], "seed": seed, "mean": pct(3, "mean"), "p99": pct(4, "p99"),
            "share": pct(6, "share"), "oracle_gain": pct(8, "orc"), "budget": pct(10, "budget"),
            "wanted": pct(12, "wanted"), "violations": field(14, "viol", int),
            "oracle_harm": oracle_harm, "burst4": burst4, "harm": p[-1] == "HARM"}


def set_of(name):
    return name.rsplit("-", 1)[0]


def summarize(results):
    """Per set (scenario name before its last '-'): one line over the runs that ran; with
    more than one set, then one line over all of them ("all")."""
    sets = sorted({set_of(r["name"]) for r in results})
    groups = [(s, [r for r in results if set_of(r["name"]) == s]) for s in sets]
    if len(sets) > 1:
        groups.append(("all", results))
    return [summary_line(s, rs) for s, rs in groups]


def summary_line(label, results):
    rs = [r for r in results if "error" not in r]
    refused = sum(1 for r in results if r.get("refused"))
    if not rs:
        return f"{label}: runs 0 refused {refused}"
    shares = [r["share"] for r in rs if r["oracle_gain"] >= 0.03 and r["share"] == r["share"]]
    med = f"{100 * statistics.median(shares):.0f}%" if shares else "n/a"
    known = [r for r in rs if r["oracle_harm"] is not None]
    oracle = (f"{sum(r['oracle_harm'] for r in known)} both "
              f"{sum(r['oracle_harm'] and r['harm'] for r in known)}"
              if len(known) == len(rs) else "n/a")
    # Over the runs with bursts where the oracle raised a bursting socket by 1 W or more
    # 4 s into its burst: powergrad's rises summed over the oracle's.
    bursty = [r["burst4"] for r in rs if r.get("burst4") and r["burst4"][1] >= 1.0]
    follow = (f"{100 * sum(b[0] for b in bursty) / sum(b[1] for b in bursty):.0f}%"
              if bursty else "n/a")
    return (f"{label}: runs {len(rs)} refused {refused} harm {sum(r['harm'] for r in rs)} "
            f"oracle-harm {oracle} "
            f"budget<99.5% {sum(r['wanted'] < 0.995 for r in rs)} "
            f"oracle>=3% {len(shares)} share<80% {sum(x < 0.8 for x in shares)} "
            f"median share {med} burst-follow {follow} "
            f"mean {100 * statistics.mean(r['mean'] for r in rs):+.2f}% "
            f"p99 {100 * statistics.mean(r['p99'] for r in rs):+.2f}% "
            f"violations {sum(r['violations'] for r in rs)}")


def report(rows):
    """Prints the summary of parsed lines; 1 when any run violated a budget, else 0."""
    print("\n".join(summarize(rows)))
    return 1 if any(x.get("violations") for x in rows) else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate")
    g.add_argument("--seed", type=int, required=True)
    g.add_argument("--count", type=int, default=24)
    g.add_argument("--out", required=True)
    r = sub.add_parser("run")
    r.add_argument("--sim", default=None)
    r.add_argument("--seeds", default="1,2")
    r.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    r.add_argument("--out", default=None)
    r.add_argument("--set", action="append", default=[], help="a powergrad-sim --set KEY=VALUE")
    r.add_argument("dirs", nargs="+")
    s = sub.add_parser("summary")
    s.add_argument("files", nargs="+")
    a = ap.parse_args()

    if a.cmd == "generate":
        if a.count < 1:
            ap.error("--count must be at least 1")
        generate(a.seed, a.count, a.out)
        return 0
    if a.cmd == "summary":
        rows = []
        for f in a.files:
            with open(f) as fh:
                for n, text in enumerate(fh, 1):
                    try:
                        row = parse(text)
                    except BadLine as e:
                        print(f"random-clusters: {f}:{n}: {e}: {text.strip()}", file=sys.stderr)
                        return 2
                    if row:
                        rows.append(row)
        if not rows:
            print("random-clusters: no run lines in " + ", ".join(a.files), file=sys.stderr)
            return 2
        return report(rows)

    sim = a.sim
    if sim is None:
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        for c in (os.path.join(here, "build", "sim", "powergrad-sim"), "./sim/powergrad-sim"):
            if os.access(c, os.X_OK):
                sim = c
                break
    if sim is None or not os.access(sim, os.X_OK):
        ap.error("no simulator: build it (make sim/powergrad-sim) or pass --sim PATH")
    try:
        seeds = [int(x) for x in a.seeds.split(",")]
    except ValueError:
        ap.error(f"--seeds '{a.seeds}' is not a comma-separated list of integers")
    files = []
    for d in a.dirs:
        found = sorted(glob.glob(os.path.join(d, "*.yaml")))
        if not found:
            ap.error(f"no scenarios (*.yaml) in '{d}'")
        files += found
    extra = [x for kv in a.set for x in ("--set", kv)]
    jobs = [(f, sd) for f in files for sd in seeds]
    with ThreadPoolExecutor(max(1, a.jobs)) as ex:
        results = list(ex.map(lambda js: run_one(sim, js[0], js[1], extra), jobs))
    text = [line(x) for x in results]
    if a.out:
        with open(a.out, "w") as f:
            f.write("\n".join(text) + "\n")
    print("\n".join(text))
    # From the lines as printed, so that `summary` of a saved run gives the same figures.
    status = report([parse(t) for t in text])
    failed = [x for x in results if "error" in x and not x["refused"]]
    if failed:
        print(f"random-clusters: {len(failed)} simulator runs failed", file=sys.stderr)
        return 2
    return status


if __name__ == "__main__":
    sys.exit(main())
