"""The ONNX backend node test cases of the installed ``onnx`` package, run through adaptc.

Shared by ``tests/models/test_onnx_conformance.py`` and ``benchmarks/onnx_conformance.py``.

Where the cases come from: a directory laid out as ``onnx/backend/test/data/node``
(``<case>/model.onnx``, ``<case>/test_data_set_<i>/input_<j>.pb`` / ``output_<j>.pb``) when one
is given or the installed package ships it; otherwise -- onnx 1.23's wheel ships no node data --
the same cases generated in memory by ``onnx.backend.test.loader.load_node_model_tests()`` (the
generator the data directory is written from; ~5 s, no files).

Which cases: every case whose operators are all in ``adaptc.loader.ONNX_OPS`` (read when
called, so the operators added since count), and every case that tests one of those operators
even where its graph has others (the ``*_expanded`` cases: the operator's function body, e.g.
Softmax as ReduceMax, Sub, Exp, ReduceSum, Div). A case tests the operator of its single node;
an ``*_expanded`` case the operator of the case it expands.

What a case becomes: ``prepare`` turns the inputs that real models carry as constants -- an
operator's parameters (``PARAMETER_INPUTS``: Conv's W and B, Gemm's B and C, MatMul's B, Pad's
pads / value / axes, Reshape's shape, ReduceMean's axes, Clip's min / max, ...) -- into
initializers holding the test data's values; the data operands of an elementwise operator (both
tensors of Add) stay inputs. A case that adaptc's C entry point cannot express even then --
``int <prefix>_run(const float *input, float *output)``: one float32 input, one float32 output,
static non-empty tensors -- is *not applicable* (a ``Result`` with the reason). ``check``
compiles the rest for the host (``adaptc.compile(path, target="cortex-m4")``), runs every data
set through the generated C (``m.run``) and classifies the case:

* ``pass``: every output within ``np.allclose(rtol=1e-4, atol=1e-5)`` (integers: exactly);
* ``refused``: an ``AdaptcError`` at load / compile (its message in ``detail``); ``clear`` says
  whether the message names an operator of the case (``names_operator``) or, for a
  ``MemoryBudgetError``, the limit -- a refusal a user cannot act on is a defect too;
* ``wrong``: the numbers (or the output's shape) differ, or anything else went wrong: a Python
  exception that is not an ``AdaptcError`` (a crash in TVM or a pass), generated C that does not
  build (``ToolchainError``), an error while running the C. ``kind`` says which.
"""
from __future__ import annotations

import os
import re
import time
import traceback
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

RTOL, ATOL = 1e-4, 1e-5
TARGET = "cortex-m4"

# Inputs (by position in the node's input list) that real models carry as initializers: an
# operator's weights and its attributes given as tensors. Only these are made constants.
PARAMETER_INPUTS = {
    "BatchNormalization": (1, 2, 3, 4), "Clip": (1, 2), "Conv": (1, 2), "ConvTranspose": (1, 2),
    "CumSum": (1,), "DequantizeLinear": (1, 2), "Dropout": (1, 2), "Expand": (1,), "Gemm": (1, 2),
    "GroupNormalization": (1, 2), "GRU": (1, 2, 3, 4, 5), "InstanceNormalization": (1, 2),
    "LayerNormalization": (1, 2), "LSTM": (1, 2, 3, 4, 5, 6, 7), "MatMul": (1,), "OneHot": (1, 2),
    "PRelu": (1,), "Pad": (1, 2, 3), "QuantizeLinear": (1, 2), "ReduceL1": (1,),
    "ReduceL2": (1,), "ReduceLogSum": (1,), "ReduceLogSumExp": (1,), "ReduceMax": (1,), "ReduceMean": (1,),
    "ReduceMin": (1,), "ReduceProd": (1,), "ReduceSum": (1,), "ReduceSumSquare": (1,), "Reshape": (1,),
    "Resize": (1, 2, 3), "RMSNormalization": (1,), "Slice": (1, 2, 3, 4), "Split": (1,), "Squeeze": (1,),
    "Tile": (1,), "TopK": (1,), "Trilu": (1,), "Unsqueeze": (1,), "Upsample": (1,),
}

# How adaptc's passes spell an ONNX operator in a refusal (the Relax operator it became), besides
# its ONNX name; compared after normalization (lower case, no "_" / ".", no "relax." / "nn."
# prefix, no 1d / 2d / 3d suffix).
RELAX_SPELLINGS = {
    "AveragePool": ("avgpool",), "GlobalAveragePool": ("mean", "avgpool", "adaptiveavgpool"),
    "GlobalMaxPool": ("max", "maxpool", "adaptivemaxpool"), "Gemm": ("matmul",), "Flatten": ("reshape",),
    "ReduceMean": ("mean",), "ReduceMax": ("max",), "ReduceMin": ("min",), "ReduceSum": ("sum",),
    "ConvTranspose": ("convtranspose",), "Sub": ("subtract",), "Mul": ("multiply",), "Div": ("divide",),
}

_EXPANDED = re.compile(r"_expanded(_ver\d+)?$")


@dataclass
class Case:
    """One node test case: its model and data sets ([(inputs, outputs)]: arrays or TensorProtos;
    None or a list for an optional or sequence value)."""

    name: str
    op: str                          # the operator the case tests
    ops: tuple[str, ...]             # the operators of its graph, sorted
    model: onnx.ModelProto
    data_sets: list
    params: frozenset = frozenset()  # graph inputs that are the operator's parameters (PARAMETER_INPUTS)


@dataclass
class Prepared:
    """An applicable case: the model (serialized) with its parameter inputs as initializers, and
    per data set the one input and the one expected output."""

    name: str
    op: str
    ops: tuple[str, ...]
    model: bytes
    folded: tuple[str, ...]          # graph inputs turned into initializers
    inputs: list
    outputs: list


@dataclass
class Result:
    """What became of a case (module docstring); ``as_dict`` for JSON."""

    name: str
    op: str
    status: str                      # "pass" | "refused" | "wrong" | "n/a"
    detail: str = ""                 # n/a: why; refused: the message; wrong: what differs or the error
    kind: str = ""                   # wrong: mismatch | shape | crash | build | run; refused: the error's class
    clear: bool | None = None        # refused: the message names an operator of the case (or the limit)
    findings: list = field(default_factory=list)   # refused (UnsupportedOperatorError): [op, detail] each
    max_abs_diff: float | None = None
    folded: tuple[str, ...] = ()
    ops: tuple[str, ...] = ()
    seconds: float = 0.0

    def as_dict(self) -> dict:
        d = asdict(self)
        d["folded"], d["ops"] = list(self.folded), list(self.ops)
        return d


# ------------------------------------------------------------------------------------ collection


def is_expanded(name: str) -> bool:
    """Whether case ``name`` is an operator's function body (``*_expanded``, ``*_expanded_verN``)."""
    return bool(_EXPANDED.search(name))


def data_dir() -> Path | None:
    """The installed package's node data directory, where it ships one."""
    from onnx.backend.test.loader import DATA_DIR

    d = Path(DATA_DIR) / "node"
    return d if d.is_dir() and any(d.glob("*/model.onnx")) else None


def node_cases(directory: str | os.PathLike | None = None) -> list[Case]:
    """Every node test case: from ``directory`` (the ``data/node`` layout), else from the
    installed package's data directory, else generated in memory by onnx."""
    directory = Path(directory) if directory else data_dir()
    raw = _read_directory(directory) if directory else _generate()
    # the operator a case tests: its node's; an expanded case: that of the case it expands, whose
    # graph inputs it shares by name (so its parameter inputs are the same names)
    tested = {name: model.graph.node[0] for name, model, _ in raw
              if not _EXPANDED.search(name) and len(model.graph.node) == 1}
    cases = []
    for name, model, data_sets in raw:
        ops = tuple(sorted({n.op_type for n in model.graph.node}))
        node = tested.get(_EXPANDED.sub("", name))
        if node is None:
            op, params = (ops[0] if len(ops) == 1 else "?"), frozenset()
        else:
            op = node.op_type
            params = frozenset(node.input[i] for i in PARAMETER_INPUTS.get(op, ())
                               if i < len(node.input) and node.input[i])
        cases.append(Case(name, op, ops, model, data_sets, params))
    return cases


def selected(cases: list[Case], supported=None) -> list[Case]:
    """The cases adaptc is measured on: all operators supported, or the tested one."""
    if supported is None:
        from adaptc.loader import ONNX_OPS as supported
    return [c for c in cases if c.op in supported or set(c.ops) <= set(supported)]


def _generate():
    from onnx.backend.test.loader import load_node_model_tests

    with warnings.catch_warnings():          # the generators overflow casts on purpose
        warnings.simplefilter("ignore")
        with np.errstate(all="ignore"):
            cases = load_node_model_tests()
    return [(c.name, c.model, [(list(i), list(o)) for i, o in c.data_sets]) for c in cases]


def _read_directory(directory: Path):
    out = []
    for case_dir in sorted(p.parent for p in directory.glob("*/model.onnx")):
        model = onnx.load(str(case_dir / "model.onnx"))
        data_sets = []
        for ds in sorted(case_dir.glob("test_data_set_*"), key=lambda p: int(p.name.rsplit("_", 1)[1])):
            data_sets.append(([_read_value(ds / f"input_{j}.pb", vi) for j, vi in enumerate(model.graph.input)
                               if (ds / f"input_{j}.pb").exists()],
                              [_read_value(ds / f"output_{j}.pb", vi) for j, vi in enumerate(model.graph.output)
                               if (ds / f"output_{j}.pb").exists()]))
        out.append((case_dir.name, model, data_sets))
    return out


def _read_value(path: Path, vi):
    """A tensor as an array; a sequence, optional or map value as None (never applicable)."""
    if vi.type.WhichOneof("value") != "tensor_type":
        return None
    t = onnx.TensorProto()
    t.ParseFromString(path.read_bytes())
    return t


# ----------------------------------------------------------------------------------- preparation


def prepare(case: Case) -> Prepared | Result:
    """The case with its parameter inputs as initializers, or a ``Result`` "n/a" saying why
    adaptc's C entry point cannot take it."""
    def na(why):
        return Result(case.name, case.op, "n/a", why, ops=case.ops)

    graph = case.model.graph
    names = [vi.name for vi in graph.input]
    what = {"sequence_type": "a sequence", "optional_type": "an optional", "map_type": "a map"}
    for vi in (*graph.input, *graph.output):
        kind = vi.type.WhichOneof("value")
        if kind != "tensor_type":
            return na(f"{vi.name!r} is {what.get(kind, kind)}; the C entry point takes tensors")
    if len(graph.output) != 1:
        return na(f"{len(graph.output)} graph outputs ({', '.join(o.name for o in graph.output)}); "
                  "the C entry point has one")
    data = [n for n in names if n not in case.params]
    if not data:
        return na("no graph input; the C entry point takes one")
    if len(data) > 1:
        return na(f"{len(data)} data inputs ({', '.join(data)}); the C entry point takes one")
    if not case.data_sets:
        return na("no test data")
    dims = graph.input[names.index(data[0])].type.tensor_type.shape.dim
    if any(not d.HasField("dim_value") for d in dims):
        return na(f"input {data[0]!r} has a dynamic shape")

    sets_in, sets_out, constants = [], [], None
    for ins, outs in case.data_sets:
        if len(ins) != len(names) or len(outs) != 1:
            return na("the test data does not match the graph's inputs and outputs")
        if any(v is None or isinstance(v, list) for v in (*ins, *outs)):
            return na("an optional or a sequence value in the test data")
        values = dict(zip(names, (_array(v) for v in ins)))
        x, y = values[data[0]], _array(outs[0])
        for io, name, arr in (("input", data[0], x), ("output", graph.output[0].name, y)):
            if arr.dtype != np.float32:
                return na(f"{io} {name!r} is {arr.dtype}; a float model's C takes and gives float32")
            if arr.size == 0:
                return na(f"{io} {name!r} is empty (shape {list(arr.shape)})")
        these = {k: v for k, v in values.items() if k in case.params}
        if constants is not None and any(not np.array_equal(constants[k], v) for k, v in these.items()):
            return na("the parameter inputs differ between data sets")
        constants = these
        sets_in.append(x)
        sets_out.append(y)

    model = onnx.ModelProto()
    model.CopyFrom(case.model)
    folded = tuple(n for n in names if n in case.params)
    keep = [vi for vi in model.graph.input if vi.name not in case.params]
    del model.graph.input[:]
    model.graph.input.extend(keep)
    model.graph.initializer.extend(numpy_helper.from_array(constants[n], n) for n in folded)
    model.ir_version = max(model.ir_version, 4)      # initializers that are not inputs: IR >= 4
    return Prepared(case.name, case.op, case.ops, model.SerializeToString(), folded, sets_in, sets_out)


def _array(v) -> np.ndarray:
    return numpy_helper.to_array(v) if isinstance(v, onnx.TensorProto) else np.asarray(v)


# ------------------------------------------------------------------------------------- checking


def check(p: Prepared, workdir: str | os.PathLike, target: str = TARGET) -> Result:
    """Compile ``p`` for ``target`` (host build), run its data sets, classify (module docstring)."""
    import adaptc
    from adaptc.errors import AdaptcError, MemoryBudgetError, ToolchainError, UnsupportedOperatorError

    start = time.perf_counter()
    path = Path(workdir) / f"{p.name}.onnx"
    path.write_bytes(p.model)

    def result(status, detail="", **kw):
        return Result(p.name, p.op, status, detail, folded=p.folded, ops=p.ops,
                      seconds=round(time.perf_counter() - start, 3), **kw)

    try:
        m = adaptc.compile(str(path), target=target)
    except ToolchainError as e:
        return result("wrong", _clean(str(e), path), kind="build")
    except AdaptcError as e:
        message = _clean(str(e), path)
        findings = []
        if isinstance(e, UnsupportedOperatorError):
            findings = [[op, detail] for op, _node, detail in e.findings]
            said = " ".join(f"{op} {detail}" for op, detail in findings)
        else:
            said = message.split("; supported:")[0].replace(path.name, "")
        clear = isinstance(e, MemoryBudgetError) or names_operator(said, (p.op, *p.ops))
        return result("refused", message, kind=type(e).__name__, clear=clear, findings=findings)
    except Exception as e:  # anything else is a crash: a bug
        return result("wrong", _short(f"{type(e).__name__}: {e}") + _where(e), kind="crash")
    worst = 0.0
    for i, (x, expected) in enumerate(zip(p.inputs, p.outputs)):
        try:
            y = np.asarray(m.run(x))
        except Exception as e:
            return result("wrong", _short(f"running data set {i}: {type(e).__name__}: {e}") + _where(e), kind="run")
        if y.shape != expected.shape:
            return result("wrong", f"data set {i}: output shape {list(y.shape)}, expected {list(expected.shape)}",
                          kind="shape")
        if np.issubdtype(expected.dtype, np.floating):
            diff = np.abs(y.astype(np.float64) - expected.astype(np.float64))
            diff = float(np.nanmax(np.where(np.isnan(y) & np.isnan(expected), 0.0, diff))) if diff.size else 0.0
            worst = max(worst, diff)
            ok = np.allclose(y, expected, rtol=RTOL, atol=ATOL, equal_nan=True)
        else:
            worst = max(worst, float(np.abs(y.astype(np.int64) - expected.astype(np.int64)).max(initial=0)))
            ok = y.dtype == expected.dtype and np.array_equal(y, expected)
        if not ok and not _stored_output_is_rounded(path, x, y, expected):
            return result("wrong", f"data set {i}: max |difference| {worst:.3g} "
                          f"(rtol {RTOL:g}, atol {ATOL:g}); expected magnitude {np.abs(expected).max():.3g}",
                          kind="mismatch", max_abs_diff=worst)
    return result("pass", max_abs_diff=worst)


def _stored_output_is_rounded(path: Path, x, y, expected) -> bool:
    """A few node tests store outputs written by hand to 4 decimals (e.g. AveragePool's
    ``ceil_last_window_starts_on_pad``): when onnxruntime itself differs from the stored output
    as much as adaptc does, and adaptc equals onnxruntime within the tolerance, the stored
    output is what is imprecise."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path))
    ref = np.asarray(sess.run(None, {sess.get_inputs()[0].name: x})[0])
    return (np.issubdtype(expected.dtype, np.floating) and not np.allclose(ref, expected, rtol=RTOL, atol=ATOL)
            and np.allclose(ref, expected, atol=1e-3) and np.allclose(y, ref, rtol=RTOL, atol=ATOL))


def names_operator(message: str, ops) -> bool:
    """Whether ``message`` names one of the ONNX operators ``ops`` as a word -- its ONNX name or
    the Relax operator adaptc's passes report for it (``RELAX_SPELLINGS``), case and ``_`` / ``.``
    ignored."""
    words = {_norm(w) for w in re.findall(r"[A-Za-z][A-Za-z0-9_.]*", message)}
    return any(s in words for op in ops for s in (_norm(op), *RELAX_SPELLINGS.get(op, ())))


def refusal_reason(r: Result) -> list[str]:
    """What a refusal says, without file, node names and the supported list: one line per
    (operator, detail) -- for grouping refusals by the forms adaptc does not compile."""
    if r.findings:
        return sorted({f"{op}" + (f" ({detail})" if detail else "") for op, detail in r.findings})
    text = re.sub(r"'[^']*'", "'…'", r.detail)
    return [text.split("; supported:")[0]]


def _norm(word: str) -> str:
    w = word.lower()
    for prefix in ("relax.", "nn."):
        w = w.removeprefix(prefix)
    w = re.sub(r"[^a-z0-9]", "", w)
    return re.sub(r"(?<=[a-z])[123]d$", "", w)


def _clean(message: str, path: Path) -> str:
    return message.replace(str(path), path.name)


def _short(text: str, limit: int = 800) -> str:
    """An exception's text on one line, at most ``limit`` characters (TVM's run to pages)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _where(e: BaseException) -> str:
    """`` (at file:line in function)`` of the innermost frame of ``e`` (the crash site)."""
    tb = traceback.extract_tb(e.__traceback__)
    if not tb:
        return ""
    f = tb[-1]
    return f" (at {Path(f.filename).name}:{f.lineno} in {f.name})"
