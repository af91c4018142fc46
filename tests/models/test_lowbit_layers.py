"""Every weight format on the layer kinds beyond plain conv2d / dense: a float ONNX network with a
depthwise convolution (stride 2, dilated, depth multiplier 2) and a transposed convolution
(stride 2, padded) compiled with pot4, int4, pot2, pot5 and mixed precision. Each layer really
takes the format -- the report's format, the ``weight_format`` the C target reads, the packed
kernel, the flash bytes of its bitstream -- and the C equals the Relax module (``m.reference``,
the composites on llvm) bit for bit. Likewise a network of batched matmuls by a constant (a 3-D
rhs, a constant lhs)."""
from __future__ import annotations

import numpy as np
import pytest

import adaptc
from adaptc import formats as F

C = 24


def _network(path):
    """conv 3x3 -> depthwise 3x3 (multiplier 2, stride 2, dilation 2) -> pointwise -> transposed
    3x3 (stride 2, pads 1) -> GAP -> dense, ONNX (NCHW, float)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(11)
    weights = {"w1": rng.normal(0, .3, (C, 3, 3, 3)), "b1": rng.normal(0, .1, (C,)),
               "wdw": rng.normal(0, .3, (2 * C, 1, 3, 3)), "bdw": rng.normal(0, .1, (2 * C,)),
               "wpw": rng.normal(0, .2, (32, 2 * C, 1, 1)), "wt": rng.normal(0, .2, (32, 16, 3, 3)),
               "bt": rng.normal(0, .1, (16,)), "wfc": rng.normal(0, .3, (16, 10))}
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["a"], ["b"]),
             helper.make_node("Conv", ["b", "wdw", "bdw"], ["c"], pads=[2, 2, 2, 2], strides=[2, 2],
                              dilations=[2, 2], group=C),
             helper.make_node("Relu", ["c"], ["d"]), helper.make_node("Conv", ["d", "wpw"], ["e"]),
             helper.make_node("Relu", ["e"], ["e1"]),
             helper.make_node("ConvTranspose", ["e1", "wt", "bt"], ["e2"], strides=[2, 2], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["e2"], ["f"]), helper.make_node("GlobalAveragePool", ["f"], ["g"]),
             helper.make_node("Flatten", ["g"], ["h"]), helper.make_node("MatMul", ["h", "wfc"], ["y"])]
    graph = helper.make_graph(nodes, "lowbit", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 12, 12])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
                              [numpy_helper.from_array(v.astype(np.float32), k) for k, v in weights.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


KINDS = ["conv2d", "depthwise_conv2d", "conv2d", "transpose_conv2d", "dense"]
CAL = np.random.default_rng(5).normal(0, 1, (48, 1, 3, 12, 12)).astype(np.float32)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return _network(tmp_path_factory.mktemp("lowbit") / "lowbit.onnx")


@pytest.fixture(scope="module")
def int8_build(model_path):
    return adaptc.compile(model_path, calibration=CAL)


def _layer(m, kind):
    """The scheduled step of the network's depthwise or transposed layer."""
    return next(s for s in m.scheduled.steps if (s.op, int(s.step.attrs.get("groups", 1)) > 1) == kind)


DEPTHWISE, TRANSPOSED = ("adaptc.qconv2d", True), ("adaptc.qtranspose_conv2d", False)
PACKED_KERNEL = {DEPTHWISE: "depthwise_conv2d_s8_packed", TRANSPOSED: "transpose_conv_s8_packed"}


@pytest.mark.parametrize("quantize", ["pot4", "int4", "pot2", "pot5", "mixed"])
def test_every_layer_takes_the_format(quantize, model_path, int8_build):
    budget = int(0.6 * int8_build.report["weight_bytes"])
    kw = {"weight_budget": budget} if quantize == "mixed" else {"quantize": quantize}
    m = adaptc.compile(model_path, calibration=CAL, **kw)
    layers = m.quantization["layers"]
    assert [r["kind"] for r in layers] == KINDS
    fmts = [r["format"] for r in layers]
    if quantize == "mixed":
        assert [r["chosen"] for r in m.quantization["search"]] == fmts
        assert m.report["weight_bytes"] <= budget
    else:
        assert fmts == [quantize] * len(KINDS)
    for kind, index in ((DEPTHWISE, 1), (TRANSPOSED, 3)):
        step, step8 = _layer(m, kind), _layer(int8_build, kind)
        fmt, marked = F.get(fmts[index]), F.get(step.step.attrs["weight_format"])
        assert F.fits(step.step.consts["weights"], marked) and marked.bits <= fmt.bits
        n = step.step.consts["weights"].size
        assert layers[index]["weights"] == n and layers[index]["weight_bytes"] == fmt.packed_bytes(n)
        if fmt.packed:
            assert step.kernel == PACKED_KERNEL[kind]
            # the layer's flash: int8 weights replaced by the bitstream (a bias and a shift per channel besides)
            out_c = step.step.out_shape[-1]
            assert step8.flash_bytes - step.flash_bytes >= n - marked.packed_bytes(n) - 8 * out_c
    for x in m.quantize_input(CAL[:6]):
        np.testing.assert_array_equal(m.run(x), m.reference(x))


def test_the_mixed_search_weighs_the_depthwise_layer(model_path, int8_build):
    """The search table prices the depthwise layer per format (its packed bitstream, not int8's
    bytes in every column), the transposed layer likewise, and a budget just above the
    all-ternary build's makes both low-bit."""
    budget = int(1.1 * adaptc.compile(model_path, calibration=CAL, quantize="pot2").report["weight_bytes"])
    m = adaptc.compile(model_path, calibration=CAL, weight_budget=budget)
    for index, kind in ((1, DEPTHWISE), (3, TRANSPOSED)):
        row = m.quantization["search"][index]
        assert row["kind"] == KINDS[index]
        sizes = {name: f["bytes"] for name, f in row["formats"].items()}
        assert sizes["pot2"] < sizes["pot3"] < sizes["pot4"] < sizes["int8"], sizes
        assert row["chosen"] != "int8" and _layer(m, kind).kernel == PACKED_KERNEL[kind]
    for x in m.quantize_input(CAL[:4]):
        np.testing.assert_array_equal(m.run(x), m.reference(x))


# ------------------------------------------------------------------------------- batched matmuls

def _matmul_network(path):
    """x [1, 6, 16] @ W [2, 16, 12] (a 3-D constant rhs: a batched matmul, broadcast over its
    batch) -> Relu -> L [4, 6] @ (a constant lhs) -> [1, 96] -> dense, ONNX (float). (A 2-D
    constant rhs, [1, 6, 16] @ [16, 12], is a dense layer's weights and packs as one.)"""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    weights = {"w1": rng.normal(0, .3, (2, 16, 12)), "wl": rng.normal(0, .4, (4, 6)),
               "wfc": rng.normal(0, .2, (96, 10))}
    inits = [numpy_helper.from_array(v.astype(np.float32), k) for k, v in weights.items()]
    inits.append(numpy_helper.from_array(np.array([1, 96], np.int64), "shape"))
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["a"]), helper.make_node("Relu", ["a"], ["b"]),
             helper.make_node("MatMul", ["wl", "b"], ["c"]), helper.make_node("Reshape", ["c", "shape"], ["d"]),
             helper.make_node("MatMul", ["d", "wfc"], ["y"])]
    graph = helper.make_graph(nodes, "lowbit_matmul",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


MATMUL_KINDS = ["batch_matmul", "batch_matmul", "dense"]
MATMUL_CAL = np.random.default_rng(6).normal(0, 1, (32, 1, 6, 16)).astype(np.float32)


@pytest.fixture(scope="module")
def matmul_path(tmp_path_factory):
    return _matmul_network(tmp_path_factory.mktemp("lowbit_matmul") / "matmul.onnx")


@pytest.fixture(scope="module")
def matmul_int8(matmul_path):
    return adaptc.compile(matmul_path, calibration=MATMUL_CAL)


def _matmuls(m):
    return [s for s in m.scheduled.steps if s.op == "adaptc.qbatch_matmul"]


@pytest.mark.parametrize("quantize", ["pot4", "int4", "pot2", "pot3", "pot5", "mixed"])
def test_batched_matmuls_take_the_format(quantize, matmul_path, matmul_int8):
    """Both batched matmuls by a constant (rhs, and lhs) take the format -- one scale for the
    tensor, the report's format, the weight_format, batch_matmul_s8_packed, the bitstream's flash
    -- and the C equals the Relax module bit for bit."""
    budget = int(0.5 * matmul_int8.report["weight_bytes"])
    kw = {"weight_budget": budget} if quantize == "mixed" else {"quantize": quantize}
    m = adaptc.compile(matmul_path, calibration=MATMUL_CAL, **kw)
    layers = m.quantization["layers"]
    assert [r["kind"] for r in layers] == MATMUL_KINDS
    fmts = [r["format"] for r in layers]
    if quantize == "mixed":
        assert [r["chosen"] for r in m.quantization["search"]] == fmts
        assert [r["kind"] for r in m.quantization["search"]] == MATMUL_KINDS
        assert m.report["weight_bytes"] <= budget
        for row in m.quantization["search"][:2]:        # priced per format, not int8's bytes in every column
            sizes = {name: f["bytes"] for name, f in row["formats"].items()}
            assert sizes["pot2"] < sizes["pot3"] < sizes["pot4"] < sizes["int8"] == row["weights"], sizes
    else:
        assert fmts == [quantize] * len(MATMUL_KINDS)
    assert [s.kernel for s in _matmuls(matmul_int8)] == ["batch_matmul_s8"] * 2
    for index, (step, step8) in enumerate(zip(_matmuls(m), _matmuls(matmul_int8))):
        (c,) = step.step.consts.values()
        fmt, marked = F.get(fmts[index]), F.get(step.step.attrs["weight_format"])
        assert F.fits(c, marked) and marked.bits <= fmt.bits and layers[index]["channels"] == 1
        assert layers[index]["weights"] == c.size and layers[index]["weight_bytes"] == fmt.packed_bytes(c.size)
        if fmt.packed:
            assert step.kernel == "batch_matmul_s8_packed"
            assert step.flash_bytes == marked.packed_bytes(c.size) < step8.flash_bytes == c.size
        else:
            assert step.kernel == "batch_matmul_s8"
    for x in m.quantize_input(MATMUL_CAL[:6]):
        np.testing.assert_array_equal(m.run(x), m.reference(x))
