"""Hostile model and tensor names cannot break the generated C.

Names reach the C as the symbol prefix (``<prefix>_run``, ``<PREFIX>_*`` macros, the include
guard, file names) and inside comments (banner, I/O and memory-plan comments). Each case
compiles strictly, runs, and matches TFLite Micro bit-exactly.
"""
from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess

import numpy as np
import pytest

import adaptc.api as api
import tflite_ops as T
from adaptc.loader import LoadedModel, load

GCC = shutil.which("gcc")
MAKE = shutil.which("make")
STRICT = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]
PREFIX_RE = re.compile(r"^[a-z_][a-z0-9_]*$")

C_KEYWORDS = set("""auto break case char const continue default do double else enum extern float for
goto if inline int long register restrict return short signed sizeof static struct switch typedef
union unsigned void volatile while _Bool _Complex _Imaginary""".split())

HOSTILE_MODEL_NAMES = [
    "1 bad-name */ #include <evil.h>",
    "int",
    "INT",
    "??/",
    "main",
    "x" * 300,
    "модель",
    "",
    "_",
    "__reserved",
    "a\nb\\",
    "#define x 1",
    "arena",
    "input",
    "output",
    "NULL",
    "s0",
    "conv2d_s8",
    "int8_t",
    "9" * 60,
    "adaptc_kernels_common",
]

HOSTILE_TENSOR_NAMES = ["*/ int x; /*", "a\nb", "??/", "\\", "модель", "x" * 300, "1st input", "return"]

IN_Q, W_Q, OUT_Q = T.QParams(0.05, -3), T.QParams(np.full(3, 0.01, np.float32), 0), T.QParams(0.1, 2)


def _conv_model(input_name="input", filter_name="filter", bias_name="bias", output_name="output") -> bytes:
    """int8 CONV_2D 1x6x6x2 -> 1x6x6x3 with caller-chosen tensor names."""
    rng = np.random.default_rng(7)
    mb = T._ModelBuilder("adaptc test: names")
    wq = T.QParams(W_Q.scales(), np.zeros(3, np.int64), 0)
    x = mb.input((1, 6, 6, 2), np.int8, input_name, IN_Q)
    wt = mb.const(rng.integers(-127, 128, (3, 3, 3, 2)).astype(np.int8), filter_name, wq)
    bt = mb.const(rng.integers(-500, 500, 3).astype(np.int32), bias_name, T._bias_q(IN_Q, wq))
    y = mb.output((1, 6, 6, 3), np.int8, output_name, OUT_Q)
    mb.op(T._OP.CONV_2D, 3, [x, wt, bt], [y], T._OPT.Conv2DOptions, T._conv_opts(1, 1, "SAME", "NONE"))
    return mb.finish()


@pytest.fixture(scope="module")
def conv(tmp_path_factory):
    model = _conv_model()
    path = tmp_path_factory.mktemp("names") / "conv.tflite"
    path.write_bytes(model)
    rng = np.random.default_rng(11)
    xs = [rng.integers(-128, 128, (1, 6, 6, 2), dtype=np.int8) for _ in range(3)]
    return load(path), xs, [T.run_tflm(model, x) for x in xs]


def _check(m, xs, wants, tmp_path, make=False):
    prefix = m.prefix
    assert PREFIX_RE.match(prefix), prefix
    assert prefix not in C_KEYWORDS and prefix != "main"
    assert len(prefix) <= 63     # C99: 63 significant initial characters in an internal identifier
    assert set(m.files) == {f"{prefix}.h", f"{prefix}.c"}
    assert f"int {prefix}_run(" in m.files[f"{prefix}.h"]

    if GCC is not None:
        for name, text in m.files.items():
            (tmp_path / name).write_text(text)
        proc = subprocess.run([GCC, *STRICT, "-c", f"{prefix}.c", "-o", f"{prefix}.o"], cwd=tmp_path,
                              capture_output=True, text=True)
        assert proc.returncode == 0 and proc.stderr == "", proc.stderr
        # the header alone is a valid translation unit, twice (include guard)
        (tmp_path / "twice.c").write_text(f'#include "{prefix}.h"\n#include "{prefix}.h"\n'
                                         f"int (*f)(const int8_t *, int8_t *) = {prefix}_run;\n")
        proc = subprocess.run([GCC, *STRICT, "-c", "twice.c", "-o", "twice.o"], cwd=tmp_path,
                              capture_output=True, text=True)
        assert proc.returncode == 0 and proc.stderr == "", proc.stderr
        if make and MAKE is not None:   # the firmware ELF (cross compiler installed) or the host library
            goal = [] if shutil.which("arm-none-eabi-gcc") else ["host"]
            proc = subprocess.run([MAKE, *goal], cwd=m.export(tmp_path / "fw"), capture_output=True, text=True)
            assert proc.returncode == 0 and proc.stderr == "", proc.stdout + proc.stderr

    for i, (x, want) in enumerate(zip(xs, wants)):
        np.testing.assert_array_equal(m.run(x), want, err_msg=f"input #{i}")


def _model_name_params():
    return [pytest.param(n, id=repr(n)[:40]) for n in HOSTILE_MODEL_NAMES]


@pytest.mark.parametrize("hostile", _model_name_params())
def test_hostile_model_name_in_info(conv, hostile, tmp_path):
    loaded, xs, wants = conv
    renamed = LoadedModel(loaded.mod, dataclasses.replace(loaded.info, name=hostile))
    m = api.compile(renamed, name=None)
    _check(m, xs, wants, tmp_path, make=True)
    assert m.report()["model"] == hostile


@pytest.mark.parametrize("hostile", [p for p in _model_name_params() if p.values[0] != ""])
def test_hostile_name_argument(conv, hostile, tmp_path):
    """(name='' means 'no name': the file stem, covered above.)"""
    loaded, xs, wants = conv
    m = api.compile(loaded, name=hostile)
    _check(m, xs, wants, tmp_path)


@pytest.mark.parametrize("hostile", HOSTILE_TENSOR_NAMES, ids=[repr(n)[:30] for n in HOSTILE_TENSOR_NAMES])
def test_hostile_tensor_names(hostile, tmp_path):
    """Tensor names of the TFLite file: the input's name becomes the Relax parameter's name."""
    model = _conv_model(input_name=hostile, filter_name=hostile + "w", bias_name=hostile + "b",
                        output_name=hostile + "o")
    path = tmp_path / "named.tflite"
    path.write_bytes(model)
    loaded = load(path)
    assert loaded.info.inputs[0].name == hostile
    rng = np.random.default_rng(13)
    xs = [rng.integers(-128, 128, (1, 6, 6, 2), dtype=np.int8) for _ in range(2)]
    wants = [T.run_tflm(model, x) for x in xs]
    m = api.compile(loaded)
    build = tmp_path / "build"
    build.mkdir()
    _check(m, xs, wants, build)
    for x, want in zip(xs, wants):
        np.testing.assert_array_equal(m.reference(x), want)


def test_distinct_hostile_names_in_one_process(conv, tmp_path):
    """Two models whose names map to the same prefix still run side by side (separate host builds)."""
    loaded, xs, wants = conv
    a = api.compile(loaded, name="my model")
    b = api.compile(loaded, name="my-model")
    assert a.prefix == b.prefix == "my_model"
    np.testing.assert_array_equal(a.run(xs[0]), wants[0])
    np.testing.assert_array_equal(b.run(xs[0]), wants[0])
