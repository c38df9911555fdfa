#!/usr/bin/env python3
"""benchsum.py - median and range of each metric of each benchmark in `go
test -bench` outputs (every -count run counted, none dropped).

    bench/benchsum.py FILE...
"""
import re
import statistics
import sys

LINE = re.compile(r"^(Benchmark\S+?)(?:-\d+)?\s+(\d+)\s+(.*)$")


def main(paths):
    seen = {}
    for p in paths:
        for line in open(p):
            m = LINE.match(line.strip())
            if not m:
                continue
            name, fields = m.group(1), m.group(3).split()
            for i in range(0, len(fields) - 1, 2):
                try:
                    v = float(fields[i])
                except ValueError:
                    continue
                seen.setdefault(name, {}).setdefault(fields[i + 1], []).append(v)
    for name, metrics in seen.items():
        parts = []
        for unit, v in metrics.items():
            if unit in ("B/op", "allocs/op", "MB/s"):
                continue
            f = (lambda x: f"{x:,.0f}") if statistics.median(v) >= 100 else (lambda x: f"{x:.3g}")
            parts.append(f"{unit} {f(statistics.median(v))} ({f(min(v))}–{f(max(v))})")
        print(f"{name} [n={len(next(iter(metrics.values())))}]: " + "; ".join(parts))


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
