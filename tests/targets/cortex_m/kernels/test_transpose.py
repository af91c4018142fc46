"""TRANSPOSE (targets/cortex_m/kernels/transpose.py): transpose_s8 and transpose_f32 called
directly against numpy.transpose, every 4-D permutation."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

import kernel_harness as harness

pytestmark = harness.needs_cc

FAMILY = "transpose"


@pytest.mark.parametrize("perm", list(itertools.permutations(range(4))))
@pytest.mark.parametrize("dtype", [np.int8, np.float32])
def test_transpose(lib, perm, dtype):
    shape = (2, 3, 4, 5)
    x = np.arange(np.prod(shape)).reshape(shape).astype(dtype)
    expected = np.ascontiguousarray(np.transpose(x, perm))
    kernel = "transpose_s8" if dtype == np.int8 else "transpose_f32"
    got = lib.run(kernel, dict(in_dims=shape, perm=perm), expected.shape, input=x)
    np.testing.assert_array_equal(got, expected)


def test_every_kernel_is_covered():
    """Every kernel of the family is called directly (the family has reference kernels only: a
    new variant needs cases that run it here)."""
    harness.assert_covered(FAMILY, harness.wrapped_kernels(FAMILY))
