"""Data that ships with adaptc: the default models and the handwritten-digits data set.

``digits()`` -- scikit-learn's 8x8 handwritten digits (see README.md here), split once into
1,347 training and 450 test images: float32 arrays (N, 1, 8, 8) scaled to [0, 1] (the 16 grey
levels / 16), and int64 labels. ``path(name)`` -- a bundled file.
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
