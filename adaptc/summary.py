"""What a model file holds, read from the file alone: ``inspect(path) -> ModelSummary``.

No TVM and no compile: the layers as the file names them (TFLite operators, ONNX nodes) in
graph order, their MACs and constant bytes, the model's inputs and outputs, every operator
adaptc cannot compile yet (``loader.unsupported``), and per target whether the model can fit
its reference board (``fits``). It works on models that do not compile -- it is what
``adaptc info`` prints -- and ``adaptc.compile`` asks it, right after loading, whether the
weights alone already exceed the target's flash (``check_flash``), before any compile work.

Figures and what they guarantee:

* ``Layer.macs``: multiply-accumulates of one inference, from the file's shapes -- convolution
  (depthwise and transposed too), dense / Gemm, MatMul / BATCH_MATMUL, LSTM / GRU (every gate's
  input and recurrent products); 0 for every other layer; None where a shape is unknown (an
  ONNX input of dynamic size: give ``input_shapes``). These are the figures of the compiled
  program's ``macs`` except for MatMuls of two activations and transposed convolutions, which
  the program does not count.
* ``Layer.weight_bytes``: the constant tensors the layer is the first to read, in the file's
  dtype (shapes and biases included); ``ModelSummary.weight_bytes`` is their sum, each constant
  once.
* ``weight_estimate(bits)``: the flash the weights of the multiplying layers take when compiled
  with ``bits`` per weight (``weight_bits``): each weight at the smaller of its file width and
  ``bits``. A lower bound of the compiled constants: biases, tables and the constants of other
  layers are left out, and a weight that constant folding removes is not counted.
* ``ram_estimate(bits)``: the largest activation input + output of one multiplying or pooling
  layer (the two must be live together), at 1 B per value for integer builds and 4 B for float
  ones (or the file's width, when smaller): a lower bound of arena + input + output.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

from . import loader
from . import quantization as Q
from .errors import AdaptcError, InputError, MemoryBudgetError, ModelLoadError
from .formats import FORMATS
from .loader import TensorInfo

__all__ = ["inspect", "ModelSummary", "Layer", "Verdict", "weight_bits", "check_flash", "CODE_MARGIN"]

# What the code (kernels, the model's run function, start-up) adds to the weights in flash, for
# the verdicts of ``fits``: the reference models take 6-30 KiB (README, "Models tried": flash
# less weights). Only "may not fit" depends on it; "does not fit" is the weights alone.
CODE_MARGIN = 16 << 10

# Layers with multiply-accumulates, by format: the input positions that are their weights when
# constant. Pooling layers join them for the RAM bound (input and output live together).
TFLITE_WEIGHTS = {"CONV_2D": (1,), "DEPTHWISE_CONV_2D": (1,), "FULLY_CONNECTED": (1,), "TRANSPOSE_CONV": (1,),
                  "BATCH_MATMUL": (0, 1), "UNIDIRECTIONAL_SEQUENCE_LSTM": (1, 2, 3, 4, 5, 6, 7, 8, 16)}
ONNX_WEIGHTS = {"Conv": (1,), "ConvTranspose": (1,), "Gemm": (0, 1), "MatMul": (0, 1), "LSTM": (1, 2), "GRU": (1, 2)}
POOLS = {"AVERAGE_POOL_2D", "MAX_POOL_2D", "AveragePool", "MaxPool", "GlobalAveragePool"}
PAIRED = {*TFLITE_WEIGHTS, *ONNX_WEIGHTS, *POOLS}
# Layers whose output is their (first) input's values, moved or re-typed: a weight seen through
# them is still the file's constant (fp16 weights through DEQUANTIZE, a transposed initializer).
PASS_THROUGH = {"DEQUANTIZE", "RESHAPE", "TRANSPOSE", "SQUEEZE", "EXPAND_DIMS", "Identity", "Cast", "Transpose",
                "Reshape", "Squeeze", "Unsqueeze", "Flatten", "DequantizeLinear"}
# Layers whose output depends only on their input's shape.
SHAPE_OPS = {"SHAPE", "Shape", "Size"}

TFLITE_BITS = {"FLOAT32": 32, "FLOAT16": 16, "INT32": 32, "UINT8": 8, "INT64": 64, "BOOL": 8, "INT16": 16,
               "COMPLEX64": 64, "INT8": 8, "FLOAT64": 64, "COMPLEX128": 128, "UINT64": 64, "UINT32": 32,
               "UINT16": 16, "INT4": 4, "BFLOAT16": 16}


@dataclass(frozen=True)
class Layer:
    """One operator (TFLite) or node (ONNX) of the file, in graph order."""

    index: int
    op: str                          # TFLite builtin (CONV_2D) or ONNX op type (Conv)
    name: str                        # the ONNX node's name; TFLite operators have none: their first output's
    node: str                        # how errors name it (loader.operators: ONNX name, TFLite "operator #i -> out")
    inputs: tuple[str, ...]          # tensor names
    outputs: tuple[str, ...]
    output_shapes: tuple[tuple[int, ...] | None, ...]
    macs: int | None                 # None: a shape it needs is unknown
    weight_bytes: int                # constants it is the first to read, in the file's dtype
    problem: str | None = None       # why adaptc cannot compile it ("" when the operator is not supported at all)


@dataclass(frozen=True)
class _Tensor:
    name: str
    shape: tuple[int, ...] | None    # None: unknown (dims <= 0 are dynamic)
    bits: int                        # the file's element width
    const_bytes: int | None = None   # bytes in the file when constant, else None

    @property
    def elements(self) -> int | None:
        if self.shape is None or any(d <= 0 for d in self.shape):
            return None
        return math.prod(self.shape)


@dataclass(frozen=True)
class _Graph:
    """Layers as tensor keys (TFLite: tensor indices -- names need not be unique; ONNX: names)."""

    tensors: dict
    ins: tuple[tuple, ...]
    outs: tuple[tuple, ...]
    output_keys: tuple
    weights: tuple[tuple[int, ...], ...]   # per layer: input positions that are weights when constant


@dataclass(frozen=True)
class Verdict:
    """Whether a model can fit a target's reference board, estimated from the file
    (``ModelSummary.fits``). ``fits`` is False only beyond doubt: the weights alone exceed the
    flash, or the activations of one layer the RAM; ``status`` says "may not fit" where the
    weights and the usual code (``CODE_MARGIN``) exceed the flash."""

    target: str
    board: str
    bits: int                        # bits per weight the estimate assumes (weight_bits)
    weight_bytes: int                # weight_estimate: a lower bound of the constants' flash
    flash_bytes: int                 # the board's
    ram_estimate: int                # a lower bound of arena + input + output
    ram_bytes: int                   # the board's

    @property
    def fits(self) -> bool:
        return self.weight_bytes <= self.flash_bytes and self.ram_estimate <= self.ram_bytes

    @property
    def flash_estimate(self) -> int:
        """Weights and the usual code."""
        return self.weight_bytes + CODE_MARGIN

    @property
    def status(self) -> str:
        if not self.fits:
            return "does not fit"
        return "may not fit" if self.flash_estimate > self.flash_bytes else "fits"

    def __str__(self) -> str:
        if self.weight_bytes > self.flash_bytes:
            return f"does not fit: weights {self.weight_bytes:,} B > flash {self.flash_bytes:,} B"
        if self.ram_estimate > self.ram_bytes:
            return f"does not fit: activations >= {self.ram_estimate:,} B > RAM {self.ram_bytes:,} B"
        if self.status == "may not fit":
            return (f"may not fit: weights {self.weight_bytes:,} B + ~{CODE_MARGIN:,} B code > flash "
                    f"{self.flash_bytes:,} B")
        return (f"fits: flash ~{self.flash_estimate:,} of {self.flash_bytes:,} B, "
                f"RAM >= {self.ram_estimate:,} of {self.ram_bytes:,} B")


@dataclass(frozen=True)
class ModelSummary:
    """A model file as ``inspect`` reads it (module docstring: what each figure guarantees)."""

    path: str
    format: str                      # "tflite" | "onnx"
    name: str                        # file stem
    layers: tuple[Layer, ...]
    inputs: tuple[TensorInfo, ...]   # shapes as given (input_shapes) or stored; -1: dynamic
    outputs: tuple[TensorInfo, ...]
    unsupported: tuple[tuple[str, str, str], ...]   # (op, node, detail): loader.unsupported
    graph: _Graph = field(repr=False, compare=False, default=None)

    @property
    def macs(self) -> int | None:
        """MACs of one inference; None when a layer's are unknown (dynamic shapes)."""
        per = [lay.macs for lay in self.layers]
        return None if None in per else sum(per)

    @property
    def weight_bytes(self) -> int:
        """Every constant tensor the layers read, in the file's dtype, each once."""
        return sum(lay.weight_bytes for lay in self.layers)

    @property
    def operators(self) -> dict[str, int]:
        """How many layers of each operator, by name."""
        counts: dict[str, int] = {}
        for lay in self.layers:
            counts[lay.op] = counts.get(lay.op, 0) + 1
        return dict(sorted(counts.items()))

    def weights(self, outputs=None) -> list[tuple[int, int]]:
        """(values, the file's bits per value) of each weight tensor of the multiplying layers
        that ``outputs`` (output names; default: all) depend on, each tensor once; a layer that
        constant folding computes (every input known before run time) has none."""
        g = self.graph
        counted, out = set(), []
        for i in self._cone(outputs):
            if g.ins[i] and all(k in self._static for k in g.ins[i]):
                continue
            for pos in g.weights[i]:
                key = self._origin(g.ins[i][pos])
                t = g.tensors.get(key)
                if t is not None and t.const_bytes is not None and t.elements is not None and key not in counted:
                    counted.add(key)
                    out.append((t.elements, t.bits))
        return out

    def weight_estimate(self, bits: int = 32, outputs=None) -> int:
        """Flash the weights of ``outputs`` (``weights``) take at ``bits`` per weight, each at
        most its file width (module docstring: a lower bound)."""
        return -(-sum(n * min(b, bits) for n, b in self.weights(outputs)) // 8)

    def ram_estimate(self, bits: int = 32, outputs=None) -> int:
        """The largest activation input + output of one multiplying or pooling layer that
        ``outputs`` depend on, at 4 B per value for a float build (``bits`` 32), else 1 B (or
        the file's width where smaller): a lower bound of arena + input + output."""
        g = self.graph
        act = 32 if bits >= 32 else 8
        best = 0
        for i in self._cone(outputs):
            if self.layers[i].op not in PAIRED:
                continue
            keys = {k for k in g.ins[i] if k not in self._static} | set(g.outs[i])
            sizes = [(g.tensors[k].elements, g.tensors[k].bits) for k in keys if k in g.tensors]
            best = max(best, sum(-(-n * min(b, act) // 8) for n, b in sizes if n is not None))
        return best

    def fits(self, target, bits: int | None = None, outputs=None) -> Verdict | None:
        """The Verdict for ``target`` (a name or an adaptc.targets target) with ``bits`` per
        weight (default: the weights as the file stores them, a float model compiled to float);
        None for a target without a board (no memory budget: llvm, cuda)."""
        from . import targets

        tgt = targets.get(target) if isinstance(target, str) else target
        board = tgt.board
        if board is None:
            return None
        bits = 32 if bits is None else bits
        return Verdict(tgt.name, board.name, bits, self.weight_estimate(bits, outputs), board.flash_bytes,
                       self.ram_estimate(bits, outputs), board.ram_bytes)

    # graph walks ----------------------------------------------------------------------------

    @cached_property
    def _producers(self) -> dict:
        """The layer that writes each tensor key."""
        return {k: i for i, outs in enumerate(self.graph.outs) for k in outs}

    def _cone(self, outputs) -> list[int]:
        """Indices of the layers the named outputs (default: all) depend on, in graph order."""
        g = self.graph
        if outputs is None:
            keys = list(g.output_keys)
        else:
            by_name = {g.tensors[k].name: k for k in g.output_keys}
            unknown = [n for n in outputs if n not in by_name]
            if unknown:
                raise InputError(f"{self.path}: no output named {', '.join(map(repr, unknown))}; the outputs are "
                                 f"{', '.join(t.name for t in self.outputs)}")
            keys = [by_name[n] for n in outputs]
        producers = self._producers
        seen: set[int] = set()
        while keys:
            i = producers.get(keys.pop())
            if i is not None and i not in seen:
                seen.add(i)
                keys += list(g.ins[i])
        return sorted(seen)

    @cached_property
    def _static(self) -> set:
        """Tensor keys known before the model runs: constants, shapes and what only they feed."""
        g = self.graph
        static = {k for k, t in g.tensors.items() if t.const_bytes is not None}
        for i, lay in enumerate(self.layers):
            if lay.op in SHAPE_OPS or (g.ins[i] and all(k in static for k in g.ins[i])):
                static |= set(g.outs[i])
        return static

    def _origin(self, key):
        """The file's constant behind ``key`` through pass-through layers (DEQUANTIZE, Transpose, ...)."""
        producers = self._producers
        while key is not None and self.graph.tensors.get(key, _Tensor("", None, 0)).const_bytes is None:
            i = producers.get(key)
            if i is None or self.layers[i].op not in PASS_THROUGH or not self.graph.ins[i]:
                return key
            key = self.graph.ins[i][0]
        return key


def inspect(path, input_shapes: dict[str, tuple[int, ...]] | None = None) -> ModelSummary:
    """Read a .tflite or .onnx file (no TVM; see the module docstring). ``input_shapes``:
    static shapes for ONNX inputs of dynamic size (as ``adaptc.load`` takes them).

    Raises ModelLoadError (unreadable, corrupt, unknown format) and InputError (an input
    shape for an input the model does not have, or one a TFLite file fixes otherwise), no other
    exception."""
    path = Path(path)
    findings = tuple(loader.unsupported(path))          # checks the file, too: ModelLoadError
    nodes = loader.operators(path)
    data = path.read_bytes()
    read = _tflite if path.suffix.lower() == ".tflite" else _onnx
    try:
        summary = read(path, data, nodes, input_shapes or {})
    except AdaptcError:
        raise
    except Exception as e:  # noqa: BLE001 -- a fault of the file the loader's checks let through
        raise ModelLoadError(path, f"corrupt model file ({type(e).__name__}: {e})") from None
    problems = {node: detail for _, node, detail in findings}
    layers = tuple(replace(lay, problem=problems.get(lay.node)) for lay in summary.layers)
    return ModelSummary(summary.path, summary.format, summary.name, layers, summary.inputs, summary.outputs,
                        findings, summary.graph)


def weight_bits(calibrated: bool, quantize=None, weight_budget: int | None = None) -> int:
    """Bits per weight a float model's weights compile to (the fewest, where layers differ):
    32 without calibration data; with it ``quantize`` -- int8 (the default) 8, ``Int4()`` 4,
    ``PoT(bits)`` the smallest of ``bits`` and its per-layer formats; a ``weight_budget``
    search may give any layer the smallest format (pot2: 2). Weights a file stores in fewer
    bits (an int8 model) keep theirs (``ModelSummary.weight_estimate``)."""
    if weight_budget is not None:
        return min(f.bits for f in FORMATS.values())
    if not calibrated:
        return 32
    q = Q.parse(quantize)
    if isinstance(q, Q.Int4):
        return 4
    if isinstance(q, Q.PoT):
        return min(b if isinstance(b, int) else FORMATS[b].bits for b in (q.bits, *q.layers.values()))
    return 8


def check_flash(summary: ModelSummary, target, bits: int, outputs=None) -> None:
    """MemoryBudgetError when the weights of ``outputs`` at ``bits`` per weight alone exceed the
    flash of ``target``'s reference board -- beyond doubt, since the estimate is a lower bound;
    nothing for a target without a board. The message is the wording of the target's own check
    after compiling (targets/cortex_m/model.py ``check_budget``)."""
    v = summary.fits(target, bits, outputs)
    if v is None or v.weight_bytes <= v.flash_bytes:
        return
    weights = summary.weights(outputs)
    n = sum(count for count, _ in weights)
    widths = {min(b, bits) for _, b in weights}
    each = f"{widths.pop() / 8:g} B each" if len(widths) == 1 else f"{v.weight_bytes / n:.2f} B each on average"
    raise MemoryBudgetError(
        f"{summary.name} does not fit {v.target} ({v.board}): its {n:,} weights at {each} (estimated from the "
        f"file before compiling; a lower bound) need {v.weight_bytes:,} bytes of flash, the board has "
        f"{v.flash_bytes:,}: over by {v.weight_bytes - v.flash_bytes:,} bytes")


# ------------------------------------------------------------------------------------- TFLite


def _tflite(path: Path, data: bytes, nodes, input_shapes: dict) -> ModelSummary:
    import tflite

    model = tflite.Model.GetRootAsModel(data, 0)
    sub = model.Subgraphs(0)
    type_names = {v: k for k, v in vars(tflite.TensorType).items() if not k.startswith("_")}
    tensors = {}
    for i in range(sub.TensorsLength()):
        t = sub.Tensors(i)
        buf = model.Buffers(t.Buffer())
        size = buf.DataLength() if buf is not None else 0
        shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        tensors[i] = _Tensor(t.Name().decode(errors="replace"), shape, TFLITE_BITS.get(type_names.get(t.Type()), 8),
                             size if size and not t.IsVariable() else None)
    inputs = tuple(_tflite_info(sub.Tensors(int(i)), type_names) for i in sub.InputsAsNumpy())
    outputs = tuple(_tflite_info(sub.Tensors(int(i)), type_names) for i in sub.OutputsAsNumpy())
    for name, shape in input_shapes.items():
        given = next((t for t in inputs if t.name == name), None)
        if given is None:
            raise InputError(f"{path}: no input named {name!r}; the inputs are {', '.join(t.name for t in inputs)}")
        if tuple(shape) != given.shape:
            raise InputError(f"{path}: input {name!r} is {list(given.shape)} in the TFLite file; its shape is fixed")
    layers, ins, outs, weights, seen = [], [], [], [], set()
    for i, (op_name, node) in enumerate(nodes):
        op = sub.Operators(i)
        a = tuple(int(k) for k in op.InputsAsNumpy() if k >= 0) if op.InputsLength() else ()
        b = tuple(int(k) for k in op.OutputsAsNumpy()) if op.OutputsLength() else ()
        raw = [int(k) for k in op.InputsAsNumpy()] if op.InputsLength() else []
        consts = [k for k in a if tensors[k].const_bytes is not None and k not in seen]
        seen |= set(consts)
        ins.append(a)
        outs.append(b)
        positions = TFLITE_WEIGHTS.get(op_name, ())
        # weight positions index the operator's inputs with the absent ones (-1) kept
        weights.append(tuple(a.index(raw[p]) for p in positions if p < len(raw) and raw[p] >= 0))
        layers.append(Layer(i, op_name, tensors[b[0]].name if b else f"#{i}", node,
                            tuple(tensors[k].name for k in a), tuple(tensors[k].name for k in b),
                            tuple(tensors[k].shape for k in b), _tflite_macs(op_name, op, raw, b, tensors),
                            sum(tensors[k].const_bytes for k in consts)))
    graph = _Graph(tensors, tuple(ins), tuple(outs), tuple(int(k) for k in sub.OutputsAsNumpy()), tuple(weights))
    return ModelSummary(str(path), "tflite", path.stem, tuple(layers), inputs, outputs, (), graph)


def _tflite_info(t, type_names) -> TensorInfo:
    q = t.Quantization()
    scale = zp = None
    if q is not None and q.ScaleLength() == 1:
        scale, zp = float(q.Scale(0)), int(q.ZeroPoint(0)) if q.ZeroPointLength() else 0
    shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
    return TensorInfo(t.Name().decode(errors="replace"), shape, type_names.get(t.Type(), "unknown").lower(), scale, zp)


def _tflite_macs(op_name: str, op, raw, outs, tensors) -> int | None:
    """MACs of a TFLite operator from its tensors' shapes (``raw``: input indices, -1 absent)."""
    if op_name not in TFLITE_WEIGHTS:
        return 0

    def shape(pos):
        return tensors[raw[pos]].shape if pos < len(raw) and raw[pos] >= 0 else None

    out = tensors[outs[0]].elements if outs else None
    if op_name == "CONV_2D":                       # filter [O, KH, KW, I / groups]
        w = shape(1)
        return out * math.prod(w[1:]) if out is not None and w else None
    if op_name == "DEPTHWISE_CONV_2D":             # filter [1, KH, KW, C * multiplier]
        w = shape(1)
        return out * w[1] * w[2] if out is not None and w else None
    if op_name == "FULLY_CONNECTED":               # weights [O, I]
        w = shape(1)
        return out * w[-1] if out is not None and w else None
    if op_name == "TRANSPOSE_CONV":                # (output shape, filter [O, KH, KW, I], input): a scatter
        w, x = shape(1), tensors[raw[2]].elements
        return x * math.prod(w[:3]) if x is not None and w else None
    if op_name == "BATCH_MATMUL":
        from tflite.BatchMatMulOptions import BatchMatMulOptions

        opts = BatchMatMulOptions()
        opts.Init(op.BuiltinOptions().Bytes, op.BuiltinOptions().Pos)
        x = shape(0)
        return out * x[-2 if opts.AdjX() else -1] if out is not None and x else None
    # UNIDIRECTIONAL_SEQUENCE_LSTM: per time step every gate's input and recurrent products
    x, w, r = shape(0), shape(2), shape(6)            # input_to_forget [units, I], recurrent_to_forget [units, units]
    gates = sum(1 for p in (1, 2, 3, 4) if shape(p) is not None)
    if not (x and w and r) or any(d <= 0 for d in x):
        return None
    return math.prod(x[:-1]) * gates * w[0] * (w[1] + r[1])


# --------------------------------------------------------------------------------------- ONNX


def _onnx(path: Path, data: bytes, nodes, input_shapes: dict) -> ModelSummary:
    import onnx

    model = onnx.load_from_string(data)
    graph = model.graph
    initializers = {t.name: t for t in graph.initializer}
    declared = [vi for vi in graph.input if vi.name not in initializers]
    unknown = sorted(set(input_shapes) - {vi.name for vi in declared})
    if unknown:
        raise InputError(f"{path}: no input named {', '.join(map(repr, unknown))}; the inputs are "
                         f"{', '.join(vi.name for vi in declared)}")
    for vi in declared:                                # the given static shapes, before shape inference
        if vi.name in input_shapes:
            dims = vi.type.tensor_type.shape.dim
            shape = tuple(int(d) for d in input_shapes[vi.name])
            if len(dims) and len(dims) != len(shape):
                raise InputError(f"{path}: input {vi.name!r} has {len(dims)} dimensions, the given shape "
                                 f"{list(shape)} {len(shape)}")
            del dims[:]
            for d in shape:
                dims.add().dim_value = d
    try:
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True).graph
    except Exception:                                  # noqa: BLE001 -- shapes then stay unknown
        inferred = graph
    elem = {v: k.lower() for k, v in onnx.TensorProto.DataType.items()}

    def bits(elem_type: int) -> int:
        try:
            return onnx.helper.tensor_dtype_to_np_dtype(elem_type).itemsize * 8 if elem_type not in (
                onnx.TensorProto.INT4, onnx.TensorProto.UINT4) else 4
        except (KeyError, TypeError, ValueError):
            return 8

    def dims(vi) -> tuple[int, ...] | None:
        tt = vi.type.tensor_type
        if not tt.HasField("shape"):
            return None
        return tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim)

    tensors = {}
    for vi in (*inferred.input, *inferred.value_info, *inferred.output):
        tensors[vi.name] = _Tensor(vi.name, dims(vi), bits(vi.type.tensor_type.elem_type))
    for t in initializers.values():
        tensors[t.name] = _Tensor(t.name, tuple(t.dims), bits(t.data_type),
                                  math.prod(t.dims) * bits(t.data_type) // 8)
    for n in graph.node:
        if n.op_type == "Constant" and n.output:
            tensors[n.output[0]] = _constant(n, tensors.get(n.output[0]), bits)

    def info(vi) -> TensorInfo:
        return TensorInfo(vi.name, dims(vi) or (), elem.get(vi.type.tensor_type.elem_type, "unknown"))

    layers, ins, outs, weights, seen = [], [], [], [], set()
    for i, (n, (op_type, node)) in enumerate(zip(graph.node, nodes)):
        a = tuple(k for k in n.input if k)
        b = tuple(k for k in n.output if k)
        for k in (*a, *b):
            tensors.setdefault(k, _Tensor(k, None, 32))
        consts = [k for k in dict.fromkeys(a) if tensors[k].const_bytes is not None and k not in seen]
        seen |= set(consts)
        ins.append(a)
        outs.append(b)
        raw = list(n.input)
        weights.append(tuple(a.index(raw[p]) for p in ONNX_WEIGHTS.get(op_type, ()) if p < len(raw) and raw[p]))
        layers.append(Layer(i, op_type, n.name or (b[0] if b else f"#{i}"), node, a, b,
                            tuple(tensors[k].shape for k in b), _onnx_macs(n, tensors),
                            sum(tensors[k].const_bytes for k in consts)))
    g = _Graph(tensors, tuple(ins), tuple(outs), tuple(vi.name for vi in graph.output), tuple(weights))
    return ModelSummary(str(path), "onnx", path.stem, tuple(layers), tuple(info(vi) for vi in
                        (v for v in inferred.input if v.name not in initializers)),
                        tuple(info(vi) for vi in inferred.output), (), g)


def _constant(node, inferred: _Tensor | None, bits) -> _Tensor:
    """The tensor of an ONNX Constant node (its value attribute, or value_float(s) / _int(s))."""
    import onnx

    name = node.output[0]
    for a in node.attribute:
        if a.name == "value":
            t = a.t
            return _Tensor(name, tuple(t.dims), bits(t.data_type), math.prod(t.dims) * bits(t.data_type) // 8)
        if a.name in ("value_float", "value_int"):
            return _Tensor(name, (), 32 if a.name == "value_float" else 64, 4 if a.name == "value_float" else 8)
        if a.name in ("value_floats", "value_ints"):
            n = len(onnx.helper.get_attribute_value(a))
            width = 32 if a.name == "value_floats" else 64
            return _Tensor(name, (n,), width, n * width // 8)
    shape = inferred.shape if inferred is not None else None
    return _Tensor(name, shape, 8, 0)                  # strings, sparse values: no weights


def _onnx_macs(n, tensors) -> int | None:
    """MACs of an ONNX node from the inferred shapes."""
    op = n.op_type
    if op not in ONNX_WEIGHTS:
        return 0
    import onnx

    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}

    def shape(pos):
        return tensors[n.input[pos]].shape if pos < len(n.input) and n.input[pos] else None

    out = tensors[n.output[0]].elements
    w, x = shape(1), shape(0)
    if None in (w, x) or out is None or any(d <= 0 for d in (*w, *x)):
        return None
    if op == "Conv":                                   # W [O, I / groups, kernel...]
        return out * math.prod(w[1:])
    if op == "ConvTranspose":                          # W [I, O / groups, kernel...]: a scatter of each input
        return math.prod(x) * math.prod(w[1:])
    if op == "Gemm":
        return out * x[0 if attrs.get("transA", 0) else 1]
    if op == "MatMul":
        return out * x[-1]
    # LSTM / GRU: W [directions, gates * hidden, input], R [directions, gates * hidden, hidden]
    r = shape(2)
    steps = x[0] * x[1]                                # [seq, batch, input] or [batch, seq, input]
    return steps * w[0] * w[1] * (w[2] + r[2])
