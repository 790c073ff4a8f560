"""Standard errors and covariance of fitted constants, from the Jacobian of the residuals.

At the least-squares optimum ``theta`` of residuals ``r(theta)`` (n of them, p constants), the
Gauss-Newton approximation of the Fisher information gives

    cov(theta) = s^2 (J^T J)^-1,   J = d r / d theta (n x p),   s^2 = RSS / (n - p),

the textbook linearised covariance of nonlinear least squares. Its assumptions, which the
numbers inherit: the noise of the observations is independent, Gaussian and of one variance;
the model is correct (the residuals are noise, not model error); the fit ended at the optimum
(the gradient is zero there); and the model is close to linear in the constants over a few
standard errors. Where they hold, ``value +- 1.96 * stderr`` covers the true value 95% of the
time (tested over 100 noise seeds of two experiments in ``tests/test_fit_uncertainty.py``).

What is estimated: every trainable parameter except those of learned components (the networks
given to ``nc.compile(..., modules=...)``, which live under ``learned``). Network weights are held
fixed at the optimum: the reported errors are conditional on the fitted network, so they leave
out the uncertainty the network adds. Window states of a `nc.ShootingLoss` are estimated with
the constants (they are unknowns of the same least-squares problem), and their uncertainty is
in the covariance. A fit with a callable ``loss=``, or a model that returns its own loss without
a ``residuals()`` method, has no residuals, and so no standard errors (``FitResult.uncertainty``
says why).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import torch
from torch import Tensor, nn
from torch.func import functional_call, jacfwd

from nc.fit_data import FitData, Trainable

__all__ = ["MAX_ESTIMATED", "Uncertainty", "estimate", "format_value", "residual_function"]

#: above this many estimated scalars the Jacobian is not formed (too costly; not a few constants)
MAX_ESTIMATED = 2000


@attrs.frozen
class Uncertainty:
    """Standard errors of the scalar constants (name -> float), the covariance of every estimated
    scalar (``names`` names its rows: ``"G"``, or ``"states[3, 1]"`` for an element of a
    tensor parameter), and ``note``: the assumptions, or why nothing was estimated."""

    stderr: dict[str, float]
    covariance: Tensor | None
    names: tuple[str, ...]
    note: str
    dof: int = 0
    sigma: float = math.nan


ASSUMPTIONS = ("linearised (Gauss-Newton) covariance: independent Gaussian noise of one variance, "
               "estimated from the residuals as RSS/(n - p); a correct model; the fit at the optimum")


def none(note: str) -> Uncertainty:
    return Uncertainty({}, None, (), note)


def learned_ids(model: nn.Module) -> set[int]:
    """The ids of the parameters of learned components (``learned`` submodules of nc modules)."""
    out: set[int] = set()
    for m in model.modules():
        learned = getattr(m, "learned", None)  # NcModule: a read-only mapping name -> module
        if isinstance(learned, Mapping):
            out |= {id(p) for sub in learned.values() if isinstance(sub, nn.Module) for p in sub.parameters()}
    return out


def residual_function(model: nn.Module, data: FitData, loss: Any) -> Callable[[], Tensor] | str:
    """A function of no arguments giving the residual vector at the model's current parameters,
    or a string saying why there is none."""
    if data.target is None:
        method = getattr(model, "residuals", None)
        if not callable(method):
            return "the model returns its own loss and has no residuals() method"
        return lambda: method().reshape(-1)  # type: ignore[no-any-return]
    if not isinstance(loss, str):
        return "loss= is a callable, not a sum of squared residuals"
    if loss != "mse":
        return f"loss={loss!r} is not a sum of squared residuals"
    return lambda: (data.call(model) - data.target).reshape(-1)


def _element_names(name: str, shape: Sequence[int]) -> list[str]:
    if not shape:
        return [name]
    idx = torch.cartesian_prod(*[torch.arange(s) for s in shape]) if len(shape) > 1 else torch.arange(shape[0])[:, None]
    return [f"{name}[{', '.join(str(int(i)) for i in row)}]" for row in idx.reshape(-1, len(shape))]


def _jacobian(model: nn.Module, residuals: Callable[[], Tensor], estimated: list[Trainable]) -> Tensor:
    """d residuals / d (every estimated scalar), [n, p]: forward mode, or reverse mode (one
    backward per residual is too many; a vector-Jacobian product per parameter via double
    backward) where forward mode is not supported."""
    flat0 = torch.cat([p.detach().reshape(-1) for _, _, p in estimated])
    sizes = [p.numel() for _, _, p in estimated]

    def at(flat: Tensor) -> Tensor:
        values = {f"model.{path}": v.reshape(p.shape) for (_, path, p), v in zip(estimated, flat.split(sizes))}
        return functional_call(_Residuals(model, residuals), values, ())

    try:
        return jacfwd(at)(flat0).reshape(-1, flat0.numel())
    except Exception:  # noqa: BLE001 - an op without forward-mode AD: the slower exact path
        flat = flat0.clone().requires_grad_(True)
        r = at(flat)
        u = torch.zeros_like(r, requires_grad=True)
        (g,) = torch.autograd.grad(r, flat, u, create_graph=True)  # g = J^T u, linear in u
        cols = [torch.autograd.grad(g[j], u, retain_graph=True)[0] for j in range(flat.numel())]
        return torch.stack(cols, dim=1).detach()


class _Residuals(nn.Module):
    """The residual function as a module holding the model, so that ``functional_call`` can swap
    parameter values in (paths ``model.<path>``)."""

    def __init__(self, model: nn.Module, residuals: Callable[[], Tensor]) -> None:
        super().__init__()
        self.model = model
        self._residuals = residuals

    def forward(self) -> Tensor:
        return self._residuals()


def estimate(model: nn.Module, named: list[Trainable], residuals: Callable[[], Tensor] | str) -> Uncertainty:
    """The `Uncertainty` of the trainable parameters at their current values."""
    if isinstance(residuals, str):
        return none(f"no standard errors: {residuals}")
    skip = learned_ids(model)
    estimated = [t for t in named if id(t[2]) not in skip]
    if not estimated:
        return none("no standard errors: every trainable parameter belongs to a learned component")
    p = sum(t[2].numel() for t in estimated)
    if p > MAX_ESTIMATED:
        return none(f"no standard errors: {p} estimated scalars (more than {MAX_ESTIMATED})")
    with torch.no_grad():
        r = residuals().detach()
    n = r.numel()
    if n <= p:
        return none(f"no standard errors: {n} residuals for {p} unknowns (needs more residuals than unknowns)")
    J = _jacobian(model, residuals, estimated).to(torch.float64)
    rss = float(r.to(torch.float64).square().sum())
    s2 = rss / (n - p)
    jtj = J.T @ J
    evals, evecs = torch.linalg.eigh(jtj)
    top = float(evals.max()) if p else 0.0
    null = evals <= 1e-12 * max(top, 1e-300)
    inv = (evecs[:, ~null] / evals[~null]) @ evecs[:, ~null].T
    cov = s2 * inv
    var = cov.diagonal().clone()
    note = ASSUMPTIONS
    if bool(null.any()):
        # a direction the data do not determine: its constants have no finite standard error
        weak = (evecs[:, null].abs() > 1e-6).any(dim=1)
        var[weak] = math.inf
        cov[weak, :] = math.nan
        cov[:, weak] = math.nan
        note += "; J^T J is singular: some constants are not identifiable from these data (stderr inf)"
    names: list[str] = []
    stderr: dict[str, float] = {}
    i = 0
    for name, _, prm in estimated:
        names += _element_names(name, tuple(prm.shape))
        if prm.numel() == 1:
            stderr[name] = math.sqrt(float(var[i]))
        i += prm.numel()
    if skip & {id(t[2]) for t in named}:
        note += "; learned components' weights held fixed at the optimum (their uncertainty is not included)"
    return Uncertainty(stderr, cov, tuple(names), note, n - p, math.sqrt(s2))


def format_value(value: float, stderr: float | None) -> str:
    """``6.6741 ± 0.0031``: the value to the stderr's second significant digit (the value alone,
    in full, without a finite positive stderr)."""
    if stderr is None or not math.isfinite(stderr) or stderr <= 0:
        tail = "" if stderr is None else (" ± inf" if stderr == math.inf else " ± 0")
        return f"{value:.12g}{tail}"
    digits = max(0, 1 - math.floor(math.log10(stderr)))
    if digits > 15:
        return f"{value:.15g} ± {stderr:.2g}"
    return f"{value:.{digits}f} ± {stderr:.{digits}f}"
