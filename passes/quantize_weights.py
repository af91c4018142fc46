"""QuantizeWeights: post-training quantization with low-bit or power-of-two weights per layer.

Requires: the output of FuseFloatOps (``main`` = float ``adaptc.*_f32`` composites and reshapes)
and a calibration array (as QuantizeInt8).

Ensures: the QDQ form of QuantizeInt8 (ready for LegalizeQDQ), with every conv2d (depthwise
too, per output channel) / transposed conv2d / dense layer's weights, and every batched matmul's
constant operand (one scale for the tensor, as TFLite's BATCH_MATMUL), on its format's grid (adaptc.formats: pot2 ..
pot5, int4, int8) and integer weights of that range (int8, int16 for pot5); by default
(``pot_activations``) every activation scale and weight scale is a power of two, so that each
layer's requantization multiplier is a power of two -- LegalizeQDQ then gives it the multiplier
2^30, which the kernels apply as a shift. Weights are rounded by
``adaptc.ptq.quantize_matrix`` (error-correcting rounding against each layer's calibration
inputs, per-channel scale search) and biases corrected for the mean output error. Per layer,
``scheme.report`` records the format, size and output error (also of plain nearest rounding).

Parameters: ``calibration`` -- representative inputs; ``formats`` -- one format name for every
weighted layer, one per layer in ``main``'s order, or a function of the layer index; ``method`` -- "gptq" or "nearest";
``pot_activations`` -- power-of-two activation scales (else TFLite's min/max scales, with
float weight scales for uniform formats); ``path`` -- for error messages.
"""
from __future__ import annotations

import numpy as np

from adaptc import formats as F
from adaptc import ptq, tvm_compat
from adaptc.errors import InputError

from .quantize_int8 import Quantizer, WeightScheme, calibration_samples

MAX_ROWS = 8192                 # calibration rows per layer for the error-correcting rounding


class CodedWeights(WeightScheme):
    """Weights on low-bit grids (see the module docstring); ``report``: one dict per layer."""

    needs_inputs = True
    tensor_scale = True     # codes a batched matmul's constant operand too: one scale (axis None)

    def __init__(self, formats, method: str = "gptq", pot_activations: bool = True, bias_correction: bool = True):
        self.formats = formats
        self.method, self.pot, self.bias_correction = method, pot_activations, bias_correction
        self.report: list[dict] = []

    def activation(self, lo, hi):
        return ptq.pot_qparams(lo, hi) if self.pot else super().activation(lo, hi)

    def format(self, index: int) -> F.Format:
        if isinstance(self.formats, str):
            return F.get(self.formats)
        if callable(self.formats):
            return F.get(self.formats(index))
        if index >= len(self.formats):
            raise InputError(f"{len(self.formats)} weight formats given for a model with more weighted layers")
        return F.get(self.formats[index])

    def weights(self, index, kind, w, axis, attrs, inputs, bias):
        fmt = self.format(index)
        depthwise = kind == "adaptc.conv2d_f32" and int(attrs["groups"]) > 1
        pot_scale = self.pot or fmt.kind == "pot"
        rng = np.random.default_rng(index)
        if kind == "adaptc.dense_f32":
            W, X = w.T, inputs.reshape(-1, w.shape[0])
            Q, s, facts = ptq.quantize_matrix(W, fmt, _subsample(X, rng), pot_scale=pot_scale, method=self.method)
            w_q, bias = Q.T, self._bias(W, Q, s, X, bias)
        elif kind == "adaptc.batch_matmul_f32":
            w_q, s, facts = self._matmul_operand(w, inputs, bool(attrs.get("swap", False)), fmt, pot_scale, rng)
        elif kind == "adaptc.transpose_conv2d_f32":
            w_q, s, bias, facts = self._transposed(w, attrs, inputs, bias, fmt, pot_scale, rng)
        elif not depthwise:                         # HWIO -> OHWI rows
            k_h, k_w, _, out_c = w.shape
            W = w.transpose(3, 0, 1, 2).reshape(out_c, -1)
            X = ptq.im2col(inputs, k_h, k_w, attrs["strides"], attrs["dilation"], attrs["padding"])
            Q, s, facts = ptq.quantize_matrix(W, fmt, _subsample(X, rng), pot_scale=pot_scale, method=self.method)
            w_q, bias = Q.reshape(out_c, k_h, k_w, -1).transpose(1, 2, 3, 0), self._bias(W, Q, s, X, bias)
        else:           # HWOI [k_h, k_w, C*m, 1] or HWIO [k_h, k_w, 1, C*m]: one row per output channel
            k_h, k_w = w.shape[:2]
            taps = w.reshape(k_h, k_w, -1)                            # [k_h, k_w, out channels]
            out_c, in_c = taps.shape[2], inputs.shape[-1]
            mult = out_c // in_c                                      # output o reads input o // mult
            patches = ptq.im2col(inputs, k_h, k_w, attrs["strides"], attrs["dilation"], attrs["padding"])
            patches = patches.reshape(len(patches), k_h * k_w, in_c)
            Q, s, b, errors = np.zeros((out_c, k_h * k_w)), np.zeros(out_c), np.zeros(out_c), []
            for ch in range(out_c):
                Wc, Xc = taps[:, :, ch].reshape(1, -1), patches[:, :, ch // mult]
                Qc, sc, fc = ptq.quantize_matrix(Wc, fmt, _subsample(Xc, rng), pot_scale=pot_scale, method=self.method)
                Q[ch], s[ch] = Qc[0], sc[0]
                b[ch] = self._bias(Wc, Qc, sc, Xc, None if bias is None else bias[ch:ch + 1])[0]
                errors.append(fc)
            facts = {k: float(np.mean([e[k] for e in errors])) for k in errors[0]}
            w_q = Q.T.reshape(w.shape)
            bias = b if bias is not None or self.bias_correction else None
        dtype = np.int8 if fmt.max_value <= 127 else np.int16
        self.report.append({"layer": index, "kind": "depthwise_conv2d" if depthwise else kind[7:-4],
                            "format": fmt.name, "weights": int(w.size), "channels": int(s.size),
                            "weight_bytes": fmt.packed_bytes(int(w.size)), **facts})
        return w_q.astype(dtype), s.astype(np.float32), bias

    def _transposed(self, w, attrs, inputs, bias, fmt, pot_scale, rng):
        """A transposed convolution's IOHW weights, per group: each output channel's row of the
        equivalent convolution (the filter flipped, over the input with stride - 1 zeros between
        pixels) against that convolution's im2col rows of the group's input channels."""
        in_c, out_group, k_h, k_w = w.shape
        groups = int(attrs["groups"])
        in_group = in_c // groups
        (s_h, s_w), (d_h, d_w), pad = attrs["strides"], attrs["dilation"], attrs["padding"]
        n, h, wd, _ = inputs.shape
        spread = np.zeros((n, (h - 1) * s_h + 1, (wd - 1) * s_w + 1, in_c))
        spread[:, ::s_h, ::s_w] = inputs
        p_h, p_w = d_h * (k_h - 1), d_w * (k_w - 1)
        cols = ptq.im2col(spread, k_h, k_w, (1, 1), (d_h, d_w), (p_h, p_w, p_h, p_w))
        full_h, full_w = spread.shape[1] + p_h, spread.shape[2] + p_w
        keep = np.zeros((n, full_h, full_w), bool)                  # the outputs past the pads
        keep[:, pad[0]:full_h - pad[2], pad[1]:full_w - pad[3]] = True
        cols = cols[keep.reshape(-1)].reshape(-1, k_h * k_w, in_c)
        flipped = w[:, :, ::-1, ::-1]
        w_q, s, b, errors = np.zeros(w.shape), np.zeros(groups * out_group), np.zeros(groups * out_group), []
        for g in range(groups):
            ins, outs = slice(g * in_group, (g + 1) * in_group), slice(g * out_group, (g + 1) * out_group)
            W = flipped[ins].transpose(1, 2, 3, 0).reshape(out_group, -1)            # [o][ky][kx][i]
            X = cols[:, :, ins].reshape(len(cols), -1)
            Q, s[outs], facts = ptq.quantize_matrix(W, fmt, _subsample(X, rng), pot_scale=pot_scale,
                                                    method=self.method)
            b[outs] = self._bias(W, Q, s[outs], X, None if bias is None else bias[outs]) if (
                bias is not None or self.bias_correction) else 0.0
            w_q[ins] = Q.reshape(out_group, k_h, k_w, in_group).transpose(3, 0, 1, 2)[:, :, ::-1, ::-1]
            errors.append(facts)
        facts = {k: float(np.mean([e[k] for e in errors])) for k in errors[0]}
        return w_q, s, b if bias is not None or self.bias_correction else None, facts

    def _matmul_operand(self, c, inputs, swap, fmt, pot_scale, rng):
        """A batched matmul's constant operand (rhs [.., depth, cols], or lhs [.., rows, depth]
        with ``swap``) on one scale for the whole tensor (TFLite's BATCH_MATMUL takes one per
        operand): per constant matrix, its output rows [outputs, depth] against the activation
        rows that meet it (``inputs``: [samples, *activation shape]); the scale -- the one that
        fits the largest weight and the next two finer ones -- with the least output error over
        all matrices, each rounded with error feedback (ptq's GPTQ at that scale)."""
        Wm = (c.reshape(1, -1) if c.ndim == 1 else c) if swap else np.swapaxes(c[:, None] if c.ndim == 1 else c, -1, -2)
        depth, c_batch = Wm.shape[-1], Wm.shape[:-2]
        mats = []
        if inputs is None:
            mats = [(W, None) for W in Wm.reshape(-1, *Wm.shape[-2:])]
        else:
            x = inputs if not swap else np.swapaxes(inputs[..., None] if inputs.ndim == 2 else inputs, -1, -2)
            x = x[:, None, :] if x.ndim == 2 else x                              # rows [samples, .., m, depth]
            rank = max(len(c_batch), x.ndim - 3)
            cb = (1,) * (rank - len(c_batch)) + tuple(c_batch)
            x = x.reshape(x.shape[0], *(1,) * (rank - (x.ndim - 3)), *x.shape[1:])
            x = np.broadcast_to(x, (x.shape[0], *np.broadcast_shapes(cb, x.shape[1:-2]), *x.shape[-2:]))
            Wb = Wm.reshape(*cb, *Wm.shape[-2:])
            for k in np.ndindex(*cb):
                sel = tuple(i if n > 1 else slice(None) for i, n in zip(k, cb))
                mats.append((Wb[k], _subsample(x[(slice(None), *sel)].reshape(-1, depth), rng)))
        grid = fmt.grid.astype(np.float64)
        top = float(grid.max())
        amax = max(float(np.abs(c).max(initial=0.0)), 1e-12)
        if pot_scale:
            scales = [2.0 ** (np.ceil(np.log2(amax / top)) - k) for k in range(3)]
        else:
            scales = [amax / top * f for f in (1.0, 0.9, 0.8)]
        factors = [_hessian(X) if X is not None and self.method != "nearest" else (np.eye(depth), None)
                   for _, X in mats]
        best = None
        for s in scales:
            Qs = [ptq.nearest(W / s, grid) if U is None else _rounded(W, U, s, grid)
                  for (W, _), (_, U) in zip(mats, factors)]
            err = sum(_error(W - s * Q, H) for (W, _), Q, (H, _) in zip(mats, Qs, factors))
            if best is None:
                near = sum(_error(W - s * ptq.nearest(W / s, grid), H) for (W, _), (H, _) in zip(mats, factors))
            if best is None or err < best[0]:
                best = (err, s, Qs)
        ref = max(sum(_error(W, H) for (W, _), (H, _) in zip(mats, factors)), 1e-30)
        err, s, Qs = best
        Q = np.stack(Qs).reshape(Wm.shape)
        w_q = Q.reshape(c.shape) if swap else np.swapaxes(Q, -1, -2).reshape(c.shape)
        return w_q, np.float64(s), {"error": float(err / ref), "nearest_error": float(near / ref)}

    def _bias(self, W, Q, s, X, bias):
        if not self.bias_correction:
            return bias
        return ptq.corrected_bias(W, Q, s, X, bias)


def _hessian(X: np.ndarray, damp: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """(H = X^T X dampened by damp * mean diag(H), the upper Cholesky factor of H^-1), as ptq's."""
    H = X.T @ X
    dead = np.diag(H) == 0
    H[dead, dead] = 1.0                            # inputs that never move: any value is exact
    H = H + np.eye(len(H)) * damp * np.mean(np.diag(H))
    return H, np.linalg.cholesky(np.linalg.inv(H)).T


def _rounded(W: np.ndarray, U: np.ndarray, scale: float, grid: np.ndarray) -> np.ndarray:
    """W / scale on the grid, column by column, each rounding error pushed onto the columns not
    yet rounded (GPTQ at a fixed scale, as ptq.quantize_matrix's)."""
    W = W.copy()
    Q = np.empty_like(W)
    for j in range(W.shape[1]):
        Q[:, j] = ptq.nearest(W[:, j] / scale, grid)
        err = (W[:, j] - Q[:, j] * scale) / U[j, j]
        W[:, j + 1:] -= np.outer(err, U[j, j + 1:])
    return Q


def _error(D: np.ndarray, H: np.ndarray) -> float:
    return float(np.einsum("ok,kl,ol->", D, H, D))


def _subsample(X: np.ndarray, rng) -> np.ndarray:
    return X if len(X) <= MAX_ROWS else X[rng.choice(len(X), MAX_ROWS, replace=False)]


def QuantizeWeights(calibration: np.ndarray, formats, path: str = "<module>", *, method: str = "gptq",
                    pot_activations: bool = True, scheme: CodedWeights | None = None):
    """Post-training quantization with the given weight formats (see module docstring). Pass
    ``scheme`` (a CodedWeights) to read its per-layer report afterwards."""
    scheme = scheme or CodedWeights(formats, method, pot_activations)

    @tvm_compat.module_pass("adaptc.QuantizeWeights")
    def _pass(mod):
        return Quantizer(mod, calibration_samples(calibration, mod, path), scheme).run()

    return _pass
