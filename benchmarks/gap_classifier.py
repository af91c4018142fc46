"""The ReduceMean classifier (tests/data/gap_exits.onnx: PyTorch-style global pooling, three exit
heads) through every format on a Cortex-M4: float C against onnxruntime; int8 and pot4 by
post-training quantization with calibrated exits -- accuracy, exits taken and cost per level,
the C against the Relax module on every test image, and instructions measured on the emulated M4.

    .venv/bin/python benchmarks/gap_classifier.py [--target cortex-m4]
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort

import adaptc
from adaptc.data import digits

MODEL = Path(__file__).resolve().parents[1] / "tests" / "data" / "gap_exits.onnx"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", default="cortex-m4")
    args = ap.parse_args()
    x, y, xt, yt = digits()
    sess = ort.InferenceSession(str(MODEL))
    heads = [sess.run(None, {"image": v[None]}) for v in xt]
    f = adaptc.compile(MODEL, target=args.target, output=-1)
    err = max(float(np.max(np.abs(f.run(v[None]) - h[-1]) / (1 + np.abs(h[-1])))) for v, h in zip(xt, heads))
    acc = np.mean([int(np.argmax(h[-1])) == t for h, t in zip(heads, yt)])
    print(f"float C on {args.target}: final head, largest |C - onnxruntime| / (1 + |onnxruntime|) = {err:.2e} "
          f"over {len(xt)} test images; onnxruntime accuracy {acc:.2%}")
    emulated = shutil.which("qemu-system-arm") is not None
    for q in ("int8", "pot4"):
        m = adaptc.compile(MODEL, target=args.target, exits=True, calibration=(x, y),
                           quantize=None if q == "int8" else q)
        static = adaptc.compile(MODEL, target=args.target, calibration=x, quantize=None if q == "int8" else q,
                                output=-1)
        xs = m.quantize_input(xt)
        sim = adaptc.simulate(m, data=xs)
        full = adaptc.simulate(static).levels[0].cycles
        cal = m.exits["calibration"]
        print(f"\n{q}: thresholds {[round(e['threshold'], 3) for e in m.exits['exits'][:-1]]} (max_prob), calibrated "
              f"on {cal['samples']} images; the network without exits: {full:,.0f} cycles")
        runs = m.run_batch_on_target(xs) if emulated else None
        static_instr = float(np.mean(static.run_batch_on_target(static.quantize_input(xt)).instructions)) \
            if emulated else None
        for lv in sim.levels:
            res = [m.run(v[None], level=lv.level) for v in xs]
            exact = sum(r.exit == g.exit and np.array_equal(r.logits, g.logits)
                        for r, g in zip(res, (m.reference(v[None], level=lv.level) for v in xs)))
            accuracy = np.mean([r.label == t for r, t in zip(res, yt)])
            instr = f", {np.mean(runs.instructions[lv.level]):,.0f} instructions measured" if runs is not None else ""
            shares = " / ".join(f"{s:.0%}" for s in lv.exit_shares)
            print(f"  level {lv.level}: accuracy {accuracy:.2%}, exits {shares}, "
                  f"{lv.cycles_expected:,.0f} cycles expected ({full / lv.cycles_expected:.2f}x less){instr}; "
                  f"C = Relax on {exact}/{len(xs)}")
        if static_instr is not None:
            print(f"  without exits: {static_instr:,.0f} instructions measured")


if __name__ == "__main__":
    main()
