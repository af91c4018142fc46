"""adaptc.add_exits: exits attached to a trained single-exit model after training.

References: onnxruntime for the features TVM computes and for the heads written into the ONNX
model (numpy's head_logits against the ONNX nodes); the Relax module on llvm for the C at every
level (host build) and the emulated Cortex-M4; the simulator for the split costs (a placement's
predicted exit costs are those of the model compiled from it). The search runs once per module
on the bundled digits CNN with a reduced training budget; test_search_on_ray runs the same
search on a local Ray instance the test starts and stops.
"""
from __future__ import annotations

import shutil

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import adaptc
import adaptc.data as D
from adaptc import augment
from adaptc.errors import InputError
from emulated import accuracy_and_instructions

needs_arm = pytest.mark.skipif(not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")),
                               reason="needs the Debian packages gcc-arm-none-eabi and qemu-system-arm")
MODEL = D.path("digits_cnn.onnx")
X, Y, X_TEST, Y_TEST = D.digits()


@pytest.fixture(scope="module")
def adaptive():
    return adaptc.add_exits(MODEL, data=(X[:700], Y[:700]), validation=(X_TEST[:225], Y_TEST[:225]),
                            max_exits=2, epochs=40, progress=False)


def ort_outputs(model: onnx.ModelProto, x: np.ndarray, names: list[str]) -> list[np.ndarray]:
    s = ort.InferenceSession(model.SerializeToString())
    name = s.get_inputs()[0].name
    return [np.concatenate(o) for o in zip(*[s.run(names, {name: xi[None]}) for xi in x])]


def test_candidates_are_block_boundaries():
    cands = augment.candidates(onnx.load(MODEL))
    nodes = {n.output[0]: n.op_type for n in onnx.load(MODEL).graph.node}
    # after every ReLU / max pool of the three conv blocks; never a layout node's output or the logits
    assert [nodes[c.tensor] for c in cands] == ["Relu", "MaxPool", "Relu", "Relu", "MaxPool"]
    assert [c.shape for c in cands] == [(1, 8, 8, 8), (1, 8, 4, 4), (1, 32, 4, 4), (1, 64, 4, 4), (1, 64, 2, 2)]


def residual_model() -> onnx.ModelProto:
    """x -> conv a -> relu r1 -> conv b -> add(b, r1) -> relu r2 -> GAP -> flatten -> gemm."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), n)
             for n, s in (("wa", (4, 1, 3, 3)), ("wb", (4, 4, 3, 3)), ("fc", (4, 10)))]
    nodes = [helper.make_node("Conv", ["x", "wa"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["a"], ["r1"]),
             helper.make_node("Conv", ["r1", "wb"], ["b"], pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["b", "r1"], ["s"]),
             helper.make_node("Relu", ["s"], ["r2"]),
             helper.make_node("GlobalAveragePool", ["r2"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("MatMul", ["f", "fc"], ["y"])]
    graph = helper.make_graph(nodes, "residual", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 6, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_no_candidate_inside_a_residual_block():
    """Inside the block two activations are live (b and the skip r1): no exit there."""
    assert [c.tensor for c in augment.candidates(residual_model())] == ["r1", "r2", "g"]


def test_features_match_onnxruntime():
    model = onnx.load(MODEL)
    cands = augment.candidates(model)
    got = augment.features(model, cands, X_TEST[:20])
    want = ort_outputs(augment.with_outputs(model, [c.tensor for c in cands]), X_TEST[:20],
                       [c.tensor for c in cands])
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kind", augment.HEAD_KINDS)
def test_heads_written_to_onnx_compute_what_they_were_trained_as(kind):
    """Every candidate's head (the 2-D one too): onnxruntime on the augmented model equals
    numpy's head_logits on the activations, and the original output is unchanged."""
    model = residual_model()
    cands = augment.candidates(model)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((64, 1, 6, 6)).astype(np.float32)
    y = rng.integers(0, 10, 64)
    acts = augment.features(model, cands, x)
    heads = [augment.train_head(a, y, kind, 10, c, epochs=5) for a, c in zip(acts, cands)]
    augmented = augment.attach(model, heads)
    names = [o.name for o in augmented.graph.output]
    assert names == [f"adaptc_exit{i}_logits" for i in range(len(heads))] + ["y"]
    outs = ort_outputs(augmented, x, names)
    for head, a, o in zip(heads, acts, outs):
        np.testing.assert_allclose(o, augment.head_logits(head, a), rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(outs[-1], ort_outputs(model, x, ["y"])[0])


def test_head_training_is_deterministic_and_learns():
    model = onnx.load(MODEL)
    cands = augment.candidates(model)[-1:]
    acts = augment.features(model, cands, X[:300])[0]
    a = augment.train_head(acts, Y[:300], "gap", 10, cands[0], epochs=30)
    b = augment.train_head(acts, Y[:300], "gap", 10, cands[0], epochs=30)
    for k in a.weights:
        np.testing.assert_array_equal(a.weights[k], b.weights[k])
    assert a.train_accuracy > 0.9


def test_split_is_stratified_and_disjoint():
    x = np.arange(90, dtype=np.float32)[:, None]
    y = np.repeat(np.arange(3), 30)
    xa, ya, xb, yb = augment.split(x, y)
    assert len(xb) == 30 and sorted(np.bincount(yb)) == [10, 10, 10]
    assert not set(xa[:, 0]) & set(xb[:, 0]) and len(xa) + len(xb) == 90


def test_placement_costs_are_the_compiled_models(adaptive):
    """The search predicts each exit's cost from split costs; the model compiled from the chosen
    placement has those costs in the simulator, but for kernels inlined in one program and not
    the other (adaptc.augment.HeadCosts)."""
    chosen = adaptive.augmentation["search"]["chosen"]
    assert chosen["heads"], "no exit was chosen"
    sim = adaptc.simulate(adaptive, target="cortex-m4")
    np.testing.assert_allclose([e.cycles for e in sim.exits], chosen["exit_costs"], rtol=0.005)
    assert len(adaptive.levels) == len(chosen["heads"]) + 1
    front = adaptive.report(memory=False)["exit_search"]["pareto"]
    assert [p["expected_cost"] for p in front] == sorted(p["expected_cost"] for p in front)
    assert [p["accuracy"] for p in front] == sorted(p["accuracy"] for p in front)


def test_c_is_bit_exact_with_relax_at_every_level(adaptive):
    xs = adaptive.quantize_input(X_TEST[225:265])
    for level in range(len(adaptive.levels)):
        for x in xs:
            r, ref = adaptive.run(x[None], level=level), adaptive.reference(x[None], level=level)
            assert (r.exit, r.label, r.confidence) == (ref.exit, ref.label, ref.confidence)
            np.testing.assert_array_equal(r.logits, ref.logits)


@needs_arm
def test_emulated_m4_equals_host_at_every_level(adaptive):
    xs = adaptive.quantize_input(X_TEST[225:233])
    batch = adaptive.run_batch_on_target(xs, levels=list(range(len(adaptive.levels))))
    for li, level in enumerate(range(len(adaptive.levels))):
        for k, x in enumerate(xs):
            h = adaptive.run(x[None], level=level)
            assert (batch.exit[li][k], batch.label[li][k]) == (h.exit, h.label)


def test_export_writes_the_multi_exit_onnx(adaptive, tmp_path):
    adaptive.export(tmp_path)
    written = onnx.load(tmp_path / f"{adaptive.prefix}_exits.onnx")
    assert len(written.graph.output) == len(adaptive.levels)
    # the original logits are unchanged, the heads are the exits the C gates
    final = ort_outputs(written, X_TEST[:5], [written.graph.output[-1].name])[0]
    np.testing.assert_array_equal(final, ort_outputs(onnx.load(MODEL), X_TEST[:5],
                                                     [onnx.load(MODEL).graph.output[0].name])[0])


def test_search_on_ray_gives_the_same_placement(adaptive):
    ray = pytest.importorskip("ray")
    stats = adaptive.augmentation["statistics"]
    args = (stats["conf"], stats["correct"], stats["costs"], 2, 0.01, 0.9)
    local_best, local = augment.search(*args)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        remote_best, remote = augment.search(*args, executor="ray")
    finally:
        ray.shutdown()
    assert remote_best == local_best
    assert remote == local
    chosen = adaptive.augmentation["search"]["chosen"]["heads"]
    assert [{"candidate": c, "kind": k} for c, k in local_best.heads] == chosen


def test_bad_inputs(tmp_path):
    fc = numpy_helper.from_array(np.ones((4, 10), np.float32), "fc")
    linear = helper.make_model(helper.make_graph(
        [helper.make_node("MatMul", ["x", "fc"], ["y"])], "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], [fc]),
        opset_imports=[helper.make_opsetid("", 13)])
    with pytest.raises(InputError, match="no block boundary"):
        augment.candidates(linear)
    with pytest.raises(InputError, match="one input and one output"):
        augment.candidates(onnx.load(D.path("digits_exits.onnx")))
    with pytest.raises(InputError, match="labelled data"):
        adaptc.add_exits(MODEL, data=X[:50])
    with pytest.raises(InputError, match="max_exits must be at least 1"):
        adaptc.add_exits(MODEL, data=(X[:50], Y[:50]), max_exits=0)
    with pytest.raises(InputError, match="head kinds"):
        adaptc.add_exits(MODEL, data=(X[:50], Y[:50]), kinds=("mlp",))
    with pytest.raises(InputError, match="takes an ONNX classifier"):
        adaptc.add_exits(D.path("kws_ref_model.tflite"), data=(X[:50], Y[:50]))


@needs_arm
@pytest.mark.parametrize("name", ["digits_cnn", "mnist1d_cnn"])
def test_bundled_models_run_cheaper_at_equal_accuracy(name):
    """The bundled single-exit models, exits added on their training split (heads on two
    thirds, thresholds on the stratified third they were not trained on), against the model
    compiled alone, over the whole test split on the emulated Cortex-M4: accuracy within 1
    point, mean executed instructions at least 2.5x lower."""
    x, y, xt, yt = D.mnist1d() if name.startswith("mnist1d") else D.digits()
    m = adaptc.add_exits(D.path(f"{name}.onnx"), data=(x, y), target="cortex-m4", progress=False)
    held = augment.split(x, y)[2]              # the third the thresholds and int8 ranges come from
    full = adaptc.compile(D.path(f"{name}.onnx"), target="cortex-m4", calibration=held)
    acc, instructions = accuracy_and_instructions(m, xt, yt)
    acc_full, instructions_full = accuracy_and_instructions(full, xt, yt)
    assert acc >= acc_full - 0.01, (acc, acc_full)
    ratio = instructions_full / instructions
    assert ratio >= 2.5, ratio
    print(f"{name}: accuracy {acc_full:.4f} -> {acc:.4f}, instructions {instructions_full:.0f} -> "
          f"{instructions:.0f} ({ratio:.2f}x)")


def test_report_md_has_the_pareto_front(adaptive, tmp_path):
    from adaptc.report import write_report

    md = write_report(adaptive, adaptc.simulate(adaptive, target="cortex-m4"), tmp_path / "rep").read_text()
    search = adaptive.augmentation["search"]
    assert "## Exit placement search" in md and "**(chosen)**" in md
    front = [line for line in md.splitlines() if line.startswith("| ") and line.endswith("x |")]
    assert len(front) == len(search["pareto"])
    import matplotlib.image

    assert matplotlib.image.imread(tmp_path / "rep" / "exit_search.png").ndim == 3


def test_cli_add_exits(tmp_path):
    from click.testing import CliRunner

    from adaptc.cli import main

    np.savez(tmp_path / "train.npz", x=X[:400], y=Y[:400])
    np.savez(tmp_path / "val.npz", x=X_TEST[:150], y=Y_TEST[:150])
    np.save(tmp_path / "x.npy", X[:10])
    runner = CliRunner()
    bad = runner.invoke(main, ["compile", str(MODEL), "--add-exits", "auto", "-o", str(tmp_path / "o")])
    assert bad.exit_code != 0 and "--add-exits needs --calibration" in bad.output
    bad = runner.invoke(main, ["compile", str(MODEL), "--add-exits", "auto", "--exits", "--calibration",
                               str(tmp_path / "train.npz"), "-o", str(tmp_path / "o")])
    assert bad.exit_code != 0 and "excludes --exits" in bad.output
    bad = runner.invoke(main, ["compile", str(MODEL), "--add-exits", "auto", "--calibration", str(tmp_path / "x.npy"),
                               "-o", str(tmp_path / "o")])
    assert bad.exit_code != 0 and "labelled data" in bad.output
    assert not (tmp_path / "o").exists()
    res = runner.invoke(main, ["compile", str(MODEL), "--add-exits", "auto", "--max-exits", "1", "--calibration",
                               str(tmp_path / "train.npz"), "--validation", str(tmp_path / "val.npz"),
                               "-o", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    assert "Pareto front" in res.output and "(chosen)" in res.output
    written = {p.name for p in (tmp_path / "out").iterdir()}
    assert {"digits_cnn.c", "digits_cnn.h", "digits_cnn_exits.onnx", "report.json"} <= written
