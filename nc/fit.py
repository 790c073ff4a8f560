"""`fit`: fitting the trainable constants of any ``torch.nn.Module`` to data.

Nothing here depends on how a module was made: a module compiled by nc, or any hand-written
``nn.Module`` whose unknowns are ``nn.Parameter``s, is fitted the same way (duck typing).

- `fit`: one model, Adam (mini-batch or full batch) or L-BFGS with a strong Wolfe line search,
  with restarts, multiple starts (a list or a grid of starting values), early stopping,
  gradient clipping and a cosine schedule.
- `nc.shooting.ShootingLoss`: multiple shooting for trajectory data, as an ``nn.Module``
  whose output is the loss, so that `fit` optimises the physics constants and the windows'
  initial states together (``fit(ShootingLoss(...), None, None)``).
- `nc.fit_many.fit_many`: K independent fits of one model at once, with ``torch.func.vmap``
  over ``torch.func.functional_call``; the same numbers as K separate `fit` calls with Adam.

The pieces, one idea each: `nc.fit_checks` (argument checks), `nc.fit_data` (data, losses),
`nc.fit_optim` (optimisers, schedules), `nc.fit_starts` (starts, grid, restarts),
`nc.fit_loop` (one run and its best point), `nc.progress` (the bar), `nc.fit_result`
(`FitResult`, `FitWarning`), `nc.fit_advice` (what ``optimizer="auto"`` picks, the warnings). `fit` trains the model in
place and leaves it at the returned parameters. Bad calls raise `nc.errors.CallError`.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, cast

import torch
from torch import Tensor, nn

from nc.errors import CallError
from nc.fit_advice import choose_optimizer, diagnose
from nc.fit_checks import (
    check_bool,
    check_choice,
    check_count,
    check_dtype,
    check_mapping,
    check_number,
    check_seed,
)
from nc.fit_compile import compiled_objective
from nc.fit_data import Inputs, LossFn, generator, loss_function, prepare, trainable_parameters
from nc.fit_loop import Best, RunResult, load, run
from nc.fit_optim import DEFAULT_EPOCHS, DEFAULT_LR, OPTIMIZERS, SCHEDULERS, FitOptions
from nc.fit_result import FitResult, FitWarning
from nc.fit_starts import StartValues, perturb, start_points
from nc.fit_stream import Stream, is_stream, run_stream
from nc.progress import Progress
from nc.uncertainty import estimate, none, residual_function

__all__ = ["DEFAULT_EPOCHS", "DEFAULT_LR", "FitResult", "FitWarning", "Inputs", "LossFn", "fit"]


def fit(
    model: nn.Module,
    inputs: Inputs,
    target: Any,
    *,
    optimizer: str = "auto",
    lr: float | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    dtype: torch.dtype | None = None,
    loss: str | LossFn = "mse",
    tol: float | None = None,
    patience: int | None = None,
    rel_improvement: float = 1e-8,
    restarts: int = 0,
    restart_scale: float = 0.5,
    seed: int | None = None,
    progress: bool = False,
    clip: float | None = None,
    scheduler: str | None = None,
    optimizer_options: Mapping[str, Any] | None = None,
    starts: Sequence[StartValues] | None = None,
    grid: Mapping[str, Any] | None = None,
    uncertainty: bool = True,
    compile: bool | str = False,
) -> FitResult:
    """Fit the trainable parameters of ``model`` so that ``model(inputs)`` matches ``target``.

    Args:
        model: any ``nn.Module``; its parameters with ``requires_grad`` are fitted, in place.
        inputs: dict (keyword arguments), tuple (positional), one tensor, or None.
        target: the data to match, or None when the model's output is itself the scalar loss
            (for example a `ShootingLoss`).
        inputs: may also be a data source, for fresh data every epoch: a callable
            ``epoch -> (inputs, target)`` or a torch ``DataLoader`` of ``(inputs, target)``
            batches (``target`` is then None; see `nc.fit_stream`).
        optimizer: ``"auto"`` (default), ``"adam"`` (default lr 1e-2, 1000 epochs) or
            ``"lbfgs"``, full batch with a strong Wolfe line search (default lr 1.0, 100
            epochs; an epoch is one ``LBFGS.step`` of up to ``max_iter=20`` iterations).
            ``"auto"`` takes L-BFGS, computed in float64, when the data are fixed and full
            batch, the trainable parameters are few (at most 64 scalars) and none belongs to a
            learned component, and no Adam option (``lr``, ``batch_size``, ``clip``,
            ``scheduler``) is given; Adam otherwise. ``FitResult.optimizer``/``choice`` and the
            progress bar say which and why. With ``dtype=None`` the model is left in its own
            dtype afterwards (its parameters rounded to it). ``optimizer_options`` go to the
            torch optimiser's constructor (``betas``, ``max_iter``, ``history_size``, ...).
        batch_size: mini-batches of this many samples, reshuffled every epoch (Adam only);
            None is full batch. Every input and the target must share the leading size.
        dtype: cast the model (in place) and the floating-point data, e.g. ``torch.float64``.
        loss: ``"mse"``, ``"mae"`` (both check that prediction and target shapes agree) or a
            callable ``(pred, target) -> scalar``.
        tol: stop (converged) as soon as an epoch's loss is below ``tol``.
        patience, rel_improvement: stop (converged) after ``patience`` epochs in a row without
            lowering the best loss by the relative amount ``rel_improvement``.
        restarts: extra runs after the first. The first run starts from the model's current
            values; restart ``r`` starts from ``p0 + restart_scale * |p0| * z`` for each
            starting value ``p0`` (``|p0|`` taken as 1 where it is 0), ``z ~ N(0, 1)`` drawn
            from ``seed``. The run with the lowest final loss is kept and loaded into the model.
        seed: seeds mini-batch shuffling and restarts (None: drawn from torch's global RNG).
        progress: show a progress bar on stderr (tqdm's; without tqdm installed, none).
        clip: clip the gradient norm (over all trainable parameters) to this value (Adam only).
        scheduler: ``"cosine"`` (cosine annealing of the learning rate over ``epochs``) or None.
        starts: a multi-start fit, for losses with local minima: a list of starting points, each
            a dict name -> starting value (by name as in ``FitResult.params``, or state-dict
            path; parameters a start does not name start at the model's current value). A full
            fit (with ``restarts`` perturbed runs of each) is made from every start, and the run
            with the lowest final loss is kept; a run whose loss is NaN (say a start where a
            ``sqrt`` of a negative number is taken) ranks below every other.
        grid: a scan, the same as ``starts`` at every point of the cartesian product of
            ``grid``'s values: ``grid={"omega": torch.linspace(0.5, 10, 20)}`` fits from 20
            starts; several names give every combination (the last varies fastest). For a
            vector parameter give its values as rows (a tensor [points, *shape]).
        uncertainty: compute standard errors and the covariance of the constants at the end
            (`nc.uncertainty`: Gauss-Newton, noise variance from the residuals; ``loss="mse"``
            with a target, or a model with a ``residuals()`` method such as `ShootingLoss`).
        compile: ``True`` trains with the compiled step (`nc.compiled_step`: the rollout of an
            nc model whose output is a rolled ``rk4``/``euler``, MSE, gradient by forward
            sensitivities w.r.t. at most 16 scalar constants, one loop generated as C, or
            ``torch.compile``'d where C does not apply; equal gradients); a model or call it does not
            handle (learned components, mini-batches, another loss) gets a `FitWarning` and the
            eager path. ``"auto"``: the compiled step where it applies, quietly. Default False.

    A fit that ends unconverged (its epochs ran out) or in a visibly poor minimum (the RMS
    residual above a quarter of the target's standard deviation) issues a `FitWarning` with a
    hint: more epochs, a multi-start ``grid=``/``starts=``, or rescaled constants.

    Every run ends on the best point it saw: the parameters with the lowest finite full-data
    loss are kept, and restored at the end, so a step into NaN (outside a formula's domain) or
    an unlucky last step never leaves the model worse than that. A run whose loss becomes NaN or
    infinite stops there (``FitResult.stop_reason == "non-finite loss"``, with a
    ``RuntimeWarning``). On ``KeyboardInterrupt`` the model is left at the best parameters seen
    so far (over all runs) and the interrupt is re-raised.

    Returns:
        A `FitResult`. Raises `CallError` for an argument of the wrong type or out of range
        (naming it), when the model has no trainable parameters, when an input or the target
        holds a NaN or an infinity (naming it and the index), when the prediction and target
        shapes differ, or when inputs disagree on the leading size needed for mini-batching.

    Example::

        >>> class Line(nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.k = nn.Parameter(torch.tensor(1.0))
        ...     def forward(self, x):
        ...         return self.k * x
        >>> x = torch.linspace(0, 1, 50, dtype=torch.float64)
        >>> r = fit(Line(), (x,), 2.5 * x, optimizer="lbfgs", dtype=torch.float64)
        >>> round(r.params["k"].item(), 6)
        2.5

    A multi-start fit of ``sin(w t)``, whose loss has a local minimum near every start::

        >>> class Wave(nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.w = nn.Parameter(torch.tensor(1.0))
        ...     def forward(self, t):
        ...         return torch.sin(self.w * t)
        >>> t = torch.linspace(0, 6, 200, dtype=torch.float64)
        >>> r = fit(Wave(), t, torch.sin(3 * t), optimizer="lbfgs", dtype=torch.float64,
        ...         grid={"w": torch.arange(0.5, 6, 0.5)})
        >>> round(r.params["w"].item(), 6), len(r.restart_losses)
        (3.0, 11)
    """
    args = dict(locals())
    stream = is_stream(inputs)
    if stream and target is not None:
        raise CallError("with a data source (a callable or a DataLoader) as inputs, target must be None", None,
                        hint="the source gives (inputs, target) for each epoch or batch")
    if not isinstance(model, nn.Module):
        trainable_parameters(model)  # the CallError for a model that is no module
    check_bool("uncertainty", uncertainty)
    choice = "given"
    if optimizer == "auto":
        optimizer, choice = choose_optimizer(model, args, stream)
        args["optimizer"] = optimizer
    opts, seed = _options(args)
    if stream and optimizer == "lbfgs":
        raise CallError("L-BFGS needs fixed data: with data drawn afresh each epoch use optimizer='adam'", None,
                        hint="or pass the data themselves (tensors) for a full-batch L-BFGS fit")
    original = None
    if choice.startswith("auto") and optimizer == "lbfgs" and dtype is None:
        original = next(iter(p.dtype for p in model.parameters()), None)
        dtype = torch.float64 if original != torch.float64 else None
    if dtype is not None:
        model.to(dtype)
    named = trainable_parameters(model)
    params = [p for _, _, p in named]
    if stream:
        source = Stream(inputs, dtype, params[0].device, isinstance(loss, str))
        data = None
    else:
        data = prepare(inputs, target, dtype, params[0].device, tensor_target=isinstance(loss, str))  # type: ignore[arg-type]
        if batch_size is not None:
            data.leading_size()
    grad, compile_note = compiled_objective(model, data, loss, compile, batch_size)
    loss_fn, gen = loss_function(loss), generator(seed)
    points = start_points(named, starts, grid)
    t0 = time.perf_counter()
    kept: tuple[RunResult, list[Tensor], int, int] | None = None
    finals: list[float] = []
    bad: list[str] = []
    best = Best()
    try:
        for s, point in enumerate(points):
            for r in range(restarts + 1):
                load(params, point if r == 0 else perturb(point, restart_scale, gen))
                label = _run_label(s, len(points), r, restarts) + f" [{optimizer}]"
                bar, best = Progress(opts.epochs, progress, label), Best()
                try:
                    if data is None:
                        result = run_stream(model, params, source, loss_fn, opts, bar)
                    else:
                        result = run(model, params, data, loss_fn, opts, gen, bar, best, grad)
                finally:
                    bar.close()
                finals.append(result.loss)
                if result.stop_reason == "non-finite loss":
                    bad.append(f"{_run_label(s, len(points), r, restarts)} at epoch {len(result.history)}")
                if kept is None or _better(result.loss, kept[0].loss):
                    kept = (result, [p.detach().clone() for p in params], r, s)
    except KeyboardInterrupt:
        _restore_best(params, kept, best, points[0])
        if original is not None:
            model.to(original)
        raise
    assert kept is not None
    result, values, restart, start = kept
    load(params, values)
    if bad:
        warnings.warn(f"{len(bad)} of {len(finals)} fit runs stopped on a non-finite loss ({'; '.join(bad[:3])}"
                      f"{', ...' if len(bad) > 3 else ''}); each ended on its lowest finite loss",
                      RuntimeWarning, stacklevel=2)
    if not uncertainty:
        unc = none("not computed (uncertainty=False)")
    elif data is None:
        unc = none("no standard errors: the data are drawn afresh each epoch")
    else:
        unc = estimate(model, named, residual_function(model, data, loss))
    said = diagnose(result, data, loss, opts, len(points), restarts)
    for message in said:
        warnings.warn(message, FitWarning, stacklevel=2)
    if original is not None:
        model.to(original)
    return FitResult(result.history, result.loss, {n: v for (n, _, _), v in zip(named, values)},
                     len(result.history), result.converged, time.perf_counter() - t0, restart, tuple(finals),
                     start, result.stop_reason, result.best_epoch, optimizer, choice, unc.stderr, unc.covariance,
                     unc.names, unc.note, tuple(said), compiled=grad is not None, compile_note=compile_note)


def _options(args: dict[str, Any]) -> tuple[FitOptions, int | None]:
    """Every keyword argument of `fit` checked (a CallError naming the first bad one), as
    `FitOptions` and the seed."""
    optimizer = check_choice("optimizer", args["optimizer"], ["auto", *OPTIMIZERS])
    lr = check_number("lr", args["lr"], positive=True, optional=True)
    epochs = check_count("epochs", args["epochs"], optional=True)
    batch_size = check_count("batch_size", args["batch_size"], minimum=1, optional=True)
    check_dtype(args["dtype"])
    tol = check_number("tol", args["tol"], optional=True)
    patience = check_count("patience", args["patience"], minimum=1, optional=True)
    rel = cast(float, check_number("rel_improvement", args["rel_improvement"]))
    check_count("restarts", args["restarts"])
    check_number("restart_scale", args["restart_scale"])
    seed = check_seed(args["seed"])
    check_bool("progress", args["progress"])
    clip = check_number("clip", args["clip"], positive=True, optional=True)
    scheduler = check_choice("scheduler", args["scheduler"], SCHEDULERS)
    optimizer_options = check_mapping("optimizer_options", args["optimizer_options"])
    if batch_size is not None and (optimizer == "lbfgs" or args["target"] is None):
        why = "L-BFGS is full batch" if optimizer == "lbfgs" else "without a target there are no samples"
        raise CallError(f"batch_size={batch_size} cannot be used: {why}", None, hint="use batch_size=None")
    if clip is not None and optimizer == "lbfgs":
        raise CallError("clip cannot be used with L-BFGS: its line search needs the true gradient", None,
                        hint="drop clip=, or use optimizer='adam'")
    opts = FitOptions(optimizer, DEFAULT_LR[optimizer] if lr is None else lr,
                      DEFAULT_EPOCHS[optimizer] if epochs is None else epochs, batch_size, tol, patience,
                      rel, clip, scheduler, optimizer_options)
    return opts, seed


def _restore_best(params: list[nn.Parameter], kept: tuple[RunResult, list[Tensor], int, int] | None,
                  current: Best, first: list[Tensor]) -> None:
    """On an interrupt: the best parameters seen (of the finished runs and the current one), or
    the first start's values when no finite loss was seen."""
    candidates = [(current.loss, current.values)] if current.values is not None else []
    if kept is not None and math.isfinite(kept[0].loss):
        candidates.append((kept[0].loss, kept[1]))
    load(params, min(candidates, key=lambda c: c[0])[1] if candidates else first)  # type: ignore[arg-type]


def _run_label(start: int, n_starts: int, restart: int, restarts: int) -> str:
    """The progress bar's label: ``fit``, ``fit 2/5`` (restarts), ``fit start 3/20`` (starts), or both."""
    label = f"fit start {start + 1}/{n_starts}" if n_starts > 1 else "fit"
    return f"{label} {restart + 1}/{restarts + 1}" if restarts else label


def _better(a: float, b: float) -> bool:
    """``a < b`` with NaN worse than anything."""
    return not math.isnan(a) and (math.isnan(b) or a < b)
