#!/usr/bin/env python3
"""Build the model zoo under tests/data/zoo/: small networks made from public architecture code
(keras.applications / Keras layers, torchvision.models) with random weights, fitted briefly to a
synthetic task (BatchNorm statistics re-estimated after), for adaptc's tests.

TensorFlow and PyTorch are used only by this script and never by adaptc or its CI: each runs in a
virtual environment of its own, outside the repository. Three stages, each under its own Python:

    # once: the two build environments (x86_64; torch 2.14.1 / torchvision 0.29.1 lie on this disk)
    python3 -m venv /tmp/tfenv
    /tmp/tfenv/bin/pip install tensorflow-cpu==2.21.0 tf-keras==2.21.0
    python3 -m venv /tmp/torchenv
    /tmp/torchenv/bin/pip install torch==2.14.1 torchvision==0.29.1 onnx==1.23.2

    # 1. Keras models -> full-integer int8 TFLite (+ .npz of inputs)
    /tmp/tfenv/bin/python scripts/build_zoo.py keras
    # 2. torchvision models and torch.nn recurrent keyword spotters -> float32 ONNX, opset 13 (+ .npz)
    /tmp/torchenv/bin/python scripts/build_zoo.py torch
    # 3. run every model in TFLite Micro, LiteRT (ai-edge-litert) and onnxruntime, add reference
    #    outputs to each .npz, write models.json and README.md (operator lists, sizes, MACs)
    .venv/bin/python scripts/build_zoo.py check

    # any stage for one model, or into another folder:
    /tmp/tfenv/bin/python scripts/build_zoo.py keras --only ds_cnn --out /tmp/zoo

Every seed is fixed (NumPy, TensorFlow/Keras, torch; one seed per model derived from its name;
deterministic ops): the same versions on the same machine give the same files. Inputs are
synthetic, in the range of what adaptc's tests feed: Keras models see x in [-1, 1] (the int8
input, scale ~1/127.5, then covers the whole int8 range: random int8 inputs are in range too),
torch models see x ~ N(0, 1) (as ImageNet-normalized images, or normalized MFCC frames for the
recurrent keyword spotters torch_lstm_kws / torch_gru_kws, 12 classes). Each class adds a fixed random
template to the noise (`synthetic_task`), so that a classifier fitted briefly gives outputs that
depend on the input -- a random network's softmax is nearly uniform and nearly constant.

The `keras` and `torch` stages record how each model was made in models.json ("build"); the
`check` stage adds what the files hold (ops, sizes, shapes, MACs) and what the runtimes gave.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import sys
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "tests" / "data" / "zoo"
SEED = 20261101
CLASSES = 10
CALIB_COUNT = 100        # inputs in each representative dataset / BatchNorm re-estimation batch
FIT_COUNT = 512          # synthetic inputs of the brief fit of each classifier
FIT_EPOCHS = 15
FIT_LR = {"tv_squeezenet": 3e-4}   # at 1e-3 SqueezeNet's ReLU before the pool dies: every logit 0

# name -> (stage, how many inputs the .npz keeps: ~1 MB at most per file)
MODELS = {
    "mobilenet_v1": ("keras", 4),
    "mobilenet_v2": ("keras", 4),
    "mobilenet_v3_small": ("keras", 4),
    "ds_cnn": ("keras", 32),
    "conv1d_sensor": ("keras", 32),
    "se_hardswish_upsample": ("keras", 8),
    "lstm_kws": ("keras", 32),
    "tv_mobilenet_v3_small": ("torch", 4),
    "tv_shufflenet_v2": ("torch", 4),
    "tv_squeezenet": ("torch", 4),
    "tv_mnasnet": ("torch", 4),
    "torch_lstm_kws": ("torch", 32),
    "torch_gru_kws": ("torch", 32),
}
KWS_CLASSES = 12         # the recurrent keyword spotters: 10 words + silence + unknown, as Speech Commands


def model_seed(name: str) -> int:
    return (SEED + zlib.crc32(name.encode())) % 2**31


TASK_TEXT = {
    "uniform": "x = (u + T[c]) / 2 with u ~ U(-1, 1) and T[c] one of {classes} fixed class templates ~ U(-1, 1) "
               "(so x lies in [-1, 1]); the label y is c",
    "normal": "x = (n + T[c]) / sqrt(2) with n ~ N(0, 1) and T[c] one of {classes} fixed class templates ~ N(0, 1) "
              "(so x ~ N(0, 1) over the classes); the label y is c",
}


def task_text(kind: str, classes: int = CLASSES) -> str:
    return TASK_TEXT[kind].format(classes=classes)


def synthetic_task(rng: np.random.Generator, shape: tuple, kind: str, classes: int = CLASSES):
    """A learnable 10-class (or ``classes``-class) task on noise: each class adds its own fixed random template. Inputs
    keep the range of plain noise (what adaptc's tests feed: U(-1, 1) for the int8 models,
    N(0, 1) for the float ones), and a classifier fitted to it briefly gives outputs that depend
    on the input (a random network's softmax is nearly uniform and nearly input-independent)."""
    if kind == "uniform":
        templates = rng.uniform(-1.0, 1.0, (classes, *shape))
    else:
        templates = rng.standard_normal((classes, *shape))

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        c = rng.integers(0, classes, n)
        if kind == "uniform":
            x = 0.5 * (rng.uniform(-1.0, 1.0, (n, *shape)) + templates[c])
        else:
            x = (rng.standard_normal((n, *shape)) + templates[c]) / np.sqrt(2.0)
        return x.astype(np.float32), c.astype(np.int64)

    return draw


def save_npz(path: Path, **arrays: np.ndarray) -> None:
    """np.savez_compressed with fixed member timestamps, so equal arrays give equal bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for key in sorted(arrays):
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(arrays[key]), allow_pickle=False)
            zf.writestr(info, member.getvalue(), compresslevel=9)
    path.write_bytes(buf.getvalue())


def load_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {"models": {}}


def dump_json(data: dict) -> str:
    data["models"] = {k: data["models"][k] for k in MODELS if k in data["models"]}
    return json.dumps(data, indent=1) + "\n"


def record_build(out: Path, name: str, build: dict) -> None:
    """models.json["models"][name]["build"] = build, under a lock: the keras and torch stages may
    run at the same time."""
    import fcntl

    with open(out / "models.json", "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        text = f.read()
        meta = json.loads(text) if text.strip() else {"models": {}}
        meta["models"].setdefault(name, {})["build"] = build
        f.seek(0)
        f.truncate()
        f.write(dump_json(meta))


# ---------------------------------------------------------------------------------------------
# Keras -> int8 TFLite
# ---------------------------------------------------------------------------------------------

def keras_stage(names: list[str], out: Path) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ["TF_DETERMINISTIC_OPS"] = "1"
    import keras
    import tensorflow as tf
    import tf_keras

    tf.config.experimental.enable_op_determinism()
    versions = f"tensorflow {tf.__version__}, keras {keras.__version__}"
    layers = keras.layers

    def conv_bn(x, filters, kernel, strides=1):
        x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False)(x)
        return layers.ReLU()(layers.BatchNormalization()(x))

    def mobilenet_v1():
        return keras.applications.MobileNet(input_shape=(96, 96, 3), alpha=0.25, weights=None, classes=CLASSES)

    def mobilenet_v2():
        return keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, weights=None, classes=CLASSES)

    def mobilenet_v3_small():
        return keras.applications.MobileNetV3Small(
            input_shape=(96, 96, 3), alpha=0.5, minimalistic=False, weights=None, classes=CLASSES,
            include_preprocessing=False)

    def ds_cnn():
        # DS-CNN of Zhang et al. 2017 (ARM ML-KWS-for-MCU) as in MLPerf Tiny's keyword spotting
        # reference (benchmark/training/keyword_spotting/keras_model.py), with a global average pool.
        inp = keras.Input((49, 10, 1))
        x = conv_bn(inp, 64, (10, 4), strides=(2, 2))
        x = layers.Dropout(0.2)(x)
        for _ in range(4):
            x = layers.DepthwiseConv2D((3, 3), padding="same", use_bias=False)(x)
            x = layers.BatchNormalization()(x)
            x = layers.ReLU()(x)
            x = conv_bn(x, 64, (1, 1))
        x = layers.Dropout(0.4)(x)
        x = layers.GlobalAveragePooling2D()(x)
        out = layers.Dense(CLASSES, activation="softmax")(x)
        return keras.Model(inp, out, name="ds_cnn")

    def conv1d_sensor():
        # the usual 1-D CNN for accelerometer activity recognition (e.g. UCI HAR / WISDM tutorials)
        inp = keras.Input((128, 3))
        x = layers.Conv1D(16, 5, activation="relu")(inp)
        x = layers.MaxPooling1D(2)(x)
        x = layers.Conv1D(32, 5, activation="relu")(x)
        x = layers.GlobalAveragePooling1D()(x)
        x = layers.Dense(32, activation="relu")(x)
        out = layers.Dense(CLASSES, activation="softmax")(x)
        return keras.Model(inp, out, name="conv1d_sensor")

    def se_hardswish_upsample(batch_size=None):
        # a tiny U-Net: hard-swish encoder with squeeze-and-excitation (MobileNetV3's block: GAP,
        # dense, hard-sigmoid, multiply), nearest upsampling + skip concatenations, per-pixel
        # logits for 10 classes. Built with tf_keras (Keras 2): Keras 3's UpSampling2D(nearest)
        # is ops.repeat, which converts to TILE + RESHAPE (no TILE kernel in TFLite Micro);
        # tf_keras's resizes, which converts to RESIZE_NEAREST_NEIGHBOR.
        kl = tf_keras.layers

        def hard_sigmoid(x):                 # as keras.applications.mobilenet_v3 writes it
            return kl.ReLU(6.0)(x + 3.0) * (1.0 / 6.0)

        def hard_swish(x):
            return kl.Multiply()([x, hard_sigmoid(x)])

        def conv_bn_hs(x, filters, kernel, strides=1):
            x = kl.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False)(x)
            return hard_swish(kl.BatchNormalization()(x))

        def se_block(x, ratio=4):
            ch = x.shape[-1]
            s = kl.GlobalAveragePooling2D()(x)
            s = kl.Dense(max(ch // ratio, 4), activation="relu")(s)
            s = hard_sigmoid(kl.Dense(ch)(s))
            s = kl.Reshape((1, 1, ch))(s)
            return kl.Multiply()([x, s])

        inp = tf_keras.Input((32, 32, 3), batch_size=batch_size)
        c1 = conv_bn_hs(inp, 8, 3)                                   # 32x32x8
        c2 = se_block(conv_bn_hs(c1, 16, 3, strides=2))              # 16x16x16
        x = kl.DepthwiseConv2D(3, strides=2, padding="same", use_bias=False)(c2)
        x = hard_swish(kl.BatchNormalization()(x))
        c3 = se_block(conv_bn_hs(x, 32, 1))                          # 8x8x32
        x = kl.UpSampling2D(2, interpolation="nearest")(c3)
        x = kl.Concatenate()([x, c2])
        x = conv_bn_hs(x, 16, 3)                                     # 16x16x16
        x = kl.UpSampling2D(2, interpolation="nearest")(x)
        x = kl.Concatenate()([x, c1])
        out = kl.Conv2D(CLASSES, 1)(x)                               # 32x32x10 logits
        return tf_keras.Model(inp, out, name="se_hardswish_upsample")

    def lstm_kws(batch_size=None):
        # Keras 3's LSTM lowers to a TF while loop that the TFLite converter does not fuse;
        # tf_keras (Keras 2) marks its LSTM so that the converter emits UNIDIRECTIONAL_SEQUENCE_LSTM.
        inp = tf_keras.Input((49, 10), batch_size=batch_size)
        x = tf_keras.layers.LSTM(64)(inp)
        out = tf_keras.layers.Dense(CLASSES, activation="softmax")(x)
        return tf_keras.Model(inp, out, name="lstm_kws")

    specs = {
        "mobilenet_v1": (mobilenet_v1, (96, 96, 3), "keras.applications.MobileNet",
                         "alpha=0.25, input 96x96x3, weights=None, classes=10"),
        "mobilenet_v2": (mobilenet_v2, (96, 96, 3), "keras.applications.MobileNetV2",
                         "alpha=0.35, input 96x96x3, weights=None, classes=10"),
        "mobilenet_v3_small": (mobilenet_v3_small, (96, 96, 3), "keras.applications.MobileNetV3Small",
                               "alpha=0.5, minimalistic=False (hard-swish, SE), include_preprocessing=False, "
                               "input 96x96x3, weights=None, classes=10"),
        "ds_cnn": (ds_cnn, (49, 10, 1), "keras.layers (DS-CNN of ARM ML-KWS-for-MCU / MLPerf Tiny KWS)",
                   "Conv2D 64 (10x4, stride 2) + 4 depthwise-separable blocks (64 ch) + GAP + Dense softmax, "
                   "input 49x10x1 (MFCC-shaped)"),
        "conv1d_sensor": (conv1d_sensor, (128, 3), "keras.layers (1-D CNN for activity recognition)",
                          "Conv1D 16x5/ReLU, MaxPool1D 2, Conv1D 32x5/ReLU, GAP1D, Dense 32/ReLU, Dense softmax; "
                          "input 128 timesteps x 3 axes"),
        "se_hardswish_upsample": (se_hardswish_upsample, (32, 32, 3),
                                  "tf_keras.layers (Keras 2, tf-keras package): MobileNetV3-style SE + hard-swish, "
                                  "U-Net-style head",
                                  "hard-swish (x * ReLU6(x + 3) / 6) convs, 2 SE blocks (GAP, Dense/ReLU, Dense, "
                                  "hard-sigmoid ReLU6(x + 3) / 6, Multiply), input 32x32x3, "
                                  "2x UpSampling2D(nearest) + Concatenate skips; output 32x32x10 per-pixel logits"),
        "lstm_kws": (lstm_kws, (49, 10), "tf_keras.layers.LSTM (Keras 2, tf-keras package)",
                     "LSTM(64) over 49 timesteps x 10 features, last state, Dense softmax; batch fixed to 1"),
    }

    for name in names:
        build_fn, shape, origin, how = specs[name]
        seed = model_seed(name)
        keras.utils.set_random_seed(seed)
        tf_keras.utils.set_random_seed(seed)
        rng = np.random.default_rng(seed)
        draw = synthetic_task(rng, shape, "uniform")
        calib, _ = draw(CALIB_COUNT)
        tests, labels = draw(MODELS[name][1])

        model = build_fn()
        legacy = name in ("lstm_kws", "se_hardswish_upsample")   # built with tf_keras
        fitted = name != "se_hardswish_upsample"                 # the classifiers
        if fitted:
            fit_x, fit_y = draw(FIT_COUNT)
            model.compile(optimizer=(tf_keras if legacy else keras).optimizers.Adam(1e-3),
                          loss="sparse_categorical_crossentropy")
            model.fit(fit_x, fit_y, batch_size=32, epochs=FIT_EPOCHS, shuffle=False, verbose=0)
        _reestimate_bn_keras(model, calib)
        params = int(model.count_params())
        if legacy:   # the same weights in a batch-1 model: the converter then emits static shapes
            fixed = build_fn(batch_size=1)
            fixed.set_weights(model.get_weights())
            model = fixed

        if legacy or name == "conv1d_sensor":
            # conv1d_sensor: Keras's default path, batch left dynamic (signature [-1, 128, 3]);
            # the converter then keeps Conv1D's EXPAND_DIMS, which with batch 1 it folds to RESHAPE
            conv = tf.lite.TFLiteConverter.from_keras_model(model)
        else:
            # a SavedModel whose signature has batch 1 (from_keras_model would keep the batch
            # dynamic, and a flatten then costs SHAPE/STRIDED_SLICE/PACK ops)
            saved = Path(tempfile.mkdtemp(prefix=f"zoo_{name}_"))
            model.export(str(saved), format="tf_saved_model", verbose=False,
                         input_signature=[tf.TensorSpec((1, *shape), tf.float32)])
            conv = tf.lite.TFLiteConverter.from_saved_model(str(saved))
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda c=calib: ([c[i:i + 1]] for i in range(len(c)))
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
        buf = conv.convert()
        if not (legacy or name == "conv1d_sensor"):
            shutil.rmtree(saved)
        (out / f"{name}.tflite").write_bytes(buf)

        # the .npz: float inputs on the int8 input grid, and their int8 form
        scale, zp = _tflite_input_quant(buf)
        tests_q = np.clip(np.round(tests / scale) + zp, -128, 127).astype(np.int8)
        tests = ((tests_q.astype(np.float32) - zp) * np.float32(scale)).astype(np.float32)
        y_float = np.concatenate([np.asarray(model(tests[i:i + 1], training=False)) for i in range(len(tests))])
        arrays = {"x": tests, "x_q": tests_q, "y_float": y_float.astype(np.float32)}
        if fitted:
            arrays["y"] = labels
        save_npz(out / f"{name}.npz", **arrays)
        accuracy = float((y_float.argmax(-1) == labels).mean()) if fitted else None

        record_build(out, name, {
            "stage": "keras",
            "origin": origin,
            "versions": versions + (f", tf_keras {tf_keras.__version__}" if legacy else ""),
            "license": "Apache-2.0",
            "architecture": how,
            "params": params,
            "seed": seed,
            "weights": "random (Keras default initializers)"
                       + (f", then fitted briefly to the synthetic task: {FIT_EPOCHS} epochs of Adam(1e-3), "
                          f"batch 32, on {FIT_COUNT} inputs" if fitted else "")
                       + (f"; BatchNorm moving statistics re-estimated on {CALIB_COUNT} inputs"
                          if _has_bn_keras(model) else ""),
            "float_accuracy_on_npz": accuracy,
            "conversion": "tf.lite.TFLiteConverter."
                          + ("from_keras_model (Input batch_size=1)" if legacy else
                             "from_keras_model (batch dynamic: shape signature -1, shape 1)"
                             if name == "conv1d_sensor" else "from_saved_model (Model.export, batch 1)")
                          + f", Optimize.DEFAULT, representative_dataset {CALIB_COUNT} inputs of the synthetic task, "
                            "supported_ops [TFLITE_BUILTINS_INT8], int8 input and output",
            "inputs": f"{task_text('uniform')}, rounded onto the int8 input grid; x_q its int8 form "
                      f"({MODELS[name][1]} samples)",
        })
        print(f"{name}: {len(buf):,} bytes, {params:,} parameters", flush=True)


def _has_bn_keras(model) -> bool:
    return any("BatchNormalization" in type(layer).__name__ for layer in model.layers)


def _reestimate_bn_keras(model, calib: np.ndarray) -> None:
    """Set every BatchNormalization's moving mean/variance to the statistics of one batch of
    calibration inputs (momentum 0 for one training-mode pass), so that a randomly initialized
    network keeps its activations in range instead of the identity 0/1 statistics."""
    bns = [layer for layer in model.layers if "BatchNormalization" in type(layer).__name__]
    if not bns:
        return
    saved = [bn.momentum for bn in bns]
    for bn in bns:
        bn.momentum = 0.0
    model(calib, training=True)
    for bn, m in zip(bns, saved):
        bn.momentum = m


def _tflite_input_quant(buf: bytes) -> tuple[float, int]:
    import tensorflow as tf

    interp = tf.lite.Interpreter(model_content=buf)
    scale, zp = interp.get_input_details()[0]["quantization"]
    return float(scale), int(zp)


# ---------------------------------------------------------------------------------------------
# torchvision -> float32 ONNX
# ---------------------------------------------------------------------------------------------

def torch_stage(names: list[str], out: Path) -> None:
    import onnx
    import torch
    import torchvision
    from torchvision.models import mnasnet, mobilenetv3, shufflenetv2, squeezenet

    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    versions = f"torch {torch.__version__}, torchvision {torchvision.__version__}, onnx {onnx.__version__}"

    def half_squeezenet1_1():
        # torchvision's squeezenet1_1 is 727,626 parameters with 10 classes (2.9 MB float32): over
        # the flash budget, and it has no width knob. The same network -- SqueezeNet 1.1's layer
        # sequence, torchvision's own Fire module and SqueezeNet classifier -- at half the channels.
        m = squeezenet.SqueezeNet(version="1_1", num_classes=CLASSES)
        fire = squeezenet.Fire
        m.features = torch.nn.Sequential(
            torch.nn.Conv2d(3, 32, kernel_size=3, stride=2),
            torch.nn.ReLU(inplace=True),
            torch.nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
            fire(32, 8, 32, 32),
            fire(64, 8, 32, 32),
            torch.nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
            fire(64, 16, 64, 64),
            fire(128, 16, 64, 64),
            torch.nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
            fire(128, 24, 96, 96),
            fire(192, 24, 96, 96),
            fire(192, 32, 128, 128),
            fire(256, 32, 128, 128),
        )
        final_conv = torch.nn.Conv2d(256, CLASSES, kernel_size=1)
        m.classifier[1] = final_conv
        for mod in m.modules():  # torchvision's own initialization of SqueezeNet
            if isinstance(mod, torch.nn.Conv2d):
                if mod is final_conv:
                    torch.nn.init.normal_(mod.weight, mean=0.0, std=0.01)
                else:
                    torch.nn.init.kaiming_uniform_(mod.weight)
                torch.nn.init.constant_(mod.bias, 0)
        return m

    class RecurrentKWS(torch.nn.Module):
        """A recurrent keyword spotter over MFCC frames: one nn.LSTM / nn.GRU layer (batch_first),
        the last time step's output, nn.Linear to the class logits."""

        def __init__(self, cell):
            super().__init__()
            self.rnn = cell(10, 32, batch_first=True)
            self.fc = torch.nn.Linear(32, KWS_CLASSES)

        def forward(self, x):
            y, _ = self.rnn(x)
            return self.fc(y[:, -1])

    image = (3, 96, 96)
    mfcc = (49, 10)
    kws_how = ("nn.{cell}(10, 32, batch_first=True) over 49 MFCC frames x 10 features, the last time step's "
               "output, nn.Linear(32, 12); input 1x49x10")
    specs = {
        "tv_mobilenet_v3_small": (
            lambda: mobilenetv3.mobilenet_v3_small(num_classes=CLASSES, width_mult=0.4),
            "torchvision.models.mobilenet_v3_small", "width_mult=0.4, num_classes=10, input 1x3x96x96"),
        "tv_shufflenet_v2": (
            lambda: shufflenetv2.shufflenet_v2_x0_5(num_classes=CLASSES),
            "torchvision.models.shufflenet_v2_x0_5", "num_classes=10, input 1x3x96x96"),
        "tv_squeezenet": (
            half_squeezenet1_1,
            "torchvision.models.squeezenet.SqueezeNet(version='1_1') with torchvision.models.squeezenet.Fire "
            "at half width",
            "SqueezeNet 1.1 layer sequence, every conv at half the channels of squeezenet1_1 (first conv 32, "
            "Fire squeeze 8/8/16/16/24/24/32/32, expand 32/32/64/64/96/96/128/128 per branch), "
            "num_classes=10, input 1x3x96x96"),
        "tv_mnasnet": (
            lambda: mnasnet.MNASNet(alpha=0.25, num_classes=CLASSES),
            "torchvision.models.MNASNet(alpha=0.25) (the class behind mnasnet0_5, at a smaller depth multiplier)",
            "alpha=0.25, num_classes=10, input 1x3x96x96"),
        "torch_lstm_kws": (
            lambda: RecurrentKWS(torch.nn.LSTM), "torch.nn.LSTM + torch.nn.Linear (a recurrent keyword spotter)",
            kws_how.format(cell="LSTM")),
        "torch_gru_kws": (
            lambda: RecurrentKWS(torch.nn.GRU), "torch.nn.GRU + torch.nn.Linear (a recurrent keyword spotter)",
            kws_how.format(cell="GRU") + " (the exporter writes GRU with linear_before_reset=1)"),
    }
    for name in names:
        build_fn, origin, how = specs[name]
        recurrent = name.startswith("torch_")
        shape, classes = (mfcc, KWS_CLASSES) if recurrent else (image, CLASSES)
        seed = model_seed(name)
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        draw = synthetic_task(rng, shape, "normal", classes)
        calib, _ = draw(CALIB_COUNT)
        tests, labels = draw(MODELS[name][1])

        model = build_fn()
        fit_x, fit_y = draw(FIT_COUNT)
        opt = torch.optim.Adam(model.parameters(), lr=FIT_LR.get(name, 1e-3))
        model.train()
        for _ in range(FIT_EPOCHS):
            for i in range(0, FIT_COUNT, 32):
                opt.zero_grad()
                loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(fit_x[i:i + 32])),
                                                         torch.from_numpy(fit_y[i:i + 32]))
                loss.backward()
                opt.step()
        has_bn = _reestimate_bn_torch(model, torch.from_numpy(calib))
        model.eval()
        params = int(sum(p.numel() for p in model.parameters()))
        with torch.no_grad():
            y_float = model(torch.from_numpy(tests)).numpy()
        path = out / f"{name}.onnx"
        with torch.no_grad():
            torch.onnx.export(model, (torch.from_numpy(tests[:1]),), str(path), opset_version=13,
                              do_constant_folding=True, input_names=["input"], output_names=["logits"],
                              dynamo=False)
        proto = fold_constants(onnx.load(str(path)))
        onnx.checker.check_model(proto, full_check=True)
        if recurrent:     # one plain LSTM / GRU node, not a Loop / Scan
            op_types = [n.op_type for n in proto.graph.node]
            cell = "LSTM" if "lstm" in name else "GRU"
            if op_types.count(cell) != 1 or {"Loop", "Scan"} & set(op_types):
                sys.exit(f"{name}: the export is not one {cell} node: {op_types}")
        proto.producer_version = torch.__version__.split("+")[0]
        onnx.save(proto, str(path))
        save_npz(out / f"{name}.npz", x=tests, y=labels, y_float=y_float.astype(np.float32))
        record_build(out, name, {
            "stage": "torch",
            "origin": origin,
            "versions": versions,
            "license": "BSD-3-Clause",
            "architecture": how,
            "params": params,
            "seed": seed,
            "weights": f"random ({'torch.nn' if recurrent else 'torchvision'}'s initialization), "
                       "then fitted briefly to the synthetic task: "
                       f"{FIT_EPOCHS} epochs of Adam({FIT_LR.get(name, 1e-3):g}), batch 32, on {FIT_COUNT} inputs"
                       + (f"; BatchNorm running statistics re-estimated on {CALIB_COUNT} inputs" if has_bn else ""),
            "float_accuracy_on_npz": float((y_float.argmax(-1) == labels).mean()),
            "conversion": "torch.onnx.export(opset_version=13, do_constant_folding=True, dynamo=False), "
                          + ("eval mode (the TorchScript exporter: one ONNX " + ("LSTM" if "lstm" in name else "GRU")
                             + " node, its zero initial states an Expand of a constant), static shape 1x49x10"
                             if recurrent else "eval mode (BatchNorm folded into Conv), static shape 1x3x96x96")
                          + ", float32; then fold_constants(): Shape of static tensors and subgraphs of constants -> "
                          "initializers, Constant nodes -> initializers (as onnx-simplifier does)",
            "inputs": f"{task_text('normal', classes)} ({MODELS[name][1]} samples)",
        })
        print(f"{name}: {path.stat().st_size:,} bytes, {params:,} parameters", flush=True)


FOLDABLE = {"Add", "Cast", "Concat", "ConstantOfShape", "Div", "Equal", "Expand", "Gather", "Identity", "Mul",
            "Range", "Reshape", "Slice", "Squeeze", "Sub", "Unsqueeze", "Where"}


def fold_constants(model):
    """The legacy exporter traces `x.chunk()`/`x.size()` into Shape -> Gather -> Div -> ... -> Slice
    even when every shape is static (and an nn.LSTM / nn.GRU's zero initial states into Expand of a
    constant to Concat(1, Shape(x)[1], hidden)). Replace each Shape of a statically shaped tensor, and each
    node whose inputs are all constant, by an initializer; Constant nodes become initializers too."""
    import onnx
    from onnx import helper, numpy_helper, shape_inference
    from onnx.reference import ReferenceEvaluator

    inferred = shape_inference.infer_shapes(model)
    shapes = {}
    for vi in list(inferred.graph.input) + list(inferred.graph.value_info) + list(inferred.graph.output):
        dims = vi.type.tensor_type.shape.dim
        if all(d.HasField("dim_value") for d in dims):
            shapes[vi.name] = [d.dim_value for d in dims]
    g = model.graph
    consts = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    kept = []
    for node in g.node:
        value = None
        if node.op_type == "Constant":
            value = numpy_helper.to_array(node.attribute[0].t)
        elif node.op_type == "Shape" and node.input[0] in shapes and not node.attribute:
            value = np.array(shapes[node.input[0]], dtype=np.int64)
        elif node.op_type in FOLDABLE and all(i in consts for i in node.input if i):
            single = helper.make_model(
                helper.make_graph([node], "fold", [], [helper.make_tensor_value_info(node.output[0], 0, None)],
                                  initializer=[numpy_helper.from_array(consts[i], i) for i in node.input if i]),
                opset_imports=model.opset_import)
            value = ReferenceEvaluator(single).run(None, {})[0]
        if value is None:
            kept.append(node)
        else:
            consts[node.output[0]] = np.asarray(value)
    used = {i for n in kept for i in n.input} | {o.name for o in g.output}
    del g.node[:]
    g.node.extend(kept)
    del g.initializer[:]
    g.initializer.extend(numpy_helper.from_array(v, k) for k, v in consts.items() if k in used)
    del g.value_info[:]
    return onnx.shape_inference.infer_shapes(model)


def _reestimate_bn_torch(model, calib) -> bool:
    """BatchNorm running statistics from one training-mode pass over the calibration batch."""
    import torch

    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return False
    model.train()
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None           # cumulative average: one batch -> that batch's statistics
    with torch.no_grad():
        model(calib)
    for bn in bns:
        bn.momentum = 0.1
    return True


# ---------------------------------------------------------------------------------------------
# check: run every model, describe it, write models.json and README.md (project .venv)
# ---------------------------------------------------------------------------------------------

def check_stage(names: list[str], out: Path) -> None:
    meta = load_json(out / "models.json")
    failures = []
    for name in names:
        entry = meta["models"].setdefault(name, {})
        tfl = out / f"{name}.tflite"
        path = tfl if tfl.exists() else out / f"{name}.onnx"
        if not path.exists():
            failures.append(f"{name}: no model file in {out}")
            continue
        info = describe_tflite(path) if path.suffix == ".tflite" else describe_onnx(path)
        npz = out / f"{name}.npz"
        data = dict(np.load(npz))
        checks, refs = (run_tflite(path, data) if path.suffix == ".tflite" else run_onnx(path, data))
        data.update(refs)
        save_npz(npz, **data)
        entry.update(info)
        entry["file"] = path.name
        entry["file_bytes"] = path.stat().st_size
        entry["inputs_file"] = npz.name
        entry["inputs_file_bytes"] = npz.stat().st_size
        entry["inputs_arrays"] = {k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in sorted(data.items())}
        entry["checks"] = checks
        if not checks["ok"]:
            failures.append(f"{name}: {checks}")
        ops = ", ".join(f"{k} {v}" for k, v in entry["ops"].items())
        print(f"{name}: {entry['file_bytes']:,} B, weights {entry['weight_bytes']:,} B, "
              f"MACs {entry['macs']:,}; {ops}; ok={checks['ok']}", flush=True)
    meta["generated_by"] = "scripts/build_zoo.py"
    meta["check_environment"] = _check_versions()
    (out / "models.json").write_text(dump_json(meta))
    write_readme(out, meta)
    if failures:
        sys.exit("check failed:\n" + "\n".join(failures))


def _check_versions() -> str:
    from importlib.metadata import version

    pkgs = ["tflite-micro", "ai-edge-litert", "onnxruntime", "onnx", "numpy"]
    return ", ".join(f"{p} {version(p)}" for p in pkgs) + f" (Python {platform.python_version()})"


def _tflite_op_names() -> dict[int, str]:
    import tflite

    return {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}


def describe_tflite(path: Path) -> dict:
    """Operators (builtin names, counts), constant bytes, tensor shapes and MACs of a .tflite."""
    import tflite

    buf = path.read_bytes()
    model = tflite.Model.GetRootAsModel(buf, 0)
    names = _tflite_op_names()
    sub = model.Subgraphs(0)

    def tensor(i):
        t = sub.Tensors(i)
        shape = [int(d) for d in t.ShapeAsNumpy()] if t.ShapeLength() else []
        q = t.Quantization()
        scale = q.ScaleAsNumpy() if q is not None and q.ScaleLength() else None
        zp = q.ZeroPointAsNumpy() if q is not None and q.ZeroPointLength() else None
        dtype = {v: k for k, v in vars(tflite.TensorType).items() if not k.startswith("_")}[t.Type()]
        return t, shape, dtype.lower(), scale, zp

    const = set()
    weight_bytes = 0
    for i in range(sub.TensorsLength()):
        b = model.Buffers(sub.Tensors(i).Buffer())
        if b is not None and (b.DataLength() > 0 or b.Size() > 0):
            const.add(i)
            weight_bytes += b.DataLength() or int(b.Size())

    ops: dict[str, int] = {}
    macs = 0
    largest_act = 0
    steps, sizes = [], {}
    for k in range(sub.OperatorsLength()):
        op = sub.Operators(k)
        code = model.OperatorCodes(op.OpcodeIndex())
        opname = names[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]
        ops[opname] = ops.get(opname, 0) + 1
        ins = [i for i in op.InputsAsNumpy()] if op.InputsLength() else []
        outs = [i for i in op.OutputsAsNumpy()] if op.OutputsLength() else []
        out_elems = int(np.prod(tensor(outs[0])[1])) if outs else 0
        if opname in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV"):
            w = tensor(ins[1])[1]
            macs += out_elems * (w[1] * w[2] * w[3] if opname == "CONV_2D" else
                                 w[1] * w[2] if opname == "DEPTHWISE_CONV_2D" else
                                 w[0] * w[1] * w[2] if opname == "TRANSPOSE_CONV" else w[-1])
        elif opname == "UNIDIRECTIONAL_SEQUENCE_LSTM":
            timesteps = int(np.prod(tensor(ins[0])[1][:-1]))
            macs += timesteps * sum(int(np.prod(tensor(i)[1])) for i in ins[1:9] if i >= 0)
        for i in list(ins) + list(outs):
            if i >= 0 and i not in const:
                _, shape, dtype, _, _ = tensor(i)
                size = int(np.prod(shape)) * {"int8": 1, "uint8": 1, "int16": 2, "float16": 2}.get(dtype, 4)
                largest_act = max(largest_act, size)
                sizes[i] = size
        steps.append(([i for i in ins if i in sizes], [i for i in outs if i in sizes]))

    def io(idx):
        t, shape, dtype, scale, zp = tensor(idx)
        d = {"name": t.Name().decode(), "shape": shape, "dtype": dtype}
        if t.ShapeSignatureLength() and [int(v) for v in t.ShapeSignatureAsNumpy()] != shape:
            d["shape_signature"] = [int(v) for v in t.ShapeSignatureAsNumpy()]
        if scale is not None:
            d["scale"] = float(scale[0])
            d["zero_point"] = int(zp[0])
        return d

    return {
        "format": "tflite",
        "precision": "int8 (full integer)",
        "ops": dict(sorted(ops.items())),
        "op_count": sum(ops.values()),
        "inputs": [io(i) for i in sub.InputsAsNumpy()],
        "outputs": [io(i) for i in sub.OutputsAsNumpy()],
        "weight_bytes": weight_bytes,
        "macs": macs,
        "largest_activation_bytes": largest_act,
        "peak_live_activation_bytes": _peak_live(steps, sizes, list(sub.OutputsAsNumpy())),
    }


def describe_onnx(path: Path) -> dict:
    import onnx
    from onnx import numpy_helper, shape_inference

    model = shape_inference.infer_shapes(onnx.load(str(path)))
    g = model.graph
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    shapes = {}
    for vi in list(g.input) + list(g.output) + list(g.value_info):
        dims = vi.type.tensor_type.shape.dim
        shapes[vi.name] = [d.dim_value for d in dims]
    for k, v in inits.items():
        shapes[k] = list(v.shape)
    ops: dict[str, int] = {}
    macs = 0
    for node in g.node:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
        if node.op_type in ("Conv", "Gemm", "MatMul"):
            if not all(shapes[node.output[0]]):
                raise ValueError(f"{path.name}: {node.name} has no static output shape")
            out = int(np.prod(shapes[node.output[0]]))
            w = shapes[node.input[1]]
            if node.op_type == "Conv":
                macs += out * int(np.prod(w[1:]))
            elif node.op_type == "Gemm":
                trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
                macs += out * (w[1] if trans_b else w[0])
            else:
                macs += out * w[-2]
        elif node.op_type in ("LSTM", "GRU"):
            # every step: W [D, G*H, I] times x_t and R [D, G*H, H] times h, per sequence of the batch
            steps, batch = shapes[node.input[0]][:2]
            macs += steps * batch * (int(np.prod(shapes[node.input[1]])) + int(np.prod(shapes[node.input[2]])))
    sizes = {n: int(np.prod(s)) * 4 for n, s in shapes.items() if n not in inits and s}
    largest = max(sizes.values())
    steps = [([i for i in n.input if i in sizes], [o for o in n.output if o in sizes]) for n in g.node]

    def io(vi):
        return {"name": vi.name, "shape": [d.dim_value for d in vi.type.tensor_type.shape.dim],
                "dtype": onnx.helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type).name}

    init_names = set(inits)
    return {
        "format": "onnx",
        "precision": "float32",
        "opset": max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")),
        "ops": dict(sorted(ops.items())),
        "op_count": sum(ops.values()),
        "inputs": [io(vi) for vi in g.input if vi.name not in init_names],
        "outputs": [io(vi) for vi in g.output],
        "weight_bytes": int(sum(v.nbytes for v in inits.values())),
        "weight_params": int(sum(v.size for v in inits.values() if v.dtype == np.float32)),
        "macs": macs,
        "largest_activation_bytes": largest,
        "peak_live_activation_bytes": _peak_live(steps, sizes, [o.name for o in g.output]),
    }


def _peak_live(steps: list, sizes: dict, outputs: list) -> int:
    """Peak of the bytes of activations alive at once when the operators run in file order, each
    tensor from its producer (or the start) to its last consumer (or the end, for the outputs):
    what a planner that never aliases an output onto its input needs, without scratch buffers."""
    last = {t: len(steps) for t in outputs}
    for k, (ins, _) in enumerate(steps):
        for t in ins:
            last[t] = max(last.get(t, k), k)
    produced = {t for _, outs in steps for t in outs}
    live = {t for t in sizes if t not in produced and t in last}
    peak = sum(sizes[t] for t in live)
    for k, (_, outs) in enumerate(steps):
        live |= set(outs)
        peak = max(peak, sum(sizes[t] for t in live))
        live = {t for t in live if last.get(t, -1) > k}
    return peak


def _tflm_arena_bytes(buf: bytes) -> int:
    """Smallest TFLite Micro arena (to 256 B) that the model allocates in."""
    from tflite_micro import runtime

    lo, hi = 256, 1 << 21
    sys.stdout.flush()
    saved = os.dup(2)                 # TFLM reports each failed allocation on stderr
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        while hi - lo > 256:
            mid = (lo + hi) // 2 // 16 * 16
            try:
                runtime.Interpreter.from_bytes(buf, arena_size=mid)
                hi = mid
            except RuntimeError:
                lo = mid
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return hi


def _spread(y: np.ndarray) -> dict:
    flat = y.reshape(len(y), -1).astype(np.float64)
    return {"finite": bool(np.isfinite(flat).all()),
            "distinct_outputs": int(len({r.tobytes() for r in y.reshape(len(y), -1)})),
            "distinct_argmax": int(len(set(flat.argmax(1).tolist()))),
            "std_across_inputs": round(float(flat.std(0).mean()), 4)}


def run_tflite(path: Path, data: dict) -> tuple[dict, dict]:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    from tflite_micro import runtime

    buf = path.read_bytes()
    tflm = runtime.Interpreter.from_bytes(buf)
    # LiteRT's reference kernels (its default optimized ones, XNNPACK and ruy, round differently)
    litert = Interpreter(model_content=buf, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    litert.allocate_tensors()
    inp, outd = litert.get_input_details()[0], litert.get_output_details()[0]
    xq = data["x_q"]
    y_tflm, y_lite = [], []
    for x in xq:
        tflm.set_input(x[None], 0)
        tflm.invoke()
        y_tflm.append(np.array(tflm.get_output(0)))
        litert.set_tensor(inp["index"], x[None])
        litert.invoke()
        y_lite.append(litert.get_tensor(outd["index"]).copy())
    y_tflm, y_lite = np.concatenate(y_tflm), np.concatenate(y_lite)
    diff = np.abs(y_tflm.astype(np.int32) - y_lite.astype(np.int32))
    scale, zp = outd["quantization"]
    y_f = (y_tflm.astype(np.float32) - zp) * np.float32(scale)
    err = np.abs(y_f - data["y_float"]) / scale            # in output LSBs
    spread = _spread(y_tflm)
    ok = spread["finite"] and spread["distinct_outputs"] > 1 and y_tflm.dtype == np.int8
    checks = {
        "ok": bool(ok),
        "samples": len(xq),
        "tflm_vs_litert_bitexact": int(sum(np.array_equal(a, b) for a, b in zip(y_tflm, y_lite))),
        "tflm_vs_litert_max_abs_diff": int(diff.max()),
        "tflm_vs_float_max_lsb": round(float(err.max()), 2),
        "tflm_vs_float_mean_lsb": round(float(err.mean()), 3),
        "argmax_same_as_float": int((y_f.reshape(-1, y_f.shape[-1]).argmax(-1)
                                     == data["y_float"].reshape(-1, y_f.shape[-1]).argmax(-1)).sum()),
        "argmax_count": int(np.prod(y_f.shape[:-1])),
        "tflm_arena_bytes": _tflm_arena_bytes(buf),
        **spread,
    }
    if "y" in data:
        checks["int8_accuracy"] = float((y_f.argmax(-1) == data["y"]).mean())
        checks["float_accuracy"] = float((data["y_float"].argmax(-1) == data["y"]).mean())
    return checks, {"y_q": y_tflm}


def run_onnx(path: Path, data: dict) -> tuple[dict, dict]:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    iname = sess.get_inputs()[0].name
    logits = np.concatenate([sess.run(None, {iname: x[None]})[0] for x in data["x"]])
    spread = _spread(logits)
    diff = float(np.abs(logits - data["y_float"]).max())
    ok = spread["finite"] and spread["distinct_outputs"] > 1 and spread["std_across_inputs"] > 1e-6 and diff < 1e-3
    checks = {"ok": bool(ok), "samples": len(data["x"]), "ort_vs_torch_max_abs_diff": float(f"{diff:.3g}"),
              "accuracy": float((logits.argmax(-1) == data["y"]).mean()), **spread}
    return checks, {"logits": logits.astype(np.float32)}


def write_readme(out: Path, meta: dict) -> None:
    models = meta["models"]
    total = sum(p.stat().st_size for p in out.iterdir() if p.is_file() and p.name != "README.md")
    lines = [
        "# Model zoo",
        "",
        "Small networks built from public architecture code with random weights, fitted briefly to a",
        "synthetic 10-class task (12 for the recurrent keyword spotters; BatchNorm statistics re-estimated",
        "after), for adaptc's tests. Made by",
        "`scripts/build_zoo.py` (its docstring gives the environments and commands); do not edit by hand:",
        "rerun the script. Machine-readable: `models.json` (the same facts, and the checks the script ran).",
        "",
        "- Keras models: full-integer int8 TFLite (int8 input and output) by `TFLiteConverter` with a",
        f"  representative dataset of {CALIB_COUNT} synthetic inputs and `TFLITE_BUILTINS_INT8` only.",
        "- torch models (torchvision, and torch.nn recurrent keyword spotters `torch_*_kws`): float32",
        "  ONNX, opset 13, static shape (1x3x96x96 images, 1x49x10 MFCC frames), BatchNorm folded,",
        "  constants folded (an LSTM / GRU stays one ONNX LSTM / GRU node, its zero initial states constant).",
        "- Inputs: the synthetic task adds one of 10 (12) fixed random class templates to noise: for the",
        "  Keras models x = (u + T[c]) / 2 with u, T ~ U(-1, 1) (x in [-1, 1], so random int8 inputs are",
        "  in range too); for torch x = (n + T[c]) / sqrt(2) with n, T ~ N(0, 1). The label is c.",
        "- Each `NAME.npz` holds inputs drawn like the representative / calibration data:",
        "  `x` float32 in the model's input layout; `y` int64 labels (classifiers only); `y_float` the",
        "  float model's output before conversion (Keras / torch). TFLite also: `x_q` the int8 input",
        "  (`x` is exactly its dequantized value) and `y_q` TFLite Micro's int8 output. ONNX also:",
        "  `logits` onnxruntime's output. So `adaptc compile M.onnx --calibration M.npz` works as is.",
        "- Weights are random and briefly fitted: outputs are reference values, accuracies are low.",
        "- MACs count Conv/DepthwiseConv/FullyConnected/Gemm/MatMul/LSTM/GRU multiply-accumulates",
        "  (a recurrent layer: its input and recurrent weight matrices once per time step).",
        "  'Largest tensor' is the biggest single activation; 'peak live' the most activation bytes alive",
        "  at once with the operators in file order (no in-place reuse); 'TFLM arena' the smallest",
        "  arena (to 256 B) TFLite Micro's Python runtime (x86-64 host) allocates the model in.",
        f"- Checked with {meta.get('check_environment', '?')}.",
        "",
        f"Total size of the models, the .npz files and models.json: {total:,} bytes.",
        "",
        "| model | format | origin | params | file bytes | weight bytes | MACs | input -> output |",
        "|---|---|---|---:|---:|---:|---:|---|",
    ]

    def shp(d):
        return "x".join(str(s) for s in d["shape"]) + " " + d["dtype"]

    for name, e in models.items():
        if "ops" not in e:
            continue
        b = e.get("build", {})
        lines.append(f"| {name} | {e['format']} {e['precision'].split()[0]} | {b.get('origin', '?').split(' ')[0]} "
                     f"| {b.get('params', 0):,} | {e['file_bytes']:,} | {e['weight_bytes']:,} | {e['macs']:,} "
                     f"| {', '.join(shp(d) for d in e['inputs'])} -> {', '.join(shp(d) for d in e['outputs'])} |")
    for fmt, title in (("tflite", "TFLite builtin operators (count per model)"),
                       ("onnx", "ONNX operators (count per model)")):
        cols = [n for n, e in models.items() if e.get("format") == fmt]
        if not cols:
            continue
        ops = sorted({op for n in cols for op in models[n]["ops"]})
        lines += ["", f"### {title}", "", "| op | " + " | ".join(cols) + " |",
                  "|---|" + "---:|" * len(cols)]
        lines += [f"| {op} | " + " | ".join(str(models[n]["ops"].get(op, "")) for n in cols) + " |" for op in ops]
    for name, e in models.items():
        if "ops" not in e:
            continue
        b = e.get("build", {})
        c = e["checks"]
        lines += ["", f"## {name}", "", "| | |", "|---|---|",
                  f"| file | `{e['file']}` ({e['file_bytes']:,} bytes); inputs `{e['inputs_file']}` "
                  f"({e['inputs_file_bytes']:,} bytes: "
                  + ", ".join(f"{k} {'x'.join(map(str, v['shape']))} {v['dtype']}"
                              for k, v in e["inputs_arrays"].items()) + ") |",
                  f"| origin | {b.get('origin', '?')} ({b.get('versions', '?')}) |",
                  f"| license | {b.get('license', '?')} |",
                  f"| architecture | {b.get('architecture', '?')} |",
                  f"| weights | {b.get('weights', '?')}; seed {b.get('seed', '?')} |",
                  f"| conversion | {b.get('conversion', '?')} |",
                  f"| parameters | {b.get('params', 0):,} (framework count, before BatchNorm folding) |",
                  f"| weight bytes | {e['weight_bytes']:,} (constant tensors in the file) |",
                  f"| MACs | {e['macs']:,} |",
                  "| input | " + "; ".join(_io_text(d) for d in e["inputs"]) + " |",
                  "| output | " + "; ".join(_io_text(d) for d in e["outputs"]) + " |",
                  f"| activations | largest tensor {e['largest_activation_bytes']:,} bytes; peak live "
                  f"{e['peak_live_activation_bytes']:,} bytes (operators in file order, no aliasing) |"]
        if "tflm_arena_bytes" in c:
            lines.append(f"| TFLM arena | {c['tflm_arena_bytes']:,} bytes |")
            acc = (f"; accuracy on the labels: int8 {c['int8_accuracy']:.2f}, float {c['float_accuracy']:.2f}"
                   if "int8_accuracy" in c else "")
            lines.append(f"| checks | TFLite Micro and LiteRT (reference kernels) ran {c['samples']} inputs: "
                         f"{c['tflm_vs_litert_bitexact']}/{c['samples']} outputs bit-exact (max diff "
                         f"{c['tflm_vs_litert_max_abs_diff']}); TFLM vs the float model: max "
                         f"{c['tflm_vs_float_max_lsb']} / mean {c['tflm_vs_float_mean_lsb']} output LSB, argmax "
                         f"{c['argmax_same_as_float']}/{c['argmax_count']} the same; {c['distinct_outputs']} "
                         f"distinct outputs, {c['distinct_argmax']} distinct argmax{acc} |")
        else:
            lines.append(f"| checks | onnxruntime ran {c['samples']} inputs: finite, max |onnxruntime - torch| "
                         f"{c['ort_vs_torch_max_abs_diff']}, {c['distinct_outputs']} distinct outputs, "
                         f"{c['distinct_argmax']} distinct argmax; accuracy on the labels {c['accuracy']:.2f} |")
        ops = ", ".join(f"{k} x{v}" for k, v in e["ops"].items())
        lines.append(f"| ops ({e['op_count']}, {len(e['ops'])} types) | {ops} |")
    (out / "README.md").write_text("\n".join(lines) + "\n")


def _io_text(d: dict) -> str:
    s = f"`{d['name']}` {'x'.join(map(str, d['shape']))} {d['dtype']}"
    if "shape_signature" in d:
        s += f" (shape signature {d['shape_signature']})"
    if "scale" in d:
        s += f" (scale {d['scale']:.6g}, zero point {d['zero_point']})"
    return s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("stage", choices=["keras", "torch", "check"],
                    help="keras: under a TensorFlow venv; torch: under a torch venv; check: under adaptc's .venv")
    ap.add_argument("--only", action="append", choices=sorted(MODELS), metavar="NAME",
                    help="build/check only this model (repeatable); names: " + ", ".join(MODELS))
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default tests/data/zoo)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    np.random.seed(SEED)
    if args.stage == "check":
        names = args.only or [n for n in MODELS if (args.out / f"{n}.npz").exists()]
        check_stage(names, args.out)
        return
    names = [n for n in (args.only or MODELS) if MODELS[n][0] == args.stage]
    if not names:
        sys.exit(f"no {args.stage} model among {args.only}")
    (keras_stage if args.stage == "keras" else torch_stage)(names, args.out)


if __name__ == "__main__":
    main()
