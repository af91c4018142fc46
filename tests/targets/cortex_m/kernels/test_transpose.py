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


def test_merged_dimensions_permute_the_same_bytes():
    """transpose.merged (how a 5-D or 6-D transpose or copy fits the 4-D kernel): on random
    shapes and permutations, the merged permutation moves every element where numpy's does."""
    import itertools

    from adaptc.targets.cortex_m.kernels.transpose import merged

    rng = np.random.default_rng(0)
    fits = 0
    for rank in (2, 3, 4, 5, 6):
        for perm in itertools.islice(itertools.permutations(range(rank)), 0, None, max(1, rank - 3)):
            shape = tuple(int(d) for d in rng.choice([1, 1, 2, 3, 4], size=rank))
            dims, p = merged(shape, list(perm))
            x = np.arange(int(np.prod(shape))).reshape(shape)
            np.testing.assert_array_equal(x.reshape(dims).transpose(p).ravel(), x.transpose(perm).ravel())
            assert len(dims) <= rank
            fits += len(dims) <= 4
    assert fits > 100
