"""The element-wise binary operators beside MUL, end to end: TFLite SUB, SQUARED_DIFFERENCE,
MAXIMUM, MINIMUM, DIV (float), ADD with broadcasting or a constant; ONNX Sub, Div, Max, Min, Add.

int8 TFLite: ``adaptc.qaddsub`` / ``qsquared_difference`` / ``qmaxmin`` are TFLite Micro's int8
kernels bit for bit -- two-input models at the Relax level, and as generated C with a constant
operand, first or second. float32 (``adaptc.binary_f32``): within 1e-5 of TFLM. The same-shape
ADD of two activations stays ``adaptc.qadd`` / ``add_f32``. Refused: int8 DIV, int8 MAXIMUM /
MINIMUM whose inputs and output differ in quantization (TFLM compares raw int8 values). ONNX:
two conv branches combined, or one and a constant, within 1e-5 of onnxruntime; post-training
int8 bit-exact with the Relax module (a division by a constant becomes a multiplication by its
reciprocal; a division of two activations is refused).
"""
from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import adaptc
import tflite_ops as T
from adaptc import tvm_compat
from adaptc.errors import InputError, UnsupportedOperatorError
from adaptc.passes.fuse_float_ops import FuseFloatOps
from adaptc.passes.legalize_qdq import LegalizeQDQ
from adaptc.qops import composite_name


def _save(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _composites(mod) -> list[tuple[str, dict]]:
    out = []
    for b in tvm_compat.bindings(mod["main"]):
        name = composite_name(mod, b.value)
        if name:
            out.append((name, tvm_compat.plain_attrs(mod[b.value.op])))
    return out


def _int8(rng, shape, n=3) -> list[np.ndarray]:
    return [rng.integers(-128, 128, size=shape, dtype=np.int8) for _ in range(n)] + \
        [np.full(shape, -128, np.int8), np.full(shape, 127, np.int8)]


COMPOSITE = {"ADD": "adaptc.qaddsub", "SUB": "adaptc.qaddsub", "SQUARED_DIFFERENCE": "adaptc.qsquared_difference",
             "MAXIMUM": "adaptc.qmaxmin", "MINIMUM": "adaptc.qmaxmin"}

# (op, shape1, shape2, in1 q, in2 q, out q, fused activation)
INT8_CASES = [
    ("SUB", (1, 4, 5, 6), (1, 4, 5, 6), (0.05, 3), (0.07, -4), (0.03, 1), "NONE"),
    ("SUB", (1, 4, 5, 6), (1, 1, 1, 6), (0.05, 3), (0.02, -4), (0.06, 1), "RELU"),
    ("SUB", (1, 1, 1, 6), (1, 4, 5, 6), (0.013, -1), (0.047, 2), (0.05, 30), "RELU6"),
    ("ADD", (1, 4, 5, 6), (1, 4, 5, 1), (0.05, 3), (0.02, -4), (0.06, 1), "RELU6"),
    ("ADD", (3, 6), (1, 6), (0.1, -20), (0.02, 7), (0.15, 10), "NONE"),
    ("SQUARED_DIFFERENCE", (1, 4, 5, 6), (1, 1, 1, 6), (0.05, 3), (0.02, -4), (0.06, 1), "NONE"),
    ("SQUARED_DIFFERENCE", (1, 5, 6), (5, 1), (0.05, 3), (0.05, -4), (0.6, -128), "NONE"),
    ("SQUARED_DIFFERENCE", (2, 6), (2, 6), (0.01, 0), (0.03, 5), (0.002, -100), "NONE"),
    ("MAXIMUM", (1, 4, 5, 6), (1, 1, 1, 6), (0.05, 3), (0.05, 3), (0.05, 3), "NONE"),
    ("MINIMUM", (2, 3, 4, 5), (2, 1, 4, 1), (0.02, -7), (0.02, -7), (0.02, -7), "NONE"),
    ("MAXIMUM", (3, 6), (3, 6), (0.1, 0), (0.1, 0), (0.1, 0), "NONE"),
]


def _id(c) -> str:
    return f"{c[0]}-{'x'.join(map(str, c[1]))}-{'x'.join(map(str, c[2]))}-{c[6]}"


@pytest.mark.parametrize("case", INT8_CASES, ids=_id)
def test_int8_two_input_composite_bit_exact_with_tflm(case):
    """TVM's importer then LegalizeQDQ: one composite of the operator; on llvm, TFLM's kernel bit
    for bit on random inputs and the extremes of both."""
    op, s1, s2, q1, q2, qo, act = case
    buf = T.binary_model(op, s1, s2, q1, q2, qo, act)
    mod = tvm_compat.apply(LegalizeQDQ("m.tflite"), tvm_compat.from_tflite(buf))
    assert tvm_compat.well_formed(mod)
    [(name, attrs)] = _composites(mod)
    assert name == COMPOSITE[op]
    if op in ("ADD", "SUB"):
        assert (attrs["left_shift"], attrs["input1_sign"], attrs["input2_sign"]) == (20, 1, 1 if op == "ADD" else -1)
    if op == "SQUARED_DIFFERENCE":
        assert attrs["left_shift"] == 7
    vm = tvm_compat.build_llvm(mod)
    rng = np.random.default_rng(zlib.crc32(_id(case).encode()))
    outs = []
    for x1, x2 in zip(_int8(rng, s1), _int8(rng, s2)[::-1]):
        got = tvm_compat.run_vm(vm, x1, x2)[0]
        np.testing.assert_array_equal(got, T.run_tflm(buf, x1, x2))
        outs.append(got)
    assert len(np.unique(np.concatenate([o.ravel() for o in outs]))) >= 10


def test_same_shape_add_keeps_the_same_shape_kernel():
    """ADD of two same-shaped activations is still adaptc.qadd (add_s8 / add_s8_dsp)."""
    buf = T.binary_model("ADD", (1, 4, 4, 3), (1, 4, 4, 3), (0.05, 3), (0.02, -4), (0.06, 1))
    mod = tvm_compat.apply(LegalizeQDQ("m.tflite"), tvm_compat.from_tflite(buf))
    assert [n for n, _ in _composites(mod)] == ["adaptc.qadd"]
    fbuf = T.binary_model("ADD", (1, 4, 4, 3), (1, 4, 4, 3), dtype=np.float32)
    fmod = tvm_compat.apply(FuseFloatOps("m.tflite"), tvm_compat.from_tflite(fbuf))
    assert [n for n, _ in _composites(fmod)] == ["adaptc.add_f32"]


# (op, activation shape, constant shape, activation q, constant q, out q, activation)
CONST_CASES = [
    ("SUB", (1, 4, 5, 6), (1, 1, 1, 6), (0.05, 3), (0.02, -4), (0.06, 1), "RELU"),
    ("SUB", (1, 4, 5, 6), (1, 4, 5, 6), (0.1, -20), (0.02, 7), (0.09, 10), "NONE"),
    ("ADD", (1, 4, 5, 6), (1, 4, 5, 1), (0.05, 3), (0.02, -4), (0.06, 1), "RELU6"),
    ("ADD", (1, 4, 5, 6), (1, 4, 5, 6), (0.05, 3), (0.05, 0), (0.08, -3), "NONE"),
    ("SQUARED_DIFFERENCE", (2, 3, 4, 5), (2, 1, 4, 1), (0.05, 3), (0.02, -4), (0.06, 1), "NONE"),
    ("MAXIMUM", (1, 4, 5, 6), (1, 1, 1, 6), (0.05, 3), (0.05, 3), (0.05, 3), "NONE"),
    ("MINIMUM", (1, 4, 5, 6), (1, 1, 1, 1), (0.05, 3), (0.05, 3), (0.05, 3), "NONE"),
]
KERNEL = {"adaptc.qaddsub": ("addsub_s8", "addsub_s8_dsp"), "adaptc.qsquared_difference": ("squared_difference_s8",),
          "adaptc.qmaxmin": ("maxmin_s8",)}   # (the Cortex-M4 runs addsub_s8_dsp where it proves exactness)


@pytest.mark.parametrize("first", [False, True], ids=["const_second", "const_first"])
@pytest.mark.parametrize("case", CONST_CASES, ids=_id)
def test_int8_constant_operand_c_bit_exact_with_tflm(case, first, tmp_path):
    """The generated C (host) with the constant in flash as the kernel's second operand -- a
    constant first operand of SUB reverses the signs -- equals TFLM bit for bit."""
    op, sx, sc, qx, qc, qo, act = case
    rng = np.random.default_rng(zlib.crc32((_id(case) + str(first)).encode()))
    c = rng.integers(-128, 128, size=sc, dtype=np.int8)
    if first:
        buf = T.binary_model(op, sc, sx, qc, qx, qo, act, const1=c)
    else:
        buf = T.binary_model(op, sx, sc, qx, qc, qo, act, const2=c)
    m = adaptc.compile(_save(tmp_path, "c.tflite", buf), target="cortex-m4")
    [step] = m.program.steps
    assert step.op == COMPOSITE[op] and m.scheduled.steps[0].kernel in KERNEL[COMPOSITE[op]]
    np.testing.assert_array_equal(step.consts["input2"], c)
    if op == "SUB":
        assert (step.attrs["input1_sign"], step.attrs["input2_sign"]) == ((-1, 1) if first else (1, -1))
    for x in _int8(rng, sx, n=4):
        np.testing.assert_array_equal(m.run(x), T.run_tflm(buf, x))


def test_int8_div_is_refused(tmp_path):
    buf = T.binary_model("DIV", (1, 4, 4, 3), (1, 1, 1, 3), (0.05, 3), (0.02, -4), (0.06, 1),
                         const2=np.full((1, 1, 1, 3), 50, np.int8))
    with pytest.raises(UnsupportedOperatorError, match=r"divide.*int8 division"):
        adaptc.compile(_save(tmp_path, "div.tflite", buf), target="cortex-m4")


def test_int8_maximum_of_differing_quantization_is_refused(tmp_path):
    """TFLM's MAXIMUM compares raw int8 values whatever their parameters; only equal ones give the
    maximum, so others are refused, naming them."""
    buf = T.binary_model("MAXIMUM", (1, 4, 4, 3), (1, 1, 1, 3), (0.05, 3), (0.02, -4), (0.05, 3),
                         const2=np.zeros((1, 1, 1, 3), np.int8))
    with pytest.raises(UnsupportedOperatorError, match=r"maximum.*must be equal"):
        adaptc.compile(_save(tmp_path, "max.tflite", buf), target="cortex-m4")


# ------------------------------------------------------------------------------- float32

F_OPS = ["ADD", "SUB", "DIV", "MAXIMUM", "MINIMUM", "SQUARED_DIFFERENCE"]
F_SHAPES = [((1, 4, 5, 6), (1, 1, 1, 6)), ((1, 1, 1, 6), (1, 4, 5, 6)), ((2, 3, 4, 5), (2, 1, 4, 1)),
            ((3, 6), (3, 6))]


def _fact(op) -> str:
    return "RELU6" if op in ("SUB", "DIV") else "RELU" if op == "ADD" else "NONE"


@pytest.mark.parametrize("shapes", F_SHAPES, ids=lambda s: f"{'x'.join(map(str, s[0]))}-{'x'.join(map(str, s[1]))}")
@pytest.mark.parametrize("op", F_OPS)
def test_float_two_input_within_1e5_of_tflm(op, shapes):
    s1, s2 = shapes
    buf = T.binary_model(op, s1, s2, activation=_fact(op), dtype=np.float32)
    mod = tvm_compat.apply(FuseFloatOps("m.tflite"), tvm_compat.from_tflite(buf))
    [(name, attrs)] = _composites(mod)
    same_add = op == "ADD" and s1 == s2
    assert name == ("adaptc.add_f32" if same_add else "adaptc.binary_f32")
    vm = tvm_compat.build_llvm(mod)
    rng = np.random.default_rng(zlib.crc32(f"{op}{shapes}".encode()))
    for _ in range(3):
        x1, x2 = (rng.normal(0.0, 3.0, size=s).astype(np.float32) for s in (s1, s2))
        np.testing.assert_allclose(tvm_compat.run_vm(vm, x1, x2)[0], T.run_tflm(buf, x1, x2), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("first", [False, True], ids=["const_second", "const_first"])
@pytest.mark.parametrize("op", F_OPS)
def test_float_constant_operand_c_within_1e5_of_tflm(op, first, tmp_path):
    """The C kernel binary_f32 with the constant in flash (reversed subtract / divide for a
    constant first operand), within 1e-5 of TFLM."""
    sx, sc = (1, 4, 5, 6), (1, 1, 1, 6)
    rng = np.random.default_rng(zlib.crc32(f"{op}{first}".encode()))
    c = (rng.uniform(0.5, 2.0, size=sc) * rng.choice([-1, 1], size=sc)).astype(np.float32)
    kw = {"const1": c} if first else {"const2": c}
    buf = T.binary_model(op, *((sc, sx) if first else (sx, sc)), activation=_fact(op), dtype=np.float32, **kw)
    m = adaptc.compile(_save(tmp_path, "f.tflite", buf), target="cortex-m4")
    [step] = m.program.steps
    assert m.scheduled.steps[0].kernel == "binary_f32"
    reverse = first and op in ("SUB", "DIV")
    assert str(step.attrs["function"]).startswith("reverse_") == reverse
    for _ in range(3):
        x = rng.normal(0.0, 3.0, size=sx).astype(np.float32)
        np.testing.assert_allclose(m.run(x), T.run_tflm(buf, x), rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------- ONNX


def _onnx(path: Path, op: str, const: np.ndarray | None, const_first: bool = False) -> Path:
    """Conv 3x3 and Conv 1x1 of the input, combined by ``op``; with ``const``, the 3x3 branch and
    the constant (NCHW broadcast shape) instead."""
    rng = np.random.default_rng(zlib.crc32(path.stem.encode()))
    inits = {"Wa": rng.standard_normal((4, 3, 3, 3)) * 0.5, "Ba": rng.standard_normal(4) * 0.3,
             "Wb": rng.standard_normal((4, 3, 1, 1)) * 0.5, "Bb": rng.standard_normal(4) * 0.3 + 2.0}
    nodes = [helper.make_node("Conv", ["x", "Wa", "Ba"], ["a"], pads=[1, 1, 1, 1])]
    if const is None:
        nodes.append(helper.make_node("Conv", ["x", "Wb", "Bb"], ["b0"]))
        inits.update(lo=np.array(0.5), hi=np.array(8.0))        # a divisor away from zero
        nodes.append(helper.make_node("Clip", ["b0", "lo", "hi"], ["b"]))
        operands = ["a", "b"]
    else:
        inits["C"] = const
        operands = ["C", "a"] if const_first else ["a", "C"]
    nodes.append(helper.make_node(op, operands, ["y"]))
    g = helper.make_graph(nodes, path.stem, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 6, 6])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 6, 6])],
                          [numpy_helper.from_array(v.astype(np.float32), k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)])
    m.ir_version = 8
    onnx.save(m, path)
    return path


ONNX_CASES = [  # (id, op, constant or None, constant first)
    ("sub", "Sub", None, False), ("max", "Max", None, False), ("min", "Min", None, False),
    ("div", "Div", None, False),
    ("add_channel_const", "Add", np.array([0.5, -1.5, 2.0, 0.25]).reshape(1, 4, 1, 1), False),
    ("sub_const_first", "Sub", np.array([0.5, -1.5, 2.0, 0.25]).reshape(1, 4, 1, 1), True),
    ("div_const", "Div", np.array([0.5, -1.5, 2.0, 4.0]).reshape(1, 4, 1, 1), False),
    ("max_scalar_const", "Max", np.array(0.25), False),
    ("min_const_first", "Min", np.array([0.5, -1.5, 2.0, 0.25]).reshape(1, 4, 1, 1), True),
]


@pytest.mark.parametrize("case", ONNX_CASES, ids=lambda c: c[0])
def test_onnx_float_and_post_training_int8(case, tmp_path):
    """float: one binary_f32 step within 1e-5 of onnxruntime; post-training int8: the C equals the
    Relax module bit for bit and stays near onnxruntime (a division of two activations is refused
    naming the division; one by a constant becomes an int8 MUL by the reciprocal)."""
    cid, op, const, first = case
    path = _onnx(tmp_path / f"{cid}.onnx", op, const, first)
    sess = ort.InferenceSession(str(path))
    rng = np.random.default_rng(zlib.crc32(cid.encode()))
    m = adaptc.compile(path, target="cortex-m4")
    assert "binary_f32" in [s.kernel for s in m.scheduled.steps]
    for _ in range(3):
        x = rng.standard_normal((1, 3, 6, 6)).astype(np.float32)
        np.testing.assert_allclose(m.run(x), sess.run(None, {"x": x})[0], rtol=1e-5, atol=1e-5)
    calibration = rng.standard_normal((16, 1, 3, 6, 6)).astype(np.float32)
    if op == "Div" and const is None:
        with pytest.raises(InputError, match=r"int8 division"):
            adaptc.compile(path, target="cortex-m4", calibration=calibration)
        return
    q = adaptc.compile(path, target="cortex-m4", calibration=calibration)
    ops = [s.op for s in q.program.steps]
    want = {"Sub": "adaptc.qaddsub", "Add": "adaptc.qaddsub", "Max": "adaptc.qmaxmin", "Min": "adaptc.qmaxmin",
            "Div": "adaptc.qmul"}[op]
    assert want in ops and "adaptc.binary_f32" not in ops
    s, zp = q.output_quantization
    got, ref = [], []
    for _ in range(6):
        x = rng.standard_normal((1, 3, 6, 6)).astype(np.float32)
        xq = q.quantize_input(x)
        y = q.run(xq)
        np.testing.assert_array_equal(y, q.reference(xq))
        got.append((y.astype(np.float64) - zp) * s)
        ref.append(sess.run(None, {"x": x})[0])
    got, ref = np.stack(got), np.stack(ref)
    snr = 10 * np.log10(np.sum(ref ** 2) / np.sum((got - ref) ** 2))
    assert snr >= 20.0, snr
