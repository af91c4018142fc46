"""Fuzz adaptc's model loaders: mutated and random .tflite / .onnx files must fail only as AdaptcErrors.

What runs on each file is what ``adaptc info`` does -- ``loader.operators``, ``loader.unsupported``,
then ``loader.load`` (the import into TVM) -- and, with ``--compile``, ``adaptc.compile`` (float, the
default target) on the files that load. Every case ends as one of

  ok         it loaded (and compiled, with --compile);
  refused    every stage that failed raised an AdaptcError (counted per error class);
  untyped    some stage raised another exception (IndexError, struct.error, a tvm.error, ...): a bug;
  crash      the worker process died by a signal (a segfault in a C extension, the OOM killer): a bug;
  hang       a case ran past --timeout seconds (default 30): a bug.

The cases: the seed models (tests/data, adaptc/data, and ../shared/models/mlperf_tiny where it
exists; ``--seed-files`` adds others) mutated 1 to 3 times over, and files of random bytes. The
mutations are byte-level -- bit flips, random bytes, truncation, inserted and deleted ranges,
splices of two seeds of a format -- and schema-level: for TFLite, edits of a flatbuffer field of
a tensor, operator, operator code, buffer, quantization or options table (through its vtable),
of a shape, an operator's tensor indices, a quantization scale, a float constant (NaN, inf); for
ONNX, edits through the protobuf schema: an operator's type, inputs and attributes, an
initializer's dims, dtype, data (NaN, inf, cut short) and external-data reference (missing, out
of the model's directory), the graph inputs' shapes and dtypes, the opset. Case ``i`` of seed
``s`` is drawn from its own generator (``numpy.random.default_rng([s, i])``), so any case can be
rebuilt alone: ``--replay i`` runs it in this process and prints its traceback; ``--save DIR``
writes the files of the cases that failed.

Each case runs in a worker process (``--jobs``, default 2) with an address-space limit
(``--memory-gb``, default 4: a mutant that asks for terabytes gets a MemoryError, not the OOM
killer); a worker that dies or runs past the timeout is replaced. Most mutants fail in the
parse-level checks, before TVM, in milliseconds; the ones that load take 0.05-1 s.

    .venv/bin/python benchmarks/fuzz_loaders.py --cases 10000            # the full run
    .venv/bin/python benchmarks/fuzz_loaders.py --cases 500 --compile    # and compile what loads
    .venv/bin/python benchmarks/fuzz_loaders.py --replay 1234            # one case, with its traceback

tests/core/test_fuzz_loaders.py runs a few hundred cases of a fixed seed in CI.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import os
import signal
import struct
import sys
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SEED_DIRS = (ROOT / "tests" / "data", ROOT / "adaptc" / "data", ROOT.parent / "shared" / "models" / "mlperf_tiny")
FAILURES = ("untyped", "crash", "hang")

# Values that break assumptions: zero, signs, powers of two and their neighbours, extremes.
_INTERESTING = (0, 1, -1, 2, 3, 7, 8, 16, 127, 128, 255, 256, 1000, 23833, 65535, 65536, 2**31 - 1, -2**31, 2**24)


# ----------------------------------------------------------------------------------------- seeds


def seed_files(extra=()) -> list[Path]:
    """The seed models: every .tflite / .onnx under SEED_DIRS (those that exist) and ``extra``,
    one per distinct content, sorted by path."""
    paths = [p for d in SEED_DIRS if d.is_dir() for p in d.rglob("*") if p.suffix in (".tflite", ".onnx")]
    paths += [Path(p) for p in extra]
    seen, out = set(), []
    for p in sorted(paths):
        digest = hashlib.sha256(p.read_bytes()).hexdigest()
        if digest not in seen:
            seen.add(digest)
            out.append(p)
    return out


@dataclass
class Case:
    """One fuzz case: the file's name and bytes, files beside it (external data), what made it."""
    index: int
    name: str
    data: bytes
    how: list[str]
    beside: dict[str, bytes] = field(default_factory=dict)


# ------------------------------------------------------------------------------ byte mutations


def _flip_bits(rng, data: bytearray, seeds) -> str:
    n = int(rng.integers(1, 9))
    for _ in range(n):
        i = int(rng.integers(len(data)))
        data[i] ^= 1 << int(rng.integers(8))
    return f"flip {n} bit(s)"


def _random_bytes(rng, data: bytearray, seeds) -> str:
    i = int(rng.integers(len(data)))
    n = int(rng.integers(1, 17))
    data[i:i + n] = rng.integers(0, 256, min(n, len(data) - i), dtype=np.uint8).tobytes()
    return f"random bytes at {i}"


def _interesting_word(rng, data: bytearray, seeds) -> str:
    i = int(rng.integers(max(len(data) - 4, 1)))
    v = int(rng.choice(_INTERESTING))
    data[i:i + 4] = struct.pack("<I", v & 0xFFFFFFFF)[:len(data) - i]
    return f"word {v} at {i}"


def _truncate(rng, data: bytearray, seeds) -> str:
    keep = int(rng.integers(len(data)))
    del data[keep:]
    return f"truncate to {keep}"


def _insert(rng, data: bytearray, seeds) -> str:
    i = int(rng.integers(len(data) + 1))
    n = int(rng.integers(1, 257))
    data[i:i] = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
    return f"insert {n} at {i}"


def _delete(rng, data: bytearray, seeds) -> str:
    i = int(rng.integers(len(data)))
    n = int(rng.integers(1, 257))
    del data[i:i + n]
    return f"delete {n} at {i}"


def _splice(rng, data: bytearray, seeds) -> str:
    other = seeds[int(rng.integers(len(seeds)))][1]
    i, j = int(rng.integers(len(data))), int(rng.integers(len(other)))
    data[i:] = other[j:j + int(rng.integers(1, len(other) - j + 1))]
    return f"splice at {i}"


BYTE_MUTATIONS = (_flip_bits, _random_bytes, _interesting_word, _truncate, _insert, _delete, _splice)


# ---------------------------------------------------------------------------- TFLite mutations


def _fields(tab) -> list[int]:
    """Absolute positions of the fields present in a flatbuffer table (read through its vtable)."""
    vt = tab.Pos - struct.unpack_from("<i", tab.Bytes, tab.Pos)[0]
    size = struct.unpack_from("<H", tab.Bytes, vt)[0]
    offs = [struct.unpack_from("<H", tab.Bytes, vt + 4 + 2 * k)[0] for k in range((size - 4) // 2)]
    return [tab.Pos + o for o in offs if o]


def _vector(tab, slot: int) -> tuple[int, int]:
    """(position of the first element, length) of the vector in vtable slot ``slot`` (4, 6, ...)."""
    o = tab.Offset(slot)
    return (tab.Vector(o), tab.VectorLen(o)) if o else (0, 0)


def _tflite_tables(data: bytes) -> dict:
    """The model's tables by kind: tensors, operators, codes, buffers, quantizations, options."""
    import tflite

    model = tflite.Model.GetRootAsModel(data, 0)
    sub = model.Subgraphs(0)
    tensors = [sub.Tensors(i) for i in range(sub.TensorsLength())]
    ops = [sub.Operators(i) for i in range(sub.OperatorsLength())]
    return {"model": model, "sub": sub, "tensors": tensors, "operators": ops,
            "codes": [model.OperatorCodes(i) for i in range(model.OperatorCodesLength())],
            "buffers": [model.Buffers(i) for i in range(model.BuffersLength())],
            "quantizations": [q for t in tensors if (q := t.Quantization()) is not None],
            "options": [o for op in ops if (o := op.BuiltinOptions()) is not None]}


def _tflite_mutation(rng, data: bytearray, seeds) -> str:
    """One schema-level edit of a TFLite flatbuffer, in place (the layout stays: only values change)."""
    tables = _tflite_tables(bytes(data))
    kind = str(rng.choice(["field", "shape", "indices", "scale", "constant", "type", "opcode"]))

    def put(fmt, pos, value):
        struct.pack_into(fmt, data, pos, value)

    def pick(items):
        return items[int(rng.integers(len(items)))] if items else None

    if kind == "field":
        group = str(rng.choice(["tensors", "operators", "codes", "buffers", "quantizations", "options"]))
        table = pick(tables[group])
        spots = _fields(table._tab) if table is not None else []
        if spots:
            pos, width = pick(spots), int(rng.choice([1, 2, 4]))
            value = int(rng.choice(_INTERESTING)) & ((1 << 8 * width) - 1)
            put({1: "<B", 2: "<H", 4: "<I"}[width], pos, value)
            return f"tflite {group} field at {pos} := {value}"
    elif kind == "shape":
        t = pick(tables["tensors"])
        pos, n = _vector(t._tab, 4)
        if n:
            k = int(rng.integers(n))
            old = struct.unpack_from("<i", data, pos + 4 * k)[0]
            new = int(rng.choice([old + 1, old - 1, old * 2, 0, -1, int(rng.integers(1, 100_000)), 2**31 - 1]))
            put("<i", pos + 4 * k, int(np.int32(new & 0xFFFFFFFF)) if new >= 2**31 else new)
            return f"tflite shape of {t.Name()!r}[{k}] {old} -> {new}"
    elif kind == "indices":
        op = pick(tables["operators"])
        pos, n = _vector(op._tab, int(rng.choice([6, 8])))
        if n:
            k = int(rng.integers(n))
            new = int(rng.choice([-1, -2, 0, len(tables["tensors"]), len(tables["tensors"]) - 1,
                                  int(rng.integers(len(tables["tensors"]) + 1)), 2**31 - 1]))
            put("<i", pos + 4 * k, new)
            return f"tflite operator tensor index := {new}"
    elif kind == "scale":
        q = pick(tables["quantizations"])
        pos, n = _vector(q._tab, 8) if q is not None else (0, 0)
        if n:
            value = float(rng.choice([np.nan, np.inf, -np.inf, 0.0, -1.0, 1e30, 1e-30]))
            put("<f", pos + 4 * int(rng.integers(n)), value)
            return f"tflite quantization scale := {value}"
    elif kind == "constant":
        # a float weight made non-finite, or an int32 parameter (a shape, paddings, sizes, axes,
        # begin / end) made extreme
        import tflite

        words = [t for t in tables["tensors"] if t.Type() in (tflite.TensorType.FLOAT32, tflite.TensorType.INT32)
                 and 0 <= t.Buffer() < len(tables["buffers"]) and tables["buffers"][t.Buffer()].DataLength() >= 4]
        t = pick(words)
        if t is not None:
            pos, n = _vector(tables["buffers"][t.Buffer()]._tab, 4)
            at = pos + 4 * int(rng.integers(n // 4))
            if t.Type() == tflite.TensorType.FLOAT32:
                value = float(rng.choice([np.nan, np.inf, -np.inf, 1e38]))
                put("<f", at, value)
            else:
                value = int(np.int32(np.uint32(int(rng.choice(_INTERESTING)) & 0xFFFFFFFF)))
                put("<i", at, value)
            return f"tflite constant {t.Name()!r} element := {value}"
    elif kind == "type":
        t = pick(tables["tensors"])
        o = t._tab.Offset(6) if t is not None else 0
        if o:
            value = int(rng.integers(0, 21))
            put("<b", t._tab.Pos + o, value)
            return f"tflite type of {t.Name()!r} := {value}"
    elif kind == "opcode":
        code = pick(tables["codes"])
        o = code._tab.Offset(10) if code is not None else 0   # builtin_code (int32)
        if o:
            value = int(rng.integers(0, 210))
            put("<i", code._tab.Pos + o, value)
            return f"tflite builtin code := {value}"
    return _flip_bits(rng, data, seeds)


# ------------------------------------------------------------------------------ ONNX mutations


def _onnx_mutation(rng, model, beside: dict) -> str:
    """One schema-level edit of an ONNX ModelProto, in place."""
    import onnx
    from onnx import numpy_helper

    from adaptc.loader import ONNX_OPS

    graph = model.graph
    kind = str(rng.choice(["op_type", "input", "attribute", "dims", "dtype", "data", "external", "graph_input",
                           "opset", "node"]))

    def pick(items):
        return items[int(rng.integers(len(items)))] if len(items) else None

    names = [t for n in graph.node for t in n.output] + [i.name for i in graph.input] + \
            [t.name for t in graph.initializer]
    if kind == "op_type" and graph.node:
        node = pick(graph.node)
        node.op_type = str(pick(sorted(ONNX_OPS) + ["Sin", "If", "Loop", ""]))
        return f"onnx op_type of {node.name!r} := {node.op_type}"
    if kind == "input" and graph.node:
        node = pick(graph.node)
        choice = int(rng.integers(4))
        if choice == 0 and node.input:
            del node.input[int(rng.integers(len(node.input)))]
        elif choice == 1 and node.input:
            node.input[int(rng.integers(len(node.input)))] = str(pick(names + ["", "missing"]))
        elif choice == 2:
            node.input.append(str(pick(names + [""])))
        elif node.output:
            node.output[int(rng.integers(len(node.output)))] = str(pick(names + ["", "fresh"]))
        return f"onnx inputs/outputs of {node.name!r} (edit {choice})"
    if kind == "attribute":
        nodes = [n for n in graph.node if n.attribute]
        node = pick(nodes)
        if node is not None:
            a = pick(node.attribute)
            if a.type == onnx.AttributeProto.INT:
                a.i = int(rng.choice(_INTERESTING))
            elif a.type == onnx.AttributeProto.INTS and a.ints:
                a.ints[int(rng.integers(len(a.ints)))] = int(rng.choice(_INTERESTING))
                if rng.random() < 0.3:
                    del a.ints[-1]
            elif a.type == onnx.AttributeProto.FLOAT:
                a.f = float(rng.choice([np.nan, np.inf, 0.0, -1.0, 1e30]))
            elif a.type == onnx.AttributeProto.STRING:
                a.s = bytes(rng.choice([b"", b"nearest", b"linear", b"bogus", b"\xff\xfe"]))
            elif a.type == onnx.AttributeProto.TENSOR and a.t.dims:
                a.t.dims[0] += int(rng.choice([-1, 1, 1000]))
            else:
                node.attribute.remove(a)
            return f"onnx attribute {a.name!r} of {node.name!r}"
    if kind in ("dims", "dtype", "data", "external") and graph.initializer:
        t = pick(graph.initializer)
        if kind == "dims":
            if t.dims:
                k = int(rng.integers(len(t.dims)))
                t.dims[k] = int(rng.choice([t.dims[k] + 1, t.dims[k] - 1, 0, -1, 2**40, 1]))
            else:
                t.dims.append(int(rng.choice([0, 2, 1000])))
            return f"onnx dims of initializer {t.name!r}"
        if kind == "dtype":
            t.data_type = int(rng.integers(0, 24))
            return f"onnx dtype of initializer {t.name!r} := {t.data_type}"
        if kind == "data":
            arr = numpy_helper.to_array(t)
            if arr.dtype.kind in "fiu" and arr.size and rng.random() < 0.8:
                arr = arr.copy()
                if arr.dtype.kind == "f":       # a weight made non-finite
                    arr.reshape(-1)[int(rng.integers(arr.size))] = rng.choice([np.nan, np.inf, -np.inf])
                else:                           # a shape, pads, axes, sizes, starts / ends made extreme
                    info = np.iinfo(arr.dtype)
                    value = int(np.clip(int(rng.choice(_INTERESTING)), info.min, info.max))
                    arr.reshape(-1)[int(rng.integers(arr.size))] = value
                t.CopyFrom(numpy_helper.from_array(arr, t.name))
                return f"onnx initializer {t.name!r} element edited"
            if t.raw_data:
                t.raw_data = t.raw_data[:int(rng.integers(len(t.raw_data)))]
                return f"onnx initializer {t.name!r} raw data cut"
        if kind == "external":
            raw = t.raw_data or numpy_helper.to_array(t).tobytes()
            location = str(rng.choice(["weights.bin", "weights.bin", "missing.bin", "../outside.bin",
                                       "/etc/hostname", "sub/../../x.bin", "."]))
            del t.external_data[:]
            t.ClearField("raw_data")
            t.data_location = onnx.TensorProto.EXTERNAL
            length = len(raw) + int(rng.choice([0, 0, 1, -1, 1000]))
            for key, value in (("location", location), ("offset", "0"), ("length", str(max(length, 0)))):
                e = t.external_data.add()
                e.key, e.value = key, value
            if location == "weights.bin":
                beside[location] = raw
            return f"onnx initializer {t.name!r} as external data {location!r} (length {length})"
    if kind == "graph_input" and graph.input:
        vi = pick(graph.input)
        tt = vi.type.tensor_type
        if rng.random() < 0.5 and tt.shape.dim:
            d = pick(tt.shape.dim)
            d.dim_value = int(rng.choice([0, 1, 2, 3, 100_000, 2**31, -1]))
        else:
            tt.elem_type = int(rng.integers(0, 24))
        return f"onnx graph input {vi.name!r}"
    if kind == "opset" and model.opset_import:
        model.opset_import[0].version = int(rng.integers(1, 26))
        return f"onnx opset := {model.opset_import[0].version}"
    if kind == "node" and graph.node:
        i, j = int(rng.integers(len(graph.node))), int(rng.integers(len(graph.node)))
        if rng.random() < 0.5:
            del graph.node[i]
            return f"onnx node #{i} removed"
        a, b = onnx.NodeProto(), onnx.NodeProto()
        a.CopyFrom(graph.node[i])
        b.CopyFrom(graph.node[j])
        graph.node[i].CopyFrom(b)
        graph.node[j].CopyFrom(a)
        return f"onnx nodes #{i} and #{j} swapped"
    return "onnx (no edit)"


# ----------------------------------------------------------------------------------- the cases


_SEEDS: list[tuple[Path, bytes]] | None = None


def _seeds(extra=()) -> list[tuple[Path, bytes]]:
    global _SEEDS
    if _SEEDS is None:
        _SEEDS = [(p, p.read_bytes()) for p in seed_files(extra)]
    return _SEEDS


def make_case(seed: int, index: int, extra=()) -> Case:
    """Case ``index`` of ``seed``: 8% random files, else a seed model mutated 1 to 3 times (schema
    edits in about half the cases, then byte-level edits)."""
    rng = np.random.default_rng([seed, index])
    seeds = _seeds(extra)
    if rng.random() < 0.08:
        suffix = str(rng.choice([".tflite", ".onnx"]))
        data = bytearray(rng.integers(0, 256, int(rng.integers(0, 4096)), dtype=np.uint8).tobytes())
        if suffix == ".tflite" and len(data) >= 8 and rng.random() < 0.5:
            data[4:8] = b"TFL3"
        return Case(index, f"random{suffix}", bytes(data), [f"random {len(data)} bytes"])
    path, original = seeds[int(rng.integers(len(seeds)))]
    same = [s for s in seeds if s[0].suffix == path.suffix]
    data, how, beside = bytearray(original), [f"seed {path.name}"], {}
    if rng.random() < 0.55:
        try:
            if path.suffix == ".tflite":
                for _ in range(int(rng.integers(1, 4))):
                    how.append(_tflite_mutation(rng, data, same))
            else:
                import onnx

                model = onnx.load_from_string(bytes(data))
                for _ in range(int(rng.integers(1, 4))):
                    how.append(_onnx_mutation(rng, model, beside))
                data = bytearray(model.SerializeToString())
        except Exception as e:      # an edit that met a layout it cannot walk: the seed unchanged
            how.append(f"(schema edit skipped: {type(e).__name__})")
    if len(how) == 1 or rng.random() < 0.3:
        for _ in range(int(rng.integers(1, 4))):
            if not data:
                break
            mutation = BYTE_MUTATIONS[int(rng.integers(len(BYTE_MUTATIONS)))]
            how.append(mutation(rng, data, same))
    return Case(index, f"mutant{path.suffix}", bytes(data), how, beside)


# -------------------------------------------------------------------------------- one check


def check(path: Path, compile_: bool = False) -> dict:
    """What ``adaptc info`` does to ``path`` -- operators, unsupported, load -- and with
    ``compile_`` adaptc.compile on a model that loads: {"status": "ok" | "refused" |
    "untyped", "errors": [stage: error class], "traceback": the first untyped one's}."""
    import adaptc
    from adaptc import loader
    from adaptc.errors import AdaptcError

    stages = [("operators", lambda: loader.operators(path)), ("unsupported", lambda: loader.unsupported(path)),
              ("load", lambda: loader.load(path))]
    if compile_:
        stages.append(("compile", lambda: adaptc.compile(path)))
    errors, trace, status = [], None, "ok"
    for stage, run in stages:
        try:
            run()
        except AdaptcError as e:
            errors.append(f"{stage}: {type(e).__name__}")
            status = "refused" if status == "ok" else status
            if stage == "load":
                break
        except Exception as e:
            errors.append(f"{stage}: {type(e).__name__}")
            trace = trace or f"{stage}: " + "".join(traceback.format_exception(e))[-4000:]
            status = "untyped"
            if stage == "load":
                break
    return {"status": status, "errors": errors, "traceback": trace}


def run_case(case: Case, workdir: Path, compile_: bool) -> dict:
    """Write the case's files into a fresh directory under ``workdir`` and check it."""
    d = Path(tempfile.mkdtemp(dir=workdir))
    try:
        path = d / case.name
        path.write_bytes(case.data)
        for name, data in case.beside.items():
            (d / name).write_bytes(data)
        return check(path, compile_)
    finally:
        for p in d.iterdir():
            p.unlink()
        d.rmdir()


# ---------------------------------------------------------------------------------- the workers


def _serve(conn, seed: int, extra, compile_: bool, memory_gb: float) -> None:
    """A worker: build and check the cases it is sent (by index) until it is sent None."""
    import resource

    os.environ.setdefault("TVM_NUM_THREADS", "1")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)                      # TVM's and onnx's messages: the verdicts say enough
    os.dup2(devnull, 2)
    import adaptc.api  # noqa: F401 -- TVM loads once per worker

    _seeds(extra)
    if memory_gb:
        limit = int(memory_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    with tempfile.TemporaryDirectory(prefix="fuzz-loaders-") as workdir:
        conn.send("ready")
        while (index := conn.recv()) is not None:
            case = make_case(seed, index, extra)
            result = run_case(case, Path(workdir), compile_)
            conn.send({"index": index, "how": case.how, **result})


class _Worker:
    def __init__(self, ctx, args):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(child, *args), daemon=True)
        self.proc.start()
        child.close()
        self.index, self.since, self.ready = None, 0.0, False

    def submit(self, index: int) -> None:
        self.index, self.since = index, time.monotonic()
        self.conn.send(index)

    def stop(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join()


def run(cases: int, seed: int = 0, jobs: int = 2, timeout: float = 30.0, compile_: bool = False,
        memory_gb: float = 4.0, extra=(), start: int = 0, progress=None) -> list[dict]:
    """The results of cases ``start`` .. ``start + cases - 1`` of ``seed``, each checked in a worker
    process; a worker that dies (crash) or runs past ``timeout`` seconds (hang) is replaced."""
    ctx = mp.get_context("spawn")
    args = (seed, tuple(str(p) for p in extra), compile_, memory_gb)
    pending, results = list(range(start + cases - 1, start - 1, -1)), []
    workers = [_Worker(ctx, args) for _ in range(max(1, min(jobs, cases)))]

    def failed(w: _Worker, status: str, why: str) -> dict:
        w.stop()
        return {"index": w.index, "how": [], "status": status, "errors": [why], "traceback": None}

    try:
        while pending or any(w.index is not None for w in workers):
            for w in workers:
                if w.ready and w.index is None and pending:
                    w.submit(pending.pop())
            busy = [w for w in workers if w.index is not None or not w.ready]
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
                    done = message
                if done is None and w.index is not None and not w.proc.is_alive():
                    code = w.proc.exitcode
                    why = f"signal {signal.Signals(-code).name}" if code and code < 0 else f"exit code {code}"
                    done = failed(w, "crash", f"the worker died ({why})")
                elif done is None and w.index is not None and time.monotonic() - w.since > timeout:
                    done = failed(w, "hang", f"ran past {timeout:g} s")
                elif done is None and not w.ready and not w.proc.is_alive():
                    raise RuntimeError(f"a worker process failed to start (exit code {w.proc.exitcode})")
                if done is not None:
                    results.append(done)
                    if progress:
                        progress(done)
                    if w.proc.is_alive():
                        w.index = None
                    else:
                        w.stop()
                        workers[i] = _Worker(ctx, args)
    finally:
        for w in workers:
            if w.proc.is_alive() and w.index is None and w.ready:
                w.conn.send(None)
            w.stop() if w.index is not None else w.proc.join(timeout=10)
    return sorted(results, key=lambda r: r["index"])


def summary(results: list[dict]) -> dict:
    """Counts: cases, per status, per error class of the refusals, and the failing case indices."""
    status = Counter(r["status"] for r in results)
    refusals = Counter(e.split(": ", 1)[1] for r in results if r["status"] == "refused" for e in r["errors"][-1:])
    return {"cases": len(results), **{s: status[s] for s in ("ok", "refused", *FAILURES)},
            "refused_as": dict(refusals.most_common()),
            "failing": [r["index"] for r in results if r["status"] in FAILURES]}


# --------------------------------------------------------------------------------------- main


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=1000, help="number of cases (default 1000)")
    ap.add_argument("--seed", type=int, default=0, help="the run's seed (default 0)")
    ap.add_argument("--start", type=int, default=0, help="index of the first case (default 0)")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds per case before it is a hang (default 30)")
    ap.add_argument("--memory-gb", type=float, default=4.0, help="address-space limit per worker (0: none)")
    ap.add_argument("--compile", action="store_true", help="also adaptc.compile the files that load")
    ap.add_argument("--seed-files", nargs="*", default=(), type=Path, help="more seed models")
    ap.add_argument("--replay", type=int, metavar="I", help="run case I in this process and print its outcome")
    ap.add_argument("--save", type=Path, metavar="DIR", help="write the files of failing cases here")
    ap.add_argument("--json", type=Path, metavar="FILE", help="write the summary and the failures here")
    args = ap.parse_args(argv)

    if args.replay is not None:
        case = make_case(args.seed, args.replay, args.seed_files)
        print(f"case {args.replay}: {'; '.join(case.how)}")
        with tempfile.TemporaryDirectory() as d:
            result = run_case(case, Path(d), args.compile)
        print(json.dumps({k: v for k, v in result.items() if k != "traceback"}))
        if result["traceback"]:
            print(result["traceback"])
        return int(result["status"] in FAILURES)

    from tqdm import tqdm

    print(f"fuzzing the loaders: {args.cases} cases of seed {args.seed} from {len(seed_files(args.seed_files))} "
          f"seed models, {args.jobs} workers, {args.timeout:g} s per case", file=sys.stderr)
    t0 = time.perf_counter()
    with tqdm(total=args.cases, unit="case", file=sys.stderr) as bar:
        results = run(args.cases, args.seed, args.jobs, args.timeout, args.compile, args.memory_gb,
                      args.seed_files, args.start, progress=lambda r: bar.update())
    wall = time.perf_counter() - t0
    s = summary(results)
    print(f"{s['cases']} cases in {wall:.0f} s: {s['ok']} ok, {s['refused']} refused with a typed error, "
          f"{s['untyped']} untyped, {s['crash']} crashes, {s['hang']} hangs")
    print("refused as: " + ", ".join(f"{k} {v}" for k, v in s["refused_as"].items()))
    bad = [r for r in results if r["status"] in FAILURES]
    for r in bad:
        print(f"\ncase {r['index']} ({r['status']}): {'; '.join(r['how'])}\n  {'; '.join(r['errors'])}")
        if r["traceback"]:
            print("  " + r["traceback"].strip().replace("\n", "\n  "))
    if args.save and bad:
        args.save.mkdir(parents=True, exist_ok=True)
        for r in bad:
            case = make_case(args.seed, r["index"], args.seed_files)
            (args.save / f"case{r['index']}_{case.name}").write_bytes(case.data)
    if args.json:
        args.json.write_text(json.dumps({**s, "seconds": round(wall, 1), "seed": args.seed,
                                         "failures": bad}, indent=1))
    return int(bool(bad))


if __name__ == "__main__":
    sys.exit(main())
