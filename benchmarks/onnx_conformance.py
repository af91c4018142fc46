"""How adaptc does on the ONNX backend node test cases that ship with the ``onnx`` package.

Every node test case that tests an operator of ``adaptc.loader.ONNX_OPS`` (read at run time), or
whose operators are all there, is compiled for the host (``adaptc.compile(path,
target="cortex-m4")``: float32 C) and each of its data sets is run through the generated C
(``m.run``) against the expected outputs (float: ``np.allclose(rtol=1e-4, atol=1e-5)``; integers
exactly). Each case is one of

  pass       every output matches;
  refused    an AdaptcError at load / compile (the message is recorded; "unclear" counts those
             whose message names no operator of the case -- a user cannot act on them);
  wrong      the numbers or the output's shape differ, or a crash: a Python exception that is
             not an AdaptcError, generated C that does not build, an error running the C, a
             worker process that died or ran past --timeout. The serious category;
  n.a.       what the C entry point (one float32 input, one float32 output, static non-empty
             tensors) cannot express at all: several data inputs (Add's two tensors), several
             outputs, integer tensors, empty tensors, sequences / optionals -- with the reason.

Inputs that real models carry as constants -- an operator's parameters: Conv's W and B, Gemm's B
and C, MatMul's B, Pad's pads / value / axes, Reshape's shape, ReduceMean's axes, Clip's min /
max, ... (``PARAMETER_INPUTS`` in tests/helpers/onnx_cases.py) -- are made initializers holding
the test data's values before compiling, so that those cases are applicable. Cases come from
the package's ``backend/test/data/node`` directory, or ``--data DIR`` in that layout, or, where
the package ships none (onnx 1.23), from its generator (``load_node_model_tests``).

Each case runs in a worker process, so that a crash (even a segfault in the generated C) or a
hang costs that case only. The same cases guard the test suite:
tests/models/test_onnx_conformance.py.

    .venv/bin/python benchmarks/onnx_conformance.py                     # all, table per operator
    .venv/bin/python benchmarks/onnx_conformance.py --op Conv --json conv.json
    .venv/bin/python benchmarks/onnx_conformance.py --jobs 4 --timeout 120
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import re
import signal
import sys
import tempfile
import time
from collections import Counter, defaultdict
from multiprocessing.connection import wait
from pathlib import Path

from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "helpers"))

import onnx_cases as oc  # noqa: E402

STATUSES = ("pass", "refused", "wrong", "n/a")


# ---------------------------------------------------------------------------------- the workers


def _serve(conn) -> None:
    """A worker: check the Prepared cases it is sent until it is sent None."""
    os.environ.setdefault("TVM_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory(prefix="onnx-conformance-") as workdir:
        import adaptc.api  # noqa: F401 -- TVM loads once per worker, before the first case's clock
        conn.send("ready")
        while (task := conn.recv()) is not None:
            conn.send(oc.check(task, workdir))


class _Worker:
    def __init__(self, ctx):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(child,), daemon=True)
        self.proc.start()
        child.close()
        self.task, self.since, self.ready = None, 0.0, False

    def submit(self, task) -> None:
        self.task, self.since = task, time.monotonic()
        self.conn.send(task)

    def stop(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join()


def run_all(tasks: list, jobs: int, timeout: float, progress) -> list:
    """The Results of ``tasks`` (Prepared), each checked in a worker process; a worker that dies
    or runs past ``timeout`` seconds on a case is replaced and the case counts as wrong."""
    ctx = mp.get_context("spawn")
    pending, results = list(reversed(tasks)), []
    workers = [_Worker(ctx) for _ in range(max(1, min(jobs, len(tasks))))]
    try:
        while pending or any(w.task for w in workers):
            for w in workers:
                if w.ready and w.task is None and pending:
                    w.submit(pending.pop())
            busy = [w for w in workers if w.task or not w.ready]
            ready = wait([w.conn for w in busy] + [w.proc.sentinel for w in busy], timeout=1.0)
            for i, w in enumerate(workers):
                done = None
                if w.conn in ready:
                    try:
                        message = w.conn.recv()
                    except (EOFError, OSError):
                        message = None
                    if message == "ready":
                        w.ready = True
                        continue
                    if message is not None:
                        done = message
                if done is None and w.task is not None and not w.proc.is_alive():
                    code = w.proc.exitcode
                    why = (f"signal {signal.Signals(-code).name}" if code and code < 0 else f"exit code {code}")
                    done = _crashed(w, f"the worker process died ({why}) while compiling or running the case")
                elif done is None and w.task is not None and time.monotonic() - w.since > timeout:
                    done = _crashed(w, f"timed out after {timeout:g} s", kind="timeout")
                elif done is None and not w.ready and not w.proc.is_alive():
                    raise RuntimeError(f"a worker process failed to start (exit code {w.proc.exitcode})")
                if done is not None:
                    results.append(done)
                    progress(done)
                    if w.proc.is_alive():
                        w.task = None
                    else:
                        w.stop()
                        workers[i] = _Worker(ctx)
    finally:
        for w in workers:
            if w.proc.is_alive() and w.task is None and w.ready:
                w.conn.send(None)
            w.stop() if w.task is not None else w.proc.join(timeout=10)
    return results


def _crashed(w: _Worker, why: str, kind: str = "crash"):
    p = w.task
    w.stop()
    return oc.Result(p.name, p.op, "wrong", why, kind=kind, folded=p.folded, ops=p.ops,
                     seconds=round(time.monotonic() - w.since, 3))


# ------------------------------------------------------------------------------------- reporting


def summary(results: list) -> dict:
    per_op: dict[str, Counter] = defaultdict(Counter)
    for r in results:
        per_op[r.op][r.status] += 1
        per_op[r.op]["unclear"] += r.status == "refused" and not r.clear
    total = sum(per_op.values(), Counter())
    applicable = total["pass"] + total["refused"] + total["wrong"]
    return {"per_operator": {op: {k: c[k] for k in (*STATUSES, "unclear")} for op, c in sorted(per_op.items())},
            "total": {k: total[k] for k in (*STATUSES, "unclear")}, "applicable": applicable,
            "pass_rate": total["pass"] / applicable if applicable else None}


def report(cases: list, results: list, supported) -> str:
    by_name = {r.name: r for r in results}
    s = summary(results)
    lines = [f"{'operator':<20} {'cases':>5} {'pass':>5} {'refused':>8} {'(unclear)':>9} {'wrong':>6} {'n.a.':>5}"
             f" {'pass rate':>10}"]
    for op, c in s["per_operator"].items():
        app = c["pass"] + c["refused"] + c["wrong"]
        rate = f"{c['pass'] / app:.0%}" if app else "-"
        lines.append(f"{op:<20} {sum(c[k] for k in STATUSES):>5} {c['pass']:>5} {c['refused']:>8} "
                     f"{c['unclear']:>9} {c['wrong']:>6} {c['n/a']:>5} {rate:>10}")
    t = s["total"]
    rate = f"{s['pass_rate']:.1%}" if s["pass_rate"] is not None else "-"
    lines.append(f"{'all':<20} {sum(t[k] for k in STATUSES):>5} {t['pass']:>5} {t['refused']:>8} "
                 f"{t['unclear']:>9} {t['wrong']:>6} {t['n/a']:>5} {rate:>10}")
    lines.append(f"\npass rate over the {s['applicable']} applicable cases: {rate} "
                 f"({t['pass']} pass, {t['refused']} refused, {t['wrong']} wrong)")

    mixed = defaultdict(lambda: [0, set()])
    for c in cases:
        other = set(c.ops) - set(supported)
        if other:
            mixed[c.op][0] += 1
            mixed[c.op][1] |= other
    if mixed:
        lines.append("\ncases of a supported operator whose graph has other operators (e.g. *_expanded: the "
                     "operator's function body):")
        for op, (n, other) in sorted(mixed.items()):
            lines.append(f"  {op}: {n} case(s), also {', '.join(sorted(other))}")

    wrong = [r for r in results if r.status == "wrong"]
    lines.append(f"\nwrong ({len(wrong)}):" if wrong else "\nwrong: none")
    for r in sorted(wrong, key=lambda r: (r.op, r.name)):
        lines.append(f"  {r.name} [{r.op}, {r.kind}]: {r.detail}")

    unclear = [r for r in results if r.status == "refused" and not r.clear]
    if unclear:
        lines.append(f"\nrefusals that name no operator of the case ({len(unclear)}):")
        for r in sorted(unclear, key=lambda r: (r.op, r.name)):
            lines.append(f"  {r.name} [{r.op}]: {'; '.join(oc.refusal_reason(r))}")

    reasons = Counter()
    for r in results:
        if r.status == "refused":
            for reason in oc.refusal_reason(r):
                reasons[(r.op + (" (expanded)" if oc.is_expanded(r.name) else ""), reason)] += 1
    if reasons:
        lines.append("\nrefusal reasons (tested operator <- what adaptc says), most common first:")
        for (op, reason), n in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"  {n:>3}  {op} <- {reason}")

    na = Counter((r.op, re.sub(r"'[^']*'", "'…'", r.detail)) for r in results if r.status == "n/a")
    if na:
        lines.append("\nnot applicable:")
        for (op, why), n in sorted(na.items(), key=lambda kv: (kv[0][0], -kv[1])):
            names = [r.name for r in results if r.status == "n/a" and r.op == op
                     and re.sub(r"'[^']*'", "'…'", r.detail) == why]
            shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
            lines.append(f"  {n:>3}  {op}: {why}  [{shown}]")
    folded = [r for r in results if r.folded and r.status != "n/a"]
    if folded:
        lines.append(f"\n{len(folded)} applicable case(s) compiled with parameter inputs as initializers "
                     f"({', '.join(sorted({f'{r.op}: ' + '/'.join(r.folded) for r in folded}))})")
    assert all(c.name in by_name for c in cases)
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--op", help="only the cases of this ONNX operator (e.g. Conv)")
    ap.add_argument("--json", type=Path, metavar="FILE", help="write the per-case results here")
    ap.add_argument("--jobs", type=int, default=min(4, os.cpu_count() or 1),
                    help="worker processes (default: min(4, CPUs))")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per case before it counts as wrong")
    ap.add_argument("--data", type=Path, metavar="DIR",
                    help="node test cases in the onnx/backend/test/data/node layout (default: the installed "
                         "package's, or its generator)")
    args = ap.parse_args(argv)

    import onnx

    from adaptc.loader import ONNX_OPS

    supported = frozenset(ONNX_OPS)
    source = args.data or oc.data_dir() or "generated in memory by onnx.backend.test.loader"
    cases = oc.selected(oc.node_cases(args.data), supported)
    if args.op:
        ops = sorted({c.op for c in cases})
        cases = [c for c in cases if c.op.lower() == args.op.lower()]
        if not cases:
            ap.error(f"no case tests {args.op!r}; the selected cases test {', '.join(ops)}")
    print(f"onnx {onnx.__version__} node test cases ({source}): {len(cases)} of adaptc's operators "
          f"({', '.join(sorted(supported))}); target {oc.TARGET}, host build", file=sys.stderr)

    prepared = [oc.prepare(c) for c in cases]
    results = [p for p in prepared if isinstance(p, oc.Result)]
    tasks = [p for p in prepared if isinstance(p, oc.Prepared)]
    counts = Counter()
    start = time.perf_counter()
    with tqdm(total=len(tasks), unit="case", desc="compile + run", file=sys.stderr) as bar:
        def progress(r):
            counts[r.status] += 1
            bar.set_postfix_str(f"{r.name[:28]} pass {counts['pass']} refused {counts['refused']} "
                                f"wrong {counts['wrong']}", refresh=False)
            bar.update()
        results += run_all(tasks, args.jobs, args.timeout, progress)
    order = {c.name: i for i, c in enumerate(cases)}
    results.sort(key=lambda r: order[r.name])

    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "onnx": onnx.__version__, "source": str(source), "target": oc.TARGET,
            "tolerance": {"rtol": oc.RTOL, "atol": oc.ATOL}, "supported": sorted(supported),
            "summary": summary(results), "cases": [r.as_dict() for r in results]}, indent=1) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    print(f"{len(tasks)} cases compiled and run in {time.perf_counter() - start:.0f} s "
          f"({args.jobs} worker(s))\n", file=sys.stderr)
    print(report(cases, results, supported))
    return 0


if __name__ == "__main__":
    sys.exit(main())
