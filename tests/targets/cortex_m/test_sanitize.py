"""Every test model's generated C under AddressSanitizer and UndefinedBehaviorSanitizer.

Each model's C is built with ``host.SANITIZE_FLAGS`` (``-fsanitize=address,undefined
-fno-sanitize-recover=all -g -O1``, after the host build's strict flags) into a standalone
program whose ``main`` (``harness``) reads a deterministic input (``m.example_input()``) from a
file into a heap buffer of exactly its size, calls ``<prefix>_run`` with one exact-size heap
buffer per model output (``m.program.outputs``) -- or, for a model with exits, at every level with
a ``<prefix>_result`` -- and writes the outputs to a file. No Python in that process, so no
LD_PRELOAD. It must run clean (exit status 0, no sanitizer report) and write exactly what the
normal host build computes (``m.run``).

Models: tests/data/*.tflite and *.onnx, tests/data/zoo/*, tests/data/torch_rnn/*,
../shared/models/mlperf_tiny/*.tflite where that directory exists (files equal to one in
tests/data counted once) and the bundled digits_exits.onnx with its exits; for float models also
their int8 post-training quantization on random calibration data -- except the torchvision zoo
models, whose calibration takes 10-15 s each (tests/models/test_zoo.py quantizes them).
Measured on 2 cores: about 75 s for the whole file.

Also here: ``ADAPTC_SANITIZE=1``, which builds the host library of ``m.run`` with the same flags
(Python then needs the ASan runtime preloaded: ``host.sanitize_env()``) -- refused without it,
running clean with it, and stopping a process whose C writes out of bounds.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import adaptc
import adaptc.data
from adaptc.errors import ToolchainError
from adaptc.targets.cortex_m import host
from paths import DATA, ROOT

MLPERF = ROOT.parent / "shared" / "models" / "mlperf_tiny"
TORCHVISION = "tv_"          # zoo models left float-only (calibration too slow for this file)
TARGET = "cortex-m7"         # fits every zoo model (tests/models/test_zoo.py uses it too)
REPORT = ("AddressSanitizer", "LeakSanitizer", "runtime error:", "UndefinedBehaviorSanitizer")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _model_files() -> list[Path]:
    files = sorted([*DATA.glob("*.tflite"), *DATA.glob("*.onnx"), *(DATA / "zoo").glob("*.tflite"),
                    *(DATA / "zoo").glob("*.onnx"), *(DATA / "torch_rnn").glob("*.onnx")])
    seen = {_sha(p) for p in files}
    for p in sorted(MLPERF.glob("*.tflite")):
        if _sha(p) not in seen:
            files.append(p)
            seen.add(_sha(p))
    return files


def _is_float(path: Path) -> bool:
    """Whether the model file's first input is float32 (read from the file, nothing compiled)."""
    if path.suffix == ".onnx":
        import onnx

        return onnx.load(str(path), load_external_data=False).graph.input[0].type.tensor_type.elem_type == \
            onnx.TensorProto.FLOAT
    import tflite

    model = tflite.Model.GetRootAsModel(path.read_bytes(), 0)
    graph = model.Subgraphs(0)
    return graph.Tensors(graph.Inputs(0)).Type() == tflite.TensorType.FLOAT32


def _cases():
    """(id, how to compile) for every test model, float models also in int8."""
    out = []
    for p in _model_files():
        name = f"{p.parent.name}/{p.stem}"
        out.append((name, lambda p=p: adaptc.compile(p, target=TARGET)))
        if _is_float(p) and not p.stem.startswith(TORCHVISION):
            out.append((f"{name}-int8", lambda p=p: _ptq(p)))
    digits = adaptc.data.path("digits_exits.onnx")
    out.append(("data/digits_exits-exits", lambda: adaptc.compile(digits, target=TARGET, exits=True,
                                                                  thresholds=[0.9, 0.9])))
    out.append(("data/digits_exits-exits-int8", lambda: adaptc.compile(
        digits, target=TARGET, exits=True, thresholds=[0.9, 0.9], calibration=adaptc.data.digits()[0][:64])))
    return out


def _ptq(path: Path):
    """``path`` in int8: post-training quantization on 8 random N(0, 1) inputs (seeded)."""
    loaded = adaptc.load(path)
    cal = np.random.default_rng(0).standard_normal((8, *loaded.info.inputs[0].shape)).astype(np.float32)
    return adaptc.compile(loaded, target=TARGET, calibration=cal)


CASES = _cases()


def harness(prefix: str, input_bytes: int, output_bytes: list[int], levels: int = 0) -> str:
    """``main(argc, argv)``: reads ``input_bytes`` from argv[1] into a heap buffer of exactly that
    size, runs ``<prefix>_run`` and writes to argv[2] each output buffer in turn (exact-size heap
    buffers, one per output) -- or, with ``levels`` (a model with exits), the ``<prefix>_result``
    of level 0, 1, ... Exit status: ``<prefix>_run``'s first non-zero code, 2 on an I/O error."""
    if levels:
        call = f"""\
  for (int32_t level = 0; level < {levels}; ++level) {{
    {prefix}_result *res = calloc(1, sizeof *res);
    if (res == NULL) return 2;
    int rc = {prefix}_run(input, level, res);
    if (rc != 0) return rc;
    if (fwrite(res, sizeof *res, 1, out) != 1) return 2;
    free(res);
  }}"""
    else:
        allocs = "\n".join(f"  void *o{i} = malloc({n}u);\n  if (o{i} == NULL) return 2;"
                           for i, n in enumerate(output_bytes))
        args = "".join(f", o{i}" for i in range(len(output_bytes)))
        writes = "\n".join(f"  if (fwrite(o{i}, 1, {n}u, out) != {n}u) return 2;\n  free(o{i});"
                           for i, n in enumerate(output_bytes))
        call = f"""{allocs}
  int rc = {prefix}_run(input{args});
  if (rc != 0) return rc;
{writes}"""
    return f"""\
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "{prefix}.h"

int main(int argc, char **argv) {{
  if (argc != 3) return 2;
  void *input = malloc({input_bytes}u);
  FILE *in = fopen(argv[1], "rb");
  if (input == NULL || in == NULL || fread(input, 1, {input_bytes}u, in) != {input_bytes}u) return 2;
  fclose(in);
  FILE *out = fopen(argv[2], "wb");
  if (out == NULL) return 2;
{call}
  free(input);
  return fclose(out) == 0 ? 0 : 2;
}}
"""


def run_sanitized(files: dict[str, str], main: str, x: np.ndarray, work: Path) -> bytes:
    """Build ``files`` and ``main`` with the sanitizers, run the program on ``x`` and return what
    it wrote; fails the test on a build error, a non-zero exit status or a sanitizer report."""
    for name, text in {**files, "harness.c": main}.items():
        (work / name).write_text(text)
    sources = ["harness.c", *(n for n in files if n.endswith(".c"))]
    cmd = [host.host_cc(), *host.CFLAGS, *host.SANITIZE_FLAGS, *sources, "-o", "harness", "-lm"]
    built = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-3000:]
    (work / "x.bin").write_bytes(x.tobytes())
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS")}
    env.update(ASAN_OPTIONS="detect_leaks=1:halt_on_error=1", UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
    r = subprocess.run(["./harness", "x.bin", "y.bin"], cwd=work, capture_output=True, text=True, env=env,
                       timeout=300)
    report = [w for w in REPORT if w in r.stderr]
    assert r.returncode == 0 and not report, f"exit status {r.returncode}, {report}:\n{r.stderr[-4000:]}"
    return (work / "y.bin").read_bytes()


@pytest.mark.parametrize("make", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_generated_c_runs_clean_under_sanitizers(make, tmp_path):
    m = make()
    prog = m.program
    x = m.example_input()
    if prog.exits:
        levels = len(prog.exits)
        raw = run_sanitized(m.host_files or m.files, harness(m.prefix, x.nbytes, [], levels), x, tmp_path)
        got = np.frombuffer(raw, m.result_dtype())
        assert len(got) == levels
        for level, res in enumerate(got):
            want = m.run(x, level=level)
            assert (int(res["label"]), int(res["exit"])) == (want.label, want.exit)
            assert res["confidence"] == want.confidence
            np.testing.assert_array_equal(res["logits"].reshape(want.logits.shape), want.logits)
        return
    sizes = [prog.tensors[i].nbytes for i in prog.outputs]
    raw = run_sanitized(m.host_files or m.files, harness(m.prefix, x.nbytes, sizes), x, tmp_path)
    want = m.run(x)
    want = want if isinstance(want, list) else [want]
    assert len(raw) == sum(sizes) and len(want) == len(sizes)
    at = 0
    for w, n in zip(want, sizes):
        np.testing.assert_array_equal(np.frombuffer(raw[at:at + n], w.dtype).reshape(w.shape), w)
        at += n


def test_every_test_model_is_covered():
    names = {c[0] for c in CASES}
    for p in [*DATA.glob("*.tflite"), *DATA.glob("*.onnx"), *(DATA / "zoo").glob("*.*"),
              *(DATA / "torch_rnn").glob("*")]:
        if p.suffix in (".tflite", ".onnx"):
            assert f"{p.parent.name}/{p.stem}" in names, p


# A "model" whose run writes one byte past its output: the harness must report it.
BUG_H = "#include <stdint.h>\nint bug_run(const int8_t *input, int8_t *output);\n"
BUG_C = textwrap.dedent("""\
    #include "bug.h"
    int bug_run(const int8_t *input, int8_t *output) {
      for (int i = 0; i <= 4; ++i) output[i] = (int8_t)(input[i] + 1);
      return 0;
    }
""")


def test_the_harness_reports_an_overflow(tmp_path):
    with pytest.raises(AssertionError, match="heap-buffer-overflow"):
        run_sanitized({"bug.h": BUG_H, "bug.c": BUG_C}, harness("bug", 5, [4]), np.zeros(5, np.int8), tmp_path)


def test_sanitized_host_build_needs_the_asan_runtime(monkeypatch, tmp_path):
    monkeypatch.setenv("ADAPTC_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv(host.SANITIZE_ENV, "1")
    if host.asan_loaded():
        pytest.skip("this process runs with the ASan runtime")
    with pytest.raises(ToolchainError, match="LD_PRELOAD=.*libasan"):
        host.build_shared({"bug.h": BUG_H, "bug.c": BUG_C}, "bug.c")


# Under ADAPTC_SANITIZE=1 with the ASan runtime preloaded: a real model through adaptc.compile and
# m.run (its output printed), then a library that writes past its output buffer.
SCRIPT = textwrap.dedent("""\
    import sys
    import numpy as np
    import adaptc
    from adaptc.targets.cortex_m import host

    m = adaptc.compile(sys.argv[1], target="cortex-m4")
    print(m.run(np.load(sys.argv[2])).tobytes().hex(), flush=True)
    files = {"bug.h": open(sys.argv[3]).read(), "bug.c": open(sys.argv[4]).read()}
    lib = host.HostModel(host.build_shared(files, "bug.c"), "bug")
    lib(np.zeros(5, np.int8), np.zeros(4, np.int8))
    print("not stopped", flush=True)
""")


def test_adaptc_sanitize_runs_a_model_clean_and_stops_an_overflow(tmp_path):
    path = DATA / "torch_rnn" / "gru.onnx"
    m = adaptc.compile(path, target="cortex-m4")
    x = m.example_input()
    np.save(tmp_path / "x.npy", x)
    for name, text in (("script.py", SCRIPT), ("bug.h", BUG_H), ("bug.c", BUG_C)):
        (tmp_path / name).write_text(text)
    env = {**os.environ, **host.sanitize_env(), "ADAPTC_CACHE": str(tmp_path / "cache")}
    r = subprocess.run([sys.executable, "script.py", str(path), "x.npy", "bug.h", "bug.c"], cwd=tmp_path,
                       capture_output=True, text=True, env=env, timeout=300)
    lines = r.stdout.split()
    assert lines and bytes.fromhex(lines[0]) == m.run(x).tobytes(), r.stderr[-4000:]   # ran clean, same output
    assert r.returncode != 0 and "not stopped" not in r.stdout
    assert "AddressSanitizer: heap-buffer-overflow" in r.stderr and "bug_run" in r.stderr, r.stderr[-4000:]
    assert r.stderr.count("ERROR: AddressSanitizer") == 1 and "runtime error:" not in r.stderr  # nothing else
    libs = [p.read_bytes() for p in (tmp_path / "cache" / "host").glob("*/libmodel.so")]
    assert len(libs) == 2 and all(b"__asan_report" in lib for lib in libs)             # both built sanitized
