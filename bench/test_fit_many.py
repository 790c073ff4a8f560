"""Group 7: many fits at once. `nc.fit_many` fits K parameter sets of one compiled model in one
batched run (vmap over functional_call); the peer is a Python loop of K `nc.fit` calls with the
same optimiser and epochs. Logistic growth, K = 100 trajectories, each with its own rate and
capacity, Adam, float64. The results must be the same (to 1e-10 relative); the ratio is timed.
"""

from __future__ import annotations

import time

import torch

import nc
from bench import report

LOGISTIC = "(lambda (t y0) (/ C (+ 1 (* (- (/ C y0) 1) (exp (* (- r) t))))))"


def data(k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    t = torch.linspace(0, 10, 40, dtype=torch.float64)
    r = 0.5 + torch.rand(k, generator=gen, dtype=torch.float64)
    c = 5 + 10 * torch.rand(k, generator=gen, dtype=torch.float64)
    y0 = 0.5 + torch.rand(k, generator=gen, dtype=torch.float64)
    ys = c[:, None] / (1 + (c[:, None] / y0[:, None] - 1) * torch.exp(-r[:, None] * t))
    return t, y0, ys


def test_fit_many_vs_loop(mode, benchmark) -> None:  # type: ignore[no-untyped-def]
    k, epochs = (4, 3) if mode.quick else (100, 200)
    t, y0, ys = data(k)
    model = nc.compile(LOGISTIC, params={"r": 1.0, "C": 5.0}, dtype=torch.float64)

    def batched():  # type: ignore[no-untyped-def]
        return nc.fit_many(model, {"t": t, "y0": y0}, ys, k=k, in_dims={"t": None, "y0": 0},
                           lr=0.05, epochs=epochs, dtype=torch.float64)

    batched()  # warm-up: the first call traces the program for this signature
    start = time.perf_counter()
    many = benchmark.pedantic(batched, rounds=1, iterations=1)
    t_many = time.perf_counter() - start
    start = time.perf_counter()
    rs = []
    for i in range(k):
        one = nc.compile(LOGISTIC, params={"r": 1.0, "C": 5.0}, dtype=torch.float64)
        nc.fit(one, {"t": t, "y0": y0[i]}, ys[i], lr=0.05, epochs=epochs, dtype=torch.float64)
        rs.append(one.params["r"].detach())
    t_loop = time.perf_counter() - start
    rel = float(((many.params["r"] - torch.stack(rs)).abs() / torch.stack(rs).abs()).max())
    assert rel < 1e-10, rel  # the same fits, batched
    tab = report.table(7, f"fit_many: K={k} logistic fits, Adam, {epochs} epochs, float64",
                       ["variant", "seconds", "loop / fit_many", "max rel. difference of r"])
    tab.add(0, ["fit_many", report.fmt_time(t_many), f"{t_loop / t_many:.1f}x", f"{rel:.1e}"])
    tab.add(1, ["loop of fit", report.fmt_time(t_loop), "", ""])
    report.target(7, "fit_many vs a loop over K = 100 (speedup)", ">= 20x", f"{t_loop / t_many:.1f}x",
                  t_loop / t_many >= 20)
