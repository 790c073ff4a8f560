"""Fuzzing the Python surface (issue 8): every kind of bad value, option and call that was seen
to escape as a raw Python or torch exception, drawn in combination.

Each example compiles or calls something with values drawn from pools that mix good and bad
kinds. The only outcomes allowed are a result or an `nc.NCError` (CallError and friends): never
another exception, a hang or a crash. The reader-level kinds (bytes, Unicode, deep nesting) are
fuzzed in tests/test_properties.py.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nc

FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Values a user may pass for an input: numbers, containers, tensors of odd dtypes and devices.
VALUES: list[Any] = [
    1.0, -0.0, 3, True, 10**400, -(10**400), float("nan"), float("inf"), 1 + 2j, "1.0", "abc", None, b"1",
    [1.0, 2.0], [], [[1.0], [2.0, 3.0]], ["1.5", "nan"], [None, 1.0], [1.0, 10**400], (1, 2),
    np.float32(0.5), np.complex128(1 + 1j), np.array([None, 1]), np.array(["1"]), np.array([1.0, 2.0]),
    np.array(1.0), np.bool_(True), np.int64(2**62),
    torch.tensor(1.0), torch.tensor([1.0, 2.0, 3.0]), torch.zeros(0), torch.zeros(2, 0),
    torch.tensor(1 + 2j), torch.tensor([1, 2]), torch.tensor(True), torch.tensor(1.0, dtype=torch.float16),
    torch.tensor(1.0, dtype=torch.bfloat16), torch.empty(3, device="meta"), torch.ones(3, 3, 3),
    [torch.tensor(1.0, requires_grad=True), torch.tensor(2.0)], object(), {"x": 1.0}, {1.0},
]
SHAPES: list[Any] = [
    None, {}, {"u": (3,)}, {"u": (None,)}, {"u": (10**11,)}, {"u": (float("inf"),)}, {"u": (3.5,)},
    {"u": ("3",)}, {"u": (-1,)}, {1: (3,)}, [("u", (3,))], {"u": 3}, {"nope": (3,)}, "u=3",
    {"u": (True,)}, {"u": tuple(range(1, 12))},
]
MAX_ITER: list[Any] = [1, 1000, 10**6, 10**30, 0, -1, 2.5, True, "10", None, float("nan")]
PROGRAMS = [
    "(+ x y)", "(vsum (* u u))", "(vmax u)", "(ref u 1)", "(roll u 1)", "(det M)", "(loop ((i 0) (s x)) "
    "(if (> s 10) s (recur (+ i 1) (* s 2))))", "(/ (* G m1 m2) (* r r))", "(eye n)",
]


def outcome(thunk: Any) -> None:
    """Run ``thunk``; a result or an NCError is fine, anything else fails the test."""
    try:
        thunk()
    except nc.NCError as e:
        assert e.message, "an NCError without a message"
    except Exception as e:  # noqa: BLE001 - this is what the fuzzer is looking for
        pytest.fail(f"raw {type(e).__name__} escaped: {e}")


@pytest.mark.slow
@FUZZ
@given(st.sampled_from(PROGRAMS), st.sampled_from(SHAPES), st.sampled_from(MAX_ITER), st.booleans())
def test_compile_options_are_checked(src: str, shapes: Any, max_iter: Any, check_domain: bool) -> None:
    outcome(lambda: nc.compile_fn(src, shapes=shapes, max_iter=max_iter, check_domain=check_domain))


@FUZZ
@given(st.sampled_from(PROGRAMS), st.lists(st.sampled_from(VALUES), max_size=4), st.booleans())
def test_calls_with_any_values(src: str, values: list[Any], by_name: bool) -> None:
    try:
        f = nc.compile_fn(src)
    except nc.NCError:
        return
    if by_name:
        names = list(f.inputs) + ["extra"]
        outcome(lambda: f(**dict(zip(names, values))))
    else:
        outcome(lambda: f(*values))


@FUZZ
@given(st.sampled_from(VALUES), st.sampled_from(["G", "half", "type", "to", "params", "forward", "g/L"]),
       st.sampled_from(VALUES))
def test_module_parameters_and_calls(param: Any, name: str, arg: Any) -> None:
    src = f"(* {name} x)"

    def run() -> None:
        model = nc.compile(src, params={name: param})
        model(arg)
        model.to_source()

    outcome(run)


FIT_OPTIONS: list[dict[str, Any]] = [
    {"lr": math.nan}, {"lr": -1}, {"lr": "0.1"}, {"epochs": "10"}, {"epochs": 2.5}, {"restarts": 1.5},
    {"batch_size": 2.5}, {"optimizer_options": {"bogus": 1}}, {"dtype": torch.int64}, {"grid": {"k": 1.0}},
    {"grid": {"k": torch.tensor(1.0)}}, {"seed": 2**70}, {"starts": [{"k": 10**400}]}, {"clip": math.nan},
    {"epochs": 3}, {"epochs": 2, "optimizer": "lbfgs"}, {"epochs": 2, "batch_size": 2},
]
TARGETS: list[Any] = [None, [1.0, 2.0, 3.0, 4.0], "y", torch.tensor([1.0, math.nan, 3.0, 4.0]), torch.ones(3)]


@FUZZ
@given(st.sampled_from(FIT_OPTIONS), st.sampled_from(TARGETS))
def test_fit_arguments(options: dict[str, Any], target: Any) -> None:
    model = nc.compile("(define k 1.0) (* k x)", trainable=["k"])
    x = torch.linspace(0.0, 1.0, 4)
    y = 2.0 * x if target is None else target
    outcome(lambda: nc.fit(model, (x,), y, progress=False, **options))
    assert all(torch.isfinite(p).all() for p in model.parameters())
