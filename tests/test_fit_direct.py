"""Trajectory fitting made direct, data drawn per epoch, and uncertainty where there are no
plain residuals: `ShootingLoss` given a compiled rk4 program itself, `fit` with a callable or a
DataLoader as inputs, and `FitResult.summary`/`annotate`."""

from __future__ import annotations

import math

import pytest
import torch
from paper_programs import LV, LV_TRUE

import nc
from nc.errors import CallError

F64 = torch.float64


@pytest.fixture(scope="module")
def lv_obs() -> torch.Tensor:
    """RK4 with dt 0.1 over [0, 6] from (4, 1), 61 points, 2 % noise (seed 0)."""
    clean = nc.compile_fn(LV.format(steps=60))(s0=torch.tensor([4.0, 1.0], dtype=F64),
                                               **{k: torch.tensor(v, dtype=F64) for k, v in LV_TRUE.items()})
    gen = torch.Generator().manual_seed(0)
    return clean + 0.02 * clean.abs().mean() * torch.randn(clean.shape, generator=gen, dtype=F64)


@pytest.mark.slow
def test_shooting_takes_the_compiled_rollout_and_its_window(lv_obs: torch.Tensor) -> None:
    model = nc.compile(LV.format(steps=20), params=dict.fromkeys(LV_TRUE, 0.5), dtype=F64)
    shoot = nc.ShootingLoss(model, lv_obs, continuity_weight=1.0)  # no wrapper, no module=, no window=
    assert shoot.window == 20 and shoot.vectorize == "batched" and shoot.starts.tolist() == [0, 20, 40]
    result = nc.fit(shoot, None, None)
    assert result.optimizer == "lbfgs" and result.converged
    assert set(result.stderr) == set(LV_TRUE)  # named as in the program; states are in the covariance
    assert "states[2, 1]" in result.covariance_names
    for name, true in LV_TRUE.items():
        value, se = float(result.params[name]), result.stderr[name]
        assert 0 < se < 0.05 * true and abs(value - true) < 4 * se, (name, value, se)
    assert "alpha = " in result.summary() and " ± " in result.summary()


def test_a_window_that_disagrees_with_the_program_names_both_lengths(lv_obs: torch.Tensor) -> None:
    model = nc.compile(LV.format(steps=20), params=LV_TRUE, dtype=F64)
    with pytest.raises(CallError, match=r"window=12 steps, but the program's rollout takes 20 steps"):
        nc.ShootingLoss(model, lv_obs, window=12)


def test_a_rollout_of_the_wrong_length_is_a_call_error_not_a_runtime_error(lv_obs: torch.Tensor) -> None:
    model = nc.compile(LV.format(steps=20), params=LV_TRUE, dtype=F64)
    shoot = nc.ShootingLoss(lambda y0, n: model(y0), lv_obs, window=12, module=model, vectorize="batched")
    with pytest.raises(CallError, match=r"takes 20 steps per window \(21 points\), but window=12 needs 12"):
        nc.fit(shoot, None, None)


def test_shooting_residuals_sum_to_the_loss(lv_obs: torch.Tensor) -> None:
    model = nc.compile(LV.format(steps=20), params=LV_TRUE, dtype=F64)
    shoot = nc.ShootingLoss(model, lv_obs, window=20, n_windows=4, seed=1, continuity_weight=2.0)
    r = shoot.residuals()
    n = shoot.targets.numel()
    assert float(r.square().sum()) == pytest.approx(float(shoot()) * n, rel=1e-12)


def test_fresh_data_each_epoch_from_a_callable_and_a_dataloader() -> None:
    seen = []

    def draw(epoch: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        seen.append(epoch)
        gen = torch.Generator().manual_seed(epoch)
        x = torch.rand(64, generator=gen, dtype=F64) * 3
        return {"x": x}, 2.5 * x

    model = nc.compile("(* k x)", params={"k": 1.0}, dtype=F64)
    result = nc.fit(model, draw, None, epochs=300, lr=0.05)
    assert result.optimizer == "adam" and seen[:3] == [0, 1, 2] and len(seen) == 300
    assert float(result.params["k"]) == pytest.approx(2.5, rel=1e-3)
    assert result.stderr == {} and "afresh" in result.uncertainty
    x = torch.linspace(0, 3, 64, dtype=F64)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, 2.5 * x), batch_size=16, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    model = nc.compile("(* k x)", params={"k": 1.0}, dtype=F64)
    assert nc.fit(model, loader, None, epochs=100, lr=0.05).epochs_run == 100
    assert float(model.params["k"]) == pytest.approx(2.5, rel=1e-3)
    with pytest.raises(CallError, match="target must be None"):
        nc.fit(model, draw, x)
    with pytest.raises(CallError, match="L-BFGS needs fixed data"):
        nc.fit(model, draw, None, optimizer="lbfgs")
    with pytest.raises(CallError, match="not an .inputs, target. pair"):
        nc.fit(model, lambda e: x, None, epochs=1)


def test_summary_interval_and_annotate() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.linspace(0, 1, 100, dtype=F64)
    model = nc.compile("(define G 1.0)\n(* G x)", trainable=["G"], dtype=F64)
    result = nc.fit(model, {"x": x}, 6.674 * x + 0.01 * torch.randn(100, generator=gen, dtype=F64))
    se = result.stderr["G"]
    # one constant, y = G x: var(G) = s^2 / sum x^2 exactly
    residual = model(x=x).detach() - (6.674 * x + 0.01 * torch.randn(100, generator=torch.Generator().manual_seed(0),
                                                                     dtype=F64))
    assert se == pytest.approx(math.sqrt(float(residual.square().sum()) / 99 / float(x.square().sum())), rel=1e-9)
    lo, hi = result.interval("G")
    assert lo < 6.674 < hi
    assert result.summary().splitlines()[0].startswith("G = 6.67") and " ± 0.00" in result.summary()
    annotated = result.annotate(model.to_source())
    assert annotated.splitlines()[0].endswith(f"; ± {se:.2g}")
    with pytest.raises(CallError, match="no standard error"):
        result.interval("H")


def test_no_standard_errors_for_a_callable_loss_or_learned_weights() -> None:
    x = torch.linspace(0, 1, 20, dtype=F64)
    model = nc.compile("(* k x)", params={"k": 1.0}, dtype=F64)
    result = nc.fit(model, {"x": x}, 2 * x, loss=lambda p, t: (p - t).abs().mean())
    assert result.stderr == {} and "callable" in result.uncertainty
    # a learned component: Adam (auto), its weights held fixed for the constants' errors
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).double()
    hybrid = nc.compile("(+ (scale k v) (drag v))", params={"k": 1.0}, modules={"drag": net}, dtype=F64)
    v = torch.randn(50, 3, generator=torch.Generator().manual_seed(1), dtype=F64)
    result = nc.fit(hybrid, {"v": v}, 2 * v, epochs=20)
    assert result.optimizer == "adam" and "learned component" in result.choice
    assert list(result.stderr) == ["k"] and result.covariance_names == ("k",)
    assert "held fixed" in result.uncertainty
