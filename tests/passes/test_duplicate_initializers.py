"""Parameters read through Identity nodes of one shared initializer, as torch.onnx.export writes
an untrained network whose batch norms' parameters are equal (every scale and variance 1, every
bias and mean 0): adaptc.onnx_rewrite.bypass_constant_identities lets fold_batch_norms fold them,
and the compiled model is checked against onnxruntime on the same file (float: within 1e-4;
int8: the same argmax on at least 90 % of 64 inputs).

A batch norm that cannot be folded (parameters computed at run time) is refused by the loader by
name, and a tuple-valued binding FuseFloatOps has no rule for is an UnsupportedOperatorError,
not a crash."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from tvm.script import ir as I
from tvm.script import relax as R

import adaptc
from adaptc import tvm_compat
from adaptc.errors import UnsupportedOperatorError
from adaptc.passes.fuse_float_ops import FuseFloatOps

SHAPE = (1, 1, 8, 8)


def _const(value, name):
    return numpy_helper.from_array(np.asarray(value, np.float32), name)


def _model(path, shared="initializer"):
    """Conv(1->4, 3x3) -> BN -> Relu -> Conv(4->4) -> BN -> Relu -> GlobalAveragePool -> Flatten ->
    Gemm(4->10); both BNs read scale / bias / mean / var through an Identity of one of two shared
    constants (``ones``, ``zeros``). ``shared``: "initializer" (torch's layout), "conv_weight" (the
    second Conv's filters, too, through a chain of two Identities), "constant" (the shared
    constants are Constant nodes), "computed" (the scale is a Mul of initializers)."""
    rng = np.random.default_rng(1)
    inits = [_const(rng.normal(0, 0.5, (4, 1, 3, 3)), "w1"), _const(rng.normal(0, 0.1, 4), "b1"),
             _const(rng.normal(0, 0.3, (4, 4, 3, 3)), "w2"), _const(rng.normal(0, 0.1, 4), "b2"),
             _const(rng.normal(0, 0.5, (10, 4)), "fc_w"), _const(rng.normal(0, 0.1, 10), "fc_b")]
    nodes = []
    if shared == "constant":
        nodes += [helper.make_node("Constant", [], ["ones"], value=_const(np.ones(4), "ones")),
                  helper.make_node("Constant", [], ["zeros"], value=_const(np.zeros(4), "zeros"))]
    else:
        inits += [_const(np.ones(4), "ones"), _const(np.zeros(4), "zeros")]
    for k in (1, 2):
        nodes += [helper.make_node("Identity", [src], [f"bn{k}.{p}"])
                  for p, src in (("weight", "ones"), ("bias", "zeros"), ("running_mean", "zeros"),
                                 ("running_var", "ones"))]
    if shared == "computed":
        nodes.append(helper.make_node("Mul", ["ones", "ones"], ["bn2.scale"]))
    w2 = "w2"
    if shared == "conv_weight":
        nodes += [helper.make_node("Identity", ["w2"], ["w2_copy"]),
                  helper.make_node("Identity", ["w2_copy"], ["conv2.weight"])]
        w2 = "conv2.weight"
    bn2_scale = "bn2.scale" if shared == "computed" else "bn2.weight"
    nodes += [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1", "bn1.weight", "bn1.bias", "bn1.running_mean",
                                                "bn1.running_var"], ["n1"]),
        helper.make_node("Relu", ["n1"], ["r1"]),
        helper.make_node("Conv", ["r1", w2, "b2"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c2", bn2_scale, "bn2.bias", "bn2.running_mean",
                                                "bn2.running_var"], ["n2"]),
        helper.make_node("Relu", ["n2"], ["r2"]),
        helper.make_node("GlobalAveragePool", ["r2"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["y"], transB=1),
    ]
    graph = helper.make_graph(nodes, "dup", [helper.make_tensor_value_info("x", TensorProto.FLOAT, SHAPE)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


@pytest.mark.parametrize("shared", ["initializer", "conv_weight", "constant"])
def test_float_within_1e4_of_onnxruntime(shared, tmp_path):
    path = _model(tmp_path / f"{shared}.onnx", shared)
    m = adaptc.compile(path, target="cortex-m4")
    ops = [s.op for s in m.program.steps]
    assert ops.count("adaptc.conv2d_f32") == 2     # both batch norms folded into their convolutions
    sess = ort.InferenceSession(str(path))
    rng = np.random.default_rng(2)
    for _ in range(4):
        x = rng.uniform(0, 1, SHAPE).astype(np.float32)
        want = sess.run(None, {"x": x})[0]
        got = m.run(x)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)


@pytest.mark.parametrize("shared", ["initializer", "conv_weight"])
def test_int8_agrees_with_onnxruntime_on_argmax(shared, tmp_path):
    path = _model(tmp_path / f"{shared}.onnx", shared)
    calibration = np.random.default_rng(0).uniform(0, 1, (64, *SHAPE)).astype(np.float32)
    q = adaptc.compile(path, target="cortex-m4", calibration=calibration)
    assert [s.op for s in q.program.steps].count("adaptc.qconv2d") == 2
    sess = ort.InferenceSession(str(path))
    xs = np.random.default_rng(3).uniform(0, 1, (64, *SHAPE)).astype(np.float32)
    want = [int(np.argmax(sess.run(None, {"x": x})[0])) for x in xs]
    got = [int(np.argmax(q.run(q.quantize_input(x)))) for x in xs]
    agree = np.mean(np.equal(got, want))
    assert agree >= 0.9, f"int8 argmax agrees with onnxruntime on {agree:.0%} of 64 inputs"


def test_batch_norm_with_computed_parameters_is_refused_by_name(tmp_path):
    path = _model(tmp_path / "computed.onnx", "computed")
    with pytest.raises(UnsupportedOperatorError, match=r"BatchNormalization at node 'n2' \(scale, bias, mean or "
                                                       r"variance computed at run time\)"):
        adaptc.compile(path, target="cortex-m4")


@I.ir_module
class TupleBinding:
    @R.function
    def main(x: R.Tensor((1, 2, 2, 4), "float32")) -> R.Tensor((1, 2, 2, 4), "float32"):
        R.func_attr({"num_input": 1})
        with R.dataflow():
            ones = R.const(np.ones(4, np.float32))
            zeros = R.const(np.zeros(4, np.float32))
            t = R.nn.batch_norm(x, ones, zeros, zeros, ones, axis=3)
            y = t[0]
            R.output(y)
        return y


def test_fuse_float_ops_refuses_a_tuple_value_by_name():
    with pytest.raises(UnsupportedOperatorError, match=r"nn.batch_norm at node 't'.*TupleType value"):
        tvm_compat.apply(FuseFloatOps("net.onnx"), TupleBinding)
