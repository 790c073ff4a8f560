"""nc.discover: exact recovery (Lorenz), hybrid discovery (Lotka-Volterra), the CLI, bad input."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import nc
from nc.cli import main
from nc.discover_library import build_library, display_term
from nc.discover_stlsq import savgol

F64 = torch.float64

LORENZ = """
(define (f t s) (let ((x (ref s 0)) (y (ref s 1)) (z (ref s 2)))
  [(* 10 (- y x)) (- (* x (- 28 z)) y) (- (* x y) (* 2.6666666666666665 z))]))
(rk4 f s0 0.001 2000)
"""

LV = """
(define (f t s) (let ((x (ref s 0)) (y (ref s 1)))
  [(- (* 1.1 x) (* 0.4 x y)) (+ (* -0.4 y) (* 0.1 x y))]))
(rk4 f s0 0.01 1500)
"""


def simulate(src: str, starts: list[list[float]], every: int) -> list[np.ndarray]:
    g = nc.compile_fn(src)
    return [g(s0=torch.tensor(y0, dtype=F64)).numpy()[::every] for y0 in starts]


def coefficient(result: nc.Discovery, state: str, term: str) -> float:
    return result.coefficients[f"c_{state}_{result.terms.index(term)}"]


def test_library_terms_and_display():
    assert build_library("poly2", ["x", "y"]) == ("x", "y", "(* x x)", "(* x y)", "(* y y)")
    assert build_library(["const", "trig", "x"], ["x"]) == ("1", "(sin x)", "(cos x)", "x")
    assert [display_term(t) for t in ("(* x x y)", "(sin x)", "1", "(* 2 x)")] == ["x^2 y", "(sin x)", "1", "(* 2 x)"]


def test_savgol_derivative_of_a_cubic_is_exact():
    t = np.linspace(0, 1, 41)
    y = (1 + 2 * t - t**2 + 0.5 * t**3)[:, None]
    smooth, d = savgol(y, float(t[1] - t[0]), half=4, order=3)
    np.testing.assert_allclose(smooth, y, atol=1e-12)
    np.testing.assert_allclose(d[:, 0], 2 - 2 * t + 1.5 * t**2, atol=1e-9)


@pytest.mark.slow
def test_lorenz_exact_recovery_noise_free():
    trajs = simulate(LORENZ, [[-8.0, 8.0, 27.0], [1.0, 1.0, 1.0], [10.0, -5.0, 30.0]], 10)
    result = nc.discover(trajs, 0.01, ["x", "y", "z"], "poly2")
    assert result.selected == {"x": ["x", "y"], "y": ["x", "y", "(* x z)"], "z": ["z", "(* x y)"]}
    truth = {("x", "x"): -10, ("x", "y"): 10, ("y", "x"): 28, ("y", "y"): -1, ("y", "(* x z)"): -1,
             ("z", "z"): -8 / 3, ("z", "(* x y)"): 1}
    for (state, term), value in truth.items():
        assert abs(coefficient(result, state, term) - value) <= 1e-3 * abs(value)
    assert all(0 < e < 1e-2 for e in result.stderr.values())
    text = str(result)
    assert re.fullmatch(r"dx/dt = -(9\.999\d*|10(\.000\d*)?) x \+ (9\.999\d*|10(\.000\d*)?) y", text.splitlines()[0])
    assert text.splitlines()[3].startswith("coefficients (standard error): c_x_0 = ")
    # the program compiles, and its right-hand side at a state is the fitted one
    rhs = nc.compile(result.source, trainable=list(result.coefficients))
    v = rhs(torch.tensor([1.0, 2.0, 3.0], dtype=F64))
    assert torch.allclose(v, torch.tensor([10.0, 28 - 2 - 3, 2 - 8.0]).to(v.dtype), rtol=1e-3)


@pytest.mark.slow
def test_hybrid_lotka_volterra_finds_the_interaction_terms():
    trajs = simulate(LV, [[10.0, 5.0], [6.0, 3.0]], 10)
    known = "(define alpha 1.1)\n(define gamma 0.4)\n[(* alpha x) (- (* gamma y))]"
    result = nc.discover(trajs, [0.1, 0.1], "x,y", "poly2", known=known)
    assert result.selected == {"x": ["(* x y)"], "y": ["(* x y)"]}
    assert abs(coefficient(result, "x", "(* x y)") + 0.4) < 4e-4
    assert abs(coefficient(result, "y", "(* x y)") - 0.1) < 1e-4
    assert "[known: (* alpha x)]" in str(result)
    assert "(define alpha 1.1)" in result.source


@pytest.mark.slow
def test_cli_end_to_end(tmp_path, capsys):
    trajs = simulate(LV, [[10.0, 5.0], [6.0, 3.0]], 10)
    rows = ["t,x,y"] + [f"{0.1 * i!r},{float(a)!r},{float(b)!r}" for y in trajs for i, (a, b) in enumerate(y)]
    (tmp_path / "lv.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "known.nc").write_text("[(* 1.1 x) (* -0.4 y)]\n")
    out, png = tmp_path / "found.nc", tmp_path / "fit.png"
    code = main(["discover", str(tmp_path / "lv.csv"), "--states", "x,y", "--time", "t", "--library", "poly2",
                 "--known", str(tmp_path / "known.nc"), "-o", str(out), "--plot", str(png)])
    printed = capsys.readouterr().out
    assert code == 0
    assert "dx/dt = [known: (* 1.1 x)] - 0.4" in printed
    assert png.stat().st_size > 1000
    model = nc.compile(out.read_text(), trainable=["c_x_3", "c_y_3"])
    assert abs(float(model.params["c_x_3"]) + 0.4) < 1e-3


def test_cli_unknown_column(tmp_path, capsys):
    (tmp_path / "d.csv").write_text("t,x\n0,1\n1,2\n")
    assert main(["discover", str(tmp_path / "d.csv"), "--states", "x,q"]) == 2
    assert "no column 'q'" in capsys.readouterr().err


GOOD = np.cumsum(np.ones((20, 2)), axis=0)


@pytest.mark.parametrize("kwargs, message", [
    ({"data": [GOOD, GOOD[:10]], "times": [np.arange(20.0), np.arange(12.0)]},
     "trajectory 1 has 10 rows but its times have shape (12,)"),
    ({"data": np.where(np.arange(20)[:, None] == 7, np.nan, GOOD)}, "NaN or infinite value in row 7"),
    ({"library": ["x", "(* x w)"]}, "library term '(* x w)' uses 'w', which is not a state name"),
    ({"library": []}, "the library is empty"),
    ({"times": np.r_[np.arange(10.0), np.arange(10.0) + 5]}, "do not increase at row 10"),
    ({"times": np.r_[np.arange(10.0), np.arange(10.0) * 2 + 10]}, "not equally spaced"),
    ({"states": "x,x"}, "state name 'x' appears twice"),
    ({"known": {"z": "x"}}, "known names 'z', which is not a state"),
    ({"known": {"x": "(* k x)"}}, "the known part of 'x' uses 'k'"),
    ({"data": GOOD[:, :1]}, "has 1 columns but there are 2 states"),
])
def test_bad_input_is_a_call_error(kwargs, message):
    args = {"data": GOOD, "times": np.arange(20.0), "states": "x,y", "library": "poly2"} | kwargs
    with pytest.raises(nc.CallError) as info:
        nc.discover(args.pop("data"), args.pop("times"), args.pop("states"), args.pop("library"), **args)
    assert message in str(info.value)
