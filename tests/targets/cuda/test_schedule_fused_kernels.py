"""ScheduleFusedKernels: a fused chain is one loop nest (one CUDA kernel), every reused value
computed once per element into a thread-local buffer, the numbers unchanged.

The module is a fixed-point rounding step (srdhm's shape: the product is read three times, the
rounded value twice) and a per-channel multiply-accumulate over a symbolic batch -- what made
dlight's inline-everything rules repeat each reused value at each use."""
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import tvm
from tvm import relax, tirx
from tvm.script import ir as I
from tvm.script import relax as R

from adaptc import tvm_compat
from adaptc.targets.cuda.schedule_fused_kernels import THREAD_CHOICES, ScheduleFusedKernels

rng = np.random.default_rng(0)
W = rng.integers(-128, 128, size=(16, 8), dtype=np.int32)
M = rng.integers(1 << 29, 1 << 31, size=8, dtype=np.int64)


@I.ir_module
class Before:
    @R.function
    def main(x: R.Tensor(("n", 16), "int32")):
        R.func_attr({"num_input": 1})
        with R.dataflow():
            acc = R.matmul(x, R.const(W, "int32"), out_dtype="int32")
            ab = R.multiply(R.astype(acc, "int64"), R.const(M, "int64"))
            nudge = R.where(R.greater_equal(ab, R.const(0, "int64")), R.const(1 << 30, "int64"),
                            R.const(1 - (1 << 30), "int64"))
            v = R.add(ab, nudge)
            pos = R.right_shift(v, R.const(31, "int64"))
            neg = R.negative(R.right_shift(R.negative(v), R.const(31, "int64")))
            q = R.astype(R.where(R.greater_equal(v, R.const(0, "int64")), pos, neg), "int32")
            y = R.astype(R.clip(R.add(q, R.const(5)), -128, 127), "int8")
            R.output(y)
        return y


def expected(x):
    ab = (x.astype(np.int64) @ W.astype(np.int64)) * M
    v = ab + np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    q = np.where(v >= 0, v >> 31, -((-v) >> 31)).astype(np.int32)
    return np.clip(q + 5, -128, 127).astype(np.int8)


def fused(target):
    with target:
        return tvm.transform.Sequential([relax.transform.LegalizeOps(), relax.transform.AnnotateTIROpPattern(),
                                         relax.transform.FoldConstant(), relax.transform.FuseOps(),
                                         relax.transform.FuseTIR()])(Before)


def scheduled(target, gpu):
    mod = fused(target)
    with target:
        return ScheduleFusedKernels(gpu=gpu)(mod)


def prim_funcs(mod):
    return [f for _, f in mod.functions_items() if isinstance(f, tirx.PrimFunc)]


def test_the_chain_is_one_fused_function():
    (func,) = prim_funcs(fused(tvm.target.Target("llvm")))
    assert func.script().count("T.sblock(") >= 9     # matmul, cast, multiply, where, add, shifts...


@pytest.mark.parametrize("gpu", [True, False])
def test_one_loop_nest_with_reused_values_local_and_computed_once(gpu):
    target = tvm.target.Target({"kind": "cuda", "arch": "sm_90"} if gpu else "llvm")
    (func,) = prim_funcs(scheduled(target, gpu))
    text = func.script()
    if gpu:
        assert text.count('T.thread_binding(') == 2        # one kernel: blockIdx.x, threadIdx.x
        assert 'thread="blockIdx.x"' in text and 'thread="threadIdx.x"' in text
    else:
        assert text.count("T.parallel(") == 1
    # the product ab is read at two places (nudge's sign test, v), v at three (two shifts, the
    # sign test): each is held in a per-thread buffer, not written out again at each use
    allocs = re.findall(r'(\w+) = T\.sblock_alloc_buffer\([^\n]*', text)
    local = re.findall(r'(\w+) = T\.sblock_alloc_buffer\([^\n]*scope="local"', text)
    assert len(local) >= 2 and local == allocs, text       # every intermediate per thread
    assert text.count("* param_1[v1]") == 1, text            # the product, once (dlight's Fallback: 6)
    assert text.count(">> T.int64(31)") == 2, text           # pos and neg, once each


def test_numbers_unchanged_on_llvm():
    x = rng.integers(-128, 128, size=(37, 16), dtype=np.int32)
    target = tvm.target.Target("llvm")
    mod = scheduled(target, gpu=False)
    from tvm.relax.backend.cpu_generic import pipeline as cpu
    with target:
        mod = tvm.transform.Sequential(cpu.dataflow_lower_passes(target) + cpu.finalize_passes(target))(mod)
    ex = tvm.compile(mod, target=target, relax_pipeline=tvm.transform.Sequential([]))
    got = relax.VirtualMachine(ex, tvm.cpu())["main"](tvm.runtime.tensor(x)).numpy()
    np.testing.assert_array_equal(got, expected(x))
    np.testing.assert_array_equal(tvm_compat.run_vm(tvm_compat.build_llvm(Before), x)[0], got)


def test_cuda_build_has_one_kernel():
    target = tvm.target.Target({"kind": "cuda", "arch": "sm_90"})
    from tvm.relax.backend.cuda import pipeline as cuda
    mod = scheduled(target, gpu=True)
    with target:
        mod = tvm.transform.Sequential(cuda.dataflow_lower_passes(target) + cuda.finalize_passes(target))(mod)
    ex = tvm.compile(mod, target=target, relax_pipeline=tvm.transform.Sequential([]))
    from adaptc.targets.cuda.batched import cuda_source_of
    src = cuda_source_of(ex)
    assert len(set(re.findall(r"__global__ void (?:__launch_bounds__\(\d+\) )?(\w+)\(", src))) == 1, src


@pytest.mark.parametrize("threads", [THREAD_CHOICES[0], THREAD_CHOICES[-1]])
def test_tuning_space_extremes_are_valid_cuda(threads, tmp_path):
    """MetaSchedule samples the threads per block from THREAD_CHOICES (targets/tuning.py): the
    smallest and largest give a kernel with those launch bounds that nvcc compiles."""
    target = tvm.target.Target({"kind": "cuda", "arch": "sm_90"})
    from tvm.relax.backend.cuda import pipeline as cuda
    mod = fused(target)
    with target:
        mod = ScheduleFusedKernels(gpu=True, threads=threads)(mod)
        mod = tvm.transform.Sequential(cuda.dataflow_lower_passes(target) + cuda.finalize_passes(target))(mod)
    ex = tvm.compile(mod, target=target, relax_pipeline=tvm.transform.Sequential([]))
    from adaptc.targets.cuda.batched import cuda_source_of
    src = cuda_source_of(ex)
    assert f"__launch_bounds__({threads})" in src
    nvcc = shutil.which("nvcc") or ("/usr/local/bin/nvcc" if Path("/usr/local/bin/nvcc").exists() else None)
    if nvcc is None:
        pytest.skip("nvcc not found (CUDA toolkit): the source was generated but not compiled")
    (tmp_path / "k.cu").write_text(src)
    res = subprocess.run([nvcc, "-c", "-arch=sm_90", str(tmp_path / "k.cu"), "-o", str(tmp_path / "k.o")],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-4000:]
