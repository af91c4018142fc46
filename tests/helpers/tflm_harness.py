"""Cross-checks against TensorFlow Lite Micro itself (when the tflite_micro package is installed;
the tests skip otherwise): single-op int8 models built in memory, run by the TFLM interpreter,
and the same op run by the C kernel with parameters derived from the scales the way TFLM derives
them."""
from __future__ import annotations

import numpy as np
import pytest

import kernel_ref as ref
from kernel_cases import geometry
from kernel_harness import seed

try:
    from tflite_micro.python.tflite_micro import runtime as _tflm_runtime
    from tflite_micro.tensorflow.lite.micro.compression import model_editor as _me
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as tfl
except Exception:  # noqa: BLE001 - optional dependency: any failure to import it skips its tests
    _tflm_runtime = _me = tfl = None

needs_tflm = pytest.mark.skipif(_tflm_runtime is None, reason="tflite_micro is not installed")

ACT = {"NONE": 0, "RELU": 1, "RELU6": 3}   # TFLite ActivationFunctionType


def f32(v):
    return float(np.float32(v))


def tflm_run(opcode, inputs, out_shape, out_q, options_type, options, feed):
    """Run a one-op int8 model. inputs: list of (array_or_shape, dtype, (scales, zero_points,
    axis) | None, is_constant) or None (absent optional input)."""
    model = _me.Model()
    sg = model.add_subgraph()
    ins, graph_inputs = [], []
    for spec in inputs:
        if spec is None:
            ins.append(None)
            continue
        arr, dtype, q, const = spec
        quant = _me.Quantization(*q) if q is not None else None
        if const:
            t = sg.add_tensor(shape=arr.shape, dtype=dtype, quantization=quant, data=arr)
        else:
            t = sg.add_tensor(shape=arr, dtype=dtype, quantization=quant)
            graph_inputs.append(t)
        ins.append(t)
    y = sg.add_tensor(shape=out_shape, dtype=tfl.TensorType.INT8,
                      quantization=_me.Quantization(*out_q))
    op = sg.add_operator(opcode=opcode, inputs=ins, outputs=[y])
    if options_type is not None:
        op._fb.builtinOptionsType = options_type
        op._fb.builtinOptions = options
    sg.inputs, sg.outputs = graph_inputs, [y]
    interp = _tflm_runtime.Interpreter.from_bytes(bytes(model.build()))
    for i, a in enumerate(feed):
        interp.set_input(a, i)
    interp.invoke()
    return np.asarray(interp.get_output(0))


def tflm_act_range(act, scale, zero_point):
    """TFLite CalculateActivationRangeQuantized for int8."""
    def quantize(f):
        return zero_point + ref._round_half_away(float(np.float32(f) / np.float32(scale)))
    if act == "RELU":
        return max(-128, quantize(0.0)), 127
    if act == "RELU6":
        return max(-128, quantize(0.0)), min(127, quantize(6.0))
    return -128, 127


def check_conv_matches_tflite_micro(lib, case):
    """CONV_2D (or DEPTHWISE_CONV_2D where ``case["dw"]``) through TFLM and through
    conv2d_s8 / depthwise_conv2d_s8: the same int8 output, bit for bit."""
    rng = np.random.default_rng(seed(case["id"]))
    dw = case.get("dw", False)
    N, H, W, C = case.get("N", 1), case["H"], case["W"], case["C"]
    (KH, KW), (SH, SW), (DH, DW) = case["K"], case.get("S", (1, 1)), case.get("D", (1, 1))
    dm = case.get("dm", 1)
    OC = C * dm if dw else case["OC"]
    zp_in, zp_out = case["zp"]
    s_in = f32(0.02)
    f_scales = [f32(v) for v in rng.uniform(0.003, 0.02, size=OC)]
    x = rng.integers(-128, 128, size=(N, H, W, C)).astype(np.int8)
    fshape = (1, KH, KW, OC) if dw else (OC, KH, KW, C)
    f = rng.integers(-127, 128, size=fshape).astype(np.int8)
    bias = (rng.integers(-3000, 3001, size=OC).astype(np.int32) if case.get("bias", True)
            else None)
    same = case["padding"] == "SAME"
    out_h, pad_top = geometry(H, KH, SH, DH, "same" if same else "valid")
    out_w, pad_left = geometry(W, KW, SW, DW, "same" if same else "valid")
    # output scale from the float result's range so that a few outputs saturate
    xf = (x.astype(np.float64) - zp_in) * s_in
    ff = f.astype(np.float64) * (np.array(f_scales) if dw else np.array(f_scales)[:, None, None, None])
    kw = dict(stride_h=SH, stride_w=SW, dil_h=DH, dil_w=DW, pad_top=pad_top, pad_left=pad_left,
              out_h=out_h, out_w=out_w, act_min=-np.inf, act_max=np.inf)
    real = (ref.depthwise_conv2d_f32_ref(xf, ff[0], None, depth_multiplier=dm, **kw) if dw
            else ref.conv2d_f32_ref(xf, ff, None, **kw))
    s_out = f32(np.max(np.abs(real)) / 110.0 / case.get("out_scale_div", 1.0))

    int8, int32 = tfl.TensorType.INT8, tfl.TensorType.INT32
    bias_q = ([s_in * s for s in f_scales], [0] * OC, 0)
    inputs = [((N, H, W, C), int8, ([s_in], [zp_in]), False),
              (f, int8, (f_scales, [0] * OC, 3 if dw else 0), True),
              (bias, int32, bias_q, True) if bias is not None else None]
    if dw:
        opts = tfl.DepthwiseConv2DOptionsT(
            padding=tfl.Padding.SAME if same else tfl.Padding.VALID, strideW=SW, strideH=SH,
            depthMultiplier=dm, fusedActivationFunction=ACT[case["act"]], dilationWFactor=DW,
            dilationHFactor=DH)
        opcode, otype = tfl.BuiltinOperator.DEPTHWISE_CONV_2D, tfl.BuiltinOptions.DepthwiseConv2DOptions
    else:
        opts = tfl.Conv2DOptionsT(padding=tfl.Padding.SAME if same else tfl.Padding.VALID,
                                  strideW=SW, strideH=SH,
                                  fusedActivationFunction=ACT[case["act"]],
                                  dilationWFactor=DW, dilationHFactor=DH)
        opcode, otype = tfl.BuiltinOperator.CONV_2D, tfl.BuiltinOptions.Conv2DOptions
    out_shape = (N, out_h, out_w, OC)
    want = tflm_run(opcode, inputs, out_shape, ([s_out], [zp_out]), otype, opts, [x])

    # TFLM PopulateConvolutionQuantizationParams: double(in) * double(filter) / double(out)
    qm = [ref.quantize_multiplier(s_in * fs / s_out) for fs in f_scales]
    mult = np.array([m for m, _ in qm], dtype=np.int32)
    shift = np.array([s for _, s in qm], dtype=np.int32)
    act_min, act_max = tflm_act_range(case["act"], s_out, zp_out)
    params = dict(batches=N, in_h=H, in_w=W, in_c=C, out_h=out_h, out_w=out_w, out_c=OC,
                  k_h=KH, k_w=KW, stride_h=SH, stride_w=SW, dil_h=DH, dil_w=DW,
                  pad_top=pad_top, pad_left=pad_left, input_offset=-zp_in,
                  output_offset=zp_out, act_min=act_min, act_max=act_max)
    if dw:
        params["depth_multiplier"] = dm
        got = lib.run("depthwise_conv2d_s8", params, out_shape, input=x,
                      filter=np.ascontiguousarray(f[0]), bias=bias, out_mult=mult,
                      out_shift=shift)
    else:
        got = lib.run("conv2d_s8", params, out_shape, input=x, filter=f, bias=bias,
                      out_mult=mult, out_shift=shift)
    np.testing.assert_array_equal(got, want)
    assert len(np.unique(want)) > 10  # a non-degenerate comparison
