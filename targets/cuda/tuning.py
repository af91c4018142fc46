"""MetaSchedule tuning of a batched build: records saved in a directory and reused.

MetaSchedule measures kernels, so it needs static shapes: a tuned build (``Tuning``) compiles the
segments for a fixed set of batch sizes -- the *buckets* 1, 2, 4, ..., ``max_batch`` -- and the
host pads the samples still running up to the next bucket (batched.py, ``BatchedModel.run``;
a batch larger than ``max_batch`` runs in chunks of it). At most half of a bucket's rows are
padding; the untuned build (symbolic batch) has none.

What is tuned: the search space is our own kernel schedule (schedule_fused_kernels.py,
``tuning_space``) with the threads per block sampled for each kernel -- not MetaSchedule's
default rules, which inline the requantization chains (why: that module's docstring) and take
~15 s to build one candidate of one int8 layer on 2 cores. Candidates are drawn by replaying
the space (``replay-trace``; it has six points per kernel, so no cost model is needed) and each
is built and timed on the target's device (llvm: this CPU; cuda: GPU 0).

``tune(modules, target, tuning)``: the fused kernels of every bucket's module (those whose names
contain one of ``tuning.ops``; default: all) become MetaSchedule tasks, deduplicated; the
``tuning.trials`` trials are spread evenly over them. Records go to ``tuning.records/<target>``
("llvm", "cuda-sm_90"; MetaSchedule's JSON database: ``database_workload.json``,
``database_tuning_record.json``; its query matches workloads only, so targets must not share one); a
later build with ``trials=0`` applies them without measuring anything
(``relax.transform.MetaScheduleApplyDatabase`` in ``batched_pipeline``); a kernel without a
record is scheduled as in an untuned build. Workloads are the kernels' structure (weights are
arguments), so records carry over to any model with the same layer shapes.

Needs the ``tune`` extra (psutil, cloudpickle: MetaSchedule's worker processes).
"""
from __future__ import annotations

import importlib.util
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import tvm
import tvm_ffi
from tqdm import tqdm
from tvm import relax, tirx

from adaptc.errors import InputError, TargetError

from .schedule_fused_kernels import tuning_space

DATABASE_FILES = ("database_workload.json", "database_tuning_record.json")


@dataclass(frozen=True)
class Tuning:
    """How to tune a batched build (module docstring).

    records: directory of the tuning database; read, and extended when ``trials`` > 0.
    trials: MetaSchedule trials to run now, over all tuned kernels of all buckets (0: apply the
        records only).
    max_batch: the largest bucket (batches 1, 2, 4, ... up to it).
    ops: kernels whose names contain one of these are tuned (default: every kernel; e.g.
        ("conv2d", "matmul") for the layers only).
    seed: the search's random seed.
    """

    records: str | Path
    trials: int = 0
    max_batch: int = 64
    ops: tuple = ("",)
    seed: int = 0

    def buckets(self) -> list[int]:
        if self.max_batch < 1:
            raise InputError(f"Tuning.max_batch must be >= 1, got {self.max_batch}")
        sizes, b = [], 1
        while b < self.max_batch:
            sizes.append(b)
            b *= 2
        return sizes + [self.max_batch]

    def check(self, target_key: str, needs_gpu: bool, device_exists: bool) -> Path:
        """The records directory for ``target_key`` ("llvm", "cuda-sm_90": schedules are
        target-specific, each target keeps its own database under ``records``), after checking
        what this tuning needs (before any build)."""
        records = Path(self.records) / target_key
        if self.trials < 0:
            raise InputError(f"Tuning.trials must be >= 0, got {self.trials}")
        self.buckets()
        if self.trials == 0 and not all((records / f).is_file() for f in DATABASE_FILES):
            raise InputError(f"no tuning records for {target_key} in {records} (expected "
                             f"{' and '.join(DATABASE_FILES)}): tune first with trials > 0")
        if self.trials > 0:
            missing = [m for m in ("psutil", "cloudpickle") if importlib.util.find_spec(m) is None]
            if missing:
                raise TargetError(f"MetaSchedule tuning needs {', '.join(missing)}: pip install 'adaptc[tune]'")
            if needs_gpu and not device_exists:
                raise TargetError("MetaSchedule tuning for cuda measures every candidate on the GPU and this machine "
                                  "has none (tvm.cuda(0) does not exist); tune on a GPU host and reuse the records "
                                  "here with trials=0")
        return records


def fuse_passes():
    """The batched pipeline up to the fused kernels (what the tuned workloads are)."""
    return [relax.transform.LegalizeOps(), relax.transform.AnnotateTIROpPattern(), relax.transform.FoldConstant(),
            relax.transform.FuseOps(), relax.transform.FuseTIR()]


def _static(func) -> bool:
    """Every buffer of the kernel has a static shape (compaction's gathers do not)."""
    for p in func.params:
        for d in getattr(p, "shape", None) or []:
            if not isinstance(d, tirx.IntImm):
                return False
    return True


def tasks(modules, target, ops) -> list:
    """The distinct MetaSchedule tasks of the kernels named after ``ops`` in ``modules``."""
    from tvm.s_tir import meta_schedule as ms

    found, seen = [], set()
    for mod in modules:
        with target:
            fused = tvm.transform.Sequential(fuse_passes())(mod)
        for task in ms.relax_integration.extract_tasks(fused, target):
            func = task.dispatched[0]["main"]
            if not any(op in task.task_name for op in ops) or not _static(func):
                continue
            key = tvm_ffi.structural_hash(task.dispatched[0])
            if key not in seen:
                seen.add(key)
                found.append(task)
    return found


def build_candidate(mod, target, _params):
    """MetaSchedule's default_build less its ``import tvm.s_tir.tensor_intrin`` (14 s in every
    fresh builder process here, for tensor-core intrinsics these schedules never use)."""
    from tvm.driver import build as tvm_build
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

    return tvm_build(RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod), target=target)


def tune(modules, target, tuning: Tuning, records: Path) -> int:
    """Tune the kernels of ``modules`` (one per bucket) named after ``tuning.ops`` on the device; records
    appended to ``records``. Returns the number of tasks."""
    from tvm.s_tir import meta_schedule as ms


    found = tasks(modules, target, tuning.ops)
    if not found:
        return 0
    records.mkdir(parents=True, exist_ok=True)
    contexts, weights = ms.relax_integration.extracted_tasks_to_tune_contexts(
        found, str(records), space=tuning_space(target.kind.name == "cuda"), strategy="replay-trace",
        seed=tuning.seed)
    per_task = -(-tuning.trials // len(contexts))      # spread over every task, not spent on the first
    total = min(tuning.trials, per_task * len(contexts))
    # MetaSchedule's per-task tables go to records/logs only; the console gets one progress bar
    logging.getLogger("tvm.s_tir.meta_schedule").setLevel(logging.WARNING)
    with tqdm(total=total, desc=f"tuning {len(contexts)} kernels", unit="trial", file=sys.stderr) as bar:
        ms.tune.tune_tasks(tasks=contexts, task_weights=weights, work_dir=str(records),
                           max_trials_global=tuning.trials, max_trials_per_task=per_task,
                           num_trials_per_iter=min(64, per_task), cost_model="random", database="json",
                           builder=ms.builder.LocalBuilder(f_build=build_candidate),
                           measure_callbacks=ms.measure_callback.MeasureCallback.create("default")
                           + [_progress(bar)])
    return len(found)


def _progress(bar):
    """A MetaSchedule measure callback advancing ``bar`` by the candidates measured."""
    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.measure_callback import PyMeasureCallback

    @derived_object
    class Progress(PyMeasureCallback):
        def apply(self, task_scheduler, task_id, measure_candidates, builder_results, runner_results):
            bar.update(len(measure_candidates))

    return Progress()
