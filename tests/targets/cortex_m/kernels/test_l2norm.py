"""L2_NORMALIZATION int8: l2norm_s8 (TFLite's reference_integer_ops::L2Normalization) as one-step
programs through the Cortex-M target -- on the host and on an emulated core -- against a NumPy
reference written from TFLite's kernel (its inverse square root: adaptc.luts'
``inv_sqrt_multiplier_exp``, itself checked against TFLite Micro's RSQRT in tests/core/test_luts.py);
the composite's vectorized inverse square root (RelaxFixedPoint) against the same, value by value.
tests/models/test_prelu_rsqrt_l2norm.py checks whole models against TFLite Micro."""
from __future__ import annotations

import shutil
import zlib

import numpy as np
import pytest
from tvm import relax

import adaptc.api as api
import kernel_ref as ref
from adaptc import luts, tvm_compat
from adaptc.fixedpoint import RelaxFixedPoint
from adaptc.program import Program, Step, Tensor
from adaptc.targets.cortex_m.kernels import KERNELS

EMULATOR = shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc")

CASES = [("small", (3, 7), 0), ("zp_minus_128", (2, 64), -128), ("zp_127", (4, 16), 127), ("depth1", (5, 1), 3),
         ("wide", (1, 2000), -5)]


def reference(x: np.ndarray, zp: int) -> np.ndarray:
    """reference_integer_ops::L2Normalization, row by row."""
    out = np.empty(x.shape, np.int8)
    for r, row in enumerate(x.reshape(-1, x.shape[-1]).astype(np.int64) - zp):
        m, s = luts.inv_sqrt_multiplier_exp(int((row * row).sum()))
        out.reshape(-1, x.shape[-1])[r] = np.clip([ref.mbqm_scalar(int(v), m, s + 7) for v in row], -128, 127)
    return out


def _program(shape, zp) -> Program:
    step = Step(0, "adaptc.ql2norm", "test case", [0], 1, {"input_zp": zp}, {}, in_shapes=[shape], out_shape=shape)
    return Program("l2norm_case", [Tensor(0, "x", shape, "int8", "input"), Tensor(1, "y", shape, "int8", "output")],
                   [step], [0], [1])


def _inputs(cid, shape, zp):
    rng = np.random.default_rng(zlib.crc32(cid.encode()))
    return np.stack([rng.integers(-128, 128, shape, dtype=np.int8) for _ in range(3)] +
                    [np.full(shape, zp, np.int8), np.full(shape, -128, np.int8), np.full(shape, 127, np.int8)])


@pytest.mark.parametrize("case", CASES, ids=lambda c: c[0])
def test_l2norm_s8_host(case):
    cid, shape, zp = case
    m = api.compile_program(_program(shape, zp), "cortex-m4")
    assert [s.kernel for s in m.scheduled.steps] == ["l2norm_s8"]
    for x in _inputs(cid, shape, zp):
        np.testing.assert_array_equal(m.run(x), reference(x, zp))


@pytest.mark.skipif(not EMULATOR, reason="needs qemu-system-arm and gcc-arm-none-eabi")
@pytest.mark.parametrize("case", [CASES[1], CASES[4]], ids=lambda c: c[0])
def test_l2norm_s8_emulated(case):
    cid, shape, zp = case
    m = api.compile_program(_program(shape, zp), "cortex-m4")
    xs = _inputs(cid, shape, zp)
    r = m.run_batch_on_target(xs)
    for k, x in enumerate(xs):
        np.testing.assert_array_equal(r.outputs[0, k].reshape(shape), reference(x, zp))


def test_relax_inverse_square_root_is_tflites():
    """RelaxFixedPoint.inv_sqrt_multiplier_exp (the composite's, every row at once) equals the
    scalar port on 0..4999, the int32 corners and 20,000 random values up to 2^31 - 1."""
    values = np.concatenate([np.arange(5000), np.random.default_rng(0).integers(0, 2**31 - 1, 20000),
                             [2**29 - 1, 2**29, 2**30, 2**31 - 1]]).astype(np.int32)
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType([len(values)], "int32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            out = bb.emit_output(relax.Tuple(list(RelaxFixedPoint(bb).inv_sqrt_multiplier_exp(x))))
        bb.emit_func_output(out)
    got = tvm_compat.build_llvm(bb.get())["main"](tvm_compat.to_tensor(values))
    want = np.array([luts.inv_sqrt_multiplier_exp(int(v)) for v in values])
    np.testing.assert_array_equal(got[0].numpy(), want[:, 0])
    np.testing.assert_array_equal(got[1].numpy(), want[:, 1])


def test_cost_features_by_hand():
    step = _program((4, 16), 0).steps[0]
    assert KERNELS["l2norm_s8"].features(step) == {"call": 1, "rows": 4, "elements": 64}
