"""Cortex-M C kernels: the kernel records (registry.py) and the operator families that register
them, one module each. Importing this package registers every kernel."""
from __future__ import annotations

from . import (  # noqa: F401
    activation,
    add,
    batch_matmul,
    binary,
    concat,
    conv2d,
    data_movement,
    depthwise_conv2d,
    fully_connected,
    gate,
    gather,
    l2norm,
    lstm,
    mul,
    pad,
    pool,
    prelu,
    recurrent,
    reduce,
    resize_axis,
    slice,
    softmax,
    transpose,
    transpose_conv,
    unary,
    where,
)
from .registry import KERNELS, PORTABLE_VARIANTS, SCRATCH, Kernel, KernelCall, kernel, select

__all__ = ["KERNELS", "PORTABLE_VARIANTS", "SCRATCH", "Kernel", "KernelCall", "kernel", "select"]
