"""Indices from data and static integer inputs (LANGUAGE.md section 3).

`ref`/`roll` with an index that depends on the inputs gather per element (NaN, or a
DomainError under check_domain=True, for a non-integral or out-of-range index). Sizes and step
counts stay static: an input there must be a Python int at call time, and the program is
specialised per value."""

from __future__ import annotations

import math

import pytest
import torch

import nc


def test_ref_with_data_index_gathers_per_element() -> None:
    f = nc.compile_fn("(ref [10 20 30] i)")
    out = f(torch.tensor([2.0, 0.0, 1.5, 3.0, -1.0], dtype=torch.float64))
    assert out[:2].tolist() == [30.0, 10.0]
    assert all(math.isnan(x) for x in out[2:].tolist())


def test_ref_data_index_gradient_reaches_only_the_element() -> None:
    f = nc.compile_fn("(lambda (v i) (* (ref v i) (ref v i)))", shapes={"v": (4,)})
    v = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(f(v, torch.tensor(2.0, dtype=torch.float64)), v)
    assert g.tolist() == [0.0, 0.0, 6.0, 0.0]


def test_ref_data_index_batches_like_vmap() -> None:
    f = nc.compile_fn("(lambda (v i) (ref v i))", shapes={"v": (3,)})
    v = torch.arange(6.0, dtype=torch.float64).reshape(2, 3)
    i = torch.tensor([2.0, 0.0], dtype=torch.float64)
    assert torch.equal(f(v, i), torch.func.vmap(f)(v, i))
    assert f(v, i).tolist() == [2.0, 3.0]
    # batch axes broadcast: i of shape [2, 1] with v of [2] vectors gives [2, 2]
    assert f(v, i[:, None]).tolist() == [[2.0, 5.0], [0.0, 3.0]]


def test_ref_matrix_with_two_data_indices() -> None:
    f = nc.compile_fn("(lambda (m i j) (ref m i j))", shapes={"m": (2, 3)})
    m = torch.arange(6.0, dtype=torch.float64).reshape(2, 3)
    out = f(m, torch.tensor([0.0, 1.0], dtype=torch.float64), torch.tensor([2.0, 1.0], dtype=torch.float64))
    assert out.tolist() == [2.0, 4.0]


def test_loop_counter_from_input_indexes_a_vector() -> None:
    f = nc.compile_fn("(lambda (v n) (loop ((k 0) (s 0)) (if (>= k n) s (recur (+ k 1) (+ s (ref v k))))))",
                      shapes={"v": (3,)})
    v = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    assert f(v, torch.tensor([2.0, 3.0, 0.0], dtype=torch.float64)).tolist() == [3.0, 6.0, 0.0]


def test_roll_with_data_shift() -> None:
    f = nc.compile_fn("(lambda (v k) (roll v k))", shapes={"v": (4,)})
    v = torch.arange(4.0, dtype=torch.float64)
    out = f(v, torch.tensor([1.0, -1.0, 6.0, 0.5], dtype=torch.float64))
    for row, k in zip(out[:3], (1, -1, 6)):
        assert torch.equal(row, torch.roll(v, k))
    assert out[3].isnan().all()


def test_data_index_domain_error_with_check_domain() -> None:
    f = nc.compile_fn("(ref [10 20 30] i)", check_domain=True)
    assert float(f(torch.tensor(1.0, dtype=torch.float64))) == 20.0
    with pytest.raises(nc.DomainError, match="integral index in range") as info:
        f(torch.tensor(3.0, dtype=torch.float64))
    assert info.value.column == 17


def test_static_int_input_for_a_size() -> None:
    f = nc.compile_fn("(lambda (x n) (* x (vsum (ones n))))")
    assert float(f(torch.tensor(2.0), 3)) == 6.0
    assert f(torch.tensor([2.0, 1.0]), n=5).tolist() == [10.0, 5.0]
    assert len(f._compiled.cache) == 2  # one specialisation per value


def test_static_int_input_rk4_steps_serves_any_window() -> None:
    f = nc.compile_fn("(define (f t y) (- y)) (lambda (y0 n) (rk4 f y0 0.1 n))")
    y0 = torch.tensor(1.0, dtype=torch.float64)
    a, b = f(y0, 2), f(y0, 5)
    assert a.shape == (3,) and b.shape == (6,)
    assert torch.equal(a, b[:3])


def test_tensor_passed_for_a_static_input_is_a_call_error() -> None:
    f = nc.compile_fn("(lambda (x n) (* x (vsum (ones n))))")
    with pytest.raises(nc.CallError, match="must be a Python int") as info:
        f(torch.tensor(2.0), torch.tensor(3.0))
    assert "tensor shapes cannot depend on data" in (info.value.hint or "")
    with pytest.raises(nc.CallError, match="must be a Python int"):
        f(torch.tensor(2.0), 3.0)


def test_data_shift_domain_error_with_check_domain() -> None:
    f = nc.compile_fn("(lambda (v k) (roll v k))", shapes={"v": (3,)}, check_domain=True)
    with pytest.raises(nc.DomainError, match="integral shift"):
        f(torch.tensor([1.0, 2.0, 3.0]), torch.tensor(0.5))


def test_static_int_input_through_an_nc_module() -> None:
    src = "(define (f t y) (* k y)) (lambda (y0 n) (rk4 f y0 0.1 n))"
    model = nc.compile(src, params={"k": -1.0}, dtype=torch.float64)
    y0 = torch.tensor(1.0, dtype=torch.float64)
    a, b = model(y0=y0, n=2), model(y0, 5)  # by keyword and by position
    assert a.shape == (3,) and b.shape == (6,) and torch.equal(a, b[:3])
    ref = nc.compile_fn("(define (f t y) (* -1 y)) (lambda (y0 n) (rk4 f y0 0.1 n))")(y0, 5)
    assert torch.allclose(b, ref, rtol=1e-15, atol=0)
    (g,) = torch.autograd.grad(b[-1], model.params["k"])  # the parameter still learns
    k = torch.tensor(-1.0, dtype=torch.float64, requires_grad=True)
    (want,) = torch.autograd.grad(nc.compile_fn(src)(y0, 5, k)[-1], k)  # k as an input of compile_fn
    assert g.item() == pytest.approx(want.item(), rel=1e-14)
    assert g.item() == pytest.approx(0.5 * b[-1].item(), rel=1e-4)  # d/dk e^(0.5 k) at k = -1
    with pytest.raises(nc.CallError, match="must be a Python int"):
        model(y0, torch.tensor(5))
