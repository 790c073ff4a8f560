"""Statistics over seeds: median, spread (quartiles, IQR), fractions within 1% and 0.5%."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = ["quantile", "summarise", "fmt", "fmt_stats"]


def quantile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile with linear interpolation (numpy's default), NaN for no values."""
    xs = sorted(values)
    if not xs:
        return math.nan
    pos = q * (len(xs) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def summarise(values: Sequence[float], relative: bool = True) -> dict[str, Any]:
    """Median, quartiles, IQR, min, max and count of ``values`` (NaN/inf kept out of the
    quantiles and counted as ``nonfinite``); for relative errors also the fraction of all seeds
    within 1% and within 0.5% (a non-finite value counts as outside)."""
    finite = [float(v) for v in values if math.isfinite(v)]
    out: dict[str, Any] = {
        "n": len(values), "nonfinite": len(values) - len(finite),
        "median": quantile(finite, 0.5), "q25": quantile(finite, 0.25), "q75": quantile(finite, 0.75),
        "min": min(finite) if finite else math.nan, "max": max(finite) if finite else math.nan,
    }
    out["iqr"] = out["q75"] - out["q25"]
    if relative:
        n = max(len(values), 1)
        out["within_1pct"] = sum(v < 0.01 for v in finite) / n
        out["within_0.5pct"] = sum(v < 0.005 for v in finite) / n
    return out


def fmt(x: float | None, percent: bool = False) -> str:
    """A number for a table: percent with 3 significant digits, or %.3g; '-' for None, 'nan'/'inf'."""
    if x is None:
        return "-"
    if not math.isfinite(x):
        return str(x)
    if percent:
        return f"{100 * x:.3g}%"
    return f"{x:.3g}"


def fmt_stats(s: dict[str, Any], percent: bool) -> str:
    """``median [q25, q75]``."""
    return f"{fmt(s['median'], percent)} [{fmt(s['q25'], percent)}, {fmt(s['q75'], percent)}]"
