"""The batched targets' cost model: a roofline per step at batch 1.

Each step costs ``max(ops / peak, bytes / bandwidth)`` plus one kernel launch: ``ops`` = 2 x MACs
plus one per output element; ``bytes`` = the activations it reads and writes and the constants it
holds (as the TVM module stores them); ``peak`` the device's dense int8 tensor-core rate for
integer programs, its fp32 rate for float ones. Presets for the H100 and H200 (``device=``). The
launch count is one per step: TVM's fusion (passes in batched.py) merges some of them, so this
is an upper bound on the launch overhead of the build.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from adaptc.errors import InputError
from adaptc.schedule import ScheduledProgram

from ..base import StepCost


@dataclass(frozen=True)
class GPU:
    name: str
    int8_ops: float                  # dense int8 tensor-core ops / s
    fp32_flops: float                # non-tensor fp32 / s
    bandwidth: float                 # HBM bytes / s
    launch_s: float                  # per kernel launch (driver + scheduling), measured orders of magnitude


GPUS = {
    # NVIDIA H100 SXM5 / H200 SXM datasheets: 1,979 dense INT8 TOPS, 67 TFLOPS FP32; HBM3 3.35 TB/s, HBM3e 4.8 TB/s
    "h100": GPU("NVIDIA H100 SXM", 1979e12, 67e12, 3.35e12, 4e-6),
    "h200": GPU("NVIDIA H200 SXM", 1979e12, 67e12, 4.8e12, 4e-6),
}


def gpu(device: str) -> GPU:
    if device not in GPUS:
        raise InputError(f"unknown GPU {device!r}; choose one of {', '.join(GPUS)}")
    return GPUS[device]


def step_costs(scheduled: ScheduledProgram, level: int | None, device: str = "h100") -> list[StepCost]:
    """Seconds per step of one inference at ``level`` on ``device`` (module docstring)."""
    g = gpu(device)
    prog = scheduled.program
    int8 = prog.tensors[prog.inputs[0]].dtype == "int8"
    peak = g.int8_ops if int8 else g.fp32_flops
    last = prog.last_step(level)
    out = []
    for s in scheduled.steps:
        if s.index > last:
            out.append(StepCost(0.0, {"ops": 0.0, "bytes": 0}))
            continue
        elements = int(np.prod(s.step.out_shape)) if s.step.out_shape else 1
        ops = 2.0 * s.macs + elements
        nbytes = (sum(int(np.prod(sh)) for sh in s.step.in_shapes) + elements) * (1 if int8 else 4) + s.flash_bytes
        out.append(StepCost(max(ops / peak, nbytes / g.bandwidth) + g.launch_s, {"ops": ops, "bytes": nbytes}))
    return out
