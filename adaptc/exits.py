"""Early exits: what a gated model returns, and the calibration of its gate thresholds.

``calibrate`` chooses one threshold per gate from labelled calibration data: the cheapest
expected cost per inference whose accuracy stays within ``accuracy_budget`` of the final
exit's. Inputs are what the un-gated model computes on the calibration set -- every head's
confidence (exactly as the gates compute it: adaptc.gates) and whether its class is right -- and
the cost of leaving at each exit (instructions or cycles of the steps up to and including its
gate). A sample leaves at the first exit whose confidence reaches its threshold; thresholds are
searched over the confidences that occur (plus "never"): exhaustively for up to a few thousand
combinations, otherwise by coordinate descent from "never exit early" (which always meets the
budget). The result lists, per exit, the threshold, the share of samples leaving there, their
accuracy and cost, and the trade-off curve (expected cost vs accuracy over the candidates).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np


@dataclass
class ExitResult:
    """One inference of a model with exits: class, exit taken (0-based), confidence, logits."""

    label: int
    exit: int
    confidence: float | int
    logits: np.ndarray


@dataclass
class Controller:
    """Compile-time settings of the C controller (``<prefix>_controller``, templates/model.h.j2):
    the level a stream starts at; ``target`` -- raise the level while the confidence at the
    level's exit is below it; ``comfort`` -- an input at least this confident (and not raised)
    counts as calm; ``patience`` -- calm inputs in a row before the level is lowered.
    Confidences in the gates' units: integer steps for int8 heads (adaptc.gates), real values
    for float heads."""

    target: float | int
    comfort: float | int
    patience: int = 8
    start: int | None = None         # default: the top level

    @classmethod
    def default(cls, thresholds, criterion: str, int8: bool) -> Controller:
        """``target``: the most lenient gate threshold (at a capped level, an answer the most
        lenient gate would accept is good enough); ``comfort``: halfway from the strictest
        threshold to the most confident value the criterion takes (twice the strictest for the
        unbounded margin). Gates that never fire are left out; with none left, the controller
        never lowers the level."""
        from .gates import ceiling

        never = 2**31 - 1 if int8 else np.inf
        finite = [t for t in thresholds if t is not None and abs(t) < never]
        if not finite:
            return cls(never, never)
        top = ceiling(criterion, int8)
        strict = max(finite)
        comfort = 2 * strict if top is None else (strict + top) / 2
        return cls(min(finite), int(np.ceil(comfort)) if int8 else float(comfort))


@dataclass
class StreamRun:
    """A stream of inputs under the controller: each input's result and the level it started at
    (``levels``) and ended at after throttling up (``raised``)."""

    results: list[ExitResult]
    levels: np.ndarray
    raised: np.ndarray

    @property
    def labels(self) -> np.ndarray:
        return np.array([r.label for r in self.results])

    @property
    def exits(self) -> np.ndarray:
        return np.array([r.exit for r in self.results])


@dataclass
class Calibration:
    thresholds: list                 # per gate, in the gates' integer (int8) or real (float) units
    exits: list[dict]                # per exit: share, accuracy, cost of the calibration samples
    accuracy: float                  # with these thresholds
    final_accuracy: float            # every sample through the final exit
    expected_cost: float
    full_cost: float
    curve: list[dict]                # Pareto front: expected cost vs accuracy


def assign(conf: np.ndarray, thresholds) -> np.ndarray:
    """Exit taken per sample: the first i with conf[i] >= thresholds[i] (else the last)."""
    n_exits, n = conf.shape
    taken = np.full(n, n_exits - 1)
    for i in range(n_exits - 2, -1, -1):
        taken = np.where(conf[i] >= thresholds[i], i, taken)
    return taken


def _evaluate(conf, correct, cost, thresholds):
    taken = assign(conf, thresholds)
    rows = np.arange(conf.shape[1])
    return float(correct[taken, rows].mean()), float(cost[taken].mean()), taken


def calibrate(conf: np.ndarray, correct: np.ndarray, cost, accuracy_budget: float = 0.01,
              candidates: int = 48, budget_confidence: float = 0.5) -> Calibration:
    """Thresholds for ``conf`` [exits, samples] (confidences of each head), ``correct``
    [exits, samples] (bool) and ``cost`` [exits] (cumulative cost of leaving at each exit).
    ``budget_confidence`` > 0.5: the accuracy lost against the final exit must stay within the budget
    with that one-sided confidence, not only on average -- the loss's mean over the samples plus
    z (the normal quantile of ``budget_confidence``) times its standard error (samples paired: each
    sample's final-exit correctness minus its gated one), so that thresholds chosen on a small
    calibration set hold on new data."""
    conf = np.asarray(conf)
    correct = np.asarray(correct, bool)
    cost = np.asarray(cost, np.float64)
    n_exits = conf.shape[0]
    never = np.inf if conf.dtype.kind == "f" else np.iinfo(np.int64).max
    final = float(correct[-1].mean())
    floor = final - accuracy_budget
    z = NormalDist().inv_cdf(budget_confidence) if budget_confidence > 0.5 else 0.0
    rows = np.arange(conf.shape[1])

    def margin(th) -> float:
        if not z:
            return 0.0
        d = correct[-1].astype(np.float64) - correct[assign(conf, th), rows]
        return z * float(d.std(ddof=1)) / np.sqrt(len(d)) if len(d) > 1 else 0.0
    options = []
    for i in range(n_exits - 1):
        values = np.unique(conf[i])
        if len(values) > candidates:
            values = np.unique(np.quantile(values, np.linspace(0, 1, candidates), method="nearest"))
        options.append(list(values) + [never])
    points = []

    def consider(th):
        acc, c, _ = _evaluate(conf, correct, cost, th)
        points.append((c, acc, tuple(th)))
        return acc, c

    best = [never] * (n_exits - 1)
    best_acc, best_cost = consider(best)
    if np.prod([len(o) for o in options]) <= 20000:
        for th in itertools.product(*options):
            acc, c = consider(list(th))
            if acc >= floor - 1e-12 and (c < best_cost or (c == best_cost and acc > best_acc)) \
                    and acc - margin(th) >= floor - 1e-12:
                best, best_acc, best_cost = list(th), acc, c
    else:
        for _ in range(4):
            changed = False
            for i in range(n_exits - 1):
                for v in options[i]:
                    th = best.copy()
                    th[i] = v
                    acc, c = consider(th)
                    if acc >= floor - 1e-12 and (c < best_cost or (c == best_cost and acc > best_acc)) \
                            and acc - margin(th) >= floor - 1e-12:
                        best, best_acc, best_cost, changed = th, acc, c, True
            if not changed:
                break
    acc, c, taken = _evaluate(conf, correct, cost, best)
    exits = []
    for i in range(n_exits):
        here = taken == i
        exits.append({"exit": i, "share": float(here.mean()),
                      "accuracy": float(correct[i, rows][here].mean()) if here.any() else None,
                      "accuracy_alone": float(correct[i].mean()), "cost": float(cost[i])})
    points.sort(key=lambda p: (p[0], -p[1]))
    curve, top = [], -1.0
    for c_, a_, th in points:              # Pareto front: cheapest first, accuracy rising
        if a_ > top + 1e-12:
            curve.append({"expected_cost": c_, "accuracy": a_, "thresholds": [_plain(t) for t in th]})
            top = a_
    return Calibration([_plain(t) for t in best], exits, acc, final, c, float(cost[-1]), curve)


def _plain(v):
    if isinstance(v, (np.floating, float)):
        return float(v)
    return int(v)
