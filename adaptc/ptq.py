"""Post-training weight quantization onto a format's grid (NumPy): the math of QuantizeWeights.

A weighted layer is a matrix W [out, K] (a conv2d's OHWI rows, a dense layer's transposed
weights) applied to input rows x [K] (im2col patches). Each output channel c gets a scale s_c and
integer values q_c on the format's grid (adaptc.formats), w_c ~ s_c * q_c:

* ``nearest``: s_c maps max |w_c| to the grid's largest value; q = the nearest grid value.
* ``gptq``: error-correcting rounding against the calibration inputs (GPTQ, Frantar et al. 2022):
  columns are rounded one at a time and each rounding error is pushed onto the columns not yet
  rounded, weighted by the inverse of H = X^T X, which minimizes the layer's output error
  ||X W^T - X Q^T||^2 rather than the weights' own error.

With ``pot_scale`` the scales are powers of two (so that requantization is a shift); each
channel tries the scale that fits its largest weight and the next two finer ones (clipping the
largest weights for resolution everywhere else) and keeps the one with the least output error.
``bias_correction`` then adds the mean output error back into the bias.
"""
from __future__ import annotations

import numpy as np

from .formats import Format


def pot_qparams(lo: float, hi: float) -> tuple[np.float32, int]:
    """int8 activation parameters with a power-of-two scale covering [min(lo, 0), max(hi, 0)]."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if hi - lo < 1e-12:
        return np.float32(2.0 ** -8), -128
    scale = np.float32(2.0 ** np.ceil(np.log2((hi - lo) / 255.0)))
    zp = int(np.clip(np.round(-128 - lo / float(scale)), -128, 127))
    return scale, zp


def im2col(x: np.ndarray, k_h: int, k_w: int, strides, dilation, padding) -> np.ndarray:
    """NHWC float input -> rows [N * out_h * out_w, k_h * k_w * C] in OHWI order (zeros at
    padded taps: the real value of the input zero point)."""
    n, h, w, c = x.shape
    pt, pl, pb, pr = (list(padding) + [0, 0, 0, 0])[:4] if len(padding) == 4 else (padding[0], padding[1],
                                                                                     padding[0], padding[1])
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    sh, sw = strides
    dh, dw = dilation
    out_h = (h + pt + pb - (k_h - 1) * dh - 1) // sh + 1
    out_w = (w + pl + pr - (k_w - 1) * dw - 1) // sw + 1
    cols = [xp[:, ky * dh: ky * dh + sh * (out_h - 1) + 1: sh, kx * dw: kx * dw + sw * (out_w - 1) + 1: sw, :]
            for ky in range(k_h) for kx in range(k_w)]
    return np.stack(cols, axis=3).reshape(n * out_h * out_w, k_h * k_w * c)


def nearest(values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """The grid value nearest to each value (ties to the smaller magnitude)."""
    idx = np.clip(np.searchsorted(grid, values), 1, len(grid) - 1)
    lo, hi = grid[idx - 1], grid[idx]
    pick_hi = (hi - values) < (values - lo)
    ties = (hi - values) == (values - lo)
    pick_hi = pick_hi | (ties & (np.abs(hi) < np.abs(lo)))
    return np.where(pick_hi, hi, lo)


def _gptq(W: np.ndarray, U: np.ndarray, scale: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Q [out, K] on the grid for W / scale, rounding columns in order with error feedback;
    U: the upper Cholesky factor of H^-1."""
    W = W.copy()
    Q = np.empty_like(W)
    for j in range(W.shape[1]):
        q = nearest(W[:, j] / scale, grid)
        Q[:, j] = q
        err = (W[:, j] - q * scale) / U[j, j]
        W[:, j + 1:] -= np.outer(err, U[j, j + 1:])
    return Q


def _hessian_factor(X: np.ndarray, damp: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """(H, upper Cholesky factor of H^-1) for rows X, dampened by damp * mean diag(H)."""
    H = X.T @ X
    d = np.diag(H)
    dead = d == 0
    H[dead, dead] = 1.0                            # inputs that never move: any value is exact
    H = H + np.eye(len(H)) * damp * np.mean(np.diag(H))
    U = np.linalg.cholesky(np.linalg.inv(H)).T                 # upper: H^-1 = U^T U
    return H, U


def quantize_matrix(W: np.ndarray, fmt: Format, X: np.ndarray | None = None, *, pot_scale: bool = True,
                    method: str = "gptq") -> tuple[np.ndarray, np.ndarray, dict]:
    """W [out, K] float -> (Q [out, K] int64 on the format's grid, scale [out] float64, facts):
    facts holds the output error (trace of (W - sQ) H (W - sQ)^T, relative to that of W) of the
    result and of the nearest-rounding baseline."""
    W = np.asarray(W, np.float64)
    grid = fmt.grid.astype(np.float64)
    top = float(grid.max())
    amax = np.maximum(np.abs(W).max(axis=1), 1e-12)
    if X is None or method == "nearest":
        H, U = np.eye(W.shape[1]), None
    else:
        H, U = _hessian_factor(np.asarray(X, np.float64))

    def error(Q, s):
        D = W - Q * s[:, None]
        return np.einsum("ok,kl,ol->o", D, H, D)

    if pot_scale:
        base = np.ceil(np.log2(amax / top))
        candidates = [2.0 ** (base - k) for k in range(3)]
    else:
        candidates = [amax / top * f for f in (1.0, 0.9, 0.8)]
    best_Q = best_s = best_e = None
    baseline = None
    for s in candidates:
        Q = nearest(W / s[:, None], grid) if U is None else _gptq(W, U, s, grid)
        e = error(Q, s)
        if baseline is None:
            baseline = error(nearest(W / s[:, None], grid), s)
        if best_e is None:
            best_Q, best_s, best_e = Q, s.copy(), e
        else:
            better = e < best_e
            best_Q[better], best_s[better], best_e[better] = Q[better], s[better], e[better]
    ref = np.maximum(np.einsum("ok,kl,ol->o", W, H, W).sum(), 1e-30)
    facts = {"error": float(best_e.sum() / ref), "nearest_error": float(baseline.sum() / ref)}
    return best_Q.astype(np.int64), best_s, facts


def corrected_bias(W: np.ndarray, Q: np.ndarray, scale: np.ndarray, X: np.ndarray | None, bias) -> np.ndarray:
    """Bias plus the mean output error over the calibration rows: b + (W - sQ) . mean(x)."""
    b = np.zeros(W.shape[0]) if bias is None else np.asarray(bias, np.float64).reshape(-1)
    if X is None:
        return b
    return b + (W - Q * scale[:, None]) @ np.asarray(X, np.float64).mean(axis=0)
