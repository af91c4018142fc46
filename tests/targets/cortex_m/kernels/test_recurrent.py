"""ONNX LSTM and GRU, float32: recurrent_f32 (adaptc.recurrent) as one-step programs through the
Cortex-M target -- on the host and on an emulated core -- against the ONNX definitions in float64
(``adaptc.recurrent.run_numpy``, checked against onnxruntime in tests/models/test_onnx_recurrent.py),
and against the composite's Relax body on llvm."""
from __future__ import annotations

import shutil
import zlib

import numpy as np
import pytest
from tvm import relax

import adaptc.api as api
from adaptc import recurrent, tvm_compat
from adaptc.program import Program, Step, Tensor
from adaptc.qops import CompositeCall, build_function
from adaptc.targets.cortex_m.kernels import KERNELS

EMULATOR = shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc")

# (id, cell, batch, steps, inputs, units, linear_before_reset, initial state)
CASES = [
    ("lstm", "LSTM", 1, 6, 5, 7, 0, False),
    ("lstm_batch3_initial", "LSTM", 3, 4, 3, 5, 0, True),
    ("gru_torch", "GRU", 1, 5, 4, 6, 1, False),
    ("gru_reset_first", "GRU", 2, 5, 4, 3, 0, True),
]


def _case(case):
    cid, cell, batch, steps, n_in, units, lbr, initial = case
    rng = np.random.default_rng(zlib.crc32(cid.encode()))
    g = recurrent.GATES[cell]
    consts = recurrent.constants_of(
        cell, batch, units, n_in, rng.normal(0, 0.5, (1, g * units, n_in)), rng.normal(0, 0.5, (1, g * units, units)),
        rng.normal(0, 0.3, (1, 2 * g * units)), rng.normal(0, 0.5, (1, batch, units)) if initial else None,
        rng.normal(0, 0.5, (1, batch, units)) if initial and cell == "LSTM" else None)
    attrs = {"cell": recurrent.CELLS.index(cell), "batch": batch, "time_steps": steps, "units": units,
             "linear_before_reset": lbr}
    shape, out_shape = (batch, steps, n_in), (batch, steps, units)
    step = Step(0, "adaptc.recurrent_f32", "test case", [0], 1, attrs, consts, in_shapes=[shape], out_shape=out_shape)
    prog = Program("recurrent_case", [Tensor(0, "x", shape, "float32", "input"),
                                      Tensor(1, "y", out_shape, "float32", "output")], [step], [0], [1])
    xs = rng.normal(0, 1.5, (3, *shape)).astype(np.float32)
    return prog, consts, attrs, xs


def _reference(consts, attrs, x):
    """The definitions in float64, sequence by sequence (each with its own initial state)."""
    cell, batch, units = recurrent.CELLS[attrs["cell"]], attrs["batch"], attrs["units"]
    state = consts["initial_state"].reshape(-1, batch, units)
    outs = []
    for b in range(batch):
        one = dict(consts, initial_state=state[:, b].reshape(-1))
        outs.append(recurrent.run_numpy(x[b], one, cell, attrs["linear_before_reset"]))
    return np.stack(outs)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c[0])
def test_recurrent_f32_host(case):
    prog, consts, attrs, xs = _case(case)
    m = api.compile_program(prog, "cortex-m4", format="float32")
    assert [s.kernel for s in m.scheduled.steps] == ["recurrent_f32"]
    call = CompositeCall("adaptc.recurrent_f32", [], list(consts.values()), attrs, prog.tensors[1].shape,
                         "float32", "", list(consts))
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType(list(prog.tensors[0].shape), "float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            gv = bb.add_func(build_function(call, [x.ty]), "recurrent_f32")
            y = bb.emit_output(relax.Call(gv, [x] + [relax.const(c) for c in call.consts]))
        bb.emit_func_output(y)
    vm = tvm_compat.build_llvm(bb.get())
    for x in xs:
        got = m.run(x)
        np.testing.assert_allclose(got, _reference(consts, attrs, x), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got, vm["main"](tvm_compat.to_tensor(x)).numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not EMULATOR, reason="needs qemu-system-arm and gcc-arm-none-eabi")
@pytest.mark.parametrize("case", [CASES[1], CASES[3]], ids=lambda c: c[0])
def test_recurrent_f32_emulated(case):
    """Cross-built for the Cortex-M4 (hard float), run on the emulated core: the host build's
    outputs within float32 rounding (libm's expf / tanhf may differ in the last bit)."""
    prog, consts, attrs, xs = _case(case)
    m = api.compile_program(prog, "cortex-m4", format="float32")
    r = m.run_batch_on_target(xs)
    for k, x in enumerate(xs):
        np.testing.assert_allclose(r.outputs[0, k].reshape(prog.tensors[1].shape), m.run(x), rtol=1e-5, atol=1e-6)


def test_cost_features_by_hand():
    """Per sequence, step and gate row an input and a recurrent dot product; a GRU with
    linear_before_reset 0 computes its candidate rows' recurrent products a second time."""
    prog = _case(CASES[1])[0]       # LSTM, 3 sequences of 4 steps, 3 inputs, 5 units: 20 gate rows
    assert KERNELS["recurrent_f32"].features(prog.steps[0]) == {
        "call": 1, "sequences": 3, "steps": 12, "rows": 240, "macs_in": 720, "macs_rec": 1200, "elements": 60}
    prog = _case(CASES[3])[0]       # GRU, 2 x 5 steps, 4 inputs, 3 units: 9 rows + 3 again
    assert KERNELS["recurrent_f32"].features(prog.steps[0]) == {
        "call": 1, "sequences": 2, "steps": 10, "rows": 120, "macs_in": 360, "macs_rec": 360, "elements": 30}
