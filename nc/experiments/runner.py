"""``nc reproduce [EXPERIMENT ...] [--seeds N] [--quick] [--out DIR]``: run the experiments and
write the report. Results are written after every experiment, so an interrupted run still
leaves a report of what finished."""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import subprocess
import time
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from nc.cli_input import UsageError
from nc.experiments import EXPERIMENTS
from nc.experiments.common import Bar, Config
from nc.experiments.report import write_json, write_markdown
from nc.fit import FitWarning

__all__ = ["add_parser", "config", "reproduce"]

FIRST_SEED = 1000  # seeds 1000, 1001, ...: never used to tune anything
QUICK_SEEDS = 2
QUICK_SWEEP_SEEDS = 1  # --quick: the noise sweeps' other levels on the first seed
BASELINE_SEEDS = 3  # the full run's baselines (the compiled models get every seed)
QUICK_CUTS = ("--quick (CI size, not the paper's statistics): 2 seeds (1 for the baselines); compiled fits "
              "capped at 4 L-BFGS epochs (the loss has settled; nc.fit's default polishes on); noise sweeps at "
              "0/2/10% with the other levels on the first seed; baselines trained for tens of epochs at the "
              "paper's learning rate (no sweep); Feynman and composition on smaller sample grids")
ALIASES = {"lotka-volterra": "lotka_volterra", "lv": "lotka_volterra", "gravity": "vector"}


def config(seeds: int | None, quick: bool, baseline_seeds: int | None = None, baseline_epoch_scale: float = 1.0,
           sweep_seeds: int | None = None) -> Config:
    n = seeds if seeds is not None else (QUICK_SEEDS if quick else 20)
    nb = baseline_seeds if baseline_seeds is not None else (1 if quick else BASELINE_SEEDS)
    s = tuple(range(FIRST_SEED, FIRST_SEED + n))
    if sweep_seeds is None and quick:
        sweep_seeds = QUICK_SWEEP_SEEDS
    return Config(seeds=s, baseline_seeds=s[:max(1, min(nb, n))], quick=quick,
                  baseline_epoch_scale=baseline_epoch_scale, sweep_seeds=sweep_seeds)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cpu}, {cores} cores available, torch threads {torch.get_num_threads()}, {platform.system()} {platform.release()}"


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, timeout=10).stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def reproduce(names: Sequence[str], cfg: Config, out: Path, progress: bool = True,
              cuts: str = "") -> dict[str, Any]:
    """Run the experiments ``names`` under ``cfg`` and write results.json, report.md and the
    figures into ``out``; returns the results. An experiment that fails is reported as such
    (with its error) and the others still run."""
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"meta": {
        "quick": cfg.quick, "seeds": list(cfg.seeds), "baseline_seeds": list(cfg.baseline_seeds),
        "machine": machine(), "torch": torch.__version__, "nc_commit": commit(), "cuts": cuts,
        "experiment_s": {}, "started": time.strftime("%Y-%m-%d %H:%M:%S")}, "experiments": {}}
    start = time.perf_counter()
    for name in names:
        mod = importlib.import_module(f"nc.experiments.{name}")
        bar = Bar(units(name, cfg), name, enabled=progress)
        t = time.perf_counter()
        try:
            with warnings.catch_warnings():  # the baselines' unconverged fits are the point, not news
                warnings.simplefilter("ignore", FitWarning)
                warnings.simplefilter("ignore", UserWarning)
                res = mod.run(cfg, bar)
            res["seeds"] = list(cfg.seeds)
            res["figures"] = mod.figures(res, out)
        except Exception as e:  # noqa: BLE001 -- one failing experiment must not lose the others
            res = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc(), "entries": []}
        finally:
            bar.close()
        res["wall_s"] = time.perf_counter() - t
        results["experiments"][name] = res
        results["meta"]["experiment_s"][name] = res["wall_s"]
        results["meta"]["wall_s"] = time.perf_counter() - start
        write_json(results, out)
        write_markdown(results, out)
    return results


def units(name: str, cfg: Config) -> int:
    """Roughly how many fits an experiment makes (the bar's length)."""
    s, b = len(cfg.seeds), len(cfg.baseline_seeds)
    return {"feynman": 15 * (s + 2 * b), "lotka_volterra": 6 * s + 5 * b, "pendulum": 6 * s + 5 * b,
            "heat": s + 4 * b, "vector": s + 3 * b, "composition": 2 + b}.get(name, s)


def add_parser(sub: Any) -> None:
    p = sub.add_parser("reproduce", help="run the paper's experiments with statistics over seeds and write a report")
    p.add_argument("experiments", nargs="*", metavar="EXPERIMENT",
                   help=f"any of {', '.join(EXPERIMENTS)} (default: all)")
    p.add_argument("--seeds", type=int, default=None, help="seeds per entry (default 20; 2 with --quick)")
    p.add_argument("--baseline-seeds", type=int, default=None,
                   help=f"seeds for the baselines (default {BASELINE_SEEDS}; 1 with --quick)")
    p.add_argument("--baseline-epoch-scale", type=float, default=1.0,
                   help="scale the baselines' epochs (full run; e.g. 0.2 to fit a small machine)")
    p.add_argument("--sweep-seeds", type=int, default=None, help="seeds per noise level of the sweeps (default: all; 1 with --quick)")
    p.add_argument("--quick", action="store_true", help="every experiment, few epochs and seeds (CI size)")
    p.add_argument("--out", default="reproduce-results", help="output folder (default ./reproduce-results)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=cmd_reproduce)


def cmd_reproduce(args: argparse.Namespace) -> int:
    names = [ALIASES.get(n.lower(), n.lower().replace("-", "_")) for n in args.experiments] or list(EXPERIMENTS)
    bad = [n for n in names if n not in EXPERIMENTS]
    if bad:
        raise UsageError(f"unknown experiment {bad[0]!r}; choose from {', '.join(EXPERIMENTS)}")
    if args.seeds is not None and args.seeds < 1:
        raise UsageError(f"--seeds must be at least 1, got {args.seeds}")
    if not 0 < args.baseline_epoch_scale <= 1 or (args.sweep_seeds is not None and args.sweep_seeds < 1):
        raise UsageError("--baseline-epoch-scale must be in (0, 1] and --sweep-seeds at least 1")
    cfg = config(args.seeds, args.quick, args.baseline_seeds, args.baseline_epoch_scale, args.sweep_seeds)
    cuts = [QUICK_CUTS] if args.quick else []
    if args.baseline_epoch_scale < 1:
        cuts.append(f"baselines' epochs/iterations scaled by {args.baseline_epoch_scale:g} "
                    "(the compiled models are fitted in full)")
    if args.sweep_seeds is not None:
        cuts.append(f"noise sweeps on the first {args.sweep_seeds} seeds (the 2% entries on every seed)")
    if len(cfg.baseline_seeds) < len(cfg.seeds) and not args.quick:
        cuts.append(f"baselines on {len(cfg.baseline_seeds)} seeds")
    results = reproduce(names, cfg, Path(args.out), progress=not args.no_progress, cuts="; ".join(cuts))
    failed = [n for n, r in results["experiments"].items() if "error" in r]
    done = f"wrote {args.out}/results.json and report.md in {results['meta']['wall_s']:.0f} s"
    print(done + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0
