"""Fresh data every epoch: ``inputs`` given as a callable ``epoch -> (inputs, target)`` or as a
torch ``DataLoader`` (any iterable of ``(inputs, target)`` batches that is re-iterated each epoch).

The paper's Feynman setup samples new points every epoch; this is how `nc.fit` does that. Each
draw is checked as fixed data are (finite, tensors, shapes). Streamed data have no fixed
full-data loss to rank points by, so a streamed run is plain Adam: it ends on its last point
(on a NaN or infinite loss, on the last point before it), and its loss is the mean loss of its
last epoch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs
import numpy as np
import torch
from torch import Tensor, nn

from nc.errors import CallError
from nc.fit_data import FitData, LossFn, objective, prepare
from nc.fit_loop import RunResult, load
from nc.fit_optim import FitOptions, make_optimizer, make_scheduler
from nc.progress import Progress

__all__ = ["Stream", "is_stream", "run_stream"]


def is_stream(inputs: Any) -> bool:
    """Whether ``inputs`` is a data source (a callable or a DataLoader-like iterable) rather than data."""
    if isinstance(inputs, (Tensor, np.ndarray, Mapping, Sequence, nn.Module)) or inputs is None:
        return False
    return callable(inputs) or isinstance(inputs, (torch.utils.data.DataLoader, Iterable))


def _split(item: Any, where: str) -> tuple[Any, Any]:
    """A draw or batch as (inputs, target): a pair, or (x1, ..., xk, target) from a TensorDataset."""
    if isinstance(item, Mapping) or not isinstance(item, (tuple, list)) or len(item) < 2:
        raise CallError(f"{where} gave a {type(item).__name__}, not an (inputs, target) pair", None,
                        hint="return (inputs, target), e.g. ((x,), y) or ({'x': x}, y)")
    if len(item) == 2:
        return item[0], item[1]
    return tuple(item[:-1]), item[-1]


@attrs.frozen
class Stream:
    """A source of data: ``batches(epoch)`` gives the epoch's prepared `FitData` batches."""

    source: Any
    dtype: torch.dtype | None
    device: torch.device | None
    tensor_target: bool

    def batches(self, epoch: int) -> list[FitData]:
        if callable(self.source) and not isinstance(self.source, torch.utils.data.DataLoader):
            items = [self.source(epoch)]
            where = f"the data callable (epoch {epoch})"
        else:
            items = list(self.source)
            where = "the DataLoader"
            if not items:
                raise CallError("the DataLoader gave no batches", None)
        out = []
        for item in items:
            inputs, target = _split(item, where)
            out.append(prepare(inputs, target, self.dtype, self.device, tensor_target=self.tensor_target))
        return out


def run_stream(model: nn.Module, params: Sequence[Tensor], stream: Stream, loss: LossFn, opts: FitOptions,
               bar: Progress) -> RunResult:
    """One Adam run over fresh data each epoch; ends on its last finite point."""
    opt = make_optimizer(params, opts)
    sched = make_scheduler(opt, opts)
    history: list[float] = []
    reason = "epochs"
    for epoch in range(opts.epochs):
        before = [p.detach().clone() for p in params]
        total, count, stop = 0.0, 0, None
        for batch in stream.batches(epoch):
            opt.zero_grad(set_to_none=True)
            value = objective(model, batch, loss)
            v = value.item()
            if not math.isfinite(v):
                load(params, before)
                stop = "non-finite loss"
                break
            value.backward()
            if opts.clip is not None:
                nn.utils.clip_grad_norm_(params, opts.clip)
            opt.step()
            total, count = total + v, count + 1
        if stop is not None:
            reason = stop
            break
        mean = total / count
        history.append(mean)
        bar.update(epoch + 1, mean)
        if opts.tol is not None and mean < opts.tol:
            reason = "tol"
            break
        if sched is not None:
            sched.step()
    final = history[-1] if history else math.nan
    return RunResult(history, final, reason, len(history))

