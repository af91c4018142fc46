"""Optimized kernels (templates/kernels/*_dsp.c, *_mve.c): the reference kernels' cases, the same
NumPy references, bit for bit.

Each case of tests/targets/test_kernels.py (conv2d, depthwise, fully connected, add) becomes a
one-step Program that goes the way a model goes: the kernel table builds the call
(targets/kernels_dsp.py, kernels_mve.py: layouts, records, exactness checks), the emitter renders
the C, and it runs on the host -- the DSP kernels through the portable definitions of dsp.h --
and on emulated cores: Cortex-M4 (the DSP instructions) and Cortex-M55 (MVE). Each test also
checks which variant ran, so a builder that declines a case is noticed rather than silently
replaced by the reference kernel.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import adaptc.api as api
from adaptc.program import Program, Step, Tensor

import kernel_ref as ref  # noqa: E402
import test_kernels as K  # noqa: E402
import paths

MISSING = [pkg for tool, pkg in (("arm-none-eabi-gcc", "gcc-arm-none-eabi"), ("qemu-system-arm", "qemu-system-arm"))
           if shutil.which(tool) is None]
needs_arm = pytest.mark.skipif(bool(MISSING), reason=f"needs the Debian packages {', '.join(MISSING)}")

# (target, kernel variants best first): the host runs the portable variants, the emulated cores
# their own; a case a variant does not handle falls back to the next
HOST = [("cortex-m4", ("ref",)), ("cortex-m4", ("dsp", "ref"))]
EMULATED = [("cortex-m4", ("dsp", "ref")), ("cortex-m55", ("mve", "dsp", "ref"))]


# ------------------------------------------------------------------------------- cases

def _program(op: str, attrs: dict, consts: dict, in_shapes: list, out_shape: tuple, same_input=False) -> Program:
    x = Tensor(0, "x", tuple(in_shapes[0]), "int8", "input")
    y = Tensor(1, "y", tuple(out_shape), "int8", "output")
    inputs = [0, 0] if same_input else [0]
    step = Step(0, op, "test case", inputs, 1, attrs, {k: v for k, v in consts.items() if v is not None},
                in_shapes=[tuple(s) for s in in_shapes], out_shape=tuple(out_shape))
    prog = Program("case", [x, y], [step], [0], [1])
    return prog


def conv_case(case: dict, depthwise: bool):
    """(Program, input, expected output, supported variants) of a test_kernels conv / DW case."""
    p, x, f, bias, mult, shift, _ = K._conv_case(case, depthwise=depthwise, seed=K._seed(case["id"]))
    oc = p["out_c"]
    if depthwise:
        weights, layout, groups = f.reshape(p["k_h"], p["k_w"], oc, 1), "HWOI", p["in_c"]
        want = ref.depthwise_conv2d_s8_ref(x, f, bias, mult, shift, depth_multiplier=p["depth_multiplier"],
                                           **K._ref_kwargs(p, K._CONV_REF_KEYS))
    else:
        weights, layout, groups = f.transpose(1, 2, 3, 0), "HWIO", 1
        want = ref.conv2d_s8_ref(x, f, bias, mult, shift, **K._ref_kwargs(p, K._CONV_REF_KEYS))
    attrs = {"input_zp": -p["input_offset"], "output_zp": p["output_offset"], "act_min": p["act_min"],
             "act_max": p["act_max"], "multiplier": [int(v) for v in mult], "shift": [int(v) for v in shift],
             "strides": [p["stride_h"], p["stride_w"]], "padding": [p["pad_top"], p["pad_left"], 0, 0],
             "dilation": [p["dil_h"], p["dil_w"]], "groups": groups, "kernel_layout": layout}
    prog = _program("adaptc.qconv2d", attrs, {"weights": np.ascontiguousarray(weights), "bias": bias},
                    [x.shape], want.shape)
    supported = {"ref", "dsp", "mve"} if not depthwise or p["depth_multiplier"] == 1 else {"ref"}
    return prog, x, want, supported


def fc_case(case: dict):
    p, x, w, bias, mult, shift = K.fc_case(case)
    want = ref.fully_connected_s8_ref(x, w, bias, mult, shift, **K._ref_kwargs(
        p, ["input_offset", "filter_offset", "output_offset", "act_min", "act_max"]))
    attrs = {"input_zp": -p["input_offset"], "output_zp": p["output_offset"], "act_min": p["act_min"],
             "act_max": p["act_max"], "multiplier": [int(v) for v in mult], "shift": [int(v) for v in shift],
             "filter_offset": p["filter_offset"]}
    prog = _program("adaptc.qdense", attrs, {"weights": np.ascontiguousarray(w.T), "bias": bias}, [x.shape], want.shape)
    return prog, x, want, {"ref", "dsp", "mve"} if p["filter_offset"] == 0 else {"ref"}


def add_case(case: dict, size: int = 256):
    """An add of the input to itself with the case's two (offset, multiplier, shift): every int8
    value through both input paths (the host cases of test_kernels pair independent inputs)."""
    params = K.add_case(case)[0]
    x = np.arange(-128, 128, dtype=np.int8)[np.random.default_rng(K._seed(case["id"])).permutation(size) % 256]
    kw = {k: v for k, v in params.items() if k not in ("size", "act_min", "act_max")}
    want = ref.add_s8_ref(x, x, act_min=params["act_min"], act_max=params["act_max"], **kw)
    attrs = {"left_shift": params["left_shift"], "input1_zp": -params["input1_offset"],
             "input2_zp": -params["input2_offset"], "input1_multiplier": params["input1_multiplier"],
             "input1_shift": params["input1_shift"], "input2_multiplier": params["input2_multiplier"],
             "input2_shift": params["input2_shift"], "multiplier": [params["output_multiplier"]],
             "shift": [params["output_shift"]], "output_zp": params["output_offset"],
             "act_min": params["act_min"], "act_max": params["act_max"]}
    prog = _program("adaptc.qadd", attrs, {}, [x.shape, x.shape], x.shape, same_input=True)
    return prog, x, want, {"ref", "dsp"}


# packed low-bit weights (adaptc.formats): test_kernels' conv / fc cases with the weights drawn
# from a format's grid, each with TFLite-style multipliers and with power-of-two
# requantization (every multiplier 2^30: the multiplication-free kernels)
PACKED_FORMATS = ("pot2", "pot3", "pot4", "pot5", "int4")
PACKED_CONV = ("3x3_valid", "same_stride2_even_input", "explicit_pad_top2_left0", "dilation2_same", "1x1",
               "batch2", "bias_null", "zp_in_min_out_min", "act_narrow_relu6_like", "deep_channels")
PACKED_FC = ("basic", "batch3_bias_null", "zp_in_max_out_max", "act_narrow", "in_features_1")


def packed_case(kind: str, case: dict, fmt_name: str, pot_requant: bool):
    from adaptc import formats

    fmt = formats.get(fmt_name)
    rng = np.random.default_rng(K._seed(case["id"] + fmt_name + str(pot_requant)))
    if kind == "conv":
        p, x, f, bias, mult, shift, _ = K._conv_case(case, seed=K._seed(case["id"]))
    else:
        p, x, f, bias, mult, shift = K.fc_case(case)
    f = rng.choice(fmt.grid, size=f.shape).astype(np.int16 if fmt.max_value > 127 else np.int8)
    if pot_requant:                      # a power-of-two scale ratio 2^(shift - 1), shifts that fit the values
        mult = np.full_like(mult, 1 << 30)
        spread = np.log2(np.abs(f.astype(np.float64)).reshape(len(mult), -1).sum(axis=1) * 128 + 1)
        shift = (7 - np.ceil(spread)).astype(np.int32) + rng.integers(-1, 2, size=len(mult))
    if kind == "conv":
        want = ref.conv2d_s8_ref(x, f, bias, mult, shift, **K._ref_kwargs(p, K._CONV_REF_KEYS))
        attrs = {"input_zp": -p["input_offset"], "output_zp": p["output_offset"], "act_min": p["act_min"],
                 "act_max": p["act_max"], "strides": [p["stride_h"], p["stride_w"]],
                 "padding": [p["pad_top"], p["pad_left"], 0, 0], "dilation": [p["dil_h"], p["dil_w"]],
                 "groups": 1, "kernel_layout": "HWIO"}
        consts, op = {"weights": np.ascontiguousarray(f.transpose(1, 2, 3, 0)), "bias": bias}, "adaptc.qconv2d"
    else:
        want = ref.fully_connected_s8_ref(x, f, bias, mult, shift, **K._ref_kwargs(
            p, ["input_offset", "filter_offset", "output_offset", "act_min", "act_max"]))
        attrs = {"input_zp": -p["input_offset"], "output_zp": p["output_offset"], "act_min": p["act_min"],
                 "act_max": p["act_max"], "filter_offset": 0}
        consts, op = {"weights": np.ascontiguousarray(f.T), "bias": bias}, "adaptc.qdense"
    attrs.update(multiplier=[int(v) for v in mult], shift=[int(v) for v in shift], weight_format=fmt_name)
    prog = _program(op, attrs, consts, [x.shape], want.shape)
    return prog, x, want, {"ref", "dsp"} if fmt.max_value <= 127 else {"ref"}


PACKED = [pytest.param((kind, c, fmt, pot), id=f"{kind}-{c['id']}-{fmt}-{'pot' if pot else 'mbqm'}")
          for kind, names, cases in (("conv", PACKED_CONV, K.CONV_CASES), ("fc", PACKED_FC, K.FC_CASES))
          for c in cases if c["id"] in names for fmt in PACKED_FORMATS for pot in (False, True)]


CASES = ([pytest.param(("conv", c), id=f"conv-{c['id']}") for c in K.CONV_CASES]
         + [pytest.param(("dw", c), id=f"dw-{c['id']}") for c in K.DW_CASES]
         + [pytest.param(("fc", c), id=f"fc-{c['id']}") for c in K.FC_CASES]
         + [pytest.param(("add", c), id=f"add-{c['id']}") for c in K.ADD_CASES])


def build_case(kind: str, case: dict):
    if kind in ("conv", "dw"):
        return conv_case(case, depthwise=kind == "dw")
    return fc_case(case) if kind == "fc" else add_case(case)


def compiled(kind, case, target, variants):
    prog, x, want, supported = build_case(kind, case)
    m = api.compile_program(prog, target, kernels=",".join(variants))
    ran = m.scheduled.steps[0].variant
    assert ran == next(v for v in variants if v in supported), (ran, variants, supported)
    return m, x, want


# ------------------------------------------------------------------------------- tests

@pytest.mark.parametrize("target,variants", HOST, ids=[v[0] for _, v in HOST])
@pytest.mark.parametrize("kind_case", CASES)
def test_host(kind_case, target, variants):
    kind, case = kind_case
    m, x, want = compiled(kind, case, target, variants)
    np.testing.assert_array_equal(m.run(x), want)


@needs_arm
@pytest.mark.parametrize("target,variants", EMULATED, ids=[v[0] for _, v in EMULATED])
@pytest.mark.parametrize("kind_case", CASES)
def test_emulated(kind_case, target, variants):
    kind, case = kind_case
    m, x, want = compiled(kind, case, target, variants)
    r = m.run_on_target(x)
    np.testing.assert_array_equal(r.outputs, want)


def compiled_packed(kind, case, fmt, pot, target, variants):
    prog, x, want, supported = packed_case(kind, case, fmt, pot)
    m = api.compile_program(prog, target, kernels=",".join(variants))
    step = m.scheduled.steps[0]
    assert step.variant == next(v for v in variants if v in supported), (step.variant, variants, supported)
    assert step.kernel.endswith("_dsp") if step.variant == "dsp" else step.kernel.endswith("_packed")
    return m, x, want


@pytest.mark.parametrize("target,variants", HOST, ids=[v[0] for _, v in HOST])
@pytest.mark.parametrize("packed", PACKED)
def test_packed_host(packed, target, variants):
    m, x, want = compiled_packed(*packed, target, variants)
    np.testing.assert_array_equal(m.run(x), want)


PACKED_EMULATED = [("cortex-m0plus", ("ref",)), ("cortex-m4", ("dsp", "ref")), ("cortex-m55", ("mve", "dsp", "ref"))]


@needs_arm
@pytest.mark.parametrize("target,variants", PACKED_EMULATED, ids=[t for t, _ in PACKED_EMULATED])
@pytest.mark.parametrize("packed", PACKED)
def test_packed_emulated(packed, target, variants):
    """On the emulated cores as on the host; on the Cortex-M0+ a power-of-two layer with
    power-of-two requantization executes no multiply instruction at all."""
    kind, case, fmt, pot = packed
    m, x, want = compiled_packed(kind, case, fmt, pot, target, variants)
    r = m.run_on_target(x)
    np.testing.assert_array_equal(r.outputs, want)
    if target == "cortex-m0plus" and fmt.startswith("pot") and pot:
        assert r.steps[0]["classes"]["mac"] == 0, r.steps[0]["classes"]


def test_every_variant_kernel_is_covered():
    """Every optimized kernel file is some case's kernel on the host or an emulated core."""
    seen = set()
    for target, variants in HOST + EMULATED:
        for p in CASES:
            prog = build_case(*p.values[0])[0]
            m = api.compile_program(prog, target, kernels=",".join(variants))
            seen.add(m.scheduled.steps[0].kernel)
    for p in PACKED:
        for kernels in ("ref", "dsp,ref"):
            prog = packed_case(*p.values[0])[0]
            seen.add(api.compile_program(prog, "cortex-m4", kernels=kernels).scheduled.steps[0].kernel)
    files = {p.stem for p in K.kernel_files() if p.stem.endswith(K.VARIANT_SUFFIXES + ("_packed",))}
    assert files <= seen, f"not exercised: {sorted(files - seen)}"


@needs_arm
@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m7", "cortex-m55"])
def test_variant_kernels_cross_compile_strict(target, tmp_path):
    """Every optimized kernel with its headers: -Wall -Wextra -Werror -pedantic -Wconversion
    -Wshadow for the core (MVE kernels only where the core has MVE)."""
    from adaptc.targets import get as get_target

    t = get_target(target)
    names = [p.stem for p in K.kernel_files() if p.stem.endswith("_dsp") or (t.has_mve and p.stem.endswith("_mve"))]
    src = tmp_path / "all.c"
    src.write_text(K.translation_unit(names, K._keep_used(names)))
    r = subprocess.run(["arm-none-eabi-gcc", *t.gcc_flags, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror",
                        "-pedantic", "-Wconversion", "-Wshadow", "-c", str(src), "-o", str(tmp_path / "all.o")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
