"""The zoo of public architectures (tests/data/zoo, scripts/build_zoo.py): the models, their
inputs and calibration data, and their builds cached per test module (tests/models/test_zoo*.py)."""
from __future__ import annotations

import json
import shutil
import zlib

import numpy as np

import adaptc
from paths import DATA

ZOO = DATA / "zoo"
MODELS = json.loads((ZOO / "models.json").read_text())["models"]
EMULATOR = shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc")

# The operators each model still needs (the loader's list; MEAN of conv1d_sensor: over a 3-D tensor).
MISSING: dict[str, set[str]] = {}
COMPILED = [n for n in MODELS if n not in MISSING]
# int8 post-training quantization of the float ONNX models: output SNR against onnxruntime (dB),
# calibrated on ``calibration(name)`` (benchmarks/ptq_snr.py prints them: 27.0, 11.7, 34.5, 9.0).
# The goal is 15 dB; MnasNet and ShuffleNetV2 cannot reach it in int8: their float models
# turn a perturbation of the input into one ~25 dB larger at the output -- quantizing nothing but
# the input to int8 already leaves 14.6 / 17.4 dB (benchmarks/ptq_snr.py --ablate for the rest).
# The recurrent keyword spotters (torch nn.LSTM / nn.GRU): 38.5 dB (the LSTM TFLite Micro's int8 LSTM),
# 40.3 dB (the GRU a float step between a dequantize and a quantize) on these inputs.
# It only goes up.
MIN_SNR_DB = {"tv_mnasnet": 8.5, "tv_mobilenet_v3_small": 26.5, "tv_squeezenet": 34.0, "tv_shufflenet_v2": 11.5,
              "torch_lstm_kws": 38.0, "torch_gru_kws": 39.5}


# Layers post-training quantization keeps as they are whatever the scheme: an LSTM (TFLite Micro's int8
# LSTM) and a GRU (a float step); pot4 and the mixed-precision search narrow the conv / dense layers only.
RECURRENT = {"adaptc.qlstm", "adaptc.recurrent_f32"}


def recurrent(m) -> bool:
    return any(s.op in RECURRENT for s in m.program.steps)


def path_of(name: str):
    return ZOO / MODELS[name]["file"]


def inputs(name: str, n_random: int = 3) -> np.ndarray:
    """The model's stored inputs and ``n_random`` more drawn like them, in the model's input type
    and layout with a batch axis per input: [N, 1, ...]."""
    d = np.load(ZOO / MODELS[name]["inputs_file"])
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    if MODELS[name]["format"] == "tflite":
        stored = d["x_q"]
        fresh = rng.integers(-128, 128, size=(n_random, *stored.shape[1:]), dtype=np.int8)
    else:
        stored = d["x"]
        fresh = rng.normal(0, 1, size=(n_random, *stored.shape[1:])).astype(np.float32)
    return np.concatenate([stored, fresh])[:, None]


_CACHE: dict = {}


def compiled(name: str, target: str = "cortex-m7", **kw):
    """adaptc.compile, once per model, target and options (calibration: always ``calibration(name)``)."""
    key = (name, target, kw.get("quantize"), "calibration" in kw)
    if key not in _CACHE:
        _CACHE[key] = adaptc.compile(path_of(name), target=target, **kw)
    return _CACHE[key]


TFLITE = [n for n in COMPILED if MODELS[n]["format"] == "tflite"]
ONNX = [n for n in COMPILED if MODELS[n]["format"] == "onnx"]


def calibration(name: str) -> np.ndarray:
    """The stored inputs (NAME.npz's ``x``: drawn like the model's calibration data, class
    templates plus noise) and 16 more ~ N(0, 1) -- the two kinds of input the SNR is measured on."""
    stored = np.load(ZOO / MODELS[name]["inputs_file"])["x"][:, None]
    normal = np.random.default_rng(1).normal(0, 1, (16, *stored.shape[1:])).astype(np.float32)
    return np.concatenate([stored, normal])
