"""The reference evaluator agrees with the shared conformance cases and with LANGUAGE.md."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from refeval import RefError, evaluate, inputs_of

CASES = Path(__file__).resolve().parents[2] / "shared" / "conformance" / "cases.jsonl"

# Cases whose args carry batch axes (refeval evaluates one example) or nest too deep for it.
BATCHED_OR_DEEP = {"if-batched", "cond", "broadcast", "batched-dot", "deep-nesting"}


def _value_cases() -> list[dict[str, Any]]:
    if not CASES.exists():
        return []
    cases = [json.loads(line) for line in CASES.read_text().splitlines() if line.strip()]
    return [
        c for c in cases
        if not c.get("error") and "grad_wrt" not in c and c["id"] not in BATCHED_OR_DEEP
    ]


def _error_cases() -> list[dict[str, Any]]:
    if not CASES.exists():
        return []
    cases = [json.loads(line) for line in CASES.read_text().splitlines() if line.strip()]
    # input-recursion is a compile-time rule of nc; refeval just recurses.
    return [c for c in cases if c.get("error") and c["id"] != "input-recursion"]


@pytest.mark.skipif(not CASES.exists(), reason="shared conformance cases not found")
def test_cases_found() -> None:
    assert len(_value_cases()) > 60


@pytest.mark.parametrize("case", _value_cases(), ids=lambda c: c["id"])
def test_conformance_value(case: dict[str, Any]) -> None:
    out = evaluate(case["program"], case["args"])
    want = np.array(case["expect"], dtype=np.float64)
    assert out.dtype == np.float64
    assert out.shape == want.shape
    np.testing.assert_allclose(out, want, rtol=case.get("rtol", 1e-12), atol=case.get("atol", 0.0))


@pytest.mark.parametrize("case", _error_cases(), ids=lambda c: c["id"])
def test_conformance_error(case: dict[str, Any]) -> None:
    with pytest.raises(RefError):
        evaluate(case["program"], case["args"])


@pytest.mark.parametrize(
    "src, args, want",
    [
        ("(softplus x)", {"x": 800.0}, 800.0),
        ("(softplus x)", {"x": -800.0}, math.exp(-800.0)),
        ("(softplus x)", {"x": 1e-20}, math.log(2.0)),
        ("(sigmoid x)", {"x": -800.0}, 0.0),
        ("(log 100 10)", {}, 2.0),
        ("(atan 1 -1)", {}, 3 * math.pi / 4),
        ("(round -0.5)", {}, 0.0),
        ("(round 1.5)", {}, 2.0),
        ("(/ 1 0)", {}, math.inf),
        ("(lgamma 0)", {}, math.inf),
        ("(if (> x 0) (sqrt x) 0)", {"x": -1.0}, 0.0),
        ("(let* ((a 1) (a (+ a 1))) a)", {}, 2.0),
        ("(define c (* 2 k)) (define k 3) c", {}, 6.0),
        ("(define (f a) (* a k)) (lambda (k) (f 2))", {"k": 5.0}, 10.0),
        ("(let ((max 3)) (+ max 1))", {}, 4.0),
        ("(let ((u [1 2 3])) (vsum (roll u 1)))", {}, 6.0),
        ("(euler (lambda (t y) 1) 0 0.5 2)", {}, [0.0, 0.5, 1.0]),
        ("(loop ((i 0)) (cond ((< i 3) (recur (+ i 1))) (else (* 10 i))))", {}, 30.0),
        ("(letrec ((ev (lambda (n) (if (= n 0) 1 (od (- n 1)))))"
         " (od (lambda (n) (if (= n 0) 0 (ev (- n 1)))))) (ev 7))", {}, 0.0),
        ("(if (> u 0) u 0)", {"u": [-1.0, 2.0]}, [0.0, 2.0]),
        ("(laplacian1d [1 2] 1)", {}, [0.0, 0.0]),
        ("#;(x) ; c\n #| a #| b |# |# [+4 .5 1E1]", {}, [4.0, 0.5, 10.0]),
    ],
)
def test_semantics(src: str, args: dict[str, Any], want: Any) -> None:
    np.testing.assert_allclose(evaluate(src, args), want, rtol=1e-14)


@pytest.mark.parametrize(
    "src",
    ["(+ 1 2", "(+ 1 2]", "1e", "(np.exp 1)", "'x", "(sin 1 2)", "(f 1)", "(+ x 1)", "(lambda (x) (lambda (y) y))",
     "(define (f a) a) f", "(let ((if 1)) if)", "(recur 1)", "(loop ((i 0)) (recur (+ i 1)))",
     "(cross [1 2] [1 2])", "(ref [1 2] 2)", "(ref [1 2] 0.5)", "(zeros -1)", "(inv (mat [1 2] [2 4]))",
     "#| open", "(define a b) (define b a) a", "(+ 1 #x)", "(+ 1 (recur 2))", "(cond ((> 1 0) 1))"],
)
def test_rejects(src: str) -> None:
    with pytest.raises(RefError):
        evaluate(src, {})


def test_deep_nesting_is_a_referror() -> None:
    with pytest.raises(RefError):
        evaluate("(+ " * 5000 + "1" + ")" * 5000, {})


@pytest.mark.parametrize(
    "src, want",
    [
        ("(+ y x y z)", ("y", "x", "z")),
        ("(define (f a) (* a k)) (define c (+ q 1)) (lambda (z k) (+ (f x) c y))", ("z", "k", "q", "x", "y")),
        ("(let ((x 1)) (+ x y))", ("y",)),
        ("(define unused w) (* 2 pi)", ()),
        ("(let* ((a x) (b a)) (+ b g/L))", ("x", "g/L")),
    ],
)
def test_inputs_of(src: str, want: tuple[str, ...]) -> None:
    assert inputs_of(src) == want
