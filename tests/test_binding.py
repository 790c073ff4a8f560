"""Call arguments (nc/binding.py): one rule for values, unknown keywords are errors (issue 8)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import nc

F64 = torch.float64


@pytest.mark.parametrize("value, words", [
    (np.complex128(1 + 2j), "input 'x' must be a tensor or a number, got complex128"),
    (1 + 2j, "input 'x' must be a tensor or a number, got complex"),
    (np.array([None, 1]), "input 'x' must be an array of real numbers, got a numpy array of dtype object"),
    (np.array([1 + 1j]), "input 'x' must be an array of real numbers"),
    (np.array(["1.5"]), "input 'x' must be an array of real numbers"),
    (["1.5", "nan"], "input 'x' must be numbers, got list holding str"),
    ("1.0", "input 'x' must be a tensor or a number, got str"),
    ([None, 1.0], "input 'x' must be numbers, got list holding NoneType"),
    ([1.0, 1j], "input 'x' must be numbers, got list holding complex"),
    (10**400, "input 'x' is too large for a float"),
    ([1.0, 10**400], "input 'x' is too large for a float"),
    ([[1.0, 2.0], [3.0]], "input 'x' must be a regular array"),
    ([[1.0], 2.0], "input 'x' must be"),
])
def test_values_outside_the_rule_are_call_errors_naming_the_input(value, words):
    f = nc.compile_fn("(+ x y)")
    for call in (lambda: f(value, 1.0), lambda: f(x=value, y=1.0)):
        with pytest.raises(nc.CallError) as info:
            call()
        assert info.value.message.startswith(words), info.value.message
    assert (info.value.line, info.value.column) == (1, 4)


@pytest.mark.parametrize("value, want", [
    (True, 1.0), (np.bool_(False), 0.0), (3, 3.0), (np.int32(-2), -2.0), (np.float32(0.5), 0.5),
    (float("nan"), float("nan")), (float("-inf"), float("-inf")), ([1, 2.5], [1.0, 2.5]),
    ((1, 2), [1.0, 2.0]), (np.array([1, 2], dtype=np.uint8), [1.0, 2.0]),
    (torch.tensor([1, 0], dtype=torch.bool), [1.0, 0.0]), ([], []),
])
def test_real_numbers_convert(value, want):
    out = nc.compile_fn("(* x 1)")(value)
    assert out.dtype == torch.get_default_dtype()
    torch.testing.assert_close(out, torch.tensor(want), equal_nan=True)


def test_complex_tensors_are_refused_on_the_checked_path():
    # The fast path passes tensors straight to the generated code; keywords take the checked path.
    with pytest.raises(nc.CallError) as info:
        nc.compile_fn("(+ x y)")(x=torch.tensor(1 + 2j), y=1.0)
    assert info.value.message.startswith("input 'x' must be real, got a complex tensor")


def test_a_list_of_tensors_is_stacked_and_keeps_the_gradient():
    f = nc.compile_fn("(vsum (* v v))")
    a = torch.tensor(2.0, dtype=F64, requires_grad=True)
    out = f([a, torch.tensor(3.0, dtype=F64)])
    assert out.item() == 13.0
    out.backward()
    assert a.grad.item() == 4.0
    rows = [torch.tensor([1.0, 2.0], requires_grad=True), [3.0, 4.0]]
    m = nc.compile_fn("(vsum (vsum (* M M)))", shapes={"M": (2, 2)})
    assert m(rows).item() == 30.0


@pytest.mark.parametrize("value, words", [
    (1 + 1j, "params['G'] must be a tensor or a number, got complex"),
    (torch.tensor(1 + 1j), "params['G'] must be real"),
    (10**400, "params['G'] is too large for a float"),
    ("2.0", "params['G'] must be a tensor or a number, got str"),
    (np.array([None]), "params['G'] must be an array of real numbers"),
])
def test_params_values_follow_the_same_rule(value, words):
    with pytest.raises(nc.CallError) as info:
        nc.compile("(* G x)", params={"G": value})
    assert info.value.message.startswith(words)


def test_params_values_that_convert():
    assert nc.compile("(* G x)", params={"G": np.float64(2.0)}).G.dtype == torch.get_default_dtype()
    assert nc.compile("(* G x)", params={"G": torch.tensor(2.0, dtype=F64)}).G.dtype == F64
    assert nc.compile("(dot w u)", params={"w": [1, 2]}).w.tolist() == [1.0, 2.0]


def test_unknown_keywords_are_errors_even_with_every_input_given():
    f = nc.compile_fn("(* mass accel)")
    with pytest.raises(nc.CallError) as info:
        f(mass=1.0, accel=2.0, acel=3.0)
    assert info.value.message == "'acel' is not an input of this program (inputs: mass, accel)"
    assert info.value.hint == "did you mean 'acel' for 'accel'?"
    with pytest.raises(nc.CallError) as info:
        nc.compile_fn("(+ x 1)")(x=1.0, y=2.0)
    assert "'y' is not an input" in info.value.message


def test_a_keyword_naming_a_module_parameter_is_an_error_with_advice():
    model = nc.compile("(* G x)", params={"G": 3.0})
    with pytest.raises(nc.CallError) as info:
        model(x=torch.tensor(1.0), G=5.0)
    assert "'G' is not an input" in info.value.message
    assert "functional_call(model, {'G': value}, args)" in info.value.hint
    with pytest.raises(nc.CallError) as info:
        model(torch.tensor(1.0), y=2.0)
    assert "'y' is not an input" in info.value.message
