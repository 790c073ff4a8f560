"""Advice around a fit: what ``optimizer="auto"`` picks, and the warnings for an unconverged or poor fit."""

from __future__ import annotations

import math
from typing import Any

from torch import Tensor, nn

from nc.fit_data import FitData, trainable_parameters
from nc.fit_loop import RunResult
from nc.fit_optim import FitOptions
from nc.uncertainty import learned_ids

#: "auto" takes L-BFGS for at most this many trainable scalars
AUTO_MAX_SCALARS = 64
#: a fit whose RMS residual exceeds this fraction of the target's standard deviation is poor
POOR_FIT = 0.25


def choose_optimizer(model: nn.Module, args: dict[str, Any], stream: bool) -> tuple[str, str]:
    """What ``optimizer="auto"`` picks, and why."""
    named = trainable_parameters(model)
    scalars = sum(p.numel() for _, _, p in named)
    adam_options = [k for k in ("lr", "batch_size", "clip", "scheduler") if args[k] is not None]
    if stream:
        return "adam", "auto: data drawn afresh each epoch"
    if adam_options:
        return "adam", f"auto: Adam option {adam_options[0]}= given"
    if learned_ids(model) & {id(p) for _, _, p in named}:
        return "adam", "auto: a learned component is trained"
    if scalars > AUTO_MAX_SCALARS:
        return "adam", f"auto: {scalars} trainable scalars (more than {AUTO_MAX_SCALARS})"
    return "lbfgs", f"auto: {scalars} trainable scalar{'s' * (scalars != 1)}, full batch, in float64"


def diagnose(result: RunResult, data: FitData | None, loss: Any, opts: FitOptions, n_starts: int,
              restarts: int) -> list[str]:
    """The `FitWarning` messages for an unconverged or visibly poor fit."""
    out = []
    h = result.history
    if result.stop_reason == "epochs" and opts.epochs > 0:
        if opts.optimizer == "lbfgs":
            out.append(f"the fit did not converge in {opts.epochs} epochs (L-BFGS was still improving); "
                       f"hint: raise epochs= (now {opts.epochs}), or rescale the constants to order 1")
        elif len(h) >= 20 and h[-len(h) // 10] > 0 and (h[-len(h) // 10] - h[-1]) / h[-len(h) // 10] > 0.01:
            out.append(f"the fit did not converge in {opts.epochs} epochs: Adam's loss fell by "
                       f"{(h[-len(h) // 10] - h[-1]) / h[-len(h) // 10]:.1%} over the last tenth of them; "
                       "hint: raise epochs=, or use optimizer='lbfgs' (or 'auto') for a few constants")
    if data is None or not isinstance(data.target, Tensor) or loss != "mse" or not math.isfinite(result.loss):
        return out
    spread = float(data.target.double().std()) if data.target.numel() > 1 else 0.0
    rms = math.sqrt(max(result.loss, 0.0))
    if spread > 0 and rms > POOR_FIT * spread:
        tried = f"{n_starts * (restarts + 1)} runs" if n_starts * (restarts + 1) > 1 else "one start"
        out.append(f"the fit ended in a poor minimum: RMS residual {rms:.3g} is {rms / spread:.0%} of the target's "
                   f"standard deviation {spread:.3g} (from {tried}); a local minimum? hint: a multi-start scan "
                   "of the constant the loss is most non-linear in, e.g. grid={'omega': torch.linspace(0.5, 10, 20)}, "
                   "or starts=[{...}, ...], restarts=; or rescale the constants to order 1")
    return out
