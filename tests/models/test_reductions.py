"""SUM and REDUCE_MAX (TFLite) / ReduceSum and ReduceMax (ONNX) over neighbouring axes, the
reduction family of MEAN (adaptc.qreduce, adaptc.reduce_f32; kernels reduce_s8, reduce_f32).

int8: TFLite SUM requantizes as TFLite Micro's QuantizedMeanOrSum (compute_sum) and REDUCE_MAX
takes the largest int8 value, TFLite Micro requiring equal input and output parameters (other
parameters are refused); both bit-exact with TFLite Micro, on llvm and as C. float: within 1e-5
of TFLite Micro / onnxruntime. ONNX post-training int8: the C equals the Relax module bit for bit.
"""
from __future__ import annotations

import shutil
import zlib

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import adaptc
import tflite_ops as T
from adaptc import fixedpoint as fxp
from adaptc import tvm_compat
from adaptc.errors import UnsupportedOperatorError
from adaptc.passes.legalize_qdq import LegalizeQDQ
from adaptc.qops import composite_name

SHAPE = (2, 4, 5, 6)
# (op, axes, keep_dims, input q, output q): SUM rescales by in / out scale; MAX keeps its input's
CASES = [
    ("SUM", (1, 2), True, (0.05, -3), (0.4, 4)),
    ("SUM", (2,), False, (0.02, 10), (0.05, -7)),
    ("SUM", (1, 2, 3), False, (0.1, 0), (0.1, 0)),          # saturates: a sum of 120 values
    ("SUM", (-1,), True, (0.03, -128), (0.2, 30)),
    ("REDUCE_MAX", (1, 2), True, (0.05, -3), (0.05, -3)),
    ("REDUCE_MAX", (3,), False, (0.02, 100), (0.02, 100)),
    ("REDUCE_MAX", (0, 1), False, (0.1, 0), (0.1, 0)),
]


def _id(case):
    return f"{case[0]}-{'_'.join(str(a) for a in case[1])}-{'keep' if case[2] else 'drop'}"


def _save(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _int8(seed, shape, n=4):
    rng = np.random.default_rng(seed)
    xs = [rng.integers(-128, 128, size=shape, dtype=np.int8) for _ in range(n)]
    return xs + [np.full(shape, 127, np.int8), np.full(shape, -128, np.int8)]


def _composites(mod):
    return [n for b in tvm_compat.bindings(mod["main"]) if (n := composite_name(mod, b.value))]


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_tflite_int8_reduction_bit_exact_with_tflm(case, tmp_path):
    op, axes, keep, in_q, out_q = case
    buf = T.reduce_model(op, SHAPE, list(axes), keep, in_q, out_q)
    path = _save(tmp_path, "r.tflite", buf)
    mod = tvm_compat.apply(LegalizeQDQ(str(path)), adaptc.load(path).mod)
    assert tvm_compat.well_formed(mod) and _composites(mod) == ["adaptc.qreduce"]
    func = mod[next(b.value.op for b in tvm_compat.bindings(mod["main"]))]
    a = tvm_compat.plain_attrs(func)
    assert a["reduce"] == {"SUM": "sum", "REDUCE_MAX": "max"}[op]
    if op == "SUM":   # no 1/count folded in: TFLM's QuantizeMultiplier(in_scale / out_scale)
        assert (a["multiplier"][0], a["shift"][0]) == fxp.quantize_multiplier(
            float(np.float32(in_q[0])) / float(np.float32(out_q[0])))
    vm = tvm_compat.build_llvm(mod)
    outs = []
    for x in _int8(zlib.crc32(_id(case).encode()), SHAPE):
        got = tvm_compat.run_vm(vm, x)[0]
        ref = T.run_tflm(buf, x)
        assert got.shape == ref.shape and got.dtype == np.int8
        np.testing.assert_array_equal(got, ref)
        outs.append(got)
    assert len(np.unique(np.concatenate([o.ravel() for o in outs]))) >= 3


@pytest.mark.parametrize("case", [CASES[0], CASES[1], CASES[4], CASES[6]], ids=_id)
def test_tflite_int8_reduction_c_bit_exact_with_tflm(case, tmp_path):
    op, axes, keep, in_q, out_q = case
    buf = T.reduce_model(op, SHAPE, list(axes), keep, in_q, out_q)
    m = adaptc.compile(_save(tmp_path, "r.tflite", buf), target="cortex-m4")
    assert [s.kernel for s in m.scheduled.steps] in (["reduce_s8"], ["reduce_s8_dsp"])
    for x in _int8(7, SHAPE):
        np.testing.assert_array_equal(m.run(x).reshape(T.run_tflm(buf, x).shape), T.run_tflm(buf, x))


@pytest.mark.skipif(not shutil.which("qemu-system-arm"), reason="needs qemu-system-arm")
def test_tflite_int8_sum_and_max_on_the_emulated_m4(tmp_path):
    for case in (CASES[0], CASES[5]):
        op, axes, keep, in_q, out_q = case
        buf = T.reduce_model(op, SHAPE, list(axes), keep, in_q, out_q)
        m = adaptc.compile(_save(tmp_path, f"{op}.tflite", buf), target="cortex-m4")
        xs = np.stack(_int8(5, SHAPE))
        r = m.run_batch_on_target(xs)
        want = np.stack([T.run_tflm(buf, x) for x in xs])
        np.testing.assert_array_equal(r.outputs[0].reshape(want.shape), want)


def test_tflite_int8_reduce_max_with_other_output_parameters_refused(tmp_path):
    """TFLite Micro's REDUCE_MAX requires equal input and output scale and zero point."""
    buf = T.reduce_model("REDUCE_MAX", SHAPE, [1, 2], True, (0.05, -3), (0.1, -3))
    path = _save(tmp_path, "r.tflite", buf)
    with pytest.raises(UnsupportedOperatorError, match="REDUCE_MAX with output quantization"):
        tvm_compat.apply(LegalizeQDQ(str(path)), adaptc.load(path).mod)


@pytest.mark.parametrize("op", ["SUM", "REDUCE_MAX"])
@pytest.mark.parametrize("axes,keep", [((1, 2), True), ((2, 3), False), ((0,), False)])
def test_tflite_float_reduction_within_1e5_of_tflm(op, axes, keep, tmp_path):
    buf = T.reduce_model(op, SHAPE, list(axes), keep)
    m = adaptc.compile(_save(tmp_path, "r.tflite", buf), target="cortex-m4")
    assert [s.kernel for s in m.scheduled.steps] == ["reduce_f32"]
    rng = np.random.default_rng(3)
    for _ in range(3):
        x = rng.standard_normal(SHAPE).astype(np.float32)
        np.testing.assert_allclose(m.run(x).reshape(T.run_tflm(buf, x).shape), T.run_tflm(buf, x),
                                   rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("op", ["SUM", "REDUCE_MAX"])
def test_tflite_reduction_over_axes_that_are_not_neighbours_refused_by_loader(op, tmp_path):
    path = _save(tmp_path, "r.tflite", T.reduce_model(op, SHAPE, [1, 3], False))
    with pytest.raises(UnsupportedOperatorError, match=rf"{op} over axes \[1, 3\]"):
        adaptc.load(path)


# ------------------------------------------------------------------------------- ONNX


def _onnx_reduce(path, op, axes, keepdims, opset, shape=(1, 3, 6, 6)):
    """Conv -> Relu -> op(axes): a reduction of a feature map, as a network computes one."""
    rng = np.random.default_rng(1)
    w = numpy_helper.from_array(rng.standard_normal((4, shape[1], 3, 3)).astype(np.float32) * 0.3, "w")
    inits = [w]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))
    as_input = op == "ReduceSum" and opset >= 13 or opset >= 18
    reduce_in = ["r"]
    attrs = {"keepdims": keepdims}
    if as_input:
        inits.append(numpy_helper.from_array(np.asarray(axes, np.int64), "axes"))
        reduce_in.append("axes")
    else:
        attrs["axes"] = list(axes)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node(op, reduce_in, ["y"], **attrs)]
    out = [d for i, d in enumerate([shape[0], 4, shape[2], shape[3]]) if i not in axes or keepdims]
    out = [1 if i in axes else d for i, d in enumerate([shape[0], 4, shape[2], shape[3]])] if keepdims else out
    g = helper.make_graph(nodes, "g", [x], [helper.make_tensor_value_info("y", TensorProto.FLOAT, out)], inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)]), path)
    return path


ONNX_CASES = [("ReduceSum", (2, 3), 0, 13), ("ReduceSum", (1,), 1, 18), ("ReduceMax", (2, 3), 0, 13),
              ("ReduceMax", (1, 2, 3), 1, 18)]


@pytest.mark.parametrize("op,axes,keep,opset", ONNX_CASES)
def test_onnx_float_reduction_within_1e5_of_onnxruntime(op, axes, keep, opset, tmp_path):
    path = _onnx_reduce(tmp_path / "r.onnx", op, axes, keep, opset)
    m = adaptc.compile(path, target="cortex-m4")
    assert "reduce_f32" in [s.kernel for s in m.scheduled.steps]
    sess = ort.InferenceSession(str(path))
    rng = np.random.default_rng(2)
    for _ in range(3):
        x = rng.standard_normal((1, 3, 6, 6)).astype(np.float32)
        want = sess.run(None, {"x": x})[0]
        np.testing.assert_allclose(m.run(x).reshape(want.shape), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("op,axes,keep,opset", [ONNX_CASES[0], ONNX_CASES[2]])
def test_onnx_post_training_int8_reduction(op, axes, keep, opset, tmp_path):
    """Calibrated int8: a qreduce step (a max keeping its input's parameters), the C bit-exact
    with the Relax module."""
    path = _onnx_reduce(tmp_path / "r.onnx", op, axes, keep, opset)
    rng = np.random.default_rng(4)
    q = adaptc.compile(path, target="cortex-m4", calibration=rng.standard_normal((16, 1, 3, 6, 6)).astype(np.float32))
    step = next(s for s in q.program.steps if s.op == "adaptc.qreduce")
    assert step.attrs["reduce"] == {"ReduceSum": "sum", "ReduceMax": "max"}[op]
    if op == "ReduceMax":
        producer = next(s for s in q.program.steps if s.output == step.inputs[0])
        assert (step.attrs["output_scale"], step.attrs["output_zp"]) == (
            producer.attrs["output_scale"], producer.attrs["output_zp"])
    for _ in range(4):
        xq = q.quantize_input(rng.standard_normal((1, 3, 6, 6)).astype(np.float32))
        np.testing.assert_array_equal(q.run(xq), q.reference(xq))


def test_onnx_reduction_over_axes_that_are_not_neighbours_refused_by_loader(tmp_path):
    path = _onnx_reduce(tmp_path / "r.onnx", "ReduceMax", (1, 3), 0, 13)
    with pytest.raises(UnsupportedOperatorError, match=r"ReduceMax over axes \[1, 3\]"):
        adaptc.load(path)
