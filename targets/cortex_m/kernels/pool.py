"""AVERAGE_POOL_2D and MAX_POOL_2D: ``adaptc.qavg_pool2d`` / ``adaptc.qmax_pool2d`` (TFLite's
reference_integer_ops pooling: rounded average over the in-bounds window) and their float forms.
DSP: avg_pool_s8_dsp and max_pool_s8_dsp -- four channels a word (SXTAB16 sums in int16 lanes,
SSUB8 + SEL maxima), the same results."""
from __future__ import annotations

import numpy as np

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


def pool_runs(step: Step) -> tuple[np.ndarray, np.ndarray]:
    """Per output pixel of the *_pool_s8_dsp kernels: the in-bounds window as runs of elements --
    (runs, len): its rows of cols elements, or one run of rows * cols where it spans the input's
    whole width; (0, 0) for an empty window."""
    g = pool_loops(step)
    ty, tx = g.pixel_taps()
    count = ty * tx
    whole = (tx == g.in_w) & (count > 0)
    runs = np.where(count == 0, 0, np.where(whole, 1, ty))
    length = np.where(count == 0, 0, np.where(whole, count, tx))
    return runs.astype(np.int64), length.astype(np.int64)


def _dsp_counts(step: Step) -> tuple[dict, np.ndarray, np.ndarray]:
    """The loop counts both DSP pooling kernels share, and the pixels' (runs, len): per row and
    output pixel its set-up; per pixel the channels eight at a time (octets: two words an
    element), then four where channels % 8 >= 4 (a quad: one word) -- groups, their window's
    words (octet_elements, quad_elements) --, then the last channels % 4 one at a time
    (tail_outputs, their runs and elements)."""
    g = pool_loops(step)
    runs, length = pool_runs(step)
    octets, quads, tail = g.in_c // 8, g.in_c % 8 // 4, g.in_c % 4
    elements, n_runs = int((runs * length).sum()), int(runs.sum())
    return ({"call": 1, "rows": g.b * g.out_h, "pixels": g.pixels, "groups": g.pixels * (octets + quads),
             "octet_elements": octets * elements, "quad_elements": quads * elements,
             "tail_outputs": g.pixels * tail, "tail_runs": tail * n_runs, "tail_elements": tail * elements},
            runs, length)


def avg_pool_dsp_loops(step: Step) -> dict[str, float]:
    """avg_pool_s8_dsp.c (_dsp_counts, and): per group one call of adaptc_avgpool_group and a
    rounded division per channel (outputs); its window in blocks of at most 256 words whose int16
    lanes go into the int32 sums (blocks: runs of len <= 256 a block every 256 // len runs, one
    assembly call each; a longer run a block, and a call, every 256 words); the assembly's runs
    (group_runs: a run each, one a block for runs longer than 256, and those runs' own loop,
    long_runs)."""
    f, runs, length = _dsp_counts(step)
    g = pool_loops(step)
    groups = g.in_c // 8 + g.in_c % 8 // 4
    short = length <= 256
    per = np.where(short, 256 // np.maximum(length, 1), 1)
    blocks = np.where(short, -(-runs // per), runs * -(-length // 256))
    f.update(outputs=g.pixels * (g.in_c - g.in_c % 4), blocks=groups * int(blocks.sum()),
             group_runs=groups * int(np.where(short, runs, blocks).sum()),
             long_runs=groups * int(np.where(short, 0, runs).sum()))
    return f


def max_pool_dsp_loops(step: Step) -> dict[str, float]:
    """max_pool_s8_dsp.c (_dsp_counts, and): per group its window's runs in assembly
    (group_runs), the byte-wise clamp and the store of a word; an octet's second word (octets)."""
    f, runs, _ = _dsp_counts(step)
    g = pool_loops(step)
    f.update(octets=g.pixels * (g.in_c // 8), group_runs=(g.in_c // 8 + g.in_c % 8 // 4) * int(runs.sum()))
    return f


@kernel("avg_pool_s8_dsp", "adaptc.qavg_pool2d", "dsp", features=avg_pool_dsp_loops, params_type="pool_s8_params",
        headers=("dsp.h",))
def avg_pool_s8_dsp(step: Step, prog: Program) -> KernelCall | None:
    return KernelCall(pool_params(step, prog), [])


@kernel("max_pool_s8_dsp", "adaptc.qmax_pool2d", "dsp", features=max_pool_dsp_loops, params_type="pool_s8_params",
        headers=("dsp.h",))
def max_pool_s8_dsp(step: Step, prog: Program) -> KernelCall | None:
    return KernelCall(pool_params(step, prog), [])


@kernel("avg_pool_f32", "adaptc.avg_pool2d_f32", features=pool_window_loops, params_type="pool_f32_params")
def avg_pool_f32(step: Step, prog: Program) -> KernelCall | None:
    return KernelCall({**pool_params(step, prog), **act_f32(step.attrs)}, [])


@kernel("max_pool_f32", "adaptc.max_pool2d_f32", features=pool_window_loops, params_type="pool_f32_params")
def max_pool_f32(step: Step, prog: Program) -> KernelCall | None:
    return KernelCall({**pool_params(step, prog), **act_f32(step.attrs)}, [])
