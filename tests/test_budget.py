"""Compile time is bounded by work, not only depth: fan-out calls, tree recursion, long literals."""

from __future__ import annotations

import time

import pytest
import torch

import nc
from nc import trace


def doubling(levels: int, arg: str) -> str:
    """``f_k(a) = f_{k-1}(a) + f_{k-1}(a)``: 2**levels calls when each call is traced anew."""
    src = "(define (f0 a) (+ a 1))\n"
    src += "".join(f"(define (f{k} a) (+ (f{k - 1} a) (f{k - 1} a)))\n" for k in range(1, levels + 1))
    return src + f"({'f'}{levels} {arg})"


@pytest.mark.parametrize("arg", ["1", "x"])
def test_fan_out_of_equal_calls_compiles_in_linear_time(arg: str) -> None:
    start = time.perf_counter()
    f = nc.compile_fn(doubling(22, arg))  # took 239 s (constant) and a LimitError after 42 s (input)
    assert time.perf_counter() - start < 5
    x = torch.tensor(0.5, dtype=torch.float64)
    expected = 2.0**22 * (1 if arg == "1" else 0.5) + 2.0**22
    assert float(f() if arg == "1" else f(x)) == expected


def test_tree_recursive_fib_on_a_constant_is_linear() -> None:
    src = "(define (fib n) (if (< n 2) n (+ (fib (- n 1)) (fib (- n 2))))) (* x (fib 80))"
    start = time.perf_counter()
    f = nc.compile_fn(src)
    assert time.perf_counter() - start < 5
    fib = [0, 1]
    while len(fib) <= 80:
        fib.append(fib[-1] + fib[-2])
    assert float(f(torch.tensor(1.0, dtype=torch.float64))) == float(fib[80])


def distinct_fan_out(levels: int, arg: str) -> str:
    """Calls with distinct arguments (2a and 2a+1): no two are equal, so the work is 2**levels."""
    src = "(define (f0 a) (+ a 1))\n"
    src += "".join(f"(define (f{k} a) (+ (f{k - 1} (* 2 a)) (f{k - 1} (+ (* 2 a) 1))))\n"
                   for k in range(1, levels + 1))
    return src + f"(* x (f{levels} {arg}))"


@pytest.mark.slow
def test_exponential_work_stops_at_the_work_limit_and_names_it() -> None:
    start = time.perf_counter()
    with pytest.raises(nc.LimitError) as info:
        nc.compile_fn(distinct_fan_out(40, "x"))
    # MAX_WORK units take about 40 us each (folding a constant builds a tensor): about 40 s
    # alone on a 2020s CPU core; the bound is generous for loaded CI machines.
    assert time.perf_counter() - start < 300
    assert "MAX_WORK" in info.value.message
    assert info.value.line is not None


def test_work_limit_is_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trace, "MAX_WORK", 1000)
    with pytest.raises(nc.LimitError, match="MAX_WORK"):
        nc.compile_fn(distinct_fan_out(12, "1"))
    nc.compile_fn(distinct_fan_out(5, "1"))  # 2**5 calls fit


def test_memoised_calls_keep_branches_and_signed_zeros_apart() -> None:
    # Equal calls share a result only with equal bits in the same branch context.
    f = nc.compile_fn("(define (g a) (/ 1 a)) (+ (g 0.0) (g -0.0) (if (> x 0) (g x) (g (- x))))")
    x = torch.tensor(2.0, dtype=torch.float64)
    assert torch.isnan(f(x))  # inf + -inf
    f = nc.compile_fn("(define (g a) (* a a)) (if (> x 0) (g x) (+ 1 (g x)))")
    assert float(f(torch.tensor(-2.0))) == 5.0 and float(f(torch.tensor(2.0))) == 4.0


@pytest.mark.slow
def test_long_vector_literal_costs_its_elements_only() -> None:
    n = 200_000
    src = "(vsum (* x [" + " ".join(str(k % 10) for k in range(n)) + "]))"
    start = time.perf_counter()
    f = nc.compile_fn(src)
    assert time.perf_counter() - start < 20
    assert float(f(torch.tensor(1.0, dtype=torch.float64))) == sum(k % 10 for k in range(n))
