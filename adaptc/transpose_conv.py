"""Transposed convolutions (TFLite TRANSPOSE_CONV, ONNX ConvTranspose): what the loader refuses.

adaptc compiles a 2-D transposed convolution with constant weights, NHWC in the kernels
(``adaptc.qtranspose_conv2d`` / ``adaptc.transpose_conv2d_f32``): strides, pads (SAME / VALID,
explicit, ``auto_pad``, ``output_shape``), output padding, dilation (ONNX), groups 1 and
depthwise (one output channel per input channel). The checks here name what is not.
"""
from __future__ import annotations


def tflite_problem(model, sub, op) -> str | None:
    """Why a TRANSPOSE_CONV cannot be compiled, or None: a fused activation (TFLite Micro's kernel
    ignores it: it requantizes with kTfLiteActNone), weights computed at run time, an output
    larger than the scatter of its input by a stride or more."""
    from tflite.TransposeConvOptions import TransposeConvOptions

    from .tvm_compat import transpose_conv_pads

    inputs = [int(t) for t in op.InputsAsNumpy()]
    if len(inputs) < 3:
        return "fewer than 3 inputs (output_shape, weights, input)"
    opts = TransposeConvOptions()
    if op.BuiltinOptions() is not None:
        opts.Init(op.BuiltinOptions().Bytes, op.BuiltinOptions().Pos)
        if opts.FusedActivationFunction() != 0:
            return "fused_activation_function other than NONE (TFLite Micro's TRANSPOSE_CONV ignores it)"
    w, x, y = sub.Tensors(inputs[1]), sub.Tensors(inputs[2]), sub.Tensors(int(op.OutputsAsNumpy()[0]))
    data = model.Buffers(w.Buffer()).DataAsNumpy()
    if isinstance(data, int) or not len(data):
        return "weights computed at run time (the filter must be a constant)"
    if x.ShapeLength() != 4 or y.ShapeLength() != 4 or w.ShapeLength() != 4:
        return "a tensor that is not 4-D NHWC"
    k_hw = [int(d) for d in w.ShapeAsNumpy()[1:3]]
    in_hw = [int(d) for d in x.ShapeAsNumpy()[1:3]]
    out_hw = [int(d) for d in y.ShapeAsNumpy()[1:3]]
    strides = (max(int(opts.StrideH()), 1), max(int(opts.StrideW()), 1))
    try:
        transpose_conv_pads(in_hw, k_hw, strides, out_hw, opts.Padding() == 0)
    except ValueError as e:
        return str(e)
    return None


def onnx_problems(model, consts: dict) -> list[tuple[str, str, str]]:
    """(op, node, reason) for each ConvTranspose adaptc does not compile: not 2-D, weights not
    constant, groups other than 1 and depthwise, an ``output_shape`` or pads giving an output
    larger than the scatter of the input by a stride or more."""
    import onnx

    from .tvm_compat import onnx_conv_transpose_pads

    problems = []
    for node in model.graph.node:
        if node.op_type != "ConvTranspose":
            continue
        name = node.name or node.output[0]
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        w = consts.get(node.input[1]) if len(node.input) > 1 else None
        if w is None:
            problems.append(("ConvTranspose", name, "weights computed at run time (W must be an initializer)"))
            continue
        if w.ndim != 4:
            problems.append(("ConvTranspose", name, f"a {w.ndim - 2}-D transposed convolution (kernel_shape "
                             f"{list(w.shape[2:])}); only 2-D"))
            continue
        group = int(attrs.get("group", 1))
        if group != 1 and not (group == w.shape[0] and w.shape[1] == 1):
            problems.append(("ConvTranspose", name, f"group={group} with {w.shape[1]} output channel(s) per group: "
                             "only group 1 and depthwise (group = input channels, one output channel each)"))
            continue
        if "kernel_shape" in attrs and [int(v) for v in attrs["kernel_shape"]] != list(w.shape[2:]):
            problems.append(("ConvTranspose", name, f"kernel_shape {list(attrs['kernel_shape'])} differs from "
                             f"the weights' {list(w.shape[2:])}"))
            continue
        in_hw = _input_hw(model, node.input[0])
        if in_hw is None:
            continue                  # the importer checks again, with the shapes it infers
        try:
            onnx_conv_transpose_pads(in_hw, list(w.shape[2:]), attrs)
        except ValueError as e:
            problems.append(("ConvTranspose", name, f"output_padding / output_shape / pads: {e}"))
    return problems


def _input_hw(model, name: str):
    for vi in (*model.graph.input, *model.graph.value_info):
        if vi.name == name and vi.type.tensor_type.HasField("shape"):
            dims = [d.dim_value if d.HasField("dim_value") else -1 for d in vi.type.tensor_type.shape.dim]
            return dims[2:] if len(dims) == 4 and min(dims[2:]) > 0 else None
    return None
