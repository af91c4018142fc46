"""Post-training exits and cascades on the bundled models, measured on the emulated Cortex-M4.

For each bundled single-exit model (digits_cnn, mnist1d_cnn): ``adaptc.add_exits`` on its
training split (heads on two thirds, thresholds on the stratified third), the search's wall time,
its Pareto front (expected simulated cycles against accuracy on the held-out third), and over the
whole test split on the emulated M4 the adaptive model at its top level against the model
compiled alone. Then the hand-designed multi-exit digits model (digits_exits.onnx, exits trained
jointly), calibrated the same way, for comparison; and the MNIST-1D cascade (mnist1d_small ->
mnist1d_cnn), thresholds on the first half of the test split, measured on the second.

    .venv/bin/python benchmarks/add_exits.py [--ray] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

import adaptc
import adaptc.data as D
from adaptc import augment


def emulated(m, xs, y) -> tuple[float, float]:
    """(accuracy, mean instructions) over ``xs`` on the emulated core, at the top level."""
    q = m.quantize_input(xs)
    if m.exits:
        r = m.run_batch_on_target(q, levels=[len(m.levels) - 1])
        return float(np.mean(r.label[0] == y)), float(r.instructions.mean())
    r = m.run_batch_on_target(q)
    return float(np.mean(r.logits[0].reshape(len(xs), -1).argmax(axis=-1) == y)), float(r.instructions.mean())


def single(name: str, executor) -> dict:
    x, y, xt, yt = D.mnist1d() if name.startswith("mnist1d") else D.digits()
    path = D.path(f"{name}.onnx")
    start = time.perf_counter()
    m = adaptc.add_exits(path, data=(x, y), target="cortex-m4", executor=executor, progress=False)
    seconds = time.perf_counter() - start
    held = augment.split(x, y)[2]
    alone = adaptc.compile(path, target="cortex-m4", calibration=held)
    acc0, ins0 = emulated(alone, xt, yt)
    acc, ins = emulated(m, xt, yt)
    search = m.augmentation["search"]
    return {"model": name, "search_seconds": seconds, "placements": search["placements_evaluated"],
            "candidates": len(search["candidates"]), "chosen": search["chosen"], "pareto": search["pareto"],
            "accuracy_alone": acc0, "accuracy": acc, "instructions_alone": ins0, "instructions": ins,
            "speedup": ins0 / ins}


def hand_designed() -> dict:
    x, y, xt, yt = D.digits()
    xa, ya, xv, yv = augment.split(x, y)
    m = adaptc.compile(D.path("digits_exits.onnx"), target="cortex-m4", exits=True, calibration=(xv, yv),
                       budget_confidence=0.9)
    alone = adaptc.compile(D.path("digits_exits.onnx"), target="cortex-m4", output=-1, calibration=xv)
    acc0, ins0 = emulated(alone, xt, yt)
    acc, ins = emulated(m, xt, yt)
    return {"model": "digits_exits (hand-designed)", "accuracy_alone": acc0, "accuracy": acc,
            "instructions_alone": ins0, "instructions": ins, "speedup": ins0 / ins}


def cascade() -> dict:
    _, _, xt, yt = D.mnist1d()
    cal, held, held_y = (xt[:500], yt[:500]), xt[500:], yt[500:]
    m = adaptc.compile([D.path("mnist1d_small.onnx"), D.path("mnist1d_cnn.onnx")], cascade=True, target="cortex-m4",
                       calibration=cal, budget_confidence=0.9)
    big = adaptc.compile(D.path("mnist1d_cnn.onnx"), target="cortex-m4", calibration=cal[0])
    acc0, ins0 = emulated(big, held, held_y)
    acc, ins = emulated(m, held, held_y)
    return {"model": "mnist1d_small -> mnist1d_cnn (cascade)", "accuracy_alone": acc0, "accuracy": acc,
            "instructions_alone": ins0, "instructions": ins, "speedup": ins0 / ins}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ray", action="store_true", help="evaluate the placements on a local Ray instance")
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()
    rows = [single(n, "ray" if args.ray else None) for n in ("digits_cnn", "mnist1d_cnn")]
    for r in rows:
        print(f"\n{r['model']}: {r['candidates']} candidates, {r['placements']} placements, search + compiles "
              f"{r['search_seconds']:.1f} s; chosen {[(h['candidate'], h['kind']) for h in r['chosen']['heads']]}")
        print("  Pareto front (held-out third of the training split; expected simulated cycles):")
        print(f"    {'heads (candidate, kind)':<48} {'expected cycles':>15} {'accuracy':>9} {'speedup':>8}")
        for p in r["pareto"]:
            heads = ", ".join(f"{h['candidate']}:{h['kind']}" for h in p["heads"]) or "(none)"
            print(f"    {heads:<48} {p['expected_cost']:>15,.0f} {p['accuracy']:>9.2%} {p['speedup']:>7.2f}x")
    rows += [hand_designed(), cascade()]
    print(f"\n{'emulated Cortex-M4, top level':<42} {'acc alone':>9} {'adaptive':>9} {'instr alone':>12} "
          f"{'adaptive':>10} {'speedup':>8}")
    for r in rows:
        print(f"{r['model']:<42} {r['accuracy_alone']:>9.2%} {r['accuracy']:>9.2%} {r['instructions_alone']:>12,.0f} "
              f"{r['instructions']:>10,.0f} {r['speedup']:>7.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
