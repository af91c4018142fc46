"""Exit gates (targets/cortex_m/kernels/gate.py): integer confidences exactly as adaptc.gates
defines them (and the Relax composite adaptc.qgate, tests/passes/test_insert_gates.py); float
ones against float64 NumPy. One kernel per criterion and dtype, called directly."""
from __future__ import annotations

import numpy as np
import pytest

import kernel_harness as harness
from adaptc import gates
from kernel_harness import seed

pytestmark = harness.needs_cc

FAMILY = "gate"

GATE_CASES = [dict(id="c10_s0.1", classes=10, scale=0.1), dict(id="c2_s0.02", classes=2, scale=0.02),
              dict(id="c37_s0.5", classes=37, scale=0.5), dict(id="c10_s3", classes=10, scale=3.0)]


@pytest.mark.parametrize("criterion", ["max_prob", "margin", "entropy"])
@pytest.mark.parametrize("case", GATE_CASES, ids=lambda c: c["id"])
def test_gate_s8(lib, case, criterion):
    rng = np.random.default_rng(seed(case["id"] + criterion))
    n, scale = case["classes"], case["scale"]
    rows = rng.integers(-128, 128, size=(300, n)).astype(np.int8)
    rows[:40] = rows[:1]                                    # ties
    rows[40:60] = 127
    rows[60:80, 0] = -128
    params = {"classes": n, "threshold": 0, "scale_q16": gates.scale_q16(scale)}
    tables = gates.tables(criterion, scale)
    params.update(dict(zip(["exp_table", "ln_table"], tables)))
    got = np.array([lib.run(f"gate_{criterion}_s8", params, (1,), logits=r)[0] for r in rows])
    np.testing.assert_array_equal(got, gates.confidence_int(rows, criterion, scale))
    real = gates.confidence_float(rows.astype(np.float64) * scale, criterion)
    tol = {"max_prob": 2e-4, "margin": 1e-9, "entropy": 4e-3}[criterion]
    np.testing.assert_allclose(got * gates.unit(criterion, scale), real, atol=tol)


@pytest.mark.parametrize("criterion", ["max_prob", "margin", "entropy"])
def test_gate_f32(lib, criterion):
    rng = np.random.default_rng(seed("gate_f32" + criterion))
    rows = (rng.standard_normal((200, 10)) * 4).astype(np.float32)
    rows[:20] = rows[:1]
    got = np.array([lib.run(f"gate_{criterion}_f32", {"classes": 10, "threshold": 0.0}, (1,), logits=r)[0]
                    for r in rows])
    np.testing.assert_allclose(got, gates.confidence_float(rows, criterion), rtol=1e-5, atol=1e-5)


def test_every_kernel_is_covered():
    """Every kernel of the family is called directly (the family has reference kernels only: a
    new variant needs cases that run it here)."""
    harness.assert_covered(FAMILY, harness.wrapped_kernels(FAMILY))
