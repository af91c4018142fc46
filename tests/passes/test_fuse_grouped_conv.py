"""FuseFloatOps on a grouped convolution (1 < groups < channels): one adaptc.conv2d_f32 per
group between a channel slice of the input and a concat; same numbers on llvm."""
import numpy as np
import tvm
from tvm.script import ir as I
from tvm.script import relax as R

from adaptc import tvm_compat
from adaptc.passes.fuse_float_ops import FuseFloatOps

W = np.arange(16, dtype=np.float32).reshape(1, 2, 2, 4) / 8 - 1     # HWIO: 2 inputs a group, 4 outputs
B = np.array([0.5, -1.0, 0.25, 2.0], np.float32)


@I.ir_module
class GroupedBefore:
    @R.function
    def main(x: R.Tensor((1, 3, 3, 4), "float32")) -> R.Tensor((1, 3, 2, 4), "float32"):
        R.func_attr({"num_input": 1})
        with R.dataflow():
            c = R.nn.conv2d(x, R.const(W), groups=2, data_layout="NHWC", kernel_layout="HWIO")
            b = R.add(c, R.const(B))
            r = R.nn.relu(b)
            R.output(r)
        return r


@I.ir_module
class GroupedExpected:
    @R.function(private=True)
    def conv2d_f32_1(x0: R.Tensor((1, 3, 3, 2), "float32"), weights: R.Tensor((1, 2, 2, 2), "float32"),
                     bias: R.Tensor((2,), "float32")) -> R.Tensor((1, 3, 2, 2), "float32"):
        R.func_attr({"Composite": "adaptc.conv2d_f32", "act_max": float("inf"), "act_min": 0.0, "dilation": [1, 1],
                     "groups": 1, "kernel_layout": "HWIO", "padding": [0, 0, 0, 0],
                     "source": "conv2d+bias+act group 0/2", "strides": [1, 1]})
        with R.dataflow():
            lv = R.nn.conv2d(x0, weights, data_layout="NHWC", kernel_layout="HWIO")
            lv1 = R.add(lv, bias)
            gv = R.clip(lv1, 0.0, float("inf"))
            R.output(gv)
        return gv

    @R.function(private=True)
    def conv2d_f32_3(x0: R.Tensor((1, 3, 3, 2), "float32"), weights: R.Tensor((1, 2, 2, 2), "float32"),
                     bias: R.Tensor((2,), "float32")) -> R.Tensor((1, 3, 2, 2), "float32"):
        R.func_attr({"Composite": "adaptc.conv2d_f32", "act_max": float("inf"), "act_min": 0.0, "dilation": [1, 1],
                     "groups": 1, "kernel_layout": "HWIO", "padding": [0, 0, 0, 0],
                     "source": "conv2d+bias+act group 1/2", "strides": [1, 1]})
        with R.dataflow():
            lv = R.nn.conv2d(x0, weights, data_layout="NHWC", kernel_layout="HWIO")
            lv1 = R.add(lv, bias)
            gv = R.clip(lv1, 0.0, float("inf"))
            R.output(gv)
        return gv

    @R.function
    def main(x: R.Tensor((1, 3, 3, 4), "float32")) -> R.Tensor((1, 3, 2, 4), "float32"):
        R.func_attr({"num_input": 1})
        cls = GroupedExpected
        with R.dataflow():
            c_in0 = R.strided_slice(x, axes=[3], begin=[0], end=[2])
            c_g0 = cls.conv2d_f32_1(c_in0, R.const(np.ascontiguousarray(W[..., :2])), R.const(B[:2]))
            c_in1 = R.strided_slice(x, axes=[3], begin=[2], end=[4])
            c_g1 = cls.conv2d_f32_3(c_in1, R.const(np.ascontiguousarray(W[..., 2:])), R.const(B[2:]))
            r = R.concat((c_g0, c_g1), axis=3)
            gv = r
            R.output(gv)
        return gv


def test_grouped_conv_becomes_one_conv_per_group_before_expected():
    after = tvm_compat.apply(FuseFloatOps(), GroupedBefore)
    assert tvm_compat.well_formed(after)
    tvm.ir.assert_structural_equal(after, GroupedExpected)
    x = np.random.default_rng(0).standard_normal((1, 3, 3, 4)).astype(np.float32)
    got = tvm_compat.run_vm(tvm_compat.build_llvm(after), x)[0]
    want = tvm_compat.run_vm(tvm_compat.build_llvm(GroupedBefore), x)[0]
    assert want.min() == 0.0 and want.max() > 0.5                 # the relu is exercised
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
