"""MEAN over the spatial axes (global average pooling) at the Relax level.

int8: a TFLite MEAN through LegalizeQDQ becomes ``adaptc.qreduce``, bit-exact with TFLite Micro.
float: ONNX ReduceMean (opset 13 axes attribute, opset 18 axes input) through ToNHWC and
FuseFloatOps becomes ``adaptc.reduce_f32`` (keepdims 0) and matches onnxruntime; post-training
quantization (QuantizeInt8 / QuantizeWeights, then LegalizeQDQ) gives ``adaptc.qreduce`` again,
each bit-exact with TFLite Micro's MEAN of the same parameters. A mean over other axes is
refused with UnsupportedOperatorError naming the op and the axes.
"""
from __future__ import annotations

import re
import shutil
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper, version_converter
from tvm import relax
from tvm.script import ir as I
from tvm.script import relax as R

import adaptc
import tflite_ops as T
from adaptc import fixedpoint as fxp
from adaptc import tvm_compat
from adaptc.data import digits
from adaptc.errors import UnsupportedOperatorError
from adaptc.passes.fuse_float_ops import FuseFloatOps
from adaptc.passes.legalize_qdq import LegalizeQDQ
from adaptc.passes.quantize_int8 import QuantizeInt8
from adaptc.passes.quantize_weights import QuantizeWeights
from adaptc.passes.to_nhwc import ToNHWC
from adaptc.qops import CompositeCall, build_function, composite_name
from paths import DATA

GAP_EXITS = DATA / "gap_exits.onnx"
FLOAT_ACCURACY = (0.8267, 0.9800, 0.9778)   # per exit on the digits test split (tests/data/README.md)


# ------------------------------------------------------------------------------- helpers


def _composites(mod) -> list[tuple[str, object]]:
    """(composite name or op name, callee function or None) for each call in main, in order."""
    out = []
    for b in tvm_compat.bindings(mod["main"]):
        if isinstance(b.value, relax.Call):
            name = composite_name(mod, b.value)
            out.append((name or tvm_compat.op_name(b.value), mod[b.value.op] if name else None))
    return out


def _names(mod) -> list[str]:
    return [n for n, _ in _composites(mod)]


def _save(tmp_path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _int8_inputs(rng, shape, n_random=3, around=(0, 128)) -> list[np.ndarray]:
    """Uniform random inputs (in ``around`` = (center, half-width)), both extremes, and
    per-channel offsets that saturate some channels."""
    lo, hi = max(-128, around[0] - around[1]), min(128, around[0] + around[1])
    xs = [rng.integers(lo, hi, size=shape, dtype=np.int8) for _ in range(n_random)]
    xs += [np.full(shape, 127, np.int8), np.full(shape, -128, np.int8)]
    base = np.linspace(-128, 127, shape[-1]).round()
    xs.append(np.clip(base + rng.integers(-20, 21, size=shape), -128, 127).astype(np.int8))
    return xs


def _float_path(path):
    mod = adaptc.load(path).mod
    mod = tvm_compat.apply(ToNHWC(), mod)
    return tvm_compat.apply(FuseFloatOps(str(path)), mod)


def _composite_alone(func):
    """A module whose main calls the composite ``func`` on its activation parameters."""
    bb = relax.BlockBuilder()
    gv = bb.add_func(func, "composite")
    params = [relax.Var(p.name, p.ty) for p in func.params]
    with bb.function("main", params, attrs={"num_input": len(params)}):
        with bb.dataflow():
            out = bb.emit_output(relax.Call(gv, params))
        bb.emit_func_output(out)
    return bb.get()


def _check_qmean_against_tflm(func, rng):
    """Run a ``adaptc.qreduce`` composite alone and TFLite Micro's MEAN built from its attributes
    on the same inputs: equal bit for bit. Returns the outputs (to check they vary)."""
    a = tvm_compat.plain_attrs(func)
    assert a["Composite"] == "adaptc.qreduce"
    in_shape = tvm_compat.shape_of(func.params[0].ty)
    assert a["count"] == in_shape[1] * in_shape[2]
    assert [a["multiplier"][0], a["shift"][0]] == list(
        fxp.mean_multiplier(a["input_scale"], a["output_scale"], a["count"]))
    buf = T.mean_model(in_shape, a["axes"], a["keep_dims"], (a["input_scale"], a["input_zp"]),
                       (a["output_scale"], a["output_zp"]))
    vm = tvm_compat.build_llvm(_composite_alone(func))
    outs = []
    for x in _int8_inputs(rng, in_shape):
        got = tvm_compat.run_vm(vm, x)[0]
        np.testing.assert_array_equal(got, T.run_tflm(buf, x))
        outs.append(got)
    return outs


# ------------------------------------------------------------------------------- int8 TFLite


@dataclass
class Case:
    id: str
    shape: tuple[int, ...]
    axes: tuple[int, ...]
    keep_dims: bool
    in_q: tuple[float, int]
    out_q: tuple[float, int]
    spread: int = 128           # random inputs within in_zp +- spread


CASES = [
    Case("same_q_keep", (1, 5, 7, 3), (1, 2), True, (0.05, -3), (0.05, -3)),
    Case("same_q_drop", (1, 5, 7, 3), (1, 2), False, (0.05, -3), (0.05, -3)),
    Case("diff_q_keep", (1, 8, 8, 16), (1, 2), True, (0.1, 5), (0.02, -10)),
    Case("diff_q_drop", (1, 8, 8, 16), (1, 2), False, (0.1, 5), (0.02, -10)),
    Case("saturating_drop", (1, 6, 6, 8), (1, 2), False, (0.05, 0), (0.01, 20)),
    Case("coarser_out_batch2", (2, 3, 3, 4), (2, 1), True, (0.02, 0), (0.5, 100)),
    Case("negative_axes", (1, 4, 4, 5), (-3, -2), False, (0.03, -128), (0.06, -60)),
    Case("positive_shift", (1, 2, 2, 8), (1, 2), True, (0.5, 3), (0.05, -2), spread=15),  # shift +2
    Case("fold_clamped", (1, 8, 8, 2), (1, 2), False, (1e-4, 3), (1e4, -5)),   # 31 + shift < log2(64)
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_tflite_int8_mean_bit_exact_with_tflm(case, tmp_path):
    buf = T.mean_model(case.shape, list(case.axes), case.keep_dims, case.in_q, case.out_q)
    path = _save(tmp_path, f"{case.id}.tflite", buf)
    mod = tvm_compat.apply(LegalizeQDQ(str(path)), adaptc.load(path).mod)
    assert tvm_compat.well_formed(mod)
    [(name, func)] = _composites(mod)
    assert name == "adaptc.qreduce"
    a = tvm_compat.plain_attrs(func)
    assert a["axes"] == [1, 2] and a["keep_dims"] == case.keep_dims
    assert (a["input_zp"], a["output_zp"]) == (case.in_q[1], case.out_q[1])
    vm = tvm_compat.build_llvm(mod)
    rng = np.random.default_rng(zlib.crc32(case.id.encode()))
    outs = []
    for x in _int8_inputs(rng, case.shape, around=(case.in_q[1], case.spread)):
        got = tvm_compat.run_vm(vm, x)[0]
        ref = T.run_tflm(buf, x)
        assert got.shape == ref.shape and got.dtype == np.int8
        np.testing.assert_array_equal(got, ref)
        outs.append(got)
    if case.id == "saturating_drop":
        assert np.min(outs) == -128 and np.max(outs) == 127
    if case.id != "fold_clamped":       # (its output is the zero point whatever the input)
        assert len(np.unique(np.concatenate([o.ravel() for o in outs]))) >= 4


def test_qmean_attributes_by_hand(tmp_path):
    """in = out scale 0.05, 5x7 window: QuantizeMultiplier(1.0) = (2^30, 1); TFLM folds 1/35 in:
    shift' = floor(log2 35) = 5, multiplier = 2^35 // 35 = 981706810, shift = 1 - 5 = -4."""
    path = _save(tmp_path, "m.tflite", T.mean_model((1, 5, 7, 3), [1, 2], False, (0.05, -3), (0.05, -3)))
    mod = tvm_compat.apply(LegalizeQDQ(str(path)), adaptc.load(path).mod)
    a = tvm_compat.plain_attrs(_composites(mod)[0][1])
    assert a["count"] == 35 and a["multiplier"] == [981706810] and a["shift"] == [-4]
    assert (a["act_min"], a["act_max"]) == (-128, 127)
    assert fxp.mean_multiplier(0.05, 0.05, 35) == (981706810, -4)
    # a tiny ratio: QuantizeMultiplier gives shift -26, so TFLM folds 1/64 in as 2^5 / 64 (shift'
    # clamped to 31 + shift = 5 < log2 64), leaving the shift at the -31 MultiplyByQuantizedMultiplier allows
    m, s = fxp.quantize_multiplier(float(np.float32(1e-4)) / float(np.float32(1e4)))
    assert s == -26
    assert fxp.mean_multiplier(1e-4, 1e4, 64) == ((m << 5) // 64, -31)


@pytest.mark.parametrize("keep_dims", [False, True])
def test_tflite_float_mean(keep_dims, tmp_path):
    """float32 MEAN: keep_dims=false -> adaptc.mean_f32; keep_dims=true is a global average pool
    -> adaptc.avg_pool2d_f32. Both within 1e-5 of TFLite Micro."""
    shape = (1, 6, 5, 7)
    buf = T.mean_model_f32(shape, [1, 2], keep_dims)
    path = _save(tmp_path, "m.tflite", buf)
    mod = tvm_compat.apply(FuseFloatOps(str(path)), adaptc.load(path).mod)
    [(name, func)] = _composites(mod)
    assert name == ("adaptc.avg_pool2d_f32" if keep_dims else "adaptc.reduce_f32")
    if not keep_dims:
        a = tvm_compat.plain_attrs(func)
        assert a["axes"] == [1, 2] and a["keep_dims"] is False and a["count"] == 30
    vm = tvm_compat.build_llvm(mod)
    rng = np.random.default_rng(3)
    for _ in range(3):
        x = rng.standard_normal(shape).astype(np.float32)
        got = tvm_compat.run_vm(vm, x)[0]
        np.testing.assert_allclose(got, T.run_tflm(buf, x), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(got, x.mean(axis=(1, 2), keepdims=keep_dims), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------- float ONNX


@pytest.fixture(scope="module")
def gap_opset18(tmp_path_factory) -> Path:
    """gap_exits.onnx converted to opset 18: ReduceMean's axes become a constant input."""
    model = version_converter.convert_version(onnx.load(GAP_EXITS), 18)
    path = tmp_path_factory.mktemp("gap") / "gap_exits_opset18.onnx"
    onnx.save(model, path)
    return path


def test_gap_exits_file():
    """The bundled model: ReduceMean (not GlobalAveragePool) heads, three exits, small, and the
    per-exit test accuracy tests/data/README.md states (onnxruntime on the digits test split)."""
    model = onnx.load(GAP_EXITS)
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("ReduceMean") == 3 and "GlobalAveragePool" not in ops
    for n in model.graph.node:
        if n.op_type == "ReduceMean":
            attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
            assert attrs == {"axes": [2, 3], "keepdims": 0}
    assert [o.name for o in model.graph.output] == ["exit0", "exit1", "exit2"]
    assert GAP_EXITS.stat().st_size < 100_000
    _, _, x_test, y_test = digits()
    sess = ort.InferenceSession(str(GAP_EXITS))          # (batch 1, as exported)
    preds = np.array([[int(o.argmax()) for o in sess.run(None, {"image": x[None]})] for x in x_test])
    acc = [float((preds[:, e] == y_test).mean()) for e in range(3)]
    np.testing.assert_allclose(acc, FLOAT_ACCURACY, atol=1e-3)


@pytest.mark.parametrize("opset", [13, 18])
def test_gap_exits_float_matches_onnxruntime(opset, gap_opset18):
    path = GAP_EXITS if opset == 13 else gap_opset18
    if opset == 18:
        means = [n for n in onnx.load(path).graph.node if n.op_type == "ReduceMean"]
        assert means and all(len(n.input) == 2 for n in means)
    mod = _float_path(path)
    assert tvm_compat.well_formed(mod)
    names = _names(mod)
    assert names.count("adaptc.reduce_f32") == 3 and "relax.mean" not in names
    for name, func in _composites(mod):
        if name == "adaptc.reduce_f32":
            a = tvm_compat.plain_attrs(func)
            assert a["axes"] == [1, 2] and a["keep_dims"] is False
            assert tvm_compat.shape_of(func.params[0].ty)[1:3] in ((8, 8), (4, 4))
    vm = tvm_compat.build_llvm(mod)
    sess = ort.InferenceSession(str(path))
    _, _, x_test, _ = digits()
    # (TVM's llvm convolutions and onnxruntime's differ by ~3e-5 on logits up to ~60 before any
    # adaptc pass, hence a relative bound as well)
    for x in x_test[:16]:
        got = tvm_compat.run_vm(vm, x[None])
        ref = sess.run(None, {"image": x[None]})
        assert len(got) == 3
        for g, r in zip(got, ref):
            np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-5)


def _reduce_mean_model(opset: int, keepdims: int, axes=(2, 3), shape=(1, 3, 6, 6)) -> onnx.ModelProto:
    """Conv 3x3 -> Relu -> ReduceMean(axes, keepdims) -> Flatten -> Gemm, NCHW."""
    rng = np.random.default_rng(opset * 10 + keepdims)
    c = 5
    flat = int(np.prod([d for i, d in enumerate((c, *shape[2:]), start=1) if i not in axes]))
    inits = [numpy_helper.from_array((rng.standard_normal((c, shape[1], 3, 3)) * 0.3).astype(np.float32), "W"),
             numpy_helper.from_array(rng.standard_normal(c).astype(np.float32) * 0.1, "B"),
             numpy_helper.from_array((rng.standard_normal((4, flat)) * 0.3).astype(np.float32), "W2"),
             numpy_helper.from_array(rng.standard_normal(4).astype(np.float32) * 0.1, "B2")]
    if opset >= 18:
        inits.append(numpy_helper.from_array(np.asarray(axes, np.int64), "axes"))
        mean = helper.make_node("ReduceMean", ["r", "axes"], ["m"], keepdims=keepdims)
    else:
        mean = helper.make_node("ReduceMean", ["r"], ["m"], axes=list(axes), keepdims=keepdims)
    nodes = [helper.make_node("Conv", ["x", "W", "B"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]), mean,
             helper.make_node("Flatten", ["m"], ["f"]),
             helper.make_node("Gemm", ["f", "W2", "B2"], ["y"], transB=1)]
    g = helper.make_graph(nodes, "mean", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [shape[0], 4])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


@pytest.mark.parametrize("opset", [13, 18])
@pytest.mark.parametrize("keepdims", [0, 1])
def test_reduce_mean_spellings(opset, keepdims, tmp_path):
    """Both ReduceMean spellings, both keepdims: ToNHWC remaps the axes to [1, 2]; keepdims=0 ->
    adaptc.mean_f32, keepdims=1 (a global average pool, as GlobalAveragePool imports) ->
    adaptc.avg_pool2d_f32 over the whole plane. Numbers within 1e-5 of onnxruntime."""
    path = tmp_path / "mean.onnx"
    onnx.save(_reduce_mean_model(opset, keepdims), path)
    mod = _float_path(path)
    assert tvm_compat.well_formed(mod)
    pool = ["adaptc.avg_pool2d_f32", "relax.reshape"] if keepdims else ["adaptc.reduce_f32"]
    assert _names(mod) == ["relax.permute_dims", "adaptc.conv2d_f32", *pool, "relax.reshape", "adaptc.dense_f32"]
    func = _composites(mod)[2][1]
    a = tvm_compat.plain_attrs(func)
    if keepdims:
        assert a["pool_size"] == [6, 6] and a["strides"] == [1, 1] and a["padding"] == [0, 0, 0, 0]
    else:
        assert a["axes"] == [1, 2] and a["keep_dims"] is False and a["count"] == 36
    vm = tvm_compat.build_llvm(mod)
    sess = ort.InferenceSession(str(path))
    rng = np.random.default_rng(5)
    for _ in range(3):
        x = rng.standard_normal((1, 3, 6, 6)).astype(np.float32)
        np.testing.assert_allclose(tvm_compat.run_vm(vm, x)[0], sess.run(None, {"x": x})[0], rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------- post-training int8


@pytest.mark.parametrize("quantizer", ["int8", "weights_pot4"])
def test_gap_exits_post_training_int8(quantizer):
    """Calibration then LegalizeQDQ: each ReduceMean head becomes adaptc.qmean with its own
    output parameters; every qmean composite is bit-exact with TFLite Micro's MEAN of the same
    parameters; the int8 exits classify about as well as the float ones."""
    x_train, _, x_test, y_test = digits()
    cal = x_train[:64]
    mod = _float_path(GAP_EXITS)
    if quantizer == "int8":
        q = tvm_compat.apply([QuantizeInt8(cal, str(GAP_EXITS)), LegalizeQDQ(str(GAP_EXITS))], mod)
    else:
        q = tvm_compat.apply([QuantizeWeights(cal, "pot4", str(GAP_EXITS)),
                              LegalizeQDQ(str(GAP_EXITS), weight_formats=True)], mod)
    assert tvm_compat.well_formed(q)
    calls = _composites(q)
    means = [f for n, f in calls if n == "adaptc.qreduce"]
    assert len(means) == 3 and not any(n in ("relax.mean", "adaptc.qavg_pool2d") for n, _ in calls)
    rng = np.random.default_rng(11)
    for func in means:
        a = tvm_compat.plain_attrs(func)
        assert a["keep_dims"] is False and a["axes"] == [1, 2]
        assert a["output_scale"] != a["input_scale"]          # calibrated, not the input's
        outs = _check_qmean_against_tflm(func, rng)
        assert len(np.unique(np.concatenate([o.ravel() for o in outs]))) >= 4
    attrs = tvm_compat.plain_attrs(q["main"])
    s_in, zp_in = attrs["adaptc.input_scale"], attrs["adaptc.input_zero_point"]
    vm = tvm_compat.build_llvm(q)
    correct = np.zeros(3)
    for x, y in zip(x_test, y_test):
        xq = np.clip(np.round(x[None] / s_in) + zp_in, -128, 127).astype(np.int8)
        correct += [int(o.argmax()) == y for o in tvm_compat.run_vm(vm, xq)]
    acc = correct / len(y_test)
    margin = 0.03 if quantizer == "int8" else 0.10     # measured: -1.1 pp | -7.1 pp on exit 0
    assert np.all(acc >= np.asarray(FLOAT_ACCURACY) - margin), acc


# ------------------------------------------------------------------------------- refused axes


@pytest.mark.parametrize("axes,shown", [([1, 3], "axes [1, 3]"), ([0, 2], "axes [0, 2]"), ([-1, 1], "axes [-1, 1]")])
def test_tflite_mean_over_axes_that_are_not_neighbours_refused_by_loader(axes, shown, tmp_path):
    path = _save(tmp_path, "m.tflite", T.mean_model((1, 4, 4, 3), axes, True, (0.05, 0), (0.05, 0)))
    with pytest.raises(UnsupportedOperatorError,
                       match=rf"unsupported operator MEAN .*MEAN over {re.escape(shown)} ") as e:
        adaptc.load(path)
    assert e.value.op == "MEAN" and "MEAN" in e.value.supported


@pytest.mark.parametrize("keep_dims", [True, False])
@pytest.mark.parametrize("shape,axes", [((1, 4, 4, 3), [3]), ((1, 4, 4, 3), [1]), ((2, 4, 4, 3), [0, 1, 2]),
                                        ((1, 4, 4, 3), [-1]), ((1, 5, 4, 3), [1, 2, 3]), ((1, 12, 8), [1]),
                                        ((2, 10), [1])])
def test_tflite_mean_over_any_neighbouring_axes(shape, axes, keep_dims, tmp_path):
    """MEAN over neighbouring axes of any rank (a channel mean, a 1-D global pooling) bit-exact
    with TFLite Micro."""
    path = _save(tmp_path, "m.tflite", T.mean_model(shape, axes, keep_dims, (0.05, 3), (0.02, -7)))
    m = adaptc.compile(path)
    assert [s.op for s in m.program.steps] == ["adaptc.qreduce"]
    rng = np.random.default_rng(zlib.crc32(str((shape, axes)).encode()))
    for x in [rng.integers(-128, 128, size=shape, dtype=np.int8) for _ in range(3)] + [np.full(shape, 127, np.int8)]:
        np.testing.assert_array_equal(m.run(x), T.run_tflm(path.read_bytes(), x))


@pytest.mark.parametrize("axes,shown", [([1, 3], "axes [1, 3]"), ([0, 2], "axes [0, 2]")])
def test_onnx_reduce_mean_over_axes_that_are_not_neighbours_refused_by_loader(axes, shown, tmp_path):
    model = _reduce_mean_model(13, 1)
    node = next(n for n in model.graph.node if n.op_type == "ReduceMean")
    del node.attribute[:]
    node.attribute.append(helper.make_attribute("keepdims", 1))
    node.attribute.append(helper.make_attribute("axes", axes))
    path = tmp_path / "bad.onnx"
    onnx.save(model, path)
    with pytest.raises(UnsupportedOperatorError, match=rf"unsupported operator ReduceMean at node 'm' "
                                                       rf"\(ReduceMean over {re.escape(shown)} of a 4-D tensor"):
        adaptc.load(path)


@pytest.mark.parametrize("axes", [(1,), (1, 2, 3)])
def test_onnx_reduce_mean_over_channels(axes, tmp_path):
    """A mean over the channels (after ToNHWC: the last axis) or over everything but the batch:
    adaptc.mean_f32, within 1e-5 of onnxruntime."""
    path = tmp_path / "cmean.onnx"
    onnx.save(_reduce_mean_model(13, 0, axes=axes), path)
    m = adaptc.compile(path)
    assert "adaptc.reduce_f32" in [s.op for s in m.program.steps]
    sess = ort.InferenceSession(str(path))
    for seed in range(3):
        x = np.random.default_rng(seed).standard_normal((1, 3, 6, 6)).astype(np.float32)
        np.testing.assert_allclose(m.run(x), sess.run(None, {"x": x})[0], rtol=1e-5, atol=1e-5)


def test_legalize_qdq_refuses_other_axes():
    """Past the loader (TVM's importer called directly), the pass refuses the mean itself."""
    buf = T.mean_model((1, 4, 4, 3), [1, 3], False, (0.05, 0), (0.05, 0))
    mod = tvm_compat.from_tflite(buf)
    with pytest.raises(UnsupportedOperatorError, match=r"mean at node '.*' \(mean over axes \[1, 3\] of a 4-D"):
        tvm_compat.apply(LegalizeQDQ("m.tflite"), mod)


@I.ir_module
class ChannelMean:
    @R.function
    def main(x: R.Tensor((1, 4, 4, 6), "float32")) -> R.Tensor((1, 1, 4, 1), "float32"):
        R.func_attr({"num_input": 1})
        with R.dataflow():
            y = R.mean(x, axis=[1, 3], keepdims=True)
            R.output(y)
        return y


def test_fuse_float_ops_refuses_other_axes():
    with pytest.raises(UnsupportedOperatorError, match=r"mean at node 'y' \(mean over axes \[1, 3\] of a 4-D"):
        tvm_compat.apply(FuseFloatOps("net.onnx"), ChannelMean)


def test_onnx_reduce_mean_over_channels_refused_after_layout_change(tmp_path):
    """ReduceMean axes [1, 2] passes the loader (the spatial axes of an NHWC-laid-out ONNX model),
    but after an NCHW Conv it means channels and H: ToNHWC remaps it to axes [1, 3], refused."""
    path = tmp_path / "cmean.onnx"
    onnx.save(_reduce_mean_model(13, 1, axes=(1, 2)), path)
    mod = tvm_compat.apply(ToNHWC(), adaptc.load(path).mod)
    with pytest.raises(UnsupportedOperatorError, match=r"mean at node '.*' \(mean over axes \[1, 3\] of a 4-D"):
        tvm_compat.apply(FuseFloatOps(str(path)), mod)


@pytest.mark.parametrize("keep_dims", [True, False])
def test_mean_f32_composite_alone(keep_dims):
    """The float composite as the C kernel will read it, both output shapes ([N, 1, 1, C] and
    [N, C]), against NumPy."""
    shape = (2, 3, 5, 4)
    out_shape = (2, 1, 1, 4) if keep_dims else (2, 4)
    call = CompositeCall("adaptc.reduce_f32", [None], [], {"reduce": "mean", "axes": [1, 2], "keep_dims": keep_dims,
                                                         "count": 15,
                                                         "act_min": -np.inf, "act_max": np.inf},
                         out_shape, "float32", "mean")
    func = build_function(call, [relax.TensorType(shape, "float32")])
    assert tvm_compat.shape_of(func.ret_ty) == out_shape
    x = np.random.default_rng(9).standard_normal(shape).astype(np.float32)
    got = tvm_compat.run_vm(tvm_compat.build_llvm(_composite_alone(func)), x)[0]
    np.testing.assert_allclose(got, x.mean(axis=(1, 2), keepdims=keep_dims), rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------------------- generated C


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_tflite_int8_mean_c_bit_exact_with_tflm(case, tmp_path):
    """The generated C (mean_s8) of a one-MEAN TFLite model equals TFLite Micro bit for bit."""
    buf = T.mean_model(case.shape, list(case.axes), case.keep_dims, case.in_q, case.out_q)
    m = adaptc.compile(_save(tmp_path, f"{case.id}.tflite", buf), target="cortex-m4")
    assert [s.kernel for s in m.scheduled.steps] in (["reduce_s8"], ["reduce_s8_dsp"])
    rng = np.random.default_rng(zlib.crc32(case.id.encode()) + 1)
    for x in _int8_inputs(rng, case.shape, around=(case.in_q[1], case.spread)):
        np.testing.assert_array_equal(m.run(x), T.run_tflm(buf, x))


@pytest.mark.skipif(not shutil.which("qemu-system-arm"), reason="needs qemu-system-arm")
@pytest.mark.parametrize("target", ["cortex-m0plus", "cortex-m55"])
def test_tflite_int8_mean_on_emulated_cores(target, tmp_path):
    case = CASES[3]
    buf = T.mean_model(case.shape, list(case.axes), case.keep_dims, case.in_q, case.out_q)
    m = adaptc.compile(_save(tmp_path, "mean.tflite", buf), target=target)
    xs = np.stack(_int8_inputs(np.random.default_rng(5), case.shape))
    r = m.run_batch_on_target(xs)
    want = np.stack([T.run_tflm(buf, x) for x in xs])
    np.testing.assert_array_equal(r.outputs[0].reshape(want.shape), want)


def test_gap_classifier_float_c_matches_onnxruntime():
    """The float PyTorch-style classifier (ReduceMean global pooling) as float C for the
    Cortex-M4: every head (the model's three outputs, all returned without exits) within 1e-5
    (relative and absolute) of onnxruntime on every test image; with its exits as gates, the
    logits of the exit taken too."""
    _, _, x_test, _ = digits()
    sess = ort.InferenceSession(str(GAP_EXITS))
    want = [sess.run(None, {"image": x[None]}) for x in x_test]
    m = adaptc.compile(GAP_EXITS, target="cortex-m4")
    assert m.format == "float32" and "reduce_f32" in [s.kernel for s in m.scheduled.steps]
    for x, w in zip(x_test, want):
        got = m.run(x[None])
        assert len(got) == len(w) == 3
        for g, h in zip(got, w):
            np.testing.assert_allclose(g, h, rtol=1e-5, atol=1e-5)
    e = adaptc.compile(GAP_EXITS, target="cortex-m4", exits=True, thresholds=[0.9, 0.9])
    taken = set()
    for x, w in zip(x_test, want):
        r = e.run(x[None])
        taken.add(r.exit)
        np.testing.assert_allclose(r.logits, w[r.exit], rtol=1e-5, atol=1e-5)
        assert r.label == int(np.argmax(w[r.exit]))
    assert taken == {0, 1, 2}


@pytest.fixture(scope="module", params=["int8", "pot4"])
def gap_quantized(request):
    x, y, _, _ = digits()
    return adaptc.compile(GAP_EXITS, target="cortex-m4", exits=True, calibration=(x, y),
                          quantize=None if request.param == "int8" else request.param)


def test_gap_classifier_quantized_with_exits(gap_quantized):
    """int8 / pot4 by post-training quantization, exits calibrated: at every level the C equals
    the Relax module bit for bit on every test image, and classifies about as well as the float
    model's final head."""
    m = gap_quantized
    _, _, x_test, y_test = digits()
    assert len(m.levels) == 3 and sum(s.kernel.startswith("reduce_s8") for s in m.scheduled.steps) == 3
    xs = m.quantize_input(x_test)
    for level in range(3):
        exits = []
        for x in xs:
            got, ref = m.run(x[None], level=level), m.reference(x[None], level=level)
            assert (got.exit, got.label, got.confidence) == (ref.exit, ref.label, ref.confidence)
            np.testing.assert_array_equal(got.logits, ref.logits)
            exits.append(got.exit)
        assert max(exits) == level
    top = np.mean([m.run(x[None]).label == y for x, y in zip(xs, y_test)])
    margin = 0.02 if m.quantization["scheme"] == "int8" else 0.03
    assert top >= FLOAT_ACCURACY[2] - margin, top
    assert m.exits["calibration"]["speedup_simulated_cycles"] > 1.2


@pytest.mark.skipif(not shutil.which("qemu-system-arm"), reason="needs qemu-system-arm")
def test_gap_classifier_quantized_on_the_emulated_m4(gap_quantized):
    m = gap_quantized
    _, _, x_test, _ = digits()
    xs = m.quantize_input(x_test[:40])
    r = m.run_batch_on_target(xs)                   # [level, input]
    for level in range(len(m.levels)):
        for k, x in enumerate(xs):
            host = m.run(x[None], level=level)
            assert (int(r.exit[level, k]), int(r.label[level, k])) == (host.exit, host.label)
            np.testing.assert_array_equal(r.logits[level, k], host.logits)
