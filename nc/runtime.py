"""Helpers that generated code calls, for operations with no single PyTorch call.

Everything here is `torch.func`-safe: no ``.item()`` and no Python branching on tensor values,
except the early exit of `masked_loop`, which is taken only when no transform is active.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

import torch
from torch._C._functorch import is_functorch_wrapped_tensor
from torch.utils._python_dispatch import _disable_current_modes

_INFRA_MODES = tuple(getattr(torch._C._TorchDispatchModeKey, k) for k in ("FAKE", "PROXY", "FUNCTIONAL")
                     if hasattr(torch._C._TorchDispatchModeKey, k))


def tracing_active() -> bool:
    """Whether a tracer is running: torch.compile (dynamo), or a dispatch mode such as
    FakeTensorMode or make_fx's proxy mode (torch.export). (torch.jit.trace runs on real
    tensors: only its sizes are traced, see `nc.signatures.signature`.) Tensors made now may be fake or
    symbolic, so nothing made now may be cached for later calls."""
    if torch.compiler.is_compiling():
        return True
    if torch._C._len_torch_dispatch_stack() > 0:
        return True
    return any(torch._C._get_dispatch_mode(k) is not None for k in _INFRA_MODES)


@contextlib.contextmanager
def without_tracing() -> Iterator[None]:
    """Run nc's own compile-time work (tracing the program, folding constants) on real tensors,
    even when called under a dispatch-mode tracer."""
    if torch.compiler.is_compiling() or not tracing_active():
        yield
        return
    with _disable_current_modes():
        yield


class RankMismatch(Exception):
    """An input the fast path does not take as is (fewer axes than its per-example rank, or a
    complex dtype): the caller takes the checked path, which converts it or explains."""


_DTYPES = (torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.float16,
           torch.bfloat16, torch.float32, torch.float64, torch.complex64, torch.complex128)
_PROMOTED = {(a, b): torch.promote_types(a, b) for a in _DTYPES for b in _DTYPES}
"""PyTorch's promotion of two dtypes, computed once: calling ``torch.promote_types`` at each call
would put an ``aten.promote_types`` node into every graph that torch.export records."""


def promote(a: torch.dtype, b: torch.dtype) -> torch.dtype:
    """``torch.promote_types(a, b)``, from a table for the usual dtypes."""
    if a is b:
        return a
    hit = _PROMOTED.get((a, b))
    return hit if hit is not None else torch.promote_types(a, b)


def dtype_device(inputs: Sequence[object]) -> tuple[torch.dtype, torch.device]:
    """The computation dtype (PyTorch promotion of the tensor inputs) and device (the first
    tensor's); the default dtype and the CPU when there is no tensor.

    The one place nc promotes dtypes: generated code calls it at each call, and the checked
    path (`nc.binding`, `nc.compiled`) uses it to convert arguments and trace."""
    dtype: torch.dtype | None = None
    device = None
    for x in inputs:
        if isinstance(x, torch.Tensor):
            dtype = x.dtype if dtype is None else promote(dtype, x.dtype)
            device = x.device if device is None else device
    return (dtype or torch.get_default_dtype()), (device or torch.device("cpu"))


class ConstantCache:
    """A program's constant tensors, made once per (dtype, device)."""

    def __init__(self, constants: Sequence[torch.Tensor]) -> None:
        self.constants = list(constants)
        self.made: dict[tuple[torch.dtype, torch.device], tuple[torch.Tensor, ...]] = {}

    def __call__(self, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, ...]:
        hit = self.made.get((dtype, device))
        if hit is None:
            hit = tuple(c.to(device) if c.dtype == torch.bool else c.to(dtype=dtype, device=device)
                        for c in self.constants)
            if not tracing_active():  # a tracer's tensors (fake, symbolic) must not serve later calls
                self.made[(dtype, device)] = hit
        return hit


def stack_last(*xs: torch.Tensor) -> torch.Tensor:
    """Stack per-example scalars into a vector: ``torch.stack(torch.broadcast_tensors(*xs), -1)``."""
    return torch.stack(torch.broadcast_tensors(*xs), dim=-1)


def stack_rows(*rows: torch.Tensor) -> torch.Tensor:
    """Stack per-example row vectors into a matrix."""
    return torch.stack(torch.broadcast_tensors(*rows), dim=-2)


def stack_axis(axis: int, *xs: torch.Tensor) -> torch.Tensor:
    """Stack per-example values on a new axis ``axis`` (negative, counted from the end)."""
    return torch.stack(torch.broadcast_tensors(*xs), dim=axis)


def concat_last(*xs: torch.Tensor) -> torch.Tensor:
    """Join vectors on the last axis after broadcasting their batch axes."""
    batch = torch.broadcast_shapes(*(x.shape[:-1] for x in xs))
    return torch.cat([x.expand(*batch, x.shape[-1]) for x in xs], dim=-1)


def laplacian1d(u: torch.Tensor, dx: torch.Tensor | float) -> torch.Tensor:
    """``(u[i-1] - 2 u[i] + u[i+1]) / dx^2`` at interior points and 0 at both ends.

    ``dx`` is a per-example scalar: its axes are batch axes, which meet those of ``u`` in front
    of the vector axis.
    """
    if isinstance(dx, torch.Tensor):
        dx = dx.unsqueeze(-1)
    if u.shape[-1] < 3:
        return torch.zeros_like(u) if not isinstance(dx, torch.Tensor) else torch.zeros_like(u * dx)
    inner = (u[..., :-2] - 2 * u[..., 1:-1] + u[..., 2:]) / (dx * dx)
    return torch.nn.functional.pad(inner, (1, 1))


def _transformed(t: torch.Tensor) -> bool:
    if torch.compiler.is_compiling():
        return True
    return is_functorch_wrapped_tensor(t)


def _align(mask: torch.Tensor, rank: int) -> torch.Tensor:
    for _ in range(rank):
        mask = mask.unsqueeze(-1)
    return mask


LoopBody = Callable[..., tuple[torch.Tensor, torch.Tensor, Sequence[torch.Tensor]]]


def masked_loop(
    body: LoopBody, state: Sequence[torch.Tensor], ranks: Sequence[int], value_rank: int, max_iter: int
) -> torch.Tensor:
    """Run a loop whose exit depends on values, element by element, for at most ``max_iter`` steps.

    ``body(active, *state)`` returns ``(exit_mask, exit_value, next_state)``. Each batch element
    stops changing once its own exit test holds; elements that never exit give NaN. Inputs of
    finished elements enter the body as gradient-free copies so that the work still done on them
    cannot put NaN into gradients. The loop ends early when all elements are done, unless a
    `torch.func` transform or `torch.compile` is active (they need a data-independent trip count).
    """
    state = list(state)
    done: torch.Tensor | None = None
    result: torch.Tensor | None = None
    for _ in range(max_iter):
        if done is None:
            active = torch.ones((), dtype=torch.bool, device=state[0].device)
            inputs = state
        else:
            active = torch.logical_not(done)
            inputs = [torch.where(_align(active, r), s, s.detach()) for s, r in zip(state, ranks)]
        exit_mask, value, nxt = body(active, *inputs)
        newly = torch.logical_and(exit_mask, active)
        if result is None:
            result = torch.full_like(value, float("nan"))
        result = torch.where(_align(newly, value_rank), value, result)
        done = newly if done is None else torch.logical_or(done, newly)
        state = [torch.where(_align(done, r), s, n) for s, n, r in zip(state, nxt, ranks)]
        if not _transformed(done) and bool(done.all()):
            break
    assert result is not None and done is not None
    return torch.where(_align(done, value_rank), result, torch.full_like(result, float("nan")))


def expand_batch(
    result: torch.Tensor, inputs: Sequence[torch.Tensor], ranks: Sequence[int], rank: int
) -> torch.Tensor:
    """Give a result that ignores some inputs the batch axes of all of them, as vmap would."""
    batches = [x.shape[: x.dim() - r] for x, r in zip(inputs, ranks)]
    batch = torch.broadcast_shapes(result.shape[: result.dim() - rank], *batches)
    return result.expand(tuple(batch) + tuple(result.shape[result.dim() - rank :]))


def broadcast_batch(xs: Sequence[torch.Tensor], ranks: Sequence[int]) -> list[torch.Tensor]:
    """Expand arguments to one common batch shape, keeping each one's per-example axes."""
    batch = torch.broadcast_shapes(*(x.shape[: x.dim() - r] for x, r in zip(xs, ranks)))
    return [x.expand(tuple(batch) + tuple(x.shape[x.dim() - r :])) for x, r in zip(xs, ranks)]
