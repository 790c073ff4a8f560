"""What the two trajectory experiments (Lotka-Volterra, pendulum) share: data, the compiled fit by
multiple shooting, its best achievable estimate, the noise sweep, and the network baselines."""

# ruff: noqa: B023  -- every closure over a loop variable here is called within its iteration (timed(...))

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import attrs
import torch
from torch import Tensor, nn

import nc
from nc.experiments.baselines import odeint_rollout, pinn_ode, rk4_rollout
from nc.experiments.common import F64, Bar, Config, adam, entry, mlp, n_params, noisy, rel, sweep_lr, timed

__all__ = ["Setup", "compiled_part", "network_part"]


@attrs.frozen
class Setup:
    """One trajectory experiment: ``source`` is an nc program with ``{steps}`` in its rollout."""

    source: str
    truth: dict[str, float]
    start: dict[str, float]
    y0: tuple[float, ...]
    dt: float
    steps: int
    window: int
    continuity: float
    paper_sweep: tuple[float, ...]  # the paper's max error at noise 0/1/2/5/10%, or ()
    noise: float = 0.02

    def tensors(self, values: dict[str, float]) -> dict[str, Tensor]:
        return {k: torch.tensor(v, dtype=F64) for k, v in values.items()}

    def clean(self, steps: int | None = None) -> Tensor:
        """The noise-free trajectory over ``steps`` (a multiple of ``self.steps``), computed once."""
        key = (self.source, self.y0, tuple(self.truth.items()), steps or self.steps)
        if key not in _CLEAN:
            _CLEAN[key] = self.rollout(self.truth, (steps or self.steps) // self.steps)
        return _CLEAN[key]

    def obs(self, level: float, seed: int) -> Tensor:
        return noisy(self.clean(), level, torch.Generator().manual_seed(seed))

    def rollout(self, values: dict[str, float], horizons: int = 1) -> Tensor:
        """The trajectory at constants ``values`` over ``horizons`` times the training horizon:
        the training-horizon rollout chained from its last state (the right-hand sides do not
        read t, so this is the long rk4 itself, without tracing a program ``horizons`` times as
        long: tracing unrolls every step). [horizons * steps + 1, d]."""
        f = rollout(self.source.format(steps=self.steps))
        consts = self.tensors(values)
        parts = [f(s0=torch.tensor(self.y0, dtype=F64), **consts)]
        for _ in range(horizons - 1):
            parts.append(f(s0=parts[-1][-1], **consts)[1:])
        return torch.cat(parts, 0)


NOISE_LEVELS = (0.0, 0.01, 0.02, 0.05, 0.1)
QUICK_LEVELS = (0.0, 0.02, 0.1)
_ROLLOUTS: dict[str, Any] = {}
_MODELS: dict[str, Any] = {}
_CLEAN: dict[Any, Tensor] = {}


def rollout(source: str) -> Any:
    """``nc.compile_fn(source)``, compiled once per run (an rk4 rollout takes a while to trace)."""
    if source not in _ROLLOUTS:
        _ROLLOUTS[source] = nc.compile_fn(source)
    return _ROLLOUTS[source]


def window_model(source: str, start: dict[str, float]) -> Any:
    """The compiled window model, compiled once per run and reset to ``start`` for each fit
    (its trace is cached on the module, so a fresh compile would trace again)."""
    if source not in _MODELS:
        _MODELS[source] = nc.compile(source, params=start, dtype=F64)
    model = _MODELS[source]
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.fill_(start[name.split(".")[-1]])
    return model


def fit_compiled(s: Setup, obs: Tensor, start: dict[str, float], states: Tensor | None = None,
                 epochs: int | None = None) -> tuple[dict[str, float], nc.FitResult, float]:
    """nc's defaults for trajectories: contiguous windows, continuity penalty, nc.fit (auto: L-BFGS);
    ``epochs``: nc.fit's default when None (``--quick`` passes fewer)."""
    model = window_model(s.source.format(steps=s.window), start)
    shoot = nc.ShootingLoss(model, obs, continuity_weight=s.continuity)
    if states is not None:  # start the window states at the clean trajectory too
        with torch.no_grad():
            shoot.states.copy_(states[shoot.starts])
    result, secs = timed(lambda: nc.fit(shoot, None, None, epochs=epochs))
    return {k: float(model.params[k]) for k in s.truth}, result, secs


def max_err(s: Setup, fitted: dict[str, float]) -> float:
    return max(rel(fitted[k], v) for k, v in s.truth.items())


def extrapolation(s: Setup, fitted: dict[str, float]) -> dict[int, float]:
    """MSE against the clean trajectory over 1x, 2x and 5x the training horizon."""
    pred, true = s.rollout(fitted, 5), s.clean(5 * s.steps)
    return {m: float((pred[:m * s.steps + 1] - true[:m * s.steps + 1]).square().mean()) for m in (1, 2, 5)}


def compiled_part(name: str, s: Setup, cfg: Config, bar: Bar, levels: tuple[float, ...]) -> dict[str, Any]:
    """The compiled model over every seed: at the experiment's noise its error, the best
    achievable estimate and its linearised bound, extrapolation; then the noise sweep."""
    seeds = list(cfg.seeds)
    err, best, bound, secs, ratio = [], [], [], [], []
    ext: dict[int, list[float]] = {1: [], 2: [], 5: []}
    per_param: dict[str, list[float]] = {k: [] for k in s.truth}
    clean = s.clean()
    fitted0: dict[str, float] = {}
    for seed in seeds:
        obs = s.obs(s.noise, seed)
        fitted, _, sec = fit_compiled(s, obs, s.start, epochs=cfg.fit_epochs)
        err.append(max_err(s, fitted))
        fitted0 = fitted0 or fitted
        for k, v in s.truth.items():
            per_param[k].append(rel(fitted[k], v))
        secs.append(sec)
        for m, v in extrapolation(s, fitted).items():
            ext[m].append(v)
        bfit, bres, _ = fit_compiled(s, obs, s.truth, states=clean, epochs=cfg.fit_epochs)
        best.append(max_err(s, bfit))
        bound.append(max(bres.stderr.get(k, math.nan) / abs(v) for k, v in s.truth.items()))
        ratio.append(err[-1] / best[-1] if best[-1] > 0 else 1.0)
        bar.step(f"seed {seed}", 2)
    entries = [entry("nc compiled (nc.fit defaults)", f"max parameter error, {s.noise:.0%} noise", err, seeds,
                     seconds=secs, params=len(s.truth), note="contiguous shooting windows, continuity penalty"),
               entry("best achievable (LS from truth)", f"max parameter error, {s.noise:.0%} noise", best, seeds),
               entry("linearised bound (1 sd)", "max stderr / true", bound, seeds),
               entry("nc compiled / best achievable", "ratio of max errors", ratio, seeds, relative=False)]
    entries += [entry("nc compiled (nc.fit defaults)", f"{k} error, {s.noise:.0%} noise", v, seeds)
                for k, v in per_param.items()]
    entries += [entry("nc compiled (nc.fit defaults)", f"trajectory MSE {m}x horizon", v, seeds, relative=False)
                for m, v in ext.items()]
    sweep: dict[str, list[float]] = {}
    for level in levels:
        if level == s.noise:
            sweep[f"{level:g}"] = err
            continue
        vals = []
        for seed in seeds[:cfg.sweep_seeds]:
            fitted, _, _ = fit_compiled(s, s.obs(level, seed), s.start, epochs=cfg.fit_epochs)
            vals.append(max_err(s, fitted))
            bar.step(f"noise {level:g} seed {seed}")
        sweep[f"{level:g}"] = vals
    entries += [entry("nc compiled (nc.fit defaults)", f"noise sweep {float(k):.0%}: max parameter error", v,
                      seeds[:len(v)]) for k, v in sweep.items()]
    plot = {"t": (torch.arange(5 * s.steps + 1) * s.dt).tolist(),
            "clean": s.clean(5 * s.steps).tolist(), "obs": s.obs(s.noise, seeds[0]).tolist(),
            "compiled": s.rollout(fitted0, 5).tolist(),
            "sweep": sweep, "paper_sweep": list(s.paper_sweep)}
    return {"entries": entries, "plot": plot, "err": err, "best": best, "sweep": sweep, "secs": secs}


def network_part(s: Setup, cfg: Config, bar: Bar, rhs_in: int, time_input: bool,
                 physics_residual: Callable[..., list[Tensor]], hybrids: list[tuple[str, Any]],
                 plot: dict[str, Any]) -> list[dict[str, Any]]:
    """MLP right-hand side (RK4), neural ODE (dopri5), PINN (DeepXDE), and the hybrids
    (``(label, build(seed) -> (rhs module, names of its physics constants))``), on the baseline
    seeds; each trained on the paper's windows with Adam, cosine annealing, clip 5.0."""
    d = len(s.y0)
    epochs = cfg.epochs(3000, 30)
    pinn_iters = cfg.epochs(3000, 30)
    clean5 = s.clean(5 * s.steps)
    t_all = torch.arange(s.steps + 1, dtype=F64) * s.dt
    y0 = torch.tensor(s.y0, dtype=F64)
    bseeds = list(cfg.baseline_seeds)
    entries: list[dict[str, Any]] = []

    def windows(obs: Tensor, seed: int) -> Tensor:
        g = torch.Generator().manual_seed(seed)
        last = obs.shape[0] - 1 - 25
        starts = torch.randperm(last + 1, generator=g)[:8 if d == 2 and s.dt == 0.1 else 6]
        return starts

    class Net(nn.Module):
        def __init__(self, seed: int) -> None:
            super().__init__()
            torch.manual_seed(seed)
            self.f = mlp([rhs_in, 64, 64, 64, d])

        def forward(self, t: Tensor, y: Tensor) -> Tensor:
            if time_input:
                y = torch.cat([y, t.expand(*y.shape[:-1], 1)], -1)
            return self.f(y)  # type: ignore[no-any-return]

    def train_rollout(rhs: nn.Module, obs: Tensor, seed: int, lr: float, ep: int, solver: str) -> float:
        starts = windows(obs, seed)
        idx = starts[:, None] + torch.arange(26)
        target = obs[idx]  # [W, 26, d]
        roll = (lambda y: rk4_rollout(rhs, y, s.dt, 25)) if solver == "rk4" else \
            (lambda y: odeint_rollout(rhs, y, s.dt, 25))
        return adam(rhs.parameters(), lambda e: (roll(target[:, 0]) - target).square().mean(), ep, lr,
                    cosine=True, clip=5.0)

    def evaluate(rhs: nn.Module, solver: str) -> tuple[dict[int, float], Tensor]:
        with torch.no_grad():
            pred = (rk4_rollout(rhs, y0, s.dt, 5 * s.steps) if solver == "rk4" else
                    odeint_rollout(rhs, y0, s.dt, 5 * s.steps))
        return {m: float((pred[:m * s.steps + 1] - clean5[:m * s.steps + 1]).square().mean()) for m in (1, 2, 5)}, pred

    for label, solver in (("MLP right-hand side (RK4)", "rk4"), ("neural ODE (dopri5)", "dopri5")):
        ep = epochs if solver == "rk4" else max(1, epochs // 3)

        def val(lr: float, solver: str = solver, ep: int = ep) -> float:
            net = Net(bseeds[0])
            train_rollout(net, s.obs(s.noise, bseeds[0]), bseeds[0], lr, max(1, ep // 4), solver)
            return evaluate(net, solver)[0][1]

        lr, scores = sweep_lr(cfg, 1e-2 if solver == "rk4" else 1e-3, val, grid=[1e-3, 3e-3, 1e-2])
        res: dict[int, list[float]] = {1: [], 2: [], 5: []}
        secs = []
        for seed in bseeds:
            net = Net(seed)
            _, sec = timed(lambda: train_rollout(net, s.obs(s.noise, seed), seed, lr, ep, solver))
            secs.append(sec)
            ev, pred = evaluate(net, solver)
            for m, v in ev.items():
                res[m].append(v)
            if seed == bseeds[0]:
                plot[label] = pred.tolist()
            bar.step(label)
        note = f"lr {lr:g} (sweep at 1/4 epochs: {scores or 'paper lr'}); {ep} epochs"
        entries += [entry(label, f"trajectory MSE {m}x horizon", v, bseeds, relative=False, seconds=secs,
                          params=n_params(Net(0)), note=note) for m, v in res.items()]

    # hybrids: compiled physics with learned parts, trained like the compiled model (windows, Adam)
    for label, build in hybrids:
        errs: dict[str, list[float]] = {}
        secs = []
        for seed in bseeds:
            model, names = build(seed)
            obs = s.obs(s.noise, seed)
            starts = windows(obs, seed)
            target = obs[starts[:, None] + torch.arange(26)]
            _, sec = timed(lambda: adam(model.parameters(), lambda e: (model(target[:, 0]) - target).square().mean(),
                                        epochs, 1e-2, cosine=True, clip=5.0))
            secs.append(sec)
            for k in names:
                errs.setdefault(k, []).append(rel(float(model.params[k]), s.truth[k]))
            bar.step(label)
        entries += [entry(label, f"{k} error, {s.noise:.0%} noise", v, bseeds, seconds=secs, params=n_params(model),
                          note=f"Adam lr 0.01, cosine, clip 5, {epochs} epochs, paper's random windows")
                    for k, v in errs.items()]

    # PINN
    names = list(s.truth)

    def pinn(seed: int, lr: float, iters: int) -> tuple[list[float], Any]:
        return pinn_ode(t_all, s.obs(s.noise, seed), physics_residual, [s.start[k] for k in names], iters, lr, seed)

    def pval(lr: float) -> float:
        got, _ = pinn(bseeds[0], lr, max(1, pinn_iters // 4))
        return max(rel(v, s.truth[k]) for k, v in zip(names, got))

    lr, scores = sweep_lr(cfg, 1e-3, pval, grid=[1e-3, 3e-3, 1e-2])
    perr: dict[str, list[float]] = {k: [] for k in names}
    pmse: list[float] = []
    secs = []
    count = 0
    for seed in bseeds:
        (got, model), sec = timed(lambda: pinn(seed, lr, pinn_iters))
        secs.append(sec)
        for k, v in zip(names, got):
            perr[k].append(rel(v, s.truth[k]))
        pred = torch.as_tensor(model.predict(t_all[:, None].numpy()), dtype=F64)
        pmse.append(float((pred - clean5[:s.steps + 1]).square().mean()))
        count = sum(p.numel() for p in model.net.parameters()) + len(names)
        bar.step("PINN")
    note = f"DeepXDE, lr {lr:g} (sweep at 1/4 iterations: {scores or 'paper lr'}); {pinn_iters} iterations"
    entries += [entry("PINN (DeepXDE)", f"{k} error, {s.noise:.0%} noise", v, bseeds, seconds=secs, params=count,
                      note=note) for k, v in perr.items()]
    entries.append(entry("PINN (DeepXDE)", "trajectory MSE 1x horizon", pmse, bseeds, relative=False, seconds=secs,
                         params=count, note=note + "; a PINN cannot extrapolate in time beyond its domain"))
    return entries
