"""pytest configuration of the benchmark suite.

Full mode: ``python -m pytest bench/ --benchmark-only`` (timings, ratios, target checks).
Quick mode: ``python -m pytest bench/ -q --benchmark-disable`` (CI): every benchmark body runs
once, with small sizes and few rounds, so that the code keeps working; nothing is judged.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bench import report


@dataclass(frozen=True)
class Mode:
    quick: bool
    rounds: int  # interleaved rounds for the printed ratios

    repeat: int = 5  # passes per round (a variant's time in a round is its fastest pass)

    def timing(self, min_time: float, max_inner: int = 100_000, repeat: int | None = None) -> dict[str, Any]:
        """Keyword arguments of `bench.interleave.measure`: one call per timing in quick mode."""
        if self.quick:
            return {"min_time": 0.0, "max_inner": 1, "warmup": 0, "repeat": 1}
        return {"min_time": min_time, "max_inner": max_inner, "warmup": 1,
                "repeat": min(self.repeat, repeat or self.repeat)}

    def describe(self, repeat: int | None = None) -> str:
        k = 1 if self.quick else min(self.repeat, repeat or self.repeat)
        return f"{self.rounds} interleaved rounds" + (f", each variant's time per round the fastest of {k} passes"
                                                      if k > 1 else "")

    def skip_in_quick(self, why: str = "full mode only") -> None:
        if self.quick:
            pytest.skip(f"{why} (quick mode)")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("nc-bench", "nc benchmarks")
    group.addoption("--nc-rounds", type=int, default=None,
                    help="interleaved rounds per printed ratio (default 15; 3 in quick mode)")
    group.addoption("--nc-repeat", type=int, default=None,
                    help="passes per interleaved round; a variant's time in a round is its fastest pass (default 5)")
    group.addoption("--nc-json", default=None, metavar="PATH", help="also write the summary as JSON to PATH")
    group.addoption("--nc-threads", type=int, default=None, metavar="N",
                    help="torch.set_num_threads(N) for the run (default: torch's default); the summary reports it")


def is_quick(config: pytest.Config) -> bool:
    return bool(config.getoption("benchmark_disable", False)) or os.environ.get("NC_BENCH_QUICK") == "1"


def pytest_configure(config: pytest.Config) -> None:
    report.QUICK = is_quick(config)
    # Raised inside torch by torch.compile's imports, not by nc or the benchmarks.
    config.addinivalue_line("filterwarnings", "ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
    threads = config.getoption("nc_threads", None)
    if threads:
        import torch

        torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def mode(pytestconfig: pytest.Config) -> Mode:
    quick = is_quick(pytestconfig)
    return Mode(quick=quick, rounds=pytestconfig.getoption("nc_rounds") or (3 if quick else 15),
                repeat=pytestconfig.getoption("nc_repeat") or 5)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int,
                            config: pytest.Config) -> None:
    quick = is_quick(config)
    for line in report.render(quick):
        terminalreporter.write_line(line)
    path = config.getoption("nc_json")
    if path:
        Path(path).write_text(json.dumps(report.as_json(quick), indent=1, default=str))
        terminalreporter.write_line(f"nc benchmark summary written to {path}")
