"""Robustness at scale: deep nesting, large programs, many bindings, unrolling limits.

No input, however deep or large, may make nc raise anything but an `NCError`, recurse past
Python's limit, hang, or exhaust memory (LANGUAGE.md section 7). Each case below must either
compile (and then run) or raise an `NCError`. Compile times are printed (run with ``-s`` to see
them); the only timing asserts are generous bounds and growth ratios far from quadratic.
"""

from __future__ import annotations

import gc
import math
import os
import resource
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from typing import Any

import pytest
import torch

import nc
import nc.integrate
import nc.loops
import nc.reader
import nc.trace

F64 = torch.float64
N = 100_000


def outcome(src: str, call: Callable[[nc.CompiledFunction], Any] | None = None, **options: Any) -> tuple[str, float]:
    """Compile ``src`` (and call it): 'ok' or the NCError class name, and the seconds it took.

    Anything other than an NCError propagates and fails the test.
    """
    start = time.perf_counter()
    try:
        f = nc.compile_fn(src, **options)
        if call is not None:
            call(f)
        result = "ok"
    except nc.NCError as e:
        assert e.span is not None or isinstance(e, nc.CallError), "limit errors carry a position"
        result = type(e).__name__
    return result, time.perf_counter() - start


def no_recursion_error(fn: Callable[[], Any]) -> Any:
    """Call ``fn``; a RecursionError fails with a short message (pytest would format ~20,000 frames)."""
    try:
        return fn()
    except RecursionError:
        pass
    raise AssertionError("RecursionError")


def scalar(f: nc.CompiledFunction) -> torch.Tensor:
    return f(*[torch.tensor(1.0, dtype=F64)] * len(f.inputs))


# ------------------------------------------------------------------------------------------------
# Nesting 100,000 deep


@pytest.mark.parametrize("kind, src", [
    ("parens", "(" * N + ")" * N),
    ("brackets", "[" * N + "]" * N),
    ("calls", "(+ 1 " * N + "x" + ")" * N),
    ("unclosed", "(" * N),
    ("unopened", ")" * N),
    ("mixed", "([" * (N // 2) + "x" + "])" * (N // 2)),
    ("lets", "(let ((a " * N + "x" + ")) a)" * N),
    ("ifs", "(if (> x 0) " * N + "x" + " 0)" * N),
    ("quoted datum comments", "#;" * N + "(+ 1 2) " * N + "x"),
], ids=lambda v: v if len(v) < 40 else "src")
@pytest.mark.slow
def test_nesting_100000_deep_is_a_limit_error_or_compiles(kind: str, src: str) -> None:
    result, seconds = outcome(src, scalar)
    print(f"nesting {kind}: {result} in {seconds:.2f}s")
    assert result in ("ok", "LimitError", "ReadError")
    assert seconds < 30
    if kind in ("parens", "brackets", "calls", "unclosed", "mixed", "lets", "ifs"):
        assert result == "LimitError"


def test_nesting_limit_error_points_at_the_first_bracket_too_deep() -> None:
    depth = nc.reader.MAX_DEPTH
    src = "(+ 1\n" * (depth + 5) + "x" + ")" * (depth + 5)
    with pytest.raises(nc.LimitError) as info:
        nc.compile_fn(src)
    err = info.value
    assert (err.line, err.column) == (depth + 1, 1)
    assert err.message == f"lists are nested more than {depth} deep"
    assert err.hint == "split deep expressions with let* bindings"


def test_block_comments_nested_100000_deep() -> None:
    result, seconds = outcome("#|" * N + " x " + "|#" * N + " (* 2 x)", scalar)
    print(f"nested block comments: {result} in {seconds:.2f}s")
    assert result == "ok"
    result, _ = outcome("#|" * N + "|#" * (N - 1) + " x")
    assert result == "ReadError"


DEEP = nc.reader.MAX_DEPTH - 1  # as deep as the reader allows


@pytest.mark.parametrize("kind, src, value", [
    ("sums", "(+ 1 " * DEEP + "x" + ")" * DEEP, DEEP + 2.0),
    ("unary", "(- " * DEEP + "x" + ")" * DEEP, -2.0 if DEEP % 2 else 2.0),
    ("sqrt", "(sqrt " * DEEP + "x" + ")" * DEEP, 2.0 ** (0.5 ** DEEP)),
    ("ifs", "(if (> x 0) " * (DEEP // 2) + "x" + " 0)" * (DEEP // 2), 2.0),
    ("lets", "".join(f"(let ((a{i} " for i in range(DEEP // 3)) + "x"
     + "".join(f")) a{i})" for i in reversed(range(DEEP // 3))), 2.0),
], ids=lambda v: v if isinstance(v, str) and len(v) < 40 else "")
def test_deepest_accepted_program_runs_everywhere(kind: str, src: str, value: float) -> None:
    start = time.perf_counter()
    f = nc.compile_fn(src)
    x = torch.tensor(2.0, dtype=F64)
    assert f(x).item() == pytest.approx(value, rel=1e-12)
    g = torch.func.grad(f)(x)
    assert torch.isfinite(g)
    assert torch.func.vmap(f)(torch.full((3,), 2.0, dtype=F64)).shape == (3,)
    assert f.code().startswith("def nc_program(")
    assert f.program().listing()
    m = nc.compile(src)
    assert m(x).item() == pytest.approx(value, rel=1e-12)
    print(f"depth {DEEP} {kind}: {time.perf_counter() - start:.2f}s")


def test_deepest_accepted_program_prints_back_to_source() -> None:
    src = "(+ 1 " * DEEP + "x" + ")" * DEEP
    m = nc.compile(src)
    assert "x" in no_recursion_error(m.to_source)


# ------------------------------------------------------------------------------------------------
# A 1 MB program


@pytest.mark.slow
def test_one_megabyte_sum() -> None:
    src = "(+ " + "1.25 " * 200_000 + "x)"
    assert len(src) >= 1_000_000
    start = time.perf_counter()
    f = nc.compile_fn(src)
    compiled = time.perf_counter() - start
    assert f(torch.tensor(1.0, dtype=F64)).item() == 250_001.0
    print(f"1 MB sum: compiled in {compiled:.2f}s")
    assert compiled < 120


@pytest.mark.slow
def test_one_megabyte_of_definitions() -> None:
    n = 38_000
    src = "".join(f"(define c{i} (* x {i}.5))\n" for i in range(n)) + f"(+ c0 c{n - 1})"
    assert len(src) >= 1_000_000
    start = time.perf_counter()
    f = nc.compile_fn(src)
    compiled = time.perf_counter() - start
    assert f(torch.tensor(2.0, dtype=F64)).item() == 2 * 0.5 + 2 * (n - 0.5)
    print(f"1 MB of defines: compiled in {compiled:.2f}s")
    assert compiled < 60


def test_program_larger_than_the_source_limit() -> None:
    limit = nc.reader.MAX_SOURCE_CHARS
    src = "(+ x " + "1 " * ((limit - 4) // 2) + ")"
    assert len(src) > limit
    start = time.perf_counter()
    with pytest.raises(nc.LimitError) as info:
        nc.compile_fn(src)
    assert time.perf_counter() - start < 5
    assert str(limit) in info.value.message


@pytest.mark.slow
def test_error_on_a_megabyte_line_renders_briefly() -> None:
    src = "(+ " + "x " * 500_000 + "(sqrt 2.3.4))"
    start = time.perf_counter()
    with pytest.raises(nc.ReadError) as info:
        nc.compile_fn(src)
    text = str(info.value)
    assert time.perf_counter() - start < 30
    assert len(text) < 1000 and info.value.column == 1_000_010
    assert text.splitlines()[2].endswith("^~~~~")


# ------------------------------------------------------------------------------------------------
# 100,000 bindings, and compile time growth


def let_star_chain(n: int) -> str:
    return "(let* ((a0 x) " + " ".join(f"(a{i} (+ a{i - 1} 1))" for i in range(1, n)) + f") a{n - 1})"


@pytest.mark.slow
def test_let_star_with_100000_bindings_compiles_in_linear_time() -> None:
    def compile_time(n: int) -> float:
        src = let_star_chain(n)
        gc.collect()
        start = time.perf_counter()
        f = nc.compile_fn(src)
        seconds = time.perf_counter() - start
        assert f(torch.tensor(0.5, dtype=F64)).item() == n - 0.5
        return seconds

    small = min(compile_time(10_000) for _ in range(2))  # the best of two: short runs are noisy
    large = compile_time(N)
    ratio = large / small
    print(f"let* bindings: 10k {small:.2f}s, 100k {large:.2f}s, ratio {ratio:.1f} (linear 10, quadratic 100)")
    assert large < 60
    assert ratio < 50


@pytest.mark.slow
@pytest.mark.parametrize("kind, src, args", [
    ("lambda parameters", "(lambda (" + " ".join(f"x{i}" for i in range(N)) + f") (+ x0 x{N - 1}))", N),
    ("function parameters", "(define (f " + " ".join(f"p{i}" for i in range(N)) + ") (+ p0 p1))\n(f "
     + " ".join("x" for _ in range(N)) + ")", 1),
], ids=lambda v: v if isinstance(v, str) and len(v) < 40 else "")
def test_100000_bindings_of_other_kinds(kind: str, src: str, args: int) -> None:
    start = time.perf_counter()
    f = nc.compile_fn(src)
    compiled = time.perf_counter() - start
    out = f(*[torch.tensor(1.0, dtype=F64)] * args)
    assert torch.isfinite(out)
    print(f"{N} bindings ({kind}): compiled in {compiled:.2f}s")
    assert compiled < 60


def chain(kind: str, n: int) -> str:
    if kind == "constants":
        return "(define c0 x)\n" + "".join(f"(define c{i} (+ c{i - 1} 1))\n" for i in range(1, n)) + f"c{n - 1}"
    if kind == "tail calls":
        return "(define (f0 a) a)\n" + "".join(f"(define (f{i} a) (f{i - 1} (+ a 1)))\n" for i in range(1, n)) \
            + f"(f{n - 1} x)"
    return "(define (f0 a) a)\n" + "".join(f"(define (f{i} a) (+ 1 (f{i - 1} a)))\n" for i in range(1, n)) \
        + f"(f{n - 1} x)"


@pytest.mark.parametrize("kind", ["constants", "functions", "tail calls"])
def test_chains_of_definitions_compile(kind: str) -> None:
    f = nc.compile_fn(chain(kind, 1000))
    assert f(torch.tensor(0.5, dtype=F64)).item() == 999.5



@pytest.mark.parametrize("kind", ["constants", "functions", "tail calls"])
@pytest.mark.slow
def test_long_chains_of_definitions_are_an_ncerror_or_compile(kind: str) -> None:
    result, seconds = no_recursion_error(lambda: outcome(chain(kind, 10_000), scalar))
    assert result in ("ok", "LimitError")


@pytest.mark.slow
def test_many_free_inputs_compile_in_bounded_memory() -> None:
    # In a child process limited to 3 GB of address space, so that the failure is a MemoryError there
    # and never memory exhaustion here.
    code = textwrap.dedent("""
        import nc
        n = 20_000
        f = nc.compile_fn("(+ " + " ".join(f"x{i}" for i in range(n)) + ")")
        assert len(f.inputs) == n
    """)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30))

    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          preexec_fn=limit, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]


# ------------------------------------------------------------------------------------------------
# Static unrolling and iteration limits


@pytest.mark.slow
def test_loop_unrolled_on_constants_stops_at_max_unroll() -> None:
    src = "(loop ((i 0) (s x)) (if (>= i 200000) s (recur (+ i 1) (+ s 1))))"
    start = time.perf_counter()
    with pytest.raises(nc.LimitError) as info:
        nc.compile_fn(src)
    print(f"MAX_UNROLL={nc.trace.MAX_UNROLL}: the loop stopped after {time.perf_counter() - start:.2f}s")
    assert info.value.message == f"this loop ran {nc.trace.MAX_UNROLL} iterations while tracing without exiting"
    assert (info.value.line, info.value.column) == (1, 1)


@pytest.fixture
def small_unroll(monkeypatch: pytest.MonkeyPatch) -> int:
    limit = 500
    monkeypatch.setattr(nc.trace, "MAX_UNROLL", limit)
    return limit


@pytest.mark.parametrize("src", [
    "(loop ((i 0)) (if (< i 0) i (recur (+ i 1))))",  # never exits
    "(define (f n acc) (if (= n 0) acc (f (- n 1) (+ acc 1))))\n(+ x (f 1000 0))",  # tail recursion
    "(letrec ((g (lambda (n) (if (> n 1000) n (g (+ n 1)))))) (+ x (g 0)))",
])
def test_unrolling_limit(small_unroll: int, src: str) -> None:
    with pytest.raises(nc.LimitError, match=f"ran {small_unroll} iterations"):
        nc.compile_fn(src)


def test_unrolling_below_the_limit(small_unroll: int) -> None:
    f = nc.compile_fn("(loop ((i 0) (s x)) (if (>= i 400) s (recur (+ i 1) (+ s 1))))")
    assert f(torch.tensor(0.5, dtype=F64)).item() == 400.5


def test_integration_steps_limit() -> None:
    with pytest.raises(nc.LimitError) as info:
        nc.compile_fn(f"(euler (lambda (t y) (- y)) x 0.01 {nc.trace.MAX_UNROLL + 1})")
    assert info.value.message == (f"euler with {nc.trace.MAX_UNROLL + 1} steps: at most "
                                  f"{nc.trace.MAX_UNROLL} steps are unrolled")


def test_static_recursion_limit() -> None:
    depth = nc.trace.MAX_RECURSION
    fact = "(define (f n) (if (= n 0) 0 (+ 1 (f (- n 1)))))\n"
    assert nc.compile_fn(fact + f"(+ x (f {depth - 1}))")(torch.tensor(0.0)).item() == depth - 1
    with pytest.raises(nc.LimitError) as info:
        nc.compile_fn(fact + f"(+ x (f {depth + 50}))")
    assert info.value.message == f"'f' recurses more than {depth} deep"
    assert info.value.hint == "write the recursion as a tail call or a loop"


def test_equation_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nc.trace, "MAX_EQUATIONS", 1000)
    assert nc.compile_fn("(euler (lambda (t y) (- y)) x 0.01 100)")(torch.tensor(1.0)).shape == (101,)
    with pytest.raises(nc.LimitError, match="more than 1000 operations"):
        nc.compile_fn("(rk4 (lambda (t y) (* (sin t) (cos y))) x 0.01 2000)")


def test_non_tail_recursion_on_inputs_runs_on_a_stack_and_stops_at_max_depth() -> None:
    start = time.perf_counter()
    f = nc.compile_fn("(define (f n) (if (<= n 0) 0 (+ 1 (f (- n 1)))))\n(f x)")
    out = f(torch.tensor([3.0, 1e9]))
    assert out[0] == 3.0 and math.isnan(out[1])  # 1e9 deep is past max_depth: NaN, no hang
    assert time.perf_counter() - start < 30


@pytest.mark.parametrize("max_iter", [1, 50, 1000])
def test_a_loop_that_never_exits_returns_nan_after_max_iter(max_iter: int) -> None:
    f = nc.compile_fn("(loop ((i x) (s 0)) (if (< i 0) s (recur (+ i 1) (+ s 1))))", max_iter=max_iter)
    x = torch.tensor([1.0, -1.0, 0.5], dtype=F64)
    out = f(x)
    assert math.isnan(out[0]) and math.isnan(out[2]) and out[1].item() == 0.0
    assert torch.func.vmap(f)(x).isnan().tolist() == [True, False, True]
    g = torch.func.grad(lambda v: f(v).sum())(torch.tensor(-2.0, dtype=F64))
    assert g.item() == 0.0


def test_max_iter_counts_iterations() -> None:
    f = nc.compile_fn("(loop ((i 0)) (if (>= i x) i (recur (+ i 1))))", max_iter=10)
    out = f(torch.tensor([3.0, 9.0, 11.0, 50.0], dtype=F64))
    assert out[:2].tolist() == [3.0, 9.0] and out[2:].isnan().all()


@pytest.mark.parametrize("src", ["(+ x (trace (eye 10000000)))", "(+ x (vsum (zeros 1e13)))",
                                 "(+ x (vsum (ones 1000000000)))", "(+ x (trace (eye 40000)))"])
def test_constant_sizes_have_a_documented_limit(src: str) -> None:
    start = time.perf_counter()
    with pytest.raises(nc.LimitError, match=f"more than {nc.trace.MAX_CONSTANT_ELEMENTS} elements"):
        nc.compile_fn(src)
    assert time.perf_counter() - start < 5


def test_constant_sizes_at_the_limit_compile() -> None:
    n = int(math.isqrt(nc.trace.MAX_CONSTANT_ELEMENTS))
    f = nc.compile_fn(f"(+ x (trace (eye {n})))")
    assert f(torch.tensor(1.0, dtype=F64)).item() == n + 1
