"""The data side of fitting: call arguments and target (`FitData`), their checks, and losses.

Conventions shared by `nc.fit`, `nc.fit_many` and `nc.ShootingLoss`: ``inputs`` is a dict
(keyword arguments), a tuple or list (positional arguments), a single tensor, or None (no
arguments). ``target=None`` means the model's output is itself the scalar loss to minimise.
Data are checked before a fit starts: a NaN or infinity in any input or target tensor is a
`CallError` that names the tensor and the index of its first bad element, as is a tensor on the
meta device (it has no values to fit).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import numpy as np
import torch
from torch import Tensor, nn

from nc.errors import CallError

__all__ = [
    "FitData",
    "Inputs",
    "LossFn",
    "Trainable",
    "as_tensor",
    "check_finite",
    "check_shapes",
    "generator",
    "loss_function",
    "objective",
    "prepare",
    "trainable_parameters",
]

LossFn = Callable[[Any, Any], Tensor]
Inputs = Mapping[str, Any] | Sequence[Any] | Tensor | None
#: (name shown to users, state-dict path, parameter) of one trainable parameter
Trainable = tuple[str, str, nn.Parameter]


@attrs.frozen
class FitData:
    """Prepared call arguments and target; ``take`` selects rows for a mini-batch."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    target: Any

    def call(self, model: Callable[..., Any]) -> Any:
        return model(*self.args, **self.kwargs)

    def named(self) -> list[tuple[str, Any]]:
        """(name, value) of every input and the target, named as error messages show them."""
        out = [(f"input {i}", a) for i, a in enumerate(self.args)]
        return out + [(f"input {k!r}", v) for k, v in self.kwargs.items()] + [("target", self.target)]

    def leading_size(self) -> int:
        """The common leading size of every tensor of rank >= 1, or a CallError."""
        sizes = {n: t.shape[0] for n, t in self.named() if isinstance(t, Tensor) and t.dim() > 0}
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

    def take(self, idx: Tensor) -> FitData:
        def pick(t: Any) -> Any:
            return t[idx.to(t.device)] if isinstance(t, Tensor) and t.dim() > 0 else t

        return FitData(tuple(pick(a) for a in self.args), {k: pick(v) for k, v in self.kwargs.items()},
                       pick(self.target))


def as_tensor(x: Any, dtype: torch.dtype | None, device: torch.device | None, name: str = "a tensor") -> Any:
    """Tensors and numpy arrays become tensors on ``device`` (floats cast to ``dtype``); anything
    else is returned as it is. ``name`` names ``x`` in errors."""
    if isinstance(x, np.ndarray):
        if x.dtype == object or x.dtype.kind in "USc":
            raise CallError(f"{name} is a numpy array of dtype {x.dtype}, which cannot be fitted", None,
                            hint="pass real numbers (a float array or tensor)")
        x = torch.from_numpy(x)
    if not isinstance(x, Tensor):
        return x
    if x.is_meta:
        raise CallError(f"{name} is on the meta device: it has no values to fit", None,
                        hint="pass tensors on the CPU or an accelerator")
    cast = dtype if (dtype is not None and x.is_floating_point()) else None
    return x.to(device=device, dtype=cast)


def check_finite(name: str, value: Any) -> None:
    """A CallError unless ``value`` (a tensor or a Python number) holds only finite values."""
    if isinstance(value, Tensor):
        if value.is_floating_point() or value.is_complex():
            bad = ~torch.isfinite(value)
            if bool(bad.any()):
                first = [int(i) for i in bad.nonzero()[0]]
                index = first[0] if len(first) == 1 else tuple(first)
                raise CallError(f"{name} holds {value[tuple(first)].item()} at index {index}: the data must be "
                                "finite", None, hint="drop or repair the rows with NaN or infinite values")
    elif isinstance(value, float) and not np.isfinite(value):
        raise CallError(f"{name} is {value}: the data must be finite", None)


def prepare(inputs: Inputs, target: Any, dtype: torch.dtype | None, device: torch.device | None,
            *, tensor_target: bool = True) -> FitData:
    """The call arguments and target as a `FitData` of tensors on ``device``, checked finite.
    ``tensor_target``: the target must be a tensor or array (for the built-in losses)."""
    conv = lambda v, name: as_tensor(v, dtype, device, name)  # noqa: E731
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    if inputs is None:
        args, kwargs = (), {}
    elif isinstance(inputs, Mapping):
        args, kwargs = (), {str(k): conv(v, f"input {str(k)!r}") for k, v in inputs.items()}
    elif isinstance(inputs, (Tensor, np.ndarray)):
        args, kwargs = (conv(inputs, "input 0"),), {}
    elif isinstance(inputs, (tuple, list)):
        args, kwargs = tuple(conv(v, f"input {i}") for i, v in enumerate(inputs)), {}
    else:
        raise CallError(f"inputs of type {type(inputs).__name__} cannot be passed to the model", None,
                        hint="use a dict (keyword arguments), a tuple (positional), one tensor, or None")
    if tensor_target and target is not None and not isinstance(target, (Tensor, np.ndarray)):
        raise CallError(f"the target is a {type(target).__name__}, not a tensor", None,
                        hint="pass torch.tensor(...) or a numpy array (or a callable loss= for other targets)")
    data = FitData(args, kwargs, conv(target, "the target"))
    for name, value in data.named():
        check_finite(name, value)
    return data


def check_shapes(pred: Any, target: Tensor) -> None:
    """A CallError unless ``pred`` is a tensor with the target's elements (broadcasting only
    size-1 axes, never [N] against [N, 1])."""
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


_REDUCE: dict[str, Callable[[Tensor], Tensor]] = {"mse": lambda d: d.square().mean(), "mae": lambda d: d.abs().mean()}


def loss_function(loss: Any) -> LossFn:
    """``"mse"``, ``"mae"`` (both checking shapes) or a callable ``(pred, target) -> scalar``."""
    if callable(loss):
        return loss  # type: ignore[no-any-return]
    if not isinstance(loss, str) or loss not in _REDUCE:
        raise CallError(f"unknown loss {loss!r}", None, hint="use 'mse', 'mae' or a callable(pred, target)")
    reduce = _REDUCE[loss]

    def builtin(pred: Any, target: Any) -> Tensor:
        check_shapes(pred, target)
        return reduce(pred - target)

    return builtin


def objective(model: Callable[..., Any], data: FitData, loss: LossFn) -> Tensor:
    """The scalar to minimise: ``loss(model(inputs), target)``, or the output itself without a target."""
    out = data.call(model)
    if data.target is not None:
        return loss(out, data.target)
    if not isinstance(out, Tensor) or out.numel() != 1:
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise CallError(f"without a target the model must return a scalar loss; it returned {shape}",
                        None, hint="pass target=..., or return a scalar (as ShootingLoss does)")
    return out.reshape(())


def trainable_parameters(model: Any) -> list[Trainable]:
    """(name, state-dict path, parameter) of each trainable parameter of ``model``. The name is the
    path, or the key in ``params`` where the model (or a submodule, such as the physics module
    of a `ShootingLoss`) keeps its parameters in such a dict and no other parameter has that name."""
    if not isinstance(model, nn.Module):
        raise CallError(f"the model is a {type(model).__name__}, not a torch.nn.Module", None,
                        hint="compile the program with nc.compile(...) to fit it")
    short: dict[int, str] = {}
    for _, sub in model.named_modules():  # the model itself first, then e.g. a ShootingLoss's physics
        items = getattr(getattr(sub, "params", None), "items", None)
        if callable(items):
            for k, p in items():
                short.setdefault(id(p), str(k))
    named = [(short.get(id(p), n), n, p) for n, p in model.named_parameters() if p.requires_grad]
    counts = Counter(name for name, _, _ in named)
    named = [(name if counts[name] == 1 else path, path, p) for name, path, p in named]
    if not named:
        raise CallError(f"{type(model).__name__} has no trainable parameters", None,
                        hint="compile with params={...} or trainable=[...], or set requires_grad=True")
    for name, _, p in named:
        if p.is_meta:
            raise CallError(f"parameter {name!r} is on the meta device: it has no value to fit", None,
                            hint="move the model to a real device first (model.to_empty(...) and load values)")
        if not (p.is_floating_point() or p.is_complex()):
            raise CallError(f"parameter {name!r} has dtype {p.dtype}, which has no gradient", None)
    return named


def generator(seed: int | None) -> torch.Generator:
    """A CPU generator seeded with ``seed`` (None: a seed drawn from torch's global RNG, so that
    ``torch.manual_seed`` makes the fit reproducible)."""
    seed = int(torch.randint(0, 2**62, ())) if seed is None else seed
    return torch.Generator().manual_seed(seed)
