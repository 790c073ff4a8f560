"""One run of a fit: epochs of Adam (full batch or mini-batches) or L-BFGS, the stopping rules,
and the best point seen, which the run ends on.

A run never leaves the parameters worse than the best finite point it saw: `Best` keeps a copy
of the parameters with the lowest finite full-data loss, and `run` restores it at the end, so a
NaN loss mid-run (a step that left a formula's domain) or an unlucky last step costs nothing but
the epochs after it. Why a run stopped is one of `STOP_REASONS`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import cast

import attrs
import torch
from torch import Tensor, nn

from nc.fit_data import FitData, LossFn, objective
from nc.fit_optim import FitOptions, make_optimizer, make_scheduler
from nc.progress import Progress

__all__ = ["CONVERGED", "STOP_REASONS", "Best", "GradFn", "RunResult", "full_loss", "load", "run"]

#: a compiled full-batch objective (`nc.compiled_step`): returns the loss and sets the gradients
GradFn = Callable[[], Tensor]

#: why a run stopped: its epochs ran out; the loss fell below ``tol``; ``patience`` epochs without
#: improvement; L-BFGS could make no further progress; the loss became NaN or infinite
STOP_REASONS = ("epochs", "tol", "patience", "no progress", "non-finite loss")
CONVERGED = frozenset({"tol", "patience", "no progress"})


class Best:
    """The lowest finite full-data loss seen so far, the parameter values that gave it and the
    epoch (0: before the first step)."""

    def __init__(self) -> None:
        self.loss = math.inf
        self.values: list[Tensor] | None = None
        self.epoch = 0

    def offer(self, loss: float, values: Sequence[Tensor], epoch: int, *, copy: bool = True) -> None:
        """Keep ``values`` if ``loss`` is finite and lower than the best so far (a tie keeps the
        later point, as a run that ends on a plateau used to)."""
        if math.isfinite(loss) and (self.values is None or loss <= self.loss):
            self.loss, self.epoch = loss, epoch
            self.values = [v.detach().clone() for v in values] if copy else list(values)


@attrs.frozen
class RunResult:
    """One run: the loss of each epoch, the full loss at the parameters it ended on (its best
    point), why it stopped, and the epoch of the best point."""

    history: list[float]
    loss: float
    stop_reason: str
    best_epoch: int

    @property
    def converged(self) -> bool:
        return self.stop_reason in CONVERGED and math.isfinite(self.loss)


def load(params: Sequence[Tensor], values: Sequence[Tensor]) -> None:
    """Copy ``values`` into the parameters, in place."""
    with torch.no_grad():
        for p, v in zip(params, values):
            p.copy_(v)


def full_loss(model: nn.Module, data: FitData, loss: LossFn) -> float:
    """The objective over all the data at the current parameters, without a graph."""
    with torch.no_grad():
        return objective(model, data, loss).item()


def _evaluate(model: nn.Module, data: FitData, loss: LossFn, grad: GradFn | None) -> tuple[Tensor, bool]:
    """The full-batch objective, and whether its gradient is already in ``.grad`` (compiled)."""
    if grad is not None:
        return grad(), True
    return objective(model, data, loss), False


def _adam_epoch(model: nn.Module, opt: torch.optim.Optimizer, params: Sequence[Tensor], data: FitData,
                loss: LossFn, opts: FitOptions, gen: torch.Generator, best: Best,
                epoch: int, grad: GradFn | None = None) -> tuple[float, str | None]:
    """One epoch; returns (epoch loss, why to stop now or None)."""
    if opts.batch_size is None:
        opt.zero_grad(set_to_none=True)
        value, done = _evaluate(model, data, loss, grad)
        v = value.item()
        if not math.isfinite(v):
            return v, "non-finite loss"
        best.offer(v, params, epoch)  # v is the full loss at the parameters before this step
        if opts.tol is not None and v < opts.tol:
            return v, "tol"
        if not done:
            value.backward()
        if opts.clip is not None:
            nn.utils.clip_grad_norm_(params, opts.clip)
        opt.step()
        return v, None
    n = data.leading_size()
    total, count = 0.0, 0
    for idx in torch.randperm(n, generator=gen).split(opts.batch_size):
        batch = data.take(idx)
        opt.zero_grad(set_to_none=True)
        value = objective(model, batch, loss)
        v = value.item()
        if not math.isfinite(v):
            return v, "non-finite loss"
        value.backward()
        if opts.clip is not None:
            nn.utils.clip_grad_norm_(params, opts.clip)
        opt.step()
        total, count = total + v * len(idx), count + len(idx)
    mean = total / count
    # A batch mean is no point's loss: the best point is judged by the full loss after the epoch.
    best.offer(full_loss(model, data, loss), params, epoch + 1)
    return mean, "tol" if opts.tol is not None and mean < opts.tol else None


def _lbfgs_epoch(model: nn.Module, opt: torch.optim.Optimizer, params: Sequence[Tensor], data: FitData,
                 loss: LossFn, opts: FitOptions, best: Best, epoch: int,
                 grad: GradFn | None = None) -> tuple[float, str | None]:
    """One L-BFGS step (up to ``max_iter`` iterations); stops when L-BFGS stopped on its own tolerances."""

    def closure() -> Tensor:
        opt.zero_grad(set_to_none=True)
        value, done = _evaluate(model, data, loss, grad)
        if not done:
            value.backward()
        if torch.isnan(value):
            # A NaN trial point (outside a formula's domain) must read as infinitely bad: the
            # strong Wolfe line search then steps back instead of wandering on to NaN parameters.
            return torch.full_like(value, math.inf).detach()
        return value

    before_values = [p.detach().clone() for p in params]
    state = opt.state[params[0]]
    before = state.get("n_iter", 0)
    v = float(cast(Tensor, opt.step(closure)).detach())  # type: ignore[arg-type]
    if not math.isfinite(v):
        return v, "non-finite loss"
    best.offer(v, before_values, epoch, copy=False)  # v is the loss where the step started
    if opts.tol is not None and v < opts.tol:
        return v, "tol"
    # L-BFGS ran fewer than max_iter iterations only if a tolerance stopped it (max_eval is not binding).
    if state.get("n_iter", 0) - before < opt.param_groups[0]["max_iter"]:
        return v, "no progress"
    return v, None


def run(model: nn.Module, params: Sequence[Tensor], data: FitData, loss: LossFn, opts: FitOptions,
        gen: torch.Generator, bar: Progress, best: Best, grad: GradFn | None = None) -> RunResult:
    """One run from the parameters' current values, ending on the best point seen (kept in
    ``best``, which the caller owns so that it can restore it on KeyboardInterrupt). ``grad``:
    a compiled full-batch objective used instead of ``objective`` and ``backward``."""
    opt = make_optimizer(params, opts)
    sched = make_scheduler(opt, opts)
    if opts.batch_size is not None:
        best.offer(full_loss(model, data, loss), params, 0)
    history: list[float] = []
    lowest, stale, reason = math.inf, 0, "epochs"
    for epoch in range(opts.epochs):
        if opts.optimizer == "adam":
            v, stop = _adam_epoch(model, opt, params, data, loss, opts, gen, best, epoch, grad)
        else:
            v, stop = _lbfgs_epoch(model, opt, params, data, loss, opts, best, epoch, grad)
        if stop is None and opts.optimizer == "lbfgs" and history and history[-1] - v <= 1e-12 * abs(history[-1]):
            stop = "no progress"
        history.append(v)
        bar.update(epoch + 1, v)
        if stop is not None:
            reason = stop
            break
        if sched is not None:
            sched.step()
        stale = 0 if v < lowest * (1 - opts.rel_improvement) else stale + 1
        lowest = min(lowest, v)
        if opts.patience is not None and stale >= opts.patience:
            reason = "patience"
            break
    final = full_loss(model, data, loss) if reason != "non-finite loss" else math.nan
    best.offer(final, params, len(history))
    if best.values is not None and not best.loss >= final:  # final is worse than the best, or NaN
        load(params, best.values)
        final = full_loss(model, data, loss)
    return RunResult(history, final, reason, best.epoch)
