"""A compiled right-hand side is torchdiffeq's ``func(t, y)`` as it is (extra ``nc[ode]``)."""

from __future__ import annotations

import pytest
import torch

import nc

torchdiffeq = pytest.importorskip("torchdiffeq")

LV = """
(define alpha 1.0) (define beta 0.5) (define delta 0.25) (define gamma 0.5)
(lambda (t y)
  (let ((x (ref y 0)) (p (ref y 1)))
    (vec (- (* alpha x) (* beta x p))
         (- (* delta x p) (* gamma p)))))
"""


@pytest.mark.slow
def test_compiled_rhs_with_dopri5_matches_nc_rk4() -> None:
    f = nc.compile_fn(LV)
    assert f.inputs == ("t", "y")
    y0 = torch.tensor([4.0, 1.0], dtype=torch.float64)
    t = torch.linspace(0, 5, 51, dtype=torch.float64)
    ours = torchdiffeq.odeint(f, y0, t, method="dopri5", rtol=1e-11, atol=1e-11)
    rollout = nc.compile_fn(LV.replace("(lambda (t y)", "(define (lv t y)").rstrip() + "\n(rk4 lv y0 0.01 500)")
    reference = rollout(y0=y0)[::10]
    torch.testing.assert_close(ours, reference, rtol=1e-7, atol=1e-9)


def test_module_rhs_gradients_through_odeint() -> None:
    model = nc.compile(LV, trainable=["alpha", "beta", "delta", "gamma"]).double()
    y0 = torch.tensor([[4.0, 1.0], [2.0, 2.0]], dtype=torch.float64)  # a batch of initial states
    t = torch.linspace(0, 2, 11, dtype=torch.float64)
    out = torchdiffeq.odeint(model, y0, t, method="dopri5", rtol=1e-9, atol=1e-9)
    assert out.shape == (11, 2, 2)
    out[-1].sum().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() and g.abs() > 0 for g in grads)
