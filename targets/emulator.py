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
"""
from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from adaptc.errors import AdaptcError, ToolchainError

from .firmware import _CACHE, ArmBuild, cross_build

QEMU = "qemu-system-arm"
OBJDUMP = "arm-none-eabi-objdump"
CLASSES = ("load", "store", "mac", "branch_taken", "branch_not_taken", "other")

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


@functools.lru_cache(maxsize=None)
def plugin() -> Path:
    """The armstat QEMU plugin, built once with the host compiler."""
    from importlib import resources

    from adaptc.host import host_cc

    src = (resources.files("adaptc.templates") / "firmware" / "armstat.c").read_text()
    import hashlib
    out = _CACHE / f"armstat-{hashlib.sha256(src.encode()).hexdigest()[:12]}.so"
    if not out.exists():
        _CACHE.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=_CACHE) as tmp:
            (Path(tmp) / "armstat.c").write_text(src)
            r = subprocess.run([host_cc(), "-O2", "-shared", "-fPIC", "-o", "armstat.so", "armstat.c"], cwd=tmp,
                               capture_output=True, text=True)
            if r.returncode != 0:
                raise ToolchainError(f"building the QEMU plugin failed:\n{r.stderr[-2000:]}")
            os.replace(Path(tmp) / "armstat.so", out)
    return out


@dataclass
class Disassembly:
    """PC -> (function, mnemonic, operands) of every instruction in an ELF."""

    insns: dict[int, tuple[str, str, str]]

    @classmethod
    @functools.lru_cache(maxsize=32)
    def of(cls, elf: Path, flags: tuple[str, ...] = ()) -> "Disassembly":
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

    outputs: np.ndarray
    instructions: int               # whole inference (all steps)
    classes: dict                   # class -> instructions (load, store, mac, branch_taken, ...)
    steps: list[dict]               # per step: step, op, kernel, macs, instructions, classes, ...
    memory_accesses: int
    target: str
    machine: str
    elf: Path
    stack_bytes: int = 0            # measured: deepest stack <prefix>_run used (painted stack)

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


def run_on_target(model, x: np.ndarray, timeout: float = 600.0) -> TargetRun:
    """Cross-build ``model`` for its target, run one inference under QEMU and count it."""
    from .cortex_m import get_target

    x = model._check_input(x)
    target = get_target(model.target)
    qemu = tool(QEMU, "qemu-system-arm")
    build: ArmBuild = cross_build(model, profile=True, external_input=True)
    syms = build.symbols
    in_addr, in_size, _ = syms["adaptc_input"]
    marker_addr, marker_size, _ = syms["adaptc_step_marker"]
    marker_addr &= ~1
    assert in_size == x.nbytes, (in_size, x.nbytes)
    with tempfile.TemporaryDirectory(prefix="adaptc-qemu-") as tmp:
        tmp = Path(tmp)
        (tmp / "input.bin").write_bytes(x.tobytes())
        cmd = [qemu, "-M", target.qemu_machine, "-nographic", "-monitor", "none", "-serial", "none",
               "-semihosting-config", "enable=on,target=native", "-kernel", str(build.elf),
               "-device", f"loader,file=input.bin,addr=0x{in_addr:x},force-raw=on",
               "-plugin", f"{plugin()},arg=out=armstat.tsv,arg=mark={marker_addr:x}"]
        try:
            r = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AdaptcError(f"{model.prefix} on {target.qemu_machine}: no exit after {timeout:.0f} s") from None
        if r.returncode != 0:
            raise AdaptcError(f"{model.prefix} on {target.qemu_machine} exited with status {r.returncode} "
                              f"(0xad = fault):\n{(r.stdout + r.stderr)[-2000:]}")
        out = np.frombuffer((tmp / "output.bin").read_bytes(), np.dtype(model.output.dtype))
        stack = int(np.frombuffer((tmp / "stack.bin").read_bytes(), "<u4")[0])
        snaps = _snapshots(tmp / "armstat.tsv")
    dis = Disassembly.of(build.elf, target.objdump_flags)
    skip = {pc for pc in dis.insns if marker_addr <= pc < marker_addr + max(marker_size, 2)}
    n_steps = len(model.program.steps)
    if len(snaps) != n_steps + 2:
        raise AdaptcError(f"expected {n_steps + 1} step markers, the plugin saw {len(snaps) - 1}")
    steps, total = [], Counts()
    for s in model.program.steps:
        c = _interval(snaps[s.index], snaps[s.index + 1], dis, skip)
        steps.append({"step": s.index, "op": s.op, "kernel": s.kernel, "macs": s.macs, **c.as_dict()})
        total.instructions += c.instructions
        total.memory_accesses += c.memory_accesses
        for k in CLASSES:
            total.classes[k] += c.classes[k]
    return TargetRun(out.reshape(model.output.shape).copy(), total.instructions, total.classes, steps,
                     total.memory_accesses, target.name, target.qemu_machine, build.elf, stack)
