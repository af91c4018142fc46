"""Select with a comparison: where_f32, ``where(a <comparison> b, t, f)`` (ONNX Where of a Less /
LessOrEqual / Greater / GreaterOrEqual / Equal), as one-step programs through the Cortex-M target
-- on the host and on an emulated core -- against ``np.where`` of the NumPy comparison.

The kernel reads up to four operands, the step's activations first, then its constants (flash);
``slots`` says which of them are a, b, t and f, so one operand may fill several slots and a
constant may be any of them. A program has one input: a case with two activations reads the
input twice. Each case states the loops ``broadcast_loops`` must give over the operands."""
from __future__ import annotations

import operator
import shutil
import zlib
from dataclasses import dataclass

import numpy as np
import pytest

import adaptc.api as api
from adaptc.program import Program, Step, Tensor
from adaptc.qops import COMPARISONS
from adaptc.targets.cortex_m.kernels import KERNELS

EMULATOR = shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc")

# the ONNX comparisons (IEEE: every comparison with a NaN is false, -0 == +0)
COMPARE = {"less": operator.lt, "less_equal": operator.le, "greater": operator.gt,
           "greater_equal": operator.ge, "equal": operator.eq}
C_CODE = {"less": 0, "less_equal": 1, "greater": 2, "greater_equal": 3, "equal": 4}   # where_f32.c's switch


def where_ref(operands: list, slots: list, comparison: str) -> np.ndarray:
    """ONNX Where(Comparison(a, b), t, f) with NumPy broadcasting: a select, exact in float32."""
    a, b, t, f = (np.asarray(operands[k], np.float32) for k in slots)
    return np.where(COMPARE[comparison](a, b), t, f).astype(np.float32)


@dataclass
class Case:
    id: str
    comparison: str
    acts: int                         # activations: 1 (the input) or 2 (the input read twice)
    shape: tuple                      # the input's shape
    consts: list                      # the constants' shapes, in operand order after the activations
    slots: list                       # operand of a, b, t, f
    dims: list                        # the loops broadcast_loops must give, outermost first
    strides: list                     # per operand (four; unused ones zero)

    @property
    def out_shape(self) -> tuple:
        return tuple(np.broadcast_shapes(self.shape, *self.consts))


Z = [0, 0, 0, 0]
CASES = [
    # x < scalar ? per-channel : per-pixel -- one activation, three constants, one of them 0-d
    Case("less_three_constants", "less", 1, (1, 4, 5, 6), [(), (6,), (1, 4, 5, 1)], [0, 1, 2, 3],
         [1, 1, 20, 6], [[0, 0, 6, 1], Z, [0, 0, 0, 1], [0, 0, 1, 0]]),
    # x >= c ? s : x' -- two activations (the input read twice), a per-channel c, a 1-element s
    Case("greater_equal_two_activations", "greater_equal", 2, (1, 4, 5, 6), [(1, 1, 1, 6), (1,)], [0, 2, 3, 1],
         [1, 1, 20, 6], [[0, 0, 6, 1], [0, 0, 6, 1], [0, 0, 0, 1], Z]),
    # c > x ? x : d -- a constant as a, the activation broadcast to the output; three operands
    Case("greater_constant_a_broadcast_input", "greater", 1, (1, 1, 1, 6), [(1, 4, 5, 6), (4, 5, 1)], [1, 0, 0, 2],
         [1, 1, 20, 6], [[0, 0, 0, 1], [0, 0, 6, 1], [0, 0, 1, 0], Z]),
    # x <= c ? d : x -- four loops (every axis broadcasts differently)
    Case("less_equal_four_loops", "less_equal", 1, (2, 3, 4, 5), [(2, 1, 4, 1), (3, 1, 5), ()], [0, 1, 2, 0],
         [2, 3, 4, 5], [[60, 20, 5, 1], [4, 0, 1, 0], [0, 5, 0, 1], Z]),
    # x == c ? t : x -- 2-D, per-column c, per-row t
    Case("equal_2d", "equal", 1, (3, 6), [(6,), (3, 1)], [0, 1, 2, 0],
         [1, 1, 3, 6], [[0, 0, 6, 1], [0, 0, 0, 1], [0, 0, 1, 0], Z]),
]


def _seed(text: str) -> int:
    return zlib.crc32(text.encode())


def _grid(rng, shape) -> np.ndarray:
    """Values on a half-unit grid in [-3, 3]: comparisons of input and constant often tie."""
    return (rng.integers(-6, 7, size=shape) / 2).astype(np.float32)


def _consts(case: Case) -> dict:
    rng = np.random.default_rng(_seed(case.id + "c"))
    return {f"operand{case.acts + k}": _grid(rng, s) for k, s in enumerate(case.consts)}


def _inputs(case: Case) -> list[np.ndarray]:
    """Two grid inputs (ties), one normal, and one with the IEEE corners: NaN, +-0, +-inf."""
    rng = np.random.default_rng(_seed(case.id))
    xs = [_grid(rng, case.shape) for _ in range(2)] + [rng.normal(0, 2, case.shape).astype(np.float32)]
    special = _grid(rng, case.shape)
    special.flat[:5] = [np.nan, 0.0, -0.0, np.inf, -np.inf][:special.size]
    return xs + [special]


def program(case: Case, consts: dict) -> Program:
    x = Tensor(0, "x", case.shape, "float32", "input")
    y = Tensor(1, "y", case.out_shape, "float32", "output")
    attrs = {"comparison": case.comparison, "slots": list(case.slots)}
    step = Step(0, "adaptc.where_f32", "test case", [0] * case.acts, 1, attrs, consts,
                in_shapes=[case.shape] * case.acts, out_shape=case.out_shape)
    return Program("where_case", [x, y], [step], [0], [1])


def _case(case: Case):
    """(program, inputs, expected outputs)."""
    consts = _consts(case)
    xs = _inputs(case)
    want = [where_ref([x] * case.acts + list(consts.values()), case.slots, case.comparison) for x in xs]
    return program(case, consts), xs, want


def test_comparison_codes_are_the_kernels():
    """adaptc.qops.COMPARISONS gives where_f32.c the codes of its switch, one per ONNX comparison."""
    assert {k: v[0] for k, v in COMPARISONS.items()} == C_CODE
    assert sorted(c.comparison for c in CASES) == sorted(COMPARISONS)


def test_the_cases_reach_the_corners():
    """Each case takes both branches and meets ties of a and b (where < and <= differ)."""
    for case in CASES:
        prog, xs, _ = _case(case)
        consts = list(prog.steps[0].consts.values())
        for x in xs[:2]:
            a, b = (np.asarray(([x] * case.acts + consts)[k]) for k in case.slots[:2])
            a, b = np.broadcast_arrays(a, b)
            assert (a < b).any() and (a > b).any() and (a == b).any(), case.id


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_where_f32_host(case):
    prog, xs, want = _case(case)
    m = api.compile_program(prog, "cortex-m4", format="float32")
    [step] = m.scheduled.steps
    assert step.kernel == "where_f32"
    p = step.call.params
    assert p["dims"] == case.dims
    assert [p[f"strides{k + 1}"] for k in range(4)] == case.strides
    assert (p["slots"], p["comparison"]) == (case.slots, C_CODE[case.comparison])
    assert [role for role, _ in step.call.arrays][:len(case.consts)] == list(prog.steps[0].consts)
    host = m.host_model()        # m.run refuses non-finite inputs (adaptc.validation): the C itself
    for x, w in zip(xs, want):
        got = np.zeros(case.out_shape, np.float32)
        assert host(np.ascontiguousarray(x), got) == 0
        np.testing.assert_array_equal(got, w)              # a select: exact, NaN where NumPy has NaN


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_cost_features_are_the_loop_counts(case):
    """where_f32's features: one call, the outer three loops' iterations (rows), every output element."""
    prog, _, _ = _case(case)
    rows = case.dims[0] * case.dims[1] * case.dims[2]
    assert KERNELS["where_f32"].features(prog.steps[0]) == {"call": 1, "rows": rows,
                                                            "elements": int(np.prod(case.out_shape))}


def test_cost_features_by_hand():
    """[1, 4, 5, 6] against a per-channel and a per-pixel constant: 20 rows of 6; [2, 3, 4, 5]
    with every axis its own loop: 2 * 3 * 4 = 24 rows, 120 elements; [3, 6]: 3 rows."""
    by_id = {c.id: _case(c)[0].steps[0] for c in CASES}
    features = KERNELS["where_f32"].features
    assert features(by_id["less_three_constants"]) == {"call": 1, "rows": 20, "elements": 120}
    assert features(by_id["less_equal_four_loops"]) == {"call": 1, "rows": 24, "elements": 120}
    assert features(by_id["equal_2d"]) == {"call": 1, "rows": 3, "elements": 18}


@pytest.mark.skipif(not EMULATOR, reason="needs qemu-system-arm and gcc-arm-none-eabi")
def test_where_f32_on_the_emulated_m4():
    for case in (CASES[0], CASES[3]):
        prog, xs, want = _case(case)
        m = api.compile_program(prog, "cortex-m4", format="float32")
        xs, want = xs[:3], want[:3]        # not the IEEE corners: a batch with NaN is refused (host test above)
        r = m.run_batch_on_target(np.stack(xs))
        np.testing.assert_array_equal(r.outputs[0].reshape(np.stack(want).shape), np.stack(want), err_msg=case.id)


def test_where_has_one_record_and_no_variant():
    records = {k.name: (k.op, k.variant) for k in KERNELS.values() if k.op == "adaptc.where_f32"}
    assert records == {"where_f32": ("adaptc.where_f32", "ref")}
