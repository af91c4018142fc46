"""AVERAGE_POOL_2D and MAX_POOL_2D: ``adaptc.qavg_pool2d`` / ``adaptc.qmax_pool2d`` (TFLite's
reference_integer_ops pooling: rounded average over the in-bounds window) and their float forms."""
from __future__ import annotations

from adaptc.program import Program, Step

from .common import act_f32, pool_params
from .loops import pool_loops
from .registry import KernelCall, kernel


def pool_window_loops(step: Step) -> dict[str, float]:
    """Pooling: per output (pixel x channel) the in-bounds window rows and elements."""
    g = pool_loops(step)
    outputs = g.pixels * g.in_c
    return {"call": 1, "rows": g.b * g.out_h, "pixels": g.pixels, "outputs": outputs,
            "window_rows": g.in_c * g.b * g.out_w * int(g.ty.sum()), "window": g.in_c * g.valid_taps}


@kernel("avg_pool_s8", "adaptc.qavg_pool2d", features=pool_window_loops, params_type="pool_s8_params")
def avg_pool_s8(step: Step, prog: Program) -> KernelCall | None:
    return KernelCall(pool_params(step, prog), [])


@kernel("max_pool_s8", "adaptc.qmax_pool2d", features=pool_window_loops, params_type="pool_s8_params")
def max_pool_s8(step: Step, prog: Program) -> KernelCall | None:
    return KernelCall(pool_params(step, prog), [])


@kernel("avg_pool_f32", "adaptc.avg_pool2d_f32", features=pool_window_loops, params_type="pool_f32_params")
def avg_pool_f32(step: Step, prog: Program) -> KernelCall | None:
    return KernelCall({**pool_params(step, prog), **act_f32(step.attrs)}, [])


@kernel("max_pool_f32", "adaptc.max_pool2d_f32", features=pool_window_loops, params_type="pool_f32_params")
def max_pool_f32(step: Step, prog: Program) -> KernelCall | None:
    return KernelCall({**pool_params(step, prog), **act_f32(step.attrs)}, [])
