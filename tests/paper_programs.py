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
