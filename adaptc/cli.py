"""adaptc command line: compile models to C, inspect them, run the demo."""
from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

import click

from . import __version__

DEFAULT_TARGET = "cortex-m4"
TARGET_NAMES = ["cortex-m0plus", "cortex-m3", "cortex-m4", "cortex-m7", "cortex-m55"]


def _bundled_model() -> Path:
    return Path(str(resources.files("adaptc.data") / "kws_ref_model.tflite"))


def _fail(e: Exception):
    raise click.ClickException(str(e))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="adaptc")
def main():
    """adaptc: compile trained networks (TFLite, ONNX) into standalone C for Arm Cortex-M.

    int8 TFLite models keep their quantization and run bit-exact with TensorFlow Lite Micro;
    float models compile to float32 C, or to int8 with --calibration.

    \b
    Examples:
      adaptc demo                                   compile and check the bundled KWS model
      adaptc compile model.tflite -o out/           C sources + Makefile + report.json
      adaptc compile net.onnx --calibration cal.npy -o out/
      adaptc info model.tflite                      inputs, outputs, operators
    """


@main.command("compile")
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Directory for <prefix>.c, <prefix>.h, Makefile and report.json (created; existing "
                   "files with those names are replaced). Nothing is written if compilation fails.")
@click.option("-t", "--target", type=click.Choice(TARGET_NAMES), default=DEFAULT_TARGET, show_default=True,
              help="Cortex-M core the C is generated for.")
@click.option("--calibration", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A .npy array of representative inputs (first axis = samples). Given for a float "
                   "model, the model is quantized to int8 (post-training, TFLite scheme).")
@click.option("--name", help="C symbol prefix (default: the model file's name, sanitized).")
def compile_cmd(model, out_dir, target, calibration, name):
    """Compile MODEL (.tflite or .onnx) into C99 sources for a Cortex-M target.

    The header declares `int <prefix>_run(const T *input, U *output)` (T, U = int8_t for int8
    models, float for float models); report.json gives arena_bytes, weight_bytes and MACs per
    layer.
    """
    import numpy as np

    from .api import compile as compile_model
    from .errors import AdaptcError

    try:
        cal = None
        if calibration is not None:
            try:
                cal = np.load(calibration)
            except (ValueError, OSError) as e:
                raise click.ClickException(f"{calibration}: not a readable .npy array ({e})") from None
        click.echo(f"compiling {model} for {target} ...", err=True)
        m = compile_model(model, target=target, calibration=cal, name=name)
        m.export(out_dir)
    except AdaptcError as e:
        _fail(e)
    r = m.report()
    click.echo(f"wrote {out_dir}/: {', '.join(sorted(m.files))}, report.json")
    click.echo(f"  format {r['format']}, {len(r['layers'])} steps, {r['macs']:,} MACs, "
               f"weights {r['weight_bytes']:,} B, arena {r['arena_bytes']:,} B, "
               f"compiled in {r['compile_seconds']:.2f} s")


@main.command()
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
def info(model):
    """Show MODEL's inputs, outputs and operators."""
    from .errors import AdaptcError
    from .loader import load

    try:
        lm = load(model)
    except AdaptcError as e:
        _fail(e)
    click.echo(f"{lm.info.path} ({lm.info.format})")
    for kind, tensors in (("input", lm.info.inputs), ("output", lm.info.outputs)):
        for t in tensors:
            q = f", scale {t.scale:.6g}, zero point {t.zero_point}" if t.quantized else ""
            click.echo(f"  {kind} {t.name}: {t.dtype} {list(t.shape)}{q}")
    counts: dict[str, int] = {}
    from tvm import relax

    from . import tvm_compat

    def visit(e):
        name = tvm_compat.op_name(e)
        if name:
            counts[name] = counts.get(name, 0) + 1

    relax.analysis.post_order_visit(lm.mod["main"], visit)
    click.echo("  relax ops: " + ", ".join(f"{k.replace('relax.', '')} x{v}" for k, v in sorted(counts.items())))


@main.command()
@click.option("--model", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Model to use instead of the bundled one (MLPerf Tiny keyword spotting, int8).")
@click.option("-t", "--target", type=click.Choice(TARGET_NAMES), default=DEFAULT_TARGET, show_default=True)
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("adaptc-out"), show_default=True, help="Where the generated C is written.")
@click.option("-n", "--inputs", "count", type=click.IntRange(1, 10000), default=50, show_default=True,
              help="Random inputs to check the generated C on.")
def demo(model, target, out_dir, count):
    """Compile a model (default: the bundled KWS int8 model), write its C, and check it.

    The generated C is built with the host compiler and run on random inputs; every output is
    compared with TVM's llvm build of the same integer program and, when the tflite-micro
    package is installed and the model is TFLite, with TensorFlow Lite Micro.
    """
    import numpy as np
    from tqdm import tqdm

    from .api import compile as compile_model
    from .errors import AdaptcError

    model = model or _bundled_model()
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
    click.echo(f"  compile time   {r['compile_seconds']:.2f} s")
    click.echo(f"  steps          {len(r['layers'])}")
    click.echo(f"  MACs           {r['macs']:,}")
    click.echo(f"  weights        {r['weight_bytes']:,} B (flash)")
    click.echo(f"  arena          {r['arena_bytes']:,} B (RAM, static)")
    exact = "bit-exact" if r["format"] == "int8" else "within 1e-4"
    click.echo(f"  C vs TVM llvm  {same_ref}/{count} {exact}")
    if tflm is not None:
        click.echo(f"  C vs TFLM      {same_tflm}/{count} {exact}")
    if same_ref != count or (tflm is not None and same_tflm != count):
        raise click.ClickException("generated C disagrees with a reference")


if __name__ == "__main__":
    main()
