"""Every weight format on the layer kinds beyond plain conv2d / dense: a float ONNX network with a
depthwise convolution (stride 2, dilated, depth multiplier 2) compiled with pot4, int4, pot2,
pot5 and mixed precision. Each layer really takes the format -- the report's format, the
``weight_format`` the C target reads, the packed kernel, the flash bytes of its bitstream -- and
the C equals the Relax module (``m.reference``, the composites on llvm) bit for bit."""
from __future__ import annotations

import numpy as np
import pytest

import adaptc
from adaptc import formats as F

C = 24


def _network(path):
    """conv 3x3 -> depthwise 3x3 (multiplier 2, stride 2, dilation 2) -> pointwise -> GAP ->
    dense, ONNX (NCHW, float)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(11)
    weights = {"w1": rng.normal(0, .3, (C, 3, 3, 3)), "b1": rng.normal(0, .1, (C,)),
               "wdw": rng.normal(0, .3, (2 * C, 1, 3, 3)), "bdw": rng.normal(0, .1, (2 * C,)),
               "wpw": rng.normal(0, .2, (32, 2 * C, 1, 1)), "wfc": rng.normal(0, .3, (32, 10))}
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["a"], ["b"]),
             helper.make_node("Conv", ["b", "wdw", "bdw"], ["c"], pads=[2, 2, 2, 2], strides=[2, 2],
                              dilations=[2, 2], group=C),
             helper.make_node("Relu", ["c"], ["d"]), helper.make_node("Conv", ["d", "wpw"], ["e"]),
             helper.make_node("Relu", ["e"], ["f"]), helper.make_node("GlobalAveragePool", ["f"], ["g"]),
             helper.make_node("Flatten", ["g"], ["h"]), helper.make_node("MatMul", ["h", "wfc"], ["y"])]
    graph = helper.make_graph(nodes, "lowbit", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 12, 12])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
                              [numpy_helper.from_array(v.astype(np.float32), k) for k, v in weights.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


KINDS = ["conv2d", "depthwise_conv2d", "conv2d", "dense"]
CAL = np.random.default_rng(5).normal(0, 1, (48, 1, 3, 12, 12)).astype(np.float32)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return _network(tmp_path_factory.mktemp("lowbit") / "lowbit.onnx")


@pytest.fixture(scope="module")
def int8_build(model_path):
    return adaptc.compile(model_path, calibration=CAL)


def _depthwise(m):
    return next(s for s in m.scheduled.steps if s.op == "adaptc.qconv2d" and int(s.step.attrs["groups"]) > 1)


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
    dw, dw8 = _depthwise(m), _depthwise(int8_build)
    fmt = F.get(fmts[1])
    assert F.fits(dw.step.consts["weights"], F.get(dw.step.attrs["weight_format"]))
    assert F.get(dw.step.attrs["weight_format"]).bits <= fmt.bits
    if fmt.packed:
        assert dw.kernel == "depthwise_conv2d_s8_packed"
        n = dw.step.consts["weights"].size
        # the layer's flash: int8 weights replaced by the bitstream (bias and shifts besides)
        assert dw8.flash_bytes - dw.flash_bytes >= n - F.get(dw.step.attrs["weight_format"]).packed_bytes(n) - 4 * 2 * C
        assert layers[1]["weight_bytes"] == fmt.packed_bytes(n)
    for x in m.quantize_input(CAL[:6]):
        np.testing.assert_array_equal(m.run(x), m.reference(x))


def test_the_mixed_search_weighs_the_depthwise_layer(model_path, int8_build):
    """The search table prices the depthwise layer per format (its packed bitstream, not int8's
    bytes in every column) and a budget just above the all-ternary build's makes it low-bit."""
    budget = int(1.1 * adaptc.compile(model_path, calibration=CAL, quantize="pot2").report["weight_bytes"])
    m = adaptc.compile(model_path, calibration=CAL, weight_budget=budget)
    row = m.quantization["search"][1]
    assert row["kind"] == "depthwise_conv2d"
    sizes = {name: f["bytes"] for name, f in row["formats"].items()}
    assert sizes["pot2"] < sizes["pot3"] < sizes["pot4"] < sizes["int8"], sizes
    assert row["chosen"] != "int8" and _depthwise(m).kernel == "depthwise_conv2d_s8_packed"
    for x in m.quantize_input(CAL[:4]):
        np.testing.assert_array_equal(m.run(x), m.reference(x))
