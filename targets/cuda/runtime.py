"""Running a batched build: the host side of batched.py, on TVM's runtime alone.

A batched build is a VM executable (``segment_i`` / ``compact_i`` functions, per bucket
``..._b<rows>`` in a tuned build) and a ``BatchPlan`` saying which tensors each segment takes,
returns and leaves live. ``SegmentRunner.run`` is the orchestration: segment 0 on the whole batch;
the samples whose gate fires (or whose level allows no deeper exit) write label, exit, confidence
and logits at their original positions; the rest are gathered on the device (``compact_i``) for
the next segment. It needs numpy and ``tvm.runtime`` only, so an exported build
(``export``: ``<prefix>_<target>.so`` + ``<prefix>_batched.json``) runs on a server that has the
TVM runtime and no compiler (``TVM_USE_RUNTIME_LIB=1``): ``load(directory)``.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from itertools import zip_longest
from pathlib import Path

import numpy as np
import tvm
from tvm.runtime.vm import VirtualMachine

from adaptc.errors import InputError, TargetError
from adaptc.validation import real_array

PLAN_SUFFIX = "_batched.json"


@dataclass
class SegmentSpec:
    """The host's view of one segment: the tensors it takes and returns (names of the batch-1
    module's vars), and whether it ends with a gate."""

    name: str
    inputs: list[str]
    outputs: list[str]              # carried tensors it produces for later segments
    live: list[str]                 # every carried tensor held after it (compact_i's inputs)
    gated: bool


@dataclass
class BatchPlan:
    segments: list[SegmentSpec]
    input_name: str
    classes_shape: tuple            # per-sample logits shape
    logits_dtype: str
    thresholds: list                # per exit (None for the last)
    criterion: str | None


@dataclass
class BatchResult:
    """Results of a batch in input order: label (argmax of the logits), exit taken, the gate's
    confidence at that exit (None without exits), logits."""

    label: np.ndarray
    exit: np.ndarray
    confidence: np.ndarray | None
    logits: np.ndarray
    segment_sizes: list[int] = field(default_factory=list)   # samples each segment ran on
    segment_rows: list[int] = field(default_factory=list)    # rows it computed (with a bucket's padding)


class SegmentRunner:
    """A loaded batched executable and its plan; ``run`` (module docstring).

    ``name``: for messages; ``input_shape`` / ``input_dtype``: one sample's input ([1, ...]);
    ``buckets``: None (symbolic batch) or the static batch sizes of a tuned build."""

    def __init__(self, executable, plan: BatchPlan, device, name: str, input_shape, input_dtype: str,
                 buckets=None):
        self.executable, self.plan, self.device, self.name = executable, plan, device, name
        self.input_shape, self.input_dtype = tuple(input_shape), str(input_dtype)
        self.buckets = list(buckets) if buckets else None
        self._vm = None

    @property
    def levels(self) -> int:
        return len(self.plan.segments)

    def _rows(self, samples: int) -> int:
        """Rows a segment runs for ``samples`` samples: the smallest bucket that holds them."""
        if self.buckets is None:
            return samples
        return next(b for b in self.buckets if b >= samples)

    def _name(self, base: str, rows: int) -> str:
        return base if self.buckets is None else f"{base}_b{rows}"

    def _machine(self):
        if self._vm is None:
            self._vm = VirtualMachine(self.executable, self.device)
        return self._vm

    def _check(self, xs) -> np.ndarray:
        xs = real_array(xs, "inputs", self.name)      # every value finite, the first bad one named
        want = self.input_shape[1:]
        if xs.dtype != np.dtype(self.input_dtype) or xs.ndim != len(self.input_shape) \
                or tuple(xs.shape[1:]) != want or not len(xs):
            raise InputError(f"{self.name}: a batch must be {self.input_dtype} with shape "
                             f"[N, {', '.join(map(str, want))}] (N >= 1), got {xs.dtype} {list(xs.shape)}")
        return np.ascontiguousarray(xs)

    def run(self, xs, level: int | None = None) -> BatchResult:
        """Run a batch [N, *input shape[1:]]: every sample leaves at the first exit whose gate
        fires, or at exit ``level`` (the deepest allowed; default: the last). A tuned build pads
        the samples to its buckets and runs a batch larger than its largest in chunks."""
        last = self.levels - 1
        if level is None:
            level = last
        elif not self.plan.segments[0].gated:
            raise InputError(f"{self.name} has no exits: level= needs a model compiled with exits=True")
        elif not 0 <= int(level) <= last:
            raise InputError(f"level {level} out of range: {self.name} has levels 0..{last}")
        xs = self._check(xs)
        if self.buckets is not None and len(xs) > self.buckets[-1]:
            step = self.buckets[-1]
            parts = [self._run(xs[i:i + step], int(level)) for i in range(0, len(xs), step)]
            return BatchResult(*(np.concatenate([getattr(p, f) for p in parts]) if getattr(parts[0], f) is not None
                                 else None for f in ("label", "exit", "confidence", "logits")),
                               *([sum(v) for v in zip_longest(*(getattr(p, f) for p in parts), fillvalue=0)]
                                 for f in ("segment_sizes", "segment_rows")))
        return self._run(xs, int(level))

    def _run(self, xs, level: int) -> BatchResult:
        plan = self.plan
        vm, dev = self._machine(), self.device
        total = len(xs)
        logits = np.zeros((total, *plan.classes_shape), np.dtype(plan.logits_dtype))
        exit_ = np.zeros(total, np.int32)
        conf = None
        alive = np.arange(total)                 # original position of each live row
        rows = self._rows(total)                 # rows computed (>= len(alive): a bucket's padding)
        if rows > total:
            xs = np.concatenate([xs, np.repeat(xs[-1:], rows - total, axis=0)])
        held = {plan.input_name: tvm.runtime.tensor(xs, dev)}
        sizes, row_counts = [], []
        for s, seg in enumerate(plan.segments):
            sizes.append(len(alive))
            row_counts.append(rows)
            out = vm[self._name(seg.name, rows)](*[held[name] for name in seg.inputs])
            live = len(alive)
            head = out[0].numpy()[:live]
            if seg.gated:
                c, leave = out[1].numpy()[:live], out[2].numpy()[:live]
                if conf is None:
                    conf = np.zeros(total, c.dtype)
                if s >= level:
                    leave = np.ones_like(leave)
                conf[alive[leave]] = c[leave]
                carried = list(out)[3:]
            else:
                leave = np.ones(live, bool)
                carried = list(out)[1:]
            logits[alive[leave]] = head[leave]
            exit_[alive[leave]] = s
            if leave.all():
                break
            held.update(zip(seg.outputs, carried))
            stay = np.flatnonzero(~leave)
            next_rows = self._rows(len(stay))
            if len(stay) < live or next_rows != rows:
                index = np.concatenate([stay, np.repeat(stay[-1:], next_rows - len(stay))]).astype(np.int64)
                taken = vm[self._name(f"compact_{s}", rows)](*[held[name] for name in seg.live],
                                                             tvm.runtime.tensor(index, dev))
                held = dict(zip(seg.live, taken))
            alive, rows = alive[stay], next_rows
        label = logits.reshape(total, -1).argmax(axis=-1).astype(np.int32)
        return BatchResult(label, exit_, conf, logits, sizes, row_counts)


# ------------------------------------------------------------------------------ export / load


def library_name(prefix: str, target_kind: str) -> str:
    return f"{prefix}_{target_kind}.so"


def export(runner: SegmentRunner, directory, prefix: str, target: dict) -> dict[str, Path]:
    """Write the executable (``<prefix>_<kind>.so``) and the plan (``<prefix>_batched.json``:
    segments, buckets, input, target) to ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    lib = directory / library_name(prefix, target["kind"])
    runner.executable.export_library(str(lib))
    plan = directory / f"{prefix}{PLAN_SUFFIX}"
    doc = {"adaptc_batched": 1, "name": runner.name, "prefix": prefix, "target": target,
           "library": lib.name, "input": {"shape": list(runner.input_shape), "dtype": runner.input_dtype},
           "buckets": runner.buckets, "plan": asdict(runner.plan)}
    plan.write_text(json.dumps(doc, indent=1, default=_plain) + "\n")
    return {"library": lib, "plan": plan}


def _plain(value):
    """numpy / TVM scalars in the plan as JSON numbers."""
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "value"):
        return value.value
    raise TypeError(f"cannot write {type(value).__name__} to the plan")


def load(directory, prefix: str | None = None, device=None) -> SegmentRunner:
    """The runner of an exported build (``export``), on ``device`` (default: GPU 0 for a cuda
    build, the CPU for llvm). Needs the TVM runtime only."""
    directory = Path(directory)
    plans = sorted(directory.glob(f"{prefix or '*'}{PLAN_SUFFIX}"))
    if len(plans) != 1:
        raise InputError(f"{directory}: expected one *{PLAN_SUFFIX} (an exported batched build)"
                         + (f" for prefix {prefix!r}" if prefix else "") + f", found {len(plans)}")
    doc = json.loads(plans[0].read_text())
    p = doc["plan"]
    plan = BatchPlan([SegmentSpec(**s) for s in p["segments"]], p["input_name"], tuple(p["classes_shape"]),
                     p["logits_dtype"], p["thresholds"], p["criterion"])
    kind = doc["target"]["kind"]
    if device is None:
        device = tvm.cuda(0) if kind == "cuda" else tvm.cpu(0)
    if not device.exist:
        raise TargetError(f"{plans[0]}: built for {kind}, but {device} does not exist on this machine")
    executable = tvm.runtime.load_module(str(directory / doc["library"]))
    return SegmentRunner(executable, plan, device, doc["name"], doc["input"]["shape"], doc["input"]["dtype"],
                         doc["buckets"])
