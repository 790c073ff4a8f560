"""The baselines: RK4 rollouts of a network right-hand side, a neural ODE (torchdiffeq, dopri5)
and PINNs built with DeepXDE (PyTorch backend). Optional dependencies are imported inside the
functions, with a `CallError` naming the ``experiments`` extra when missing."""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from nc.errors import CallError
from nc.experiments.common import F64
from nc.experiments.report import require

__all__ = ["rk4_rollout", "odeint_rollout", "deepxde", "pinn_ode", "pinn_heat"]

Rhs = Callable[[Tensor, Tensor], Tensor]


def rk4_rollout(rhs: Rhs, y0: Tensor, dt: float, steps: int, t0: Tensor | float = 0.0) -> Tensor:
    """Classical RK4 from ``y0`` [..., d]: [..., steps + 1, d] (nc's rk4, in plain torch)."""
    ys = [y0]
    y = y0
    t = torch.as_tensor(t0, dtype=y0.dtype)
    for _ in range(steps):
        k1 = rhs(t, y)
        k2 = rhs(t + dt / 2, y + dt / 2 * k1)
        k3 = rhs(t + dt / 2, y + dt / 2 * k2)
        k4 = rhs(t + dt, y + dt * k3)
        y = y + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        t = t + dt
        ys.append(y)
    return torch.stack(ys, -2)


def odeint_rollout(rhs: Rhs, y0: Tensor, dt: float, steps: int) -> Tensor:
    """torchdiffeq's adaptive dopri5 from ``y0`` [..., d], sampled every ``dt``: [..., steps + 1, d]."""
    tdq = require("torchdiffeq")
    t = torch.arange(steps + 1, dtype=y0.dtype) * dt
    out = tdq.odeint(rhs, y0, t, method="dopri5", rtol=1e-6, atol=1e-8)  # [T, ..., d]
    return out.movedim(0, -2)


def deepxde() -> Any:
    """DeepXDE on its PyTorch backend. nc chooses the backend, not the user: ``DDE_BACKEND`` is
    set to ``pytorch`` for the import (and the user's value put back afterwards), so DeepXDE
    neither guesses a backend nor writes its choice to ``~/.deepxde/config.json``; its banner
    is swallowed (it would break the progress bar)."""
    if "deepxde" not in sys.modules:
        before = os.environ.get("DDE_BACKEND")
        os.environ["DDE_BACKEND"] = "pytorch"
        try:
            with quiet():
                require("deepxde")
        finally:
            if before is None:
                os.environ.pop("DDE_BACKEND", None)
            else:
                os.environ["DDE_BACKEND"] = before
    dde = sys.modules["deepxde"]
    if dde.backend.backend_name != "pytorch":
        raise CallError(f"DeepXDE was imported on its {dde.backend.backend_name} backend before nc reproduce", None,
                        hint="run nc reproduce in a fresh process (it imports DeepXDE on its PyTorch backend)")
    return dde


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """DeepXDE's prints ("Compiling model...", "'compile' took ...") swallowed."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


@contextlib.contextmanager
def dde_float64(dde: Any, seed: int) -> Iterator[None]:
    """DeepXDE seeded and in float64 for one PINN. Its float64 switch sets torch's default dtype
    for the whole process; it is put back afterwards, so that the networks built after a PINN
    (other experiments' MLPs: a float32 default draws other initial weights) are the same
    whether or not a PINN ran before them, and a seed's numbers do not depend on what ran first."""
    before = torch.get_default_dtype()
    try:
        with quiet():
            dde.config.set_default_float("float64")
            dde.config.set_random_seed(seed)
            yield
    finally:
        torch.set_default_dtype(before)


def pinn_ode(t: Tensor, obs: Tensor, residual: Callable[..., list[Tensor]], start: Sequence[float],
             iterations: int, lr: float, seed: int, n_colloc: int = 200,
             width: int = 64, depth: int = 3, weight: float = 0.1) -> tuple[list[float], Any]:
    """A PINN t -> state (``depth`` x ``width`` tanh) with trainable physics constants for an
    ODE: loss = data + ``weight`` * residual at ``n_colloc`` collocation points (DeepXDE).
    ``residual(t, y, dy_dt_list, params)`` gives one residual per component. Returns the
    fitted constants and the trained network's predictor."""
    dde = deepxde()
    with dde_float64(dde, seed):
        return _pinn_ode(dde, t, obs, residual, start, iterations, lr, n_colloc, width, depth, weight)


def _pinn_ode(dde: Any, t: Tensor, obs: Tensor, residual: Callable[..., list[Tensor]], start: Sequence[float],
              iterations: int, lr: float, n_colloc: int, width: int, depth: int, weight: float) -> tuple[list[float], Any]:
    d = obs.shape[-1]
    params = [dde.Variable(float(v)) for v in start]
    geom = dde.geometry.TimeDomain(float(t[0]), float(t[-1]))

    def ode(tt: Tensor, y: Tensor) -> list[Tensor]:
        dy = [dde.grad.jacobian(y, tt, i=i) for i in range(d)]
        return residual(tt, y, dy, params)

    tn, on = t[:, None].numpy(), obs.numpy()
    bcs = [dde.icbc.PointSetBC(tn, on[:, i:i + 1], component=i) for i in range(d)]
    data = dde.data.PDE(geom, ode, bcs, num_domain=n_colloc, num_boundary=2, anchors=None)
    net = dde.nn.FNN([1] + [width] * depth + [d], "tanh", "Glorot normal")
    model = dde.Model(data, net)
    model.compile("adam", lr=lr, loss_weights=[weight] * d + [1.0] * d, external_trainable_variables=params)
    model.train(iterations=iterations, display_every=max(iterations, 1), verbose=0)
    return [float(p.detach()) for p in params], model


def pinn_heat(x: Tensor, t: Tensor, u: Tensor, alpha0: float, iterations: int, lr: float, seed: int,
              n_colloc: int = 200, weight: float = 0.1) -> tuple[float, Any]:
    """The heat PINN (x, t) -> u, 2-64-64-64-1 tanh, trainable alpha, data (u on the grid
    points ``x`` x ``t``) + ``weight`` * residual u_t - alpha u_xx at ``n_colloc`` points."""
    dde = deepxde()
    with dde_float64(dde, seed):
        return _pinn_heat(dde, x, t, u, alpha0, iterations, lr, n_colloc, weight)


def _pinn_heat(dde: Any, x: Tensor, t: Tensor, u: Tensor, alpha0: float, iterations: int, lr: float,
               n_colloc: int, weight: float) -> tuple[float, Any]:
    alpha = dde.Variable(alpha0)
    geom = dde.geometry.GeometryXTime(dde.geometry.Interval(float(x[0]), float(x[-1])),
                                      dde.geometry.TimeDomain(float(t[0]), float(t[-1])))

    def pde(xt: Tensor, y: Tensor) -> Tensor:
        return dde.grad.jacobian(y, xt, i=0, j=1) - alpha * dde.grad.hessian(y, xt, i=0, j=0)

    X, Tm = torch.meshgrid(x, t, indexing="xy")  # [len(t), len(x)]
    pts = torch.stack([X.reshape(-1), Tm.reshape(-1)], -1).numpy()
    bc = dde.icbc.PointSetBC(pts, u.reshape(-1, 1).numpy())
    data = dde.data.TimePDE(geom, pde, [bc], num_domain=n_colloc, num_boundary=0, num_initial=0)
    net = dde.nn.FNN([2, 64, 64, 64, 1], "tanh", "Glorot normal")
    model = dde.Model(data, net)
    model.compile("adam", lr=lr, loss_weights=[weight, 1.0], external_trainable_variables=[alpha])
    model.train(iterations=iterations, display_every=max(iterations, 1), verbose=0)
    return float(alpha.detach()), model


def count(model: Any) -> int:
    """Trainable parameters of a DeepXDE model's network."""
    net: nn.Module = model.net
    return sum(p.numel() for p in net.parameters())


def as_f64(x: Any) -> Tensor:
    return torch.as_tensor(x, dtype=F64)
