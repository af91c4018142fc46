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
from typing import TYPE_CHECKING

import numpy as np

from .errors import AdaptcError, InputError
from .loader import LoadedModel, ModelInfo, load
from .program import Program, lower

if TYPE_CHECKING:
    from .exits import ExitResult, StreamRun


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
    for key, tensors in (("input", info.inputs), ("output", info.outputs[-1:])):
        if attrs is not None and f"adaptc.{key}_scale" in attrs:
            out[key] = (float(attrs[f"adaptc.{key}_scale"]), int(attrs[f"adaptc.{key}_zero_point"]))
        elif fmt == "int8" and tensors and tensors[0].quantized:
            out[key] = (tensors[0].scale, tensors[0].zero_point)
    if fmt == "int8" and len(info.outputs) > 1:      # every head's (a model with exits)
        if attrs is not None and "adaptc.output_scales" in attrs:
            out["exits"] = [(float(sc), int(z)) for sc, z in zip(attrs["adaptc.output_scales"],
                                                                 attrs["adaptc.output_zero_points"])]
        elif all(t.quantized for t in info.outputs):
            out["exits"] = [(t.scale, t.zero_point) for t in info.outputs]
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
    exits: dict | None = None        # a model with exits: criterion, thresholds, calibration
    heads_mod: object = None         # a model with exits: the module before gating (every head)
    _host: object = field(default=None, repr=False)
    _vm: object = field(default=None, repr=False)
    _heads_vm: object = field(default=None, repr=False)

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

    @property
    def levels(self) -> int:
        """Utilization levels: one per exit (level L runs at most through exit L); 1 without exits."""
        return len(self.program.exits) or 1

    def _level(self, level) -> int:
        if not self.program.exits:
            if level is not None:
                raise InputError(f"{self.info.name} has no exits: level= needs a model compiled with exits=True")
            return 0
        top = len(self.program.exits) - 1
        if level is None:
            return top
        if not 0 <= int(level) <= top:
            raise InputError(f"level {level} out of range: {self.info.name} has levels 0..{top}")
        return int(level)

    def run(self, x: np.ndarray, level: int | None = None):
        """Run the generated C (built with the host compiler) on one input. The C is the
        target's, or -- where that needs the target's instruction set (MVE kernels) -- the same
        program rendered with the portable kernels (``host_files``), which compute the same bits.
        A model with exits returns an ``ExitResult`` (label, exit, confidence, logits); ``level``
        caps the deepest exit (default: the top level, no cap)."""
        x = self._check_input(x)
        level = self._level(level)
        self._host_model()
        if self.program.exits:
            res = np.zeros((), self._result_dtype())
            rc = self._host.run_level(x, level, res)
            if rc != 0:
                raise AdaptcError(f"{self.prefix}_run returned error code {rc}")
            return self._exit_result(res)
        out = np.zeros(self.output.shape, np.dtype(self.output.dtype))
        rc = self._host(x, out)
        if rc != 0:
            raise AdaptcError(f"{self.prefix}_run returned error code {rc}")
        return out

    def _host_model(self):
        from .host import HostModel, build_shared

        if self._host is None:
            files = self.host_files or self.files
            self._host = HostModel(build_shared(files, f"{self.prefix}.c"), self.prefix, self._result_dtype())
        return self._host

    def run_stream(self, xs, **settings) -> StreamRun:
        """Run a stream of inputs (``xs``: [N, *input shape]) through the generated C controller
        (``<prefix>_controller_run``, templates/model.h.j2): each input starts at the level the
        previous one left, is throttled up while its confidence stays below ``target`` and the
        level is lowered after ``patience`` comfortably confident inputs. ``settings`` override
        the compiled defaults at run time (``level``, ``min_level``, ``max_level``, ``target``,
        ``comfort``, ``patience``; confidences in the gates' units, see ``report["exits"]``)."""
        from .exits import StreamRun

        if not self.program.exits:
            raise InputError(f"{self.info.name} has no exits: run_stream needs a model compiled with exits=True")
        conf = self._result_dtype()["confidence"]
        state = np.zeros((), np.dtype([("level", "<i4"), ("min_level", "<i4"), ("max_level", "<i4"),
                                       ("target", conf), ("comfort", conf), ("patience", "<i4"), ("calm", "<i4")]))
        host = self._host_model()
        host.controller_init(self.prefix, state)
        for key, value in settings.items():
            if key not in state.dtype.names or key == "calm":
                raise InputError(f"run_stream: unknown controller setting {key!r}; "
                                 f"choose from {', '.join(n for n in state.dtype.names if n != 'calm')}")
            state[key] = value
        results, levels, raised = [], [], []
        for x in xs:
            x = self._check_input(np.asarray(x).reshape(self.input.shape))
            res = np.zeros((), self._result_dtype())
            levels.append(int(state["level"]))
            rc = host.controller_run(self.prefix, state, x, res)
            if rc != 0:
                raise AdaptcError(f"{self.prefix}_controller_run returned error code {rc}"
                                  + (" (controller levels out of range)" if rc == 2 else ""))
            results.append(self._exit_result(res))
            raised.append(results[-1].exit if results[-1].exit > levels[-1] else levels[-1])
        return StreamRun(results, np.array(levels), np.array(raised))

    def _result_dtype(self):
        """The C ``<prefix>_result`` struct as a NumPy dtype (a model with exits), else None."""
        if not self.program.exits:
            return None
        head = self.program.tensors[self.program.exits[0].head]
        conf = "<i4" if head.dtype == "int8" else "<f4"
        return np.dtype([("label", "<i4"), ("exit", "<i4"), ("confidence", conf),
                         ("logits", np.dtype(head.dtype), (head.shape[-1],))], align=True)

    def _exit_result(self, res) -> ExitResult:
        from .exits import ExitResult

        head = self.program.tensors[self.program.exits[0].head]
        logits = np.asarray(res["logits"]).reshape(head.shape).copy()
        conf = res["confidence"]
        return ExitResult(int(res["label"]), int(res["exit"]), int(conf) if head.dtype == "int8" else float(conf),
                          logits)

    def reference(self, x: np.ndarray, level: int | None = None):
        """Run the compiled Relax module on llvm (the reference the C must match). A model
        with exits returns an ``ExitResult``: the exit and logits from the module, the label
        their argmax, the confidence from adaptc.gates' definition of the criterion."""
        from . import gates, tvm_compat
        from .exits import ExitResult

        x = self._check_input(x)
        level = self._level(level)
        if self._vm is None:
            self._vm = tvm_compat.build_llvm(self.mod)
        if not self.program.exits:
            return tvm_compat.run_vm(self._vm, x)[0]
        logits, e = tvm_compat.run_vm(self._vm, x, np.array(level, np.int32))
        e = int(e)
        criterion = self.exits["criterion"]
        quant = self.program_io_quant.get("exits")
        conf = (int(gates.confidence_int(logits, criterion, quant[e][0])[0]) if quant
                else float(gates.confidence_float(logits, criterion)[0]))
        return ExitResult(int(np.argmax(logits[0])), e, conf, logits)

    def heads(self, x: np.ndarray) -> list[np.ndarray]:
        """Every exit head's logits for one input -- the whole network, no gate -- from the
        module before gating on llvm (a model with exits)."""
        from . import tvm_compat

        if self.heads_mod is None:
            raise InputError(f"{self.info.name} has no exits")
        x = self._check_input(x)
        if self._heads_vm is None:
            self._heads_vm = tvm_compat.build_llvm(self.heads_mod)
        return tvm_compat.run_vm(self._heads_vm, x)

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

    def run_on_target(self, x: np.ndarray, level: int | None = None):
        """Cross-build for the target and run one inference on an emulated core (QEMU): a
        ``TargetRun`` with ``outputs``, ``instructions`` (exact, whole inference), ``classes``
        and per-step ``steps``; for a model with exits also ``label``, ``exit``, ``confidence``
        and ``logits`` (at ``level``, default the top). Needs gcc-arm-none-eabi,
        libnewlib-arm-none-eabi, qemu-system-arm."""
        from .targets.emulator import run_on_target

        return run_on_target(self, x, level=level)

    def run_batch_on_target(self, xs: np.ndarray, levels=None):
        """Cross-build once and run every input of ``xs`` at every level of ``levels`` (default:
        all) in one QEMU launch: a ``BatchRun`` with ``label``, ``exit``, ``confidence``,
        ``logits`` and the exact executed ``instructions`` of each inference, ``[level, input]``."""
        from .targets.emulator import run_batch_on_target

        return run_batch_on_target(self, xs, levels)

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
        if self.exits:
            out["exits"] = self.exits["exits"]
            if "calibration" in self.exits:
                out["exit_calibration"] = self.exits["calibration"]
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
            weight_budget: int | None = None, exits=None, gate: str = "max_prob",
            thresholds=None, accuracy_budget: float = 0.01, controller: dict | None = None,
            arch: str = "sm_90", tune=None, *, _gpu: str | None = None) -> CompiledModel:
    """Compile a model file (.tflite / .onnx) or a LoadedModel for a Cortex-M target -- or, with
    ``target="llvm"`` / ``"cuda"`` (``arch``: the CUDA architecture), for batches on a CPU or an
    NVIDIA GPU (targets/cuda.py: the same integer program in batched segments; after each exit
    the samples still running are compacted; ``m.run(X)`` returns arrays ``label``, ``exit``,
    ``logits`` in input order). Exit thresholds are then calibrated against the GPU roofline.
    ``tune``: an ``adaptc.targets.tuning.Tuning`` -- MetaSchedule schedules from (and, with
    trials, into) a records directory, the segments built for static batch sizes.

    int8 TFLite models keep their quantization and are bit-exact with TFLite Micro. Float models
    compile to float32 C, or -- given ``calibration`` (representative inputs, first axis =
    samples; or ``(x, y)`` with labels) -- to integer C by post-training quantization:
    ``quantize`` = "int8" (the default, TFLite's scheme), ``adaptc.Int4()``, ``adaptc.PoT(bits=b)``
    (power-of-two weights) or their names (adaptc.quantization); ``weight_budget`` (bytes) searches
    each layer's bit width to fit (mixed precision, adaptc.mixed). ``kernels``: restrict the kernel
    variants (e.g. ``"ref"`` for the portable reference kernels; default: the best the target has).
    ``output``: which output of a multi-output model to compile (default: the last -- the final
    head of a model with exits).

    ``exits=True`` (or a list of output indices): the outputs are exit heads, shallow to deep;
    each becomes a gate -- ``gate`` criterion (adaptc.gates: "max_prob", "margin", "entropy") >=
    its threshold -- and the C runs only as deep as each input needs (``m.run(x, level)``).
    ``thresholds`` (one per gate, in the criterion's real units) or, by default, calibrated on
    the labelled ``calibration=(x, y)``: the least expected cost (cycles on the target from
    adaptc.simulate) with accuracy within ``accuracy_budget`` of the final exit's (adaptc.exits).
    ``controller``: the C stream controller's defaults, ``{"target", "comfort"}`` (real units of
    the criterion), ``"patience"``, ``"start"`` (level); unset keys: adaptc.exits.Controller.default.
    """
    from . import tvm_compat
    from . import quantization as Q
    from .loader import select_output

    from .loader import select_outputs

    if tune is not None and target not in GPU_TARGETS:
        raise InputError(f"tune= tunes the batched llvm / cuda builds; it does not apply to target {target!r}")
    if target in GPU_TARGETS:
        from .targets.cuda import build

        if kernels is not None:
            raise InputError("kernels= chooses Cortex-M kernel variants; it does not apply to target "
                             f"{target!r}")
        base = compile(model, PROGRAM_TARGET, calibration, name, None, output, quantize, weight_budget, exits,
                       gate, thresholds, accuracy_budget, controller, _gpu=target)
        return build(base, target, arch, tune=tune)
    start = time.perf_counter()
    loaded = model if isinstance(model, LoadedModel) else load(model)
    if exits:
        if output is not None:
            raise InputError("output= and exits= exclude each other: exits compile every head")
        if weight_budget is not None:
            raise InputError("weight_budget= with exits= is not supported yet; choose quantize= per layer")
        loaded = select_outputs(loaded, None if exits is True else list(exits))
    else:
        loaded = select_output(loaded, output)
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
    options = {"format": fmt, **({"name": name} if name else {}),
               **({"quantize": Q.name(quantize) if weight_budget is None else "mixed"} if quantize else {})}
    if exits:
        m = _compile_exits(mod, info, name or info.name, target, kernels, fmt, options, gate, thresholds,
                           calibration, labels, accuracy_budget, controller, _gpu)
    elif controller is not None:
        raise InputError("controller= needs exits=True")
    else:
        prog = lower(mod, name or info.name, info.path)
        m = compile_program(prog, target, kernels=kernels, info=info, mod=mod, format=fmt,
                            quantization=io_quantization(mod, info, fmt), options=options,
                            check_budget=_gpu is None)
    m.quantization = {"scheme": options.get("quantize", "int8" if fmt == "int8" and calibration is not None else None),
                      "layers": scheme.report if scheme else [], "search": layers}
    m.compile_seconds = time.perf_counter() - start
    return m


INT32_MAX = 2**31 - 1
GPU_TARGETS = ("llvm", "cuda")
PROGRAM_TARGET = "cortex-m4"      # the program a batched (llvm / cuda) build is made from


def _compile_exits(mod, info, name, target, kernels, fmt, options, criterion, thresholds,
                   calibration, labels, accuracy_budget, controller=None, gpu=None) -> CompiledModel:
    """Gates and If for the heads of ``mod`` (a multi-output composite module), thresholds given
    or calibrated; the CompiledModel with ``exits`` filled in."""
    from . import gates
    from .exits import calibrate
    from .passes.insert_gates import InsertGates, plan_exits
    from . import tvm_compat

    gates.check(criterion)
    plan = plan_exits(mod, info.path)
    n = len(plan.heads)
    quant = io_quantization(mod, info, fmt)
    int8 = plan.dtype == "int8"
    scales = [sc for sc, _ in quant["exits"]] if int8 else None
    if int8 and scales is None:
        raise InputError(f"{info.name}: the int8 exit heads carry no output quantization")
    options = {**options, "exits": n, "gate": criterion}

    settings = dict(controller or {})
    unknown = set(settings) - {"target", "comfort", "patience", "start"}
    if unknown:
        raise InputError(f"controller: unknown setting(s) {', '.join(sorted(unknown))}; "
                         "choose from target, comfort, patience, start")

    def build(th):
        gated = tvm_compat.apply([InsertGates(criterion, th, scales, info.path)], mod)
        prog = lower(gated, name, info.path)
        for key, value in settings.items():      # real confidences -> the gates' units
            if key in ("target", "comfort") and int8:
                value = gates.int_threshold(criterion, value, scales[0])
            setattr(prog.controller, key, value)
        return compile_program(prog, target, kernels=kernels, info=info, mod=gated,
                               format=fmt, quantization=quant, options=options, check_budget=gpu is None)

    def real(i, t):
        return None if t in (INT32_MAX, np.inf) else (float(t) * gates.unit(criterion, scales[i]) if int8 else float(t))

    record = {"criterion": criterion}
    if thresholds is not None:
        if len(thresholds) != n - 1:
            raise InputError(f"{info.name}: {n} exits take {n - 1} thresholds (the last exit has no gate), "
                             f"got {len(thresholds)}")
        th = [gates.int_threshold(criterion, t, scales[i]) for i, t in enumerate(thresholds)] if int8 \
            else [float(t) for t in thresholds]
        m = build(th)
    else:
        if calibration is None or labels is None:
            raise InputError(f"{info.name}: calibrating exit thresholds needs labelled data: calibration=(x, y) "
                             "(--calibration FILE.npz with arrays x and y), or thresholds=")
        provisional = build([INT32_MAX if int8 else np.inf] * (n - 1))
        cost, unit = exit_costs(provisional, gpu)
        conf, correct = head_statistics(mod, quant, calibration, labels, criterion, scales)
        cal = calibrate(conf, correct, cost, accuracy_budget)
        th = [min(t, INT32_MAX) if int8 else t for t in cal.thresholds]
        m = build(th)
        record["calibration"] = {"cost_unit": unit, "samples": int(len(labels)), "accuracy_budget": accuracy_budget,
                                 "accuracy": cal.accuracy, "final_accuracy": cal.final_accuracy,
                                 "expected_cost": cal.expected_cost, "full_cost": cal.full_cost,
                                 "speedup": cal.full_cost / cal.expected_cost if cal.expected_cost else None,
                                 "exits": cal.exits, "curve": cal.curve}
    record["exits"] = [{"exit": i, "criterion": criterion,
                        "threshold": real(i, th[i]) if i < n - 1 else None,
                        "threshold_int": (int(th[i]) if i < n - 1 else None) if int8 else None,
                        "gate_step": e.gate, "head": m.program.tensors[e.head].name,
                        # what running up to this exit touches: MACs, flash constants read
                        "macs": sum(s.macs for s in m.program.steps[:e.gate + 1]),
                        "weight_bytes": sum(s.flash_bytes for s in m.program.steps[:e.gate + 1]),
                        **({"scale": scales[i], "zero_point": quant["exits"][i][1]} if int8 else {})}
                       for i, e in enumerate(m.program.exits)]
    ctl = m.program.controller
    record["controller"] = {"target": real(0, ctl.target), "comfort": real(0, ctl.comfort),
                            "patience": int(ctl.patience), "start": n - 1 if ctl.start is None else int(ctl.start),
                            **({"target_int": int(ctl.target), "comfort_int": int(ctl.comfort)} if int8 else {})}
    m.exits = record
    m.heads_mod = mod
    return m


def exit_costs(m: CompiledModel, gpu: str | None = None) -> tuple[list[float], str]:
    """The cost of leaving at each exit of ``m``: cycles on its target from the simulator
    (adaptc.sim: the lowered program against per-kernel tables; no model runs), through each
    exit's gate, zero flash wait states -- or, for a batched build (``gpu``), the seconds of the
    GPU roofline at batch 1."""
    from .sim import simulate

    if gpu is not None:
        return [e.cycles for e in simulate(m, target="cuda").exits], "seconds (cuda roofline, H100, simulated)"
    return [e.cycles for e in simulate(m).exits], f"cycles ({m.target}, simulated)"


def head_statistics(mod, quant, calibration, labels, criterion, scales):
    """Every head's confidence (as its gate computes it) and correctness on the calibration
    data, from the un-gated module on llvm: arrays [exits, samples]."""
    from . import gates, tvm_compat
    from .passes.quantize_int8 import samples_of_shape

    samples = samples_of_shape(calibration, tvm_compat.shape_of(mod["main"].params[0].ty), "calibration")
    vm = tvm_compat.build_llvm(mod)
    heads = None
    for x in samples:
        if "input" in quant:
            sc, zp = quant["input"]
            x = np.clip(np.round(np.asarray(x, np.float64) / sc) + zp, -128, 127).astype(np.int8)
        outs = tvm_compat.run_vm(vm, x)
        heads = [[] for _ in outs] if heads is None else heads
        for h, o in zip(heads, outs):
            h.append(o.reshape(-1))
    heads = [np.stack(h) for h in heads]
    labels = np.asarray(labels).reshape(-1)
    if len(labels) != len(samples):
        raise InputError(f"calibration has {len(samples)} inputs but {len(labels)} labels")
    conf = np.stack([gates.confidence_int(h, criterion, scales[i]).astype(np.int64) if scales
                     else gates.confidence_float(h, criterion) for i, h in enumerate(heads)])
    correct = np.stack([h.argmax(axis=-1) == labels for h in heads])
    return conf, correct


def compile_program(prog: Program, target: str = "cortex-m4", *, kernels: str | None = None,
                    info: ModelInfo | None = None, mod=None, format: str = "int8",
                    quantization: dict | None = None, options: dict | None = None,
                    check_budget: bool = True) -> CompiledModel:
    """Render a lowered Program for a Cortex-M target: the C (best kernel variants the target
    runs, or ``kernels``), and -- when those need the target's instruction set -- the same program
    with portable kernels for the host (``host_files``). Checks the reference board's memory."""
    from .targets.cortex_m import emit_c, get_target
    from .targets.firmware import check_budget as budget
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
    if check_budget:
        budget(m, prog.weight_bytes, prog.arena_bytes + m.io_bytes,
               "the model (weights; arena + input + output, before code and stack)")
    return m
