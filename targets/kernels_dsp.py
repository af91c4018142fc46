"""Optimized int8 kernels for the Armv7E-M DSP extension (Cortex-M4/M7/M55): SMLAD/SXTB16 through ACLE intrinsics.

Drop-ins for the reference kernels in kernels.py (same arguments, bit-exact), registered as
``@kernel(op, "dsp")``; a builder returns None for a geometry it does not handle, and the
reference kernel runs instead.
"""
from __future__ import annotations
