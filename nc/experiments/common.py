"""What every experiment shares: the run's configuration, noise, entries, a small Adam loop."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import torch
from torch import Tensor, nn

from nc.experiments.stats import summarise
from nc.progress import tqdm_class

__all__ = ["F64", "Bar", "Config", "adam", "entry", "mlp", "n_params", "noisy", "rel", "sweep_lr", "timed"]

F64 = torch.float64
QUICK_FIT_EPOCHS = 4


@attrs.frozen
class Config:
    """One run's sizes. ``seeds``: the compiled models' seeds (noise draw and initialisation);
    ``baseline_seeds``: the (costlier) baselines' seeds, the first ``n`` of ``seeds``;
    ``epochs(full, quick)``: a training length scaled for ``quick``; ``sweep``: whether
    baselines pick their learning rate from a small sweep (the full run) or take the paper's."""

    seeds: tuple[int, ...]
    baseline_seeds: tuple[int, ...]
    quick: bool = False
    baseline_epoch_scale: float = 1.0
    sweep_seeds: int | None = None  # seeds per noise level of the sweeps (None: every seed)

    def epochs(self, full: int, quick: int) -> int:
        return quick if self.quick else max(1, int(full * self.baseline_epoch_scale))

    @property
    def fit_epochs(self) -> int | None:
        """L-BFGS epochs of the compiled models' trajectory fits: nc.fit's default (None) in the
        full run; ``QUICK_FIT_EPOCHS`` in quick mode, where the loss has settled (the default
        runs on to ~14 epochs polishing the last digits)."""
        return QUICK_FIT_EPOCHS if self.quick else None

    @property
    def sweep(self) -> bool:
        return not self.quick


class Bar:
    """A progress bar of work units (tqdm when installed, else silent)."""

    def __init__(self, total: int, label: str, enabled: bool = True) -> None:
        cls = tqdm_class() if enabled else None
        self._bar = None if cls is None else cls(total=total, desc=label, unit="fit", leave=True)

    def step(self, what: str = "", n: int = 1) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(what, refresh=False)
            self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def noisy(clean: Tensor, level: float, gen: torch.Generator) -> Tensor:
    """``clean + sigma * N(0, 1)``, ``sigma = level * mean |clean|`` (the paper's noise)."""
    if level == 0:
        return clean.clone()
    return clean + level * clean.abs().mean() * torch.randn(clean.shape, generator=gen, dtype=clean.dtype)


def rel(value: float, true: float) -> float:
    return abs(value - true) / abs(true)


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def entry(method: str, quantity: str, values: Sequence[float], seeds: Sequence[int], *, relative: bool = True,
          seconds: Sequence[float] = (), params: int | None = None, note: str = "") -> dict[str, Any]:
    """One row of an experiment's table: a method's ``quantity`` over ``seeds``."""
    vals = [float(v) for v in values]
    return {"method": method, "quantity": quantity, "relative": relative, "values": vals, "seeds": list(seeds),
            "stats": summarise(vals, relative=relative),
            "seconds": summarise(list(seconds), relative=False)["median"] if seconds else None,
            "params": params, "note": note}


def mlp(sizes: Sequence[int], act: type[nn.Module] = nn.Tanh, zero_last: bool = False) -> nn.Sequential:
    """A multilayer perceptron ``sizes[0] -> ... -> sizes[-1]`` in float64."""
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(act())
    net = nn.Sequential(*layers).to(F64)
    if zero_last:  # a correction that starts at zero
        last = net[-1]
        assert isinstance(last, nn.Linear)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
    return net


def n_params(*modules: nn.Module) -> int:
    return sum(p.numel() for m in modules for p in m.parameters() if p.requires_grad)


def adam(params: Sequence[Tensor] | Any, loss_fn: Callable[[int], Tensor], epochs: int, lr: float, *,
         cosine: bool = False, clip: float | None = None) -> float:
    """Adam for ``epochs`` steps of ``loss_fn(epoch)`` (optionally cosine-annealed and clipped);
    returns the last finite loss (inf if none)."""
    params = [p for p in params if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(epochs, 1)) if cosine else None
    last = math.inf
    for epoch in range(epochs):
        opt.zero_grad()
        loss = loss_fn(epoch)
        if not torch.isfinite(loss):
            break
        loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(params, clip)
        opt.step()
        if sched is not None:
            sched.step()
        last = float(loss)
    return last


def sweep_lr(cfg: Config, paper_lr: float, trial: Callable[[float], float],
             grid: Sequence[float] | None = None) -> tuple[float, dict[str, float]]:
    """A baseline's learning rate: in the full run the one of ``grid`` (default: the paper's
    /3, x1, x3) with the lowest validation score ``trial(lr)`` on the first seed; in quick mode
    the paper's. Returns the rate and every score tried (for the report)."""
    if not cfg.sweep:
        return paper_lr, {}
    grid = list(grid) if grid is not None else [paper_lr / 3, paper_lr, paper_lr * 3]
    scores = {}
    for lr in grid:
        s = trial(lr)
        scores[f"{lr:g}"] = s if math.isfinite(s) else math.inf
    best = min(grid, key=lambda lr: scores[f"{lr:g}"])
    return best, scores
