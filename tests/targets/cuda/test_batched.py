"""Batched segments with compaction (adaptc.targets.cuda), on llvm and as generated CUDA.

* int8 digits model with exits, the whole test split (450) at every level, batches of 1, 64
  and 450: label, exit, confidence and logits equal the per-sample Relax VM's
  (``CompiledModel.reference``) and the generated C's (``CompiledModel.run``) bit for bit; each
  segment runs only on the samples still in the batch.
* the margin and entropy gates (int8): the same at the top level, one batch.
* pot4 digits model (power-of-two weights): the same, every level, one batch.
* float digits model: same exits and labels, logits within 1e-5.
* models without exits (ResNet-8, KWS): one segment, equal to the per-sample reference.
* CUDA: the source of ResNet-8, KWS and the digits model is generated without a GPU and
  ``nvcc -c`` compiles it for sm_80 and sm_90; ``write_cuda`` writes the .cu, the library and
  the plan; an exported build runs on the TVM runtime alone (no compiler), equal to the C;
  running without a GPU fails naming the missing device; each fused group is one kernel (a
  budget of kernels per model).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tvm

import adaptc
from adaptc.data import digits
from adaptc.data import path as data_path
from adaptc.errors import InputError, TargetError
from adaptc.targets.cuda import batched as cuda
from paths import DATA

DIGITS = data_path("digits_exits.onnx")
RESNET = DATA / "pretrainedResnet_quant.tflite"
KWS = DATA / "kws_ref_model.tflite"
X_TRAIN, Y_TRAIN, X_TEST, Y_TEST = digits()
NVCC = shutil.which("nvcc") or ("/usr/local/bin/nvcc" if Path("/usr/local/bin/nvcc").exists() else None)

THRESHOLDS = {"margin": [1.5, 1.5], "entropy": [-0.3, -0.3]}
_CACHE: dict = {}


def cached(key, make):
    if key not in _CACHE:
        _CACHE[key] = make()
    return _CACHE[key]


def model(kind: str):
    def make():
        if kind.startswith("int8-"):         # another gate criterion
            return adaptc.compile(DIGITS, target="cortex-m4", exits=True, calibration=X_TRAIN[:256],
                                  gate=kind[5:], thresholds=THRESHOLDS[kind[5:]])
        if kind in ("int8", "pot4"):
            return adaptc.compile(DIGITS, target="cortex-m4", exits=True, calibration=X_TRAIN[:256],
                                  thresholds=[0.9, 0.9], quantize=None if kind == "int8" else kind)
        if kind == "float":
            return adaptc.compile(DIGITS, exits=True, thresholds=[0.9, 0.9])
        return adaptc.compile({"resnet": RESNET, "kws": KWS}[kind])
    return cached(("model", kind), make)


def built(kind: str, target: str = "llvm", arch: str = "sm_90"):
    return cached(("built", kind, target, arch), lambda: cuda.build(model(kind), target, arch))


def per_sample(kind: str, level: int, runner: str) -> dict:
    """Every test sample through ``reference`` (Relax VM) or ``run`` (generated C), stacked."""
    def make():
        m = model(kind)
        xs = m.quantize_input(X_TEST)
        fn = m.reference if runner == "reference" else m.run
        res = [fn(x[None], level=level) for x in xs]
        return {"label": np.array([r.label for r in res]), "exit": np.array([r.exit for r in res]),
                "confidence": np.array([r.confidence for r in res]),
                "logits": np.stack([np.asarray(r.logits).reshape(-1) for r in res])}
    return cached(("per_sample", kind, level, runner), make)


def run_batched(b, xs, level, batch):
    parts = [b.run(xs[i:i + batch], level=level) for i in range(0, len(xs), batch)]
    return {"label": np.concatenate([p.label for p in parts]), "exit": np.concatenate([p.exit for p in parts]),
            "confidence": np.concatenate([p.confidence for p in parts]),
            "logits": np.concatenate([p.logits for p in parts])}


@pytest.mark.parametrize("batch", [1, 64, 450])
def test_int8_batches_equal_per_sample_runs(batch):
    m, b = model("int8"), built("int8")
    xs = m.quantize_input(X_TEST)
    assert len(xs) == 450
    exits_seen = set()
    for level in range(len(m.levels)):
        got = run_batched(b, xs, level, batch)
        for runner in ("reference", "c"):
            want = per_sample("int8", level, runner)
            for f in ("label", "exit", "confidence", "logits"):
                np.testing.assert_array_equal(got[f], want[f], err_msg=f"{f}, level {level}, batch {batch}, {runner}")
        assert got["exit"].max() <= level
        exits_seen |= set(got["exit"].tolist())
    assert exits_seen == {0, 1, 2}          # every exit is taken by some sample: every path is checked


def test_pot4_batches_equal_per_sample_runs():
    """Power-of-two weights (4 bits): the same integer program, every level, one batch."""
    m, b = model("pot4"), built("pot4")
    xs = m.quantize_input(X_TEST)
    for level in range(len(m.levels)):
        got = run_batched(b, xs, level, 450)
        for runner in ("reference", "c"):
            want = per_sample("pot4", level, runner)
            for f in ("label", "exit", "confidence", "logits"):
                np.testing.assert_array_equal(got[f], want[f], err_msg=f"{f}, level {level}, {runner}")
    assert set(got["exit"].tolist()) == {0, 1, 2}


@pytest.mark.parametrize("criterion", ["margin", "entropy"])
def test_int8_other_gate_criteria(criterion):
    kind = f"int8-{criterion}"
    m, b = model(kind), built(kind)
    xs = m.quantize_input(X_TEST)
    got = run_batched(b, xs, len(m.levels) - 1, 450)
    want = per_sample(kind, len(m.levels) - 1, "reference")
    for f in ("label", "exit", "confidence", "logits"):
        np.testing.assert_array_equal(got[f], want[f], err_msg=f)
    assert set(got["exit"].tolist()) == {0, 1, 2}


def test_compaction_runs_each_segment_on_the_samples_left():
    m, b = model("int8"), built("int8")
    xs = m.quantize_input(X_TEST)
    r = b.run(xs)
    counts = np.bincount(r.exit, minlength=3)
    assert r.segment_sizes == [450, 450 - counts[0], counts[2]]
    assert b.run(xs, level=0).segment_sizes == [450]


def test_float_batches_match_per_sample_runs():
    m, b = model("float"), built("float")
    xs = m.quantize_input(X_TEST)
    for level in range(len(m.levels)):
        want = per_sample("float", level, "reference")
        for batch in (64, 450):
            got = run_batched(b, xs, level, batch)
            np.testing.assert_array_equal(got["exit"], want["exit"])
            np.testing.assert_array_equal(got["label"], want["label"])
            np.testing.assert_allclose(got["logits"], want["logits"], rtol=0, atol=1e-5)
            np.testing.assert_allclose(got["confidence"], want["confidence"], rtol=0, atol=1e-5)


@pytest.mark.parametrize("kind", ["resnet", "kws"])
def test_models_without_exits_are_one_segment(kind):
    m, b = model(kind), built(kind)
    rng = np.random.default_rng(0)
    xs = rng.integers(-128, 128, size=(6, *m.input.shape[1:]), dtype=np.int8)
    r = b.run(xs)
    assert r.segment_sizes == [6] and not r.exit.any() and r.confidence is None
    for i, x in enumerate(xs):
        want = m.reference(x[None])
        np.testing.assert_array_equal(r.logits[i], want[0])
        assert r.label[i] == np.argmax(want[0])
    with pytest.raises(InputError, match="no exits"):
        b.run(xs, level=0)


def test_bad_batches_are_refused():
    m, b = model("int8"), built("int8")
    xs = m.quantize_input(X_TEST[:4])
    with pytest.raises(InputError, match="level 3 out of range"):
        b.run(xs, level=3)
    with pytest.raises(InputError, match="int8"):
        b.run(xs.astype(np.float32))
    with pytest.raises(InputError, match=r"\[N, 1, 8, 8\]"):
        b.run(xs[:, :, :4])
    with pytest.raises(TargetError, match="unknown batched target"):
        cuda.build(m, "rocm")


# ------------------------------------------------------------------------------------ CUDA


@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
@pytest.mark.parametrize("kind", ["int8", "pot4", "resnet", "kws"])
def test_cuda_source_compiles_with_nvcc(kind, arch, tmp_path):
    b = built(kind, "cuda", arch)
    src = b.cuda_source()
    assert len(kernels(src)) > 10 and "blockIdx.x" in src
    if NVCC is None:
        pytest.skip("nvcc not found (CUDA toolkit): the source was generated but not compiled")
    cu = tmp_path / "model.cu"
    cu.write_text(src)
    res = subprocess.run([NVCC, "-c", f"-arch={arch}", str(cu), "-o", str(tmp_path / "model.o")],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-4000:]
    assert (tmp_path / "model.o").stat().st_size > 0


def kernels(src: str) -> set[str]:
    return set(re.findall(r"__global__ void (?:__launch_bounds__\(\d+\) )?(\w+)\(", src))


# Kernels in the CUDA build (distinct __global__ functions); measured, and a budget: a change that
# splits fused groups again (dlight's rules, or no fusion: 159 / 219 / 122) fails here.
KERNELS = {"int8": 39, "pot4": 39, "resnet": 38, "kws": 22}


@pytest.mark.parametrize("kind", sorted(KERNELS))
def test_cuda_kernel_count_budget(kind):
    b = built(kind, "cuda", "sm_90")
    n = len(kernels(b.cuda_source()))
    assert n <= KERNELS[kind], f"{kind}: {n} kernels, budget {KERNELS[kind]}"


def test_write_cuda_writes_source_and_library(tmp_path):
    b = built("int8", "cuda", "sm_90")
    paths = cuda.write_cuda(b, tmp_path)
    assert paths["source"] == tmp_path / "digits_exits.cu"
    text = paths["source"].read_text()
    assert text.startswith("// generated by adaptc (target cuda, arch sm_90)")
    assert b.cuda_source() in text
    assert paths["library"] == tmp_path / "digits_exits_cuda.so" and paths["library"].stat().st_size > 0
    assert paths["plan"] == tmp_path / "digits_exits_batched.json"
    doc = json.loads(paths["plan"].read_text())
    assert doc["target"] == {"kind": "cuda", "arch": "sm_90"} and len(doc["plan"]["segments"]) == 3


RUNTIME_ONLY = """
import json, sys
import numpy as np
from adaptc.targets.cuda import runtime as batched_runtime
r = batched_runtime.load(sys.argv[1])
xs = np.load(sys.argv[2])
out = {}
for level in range(r.levels):
    g = r.run(xs, level=level)
    out[level] = {"label": g.label.tolist(), "exit": g.exit.tolist(), "confidence": g.confidence.tolist(),
                  "logits": g.logits.reshape(len(xs), -1).tolist()}
print(json.dumps({"compiler_loaded": "tvm.relax" in sys.modules, "levels": out}))
"""


def test_exported_build_runs_on_the_tvm_runtime_alone(tmp_path):
    """export() + batched_runtime.load() in a process with TVM_USE_RUNTIME_LIB=1 (no compiler
    library, tvm.relax never imported): every test image at every level equals the per-sample
    generated C."""
    m, b = model("int8"), built("int8")
    paths = b.export(tmp_path / "out")
    assert paths["library"].name == "digits_exits_llvm.so"
    xs = m.quantize_input(X_TEST)
    np.save(tmp_path / "xs.npy", xs)
    env = {**os.environ, "TVM_USE_RUNTIME_LIB": "1"}
    res = subprocess.run([sys.executable, "-c", RUNTIME_ONLY, str(tmp_path / "out"), str(tmp_path / "xs.npy")],
                         capture_output=True, text=True, timeout=600, env=env)
    assert res.returncode == 0, res.stderr[-4000:]
    doc = json.loads(res.stdout.strip().splitlines()[-1])
    assert doc["compiler_loaded"] is False
    for level in range(len(m.levels)):
        want = per_sample("int8", level, "c")
        got = doc["levels"][str(level)]
        for f in ("label", "exit", "confidence", "logits"):
            np.testing.assert_array_equal(np.array(got[f]), want[f], err_msg=f"{f}, level {level}")
    with pytest.raises(InputError, match=r"expected one \*_batched\.json"):
        from adaptc.targets.cuda import runtime as batched_runtime
        batched_runtime.load(tmp_path)


@pytest.mark.skipif(tvm.cuda(0).exist, reason="a CUDA device is present")
def test_running_cuda_without_a_gpu_names_the_missing_device():
    m, b = model("int8"), built("int8", "cuda", "sm_90")
    with pytest.raises(TargetError, match="no CUDA device"):
        b.run(m.quantize_input(X_TEST[:2]))
    with pytest.raises(TargetError, match="needs a build for target 'cuda'"):
        built("int8").cuda_source()


def test_compile_api_and_cli_for_batched_targets(tmp_path):
    """adaptc.compile(target="llvm", exits=True, calibration=(x, y)): thresholds calibrated
    against the GPU roofline, run(X) returns arrays in input order equal to the per-sample
    Relax module; `adaptc compile --target cuda` writes the CUDA source and the library."""
    from click.testing import CliRunner

    import adaptc
    from adaptc.cli import main
    from adaptc.data import digits
    from adaptc.data import path as data_path

    x, y, xt, _ = digits()
    m = adaptc.compile(data_path("digits_exits.onnx"), target="llvm", exits=True, calibration=(x[:400], y[:400]))
    assert m.exits["calibration"]["cost_unit"] == "seconds (llvm, simulated)"          # the roofline
    xs = m.quantize_input(xt[:64])
    r = m.run(xs)
    for k in range(len(xs)):
        ref = m.reference(xs[k:k + 1])
        assert (int(r.label[k]), int(r.exit[k])) == (ref.label, ref.exit)
        np.testing.assert_array_equal(r.logits[k], ref.logits[0])
    cal = tmp_path / "cal.npz"
    np.savez(cal, x=x[:400], y=y[:400])
    res = CliRunner().invoke(main, ["compile", str(data_path("digits_exits.onnx")), "--target", "cuda", "--exits",
                                    "--calibration", str(cal), "--arch", "sm_80", "-o", str(tmp_path / "cu")])
    assert res.exit_code == 0, res.output
    assert "__global__" in (tmp_path / "cu" / "digits_exits.cu").read_text()
    assert (tmp_path / "cu" / "digits_exits_cuda.so").stat().st_size > 0
    # tuning options: records are required to apply, and belong to --target cuda
    res = CliRunner().invoke(main, ["compile", str(data_path("digits_exits.onnx")), "--target", "cuda",
                                    "--arch", "sm_80", "--tune-records", str(tmp_path / "rec"),
                                    "-o", str(tmp_path / "tuned")])
    assert res.exit_code != 0 and "no tuning records for cuda-sm_80" in res.output, res.output
    assert not (tmp_path / "tuned").exists()
    res = CliRunner().invoke(main, ["compile", str(data_path("digits_exits.onnx")), "--tune-trials", "5",
                                    "-o", str(tmp_path / "m4")])
    assert res.exit_code == 2 and "--tune-records" in res.output
