"""Interleaved timing: the ratios the benchmark summary prints.

Timing nc and a peer in separate blocks lets drift (frequency scaling, a neighbour on the
machine, the allocator's state) land on one side only. Here every round times each variant
once, in turn (nc, peer, nc, peer, ...; the order is reversed on every other round so that
neither always goes first), and a ratio is computed per round; the summary reports the median
of the per-round ratios and their interquartile range.

On a shared machine a timing can be hit by a preemption (or, with several intra-op threads, by
one thread waiting for a descheduled other) that costs far more than the call itself. With
``repeat=k`` a round is k interleaved passes over the variants and each variant's time in that
round is the minimum of its k timings: interference only ever adds time, so the minimum of a
few neighbouring timings is the undisturbed one, and rounds stay comparable.

    res = measure({"nc": lambda: f(x), "hand": lambda: h(x)}, rounds=15)
    res.ratio("nc", "hand")       # RatioStat(median, q1, q3, n): nc time / hand time
    res.median("nc")              # seconds per call
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

Thunk = Callable[[], Any]


@dataclass(frozen=True)
class RatioStat:
    """Median and quartiles of per-round values (a ratio, or seconds)."""

    median: float
    q1: float
    q3: float
    n: int

    @property
    def iqr(self) -> float:
        return self.q3 - self.q1

    def fmt(self, unit: str = "x", digits: int = 3) -> str:
        return f"{self.median:.{digits}g}{unit}"

    def spread(self, unit: str = "x", digits: int = 3) -> str:
        return f"[{self.q1:.{digits}g}, {self.q3:.{digits}g}]{unit}"

    def as_dict(self) -> dict[str, float]:
        return {"median": self.median, "q1": self.q1, "q3": self.q3, "n": self.n}


def summarize(values: list[float]) -> RatioStat:
    vals = sorted(values)
    if not vals:
        return RatioStat(math.nan, math.nan, math.nan, 0)
    if len(vals) == 1:
        return RatioStat(vals[0], vals[0], vals[0], 1)
    q1, _, q3 = statistics.quantiles(vals, n=4, method="inclusive")
    return RatioStat(statistics.median(vals), q1, q3, len(vals))


@dataclass
class Interleaved:
    """Per-round seconds per call of each variant."""

    times: dict[str, list[float]]
    inner: dict[str, int] = field(default_factory=dict)
    scale: dict[str, float] = field(default_factory=dict)

    def seconds(self, name: str) -> list[float]:
        s = self.scale.get(name, 1.0)
        return [t * s for t in self.times[name]]

    def median(self, name: str) -> float:
        return statistics.median(self.seconds(name))

    def stat(self, name: str) -> RatioStat:
        return summarize(self.seconds(name))

    def ratio(self, num: str, den: str) -> RatioStat:
        """Per-round ``num`` time / ``den`` time: above 1 means ``num`` is slower."""
        return summarize([a / b for a, b in zip(self.seconds(num), self.seconds(den)) if b > 0])

    def as_dict(self) -> dict[str, Any]:
        return {"seconds": {k: self.seconds(k) for k in self.times}, "inner": dict(self.inner)}


def calibrate(fn: Thunk, min_time: float, max_inner: int) -> int:
    """Calls per timing so that one timing lasts at least ``min_time`` (at most ``max_inner``)."""
    inner = 1
    if max_inner <= 1:
        return 1
    while True:
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        dt = time.perf_counter() - t0
        if dt >= min_time or inner >= max_inner:
            return inner
        want = math.ceil(inner * min_time / max(dt, 1e-9) * 1.2)
        inner = min(max_inner, max(want, inner * 2))


def measure(variants: Mapping[str, Thunk], rounds: int, *, min_time: float = 2e-3, max_inner: int = 100_000,
            warmup: int = 1, repeat: int = 1, inner: Mapping[str, int] | None = None,
            scale: Mapping[str, float] | None = None) -> Interleaved:
    """Time ``variants`` in interleaved rounds; seconds per call, per round.

    Args:
        variants: name -> a function of no arguments (one call of the thing measured).
        rounds: how many rounds; every round times every variant once.
        min_time: each timing repeats its call until it lasts at least this long (calibrated once,
            before the rounds), so that timer resolution and call overhead noise stay small.
        warmup: untimed calls of each variant before calibrating.
        repeat: passes per round; a variant's time in a round is the minimum over its passes.
        inner: fixed calls per timing for some variants (skips calibration for them).
        scale: multiply a variant's seconds (e.g. the loop over a subset of 1,000 parameter sets
            scaled by 10 to stand for 10,000).
    """
    names = list(variants)
    for name in names:
        for _ in range(warmup):
            variants[name]()
    counts = {n: (inner or {}).get(n) or calibrate(variants[n], min_time, max_inner) for n in names}
    times: dict[str, list[float]] = {n: [] for n in names}
    perf = time.perf_counter
    for r in range(rounds):
        best = dict.fromkeys(names, math.inf)
        for p in range(max(1, repeat)):
            order = names if (r + p) % 2 == 0 else names[::-1]
            for name in order:
                fn = variants[name]
                k = counts[name]
                t0 = perf()
                for _ in range(k):
                    fn()
                best[name] = min(best[name], (perf() - t0) / k)
        for name in names:
            times[name].append(best[name])
    return Interleaved(times, counts, dict(scale or {}))
