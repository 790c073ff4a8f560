"""Group 1: compile time.

- The 15 Feynman programs: ``nc.compile_fn`` cold vs ``sympy.lambdify(modules="torch")`` of the
  same formula (an expression tree made by bench's converter; the conversion is not timed). The
  programs are the ones of feynman15.json, constants as free names (inputs), so both sides
  produce a function of the same arguments. ``compile_fn`` is lazy (it parses and infers ranks;
  the first call traces and lowers for that call's shapes and dtypes), so "compile_fn + first
  call" (N=1, float64) is reported too.
- Generated ``let*`` chains of 10 to 100,000 operations: compile_fn, the first call, and the
  time per operation (linear growth shows as a flat time/op).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable

import pytest
import torch

import nc
from bench import programs as P
from bench import report
from bench.interleave import measure, summarize

pytestmark = pytest.mark.skipif(not P.feynman_available(), reason=f"{P.FEYNMAN_PATH} is absent")

FEYNMAN_IDS = [f.id for f in P.feynman()] if P.feynman_available() else []
COLD_TARGET_S = 50e-6
GEN_SIZES = [10, 100, 1_000, 10_000, 100_000]
GEN_ROUNDS = {10: 15, 100: 15, 1_000: 5, 10_000: 3, 100_000: 1}
GEN_TARGET_S = 2.0
GEN_RESULTS: dict[int, tuple[float, float]] = {}  # ops -> (compile_fn median, + first call)


def _cache_clearers() -> list[Callable[[], object]]:
    """Everything that could make a second compile of the same source warm.

    nc has no source cache yet; if one appears as ``nc.clear_cache()`` / ``cache_clear()`` or as
    a ``functools`` cache on a function of an ``nc`` module, it is cleared before every cold
    compile.
    """
    out: list[Callable[[], object]] = []
    for attr in ("clear_cache", "cache_clear", "clear_caches"):
        fn = getattr(nc, attr, None)
        if callable(fn):
            out.append(fn)
    for name, mod in list(sys.modules.items()):
        if name != "nc" and not name.startswith("nc."):
            continue
        for obj in list(vars(mod).values()):
            clear = getattr(obj, "cache_clear", None)
            if callable(clear) and getattr(obj, "__module__", "").startswith("nc"):
                out.append(clear)
    return out


CLEARERS = _cache_clearers()


def compile_cold(src: str) -> nc.CompiledFunction:
    for clear in CLEARERS:
        clear()
    return nc.compile_fn(src)


def _one(formula: P.Formula, names: tuple[str, ...]) -> list[torch.Tensor]:
    return P.make_inputs(formula, names, 1, torch.float64)


# ---- the 15 Feynman programs ----------------------------------------------------------------------
@pytest.mark.benchmark(group="1 compile: feynman15 (nc.compile_fn cold vs sympy.lambdify)", max_time=0.1)
@pytest.mark.parametrize("pid", FEYNMAN_IDS)
@pytest.mark.parametrize("variant", ["nc", "lambdify"])
def test_compile_feynman(benchmark, variant: str, pid: str) -> None:
    formula = P.by_id(pid)
    names = nc.compile_fn(formula.program).inputs
    if variant == "nc":
        f = benchmark(compile_cold, formula.program)
    else:
        f = benchmark(P.lambdify, formula, names, substitute=False)
    xs = _one(formula, names)
    expected = nc.compile_fn(formula.program)(*xs)
    torch.testing.assert_close(f(*xs), expected)


@pytest.mark.benchmark(group="1 compile: interleaved ratio runs (wall time of the whole measurement)")
def test_compile_feynman_ratios(benchmark, mode) -> None:
    tab = report.table(1, "15 Feynman programs: compile_fn cold vs sympy.lambdify(modules='torch')",
                       ["program", "ops", "compile_fn", "compile_fn IQR", "+ first call", "lambdify",
                        "compile_fn / lambdify"],
                       method=f"{mode.describe()}; per-call seconds; median [IQR]")
    tab.note("compile_fn parses, checks and infers ranks; the first call traces and lowers for its "
             "signature (here N=1 float64) -- both are part of 'time to a first result'")
    tab.note("lambdify starts from a SymPy expression (bench's converter, untimed); compile_fn starts from text")

    def run() -> dict[str, float]:
        medians = {}
        for formula in P.feynman():
            names = nc.compile_fn(formula.program).inputs
            xs = _one(formula, names)
            src = formula.program
            res = measure({
                "nc": lambda src=src: compile_cold(src),
                "nc_call": lambda src=src, xs=xs: compile_cold(src)(*xs),
                "lambdify": lambda formula=formula, names=names: P.lambdify(formula, names, substitute=False),
            }, rounds=mode.rounds, **mode.timing(2e-3, 10_000))
            s = res.stat("nc")
            medians[formula.id] = s.median
            tab.add(FEYNMAN_IDS.index(formula.id),
                    [formula.id, formula.ops, report.fmt_time(s.median),
                     f"[{report.fmt_time(s.q1)}, {report.fmt_time(s.q3)}]",
                     report.fmt_time(res.median("nc_call")), report.fmt_time(res.median("lambdify")),
                     report.fmt_ratio(res.ratio("nc", "lambdify"))],
                    {"program": formula.id, "compile_fn": s.as_dict(), "nc_first_call": res.stat("nc_call").as_dict(),
                     "lambdify": res.stat("lambdify").as_dict(), "ratio": res.ratio("nc", "lambdify").as_dict()})
        return medians

    medians = benchmark.pedantic(run, rounds=1, iterations=1)
    worst = max(medians, key=lambda k: medians[k])
    vals = list(medians.values())
    tab.add(99, ["all 15", "", f"median {report.fmt_time(summarize(vals).median)}",
                 f"max {report.fmt_time(medians[worst])} ({worst})", "", "", ""])
    report.target(1, "compile_fn cold, each Feynman program", "<= 50 us",
                  f"max {report.fmt_time(medians[worst])} ({worst}), median {report.fmt_time(summarize(vals).median)}",
                  medians[worst] <= COLD_TARGET_S)
    benchmark.extra_info["compile_fn_median_s"] = medians


# ---- generated programs ---------------------------------------------------------------------------
@pytest.mark.benchmark(group="1 compile: generated let* chains (nc.compile_fn)", warmup=False)
@pytest.mark.parametrize("n_ops", GEN_SIZES)
def test_compile_generated(benchmark, mode, n_ops: int) -> None:
    if n_ops > 1_000:
        mode.skip_in_quick("10,000 and 100,000 operations take seconds")
    src = P.let_chain(n_ops)
    made: list[nc.CompiledFunction] = []
    compile_times: list[float] = []

    def target() -> nc.CompiledFunction:
        t0 = time.perf_counter()
        f = compile_cold(src)
        compile_times.append(time.perf_counter() - t0)
        made.append(f)
        return f

    rounds = 1 if mode.quick else GEN_ROUNDS[n_ops]
    benchmark.pedantic(target, rounds=rounds, iterations=1)
    x = torch.tensor([1.0], dtype=torch.float64)
    first_calls = []
    for f in made:
        t0 = time.perf_counter()
        y = f(x)
        first_calls.append(time.perf_counter() - t0)
    assert math.isclose(float(y), P.let_chain_reference(n_ops, 1.0), rel_tol=1e-9)
    tc, t1 = summarize(compile_times), summarize(first_calls)
    total = tc.median + t1.median
    tab = report.table(1, "generated let* chains: (let* ((a1 (+ x 0.5)) (a2 (* a1 0.999)) ...) aN)",
                       ["ops", "rounds", "compile_fn", "compile_fn IQR", "us/op", "first call (N=1)",
                        "compile_fn + first call", "us/op (total)"],
                       method="repeated cold compiles (no peer); median [IQR] over rounds")
    tab.add(n_ops, [f"{n_ops:,}", len(compile_times), report.fmt_time(tc.median),
                    f"[{report.fmt_time(tc.q1)}, {report.fmt_time(tc.q3)}]", f"{tc.median / n_ops * 1e6:.3g}",
                    report.fmt_time(t1.median), report.fmt_time(total), f"{total / n_ops * 1e6:.3g}"],
            {"ops": n_ops, "compile_fn": tc.as_dict(), "first_call": t1.as_dict()})
    GEN_RESULTS[n_ops] = (tc.median, total)
    benchmark.extra_info.update({"compile_fn_s": compile_times, "first_call_s": first_calls})
    if n_ops == max(GEN_SIZES):
        report.target(1, "compile of 100,000 operations (compile_fn)", "< 2 s", report.fmt_time(tc.median),
                      tc.median < GEN_TARGET_S)
        report.target(1, "compile of 100,000 operations (compile_fn + first call)", "< 2 s",
                      report.fmt_time(total), total < GEN_TARGET_S)
    small = min(GEN_RESULTS, key=lambda k: abs(k - 1_000))
    if n_ops > small and n_ops >= 10_000:
        growth = math.log(tc.median / GEN_RESULTS[small][0]) / math.log(n_ops / small)
        tab.note(f"growth exponent of compile_fn from {small:,} to {n_ops:,} ops: {growth:.2f} (1.00 = linear)")

