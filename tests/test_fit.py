"""Tests of nc.fit with hand-written modules (fit works with any nn.Module).

Float64 throughout where the tolerances are tight; every random draw is seeded.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from nc import FitResult, ShootingLoss, fit, fit_many
from nc.errors import CallError

F64 = torch.float64


# ----------------------------------------------------------------------------------------------
# Hand-written models


class Scale(nn.Module):
    """``k * x``."""

    def __init__(self, k: float = 1.0) -> None:
        super().__init__()
        self.k = nn.Parameter(torch.tensor(k))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.k * x


class TwoTerms(nn.Module):
    """``a * x**2 + b * exp(-y)``, called by keyword or position."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.tensor(1.0))
        self.b = nn.Parameter(torch.tensor(1.0))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.a * x**2 + self.b * torch.exp(-y)


class Wave(nn.Module):
    """``sin(w * t)``: the loss in ``w`` has many local minima."""

    def __init__(self, w: float) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.w * t)


class Frozen(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.k = nn.Parameter(torch.tensor(2.0), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.k * x


class LotkaVolterra(nn.Module):
    """RK4 rollout of dx/dt = alpha x - beta x y, dy/dt = delta x y - gamma y.

    ``forward(y0, n_steps)`` returns [..., n_steps + 1, 2] (batch axes in front, as nc's rk4).
    """

    def __init__(self, alpha: float = 0.5, beta: float = 0.5, delta: float = 0.5, gamma: float = 0.5,
                 dt: float = 0.1) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.tensor(alpha))
        self.beta = nn.Parameter(torch.tensor(beta))
        self.delta = nn.Parameter(torch.tensor(delta))
        self.gamma = nn.Parameter(torch.tensor(gamma))
        self.dt = dt

    def rhs(self, y: torch.Tensor) -> torch.Tensor:
        x, z = y[..., 0], y[..., 1]
        return torch.stack([self.alpha * x - self.beta * x * z, self.delta * x * z - self.gamma * z], dim=-1)

    def forward(self, y0: torch.Tensor, n_steps: int) -> torch.Tensor:
        h, y, ys = self.dt, y0, [y0]
        for _ in range(n_steps):
            k1 = self.rhs(y)
            k2 = self.rhs(y + h / 2 * k1)
            k3 = self.rhs(y + h / 2 * k2)
            k4 = self.rhs(y + h * k3)
            y = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
            ys.append(y)
        return torch.stack(ys, dim=-2)

    def values(self) -> torch.Tensor:
        return torch.stack([self.alpha, self.beta, self.delta, self.gamma]).detach()


class Logistic(nn.Module):
    """Logistic growth ``C / (1 + (C / y0 - 1) exp(-r t))`` with rate r and capacity C."""

    def __init__(self, r: float = 1.0, C: float = 5.0) -> None:
        super().__init__()
        self.r = nn.Parameter(torch.tensor(r))
        self.C = nn.Parameter(torch.tensor(C))

    def forward(self, t: torch.Tensor, y0: torch.Tensor) -> torch.Tensor:
        return self.C / (1 + (self.C / y0 - 1) * torch.exp(-self.r * t))


LV_TRUE = torch.tensor([1.0, 0.5, 0.25, 0.5], dtype=F64)


@pytest.fixture(scope="module")
def lv_clean() -> torch.Tensor:
    """The paper's setup: x0 = 4, y0 = 1, RK4 with dt 0.1 over [0, 12] (121 points)."""
    model = LotkaVolterra(*LV_TRUE.tolist()).double()
    with torch.no_grad():
        return model(torch.tensor([4.0, 1.0], dtype=F64), 120)


def rel_err(est: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    return ((est - true).abs() / true.abs()).max()


# ----------------------------------------------------------------------------------------------
# fit: recovery


def test_adam_recovers_scale_constant() -> None:
    x = torch.linspace(-2, 2, 200, dtype=F64)
    model = Scale(1.0).double()
    result = fit(model, (x,), 2.5 * x, lr=0.05, epochs=2000, tol=1e-24, seed=0)
    assert isinstance(result, FitResult)
    assert abs(model.k.item() - 2.5) < 1e-10
    assert result.params["k"].item() == model.k.item()
    assert result.converged and result.loss < 1e-20


def test_lbfgs_recovers_two_constants_by_keyword() -> None:
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(300, generator=g, dtype=F64) * 4 - 2, torch.rand(300, generator=g, dtype=F64) * 3
    target = 0.75 * x**2 + 3.25 * torch.exp(-y)
    model = TwoTerms().double()
    result = fit(model, {"x": x, "y": y}, target, optimizer="lbfgs", epochs=20)
    assert abs(model.a.item() - 0.75) < 1e-10 and abs(model.b.item() - 3.25) < 1e-10
    assert result.converged and result.epochs_run < 20
    assert result.loss < 1e-20


@pytest.mark.slow
def test_minibatch_adam_recovers_and_is_reproducible() -> None:
    g = torch.Generator().manual_seed(2)
    x, y = torch.rand(512, generator=g, dtype=F64) * 4 - 2, torch.rand(512, generator=g, dtype=F64) * 3
    target = 0.75 * x**2 + 3.25 * torch.exp(-y)
    runs = []
    for _ in range(2):
        model = TwoTerms()
        runs.append(fit(model, (x, y), target, batch_size=64, epochs=150, lr=0.05, dtype=F64, seed=7,
                        scheduler="cosine"))
        assert abs(model.a.item() - 0.75) < 1e-6 and abs(model.b.item() - 3.25) < 1e-6
    assert runs[0].history == runs[1].history
    assert len(runs[0].history) == 150 and runs[0].epochs_run == 150


def test_dtype_casts_model_and_data() -> None:
    x = np.linspace(0, 1, 20)  # numpy float64 data, a float32 model
    model = Scale(1.0)
    result = fit(model, x, 3.0 * x, optimizer="lbfgs", epochs=5, dtype=F64)
    assert model.k.dtype == F64 and result.params["k"].dtype == F64
    assert abs(model.k.item() - 3.0) < 1e-12


def test_float32_without_dtype_stays_float32() -> None:
    x = torch.linspace(0, 1, 20)
    model = Scale(1.0)
    result = fit(model, x, 3.0 * x, optimizer="lbfgs", epochs=5)
    assert model.k.dtype == torch.float32
    assert abs(result.params["k"].item() - 3.0) < 1e-5


def test_custom_loss_callable() -> None:
    x = torch.linspace(0, 1, 50, dtype=F64)
    calls = []

    def loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return ((pred - target) ** 4).sum()

    model = Scale(1.0).double()
    fit(model, (x,), 2.0 * x, loss=loss, optimizer="lbfgs", epochs=30)
    assert calls and abs(model.k.item() - 2.0) < 1e-3


# ----------------------------------------------------------------------------------------------
# fit: history, stopping rules, restarts, progress


def test_history_length_without_stopping_rule() -> None:
    x = torch.linspace(0, 1, 30, dtype=F64)
    result = fit(Scale(1.0).double(), (x,), 2.0 * x, epochs=40, lr=1e-3)
    assert result.epochs_run == 40 and len(result.history) == 40
    assert not result.converged
    assert result.history[0] > result.history[-1] > result.loss > 0
    assert result.seconds > 0


def test_tol_stops_early_and_reports_convergence() -> None:
    x = torch.linspace(0, 1, 30, dtype=F64)
    result = fit(Scale(1.0).double(), (x,), 2.0 * x, epochs=5000, lr=0.05, tol=1e-8)
    assert result.converged and result.epochs_run < 5000
    assert len(result.history) == result.epochs_run
    assert result.history[-1] < 1e-8 <= min(result.history[:-1])
    assert result.loss == pytest.approx(result.history[-1])  # stopped before stepping


def test_patience_stops_on_a_plateau() -> None:
    x = torch.linspace(0, 1, 30, dtype=F64)
    target = 2.0 * x + 0.1 * torch.sin(40 * x)  # a floor the model cannot go below
    result = fit(Scale(1.0).double(), (x,), target, epochs=5000, lr=0.05, patience=20, rel_improvement=1e-6)
    assert result.converged and result.epochs_run < 5000


def test_restarts_keep_the_best_run() -> None:
    t = torch.linspace(0, 6, 200, dtype=F64)
    target = torch.sin(3.0 * t)
    model = Wave(1.0).double()  # w = 1 sits in a local minimum far from 3
    result = fit(model, (t,), target, optimizer="lbfgs", epochs=10, restarts=8, restart_scale=1.5, seed=0)
    assert len(result.restart_losses) == 9
    assert result.loss == min(result.restart_losses) < result.restart_losses[0]
    assert result.restart != 0
    assert abs(model.w.item() - 3.0) < 1e-8
    assert result.params["w"].item() == model.w.item()


def test_progress_bar_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    x = torch.linspace(0, 1, 30, dtype=F64)
    fit(Scale(1.0).double(), (x,), 2.0 * x, optimizer="adam", epochs=25, progress=True)
    err = capsys.readouterr().err
    assert "25/25" in err and "loss" in err and err.endswith("\n")


def test_clip_and_cosine_match_a_hand_written_loop() -> None:
    g = torch.Generator().manual_seed(3)
    x, y = torch.rand(64, generator=g, dtype=F64) * 4 - 2, torch.rand(64, generator=g, dtype=F64) * 3
    target = 0.75 * x**2 + 3.25 * torch.exp(-y)
    model = TwoTerms().double()
    result = fit(model, (x, y), target, lr=0.1, epochs=60, clip=0.3, scheduler="cosine")
    ref = TwoTerms().double()
    opt = torch.optim.Adam(ref.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=60)
    history, points = [], []
    for _ in range(60):
        opt.zero_grad()
        loss = (ref(x, y) - target).square().mean()
        loss.backward()
        history.append(loss.item())
        points.append((ref.a.item(), ref.b.item()))
        nn.utils.clip_grad_norm_(ref.parameters(), 0.3)
        opt.step()
        sched.step()
    assert result.history == history
    with torch.no_grad():
        history.append((ref(x, y) - target).square().mean().item())
    points.append((ref.a.item(), ref.b.item()))
    # the fit ends on the lowest loss it saw (the latest of equal ones), not on its last step
    best = max(range(len(history)), key=lambda i: (-history[i], i))
    assert (model.a.item(), model.b.item()) == points[best]
    assert result.best_epoch == best and result.loss == history[best] and result.stop_reason == "epochs"
    unclipped = TwoTerms().double()
    fit(unclipped, (x, y), target, lr=0.1, epochs=60, scheduler="cosine")
    assert unclipped.a.item() != model.a.item()  # the clip did act


# ----------------------------------------------------------------------------------------------
# fit: errors


def test_no_trainable_parameters_raises() -> None:
    x = torch.linspace(0, 1, 10)
    with pytest.raises(CallError, match="no trainable parameters") as info:
        fit(Frozen(), (x,), x)
    assert info.value.hint and info.value.code == "NC900"
    with pytest.raises(CallError, match="no trainable parameters"):
        fit(nn.Identity(), (x,), x)


def test_shape_mismatch_names_both_shapes() -> None:
    x = torch.linspace(0, 1, 10)
    with pytest.raises(CallError, match=r"prediction shape \(10,\) and target shape \(10, 1\)"):
        fit(Scale(), (x,), x[:, None])
    with pytest.raises(CallError, match=r"\(10,\).*\(7,\)"):
        fit(Scale(), (x,), x[:7], optimizer="lbfgs")


def test_mismatched_leading_sizes_for_minibatches() -> None:
    x, y = torch.rand(100), torch.rand(90)
    with pytest.raises(CallError, match="leading size") as info:
        fit(TwoTerms(), {"x": x, "y": y}, torch.rand(100), batch_size=10)
    assert "'y': 90" in info.value.message
    with pytest.raises(CallError, match="target: 50"):
        fit(Scale(), (x,), torch.rand(50), batch_size=10)


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        ({"optimizer": "sgd"}, "unknown optimizer"),
        ({"optimizer": "lbfgs", "batch_size": 8}, "L-BFGS is full batch"),
        ({"optimizer": "lbfgs", "clip": 1.0}, "clip cannot be used with L-BFGS"),
        ({"scheduler": "step"}, "unknown scheduler"),
        ({"loss": "huber"}, "unknown loss"),
        ({"restarts": -1}, "restarts must be"),
    ],
)
def test_bad_options_raise_call_error(kwargs: dict, pattern: str) -> None:
    x = torch.linspace(0, 1, 16)
    with pytest.raises(CallError, match=pattern):
        fit(Scale(), (x,), x, epochs=2, **kwargs)


def test_target_none_needs_a_scalar_output() -> None:
    with pytest.raises(CallError, match="scalar loss"):
        fit(Scale(), (torch.ones(3),), None)


# ----------------------------------------------------------------------------------------------
# Multiple shooting


def test_shooting_windows_contiguous_random_and_explicit(lv_clean: torch.Tensor) -> None:
    lv = LotkaVolterra().double()
    tiles = ShootingLoss(lv, lv_clean, window=24)
    assert tiles.starts.tolist() == [0, 24, 48, 72, 96]
    assert tiles.pair_offset.tolist() == [24, 24, 24, 24]
    ragged = ShootingLoss(lv, lv_clean, window=25)  # 0..100 tiled, then one window ending at 120
    assert ragged.starts.tolist() == [0, 25, 50, 75, 95]
    assert ragged.pair_offset.tolist() == [25, 25, 25, 20]
    rand = ShootingLoss(lv, lv_clean, window=25, n_windows=8, seed=3)
    again = ShootingLoss(lv, lv_clean, window=25, n_windows=8, seed=3)
    starts = rand.starts.tolist()
    assert starts == again.starts.tolist() == sorted(set(starts)) and len(starts) == 8
    assert 0 <= starts[0] and starts[-1] <= 120 - 25
    assert rand.targets.shape == (8, 26, 2)
    assert torch.equal(rand.states.detach(), lv_clean[rand.starts])
    chosen = ShootingLoss(lv, lv_clean, window=10, starts=[50, 0])
    assert chosen.starts.tolist() == [0, 50] and len(chosen.pair_from) == 0


def test_shooting_errors(lv_clean: torch.Tensor) -> None:
    lv = LotkaVolterra().double()
    with pytest.raises(CallError, match="window must be"):
        ShootingLoss(lv, lv_clean, window=121)
    with pytest.raises(CallError, match="n_windows"):
        ShootingLoss(lv, lv_clean, window=100, n_windows=50)
    with pytest.raises(CallError, match="leave the data"):
        ShootingLoss(lv, lv_clean, window=10, starts=[115])
    with pytest.raises(CallError, match="module="):
        ShootingLoss(lambda y0, n: y0.expand(n + 1, *y0.shape), lv_clean, window=10)


def test_shooting_vectorize_modes_agree(lv_clean: torch.Tensor) -> None:
    lv = LotkaVolterra().double()
    values = {}
    for mode in ("loop", "vmap", "batched"):
        shoot = ShootingLoss(lv, lv_clean, window=12, n_windows=4, seed=0, continuity_weight=0.5, vectorize=mode)
        values[mode] = shoot()
    assert torch.allclose(values["loop"], values["vmap"], rtol=1e-13)
    assert torch.allclose(values["loop"], values["batched"], rtol=1e-13)
    # a bound method finds its module, so its parameters are trained
    shoot = ShootingLoss(lv.forward, lv_clean, window=12)
    assert {n for n, _ in shoot.named_parameters()} == {"states", "physics.alpha", "physics.beta",
                                                       "physics.delta", "physics.gamma"}


@pytest.mark.slow
def test_shooting_recovers_lotka_volterra_noise_free(lv_clean: torch.Tensor) -> None:
    lv = LotkaVolterra()  # every constant starts at 0.5
    shoot = ShootingLoss(lv, lv_clean, window=24, vectorize="batched")
    result = fit(shoot, None, None, optimizer="lbfgs", dtype=F64, epochs=50)
    err = rel_err(lv.values(), LV_TRUE)
    assert err < 5e-4  # < 0.05 %
    assert err < 1e-8  # in fact to rounding: the data came from the same RK4
    assert result.converged
    assert set(result.params) == {"states", "physics.alpha", "physics.beta", "physics.delta", "physics.gamma"}


@pytest.mark.slow
def test_shooting_recovers_lotka_volterra_from_noisy_data(lv_clean: torch.Tensor) -> None:
    g = torch.Generator().manual_seed(0)
    sigma = 0.02 * lv_clean.abs().mean()
    obs = lv_clean + sigma * torch.randn(lv_clean.shape, generator=g, dtype=F64)
    lv = LotkaVolterra()
    shoot = ShootingLoss(lv, obs, window=24, continuity_weight=1.0, vectorize="batched")
    result = fit(shoot, None, None, optimizer="lbfgs", dtype=F64, epochs=50)
    assert rel_err(lv.values(), LV_TRUE) < 0.01  # < 1 %
    assert result.converged
    # the trained window states are nearer the clean trajectory than the noisy observations were
    states = shoot.states.detach()
    clean_starts = lv_clean[shoot.starts]
    assert (states - clean_starts).norm() < (obs[shoot.starts] - clean_starts).norm()


@pytest.mark.slow
def test_shooting_with_adam_and_random_windows(lv_clean: torch.Tensor) -> None:
    # The paper's recipe (8 random windows of 25 steps, Adam lr 1e-2, cosine, clip 5), shortened.
    lv = LotkaVolterra()
    shoot = ShootingLoss(lv, lv_clean, window=25, n_windows=8, seed=0, vectorize="vmap")
    result = fit(shoot, None, None, lr=1e-2, epochs=200, clip=5.0, scheduler="cosine", dtype=F64)
    assert result.history[-1] < 0.05 * result.history[0]
    assert rel_err(lv.values(), LV_TRUE) < rel_err(torch.full((4,), 0.5, dtype=F64), LV_TRUE)


def test_shooting_with_start_times(lv_clean: torch.Tensor) -> None:
    seen = []

    def rollout(y0: torch.Tensor, n: int, t0: torch.Tensor) -> torch.Tensor:
        seen.append(float(t0))
        return lv(y0, n)

    lv = LotkaVolterra().double()
    times = torch.arange(121, dtype=F64) * 0.1
    shoot = ShootingLoss(rollout, lv_clean, window=24, times=times, module=lv)
    shoot()
    assert seen == pytest.approx([0.0, 2.4, 4.8, 7.2, 9.6])


# ----------------------------------------------------------------------------------------------
# fit_many


def logistic_data(k: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """K noisy logistic curves, each with its own rate, capacity and start; t shared."""
    g = torch.Generator().manual_seed(seed)
    t = torch.linspace(0, 10, 40, dtype=F64)
    r = 0.5 + torch.rand(k, generator=g, dtype=F64)
    C = 3.0 + 4.0 * torch.rand(k, generator=g, dtype=F64)
    y0 = 0.2 + 0.3 * torch.rand(k, generator=g, dtype=F64)
    ys = C[:, None] / (1 + (C[:, None] / y0[:, None] - 1) * torch.exp(-r[:, None] * t))
    ys = ys + 0.01 * torch.randn(ys.shape, generator=g, dtype=F64)
    return t, y0, ys, r, C


def loop_fits(k: int, t: torch.Tensor, y0: torch.Tensor, ys: torch.Tensor, r0: torch.Tensor,
              c0: torch.Tensor, **kwargs: object) -> tuple[torch.Tensor, torch.Tensor, list[list[float]]]:
    rs, cs, hist = [], [], []
    for i in range(k):
        model = Logistic().double()
        with torch.no_grad():
            model.r.fill_(r0[i])
            model.C.fill_(c0[i])
        res = fit(model, {"t": t, "y0": y0[i]}, ys[i], **kwargs)
        rs.append(res.params["r"])
        cs.append(res.params["C"])
        hist.append(res.history)
    return torch.stack(rs), torch.stack(cs), hist


@pytest.mark.slow
def test_fit_many_equals_the_loop() -> None:
    # Same numbers as K separate fits; the speed-up is measured in bench/test_fit_many.py, not asserted.
    K, epochs = 100, 200
    t, y0, ys, r_true, C_true = logistic_data(K, seed=0)
    r0, c0 = torch.full((K,), 1.0, dtype=F64), torch.full((K,), 5.0, dtype=F64)
    many = fit_many(Logistic(), {"t": t, "y0": y0}, ys, params={"r": r0, "C": c0},
                    in_dims={"t": None, "y0": 0}, lr=0.05, epochs=epochs, dtype=F64)
    r_loop, c_loop, hist = loop_fits(K, t, y0, ys, r0, c0, lr=0.05, epochs=epochs)
    assert many.params["r"].shape == (K,) and many.history.shape == (epochs, K) and many.loss.shape == (K,)
    assert rel_err(many.params["r"], r_loop) < 1e-10
    assert rel_err(many.params["C"], c_loop) < 1e-10
    assert rel_err(many.history, torch.tensor(hist, dtype=F64).T) < 1e-10
    # and it fits: most curves within 5 % of their constants after 200 epochs
    assert (((many.params["r"] - r_true).abs() / r_true) < 0.05).float().mean() > 0.8


def test_fit_many_with_clip_and_cosine_equals_the_loop() -> None:
    K = 6
    t, y0, ys, _, _ = logistic_data(K, seed=1)
    g = torch.Generator().manual_seed(5)
    r0 = 0.5 + torch.rand(K, generator=g, dtype=F64)
    c0 = 3.0 + 3.0 * torch.rand(K, generator=g, dtype=F64)
    opts = {"lr": 0.1, "epochs": 150, "clip": 0.5, "scheduler": "cosine"}
    many = fit_many(Logistic().double(), {"t": t, "y0": y0}, ys, params={"r": r0, "C": c0},
                    in_dims={"t": None, "y0": 0}, **opts)
    r_loop, c_loop, _ = loop_fits(K, t, y0, ys, r0, c0, **opts)
    assert rel_err(many.params["r"], r_loop) < 1e-10
    assert rel_err(many.params["C"], c_loop) < 1e-10


def test_fit_many_shared_target_multistart() -> None:
    t = torch.linspace(0, 6, 100, dtype=F64)
    target = torch.sin(3.0 * t)
    starts = torch.linspace(0.5, 4.0, 8, dtype=F64)
    many = fit_many(Wave(1.0).double(), (t,), target, params={"w": starts}, in_dims=None, target_dim=None,
                    lr=0.02, epochs=300)
    assert many.params["w"].shape == (8,)
    best = many.params["w"][many.loss.argmin()]
    assert abs(best.item() - 3.0) < 1e-3
    model = Wave(1.0).double()
    assert model.w.item() == 1.0  # the model itself is untouched


def test_fit_many_errors() -> None:
    t = torch.linspace(0, 1, 5, dtype=F64)
    with pytest.raises(CallError, match="adam"):
        fit_many(Logistic(), (t, torch.ones(3)), torch.ones(3, 5), optimizer="lbfgs")
    with pytest.raises(CallError, match="no trainable parameter"):
        fit_many(Frozen(), (t,), torch.ones(3, 5), k=3)
    with pytest.raises(CallError, match="names no trainable parameter"):
        fit_many(Logistic(), (t, torch.ones(3)), torch.ones(3, 5), params={"rate": torch.ones(3)})
    with pytest.raises(CallError, match="one number of parameter sets"):
        fit_many(Logistic(), (t, torch.ones(3)), torch.ones(3, 5), params={"r": torch.ones(3), "C": torch.ones(4)})
    with pytest.raises(CallError, match="expected"):
        fit_many(Logistic(), (t, torch.ones(3)), torch.ones(3, 5), params={"r": torch.ones(3, 2)})


class Table(nn.Module):
    """Keeps its parameters in ``self.params`` (an nn.ParameterDict), as nc's modules do."""

    def __init__(self) -> None:
        super().__init__()
        self.params = nn.ParameterDict({"g/L": nn.Parameter(torch.tensor(1.0)), "b": nn.Parameter(torch.tensor(0.0))})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.params["g/L"] * x + self.params["b"]


def test_parameters_are_named_by_their_params_key() -> None:
    x = torch.linspace(0, 1, 20, dtype=F64)
    result = fit(Table(), (x,), 9.81 * x + 0.3, optimizer="lbfgs", dtype=F64, epochs=10)
    assert set(result.params) == {"g/L", "b"}
    assert result.params["g/L"].item() == pytest.approx(9.81, rel=1e-12)
    xs = x.expand(3, 20)
    targets = torch.stack([k * x for k in (1.0, 2.0, 3.0)])
    by_key = fit_many(Table(), (xs,), targets, params={"g/L": torch.ones(3, dtype=F64)}, lr=0.05, epochs=50)
    by_path = fit_many(Table(), (xs,), targets, params={"params.g/L": torch.ones(3, dtype=F64)}, lr=0.05,
                       epochs=50)
    assert set(by_key.params) == {"g/L", "b"}
    assert torch.equal(by_key.params["g/L"], by_path.params["g/L"])


def test_fit_does_not_share_state_with_deepcopies() -> None:
    # fit trains in place: a deep copy taken before is unchanged
    x = torch.linspace(0, 1, 10, dtype=F64)
    model = Scale(1.0).double()
    before = copy.deepcopy(model)
    fit(model, (x,), 4.0 * x, optimizer="lbfgs", epochs=5)
    assert before.k.item() == 1.0 and abs(model.k.item() - 4.0) < 1e-10
