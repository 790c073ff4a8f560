"""Figures of the trajectory experiments: trajectories and extrapolation against data; parameter
error against noise level."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nc.experiments.report import plt
from nc.experiments.stats import quantile

__all__ = ["trajectory_figure", "sweep_figure"]

SKIP = {"t", "clean", "obs", "sweep", "paper_sweep"}


def trajectory_figure(plot: dict[str, Any], out: Path, name: str, labels: list[str]) -> str:
    t = plot["t"]
    n_obs = len(plot["obs"])
    fig, axes = plt().subplots(len(labels), 1, figsize=(9, 2.6 * len(labels)), sharex=True)
    for i, (ax, label) in enumerate(zip(axes, labels)):
        ax.plot(t, [p[i] for p in plot["clean"]], "k-", lw=1.5, label="truth")
        ax.plot(t[:n_obs], [p[i] for p in plot["obs"]], ".", ms=3, color="gray", label="noisy data")
        ax.plot(t, [p[i] for p in plot["compiled"]], "--", color="C0", lw=1.2, label="nc compiled (fitted)")
        for j, (key, traj) in enumerate((k, v) for k, v in plot.items() if k not in SKIP and k != "compiled"):
            ax.plot(t[:len(traj)], [p[i] for p in traj], "-", lw=0.9, color=f"C{j + 1}", label=key)
        ax.axvline(t[n_obs - 1], color="k", ls=":", lw=0.8)
        ax.set_ylabel(label)
        finite = [p[i] for p in plot["clean"]]
        lo, hi = min(finite), max(finite)
        ax.set_ylim(lo - 0.5 * (hi - lo), hi + 0.5 * (hi - lo))
    axes[0].legend(fontsize=7, ncol=3)
    axes[-1].set_xlabel("t (dotted: end of the training data; beyond it, extrapolation to 5x)")
    fig.tight_layout()
    path = out / f"{name}_trajectories.png"
    fig.savefig(path, dpi=110)
    plt().close(fig)
    return path.name


def sweep_figure(plot: dict[str, Any], out: Path, name: str) -> str:
    sweep = plot["sweep"]
    levels = sorted(float(k) for k in sweep)
    fig, ax = plt().subplots(figsize=(5.5, 3.8))
    meds = [quantile(sweep[f"{lv:g}"], 0.5) * 100 for lv in levels]
    lo = [m - quantile(sweep[f"{lv:g}"], 0.25) * 100 for m, lv in zip(meds, levels)]
    hi = [quantile(sweep[f"{lv:g}"], 0.75) * 100 - m for m, lv in zip(meds, levels)]
    x = [100 * lv for lv in levels]
    ax.errorbar(x, meds, yerr=[lo, hi], fmt="o-", capsize=3, label="nc compiled: median, IQR over seeds")
    if plot.get("paper_sweep"):
        ax.plot([0, 1, 2, 5, 10], [100 * v for v in plot["paper_sweep"]], "s--", color="C3", label="paper (max, one run)")
    ax.set_xlabel("noise level (%)")
    ax.set_ylabel("max relative parameter error (%)")
    ax.set_title(f"{name}: parameter error against noise")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = out / f"{name}_noise_sweep.png"
    fig.savefig(path, dpi=110)
    plt().close(fig)
    return path.name
