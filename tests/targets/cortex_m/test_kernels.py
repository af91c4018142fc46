"""Reference C kernels (templates/kernels/) against NumPy references.

The kernels are compiled once per module into a shared library together with
a generated wrapper file that exports one non-static ``test_<kernel>``
function per kernel (the param-struct fields as scalar arguments), and called
through ctypes.  int8 results must be bit-exact with the TFLite reference
semantics implemented in kernel_ref.py; float32 results agree with float64
NumPy to ~1e-5.  Where the tflite_micro package is installed, single-op int8
models are also run through the TFLite Micro interpreter and compared
bit-exactly with the C kernels (skipped otherwise).
"""

from __future__ import annotations

import ctypes
import math
import re
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

import kernel_ref as ref  # noqa: E402
import paths

KERNEL_DIR = paths.KERNELS
CC = shutil.which("gcc") or shutil.which("cc")
CFLAGS = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-Wvla"]

pytestmark = pytest.mark.skipif(CC is None, reason="no C compiler on PATH")

INT32_MIN, INT32_MAX = ref.INT32_MIN, ref.INT32_MAX

# ----------------------------------------------------------------------------
# The interface (spec): param structs and kernel signatures
# ----------------------------------------------------------------------------

I32, F32, I32X4, PI32, PI8 = "int32_t", "float", "int32_t[4]", "const int32_t *", "const int8_t *"

_CONV_GEOMETRY = ["batches", "in_h", "in_w", "in_c", "out_h", "out_w", "out_c", "k_h", "k_w",
                  "stride_h", "stride_w", "dil_h", "dil_w", "pad_top", "pad_left"]
_POOL_GEOMETRY = ["batches", "in_h", "in_w", "channels", "out_h", "out_w", "k_h", "k_w",
                  "stride_h", "stride_w", "pad_top", "pad_left"]
_PAD = [("in_dims", I32X4), ("out_dims", I32X4), ("before", I32X4)]


def _ints(names):
    return [(n, I32) for n in names]


STRUCTS = {
    "conv2d_s8_params": _ints(_CONV_GEOMETRY + ["input_offset", "output_offset", "act_min", "act_max"]),
    "depthwise_conv2d_s8_params": _ints(
        _CONV_GEOMETRY + ["input_offset", "output_offset", "act_min", "act_max", "depth_multiplier"]),
    "fully_connected_s8_params": _ints(["batches", "in_features", "out_features", "input_offset",
                                        "filter_offset", "output_offset", "act_min", "act_max"]),
    "add_s8_params": _ints(["size", "left_shift", "input1_offset", "input1_multiplier",
                            "input1_shift", "input2_offset", "input2_multiplier", "input2_shift",
                            "output_offset", "output_multiplier", "output_shift", "act_min",
                            "act_max"]),
    "pool_s8_params": _ints(_POOL_GEOMETRY + ["act_min", "act_max"]),
    "softmax_s8_params": [("rows", I32), ("depth", I32), ("exp_table", PI32)],
    "pad_params": _PAD + [("pad_value", I32)],
    "lut_s8_params": [("size", I32), ("table", PI8)],
    "conv2d_f32_params": _ints(_CONV_GEOMETRY) + [("act_min", F32), ("act_max", F32)],
    "depthwise_conv2d_f32_params": _ints(_CONV_GEOMETRY) + [("act_min", F32), ("act_max", F32),
                                                            ("depth_multiplier", I32)],
    "fully_connected_f32_params": _ints(["batches", "in_features", "out_features"])
    + [("act_min", F32), ("act_max", F32)],
    "add_f32_params": [("size", I32), ("act_min", F32), ("act_max", F32)],
    "pool_f32_params": _ints(_POOL_GEOMETRY) + [("act_min", F32), ("act_max", F32)],
    "softmax_f32_params": [("rows", I32), ("depth", I32), ("beta", F32)],
    "pad_f32_params": _PAD + [("pad_value", F32)],
    "clamp_f32_params": [("size", I32), ("act_min", F32), ("act_max", F32)],
    "transpose_params": [_PAD[0], ("perm", _PAD[0][1])],   # behaviour: tests/targets/test_transpose.py
    "gate_margin_s8_params": _ints(["classes", "threshold"]),
    "gate_max_prob_s8_params": _ints(["classes", "threshold"]) + [("exp_table", PI32)],
    "gate_entropy_s8_params": _ints(["classes", "threshold", "scale_q16"]) + [("exp_table", PI32),
                                                                             ("ln_table", PI32)],
    "gate_f32_params": [("classes", I32), ("threshold", F32)],
}


_S8_CONV_ARGS = [("input", "const int8_t *"), ("filter", "const int8_t *"),
                 ("bias", "const int32_t *"), ("out_mult", "const int32_t *"),
                 ("out_shift", "const int32_t *"), ("output", "int8_t *")]
_F32_CONV_ARGS = [("input", "const float *"), ("filter", "const float *"),
                  ("bias", "const float *"), ("output", "float *")]

# kernel -> (param struct, pointer arguments after the params pointer)
KERNELS = {
    "conv2d_s8": ("conv2d_s8_params", _S8_CONV_ARGS),
    "depthwise_conv2d_s8": ("depthwise_conv2d_s8_params", _S8_CONV_ARGS),
    "fully_connected_s8": ("fully_connected_s8_params",
                           [("input", "const int8_t *"), ("weights", "const int8_t *")]
                           + _S8_CONV_ARGS[2:]),
    "add_s8": ("add_s8_params", [("input1", "const int8_t *"), ("input2", "const int8_t *"),
                                 ("output", "int8_t *")]),
    "avg_pool_s8": ("pool_s8_params", [("input", "const int8_t *"), ("output", "int8_t *")]),
    "max_pool_s8": ("pool_s8_params", [("input", "const int8_t *"), ("output", "int8_t *")]),
    "softmax_s8": ("softmax_s8_params", [("input", "const int8_t *"), ("output", "int8_t *")]),
    "pad_s8": ("pad_params", [("input", "const int8_t *"), ("output", "int8_t *")]),
    "lut_s8": ("lut_s8_params", [("input", "const int8_t *"), ("output", "int8_t *")]),
    "conv2d_f32": ("conv2d_f32_params", _F32_CONV_ARGS),
    "depthwise_conv2d_f32": ("depthwise_conv2d_f32_params", _F32_CONV_ARGS),
    "fully_connected_f32": ("fully_connected_f32_params",
                            [("input", "const float *"), ("weights", "const float *"),
                             ("bias", "const float *"), ("output", "float *")]),
    "add_f32": ("add_f32_params", [("input1", "const float *"), ("input2", "const float *"),
                                   ("output", "float *")]),
    "avg_pool_f32": ("pool_f32_params", [("input", "const float *"), ("output", "float *")]),
    "max_pool_f32": ("pool_f32_params", [("input", "const float *"), ("output", "float *")]),
    "softmax_f32": ("softmax_f32_params", [("input", "const float *"), ("output", "float *")]),
    "pad_f32": ("pad_f32_params", [("input", "const float *"), ("output", "float *")]),
    "clamp_f32": ("clamp_f32_params", [("input", "const float *"), ("output", "float *")]),
    "transpose_s8": ("transpose_params", [("input", "const int8_t *"), ("output", "int8_t *")]),
    "transpose_f32": ("transpose_params", [("input", "const float *"), ("output", "float *")]),
    **{f"gate_{c}_s8": (f"gate_{c}_s8_params", [("logits", "const int8_t *"), ("confidence", "int32_t *")])
       for c in ("max_prob", "margin", "entropy")},
    **{f"gate_{c}_f32": ("gate_f32_params", [("logits", "const float *"), ("confidence", "float *")])
       for c in ("max_prob", "margin", "entropy")},
}

_NP_DTYPES = {"int8_t": np.int8, "int32_t": np.int32, "float": np.float32, "uint32_t": np.uint32}

# ----------------------------------------------------------------------------
# Build: common.h + all kernels + generated wrappers -> shared library
# ----------------------------------------------------------------------------

_HELPER_WRAPPERS = r"""
void test_srdhm(int32_t n, const int32_t *a, const int32_t *b, int32_t *out)
{ int32_t i; for (i = 0; i < n; ++i) out[i] = adaptc_srdhm(a[i], b[i]); }
void test_rdbpot(int32_t n, const int32_t *x, const int32_t *e, int32_t *out)
{ int32_t i; for (i = 0; i < n; ++i) out[i] = adaptc_rdbpot(x[i], e[i]); }
void test_mbqm(int32_t n, const int32_t *x, const int32_t *m, const int32_t *s, int32_t *out)
{ int32_t i; for (i = 0; i < n; ++i) out[i] = adaptc_mbqm(x[i], m[i], s[i]); }
void test_clamp_i32(int32_t n, const int32_t *x, int32_t lo, int32_t hi, int32_t *out)
{ int32_t i; for (i = 0; i < n; ++i) out[i] = adaptc_clamp_i32(x[i], lo, hi); }
void test_sat_shift_left(int32_t n, const int32_t *x, const int32_t *e, int32_t *out)
{ int32_t i; for (i = 0; i < n; ++i) out[i] = adaptc_sat_shift_left(x[i], e[i]); }
void test_rounding_half_sum(int32_t n, const int32_t *a, const int32_t *b, int32_t *out)
{ int32_t i; for (i = 0; i < n; ++i) out[i] = adaptc_rounding_half_sum(a[i], b[i]); }
void test_clz_u32(int32_t n, const uint32_t *x, int32_t *out)
{ int32_t i; for (i = 0; i < n; ++i) out[i] = adaptc_clz_u32(x[i]); }
void test_one_over_one_plus_x(int32_t n, const int32_t *a, int32_t *out)
{ int32_t i; for (i = 0; i < n; ++i) out[i] = adaptc_one_over_one_plus_x_for_x_in_0_1(a[i]); }
"""

_HELPER_SIGS = {
    "srdhm": ["n", "p", "p", "p"],
    "rdbpot": ["n", "p", "p", "p"],
    "mbqm": ["n", "p", "p", "p", "p"],
    "clamp_i32": ["n", "p", "n", "n", "p"],
    "sat_shift_left": ["n", "p", "p", "p"],
    "rounding_half_sum": ["n", "p", "p", "p"],
    "clz_u32": ["n", "p", "p"],
    "one_over_one_plus_x": ["n", "p", "p"],
}


VARIANT_SUFFIXES = ("_dsp", "_mve")   # optimized drop-ins: tests/targets/test_kernel_variants.py
PACKED_SUFFIX = "_packed"             # packed-weight kernels: test_kernel_variants.py too (they
                                      # take their weights from the kernel table's packing)


def kernel_files() -> list[Path]:
    """Every kernel source (reference kernels and optimized drop-ins)."""
    return sorted(p for p in KERNEL_DIR.glob("*.c"))


def reference_kernel_files() -> list[Path]:
    """The kernels this file calls directly (through generated wrappers)."""
    return [p for p in kernel_files() if not p.stem.endswith(VARIANT_SUFFIXES + (PACKED_SUFFIX,))]


def host_kernel_files() -> list[Path]:
    """Kernels that build with the host compiler: all but the MVE ones (Helium cores only)."""
    return [p for p in kernel_files() if not p.stem.endswith("_mve")]


def kernel_headers(kernel: str) -> list[str]:
    """Headers an optimized kernel needs after common.h (what its KernelCall lists)."""
    if kernel.endswith("_dsp"):
        return ["dsp.h"]
    if kernel.endswith("_mve"):
        return ["dsp.h", "mve.h"]
    return []


def _wrapper_source(kernel: str) -> str:
    struct, args = KERNELS[kernel]
    params, body = [], [f"    {struct} p;"]
    for name, t in STRUCTS[struct]:
        if t == I32X4:
            params.append(f"const int32_t *{name}")
            body.append(f"    {{ int i; for (i = 0; i < 4; ++i) p.{name}[i] = {name}[i]; }}")
        else:
            params.append(f"{t}{name}" if t.endswith("*") else f"{t} {name}")
            body.append(f"    p.{name} = {name};")
    params += [f"{t}{n}" for n, t in args]
    call = f"    {kernel}(&p, {', '.join(n for n, _ in args)});"
    head = f"void test_{kernel}({', '.join(params)});\n"
    return head + f"void test_{kernel}({', '.join(params)})\n{{\n" + "\n".join(body + [call]) + "\n}\n"


def translation_unit(kernels: list[str], extra: str = "") -> str:
    """What the code generator emits: common.h, the headers the kernels need, each kernel file."""
    headers = list(dict.fromkeys(h for k in kernels for h in kernel_headers(k)))
    parts = [(KERNEL_DIR / name).read_text() for name in ["common.h", *headers]]
    parts += [(KERNEL_DIR / f"{k}.c").read_text() for k in kernels]
    return "\n".join(parts) + "\n" + extra


def _compile(src: str, out: Path, extra_flags: list[str], libs: tuple[str, ...] = ()):
    c_file = out.with_suffix(".c")
    c_file.write_text(src)
    return subprocess.run([CC, *CFLAGS, *extra_flags, str(c_file), "-o", str(out), *libs],
                          capture_output=True, text=True)


def _seed(case_id: str) -> int:
    return zlib.crc32(case_id.encode())


class KernelLib:
    def __init__(self, path: Path):
        self.dll = ctypes.CDLL(str(path))
        for kernel, (struct, args) in KERNELS.items():
            fn = getattr(self.dll, f"test_{kernel}")
            argtypes = []
            for _, t in STRUCTS[struct]:
                argtypes.append({I32: ctypes.c_int32, F32: ctypes.c_float}.get(t, ctypes.c_void_p))
            argtypes += [ctypes.c_void_p] * len(args)
            fn.argtypes, fn.restype = argtypes, None
        for name, sig in _HELPER_SIGS.items():
            fn = getattr(self.dll, f"test_{name}")
            fn.argtypes = [ctypes.c_int32 if s == "n" else ctypes.c_void_p for s in sig]
            fn.restype = None

    @staticmethod
    def _ptr(a, ctype: str):
        if a is None:
            return None
        base = ctype.replace("const", "").replace("*", "").strip()
        assert isinstance(a, np.ndarray) and a.dtype == _NP_DTYPES[base], (ctype, a.dtype)
        assert a.flags.c_contiguous
        return a.ctypes.data_as(ctypes.c_void_p)

    def run(self, kernel: str, params: dict, out_shape, **arrays) -> np.ndarray:
        """Call kernel; `out_shape` is the output shape.  The output buffer has a
        guard zone that must stay untouched."""
        struct, args = KERNELS[kernel]
        keep, cargs = [], []
        for name, t in STRUCTS[struct]:
            v = params[name]
            if t == I32X4:
                a = np.ascontiguousarray(v, dtype=np.int32)
                assert a.shape == (4,)
                keep.append(a)
                cargs.append(self._ptr(a, "int32_t *"))
            elif t in (PI32, PI8):
                keep.append(v)
                cargs.append(self._ptr(v, t))
            elif t == I32:
                assert INT32_MIN <= int(v) <= INT32_MAX
                cargs.append(int(v))
            else:
                cargs.append(float(v))
        out = None
        guard = 64
        for name, t in args:
            if t.startswith("const"):
                cargs.append(self._ptr(arrays[name], t))
            else:
                dt = _NP_DTYPES[t.replace("*", "").strip()]
                n = int(np.prod(out_shape))
                buf = np.empty(n + guard, dtype=dt)
                buf.view(np.uint8)[:] = 0xA5
                out = buf
                cargs.append(self._ptr(buf, t))
        getattr(self.dll, f"test_{kernel}")(*cargs)
        tail = out[-guard:].view(np.uint8)
        assert np.all(tail == 0xA5), f"{kernel} wrote past the end of its output"
        return out[:-guard].reshape(out_shape).copy()

    def helper(self, name: str, *arrays_and_ints) -> np.ndarray:
        sig = _HELPER_SIGS[name]
        n = None
        keep, cargs = [], []
        for s, v in zip(sig[1:-1], arrays_and_ints):
            if s == "n":
                cargs.append(int(v))
            else:
                a = np.ascontiguousarray(v, dtype=np.uint32 if name == "clz_u32" else np.int32)
                keep.append(a)
                n = a.size if n is None else n
                assert a.size == n
                cargs.append(a.ctypes.data_as(ctypes.c_void_p))
        out = np.empty(n, dtype=np.int32)
        getattr(self.dll, f"test_{name}")(n, *cargs, out.ctypes.data_as(ctypes.c_void_p))
        return out.astype(np.int64)


@pytest.fixture(scope="module")
def lib(tmp_path_factory) -> KernelLib:
    kernels = list(KERNELS)
    assert sorted(f"{k}.c" for k in kernels) == sorted(p.name for p in reference_kernel_files()), \
        "every reference kernel file must be covered by a test wrapper"
    src = translation_unit(kernels, _HELPER_WRAPPERS + "\n".join(_wrapper_source(k) for k in kernels))
    so = tmp_path_factory.mktemp("kernels") / "libadaptc_kernels.so"
    r = _compile(src, so, ["-shared", "-fPIC"], ("-lm",))
    assert r.returncode == 0, r.stderr
    return KernelLib(so)


# ----------------------------------------------------------------------------
# Source-level checks: interface, self-containment, portability rules
# ----------------------------------------------------------------------------


def _strip_comments(s: str) -> str:
    return re.sub(r"/\*.*?\*/", " ", s, flags=re.S)


def test_param_structs_match_spec():
    text = _strip_comments((KERNEL_DIR / "common.h").read_text())
    found = {}
    for body, name in re.findall(r"typedef\s+struct\s*\{(.*?)\}\s*(\w+)\s*;", text, flags=re.S):
        fields = []
        for decl in body.split(";"):
            decl = " ".join(decl.split())
            if not decl:
                continue
            m = re.fullmatch(r"(const )?(\w+) (\*)?\s*(\w+)(\[4\])?", decl)
            assert m, decl
            const, base, star, fname, arr = m.groups()
            t = f"{const or ''}{base}{' *' if star else ''}{arr or ''}"
            fields.append((fname, t))
        found[name] = fields
    for struct, fields in STRUCTS.items():
        assert found.get(struct) == fields, struct
    assert re.search(r"typedef\s+pad_params\s+pad_s8_params\s*;", text)


@pytest.mark.parametrize("kernel", list(KERNELS))
def test_kernel_signature_matches_spec(kernel):
    struct, args = KERNELS[kernel]
    text = _strip_comments((KERNEL_DIR / f"{kernel}.c").read_text())
    m = re.search(rf"static\s+void\s+{kernel}\s*\((.*?)\)\s*\{{", text, flags=re.S)
    assert m, f"no `static void {kernel}(...)` definition"
    got = [" ".join(p.split()) for p in m.group(1).split(",")]
    want = [f"const {struct} *p"] + [f"{t}{n}" for n, t in args]
    assert got == want
    # no recursion: the kernel name appears once (its definition)
    assert len(re.findall(rf"\b{kernel}\s*\(", text)) == 1


def _keep_used(kernels):
    refs = " ".join(f"(void){k};" for k in kernels)
    return f"void adaptc_keep(void);\nvoid adaptc_keep(void) {{ {refs} }}\n"


@pytest.mark.parametrize("path", host_kernel_files(), ids=lambda p: p.name)
def test_kernel_compiles_alone_with_common_h(path, tmp_path):
    """common.h + one kernel file: the kernel files do not depend on each other;
    every function is static (the object defines no global symbol but ours)."""
    kernel = path.stem
    src = translation_unit([kernel], _keep_used([kernel]))
    obj = tmp_path / f"{kernel}.o"
    r = _compile(src, obj, ["-pedantic", "-c"])
    assert r.returncode == 0, r.stderr
    nm = shutil.which("nm")
    if nm:
        syms = subprocess.run([nm, "-g", "--defined-only", str(obj)], capture_output=True,
                              text=True, check=True).stdout.splitlines()
        assert [line.split()[-1] for line in syms if line.strip()] == ["adaptc_keep"], syms


def test_common_h_alone_and_all_kernels_together(tmp_path):
    r = _compile(translation_unit([], "void adaptc_keep(void);\nvoid adaptc_keep(void) {}\n"),
                 tmp_path / "common.o", ["-pedantic", "-c"])
    assert r.returncode == 0, r.stderr
    ks = [p.stem for p in host_kernel_files()]
    r = _compile(translation_unit(ks, _keep_used(ks)), tmp_path / "all.o",
                 ["-pedantic", "-Wshadow", "-Wconversion", "-c"])
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("path", kernel_files() + sorted(KERNEL_DIR.glob("*.h")), ids=lambda p: p.name)
def test_portability_rules(path):
    text = path.read_text()
    code = _strip_comments(text)
    assert not re.search(r"\b(malloc|calloc|realloc|free|alloca)\s*\(", code)
    if "_s8" in path.stem or path.name in ("dsp.h", "mve.h"):
        assert not re.search(r"\b(float|double)\b", text), "no floating point on int8 paths"
        assert "<math.h>" not in text
    # types: fixed-width only (no plain int/long/short/unsigned in declarations)
    assert not re.search(r"\b(long|short|unsigned|signed)\b", code)
    assert not re.search(r"(?<![\w.])int\s+\w", code.replace("int32_t", "").replace("int64_t", "")
                         .replace("int8_t", "").replace("uint32_t", ""))
    if path.suffix == ".c":
        assert text.lstrip().startswith("/*"), "each kernel file starts with a comment"
        header = text[: text.index("*/")]
        # what it mirrors: a TFLite reference kernel, or for adaptc's own ops their definition
        assert "TFLite" in header or "Definition:" in header, "header comment names neither TFLite nor a Definition"
        for word in ("Layout", "Arithmetic"):
            assert word in header, f"header comment lacks {word!r}"
        # only one definition per file besides the kernel: no other function
        assert re.findall(r"^static\s+void\s+(\w+)", code, flags=re.M) == [path.stem]


# ----------------------------------------------------------------------------
# Fixed-point helpers
# ----------------------------------------------------------------------------

_EDGE = np.array([INT32_MIN, INT32_MIN + 1, INT32_MIN + 2, -(2**30) - 1, -(2**30), -(2**30) + 1,
                  -65537, -65536, -257, -256, -128, -3, -2, -1, 0, 1, 2, 3, 127, 255, 256,
                  65535, 65536, 2**30 - 1, 2**30, 2**30 + 1, INT32_MAX - 1, INT32_MAX],
                 dtype=np.int64)


def _edge_and_random(rng, n_random):
    r = rng.integers(INT32_MIN, INT32_MAX, size=n_random, endpoint=True)
    small = rng.integers(-70000, 70000, size=n_random // 4)
    return np.unique(np.concatenate([_EDGE, r, small]))


def test_scalar_references_self_consistent():
    # the mathematical scalar formulations against a few hand-computed values
    assert ref.srdhm_scalar(INT32_MIN, INT32_MIN) == INT32_MAX
    assert ref.srdhm_scalar(INT32_MAX, INT32_MAX) == INT32_MAX - 1
    assert ref.srdhm_scalar(2**30, 2**30) == 2**29
    assert ref.srdhm_scalar(1, 2**30) == 1 and ref.srdhm_scalar(-1, 2**30) == 0  # ties -> +inf
    assert ref.rdbpot_scalar(5, 1) == 3 and ref.rdbpot_scalar(-5, 1) == -3  # ties away from 0
    assert ref.rdbpot_scalar(-6, 2) == -2 and ref.rdbpot_scalar(-7, 2) == -2
    assert ref.rdbpot_scalar(INT32_MIN, 31) == -1 and ref.rdbpot_scalar(INT32_MAX, 31) == 1
    assert ref.rdbpot_scalar(2**30 - 1, 31) == 0 and ref.rdbpot_scalar(-(2**30), 31) == -1
    assert ref.mbqm_scalar(1000, 2**30, -1) == 250
    assert ref.quantize_multiplier(0.5) == (2**30, 0)
    assert ref.quantize_multiplier(1.0) == (2**30, 1)
    assert ref.quantize_multiplier(0.75) == (3 * 2**29, 0)
    assert ref.quantize_multiplier(2.0**-40) == (0, 0)
    assert ref.quantize_multiplier(0.0) == (0, 0)
    # q*2^31 rounding up to 2^31 renormalises
    assert ref.quantize_multiplier(1.0 - 2.0**-40) == (2**30, 1)
    for real in (0.00390625, 0.0123, 0.3, 0.999, 1.5, 3.14159, 1e-7, 1e-9):
        m, s = ref.quantize_multiplier(real)
        assert 2**30 <= m < 2**31
        assert abs(m * 2.0 ** (s - 31) - real) <= real * 2.0**-31


def test_srdhm(lib):
    rng = np.random.default_rng(1)
    v = _edge_and_random(rng, 150)
    a, b = (g.ravel() for g in np.meshgrid(v, v))
    c = lib.helper("srdhm", a, b)
    expect = np.array([ref.srdhm_scalar(int(x), int(y)) for x, y in zip(a, b)])
    np.testing.assert_array_equal(c, expect)
    np.testing.assert_array_equal(ref.srdhm(a, b), expect)


def test_rdbpot(lib):
    rng = np.random.default_rng(2)
    xs, es = [], []
    base = _edge_and_random(rng, 60)
    for e in range(32):
        half = 1 << e >> 1
        k = rng.integers(-(2**31 >> e), (2**31 >> e), size=24)
        ties = np.concatenate([k * (1 << e) + half + d for d in (-1, 0, 1)])
        x = np.concatenate([base, ties])
        x = x[(x >= INT32_MIN) & (x <= INT32_MAX)]
        xs.append(x)
        es.append(np.full(x.size, e))
    x, e = np.concatenate(xs), np.concatenate(es)
    c = lib.helper("rdbpot", x, e)
    expect = np.array([ref.rdbpot_scalar(int(a), int(b)) for a, b in zip(x, e)])
    np.testing.assert_array_equal(c, expect)
    np.testing.assert_array_equal(ref.rdbpot(x, e), expect)


def test_mbqm(lib):
    rng = np.random.default_rng(3)
    xs = np.concatenate([_EDGE, rng.integers(INT32_MIN, INT32_MAX, size=20),
                         rng.integers(-2**20, 2**20, size=20)])
    mults = np.concatenate([[0, 1, 2**30, 2**30 + 1, 1518500250, INT32_MAX - 1, INT32_MAX],
                            rng.integers(2**30, 2**31, size=5)])
    x, m, s = (g.ravel() for g in np.meshgrid(xs, mults, np.arange(-31, 31)))
    c = lib.helper("mbqm", x, m, s)
    expect = np.array([ref.mbqm_scalar(int(a), int(b), int(d)) for a, b, d in zip(x, m, s)])
    np.testing.assert_array_equal(c, expect)
    np.testing.assert_array_equal(ref.mbqm(x, m, s), expect)


def test_small_helpers(lib):
    rng = np.random.default_rng(4)
    v = _edge_and_random(rng, 300)
    np.testing.assert_array_equal(lib.helper("clamp_i32", v, -128, 127), np.clip(v, -128, 127))
    np.testing.assert_array_equal(lib.helper("clamp_i32", v, -5, 5), np.clip(v, -5, 5))
    for e in (1, 2, 5, 30):
        np.testing.assert_array_equal(lib.helper("sat_shift_left", v, np.full(v.size, e)),
                                      ref.sat_shift_left(v, e))
        edge = np.array([(1 << (31 - e)) - 1, 1 << (31 - e), -(1 << (31 - e)), -(1 << (31 - e)) + 1])
        np.testing.assert_array_equal(lib.helper("sat_shift_left", edge, np.full(4, e)),
                                      np.clip(edge << e, INT32_MIN, INT32_MAX))
    a, b = (g.ravel() for g in np.meshgrid(v[::3], v[::3]))
    expect = [int(np.sign(s)) * ((abs(s) + 1) // 2) for s in (int(p) + int(q) for p, q in zip(a, b))]
    np.testing.assert_array_equal(lib.helper("rounding_half_sum", a, b), expect)
    np.testing.assert_array_equal(ref.rounding_half_sum(a, b), expect)
    u = np.concatenate([[1, 2, 3, 2**31 - 1, 2**31, 2**32 - 1],
                        1 << np.arange(32, dtype=np.uint64),
                        rng.integers(1, 2**32, size=100)]).astype(np.uint64)
    np.testing.assert_array_equal(lib.helper("clz_u32", u), [32 - int(x).bit_length() for x in u])


def test_one_over_one_plus_x(lib):
    rng = np.random.default_rng(5)
    a = np.concatenate([[0, 1, 2, 2**30, INT32_MAX - 1, INT32_MAX],
                        rng.integers(0, 2**31, size=5000)])
    c = lib.helper("one_over_one_plus_x", a)
    np.testing.assert_array_equal(c, ref.one_over_one_plus_x_for_x_in_0_1(a))
    exact = 2.0**31 / (1.0 + a / 2.0**31)
    assert np.max(np.abs(c - np.minimum(exact, INT32_MAX))) < 16


def test_exp_on_negative_values_reference():
    """The gemmlowp exp port is close to the real exp (sanity of the reference).
    gemmlowp's 4th-order Taylor polynomial around -1/8 is off by up to ~2.5e-7
    at the ends of [-1/4, 0], so the bound is 3e-7."""
    a = -np.concatenate([np.arange(0, 2**26 * 31, 2**26 // 7), [1, 2, 3, 2**24, 2**26]])
    e = ref.exp_on_negative_values(a, 5) / 2.0**31
    np.testing.assert_allclose(e, np.exp(a / 2.0**26), rtol=0, atol=3e-7)
    assert ref.exp_on_negative_values(np.array([0]), 5)[0] == INT32_MAX


# ----------------------------------------------------------------------------
# Case generation helpers
# ----------------------------------------------------------------------------


def _geometry(in_size, k, stride, dil, padding):
    """-> (out, pad_before). padding: 'valid' | 'same' | (before, after)."""
    eff = (k - 1) * dil + 1
    if padding == "valid":
        return ref.valid_out(in_size, k, stride, dil), 0
    if padding == "same":
        out, before, _ = ref.same_padding(in_size, k, stride, dil)
        return out, before
    before, after = padding
    return (in_size + before + after - eff) // stride + 1, before


def _requant_params(rng, oc, acc_scale, mode):
    """Per-channel (mult, shift).  'natural' puts typical outputs near the int8
    range (some saturate), 'saturate' pushes most past it, a list gives the
    shifts explicitly."""
    mult = rng.integers(2**30, 2**31, size=oc, endpoint=False).astype(np.int32)
    if isinstance(mode, (list, tuple)):
        shift = np.resize(np.array(mode), oc)
    else:
        natural = int(math.floor(math.log2(96.0 / max(acc_scale, 1.0))))
        extra = 3 if mode == "saturate" else 0
        shift = natural + extra + rng.integers(-1, 2, size=oc)
    return mult, np.clip(shift, -31, 30).astype(np.int32)


def _check_saturation(out, mode, act_min=-128, act_max=127):
    frac = np.mean((out == act_min) | (out == act_max))
    if mode == "saturate":
        assert frac > 0.3, frac
    elif mode == "natural":
        assert frac < 0.9, frac


# ----------------------------------------------------------------------------
# conv2d / depthwise_conv2d, int8
# ----------------------------------------------------------------------------

CONV_CASES = [
    dict(id="3x3_valid"),
    dict(id="same_stride2_even_input", H=8, W=8, KH=3, KW=3, sh=2, sw=2, padding="same"),
    dict(id="same_k4_asymmetric", H=5, W=7, KH=4, KW=4, padding="same"),
    dict(id="explicit_pad_top2_left0", H=5, W=6, pad_h=(2, 1), pad_w=(0, 2), sh=2, sw=1),
    dict(id="explicit_pad_left1_only", H=6, W=5, pad_h=(0, 0), pad_w=(1, 0)),
    dict(id="stride2_valid", H=9, W=7, sh=2, sw=2),
    dict(id="dilation2_same", H=9, W=8, dh=2, dw=2, padding="same"),
    dict(id="dilation_2x1_stride_1x2", H=9, W=10, dh=2, dw=1, sh=1, sw=2, padding="same"),
    dict(id="1x1", KH=1, KW=1, C=8, OC=5),
    dict(id="1x1_stride2", KH=1, KW=1, C=4, OC=3, sh=2, sw=2, H=7, W=6),
    dict(id="nonsquare_3x1_stride_2x1", KH=3, KW=1, sh=2, sw=1, padding="same", H=8, W=5),
    dict(id="nonsquare_1x5_same", KH=1, KW=5, padding="same", H=4, W=9),
    dict(id="kernel_covers_input", H=3, W=3, KH=3, KW=3, padding="same", sh=2, sw=2),
    dict(id="batch2", N=2, padding="same", sh=2, sw=2),
    dict(id="bias_null", bias=False, padding="same"),
    dict(id="zp_in_min_out_min", input_offset=128, output_offset=-128, padding="same"),
    dict(id="zp_in_max_out_max", input_offset=-127, output_offset=127, padding="same"),
    dict(id="zp_in_min_out_max", input_offset=128, output_offset=127, sh=2, sw=2, padding="same"),
    dict(id="saturate", mode="saturate", padding="same"),
    dict(id="act_narrow_relu6_like", act=(-128 + 3, 60), padding="same"),
    dict(id="positive_and_negative_shifts", small=True, mode=[3, 1, 0, -1, 2, -4], OC=6, C=2),
    dict(id="deep_channels", C=32, OC=16, H=4, W=4),
]


def _conv_case(c, depthwise=False, seed=0):
    rng = np.random.default_rng(seed)
    N, H, W = c.get("N", 1), c.get("H", 6), c.get("W", 7)
    C = c.get("C", 3)
    KH, KW = c.get("KH", 3), c.get("KW", 3)
    sh, sw, dh, dw = c.get("sh", 1), c.get("sw", 1), c.get("dh", 1), c.get("dw", 1)
    padding = c.get("padding", "valid")
    out_h, pad_top = _geometry(H, KH, sh, dh, c.get("pad_h", padding))
    out_w, pad_left = _geometry(W, KW, sw, dw, c.get("pad_w", padding))
    dm = c.get("dm", 1)
    OC = C * dm if depthwise else c.get("OC", 4)
    input_offset = c.get("input_offset", int(rng.integers(-20, 21)))
    zp = -input_offset
    if c.get("small"):
        x = np.clip(zp + rng.integers(-3, 4, size=(N, H, W, C)), -128, 127).astype(np.int8)
        fshape = (KH, KW, OC) if depthwise else (OC, KH, KW, C)
        f = rng.integers(-2, 3, size=fshape).astype(np.int8)
        acc_scale = 10.0
    else:
        x = rng.integers(-128, 128, size=(N, H, W, C)).astype(np.int8)
        fshape = (KH, KW, OC) if depthwise else (OC, KH, KW, C)
        f = rng.integers(-127, 128, size=fshape).astype(np.int8)
        taps = KH * KW * (1 if depthwise else C)
        acc_scale = 2.0 * math.sqrt(taps) * 80.0 * 73.0
    bias = (rng.integers(-int(acc_scale), int(acc_scale) + 1, size=OC).astype(np.int32)
            if c.get("bias", True) else None)
    mode = c.get("mode", "natural")
    mult, shift = _requant_params(rng, OC, acc_scale, mode)
    act_min, act_max = c.get("act", (-128, 127))
    params = dict(batches=N, in_h=H, in_w=W, in_c=C, out_h=out_h, out_w=out_w, out_c=OC,
                  k_h=KH, k_w=KW, stride_h=sh, stride_w=sw, dil_h=dh, dil_w=dw,
                  pad_top=pad_top, pad_left=pad_left, input_offset=input_offset,
                  output_offset=c.get("output_offset", int(rng.integers(-10, 11))),
                  act_min=act_min, act_max=act_max)
    if depthwise:
        params["depth_multiplier"] = dm
    return params, x, f, bias, mult, shift, mode


def _ref_kwargs(params, keys):
    return {k: params[k] for k in keys}


_CONV_REF_KEYS = ["stride_h", "stride_w", "dil_h", "dil_w", "pad_top", "pad_left", "out_h",
                  "out_w", "input_offset", "output_offset", "act_min", "act_max"]


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: c["id"])
def test_conv2d_s8(lib, case):
    params, x, f, bias, mult, shift, mode = _conv_case(case, seed=_seed(case["id"]))
    shape = (params["batches"], params["out_h"], params["out_w"], params["out_c"])
    got = lib.run("conv2d_s8", params, shape, input=x, filter=f, bias=bias, out_mult=mult,
                  out_shift=shift)
    want = ref.conv2d_s8_ref(x, f, bias, mult, shift, **_ref_kwargs(params, _CONV_REF_KEYS))
    np.testing.assert_array_equal(got, want)
    if "act" not in case:
        _check_saturation(want, mode)


DW_CASES = [
    dict(id="dm1_3x3_valid", dm=1),
    dict(id="dm2_same_stride2_even", dm=2, H=8, W=8, sh=2, sw=2, padding="same"),
    dict(id="dm3_same", dm=3, C=2, padding="same"),
    dict(id="dm1_k4_asymmetric_same", dm=1, H=5, W=7, KH=4, KW=4, padding="same", C=5),
    dict(id="dm2_explicit_pad", dm=2, pad_h=(2, 0), pad_w=(0, 1)),
    dict(id="dm1_dilation2", dm=1, H=9, W=9, dh=2, dw=2, padding="same", C=4),
    dict(id="dm3_dilation2_stride2", dm=3, H=10, W=9, dh=2, dw=2, sh=2, sw=2, padding="same"),
    dict(id="dm1_1x1", dm=1, KH=1, KW=1, C=6),
    dict(id="dm2_nonsquare_5x3", dm=2, KH=5, KW=3, H=7, W=6, padding="same"),
    dict(id="dm1_batch2", dm=1, N=2, padding="same", C=8),
    dict(id="dm2_bias_null", dm=2, bias=False, padding="same"),
    dict(id="dm1_zp_min_out_min", dm=1, input_offset=128, output_offset=-128, padding="same"),
    dict(id="dm3_zp_max_out_max", dm=3, input_offset=-127, output_offset=127, padding="same"),
    dict(id="dm1_saturate", dm=1, mode="saturate", padding="same", C=6),
    dict(id="dm2_act_narrow", dm=2, act=(-100, 20), padding="same"),
    dict(id="dm1_positive_and_negative_shifts", dm=1, small=True, mode=[4, 2, 0, -1, -3], C=5),
]


@pytest.mark.parametrize("case", DW_CASES, ids=lambda c: c["id"])
def test_depthwise_conv2d_s8(lib, case):
    params, x, f, bias, mult, shift, mode = _conv_case(case, depthwise=True,
                                                      seed=_seed(case["id"]))
    shape = (params["batches"], params["out_h"], params["out_w"], params["out_c"])
    got = lib.run("depthwise_conv2d_s8", params, shape, input=x, filter=f, bias=bias,
                  out_mult=mult, out_shift=shift)
    want = ref.depthwise_conv2d_s8_ref(x, f, bias, mult, shift,
                                       depth_multiplier=params["depth_multiplier"],
                                       **_ref_kwargs(params, _CONV_REF_KEYS))
    np.testing.assert_array_equal(got, want)
    if "act" not in case:
        _check_saturation(want, mode)


def test_depthwise_channel_mapping(lib):
    """oc = ic * depth_multiplier + m reads input channel ic: a 1x1 depthwise
    with unit weights and identity requantization copies channels."""
    C, dm = 3, 2
    x = np.arange(-6, 6, dtype=np.int8).reshape(1, 2, 2, C)
    f = np.ones((1, 1, C * dm), dtype=np.int8)
    mult = np.full(C * dm, 2**30, dtype=np.int32)  # 0.5 * 2^1 = 1.0
    shift = np.full(C * dm, 1, dtype=np.int32)
    params = dict(batches=1, in_h=2, in_w=2, in_c=C, out_h=2, out_w=2, out_c=C * dm, k_h=1,
                  k_w=1, stride_h=1, stride_w=1, dil_h=1, dil_w=1, pad_top=0, pad_left=0,
                  input_offset=0, output_offset=0, act_min=-128, act_max=127,
                  depth_multiplier=dm)
    got = lib.run("depthwise_conv2d_s8", params, (1, 2, 2, C * dm), input=x, filter=f,
                  bias=None, out_mult=mult, out_shift=shift)
    np.testing.assert_array_equal(got, np.repeat(x, dm, axis=3))


def test_conv_padding_is_input_zero_point(lib):
    """SAME padding: a constant input equal to the zero point gives bias-only
    outputs everywhere, including the border."""
    rng = np.random.default_rng(7)
    zp = -37
    x = np.full((1, 4, 4, 2), zp, dtype=np.int8)
    f = rng.integers(-127, 128, size=(3, 3, 3, 2)).astype(np.int8)
    bias = np.array([100, -200, 0], dtype=np.int32)
    mult = np.full(3, 2**30, dtype=np.int32)
    shift = np.full(3, 1, dtype=np.int32)
    params = dict(batches=1, in_h=4, in_w=4, in_c=2, out_h=4, out_w=4, out_c=3, k_h=3, k_w=3,
                  stride_h=1, stride_w=1, dil_h=1, dil_w=1, pad_top=1, pad_left=1,
                  input_offset=-zp, output_offset=0, act_min=-128, act_max=127)
    got = lib.run("conv2d_s8", params, (1, 4, 4, 3), input=x, filter=f, bias=bias,
                  out_mult=mult, out_shift=shift)
    np.testing.assert_array_equal(got, np.broadcast_to(np.array([100, -128, 0], np.int8), got.shape))


# ----------------------------------------------------------------------------
# fully_connected, int8
# ----------------------------------------------------------------------------

FC_CASES = [
    dict(id="basic", B=1, I=16, O=10),
    dict(id="batch2", B=2, I=32, O=7),
    dict(id="batch3_bias_null", B=3, I=20, O=5, bias=False),
    dict(id="filter_offset", B=2, I=12, O=6, filter_offset=5),
    dict(id="zp_in_min_out_min", B=1, I=64, O=12, input_offset=128, output_offset=-128),
    dict(id="zp_in_max_out_max", B=1, I=64, O=12, input_offset=-127, output_offset=127),
    dict(id="saturate", B=2, I=40, O=9, mode="saturate"),
    dict(id="per_tensor_repeated", B=2, I=24, O=8, per_tensor=True),
    dict(id="positive_shift", B=1, I=2, O=6, small=True, mode=[3, 2, 1, 0, -1, -2]),
    dict(id="act_narrow", B=1, I=30, O=10, act=(-128, 0)),
    dict(id="in_features_1", B=4, I=1, O=3),
]


def fc_case(case):
    """(params, input, weights [O][I], bias, mult, shift) of an FC_CASES case."""
    rng = np.random.default_rng(_seed(case["id"]))
    B, I, O = case["B"], case["I"], case["O"]
    input_offset = case.get("input_offset", int(rng.integers(-30, 31)))
    filter_offset = case.get("filter_offset", 0)
    if case.get("small"):
        x = np.clip(-input_offset + rng.integers(-3, 4, size=(B, I)), -128, 127).astype(np.int8)
        w = rng.integers(-2, 3, size=(O, I)).astype(np.int8)
        acc_scale = 10.0
    else:
        x = rng.integers(-128, 128, size=(B, I)).astype(np.int8)
        w = rng.integers(-127, 128, size=(O, I)).astype(np.int8)
        acc_scale = 2.0 * math.sqrt(I) * 80.0 * 73.0
    bias = rng.integers(-20000, 20001, size=O).astype(np.int32) if case.get("bias", True) else None
    mode = case.get("mode", "natural")
    mult, shift = _requant_params(rng, O, acc_scale, mode)
    if case.get("per_tensor"):
        mult[:], shift[:] = mult[0], shift[0]
    act_min, act_max = case.get("act", (-128, 127))
    params = dict(batches=B, in_features=I, out_features=O, input_offset=input_offset,
                  filter_offset=filter_offset,
                  output_offset=case.get("output_offset", int(rng.integers(-10, 11))),
                  act_min=act_min, act_max=act_max)
    return params, x, w, bias, mult, shift


@pytest.mark.parametrize("case", FC_CASES, ids=lambda c: c["id"])
def test_fully_connected_s8(lib, case):
    params, x, w, bias, mult, shift = fc_case(case)
    B, O = case["B"], case["O"]
    got = lib.run("fully_connected_s8", params, (B, O), input=x, weights=w, bias=bias,
                  out_mult=mult, out_shift=shift)
    want = ref.fully_connected_s8_ref(
        x, w, bias, mult, shift, **_ref_kwargs(params, ["input_offset", "filter_offset",
                                                        "output_offset", "act_min", "act_max"]))
    np.testing.assert_array_equal(got, want)


# ----------------------------------------------------------------------------
# add, int8
# ----------------------------------------------------------------------------


def tflite_add_params(s1, z1, s2, z2, so, zo):
    """TFLite PrepareGeneralSubOp/Add quantization (left_shift 20 for int8)."""
    left_shift = 20
    twice_max_input_scale = 2.0 * max(s1, s2)
    m1, sh1 = ref.quantize_multiplier(s1 / twice_max_input_scale)
    m2, sh2 = ref.quantize_multiplier(s2 / twice_max_input_scale)
    mo, sho = ref.quantize_multiplier(twice_max_input_scale / ((1 << left_shift) * so))
    return dict(left_shift=left_shift, input1_offset=-z1, input1_multiplier=m1, input1_shift=sh1,
                input2_offset=-z2, input2_multiplier=m2, input2_shift=sh2, output_offset=zo,
                output_multiplier=mo, output_shift=sho)


ADD_CASES = [
    dict(id="typical", q=(0.05, 3, 0.04, -7, 0.08, 2)),
    dict(id="equal_scales", q=(0.1, 0, 0.1, 0, 0.2, 0)),
    dict(id="very_different_scales", q=(0.5, -20, 0.003, 10, 0.45, -5)),
    dict(id="zp_extremes", q=(0.02, -128, 0.03, 127, 0.05, -128)),
    dict(id="zp_extremes_out_max", q=(0.02, 127, 0.03, -128, 0.05, 127)),
    dict(id="saturate_small_output_scale", q=(0.1, 0, 0.1, 0, 0.01, 0)),
    dict(id="act_relu", q=(0.05, 3, 0.04, -7, 0.08, -20), act=(-20, 127)),
    dict(id="random_params_positive_output_shift", random=True),
]


def add_case(case, size=777):
    """(params, input1, input2) of an ADD_CASES case."""
    rng = np.random.default_rng(_seed(case["id"]))
    x1 = rng.integers(-128, 128, size=size).astype(np.int8)
    x2 = rng.integers(-128, 128, size=size).astype(np.int8)
    if case.get("random"):
        p = dict(left_shift=int(rng.integers(0, 21)),
                 input1_offset=int(rng.integers(-127, 129)),
                 input1_multiplier=int(rng.integers(2**30, 2**31)), input1_shift=-3,
                 input2_offset=int(rng.integers(-127, 129)),
                 input2_multiplier=int(rng.integers(2**30, 2**31)), input2_shift=-1,
                 output_offset=int(rng.integers(-128, 128)),
                 output_multiplier=int(rng.integers(2**30, 2**31)), output_shift=0)
        p["output_shift"] = 2 - p["left_shift"]  # positive for small left_shift
    else:
        p = tflite_add_params(*case["q"])
    p["size"] = size
    p["act_min"], p["act_max"] = case.get("act", (-128, 127))
    return p, x1, x2


@pytest.mark.parametrize("case", ADD_CASES, ids=lambda c: c["id"])
def test_add_s8(lib, case):
    p, x1, x2 = add_case(case)
    size = p["size"]
    got = lib.run("add_s8", p, (size,), input1=x1, input2=x2)
    want = ref.add_s8_ref(x1, x2, **{k: v for k, v in p.items() if k != "size"})
    np.testing.assert_array_equal(got, want)
    if case["id"] == "saturate_small_output_scale":
        assert np.mean((want == -128) | (want == 127)) > 0.5
    if "q" in case:  # and the quantized arithmetic approximates the real sum
        s1, z1, s2, z2, so, zo = case["q"]
        real = (s1 * (x1.astype(float) - z1) + s2 * (x2.astype(float) - z2)) / so + zo
        real = np.clip(np.round(real), p["act_min"], p["act_max"])
        assert np.max(np.abs(real - got)) <= 1


# ----------------------------------------------------------------------------
# pooling, int8
# ----------------------------------------------------------------------------

POOL_CASES = [
    dict(id="2x2_s2_valid", H=8, W=8, K=(2, 2), S=(2, 2)),
    dict(id="3x3_s2_same_even", H=8, W=8, K=(3, 3), S=(2, 2), padding="same"),
    dict(id="3x3_s1_same", H=5, W=6, K=(3, 3), S=(1, 1), padding="same"),
    dict(id="k4_same_asymmetric", H=5, W=7, K=(4, 4), S=(1, 1), padding="same"),
    dict(id="nonsquare_3x2_s_2x1", H=7, W=6, K=(3, 2), S=(2, 1), padding="same"),
    dict(id="global", H=5, W=5, K=(5, 5), S=(5, 5)),
    dict(id="batch2", N=2, H=6, W=6, K=(3, 3), S=(2, 2), padding="same"),
    dict(id="act_narrow", H=6, W=6, K=(2, 2), S=(2, 2), act=(-50, 60)),
    dict(id="1x1", H=3, W=4, K=(1, 1), S=(1, 1)),
]


def _pool_case(case, seed, dtype):
    rng = np.random.default_rng(seed)
    N, H, W, C = case.get("N", 1), case["H"], case["W"], case.get("C", 5)
    (KH, KW), (SH, SW) = case["K"], case["S"]
    padding = case.get("padding", "valid")
    out_h, pad_top = _geometry(H, KH, SH, 1, padding)
    out_w, pad_left = _geometry(W, KW, SW, 1, padding)
    if dtype == np.int8:
        x = rng.integers(-128, 128, size=(N, H, W, C)).astype(np.int8)
        act = case.get("act", (-128, 127))
    else:
        x = rng.standard_normal((N, H, W, C)).astype(np.float32)
        act = case.get("act", (-3.4e38, 3.4e38))
        act = (act[0] / 30.0, act[1] / 30.0) if "act" in case else act
    params = dict(batches=N, in_h=H, in_w=W, channels=C, out_h=out_h, out_w=out_w, k_h=KH,
                  k_w=KW, stride_h=SH, stride_w=SW, pad_top=pad_top, pad_left=pad_left,
                  act_min=act[0], act_max=act[1])
    return params, x


_POOL_REF_KEYS = ["k_h", "k_w", "stride_h", "stride_w", "pad_top", "pad_left", "out_h", "out_w",
                  "act_min", "act_max"]


@pytest.mark.parametrize("case", POOL_CASES, ids=lambda c: c["id"])
@pytest.mark.parametrize("op", ["avg", "max"])
def test_pool_s8(lib, case, op):
    params, x = _pool_case(case, _seed(case["id"]), np.int8)
    shape = (params["batches"], params["out_h"], params["out_w"], params["channels"])
    got = lib.run(f"{op}_pool_s8", params, shape, input=x)
    want = getattr(ref, f"{op}_pool_s8_ref")(x, **_ref_kwargs(params, _POOL_REF_KEYS))
    np.testing.assert_array_equal(got, want)


def test_avg_pool_s8_rounding(lib):
    """Ties round away from zero; negative sums use the negative branch."""
    # 1x2 windows over pairs: sums -3, -1, 0, 1, 3, 255, -256 with count 2
    pairs = np.array([[-2, -1], [-1, 0], [0, 0], [1, 0], [1, 2], [127, 127], [-128, -128],
                      [-128, 127], [5, -6]], dtype=np.int8)
    x = pairs.reshape(1, pairs.shape[0], 2, 1)
    params = dict(batches=1, in_h=pairs.shape[0], in_w=2, channels=1, out_h=pairs.shape[0],
                  out_w=1, k_h=1, k_w=2, stride_h=1, stride_w=2, pad_top=0, pad_left=0,
                  act_min=-128, act_max=127)
    got = lib.run("avg_pool_s8", params, (1, pairs.shape[0], 1, 1), input=x).ravel()
    np.testing.assert_array_equal(got, [-2, -1, 0, 1, 2, 127, -128, -1, -1])


# ----------------------------------------------------------------------------
# softmax, int8
# ----------------------------------------------------------------------------

SOFTMAX_CASES = [
    dict(id="scale_1_over_16_depth10", scale=1 / 16, depth=10, rows=4),
    dict(id="typical_scale", scale=0.09765625, depth=12, rows=3),
    dict(id="small_scale", scale=0.0039215686, depth=20, rows=3),
    dict(id="tiny_scale", scale=1e-5, depth=7, rows=2),
    dict(id="large_scale", scale=0.5, depth=16, rows=3),
    dict(id="huge_scale_capped_multiplier", scale=200.0, depth=9, rows=3),
    dict(id="beta_0_5", scale=0.1, beta=0.5, depth=10, rows=2),
    dict(id="beta_2", scale=0.07, beta=2.0, depth=10, rows=2),
    dict(id="depth1", scale=0.1, depth=1, rows=5),
    dict(id="constant_rows", scale=0.1, depth=8, rows=3, constant=True),
    dict(id="depth100", scale=0.05, depth=100, rows=2),
    dict(id="depth600_constant_exponent_over_31", scale=0.05, depth=600, rows=1, constant=True),
    dict(id="depth1000_narrow", scale=0.001, depth=1000, rows=1),
    dict(id="extremes", scale=0.2, depth=6, rows=2, extremes=True),
    # many rows: sensitive to single-LSB errors in the Q12.19 sum / reciprocal
    dict(id="many_rows_depth16", scale=0.05, depth=16, rows=3000),
    dict(id="many_rows_depth64", scale=0.01, depth=64, rows=1500),
]


@pytest.mark.parametrize("case", SOFTMAX_CASES, ids=lambda c: c["id"])
def test_softmax_s8(lib, case):
    rng = np.random.default_rng(_seed(case["id"]))
    rows, depth, scale, beta = case["rows"], case["depth"], case["scale"], case.get("beta", 1.0)
    if case.get("constant"):
        x = np.repeat(rng.integers(-128, 128, size=(rows, 1)), depth, axis=1).astype(np.int8)
    elif case.get("extremes"):
        x = np.array([[-128, 127, -128, 127, 0, -1], [-128, -128, -128, -127, -128, -128]],
                     dtype=np.int8)
    else:
        x = rng.integers(-128, 128, size=(rows, depth)).astype(np.int8)
    table = ref.softmax_exp_table(scale, beta)
    assert table.dtype == np.int32 and table.shape == (256,)
    params = dict(rows=rows, depth=depth, exp_table=table)
    got = lib.run("softmax_s8", params, (rows, depth), input=x)
    want = ref.softmax_s8_ref(x, scale, beta)
    np.testing.assert_array_equal(got, want)
    # and close to the real softmax (output scale 1/256, zero point -128)
    real = ref.softmax_f32_ref(x.astype(np.float64) * float(np.float32(scale)), beta)
    assert np.max(np.abs((got.astype(float) + 128) / 256 - real)) <= 1.5 / 256 + 1e-3


def test_softmax_exp_table_properties():
    for scale, beta in [(1 / 16, 1.0), (0.0039215686, 1.0), (0.5, 1.0), (0.1, 0.5), (200.0, 1.0)]:
        t = ref.softmax_exp_table(scale, beta).astype(np.int64)
        assert t[0] == INT32_MAX
        assert np.all(np.diff(t) <= 0) and np.all(t >= 0)
        mult, left_shift, diff_min = ref.softmax_params(scale, beta)
        assert np.all(t[np.arange(256) > -diff_min] == 0)
        real = np.exp(-np.arange(256) * float(np.float32(scale)) * beta)
        assert np.max(np.abs(t / 2.0**31 - real)) < 1e-4
    # scale 1/16 is exactly representable: exp(-k/16) up to gemmlowp's polynomial
    # error, and 0 below diff_min = -248
    t = ref.softmax_exp_table(1 / 16)
    np.testing.assert_allclose(t / 2.0**31, np.exp(-np.arange(256) / 16), rtol=0, atol=3e-7)
    assert ref.softmax_params(1 / 16)[2] == -248 and t[248] > 0 and t[249] == 0


def test_softmax_params_known_values():
    # scale 1/256: beta*scale*2^26 = 2^18 exactly -> multiplier 2^30, left shift 19
    assert ref.softmax_params(1 / 256) == (2**30, 19, -math.floor(31 * 2**26 / 2**19))
    # capped multiplier: min(1000 * 2^26, 2^31 - 1) = 2^31 - 1 -> (2^31 - 1, 31); diff_min 0
    assert ref.softmax_params(1000.0) == (2**31 - 1, 31, 0)


# ----------------------------------------------------------------------------
# pad, lut (int8)
# ----------------------------------------------------------------------------

PAD_CASES = [
    dict(id="spatial_same", shape=(1, 4, 5, 3), before=(0, 1, 2, 0), after=(0, 1, 0, 0)),
    dict(id="all_dims", shape=(2, 3, 2, 2), before=(1, 0, 2, 1), after=(0, 2, 1, 3)),
    dict(id="no_pad", shape=(1, 2, 3, 4), before=(0, 0, 0, 0), after=(0, 0, 0, 0)),
    dict(id="channels_only", shape=(1, 2, 2, 3), before=(0, 0, 0, 2), after=(0, 0, 0, 5)),
]


@pytest.mark.parametrize("case", PAD_CASES, ids=lambda c: c["id"])
@pytest.mark.parametrize("dtype", ["s8", "f32"])
def test_pad(lib, case, dtype):
    rng = np.random.default_rng(_seed(case["id"]))
    shape, before, after = case["shape"], case["before"], case["after"]
    out_dims = tuple(s + b + a for s, b, a in zip(shape, before, after))
    if dtype == "s8":
        x = rng.integers(-128, 128, size=shape).astype(np.int8)
        pad_value = -77
    else:
        x = rng.standard_normal(shape).astype(np.float32)
        pad_value = 0.25
    params = dict(in_dims=shape, out_dims=out_dims, before=before, pad_value=pad_value)
    got = lib.run(f"pad_{dtype}", params, out_dims, input=x)
    np.testing.assert_array_equal(got, ref.pad_ref(x, before, after, pad_value).astype(x.dtype))


def test_lut_s8(lib):
    rng = np.random.default_rng(11)
    table = rng.integers(-128, 128, size=256).astype(np.int8)
    x = np.concatenate([np.arange(-128, 128), rng.integers(-128, 128, size=500)]).astype(np.int8)
    got = lib.run("lut_s8", dict(size=x.size, table=table), x.shape, input=x)
    np.testing.assert_array_equal(got, ref.lut_s8_ref(x, table))
    relu6 = np.clip(np.arange(-128, 128), -10, 50).astype(np.int8)  # zp -10, 6.0 -> 50
    got = lib.run("lut_s8", dict(size=x.size, table=relu6), x.shape, input=x)
    np.testing.assert_array_equal(got, np.clip(x, -10, 50))


# ----------------------------------------------------------------------------
# float32 kernels
# ----------------------------------------------------------------------------

F_ATOL, F_RTOL = 1e-5, 1e-5
_F_CONV_REF_KEYS = ["stride_h", "stride_w", "dil_h", "dil_w", "pad_top", "pad_left", "out_h",
                    "out_w", "act_min", "act_max"]

F_CONV_CASES = [
    dict(id="3x3_valid"),
    dict(id="same_stride2_even", H=8, W=8, sh=2, sw=2, padding="same"),
    dict(id="k4_same_asymmetric", H=5, W=7, KH=4, KW=4, padding="same"),
    dict(id="explicit_pad", pad_h=(2, 1), pad_w=(0, 2), sh=2),
    dict(id="dilation2", H=9, W=8, dh=2, dw=2, padding="same"),
    dict(id="1x1", KH=1, KW=1, C=8, OC=5),
    dict(id="nonsquare_3x1", KH=3, KW=1, sh=2, padding="same", H=8, W=5),
    dict(id="batch2_bias_null", N=2, bias=False, padding="same"),
    dict(id="relu6", act=(0.0, 6.0), padding="same"),
]


def _f32_conv_case(c, depthwise, seed):
    rng = np.random.default_rng(seed)
    N, H, W, C = c.get("N", 1), c.get("H", 6), c.get("W", 7), c.get("C", 3)
    KH, KW = c.get("KH", 3), c.get("KW", 3)
    sh, sw, dh, dw = c.get("sh", 1), c.get("sw", 1), c.get("dh", 1), c.get("dw", 1)
    padding = c.get("padding", "valid")
    out_h, pad_top = _geometry(H, KH, sh, dh, c.get("pad_h", padding))
    out_w, pad_left = _geometry(W, KW, sw, dw, c.get("pad_w", padding))
    dm = c.get("dm", 1)
    OC = C * dm if depthwise else c.get("OC", 4)
    x = rng.uniform(-1, 1, size=(N, H, W, C)).astype(np.float32)
    f = rng.uniform(-1, 1, size=(KH, KW, OC) if depthwise else (OC, KH, KW, C)).astype(np.float32)
    bias = rng.uniform(-1, 1, size=OC).astype(np.float32) if c.get("bias", True) else None
    act_min, act_max = c.get("act", (-3.4e38, 3.4e38))
    params = dict(batches=N, in_h=H, in_w=W, in_c=C, out_h=out_h, out_w=out_w, out_c=OC, k_h=KH,
                  k_w=KW, stride_h=sh, stride_w=sw, dil_h=dh, dil_w=dw, pad_top=pad_top,
                  pad_left=pad_left, act_min=act_min, act_max=act_max)
    if depthwise:
        params["depth_multiplier"] = dm
    return params, x, f, bias


@pytest.mark.parametrize("case", F_CONV_CASES, ids=lambda c: c["id"])
def test_conv2d_f32(lib, case):
    params, x, f, bias = _f32_conv_case(case, False, _seed(case["id"]))
    shape = (params["batches"], params["out_h"], params["out_w"], params["out_c"])
    got = lib.run("conv2d_f32", params, shape, input=x, filter=f, bias=bias)
    want = ref.conv2d_f32_ref(x, f, bias, **_ref_kwargs(params, _F_CONV_REF_KEYS))
    np.testing.assert_allclose(got, want, rtol=F_RTOL, atol=F_ATOL)


@pytest.mark.parametrize("case", [dict(c, dm=dm, id=f"{c['id']}_dm{dm}")
                                  for c in F_CONV_CASES for dm in (1, 2, 3)
                                  if "OC" not in c], ids=lambda c: c["id"])
def test_depthwise_conv2d_f32(lib, case):
    params, x, f, bias = _f32_conv_case(case, True, _seed(case["id"]))
    shape = (params["batches"], params["out_h"], params["out_w"], params["out_c"])
    got = lib.run("depthwise_conv2d_f32", params, shape, input=x, filter=f, bias=bias)
    want = ref.depthwise_conv2d_f32_ref(x, f, bias, depth_multiplier=params["depth_multiplier"],
                                        **_ref_kwargs(params, _F_CONV_REF_KEYS))
    np.testing.assert_allclose(got, want, rtol=F_RTOL, atol=F_ATOL)


@pytest.mark.parametrize("B,I,O,has_bias,act", [(1, 16, 10, True, None), (3, 40, 7, False, None),
                                                (2, 8, 12, True, (0.0, 6.0))])
def test_fully_connected_f32(lib, B, I, O, has_bias, act):
    rng = np.random.default_rng(B * 1000 + I)
    x = rng.uniform(-1, 1, size=(B, I)).astype(np.float32)
    w = rng.uniform(-1, 1, size=(O, I)).astype(np.float32)
    bias = rng.uniform(-1, 1, size=O).astype(np.float32) if has_bias else None
    act_min, act_max = act or (-3.4e38, 3.4e38)
    params = dict(batches=B, in_features=I, out_features=O, act_min=act_min, act_max=act_max)
    got = lib.run("fully_connected_f32", params, (B, O), input=x, weights=w, bias=bias)
    want = ref.fully_connected_f32_ref(x, w, bias, act_min=act_min, act_max=act_max)
    np.testing.assert_allclose(got, want, rtol=F_RTOL, atol=F_ATOL)


@pytest.mark.parametrize("act", [(-3.4e38, 3.4e38), (0.0, 6.0), (-1.0, 1.0)])
def test_add_and_clamp_f32(lib, act):
    rng = np.random.default_rng(12)
    x1 = (rng.standard_normal(300) * 4).astype(np.float32)
    x2 = (rng.standard_normal(300) * 4).astype(np.float32)
    p = dict(size=300, act_min=act[0], act_max=act[1])
    got = lib.run("add_f32", p, (300,), input1=x1, input2=x2)
    np.testing.assert_allclose(got, ref.add_f32_ref(x1, x2, act_min=act[0], act_max=act[1]),
                               rtol=F_RTOL, atol=F_ATOL)
    got = lib.run("clamp_f32", p, (300,), input=x1)
    np.testing.assert_array_equal(got, np.clip(x1, np.float32(act[0]), np.float32(act[1])))


@pytest.mark.parametrize("case", POOL_CASES, ids=lambda c: c["id"])
@pytest.mark.parametrize("op", ["avg", "max"])
def test_pool_f32(lib, case, op):
    params, x = _pool_case(case, _seed(case["id"]), np.float32)
    shape = (params["batches"], params["out_h"], params["out_w"], params["channels"])
    got = lib.run(f"{op}_pool_f32", params, shape, input=x)
    want = getattr(ref, f"{op}_pool_f32_ref")(x, **_ref_kwargs(params, _POOL_REF_KEYS))
    np.testing.assert_allclose(got, want, rtol=F_RTOL, atol=F_ATOL)


@pytest.mark.parametrize("rows,depth,beta,spread", [(3, 10, 1.0, 3.0), (2, 100, 1.0, 10.0),
                                                    (4, 1, 1.0, 1.0), (2, 12, 0.5, 20.0)])
def test_softmax_f32(lib, rows, depth, beta, spread):
    rng = np.random.default_rng(rows * depth)
    x = (rng.standard_normal((rows, depth)) * spread).astype(np.float32)
    got = lib.run("softmax_f32", dict(rows=rows, depth=depth, beta=beta), (rows, depth), input=x)
    np.testing.assert_allclose(got, ref.softmax_f32_ref(x, beta), rtol=F_RTOL, atol=1e-7)


# ----------------------------------------------------------------------------
# Cross-check against TensorFlow Lite Micro itself (when it is installed):
# single-op int8 models built in memory, run by the TFLM interpreter, and the
# same op run by the C kernel with parameters derived from the scales the way
# TFLM derives them.
# ----------------------------------------------------------------------------

try:
    from tflite_micro.python.tflite_micro import runtime as _tflm_runtime
    from tflite_micro.tensorflow.lite.micro.compression import model_editor as _me
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as _tfl
except Exception:  # pragma: no cover - optional dependency
    _tflm_runtime = None

needs_tflm = pytest.mark.skipif(_tflm_runtime is None, reason="tflite_micro is not installed")


def _f32(v):
    return float(np.float32(v))


def _tflm_run(opcode, inputs, out_shape, out_q, options_type, options, feed):
    """inputs: list of (array_or_shape, dtype, (scales, zero_points, axis) | None,
    is_constant) or None (absent optional input)."""
    model = _me.Model()
    sg = model.add_subgraph()
    ins, graph_inputs = [], []
    for spec in inputs:
        if spec is None:
            ins.append(None)
            continue
        arr, dtype, q, const = spec
        quant = _me.Quantization(*q) if q is not None else None
        if const:
            t = sg.add_tensor(shape=arr.shape, dtype=dtype, quantization=quant, data=arr)
        else:
            t = sg.add_tensor(shape=arr, dtype=dtype, quantization=quant)
            graph_inputs.append(t)
        ins.append(t)
    y = sg.add_tensor(shape=out_shape, dtype=_tfl.TensorType.INT8,
                      quantization=_me.Quantization(*out_q))
    op = sg.add_operator(opcode=opcode, inputs=ins, outputs=[y])
    if options_type is not None:
        op._fb.builtinOptionsType = options_type
        op._fb.builtinOptions = options
    sg.inputs, sg.outputs = graph_inputs, [y]
    interp = _tflm_runtime.Interpreter.from_bytes(bytes(model.build()))
    for i, a in enumerate(feed):
        interp.set_input(a, i)
    interp.invoke()
    return np.asarray(interp.get_output(0))


def _tflm_act_range(act, scale, zero_point):
    """TFLite CalculateActivationRangeQuantized for int8."""
    def quantize(f):
        return zero_point + ref._round_half_away(float(np.float32(f) / np.float32(scale)))
    if act == "RELU":
        return max(-128, quantize(0.0)), 127
    if act == "RELU6":
        return max(-128, quantize(0.0)), min(127, quantize(6.0))
    return -128, 127


_ACT = {"NONE": 0, "RELU": 1, "RELU6": 3}

TFLM_CONV_CASES = [
    dict(id="conv_same_s2_even", H=8, W=8, C=3, OC=4, K=(3, 3), S=(2, 2), padding="SAME",
         zp=(-128, 5), act="NONE"),
    dict(id="conv_valid_dil2_relu6", H=9, W=8, C=2, OC=3, K=(3, 3), D=(2, 2), padding="VALID",
         zp=(127, -128), act="RELU6"),
    dict(id="conv_1x1_batch2_relu", N=2, H=4, W=5, C=6, OC=5, K=(1, 1), padding="SAME",
         zp=(3, -100), act="RELU"),
    dict(id="conv_3x1_s21_same", H=7, W=5, C=2, OC=3, K=(3, 1), S=(2, 1), padding="SAME",
         zp=(-7, -3), act="NONE", bias=False),
    dict(id="conv_k4_same_asym", H=5, W=6, C=2, OC=2, K=(4, 4), padding="SAME", zp=(0, 0),
         act="NONE", out_scale_div=4.0),
    dict(id="dw_dm1_same_s2", dw=True, dm=1, H=8, W=8, C=4, K=(3, 3), S=(2, 2),
         padding="SAME", zp=(-128, -128), act="NONE"),
    dict(id="dw_dm2_dil2_relu", dw=True, dm=2, H=9, W=9, C=3, K=(3, 3), D=(2, 2),
         padding="SAME", zp=(20, 10), act="RELU"),
    dict(id="dw_dm3_valid_relu6", dw=True, dm=3, H=6, W=7, C=2, K=(2, 3), padding="VALID",
         zp=(127, 0), act="RELU6"),
]


@needs_tflm
@pytest.mark.parametrize("case", TFLM_CONV_CASES, ids=lambda c: c["id"])
def test_conv_matches_tflite_micro(lib, case):
    rng = np.random.default_rng(_seed(case["id"]))
    dw = case.get("dw", False)
    N, H, W, C = case.get("N", 1), case["H"], case["W"], case["C"]
    (KH, KW), (SH, SW), (DH, DW) = case["K"], case.get("S", (1, 1)), case.get("D", (1, 1))
    dm = case.get("dm", 1)
    OC = C * dm if dw else case["OC"]
    zp_in, zp_out = case["zp"]
    s_in = _f32(0.02)
    f_scales = [_f32(v) for v in rng.uniform(0.003, 0.02, size=OC)]
    x = rng.integers(-128, 128, size=(N, H, W, C)).astype(np.int8)
    fshape = (1, KH, KW, OC) if dw else (OC, KH, KW, C)
    f = rng.integers(-127, 128, size=fshape).astype(np.int8)
    bias = (rng.integers(-3000, 3001, size=OC).astype(np.int32) if case.get("bias", True)
            else None)
    same = case["padding"] == "SAME"
    out_h, pad_top = _geometry(H, KH, SH, DH, "same" if same else "valid")
    out_w, pad_left = _geometry(W, KW, SW, DW, "same" if same else "valid")
    # output scale from the float result's range so that a few outputs saturate
    xf = (x.astype(np.float64) - zp_in) * s_in
    ff = f.astype(np.float64) * (np.array(f_scales) if dw else np.array(f_scales)[:, None, None, None])
    kw = dict(stride_h=SH, stride_w=SW, dil_h=DH, dil_w=DW, pad_top=pad_top, pad_left=pad_left,
              out_h=out_h, out_w=out_w, act_min=-np.inf, act_max=np.inf)
    real = (ref.depthwise_conv2d_f32_ref(xf, ff[0], None, depth_multiplier=dm, **kw) if dw
            else ref.conv2d_f32_ref(xf, ff, None, **kw))
    s_out = _f32(np.max(np.abs(real)) / 110.0 / case.get("out_scale_div", 1.0))

    int8, int32 = _tfl.TensorType.INT8, _tfl.TensorType.INT32
    bias_q = ([s_in * s for s in f_scales], [0] * OC, 0)
    inputs = [((N, H, W, C), int8, ([s_in], [zp_in]), False),
              (f, int8, (f_scales, [0] * OC, 3 if dw else 0), True),
              (bias, int32, bias_q, True) if bias is not None else None]
    if dw:
        opts = _tfl.DepthwiseConv2DOptionsT(
            padding=_tfl.Padding.SAME if same else _tfl.Padding.VALID, strideW=SW, strideH=SH,
            depthMultiplier=dm, fusedActivationFunction=_ACT[case["act"]], dilationWFactor=DW,
            dilationHFactor=DH)
        opcode, otype = _tfl.BuiltinOperator.DEPTHWISE_CONV_2D, _tfl.BuiltinOptions.DepthwiseConv2DOptions
    else:
        opts = _tfl.Conv2DOptionsT(padding=_tfl.Padding.SAME if same else _tfl.Padding.VALID,
                                   strideW=SW, strideH=SH,
                                   fusedActivationFunction=_ACT[case["act"]],
                                   dilationWFactor=DW, dilationHFactor=DH)
        opcode, otype = _tfl.BuiltinOperator.CONV_2D, _tfl.BuiltinOptions.Conv2DOptions
    out_shape = (N, out_h, out_w, OC)
    want = _tflm_run(opcode, inputs, out_shape, ([s_out], [zp_out]), otype, opts, [x])

    # TFLM PopulateConvolutionQuantizationParams: double(in) * double(filter) / double(out)
    qm = [ref.quantize_multiplier(s_in * fs / s_out) for fs in f_scales]
    mult = np.array([m for m, _ in qm], dtype=np.int32)
    shift = np.array([s for _, s in qm], dtype=np.int32)
    act_min, act_max = _tflm_act_range(case["act"], s_out, zp_out)
    params = dict(batches=N, in_h=H, in_w=W, in_c=C, out_h=out_h, out_w=out_w, out_c=OC,
                  k_h=KH, k_w=KW, stride_h=SH, stride_w=SW, dil_h=DH, dil_w=DW,
                  pad_top=pad_top, pad_left=pad_left, input_offset=-zp_in,
                  output_offset=zp_out, act_min=act_min, act_max=act_max)
    if dw:
        params["depth_multiplier"] = dm
        got = lib.run("depthwise_conv2d_s8", params, out_shape, input=x,
                      filter=np.ascontiguousarray(f[0]), bias=bias, out_mult=mult,
                      out_shift=shift)
    else:
        got = lib.run("conv2d_s8", params, out_shape, input=x, filter=f, bias=bias,
                      out_mult=mult, out_shift=shift)
    np.testing.assert_array_equal(got, want)
    assert len(np.unique(want)) > 10  # a non-degenerate comparison


@needs_tflm
@pytest.mark.parametrize("B,I,O,zp_in,zp_out,act,has_bias", [
    (1, 32, 10, -128, 5, "NONE", True), (2, 20, 7, 127, -128, "RELU", True),
    (3, 16, 9, 4, 127, "RELU6", False)])
def test_fully_connected_matches_tflite_micro(lib, B, I, O, zp_in, zp_out, act, has_bias):
    rng = np.random.default_rng(B * 100 + I)
    s_in, s_w = _f32(0.05), _f32(0.01)
    x = rng.integers(-128, 128, size=(B, I)).astype(np.int8)
    w = rng.integers(-127, 128, size=(O, I)).astype(np.int8)
    bias = rng.integers(-2000, 2001, size=O).astype(np.int32) if has_bias else None
    real = ((x.astype(float) - zp_in) * s_in) @ (w.astype(float) * s_w).T
    s_out = _f32(np.max(np.abs(real)) / 110.0)
    int8, int32 = _tfl.TensorType.INT8, _tfl.TensorType.INT32
    inputs = [((B, I), int8, ([s_in], [zp_in]), False), (w, int8, ([s_w], [0]), True),
              (bias, int32, ([s_in * s_w], [0]), True) if has_bias else None]
    opts = _tfl.FullyConnectedOptionsT(fusedActivationFunction=_ACT[act])
    want = _tflm_run(_tfl.BuiltinOperator.FULLY_CONNECTED, inputs, (B, O), ([s_out], [zp_out]),
                     _tfl.BuiltinOptions.FullyConnectedOptions, opts, [x])
    m, s = ref.quantize_multiplier(float(s_in) * float(s_w) / float(s_out))
    act_min, act_max = _tflm_act_range(act, s_out, zp_out)
    params = dict(batches=B, in_features=I, out_features=O, input_offset=-zp_in, filter_offset=0,
                  output_offset=zp_out, act_min=act_min, act_max=act_max)
    got = lib.run("fully_connected_s8", params, (B, O), input=x, weights=w, bias=bias,
                  out_mult=np.full(O, m, np.int32), out_shift=np.full(O, s, np.int32))
    np.testing.assert_array_equal(got, want)


@needs_tflm
@pytest.mark.parametrize("q,act", [((0.05, 3, 0.04, -7, 0.08, 2), "NONE"),
                                   ((0.5, -128, 0.003, 127, 0.45, -5), "RELU"),
                                   ((0.1, 0, 0.1, 0, 0.02, 127), "RELU6")])
def test_add_matches_tflite_micro(lib, q, act):
    s1, z1, s2, z2, so, zo = q
    s1, s2, so = _f32(s1), _f32(s2), _f32(so)
    rng = np.random.default_rng(z1 + 1000)
    shape = (1, 5, 7, 9)
    x1 = rng.integers(-128, 128, size=shape).astype(np.int8)
    x2 = rng.integers(-128, 128, size=shape).astype(np.int8)
    int8 = _tfl.TensorType.INT8
    want = _tflm_run(_tfl.BuiltinOperator.ADD,
                     [(shape, int8, ([s1], [z1]), False), (shape, int8, ([s2], [z2]), False)],
                     shape, ([so], [zo]), _tfl.BuiltinOptions.AddOptions,
                     _tfl.AddOptionsT(fusedActivationFunction=_ACT[act]), [x1, x2])
    p = tflite_add_params(s1, z1, s2, z2, so, zo)
    p["size"] = x1.size
    p["act_min"], p["act_max"] = _tflm_act_range(act, so, zo)
    got = lib.run("add_s8", p, shape, input1=x1, input2=x2)
    np.testing.assert_array_equal(got, want)


@needs_tflm
@pytest.mark.parametrize("op", ["AVERAGE_POOL_2D", "MAX_POOL_2D"])
@pytest.mark.parametrize("H,W,K,S,padding,act", [(8, 8, (3, 3), (2, 2), "SAME", "NONE"),
                                                 (7, 6, (2, 3), (2, 1), "SAME", "RELU6"),
                                                 (6, 6, (2, 2), (2, 2), "VALID", "RELU"),
                                                 (5, 7, (4, 4), (1, 1), "SAME", "NONE")])
def test_pool_matches_tflite_micro(lib, op, H, W, K, S, padding, act):
    rng = np.random.default_rng(H * 10 + W)
    N, C, scale, zp = 2, 3, _f32(0.03), -9
    x = rng.integers(-128, 128, size=(N, H, W, C)).astype(np.int8)
    same = padding == "SAME"
    out_h, pad_top = _geometry(H, K[0], S[0], 1, padding.lower())
    out_w, pad_left = _geometry(W, K[1], S[1], 1, padding.lower())
    opts = _tfl.Pool2DOptionsT(padding=_tfl.Padding.SAME if same else _tfl.Padding.VALID,
                               strideW=S[1], strideH=S[0], filterWidth=K[1], filterHeight=K[0],
                               fusedActivationFunction=_ACT[act])
    out_shape = (N, out_h, out_w, C)
    want = _tflm_run(getattr(_tfl.BuiltinOperator, op),
                     [((N, H, W, C), _tfl.TensorType.INT8, ([scale], [zp]), False)], out_shape,
                     ([scale], [zp]), _tfl.BuiltinOptions.Pool2DOptions, opts, [x])
    act_min, act_max = _tflm_act_range(act, scale, zp)
    params = dict(batches=N, in_h=H, in_w=W, channels=C, out_h=out_h, out_w=out_w, k_h=K[0],
                  k_w=K[1], stride_h=S[0], stride_w=S[1], pad_top=pad_top, pad_left=pad_left,
                  act_min=act_min, act_max=act_max)
    kernel = "avg_pool_s8" if op == "AVERAGE_POOL_2D" else "max_pool_s8"
    got = lib.run(kernel, params, out_shape, input=x)
    np.testing.assert_array_equal(got, want)


@needs_tflm
@pytest.mark.parametrize("scale,beta,depth", [(1 / 16, 1.0, 10), (0.0039215686, 1.0, 30),
                                              (0.1, 0.5, 12), (0.07, 2.0, 100), (0.5, 1.0, 7),
                                              (200.0, 1.0, 9), (1e-5, 1.0, 5)])
def test_softmax_matches_tflite_micro(lib, scale, beta, depth):
    rng = np.random.default_rng(depth)
    rows = 6
    scale = _f32(scale)
    x = rng.integers(-128, 128, size=(rows, depth)).astype(np.int8)
    x[0] = 17  # constant row
    want = _tflm_run(_tfl.BuiltinOperator.SOFTMAX,
                     [((rows, depth), _tfl.TensorType.INT8, ([scale], [3]), False)], (rows, depth),
                     ([1 / 256], [-128]), _tfl.BuiltinOptions.SoftmaxOptions,
                     _tfl.SoftmaxOptionsT(beta=beta), [x])
    params = dict(rows=rows, depth=depth, exp_table=ref.softmax_exp_table(scale, beta))
    got = lib.run("softmax_s8", params, (rows, depth), input=x)
    np.testing.assert_array_equal(got, want)


@needs_tflm
def test_pad_matches_tflite_micro(lib):
    rng = np.random.default_rng(21)
    shape, before, after, zp = (1, 4, 5, 3), (0, 1, 2, 0), (0, 2, 1, 0), -17
    x = rng.integers(-128, 128, size=shape).astype(np.int8)
    paddings = np.array(list(zip(before, after)), dtype=np.int32)
    out_dims = tuple(s + b + a for s, b, a in zip(shape, before, after))
    want = _tflm_run(_tfl.BuiltinOperator.PAD,
                     [(shape, _tfl.TensorType.INT8, ([0.1], [zp]), False),
                      (paddings, _tfl.TensorType.INT32, None, True)],
                     out_dims, ([0.1], [zp]), None, None, [x])
    params = dict(in_dims=shape, out_dims=out_dims, before=before, pad_value=zp)
    np.testing.assert_array_equal(lib.run("pad_s8", params, out_dims, input=x), want)


# ----------------------------------------------------------------------------
# Exit gates: integer confidences exactly as adaptc.gates defines them (and the Relax composite
# adaptc.qgate, tests/passes/test_insert_gates.py); float ones against float64 NumPy
# ----------------------------------------------------------------------------

GATE_CASES = [dict(id="c10_s0.1", classes=10, scale=0.1), dict(id="c2_s0.02", classes=2, scale=0.02),
              dict(id="c37_s0.5", classes=37, scale=0.5), dict(id="c10_s3", classes=10, scale=3.0)]


@pytest.mark.parametrize("criterion", ["max_prob", "margin", "entropy"])
@pytest.mark.parametrize("case", GATE_CASES, ids=lambda c: c["id"])
def test_gate_s8(lib, case, criterion):
    from adaptc import gates

    rng = np.random.default_rng(_seed(case["id"] + criterion))
    n, scale = case["classes"], case["scale"]
    rows = rng.integers(-128, 128, size=(300, n)).astype(np.int8)
    rows[:40] = rows[:1]                                    # ties
    rows[40:60] = 127
    rows[60:80, 0] = -128
    params = {"classes": n, "threshold": 0, "scale_q16": gates.scale_q16(scale)}
    tables = gates.tables(criterion, scale)
    params.update(dict(zip(["exp_table", "ln_table"], tables)))
    got = np.array([lib.run(f"gate_{criterion}_s8", params, (1,), logits=r)[0] for r in rows])
    np.testing.assert_array_equal(got, gates.confidence_int(rows, criterion, scale))
    real = gates.confidence_float(rows.astype(np.float64) * scale, criterion)
    tol = {"max_prob": 2e-4, "margin": 1e-9, "entropy": 4e-3}[criterion]
    np.testing.assert_allclose(got * gates.unit(criterion, scale), real, atol=tol)


@pytest.mark.parametrize("criterion", ["max_prob", "margin", "entropy"])
def test_gate_f32(lib, criterion):
    from adaptc import gates

    rng = np.random.default_rng(_seed("gate_f32" + criterion))
    rows = (rng.standard_normal((200, 10)) * 4).astype(np.float32)
    rows[:20] = rows[:1]
    got = np.array([lib.run(f"gate_{criterion}_f32", {"classes": 10, "threshold": 0.0}, (1,), logits=r)[0]
                    for r in rows])
    np.testing.assert_allclose(got, gates.confidence_float(rows, criterion), rtol=1e-5, atol=1e-5)
