"""Accuracy vs flash vs instructions for every weight format, on the digits CNN and ResNet-8.

For each format -- float, int8 (TFLite scheme), int4, pot-4, pot-3, ternary (pot-2) and mixed
precision at 50% of int8's weight bytes -- compiles the model for Cortex-M4 and Cortex-M0+ and
reports the weight bytes on each (constants as the target's kernels store them), the
instructions of one inference on the emulated core (exact, QEMU; multiply instructions in
parentheses) and:

* digits (adaptc/data/digits_exits.onnx, final head): test accuracy of the generated C (host
  build) on the 450 test images, calibrated on 256 training images (with labels);
* ResNet-8 (tests/data/pretrainedResnet.tflite, float; no CIFAR-10 here): top-1 agreement with
  the float model and the output SNR on 200 random inputs (uniform in [0, 255], as the int8
  model's input scale says), calibrated on 128 other random inputs.

    .venv/bin/python benchmarks/quantization.py [--models digits resnet8] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import adaptc
from adaptc.data import digits
from adaptc.data import path as data_path

ROOT = Path(__file__).resolve().parents[1]
FORMATS = ["float", "int8", "int4", "pot4", "pot3", "pot2", "mixed"]
TARGETS = ["cortex-m4", "cortex-m0plus"]


def _digits():
    x_train, y_train, x_test, y_test = digits()
    return data_path("digits_exits.onnx"), (x_train[:256], y_train[:256]), x_test[:, None], y_test


def _resnet():
    rng = np.random.default_rng(0)
    cal = rng.uniform(0, 255, (128, 1, 32, 32, 3)).astype(np.float32)
    test = rng.uniform(0, 255, (200, 1, 32, 32, 3)).astype(np.float32)
    return ROOT / "tests" / "data" / "pretrainedResnet.tflite", (cal, None), test, None


def _compile(model, fmt, target, cal, int8_bytes):
    if fmt == "float":
        return adaptc.compile(model, target=target)
    if fmt == "mixed":
        return adaptc.compile(model, target=target, calibration=cal, weight_budget=int8_bytes // 2)
    return adaptc.compile(model, target=target, calibration=cal, quantize=fmt)


def _outputs(m, xs):
    """Float outputs of the generated C (int8 models dequantized)."""
    q = m.output_quantization
    out = []
    for x in xs:
        y = m.run(m.quantize_input(x) if q is not None else x).astype(np.float64).reshape(-1)
        out.append((y - q[1]) * q[0] if q is not None else y)
    return np.stack(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["digits", "resnet8"], choices=["digits", "resnet8"])
    ap.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = ap.parse_args()
    rows = []
    for name in args.models:
        model, cal, test, labels = _digits() if name == "digits" else _resnet()
        measure = "accuracy" if labels is not None else "top-1 agreement / SNR"
        print(f"\n{name}: {measure}, weight bytes and instructions of one inference per target")
        print(f"{'format':<7} {'quality':>17} " + " ".join(f"{t + ' bytes':>19} {t + ' instructions (mul)':>34}"
                                                       for t in TARGETS) + "  compile s")
        int8_bytes, float_out = {}, None
        for fmt in FORMATS:
            row = {"model": name, "format": fmt}
            for target in TARGETS:
                start = time.perf_counter()
                m = _compile(model, fmt, target, cal, int8_bytes.get(target, 0))
                seconds = time.perf_counter() - start
                if fmt == "int8":
                    int8_bytes[target] = m.report["weight_bytes"]
                x0 = m.quantize_input(test[0]) if m.input_quantization is not None else test[0]
                r = m.run_on_target(x0)
                row[target] = {"weight_bytes": m.report["weight_bytes"], "instructions": r.instructions,
                               "multiplies": r.classes["mac"], "compile_seconds": round(seconds, 1)}
                if target == TARGETS[0]:
                    out = _outputs(m, test)
                    if fmt == "float":
                        float_out = out
                    if labels is not None:
                        row["accuracy"] = float(np.mean(out.argmax(axis=1) == labels))
                    else:
                        row["agreement"] = float(np.mean(out.argmax(axis=1) == float_out.argmax(axis=1)))
                        noise = np.sum((out - float_out) ** 2)
                        row["snr_db"] = (float("inf") if noise == 0
                                         else float(10 * np.log10(np.sum(float_out ** 2) / noise)))
                if fmt == "mixed":
                    row[target]["formats"] = [r["chosen"] for r in m.quantization["search"]]
            quality = (f"{100 * row['accuracy']:.2f} %" if "accuracy" in row
                       else f"{100 * row['agreement']:.1f} % {row['snr_db']:5.1f} dB")
            cells = " ".join(f"{row[t]['weight_bytes']:>19,} {row[t]['instructions']:>22,} ({row[t]['multiplies']:>9,})"
                             for t in TARGETS)
            print(f"{fmt:<7} {quality:>17} {cells}  {row[TARGETS[0]]['compile_seconds']:>6}")
            rows.append(row)
        mixed = next(r for r in rows if r["model"] == name and r["format"] == "mixed")
        for t in TARGETS:
            print(f"  mixed on {t}: budget {int8_bytes[t] // 2:,} B (50% of int8), "
                  f"layers {', '.join(mixed[t]['formats'])}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
