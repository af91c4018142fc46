"""Strided slices: slice (any element type; TFLite STRIDED_SLICE / SLICE / SPLIT, ONNX Slice /
Split), as one-step programs through the Cortex-M target -- on the host and on emulated cores --
against NumPy indexing written from TFLite's reference_ops::StridedSlice: output element k of an
axis is input element begin + k * stride of that axis (strides may be negative).

Each case also states the loops ``view`` must give: output extents (axes of extent 1 dropped,
neighbours that stay contiguous merged), byte strides into the input, the byte offset."""
from __future__ import annotations

import shutil
import zlib

import numpy as np
import pytest

import adaptc.api as api
from adaptc.errors import TargetError
from adaptc.program import DTYPE_BYTES, Program, Step, Tensor
from adaptc.targets.cortex_m.kernels import KERNELS

EMULATOR = shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc")


def slice_ref(x: np.ndarray, begin, strides, out_shape) -> np.ndarray:
    """StridedSlice: per axis the elements begin + k * stride, k = 0 .. out extent - 1."""
    idx = [b + s * np.arange(n) for b, s, n in zip(begin, strides, out_shape)]
    return x[np.ix_(*idx)]


# (id, input shape, begin, strides, output shape, dims, byte strides and offset of int8)
CASES = [
    ("row_crop_one_loop", (1, 8, 8, 4), [0, 2, 0, 0], [1, 1, 1, 1], (1, 4, 8, 4), [1, 1, 1, 128], [1, 1, 1, 1], 64),
    ("channel_split", (1, 4, 4, 6), [0, 0, 0, 2], [1, 1, 1, 1], (1, 4, 4, 3), [1, 1, 16, 3], [1, 1, 6, 1], 2),
    ("stride_2_spatial", (1, 8, 8, 4), [0, 1, 0, 0], [1, 2, 2, 1], (1, 4, 4, 4), [1, 4, 4, 4], [1, 64, 8, 1], 32),
    ("strided_innermost", (2, 3, 10), [0, 0, 1], [1, 1, 3], (2, 3, 3), [1, 1, 6, 3], [1, 1, 10, 3], 1),
    ("reversed_axis", (1, 5, 6), [0, 4, 0], [1, -1, 1], (1, 5, 6), [1, 1, 5, 6], [1, 1, -6, 1], 24),
    ("four_loops_batch", (2, 4, 6, 5), [1, 1, 0, 1], [-1, 2, 3, 2], (2, 2, 2, 2), [2, 2, 2, 2], [-120, 60, 15, 2],
     151),
]


def program(case, dtype: str) -> Program:
    _, shape, begin, strides, out_shape = case[:5]
    x = Tensor(0, "x", tuple(shape), dtype, "input")
    y = Tensor(1, "y", tuple(out_shape), dtype, "output")
    step = Step(0, "adaptc.slice", "test case", [0], 1,
                {"begin": begin, "strides": strides, "item_bytes": DTYPE_BYTES[dtype]}, {},
                in_shapes=[tuple(shape)], out_shape=tuple(out_shape))
    return Program("slice_case", [x, y], [step], [0], [1])


def _inputs(case, dtype: str) -> list[np.ndarray]:
    rng = np.random.default_rng(zlib.crc32(case[0].encode()))
    if dtype == "int8":
        return [rng.integers(-128, 128, size=case[1], dtype=np.int8) for _ in range(2)]
    return [rng.normal(0.0, 3.0, size=case[1]).astype(np.float32) for _ in range(2)]


@pytest.mark.parametrize("dtype", ["int8", "float32"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c[0])
def test_slice_host(case, dtype):
    _, _, begin, strides, out_shape, dims, byte_strides, offset = case
    item = DTYPE_BYTES[dtype]
    m = api.compile_program(program(case, dtype), "cortex-m4", format="float32" if dtype == "float32" else "int8")
    [step] = m.scheduled.steps
    assert step.kernel == "slice"
    p = step.call.params
    assert (p["dims"], p["strides"], p["offset"], p["item"]) == \
        (dims, [s * item for s in byte_strides], offset * item, item)
    for x in _inputs(case, dtype):
        np.testing.assert_array_equal(m.run(x), slice_ref(x, begin, strides, out_shape))   # a copy: exact


def test_cost_features_by_hand():
    """slice's features: one call, the rows (outer three loops), the bytes copied, and the
    elements copied one by one where a row is not contiguous."""
    feats = KERNELS["slice"].features
    by_id = {c[0]: program(c, "int8").steps[0] for c in CASES}
    assert feats(by_id["row_crop_one_loop"]) == {"call": 1, "rows": 1, "bytes": 128, "elements": 0}
    assert feats(by_id["channel_split"]) == {"call": 1, "rows": 16, "bytes": 48, "elements": 0}
    assert feats(by_id["strided_innermost"]) == {"call": 1, "rows": 6, "bytes": 18, "elements": 18}
    f = program(CASES[3], "float32").steps[0]           # float32: 4 bytes an element
    assert feats(f) == {"call": 1, "rows": 6, "bytes": 72, "elements": 18}


def test_five_loops_are_refused():
    """Five axes that stay apart need five loops; the kernel has four: TargetError naming it."""
    case = ("five", (2, 3, 3, 3, 4), [0] * 5, [1, 2, 2, 2, 2], (2, 2, 2, 2, 2))
    with pytest.raises(TargetError, match=r"slice of \[2, 3, 3, 3, 4\] .*needs 5 loops"):
        api.compile_program(program(case, "int8"), "cortex-m4")


@pytest.mark.skipif(not EMULATOR, reason="needs qemu-system-arm and gcc-arm-none-eabi")
@pytest.mark.parametrize("target", ["cortex-m0plus", "cortex-m4"])
def test_slice_emulated(target):
    for case in (CASES[1], CASES[3], CASES[5]):
        for dtype in ("int8", "float32"):
            xs = np.stack(_inputs(case, dtype))
            m = api.compile_program(program(case, dtype), target, format="float32" if dtype == "float32" else "int8")
            r = m.run_batch_on_target(xs)
            want = np.stack([slice_ref(x, case[2], case[3], case[4]) for x in xs])
            np.testing.assert_array_equal(r.outputs[0].reshape(want.shape), want, err_msg=f"{case[0]} {dtype}")
