"""Group 2: call time of a compiled function vs hand-written PyTorch, SymPy lambdify, sympytorch.

Each of the 15 Feynman programs with its constants written as ``(define name value)`` (so the
function's inputs are the formula's variables, and nc inlines the constants as Python floats,
as the hand-written peer does) at N = 1, 1,000 and 1,000,000 inputs, float32 and float64.
Peers: the hand-written formula (`bench.programs.HAND`, same operations in the same order),
``sympy.lambdify(modules="torch")`` and ``sympytorch.SymPyModule`` (constants substituted;
SymPy may fold them, e.g. ``2*sigma**2`` -> ``8.0``; sympytorch stacks its output to ``(N, 1)``).
Everything is called positionally (sympytorch by keyword, its only way) with no autograd.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import pytest
import torch

import nc
from bench import programs as P
from bench import report
from bench.interleave import measure, summarize

pytestmark = pytest.mark.skipif(not P.feynman_available(), reason=f"{P.FEYNMAN_PATH} is absent")

SIZES = [1, 1_000, 1_000_000]
DTYPES = {"float32": torch.float32, "float64": torch.float64}
VARIANTS = ["nc", "hand", "lambdify", "sympytorch"]
TARGET = {1: 1.05, 1_000_000: 1.02}


@dataclass
class Case:
    formula: P.Formula
    thunks: dict[str, Callable[[], Any]]


@cache
def nc_function(pid: str) -> nc.CompiledFunction:
    formula = P.by_id(pid)
    f = nc.compile_fn(formula.defined_source)
    P.check_hand(formula, f.inputs)
    return f


@cache
def lambdified(pid: str) -> Callable[..., torch.Tensor]:
    return P.lambdify(P.by_id(pid), nc_function(pid).inputs, substitute=True)


@cache
def sympytorch_module(pid: str, dtype_name: str) -> torch.nn.Module:
    return P.sympytorch_module(P.by_id(pid), DTYPES[dtype_name])


def cases(n: int, dtype_name: str) -> list[Case]:
    """Per program: a no-argument call of each variant on the same inputs (checked to agree)."""
    out = []
    dtype = DTYPES[dtype_name]
    for formula in P.feynman():
        f = nc_function(formula.id)
        xs = P.make_inputs(formula, f.inputs, n, dtype)
        kw = dict(zip(f.inputs, xs))
        hand, lam, st = P.HAND[formula.id], lambdified(formula.id), sympytorch_module(formula.id, dtype_name)
        thunks = {
            "nc": lambda f=f, xs=xs: f(*xs),
            "hand": lambda h=hand, xs=xs: h(*xs),
            "lambdify": lambda g=lam, xs=xs: g(*xs),
            "sympytorch": lambda m=st, kw=kw: m(**kw),
        }
        ref = thunks["hand"]()
        got = thunks["nc"]()
        assert got.dtype == dtype and torch.equal(got, ref), f"nc and hand-written differ on {formula.id}"
        tol = {"rtol": 1e-4, "atol": 1e-5} if dtype == torch.float32 else {"rtol": 1e-9, "atol": 1e-12}
        torch.testing.assert_close(thunks["lambdify"]().to(dtype), ref, **tol)
        torch.testing.assert_close(thunks["sympytorch"]()[..., 0], ref, **tol)
        out.append(Case(formula, thunks))
    return out


def _size_id(n: int) -> str:
    return f"N{n:_}"


@pytest.mark.benchmark(max_time=0.25)
@pytest.mark.parametrize("n", SIZES, ids=_size_id)
@pytest.mark.parametrize("dtype_name", list(DTYPES))
@pytest.mark.parametrize("variant", VARIANTS)
def test_call(benchmark, mode, variant: str, dtype_name: str, n: int) -> None:
    """All 15 programs called once each (pytest-benchmark's table shows the variants side by side)."""
    if n >= 1_000_000:
        mode.skip_in_quick("N = 1,000,000")
    benchmark.group = f"2 call: all 15 programs, N={n:,} {dtype_name}"
    thunks = [c.thunks[variant] for c in cases(n, dtype_name)]

    def suite() -> None:
        for t in thunks:
            t()

    benchmark(suite)


@pytest.mark.benchmark(group="2 call: interleaved ratio runs (wall time of the whole measurement)")
@pytest.mark.parametrize("n", SIZES, ids=_size_id)
@pytest.mark.parametrize("dtype_name", list(DTYPES))
def test_call_ratios(benchmark, mode, dtype_name: str, n: int) -> None:
    if n >= 1_000_000:
        mode.skip_in_quick("N = 1,000,000")
    tab = report.table(2, f"N={n:,} {dtype_name}",
                       ["program", "ops", "nc", "hand", "nc / hand", "nc / lambdify", "nc / sympytorch"],
                       method=f"{mode.describe()} (nc, hand, lambdify, sympytorch); per-call time median; "
                              "ratio median [IQR]")
    order = [f.id for f in P.feynman()]

    def run() -> list[float]:
        per_program = []
        for case in cases(n, dtype_name):
            res = measure(case.thunks, rounds=mode.rounds, **mode.timing(1e-3))
            r_hand = res.ratio("nc", "hand")
            per_program.append(r_hand.median)
            tab.add(order.index(case.formula.id),
                    [case.formula.id, case.formula.ops, report.fmt_time(res.median("nc")),
                     report.fmt_time(res.median("hand")), report.fmt_ratio(r_hand),
                     report.fmt_ratio(res.ratio("nc", "lambdify")), report.fmt_ratio(res.ratio("nc", "sympytorch"))],
                    {"program": case.formula.id, "n": n, "dtype": dtype_name,
                     "seconds": {v: res.stat(v).as_dict() for v in case.thunks},
                     "nc/hand": r_hand.as_dict(), "nc/lambdify": res.ratio("nc", "lambdify").as_dict(),
                     "nc/sympytorch": res.ratio("nc", "sympytorch").as_dict()})
        return per_program

    ratios = benchmark.pedantic(run, rounds=1, iterations=1)
    gm, worst = P.geomean(ratios), max(ratios)
    spread = summarize(ratios)
    tab.add(99, ["all 15: geomean", "", "", "", f"{gm:.3g}x (median {spread.median:.3g}x, max {worst:.3g}x)", "", ""])
    benchmark.extra_info["nc_over_hand_per_program"] = ratios
    _targets[(n, dtype_name)] = (gm, worst)
    if n in TARGET:
        limit = TARGET[n]
        done = [k for k in _targets if k[0] == n]
        gms = [_targets[k][0] for k in done]
        worsts = [_targets[k][1] for k in done]
        report.target(2, f"call at N={n:,} vs hand-written (geomean over the 15 programs, worse dtype)",
                      f"<= {limit}x", f"geomean {max(gms):.3g}x, worst program {max(worsts):.3g}x "
                      f"({', '.join(k[1] for k in sorted(done))})", max(gms) <= limit)


_targets: dict[tuple[int, str], tuple[float, float]] = {}
