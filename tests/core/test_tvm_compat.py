"""Every helper in adaptc.tvm_compat, against the installed TVM: an upgrade that renames one fails here."""
import numpy as np
import pytest
from tvm import relax

import paths
from adaptc import tvm_compat
from adaptc.errors import AdaptcError, UnsupportedOperatorError


def _module():
    bb = relax.BlockBuilder()
    x = relax.Var("x", tvm_compat.tensor_type((2, 3), "int8"))
    with bb.function("main", [x], attrs={"num_input": 1}):
        with bb.dataflow():
            y = bb.emit(relax.op.astype(x, "int32"))
            z = bb.emit(relax.op.add(y, relax.const(np.int32(5))))
            out = bb.emit_output(relax.Tuple([z, relax.op.permute_dims(z, [1, 0])]))
        bb.emit_func_output(out)
    return bb.get()


def test_version_is_pinned_series():
    assert tvm_compat.check_version().startswith("0.27")


def test_types_names_constants_and_ops():
    mod = _module()
    (x,) = mod["main"].params
    assert tvm_compat.shape_of(x.ty) == (2, 3)
    assert tvm_compat.dtype_of(x.ty) == "int8"
    assert tvm_compat.var_name(x) == "x"
    bindings = [b for blk in mod["main"].body.blocks for b in blk.bindings]
    assert tvm_compat.op_name(bindings[0].value) == "relax.astype"
    const = bindings[1].value.args[1]
    assert tvm_compat.is_constant(const) and not tvm_compat.is_constant(x)
    assert tvm_compat.constant_value(const) == 5
    assert tvm_compat.attrs_dict(mod["main"])["num_input"] == 1
    plain = tvm_compat.plain_attrs(mod["main"])
    assert plain["num_input"] == 1 and type(plain["num_input"]) is int
    assert tvm_compat.well_formed(mod)


def test_symbolic_shape_is_rejected():
    from tvm import tirx
    sym = relax.TensorType([tirx.Var("n", "int64"), 3], "float32")
    with pytest.raises(ValueError, match="symbolic"):
        tvm_compat.shape_of(sym)


def test_build_run_and_non_dataflow():
    mod = _module()
    x = np.arange(6, dtype=np.int8).reshape(2, 3)
    a, b = tvm_compat.run_vm(tvm_compat.build_llvm(mod), x)
    np.testing.assert_array_equal(a, x.astype(np.int32) + 5)
    np.testing.assert_array_equal(b, (x.astype(np.int32) + 5).T)
    flat = tvm_compat.to_non_dataflow(mod)
    assert not any(isinstance(blk, relax.DataflowBlock) for blk in flat["main"].body.blocks)
    assert tvm_compat.to_tensor(x).numpy().tolist() == x.tolist()


def test_replace_function_does_not_mutate():
    mod = _module()
    new = tvm_compat.replace_function(mod, "main", mod["main"].with_attrs({"num_input": 1, "k": 2}))
    assert "k" in new["main"].attrs and "k" not in mod["main"].attrs


def test_module_pass_keeps_typed_errors():
    @tvm_compat.module_pass("test.Fails")
    def fails(mod):
        raise UnsupportedOperatorError("m.tflite", "tanh", "lv3", ["conv2d"])

    with pytest.raises(UnsupportedOperatorError, match="tanh"):
        tvm_compat.apply(fails, _module())

    @tvm_compat.module_pass("test.Identity")
    def identity(mod):
        return mod

    assert tvm_compat.apply([identity, identity], _module()) is not None
    assert issubclass(UnsupportedOperatorError, AdaptcError)


def test_frontends(tmp_path):
    buf = (paths.DATA / "kws_ref_model.tflite").read_bytes()
    mod = tvm_compat.from_tflite(buf)
    assert tvm_compat.shape_of(mod["main"].params[0].ty) == (1, 49, 10, 1)
    import onnx
    from onnx import TensorProto, helper
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    mod = tvm_compat.from_onnx(m, {"x": [1, 4]})
    (y,) = tvm_compat.run_vm(tvm_compat.build_llvm(mod), np.array([[-1, 2, -3, 4]], np.float32))
    np.testing.assert_array_equal(y, [[0, 2, 0, 4]])
    assert isinstance(onnx.__version__, str)


@pytest.mark.parametrize("beta", [1.0, 0.5, 2.0])
def test_softmax_beta_reaches_the_module(beta):
    """0.27's SOFTMAX converter drops beta; the glue's converter keeps it (float: x * beta)."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parent))
    import tflite

    import tflite_ops as T

    buf = T.softmax_model_f32((1, 6), beta=beta)
    model = tflite.Model.GetRootAsModel(buf, 0)
    assert tvm_compat.tflite_softmax_beta(model.Subgraphs(0).Operators(0)) == beta
    x = np.linspace(-2, 3, 6, dtype=np.float32).reshape(1, 6)
    (y,) = tvm_compat.run_vm(tvm_compat.build_llvm(tvm_compat.from_tflite(buf)), x)
    e = np.exp(beta * (x.astype(np.float64) - x.max()))
    np.testing.assert_allclose(y, e / e.sum(), rtol=1e-6)


def _onnx_ops(mod) -> list[str]:
    from tvm import relax

    ops = []
    relax.analysis.post_order_visit(mod["main"], lambda e: ops.append(tvm_compat.op_name(e)) if
                                    tvm_compat.op_name(e) else None)
    return ops


def test_onnx_clip_and_dropout_converters():
    """The glue's ONNX converters: Clip with constant bounds is one relax.clip (0.27: maximum /
    minimum calls); with a bound computed at run time, 0.27's; Dropout is the identity."""
    from onnx import TensorProto, helper, numpy_helper

    def model(bound_is_input: bool):
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
        inputs, inits = [x], [numpy_helper.from_array(np.array(6.0, np.float32), "hi")]
        if bound_is_input:
            inputs.append(helper.make_tensor_value_info("lo", TensorProto.FLOAT, []))
        else:
            inits.append(numpy_helper.from_array(np.array(-1.0, np.float32), "lo"))
        nodes = [helper.make_node("Clip", ["x", "lo", "hi"], ["c"]), helper.make_node("Dropout", ["c"], ["y"])]
        g = helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
                              inits)
        return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])

    const = tvm_compat.from_onnx(model(False), {"x": [1, 4]})
    assert _onnx_ops(const) == ["relax.clip"]
    (y,) = tvm_compat.run_vm(tvm_compat.build_llvm(const), np.array([[-3, 0.5, 4, 9]], np.float32))
    np.testing.assert_array_equal(y, [[-1, 0.5, 4, 6]])
    computed = tvm_compat.from_onnx(model(True), {"x": [1, 4], "lo": []})
    assert "relax.clip" not in _onnx_ops(computed) and "relax.nn.dropout" not in _onnx_ops(computed)
    (y,) = tvm_compat.run_vm(tvm_compat.build_llvm(computed), np.array([[-3, 0.5, 4, 9]], np.float32),
                             np.array(0.0, np.float32))
    np.testing.assert_array_equal(y, [[0, 0.5, 4, 6]])
