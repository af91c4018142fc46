"""The one place that knows apache-tvm 0.27's vocabulary (Relax only).

Everything else in adaptc calls these helpers instead of touching renamed or quirky TVM APIs
directly; tests/test_tvm_compat.py exercises every function here, so a TVM upgrade that breaks
one of them fails there first. Facts behind each helper: ../shared/notes/tvm-0.27.md.
"""
from __future__ import annotations

import numpy as np
import tvm
from tvm import relax

from . import resize
from .errors import AdaptcError

TVM_SERIES = "0.27"


def check_version() -> str:
    """The installed TVM version; raises if it is not the pinned 0.27 series."""
    version = tvm.__version__
    if not version.startswith(TVM_SERIES):
        raise ImportError(f"adaptc needs apache-tvm {TVM_SERIES}.x, found {version}")
    return version


def dtype_of(ty) -> str:
    """dtype string of a Relax TensorType (0.27: ``TensorType.dtype`` is a PrimType)."""
    return str(ty.dtype)


def shape_of(ty) -> tuple[int, ...]:
    """Static shape of a Relax TensorType as ints; ValueError if any dimension is symbolic."""
    dims = []
    for d in ty.shape.values:
        if not isinstance(d, tvm.tirx.IntImm):
            raise ValueError(f"symbolic dimension {d}")
        dims.append(int(d))
    return tuple(dims)


def tensor_type(shape, dtype: str):
    return relax.TensorType(list(shape), dtype)


def var_name(var) -> str:
    """Name of a Relax Var (0.27: ``.name``, not ``.name_hint``)."""
    return var.name


def is_constant(expr) -> bool:
    return isinstance(expr, tvm.ir.Constant)


def is_prim_imm(expr) -> bool:
    """An integer or float immediate (0.27 writes clip's bounds so; they are also Constants)."""
    return isinstance(expr, (tvm.tirx.IntImm, tvm.tirx.FloatImm))


def int_tuple(expr) -> list[int]:
    """A Relax tuple (or shape) of integer immediates as ints (strided_slice's axes, begin, ...)."""
    values = expr.fields if isinstance(expr, relax.Tuple) else expr.values
    return [int(v.value) for v in values]


def strided_slice_view(call) -> tuple[list[int], list[int]]:
    """(begin, step) per axis of a ``strided_slice`` call with constant arguments: where its
    output's first element sits in the input, and the stride in elements of that axis; the
    output's shape is the call's type."""
    shape = shape_of(call.args[0].ty)
    begin, steps = [0] * len(shape), [1] * len(shape)
    axes, starts = int_tuple(call.args[1]), int_tuple(call.args[2])
    strides = int_tuple(call.args[4]) if len(call.args) > 4 else [1] * len(axes)
    for i, axis in enumerate(axes):
        axis %= len(shape)
        st = strides[i]
        b = starts[i] + shape[axis] if starts[i] < 0 else starts[i]
        b = min(max(b, 0), shape[axis] - 1) if st < 0 else min(max(b, 0), shape[axis])
        begin[axis], steps[axis] = b, st
    return begin, steps


def constant_value(expr) -> np.ndarray:
    return expr.value.numpy()


def op_name(expr) -> str | None:
    """'relax.nn.conv2d' for a call to a Relax operator, else None."""
    if isinstance(expr, relax.Call) and isinstance(expr.op, tvm.ir.Op):
        return expr.op.name
    return None


def attrs_dict(func) -> dict:
    """A Relax function's attributes as a plain dict (0.27 rejects DictAttrs in bb.function)."""
    return {} if func.attrs is None else {k: func.attrs[k] for k in func.attrs.keys()}


def plain_attrs(func) -> dict:
    """A Relax function's attributes as plain Python values (ints, floats, strings, lists)."""
    return {k: _plain(v) for k, v in attrs_dict(func).items()}


def _plain(value):
    if isinstance(value, (int, float, str)):
        return value
    if hasattr(value, "value"):
        return value.value
    try:
        return [_plain(v) for v in value]
    except TypeError:
        return str(value)


def from_tflite(buf: bytes, converters: dict | None = None):
    """TVM's TFLite importer (0.27 returns only the IRModule, not (mod, params)).

    Quirks, fixed by a converter subclass:
    - 0.27 refuses quantized PAD although its converter pads int8 with the input zero point
      (TFLite's semantics); PAD joins the whitelist of quantized ops, with the other operators
      that move int8 values without arithmetic (EXPAND_DIMS, SQUEEZE, SLICE, STRIDED_SLICE, SPLIT,
      SPLIT_V, RESIZE_NEAREST_NEIGHBOR; TFLite requires equal parameters in and out) and ELU.
    - HARD_SWISH, LEAKY_RELU and ELU are written in adaptc.unary's canonical form (0.27's ELU
      ignores the quantization of an int8 one); so is RSQRT, int8 too (0.27 refuses it).
    - PRELU: adaptc.prelu's form with alpha at the input's rank (0.27 flattens the input).
    - EXPAND_DIMS (0.27 passes expand_dims a third argument) is the reshape to its output shape.
    - FULLY_CONNECTED on an N-d input: flattened to rows of the filter's depth, as TFLite Micro
      does, the result reshaped to the declared output shape (keep_num_dims).
    - RESIZE_NEAREST_NEIGHBOR is a gather (``take``) per spatial axis of the source indices
      TFLite Micro computes (``adaptc.resize.tflite_nearest_indices``): int8 or float alike, no
      requantization.
    - MIRROR_PAD (REFLECT / SYMMETRIC) is a gather per padded axis (adaptc.resize.reflect_indices);
      TRANSPOSE, PACK, UNPACK, DEPTH_TO_SPACE, SPACE_TO_DEPTH, PADV2 and ARG_MAX join the
      whitelist (they move int8 values, or compare them, without arithmetic).
    - int8 UNIDIRECTIONAL_SEQUENCE_LSTM (0.27 refuses it) passes the whitelist; ``converters``
      (converter method name -> function(converter, op)) adds methods, e.g. the loader's
      adaptc.composite_import's converters (one composite call each).
    - BATCH_MATMUL: int8 too (0.27 refuses it), batch dims broadcast by ``matmul`` itself (0.27
      reshapes a broadcast result to the first operand's batch dims).
    - TRANSPOSE_CONV: ``conv2d_transpose`` NHWC / IOHW with the pads TFLite Micro computes and the
      output size of the output tensor (``transpose_conv_pads``; 0.27 assumes the output size
      fits SAME / VALID exactly), a per-channel int8 filter dequantized along O and an int32 bias
      as a constant dequantize (scale input scale x filter scale; 0.27 emits a multiply).
    - SOFTMAX drops ``beta``. For a quantized input softmax(beta * s * (q - zp)) is folded into
      the dequantize (scale ``s * beta``), which is how TFLite builds its exp table; a float
      one becomes softmax(x * beta)."""
    import tflite
    from tvm.relax.frontend.tflite import tflite_frontend as fe

    from . import unary

    class Converter(fe.OperatorConverter):
        def __init__(self, model, subgraph, *args, **kwargs):
            super().__init__(model, subgraph, *args, **kwargs)
            index = {subgraph.Operators(i)._tab.Pos: i for i in range(subgraph.OperatorsLength())}
            self.convert_map = {name: self._declared(name, convert, index)
                                for name, convert in self.convert_map.items()}

        def _declared(self, name: str, convert, index: dict):
            """``convert`` followed by the check of each output's type against its declaration."""
            def run(op):
                ret = convert(op=op)
                if ret is not None:
                    ret = self.bb.normalize(ret)
                    outs = self.get_output_tensors(op)
                    types = [ret.ty] if len(outs) == 1 else list(getattr(ret.ty, "fields", []))
                    for k, (t, ty) in enumerate(zip(outs, types)):
                        _check_declared(t.tensor, ty, name, index.get(op._tab.Pos, -1), k)
                return ret
            return run

        _SUPPORTED_QUANTIZED_OPS = fe.OperatorConverter._SUPPORTED_QUANTIZED_OPS | {
            "ELU", "EXPAND_DIMS", "PAD", "RESIZE_NEAREST_NEIGHBOR", "SLICE", "SPLIT", "SPLIT_V", "SQUEEZE",
            "STRIDED_SLICE", "UNIDIRECTIONAL_SEQUENCE_LSTM",
            "ARG_MAX", "DEPTH_TO_SPACE", "MIRROR_PAD", "PACK", "PADV2", "SPACE_TO_DEPTH", "TRANSPOSE", "UNPACK"} | {
            "BATCH_MATMUL"} | {"RSQRT", "PRELU", "L2_NORMALIZATION", "LOG_SOFTMAX"}

        def _unary(self, op, name: str, alpha: float = 1.0):
            """dequantize? -> adaptc.unary's canonical expression -> quantize?"""
            (x,), (y,) = self.get_input_tensors(op), self.get_output_tensors(op)
            expr = self.get_expr(x.tensor_idx)
            if x.qnn_params:
                expr = self.dequantize(expr, x)
            out = unary.build(name, expr, alpha=alpha)
            return self.quantize(out, y) if y.qnn_params else out

        def convert_resize_nearest_neighbor(self, op):
            from tflite.ResizeNearestNeighborOptions import ResizeNearestNeighborOptions

            (x, size), _ = self.get_input_tensors(op), self.get_output_tensors(op)
            opts = ResizeNearestNeighborOptions()
            opts.Init(op.BuiltinOptions().Bytes, op.BuiltinOptions().Pos)
            in_hw = [int(d) for d in x.tensor.ShapeAsNumpy()[1:3]]
            out_hw = [int(d) for d in self.get_tensor_value(size)]
            maps = [resize.tflite_nearest_indices(i, o, bool(opts.AlignCorners()), bool(opts.HalfPixelCenters()))
                    for i, o in zip(in_hw, out_hw)]
            return gather_axes(self.get_expr(x.tensor_idx), {1: maps[0], 2: maps[1]})

        def convert_expand_dims(self, op):
            (x, _axis), (y,) = self.get_input_tensors(op), self.get_output_tensors(op)
            return relax.op.reshape(self.get_expr(x.tensor_idx), [int(d) for d in y.tensor.ShapeAsNumpy()])

        def convert_mirror_pad(self, op):
            from tflite.MirrorPadOptions import MirrorPadOptions


            (x, pads), _ = self.get_input_tensors(op), self.get_output_tensors(op)
            opts = MirrorPadOptions()
            opts.Init(op.BuiltinOptions().Bytes, op.BuiltinOptions().Pos)
            mode = "symmetric" if opts.Mode() == 1 else "reflect"
            shape = [int(d) for d in x.tensor.ShapeAsNumpy()]
            widths = np.asarray(self.get_tensor_value(pads)).reshape(len(shape), 2)
            return gather_axes(self.get_expr(x.tensor_idx),
                               {i: resize.reflect_indices(d, int(b), int(e), mode) for i, (d, (b, e)) in enumerate(
                                   zip(shape, widths)) if b or e})

        def convert_fully_connected(self, op):
            """TFLite Micro's FULLY_CONNECTED on an input of any rank: rows of the filter's depth
            (all but the last axis flattened when that axis is the depth), the output reshaped to
            its declared shape (keep_num_dims or not). 0.27 multiplies the raw input."""
            (x, w, *_), (y,) = self.get_input_tensors(op), self.get_output_tensors(op)
            in_shape = [int(d) for d in x.tensor.ShapeAsNumpy()]
            depth = int(w.tensor.ShapeAsNumpy()[1])
            out_shape = [int(d) for d in y.tensor.ShapeAsNumpy()]
            if len(in_shape) == 2 and in_shape[1] == depth:
                return super().convert_fully_connected(op)
            original = self.get_tensor_expr
            flat = relax.op.reshape(original(x), [int(np.prod(in_shape)) // depth, depth])
            self.get_tensor_expr = lambda t, *a, **k: flat if t.tensor_idx == x.tensor_idx else original(t, *a, **k)
            try:
                out = super().convert_fully_connected(op)
            finally:
                del self.get_tensor_expr
            return relax.op.reshape(out, out_shape)

        def convert_hard_swish(self, op):
            return self._unary(op, "hard_swish")

        def convert_elu(self, op):
            return self._unary(op, "elu")

        def convert_rsqrt(self, op):
            return self._unary(op, "rsqrt")

        def convert_prelu(self, op):
            """adaptc.prelu's form, alpha (a constant) at the input's rank; dequantize and
            quantize around it when int8 (0.27 flattens the input and refuses int8)."""
            from . import prelu

            (x, alpha), (y,) = self.get_input_tensors(op), self.get_output_tensors(op)
            rank = len(x.tensor.ShapeAsNumpy())
            value = prelu.full_rank(self.get_tensor_value(alpha), rank)
            a = relax.const(value)
            expr = self.get_expr(x.tensor_idx)
            if x.qnn_params:
                expr = self.dequantize(expr, x)
                a = relax.op.dequantize(a, scale=alpha.qnn_params["scale"], zero_point=alpha.qnn_params["zero_point"],
                                        axis=-1)
            out = prelu.build(expr, a)
            return self.quantize(out, y) if y.qnn_params else out

        def convert_leaky_relu(self, op):
            from tflite.LeakyReluOptions import LeakyReluOptions

            opts = LeakyReluOptions()
            opts.Init(op.BuiltinOptions().Bytes, op.BuiltinOptions().Pos)
            return self._unary(op, "leaky_relu", alpha=float(opts.Alpha()))

        def convert_batch_matmul(self, op):
            """dequantize? -> matmul (numpy broadcasting of the batch dims; adj_x / adj_y as a
            transpose of the last two axes) -> quantize?. 0.27 refuses int8 and reshapes a
            broadcast result to the first operand's batch dims."""
            from tflite.BatchMatMulOptions import BatchMatMulOptions

            (a, b), (y,) = self.get_input_tensors(op), self.get_output_tensors(op)
            opts = BatchMatMulOptions()
            opts.Init(op.BuiltinOptions().Bytes, op.BuiltinOptions().Pos)
            operands = []
            for t, adj in ((a, opts.AdjX()), (b, opts.AdjY())):
                expr = self.get_tensor_expr(t)
                if adj:         # (on the int8 values: the dequantize stays next to the matmul)
                    rank = len(t.tensor.ShapeAsNumpy())
                    expr = relax.op.permute_dims(expr, [*range(rank - 2), rank - 1, rank - 2])
                operands.append(self.dequantize(expr, t) if t.qnn_params else expr)
            out = relax.op.matmul(*operands)
            return self.quantize(out, y) if y.qnn_params else out

        def convert_transpose_conv(self, op):
            from tflite.TransposeConvOptions import TransposeConvOptions

            (_shape, w, x, *bias), (y,) = self.get_input_tensors(op), self.get_output_tensors(op)
            opts = TransposeConvOptions()
            opts.Init(op.BuiltinOptions().Bytes, op.BuiltinOptions().Pos)
            strides = (int(opts.StrideH()), int(opts.StrideW()))
            w_ohwi = self.get_tensor_value(w)
            in_hw = [int(d) for d in x.tensor.ShapeAsNumpy()[1:3]]
            out_hw = [int(d) for d in y.tensor.ShapeAsNumpy()[1:3]]
            padding, output_padding = transpose_conv_pads(in_hw, w_ohwi.shape[1:3], strides, out_hw,
                                                          opts.Padding() == 0)
            w_iohw = relax.const(np.ascontiguousarray(w_ohwi.transpose(3, 0, 1, 2)))
            expr = self.get_expr(x.tensor_idx)
            if x.qnn_params:
                expr = self.dequantize(expr, x)
                w_scale = np.asarray(w.tensor.Quantization().ScaleAsNumpy(), np.float32)
                w_iohw = relax.op.dequantize(w_iohw, relax.const(w_scale), relax.const(np.int32(0)), axis=1)
            out = relax.op.nn.conv2d_transpose(expr, w_iohw, strides=strides, padding=padding,
                                               output_padding=output_padding, data_layout="NHWC",
                                               kernel_layout="IOHW", out_dtype="float32")
            if bias and bias[0].tensor_idx >= 0:
                b = self.get_tensor_value(bias[0])
                if x.qnn_params:
                    in_scale = np.float64(x.tensor.Quantization().ScaleAsNumpy()[0])
                    b_scale = (in_scale * w_scale.astype(np.float64)).astype(np.float32)
                    b_expr = relax.op.dequantize(relax.const(b.astype(np.int32)), relax.const(b_scale),
                                                 relax.const(np.int32(0)), axis=0)
                else:
                    b_expr = relax.const(b.astype(np.float32))
                out = relax.op.add(out, b_expr)
            return self.quantize(out, y) if y.qnn_params else out

        def convert_softmax(self, op):
            beta = tflite_softmax_beta(op)
            (x,), (y,) = self.get_input_tensors(op), self.get_output_tensors(op)
            if beta == 1.0:
                return super().convert_softmax(op)
            if not x.qnn_params:   # FuseFloatOps folds the scalar multiply into softmax_f32's beta
                xb = relax.op.multiply(self.get_expr(x.tensor_idx), relax.const(np.float32(beta)))
                return relax.op.nn.softmax(xb, axis=-1)
            scale = float(np.float32(x.tensor.Quantization().Scale(0))) * beta
            xf = relax.op.dequantize(self.get_expr(x.tensor_idx), scale=relax.const(scale, "float32"),
                                     zero_point=x.qnn_params["zero_point"], axis=x.qnn_params["axis"])
            return self.quantize(relax.op.nn.softmax(xf, axis=-1), y)

    made = []
    original_init = Converter.__init__

    def init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        made.append(self)

    Converter.__init__ = init
    for name, method in (converters or {}).items():
        setattr(Converter, name, method)
    mod = fe.from_tflite(tflite.Model.GetRootAsModel(buf, 0), op_converter=Converter)
    # TFLite names a fused tensor after each op fused into it, ";"-joined: the first is the last op
    return name_bindings(mod, {e: n.split(";")[0] for c in made for n, e in c.exp_tab.exprs.items()})


def tensor_identifier(name: str) -> str:
    """A model tensor's name as a binding may carry it: TVM's code generators (CUDA) make C
    parameters of binding names, so every character outside [A-Za-z0-9_] becomes "_", leading
    ones and digits dropped (``/block1/block1.0/Conv_output_0`` -> ``block1_block1_0_Conv_output_0``)."""
    text = "".join(c if c.isascii() and (c.isalnum() or c == "_") else "_" for c in str(name))
    return text.lstrip("_0123456789")


def name_bindings(mod, names: dict):
    """``mod`` with ``main``'s bindings named after the model's tensors: a binding whose value (or
    variable) is a key of ``names`` (the importer's table, tensor name by expression) takes that
    name, so that what is lowered from it -- header comments, reports, errors -- speaks of the
    model's tensors, not TVM's ``lv301``. An importer emits an operator's bindings just before
    its output's: a binding without a name of its own takes the next named one's (the passes may
    fuse an operator into one of its inner bindings). Bindings after the last named one keep theirs."""
    names = {e: tensor_identifier(n) for e, n in names.items()
             if isinstance(e, relax.Expr) and not is_constant(e) and tensor_identifier(n)}
    if not names:
        return mod
    by_var, following = {}, None
    for b in reversed(bindings(mod["main"])):
        following = names.get(b.value) or names.get(b.var) or following
        if following is not None:
            by_var[b.var] = following

    @relax.expr_functor.mutator
    class Rename(relax.PyExprMutator):
        def visit_var_binding_(self, b):
            value = self.visit_expr(b.value)
            name = by_var.get(b.var)
            if name is None or name == b.var.name:
                self.builder_.emit_normalized(relax.VarBinding(b.var, value))
                return
            cls = relax.DataflowVar if isinstance(b.var, relax.DataflowVar) else relax.Var
            new = cls(name, b.var.ty)
            self.set_var_remap(b.var, new)
            self.builder_.emit_normalized(relax.VarBinding(new, value))

    return replace_function(mod, "main", Rename(mod).visit_expr(mod["main"]))


class DeclaredTypeError(ValueError):
    """A TFLite tensor whose declared shape or dtype contradicts what its operator computes
    (TFLite Micro refuses such a model; compiling it with the computed type would hide the
    fault). ``tensor``, ``op`` (builtin name), ``index`` (the operator's position), ``declared``
    and ``computed`` ((shape, dtype) each) say which."""

    def __init__(self, tensor: str, op: str, index: int, declared, computed):
        self.tensor, self.op, self.index, self.declared, self.computed = tensor, op, index, declared, computed
        (ds, dd), (cs, cd) = declared, computed
        super().__init__(f"tensor {tensor!r} is declared {dd} {list(ds)}, but its operator {op} "
                         f"(operator #{index}) computes {cd} {list(cs)}")


# TFLite TensorType -> the Relax dtype the importer gives a tensor of that type.
_TFLITE_DTYPES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 6: "bool", 7: "int16",
                  9: "int8", 10: "float64", 12: "uint64", 15: "uint32", 16: "uint16"}


# Integer widths the importer picks on its own (0.27's ARG_MAX gives int64 for TFLite's int32);
# adaptc narrows them again, so an int32 declared as int64 (or back) is no contradiction.
_INDEX_DTYPES = {"int32", "int64"}


def _check_declared(tensor, ty, op: str, index: int, k: int) -> None:
    """DeclaredTypeError where the computed type ``ty`` of an operator's ``k``-th output differs
    from ``tensor``'s declared shape or dtype (int32 and int64 count as one: _INDEX_DTYPES). A
    computed shape with symbolic dimensions is not compared, and neither is a declared shape
    left empty (old converters' "unknown")."""
    if not isinstance(ty, relax.TensorType) or ty.shape is None:
        return
    try:
        computed = shape_of(ty)
    except ValueError:
        return
    declared = tuple(int(d) for d in tensor.ShapeAsNumpy()) if tensor.ShapeLength() else ()
    dtype = _TFLITE_DTYPES.get(tensor.Type())
    same_dtype = dtype is None or dtype == dtype_of(ty) or {dtype, dtype_of(ty)} <= _INDEX_DTYPES
    if (declared or not computed) and declared != computed or not same_dtype:
        name = tensor.Name().decode("utf-8", errors="replace")
        raise DeclaredTypeError(name, op, index, (declared, dtype), (computed, dtype_of(ty)))


def gather_axes(x, maps: dict):
    """``x`` gathered along each axis of ``maps`` (axis -> source index per output position);
    an axis whose map is the identity is left out."""
    for axis, idx in sorted(maps.items()):
        idx = np.asarray(idx, np.int32)
        if not np.array_equal(idx, np.arange(len(idx))) or len(idx) != shape_of(x.ty)[axis]:
            x = relax.op.take(x, relax.const(idx), axis=axis)
    return x


def broadcast_gather(x, shape):
    """``x`` broadcast (numpy's rules, both ways: ONNX Expand) to ``shape`` as a reshape to the
    output's rank and a gather of index 0 along each axis of size 1 that grows."""
    have = list(shape_of(x.ty))
    out = list(np.broadcast_shapes(tuple(have), tuple(shape)))
    ones = [1] * (len(out) - len(have)) + have
    if ones != have:
        x = relax.op.reshape(x, ones)
    return gather_axes(x, {a: np.zeros(n, np.int32) for a, (d, n) in enumerate(zip(ones, out)) if d != n})


def transpose_conv_pads(in_hw, k_hw, strides, out_hw, same: bool, dilation=(1, 1), pad_begin=None):
    """(padding [top, left, bottom, right], output_padding) of a ``conv2d_transpose`` whose output
    is ``out_hw``: the top / left pads TFLite Micro computes (SAME: half the total of
    ComputePaddingWithOffset, rounded down; VALID: none) unless ``pad_begin`` gives them, the
    bottom / right ones what is left of the full scatter ((in - 1) * stride + dilated kernel), and
    an output padding where the output is larger than that. ValueError from ``stride`` rows of
    output padding on (conv2d_transpose takes fewer)."""
    padding, extra = [0, 0, 0, 0], [0, 0]
    for i in range(2):
        full = (in_hw[i] - 1) * strides[i] + (k_hw[i] - 1) * dilation[i] + 1
        if pad_begin is not None:
            top = pad_begin[i]
        elif same:
            top = max((-(-out_hw[i] // strides[i]) - 1) * strides[i] + k_hw[i] - out_hw[i], 0) // 2
        else:
            top = 0
        end = full - top - out_hw[i]
        if end < 0 and -end >= strides[i]:
            raise ValueError(f"transposed convolution output size {out_hw[i]} exceeds the scatter of its input "
                             f"({full} - {top} padding) by {-end}, at least the stride {strides[i]}")
        padding[i], padding[i + 2], extra[i] = top, max(end, 0), max(-end, 0)
    return padding, extra


def tflite_softmax_beta(op) -> float:
    """``beta`` of a TFLite SOFTMAX operator (1.0 when the options table is absent)."""
    from tflite.SoftmaxOptions import SoftmaxOptions

    table = op.BuiltinOptions()
    if table is None:
        return 1.0
    opts = SoftmaxOptions()
    opts.Init(table.Bytes, table.Pos)
    return float(opts.Beta())


def from_onnx(model, shape_dict=None, converters: dict | None = None):
    """TVM's ONNX importer, with converters of our own where 0.27's do not fit (``_onnx_overrides``)
    and ``converters``: operator -> a function of the frontend module returning its converter
    class (adaptc.composite_import's, which emit composite calls)."""
    from tvm.relax.frontend.onnx import onnx_frontend as fe

    original = fe._get_convert_map

    def convert_map():
        return {**original(), **_onnx_overrides(fe), **{op: make(fe) for op, make in (converters or {}).items()}}

    made = []
    construct = fe.ONNXGraphImporter._construct_nodes

    def construct_nodes(self, graph):
        made.append(self)
        return construct(self, graph)

    fe._get_convert_map = convert_map            # the importer looks the map up per node
    fe.ONNXGraphImporter._construct_nodes = construct_nodes
    try:
        mod = fe.from_onnx(model, shape_dict=shape_dict, keep_params_in_input=False)
    finally:
        fe._get_convert_map = original
        fe.ONNXGraphImporter._construct_nodes = construct
    return name_bindings(mod, {e: n for imp in made[:1] for n, e in imp._nodes.items()})


def _onnx_overrides(fe) -> dict:
    """Converters replacing 0.27's:

    - Clip: 0.27 emits ``maximum`` / ``minimum`` TIR calls (and NaN tests of the bounds) for every
      form; with constant bounds (attributes before opset 11, constant inputs since) it is one
      ``relax.op.clip`` -- a ReLU6 the passes fuse into the layer before it. Other bounds: 0.27's.
    - Conv: ``auto_pad`` SAME_UPPER / SAME_LOWER as explicit pads (0.27 pads with a TIR call);
      a 1-D Conv (3-D input) as a 2-D one of height 1 between reshapes (0.27: ``nn.conv1d``).
    - ConvTranspose (2-D): pads from ``output_shape`` when given (0.27 ignores it), from
      ``auto_pad`` as the specification computes them, or ``pads``; end pads past the scatter
      become an output padding (``onnx_conv_transpose_pads``).
    - Dropout: 0.27 emits ``nn.dropout`` (a training op returning a tuple); at inference it is the
      identity (a node that also asks for the mask output is refused by the importer).
    - Constant: also the ``value_float(s)`` / ``value_int(s)`` forms (0.27 reads ``value`` only).
    - Gather of a tensor by constant indices: negative indices made positive here (0.27 does it
      at run time, from the tensor's shape).
    - Elu, LeakyRelu: written in adaptc.unary's canonical form; PRelu with a constant slope in
      adaptc.prelu's (0.27: ``nn.prelu``, or a ``where`` for a slope of several axes).
    - Resize with constant scales or sizes, ``axes`` and ``keep_aspect_ratio_policy`` included:
      mode nearest a gather (``take``) per resized axis of the source indices onnxruntime
      computes (``adaptc.resize.onnx_nearest_indices``); modes linear and cubic a weighted gather per
      resized axis (``onnx_resize_taps``).
    - Expand to a constant or static shape (torch's zero initial states: Expand(Constant,
      Concat(Shape(x), ..))): of a constant, a constant; of a tensor, a gather of index 0 along each broadcast axis
      (``broadcast_gather``; 0.27: ``broadcast_to``, which no kernel takes).
    - ConstantOfShape of a static shape (a Shape's output): a constant (0.27: ``broadcast_to``).
    - Range whose bounds are static dimensions of a shape (``Shape`` then ``Gather``): a constant
      (0.27: a tensor of symbolic length).
    - Upsample (opsets 7 and 9; 0.27 reads opset 7's scales attribute only): the Resize of the
      same scales with asymmetric coordinates, nearest rounding down (the ONNX definition).
    - AveragePool, MaxPool of a 3-D input (1-D pooling) as a 2-D one of height 1 between reshapes.
    - Pad with constant pads (and axes): mode constant ``nn.pad``, reflect / edge / wrap a gather
      per padded axis (``onnx_pad_indices``); 0.27 emits a TIR call for every mode.
    - Max, Min: 0.27 broadcasts every input to the output shape, stacks them and reduces over the
      new axis (a 5-D tensor ConvertLayout refuses); here the pairwise ``maximum`` / ``minimum``
      of the inputs, which broadcast by themselves (0.27's own form for unknown shapes)."""
    from . import unary

    def bound(e, default: float):
        if e is None:
            return default
        if not is_constant(e):
            return None
        v = float(constant_value(e))
        return default if np.isnan(v) else v

    class Clip(fe.Clip):
        @classmethod
        def _impl_v1(cls, bb, inputs, attr, params):
            return relax.op.clip(inputs[0], float(attr.get("min", -np.inf)), float(attr.get("max", np.inf)))

        @classmethod
        def _impl_v13(cls, bb, inputs, attr, params):
            lo = bound(inputs[1] if len(inputs) > 1 else None, -np.inf)
            hi = bound(inputs[2] if len(inputs) > 2 else None, np.inf)
            if lo is None or hi is None:
                return super()._impl_v13(bb, inputs, attr, params)
            return relax.op.clip(inputs[0], lo, hi)

    class Dropout(fe.Dropout):
        @classmethod
        def _impl_v1(cls, bb, inputs, attr, params):
            return inputs[0]

        @classmethod
        def _impl_v12(cls, bb, inputs, attr, params):
            return inputs[0]

    class Elu(fe.Elu):
        @classmethod
        def _impl_v1(cls, bb, inputs, attr, params):
            return unary.build("elu", inputs[0], alpha=float(attr.get("alpha", 1.0)))

    class LeakyRelu(fe.LeakyRelu):
        @classmethod
        def _impl_v1(cls, bb, inputs, attr, params):
            return unary.build("leaky_relu", inputs[0], alpha=float(attr.get("alpha", 0.01)))

    class PRelu(fe.PRelu):
        @classmethod
        def _impl_v1(cls, bb, inputs, attr, params):
            from . import prelu

            x, slope = inputs
            if not is_constant(slope):
                return super()._impl_v1(bb, inputs, attr, params)
            rank = len(shape_of(x.ty))
            return prelu.build(x, relax.const(prelu.full_rank(constant_value(slope).astype(np.float32), rank)))

    class Resize(fe.Resize):
        @classmethod
        def _impl_v18(cls, bb, inputs, attr, params):
            coord = attr.get("coordinate_transformation_mode", b"half_pixel").decode("ascii")
            rounding = attr.get("nearest_mode", b"round_prefer_floor").decode("ascii")
            policy = attr.get("keep_aspect_ratio_policy", b"stretch").decode("ascii")
            x = inputs[0]
            shape = shape_of(x.ty)
            axes = [int(a) % len(shape) for a in attr.get("axes", range(len(shape)))]
            scales = inputs[2] if len(inputs) > 2 and inputs[2] is not None else None
            sizes = inputs[3] if len(inputs) > 3 and inputs[3] is not None else None
            if scales is not None and is_constant(scales) and constant_value(scales).size:
                sc = dict(zip(axes, constant_value(scales).astype(np.float32)))
                out = {a: int(np.floor(np.float32(shape[a]) * sc[a])) for a in axes}
            elif sizes is not None and is_constant(sizes):
                out = dict(zip(axes, (int(v) for v in constant_value(sizes))))
                sc = {a: np.float32(out[a] / shape[a]) for a in axes}
                if policy != "stretch":            # one scale for every axis, the smaller / larger
                    pick = min if policy == "not_larger" else max
                    s = np.float32(pick(out[a] / shape[a] for a in axes))
                    sc = {a: s for a in axes}
                    out = {a: int(np.floor(np.float32(shape[a]) * s + np.float32(0.5))) for a in axes}
            else:
                return super()._impl_v18(bb, inputs, attr, params)
            mode = attr.get("mode", b"nearest").decode("ascii")
            if mode != "nearest":
                return onnx_resize_taps(bb, x, axes, out, sc, mode, coord, attr, inputs[1] if len(inputs) > 1 else None)
            maps = {a: resize.onnx_nearest_indices(shape[a], out[a], float(sc[a]), coord, rounding)
                    for a in axes if (out[a], sc[a]) != (shape[a], 1.0)}
            return gather_axes(x, maps)

    class Upsample(fe.Upsample):    # 0.27: the scales attribute only, 4-D, nearest with TVM's rounding
        @classmethod
        def _impl_v7(cls, bb, inputs, attr, params):
            scales = attr.get("scales") if len(inputs) < 2 else inputs[1]
            if scales is None or (len(inputs) > 1 and not is_constant(scales)):
                raise ValueError("Upsample with scales computed at run time")
            scales = np.asarray(constant_value(scales) if len(inputs) > 1 else scales, np.float32)
            mode = attr.get("mode", b"nearest")     # Resize: asymmetric coordinates, nearest rounds down
            resized = {"mode": mode, "coordinate_transformation_mode": b"asymmetric", "nearest_mode": b"floor"}
            return Resize._impl_v18(bb, [inputs[0], None, relax.const(scales), None], resized, params)

        _impl_v9 = _impl_v7

    class Pad(fe.Pad):      # 0.27: a TIR call (emit_te) for every mode
        @classmethod
        def _relax(cls, bb, x, before, after, value, mode, fallback):
            if any(int(v) < 0 for v in (*before, *after)) or mode not in ("constant", "reflect", "edge", "wrap"):
                return fallback()
            if mode == "constant":
                return relax.op.nn.pad(x, [int(v) for pair in zip(before, after) for v in pair], pad_value=float(value))
            return gather_axes(x, {a: onnx_pad_indices(d, int(b), int(e), mode)
                                   for a, (d, b, e) in enumerate(zip(shape_of(x.ty), before, after)) if b or e})

        @classmethod
        def _impl_v2(cls, bb, inputs, attr, params):
            before, after = np.split(np.asarray(attr.get("pads"), np.int64), 2)
            return cls._relax(bb, inputs[0], before, after, attr.get("value", 0.0),
                              attr.get("mode", b"constant").decode(), lambda: super(Pad, cls)._impl_v2(
                                  bb, inputs, attr, params))

        @classmethod
        def _impl_v11(cls, bb, inputs, attr, params):
            if not is_constant(inputs[1]) or (len(inputs) > 3 and inputs[3] is not None and not is_constant(inputs[3])):
                return super()._impl_v19(bb, inputs, attr, params)
            before, after, value = cls._parse_pads_and_axes(inputs, params)
            return cls._relax(bb, inputs[0], before, after, value, attr.get("mode", b"constant").decode(),
                              lambda: super(Pad, cls)._impl_v19(bb, inputs, attr, params))

        _impl_v18 = _impl_v11
        _impl_v19 = _impl_v11

    class Range(fe.Range):
        @classmethod
        def _impl_v12(cls, bb, inputs, attr, params):    # a shape's dimension: a constant (0.27: symbolic)
            def static(x):
                return relax.const(x.value, "int64") if isinstance(x, tvm.tirx.IntImm) else x
            return super()._impl_v12(bb, [static(x) for x in inputs], attr, params)

    class ConstantOfShape(fe.ConstantOfShape):
        @classmethod
        def _impl_v9(cls, bb, inputs, attr, params):     # of a static shape: a constant (0.27: broadcast_to)
            shape = inputs[0]
            if isinstance(shape, relax.ShapeExpr) and all(isinstance(d, tvm.tirx.IntImm) for d in shape.values):
                value = attr.get("value")
                value = fe.get_numpy(value) if value is not None else np.zeros(1, np.float32)
                return relax.const(np.full([int(d) for d in shape.values], value.reshape(-1)[0], value.dtype))
            return super()._impl_v9(bb, inputs, attr, params)

    class Expand(fe.Expand):
        @classmethod
        def _impl_v13(cls, bb, inputs, attr, params):
            x, shape = inputs
            if isinstance(shape, relax.ShapeExpr) and all(isinstance(d, tvm.tirx.IntImm) for d in shape.values):
                shape = [int(d) for d in shape.values]        # a static shape computed from Shape
            elif is_constant(shape):
                shape = [int(d) for d in constant_value(shape)]
            else:
                return super()._impl_v13(bb, inputs, attr, params)
            if is_constant(x):
                v = constant_value(x)
                return relax.const(np.ascontiguousarray(v * np.ones(shape, v.dtype)))
            return broadcast_gather(x, shape)

        _impl_v8 = _impl_v13

    def pairwise(base):     # Max / Min: pairwise (0.27: broadcast_to, stack, reduce over the new axis)
        class Pairwise(base):
            @classmethod
            def _impl_v1(cls, bb, inputs, attr, params):
                if all(is_constant(i) for i in inputs):
                    return super()._impl_v1(bb, inputs, attr, params)
                return cls._impl_dynamic(bb, inputs)
        return Pairwise

    Max, Min = pairwise(fe.Max), pairwise(fe.Min)

    class Conv(fe.Conv):
        @classmethod
        def _impl_v11(cls, bb, inputs, attr, params):
            x, w = inputs[0], inputs[1]
            in_shape, k = shape_of(x.ty), shape_of(w.ty)[2:]
            if len(in_shape) not in (3, 4):
                return super()._impl_v11(bb, inputs, attr, params)
            attr = dict(attr)
            attr["pads"] = onnx_conv_pads(in_shape[2:], k, attr)
            attr.pop("auto_pad", None)
            if len(in_shape) == 4:
                return super()._impl_v11(bb, inputs, attr, params)
            # Conv1d: a 2-D convolution of height 1
            n, c, length = in_shape
            attr.update(kernel_shape=[1, k[0]], strides=[1, *attr.get("strides", [1])],
                        dilations=[1, *attr.get("dilations", [1])], pads=[0, attr["pads"][0], 0, attr["pads"][1]])
            x4 = bb.normalize(relax.op.reshape(x, [n, c, 1, length]))
            w4 = bb.normalize(relax.op.reshape(w, [*shape_of(w.ty)[:2], 1, k[0]]))
            y = bb.normalize(super()._impl_v11(bb, [x4, w4, *inputs[2:]], attr, params))
            o, out_len = shape_of(y.ty)[1], shape_of(y.ty)[3]
            return relax.op.reshape(y, [n, o, out_len])

    def pool1d(base):
        class Pool(base):    # 1-D (3-D input): a 2-D pooling of height 1 between reshapes (0.27: nn.*_pool1d)
            @classmethod
            def _impl_v1(cls, bb, inputs, attr, params):
                x = inputs[0]
                if len(shape_of(x.ty)) != 3:
                    return super()._impl_v1(bb, inputs, attr, params)
                n, c, length = shape_of(x.ty)
                attr = dict(attr)
                pads = attr.get("pads", [0, 0])
                attr.update(kernel_shape=[1, *attr["kernel_shape"]], strides=[1, *attr.get("strides", [1])],
                            dilations=[1, *attr.get("dilations", [1])], pads=[0, pads[0], 0, pads[1]])
                y = bb.normalize(super()._impl_v1(bb, [bb.normalize(relax.op.reshape(x, [n, c, 1, length]))],
                                                  attr, params))
                return relax.op.reshape(y, [n, c, shape_of(y.ty)[3]])
        return Pool

    class ConvTranspose(fe.ConvTranspose):
        @classmethod
        def _impl_v1(cls, bb, inputs, attr, params):
            x, w, *bias = inputs
            in_hw = shape_of(x.ty)[2:]
            padding, output_padding, strides, dilations = onnx_conv_transpose_pads(in_hw, shape_of(w.ty)[2:], attr)
            y = relax.op.nn.conv2d_transpose(x, w, strides=strides, padding=padding, output_padding=output_padding,
                                             dilation=dilations, groups=int(attr.get("group", 1)))
            if bias and bias[0] is not None:   # (a constant of the right rank: ConvertLayout carries it)
                b = bias[0]
                y = relax.op.add(y, relax.const(constant_value(b).reshape(1, -1, 1, 1)) if is_constant(b)
                                 else relax.op.reshape(b, [1, -1, 1, 1]))
            return y

    class Gather(fe.Gather):
        @classmethod
        def _impl_v13(cls, bb, inputs, attr, params):
            data, indices = inputs[:2]
            ty = getattr(data, "ty", None)
            if is_constant(indices) and not is_constant(data) and isinstance(ty, relax.TensorType) \
                    and ty.shape is not None:
                axis = int(attr.get("axis", 0)) % len(shape_of(ty))
                idx = constant_value(indices).astype(np.int64)
                idx = np.where(idx < 0, idx + shape_of(ty)[axis], idx)
                return relax.op.take(data, relax.const(idx.astype(np.int64)), axis)
            return super()._impl_v13(bb, inputs, attr, params)

    class Constant(fe.Constant):
        @classmethod
        def _impl_v13(cls, bb, inputs, attr, params):
            for key, dtype in (("value_float", "float32"), ("value_floats", "float32"), ("value_int", "int64"),
                               ("value_ints", "int64")):
                if key in attr:
                    return relax.const(np.asarray(attr[key], dtype), dtype)
            return super()._impl_v13(bb, inputs, attr, params)

    return {"AveragePool": pool1d(fe.AveragePool), "Clip": Clip, "Constant": Constant, "Conv": Conv,
            "ConvTranspose": ConvTranspose, "Dropout": Dropout, "Elu": Elu, "ConstantOfShape": ConstantOfShape,
            "Expand": Expand, "Range": Range, "Gather": Gather, "LeakyRelu": LeakyRelu,
            "Max": Max, "MaxPool": pool1d(fe.MaxPool), "Min": Min, "PRelu": PRelu, "Pad": Pad, "Resize": Resize,
            "Upsample": Upsample}


def onnx_pad_indices(size: int, before: int, after: int, mode: str) -> np.ndarray:
    """Source index of each position of an axis ONNX Pad pads by ``mode`` reflect, edge or wrap."""
    if mode == "wrap":
        return np.mod(np.arange(-before, size + after), size)

    return resize.reflect_indices(size, before, after, mode)


def onnx_resize_taps(bb, x, axes, out: dict, scales: dict, mode: str, coord: str, attr, roi):
    """ONNX Resize mode linear / cubic (antialias, cubic_coeff_a, exclude_outside,
    tf_crop_and_resize with its roi and extrapolation_value) as one weighted gather per resized
    axis (adaptc.resize.onnx_taps: taps computed as the ONNX specification does)."""
    shape = shape_of(x.ty)
    rank = len(shape)
    box = {a: (0.0, 1.0) for a in range(rank)}
    if coord == "tf_crop_and_resize":
        r = constant_value(roi).astype(np.float64).reshape(-1)
        listed = axes if len(r) == 2 * len(axes) else list(range(rank))
        box.update({a: (float(r[i]), float(r[len(listed) + i])) for i, a in enumerate(listed)})
    for a in axes:
        if (out[a], float(scales[a])) == (shape[a], 1.0) and box[a] == (0.0, 1.0):
            continue
        idx, w, extra = resize.onnx_taps(
            shape[a], out[a], float(scales[a]), mode, coord, float(attr.get("cubic_coeff_a", -0.75)),
            bool(attr.get("exclude_outside", 0)), bool(attr.get("antialias", 0)), box[a])
        x = taps_expr(bb, x, a, idx, w, extra, float(attr.get("extrapolation_value", 0.0)))
    return x


def taps_expr(bb, x, axis: int, indices: np.ndarray, weights: np.ndarray, extrapolated=None,
              extrapolation_value: float = 0.0):
    """Relax for one axis of a resize (the form FuseFloatOps recognizes):
    ``sum(multiply(reshape(take(x, indices, axis), [.., out, K, ..]), weights), axis + 1)``, plus
    the extrapolation value where ``extrapolated``."""
    shape = list(shape_of(x.ty))
    out, k = indices.shape
    rank = len(shape)
    g = bb.normalize(relax.op.take(x, relax.const(indices.reshape(-1).astype(np.int32)), axis=axis))
    g = bb.normalize(relax.op.reshape(g, [*shape[:axis], out, k, *shape[axis + 1:]]))
    w = weights.astype(np.float32).reshape([out, k] + [1] * (rank - axis - 1))
    y = bb.normalize(relax.op.sum(bb.normalize(relax.op.multiply(g, relax.const(w))), axis=[axis + 1]))
    if extrapolated is not None and np.any(extrapolated):
        bias = np.where(extrapolated, np.float32(extrapolation_value), np.float32(0)).astype(np.float32)
        y = bb.normalize(relax.op.add(y, relax.const(bias.reshape([out] + [1] * (rank - axis - 1)))))
    return y


def onnx_conv_pads(in_size, kernel, attr) -> list[int]:
    """A Conv's explicit pads [begin..., end...] (ONNX's order) from its ``auto_pad``: SAME_UPPER /
    SAME_LOWER pad so that out = ceil(in / stride), the odd element at the end / the beginning, as
    onnxruntime does; VALID none; NOTSET the ``pads`` attribute."""
    n = len(in_size)
    mode = attr.get("auto_pad", b"NOTSET")
    mode = mode.decode() if isinstance(mode, bytes) else str(mode)
    strides = list(attr.get("strides", [1] * n))
    dilations = list(attr.get("dilations", [1] * n))
    if mode == "VALID":
        return [0] * (2 * n)
    if mode not in ("SAME_UPPER", "SAME_LOWER"):
        return [int(v) for v in attr.get("pads", [0] * (2 * n))]
    begin, end = [], []
    for size, k, s, d in zip(in_size, kernel, strides, dilations):
        total = max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)
        small = total // 2
        begin.append(small if mode == "SAME_UPPER" else total - small)
        end.append(total - begin[-1])
    return begin + end


def onnx_conv_transpose_pads(in_hw, k_hw, attr):
    """(padding, output_padding, strides, dilations) of a 2-D ConvTranspose for
    ``conv2d_transpose`` (transpose_conv_pads): the begin pads of the ONNX specification --
    ``output_shape`` given: total = stride * (in - 1) + output_padding + dilated kernel - output
    shape, the larger half at the end for SAME_UPPER, at the beginning otherwise (onnxruntime's
    rule); ``auto_pad`` SAME_* alone: the same with output shape in * stride; VALID: none;
    else ``pads``."""
    mode = attr.get("auto_pad", b"NOTSET")
    mode = mode.decode() if isinstance(mode, bytes) else str(mode)
    strides = [int(v) for v in attr.get("strides", [1, 1])]
    dilations = [int(v) for v in attr.get("dilations", [1, 1])]
    extra = [int(v) for v in attr.get("output_padding", [0, 0])]
    full = [(i - 1) * s + (k - 1) * d + 1 + e for i, k, s, d, e in zip(in_hw, k_hw, strides, dilations, extra)]
    out_shape = attr.get("output_shape")
    if out_shape is not None or mode in ("SAME_UPPER", "SAME_LOWER"):
        out = [int(v) for v in out_shape[-2:]] if out_shape is not None else [i * s for i, s in zip(in_hw, strides)]
        totals = [f - o for f, o in zip(full, out)]
        begin = [t // 2 if mode == "SAME_UPPER" else t - t // 2 for t in totals]
        end = [t - b for t, b in zip(totals, begin)]
    elif mode == "VALID":
        begin, end = [0, 0], [0, 0]
    else:
        pads = [int(v) for v in attr.get("pads", [0, 0, 0, 0])]
        begin, end = pads[:2], pads[2:]
    out_hw = [f - b - e for f, b, e in zip(full, begin, end)]
    padding, output_padding = transpose_conv_pads(in_hw, k_hw, strides, out_hw, False, dilations, begin)
    return padding, output_padding, strides, dilations


def to_tensor(x: np.ndarray, device=None):
    x = np.asarray(x)   # (not ascontiguousarray: it turns a 0-d array into 1-d)
    return tvm.runtime.tensor(x if x.flags.c_contiguous else x.copy(order="C"), device or tvm.cpu())  # 0.27: no tvm.nd


def build_llvm(mod) -> relax.VirtualMachine:
    """Compile a Relax module for the host CPU and return a VM over it."""
    return relax.VirtualMachine(tvm.compile(mod, target="llvm"), tvm.cpu())


def run_vm(vm: relax.VirtualMachine, *inputs: np.ndarray, func: str = "main") -> list[np.ndarray]:
    """Run a VM function; always returns a list of NumPy arrays (tuple outputs flattened)."""
    out = vm[func](*[to_tensor(x) for x in inputs])
    if hasattr(out, "numpy"):
        return [out.numpy()]
    return [o.numpy() for o in out]  # tvm_ffi Array of Tensors


def well_formed(mod) -> bool:
    return bool(relax.analysis.check_well_formed(mod))  # 0.27: well_formed() raises instead


# TVM's FFI turns an exception raised inside a Python pass into a RuntimeError. adaptc's typed
# errors are kept here by the pass wrapper and re-raised by ``apply`` with their own type.
_PASS_ERRORS: list[BaseException] = []


def module_pass(name: str):
    """Decorator: fn(mod) -> mod as a tvm.transform module pass that keeps typed errors."""

    def wrap(fn):
        def body(mod, _ctx):
            try:
                return fn(mod)
            except AdaptcError as e:
                _PASS_ERRORS.append(e)
                raise
        return tvm.transform.module_pass(body, opt_level=0, name=name)
    return wrap


def apply(pass_or_seq, mod):
    """Run a pass (or list of passes) on ``mod``, re-raising adaptc's typed errors as such."""
    passes = pass_or_seq if isinstance(pass_or_seq, (list, tuple)) else [pass_or_seq]
    _PASS_ERRORS.clear()
    try:
        for p in passes:
            mod = p(mod)
        return mod
    except Exception:
        if _PASS_ERRORS:
            raise _PASS_ERRORS.pop() from None
        raise


def replace_function(mod, name: str, func):
    """A new IRModule equal to ``mod`` with function ``name`` replaced (mod is not mutated)."""
    new = tvm.IRModule({gv: f for gv, f in mod.functions_items()}, attrs=mod.attrs)
    new[mod.get_global_var(name)] = func
    return new


def to_non_dataflow(mod):
    """Dataflow blocks -> plain binding blocks (needed before ``relax.If`` or tapping values)."""
    return relax.transform.ToNonDataflow()(mod)


def _result_tuple(func):
    """The binding of the tuple ``func`` returns (a multi-output model's), else None."""
    result = func.body.body
    if isinstance(result, relax.Var):
        for block in func.body.blocks:
            for b in block.bindings:
                if b.var.same_as(result) and isinstance(b.value, relax.Tuple):
                    return b
    return None


def bindings(func) -> list:
    """``func``'s bindings in order, without the one that builds a multi-output result tuple."""
    skip = _result_tuple(func)
    return [b for block in func.body.blocks for b in block.bindings if skip is None or not b.same_as(skip)]


def results(func) -> list:
    """The expressions ``func`` returns: the fields of its result tuple (bound or not), else the
    one result."""
    result = func.body.body
    tup = _result_tuple(func)
    if tup is not None:
        return list(tup.value.fields)
    return list(result.fields) if isinstance(result, relax.Tuple) else [result]


def select_output(mod, index):
    """``main`` returning only field ``index`` of its tuple result -- or, for a list of indices,
    the tuple of those fields in that order (what only the other fields needed is removed);
    ``mod`` itself is not changed."""
    func = mod["main"]
    result = func.body.body
    blocks, out = [], None
    for block in func.body.blocks:
        bindings = []
        for b in block.bindings:
            if b.var.same_as(result) and isinstance(b.value, relax.Tuple):
                if isinstance(index, int):
                    field = b.value.fields[index]
                    out = relax.Var(b.var.name, field.ty)
                else:
                    field = relax.Tuple([b.value.fields[i] for i in index])
                    out = relax.Var(b.var.name, relax.TupleType([f.ty for f in field.fields]))
                b = relax.VarBinding(out, field)
            bindings.append(b)
        blocks.append(relax.DataflowBlock(bindings) if isinstance(block, relax.DataflowBlock)
                      else relax.BindingBlock(bindings))
    if out is None:
        raise ValueError("main does not return a tuple")
    new = relax.Function(func.params, relax.SeqExpr(blocks, out), ret_ty=out.ty, attrs=func.attrs)
    return relax.transform.DeadCodeElimination(["main"])(replace_function(mod, "main", new))


def replace_call_args(mod, binding: int, args: dict):
    """``main`` with the call bound by its ``binding``-th binding given new arguments
    ({position: Relax expression}); ``mod`` itself is not changed."""
    func = mod["main"]
    blocks, i = [], 0
    for block in func.body.blocks:
        bindings = []
        for b in block.bindings:
            if i == binding:
                call = b.value
                new_args = [args.get(k, a) for k, a in enumerate(call.args)]
                b = relax.VarBinding(b.var, relax.Call(call.op, new_args, call.attrs, call.ty_args))
            bindings.append(b)
            i += 1
        blocks.append(relax.DataflowBlock(bindings) if isinstance(block, relax.DataflowBlock)
                      else relax.BindingBlock(bindings))
    new = relax.Function(func.params, relax.SeqExpr(blocks, func.body.body), ret_ty=func.ret_ty, attrs=func.attrs)
    return replace_function(mod, "main", new)


def lift_call_args(mod, slots: list[tuple[int, int]]):
    """``main`` with the constant arguments at ``slots`` ((binding index, argument position))
    made extra parameters of main, after its own, in the order given; and their values. One build
    then runs the model with any values there (the mixed-precision search tries a layer's weights
    in every format without rebuilding). ``mod`` itself is not changed."""
    func = mod["main"]
    calls = [b.value for block in func.body.blocks for b in block.bindings]
    values, params, by_binding = [], [], {}
    for k, (bi, pos) in enumerate(slots):
        value = constant_value(calls[bi].args[pos])
        var = relax.Var(f"lifted{k}", tensor_type(value.shape, str(value.dtype)))
        values.append(value)
        params.append(var)
        by_binding.setdefault(bi, {})[pos] = var
    out = mod
    for bi, args in by_binding.items():
        out = replace_call_args(out, bi, args)
    main = out["main"]
    lifted = relax.Function(list(func.params) + params, main.body, ret_ty=main.ret_ty, attrs=main.attrs)
    return replace_function(out, "main", lifted), values


def typed_global_var(name: str, ty):
    """A new GlobalVar with type ``ty`` (a Relax call's callee needs one; 0.27's constructor
    takes the name only)."""
    gv = tvm.ir.GlobalVar(name)
    relax.expr._update_type(gv, ty)
    return gv


def structural_equal(a, b) -> bool:
    """TVM's structural equality (0.27: in tvm_ffi; ``tvm.ir`` keeps only the assert)."""
    import tvm_ffi

    return bool(tvm_ffi.structural_equal(a, b))


def const(value: np.ndarray):
    """A Relax constant of a NumPy array."""
    return relax.const(value)
