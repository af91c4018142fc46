"""QuantizeWeights: low-bit / power-of-two weights -> the QDQ form LegalizeQDQ lowers, on grids."""
import numpy as np
import pytest

from adaptc import formats as F
from adaptc import tvm_compat
from adaptc.errors import InputError
from adaptc.passes.fuse_float_ops import FuseFloatOps
from adaptc.passes.legalize_qdq import LegalizeQDQ
from adaptc.passes.quantize_weights import CodedWeights, QuantizeWeights
from adaptc.qops import composite_name

from test_fuse_float_ops import B, W, Before  # noqa: F401  (same float network)

rng = np.random.default_rng(3)
CAL = rng.standard_normal((32, 1, 6, 6, 2)).astype(np.float32)


def _weighted(mod):
    return [mod[b.value.op] for blk in mod["main"].body.blocks for b in blk.bindings
            if composite_name(mod, b.value) in ("adaptc.qconv2d", "adaptc.qdense")]


@pytest.mark.parametrize("fmt", ["pot2", "pot3", "pot4", "pot5", "int4"])
def test_weights_on_the_grid_with_power_of_two_requantization(fmt):
    fused = tvm_compat.apply(FuseFloatOps(), Before)
    scheme = CodedWeights(fmt)
    integer = tvm_compat.apply([QuantizeWeights(CAL, fmt, scheme=scheme), LegalizeQDQ(weight_formats=True)], fused)
    assert tvm_compat.well_formed(integer)
    main = integer["main"]
    s_in = float(main.attrs["adaptc.input_scale"])
    assert np.log2(s_in) == np.round(np.log2(s_in))                 # power-of-two activation scale
    layers = _weighted(integer)
    assert layers and [r["format"] for r in scheme.report] == [fmt] * len(layers)
    for f in layers:
        w = next(c for c in f.params[1:2])                           # the weights parameter
        assert str(f.attrs["weight_format"]) in F.FORMATS
        assert all(int(m) == 1 << 30 for m in f.attrs["multiplier"])  # scale ratios are powers of two
        assert tvm_compat.dtype_of(w.ty) in ("int8", "int16")
    for r in scheme.report:
        assert 0 <= r["error"] <= r["nearest_error"] + 1e-9          # error-correcting rounding helps
    # still a model of the float network: it runs on llvm and its top class mostly agrees
    x = rng.standard_normal((8, 1, 6, 6, 2)).astype(np.float32)
    zp = int(main.attrs["adaptc.input_zero_point"])
    vm_f, vm_q = tvm_compat.build_llvm(Before), tvm_compat.build_llvm(integer)
    agree = [np.argmax(tvm_compat.run_vm(vm_f, xi)[0]) ==
             np.argmax(tvm_compat.run_vm(vm_q, np.clip(np.round(xi / s_in) + zp, -128, 127).astype(np.int8))[0])
             for xi in x]
    assert np.mean(agree) >= (0.5 if fmt == "pot2" else 0.75)


def test_formats_per_layer_and_errors():
    fused = tvm_compat.apply(FuseFloatOps(), Before)
    with pytest.raises(InputError, match="weight formats given"):
        tvm_compat.apply(QuantizeWeights(CAL, []), fused)
    with pytest.raises(ValueError, match="unknown weight format"):
        tvm_compat.apply(QuantizeWeights(CAL, "pot7"), fused)
