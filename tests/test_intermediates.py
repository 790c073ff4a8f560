"""`nc.intermediates`: every named intermediate, batched like the output, equal to what the program computes."""

from __future__ import annotations

import pytest
import torch

import nc

F64 = torch.float64

GRAVITY = """(define G 6.674)
(define (sq a) (* a a))
(let* ((r2 (sq r)) (f (/ (* G m1 m2) r2)))
  (if (> f 1) (let ((big (* 2 f))) big) f))"""


def test_names_values_and_order():
    f = nc.compile_fn(GRAVITY)
    r = torch.linspace(0.5, 3.0, 4, dtype=F64)
    out = nc.intermediates(f, r, 2.0, 1.5)
    assert list(out) == ["define G@1:9", "call sq@3:12", "let* r2@3:9", "let* f@3:21", "let big@4:22", "result"]
    assert torch.equal(out["call sq@3:12"], r * r)
    assert torch.equal(out["let* f@3:21"], 6.674 * 2.0 * 1.5 / (r * r))
    assert torch.equal(out["let big@4:22"], 2 * out["let* f@3:21"])  # shown where the branch is not taken too
    assert torch.equal(out["result"], f(r, 2.0, 1.5))
    assert out["define G@1:9"].shape == (4,)  # batched like the output


def test_keywords_and_repeated_calls():
    f = nc.compile_fn("(define (sq a) (* a a)) (+ (sq x) (sq y))")
    out = nc.intermediates(f, x=torch.tensor([1.0, 2.0]), y=torch.tensor(3.0))
    assert list(out) == ["call sq@1:28", "call sq@1:35", "result"]
    assert out["call sq@1:35"].tolist() == [9.0, 9.0]
    g = nc.compile_fn("(letrec ((p (lambda (n) (if (= n 0) x (* x (p (- n 1))))))) (p 2))")
    names = list(nc.intermediates(g, torch.tensor(2.0)))
    assert names == ["call p@1:44", "call p@1:44#2", "call p@1:61", "result"]


def test_a_hybrid_shows_where_the_learned_term_takes_over():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(1, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1)).double()
    model = nc.compile("(define k 0.5)\n(let ((physics (* -1 k v)) (learned (ref (drag [v]) 0)))\n"
                       "  (+ physics learned))", trainable=["k"], modules={"drag": net}, dtype=F64)
    v = torch.linspace(-2, 2, 5, dtype=F64)
    out = nc.intermediates(model, v)
    assert list(out) == ["let physics@2:8", "let learned@2:29", "result"]
    assert torch.equal(out["let physics@2:8"], -0.5 * v)
    assert torch.allclose(out["let learned@2:29"], net(v[:, None])[:, 0], rtol=1e-14)
    assert torch.equal(out["result"], model(v))
    out["result"].sum().backward()  # values keep their graph: gradients reach the parameters
    assert model.params["k"].grad is not None


def test_integrator_states_and_masked_loops():
    f = nc.compile_fn("(define (decay t y) (* -1 k y)) (rk4 decay y0 0.1 5)")
    k, y0 = torch.tensor([0.5, 1.0]), torch.tensor(1.0)
    out = nc.intermediates(f, k, y0)
    assert list(out) == ["rk4@1:33", "result"]
    assert out["rk4@1:33"].shape == (2, 6) and torch.equal(out["rk4@1:33"], f(k, y0))
    loop = nc.compile_fn("(loop ((i x) (n 0)) (let ((h (/ i 2))) (if (< i 1) n (recur h (+ n 1)))))")
    out = nc.intermediates(loop, torch.tensor([3.0, 10.0]))
    assert list(out) == ["result"]  # bindings inside a masked loop's body have no single value
    assert out["result"].tolist() == [2.0, 4.0]


def test_vectors_keep_their_per_example_axes():
    f = nc.compile_fn("(let ((d (- u w))) (norm d))", shapes={"u": (3,), "w": (3,)})
    u, w = torch.randn(4, 3, dtype=F64), torch.randn(3, dtype=F64)
    out = nc.intermediates(f, u, w)
    assert out["let d@1:8"].shape == (4, 3) and torch.equal(out["let d@1:8"], u - w)


def test_bad_calls_are_call_errors():
    with pytest.raises(nc.CallError):
        nc.intermediates(lambda x: x, 1.0)
    with pytest.raises(nc.CallError):
        nc.intermediates(nc.compile_fn("(* a b)"), 1.0)
