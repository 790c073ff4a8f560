"""Stage 1 of `nc.discover`: smoothed derivatives and sequentially thresholded least squares.

- `savgol`: a Savitzky-Golay filter (local least-squares polynomial of degree ``order`` over
  ``2 * half + 1`` equally spaced points), giving smoothed values and first derivatives; near the
  ends the first/last full window's polynomial is evaluated off-centre, so no row is lost.
- `stlsq`: sequentially thresholded least squares (Brunton, Proctor and Kutz 2016) on columns
  scaled to unit RMS, with the target scaled likewise, so that the threshold is a fraction of
  the derivative's RMS that a term must carry to stay, whatever the units of the terms.
- `support_path`: the distinct supports of `stlsq` over a grid of thresholds, each with a
  derivative-based Bayesian information criterion used only to short-list candidates for stage 2.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["savgol", "stlsq", "support_path", "threshold_grid"]


def _savgol_weights(half: int, order: int, at: int, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """Weights over the window offsets -half..half giving the value and first derivative of the
    local polynomial at offset ``at``."""
    offsets = np.arange(-half, half + 1, dtype=np.float64)
    vander = offsets[:, None] ** np.arange(order + 1)[None, :]  # [window, order + 1]
    pinv = np.linalg.pinv(vander)  # coefficients = pinv @ samples
    value = (float(at) ** np.arange(order + 1)) @ pinv
    powers = np.arange(order + 1, dtype=np.float64)
    deriv = (powers * float(at) ** np.maximum(powers - 1, 0) * (powers > 0)) @ pinv / dt
    return value, deriv


def savgol(y: np.ndarray, dt: float, half: int, order: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Smoothed values and derivatives of ``y`` [T, ...] sampled every ``dt`` (``T >= 2 * half + 1``)."""
    T = y.shape[0]
    half = max(1, min(half, (T - 1) // 2))
    order = min(order, 2 * half)
    flat = y.reshape(T, -1)
    smooth, deriv = np.empty_like(flat), np.empty_like(flat)
    w_val, w_der = _savgol_weights(half, order, 0, dt)
    windows = np.lib.stride_tricks.sliding_window_view(flat, 2 * half + 1, axis=0)  # [T - 2h, cols, window]
    smooth[half: T - half] = windows @ w_val
    deriv[half: T - half] = windows @ w_der
    for i in range(half):  # the ends: the first / last full window, off-centre
        v, d = _savgol_weights(half, order, i - half, dt)
        smooth[i], deriv[i] = v @ flat[: 2 * half + 1], d @ flat[: 2 * half + 1]
        v, d = _savgol_weights(half, order, half - i, dt)
        smooth[T - 1 - i], deriv[T - 1 - i] = v @ flat[T - 2 * half - 1:], d @ flat[T - 2 * half - 1:]
    return smooth.reshape(y.shape), deriv.reshape(y.shape)


def _lstsq(theta: np.ndarray, target: np.ndarray, ridge: float) -> np.ndarray:
    if theta.shape[1] == 0:
        return np.zeros(0)
    if ridge:
        gram = theta.T @ theta + ridge * theta.shape[0] * np.eye(theta.shape[1])
        return np.asarray(np.linalg.solve(gram, theta.T @ target))
    return np.asarray(np.linalg.lstsq(theta, target, rcond=None)[0])


def stlsq(theta: np.ndarray, target: np.ndarray, threshold: float, ridge: float = 1e-8,
          max_iter: int = 25) -> np.ndarray:
    """Sparse ``xi`` with ``theta @ xi ~ target`` (both already scaled): least squares, then
    repeatedly zero every ``|xi_k| < threshold`` and refit on the rest, until the support is fixed."""
    active = np.ones(theta.shape[1], dtype=bool)
    xi = np.zeros(theta.shape[1])
    for _ in range(max_iter):
        xi = np.zeros(theta.shape[1])
        xi[active] = _lstsq(theta[:, active], target, ridge)
        keep = active & (np.abs(xi) >= threshold)
        if (keep == active).all():
            break
        active = keep
    xi[~active] = 0.0
    return xi


def threshold_grid(n: int = 24, lo: float = 1e-3, hi: float = 0.8) -> np.ndarray:
    """Thresholds, geometric from ``lo`` to ``hi`` (fractions of the scaled target's RMS)."""
    return np.geomspace(lo, hi, n)


def support_path(theta: np.ndarray, target: np.ndarray, thresholds: np.ndarray
                 ) -> list[tuple[frozenset[int], float, float]]:
    """(support, smallest threshold giving it, derivative BIC) for each distinct support of
    `stlsq` over ``thresholds``, on unit-RMS columns; the BIC is ``N log(RSS / N) + k log N``."""
    scale = np.sqrt(np.mean(theta**2, axis=0))
    scale[scale == 0] = 1.0
    tscale = math.sqrt(float(np.mean(target**2))) or 1.0
    th, tg = theta / scale, target / tscale
    seen: dict[frozenset[int], float] = {}
    for lam in thresholds:
        support = frozenset(int(k) for k in np.flatnonzero(stlsq(th, tg, float(lam))))
        seen.setdefault(support, float(lam))
    n = len(tg)
    out = []
    for support, lam in seen.items():
        cols = sorted(support)
        xi = _lstsq(th[:, cols], tg, 0.0) if cols else np.zeros(0)
        rss = float(np.sum((tg - th[:, cols] @ xi) ** 2)) if cols else float(np.sum(tg**2))
        out.append((support, lam, n * math.log(max(rss, 1e-300) / n) + len(cols) * math.log(n)))
    return out
