"""BATCH_MATMUL (TFLite) and batched MatMul (ONNX): adaptc.qbatch_matmul / adaptc.batch_matmul_f32,
kernels batch_matmul_s8 / batch_matmul_f32, the batch dims broadcast.

int8: TFLite Micro's reference BatchMatMul (acc of the offset operands, requantized by
lhs_scale * rhs_scale / out_scale), bit-exact on llvm and as C; float within 1e-5 of TFLite
Micro / onnxruntime; ONNX post-training int8: the C equals the Relax module bit for bit. The C
entry point takes one input, so C cases multiply an input by a constant or by itself.
"""
from __future__ import annotations

import shutil

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import adaptc
import tflite_ops as T
from adaptc import tvm_compat
from adaptc.passes.fuse_float_ops import FuseFloatOps
from adaptc.passes.legalize_qdq import LegalizeQDQ

Q = {"a_q": (0.05, 3), "b_q": (0.04, -2), "out_q": (0.2, 5)}
# (id, shape a, shape b, adj_x, adj_y)
TWO_INPUTS = [
    ("same_batch", (2, 3, 4), (2, 4, 5), False, False),
    ("broadcast", (1, 3, 4), (2, 1, 4, 5), False, False),
    ("adjoint", (2, 4, 3), (2, 5, 4), True, True),
    ("rank2_lhs", (3, 4), (2, 4, 5), False, False),
]


def _save(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _int8(rng, shape):
    return rng.integers(-128, 128, size=shape, dtype=np.int8)


@pytest.mark.parametrize("int8", [True, False], ids=["int8", "float"])
@pytest.mark.parametrize("case", TWO_INPUTS, ids=lambda c: c[0])
def test_tflite_two_input_batch_matmul_matches_tflm(case, int8, tmp_path):
    """Two activations (the Relax module on llvm): int8 bit-exact, float within 1e-5."""
    _, sa, sb, adj_x, adj_y = case
    buf = T.batch_matmul_model(sa, sb, adj_x=adj_x, adj_y=adj_y, **(Q if int8 else {}))
    path = _save(tmp_path, "b.tflite", buf)
    mod = tvm_compat.apply((LegalizeQDQ if int8 else FuseFloatOps)(str(path)), adaptc.load(path).mod)
    assert tvm_compat.well_formed(mod)
    vm = tvm_compat.build_llvm(mod)
    rng = np.random.default_rng(1)
    for _ in range(3):
        xs = [_int8(rng, s) if int8 else rng.standard_normal(s).astype(np.float32) for s in (sa, sb)]
        got, ref = tvm_compat.run_vm(vm, *xs)[0], T.run_tflm(buf, *xs)
        if int8:
            np.testing.assert_array_equal(got, ref)
            assert len(np.unique(got)) > 10
        else:
            np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


C_CASES = [  # (id, shape a, shape b, adj_y, const a?, b is a?)
    ("const_lhs", (3, 4), (2, 4, 5), False, True, False),
    ("self_transposed", (2, 3, 4), (2, 3, 4), True, False, True),
]


def _c_model(case, int8, rng):
    _, sa, sb, adj_y, const_a, b_is_a = case
    kw = dict(Q, b_q=Q["a_q"] if b_is_a else Q["b_q"]) if int8 else {}
    if const_a:
        kw["const_a"] = _int8(rng, sa) if int8 else rng.standard_normal(sa).astype(np.float32)
    return T.batch_matmul_model(sa, sb, adj_y=adj_y, b_is_a=b_is_a, **kw), sb if const_a else sa


@pytest.mark.parametrize("int8", [True, False], ids=["int8", "float"])
@pytest.mark.parametrize("case", C_CASES, ids=lambda c: c[0])
def test_tflite_batch_matmul_c_matches_tflm(case, int8, tmp_path):
    rng = np.random.default_rng(2)
    buf, shape = _c_model(case, int8, rng)
    m = adaptc.compile(_save(tmp_path, "b.tflite", buf), target="cortex-m4")
    assert ("batch_matmul_s8" if int8 else "batch_matmul_f32") in [s.kernel for s in m.scheduled.steps]
    for _ in range(3):
        x = _int8(rng, shape) if int8 else rng.standard_normal(shape).astype(np.float32)
        ref = T.run_tflm(buf, x)
        got = m.run(x).reshape(ref.shape)
        if int8:
            np.testing.assert_array_equal(got, ref)
        else:
            np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(not shutil.which("qemu-system-arm"), reason="needs qemu-system-arm")
def test_tflite_int8_batch_matmul_on_the_emulated_m4(tmp_path):
    rng = np.random.default_rng(3)
    buf, shape = _c_model(C_CASES[0], True, rng)
    m = adaptc.compile(_save(tmp_path, "b.tflite", buf), target="cortex-m4")
    xs = np.stack([_int8(rng, shape) for _ in range(4)])
    r = m.run_batch_on_target(xs)
    want = np.stack([T.run_tflm(buf, x) for x in xs])
    np.testing.assert_array_equal(r.outputs[0].reshape(want.shape), want)


# ------------------------------------------------------------------------------- ONNX


def _onnx_attention(path, const_lhs: bool):
    """x [1, 2, 3, 4] -> x @ x^T (Transpose, MatMul of two activations: scores [1, 2, 3, 3]) ->
    scores @ V (a constant [2, 3, 5]: broadcast batch dims) -- or C [3, 3] @ scores."""
    rng = np.random.default_rng(4)
    v = numpy_helper.from_array(rng.standard_normal((3, 3) if const_lhs else (2, 3, 5)).astype(np.float32), "v")
    nodes = [helper.make_node("Transpose", ["x"], ["xt"], perm=[0, 1, 3, 2]),
             helper.make_node("MatMul", ["x", "xt"], ["s"]),
             helper.make_node("MatMul", ["v", "s"] if const_lhs else ["s", "v"], ["y"])]
    out = [1, 2, 3, 3] if const_lhs else [1, 2, 3, 5]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 3, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, out)], [v])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


@pytest.mark.parametrize("const_lhs", [False, True], ids=["const_rhs", "const_lhs"])
def test_onnx_batched_matmul_float_and_int8(const_lhs, tmp_path):
    path = _onnx_attention(tmp_path / "a.onnx", const_lhs)
    sess = ort.InferenceSession(str(path))
    rng = np.random.default_rng(5)
    m = adaptc.compile(path, target="cortex-m4")
    assert [s.kernel for s in m.scheduled.steps].count("batch_matmul_f32") == 2
    for _ in range(3):
        x = rng.standard_normal((1, 2, 3, 4)).astype(np.float32)
        np.testing.assert_allclose(m.run(x), sess.run(None, {"x": x})[0], rtol=1e-5, atol=1e-5)
    q = adaptc.compile(path, target="cortex-m4", calibration=rng.standard_normal((16, 1, 2, 3, 4)).astype(np.float32))
    assert [s.op for s in q.program.steps].count("adaptc.qbatch_matmul") == 2
    for _ in range(3):
        xq = q.quantize_input(rng.standard_normal((1, 2, 3, 4)).astype(np.float32))
        np.testing.assert_array_equal(q.run(xq), q.reference(xq))
