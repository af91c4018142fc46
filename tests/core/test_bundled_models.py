"""The bundled single-exit classifiers and the MNIST-1D data (adaptc/data/README.md):

* adaptc.data.mnist1d(): 4,000 training and 1,000 test signals, float32 (N, 1, 40), int64
  labels, all ten classes in each split, centred and scaled (the generator's normalization);
* mnist1d_cnn.onnx, mnist1d_small.onnx, digits_cnn.onnx: one input of the data's sample shape
  (batch 1), one output of 10 logits, and -- run by onnxruntime over the whole test split -- at
  least the float test accuracy the README documents, less half a point.
"""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from adaptc import data as D

# file -> (data set, float test accuracy documented in adaptc/data/README.md)
MODELS = {"mnist1d_cnn.onnx": ("mnist1d", 0.987), "mnist1d_small.onnx": ("mnist1d", 0.973),
          "digits_cnn.onnx": ("digits", 0.978)}


@pytest.fixture(scope="module")
def mnist1d():
    return D.mnist1d()


def test_mnist1d_shapes_and_classes(mnist1d):
    x, y, xt, yt = mnist1d
    assert (x.shape, xt.shape, y.shape, yt.shape) == ((4000, 1, 40), (1000, 1, 40), (4000,), (1000,))
    assert x.dtype == xt.dtype == np.float32 and y.dtype == yt.dtype == np.int64
    for labels in (y, yt):
        counts = np.bincount(labels, minlength=10)
        assert len(counts) == 10 and counts.min() > len(labels) // 20
    assert np.isfinite(x).all() and np.isfinite(xt).all()
    assert abs(float(x.mean())) < 0.05 and 0.9 < float(x.std()) < 1.1


@pytest.mark.parametrize("name", sorted(MODELS))
def test_float_test_accuracy(name):
    dataset, documented = MODELS[name]
    _, _, xt, yt = getattr(D, dataset)()
    sess = ort.InferenceSession(str(D.path(name)), providers=["CPUExecutionProvider"])
    (inp,), (out,) = sess.get_inputs(), sess.get_outputs()
    assert inp.shape == [1, *xt.shape[1:]] and inp.type == "tensor(float)"
    assert out.shape == [1, 10]
    pred = np.array([int(np.argmax(sess.run(None, {inp.name: v[None]})[0])) for v in xt])
    accuracy = float(np.mean(pred == yt))
    assert accuracy >= documented - 0.005, f"{name}: test accuracy {accuracy:.4f}, documented {documented:.3f}"
