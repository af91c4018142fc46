"""adaptc against TensorFlow Lite Micro + CMSIS-NN on the four MLPerf Tiny models, side by side on
the same emulated Cortex-M4, and adaptc's figures on the other cores and on every zoo model.

Per model and core: executed instructions of one inference (exact, QEMU + the armstat plugin),
instructions and estimated cycles per MAC (targets/cortex_m/timing.py, zero wait states), the
arena (static RAM of activations and scratch), and the flash of the whole firmware ELF (text +
data of the cross-built image, as TFLite Micro's figure is) -- each output checked bit for bit
against the host build of the same C. The TFLite Micro + CMSIS-NN figures were measured on the
same emulated board and counted the same way (../shared/models/mlperf_tiny/README.md: TFLM
90b983c, CMSIS-NN 4ab83cc, arm-none-eabi-gcc 12.2, TFLM's release flags, QEMU mps2-an386, one
Invoke); the X-CUBE-AI 9.0 and Plumerai cycles per MAC are the published MLPerf Tiny v1.1-v1.2
latencies on a NUCLEO-L4R5ZI (Cortex-M4 at 120 MHz, real flash wait states). TFLite Micro was
measured on the Cortex-M4 only, so the ratios are printed for that core.

The targets of issue 19 are printed beside the ratios: instructions <= 0.6x TFLM (ResNet-8 and
KWS <= 0.5x), arena and flash <= 0.8x, cycles per MAC <= X-CUBE-AI's.

    .venv/bin/python benchmarks/versus_tflm.py [--cores cortex-m4,cortex-m7,cortex-m55] [--zoo] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np

import adaptc
from adaptc.errors import MemoryBudgetError, ToolchainError
from adaptc.targets.cortex_m.timing import measured_cycles

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
ZOO = DATA / "zoo"

# ../shared/models/mlperf_tiny/README.md (measured on the emulated Cortex-M4; published cycles/MAC)
TFLM = {
    "resnet8": dict(file="pretrainedResnet_quant.tflite", macs=12_501_632, instructions=29_865_056,
                    arena=54_996, flash=178_616, cycles_per_mac=3.20, xcube=1.58, plumerai=1.61, insn_goal=0.5),
    "kws": dict(file="kws_ref_model.tflite", macs=2_656_768, instructions=7_697_891,
                arena=22_820, flash=139_228, cycles_per_mac=3.73, xcube=1.95, plumerai=2.16, insn_goal=0.5),
    "vww": dict(file="vww_96_int8.tflite", macs=7_489_664, instructions=24_101_957,
                arena=100_708, flash=418_580, cycles_per_mac=4.17, xcube=1.42, plumerai=1.58, insn_goal=0.6),
    "ad": dict(file="ad01_int8.tflite", macs=264_192, instructions=582_973,
               arena=2_580, flash=308_964, cycles_per_mac=2.79, xcube=2.39, plumerai=1.84, insn_goal=0.6),
}
MEMORY_GOAL = 0.8


def elf_flash(elf: Path) -> int:
    """text + data of an ELF (arm-none-eabi-size, Berkeley format): what the image puts in flash."""
    out = subprocess.run(["arm-none-eabi-size", str(elf)], capture_output=True, text=True, check=True).stdout
    text, data = (int(v) for v in out.splitlines()[1].split()[:2])
    return text + data


def measure(m, x) -> dict:
    r = m.run_on_target(x)
    host = m.run(x)
    for got, want in zip(r.outputs if isinstance(r.outputs, list) else [r.outputs],
                         host if isinstance(host, list) else [host]):
        assert np.array_equal(got, want), f"{m.name}: emulated output differs from the host build"
    macs = m.program.macs
    words = r.memory_accesses - r.classes["load"] - r.classes["store"]     # beyond one per load / store
    cycles = measured_cycles(r).total
    return {"macs": macs, "instructions": r.instructions, "instructions_per_mac": r.instructions / macs,
            "cycles_per_mac": cycles / macs, "cycles_per_mac_words": (cycles + words) / macs,
            "arena": int(m.report()["arena_bytes"]),
            "flash": elf_flash(r.elf),
            "steps": [{"step": s["step"], "kernel": s["kernel"], "macs": s["macs"], "instructions": s["instructions"]}
                      for s in r.steps]}


def mark(ok: bool) -> str:
    return "ok" if ok else "NO"


def mlperf(cores: list[str]) -> list[dict]:
    rows = []
    print(f"{'model':<8} {'core':<11} {'insn/MAC':>8} {'TFLM':>5} {'ratio':>6} {'goal':>5} "
          f"{'cyc/MAC':>7} {'1+N':>5} {'X-CUBE':>6} {'':>3} {'arena B':>8} {'ratio':>6} {'':>3} "
          f"{'flash B':>8} {'ratio':>6} {'':>3}")
    for name, ref in TFLM.items():
        for core in cores:
            m = adaptc.compile(DATA / ref["file"], target=core)
            x = np.random.default_rng(zlib.crc32(name.encode())).integers(-128, 128, m.input.shape, dtype=np.int8)
            f = measure(m, x)
            assert f["macs"] == ref["macs"], (name, f["macs"], ref["macs"])
            row = {"model": name, "core": core, **f}
            if core == "cortex-m4":
                ins, arena, flash = (f[k] / ref[k] for k in ("instructions", "arena", "flash"))
                row.update(tflm=ref, instructions_ratio=ins, arena_ratio=arena, flash_ratio=flash)
                print(f"{name:<8} {core:<11} {f['instructions_per_mac']:>8.3f} "
                      f"{ref['instructions'] / ref['macs']:>5.2f} {ins:>6.3f} {ref['insn_goal']:>5.1f} "
                      f"{f['cycles_per_mac']:>7.3f} {f['cycles_per_mac_words']:>5.2f} {ref['xcube']:>6.2f} "
                      f"{mark(f['cycles_per_mac'] <= ref['xcube']):>3} {f['arena']:>8,} {arena:>6.3f} "
                      f"{mark(arena <= MEMORY_GOAL):>3} {f['flash']:>8,} {flash:>6.3f} {mark(flash <= MEMORY_GOAL):>3}"
                      f"  insn {mark(ins <= ref['insn_goal'])}", flush=True)
            else:
                print(f"{name:<8} {core:<11} {f['instructions_per_mac']:>8.3f} {'-':>5} {'-':>6} {'':>5} "
                      f"{f['cycles_per_mac']:>7.3f} {f['cycles_per_mac_words']:>5.2f} {'-':>6} {'':>3} "
                      f"{f['arena']:>8,} {'-':>6} {'':>3} "
                      f"{f['flash']:>8,}", flush=True)
            rows.append(row)
    return rows


def zoo(cores: list[str]) -> list[dict]:
    models = json.loads((ZOO / "models.json").read_text())["models"]
    rows = []
    print(f"\n{'zoo model':<24} {'core':<11} {'MACs':>11} {'insn/MAC':>8} {'cyc/MAC':>7} {'arena B':>8} {'flash B':>8}")
    for name, info in models.items():
        shape = tuple(info["inputs"][0]["shape"])
        rng = np.random.default_rng(zlib.crc32(name.encode()))
        cal = rng.normal(0, 1, (16, *shape)).astype(np.float32) if info["format"] == "onnx" else None
        for core in cores:
            try:
                m = adaptc.compile(ZOO / info["file"], target=core, calibration=cal)
            except MemoryBudgetError as e:
                print(f"{name:<24} {core:<11} does not fit: {e}")
                continue
            x = m.quantize_input(cal[0]) if cal is not None else rng.integers(-128, 128, shape, dtype=np.int8)
            try:
                f = measure(m, x)
            except ToolchainError as e:                  # the estimate fitted, the linker did not
                print(f"{name:<24} {core:<11} does not link: {str(e).splitlines()[-2].strip()}")
                continue
            print(f"{name:<24} {core:<11} {f['macs']:>11,} {f['instructions_per_mac']:>8.3f} "
                  f"{f['cycles_per_mac']:>7.3f} {f['arena']:>8,} {f['flash']:>8,}", flush=True)
            rows.append({"model": name, "core": core, **f})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cores", default="cortex-m4,cortex-m7,cortex-m55", help="comma-separated cores")
    ap.add_argument("--zoo", action="store_true", help="also every model of tests/data/zoo")
    ap.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = ap.parse_args()
    cores = args.cores.split(",")
    rows = {"mlperf_tiny": mlperf(cores)}
    if args.zoo:
        rows["zoo"] = zoo(cores)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
