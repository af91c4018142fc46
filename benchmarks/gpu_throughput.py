"""Batched throughput (images/s) of the static full network vs the adaptive (early-exit) one,
built by ``adaptc.targets.cuda.batched.build`` -- batched segments with the batch compacted after each gate.

    .venv/bin/python benchmarks/gpu_throughput.py                         # on the GPU (cuda, sm_90)
    .venv/bin/python benchmarks/gpu_throughput.py --target cuda --arch sm_80 --batches 1,64,1024 --repeat 20
    .venv/bin/python benchmarks/gpu_throughput.py --target llvm --batches 1,64 --repeat 2   # CPU smoke check
    .venv/bin/python benchmarks/gpu_throughput.py --tune-records rec --tune-trials 2000      # MetaSchedule-tuned

Models (both int8, compiled for the cortex-m4 program and then built batched):

* ``digits`` -- the bundled digits CNN with three exits (``digits_exits.onnx``). Adaptive:
  ``exits=True, calibration=(x_train, y_train)`` (thresholds calibrated). Static: the same ONNX
  without exits, i.e. its final head only (``calibration=x_train``). Inputs: the test split,
  repeated to fill the largest batch.
* ``resnet8ee`` -- a ResNet-8-sized network written here with ``onnx.helper`` (random, seeded
  weights; input 1x3x32x32, conv 16 -> three residual stages of 16/32/64 channels, ~12.5 M MACs
  like MLPerf Tiny's ResNet-8), with an exit head (global average pool + fc 10) after each
  stage, the last one the final head. Quantized with 64 random calibration inputs. Its gate
  thresholds are fixed, not calibrated: picked from the quantiles of each head's max-softmax
  confidence on the (random) input set so that about ``--share0`` of the inputs leave at exit 0
  and ``--share1`` at exit 1 (the rest run the whole network); the distribution actually reached
  is printed. Static: the same ONNX without exits (its final head).

Before timing, a cuda build's results on every input of the pool are checked against the same
model's llvm build (label, exit, logits equal, every level; ``--no-check`` skips it).

What is timed: ``BatchedModel.run(batch)`` -- host orchestration included: upload, every
segment, the gate read-back and compaction, the results copied back as numpy (which is a device
synchronization on cuda: ``.numpy()`` waits for the kernels). Each repeat runs
``ceil(--images / batch)`` consecutive batches of the input set (so batch 1 sees a
representative mix of exits); img/s = images / median repeat time, after one warm-up repeat.
``ratio`` = adaptive / static img/s. ``exits`` = share of the timed inputs leaving at each exit.

For comparison, the simulator's GPU roofline (``adaptc.simulate(m, target="cuda",
device=--device)``, batch 1): static img/s = 1 / latency_s of its one level; adaptive =
1 / latency_expected_s of the top level, with ``data`` (the exit distribution of the inputs on
the generated C). ``meas/est`` is measured / estimated img/s at batch 1.

Without an NVIDIA GPU, ``--target cuda`` stops at once, before compiling anything, naming the
missing device (targets/cuda/batched.py ``GpuTarget.require_device``); the CUDA build itself (code
generation) works on any machine.
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import adaptc
from adaptc.data import digits
from adaptc.data import path as data_path
from adaptc.errors import TargetError

NEVER = 2.0          # a max_prob threshold no gate reaches (probability <= 1)


# ------------------------------------------------------------------------------ the ResNet-8-sized model


def resnet8_exits_onnx(path: Path, seed: int = 0) -> dict:
    """Write a ResNet-8-sized CNN with three exits (random He-initialized weights) to ``path``;
    returns its MAC count per exit."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    macs = {"total": 0}

    def weight(name, shape, fan_in):
        inits.append(numpy_helper.from_array((rng.standard_normal(shape) * math.sqrt(2.0 / fan_in))
                                             .astype(np.float32), name))
        return name

    def bias(name, n):
        inits.append(numpy_helper.from_array((rng.standard_normal(n) * 0.05).astype(np.float32), name))
        return name

    def conv(x, name, cin, cout, k, stride, hw_out, relu=True):
        w = weight(f"{name}.w", (cout, cin, k, k), cin * k * k)
        b = bias(f"{name}.b", cout)
        nodes.append(helper.make_node("Conv", [x, w, b], [f"{name}.out"], kernel_shape=[k, k],
                                      strides=[stride, stride], pads=[k // 2] * 4))
        macs["total"] += hw_out * hw_out * cout * cin * k * k
        if not relu:
            return f"{name}.out"
        nodes.append(helper.make_node("Relu", [f"{name}.out"], [f"{name}.relu"]))
        return f"{name}.relu"

    def block(x, name, cin, cout, stride, hw_out):
        y = conv(x, f"{name}.conv1", cin, cout, 3, stride, hw_out)
        y = conv(y, f"{name}.conv2", cout, cout, 3, 1, hw_out, relu=False)
        short = x if (cin == cout and stride == 1) else conv(x, f"{name}.short", cin, cout, 1, stride, hw_out,
                                                             relu=False)
        nodes.append(helper.make_node("Add", [y, short], [f"{name}.add"]))
        nodes.append(helper.make_node("Relu", [f"{name}.add"], [f"{name}.out"]))
        return f"{name}.out"

    def head(x, name, c):
        nodes.append(helper.make_node("GlobalAveragePool", [x], [f"{name}.gap"]))
        nodes.append(helper.make_node("Flatten", [f"{name}.gap"], [f"{name}.flat"], axis=1))
        w = weight(f"{name}.w", (10, c), c)
        b = bias(f"{name}.b", 10)
        nodes.append(helper.make_node("Gemm", [f"{name}.flat", w, b], [name], transB=1))
        macs["total"] += 10 * c
        return macs["total"]

    x = conv("image", "stem", 3, 16, 3, 1, 32)
    exit_macs = []
    x = block(x, "stage1", 16, 16, 1, 32)
    exit_macs.append(head(x, "exit0", 16))
    x = block(x, "stage2", 16, 32, 2, 16)
    exit_macs.append(head(x, "exit1", 32))
    x = block(x, "stage3", 32, 64, 2, 8)
    exit_macs.append(head(x, "exit2", 64))
    graph = helper.make_graph(
        nodes, "resnet8_exits", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info(f"exit{i}", TensorProto.FLOAT, [1, 10]) for i in range(3)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="adaptc-bench")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return {"exit_macs": exit_macs}


def quantile_thresholds(probe, xs: np.ndarray, share0: float, share1: float):
    """Real max_prob thresholds for exits 0 and 1 so that about ``share0`` of ``xs`` leave at
    exit 0 and ``share1`` at exit 1, from the gate confidences of ``probe`` (the model with gates
    that never fire, so level L returns head L's confidence for every input)."""
    from adaptc import gates

    scales = [r["scale"] for r in probe.exits["exits"]]
    conf0 = probe.run(xs, level=0).confidence.astype(np.int64)
    conf1 = probe.run(xs, level=1).confidence.astype(np.int64)
    # exit 0: the (1 - share0) quantile of head 0's confidence; ties decide the exact share
    t0 = int(np.quantile(conf0, 1.0 - share0, method="higher"))
    rest = conf1[conf0 < t0]
    stay_share = len(rest) / len(xs)
    t1 = int(np.quantile(rest, max(0.0, 1.0 - share1 / max(stay_share, 1e-9)), method="higher")) if len(rest) \
        else int(conf1.max()) + 1
    # integer confidence -> real units (gates.int_threshold maps it back to the same integer)
    return [t0 * gates.unit("max_prob", scales[0]), t1 * gates.unit("max_prob", scales[1])]


# ------------------------------------------------------------------------------ timing


def throughput(bm, pool: np.ndarray, batch: int, images: int, repeat: int):
    """(images/s from the median repeat, exits of the timed inputs)."""
    n_batches = max(1, math.ceil(images / batch))
    starts = [(i * batch) % (len(pool) - batch + 1) for i in range(n_batches)]
    batches = [pool[s:s + batch] for s in starts]
    exits = np.concatenate([bm.run(b).exit for b in batches])         # warm-up (and the exits taken)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        for b in batches:
            bm.run(b)             # returns numpy arrays: the device work is finished when it returns
        times.append(time.perf_counter() - t)
    return n_batches * batch / statistics.median(times), exits


def results_by_level(runner, pool: np.ndarray, batch: int = 64) -> dict[str, np.ndarray]:
    """Label, exit and logits of every input of ``pool`` at every level (batches of ``batch``),
    keyed "label0", "exit0", "logits0", ...; ``runner``: a BatchedModel or a loaded SegmentRunner."""
    gated = runner.plan.segments[0].gated
    out = {}
    for level in range(runner.levels):
        parts = [runner.run(pool[i:i + batch], level=level if gated else None) for i in range(0, len(pool), batch)]
        for f in ("label", "exit", "logits"):
            out[f"{f}{level}"] = np.concatenate([getattr(p, f) for p in parts])
    return out


def first_difference(got: dict, want: dict) -> str | None:
    """The first key of ``want`` whose arrays differ (None: all equal, bit for bit)."""
    return next((k for k in want if not np.array_equal(got[k], want[k])), None)


def check_against_llvm(built, model, pool: np.ndarray, batch: int) -> str:
    """The build's results on every input of ``pool`` at every level against the same model's
    llvm build: label, exit and logits equal (int8: bit for bit). Exits on a mismatch."""
    from adaptc.targets.cuda import batched as cuda

    diff = first_difference(results_by_level(built, pool, batch),
                            results_by_level(cuda.build(model, "llvm"), pool, batch))
    if diff is not None:
        raise SystemExit(f"{built.info.name}: {built.target} {diff} (field, level) differs from llvm: "
                         "the throughput figures would be meaningless")
    return f"{built.target} == llvm on {len(pool)} inputs x {built.levels} level(s)"


def shares(exits, n_exits: int) -> list[float]:
    return [float(np.mean(exits == i)) for i in range(n_exits)]


def fmt_shares(s) -> str:
    return "/".join(f"{100 * v:.0f}" for v in s) + " %"


def estimate(static, adaptive, data, device: str):
    """Simulated batch-1 img/s (static, adaptive) on the GPU roofline."""
    s = adaptc.simulate(static, target="cuda", device=device)
    a = adaptc.simulate(adaptive, target="cuda", device=device, data=data)
    top = a.levels[-1]
    return 1.0 / s.levels[0].latency_s, 1.0 / top.latency_expected_s, top.exit_shares


# ------------------------------------------------------------------------------ main


def models(tmp: Path, args):
    """name -> (static CompiledModel, adaptive CompiledModel, input pool, note)."""
    from adaptc.targets.cuda import batched as cuda

    biggest = max(args.batches)
    pool_size = max(biggest, args.images)
    x_train, y_train, x_test, _ = digits()
    d_path = data_path("digits_exits.onnx")
    t = time.perf_counter()
    d_adaptive = adaptc.compile(d_path, target="cortex-m4", exits=True, calibration=(x_train, y_train))
    d_static = adaptc.compile(d_path, target="cortex-m4", calibration=x_train, output=-1)
    d_pool = d_adaptive.quantize_input(np.resize(x_test, (pool_size, *x_test.shape[1:])))
    th = [r["threshold"] for r in d_adaptive.exits["exits"][:-1]]
    print(f"digits: compiled in {time.perf_counter() - t:.1f} s; calibrated thresholds "
          f"{', '.join(f'{v:.3f}' for v in th)}", flush=True)
    yield "digits", d_static, d_adaptive, d_pool

    rng = np.random.default_rng(args.seed)
    r_path = tmp / "resnet8_exits.onnx"
    info = resnet8_exits_onnx(r_path, args.seed)
    calib = rng.uniform(0.0, 1.0, (64, 3, 32, 32)).astype(np.float32)
    x = rng.uniform(0.0, 1.0, (pool_size, 3, 32, 32)).astype(np.float32)
    t = time.perf_counter()
    probe_model = adaptc.compile(r_path, target="cortex-m4", exits=True, calibration=calib, thresholds=[NEVER, NEVER])
    pool = probe_model.quantize_input(x)
    probe = cuda.build(probe_model, args.target, args.arch)
    probe_n = min(len(pool), args.probe)
    th = quantile_thresholds(probe, pool[:probe_n], args.share0, args.share1)
    r_adaptive = adaptc.compile(r_path, target="cortex-m4", exits=True, calibration=calib, thresholds=th)
    r_static = adaptc.compile(r_path, target="cortex-m4", calibration=calib, output=-1)
    print(f"resnet8ee: MACs through exits 0/1/2 {'/'.join(f'{m / 1e6:.2f}M' for m in info['exit_macs'])}; "
          f"thresholds (max_prob, from {probe_n} inputs, aiming at {100 * args.share0:.0f}/"
          f"{100 * args.share1:.0f} % at exits 0/1) {', '.join(f'{v:.4f}' for v in th)}; "
          f"compiled in {time.perf_counter() - t:.1f} s", flush=True)
    yield "resnet8ee", r_static, r_adaptive, pool


def main(argv=None) -> int:
    from adaptc.targets.cuda import batched as cuda
    from adaptc.targets.cuda.tuning import Tuning

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", choices=cuda.TARGETS, default="cuda")
    p.add_argument("--arch", default="sm_90")
    p.add_argument("--batches", default="1,64,1024", help="comma-separated batch sizes")
    p.add_argument("--repeat", type=int, default=10, help="timed repeats (median); one warm-up before")
    p.add_argument("--images", type=int, default=64, help="at least this many images per repeat")
    p.add_argument("--device", default="h200", choices=["h100", "h200"], help="the simulator's GPU preset")
    p.add_argument("--share0", type=float, default=0.5, help="resnet8ee: share aimed at leaving at exit 0")
    p.add_argument("--share1", type=float, default=0.25, help="resnet8ee: share aimed at leaving at exit 1")
    p.add_argument("--probe", type=int, default=256, help="resnet8ee: inputs the thresholds are chosen on")
    p.add_argument("--sim-samples", type=int, default=64, help="inputs run on the C for the simulator's exits")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-check", action="store_true", help="skip checking the cuda results against llvm")
    p.add_argument("--tune-records", type=Path, help="MetaSchedule records (targets/cuda/tuning.py): tuned builds with "
                   "static batches up to the largest of --batches")
    p.add_argument("--tune-trials", type=int, default=0, help="candidates to measure now (per model and build)")
    args = p.parse_args(argv)
    args.batches = [int(b) for b in args.batches.split(",")]
    if min(args.batches) < 1 or args.repeat < 1:
        p.error("batches and --repeat must be positive")
    try:                                # before minutes of compiling, not after
        cuda.gpu_target(args.target, args.arch).require_device("gpu_throughput")
    except TargetError as e:
        p.error(str(e))

    rows = []
    with tempfile.TemporaryDirectory(prefix="adaptc-gpu-bench-") as tmp:
        for name, static, adaptive, pool in models(Path(tmp), args):
            t = time.perf_counter()
            tune = Tuning(args.tune_records, args.tune_trials, max(args.batches)) if args.tune_records else None
            b_static = cuda.build(static, args.target, args.arch, tune=tune)
            b_adaptive = cuda.build(adaptive, args.target, args.arch, tune=tune)
            print(f"{name}: built static + adaptive for {args.target} in {time.perf_counter() - t:.1f} s", flush=True)
            if args.target != "llvm" and not args.no_check:
                for built in (b_static, b_adaptive):
                    print(f"  {check_against_llvm(built, built, pool, 64)}", flush=True)
            est_static, est_adaptive, est_shares = estimate(static, adaptive, pool[:args.sim_samples], args.device)
            for batch in args.batches:
                t = time.perf_counter()
                s_ips, _ = throughput(b_static, pool, batch, args.images, args.repeat)
                a_ips, exits = throughput(b_adaptive, pool, batch, args.images, args.repeat)
                row = {"model": name, "batch": batch, "static": s_ips, "adaptive": a_ips, "ratio": a_ips / s_ips,
                       "exits": fmt_shares(shares(exits, b_adaptive.levels))}
                if batch == 1:
                    row.update(est_static=est_static, est_adaptive=est_adaptive, est_ratio=est_adaptive / est_static,
                               meas_est=f"{s_ips / est_static:.3f} / {a_ips / est_adaptive:.3f}",
                               est_exits=fmt_shares(est_shares))
                rows.append(row)
                print(f"  {name} batch {batch}: {time.perf_counter() - t:.1f} s", flush=True)

    print()
    print(f"target {args.target}" + (f" ({args.arch})" if args.target == "cuda" else "")
          + f"; median of {args.repeat} repeats; simulator: adaptc.simulate(target='cuda', "
            f"device={args.device!r}), batch 1")
    head = (f"{'model':<10} {'batch':>5} {'static img/s':>13} {'adaptive img/s':>15} {'ratio':>6}  {'exits':<14}"
            f"{'est static':>11} {'est adaptive':>13} {'est ratio':>9}  {'meas/est (static / adaptive)':<29} est exits")
    print(head)
    print("-" * len(head))
    for r in rows:
        line = (f"{r['model']:<10} {r['batch']:>5} {r['static']:>13,.0f} {r['adaptive']:>15,.0f} "
                f"{r['ratio']:>6.2f}  {r['exits']:<14}")
        if "est_static" in r:
            line += (f"{r['est_static']:>11,.0f} {r['est_adaptive']:>13,.0f} {r['est_ratio']:>9.2f}  "
                     f"{r['meas_est']:<29} {r['est_exits']}")
        print(line)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except TargetError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
