"""Data movement and quantization operators, model level (issue 16): TFLite TRANSPOSE, PACK,
UNPACK, DEPTH_TO_SPACE, SPACE_TO_DEPTH, PADV2, MIRROR_PAD, QUANTIZE, DEQUANTIZE, RESIZE_BILINEAR,
ARG_MAX -- int8 bit-exact with TFLite Micro (the C on the host, and the Relax composites on
llvm), float within 1e-5 -- and the refused cases, naming the operator and the limit.

A float-input model whose first operator is QUANTIZE (what a converter writes for int8 internals
with float I/O) compiles to a C entry point that takes the float input and quantizes it as
TFLite does; a last DEQUANTIZE makes the output float. The steps each operator becomes are
asserted: the byte-moving ones reuse the transpose, slice, gather, concat and pad kernels."""
from __future__ import annotations

import shutil
import zlib
from pathlib import Path

import numpy as np
import pytest

import adaptc
import tflite_ops as T
from adaptc.errors import UnsupportedOperatorError

EMULATOR = shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc")
Q = (0.05, 3)
I8, F32 = np.int8, np.float32


def _save(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


# (id, input shape, input dtype, input quantization, ops, the kernels it runs)
CASES = [
    ("transpose_s8", (1, 4, 6, 3), I8, Q, [("TRANSPOSE", I8, Q, {"perm": [0, 3, 1, 2]})], ["transpose_s8"]),
    ("transpose_5d_s8", (2, 3, 2, 4, 3), I8, Q, [("TRANSPOSE", I8, Q, {"perm": [0, 3, 4, 1, 2]})], ["transpose_s8"]),
    ("transpose_f32", (2, 4, 6, 3), F32, None, [("TRANSPOSE", F32, None, {"perm": [2, 0, 3, 1]})], ["transpose_f32"]),
    ("unpack_pack_s8", (1, 3, 6), I8, Q, [("UNPACK", I8, Q, {"axis": 1, "num": 3}),
                                          ("PACK", I8, Q, {"axis": 2, "count": 3})], ["slice"] * 3 + ["concat"]),
    ("unpack_pack_f32", (2, 4, 3), F32, None, [("UNPACK", F32, None, {"axis": 0, "num": 2}),
                                               ("PACK", F32, None, {"axis": 1, "count": 2})],
     ["slice"] * 2 + ["concat"]),
    ("depth_to_space_s8", (1, 4, 6, 8), I8, Q, [("DEPTH_TO_SPACE", I8, Q, {"block": 2})], ["transpose_s8"]),
    ("space_to_depth_s8", (1, 4, 6, 8), I8, Q, [("SPACE_TO_DEPTH", I8, Q, {"block": 2})], ["transpose_s8"]),
    ("depth_to_space_f32", (1, 3, 2, 18), F32, None, [("DEPTH_TO_SPACE", F32, None, {"block": 3})], ["transpose_f32"]),
    ("padv2_s8", (1, 4, 6, 3), I8, Q, [("PADV2", I8, Q, {"paddings": [0, 0, 1, 1, 2, 0, 0, 0], "value": -7})],
     ["pad_s8"]),
    ("padv2_f32", (1, 4, 6, 3), F32, None, [("PADV2", F32, None, {"paddings": [0, 0, 1, 1, 2, 0, 0, 0],
                                                                  "value": 1.5})], ["pad_f32"]),
    ("mirror_reflect_s8", (1, 4, 6, 3), I8, Q, [("MIRROR_PAD", I8, Q, {"paddings": [0, 0, 1, 2, 3, 0, 0, 0],
                                                                       "mode": "REFLECT"})], ["gather"] * 2),
    ("mirror_symmetric_f32", (1, 4, 6, 3), F32, None, [("MIRROR_PAD", F32, None, {
        "paddings": [0, 0, 2, 1, 0, 3, 0, 0], "mode": "SYMMETRIC"})], ["gather"] * 2),
    ("requantize_s8", (1, 4, 6, 3), I8, Q, [("QUANTIZE", I8, (0.03, -1), {})], ["lut_s8_dsp"]),
    ("quantize_input", (1, 4, 6, 3), F32, None, [("QUANTIZE", I8, Q, {})], ["quantize_f32_s8"]),
    ("dequantize_output", (1, 4, 6, 3), I8, Q, [("DEQUANTIZE", F32, None, {})], ["dequantize_s8_f32"]),
    ("float_io_int8_inside", (1, 4, 6, 3), F32, None, [
        ("QUANTIZE", I8, Q, {}), ("RESIZE_BILINEAR", I8, Q, {"size": [5, 9], "half_pixel_centers": True}),
        ("TRANSPOSE", I8, Q, {"perm": [0, 2, 1, 3]}), ("DEQUANTIZE", F32, None, {})],
     ["quantize_f32_s8", "resize_bilinear_s8", "transpose_s8", "dequantize_s8_f32"]),
    ("resize_s8", (1, 4, 6, 3), I8, Q, [("RESIZE_BILINEAR", I8, Q, {"size": [7, 9]})], ["resize_bilinear_s8"]),
    ("resize_half_pixel_s8", (2, 5, 3, 2), I8, Q, [("RESIZE_BILINEAR", I8, Q, {
        "size": [8, 7], "half_pixel_centers": True})], ["resize_bilinear_s8"]),
    ("resize_align_corners_s8", (1, 5, 3, 2), I8, Q, [("RESIZE_BILINEAR", I8, Q, {
        "size": [9, 4], "align_corners": True})], ["resize_bilinear_s8"]),
    ("resize_down_s8", (1, 9, 8, 4), I8, Q, [("RESIZE_BILINEAR", I8, Q, {"size": [4, 3]})], ["resize_bilinear_s8"]),
    ("resize_half_pixel_f32", (1, 5, 3, 2), F32, None, [("RESIZE_BILINEAR", F32, None, {
        "size": [8, 7], "half_pixel_centers": True})], ["resize_bilinear_f32"]),
    ("resize_align_corners_f32", (1, 5, 3, 2), F32, None, [("RESIZE_BILINEAR", F32, None, {
        "size": [9, 4], "align_corners": True})], ["resize_bilinear_f32"]),
    ("argmax_s8", (1, 4, 6, 3), I8, Q, [("ARG_MAX", np.int32, None, {"axis": 3})], ["argmax_s8"]),
    ("argmax_logits_s8", (1, 10), I8, Q, [("ARG_MAX", np.int32, None, {"axis": 1})], ["argmax_s8"]),
    ("argmax_f32", (1, 4, 6, 3), F32, None, [("ARG_MAX", np.int32, None, {"axis": 1})], ["argmax_f32"]),
]


def _inputs(cid, shape, dtype, n=3):
    rng = np.random.default_rng(zlib.crc32(cid.encode()))
    out = []
    for _ in range(n):
        if dtype == I8:
            x = rng.integers(-128, 128, shape).astype(np.int8)
            x.flat[:2] = [-128, 127]
        else:
            x = rng.normal(0.0, 3.0, shape).astype(np.float32)
            x.flat[:4] = [0.025, -0.075, 1e4, -1e4]          # quantization ties and saturation
        if cid.startswith("argmax"):
            x = np.round(x / 2).astype(dtype) if dtype == F32 else (x // 64).astype(np.int8)   # many ties
        out.append(x)
    return out


@pytest.mark.parametrize("case", CASES, ids=lambda c: c[0])
def test_tflite_matches_tflm(case, tmp_path):
    """The compiled C on the host: int8 (and int32 indices) bit-exact with TFLite Micro, float
    within 1e-5; the int8 Relax composites on llvm bit-exact too; the kernels expected."""
    cid, shape, dtype, q, ops, kernels = case
    buf = T.data_movement_model(shape, dtype, q, ops)
    m = adaptc.compile(_save(tmp_path, f"{cid}.tflite", buf), target="cortex-m4")
    assert [s.kernel for s in m.scheduled.steps] == kernels
    for x in _inputs(cid, shape, dtype):
        want = T.run_tflm(buf, x)
        got = m.run(x)
        assert got.dtype == want.dtype and got.shape == want.shape
        if want.dtype == np.float32:
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(m.reference(x), want, rtol=1e-5, atol=1e-5)
        else:
            np.testing.assert_array_equal(got, want)
            np.testing.assert_array_equal(m.reference(x), want)


@pytest.mark.skipif(not EMULATOR, reason="needs qemu-system-arm and gcc-arm-none-eabi")
def test_float_io_int8_model_on_emulated_m4(tmp_path):
    """QUANTIZE -> RESIZE_BILINEAR -> TRANSPOSE -> DEQUANTIZE on an emulated Cortex-M4: the
    float output equals the host's (and TFLite Micro's within 1e-5)."""
    cid, shape, dtype, q, ops, _ = next(c for c in CASES if c[0] == "float_io_int8_inside")
    buf = T.data_movement_model(shape, dtype, q, ops)
    m = adaptc.compile(_save(tmp_path, "io.tflite", buf), target="cortex-m4")
    x = _inputs(cid, shape, dtype, 1)[0]
    r = m.run_on_target(x)
    np.testing.assert_array_equal(np.asarray(r.outputs).reshape(m.run(x).shape), m.run(x))
    np.testing.assert_allclose(m.run(x), T.run_tflm(buf, x), rtol=1e-5, atol=1e-5)


def test_unpack_outputs_match_tflm_in_relax(tmp_path):
    """UNPACK with all its parts as model outputs: the Relax module gives TFLM's every part (the C
    entry point takes one output, so the C build is refused there)."""
    buf = T.data_movement_model((2, 3, 4), I8, Q, [("UNPACK", I8, Q, {"axis": 1, "num": 3})])
    from adaptc import tvm_compat
    from adaptc.passes.legalize_qdq import LegalizeQDQ

    loaded = adaptc.load(_save(tmp_path, "unpack.tflite", buf))
    mod = tvm_compat.apply(LegalizeQDQ(), loaded.mod)
    x = np.random.default_rng(3).integers(-128, 128, (2, 3, 4)).astype(np.int8)
    got = tvm_compat.run_vm(tvm_compat.build_llvm(mod), x)
    want = T.run_tflm_all(buf, x)
    assert len(got) == len(want) == 3
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_int8_resize_with_other_output_parameters_is_refused(tmp_path):
    """TFLite Micro's int8 RESIZE_BILINEAR does not requantize: a model that asks for it is
    refused, naming the operator and the limit."""
    buf = T.data_movement_model((1, 4, 4, 2), I8, Q, [("RESIZE_BILINEAR", I8, (0.1, 0), {"size": [8, 8]})])
    with pytest.raises(UnsupportedOperatorError, match=r"resize2d .*output quantization other than the input"):
        adaptc.compile(_save(tmp_path, "rq.tflite", buf), target="cortex-m4")
