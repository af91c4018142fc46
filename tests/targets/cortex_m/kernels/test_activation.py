"""Activations (targets/cortex_m/kernels/activation.py): lut_s8 (any int8 -> int8 function as a
256-entry table) exactly, and clamp_f32, called directly."""
from __future__ import annotations

import numpy as np
import pytest

import kernel_harness as harness
import kernel_ref as ref

pytestmark = harness.needs_cc

FAMILY = "activation"


def test_lut_s8(lib):
    rng = np.random.default_rng(11)
    table = rng.integers(-128, 128, size=256).astype(np.int8)
    x = np.concatenate([np.arange(-128, 128), rng.integers(-128, 128, size=500)]).astype(np.int8)
    got = lib.run("lut_s8", dict(size=x.size, table=table), x.shape, input=x)
    np.testing.assert_array_equal(got, ref.lut_s8_ref(x, table))
    relu6 = np.clip(np.arange(-128, 128), -10, 50).astype(np.int8)  # zp -10, 6.0 -> 50
    got = lib.run("lut_s8", dict(size=x.size, table=relu6), x.shape, input=x)
    np.testing.assert_array_equal(got, np.clip(x, -10, 50))


@pytest.mark.parametrize("act", [(-3.4e38, 3.4e38), (0.0, 6.0), (-1.0, 1.0)])
def test_clamp_f32(lib, act):
    rng = np.random.default_rng(12)
    x1 = (rng.standard_normal(300) * 4).astype(np.float32)
    p = dict(size=300, act_min=act[0], act_max=act[1])
    got = lib.run("clamp_f32", p, (300,), input=x1)
    np.testing.assert_array_equal(got, np.clip(x1, np.float32(act[0]), np.float32(act[1])))


def test_every_kernel_is_covered():
    """Every kernel of the family is called directly (the family has reference kernels only: a
    new variant needs cases that run it here)."""
    harness.assert_covered(FAMILY, harness.wrapped_kernels(FAMILY))
