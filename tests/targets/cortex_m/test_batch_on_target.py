"""Batched emulated runs (``emulator.run_batch_on_target``): one cross build, one QEMU launch.

* int8 digits model with exits, the whole test split (450 inputs) at every level, on Cortex-M4
  and Cortex-M0+: label, exit, confidence and logits equal the host build's and the Relax
  module's (TVM llvm) bit for bit. (Each 450 x 3 batch takes well under a second of QEMU.)
* float digits model on Cortex-M4, the whole test split at every level: exit, label and logits
  equal the host build's bit for bit; the confidence (1 / sum expf, newlib's expf against
  glibc's) within 1e-6.
* Instruction counts: exactly what the plugin's full per-PC mode sees in ``<prefix>_run`` and
  its callees on the same firmware; close to ``run_on_target`` on the profiled build; fewer for
  an input that leaves at a shallower exit; identical from run to run.
* A model without exits runs each input once; bad batches are refused.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import tvm

import adaptc
import paths
from adaptc.data import digits
from adaptc.data import path as data_path
from adaptc.targets.cortex_m import emulator
from adaptc.targets.cortex_m.emulator import run_batch_on_target, run_on_target
from adaptc.targets.cortex_m.firmware import cross_build

MODEL = data_path("digits_exits.onnx")
KWS = paths.DATA / "kws_ref_model.tflite"
X_TRAIN, Y_TRAIN, X_TEST, Y_TEST = digits()

MISSING = [pkg for tool, pkg in (("arm-none-eabi-gcc", "gcc-arm-none-eabi"), ("qemu-system-arm", "qemu-system-arm"))
           if shutil.which(tool) is None]
pytestmark = pytest.mark.skipif(bool(MISSING), reason=f"needs the Debian packages {', '.join(MISSING)} "
                                                      "(and libnewlib-arm-none-eabi)")

_CACHE: dict = {}


def compiled(kind: str, target: str):
    key = (kind, target)
    if key not in _CACHE:
        if kind == "float":
            _CACHE[key] = adaptc.compile(MODEL, target=target, exits=True, thresholds=[0.95, 0.9])
        else:
            _CACHE[key] = adaptc.compile(MODEL, target=target, exits=True, calibration=X_TRAIN[:256],
                                         thresholds=[0.95, 0.9])
    return _CACHE[key]


def stacked(results, fields=("label", "exit", "confidence", "logits")) -> dict:
    """[level][input] ExitResults -> one array per field, shaped [levels, N, ...]."""
    return {f: np.array([[getattr(r, f) for r in row] for row in results]) for f in fields}


def assert_same(batch, want: dict, what: str):
    for f in ("label", "exit", "confidence", "logits"):
        np.testing.assert_array_equal(getattr(batch, f), want[f], err_msg=f"{f}: emulator vs {what}")


@pytest.fixture(scope="module")
def int8_reference():
    """The Relax module on llvm over the test split at every level (the module is the same for
    every target: asserted where it is used)."""
    m = compiled("int8", "cortex-m4")
    xs = m.quantize_input(X_TEST)
    return stacked([[m.reference(xs[k:k + 1], level=lv) for k in range(len(xs))] for lv in range(len(m.levels))])


@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m0plus"])
def test_int8_test_split_bit_exact_with_host_and_relax(target, int8_reference):
    m = compiled("int8", target)
    tvm.ir.assert_structural_equal(m.mod, compiled("int8", "cortex-m4").mod)
    xs = m.quantize_input(X_TEST)
    b = run_batch_on_target(m, xs)
    assert b.levels == (0, 1, 2) and b.target == target and b.elf.exists()
    assert b.logits.shape == (3, len(xs), 1, 10) and b.instructions.shape == (3, len(xs))
    assert b.confidence.dtype == np.int32
    host = stacked([[m.run(xs[k:k + 1], level=lv) for k in range(len(xs))] for lv in b.levels])
    assert_same(b, host, "host build")
    assert_same(b, int8_reference, "Relax module on llvm")
    assert set(b.exit[2].tolist()) == {0, 1, 2}
    assert all((b.exit[i] <= lv).all() for i, lv in enumerate(b.levels))
    r, h = b.result(1, 7), m.run(xs[7:8], level=1)                 # one inference as an ExitResult
    assert (r.label, r.exit, r.confidence) == (h.label, h.exit, h.confidence)
    assert type(r.confidence) is int
    np.testing.assert_array_equal(r.logits, h.logits)


def test_float_test_split_matches_host():
    """Observed: logits bit-identical to the host build (same float operations, FPv4 single
    precision); the confidence differs in the last bit for a few inputs (newlib's expf)."""
    m = compiled("float", "cortex-m4")
    b = run_batch_on_target(m, X_TEST)
    host = stacked([[m.run(X_TEST[k:k + 1], level=lv) for k in range(len(X_TEST))] for lv in b.levels])
    np.testing.assert_array_equal(b.exit, host["exit"])
    np.testing.assert_array_equal(b.label, host["label"])
    np.testing.assert_array_equal(b.logits, host["logits"])
    assert b.confidence.dtype == np.float32
    np.testing.assert_allclose(b.confidence, host["confidence"], rtol=0, atol=1e-6)
    assert set(b.exit[2].tolist()) == {0, 1, 2}


def first_per_exit(m, xs) -> list[int]:
    """Indices of the first inputs that leave at exit 0, 1 and 2 at the top level."""
    exits = [m.run(xs[k:k + 1]).exit for k in range(60)]
    return [exits.index(e) for e in range(3)]


@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m0plus"])
def test_counts_close_to_the_profiled_build(target):
    """The profiled build (run_on_target) counts from the first step marker to the last and
    adds, per marker call, its argument and the bl (<= 3 instructions with a register move the
    call forces); it leaves out <prefix>_run's entry (null checks, the segment dispatch, register
    saves) and its return path (restores, returns through leave, segments and run), <= 48
    instructions together. So -3 * (markers) <= batch - profiled <= 48, markers = steps run + 1.
    Measured (exit 0 / 1 / 2): M4 +11 / +1 / -12, M0+ +24 / +16 / +5."""
    m = compiled("int8", target)
    xs = m.quantize_input(X_TEST)
    picks = first_per_exit(m, xs)
    b = run_batch_on_target(m, xs[picks])
    for i, lv in enumerate(b.levels):
        for j, k in enumerate(picks):
            r = run_on_target(m, xs[k:k + 1], level=lv)
            assert r.exit == b.exit[i, j]
            markers = m.program.exits[r.exit].gate + 2
            diff = int(b.instructions[i, j]) - r.instructions
            assert -3 * markers <= diff <= 48, (lv, k, b.instructions[i, j], r.instructions)
    # at the top level the picks leave at exits 0, 1, 2: each deeper exit costs more
    top = b.instructions[-1]
    assert b.exit[-1].tolist() == [0, 1, 2]
    assert top[0] < top[1] < top[2], top
    # the same input capped at a lower level costs what that exit costs
    assert b.instructions[0, 2] < b.instructions[1, 2] < b.instructions[2, 2]


def test_counts_are_exact_and_deterministic():
    """Totals mode (one inline counter, main and the marker skipped) equals the per-PC mode of
    the same firmware summed over every function but main and the marker, interval by interval;
    the same batch run twice counts the same."""
    m = compiled("int8", "cortex-m4")
    xs = m.quantize_input(X_TEST)[:5]
    a, b = run_batch_on_target(m, xs), run_batch_on_target(m, xs)
    np.testing.assert_array_equal(a.instructions, b.instructions)
    assert a.elf == b.elf
    build = cross_build(m, batch=(len(xs), len(m.levels)))
    syms = build.symbols
    loads = {syms["adaptc_batch_inputs"][0]: xs.tobytes(),
             syms["adaptc_batch_levels"][0]: np.arange(len(m.levels), dtype="<i4").tobytes()}
    mark = next(arg for arg in emulator.batch_marks(build) if arg.startswith("mark="))
    with tempfile.TemporaryDirectory() as tmp:
        emulator.emulate(build.target, build.elf, loads, ["out=armstat.tsv", mark], Path(tmp))
        snaps = emulator._snapshots(Path(tmp) / "armstat.tsv")
    assert len(snaps) == 2 * a.instructions.size + 1        # + the snapshot at exit
    dis = emulator.Disassembly.of(build.elf, build.target.objdump_flags)
    skip = {pc for pc, (func, _, _) in dis.insns.items() if func in ("main", "adaptc_batch_marker")}
    for n, want in enumerate(a.instructions.reshape(-1)):
        c = emulator._interval(snaps[2 * n], snaps[2 * n + 1], dis, skip)
        assert c.instructions == want, n
        assert c.functions[f"{m.prefix}_run"] > 0 and "main" not in c.functions
        assert sum(emulator._interval(snaps[2 * n], snaps[2 * n + 1], dis, set()).functions[f] for f in
                   ("main", "adaptc_batch_marker")) > 0     # what the totals mode leaves out


def test_model_without_exits_and_bad_batches():
    m = adaptc.compile(KWS, target="cortex-m4")
    rng = np.random.default_rng(5)
    xs = rng.integers(-128, 128, (3, *m.input.shape), dtype=np.int8)
    b = run_batch_on_target(m, xs, levels=[0, 1])            # levels: ignored without exits
    assert b.levels == (0,) and b.exit is None and b.label is None
    assert b.outputs.shape == (1, 3, *m.output.shape)
    for k in range(3):
        np.testing.assert_array_equal(b.outputs[0, k], m.run(xs[k]))
    assert b.instructions.shape == (1, 3) and (b.instructions > 1_000_000).all()
    with pytest.raises(adaptc.InputError, match="a batch must have shape"):
        run_batch_on_target(m, xs[..., :-1])
    e = compiled("int8", "cortex-m4")
    with pytest.raises(adaptc.InputError, match="level 3 out of range"):
        run_batch_on_target(e, e.quantize_input(X_TEST[:2]), levels=[3])
    with pytest.raises(adaptc.InputError, match="must be int8"):
        run_batch_on_target(e, X_TEST[:2])
    with pytest.raises(adaptc.InputError, match="needs .* bytes of RAM"):
        run_batch_on_target(e, np.zeros((70_000, 1, 8, 8), np.int8))
