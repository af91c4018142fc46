"""CONCATENATION: concat (any element type, up to four inputs), as one-step programs through the
Cortex-M target -- on the host and on an emulated core -- against numpy.concatenate (TFLite's
reference_ops::Concatenation: per outer index, each input's block in turn).

A program has one input, so a one-step case concatenates the input with itself two to four
times; one case puts a slice step before the concat, so that the blocks differ in size."""
from __future__ import annotations

import shutil
import zlib

import numpy as np
import pytest

import adaptc.api as api
from adaptc.program import DTYPE_BYTES, Program, Step, Tensor
from adaptc.targets.cortex_m.kernels import KERNELS

EMULATOR = shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc")

# (id, input shape, axis, inputs, outer, block bytes per input of int8)
CASES = [
    ("channels_two", (1, 4, 5, 3), 3, 2, 20, 3),
    ("rows_three", (1, 4, 5, 3), 1, 3, 1, 60),
    ("width_four", (2, 3, 4, 2), 2, 4, 6, 8),
    ("batch_axis_one_block", (2, 6), 0, 2, 1, 12),
]


def program(shape: tuple, axis: int, n: int, dtype: str) -> Program:
    out_shape = list(shape)
    out_shape[axis] *= n
    x = Tensor(0, "x", tuple(shape), dtype, "input")
    y = Tensor(1, "y", tuple(out_shape), dtype, "output")
    step = Step(0, "adaptc.concat", "test case", [0] * n, 1, {"axis": axis, "item_bytes": DTYPE_BYTES[dtype]}, {},
                in_shapes=[tuple(shape)] * n, out_shape=tuple(out_shape))
    return Program("concat_case", [x, y], [step], [0], [1])


def _fmt(dtype: str) -> str:
    return "float32" if dtype == "float32" else "int8"


def _inputs(case_id: str, shape, dtype: str) -> list[np.ndarray]:
    rng = np.random.default_rng(zlib.crc32(case_id.encode()))
    if dtype == "int8":
        return [rng.integers(-128, 128, size=shape, dtype=np.int8) for _ in range(2)]
    return [rng.normal(0.0, 3.0, size=shape).astype(np.float32) for _ in range(2)]


@pytest.mark.parametrize("dtype", ["int8", "float32"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c[0])
def test_concat_host(case, dtype):
    cid, shape, axis, n, outer, block = case
    item = DTYPE_BYTES[dtype]
    m = api.compile_program(program(shape, axis, n, dtype), "cortex-m4", format=_fmt(dtype))
    [step] = m.scheduled.steps
    assert step.kernel == "concat"
    assert step.call.params == {"count": n, "outer": outer, "bytes": [block * item] * n + [0] * (4 - n)}
    for x in _inputs(cid, shape, dtype):
        np.testing.assert_array_equal(m.run(x), np.concatenate([x] * n, axis=axis))


def sliced_program(dtype: str) -> Program:
    """x [1, 4, 5, 6] and its first two channels, concatenated on the channels: blocks of 6 and 2."""
    shape, part = (1, 4, 5, 6), (1, 4, 5, 2)
    item = DTYPE_BYTES[dtype]
    x = Tensor(0, "x", shape, dtype, "input")
    s = Tensor(1, "s", part, dtype)
    y = Tensor(2, "y", (1, 4, 5, 8), dtype, "output")
    steps = [Step(0, "adaptc.slice", "test slice", [0], 1, {"begin": [0] * 4, "strides": [1] * 4, "item_bytes": item},
                  {}, in_shapes=[shape], out_shape=part),
             Step(1, "adaptc.concat", "test case", [0, 1], 2, {"axis": 3, "item_bytes": item}, {},
                  in_shapes=[shape, part], out_shape=(1, 4, 5, 8))]
    return Program("concat_sliced", [x, s, y], steps, [0], [2])


@pytest.mark.parametrize("dtype", ["int8", "float32"])
def test_concat_of_unequal_blocks_host(dtype):
    m = api.compile_program(sliced_program(dtype), "cortex-m4", format=_fmt(dtype))
    assert [s.kernel for s in m.scheduled.steps] == ["slice", "concat"]
    item = DTYPE_BYTES[dtype]
    assert m.scheduled.steps[1].call.params == {"count": 2, "outer": 20, "bytes": [6 * item, 2 * item, 0, 0]}
    for x in _inputs("sliced", (1, 4, 5, 6), dtype):
        np.testing.assert_array_equal(m.run(x), np.concatenate([x, x[..., :2]], axis=3))


def test_cost_features_by_hand():
    """concat's features: one call, a memcpy per outer index and input, the bytes copied."""
    feats = KERNELS["concat"].features
    # [1, 4, 5, 3] x 2 on the channels: 20 outer indices x 2 blocks of 3 bytes
    assert feats(program((1, 4, 5, 3), 3, 2, "int8").steps[0]) == {"call": 1, "blocks": 40, "bytes": 120}
    # [2, 3, 4, 2] float32 x 4 on the width: 6 outer indices x 4 blocks of 8 floats
    assert feats(program((2, 3, 4, 2), 2, 4, "float32").steps[0]) == {"call": 1, "blocks": 24, "bytes": 768}
    # blocks of 6 and 2 bytes, 20 outer indices
    assert feats(sliced_program("int8").steps[1]) == {"call": 1, "blocks": 40, "bytes": 160}


@pytest.mark.skipif(not EMULATOR, reason="needs qemu-system-arm and gcc-arm-none-eabi")
@pytest.mark.parametrize("target", ["cortex-m0plus", "cortex-m4"])
def test_concat_emulated(target):
    for dtype in ("int8", "float32"):
        cid, shape, axis, n = CASES[2][:4]
        xs = np.stack(_inputs(cid, shape, dtype))
        r = api.compile_program(program(shape, axis, n, dtype), target, format=_fmt(dtype)).run_batch_on_target(xs)
        want = np.stack([np.concatenate([x] * n, axis=axis) for x in xs])
        np.testing.assert_array_equal(r.outputs[0].reshape(want.shape), want, err_msg=dtype)
        xs = np.stack(_inputs("sliced", (1, 4, 5, 6), dtype))
        r = api.compile_program(sliced_program(dtype), target, format=_fmt(dtype)).run_batch_on_target(xs)
        want = np.stack([np.concatenate([x, x[..., :2]], axis=3) for x in xs])
        np.testing.assert_array_equal(r.outputs[0].reshape(want.shape), want, err_msg=f"sliced {dtype}")
