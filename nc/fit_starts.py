"""Where the runs of a fit start: the model's values, ``starts=``, a ``grid=`` scan, and the
random perturbations of ``restarts``."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from nc.errors import CallError
from nc.fit_data import Trainable

__all__ = ["StartValues", "grid_points", "perturb", "start_points", "start_value"]

StartValues = Mapping[str, Any]


def grid_points(grid: Any) -> list[dict[str, Any]]:
    """The cartesian product of ``grid``'s values, one dict per point (the last name varies fastest).
    Each entry must hold one or more values: a list, a tuple, an array or a tensor of rank >= 1."""
    if not isinstance(grid, Mapping):
        raise CallError(f"grid must be a dict name -> values, got {type(grid).__name__}", None)
    axes = []
    for name, values in grid.items():
        if isinstance(values, (Tensor, np.ndarray)) and values.ndim >= 1:
            axis = list(values)
        elif isinstance(values, (list, tuple, range)):
            axis = list(values)
        else:
            raise CallError(f"grid[{name!r}] = {values!r} is not a list of values", None,
                            hint=f"give the values to scan, e.g. grid={{{name!r}: [0.5, 1.0, 2.0]}} "
                            "or a tensor of rank >= 1")
        if not axis:
            raise CallError(f"grid[{name!r}] has no values", None)
        axes.append(axis)
    return [dict(zip(grid, point)) for point in itertools.product(*axes)]


def start_value(name: str, value: Any, p: Tensor) -> Tensor:
    """``value`` as a finite starting value for parameter ``p`` (its dtype, device and shape)."""
    if isinstance(value, (str, bytes)) or (isinstance(value, np.ndarray) and value.dtype == object):
        raise CallError(f"the starting value of {name!r} is {value!r}, not a number", None)
    try:
        v = torch.as_tensor(value, dtype=p.dtype, device=p.device)
    except (OverflowError, TypeError, ValueError, RuntimeError) as e:
        raise CallError(f"the starting value of {name!r} cannot be a {p.dtype} value: {e}", None) from None
    if not bool(torch.isfinite(v).all()):
        raise CallError(f"the starting value of {name!r} is not finite in {p.dtype}", None,
                        hint="start from a finite value within the parameter's dtype")
    try:
        return v.expand(p.shape).clone()
    except RuntimeError:
        raise CallError(f"the starting value of {name!r} has shape {tuple(v.shape)}, but the parameter has "
                        f"shape {tuple(p.shape)}", None) from None


def start_points(named: list[Trainable], starts: Any, grid: Any) -> list[list[Tensor]]:
    """The starting values of every start, one tensor per trainable parameter: each start's named
    values (by name or state-dict path), the model's current value for parameters a start does
    not name. Without ``starts`` and ``grid``: one start, the model's current values."""
    if starts is not None and grid is not None:
        raise CallError("starts= and grid= cannot both be given", None,
                        hint="put the grid's points in starts=, or use grid= alone")
    if starts is not None and (not isinstance(starts, Sequence) or isinstance(starts, str)
                               or not all(isinstance(s, Mapping) for s in starts)):
        raise CallError("starts= takes a list of dicts, one per start", None,
                        hint="starts=[{...}, ...], or grid={name: values} to scan values")
    points: list[StartValues] = [{}] if starts is None else list(starts)
    if grid is not None:
        points = list[StartValues](grid_points(grid))
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
        out.append([start_value(n, given[path], p) if path in given else p.detach().clone()
                    for n, path, p in named])
    return out


def perturb(starts: list[Tensor], scale: float, gen: torch.Generator) -> list[Tensor]:
    """``p0 + scale * |p0| * z`` with ``z ~ N(0, 1)`` (``|p0|`` taken as 1 where ``p0`` is 0)."""
    out = []
    for p0 in starts:
        z = torch.randn(p0.shape, generator=gen, dtype=torch.float64).to(p0)
        size = torch.where(p0 != 0, p0.abs(), torch.ones_like(p0))
        out.append(p0 + scale * size * z)
    return out
