"""The batched build: a compiled model as segments over a batch, compacted after each gate.

A model with exits is cut into its exit segments (``adaptc.passes.insert_gates.plan_exits``:
segment i = the dependency closure of head i less what earlier segments computed). Each segment
becomes one Relax function over a **symbolic batch** ``n``::

    segment_i(carried tensors [n, ...]) -> (head_i logits [n, C], confidence [n], leave [n], carried out)

``confidence`` is exactly what the gate composite computes (``adaptc.qops.gate_confidence_int``
/ ``gate_confidence_f32``) and ``leave`` its comparison with the exit's threshold (always true
at the last exit); the utilization level is applied by the host. ``compact_i(live tensors, idx)``
gathers the samples still running (``take`` on the device). The composites are rebuilt from the
registry (``adaptc.qops.COMPOSITES``) for batched parameter types, so each sample computes the
same integer ops as the batch-1 module: int8 results are bit-exact with the Relax VM's and the
generated C's per-sample results. A model without exits is one segment without a gate.

Host orchestration (``BatchedModel.run``): segment 0 runs on the whole batch; samples whose gate
fires (or whose level allows no deeper exit) write label (argmax of the logits), exit, confidence
and logits at their original positions; the rest are compacted and run the next segment.

``build(model, "llvm" | "cuda", arch)`` compiles the module with ``tvm.compile`` and
``batched_pipeline``: TVM's operator fusion, then one kernel per fused group
(schedule_fused_kernels.py; a kernel left without thread bindings fails a CUDA build).
The llvm build is the same program with the thread loops run by the CPU. Without a GPU the CUDA
module holds the generated source only (``cuda_source``, ``write_cuda``); running it needs the
device.

A tuned build (``build(..., tune=Tuning(...))``, tuning.py) holds every segment once per
static batch size (bucket) ``segment_i_b<rows>`` / ``compact_i_b<rows>`` in one module; the host
pads a batch to its bucket and each compaction's index to the next bucket (repeating a live row),
and reads back only the live rows.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tvm
from tvm import relax

from adaptc import gates, qops, tvm_compat
from adaptc.errors import InputError, TargetError, UnsupportedOperatorError
from adaptc.fixedpoint import RelaxFixedPoint
from adaptc.model import CompiledModel
from adaptc.passes.canonical_shape_funcs import CanonicalShapeFuncs
from adaptc.passes.insert_gates import plan_exits
from adaptc.report import atomic_directory

from . import runtime, tuning
from .runtime import BatchPlan, BatchResult, SegmentRunner, SegmentSpec
from .schedule import schedule
from .schedule_fused_kernels import ScheduleFusedKernels
from .tuning import Tuning, fuse_passes


@dataclass(frozen=True)
class GpuTarget:
    """What the batched build needs to know of a target: its TVM target and device."""

    kind: str                       # "llvm" | "cuda"
    arch: str | None = None         # "sm_90" for cuda

    @property
    def tvm_target(self):
        if self.kind == "cuda":
            return tvm.target.Target({"kind": "cuda", "arch": self.arch})
        return tvm.target.Target({"kind": "llvm", "num-cores": os.cpu_count() or 1})  # (MetaSchedule reads it)

    @property
    def key(self) -> str:
        """"llvm" / "cuda-sm_90": what tuning records are kept apart by."""
        return f"{self.kind}-{self.arch}" if self.arch else self.kind

    @property
    def needs_gpu(self) -> bool:
        return self.kind == "cuda"

    def device(self):
        return tvm.cuda(0) if self.kind == "cuda" else tvm.cpu(0)

    def require_device(self, what: str = "this build"):
        """The device, or a TargetError naming what is missing (check before a long build)."""
        dev = self.device()
        if dev.exist:
            return dev
        if self.needs_gpu:
            raise TargetError(f"{what}: no CUDA device (tvm.cuda(0) does not exist on this machine): a CUDA build "
                              "can be generated (cuda_source(), write_cuda()) but running it needs an NVIDIA GPU; "
                              "use target 'llvm' to run the batched module on the CPU")
        raise TargetError(f"{what}: device {dev} not available")


TARGETS = ("llvm", "cuda")


def gpu_target(target: str, arch: str = "sm_90") -> GpuTarget:
    if target not in TARGETS:
        raise TargetError(f"unknown batched target {target!r}; choose one of {', '.join(TARGETS)}")
    if target == "cuda" and not (arch.startswith("sm_") and arch[3:].isdigit()):
        raise TargetError(f"CUDA arch must look like 'sm_90', got {arch!r}")
    return GpuTarget(target, arch if target == "cuda" else None)


# ------------------------------------------------------------------------------ the batched module


_SHAPE_OPS = ("relax.reshape", "relax.permute_dims", "relax.squeeze", "relax.expand_dims")


def _batched_type(ty, n):
    shape = tvm_compat.shape_of(ty)
    if not shape or shape[0] != 1:
        raise InputError(f"cannot batch a tensor of shape {list(shape)}: the batch dimension (1) must lead")
    return relax.TensorType([n, *shape[1:]], tvm_compat.dtype_of(ty))


def _batch_dim(batch):
    return tvm.tirx.Var("n", "int64") if batch is None else tvm.tirx.IntImm("int64", int(batch))


def _batched_composite(mod, gv, call, batch=None):
    """The composite ``gv`` rebuilt from its registry entry for a symbolic batch."""
    func = mod[gv]
    attrs = tvm_compat.plain_attrs(func)
    name = attrs.pop("Composite")
    source = attrs.pop("source", "")
    n = _batch_dim(batch)
    acts = [p for p, a in zip(func.params, call.args) if not tvm_compat.is_constant(a)]
    consts = [(p, a) for p, a in zip(func.params, call.args) if tvm_compat.is_constant(a)]
    spec = qops.CompositeCall(name, [], [tvm_compat.constant_value(a) for _, a in consts], attrs, (), "",
                              source, [p.name for p, _ in consts])
    return qops.build_function(spec, [_batched_type(p.ty, n) for p in acts])


def _batched_value(value, sub, composites, path):
    """A binding's value for batched arguments (``sub`` maps batch-1 vars to batched ones)."""
    if isinstance(value, relax.Var):
        return sub(value)
    if isinstance(value, relax.Call) and isinstance(value.op, tvm.ir.GlobalVar):
        return relax.Call(composites[value.op], [sub(a) for a in value.args])
    op = tvm_compat.op_name(value)
    if op not in _SHAPE_OPS:
        raise UnsupportedOperatorError(path, str(op or type(value).__name__), "", ["adaptc composites", *_SHAPE_OPS],
                                       "the batched CUDA target")
    x = sub(value.args[0])
    if op == "relax.reshape":
        shape = tvm_compat.shape_of(value.ty)
        if shape[0] != 1:
            raise UnsupportedOperatorError(path, op, "", ["reshape keeping the leading batch dimension 1"])
        return relax.op.reshape(x, [x.ty.shape.values[0], *shape[1:]])
    if op == "relax.permute_dims":
        axes = value.attrs.axes
        if axes is None or int(axes[0]) != 0:
            raise UnsupportedOperatorError(path, op, "", ["permute_dims keeping axis 0 first"])
        return relax.op.permute_dims(x, [int(a) for a in axes])
    axis = value.attrs.axis
    if axis is None or 0 in [int(a) for a in axis]:
        raise UnsupportedOperatorError(path, op, "", [f"{op} off the batch axis"])
    return relax.op.squeeze(x, [int(a) for a in axis]) if op == "relax.squeeze" \
        else relax.op.expand_dims(x, [int(a) for a in axis])


def batched_module(model, batch: int | None = None, suffix: str = ""):
    """(IRModule of segment_i / compact_i functions over a symbolic batch -- or ``batch`` rows --
    BatchPlan) for a CompiledModel (see module docstring). ``suffix`` ends every global name
    (one module per bucket, merged: ``_build_tuned``)."""
    exits = model.exits is not None
    src = model.heads_mod if exits else model.mod
    path = model.info.path
    src = tvm_compat.to_non_dataflow(src)
    func = src["main"]
    bindings = tvm_compat.bindings(func)
    (param,) = func.params
    if exits:
        plan = plan_exits(src, path)
        segments, heads = plan.segments, list(plan.heads)
    else:
        segments, heads = [list(range(len(bindings)))], tvm_compat.results(func)
        if len(heads) != 1:
            raise InputError(f"{path}: the {model.target} target runs one output of a model without exits, "
                             f"this one has {len(heads)}: choose one with output= (--model-output), or compile "
                             "the outputs as exits (exits=True)")
    int8 = tvm_compat.dtype_of(heads[0].ty) == "int8"
    criterion = model.exits["criterion"] if exits else None
    records = model.exits["exits"] if exits else []
    thresholds = [(r["threshold_int"] if int8 else r["threshold"]) for r in records] if exits else [None]
    scales = [r.get("scale") for r in records]

    # which segment defines each var (the input: -1), and which vars each segment reads
    where = {param: -1}
    for s, idx in enumerate(segments):
        for k in idx:
            where[bindings[k].var] = s
    reads = []
    for s, idx in enumerate(segments):
        used = []
        for k in idx:
            for v in relax.analysis.free_vars(bindings[k].value):
                if v in where and where[v] != s and v not in used:
                    used.append(v)
        reads.append(used)
    carried = [[v for v in where if where[v] <= s and any(v in reads[t] for t in range(s + 1, len(segments)))]
               for s in range(len(segments))]

    composites = {}
    out = tvm.IRModule()
    bb = relax.BlockBuilder(out)
    for idx in segments:
        for k in idx:
            v = bindings[k].value
            if isinstance(v, relax.Call) and isinstance(v.op, tvm.ir.GlobalVar) and v.op not in composites:
                composites[v.op] = bb.add_func(_batched_composite(src, v.op, v, batch), v.op.name_hint + suffix)

    specs = []
    for s, idx in enumerate(segments):
        n = _batch_dim(batch)
        params = [relax.Var(v.name, _batched_type(v.ty, n)) for v in reads[s]] if s else \
            [relax.Var(param.name, _batched_type(param.ty, n))]
        new_of = dict(zip(reads[s] if s else [param], params))
        sub = lambda e: new_of.get(e, e) if isinstance(e, relax.Var) else e  # noqa: E731
        outputs = [v for v in carried[s] if where[v] == s]
        with bb.function(f"segment_{s}{suffix}", params, attrs={"num_input": len(params)}):
            with bb.dataflow():
                for k in idx:
                    b = bindings[k]
                    new_of[b.var] = bb.emit(_batched_value(b.value, sub, composites, path), b.var.name)
                head = new_of[heads[s]]
                results = [head]
                if exits:
                    F = RelaxFixedPoint(bb)
                    a = {"criterion": criterion}
                    if int8:
                        a["scale_q16"] = gates.scale_q16(scales[s])
                        conf = qops.gate_confidence_int(
                            F, head, [relax.const(t) for t in gates.tables(criterion, scales[s])], a)
                        never = -2**31
                        threshold = relax.const(np.int32(never if thresholds[s] is None else thresholds[s]))
                    else:
                        conf = qops.gate_confidence_f32(F, head, a)
                        threshold = relax.const(np.float32(-np.inf if thresholds[s] is None else thresholds[s]))
                    conf = bb.emit(relax.op.squeeze(conf, [-1]), "confidence")
                    results += [conf, bb.emit(relax.op.greater_equal(conf, threshold), "leave")]
                results += [new_of[v] for v in outputs]
                result = bb.emit_output(relax.Tuple(results))
            bb.emit_func_output(result)
        live = carried[s]
        if live and s < len(segments) - 1:
            n, m = _batch_dim(batch), tvm.tirx.Var("m", "int64")
            cparams = [relax.Var(v.name, _batched_type(v.ty, n)) for v in live]
            index = relax.Var("index", relax.TensorType([m], "int64"))
            with bb.function(f"compact_{s}{suffix}", [*cparams, index], attrs={"num_input": len(cparams) + 1}):
                with bb.dataflow():
                    taken = [bb.emit(relax.op.take(p, index, axis=0, mode="clip")) for p in cparams]
                    result = bb.emit_output(relax.Tuple(taken))
                bb.emit_func_output(result)
        specs.append(SegmentSpec(f"segment_{s}", [v.name for v in (reads[s] if s else [param])],
                                 [v.name for v in outputs], [v.name for v in live], exits))
    mod = relax.transform.Normalize()(bb.get())
    head_shape = tvm_compat.shape_of(heads[0].ty)[1:]
    return mod, BatchPlan(specs, param.name, head_shape, tvm_compat.dtype_of(heads[0].ty), thresholds, criterion)


# ------------------------------------------------------------------------------ build and run


@dataclass
class BatchedModel(CompiledModel):
    """A CompiledModel built as batched segments (module docstring): the TVM build
    (``executable`` of ``batched_mod``), its ``plan`` and the host orchestration."""

    device_target: GpuTarget | None = None
    batched_mod: object = None
    plan: BatchPlan | None = None
    executable: object = None
    buckets: list | None = None              # None: symbolic batch; else the static batch sizes (tuned build)
    tuned_kernels: int = 0                   # kernels scheduled from tuning records
    _runner: object = field(default=None, repr=False)

    @property
    def arch(self) -> str | None:
        return self.device_target.arch

    def cuda_source(self) -> str:
        """The generated CUDA C of every kernel (a CUDA build)."""
        if not self.device_target.needs_gpu:
            raise TargetError(f"{self.info.name}: cuda_source() needs a build for target 'cuda', "
                              f"this one is for {self.target!r}")
        return cuda_source_of(self.executable)

    def runner(self) -> SegmentRunner:
        """The host orchestration on this build's device (runtime.py); a TargetError naming the
        missing device where there is none."""
        if self._runner is None:
            self._runner = SegmentRunner(self.executable, self.plan, self.device_target.require_device(self.info.name),
                                         self.info.name, self.input.shape, self.input.dtype, self.buckets)
        return self._runner

    def run(self, xs, level: int | None = None) -> BatchResult:
        """Run a batch [N, *input shape[1:]]: every sample leaves at the first exit whose gate
        fires, or at exit ``level`` (the deepest allowed; default: the last). A tuned build pads
        the samples to its buckets and runs a batch larger than its largest in chunks."""
        return self.runner().run(xs, level)

    def exits_taken(self, xs: np.ndarray, level: int) -> np.ndarray:
        xs = np.asarray(xs).reshape(len(xs), *self.input.shape[1:])
        return np.asarray(self.run(xs, level=level if self.program.exits else None).exit, int)

    def export(self, directory) -> dict[str, Path]:
        """``DIR/<prefix>_<target>.so`` and ``DIR/<prefix>_batched.json``: what
        ``adaptc.targets.cuda.runtime.load(DIR)`` runs with the TVM runtime alone; for a CUDA
        build also ``DIR/<prefix>.cu``, every kernel's source (``nvcc -c -arch=sm_XX``). Written
        atomically (adaptc.report.atomic_directory: nothing left behind on a failure; modes as
        ``mkdir`` and the umask give them)."""
        runner = SegmentRunner(self.executable, self.plan, None, self.info.name, self.input.shape, self.input.dtype,
                               self.buckets)
        gpu = self.device_target
        target = {"kind": gpu.kind, **({"arch": gpu.arch} if gpu.arch else {})}
        directory = Path(directory)
        with atomic_directory(directory) as tmp:
            paths = {}
            if gpu.needs_gpu:
                cu = tmp / f"{self.prefix}.cu"
                cu.write_text(f"// generated by adaptc (target cuda, arch {gpu.arch}): kernels of {self.prefix}'s "
                              f"batched segments\n" + self.cuda_source())
                paths["source"] = cu
            paths.update(runtime.export(runner, tmp, self.prefix, target))
            paths.update(self.write_augmented(tmp))
        return {kind: directory / p.name for kind, p in paths.items()}


def cuda_source_of(executable) -> str:
    """CUDA C held by a CUDA build's executable (VM executable -> host llvm module -> cuda module)."""
    for host in executable.mod.imports:
        for sub in host.imports:
            if sub.kind == "cuda":
                return sub.inspect_source("")
    raise TargetError("the executable holds no CUDA module")


def batched_pipeline(target: GpuTarget, records: Path | None = None, counted: list | None = None):
    """TVM's default Relax pipeline for ``target`` (relax.backend.cuda / cpu_generic) with our
    kernel schedule: LegalizeOps, FoldConstant, FuseOps, FuseTIR, then
    ``ScheduleFusedKernels`` (schedule_fused_kernels.py: why not dlight's rules; one
    kernel per fused group, intermediates per thread) in place of dlight's default rules. The
    llvm build runs the same fusion and the same block placement, with the thread loops left to
    the CPU -- the bit-exact checks on llvm cover the CUDA build's arithmetic. ``records``: a
    MetaSchedule database (tuning.py) applied before, ``counted`` gets the number of
    kernels it scheduled. Last, ``CanonicalShapeFuncs`` (adaptc.passes): VMShapeLower's shape
    functions in one order in every process, so the exported library is byte-identical."""
    from tvm.relax.backend.cpu_generic import pipeline as cpu
    from tvm.relax.backend.cuda import pipeline as cuda

    backend = cuda if target.needs_gpu else cpu
    tvm_target = target.tvm_target

    @tvm.transform.module_pass(opt_level=0, name="adaptc.BatchedPipeline")
    def _pipeline(mod, _ctx):
        with tvm_target:
            passes = backend.library_dispatch_passes(tvm_target) + fuse_passes()
            if records is not None:     # MetaSchedule's schedules first; the rest as untuned
                passes += [relax.transform.MetaScheduleApplyDatabase(str(records)), _count_scheduled(counted)]
            passes += [ScheduleFusedKernels(gpu=target.needs_gpu)]
            return tvm.transform.Sequential(passes + backend.dataflow_lower_passes(tvm_target)
                                            + backend.finalize_passes(tvm_target) + [CanonicalShapeFuncs])(mod)

    return _pipeline


def _count_scheduled(into: list | None):
    @tvm.transform.module_pass(opt_level=0, name="adaptc.CountScheduled")
    def _count(mod, _ctx):
        if into is not None:
            into.append(sum(1 for _, f in mod.functions_items() if isinstance(f, tvm.tirx.PrimFunc)
                            and f.attrs is not None and bool(f.attrs.get("tirx.is_scheduled", False))))
        return mod
    return _count


def build(model: CompiledModel, target: str = "llvm", arch: str = "sm_90", batch: int | None = None,
          tune: Tuning | None = None) -> BatchedModel:
    """Compile ``model`` (a CompiledModel for any target: its Relax module and exit records) as
    batched segments for ``target`` ("llvm" or "cuda"; ``arch`` the CUDA architecture), for any
    batch size (``batch`` None: symbolic) or one. ``tune`` (tuning.py): static buckets with
    MetaSchedule schedules from (and, with trials, into) a records directory."""
    gpu = gpu_target(target, arch)
    scheduled = model.scheduled if model.target == target else schedule(model.program, target)
    if tune is not None:
        mod, plan, ex, buckets, counted = _build_tuned(model, gpu, tune)
    else:
        mod, plan = batched_module(model, batch)
        ex = tvm.compile(mod, target=gpu.tvm_target, relax_pipeline=batched_pipeline(gpu))
        buckets, counted = None, 0
    return model.derive(BatchedModel, target=target, scheduled=scheduled, device_target=gpu, batched_mod=mod,
                        plan=plan, executable=ex, buckets=buckets, tuned_kernels=counted)


def _build_tuned(model, gpu: GpuTarget, tune: Tuning):
    """One module holding every bucket's segments (``segment_i_b<rows>``, ``compact_i_b<rows>``),
    tuned when ``tune.trials`` > 0, the records applied, the rest scheduled as untuned:
    (module, plan, executable, buckets, kernels scheduled from the records)."""
    records = tune.check(gpu.key, gpu.needs_gpu, gpu.device().exist)
    buckets = tune.buckets()
    parts = [batched_module(model, b, f"_b{b}") for b in buckets]
    if tune.trials:
        tuning.tune([m for m, _ in parts], gpu.tvm_target, tune, records)
    mod = tvm.IRModule()
    for m, _ in parts:
        mod.update(m)
    counted: list = []
    ex = tvm.compile(mod, target=gpu.tvm_target, relax_pipeline=batched_pipeline(gpu, records, counted))
    return mod, parts[0][1], ex, buckets, counted[0] if counted else 0


def write_cuda(model, directory, arch: str = "sm_90") -> dict[str, Path]:
    """Write ``DIR/<prefix>.cu`` (the kernels, self-contained: ``nvcc -c -arch=sm_XX``),
    ``DIR/<prefix>_cuda.so`` (the VM executable with the CUDA module) and
    ``DIR/<prefix>_batched.json`` (the plan): ``adaptc.targets.cuda.runtime.load(DIR)`` runs it
    on a GPU host with the TVM runtime alone. Returns the paths by kind."""
    built = model if isinstance(model, BatchedModel) else build(model, "cuda", arch)
    return built.export(directory)
