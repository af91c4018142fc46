"""A model compiled for a Cortex-M core: its C sources, the host build that runs them, the
cross-built firmware and the emulated core.

``build_model(model, core)`` renders the scheduled program (emit.py) and, when its kernels need
the core's instruction set (MVE), the same program scheduled with the portable kernels for the
host (``host_files``: the same bits, tested); it checks the weights and arena against the
reference board's memory.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from adaptc.errors import AdaptcError, InputError, MemoryBudgetError
from adaptc.exits import ExitResult, StreamRun
from adaptc.model import CompiledModel
from adaptc.report import atomic_directory

from . import emulator, firmware
from .emit import emit_c
from .host import HostModel, build_shared
from .kernels import PORTABLE_VARIANTS
from .schedule import schedule, schedule_widths


@dataclass
class CortexMModel(CompiledModel):
    """A CompiledModel for a Cortex-M core (``core``): C sources (``files``) and what runs them."""

    core: object = None              # the CortexM target
    files: dict[str, str] = field(default_factory=dict)   # generated sources by file name
    host_files: dict | None = None   # what run() builds when `files` need the target's ISA (MVE)
    _host: object = field(default=None, repr=False)

    def run(self, x: np.ndarray, level: int | None = None):
        """Run the generated C (built with the host compiler) on one input. The C is the
        target's, or -- where that needs the target's instruction set (MVE kernels) -- the same
        program rendered with the portable kernels (``host_files``), which compute the same bits.
        A model with exits returns an ``ExitResult`` (label, exit, confidence, logits); ``level``
        caps the deepest exit (default: the top level, no cap). A model with several outputs
        returns the list of them, in the model's order."""
        x = self.check_input(x)
        level = self.check_level(level)
        host = self.host_model()
        if self.program.exits:
            res = np.zeros((), self.result_dtype())
            rc = host.run_level(x, level, res)
            if rc != 0:
                raise AdaptcError(f"{self.prefix}_run returned error code {rc}")
            return self.exit_result(res)
        outs = [np.zeros(t.shape, np.dtype(t.dtype)) for t in self.outputs]
        rc = host(x, *outs)
        if rc != 0:
            raise AdaptcError(f"{self.prefix}_run returned error code {rc}")
        return outs[0] if len(outs) == 1 else outs

    def exits_taken(self, xs: np.ndarray, level: int) -> np.ndarray:
        if not self.program.exits:
            return np.zeros(len(xs), int)
        return np.array([self.run(x, level=level).exit for x in xs])

    def example_input(self) -> np.ndarray:
        """The input the firmware's main.c bundles by default: deterministic, spread over the
        input's range."""
        return firmware.example_input(self)

    def host_model(self) -> HostModel:
        """The C built with the host compiler (cached by content)."""
        if self._host is None:
            files = self.host_files or self.files
            self._host = HostModel(build_shared(files, f"{self.prefix}.c"), self.prefix, self.result_dtype())
        return self._host

    def run_stream(self, xs, **settings) -> StreamRun:
        """Run a stream of inputs (``xs``: [N, *input shape]) through the generated C controller
        (``<prefix>_controller_run``, templates/model.h.j2): each input starts at the level the
        previous one left, is throttled up while its confidence stays below ``target`` and the
        level is lowered after ``patience`` comfortably confident inputs. ``settings`` override
        the compiled defaults at run time (``level``, ``min_level``, ``max_level``, ``target``,
        ``comfort``, ``patience``; confidences in the gates' units, see ``report["exits"]``; for
        a width-level build the three levels are positions on its ``ladder``, and the StreamRun's
        levels the ladder's levels)."""
        if not self.program.exits:
            raise InputError(f"{self.info.name} has no exits: run_stream needs a model compiled with exits=True")
        conf = self.result_dtype()["confidence"]
        state = np.zeros((), np.dtype([("level", "<i4"), ("min_level", "<i4"), ("max_level", "<i4"),
                                       ("target", conf), ("comfort", conf), ("patience", "<i4"), ("calm", "<i4")]))
        host = self.host_model()
        host.controller_init(self.prefix, state)
        for key, value in settings.items():
            if key not in state.dtype.names or key == "calm":
                raise InputError(f"run_stream: unknown controller setting {key!r}; "
                                 f"choose from {', '.join(n for n in state.dtype.names if n != 'calm')}")
            state[key] = value
        results, levels, raised = [], [], []
        for x in xs:
            x = self.check_input(np.asarray(x).reshape(self.input.shape))
            res = np.zeros((), self.result_dtype())
            levels.append(int(state["level"]))
            rc = host.controller_run(self.prefix, state, x, res)
            if rc != 0:
                raise AdaptcError(f"{self.prefix}_controller_run returned error code {rc}"
                                  + (" (controller levels out of range)" if rc == 2 else ""))
            results.append(self.exit_result(res))
            raised.append(max(levels[-1], int(state["level"])))     # a raise stays; a lowering comes after it
        if self.width_levels:                       # the C controller's positions on its ladder -> levels
            ladder = np.array(self.ladder)
            levels, raised = list(ladder[levels]), list(ladder[raised])
        return StreamRun(results, np.array(levels), np.array(raised))

    def result_dtype(self):
        """The C ``<prefix>_result`` struct as a NumPy dtype (a model with exits), else None."""
        if not self.program.exits:
            return None
        head = self.program.tensors[self.program.exits[0].head]
        conf = "<i4" if head.dtype == "int8" else "<f4"
        return np.dtype([("label", "<i4"), ("exit", "<i4"), ("confidence", conf),
                         ("logits", np.dtype(head.dtype), (head.shape[-1],))], align=True)

    def exit_result(self, res) -> ExitResult:
        """A ``<prefix>_result`` (as ``result_dtype``) as an ExitResult."""
        head = self.program.tensors[self.program.exits[0].head]
        logits = np.asarray(res["logits"]).reshape(head.shape).copy()
        conf = res["confidence"]
        return ExitResult(int(res["label"]), int(res["exit"]), int(conf) if head.dtype == "int8" else float(conf),
                          logits)

    def run_on_target(self, x: np.ndarray, level: int | None = None) -> emulator.TargetRun:
        """Cross-build for the target and run one inference on an emulated core (QEMU): a
        ``TargetRun`` with ``outputs``, ``instructions`` (exact, whole inference), ``classes``
        and per-step ``steps``; for a model with exits also ``label``, ``exit``, ``confidence``
        and ``logits`` (at ``level``, default the top). Needs gcc-arm-none-eabi,
        libnewlib-arm-none-eabi, qemu-system-arm."""
        return emulator.run_on_target(self, x, level=level)

    def run_batch_on_target(self, xs: np.ndarray, levels=None) -> emulator.BatchRun:
        """Cross-build once and run every input of ``xs`` at every level of ``levels`` (default:
        all) in one QEMU launch: a ``BatchRun`` with ``label``, ``exit``, ``confidence``,
        ``logits`` and the exact executed ``instructions`` of each inference, ``[level, input]``."""
        return emulator.run_batch_on_target(self, xs, levels)

    def cross_build(self, x: np.ndarray | None = None) -> firmware.ArmBuild:
        """The firmware built for the target (``ArmBuild``: ELF, sizes, stack); checks that it
        fits the target's reference board (MemoryBudgetError otherwise)."""
        build = firmware.cross_build(self, x=x)
        mem = firmware.memory_report(self, build)["model"]
        check_budget(self, mem["flash_bytes"], mem["ram_bytes"] + mem["stack_bytes"] + self.io_bytes,
                     "the cross-built model (code + weights; static RAM + stack + input + output)")
        return build

    def memory_report(self, measure: bool | None = None) -> dict:
        """Flash, RAM and stack measured on the cross-built firmware (when arm-none-eabi-gcc is
        installed, or ``measure``)."""
        if measure is None:
            measure = shutil.which(firmware.CROSS_CC) is not None
        if not measure:
            return {"note": f"not measured: {firmware.CROSS_CC} not installed (apt-get install gcc-arm-none-eabi "
                            "libnewlib-arm-none-eabi)"}
        return firmware.memory_report(self, self.cross_build())

    def export(self, directory, x: np.ndarray | None = None) -> Path:
        """Write the model's C, the firmware project (Makefile, linker script, startup.c, main.c
        running the model on ``x`` -- default: a fixed pseudo-random input --, CMakeLists.txt) and
        report.json into ``directory``, atomically (adaptc.report.atomic_directory: on any failure
        nothing is left behind; an existing directory's files are replaced; modes as ``mkdir`` and
        the umask give them). The files are byte-identical for identical inputs: no time, no
        temporary name, no path but the model's as given."""
        directory = Path(directory)
        with atomic_directory(directory) as tmp:
            for name, text in {**self.files, **firmware.firmware_files(self, x)}.items():
                (tmp / name).write_text(text)
            (tmp / "report.json").write_text(json.dumps(self.report(), indent=2) + "\n")
            self.write_augmented(tmp)
        return directory


def check_budget(model, flash: int, ram: int, what: str) -> None:
    """MemoryBudgetError when ``flash`` / ``ram`` bytes exceed the core's reference board."""
    core = model.core
    for kind, need, have in (("flash", flash, core.flash_bytes), ("RAM", ram, core.ram_bytes)):
        if need > have:
            raise MemoryBudgetError(f"{model.info.name} does not fit {core.name} ({core.board.name}): {what} needs "
                                    f"{need:,} bytes of {kind}, the board has {have:,}: over by {need - have:,} bytes")


def build_model(model: CompiledModel, core) -> CortexMModel:
    """Render ``model.scheduled`` for ``core`` (module docstring)."""
    sched = model.scheduled
    quant = model.io_quantization
    widths = model.width_levels
    levels = widths.scheduled if widths else [sched]

    def render(scheduled: list, options: dict) -> dict[str, str]:
        if not widths:
            return emit_c(scheduled[0], core, options, quant)
        return emit_c(scheduled[-1], core, options, quant, widths=scheduled, fractions=widths.fractions,
                      ladder=widths.ladder)

    files = render(levels, model.options)
    host_files = None
    if any(s.variant not in PORTABLE_VARIANTS for sp in levels for s in sp.steps):
        kernels = model.options.get("kernels")
        allowed = set(kernels.split(",")) if kernels else set(core.kernel_variants)
        portable = [v for v in core.kernel_variants if v in PORTABLE_VARIANTS and v in allowed] or ["ref"]
        options = {**model.options, "kernels": ",".join(portable)}
        programs = [sp.program for sp in levels]
        host_files = render(schedule_widths(programs, core, options["kernels"]) if widths
                            else [schedule(programs[0], core, options["kernels"])], options)
    m = model.derive(CortexMModel, core=core, files=files, host_files=host_files)
    check_budget(m, model.weight_bytes, sched.arena_bytes + m.io_bytes,
                 "the model (weights; arena + input + output, before code and stack)")
    return m
