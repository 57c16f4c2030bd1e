#!/usr/bin/env python3
"""Summarises scripts/sweep-baselines.sh runs into one table.

    sweep-baselines-table.py OUTDIR SCENARIO... [--seeds 1,2] [--details FILE]
    sweep-baselines-table.py OUTDIR SCENARIO --best POLICY [--seeds 1,2]

Reads OUTDIR/SCENARIO/POLICY.SETTING.seedN.json (one policy per file). A setting counts only
when every seed's file is there. The best setting of a baseline is the one with the lowest
mean latency averaged over the seeds. --best prints that setting's name (the sweep script
picks the next grid points from it); otherwise the Markdown table goes to stdout and every
setting's seed-averaged figures to FILE.

Figures (latency changes are reductions: + means the left one is faster):
- usage, pool: mean / p99 latency (ms, seed-averaged) at the default setting and at the
  best, with the best setting;
- pool vs usage: pool's mean-latency reduction over usage, both at default, both at best;
- powergrad vs best usage, vs best pool: (L_best - L_powergrad) / L_best for mean and p99,
  per seed, then averaged over the seeds.
Exit status 0, or 2 when a file is missing or malformed.
"""
import glob
import json
import math
import os
import sys

DEFAULT = {"usage": "t0.90-0.95_p30", "pool": "m1.5_i2_g0.05"}


def red(ref, value):
    if ref is None or value is None or not ref > 0:
        return float("nan")
    return (ref - value) / ref


def avg(values):
    values = [v for v in values if v is not None and not math.isnan(v)]
    return sum(values) / len(values) if values else float("nan")


def pct(x):
    return "n/a" if x is None or math.isnan(x) else f"{100 * x:+.1f}%"


def ms(x):
    return "n/a" if x is None or math.isnan(x) else f"{1e3 * x:.1f}"


def setting_text(policy, tag):
    """t0.90-0.95_p30 -> 0.90/0.95, 30 s; m1.5_i2_g0.05 -> 1.5 W, 2 s, 0.05."""
    parts = tag.split("_")
    if policy == "usage":
        lo, hi = parts[0][1:].split("-")
        return f"{lo}/{hi}, {parts[1][1:]} s"
    if policy == "pool":
        return f"{parts[0][1:]} W, {parts[1][1:]} s, {parts[2][1:]}"
    return tag


def load_runs(out, name, policy, seeds):
    """{setting: [(mean_s, p99_s) per seed]} for the settings every seed has."""
    runs = {}
    for path in glob.glob(os.path.join(out, name, f"{policy}.*.seed{seeds[0]}.json")):
        tag = os.path.basename(path)[len(policy) + 1 : -len(f".seed{seeds[0]}.json")]
        per_seed = []
        for seed in seeds:
            p = os.path.join(out, name, f"{policy}.{tag}.seed{seed}.json")
            if not os.path.exists(p):
                break
            with open(p) as f:
                r = json.load(f)["policies"][policy]
            per_seed.append((r["mean_latency_s"], r["p99_latency_s"]))
        if len(per_seed) == len(seeds):
            runs[tag] = per_seed
    return runs


def best(runs):
    return min(runs, key=lambda tag: avg([m for m, _ in runs[tag]]))


def main(argv):
    args, seeds, details, best_of = [], [1], None, None
    i = 1
    while i < len(argv):
        if argv[i] == "--seeds":
            seeds = [int(s) for s in argv[i + 1].split(",") if s]
            i += 2
        elif argv[i] == "--details":
            details = argv[i + 1]
            i += 2
        elif argv[i] == "--best":
            best_of = argv[i + 1]
            i += 2
        else:
            args.append(argv[i])
            i += 1
    if len(args) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    out, names = args[0], args[1:]
    try:
        if best_of:
            runs = load_runs(out, names[0], best_of, seeds)
            if not runs:
                raise ValueError(f"no {best_of} runs for {names[0]}")
            print(best(runs))
            return 0
        rows, detail = [], []
        for name in names:
            pg = load_runs(out, name, "powergrad", seeds).get("default")
            by = {p: load_runs(out, name, p, seeds) for p in ("usage", "pool")}
            if pg is None or not all(DEFAULT[p] in by[p] for p in by):
                raise ValueError(f"{name}: powergrad or a baseline's default run is missing")
            fig = lambda runs, k: avg([r[k] for r in runs])
            cells = [name]
            top = {}
            for p in ("usage", "pool"):
                d, b = by[p][DEFAULT[p]], best(by[p])
                top[p] = (DEFAULT[p], b)
                cells.append(f"{ms(fig(d, 0))} / {ms(fig(d, 1))}")
                cells.append(f"{setting_text(p, b)}: {ms(fig(by[p][b], 0))} / {ms(fig(by[p][b], 1))}")
            for which in (0, 1):
                u, q = by["usage"][top["usage"][which]], by["pool"][top["pool"][which]]
                top[("pvu", which)] = avg([red(a[0], b[0]) for a, b in zip(u, q)])
            cells.append(f"{pct(top[('pvu', 0)])} / {pct(top[('pvu', 1)])}")
            cells.append(f"{ms(fig(pg, 0))} / {ms(fig(pg, 1))}")
            for p in ("usage", "pool"):
                b = by[p][top[p][1]]
                cells.append(f"{pct(avg([red(x[0], y[0]) for x, y in zip(b, pg)]))} / "
                             f"{pct(avg([red(x[1], y[1]) for x, y in zip(b, pg)]))}")
            rows.append(cells)
            detail.append(f"## {name}\n\n| policy | setting | mean ms | p99 ms |\n|---|---|---|---|")
            for p in ("usage", "pool"):
                for tag in sorted(by[p], key=lambda t: fig(by[p][t], 0)):
                    mark = " (default)" if tag == DEFAULT[p] else ""
                    detail.append(f"| {p} | {setting_text(p, tag)}{mark} | {ms(fig(by[p][tag], 0))} | "
                                  f"{ms(fig(by[p][tag], 1))} |")
            detail.append(f"| powergrad | default | {ms(fig(pg, 0))} | {ms(fig(pg, 1))} |\n")
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as e:
        print(f"sweep-baselines-table: {e}", file=sys.stderr)
        return 2
    head = ["scenario", "usage default", "usage best (lower/upper, period)", "pool default",
            "pool best (margin, interval, step)", "pool vs usage, mean (default / best)", "powergrad",
            "powergrad vs best usage", "powergrad vs best pool"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for cells in rows:
        print("| " + " | ".join(cells) + " |")
    print()
    print("Latency mean / p99 in ms, seed-averaged; relative figures are reductions of the mean / "
          "p99 (+: the first one named is faster; pool vs usage: mean only), per seed, then "
          "averaged. Best: the lowest seed-averaged mean of the grid.")
    if details:
        with open(details, "w") as f:
            f.write("\n".join(detail) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
