"""``CompiledModel``: what ``adaptc.compile`` returns, the part every target shares.

A compiled model holds the adaptive Relax module (``mod``: runs on TVM's llvm backend, the
reference every build is checked against), its lowered ``program``, the program ``scheduled``
for the target, the numeric format, the quantization and exit records. A target's ``build``
returns a subclass that adds what running it needs (C sources and a host build for a Cortex-M
core, targets/cortex_m/model.py; a batched TVM build, targets/cuda/batched.py). Nothing here
imports TVM until a reference run asks for it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import gates
from .errors import InputError
from .exits import ExitResult
from .loader import ModelInfo
from .names import c_identifier
from .program import Program
from .schedule import ScheduledProgram
from .validation import float32_array, real_array
from .widths import Level, levels


def io_quantization(mod, info: ModelInfo, fmt: str) -> dict:
    """{"input": (scale, zero_point), "output": ..., "outputs": [...]} of an int8 model (from
    QuantizeInt8's attributes of main, or the source model's quantization); empty for float
    models (or without a module)."""
    if mod is None:
        return {}
    attrs = mod["main"].attrs
    out = {}
    for key, tensors in (("input", info.inputs), ("output", info.outputs[-1:])):
        if attrs is not None and f"adaptc.{key}_scale" in attrs:
            out[key] = (float(attrs[f"adaptc.{key}_scale"]), int(attrs[f"adaptc.{key}_zero_point"]))
        elif fmt == "int8" and tensors and tensors[0].quantized:
            out[key] = (tensors[0].scale, tensors[0].zero_point)
    if fmt == "int8" and len(info.outputs) > 1:      # every output's: a model with exits, one per head
        if attrs is not None and "adaptc.output_scales" in attrs:
            out["outputs"] = [(float(sc), int(z)) for sc, z in zip(attrs["adaptc.output_scales"],
                                                                   attrs["adaptc.output_zero_points"])]
        elif all(t.quantized for t in info.outputs):
            out["outputs"] = [(t.scale, t.zero_point) for t in info.outputs]
    return out


class Report(dict):
    """A CompiledModel's report: a dict of its figures (without the measured "memory" section
    until that is read), and callable for the whole of it -- ``m.report()``, as report.json."""

    def __init__(self, model):
        super().__init__(model.report_dict(memory=False))
        self._model = model

    def __call__(self, memory: bool | None = None) -> dict:
        return self._model.report_dict(memory)

    def __missing__(self, key):
        if key == "memory":
            self[key] = self._model.memory_report()
            return self[key]
        raise KeyError(key)


@dataclass
class CompiledModel:
    """A model compiled for a target (module docstring)."""

    info: ModelInfo
    target: str                      # the target's name (adaptc.targets.get(target))
    mod: object                      # Relax IRModule of composites (runs on llvm: the reference)
    program: Program                 # the lowered program
    scheduled: ScheduledProgram      # the program with the target's choices
    format: str                      # "int8" | "float32"
    options: dict = field(default_factory=dict)        # what the generated files' banners list
    compile_seconds: float = 0.0
    quantization: dict = field(default_factory=dict)   # scheme, per-layer formats and errors
    exits: dict | None = None        # a model with exits: criterion, thresholds, calibration
    heads_mod: object = None         # a model with exits: the module before gating (every head)
    augmentation: dict | None = None  # adaptc.add_exits: {"onnx": the multi-exit model's bytes, "search": record}
    width_levels: object = None      # a width-level build: adaptc.widths.WidthBuild (scheduled = its widest's)
    _vm: object = field(default=None, repr=False)
    _heads_vm: object = field(default=None, repr=False)

    def derive(self, cls, **changes):
        """This model as an instance of ``cls`` (a target's subclass), with ``changes`` to its
        fields and the subclass's."""
        fields = {k: getattr(self, k) for k in CompiledModel.__dataclass_fields__ if not k.startswith("_")}
        return cls(**{**fields, **changes})

    @property
    def prefix(self) -> str:
        """The model's identifier in generated code and file names (the sanitized name)."""
        return c_identifier(self.program.name)

    @property
    def input(self):
        return self.program.tensors[self.program.inputs[0]]

    @property
    def outputs(self) -> list:
        """Every output, in the model's order (a model with exits: its result's logits)."""
        return [self.program.tensors[t] for t in self.program.outputs]

    @property
    def output(self):
        """The last output: the only one of a single-output model."""
        return self.outputs[-1]

    @property
    def weight_bytes(self) -> int:
        """Flash the constants take as the target stores them (a width-level build: every
        width's, the shared weights once)."""
        if self.width_levels:
            return sum(sp.weight_bytes for sp in self.width_levels.scheduled)
        return self.scheduled.weight_bytes

    @property
    def io_bytes(self) -> int:
        """Bytes of the caller-owned input and output buffers."""
        return self.input.nbytes + sum(t.nbytes for t in self.outputs)

    def check_input(self, x) -> np.ndarray:
        """``x`` as one contiguous input of the model's type and shape, every value finite;
        InputError otherwise, naming the first bad element (``input[0, 3, 4, 0] is nan``)."""
        x = real_array(x, "input", self.info.name)
        t = self.input
        if x.dtype != np.dtype(t.dtype):
            raise InputError(f"{self.info.name}: input must be {t.dtype} with shape {list(t.shape)}, "
                             f"got {x.dtype} (use quantize_input() for float data)" if t.dtype == "int8"
                             else f"{self.info.name}: input must be {t.dtype}, got {x.dtype}")
        if tuple(x.shape) != tuple(t.shape):
            raise InputError(f"{self.info.name}: input shape must be {list(t.shape)}, got {list(x.shape)}")
        return np.ascontiguousarray(x)

    @property
    def levels(self) -> list[Level]:
        """Utilization levels, (width, deepest exit) each: one per exit (level L runs at most
        through exit L), per width of a width-level build (width-major, adaptc.widths); one
        level without exits."""
        fractions = self.width_levels.fractions if self.width_levels else [1.0]
        return levels(fractions, len(self.program.exits))

    @property
    def ladder(self) -> list[int]:
        """The levels the C controller steps through, cheapest first: a width-level build's
        (adaptc.widths.ladder, chosen on labelled data), else every level."""
        if self.width_levels and self.width_levels.ladder:
            return list(self.width_levels.ladder)
        return list(range(len(self.levels)))

    def check_level(self, level) -> int:
        """``level`` as an index (None: the top level); InputError when out of range."""
        if not self.program.exits:
            if level is not None:
                raise InputError(f"{self.info.name} has no exits: level= needs a model compiled with exits=True")
            return 0
        top = len(self.levels) - 1
        if level is None:
            return top
        if not 0 <= int(level) <= top:
            raise InputError(f"level {level} out of range: {self.info.name} has levels 0..{top}")
        return int(level)

    def reference(self, x: np.ndarray, level: int | None = None):
        """Run the compiled Relax module on llvm (the reference every build must match). A model
        with exits returns an ``ExitResult``: the exit and logits from the module, the label
        their argmax, the confidence from adaptc.gates' definition of the criterion; a model with
        several outputs, the list of them in the model's order."""
        from . import tvm_compat  # TVM: only for the reference run

        x = self.check_input(x)
        level = self.check_level(level)
        if self.width_levels:                # the level's width compiled alone, up to the level's exit
            width, exit_ = divmod(level, len(self.program.exits))
            return self.width_levels.models[width].reference(x, exit_)
        if self._vm is None:
            self._vm = tvm_compat.build_llvm(self.mod)
        if not self.program.exits:
            outs = tvm_compat.run_vm(self._vm, x)
            return outs[0] if len(outs) == 1 else outs
        logits, e = tvm_compat.run_vm(self._vm, x, np.array(level, np.int32))
        e = int(e)
        criterion = self.exits["criterion"]
        quant = self.io_quantization.get("outputs")
        conf = (int(gates.confidence_int(logits, criterion, quant[e][0])[0]) if quant
                else float(gates.confidence_float(logits, criterion)[0]))
        return ExitResult(int(np.argmax(logits[0])), e, conf, logits)

    def heads(self, x: np.ndarray) -> list[np.ndarray]:
        """Every exit head's logits for one input -- the whole network, no gate -- from the
        module before gating on llvm (a model with exits)."""
        from . import tvm_compat  # TVM: only for the reference run

        if self.heads_mod is None:
            raise InputError(f"{self.info.name} has no exits")
        x = self.check_input(x)
        if self._heads_vm is None:
            self._heads_vm = tvm_compat.build_llvm(self.heads_mod)
        return tvm_compat.run_vm(self._heads_vm, x)

    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        """Float data -> the int8 input of a quantized model (TFLite scheme); a float model's
        input as float32. ``x``: one input or a stack of them -- its trailing axes the input's
        shape (without its leading batch of 1, if it has one) --, every value finite; InputError
        otherwise."""
        x = real_array(x, "input", self.info.name)
        shape = tuple(self.input.shape)
        tail = shape[1:] if shape and shape[0] == 1 else shape
        if x.ndim < len(tail) or tuple(x.shape[x.ndim - len(tail):]) != tail:
            raise InputError(f"{self.info.name}: input must have shape {list(shape)} or [..., "
                             f"{', '.join(map(str, tail))}] (a stack of inputs), got {list(x.shape)}")
        q = self.input_quantization
        if q is None:
            return float32_array(x, "input", self.info.name)
        scale, zp = q
        return np.clip(np.round(np.asarray(x, np.float64) / scale) + zp, -128, 127).astype(np.int8)

    @property
    def io_quantization(self) -> dict:
        return io_quantization(self.mod, self.info, self.format)

    @property
    def input_quantization(self) -> tuple[float, int] | None:
        return self.io_quantization.get("input")

    @property
    def output_quantization(self) -> tuple[float, int] | None:
        return self.io_quantization.get("output")

    def exits_taken(self, xs: np.ndarray, level: int) -> np.ndarray:
        """The exit each input of ``xs`` leaves at, at utilization ``level``, as the target's
        build computes it (the simulator's measured exit distribution)."""
        raise NotImplementedError(f"{type(self).__name__} does not run its build")

    @property
    def report(self) -> Report:
        """What report.json holds: ``m.report["weight_bytes"]`` reads a figure (the measured
        "memory" section builds for the target on first use); ``m.report()`` gives the whole
        dict, and ``m.report(memory=False)`` skips the measurement."""
        return Report(self)

    def report_dict(self, memory: bool | None = None) -> dict:
        s = self.scheduled
        layers = [{"step": st.index, "op": st.op, "source": st.step.source, "kernel": st.kernel,
                   "variant": st.variant, "note": st.note, "macs": st.macs, "weight_bytes": st.flash_bytes,
                   "output_shape": list(st.step.out_shape)} for st in s.steps]
        io = self.io_quantization
        out = {"model": self.info.name, "source": self.info.path, "target": self.target,
               "format": self.format, "prefix": self.prefix,
               "input": {"shape": list(self.input.shape), "dtype": self.input.dtype,
                         "quantization": io.get("input")},
               "output": {"shape": list(self.output.shape), "dtype": self.output.dtype,
                          "quantization": io.get("output")},
               **({"outputs": [{"name": t.name, "shape": list(t.shape), "dtype": t.dtype, "quantization": q}
                               for t, q in zip(self.outputs, io["outputs"] if "outputs" in io
                                               else [io.get("output")] * len(self.outputs))]}
                  if len(self.outputs) > 1 else {}),
               "arena_bytes": s.arena_bytes, "weight_bytes": self.weight_bytes, "macs": self.program.macs,
               "layers": layers}
        if self.quantization:
            out["quantization"] = self.quantization
        if self.exits:
            out["exits"] = self.exits["exits"]
            if "calibration" in self.exits:
                out["exit_calibration"] = self.exits["calibration"]
        if self.augmentation:
            out["exit_search"] = self.augmentation["search"]
        if self.width_levels:
            wl = self.width_levels
            out["width_levels"] = {"widths": wl.fractions, "exits": len(self.program.exits),
                                   "levels": wl.table or [{"level": i, "width": w, "exit": e}
                                                          for i, (w, e) in enumerate(self.levels)],
                                   "ladder": self.ladder,
                                   "weight_bytes_widest_alone": wl.models[-1].weight_bytes}
        if memory is not False:
            out["memory"] = self.memory_report(memory)
        return out

    def write_augmented(self, directory: Path) -> dict[str, Path]:
        """A model from adaptc.add_exits: ``DIR/<prefix>_exits.onnx``, the multi-exit ONNX model
        it compiled (the heads it attached, for the user's own tools); {} for any other model."""
        if not self.augmentation:
            return {}
        path = Path(directory) / f"{self.prefix}_exits.onnx"
        path.write_bytes(self.augmentation["onnx"])
        return {"augmented": path}

    def memory_report(self, measure: bool | None = None) -> dict:
        """report.json's "memory" section: what the target's build measures (a target that
        measures nothing says so)."""
        return {"note": f"not measured for target {self.target}"}
