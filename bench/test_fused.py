"""Group 5: the fused path: ``torch.compile(f, fullgraph=True)`` of a compiled nc function.

Each Feynman program (constants defined, as in group 2) at N = 1,000,000 float64:
``torch.compile(nc.compile_fn(src), fullgraph=True)`` (inductor) vs the hand-written formula run
eagerly (the target: at least 1.5x faster, geomean over programs of 3+ operations). For
reference: nc eager, and the hand-written formula under the same ``torch.compile``. If
``fullgraph=True`` fails on nc, the failure is reported and nc is compiled without it (graph
breaks allowed) so that a number still comes out.

Quick mode: ``backend="eager"`` (dynamo only, no code generation) on one program at N = 10,000.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import pytest
import torch

import nc
from bench import programs as P
from bench import report
from bench.interleave import measure

pytestmark = pytest.mark.skipif(not P.feynman_available(), reason=f"{P.FEYNMAN_PATH} is absent")

N = 1_000_000
QUICK_N = 10_000
QUICK_PROGRAM = "gaussian"
MIN_OPS = 3
TARGET = 1.5


@dataclass
class Fused:
    formula: P.Formula
    how: str  # "fullgraph", or why not
    compile_s: float  # the first call of the compiled nc function (dynamo + inductor)
    thunks: dict[str, Callable[[], Any]]


def _raise_recompile_limits() -> None:
    # Every CompiledFunction shares one __call__ code object: 15 programs are 15 cache entries of
    # it, more than dynamo's default limit of 8 (beyond which it silently runs eagerly).
    cfg = torch._dynamo.config
    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(cfg, name):
            setattr(cfg, name, max(getattr(cfg, name), 256))


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:100] if text else ''}"


@cache
def fused(pid: str, backend: str, n: int) -> Fused:
    _raise_recompile_limits()
    formula = P.by_id(pid)
    f = nc.compile_fn(formula.defined_source)
    P.check_hand(formula, f.inputs)
    hand = P.HAND[pid]
    xs = P.make_inputs(formula, f.inputs, n, torch.float64)
    expected = hand(*xs)
    how = "fullgraph"
    t0 = time.perf_counter()
    try:
        nc_fused = torch.compile(f, fullgraph=True, backend=backend)
        out = nc_fused(*xs)
    except Exception as e:  # noqa: BLE001 - any failure of dynamo/inductor is the measured outcome
        how = f"fullgraph failed ({_first_line(e)}); graph breaks allowed"
        t0 = time.perf_counter()
        nc_fused = torch.compile(f, backend=backend)
        out = nc_fused(*xs)
    compile_s = time.perf_counter() - t0
    hand_fused = torch.compile(hand, fullgraph=True, backend=backend)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(hand_fused(*xs), expected, rtol=1e-12, atol=1e-12)
    thunks = {
        "nc_fused": lambda: nc_fused(*xs),
        "hand_eager": lambda: hand(*xs),
        "hand_fused": lambda: hand_fused(*xs),
        "nc_eager": lambda: f(*xs),
    }
    return Fused(formula, how, compile_s, thunks)


def selected(mode: Any) -> list[Fused]:
    if mode.quick:
        return [fused(QUICK_PROGRAM, "eager", QUICK_N)]
    return [fused(f.id, "inductor", N) for f in P.feynman()]


@pytest.mark.benchmark(group="5 fused: all 15 programs, N=1,000,000 float64", max_time=0.5)
@pytest.mark.parametrize("variant", ["nc_fused", "hand_eager", "hand_fused", "nc_eager"])
def test_fused(benchmark, mode, variant: str) -> None:
    thunks = [c.thunks[variant] for c in selected(mode)]

    def suite() -> None:
        for t in thunks:
            t()

    benchmark(suite)


@pytest.mark.benchmark(group="5 fused: interleaved ratio runs (wall time of the whole measurement)")
def test_fused_ratios(benchmark, mode) -> None:
    backend, n = ("eager", QUICK_N) if mode.quick else ("inductor", N)
    tab = report.table(5, f"torch.compile(backend={backend!r}) at N={n:,} float64",
                       ["program", "ops", "nc fused", "hand eager", "speedup hand eager / nc fused",
                        "nc fused / hand fused", "nc eager / hand eager", "first call (compile)"],
                       method=f"{mode.describe()} of nc fused, hand eager, hand fused, nc eager")
    order = [f.id for f in P.feynman()]

    def run() -> dict[str, tuple[int, float]]:
        out = {}
        for c in selected(mode):
            res = measure(c.thunks, rounds=mode.rounds, **mode.timing(5e-3, 100))
            sp = res.ratio("hand_eager", "nc_fused")
            out[c.formula.id] = (c.formula.ops, sp.median)
            tab.add(order.index(c.formula.id),
                    [c.formula.id, c.formula.ops, report.fmt_time(res.median("nc_fused")),
                     report.fmt_time(res.median("hand_eager")), report.fmt_ratio(sp),
                     report.fmt_ratio(res.ratio("nc_fused", "hand_fused")),
                     report.fmt_ratio(res.ratio("nc_eager", "hand_eager")), report.fmt_time(c.compile_s)],
                    {"program": c.formula.id, "how": c.how, "compile_s": c.compile_s,
                     "seconds": {k: res.stat(k).as_dict() for k in res.times},
                     "speedup": sp.as_dict(), "nc_fused/hand_fused": res.ratio("nc_fused", "hand_fused").as_dict()})
            if c.how != "fullgraph":
                tab.note(f"{c.formula.id}: {c.how}")
        return out

    results = benchmark.pedantic(run, rounds=1, iterations=1)
    many = [sp for ops, sp in results.values() if ops >= MIN_OPS]
    gm = P.geomean(many)
    tab.add(99, [f"geomean, {MIN_OPS}+ ops ({len(many)})", "", "", "", f"{gm:.3g}x", "", "", ""])
    gm_all = P.geomean([sp for _, sp in results.values()])
    tab.add(100, [f"geomean, all ({len(results)})", "", "", "", f"{gm_all:.3g}x", "", "", ""])
    report.target(5, f"fused path vs hand-written eager (speedup, geomean over {MIN_OPS}+ op programs)",
                  f">= {TARGET}x", f"{gm:.3g}x (all programs {gm_all:.3g}x)", gm >= TARGET)
    benchmark.extra_info["speedups"] = results
