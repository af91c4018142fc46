"""Optimized int8 kernels for the Helium / MVE (Cortex-M55).

Drop-ins for the reference kernels in kernels.py (same arguments, bit-exact), registered as
``@kernel(op, "mve")``; a builder returns None for a geometry it does not handle, and the
reference kernel runs instead.
"""
from __future__ import annotations
