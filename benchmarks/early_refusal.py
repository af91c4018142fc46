"""How fast ``adaptc compile`` refuses a model too large for the target: the weights are
estimated from the file before TVM reads it (adaptc.summary, ``adaptc.api.refuse_early``), so a
model five times the flash of the Cortex-M4's board is refused before any compile work.
Acceptance: refused in under 5 s, the whole command (Python start, imports, load, estimate).

    .venv/bin/python benchmarks/early_refusal.py [--times 5] [--target cortex-m4]

Builds (NumPy + onnx.helper) a float ONNX model: a stack of dense layers (Gemm + Relu) whose
float32 weights take five times the target board's flash; runs ``adaptc compile MODEL -t
TARGET -o DIR`` as a user would, ``--times`` times, and prints the median and slowest wall
time (and CPU time: on a busy machine the wall time waits for a core), the exit status and the error
it printed; then times ``adaptc.compile`` in this process
(imports already done) to show what the refusal itself costs.
"""
from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import adaptc
from adaptc import targets

WIDTH = 512                          # each layer: a 512 x 512 float32 matrix, 1 MiB


def big_model(path: Path, weight_bytes: int) -> int:
    """A Gemm + Relu stack with at least ``weight_bytes`` of float32 weights; its layer count."""
    layers = -(-weight_bytes // (WIDTH * WIDTH * 4))
    rng = np.random.default_rng(0)
    nodes, inits, prev = [], [], "x"
    for i in range(layers):
        inits += [numpy_helper.from_array((rng.standard_normal((WIDTH, WIDTH)) * 0.05).astype(np.float32), f"w{i}"),
                  numpy_helper.from_array(np.zeros(WIDTH, np.float32), f"b{i}")]
        last = i == layers - 1
        nodes.append(helper.make_node("Gemm", [prev, f"w{i}", f"b{i}"], ["y" if last else f"g{i}"], name=f"dense_{i}"))
        if not last:
            nodes.append(helper.make_node("Relu", [f"g{i}"], [f"h{i}"], name=f"relu_{i}"))
            prev = f"h{i}"
    graph = helper.make_graph(nodes, "dense_stack", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, WIDTH])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, WIDTH])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return layers


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--times", type=int, default=5)
    ap.add_argument("--target", default="cortex-m4")
    args = ap.parse_args()
    flash = targets.get(args.target).board.flash_bytes
    adaptc_cli = Path(sys.executable).with_name("adaptc")
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "dense_stack.onnx"
        layers = big_model(model, 5 * flash)
        size = model.stat().st_size
        print(f"{model.name}: {layers} dense layers of {WIDTH}x{WIDTH}, {size:,} B file; {args.target}'s board has "
              f"{flash:,} B of flash ({size / flash:.1f}x)")
        times, cpu = [], []
        for _ in range(args.times):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            command = [str(adaptc_cli), "compile", str(model), "-t", args.target, "-o", str(Path(tmp) / "out")]
            res = subprocess.run(command, capture_output=True, text=True)
            times.append(time.perf_counter() - start)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        print(f"adaptc compile: exit status {res.returncode}, {res.stderr.strip().splitlines()[-1]}")
        print(f"  refused in {statistics.median(times):.2f} s median, {max(times):.2f} s slowest of {args.times} "
              f"(the whole command; CPU {statistics.median(cpu):.2f} s median)")
        start = time.perf_counter()
        try:
            adaptc.compile(model, target=args.target)
        except adaptc.MemoryBudgetError:
            print(f"  adaptc.compile in this process: refused in {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
