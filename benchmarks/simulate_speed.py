"""How long adaptc.simulate takes after compilation, per model and target -- it must stay well
under a second so that threshold calibration and searches can call it in a loop.

    .venv/bin/python benchmarks/simulate_speed.py [--repeat 20]

For each model (ResNet-8 int8, KWS int8, the digits CNN with exits) and each Cortex-M target,
prints the median wall time of ``adaptc.simulate(m)`` on a model compiled for that target
(``same``), and of ``adaptc.simulate(m, target=other)`` which re-schedules the program with the
other core's kernels (``retarget``), next to the compile time, all measured in this one run.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import adaptc
from adaptc.data import digits
from adaptc.data import path as data_path

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ["cortex-m0plus", "cortex-m3", "cortex-m4", "cortex-m7", "cortex-m55"]


def models():
    x_train = digits()[0]
    return {
        "resnet8": lambda t: adaptc.compile(ROOT / "tests/data/pretrainedResnet_quant.tflite", target=t),
        "kws": lambda t: adaptc.compile(ROOT / "tests/data/kws_ref_model.tflite", target=t),
        "digits-exits": lambda t: adaptc.compile(data_path("digits_exits.onnx"), target=t, exits=True,
                                                 calibration=x_train[:256], thresholds=[0.9, 0.9]),
    }


def median_time(fn, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    print(f"{'model':>14} {'target':>14} {'compile s':>10} {'simulate ms':>12} {'retarget ms':>12}")
    for name, build in models().items():
        for target in TARGETS:
            t = time.perf_counter()
            m = build(target)
            compile_s = time.perf_counter() - t
            adaptc.simulate(m)                     # first call loads the tables
            same = median_time(lambda: adaptc.simulate(m), args.repeat)
            other = "cortex-m0plus" if target != "cortex-m0plus" else "cortex-m4"
            retarget = median_time(lambda: adaptc.simulate(m, target=other), max(3, args.repeat // 4))
            print(f"{name:>14} {target:>14} {compile_s:>10.2f} {same * 1e3:>12.2f} {retarget * 1e3:>12.1f}")


if __name__ == "__main__":
    main()
