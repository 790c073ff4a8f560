"""Experiment 3: the damped pendulum, 2% noise, g/L and b from 5.0 and 0.5 (paper setup).

The hybrids: compiled gravity plus a 3-32-32-1 tanh correction on (theta, theta', t) (the
paper's, non-identifiable: the correction can absorb gravity), and an identifiable variant whose
correction sees only theta' (a damping law), so it cannot represent the sin(theta) term."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

import nc
from nc.experiments.common import F64, Bar, Config, mlp
from nc.experiments.stats import quantile
from nc.experiments.trajectory import NOISE_LEVELS, QUICK_LEVELS, Setup, compiled_part, network_part
from nc.experiments.trajectory_plots import sweep_figure, trajectory_figure

__all__ = ["SETUP", "run", "figures"]

SOURCE = """
(define (pendulum t s)
  (let ((theta (ref s 0)) (theta_dot (ref s 1)))
    [theta_dot
     (+ (* neg_g_over_L (sin theta)) (* neg_b theta_dot))]))
(rk4 pendulum s0 0.05 {steps})
"""
HYBRID = """
(define (pendulum t s)
  (let ((theta (ref s 0)) (theta_dot (ref s 1)))
    [theta_dot
     (+ (* neg_g_over_L (sin theta)) (ref (correction [theta theta_dot t]) 0))]))
(rk4 pendulum s0 0.05 25)
"""
IDENTIFIABLE = """
(define (pendulum t s)
  (let ((theta (ref s 0)) (theta_dot (ref s 1)))
    [theta_dot
     (+ (* neg_g_over_L (sin theta)) (ref (damping [theta_dot]) 0))]))
(rk4 pendulum s0 0.05 25)
"""
TRUE = {"neg_g_over_L": -9.81, "neg_b": -0.3}
SETUP = Setup(source=SOURCE, truth=TRUE, start={"neg_g_over_L": -5.0, "neg_b": -0.5}, y0=(1.0, 0.0), dt=0.05,
              steps=200, window=25, continuity=10.0, paper_sweep=())


def residual(t: Tensor, y: Tensor, dy: list[Tensor], p: list[Tensor]) -> list[Tensor]:
    th, w = y[:, 0:1], y[:, 1:2]
    return [dy[0] - w, dy[1] - (p[0] * torch.sin(th) + p[1] * w)]


def hybrid(seed: int) -> tuple[Any, list[str]]:
    torch.manual_seed(seed)
    return nc.compile(HYBRID, params={"neg_g_over_L": -5.0},
                      modules={"correction": mlp([3, 32, 32, 1], zero_last=True)}, dtype=F64), ["neg_g_over_L"]


def identifiable(seed: int) -> tuple[Any, list[str]]:
    torch.manual_seed(seed)
    return nc.compile(IDENTIFIABLE, params={"neg_g_over_L": -5.0},
                      modules={"damping": mlp([1, 32, 32, 1], zero_last=True)}, dtype=F64), ["neg_g_over_L"]


def run(cfg: Config, bar: Bar) -> dict[str, Any]:
    s = SETUP
    levels = QUICK_LEVELS if cfg.quick else NOISE_LEVELS
    part = compiled_part("pendulum", s, cfg, bar, levels)
    hybrids = [("hybrid (paper): gravity + MLP(theta, theta', t)", hybrid),
               ("hybrid, identifiable: gravity + MLP(theta')", identifiable)]
    entries = part["entries"] + network_part(s, cfg, bar, 3, True, residual, hybrids, part["plot"])
    med = quantile(part["err"], 0.5)
    bmed = quantile(part["best"], 0.5)
    gl = [e for e in entries if e["quantity"].startswith("neg_g_over_L error") and e["method"].startswith("nc")][0]
    b = [e for e in entries if e["quantity"].startswith("neg_b error") and e["method"].startswith("nc")][0]
    hyb = [e for e in entries if e["method"].startswith("hybrid (paper)")]
    ident = [e for e in entries if e["method"].startswith("hybrid, identifiable")]
    headline = [
        {"quantity": "g/L and b error, 2% noise (median)", "paper": "g/L 0.08%, b 0.17% (one run)",
         "nc": f"g/L {100 * gl['stats']['median']:.3f}%, b {100 * b['stats']['median']:.3f}%; max of both "
               f"{100 * med:.3f}% vs best achievable {100 * bmed:.3f}% (ratio {med / bmed if bmed else 1:.2f})",
         "spread": f"max error IQR {100 * quantile(part['err'], .25):.3f}-{100 * quantile(part['err'], .75):.3f}%, "
                   f"{len(part['err'])} seeds"},
        {"quantity": "hybrid g/L error (median)", "paper": "47% (non-identifiable)",
         "nc": f"{100 * hyb[0]['stats']['median']:.1f}%; identifiable variant {100 * ident[0]['stats']['median']:.2f}%",
         "spread": f"{len(cfg.baseline_seeds)} seeds"},
        {"quantity": f"noise sweep {'/'.join(part['sweep'])} (median max error, %)", "paper": "-",
         "nc": "/".join(f"{100 * quantile(v, .5):.2f}" for v in part["sweep"].values()),
         "spread": f"{len(cfg.seeds)} seeds per level"},
    ]
    notes = ["Compiled: nc.ShootingLoss(model, obs, continuity_weight=10), contiguous windows of 25 steps, "
             "nc.fit defaults; the paper used 6 random windows and Adam.",
             "Hybrids and baselines: the paper's 6 random windows of 25 steps, Adam lr 0.01, cosine, clip 5.0."]
    return {"entries": entries, "headline": headline, "notes": notes, "plot": part["plot"]}


def figures(result: dict[str, Any], out: Any) -> list[str]:

    return [trajectory_figure(result["plot"], out, "pendulum", ["theta", "theta'"]),
            sweep_figure(result["plot"], out, "pendulum")]
