"""The program generator is sound: what it draws is well-formed and evaluates to finite values."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import refeval
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import VECTOR_INPUTS, conditioning_ok, input_shapes, inputs, mutated_programs, programs

pytestmark = pytest.mark.slow  # hundreds of generated programs: about 40 s

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(st.data())
def test_generated_programs_evaluate_to_finite_values(data: st.DataObject) -> None:
    vectors, smooth = data.draw(st.booleans()), data.draw(st.booleans())
    src, names = data.draw(programs(vectors=vectors, smooth=smooth))
    args = data.draw(inputs(names))
    out = refeval.evaluate(src, args)
    assert out.ndim <= 1
    assert np.all(np.isfinite(out)), (src, args, out)
    assert np.all(np.abs(out) < 1e6), (src, args, out)


@SETTINGS
@given(st.data())
def test_input_names_match_the_program(data: st.DataObject) -> None:
    src, names = data.draw(programs(vectors=True, trivia=False))
    assert names == refeval.inputs_of(src)
    assert len(set(names)) == len(names)
    args = data.draw(inputs(names))
    assert set(args) == set(names)
    for n in names:
        assert np.shape(args[n]) == ((VECTOR_INPUTS[n],) if n in VECTOR_INPUTS else ())
    assert set(input_shapes(names)) == set(names) & set(VECTOR_INPUTS)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_programs())
def test_refeval_fails_only_with_referror_on_mutated_programs(src: str) -> None:
    try:
        out = refeval.evaluate(src, {"x": 0.5, "y": -1.25, "z": 1.5, "u": [1.0, 2.0, 0.5], "w": [0.1, -1.0, 2.0]})
    except refeval.RefError:
        return
    assert isinstance(out, np.ndarray) and out.dtype == np.float64


@pytest.mark.parametrize(
    "src, args",
    [
        ("(- x 1)", {"x": 1.0000001}),  # cancellation
        ("(- x y)", {"x": 1.0, "y": 1.0 + 1e-12}),
        ("(if (< x 0.5) 0 1)", {"x": 0.5 - 1e-9}),  # next to a branch switch
        ("(floor (* 10 x))", {"x": 0.3}),  # next to a jump
        ("(exp (* 30 x))", {"x": 1.0}),  # too large
        ("(sqrt x)", {"x": -1.0}),  # not finite
        ("(/ 1 (- x 0.25))", {"x": 0.25}),
        ("(- (vsum u) 1)", {"u": [0.5, 0.25, 0.25000001]}),
    ],
)
def test_conditioning_rejects(src: str, args: dict[str, Any]) -> None:
    assert not conditioning_ok(src, args)


@pytest.mark.parametrize(
    "src, args",
    [
        ("(sin x)", {"x": 0.5}),
        ("x", {"x": 1e-300}),
        ("(* x y)", {"x": 0.0, "y": 2.0}),
        ("(if (< x 0.5) 0 1)", {"x": 0.4}),
        ("(normalize u)", {"u": [1.0, -2.0, 0.5]}),
        ("(exp (* 3 x))", {"x": 2.0}),
    ],
)
def test_conditioning_accepts(src: str, args: dict[str, Any]) -> None:
    assert conditioning_ok(src, args)
