"""Recursion on input values (an explicit per-element stack) against a Python loop calling a
hand-written recursive torch function per element. Quick with ``--benchmark-disable``.

Run ``PYTHONPATH=. python bench/test_recursion_bench.py`` for the table of time and peak memory
by depth and batch size (bench/README.md quotes it); each cell runs in a fresh process."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import time

import pytest
import torch

import nc

FACT = "(define (fact n) (if (= n 0) 1 (* n (fact (- n 1))))) (fact k)"
FIB = "(define (fib n) (if (< n 2) n (+ (fib (- n 1)) (fib (- n 2))))) (fib k)"


def fact_ref(n: torch.Tensor) -> torch.Tensor:
    return torch.ones_like(n) if float(n.detach()) == 0 else n * fact_ref(n - 1)


def fib_ref(n: torch.Tensor) -> torch.Tensor:
    return n if float(n.detach()) < 2 else fib_ref(n - 1) + fib_ref(n - 2)


def per_element(ref, ks: torch.Tensor) -> torch.Tensor:
    return torch.stack([ref(k) for k in ks])


CASES = [("fact", FACT, fact_ref, 20, 64), ("fib", FIB, fib_ref, 8, 64)]


@pytest.mark.parametrize(("name", "src", "ref", "depth", "batch"), CASES, ids=[c[0] for c in CASES])
def test_recursion_nc(benchmark, name, src, ref, depth, batch) -> None:  # type: ignore[no-untyped-def]
    f = nc.compile_fn(src, max_iter=5000)
    ks = torch.full((batch,), float(depth), dtype=torch.float64)
    out = benchmark(f, ks)
    assert torch.equal(out, per_element(ref, ks))


@pytest.mark.parametrize(("name", "src", "ref", "depth", "batch"), CASES, ids=[c[0] for c in CASES])
def test_recursion_python_loop(benchmark, name, src, ref, depth, batch) -> None:  # type: ignore[no-untyped-def]
    ks = torch.full((batch,), float(depth), dtype=torch.float64)
    benchmark(per_element, ref, ks)


def probe(name: str, impl: str, depth: int, batch: int, grad: bool) -> dict[str, float]:
    """One measurement in this (fresh) process: CPU time of the call (and backward, with ``grad``;
    one thread, so CPU time is what the wall clock shows on a quiet machine, and a machine shared
    with other work does not inflate it), and the peak resident memory of the process (``VmHWM``) and its rise over the resident memory
    just before the call, in MB. A warm-up call at batch 1 first, so tracing is not measured."""
    from bench.memprobe import current_rss_kib, vmhwm_kib

    torch.set_num_threads(1)
    src, ref = {"fact": (FACT, fact_ref), "fib": (FIB, fib_ref)}[name]
    if impl == "nc":
        f = nc.compile_fn(src, max_iter=20000)
        run = f
    else:
        def run(ks: torch.Tensor) -> torch.Tensor:
            return per_element(ref, ks)

    def call(n: int) -> float:
        ks = torch.full((n,), float(depth), dtype=torch.float64, requires_grad=grad)
        t = time.process_time()
        out = run(ks)
        if grad:
            out.sum().backward()
        return time.process_time() - t

    call(1)
    gc.collect()
    before = current_rss_kib()
    dt = call(batch)
    peak = vmhwm_kib()
    times = [dt] + ([call(batch) for _ in range(2)] if dt < 0.5 else [])
    return {"time_s": min(times), "peak_mb": peak / 1024, "rise_mb": (peak - before) / 1024}


def table() -> None:
    """The cost table of bench/README.md: each cell in a fresh subprocess."""
    rows = [("fact", d, n) for d in (10, 100) for n in (1, 100, 10000)]
    rows += [("fib", d, n) for d in (10, 15) for n in (1, 100)]
    print(f"torch {torch.__version__}, CPU, 1 thread, float64; CPU time s, peak RSS MB (rise over the RSS before the call)")
    print("| program | depth | batch | grad | nc time | python time | nc peak (rise) | python peak (rise) |")
    print("|---|---:|---:|---|---:|---:|---:|---:|")
    for name, d, n in rows:
        for grad in (False, True):
            cells = []
            for impl in ("nc", "python"):
                cmd = [sys.executable, __file__, "--probe", name, impl, str(d), str(n), str(int(grad))]
                res = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
                cells.append(json.loads(res.stdout.strip().splitlines()[-1]) if res.returncode == 0 else None)
            show_t = [f"{c['time_s']:.3g}" if c else "failed" for c in cells]
            show_m = [f"{c['peak_mb']:.0f} ({c['rise_mb']:.0f})" if c else "failed" for c in cells]
            print(f"| {name} | {d} | {n:,} | {'yes' if grad else 'no'} | {show_t[0]} | {show_t[1]} | {show_m[0]} | {show_m[1]} |",
                  flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--probe":
        a = sys.argv[2:]
        print(json.dumps(probe(a[0], a[1], int(a[2]), int(a[3]), bool(int(a[4])))))
    else:
        table()
