"""FuseFloatOps: float32 layers become ``adaptc.*_f32`` composites (the float C kernels' units).

Requires: ``main`` of a float model with one dataflow block, NHWC activations (TFLite layout),
weights as constants (possibly reshaped / transposed constants).

Ensures: ``main`` holds calls to float composites and reshapes only:
``conv2d [+ bias] [+ relu|clip]`` -> ``adaptc.conv2d_f32`` (depthwise when groups == channels; a
grouped one, 1 < groups < channels, as one per group between a channel slice of the input each
and a concat);
``matmul [+ bias] [+ act]`` -> ``adaptc.dense_f32``; ``add(x, y) [+ act]`` of two activations ->
``adaptc.add_f32``; ``multiply(x, y) [+ act]`` of two activations, broadcasting ->
``adaptc.mul_f32``; ``add`` with broadcasting or a constant operand (not a bias the layer before
absorbed), ``subtract``, ``divide``, ``maximum``, ``minimum`` and ``power(subtract(x, y), 2)``
(TFLite SQUARED_DIFFERENCE) ``[+ act]``, broadcasting, one operand possibly a constant ->
``adaptc.binary_f32``; an element-wise function of adaptc.unary in its canonical form (sigmoid, tanh,
hard swish, hard sigmoid, leaky ReLU, ELU, rsqrt, sqrt, reciprocal) -> ``adaptc.unary_f32``; adaptc.prelu's
form with an alpha of several values -> ``adaptc.prelu_f32`` (alpha in flash); ``avg_pool2d`` /
``max_pool2d [+ act]``; ``[x * beta ->] softmax``, ``log_softmax``; a lone ``relu``/``clip`` ->
``adaptc.clamp_f32``; ``nn.pad``. A ``mean`` over H and W (axes [1, 2] of an NHWC tensor)
``[+ act]`` that keeps them as size 1 is a global average pool (ONNX GlobalAveragePool,
ReduceMean keepdims=1) -> ``adaptc.avg_pool2d_f32`` with the whole plane as window; any other
mean over neighbouring axes (ReduceMean keepdims=0, PyTorch ``x.mean((2, 3))``, TFLite MEAN,
a 1-D global pooling), and a ``sum`` or ``max`` over neighbouring axes (ReduceSum, ReduceMax,
TFLite SUM, REDUCE_MAX) -> ``adaptc.reduce_f32``; a reduction over axes that are not neighbours
raises UnsupportedOperatorError naming them. Layout ops (reshape, permute_dims), concat, strided_slice
and take (a gather: nearest resizing) stay as they are; each part of a split becomes a
strided_slice. Anything else raises UnsupportedOperatorError naming the op and binding.
``resize2d`` mode linear -> ``adaptc.resize_bilinear_f32`` (index and fraction tables of
adaptc.resize); one axis of a resize as the importer writes it (adaptc.tvm_compat.taps_expr:
``sum(multiply(reshape(take(x, indices)), weights))``, ONNX Resize linear / cubic) ->
``adaptc.resize_axis_f32``; ``argmax`` -> ``adaptc.argmax_f32`` (int32 indices, TFLite ARG_MAX's type).
Composite bodies are the original float ops, so the module computes the same values on llvm.

Parameters: ``path`` -- the model file, for error messages.
"""
from __future__ import annotations

import numpy as np
from tvm import relax

from adaptc import interpolate, resize, tvm_compat, unary
from adaptc.graph import Graph, const_eval, match_prelu, match_unary, mean_axes, rebuild_main, split_part
from adaptc.qops import COMPARISONS, CompositeCall, imported_composite

SUPPORTED = ("add", "astype", "avg_pool2d", "clip", "concat", "conv2d", "conv2d_transpose", "divide", "equal",
             "greater", "greater_equal", "less", "less_equal", "matmul", "max", "max_pool2d", "maximum", "mean",
             "log_softmax", "minimum", "multiply", "nn.pad", "power", "relu", "reshape", "softmax", "split",
             "strided_slice", "subtract", "sum", "take", "where", *unary.FUNCTIONS)
BINARY = {"relax.add": "add", "relax.subtract": "subtract", "relax.divide": "divide", "relax.maximum": "maximum",
          "relax.minimum": "minimum"}
REVERSED = {"subtract": "reverse_subtract", "divide": "reverse_divide"}   # c op x, the constant stored second
LAYOUT_OPS = ("relax.reshape", "relax.squeeze", "relax.expand_dims", "relax.flatten", "relax.permute_dims",
              "relax.concat", "relax.strided_slice", "relax.take")


def _act_bounds(call) -> tuple[float, float] | None:
    name = tvm_compat.op_name(call)
    if name == "relax.nn.relu":
        return 0.0, float("inf")
    if name == "relax.clip":
        return float(call.args[1].value), float(call.args[2].value)
    return None


class _Fuser:
    def __init__(self, mod, path):
        self.mod, self.g = mod, Graph(mod["main"], path, SUPPORTED)
        self.users: dict = {}
        for b in self.g.bindings:
            for v in relax.analysis.free_vars(b.value):
                self.users.setdefault(v, []).append(b)
        self.calls, self.alias, self.consumed = [], {}, set()
        self.scale: dict = {}           # var = x * s folded into its user's weights: var -> s
        self.unary: dict = {}           # var -> graph.UnaryMatch whose value it is
        self.squared: dict = {}         # var = power(d, 2), d = subtract(x, y) used only there -> d's call
        for b in self.g.bindings:
            if tvm_compat.op_name(b.value) == "relax.power" and self.single_user(b.value.args[0]) is not None:
                e, d = const_eval(self.g, b.value.args[1]), b.value.args[0]
                if e is not None and e.size == 1 and float(e.reshape(())) == 2.0 and \
                        self.g.op(d) == "relax.subtract" and d in self.g.value:
                    self.squared[b.var] = self.g.resolve(d)
                    self.consumed.add(d)
        self.prelu: dict = {}           # var = adaptc.prelu's form -> (x, alpha values)
        for b in reversed(self.g.bindings):
            if b.var not in self.consumed and (m := match_prelu(self.g, b.value)) is not None and \
                    const_eval(self.g, m[1]).size > 1:      # (one value: leaky_relu, the same float function)
                self.prelu[b.var] = (m[0], const_eval(self.g, m[1]).astype(np.float32))
                self.consumed.update(m[2])
        for b in reversed(self.g.bindings):          # the outermost match wins
            if b.var not in self.consumed and b.var not in self.prelu and \
                    (m := match_unary(self.g, b.value)) is not None:
                self.unary[b.var] = m
                self.consumed.update(m.inner)
        self.select: dict = {}          # var = where(a < b, b, a) or the like -> ("maximum" | "minimum", [a, b])
        self.where: dict = {}           # var = where(a <cmp> b, t, f), the comparison used there only
        for b in self.g.bindings:
            if b.var in self.consumed or b.var in self.unary:
                continue
            if m := self.where_extremum(b.value):
                self.select[b.var] = m[:2]
                self.consumed.add(m[2])
            elif tvm_compat.op_name(b.value) == "relax.where" and self.single_user(b.value.args[0]) is not None \
                    and str(self.g.op(b.value.args[0])).replace("relax.", "") in COMPARISONS:
                cond = b.value.args[0]
                self.where[b.var] = (self.g.op(cond).replace("relax.", ""), [*self.g.resolve(cond).args,
                                                                             *b.value.args[1:]])
                self.consumed.add(cond)
        self.taps: dict = {}            # var = one axis of a resize (tvm_compat.taps_expr) -> its tables
        for b in self.g.bindings:
            if (m := interpolate.match_taps(self.g, b.var, b.value)) is not None and \
                    all(self.g.uses.get(v, 0) == 1 for v in m[4]):
                self.taps[b.var] = m[:4]
                self.consumed.update(m[4])

    def single_user(self, var):
        users = self.users.get(var, [])
        return users[0] if len(users) == 1 and self.g.uses.get(var) == 1 else None

    def epilogue(self, var, allow_bias: bool, out_c: int):
        """Absorb a following bias add and activation: (last var, bias or None, (lo, hi))."""
        bias, lo, hi = None, -np.inf, np.inf
        user = self.single_user(var)
        if allow_bias and user is not None and tvm_compat.op_name(user.value) == "relax.add":
            a, b = user.value.args
            other = b if a.same_as(var) else a
            value = const_eval(self.g, other)
            if value is not None and value.size in (1, out_c):
                bias = np.broadcast_to(value.reshape(-1), (out_c,)).astype(np.float32)
                self.consumed.add(user.var)
                var, user = user.var, self.single_user(user.var)
        if user is not None and _act_bounds(user.value) is not None:
            lo, hi = _act_bounds(user.value)
            self.consumed.add(user.var)
            var = user.var
        return var, bias, (lo, hi)

    def visit_transpose_conv(self, var, value, out_shape):
        """conv2d_transpose [+ bias] [+ relu|clip] (NHWC, IOHW filter) -> adaptc.transpose_conv2d_f32."""
        w, a = const_eval(self.g, value.args[1]), value.attrs
        if w is None:
            self.g.fail("conv2d_transpose", var.name, "weights must be constant")
        if str(a.data_layout) != "NHWC" or str(a.out_layout) != "NHWC" or str(a.kernel_layout) != "IOHW":
            self.g.fail("conv2d_transpose", var.name, f"layouts {a.data_layout} / {a.kernel_layout}: the C target "
                        "needs NHWC / IOHW")
        last, bias, (lo, hi) = self.epilogue(var, True, out_shape[-1])
        consts, names = [w.astype(np.float32)], ["weights"]
        if bias is not None:
            consts.append(bias)
            names.append("bias")
        attrs = {"act_min": lo, "act_max": hi, "strides": [int(v) for v in a.strides],
                 "padding": [int(v) for v in a.padding], "output_padding": [int(v) for v in a.output_padding],
                 "dilation": [int(v) for v in a.dilation], "groups": int(a.groups), "kernel_layout": "IOHW"}
        source = "transpose_conv" + "+bias" * (bias is not None) + "+act" * bool(np.isfinite([lo, hi]).any())
        self.emit(var, CompositeCall("adaptc.transpose_conv2d_f32", [value.args[0]], consts, attrs, out_shape,
                                     "float32", source, names), last)

    def input_scale(self, var, value):
        """(x, s) when ``var = x * s`` for a scalar constant ``s`` feeds only a conv2d / matmul with
        constant weights (Gemm's alpha as TVM imports it), else None."""
        user = self.single_user(var)
        if user is None or tvm_compat.op_name(user.value) not in ("relax.nn.conv2d", "relax.matmul"):
            return None
        if not user.value.args[0].same_as(var) or const_eval(self.g, user.value.args[1]) is None:
            return None
        for x, c in (value.args, value.args[::-1]):
            s = const_eval(self.g, c)
            if s is not None and s.size == 1 and const_eval(self.g, x) is None:
                return x, s.reshape(()).astype(np.float32)
        return None

    def batched_matmul(self, var, value, out_shape) -> bool:
        """A matmul that is no dense layer (both operands activations, a constant lhs, a constant
        rhs of rank other than 2) -> ``adaptc.batch_matmul_f32`` [+ act]; True if it was one."""
        lhs, rhs = (const_eval(self.g, arg) for arg in value.args)
        if lhs is None and rhs is not None and rhs.ndim == 2 or value.args[0] in self.scale:
            return False
        if lhs is not None and rhs is not None:
            return False
        last, _, (lo, hi) = self.epilogue(var, False, out_shape[-1] if out_shape else 1)
        attrs = {"swap": lhs is not None, "act_min": lo, "act_max": hi}
        if lhs is None and rhs is None:
            call = CompositeCall("adaptc.batch_matmul_f32", list(value.args), [], attrs, out_shape, "float32",
                                 "batch_matmul")
        else:
            act, const, role = (value.args[1], lhs, "lhs") if lhs is not None else (value.args[0], rhs, "rhs")
            call = CompositeCall("adaptc.batch_matmul_f32", [act], [const.astype(np.float32)], attrs, out_shape,
                                 "float32", "batch_matmul", [role])
        self.emit(var, call, last)
        return True

    def softmax_beta(self, var, value):
        """(beta, softmax binding) when ``var = x * scalar`` feeds only a last-axis softmax."""
        user = self.single_user(var)
        if user is None or tvm_compat.op_name(user.value) != "relax.nn.softmax":
            return None
        if int(user.value.attrs.axis) not in (-1, len(tvm_compat.shape_of(var.ty)) - 1):
            return None
        beta = const_eval(self.g, value.args[1])
        if beta is None or beta.size != 1:
            return None
        return float(beta.reshape(())), user

    def run(self):
        g = self.g
        for b in g.bindings:
            if b.var in self.consumed:
                continue
            self.visit(b.var, b.value)
        return rebuild_main(self.mod, g, self.calls, self.alias)

    def emit(self, anchor_var, call: CompositeCall, last_var):
        self.calls.append((last_var, call))

    def ty(self, expr):
        return self.g.resolve(expr).ty if expr in self.g.value else expr.ty

    def emit_grouped(self, var, call: CompositeCall, last_var):
        """A grouped convolution (1 < groups < channels: ResNeXt, ShuffleNet) as one convolution
        per group: its channels sliced off the input, its filters (HWIO: the groups' outputs
        side by side on O), bias and act, the results concatenated on the channel axis."""
        a, (x,) = call.attrs, call.inputs
        if a["kernel_layout"] != "HWIO":
            self.g.fail("conv2d", var.name, f"grouped convolution with filter layout {a['kernel_layout']}")
        groups, in_shape = a["groups"], tvm_compat.shape_of(self.ty(x))
        per_in, per_out = in_shape[-1] // groups, call.out_shape[-1] // groups
        parts = []
        for i in range(groups):
            part_in = relax.Var(f"{var.name}_in{i}", relax.TensorType([*in_shape[:-1], per_in], "float32"))
            self.calls.append((part_in, relax.op.strided_slice(x, axes=[3], begin=[i * per_in],
                                                               end=[(i + 1) * per_in])))
            out_shape = (*call.out_shape[:-1], per_out)
            part = relax.Var(f"{var.name}_g{i}", relax.TensorType(list(out_shape), "float32"))
            consts = [c[..., i * per_out:(i + 1) * per_out] for c in call.consts]
            self.emit(part, CompositeCall(call.name, [part_in], [np.ascontiguousarray(c) for c in consts],
                                          {**a, "groups": 1}, out_shape, "float32",
                                          f"{call.source} group {i}/{groups}", call.const_names), part)
            parts.append(part)
        self.calls.append((last_var, relax.op.concat(parts, axis=3)))

    def visit_mul(self, var, value, out_shape):
        """``multiply(x, y)`` of two activations, or of one and a constant (flash, "input2"),
        broadcasting; a scalar multiply that feeds a conv / matmul was folded into its weights."""
        last, _, (lo, hi) = self.epilogue(var, False, out_shape[-1])
        attrs = {"act_min": lo, "act_max": hi}
        consts = [const_eval(self.g, a) for a in value.args]
        if all(c is None for c in consts):
            self.emit(var, CompositeCall("adaptc.mul_f32", list(value.args), [], attrs, out_shape, "float32", "mul"),
                      last)
            return
        x, c = (value.args[1], consts[0]) if consts[1] is None else (value.args[0], consts[1])
        self.emit(var, CompositeCall("adaptc.mul_f32", [x], [np.asarray(c, np.float32)], attrs, out_shape, "float32",
                                     "mul", ["input2"]), last)

    def visit_softmax(self, var, value, out_shape, log: bool):
        """Softmax / log-softmax over the last axis -> adaptc.softmax_f32; over another axis,
        between two transposes that move that axis last and back."""
        rank, axis = len(out_shape), int(value.attrs.axis) % len(out_shape)
        x = value.args[0]
        attrs = {"beta": 1.0, "log": int(log)}
        if axis == rank - 1:
            self.emit(var, CompositeCall("adaptc.softmax_f32", [x], [], attrs, out_shape, "float32", "softmax"), var)
            return
        perm = [d for d in range(rank) if d != axis] + [axis]
        moved_shape = [out_shape[d] for d in perm]
        moved = relax.Var(f"{var.name}_last", relax.TensorType(moved_shape, "float32"))
        done = relax.Var(f"{var.name}_softmax", relax.TensorType(moved_shape, "float32"))
        self.calls.append((moved, relax.op.permute_dims(x, perm)))
        self.emit(done, CompositeCall("adaptc.softmax_f32", [moved], [], attrs, moved_shape, "float32", "softmax"),
                  done)
        self.calls.append((var, relax.op.permute_dims(done, [int(d) for d in np.argsort(perm)])))

    def visit_where(self, var, comparison, operands, out_shape):
        """``where(a <comparison> b, t, f)`` -> adaptc.where_f32: each distinct activation once,
        then each constant (flash); ``slots`` says which of them a, b, t and f are."""
        acts, consts, slots = [], [], []
        for x in operands:
            c = const_eval(self.g, x)
            if c is None:
                k = next((i for i, y in enumerate(acts) if y.same_as(x)), None)
                if k is None:
                    acts.append(x)
                    k = len(acts) - 1
                slots.append(("act", k))
            else:
                consts.append(np.asarray(c, np.float32))
                slots.append(("const", len(consts) - 1))
        slots = [k if kind == "act" else len(acts) + k for kind, k in slots]
        self.emit(var, CompositeCall("adaptc.where_f32", acts, consts, {"comparison": comparison, "slots": slots},
                                     out_shape, "float32", "where", [f"operand{len(acts) + i}" for i in
                                                                     range(len(consts))]), var)

    def where_extremum(self, value):
        """(function, [a, b], the comparison's var) when ``value`` is ``where(a < b, b, a)``
        (maximum), ``where(a < b, a, b)`` (minimum) or the same with >, <=, >= -- as ONNX's Clip
        function body writes its bounds -- and the comparison has no other use."""
        g = self.g
        if tvm_compat.op_name(value) != "relax.where" or self.single_user(value.args[0]) is None:
            return None
        cond = value.args[0]
        op = g.op(cond)
        if op not in ("relax.less", "relax.less_equal", "relax.greater", "relax.greater_equal"):
            return None
        a, b = g.resolve(cond).args
        t, f = value.args[1:]

        def same(x, y):
            cx, cy = const_eval(g, x), const_eval(g, y)
            return x.same_as(y) or (cx is not None and cy is not None and cx.shape == cy.shape and
                                    bool(np.array_equal(cx, cy)))

        smaller_first = op in ("relax.less", "relax.less_equal")       # cond: a is the smaller
        if same(t, b) and same(f, a):
            return ("maximum" if smaller_first else "minimum"), [a, b], cond
        if same(t, a) and same(f, b):
            return ("minimum" if smaller_first else "maximum"), [a, b], cond
        return None

    def visit_binary(self, var, args, function, out_shape):
        """An element-wise binary operator of two activations, or of one and a constant (flash,
        "input2"; a constant first operand of subtract / divide reverses the function),
        broadcasting, [+ act] -> adaptc.binary_f32."""
        last, _, (lo, hi) = self.epilogue(var, False, out_shape[-1] if out_shape else 1)
        attrs = {"function": function, "act_min": lo, "act_max": hi}
        consts = [const_eval(self.g, a) for a in args]
        if all(c is None for c in consts):
            self.emit(var, CompositeCall("adaptc.binary_f32", list(args), [], attrs, out_shape, "float32", function),
                      last)
            return
        if consts[1] is None:
            args, consts, attrs["function"] = args[::-1], consts[::-1], REVERSED.get(function, function)
        self.emit(var, CompositeCall("adaptc.binary_f32", [args[0]], [np.asarray(consts[1], np.float32)], attrs,
                                     out_shape, "float32", function, ["input2"]), last)

    def visit_pool(self, var, value, name, out_shape):
        """Pooling as the kernels compute it (floor mode, padding excluded from an average): ceil
        mode becomes the bottom / right padding that gives its output size in floor mode; an
        average that counts the padding becomes a zero pad and an average over whole windows."""
        g, a = self.g, value.attrs
        op = name.replace("relax.nn.", "")
        dilation = [int(d) for d in a.dilation]
        if str(a.layout) != "NHWC":
            g.fail(op, var.name, f"{op} must be NHWC (layout {a.layout})")
        x = value.args[0]
        n, in_h, in_w, c = tvm_compat.shape_of(g.resolve(x).ty if x in g.value else x.ty)
        k, st = [int(v) for v in a.pool_size], [int(v) for v in a.strides]
        top, left, bottom, right = (int(v) for v in a.padding)
        if dilation != [1, 1]:
            if top + left + bottom + right:
                g.fail(op, var.name, f"{op} with dilation {dilation} and padding {[top, left, bottom, right]}")
            x, st = self.dilated_windows(var, x, k, st, dilation, out_shape), k
            n, in_h, in_w, c = tvm_compat.shape_of(self.ty(x))
        if bool(a.ceil_mode):
            bottom += max((out_shape[1] - 1) * st[0] + k[0] - (in_h + top + bottom), 0)
            right += max((out_shape[2] - 1) * st[1] + k[1] - (in_w + left + right), 0)
        if op == "avg_pool2d" and bool(a.count_include_pad) and top + left + bottom + right:
            padded = relax.Var(f"{var.name}_padded", relax.TensorType([n, in_h + top + bottom, in_w + left + right, c],
                                                                      "float32"))
            self.emit(padded, CompositeCall("adaptc.pad_f32", [x], [], {
                "pad_width": [0, 0, top, bottom, left, right, 0, 0], "pad_value": 0.0},
                tvm_compat.shape_of(padded.ty), "float32", "avg_pool2d padding (count_include_pad)"), padded)
            x, top, left, bottom, right = padded, 0, 0, 0, 0
        last, _, (lo, hi) = self.epilogue(var, False, out_shape[-1])
        kind = "adaptc.avg_pool2d_f32" if op == "avg_pool2d" else "adaptc.max_pool2d_f32"
        self.emit(var, CompositeCall(kind, [x], [], {
            "pool_size": k, "strides": st, "padding": [top, left, bottom, right], "act_min": lo, "act_max": hi},
            out_shape, "float32", op), last)

    def dilated_windows(self, var, x, k, st, dilation, out_shape):
        """A dilated pooling's windows side by side (a gather per spatial axis: output position i
        takes the sources i * stride + j * dilation, j < k), so that a pooling of stride k
        without dilation computes it."""
        for axis in (1, 2):
            size = out_shape[axis]
            idx = (np.arange(size)[:, None] * st[axis - 1] + np.arange(k[axis - 1])[None, :] * dilation[axis - 1])
            shape = list(tvm_compat.shape_of(self.ty(x)))
            if idx.max() >= shape[axis]:
                self.g.fail("pool", var.name, "dilated pooling whose last window (ceil_mode) passes the input's end")
            shape[axis] = idx.size
            part = relax.Var(f"{var.name}_windows{axis}", relax.TensorType(shape, "float32"))
            self.calls.append((part, relax.op.take(x, relax.const(idx.reshape(-1).astype(np.int32)), axis=axis)))
            x = part
        return x

    def visit(self, var, value):
        g = self.g
        name = tvm_compat.op_name(value)
        if isinstance(value, relax.Var):
            self.alias[var] = value
            return
        if name == "relax.astype" and tvm_compat.dtype_of(value.args[0].ty) == tvm_compat.dtype_of(var.ty):
            self.alias[var] = value.args[0]           # a cast to the type it has (ONNX CastLike, Cast)
            return
        if name == "relax.split":             # its parts become slices (split_part)
            return
        if (part := split_part(g, value)) is not None:
            self.calls.append((var, part))
            return
        if const_eval(g, value) is not None:
            return
        if (imported := imported_composite(self.mod, value)) is not None:
            self.calls.append((var, imported))   # emitted by the importer (adaptc.recurrent_f32)
            return
        if name == "relax.argmax" and tvm_compat.dtype_of(value.args[0].ty) == "float32":
            in_shape = tvm_compat.shape_of(value.args[0].ty)
            if value.attrs.axis is None:
                g.fail("argmax", var.name, "argmax over all axes")
            axis = int(value.attrs.axis) % len(in_shape)
            out = var
            if bool(value.attrs.keepdims):      # (ONNX's default) the indices, then the axis of size 1
                out = relax.Var(f"{var.name}_indices", relax.TensorType(in_shape[:axis] + in_shape[axis + 1:], "int32"))
                self.calls.append((var, relax.op.expand_dims(out, axis)))
            self.calls.insert(len(self.calls) - (out is not var), (out, CompositeCall(
                "adaptc.argmax_f32", [value.args[0]], [], {"axis": axis}, tvm_compat.shape_of(out.ty), "int32",
                "arg_max")))
            return
        if name == "relax.image.resize2d":
            self.visit_resize(var, value)
            return
        if not isinstance(var.ty, relax.TensorType):    # a tuple no rule above takes apart
            g.fail(str(name).replace("relax.", ""), var.name, f"{type(var.ty).__name__} value in a float model")
        if tvm_compat.dtype_of(var.ty) != "float32":
            g.fail(str(name).replace("relax.", ""), var.name, f"{tvm_compat.dtype_of(var.ty)} value in a float model")
        out_shape = tvm_compat.shape_of(var.ty)
        if var in self.unary:
            m = self.unary[var]
            self.emit(var, CompositeCall("adaptc.unary_f32", [m.x], [], {"function": m.function.name, **m.params},
                                         out_shape, "float32", m.function.name), var)
            return
        if var in self.prelu:
            x, alpha = self.prelu[var]
            self.emit(var, CompositeCall("adaptc.prelu_f32", [x], [alpha], {}, out_shape, "float32", "prelu",
                                         ["alpha"]), var)
            return
        if var in self.select:
            self.visit_binary(var, *self.select[var][::-1], out_shape)
            return
        if var in self.taps:
            x, axis, indices, weights = self.taps[var]
            in_shape = tvm_compat.shape_of(self.ty(x))
            self.emit(var, CompositeCall("adaptc.resize_axis_f32", [x], [indices, weights], {
                **interpolate.axis_geometry(in_shape, axis, indices.shape[0]), "taps": indices.shape[1],
                "out_shape": list(out_shape)}, out_shape, "float32", "resize", ["indices", "weights"]), var)
            return
        if var in self.where:
            self.visit_where(var, *self.where[var], out_shape)
            return
        if name == "relax.multiply" and (scale := self.input_scale(var, value)) is not None:
            self.alias[var], self.scale[var] = scale          # folded into the weights of its user
            return
        if name == "relax.matmul" and self.batched_matmul(var, value, out_shape):
            return
        if name == "relax.nn.conv2d_transpose":
            self.visit_transpose_conv(var, value, out_shape)
            return
        if name in ("relax.nn.conv2d", "relax.matmul"):
            w = const_eval(g, value.args[1])
            if w is None:
                g.fail(name.replace("relax.", ""), var.name, "weights must be constant")
            if value.args[0] in self.scale:                   # (x * s) @ W = x @ (s * W)
                w = w * self.scale[value.args[0]]
            if not out_shape:
                g.fail(name.replace("relax.", ""), var.name, "a product of two vectors (a 0-d result)")
            out_c = out_shape[-1]
            last, bias, (lo, hi) = self.epilogue(var, True, out_c)
            consts, names = [w.astype(np.float32)], ["weights"]
            if bias is not None:
                consts.append(bias)
                names.append("bias")
            attrs = {"act_min": lo, "act_max": hi}
            if name == "relax.nn.conv2d":
                a = value.attrs
                if str(a.data_layout) != "NHWC" or str(a.out_layout) != "NHWC":
                    g.fail("conv2d", var.name, f"layout {a.data_layout}: the C target needs NHWC")
                attrs.update(strides=[int(v) for v in a.strides], padding=[int(v) for v in a.padding],
                             dilation=[int(v) for v in a.dilation], groups=int(a.groups),
                             kernel_layout=str(a.kernel_layout))
                kind, source = "adaptc.conv2d_f32", "conv2d"
            else:
                if len(w.shape) != 2:
                    g.fail("matmul", var.name, "batched matmul")
                kind, source = "adaptc.dense_f32", "dense"
            source += "+bias" * (bias is not None) + "+act" * bool(np.isfinite([lo, hi]).any())
            call = CompositeCall(kind, [value.args[0]], consts, attrs, out_shape, "float32", source, names)
            if kind == "adaptc.conv2d_f32" and 1 < attrs["groups"] < tvm_compat.shape_of(self.ty(value.args[0]))[-1]:
                self.emit_grouped(var, call, last)
            else:
                self.emit(var, call, last)
        elif var in self.squared:
            self.visit_binary(var, list(self.squared[var].args), "squared_difference", out_shape)
        elif name == "relax.add" and (any(const_eval(g, a) is not None for a in value.args) or any(
                tvm_compat.shape_of(g.resolve(a).ty if a in g.value else a.ty) != out_shape for a in value.args)):
            self.visit_binary(var, list(value.args), "add", out_shape)
        elif name in BINARY and name != "relax.add":
            self.visit_binary(var, list(value.args), BINARY[name], out_shape)
        elif name == "relax.add":
            last, _, (lo, hi) = self.epilogue(var, False, out_shape[-1])
            self.emit(var, CompositeCall("adaptc.add_f32", list(value.args), [], {"act_min": lo, "act_max": hi},
                                         out_shape, "float32", "add"), last)
        elif name == "relax.multiply" and self.softmax_beta(var, value) is not None:
            beta, user = self.softmax_beta(var, value)
            self.consumed.add(user.var)
            self.emit(var, CompositeCall("adaptc.softmax_f32", [value.args[0]], [], {"beta": beta, "log": 0},
                                         out_shape, "float32", "softmax"), user.var)
        elif name == "relax.multiply":
            self.visit_mul(var, value, out_shape)
        elif name in ("relax.nn.avg_pool2d", "relax.nn.max_pool2d"):
            self.visit_pool(var, value, name, out_shape)
        elif name in ("relax.nn.softmax", "relax.nn.log_softmax"):
            self.visit_softmax(var, value, out_shape, log=name == "relax.nn.log_softmax")
        elif _act_bounds(value) is not None:
            lo, hi = _act_bounds(value)
            self.emit(var, CompositeCall("adaptc.clamp_f32", [value.args[0]], [], {"act_min": lo, "act_max": hi},
                                         out_shape, "float32", name.split(".")[-1]), var)
        elif name == "relax.nn.pad":
            a = value.attrs
            if str(a.pad_mode) != "constant":
                g.fail("pad", var.name, f"pad mode {a.pad_mode}")
            self.emit(var, CompositeCall("adaptc.pad_f32", [value.args[0]], [], {
                "pad_width": [int(v) for v in a.pad_width], "pad_value": float(a.pad_value)},
                out_shape, "float32", "pad"), var)
        elif name in ("relax.mean", "relax.sum", "relax.max"):
            reduce = name.split(".")[-1]
            axes, keep_dims = mean_axes(g, value, var.name, reduce)
            in_shape = tvm_compat.shape_of(g.resolve(value.args[0]).ty if value.args[0] in g.value
                                           else value.args[0].ty)
            last, _, (lo, hi) = self.epilogue(var, False, out_shape[-1])
            if reduce == "mean" and keep_dims and len(in_shape) == 4 and axes == [1, 2]:   # global average pool
                call = CompositeCall("adaptc.avg_pool2d_f32", [value.args[0]], [], {
                    "pool_size": [in_shape[1], in_shape[2]], "strides": [1, 1], "padding": [0, 0, 0, 0],
                    "act_min": lo, "act_max": hi}, out_shape, "float32", "mean")
            else:
                call = CompositeCall("adaptc.reduce_f32", [value.args[0]], [], {
                    "reduce": reduce, "axes": axes, "keep_dims": keep_dims,
                    "count": int(np.prod([in_shape[a] for a in axes])), "act_min": lo, "act_max": hi},
                    out_shape, "float32", reduce)
            self.emit(var, call, last)
        elif name in LAYOUT_OPS:
            self.calls.append((var, value))
        else:
            g.fail(str(name or type(value).__name__).replace("relax.", ""), var.name)


    def visit_resize(self, var, value):
        """resize2d mode linear, NHWC (TFLite RESIZE_BILINEAR; ONNX Resize arrives as per-axis taps)
        -> adaptc.resize_bilinear_f32 with its index and fraction tables (adaptc.resize: TFLite's
        float arithmetic)."""
        a = value.attrs
        mode = str(a.coordinate_transformation_mode)
        if str(a.method) != "linear" or str(a.layout) != "NHWC" or mode not in (
                "asymmetric", "align_corners", "half_pixel"):
            self.g.fail("resize2d", var.name, f"resize {a.method} {a.layout} {mode}: only linear (bilinear) NHWC, "
                        "coordinates asymmetric | align_corners | half_pixel")
        x = value.args[0]
        in_shape = tvm_compat.shape_of(self.g.resolve(x).ty if x in self.g.value else x.ty)
        out_shape = tvm_compat.shape_of(var.ty)
        tables = []
        for i, o in ((in_shape[1], out_shape[1]), (in_shape[2], out_shape[2])):
            tables += resize.tflite_float(i, o, mode == "align_corners", mode == "half_pixel")
        self.emit(var, CompositeCall("adaptc.resize_bilinear_f32", [x], tables, {
            "out_h": out_shape[1], "out_w": out_shape[2], "coordinates": mode}, out_shape, "float32",
            "resize_bilinear", ["y_lo", "y_hi", "y_frac", "x_lo", "x_hi", "x_frac"]), var)


def FuseFloatOps(path: str = "<module>"):
    """Group float32 layers into ``adaptc.*_f32`` composites (see module docstring)."""

    @tvm_compat.module_pass("adaptc.FuseFloatOps")
    def _pass(mod):
        return _Fuser(mod, path).run()

    return _pass
