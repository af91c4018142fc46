"""The one command for a new (or changed) kernel's tables: fit its cost coefficients on every
core that runs it and measure its code size and stack, then merge both into the tables the
simulator reads (targets/cortex_m/data/cost_tables.json, code_sizes.json); every other entry is
kept as it is.

    .venv/bin/python benchmarks/kernel_tables.py mean_s8 mean_f32

The kernels' operators need synthetic layers in benchmarks/synthetic_ops.py (CONTRIBUTING.md,
"Add an operator"). Runs benchmarks/fit_cost_tables.py --kernels and
benchmarks/measure_code_sizes.py --kernels (a few minutes on 2 cores; the cross builds are
cached by content under $ADAPTC_CACHE).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("kernels", nargs="+", metavar="KERNEL", help="kernel names (targets/cortex_m/kernels records)")
    args = ap.parse_args()
    for script in ("fit_cost_tables.py", "measure_code_sizes.py"):
        cmd = [sys.executable, str(HERE / script), "--kernels", *args.kernels]
        print("$", " ".join(cmd[1:]), flush=True)
        subprocess.run(cmd, check=True)


if __name__ == "__main__":
    main()
