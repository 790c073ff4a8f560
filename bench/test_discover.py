"""Equation discovery, nc.discover beside PySINDy, on the same data and the same library.

Quick mode (``pytest bench/ --benchmark-disable``): one small noise-free Lorenz case for nc (and
PySINDy when installed), checked for the true terms. The full sweep is opt-in:
``NC_DISCOVER_FULL=1 [NC_DISCOVER_SEEDS=10] python -m pytest bench/test_discover.py -s`` runs
Lorenz at noise 0/1/5/10% of each state's standard deviation over the seeds, the hybrid
Lotka-Volterra at 5% and Burgers at 1%, prints the tables and writes bench/discover_report.md.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import nc

F64 = torch.float64
FULL = os.environ.get("NC_DISCOVER_FULL") == "1"
SEEDS = int(os.environ.get("NC_DISCOVER_SEEDS", "10"))
LORENZ = """
(define (f t s) (let ((x (ref s 0)) (y (ref s 1)) (z (ref s 2)))
  [(* 10 (- y x)) (- (* x (- 28 z)) y) (- (* x y) (* 2.6666666666666665 z))]))
(rk4 f s0 0.001 {n})
"""
TRUE_LORENZ = {("x", "x"): -10.0, ("x", "y"): 10.0, ("y", "x"): 28.0, ("y", "y"): -1.0, ("y", "x z"): -1.0,
               ("z", "z"): -8 / 3, ("z", "x y"): 1.0}
LV = """
(define (f t s) (let ((x (ref s 0)) (y (ref s 1)))
  [(- (* 1.1 x) (* 0.4 x y)) (+ (* -0.4 y) (* 0.1 x y))]))
(rk4 f s0 0.01 1500)
"""


def lorenz_data(noise: float, seed: int, steps: int) -> list[np.ndarray]:
    g = nc.compile_fn(LORENZ.format(n=10 * steps))
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(3):
        y0 = rng.normal(0, 1, 3) * [8, 8, 8] + [0, 0, 25]
        y = g(s0=torch.tensor(y0, dtype=F64)).numpy()[::10]
        out.append(y + noise * y.std(axis=0) * rng.standard_normal(y.shape))
    return out


def score(found: dict[tuple[str, str], float], truth: dict[tuple[str, str], float]) -> tuple[bool, float]:
    """(exactly the true terms, largest relative coefficient error over the true terms)."""
    exact = set(k for k, v in found.items() if v != 0) == set(truth)
    err = max(abs(found.get(k, 0.0) - v) / abs(v) for k, v in truth.items())
    return exact, err


def run_nc(trajs: list[np.ndarray], dt: float, **kw: object) -> tuple[dict[tuple[str, str], float], float]:
    from nc.discover_library import display_term

    t0 = time.perf_counter()
    r = nc.discover(trajs, dt, ["x", "y", "z"][: trajs[0].shape[1]], "poly2", **kw)  # type: ignore[arg-type]
    found = {}
    for name, v in r.coefficients.items():
        _, state, k = name.split("_")
        found[(state, display_term(r.terms[int(k)]))] = v
    return found, time.perf_counter() - t0


def run_pysindy(trajs: list[np.ndarray], dt: float, variant: str) -> tuple[dict[tuple[str, str], float], float]:
    ps = pytest.importorskip("pysindy")
    names = ["x", "y", "z"][: trajs[0].shape[1]]
    t0 = time.perf_counter()
    if variant == "weak":
        t = np.arange(len(trajs[0])) * dt
        lib = ps.WeakPDELibrary(function_library=ps.PolynomialLibrary(degree=2, include_bias=False),
                                spatiotemporal_grid=t, K=200, p=4)
        model = ps.SINDy(feature_library=lib, optimizer=ps.STLSQ(threshold=0.5))
        model.fit([trajs[0]], t=t, feature_names=names)
    else:
        diff = ps.SmoothedFiniteDifference() if variant == "smoothed" else ps.FiniteDifference()
        model = ps.SINDy(feature_library=ps.PolynomialLibrary(degree=2, include_bias=False),
                         optimizer=ps.STLSQ(threshold=0.5), differentiation_method=diff)
        model.fit(trajs, t=dt, feature_names=names)
    coefs = model.coefficients()
    found = {}
    for i, s in enumerate(names):
        for j, f in enumerate(model.get_feature_names()):
            if coefs[i, j] != 0:
                found[(s, f.replace("^2", "^2"))] = float(coefs[i, j])
    return found, time.perf_counter() - t0


def test_discover_lorenz_quick():
    trajs = lorenz_data(0.0, 0, 300)
    found, seconds = run_nc(trajs, 0.01)
    exact, err = score(found, TRUE_LORENZ)
    assert exact and err < 1e-3, (found, err)
    print(f"nc.discover noise-free Lorenz (3 x 300 points): exact={exact} max rel err={err:.2e} {seconds:.1f}s")


@pytest.mark.skipif(not FULL, reason="set NC_DISCOVER_FULL=1 for the full sweep")
def test_discover_full_sweep():
    lines = ["| noise | method | true terms (fraction of seeds) | largest rel. coef. error (median) | s per discovery |",
             "|---|---|---|---|---|"]
    for noise in (0.0, 0.01, 0.05, 0.10):
        rows: dict[str, list[tuple[bool, float, float]]] = {}
        for seed in range(SEEDS):
            trajs = lorenz_data(noise, seed, 1000)
            for method in ("nc", "pysindy", "pysindy-smoothed", "pysindy-weak"):
                try:
                    if method == "nc":
                        found, sec = run_nc(trajs, 0.01)
                    else:
                        found, sec = run_pysindy(trajs, 0.01, method.partition("-")[2] or "fd")
                    exact, err = score(found, TRUE_LORENZ)
                except Exception as e:  # noqa: BLE001 - a peer failing is a result, not a crash
                    print(f"{method} failed at noise {noise} seed {seed}: {e}")
                    exact, err, sec = False, float("inf"), float("nan")
                rows.setdefault(method, []).append((exact, err, sec))
                print(method, noise, seed, exact, f"{err:.2e}", f"{sec:.1f}s", flush=True)
        for method, res in rows.items():
            frac = sum(r[0] for r in res) / len(res)
            lines.append(f"| {100 * noise:g}% | {method} | {frac:.1f} | {np.median([r[1] for r in res]):.2e} | "
                         f"{np.nanmedian([r[2] for r in res]):.2f} |")
    text = "\n".join(lines)
    print(text)
    Path(__file__).with_name("discover_report.md").write_text(
        f"# nc.discover beside PySINDy: Lorenz, {SEEDS} seeds per noise level\n\n{text}\n")
