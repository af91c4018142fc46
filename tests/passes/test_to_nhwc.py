"""ToNHWC: ONNX's NCHW convolutions -> NHWC, numbers unchanged; byte-order-preserving transposes -> reshape."""
import numpy as np
import tvm
from tvm import relax
from tvm.script import ir as I
from tvm.script import relax as R

from adaptc import tvm_compat
from adaptc.passes.to_nhwc import ToNHWC, keeps_memory_order

W = np.random.default_rng(0).standard_normal((4, 2, 3, 3)).astype(np.float32)


@I.ir_module
class Before:
    @R.function
    def main(x: R.Tensor((1, 2, 5, 5), "float32")) -> R.Tensor((1, 4), "float32"):
        with R.dataflow():
            c = R.nn.conv2d(x, R.const(W), padding=[1, 1, 1, 1])
            r = R.nn.relu(c)
            m = R.mean(r, axis=[2, 3], keepdims=True)
            f = R.reshape(m, R.shape([1, 4]))
            R.output(f)
        return f


def test_nhwc_and_same_numbers():
    after = tvm_compat.apply(ToNHWC(), Before)
    assert tvm_compat.well_formed(after)
    ops = {}
    relax.analysis.post_order_visit(after["main"], lambda e: ops.setdefault(tvm_compat.op_name(e), e))
    conv = ops["relax.nn.conv2d"]
    assert (str(conv.attrs.data_layout), str(conv.attrs.kernel_layout)) == ("NHWC", "HWIO")
    transposes = []
    relax.analysis.post_order_visit(after["main"], lambda e: transposes.append(e)
                                    if tvm_compat.op_name(e) == "relax.permute_dims" else None)
    # the input transpose stays; (1,1,1,4) -> (1,4,1,1) became a reshape; weights are constants
    assert [tvm_compat.shape_of(t.ty) for t in transposes if not tvm_compat.is_constant(t.args[0])] == [(1, 5, 5, 2)]
    x = np.random.default_rng(1).standard_normal((1, 2, 5, 5)).astype(np.float32)
    np.testing.assert_allclose(tvm_compat.run_vm(tvm_compat.build_llvm(after), x)[0],
                               tvm_compat.run_vm(tvm_compat.build_llvm(Before), x)[0], rtol=1e-5, atol=1e-6)


def test_keeps_memory_order():
    assert keeps_memory_order((1, 1, 1, 8), [0, 3, 1, 2])
    assert keeps_memory_order((1, 8, 1, 1), [0, 2, 3, 1])
    assert not keeps_memory_order((1, 2, 5, 5), [0, 2, 3, 1])
    assert not keeps_memory_order((3, 4), [1, 0])


# ------------------------------------------------------------------ Before / Expected (TVM's shape)

W2 = np.arange(16, dtype=np.float32).reshape(2, 2, 2, 2) / 8 - 1    # OIHW: 2 out, 2 in, 2x2


@I.ir_module
class NCHWBefore:
    @R.function
    def main(x: R.Tensor((1, 2, 3, 3), "float32")) -> R.Tensor((1, 2), "float32"):
        R.func_attr({"num_input": 1})
        with R.dataflow():
            c = R.nn.conv2d(x, R.const(W2))
            r = R.nn.relu(c)
            m = R.mean(r, axis=[2, 3], keepdims=True)
            f = R.reshape(m, R.shape([1, 2]))
            R.output(f)
        return f


@I.ir_module
class NCHWExpected:
    @R.function
    def main(x: R.Tensor((1, 2, 3, 3), "float32")) -> R.Tensor((1, 2), "float32"):
        R.func_attr({"num_input": 1})
        with R.dataflow():
            # two channels move: a real transpose, kept
            lv = R.permute_dims(x, axes=[0, 2, 3, 1])
            # OIHW -> HWIO on the constant (left for FuseFloatOps' const_eval to fold)
            lv1 = R.permute_dims(R.const(W2), axes=[2, 3, 1, 0])
            c = R.nn.conv2d(lv, lv1, data_layout="NHWC", kernel_layout="HWIO", out_layout="NHWC")
            r = R.nn.relu(c)
            m = R.mean(r, axis=[1, 2], keepdims=True)
            # ConvertLayout's NHWC -> NCHW transpose before the reshape: (1, 1, 1, 2) moves only
            # size-1 axes, so the bytes keep their order and it is a reshape
            lv2 = R.reshape(m, R.shape([1, 2, 1, 1]))
            f = R.reshape(lv2, R.shape([1, 2]))
            R.output(f)
        return f


def _nchw_reference(x):
    """conv2d (NCHW / OIHW, stride 1, no padding) -> relu -> spatial mean, in float64."""
    k = W2.shape[2]
    out = x.shape[2] - k + 1
    y = np.zeros((1, W2.shape[0], out, out))
    for i in range(out):
        for j in range(out):
            y[0, :, i, j] = np.einsum("ochw,chw->o", W2.astype(np.float64), x[0, :, i:i + k, j:j + k])
    return np.maximum(y, 0).mean(axis=(2, 3))


def test_nchw_conv_becomes_nhwc_before_expected():
    after = tvm_compat.apply(ToNHWC(), NCHWBefore)
    assert tvm_compat.well_formed(after)
    tvm.ir.assert_structural_equal(after, NCHWExpected)
    x = np.random.default_rng(2).standard_normal((1, 2, 3, 3)).astype(np.float32)
    got = tvm_compat.run_vm(tvm_compat.build_llvm(after), x)[0]
    assert got.shape == (1, 2)
    np.testing.assert_allclose(got, _nchw_reference(x.astype(np.float64)), rtol=1e-5, atol=1e-6)


@I.ir_module
class AlreadyNHWC:
    @R.function
    def main(x: R.Tensor((1, 3, 3, 2), "float32")) -> R.Tensor((1, 2, 2, 2), "float32"):
        R.func_attr({"num_input": 1})
        with R.dataflow():
            c = R.nn.conv2d(x, R.const(W2.transpose(2, 3, 1, 0)), data_layout="NHWC", kernel_layout="HWIO")
            r = R.nn.relu(c)
            R.output(r)
        return r


def test_nhwc_module_is_unchanged():
    after = tvm_compat.apply(ToNHWC(), AlreadyNHWC)
    assert tvm_compat.well_formed(after)
    tvm.ir.assert_structural_equal(after, AlreadyNHWC)
    x = np.random.default_rng(3).standard_normal((1, 2, 3, 3)).astype(np.float32)
    got = tvm_compat.run_vm(tvm_compat.build_llvm(after), np.ascontiguousarray(x.transpose(0, 2, 3, 1)))[0]
    ref = np.maximum(np.stack([np.einsum("ochw,chw->o", W2.astype(np.float64), x[0, :, i:i + 2, j:j + 2])
                               for i in range(2) for j in range(2)]), 0)
    np.testing.assert_allclose(got.reshape(4, 2), ref, rtol=1e-5, atol=1e-6)


@I.ir_module
class ClipBefore:      # a PyTorch ReLU6 (ONNX Clip) between the conv and the global pooling
    @R.function
    def main(x: R.Tensor((1, 2, 3, 3), "float32")) -> R.Tensor((1, 2), "float32"):
        R.func_attr({"num_input": 1})
        with R.dataflow():
            c = R.nn.conv2d(x, R.const(W2))
            r = R.clip(c, 0.0, 6.0)
            m = R.mean(r, axis=[2, 3], keepdims=False)
            R.output(m)
        return m


@I.ir_module
class ClipExpected:
    @R.function
    def main(x: R.Tensor((1, 2, 3, 3), "float32")) -> R.Tensor((1, 2), "float32"):
        R.func_attr({"num_input": 1})
        with R.dataflow():
            lv = R.permute_dims(x, axes=[0, 2, 3, 1])
            lv1 = R.permute_dims(R.const(W2), axes=[2, 3, 1, 0])
            c = R.nn.conv2d(lv, lv1, data_layout="NHWC", kernel_layout="HWIO", out_layout="NHWC")
            # NHWC carried through the clip (0.27's ConvertLayout alone stops at it) to the mean
            r = R.clip(c, 0.0, 6.0)
            m = R.mean(r, axis=[1, 2], keepdims=False)
            R.output(m)
        return m


def test_clip_carries_the_layout_before_expected():
    after = tvm_compat.apply(ToNHWC(), ClipBefore)
    assert tvm_compat.well_formed(after)
    tvm.ir.assert_structural_equal(after, ClipExpected)
    x = 4 * np.random.default_rng(4).standard_normal((1, 2, 3, 3)).astype(np.float32)
    k, out = W2.shape[2], 2
    conv = np.array([[[np.einsum("chw,chw->", W2[o].astype(np.float64), x[0, :, i:i + k, j:j + k].astype(np.float64))
                       for j in range(out)] for i in range(out)] for o in range(2)])
    assert conv.max() > 6 or conv.min() < 0                 # the clip bites
    got = tvm_compat.run_vm(tvm_compat.build_llvm(after), x)[0]
    np.testing.assert_allclose(got[0], np.clip(conv, 0, 6).mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)


LIMIT = np.array([0.5, -0.25], "float32").reshape(2, 1, 1)       # per channel, NCHW


@I.ir_module
class WhereBefore:         # ConvertLayout infers no layout for where: it and its operands went NCHW
    @R.function
    def main(x: R.Tensor((1, 2, 2, 2), "float32")) -> R.Tensor((1, 2, 1, 1), "float32"):
        R.func_attr({"num_input": 1})
        with R.dataflow():
            c = R.nn.conv2d(x, R.const(W2))
            m = R.greater(c, R.const(LIMIT))
            y = R.where(m, R.const(0.0, "float32"), c)
            R.output(y)
        return y


@I.ir_module
class WhereExpected:
    @R.function
    def main(x: R.Tensor((1, 2, 2, 2), "float32")) -> R.Tensor((1, 2, 1, 1), "float32"):
        R.func_attr({"num_input": 1})
        with R.dataflow():
            lv = R.permute_dims(x, axes=[0, 2, 3, 1])
            lv1 = R.permute_dims(R.const(W2), axes=[2, 3, 1, 0])
            c = R.nn.conv2d(lv, lv1, data_layout="NHWC", kernel_layout="HWIO", out_layout="NHWC")
            m = R.greater(c, R.const(LIMIT.reshape(1, 1, 1, 2)))     # the constant carried to NHWC
            y = R.where(m, R.const(0.0, "float32"), c)                # NHWC too: one transpose, at the end
            lv2 = R.reshape(y, R.shape([1, 2, 1, 1]))
            R.output(lv2)
        return lv2


def test_where_runs_nhwc_before_expected():
    after = tvm_compat.apply(ToNHWC(), WhereBefore)
    assert tvm_compat.well_formed(after)
    tvm.ir.assert_structural_equal(after, WhereExpected)
    x = np.random.default_rng(3).standard_normal((1, 2, 2, 2)).astype(np.float32)
    c = np.einsum("ochw,chw->o", W2.astype(np.float64), x[0].astype(np.float64)).reshape(1, 2, 1, 1)
    want = np.where(c > LIMIT, 0.0, c)
    np.testing.assert_allclose(tvm_compat.run_vm(tvm_compat.build_llvm(after), x)[0], want, rtol=1e-5, atol=1e-6)
