"""Fitting the trainable constants of any ``torch.nn.Module`` to data.

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

Conventions: ``inputs`` is a dict (keyword arguments), a tuple (positional arguments), a single
tensor, or None (no arguments). ``target=None`` means the model's output is itself the scalar
loss to minimise. `fit` trains the model in place and leaves it at the returned parameters.
Bad calls raise `nc.errors.CallError`.
"""

from __future__ import annotations

import itertools
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TextIO, cast

import attrs
import numpy as np
import torch
from torch import Tensor, nn

from nc.errors import CallError

__all__ = ["FitResult", "fit"]

LossFn = Callable[[Any, Any], Tensor]
Inputs = Mapping[str, Any] | Sequence[Any] | Tensor | None

DEFAULT_LR = {"adam": 1e-2, "lbfgs": 1.0}
DEFAULT_EPOCHS = {"adam": 1000, "lbfgs": 100}


@attrs.frozen
class FitResult:
    """What `fit` returns.

    ``history``: the loss of each epoch of the kept run (for full-batch Adam and L-BFGS, the loss
    at the start of the epoch; for mini-batches, the mean over the epoch's batches).
    ``loss``: the full-data loss at the returned parameters. ``params``: name -> a detached copy
    of each trainable parameter (named by its state-dict path, or by its key in ``model.params``
    where the model keeps them there, as nc's modules do: ``"G"``, not ``"params.G"``). ``converged``: the run stopped on ``tol``, on ``patience``, or
    (L-BFGS) because the optimiser could make no further progress. ``restart``: which run was
    kept (0 is the run from the model's own starting values, or from the start itself with
    ``starts``/``grid``); ``start``: the index of the kept run's start in ``starts`` (or in the
    grid's points; 0 without either); ``restart_losses``: the final loss of every run, start by
    start (``len(starts) * (restarts + 1)`` of them).
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


@attrs.frozen
class _Data:
    """Prepared call arguments and target; ``take`` selects rows for a mini-batch."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    target: Any

    def call(self, model: Callable[..., Any]) -> Any:
        return model(*self.args, **self.kwargs)

    def leading_size(self) -> int:
        """The common leading size of every tensor of rank >= 1, or a CallError."""
        named = [(f"input {i}", a) for i, a in enumerate(self.args)]
        named += [(f"input {k!r}", v) for k, v in self.kwargs.items()] + [("target", self.target)]
        sizes = {n: t.shape[0] for n, t in named if isinstance(t, Tensor) and t.dim() > 0}
        if len(set(sizes.values())) > 1:
            listing = ", ".join(f"{n}: {s}" for n, s in sizes.items())
            raise CallError(
                f"mini-batching needs every input and the target to share one leading size; got {listing}",
                None,
                hint="give every per-sample tensor the samples on its first axis, or use batch_size=None",
            )
        if not sizes:
            raise CallError("mini-batching needs tensors with a leading sample axis", None,
                            hint="use batch_size=None (full batch)")
        return next(iter(sizes.values()))

    def take(self, idx: Tensor) -> _Data:
        def pick(t: Any) -> Any:
            return t[idx.to(t.device)] if isinstance(t, Tensor) and t.dim() > 0 else t

        return _Data(tuple(pick(a) for a in self.args), {k: pick(v) for k, v in self.kwargs.items()},
                     pick(self.target))


def _as_tensor(x: Any, dtype: torch.dtype | None, device: torch.device | None) -> Any:
    """Tensors and numpy arrays become tensors on ``device`` (floats cast to ``dtype``)."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, Tensor):
        return x
    cast = dtype if (dtype is not None and x.is_floating_point()) else None
    return x.to(device=device, dtype=cast)


def _prepare(inputs: Inputs, target: Any, dtype: torch.dtype | None,
             device: torch.device | None) -> _Data:
    conv = lambda v: _as_tensor(v, dtype, device)  # noqa: E731
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    if inputs is None:
        args, kwargs = (), {}
    elif isinstance(inputs, Mapping):
        args, kwargs = (), {str(k): conv(v) for k, v in inputs.items()}
    elif isinstance(inputs, (Tensor, np.ndarray)):
        args, kwargs = (conv(inputs),), {}
    else:
        args, kwargs = tuple(conv(v) for v in inputs), {}
    return _Data(args, kwargs, conv(target))


def _check_shapes(pred: Any, target: Tensor) -> None:
    if not isinstance(pred, Tensor):
        raise CallError(f"the model returned {type(pred).__name__}, not a tensor", None,
                        hint="with a tuple output, pass loss=callable(pred, target)")
    try:
        both = torch.broadcast_shapes(pred.shape, target.shape)
    except RuntimeError:
        both = None
    if both is None or both.numel() != pred.numel() or both.numel() != target.numel():
        raise CallError(
            f"prediction shape {tuple(pred.shape)} and target shape {tuple(target.shape)} differ",
            None,
            hint="reshape the target to the prediction's shape (broadcasting [N] against [N, 1] "
            "would compare every prediction with every target)",
        )


def _builtin_loss(name: str) -> LossFn:
    reduce = {"mse": lambda d: d.square().mean(), "mae": lambda d: d.abs().mean()}
    if name not in reduce:
        raise CallError(f"unknown loss {name!r}", None, hint="use 'mse', 'mae' or a callable(pred, target)")

    def loss(pred: Any, target: Any) -> Tensor:
        _check_shapes(pred, target)
        return reduce[name](pred - target)

    return loss


def _loss_fn(loss: str | LossFn) -> LossFn:
    return _builtin_loss(loss) if isinstance(loss, str) else loss


def _objective(model: Callable[..., Any], data: _Data, loss: LossFn) -> Tensor:
    """The scalar to minimise: ``loss(model(inputs), target)``, or the output itself without a target."""
    out = data.call(model)
    if data.target is not None:
        return loss(out, data.target)
    if not isinstance(out, Tensor) or out.numel() != 1:
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise CallError(f"without a target the model must return a scalar loss; it returned {shape}",
                        None, hint="pass target=..., or return a scalar (as ShootingLoss does)")
    return out.reshape(())


# ----------------------------------------------------------------------------------------------
# Progress bar (stderr, no dependency)


class _Progress:
    """A one-line text bar, redrawn at most ten times a second."""

    def __init__(self, total: int, enabled: bool, label: str = "fit", stream: TextIO | None = None):
        self.total, self.enabled, self.label = total, enabled, label
        self.stream = stream if stream is not None else sys.stderr
        self._last = -1.0

    def update(self, done: int, loss: float) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if done < self.total and now - self._last < 0.1:
            return
        self._last = now
        filled = int(30 * done / max(self.total, 1))
        self.stream.write(f"\r{self.label} [{'#' * filled:<30}] {done}/{self.total} loss {loss:.4e}")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


# ----------------------------------------------------------------------------------------------
# fit


@attrs.frozen
class _Options:
    optimizer: str
    lr: float
    epochs: int
    batch_size: int | None
    tol: float | None
    patience: int | None
    rel_improvement: float
    clip: float | None
    scheduler: str | None
    optimizer_options: dict[str, Any]


@attrs.frozen
class _Run:
    history: list[float]
    loss: float
    converged: bool


def _trainable(model: nn.Module) -> list[tuple[str, str, nn.Parameter]]:
    """(name, state-dict path, parameter) of each trainable parameter. The name is the path, or the
    key in ``model.params`` where the model keeps its parameters there (nc modules: ``"G"`` rather
    than ``"params.G"``)."""
    items = getattr(getattr(model, "params", None), "items", None)
    short = {id(p): str(k) for k, p in items()} if callable(items) else {}
    named = [(short.get(id(p), n), n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise CallError(f"{type(model).__name__} has no trainable parameters", None,
                        hint="compile with params={...} or trainable=[...], or set requires_grad=True")
    return named


def _make_optimizer(params: Sequence[Tensor], opts: _Options) -> torch.optim.Optimizer:
    if opts.optimizer == "adam":
        return torch.optim.Adam(params, lr=opts.lr, **opts.optimizer_options)
    double = params[0].dtype == torch.float64
    # history_size 100 (torch's default): a short memory stalled the Lotka-Volterra shooting fits.
    # max_eval is set so that it never binds: an early stop of a step then means convergence.
    lbfgs: dict[str, Any] = {"max_iter": 20, "max_eval": 500, "history_size": 100,
                             "line_search_fn": "strong_wolfe", "tolerance_grad": 1e-12 if double else 1e-7,
                             "tolerance_change": 0.0 if double else 1e-9}
    return torch.optim.LBFGS(params, lr=opts.lr, **{**lbfgs, **opts.optimizer_options})


def _make_scheduler(opt: torch.optim.Optimizer, opts: _Options) -> Any:
    if opts.scheduler is None:
        return None
    if opts.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=opts.epochs)
    raise CallError(f"unknown scheduler {opts.scheduler!r}", None, hint="use 'cosine' or None")


def _adam_epoch(model: nn.Module, opt: torch.optim.Optimizer, params: Sequence[Tensor], data: _Data,
                loss: LossFn, opts: _Options, gen: torch.Generator) -> tuple[float, bool]:
    """One epoch; returns (epoch loss, whether to stop now because of ``tol`` or a non-finite loss)."""
    if opts.batch_size is None:
        batches: list[_Data] = [data]
    else:
        n = data.leading_size()
        batches = [data.take(i) for i in torch.randperm(n, generator=gen).split(opts.batch_size)]
    total, count = 0.0, 0
    for batch in batches:
        opt.zero_grad(set_to_none=True)
        value = _objective(model, batch, loss)
        value.backward()
        v = value.item()
        if opts.batch_size is None and (not math.isfinite(v) or (opts.tol is not None and v < opts.tol)):
            return v, True  # stop before stepping: the parameters are those that gave v
        if opts.clip is not None:
            nn.utils.clip_grad_norm_(params, opts.clip)
        opt.step()
        weight = 1 if opts.batch_size is None else batch.target.shape[0]
        total, count = total + v * weight, count + weight
    mean = total / count
    return mean, not math.isfinite(mean) or (opts.tol is not None and mean < opts.tol)


def _lbfgs_epoch(model: nn.Module, opt: torch.optim.Optimizer, params: Sequence[Tensor], data: _Data,
                 loss: LossFn, opts: _Options) -> tuple[float, bool]:
    """One L-BFGS step (up to ``max_iter`` iterations); stops when L-BFGS stopped on its own tolerances."""

    def closure() -> Tensor:
        opt.zero_grad(set_to_none=True)
        value = _objective(model, data, loss)
        value.backward()
        if torch.isnan(value):
            # A NaN trial point (outside a formula's domain) must read as infinitely bad: the
            # strong Wolfe line search then steps back instead of wandering on to NaN parameters.
            return torch.full_like(value, math.inf).detach()
        return value

    state = opt.state[params[0]]
    before = state.get("n_iter", 0)
    v = float(cast(Tensor, opt.step(closure)).detach())  # type: ignore[arg-type]
    # L-BFGS ran fewer than max_iter iterations only if a tolerance stopped it (max_eval is not binding).
    no_progress = state.get("n_iter", 0) - before < opt.param_groups[0]["max_iter"]
    return v, no_progress or not math.isfinite(v) or (opts.tol is not None and v < opts.tol)


def _run(model: nn.Module, params: Sequence[Tensor], data: _Data, loss: LossFn, opts: _Options,
         gen: torch.Generator, bar: _Progress) -> _Run:
    opt = _make_optimizer(params, opts)
    sched = _make_scheduler(opt, opts)
    history: list[float] = []
    best, stale, converged = math.inf, 0, False
    for epoch in range(opts.epochs):
        if opts.optimizer == "adam":
            v, stop = _adam_epoch(model, opt, params, data, loss, opts, gen)
        else:
            v, stop = _lbfgs_epoch(model, opt, params, data, loss, opts)
        stuck = opts.optimizer == "lbfgs" and bool(history) and history[-1] - v <= 1e-12 * abs(history[-1])
        history.append(v)
        bar.update(epoch + 1, v)
        if stop or stuck:
            converged = math.isfinite(v)
            break
        if sched is not None:
            sched.step()
        stale = 0 if v < best * (1 - opts.rel_improvement) else stale + 1
        best = min(best, v)
        if opts.patience is not None and stale >= opts.patience:
            converged = True
            break
    with torch.no_grad():
        final = _objective(model, data, loss).item()
    return _Run(history, final, converged and math.isfinite(final))


def _perturb(starts: list[Tensor], scale: float, gen: torch.Generator) -> list[Tensor]:
    """``p0 + scale * |p0| * z`` with ``z ~ N(0, 1)`` (``|p0|`` taken as 1 where ``p0`` is 0)."""
    out = []
    for p0 in starts:
        z = torch.randn(p0.shape, generator=gen, dtype=torch.float64).to(p0)
        size = torch.where(p0 != 0, p0.abs(), torch.ones_like(p0))
        out.append(p0 + scale * size * z)
    return out


def _generator(seed: int | None) -> torch.Generator:
    seed = int(torch.randint(0, 2**62, ())) if seed is None else seed  # None: follow torch.manual_seed
    return torch.Generator().manual_seed(seed)


def _validate(optimizer: str, batch_size: int | None, target: Any, restarts: int, clip: float | None) -> None:
    if optimizer not in DEFAULT_LR:
        raise CallError(f"unknown optimizer {optimizer!r}", None, hint="use 'adam' or 'lbfgs'")
    if batch_size is not None and (optimizer == "lbfgs" or target is None):
        why = "L-BFGS is full batch" if optimizer == "lbfgs" else "without a target there are no samples"
        raise CallError(f"batch_size={batch_size} cannot be used: {why}", None, hint="use batch_size=None")
    if batch_size is not None and batch_size < 1:
        raise CallError(f"batch_size must be positive, got {batch_size}", None)
    if restarts < 0:
        raise CallError(f"restarts must be >= 0, got {restarts}", None)
    if clip is not None and optimizer == "lbfgs":
        raise CallError("clip cannot be used with L-BFGS: its line search needs the true gradient", None,
                        hint="drop clip=, or use optimizer='adam'")


# ----------------------------------------------------------------------------------------------
# Multiple starts


StartValues = Mapping[str, Any]


def _grid_points(grid: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The cartesian product of ``grid``'s values, one dict per point (the last name varies fastest)."""
    names = list(grid)
    axes = [list(v.unbind(0)) if isinstance(v, Tensor) else list(v) for v in grid.values()]
    empty = [n for n, a in zip(names, axes) if not a]
    if empty:
        raise CallError(f"grid[{empty[0]!r}] has no values", None)
    return [dict(zip(names, point)) for point in itertools.product(*axes)]


def _start_value(name: str, value: Any, p: Tensor) -> Tensor:
    """``value`` as a starting value for parameter ``p`` (its dtype, device and shape)."""
    v = torch.as_tensor(value, dtype=p.dtype, device=p.device)
    try:
        return v.expand(p.shape).clone()
    except RuntimeError:
        raise CallError(f"the starting value of {name!r} has shape {tuple(v.shape)}, but the parameter has "
                        f"shape {tuple(p.shape)}", None) from None


def _start_points(named: list[tuple[str, str, nn.Parameter]], starts: Sequence[StartValues] | None,
                  grid: Mapping[str, Any] | None) -> list[list[Tensor]]:
    """The starting values of every start, one tensor per trainable parameter: each start's named
    values (by name or state-dict path), the model's current value for parameters a start does
    not name. Without ``starts`` and ``grid``: one start, the model's current values."""
    if starts is not None and grid is not None:
        raise CallError("starts= and grid= cannot both be given", None,
                        hint="put the grid's points in starts=, or use grid= alone")
    if isinstance(starts, Mapping):
        raise CallError("starts= takes a list of dicts, one per start", None,
                        hint="starts=[{...}, ...], or grid={name: values} to scan values")
    points: list[StartValues] = [{}] if starts is None else list(starts)
    if grid is not None:
        points = list(_grid_points(grid))
    if not points:
        raise CallError("starts= is empty", None, hint="give at least one start, or leave starts=None")
    path_of = {n: path for n, path, _ in named} | {path: path for _, path, _ in named}
    unknown = sorted({str(k) for point in points for k in point} - set(path_of))
    if unknown:
        raise CallError(f"starting values name no trainable parameter: {unknown}", None,
                        hint=f"trainable parameters: {[n for n, _, _ in named]}")
    out = []
    for point in points:
        given = {path_of[str(k)]: v for k, v in point.items()}
        out.append([_start_value(n, given[path], p) if path in given else p.detach().clone()
                    for n, path, p in named])
    return out


def fit(
    model: nn.Module,
    inputs: Inputs,
    target: Any,
    *,
    optimizer: str = "adam",
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
) -> FitResult:
    """Fit the trainable parameters of ``model`` so that ``model(inputs)`` matches ``target``.

    Args:
        model: any ``nn.Module``; its parameters with ``requires_grad`` are fitted, in place.
        inputs: dict (keyword arguments), tuple (positional), one tensor, or None.
        target: the data to match, or None when the model's output is itself the scalar loss
            (for example a `ShootingLoss`).
        optimizer: ``"adam"`` (default lr 1e-2, 1000 epochs) or ``"lbfgs"``, full batch with a
            strong Wolfe line search (default lr 1.0, 100 epochs; an epoch is one
            ``LBFGS.step`` of up to ``max_iter=20`` iterations). ``optimizer_options`` go to the
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
        progress: draw a text progress bar on stderr.
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

    Returns:
        A `FitResult`. Raises `CallError` when the model has no trainable parameters, when the
        prediction and target shapes differ, or when inputs disagree on the leading size
        needed for mini-batching.

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
    _validate(optimizer, batch_size, target, restarts, clip)
    if dtype is not None:
        model.to(dtype)
    named = _trainable(model)
    params = [p for _, _, p in named]
    opts = _Options(optimizer, DEFAULT_LR[optimizer] if lr is None else lr,
                    DEFAULT_EPOCHS[optimizer] if epochs is None else epochs, batch_size, tol, patience,
                    rel_improvement, clip, scheduler, dict(optimizer_options or {}))
    data = _prepare(inputs, target, dtype, params[0].device)
    if batch_size is not None:
        data.leading_size()
    loss_fn, gen = _loss_fn(loss), _generator(seed)
    points = _start_points(named, starts, grid)
    t0 = time.perf_counter()
    best: tuple[_Run, list[Tensor], int, int] | None = None
    finals: list[float] = []
    for s, point in enumerate(points):
        for r in range(restarts + 1):
            with torch.no_grad():
                for p, v in zip(params, point if r == 0 else _perturb(point, restart_scale, gen)):
                    p.copy_(v)
            bar = _Progress(opts.epochs, progress, _run_label(s, len(points), r, restarts))
            run = _run(model, params, data, loss_fn, opts, gen, bar)
            bar.close()
            finals.append(run.loss)
            if best is None or _better(run.loss, best[0].loss):
                best = (run, [p.detach().clone() for p in params], r, s)
    run, values, kept, start = best  # type: ignore[misc]
    with torch.no_grad():
        for p, v in zip(params, values):
            p.copy_(v)
    return FitResult(run.history, run.loss, {n: v for (n, _, _), v in zip(named, values)}, len(run.history),
                     run.converged, time.perf_counter() - t0, kept, tuple(finals), start)


def _run_label(start: int, n_starts: int, restart: int, restarts: int) -> str:
    """The progress bar's label: ``fit``, ``fit 2/5`` (restarts), ``fit start 3/20`` (starts), or both."""
    label = f"fit start {start + 1}/{n_starts}" if n_starts > 1 else "fit"
    return f"{label} {restart + 1}/{restarts + 1}" if restarts else label


def _better(a: float, b: float) -> bool:
    """``a < b`` with NaN worse than anything."""
    return not math.isnan(a) and (math.isnan(b) or a < b)
