"""No multiply-accumulate layer of the MLPerf Tiny models or of the zoo (tests/data/zoo) falls back
to a reference kernel on a core with the DSP or Helium extension: every int8 step that does MACs
(convolution, depthwise, fully connected, ...) gets the core's optimized variant -- where the fast
requantization is not provably exact, the variant's exact path (dsp.h adaptc_rq_exact), not the
reference kernel. Scheduling only: the kernels' results are the family tests' business."""
from __future__ import annotations

import json

import numpy as np
import pytest

import adaptc
from adaptc.errors import MemoryBudgetError
from paths import DATA

ZOO = DATA / "zoo"
MLPERF = ["pretrainedResnet_quant", "kws_ref_model", "vww_96_int8", "ad01_int8"]
ZOO_MODELS = json.loads((ZOO / "models.json").read_text())["models"]
CORES = ["cortex-m4", "cortex-m7", "cortex-m55"]


def _compile(name: str, core: str):
    if name in MLPERF:
        return adaptc.compile(DATA / f"{name}.tflite", target=core)
    info = ZOO_MODELS[name]
    calibration = None
    if info["format"] == "onnx":        # float: post-training int8 on a few N(0, 1) draws
        shape = tuple(info["inputs"][0]["shape"])
        calibration = np.random.default_rng(0).normal(0, 1, (8, *shape)).astype(np.float32)
    return adaptc.compile(ZOO / info["file"], target=core, calibration=calibration)


@pytest.mark.parametrize("core", CORES)
@pytest.mark.parametrize("name", MLPERF + list(ZOO_MODELS))
def test_every_int8_mac_layer_runs_an_optimized_kernel(name, core):
    try:
        m = _compile(name, core)
    except MemoryBudgetError:
        pytest.skip(f"{name} does not fit the {core} board")
    mac_steps = [(i, s) for i, s in enumerate(m.scheduled.steps)
                 if s.step.macs > 0 and s.step.op.startswith("adaptc.q")]
    assert mac_steps, f"{name}: no int8 MAC layer"
    fallbacks = [f"step {i} {s.kernel} ({s.step.op})" for i, s in mac_steps if s.variant == "ref"]
    assert not fallbacks, f"{name} on {core}: reference kernels for {', '.join(fallbacks)}"
