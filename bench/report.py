"""The benchmark summary: per-group tables of ratios, the machine and the versions.

Tests add rows with `table(...)` and target checks with `target(...)`; conftest prints every
group at the end of the run (`render`) and writes JSON with ``--nc-json PATH``.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

TITLES = {
    1: "1. compile time",
    2: "2. call time",
    3: "3. torch.func.vmap sweep over 10,000 parameter sets vs a Python loop",
    4: "4. training step (forward + backward) of a Lotka-Volterra RK4 rollout, 100 steps",
    5: "5. fused path: torch.compile (inductor, fullgraph) of nc vs hand-written eager",
    6: "6. peak memory",
}


@dataclass
class Table:
    group: int
    name: str
    columns: list[str]
    method: str = ""
    rows: list[tuple[Any, list[str]]] = field(default_factory=list)  # (sort key, cells)
    notes: list[str] = field(default_factory=list)
    data: list[dict[str, Any]] = field(default_factory=list)

    def add(self, key: Any, cells: list[Any], data: dict[str, Any] | None = None) -> None:
        self.rows.append((key, [str(c) for c in cells]))
        if data is not None:
            self.data.append(data)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)


@dataclass
class Target:
    group: int
    name: str
    goal: str
    measured: str
    ok: bool | None  # None: not measured in this run


TABLES: dict[tuple[int, str], Table] = {}
TARGETS: dict[tuple[int, str], Target] = {}
QUICK = False  # set by conftest: in quick mode no target is judged


def table(group: int, name: str, columns: list[str], method: str = "") -> Table:
    key = (group, name)
    if key not in TABLES:
        TABLES[key] = Table(group, name, columns, method)
    return TABLES[key]


def target(group: int, name: str, goal: str, measured: str, ok: bool | None) -> None:
    TARGETS[(group, name)] = Target(group, name, goal, measured, None if QUICK else ok)


# ---- formatting -----------------------------------------------------------------------------------
def fmt_time(seconds: float) -> str:
    if seconds != seconds:  # NaN
        return "n/a"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9)):
        if seconds >= scale or unit == "ns":
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds:.3g} s"  # pragma: no cover


def fmt_ratio(r: Any) -> str:
    """A `RatioStat` as ``1.02x [0.99, 1.05]``."""
    return f"{r.median:.3g}x [{r.q1:.3g}, {r.q3:.3g}]"


def grid(columns: list[str], rows: list[list[str]]) -> list[str]:
    widths = [len(c) for c in columns]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    for row in rows:
        out.append("  ".join(c.ljust(w) for c, w in zip(row, widths)))
    return out


# ---- the machine and the versions -----------------------------------------------------------------
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(module: str) -> str:
    try:
        mod = __import__(module)
    except ImportError:
        return "not installed"
    v = getattr(mod, "__version__", None)
    if v is None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            v = version(module)
        except PackageNotFoundError:
            v = "?"
    return str(v)


def _git() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "nc"], cwd=REPO,
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"
    return f"{head}{' (nc/ modified)' if dirty else ''}" if head else "?"


@cache
def env_info() -> dict[str, Any]:
    import torch

    return {
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "sympy": _version("sympy"),
        "sympytorch": _version("sympytorch"),
        "nc": _version("nc"),
        "nc_git": _git(),
        "platform": platform.platform(),
        "executable": sys.executable,
    }


def env_line() -> str:
    e = env_info()
    return (f"machine: {e['cpu']} ({e['logical_cpus']} logical CPUs), torch threads {e['torch_threads']}; "
            f"python {e['python']}, torch {e['torch']}, sympy {e['sympy']}, sympytorch {e['sympytorch']}, "
            f"nc {e['nc']} (git {e['nc_git']})")


def render(quick: bool) -> list[str]:
    if not TABLES and not TARGETS:
        return []
    out = ["", "=" * 30 + " nc benchmark summary " + ("(QUICK MODE: timings are not meaningful) " if quick else "")
           + "=" * 30, env_line(),
           "ratios are nc time / peer time (below 1: nc faster) unless a column says speedup; "
           "median over interleaved rounds [interquartile range]"]
    for group in sorted({g for g, _ in TABLES}):
        out += ["", f"--- {TITLES.get(group, str(group))} ---", f"    {env_line()}"]
        for (g, _), t in sorted(TABLES.items(), key=lambda kv: kv[0]):
            if g != group:
                continue
            out.append(f"  [{t.name}]" + (f"  method: {t.method}" if t.method else ""))
            rows = [cells for _, cells in sorted(t.rows, key=lambda r: r[0])]
            out += ["    " + line for line in grid(t.columns, rows)]
            out += [f"    note: {n}" for n in t.notes]
    if TARGETS:
        out += ["", "--- targets (from the Performance issue) ---"]
        rows = []
        for (_, _), tg in sorted(TARGETS.items(), key=lambda kv: kv[0]):
            status = ("not judged (quick mode)" if QUICK else "not measured") if tg.ok is None else ("MET" if tg.ok else "MISSED")
            rows.append([str(tg.group), tg.name, tg.goal, tg.measured, status])
        out += ["    " + line for line in grid(["group", "target", "goal", "measured", "status"], rows)]
    return out


def as_json(quick: bool) -> dict[str, Any]:
    return {
        "quick": quick,
        "env": env_info(),
        "tables": [{"group": t.group, "name": t.name, "method": t.method, "columns": t.columns,
                    "rows": [cells for _, cells in sorted(t.rows, key=lambda r: r[0])], "notes": t.notes,
                    "data": t.data} for _, t in sorted(TABLES.items(), key=lambda kv: kv[0])],
        "targets": [vars(t) for _, t in sorted(TARGETS.items(), key=lambda kv: kv[0])],
    }
