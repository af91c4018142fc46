"""The ONNX backend node test cases of the installed onnx package, through adaptc's float C.

Every case that tests an operator of ``adaptc.loader.ONNX_OPS`` (as it is when the tests are
collected: operators added later bring their cases along), or whose operators are all there,
with the parameter inputs real models carry as constants made initializers (Conv's W and B,
Gemm's B and C, Pad's pads, Reshape's shape, ...; tests/helpers/onnx_cases.py says which and
how). Each case the C entry point can express (one float32 input, one float32 output) must pass
-- every data set within rtol 1e-4 / atol 1e-5 of the expected output on the host build of the
generated C -- or be refused at load / compile with an AdaptcError that names the operator:
never a wrong answer, never a crash.

The cases that break that today are listed below (strict xfail): fix one, and its test fails
until its entry is removed. ``benchmarks/onnx_conformance.py`` prints the same cases per
operator, with the refusal reasons.
"""
import pytest

from adaptc.loader import ONNX_OPS
from onnx_cases import Prepared, check, node_cases, prepare, selected

CASES = selected(node_cases())
PREPARED = {c.name: prepare(c) for c in CASES}
APPLICABLE = [name for name, p in PREPARED.items() if isinstance(p, Prepared)]

# Wrong answers and crashes today (the compiler's to-do list; remove an entry once the case passes
# or is refused with a clear error).
WRONG: dict[str, str] = {}
# Refused, but the message names no operator of the case: the user cannot tell what to change.
UNCLEAR_REFUSALS = {
    "test_group_normalization_epsilon_expanded": "'TVM's ONNX frontend failed: Node  cannot handle ShapeExpr "
                                                 "inputs' -- GroupNormalization's body reshapes by a computed shape",
    "test_group_normalization_example_expanded": "the same",
}

# The share of applicable cases that pass, measured on 2026-12-06 (onnx 1.23.2): 316 of 339 with the
# operators of issue 16 (85 of 149 before them; 279 of 301 before LSTM, GRU, LogSoftmax, Log, Upsample,
# Expand). It only goes up.
MIN_PASS_RATE = 316 / 339
# Applicable cases of the 14 operators adaptc had before those five (114): fewer means cases were lost
# on the way (an onnx upgrade, the collector), not that the compiler changed.
MIN_APPLICABLE = 114


def _param(name):
    reason = WRONG.get(name) or UNCLEAR_REFUSALS.get(name)
    return pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=reason)) if reason else name


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    """The Result of an applicable case, compiled and run once per module."""
    workdir, cache = tmp_path_factory.mktemp("onnx_node"), {}

    def get(name):
        if name not in cache:
            cache[name] = check(PREPARED[name], workdir)
        return cache[name]
    return get


@pytest.mark.parametrize("name", [_param(n) for n in APPLICABLE])
def test_case(name, result):
    r = result(name)
    assert r.status != "wrong", f"{name} ({r.op}): {r.kind}: {r.detail}"
    if r.status == "refused":
        assert r.clear, f"{name}: the refusal names no operator of the case ({', '.join(r.ops)}): {r.detail}"
    else:
        assert r.status == "pass", r


def test_tables_name_applicable_cases():
    stale = sorted(n for n in (*WRONG, *UNCLEAR_REFUSALS) if n not in APPLICABLE)
    assert not stale, f"entries for cases that are not applicable (or no longer exist): {stale}"
    assert not set(WRONG) & set(UNCLEAR_REFUSALS)


def test_cases_are_collected():
    assert {"Conv", "Gemm", "Softmax"} <= {c.op for c in CASES}, sorted(ONNX_OPS)
    assert len(APPLICABLE) >= MIN_APPLICABLE, f"{len(APPLICABLE)} applicable cases, {MIN_APPLICABLE} before"


def test_pass_rate(result):
    results = [result(n) for n in APPLICABLE]
    passed = sum(r.status == "pass" for r in results)
    rate = passed / len(results)
    assert rate >= MIN_PASS_RATE - 1e-12, (
        f"{passed} of {len(results)} applicable cases pass ({rate:.1%}), fewer than {MIN_PASS_RATE:.1%}: "
        + ", ".join(r.name for r in results if r.status != "pass"))
