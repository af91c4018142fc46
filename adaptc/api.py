"""Public API: ``adaptc.compile`` -> ``CompiledModel`` (run on the host, export C, report)."""
from __future__ import annotations

import copy
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import AdaptcError, InputError
from .loader import LoadedModel, ModelInfo, load
from .program import Program, lower


class Report(dict):
    """A CompiledModel's report: a dict of its figures (without the cross-built "memory" section
    until that is read), and callable for the whole of it -- ``m.report()``, as report.json."""

    def __init__(self, model):
        super().__init__(model._report(memory=False))
        self._model = model

    def __call__(self, memory: bool | None = None) -> dict:
        return self._model._report(memory)

    def __missing__(self, key):
        if key == "memory":
            self[key] = self._model._memory_report(None)
            return self[key]
        raise KeyError(key)


def _is_quantized(mod) -> bool:
    """True for int8 models: QDQ ops anywhere, or an int8 input."""
    from . import tvm_compat

    found = any(tvm_compat.dtype_of(p.ty) == "int8" for p in mod["main"].params)

    def visit(expr):
        nonlocal found
        if tvm_compat.op_name(expr) in ("relax.quantize", "relax.dequantize"):
            found = True

    from tvm import relax

    relax.analysis.post_order_visit(mod["main"], visit)
    return found


def pipeline(loaded: LoadedModel, calibration: np.ndarray | None = None, quantize=None) -> tuple[list, str, object]:
    """The Relax passes for a model, in order, the numeric format they produce and -- for the
    low-bit modes -- the CodedWeights scheme whose ``report`` lists each layer after the passes
    ran. ``quantize``: a parsed adaptc.quantization config (None: int8 when there is calibration
    data)."""
    from .passes.fuse_float_ops import FuseFloatOps
    from .passes.legalize_qdq import LegalizeQDQ
    from .passes.quantize_int8 import QuantizeInt8
    from .passes.quantize_weights import CodedWeights, QuantizeWeights
    from .passes.to_nhwc import ToNHWC
    from .quantization import Int4, Int8, PoT

    path = loaded.info.path
    scheme = None
    if _is_quantized(loaded.mod):
        if quantize is not None and not isinstance(quantize, Int8):
            raise InputError(f"{loaded.info.name} is an int8 model already; quantize={quantize!r} needs a float model")
        return [LegalizeQDQ(path)], "int8", None
    if quantize is not None and calibration is None:
        raise InputError(f"{loaded.info.name}: quantizing needs calibration data (calibration=, --calibration)")
    if calibration is None:
        return [ToNHWC(), FuseFloatOps(path)], "float32", None
    if quantize is None or isinstance(quantize, Int8):
        quant = QuantizeInt8(calibration, path)
    elif isinstance(quantize, Int4):
        scheme = CodedWeights("int4", pot_activations=False)
        quant = QuantizeWeights(calibration, "int4", path, scheme=scheme)
    elif isinstance(quantize, PoT):
        scheme = CodedWeights(quantize.format)
        quant = QuantizeWeights(calibration, quantize.format, path, scheme=scheme)
    else:
        raise InputError(f"unknown quantization {quantize!r}")
    return [ToNHWC(), FuseFloatOps(path), quant, LegalizeQDQ(path, weight_formats=scheme is not None)], "int8", scheme


def io_quantization(mod, info: ModelInfo, fmt: str) -> dict:
    """{"input": (scale, zero_point), "output": ...} of an int8 model (from QuantizeInt8's
    attributes of main, or the source model's quantization); empty for float models."""
    attrs = mod["main"].attrs
    out = {}
    for key, tensors in (("input", info.inputs), ("output", info.outputs)):
        if attrs is not None and f"adaptc.{key}_scale" in attrs:
            out[key] = (float(attrs[f"adaptc.{key}_scale"]), int(attrs[f"adaptc.{key}_zero_point"]))
        elif fmt == "int8" and tensors and tensors[0].quantized:
            out[key] = (tensors[0].scale, tensors[0].zero_point)
    return out


@dataclass
class CompiledModel:
    """A model compiled for a target: the adaptive Relax module, its Program and the C sources."""

    info: ModelInfo
    target: str
    mod: object                      # Relax IRModule of composites (runs on llvm: the reference)
    program: Program
    files: dict[str, str]            # generated sources by file name
    format: str                      # "int8" | "float32"
    compile_seconds: float = 0.0
    host_files: dict | None = None   # what run() builds when `files` need the target's ISA (MVE)
    quantization: dict = field(default_factory=dict)   # scheme, per-layer formats and errors
    _host: object = field(default=None, repr=False)
    _vm: object = field(default=None, repr=False)

    @property
    def prefix(self) -> str:
        return next(k for k in self.files if k.endswith(".h"))[:-2]

    @property
    def input(self):
        return self.program.tensors[self.program.inputs[0]]

    @property
    def output(self):
        return self.program.tensors[self.program.outputs[0]]

    def _check_input(self, x) -> np.ndarray:
        x = np.asarray(x)
        t = self.input
        if x.dtype != np.dtype(t.dtype):
            raise InputError(f"{self.info.name}: input must be {t.dtype} with shape {list(t.shape)}, "
                             f"got {x.dtype} (use quantize_input() for float data)" if t.dtype == "int8"
                             else f"{self.info.name}: input must be {t.dtype}, got {x.dtype}")
        if tuple(x.shape) != tuple(t.shape):
            raise InputError(f"{self.info.name}: input shape must be {list(t.shape)}, got {list(x.shape)}")
        return np.ascontiguousarray(x)

    def run(self, x: np.ndarray) -> np.ndarray:
        """Run the generated C (built with the host compiler) on one input. The C is the
        target's, or -- where that needs the target's instruction set (MVE kernels) -- the same
        program rendered with the portable kernels (``host_files``), which compute the same bits."""
        from .host import HostModel, build_shared

        x = self._check_input(x)
        if self._host is None:
            files = self.host_files or self.files
            self._host = HostModel(build_shared(files, f"{self.prefix}.c"), self.prefix)
        out = np.zeros(self.output.shape, np.dtype(self.output.dtype))
        rc = self._host(x, out)
        if rc != 0:
            raise AdaptcError(f"{self.prefix}_run returned error code {rc}")
        return out

    def reference(self, x: np.ndarray) -> np.ndarray:
        """Run the compiled Relax module on llvm (the reference the C must match)."""
        from . import tvm_compat

        x = self._check_input(x)
        if self._vm is None:
            self._vm = tvm_compat.build_llvm(self.mod)
        return tvm_compat.run_vm(self._vm, x)[0]

    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        """Float data -> the int8 input of a quantized model (TFLite scheme)."""
        q = self.input_quantization
        if q is None:
            return np.asarray(x, np.float32)
        scale, zp = q
        return np.clip(np.round(np.asarray(x, np.float64) / scale) + zp, -128, 127).astype(np.int8)

    @property
    def input_quantization(self) -> tuple[float, int] | None:
        return self.program_io_quant.get("input")

    @property
    def output_quantization(self) -> tuple[float, int] | None:
        return self.program_io_quant.get("output")

    @property
    def program_io_quant(self) -> dict:
        return io_quantization(self.mod, self.info, self.format)

    def run_on_target(self, x: np.ndarray):
        """Cross-build for the target and run one inference on an emulated core (QEMU): a
        ``TargetRun`` with ``outputs``, ``instructions`` (exact, whole inference), ``classes``
        and per-step ``steps``. Needs gcc-arm-none-eabi, libnewlib-arm-none-eabi, qemu-system-arm."""
        from .targets.emulator import run_on_target

        return run_on_target(self, x)

    def cross_build(self, x: np.ndarray | None = None):
        """The firmware built for the target (``ArmBuild``: ELF, sizes, stack); checks that it
        fits the target's reference board (MemoryBudgetError otherwise)."""
        from .targets.firmware import check_budget, cross_build, memory_report

        build = cross_build(self, x=x)
        mem = memory_report(self, build)["model"]
        check_budget(self, mem["flash_bytes"], mem["ram_bytes"] + mem["stack_bytes"] + self.io_bytes,
                     "the cross-built model (code + weights; static RAM + stack + input + output)")
        return build

    @property
    def io_bytes(self) -> int:
        """Bytes of the caller-owned input and output buffers."""
        return self.input.nbytes + self.output.nbytes

    @property
    def report(self) -> "Report":
        """What report.json holds: ``m.report["weight_bytes"]`` reads a figure (the measured
        "memory" section cross-builds on first use); ``m.report()`` gives the whole dict, and
        ``m.report(memory=False)`` skips the cross build."""
        return Report(self)

    def _report(self, memory: bool | None = None) -> dict:
        p = self.program
        layers = [{"step": s.index, "op": s.op, "source": s.source, "kernel": s.kernel, "macs": s.macs,
                   "weight_bytes": s.flash_bytes, "output_shape": list(s.out_shape)} for s in p.steps]
        io = self.program_io_quant
        out = {"model": self.info.name, "source": self.info.path, "target": self.target,
               "format": self.format, "prefix": self.prefix,
               "input": {"shape": list(self.input.shape), "dtype": self.input.dtype,
                         "quantization": io.get("input")},
               "output": {"shape": list(self.output.shape), "dtype": self.output.dtype,
                          "quantization": io.get("output")},
               "arena_bytes": p.arena_bytes, "weight_bytes": p.weight_bytes, "macs": p.macs,
               "compile_seconds": round(self.compile_seconds, 3), "layers": layers}
        if self.quantization:
            out["quantization"] = self.quantization
        if memory is not False:
            out["memory"] = self._memory_report(memory)
        return out

    def _memory_report(self, memory: bool | None):
        import shutil

        from .targets.firmware import CROSS_CC, memory_report

        if memory is None:
            memory = shutil.which(CROSS_CC) is not None
        if not memory:
            return {"note": f"not measured: {CROSS_CC} not installed (apt-get install gcc-arm-none-eabi "
                            "libnewlib-arm-none-eabi)"}
        return memory_report(self, self.cross_build())

    def export(self, directory, x: np.ndarray | None = None) -> Path:
        """Write the model's C, the firmware project (Makefile, linker script, startup.c, main.c
        running the model on ``x`` -- default: a fixed pseudo-random input --, CMakeLists.txt) and
        report.json into ``directory``, atomically: on any failure nothing is left behind; an
        existing directory's files are replaced."""
        from .targets.firmware import firmware_files

        directory = Path(directory)
        parent = directory.resolve().parent
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=parent))
        try:
            for name, text in {**self.files, **firmware_files(self, x)}.items():
                (tmp / name).write_text(text)
            (tmp / "report.json").write_text(json.dumps(self.report(), indent=2) + "\n")
            if directory.exists():
                for f in tmp.iterdir():
                    os.replace(f, directory / f.name)
                tmp.rmdir()
            else:
                os.replace(tmp, directory)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return directory


def compile(model, target: str = "cortex-m4", calibration=None, name: str | None = None,
            kernels: str | None = None, output: int | None = None, quantize=None,
            weight_budget: int | None = None) -> CompiledModel:
    """Compile a model file (.tflite / .onnx) or a LoadedModel for a Cortex-M target.

    int8 TFLite models keep their quantization and are bit-exact with TFLite Micro. Float models
    compile to float32 C, or -- given ``calibration`` (representative inputs, first axis =
    samples; or ``(x, y)`` with labels) -- to integer C by post-training quantization:
    ``quantize`` = "int8" (the default, TFLite's scheme), ``adaptc.Int4()``, ``adaptc.PoT(bits=b)``
    (power-of-two weights) or their names (adaptc.quantization); ``weight_budget`` (bytes) searches
    each layer's bit width to fit (mixed precision, adaptc.mixed). ``kernels``: restrict the kernel
    variants (e.g. ``"ref"`` for the portable reference kernels; default: the best the target has).
    ``output``: which output of a multi-output model to compile (default: the last -- the final
    head of a model with exits).
    """
    from . import tvm_compat
    from . import quantization as Q
    from .loader import select_output

    start = time.perf_counter()
    loaded = select_output(model if isinstance(model, LoadedModel) else load(model), output)
    labels = None
    if isinstance(calibration, tuple):
        calibration, labels = calibration
        labels = None if labels is None else np.asarray(labels)
    if calibration is not None:
        calibration = np.asarray(calibration)
    quantize = Q.parse(quantize)
    layers = None
    if weight_budget is not None:
        from .mixed import search

        if calibration is None:
            raise InputError(f"{loaded.info.name}: a weight budget needs calibration data")
        if quantize is not None and not isinstance(quantize, Q.PoT):
            raise InputError(f"weight_budget searches power-of-two widths; quantize={Q.name(quantize)!r} has none")
        choice = search(loaded, calibration, labels, int(weight_budget), target)
        quantize, layers = choice.config, choice.table
    passes, fmt, scheme = pipeline(loaded, calibration, quantize)
    mod = tvm_compat.apply(passes, loaded.mod)
    info = loaded.info
    prog = lower(mod, name or info.name, info.path)
    options = {"format": fmt, **({"name": name} if name else {}),
               **({"quantize": Q.name(quantize) if weight_budget is None else "mixed"} if quantize else {})}
    m = compile_program(prog, target, kernels=kernels, info=info, mod=mod, format=fmt,
                        quantization=io_quantization(mod, info, fmt), options=options)
    m.quantization = {"scheme": options.get("quantize", "int8" if fmt == "int8" and calibration is not None else None),
                      "layers": scheme.report if scheme else [], "search": layers}
    m.compile_seconds = time.perf_counter() - start
    return m


def compile_program(prog: Program, target: str = "cortex-m4", *, kernels: str | None = None,
                    info: ModelInfo | None = None, mod=None, format: str = "int8",
                    quantization: dict | None = None, options: dict | None = None) -> CompiledModel:
    """Render a lowered Program for a Cortex-M target: the C (best kernel variants the target
    runs, or ``kernels``), and -- when those need the target's instruction set -- the same program
    with portable kernels for the host (``host_files``). Checks the reference board's memory."""
    from .targets.cortex_m import emit_c, get_target
    from .targets.firmware import check_budget
    from .targets.kernels import PORTABLE_VARIANTS

    tgt = get_target(target)
    info = info or ModelInfo("<program>", "relax", prog.name, (), ())
    options = {**(options or {"format": format}), **({"kernels": kernels} if kernels else {})}
    files = emit_c(prog, tgt, options, quantization)
    host_files = None
    if any(s.variant not in PORTABLE_VARIANTS for s in prog.steps):
        allowed = set(kernels.split(",")) if kernels else set(tgt.kernel_variants)
        portable = [v for v in tgt.kernel_variants if v in PORTABLE_VARIANTS and v in allowed] or ["ref"]
        host_files = emit_c(copy.deepcopy(prog), tgt, {**options, "kernels": ",".join(portable)}, quantization)
    m = CompiledModel(info, tgt.name, mod, prog, files, format, host_files=host_files)
    check_budget(m, prog.weight_bytes, prog.arena_bytes + m.io_bytes,
                 "the model (weights; arena + input + output, before code and stack)")
    return m
