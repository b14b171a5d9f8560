#!/usr/bin/env python3
"""ncu_summary.py CSV: one line per kernel launch of an `ncu --csv` metrics
report (gpu_profile.sh NCU_ENGINE): its stream, grid, registers, duration
and SM clock, and the kernel's name cut to fit a line."""
import csv
import sys
from collections import OrderedDict

rows = OrderedDict()
with open(sys.argv[1], newline="") as f:
    lines = [l for l in f if l.startswith('"')]  # ncu's own messages start with ==PROF==
for r in csv.DictReader(lines):
    k = rows.setdefault(r["ID"], {"name": r["Kernel Name"], "stream": r.get("Stream", "?")})
    k[r["Metric Name"]] = r["Metric Value"].replace(",", "")

def num(k, m):
    try:
        return float(k.get(m, "nan"))
    except ValueError:
        return float("nan")

for i, k in rows.items():
    dur = num(k, "gpu__time_duration.sum")  # ns unless ncu says otherwise
    clk = num(k, "smsp__cycles_elapsed.avg.per_second")
    print(f"{i:>4} stream {k['stream']:>3} grid {k.get('launch__grid_size', '?'):>7} "
          f"regs {k.get('launch__registers_per_thread', '?'):>4} {dur / 1e3:9.1f} us "
          f"{clk / 1e6:6.0f} MHz  {k['name'][:90]}")
