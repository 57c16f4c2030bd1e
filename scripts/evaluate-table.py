#!/usr/bin/env python3
"""Summarises powergrad-sim runs (JSON, one file per scenario and seed) into one table.

    evaluate-table.py OUTDIR SCENARIO... [--seeds 1,2,3] [--per-seed FILE]

Reads OUTDIR/SCENARIO.seedN.json for every scenario and seed, prints the seed-averaged
table (Markdown) on stdout, writes the per-seed figures to FILE (when given), and exits 1
when powergrad does harm in some scenario (seed-averaged) or any policy violated a budget
in any run, 0 otherwise, 2 when a file is missing or malformed.

Figures, per scenario (latency changes are reductions: + means powergrad is faster):
- vs usage, vs uniform: (L_ref - L_powergrad) / L_ref for mean, p99 and p50 latency,
  computed per seed, then averaged over the seeds;
- oracle vs usage: the oracle's mean-latency reduction over usage, the same way;
- share: powergrad's share of the oracle's mean-latency gain over usage,
  (usage - powergrad) / (usage - oracle) on the seed-averaged means; n/a when the oracle
  gains less than 1% over usage (the share would be noise over a tiny gap);
- p99 over the oracle's: (p99_powergrad - p99_oracle) / p99_oracle, + when powergrad's
  p99 is higher, on the seed-averaged p99s (per seed in the per-seed table);
- budget used: the share of the budget in force held as caps after the warm-up
  (powergrad, and the oracle's for reference: below 100% for every policy where maximum
  caps or group limits cannot hold the whole budget), averaged over the seeds;
- violations: budget violations summed over the seeds, powergrad's and all policies';
- drops: requests dropped summed over the seeds, powergrad's and the most of any policy;
- HARM: powergrad's mean more than 0.5%, or its p99 more than 1%, worse than the better
  of uniform and usage (per metric, per seed, then averaged over the seeds); the column
  also says on how many single seeds the limit was crossed.
"""
import json
import math
import sys

HARM_MEAN = 0.005
HARM_P99 = 0.01
ORACLE_MIN_GAIN = 0.01


def load(path):
    with open(path) as f:
        return json.load(f)


def red(ref, value):
    """Relative reduction of value against ref: + when value is lower."""
    if ref is None or value is None or not ref > 0:
        return float("nan")
    return (ref - value) / ref


def mean(values):
    values = [v for v in values if v is not None and not math.isnan(v)]
    return sum(values) / len(values) if values else float("nan")


def pct(x, digits=1):
    if x is None or math.isnan(x):
        return "n/a"
    v = round(100 * x, digits)
    return f"{v if v else 0.0:+.{digits}f}%"  # a rounded -0.0 prints as +0.0


def share_text(x):
    return "n/a" if x is None or math.isnan(x) else f"{100 * x:.1f}%"


def used_text(x):
    return "-" if x is None or math.isnan(x) else f"{100 * x:.1f}%"


LAT = {"mean": "mean_latency_s", "p99": "p99_latency_s", "p50": "p50_latency_s"}


def seed_figures(doc):
    """Figures of one run (one scenario, one seed, every policy)."""
    p = doc["policies"]
    for need in ("uniform", "usage", "powergrad", "oracle"):
        if need not in p:
            raise KeyError(f"policy {need} missing")
    pg, us, un, orc = p["powergrad"], p["usage"], p["uniform"], p["oracle"]
    f = {}
    for k, key in LAT.items():
        f[f"vs_usage_{k}"] = red(us[key], pg[key])
        f[f"vs_uniform_{k}"] = red(un[key], pg[key])
        f[f"best_{k}"] = min(us[key], un[key])
        f[f"pg_{k}"] = pg[key]
        f[f"usage_{k}"] = us[key]
        f[f"oracle_{k}"] = orc[key]
    f["oracle_vs_usage_mean"] = red(us["mean_latency_s"], orc["mean_latency_s"])
    gap = us["mean_latency_s"] - orc["mean_latency_s"]
    f["share"] = (
        (us["mean_latency_s"] - pg["mean_latency_s"]) / gap
        if gap > ORACLE_MIN_GAIN * us["mean_latency_s"]
        else float("nan")
    )
    f["p99_over_oracle"] = -red(orc["p99_latency_s"], pg["p99_latency_s"])
    # Worse than the better baseline: + when powergrad is slower.
    f["worse_mean"] = -red(f["best_mean"], pg["mean_latency_s"])
    f["worse_p99"] = -red(f["best_p99"], pg["p99_latency_s"])
    f["harm"] = f["worse_mean"] > HARM_MEAN or f["worse_p99"] > HARM_P99
    # The oracle under the same limits: the harm that the objective (the mean, which it
    # optimises with true curves) and the rules for plain work leave to any policy.
    f["oracle_worse_mean"] = -red(f["best_mean"], orc["mean_latency_s"])
    f["oracle_worse_p99"] = -red(f["best_p99"], orc["p99_latency_s"])
    f["oracle_harm"] = f["oracle_worse_mean"] > HARM_MEAN or f["oracle_worse_p99"] > HARM_P99
    f["budget_used"] = pg.get("budget_used")
    f["oracle_budget_used"] = orc.get("budget_used")
    f["viol_pg"] = pg["budget_violations"]
    f["viol_all"] = sum(r["budget_violations"] for r in p.values())
    f["drops_pg"] = pg["dropped"]
    f["drops_by_policy"] = {name: r["dropped"] for name, r in p.items()}
    f["drops_max"] = max(f["drops_by_policy"].values())
    f["duration_s"] = doc.get("duration_s")
    f["nodes"] = doc.get("nodes")
    f["wall_s"] = sum(r.get("wall_s", 0.0) for r in p.values())
    return f


def averaged(per_seed):
    """Seed-averaged figures of one scenario."""
    a = {}
    keys = [k for k in per_seed[0] if isinstance(per_seed[0][k], float) and k != "share"]
    for k in keys:
        a[k] = mean([f[k] for f in per_seed])
    us, orc, pg = (mean([f[f"{w}_mean"] for f in per_seed]) for w in ("usage", "oracle", "pg"))
    gap = us - orc
    a["oracle_vs_usage_mean"] = mean([f["oracle_vs_usage_mean"] for f in per_seed])
    a["share"] = (us - pg) / gap if gap > ORACLE_MIN_GAIN * us else float("nan")
    a["p99_over_oracle"] = -red(
        mean([f["oracle_p99"] for f in per_seed]), mean([f["pg_p99"] for f in per_seed])
    )
    a["harm"] = a["worse_mean"] > HARM_MEAN or a["worse_p99"] > HARM_P99
    a["harm_seeds"] = sum(1 for f in per_seed if f["harm"])
    for k in ("viol_pg", "viol_all", "drops_pg"):
        a[k] = sum(f[k] for f in per_seed)
    # The most any one policy dropped over all the seeds, comparable with drops_pg's sum.
    policies = per_seed[0]["drops_by_policy"].keys()
    a["drops_max"] = max(sum(f["drops_by_policy"][w] for f in per_seed) for w in policies)
    a["budget_used"] = mean([f["budget_used"] for f in per_seed])
    a["oracle_budget_used"] = mean([f["oracle_budget_used"] for f in per_seed])
    a["wall_s"] = sum(f["wall_s"] for f in per_seed)
    return a


HEADER = (
    "| scenario | vs usage: mean / p99 / p50 | vs uniform: mean / p99 / p50 | oracle vs usage (mean) "
    "| share of the oracle's gain | p99 over the oracle's | budget used (powergrad / oracle) "
    "| violations (powergrad / all) | drops (powergrad / most of any) | HARM |\n"
    "|---|---|---|---|---|---|---|---|---|---|"
)


def row(name, f, harm_seeds=None, seeds=None):
    def trio(prefix):
        return " / ".join(pct(f[f"{prefix}_{k}"]) for k in ("mean", "p99", "p50"))

    if f["harm"]:
        harm = f"**HARM** (mean {pct(-f['worse_mean'])}, p99 {pct(-f['worse_p99'])} vs the better baseline)"
    else:
        harm = "no"
    if harm_seeds is not None and harm_seeds:
        harm += f"; {harm_seeds} of {seeds} seeds over the limits"
    return (
        f"| {name} | {trio('vs_usage')} | {trio('vs_uniform')} | {pct(f['oracle_vs_usage_mean'])} "
        f"| {share_text(f['share'])} | {pct(f['p99_over_oracle'])} | {used_text(f['budget_used'])} / {used_text(f['oracle_budget_used'])} "
        f"| {f['viol_pg']} / {f['viol_all']} | {f['drops_pg']} / {f['drops_max']} | {harm} |"
    )


def main(argv):
    seeds = [1, 2, 3]
    per_seed_file = None
    args = []
    i = 1
    while i < len(argv):
        if argv[i] == "--seeds":
            seeds = [int(s) for s in argv[i + 1].split(",") if s]
            i += 2
        elif argv[i] == "--per-seed":
            per_seed_file = argv[i + 1]
            i += 2
        else:
            args.append(argv[i])
            i += 1
    if len(args) < 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    outdir, scenarios = args[0], args[1:]

    rows, seed_rows = [], []
    harm = violations = 0
    for name in scenarios:
        per_seed = []
        for seed in seeds:
            path = f"{outdir}/{name}.seed{seed}.json"
            try:
                f = seed_figures(load(path))
            except (OSError, ValueError, KeyError) as e:
                print(f"evaluate-table: {path}: {e}", file=sys.stderr)
                return 2
            per_seed.append(f)
            seed_rows.append(row(f"{name}, seed {seed}", f))
        a = averaged(per_seed)
        rows.append(row(name, a, a["harm_seeds"], len(seeds)))
        harm += 1 if a["harm"] else 0
        violations += a["viol_all"]

    seed_list = ", ".join(str(s) for s in seeds)
    print(f"Seed-averaged over seeds {seed_list}. Latency changes are reductions (+: powergrad "
          "faster); share = (usage - powergrad) / (usage - oracle) on the seed-averaged means, "
          f"n/a when the oracle gains under {100 * ORACLE_MIN_GAIN:.0f}%; HARM: powergrad's mean "
          f"more than {100 * HARM_MEAN:.1f}% or its p99 more than {100 * HARM_P99:.0f}% worse than "
          "the better of uniform and usage.")
    print()
    print(HEADER)
    for r in rows:
        print(r)
    print()
    print(f"{harm} scenario(s) with HARM, {violations} budget violation(s) in all runs.")
    if per_seed_file:
        with open(per_seed_file, "w") as out:
            out.write("# Per-seed figures\n\n" + HEADER + "\n")
            for r in seed_rows:
                out.write(r + "\n")
    return 1 if harm or violations else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
