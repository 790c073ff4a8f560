"""What `nc.fit` returns: `FitResult` (values, standard errors, intervals, a summary) and `FitWarning`."""

from __future__ import annotations

import re
from statistics import NormalDist

import attrs
from torch import Tensor

from nc.errors import CallError
from nc.uncertainty import format_value

NOT_ASKED = "not asked for (compile=False)"
"""`FitResult.compile_note` of a fit without ``compile=``."""


class FitWarning(RuntimeWarning):
    """A fit that ended unconverged or in a visibly poor minimum (with a hint what to try)."""


@attrs.frozen
class FitResult:
    """What `fit` returns.

    ``history``: the loss of each epoch of the kept run (for full-batch Adam and L-BFGS, the loss
    at the start of the epoch; for mini-batches, the mean over the epoch's batches).
    ``loss``: the full-data loss at the returned parameters (the kept run's best point).
    ``params``: name -> a detached copy of each trainable parameter (named by its state-dict
    path, or by its key in ``model.params`` where the model keeps them there). ``converged``:
    the run stopped on ``tol``, on ``patience``, or (L-BFGS) because the optimiser could make no
    further progress. ``restart``: which run was kept (0 is the run from the model's own
    starting values, or from the start itself with ``starts``/``grid``); ``start``: the index of
    the kept run's start in ``starts`` (or in the grid's points; 0 without either);
    ``restart_losses``: the final loss of every run, start by start (``len(starts) *
    (restarts + 1)`` of them). ``stop_reason``: why the kept run stopped, one of
    ``nc.fit_loop.STOP_REASONS`` (``"epochs"``, ``"tol"``, ``"patience"``, ``"no progress"``,
    ``"non-finite loss"``); ``best_epoch``: the epoch whose parameters were returned (0: the
    starting values; ``epochs_run``: the last step's).

    ``optimizer``: the optimiser used (``"lbfgs"`` or ``"adam"``) and ``choice``: why (what
    ``optimizer="auto"`` decided, or ``"given"``). ``stderr``: name -> standard error of each
    scalar constant; ``covariance`` [p, p] over every estimated scalar, named by
    ``covariance_names``; ``uncertainty``: the assumptions behind them, or why there are none
    (see `nc.uncertainty`). ``warnings``: the `FitWarning` messages the fit issued.

    ``compiled``: whether the training steps ran the compiled step (``fit(..., compile=...)``,
    `nc.compiled_step`); ``compile_note``: its first call's time, or why it was not used (not
    asked for, the model's or the call's form, or PyTorch's compiler failing).
    """

    history: list[float]
    loss: float
    params: dict[str, Tensor]
    epochs_run: int
    converged: bool
    seconds: float
    restart: int = 0
    restart_losses: tuple[float, ...] = ()
    start: int = 0
    stop_reason: str = "epochs"
    best_epoch: int = 0
    optimizer: str = "adam"
    choice: str = "given"
    stderr: dict[str, float] = attrs.field(factory=dict)
    covariance: Tensor | None = None
    covariance_names: tuple[str, ...] = ()
    uncertainty: str = ""
    warnings: tuple[str, ...] = ()
    compiled: bool = False
    compile_note: str = NOT_ASKED

    def interval(self, name: str, level: float = 0.95) -> tuple[float, float]:
        """The normal-approximation confidence interval ``value -+ z * stderr`` of a scalar constant."""
        if name not in self.stderr:
            raise CallError(f"no standard error for {name!r}", None,
                            hint=f"constants with one: {sorted(self.stderr)}; {self.uncertainty}")
        z = NormalDist().inv_cdf(0.5 + level / 2)
        value, se = float(self.params[name]), self.stderr[name]
        return value - z * se, value + z * se

    def summary(self) -> str:
        """One line per constant, ``G = 6.6741 ± 0.0031`` (the value alone where there is no
        standard error), then the optimiser, the loss and how the fit stopped."""
        lines = []
        for name, value in self.params.items():
            if value.numel() == 1:
                lines.append(f"{name} = {format_value(float(value), self.stderr.get(name))}")
            else:
                lines.append(f"{name} = tensor of shape {tuple(value.shape)}")
        state = "converged" if self.converged else "NOT converged"
        lines.append(f"optimizer {self.optimizer} ({self.choice}); loss {self.loss:.6g}; {self.epochs_run} epochs, "
                     f"stopped: {self.stop_reason} ({state})")
        if self.compile_note != NOT_ASKED:
            lines.append(f"compiled step: {'yes' if self.compiled else 'no'}, {self.compile_note}")
        if self.stderr:
            lines.append("± is one standard error: " + self.uncertainty)
        elif self.uncertainty:
            lines.append(self.uncertainty)
        return "\n".join(lines)

    def annotate(self, source: str) -> str:
        """``source`` (e.g. ``model.to_source()``) with ``; ± stderr`` after each top-level
        ``(define name value)`` of a constant that has a standard error."""
        out = []
        for line in source.splitlines():
            m = re.match(r"\(define\s+([^\s()]+)\s+[^()]*\)\s*$", line)
            if m and m.group(1) in self.stderr:
                line = f"{line}  ; ± {self.stderr[m.group(1)]:.2g}"
            out.append(line)
        return "\n".join(out) + ("\n" if source.endswith("\n") else "")
