"""AVERAGE_POOL_2D / MAX_POOL_2D (targets/cortex_m/kernels/pool.py): avg_pool_s8, max_pool_s8,
avg_pool_f32, max_pool_f32 called directly against the NumPy references (int8 bit-exact, float32
to ~1e-5) and against TensorFlow Lite Micro."""
from __future__ import annotations

import numpy as np
import pytest

import kernel_harness as harness
import kernel_ref as ref
from kernel_cases import F_ATOL, F_RTOL, POOL_REF_KEYS, geometry, pool_case, ref_kwargs
from kernel_harness import seed
from tflm_harness import ACT, f32, needs_tflm, tfl, tflm_act_range, tflm_run

pytestmark = harness.needs_cc

FAMILY = "pool"

POOL_CASES = [
    dict(id="2x2_s2_valid", H=8, W=8, K=(2, 2), S=(2, 2)),
    dict(id="3x3_s2_same_even", H=8, W=8, K=(3, 3), S=(2, 2), padding="same"),
    dict(id="3x3_s1_same", H=5, W=6, K=(3, 3), S=(1, 1), padding="same"),
    dict(id="k4_same_asymmetric", H=5, W=7, K=(4, 4), S=(1, 1), padding="same"),
    dict(id="nonsquare_3x2_s_2x1", H=7, W=6, K=(3, 2), S=(2, 1), padding="same"),
    dict(id="global", H=5, W=5, K=(5, 5), S=(5, 5)),
    dict(id="batch2", N=2, H=6, W=6, K=(3, 3), S=(2, 2), padding="same"),
    dict(id="act_narrow", H=6, W=6, K=(2, 2), S=(2, 2), act=(-50, 60)),
    dict(id="1x1", H=3, W=4, K=(1, 1), S=(1, 1)),
]


@pytest.mark.parametrize("case", POOL_CASES, ids=lambda c: c["id"])
@pytest.mark.parametrize("op", ["avg", "max"])
def test_pool_s8(lib, case, op):
    params, x = pool_case(case, seed(case["id"]), np.int8)
    shape = (params["batches"], params["out_h"], params["out_w"], params["channels"])
    got = lib.run(f"{op}_pool_s8", params, shape, input=x)
    want = getattr(ref, f"{op}_pool_s8_ref")(x, **ref_kwargs(params, POOL_REF_KEYS))
    np.testing.assert_array_equal(got, want)


def test_avg_pool_s8_rounding(lib):
    """Ties round away from zero; negative sums use the negative branch."""
    # 1x2 windows over pairs: sums -3, -1, 0, 1, 3, 255, -256 with count 2
    pairs = np.array([[-2, -1], [-1, 0], [0, 0], [1, 0], [1, 2], [127, 127], [-128, -128],
                      [-128, 127], [5, -6]], dtype=np.int8)
    x = pairs.reshape(1, pairs.shape[0], 2, 1)
    params = dict(batches=1, in_h=pairs.shape[0], in_w=2, channels=1, out_h=pairs.shape[0],
                  out_w=1, k_h=1, k_w=2, stride_h=1, stride_w=2, pad_top=0, pad_left=0,
                  act_min=-128, act_max=127)
    got = lib.run("avg_pool_s8", params, (1, pairs.shape[0], 1, 1), input=x).ravel()
    np.testing.assert_array_equal(got, [-2, -1, 0, 1, 2, 127, -128, -1, -1])


@pytest.mark.parametrize("case", POOL_CASES, ids=lambda c: c["id"])
@pytest.mark.parametrize("op", ["avg", "max"])
def test_pool_f32(lib, case, op):
    params, x = pool_case(case, seed(case["id"]), np.float32)
    shape = (params["batches"], params["out_h"], params["out_w"], params["channels"])
    got = lib.run(f"{op}_pool_f32", params, shape, input=x)
    want = getattr(ref, f"{op}_pool_f32_ref")(x, **ref_kwargs(params, POOL_REF_KEYS))
    np.testing.assert_allclose(got, want, rtol=F_RTOL, atol=F_ATOL)


@needs_tflm
@pytest.mark.parametrize("op", ["AVERAGE_POOL_2D", "MAX_POOL_2D"])
@pytest.mark.parametrize("H,W,K,S,padding,act", [(8, 8, (3, 3), (2, 2), "SAME", "NONE"),
                                                 (7, 6, (2, 3), (2, 1), "SAME", "RELU6"),
                                                 (6, 6, (2, 2), (2, 2), "VALID", "RELU"),
                                                 (5, 7, (4, 4), (1, 1), "SAME", "NONE")])
def test_pool_matches_tflite_micro(lib, op, H, W, K, S, padding, act):
    rng = np.random.default_rng(H * 10 + W)
    N, C, scale, zp = 2, 3, f32(0.03), -9
    x = rng.integers(-128, 128, size=(N, H, W, C)).astype(np.int8)
    same = padding == "SAME"
    out_h, pad_top = geometry(H, K[0], S[0], 1, padding.lower())
    out_w, pad_left = geometry(W, K[1], S[1], 1, padding.lower())
    opts = tfl.Pool2DOptionsT(padding=tfl.Padding.SAME if same else tfl.Padding.VALID,
                              strideW=S[1], strideH=S[0], filterWidth=K[1], filterHeight=K[0],
                              fusedActivationFunction=ACT[act])
    out_shape = (N, out_h, out_w, C)
    want = tflm_run(getattr(tfl.BuiltinOperator, op),
                    [((N, H, W, C), tfl.TensorType.INT8, ([scale], [zp]), False)], out_shape,
                    ([scale], [zp]), tfl.BuiltinOptions.Pool2DOptions, opts, [x])
    act_min, act_max = tflm_act_range(act, scale, zp)
    params = dict(batches=N, in_h=H, in_w=W, channels=C, out_h=out_h, out_w=out_w, k_h=K[0],
                  k_w=K[1], stride_h=S[0], stride_w=S[1], pad_top=pad_top, pad_left=pad_left,
                  act_min=act_min, act_max=act_max)
    kernel = "avg_pool_s8" if op == "AVERAGE_POOL_2D" else "max_pool_s8"
    got = lib.run(kernel, params, out_shape, input=x)
    np.testing.assert_array_equal(got, want)


def test_every_kernel_is_covered():
    """Every kernel of the family is called directly (the family has reference kernels only: a
    new variant needs cases that run it here)."""
    harness.assert_covered(FAMILY, harness.wrapped_kernels(FAMILY))
