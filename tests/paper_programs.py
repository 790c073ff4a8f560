"""Programs of the paper's experiments shared by the fitting tests (one copy of each)."""

LV = """
(define (lotka-volterra t s)
  (let ((x (ref s 0)) (y (ref s 1)))
    [(- (* alpha x) (* beta (* x y)))
     (- (* delta (* x y)) (* gamma y))]))
(rk4 lotka-volterra s0 0.1 {steps})
"""
"""Lotka-Volterra rolled out by rk4 at dt 0.1 from s0; ``{steps}`` is filled in by each test."""

LV_TRUE = {"alpha": 1.0, "beta": 0.5, "delta": 0.25, "gamma": 0.5}

PENDULUM = """
(define (pendulum t s)
  (let ((theta (ref s 0)) (theta_dot (ref s 1)))
    [theta_dot
     (+ (* neg_g_over_L (sin theta)) (* neg_b theta_dot))]))
(rk4 pendulum s0 0.05 {steps})
"""
"""The damped pendulum rolled out by rk4 at dt 0.05 from s0; ``{steps}`` is filled in by each test."""

PENDULUM_TRUE = {"neg_g_over_L": -9.81, "neg_b": -0.3}
