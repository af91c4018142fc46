"""Accuracy and mean executed instructions of a compiled model over labelled inputs on its
emulated core (one QEMU launch): a model with exits at its top level, any other as it is."""
from __future__ import annotations

import numpy as np


def accuracy_and_instructions(m, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    q = m.quantize_input(x)
    if m.exits:
        run = m.run_batch_on_target(q, levels=[len(m.levels) - 1])
        labels = run.label[0]
    else:
        run = m.run_batch_on_target(q)
        labels = run.logits[0].reshape(len(x), -1).argmax(axis=-1)
    return float(np.mean(labels == y)), float(run.instructions.mean())
