"""Multiple shooting for trajectory data: `ShootingLoss`, a loss module for `nc.fit`."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import vmap

from nc.errors import CallError
from nc.fit_checks import check_bool, check_choice, check_count, check_number, check_seed
from nc.fit_data import check_finite, generator


def _window_starts(T: int, window: int, n_windows: int | None, starts: Sequence[int] | None,
                   seed: int | None) -> list[int]:
    """Sorted window starts: given, ``n_windows`` distinct random ones, or contiguous tiles
    (plus one window ending at the last point if the tiles fall short of it)."""
    if window < 1 or window > T - 1:
        raise CallError(f"window must be between 1 and {T - 1} steps for {T} observations, got {window}", None)
    last = T - 1 - window  # the last valid start
    if starts is not None:
        bad = [s for s in starts if not 0 <= s <= last]
        if bad:
            raise CallError(f"window starts {bad} leave the data (valid: 0..{last})", None)
        return sorted(int(s) for s in starts)
    if n_windows is None:
        tiles = list(range(0, last + 1, window))
        return tiles if tiles[-1] == last else [*tiles, last]
    if not 1 <= n_windows <= last + 1:
        raise CallError(f"n_windows must be between 1 and {last + 1}, got {n_windows}", None)
    perm = torch.randperm(last + 1, generator=generator(seed))[:n_windows]
    return sorted(int(s) for s in perm)


def _observations(name: str, value: Any) -> Tensor:
    """``value`` as a detached, finite, floating-point tensor, or a CallError."""
    if isinstance(value, (str, bytes)) or (isinstance(value, np.ndarray) and value.dtype.kind not in "biuf"):
        raise CallError(f"{name} must be real numbers, got {type(value).__name__}", None)
    try:
        t = torch.as_tensor(value).detach().clone()
    except (OverflowError, TypeError, ValueError, RuntimeError) as e:
        raise CallError(f"{name} cannot be a tensor: {e}", None) from None
    if not t.is_floating_point():
        t = t.to(torch.get_default_dtype())
    check_finite(name, t)
    return t


def _direct(rollout: Any) -> bool:
    """Whether ``rollout`` is an nc module whose one input is the initial state (its program ends in
    an ``rk4``/``euler`` rollout with a fixed step count): it is called as ``model(y0)``."""
    inputs = getattr(rollout, "inputs", None)
    return isinstance(rollout, nn.Module) and hasattr(rollout, "to_source") and isinstance(inputs, tuple) \
        and len(inputs) == 1


def _program_steps(model: Any, obs: Tensor) -> int:
    """The steps of a direct model's rollout, from one call on the first observation."""
    with torch.no_grad():
        out = model(obs[0].to(next(iter(model.parameters()), obs).dtype))
    if not isinstance(out, Tensor) or out.dim() != obs.dim() or tuple(out.shape[1:]) != tuple(obs.shape[1:]):
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise CallError(f"the model's output {got} is not a trajectory of states shaped like obs[0] "
                        f"{tuple(obs.shape[1:])}", None,
                        hint="its program must end in a rollout such as (rk4 f s0 dt n) of input s0")
    return int(out.shape[0]) - 1


def _owner(rollout: Callable[..., Any]) -> nn.Module | None:
    owner = getattr(rollout, "__self__", None)
    return owner if isinstance(owner, nn.Module) else None


class ShootingLoss(nn.Module):
    """Multiple-shooting loss for a trajectory: its ``forward()`` returns a scalar to minimise.

    The observed trajectory ``obs`` [T, *state] is cut into windows of ``window`` steps (each
    covers ``window + 1`` observations). Each window is integrated by ``rollout`` from its own
    initial state, a trainable parameter (``states`` [W, *state]) initialised from the
    observation at the window's start: starting windows from noisy observations, held fixed,
    would bias the fitted constants. The loss is the mean squared error over every window and
    point (the start included, which anchors the states to the data), plus
    ``continuity_weight`` times the mean squared gap between where a window's prediction is at
    the start of the next (overlapping or touching) window and that window's state.

    Args:
        rollout: a compiled nc module whose one input is the initial state and whose result is
            a rollout such as ``(rk4 f s0 0.1 24)`` (the common case: it is called as
            ``model(y0)``, ``window`` follows its step count, and windows are batched); or
            ``rollout(y0, n_steps) -> [n_steps + 1, *state]`` for one initial state (any
            callable: an ``nn.Module``, a bound method of one, or a function; with ``times``,
            ``rollout(y0, n_steps, t0)``).
        obs: the observations [T, *state], equally spaced in time.
        window: steps per window; for an nc module, None (its program's step count) or that
            count. A rollout whose trajectories are not ``window + 1`` points long is a
            `CallError` naming both lengths.
        n_windows: that many windows at distinct random starts (from ``seed``); None: contiguous
            windows covering the whole trajectory (the last one shifted back to end at T - 1).
        starts: explicit window start indices instead.
        continuity_weight: weight of the continuity penalty (0 disables it).
        train_states: False keeps the window states at the observations.
        times: the observation times [T]; if given, the rollout also receives its window's start time.
        vectorize: None (``"batched"`` for an nc module, else ``"loop"``), ``"loop"`` (one
            call per window; works with any callable), ``"vmap"``
            (``torch.func.vmap`` over windows) or ``"batched"`` (``rollout`` takes [W, *state]
            and returns [W, n_steps + 1, *state], nc's batch-axes-in-front convention).
        module: the module holding the physics parameters when ``rollout`` is a plain function
            (found automatically for a module or a bound method of one); it becomes the
            submodule ``physics``, so its parameters are fitted along with ``states``.

    Example (Lotka-Volterra, with ``lv`` an ``nn.Module`` whose ``forward(y0, n_steps)`` is an
    RK4 rollout with trainable alpha, beta, delta, gamma)::

        shoot = ShootingLoss(lv, obs, window=24, continuity_weight=1.0)
        result = fit(shoot, None, None, optimizer="lbfgs", dtype=torch.float64)
        lv.alpha            # fitted; shoot.states holds the fitted window states

    With a compiled nc program ``(rk4 f s0 0.1 24)`` (input ``s0``), pass the module itself:
    windows of 24 steps, all integrated in one batched call (about 5x the loop)::

        lv = nc.compile(source, params={...})
        result = fit(ShootingLoss(lv, obs, continuity_weight=1.0), None, None)
        print(result.summary())  # alpha = 1.003 ± 0.004, ... (standard errors from residuals())
    """

    starts: Tensor  # [W] window start indices, sorted
    targets: Tensor  # [W, window + 1, *state] the observations each window is compared with
    t0: Tensor | None  # [W] start times, with ``times``
    pair_from: Tensor  # windows i whose prediction meets window i + 1's state ...
    pair_offset: Tensor  # ... at this step of window i
    physics: nn.Module

    def __init__(self, rollout: Callable[..., Any], obs: Tensor, window: int | None = None, n_windows: int | None = None,
                 *, starts: Sequence[int] | None = None, seed: int | None = None,
                 continuity_weight: float = 0.0, train_states: bool = True, times: Tensor | None = None,
                 vectorize: str | None = None, module: nn.Module | None = None) -> None:
        super().__init__()
        direct = _direct(rollout)
        check_choice("vectorize", vectorize, (None, "loop", "vmap", "batched"))
        vectorize = vectorize or ("batched" if direct else "loop")
        obs = _observations("obs", obs)
        if direct:
            steps = _program_steps(rollout, obs)
            if window is not None and window != steps:
                raise CallError(f"window={window} steps, but the program's rollout takes {steps} steps "
                                f"({steps + 1} points)", None,
                                hint=f"leave window= out (it follows the program: {steps}), or change the "
                                "program's step count")
            window = steps
        window = cast(int, check_count("window", window, minimum=1))
        n_windows = check_count("n_windows", n_windows, minimum=1, optional=True)
        if starts is not None:
            starts = [check_count("starts[]", s) for s in starts]  # type: ignore[misc]
        seed = check_seed(seed)
        continuity_weight = check_number("continuity_weight", continuity_weight)  # type: ignore[assignment]
        check_bool("train_states", train_states)
        if module is not None and not isinstance(module, nn.Module):
            raise CallError(f"module must be an nn.Module, got {type(module).__name__}", None)
        if not callable(rollout):
            raise CallError(f"the rollout is a {type(rollout).__name__}, not a callable", None)
        if obs.dim() == 0:
            raise CallError("obs must be a trajectory [T, *state], got a scalar", None)
        if times is not None:
            times = _observations("times", times)
            if tuple(times.shape) != (obs.shape[0],):
                raise CallError(f"times has shape {tuple(times.shape)}, expected ({obs.shape[0]},)", None)
        first = _window_starts(obs.shape[0], int(window), n_windows, starts, seed)
        self.window, self.vectorize, self.continuity_weight = int(window), vectorize, float(continuity_weight)
        self._fn = None if isinstance(rollout, nn.Module) else rollout
        self._direct = direct
        physics = rollout if isinstance(rollout, nn.Module) else (module or _owner(rollout))
        if physics is None:
            raise CallError("the rollout is a plain function, so its physics parameters cannot be found", None,
                            hint="pass module=<the nn.Module holding them> (nn.Module() to fit only the states)")
        self.physics = physics
        idx = torch.tensor(first)
        self.register_buffer("starts", idx)
        self.register_buffer("targets", obs[idx[:, None] + torch.arange(self.window + 1)])
        self.register_buffer("t0", None if times is None else torch.as_tensor(times)[idx].clone())
        self.states = nn.Parameter(obs[idx].clone(), requires_grad=train_states)
        pairs = [(i, first[i + 1] - first[i]) for i in range(len(first) - 1) if first[i + 1] - first[i] <= window]
        self.register_buffer("pair_from", torch.tensor([i for i, _ in pairs], dtype=torch.long))
        self.register_buffer("pair_offset", torch.tensor([d for _, d in pairs], dtype=torch.long))

    def _rollout(self, y0: Tensor, t0: Tensor | None) -> Tensor:
        fn: Callable[..., Tensor] = self._fn if self._fn is not None else self.physics
        if self._direct:  # an nc program whose one input is the initial state: its steps are its own
            return fn(y0)
        return fn(y0, self.window) if t0 is None else fn(y0, self.window, t0)

    def predict(self) -> Tensor:
        """The windows' predicted trajectories [W, window + 1, *state] (compare with ``targets``)."""
        if self.vectorize == "batched":
            pred = self._rollout(self.states, self.t0)
        elif self.vectorize == "vmap":
            pred = vmap(self._rollout, in_dims=(0, None if self.t0 is None else 0))(self.states, self.t0)
        else:
            t0 = [None] * len(self.states) if self.t0 is None else list(self.t0)
            pred = torch.stack([self._rollout(y, t) for y, t in zip(self.states, t0)])
        self._check(pred)
        return pred

    def _check(self, pred: Any) -> None:
        """A CallError (never torch's broadcasting RuntimeError) when the rollout's trajectories do
        not have the windows' length and state shape."""
        want = tuple(self.targets.shape)
        if isinstance(pred, Tensor) and tuple(pred.shape) == want:
            return
        got = tuple(pred.shape) if isinstance(pred, Tensor) else type(pred).__name__
        if isinstance(pred, Tensor) and pred.dim() == len(want) and pred.shape[0] == want[0] \
                and tuple(pred.shape[2:]) == want[2:]:
            steps = pred.shape[1] - 1
            raise CallError(f"the rollout takes {steps} steps per window ({steps + 1} points), but window={self.window} "
                            f"needs {self.window} steps ({self.window + 1} points)", None,
                            hint=f"use window={steps}, or give the program's rk4 {self.window} steps")
        raise CallError(f"the rollout gave trajectories of shape {got}, expected {want} "
                        f"([windows, window + 1, *state])", None,
                        hint="rollout(y0, n_steps) must return [n_steps + 1, *state] for one state "
                        "([W, n_steps + 1, *state] with vectorize='batched')")

    def residuals(self) -> Tensor:
        """The residual vector whose sum of squares is ``forward() * n`` (n: the number of
        observations compared): every window's prediction minus its observations, then the
        continuity gaps weighted as the loss weighs them. `nc.fit` uses it for standard errors."""
        pred = self.predict()
        data = (pred - self.targets).reshape(-1)
        if not (self.continuity_weight and len(self.pair_from)):
            return data
        gap = (pred[self.pair_from, self.pair_offset] - self.states[self.pair_from + 1]).reshape(-1)
        return torch.cat([data, gap * math.sqrt(self.continuity_weight * data.numel() / gap.numel())])

    def forward(self) -> Tensor:
        pred = self.predict()
        loss = (pred - self.targets).square().mean()
        if self.continuity_weight and len(self.pair_from):
            gap = pred[self.pair_from, self.pair_offset] - self.states[self.pair_from + 1]
            loss = loss + self.continuity_weight * gap.square().mean()
        return loss
