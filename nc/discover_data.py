"""Input checks of `nc.discover`: trajectories, times and state names as float64 arrays.

Every problem is a `CallError` that names the trajectory, and the row or the name at fault.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from nc.api import compile_fn
from nc.errors import CallError, NCError

__all__ = ["check_states", "check_trajectories"]


def check_states(states: str | Sequence[str]) -> tuple[str, ...]:
    """State names (a list, or one comma-separated string), distinct nc identifiers."""
    names = [s.strip() for s in states.split(",")] if isinstance(states, str) else list(states)
    if not names:
        raise CallError("states is empty: name the state variables, e.g. states=['x', 'y']", None)
    for i, name in enumerate(names):
        if not isinstance(name, str) or not name:
            raise CallError(f"state {i} must be a non-empty name, got {name!r}", None)
        if name in names[:i]:
            raise CallError(f"state name {name!r} appears twice", None)
        try:
            ok = compile_fn(name).inputs == (name,)
        except NCError:
            ok = False
        if not ok:
            raise CallError(f"state name {name!r} is not an nc identifier (or is a primitive or pi)", None)
    return tuple(names)


def _array(name: str, value: Any) -> np.ndarray:
    if isinstance(value, (str, bytes)):
        raise CallError(f"{name} must be numbers, got a string", None)
    try:
        if hasattr(value, "detach"):
            value = value.detach().cpu().numpy()
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise CallError(f"{name} is not an array of real numbers: {e}", None) from None
    return arr


def check_trajectories(data: Any, times: Any, n_states: int) -> tuple[list[np.ndarray], list[float], bool]:
    """(trajectories [T, n_states] or [T, N] for one vector state, their steps, whether the one
    state is a vector). ``data``: an array or a list of arrays; ``times``: per trajectory an array
    of times or one step (a list, one per trajectory), or one step shared by all."""
    # a list of arrays (or tensors) is many trajectories; a nested list of numbers is one
    many = isinstance(data, (list, tuple)) and len(data) > 0 and all(hasattr(d, "shape") for d in data)
    trajs = list(data) if many else [data]
    if not trajs:
        raise CallError("no trajectories given", None)
    if isinstance(times, (list, tuple)) and len(trajs) > 1:
        if len(times) != len(trajs):
            raise CallError(f"{len(trajs)} trajectories but {len(times)} time arrays", None)
        tlist = list(times)
    else:
        tlist = [times] * len(trajs)
    out, steps, vector = [], [], False
    for i, (y, t) in enumerate(zip(trajs, tlist)):
        label = f"trajectory {i}" if len(trajs) > 1 else "the trajectory"
        arr = _array(label, y)
        if arr.ndim == 1 and n_states == 1:
            arr = arr[:, None]
        if arr.ndim != 2:
            raise CallError(f"{label} must be [T, {n_states}] (rows of states), got shape {arr.shape}", None)
        if n_states == 1 and arr.shape[1] > 1:
            vector = True
        elif arr.shape[1] != n_states:
            raise CallError(f"{label} has {arr.shape[1]} columns but there are {n_states} states", None)
        bad = np.flatnonzero(~np.isfinite(arr).all(axis=1))
        if len(bad):
            raise CallError(f"{label} has a NaN or infinite value in row {bad[0]}", None,
                            hint="drop or interpolate the row; discovery needs equally spaced finite samples")
        steps.append(_step(label, t, len(arr)))
        out.append(arr)
    return out, steps, vector


def _step(label: str, t: Any, T: int) -> float:
    """The time step of a trajectory of ``T`` rows, given its times or the step itself."""
    if T < 5:
        raise CallError(f"{label} has {T} rows; discovery needs at least 5", None)
    times = _array(f"the times of {label}", t)
    if times.ndim == 0:
        dt = float(times)
        if not (np.isfinite(dt) and dt > 0):
            raise CallError(f"the time step of {label} must be a positive number, got {dt}", None)
        return dt
    if times.shape != (T,):
        raise CallError(f"{label} has {T} rows but its times have shape {times.shape}", None,
                        hint="give one time per row")
    bad = np.flatnonzero(~np.isfinite(times))
    if len(bad):
        raise CallError(f"the times of {label} are not finite at row {bad[0]}", None)
    d = np.diff(times)
    bad = np.flatnonzero(d <= 0)
    if len(bad):
        raise CallError(f"the times of {label} do not increase at row {bad[0] + 1} "
                        f"({times[bad[0]]!r} then {times[bad[0] + 1]!r})", None)
    dt = float((times[-1] - times[0]) / (T - 1))
    bad = np.flatnonzero(np.abs(d - dt) > 1e-6 * max(abs(dt), 1e-300) + 1e-9 * np.abs(times[1:]))
    if len(bad):
        raise CallError(f"the times of {label} are not equally spaced: step {d[bad[0]]!r} at row {bad[0] + 1}, "
                        f"the mean step is {dt!r}", None, hint="resample the trajectory to a uniform grid")
    return dt
