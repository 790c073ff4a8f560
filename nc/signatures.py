"""The call cache of a compiled program, and the checks of a call's tensors against its inputs.

A call's *signature* is the per-example shapes, dtypes and devices of its inputs: batch axes are
not part of it, so calls with any number of batch sizes share one lowered function.
"""

from __future__ import annotations

import threading
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch

from .errors import CallError
from .lower import Lowered
from .ranks import InputShapes
from .shapes import Shape, show

MAX_SIGNATURES = 64
"""Most per-signature functions one compiled program keeps (least recently used dropped). A
signature is the per-example shapes, dtypes and devices of the inputs: batch axes are not part
of it, so calls with any number of batch sizes share one entry."""

Signature = tuple[Any, ...]


class SignatureCache:
    """Lowered functions by signature, least recently used first, with the dtype to cast mixed
    inputs to; safe to share between threads."""

    def __init__(self) -> None:
        self.entries: OrderedDict[Signature, tuple[Lowered, torch.dtype | None]] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: Signature) -> tuple[Lowered, torch.dtype | None] | None:
        with self.lock:
            hit = self.entries.get(key)
            if hit is not None:
                self.entries.move_to_end(key)
            return hit

    def put(self, key: Signature, entry: Lowered, cast: torch.dtype | None) -> None:
        with self.lock:
            self.entries[key] = (entry, cast)
            while len(self.entries) > MAX_SIGNATURES:
                self.entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self.entries)


def signature(inputs: InputShapes, values: Sequence[torch.Tensor]) -> Signature | None:
    """The cache key of a call: per-example shapes, dtypes and devices (no batch axes), or
    None when an input has too few axes (the checked build explains)."""
    key = []
    for n, v in zip(inputs.names, values):
        rank = inputs.ranks[n]
        if v.dim() < rank:
            return None
        key.append((tuple(v.shape[v.dim() - rank:]), v.dtype, v.device))
    if torch.jit.is_tracing():  # sizes are traced 0-d tensors there (hashed by identity): make them ints
        return tuple((static_sizes(s), t, dev) for s, t, dev in key)
    return tuple(key)


def static_sizes(sizes: Sequence[Any]) -> Shape:
    """Per-example sizes as ints. Under torch.jit.trace they are traced 0-d tensors; a trace
    records them as constants, as nc does (a signature per per-example shape), so jit's
    warning about that is silenced."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        return tuple(int(d) for d in sizes)


def check_batch(inputs: InputShapes, values: Sequence[torch.Tensor]) -> None:
    """Batch axes must broadcast (a cached signature says nothing about them)."""
    try:
        torch.broadcast_shapes(*(v.shape[: v.dim() - inputs.ranks[n]] for n, v in zip(inputs.names, values)))
    except RuntimeError:
        split_shapes(inputs, values)  # raises the CallError that names them
        raise CallError("the batch axes of the inputs do not broadcast") from None


def check_device(inputs: InputShapes, values: Sequence[torch.Tensor]) -> None:
    """All inputs on one device."""
    device = values[0].device if values else None
    for n, v in zip(inputs.names, values):
        if v.device != device:
            raise CallError(f"input '{n}' is on {v.device} but '{inputs.names[0]}' is on {device}",
                            inputs.spans[n], hint="move all inputs to one device")


def split_shapes(inputs: InputShapes, values: Sequence[torch.Tensor]) -> dict[str, Shape]:
    """Per-example shapes from the actual ones; checks ranks, declared sizes and batch axes."""
    pshapes: dict[str, Shape] = {}
    batches = []
    for n, v in zip(inputs.names, values):
        rank = inputs.ranks[n]
        if v.dim() < rank:
            want = show(inputs.declared[n]) if n in inputs.declared else f"rank {rank} per example"
            raise CallError(f"input '{n}' must be {want}, got a tensor of shape {list(v.shape)}",
                            inputs.spans[n], hint=inputs.rank_hint(n, rank))
        pshape = static_sizes(v.shape[v.dim() - rank:])
        declared = inputs.declared.get(n)
        if declared is not None and any(d is not None and d != s for d, s in zip(declared, pshape)):
            raise CallError(f"input '{n}' must have per-example shape {show(declared)}, got trailing "
                            f"sizes {list(pshape)} (full shape {list(v.shape)})", inputs.spans[n])
        pshapes[n] = pshape
        batches.append((n, tuple(v.shape[: v.dim() - rank])))
    try:
        torch.broadcast_shapes(*(b for _, b in batches))
    except RuntimeError:
        shown = ", ".join(f"{n}: {list(b)}" for n, b in batches if b)
        raise CallError(f"the batch axes of the inputs do not broadcast ({shown})",
                        hint="leading axes beyond each input's per-example rank are batch axes; they "
                             "must broadcast as in PyTorch") from None
    return pshapes
