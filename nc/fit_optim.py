"""Optimisers and learning-rate schedules for fitting: `FitOptions` and the factories that turn
them into torch objects."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import attrs
import torch
from torch import Tensor

from nc.errors import CallError

__all__ = ["DEFAULT_EPOCHS", "DEFAULT_LR", "OPTIMIZERS", "SCHEDULERS", "FitOptions", "make_optimizer",
           "make_scheduler"]

DEFAULT_LR = {"adam": 1e-2, "lbfgs": 1.0}
DEFAULT_EPOCHS = {"adam": 1000, "lbfgs": 100}
OPTIMIZERS: dict[str, Any] = {"adam": torch.optim.Adam, "lbfgs": torch.optim.LBFGS}
SCHEDULERS = (None, "cosine")


@attrs.frozen
class FitOptions:
    """The checked options of one fit (see `nc.fit` for their meaning)."""

    optimizer: str
    lr: float
    epochs: int
    batch_size: int | None = None
    tol: float | None = None
    patience: int | None = None
    rel_improvement: float = 0.0
    clip: float | None = None
    scheduler: str | None = None
    optimizer_options: dict[str, Any] = attrs.field(factory=dict)


def lbfgs_defaults(dtype: torch.dtype) -> dict[str, Any]:
    """nc's L-BFGS settings. history_size 100 (torch's default): a short memory stalled the
    Lotka-Volterra shooting fits. max_eval is set so that it never binds: an early stop of a step
    then means convergence."""
    double = dtype == torch.float64
    return {"max_iter": 20, "max_eval": 500, "history_size": 100, "line_search_fn": "strong_wolfe",
            "tolerance_grad": 1e-12 if double else 1e-7, "tolerance_change": 0.0 if double else 1e-9}


def make_optimizer(params: Sequence[Tensor], opts: FitOptions) -> torch.optim.Optimizer:
    """The torch optimiser for ``opts``; unknown or invalid ``optimizer_options`` are a CallError
    that lists the options the optimiser takes."""
    cls = OPTIMIZERS[opts.optimizer]
    allowed = [n for n in inspect.signature(cls.__init__).parameters if n not in ("self", "params", "lr")]
    unknown = sorted(set(opts.optimizer_options) - set(allowed))
    if unknown:
        raise CallError(f"optimizer_options {unknown} are not options of {cls.__name__}", None,
                        hint=f"{cls.__name__} takes {', '.join(allowed)}")
    base = lbfgs_defaults(params[0].dtype) if opts.optimizer == "lbfgs" else {}
    try:
        return cls(params, lr=opts.lr, **{**base, **opts.optimizer_options})
    except (ValueError, TypeError, RuntimeError) as e:
        raise CallError(f"optimizer_options {opts.optimizer_options} rejected by {cls.__name__}: {e}", None) from None


def make_scheduler(opt: torch.optim.Optimizer, opts: FitOptions) -> Any:
    """The learning-rate schedule of ``opts`` (None: a constant rate)."""
    if opts.scheduler is None:
        return None
    return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(opts.epochs, 1))
