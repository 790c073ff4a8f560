"""Constants recovered from data: the paper's experiments 1-5 as tests, with nc-compiled programs.

Every model here is an nc program compiled with ``nc.compile`` (its unknown constants made
trainable with ``params=``) and fitted with ``nc.fit``; the data come from the same programs at
the true constants (``nc.compile_fn``), plus Gaussian noise where a test says so. There is no
hand-written physics. Everything is float64 and seeded; run with ``-s`` to see each recovered
value and its relative error (``python -m pytest tests/test_recovery.py -q -s``).

Where the setup differs from the paper's (``../shared/data/paper_experiments.md``), the test
says so and why. The main difference: the paper used Adam with thousands of epochs throughout;
here the fits that Adam makes slow use L-BFGS (full batch, strong Wolfe line search), which
reaches the same minimum in a few epochs, so that the whole file runs in CI.

Noise, everywhere: ``sigma = level * mean |clean data|``, drawn from a ``torch.Generator``
seeded with ``NOISE_SEED``; random inputs come from generators with other seeds (the same seed
would make the noise a copy of the inputs' first draws, correlated with the signal).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from paper_programs import LV, LV_TRUE, PENDULUM, PENDULUM_TRUE

import nc
from nc.errors import CallError

pytestmark = pytest.mark.slow  # fits many models

F64 = torch.float64
NOISE_SEED = 0
FEYNMAN_JSON = Path(__file__).resolve().parents[2] / "shared" / "data" / "feynman15.json"


def rel(value: float, true: float) -> float:
    return abs(value - true) / abs(true)


def show(experiment: str, name: str, value: float, true: float, error: float) -> None:
    print(f"\n{experiment:>22}  {name:<12} = {value:<22.15g} (true {true:<6g}) relative error {error:.2e}", end="")


def noisy(clean: torch.Tensor, level: float, seed: int = NOISE_SEED) -> torch.Tensor:
    """``clean + sigma * N(0, 1)`` with ``sigma = level * mean |clean|``."""
    gen = torch.Generator().manual_seed(seed)
    return clean + level * clean.abs().mean() * torch.randn(clean.shape, generator=gen, dtype=clean.dtype)


def tensors(values: dict[str, float]) -> dict[str, torch.Tensor]:
    return {k: torch.tensor(v, dtype=F64) for k, v in values.items()}


# ----------------------------------------------------------------------------------------------
# 1. Feynman equations: every constant from 1.0, noise-free, to 0.1 %

# id, program, input ranges, true constants: ../shared/data/feynman15.json, copied so that the
# tests do not need the shared folder (test_feynman_table_matches_the_shared_data checks the copy).
FEYNMAN: list[tuple[str, str, dict[str, tuple[float, float]], dict[str, float]]] = [
    ("planck", "(* h f)", {"f": (0.1, 10)}, {"h": 6.626}),
    ("hooke", "(* neg_k x)", {"x": (-3, 3)}, {"neg_k": -2.5}),
    ("kinetic", "(* alpha (* m (pow v 2)))", {"m": (0.5, 5), "v": (-3, 3)}, {"alpha": 0.5}),
    ("ideal_gas", "(/ (* n (* kB T)) V)", {"n": (0.5, 5), "T": (1, 10), "V": (0.5, 5)}, {"kB": 1.381}),
    ("gravity", "(/ (* G (* m1 m2)) (pow r 2))", {"m1": (0.5, 5), "m2": (0.5, 5), "r": (0.5, 5)}, {"G": 6.674}),
    ("coulomb", "(/ (* ke (* q1 q2)) (pow r 2))", {"q1": (0.5, 5), "q2": (0.5, 5), "r": (0.5, 5)}, {"ke": 8.988}),
    ("efield_energy", "(* coeff (pow Ef 2))", {"Ef": (0.1, 5)}, {"coeff": 4.427}),
    ("heat_conduction", "(/ (* kappa (* (- T2 T1) A)) d)",
     {"T2": (5, 15), "T1": (0, 5), "A": (0.5, 3), "d": (0.1, 2)}, {"kappa": 1.5}),
    ("speed_of_sound", "(sqrt (/ (* gamma pr) rho))", {"pr": (1, 10), "rho": (0.5, 5)}, {"gamma": 1.4}),
    ("pendulum_period", "(* two_pi (sqrt (/ L g)))", {"L": (0.5, 5), "g": (5, 15)}, {"two_pi": 6.283}),
    ("lorentz", "(/ m0 (sqrt (- 1 (pow (/ v c) 2))))", {"m0": (0.5, 5), "v": (0.1, 0.9)}, {"c": 3.0}),
    ("relativistic_energy", "(/ (* m (pow c 2)) (sqrt (- 1 (pow (/ v c) 2))))",
     {"m": (0.5, 5), "v": (0.1, 0.9)}, {"c": 3.0}),
    ("oscillator", "(* A (sin (+ (* omega t) phi)))", {"t": (0, 6)}, {"A": 2.0, "omega": 3.0, "phi": 0.5}),
    ("gaussian", "(exp (/ (- 0 (pow theta 2)) (* 2 (pow sigma 2))))", {"theta": (-5, 5)}, {"sigma": 2.0}),
    ("barometric", "(* n0 (exp (/ (* (- 0 m) (* g x)) (* kB T))))",
     {"m": (0.5, 2), "g": (5, 15), "x": (0, 3), "T": (1, 5)}, {"n0": 5.0, "kB": 1.381}),
]
FEYNMAN_IDS = [row[0] for row in FEYNMAN]

# The oscillator's loss has a local minimum in omega near every start (the paper's Adam run from
# 1.0 ended at omega 0.123): a multi-start scan over omega, A and phi starting at 1.0 in each.
# The grid includes the paper's start, omega = 1.0.
OMEGA_GRID = torch.arange(0.5, 10.01, 0.5, dtype=F64)
FIT_OPTIONS: dict[str, dict[str, object]] = {"oscillator": {"grid": {"omega": OMEGA_GRID}}}


def wrap(angle: float) -> float:
    """``angle`` modulo 2 pi, in [-pi, pi)."""
    return (angle + math.pi) % (2 * math.pi) - math.pi


def canonical_oscillator(c: dict[str, float]) -> dict[str, float]:
    """A sin(omega t + phi) is unchanged by (A, omega, phi) -> (-A, -omega, -phi) and
    (A, phi) -> (-A, phi + pi), and phi counts modulo 2 pi: take omega > 0, A > 0."""
    A, omega, phi = c["A"], c["omega"], c["phi"]
    if omega < 0:
        A, omega, phi = -A, -omega, -phi
    if A < 0:
        A, phi = -A, phi + math.pi
    return {"A": A, "omega": omega, "phi": wrap(phi)}


# The formulas see only the square of these constants, so their sign is not determined.
SQUARED = {"lorentz": "c", "relativistic_energy": "c", "gaussian": "sigma"}


def canonical(eq_id: str, values: dict[str, float]) -> dict[str, float]:
    if eq_id == "oscillator":
        return canonical_oscillator(values)
    if eq_id in SQUARED:
        return {**values, SQUARED[eq_id]: abs(values[SQUARED[eq_id]])}
    return values


def feynman_error(eq_id: str, name: str, value: float, true: float) -> float:
    if eq_id == "oscillator" and name == "phi":
        return abs(wrap(value - true)) / abs(true)
    return rel(value, true)


def feynman_data(program: str, ranges: dict[str, tuple[float, float]], constants: dict[str, float],
                 n: int = 1024, seed: int = 0) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """``n`` inputs uniform in their ranges and the program's value at the true constants."""
    gen = torch.Generator().manual_seed(seed)
    inputs = {k: lo + (hi - lo) * torch.rand(n, generator=gen, dtype=F64) for k, (lo, hi) in ranges.items()}
    return inputs, nc.compile_fn(program)(**inputs, **tensors(constants))


@pytest.mark.parametrize("eq_id, program, ranges, constants", FEYNMAN, ids=FEYNMAN_IDS)
def test_feynman_constants_recovered(eq_id: str, program: str, ranges: dict[str, tuple[float, float]],
                                     constants: dict[str, float]) -> None:
    inputs, target = feynman_data(program, ranges, constants)
    model = nc.compile(program, params=dict.fromkeys(constants, 1.0), dtype=F64)
    assert set(model.inputs) == set(ranges)
    result = nc.fit(model, inputs, target, optimizer="lbfgs", epochs=50, dtype=F64,
                    **FIT_OPTIONS.get(eq_id, {}))  # type: ignore[arg-type]
    fitted = canonical(eq_id, {k: model.params[k].item() for k in constants})
    for name, true in constants.items():
        error = feynman_error(eq_id, name, fitted[name], true)
        show(f"feynman {eq_id}", name, fitted[name], true, error)
        assert error < 1e-3, (name, fitted[name])
    assert result.loss < 1e-16


def test_oscillator_from_one_alone_stops_in_a_local_minimum() -> None:
    # Why the oscillator's fit scans omega: from the paper's start alone (every constant 1.0)
    # L-BFGS stops in a local minimum, as the paper's Adam did (omega 0.123 there).
    _, program, ranges, constants = FEYNMAN[FEYNMAN_IDS.index("oscillator")]
    inputs, target = feynman_data(program, ranges, constants)
    model = nc.compile(program, params=dict.fromkeys(constants, 1.0), dtype=F64)
    result = nc.fit(model, inputs, target, optimizer="lbfgs", epochs=50, dtype=F64)
    fitted = canonical_oscillator({k: model.params[k].item() for k in constants})
    print(f"\noscillator from 1.0 alone: {fitted}, loss {result.loss:.3g}", end="")
    assert result.loss > 1.0  # the data's variance is 2
    assert abs(fitted["omega"] - 3.0) > 1.0


def lorentz_data() -> tuple[str, dict[str, torch.Tensor], torch.Tensor]:
    _, program, ranges, constants = FEYNMAN[FEYNMAN_IDS.index("lorentz")]
    inputs, target = feynman_data(program, ranges, constants)
    return program, inputs, target


def watch_nan(model: torch.nn.Module) -> list[bool]:
    """Whether each forward call of ``model`` gave a NaN (a forward hook)."""
    seen: list[bool] = []
    model.register_forward_hook(lambda _m, _i, out: seen.append(bool(torch.isnan(out).any())))
    return seen


def nan_as_inf(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The mean squared error, +inf where it is NaN: a ``loss=`` for ``nc.fit`` with which
    L-BFGS's line search backs off from a NaN (torch's strong Wolfe search takes a NaN trial for
    one to extrapolate from, an inf for one to bisect back from)."""
    return torch.nan_to_num((pred - target).square().mean(), nan=math.inf)


def test_lorentz_nan_does_not_derail_the_fit() -> None:
    # nc does not clamp: sqrt(1 - (v/c)^2) is NaN for |c| < v (v up to 0.9 here). The fit from
    # the paper's start (test_feynman_constants_recovered) never meets a NaN; these starts do.
    # A multi-start fit ranks a run whose loss is NaN below every other, so starts inside the NaN
    # region (0.25, 0.5) cost only their time. From 10.0, L-BFGS's line search meets a NaN on
    # its way down: with the plain loss it extrapolates across the NaN band to the mirror minimum
    # c = -3 (equal, as only c^2 matters); with nan_as_inf it backs off and stays at c = +3.
    program, inputs, target = lorentz_data()
    starts = [0.25, 0.5, 1.0, 10.0]
    for loss in ("mse", nan_as_inf):
        model = nc.compile(program, params={"c": 1.0}, dtype=F64)
        seen = watch_nan(model)
        # the two starts in the NaN region stop at once, and say so
        with pytest.warns(RuntimeWarning, match="2 of 4 fit runs stopped on a non-finite loss"):
            result = nc.fit(model, inputs, target, optimizer="lbfgs", epochs=50, dtype=F64, grid={"c": starts},
                            loss=loss)  # type: ignore[arg-type]
        assert result.stop_reason != "non-finite loss"
        losses = result.restart_losses
        name = getattr(loss, "__name__", loss)
        print(f"\nlorentz, loss {name}: final loss from each start {dict(zip(starts, losses))}; "
              f"{sum(seen)} NaN evaluations", end="")
        assert not any(0 < x < math.inf for x in losses[:2])  # NaN (mse) or inf (nan_as_inf)
        assert losses[2] < 1e-16 and losses[3] < 1e-16
        assert sum(seen) > 2  # NaN met beyond the first evaluations of the two NaN starts
        assert result.start in (2, 3) and result.loss < 1e-16
        c = model.params["c"].item()
        show(f"lorentz ({name})", "|c|", abs(c), 3.0, rel(abs(c), 3.0))
        assert rel(abs(c), 3.0) < 1e-6
    fitted = nc.compile(program, params={"c": 10.0}, dtype=F64)
    nc.fit(fitted, inputs, target, optimizer="lbfgs", epochs=50, dtype=F64, loss=nan_as_inf)
    assert fitted.params["c"].item() == pytest.approx(3.0, rel=1e-6)


def test_nan_as_inf_lets_lbfgs_back_off() -> None:
    # log k is -inf at k = 0 and NaN below: L-BFGS's first step from k = 1 lands at k = 0. With
    # the plain loss torch's line search then extrapolates into k < 0 and ends at NaN; with
    # nan_as_inf it bisects back and converges to k = 0.1.
    x = torch.linspace(1, 2, 50, dtype=F64)
    target = math.log(0.1) * x
    plain = nc.compile("(* (log k) x)", params={"k": 1.0}, dtype=F64)
    nc.fit(plain, x, target, optimizer="lbfgs", epochs=20, dtype=F64)
    model = nc.compile("(* (log k) x)", params={"k": 1.0}, dtype=F64)
    result = nc.fit(model, x, target, optimizer="lbfgs", epochs=20, dtype=F64, loss=nan_as_inf)
    print(f"\nlog k: plain loss ends at k = {plain.params['k'].item()}, nan_as_inf at "
          f"k = {model.params['k'].item()}", end="")
    assert model.params["k"].item() == pytest.approx(0.1, rel=1e-10) and result.loss < 1e-20


def test_lorentz_paper_recipe_stalls_without_any_nan() -> None:
    # The paper's Adam recipe (lr 3e-3, 5,000 epochs, from 1.0) ends near c = 2.4, its reported
    # 2.406, in nc too, where no clamp exists and no NaN is ever computed: the optimiser's small
    # steps, not a trapped sqrt, stall it. (Full batch here, noise-free; the paper drew fresh
    # noisy batches.) The same Adam with lr 0.1, or L-BFGS, reaches 3.
    program, inputs, target = lorentz_data()
    model = nc.compile(program, params={"c": 1.0}, dtype=F64)
    seen = watch_nan(model)
    nc.fit(model, inputs, target, optimizer="adam", lr=3e-3, epochs=5000, dtype=F64)
    c = model.params["c"].item()
    show("lorentz (paper Adam)", "c", c, 3.0, rel(c, 3.0))
    assert not any(seen)
    assert 2.2 < c < 2.6


def test_feynman_table_matches_the_shared_data() -> None:
    if not FEYNMAN_JSON.is_file():
        pytest.skip("../shared/data/feynman15.json is not beside the checkout")
    shared = [(d["id"], d["program"], {k: tuple(v) for k, v in d["input_ranges"].items()}, d["constants"])
              for d in json.loads(FEYNMAN_JSON.read_text())]
    assert shared == FEYNMAN


# ----------------------------------------------------------------------------------------------
# Multi-start fits: fit(starts=...) and fit(grid=...)

WAVE = "(* A (sin (* omega t)))"


def wave_data() -> tuple[torch.Tensor, torch.Tensor]:
    t = torch.linspace(0, 6, 200, dtype=F64)
    return t, nc.compile_fn(WAVE)(t=t, A=torch.tensor(1.5, dtype=F64), omega=torch.tensor(3.0, dtype=F64))


def test_starts_fit_from_each_and_keep_the_best() -> None:
    t, y = wave_data()
    model = nc.compile(WAVE, params={"A": 1.0, "omega": 1.0}, dtype=F64)
    result = nc.fit(model, t, y, optimizer="lbfgs", epochs=30, dtype=F64,
                    starts=[{"omega": 1.0}, {"omega": 2.8, "A": 2.0}, {"omega": 6.0}])
    assert len(result.restart_losses) == 3 and result.start == 1 and result.restart == 0
    assert result.restart_losses[0] > 0.1 and result.restart_losses[2] > 0.1  # local minima
    assert result.loss == result.restart_losses[1] < 1e-20
    assert model.params["omega"].item() == pytest.approx(3.0, rel=1e-10)
    assert model.params["A"].item() == pytest.approx(1.5, rel=1e-10)
    assert torch.equal(result.params["omega"], model.params["omega"].detach())


def test_starts_not_named_start_at_the_models_values() -> None:
    # epochs=0: no step is taken, so each run's loss is the loss at its start.
    t, y = wave_data()
    model = nc.compile(WAVE, params={"A": 1.5, "omega": 1.0}, dtype=F64)
    result = nc.fit(model, t, y, epochs=0, starts=[{"omega": 2.0}, {"omega": 3.0}, {"A": 0.0}])
    assert result.start == 1 and result.loss == 0.0  # A kept the model's 1.5
    assert result.restart_losses[2] == pytest.approx(float(y.square().mean()))  # omega kept 1.0, A 0


def test_grid_is_the_cartesian_product_last_name_fastest() -> None:
    t, y = wave_data()
    model = nc.compile(WAVE, params={"A": 1.0, "omega": 1.0}, dtype=F64)
    amplitudes, omegas = [0.5, 1.5], [1.0, 2.0, 3.0]
    result = nc.fit(model, t, y, epochs=0, grid={"A": amplitudes, "omega": torch.tensor(omegas, dtype=F64)})
    assert len(result.restart_losses) == 6
    assert result.start == 5 and result.loss == 0.0  # (A, omega) = (1.5, 3.0), the last point
    f = nc.compile_fn(WAVE)
    expected = [float((f(t=t, A=a, omega=w) - y).square().mean()) for a in amplitudes for w in omegas]
    assert list(result.restart_losses) == pytest.approx(expected, rel=1e-12)


def test_starts_with_restarts_and_paths() -> None:
    # restarts perturb each start; runs are listed start by start. A start names a parameter by
    # its state-dict path, which for an nc module is the program's name ("omega").
    t, y = wave_data()
    model = nc.compile(WAVE, params={"A": 1.0, "omega": 1.0}, dtype=F64)
    result = nc.fit(model, t, y, optimizer="lbfgs", epochs=10, dtype=F64, restarts=2, seed=0,
                    starts=[{"omega": 1.0}, {"omega": 3.1}])
    assert len(result.restart_losses) == 6
    assert result.start == 1 and result.loss < 1e-20
    assert result.loss == min(result.restart_losses)


def test_without_starts_fit_is_unchanged() -> None:
    t, y = wave_data()
    runs = []
    for options in ({}, {"starts": [{}]}):
        model = nc.compile(WAVE, params={"A": 1.0, "omega": 2.8}, dtype=F64)
        runs.append(nc.fit(model, t, y, optimizer="adam", lr=0.05, epochs=50, restarts=1, seed=3,
                           **options))  # type: ignore[arg-type]
    assert runs[0].history == runs[1].history and runs[0].restart_losses == runs[1].restart_losses
    assert runs[0].start == runs[1].start == 0


@pytest.mark.parametrize(
    "options, pattern",
    [
        ({"starts": [{"omega": 1.0}], "grid": {"omega": [1.0]}}, "cannot both"),
        ({"starts": []}, "empty"),
        ({"starts": {"omega": [1.0, 2.0]}}, "list of dicts"),
        ({"starts": [{"frequency": 1.0}]}, "name no trainable parameter.*frequency"),
        ({"grid": {"omega": []}}, "no values"),
        ({"starts": [{"omega": [1.0, 2.0]}]}, "shape"),
    ],
)
def test_bad_starts_raise_call_error(options: dict[str, object], pattern: str) -> None:
    t, y = wave_data()
    model = nc.compile(WAVE, params={"A": 1.0, "omega": 1.0}, dtype=F64)
    with pytest.raises(CallError, match=pattern):
        nc.fit(model, t, y, epochs=1, **options)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------
# 2. Lotka-Volterra: the paper's compiled right-hand sides, an nc rk4 rollout, multiple shooting



@pytest.fixture(scope="module")
def lv_clean() -> torch.Tensor:
    """x0 = 4, y0 = 1, RK4 with dt 0.1 over [0, 12]: [121, 2]."""
    return nc.compile_fn(LV.format(steps=120))(s0=torch.tensor([4.0, 1.0], dtype=F64), **tensors(LV_TRUE))


def fit_lotka_volterra(obs: torch.Tensor, window: int, **shooting: object) -> tuple[dict[str, float], nc.FitResult]:
    """Every constant from 0.5; the windows' initial states are trained too."""
    model = nc.compile(LV.format(steps=window), params=dict.fromkeys(LV_TRUE, 0.5), dtype=F64)
    shoot = nc.ShootingLoss(lambda y0, n: model(y0), obs, window=window, vectorize="batched", module=model,
                            **shooting)  # type: ignore[arg-type]
    result = nc.fit(shoot, None, None, optimizer="lbfgs", epochs=50, dtype=F64)
    return {k: model.params[k].item() for k in LV_TRUE}, result


def test_lotka_volterra_noise_free(lv_clean: torch.Tensor) -> None:
    # The paper's windows: 8 at random starts (seed 0), 25 steps each.
    fitted, result = fit_lotka_volterra(lv_clean, 25, n_windows=8, seed=0)
    for name, true in LV_TRUE.items():
        show("lotka-volterra clean", name, fitted[name], true, rel(fitted[name], true))
        assert rel(fitted[name], true) < 5e-4
    assert result.converged


def test_lotka_volterra_two_percent_noise(lv_clean: torch.Tensor) -> None:
    # Contiguous windows of 24 steps covering all 121 points, with a continuity penalty, rather
    # than the paper's 8 random windows, which leave points out and overlap: with 2 % noise the
    # random windows gave errors above 1 % for 2 of noise seeds 0-4, the contiguous ones at most
    # 0.75 % for seeds 0-7 (0.73 % for seed 0). That is the noise's own scatter: single shooting
    # from the true initial state does no better.
    fitted, result = fit_lotka_volterra(noisy(lv_clean, 0.02), 24, continuity_weight=1.0)
    for name, true in LV_TRUE.items():
        show("lotka-volterra 2%", name, fitted[name], true, rel(fitted[name], true))
        assert rel(fitted[name], true) < 0.01
    assert result.converged


# ----------------------------------------------------------------------------------------------
# 3. Damped pendulum: the paper's compiled right-hand side, 2 % noise


def test_damped_pendulum_two_percent_noise() -> None:
    # (theta, theta') = (1, 0), RK4 with dt 0.05 over [0, 10] (201 points), 2 % noise; starts
    # -5.0 and -0.5. Contiguous windows of 25 steps covering every point (8 windows), continuity
    # weight 10, rather than the paper's 6 random windows: with those, b was off by up to 3.5 %
    # over noise seeds 0-7; with these, by at most 0.29 % (single shooting: 0.31 %).
    clean = nc.compile_fn(PENDULUM.format(steps=200))(s0=torch.tensor([1.0, 0.0], dtype=F64),
                                                      **tensors(PENDULUM_TRUE))
    model = nc.compile(PENDULUM.format(steps=25), params={"neg_g_over_L": -5.0, "neg_b": -0.5}, dtype=F64)
    shoot = nc.ShootingLoss(lambda y0, n: model(y0), noisy(clean, 0.02), window=25, continuity_weight=10.0,
                            vectorize="batched", module=model)
    result = nc.fit(shoot, None, None, optimizer="lbfgs", epochs=50, dtype=F64)
    for name, true in PENDULUM_TRUE.items():
        value = model.params[name].item()
        show("pendulum 2%", name, value, true, rel(value, true))
        assert rel(value, true) < 5e-3
    assert result.converged


# ----------------------------------------------------------------------------------------------
# 4. Heat equation: explicit Euler with laplacian1d

HEAT = """
(define dx (/ 1 9))
(define (heat t u) (scale alpha (laplacian1d u dx)))
(euler heat u0 0.1 {steps})
"""


def sine_modes(n: int, gen: torch.Generator) -> torch.Tensor:
    """``n`` initial conditions on 10 points of [0, 1]: 1-3 distinct modes sin(k pi x), k in 1..4,
    amplitudes uniform in [0.5, 2]."""
    x = torch.linspace(0, 1, 10, dtype=F64)
    u = torch.zeros(n, 10, dtype=F64)
    for i in range(n):
        count = int(torch.randint(1, 4, (), generator=gen))
        for k in (torch.randperm(4, generator=gen)[:count] + 1).tolist():
            u[i] += (0.5 + 1.5 * torch.rand((), generator=gen, dtype=F64)) * torch.sin(k * math.pi * x)
    return u


def test_heat_equation_diffusivity() -> None:
    # The paper's recipe: 50 training trajectories of 5 steps, alpha from 0.005, Adam lr 1e-3,
    # 2,000 epochs; then 20 test trajectories of 20 steps.
    gen = torch.Generator().manual_seed(0)
    train, test = sine_modes(50, gen), sine_modes(20, gen)
    alpha = torch.tensor(0.01, dtype=F64)
    data = nc.compile_fn(HEAT.format(steps=5))(u0=train, alpha=alpha)
    assert data.shape == (50, 6, 10)
    model = nc.compile(HEAT.format(steps=5), params={"alpha": 0.005}, dtype=F64)
    nc.fit(model, {"u0": train}, data, optimizer="adam", lr=1e-3, epochs=2000, dtype=F64)
    value = model.params["alpha"].item()
    show("heat", "alpha", value, 0.01, rel(value, 0.01))
    assert rel(value, 0.01) < 1e-3
    long = nc.compile_fn(HEAT.format(steps=20))
    extrapolated = long(u0=test, alpha=model.params["alpha"].detach())
    assert torch.allclose(extrapolated, long(u0=test, alpha=alpha), rtol=0, atol=1e-6)


# ----------------------------------------------------------------------------------------------
# 5. 3-D vector mechanics: gravity with vectors

GRAVITY = "(let ((r_mag (norm r))) (scale (/ (* (- 0 G) (* m1 m2)) (* r_mag (* r_mag r_mag))) r))"


def gravity_inputs(n: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """r of uniformly random direction with |r| in [1, 5]; m1, m2 in [1, 5]."""
    direction = torch.randn(n, 3, generator=gen, dtype=F64)
    size = 1 + 4 * torch.rand(n, 1, generator=gen, dtype=F64)
    return {"r": direction / direction.norm(dim=-1, keepdim=True) * size,
            "m1": 1 + 4 * torch.rand(n, generator=gen, dtype=F64),
            "m2": 1 + 4 * torch.rand(n, generator=gen, dtype=F64)}


def test_vector_gravity_two_percent_noise() -> None:
    # The paper's recipe: 100 training samples with 2 % noise, G from 3.0, Adam lr 0.01, 3,000
    # epochs (which reaches the least-squares value of G to 1e-14). Over input seeds 1-20 the
    # least-squares G was off by at most 0.15 %.
    gen = torch.Generator().manual_seed(1)
    train, test = gravity_inputs(100, gen), gravity_inputs(50, gen)
    law = nc.compile_fn(GRAVITY)
    assert law.ranks["r"] == 1
    G = torch.tensor(6.674, dtype=F64)
    force = noisy(law(**train, G=G), 0.02)
    model = nc.compile(GRAVITY, params={"G": 3.0}, dtype=F64)
    nc.fit(model, train, force, optimizer="adam", lr=0.01, epochs=3000, dtype=F64)
    value = model.params["G"].item()
    show("vector gravity 2%", "G", value, 6.674, rel(value, 6.674))
    assert rel(value, 6.674) < 5e-3
    with torch.no_grad():
        truth = law(**test, G=G)
        assert ((model(**test) - truth).norm() / truth.norm()).item() < 5e-3
