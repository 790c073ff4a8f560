"""Guards of fitting: every keyword argument of `fit`, `fit_many` and `ShootingLoss` is checked
(a `CallError` naming it), non-finite data is an error before the fit starts, a fit never ends
worse than its best finite point (NaN mid-run, KeyboardInterrupt), and the progress bar is
tqdm's or nothing."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from nc import ShootingLoss, fit, fit_many
from nc.errors import CallError
from nc.fit import FitWarning
from nc.fit_loop import STOP_REASONS

F64 = torch.float64
X = torch.linspace(0.1, 1, 20, dtype=F64)


class Scale(nn.Module):
    """``k * x``."""

    def __init__(self, k: float = 1.0) -> None:
        super().__init__()
        self.k = nn.Parameter(torch.tensor(k, dtype=F64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.k * x


class Root(nn.Module):
    """``sqrt(k) * x``: NaN as soon as a step takes k below 0."""

    def __init__(self, k: float = 1.0) -> None:
        super().__init__()
        self.k = nn.Parameter(torch.tensor(k, dtype=F64))
        self.seen: list[float] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(self.k.item())
        return torch.sqrt(self.k) * x


def mse(k: float, model: type[nn.Module], target: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(k)(X) - target).square().mean())  # type: ignore[call-arg]


# ----------------------------------------------------------------------------------------------
# Argument checks: one row per bad value, the message names the argument


FIT_BAD: list[tuple[dict[str, Any], str]] = [
    ({"lr": math.nan}, "lr"), ({"lr": -1}, "lr"), ({"lr": 0}, "lr"), ({"lr": "0.1"}, "lr"),
    ({"lr": math.inf}, "lr"), ({"lr": True}, "lr"),
    ({"epochs": "10"}, "epochs"), ({"epochs": 2.5}, "epochs"), ({"epochs": -1}, "epochs"),
    ({"restarts": 1.5}, "restarts"), ({"restarts": -1}, "restarts"),
    ({"batch_size": 2.5}, "batch_size"), ({"batch_size": 0}, "batch_size"),
    ({"optimizer": "sgd"}, "optimizer"), ({"optimizer": None}, "optimizer"),
    ({"optimizer_options": {"bogus": 1}}, "bogus"), ({"optimizer_options": [1]}, "optimizer_options"),
    ({"optimizer_options": {"betas": (2.0, 0.5)}}, "betas"),
    ({"dtype": torch.int64}, "dtype"), ({"dtype": "float64"}, "dtype"),
    ({"loss": "l2"}, "loss"), ({"loss": 3}, "loss"),
    ({"tol": math.nan}, "tol"), ({"tol": -1.0}, "tol"),
    ({"patience": 0}, "patience"), ({"patience": 1.5}, "patience"),
    ({"rel_improvement": math.nan}, "rel_improvement"), ({"rel_improvement": None}, "rel_improvement"),
    ({"restart_scale": -0.5}, "restart_scale"),
    ({"seed": 2**70}, "seed"), ({"seed": 1.5}, "seed"), ({"seed": "0"}, "seed"),
    ({"progress": "yes"}, "progress"),
    ({"clip": math.nan}, "clip"), ({"clip": 0.0}, "clip"), ({"clip": "1"}, "clip"),
    ({"scheduler": "step"}, "scheduler"),
    ({"grid": {"k": 1.0}}, "grid['k']"), ({"grid": {"k": torch.tensor(1.0)}}, "grid['k']"),
    ({"grid": {"k": []}}, "grid['k']"), ({"grid": [1.0]}, "grid"),
    ({"starts": [{"k": 10**400}]}, "'k'"), ({"starts": [{"k": math.nan}]}, "'k'"),
    ({"starts": [{"k": "1"}]}, "'k'"), ({"starts": {"k": 1.0}}, "starts"), ({"starts": [{"q": 1.0}]}, "q"),
]


@pytest.mark.parametrize("options, named", FIT_BAD, ids=[repr(o) for o, _ in FIT_BAD])
def test_fit_rejects_each_bad_argument_by_name(options: dict[str, Any], named: str) -> None:
    model = Scale()
    with pytest.raises(CallError) as err:
        fit(model, X, 2 * X, epochs=options.pop("epochs", 2), **options)
    assert named in str(err.value)
    assert model.k.item() == 1.0  # nothing ran


@pytest.mark.parametrize("inputs, target, named", [
    (X, [1.0, 2.0], "target"),
    (X, "2", "target"),
    (X.to("meta"), 2 * X, "meta"),
    ({"x": X}, (2 * X).to("meta"), "meta"),
    ("x", 2 * X, "inputs"),
    (X, np.array(["a"] * 20), "dtype"),
])
def test_fit_rejects_bad_data(inputs: Any, target: Any, named: str) -> None:
    with pytest.raises(CallError, match=named):
        fit(Scale(), inputs, target, epochs=1)


def test_fit_rejects_a_model_on_the_meta_device_and_a_non_module() -> None:
    with pytest.raises(CallError, match="meta"):
        fit(Scale().to("meta"), X, 2 * X, epochs=1)
    with pytest.raises(CallError, match="nn.Module"):
        fit(lambda x: x, X, 2 * X, epochs=1)  # type: ignore[arg-type]


@pytest.mark.parametrize("where, index", [("target", 3), ("input 0", 7)])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_data_is_an_error_naming_the_tensor_and_index(where: str, index: int, bad: float) -> None:
    x, y = X.clone(), 2 * X
    (y if where == "target" else x)[index] = bad
    model = Scale()
    for options in [{}, {"batch_size": 5}, {"optimizer": "lbfgs"}]:
        with pytest.raises(CallError) as err:
            fit(model, x, y, epochs=3, **options)  # type: ignore[arg-type]
        assert f"{where} holds {bad} at index {index}" in str(err.value)
        assert model.k.item() == 1.0


def test_non_finite_keyword_input_is_named() -> None:
    class Kw(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.k = nn.Parameter(torch.tensor(1.0, dtype=F64))

        def forward(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
            return self.k * x * m

    m = torch.ones(4, 5, dtype=F64)
    m[2, 3] = math.nan
    with pytest.raises(CallError, match=r"input 'm' holds nan at index \(2, 3\)"):
        fit(Kw(), {"x": torch.ones(4, 5, dtype=F64), "m": m}, torch.ones(4, 5, dtype=F64), epochs=1)


MANY_BAD: list[tuple[dict[str, Any], str]] = [
    ({"lr": math.nan}, "lr"), ({"lr": "0.1"}, "lr"), ({"epochs": 2.5}, "epochs"), ({"k": 1.5}, "k"),
    ({"k": 0}, "k"), ({"clip": math.nan}, "clip"), ({"dtype": torch.int64}, "dtype"),
    ({"optimizer_options": {"bogus": 1}}, "bogus"), ({"scheduler": "step"}, "scheduler"),
    ({"progress": 1}, "progress"), ({"optimizer": "lbfgs"}, "optimizer"), ({"loss": "l2"}, "loss"),
    ({"params": {"k": [10**400, 1.0]}}, "params['k']"), ({"params": {"k": [math.nan, 1.0]}}, "params['k']"),
    ({"params": {"q": [1.0, 2.0]}}, "q"), ({"target_dim": 1.5}, "target_dim"),
]


@pytest.mark.parametrize("options, named", MANY_BAD, ids=[repr(o) for o, _ in MANY_BAD])
def test_fit_many_rejects_each_bad_argument_by_name(options: dict[str, Any], named: str) -> None:
    ys = torch.stack([2 * X, 3 * X])
    with pytest.raises(CallError) as err:
        fit_many(Scale(), {"x": X}, ys, in_dims=None, epochs=options.pop("epochs", 2), **options)
    assert named in str(err.value)


def test_fit_many_rejects_non_finite_data() -> None:
    ys = torch.stack([2 * X, 3 * X])
    ys[1, 4] = math.nan
    with pytest.raises(CallError, match=r"target holds nan at index \(1, 4\)"):
        fit_many(Scale(), {"x": X}, ys, in_dims=None, epochs=2)


SHOOT_BAD: list[tuple[dict[str, Any], str]] = [
    ({"window": 2.5}, "window"), ({"window": "3"}, "window"), ({"window": 0}, "window"),
    ({"n_windows": 0}, "n_windows"), ({"n_windows": 1.5}, "n_windows"), ({"seed": 2**70}, "seed"),
    ({"continuity_weight": math.nan}, "continuity_weight"), ({"continuity_weight": -1}, "continuity_weight"),
    ({"train_states": "no"}, "train_states"), ({"vectorize": "jit"}, "vectorize"),
    ({"times": torch.zeros(3)}, "times"), ({"times": torch.full((11,), math.nan)}, "times"),
    ({"starts": [0.5]}, "starts"), ({"module": 3}, "module"), ({"obs": torch.full((11, 2), math.inf)}, "obs"),
    ({"obs": "abc"}, "obs"), ({"rollout": 3}, "rollout"),
]


@pytest.mark.parametrize("options, named", SHOOT_BAD, ids=[repr(o) for o, _ in SHOOT_BAD])
def test_shooting_loss_rejects_each_bad_argument_by_name(options: dict[str, Any], named: str) -> None:
    physics = nn.Linear(2, 2)
    args = {"rollout": lambda y0, n: y0.expand(n + 1, 2), "obs": torch.zeros(11, 2), "window": 3,
            "module": physics, **options}
    with pytest.raises(CallError) as err:
        ShootingLoss(args.pop("rollout"), args.pop("obs"), args.pop("window"), **args)
    assert named in str(err.value)


# ----------------------------------------------------------------------------------------------
# Never worse than the best finite point


def check_ended_on_the_best(model: Root, target: torch.Tensor, result: Any, full_batch: bool) -> None:
    """The model holds a finite point no worse than any full-data point the fit evaluated (every
    point for full batch; with mini-batches the full loss is judged once an epoch, so only the
    start is sure to have been judged), and reports its loss."""
    k = model.k.item()
    assert math.isfinite(k) and math.isfinite(result.loss)
    assert result.loss == pytest.approx(mse(k, Root, target), rel=1e-12)
    judged = model.seen if full_batch else model.seen[:1]
    assert result.loss <= min(mse(v, Root, target) for v in judged if v >= 0) * (1 + 1e-12)


@pytest.mark.parametrize("options", [{}, {"batch_size": 4}, {"optimizer": "lbfgs", "lr": 50.0}])
def test_a_nan_loss_mid_run_restores_the_best_point_and_warns(options: dict[str, Any]) -> None:
    # The best fit of sqrt(k) x to -x is k = 0, the domain's edge: a step overshoots into k < 0.
    target = -X
    model = Root(1.0)
    lr = options.pop("lr", 0.5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fit(model, X, target, lr=lr, epochs=200, seed=0, **options)
    assert any(v < 0 for v in model.seen), "the fit never left the domain: the test proves nothing"
    check_ended_on_the_best(model, target, result, "batch_size" not in options)
    if result.stop_reason == "non-finite loss":
        assert any("non-finite loss" in str(w.message) for w in caught)
        assert not result.converged
    assert result.stop_reason in STOP_REASONS


def test_full_batch_adam_names_why_it_stopped() -> None:
    model = Root(1.0)
    with pytest.warns(RuntimeWarning, match="1 of 1 fit runs stopped on a non-finite loss"):
        result = fit(model, X, -X, lr=0.5, epochs=200)
    assert result.stop_reason == "non-finite loss" and result.best_epoch < result.epochs_run
    assert 0 <= model.k.item() < 1.0
    assert result.params["k"].item() == model.k.item()


def test_stop_reasons() -> None:
    assert fit(Scale(), X, 2 * X, optimizer="adam", epochs=5).stop_reason == "epochs"
    assert fit(Scale(), X, 2 * X, epochs=500, lr=0.1, tol=1e-3).stop_reason == "tol"
    assert fit(Scale(), X, 2 * X, optimizer="lbfgs", epochs=50).stop_reason == "no progress"
    r = fit(Scale(2.0), X, 2 * X, optimizer="adam", epochs=500, patience=3, rel_improvement=0.5)
    assert r.stop_reason == "patience" and r.converged


def test_fit_many_sets_that_reach_nan_keep_their_best_point() -> None:
    # Set 0 overshoots k = 0 into NaN (target -x); set 1 (target 4x) fits normally.
    class Root1(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.k = nn.Parameter(torch.tensor(1.0, dtype=F64))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.sqrt(self.k) * x

    ys = torch.stack([-X, 4 * X])
    with pytest.warns(RuntimeWarning, match="1 of 2 sets"):
        res = fit_many(Root1(), {"x": X}, ys, in_dims=None, lr=0.5, epochs=300)
    assert res.stopped is not None and res.stopped.tolist() == [True, False]
    k = res.params["k"]
    assert torch.isfinite(k).all() and torch.isfinite(res.loss).all()
    assert 0 <= k[0].item() < 1.0 and abs(k[1].item() - 16.0) < 1e-3
    assert res.loss[0].item() == pytest.approx(mse(k[0].item(), Root, -X), rel=1e-12)


def test_keyboard_interrupt_restores_the_best_point_and_re_raises() -> None:
    class Interrupted(Scale):
        def __init__(self) -> None:
            super().__init__(1.0)
            self.seen: list[float] = []

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if len(self.seen) == 30:
                raise KeyboardInterrupt
            self.seen.append(self.k.item())
            return self.k * x

    model = Interrupted()
    with pytest.raises(KeyboardInterrupt):
        fit(model, X, 2 * X, lr=0.2, epochs=100)
    losses = [mse(k, Scale, 2 * X) for k in model.seen]
    best = min(range(len(losses)), key=lambda i: (losses[i], -i))
    assert model.k.item() == model.seen[best] and best > 0
    assert model.k.item() != model.seen[-1] or losses[-1] == min(losses)


def test_keyboard_interrupt_in_a_later_run_keeps_the_earlier_runs_best() -> None:
    class InterruptSecondRun(Scale):
        calls = 0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.calls += 1
            if self.calls == 45:  # inside the second start's run
                raise KeyboardInterrupt
            return self.k * x

    model = InterruptSecondRun()
    with pytest.raises(KeyboardInterrupt):
        fit(model, X, 2 * X, lr=0.1, epochs=40, starts=[{"k": 1.9}, {"k": 50.0}])
    assert abs(model.k.item() - 2.0) < 0.1


# ----------------------------------------------------------------------------------------------
# The progress bar


def test_progress_bar_is_tqdms(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("tqdm")
    fit(Scale(), X, 2 * X, optimizer="adam", epochs=25, progress=True)
    err = capsys.readouterr().err
    assert "25/25" in err and "loss" in err and "epoch" in err


def test_without_tqdm_progress_draws_nothing_and_fails_nothing(monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    import nc.progress

    monkeypatch.setattr(nc.progress, "tqdm_class", lambda: None)
    with warnings.catch_warnings():  # a short Adam fit is told (on stderr) that it did not converge
        warnings.simplefilter("ignore", FitWarning)
        result = fit(Scale(), X, 2 * X, optimizer="adam", epochs=25, progress=True)
    fit_many(Scale(), {"x": X}, torch.stack([2 * X, 3 * X]), in_dims=None, epochs=5, progress=True)
    assert result.epochs_run == 25
    assert capsys.readouterr().err == ""
