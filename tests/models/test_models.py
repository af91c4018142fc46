"""End-to-end tests on the MLPerf Tiny reference models (tests/data, see README.md there).

* int8 ResNet-8 and KWS DS-CNN: the generated C (``m.run``) and the Relax reference
  (``m.reference``) are bit-exact with TFLite Micro on random int8 inputs.
* float32 ResNet-8: both within 1e-4 of LiteRT.
* Memory and work budgets, determinism, strict C compilation and export.

Each model is compiled once per module (fixtures); the llvm reference is built once per
compiled model (cached inside the CompiledModel).
"""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import adaptc.api as api
import paths

DATA = paths.DATA
RESNET_Q = DATA / "pretrainedResnet_quant.tflite"
RESNET_F = DATA / "pretrainedResnet.tflite"
KWS = DATA / "kws_ref_model.tflite"
VWW = DATA / "vww_96_int8.tflite"
AD = DATA / "ad01_int8.tflite"

GCC = shutil.which("gcc")
MAKE = shutil.which("make")
STRICT_CFLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]

N_INT8 = 50
N_FLOAT = 10

# TFLite Micro's activation arenas (../shared/models/mlperf_tiny/README.md): the budgets of the
# reference kernels; with CMSIS-NN, TFLite Micro's whole arena on a Cortex-M4 (activations and the
# optimized kernels' scratch, same README): the budgets of the DSP kernels.
TFLM_ACTIVATIONS = {"resnet": 49152, "kws": 16000}
TFLM_CMSIS_NN_ARENA = {"resnet": 54_996, "kws": 22_820}
# Published MAC counts (../shared/models/mlperf_tiny/README.md), independent of adaptc.
PUBLISHED_MACS = {"resnet": 12_501_632, "kws": 2_656_768}
# Published parameter counts (same README): every parameter takes at least one byte of flash.
PUBLISHED_PARAMS = {"resnet": 77_708, "kws": 22_606}


# --------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def resnet_q():
    return api.compile(RESNET_Q)


@pytest.fixture(scope="module")
def resnet_f():
    return api.compile(RESNET_F)


@pytest.fixture(scope="module")
def kws():
    return api.compile(KWS)


@pytest.fixture(scope="module")
def vww():
    return api.compile(VWW)


@pytest.fixture(scope="module")
def ad():
    return api.compile(AD)


class _Tflm:
    """One TFLite Micro interpreter per model, reused for every input."""

    def __init__(self, path: Path):
        from tflite_micro import runtime as tflm

        self.interp = tflm.Interpreter.from_file(str(path), arena_size=1 << 20)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.interp.set_input(np.ascontiguousarray(x), 0)
        self.interp.invoke()
        return np.array(self.interp.get_output(0), copy=True)


class _LiteRT:
    """LiteRT with its reference kernels, one thread."""

    def __init__(self, path: Path):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        self.interp = Interpreter(model_path=str(path), num_threads=1,
                                  experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
        self.interp.allocate_tensors()
        self.inp = self.interp.get_input_details()[0]["index"]
        self.out = self.interp.get_output_details()[0]["index"]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.interp.set_tensor(self.inp, np.ascontiguousarray(x))
        self.interp.invoke()
        return np.array(self.interp.get_tensor(self.out), copy=True)


def _int8_inputs(m, n, seed):
    rng = np.random.default_rng(seed)
    return [rng.integers(-128, 128, size=m.input.shape, dtype=np.int8) for _ in range(n)]


# ------------------------------------------------------------------------ bit-exactness

@pytest.mark.parametrize("which,path,seed,n", [("resnet_q", RESNET_Q, 1234, N_INT8), ("kws", KWS, 5678, N_INT8),
                                                ("vww", VWW, 91, 8), ("ad", AD, 17, N_INT8)])
def test_int8_bit_exact_with_tflm(request, which, path, seed, n):
    """The four MLPerf Tiny int8 models (the C on the Cortex-M4 default: its DSP kernels through
    dsp.h's portable definitions on the host) and the Relax reference against TFLite Micro."""
    m = request.getfixturevalue(which)
    assert m.format == "int8"
    assert m.input.dtype == "int8" and m.output.dtype == "int8"
    tflm = _Tflm(path)
    for i, x in enumerate(_int8_inputs(m, n, seed)):
        want = tflm(x)
        got_c = m.run(x)
        got_ref = m.reference(x)
        assert got_c.shape == want.shape and got_c.dtype == want.dtype
        np.testing.assert_array_equal(got_c, want, err_msg=f"{path.name}: C vs TFLM, input #{i}")
        np.testing.assert_array_equal(got_ref, want, err_msg=f"{path.name}: reference vs TFLM, input #{i}")


def test_float_resnet_matches_litert(resnet_f):
    m = resnet_f
    assert m.format == "float32"
    assert m.input.dtype == "float32" and tuple(m.input.shape) == (1, 32, 32, 3)
    litert = _LiteRT(RESNET_F)
    rng = np.random.default_rng(42)
    for i in range(N_FLOAT):
        x = rng.random(m.input.shape, dtype=np.float32)
        want = litert(x)
        got_c = m.run(x)
        got_ref = m.reference(x)
        assert got_c.shape == want.shape and got_c.dtype == np.float32
        np.testing.assert_allclose(got_c, want, rtol=0, atol=1e-4, err_msg=f"C vs LiteRT, input #{i}")
        np.testing.assert_allclose(got_ref, want, rtol=0, atol=1e-4, err_msg=f"reference vs LiteRT, input #{i}")


# ------------------------------------------------------------------------------ budgets

# (arena, weight bytes) with the reference kernels and with the DSP kernels (Cortex-M4). These
# fail if the memory grows: update only with a reason. DSP: ResNet-8's second convolution of each
# block writes its output over its dying input (conv2d_s8_dsp in place, adaptc.schedule.plan_arena),
# so two 16 KiB activations are live where the reference kernels need three, + im2col scratch; its
# weights + 2 KiB a residual add (add_s8_dsp's rescaling tables); KWS + 1,024 B of weights (the
# depthwise layers' per-channel rounding constants) and the depthwise kernel's input-row ring
# and expanded filters (1,184 B of scratch). conv2d_s8_dsp's pair blocks hold 4 B a pair of
# channels more than three words a channel (the requantization in a form the assembly takes:
# ResNet-8 + 800 B with its first convolution's padded filter rows, KWS + 640 B), its scratch 24 B
# of output pointers (the arena + 32 B).
BUDGETS = {("resnet", "ref"): (49152, 82536), ("resnet", "dsp"): (34544, 89496),
           ("kws", "ref"): (16000, 30096), ("kws", "dsp"): (17184, 31760)}


@pytest.mark.parametrize("kernels", ["ref", "dsp"])
@pytest.mark.parametrize("name,path", [("resnet", RESNET_Q), ("kws", KWS)])
def test_int8_budgets(name, path, kernels, request):
    m = request.getfixturevalue("resnet_q" if name == "resnet" else "kws")
    if kernels == "ref":
        m = api.compile(path, kernels="ref")
    p = m.scheduled
    assert {s.variant for s in p.steps} == ({"ref"} if kernels == "ref" else {"ref", "dsp"})
    assert p.arena_bytes <= (TFLM_ACTIVATIONS if kernels == "ref" else TFLM_CMSIS_NN_ARENA)[name]
    assert (p.arena_bytes, p.weight_bytes) == BUDGETS[(name, kernels)]
    assert p.weight_bytes >= PUBLISHED_PARAMS[name]
    assert p.macs == PUBLISHED_MACS[name]


def test_resnet_float_work(resnet_f):
    # same network as the int8 one: same MACs; float32 activations are 4x the int8 arena.
    assert resnet_f.program.macs == PUBLISHED_MACS["resnet"]
    # fails if the arena grows: update only with a reason
    assert resnet_f.scheduled.arena_bytes == 196608
    # float32: 4 bytes a parameter (the published count includes the RESHAPE's 2-element shape tensor)
    assert resnet_f.scheduled.weight_bytes >= 4 * (PUBLISHED_PARAMS["resnet"] - 2)
    # fails if the weights grow: update only with a reason
    assert resnet_f.scheduled.weight_bytes == 310824


@pytest.mark.parametrize("which", ["resnet_q", "kws", "resnet_f"])
def test_report_matches_program(request, which):
    m = request.getfixturevalue(which)
    r = m.report()
    assert r["arena_bytes"] == m.scheduled.arena_bytes
    assert r["weight_bytes"] == m.scheduled.weight_bytes
    assert r["macs"] == m.program.macs
    assert sum(layer["macs"] for layer in r["layers"]) == m.program.macs
    assert sum(layer["weight_bytes"] for layer in r["layers"]) == m.scheduled.weight_bytes
    assert r["format"] == m.format
    json.dumps(r)  # serializable
    header = m.files[f"{m.prefix}.h"]
    P = m.prefix.upper()
    assert f"#define {P}_ARENA_BYTES {m.scheduled.arena_bytes}u" in header
    assert f"#define {P}_WEIGHT_BYTES {m.scheduled.weight_bytes}u" in header
    assert f"#define {P}_INPUT0_SIZE {int(np.prod(m.input.shape))}u" in header
    assert f"#define {P}_OUTPUT0_SIZE {int(np.prod(m.output.shape))}u" in header


# -------------------------------------------------------------------------- determinism

@pytest.mark.parametrize("which,path", [("resnet_q", RESNET_Q), ("kws", KWS), ("resnet_f", RESNET_F)])
def test_compile_is_deterministic(request, which, path):
    first = request.getfixturevalue(which)
    second = api.compile(path)
    assert sorted(first.files) == sorted(second.files)
    for name in first.files:
        assert first.files[name] == second.files[name], f"{name} differs between two compiles"


# ------------------------------------------------------------------------- C strictness

@pytest.mark.skipif(GCC is None, reason="no gcc on PATH")
@pytest.mark.parametrize("which", ["resnet_q", "kws", "resnet_f"])
def test_c_compiles_strict_pedantic(request, which, tmp_path):
    m = request.getfixturevalue(which)
    for name, text in m.files.items():
        (tmp_path / name).write_text(text)
    proc = subprocess.run([GCC, *STRICT_CFLAGS, "-c", f"{m.prefix}.c", "-o", f"{m.prefix}.o"],
                          cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert (tmp_path / f"{m.prefix}.o").stat().st_size > 0


# -------------------------------------------------------------------------------- export

@pytest.mark.skipif(GCC is None or MAKE is None, reason="no gcc/make on PATH")
@pytest.mark.parametrize("which", ["resnet_q", "kws", "resnet_f"])
def test_export_and_make(request, which, tmp_path):
    m = request.getfixturevalue(which)
    out = m.export(tmp_path / "out")
    assert Path(out) == tmp_path / "out"
    names = {p.name for p in out.iterdir()}
    assert names == {f"{m.prefix}.c", f"{m.prefix}.h", "Makefile", "report.json", "CMakeLists.txt",
                     "main.c", "startup.c", "semihost.h", f"{m.prefix}.ld"}
    for name, text in m.files.items():
        assert (out / name).read_text() == text
    report = json.loads((out / "report.json").read_text())
    assert report["arena_bytes"] == m.scheduled.arena_bytes
    assert report["weight_bytes"] == m.scheduled.weight_bytes
    assert report["macs"] == m.program.macs
    # no temp directories left next to the export
    assert [p.name for p in tmp_path.iterdir()] == ["out"]

    proc = subprocess.run([MAKE, "host"], cwd=out, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stderr == "", proc.stderr
    assert (out / f"lib{m.prefix}.so").exists()


def test_export_replaces_existing_directory(kws, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.json").write_text("stale")
    (out / "keep.txt").write_text("user file")
    kws.export(out)
    assert json.loads((out / "report.json").read_text())["macs"] == kws.program.macs
    assert (out / "keep.txt").read_text() == "user file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_compile_is_deterministic_across_processes(kws):
    """A fresh interpreter with another hash seed (set/dict-order dependence) emits the same bytes."""
    import os
    import sys

    code = ("import json, sys, adaptc.api as api; "
            "json.dump(api.compile(sys.argv[1]).files, sys.stdout)")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    proc = subprocess.run([sys.executable, "-c", code, str(KWS)], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert json.loads(proc.stdout) == kws.files


# ------------------------------------------------- the MLPerf Tiny models against TFLite Micro

# TFLite Micro + CMSIS-NN on the same emulated Cortex-M4 (../shared/models/mlperf_tiny/README.md):
# executed instructions of one Invoke and the arena.
TFLM_CMSIS_NN_M4 = {"resnet_q": (29_865_056, 54_996), "kws": (7_697_891, 22_820),
                    "vww": (24_101_957, 100_708), "ad": (582_973, 2_580)}
# adaptc's instructions as a share of TFLite Micro's: issue 19's goals (ResNet-8 and KWS at most
# 0.5), bounds a little above the measured ratios (0.496, 0.490, 0.478, 0.560;
# benchmarks/versus_tflm.py) where those lie well below: a kernel change that loses speed on any
# of them fails here. The arena: at most 0.8x TFLite Micro's (issue 19).
INSTRUCTION_RATIO = {"resnet_q": 0.5, "kws": 0.5, "vww": 0.49, "ad": 0.565}


@pytest.mark.parametrize("which", list(TFLM_CMSIS_NN_M4))
def test_mlperf_tiny_on_the_emulated_m4(request, which):
    m = request.getfixturevalue(which)
    x = _int8_inputs(m, 1, 7)[0]
    r = m.run_on_target(x)
    np.testing.assert_array_equal(r.outputs, m.run(x))
    instructions, arena = TFLM_CMSIS_NN_M4[which]
    assert r.instructions <= INSTRUCTION_RATIO[which] * instructions, r.instructions / instructions
    assert m.scheduled.arena_bytes <= 0.8 * arena, m.scheduled.arena_bytes / arena
