"""Mixed precision: each layer's weight format under a flash budget, by measured sensitivity.

``search(loaded, calibration, labels, budget, target)``:

1. Sizes. The model is quantized once with int8 weights everywhere (power-of-two scales),
   lowered and scheduled for the target; for every conv2d (depthwise too) / transposed conv2d /
   dense layer / batched matmul by a constant and every candidate format (CANDIDATES) the
   target says how many flash bytes the layer would take -- weights, bias, requantization
   data -- and which decode tables it shares with other layers of its format
   (``target.constants``), so the budget is the one ``m.report["weight_bytes"]`` is held to;
   the other steps' constants are a fixed cost.
2. Sensitivity. For every layer and format, the float model with only that layer's weights on the
   format's grid (adaptc.ptq, error-correcting rounding) runs on the calibration samples; the
   cost is the mean KL divergence of its output from the float model's -- or, with labels, the
   increase of the cross-entropy -- so a layer the network barely notices goes low first.
3. Choice. A knapsack over layers (dynamic programming on bytes), for every set of shared tables,
   picks the formats with the least total cost that fit the budget. A budget below the smallest
   reachable size is refused with that size.

The result's ``table`` lists every layer: weights, the bytes and cost of each candidate, the
choice -- what ``adaptc compile --weight-budget`` prints.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from . import formats as F
from . import tvm_compat
from .errors import InputError
from .lower import lower
from .passes.quantize_int8 import WEIGHTED, calibrate_ranges, calibration_samples
from .passes.quantize_weights import CodedWeights
from .pipeline import pipeline
from .qops import composite_name
from .quantization import PoT

CANDIDATES = ("pot2", "pot3", "pot4", "pot5", "int8")
MAX_SAMPLES = 128            # calibration samples for the sensitivity runs


@dataclass
class Choice:
    config: PoT                 # the chosen formats, by layer index
    table: list[dict]           # per layer: index, kind, weights, bytes / cost per format, chosen
    budget: int
    fixed_bytes: int            # flash of everything but the weighted layers
    bytes: int                  # the choice's estimate (the compiled model's figure is exact)


def search(loaded, calibration: np.ndarray, labels, budget: int, target, progress: bool = True) -> Choice:
    """The formats per layer (module docstring) for ``target`` (a target object)."""

    passes, _, _ = pipeline(loaded, calibration, PoT(bits=4, layers={}))
    fused = tvm_compat.apply(passes[:2], loaded.mod)            # ToNHWC, FuseFloatOps
    samples = calibration_samples(calibration, fused, loaded.info.path)
    rng = np.random.default_rng(0)
    pick = rng.choice(len(samples), min(len(samples), MAX_SAMPLES), replace=False)
    samples = samples[np.sort(pick)]
    if labels is not None:
        labels = np.asarray(labels).reshape(-1)[np.sort(pick)]
    layers = _weighted_bindings(fused)
    if not layers:
        raise InputError(f"{loaded.info.name} has no conv2d, transposed conv2d, dense layer or batched "
                         "matmul by a constant to quantize")

    # 1. sizes, from the target's kernel builders on the int8 program
    int8 = PoT(bits=4, layers={i: "int8" for i in range(len(layers))})
    passes, _, _ = pipeline(loaded, calibration, int8)
    prog = lower(tvm_compat.apply(passes, loaded.mod), loaded.info.name, loaded.info.path)
    sizes, fixed, tables, shared = _sizes(prog, target, len(layers))

    # 2. sensitivity, one run of the float model per layer and format
    bindings = tvm_compat.bindings(fused["main"])
    keep = {_input_index(fused, bindings[i]) for i in layers}
    _, inputs = calibrate_ranges(fused, samples, keep)
    # every layer's weights and bias lifted to parameters of main: one build runs every trial
    slots = [(bi, k) for bi in layers for k in range(1, len(bindings[bi].value.args))]
    lifted, floats = tvm_compat.lift_call_args(fused, slots)
    vm = tvm_compat.build_llvm(lifted)

    def outputs(changed: dict) -> np.ndarray:
        args = [changed.get(slot, v) for slot, v in zip(slots, floats)]
        return np.stack([tvm_compat.run_vm(vm, x, *args)[0].reshape(-1) for x in samples])

    reference = outputs({})
    base = _cost(reference, reference, labels)
    table = []
    bar = tqdm(total=len(layers) * len(CANDIDATES), desc="layer sensitivity", unit="run", disable=not progress)
    for li, bi in enumerate(layers):
        call = bindings[bi].value
        callee = fused[call.op]
        attrs = tvm_compat.attrs_dict(callee)
        w = tvm_compat.constant_value(call.args[1]).astype(np.float64)
        bias = tvm_compat.constant_value(call.args[2]).astype(np.float64) if len(call.args) > 2 else None
        depthwise = int(attrs.get("groups", 1)) > 1
        row = {"layer": li, "kind": "depthwise_conv2d" if depthwise else str(attrs["Composite"])[7:-4],
               "weights": int(w.size), "formats": {}}
        x_in = inputs[_input_index(fused, bindings[bi])]
        if str(attrs["Composite"]) == "adaptc.batch_matmul_f32":      # [samples, *activation shape]
            x_in = x_in.reshape(-1, *tvm_compat.shape_of(call.args[0].ty))
        for name in CANDIDATES:
            wq, bq = _fake_quant(w, bias, attrs, x_in, F.get(name))
            changed = {(bi, 1): wq.astype(np.float32)}
            if bias is not None:
                changed[(bi, 2)] = bq.astype(np.float32)
            cost = _cost(outputs(changed), reference, labels) - base
            row["formats"][name] = {"bytes": sizes[li][name], "cost": max(float(cost), 0.0)}
            bar.update()
        table.append(row)
    bar.close()

    # 3. the knapsack, for every set of shared decode tables the formats would bring along
    best = None
    for used in _subsets(sorted(shared)):
        allowed = [f for f in CANDIDATES if set(tables[f]) <= set(used)]
        base_bytes = fixed + sum(shared[k] for k in used)
        if not allowed:
            continue
        chosen = _knapsack(table, budget - base_bytes, allowed)
        if chosen is None:
            continue
        cost = sum(r["formats"][f]["cost"] for r, f in zip(table, chosen))
        total = base_bytes + sum(r["formats"][f]["bytes"] for r, f in zip(table, chosen))
        if best is None or (cost, total) < best[:2]:
            best = (cost, total, chosen)
    if best is None:
        smallest = min(fixed + sum(shared[k] for k in tables[f]) + sum(r["formats"][f]["bytes"] for r in table)
                       for f in CANDIDATES)
        raise InputError(f"weight budget {budget:,} bytes cannot be met: the smallest {loaded.info.name} can be on "
                         f"{target.name} is about {smallest:,} bytes (one format in every layer; ternary is the "
                         "smallest)")
    for row, name in zip(table, best[2]):
        row["chosen"] = name
    config = PoT(bits=4, layers={r["layer"]: r["chosen"] for r in table})
    return Choice(config, table, budget, fixed, best[1])


def _subsets(keys: list) -> list[tuple]:
    out = [()]
    for k in keys:
        out += [s + (k,) for s in out]
    return out


def _weighted_bindings(mod) -> list[int]:
    """Indices of main's bindings that call a weighted float composite (conv2d, transposed
    conv2d, dense, a batched matmul with a constant operand; QuantizeInt8's WEIGHTED), in layer
    order."""
    bindings = tvm_compat.bindings(mod["main"])
    return [i for i, b in enumerate(bindings) if composite_name(mod, b.value) in WEIGHTED
            and any(tvm_compat.is_constant(x) for x in b.value.args[1:])]   # a batched matmul: a constant operand


def _input_index(mod, binding) -> int:
    """Calibration index (quantize_int8.calibrate_ranges) of a layer's input."""
    func = mod["main"]
    bindings = tvm_compat.bindings(func)
    x = binding.value.args[0]
    if x.same_as(func.params[0]):
        return 0
    return next(i + 1 for i, b in enumerate(bindings) if b.var.same_as(x))


def _fake_quant(w, bias, attrs, inputs, fmt):
    """The layer's float weights (and corrected bias) after quantizing to ``fmt`` -- what
    QuantizeWeights would give it, as float32 values in the float model's layout."""
    scheme = CodedWeights(fmt.name)
    kind = str(attrs["Composite"])
    a = {k: (v.value if hasattr(v, "value") else v) for k, v in attrs.items()}
    for key in ("strides", "dilation", "padding", "output_padding"):
        if key in a:
            a[key] = [int(v) for v in a[key]]
    if kind == "adaptc.batch_matmul_f32":                      # one scale for the tensor
        w_q, scale, b = scheme.weights(0, kind, w, None, a, inputs, None)
        return w_q.astype(np.float64) * float(scale), b
    if kind == "adaptc.transpose_conv2d_f32":                  # IOHW: O, or I when depthwise
        axis = 0 if int(a["groups"]) > 1 else 1
    else:
        axis = w.ndim - 1 if kind == "adaptc.dense_f32" or str(a.get("kernel_layout")) == "HWIO" else 2
    w_q, scale, b = scheme.weights(0, kind, w, axis, a, inputs, None if bias is None else bias.copy())
    shape = [1] * w.ndim
    shape[axis] = -1
    return w_q.astype(np.float64) * scale.astype(np.float64).reshape(shape), b


def _cost(out, ref, labels) -> float:
    """Mean cross-entropy against the labels, or mean KL divergence from the float outputs (both
    through a softmax unless the outputs already are probabilities)."""
    def probs(z):
        if np.all(z >= 0) and np.allclose(z.sum(axis=1), 1.0, atol=1e-3):
            return np.clip(z, 1e-12, 1.0)
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    p = probs(out.astype(np.float64))
    if labels is not None:
        return float(-np.mean(np.log(p[np.arange(len(p)), labels])))
    q = probs(ref.astype(np.float64))
    return float(np.mean(np.sum(q * (np.log(q) - np.log(p)), axis=1)))


def _sizes(prog, target, n_layers: int) -> tuple[list[dict], int, dict, dict]:
    """Flash bytes of each weighted layer per candidate format (the target's constants for a
    copy of the layer whose weights span the format's grid), of all other steps, the shared
    tables each format's kernels use ({format: [key]}) and their bytes ({key: bytes})."""
    scheduled = target.schedule(prog)
    weighted = [s for s in prog.steps if s.op in ("adaptc.qconv2d", "adaptc.qdense", "adaptc.qtranspose_conv2d")
                or s.op == "adaptc.qbatch_matmul" and s.consts]
    if len(weighted) != n_layers:
        raise InputError(f"{n_layers} weighted layers in the float model, {len(weighted)} after quantization")
    sizes, fixed = [], sum(s.flash_bytes for s in scheduled.steps if s.step not in weighted)
    tables: dict = {name: set() for name in CANDIDATES}
    shared: dict = {}
    for step in weighted:
        row = {}
        for name in CANDIDATES:
            probe = copy.copy(step)
            key = "weights" if "weights" in step.consts else next(iter(step.consts))   # a matmul's lhs / rhs
            probe.consts = dict(step.consts, **{key: _spanning(step.consts[key], F.get(name))})
            probe.attrs = dict(step.attrs, weight_format=name)
            row[name], tables_of = target.constants(probe, prog)
            for key, nbytes in tables_of.items():
                tables[name].add(key)
                shared[key] = nbytes
        sizes.append(row)
    return sizes, fixed, {k: sorted(v) for k, v in tables.items()}, shared


def _spanning(w: np.ndarray, fmt: F.Format) -> np.ndarray:
    """An array of w's shape whose values are exactly in ``fmt`` (its grid repeated)."""
    grid = fmt.grid if fmt.kind == "pot" else np.array([fmt.max_value, -3, 1, 0])
    return np.resize(grid, w.shape).astype(np.int16 if fmt.max_value > 127 else np.int8)


def _knapsack(table: list[dict], capacity: int, allowed=CANDIDATES) -> list[str] | None:
    """Formats per layer (from ``allowed``) with the least total cost whose bytes sum to at most
    ``capacity`` (dynamic programming over the bytes, rounded up to units of capacity / 20000);
    None if nothing fits."""
    if capacity < 0:
        return None
    unit = max(1, capacity // 20000)                       # coarsen huge budgets; sizes round up
    cap = capacity // unit
    best = np.full(cap + 1, np.inf)
    best[0] = 0.0
    picks = []
    for row in table:
        new = np.full(cap + 1, np.inf)
        arg = np.full(cap + 1, -1, dtype=np.int64)
        for k, name in enumerate(CANDIDATES):
            if name not in allowed:
                continue
            size = -(-row["formats"][name]["bytes"] // unit)
            cost = row["formats"][name]["cost"]
            if size > cap:
                continue
            cand = np.full(cap + 1, np.inf)
            cand[size:] = best[:cap + 1 - size] + cost
            better = cand < new
            new[better], arg[better] = cand[better], k
        picks.append(arg)
        best = new
    b = int(np.argmin(best))
    if not np.isfinite(best[b]):
        return None
    chosen = []
    for row, arg in zip(reversed(table), reversed(picks)):
        k = int(arg[b])
        chosen.append(CANDIDATES[k])
        b -= -(-row["formats"][CANDIDATES[k]]["bytes"] // unit)
    return chosen[::-1]
