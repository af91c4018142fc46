"""Output directories honour the umask: every export writes through adaptc.report's
atomic_directory, whose directory gets the mode a plain ``mkdir`` would give (0o777 & ~umask,
not tempfile.mkdtemp's 0o700) and whose files get 0o666 & ~umask -- for a Cortex-M export, a
batched (llvm) export and a simulation report."""
from __future__ import annotations

import os
import stat
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

import adaptc
import tflite_ops as T
from adaptc.report import atomic_directory, write_report


@contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def assert_modes(directory: Path, mask: int, executables=()):
    assert mode(directory) == 0o777 & ~mask, oct(mode(directory))
    for f in directory.iterdir():
        want = (0o777 if f.name in executables else 0o666) & ~mask
        assert mode(f) == want, f"{f.name}: {oct(mode(f))}"


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    rng = np.random.default_rng(3)
    path = tmp_path_factory.mktemp("small") / "conv.tflite"
    path.write_bytes(T.conv2d_model((1, 6, 6, 2), rng.integers(-127, 128, (3, 3, 3, 2)).astype(np.int8), None,
                                    (0.05, 0), (np.full(3, 0.01), 0), (0.1, 0)))
    return path


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002, 0o077], ids=oct)
def test_atomic_directory_modes(tmp_path, mask):
    with umask(mask):
        with atomic_directory(tmp_path / "deep" / "out") as tmp:
            (tmp / "a.txt").write_text("a")
            assert mode(tmp) == 0o777 & ~mask          # already while being written
    out = tmp_path / "deep" / "out"
    assert_modes(out, mask)
    assert sorted(p.name for p in (tmp_path / "deep").iterdir()) == ["out"]


def test_atomic_directory_keeps_an_existing_directory(tmp_path):
    out = tmp_path / "out"
    out.mkdir(mode=0o700)
    (out / "keep.txt").write_text("kept")
    (out / "a.txt").write_text("old")
    with umask(0o022):
        with atomic_directory(out) as tmp:
            (tmp / "a.txt").write_text("new")
    assert mode(out) == 0o700                           # the user's directory, as it was
    assert (out / "a.txt").read_text() == "new" and (out / "keep.txt").read_text() == "kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_atomic_directory_failure_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), atomic_directory(tmp_path / "out") as tmp:
        (tmp / "a.txt").write_text("a")
        raise RuntimeError("disk on fire")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("mask", [0o022, 0o027], ids=oct)
def test_cortex_m_export_modes(small, tmp_path, mask):
    m = adaptc.compile(small)
    with umask(mask):
        out = m.export(tmp_path / "out")
        sim = adaptc.simulate(m)
        rep = write_report(m, sim, tmp_path / "rep").parent
    assert {"report.json", "Makefile", "main.c"} <= {p.name for p in out.iterdir()}
    assert_modes(out, mask)
    assert_modes(rep, mask)


def test_batched_export_modes(small, tmp_path):
    m = adaptc.compile(small, target="llvm")
    with umask(0o027):
        paths = m.export(tmp_path / "out")
    out = tmp_path / "out"
    assert all(p.parent == out and p.exists() for p in paths.values())
    # the shared library is linked by the C compiler: executable, as the umask allows
    assert_modes(out, 0o027, executables={paths["library"].name})
