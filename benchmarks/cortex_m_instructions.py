"""Executed instructions per MAC of ResNet-8 and KWS on emulated Cortex-M cores, reference vs
optimized kernels (the best variant each core has: DSP on M4/M7, MVE then DSP on M55).

Counts are exact and deterministic (QEMU + the armstat plugin, see targets/emulator.py), so one
run per configuration is enough. Usage:

    .venv/bin/python benchmarks/cortex_m_instructions.py [--json out.json] [--steps]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import adaptc

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
MODELS = {"resnet8": DATA / "pretrainedResnet_quant.tflite", "kws": DATA / "kws_ref_model.tflite"}
TARGETS = ["cortex-m0plus", "cortex-m3", "cortex-m4", "cortex-m7", "cortex-m55"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", type=Path, help="also write the figures as JSON")
    ap.add_argument("--steps", action="store_true", help="print per-step figures")
    args = ap.parse_args()
    rows = []
    print(f"{'model':<8} {'target':<14} {'kernels':<9} {'instructions':>13} {'MACs':>11} {'insn/MAC':>8} "
          f"{'load':>11} {'store':>10} {'mac':>11} {'taken':>10} {'flash B':>8} {'stack B':>7}")
    for name, path in MODELS.items():
        for target in TARGETS:
            for kernels in ("ref", None):
                m = adaptc.compile(path, target=target, kernels=kernels)
                if kernels is None and all(s.variant == "ref" for s in m.scheduled.steps):
                    continue          # no optimized variant on this core: same as ref
                x = np.random.default_rng(0).integers(-128, 128, m.input.shape, dtype=np.int8)
                r = m.run_on_target(x)
                assert np.array_equal(r.outputs, m.run(x)), (name, target, kernels)
                mem = m.report()["memory"]["model"]
                label = kernels or "best"
                c = r.classes
                print(f"{name:<8} {target:<14} {label:<9} {r.instructions:>13,} {m.program.macs:>11,} "
                      f"{r.instructions_per_mac:>8.3f} {c['load']:>11,} {c['store']:>10,} {c['mac']:>11,} "
                      f"{c['branch_taken']:>10,} {mem['flash_bytes']:>8,} {mem['stack_bytes']:>7,}")
                if args.steps:
                    for s in r.steps:
                        per = f"{s['instructions'] / s['macs']:.3f}" if s["macs"] else "-"
                        print(f"    step {s['step']:>2} {s['kernel']:<28} {s['instructions']:>12,} {per:>7}")
                rows.append({"model": name, "target": target, "kernels": label, "instructions": r.instructions,
                             "macs": m.program.macs, "instructions_per_mac": r.instructions_per_mac,
                             "classes": r.classes, "flash_bytes": mem["flash_bytes"], "stack_bytes": mem["stack_bytes"],
                             "steps": [{k: v for k, v in s.items() if k != "functions"} for s in r.steps]})
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
