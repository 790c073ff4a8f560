"""Standard errors of fitted constants (`nc.uncertainty`): their calibration over noise seeds,
`FitResult.summary`/`annotate`/`interval`, and what is reported where there are no residuals.

The calibration test checks the claim of the docs: with independent Gaussian noise of one
variance and a correct model, ``value +- 1.96 stderr`` covers the true value in about 95% of
noise draws. It is a statistical test, made deterministic by fixed seeds (0-99).
"""

from __future__ import annotations

import pytest
import torch
from paper_programs import LV, LV_TRUE

import nc

F64 = torch.float64
SEEDS = 100
Z95 = 1.959963984540054

GRAVITY = "(let ((r_mag (norm r))) (scale (/ (* (- 0 G) (* m1 m2)) (* r_mag (* r_mag r_mag))) r))"


def gravity_inputs(n: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    direction = torch.randn(n, 3, generator=gen, dtype=F64)
    size = 1 + 4 * torch.rand(n, 1, generator=gen, dtype=F64)
    return {"r": direction / direction.norm(dim=-1, keepdim=True) * size,
            "m1": 1 + 4 * torch.rand(n, generator=gen, dtype=F64),
            "m2": 1 + 4 * torch.rand(n, generator=gen, dtype=F64)}


@pytest.mark.slow
def test_gravity_95_percent_intervals_cover_in_90_to_99_percent_of_seeds() -> None:
    # The paper's 3-D gravity: 100 samples, 2 % noise (sigma = 0.02 mean |F|), G from 3.0, one
    # nc.fit with its defaults per seed, as a user would run it.
    law = nc.compile_fn(GRAVITY)
    G = 6.674
    covered = 0
    for seed in range(SEEDS):
        gen = torch.Generator().manual_seed(1000 + seed)
        inputs = gravity_inputs(100, gen)
        clean = law(**inputs, G=torch.tensor(G, dtype=F64))
        force = clean + 0.02 * clean.abs().mean() * torch.randn(clean.shape, generator=gen, dtype=F64)
        model = nc.compile(GRAVITY, params={"G": 3.0}, dtype=F64)
        result = nc.fit(model, inputs, force)
        lo, hi = result.interval("G")
        assert hi - lo == pytest.approx(2 * Z95 * result.stderr["G"])
        covered += lo <= G <= hi
    print(f"\ngravity: 95% intervals cover G in {covered} of {SEEDS} seeds", end="")
    assert 90 <= covered <= 99


# The constants ride along in the state (their derivative is 0, so RK4 keeps them exactly): one
# call integrates many parameter sets, one per row of s0.
LV_CARRIED = """
(define (lotka-volterra t s)
  (let ((x (ref s 0)) (y (ref s 1)) (alpha (ref s 2)) (beta (ref s 3)) (delta (ref s 4)) (gamma (ref s 5)))
    [(- (* alpha x) (* beta (* x y)))
     (- (* delta (* x y)) (* gamma y))
     0 0 0 0]))
(rk4 lotka-volterra s0 0.1 120)
"""


class PerSeed(torch.nn.Module):
    """One set of Lotka-Volterra constants per seed (``consts`` [K, 4]), from the known (4, 1)."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.rollout = nc.compile(LV_CARRIED, dtype=F64)
        self.consts = torch.nn.Parameter(torch.tensor(list(LV_TRUE.values()), dtype=F64).repeat(k, 1))

    def forward(self) -> torch.Tensor:
        s0 = torch.cat([torch.tensor([4.0, 1.0], dtype=F64).expand(len(self.consts), 2), self.consts], dim=1)
        return self.rollout(s0)[..., :2]


@pytest.mark.slow
def test_lotka_volterra_95_percent_intervals_cover_in_90_to_99_percent_of_seeds() -> None:
    # Lotka-Volterra, RK4 dt 0.1 over [0, 12] from the known (4, 1), 2 % noise, four constants.
    # For speed the 100 seeds are one fit of 400 constants, 100 independent least-squares
    # problems side by side (the Jacobian is block diagonal): nc.fit's covariance gives each
    # seed's errors, with the noise variance pooled over the seeds (they share one noise level).
    clean = nc.compile_fn(LV.format(steps=120))(s0=torch.tensor([4.0, 1.0], dtype=F64),
                                                **{k: torch.tensor(v, dtype=F64) for k, v in LV_TRUE.items()})
    gen = torch.Generator().manual_seed(0)
    obs = clean + 0.02 * clean.abs().mean() * torch.randn(SEEDS, *clean.shape, generator=gen, dtype=F64)
    model = PerSeed(SEEDS)
    # Start at the truth and stop once an epoch lowers the loss by less than 1e-7 of it (the
    # optimum to about 1e-8 relative; 3 epochs): this tests the intervals, not the optimiser.
    result = nc.fit(model, None, obs, optimizer="lbfgs", patience=1, rel_improvement=1e-7)
    assert result.converged and result.covariance is not None
    se = result.covariance.diagonal().sqrt().reshape(SEEDS, 4)
    assert result.covariance_names[4 * 7 + 2] == "consts[7, 2]"
    error = (model.consts.detach() - torch.tensor(list(LV_TRUE.values()), dtype=F64)).abs()
    for j, name in enumerate(LV_TRUE):
        covered = int((error[:, j] <= Z95 * se[:, j]).sum())
        print(f"\nlotka-volterra: 95% intervals cover {name} in {covered} of {SEEDS} seeds "
              f"(median stderr {float(se[:, j].median()) / LV_TRUE[name]:.2%})", end="")
        assert 90 <= covered <= 99
