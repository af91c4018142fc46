"""Exit gates (targets/cortex_m/kernels/gate.py): integer confidences exactly as adaptc.gates
defines them (and the Relax composite adaptc.qgate, tests/passes/test_insert_gates.py); float
ones against float64 NumPy. One kernel per criterion and dtype, called directly, with the tables
as the builder stores them (uint16, EXP cut after its last nonzero entry)."""
from __future__ import annotations

import numpy as np
import pytest

import kernel_harness as harness
from adaptc import gates
from adaptc.targets.cortex_m.kernels.gate import stored_tables
from kernel_harness import seed

pytestmark = harness.needs_cc

FAMILY = "gate"


def stored(criterion: str, scale: float):
    """exp_len and the (role, table) pairs of gate.stored_tables for the tables adaptc.gates defines."""
    return stored_tables(dict(zip(["exp_table", "ln_table"], gates.tables(criterion, scale))))


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
    if criterion != "margin":
        params["exp_len"], tables = stored(criterion, scale)
        params.update(tables)
    got = np.array([lib.run(f"gate_{criterion}_s8", params, (1,), logits=r)[0] for r in rows])
    np.testing.assert_array_equal(got, gates.confidence_int(rows, criterion, scale))
    real = gates.confidence_float(rows.astype(np.float64) * scale, criterion)
    tol = {"max_prob": 2e-4, "margin": 1e-9, "entropy": 4e-3}[criterion]
    np.testing.assert_allclose(got * gates.unit(criterion, scale), real, atol=tol)


# From every entry of EXP nonzero (2^15 exp(-255 s) >= 0.5) to only EXP[0]: 0.00005 .. 12.
TRUNCATION_SCALES = [5e-5, 1e-3, 0.01, 0.0434, 0.0436, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.4, 12.0]


@pytest.mark.parametrize("criterion", ["max_prob", "entropy"])
def test_gate_s8_truncated_table(lib, criterion):
    """The stored EXP (uint16, up to its last nonzero entry, exp_len) gives the confidences of
    the full int32 table (adaptc.gates.confidence_int) bit for bit, on random logits, at scales
    where all 256 entries are nonzero and where only EXP[0] is."""
    rng = np.random.default_rng(seed("gate_truncated" + criterion))
    lengths = set()
    for scale in TRUNCATION_SCALES:
        full = gates.exp_table(scale)
        exp_len, tables = stored(criterion, scale)
        lengths.add(exp_len)
        assert tables[0][1].dtype == np.uint16 and tables[0][1].size == exp_len
        np.testing.assert_array_equal(tables[0][1], full[:exp_len])
        assert not full[exp_len:].any()
        for n in (2, 10, 37):
            rows = rng.integers(-128, 128, size=(150, n))
            rows[:10] = 0
            rows[10:30, 0], rows[10:30, 1] = 127, -128              # d = 255
            rows[30:60] = 127 - rng.integers(0, 3, size=(30, n))                  # d in 0..2
            rows[60:90] = 127 - exp_len + rng.integers(-2, 3, size=(30, n))      # d around exp_len
            rows[60:90, 0] = 127
            rows = np.clip(rows, -128, 127).astype(np.int8)
            params = {"classes": n, "threshold": 0, "scale_q16": gates.scale_q16(scale), "exp_len": exp_len,
                      **dict(tables)}
            got = np.array([lib.run(f"gate_{criterion}_s8", params, (1,), logits=r)[0] for r in rows])
            np.testing.assert_array_equal(got, gates.confidence_int(rows, criterion, scale), err_msg=f"s={scale}")
    assert 256 in lengths and 1 in lengths and len(lengths) >= 8, sorted(lengths)


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
