"""InsertGates: exit heads -> gates and relax.If; segments are dependency closures.

* Before/Expected: the importer put a deep layer before the shallow head; it moves into the
  else branch, and gate 0 sees only what head 0 needs.
* On llvm, on the digits model (float and int8, every criterion, every level): the exit taken
  and its logits are what the heads of the un-gated module and adaptc.gates' definition of each
  criterion say; float logits equal onnxruntime's output of that head.
* Heads that are not classifiers, exits that are not nested, exits out of order: InputError.
"""
import numpy as np
import onnxruntime as ort
import pytest
import tvm
from tvm.script import ir as I
from tvm.script import relax as R

from adaptc import gates, tvm_compat
from adaptc.data import digits
from adaptc.data import path as data_path
from adaptc.errors import InputError
from adaptc.loader import load
from adaptc.passes.insert_gates import InsertGates, plan_exits
from adaptc.pipeline import pipeline

rng = np.random.default_rng(0)
W1 = rng.standard_normal((4, 4)).astype(np.float32)
H0 = rng.standard_normal((4, 3)).astype(np.float32)
H1 = rng.standard_normal((4, 3)).astype(np.float32)


@I.ir_module
class Before:
    @R.function
    def main(x: R.Tensor((1, 4), "float32")):
        R.func_attr({"num_input": 1})
        with R.dataflow():
            t = R.nn.relu(x)
            deep = R.matmul(t, R.const(W1))        # the final head's layer, bound before exit 0's
            h0 = R.matmul(t, R.const(H0))
            d2 = R.nn.relu(deep)
            h1 = R.matmul(d2, R.const(H1))
            gv = (h0, h1)
            R.output(gv)
        return gv


@I.ir_module
class Expected:
    @R.function(private=True)
    def gate_0(x0: R.Tensor((1, 3), "float32"), x1: R.Tensor((), "int32")) -> R.Tensor((), "bool"):
        R.func_attr({"Composite": "adaptc.gate_f32", "criterion": "max_prob", "exit": 0,
                     "source": "gate of exit 0 (max_prob)", "threshold": 0.5})
        with R.dataflow():
            logp = R.nn.log_softmax(x0, axis=-1)
            top = R.max(logp, axis=[-1], keepdims=True)
            p = R.exp(top)
            conf = R.reshape(p, R.shape([]))
            hit = R.greater_equal(conf, R.const(0.5, "float32"))
            capped = R.less_equal(x1, R.const(0, "int32"))
            gv = R.logical_or(hit, capped)
            R.output(gv)
        return gv

    @R.function(private=True)
    def gate_1(x0: R.Tensor((1, 3), "float32"), x1: R.Tensor((), "int32")) -> R.Tensor((), "bool"):
        R.func_attr({"Composite": "adaptc.gate_f32", "criterion": "max_prob", "exit": 1,
                     "source": "gate of exit 1 (max_prob)", "threshold": float("-inf")})
        with R.dataflow():
            logp = R.nn.log_softmax(x0, axis=-1)
            top = R.max(logp, axis=[-1], keepdims=True)
            p = R.exp(top)
            conf = R.reshape(p, R.shape([]))
            hit = R.greater_equal(conf, R.const(float("-inf"), "float32"))
            capped = R.less_equal(x1, R.const(1, "int32"))
            gv = R.logical_or(hit, capped)
            R.output(gv)
        return gv

    @R.function
    def main(x: R.Tensor((1, 4), "float32"), level: R.Tensor((), "int32")) \
            -> R.Tuple(R.Tensor((1, 3), "float32"), R.Tensor((), "int32")):
        R.func_attr({"adaptc.exits": 2, "adaptc.gate_criterion": "max_prob", "num_input": 2})
        cls = Expected
        t = R.nn.relu(x)
        h0 = R.matmul(t, R.const(H0))
        gate0 = cls.gate_0(h0, level)
        if gate0:
            exit0 = (h0, R.const(0, "int32"))
        else:
            deep = R.matmul(t, R.const(W1))
            d2 = R.nn.relu(deep)
            h1 = R.matmul(d2, R.const(H1))
            gate1 = cls.gate_1(h1, level)  # noqa: F841 (a TVMScript binding)
            exit0 = (h1, R.const(1, "int32"))
        return exit0


def test_segments_are_dependency_closures():
    after = tvm_compat.apply(InsertGates("max_prob", [0.5]), Before)
    assert tvm_compat.well_formed(after)
    tvm.ir.assert_structural_equal(after, Expected)
    x = rng.standard_normal((1, 4)).astype(np.float32)
    vm = tvm_compat.build_llvm(after)
    h0, h1 = tvm_compat.run_vm(tvm_compat.build_llvm(Before), x)
    for level, want, _head in ((0, 0, h0), (1, int(gates.confidence_float(h0, "max_prob")[0] < 0.5), None)):
        logits, e = tvm_compat.run_vm(vm, x, np.array(level, np.int32))
        assert int(e) == want
        np.testing.assert_allclose(logits, (h0, h1)[want], rtol=1e-6)


MODEL = data_path("digits_exits.onnx")
X_TRAIN, _, X_TEST, _ = digits()
REAL = {"max_prob": 0.9, "margin": 3.0, "entropy": -0.3}


def _heads_onnxruntime(xs):
    sess = ort.InferenceSession(str(MODEL))
    name = sess.get_inputs()[0].name
    return [np.concatenate(h) for h in zip(*[sess.run(None, {name: x[None]}) for x in xs])]


@pytest.mark.parametrize("fmt", ["float32", "int8"])
@pytest.mark.parametrize("criterion", gates.CRITERIA)
def test_gated_digits_model_on_llvm(criterion, fmt):
    loaded = load(MODEL)
    passes, got_fmt, _ = pipeline(loaded, X_TRAIN[:128] if fmt == "int8" else None)
    assert got_fmt == fmt
    mod = tvm_compat.apply(passes, loaded.mod)
    attrs = mod["main"].attrs
    scales = [float(s) for s in attrs["adaptc.output_scales"]] if fmt == "int8" else None
    th = [gates.int_threshold(criterion, REAL[criterion], s) for s in scales[:2]] if scales else [REAL[criterion]] * 2
    gated = tvm_compat.apply(InsertGates(criterion, th, scales), mod)
    vm, heads_vm = tvm_compat.build_llvm(gated), tvm_compat.build_llvm(mod)
    xs = X_TEST[:40]
    onnx_heads = _heads_onnxruntime(xs)
    exits = set()
    for k, x in enumerate(xs):
        x = x[None]
        if fmt == "int8":
            s, z = float(attrs["adaptc.input_scale"]), int(attrs["adaptc.input_zero_point"])
            x = np.clip(np.round(x / s) + z, -128, 127).astype(np.int8)
        heads = tvm_compat.run_vm(heads_vm, x)
        for level in range(3):
            logits, e = tvm_compat.run_vm(vm, x, np.array(level, np.int32))
            want = next(i for i in range(3) if i == 2 or level <= i or (
                gates.confidence_int(heads[i], criterion, scales[i])[0] if scales
                else gates.confidence_float(heads[i], criterion)[0]) >= th[i])
            assert int(e) == want, (k, level)
            np.testing.assert_array_equal(logits, heads[want])
            if fmt == "float32":
                np.testing.assert_allclose(logits, onnx_heads[want][k:k + 1], rtol=1e-4, atol=1e-4)
            exits.add(int(e))
    assert exits == {0, 1, 2}        # every branch taken


@I.ir_module
class NotClassifier:
    @R.function
    def main(x: R.Tensor((1, 4), "float32")):
        with R.dataflow():
            a = R.nn.relu(x)
            b = R.reshape(a, R.shape([1, 2, 2]))
            gv = (b, a)
            R.output(gv)
        return gv


@I.ir_module
class Single:
    @R.function
    def main(x: R.Tensor((1, 4), "float32")):
        with R.dataflow():
            gv = R.nn.relu(x)
            R.output(gv)
        return gv


@I.ir_module
class Crossed:       # exit 0 and exit 2 share `a`, which exit 1 does not compute
    @R.function
    def main(x: R.Tensor((1, 4), "float32")):
        with R.dataflow():
            a = R.nn.relu(x)
            b = R.sigmoid(x)
            h0 = R.add(a, x)
            h1 = R.add(b, x)
            h2 = R.add(a, b)
            gv = (h0, h1, h2)
            R.output(gv)
        return gv


@I.ir_module
class Backwards:     # the final head is listed first
    @R.function
    def main(x: R.Tensor((1, 4), "float32")):
        with R.dataflow():
            a = R.nn.relu(x)
            h1 = R.sigmoid(a)
            h0 = R.add(h1, a)
            gv = (h0, h1)
            R.output(gv)
        return gv


@I.ir_module
class HeadFeedsDeeper:  # exit 0's logits are an input of the final head
    @R.function
    def main(x: R.Tensor((1, 4), "float32")):
        with R.dataflow():
            a = R.nn.relu(x)
            h0 = R.sigmoid(a)
            h1 = R.add(h0, a)
            gv = (h0, h1)
            R.output(gv)
        return gv


def test_heads_must_be_classifiers():
    with pytest.raises(InputError, match=r"output 0 \(b\) has shape \[1, 2, 2\]: an exit head must be a classifier"):
        plan_exits(NotClassifier, "m.onnx")
    with pytest.raises(InputError, match="at least two outputs"):
        plan_exits(Single, "m.onnx")


def test_exits_must_be_nested_and_ordered():
    with pytest.raises(InputError, match=r"exits are not nested: exit 0 and exit 2 both need .*\(a\), "
                                         r"which exit 1 does not compute"):
        plan_exits(Crossed, "m.onnx")
    with pytest.raises(InputError,
                       match="exit 1 needs no layer beyond exit 0's; exits must be ordered shallow to deep"):
        plan_exits(Backwards, "m.onnx")
    with pytest.raises(InputError, match=r"exit 0's head h0 feeds deeper layers"):
        plan_exits(HeadFeedsDeeper, "m.onnx")


def test_integer_confidence_tracks_the_float_one():
    """The integer criteria on int8 logits agree with the float ones on the dequantized logits
    to within their resolution (plus a logit step's effect)."""
    s = 0.11
    q = rng.integers(-128, 128, size=(500, 10)).astype(np.int8)
    q[:, 3] = np.clip(q[:, 3].astype(int) + 60, -128, 127)          # some confident rows
    real = s * q.astype(np.float64)
    for criterion, tol in (("max_prob", 2e-4), ("margin", 0.0), ("entropy", 0.03)):
        got = gates.confidence_int(q, criterion, s) * gates.unit(criterion, s)
        np.testing.assert_allclose(got, gates.confidence_float(real, criterion), atol=tol + 1e-9, err_msg=criterion)
        t = gates.int_threshold(criterion, 0.5 if criterion == "max_prob" else -0.7, s)
        assert (t * gates.unit(criterion, s) >= (0.5 if criterion == "max_prob" else -0.7) - 1e-12)
        assert ((t - 1) * gates.unit(criterion, s) < (0.5 if criterion == "max_prob" else -0.7))
