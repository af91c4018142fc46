"""Cortex-M C target: a lowered Program rendered as standalone C99 through jinja2 templates.

Python computes every declaration (arrays, parameter structs, call arguments); the templates in
``templates/`` only lay them out. Output for one model named ``<prefix>``: ``<prefix>.h``
(the API) and ``<prefix>.c`` (kernels, weights, arena, ``<prefix>_run``); targets/firmware.py adds
the firmware project around them.
Identical inputs give byte-identical files.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import jinja2
import numpy as np

from adaptc import __version__
from adaptc.errors import TargetError
from adaptc.program import Program, plan

from .kernels import SCRATCH, select


@dataclass(frozen=True)
class Board:
    """Memory of a board: the reference board of a core (budget checks) or the emulated one;
    for the reference boards also the usual core clock and the flash wait states it needs there
    (the simulator's defaults, from the parts' datasheets)."""

    name: str
    flash_bytes: int
    ram_bytes: int
    flash_origin: int = 0x0
    ram_origin: int = 0x20000000
    clock_hz: float = 0.0
    flash_wait_states: int = 0


@dataclass(frozen=True)
class CortexM:
    """A Cortex-M core: what the generated code may use, the board whose memory a model must fit
    (``board``) and the QEMU machine that runs it (``qemu_machine``, memory ``emulated``)."""

    name: str
    cpu: str                          # gcc -mcpu
    has_dsp: bool
    has_fpu: bool
    has_mve: bool
    gcc_flags: tuple[str, ...]
    board: Board
    qemu_machine: str
    emulated: Board
    objdump_flags: tuple[str, ...] = ()

    @property
    def kernel_variants(self) -> tuple[str, ...]:
        """Kernel variants this core runs, best first (see targets/kernels.py)."""
        return ("mve",) * self.has_mve + ("dsp",) * self.has_dsp + ("ref",)

    @property
    def flash_bytes(self) -> int:
        return self.board.flash_bytes

    @property
    def clock_hz(self) -> float:
        return self.board.clock_hz

    @property
    def ram_bytes(self) -> int:
        return self.board.ram_bytes


_MPS2 = Board("MPS2 FPGA image (QEMU)", 4 << 20, 4 << 20)
_AN547 = Board("MPS3 AN547 Corstone-300 (QEMU; ITCM + DTCM)", 512 << 10, 512 << 10, clock_hz=32e6)

TARGETS = {t.name: t for t in (
    CortexM("cortex-m0plus", "cortex-m0plus", False, False, False, ("-mcpu=cortex-m0plus", "-mthumb"),
            Board("Raspberry Pi RP2040", 2 << 20, 264 << 10, clock_hz=133e6), "mps2-an385", _MPS2),
    CortexM("cortex-m3", "cortex-m3", False, False, False, ("-mcpu=cortex-m3", "-mthumb"),
            Board("Arduino Due (SAM3X8E)", 512 << 10, 96 << 10, clock_hz=84e6, flash_wait_states=4), "mps2-an385",
            _MPS2),
    CortexM("cortex-m4", "cortex-m4", True, True, False,
            ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"),
            Board("STM32F429ZI", 2 << 20, 256 << 10, clock_hz=180e6, flash_wait_states=5), "mps2-an386", _MPS2),
    CortexM("cortex-m7", "cortex-m7", True, True, False,
            ("-mcpu=cortex-m7", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-d16"),
            Board("STM32F767ZI", 2 << 20, 512 << 10, clock_hz=216e6, flash_wait_states=7), "mps2-an500", _MPS2),
    CortexM("cortex-m55", "cortex-m55", True, True, True, ("-mcpu=cortex-m55", "-mthumb", "-mfloat-abi=hard"),
            _AN547, "mps3-an547", _AN547, ("-m", "armv8.1-m.main")),
)}


def get_target(name: str) -> CortexM:
    try:
        return TARGETS[name]
    except KeyError:
        raise TargetError(f"unknown target {name!r}; known: {', '.join(sorted(TARGETS))}") from None


C_KEYWORDS = frozenset("""auto break case char const continue default do double else enum extern float
for goto if inline int long register restrict return short signed sizeof static struct switch typedef
union unsigned void volatile while _Bool _Complex _Imaginary main""".split())

CTYPES = {"int8": "int8_t", "int32": "int32_t", "float32": "float", "uint8": "uint8_t", "int16": "int16_t",
          "uint16": "uint16_t", "uint32": "uint32_t"}


def c_identifier(name: str) -> str:
    """A safe, lower-case C identifier from any model or tensor name."""
    ident = re.sub(r"[^0-9a-zA-Z_]", "_", name).strip("_").lower() or "model"
    ident = re.sub(r"_+", "_", ident)
    if ident[0].isdigit() or ident in C_KEYWORDS:
        ident = "m_" + ident
    return ident[:48]


def c_comment(text: str) -> str:
    """Text safe inside a /* */ comment: printable ASCII, no comment delimiters, no trigraphs."""
    text = "".join(c if 32 <= ord(c) < 127 else "?" for c in str(text))
    return text.replace("*/", "* /").replace("/*", "/ *").replace("??", "? ?").replace("\\", "/")


def _c_value(v) -> str:
    if isinstance(v, (bool, np.bool_)):
        return str(int(v))
    if isinstance(v, (int, np.integer)):
        v = int(v)
        return "INT32_MIN" if v == -(1 << 31) else str(v)
    if isinstance(v, (float, np.floating)):
        return _c_float(v)
    if isinstance(v, (list, tuple)):
        return "{" + ", ".join(_c_value(x) for x in v) + "}"
    raise TypeError(f"cannot render {v!r} as C")


def _c_float(v) -> str:
    v = np.float32(v)
    if np.isinf(v):
        return "FLT_MAX" if v > 0 else "-FLT_MAX"
    if np.isnan(v):
        raise TargetError("NaN in a float parameter")
    return np.format_float_scientific(v, unique=True, trim="-").replace("e+", "e") + "f"


def _c_array_values(data: np.ndarray, per_line: int) -> str:
    flat = data.reshape(-1)
    if data.dtype == np.float32:
        items = [_c_float(x) for x in flat]
    elif data.dtype.kind == "u" and data.dtype.itemsize >= 2:
        items = [f"{int(x)}u" for x in flat]
    else:
        items = [_c_value(int(x)) for x in flat]
    lines = [", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
    return ",\n".join("    " + line for line in lines)


def _env() -> jinja2.Environment:
    root = resources.files("adaptc.templates")
    return jinja2.Environment(loader=jinja2.FunctionLoader(lambda name: (root / name).read_text()),
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                              keep_trailing_newline=True, autoescape=False)


def _kernel_file(name: str) -> str:
    """Text of a kernel source: ``<stem>`` (a .c file) or ``<name>.h``."""
    file = name if name.endswith(".h") else f"{name}.c"
    return (resources.files("adaptc.templates") / "kernels" / file).read_text().strip()


def struct_fields(common: str) -> dict[str, list[str]]:
    """Field names of every ``typedef struct { ... } name;`` in common.h (typedef aliases too)."""
    fields = {}
    for body, name in re.findall(r"typedef struct\s*\{(.*?)\}\s*(\w+);", common, re.S):
        body = re.sub(r"/\*.*?\*/", "", body, flags=re.S)
        fields[name] = [re.sub(r"\[.*\]", "", decl.split()[-1]).lstrip("*") for decl in body.split(";") if decl.strip()]
    for old, new in re.findall(r"typedef\s+(\w+)\s+(\w+);", common):
        if old in fields:
            fields[new] = fields[old]
    return fields


def _shape_text(shape) -> str:
    return "x".join(str(d) for d in shape) or "scalar"


def emit_c(prog: Program, target: CortexM, options: dict | None = None,
           quantization: dict | None = None) -> dict[str, str]:
    """Render the program: {"<prefix>.h": ..., "<prefix>.c": ...} (firmware files: firmware.py).
    ``quantization``: {"input"|"output": (scale, zero_point)} of an int8 model, for the header."""
    prefix = c_identifier(prog.name)
    options = options or {}
    opt_text = ", ".join(f"{k}={options[k]}" for k in sorted(options)) or "defaults"
    banner = "\n".join([
        "/*",
        f" * Generated by adaptc {__version__} -- do not edit.",
        f" * model: {c_comment(prog.name)}",
        f" * target: {target.name} (dsp={int(target.has_dsp)}, fpu={int(target.has_fpu)}, mve={int(target.has_mve)})",
        f" * options: {c_comment(opt_text)}",
        " */"])
    if len(prog.inputs) != 1 or len(prog.outputs) != 1:
        raise TargetError(f"model {prog.name!r} has {len(prog.inputs)} inputs and {len(prog.outputs)} outputs; "
                          "the C entry point takes exactly one of each")
    t_in, t_out = prog.tensors[prog.inputs[0]], prog.tensors[prog.outputs[0]]
    in_ctype, out_ctype = CTYPES[t_in.dtype], CTYPES[t_out.dtype]

    def pointer(tid: int) -> str:
        t = prog.tensors[tid]
        if t.kind == "input":
            return "input"
        if t.kind == "output":
            return "output"
        if t.kind == "gate":
            return "&result->confidence"
        return f"({CTYPES[t.dtype]} *)(arena.bytes + {t.offset})"

    common = _kernel_file("common.h")
    variants = target.kernel_variants
    if options.get("kernels"):                      # restrict to e.g. the reference kernels
        variants = tuple(v for v in variants if v in str(options["kernels"]).split(","))
        if not variants:
            raise TargetError(f"kernels={options['kernels']!r}: {target.name} runs {', '.join(target.kernel_variants)}")
    calls = [select(step, prog, variants) for step in prog.steps]
    scratch = plan(prog, {s.index: c.scratch_bytes for s, c in zip(prog.steps, calls)})
    kernel_files = []
    for f in (f for c in calls for f in c.files):
        if f not in kernel_files:
            kernel_files.append(f)
    kernel_files.sort(key=lambda f: not f.endswith(".h"))          # headers before kernels
    layouts = struct_fields("\n".join([common] + [_kernel_file(f) for f in kernel_files if f.endswith(".h")]))
    arrays, steps, shared = [], [], {}
    for step, call in zip(prog.steps, calls):
        if sorted(layouts.get(call.params_type, [])) != sorted(call.params):
            raise TargetError(f"kernel {call.function}: parameters {sorted(call.params)} do not match the "
                              f"fields of {call.params_type}: {sorted(layouts.get(call.params_type, []))}")
        step.kernel, step.variant = call.function, call.variant
        names = {}
        step.flash_bytes = sum(int(data.nbytes) for _, data in call.arrays if data is not None)
        for key, data in sorted(call.shared.items()):
            if key in shared:
                if not np.array_equal(shared[key], data):
                    raise TargetError(f"shared table {key!r} differs between steps")
                continue
            shared[key] = data
            step.flash_bytes += int(data.nbytes)
            arrays.append({"name": f"shared_{key}", "ctype": CTYPES[str(data.dtype)], "length": data.size,
                           "body": _c_array_values(data, 16 if data.dtype.itemsize == 1 else 8)})
        for role, data in call.arrays:
            if data is None:
                continue
            name = f"s{step.index}_{role}"
            names[role] = name
            arrays.append({"name": name, "ctype": CTYPES[str(data.dtype)], "length": data.size,
                           "body": _c_array_values(data, 16 if data.dtype.itemsize == 1 else 8)})
        def value(v):
            if v == SCRATCH:            # NULL when the kernel asked for no bytes this time
                return f"(void *)(arena.bytes + {scratch[step.index]})" if step.index in scratch else "NULL"
            if isinstance(v, tuple) and v[0] == "shared":
                return f"shared_{v[1]}"
            return names[v[1]] if isinstance(v, tuple) and v[0] == "array" else _c_value(v)
        params = [(k, value(v)) for k, v in call.params.items()]
        args = [pointer(i) for i in step.inputs]
        in_struct = {v[1] for v in call.params.values() if isinstance(v, tuple) and v[0] == "array"}
        args += [names.get(role, "NULL") for role, _ in call.arrays if role not in in_struct]
        args.append(pointer(step.output))
        shapes = " + ".join(_shape_text(s) for s in step.in_shapes)
        gate = next((e for e in prog.exits if e.gate == step.index), None)
        steps.append({"index": step.index, "function": call.function, "params_type": call.params_type,
                      "exit": None if gate is None else gate.index,
                      "last": gate is not None and gate.index == len(prog.exits) - 1,
                      "params_name": f"s{step.index}_params", "params": params, "args": args,
                      "comment": c_comment(f"{step.op} <- {step.source}; {shapes} -> "
                                           f"{_shape_text(step.out_shape)}"
                                           + (f"; {step.macs} MACs" if step.macs else ""))})
    plan_lines = [c_comment(f"{t.offset:>7} +{t.nbytes:<7} {t.name} {_shape_text(t.shape)} {t.dtype}")
                  for t in prog.tensors if t.kind == "arena"]
    plan_lines += [f"{scratch[s.index]:>7} +{c.scratch_bytes:<7} scratch of step {s.index} ({c.function})"
                   for s, c in zip(prog.steps, calls) if s.index in scratch]
    env = _env()
    ctx = {"banner": banner, "prefix": prefix, "PREFIX": prefix.upper(), "guard": f"{prefix.upper()}_ADAPTC_MODEL_H",
           "arena_bytes": prog.arena_bytes, "arena_alloc": max(prog.arena_bytes, 16),
           "weight_bytes": prog.weight_bytes,
           "in_ctype": in_ctype, "out_ctype": out_ctype,
           "inputs": [_io(t_in, in_ctype, (quantization or {}).get("input"))],
           "outputs": [_io(t_out, out_ctype, (quantization or {}).get("output"))],
           "common": common,
           "kernels": [_kernel_file(f) for f in kernel_files], "arrays": arrays, "steps": steps,
           "plan_lines": plan_lines, "exits": _exits(prog, quantization)}
    return {f"{prefix}.h": env.get_template("model.h.j2").render(ctx),
            f"{prefix}.c": env.get_template("model.c.j2").render(ctx)}


def _exits(prog, quantization) -> dict | None:
    """Header facts of a gated program: classes, criterion, each exit's logits quantization."""
    if not prog.exits:
        return None
    gate = prog.steps[prog.exits[0].gate]
    head = prog.tensors[prog.exits[0].head]
    quant = (quantization or {}).get("exits") or [None] * len(prog.exits)
    from adaptc import gates

    criterion = gate.attrs["criterion"]
    units = [None if q is None else _c_float(gates.unit(criterion, q[0])) for q in quant]
    ctl = prog.controller
    int8 = head.dtype == "int8"

    def conf(v):        # a confidence as the C type holds it (float: FLT_MAX for "never")
        return _c_value(int(np.clip(v, -2**31, 2**31 - 1))) if int8 else _c_float(v)

    start = len(prog.exits) - 1 if ctl.start is None else int(ctl.start)
    if not 0 <= start < len(prog.exits) or int(ctl.patience) < 1:
        raise TargetError(f"controller: start level {start} must be in 0..{len(prog.exits) - 1} and "
                          f"patience {ctl.patience} at least 1")
    controller = [("START", str(start)), ("TARGET", conf(ctl.target)), ("COMFORT", conf(ctl.comfort)),
                  ("PATIENCE", str(int(ctl.patience)))]
    return {"controller": controller, "count": len(prog.exits), "classes": head.shape[-1], "criterion": criterion,
            "conf_ctype": CTYPES["int32" if head.dtype == "int8" else "float32"],
            "quant": [None if q is None else {"scale": _c_float(q[0]), "zero_point": int(q[1])} for q in quant],
            "units": units}


def _io(t, ctype, quant) -> dict:
    """Header facts of one model input/output; real value = scale * (q - zero_point)."""
    return {"size": int(np.prod(t.shape)), "comment": c_comment(f"{ctype} {_shape_text(t.shape)} ({t.name})"),
            "scale": _c_float(quant[0]) if quant else None, "zero_point": int(quant[1]) if quant else None}
