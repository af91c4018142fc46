"""Compile time, arena and weight bytes of the MLPerf Tiny reference models, next to TFLite Micro.

    .venv/bin/python benchmarks/compile_report.py [--repeat 3]

Compile time is the median of --repeat runs of adaptc.compile (load + passes + lowering + C
emission, no C compiler), measured in one process after a warm-up. TFLite Micro's figures are
from ../shared/models/mlperf_tiny/README.md (activation arena measured with its host interpreter).
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import adaptc.api as api

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
TFLM_ACTIVATION_ARENA = {"pretrainedResnet_quant": 49152, "kws_ref_model": 16000}
MODELS = ["pretrainedResnet_quant.tflite", "kws_ref_model.tflite", "pretrainedResnet.tflite"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    api.compile(DATA / MODELS[1])  # warm-up: TVM imports, jinja environment
    print(f"{'model':<24}{'format':<9}{'compile s (median)':>20}{'MACs':>13}{'weights B':>11}"
          f"{'arena B':>9}{'TFLM act. arena B':>19}")
    for name in MODELS:
        times = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            m = api.compile(DATA / name)
            times.append(time.perf_counter() - t)
        tflm = TFLM_ACTIVATION_ARENA.get(Path(name).stem, "-")
        print(f"{Path(name).stem:<24}{m.format:<9}{statistics.median(times):>20.3f}{m.program.macs:>13,}"
              f"{m.scheduled.weight_bytes:>11,}{m.scheduled.arena_bytes:>9,}{tflm:>19}")


if __name__ == "__main__":
    main()
