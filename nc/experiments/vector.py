"""Experiment 5: 3-D vector mechanics: gravity (G from 3.0, 100 samples, 2% noise) and gravity
with a learned drag (1% noise)."""

# ruff: noqa: B023  -- every closure over a loop variable here is called within its iteration (timed(...))

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

import nc
from nc.experiments.common import F64, Bar, Config, adam, entry, mlp, n_params, rel, sweep_lr, timed
from nc.experiments.report import plt
from nc.experiments.stats import quantile

__all__ = ["run", "figures"]

GRAVITY = "(let ((r_mag (norm r))) (scale (/ (* (- 0 G) (* m1 m2)) (* r_mag (* r_mag r_mag))) r))"
DRAG = "(+ (let ((r_mag (norm r))) (scale (/ (* (- 0 G) (* m1 m2)) (* r_mag (* r_mag r_mag))) r)) (drag v))"
G = 6.674


def inputs(n: int, gen: torch.Generator) -> dict[str, Tensor]:
    d = torch.randn(n, 3, generator=gen, dtype=F64)
    size = 1 + 4 * torch.rand(n, 1, generator=gen, dtype=F64)
    return {"r": d / d.norm(dim=-1, keepdim=True) * size, "m1": 1 + 4 * torch.rand(n, generator=gen, dtype=F64),
            "m2": 1 + 4 * torch.rand(n, generator=gen, dtype=F64)}


def law(x: dict[str, Tensor]) -> Tensor:
    return nc.compile_fn(GRAVITY)(r=x["r"], m1=x["m1"], m2=x["m2"], G=torch.tensor(G, dtype=F64))


def noisy(clean: Tensor, level: float, gen: torch.Generator) -> Tensor:
    return clean + level * clean.abs().mean() * torch.randn(clean.shape, generator=gen, dtype=F64)


def flat(x: dict[str, Tensor]) -> Tensor:
    return torch.cat([x["r"], x["m1"][:, None], x["m2"][:, None]] + ([x["v"]] if "v" in x else []), -1)


def rel_err(pred: Tensor, true: Tensor) -> float:
    return float((pred - true).norm() / true.norm())


def run(cfg: Config, bar: Bar) -> dict[str, Any]:
    seeds, bseeds = list(cfg.seeds), list(cfg.baseline_seeds)
    err, best, bound, secs, test_err = [], [], [], [], []
    for seed in seeds:
        gen = torch.Generator().manual_seed(seed)
        train, test = inputs(100, gen), inputs(50, gen)
        force = noisy(law(train), 0.02, gen)
        model = nc.compile(GRAVITY, params={"G": 3.0}, dtype=F64)
        _, s = timed(lambda: nc.fit(model, train, force))
        secs.append(s)
        err.append(rel(float(model.params["G"]), G))
        with torch.no_grad():
            test_err.append(rel_err(model(**test), law(test)))
        tm = nc.compile(GRAVITY, params={"G": G}, dtype=F64)
        res = nc.fit(tm, train, force)
        best.append(rel(float(tm.params["G"]), G))
        bound.append(res.stderr["G"] / G)
        bar.step(f"seed {seed}")
    entries = [entry("nc compiled (nc.fit defaults)", "G error, 2% noise", err, seeds, seconds=secs, params=1),
               entry("best achievable (LS from truth)", "G error, 2% noise", best, seeds),
               entry("linearised bound (1 sd)", "stderr(G) / G", bound, seeds),
               entry("nc compiled (nc.fit defaults)", "test force rel. error", test_err, seeds, seconds=secs, params=1)]
    epochs = cfg.epochs(3000, 50)
    perr, psecs, merr, msecs, herr, hsecs, dmerr, dmsecs = [], [], [], [], [], [], [], []

    def train_mlp(seed: int, lr: float, ep: int, drag: bool) -> tuple[float, float]:
        gen = torch.Generator().manual_seed(seed)
        train, test = inputs(100, gen), inputs(50, gen)
        if drag:
            train["v"], test["v"] = 2 * torch.randn(100, 3, generator=gen, dtype=F64), 2 * torch.randn(50, 3, generator=gen,
                                                                                                     dtype=F64)
        tf = law(train) - (0.5 * train["v"] * train["v"].norm(dim=-1, keepdim=True) if drag else 0)
        target = noisy(tf, 0.01 if drag else 0.02, gen)
        torch.manual_seed(seed)
        net = mlp([8 if drag else 5, 64, 64, 64, 3])
        z = flat(train)
        _, s = timed(lambda: adam(net.parameters(), lambda e: (net(z) - target).square().mean(), ep, lr))
        truth = law(test) - (0.5 * test["v"] * test["v"].norm(dim=-1, keepdim=True) if drag else 0)
        with torch.no_grad():
            return rel_err(net(flat(test)), truth), s

    lr, scores = sweep_lr(cfg, 1e-2, lambda lr: train_mlp(bseeds[0] + 500, lr, max(1, epochs // 4), False)[0],
                          grid=[1e-3, 3e-3, 1e-2])
    for seed in bseeds:
        gen = torch.Generator().manual_seed(seed)
        train = inputs(100, gen)
        _ = inputs(50, gen)
        force = noisy(law(train), 0.02, gen)
        model = nc.compile(GRAVITY, params={"G": 3.0}, dtype=F64)
        _, s = timed(lambda: nc.fit(model, train, force, optimizer="adam", lr=0.01, epochs=epochs))
        perr.append(rel(float(model.params["G"]), G))
        psecs.append(s)
        e, s = train_mlp(seed, lr, epochs, False)
        merr.append(e)
        msecs.append(s)
        e, s = train_mlp(seed, lr, epochs, True)
        dmerr.append(e)
        dmsecs.append(s)
        # gravity with a learned drag: compiled gravity + drag MLP 3-32-32-3 on v
        gen = torch.Generator().manual_seed(seed)
        tr = inputs(100, gen)
        _ = inputs(50, gen)
        tr["v"] = 2 * torch.randn(100, 3, generator=gen, dtype=F64)
        target = noisy(law(tr) - 0.5 * tr["v"] * tr["v"].norm(dim=-1, keepdim=True), 0.01, gen)
        torch.manual_seed(seed)
        hyb = nc.compile(DRAG, params={"G": 3.0}, modules={"drag": mlp([3, 32, 32, 3])}, dtype=F64)
        _, s = timed(lambda: adam(hyb.parameters(), lambda e: (hyb(**tr) - target).square().mean(), epochs, 1e-2))
        herr.append(rel(float(hyb.params["G"]), G))
        hsecs.append(s)
        bar.step("baselines", 3)
    entries += [
        entry("paper recipe (Adam 0.01)", "G error, 2% noise", perr, bseeds, seconds=psecs, params=1,
              note=f"{epochs} epochs"),
        entry("MLP 5-64x3-3", "test force rel. error", merr, bseeds, seconds=msecs, params=n_params(mlp([5, 64, 64, 64, 3])),
              note=f"lr {lr:g} (sweep at 1/4: {scores or 'paper lr'}); {epochs} epochs"),
        entry("hybrid: compiled gravity + drag MLP 3-32-32-3", "G error with drag, 1% noise", herr, bseeds,
              seconds=hsecs, params=1 + n_params(mlp([3, 32, 32, 3])), note=f"Adam 0.01, {epochs} epochs"),
        entry("MLP 8-64x3-3 on (r, m1, m2, v)", "test force rel. error with drag", dmerr, bseeds, seconds=dmsecs,
              params=n_params(mlp([8, 64, 64, 64, 3])), note=f"lr {lr:g}; {epochs} epochs"),
    ]
    frac = sum(e < 0.005 for e in err) / len(err)
    headline = [{"quantity": "G error, 2% noise", "paper": "-", "nc": f"median {100 * quantile(err, .5):.3f}%, "
                 f"within 0.5% on {100 * frac:.0f}% of seeds (best achievable median {100 * quantile(best, .5):.3f}%)",
                 "spread": f"IQR {100 * quantile(err, .25):.3f}-{100 * quantile(err, .75):.3f}%, {len(seeds)} seeds"},
                {"quantity": "G error with learned drag (hybrid)", "paper": "-",
                 "nc": f"median {100 * quantile(herr, .5):.2f}%", "spread": f"{len(bseeds)} seeds"}]
    return {"entries": entries, "headline": headline, "plot": {"err": err, "best": best},
            "notes": ["Each seed draws new inputs and noise; G starts at 3.0.",
                      f"Bound check: median linearised 1-sd {100 * quantile(bound, .5):.3f}% of G."]}


def figures(result: dict[str, Any], out: Any) -> list[str]:

    fig, ax = plt().subplots(figsize=(5.5, 3.5))
    err, best = result["plot"]["err"], result["plot"]["best"]
    ax.errorbar([0, 1], [100 * quantile(v, .5) for v in (err, best)],
                yerr=[[100 * (quantile(v, .5) - quantile(v, .25)) for v in (err, best)],
                      [100 * (quantile(v, .75) - quantile(v, .5)) for v in (err, best)]], fmt="o", capsize=4)
    for i, v in enumerate((err, best)):
        ax.scatter([i + 0.1] * len(v), [100 * x for x in v], s=6, color="gray")
    ax.axhline(0.5, color="k", ls=":", lw=1)
    ax.set_xticks([0, 1], ["nc compiled", "best achievable"])
    ax.set_ylabel("relative G error (%)")
    ax.set_title("Vector gravity, 2% noise: error bars across seeds")
    fig.tight_layout()
    path = out / "vector_gravity.png"
    fig.savefig(path, dpi=110)
    plt().close(fig)
    _ = math
    return [path.name]
