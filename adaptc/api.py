"""Public API: ``adaptc.compile`` -> a ``CompiledModel`` of the target's class.

``compile`` reads as the design's data flow: load -> passes (adaptc.pipeline) -> [gates] ->
lower -> the target's schedule -> the target's build. The target comes from the registry
(adaptc.targets) and is only talked to through its protocol.
"""
from __future__ import annotations

import dataclasses
import time
import warnings
from pathlib import Path

import numpy as np

from . import gates, summary, targets, tvm_compat
from . import quantization as Q
from .errors import AdaptcError, InputError
from .exits import calibrate
from .loader import LoadedModel, ModelInfo, load, select_output, select_outputs
from .lower import lower
from .model import CompiledModel, io_quantization
from .passes.insert_gates import InsertGates, plan_exits
from .passes.quantize_int8 import samples_of_shape
from .pipeline import pipeline
from .program import Program
from .sim import estimate
from .validation import calibration_data

__all__ = ["compile", "compile_program", "CompiledModel"]

INT32_MAX = 2**31 - 1


def compile(model, target: str = targets.DEFAULT, calibration=None, name: str | None = None,
            kernels: str | None = None, output: int | None = None, quantize=None,
            weight_budget: int | None = None, exits=None, gate: str = "max_prob",
            thresholds=None, accuracy_budget: float = 0.01, budget_confidence: float = 0.5,
            controller: dict | None = None,
            arch: str | None = None, tune=None, input_shapes: dict | None = None,
            cascade: bool = False, width_levels: bool = False) -> CompiledModel:
    """Compile a model file (.tflite / .onnx) or a LoadedModel for ``target`` (adaptc.targets:
    a Cortex-M core -- C99 sources -- or ``"llvm"`` / ``"cuda"``: the same integer program in
    batched segments for a CPU or an NVIDIA GPU, where after each exit the samples still running
    are compacted and ``m.run(X)`` returns arrays ``label``, ``exit``, ``logits`` in input order).
    ``arch``: the CUDA architecture (default sm_90); ``tune``: an
    ``adaptc.targets.cuda.tuning.Tuning`` (or a dict of its fields) -- MetaSchedule schedules from
    (and, with trials, into) a records directory, the segments built for static batch sizes.

    int8 TFLite models keep their quantization and are bit-exact with TFLite Micro. Float models
    compile to float32, or -- given ``calibration`` (representative inputs, first axis = samples;
    or ``(x, y)`` with labels) -- to integer arithmetic by post-training quantization:
    ``quantize`` = "int8" (the default, TFLite's scheme), ``adaptc.Int4()``, ``adaptc.PoT(bits=b)``
    (power-of-two weights) or their names (adaptc.quantization); ``weight_budget`` (bytes) searches
    each layer's bit width to fit (mixed precision, adaptc.mixed). ``kernels``: restrict the kernel
    variants (e.g. ``"ref"`` for the portable reference kernels; default: the best the target has).
    ``input_shapes``: ``{input name: shape}`` for ONNX inputs of dynamic size (as ``adaptc.load``).
    A model whose weights alone exceed the flash of the target's board is refused right after
    loading, before any compile work (MemoryBudgetError; ``refuse_early``).
    ``output``: compile only this output of a multi-output model (default: every output -- the
    C entry point takes one buffer per output, ``m.run`` returns the list of them).

    ``exits=True`` (or a list of output indices): the outputs are exit heads, shallow to deep;
    each becomes a gate -- ``gate`` criterion (adaptc.gates: "max_prob", "margin", "entropy") >=
    its threshold -- and the build runs only as deep as each input needs (``m.run(x, level)``).
    ``thresholds`` (one per gate, in the criterion's real units) or, by default, calibrated on
    the labelled ``calibration=(x, y)``: the least expected cost on the target (adaptc.sim) with
    accuracy within ``accuracy_budget`` of the final exit's (adaptc.exits) -- on average over the
    calibration data, or with ``budget_confidence`` (e.g. 0.9) one-sided confidence;
    ``m.exits["calibration"]["speedup_simulated_cycles"]`` (``_seconds`` on llvm / cuda): the
    simulated cost of every calibration input leaving at the last exit over their expected
    simulated cost with the calibrated gates. ``controller``: the C
    stream controller's defaults, ``{"target", "comfort"}`` (real units of the criterion),
    ``"patience"``, ``"start"`` (level); unset keys: adaptc.exits.Controller.default.

    ``cascade=True``: ``model`` is a list of ONNX classifiers taking the same input, cheapest
    first (adaptc.cascade): compiled as one model whose exits are the members -- the first runs,
    its gate decides whether the next runs; ``result.exit`` is the member that answered;
    ``quantize=["pot4", "int8"]``: a weight format per member (power-of-two activation scales
    throughout when any member is power-of-two).

    ``width_levels=True``: ``model`` is a list of the models of one slimmable network at each
    width, narrowest first (adaptc.widths) -- each layer's weights a channel prefix of the
    widest's, its own biases, activation ranges and batch-norm statistics -- with exit heads:
    each width compiles as it would alone (``calibration``, ``exits``, ``thresholds`` ... apply
    to every width), then one build stores the weights once and runs any level (width, exit):
    ``m.levels``, ``m.run(x, level=L)`` with ``L = width * exits + exit``. InputError names the
    width, the layer and the output channel whose weights are not a prefix of the widest's. The
    controller's defaults there: start at level 0, raise while the confidence is below the
    median of every width's gate thresholds (``controller=`` overrides either).

    Calibration data is checked before any work (adaptc.validation): an InputError names a shape
    that is not the model input's, a non-numeric dtype, the first NaN or infinity
    (``calibration[3, 0, 12, 5] is nan``), labels that are not one integer class index per sample.
    """
    if width_levels:
        return _compile_widths(model, target=target, calibration=calibration, name=name, kernels=kernels,
                               quantize=quantize, gate=gate, thresholds=thresholds, accuracy_budget=accuracy_budget,
                               budget_confidence=budget_confidence, controller=controller, exits=exits,
                               output=output, weight_budget=weight_budget, cascade=cascade, arch=arch, tune=tune,
                               input_shapes=input_shapes)
    if cascade or isinstance(model, (list, tuple)):
        return _compile_cascade(model, cascade, target=target, calibration=calibration, name=name, kernels=kernels,
                                quantize=quantize, gate=gate, thresholds=thresholds, accuracy_budget=accuracy_budget,
                                budget_confidence=budget_confidence, controller=controller, arch=arch, tune=tune,
                                exits=exits, output=output, weight_budget=weight_budget)
    start = time.perf_counter()
    tgt = targets.get(target)
    build_options = {k: v for k, v in (("arch", arch), ("tune", tune)) if v is not None}
    if isinstance(model, LoadedModel) and input_shapes:
        raise InputError("input_shapes= applies to a model file; pass them to adaptc.load for a LoadedModel")
    if not isinstance(model, LoadedModel):      # before TVM reads the file: seconds, not minutes
        refuse_early(Path(model), tgt, calibration is not None, quantize, weight_budget,
                     _compiled_outputs(exits, output))
    loaded = model if isinstance(model, LoadedModel) else load(model, input_shapes=input_shapes)
    if exits:
        if output is not None:
            raise InputError("output= and exits= exclude each other: exits compile every head")
        if weight_budget is not None:
            raise InputError("weight_budget= with exits= is not supported yet; choose quantize= per layer")
        loaded = select_outputs(loaded, None if exits is True else list(exits))
    elif output is not None:
        loaded = select_output(loaded, output)
    labels = None
    if calibration is not None:       # checked here, once: shape, dtype, finite values, labels
        calibration, labels = calibration_data(calibration, tvm_compat.shape_of(loaded.mod["main"].params[0].ty),
                                               loaded.info.path, classes(loaded.info))
    quantize = Q.parse(quantize)
    layers = None
    if weight_budget is not None:
        from .mixed import search

        if calibration is None:
            raise InputError(f"{loaded.info.name}: a weight budget needs calibration data")
        if quantize is not None and not isinstance(quantize, Q.PoT):
            raise InputError(f"weight_budget searches power-of-two widths; quantize={Q.name(quantize)!r} has none")
        choice = search(loaded, calibration, labels, int(weight_budget), tgt)
        quantize, layers = choice.config, choice.table
    passes, fmt, scheme = pipeline(loaded, calibration, quantize)
    mod = tvm_compat.apply(passes, loaded.mod)
    info = loaded.info
    options = {"format": fmt, **({"name": name} if name else {}),
               **({"quantize": Q.name(quantize) if weight_budget is None else "mixed"} if quantize else {})}
    if exits:
        m = _compile_exits(mod, info, name or info.name, tgt, kernels, fmt, options, gate, thresholds,
                           calibration, labels, accuracy_budget, controller, budget_confidence)
    elif controller is not None:
        raise InputError("controller= needs exits=True")
    else:
        prog = lower(mod, name or info.name, info.path, _io_names(info))
        m = CompiledModel(info, tgt.name, mod, prog, tgt.schedule(prog, kernels), fmt,
                          options={**options, **({"kernels": kernels} if kernels else {})})
    m.quantization = {"scheme": options.get("quantize", "int8" if fmt == "int8" and calibration is not None else None),
                      "layers": scheme.report if scheme else [], "search": layers}
    built = tgt.build(m, **build_options)
    built.compile_seconds = time.perf_counter() - start
    return built


def _compile_cascade(models, cascade: bool, exits, output, weight_budget, name, **options) -> CompiledModel:
    """``compile([small, big, ...], cascade=True)``: the members joined (adaptc.cascade), compiled
    with exits=True."""
    import tempfile

    from .cascade import combine, member_quantization

    if not cascade or not isinstance(models, (list, tuple)):
        raise InputError("a list of models compiles as a cascade: compile([small, big], cascade=True, ...)")
    if exits or output is not None or weight_budget is not None:
        raise InputError("cascade=True: the members are the exits; exits=, output= and weight_budget= do not apply")
    if isinstance(options.get("quantize"), (list, tuple)):     # one weight format per member
        options["quantize"] = member_quantization(models, options["quantize"])
    with tempfile.TemporaryDirectory(prefix="adaptc-") as d:
        path = combine(models, d)
        return compile(path, exits=True, name=name or path.stem, **options)


def _compile_widths(models, target, calibration, name, kernels, exits, output, weight_budget, cascade, arch, tune,
                    input_shapes, **options) -> CompiledModel:
    """``compile([w025, ..., w100], width_levels=True)``: each width compiled alone, their
    programs nested (adaptc.widths) and scheduled on one arena, built as one model."""
    from .widths import WidthBuild, nest, width_fractions

    start = time.perf_counter()
    if not isinstance(models, (list, tuple)) or len(models) < 2:
        raise InputError("width_levels=True takes the models of each width, narrowest first: "
                         "compile([w025, w050, w075, w100], width_levels=True, ...)")
    if cascade or output is not None or weight_budget is not None or arch is not None or tune is not None:
        raise InputError("width_levels=True: cascade=, output=, weight_budget=, arch= and tune= do not apply")
    tgt = targets.get(target)
    if not hasattr(tgt, "schedule_widths"):
        raise InputError(f"width levels build for the Cortex-M cores; target {tgt.name} runs one width per build")
    loaded = [m if isinstance(m, LoadedModel) else load(m, input_shapes=input_shapes) for m in models]
    if exits in (None, False) and any(len(m.info.outputs) < 2 for m in loaded):
        raise InputError(f"{loaded[-1].info.name}: width levels need exit heads for now (models with two or more "
                         "outputs, shallow to deep); a single-output model compiles one width at a time")
    alone = [compile(m, target, calibration=calibration, kernels=kernels, exits=exits or True, **options)
             for m in loaded]
    fractions = width_fractions([m.program for m in alone])
    if fractions != sorted(fractions) or len(set(fractions)) != len(fractions):
        raise InputError(f"width_levels=True: the models must be given narrowest first; their widths are {fractions}")
    names = [f"{m.info.name} (width {i})" for i, m in enumerate(loaded)]
    programs = nest([m.program for m in alone], loaded[-1].info.path, names)
    scheduled = tgt.schedule_widths(programs, kernels)
    wide = alone[-1]
    prefix = name or wide.program.name
    for sp in scheduled:
        sp.program.name = prefix
    settings = options.get("controller") or {}
    ctl = dataclasses.replace(scheduled[-1].program.controller)
    if "start" not in settings:                      # throttle up from the cheapest level
        ctl.start = 0
    gated = [sp.program.steps[e.gate].attrs["threshold"] for sp in scheduled for e in sp.program.exits[:-1]]
    gated = [t for t in gated if t < INT32_MAX and np.isfinite(t)]
    if "target" not in settings and gated:           # a middle confidence of every width's gates
        ctl.target = type(gated[0])(np.median(gated))
    scheduled[-1].program.controller = ctl
    unit = wide.exits["exits"][0].get("scale")
    real = float(ctl.target) * gates.unit(wide.exits["criterion"], unit) if unit is not None else float(ctl.target)
    record = {**wide.exits, "controller": {**wide.exits["controller"], "start": int(ctl.start), "target": real,
                                           **({"target_int": int(ctl.target)} if unit is not None else {})}}
    m = wide.derive(CompiledModel, program=scheduled[-1].program, scheduled=scheduled[-1], exits=record,
                    options={**wide.options, "widths": ",".join(f"{f:g}" for f in fractions)},
                    width_levels=WidthBuild(fractions, alone, scheduled))
    built = tgt.build(m)
    if isinstance(calibration, tuple):    # labelled: accuracy and cost per level, the controller's ladder
        from .widths import ladder, level_table

        shape = tvm_compat.shape_of(wide.mod["main"].params[0].ty)
        x, labels = calibration_data(calibration, shape, loaded[-1].info.path, classes(wide.info))
        x = samples_of_shape(x, shape, loaded[-1].info.path)          # (N, *input shape)
        table = level_table(built, built.quantize_input(x), labels)
        m.width_levels = dataclasses.replace(m.width_levels, table=table, ladder=ladder(table))
        built = tgt.build(m)
    built.compile_seconds = time.perf_counter() - start         # every width, the join and the level table
    return built


def _compiled_outputs(exits, output) -> list[int] | None:
    """Indices of the outputs ``compile`` builds for ``exits=`` / ``output=`` (None: every one)."""
    if exits:
        return None if exits is True else list(exits)
    return None if output is None else [output]


def _io_names(info: ModelInfo) -> tuple[list[str], list[str]]:
    """The source model's input and output tensor names (what ``lower`` names the program's)."""
    return [t.name for t in info.inputs], [t.name for t in info.outputs]


def refuse_early(path: Path, tgt, calibrated: bool, quantize, weight_budget, outputs=None) -> None:
    """MemoryBudgetError before any compile work -- before TVM imports the file -- when the
    weights of the outputs to compile (``outputs``: their indices; None: all), in the format they
    will compile to (adaptc.summary.weight_bits), already exceed the flash of ``tgt``'s board,
    read from the model file (adaptc.summary: a lower bound). Nothing for a target without a
    board, or a file adaptc.summary cannot read (``load`` then says what is wrong with it)."""
    if tgt.board is None or path.suffix.lower() not in (".tflite", ".onnx") or not path.is_file():
        return
    try:
        s = summary.inspect(path)
        names = None if outputs is None else [s.outputs[int(i)].name for i in outputs]
    except (AdaptcError, IndexError):      # load / select_output say what is wrong
        return
    summary.check_flash(s, tgt, summary.weight_bits(calibrated, quantize, weight_budget), names)


def compile_program(prog: Program, target: str = targets.DEFAULT, *, kernels: str | None = None,
                    format: str = "int8") -> CompiledModel:
    """Schedule and build a lowered Program (no Relax module: ``reference`` is not available)
    for ``target`` -- how tests and benchmarks build synthetic one-step programs."""
    tgt = targets.get(target)
    info = ModelInfo("<program>", "relax", prog.name, (), ())
    m = CompiledModel(info, tgt.name, None, prog, tgt.schedule(prog, kernels), format,
                      options={"format": format, **({"kernels": kernels} if kernels else {})})
    return tgt.build(m)


NEARLY_PERFECT = 0.995     # a final exit this accurate on the calibration data was likely trained on it


def _compile_exits(mod, info: ModelInfo, name: str, tgt, kernels, fmt, options, criterion, thresholds,
                   calibration, labels, accuracy_budget, controller=None,
                   budget_confidence: float = 0.5) -> CompiledModel:
    """Gates and If for the heads of ``mod`` (a multi-output composite module), thresholds given
    or calibrated against the target's cost of each exit; the CompiledModel with ``exits``
    filled in."""
    gates.check(criterion)
    plan = plan_exits(mod, info.path)
    n = len(plan.heads)
    quant = io_quantization(mod, info, fmt)
    int8 = plan.dtype == "int8"
    scales = [sc for sc, _ in quant["outputs"]] if int8 else None
    if int8 and scales is None:
        raise InputError(f"{info.name}: the int8 exit heads carry no output quantization")
    options = {**options, "exits": n, "gate": criterion, **({"kernels": kernels} if kernels else {})}

    settings = dict(controller or {})
    unknown = set(settings) - {"target", "comfort", "patience", "start"}
    if unknown:
        raise InputError(f"controller: unknown setting(s) {', '.join(sorted(unknown))}; "
                         "choose from target, comfort, patience, start")

    def build(th) -> CompiledModel:
        gated = tvm_compat.apply([InsertGates(criterion, th, scales, info.path)], mod)
        prog = lower(gated, name, info.path, _io_names(info))
        for key, value in settings.items():      # real confidences -> the gates' units
            if key in ("target", "comfort") and int8:
                value = gates.int_threshold(criterion, value, scales[0])
            setattr(prog.controller, key, value)
        return CompiledModel(info, tgt.name, gated, prog, tgt.schedule(prog, kernels), fmt, options=options)

    def real(i, t):
        return None if t in (INT32_MAX, np.inf) else (float(t) * gates.unit(criterion, scales[i]) if int8 else float(t))

    record = {"criterion": criterion}
    if thresholds is not None:
        if len(thresholds) != n - 1:
            raise InputError(f"{info.name}: {n} exits take {n - 1} thresholds (the last exit has no gate), "
                             f"got {len(thresholds)}")
        th = [gates.int_threshold(criterion, t, scales[i]) for i, t in enumerate(thresholds)] if int8 \
            else [float(t) for t in thresholds]
        m = build(th)
    else:
        if calibration is None or labels is None:
            raise InputError(f"{info.name}: calibrating exit thresholds needs labelled data: calibration=(x, y) "
                             "(--calibration FILE.npz with arrays x and y), or thresholds=")
        provisional = build([INT32_MAX if int8 else np.inf] * (n - 1))
        cost, unit = exit_costs(provisional, tgt)
        conf, correct = head_statistics(mod, quant, calibration, labels, criterion, scales)
        cal = calibrate(conf, correct, cost, accuracy_budget, budget_confidence=budget_confidence)
        if cal.final_accuracy >= NEARLY_PERFECT and len(labels) >= 100:
            warnings.warn(f"{info.name}: the final exit is right on {cal.final_accuracy:.1%} of the {len(labels)} "
                          "calibration inputs -- data the model was trained on? Thresholds calibrated there let "
                          "inputs leave early that new data would not; calibrate on held-out data", stacklevel=3)
        th = [min(t, INT32_MAX) if int8 else t for t in cal.thresholds]
        m = build(th)
        record["calibration"] = {"cost_unit": unit, "samples": int(len(labels)), "accuracy_budget": accuracy_budget,
                                 "budget_confidence": budget_confidence,
                                 "accuracy": cal.accuracy, "final_accuracy": cal.final_accuracy,
                                 "expected_cost": cal.expected_cost, "full_cost": cal.full_cost,
                                 # the figure it is in, named: simulated cycles (Cortex-M) or seconds (roofline)
                                 f"speedup_simulated_{tgt.capabilities.cost_unit}":
                                     cal.full_cost / cal.expected_cost if cal.expected_cost else None,
                                 "exits": cal.exits, "curve": cal.curve}
    record["exits"] = [{"exit": i, "criterion": criterion,
                        "threshold": real(i, th[i]) if i < n - 1 else None,
                        "threshold_int": (int(th[i]) if i < n - 1 else None) if int8 else None,
                        "gate_step": e.gate, "head": m.program.tensors[e.head].name,
                        # what running up to this exit touches: MACs, flash constants read
                        "macs": sum(s.macs for s in m.program.steps[:e.gate + 1]),
                        "weight_bytes": sum(s.flash_bytes for s in m.scheduled.steps[:e.gate + 1]),
                        **({"scale": scales[i], "zero_point": quant["outputs"][i][1]} if int8 else {})}
                       for i, e in enumerate(m.program.exits)]
    ctl = m.program.controller
    record["controller"] = {"target": real(0, ctl.target), "comfort": real(0, ctl.comfort),
                            "patience": int(ctl.patience), "start": n - 1 if ctl.start is None else int(ctl.start),
                            **({"target_int": int(ctl.target), "comfort_int": int(ctl.comfort)} if int8 else {})}
    m.exits = record
    m.heads_mod = mod
    return m


def classes(info: ModelInfo) -> int | None:
    """How many classes labels may index: the values of the last output (the final head; every
    exit head classifies the same classes)."""
    return int(np.prod(info.outputs[-1].shape)) if info.outputs else None


def exit_costs(m: CompiledModel, tgt) -> tuple[list[float], str]:
    """The cost of leaving at each exit of ``m`` on ``tgt``, from the simulator (the scheduled
    program against the target's cost model; no model runs), through each exit's gate, with
    the target's default settings (Cortex-M: zero flash wait states; GPU: the H100 roofline)."""
    sim = estimate(m.scheduled, tgt)
    return [e.cycles for e in sim.exits], f"{sim.unit} ({tgt.name}, simulated)"


def head_statistics(mod, quant, calibration, labels, criterion, scales):
    """Every head's confidence (as its gate computes it) and correctness on the calibration
    data, from the un-gated module on llvm: arrays [exits, samples]."""
    samples = samples_of_shape(calibration, tvm_compat.shape_of(mod["main"].params[0].ty), "calibration")
    vm = tvm_compat.build_llvm(mod)
    heads = None
    for x in samples:
        if "input" in quant:
            sc, zp = quant["input"]
            x = np.clip(np.round(np.asarray(x, np.float64) / sc) + zp, -128, 127).astype(np.int8)
        outs = tvm_compat.run_vm(vm, x)
        heads = [[] for _ in outs] if heads is None else heads
        for h, o in zip(heads, outs):
            h.append(o.reshape(-1))
    heads = [np.stack(h) for h in heads]
    labels = np.asarray(labels).reshape(-1)
    if len(labels) != len(samples):
        raise InputError(f"calibration has {len(samples)} inputs but {len(labels)} labels")
    conf = np.stack([gates.confidence_int(h, criterion, scales[i]).astype(np.int64) if scales
                     else gates.confidence_float(h, criterion) for i, h in enumerate(heads)])
    correct = np.stack([h.argmax(axis=-1) == labels for h in heads])
    return conf, correct
