"""`fit_many`: K independent fits of one model at once, batched with ``torch.func.vmap``."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, cast

import attrs
import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from nc.errors import CallError
from nc.fit import (
    DEFAULT_EPOCHS,
    DEFAULT_LR,
    Inputs,
    LossFn,
    _as_tensor,
    _Data,
    _loss_fn,
    _make_optimizer,
    _make_scheduler,
    _objective,
    _Options,
    _prepare,
    _Progress,
    _trainable,
)


@attrs.frozen
class FitManyResult:
    """What `fit_many` returns: ``history`` [epochs_run, K], ``loss`` [K] (each set's loss at
    its final parameters), ``params`` name -> [K, *shape]."""

    history: Tensor
    loss: Tensor
    params: dict[str, Tensor]
    epochs_run: int
    seconds: float


# ----------------------------------------------------------------------------------------------
# Data and losses




# ----------------------------------------------------------------------------------------------
# fit_many


def _stack_initial(named: list[tuple[str, str, nn.Parameter]], params: Mapping[str, Any] | None,
                   k: int | None, dtype: torch.dtype | None) -> dict[str, Tensor]:
    """path -> [K, *shape] starting values: from ``params`` (by name or path) where given, else the
    model's, repeated."""
    path_of = {n: path for n, path, _ in named} | {path: path for _, path, _ in named}
    unknown = sorted(set(params or {}) - set(path_of))
    if unknown:
        raise CallError(f"params names no trainable parameter: {unknown}", None,
                        hint=f"trainable parameters: {[n for n, _, _ in named]}")
    given = {path_of[n]: torch.as_tensor(v) for n, v in (params or {}).items()}
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
    to rounding, and is much faster. The model itself is not changed.

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
    if optimizer != "adam":
        raise CallError(f"fit_many supports optimizer='adam' only, got {optimizer!r}", None,
                        hint="L-BFGS couples the sets through its line search: loop over fit() instead")
    named = _trainable(model)
    device = named[0][2].device
    if params is None and k is None and target is not None and target_dim is not None:
        k = torch.as_tensor(target).shape[target_dim]
    stacked = _stack_initial(named, params, k, dtype)
    frozen = {n: _as_tensor(t.detach(), dtype, device)
              for n, t in [*model.named_parameters(), *model.named_buffers()] if n not in stacked}
    data = _prepare(inputs, target, dtype, device)
    arg_dims, kw_dims = _dims(inputs, in_dims)
    loss_fn = _loss_fn(loss)

    def one(p: dict[str, Tensor], args: tuple[Any, ...], kwargs: dict[str, Any], tgt: Any) -> Tensor:
        return _objective(lambda *a, **kw: functional_call(model, {**frozen, **p}, a, kw),
                          _Data(args, kwargs, tgt), loss_fn)

    # One loss per set, summed. Set k's loss depends only on set k's parameters, so the gradient
    # of the sum with respect to the stacked tensors holds, in row k, exactly set k's own gradient.
    # Adam's update is elementwise (per-element moments and bias correction, a scalar learning
    # rate shared by all sets, as the cosine schedule is), so Adam on the stacked tensors is K
    # independent Adams. Clipping is done per set (_clip_per_set) for the same reason. (This is
    # about twice as fast as vmap(grad(...)) on CPU.)
    losses_of = vmap(one, in_dims=(0, arg_dims, kw_dims, target_dim))
    leaves = [v.requires_grad_() for v in stacked.values()]
    opts = _Options("adam", lr, epochs, None, None, None, 0.0, clip, scheduler, dict(optimizer_options or {}))
    opt, t0 = _make_optimizer(leaves, opts), time.perf_counter()
    sched, bar = _make_scheduler(opt, opts), _Progress(epochs, progress, "fit_many")
    history = []
    for epoch in range(epochs):
        opt.zero_grad(set_to_none=True)
        losses = losses_of(stacked, data.args, data.kwargs, data.target)
        losses.sum().backward()
        if clip is not None:
            _clip_per_set([leaf.grad for leaf in leaves], clip)  # type: ignore[misc]
        opt.step()
        if sched is not None:
            sched.step()
        history.append(losses.detach())
        if progress:
            bar.update(epoch + 1, float(losses.mean()))
    bar.close()
    with torch.no_grad():
        final = losses_of(stacked, data.args, data.kwargs, data.target)
    hist = torch.stack(history) if history else torch.empty(0, len(final))
    names = {path: n for n, path, _ in named}
    return FitManyResult(hist, final.detach(), {names[p]: v.detach().clone() for p, v in stacked.items()}, epochs,
                         time.perf_counter() - t0)
