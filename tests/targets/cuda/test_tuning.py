"""MetaSchedule tuning of batched builds (adaptc.targets.tuning), measured on this CPU (llvm).

* A tuned build (static buckets 1, 2, 4) returns, for every digits test sample at every level,
  exactly what the generated C returns per sample; every tuned kernel is applied from the
  records; a second build with trials=0 reuses them without tuning (the records unchanged) and
  returns the same; padding keeps each segment within its bucket.
* Refusals: no records to apply, tuning CUDA without a GPU, a bad max_batch.
* A bucketed CUDA build (records without entries) compiles with nvcc; the CLI writes it.
"""
from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import tvm

import adaptc
from adaptc.data import digits
from adaptc.data import path as data_path
from adaptc.errors import InputError, TargetError
from adaptc.targets.cuda import batched as cuda
from adaptc.targets.cuda import tuning
from adaptc.targets.cuda.tuning import DATABASE_FILES, Tuning

X_TRAIN, Y_TRAIN, X_TEST, Y_TEST = digits()
needs_tune_extra = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("psutil", "cloudpickle")),
    reason="MetaSchedule's workers need psutil and cloudpickle (pip install 'adaptc[tune]')")


@pytest.fixture(scope="module")
def model():
    return adaptc.compile(data_path("digits_exits.onnx"), target="cortex-m4", exits=True,
                          calibration=X_TRAIN[:256], thresholds=[0.9, 0.9])


@pytest.fixture(scope="module")
def per_sample(model):
    xs = model.quantize_input(X_TEST)
    out = {}
    for level in range(len(model.levels)):
        res = [model.run(x[None], level=level) for x in xs]
        out[level] = {"label": np.array([r.label for r in res]), "exit": np.array([r.exit for r in res]),
                      "confidence": np.array([r.confidence for r in res]),
                      "logits": np.stack([np.asarray(r.logits).reshape(-1) for r in res])}
    return out


def check_equal(b, model, per_sample):
    xs = model.quantize_input(X_TEST)
    for level in range(len(model.levels)):
        got = b.run(xs, level=level)
        for f in ("label", "exit", "confidence"):
            np.testing.assert_array_equal(getattr(got, f), per_sample[level][f], err_msg=f"{f}, level {level}")
        np.testing.assert_array_equal(got.logits.reshape(len(xs), -1), per_sample[level]["logits"])
    assert set(got.exit.tolist()) == {0, 1, 2}


@needs_tune_extra
def test_tuned_build_is_exact_and_its_records_are_reused(model, per_sample, tmp_path):
    spec = dict(max_batch=4, ops=("conv2d",))
    n_tasks = len(tuning.tasks([cuda.batched_module(model, b, f"_b{b}")[0] for b in (1, 2, 4)],
                               cuda.gpu_target("llvm").tvm_target, spec["ops"]))
    assert n_tasks == 9                                  # 3 convolutions x 3 buckets
    tuned = cuda.build(model, "llvm", tune=Tuning(tmp_path, trials=n_tasks, **spec))
    db = tmp_path / "llvm"
    assert all((db / f).is_file() for f in DATABASE_FILES)
    assert tuned.buckets == [1, 2, 4] and tuned.tuned_kernels == n_tasks
    check_equal(tuned, model, per_sample)

    before = {f: (db / f).read_bytes() for f in DATABASE_FILES}
    reused = cuda.build(model, "llvm", tune=Tuning(tmp_path, trials=0, **spec))
    assert reused.tuned_kernels == n_tasks
    assert {f: (db / f).read_bytes() for f in DATABASE_FILES} == before     # nothing tuned again
    check_equal(reused, model, per_sample)

    # three samples run in the bucket of 4; after each gate the rest in the smallest that holds them
    xs = model.quantize_input(X_TEST)
    r = reused.run(xs[:3])
    assert r.segment_rows[0] == 4
    for samples, rows in zip(r.segment_sizes, r.segment_rows):
        assert rows in (1, 2, 4) and samples <= rows < 2 * samples


def test_refusals(model, tmp_path):
    with pytest.raises(InputError, match="no tuning records for llvm"):
        cuda.build(model, "llvm", tune=Tuning(tmp_path, trials=0))
    with pytest.raises(InputError, match="max_batch must be >= 1"):
        cuda.build(model, "llvm", tune=Tuning(tmp_path, trials=1, max_batch=0))
    with pytest.raises(InputError, match="no tuning records for cuda-sm_80"):
        cuda.build(model, "cuda", "sm_80", tune=Tuning(tmp_path, trials=0))
    if not tvm.cuda(0).exist:
        with pytest.raises(TargetError, match="measures every candidate on the GPU"):
            cuda.build(model, "cuda", tune=Tuning(tmp_path, trials=4))
    assert not any(tmp_path.iterdir())                  # nothing written by a refused build


def test_cuda_bucketed_build_compiles_with_nvcc(model, tmp_path):
    """The bucketed CUDA module (every segment per static batch) from a records directory -- here
    an empty database, as a GPU-less machine can make: nothing applied, every kernel scheduled
    as untuned -- generates one source that nvcc compiles; the CLI writes it."""
    db = tmp_path / "rec" / "cuda-sm_90"
    db.mkdir(parents=True)
    for f in DATABASE_FILES:
        (db / f).write_text("")
    b = cuda.build(model, "cuda", "sm_90", tune=Tuning(tmp_path / "rec", trials=0, max_batch=4))
    assert b.buckets == [1, 2, 4] and b.tuned_kernels == 0
    src = b.cuda_source()
    names = set(re.findall(r"__global__ void (?:__launch_bounds__\(\d+\) )?(\w+)\(", src))
    assert len(names) > 3 * 30                           # every bucket's kernels (39 each untuned)
    nvcc = shutil.which("nvcc") or ("/usr/local/bin/nvcc" if Path("/usr/local/bin/nvcc").exists() else None)
    if nvcc is not None:
        (tmp_path / "m.cu").write_text(src)
        res = subprocess.run([nvcc, "-c", "-arch=sm_90", str(tmp_path / "m.cu"), "-o", str(tmp_path / "m.o")],
                             capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr[-4000:]
    from click.testing import CliRunner

    from adaptc.cli import main
    res = CliRunner().invoke(main, ["compile", str(data_path("digits_exits.onnx")), "--target", "cuda",
                                    "--tune-records", str(tmp_path / "rec"), "--max-batch", "4",
                                    "--model-output", "-1", "-o", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    assert "static batches 1, 2, 4, 0 kernels from the records" in res.output
    assert (tmp_path / "out" / "digits_exits.cu").stat().st_size > 0
    if nvcc is None:
        pytest.skip("nvcc not found (CUDA toolkit): the source was generated but not compiled")
