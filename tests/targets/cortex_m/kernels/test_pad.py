"""PAD (targets/cortex_m/kernels/pad.py): pad_s8 and pad_f32 called directly against NumPy
(exactly) and pad_s8 against TensorFlow Lite Micro."""
from __future__ import annotations

import numpy as np
import pytest

import kernel_harness as harness
import kernel_ref as ref
from kernel_harness import seed
from tflm_harness import needs_tflm, tfl, tflm_run

pytestmark = harness.needs_cc

FAMILY = "pad"

PAD_CASES = [
    dict(id="spatial_same", shape=(1, 4, 5, 3), before=(0, 1, 2, 0), after=(0, 1, 0, 0)),
    dict(id="all_dims", shape=(2, 3, 2, 2), before=(1, 0, 2, 1), after=(0, 2, 1, 3)),
    dict(id="no_pad", shape=(1, 2, 3, 4), before=(0, 0, 0, 0), after=(0, 0, 0, 0)),
    dict(id="channels_only", shape=(1, 2, 2, 3), before=(0, 0, 0, 2), after=(0, 0, 0, 5)),
]


@pytest.mark.parametrize("case", PAD_CASES, ids=lambda c: c["id"])
@pytest.mark.parametrize("dtype", ["s8", "f32"])
def test_pad(lib, case, dtype):
    rng = np.random.default_rng(seed(case["id"]))
    shape, before, after = case["shape"], case["before"], case["after"]
    out_dims = tuple(s + b + a for s, b, a in zip(shape, before, after))
    if dtype == "s8":
        x = rng.integers(-128, 128, size=shape).astype(np.int8)
        pad_value = -77
    else:
        x = rng.standard_normal(shape).astype(np.float32)
        pad_value = 0.25
    params = dict(in_dims=shape, out_dims=out_dims, before=before, pad_value=pad_value)
    got = lib.run(f"pad_{dtype}", params, out_dims, input=x)
    np.testing.assert_array_equal(got, ref.pad_ref(x, before, after, pad_value).astype(x.dtype))


@needs_tflm
def test_pad_matches_tflite_micro(lib):
    rng = np.random.default_rng(21)
    shape, before, after, zp = (1, 4, 5, 3), (0, 1, 2, 0), (0, 2, 1, 0), -17
    x = rng.integers(-128, 128, size=shape).astype(np.int8)
    paddings = np.array(list(zip(before, after)), dtype=np.int32)
    out_dims = tuple(s + b + a for s, b, a in zip(shape, before, after))
    want = tflm_run(tfl.BuiltinOperator.PAD,
                    [(shape, tfl.TensorType.INT8, ([0.1], [zp]), False),
                     (paddings, tfl.TensorType.INT32, None, True)],
                    out_dims, ([0.1], [zp]), None, None, [x])
    params = dict(in_dims=shape, out_dims=out_dims, before=before, pad_value=zp)
    np.testing.assert_array_equal(lib.run("pad_s8", params, out_dims, input=x), want)


def test_every_kernel_is_covered():
    """Every kernel of the family is called directly (the family has reference kernels only: a
    new variant needs cases that run it here)."""
    harness.assert_covered(FAMILY, harness.wrapped_kernels(FAMILY))
