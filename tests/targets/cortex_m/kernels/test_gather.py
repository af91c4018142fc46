"""GATHER along one axis with constant indices: gather (any element type; TFLite GATHER and
RESIZE_NEAREST_NEIGHBOR as the compiler lowers it, ONNX Gather), as one-step programs through the
Cortex-M target -- on the host and on an emulated core -- against numpy.take (TFLite's
reference_ops::Gather: output[o][j] = input[o][indices[j]])."""
from __future__ import annotations

import shutil
import zlib

import numpy as np
import pytest

import adaptc.api as api
from adaptc.program import DTYPE_BYTES, Program, Step, Tensor
from adaptc.targets.cortex_m.kernels import KERNELS

EMULATOR = shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc")

# (id, input shape, axis, indices, outer, inner elements)
CASES = [
    ("nearest_upscale_rows", (1, 3, 4, 2), 1, [0, 0, 1, 1, 2, 2], 1, 8),
    ("nearest_upscale_cols", (1, 3, 4, 2), 2, [0, 0, 1, 1, 2, 2, 3, 3], 3, 2),
    ("channels_permuted_repeated", (2, 3, 5), 2, [4, 0, 0, 3, 1], 6, 1),
    ("batch_reversed", (3, 2, 4), 0, [2, 1, 0, 2], 1, 8),
    ("single_index", (4, 7), 1, [6], 4, 1),
]


def program(shape: tuple, axis: int, indices, dtype: str) -> Program:
    out_shape = list(shape)
    out_shape[axis] = len(indices)
    x = Tensor(0, "x", tuple(shape), dtype, "input")
    y = Tensor(1, "y", tuple(out_shape), dtype, "output")
    step = Step(0, "adaptc.gather", "test case", [0], 1, {"axis": axis, "item_bytes": DTYPE_BYTES[dtype]},
                {"indices": np.asarray(indices, np.int64)}, in_shapes=[tuple(shape)], out_shape=tuple(out_shape))
    return Program("gather_case", [x, y], [step], [0], [1])


def _fmt(dtype: str) -> str:
    return "float32" if dtype == "float32" else "int8"


def _inputs(case_id: str, shape, dtype: str) -> list[np.ndarray]:
    rng = np.random.default_rng(zlib.crc32(case_id.encode()))
    if dtype == "int8":
        return [rng.integers(-128, 128, size=shape, dtype=np.int8) for _ in range(2)]
    return [rng.normal(0.0, 3.0, size=shape).astype(np.float32) for _ in range(2)]


@pytest.mark.parametrize("dtype", ["int8", "float32"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c[0])
def test_gather_host(case, dtype):
    cid, shape, axis, indices, outer, inner = case
    m = api.compile_program(program(shape, axis, indices, dtype), "cortex-m4", format=_fmt(dtype))
    [step] = m.scheduled.steps
    assert step.kernel == "gather"
    p = step.call.params
    assert (p["outer"], p["axis_size"], p["count"], p["inner"]) == \
        (outer, shape[axis], len(indices), inner * DTYPE_BYTES[dtype])
    [(role, table)] = step.call.arrays
    assert role == "indices" and table.dtype == np.int32 and table.tolist() == indices
    for x in _inputs(cid, shape, dtype):
        np.testing.assert_array_equal(m.run(x), np.take(x, indices, axis=axis))


def test_cost_features_by_hand():
    """gather's features: one call, a memcpy per outer index and output position, the bytes."""
    feats = KERNELS["gather"].features
    # [1, 3, 4, 2] rows 0 0 1 1 2 2: 6 blocks of a row (4 x 2 bytes)
    assert feats(program((1, 3, 4, 2), 1, CASES[0][3], "int8").steps[0]) == {"call": 1, "blocks": 6, "bytes": 48}
    # [2, 3, 5] float32, 5 channels picked: 6 outer x 5 blocks of one float
    assert feats(program((2, 3, 5), 2, CASES[2][3], "float32").steps[0]) == {"call": 1, "blocks": 30, "bytes": 120}


@pytest.mark.skipif(not EMULATOR, reason="needs qemu-system-arm and gcc-arm-none-eabi")
@pytest.mark.parametrize("target", ["cortex-m0plus", "cortex-m4"])
def test_gather_emulated(target):
    for case in (CASES[1], CASES[2]):
        for dtype in ("int8", "float32"):
            cid, shape, axis, indices = case[:4]
            xs = np.stack(_inputs(cid, shape, dtype))
            m = api.compile_program(program(shape, axis, indices, dtype), target, format=_fmt(dtype))
            r = m.run_batch_on_target(xs)
            want = np.stack([np.take(x, indices, axis=axis) for x in xs])
            np.testing.assert_array_equal(r.outputs[0].reshape(want.shape), want, err_msg=f"{cid} {dtype}")
