"""Checks of the arrays a user hands adaptc: calibration data, its labels, run inputs.

Every array that crosses the API boundary passes through one of these before any work is done
on it, so a bad array fails with an ``InputError`` naming the array (``"calibration"``,
``"calibration labels"``, ``"input"``) and what is wrong -- its shape against the model's, its
dtype, or the first element that is not a finite number, by index in the array as given
(``"calibration[3, 0, 12, 5] is nan"``) -- instead of failing late, deep in quantization.

* ``calibration_data(calibration, shape, path, classes)``: ``x`` or ``(x, y)`` as given to
  ``adaptc.compile`` -> (samples (N, *shape) float32, labels (N,) int64 or None).
* ``calibration_samples(calibration, shape, path)``: the samples alone -- what every user of
  calibration data (QuantizeInt8, QuantizeWeights, the mixed-precision search, the exit
  calibration) shapes its data with.
* ``real_array(x, name, owner)``: ``x`` as a numeric array whose every element is finite.
"""
from __future__ import annotations

import numpy as np

from .errors import InputError

REAL_KINDS = "fiu"          # floating point, signed and unsigned integers (numpy dtype kinds)


def _where(owner: str) -> str:
    return f"{owner}: " if owner else ""


def index_text(name: str, index) -> str:
    """``name[i, j, ...]`` (``name`` alone for a 0-d array)."""
    return f"{name}[{', '.join(str(int(i)) for i in index)}]" if len(index) else name


def first_nonfinite(a: np.ndarray):
    """The index of the first element of ``a`` (row-major) that is NaN or infinite, and that
    element; None when every element is finite."""
    bad = np.flatnonzero(~np.isfinite(a.reshape(-1)))
    if not len(bad):
        return None
    index = np.unravel_index(int(bad[0]), a.shape)
    return index, a[index]


def real_array(x, name: str, owner: str = "") -> np.ndarray:
    """``x`` as a numpy array of real numbers, every one finite; InputError naming ``name`` (and
    ``owner``, the model or file) and the first bad element otherwise. Integer arrays pass as
    they are."""
    try:
        a = np.asarray(x)
    except (ValueError, TypeError) as e:       # ragged nesting, unconvertible objects
        raise InputError(f"{_where(owner)}{name} is not an array of numbers ({e})") from None
    if a.dtype.kind not in REAL_KINDS:
        raise InputError(f"{_where(owner)}{name} must hold real numbers (float or integer), got dtype {a.dtype}")
    if a.dtype.kind == "f":
        bad = first_nonfinite(a)
        if bad is not None:
            index, value = bad
            raise InputError(f"{_where(owner)}{index_text(name, index)} is {value}: {name} must be finite")
    return a


def float32_array(x, name: str, owner: str = "") -> np.ndarray:
    """``real_array(x)`` as float32; InputError naming the first value float32 cannot hold
    (a float64 beyond +-3.4e38)."""
    a = real_array(x, name, owner)
    with np.errstate(over="ignore"):
        f = a.astype(np.float32)
    bad = first_nonfinite(f)
    if bad is not None:
        index, _ = bad
        raise InputError(f"{_where(owner)}{index_text(name, index)} is {a[index]}, beyond float32's range")
    return f


def calibration_samples(calibration, shape, path: str, name: str = "calibration") -> np.ndarray:
    """``calibration`` as (N, *shape) float32, N >= 1 (samples may omit a leading batch of 1);
    InputError naming the shapes, a non-numeric dtype or the first non-finite value."""
    shape = tuple(int(d) for d in shape)
    samples = float32_array(calibration, name, path)
    if samples.shape[1:] == shape[1:] and shape and shape[0] == 1 and samples.ndim == len(shape):
        samples = samples[:, None]
    if samples.ndim != len(shape) + 1 or samples.shape[1:] != shape or len(samples) == 0:
        raise InputError(f"{_where(path)}{name} data must have shape (N, {', '.join(map(str, shape))}) "
                         f"or (N, {', '.join(map(str, shape[1:]))}) with N >= 1; got {list(np.shape(calibration))}")
    return samples


def labels_of(labels, samples: int, path: str, classes: int | None = None,
              name: str = "calibration labels") -> np.ndarray:
    """``labels`` as (samples,) int64 class indices: an integer array of shape (N,) or (N, 1)
    with N = ``samples``, every label in [0, classes) (``classes`` None: >= 0); InputError
    naming ``name`` otherwise."""
    try:
        y = np.asarray(labels)
    except (ValueError, TypeError) as e:
        raise InputError(f"{_where(path)}{name} is not an array of class indices ({e})") from None
    if y.dtype.kind not in "iu":
        raise InputError(f"{_where(path)}{name} must be integer class indices, got dtype {y.dtype}"
                         + (" (y.astype(int) if they are whole numbers)" if y.dtype.kind == "f" else ""))
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise InputError(f"{_where(path)}{name} must have shape (N,): one class index per sample, "
                         f"got {list(y.shape)}")
    if len(y) != samples:
        raise InputError(f"{_where(path)}calibration has {samples} samples but {name} has {len(y)}")
    bad = np.flatnonzero((y < 0) | (y >= classes if classes is not None else False))
    if len(bad):
        i = int(bad[0])
        limit = f"[0, {classes})" if classes is not None else ">= 0"
        raise InputError(f"{_where(path)}{name}[{i}] is {int(y[i])}: class indices must be {limit}")
    return y.astype(np.int64)


def calibration_data(calibration, shape, path: str, classes: int | None = None):
    """What ``adaptc.compile(calibration=...)`` accepts -- ``x``, ``(x, y)`` or ``(x, None)``,
    or None -- checked: (samples (N, *shape) float32 or None, labels (N,) int64 or None);
    ``classes``: how many classes the labels index (None: unchecked)."""
    labels = None
    if isinstance(calibration, tuple):
        if len(calibration) != 2:
            raise InputError(f"{_where(path)}calibration must be x or (x, y), got a tuple of {len(calibration)}")
        calibration, labels = calibration
    if calibration is None:
        if labels is not None:
            raise InputError(f"{_where(path)}calibration labels given without calibration inputs")
        return None, None
    samples = calibration_samples(calibration, shape, path)
    if labels is not None:
        labels = labels_of(labels, len(samples), path, classes)
    return samples, labels
