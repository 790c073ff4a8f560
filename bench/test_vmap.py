"""Group 3: ``torch.func.vmap`` over 10,000 parameter sets vs a Python loop over them.

Each Feynman program as ``nc.compile(src, params=constants)`` (an ``nn.Module`` whose constants
are parameters), float64, on 100 input samples. A sweep evaluates the module for 10,000
parameter sets (each constant scaled by a factor in [0.5, 1.5)): with
``vmap(lambda p: functional_call(model, p, xs))`` in one call, or with a Python loop calling
``functional_call`` per set and stacking the results. The loop runs over the first 250 sets
and its time is multiplied by 40 (one full 10,000-set loop is timed once to check that
extrapolation). For reference, ``vmap`` of the hand-written formula with the constants as
arguments.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import pytest
import torch
from torch.func import functional_call, vmap

import nc
from bench import programs as P
from bench import report
from bench.interleave import measure

pytestmark = pytest.mark.skipif(not P.feynman_available(), reason=f"{P.FEYNMAN_PATH} is absent")

SETS = 10_000
SAMPLES = 100
LOOP_SUBSET = 250
QUICK_PROGRAMS = ("planck", "barometric")
QUICK_SUBSET = 10
TARGET = 100.0


@dataclass
class Sweep:
    formula: P.Formula
    vmapped: Callable[[], torch.Tensor]
    loop: Callable[[], torch.Tensor]
    hand: Callable[[], torch.Tensor]
    subset: int


@cache
def sweep(pid: str, subset: int) -> Sweep:
    formula = P.by_id(pid)
    model = nc.compile(formula.program, params=formula.constants).double()
    xs = tuple(P.make_inputs(formula, model.inputs, SAMPLES, torch.float64))
    gen = torch.Generator().manual_seed(1)
    key_of = {n: k for k, p in model.named_parameters() for n in model.param_names if model.params[n] is p}
    batch = {key_of[n]: formula.constants[n] * (0.5 + torch.rand(SETS, generator=gen, dtype=torch.float64))
             for n in model.param_names}

    swept = vmap(lambda p: functional_call(model, p, xs))

    def vmapped() -> torch.Tensor:
        return swept(batch)

    def loop() -> torch.Tensor:
        return torch.stack([functional_call(model, {k: v[i] for k, v in batch.items()}, xs) for i in range(subset)])

    hand_fn = P.HAND[pid]
    inputs, consts = P.hand_signature(pid)
    assert inputs == model.inputs and set(consts) == set(model.param_names)
    cols = tuple(batch[key_of[n]] for n in model.param_names)
    hand_swept = vmap(lambda *c: hand_fn(*xs, **dict(zip(model.param_names, c))))

    def hand() -> torch.Tensor:
        return hand_swept(*cols)

    full = vmapped()
    assert full.shape == (SETS, SAMPLES)
    torch.testing.assert_close(loop(), full[:subset], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(hand(), full, rtol=1e-12, atol=1e-12)
    return Sweep(formula, vmapped, loop, hand, subset)


def selected(mode: Any) -> list[Sweep]:
    ids = QUICK_PROGRAMS if mode.quick else tuple(f.id for f in P.feynman())
    return [sweep(pid, QUICK_SUBSET if mode.quick else LOOP_SUBSET) for pid in ids]


@pytest.mark.benchmark(group="3 vmap: all 15 programs, 10,000 parameter sets x 100 samples, float64", max_time=0.5)
@pytest.mark.parametrize("variant", ["nc-vmap", f"nc-loop-first-{LOOP_SUBSET}-sets", "hand-vmap"])
def test_vmap(benchmark, mode, variant: str) -> None:
    sweeps = selected(mode)
    attr = {"nc-vmap": "vmapped", "hand-vmap": "hand"}.get(variant, "loop")
    thunks = [getattr(s, attr) for s in sweeps]

    def suite() -> None:
        for t in thunks:
            t()

    benchmark(suite)


@pytest.mark.benchmark(group="3 vmap: interleaved ratio runs (wall time of the whole measurement)")
def test_vmap_ratios(benchmark, mode) -> None:
    tab = report.table(3, f"{SETS:,} parameter sets x {SAMPLES} samples, float64",
                       ["program", "ops", "vmap", "loop (10,000 sets)", "speedup loop / vmap", "nc vmap / hand vmap"],
                       method=f"{mode.describe(3)}; loop over the first "
                              f"{QUICK_SUBSET if mode.quick else LOOP_SUBSET} sets, time scaled to {SETS:,}")
    order = [f.id for f in P.feynman()]

    def run() -> list[float]:
        speedups = []
        for s in selected(mode):
            res = measure({"vmap": s.vmapped, "loop": s.loop, "hand": s.hand}, rounds=mode.rounds,
                          scale={"loop": SETS / s.subset}, **mode.timing(5e-3, 1_000, repeat=3))
            sp = res.ratio("loop", "vmap")
            speedups.append(sp.median)
            tab.add(order.index(s.formula.id),
                    [s.formula.id, s.formula.ops, report.fmt_time(res.median("vmap")),
                     report.fmt_time(res.median("loop")), report.fmt_ratio(sp),
                     report.fmt_ratio(res.ratio("vmap", "hand"))],
                    {"program": s.formula.id, "seconds": {k: res.stat(k).as_dict() for k in res.times},
                     "speedup": sp.as_dict(), "nc_vmap/hand_vmap": res.ratio("vmap", "hand").as_dict()})
        return speedups

    speedups = benchmark.pedantic(run, rounds=1, iterations=1)
    gm = P.geomean(speedups)
    tab.add(99, ["all: geomean", "", "", "", f"{gm:.3g}x (min {min(speedups):.3g}x)", ""])
    report.target(3, "vmap sweep vs Python loop (speedup, geomean over programs)", f">= {TARGET:.0f}x",
                  f"geomean {gm:.3g}x, min {min(speedups):.3g}x", gm >= TARGET)
    benchmark.extra_info["speedups"] = speedups

    # One full loop over all sets, to check the extrapolation from the subset.
    first = selected(mode)[0]
    model_loop_full = sweep(first.formula.id, SETS if not mode.quick else QUICK_SUBSET).loop
    t0 = time.perf_counter()
    model_loop_full()
    full = time.perf_counter() - t0
    t0 = time.perf_counter()
    first.loop()
    part = (time.perf_counter() - t0) * SETS / first.subset
    if not mode.quick:
        tab.note(f"extrapolation check ({first.formula.id}): a full loop over {SETS:,} sets took "
                 f"{report.fmt_time(full)}; the subset loop scaled gives {report.fmt_time(part)}")
