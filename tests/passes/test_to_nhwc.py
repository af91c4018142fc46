"""ToNHWC: ONNX's NCHW convolutions -> NHWC, numbers unchanged; byte-order-preserving transposes -> reshape."""
import numpy as np
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
