"""Exits attached to a trained single-exit model, after training (``adaptc.add_exits``).

Post-training augmentation in the manner of Sponner et al. (arXiv 2403.07957) and the
placement search of NASerEx, with the target's simulated cost in the objective:

1. **Candidates** (``candidates``): the points of an ONNX classifier's graph where a single
   activation is live (block boundaries: after a node, exactly one computed tensor is read
   later), of rank 2 to 4, neither the input nor the logits, not the output of a layout node
   (Flatten, Reshape, ...: the same point as its input) and not read only by a batch norm or an
   activation (the point after it is the candidate); at most ``MAX_CANDIDATES`` (8), evenly
   spaced, so that a MobileNet's 30-odd boundaries still give a search of hundreds of subsets.
2. **Features** (``features``): the frozen backbone's activations at every candidate on the
   training data, computed by TVM on llvm (the model with the candidates as extra outputs).
3. **Heads** (``HEAD_KINDS``), trained in numpy on those features (``train_head``):
   ``"gap"`` -- global average pooling + dense; ``"pool_conv"`` -- average pooling to at most
   2 (2-D: 2x2) positions per axis, a 1x1 convolution + ReLU, flatten + dense. Features are
   standardized while training; the standardization is folded into the first layer.
4. **Search** (``search``): the model with every head of one kind at every candidate is compiled
   for the target once per kind; per step the simulator's cycles split into backbone (what the
   final logits need), each head (what only it needs) and each gate. Any subset of candidates
   (at most ``max_exits``, one head kind per point) then costs, at exit k, the backbone up to
   its point plus every chosen head and gate up to it. Each subset's thresholds are calibrated
   (adaptc.exits.calibrate) on confidences of the quantized heads (exactly as the gates compute
   them) over a split of the data the heads were not trained on; the least expected cost within
   the accuracy budget wins. Subsets are evaluated through an executor (adaptc.executors).
5. **Result**: the chosen heads written into the ONNX model as extra outputs, shallow to deep,
   final logits last -- an ordinary multi-exit model (``AugmentedModel.onnx``), compiled with
   ``exits=True`` as any other.
"""
from __future__ import annotations

import itertools
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import InputError

HEAD_KINDS = ("gap", "pool_conv")
LAYOUT = {"Flatten", "Reshape", "Squeeze", "Unsqueeze", "Identity", "Dropout", "Transpose"}
# a candidate read only by one of these is not one: the point after it is (normalization and
# activation belong to the layer before)
PER_ELEMENT = {"Relu", "Clip", "LeakyRelu", "HardSwish", "HardSigmoid", "Sigmoid", "Tanh", "Elu", "PRelu",
               "BatchNormalization"}
MAX_CANDIDATES = 8          # evenly spread over the graph's boundaries: the search's subsets stay in hundreds
POOLED = 2                   # pool_conv: positions per spatial axis after pooling
HIDDEN = 16                  # pool_conv: channels of the 1x1 convolution (at most the input's)


@dataclass
class Candidate:
    """A point of the graph where one activation is live."""

    index: int                        # 0-based, shallow to deep
    tensor: str                       # the ONNX tensor name
    shape: tuple[int, ...]            # (1, C[, H[, W]])
    node: str                         # the node that produces it (name or op)


@dataclass
class Head:
    """A trained exit head: ``kind``, its candidate, the ONNX weights, its accuracy where trained."""

    kind: str
    candidate: Candidate
    weights: dict[str, np.ndarray]
    train_accuracy: float = 0.0


@dataclass
class Placement:
    """One subset of heads and its calibrated trade-off."""

    heads: tuple[tuple[int, str], ...]          # (candidate index, kind), shallow to deep
    expected_cost: float
    accuracy: float
    full_cost: float
    thresholds: list = field(default_factory=list)
    costs: list[float] = field(default_factory=list)     # of leaving at each exit, the final last

    @property
    def speedup(self) -> float:
        return self.full_cost / self.expected_cost if self.expected_cost else float("nan")


# ----------------------------------------------------------------------------- candidates


def _shapes(model) -> dict[str, tuple[int, ...]]:
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    shapes = {}
    for vi in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]:
        dims = vi.type.tensor_type.shape.dim
        if all(d.HasField("dim_value") for d in dims):
            shapes[vi.name] = tuple(int(d.dim_value) for d in dims)
    return shapes


def candidates(model, path: str = "<model>", limit: int = MAX_CANDIDATES) -> list[Candidate]:
    """The exit candidates of a single-input, single-output ONNX classifier, shallow to deep: at
    most ``limit``, evenly spaced among the block boundaries when there are more."""
    graph = model.graph
    initializers = {t.name for t in graph.initializer}
    inputs = [i.name for i in graph.input if i.name not in initializers]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise InputError(f"{path}: add_exits takes a model with one input and one output (a classifier); "
                         f"it has {len(inputs)} input(s) and {len(graph.output)} output(s)")
    shapes = _shapes(model)
    out = graph.output[0].name
    if len(shapes.get(out, ())) != 2:
        raise InputError(f"{path}: the output {out!r} is not classifier logits [1, classes] "
                         f"(shape {shapes.get(out)})")
    consumers: dict[str, list[int]] = {}
    for i, node in enumerate(graph.node):
        for name in node.input:
            consumers.setdefault(name, []).append(i)
    last_use = {name: max(users) for name, users in consumers.items()}
    live: set[str] = set(inputs)
    found = []
    for i, node in enumerate(graph.node):
        live |= {o for o in node.output if o}
        live = {t for t in live if last_use.get(t, -1) > i or t == out}
        if len(live) != 1:
            continue
        (tensor,) = live
        shape = shapes.get(tensor)
        readers = consumers.get(tensor, [])
        if (tensor in (out, *inputs) or shape is None or not 2 <= len(shape) <= 4 or shape[0] != 1
                or node.op_type in LAYOUT
                or (len(readers) == 1 and graph.node[readers[0]].op_type in PER_ELEMENT)):
            continue
        if len(shape) == 2 and readers and graph.node[readers[-1]].output[0] == out:
            continue                      # the features the final classifier reads: no cheaper exit
        found.append((tensor, shape, node.name or node.op_type))
    if len(found) > limit:
        found = [found[int(round(i))] for i in np.linspace(0, len(found) - 1, limit)]
    found = [Candidate(i, *f) for i, f in enumerate(found)]
    if not found:
        raise InputError(f"{path}: no point of the graph has a single live activation before the classifier "
                         "(no block boundary to attach an exit to)")
    return found


# ----------------------------------------------------------------------------- features


def with_outputs(model, tensors: list[str]):
    """A copy of ``model`` that also returns ``tensors`` (before its own output)."""
    import onnx

    m = onnx.ModelProto()
    m.CopyFrom(model)
    final = list(m.graph.output)
    del m.graph.output[:]
    shapes = _shapes(model)
    for t in tensors:
        m.graph.output.append(onnx.helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, list(shapes[t])))
    m.graph.output.extend(final)
    return m


def _save(model, directory: str, name: str) -> Path:
    import onnx

    path = Path(directory) / name
    onnx.save(model, path)
    return path


def features(model, cands: list[Candidate], x: np.ndarray, progress=None) -> list[np.ndarray]:
    """Each candidate's activation for every sample of ``x`` (float, the model's input
    shape per sample): arrays (samples, C, *spatial), from TVM's llvm build of the float model."""
    from . import loader, tvm_compat

    with tempfile.TemporaryDirectory(prefix="adaptc-") as d:
        loaded = loader.load(_save(with_outputs(model, [c.tensor for c in cands]), d, "features.onnx"))
    vm = tvm_compat.build_llvm(loaded.mod)
    shape = tuple(loaded.info.inputs[0].shape)
    out: list[list[np.ndarray]] = [[] for _ in cands]
    for s in x:
        for acts, a in zip(out, tvm_compat.run_vm(vm, np.asarray(s, np.float32).reshape(shape))):
            acts.append(a[0])
        if progress is not None:
            progress()
    return [np.stack(a) for a in out]


# ----------------------------------------------------------------------------- heads


def _pool_size(shape: tuple[int, ...]) -> tuple[int, ...]:
    """pool_conv's pooling window per spatial axis: ``dim // POOLED`` (at least 1)."""
    return tuple(max(1, d // POOLED) for d in shape[2:])


def _pooled(acts: np.ndarray, kind: str) -> np.ndarray:
    """The head's input after its pooling: (samples, positions, channels)."""
    if acts.ndim == 2:
        return acts[:, None, :]
    if kind == "gap":
        return acts.reshape(*acts.shape[:2], -1).mean(axis=-1)[:, None, :]
    k = _pool_size(acts.shape)
    spatial = acts.shape[2:]
    keep = tuple(slice(0, (d // w) * w) for d, w in zip(spatial, k))
    a = acts[(slice(None), slice(None), *keep)]
    split = []
    for d, w in zip(a.shape[2:], k):
        split += [d // w, w]
    a = a.reshape(*a.shape[:2], *split)
    a = a.mean(axis=tuple(3 + 2 * i for i in range(len(k))))           # (N, C, p1[, p2])
    return a.reshape(*a.shape[:2], -1).transpose(0, 2, 1)


class _Adam:
    def __init__(self, params: list[np.ndarray], lr: float):
        self.params, self.lr, self.t = params, lr, 0
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]

    def step(self, grads):
        self.t += 1
        for p, g, m, v in zip(self.params, grads, self.m, self.v):
            m *= 0.9
            m += 0.1 * g
            v *= 0.999
            v += 0.001 * g * g
            p -= self.lr * (m / (1 - 0.9 ** self.t)) / (np.sqrt(v / (1 - 0.999 ** self.t)) + 1e-8)


def _softmax_grad(logits: np.ndarray, y: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(y)), y] -= 1
    return p / len(y)


def train_head(acts: np.ndarray, y: np.ndarray, kind: str, classes: int, cand: Candidate,
               epochs: int = 120, seed: int = 0) -> Head:
    """Train a head of ``kind`` on a candidate's activations (samples, C, *spatial) and labels;
    deterministic for a seed. Returns its ONNX weights (standardization folded in)."""
    if kind not in HEAD_KINDS:
        raise InputError(f"head kind {kind!r}: choose from {', '.join(HEAD_KINDS)}")
    rng = np.random.default_rng(seed)
    p = _pooled(acts.astype(np.float64), kind)                         # (N, S, C)
    n, s, c = p.shape
    mu = p.mean(axis=(0, 1))
    sd = p.std(axis=(0, 1)) + 1e-6
    z = (p - mu) / sd
    hidden = min(HIDDEN, c) if kind == "pool_conv" else 0
    if hidden:
        w1 = rng.standard_normal((c, hidden)) * np.sqrt(2.0 / c)
        b1 = np.zeros(hidden)
        w2 = rng.standard_normal((s * hidden, classes)) * np.sqrt(1.0 / (s * hidden))
        params = [w1, b1, w2, np.zeros(classes)]
    else:
        params = [rng.standard_normal((s * c, classes)) * np.sqrt(1.0 / (s * c)), np.zeros(classes)]
    opt = _Adam(params, 0.01)
    decay = 1e-4
    batch = 64
    for _ in range(epochs):
        order = rng.permutation(n)
        for b in range(0, n, batch):
            idx = order[b:b + batch]
            zb, yb = z[idx], y[idx]
            if hidden:
                w1, b1, w2, b2 = params
                h = np.maximum(zb @ w1 + b1, 0)                          # (B, S, hidden)
                g = _softmax_grad(h.reshape(len(idx), -1) @ w2 + b2, yb)
                gh = (g @ w2.T).reshape(h.shape) * (h > 0)
                grads = [np.einsum("bsc,bsh->ch", zb, gh) + decay * w1, gh.sum(axis=(0, 1)),
                         h.reshape(len(idx), -1).T @ g + decay * w2, g.sum(axis=0)]
            else:
                w, b_ = params
                g = _softmax_grad(zb.reshape(len(idx), -1) @ w + b_, yb)
                grads = [zb.reshape(len(idx), -1).T @ g + decay * w, g.sum(axis=0)]
            opt.step(grads)
    # fold the standardization into the first layer: (p - mu) / sd @ W = p @ (W / sd) - mu / sd @ W
    if hidden:
        w1, b1, w2, b2 = params
        first = w1 / sd[:, None]
        weights = {"w1": first, "b1": b1 - (mu / sd) @ w1, "w2": w2, "b2": b2}
        logits = np.maximum(p @ weights["w1"] + weights["b1"], 0).reshape(n, -1) @ w2 + b2
    else:
        w, b_ = params
        ws = w.reshape(s, c, classes) / sd[None, :, None]
        weights = {"w": ws.reshape(s * c, classes), "b": b_ - np.einsum("c,scm->m", mu / sd, w.reshape(s, c, classes))}
        logits = p.reshape(n, -1) @ weights["w"] + weights["b"]
    weights = {k: v.astype(np.float32) for k, v in weights.items()}
    return Head(kind, cand, weights, float(np.mean(logits.argmax(axis=1) == y)))


def head_logits(head: Head, acts: np.ndarray) -> np.ndarray:
    """The head's float logits on activations (samples, C, *spatial): what its ONNX nodes compute."""
    p = _pooled(acts.astype(np.float64), head.kind)
    w = head.weights
    if "w1" in w:
        return np.maximum(p @ w["w1"] + w["b1"], 0).reshape(len(p), -1) @ w["w2"] + w["b2"]
    return p.reshape(len(p), -1) @ w["w"] + w["b"]


# ----------------------------------------------------------------------------- the augmented model


def attach(model, heads: list[Head]):
    """``model`` with ``heads`` as extra outputs ``adaptc_exit0_logits``, ... (shallow to deep),
    the original logits last; the heads' nodes and weights are named ``adaptc_exit<i>_*``."""
    import onnx
    from onnx import helper, numpy_helper

    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    final = list(g.output)
    del g.output[:]
    classes = _shapes(model)[final[0].name][1]
    for i, head in enumerate(sorted(heads, key=lambda h: h.candidate.index)):
        pre = f"adaptc_exit{i}_"
        nodes = []

        def add(op, inputs, out, weights=(), **attrs):
            names = []
            for key, value in weights:
                g.initializer.append(numpy_helper.from_array(np.asarray(value, np.float32), pre + key))
                names.append(pre + key)
            nodes.append(helper.make_node(op, [*inputs, *names], [pre + out], name=pre + out, **attrs))
            return pre + out

        w = head.weights
        x = head.candidate.tensor
        spatial = len(head.candidate.shape) - 2
        if spatial and head.kind == "gap":
            x = add("Flatten", [add("GlobalAveragePool", [x], "pool")], "flat")
        elif spatial:                 # pool_conv: the 1x1 convolution is w1 (C, hidden)
            k = list(_pool_size(head.candidate.shape))
            x = add("AveragePool", [x], "pool", kernel_shape=k, strides=k)
            conv = w["w1"].T.reshape(*w["w1"].T.shape, *[1] * spatial)
            x = add("Conv", [x], "conv", [("conv_w", conv), ("conv_b", w["b1"])], kernel_shape=[1] * spatial)
            x = add("Relu", [x], "relu")
            x = add("Flatten", [x], "flat")
        elif head.kind == "pool_conv":   # on (1, F): dense, ReLU
            x = add("Relu", [add("Gemm", [x], "hidden", [("w1", w["w1"]), ("b1", w["b1"])])], "relu")
        add("Gemm", [x], "logits", [("w", _dense_weights(head)), ("b", w["b2"] if "b2" in w else w["b"])])
        g.node.extend(nodes)
        g.output.append(helper.make_tensor_value_info(pre + "logits", onnx.TensorProto.FLOAT, [1, classes]))
    g.output.extend(final)
    _topological(g)
    onnx.checker.check_model(m)
    return m


def _dense_weights(head: Head) -> np.ndarray:
    """The final dense layer's weights in ONNX's order. pool_conv trained on (positions,
    channels) flattened; ONNX's Flatten of N C [H W] gives (channels, positions)."""
    w = head.weights
    if "w2" not in w:
        return w["w"]
    if len(head.candidate.shape) == 2:
        return w["w2"]
    hidden = w["w1"].shape[1]
    positions = w["w2"].shape[0] // hidden
    return w["w2"].reshape(positions, hidden, -1).transpose(1, 0, 2).reshape(positions * hidden, -1)


def _topological(graph) -> None:
    """Reorder ``graph.node`` so each head follows the node producing its input (ONNX wants
    nodes in topological order; heads were appended at the end)."""
    produced_at = {}
    order = list(graph.node)
    backbone = [n for n in order if not n.name.startswith("adaptc_exit")]
    heads = [n for n in order if n.name.startswith("adaptc_exit")]
    for i, n in enumerate(backbone):
        for o in n.output:
            produced_at[o] = i
    placed: dict[int, list] = {}
    for n in heads:
        anchor = max((produced_at[t] for t in n.input if t in produced_at), default=-1)
        placed.setdefault(anchor, []).append(n)
        for o in n.output:
            produced_at[o] = anchor
    result = placed.get(-1, [])
    for i, n in enumerate(backbone):
        result.append(n)
        result.extend(placed.get(i, []))
    del graph.node[:]
    graph.node.extend(result)


def subsets(n_candidates: int, max_exits: int, kinds=HEAD_KINDS):
    """Every choice of at most ``max_exits`` candidates (shallow to deep) with a head kind each."""
    for size in range(1, max_exits + 1):
        for points in itertools.combinations(range(n_candidates), size):
            for ks in itertools.product(kinds, repeat=size):
                yield tuple(zip(points, ks))


# ----------------------------------------------------------------------------- the search


@dataclass
class HeadCosts:
    """The simulated cost of a model with a head of one kind at every candidate, split per step
    into what every exit runs (``base``: the backbone up to candidate i, ``backbone[i]``; the
    whole backbone, ``full``), what only head i runs with its gate (``head[i]``), and the final
    exit's gate (``final_gate``). The costs of the model compiled from a subset differ from the
    sum by what depends on the whole program (a kernel only one step calls is inlined, cheaper):
    within a fraction of a percent, for ranking placements; its own thresholds are calibrated on
    its own costs."""

    backbone: list[float]
    full: float
    head: list[float]
    final_gate: float
    leave: list[float]          # leaving at exit i: its gate's cost when it fires, less when it does not


def split_costs(m, tgt) -> HeadCosts:
    """``HeadCosts`` of a model compiled with exits (every candidate's head, gates never firing)."""
    from .sim import estimate

    sim = estimate(m.scheduled, tgt)
    unit = tgt.capabilities.cost_unit
    cost = {st["step"]: float(st[unit]) for st in sim.steps}
    prog = m.program
    producer = {st.output: st.index for st in prog.steps}

    def closure(tensor: int) -> set[int]:
        seen: set[int] = set()
        todo = [tensor]
        while todo:
            step = producer.get(todo.pop())
            if step is not None and step not in seen:
                seen.add(step)
                todo.extend(prog.steps[step].inputs)
        return seen

    backbone = closure(prog.exits[-1].head)
    gates = {e.gate for e in prog.exits}
    heads = [closure(e.head) for e in prog.exits[:-1]]
    rest = sum(c for st, c in cost.items() if st not in backbone and st not in gates
               and not any(st in h for h in heads))
    leave = [float(tgt.cost(m.scheduled, i)[e.gate].cost) - cost[e.gate] for i, e in enumerate(prog.exits[:-1])]
    return HeadCosts(backbone=[rest + sum(cost[st] for st in h & backbone) for h in heads],
                     full=rest + sum(cost[st] for st in backbone),
                     head=[sum(cost[st] for st in h - backbone) + cost[e.gate] for h, e in zip(heads, prog.exits)],
                     final_gate=cost[prog.exits[-1].gate], leave=leave)


def placement_costs(choice, costs: dict[str, HeadCosts]) -> list[float]:
    """Cumulative cost of leaving at each exit of ``choice`` ((candidate, kind), shallow to
    deep), the final exit last."""
    out, heads = [], 0.0
    for point, kind in choice:
        heads += costs[kind].head[point]
        out.append(costs[kind].backbone[point] + heads + costs[kind].leave[point])
    first = costs[choice[0][1]] if choice else next(iter(costs.values()))
    out.append(first.full + heads + first.final_gate)
    return out


def evaluate(job) -> Placement:
    """One placement's calibrated trade-off: ``job`` = (choice, conf, correct, costs, budget,
    budget_confidence),
    conf / correct the statistics of every head of each kind ({kind: [candidates, samples]})
    with the final head's last."""
    from .exits import calibrate

    choice, conf, correct, costs, budget, budget_confidence = job
    final_kind = next(iter(conf))
    c = np.stack([conf[k][p] for p, k in choice] + [conf[final_kind][-1]])
    ok = np.stack([correct[k][p] for p, k in choice] + [correct[final_kind][-1]])
    cost = placement_costs(choice, costs)
    cal = calibrate(c, ok, cost, budget, budget_confidence=budget_confidence)
    return Placement(tuple(choice), float(cal.expected_cost), float(cal.accuracy), float(cal.full_cost),
                     list(cal.thresholds), cost)


def search(conf, correct, costs: dict[str, HeadCosts], max_exits: int, accuracy_budget: float,
           budget_confidence: float, executor=None, progress: bool = False) -> tuple[Placement, list[Placement]]:
    """Every placement of at most ``max_exits`` heads (one kind per candidate) evaluated through
    ``executor`` (adaptc.executors): the cheapest within the budget -- no exit at all if none is
    cheaper -- and every placement evaluated (the first: no exit)."""
    from tqdm import tqdm

    from . import executors

    kinds = list(conf)
    n = len(next(iter(costs.values())).head)
    jobs = [(choice, conf, correct, costs, accuracy_budget, budget_confidence)
            for choice in [(), *subsets(n, max_exits, kinds)]]
    done = list(tqdm(executors.get(executor).map(evaluate, jobs), total=len(jobs), desc="placements",
                     unit="placement", disable=not progress))
    return min(done, key=lambda p: (p.expected_cost, len(p.heads), p.heads)), done


def pareto(placements: list[Placement]) -> list[Placement]:
    """The placements no other beats in both expected cost and accuracy, cheapest first."""
    front, best = [], -1.0
    for p in sorted(placements, key=lambda p: (p.expected_cost, -p.accuracy)):
        if p.accuracy > best:
            front.append(p)
            best = p.accuracy
    return front


# ----------------------------------------------------------------------------- add_exits


def split(x: np.ndarray, y: np.ndarray, share: float = 1 / 3, seed: int = 0):
    """A stratified split of (x, y): (x_train, y_train, x_held, y_held), ``share`` of every
    class held out (at least one sample of a class with two or more)."""
    rng = np.random.default_rng(seed)
    held = []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        k = int(round(len(idx) * share)) if len(idx) > 1 else 0
        held.extend(idx[:max(k, 1 if len(idx) > 1 else 0)])
    mask = np.zeros(len(y), bool)
    mask[np.asarray(held, int)] = True
    return x[~mask], y[~mask], x[mask], y[mask]


def add_exits(model, data, target: str = "cortex-m4", accuracy_budget: float = 0.01, max_exits: int = 3,
              validation=None, kinds=HEAD_KINDS, gate: str = "max_prob", executor=None, progress: bool = True,
              epochs: int = 120, name: str | None = None, budget_confidence: float = 0.9, **options):
    """Attach early exits to a trained single-exit ONNX classifier (module docstring) and
    compile the result for ``target`` with calibrated gates: the least expected simulated cost
    with accuracy within ``accuracy_budget`` of the model's own. ``data=(x, y)``: float inputs in
    the model's input layout and integer labels; the heads train on it, and -- unless
    ``validation=(x, y)`` is given -- a stratified third of it is held out for the thresholds
    (and the int8 quantization's ranges). ``max_exits``: the most exits added; ``kinds``: the
    head kinds tried (HEAD_KINDS); ``executor``: evaluates placements (adaptc.executors: None
    in-process; "ray" or a Ray address); ``budget_confidence``: the accuracy budget must hold
    with this one-sided confidence on the held-out samples (adaptc.exits.calibrate), which keeps
    the search -- hundreds of placements, the luckiest of which would otherwise win -- honest on
    new data. Returns the CompiledModel of ``adaptc.compile(..., exits=True)`` with
    ``m.augmentation``: "onnx" (the multi-exit model's bytes, written by ``m.export`` as
    ``<prefix>_exits.onnx``), "search" (candidates, Pareto front, choice; report.json's
    "exit_search") and "statistics" (every head's confidences and correctness on the held-out
    samples and the split costs: ``search()`` again with another budget needs nothing else)."""
    import onnx
    from tqdm import tqdm

    from . import api, loader, targets
    from . import validation as checks

    path = Path(model)
    if path.suffix.lower() != ".onnx":
        raise InputError(f"{path}: add_exits takes an ONNX classifier (.onnx); got {path.suffix or 'no extension'}")
    if int(max_exits) < 1:
        raise InputError(f"max_exits must be at least 1, got {max_exits}")
    unknown = [k for k in kinds if k not in HEAD_KINDS]
    if unknown or not kinds:
        raise InputError(f"head kinds {unknown or '(none)'}: choose from {', '.join(HEAD_KINDS)}")
    tgt = targets.get(target)
    base = loader.load(path)
    proto = onnx.load(path)
    shape = tuple(base.info.inputs[0].shape)
    classes = api.classes(base.info)
    x, y = checks.calibration_data(data, shape, str(path), classes)
    if y is None:
        raise InputError(f"{path}: add_exits needs labelled data: data=(x, y)")
    if validation is None:
        x, y, xv, yv = split(x, y)
    else:
        xv, yv = checks.calibration_data(validation, shape, str(path), classes)
        if yv is None:
            raise InputError(f"{path}: validation needs labels: validation=(x, y)")
    cands = candidates(proto, str(path))

    bar = tqdm(total=len(x), desc="backbone features", unit="input", disable=not progress)
    acts = features(proto, cands, x, progress=bar.update)
    bar.close()
    heads = {k: [train_head(a, y, k, classes, c, epochs=epochs) for a, c in zip(acts, cands)]
             for k in tqdm(kinds, desc="training heads", unit="kind", disable=not progress)}

    conf, correct, costs = {}, {}, {}
    stem = name or path.stem
    with tempfile.TemporaryDirectory(prefix="adaptc-") as d:
        for k in tqdm(kinds, desc="costing heads", unit="kind", disable=not progress):
            m = _compile_every_head(proto, heads, k, d, stem, target=target, calibration=(xv, yv), gate=gate)
            scales = [e.get("scale") for e in m.exits["exits"]] if m.format == "int8" else None
            conf[k], correct[k] = api.head_statistics(m.heads_mod, m.io_quantization, xv, yv, gate, scales)
            costs[k] = split_costs(m, tgt)
        used = min(len(costs[k].head) for k in kinds)       # candidates every kind kept
        cands = cands[:used]
        heads = {k: heads[k][:used] for k in kinds}
        conf = {k: np.concatenate([conf[k][:used], conf[k][-1:]]) for k in kinds}
        correct = {k: np.concatenate([correct[k][:used], correct[k][-1:]]) for k in kinds}
        costs = {k: _first_heads(costs[k], used) for k in kinds}
        best, placements = search(conf, correct, costs, max_exits, accuracy_budget, budget_confidence, executor,
                                  progress)
        chosen = [heads[k][p] for p, k in best.heads]
        final = attach(proto, chosen) if chosen else proto
        out = _save(final, d, f"{stem}_exits.onnx")
        m = api.compile(out, target=target, calibration=(xv, yv), exits=bool(chosen) or None, gate=gate,
                        accuracy_budget=accuracy_budget, budget_confidence=budget_confidence, name=stem, **options)
    front = pareto(placements)
    record = {"candidates": [{"index": c.index, "tensor": c.tensor, "shape": list(c.shape), "after": c.node}
                             for c in cands],
              "kinds": list(kinds), "placements_evaluated": len(placements), "budget_confidence": budget_confidence,
              "samples": {"heads": int(len(y)), "thresholds": int(len(yv))},
              "head_train_accuracy": {k: [h.train_accuracy for h in heads[k]] for k in kinds},
              "cost_unit": f"{tgt.capabilities.cost_unit} ({tgt.name}, simulated)",
              "pareto": [_row(p) for p in front], "chosen": _row(best)}
    if not chosen:
        warnings.warn(f"{path.name}: no placement of exits lowers the expected cost within the accuracy budget "
                      f"({accuracy_budget}); the model is compiled without exits", stacklevel=2)
    m.augmentation = {"onnx": final.SerializeToString(), "search": record,
                      "statistics": {"conf": conf, "correct": correct, "costs": costs}}
    return m


def _compile_every_head(proto, heads: dict, kind: str, directory, stem: str, **options):
    """The model with a ``kind`` head at every candidate, gates never firing. A head the exit
    planner cannot order before the final classifier (adaptc.passes.insert_gates: it has fewer
    layers and weights than the rest of the network after it -- nothing left to save) is
    dropped, deepest first; ``heads[kind]`` keeps the ones compiled."""
    from . import api

    while True:
        every = _save(attach(proto, heads[kind]), directory, f"{stem}_{kind}.onnx")
        try:
            return api.compile(every, exits=True, thresholds=[1e30] * len(heads[kind]), name=stem, **options)
        except InputError as e:
            if "ordered shallow to deep" not in str(e) or len(heads[kind]) == 1:
                raise
            heads[kind] = heads[kind][:-1]


def _first_heads(costs: HeadCosts, n: int) -> HeadCosts:
    """``costs`` of the first ``n`` heads (the others' steps are the final exit's no more: the
    rest of the backbone is costed by ``full``, which does not depend on them)."""
    return HeadCosts(costs.backbone[:n], costs.full, costs.head[:n], costs.final_gate, costs.leave[:n])


def _row(p: Placement) -> dict:
    return {"heads": [{"candidate": c, "kind": k} for c, k in p.heads], "expected_cost": p.expected_cost,
            "accuracy": p.accuracy, "full_cost": p.full_cost, "speedup": p.speedup, "exit_costs": p.costs}
