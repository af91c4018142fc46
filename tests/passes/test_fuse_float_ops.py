"""FuseFloatOps: float layers -> adaptc.*_f32 composites, same numbers on llvm."""
import numpy as np
import pytest
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
            y = R.tanh(x)
            R.output(y)
        return y


def test_unsupported_op():
    with pytest.raises(UnsupportedOperatorError, match=r"tanh at node 'y'"):
        tvm_compat.apply(FuseFloatOps("net.onnx"), Unsupported)
