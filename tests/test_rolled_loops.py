"""Rolled constant-trip loops (`nc.rollloop`): a long run of identical iterations is one loop.

Each program is compiled twice, rolled and with the roll threshold raised so that it unrolls as
before, and values, gradients and vmap/jacrev results are compared with ``torch.equal``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch.func import jacrev, vmap

import nc
import nc.rollloop

OSC = """
(loop ((i 0) (x x0) (v v0))
  (if (< i {n})
      (recur (+ i 1) (+ x (* 0.01 v)) (- v (* 0.01 (sin x))))
      (+ x (* 2 v))))
"""
# the counter reaches the traced state: k*h with k counting, as a Python number per trip
COUNTER_IN_BODY = """
(define (f k y) (if (>= k {n}) y (f (+ k 1) (+ y (* h k 0.001 (cos y))))))
(f 3 y0)
"""
# a constant vector that changes with the counter (stacked), and a counter counting down by 2
TABLE_AND_DOWN = """
(define w (vec 0.5 -0.25 0.125 1.5))
(loop ((j {m}) (acc (* a (vec 1 2 3 4))))
  (if (<= j 0)
      acc
      (recur (- j 2) (+ (* acc 0.999) (* (* w (modulo j 4)) (tanh acc)) (* 0.5 j b)))))
"""
# the state is a vector and a matrix, with a data-dependent branch inside the body
VECTOR_STATE = """
(loop ((n 0) (p p0) (m (eye 2)))
  (if (= n {n})
      (+ (vsum p) (det m))
      (recur (+ n 1)
             (if (> (ref p 0) 0) (* 0.99 p) (+ p 0.01))
             (* m 0.999))))
"""
# variables that swap, and one that passes through unchanged
SWAP = """
(loop ((i 0) (x x0) (y y0) (a c))
  (if (< i {n}) (recur (+ i 1) y (+ x (* 0.1 y a)) a) (- x y)))
"""
# a counter through zero and below; (* -1 j) makes -0.0 at j = 0, which float(a + s*k) cannot
NEGATIVE = """
(loop ((j {n}) (x x0))
  (if (< j (- {n})) x (recur (- j 1) (+ x (* x j 0.001) (* (* -1 j) x 0.0001)))))
"""

CASES: list[tuple[str, dict[str, Any], dict[str, Callable[[torch.dtype], torch.Tensor]]]] = [
    (OSC, {"n": 100}, {"x0": lambda d: torch.tensor([1.0, -0.5], dtype=d, requires_grad=True),
                       "v0": lambda d: torch.tensor(0.3, dtype=d, requires_grad=True)}),
    (COUNTER_IN_BODY, {"n": 150}, {"h": lambda d: torch.tensor(0.002, dtype=d, requires_grad=True),
                                    "y0": lambda d: torch.tensor([1.0, 2.0, 0.5], dtype=d, requires_grad=True)}),
    (TABLE_AND_DOWN, {"m": 300}, {"a": lambda d: torch.tensor(0.4, dtype=d, requires_grad=True),
                                   "b": lambda d: torch.tensor(0.01, dtype=d, requires_grad=True)}),
    (SWAP, {"n": 40}, {"x0": lambda d: torch.tensor(1.0, dtype=d, requires_grad=True),
                       "y0": lambda d: torch.tensor(0.5, dtype=d, requires_grad=True),
                       "c": lambda d: torch.tensor([0.9, 1.1], dtype=d, requires_grad=True)}),
    (NEGATIVE, {"n": 30}, {"x0": lambda d: torch.tensor([1.0, 0.5], dtype=d, requires_grad=True)}),
    (VECTOR_STATE, {"n": 100}, {"p0": lambda d: torch.tensor([0.3, -0.7], dtype=d, requires_grad=True)}),
]


def both(src: str, monkeypatch: pytest.MonkeyPatch, args: dict[str, Any]) -> tuple[Any, Any]:
    """The program compiled rolled, and unrolled (the roll threshold too high to reach)."""
    rolled = nc.compile_fn(src)
    assert "%scan" in rolled.program(**args).listing()
    with monkeypatch.context() as m:
        m.setattr(nc.rollloop, "ROLL_MIN", 10**9)
        unrolled = nc.compile_fn(src)
        assert "%scan" not in unrolled.program(**args).listing()  # the trace runs now, unrolled
    return rolled, unrolled


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_rolled_loop_values_and_gradients_are_the_unrolled_bits(case: int, dtype: torch.dtype,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    template, sizes, makers = CASES[case]
    src = template.format(**sizes)
    rolled, unrolled = both(src, monkeypatch, {k: make(torch.float64).detach() for k, make in makers.items()})
    results = []
    for fn in (rolled, unrolled):
        args = {k: make(dtype) for k, make in makers.items()}
        out = fn(**args)
        grads = torch.autograd.grad((out ** 2).sum(), list(args.values()))
        results.append((out.detach(), grads))
    (o1, g1), (o2, g2) = results
    assert torch.isfinite(o1).all()
    assert torch.equal(o1, o2)
    assert all(torch.equal(a, b) for a, b in zip(g1, g2))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rolled_loop_under_vmap_and_jacrev_is_the_unrolled_bits(dtype: torch.dtype,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    src = OSC.format(n=40)
    rolled, unrolled = both(src, monkeypatch, {"x0": torch.tensor(1.0), "v0": torch.tensor(0.0)})
    x = torch.tensor([[1.0, 0.2], [-0.5, 0.1], [0.3, 0.9]], dtype=dtype)
    for f in (vmap, lambda g: vmap(jacrev(g))):
        got = [f(lambda p, fn=fn: fn(x0=p[0], v0=p[1]))(x) for fn in (rolled, unrolled)]
        assert torch.equal(got[0], got[1])


def test_code_size_does_not_grow_with_the_trip_count() -> None:
    sizes = {}
    for n in (40, 400):
        fn = nc.compile_fn(OSC.format(n=n))
        sizes[n] = len(fn.code(x0=1.0, v0=0.0).splitlines())
    assert sizes[40] == sizes[400] < 30


def test_constants_of_rolled_trips_are_not_kept() -> None:
    # Each trip traced makes its own constants; those of trips rolled away are dropped, so the
    # lowered code makes the same few constants (here w times the counter, stacked) at any length.
    counts, lines = {}, {}
    for m in (80, 800):
        fn = nc.compile_fn(TABLE_AND_DOWN.format(m=m))
        program = fn.program(a=0.4, b=0.01)
        assert "%scan trips=" in program.listing()
        counts[m] = len(program.constants)
        lines[m] = max(len(line) for line in fn.code(a=0.4, b=0.01).splitlines())
    assert counts[80] == counts[800] <= 3
    assert lines[800] < 200


def test_listing_prints_the_body_once_with_its_trip_count() -> None:
    text = nc.compile_fn(OSC.format(n=500)).program(x0=1.0, v0=0.0).listing()
    assert "%scan trips=500" in text
    assert text.count("{ body") == 1
    assert text.count("sin") == 1


def test_counters_in_the_body_are_python_numbers_per_trip() -> None:
    fn = nc.compile_fn(COUNTER_IN_BODY.format(n=100))
    listing = fn.program(h=0.1, y0=1.0).listing()
    assert "lits=((" in listing
    code = fn.code(h=0.1, y0=1.0)
    assert "float(" in code and "range(" in code


def test_a_constant_that_is_not_a_whole_count_per_trip_stays_unrolled() -> None:
    # cos(0.001 k) folds to a different float each trip: the generated loop could not write it
    # exactly as the unrolled code does, so this loop is unrolled as before.
    src = "(define (f k y) (if (>= k 60) y (f (+ k 1) (+ y (* h (cos (* 0.001 k)) y))))) (f 3 y0)"
    assert "%scan" not in nc.compile_fn(src).program(h=0.1, y0=1.0).listing()


def test_short_loops_stay_unrolled() -> None:
    fn = nc.compile_fn(OSC.format(n=nc.rollloop.ROLL_MIN))
    assert "%scan" not in fn.program(x0=1.0, v0=0.0).listing()


def test_constant_state_still_folds_before_the_loop_rolls() -> None:
    # The state is a constant for the first 20 trips: those fold to one number, then the rest rolls.
    src = """
(loop ((i 0) (x 1.0))
  (if (< i 200) (recur (+ i 1) (if (< i 20) (* x 1.5) (+ x (* a 0.001 x)))) x))"""
    fn = nc.compile_fn(src)
    text = fn.program(a=1.0).listing()
    assert "%scan trips=" in text
    a = torch.tensor(0.7, dtype=torch.float64)
    expected = torch.tensor(1.5 ** 20, dtype=torch.float64)
    for _ in range(180):
        expected = expected + a * 0.001 * expected
    assert torch.allclose(fn(a=a), expected, rtol=1e-12)


def test_fx_export_and_intermediates_run_the_rolled_loop() -> None:
    from nc.fx import to_fx

    fn = nc.compile_fn(OSC.format(n=60))
    args = [torch.tensor(v, dtype=torch.float64) for v in (1.0, 0.25)]
    expected = fn(*args)
    program = fn.program(*args)
    assert "%scan" in program.listing()
    assert torch.equal(to_fx(program)(*args), expected)
    from nc.interpret import Interpreter
    interp = Interpreter(program)
    for var, value in zip(program.inputs, args):
        interp.values[var.id] = value
    interp.run(program.eqns)
    assert torch.equal(interp.atom(program.output), expected)


def test_a_memoised_call_on_the_final_state_is_not_left_dangling(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each trip calls (h z) on the next state; after the loop (h r) is that same call on the
    # final state: the memo would hand back a value inside the run, so that run stays unrolled.
    src = """
(define (h y) (* y y 0.5))
(let ((r (loop ((i 0) (z x0) (w 0.0))
           (if (< i 40)
               (let ((z2 (* z 0.99))) (recur (+ i 1) z2 (+ w (h z2))))
               z))))
  (+ r (h r)))"""
    x = {"x0": torch.tensor(0.7, dtype=torch.float64)}
    rolled = nc.compile_fn(src)
    with monkeypatch.context() as m:
        m.setattr(nc.rollloop, "ROLL_MIN", 10**9)
        unrolled = nc.compile_fn(src)
        expected = unrolled(**x)
    assert torch.equal(rolled(**x), expected)
    loop = "(loop ((i 0) (z x0)) (if (< i 40) (recur (+ i 1) (h (* z 0.99))) z))"
    src2 = f"(define (h y) (* y y 0.5)) (let ((r {loop})) (+ r (h r)))"
    fn = nc.compile_fn(src2)
    assert "%scan trips=" in fn.program(**x).listing()  # here the memo holds only the state itself
    x0 = x["x0"]
    z = x0
    for _ in range(40):
        y = z * 0.99
        z = y * y * 0.5
    assert torch.allclose(fn(**x), z + z * z * 0.5, rtol=1e-12)


def test_a_loop_whose_exit_depends_on_data_is_still_masked() -> None:
    src = "(loop ((i 0) (x x0)) (if (> x 10) i (recur (+ i 1) (* x 1.1))))"
    text = nc.compile_fn(src).program(x0=1.0).listing()
    assert "%loop" in text and "%scan" not in text


def test_nc_show_prints_the_rolled_body_once(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from nc.cli import main

    shown = {}
    for n in (50, 5000):
        path = tmp_path / f"loop{n}.nc"
        path.write_text(f"(loop ((i 0) (x x0)) (if (< i {n}) (recur (+ i 1) (* x 0.999)) x))\n")
        assert main(["show", str(path)]) == 0
        shown[n] = capsys.readouterr().out
    assert "%scan trips=5000" in shown[5000] and shown[5000].count("0.999") == 1
    assert len(shown[50].splitlines()) == len(shown[5000].splitlines()) < 10
