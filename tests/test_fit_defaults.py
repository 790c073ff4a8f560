"""`nc.fit` with its defaults, as a newcomer calls it: ``nc.fit(model, inputs, target)``.

The default ``optimizer="auto"`` takes full-batch L-BFGS in float64 for a few constants. Every
one of the 15 noise-free Feynman constants (tests/test_recovery.py's table) from 1.0 comes back
within 0.1 %, but the oscillator's loss has a local minimum in omega near the start: the fit
says so (a `FitWarning` with the hint of a ``grid=`` scan), and following the hint recovers it.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from test_recovery import FEYNMAN, canonical, feynman_data, feynman_error

import nc
from nc.fit import FitWarning

F64 = torch.float64


# the oscillator's run into its local minimum and the 20-start scan take ~20 s on a shared CPU
CASES = [pytest.param(*row, id=row[0], marks=[pytest.mark.slow] if row[0] == "oscillator" else []) for row in FEYNMAN]


@pytest.mark.parametrize("eq_id, program, ranges, constants", CASES)
def test_feynman_with_defaults_from_one(eq_id: str, program: str, ranges: dict[str, tuple[float, float]],
                                        constants: dict[str, float]) -> None:
    inputs, target = feynman_data(program, ranges, constants)
    model = nc.compile(program, params=dict.fromkeys(constants, 1.0))  # float32, as a newcomer's
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = nc.fit(model, inputs, target)
    said = [str(w.message) for w in caught if issubclass(w.category, FitWarning)]
    assert result.optimizer == "lbfgs" and result.choice.startswith("auto")
    assert model.params[next(iter(constants))].dtype == torch.float32  # left in its own dtype
    if eq_id == "oscillator":
        # from 1.0 alone, a local minimum: the fit says so and hints at a grid; the hint works
        assert any("poor minimum" in m and "grid=" in m for m in said), said
        result = nc.fit(model, inputs, target, grid={"omega": torch.linspace(0.5, 10, 20)})
    else:
        assert not said, said
    fitted = canonical(eq_id, {k: float(result.params[k]) for k in constants})
    for name, true in constants.items():
        assert feynman_error(eq_id, name, fitted[name], true) < 1e-3, (name, fitted[name])
    assert result.converged
