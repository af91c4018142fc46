"""Regenerate targets/cortex_m/data/code_sizes.json: the machine-code bytes and stack of every C kernel on
every Cortex-M core, measured by cross-compiling synthetic programs -- never the models the
estimate (targets/cortex_m/sizes.py) is checked against.

Each kernel is measured the way a model uses it: Programs of one op with random weights and three
geometries are built here, rendered by the code generator (targets/cortex_m/emit.py ``emit_c``) and
compiled with the firmware build's flags (targets/firmware.py ``CFLAGS`` and the core's
``gcc_flags``), then linked into an ELF entered at ``m_run`` so that the C library's and libgcc's
frames are known (targets/firmware.py ``StackAnalysis``, as the firmware report). Code bytes are
the object's allocated read-only sections less the arrays (``.rodata.s<i>_*``,
``.rodata.shared_*``) and the parameter structs (``.rodata.s<i>_params``). Per core and kernel:

* ``once``: the kernel called once. gcc inlines a static function called once into its caller and
  folds the constant parameter struct into the code (the struct is then dropped): the median over
  the geometries (``range``: the extremes), whether the struct was kept, ``<prefix>_run``'s frame
  and the deepest call below it.
* ``shared``: called n = 2, 3, 4 times: a line through the code of those programs gives the body
  (``code``, 0 when gcc inlines the kernel at every call) and ``per_call`` (argument set-up and
  the call, or the inlined copy); the caller's frame and the deepest call (the kernel's own frame
  and what it calls).
* ``helpers``: functions the kernel calls that gcc keeps apart (``ADAPTC_NOINLINE`` loops of
  dsp.h), counted once per model.

Per core also: ``model`` -- a program without steps (``<prefix>_run`` alone) and ``exits`` -- what a
model with early exits adds (the ``_segments`` switch, the gate tests, ``_leave``, the
controller), ``code + per_exit * exits`` fitted on gated programs of 2..4 exits with the kernels'
own figures taken off; ``shared_helpers`` -- ``static inline`` helpers gcc inlines into one caller
but keeps apart once two kernels call them (dsp.h ``adaptc_im2col_x4``, ``adaptc_unpack_row``):
their bytes and, per calling kernel called once or more often, the bytes its inlined copy takes
(least squares over programs holding two callers, each once or twice).

Usage: ``.venv/bin/python benchmarks/measure_code_sizes.py [--out FILE] [--cores ...] [--check]``;
``--kernels K ...`` measures only those kernels (on the synthetic layers of benchmarks/synthetic_ops.py
for the operators added since) and merges their entries, and the helpers they pull in, into the
existing table (benchmarks/kernel_tables.py runs it with the cost fit for a new kernel).
(80 s on 2 cores; ``--check`` prints the estimate against the compiler for mixed
synthetic programs).
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from adaptc import formats, gates
from adaptc.exits import Controller
from adaptc.program import Exit, Program, Step, Tensor
from adaptc.targets.cortex_m import CORES, sizes
from adaptc.targets.cortex_m.emit import emit_c
from adaptc.targets.cortex_m.firmware import CFLAGS, LDLIBS, StackAnalysis, cross_cc
from adaptc.targets.cortex_m.kernels import select
from adaptc.targets.cortex_m.schedule import schedule

TARGETS = {c.name: c for c in CORES}
sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic_ops import OPS as SYNTHETIC  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "targets" / "cortex_m" / "data" / "code_sizes.json"
_DATA = re.compile(r"^\.rodata\.(s\d+_|shared_)")
_PARAMS = re.compile(r"^\.rodata\.s(\d+)_params$")
_LIBRARY = re.compile(r"^(__|mem|str|exp|log|sqrt)")       # libgcc, libc, libm: in the ELF, not the model
PREFIX = "m"                                                # the synthetic programs' C prefix


# ------------------------------------------------------------------------------------ specimens
# f(i) -> (op, attrs, consts, in_shapes, out_shape, input dtype, output dtype) for geometry i


def _rng(*key) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def _requant(n: int) -> dict:
    return {"multiplier": [1518500250 - 4099 * i for i in range(n)], "shift": [-7 - i % 3 for i in range(n)]}


_CONVS = [((1, 8, 8, 4), 8, (3, 3), 1, 1), ((1, 9, 9, 3), 16, (3, 3), 2, 0), ((1, 6, 6, 16), 8, (1, 1), 1, 0)]
_DEPTHWISE = [((1, 8, 8, 8), (3, 3), 1, 1), ((1, 9, 9, 16), (3, 3), 2, 0), ((1, 6, 6, 8), (5, 5), 1, 2)]
_DENSE = [(64, 10), (128, 32), (20, 7)]
_POOLS = [((1, 8, 8, 8), 2, 2, 0), ((1, 8, 8, 16), 8, 8, 0), ((1, 9, 9, 4), 3, 2, 1)]
_SIZES = [256, 100, 64]
_ROWS = [(1, 10), (1, 32), (2, 16)]
_PADS = [((1, 8, 8, 4), [0, 0, 1, 1, 1, 1, 0, 0]), ((1, 5, 5, 8), [0, 0, 0, 1, 0, 1, 0, 0]),
         ((1, 6, 6, 2), [0, 0, 2, 2, 2, 2, 0, 0])]
_TRANSPOSES = [((1, 4, 4, 8), [0, 3, 1, 2]), ((1, 8, 16), [0, 2, 1]), ((4, 6), [1, 0])]
_CLASSES = [10, 7, 16]


def _out(size, k, stride, pad):
    return (size + 2 * pad - k) // stride + 1


def conv(i: int, f32=False, depthwise=False, fmt: str | None = None):
    if depthwise:
        shape, (kh, kw), stride, pad = _DEPTHWISE[i % 3]
        out_c, groups, layout, wshape = shape[3], shape[3], "HWOI", (kh, kw, shape[3], 1)
    else:
        shape, out_c, (kh, kw), stride, pad = _CONVS[i % 3]
        groups, layout, wshape = 1, "HWIO", (kh, kw, shape[3], out_c)
    rng = _rng("conv", i, depthwise, fmt)
    w = rng.choice(formats.get(fmt).grid if fmt else np.arange(-3, 4), size=wshape)
    out = (1, _out(shape[1], kh, stride, pad), _out(shape[2], kw, stride, pad), out_c)
    attrs = {"strides": [stride, stride], "padding": [pad] * 4, "dilation": [1, 1], "groups": groups,
             "kernel_layout": layout}
    if f32:
        consts = {"weights": w.astype(np.float32), "bias": rng.standard_normal(out_c).astype(np.float32)}
        attrs.update(act_min=0.0, act_max=6.0)
        return "adaptc.conv2d_f32", attrs, consts, [shape], out, "float32", "float32"
    attrs.update(input_zp=-3, output_zp=5, act_min=-128, act_max=127, **_requant(out_c))
    if fmt:
        attrs["weight_format"] = fmt
    consts = {"weights": w.astype(np.int8), "bias": rng.integers(-100, 100, out_c).astype(np.int32)}
    return "adaptc.qconv2d", attrs, consts, [shape], out, "int8", "int8"


def dense(i: int, f32=False, fmt: str | None = None, size: tuple[int, int] | None = None):
    n_in, n_out = size or _DENSE[i % 3]
    rng = _rng("dense", i, fmt, size)
    w = rng.choice(formats.get(fmt).grid if fmt else np.arange(-3, 4), size=(n_in, n_out))
    if f32:
        consts = {"weights": w.astype(np.float32), "bias": rng.standard_normal(n_out).astype(np.float32)}
        return "adaptc.dense_f32", {}, consts, [(1, n_in)], (1, n_out), "float32", "float32"
    attrs = {"input_zp": 2, "output_zp": -1, "act_min": -128, "act_max": 127, "filter_offset": 0, **_requant(n_out)}
    if fmt:
        attrs["weight_format"] = fmt
    consts = {"weights": w.astype(np.int8), "bias": rng.integers(-100, 100, n_out).astype(np.int32)}
    return "adaptc.qdense", attrs, consts, [(1, n_in)], (1, n_out), "int8", "int8"


def add(i: int, f32=False):
    shape = (1, _SIZES[i % 3])
    if f32:
        return "adaptc.add_f32", {}, {}, [shape, shape], shape, "float32", "float32"
    attrs = {"left_shift": 20, "input1_zp": 3, "input1_multiplier": 1073741824, "input1_shift": 0,
             "input2_zp": -7, "input2_multiplier": 1518500250 - i, "input2_shift": -1,
             "multiplier": [1200000000 + i], "shift": [-19], "output_zp": 2, "act_min": -128, "act_max": 127}
    return "adaptc.qadd", attrs, {}, [shape, shape], shape, "int8", "int8"


def pool(i: int, kind: str, f32=False):
    shape, k, stride, pad = _POOLS[i % 3]
    out = (1, _out(shape[1], k, stride, pad), _out(shape[2], k, stride, pad), shape[3])
    attrs = {"pool_size": [k, k], "strides": [stride, stride], "padding": [pad] * 4}
    if f32:
        return f"adaptc.{kind}_pool2d_f32", {**attrs, "act_min": -1e30, "act_max": 1e30}, {}, [shape], out, \
            "float32", "float32"
    return f"adaptc.q{kind}_pool2d", {**attrs, "act_min": -128, "act_max": 127}, {}, [shape], out, "int8", "int8"


def softmax(i: int, f32=False):
    shape = _ROWS[i % 3]
    if f32:
        return "adaptc.softmax_f32", {"beta": 1.0}, {}, [shape], shape, "float32", "float32"
    table = gates.exp_table(0.1 + 0.01 * i).astype(np.int32) << 16
    return "adaptc.qsoftmax", {}, {"exp_table": table}, [shape], shape, "int8", "int8"


def lut(i: int):
    shape = (1, _SIZES[i % 3])
    return "adaptc.qlut", {}, {"table": _rng("lut", i).integers(-128, 128, 256).astype(np.int8)}, [shape], shape, \
        "int8", "int8"


def clamp(i: int):
    shape = (1, _SIZES[i % 3])
    return "adaptc.clamp_f32", {"act_min": 0.0, "act_max": 6.0}, {}, [shape], shape, "float32", "float32"


def pad(i: int, f32=False):
    shape, widths = _PADS[i % 3]
    out = tuple(d + widths[2 * j] + widths[2 * j + 1] for j, d in enumerate(shape))
    dt = "float32" if f32 else "int8"
    return "adaptc.pad_f32" if f32 else "adaptc.qpad", {"pad_width": widths, "pad_value": 0 if f32 else -3}, {}, \
        [shape], out, dt, dt


def transpose(i: int, f32=False):
    shape, axes = _TRANSPOSES[i % 3]
    dt = "float32" if f32 else "int8"
    return "adaptc.transpose", {"axes": axes}, {}, [shape], tuple(shape[a] for a in axes), dt, dt


def gate(i: int, criterion: str, f32=False):
    """A gate whose confidence goes to the arena (in a program with exits: the result struct)."""
    c = _CLASSES[i % 3]
    if f32:
        return "adaptc.gate_f32", {"criterion": criterion, "threshold": 0.5 + 0.01 * i}, {}, [(1, c)], (), \
            "float32", "float32"
    scale = 0.05 + 0.01 * i
    attrs, consts = {"criterion": criterion, "threshold": 20000 + i}, {"exp_table": gates.exp_table(scale)}
    if criterion == "entropy":
        consts["ln_table"] = gates.ln_table()
        attrs["scale_q16"] = gates.scale_q16(scale)
    elif criterion == "margin":
        consts = {}
    return "adaptc.qgate", attrs, consts, [(1, c)], (), "int8", "int32"


SPECIMENS = {
    "conv2d_s8": conv, "depthwise_conv2d_s8": lambda i: conv(i, depthwise=True),
    "conv2d_s8_int4": lambda i: conv(i, fmt="int4"), "conv2d_s8_pot5": lambda i: conv(i, fmt="pot5"),
    "fully_connected_s8": dense, "fully_connected_s8_int4": lambda i: dense(i, fmt="int4"),
    "fully_connected_s8_pot5": lambda i: dense(i, fmt="pot5"),
    "add_s8": add, "avg_pool_s8": lambda i: pool(i, "avg"), "max_pool_s8": lambda i: pool(i, "max"),
    "softmax_s8": softmax, "lut_s8": lut, "pad_s8": pad, "transpose_s8": transpose,
    **{f"gate_{c}_s8": (lambda c: lambda i: gate(i, c))(c) for c in gates.CRITERIA},
    # the operators added since, from their synthetic layers (fixed seeds)
    **{op: (lambda op, dt, layer: lambda i: (*layer(_rng(op, i)), *((dt, dt) if isinstance(dt, str) else dt)))(
        op, dt, layer) for op, (dt, layer) in SYNTHETIC.items()},
    "conv2d_f32": lambda i: conv(i, f32=True), "depthwise_conv2d_f32": lambda i: conv(i, f32=True, depthwise=True),
    "fully_connected_f32": lambda i: dense(i, f32=True), "add_f32": lambda i: add(i, f32=True),
    "avg_pool_f32": lambda i: pool(i, "avg", True), "max_pool_f32": lambda i: pool(i, "max", True),
    "softmax_f32": lambda i: softmax(i, True), "clamp_f32": clamp, "pad_f32": lambda i: pad(i, True),
    "transpose_f32": lambda i: transpose(i, True),
    **{f"gate_{c}_f32": (lambda c: lambda i: gate(i, c, True))(c) for c in gates.CRITERIA},
}


def chain(specs: list) -> Program:
    """A Program running the specimens one after another through the arena: step 0 reads the
    input, the last writes the output; a step whose input type differs from the previous output
    (a gate after a gate) reads the input."""
    tensors = [Tensor(0, "x", tuple(specs[0][3][0]), specs[0][5], "input")]
    steps = []
    for i, (op, attrs, consts, in_shapes, out_shape, dt_in, dt_out) in enumerate(specs):
        last = i == len(specs) - 1 and op not in ("adaptc.qgate", "adaptc.gate_f32")
        src = i if tensors[i].dtype == dt_in else 0
        tensors.append(Tensor(i + 1, f"t{i + 1}", tuple(out_shape) or (1,), dt_out, "output" if last else "arena"))
        attrs = dict(attrs)
        prefix = tuple(attrs.pop("prefix_weights", ()))     # a width level's step (synthetic_ops.py)
        steps.append(Step(i, op, f"specimen {i}", [src] * len(in_shapes), i + 1, attrs, dict(consts),
                          in_shapes=[tuple(s) for s in in_shapes], out_shape=tuple(out_shape), prefix_weights=prefix))
    if tensors[-1].kind != "output":
        tensors.append(Tensor(len(tensors), "y", (1,), tensors[0].dtype, "output"))
    return Program(PREFIX, tensors, steps, [0], [len(tensors) - 1])


def empty() -> Program:
    """A program without steps: <prefix>_run checks its arguments and returns."""
    prog = chain([transpose(0)])
    prog.steps = []
    return prog


def gated(n_exits: int, f32: bool) -> Program:
    """A Program with early exits: per segment a fully connected layer into the arena, one into the
    exit's head (the caller's logits) and a max_prob gate."""
    dt = "float32" if f32 else "int8"
    tensors, steps, exits, thresholds = [Tensor(0, "x", (1, 16), dt, "input")], [], [], []
    prev = 0
    for e in range(n_exits):
        for j, (n_out, kind) in enumerate(((16, "arena"), (10, "output"))):
            op, attrs, consts, in_shapes, out_shape, _, _ = dense(2 * e + j, f32, size=(16, n_out))
            tensors.append(Tensor(len(tensors), f"t{len(tensors)}", out_shape, dt, kind))
            steps.append(Step(len(steps), op, "specimen", [prev], len(tensors) - 1, attrs, consts,
                              in_shapes=in_shapes, out_shape=out_shape))
            prev = len(tensors) - 1 if kind == "arena" else prev
        head = len(tensors) - 1
        op, attrs, consts, *_ = gate(e, "max_prob", f32)
        if e == n_exits - 1:
            attrs["threshold"] = -np.inf if f32 else -(1 << 31)
        thresholds.append(attrs["threshold"])
        tensors.append(Tensor(len(tensors), f"g{e}", (), "bool", "gate"))
        steps.append(Step(len(steps), op, "specimen", [head], len(tensors) - 1, attrs, consts,
                          in_shapes=[(1, 10)], out_shape=()))
        exits.append(Exit(e, head, len(steps) - 1))
    prog = Program(PREFIX, tensors, steps, [0], [exits[-1].head], exits=exits)
    prog.controller = Controller.default(thresholds[:-1], "max_prob", not f32)
    return prog


# ------------------------------------------------------------------------------------ measuring


def build(prog: Program, target, variants: tuple[str, ...], extra_flags: tuple[str, ...] = ()) -> dict:
    """Render ``prog`` with ``variants`` and cross-compile it: the rendered program, code bytes,
    text bytes by function, steps whose params struct was kept, and stack figures of the caller
    of the kernels (``_segments`` with exits, else ``_run``): its frame, the deepest call below
    it; the worst stack of ``_run``; the call graph."""
    scheduled = schedule(prog, target, ",".join(variants))
    files = emit_c(scheduled, target, {"kernels": ",".join(variants)})
    cc = cross_cc()
    with tempfile.TemporaryDirectory(prefix="adaptc-sizes-") as d:
        for name, text in files.items():
            Path(d, name).write_text(text)
        _run([cc, *CFLAGS, *target.gcc_flags, *extra_flags, "-c", f"{PREFIX}.c", "-o", f"{PREFIX}.o"], d)
        _run([cc, *target.gcc_flags, "-nostartfiles", "-Wl,--gc-sections", f"-Wl,-e,{PREFIX}_run", f"{PREFIX}.o",
              *LDLIBS, "-o", f"{PREFIX}.elf"], d)
        sections = _sections(Path(d, f"{PREFIX}.o"))
        stack = StackAnalysis.from_dir(Path(d), Path(d, f"{PREFIX}.elf"))
    functions = {}
    for name, (size, _) in sections.items():
        if name.startswith(".text."):
            base = name[6:].split(".")[0]
            functions[base] = functions.get(base, 0) + size
    caller = f"{PREFIX}_segments" if prog.exits else f"{PREFIX}_run"
    return {"program": scheduled, "kernels": {s.kernel for s in scheduled.steps}, "functions": functions,
            "code": sum(size for name, (size, kind) in sections.items() if kind == "ro" and not _DATA.match(name)),
            "params": {int(m.group(1)) for m in map(_PARAMS.match, sections) if m},
            "frame": stack.frames.get(caller, 0),
            "callee": max((stack.worst(c) for c in stack.calls.get(caller, ())), default=0),
            "worst": stack.worst(f"{PREFIX}_run"), "stack": {n.split(".")[0]: stack.worst(n) for n in stack.frames},
            "calls": {n.split(".")[0]: {c.split(".")[0] for c in cs} for n, cs in stack.calls.items()}}


def _sections(path: Path) -> dict[str, tuple[int, str]]:
    """Allocated sections of an object: name -> (bytes, "ro" | "rw" | "bss")."""
    from elftools.elf.constants import SH_FLAGS
    from elftools.elf.elffile import ELFFile

    out = {}
    with open(path, "rb") as f:
        for sec in ELFFile(f).iter_sections():
            flags = sec["sh_flags"]
            if flags & SH_FLAGS.SHF_ALLOC:
                kind = "bss" if sec["sh_type"] == "SHT_NOBITS" else "rw" if flags & SH_FLAGS.SHF_WRITE else "ro"
                out[sec.name] = (sec["sh_size"], kind)
    return out


def _run(cmd, cwd):
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0 or r.stderr.strip():
        raise RuntimeError(f"{' '.join(cmd)}:\n{(r.stdout + r.stderr)[-3000:]}")


def variant_sets(target) -> list[tuple[str, ...]]:
    """The kernel variants a core runs, best first, and each fallback: every kernel it can pick."""
    v = target.kernel_variants
    return [v[i:] for i in range(len(v))]


def chosen(spec, variants) -> str:
    """The kernel function the core's kernel table picks for a specimen."""
    prog = chain([spec])
    return select(prog.steps[0], prog, variants).function


def kernel_jobs(target, pool: ThreadPoolExecutor, only: set | None = None) -> tuple[dict, dict]:
    """The specimen programs of every kernel the core can pick (or those in ``only``):
    ({kernel: {(calls, geometry): future}}, {kernel: (variants, specimen)})."""
    jobs, where = {}, {}
    for variants in variant_sets(target):
        for key, spec in SPECIMENS.items():
            names = {chosen(spec(g), variants) for g in range(3)}
            if len(names) != 1:
                raise RuntimeError(f"{target.name} {key}: the geometries pick kernels {sorted(names)}")
            name = names.pop()
            if name in jobs or (only is not None and name not in only):
                continue
            where[name] = (variants, spec)
            jobs[name] = {**{(1, g): pool.submit(build, chain([spec(g)]), target, variants) for g in range(3)},
                          **{(n, 0): pool.submit(build, chain([spec(i) for i in range(n)]), target, variants)
                             for n in (2, 3, 4)}}
    return jobs, where


def measure_kernels(target, pool: ThreadPoolExecutor, kernels: set, core: dict) -> dict:
    """``core`` (the core's table as it is) with the entries of ``kernels`` measured anew and the
    helpers they pull in added; everything else kept."""
    base = pool.submit(build, empty(), target, ("ref",))
    jobs, _ = kernel_jobs(target, pool, kernels)
    base = base.result()
    helpers = {}
    out = {**core, "kernels": dict(core["kernels"]), "helpers": dict(core["helpers"])}
    for name in sorted(jobs):
        runs = {k: f.result() for k, f in jobs[name].items()}
        if {k for r in runs.values() for k in r["kernels"]} != {name}:
            raise RuntimeError(f"{target.name} {name}: a specimen program picked another kernel")
        out["kernels"][name] = kernel_entry(name, runs, base, helpers)
    for h, v in sorted(helpers.items()):
        out["helpers"].setdefault(h, {"code": round(float(np.mean(v["code"]))), "stack": max(v["stack"])})
    out["kernels"] = dict(sorted(out["kernels"].items()))
    out["helpers"] = dict(sorted(out["helpers"].items()))
    return out


def measure_core(target, pool: ThreadPoolExecutor) -> dict:
    """The core's table (see the module docstring)."""
    base = pool.submit(build, empty(), target, ("ref",))
    jobs, where = kernel_jobs(target, pool)
    gated_jobs = {(dt, e): pool.submit(build, gated(e, dt == "float32"), target, target.kernel_variants)
                  for dt in ("int8", "float32") for e in (2, 3, 4)}
    base = base.result()
    core = {"model": {"code": base["code"], "stack": base["worst"],
                      "exits": {dt: {"code": 0, "per_exit": 0, "stack": 0} for dt in ("int8", "float32")}},
            "helpers": {}, "shared_helpers": {}, "kernels": {}}
    helpers = {}
    for name in sorted(jobs):
        runs = {k: f.result() for k, f in jobs[name].items()}
        if {k for r in runs.values() for k in r["kernels"]} != {name}:
            raise RuntimeError(f"{target.name} {name}: a specimen program picked another kernel")
        core["kernels"][name] = kernel_entry(name, runs, base, helpers)
    core["helpers"] = {h: {"code": round(float(np.mean(v["code"]))), "stack": max(v["stack"])}
                       for h, v in sorted(helpers.items())}
    core["shared_helpers"] = shared_helpers(target, core, where, pool)
    table = {"cores": {target.name: core}}
    for dt in ("int8", "float32"):
        core["model"]["exits"][dt] = exits_entry(target, {e: gated_jobs[(dt, e)].result() for e in (2, 3, 4)}, table)
    return core


def _own(fn: str, kernel: str) -> bool:
    """Is ``fn`` the kernel itself, a model function or the C library's -- not a helper?"""
    return fn == kernel or fn.startswith(PREFIX + "_") or bool(_LIBRARY.match(fn))


def kernel_entry(name: str, runs: dict, base: dict, helpers: dict) -> dict:
    """A kernel's figures from its specimen programs ``runs`` ({(calls, geometry): build}), less
    the empty program ``base`` and the helpers it pulls in (collected into ``helpers``)."""
    used = set()
    for r in runs.values():
        for fn, size in r["functions"].items():
            if not _own(fn, name):
                used.add(fn)
                h = helpers.setdefault(fn, {"code": [], "stack": []})
                h["code"].append(size)
                h["stack"].append(r["stack"].get(fn, 0))

    def code(r):
        return r["code"] - base["code"] - sum(r["functions"].get(h, 0) for h in used)

    once = [runs[(1, g)] for g in range(3)]
    many = {n: runs[(n, 0)] for n in (2, 3, 4)}
    if any(name in r["functions"] for r in many.values()):
        per_call, body = np.polyfit(list(many), [code(r) for r in many.values()], 1)
    else:                                  # inlined at every call: no body of its own
        per_call, body = np.mean([code(r) / n for n, r in many.items()]), 0
    return {
        "helpers": sorted(used),
        "once": {"code": round(float(np.median([code(r) for r in once]))),
                 "range": [min(code(r) for r in once), max(code(r) for r in once)],
                 "params": all(r["params"] for r in once),
                 "frame": round(float(np.median([r["frame"] for r in once]))),
                 "callee": max(r["callee"] for r in once)},
        "shared": {"code": round(float(body)), "per_call": round(float(per_call), 1),
                   "params": all(len(r["params"]) == n for n, r in many.items()),
                   "frame": max(r["frame"] for r in many.values()),
                   "callee": max(r["callee"] for r in many.values())},
    }


def shared_helpers(target, core: dict, where: dict, pool: ThreadPoolExecutor) -> dict:
    """``static inline`` helpers gcc keeps apart once two kernels call them. Found in one program
    per kernel set holding every kernel twice; their callers from the call graph of the same
    program built with -fno-inline; each caller's inlined copy from programs of two callers."""
    groups = {}                            # (variants, input dtype) -> the kernels measured with those variants
    for name, (variants, specimen) in where.items():
        groups.setdefault((variants, specimen(0)[5]), []).append(name)

    def every(g):
        return chain([where[k][1](i) for k in groups[g] for i in (0, 1)])

    normal = {g: pool.submit(build, every(g), target, g[0]) for g in groups}
    flat = {g: pool.submit(build, every(g), target, g[0], ("-fno-inline",)) for g in groups}
    known = set(core["kernels"]) | set(core["helpers"])
    callers = {}
    for g in groups:
        r, graph = normal[g].result(), flat[g].result()["calls"]
        for h in r["functions"]:
            if h in known or _own(h, ""):
                continue
            for k in groups[g]:
                seen, todo = set(), [k]
                while todo:
                    for c in graph.get(todo.pop(), ()):
                        if c not in seen:
                            seen.add(c)
                            todo.append(c)
                if h in seen:
                    callers.setdefault(h, set()).add(k)
    out = {}
    modes = {"once": (0,), "shared": (0, 1)}
    for h, ks in sorted(callers.items()):
        pairs = [(a, b) for a, b in itertools.combinations(sorted(ks), 2) if chosen(where[b][1](0), where[a][0]) == b]
        combos = [((a, ma), (b, mb)) for a, b in pairs for ma in modes for mb in modes]
        runs = {c: pool.submit(build, chain([where[k][1](i) for k, m in c for i in modes[m]]), target,
                               where[c[0][0]][0]) for c in combos}
        unknowns = sorted({km for c in combos for km in c})
        rows, deltas, size = [], [], []
        for c, f in runs.items():
            r = f.result()
            if h not in r["functions"]:
                continue
            est = sizes.estimate(r["program"], target, table={"cores": {target.name: {**core, "shared_helpers": {}}}})
            size.append(r["functions"][h])
            rows.append([1.0 if km in c else 0.0 for km in unknowns])
            deltas.append(r["functions"][h] - (r["code"] - est.code_bytes))     # bytes of the two inlined copies
        if rows:
            inlined = np.linalg.lstsq(np.array(rows), np.array(deltas), rcond=None)[0]
            entry = {"code": round(float(np.mean(size))), "inlined": {}}
            for (k, m), v in zip(unknowns, inlined):
                entry["inlined"].setdefault(k, {})[m] = round(float(v))
            out[h] = entry
    return out


def exits_entry(target, runs: dict, table: dict) -> dict:
    """What a model with exits adds: the gated programs less their kernels' figures."""
    extra, stack = {}, []
    for e, r in runs.items():
        est = sizes.estimate(r["program"], target, table=table)
        extra[e] = r["code"] - est.code_bytes
        stack.append(r["worst"] - est.stack_bytes)
    per_exit, code = np.polyfit(list(extra), list(extra.values()), 1)
    return {"code": round(float(code)), "per_exit": round(float(per_exit), 1), "stack": max(stack)}


# ------------------------------------------------------------------------------------ check

S = SPECIMENS
MIXES = {   # mixed synthetic programs: the estimate against the compiler (--check)
    "residual": [S["conv2d_s8"](0), S["conv2d_s8"](1), S["add_s8"](0), S["conv2d_s8"](2), S["add_s8"](1),
                 S["avg_pool_s8"](1), S["fully_connected_s8"](0), S["softmax_s8"](0)],
    "depthwise": [S["conv2d_s8"](0), S["depthwise_conv2d_s8"](0), S["conv2d_s8"](2), S["depthwise_conv2d_s8"](1),
                  S["avg_pool_s8"](0), S["fully_connected_s8"](1), S["softmax_s8"](1)],
    "once": [S["pad_s8"](0), S["conv2d_s8"](0), S["max_pool_s8"](0), S["transpose_s8"](0), S["fully_connected_s8"](0)],
    "float": [S["conv2d_f32"](0), S["conv2d_f32"](1), S["add_f32"](0), S["add_f32"](1), S["avg_pool_f32"](1),
              S["fully_connected_f32"](0), S["softmax_f32"](0)],
    "mlp": [S["fully_connected_s8"](0), S["fully_connected_s8"](1), S["fully_connected_s8"](2), S["lut_s8"](0),
            S["softmax_s8"](0)],
    "packed": [S["conv2d_s8_int4"](0), S["conv2d_s8_int4"](1), S["conv2d_s8"](2), S["conv2d_s8"](0),
               S["fully_connected_s8_int4"](0), S["fully_connected_s8_int4"](1), S["fully_connected_s8"](0)],
}


def check(table: dict, cores, pool: ThreadPoolExecutor) -> None:
    jobs = {(c, k): pool.submit(build, chain(specs), TARGETS[c], TARGETS[c].kernel_variants)
            for c in cores for k, specs in MIXES.items()}
    print(f"{'core':<14} {'program':<10} {'code est':>8} {'gcc':>6} {'err':>7}   "
          f"{'stack est':>9} {'gcc':>5} {'err':>7}")
    for (c, k), f in jobs.items():
        r = f.result()
        e = sizes.estimate(r["program"], TARGETS[c], table=table)
        print(f"{c:<14} {k:<10} {e.code_bytes:>8} {r['code']:>6} {(e.code_bytes / r['code'] - 1) * 100:>+6.1f}%   "
              f"{e.stack_bytes:>9} {r['worst']:>5} {(e.stack_bytes / r['worst'] - 1) * 100:>+6.1f}%")


def dump(table: dict, indent: int = 0) -> str:
    """JSON with one line per innermost figure set (an object holding no object)."""
    if not any(isinstance(v, dict) for v in table.values()):
        return json.dumps(table)
    pad = " " * (indent + 1)
    items = [f"{pad}{json.dumps(k)}: {dump(v, indent + 1) if isinstance(v, dict) else json.dumps(v)}"
             for k, v in table.items()]
    return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--cores", nargs="*", default=list(TARGETS), choices=list(TARGETS))
    ap.add_argument("--check", action="store_true", help="only compare the estimate with mixed synthetic programs")
    ap.add_argument("--kernels", nargs="+", metavar="KERNEL",
                    help="measure only these kernels and merge their entries into --out (the others are kept)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    with ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        if args.check:
            check(json.loads(args.out.read_text()), args.cores, pool)
            return
        if args.kernels:
            table = json.loads(args.out.read_text())
            for name in args.cores:
                table["cores"][name] = measure_kernels(TARGETS[name], pool, set(args.kernels), table["cores"][name])
                print(f"{name}: {', '.join(k for k in args.kernels if k in table['cores'][name]['kernels'])}",
                      flush=True)
            args.out.write_text(dump(table) + "\n")
            print(f"merged into {args.out} in {time.perf_counter() - t0:.1f} s")
            return
        version = subprocess.run([cross_cc(), "--version"], capture_output=True, text=True).stdout.splitlines()[0]
        previous = json.loads(args.out.read_text()) if args.out.exists() else {"cores": {}}
        table = {"generator": "benchmarks/measure_code_sizes.py", "compiler": version, "cflags": list(CFLAGS),
                 "cores": {c: v for c, v in previous["cores"].items() if c not in args.cores}}   # others kept
        for name in args.cores:
            t = time.perf_counter()
            table["cores"][name] = {"gcc_flags": list(TARGETS[name].gcc_flags), **measure_core(TARGETS[name], pool)}
            kernels = len(table["cores"][name]["kernels"])
            print(f"{name}: {kernels} kernels, {time.perf_counter() - t:.1f} s", flush=True)
    args.out.write_text(dump(table) + "\n")
    print(f"wrote {args.out} in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
