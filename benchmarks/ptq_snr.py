"""Post-training int8 quantization of the float ONNX zoo models: output SNR against onnxruntime
per model, and with ``--layers`` where the error enters -- per quantized intermediate, its SNR
against the float module's same intermediate over the calibration inputs ("path": the int8
network up to there, QDQ form on llvm) and that of quantizing the float value alone with the
chosen parameters ("own": the tensor's range and rounding only).

Calibration (``--cal``): ``both`` (default, as tests/models/test_zoo.py's ``calibration``) the
model's stored ``x`` (tests/data/zoo/NAME.npz: drawn like the calibration data) and 16 inputs ~
N(0, 1); ``stored`` or ``normal`` one of the two. The SNR is measured on the stored inputs and 3
more ~ N(0, 1) (test_zoo's ``inputs``), by the compiled int8 build. ``--ablate``: the output
SNR against the float module with only the weights / only the activations quantized.

    .venv/bin/python benchmarks/ptq_snr.py [--only NAME] [--layers] [--ablate] [--cal both|stored|normal]
                                           [--ranges minmax|mse]
"""
from __future__ import annotations

import argparse
import json
import sys
import zlib
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tvm import relax

import adaptc
from adaptc import tvm_compat
from adaptc.passes.fuse_float_ops import FuseFloatOps
from adaptc.passes.legalize_qdq import LegalizeQDQ
from adaptc.passes.quantize_int8 import QuantizeInt8, Quantizer, WeightScheme, calibration_samples
from adaptc.passes.to_nhwc import ToNHWC
from adaptc.qops import composite_name

ZOO = Path(__file__).resolve().parents[1] / "tests" / "data" / "zoo"


def snr(ref, out) -> float:
    ref, out = np.asarray(ref, np.float64), np.asarray(out, np.float64)
    err = np.sum((out - ref) ** 2)
    return float("inf") if err == 0 else float(10 * np.log10(np.sum(ref ** 2) / err))


def evaluation_inputs(name: str, info: dict) -> np.ndarray:
    """test_zoo.inputs: the stored inputs and 3 more ~ N(0, 1), each [1, ...]."""
    stored = np.load(ZOO / info["inputs_file"])["x"]
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    fresh = rng.normal(0, 1, size=(3, *stored.shape[1:])).astype(np.float32)
    return np.concatenate([stored, fresh])[:, None]


def calibration(info: dict, kind: str) -> np.ndarray:
    stored = np.load(ZOO / info["inputs_file"])["x"]
    normal = np.random.default_rng(1).normal(0, 1, (16, 1, *stored.shape[1:])).astype(np.float32)
    return {"stored": stored[:, None], "normal": normal, "both": np.concatenate([stored[:, None], normal])}[kind]


def output_snr(path: Path, cal: np.ndarray, xs: np.ndarray, ranges: str = "minmax") -> float:
    """The int8 build's output SNR (the compiled integer program; ``ranges`` other than the
    default: the QDQ module of QuantizeInt8(ranges=...) lowered by LegalizeQDQ, on llvm)."""
    if ranges != "minmax":
        return _qdq_snr(path, cal, xs, ranges)
    m = adaptc.compile(path, target="cortex-m7", calibration=cal)
    sess = ort.InferenceSession(str(path))
    scale, zp = m.output_quantization
    ref = np.stack([sess.run(None, {sess.get_inputs()[0].name: x})[0] for x in xs])
    out = np.stack([(m.run(m.quantize_input(x)).astype(np.float64) - zp) * scale for x in xs])
    return snr(ref, out)


def quantize(x, s, zp) -> np.ndarray:
    return np.clip(np.round(x / np.float64(s)) + zp, -128, 127).astype(np.int8)


def _qdq_snr(path: Path, cal: np.ndarray, xs: np.ndarray, ranges: str) -> float:
    fused = tvm_compat.apply([ToNHWC(), FuseFloatOps(str(path))], adaptc.load(path).mod)
    integer = tvm_compat.apply([QuantizeInt8(cal, str(path), ranges), LegalizeQDQ(str(path))], fused)
    vm = tvm_compat.build_llvm(integer)
    attrs = integer["main"].attrs
    s_in, zp_in = float(attrs["adaptc.input_scale"]), int(attrs["adaptc.input_zero_point"])
    s, zp = float(attrs["adaptc.output_scale"]), int(attrs["adaptc.output_zero_point"])
    sess = ort.InferenceSession(str(path))
    ref = np.stack([sess.run(None, {sess.get_inputs()[0].name: x})[0] for x in xs])
    xs = calibration_samples(xs, fused, str(path))
    out = np.stack([(tvm_compat.run_vm(vm, quantize(x, s_in, zp_in))[0].astype(np.float64) - zp) * s for x in xs])
    return snr(ref, out.reshape(ref.shape))


class _FineWeights(WeightScheme):
    """The weights almost exact (int32, 2^16 steps per channel): activation quantization alone."""

    def weights(self, index, kind, w, axis, attrs, inputs, bias):
        other = tuple(i for i in range(w.ndim) if i != axis)
        w_scale = np.maximum(np.abs(w).max(axis=other) / 2.0 ** 16, 1e-30).astype(np.float32)
        bshape = [1] * w.ndim
        bshape[axis] = -1
        return np.round(w / w_scale.reshape(bshape)).astype(np.int32), w_scale, bias


def ablation(path: Path, cal: np.ndarray, xs: np.ndarray) -> None:
    """Output SNR against the float module with only the weights quantized (int8 values, the
    default scheme's, in the float module), with only the activations quantized (the QDQ module
    with near-exact weights), and with both (the QDQ module), on llvm."""
    fused = tvm_compat.apply([ToNHWC(), FuseFloatOps(str(path))], adaptc.load(path).mod)
    samples = calibration_samples(cal, fused, str(path))
    xs = calibration_samples(xs, fused, str(path))
    scheme, wonly = WeightScheme(), fused
    for i, b in enumerate(tvm_compat.bindings(fused["main"])):
        kind = composite_name(fused, b.value)
        if kind not in ("adaptc.conv2d_f32", "adaptc.dense_f32"):
            continue
        a = {k: (v.value if hasattr(v, "value") else v) for k, v in tvm_compat.attrs_dict(fused[b.value.op]).items()}
        pos = next(k for k, x in enumerate(b.value.args) if tvm_compat.is_constant(x))
        w = tvm_compat.constant_value(b.value.args[pos]).astype(np.float64)
        axis = w.ndim - 1 if kind == "adaptc.dense_f32" or a.get("kernel_layout") == "HWIO" else 2
        w_q, w_scale, _ = scheme.weights(0, kind, w, axis, a, None, None)
        shape = [1] * w.ndim
        shape[axis] = -1
        w_f = (w_q * w_scale.reshape(shape)).astype(np.float32)
        wonly = tvm_compat.replace_call_args(wonly, i, {pos: relax.const(w_f)})
    ref_vm = tvm_compat.build_llvm(fused)
    ref = [tvm_compat.run_vm(ref_vm, x)[0] for x in xs]
    w_vm = tvm_compat.build_llvm(wonly)
    print(f"  weights only     {snr(ref, [tvm_compat.run_vm(w_vm, x)[0] for x in xs]):6.2f} dB")
    for label, sch in (("activations only", _FineWeights()), ("both (QDQ)", None)):
        qz = Quantizer(fused, samples, sch)
        mod = qz.run()
        vm = tvm_compat.build_llvm(mod)
        _, s_in, zp_in = qz.q[fused["main"].params[0]]
        attrs = mod["main"].attrs
        s, zp = float(attrs["adaptc.output_scale"]), int(attrs["adaptc.output_zero_point"])
        out = [(tvm_compat.run_vm(vm, quantize(x, s_in, zp_in))[0].astype(np.float64) - zp) * s for x in xs]
        print(f"  {label:<16} {snr(ref, out):6.2f} dB")


class _Recording(Quantizer):
    """Quantizer that remembers, per float binding, the int8 var standing for it."""

    def run(self):
        self.order = []
        return super().run()

    def visit(self, bb, b, rng):
        super().visit(bb, b, rng)
        if b.var in self.q:
            self.order.append(b.var)


def _tap_all(mod):
    """main returning every binding's value (non-dataflow), and those bindings."""
    mod = tvm_compat.to_non_dataflow(mod)
    func = mod["main"]
    bs = tvm_compat.bindings(func)
    taps = relax.Function(func.params, relax.SeqExpr(func.body.blocks, relax.Tuple([b.var for b in bs])),
                          ret_ty=relax.TupleType([b.var.ty for b in bs]), attrs=func.attrs)
    return tvm_compat.build_llvm(tvm_compat.replace_function(mod, "main", taps)), bs


def layers(path: Path, cal: np.ndarray, ranges: str = "minmax") -> None:
    loaded = adaptc.load(path)
    fused = tvm_compat.apply([ToNHWC(), FuseFloatOps(str(path))], loaded.mod)
    samples = calibration_samples(cal, fused, str(path))
    qz = _Recording(fused, samples, WeightScheme(ranges))
    qdq = qz.run()
    f_vm, f_bs = _tap_all(fused)
    q_vm, q_bs = _tap_all(qdq)
    # position of each recorded int8 var among the QDQ module's bindings (ToNonDataflow keeps order)
    q_main = qdq["main"]
    position = {}
    for k, b in enumerate(tvm_compat.bindings(q_main)):
        position[b.var] = k
    f_index = {b.var: i for i, b in enumerate(tvm_compat.bindings(fused["main"]))}
    rows = []
    for var in qz.order:
        qv, s, zp = qz.q[var]
        if qv not in position:
            continue
        rows.append((f_index[var], position[qv], float(s), int(zp), var))
    ref = {i: [] for i, *_ in rows}
    got = {r: [] for r in range(len(rows))}
    _, s_in, zp_in = qz.q[fused["main"].params[0]]
    for x in samples:
        fv = tvm_compat.run_vm(f_vm, x)
        qv = tvm_compat.run_vm(q_vm, quantize(x, s_in, zp_in))
        for r, (i, k, *_) in enumerate(rows):
            ref[i].append(fv[i])
            got[r].append(qv[k])
    fb = tvm_compat.bindings(fused["main"])
    print(f"  {'#':>4} {'layer':<26} {'shape':<18} {'min':>9} {'max':>9} {'scale':>10} {'zp':>5} "
          f"{'own dB':>7} {'path dB':>7}")
    for n, (i, _k, s, zp, _var) in enumerate(rows):
        r = np.concatenate(ref[i]).astype(np.float64)
        q = (np.concatenate(got[n]).astype(np.float64) - zp) * s
        own = (np.clip(np.round(r / s) + zp, -128, 127) - zp) * s
        kind = composite_name(fused, fb[i].value) or tvm_compat.op_name(fb[i].value) or "var"
        kind = kind.replace("adaptc.", "").replace("_f32", "")
        if kind == "unary":
            kind += ":" + str(tvm_compat.attrs_dict(fused[fb[i].value.op]).get("function"))
        print(f"  {i:>4} {kind:<26} {str(list(r.shape[1:])):<18} {r.min():>9.3g} {r.max():>9.3g} {s:>10.3g} "
              f"{zp:>5} {snr(r, own):>7.1f} {snr(r, q):>7.1f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only")
    ap.add_argument("--layers", action="store_true", help="per-layer SNR of each quantized intermediate")
    ap.add_argument("--ablate", action="store_true", help="weight-only / activation-only output SNR")
    ap.add_argument("--ranges", choices=("minmax", "mse"), default="minmax", help="QuantizeInt8's activation ranges")
    ap.add_argument("--cal", choices=("both", "stored", "normal"), default="both")
    args = ap.parse_args()
    models = json.loads((ZOO / "models.json").read_text())["models"]
    for name, info in models.items():
        if info["format"] != "onnx" or (args.only and name != args.only):
            continue
        path = ZOO / info["file"]
        cal = calibration(info, args.cal)
        print(f"{name:<24} output SNR {output_snr(path, cal, evaluation_inputs(name, info), args.ranges):6.2f} dB "
              f"(calibration: {len(cal)} inputs, {args.cal}; ranges {args.ranges})", flush=True)
        if args.ablate:
            ablation(path, cal, evaluation_inputs(name, info))
        if args.layers:
            layers(path, cal, args.ranges)
    return 0


if __name__ == "__main__":
    sys.exit(main())
