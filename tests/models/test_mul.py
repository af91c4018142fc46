"""MUL end to end: TFLite MUL and ONNX Mul, broadcasting.

int8 TFLite: ``adaptc.qmul`` is TFLite Micro's int8 MUL bit for bit -- two-input models at the
Relax level (the C entry point takes one input: such a model is refused by the target), and as
generated C with a constant operand (flash) or with both operands computed from the one input
(x * x, a squeeze-excitation gate, a spatial gate), fused RELU / RELU6 included. float32: within
1e-5 of TFLM. ONNX: the product of two conv branches and a squeeze-excitation block (GlobalAveragePool
-> Conv -> Relu -> Conv -> HardSigmoid -> Mul with the feature map) within 1e-5 of onnxruntime;
their post-training int8 builds bit-exact with the Relax module, each qmul TFLM's MUL of its
operands' parameters.
"""
from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from tvm import relax

import adaptc
import kernel_ref as ref
import tflite_ops as T
from adaptc import tvm_compat
from adaptc.errors import TargetError, UnsupportedOperatorError
from adaptc.passes.fuse_float_ops import FuseFloatOps
from adaptc.passes.legalize_qdq import LegalizeQDQ
from adaptc.qops import composite_name


def _save(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _composites(mod) -> list[tuple[str, object]]:
    out = []
    for b in tvm_compat.bindings(mod["main"]):
        if isinstance(b.value, relax.Call):
            name = composite_name(mod, b.value)
            out.append((name or tvm_compat.op_name(b.value), mod[b.value.op] if name else None))
    return out


def _int8(rng, shape, n=3) -> list[np.ndarray]:
    """Random int8 tensors and both extremes."""
    return [rng.integers(-128, 128, size=shape, dtype=np.int8) for _ in range(n)] + \
        [np.full(shape, -128, np.int8), np.full(shape, 127, np.int8)]


def tflite_multiplier(s1, s2, so) -> tuple[int, int]:
    """TFLM's MUL Prepare: QuantizeMultiplier(s1 * s2 / so) in doubles of the float32 scales."""
    return ref.quantize_multiplier(float(np.float32(s1)) * float(np.float32(s2)) / float(np.float32(so)))


# ------------------------------------------------------------------------------- int8, two inputs (Relax)

# (id, shape1, shape2, in1 q, in2 q, out q, fused activation)
# (output scales about 64 s1 s2: most products representable, the largest saturating)
BROADCASTS = [
    ("same_shape", (1, 4, 5, 6), (1, 4, 5, 6), (0.05, 3), (0.02, -4), (0.06, 1), "NONE"),
    ("channel", (1, 4, 5, 6), (1, 1, 1, 6), (0.1, -20), (0.02, 7), (0.15, 10), "NONE"),
    ("broadcast_first", (1, 1, 1, 6), (1, 4, 5, 6), (0.03, 127), (0.07, -128), (0.5, -100), "NONE"),
    ("spatial", (1, 4, 5, 6), (1, 4, 5, 1), (0.05, 0), (0.04, -3), (0.1, -40), "RELU"),
    ("scalar", (1, 4, 5, 6), (1, 1, 1, 1), (0.02, 5), (0.05, 0), (0.03, -100), "RELU6"),
    ("2d", (3, 6), (1, 6), (0.013, -1), (0.047, 2), (0.05, 30), "NONE"),
    ("3d", (1, 5, 6), (5, 1), (0.02, 3), (0.05, -3), (0.03, -128), "RELU6"),
]


@pytest.mark.parametrize("case", BROADCASTS, ids=lambda c: c[0])
def test_int8_two_input_mul_composite_bit_exact_with_tflm(case):
    """TVM's importer then LegalizeQDQ: one adaptc.qmul with TFLM's multiplier; on llvm, TFLM's
    MUL bit for bit on random inputs and the extremes of both."""
    cid, s1, s2, q1, q2, qo, act = case
    buf = T.mul_model(s1, s2, q1, q2, qo, act)
    mod = tvm_compat.apply(LegalizeQDQ("m.tflite"), tvm_compat.from_tflite(buf))
    assert tvm_compat.well_formed(mod)
    [(name, func)] = [c for c in _composites(mod) if c[0] != "relax.reshape"]
    assert name == "adaptc.qmul"
    a = tvm_compat.plain_attrs(func)
    mult, shift = tflite_multiplier(q1[0], q2[0], qo[0])
    assert (a["input1_zp"], a["input2_zp"], a["output_zp"]) == (q1[1], q2[1], qo[1])
    assert (a["multiplier"], a["shift"]) == ([mult], [shift])
    vm = tvm_compat.build_llvm(mod)
    rng = np.random.default_rng(zlib.crc32(cid.encode()))
    outs = []
    for x1, x2 in zip(_int8(rng, s1), _int8(rng, s2)[::-1]):
        got = tvm_compat.run_vm(vm, x1, x2)[0]
        np.testing.assert_array_equal(got, T.run_tflm(buf, x1, x2))
        outs.append(got)
    assert len(np.unique(np.concatenate([o.ravel() for o in outs]))) >= 20


def test_two_input_model_is_refused_by_the_target(tmp_path):
    """The loader takes a two-input MUL; the Cortex-M entry point has one input, so the target
    refuses it, saying so."""
    path = _save(tmp_path, "two.tflite", T.mul_model((1, 4, 4, 3), (1, 1, 1, 3), (0.05, 3), (0.02, -4), (0.01, 1)))
    with pytest.raises(TargetError, match=r"has 2 inputs; the C entry point takes one"):
        adaptc.compile(path, target="cortex-m4")


# ------------------------------------------------------------------------------- int8 C, constant operand

# (id, input shape, constant shape, input q, constant q, out q, activation)
CONST_CASES = [
    ("channel", (1, 4, 5, 6), (1, 1, 1, 6), (0.05, 3), (0.02, -4), (0.004, 1), "NONE"),
    ("broadcast_first", (1, 1, 1, 6), (1, 4, 5, 6), (0.03, 127), (0.07, -128), (0.05, -100), "NONE"),
    ("same_shape_relu", (1, 3, 3, 4), (1, 3, 3, 4), (0.1, -20), (0.02, 7), (0.015, 10), "RELU"),
    ("spatial_relu6", (1, 4, 5, 6), (1, 4, 5, 1), (0.5, 3), (0.5, -3), (0.01, -128), "RELU6"),
    ("scalar_hard_sigmoid_sixth", (1, 4, 5, 6), (1, 1, 1, 1), (0.05, -10), (1 / 6 / 127, 0), (0.01, -5), "NONE"),
    ("2d", (3, 6), (1, 6), (0.013, -1), (0.047, 2), (0.0021, 30), "NONE"),
    ("3d", (1, 5, 6), (5, 1), (0.02, 0), (0.02, 0), (0.0005, 0), "NONE"),
    ("four_loops", (2, 3, 4, 5), (2, 1, 4, 1), (0.05, 4), (0.05, -4), (0.02, 1), "RELU"),
]


@pytest.mark.parametrize("case", CONST_CASES, ids=lambda c: c[0])
def test_int8_mul_by_constant_c_bit_exact_with_tflm(case, tmp_path):
    cid, s1, s2, q1, q2, qo, act = case
    rng = np.random.default_rng(zlib.crc32(cid.encode()))
    c = rng.integers(-128, 128, size=s2, dtype=np.int8)
    if cid.startswith("scalar"):
        c[...] = 127                         # 1/6 as a hard swish writes it, quantized symmetric
    buf = T.mul_model(s1, s2, q1, q2, qo, act, const2=c)
    m = adaptc.compile(_save(tmp_path, f"{cid}.tflite", buf), target="cortex-m4")
    [step] = m.program.steps
    assert step.op == "adaptc.qmul" and m.scheduled.steps[0].kernel in ("mul_s8", "mul_s8_dsp")
    np.testing.assert_array_equal(step.consts["input2"], c)
    assert (step.attrs["multiplier"], step.attrs["shift"]) == tuple([v] for v in tflite_multiplier(q1[0], q2[0], qo[0]))
    outs = []
    for x in _int8(rng, s1, n=4):
        got = m.run(x)
        np.testing.assert_array_equal(got, T.run_tflm(buf, x))
        outs.append(got)
    if act != "NONE":                                  # the clamp at the zero point is met
        assert np.min(outs) == qo[1]


def test_int8_mul_random_scales_c_bit_exact_with_tflm(tmp_path):
    """Twelve random scale triples (float32 products that round close to a QuantizeMultiplier
    boundary would show a float / double difference) and zero points."""
    rng = np.random.default_rng(20)
    for k in range(12):
        s = 10.0 ** rng.uniform(-3, 0, size=3)
        zp = rng.integers(-128, 128, size=3)
        c = rng.integers(-128, 128, size=(1, 1, 1, 5), dtype=np.int8)
        buf = T.mul_model((1, 3, 4, 5), (1, 1, 1, 5), (s[0], zp[0]), (s[1], zp[1]), (s[2], zp[2]), const2=c)
        m = adaptc.compile(_save(tmp_path, f"r{k}.tflite", buf), target="cortex-m4")
        for x in _int8(rng, (1, 3, 4, 5), n=2):
            np.testing.assert_array_equal(m.run(x), T.run_tflm(buf, x), err_msg=f"scales {s}, zero points {zp}")


def test_int8_mul_by_per_channel_constant_is_refused(tmp_path):
    """A constant operand quantized per channel has no single multiplier (TFLite's MUL takes
    per-tensor inputs): refused, naming the multiply and the limit."""
    c = np.arange(-3, 3, dtype=np.int8).reshape(1, 1, 1, 6) * 20
    q2 = T.QParams(np.linspace(0.01, 0.06, 6).astype(np.float32), 0, 3)
    buf = T.mul_model((1, 4, 5, 6), (1, 1, 1, 6), (0.05, 3), q2, (0.01, 1), const2=c)
    with pytest.raises(UnsupportedOperatorError, match=r"multiply at node .*per-channel quantized tensor"):
        adaptc.compile(_save(tmp_path, "pc.tflite", buf), target="cortex-m4")


# ------------------------------------------------------------------------------- int8 C, two activations

SHAPE = (1, 4, 5, 8)
GATE_W = np.array([40, -20, 63, -64, 5, 0, -33, 17], np.int8)

# (id, mul_branch_model keywords): the branch's quantization differs from the input's
BRANCH_CASES = [
    ("x_times_x", dict(branch="self", out_q=(0.02, -100))),
    ("squeeze_excitation", dict(branch="mean", branch_q=(0.02, 5), out_q=(0.03, 1))),
    ("squeeze_excitation_first_relu6", dict(branch="mean", branch_q=(0.02, 5), out_q=(0.01, -120), swap=True,
                                            activation="RELU6")),
    ("spatial_gate_relu", dict(branch="conv", branch_q=(0.04, -2), out_q=(0.03, 1), weights=GATE_W,
                               activation="RELU")),
]


@pytest.mark.parametrize("case", BRANCH_CASES, ids=lambda c: c[0])
def test_int8_mul_of_two_activations_c_bit_exact_with_tflm(case, tmp_path):
    cid, kw = case
    buf = T.mul_branch_model(SHAPE, (0.05, 3), **kw)
    m = adaptc.compile(_save(tmp_path, f"{cid}.tflite", buf), target="cortex-m4")
    mul = m.program.steps[-1]
    assert mul.op == "adaptc.qmul" and not mul.consts
    if kw["branch"] != "self":
        assert len(set(mul.inputs)) == 2
    expect = {"self": [SHAPE, SHAPE], "mean": [SHAPE, (1, 1, 1, 8)], "conv": [SHAPE, (1, 4, 5, 1)]}[kw["branch"]]
    assert sorted(mul.in_shapes) == sorted(expect)
    rng = np.random.default_rng(zlib.crc32(cid.encode()))
    outs = []
    for x in _int8(rng, SHAPE, n=4):
        got = m.run(x)
        np.testing.assert_array_equal(got, T.run_tflm(buf, x))
        outs.append(got)
    assert len(np.unique(np.concatenate([o.ravel() for o in outs]))) >= 20


# ------------------------------------------------------------------------------- float32


@pytest.mark.parametrize("branch", ["self", "mean", "conv"])
def test_float_mul_of_two_activations_within_1e5_of_tflm(branch, tmp_path):
    w = np.linspace(-1.0, 1.0, 8, dtype=np.float32)
    buf = T.mul_branch_model(SHAPE, None, None, branch=branch, weights=w, dtype=np.float32)
    m = adaptc.compile(_save(tmp_path, f"{branch}.tflite", buf), target="cortex-m4")
    assert m.scheduled.steps[-1].kernel == "mul_f32"
    rng = np.random.default_rng(3)
    for _ in range(3):
        x = (rng.standard_normal(SHAPE) * 3).astype(np.float32)
        np.testing.assert_allclose(m.run(x), T.run_tflm(buf, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", BROADCASTS, ids=lambda c: c[0])
def test_float_two_input_mul_composite_within_1e5_of_tflm(case):
    cid, s1, s2, _, _, _, act = case
    buf = T.mul_model_f32(s1, s2, act)
    mod = tvm_compat.apply(FuseFloatOps("m.tflite"), tvm_compat.from_tflite(buf))
    assert tvm_compat.well_formed(mod)
    [(name, func)] = [c for c in _composites(mod) if c[0] != "relax.reshape"]
    assert name == "adaptc.mul_f32"
    a = tvm_compat.plain_attrs(func)
    assert (a["act_min"], a["act_max"]) == {"NONE": (-np.inf, np.inf), "RELU": (0.0, np.inf), "RELU6": (0.0, 6.0)}[act]
    vm = tvm_compat.build_llvm(mod)
    rng = np.random.default_rng(zlib.crc32(cid.encode()))
    for _ in range(3):
        x1, x2 = (rng.normal(0.0, 3.0, size=s).astype(np.float32) for s in (s1, s2))
        np.testing.assert_allclose(tvm_compat.run_vm(vm, x1, x2)[0], T.run_tflm(buf, x1, x2), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape2", [(1, 1, 1, 6), (1, 1, 1, 1)], ids=["channel", "scalar"])
def test_float_mul_by_constant_within_1e5_of_tflm(shape2, tmp_path):
    """float MUL by a constant (a per-channel scale, a hard sigmoid's 1/6): mul_f32 with the
    constant as "input2" (flash), as the kernel record provides, within 1e-5 of TFLM."""
    c = np.linspace(-2.0, 2.0, int(np.prod(shape2)), dtype=np.float32).reshape(shape2) + np.float32(0.1)
    buf = T.mul_model_f32((1, 4, 5, 6), shape2, const2=c)
    m = adaptc.compile(_save(tmp_path, "fc.tflite", buf), target="cortex-m4")
    assert [s.kernel for s in m.scheduled.steps] == ["mul_f32"]
    x = np.random.default_rng(4).standard_normal((1, 4, 5, 6)).astype(np.float32)
    np.testing.assert_allclose(m.run(x), T.run_tflm(buf, x), rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------- ONNX


def _onnx(path: Path, nodes, inits: dict, in_shape, out_shape) -> Path:
    g = helper.make_graph(nodes, path.stem, [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(out_shape))],
                          [numpy_helper.from_array(v.astype(np.float32), k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)])
    m.ir_version = 8
    onnx.save(m, path)
    return path


def _branches(path: Path) -> Path:
    """Conv 3x3 and Conv 1x1 of the input, multiplied."""
    rng = np.random.default_rng(0)
    inits = {"Wa": rng.standard_normal((4, 3, 3, 3)) * 0.5, "Ba": rng.standard_normal(4) * 0.3,
             "Wb": rng.standard_normal((4, 3, 1, 1)) * 0.5, "Bb": rng.standard_normal(4) * 0.3}
    nodes = [helper.make_node("Conv", ["x", "Wa", "Ba"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["x", "Wb", "Bb"], ["b"]),
             helper.make_node("Mul", ["a", "b"], ["y"])]
    return _onnx(path, nodes, inits, (1, 3, 6, 6), (1, 4, 6, 6))


def _squeeze_excitation(path: Path) -> Path:
    """MobileNetV3's block: Conv -> Relu -> [GlobalAveragePool -> Conv 1x1 -> Relu -> Conv 1x1 ->
    HardSigmoid(1/6, 1/2)] -> Mul with the feature map (broadcast over H, W)."""
    rng = np.random.default_rng(1)
    inits = {"W": rng.standard_normal((8, 3, 3, 3)) * 0.5, "B": rng.standard_normal(8) * 0.3,
             "W1": rng.standard_normal((4, 8, 1, 1)) * 0.5, "B1": rng.standard_normal(4) * 0.3,
             "W2": rng.standard_normal((8, 4, 1, 1)) * 0.5, "B2": rng.standard_normal(8) * 0.3}
    nodes = [helper.make_node("Conv", ["x", "W", "B"], ["f"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["f"], ["fr"]),
             helper.make_node("GlobalAveragePool", ["fr"], ["g"]),
             helper.make_node("Conv", ["g", "W1", "B1"], ["s1"]),
             helper.make_node("Relu", ["s1"], ["s1r"]),
             helper.make_node("Conv", ["s1r", "W2", "B2"], ["s2"]),
             helper.make_node("HardSigmoid", ["s2"], ["h"], alpha=1 / 6, beta=0.5),
             helper.make_node("Mul", ["fr", "h"], ["y"])]
    return _onnx(path, nodes, inits, (1, 3, 8, 8), (1, 8, 8, 8))


def _mul_by_constant(path: Path) -> Path:
    """Conv -> Mul by a per-channel constant [1, C, 1, 1] (a learned scale)."""
    rng = np.random.default_rng(2)
    inits = {"W": rng.standard_normal((4, 3, 3, 3)) * 0.5, "B": rng.standard_normal(4) * 0.3,
             "S": np.array([0.5, -1.5, 2.0, 0.25]).reshape(1, 4, 1, 1)}
    nodes = [helper.make_node("Conv", ["x", "W", "B"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Mul", ["c", "S"], ["y"])]
    return _onnx(path, nodes, inits, (1, 3, 6, 6), (1, 4, 6, 6))


ONNX_MODELS = {
    "branches": (_branches, (1, 3, 6, 6), ["adaptc.transpose", "adaptc.conv2d_f32", "adaptc.conv2d_f32",
                                           "adaptc.mul_f32", "adaptc.transpose"]),
    "squeeze_excitation": (_squeeze_excitation, (1, 3, 8, 8),
                           ["adaptc.transpose", "adaptc.conv2d_f32", "adaptc.avg_pool2d_f32", "adaptc.conv2d_f32",
                            "adaptc.conv2d_f32", "adaptc.unary_f32", "adaptc.mul_f32", "adaptc.transpose"]),
}


@pytest.fixture(scope="module")
def onnx_paths(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("mul_onnx")
    return {name: build(d / f"{name}.onnx") for name, (build, _, _) in ONNX_MODELS.items()}


@pytest.mark.parametrize("name", list(ONNX_MODELS))
def test_onnx_float_within_1e5_of_onnxruntime(name, onnx_paths):
    path, (_, shape, steps) = onnx_paths[name], ONNX_MODELS[name]
    m = adaptc.compile(path, target="cortex-m4")
    assert [s.op for s in m.program.steps] == steps
    if name == "squeeze_excitation":
        gate = m.program.steps[5].attrs
        assert (gate["function"], gate["alpha"], gate["beta"]) == ("hard_sigmoid", float(np.float32(1 / 6)), 0.5)
        assert sorted(m.program.steps[6].in_shapes) == [(1, 1, 1, 8), (1, 8, 8, 8)]
    sess = ort.InferenceSession(str(path))
    rng = np.random.default_rng(5)
    for _ in range(5):
        x = rng.standard_normal(shape).astype(np.float32)
        np.testing.assert_allclose(m.run(x), sess.run(None, {"x": x})[0], rtol=0, atol=1e-5)


def _composite_alone(func):
    """A module whose main calls the composite ``func`` on its activation parameters."""
    bb = relax.BlockBuilder()
    gv = bb.add_func(func, "composite")
    params = [relax.Var(tvm_compat.var_name(p), p.ty) for p in func.params]
    with bb.function("main", params, attrs={"num_input": len(params)}):
        with bb.dataflow():
            out = bb.emit_output(relax.Call(gv, params))
        bb.emit_func_output(out)
    return bb.get()


@pytest.mark.parametrize("name", list(ONNX_MODELS))
def test_onnx_post_training_int8(name, onnx_paths):
    """Calibrated int8: the C equals the Relax module bit for bit; the qmul step's parameters are
    its operands' (the producing steps' output quantization) and its composite, alone, is TFLM's
    MUL of those parameters bit for bit; the output stays close to onnxruntime (SNR, measured
    30.8 dB for the branches and 38.4 dB for the block)."""
    path, (_, shape, _) = onnx_paths[name], ONNX_MODELS[name]
    rng = np.random.default_rng(6)
    q = adaptc.compile(path, target="cortex-m4", calibration=rng.standard_normal((32, *shape)).astype(np.float32))
    ops = [s.op for s in q.program.steps]
    assert ops.count("adaptc.qmul") == 1 and "adaptc.mul_f32" not in ops
    mul = next(s for s in q.program.steps if s.op == "adaptc.qmul")
    producers = [next(s for s in q.program.steps if s.output == t) for t in mul.inputs]
    qs = [(p.attrs["output_scale"], p.attrs["output_zp"]) for p in producers]
    assert [mul.attrs["input1_zp"], mul.attrs["input2_zp"]] == [zp for _, zp in qs]
    qo = (mul.attrs["output_scale"], mul.attrs["output_zp"])
    assert (mul.attrs["multiplier"], mul.attrs["shift"]) == tuple([v] for v in tflite_multiplier(qs[0][0], qs[1][0],
                                                                                                 qo[0]))
    func = next(f for n, f in _composites(q.mod) if n == "adaptc.qmul")
    vm = tvm_compat.build_llvm(_composite_alone(func))
    buf = T.mul_model(mul.in_shapes[0], mul.in_shapes[1], qs[0], qs[1], qo)
    for a, b in zip(_int8(rng, mul.in_shapes[0]), _int8(rng, mul.in_shapes[1])):
        np.testing.assert_array_equal(tvm_compat.run_vm(vm, a, b)[0], T.run_tflm(buf, a, b))
    sess = ort.InferenceSession(str(path))
    s, zp = q.output_quantization
    want, got = [], []
    for _ in range(8):
        x = rng.standard_normal(shape).astype(np.float32)
        xq = q.quantize_input(x)
        y = q.run(xq)
        np.testing.assert_array_equal(y, q.reference(xq))
        got.append((y.astype(np.float64) - zp) * s)
        want.append(sess.run(None, {"x": x})[0])
    want, got = np.stack(want), np.stack(got)
    snr = 10 * np.log10(np.sum(want ** 2) / np.sum((got - want) ** 2))
    assert snr >= 25.0, snr


def test_onnx_mul_by_constant_float_and_int8(tmp_path):
    """ONNX Mul by a per-channel constant after a conv (not foldable into a following layer):
    float mul_f32 with the constant in flash, within 1e-5 of onnxruntime; post-training int8 a
    qmul by the quantized constant, bit-exact with the Relax module."""
    path = _mul_by_constant(tmp_path / "mulc.onnx")
    sess = ort.InferenceSession(str(path))
    rng = np.random.default_rng(7)
    m = adaptc.compile(path, target="cortex-m4")
    assert "mul_f32" in [s.kernel for s in m.scheduled.steps]
    for _ in range(3):
        x = rng.standard_normal((1, 3, 6, 6)).astype(np.float32)
        np.testing.assert_allclose(m.run(x), sess.run(None, {"x": x})[0], rtol=0, atol=1e-5)
    q = adaptc.compile(path, target="cortex-m4", calibration=rng.standard_normal((16, 1, 3, 6, 6)).astype(np.float32))
    assert "adaptc.qmul" in [s.op for s in q.program.steps]
    for _ in range(3):
        xq = q.quantize_input(rng.standard_normal((1, 3, 6, 6)).astype(np.float32))
        np.testing.assert_array_equal(q.run(xq), q.reference(xq))
