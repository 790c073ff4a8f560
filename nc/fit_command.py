"""``nc fit FILE DATA.csv --trainable k ...``: fit a program's constants to a CSV file.

The CSV has a header row; its columns are the program's inputs (by name) and the target
(``--target``, default: the one column that is not an input). Its format (commas, names as
written, every cell a finite number, at least one row) is checked by `nc.cli_input.read_csv`:
a malformed file is an error naming the row and column (exit status 2). Constants named with
``--trainable`` (top-level defines) or ``--param name=start`` (free names) are fitted; the
command prints the recovered constants with their standard errors (``G = 6.6741 ± 0.0031``,
see `nc.uncertainty`), a fit report and the program with the fitted values,
and with ``--plot OUT.png`` saves prediction against data (needs matplotlib).
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from .cli_input import read_csv, read_file
from .errors import CallError
from .fit import fit
from .module import NcModule
from .uncertainty import format_value


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("fit", help="fit a program's constants to a CSV file")
    p.add_argument("file", help="the nc program")
    p.add_argument("data", help="CSV with a header row: input columns and a target column")
    p.add_argument("--trainable", action="append", default=[], metavar="NAME",
                   help="a top-level (define NAME value) to fit (repeatable)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=START",
                   help="a free name to fit as a parameter, with its starting value (repeatable)")
    p.add_argument("--target", help="the target column (default: the column that is not an input)")
    p.add_argument("--optimizer", choices=["auto", "lbfgs", "adam"], default="auto",
                   help="auto (default): L-BFGS for few constants and fixed data, else Adam")
    p.add_argument("--epochs", type=whole(0), default=None)
    p.add_argument("--lr", type=positive_number, default=None)
    p.add_argument("--restarts", type=whole(0), default=0)
    p.add_argument("--seed", type=whole(0), default=0)
    p.add_argument("--plot", metavar="OUT.png", help="save a plot of prediction against data")
    p.set_defaults(run=run)


def positive_number(text: str) -> float:
    """An argparse type: a finite number > 0 (``--lr nan`` is a usage error)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number > 0")
    return value


def whole(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r} is below {minimum}")
        return value

    return parse


def parse_params(items: Sequence[str]) -> dict[str, float]:
    """``--param NAME=START`` items as name -> a finite starting value."""
    out = {}
    for item in items:
        name, _, value = item.partition("=")
        try:
            start = float(value)
        except ValueError:
            start = math.nan
        if not name or not math.isfinite(start):
            raise CallError(f"--param {item!r}: write NAME=START with a finite number")
        out[name] = start
    return out


def run(args: argparse.Namespace) -> int:
    model = NcModule(read_file(args.file), params=parse_params(args.param), trainable=args.trainable,
                     name=args.file).double()
    if not model.param_names:
        raise CallError("nothing to fit: name constants with --trainable NAME or --param NAME=START")
    columns = read_csv(args.data)
    missing = [n for n in model.inputs if n not in columns]
    if missing:
        raise CallError(f"{args.data}: no column for input{'s' * (len(missing) > 1)} {', '.join(missing)} "
                        f"(columns: {', '.join(columns)})")
    target_name = args.target or only_other(columns, model.inputs, args.data)
    if target_name not in columns:
        raise CallError(f"{args.data}: no target column '{target_name}' (columns: {', '.join(columns)})")
    inputs = {n: torch.from_numpy(columns[n]) for n in model.inputs}
    target = torch.from_numpy(columns[target_name])
    start = time.perf_counter()
    result = fit(model, inputs, target, optimizer=args.optimizer, epochs=args.epochs, lr=args.lr,
                    restarts=args.restarts, seed=args.seed, dtype=torch.float64)
    seconds = time.perf_counter() - start
    with torch.no_grad():
        pred = model(**inputs)
    report(model, result, pred, target, seconds, target_name)
    if args.plot:
        plot(pred, target, args.plot, target_name)
    return 0


def only_other(columns: dict[str, np.ndarray], inputs: Sequence[str], path: str) -> str:
    others = [c for c in columns if c not in inputs]
    if len(others) != 1:
        raise CallError(f"{path}: cannot tell the target column among {', '.join(others) or 'no columns'}",
                        hint="name it with --target")
    return others[0]


def report(model: Any, result: object, pred: torch.Tensor, target: torch.Tensor, seconds: float,
           target_name: str) -> None:
    residual = (pred - target).detach()
    ss_res = float((residual**2).sum())
    ss_tot = float(((target - target.mean()) ** 2).sum())
    print("recovered constants:")
    for name in model.param_names:
        value = model.params[name].detach()
        stderr = getattr(result, "stderr", {}).get(name)
        shown = format_value(float(value), stderr) if value.dim() == 0 else str(value.tolist())
        print(f"  {name} = {shown}")
    if getattr(result, "stderr", None):
        print(f"  (± one standard error; {getattr(result, 'uncertainty', '')})")
    print(f"fit report: {len(target)} rows, target {target_name}, final loss (MSE) {getattr(result, 'loss', float('nan')):.6g}, "
          f"RMSE {float(residual.pow(2).mean().sqrt()):.6g}, R^2 {1 - ss_res / ss_tot if ss_tot > 0 else float('nan'):.9f}, "
          f"epochs {getattr(result, 'epochs_run', '?')} (stopped: {getattr(result, 'stop_reason', '?')}), "
          f"{seconds:.2f} s")
    print("fitted program:")
    print(model.to_source())


def plot(pred: torch.Tensor, target: torch.Tensor, path: str, target_name: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise CallError("--plot needs matplotlib: pip install matplotlib") from None
    fig, ax = plt.subplots(figsize=(5, 5))
    t, p = target.numpy(), pred.detach().numpy()
    ax.scatter(t, p, s=8, alpha=0.7, label="rows")
    lo, hi = float(min(t.min(), p.min())), float(max(t.max(), p.max()))
    ax.plot([lo, hi], [lo, hi], color="black", linewidth=1, label="prediction = data")
    ax.set_xlabel(f"data ({target_name})")
    ax.set_ylabel("prediction")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"plot saved to {path}")
