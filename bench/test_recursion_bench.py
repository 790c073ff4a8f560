"""Recursion on input values (an explicit per-element stack) against a Python loop calling a
hand-written recursive torch function per element. Quick with ``--benchmark-disable``.

Run ``python bench/test_recursion_bench.py`` for the table of time and peak memory by depth and
batch size (the closing note of issue 11 quotes it)."""

from __future__ import annotations

import time
import tracemalloc

import pytest
import torch

import nc

FACT = "(define (fact n) (if (= n 0) 1 (* n (fact (- n 1))))) (fact k)"
FIB = "(define (fib n) (if (< n 2) n (+ (fib (- n 1)) (fib (- n 2))))) (fib k)"


def fact_ref(n: torch.Tensor) -> torch.Tensor:
    return torch.ones_like(n) if float(n) == 0 else n * fact_ref(n - 1)


def fib_ref(n: torch.Tensor) -> torch.Tensor:
    return n if float(n) < 2 else fib_ref(n - 1) + fib_ref(n - 2)


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


def measure(fn, *args) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    fn(*args)
    tracemalloc.start()
    t = time.perf_counter()
    fn(*args)
    dt = time.perf_counter() - t
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return dt, peak / 1e6


if __name__ == "__main__":
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, CPU, float64; time s / Python-heap MB (tensor storage not traced)")
    for name, src, ref, depths in (("fact", FACT, fact_ref, (10, 50)), ("fib", FIB, fib_ref, (5, 10))):
        f = nc.compile_fn(src, max_iter=20000)
        for d in depths:
            for n in (1, 100, 10000):
                ks = torch.full((n,), float(d), dtype=torch.float64)
                tn, mn = measure(f, ks)
                tp, mp = measure(per_element, ref, ks) if n <= 100 else (float("nan"), float("nan"))
                print(f"{name} depth {d:3d} batch {n:6d}: nc {tn:.4f}s {mn:.1f}MB | python loop {tp:.4f}s")
