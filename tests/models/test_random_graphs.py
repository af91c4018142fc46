"""Random-graph differential tests: hypothesis builds small ONNX networks from the supported
operators -- convolutions of every kind (strides, pads, dilations, groups, depthwise), the
element-wise functions, pooling, residual Add / Mul, channel Concat, broadcast constants -- ending
in global pooling and a dense layer. Each must compile; the float C must match onnxruntime
(rtol 1e-4); post-training int8 C must equal its Relax module bit for bit. The examples are
derandomized (the same graphs in every run): a failure is reproducible, and hypothesis shrinks it
to a minimal graph."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import adaptc.api as api

UNARY = [("Relu", {}), ("Sigmoid", {}), ("Tanh", {}), ("HardSwish", {}), ("LeakyRelu", {"alpha": 0.1}),
         ("Elu", {"alpha": 0.5}), ("HardSigmoid", {"alpha": 0.2, "beta": 0.5})]


class Builder:
    def __init__(self, rng, channels, size):
        self.rng, self.nodes, self.inits = rng, [], []
        self.name, self.shape = "x", [1, channels, size, size]
        self.n = 0

    def fresh(self, prefix):
        self.n += 1
        return f"{prefix}{self.n}"

    def const(self, value):
        name = self.fresh("c")
        self.inits.append(numpy_helper.from_array(np.asarray(value, np.float32), name))
        return name

    def node(self, op, inputs, shape, **attrs):
        out = self.fresh(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], **attrs))
        self.name, self.shape = out, shape
        return out

    def conv(self, out_c, k, stride, dilation, pad, groups):
        _, c, h, w = self.shape
        wt = self.const(self.rng.normal(0, 1.0 / np.sqrt(k * k * c / groups), (out_c, c // groups, k, k)))
        b = self.const(self.rng.normal(0, 0.1, out_c))
        size = lambda n: (n + 2 * pad - dilation * (k - 1) - 1) // stride + 1  # noqa: E731
        self.node("Conv", [self.name, wt, b], [1, out_c, size(h), size(w)], kernel_shape=[k, k],
                  strides=[stride, stride], dilations=[dilation, dilation], pads=[pad] * 4, group=groups)


@st.composite
def networks(draw):
    channels, size = draw(st.sampled_from([2, 3, 4, 8])), draw(st.integers(5, 12))
    b = Builder(np.random.default_rng(draw(st.integers(0, 2**16))), channels, size)
    for _ in range(draw(st.integers(1, 5))):
        _, c, h, w = b.shape
        kind = draw(st.sampled_from(["conv", "conv", "depthwise", "unary", "pool", "residual", "scale", "concat"]))
        if kind == "conv":
            k = draw(st.sampled_from([1, 3]))
            dilation = draw(st.sampled_from([1, 2])) if k == 3 and h >= 6 else 1
            groups = draw(st.sampled_from([g for g in (1, 2) if c % g == 0]))
            out_c = draw(st.sampled_from([oc for oc in (2, 4, 6, 8) if oc % groups == 0]))
            b.conv(out_c, k, draw(st.sampled_from([1, 2])) if h >= 4 else 1, dilation, draw(st.sampled_from([0, 1]))
                   if k == 3 and h >= 5 else (k // 2), groups)
        elif kind == "depthwise":
            b.conv(c, 3, 1, 1, 1, c)
        elif kind == "unary":
            op, attrs = draw(st.sampled_from(UNARY))
            b.node(op, [b.name], b.shape, **attrs)
        elif kind == "pool" and h >= 2 and w >= 2:
            op = draw(st.sampled_from(["MaxPool", "AveragePool"]))
            b.node(op, [b.name], [1, c, h // 2, w // 2], kernel_shape=[2, 2], strides=[2, 2])
        elif kind == "residual":           # x + f(x): a 3x3 same-size conv branch
            x = b.name
            b.conv(c, 3, 1, 1, 1, 1)
            b.node(draw(st.sampled_from(["Add", "Mul"])), [x, b.name], [1, c, h, w])
        elif kind == "scale":              # a per-channel constant, broadcast
            v = b.const(b.rng.uniform(0.5, 1.5, (1, c, 1, 1)))
            b.node(draw(st.sampled_from(["Mul", "Add"])), [b.name, v], b.shape)
        elif kind == "concat":             # channels of x and of a 1x1 conv of x
            x = b.name
            b.conv(2, 1, 1, 1, 0, 1)
            b.node("Concat", [x, b.name], [1, c + 2, h, w], axis=1)
    _, c, _, _ = b.shape
    b.node("GlobalAveragePool", [b.name], [1, c, 1, 1])
    b.node("Flatten", [b.name], [1, c])
    gemm_w, gemm_b = b.const(b.rng.normal(0, 0.5, (4, c))), b.const(b.rng.normal(0, 0.1, 4))
    b.node("Gemm", [b.name, gemm_w, gemm_b], [1, 4], transB=1)
    graph = helper.make_graph(b.nodes, "random", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                                [1, channels, size, size])],
                              [helper.make_tensor_value_info(b.name, TensorProto.FLOAT, [1, 4])], b.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


@settings(max_examples=12, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(networks())
def test_random_network_float_and_int8(tmp_path, model):
    path = tmp_path / "random.onnx"
    onnx.save(model, path)
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    rng = np.random.default_rng(0)
    xs = rng.normal(0, 1, (4, *shape)).astype(np.float32)
    sess = ort.InferenceSession(str(path))
    m = api.compile(path)
    for x in xs:
        want = sess.run(None, {"x": x})[0]
        np.testing.assert_allclose(m.run(x), want, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(want).max())))
    q = api.compile(path, calibration=rng.normal(0, 1, (16, *shape)).astype(np.float32))
    for x in q.quantize_input(xs):
        np.testing.assert_array_equal(q.run(x), q.reference(x))
