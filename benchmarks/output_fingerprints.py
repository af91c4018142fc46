"""Fingerprints of everything adaptc generates for the reference models: a refactor's proof.

For ResNet-8 and KWS (int8 TFLite, every core, and the reference kernels), ResNet-8 float, and
the digits multi-exit CNN (int8 / pot4 / float with exits, every gate criterion, int8 without
exits, a mixed-precision budget), it compiles the model, exports the C and the firmware project
(``m.export``) and records the SHA-256 of every file, report.json's figures (without the compile
time), the simulator's figures per level, and the CUDA source of the batched build. ``--check
FILE`` compares with a recorded run and lists each difference; the exit status says whether
everything is identical.

    .venv/bin/python benchmarks/output_fingerprints.py --save benchmarks/baselines/outputs.json
    .venv/bin/python benchmarks/output_fingerprints.py --check benchmarks/baselines/outputs.json

About 6 minutes on 2 cores (cross builds for the measured memory section included).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import adaptc
from adaptc.data import digits
from adaptc.data import path as data_path

ROOT = Path(__file__).resolve().parents[1]
RESNET = ROOT / "tests/data/pretrainedResnet_quant.tflite"
RESNET_F = ROOT / "tests/data/pretrainedResnet.tflite"
KWS = ROOT / "tests/data/kws_ref_model.tflite"
CORES = ("cortex-m0plus", "cortex-m3", "cortex-m4", "cortex-m7", "cortex-m55")


def configs():
    """(name, compile kwargs, simulate?) of every fingerprinted build."""
    x, y, _, _ = digits()
    digits_onnx = data_path("digits_exits.onnx")
    for core in CORES:
        yield f"resnet8/{core}", dict(model=RESNET, target=core), True
        yield f"kws/{core}", dict(model=KWS, target=core), True
    yield "resnet8/cortex-m4/ref", dict(model=RESNET, target="cortex-m4", kernels="ref"), True
    yield "kws/cortex-m7/ref", dict(model=KWS, target="cortex-m7", kernels="ref"), False
    yield "resnet8-float/cortex-m4", dict(model=RESNET_F, target="cortex-m4"), True
    for core in ("cortex-m0plus", "cortex-m4", "cortex-m55"):
        yield f"digits-int8-exits/{core}", dict(model=digits_onnx, target=core, exits=True, calibration=(x, y)), True
    for core in ("cortex-m0plus", "cortex-m4"):
        yield f"digits-pot4-exits/{core}", dict(model=digits_onnx, target=core, exits=True, calibration=(x, y),
                                                quantize="pot4"), True
    for gate in ("margin", "entropy"):
        yield f"digits-int8-exits-{gate}/cortex-m4", dict(model=digits_onnx, target="cortex-m4", exits=True,
                                                         calibration=(x, y), gate=gate), False
    yield "digits-float-exits/cortex-m4", dict(model=digits_onnx, target="cortex-m4", exits=True,
                                               thresholds=[0.9, 0.9]), True
    yield "digits-int8/cortex-m4", dict(model=digits_onnx, target="cortex-m4", calibration=(x, y)), True
    yield "digits-int4/cortex-m4", dict(model=digits_onnx, target="cortex-m4", calibration=(x, y),
                                        quantize="int4"), False
    yield "digits-mixed/cortex-m4", dict(model=digits_onnx, target="cortex-m4", calibration=(x, y),
                                         weight_budget=14000), False


def digest(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()[:16]


def fingerprint(name: str, kwargs: dict, sim: bool) -> dict:
    m = adaptc.compile(**kwargs)
    out = {}
    with tempfile.TemporaryDirectory() as d:
        dest = m.export(Path(d) / "out")
        for f in sorted(dest.iterdir()):
            if f.name == "report.json":
                report = json.loads(f.read_text())
                report.pop("source")
                out["report.json"] = report
            else:
                out[f.name] = digest(f.read_bytes())
    for k, v in sorted((m.host_files or {}).items()):
        out[f"host/{k}"] = digest(v)
    if sim:
        s = adaptc.simulate(m)
        out["simulate"] = {"levels": [[round(lv.cycles, 3), round(lv.cycles_min, 3), lv.flash_bytes, lv.ram_bytes,
                                       lv.macs] for lv in s.levels],
                           "code_bytes": s.code_bytes, "weight_bytes": s.weight_bytes, "stack_bytes": s.stack_bytes,
                           "steps": [round(st["cycles"], 3) for st in s.steps]}
    return out


def cuda_fingerprints() -> dict:
    """The CUDA source of the batched builds (nvcc is not needed to generate it)."""
    x, y, _, _ = digits()
    out = {}
    for name, kwargs in (("digits-int8-exits", dict(model=data_path("digits_exits.onnx"), exits=True,
                                                    calibration=(x, y))),
                         ("resnet8", dict(model=RESNET))):
        b = adaptc.compile(target="cuda", **kwargs)
        out[f"{name}/cuda"] = {"source": digest(b.cuda_source()),
                               "thresholds": [e["threshold_int"] for e in b.exits["exits"]] if b.exits else None}
    return out


def collect() -> dict:
    from tqdm import tqdm

    results = {}
    items = list(configs())
    for name, kwargs, sim in tqdm(items, desc="fingerprints", unit="build", file=sys.stderr):
        results[name] = fingerprint(name, kwargs, sim)
    results.update(cuda_fingerprints())
    return results


def differences(old, new, where="") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new)):
            if k not in new:
                out.append(f"{where}/{k}: missing now")
            elif k not in old:
                out.append(f"{where}/{k}: new")
            else:
                out += differences(old[k], new[k], f"{where}/{k}")
        return out
    return [] if old == new else [f"{where}: {old!r} -> {new!r}"[:400]]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--save", type=Path, help="write the fingerprints here")
    g.add_argument("--check", type=Path, help="compare with fingerprints written by --save")
    args = ap.parse_args()
    results = collect()
    if args.save:
        args.save.parent.mkdir(parents=True, exist_ok=True)
        args.save.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
        print(f"wrote {args.save}: {len(results)} builds")
        return
    diff = differences(json.loads(args.check.read_text()), json.loads(json.dumps(results)))
    for line in diff:
        print(line)
    print(f"{len(results)} builds: " + ("identical" if not diff else f"{len(diff)} differences"))
    sys.exit(1 if diff else 0)


if __name__ == "__main__":
    main()
