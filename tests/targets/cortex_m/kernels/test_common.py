"""What belongs to no one operator: every kernel source has its family's test, the interface spec
(parameter structs, signatures), each kernel compiling alone and all together (strictly, and the
optimized ones cross-compiled for their cores), the portability rules, and the fixed-point
helpers of common.h against the NumPy references (kernel_ref.py), bit for bit."""
from __future__ import annotations

import ast
import re
import shutil
import subprocess

import numpy as np
import pytest

import kernel_harness as harness
import kernel_ref as ref
from adaptc import targets
from adaptc.targets.cortex_m import kernels as registry
from kernel_harness import INT32_MAX, INT32_MIN, KERNEL_DIR, KERNELS, STRUCTS, strip_comments
from kernel_programs import needs_arm

pytestmark = harness.needs_cc


# ----------------------------------------------------------------------------
# Coverage: every kernel source is tested by its family's module
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", harness.kernel_files(), ids=lambda p: p.name)
def test_every_kernel_source_has_a_test(path):
    """Each templates/kernels/<name>.c is a registered kernel, and the test module of the family
    that registers it (targets/cortex_m/kernels/<family>.py -> kernels/test_<family>.py) covers
    it: it calls it by name, or its test_every_kernel_is_covered checks that its cases exercise
    every kernel the registry has for the family."""
    name = path.stem
    assert name in registry.KERNELS, f"{path.name} is not registered by any module of targets/cortex_m/kernels/"
    family = harness.family_of(registry.KERNELS[name])
    test = harness.family_test_file(family)
    assert test.exists(), f"{name} (targets/cortex_m/kernels/{family}.py) has no test module: {test}"
    src = test.read_text()
    functions = {n.name for n in ast.parse(src).body if isinstance(n, ast.FunctionDef)}
    assert "test_every_kernel_is_covered" in functions or re.search(rf"\b{name}\b", src), \
        f"{test.name} neither names {name} nor checks its family's coverage (test_every_kernel_is_covered)"


# ----------------------------------------------------------------------------
# Source-level checks: interface, self-containment, portability rules
# ----------------------------------------------------------------------------


def test_param_structs_match_spec():
    text = strip_comments((KERNEL_DIR / "common.h").read_text())
    found = {}
    for body, name in re.findall(r"typedef\s+struct\s*\{(.*?)\}\s*(\w+)\s*;", text, flags=re.DOTALL):
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
    text = strip_comments((KERNEL_DIR / f"{kernel}.c").read_text())
    m = re.search(rf"static\s+void\s+{kernel}\s*\((.*?)\)\s*\{{", text, flags=re.DOTALL)
    assert m, f"no `static void {kernel}(...)` definition"
    got = [" ".join(p.split()) for p in m.group(1).split(",")]
    want = [f"const {struct} *p"] + [f"{t}{n}" for n, t in args]
    assert got == want
    # no recursion: the kernel name appears once (its definition)
    assert len(re.findall(rf"\b{kernel}\s*\(", text)) == 1


@pytest.mark.parametrize("path", harness.host_kernel_files(), ids=lambda p: p.name)
def test_kernel_compiles_alone_with_common_h(path, tmp_path):
    """common.h + one kernel file: the kernel files do not depend on each other;
    every function is static (the object defines no global symbol but ours)."""
    kernel = path.stem
    src = harness.translation_unit([kernel], harness.keep_used([kernel]))
    obj = tmp_path / f"{kernel}.o"
    r = harness.compile_c(src, obj, ["-pedantic", "-c"])
    assert r.returncode == 0, r.stderr
    nm = shutil.which("nm")
    if nm:
        syms = subprocess.run([nm, "-g", "--defined-only", str(obj)], capture_output=True,
                              text=True, check=True).stdout.splitlines()
        assert [line.split()[-1] for line in syms if line.strip()] == ["adaptc_keep"], syms


def test_common_h_alone_and_all_kernels_together(tmp_path):
    r = harness.compile_c(harness.translation_unit([], "void adaptc_keep(void);\nvoid adaptc_keep(void) {}\n"),
                          tmp_path / "common.o", ["-pedantic", "-c"])
    assert r.returncode == 0, r.stderr
    ks = [p.stem for p in harness.host_kernel_files()]
    r = harness.compile_c(harness.translation_unit(ks, harness.keep_used(ks)), tmp_path / "all.o",
                          ["-pedantic", "-Wshadow", "-Wconversion", "-c"])
    assert r.returncode == 0, r.stderr


# the cores an optimized variant runs on (Cortex-M4, M7: dsp; M55: mve and dsp)
OPTIMIZED_CORES = [n for n in targets.names(emulated=True) if targets.get(n).kernel_variants[0] != "ref"]


@needs_arm
@pytest.mark.parametrize("opt", ["-O2", "-Os", "-Og", "-O0"])
@pytest.mark.parametrize("target", OPTIMIZED_CORES)
def test_variant_kernels_cross_compile_strict(target, opt, tmp_path):
    """Every optimized kernel with its headers: -Wall -Wextra -Werror -pedantic -Wconversion
    -Wshadow for the core (MVE kernels only where the core has MVE), at every optimization level
    a firmware project may build with (-O0 debug builds too: the assembly loops that need more
    registers than an unoptimized function leaves take their C form there)."""
    t = targets.get(target)
    names = [k.name for k in registry.KERNELS.values() if k.variant != "ref" and k.variant in t.kernel_variants]
    assert names
    src = tmp_path / "all.c"
    src.write_text(harness.translation_unit(names, harness.keep_used(names)))
    r = subprocess.run(["arm-none-eabi-gcc", *t.gcc_flags, "-std=c99", opt, "-Wall", "-Wextra", "-Werror",
                        "-pedantic", "-Wconversion", "-Wshadow", "-c", str(src), "-o", str(tmp_path / "all.o")],
                       capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("path", harness.kernel_files() + sorted(KERNEL_DIR.glob("*.h")), ids=lambda p: p.name)
def test_portability_rules(path):
    text = path.read_text()
    code = strip_comments(text)
    assert not re.search(r"\b(malloc|calloc|realloc|free|alloca)\s*\(", code)
    if ("_s8" in path.stem and "_f32" not in path.stem) or path.name in ("dsp.h", "mve.h"):   # not a conversion
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
        assert re.findall(r"^static\s+void\s+(\w+)", code, flags=re.MULTILINE) == [path.stem]


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
    # dsp.h's exact general path of the optimized kernels: the same for any accumulator
    np.testing.assert_array_equal(lib.helper("rq_exact", x, m, s), expect)


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
