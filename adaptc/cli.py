"""adaptc command line: compile models to C, inspect them, run the demo."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import click
import numpy as np
from tqdm import tqdm

from . import __version__, targets
from . import demo as exits_demo
from .errors import AdaptcError
from .report import write_report
from .sim import simulate as run_simulation

DEFAULT_TARGET = targets.DEFAULT


def _fail(e: Exception):
    raise click.ClickException(str(e))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="adaptc")
def main():
    """adaptc: compile trained networks (TFLite, ONNX) into standalone C for Arm Cortex-M.

    int8 TFLite models keep their quantization and run bit-exact with TensorFlow Lite Micro;
    float models compile to float32 C, or with --calibration to int8, int4 or power-of-two
    weights (--quantize), per layer under a flash budget (--weight-budget).

    \b
    Examples:
      adaptc demo                                   the bundled digits CNN with early exits, measured
      adaptc demo --model model.tflite              check the C of another model against references
      adaptc compile model.tflite -o out/           C sources, firmware project, report.json
      adaptc run model.tflite -t cortex-m7          run on an emulated core, count instructions
      adaptc compile net.onnx --calibration cal.npy -o out/
      adaptc compile net.onnx --calibration cal.npz --quantize pot4 -o out/
      adaptc compile net.onnx --calibration cal.npz --weight-budget 20000 -o out/
      adaptc compile net.onnx --exits --calibration cal.npz -o out/   gates, levels, controller
      adaptc compile net.onnx --add-exits auto --calibration train.npz -o out/   exits for a trained model
      adaptc info model.tflite                      inputs, outputs, operators
    """


def _input_shapes(ctx, param, values) -> dict[str, tuple[int, ...]] | None:
    """--input-shape NAME=D1,D2,... (repeatable) -> {NAME: (D1, D2, ...)}."""
    shapes: dict[str, tuple[int, ...]] = {}
    for value in values:
        name, _, dims = value.rpartition("=")
        try:
            shape = tuple(int(d) for d in dims.split(","))
        except ValueError:
            shape = ()
        if not name or not shape or min(shape) <= 0:
            raise click.BadParameter(f"{value!r}: NAME=D1,D2,... with positive sizes, e.g. input=1,3,96,96")
        if name in shapes:
            raise click.BadParameter(f"{name!r} given twice")
        shapes[name] = shape
    return shapes or None


input_shape_option = click.option(
    "--input-shape", "input_shapes", multiple=True, metavar="NAME=D1,D2,...", callback=_input_shapes,
    help="Static shape of an ONNX input of dynamic size, e.g. --input-shape input=1,3,96,96 (repeatable; "
         "from Python: input_shapes={'input': (1, 3, 96, 96)}).")


def _model_options(f):
    """The options that say how MODEL is compiled (shared by compile and simulate)."""
    for option in reversed([
        input_shape_option,
        click.option("--calibration", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     help="Representative inputs for a float model: a .npy array (first axis = samples) or an "
                          ".npz with arrays x and, optionally, labels y. The model is quantized "
                          "post-training (--quantize; int8 by default)."),
        click.option("--quantize", type=click.Choice(["int8", "int4", "pot2", "pot3", "pot4", "pot5", "mixed"]),
                     help="Weights of a float model: int8 (TFLite scheme, the default), int4, power-of-two with "
                          "2 (ternary) to 5 bits and power-of-two activation scales (multiplication-free "
                          "layers), or mixed: each layer's width searched to fit --weight-budget."),
        click.option("--weight-budget", type=click.IntRange(1), metavar="BYTES",
                     help="Flash budget for the constants (weight_bytes in report.json): searches each layer's "
                          "power-of-two width (implies --quantize mixed)."),
        click.option("--model-output", type=int, metavar="INDEX",
                     help="Compile only this output of a multi-output model (0-based; -1: the last). Default: "
                          "every output -- <prefix>_run(input, output0, output1, ...) takes one buffer each."),
        click.option("--exits", is_flag=True,
                     help="The model's outputs are exit heads, shallow to deep: each becomes a gate, and the C "
                          "runs only as deep as an input needs (<prefix>_run(input, level, &result)). Thresholds "
                          "are calibrated on --calibration (an .npz with x and labels y)."),
        click.option("--gate", type=click.Choice(["max_prob", "margin", "entropy"]), default="max_prob",
                     show_default=True,
                     help="Gate criterion with --exits: largest softmax probability, top-1 minus top-2 logit, or "
                          "negative entropy (integer arithmetic on int8 models)."),
        click.option("--accuracy-budget", type=click.FloatRange(0, 1), default=0.01, show_default=True,
                     help="With --exits: the accuracy the calibrated thresholds may lose against the final exit "
                          "(0.01 = one point), for the least expected cost."),
    ]):
        f = option(f)
    return f


def _compile(model, target, calibration, quantize, weight_budget, exits, gate, accuracy_budget, name=None,
             input_shapes=None, augment=None, **extra):
    """adaptc.compile with the command-line options -- or, with ``augment`` (--add-exits:
    max_exits, ray, validation), adaptc.add_exits (raises AdaptcError / UsageError)."""
    from .api import compile as compile_model

    if augment is not None:
        from .augment import add_exits

        data = _load_calibration(calibration)
        held = _load_calibration(augment["validation"]) if augment["validation"] is not None else None
        if not isinstance(data, tuple) or (held is not None and not isinstance(held, tuple)):
            raise click.UsageError("--add-exits needs labelled data: .npz files with arrays x and y")
        click.echo(f"attaching exits to {model} for {target} ...", err=True)
        if extra.get("output") is None:
            extra.pop("output", None)
        return add_exits(model, data=data, validation=held, target=target, accuracy_budget=accuracy_budget,
                         max_exits=augment["max_exits"], gate=gate, executor=augment["ray"], name=name, **extra)

    if quantize == "mixed" and weight_budget is None:
        raise click.UsageError("--quantize mixed needs --weight-budget BYTES")
    if (quantize or weight_budget) and calibration is None:
        raise click.UsageError("--quantize / --weight-budget need --calibration FILE")
    cal = _load_calibration(calibration) if calibration is not None else None
    widths = isinstance(model, list)
    click.echo(f"compiling {', '.join(map(str, model)) if widths else model} for {target} ...", err=True)
    return compile_model(model, target=target, calibration=cal, name=name, input_shapes=input_shapes,
                         quantize=None if quantize == "mixed" else quantize, weight_budget=weight_budget,
                         **({"exits": True, "gate": gate, "accuracy_budget": accuracy_budget}
                            if exits or widths else {}),
                         **({"width_levels": True} if widths else {}), **extra)


@main.command("compile")
@click.argument("models", metavar="MODEL...", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Directory for <prefix>.c, <prefix>.h, Makefile and report.json (created; existing "
                   "files with those names are replaced). Nothing is written if compilation fails.")
@click.option("-t", "--target", type=click.Choice(targets.names()), default=DEFAULT_TARGET, show_default=True,
              help="Cortex-M core the C is generated for, or llvm / cuda: batched segments with early-exit "
                   "compaction as a TVM library (DIR/<prefix>_<target>.so; for cuda also the CUDA source "
                   "DIR/<prefix>.cu).")
@click.option("--arch", default="sm_90", show_default=True, help="CUDA architecture with --target cuda.")
@click.option("--tune-records", type=click.Path(file_okay=False, path_type=Path),
              help="With --target cuda: MetaSchedule tuning records (DIR/cuda-<arch>/): applied, and extended "
                   "by --tune-trials. Builds the segments for static batches 1, 2, 4, ... --max-batch.")
@click.option("--tune-trials", type=click.IntRange(min=0), default=0, show_default=True,
              help="Kernel candidates to measure now (needs a GPU); 0 applies the records only.")
@click.option("--max-batch", type=click.IntRange(min=1), default=64, show_default=True,
              help="Largest static batch of a tuned build (bigger batches run in chunks).")
@_model_options
@click.option("--add-exits", type=click.Choice(["auto"]),
              help="Attach early exits to a trained single-exit ONNX classifier: heads trained at the graph's "
                   "block boundaries on --calibration (an .npz with x and labels y; a third held out for the "
                   "thresholds unless --validation), placed where they lower the expected simulated cost "
                   "most within --accuracy-budget. DIR also receives <prefix>_exits.onnx, the multi-exit model.")
@click.option("--max-exits", type=click.IntRange(1), default=3, show_default=True,
              help="With --add-exits: the most exits added.")
@click.option("--validation", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="With --add-exits: an .npz (x, y) for the thresholds, instead of a third of --calibration.")
@click.option("--ray", "ray_address", metavar="auto|ADDRESS",
              help="With --add-exits: evaluate the placements on a Ray cluster (auto: the running one; "
                   "HOST:PORT); same result as in-process.")
@click.option("--width-levels", is_flag=True,
              help="The MODELs are the widths of one slimmable network, narrowest first, each with exit heads "
                   "(each layer's weights a channel prefix of the widest's): one build stores the weights once "
                   "and runs any (width, exit) level, <prefix>_run(input, level, &result) with level = width "
                   "index * exits + exit.")
@click.option("--name", help="C symbol prefix (default: the model file's name, sanitized).")
@click.option("--input", "input_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A .npy input (the model's input shape and dtype) that the example firmware main.c "
                   "runs; default: a fixed pseudo-random input.")
def compile_cmd(models, out_dir, target, arch, tune_records, tune_trials, max_batch, input_shapes, model_output,
                calibration, quantize, weight_budget, exits, gate, accuracy_budget, add_exits, max_exits, validation,
                ray_address, width_levels, name, input_file):
    """Compile MODEL (.tflite or .onnx) into C99 sources and a firmware project for a Cortex-M
    target -- or, with --width-levels, the MODELs of a slimmable network's widths into one.

    \b
    DIR receives:
      <prefix>.c, <prefix>.h   the model: `int <prefix>_run(const T *input, U *output)`
                               (T, U = int8_t for int8 models, float for float models);
                               with --exits `<prefix>_run(input, level, &result)` and
                               the stream controller `<prefix>_controller_run`
      Makefile                 `make` builds <prefix>.elf with arm-none-eabi-gcc,
                               `make run` runs it under QEMU, `make host` builds a .so
      main.c, startup.c, semihost.h, <prefix>.ld   the example firmware
      CMakeLists.txt           the model as a library for your own CMake project
      report.json              arena_bytes, weight_bytes, macs, per-layer figures and -- when
                               arm-none-eabi-gcc is installed -- measured flash, RAM and stack

    A model that does not fit the target's reference board is refused, saying by how much.

    \b
    With --target llvm or cuda, DIR receives instead:
      <prefix>.cu              (cuda) every kernel of the batched segments (nvcc -c -arch=<arch>)
      <prefix>_<target>.so     the TVM library, and <prefix>_batched.json its plan:
                               adaptc.targets.cuda.runtime.load(DIR) on the serving host
    """

    tgt = targets.get(target)
    if len(models) > 1 and not width_levels:
        raise click.UsageError(f"{len(models)} models given: several models compile together only with "
                               "--width-levels (the widths of one slimmable network, narrowest first)")
    model = list(models) if width_levels else models[0]
    if width_levels and (add_exits or model_output is not None or weight_budget or tgt.capabilities.batched):
        raise click.UsageError("--width-levels builds for a Cortex-M core and excludes --add-exits, "
                               "--model-output and --weight-budget")
    augment = None
    if add_exits:
        if exits or quantize or weight_budget or model_output is not None or tune_records:
            raise click.UsageError("--add-exits chooses the exits itself: it excludes --exits, --quantize, "
                                   "--weight-budget, --model-output and --tune-records")
        if calibration is None:
            raise click.UsageError("--add-exits needs --calibration FILE.npz (arrays x and labels y)")
        augment = {"max_exits": max_exits, "ray": ray_address, "validation": validation}
    elif validation or ray_address:
        raise click.UsageError("--validation and --ray apply to --add-exits")
    if not tgt.capabilities.tunable and (tune_records or tune_trials):
        tunable = " / ".join(targets.names(tunable=True))
        raise click.UsageError(f"--tune-records / --tune-trials apply to --target {tunable}")
    if tune_trials and not tune_records:
        raise click.UsageError("--tune-trials needs --tune-records DIR (where the records go)")
    if tgt.capabilities.batched:
        tune = {"records": tune_records, "trials": tune_trials, "max_batch": max_batch} if tune_records else None
        try:
            m = _compile(model, target, calibration, quantize, weight_budget, exits, gate, accuracy_budget, name,
                         input_shapes, augment, arch=arch, tune=tune, output=model_output)
            files = m.export(out_dir)
        except AdaptcError as e:
            _fail(e)
        _print_exits(m)
        tuned = f", static batches {', '.join(map(str, m.buckets))}, {m.tuned_kernels} kernels from the records" \
            if m.buckets else ""
        arch_text = f", {m.arch}" if m.arch else ""
        click.echo(f"wrote {', '.join(str(p) for p in files.values())} ({len(m.levels)} segment(s){arch_text}{tuned}); "
                   "run with adaptc.targets.cuda.runtime.load")
        return
    try:
        x = _load_npy(input_file) if input_file is not None else None
        m = _compile(model, target, calibration, quantize, weight_budget, exits, gate, accuracy_budget, name,
                     input_shapes, augment, output=model_output)
        m.export(out_dir, x)
        r = m.report()
    except AdaptcError as e:
        _fail(e)
    _print_quantization(m)
    _print_exits(m)
    click.echo(f"wrote {out_dir}/: {', '.join(sorted(p.name for p in out_dir.iterdir()))}")
    scheme = (r.get("quantization") or {}).get("scheme")
    weights = f" (weights {scheme})" if scheme else ""
    click.echo(f"  format {r['format']}{weights}, {len(r['layers'])} steps, {r['macs']:,} MACs, "
               f"weights {r['weight_bytes']:,} B, arena {r['arena_bytes']:,} B, "
               f"compiled in {m.compile_seconds:.2f} s")
    mem = r["memory"]
    if "model" in mem:
        mm = mem["model"]
        click.echo(f"  on {target} ({mem['board']}): flash {mm['flash_bytes']:,} of {mem['board_flash_bytes']:,} B, "
                   f"RAM {mm['ram_bytes']:,} B static + {mm['stack_bytes']:,} B stack of {mem['board_ram_bytes']:,} B")
    else:
        click.echo(f"  memory {mem['note']}")


@main.command()
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-t", "--target", type=click.Choice(targets.names()), default=DEFAULT_TARGET,
              show_default=True, help="Core to estimate for (llvm / cuda: a roofline on --device).")
@_model_options
@click.option("--clock", "clock_hz", type=click.FloatRange(min=1, min_open=False), metavar="HZ",
              help="Core clock for latencies (default: the target's reference board, e.g. 180 MHz for the "
                   "Cortex-M4's STM32F429ZI).")
@click.option("--wait-states", default="0", show_default=True, metavar="N|typical",
              help="Flash wait states: a number, or 'typical' for the reference board's at its clock.")
@click.option("--small-multiplier", is_flag=True, help="Cortex-M0+ with the 32-cycle multiplier.")
@click.option("--device", type=click.Choice(["h100", "h200"]), default="h100", show_default=True,
              help="GPU preset for --target cuda.")
@click.option("--data", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Inputs (.npy, or .npz with x) to measure the exit distribution: expected cycles per level.")
@click.option("--json", "as_json", is_flag=True, help="Print the simulation as JSON instead of tables.")
@click.option("--report", "report_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write DIR/report.md: the tables, and plots of cost per level, per step and the arena plan "
                   "(PNG); with --data labelled (an .npz with y), accuracy per level too.")
def simulate(model, target, input_shapes, model_output, calibration, quantize, weight_budget, exits, gate,
             accuracy_budget, clock_hz, wait_states, small_multiplier, device, data, as_json, report_dir):
    """Estimate cycles, latency, flash and RAM of MODEL per utilization level and exit.

    MODEL is compiled as `adaptc compile` would (same options) and the estimate is read off the
    lowered program: per-kernel instruction tables and per-core timing rules for Cortex-M, a
    roofline for CUDA. Nothing runs on a core; --data runs the host build of the C to measure
    where inputs leave. Compare with `adaptc run` (exact instruction counts on an emulated core).
    """

    tgt = targets.get(target)
    if wait_states == "typical":
        ws = tgt.board.flash_wait_states if tgt.board else 0
    elif wait_states.isdigit():
        ws = int(wait_states)
    else:
        raise click.BadParameter(f"{wait_states!r}: a number or 'typical'", param_hint="--wait-states")
    # a batched target's program is the one any target lowers: compile it (cheaply) for the default core
    settings = {"device": device} if tgt.capabilities.batched else \
        {"wait_states": ws, "small_multiplier": small_multiplier}
    try:
        m = _compile(model, DEFAULT_TARGET if tgt.capabilities.batched else target, calibration, quantize,
                     weight_budget, exits, gate, accuracy_budget, input_shapes=input_shapes, output=model_output)
        xs = labels = None
        if data is not None:
            loaded = _load_calibration(data)
            xs, labels = loaded if isinstance(loaded, tuple) else (loaded, None)
            if m.format == "int8" and xs.dtype != "int8":
                xs = m.quantize_input(xs)
        s = run_simulation(m, target=target, clock_hz=clock_hz, data=xs, **settings)
    except AdaptcError as e:
        _fail(e)
    if as_json:
        click.echo(s.to_json())
    else:
        _print_simulation(s)
    if report_dir is not None:
        accuracy = None
        if labels is not None:
            accuracy = [float(np.mean([_label(m, x, lv.level) == y for x, y in zip(xs, labels)]))
                        for lv in s.levels]
        click.echo(f"wrote {write_report(m, s, report_dir, accuracy)}", err=True)


def _label(m, x, level):
    """The class the host build of the C gives ``x`` at ``level``."""
    x = np.asarray(x).reshape(m.input.shape)
    if m.program.exits:
        return m.run(x, level=level).label
    return int(np.argmax(m.run(x)))


def _print_simulation(s):
    from rich.console import Console
    from rich.table import Table

    gpu = s.unit == "seconds"
    unit = "latency" if gpu else "cycles"
    settings = ", ".join(f"{k} {v}" for k, v in s.settings.items())
    t = Table(title=f"{s.model} on {s.target}" + ("" if gpu else f" at {s.clock_hz / 1e6:g} MHz") + f" ({settings})")
    for col in ("level", f"{unit} (max)", f"{unit} (min)", "expected", "latency (max)", "MACs", "flash B", "RAM B"):
        t.add_column(col, justify="right")

    def fmt(v):
        return "-" if v is None else (f"{v * 1e6:,.1f} us" if gpu else f"{v:,.0f}")
    for lv in s.levels:
        t.add_row(str(lv.level), fmt(lv.cycles), fmt(lv.cycles_min), fmt(lv.cycles_expected),
                  f"{lv.latency_s * 1e3:,.3f} ms", f"{lv.macs:,}", f"{lv.flash_bytes:,}", f"{lv.ram_bytes:,}")
    console = Console(width=120)
    console.print(t)
    if not gpu:
        console.print(f"flash {s.flash_bytes:,} B (code {s.code_bytes:,} + constants {s.weight_bytes:,}); "
                      f"RAM {s.ram_bytes:,} B (static {s.ram_bytes - s.stack_bytes:,} with the "
                      f"{s.arena_bytes:,} B arena, stack {s.stack_bytes:,})")


def _print_width_levels(m):
    """The levels of a width-level build: width, deepest exit, and -- with labelled calibration
    data -- accuracy and simulated cost there."""
    wl = m.width_levels
    click.echo(f"  width levels: widths {', '.join(f'{f:g}' for f in wl.fractions)} x {len(m.program.exits)} exits "
               f"({m.exits['criterion']} gates, each width's own thresholds); weights stored once")
    if not wl.table:
        return
    click.echo(f"    {'level':>5}  {'width':>5}  {'exit':>4}  {'accuracy':>8}  {'expected cost':>13}  "
               f"{'worst cost':>11}")
    for r in wl.table:
        click.echo(f"    {r['level']:>5}  {r['width']:>5g}  {r['exit']:>4}  {r['accuracy']:>8.2%}  "
                   f"{r['expected_cost']:>13,.0f}  {r['worst_cost']:>11,.0f}")
    click.echo(f"    (on the labelled calibration inputs; costs in simulated {wl.table[0]['cost_unit']} on {m.target})")
    click.echo(f"    controller ladder (of each width the exits more accurate than its shallower ones, the top last): "
               f"{', '.join(map(str, m.ladder))}")


def _print_exits(m):
    """The gates of a model with exits and, when calibrated, where the calibration inputs left;
    for a model from --add-exits first its placement search's Pareto front."""
    search = (m.augmentation or {}).get("search")
    if search:
        from .report import exit_search_lines

        rows = [line for line in exit_search_lines(search) if line.startswith("| ") and "---" not in line]
        click.echo("  exit placement search: Pareto front (expected cost against held-out accuracy)")
        for line in rows[1 + len(search["candidates"]):]:
            click.echo("    " + line.strip("| ").replace(" | ", "  "))
    if not m.exits:
        return
    if m.width_levels:
        _print_width_levels(m)
        return
    cal = m.exits.get("calibration")
    click.echo(f"  exits ({m.exits['criterion']}" + (f"; thresholds calibrated on {cal['samples']} inputs, "
                                                      f"costs in {cal['cost_unit']})" if cal else ")"))
    seconds = bool(cal) and cal["cost_unit"].startswith("seconds")

    def cost(v):                  # cycles, or the GPU roofline's seconds in microseconds
        return f"{v * 1e6:,.2f} us" if seconds else f"{v:,.0f}"

    click.echo(f"    {'exit':>4}  {'threshold':>9}  {'cost':>10}  {'share':>6}  {'accuracy':>8}")
    for e in m.exits["exits"]:
        row = cal["exits"][e["exit"]] if cal else {}
        th = "-" if e["threshold"] is None else f"{e['threshold']:.4f}"
        acc = row.get("accuracy")
        click.echo(f"    {e['exit']:>4}  {th:>9}  {cost(row.get('cost', 0)):>10}  {row.get('share', 0):>6.1%}  "
                   f"{'-' if acc is None else f'{acc:.2%}':>8}" if cal else f"    {e['exit']:>4}  {th:>9}")
    if cal:
        unit = cal["cost_unit"].split()[0]                  # cycles | seconds: the simulator's figure
        click.echo(f"    expected cost {cost(cal['expected_cost'])} vs {cost(cal['full_cost'])} for the whole network: "
                   f"speedup {cal[f'speedup_simulated_{unit}']:.2f}x in simulated {unit} over the {cal['samples']:,} "
                   f"calibration inputs; accuracy {cal['accuracy']:.2%} vs {cal['final_accuracy']:.2%}")


def _load_calibration(path: Path):
    """x, or (x, y) from an .npz with labels."""
    if path.suffix.lower() != ".npz":
        return _load_npy(path)
    try:
        with np.load(path) as data:
            if "x" not in data:
                raise click.ClickException(f"{path}: no array 'x' (found: {', '.join(data.files) or 'none'})")
            return (data["x"], data["y"]) if "y" in data else data["x"]
    except (ValueError, OSError) as e:
        raise click.ClickException(f"{path}: not a readable .npz archive ({e})") from None


def _print_quantization(m):
    """The per-layer formats of a low-bit model (and the choice of a budget search)."""
    q = m.quantization or {}
    search = q.get("search")
    if search:
        names = list(search[0]["formats"])
        click.echo("  weight formats (budget search; bytes / cost of each format, * = chosen):")
        click.echo("    layer  kind      weights  " + "  ".join(f"{n:>14}" for n in names))
        for row in search:
            cells = [f"{row['formats'][n]['bytes']:>6,} {row['formats'][n]['cost']:.1e}"
                     f"{'*' if n == row['chosen'] else ' '}"
                     for n in names]
            click.echo(f"    {row['layer']:>5}  {row['kind']:<8} {row['weights']:>8,}  " + "  ".join(cells))
    elif q.get("layers"):
        click.echo("  weight formats:")
        click.echo("    layer  kind              weights  format  output error (nearest rounding)")
        for row in q["layers"]:
            click.echo(f"    {row['layer']:>5}  {row['kind']:<16} {row['weights']:>8,}  {row['format']:<6}  "
                       f"{row['error']:.5f} ({row['nearest_error']:.5f})")


def _same_outputs(a, b) -> bool:
    """Whether two runs' outputs (an array, or a list of them for a model with several) are equal."""
    a, b = (v if isinstance(v, list) else [v] for v in (a, b))
    return len(a) == len(b) and all(np.array_equal(u, v) for u, v in zip(a, b))


def _load_npy(path: Path):
    try:
        return np.load(path)
    except (ValueError, OSError) as e:
        raise click.ClickException(f"{path}: not a readable .npy array ({e})") from None


@main.command("run")
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-t", "--target", type=click.Choice(targets.names(emulated=True)), default=DEFAULT_TARGET,
              show_default=True)
@click.option("--input", "input_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A .npy input (default: a fixed pseudo-random input).")
@click.option("--calibration", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Calibration .npy for a float model to be quantized to int8.")
@input_shape_option
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
def run_cmd(model, target, input_file, calibration, input_shapes, as_json):
    """Cross-build MODEL for a Cortex-M target, run one inference on an emulated core (QEMU) and
    print the exact executed instructions per step and class.

    Needs the Debian packages gcc-arm-none-eabi, libnewlib-arm-none-eabi and qemu-system-arm.
    The output is checked against the host build of the same C.
    """
    from .api import compile as compile_model

    try:
        cal = _load_npy(calibration) if calibration is not None else None
        m = compile_model(model, target=target, calibration=cal, input_shapes=input_shapes)
        x = _load_npy(input_file) if input_file is not None else m.example_input()
        r = m.run_on_target(x)
        host = m.run(x)
    except AdaptcError as e:
        _fail(e)
    same = _same_outputs(r.outputs, host)
    if as_json:
        click.echo(json.dumps({"target": r.target, "machine": r.machine, "instructions": r.instructions,
                               "classes": r.classes, "macs": m.program.macs, "matches_host": same,
                               "stack_bytes": r.stack_bytes,
                               "steps": [{k: v for k, v in s.items() if k != "functions"} for s in r.steps]},
                              indent=2))
    else:
        click.echo(f"{m.info.name} on {r.target} ({r.machine}): {r.instructions:,} instructions, "
                   f"{m.program.macs:,} MACs, {r.instructions_per_mac:.3f} instructions/MAC")
        click.echo("  " + ", ".join(f"{k} {v:,}" for k, v in r.classes.items()))
        click.echo(f"  stack used {r.stack_bytes:,} bytes")
        click.echo(f"  {'step':>4}  {'kernel':<24} {'instructions':>12} {'MACs':>11} {'insn/MAC':>8}  why")
        for s in r.steps:
            per = f"{s['instructions'] / s['macs']:.3f}" if s["macs"] else "-"
            click.echo(f"  {s['step']:>4}  {s['kernel']:<24} {s['instructions']:>12,} {s['macs']:>11,} {per:>8}"
                       f"  {s['note']}".rstrip())
        click.echo(f"  output {'matches' if same else 'DIFFERS FROM'} the host build")
    if not same:
        raise click.ClickException("the emulated core's output differs from the host build")


@main.command()
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@input_shape_option
def info(model, input_shapes):
    """Show what MODEL's file holds, without compiling it: its inputs and outputs, its layers in
    graph order (operator, name, output tensors, MACs, constant bytes), every operator adaptc
    cannot compile yet -- all at once, with their nodes -- and whether it can fit each Cortex-M
    core's reference board (adaptc.summary: estimates, explained in the output)."""
    from .summary import CODE_MARGIN, inspect

    try:
        s = inspect(model, input_shapes)
    except AdaptcError as e:
        _fail(e)
    macs = "? (dynamic shapes)" if s.macs is None else f"{s.macs:,}"
    click.echo(f"{model} ({s.format}): {len(s.layers)} operators, {macs} MACs, {s.weight_bytes:,} B of constants")
    click.echo("  operators: " + ", ".join(f"{k} x{v}" for k, v in s.operators.items()))
    for kind, tensors in (("input ", s.inputs), ("output", s.outputs)):
        for t in tensors:
            q = f", scale {t.scale:.6g}, zero point {t.zero_point}" if t.quantized else ""
            dims = ", ".join("?" if d <= 0 else str(d) for d in t.shape)
            hint = f" (dynamic: give --input-shape {t.name}=...)" if kind == "input " and min(t.shape, default=1) <= 0 \
                else ""
            click.echo(f"  {kind} {t.name}: {t.dtype} [{dims}]{q}{hint}")
    click.echo("  layers (graph order; MACs from the file's shapes, constants in the file's dtype):")
    width = max([len("operator"), *(len(lay.op) for lay in s.layers)])
    click.echo(f"    {'#':>4}  {'operator':<{width}} {'MACs':>12} {'constants':>11}  name -> outputs")
    for lay in s.layers:
        outputs = ", ".join(lay.outputs)
        names = outputs if lay.name == (lay.outputs[0] if lay.outputs else None) else f"{lay.name} -> {outputs}"
        m = "?" if lay.macs is None else f"{lay.macs:,}"
        w = f"{lay.weight_bytes:,} B" if lay.weight_bytes else ""
        flag = "" if lay.problem is None else "  UNSUPPORTED" + (f" ({lay.problem})" if lay.problem else "")
        click.echo(f"    {lay.index:>4}  {lay.op:<{width}} {m:>12} {w:>11}  {names}{flag}")
    if s.unsupported:
        groups: dict[tuple[str, str], list[str]] = {}
        for op, node, detail in s.unsupported:
            groups.setdefault((op, detail), []).append(node)
        click.echo(f"  unsupported: {len(s.unsupported)} operator(s) -- the model does not compile yet")
        for (op, detail), nodes in groups.items():
            click.echo(f"    {op} x{len(nodes)}" + (f" ({detail})" if detail else ""))
            for node in nodes:
                click.echo(f"      {node}")
    else:
        click.echo("  unsupported: none")
    float_weights = any(b >= 32 for _, b in s.weights())
    formats = [(32, "float32"), (8, "int8 (--calibration)")] if float_weights else [(32, "as stored")]
    click.echo(f"  reference boards (estimated from the file: flash = the weights as compiled + ~{CODE_MARGIN:,} B of "
               "code; RAM >= the largest input + output of one layer):")
    for tgt in targets.all_targets().values():
        board = tgt.board
        if board is None:                           # no memory budget (llvm, cuda)
            continue
        click.echo(f"    {tgt.name:<14} {board.name} ({board.flash_bytes:,} B flash, {board.ram_bytes:,} B RAM)")
        for bits, label in formats:
            click.echo(f"      {label + ':':<22}{s.fits(tgt, bits)}")


@main.command()
@click.option("--model", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Check another (single-output) model instead: compile it, run its C on random inputs "
                   "and compare with TVM's llvm build and, for TFLite, TensorFlow Lite Micro.")
@click.option("-t", "--target", type=click.Choice(targets.names(emulated=True)), default=DEFAULT_TARGET,
              show_default=True)
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("adaptc-out"), show_default=True, help="Where the generated C is written.")
@click.option("--quantize", type=click.Choice(["int8", "int4", "pot2", "pot3", "pot4", "pot5"]), default="int8",
              show_default=True, help="Weights of the bundled digits model.")
@click.option("-n", "--inputs", "count", type=click.IntRange(1, 10000), default=50, show_default=True,
              help="With --model: random inputs to check the generated C on.")
@click.option("--width", "widths", is_flag=True,
              help="The bundled slimmable digits network instead: widths 0.25 to 1.0 of one set of weights, "
                   "three exits each, as one build; its level table and the controller on a stream whose "
                   "difficulty changes.")
def demo(model, target, out_dir, quantize, count, widths):
    """Compile the bundled multi-exit digits CNN with calibrated early exits and measure it.

    \b
    Without --model: adaptc/data/digits_exits.onnx (three exits) is quantized (int8 by default),
    its gate thresholds calibrated on the labelled training split, and compiled for TARGET. On
    the 450 test images, at every utilization level, the generated C is checked bit for bit
    against the Relax module on TVM's llvm and class for class against onnxruntime, and run on
    the emulated core for exact instruction counts. Prints per exit and per level: accuracy,
    share of inputs leaving there, simulated cycles (adaptc.simulate's estimate), emulated
    instructions (counted by QEMU on the cross-built firmware), MACs, flash and RAM, and each
    level's speedup over the network without exits in both figures; writes a plot of accuracy
    against simulated cycles (PNG); runs a stream of digits with rising and falling noise
    through the C controller and prints its level trace.
    """
    if widths:
        if model is not None or quantize != "int8":
            raise click.UsageError("--width runs the bundled slimmable network (int8); it excludes --model and "
                                   "--quantize")
        try:
            exits_demo.run_widths(target, out_dir, echo=click.echo,
                                  progress=lambda it, desc: tqdm(it, desc=desc, unit="level", file=sys.stderr))
        except AdaptcError as e:
            _fail(e)
        return
    if model is None:

        try:
            exits_demo.run(target, out_dir, quantize=None if quantize == "int8" else quantize, echo=click.echo,
                           progress=lambda it, desc: tqdm(it, desc=desc, unit="level", file=sys.stderr))
        except AdaptcError as e:
            _fail(e)
        return
    _check_model(model, target, out_dir, count)


def _check_model(model, target, out_dir, count):
    """Compile ``model``, run its C on random inputs, compare with TVM (and TFLM)."""
    from .api import compile as compile_model

    try:
        m = compile_model(model, target=target)
        dest = m.export(out_dir / m.prefix)
    except AdaptcError as e:
        _fail(e)
    tflm = None
    if model.suffix == ".tflite":
        try:
            from tflite_micro import runtime as tflm_runtime

            tflm = tflm_runtime.Interpreter.from_bytes(model.read_bytes())
        except ImportError:
            click.echo("(tflite-micro not installed: comparing with TVM's llvm build only)", err=True)
    rng = np.random.default_rng(0)
    same_ref = same_tflm = 0
    t = m.input
    for _ in tqdm(range(count), desc="running generated C", unit="input", file=sys.stderr):
        x = (rng.integers(-128, 128, size=t.shape, dtype=np.int8) if t.dtype == "int8"
             else rng.standard_normal(t.shape).astype(np.float32))
        y = m.run(x)
        ref = m.reference(x)
        same_ref += bool(np.array_equal(y, ref) if y.dtype == np.int8 else np.allclose(y, ref, atol=1e-4))
        if tflm is not None:
            tflm.set_input(x, 0)
            tflm.invoke()
            z = tflm.get_output(0)
            same_tflm += bool(np.array_equal(y, z) if y.dtype == np.int8 else np.allclose(y, z, atol=1e-4))
    r = m.report()
    click.echo(f"\n{m.info.name} -> {dest}/ ({target}, {r['format']})")
    click.echo(f"  compile time   {m.compile_seconds:.2f} s")
    click.echo(f"  steps          {len(r['layers'])}")
    click.echo(f"  MACs           {r['macs']:,}")
    click.echo(f"  weights        {r['weight_bytes']:,} B (flash)")
    click.echo(f"  arena          {r['arena_bytes']:,} B (RAM, static)")
    exact = "bit-exact" if r["format"] == "int8" else "within 1e-4"
    click.echo(f"  C vs TVM llvm  {same_ref}/{count} {exact}")
    if tflm is not None:
        click.echo(f"  C vs TFLM      {same_tflm}/{count} {exact}")
    mem = r["memory"]
    if "model" in mem:
        mm = mem["model"]
        click.echo(f"  on {target}     flash {mm['flash_bytes']:,} B, RAM {mm['ram_bytes']:,} B + stack "
                   f"{mm['stack_bytes']:,} B ({mem['board']}: {mem['board_flash_bytes']:,} / "
                   f"{mem['board_ram_bytes']:,} B)")
    if shutil.which("qemu-system-arm") and "model" in mem:
        x = (rng.integers(-128, 128, size=t.shape, dtype=np.int8) if t.dtype == "int8"
             else rng.standard_normal(t.shape).astype(np.float32))
        try:
            run = m.run_on_target(x)
        except AdaptcError as e:
            _fail(e)
        ok = _same_outputs(run.outputs, m.run(x))
        click.echo(f"  emulated {target} ({run.machine}): {run.instructions:,} instructions, "
                   f"{run.instructions_per_mac:.2f} per MAC, output {'identical to' if ok else 'DIFFERS from'} "
                   "the host build")
        if not ok:
            raise click.ClickException("the emulated core's output differs from the host build")
    else:
        click.echo("  (qemu-system-arm / gcc-arm-none-eabi not installed: no emulated run)", err=True)
    if same_ref != count or (tflm is not None and same_tflm != count):
        raise click.ClickException("generated C disagrees with a reference")


if __name__ == "__main__":
    main()
