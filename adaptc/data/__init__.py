"""Data that ships with adaptc: the default models and two small data sets.

``digits()`` -- scikit-learn's 8x8 handwritten digits (see README.md here), split once into
1,347 training and 450 test images: float32 arrays (N, 1, 8, 8) scaled to [0, 1] (the 16 grey
levels / 16), and int64 labels. ``mnist1d()`` -- MNIST-1D (Sam Greydanus), 4,000 training and
1,000 test signals of 40 samples, 10 classes: float32 arrays (N, 1, 40), channels first as a
Conv1d model takes them, centred to mean 0 and standard deviation 1 (stored as float16), and int64
labels. ``path(name)`` -- a bundled file.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np


def path(name: str) -> Path:
    return Path(str(resources.files("adaptc.data") / name))


def digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test): images (N, 1, 8, 8) float32 in [0, 1], labels int64."""
    with np.load(path("digits.npz")) as d:
        def images(a):
            return (a.astype(np.float32) / 16.0)[:, None]
        return (images(d["x_train"]), d["y_train"].astype(np.int64),
                images(d["x_test"]), d["y_test"].astype(np.int64))


def mnist1d() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test): signals (N, 1, 40) float32, labels int64 (10 classes)."""
    with np.load(path("mnist1d.npz")) as d:
        def signals(a):
            return a.astype(np.float32)[:, None]
        return (signals(d["x_train"]), d["y_train"].astype(np.int64),
                signals(d["x_test"]), d["y_test"].astype(np.int64))
