"""`nc demo`: recover an unknown constant of a physics program from generated data.

The program is a damped pendulum integrated with RK4; its gravity constant ``g/L`` is unknown.
Data come from the same program at the true value (9.81) with a fixed seed; the model starts
at 5.0 and is fitted with L-BFGS in float64.
"""

from __future__ import annotations

import time

import torch

import nc

PENDULUM = """\
; theta'' = -(g/L) sin(theta) - b theta'
(define b 0.3)
(define (pendulum t s)
  (vec (ref s 1)
       (- (* (- g/L) (sin (ref s 0))) (* b (ref s 1)))))
(rk4 pendulum s0 0.05 40)
"""

TRUE_VALUE = 9.81
START = 5.0


def run(seed: int = 0, noise: float = 0.0, echo: bool = True) -> dict[str, float]:
    """Fit ``g/L`` and return the recovered value, its relative error and the time taken."""

    say = print if echo else (lambda *a, **k: None)
    torch.manual_seed(seed)
    s0 = torch.tensor([[1.0, 0.0], [0.5, 1.0], [-1.2, 0.3]], dtype=torch.float64)
    truth = nc.compile_fn(PENDULUM)
    data = truth(**{"g/L": torch.tensor(TRUE_VALUE, dtype=torch.float64), "s0": s0})
    data = data + noise * data.abs().mean() * torch.randn_like(data)
    model = nc.compile(PENDULUM, params={"g/L": START}).double()
    say("program:\n" + PENDULUM)
    say(f"inputs: {model.inputs}; parameters: {model.param_names} (start {START}, true {TRUE_VALUE})")
    start = time.perf_counter()
    result = nc.fit(model, {"s0": s0}, data, optimizer="lbfgs", epochs=50, tol=1e-20)
    elapsed = time.perf_counter() - start
    value = float(model.params["g/L"].detach())
    error = abs(value - TRUE_VALUE) / TRUE_VALUE
    say(f"recovered g/L = {value:.10f} (true {TRUE_VALUE}), relative error {error:.2e}, "
        f"final loss {result.loss:.3e}, {elapsed:.2f} s")
    say("fitted program:\n" + model.to_source())
    return {"value": value, "error": error, "seconds": elapsed}
