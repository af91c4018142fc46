"""FuseFloatOps: float layers -> adaptc.*_f32 composites, same numbers on llvm."""
import numpy as np
import pytest
import tvm
from tvm import relax
from tvm.script import ir as I
from tvm.script import relax as R

from adaptc import tvm_compat
from adaptc.errors import UnsupportedOperatorError
from adaptc.passes.fuse_float_ops import FuseFloatOps
from adaptc.qops import composite_name

rng = np.random.default_rng(0)
W = rng.standard_normal((3, 3, 2, 4)).astype(np.float32)
B = rng.standard_normal(4).astype(np.float32)


@I.ir_module
class Before:
    @R.function
    def main(x: R.Tensor((1, 6, 6, 2), "float32")) -> R.Tensor((1, 4), "float32"):
        R.func_attr({"num_input": 1})
        with R.dataflow():
            c = R.nn.conv2d(x, R.const(W), padding=[1, 1, 1, 1], data_layout="NHWC", kernel_layout="HWIO")
            b = R.add(c, R.const(B))
            r = R.nn.relu(b)
            s = R.add(r, r)
            m = R.mean(s, axis=[1, 2], keepdims=True)
            f = R.reshape(m, R.shape([1, 4]))
            y = R.nn.softmax(f, axis=-1)
            R.output(y)
        return y


def test_groups_layers_and_keeps_numbers():
    after = tvm_compat.apply(FuseFloatOps(), Before)
    assert tvm_compat.well_formed(after)
    bindings = [b for blk in after["main"].body.blocks for b in blk.bindings]
    ops = [composite_name(after, b.value) or tvm_compat.op_name(b.value) for b in bindings
           if not isinstance(b.value, relax.Var)]
    assert ops == ["adaptc.conv2d_f32", "adaptc.add_f32", "adaptc.avg_pool2d_f32", "relax.reshape",
                   "adaptc.softmax_f32"]
    conv = after[bindings[0].value.op]
    assert float(conv.attrs["act_min"]) == 0.0 and float(conv.attrs["act_max"]) == float("inf")
    np.testing.assert_array_equal(tvm_compat.constant_value(bindings[0].value.args[2]), B)
    x = rng.standard_normal((1, 6, 6, 2)).astype(np.float32)
    ref = tvm_compat.run_vm(tvm_compat.build_llvm(Before), x)[0]
    got = tvm_compat.run_vm(tvm_compat.build_llvm(after), x)[0]
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-7)


@I.ir_module
class Unsupported:
    @R.function
    def main(x: R.Tensor((1, 4), "float32")) -> R.Tensor((1, 4), "float32"):
        with R.dataflow():
            y = R.erf(x)
            R.output(y)
        return y


def test_unsupported_op():
    with pytest.raises(UnsupportedOperatorError, match=r"erf at node 'y'"):
        tvm_compat.apply(FuseFloatOps("net.onnx"), Unsupported)


# ------------------------------------------------------------------ Before / Expected (TVM's shape)

W1 = np.array([[1.0, -0.5], [0.25, 2.0], [-1.5, 0.75], [0.5, 1.0]], np.float32).reshape(2, 2, 1, 2)  # HWIO
B1 = np.array([0.5, -1.0], np.float32)


@I.ir_module
class LayersBefore:
    @R.function
    def main(x: R.Tensor((1, 3, 3, 1), "float32")) -> R.Tensor((1, 2), "float32"):
        R.func_attr({"num_input": 1})
        with R.dataflow():
            c = R.nn.conv2d(x, R.const(W1), data_layout="NHWC", kernel_layout="HWIO")
            b = R.add(c, R.const(B1))
            r = R.clip(b, 0.0, 6.0)                            # relu6
            m = R.mean(r, axis=[1, 2], keepdims=True)          # global average pool
            f = R.reshape(m, R.shape([1, 2]))
            s = R.multiply(f, R.const(2.0, "float32"))         # softmax beta (TFLite importer)
            y = R.nn.softmax(s, axis=-1)
            R.output(y)
        return y


@I.ir_module
class LayersExpected:
    @R.function(private=True)
    def conv2d_f32_0(x0: R.Tensor((1, 3, 3, 1), "float32"), weights: R.Tensor((2, 2, 1, 2), "float32"),
                     bias: R.Tensor((2,), "float32")) -> R.Tensor((1, 2, 2, 2), "float32"):
        R.func_attr({"Composite": "adaptc.conv2d_f32", "act_max": 6.0, "act_min": 0.0, "dilation": [1, 1],
                     "groups": 1, "kernel_layout": "HWIO", "padding": [0, 0, 0, 0], "source": "conv2d+bias+act",
                     "strides": [1, 1]})
        with R.dataflow():
            lv = R.nn.conv2d(x0, weights, data_layout="NHWC", kernel_layout="HWIO")
            lv1 = R.add(lv, bias)
            gv = R.clip(lv1, 0.0, 6.0)
            R.output(gv)
        return gv

    @R.function(private=True)
    def avg_pool2d_f32_1(x0: R.Tensor((1, 2, 2, 2), "float32")) -> R.Tensor((1, 1, 1, 2), "float32"):
        R.func_attr({"Composite": "adaptc.avg_pool2d_f32", "act_max": float("inf"), "act_min": float("-inf"),
                     "padding": [0, 0, 0, 0], "pool_size": [2, 2], "source": "mean", "strides": [1, 1]})
        with R.dataflow():
            lv = R.nn.avg_pool2d(x0, pool_size=[2, 2], strides=[1, 1], padding=[0, 0, 0, 0],
                                 count_include_pad=False, layout="NHWC")
            gv = lv
            R.output(gv)
        return gv

    @R.function(private=True)
    def softmax_f32_3(x0: R.Tensor((1, 2), "float32")) -> R.Tensor((1, 2), "float32"):
        R.func_attr({"Composite": "adaptc.softmax_f32", "beta": 2.0, "log": 0, "source": "softmax"})
        with R.dataflow():
            lv = R.multiply(x0, R.const(2.0, "float32"))
            gv = R.nn.softmax(lv, axis=-1)
            R.output(gv)
        return gv

    @R.function
    def main(x: R.Tensor((1, 3, 3, 1), "float32")) -> R.Tensor((1, 2), "float32"):
        R.func_attr({"num_input": 1})
        cls = LayersExpected
        with R.dataflow():
            r = cls.conv2d_f32_0(x, R.const(W1), R.const(B1))
            m = cls.avg_pool2d_f32_1(r)
            f = R.reshape(m, R.shape([1, 2]))                  # layout ops stay as they are
            y = cls.softmax_f32_3(f)
            gv = y
            R.output(gv)
        return gv


def _layers_reference(x):
    """The network in float64: conv2d (valid, HWIO) + bias -> relu6 -> mean -> softmax(2 * z)."""
    conv = np.stack([np.stack([np.einsum("hwio,hwi->o", W1.astype(np.float64), x[0, i:i + 2, j:j + 2])
                               for j in range(2)]) for i in range(2)]) + B1
    assert conv.min() < 0 and conv.max() > 6               # both ends of relu6 are exercised
    z = np.clip(conv, 0.0, 6.0).mean(axis=(0, 1)) * 2.0
    e = np.exp(z - z.max())
    return (e / e.sum())[None]


def test_layers_become_composites_before_expected():
    after = tvm_compat.apply(FuseFloatOps(), LayersBefore)
    assert tvm_compat.well_formed(after)
    tvm.ir.assert_structural_equal(after, LayersExpected)
    x = (3 * np.random.default_rng(4).standard_normal((1, 3, 3, 1))).astype(np.float32)
    got = tvm_compat.run_vm(tvm_compat.build_llvm(after), x)[0]
    np.testing.assert_allclose(got, _layers_reference(x.astype(np.float64)), rtol=1e-5, atol=1e-6)


@I.ir_module
class MeanBefore:      # PyTorch's x.mean((2, 3)) after ToNHWC, then a ReLU
    @R.function
    def main(x: R.Tensor((1, 4, 4, 8), "float32")) -> R.Tensor((1, 8), "float32"):
        R.func_attr({"num_input": 1})
        with R.dataflow():
            m = R.mean(x, axis=[1, 2], keepdims=False)
            r = R.nn.relu(m)
            R.output(r)
        return r


@I.ir_module
class MeanExpected:
    @R.function(private=True)
    def reduce_f32_0(x0: R.Tensor((1, 4, 4, 8), "float32")) -> R.Tensor((1, 8), "float32"):
        R.func_attr({"Composite": "adaptc.reduce_f32", "act_max": float("inf"), "act_min": 0.0, "axes": [1, 2],
                     "count": 16, "keep_dims": False, "reduce": "mean", "source": "mean"})
        with R.dataflow():
            lv = R.mean(x0, axis=[1, 2], keepdims=False)
            gv = R.clip(lv, 0.0, float("inf"))
            R.output(gv)
        return gv

    @R.function
    def main(x: R.Tensor((1, 4, 4, 8), "float32")) -> R.Tensor((1, 8), "float32"):
        R.func_attr({"num_input": 1})
        cls = MeanExpected
        with R.dataflow():
            r = cls.reduce_f32_0(x)
            gv = r
            R.output(gv)
        return gv


def test_mean_without_kept_dims_becomes_reduce_f32_before_expected():
    """A spatial mean that drops H and W (PyTorch's global pooling) is adaptc.reduce_f32 with the
    activation folded in; one that keeps them is average pooling (see LayersExpected)."""
    after = tvm_compat.apply(FuseFloatOps("t.onnx"), MeanBefore)
    assert tvm_compat.well_formed(after)
    tvm.ir.assert_structural_equal(after, MeanExpected)
    x = np.random.default_rng(3).normal(0.0, 1.0, size=(1, 4, 4, 8)).astype(np.float32)
    want = np.maximum(x.astype(np.float64).mean(axis=(1, 2)), 0.0)
    assert np.any(want == 0.0) and np.any(want > 0.0)
    np.testing.assert_allclose(tvm_compat.run_vm(tvm_compat.build_llvm(after), x)[0], want, rtol=1e-6, atol=1e-7)
