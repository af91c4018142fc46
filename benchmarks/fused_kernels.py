"""Fused vs unfused batched builds, side by side in one run: kernels, build time, llvm img/s.

    .venv/bin/python benchmarks/fused_kernels.py [--repeat 5]

* fused: ``adaptc.targets.cuda.batched.build`` -- FuseOps + FuseTIR, then targets/cuda/schedule_fused_kernels.py
  (one kernel per fused group, reused values per thread; CPU: the outer loop parallel).
* unfused: what the batched builds did before it -- every Relax op its own kernel (llvm: TVM's
  generic pipeline, no fusion; cuda: LegalizeOps + dlight's default rules, no fusion).

Per model (digits int8 / pot4 / float with exits, ResNet-8, KWS): distinct CUDA kernels
(``__global__`` functions of the sm_90 source, generated without a GPU), CUDA build seconds, and
llvm images/s for one batch (digits: the 450 test images at the top level; ResNet-8 / KWS: 64
seeded random int8 inputs), median of ``--repeat``, both builds timed alternately. Results of the
two llvm builds are compared (equal: int8 bit for bit, float within 1e-5) before timing.
"""
from __future__ import annotations

import argparse
import re
import statistics
import time
from pathlib import Path

import numpy as np
import tvm
from tvm import relax

import adaptc
from adaptc.data import digits
from adaptc.data import path as data_path
from adaptc.targets.cuda import batched as cuda

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"


def unfused_build(model, target: str):
    """The batched module built without operator fusion (module docstring)."""
    tgt = cuda.gpu_target(target)
    mod, plan = cuda.batched_module(model)
    if target == "llvm":
        ex = tvm.compile(mod, target=tgt.tvm_target)
    else:
        from tvm.relax.backend.cuda import pipeline as gpu
        from tvm.s_tir import dlight as dl

        t = tgt.tvm_target

        @tvm.transform.module_pass(opt_level=0, name="unfused")
        def pipeline(m, _ctx):
            with t:
                return tvm.transform.Sequential(
                    [relax.transform.LegalizeOps(), relax.transform.AnnotateTIROpPattern(),
                     relax.transform.FoldConstant(),
                     dl.ApplyDefaultSchedule(dl.gpu.Matmul(), dl.gpu.GEMV(), dl.gpu.Reduction(),
                                             dl.gpu.GeneralReduction(), dl.gpu.Fallback())]
                    + gpu.dataflow_lower_passes(t) + gpu.finalize_passes(t))(m)

        ex = tvm.compile(mod, target=t, relax_pipeline=pipeline)
    return model.derive(cuda.BatchedModel, target=target, scheduled=cuda.schedule(model.program, target),
                        device_target=tgt, batched_mod=mod, plan=plan, executable=ex)


def kernels(built) -> int:
    return len(set(re.findall(r"__global__ void (?:__launch_bounds__\(\d+\) )?(\w+)\(", built.cuda_source())))


def timed(make):
    t = time.perf_counter()
    out = make()
    return out, time.perf_counter() - t


def models():
    x_train, _, x_test, _ = digits()
    onnx = data_path("digits_exits.onnx")
    for kind in ("int8", "pot4"):
        m = adaptc.compile(onnx, target="cortex-m4", exits=True, calibration=x_train[:256], thresholds=[0.9, 0.9],
                           quantize=None if kind == "int8" else kind)
        yield f"digits {kind}", m, m.quantize_input(x_test)
    m = adaptc.compile(onnx, exits=True, thresholds=[0.9, 0.9])
    yield "digits float", m, m.quantize_input(x_test)
    rng = np.random.default_rng(0)
    for name, file in (("ResNet-8", "pretrainedResnet_quant.tflite"), ("KWS", "kws_ref_model.tflite")):
        m = adaptc.compile(DATA / file)
        yield name, m, rng.integers(-128, 128, size=(64, *m.input.shape[1:]), dtype=np.int8)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args(argv)
    rows = []
    for name, m, xs in models():
        fused_cu, t_fused = timed(lambda: cuda.build(m, "cuda"))
        plain_cu, t_plain = timed(lambda: unfused_build(m, "cuda"))
        fused, plain = cuda.build(m, "llvm"), unfused_build(m, "llvm")
        a, b = fused.run(xs), plain.run(xs)
        assert np.array_equal(a.label, b.label) and np.array_equal(a.exit, b.exit), name
        np.testing.assert_allclose(a.logits.astype(np.float64), b.logits.astype(np.float64), rtol=0,
                                   atol=0 if m.format == "int8" else 1e-5)
        times = {"fused": [], "unfused": []}
        for _ in range(args.repeat):
            for key, built in (("fused", fused), ("unfused", plain)):
                t = time.perf_counter()
                built.run(xs)
                times[key].append(time.perf_counter() - t)
        ips = {k: len(xs) / statistics.median(v) for k, v in times.items()}
        rows.append((name, kernels(plain_cu), kernels(fused_cu), t_plain, t_fused, ips["unfused"], ips["fused"]))
        print(f"{name}: done", flush=True)
    print()
    head = (f"{'model':<13} {'kernels unfused':>15} {'fused':>6} {'cuda build s unfused':>21} {'fused':>6} "
            f"{'llvm img/s unfused':>19} {'fused':>8} {'ratio':>6}")
    print(head)
    print("-" * len(head))
    for name, k0, k1, t0, t1, i0, i1 in rows:
        print(f"{name:<13} {k0:>15} {k1:>6} {t0:>21.1f} {t1:>6.1f} {i0:>19,.0f} {i1:>8,.0f} {i1 / i0:>6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
