"""The report of a run: ``results.json``, ``report.md`` (one table per experiment, the headline
table, wall times), PNG figures (matplotlib's Agg backend)."""

from __future__ import annotations

import importlib
import json
import math
from pathlib import Path
from typing import Any

from nc.errors import CallError
from nc.experiments.stats import fmt, fmt_stats

__all__ = ["plt", "write_json", "write_markdown", "clean_json", "restore_json"]

TITLES = {"feynman": "1. Feynman equations", "lotka_volterra": "2. Lotka-Volterra", "pendulum": "3. Damped pendulum",
          "heat": "4. 1-D heat equation", "vector": "5. 3-D vector mechanics", "composition": "6. Composition"}


def require(module: str) -> Any:
    """Import an optional dependency of the experiments, or a `CallError` naming the extra."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise CallError(f"nc reproduce needs {module.split('.')[0]}, which is not installed", None,
                        hint="pip install 'nc[experiments]' (deepxde, torchdiffeq, matplotlib, tqdm)") from None


def plt() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (no display needed)."""
    mpl = require("matplotlib")
    mpl.use("Agg")
    return importlib.import_module("matplotlib.pyplot")


def clean_json(x: Any) -> Any:
    """NaN and inf as strings, so that results.json is strict JSON."""
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    if isinstance(x, dict):
        return {str(k): clean_json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [clean_json(v) for v in x]
    return x


def restore_json(x: Any) -> Any:
    """The inverse of `clean_json`: "nan", "inf" and "-inf" as floats again (a results.json read back)."""
    if isinstance(x, str) and x in ("nan", "inf", "-inf"):
        return float(x)
    if isinstance(x, dict):
        return {k: restore_json(v) for k, v in x.items()}
    if isinstance(x, list):
        return [restore_json(v) for v in x]
    return x


def write_json(results: dict[str, Any], out: Path) -> Path:
    path = out / "results.json"
    path.write_text(json.dumps(clean_json(results), indent=1))
    return path


def table(entries: list[dict[str, Any]]) -> list[str]:
    lines = ["| quantity | method | median [q25, q75] | within 1% | within 0.5% | seeds | time (median s) | params | note |",
             "|---|---|---|---|---|---|---|---|---|"]
    for e in entries:
        s, pct = e["stats"], e["relative"]
        w1 = fmt(s.get("within_1pct"), True) if pct else "-"
        w05 = fmt(s.get("within_0.5pct"), True) if pct else "-"
        bad = f" ({s['nonfinite']} non-finite)" if s["nonfinite"] else ""
        lines.append(f"| {e['quantity']} | {e['method']} | {fmt_stats(s, pct)}{bad} | {w1} | {w05} | {s['n']} | "
                     f"{fmt(e['seconds'])} | {e['params'] if e['params'] is not None else '-'} | {e['note']} |")
    return lines


def write_markdown(results: dict[str, Any], out: Path) -> Path:
    meta = results["meta"]
    pieces = meta.get("pieces", 1)
    lines = [f"# nc reproduce: {'quick' if meta['quick'] else 'full'} run", "",
             f"Machine: {meta['machine']}. Wall time: {fmt(meta.get('wall_s'))} s "
             f"{f'(the sum over the {pieces} runs it was done in) ' if pieces > 1 else ''}"
             f"(per experiment: {', '.join(f'{k} {v:.0f} s' for k, v in meta.get('experiment_s', {}).items())}). "
             f"nc {meta.get('nc_commit', '?')}, torch {meta['torch']}. Seeds: compiled models {meta['seeds']}; "
             f"baselines {meta['baseline_seeds']}.", ""]
    if meta.get("cuts"):
        lines += ["Cut to fit the time available: " + meta["cuts"], ""]
    lines += ["## Headline", "", "| experiment | quantity | paper | nc | spread |", "|---|---|---|---|---|"]
    for name, res in results["experiments"].items():
        for h in res.get("headline", []):
            lines.append(f"| {name} | {h['quantity']} | {h['paper']} | {h['nc']} | {h['spread']} |")
    lines.append("")
    for name, res in results["experiments"].items():
        lines += [f"## {TITLES.get(name, name)}", ""]
        if "error" in res:
            lines += [f"Did not finish: {res['error']}", ""]
            continue
        lines += [f"Seeds: {res.get('seeds')}; wall time {fmt(res.get('wall_s'))} s.", ""]
        run = meta.get("runs", {}).get(name)
        if pieces > 1 and run:  # a run done in pieces: what this experiment's piece was
            lines += [f"From the run of {run.get('started')}: nc {run.get('nc_commit')}, baseline seeds "
                      f"{run.get('baseline_seeds')} (its cuts: in the header).", ""]
        lines += [f"- {n}" for n in res.get("notes", [])] + [""]
        lines += table(res["entries"]) + [""]
        lines += [f"![{f}]({f})" for f in res.get("figures", [])] + [""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path
