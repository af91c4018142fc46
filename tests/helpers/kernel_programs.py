"""Kernel cases as one-step programs, built the way a model is built, for every kernel variant.

A case of a kernel test module becomes a one-step ``Program`` that goes the way a model goes:
the kernel registry builds the call (layouts, records, exactness checks), the emitter renders the
C, and it runs on the host -- the DSP kernels through the portable definitions of dsp.h -- and on
emulated cores. Each run also checks which variant ran, so a builder that declines a case is
noticed rather than silently replaced by the reference kernel.

Which variant sets run is derived from the registry (kernel_harness.family_variants), so that a
new variant of an operator is picked up by its family's tests:

* the host runs each portable variant of the family (``PORTABLE_VARIANTS``) that it has, on a
  core whose variant list has them all, falling back along that core's list;
* the emulated cores are, for each optimized variant, the first core whose best variant it is
  (Cortex-M4: dsp, Cortex-M55: mve), with that core's variants: an operator without the variant
  falls back to the next;
* the packed low-bit-weight cases also run on the core of the reference variant (Cortex-M0+).

A builder returns ``(program, input, expected output, supported variants)``: the variants whose
kernels accept the case (the family's variants, less those that decline it by design); the
variant that runs must be the first of the core's list among them.
"""
from __future__ import annotations

import shutil

import numpy as np
import pytest

import kernel_ref as ref
from adaptc import api, formats, targets
from adaptc.program import Program, Step, Tensor
from adaptc.targets.cortex_m.kernels import PORTABLE_VARIANTS
from kernel_cases import CONV_REF_KEYS, FC_REF_KEYS, add_case, conv_case, fc_case, ref_kwargs
from kernel_harness import cores, family_variants, seed

MISSING = [pkg for tool, pkg in (("arm-none-eabi-gcc", "gcc-arm-none-eabi"), ("qemu-system-arm", "qemu-system-arm"))
           if shutil.which(tool) is None]
needs_arm = pytest.mark.skipif(bool(MISSING), reason=f"needs the Debian packages {', '.join(MISSING)}")


# ------------------------------------------------------------------------------- variant sets

def _host_core():
    """The first core whose variants include every portable one (the Cortex-M4)."""
    for name in targets.names(emulated=True):
        t = targets.get(name)
        if set(PORTABLE_VARIANTS) <= set(t.kernel_variants):
            return t
    raise AssertionError(f"no core has every portable variant {PORTABLE_VARIANTS}")


def host_params(family: str) -> list:
    """(target, variants) for each portable variant of ``family``, id the variant."""
    core = _host_core()
    chain = core.kernel_variants
    return [pytest.param(core.name, chain[chain.index(v):], id=v)
            for v in family_variants(family) if v in PORTABLE_VARIANTS]


def emulated_params() -> list:
    """(target, variants) of each core an optimized variant is written for, id the variant."""
    return [pytest.param(t.name, t.kernel_variants, id=t.kernel_variants[0])
            for t in cores() if t.kernel_variants[0] != "ref"]


def packed_emulated_params() -> list:
    """(target, variants) of each core a variant is written for, reference included; id the core."""
    return [pytest.param(t.name, t.kernel_variants, id=t.name) for t in cores()]


# ------------------------------------------------------------------------------- programs

def one_step_program(op: str, attrs: dict, consts: dict, in_shapes: list, out_shape: tuple,
                     same_input=False) -> Program:
    """A Program of one int8 step ``op``: input tensor 0 (twice if ``same_input``), output 1."""
    x = Tensor(0, "x", tuple(in_shapes[0]), "int8", "input")
    y = Tensor(1, "y", tuple(out_shape), "int8", "output")
    inputs = [0, 0] if same_input else [0]
    step = Step(0, op, "test case", inputs, 1, attrs, {k: v for k, v in consts.items() if v is not None},
                in_shapes=[tuple(s) for s in in_shapes], out_shape=tuple(out_shape))
    return Program("case", [x, y], [step], [0], [1])


def conv_program(case: dict, depthwise: bool):
    """(Program, input, expected output, supported variants) of a conv / depthwise case."""
    p, x, f, bias, mult, shift, _ = conv_case(case, depthwise=depthwise, seed=seed(case["id"]))
    oc = p["out_c"]
    if depthwise:
        weights, layout, groups = f.reshape(p["k_h"], p["k_w"], oc, 1), "HWOI", p["in_c"]
        want = ref.depthwise_conv2d_s8_ref(x, f, bias, mult, shift, depth_multiplier=p["depth_multiplier"],
                                           **ref_kwargs(p, CONV_REF_KEYS))
    else:
        weights, layout, groups = f.transpose(1, 2, 3, 0), "HWIO", 1
        want = ref.conv2d_s8_ref(x, f, bias, mult, shift, **ref_kwargs(p, CONV_REF_KEYS))
    attrs = {"input_zp": -p["input_offset"], "output_zp": p["output_offset"], "act_min": p["act_min"],
             "act_max": p["act_max"], "multiplier": [int(v) for v in mult], "shift": [int(v) for v in shift],
             "strides": [p["stride_h"], p["stride_w"]], "padding": [p["pad_top"], p["pad_left"], 0, 0],
             "dilation": [p["dil_h"], p["dil_w"]], "groups": groups, "kernel_layout": layout}
    prog = one_step_program("adaptc.qconv2d", attrs, {"weights": np.ascontiguousarray(weights), "bias": bias},
                            [x.shape], want.shape)
    # the optimized depthwise kernels take depth multiplier 1 only
    variants = set(family_variants("depthwise_conv2d" if depthwise else "conv2d"))
    supported = variants if not depthwise or p["depth_multiplier"] == 1 else {"ref"}
    return prog, x, want, supported


def prefix_conv_program(case: dict):
    """conv_program's case as a width level's step (adaptc.widths): its filter the channel prefix
    of a wider stored one (random extra input and output channels, and input-channel blocks of
    the widths: prefix_weights), the expected output the case's own."""
    prog, x, want, _ = conv_program(case, False)
    step = prog.steps[0]
    w = step.consts["weights"]                                        # HWIO
    rng = np.random.default_rng(seed(case["id"]) + 7)
    in_c, out_c = w.shape[2], w.shape[3]
    wider = int(rng.choice([0, 4, 8, 12]))
    bounds = {in_c, in_c + wider} | ({max(1, in_c // 2)} if rng.random() < 0.5 else set())
    stored = rng.integers(-127, 128, (*w.shape[:2], in_c + wider, out_c + int(rng.integers(0, 9)))).astype(np.int8)
    stored[:, :, :in_c, :out_c] = w
    step = Step(0, step.op, step.source, step.inputs, step.output, step.attrs, {**step.consts, "weights": stored},
                in_shapes=step.in_shapes, out_shape=step.out_shape, prefix_weights=tuple(sorted(bounds)))
    return Program("case", prog.tensors, [step], [0], [1]), x, want, {"dsp", "ref"}


def conv_in_place_program(case: dict):
    """(Program, input, expected output) of three convolutions in a row: a 1x1 into an arena
    tensor, the case's convolution from it (its input dies there: the arena planner may put the
    output over it, as far as conv2d_s8_dsp allows), a 1x1 out of the result."""
    p, x, f, bias, mult, shift, _ = conv_case(case, seed=seed(case["id"]))
    c, oc = p["in_c"], p["out_c"]
    rng = np.random.default_rng(seed(case["id"]) + 1)
    x0 = rng.integers(-128, 128, size=x.shape).astype(np.int8)
    keys = dict(stride_h=1, stride_w=1, dil_h=1, dil_w=1, pad_top=0, pad_left=0, act_min=-128, act_max=127)
    pointwise = []
    for k, (cin, cout) in enumerate([(c, c), (oc, oc)]):
        w = rng.integers(-127, 128, size=(cout, 1, 1, cin)).astype(np.int8)
        m, sh = rng.integers(2**30, 2**31, size=cout).astype(np.int32), np.full(cout, -9 - cin // 8, np.int32)
        pointwise.append((w, None, m, sh, dict(keys, input_offset=3 - k, output_offset=-5 + k)))

    def run(w, b, m, sh, q, a):
        return ref.conv2d_s8_ref(a, w, b, m, sh, out_h=a.shape[1], out_w=a.shape[2], **q) if w.shape[1] == 1 \
            else ref.conv2d_s8_ref(a, w, b, m, sh, **ref_kwargs(q, CONV_REF_KEYS))

    a = run(*pointwise[0], x0)
    b = ref.conv2d_s8_ref(a, f, bias, mult, shift, **ref_kwargs(p, CONV_REF_KEYS))
    want = run(*pointwise[1], b)
    tensors = [Tensor(0, "x", x0.shape, "int8", "input"), Tensor(1, "a", a.shape, "int8"),
               Tensor(2, "b", b.shape, "int8"), Tensor(3, "y", want.shape, "int8", "output")]

    def step(i, w, b_, m, sh, q, src, dst, shapes):
        attrs = {"input_zp": -q["input_offset"], "output_zp": q["output_offset"], "act_min": q["act_min"],
                 "act_max": q["act_max"], "multiplier": [int(v) for v in m], "shift": [int(v) for v in sh],
                 "strides": [q["stride_h"], q["stride_w"]], "padding": [q["pad_top"], q["pad_left"], 0, 0],
                 "dilation": [q["dil_h"], q["dil_w"]], "groups": 1, "kernel_layout": "HWIO"}
        consts = {"weights": np.ascontiguousarray(w.transpose(1, 2, 3, 0))}
        if b_ is not None:
            consts["bias"] = b_
        return Step(i, "adaptc.qconv2d", "test case", [src], dst, attrs, consts, in_shapes=[shapes[0]],
                    out_shape=shapes[1])

    steps = [step(0, *pointwise[0][:4], pointwise[0][4], 0, 1, (x0.shape, a.shape)),
             step(1, f, bias, mult, shift, p, 1, 2, (a.shape, b.shape)),
             step(2, *pointwise[1][:4], pointwise[1][4], 2, 3, (b.shape, want.shape))]
    return Program("case", tensors, steps, [0], [3]), x0, want


def fc_program(case: dict):
    """(Program, input, expected output, supported variants) of a fully connected case."""
    p, x, w, bias, mult, shift = fc_case(case)
    want = ref.fully_connected_s8_ref(x, w, bias, mult, shift, **ref_kwargs(p, FC_REF_KEYS))
    attrs = {"input_zp": -p["input_offset"], "output_zp": p["output_offset"], "act_min": p["act_min"],
             "act_max": p["act_max"], "multiplier": [int(v) for v in mult], "shift": [int(v) for v in shift],
             "filter_offset": p["filter_offset"]}
    prog = one_step_program("adaptc.qdense", attrs, {"weights": np.ascontiguousarray(w.T), "bias": bias},
                            [x.shape], want.shape)
    # the optimized kernels take symmetric weights (filter offset 0) only
    return prog, x, want, set(family_variants("fully_connected")) if p["filter_offset"] == 0 else {"ref"}


def add_program(case: dict, size: int = 256):
    """An add of the input to itself with the case's two (offset, multiplier, shift): every int8
    value through both input paths (the direct tests of add_s8 pair independent inputs)."""
    params = add_case(case)[0]
    size = case.get("size", size)
    x = np.arange(-128, 128, dtype=np.int8)[np.random.default_rng(seed(case["id"])).permutation(size) % 256]
    kw = {k: v for k, v in params.items() if k not in ("size", "act_min", "act_max")}
    want = ref.add_s8_ref(x, x, act_min=params["act_min"], act_max=params["act_max"], **kw)
    attrs = {"left_shift": params["left_shift"], "input1_zp": -params["input1_offset"],
             "input2_zp": -params["input2_offset"], "input1_multiplier": params["input1_multiplier"],
             "input1_shift": params["input1_shift"], "input2_multiplier": params["input2_multiplier"],
             "input2_shift": params["input2_shift"], "multiplier": [params["output_multiplier"]],
             "shift": [params["output_shift"]], "output_zp": params["output_offset"],
             "act_min": params["act_min"], "act_max": params["act_max"]}
    prog = one_step_program("adaptc.qadd", attrs, {}, [x.shape, x.shape], x.shape, same_input=True)
    return prog, x, want, set(family_variants("add"))


# packed low-bit weights (adaptc.formats): conv / fc cases with the weights drawn from a format's
# grid, each with TFLite-style multipliers and with power-of-two requantization (every
# multiplier 2^30: the multiplication-free kernels)
PACKED_FORMATS = ("pot2", "pot3", "pot4", "pot5", "int4")


def packed_program(kind: str, case: dict, fmt_name: str, pot_requant: bool):
    """(Program, input, expected output, supported variants) of a conv ("conv") or fully
    connected ("fc") case with packed weights of format ``fmt_name``."""
    fmt = formats.get(fmt_name)
    rng = np.random.default_rng(seed(case["id"] + fmt_name + str(pot_requant)))
    if kind == "conv":
        p, x, f, bias, mult, shift, _ = conv_case(case, seed=seed(case["id"]))
    else:
        p, x, f, bias, mult, shift = fc_case(case)
    f = rng.choice(fmt.grid, size=f.shape).astype(np.int16 if fmt.max_value > 127 else np.int8)
    if pot_requant:                      # a power-of-two scale ratio 2^(shift - 1), shifts that fit the values
        mult = np.full_like(mult, 1 << 30)
        spread = np.log2(np.abs(f.astype(np.float64)).reshape(len(mult), -1).sum(axis=1) * 128 + 1)
        shift = (7 - np.ceil(spread)).astype(np.int32) + rng.integers(-1, 2, size=len(mult))
    if kind == "conv":
        want = ref.conv2d_s8_ref(x, f, bias, mult, shift, **ref_kwargs(p, CONV_REF_KEYS))
        attrs = {"input_zp": -p["input_offset"], "output_zp": p["output_offset"], "act_min": p["act_min"],
                 "act_max": p["act_max"], "strides": [p["stride_h"], p["stride_w"]],
                 "padding": [p["pad_top"], p["pad_left"], 0, 0], "dilation": [p["dil_h"], p["dil_w"]],
                 "groups": 1, "kernel_layout": "HWIO"}
        consts, op = {"weights": np.ascontiguousarray(f.transpose(1, 2, 3, 0)), "bias": bias}, "adaptc.qconv2d"
    else:
        want = ref.fully_connected_s8_ref(x, f, bias, mult, shift, **ref_kwargs(p, FC_REF_KEYS))
        attrs = {"input_zp": -p["input_offset"], "output_zp": p["output_offset"], "act_min": p["act_min"],
                 "act_max": p["act_max"], "filter_offset": 0}
        consts, op = {"weights": np.ascontiguousarray(f.T), "bias": bias}, "adaptc.qdense"
    attrs.update(multiplier=[int(v) for v in mult], shift=[int(v) for v in shift], weight_format=fmt_name)
    prog = one_step_program(op, attrs, consts, [x.shape], want.shape)
    # packed kernels: conv2d_s8_packed / fully_connected_s8_packed and their _dsp drop-ins, which
    # take formats of at most 8 bits
    return prog, x, want, {"ref", "dsp"} if fmt.max_value <= 127 else {"ref"}


def packed_params(kind: str, cases: list, names: tuple) -> list:
    """The packed cases of ``kind`` for the cases named ``names``, every format, both requantizations."""
    return [pytest.param((kind, c, fmt, pot), id=f"{kind}-{c['id']}-{fmt}-{'pot' if pot else 'mbqm'}")
            for c in cases if c["id"] in names for fmt in PACKED_FORMATS for pot in (False, True)]


# ------------------------------------------------------------------------------- build and run

def compiled(built, target: str, variants: tuple):
    """(CompiledModel, input, expected output) of a built case for ``target`` with ``variants``;
    asserts that the variant that runs is the first of ``variants`` the case supports."""
    prog, x, want, supported = built
    m = api.compile_program(prog, target, kernels=",".join(variants))
    ran = m.scheduled.steps[0].variant
    assert ran == next(v for v in variants if v in supported), (ran, variants, supported)
    return m, x, want


def compiled_packed(built, target: str, variants: tuple):
    """compiled() of a packed case; also asserts that the kernel is a packed one."""
    m, x, want = compiled(built, target, variants)
    step = m.scheduled.steps[0]
    assert step.kernel.endswith("_dsp") if step.variant == "dsp" else step.kernel.endswith("_packed"), step.kernel
    return m, x, want


def check_on_host(m, x, want):
    """The compiled program run on the host gives ``want``, bit for bit."""
    np.testing.assert_array_equal(m.run(x), want)


def check_emulated(m, x, want):
    """The compiled program run on its emulated core gives ``want``, bit for bit; the run."""
    r = m.run_on_target(x)
    np.testing.assert_array_equal(r.outputs, want)
    return r


def selected_kernels(builds, variant_params) -> set[str]:
    """The kernels the registry selects for the built cases on each (target, variants) param."""
    seen = set()
    for built in builds:
        for p in variant_params:
            target, variants = p.values
            seen.add(api.compile_program(built[0], target, kernels=",".join(variants)).scheduled.steps[0].kernel)
    return seen
