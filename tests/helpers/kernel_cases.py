"""Kernel test cases: from a case dict (an entry of a test module's ``*_CASES`` list) to the
kernel's parameter struct values and its input arrays, drawn from a seed derived from the case
id. The same builders serve the direct (ctypes) tests of the reference kernels and the one-step
programs of kernel_programs.py, so every variant sees the same data."""
from __future__ import annotations

import math

import numpy as np

import kernel_ref as ref
from kernel_harness import seed

F_ATOL, F_RTOL = 1e-5, 1e-5   # float32 kernels against float64 NumPy

CONV_REF_KEYS = ["stride_h", "stride_w", "dil_h", "dil_w", "pad_top", "pad_left", "out_h",
                 "out_w", "input_offset", "output_offset", "act_min", "act_max"]
F_CONV_REF_KEYS = ["stride_h", "stride_w", "dil_h", "dil_w", "pad_top", "pad_left", "out_h",
                   "out_w", "act_min", "act_max"]
FC_REF_KEYS = ["input_offset", "filter_offset", "output_offset", "act_min", "act_max"]
POOL_REF_KEYS = ["k_h", "k_w", "stride_h", "stride_w", "pad_top", "pad_left", "out_h", "out_w",
                 "act_min", "act_max"]


def ref_kwargs(params, keys):
    return {k: params[k] for k in keys}


def geometry(in_size, k, stride, dil, padding):
    """-> (out, pad_before). padding: 'valid' | 'same' | (before, after)."""
    eff = (k - 1) * dil + 1
    if padding == "valid":
        return ref.valid_out(in_size, k, stride, dil), 0
    if padding == "same":
        out, before, _ = ref.same_padding(in_size, k, stride, dil)
        return out, before
    before, after = padding
    return (in_size + before + after - eff) // stride + 1, before


def requant_params(rng, oc, acc_scale, mode):
    """Per-channel (mult, shift).  'natural' puts typical outputs near the int8
    range (some saturate), 'saturate' pushes most past it, a list gives the
    shifts explicitly."""
    mult = rng.integers(2**30, 2**31, size=oc, endpoint=False).astype(np.int32)
    if isinstance(mode, (list, tuple)):
        shift = np.resize(np.array(mode), oc)
    else:
        natural = math.floor(math.log2(96.0 / max(acc_scale, 1.0)))
        extra = 3 if mode == "saturate" else 0
        shift = natural + extra + rng.integers(-1, 2, size=oc)
    return mult, np.clip(shift, -31, 30).astype(np.int32)


def check_saturation(out, mode, act_min=-128, act_max=127):
    """A 'saturate' case saturates most outputs, a 'natural' one not nearly all."""
    frac = np.mean((out == act_min) | (out == act_max))
    if mode == "saturate":
        assert frac > 0.3, frac
    elif mode == "natural":
        assert frac < 0.9, frac


# ----------------------------------------------------------------------------- conv2d, depthwise


def conv_case(c, depthwise=False, seed=0):
    """(params, input, filter, bias, mult, shift, mode) of an int8 conv / depthwise case; the
    filter is OHWI ([KH][KW][OC] for depthwise)."""
    rng = np.random.default_rng(seed)
    N, H, W = c.get("N", 1), c.get("H", 6), c.get("W", 7)
    C = c.get("C", 3)
    KH, KW = c.get("KH", 3), c.get("KW", 3)
    sh, sw, dh, dw = c.get("sh", 1), c.get("sw", 1), c.get("dh", 1), c.get("dw", 1)
    padding = c.get("padding", "valid")
    out_h, pad_top = geometry(H, KH, sh, dh, c.get("pad_h", padding))
    out_w, pad_left = geometry(W, KW, sw, dw, c.get("pad_w", padding))
    dm = c.get("dm", 1)
    OC = C * dm if depthwise else c.get("OC", 4)
    input_offset = c.get("input_offset", int(rng.integers(-20, 21)))
    zp = -input_offset
    if c.get("small"):
        x = np.clip(zp + rng.integers(-3, 4, size=(N, H, W, C)), -128, 127).astype(np.int8)
        fshape = (KH, KW, OC) if depthwise else (OC, KH, KW, C)
        f = rng.integers(-2, 3, size=fshape).astype(np.int8)
        acc_scale = 10.0
    else:
        x = rng.integers(-128, 128, size=(N, H, W, C)).astype(np.int8)
        fshape = (KH, KW, OC) if depthwise else (OC, KH, KW, C)
        f = rng.integers(-127, 128, size=fshape).astype(np.int8)
        taps = KH * KW * (1 if depthwise else C)
        acc_scale = 2.0 * math.sqrt(taps) * 80.0 * 73.0
    bias = (rng.integers(-int(acc_scale), int(acc_scale) + 1, size=OC).astype(np.int32)
            if c.get("bias", True) else None)
    mode = c.get("mode", "natural")
    mult, shift = requant_params(rng, OC, acc_scale, mode)
    if c.get("huge_bias"):          # every other channel: |bias| ~ 2^30, requantized back into range
        bias = np.zeros(OC, np.int32) if bias is None else bias      # ("huge_pairs": every other pair)
        big = (np.arange(OC) // (2 if c.get("huge_pairs") else 1)) % 2 == 0
        bias[big] = np.where(rng.random(big.sum()) < 0.5, -1, 1) * (2**30 + rng.integers(0, 2**26, big.sum()))
        shift = np.where(big, -24, shift).astype(np.int32)
        if c.get("dead"):           # pruned channels: all-zero weights, the output a constant
            if depthwise:
                f[..., big] = 0
            else:
                f[big] = 0
    act_min, act_max = c.get("act", (-128, 127))
    params = dict(batches=N, in_h=H, in_w=W, in_c=C, out_h=out_h, out_w=out_w, out_c=OC,
                  k_h=KH, k_w=KW, stride_h=sh, stride_w=sw, dil_h=dh, dil_w=dw,
                  pad_top=pad_top, pad_left=pad_left, input_offset=input_offset,
                  output_offset=c.get("output_offset", int(rng.integers(-10, 11))),
                  act_min=act_min, act_max=act_max)
    if depthwise:
        params["depth_multiplier"] = dm
    return params, x, f, bias, mult, shift, mode


# float32 conv cases, shared by conv2d_f32 and depthwise_conv2d_f32 (those without an explicit OC,
# each with depth multipliers 1, 2 and 3)
F_CONV_CASES = [
    dict(id="3x3_valid"),
    dict(id="same_stride2_even", H=8, W=8, sh=2, sw=2, padding="same"),
    dict(id="k4_same_asymmetric", H=5, W=7, KH=4, KW=4, padding="same"),
    dict(id="explicit_pad", pad_h=(2, 1), pad_w=(0, 2), sh=2),
    dict(id="dilation2", H=9, W=8, dh=2, dw=2, padding="same"),
    dict(id="1x1", KH=1, KW=1, C=8, OC=5),
    dict(id="nonsquare_3x1", KH=3, KW=1, sh=2, padding="same", H=8, W=5),
    dict(id="batch2_bias_null", N=2, bias=False, padding="same"),
    dict(id="relu6", act=(0.0, 6.0), padding="same"),
]


def f32_conv_case(c, depthwise, seed):
    """(params, input, filter, bias) of a float32 conv / depthwise case."""
    rng = np.random.default_rng(seed)
    N, H, W, C = c.get("N", 1), c.get("H", 6), c.get("W", 7), c.get("C", 3)
    KH, KW = c.get("KH", 3), c.get("KW", 3)
    sh, sw, dh, dw = c.get("sh", 1), c.get("sw", 1), c.get("dh", 1), c.get("dw", 1)
    padding = c.get("padding", "valid")
    out_h, pad_top = geometry(H, KH, sh, dh, c.get("pad_h", padding))
    out_w, pad_left = geometry(W, KW, sw, dw, c.get("pad_w", padding))
    dm = c.get("dm", 1)
    OC = C * dm if depthwise else c.get("OC", 4)
    x = rng.uniform(-1, 1, size=(N, H, W, C)).astype(np.float32)
    f = rng.uniform(-1, 1, size=(KH, KW, OC) if depthwise else (OC, KH, KW, C)).astype(np.float32)
    bias = rng.uniform(-1, 1, size=OC).astype(np.float32) if c.get("bias", True) else None
    act_min, act_max = c.get("act", (-3.4e38, 3.4e38))
    params = dict(batches=N, in_h=H, in_w=W, in_c=C, out_h=out_h, out_w=out_w, out_c=OC, k_h=KH,
                  k_w=KW, stride_h=sh, stride_w=sw, dil_h=dh, dil_w=dw, pad_top=pad_top,
                  pad_left=pad_left, act_min=act_min, act_max=act_max)
    if depthwise:
        params["depth_multiplier"] = dm
    return params, x, f, bias


# ----------------------------------------------------------------------------- fully connected


def fc_case(case):
    """(params, input, weights [O][I], bias, mult, shift) of an int8 fully connected case."""
    rng = np.random.default_rng(seed(case["id"]))
    B, I, O = case["B"], case["I"], case["O"]
    input_offset = case.get("input_offset", int(rng.integers(-30, 31)))
    filter_offset = case.get("filter_offset", 0)
    if case.get("small"):
        x = np.clip(-input_offset + rng.integers(-3, 4, size=(B, I)), -128, 127).astype(np.int8)
        w = rng.integers(-2, 3, size=(O, I)).astype(np.int8)
        acc_scale = 10.0
    else:
        x = rng.integers(-128, 128, size=(B, I)).astype(np.int8)
        w = rng.integers(-127, 128, size=(O, I)).astype(np.int8)
        acc_scale = 2.0 * math.sqrt(I) * 80.0 * 73.0
    bias = rng.integers(-20000, 20001, size=O).astype(np.int32) if case.get("bias", True) else None
    mode = case.get("mode", "natural")
    mult, shift = requant_params(rng, O, acc_scale, mode)
    if case.get("per_tensor"):
        mult[:], shift[:] = mult[0], shift[0]
    act_min, act_max = case.get("act", (-128, 127))
    params = dict(batches=B, in_features=I, out_features=O, input_offset=input_offset,
                  filter_offset=filter_offset,
                  output_offset=case.get("output_offset", int(rng.integers(-10, 11))),
                  act_min=act_min, act_max=act_max)
    return params, x, w, bias, mult, shift


# ----------------------------------------------------------------------------- add


def tflite_add_params(s1, z1, s2, z2, so, zo):
    """TFLite PrepareGeneralSubOp/Add quantization (left_shift 20 for int8)."""
    left_shift = 20
    twice_max_input_scale = 2.0 * max(s1, s2)
    m1, sh1 = ref.quantize_multiplier(s1 / twice_max_input_scale)
    m2, sh2 = ref.quantize_multiplier(s2 / twice_max_input_scale)
    mo, sho = ref.quantize_multiplier(twice_max_input_scale / ((1 << left_shift) * so))
    return dict(left_shift=left_shift, input1_offset=-z1, input1_multiplier=m1, input1_shift=sh1,
                input2_offset=-z2, input2_multiplier=m2, input2_shift=sh2, output_offset=zo,
                output_multiplier=mo, output_shift=sho)


def add_case(case, size=777):
    """(params, input1, input2) of an int8 add case."""
    rng = np.random.default_rng(seed(case["id"]))
    x1 = rng.integers(-128, 128, size=size).astype(np.int8)
    x2 = rng.integers(-128, 128, size=size).astype(np.int8)
    if case.get("random"):
        p = dict(left_shift=int(rng.integers(0, 21)),
                 input1_offset=int(rng.integers(-127, 129)),
                 input1_multiplier=int(rng.integers(2**30, 2**31)), input1_shift=-3,
                 input2_offset=int(rng.integers(-127, 129)),
                 input2_multiplier=int(rng.integers(2**30, 2**31)), input2_shift=-1,
                 output_offset=int(rng.integers(-128, 128)),
                 output_multiplier=int(rng.integers(2**30, 2**31)), output_shift=0)
        p["output_shift"] = 2 - p["left_shift"]  # positive for small left_shift
        p.update(case.get("set", {}))
    else:
        p = tflite_add_params(*case["q"])
    p["size"] = size
    p["act_min"], p["act_max"] = case.get("act", (-128, 127))
    return p, x1, x2


# ----------------------------------------------------------------------------- pooling


def pool_case(case, seed, dtype):
    """(params, input) of a pooling case, int8 or float32."""
    rng = np.random.default_rng(seed)
    N, H, W, C = case.get("N", 1), case["H"], case["W"], case.get("C", 5)
    (KH, KW), (SH, SW) = case["K"], case["S"]
    padding = case.get("padding", "valid")
    out_h, pad_top = geometry(H, KH, SH, 1, padding)
    out_w, pad_left = geometry(W, KW, SW, 1, padding)
    if dtype == np.int8:
        x = rng.integers(-128, 128, size=(N, H, W, C)).astype(np.int8)
        act = case.get("act", (-128, 127))
    else:
        x = rng.standard_normal((N, H, W, C)).astype(np.float32)
        act = case.get("act", (-3.4e38, 3.4e38))
        act = (act[0] / 30.0, act[1] / 30.0) if "act" in case else act
    params = dict(batches=N, in_h=H, in_w=W, channels=C, out_h=out_h, out_w=out_w, k_h=KH,
                  k_w=KW, stride_h=SH, stride_w=SW, pad_top=pad_top, pad_left=pad_left,
                  act_min=act[0], act_max=act[1])
    return params, x
