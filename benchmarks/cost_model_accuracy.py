"""The analytic cycle estimate (targets/cortex_m costs.py + timing.py) against the emulated cores,
as a table: ResNet-8 int8, KWS int8 and the digits CNN with exits (gates that never fire, so level L
leaves at exit L), every Cortex-M target and level; no wait states, the wait states of a typical
part (tests/targets/cortex_m/test_costs.py TYPICAL_WAIT_STATES) and, on the Cortex-M0+, the small multiplier.
tests/targets/cortex_m/test_costs.py asserts the same figures within 10%.

    .venv/bin/python benchmarks/cost_model_accuracy.py [--steps] [--markdown]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "targets" / "cortex_m"), str(ROOT / "tests" / "helpers")]

import test_costs as T  # noqa: E402

from adaptc.targets.cortex_m import costs, timing  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", action="store_true", help="also print each step (no wait states)")
    ap.add_argument("--markdown", action="store_true", help="a Markdown table")
    args = ap.parse_args()
    start = time.perf_counter()
    head = ["model", "core", "level", "wait states", "small mult.", "analytic", "measured", "error"]
    if args.markdown:
        print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    else:
        print(f"{'model':<8} {'core':<14} {'level':>5} {'ws':>3} {'small':>5} {'analytic':>15} {'measured':>15} "
              f"{'error':>8}")
    worst = 0.0
    for model in T.MODELS:
        for target in T.TARGETS:
            m, rs = T.runs(model, target)
            for level, r in enumerate(rs):
                lv = level if m.program.exits else None
                for ws, small in T.settings(target):
                    est = T.estimate(m, lv, ws, small)
                    meas = timing.measured_cycles(r, ws, small).total
                    err = est / meas - 1
                    worst = max(worst, abs(err))
                    row = [model, target, str(level), str(ws), "yes" if small else "", f"{est:,.0f}", f"{meas:,.0f}",
                           f"{err:+.2%}"]
                    if args.markdown:
                        print("| " + " | ".join(row) + " |")
                    else:
                        print(f"{row[0]:<8} {row[1]:<14} {row[2]:>5} {row[3]:>3} {row[4]:>5} {row[5]:>15} {row[6]:>15} "
                              f"{row[7]:>8}")
                if args.steps:
                    pred = costs.program_classes(m.scheduled, lv)
                    inlined = set(costs.inlined_steps(m.scheduled))
                    for s, p, ms in zip(m.scheduled.steps, pred, rs[-1].steps if lv is None else r.steps):
                        a, b = timing.cycles(p, target), timing.cycles(ms["classes"], target)
                        if b:
                            print(f"    step {s.index:>2} {s.kernel:<28} {'inlined' if s.index in inlined else '':<7} "
                                  f"{a:>13,.0f} {b:>13,.0f} {a / b - 1:>+8.1%}")
    print(f"\nworst |error| {worst:.2%}; {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
