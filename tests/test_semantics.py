"""Behaviour users rely on (LANGUAGE.md sections 3 to 5): NaN-safe branches, masked loops,
recursion, integration, batching, ranks, dtypes, the trace cache, transforms and bad calls."""

from __future__ import annotations

import math

import pytest
import torch
from torch.func import grad, hessian, jacfwd, jacrev, vmap

import nc
from nc.trace import Tracer

F64 = torch.float64


def t64(*xs):
    return torch.tensor(xs if len(xs) != 1 else xs[0], dtype=F64)


# ---- NaN-safe if and cond ------------------------------------------------------------------------
SQRT_IF = "(if (> x 0) (sqrt x) 0)"


def test_if_value_and_grad_at_both_sides():
    f = nc.compile_fn(SQRT_IF)
    assert f(t64(-1.0)).item() == 0.0
    assert f(t64(4.0)).item() == 2.0
    assert grad(f)(t64(-1.0)).item() == 0.0
    assert grad(f)(t64(4.0)).item() == 0.25
    # at 0 the untaken branch has an infinite derivative; it must not leak
    assert grad(f)(t64(0.0)).item() == 0.0


def test_if_under_vmap_grad_jacfwd_jacrev_hessian_and_autograd():
    f = nc.compile_fn(SQRT_IF)
    x = t64(-1.0, 4.0, 0.0, -9.0)
    expected = t64(0.0, 0.25, 0.0, 0.0)
    assert torch.equal(vmap(grad(f))(x), expected)
    assert torch.equal(jacfwd(f)(x), torch.diag(expected))
    assert torch.equal(jacrev(f)(x), torch.diag(expected))
    assert torch.equal(vmap(hessian(f))(x), t64(0.0, -1 / 32, 0.0, 0.0))
    xg = x.clone().requires_grad_()
    f(xg).sum().backward()
    assert torch.equal(xg.grad, expected)


def test_if_with_division_by_zero_in_the_untaken_branch():
    f = nc.compile_fn("(if (= x 0) 1 (/ 1 x))")
    assert f(t64(0.0)).item() == 1.0
    assert grad(f)(t64(0.0)).item() == 0.0
    assert grad(f)(t64(2.0)).item() == -0.25
    assert torch.equal(vmap(grad(f))(t64(0.0, 2.0)), t64(0.0, -0.25))


NESTED = "(if (> x 0) (if (> x 1) (log (- x 1)) (sqrt (- 1 x))) (sqrt (- x)))"


def nested_ref(x: float) -> tuple[float, float]:
    if x > 0:
        if x > 1:
            return math.log(x - 1), 1 / (x - 1)
        return math.sqrt(1 - x), -0.5 / math.sqrt(1 - x)
    return math.sqrt(-x), -0.5 / math.sqrt(-x)


@pytest.mark.parametrize("transform", ["vmap_grad", "jacrev", "jacfwd"])
def test_nested_ifs_values_and_gradients(transform):
    f = nc.compile_fn(NESTED)
    xs = [-4.0, 0.75, 0.5, 2.0, 5.0]
    x = t64(*xs)
    values = f(x)
    assert torch.isfinite(values).all()
    if transform == "vmap_grad":
        grads = vmap(grad(f))(x)
    else:
        grads = torch.diagonal((jacrev if transform == "jacrev" else jacfwd)(f)(x))
    for i, xi in enumerate(xs):
        v, d = nested_ref(xi)
        assert values[i].item() == pytest.approx(v, rel=1e-14)
        assert grads[i].item() == pytest.approx(d, rel=1e-14)


def test_cond_is_nan_safe():
    src = "(cond ((< x 0) (sqrt (- x))) ((< x 1) (log x)) (else (sqrt (- x 1))))"
    f = nc.compile_fn(src)
    x = t64(-4.0, 0.5, 5.0)
    assert torch.allclose(f(x), t64(2.0, math.log(0.5), 2.0), rtol=0, atol=1e-15)
    g = vmap(grad(f))(x)
    assert torch.allclose(g, t64(-0.25, 2.0, 0.25), rtol=1e-15)
    h = vmap(hessian(f))(x)
    assert torch.isfinite(h).all()


def test_if_with_vector_branches_has_no_nan_jacobian_at_zero():
    f = nc.compile_fn("(if (> (norm u) 0) (normalize u) u)")
    u = torch.tensor([[0.0, 0.0, 0.0], [3.0, 4.0, 0.0]], dtype=F64)
    J = vmap(jacrev(f))(u)
    assert torch.equal(J[0], torch.eye(3, dtype=F64))
    assert torch.isfinite(J).all()
    assert torch.allclose(J[1], jacrev(lambda v: v / torch.linalg.vector_norm(v))(u[1]))


def test_if_test_is_elementwise_per_example():
    f = nc.compile_fn("(if (> u 0) u (* 2 u))", shapes={"u": (3,)})
    u = torch.tensor([[-1.0, 2.0, -3.0], [4.0, -5.0, 6.0]])
    assert torch.equal(f(u), torch.where(u > 0, u, 2 * u))


def test_if_on_a_batch_evaluates_each_element_with_its_branch():
    f = nc.compile_fn("(if (> x 0) (log x) (- 5 x))")
    x = torch.tensor([-2.0, 1.0, math.e, -0.0])
    assert torch.equal(f(x), torch.where(x > 0, torch.log(x.clamp(min=1e-30)), 5 - x))


def test_partial_functions_outside_if_follow_ieee():
    assert math.isnan(nc.compile_fn("(sqrt x)")(-1.0).item())
    assert nc.compile_fn("(/ 1 x)")(0.0).item() == math.inf
    assert math.isnan(nc.compile_fn("(sqrt -1)")().item())
    assert nc.compile_fn("(/ 1 0)")().item() == math.inf


# ---- arithmetic and logic ------------------------------------------------------------------------
def test_variadic_arithmetic_folds_left():
    a, b, c = torch.tensor(1e8), torch.tensor(-1e8), torch.tensor(1.0)
    assert (a + b) + c != a + (b + c)  # float32: the order is visible
    assert nc.compile_fn("(+ a b c)")(a, b, c).item() == ((a + b) + c).item()
    assert nc.compile_fn("(- a b c)")(10.0, 3.0, 2.0).item() == 5.0
    assert nc.compile_fn("(/ a b c)")(12.0, 3.0, 2.0).item() == 2.0
    assert nc.compile_fn("(* a b c)")(a, b, c).item() == ((a * b) * c).item()


@pytest.mark.parametrize("src, expected", [
    ("(+)", 0.0), ("(*)", 1.0), ("(- 2)", -2.0), ("(/ 4)", 0.25), ("(/ 1 2)", 0.5),
    ("(< 1 2 3)", 1.0), ("(< 1 3 2)", 0.0), ("(= 2 2 2)", 1.0), ("(>= 3 3 1)", 1.0),
    ("(and 2 0)", 0.0), ("(or 0 -3)", 1.0), ("(not 0)", 1.0), ("#t", 1.0), ("(+ #t #t)", 2.0),
])
def test_constant_programs(src, expected):
    assert nc.compile_fn(src)().item() == expected


def test_comparisons_are_numbers_without_gradient():
    f = nc.compile_fn("(> x 0)")
    x = torch.tensor([1.0, -1.0], dtype=F64, requires_grad=True)
    out = f(x)
    assert out.dtype == F64 and out.tolist() == [1.0, 0.0]
    assert not out.requires_grad
    g = nc.compile_fn("(* x (> x 0))")
    assert grad(g)(t64(2.0)).item() == 1.0
    assert grad(g)(t64(-2.0)).item() == 0.0


def test_chained_comparison_evaluates_each_argument_once_per_pair():
    f = nc.compile_fn("(< a b c)")
    a, b, c = t64(1.0, 1.0, 3.0), t64(2.0, 0.0, 2.0), t64(3.0, 3.0, 1.0)
    assert f(a, b, c).tolist() == [1.0, 0.0, 0.0]


# ---- masked loops ---------------------------------------------------------------------------------
HALVINGS = "(loop ((v x) (n 0)) (if (< v 1) n (recur (/ v 2) (+ n 1))))"


def halvings_ref(v: float) -> float:
    n = 0
    while not v < 1:
        v /= 2
        n += 1
    return float(n)


def test_masked_loop_equals_python_reference():
    f = nc.compile_fn(HALVINGS)
    xs = [0.5, 1.0, 3.0, 100.0, 1e6, -5.0]
    x = t64(*xs)
    assert f(x).tolist() == [halvings_ref(v) for v in xs]
    assert torch.equal(vmap(f)(x), f(x))
    assert f(t64(3.0)).item() == 2.0  # unbatched


def test_masked_loop_with_two_batch_axes_and_broadcast_inputs():
    f = nc.compile_fn("(loop ((v x) (n 0)) (if (< v y) n (recur (/ v 2) (+ n 1))))")
    x = t64(1.0, 10.0, 1000.0).reshape(3, 1)
    y = t64(0.5, 2.0)
    expected = torch.tensor([[halvings_ref(a / b) for b in (0.5, 2.0)] for a in (1.0, 10.0, 1000.0)], dtype=F64)
    assert torch.equal(f(x, y), expected)
    assert torch.equal(vmap(vmap(f, in_dims=(None, 0)), in_dims=(0, None))(x[:, 0], y), expected)


NEWTON = """
(define (newton a)
  (loop ((y a))
    (if (< (abs (- (* y y) a)) 1e-12) y (recur (* 0.5 (+ y (/ a y)))))))
(newton a)
"""


def test_masked_loop_values_and_gradients():
    f = nc.compile_fn(NEWTON, max_iter=60)  # under a transform every one of max_iter steps runs
    a = t64(0.5, 2.0, 9.0, 100.0)
    assert torch.allclose(f(a), torch.sqrt(a), rtol=1e-15)
    expected = 0.5 / torch.sqrt(a)
    assert torch.allclose(vmap(grad(f))(a), expected, rtol=1e-12)
    assert torch.allclose(jacrev(f)(a), torch.diag(expected), rtol=1e-12)
    assert torch.allclose(jacfwd(f)(a), torch.diag(expected), rtol=1e-12)
    assert torch.allclose(vmap(hessian(f))(a), -0.25 * a ** -1.5, rtol=1e-10)
    ag = a.clone().requires_grad_()
    f(ag).sum().backward()
    assert torch.allclose(ag.grad, expected, rtol=1e-12)


def test_elements_that_never_exit_give_nan():
    f = nc.compile_fn(HALVINGS, max_iter=5)
    x = t64(0.5, 3.0, 100.0, 1e6)
    out = f(x)
    assert out[:2].tolist() == [0.0, 2.0]
    assert torch.isnan(out[2:]).all()
    assert torch.equal(torch.isnan(vmap(f)(x)), torch.isnan(out))
    g = nc.compile_fn("(loop ((v x)) (if (> v 10) v (recur (* v 2))))", max_iter=50)
    x = t64(1.0, 0.0, -1.0, 3.0)
    out = g(x)
    assert out[0].item() == 16.0 and out[3].item() == 12.0
    assert torch.isnan(out[1:3]).all()
    # the elements that exit still get their gradient
    grads = vmap(grad(g))(x)
    assert grads[0].item() == 16.0 and grads[3].item() == 4.0


def test_max_iter_bounds_the_number_of_steps():
    # 7 halvings are needed for 100: max_iter counts the steps (one exit test each)
    assert nc.compile_fn(HALVINGS, max_iter=8)(t64(100.0)).item() == 7.0
    assert math.isnan(nc.compile_fn(HALVINGS, max_iter=7)(t64(100.0)).item())


def test_masked_loop_with_vector_state():
    f = nc.compile_fn("(loop ((v u) (k 0)) (if (> (norm v) 1) (recur (scale 0.5 v) (+ k 1)) k))")
    assert f.ranks == {"u": 1}
    u = torch.tensor([[3.0, 4.0, 0.0], [0.1, 0.0, 0.0], [0.0, 0.0, 1.5]])
    assert f(u).tolist() == [3.0, 0.0, 1.0]


def test_tail_recursive_function_on_inputs_runs_as_a_loop():
    src = "(define (count v n) (if (< v 1) n (count (/ v 2) (+ n 1))))\n(count x 0)"
    f = nc.compile_fn(src)
    xs = [0.5, 3.0, 1e6]
    assert f(t64(*xs)).tolist() == [halvings_ref(v) for v in xs]
    assert [e.prim for e in nc.make_program(src).eqns] == ["%loop"]


def test_named_let_runs_as_a_loop():
    f = nc.compile_fn("(let lp ((v x) (n 0)) (if (< v 1) n (lp (/ v 2) (+ n 1))))")
    xs = [0.5, 3.0, 1e6]
    assert f(t64(*xs)).tolist() == [halvings_ref(v) for v in xs]


NON_TAIL = [  # LANGUAGE.md section 3: non-tail recursion on inputs runs on a per-element stack
    ("(define (fact n) (if (< n 1) 1 (* n (fact (- n 1)))))\n(fact x)", lambda n: float(math.factorial(n))),
    ("(letrec ((f (lambda (n) (if (< n 1) 0 (+ 1 (f (- n 1))))))) (f x))", float),
    ("(define (sum-to n)\n  (if (<= n 0)\n      0\n      (+ n (sum-to (- n 1)))))\n(sum-to k)",
     lambda n: float(n * (n + 1) // 2)),
]


@pytest.mark.parametrize("src, ref", NON_TAIL)
def test_non_tail_recursion_on_inputs_runs_per_element(src, ref):
    ns = [0, 1, 4, 9]
    assert nc.compile_fn(src)(t64(*ns)).tolist() == [ref(n) for n in ns]


STATIC_RECURSION = [
    ("(letrec ((fact (lambda (n) (if (= n 0) 1 (* n (fact (- n 1))))))) (* x (fact 5)))", 120.0),
    ("(define (fact n) (if (< n 1) 1 (* n (fact (- n 1)))))\n(* x (fact 6))", 720.0),
    ("(define (fib n) (if (< n 2) n (+ (fib (- n 1)) (fib (- n 2)))))\n(* x (fib 10))", 55.0),
]


@pytest.mark.parametrize("src, factor", STATIC_RECURSION)
def test_static_recursion_is_evaluated_while_tracing(src, factor):
    f = nc.compile_fn(src)
    assert f(t64(2.0)).item() == 2 * factor
    (eqn,) = nc.make_program(src).eqns
    assert eqn.prim == "*" and eqn.args[1].value == factor


def test_static_recursion_on_inputs_unrolls():
    src = "(define (p k acc) (if (= k 0) acc (p (- k 1) (* acc x))))\n(p 4 1)"
    f = nc.compile_fn(src)
    x = t64(1.5, -2.0)
    assert torch.equal(f(x), ((1.0 * x) * x * x) * x)
    assert [e.prim for e in nc.make_program(src).eqns] == ["*"] * 4


def test_deep_static_recursion_is_a_limit_error_not_a_recursion_error():
    with pytest.raises(nc.LimitError) as info:
        nc.compile_fn("(define (fact n) (if (< n 1) 1 (* n (fact (- n 1)))))\n(* x (fact 5000))")
    assert info.value.line == 1


# ---- integration ----------------------------------------------------------------------------------
PENDULUM = """
(define (pend t s) [(ref s 1) (- (* (- g/L) (sin (ref s 0))) (* c (ref s 1)))])
(rk4 pend [th0 w0] 0.05 20)
"""


def rk4_ref(fn, y, dt, n):
    ys, half, sixth = [y], dt / 2, dt / 6
    for k in range(n):
        t = k * dt
        k1 = fn(t, y)
        k2 = fn(t + half, y + half * k1)
        k3 = fn(t + half, y + half * k2)
        k4 = fn(t + dt, y + dt * k3)
        y = y + sixth * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
        ys.append(y)
    return torch.stack(ys, dim=-(y.dim() + 1) if y.dim() else 0)


def test_rk4_pendulum_is_bit_for_bit_a_hand_written_loop():
    f = nc.compile_fn(PENDULUM)
    assert f.inputs == ("g/L", "c", "th0", "w0")
    g, c, th0, w0 = (t64(v) for v in (9.81, 0.3, 1.0, 0.0))

    def fn(t, s):
        return torch.stack([s[1], (-g) * torch.sin(s[0]) - c * s[1]])

    out = f(g, c, th0, w0)
    assert out.shape == (21, 2) and out.dtype == F64
    assert torch.equal(out, rk4_ref(fn, torch.stack([th0, w0]), 0.05, 20))
    assert torch.equal(f(**{"g/L": g, "c": c, "th0": th0, "w0": w0}), out)


def test_rk4_batched_initial_conditions_equal_vmap():
    f = nc.compile_fn(PENDULUM)
    th0 = torch.linspace(-1, 1, 5, dtype=F64)
    out = f(t64(9.81), t64(0.3), th0, t64(0.0))
    assert out.shape == (5, 21, 2)
    assert torch.equal(out, vmap(f, in_dims=(None, None, 0, None))(t64(9.81), t64(0.3), th0, t64(0.0)))


def test_rk4_with_time_dependence():
    f = nc.compile_fn("(rk4 (lambda (t y) (- (cos t) (* k y))) y0 0.1 10)")
    k, y0 = t64(0.7), t64(1.0)
    out = f(k, y0)
    assert out.shape == (11,)
    assert torch.equal(out, rk4_ref(lambda t, y: torch.cos(torch.tensor(t, dtype=F64)) - k * y, y0, 0.1, 10))


def test_euler_is_bit_for_bit_with_an_input_step():
    f = nc.compile_fn("(euler (lambda (t y) (* (- t) y)) y0 dt 6)")
    y0, dt = t64(2.0), t64(0.125)
    y, ys = y0, [y0]
    for k in range(6):
        y = y + dt * ((-(k * dt)) * y)
        ys.append(y)
    assert torch.equal(f(y0, dt), torch.stack(ys))


def test_integration_gradient_matches_autograd_of_the_reference():
    f = nc.compile_fn("(rk4 (lambda (t y) (* (- k) y)) 1 0.1 10)")
    k = t64(0.5)
    g = grad(lambda k: f(k)[-1])(k)
    k_ = k.clone().requires_grad_()
    rk4_ref(lambda t, y: (-k_) * y, t64(1.0), 0.1, 10)[-1].backward()
    assert torch.equal(g, k_.grad)


# ---- batching -------------------------------------------------------------------------------------
def test_leading_batch_axes_equal_vmap():
    f = nc.compile_fn("(* a (sin b) (exp (- c)))")
    a, b, c = torch.randn(3, 4, 5, dtype=F64, generator=torch.Generator().manual_seed(0))
    out = f(a, b, c)
    assert out.shape == (4, 5)
    assert torch.equal(out, vmap(vmap(f))(a, b, c))


def test_batch_axes_broadcast_as_in_pytorch():
    f = nc.compile_fn("(* a (sin b))")
    K = torch.rand(4, 1, dtype=F64)
    N = torch.rand(5, dtype=F64)
    out = f(K, N)
    assert out.shape == (4, 5)
    assert torch.equal(out, K * torch.sin(N))


def test_dot_of_a_batch_with_one_vector():
    f = nc.compile_fn("(dot u w)")
    u = torch.rand(7, 3, dtype=F64)
    w = torch.rand(3, dtype=F64)
    out = f(u, w)
    assert out.shape == (7,)
    assert torch.allclose(out, vmap(f, in_dims=(0, None))(u, w), rtol=1e-15)
    assert torch.allclose(out, u @ w, rtol=1e-15)


def test_unconstrained_input_is_a_batch_of_scalars():
    f = nc.compile_fn("(+ u [1 2 3])")
    out = f(torch.tensor([10.0, 20.0, 30.0]))
    assert out.shape == (3, 3)
    assert out.tolist() == [[11, 12, 13], [21, 22, 23], [31, 32, 33]]


def test_declared_shape_adds_vectors():
    f = nc.compile_fn("(+ u [1 2 3])", shapes={"u": (3,)})
    assert f(torch.tensor([10.0, 20.0, 30.0])).tolist() == [11, 22, 33]
    assert f(torch.ones(2, 3)).shape == (2, 3)


def test_a_result_that_ignores_an_input_still_gets_its_batch_axes():
    f = nc.compile_fn("(lambda (x y) (* 2 x))")
    assert f(t64(1.5), torch.zeros(4, dtype=F64)).tolist() == [3.0] * 4
    g = nc.compile_fn("(lambda (u) 3)")
    assert g(torch.zeros(4)).tolist() == [3.0] * 4


def test_vlen_of_a_batch_has_the_batch_axes():
    f = nc.compile_fn("(* (vlen u) x)", shapes={"u": (None,)})
    u = torch.ones(2, 5)
    assert torch.equal(f(u, torch.tensor(1.0)), vmap(f, in_dims=(0, None))(u, torch.tensor(1.0)))


# ---- rank inference -------------------------------------------------------------------------------
RANKS = [
    ("(norm u)", {"u": 1}),
    ("(cross u w)", {"u": 1, "w": 1}),
    ("(* (det M) x)", {"M": 2, "x": 0}),
    ("(matvec M v)", {"M": 2, "v": 1}),
    ("(vsum u)", {"u": 1}),
    ("(ref u 0)", {"u": 1}),
    ("(ref M 0 1)", {"M": 2}),
    ("(dot u [1 2 3])", {"u": 1}),
    ("(sin u)", {"u": 0}),
    ("(* (norm u) (sin u))", {"u": 1}),
    ("(define (n2 v) (dot v v))\n(n2 r)", {"r": 1}),
]


@pytest.mark.parametrize("src, ranks", RANKS)
def test_rank_inference(src, ranks):
    assert nc.compile_fn(src).ranks == ranks


def test_vlen_makes_its_argument_a_vector():
    f = nc.compile_fn("(* (vlen u) u)")
    assert f.ranks == {"u": 1}
    assert f(torch.ones(4)).tolist() == [4.0] * 4


def test_inferred_ranks_give_batch_axes():
    f = nc.compile_fn("(* (det M) x)")
    M = torch.eye(3, dtype=F64).expand(4, 3, 3) * t64(1.0, 2.0, 3.0, 4.0)[:, None, None]
    out = f(M, t64(1.0))
    assert torch.allclose(out, t64(1.0, 8.0, 27.0, 64.0))


def test_declared_shape_conflicting_with_the_program_is_an_error():
    with pytest.raises(nc.ShapeError) as info:
        nc.compile_fn("(det M)", shapes={"M": (3,)})
    assert (info.value.line, info.value.column) == (1, 1)


@pytest.mark.parametrize("src, line, column", [
    ("(cross [1 2] [3 4])", 1, 1),
    ("(* 2\n   (ref [1 2 3] 5))", 2, 4),
    ("(det (mat [1 2 3] [4 5 6]))", 1, 1),
])
def test_shape_errors_with_literals_are_raised_by_compile(src, line, column):
    with pytest.raises(nc.ShapeError) as info:
        nc.compile_fn(src)
    assert (info.value.line, info.value.column) == (line, column)


def test_shape_errors_found_at_the_first_call_are_nc_errors():
    f = nc.compile_fn("(cross u w)")
    with pytest.raises(nc.ShapeError) as info:
        f(torch.ones(2), torch.ones(2))
    assert (info.value.line, info.value.column) == (1, 1)
    assert "cross" in info.value.message


# ---- dtype ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype_follows_the_inputs(dtype):
    f = nc.compile_fn("(+ (* 0.1 x) [1 2 3] (vsum (eye 3)) pi)")
    out = f(torch.tensor(1.0, dtype=dtype))
    assert out.dtype == dtype
    x = torch.tensor([0.3, 7.0], dtype=dtype)
    g = nc.compile_fn("(* 0.1 (+ x 0.2))")
    assert g(x).dtype == dtype
    assert torch.equal(g(x), 0.1 * (x + 0.2))  # literals as Python scalars, bit for bit


def test_literal_vectors_take_the_computation_dtype():
    f = nc.compile_fn("(dot u [0.1 0.2 0.3])")
    u = torch.tensor([1.0, 2.0, 3.0])
    assert f(u).dtype == torch.float32
    assert torch.equal(f(u), torch.dot(u, torch.tensor([0.1, 0.2, 0.3])))


def test_mixed_dtypes_promote():
    f = nc.compile_fn("(+ x y)")
    assert f(torch.tensor(1.0), torch.tensor(1.0, dtype=F64)).dtype == F64


def test_python_numbers_as_inputs():
    f = nc.compile_fn("(+ x y)")
    assert f(2.0, 3.0).dtype == torch.get_default_dtype()
    assert f(2.0, 3.0).item() == 5.0
    assert f(2, 3).item() == 5.0
    assert f(2.0, torch.tensor([1.0], dtype=F64)).dtype == F64
    assert f(2.0, torch.tensor([1.0], dtype=torch.float16)).dtype == torch.float16
    assert f(True, 1.0).item() == 2.0
    assert f([1.0, 2.0], 1.0).tolist() == [2.0, 3.0]


def test_integer_tensors_compute_as_floats():
    f = nc.compile_fn("(/ x 2)")
    assert f(torch.tensor([1, 3])).tolist() == [0.5, 1.5]


# ---- the trace cache ------------------------------------------------------------------------------
@pytest.fixture
def trace_count(monkeypatch):
    count = [0]
    original = Tracer.run

    def counting(self, *args, **kwargs):
        count[0] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Tracer, "run", counting)
    return count


@pytest.mark.parametrize("src, options", [
    ("(* (sin x) y)", {}),
    ("(* 2 u)", {"shapes": {"u": (3,)}}),
    (HALVINGS, {}),
])
def test_calling_again_with_the_same_signature_does_not_retrace(trace_count, src, options):
    f = nc.compile_fn(src, **options)
    for shape in [(3,), (2, 3)]:
        args = [torch.rand(shape) for _ in f.inputs]
        f(*args)
        after_first = trace_count[0]
        again = f(*[a.clone() for a in args])
        assert trace_count[0] == after_first
        assert again.shape == f(*args).shape


def test_per_signature_cache_has_one_entry_per_signature():
    # A signature is per example: batch axes share the entry (they must not multiply entries).
    f = nc.compile_fn("(* 2 u)", shapes={"u": (3,)})
    f(torch.ones(3))
    f(torch.zeros(3))
    assert len(f._compiled.cache) == 1
    assert torch.equal(f(torch.ones(5, 3)), torch.full((5, 3), 2.0))
    assert len(f._compiled.cache) == 1
    f(torch.ones(3, dtype=F64))
    assert len(f._compiled.cache) == 2
    f(torch.ones(5, 3))
    assert len(f._compiled.cache) == 2


# ---- nested transforms ----------------------------------------------------------------------------
def test_vmap_of_jacrev_of_jacfwd_is_the_hessian():
    f = nc.compile_fn("(* (sin (ref u 0)) (ref u 1) (square (ref u 2)))")

    def ref(u):
        return torch.sin(u[0]) * u[1] * u[2] ** 2

    u = torch.rand(5, 3, dtype=F64)
    H = vmap(jacrev(jacfwd(f)))(u)
    assert H.shape == (5, 3, 3)
    assert torch.allclose(H, vmap(hessian(ref))(u), rtol=1e-14, atol=1e-15)
    assert torch.allclose(vmap(hessian(f))(u), H, rtol=1e-14, atol=1e-15)
    assert torch.allclose(vmap(jacfwd(jacrev(f)))(u), H, rtol=1e-14, atol=1e-15)


def test_grad_of_vmap_and_jacrev_equal_jacfwd():
    f = nc.compile_fn("(* (exp (- (* k t))) (cos (* w t)))")
    t = torch.linspace(0, 2, 7, dtype=F64)
    k, w = t64(0.3), t64(2.0)
    dk = grad(lambda k: vmap(f, in_dims=(None, 0, None))(k, t, w).sum())(k)
    expected = (-t * torch.exp(-k * t) * torch.cos(w * t)).sum()
    assert torch.allclose(dk, expected, rtol=1e-14)
    assert torch.allclose(jacrev(f, argnums=(0, 2))(k, t, w)[1], jacfwd(f, argnums=(0, 2))(k, t, w)[1],
                          rtol=1e-14)


# ---- bad calls ------------------------------------------------------------------------------------
def test_missing_input_names_it_and_points_at_its_first_free_occurrence():
    f = nc.compile_fn("(define (f a) (* a k))\n(+ (f x)\n   (* x y))")
    assert f.inputs == ("k", "x", "y")
    with pytest.raises(nc.CallError) as info:
        f(1.0, 2.0)
    err = info.value
    assert "y" in err.message and "missing" in err.message
    assert (err.line, err.column) == (3, 9)
    with pytest.raises(nc.CallError) as info:
        f(x=1.0, y=2.0)
    assert "k" in info.value.message
    assert (info.value.line, info.value.column) == (1, 20)


def test_misspelled_keyword_gets_a_suggestion():
    f = nc.compile_fn("(* mass accel)")
    with pytest.raises(nc.CallError) as info:
        f(mass=1.0, acel=2.0)
    assert "accel" in info.value.message and "'acel'" in info.value.message
    assert "'acel' for 'accel'" in info.value.hint


def test_unknown_keyword_is_an_error_naming_it_even_when_every_input_is_given():
    # LANGUAGE.md section 2: a call that passes an unknown input raises an NCError naming it.
    f = nc.compile_fn("(+ x y)")
    with pytest.raises(nc.CallError) as info:
        f(x=1.0, y=2.0, z=3.0)
    assert "'z'" in info.value.message and "not an input" in info.value.message
    with pytest.raises(nc.CallError) as info:
        f(x=1.0, z=3.0)
    assert "y" in info.value.message and "'z'" in info.value.message


def test_too_many_positional_arguments():
    with pytest.raises(nc.CallError) as info:
        nc.compile_fn("(+ x y)")(1.0, 2.0, 3.0)
    assert "takes 2 inputs" in info.value.message and "got 3" in info.value.message


def test_input_given_twice():
    with pytest.raises(nc.CallError) as info:
        nc.compile_fn("(+ x y)")(1.0, 2.0, x=2.0)
    assert "'x'" in info.value.message
    assert (info.value.line, info.value.column) == (1, 4)


def test_batch_axes_that_do_not_broadcast():
    with pytest.raises(nc.CallError) as info:
        nc.compile_fn("(+ x y)")(torch.ones(3), torch.ones(4))
    assert "do not broadcast" in info.value.message
    assert "[3]" in info.value.message and "[4]" in info.value.message


@pytest.mark.parametrize("bad", ["a", None, [1.0, "a"], {"x": 1}, object()])
def test_non_numeric_values(bad):
    f = nc.compile_fn("(+ x y)")
    with pytest.raises(nc.CallError) as info:
        f(bad, 1.0)
    assert "'x'" in info.value.message
    assert (info.value.line, info.value.column) == (1, 4)


@pytest.mark.parametrize("src, args, name", [
    ("(norm u)", (torch.tensor(1.0),), "u"),
    ("(* (det M) x)", (torch.ones(3), 1.0), "M"),
    ("(+ u w)", (torch.ones(3), torch.ones(2, 2)), "w"),
])
def test_wrong_per_example_rank(src, args, name):
    options = {"shapes": {"u": (3,), "w": (3,)}} if src == "(+ u w)" else {}
    f = nc.compile_fn(src, **options)
    with pytest.raises(nc.CallError) as info:
        f(*args)
    assert f"'{name}'" in info.value.message
    assert info.value.line == 1 and info.value.column == src.index(f" {name}") + 2
