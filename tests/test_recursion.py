"""Recursion on data (LANGUAGE.md section 3): mutual tail calls as one masked loop, and
non-tail recursion on input values on an explicit per-element stack. Each case against plain
Python written independently of nc."""

from __future__ import annotations

import math

import pytest
import torch

import nc

EVEN_ODD_LETREC = """(lambda (N) (letrec ((ev (lambda (n) (if (= n 0) 1 (od (- n 1)))))
                                     (od (lambda (n) (if (= n 0) 0 (ev (- n 1))))))
                              (ev N)))"""
EVEN_ODD_DEFINE = """(define (ev n) (if (= n 0) 1 (od (- n 1))))
(define (od n) (if (= n 0) 0 (ev (- n 1))))
(ev x)"""

# Two functions passing a state back and forth: a scales, b takes the sine; k counts the calls.
PING_PONG = """(define (a x k) (if (> k 0) (b (* x 1.5) (- k 1)) x))
(define (b y j) (if (> j 0) (a (sin y) (- j 1)) (* 2 y)))
(a x n)"""


def ping_pong(x: float, k: int) -> float:
    state = "a"
    while True:
        if state == "a":
            if k <= 0:
                return x
            x, k, state = x * 1.5, k - 1, "b"
        else:
            if k <= 0:
                return 2 * x
            x, k, state = math.sin(x), k - 1, "a"


@pytest.mark.parametrize("src", [EVEN_ODD_LETREC, EVEN_ODD_DEFINE])
def test_mutual_tail_calls_on_inputs(src: str) -> None:
    f = nc.compile_fn(src)
    n = torch.tensor([7.0, 8.0, 0.0, 3.0, 12.0])
    assert f(n).tolist() == [float(int(k) % 2 == 0) for k in n.tolist()]


def test_mutual_tail_calls_on_constants_unroll_as_loop_steps() -> None:
    # 500 tail calls are 500 loop steps, not 500 levels of recursion.
    f = nc.compile_fn(EVEN_ODD_DEFINE.replace("(ev x)", "(ev 501)"))
    assert float(f()) == 0.0


@pytest.mark.slow
def test_mutual_tail_calls_value_grad_vmap() -> None:
    f = nc.compile_fn(PING_PONG)
    xs, ks = [0.3, 0.7, -1.1], [3, 4, 0]
    x = torch.tensor(xs, dtype=torch.float64, requires_grad=True)
    k = torch.tensor(ks, dtype=torch.float64)
    out = f(x, k)
    assert out.tolist() == pytest.approx([ping_pong(a, b) for a, b in zip(xs, ks)], rel=1e-14)
    (g,) = torch.autograd.grad(out.sum(), x)
    eps = 1e-6
    fd = [(ping_pong(a + eps, b) - ping_pong(a - eps, b)) / (2 * eps) for a, b in zip(xs, ks)]
    assert g.tolist() == pytest.approx(fd, rel=1e-6)
    assert torch.equal(torch.func.vmap(f)(x.detach(), k), out.detach())
    gv = torch.func.vmap(torch.func.grad(f))(x.detach(), k)
    assert torch.allclose(gv, g)


def test_mutual_tail_group_with_vector_parameter() -> None:
    # b's parameter is a vector: its shape is found when a calls it.
    f = nc.compile_fn("""(define (a s k) (if (> k 0) (b [s s] (- k 1)) s))
                         (define (b v j) (if (> j 0) (a (vsum v) (- j 1)) (norm v)))
                         (a x n)""")
    out = f(torch.tensor([1.0, 2.0], dtype=torch.float64), torch.tensor([3.0, 4.0], dtype=torch.float64))
    assert out.tolist() == pytest.approx([math.sqrt(8.0), 8.0], rel=1e-15)


def test_mutual_tail_calls_without_exit_give_nan_at_max_iter() -> None:
    f = nc.compile_fn("(define (a k) (b k)) (define (b k) (if (> k 100) 1 (a k))) (a x)", max_iter=50)
    out = f(torch.tensor([1.0, 200.0]))
    assert math.isnan(out[0]) and out[1] == 1.0


# ---- non-tail recursion on input values: an explicit stack --------------------------------------

FACT = "(define (fact n) (if (= n 0) 1 (* n (fact (- n 1))))) (fact k)"
FIB = "(define (fib n) (if (< n 2) n (+ (fib (- n 1)) (fib (- n 2))))) (fib k)"


def py_fib(n: int) -> int:
    return n if n < 2 else py_fib(n - 1) + py_fib(n - 2)


def test_factorial_on_inputs() -> None:
    f = nc.compile_fn(FACT)
    ks = [0.0, 1.0, 5.0, 10.0]
    assert f(torch.tensor(ks, dtype=torch.float64)).tolist() == [float(math.factorial(int(k))) for k in ks]


def test_tree_recursive_fibonacci_on_inputs() -> None:
    f = nc.compile_fn(FIB)
    ks = [0, 1, 2, 7, 10]
    assert f(torch.tensor(ks, dtype=torch.float64)).tolist() == [float(py_fib(k)) for k in ks]


def test_tree_recursion_past_max_iter_is_nan() -> None:
    f = nc.compile_fn(FIB, max_iter=100)
    out = f(torch.tensor([5.0, 15.0], dtype=torch.float64))
    assert out[0] == 5.0 and math.isnan(out[1])


def test_recursive_sum_over_vector_prefix() -> None:
    f = nc.compile_fn("(define (s v n) (if (= n 0) 0 (+ (ref v (- n 1)) (s v (- n 1))))) (lambda (v n) (s v n))",
                      shapes={"v": (4,)})
    v = torch.tensor([1.0, 2.0, 4.0, 8.0], dtype=torch.float64)
    n = torch.tensor([0.0, 2.0, 4.0], dtype=torch.float64)
    assert f(v, n).tolist() == [0.0, 3.0, 15.0]


def test_ackermann_double_recursion_small_arguments() -> None:
    f = nc.compile_fn("""(define (ack m n) (if (= m 0) (+ n 1)
                                   (if (= n 0) (ack (- m 1) 1) (ack (- m 1) (ack m (- n 1))))))
                         (ack m n)""", max_iter=5000)

    def ack(m: int, n: int) -> int:
        return n + 1 if m == 0 else ack(m - 1, 1) if n == 0 else ack(m - 1, ack(m, n - 1))

    pairs = [(0, 3), (1, 2), (2, 2), (2, 3)]
    m = torch.tensor([p[0] for p in pairs], dtype=torch.float64)
    n = torch.tensor([p[1] for p in pairs], dtype=torch.float64)
    assert f(m, n).tolist() == [float(ack(a, b)) for a, b in pairs]


@pytest.mark.slow
def test_recursion_gradient_equals_hand_unrolled_and_vmap() -> None:
    f = nc.compile_fn("(define (p x n) (if (= n 0) 1 (* x (p x (- n 1))))) (p x n)")
    x = torch.tensor([1.5, 2.0, -0.5], dtype=torch.float64, requires_grad=True)
    n = torch.tensor([3.0, 4.0, 0.0], dtype=torch.float64)
    out = f(x, n)
    assert out.tolist() == pytest.approx([1.5**3, 16.0, 1.0], rel=1e-15)
    (g,) = torch.autograd.grad(out.sum(), x)
    assert g.tolist() == pytest.approx([3 * 1.5**2, 4 * 8.0, 0.0], rel=1e-14)
    gv = torch.func.vmap(torch.func.grad(f))(x.detach(), n)
    assert torch.allclose(gv, g)


def test_recursion_deeper_than_max_depth_is_nan() -> None:
    f = nc.compile_fn("(define (f n) (if (<= n 0) 0 (+ 1 (f (- n 1))))) (f x)")
    out = f(torch.tensor([10.0, 300.0, 1e9]))
    assert out[0] == 10.0 and math.isnan(out[1]) and math.isnan(out[2])


SUM_TO = "(define (f n) (if (<= n 0) 0 (+ n (f (- n 1))))) (f x)"


def test_max_depth_is_a_keyword_of_compile_fn_and_compile() -> None:
    x = torch.tensor([3.0, 4.0, 5.0], dtype=torch.float64)
    out = nc.compile_fn(SUM_TO, max_depth=4)(x)
    assert out[:2].tolist() == [6.0, 10.0] and math.isnan(out[2])  # 5 deep needs a 5th frame
    model = nc.compile(SUM_TO, max_depth=4)
    assert model.options.max_depth == 4
    assert torch.equal(model(x).isnan(), out.isnan()) and model(x)[:2].tolist() == [6.0, 10.0]
    assert nc.compile_fn(SUM_TO)(x).tolist() == [6.0, 10.0, 15.0]  # the default, 256


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "8"])
def test_bad_max_depth_is_a_call_error(bad: object) -> None:
    with pytest.raises(nc.CallError, match="max_depth"):
        nc.compile_fn(SUM_TO, max_depth=bad)  # type: ignore[arg-type]
    with pytest.raises(nc.CallError, match="max_depth"):
        nc.compile(SUM_TO, max_depth=bad)


def test_check_domain_raises_limit_error_past_max_depth_naming_function_and_limit() -> None:
    f = nc.compile_fn(SUM_TO, max_depth=4, check_domain=True)
    assert f(torch.tensor([3.0, 4.0])).tolist() == [6.0, 10.0]  # within the limit: no error
    with pytest.raises(nc.LimitError, match=r"'f' recurses deeper than max_depth=4") as e:
        f(torch.tensor([3.0, 5.0]))
    assert e.value.span is not None


def test_check_domain_raises_limit_error_past_max_iter() -> None:
    # f(3) takes 7 steps (4 calls, 3 returns to a caller), f(4) takes 9
    f = nc.compile_fn(SUM_TO, max_iter=8, check_domain=True)
    assert f(torch.tensor([3.0, 2.0])).tolist() == [6.0, 3.0]
    with pytest.raises(nc.LimitError, match=r"'f' needs more than max_iter=8 steps"):
        f(torch.tensor([3.0, 4.0]))
    assert math.isnan(nc.compile_fn(SUM_TO, max_iter=8)(torch.tensor([4.0])).item())  # unchecked: NaN


def test_check_domain_on_recursion_ignores_elements_an_if_masks_out() -> None:
    src = "(define (f n) (if (<= n 0) 0 (+ n (f (- n 1))))) (if (> x 100) 0 (f x))"
    f = nc.compile_fn(src, max_depth=4, check_domain=True)
    assert f(torch.tensor([3.0, 1000.0])).tolist() == [6.0, 0.0]


# Adaptive Simpson quadrature of a peaked integrand: how deep each half recurses depends on the
# integrand's values (the error estimate), so the depth is a function of the inputs a, b, tol.
ADAPTIVE_SIMPSON = """
(define (g t) (/ 1 (+ 0.01 (* (- t 0.3) (- t 0.3)))))
(define (simp a b) (* (/ (- b a) 6) (+ (g a) (* 4 (g (/ (+ a b) 2))) (g b))))
(define (asr a b eps whole)
  (let* ((m (/ (+ a b) 2)) (l (simp a m)) (r (simp m b)) (d (- (+ l r) whole)))
    (if (<= (abs d) (* 15 eps))
        (+ l r (/ d 15))
        (+ (asr a m (/ eps 2) l) (asr m b (/ eps 2) r)))))
(asr lo hi tol (simp lo hi))"""


def adaptive_simpson(lo: float, hi: float, tol: float) -> tuple[float, int]:
    """Plain-Python reference: the integral of 1 / (0.01 + (t - 0.3)^2) and the deepest level."""
    def g(t: float) -> float:
        return 1 / (0.01 + (t - 0.3) ** 2)

    def simp(a: float, b: float) -> float:
        return (b - a) / 6 * (g(a) + 4 * g((a + b) / 2) + g(b))

    def asr(a: float, b: float, eps: float, whole: float, level: int) -> tuple[float, int]:
        m = (a + b) / 2
        left, right = simp(a, m), simp(m, b)
        d = left + right - whole
        if abs(d) <= 15 * eps:
            return left + right + d / 15, level
        x, dx = asr(a, m, eps / 2, left, level + 1)
        y, dy = asr(m, b, eps / 2, right, level + 1)
        return x + y, max(dx, dy)

    return asr(lo, hi, tol, simp(lo, hi), 0)


@pytest.mark.slow
def test_adaptive_simpson_recursion_depth_depends_on_the_integrand() -> None:
    f = nc.compile_fn(ADAPTIVE_SIMPSON, max_iter=20000)
    cases = [(0.0, 1.0, 1e-6), (0.0, 1.0, 1e-10), (0.5, 2.0, 1e-8), (-1.0, 0.2, 1e-9)]
    lo, hi, tol = (torch.tensor(c, dtype=torch.float64) for c in zip(*cases))
    out = f(lo, hi, tol)
    refs = [adaptive_simpson(*c) for c in cases]
    assert len({depth for _, depth in refs}) > 1  # the elements recurse to different depths
    for got, (want, _), (a, b, _) in zip(out.tolist(), refs, cases):
        assert got == pytest.approx(want, rel=1e-12)
        exact = 10 * (math.atan(10 * (b - 0.3)) - math.atan(10 * (a - 0.3)))
        assert got == pytest.approx(exact, rel=1e-6)


POWER = "(define (p x n) (if (= n 0) 1 (* x (p x (- n 1))))) (p x n)"
RISING = "(define (r x n) (if (<= n 0) 1 (* (+ x n) (r x (- n 1))))) (r x n)"  # (x+1)(x+2)...(x+n)


def rising_by_hand(x: torch.Tensor, n: int) -> torch.Tensor:
    out = torch.ones_like(x)
    for k in range(n, 0, -1):
        out = (x + k) * out
    return out


def test_jacrev_and_nested_transforms_through_recursion_equal_hand_unrolled() -> None:
    # under torch.func the loop runs all max_iter steps (no early exit); n = 4 takes 9
    f = nc.compile_fn(RISING, max_iter=12)
    x = torch.tensor([0.5, -1.5, 2.0], dtype=torch.float64)
    ns = [3, 4, 0]
    n = torch.tensor(ns, dtype=torch.float64)
    jac = torch.func.jacrev(f)(x, n)  # [3, 3], diagonal: elements are independent
    want = [torch.func.grad(lambda t, k=k: rising_by_hand(t, k))(x[i]) for i, k in enumerate(ns)]
    assert torch.allclose(jac, torch.diag(torch.stack(want)), rtol=1e-13, atol=0)
    per = torch.func.vmap(torch.func.jacrev(f))(x, n)
    assert torch.allclose(per, torch.stack(want), rtol=1e-13, atol=0)
    gg = torch.func.vmap(torch.func.grad(torch.func.grad(f)))(x, n)
    want2 = [torch.func.grad(torch.func.grad(lambda t, k=k: rising_by_hand(t, k)))(x[i]) for i, k in enumerate(ns)]
    assert torch.allclose(gg, torch.stack(want2), rtol=1e-13, atol=0)
    # power: d2/dx2 x^n = n (n - 1) x^(n - 2), by hand
    p = nc.compile_fn(POWER, max_iter=12)
    g2 = torch.func.vmap(torch.func.grad(torch.func.grad(p)))(x, torch.tensor([3.0, 4.0, 2.0], dtype=torch.float64))
    assert g2.tolist() == pytest.approx([6 * 0.5, 12 * 1.5**2, 2.0], rel=1e-14)


def test_recursion_with_batch_axes() -> None:
    f = nc.compile_fn(RISING)
    x = torch.tensor([[0.5, 1.0, -0.25], [2.0, 3.0, 0.0]], dtype=torch.float64, requires_grad=True)
    ns = [[1, 5, 2], [0, 3, 6]]
    out = f(x, torch.tensor(ns, dtype=torch.float64))
    assert out.shape == (2, 3)
    want = torch.stack([torch.stack([rising_by_hand(x[i, j], ns[i][j]) for j in range(3)]) for i in range(2)])
    assert torch.allclose(out, want, rtol=1e-14, atol=0)
    (g,) = torch.autograd.grad(out.sum(), x)
    (gw,) = torch.autograd.grad(want.sum(), x)
    assert torch.allclose(g, gw, rtol=1e-13, atol=0)


# ---- cost: the stack grows to the depth reached, nothing saves it per step ----------------------

def saved_numel(fn, *args) -> int:  # type: ignore[no-untyped-def]
    """Elements of the tensors autograd saves for the backward pass of ``fn(*args)``."""
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += t.numel()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(*args)
    return total


def test_memory_for_gradients_does_not_grow_with_max_depth() -> None:
    # Only the steps taken count: the same recursion under max_depth 16 and 4096 saves as much.
    x = torch.tensor([1.5, 0.5, -2.0, 1.1], dtype=torch.float64, requires_grad=True)
    n = torch.tensor([12.0, 3.0, 7.0, 0.0], dtype=torch.float64)
    small = saved_numel(nc.compile_fn(RISING, max_depth=16), x, n)
    big = saved_numel(nc.compile_fn(RISING, max_depth=4096), x, n)
    assert small == big


@pytest.mark.parametrize("max_depth", [13, 16, 40])
def test_stack_growing_past_its_first_rows_keeps_values_and_gradients(max_depth: int) -> None:
    # elements of different depths around the first capacity (8 rows) and its doublings
    ns = [0, 5, 8, 9, 13, 17, 30]
    f = nc.compile_fn(RISING, max_depth=max_depth)
    x = torch.linspace(-0.9, 0.7, len(ns), dtype=torch.float64, requires_grad=True)
    out = f(x, torch.tensor(ns, dtype=torch.float64))
    for i, k in enumerate(ns):
        if k > max_depth:
            assert torch.isnan(out[i])
        else:
            assert torch.allclose(out[i], rising_by_hand(x[i], k), rtol=1e-14, atol=0)
    ok = torch.tensor([k <= max_depth for k in ns])
    (g,) = torch.autograd.grad(out[ok].sum(), x)
    want = [torch.func.grad(lambda t, k=k: rising_by_hand(t, k))(x.detach()[i]) if k <= max_depth else 0.0
            for i, k in enumerate(ns)]
    assert torch.allclose(g, torch.tensor(want, dtype=torch.float64), rtol=1e-13, atol=0)


def test_deep_recursion_under_vmap_and_grad_has_all_max_depth_rows() -> None:
    # under torch.func values cannot be looked at, so the stack starts with all its rows
    f = nc.compile_fn(RISING, max_depth=24, max_iter=60)
    x = torch.tensor([0.25, -0.75], dtype=torch.float64)
    ns = [20, 11]
    g = torch.func.vmap(torch.func.grad(f))(x, torch.tensor(ns, dtype=torch.float64))
    want = [torch.func.grad(lambda t, k=k: rising_by_hand(t, k))(x[i]) for i, k in enumerate(ns)]
    assert torch.allclose(g, torch.stack(want), rtol=1e-13, atol=0)


def test_in_place_stack_leaves_later_calls_and_transforms_unchanged() -> None:
    f = nc.compile_fn(FIB, max_iter=250)  # fib 9: 109 calls, 108 returns to a caller
    k = torch.tensor([3.0, 9.0, 6.0], dtype=torch.float64)
    first = f(k)
    assert torch.equal(f(k), first) and torch.equal(torch.func.vmap(f)(k), first)
    assert first.tolist() == [float(py_fib(3)), float(py_fib(9)), float(py_fib(6))]


# ---- mutual recursion on input values: one stack for the group -----------------------------------

MUTUAL = """(define (a n) (if (< n 1) 1 (+ 1 (b (- n 1)))))
(define (b n) (if (< n 1) 2 (* 2 (a (- n 1)))))
"""


def py_a(n: int) -> int:
    return 1 if n < 1 else 1 + py_b(n - 1)


def py_b(n: int) -> int:
    return 2 if n < 1 else 2 * py_a(n - 1)


@pytest.mark.parametrize(("entry", "ref"), [("a", py_a), ("b", py_b)])
def test_mutual_non_tail_recursion_on_inputs(entry: str, ref) -> None:  # type: ignore[no-untyped-def]
    ks = [0, 1, 2, 5, 8, 11]
    f = nc.compile_fn(MUTUAL + f"({entry} k)")
    assert f(torch.tensor(ks, dtype=torch.float64)).tolist() == [float(ref(k)) for k in ks]


def test_mutual_tree_recursion_calls_the_other_function_twice() -> None:
    # b is called at two places of a: each call of a inside b is its own site
    f = nc.compile_fn("""(define (a n) (if (< n 2) n (+ (b (- n 1)) (b (- n 2)))))
                         (define (b n) (if (< n 1) 1 (* 2 (a (- n 1)))))
                         (a k)""")

    def ta(n: int) -> int:
        return n if n < 2 else tb(n - 1) + tb(n - 2)

    def tb(n: int) -> int:
        return 1 if n < 1 else 2 * ta(n - 1)

    ks = [0, 1, 2, 5, 8]
    assert f(torch.tensor(ks, dtype=torch.float64)).tolist() == [float(ta(k)) for k in ks]


def test_mutual_recursion_gradient_and_vmap_equal_hand_unrolled() -> None:
    f = nc.compile_fn("""(define (a x n) (if (< n 1) 1 (* x (b x (- n 1)))))
                         (define (b x n) (if (< n 1) 1 (+ x (a x (- n 1)))))
                         (a x n)""", max_iter=40)

    def a(x: torch.Tensor, n: int) -> torch.Tensor:
        return torch.ones_like(x) if n < 1 else x * b(x, n - 1)

    def b(x: torch.Tensor, n: int) -> torch.Tensor:
        return torch.ones_like(x) if n < 1 else x + a(x, n - 1)

    x = torch.tensor([0.5, -1.25, 2.0, 1.5], dtype=torch.float64, requires_grad=True)
    ns = [4, 3, 0, 7]
    out = f(x, torch.tensor(ns, dtype=torch.float64))
    want = torch.stack([a(x[i], k) for i, k in enumerate(ns)])
    assert torch.allclose(out, want, rtol=1e-14, atol=0)
    (g,) = torch.autograd.grad(out.sum(), x)
    (gw,) = torch.autograd.grad(want.sum(), x)
    assert torch.allclose(g, gw, rtol=1e-13, atol=0)
    gv = torch.func.vmap(torch.func.grad(f))(x.detach(), torch.tensor(ns, dtype=torch.float64))
    assert torch.allclose(gv, gw, rtol=1e-13, atol=0)


def test_recursion_from_inside_a_masked_loop_is_a_type_error() -> None:
    src = "(define (f n) (if (< n 1) 0 (+ 1 (loop ((i 0)) (if (> i n) (f (- n 1)) (recur (+ i 1))))))) (f k)"
    with pytest.raises(nc.NCTypeError, match="from inside a loop that runs in its body") as e:
        nc.compile_fn(src)(torch.tensor([2.0]))
    assert e.value.span is not None


def test_recursion_inside_a_loop_that_unrolls_runs_on_the_stack() -> None:
    # a loop of 3 steps unrolls, so the three calls are three sites of f's step: f(n) = 1 + 3 f(n-1)
    f = nc.compile_fn("(define (f n) (if (< n 1) 0 (+ 1 (loop ((i 0) (s 0)) "
                      "(if (> i 2) s (recur (+ i 1) (+ s (f (- n 1))))))))) (f k)")
    assert f(torch.tensor([0.0, 1.0, 2.0, 5.0], dtype=torch.float64)).tolist() == [0.0, 1.0, 4.0, 121.0]


def test_mutual_recursion_past_max_depth_is_nan_or_a_limit_error_naming_the_entry() -> None:
    # the frames are a's: a(n) waits on a(n - 2) through b, so a(11) needs 5 frames, a(13) 6
    x = torch.tensor([11.0, 13.0], dtype=torch.float64)
    out = nc.compile_fn(MUTUAL + "(a k)", max_depth=5)(x)
    assert out[0] == float(py_a(11)) and torch.isnan(out[1])
    with pytest.raises(nc.LimitError, match=r"'a' recurses deeper than max_depth=5"):
        nc.compile_fn(MUTUAL + "(a k)", max_depth=5, check_domain=True)(x)
