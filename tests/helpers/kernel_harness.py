"""The C kernels (templates/kernels/) as the tests call them: through ctypes, and by family.

* The interface spec of the reference kernels whose parameter structs live in common.h:
  ``STRUCTS`` (struct -> fields) and ``KERNELS`` (kernel -> struct, pointer arguments);
  tests/targets/cortex_m/kernels/test_common.py checks the C against it.
* ``build_lib``: common.h + every kernel of ``KERNELS`` + a generated wrapper file that exports
  one non-static ``test_<kernel>`` function per kernel (the struct fields as scalar arguments)
  and ``test_<helper>`` per fixed-point helper, compiled with the host compiler into a shared
  library; ``KernelLib`` calls them (the output buffer has a guard zone that must stay
  untouched).
* ``translation_unit`` / ``compile_c``: what the code generator emits for a set of kernels
  (common.h, the headers the registry lists for them, the kernel files), compiled strictly.
* The kernel families: the registry's records grouped by the module that registers them
  (targets/cortex_m/kernels/<family>.py), each tested by
  tests/targets/cortex_m/kernels/test_<family>.py.
"""
from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
import zlib
from functools import partial
from pathlib import Path

import numpy as np
import pytest

import kernel_ref as ref
import paths
from adaptc import targets
from adaptc.targets.cortex_m import kernels as registry

KERNEL_DIR = paths.KERNELS
TEST_DIR = paths.TESTS / "targets" / "cortex_m" / "kernels"
CC = shutil.which("gcc") or shutil.which("cc")
CFLAGS = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-Wvla"]

needs_cc = pytest.mark.skipif(CC is None, reason="no C compiler on PATH")

INT32_MIN, INT32_MAX = ref.INT32_MIN, ref.INT32_MAX

# ----------------------------------------------------------------------------
# The interface (spec): param structs and kernel signatures
# ----------------------------------------------------------------------------

I32, F32, I32X4, PI32, PI8 = "int32_t", "float", "int32_t[4]", "const int32_t *", "const int8_t *"
PU16 = "const uint16_t *"

_CONV_GEOMETRY = ["batches", "in_h", "in_w", "in_c", "out_h", "out_w", "out_c", "k_h", "k_w",
                  "stride_h", "stride_w", "dil_h", "dil_w", "pad_top", "pad_left"]


def _after(names, field, new):
    return names[:names.index(field) + 1] + [new] + names[names.index(field) + 1:]
_POOL_GEOMETRY = ["batches", "in_h", "in_w", "channels", "out_h", "out_w", "k_h", "k_w",
                  "stride_h", "stride_w", "pad_top", "pad_left"]
_PAD = [("in_dims", I32X4), ("out_dims", I32X4), ("before", I32X4)]


def _ints(names):
    return [(n, I32) for n in names]


STRUCTS = {
    "conv2d_s8_params": _ints(_after(_CONV_GEOMETRY, "in_c", "filter_in_c")
                              + ["input_offset", "output_offset", "act_min", "act_max"]),
    "depthwise_conv2d_s8_params": _ints(
        _after(_CONV_GEOMETRY, "out_c", "filter_c")
        + ["input_offset", "output_offset", "act_min", "act_max", "depth_multiplier"]),
    "fully_connected_s8_params": _ints(["batches", "in_features", "filter_stride", "out_features", "input_offset",
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
    "softmax_f32_params": [("rows", I32), ("depth", I32), ("beta", F32), ("log", I32)],
    "pad_f32_params": _PAD + [("pad_value", F32)],
    "clamp_f32_params": [("size", I32), ("act_min", F32), ("act_max", F32)],
    "transpose_params": [_PAD[0], ("perm", _PAD[0][1])],
    "gate_margin_s8_params": _ints(["classes", "threshold"]),
    "gate_max_prob_s8_params": _ints(["classes", "threshold", "exp_len"]) + [("exp_table", PU16)],
    "gate_entropy_s8_params": _ints(["classes", "threshold", "scale_q16", "exp_len"]) + [("exp_table", PU16),
                                                                                        ("ln_table", PU16)],
    "gate_f32_params": [("classes", I32), ("threshold", F32)],
}


# Fields a case may leave out, and the field they default to: the stored filter's row stride is the
# layer's own (a width level's narrower view of a wider filter: tests/core/test_widths.py).
DERIVED = {"conv2d_s8_params": {"filter_in_c": "in_c"}, "depthwise_conv2d_s8_params": {"filter_c": "out_c"},
           "fully_connected_s8_params": {"filter_stride": "in_features"}}

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

_NP_DTYPES = {"int8_t": np.int8, "int32_t": np.int32, "float": np.float32, "uint32_t": np.uint32,
              "uint16_t": np.uint16}

# ----------------------------------------------------------------------------
# The kernel families: registry records by the module that registers them
# ----------------------------------------------------------------------------


def family_of(record) -> str:
    """The operator family of a registry record: the module of targets/cortex_m/kernels/ that
    registers it (its builder's module; gate.py registers partials)."""
    build = record.build.func if isinstance(record.build, partial) else record.build
    return build.__module__.rsplit(".", 1)[-1]


def family_kernels(family: str) -> list:
    """The registry records of one family, in registration order."""
    return [k for k in registry.KERNELS.values() if family_of(k) == family]


def cores() -> list:
    """For each kernel variant, the first Cortex-M core (registry order) whose best variant it is:
    the core that variant is written for (ref: Cortex-M0+, dsp: Cortex-M4, mve: Cortex-M55)."""
    best = {}
    for name in targets.names(emulated=True):
        t = targets.get(name)
        best.setdefault(t.kernel_variants[0], t)
    return list(best.values())


def family_variants(family: str) -> list[str]:
    """The variants of a family's kernels, in the order of the cores they are written for."""
    have = {k.variant for k in family_kernels(family)}
    order = [t.kernel_variants[0] for t in cores()]
    return [v for v in order if v in have] + sorted(have - set(order))


def wrapped_kernels(family: str) -> set[str]:
    """The family's kernels in the ctypes spec: its direct tests call them by name through KernelLib."""
    return {k.name for k in family_kernels(family) if k.name in KERNELS}


def family_test_file(family: str) -> Path:
    return TEST_DIR / f"test_{family}.py"


def assert_covered(family: str, exercised: set[str]):
    """Every kernel the registry has for ``family`` is among those its test module exercises."""
    missing = sorted({k.name for k in family_kernels(family)} - set(exercised))
    assert not missing, (f"{', '.join(missing)} (registered by targets/cortex_m/kernels/{family}.py) "
                         f"not exercised by any case of {family_test_file(family).relative_to(paths.ROOT)}")


# ----------------------------------------------------------------------------
# Kernel sources
# ----------------------------------------------------------------------------


def kernel_files() -> list[Path]:
    """Every kernel source (reference kernels and optimized drop-ins)."""
    return sorted(KERNEL_DIR.glob("*.c"))


def host_kernel_files() -> list[Path]:
    """Kernels that build with the host compiler: all but the MVE ones (Helium cores only)."""
    return [p for p in kernel_files() if not p.stem.endswith("_mve")]


def kernel_headers(kernel: str) -> list[str]:
    """Headers a kernel needs after common.h: what its registry record lists."""
    assert kernel in registry.KERNELS, f"{kernel}.c is not a registered kernel (targets/cortex_m/kernels/)"
    return list(registry.KERNELS[kernel].files[:-1])


def strip_comments(s: str) -> str:
    return re.sub(r"/\*.*?\*/", " ", s, flags=re.DOTALL)


def translation_unit(kernels: list[str], extra: str = "") -> str:
    """What the code generator emits (targets/cortex_m/emit.py): common.h, the files the kernels
    need -- headers (``.h``), then kernels (a stem: ``<stem>.c``) in order -- and each kernel file,
    every file once."""
    files = list(dict.fromkeys([*(h for k in kernels for h in kernel_headers(k)), *kernels]))
    files.sort(key=lambda f: not f.endswith(".h"))          # headers before kernels, as the emitter
    parts = [(KERNEL_DIR / name).read_text() for name in ["common.h"]]
    parts += [(KERNEL_DIR / (f if f.endswith(".h") else f"{f}.c")).read_text() for f in files]
    return "\n".join(parts) + "\n" + extra


def keep_used(kernels) -> str:
    """A global function referring to the (static) kernels, so that none is unused."""
    refs = " ".join(f"(void){k};" for k in kernels)
    return f"void adaptc_keep(void);\nvoid adaptc_keep(void) {{ {refs} }}\n"


def compile_c(src: str, out: Path, extra_flags: list[str], libs: tuple[str, ...] = ()):
    """Compile ``src`` with the host compiler and CFLAGS; the CompletedProcess."""
    c_file = out.with_suffix(".c")
    c_file.write_text(src)
    return subprocess.run([CC, *CFLAGS, *extra_flags, str(c_file), "-o", str(out), *libs],
                          capture_output=True, text=True, check=False)


def seed(case_id: str) -> int:
    """A case's random seed, from its id."""
    return zlib.crc32(case_id.encode())


# ----------------------------------------------------------------------------
# Build: common.h + the spec's kernels + generated wrappers -> shared library
# ----------------------------------------------------------------------------

_HELPER_WRAPPERS = r"""
void test_srdhm(int32_t n, const int32_t *a, const int32_t *b, int32_t *out)
{ int32_t i; for (i = 0; i < n; ++i) out[i] = adaptc_srdhm(a[i], b[i]); }
void test_rdbpot(int32_t n, const int32_t *x, const int32_t *e, int32_t *out)
{ int32_t i; for (i = 0; i < n; ++i) out[i] = adaptc_rdbpot(x[i], e[i]); }
void test_mbqm(int32_t n, const int32_t *x, const int32_t *m, const int32_t *s, int32_t *out)
{ int32_t i; for (i = 0; i < n; ++i) out[i] = adaptc_mbqm(x[i], m[i], s[i]); }
void test_rq_exact(int32_t n, const int32_t *x, const int32_t *m, const int32_t *s, int32_t *out)
{ int32_t i; for (i = 0; i < n; ++i) out[i] = adaptc_rq_exact(x[i], m[i], s[i]); }
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
    "rq_exact": ["n", "p", "p", "p", "p"],
    "clamp_i32": ["n", "p", "n", "n", "p"],
    "sat_shift_left": ["n", "p", "p", "p"],
    "rounding_half_sum": ["n", "p", "p", "p"],
    "clz_u32": ["n", "p", "p"],
    "one_over_one_plus_x": ["n", "p", "p"],
}


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
            v = params[name] if name in params else params[DERIVED[struct][name]]
            if t == I32X4:
                a = np.ascontiguousarray(v, dtype=np.int32)
                assert a.shape == (4,)
                keep.append(a)
                cargs.append(self._ptr(a, "int32_t *"))
            elif t in (PI32, PI8, PU16):
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


def build_lib(directory: Path) -> KernelLib:
    """Compile every kernel of the spec with its wrapper, and the helper wrappers, into
    ``directory``/libadaptc_kernels.so."""
    kernels = list(KERNELS)
    helpers = (KERNEL_DIR / "dsp.h").read_text() + _HELPER_WRAPPERS        # dsp.h: adaptc_rq_exact
    src = translation_unit(kernels, helpers + "\n".join(_wrapper_source(k) for k in kernels))
    so = directory / "libadaptc_kernels.so"
    r = compile_c(src, so, ["-shared", "-fPIC"], ("-lm",))
    assert r.returncode == 0, r.stderr
    return KernelLib(so)
