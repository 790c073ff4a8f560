"""`fit_many`: K independent fits of one model at once, batched with ``torch.func.vmap``."""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, cast

import attrs
import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from nc.errors import CallError
from nc.fit_checks import check_bool, check_choice, check_count, check_dtype, check_mapping, check_number
from nc.fit_data import (
    FitData,
    Inputs,
    LossFn,
    Trainable,
    as_tensor,
    check_finite,
    loss_function,
    objective,
    prepare,
    trainable_parameters,
)
from nc.fit_optim import DEFAULT_EPOCHS, DEFAULT_LR, SCHEDULERS, FitOptions, make_optimizer, make_scheduler
from nc.progress import Progress


@attrs.frozen
class FitManyResult:
    """What `fit_many` returns: ``history`` [epochs_run, K], ``loss`` [K] (each set's loss at
    its returned parameters: the set's lowest finite loss seen), ``params`` name -> [K, *shape].
    ``stopped`` [K]: True for the sets whose loss became NaN or infinite (they stopped there and
    hold their best finite point)."""

    history: Tensor
    loss: Tensor
    params: dict[str, Tensor]
    epochs_run: int
    seconds: float
    stopped: Tensor | None = None


def _stack_initial(named: list[Trainable], params: Mapping[str, Any] | None,
                   k: int | None, dtype: torch.dtype | None) -> dict[str, Tensor]:
    """path -> [K, *shape] starting values: from ``params`` (by name or path) where given, else the
    model's, repeated."""
    path_of = {n: path for n, path, _ in named} | {path: path for _, path, _ in named}
    unknown = sorted(set(params or {}) - set(path_of))
    if unknown:
        raise CallError(f"params names no trainable parameter: {unknown}", None,
                        hint=f"trainable parameters: {[n for n, _, _ in named]}")
    given = {path_of[n]: _start(n, v) for n, v in (params or {}).items()}
    sizes = {v.shape[0] if v.dim() else None for v in given.values()} | ({k} if k else set())
    if len(sizes) != 1 or None in sizes:
        raise CallError(f"fit_many needs one number of parameter sets K; got {sorted(map(str, sizes))}", None,
                        hint="give every entry of params a leading axis of size K, or pass k=K")
    K = cast(int, sizes.pop())
    out = {}
    for n, path, p in named:
        v = given.get(path, p.detach().expand(K, *p.shape))
        if tuple(v.shape) != (K, *p.shape):
            raise CallError(f"params[{n!r}] has shape {tuple(v.shape)}, expected {(K, *p.shape)}", None)
        out[path] = v.to(device=p.device, dtype=dtype or p.dtype).clone()
    return out


def _start(name: str, value: Any) -> Tensor:
    """``params[name]`` as a finite tensor, or a CallError."""
    if isinstance(value, (str, bytes)):
        raise CallError(f"params[{name!r}] is {value!r}, not numbers", None)
    try:
        v = torch.as_tensor(value)
    except (OverflowError, TypeError, ValueError, RuntimeError) as e:
        raise CallError(f"params[{name!r}] cannot be a tensor: {e}", None) from None
    check_finite(f"params[{name!r}]", v)
    return v


def _clip_per_set(grads: list[Tensor], max_norm: float) -> None:
    """``clip_grad_norm_`` applied to each parameter set separately (axis 0 indexes the sets)."""
    k = grads[0].shape[0]
    norms = torch.stack([g.reshape(k, -1).norm(dim=1) for g in grads], dim=1).norm(dim=1)
    coef = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(coef.reshape(k, *([1] * (g.dim() - 1))))


def _dims(inputs: Inputs, in_dims: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """``in_dims`` (one int/None, or matching the structure of ``inputs``) as (args dims, kwargs dims)."""
    if isinstance(inputs, Mapping):
        dims = in_dims if isinstance(in_dims, Mapping) else dict.fromkeys(inputs, in_dims)
        return (), {str(k): dims[k] for k in inputs}
    if inputs is None:
        return (), {}
    count = 1 if isinstance(inputs, (Tensor, np.ndarray)) else len(inputs)
    return (tuple(in_dims) if isinstance(in_dims, Sequence) else (in_dims,) * count), {}


def fit_many(
    model: nn.Module,
    inputs: Inputs,
    target: Any,
    *,
    params: Mapping[str, Any] | None = None,
    k: int | None = None,
    in_dims: Any = 0,
    target_dim: int | None = 0,
    lr: float = DEFAULT_LR["adam"],
    epochs: int = DEFAULT_EPOCHS["adam"],
    dtype: torch.dtype | None = None,
    loss: str | LossFn = "mse",
    clip: float | None = None,
    scheduler: str | None = None,
    progress: bool = False,
    optimizer: str = "adam",
    optimizer_options: Mapping[str, Any] | None = None,
) -> FitManyResult:
    """Fit K independent parameter sets of ``model`` at once, each to its own data (or from its
    own start), with ``torch.func.vmap`` over ``torch.func.functional_call``.

    The result equals K separate ``fit(model_k, inputs_k, target_k, optimizer="adam", lr=lr,
    epochs=epochs, clip=clip, scheduler=scheduler)`` calls (full batch, no early stopping) up
    to rounding, and is much faster. The model itself is not changed. As in `fit`, each set
    ends on its lowest finite loss seen; a set whose loss becomes NaN or infinite keeps its
    best point and is reported in ``stopped`` (with a ``RuntimeWarning``). Arguments are
    checked as `fit` checks them (a `CallError` naming the bad one).

    Args:
        params: name -> [K, *shape] starting values; trainable parameters not named start at
            the model's value in every set. Without params, ``k`` (or the target) gives K.
        in_dims: the axis of the K sets in the inputs: one value for all, or a tuple/dict
            matching ``inputs``; None for an input shared by all sets.
        target_dim: the axis of the K sets in the target (None: one target shared by all,
            e.g. a multi-start fit from K starting points).
        optimizer: only ``"adam"``: L-BFGS's line search and curvature pairs would couple the
            sets; loop over `fit` for it.
        clip: the gradient-norm clip, applied to each set's own gradient norm.

    Example (100 logistic-growth curves ``y = C / (1 + (C / y0 - 1) exp(-r t))``, one rate
    ``r`` and capacity ``C`` each, ``t`` shared)::

        res = fit_many(logistic, {"t": t, "y0": y0s}, ys, params={"r": r0s, "C": c0s},
                       in_dims={"t": None, "y0": 0})
        res.params["r"]   # [100]
    """
    lr = check_number("lr", lr, positive=True)  # type: ignore[assignment]
    epochs = check_count("epochs", epochs)  # type: ignore[assignment]
    k = check_count("k", k, minimum=1, optional=True)
    if target_dim is not None:
        check_count("target_dim", target_dim)
    check_dtype(dtype)
    clip = check_number("clip", clip, positive=True, optional=True)
    check_choice("scheduler", scheduler, SCHEDULERS)
    check_bool("progress", progress)
    options = check_mapping("optimizer_options", optimizer_options)
    if optimizer != "adam":
        raise CallError(f"fit_many supports optimizer='adam' only, got {optimizer!r}", None,
                        hint="L-BFGS couples the sets through its line search: loop over fit() instead")
    named = trainable_parameters(model)
    device = named[0][2].device
    data = prepare(inputs, target, dtype, device, tensor_target=isinstance(loss, str))
    if params is None and k is None and isinstance(data.target, Tensor) and target_dim is not None:
        if data.target.dim() <= target_dim:
            raise CallError(f"target_dim={target_dim} but the target has rank {data.target.dim()}", None)
        k = data.target.shape[target_dim]
    stacked = _stack_initial(named, check_mapping("params", params), k, dtype)
    frozen = {n: as_tensor(t.detach(), dtype, device)
              for n, t in [*model.named_parameters(), *model.named_buffers()] if n not in stacked}
    arg_dims, kw_dims = _dims(inputs, in_dims)
    loss_fn = loss_function(loss)

    def one(p: dict[str, Tensor], args: tuple[Any, ...], kwargs: dict[str, Any], tgt: Any) -> Tensor:
        return objective(lambda *a, **kw: functional_call(model, {**frozen, **p}, a, kw),
                         FitData(args, kwargs, tgt), loss_fn)

    # One loss per set, summed. Set k's loss depends only on set k's parameters, so the gradient
    # of the sum with respect to the stacked tensors holds, in row k, exactly set k's own gradient.
    # Adam's update is elementwise (per-element moments and bias correction, a scalar learning
    # rate shared by all sets, as the cosine schedule is), so Adam on the stacked tensors is K
    # independent Adams. Clipping is done per set (_clip_per_set) for the same reason. (This is
    # about twice as fast as vmap(grad(...)) on CPU.)
    losses_of = vmap(one, in_dims=(0, arg_dims, kw_dims, target_dim))
    leaves = [v.requires_grad_() for v in stacked.values()]
    opts = FitOptions("adam", cast(float, lr), cast(int, epochs), clip=clip, scheduler=scheduler,
                      optimizer_options=options)
    opt, t0 = make_optimizer(leaves, opts), time.perf_counter()
    sched, bar = make_scheduler(opt, opts), Progress(opts.epochs, progress, "fit_many")
    best = _BestPerSet(stacked)
    history = []
    try:
        for epoch in range(opts.epochs):
            opt.zero_grad(set_to_none=True)
            losses = losses_of(stacked, data.args, data.kwargs, data.target)
            best.offer(losses.detach(), stacked)  # the loss of each set before this step
            losses.sum().backward()
            if clip is not None:
                _clip_per_set([leaf.grad for leaf in leaves], clip)  # type: ignore[misc]
            opt.step()
            if sched is not None:
                sched.step()
            history.append(losses.detach())
            if progress:  # a mean of the losses costs a device sync: only for the bar
                bar.update(epoch + 1, float(losses.detach().mean()))
            if bool(best.stopped.all()):
                break
        with torch.no_grad():
            best.offer(losses_of(stacked, data.args, data.kwargs, data.target), stacked)
    finally:
        bar.close()
    with torch.no_grad():
        best.restore(stacked)
        final = losses_of(stacked, data.args, data.kwargs, data.target)
    if bool(best.stopped.any()):
        warnings.warn(f"fit_many: {int(best.stopped.sum())} of {len(final)} sets reached a non-finite loss; "
                      "each holds its lowest finite loss (FitManyResult.stopped)", RuntimeWarning, stacklevel=2)
    hist = torch.stack(history) if history else torch.empty(0, len(final))
    names = {path: n for n, path, _ in named}
    return FitManyResult(hist, final.detach(), {names[p]: v.detach().clone() for p, v in stacked.items()},
                         len(history), time.perf_counter() - t0, best.stopped.clone())


class _BestPerSet:
    """Each set's lowest finite loss and its parameters; a set whose loss became non-finite is
    marked stopped (its parameters no longer change the kept values)."""

    def __init__(self, stacked: dict[str, Tensor]) -> None:
        first = next(iter(stacked.values()))
        self.loss = torch.full((first.shape[0],), float("inf"), dtype=torch.float64, device=first.device)
        self.values = {n: v.detach().clone() for n, v in stacked.items()}
        self.stopped = torch.zeros_like(self.loss, dtype=torch.bool)

    def offer(self, losses: Tensor, stacked: dict[str, Tensor]) -> None:
        losses = losses.detach().to(torch.float64)
        self.stopped |= ~torch.isfinite(losses)
        better = torch.isfinite(losses) & (losses <= self.loss) & ~self.stopped
        self.loss = torch.where(better, losses, self.loss)
        for n, v in stacked.items():
            mask = better.reshape(-1, *([1] * (v.dim() - 1)))
            self.values[n] = torch.where(mask, v.detach(), self.values[n])

    def restore(self, stacked: dict[str, Tensor]) -> None:
        for n, v in stacked.items():
            v.copy_(self.values[n])
