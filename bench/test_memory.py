"""Group 6: peak memory of one call at N = 1,000,000 float64, nc vs hand-written.

Measured in a fresh subprocess per variant and program (`bench.memprobe`): the rise of peak
resident memory (``ru_maxrss``) during the call, over a baseline taken after the imports, the
compile, a warm-up call at N = 1 and the allocation of the inputs. Runs are interleaved (nc,
hand, nc, hand, ...), 3 per variant and program (peak RSS is deterministic to within a few pages
here), two processes at a time, started by a small launcher process (a probe forked directly
from pytest would inherit pytest's high-water mark; see bench/memprobe.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from bench import programs as P
from bench import report
from bench.interleave import summarize

pytestmark = pytest.mark.skipif(not P.feynman_available(), reason=f"{P.FEYNMAN_PATH} is absent")

N = 1_000_000
ROUNDS = 3
WORKERS = 2
QUICK_PROGRAM = "gaussian"
TARGET = 1.1
METHOD = ("peak RSS: resource.getrusage(RUSAGE_SELF).ru_maxrss after the call minus before it, in a fresh "
          "subprocess per run (baseline after imports, compile, warm-up at N=1 and input allocation)")


def run_probes(jobs: list[list[str]], workers: int) -> list[dict[str, Any]]:
    """Probes through a small launcher process (see bench/memprobe.py on why not directly)."""
    cmd = [sys.executable, "-m", "bench.memprobe", "--launch", str(workers)]
    done = subprocess.run(cmd, cwd=P.REPO, input=json.dumps(jobs), capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    results = [json.loads(line) for line in done.stdout.strip().splitlines()]
    errors = [r for r in results if "error" in r]
    if errors:
        raise AssertionError(f"memory probe {errors[0]['job']} failed:\n{errors[0]['error']}")
    return results


@pytest.mark.benchmark(group="6 memory: subprocess probes (wall time of all runs; the result is the summary)")
def test_peak_memory(benchmark, mode) -> None:
    import torch

    ids = [QUICK_PROGRAM] if mode.quick else [f.id for f in P.feynman()]
    rounds = 1 if mode.quick else ROUNDS
    threads = torch.get_num_threads()
    jobs = [[variant, pid, str(N), "float64", str(threads)]
            for _ in range(rounds) for pid in ids for variant in ("nc", "hand")]
    results = benchmark.pedantic(run_probes, args=(jobs, WORKERS), rounds=1, iterations=1)
    tab = report.table(6, f"one call at N={N:,} float64", ["program", "ops", "nc", "hand", "nc / hand",
                                                          "result size", "runs"], method=METHOD)
    mib = 1 / 1024
    ratios = []
    for pid in ids:
        nc_runs = [r["delta_kib"] for r in results if r["program"] == pid and r["variant"] == "nc"]
        hand_runs = [r["delta_kib"] for r in results if r["program"] == pid and r["variant"] == "hand"]
        per_round = summarize([a / b for a, b in zip(nc_runs, hand_runs) if b > 0])
        ratios.append(per_round.median)
        result_kib = next(r["result_kib"] for r in results if r["program"] == pid)
        tab.add(ids.index(pid),
                [pid, P.by_id(pid).ops, f"{summarize(nc_runs).median * mib:.1f} MiB",
                 f"{summarize(hand_runs).median * mib:.1f} MiB", report.fmt_ratio(per_round),
                 f"{result_kib * mib:.1f} MiB", len(nc_runs)],
                {"program": pid, "nc_kib": nc_runs, "hand_kib": hand_runs, "ratio": per_round.as_dict()})
    worst = max(ratios)
    gm = P.geomean(ratios)
    tab.add(99, ["all: geomean", "", "", "", f"{gm:.3g}x (max {worst:.3g}x)", "", ""])
    gaps = [r["gap_kib"] for r in results]
    hwm_off = max(abs(r["vmhwm_delta_kib"] - r["delta_kib"]) for r in results)
    tab.note(f"cross-check: the rise of VmHWM (/proc/self/status) differs from the ru_maxrss delta by at most "
             f"{hwm_off / 1024:.2f} MiB over all runs")
    if max(gaps) > 1024:
        tab.note(f"at some baselines the RSS was up to {max(gaps) / 1024:.1f} MiB below its high-water mark; "
                 "those deltas may read low")
    report.target(6, "peak memory vs hand-written (each program)", f"<= {TARGET}x",
                  f"max {worst:.3g}x, geomean {gm:.3g}x", worst <= TARGET)
    benchmark.extra_info["runs"] = results
