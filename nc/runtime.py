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


def ref_at(v: torch.Tensor, i: torch.Tensor, n: int, rank: int) -> torch.Tensor:
    """``(ref v i)`` with an index that depends on the data: element ``i`` of the first
    per-example axis of ``v`` (per-example rank ``rank``, that axis of size ``n``), per element.

    An index that is not an integer in ``[0, n)`` gives NaN. The element is selected with a
    one-hot mask and a sum, so the gradient reaches only the selected element and NaN elsewhere
    in ``v`` cannot leak; batch axes of ``v`` and ``i`` broadcast.
    """
    ok = (i == torch.round(i)) & (i >= 0) & (i < n)
    idx = torch.where(ok, i, torch.zeros_like(i)).to(torch.long)
    hit = torch.arange(n, device=v.device) == idx.unsqueeze(-1)
    hit = hit.reshape(hit.shape + (1,) * (rank - 1))
    zero = torch.zeros((), dtype=v.dtype, device=v.device)
    out = torch.where(hit, v, zero).sum(-rank)
    ok = ok.reshape(ok.shape + (1,) * (rank - 1))
    return torch.where(ok, out, torch.full((), float("nan"), dtype=out.dtype, device=out.device))


def roll_by(v: torch.Tensor, k: torch.Tensor, rank: int) -> torch.Tensor:
    """``(roll v k)`` with a shift that depends on the data: ``torch.roll`` on the last axis per
    element (a gather). A shift that is not an integer gives NaN."""
    n = v.shape[-1]
    ok = (k == torch.round(k)).reshape(k.shape + (1,) * rank)
    if n == 0:
        return v
    kk = torch.where(ok, k.reshape(ok.shape), torch.zeros((), dtype=k.dtype, device=k.device)).to(torch.long)
    idx = torch.remainder(torch.arange(n, device=v.device) - kk, n)
    vb, ib = torch.broadcast_tensors(v, idx)
    out = torch.gather(vb, -1, ib)
    return torch.where(ok, out, torch.full((), float("nan"), dtype=out.dtype, device=out.device))


def _top_index(stack: torch.Tensor, slot: torch.Tensor, *others: torch.Size) -> tuple[torch.Tensor, torch.Tensor]:
    """The stack brought to the batch shape of all arguments, and ``slot`` (clamped) as an index
    of one row per element for `torch.gather` / `torch.scatter` on the depth axis."""
    depth, width = stack.shape[-2], stack.shape[-1]
    batch = torch.broadcast_shapes(stack.shape[:-2], slot.shape, *others)
    idx = slot.clamp(0, depth - 1).to(torch.long).expand(batch)
    return stack.expand(*batch, depth, width), idx[..., None, None].expand(*batch, 1, width)


def stack_push(stack: torch.Tensor, sp: torch.Tensor, row: torch.Tensor, do: torch.Tensor) -> torch.Tensor:
    """Write ``row`` at slot ``sp`` of a per-element stack ``[..., depth, width]`` where ``do`` holds.

    Out of place (so every `torch.func` transform follows it), but only the top row is computed:
    a gather of the old row, a select of one row per element and a scatter into a copy of the
    stack, rather than a select over all ``depth`` rows."""
    full, idx = _top_index(stack, sp, row.shape[:-1], do.shape)
    batch = full.shape[:-2]
    old = full.gather(-2, idx)
    new = torch.where(do.expand(batch)[..., None, None], row.expand(*batch, row.shape[-1]).unsqueeze(-2), old)
    return full.scatter(-2, idx, new)


def stack_peek(stack: torch.Tensor, sp: torch.Tensor) -> torch.Tensor:
    """The row at slot ``sp - 1`` (the top) of a per-element stack (row 0 where the stack is empty):
    a gather of one row per element."""
    full, idx = _top_index(stack, sp - 1)
    return full.gather(-2, idx).squeeze(-2)


def pack_frame(ranks: Sequence[int], *xs: torch.Tensor) -> torch.Tensor:
    """Flatten per-example values (of the given per-example ranks) into one row on the last axis."""
    flat = [x.reshape(*x.shape[: x.dim() - r], -1) for x, r in zip(xs, ranks)]
    return concat_last(*flat)


def frame_field(row: torch.Tensor, start: int, shape: Sequence[int]) -> torch.Tensor:
    """One value of a frame row: ``row[..., start:start + size]`` in its per-example shape."""
    size = 1
    for d in shape:
        size *= d
    return row[..., start: start + size].reshape(tuple(row.shape[:-1]) + tuple(shape))
