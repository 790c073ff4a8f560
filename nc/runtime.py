"""Helpers that generated code calls, for operations with no single PyTorch call.

Everything here is `torch.func`-safe: no ``.item()`` and no Python branching on tensor values,
except the early exit of `masked_loop`, which is taken only when no transform is active.
"""

from __future__ import annotations

import contextlib
import threading
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

FIRST_ROWS = 8
"""Rows a recursion stack starts with in eager mode; it doubles when an element needs more."""

_OWNED = threading.local()
"""The recursion stacks `masked_loop` owns right now (eager mode, no transform): nothing else
holds them and no autograd node saves them, so `stack_push` may write them in place."""


def _owned() -> list[torch.Tensor]:
    owned = getattr(_OWNED, "stacks", None)
    if owned is None:
        owned = _OWNED.stacks = []
    return owned  # type: ignore[no-any-return]


def _concrete(xs: Sequence[torch.Tensor]) -> bool:
    """Whether values may be looked at: eager mode, no `torch.func` transform, no tracer."""
    return not (tracing_active() or torch.jit.is_tracing() or any(_transformed(x) for x in xs))


def _batch_of(state: Sequence[torch.Tensor], ranks: Sequence[int]) -> torch.Size:
    return torch.broadcast_shapes(*(s.shape[: s.dim() - r] for s, r in zip(state, ranks)))


class _Stack:
    """A recursion stack's place in a masked loop's state (``stack=(slot, sp slot, max_depth)``),
    and its capacity: in eager mode it starts at `FIRST_ROWS` rows and doubles, up to
    ``max_depth``, before a step where an element's stack pointer reaches it; under a transform
    or tracer, where values cannot be looked at, it has all ``max_depth`` rows."""

    def __init__(self, spec: tuple[int, int, int], state: list[torch.Tensor], ranks: Sequence[int]) -> None:
        self.slot, self.sp, self.depth = spec
        self.owned = _concrete(state)
        self.bound = 0  # no element's stack pointer is above this (it starts at 0, moves by 1 a step)
        if self.owned:  # a fresh stack of the batch's shape, which only this loop refers to
            full = state[self.slot]
            rows = min(FIRST_ROWS, self.depth)
            state[self.slot] = full.new_zeros((*_batch_of(state, ranks), rows, full.shape[-1]))

    def grow(self, state: list[torch.Tensor]) -> None:
        """Before a step: room for one more frame on every element (all ``max_depth`` rows if
        values can no longer be looked at, as when a transform wraps the state). The stack
        pointers are looked at (a sync) only when the bound on them reaches the capacity."""
        stack, sp = state[self.slot], state[self.sp]
        rows = stack.shape[-2]
        if rows >= self.depth:
            return
        self.bound += 1
        if self.bound < rows:
            return
        if _transformed(stack) or _transformed(sp):
            self.owned, new_rows = False, self.depth
        else:
            self.bound = int(sp.max()) if sp.numel() else 0
            if self.bound < rows:
                return
            new_rows = min(2 * rows, self.depth)
        pad = stack.new_zeros((*stack.shape[:-2], new_rows - rows, stack.shape[-1]))
        state[self.slot] = torch.cat([stack, pad], dim=-2)


def masked_loop(
    body: LoopBody, state: Sequence[torch.Tensor], ranks: Sequence[int], value_rank: int, max_iter: int,
    stack: tuple[int, int, int] | None = None,
) -> torch.Tensor:
    """Run a loop whose exit depends on values, element by element, for at most ``max_iter`` steps.

    ``body(active, *state)`` returns ``(exit_mask, exit_value, next_state)``. Each batch element
    stops changing once its own exit test holds; elements that never exit give NaN. Inputs of
    finished elements enter the body as gradient-free copies so that the work still done on them
    cannot put NaN into gradients. The loop ends early when all elements are done, unless a
    `torch.func` transform or `torch.compile` is active (they need a data-independent trip count).

    ``stack`` marks a recursion stack (nc.recursion): its state is ``(slot, sp slot,
    max_depth)``. The body reads it only with `stack_peek` (which detaches the rows of finished
    elements itself) and writes it only with `stack_push` (which leaves finished elements' rows
    as they are), so the loop neither copies nor masks it per step; it grows as `_Stack` says,
    and while the loop owns it, `stack_push` writes in place.
    """
    state = list(state)
    frames = _Stack(stack, state, ranks) if stack is not None else None
    skip = frames.slot if frames is not None else -1
    done: torch.Tensor | None = None
    result: torch.Tensor | None = None
    owned = _owned()
    for _ in range(max_iter):
        if frames is not None:
            frames.grow(state)
        own = frames is not None and frames.owned
        if done is None:
            active = torch.ones((), dtype=torch.bool, device=state[0].device)
            inputs = state
        else:
            active = torch.logical_not(done)
            inputs = [s if i == skip else torch.where(_align(active, r), s, s.detach())
                      for i, (s, r) in enumerate(zip(state, ranks))]
        if own:
            owned.append(state[skip])
        try:
            exit_mask, value, nxt = body(active, *inputs)
        finally:
            if own:
                owned.pop()
        newly = torch.logical_and(exit_mask, active)
        if result is None:
            result = torch.full_like(value, float("nan"))
        result = torch.where(_align(newly, value_rank), value, result)
        done = newly if done is None else torch.logical_or(done, newly)
        state = [n if i == skip else torch.where(_align(done, r), s, n)
                 for i, (s, n, r) in enumerate(zip(state, nxt, ranks))]
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


_AXES: dict[tuple[tuple[int, ...], torch.device], tuple[torch.Tensor, ...]] = {}


def _batch_axes(batch: tuple[int, ...], device: torch.device) -> tuple[torch.Tensor, ...]:
    """An aranged index per batch axis, shaped to broadcast (made once per batch shape and device)."""
    tracing = tracing_active()  # a tracer gets its own tensors, and they must not serve later calls
    hit = None if tracing else _AXES.get((batch, device))
    if hit is None:
        k = len(batch)
        hit = tuple(torch.arange(n, device=device).view((n,) + (1,) * (k - i)) for i, n in enumerate(batch))
        if not tracing and len(_AXES) < 64:
            _AXES[(batch, device)] = hit
    return hit


def _top(stack: torch.Tensor, slot: torch.Tensor, *others: torch.Size) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """The stack brought to the batch shape of all arguments, and the advanced index of row
    ``slot`` (clamped) of each element: an aranged index per batch axis, then the slot (what
    it selects has the shape ``[*batch, 1, width]``).

    An advanced index rather than `torch.gather`: autograd saves only the indices for it, where
    ``gather`` would save the whole stack at every step."""
    depth, width = stack.shape[-2], stack.shape[-1]
    batch = stack.shape[:-2]
    if any(o != batch for o in (slot.shape, *others)):  # torch.broadcast_shapes costs ~50 us a call
        batch = torch.broadcast_shapes(batch, slot.shape, *others)
    # a trailing axis of 1 on every index: a 0-d tensor index would be read as a Python int (under vmap, .item())
    idx = slot.clamp(0, depth - 1).to(torch.long).expand(batch).unsqueeze(-1)
    axes = _batch_axes(tuple(batch), stack.device) if batch else ()
    full = stack if stack.shape[:-2] == batch else stack.expand(*batch, depth, width)
    return full, (*axes, idx)


def stack_push(stack: torch.Tensor, sp: torch.Tensor, row: torch.Tensor, do: torch.Tensor) -> torch.Tensor:
    """Write ``row`` at slot ``sp`` of a per-element stack ``[..., depth, width]`` where ``do`` holds.

    While `masked_loop` owns the stack (eager mode, no transform: nothing else refers to it), only
    the rows of the elements that push are written, in place. Otherwise the write is out of place,
    which every `torch.func` transform follows, and computes only the top row: the old row is
    read and selected against the new one per element."""
    full, at = _top(stack, sp, row.shape[:-1], do.shape)
    batch = full.shape[:-2]
    if (full is stack and batch and any(t is stack for t in _owned())
            and not any(_transformed(t) for t in (row, do, sp))):
        pos = do.expand(batch).nonzero(as_tuple=True)  # values may be looked at: the loop owns the stack
        return stack.index_put_((*pos, at[-1].squeeze(-1)[pos]), row.expand(*batch, row.shape[-1])[pos])
    new = torch.where(do.expand(batch)[..., None, None], row.expand(*batch, row.shape[-1]).unsqueeze(-2), full[at])
    return full.index_put(at, new)


def stack_peek(stack: torch.Tensor, sp: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
    """The row at slot ``sp - 1`` (the top) of a per-element stack (row 0 where the stack is
    empty), detached where the loop's ``active`` mask does not hold (`masked_loop` does not
    detach the stack of finished elements)."""
    full, at = _top(stack, sp - 1, active.shape)
    row = full[at].squeeze(-2)
    return torch.where(active.unsqueeze(-1), row, row.detach())


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
