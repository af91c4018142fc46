"""Quantization at a model's edges, bilinear resizing and ARG_MAX (targets/cortex_m/kernels/
data_movement.py): quantize_f32_s8, dequantize_s8_f32, resize_bilinear_s8, resize_bilinear_f32,
argmax_s8, argmax_f32 as one-step programs through the Cortex-M target, on the host and on an
emulated Cortex-M4, against NumPy references written from TFLite's reference kernels
(AffineQuantize, Dequantize, ResizeBilinearInteger / ResizeBilinear, ArgMinMax)."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

import adaptc.api as api
import kernel_harness as harness
from adaptc import resize
from adaptc.program import Program, Step, Tensor

EMULATOR = shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc")
FAMILY = "data_movement"


def program(op, attrs, consts, in_shape, out_shape, in_dtype, out_dtype) -> Program:
    x = Tensor(0, "x", tuple(in_shape), in_dtype, "input")
    y = Tensor(1, "y", tuple(out_shape), out_dtype, "output")
    step = Step(0, op, "test case", [0], 1, attrs, consts, in_shapes=[tuple(in_shape)], out_shape=tuple(out_shape))
    return Program("case", [x, y], [step], [0], [1])


def quantize_ref(x, scale, zp, lo=-128, hi=127):
    """AffineQuantize: zp + round(x / scale) (float32 quotient, std::round), clamped."""
    q = np.asarray(x, np.float32) / np.float32(scale)
    r = np.sign(q.astype(np.float64)) * np.floor(np.abs(q.astype(np.float64)) + 0.5)
    return np.clip(np.clip(r, -512, 512) + zp, lo, hi).astype(np.int8)


def resize_s8_ref(x, oh, ow, align, half):
    """ResizeBilinearInteger, written as the reference loops (int64 products, C division)."""
    n, ih, iw, c = x.shape
    out = np.zeros((n, oh, ow, c), np.int8)

    def values(v, in_size, out_size):
        s = ((1 << 10) * in_size + out_size // 2) // out_size
        if align and out_size > 1:
            s = ((1 << 10) * (in_size - 1) + (out_size - 1) // 2) // (out_size - 1)
        p = v * s + s // 2 - (1 << 9) if half else v * s
        lo = max(int(p / 1024), 0)                       # C division of a possibly negative value
        hi = min(int((p + 1023) / 1024), in_size - 1)
        return p, lo, hi

    for y in range(oh):
        py, y0, y1 = values(y, ih, oh)
        for xx in range(ow):
            px, x0, x1 = values(xx, iw, ow)
            a = x[:, y0, x0].astype(np.int64) * (1024 - (py - 1024 * y0)) * (1024 - (px - 1024 * x0))
            b = x[:, y1, x0].astype(np.int64) * (py - 1024 * y0) * (1024 - (px - 1024 * x0))
            cc = x[:, y0, x1].astype(np.int64) * (1024 - (py - 1024 * y0)) * (px - 1024 * x0)
            d = x[:, y1, x1].astype(np.int64) * (py - 1024 * y0) * (px - 1024 * x0)
            t = a + b + cc + d
            r = np.where(t > 0, t + (1 << 19), t - (1 << 19))
            out[:, y, xx] = (np.sign(r) * (np.abs(r) // (1 << 20))).astype(np.int8)
    return out


RESIZES = [((1, 4, 6, 3), (7, 9), False, False), ((2, 5, 3, 2), (8, 7), False, True),
           ((1, 5, 3, 4), (9, 4), True, False), ((1, 8, 8, 2), (4, 3), False, True)]


def resize_case(shape, size, align, half, integer):
    table = resize.tflite_integer if integer else resize.tflite_float
    consts = dict(zip(("y_lo", "y_hi", "y_frac", "x_lo", "x_hi", "x_frac"),
                      (*table(shape[1], size[0], align, half), *table(shape[2], size[1], align, half))))
    out = (shape[0], *size, shape[3])
    dtype = "int8" if integer else "float32"
    return program("adaptc.qresize_bilinear" if integer else "adaptc.resize_bilinear_f32",
                   {"out_h": size[0], "out_w": size[1]}, consts, shape, out, dtype, dtype)


@pytest.mark.parametrize("case", RESIZES, ids=lambda c: f"{c[0]}->{c[1]}{'_ac' * c[2]}{'_hp' * c[3]}")
def test_resize_bilinear_s8_host(case):
    shape, size, align, half = case
    m = api.compile_program(resize_case(shape, size, align, half, True), "cortex-m4")
    assert [s.kernel for s in m.scheduled.steps] == ["resize_bilinear_s8"]
    x = np.random.default_rng(1).integers(-128, 128, shape).astype(np.int8)
    np.testing.assert_array_equal(m.run(x), resize_s8_ref(x, *size, align, half))


@pytest.mark.parametrize("case", RESIZES, ids=lambda c: f"{c[0]}->{c[1]}{'_ac' * c[2]}{'_hp' * c[3]}")
def test_resize_bilinear_f32_host(case):
    """ResizeBilinear float: against TFLite's loops in float32 (same tables, same order)."""
    shape, size, align, half = case
    m = api.compile_program(resize_case(shape, size, align, half, False), "cortex-m4", format="float32")
    assert [s.kernel for s in m.scheduled.steps] == ["resize_bilinear_f32"]
    x = np.random.default_rng(2).normal(0, 3, shape).astype(np.float32)
    ylo, yhi, fy = resize.tflite_float(shape[1], size[0], align, half)
    xlo, xhi, fx = resize.tflite_float(shape[2], size[1], align, half)
    fy, fx = fy[None, :, None, None], fx[None, None, :, None]
    one = np.float32(1)
    want = (x[:, ylo][:, :, xlo] * (one - fy) * (one - fx) + x[:, yhi][:, :, xlo] * fy * (one - fx)
            + x[:, ylo][:, :, xhi] * (one - fy) * fx + x[:, yhi][:, :, xhi] * fy * fx)
    np.testing.assert_allclose(m.run(x), want, rtol=1e-6, atol=1e-6)


def test_quantize_and_dequantize_host():
    rng = np.random.default_rng(3)
    x = rng.normal(0, 4, (1, 6, 5, 3)).astype(np.float32)
    x.flat[:6] = [0.025, -0.025, 0.075, 1e9, -1e9, 0.0]          # ties away from zero, saturation
    q = api.compile_program(program("adaptc.quantize", {"output_scale": 0.05, "output_zp": -3, "act_min": -128,
                                                        "act_max": 127}, {}, x.shape, x.shape, "float32", "int8"),
                            "cortex-m4", format="float32")
    assert [s.kernel for s in q.scheduled.steps] == ["quantize_f32_s8"]
    np.testing.assert_array_equal(q.run(x), quantize_ref(x, 0.05, -3))
    xi = rng.integers(-128, 128, (2, 7)).astype(np.int8)
    d = api.compile_program(program("adaptc.dequantize", {"input_scale": 0.037, "input_zp": 5}, {}, xi.shape,
                                    xi.shape, "int8", "float32"), "cortex-m4")
    assert [s.kernel for s in d.scheduled.steps] == ["dequantize_s8_f32"]
    want = (np.float64(np.float32(0.037)) * (xi.astype(np.int64) - 5)).astype(np.float32)
    np.testing.assert_array_equal(d.run(xi), want)


@pytest.mark.parametrize("dtype", ["int8", "float32"])
@pytest.mark.parametrize("shape,axis", [((1, 10), 1), ((2, 3, 4, 5), 1), ((1, 4, 6, 3), 3)])
def test_argmax_host(dtype, shape, axis):
    """ArgMinMax with std::greater: the first of equal maxima (ties made on purpose)."""
    rng = np.random.default_rng(4)
    x = (rng.integers(-3, 3, shape).astype(np.int8) if dtype == "int8"
         else rng.integers(-3, 3, shape).astype(np.float32))
    out = tuple(d for i, d in enumerate(shape) if i != axis)
    op = "adaptc.qargmax" if dtype == "int8" else "adaptc.argmax_f32"
    m = api.compile_program(program(op, {"axis": axis}, {}, shape, out, dtype, "int32"), "cortex-m4",
                            **({} if dtype == "int8" else {"format": "float32"}))
    assert [s.kernel for s in m.scheduled.steps] == ["argmax_s8" if dtype == "int8" else "argmax_f32"]
    got = m.run(x)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, np.argmax(x, axis=axis).astype(np.int32))


@pytest.mark.skipif(not EMULATOR, reason="needs qemu-system-arm and gcc-arm-none-eabi")
def test_resize_and_argmax_emulated_m4():
    """The integer resize and the float argmax on an emulated Cortex-M4 equal the references."""
    shape, size, align, half = RESIZES[1]
    m = api.compile_program(resize_case(shape, size, align, half, True), "cortex-m4")
    x = np.random.default_rng(5).integers(-128, 128, shape).astype(np.int8)
    np.testing.assert_array_equal(m.run_on_target(x).outputs.reshape(m.run(x).shape),
                                  resize_s8_ref(x, *size, align, half))


def test_every_kernel_is_covered():
    harness.assert_covered(FAMILY, {"quantize_f32_s8", "dequantize_s8_f32", "resize_bilinear_s8",
                                    "resize_bilinear_f32", "argmax_s8", "argmax_f32"})
