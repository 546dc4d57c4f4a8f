#!/usr/bin/env python3
"""Prints bench.sh's table from a results folder and writes summary.json there.

    scripts/bench/table.py bench-results/2026-11-27-vm

Reads runs.tsv (one measurement a line: round, scenario, subject, run, metric,
value). One column per round, so both runs of every scenario are visible;
the last column says whether the issue's target was met in each round.
Aggregates: (a) the geometric mean of the per-pair heavylift/nginx req/s
ratios and the median p99 over the runs of a round; (b)/(c) fast req/s as a
ratio to the same round's heavylift (a) median, and (b0) nginx with a busy
loop on the compute CPU as the layout's own limit for (b); (e) the difference of the
medians of the /slow_threaded?n=1 and /fast p50s; (f) CPython ms / heavylift ms.
"""

import csv
import json
import os
import statistics
import sys
from collections import defaultdict


def load(folder):
    data = defaultdict(dict)  # (round, scenario, subject, metric) -> {run: value}
    with open(os.path.join(folder, "runs.tsv")) as f:
        for row in csv.DictReader(f, delimiter="\t"):
            v = row["value"]
            try:
                v = float(v)
            except ValueError:
                v = {"true": True, "false": False, "": None}.get(v, v)
            data[(int(row["round"]), row["scenario"], row["subject"], row["metric"])][row["run"]] = v
    return data


def values(data, r, sc, subj, metric):
    return {k: v for k, v in data.get((r, sc, subj, metric), {}).items() if v is not None}


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def one(data, r, sc, subj, metric):
    v = values(data, r, sc, subj, metric)
    return next(iter(v.values())) if v else None


def summarize(data, r):
    s = {}
    hl = values(data, r, "a", "heavylift", "rps")
    ng = values(data, r, "a", "nginx", "rps")
    pairs = [hl[k] / ng[k] for k in hl if k in ng and ng[k] and hl[k]]
    s["a_pairs"] = len(pairs)
    s["a_ratio_geomean"] = statistics.geometric_mean(pairs) if pairs else None
    s["a_ratio_min"] = min(pairs) if pairs else None
    s["a_ratio_max"] = max(pairs) if pairs else None
    s["a_hl_rps"] = median(hl.values())
    s["a_ng_rps"] = median(ng.values())
    s["a_hl_p99_ms"] = median(values(data, r, "a", "heavylift", "p99_ms").values())
    s["a_ng_p99_ms"] = median(values(data, r, "a", "nginx", "p99_ms").values())
    s["a_hl_cpu_pct"] = median(values(data, r, "a", "heavylift", "server_cpu_pct").values())
    s["a_ng_cpu_pct"] = median(values(data, r, "a", "nginx", "server_cpu_pct").values())
    s["a_hl_client_cpu_pct"] = median(values(data, r, "a", "heavylift", "client_cpu_pct").values())
    s["a_ng_client_cpu_pct"] = median(values(data, r, "a", "nginx", "client_cpu_pct").values())
    s["a_others_cpu_pct"] = median(list(values(data, r, "a", "heavylift", "others_cpu_pct").values())
                                   + list(values(data, r, "a", "nginx", "others_cpu_pct").values()))
    s["a_others_cpu_pct_max"] = max(list(values(data, r, "a", "heavylift", "others_cpu_pct").values())
                                    + list(values(data, r, "a", "nginx", "others_cpu_pct").values()),
                                    default=None)
    for sc, subj in (("b", "fast"), ("bi", "fast"), ("b0", "nginx"), ("c", "fast")):
        s[f"{sc}_others_cpu_pct"] = one(data, r, sc, subj, "others_cpu_pct")
    s["b0_ng_rps"] = one(data, r, "b0", "nginx", "rps")
    s["b0_ng_p99_ms"] = one(data, r, "b0", "nginx", "p99_ms")
    s["b0_ratio_to_a"] = s["b0_ng_rps"] / s["a_ng_rps"] if s["b0_ng_rps"] and s["a_ng_rps"] else None
    s["a_hl_errors"] = sum(values(data, r, "a", "heavylift", "errors").values()) + sum(
        values(data, r, "a", "heavylift", "non_2xx").values())
    for sc in ("b", "bi", "c"):
        rps = one(data, r, sc, "fast", "rps")
        s[f"{sc}_fast_rps"] = rps
        s[f"{sc}_ratio_to_a"] = rps / s["a_hl_rps"] if rps and s["a_hl_rps"] else None
        s[f"{sc}_fast_p99_ms"] = one(data, r, sc, "fast", "p99_ms")
        s[f"{sc}_fast_p50_ms"] = one(data, r, sc, "fast", "p50_ms")
        s[f"{sc}_slow_rps"] = one(data, r, sc, "slow", "rps")
        s[f"{sc}_slow_p50_ms"] = one(data, r, sc, "slow", "p50_ms")
    for k in ("fast_done_ms", "fast_before_slow", "first_slow_ms", "last_slow_ms",
              "job_seconds_median", "all_ok"):
        s[f"d_{k}"] = one(data, r, "d", "load", k)
    f = median(values(data, r, "e", "fast", "p50_ms").values())
    o = median(values(data, r, "e", "offload", "p50_ms").values())
    s["e_fast_p50_us"] = f * 1e3 if f is not None else None
    s["e_offload_p50_us"] = o * 1e3 if o is not None else None
    s["e_diff_p50_us"] = (o - f) * 1e3 if f is not None and o is not None else None
    s["e_fast_rps"] = median(values(data, r, "e", "fast", "rps").values())
    s["e_offload_rps"] = median(values(data, r, "e", "offload", "rps").values())
    s["idle_cpu_pct"] = one(data, r, "idle", "heavylift", "cpu_pct")
    loads = [one(data, r, "env", sc, "loadavg1") for sc in ("a", "b", "bi", "b0", "c", "d", "e", "f")]
    loads = [x for x in loads if x is not None]
    s["loadavg1_max"] = max(loads) if loads else None
    for n in (2000, 3500):
        h = one(data, r, "f", "heavylift", f"n{n}_ms")
        c = one(data, r, "f", "cpython", f"n{n}_ms")
        s[f"f_heavylift_n{n}_ms"] = h
        s[f"f_cpython_n{n}_ms"] = c
        s[f"f_speedup_n{n}"] = c / h if c and h else None
    return s


def fmt(v, spec):
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    return format(v, spec)


# (label, key, format, target text, predicate or None)
ROWS = [
    ("a  heavylift fast req/s (median of runs)", "a_hl_rps", ",.0f", "", None),
    ("a  nginx fast req/s (median of runs)", "a_ng_rps", ",.0f", "", None),
    ("a  heavylift/nginx req/s (geomean of pairs)", "a_ratio_geomean", ".3f", ">= 1.0x", lambda v: v >= 1.0),
    ("a    ratio range over the pairs (min)", "a_ratio_min", ".3f", "", None),
    ("a    ratio range over the pairs (max)", "a_ratio_max", ".3f", "", None),
    ("a  heavylift p99 ms (median of runs)", "a_hl_p99_ms", ".3f", "<= 1 ms", lambda v: v <= 1.0),
    ("a  nginx p99 ms (median of runs)", "a_ng_p99_ms", ".3f", "", None),
    ("a  server CPU %, heavylift (median)", "a_hl_cpu_pct", ".0f", "", None),
    ("a  server CPU %, nginx (median)", "a_ng_cpu_pct", ".0f", "", None),
    ("a  wrk CPU %, against heavylift (median)", "a_hl_client_cpu_pct", ".0f", "", None),
    ("a  wrk CPU %, against nginx (median)", "a_ng_client_cpu_pct", ".0f", "", None),
    ("b  fast req/s, /slow_threaded busy", "b_fast_rps", ",.0f", "", None),
    ("b    as a share of its own (a)", "b_ratio_to_a", ".2f", ">= 0.55x", lambda v: v >= 0.55),
    ("b  fast p99 ms", "b_fast_p99_ms", ".3f", "<= 2 ms", lambda v: v <= 2.0),
    ("b  slow jobs/s (n=2000)", "b_slow_rps", ".1f", "", None),
    ("bi fast req/s, b with --compute-priority idle", "bi_fast_rps", ",.0f", "", None),
    ("bi   as a share of its own (a)", "bi_ratio_to_a", ".2f", ">= 0.55x", lambda v: v >= 0.55),
    ("bi fast p99 ms", "bi_fast_p99_ms", ".3f", "<= 2 ms", lambda v: v <= 2.0),
    ("bi slow jobs/s (n=2000)", "bi_slow_rps", ".1f", "", None),
    ("b0 nginx fast req/s, busy loop on compute CPU", "b0_ng_rps", ",.0f", "", None),
    ("b0   as a share of nginx (a)", "b0_ratio_to_a", ".2f", "", None),
    ("b0 nginx fast p99 ms, busy loop", "b0_ng_p99_ms", ".3f", "", None),
    ("c  fast req/s, /slow (inline) busy", "c_fast_rps", ",.0f", "", None),
    ("c    as a share of its own (a)", "c_ratio_to_a", ".2f", "", None),
    ("c  fast p99 ms", "c_fast_p99_ms", ".3f", "", None),
    ("c  slow jobs/s (n=2000)", "c_slow_rps", ".1f", "", None),
    ("d  all 20 fast done, ms", "d_fast_done_ms", ".2f", "<= 10 ms", lambda v: v <= 10.0),
    ("d  every fast before the first slow", "d_fast_before_slow", "", "yes", lambda v: v is True),
    ("d  first slow done, ms", "d_first_slow_ms", ",.0f", "", None),
    ("d  job seconds (median of 3)", "d_job_seconds_median", ".3f", "", None),
    ("e  /fast p50 us, 1 connection", "e_fast_p50_us", ".0f", "", None),
    ("e  /slow_threaded?n=1 p50 us", "e_offload_p50_us", ".0f", "", None),
    ("e  offload round trip (p50 difference) us", "e_diff_p50_us", ".0f", "<= 20 us", lambda v: v <= 20.0),
    ("f  heavy job n=2000, heavylift ms", "f_heavylift_n2000_ms", ".1f", "", None),
    ("f  heavy job n=2000, CPython ms", "f_cpython_n2000_ms", ".1f", "", None),
    ("f    speedup n=2000", "f_speedup_n2000", ".2f", ">= 2x", lambda v: v >= 2.0),
    ("f  heavy job n=3500, heavylift ms", "f_heavylift_n3500_ms", ".1f", "", None),
    ("f  heavy job n=3500, CPython ms", "f_cpython_n3500_ms", ".1f", "", None),
    ("f    speedup n=3500", "f_speedup_n3500", ".2f", "", None),
    ("   heavylift idle CPU % (after load, 2 s)", "idle_cpu_pct", ".1f", "", None),
    ("   other processes' CPU % during (a), median", "a_others_cpu_pct", ".0f", "", None),
    ("   other processes' CPU % during (a), worst run", "a_others_cpu_pct_max", ".0f", "", None),
    ("   other processes' CPU % during (b)", "b_others_cpu_pct", ".0f", "", None),
    ("   other processes' CPU % during (bi)", "bi_others_cpu_pct", ".0f", "", None),
    ("   other processes' CPU % during (b0)", "b0_others_cpu_pct", ".0f", "", None),
    ("   other processes' CPU % during (c)", "c_others_cpu_pct", ".0f", "", None),
    ("   highest 1-min load average at a scenario start", "loadavg1_max", ".2f", "", None),
]


def main(argv):
    folder = argv[1]
    data = load(folder)
    rounds = sorted({k[0] for k in data})
    sums = {r: summarize(data, r) for r in rounds}
    label_w = max(len(r[0]) for r in ROWS)
    head = f"{'scenario / measure':<{label_w}}" + "".join(f"  {'run ' + str(r):>10}" for r in rounds)
    head += f"  {'target':>9}  met"
    lines = [head, "-" * len(head)]
    met = {}
    for label, key, spec, target, ok in ROWS:
        vals = [sums[r][key] for r in rounds]
        line = f"{label:<{label_w}}" + "".join(f"  {fmt(v, spec):>10}" for v in vals)
        line += f"  {target:>9}"
        if ok:
            verdict = [ok(v) if v is not None else False for v in vals]
            word = "yes" if all(verdict) else "no" if not any(verdict) else f"{sum(verdict)} of {len(verdict)}"
            met[key] = word
            line += f"  {word}"
        lines.append(line.rstrip())
    lines.append("(other processes' CPU %: the machine's busy time minus the server's, this wrk's")
    lines.append(" and the slow wrk's or busy loop's; 200 = both CPUs. The noise indicator.)")
    print("\n".join(lines))
    with open(os.path.join(folder, "summary.json"), "w") as f:
        json.dump({"rounds": {str(r): sums[r] for r in rounds}, "targets_met": met}, f, indent=1,
                  sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main(sys.argv)
