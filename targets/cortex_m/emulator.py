"""Run cross-built firmware on an emulated Cortex-M core and count what it executes.

``run_on_target(model, x)`` cross-builds the model's firmware with step markers and an external
input buffer (firmware.py), runs it under QEMU on the target's board with semihosting, loads
``x`` into ``adaptc_input`` with QEMU's loader, reads the output the firmware writes to the
host, and counts executed instructions exactly with a TCG plugin (templates/firmware/armstat.c):
per PC, snapshotted at every step marker. Each PC is classified from
``arm-none-eabi-objdump`` (which, unlike capstone, decodes v8.1-M low-overhead loops and MVE) as
load, store, MAC/multiply, branch or other; a branch execution is taken or not taken. Counts are
deterministic: they depend only on the ELF and the input.

The inference is everything between the first and the last step marker; the marker function's
own instructions are excluded (the call to it -- about two instructions per step -- is not).
The firmware also paints the stack below main before the call and reports how deep the model
went (``TargetRun.stack_bytes``, a measurement to hold against the call-graph bound in
report.json).

``run_batch_on_target(model, xs, levels)`` runs many inferences in one cross build and one QEMU
launch: the firmware (built with ``-DADAPTC_BATCH``, no step markers) loops over the levels and
the inputs the loader placed in ``adaptc_batch_inputs``, and writes all results to the host in
one file. The plugin runs in its cheap mode (``totals=1``): a single inline counter of executed
instructions that leaves out ``main`` and the marker function, read at each call of the marker
main makes right before and right after ``<prefix>_run``. An inference's count is therefore
exactly the instructions executed from the first instruction of ``<prefix>_run`` through its
return, including everything it calls (kernels, memcpy, libm) -- not the call's argument set-up
or the ``bl`` in main.
"""
from __future__ import annotations

import functools
import re
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from adaptc import cache
from adaptc.errors import AdaptcError, InputError, ToolchainError
from adaptc.validation import real_array

from .firmware import ArmBuild, cross_build, output_buffers
from .host import host_cc
from .timing import CLASSES

QEMU = "qemu-system-arm"
OBJDUMP = "arm-none-eabi-objdump"

_COND = r"(eq|ne|cs|hs|cc|lo|mi|pl|vs|vc|hi|ls|ge|lt|gt|le|al)?"
_BRANCH = re.compile(rf"^(b|bl|blx|bx|cbn?z|tb[bh]|le|letp|wls|wlstp){_COND}$")
_LOAD = re.compile(r"^(ldr|ldm|pop|vldr|vldm|vpop|vld[1-4])")
_STORE = re.compile(r"^(str|stm|push|vstr|vstm|vpush|vst[1-4])")
_MAC = re.compile(r"^(mul|mla|mls|[su]mull|[su]mlal|smla|smls|smul|smmul|smmla|smmls|smuad|smusd|"
                  r"vmla|vfma|vfms|vmul|vmlav|vmladav|vmlsdav|vqdmulh|vqrdmulh|vrmulh|vmulh|vqdmull)")


def classify(mnemonic: str, operands: str) -> str:
    """Instruction class of one disassembled instruction: load, store, mac, branch or other."""
    m = re.sub(r"\.(w|n)$", "", mnemonic.lower())
    writes_pc = bool(re.match(r"^(ldr|mov|add)", m) and re.match(r"^\s*pc\b", operands)) or \
        bool(re.match(r"^(pop|ldm)", m) and re.search(r"\bpc\b", operands))
    if _BRANCH.match(m) or writes_pc:
        return "branch"
    for name, rx in (("load", _LOAD), ("store", _STORE), ("mac", _MAC)):
        if rx.match(m):
            return name
    return "other"


def tool(name: str, package: str) -> str:
    if shutil.which(name) is None:
        raise ToolchainError(f"{name} not found: install the Debian package {package} (apt-get install {package})")
    return name


def plugin() -> Path:
    """The armstat QEMU plugin, built with the host compiler into adaptc's build cache once, and
    checked against the cache's record each time it is asked for (QEMU loads it)."""
    from importlib import resources

    src = (resources.files("adaptc.templates") / "firmware" / "armstat.c").read_text()
    cc, flags = host_cc(), ("-O2", "-shared", "-fPIC")

    def build(work: Path) -> None:
        (work / "armstat.c").write_text(src)
        r = subprocess.run([cc, *flags, "-o", "armstat.so", "armstat.c"], cwd=work, capture_output=True, text=True)
        if r.returncode != 0:
            raise ToolchainError(f"building the QEMU plugin failed:\n{r.stderr[-2000:]}")

    return cache.verified(cache.entry("qemu-plugin", cache.key(cc, *flags, src), build) / "armstat.so")


@dataclass
class Disassembly:
    """PC -> (function, mnemonic, operands) of every instruction in an ELF."""

    insns: dict[int, tuple[str, str, str]]

    @classmethod
    @functools.lru_cache(maxsize=32)
    def of(cls, elf: Path, flags: tuple[str, ...] = ()) -> Disassembly:
        out = subprocess.run([tool(OBJDUMP, "binutils-arm-none-eabi"), "-d", "--no-show-raw-insn", *flags, str(elf)],
                             capture_output=True, text=True, check=True).stdout
        insns, func = {}, "?"
        for line in out.splitlines():
            head = re.match(r"^[0-9a-f]+ <([^>]+)>:$", line)
            if head:
                func = head.group(1)
                continue
            m = re.match(r"^\s+([0-9a-f]+):\s+(\S+)\s*(.*)$", line)
            if m:
                insns[int(m.group(1), 16)] = (func, m.group(2), m.group(3).split(";")[0].split("@")[0].strip())
        return cls(insns)


@dataclass
class Counts:
    """Executed instructions of one interval, by class and by function."""

    instructions: int = 0
    classes: dict = field(default_factory=lambda: dict.fromkeys(CLASSES, 0))
    memory_accesses: int = 0
    functions: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict:
        return {"instructions": self.instructions, "classes": dict(self.classes),
                "memory_accesses": self.memory_accesses, "functions": dict(self.functions.most_common())}


@dataclass
class TargetRun:
    """One inference on an emulated core: outputs and exact executed-instruction counts."""

    outputs: np.ndarray | list      # a model with several outputs: the list of them
    instructions: int               # whole inference (all steps)
    classes: dict                   # class -> instructions (load, store, mac, branch_taken, ...)
    steps: list[dict]               # per step: step, op, kernel, macs, instructions, classes, ...
    memory_accesses: int
    target: str
    machine: str
    elf: Path
    stack_bytes: int = 0            # measured: deepest stack <prefix>_run used (painted stack)
    label: int | None = None        # a model with exits: class, exit taken, its confidence
    exit: int | None = None
    confidence: float | int | None = None
    logits: np.ndarray | None = None

    @property
    def instructions_per_mac(self) -> float:
        macs = sum(s["macs"] for s in self.steps)
        return self.instructions / macs if macs else float("nan")


def _snapshots(path: Path) -> list[dict[int, tuple[int, int, int]]]:
    snaps = []
    for line in path.read_text().splitlines():
        if line.startswith("S "):
            snaps.append({})
            continue
        pc, _size, n, mem, taken = line.split()
        snaps[-1][int(pc, 16)] = (int(n), int(mem), int(taken))
    return snaps


def _interval(a: dict, b: dict, dis: Disassembly, skip: set) -> Counts:
    c = Counts()
    for pc, (n1, m1, t1) in b.items():
        n0, m0, t0 = a.get(pc, (0, 0, 0))
        n, mem, taken = n1 - n0, m1 - m0, t1 - t0
        if (n == 0 and taken == 0) or pc in skip:
            continue
        func, mnem, ops = dis.insns.get(pc, ("?", "?", ""))
        kind = classify(mnem, ops)
        c.instructions += n
        c.memory_accesses += mem
        c.functions[func] += n
        if kind == "branch":
            c.classes["branch_taken"] += taken
            c.classes["branch_not_taken"] += n - taken
        else:
            c.classes[kind] += n
    return c


def emulate(target, elf: Path, loads: dict[int, bytes], plugin_args: list[str], cwd: Path,
            timeout: float = 600.0) -> None:
    """Run ``elf`` on the QEMU board of ``target`` (a CortexM) until the firmware exits, in
    ``cwd``, where its semihosting files land: QEMU's loader first writes each ``loads`` value at
    its address; the armstat plugin runs with ``plugin_args`` (``name=value``). ``elf`` and the
    plugin are files of adaptc's build cache, checked against its record first (CacheError).
    AdaptcError on a timeout or a non-zero exit status."""
    cmd = [tool(QEMU, "qemu-system-arm"), "-M", target.qemu_machine, "-nographic", "-monitor", "none",
           "-serial", "none", "-semihosting-config", "enable=on,target=native", "-kernel", str(cache.verified(elf))]
    for i, (addr, data) in enumerate(loads.items()):
        (cwd / f"load{i}.bin").write_bytes(data)
        cmd += ["-device", f"loader,file=load{i}.bin,addr=0x{addr:x},force-raw=on"]
    cmd += ["-plugin", ",".join([str(plugin()), *(f"arg={a}" for a in plugin_args)])]
    try:
        r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AdaptcError(f"{elf.name} on {target.qemu_machine}: no exit after {timeout:.0f} s") from None
    if r.returncode != 0:
        raise AdaptcError(f"{elf.name} on {target.qemu_machine} exited with status {r.returncode} "
                          f"(0xad = fault):\n{(r.stdout + r.stderr)[-2000:]}")


def run_on_target(model, x: np.ndarray, timeout: float = 600.0, level: int | None = None) -> TargetRun:
    """Cross-build ``model`` for its target, run one inference under QEMU and count it. A
    model with exits runs at ``level`` (default: the top); the run's ``exit``, ``label`` and
    ``confidence`` are set, and the steps after the exit taken count zero."""
    x = model.check_input(x)
    level = model.check_level(level)
    target = model.core
    tool(QEMU, "qemu-system-arm")
    build: ArmBuild = cross_build(model, profile=True, external_input=True)
    syms = build.symbols
    in_addr, in_size, _ = syms["adaptc_input"]
    marker_addr, marker_size, _ = syms["adaptc_step_marker"]
    marker_addr &= ~1
    assert in_size == x.nbytes, (in_size, x.nbytes)
    loads = {in_addr: x.tobytes()}
    if model.program.exits:
        loads[syms["adaptc_level"][0]] = np.int32(level).tobytes()
    with tempfile.TemporaryDirectory(prefix="adaptc-qemu-") as tmp:
        tmp = Path(tmp)
        emulate(target, build.elf, loads, ["out=armstat.tsv", f"mark={marker_addr:x}"], tmp, timeout)
        outs = [np.frombuffer((tmp / (b["file"] if b else "output.bin")).read_bytes(), np.dtype(t.dtype))
                .reshape(t.shape).copy() for t, b in zip(model.outputs, output_buffers(model) or [None])]
        stack = int(np.frombuffer((tmp / "stack.bin").read_bytes(), "<u4")[0])
        snaps = _snapshots(tmp / "armstat.tsv")
        taken = None
        if model.program.exits:
            label, exit_, _ = (int(v) for v in np.frombuffer((tmp / "exit.bin").read_bytes(), "<i4"))
            conf = np.frombuffer((tmp / "confidence.bin").read_bytes(), model.result_dtype()["confidence"])[0]
            taken = (label, exit_, conf.item())
    dis = Disassembly.of(build.elf, target.objdump_flags)
    skip = {pc for pc in dis.insns if marker_addr <= pc < marker_addr + max(marker_size, 2)}
    n_steps = len(model.program.steps)
    ran = n_steps                     # steps executed: all, or up to the gate of the exit taken
    if taken is not None:
        ran = model.program.exits[taken[1]].gate + 1
    if len(snaps) != ran + 2:
        raise AdaptcError(f"expected {ran + 1} step markers, the plugin saw {len(snaps) - 1}")
    # markers 0 .. ran-1 and the final one: the steps not run span no instructions
    snaps = snaps[:ran + 1] + [snaps[ran]] * (n_steps - ran) + [snaps[-1]]
    steps, total = [], Counts()
    for s in model.scheduled.steps:
        c = _interval(snaps[s.index], snaps[s.index + 1], dis, skip)
        steps.append({"step": s.index, "op": s.op, "kernel": s.kernel, "variant": s.variant, "note": s.note,
                      "macs": s.macs, **c.as_dict()})
        total.instructions += c.instructions
        total.memory_accesses += c.memory_accesses
        for k in CLASSES:
            total.classes[k] += c.classes[k]
    run = TargetRun(outs[0] if len(outs) == 1 else outs, total.instructions, total.classes, steps,
                    total.memory_accesses, target.name, target.qemu_machine, build.elf, stack)
    if taken is not None:
        run.label, run.exit, run.confidence = taken
        run.logits = run.outputs
    return run


@dataclass
class BatchRun:
    """Many inferences on an emulated core (``run_batch_on_target``): per level and input.

    Arrays are indexed ``[i, k]``: level ``levels[i]``, input ``k``. A model without exits runs
    each input once: ``levels == (0,)``, ``logits`` holds its outputs and ``label``, ``exit``,
    ``confidence`` are None."""

    levels: tuple[int, ...]
    logits: np.ndarray | list       # [levels, N, *head shape] (no exits: [1, N, *output shape];
                                    # several outputs: a list, one such array per output)
    instructions: np.ndarray        # [levels, N] int64: executed instructions of each <prefix>_run call
    target: str
    machine: str
    elf: Path
    label: np.ndarray | None = None         # [levels, N] int32: class (first index of the largest logit)
    exit: np.ndarray | None = None          # [levels, N] int32: exit taken
    confidence: np.ndarray | None = None    # [levels, N] int32 (int8 model) or float32: at the exit taken
    wall_s: float = 0.0             # seconds QEMU ran

    @property
    def outputs(self) -> np.ndarray:
        return self.logits

    def result(self, i: int, k: int):
        """Input ``k`` at level ``levels[i]`` as the ``ExitResult`` that ``model.run`` returns."""
        from adaptc.exits import ExitResult

        if self.exit is None:
            raise InputError("a model without exits has no ExitResult: use outputs[0, k]")
        conf = self.confidence[i, k]
        return ExitResult(int(self.label[i, k]), int(self.exit[i, k]),
                          int(conf) if conf.dtype.kind == "i" else float(conf), self.logits[i, k].copy())


def _batch_inputs(model, xs) -> np.ndarray:
    """``xs`` as [N, *input shape]: N inputs stacked, or -- for an input whose leading dimension
    is 1 -- stacked along that dimension (what ``quantize_input`` returns for a data set)."""
    shape = tuple(model.input.shape)
    xs = real_array(xs, "inputs", model.info.name)      # every value finite, the first bad one named
    if xs.ndim == len(shape) + 1 and xs.shape[1:] == shape:
        pass
    elif shape and shape[0] == 1 and xs.ndim == len(shape) and xs.shape[1:] == shape[1:]:
        xs = xs.reshape((xs.shape[0], *shape))
    else:
        want = [f"[N, {', '.join(map(str, shape))}]"] + [f"[N, {', '.join(map(str, shape[1:]))}]"] * (shape[:1] == (1,))
        raise InputError(f"{model.info.name}: a batch must have shape {' or '.join(want)}, got {list(xs.shape)}")
    if len(xs) == 0:
        raise InputError(f"{model.info.name}: an empty batch")
    model.check_input(xs[0])
    return np.ascontiguousarray(xs)


def run_batch_on_target(model, xs, levels=None, timeout: float = 600.0) -> BatchRun:
    """Cross-build ``model`` once and run every input of ``xs`` at every level of ``levels``
    (default: all; ignored for a model without exits) in one QEMU launch: results and the exact
    executed-instruction count of each inference (``<prefix>_run`` from its first instruction
    through its return, callees included). Counts are deterministic."""
    xs = _batch_inputs(model, xs)
    n = len(xs)
    if model.program.exits:
        levels = tuple(range(len(model.levels))) if levels is None else tuple(model.check_level(lv) for lv in levels)
        if not levels:
            raise InputError(f"{model.info.name}: no levels to run")
        rtype = model.result_dtype()
    else:
        levels = (0,)
        rtype = np.dtype([(f"o{i}", np.dtype(t.dtype), tuple(t.shape)) for i, t in enumerate(model.outputs)])
    target = model.core
    ram = target.emulated.ram_bytes
    need = xs.nbytes + len(levels) * n * rtype.itemsize
    if need > ram:
        raise InputError(f"{model.info.name}: a batch of {n} inputs x {len(levels)} levels needs {need:,} bytes "
                         f"of RAM for inputs and results; the emulated {target.emulated.name} has {ram:,}: "
                         "run it in parts")
    tool(QEMU, "qemu-system-arm")
    build: ArmBuild = cross_build(model, batch=(n, len(levels)))
    syms = build.symbols
    _check_stack_room(build)
    in_addr, in_size, _ = syms["adaptc_batch_inputs"]
    assert in_size == xs.nbytes, (in_size, xs.nbytes)
    loads = {in_addr: xs.tobytes()}
    if model.program.exits:
        loads[syms["adaptc_batch_levels"][0]] = np.asarray(levels, "<i4").tobytes()
    with tempfile.TemporaryDirectory(prefix="adaptc-qemu-") as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        emulate(target, build.elf, loads, ["out=totals.txt", "totals=1", *batch_marks(build)], tmp, timeout)
        wall = time.perf_counter() - start
        raw = b"".join((tmp / b["batch_file"]).read_bytes() for b in output_buffers(model)) \
            if not model.program.exits else (tmp / "batch.bin").read_bytes()
        totals = np.array([int(v) for v in (tmp / "totals.txt").read_text().split()], np.int64)
    if len(raw) != len(levels) * n * rtype.itemsize:
        raise AdaptcError(f"batch.bin holds {len(raw)} bytes, expected {len(levels) * n * rtype.itemsize}")
    if len(totals) != 2 * len(levels) * n:
        raise AdaptcError(f"expected {2 * len(levels) * n} marks, the plugin saw {len(totals)}")
    counts = (totals[1::2] - totals[0::2]).reshape(len(levels), n)
    if not model.program.exits:       # each output's batch file in turn: [N, *shape] of each
        outputs, at = [], 0
        for t in model.outputs:
            size = n * t.nbytes
            outputs.append(np.frombuffer(raw[at:at + size], np.dtype(t.dtype)).reshape(1, n, *t.shape).copy())
            at += size
        return BatchRun(levels, outputs[0] if len(outputs) == 1 else outputs, counts, target.name,
                        target.qemu_machine, build.elf, wall_s=wall)
    res = np.frombuffer(raw, rtype).reshape(len(levels), n)
    head = model.program.tensors[model.program.exits[0].head]
    return BatchRun(levels, res["logits"].reshape(len(levels), n, *head.shape).copy(), counts, target.name,
                    target.qemu_machine, build.elf, *(res[f].copy() for f in ("label", "exit", "confidence")),
                    wall_s=wall)


def batch_marks(build: ArmBuild) -> list[str]:
    """Plugin arguments of a batch firmware: the mark (adaptc_batch_marker) and the ranges not
    counted (main, where the batch loop is, and the marker)."""
    syms = build.symbols
    skip = [f"skip={a & ~1:x}-{(a & ~1) + size:x}" for name, (a, size, kind) in syms.items()
            if kind == "STT_FUNC" and (name in ("main", "adaptc_batch_marker") or name.startswith("main."))]
    return [f"mark={syms['adaptc_batch_marker'][0] & ~1:x}", *skip]


def _check_stack_room(build: ArmBuild) -> None:
    """AdaptcError when the static RAM of the firmware leaves less room below the top of RAM
    than the worst-case stack of main (the stack grows down towards .noinit)."""
    from elftools.elf.constants import SH_FLAGS
    from elftools.elf.elffile import ELFFile

    board = build.target.emulated
    with open(build.elf, "rb") as f:
        end = max((s["sh_addr"] + s["sh_size"] for s in ELFFile(f).iter_sections()
                   if s["sh_flags"] & SH_FLAGS.SHF_ALLOC and s["sh_flags"] & SH_FLAGS.SHF_WRITE), default=0)
    room, stack = board.ram_origin + board.ram_bytes - end, build.stack.worst("main")
    if room < stack:
        raise AdaptcError(f"{build.elf.name}: {room:,} bytes between static RAM and the top of RAM, "
                          f"main needs {stack:,} bytes of stack: run the batch in parts")
