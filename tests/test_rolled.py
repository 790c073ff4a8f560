"""Rolled integrations (`nc.scan`): the ``%scan`` loop computes the unrolled code's bits.

Each program is compiled twice, rolled and with the roll threshold raised so that it unrolls
as before, and values, gradients and vmap/jacrev results are compared with ``torch.equal``."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch.func import jacrev, vmap

import nc
import nc.integrate

LV = """
(define (lv t y)
  (let ((x (ref y 0)) (p (ref y 1)))
    (vec (- (* a x) (* b x p)) (- (* d x p) (* g p)))))
(rk4 lv [1.0 0.5] 0.05 {n})
"""
EULER_INPUT_STATE = """
(define (f t y) (- (* k y) (* 0.1 y y)))
(euler f y0 h {n})
"""
PENDULUM_TIME = """
(define (f t s) (vec (ref s 1) (- (* (- g) (sin (ref s 0))) (* c t (ref s 1)))))
(rk4 f [1.0 0.0] h {n})
"""
INVARIANT = """
(define (f t y) (- (* (* a b) y) (exp (* 0.5 a))))
(rk4 f y0 0.01 {n})
"""

CASES: list[tuple[str, dict[str, Callable[[torch.dtype], torch.Tensor]]]] = [
    (LV, {n: (lambda dt, v=v: torch.tensor(v, dtype=dt, requires_grad=True))
          for n, v in dict(a=1.1, b=0.4, d=0.3, g=0.5).items()}),
    (EULER_INPUT_STATE, {"k": lambda dt: torch.tensor([0.5, 0.7, 0.9], dtype=dt, requires_grad=True),
                         "y0": lambda dt: torch.tensor([1.0, 2.0, 0.5], dtype=dt, requires_grad=True),
                         "h": lambda dt: torch.tensor(0.02, dtype=dt, requires_grad=True)}),
    (PENDULUM_TIME, {"g": lambda dt: torch.tensor(9.81, dtype=dt, requires_grad=True),
                     "c": lambda dt: torch.tensor(0.3, dtype=dt, requires_grad=True),
                     "h": lambda dt: torch.tensor(0.01, dtype=dt, requires_grad=True)}),
    (INVARIANT, {"a": lambda dt: torch.tensor(0.7, dtype=dt, requires_grad=True),
                 "b": lambda dt: torch.tensor(-0.4, dtype=dt, requires_grad=True),
                 "y0": lambda dt: torch.tensor([1.0, 3.0], dtype=dt, requires_grad=True)}),
]


def both(src: str, n: int, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    """The program compiled rolled, and unrolled (the roll threshold above ``n``)."""
    rolled = nc.compile_fn(src.format(n=n))
    with monkeypatch.context() as m:
        m.setattr(nc.integrate, "ROLL_MIN", 10**9)
        unrolled = nc.compile_fn(src.format(n=n))
        args = {k: torch.tensor(0.5, dtype=torch.float64) for k in unrolled.inputs}
        assert "%scan" not in unrolled.program(**args).listing()  # the trace runs now, unrolled
    assert "%scan" in rolled.program(**args).listing()
    return rolled, unrolled


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_rolled_values_and_gradients_are_the_unrolled_bits(case: int, dtype: torch.dtype,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    src, makers = CASES[case]
    rolled, unrolled = both(src, 60, monkeypatch)
    results = []
    for fn in (rolled, unrolled):
        args = {k: make(dtype) for k, make in makers.items()}
        out = fn(**args)
        loss = (out ** 2).sum()
        grads = torch.autograd.grad(loss, list(args.values()))
        results.append((out.detach(), grads))
    (o1, g1), (o2, g2) = results
    assert 61 in o1.shape
    assert torch.equal(o1, o2)
    assert all(torch.equal(a, b) for a, b in zip(g1, g2))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rolled_under_vmap_and_jacrev_is_the_unrolled_bits(dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch) -> None:
    rolled, unrolled = both(LV, 40, monkeypatch)
    theta = torch.tensor([[1.1, 0.4, 0.3, 0.5], [1.0, 0.5, 0.2, 0.6], [0.9, 0.45, 0.35, 0.4]], dtype=dtype)

    def run(fn: Any) -> Callable[[torch.Tensor], torch.Tensor]:
        return lambda p: fn(a=p[0], b=p[1], d=p[2], g=p[3])

    for f in (vmap, lambda g: vmap(jacrev(g))):
        assert torch.equal(f(run(rolled))(theta), f(run(unrolled))(theta))


def test_batched_inputs_roll_to_the_unrolled_bits(monkeypatch: pytest.MonkeyPatch) -> None:
    rolled, unrolled = both(LV, 30, monkeypatch)
    a = torch.linspace(0.5, 1.5, 7, dtype=torch.float64)
    assert torch.equal(rolled(a=a, b=0.4, d=0.3, g=0.5), unrolled(a=a, b=0.4, d=0.3, g=0.5))
    assert rolled(a=a, b=0.4, d=0.3, g=0.5).shape == (7, 31, 2)


def test_a_step_reading_t_with_a_constant_dt_stays_unrolled() -> None:
    # Unrolled, t and what depends on it alone fold in float64: a rolled loop would round differently.
    src = "(define (f t y) (* (sin t) y)) (rk4 f y0 0.1 40)"
    fn = nc.compile_fn(src)
    assert "%scan" not in fn.program(y0=torch.tensor(1.0, dtype=torch.float64)).listing()


def test_short_integrations_stay_unrolled() -> None:
    fn = nc.compile_fn(LV.format(n=nc.integrate.ROLL_MIN))
    assert "%scan" not in fn.program(a=1.0, b=1.0, d=1.0, g=1.0).listing()


def test_code_size_does_not_grow_with_the_step_count() -> None:
    sizes = {}
    for n in (100, 10_000):
        fn = nc.compile_fn(LV.format(n=n))
        sizes[n] = len(fn.code(a=1.0, b=0.4, d=0.3, g=0.5).splitlines())
        assert "%scan" in fn.program(a=1.0, b=0.4, d=0.3, g=0.5).listing()
    assert sizes[100] == sizes[10_000] < 150


def test_ten_thousand_steps_compile_fast() -> None:
    # The target is 10 ms (measured in bench/README.md); here a generous bound for a busy CPU.
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        fn = nc.compile_fn(LV.format(n=10_000))
        fn.code(a=1.1, b=0.4, d=0.3, g=0.5)  # parse, trace and lower, without running 10,000 steps
        best = min(best, time.perf_counter() - start)
    assert best < 0.5


def test_listing_prints_the_step_once_with_its_trip_count() -> None:
    text = nc.compile_fn(LV.format(n=500)).program(a=1.0, b=0.4, d=0.3, g=0.5).listing()
    assert "%scan start=1 steps=499" in text
    assert text.count("{ body") == 1


def test_fx_interpreter_and_intermediates_run_the_rolled_loop() -> None:
    from nc.fx import to_fx

    fn = nc.compile_fn(LV.format(n=50))
    args = [torch.tensor(v, dtype=torch.float64) for v in (1.1, 0.4, 0.3, 0.5)]
    expected = fn(*args)
    program = fn.program(*args)
    assert "%scan" in program.listing()
    assert torch.equal(to_fx(program)(*args), expected)
    notes = nc.intermediates(fn, *args)
    assert any(torch.equal(v, expected) for k, v in notes.items() if k.startswith("rk4"))


def test_check_domain_inside_a_rolled_step_reports_the_span() -> None:
    src = "(define (f t y) (- (log y) 1.0)) (euler f y0 0.5 40)"
    fn = nc.compile_fn(src, check_domain=True)
    assert "%scan" in fn.program(y0=torch.tensor(2.0, dtype=torch.float64)).listing()
    with pytest.raises(nc.NCError) as info:
        fn(y0=torch.tensor(2.0, dtype=torch.float64))  # the state falls below 0: log leaves its domain
    assert "log" in str(info.value) and "1:" in str(info.value)


def test_the_first_call_does_not_trace_or_lower_again(monkeypatch: pytest.MonkeyPatch) -> None:
    # compile_fn traces and lowers the program every call runs: its time is the compile time.
    import nc.compiled
    import nc.tracer

    calls: list[str] = []
    run, lower = nc.tracer.Tracer.run, nc.compiled.lower
    monkeypatch.setattr(nc.tracer.Tracer, "run", lambda self, *a, **k: calls.append("trace") or run(self, *a, **k))
    monkeypatch.setattr(nc.compiled, "lower", lambda *a, **k: calls.append("lower") or lower(*a, **k))
    fn = nc.compile_fn(LV.format(n=30))
    assert calls == ["trace", "lower"]
    fn(*(torch.tensor(v, dtype=torch.float64) for v in (1.1, 0.4, 0.3, 0.5)))
    assert calls == ["trace", "lower"]
