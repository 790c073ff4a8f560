"""``nc reproduce [EXPERIMENT ...] [--seeds N] [--quick] [--out DIR] [--append]``: run the
experiments and write the report. Results are written after every experiment, so an interrupted
run still leaves a report of what finished; ``--append`` adds to (or replaces experiments in) the
results already in ``DIR``, so a long run can be done in pieces."""

from __future__ import annotations

import argparse
import importlib
import json
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
from nc.errors import CallError
from nc.experiments import EXPERIMENTS
from nc.experiments.common import Bar, Config
from nc.experiments.report import restore_json, write_json, write_markdown
from nc.fit import FitWarning

__all__ = ["add_parser", "config", "reproduce"]

FIRST_SEED = 1000  # seeds 1000, 1001, ...: never used to tune anything
QUICK_SEEDS = 2
QUICK_SWEEP_SEEDS = 1  # --quick: the noise sweeps' other levels on the first seed
BASELINE_SEEDS = 3  # the full run's baselines (the compiled models get every seed)
QUICK_CUTS = ("--quick (CI size, not the paper's statistics): 2 seeds (1 for the baselines); compiled fits "
              "capped at 4 L-BFGS epochs (the loss has settled; nc.fit's default polishes on); noise sweeps at "
              "0/2/10% with the other levels on the first seed; baselines trained for tens of epochs at the "
              "paper's learning rate (no sweep), the Adam-trained hybrids (pendulum's paper recipe, vector's free drag) "
              "left out (tens of Adam steps cannot move g/L or G from the start); Feynman and composition on smaller sample grids")
PIECE = ("started", "seeds", "baseline_seeds", "nc_commit", "cuts")  # what tells one run (piece) from another
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
              cuts: str = "", append: bool = False) -> dict[str, Any]:
    """Run the experiments ``names`` under ``cfg`` and write results.json, report.md and the
    figures into ``out``; returns the results. An experiment that fails is reported as such
    (with its error) and the others still run.

    ``append``: keep the experiments of ``out/results.json`` that are not run now (a run done in
    pieces); the meta records each experiment's own run (``meta["runs"]``: seeds, nc commit,
    cuts, date, wall time) and summarises them, and report.md and every figure are rendered
    again for all. Appending a quick run to a full one (or the reverse) is a `CallError`."""
    out.mkdir(parents=True, exist_ok=True)
    run_meta = {"quick": cfg.quick, "seeds": list(cfg.seeds), "baseline_seeds": list(cfg.baseline_seeds),
                "machine": machine(), "torch": torch.__version__, "nc_commit": commit(), "cuts": cuts,
                "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    kept = previous(out, cfg.quick) if append else {}
    results: dict[str, Any] = {"meta": {}, "experiments": dict(kept.get("experiments", {}))}
    runs: dict[str, Any] = dict(kept.get("meta", {}).get("runs", {}))
    for name in results["experiments"]:  # results written before runs were recorded: their one run
        runs.setdefault(name, legacy_run(kept["meta"], name))
    for name in results["experiments"]:  # the figures of what is kept (and not run again) are drawn again too
        if name not in names:
            redraw(name, results["experiments"][name], out)
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
        runs[name] = run_meta | {"wall_s": res["wall_s"]}
        results["experiments"] = {k: results["experiments"][k] for k in ordered(results["experiments"])}
        results["meta"] = summarise_runs({k: runs[k] for k in results["experiments"]})
        write_json(results, out)
        write_markdown(results, out)
    if not names:
        results["meta"] = summarise_runs({k: runs[k] for k in results["experiments"]})
        write_json(results, out)
        write_markdown(results, out)
    return results


def ordered(names: Any) -> list[str]:
    """The experiments in the paper's order (unknown names last, as they came)."""
    return sorted(names, key=lambda n: EXPERIMENTS.index(n) if n in EXPERIMENTS else len(EXPERIMENTS))


def previous(out: Path, quick: bool) -> dict[str, Any]:
    """The results already in ``out`` ({} if none), for ``append``."""
    path = out / "results.json"
    if not path.exists():
        return {}
    try:
        old = restore_json(json.loads(path.read_text()))
        meta, experiments = old["meta"], old["experiments"]
        assert isinstance(meta, dict) and isinstance(experiments, dict)
    except (OSError, ValueError, KeyError, TypeError, AssertionError):
        raise CallError(f"--append: {path} is not the results.json of an nc reproduce run", None,
                        hint="give another --out, or run without --append to start afresh") from None
    if bool(meta.get("quick")) != quick:
        kinds = ("quick", "full")
        raise CallError(f"--append: {path} holds a {kinds[not meta.get('quick')]} run and this one is "
                        f"{kinds[not quick]}; a report mixes no quick and full results", None,
                        hint="use another --out for this run")
    return old


def legacy_run(meta: dict[str, Any], name: str) -> dict[str, Any]:
    """An experiment's run as the run-wide meta of a results.json without ``runs`` recorded it."""
    keys = ("quick", "seeds", "baseline_seeds", "machine", "torch", "nc_commit", "cuts", "started")
    return {k: meta.get(k) for k in keys} | {"wall_s": meta.get("experiment_s", {}).get(name)}


def summarise_runs(runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The report's meta from each experiment's run: a value the runs share is given once; where
    they differ, seeds are the union, the commits, cuts, machines and dates are listed per
    experiment; the wall time is the sum over experiments (the pieces' wall times)."""
    def shared(key: str) -> Any:
        values = [r.get(key) for r in runs.values()]
        if all(v == values[0] for v in values):
            return values[0] if values else None
        return "; ".join(f"{v} ({', '.join(n for n, r in runs.items() if r.get(key) == v)})"
                         for v in dict.fromkeys(values))

    def union(key: str) -> list[int]:
        return sorted({s for r in runs.values() for s in (r.get(key) or [])})

    walls = {n: r.get("wall_s") for n, r in runs.items()}
    return {"quick": all(bool(r.get("quick")) for r in runs.values()), "seeds": union("seeds"),
            "baseline_seeds": union("baseline_seeds"), "machine": shared("machine"), "torch": shared("torch"),
            "nc_commit": shared("nc_commit"), "cuts": shared("cuts"), "started": min(
                (r["started"] for r in runs.values() if r.get("started")), default=""),
            "experiment_s": {n: w for n, w in walls.items() if w is not None},
            "wall_s": sum(w for w in walls.values() if w is not None), "pieces": len({json.dumps([r.get(k) for k in PIECE]) for r in runs.values()}),
            "runs": runs}


def redraw(name: str, res: dict[str, Any], out: Path) -> None:
    """Draw a kept experiment's figures again (from its plot data in results.json)."""
    if "error" in res:
        return
    try:
        res["figures"] = importlib.import_module(f"nc.experiments.{name}").figures(res, out)
    except Exception as e:  # noqa: BLE001 -- a figure that cannot be drawn again must not lose the run
        warnings.warn(f"--append: the figures of {name} could not be drawn again ({type(e).__name__}: {e}); "
                      "its earlier figures are kept", stacklevel=2)


def units(name: str, cfg: Config) -> int:
    """Roughly how many fits an experiment makes (the bar's length)."""
    s, b = len(cfg.seeds), len(cfg.baseline_seeds)
    return {"feynman": 15 * (s + 2 * b), "lotka_volterra": 6 * s + 5 * b, "pendulum": 6 * s + (5 if cfg.quick else 6) * b,
            "heat": s + 4 * b, "vector": s + 5 * b, "composition": 2 + b}.get(name, s)


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
    p.add_argument("--append", action="store_true",
                   help="keep the experiments already in OUT/results.json that are not run now; re-render the report")
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
    results = reproduce(names, cfg, Path(args.out), progress=not args.no_progress, cuts="; ".join(cuts),
                        append=args.append)
    failed = [n for n, r in results["experiments"].items() if "error" in r]
    done = f"wrote {args.out}/results.json and report.md in {results['meta']['wall_s']:.0f} s"
    print(done + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0
