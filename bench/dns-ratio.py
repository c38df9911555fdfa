#!/usr/bin/env python3
"""dns-ratio.py - ratios of our server to NSD (and Knot) from the raw.csv
files of ../shared/bench/dns-peers.sh runs, as collected by
bench/dns-before-after.sh and bench/dns-sensor.sh in OUT/<side>-<round>.csv.

    bench/dns-ratio.py OUT

For each file: per run (the same run number of one dns-peers session: our
server and NSD measured minutes apart, in the same conditions) the ratio
ours/NSD, and ours/Knot; then for each side (the part of the file name before
the last '-') the median and range of those ratios and of the qps, over all
runs of all its rounds.
"""
import csv
import glob
import os
import statistics
import sys

PEERS = ("nsd", "knot", "coredns")


def main(out, ref):
    sides = {}
    paired = {}  # side -> (round, run) -> (ours qps, ours/nsd)
    print(f"{'file':16} {'run':>3} {'ours qps':>9} {'nsd qps':>9} {'knot qps':>9} {'ours/nsd':>8} {'ours/knot':>9} {'µs cpu/q':>8}")
    for path in sorted(glob.glob(os.path.join(out, "*.csv"))):
        name = os.path.basename(path)[:-4]
        if "-" not in name:
            continue
        side, rnd = name.rsplit("-", 1)
        runs = {}
        for r in csv.DictReader(open(path)):
            if r["mode"] != "off" and r["server"] in PEERS:
                continue
            who = r["server"] if r["server"] in PEERS else "ours"
            runs.setdefault(r["run"], {})[who] = float(r["qps"])
            if who == "ours" and float(r["qps"]) > 0:
                runs[r["run"]]["cpu_us"] = float(r["srv_cpu"]) / 100 / float(r["qps"]) * 1e6
        s = sides.setdefault(side, {"ours": [], "nsd": [], "knot": [], "r_nsd": [], "r_knot": [], "cpu": []})
        for run, v in sorted(runs.items()):
            if "ours" not in v:
                continue
            rn = v["ours"] / v["nsd"] if "nsd" in v else None
            rk = v["ours"] / v["knot"] if "knot" in v else None
            s["ours"].append(v["ours"])
            s["cpu"].append(v["cpu_us"])
            paired.setdefault(side, {})[(rnd, run)] = (v["ours"], rn)
            for k in ("nsd", "knot"):
                if k in v:
                    s[k].append(v[k])
            if rn:
                s["r_nsd"].append(rn)
            if rk:
                s["r_knot"].append(rk)
            print(f"{name:16} {run:>3} {v['ours']:9,.0f} {v.get('nsd', 0):9,.0f} {v.get('knot', 0):9,.0f} "
                  f"{rn or 0:8.2f} {rk or 0:9.2f} {v['cpu_us']:8.2f}")
    print()

    def mr(v, fmt):
        if not v:
            return "-"
        return f"{fmt(statistics.median(v))} ({fmt(min(v))}–{fmt(max(v))})"

    q = lambda x: f"{x:,.0f}"
    r = lambda x: f"{x:.2f}"
    print("side: median (range) over all runs")
    for side, s in sides.items():
        print(f"{side}: ours {mr(s['ours'], q)} qps, NSD {mr(s['nsd'], q)}, Knot {mr(s['knot'], q)}; "
              f"ours/NSD {mr(s['r_nsd'], r)}, ours/Knot {mr(s['r_knot'], r)} (n={len(s['r_nsd'])}); "
              f"server CPU {mr(s['cpu'], r)} µs/query")
    if ref in paired:
        print(f"\npaired with {ref} (same round, same run number): median (range)")
        for side, pv in paired.items():
            if side == ref:
                continue
            q, n = [], []
            for k, (qps, rn) in pv.items():
                if k in paired[ref]:
                    q.append(qps / paired[ref][k][0])
                    if rn and paired[ref][k][1]:
                        n.append(rn / paired[ref][k][1])
            print(f"{side}/{ref}: qps {mr(q, r)}, ours/NSD {mr(n, r)} (n={len(q)})")


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2] if len(sys.argv) == 3 else "single")
