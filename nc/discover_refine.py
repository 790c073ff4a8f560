"""Stage 2 of `nc.discover`: fit a candidate right-hand side to the integrated trajectories.

The candidate is one compiled nc program, ``(rk4 rhs s0 h n)``, whose coefficients are trainable
constants, each multiplied by a fixed factor so that all are of order one (a well-conditioned
problem for L-BFGS). Each trajectory is cut into windows (multiple shooting, as `nc.ShootingLoss`
does, batched here across trajectories of different time steps: every window starts from its
own trainable state, so noise in the observations is not fed into the integrator, and the
fitted states are the denoised trajectory), and fitted by `nc.fit` with L-BFGS. Each state is
divided by its standard deviation inside the loss, so every state weighs the same whatever its units.

`standard_errors` gives Gauss-Newton standard errors of the coefficients, with the window states
profiled out (a Schur complement over the block-diagonal window part; the continuity penalty is
left out, which makes them slightly conservative).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import attrs
import torch
from torch import Tensor, nn

from nc.fit import fit as nc_fit
from nc.module import NcModule

__all__ = ["Candidate", "Trajectory", "fit_candidate", "standard_errors"]

F64 = torch.float64


@attrs.frozen
class Trajectory:
    """One trajectory: observations [T, *state] (float64), its step ``dt`` and smoothed values."""

    obs: Tensor
    dt: float
    smooth: Tensor


@attrs.frozen
class Candidate:
    """A fitted candidate: coefficient name -> value, the trajectory residual sum of squares
    (in units of each state's standard deviation) over ``n_obs`` numbers, and the BIC."""

    coefficients: dict[str, float]
    rss: float
    n_obs: int
    bic: float
    loss: float
    seconds: float
    model: NcModule = attrs.field(repr=False)
    shoot: nn.Module = attrs.field(repr=False)


class Shooting(nn.Module):
    """Multiple shooting over every trajectory at once (the idea of `nc.ShootingLoss`, batched
    across trajectories of different steps): contiguous windows of ``window`` steps, each from a
    trainable state [W, *state]; the loss is the mean squared error over every window point plus
    the mean squared gap where a window's end meets the next window's state (continuity)."""

    targets: Tensor  # [W, window + 1, *state], in units of scale
    h: Tensor  # [W] each window's time step

    def __init__(self, model: NcModule, trajs: Sequence[Trajectory], scale: Tensor, window: int,
                 substeps: int) -> None:
        super().__init__()
        self.model, self.scale, self.window, self.substeps = model, scale, window, substeps
        starts: list[int] = []
        targets: list[Tensor] = []
        init: list[Tensor] = []
        steps: list[float] = []
        pairs: list[tuple[int, int]] = []
        for tr in trajs:
            T = len(tr.obs)
            first = list(range(0, T - window, window))
            if first[-1] != T - 1 - window:
                first.append(T - 1 - window)
            base = len(starts)
            for i, a in enumerate(first):
                if i + 1 < len(first):
                    pairs.append((base + i, first[i + 1] - a))
                starts.append(a)
                targets.append(tr.obs[a: a + window + 1] / scale)
                init.append(tr.smooth[a] / scale)  # denoised starting states
                steps.append(tr.dt)
        self.register_buffer("targets", torch.stack(targets))
        self.register_buffer("h", torch.tensor(steps, dtype=F64))
        self.states = nn.Parameter(torch.stack(init))
        self.pair_from = torch.tensor([p for p, _ in pairs], dtype=torch.long)
        self.pair_offset = torch.tensor([d for _, d in pairs], dtype=torch.long)

    def predict(self, params: Mapping[str, Tensor] | None = None, states: Tensor | None = None) -> Tensor:
        """The windows' trajectories [W, window + 1, *state] in units of ``scale``."""
        st = self.states if states is None else states
        kwargs = {"s0": st * self.scale, "h": self.h}  # h: one step per window (a batch axis)
        out = (self.model(**kwargs) if params is None
               else torch.func.functional_call(self.model, dict(params), (), kwargs))
        return out[:, :: self.substeps] / self.scale

    def forward(self) -> Tensor:
        pred = self.predict()
        loss = (pred - self.targets).square().mean()
        if len(self.pair_from):
            gap = pred[self.pair_from, self.pair_offset] - self.states[self.pair_from + 1]
            loss = loss + gap.square().mean()
        return loss


def build_model(source: str, names: Sequence[str], window: int, substeps: int) -> NcModule:
    """The rollout program ``(rk4 rhs s0 h window*substeps)`` compiled with ``names`` trainable."""
    return NcModule(f"{source}\n(rk4 rhs s0 h {window * substeps})", trainable=list(names), dtype=F64,
                    name="<discovered>")


def fit_candidate(source: str, names: Sequence[str], trajs: Sequence[Trajectory], scale: Tensor, window: int,
                  substeps: int, epochs: int, factors: Mapping[str, float]) -> Candidate:
    """Fit the coefficients ``names`` of the right-hand side ``source`` (from `rhs_source`, with
    each coefficient multiplied by its ``factors`` entry so that all are of order one) to the
    trajectories by multiple shooting; return the `Candidate` with its trajectory BIC and the
    coefficients in the units of the data."""
    model = build_model(source, names, window, substeps)
    shoot = Shooting(model, trajs, scale, window, substeps)
    res = nc_fit(shoot, None, None, optimizer="lbfgs", dtype=F64, epochs=epochs, patience=2, rel_improvement=1e-10)
    with torch.no_grad():
        rss = float((shoot.predict() - shoot.targets).square().sum())
    n = shoot.targets.numel()
    floor = n * 1e-20  # roundoff: below this, fits are equally exact and only k counts
    bic = n * math.log(max(rss, floor) / n) + len(names) * math.log(n)
    coefs = {name: float(model.params[name].detach()) * factors[name] for name in names}
    return Candidate(coefs, rss, n, bic, float(res.loss), res.seconds, model, shoot)


def standard_errors(cand: Candidate, factors: Mapping[str, float]) -> dict[str, float]:
    """Gauss-Newton standard errors of the coefficients of a fitted candidate (window states
    profiled out); NaN where the information matrix is singular."""
    names = list(cand.coefficients)
    if not names:
        return {}
    k, shoot = len(names), cand.shoot
    assert isinstance(shoot, Shooting)
    base = tuple(cand.model.params[n].detach() for n in names)
    states = shoot.states.detach()

    def resid(coefs: tuple[Tensor, ...], st: Tensor) -> Tensor:
        return shoot.predict(dict(zip(names, coefs)), st) - shoot.targets  # type: ignore[no-any-return]

    jc = []
    for j in range(k):
        tang = tuple(torch.ones_like(v) if i == j else torch.zeros_like(v) for i, v in enumerate(base))
        jc.append(torch.func.jvp(lambda c: resid(c, states), (base,), (tang,))[1])
    jc_t = torch.stack(jc, dim=-1).reshape(len(states), -1, k)  # [W, rows per window, k]
    flat = states.reshape(len(states), -1)
    js = []
    for i in range(flat.shape[1]):  # each window's rows depend on its own state only
        unit = torch.zeros_like(flat)
        unit[:, i] = 1.0
        js.append(torch.func.jvp(lambda st: resid(base, st), (states,), (unit.reshape(states.shape),))[1])
    js_t = torch.stack(js, dim=-1).reshape(len(states), -1, flat.shape[1])  # [W, rows, d]
    b = js_t.transpose(1, 2) @ js_t  # [W, d, d]
    c = js_t.transpose(1, 2) @ jc_t  # [W, d, k]
    schur = torch.linalg.solve_ex(b + 1e-12 * torch.eye(b.shape[-1], dtype=F64), c)[0]
    info = (jc_t.transpose(1, 2) @ jc_t).sum(0) - (c.transpose(1, 2) @ schur).sum(0)
    n_obs = shoot.targets.numel()
    sigma2 = cand.rss / max(n_obs - flat.numel() - k, 1)
    cov, bad = torch.linalg.inv_ex(info)
    diag = torch.diagonal(cov) * sigma2
    return {n: (math.sqrt(float(v)) * abs(factors[n]) if not int(bad) and float(v) >= 0 else math.nan)
            for n, v in zip(names, diag)}


def relative_sizes(coefs: Mapping[str, float], col_rms: Mapping[str, float], target_rms: Mapping[str, float]
                   ) -> dict[str, float]:
    """Each coefficient's normalised size: ``|c| * rms(term) / rms(d state/dt)``, the fraction of
    the derivative it carries (the quantity the STLSQ threshold applies to)."""
    return {n: abs(v) * col_rms[n] / target_rms[n] for n, v in coefs.items()}
