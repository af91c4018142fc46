"""The loaders under benchmarks/fuzz_loaders.py: a fixed seed's first few hundred mutated and random
model files, each through ``loader.operators``, ``loader.unsupported`` and ``loader.load`` in a
worker process. Every one must load or be refused with an AdaptcError: no other exception, no
worker killed by a signal, none past the 30 s limit. (The full run, 10,000 cases, is the
benchmark's: ``.venv/bin/python benchmarks/fuzz_loaders.py --cases 10000``.)"""
from __future__ import annotations

import sys

import pytest

import paths

sys.path.insert(0, str(paths.ROOT / "benchmarks"))   # the workers import it by name too

import fuzz_loaders as fuzz  # noqa: E402

CASES, SEED = 300, 17


@pytest.fixture(scope="module")
def results():
    return fuzz.run(CASES, seed=SEED, jobs=2, timeout=30.0)


def test_no_untyped_error_crash_or_hang(results):
    s = fuzz.summary(results)
    assert s["cases"] == CASES
    failing = [r for r in results if r["status"] in fuzz.FAILURES]
    assert not failing, "\n".join(
        f"case {r['index']} ({r['status']}; replay: benchmarks/fuzz_loaders.py --seed {SEED} --replay {r['index']}): "
        f"{'; '.join(r['how'])}: {'; '.join(r['errors'])}\n{r['traceback'] or ''}" for r in failing)


def test_the_cases_reach_every_stage(results):
    """The fuzz is not all refused at the first byte: some mutants load (into TVM), others are
    refused by each kind of check."""
    s = fuzz.summary(results)
    assert s["ok"] > 0
    assert {"ModelLoadError", "UnsupportedOperatorError"} <= set(s["refused_as"])


def test_cases_are_reproducible():
    """Case i of a seed is the same file whichever worker builds it, in whatever order."""
    a = [fuzz.make_case(SEED, i) for i in (5, 0, 123)]
    b = [fuzz.make_case(SEED, i) for i in (123, 5, 0)]
    assert [c.data for c in a] == [b[1].data, b[2].data, b[0].data]
    assert a[0].data != a[1].data
