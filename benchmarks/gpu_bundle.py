"""The GPU check as a bundle: compiled here, run on a GPU machine that has no TVM compiler.

The device machines lent to some tasks have CUDA 13 and Python 3.12 but no TVM, and a call
carries at most 64 MiB (the apache-tvm wheel is 100 MB, its compiler library 259 MB). What runs
a batched build needs is far smaller: TVM's runtime libraries (libtvm_runtime*.so, CUDA 13 like
the machine), its Python package, tvm_ffi for Python 3.12, and adaptc (targets/cuda/runtime.py runs it).

    # here (with the compiler): models, CUDA builds, llvm reference results, the runtime (~40 MB)
    .venv/bin/python benchmarks/gpu_bundle.py make .gpu            # .gpu/ is in .gitignore
    # there (device tool: carry [".gpu"]):
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .gpu/wheels/*.whl && \\
      PYTHONPATH=.gpu/site:/tmp/site TVM_USE_RUNTIME_LIB=1 python3 benchmarks/gpu_bundle.py run .gpu

``make`` builds the models of benchmarks/gpu_throughput.py (digits: calibrated exits; resnet8ee:
random weights, thresholds for about 50/25/25 % of the pool) static and adaptive for
``--target`` (cuda, sm_90; llvm makes a bundle this machine can run, to check the path), exports
each (BatchedModel.export), and stores the input pool, the llvm build's results on it at every
level, and the simulator's batch-1 GPU estimates. ``run`` loads each build with the TVM runtime
alone, checks its results on the whole pool at every level against the llvm ones (label, exit,
logits: bit for bit), then times static vs adaptive at each batch size as gpu_throughput does and
prints the same table.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
KINDS = ("static", "adaptive")


def make(args) -> int:
    sys.path.insert(0, str(HERE))
    import gpu_throughput as bench
    import tvm
    import tvm_ffi

    from adaptc.targets.cuda import batched as cuda

    out = Path(args.dir)
    if out.exists():
        shutil.rmtree(out)
    (out / "models").mkdir(parents=True)
    meta = {"target": args.target, "arch": args.arch, "batches": args.batches, "models": {}}
    with tempfile.TemporaryDirectory(prefix="adaptc-gpu-bundle-") as tmp:
        probe_args = argparse.Namespace(**{**vars(args), "target": "llvm"})   # resnet8ee's probe runs here
        for name, static, adaptive, pool in bench.models(Path(tmp), probe_args):
            np.save(out / "models" / f"{name}_pool.npy", pool)
            est = bench.estimate(static, adaptive, pool[:args.sim_samples], args.device)
            meta["models"][name] = {"est_static": est[0], "est_adaptive": est[1],
                                    "est_exits": [float(v) for v in est[2]]}
            for kind, m in zip(KINDS, (static, adaptive)):
                built = cuda.build(m, args.target, args.arch)
                built.export(out / "models" / f"{name}_{kind}")
                ref = built if args.target == "llvm" else cuda.build(m, "llvm")
                np.savez(out / "models" / f"{name}_{kind}" / "llvm_results.npz", **bench.results_by_level(ref, pool))
                print(f"{name} {kind}: built and exported for {args.target}", flush=True)
    (out / "bundle.json").write_text(json.dumps(meta, indent=1) + "\n")

    # the runtime: TVM's package less its compiler library and third-party headers
    src = Path(tvm.__file__).parent
    shutil.copytree(src, out / "site" / "tvm", ignore=shutil.ignore_patterns(
        "libtvm_compiler.so", "3rdparty", "__pycache__", "include", "src", "cmake", "web"))
    # adaptc as installed (the runtime imports adaptc.targets.cuda.runtime and its few light modules)
    skip = shutil.ignore_patterns("__pycache__", "data")
    shutil.copytree(REPO / "adaptc", out / "site" / "adaptc", ignore=skip)
    for sub in ("passes", "targets", "templates"):
        shutil.copytree(REPO / sub, out / "site" / "adaptc" / sub, ignore=skip)
    wheels = out / "wheels"
    wheels.mkdir()
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                    "--python-version", args.python, "--implementation", "cp",
                    "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_24_x86_64",
                    "--platform", "manylinux_2_17_x86_64", "--platform", "manylinux2014_x86_64",
                    "-d", str(wheels), f"apache-tvm-ffi=={tvm_ffi.__version__}"], check=True)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"bundle {out}: {size / 2**20:.1f} MiB")
    return 0


def run(args) -> int:
    sys.path.insert(0, str(HERE))
    import gpu_throughput as bench
    import tvm

    from adaptc.targets.cuda import runtime as batched_runtime

    out = Path(args.dir)
    meta = json.loads((out / "bundle.json").read_text())
    batches = [int(b) for b in args.batches.split(",")] if args.batches else meta["batches"]
    print(f"tvm {tvm.__version__} (runtime only: {'tvm.relax' not in sys.modules}); "
          f"device {'cuda' if meta['target'] == 'cuda' else 'cpu'}", flush=True)
    rows = []
    for name, est in meta["models"].items():
        pool = np.load(out / "models" / f"{name}_pool.npy")
        runners = {}
        for kind in KINDS:
            d = out / "models" / f"{name}_{kind}"
            r = batched_runtime.load(d)
            t = time.perf_counter()
            diff = bench.first_difference(bench.results_by_level(r, pool), dict(np.load(d / "llvm_results.npz")))
            if diff is not None:
                print(f"{name} {kind}: {diff} (field, level) differs from llvm", flush=True)
                return 1
            print(f"{name} {kind}: {meta['target']} == llvm on {len(pool)} inputs x {r.levels} level(s) "
                  f"({time.perf_counter() - t:.1f} s)", flush=True)
            runners[kind] = r
        for batch in batches:
            s_ips, _ = bench.throughput(runners["static"], pool, batch, args.images, args.repeat)
            a_ips, exits = bench.throughput(runners["adaptive"], pool, batch, args.images, args.repeat)
            row = {"model": name, "batch": batch, "static": s_ips, "adaptive": a_ips,
                   "exits": bench.fmt_shares(bench.shares(exits, runners["adaptive"].levels))}
            if batch == 1:
                row["est"] = est
            rows.append(row)
    print()
    print(f"target {meta['target']}; median of {args.repeat} repeats; simulator estimate at batch 1")
    print(f"{'model':<10} {'batch':>5} {'static img/s':>13} {'adaptive img/s':>15} {'ratio':>6}  {'exits':<12}"
          f"{'est static':>11} {'est adaptive':>13}  meas/est (static / adaptive)")
    for r in rows:
        line = (f"{r['model']:<10} {r['batch']:>5} {r['static']:>13,.0f} {r['adaptive']:>15,.0f} "
                f"{r['adaptive'] / r['static']:>6.2f}  {r['exits']:<12}")
        if "est" in r:
            e = r["est"]
            line += (f"{e['est_static']:>11,.0f} {e['est_adaptive']:>13,.0f}  "
                     f"{r['static'] / e['est_static']:.3f} / {r['adaptive'] / e['est_adaptive']:.3f}")
        print(line)
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make", help="build the bundle here (needs the compiler)")
    m.add_argument("dir")
    m.add_argument("--target", choices=["cuda", "llvm"], default="cuda")
    m.add_argument("--arch", default="sm_90")
    m.add_argument("--python", default="3.12", help="the device machine's Python (for the tvm_ffi wheel)")
    m.add_argument("--batches", default="1,64,1024")
    m.add_argument("--images", type=int, default=64)
    m.add_argument("--device", default="h200", choices=["h100", "h200"])
    m.add_argument("--share0", type=float, default=0.5)
    m.add_argument("--share1", type=float, default=0.25)
    m.add_argument("--probe", type=int, default=256)
    m.add_argument("--sim-samples", type=int, default=64)
    m.add_argument("--seed", type=int, default=0)
    r = sub.add_parser("run", help="check and time the bundle (TVM runtime only)")
    r.add_argument("dir")
    r.add_argument("--batches", help="default: the bundle's")
    r.add_argument("--repeat", type=int, default=10)
    r.add_argument("--images", type=int, default=64)
    args = p.parse_args(argv)
    if args.cmd == "make":
        args.batches = [int(b) for b in args.batches.split(",")]
        return make(args)
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
