"""The zoo's float ONNX models (tests/helpers/zoo_models.py) under mixed precision: a module of its
own so that the slowest of the zoo's checks (a width search per model) run beside the others."""
from __future__ import annotations

import numpy as np
import pytest

import adaptc
from zoo_models import ONNX, RECURRENT, calibration, compiled, inputs, path_of, recurrent


@pytest.mark.parametrize("name", ONNX)
def test_mixed_precision_at_half_of_int8s_weight_bytes(name):
    """A weight budget of half the int8 build's weight bytes (with a recurrent layer, which the
    search leaves as it is: the int8 bytes less a quarter of the other layers'): the search picks a
    width per layer, the build meets the budget, and its C equals its Relax module."""
    int8 = compiled(name, calibration=calibration(name))
    budget = int8.report["weight_bytes"] // 2
    if recurrent(int8):
        budget = int8.report["weight_bytes"] - sum(
            layer["weight_bytes"] for layer in int8.report["layers"] if layer["op"] not in RECURRENT) // 4
    m = adaptc.compile(path_of(name), target="cortex-m7", calibration=calibration(name), weight_budget=budget)
    assert m.report["weight_bytes"] <= budget
    assert {row["chosen"] for row in m.quantization["search"]} - {"int8"}
    for x in inputs(name, 1)[-2:]:
        xq = m.quantize_input(x)
        np.testing.assert_array_equal(m.run(xq), m.reference(xq))
