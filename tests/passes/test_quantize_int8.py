"""QuantizeInt8: post-training int8 (TFLite scheme) -> QDQ form that LegalizeQDQ lowers exactly."""
import numpy as np
import pytest

from adaptc import tvm_compat
from adaptc.errors import InputError
from adaptc.passes.fuse_float_ops import FuseFloatOps
from adaptc.passes.legalize_qdq import LegalizeQDQ
from adaptc.passes.quantize_int8 import QuantizeInt8, _qparams
from adaptc.qops import composite_name

from test_fuse_float_ops import B, W, Before  # noqa: F401  (same float network)

rng = np.random.default_rng(2)
CAL = rng.standard_normal((16, 1, 6, 6, 2)).astype(np.float32)


def test_qparams_tflite_scheme():
    scale, zp = _qparams(-1.0, 3.0)          # range 4 over 255 steps; real 0 must be exact
    assert np.isclose(scale, 4 / 255) and zp == -128 + round(1.0 / (4 / 255))
    assert _qparams(0.5, 2.0)[1] == -128      # range widened to include 0
    assert _qparams(0.0, 0.0) == (np.float32(1 / 255), -128)


def test_weights_per_channel_and_close_to_float():
    fused = tvm_compat.apply(FuseFloatOps(), Before)
    qdq = tvm_compat.apply(QuantizeInt8(CAL), fused)
    main = qdq["main"]
    assert tvm_compat.dtype_of(main.params[0].ty) == "int8"
    s_in, zp_in = float(main.attrs["adaptc.input_scale"]), int(main.attrs["adaptc.input_zero_point"])
    assert np.isclose(s_in, (CAL.max() - min(CAL.min(), 0)) / 255, rtol=1e-6)
    integer = tvm_compat.apply(LegalizeQDQ(), qdq)
    conv = next(integer[b.value.op] for blk in integer["main"].body.blocks for b in blk.bindings
                if composite_name(integer, b.value) == "adaptc.qconv2d")
    assert len(conv.attrs["multiplier"]) == 4   # per output channel
    x = rng.standard_normal((1, 6, 6, 2)).astype(np.float32)
    xq = np.clip(np.round(x / s_in) + zp_in, -128, 127).astype(np.int8)
    ref = tvm_compat.run_vm(tvm_compat.build_llvm(Before), x)[0]
    y = tvm_compat.run_vm(tvm_compat.build_llvm(integer), xq)[0]
    prob = (y.astype(np.float32) + 128) / 256     # softmax output: scale 1/256, zero point -128
    assert np.abs(prob - ref).max() < 0.05        # int8 end to end, 4 classes


def test_calibration_shape_is_checked():
    fused = tvm_compat.apply(FuseFloatOps(), Before)
    with pytest.raises(InputError, match=r"calibration data must have shape \(N, 1, 6, 6, 2\)"):
        tvm_compat.apply(QuantizeInt8(np.zeros((4, 3, 3), np.float32), "net.onnx"), fused)
