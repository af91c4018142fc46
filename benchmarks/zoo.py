"""The zoo of public architectures (tests/data/zoo) on an emulated Cortex-M: per model, MACs,
instructions per MAC with the reference kernels and with the core's optimized ones, arena, flash
(measured on the cross-built firmware) -- int8 TFLite as it is, float ONNX by post-training int8
quantization -- and for the float ONNX models the int8 output SNR against onnxruntime on inputs the
calibration did not see (half of the stored inputs and as many N(0, 1) draws; calibration: the
other half and 16 N(0, 1) draws); the models that do not compile yet with the operators they lack.

    .venv/bin/python benchmarks/zoo.py [--target cortex-m4] [--only NAME]
"""
from __future__ import annotations

import argparse
import json
import sys
import zlib
from pathlib import Path

import numpy as np
import onnxruntime as ort

import adaptc
from adaptc.loader import unsupported

ZOO = Path(__file__).resolve().parents[1] / "tests" / "data" / "zoo"


def snr_db(m, path: Path, xs) -> float:
    sess = ort.InferenceSession(str(path))
    scale, zp = m.output_quantization
    ref = np.stack([sess.run(None, {sess.get_inputs()[0].name: x})[0] for x in xs])
    out = np.stack([(m.run(m.quantize_input(x)).astype(np.float64) - zp) * scale for x in xs])
    return float(10 * np.log10(np.sum(ref ** 2) / np.sum((out - ref) ** 2)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", default="cortex-m4")
    ap.add_argument("--only")
    args = ap.parse_args()
    models = json.loads((ZOO / "models.json").read_text())["models"]
    print(f"{'model':<24} {'MACs':>11} {'insn/MAC ref':>12} {'insn/MAC opt':>12} {'arena B':>9} {'flash B':>9} "
          f"{'SNR dB':>7}")
    for name, info in models.items():
        if args.only and name != args.only:
            continue
        path = ZOO / info["file"]
        rng = np.random.default_rng(zlib.crc32(name.encode()))   # per model: the same draws with --only
        missing = unsupported(path)
        if missing:
            ops = sorted({op for op, _, _ in missing})
            print(f"{name:<24} not yet: {', '.join(ops)}")
            continue
        onnx = info["format"] == "onnx"
        shape = tuple(info["inputs"][0]["shape"])
        if onnx:        # calibration and SNR inputs disjoint, each half stored (class templates + noise), half N(0, 1)
            stored = np.load(ZOO / info["inputs_file"])["x"][:, None].astype(np.float32)
            half = len(stored) // 2
            cal = np.concatenate([stored[:half], rng.normal(0, 1, (16, *shape)).astype(np.float32)])
            fresh = rng.normal(0, 1, (len(stored) - half, *shape)).astype(np.float32)
            held_out = np.concatenate([stored[half:], fresh])
        else:
            cal = None
        row = {}
        for kernels in ("ref", None):
            m = adaptc.compile(path, target=args.target, calibration=cal, kernels=kernels)
            x = m.quantize_input(cal[0]) if onnx else rng.integers(-128, 128, shape, dtype=np.int8)
            r = m.run_on_target(x)
            row[kernels] = (m, r)
        m, r = row[None]
        mem = m.report()["memory"]["model"]
        snr = f"{snr_db(m, path, held_out):7.1f}" if onnx else f"{'-':>7}"
        print(f"{name:<24} {m.program.macs:>11,} {row['ref'][1].instructions_per_mac:>12.2f} "
              f"{r.instructions_per_mac:>12.2f} {m.report['arena_bytes']:>9,} {mem['flash_bytes']:>9,} {snr}",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
