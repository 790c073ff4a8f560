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
import time
from collections.abc import Callable, Mapping, Sequence

import attrs
import torch
from torch import Tensor, nn

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
    errors: dict[str, float] = attrs.field(factory=dict)


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
                  substeps: int, iterations: int, factors: Mapping[str, float], continuity: float = 0.0,
                  states: Tensor | None = None, errors: bool = True) -> Candidate:
    """Fit the coefficients ``names`` of the right-hand side ``source`` (from `rhs_source`, with
    each coefficient multiplied by its ``factors`` entry so that all are of order one) to the
    trajectories by multiple shooting; return the `Candidate` with its trajectory BIC, the
    coefficients in the units of the data and their standard errors.

    The fit is Levenberg-Marquardt on the joint problem (coefficients and every window's
    starting state). A window's residuals depend on its own state and the shared coefficients
    only, so the Jacobian costs ``k + d`` forward-mode products, batched over all windows at
    once; the continuity rows (the gap where a window's end meets the next window's state,
    weighted by ``continuity``, default ``window + 1``) couple neighbouring windows only, and
    the normal equations (``k + W d`` unknowns) are solved directly. A step costs about as much
    as ``k + d + 1`` rollouts, and a fit takes a handful of steps (quadratic convergence near a
    good start) where first-order methods took hundreds of passes over the window states.
    ``states``: the window states to start from (a previous fit's ``shoot.states``, for a warm
    start), else the smoothed data; ``errors``: compute standard errors (one more Jacobian).
    """
    t0 = time.perf_counter()
    model = build_model(source, names, window, substeps)
    shoot = Shooting(model, trajs, scale, window, substeps)
    rho = float(continuity or window + 1)
    coef = torch.stack([model.params[n].detach().reshape(()) for n in names]) if names else torch.zeros(0, dtype=F64)
    states = (shoot.states if states is None else states).detach().clone()
    n_obs = shoot.targets.numel()
    pf, po = shoot.pair_from, shoot.pair_offset

    def resid(c: Tensor, st: Tensor) -> Tensor:
        return shoot.predict({n: c[i] for i, n in enumerate(names)}, st) - shoot.targets  # type: ignore[no-any-return]

    def costs(c: Tensor, st: Tensor) -> tuple[float, float]:
        """(data RSS, data RSS + weighted continuity gaps)."""
        with torch.no_grad():
            r = resid(c, st)
            data = float(r.square().sum())
            gap = float((r[pf, po] + shoot.targets[pf, po] - st[pf + 1]).square().sum()) if len(pf) else 0.0
        total = data + rho * gap
        return (data, total) if math.isfinite(total) else (math.inf, math.inf)

    rss, cost = costs(coef, states)
    lam = 1e-3
    for _ in range(iterations):
        r, jc, js = _jacobians(resid, coef, states)
        step = _lm_steps(r, jc, js, states, pf, po, shoot.targets, rho)
        improved = False
        for _attempt in range(12):
            dc, ds = step(lam)
            new_c, new_s = coef + dc, states + ds
            new_rss, new_cost = costs(new_c, new_s)
            if new_cost < cost:
                improved = True
                break
            lam *= 6.0
        if not improved:
            break
        gain = (cost - new_cost) / max(cost, 1e-300)
        coef, states, rss, cost = new_c, new_s, new_rss, new_cost
        lam = max(lam / 5.0, 1e-12)
        if gain < 1e-10 or cost <= n_obs * 1e-26:
            break
    with torch.no_grad():
        for i, n in enumerate(names):
            model.params[n].copy_(coef[i])
        shoot.states.copy_(states)
    floor = n_obs * 1e-20  # roundoff: below this, fits are equally exact and only k counts
    bic = n_obs * math.log(max(rss, floor) / n_obs) + len(names) * math.log(n_obs) if math.isfinite(rss) else math.inf
    coefs = {name: float(coef[i]) * factors[name] for i, name in enumerate(names)}
    errs = dict.fromkeys(names, math.nan)
    if errors and math.isfinite(cost) and names:
        r, jc, js = _jacobians(resid, coef, states)
        errs = _errors(jc, js, rss, n_obs, names, factors)
    return Candidate(coefs, rss, n_obs, bic, cost / n_obs, time.perf_counter() - t0, model, shoot, errs)


def _jacobians(resid: Callable[[Tensor, Tensor], Tensor], coef: Tensor, states: Tensor
               ) -> tuple[Tensor, Tensor, Tensor]:
    """Residuals [W, m], their Jacobian in the coefficients [W, m, k] and in each window's own
    state [W, m, d], by forward mode: one product per coefficient, and one per state component
    (the unit tangent of component i in every window at once: windows do not interact)."""
    W = states.shape[0]
    flat = states.reshape(W, -1)
    d, k = flat.shape[1], coef.numel()
    tc = torch.cat([torch.eye(k, dtype=F64), torch.zeros(d, k, dtype=F64)])  # [k + d, k]
    unit = torch.cat([torch.zeros(k, d, dtype=F64), torch.eye(d, dtype=F64)])  # [k + d, d]
    ts = unit[:, None, :].expand(k + d, W, d).reshape(k + d, *states.shape)
    with torch.no_grad():
        r = resid(coef, states).reshape(W, -1)
    try:
        out = torch.func.vmap(lambda a, b: torch.func.jvp(resid, (coef, states), (a, b))[1])(tc, ts)
    except Exception:  # noqa: BLE001 - a program vmap cannot batch: one product at a time
        out = torch.stack([torch.func.jvp(resid, (coef, states), (a, b))[1] for a, b in zip(tc, ts)])
    out = out.reshape(k + d, W, -1).permute(1, 2, 0)  # [W, m, k + d]
    return r, out[..., :k], out[..., k:]


def _lm_steps(r: Tensor, jc: Tensor, js: Tensor, states: Tensor, pf: Tensor, po: Tensor, targets: Tensor,
              rho: float) -> Callable[[float], tuple[Tensor, Tensor]]:
    """The damped Gauss-Newton step as a function of the damping ``lam`` (Marquardt's scaling
    by the diagonal), over the coefficients and all window states at once. The normal matrix is
    assembled block by block: data rows touch one window's state, continuity rows (window
    ``w``'s point at offset ``o`` minus window ``w + 1``'s state, weight ``rho``) two."""
    W, m, k = jc.shape
    d = js.shape[2]
    n = k + W * d
    h = torch.zeros(n, n, dtype=F64)
    g = torch.zeros(n, dtype=F64)
    hs = h[k:, k:].view(W, d, W, d)
    idx = torch.arange(W)
    # data rows
    h[:k, :k] += torch.einsum("wmi,wmj->ij", jc, jc)
    h[:k, k:] += torch.einsum("wmi,wmj->iwj", jc, js).reshape(k, W * d)
    hs[idx, :, idx, :] += js.transpose(1, 2) @ js
    g[:k] += torch.einsum("wmi,wm->i", jc, r)
    g[k:] += torch.einsum("wmi,wm->wi", js, r).reshape(-1)
    if len(pf):
        rows = (po[:, None] * d + torch.arange(d)[None, :])  # [P, d] the rows of the end point
        ec = jc[pf[:, None], rows]  # [P, d, k]
        es = js[pf[:, None], rows]  # [P, d, d]
        gap = (r[pf[:, None], rows] + targets.reshape(W, -1)[pf[:, None], rows]
               - states.reshape(W, -1)[pf + 1])  # [P, d]
        nxt = pf + 1
        h[:k, :k] += rho * torch.einsum("pai,paj->ij", ec, ec)
        hcs = h[:k, k:].view(k, W, d)
        hcs[:, pf, :] += rho * torch.einsum("pai,paj->ipj", ec, es)
        hcs[:, nxt, :] -= rho * ec.permute(2, 0, 1)
        hs[pf, :, pf, :] += rho * es.transpose(1, 2) @ es
        hs[pf, :, nxt, :] -= rho * es.transpose(1, 2)
        hs[nxt, :, pf, :] -= rho * es
        hs[nxt, :, nxt, :] += rho * torch.eye(d, dtype=F64)
        g[:k] += rho * torch.einsum("pai,pa->i", ec, gap)
        gs = g[k:].view(W, d)
        gs[pf] += rho * torch.einsum("pai,pa->pi", es, gap)
        gs[nxt] -= rho * gap
    h[k:, :k] = h[:k, k:].T
    diag = torch.diagonal(h).clamp_min(1e-12)

    def step(lam: float) -> tuple[Tensor, Tensor]:
        sol = torch.linalg.solve(h + torch.diag(lam * diag + 1e-14), -g)
        return sol[:k], sol[k:].reshape(states.shape)

    return step


def _errors(jc: Tensor, js: Tensor, cost: float, n_obs: int, names: Sequence[str], factors: Mapping[str, float]
            ) -> dict[str, float]:
    """Gauss-Newton standard errors ``sigma^2 (J^T J)^-1`` of the coefficients with the window
    states profiled out (Schur complement of the block-diagonal state part; the continuity rows
    are left out, which makes them slightly conservative); NaN where the information matrix is
    singular."""
    k = len(names)
    b = js.transpose(1, 2) @ js
    c = js.transpose(1, 2) @ jc
    schur = torch.linalg.solve_ex(b + 1e-12 * torch.eye(b.shape[-1], dtype=F64), c)[0]
    info = torch.einsum("wmi,wmj->ij", jc, jc) - (c.transpose(1, 2) @ schur).sum(0)
    sigma2 = cost / max(n_obs - js.shape[0] * js.shape[2] - k, 1)
    cov, bad = torch.linalg.inv_ex(info)
    diag = torch.diagonal(cov) * sigma2
    return {n: (math.sqrt(float(v)) * abs(factors[n]) if not int(bad) and float(v) >= 0 else math.nan)
            for n, v in zip(names, diag)}


def standard_errors(cand: Candidate, factors: Mapping[str, float]) -> dict[str, float]:
    """Gauss-Newton standard errors of the coefficients of a fitted candidate (window states
    profiled out, computed at the end of its fit); NaN where the information matrix is singular."""
    del factors  # the errors were computed in the data's units already
    return dict(cand.errors)
