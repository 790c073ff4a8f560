"""Diagnostics: the NCError hierarchy, rendered messages, hints, shape errors, bad calls,
``check_domain``, ``nc check``, and that program text never becomes Python code.

Rendered messages are pinned exactly (snapshots): a change of wording is a change of the
documented interface (docs/errors.md) and must update these strings on purpose.
"""

from __future__ import annotations

import ast
import builtins
import json
import math
import pickle
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

import nc
from nc.cli import main as cli_main
from nc.errors import Source, Span

F64 = torch.float64


def t(*values: float) -> torch.Tensor:
    return torch.tensor(values[0] if len(values) == 1 else list(values), dtype=F64)


def raises(cls: type[nc.NCError], fn: Callable[[], Any]) -> nc.NCError:
    """Run ``fn``, which must raise exactly an NCError of class ``cls``; return it."""
    with pytest.raises(nc.NCError) as info:
        fn()
    assert type(info.value) is cls, f"expected {cls.__name__}, got {type(info.value).__name__}: {info.value}"
    return info.value


def compile_error(src: str, **options: Any) -> nc.NCError:
    with pytest.raises(nc.NCError) as info:
        nc.compile_fn(src, **options)
    return info.value


# ------------------------------------------------------------------------------------------------
# The hierarchy and its codes

CODES = {
    nc.NCError: "NC000",
    nc.ReadError: "NC100",
    nc.SyntaxFormError: "NC200",
    nc.UnboundNameError: "NC300",
    nc.ArityError: "NC400",
    nc.ShapeError: "NC500",
    nc.NCTypeError: "NC600",
    nc.DomainError: "NC700",
    nc.LimitError: "NC800",
    nc.CallError: "NC900",
}


@pytest.mark.parametrize("cls, code", CODES.items(), ids=lambda v: getattr(v, "__name__", v))
def test_each_class_has_its_stable_code(cls: type[nc.NCError], code: str) -> None:
    assert cls.code == code
    assert issubclass(cls, nc.NCError) and issubclass(cls, Exception)
    assert cls.__doc__, f"{cls.__name__} has no docstring"


def test_codes_are_unique_and_every_subclass_is_exported() -> None:
    assert len(set(CODES.values())) == len(CODES)
    assert {c for c in vars(nc).values() if isinstance(c, type) and issubclass(c, nc.NCError)} == set(CODES)
    # NCTypeError must not shadow Python's TypeError: an nc type error is not a Python one.
    assert not issubclass(nc.NCTypeError, TypeError)


# ------------------------------------------------------------------------------------------------
# Snapshots: the exact str(err) of one representative error of each class

SNAPSHOTS: list[tuple[type[nc.NCError], str, Callable[[], Any]]] = [
    (nc.ReadError,
     "prog.nc:2:1: error: '(' is never closed\n"
     "   2 | (sin (* 2 x)\n"
     "     | ^\n"
     "  hint: add ')' at the end of the expression it starts",
     lambda: nc.compile_fn("; a comment\n(sin (* 2 x)\n", name="prog.nc")),
    (nc.SyntaxFormError,
     "<program>:1:6: error: let needs a list of bindings, as in ((x 1) (y 2))\n"
     "   1 | (let x 1)\n"
     "     |      ^",
     lambda: nc.compile_fn("(let x 1)")),
    (nc.UnboundNameError,
     "<program>:1:9: error: unknown function 'sqrtt'\n"
     "   1 | (* 2.0 (sqrtt x))\n"
     "     |         ^~~~~\n"
     "  hint: did you mean `sqrt`?",
     lambda: nc.compile_fn("(* 2.0 (sqrtt x))")),
    (nc.ArityError,
     "<program>:1:1: error: if takes a test, a then branch and an else branch, got 2 expressions\n"
     "   1 | (if (> x 0) x)\n"
     "     | ^~~~~~~~~~~~~~\n"
     "  hint: nc's if always has an else branch: (if test then else)",
     lambda: nc.compile_fn("(if (> x 0) x)")),
    (nc.ShapeError,
     "<program>:1:1: error: ref: index 5 is out of range for a vector of shape [3] (valid: 0 to 2)\n"
     "   1 | (ref [1 2 3] 5)\n"
     "     | ^~~~~~~~~~~~~~~",
     lambda: nc.compile_fn("(ref [1 2 3] 5)")),
    (nc.NCTypeError,
     "<program>:2:4: error: 'f' is a function, not a value\n"
     "   2 | (+ f 1)\n"
     "     |    ^\n"
     "  hint: call it as (f ...); functions are not values in nc",
     lambda: nc.compile_fn("(define (f x) x)\n(+ f 1)")),
    (nc.DomainError,
     "<program>:1:6: error: sqrt of a negative number: sqrt got -4\n"
     "   1 | (+ 1 (sqrt x))\n"
     "     |      ^~~~~~~~\n"
     "  hint: guard it with (if ...) if such inputs are expected; elements an if masks out are not checked",
     lambda: nc.compile_fn("(+ 1 (sqrt x))", check_domain=True)(t(4.0, -4.0))),
    (nc.LimitError,
     "<program>:1:34: error: rk4 with 200000 steps: at most 100000 steps are unrolled\n"
     "   1 | (rk4 (lambda (t y) (- y)) x 0.01 200000)\n"
     "     |                                  ^~~~~~",
     lambda: nc.compile_fn("(rk4 (lambda (t y) (- y)) x 0.01 200000)")),
    (nc.CallError,
     "<program>:1:9: error: missing input: y\n"
     "   1 | (+ x (* y y))\n"
     "     |         ^\n"
     "  hint: 'y' is a free name of the program, so it is an input; pass it, or define it with (define ...)",
     lambda: nc.compile_fn("(+ x (* y y))")(t(1.0))),
    (nc.NCError,
     "<program>:1:1: error: check_domain=True needs eager mode: it cannot run under torch.func transforms "
     "or torch.compile\n"
     "   1 | (sqrt x)\n"
     "     | ^~~~~~~~\n"
     "  hint: compile without check_domain for transformed calls",
     lambda: torch.func.vmap(nc.compile_fn("(sqrt x)", check_domain=True))(t(1.0, 4.0))),
]


@pytest.mark.parametrize("cls, expected, fn", SNAPSHOTS, ids=[c.__name__ for c, _, _ in SNAPSHOTS])
def test_rendered_message_snapshot(cls: type[nc.NCError], expected: str, fn: Callable[[], Any]) -> None:
    err = raises(cls, fn)
    assert str(err) == expected
    first = expected.splitlines()[0]
    assert first.endswith(": error: " + err.message)
    if err.hint is not None:
        assert expected.endswith("  hint: " + err.hint)


def test_snapshots_cover_every_class() -> None:
    assert {cls for cls, _, _ in SNAPSHOTS} == set(CODES)


def test_error_without_a_span_renders_message_and_hint_only() -> None:
    err = raises(nc.CallError, lambda: nc.compile_fn("(+ x y)")(t(1.0), t(2.0), t(3.0)))
    assert err.span is None and err.line is None
    assert str(err) == "error: this program takes 2 inputs (x, y), got 3 positional arguments"
    bare = nc.LimitError("too much", hint="do less")
    assert str(bare) == "error: too much\n  hint: do less"


def test_positions_and_to_dict() -> None:
    err = raises(nc.UnboundNameError, lambda: nc.compile_fn("(define k 2)\n(* k\n   (sqrtt x))", name="m.nc"))
    assert (err.line, err.column, err.end_line, err.end_column) == (3, 5, 3, 9)
    d = err.to_dict()
    assert list(d) == ["code", "class", "message", "hint", "file", "line", "column", "end_line", "end_column"]
    assert d == {"code": "NC300", "class": "UnboundNameError", "message": "unknown function 'sqrtt'",
                 "hint": "did you mean `sqrt`?", "file": "m.nc", "line": 3, "column": 5, "end_line": 3,
                 "end_column": 9}
    assert json.loads(json.dumps(d)) == d
    spanless = nc.CallError("no span").to_dict()
    assert spanless["file"] is None and spanless["line"] is None and spanless["end_column"] is None


def test_multiline_span_underlines_to_the_end_of_its_first_line() -> None:
    err = raises(nc.ArityError, lambda: nc.compile_fn("(+ 1\n  (sin x\n       y))"))
    assert (err.line, err.column, err.end_line, err.end_column) == (2, 3, 3, 9)
    assert str(err).splitlines()[1:3] == ["   2 |   (sin x", "     |   ^~~~~~"]


def test_caret_stays_in_view_on_a_very_long_line() -> None:
    src = "(+ " + "x " * 5000 + "(sqrtt x))"
    err = raises(nc.UnboundNameError, lambda: nc.compile_fn(src))
    lines = str(err).splitlines()
    assert len(lines[1]) < 300 and len(lines[2]) < 300
    shown, caret = lines[1], lines[2]
    col = caret.index("^")
    assert shown[col:col + 5] == "sqrtt" and caret[col:] == "^~~~~"


def test_errors_pickle_with_their_span_and_hint() -> None:
    err = raises(nc.UnboundNameError, lambda: nc.compile_fn("(sqrtt x)"))
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is nc.UnboundNameError and str(back) == str(err) and back.to_dict() == err.to_dict()


def test_span_positions_count_characters_not_bytes() -> None:
    src = "(+ 1 #| é ü ☃ |# (sqrtt x))"
    err = raises(nc.UnboundNameError, lambda: nc.compile_fn(src))
    assert err.column == src.index("sqrtt") + 1 == 19
    shown, caret = str(err).splitlines()[1:3]
    assert shown[caret.index("^"):].startswith("sqrtt")
    text = Source("a\n☃☃ b")
    assert Span(text, 5, 6).column == 4 and Span(text, 5, 6).line == 2
    err = raises(nc.ReadError, lambda: nc.compile_fn("(+ 1 λ)"))
    assert (err.line, err.column) == (1, 6)


# ------------------------------------------------------------------------------------------------
# Suggestions and hints for spellings from other languages


@pytest.mark.parametrize("src, cls, hint", [
    ("(sqrtt x)", nc.UnboundNameError, "did you mean `sqrt`?"),
    ("(lett ((a 1)) a)", nc.UnboundNameError, "did you mean `let` or `let*` or `letrec`?"),
    ("(lamda (x) x)", nc.UnboundNameError, "did you mean `lambda` or `lgamma` or `clamp`?"),
    ("(define (force k x) (* k x))\n(forse 2 x)", nc.UnboundNameError, "did you mean `force` or `floor`?"),
    ("(vsumm u)", nc.UnboundNameError, "did you mean `vsum`?"),
    ("(** x 2)", nc.UnboundNameError, "write powers as (pow x y) or (expt x y); (square x) and (cube x) for small powers"),
    ("(^ x 2)", nc.UnboundNameError, "write powers as (pow x y)"),
    ("(sqr x)", nc.UnboundNameError, "use (square x)"),
    ("(arctan2 y x)", nc.UnboundNameError, "use (atan y x), the two-argument arctangent"),
    ("(atan2 y x)", nc.UnboundNameError, "use (atan y x), the two-argument arctangent"),
    ("(ln x)", nc.UnboundNameError, "use (log x) for the natural log"),
    ("(let ((a 1)) (set! a 2))", nc.UnboundNameError,
     "nc programs are pure: bind a new name with let or let*, or carry state in a loop"),
    ("(define-values (a b) (vec 1 2))", nc.UnboundNameError,
     "not part of nc: define each value with its own (define name expr)"),
    ("(math.sqrt x)", nc.ReadError, "nc primitives have no module prefix: write (sqrt ...)"),
    ("(np.exp x)", nc.ReadError, "nc primitives have no module prefix: write (exp ...)"),
    ("(torch.sin x)", nc.ReadError, "nc primitives have no module prefix: write (sin ...)"),
    ('(+ "one" x)', nc.ReadError, "strings are not part of the nc language: programs compute with numbers only"),
    ("(+ 'x 1)", nc.ReadError, "quote is not part of the nc language; write vectors as [1 2 3] or (vec 1 2 3)"),
    ("(+ x, y)", nc.ReadError, "commas are not separators in nc: separate arguments with spaces, as in (+ a b)"),
    ("(+ 2.3.4 x)", nc.ReadError, "numbers look like 3, -2, 0.5, .5, 6.674e-11 or 1E3"),
    ("(+ 1e x)", nc.ReadError, "numbers look like 3, -2, 0.5, .5, 6.674e-11 or 1E3"),
    ("(+ x 1", nc.ReadError, "add ')' at the end of the expression it starts"),
    ("(+ x 1))", nc.ReadError, "remove it, or add the matching opening bracket"),
    ("(+ x 1]", nc.ReadError, "use ')'"),
    ("#| never closed", nc.ReadError, "end it with '|#'"),
])
def test_hints(src: str, cls: type[nc.NCError], hint: str) -> None:
    err = compile_error(src)
    assert type(err) is cls, str(err)
    assert err.hint == hint
    assert str(err).endswith("  hint: " + hint)
    assert err.line is not None and err.column is not None


def test_the_unknown_name_is_underlined_exactly() -> None:
    err = compile_error("(+ 1 (arctan2 y x))")
    assert (err.line, err.column, err.end_column) == (1, 7, 13)


def test_no_suggestion_when_nothing_is_close() -> None:
    err = compile_error("(qqqqqqqqqq x)")
    assert type(err) is nc.UnboundNameError and err.hint is None
    assert str(err) == "<program>:1:2: error: unknown function 'qqqqqqqqqq'\n   1 | (qqqqqqqqqq x)\n     |  ^~~~~~~~~~"


@pytest.mark.parametrize("head", ["define-values", "set!", "begin"])
def test_foreign_forms_before_the_result_keep_their_hint(head: str) -> None:
    from nc.suggest import FOREIGN_NAMES

    err = compile_error(f"({head} a 1)\n(+ a 1)")
    assert type(err) is nc.SyntaxFormError and err.hint == FOREIGN_NAMES[head]


def test_arity_errors_are_compile_errors() -> None:
    for src, message in [
        ("(sin x y)", "sin takes 1 argument, got 2"),
        ("(atan)", "atan takes 1 or 2 arguments, got 0"),
        ("(clamp x 1)", "clamp takes 3 arguments, got 2"),
        ("(define (f a b) (+ a b))\n(f x)", "'f' takes 2 arguments, got 1"),
        ("(loop ((i 0) (s 0)) (if (> i x) s (recur (+ i 1))))",
         "recur takes 2 arguments (one per loop variable), got 1"),
        ("(euler (lambda (t y) y) x 0.1)", "euler takes 4 arguments (f y0 dt n), got 3"),
    ]:
        err = compile_error(src)
        assert type(err) is nc.ArityError, str(err)
        assert err.message == message
        assert err.line is not None


def test_shape_messages_name_the_primitive_once() -> None:
    for src, name in [("(det (mat [1 2 3] [4 5 6]))", "det"), ("(cross [1 2] [3 4 5])", "cross"),
                      ("(matmul (mat [1 2] [3 4]) (mat [1 2 3]))", "matmul")]:
        err = compile_error(src)
        assert not err.message.startswith(f"{name}: {name}"), err.message


# ------------------------------------------------------------------------------------------------
# Shape errors: at compile time when shapes are known, else at the first call, never raw torch

SHAPE_CASES = [
    # (source, shapes= that make it a compile error, arguments that make the first call fail, words)
    ("(cross u w)", {"u": (2,), "w": (3,)}, (t(1, 2), t(1, 2)), "cross needs 3-vectors"),
    ("(matmul A B)", {"A": (2, 2), "B": (3, 3)}, (torch.ones(2, 2, dtype=F64), torch.ones(3, 3, dtype=F64)),
     "inner sizes 2 and 3 differ"),
    ("(det M)", {"M": (2, 3)}, (torch.ones(2, 3, dtype=F64),), "det needs a square matrix"),
    ("(inv M)", {"M": (3, 2)}, (torch.ones(3, 2, dtype=F64),), "inv needs a square matrix"),
    ("(ref u 5)", {"u": (3,)}, (t(1, 2, 3),), "index 5 is out of range"),
    ("(ref M 1 4)", {"M": (2, 2)}, (torch.ones(2, 2, dtype=F64),), "out of range"),
    ("(dot u w)", {"u": (3,), "w": (4,)}, (t(1, 2, 3), t(1, 2, 3, 4)), "equal length"),
    ("(solve A b)", {"A": (3, 3), "b": (4,)}, (torch.eye(3, dtype=F64), t(1, 2, 3, 4)), "right-hand side"),
]


@pytest.mark.parametrize("src, shapes, args, words", SHAPE_CASES, ids=[c[0] for c in SHAPE_CASES])
def test_shape_error_at_compile_time_when_shapes_are_declared(src: str, shapes: dict[str, tuple[int, ...]],
                                                              args: tuple[torch.Tensor, ...], words: str) -> None:
    err = raises(nc.ShapeError, lambda: nc.compile_fn(src, shapes=shapes))
    assert words in err.message
    assert (err.line, err.column, err.end_column) == (1, 1, len(src))


@pytest.mark.parametrize("src, shapes, args, words", SHAPE_CASES, ids=[c[0] for c in SHAPE_CASES])
def test_shape_error_at_first_call_when_shapes_are_open(src: str, shapes: dict[str, tuple[int, ...]],
                                                        args: tuple[torch.Tensor, ...], words: str) -> None:
    f = nc.compile_fn(src)  # sizes unknown: nothing to complain about yet
    err = raises(nc.ShapeError, lambda: f(*args))
    assert words in err.message
    assert (err.line, err.column, err.end_column) == (1, 1, len(src))
    assert "Traceback" not in str(err) and "torch" not in err.message


def test_literal_shapes_are_checked_at_compile_time() -> None:
    for src, words in [("(cross [1 2] [3 4 5])", "cross needs 3-vectors"),
                       ("(matmul (mat [1 2] [3 4]) (mat [1 2 3]))", "inner sizes 2 and 1 differ"),
                       ("(det (mat [1 2 3] [4 5 6]))", "square matrix"),
                       ("(inv (mat [1 2 3] [4 5 6]))", "square matrix"),
                       ("(ref [1 2 3] 3)", "out of range"),
                       ("(+ x (vec [1 2] 3))", "vec stacks scalars")]:
        err = compile_error(src)
        assert type(err) is nc.ShapeError and words in err.message, str(err)


def test_shapes_found_by_inference_are_checked_at_compile_time() -> None:
    # u is a 3-vector because it meets [1 2 3]; w is inferred a vector from cross; both sizes known
    err = compile_error("(let ((v (+ u [1 2 3]))) (ref v 7))", shapes={"u": (3,)})
    assert type(err) is nc.ShapeError and "index 7 is out of range" in err.message
    err = compile_error("(vec (norm u) u)", shapes={"u": (3,)})
    assert type(err) is nc.ShapeError and (err.line, err.column) == (1, 1)


def test_vec_of_non_scalars_points_at_the_vec() -> None:
    err = compile_error("(* 2\n   (vec u 1))", shapes={"u": (3,)})
    assert type(err) is nc.ShapeError and (err.line, err.column, err.end_column) == (2, 4, 12)
    assert err.hint == "use concat to join vectors"


def test_a_later_call_with_other_sizes_is_checked_too() -> None:
    f = nc.compile_fn("(cross u w)")
    assert f(t(1, 0, 0), t(0, 1, 0)).tolist() == [0, 0, 1]
    err = raises(nc.ShapeError, lambda: f(t(1, 0), t(0, 1)))
    assert "cross needs 3-vectors" in err.message


def test_a_failure_inside_the_generated_code_maps_to_the_primitives_span() -> None:
    # a matrix and a vector whose sizes disagree, known only at the call
    f = nc.compile_fn("(+ 1 (matvec M v))")
    err = raises(nc.ShapeError, lambda: f(torch.ones(2, 2, dtype=F64), t(1, 2, 3)))
    assert (err.line, err.column) == (1, 6)


# ------------------------------------------------------------------------------------------------
# Bad calls


def test_missing_input_names_it_and_points_at_its_first_use() -> None:
    f = nc.compile_fn("(define (k a) (* a c))\n(+ (k x) c)")
    assert f.inputs == ("c", "x")  # first free occurrence in the source text
    err = raises(nc.CallError, lambda: f(x=t(1.0)))
    assert err.message == "missing input: c" and (err.line, err.column) == (1, 20)


def test_missing_several_inputs() -> None:
    err = raises(nc.CallError, lambda: nc.compile_fn("(+ x y z)")(t(1.0)))
    assert err.message == "missing inputs: y, z"


def test_extra_positional_argument() -> None:
    err = raises(nc.CallError, lambda: nc.compile_fn("(* 2 x)")(t(1.0), t(2.0)))
    assert err.message == "this program takes 1 input (x), got 2 positional arguments"
    err = raises(nc.CallError, lambda: nc.compile_fn("(* 2 3)")(t(1.0)))
    assert err.message == "this program takes 0 inputs (none), got 1 positional arguments"


def test_misnamed_keyword_suggests_the_input() -> None:
    f = nc.compile_fn("(/ (* G m1 m2) (* r r))")
    err = raises(nc.CallError, lambda: f(G=1.0, m1=1.0, m2=2.0, radius=3.0))
    assert err.message == "missing input: r; 'radius' is not an input"
    err = raises(nc.CallError, lambda: f(G=1.0, m1=1.0, m_2=2.0, r=3.0))
    assert err.hint == "did you mean 'm_2' for 'm2'?"


def test_keyword_given_twice() -> None:
    err = raises(nc.CallError, lambda: nc.compile_fn("(- x y)")(t(1.0), t(2.0), x=t(3.0)))
    assert err.message == "input 'x' was given both by position and by keyword"
    assert (err.line, err.column) == (1, 4)


def test_any_spelling_can_be_passed_by_keyword() -> None:
    f = nc.compile_fn("(* g/L v->x)")
    assert f(**{"g/L": t(2.0), "v->x": t(3.0)}).item() == 6.0


def test_batch_axes_that_do_not_broadcast() -> None:
    err = raises(nc.CallError, lambda: nc.compile_fn("(+ x y)")(torch.ones(3), torch.ones(4)))
    assert err.message == "the batch axes of the inputs do not broadcast (x: [3], y: [4])"
    err = raises(nc.CallError, lambda: nc.compile_fn("(dot u w)")(torch.ones(2, 3), torch.ones(5, 3)))
    assert "u: [2]" in err.message and "w: [5]" in err.message


@pytest.mark.parametrize("value, words", [
    ("one", "input 'x' must be a tensor or a number, got str"),
    (None, "input 'x' must be a tensor or a number, got NoneType"),
    ({"a": 1}, "input 'x' must be a tensor or a number, got dict"),
    ([1.0, "b"], "input 'x' must be numbers, got list"),
    (object(), "input 'x' must be a tensor or a number, got object"),
])
def test_non_numeric_values(value: Any, words: str) -> None:
    err = raises(nc.CallError, lambda: nc.compile_fn("(+ x y)")(value, 1.0))
    assert err.message.startswith(words)
    assert (err.line, err.column) == (1, 4)


def test_a_tensor_of_too_small_rank() -> None:
    err = raises(nc.CallError, lambda: nc.compile_fn("(norm u)")(t(1.0)))
    assert err.message == "input 'u' must be rank 1 per example, got a tensor of shape []"
    assert err.hint == "the program uses 'u' as a vector"
    err = raises(nc.CallError, lambda: nc.compile_fn("(norm u)", shapes={"u": (3,)})(t(1.0, 2.0)))
    assert "input 'u' must have per-example shape" in err.message


def test_bad_compile_options() -> None:
    err = raises(nc.CallError, lambda: nc.compile_fn("(+ x 1)", shapes={"q": (3,)}))
    assert "'q', which is not an input" in err.message
    err = raises(nc.CallError, lambda: nc.compile_fn("(+ xx 1)", shapes={"x": (3,)}))
    assert err.hint == "did you mean 'xx'?"
    raises(nc.CallError, lambda: nc.compile_fn("(+ x 1)", max_iter=0))
    raises(nc.CallError, lambda: nc.compile_fn(b"(+ x 1)"))  # type: ignore[arg-type]


def test_module_calls_report_the_same_errors() -> None:
    m = nc.compile("(define G 1.0)\n(* G x y)", trainable=["G"])
    err = raises(nc.CallError, lambda: m(t(1.0)))
    assert err.message == "missing input: y"
    raises(nc.CallError, lambda: m(t(1.0), "two"))


# ------------------------------------------------------------------------------------------------
# check_domain


def domain_error(src: str, *args: Any, **options: Any) -> nc.DomainError:
    f = nc.compile_fn(src, check_domain=True, **options)
    return raises(nc.DomainError, lambda: f(*args))  # type: ignore[return-value]


@pytest.mark.parametrize("src, value, words, column", [
    ("(sqrt x)", -4.0, "sqrt of a negative number: sqrt got -4", 1),
    ("(+ 1 (log x))", 0.0, "log of a non-positive number: log got 0", 6),
    ("(/ 1 x)", 0.0, "division by zero: / got 0", 1),
    ("(/ x)", 0.0, "reciprocal of zero: / got 0", 1),
    ("(asin x)", 1.5, "asin outside [-1, 1]: asin got 1.5", 1),
    ("(acosh x)", 0.5, "acosh below 1: acosh got 0.5", 1),
    ("(pow x 0.5)", -2.0, "pow of a negative base with a non-integer exponent", 1),
    ("(log1p x)", -1.0, "log1p of a number not above -1: log1p got -1", 1),
    ("(modulo 3 x)", 0.0, "modulo by zero: modulo got 0", 1),
    ("(lgamma x)", -2.0, "lgamma at a non-positive integer (a pole): lgamma got -2", 1),
])
def test_domain_error_names_primitive_span_and_value(src: str, value: float, words: str, column: int) -> None:
    err = domain_error(src, t(1.0, value, 2.0))
    assert err.message.startswith(words), err.message
    assert (err.line, err.column) == (1, column)
    assert err.code == "NC700" and err.hint is not None


def test_domain_error_shows_the_first_offending_element() -> None:
    err = domain_error("(sqrt (- x 10))", t(11.0, 3.0, 1.0, 0.5))
    assert err.message == "sqrt of a negative number: sqrt got -7"


def test_domain_error_span_is_the_inner_primitive() -> None:
    err = domain_error("(define (f r)\n  (* 2 (log r)))\n(f x)", t(-1.0))
    assert (err.line, err.column, err.end_column) == (2, 8, 14)


def test_masked_by_an_enclosing_if_is_not_an_error() -> None:
    f = nc.compile_fn("(if (> x 0) (sqrt x) 0)", check_domain=True)
    assert f(t(4.0, -4.0)).tolist() == [2.0, 0.0]
    g = nc.compile_fn("(if (= x 0) 1 (/ 1 x))", check_domain=True)
    assert g(t(0.0, 2.0)).tolist() == [1.0, 0.5]
    h = nc.compile_fn("(cond ((< x 0) (sqrt (- x))) ((< x 1) (log (+ x 1))) (else (log x)))", check_domain=True)
    assert h(t(-4.0, 0.0, math.e)).tolist() == pytest.approx([2.0, 0.0, 1.0])


def test_the_branch_taken_is_checked() -> None:
    err = domain_error("(if (> x 0) (sqrt x) (sqrt (- x 1)))", t(4.0, -4.0))
    assert (err.column, err.message) == (22, "sqrt of a negative number: sqrt got -5")
    # nested ifs: the path mask is the and of both tests
    f = nc.compile_fn("(if (> x 0) (if (< x 10) (log (- 10 x)) 0) 0)", check_domain=True)
    assert f(t(-20.0, 5.0, 20.0)).tolist() == pytest.approx([0.0, math.log(5.0), 0.0])


def test_domain_checks_in_loops() -> None:
    src = "(loop ((i 0) (s 0)) (if (>= i x) s (recur (+ i 1) (+ s (sqrt (- 3 i))))))"
    f = nc.compile_fn(src, check_domain=True)
    # elements stop at their own exit: the one with x = 3 never takes sqrt(-1)
    assert f(t(2.0, 3.0)).tolist() == pytest.approx([math.sqrt(3) + math.sqrt(2), math.sqrt(3) + math.sqrt(2) + 1])
    err = raises(nc.DomainError, lambda: f(t(2.0, 5.0)))
    assert err.message == "sqrt of a negative number: sqrt got -1" and err.column == 56
    # a loop unrolled on constants is checked at every step too
    g = nc.compile_fn("(loop ((i 0) (s x)) (if (>= i 3) s (recur (+ i 1) (log s))))", check_domain=True)
    raises(nc.DomainError, lambda: g(t(1.5)))


def test_domain_check_of_a_per_vector_rule() -> None:
    f = nc.compile_fn("(normalize u)", check_domain=True, shapes={"u": (3,)})
    assert f(torch.tensor([[3.0, 0.0, 4.0], [0.0, 0.0, 2.0]], dtype=F64)).tolist() == [[0.6, 0.0, 0.8],
                                                                                        [0.0, 0.0, 1.0]]
    err = raises(nc.DomainError, lambda: f(torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]], dtype=F64)))
    assert err.message == "normalize of a zero vector: normalize got 0"


def test_nan_arguments_are_not_domain_errors() -> None:
    # NaN propagates (IEEE); the check reports where a domain error starts, not every NaN it meets
    f = nc.compile_fn("(sqrt x)", check_domain=True)
    out = f(t(math.nan, 4.0))
    assert math.isnan(out[0]) and out[1].item() == 2.0
    g = nc.compile_fn("(log (loop ((i x)) (if (> i 5) i (recur (+ i 1)))))", check_domain=True, max_iter=3)
    out = g(t(1.0, 4.0))  # the first element does not exit within max_iter: NaN, then log of NaN
    assert math.isnan(out[0]) and out[1].item() == pytest.approx(math.log(6.0))
    raises(nc.DomainError, lambda: f(t(math.nan, -4.0)))


def test_domain_check_with_batch_axes_and_scalar_masks() -> None:
    f = nc.compile_fn("(if (> x 0) (sqrt (- x 5)) x)", check_domain=True)
    assert f(t(9.0, -1.0)).tolist() == [2.0, -1.0]
    raises(nc.DomainError, lambda: f(t(9.0, 1.0)))
    g = nc.compile_fn("(if (> u 0) (sqrt u) 0)", check_domain=True, shapes={"u": (3,)})  # a vector mask
    assert g(torch.tensor([[1.0, -2.0, 4.0], [-6.0, 9.0, -8.0]], dtype=F64)).tolist() == [[1, 0, 2], [0, 3, 0]]


@pytest.mark.parametrize("batch", [2, 3])
def test_domain_check_with_a_scalar_mask_over_vectors(batch: int) -> None:
    f = nc.compile_fn("(if (> x 0) (sqrt (- u 5)) u)", check_domain=True, shapes={"u": (3,)})
    x = t(1.0, *([-1.0] * (batch - 1)))
    u = torch.tensor([[6.0, 7.0, 8.0]] + [[1.0, 2.0, 3.0]] * (batch - 1), dtype=F64)
    for i in range(batch):  # each example alone is fine
        f(x[i], u[i])
    out = f(x, u)
    assert out[1:].tolist() == [[1.0, 2.0, 3.0]] * (batch - 1)


def test_domain_check_under_transforms_raises_a_clear_error() -> None:
    f = nc.compile_fn("(sqrt x)", check_domain=True)
    for transform in (torch.func.vmap, torch.func.grad, torch.func.jacrev, torch.func.jacfwd):
        arg = t(1.0, 4.0) if transform is torch.func.vmap else t(4.0)
        err = raises(nc.NCError, lambda tr=transform, a=arg: tr(f)(a))  # type: ignore[misc]
        assert "check_domain=True needs eager mode" in err.message
        assert err.hint == "compile without check_domain for transformed calls"


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")
@pytest.mark.slow
def test_domain_check_under_torch_compile_raises_a_clear_error() -> None:
    f = nc.compile_fn("(sqrt x)", check_domain=True)
    g = torch.compile(f, backend="eager", fullgraph=False)
    with pytest.raises(nc.NCError, match="needs eager mode"):
        g(t(1.0, 4.0))


def test_domain_check_works_with_autograd_backward() -> None:
    f = nc.compile_fn("(sqrt x)", check_domain=True)
    x = t(4.0).requires_grad_()
    f(x).backward()
    assert x.grad is not None and x.grad.item() == 0.25


def test_domain_check_is_off_by_default() -> None:
    assert torch.isnan(nc.compile_fn("(sqrt x)")(t(-1.0)))
    assert torch.isinf(nc.compile_fn("(/ 1 x)")(t(0.0)))
    assert torch.isnan(nc.compile("(log x)")(t(-1.0)))
    # and then it works under transforms
    assert torch.func.vmap(nc.compile_fn("(sqrt x)"))(t(4.0, 9.0)).tolist() == [2.0, 3.0]


def test_module_check_domain_option() -> None:
    m = nc.compile("(define k 1.0)\n(log (* k x))", trainable=["k"], check_domain=True)
    assert m(t(1.0)).item() == 0.0
    raises(nc.DomainError, lambda: m(t(-1.0)))


# ------------------------------------------------------------------------------------------------
# nc check


def run_check(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str | None, *flags: str,
              ) -> tuple[int, str, str]:
    args = ["check"]
    if text is not None:
        path = tmp_path / "prog.nc"
        path.write_text(text, encoding="utf-8")
        args.append(str(path))
    code = cli_main([*args, *flags])
    out, err = capsys.readouterr()
    return code, out, err


def test_check_clean_program_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_check(tmp_path, capsys, "(define k 2)\n(* k x)\n")
    assert code == 0 and out.strip().endswith("prog.nc: 0 errors")
    code, out, _ = run_check(tmp_path, capsys, "(* k x)\n", "--json")
    assert code == 0 and json.loads(out) == []


def test_check_program_with_errors_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_check(tmp_path, capsys, "(define k 2)\n(* k (sqrtt x))\n")
    assert code == 1
    path = str(tmp_path / "prog.nc")
    assert out == (f"{path}:2:7: error: unknown function 'sqrtt'\n"
                   "   2 | (* k (sqrtt x))\n"
                   "     |       ^~~~~\n"
                   "  hint: did you mean `sqrt`?\n"
                   f"{path}: 1 error\n")


def test_check_json_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_check(tmp_path, capsys, "(cross [1 2] [3 4 5])", "--json")
    assert code == 1
    problems = json.loads(out)
    assert isinstance(problems, list) and len(problems) == 1
    p = problems[0]
    assert p["code"] == "NC500" and p["class"] == "ShapeError" and "3-vectors" in p["message"]
    assert (p["file"], p["line"], p["column"], p["end_line"], p["end_column"]) == \
        (str(tmp_path / "prog.nc"), 1, 1, 1, 21)


def test_check_with_declared_shapes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = run_check(tmp_path, capsys, "(cross u w)")
    assert code == 0
    code, out, _ = run_check(tmp_path, capsys, "(cross u w)", "--shape", "u=2", "--json")
    assert code == 1 and json.loads(out)[0]["code"] == "NC500"


@pytest.mark.parametrize("src, code", [
    ("(+ 1", "NC100"), ("(let x 1)", "NC200"), ("(sqrtt 1)", "NC300"), ("(sin 1 2)", "NC400"),
    ("(det (mat [1 2 3]))", "NC500"), ("(define (f a) a)\n(+ f 1)", "NC600"), ("(" * 2000, "NC800"),
    ("", "NC200"),
])
def test_check_reports_each_kind(tmp_path: Path, capsys: pytest.CaptureFixture[str], src: str, code: str) -> None:
    rc, out, _ = run_check(tmp_path, capsys, src, "--json")
    assert rc == 1 and json.loads(out)[0]["code"] == code


def test_check_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["check"]) == 2
    assert cli_main(["check", str(tmp_path / "missing.nc")]) == 2
    assert cli_main(["check", "--bogus-flag", "x.nc"]) == 2
    assert cli_main(["no-such-command"]) == 2
    assert cli_main([]) == 2
    capsys.readouterr()


@pytest.mark.slow
def test_check_malformed_shape_option_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "prog.nc"
    path.write_text("(+ x 1)", encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "nc.cli", "check", str(path), "--shape", "x=a"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr


@pytest.mark.slow
def test_check_as_a_process(tmp_path: Path) -> None:
    path = tmp_path / "prog.nc"
    path.write_text("(+ x (sqrt", encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "nc.cli", "check", str(path), "--json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert json.loads(proc.stdout)[0]["code"] == "NC100"


def test_diagnostics_check_api() -> None:
    from nc.diagnostics import check

    assert check("(+ x 1)") == []
    (err,) = check("(sin x y)", name="f.nc")
    assert type(err) is nc.ArityError and err.span is not None and err.span.source.name == "f.nc"


# ------------------------------------------------------------------------------------------------
# Security: program text is data, never code

MARKER = "zqx7marker"


def generated_strings(code: str) -> list[str]:
    return [n.value for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


# Each program with injection attempts has a twin: the same program with plain names and no
# comments. The generated code must be the same text for both: user spelling never reaches it.
INJECTION_PROGRAMS = {
    "dunder names": (
        "(define __class__ 2)\n(define (__import__ os) (* os __class__))\n"
        "(let ((__builtins__ 1) (exec 2) (eval 3)) (+ (__import__ __globals__) __builtins__ exec eval))",
        "(define k1 2)\n(define (f1 a1) (* a1 k1))\n(let ((b1 1) (b2 2) (b3 3)) (+ (f1 i1) b1 b2 b3))"),
    "names colliding with generated ones": (
        "(+ v0 v1 c0 DT DEV torch _rt CONSTANTS DOMAIN nc_program MISSING SLOW TENSOR NCError Exception out kw "
        "extra self)",
        "(+ " + " ".join(f"i{k}" for k in range(19)) + ")"),
    "names with operator characters": (
        f"(lambda ({MARKER}/os $x! %y& *z:<=>? a^b~c+d-e@f) (+ {MARKER}/os $x! %y& *z:<=>? a^b~c+d-e@f))",
        "(lambda (p1 p2 p3 p4 p5) (+ p1 p2 p3 p4 p5))"),
    "comments": (
        f"; {MARKER} __import__('os').system('touch /tmp/{MARKER}')\n"
        f"#| {MARKER} \"\"\" ''' \\n exec('1') |# (+ x #;({MARKER} 1) 1) ; \"\n",
        "(+ x 1)"),
    "a newline-laden comment": (f"#| line one\n\r\n''' {MARKER}\n |# (* x 2)", "(* x 2)"),
    "numbers": ("(+ x 1e999 -1e999 1e-400 -0.0 +4 .5 6.674e-11 000123.4500)",
                "(+ x 1e999 -1e999 0 -0.0 4 0.5 6.674e-11 123.45)"),
    "a function name": (f"(define ({MARKER}-f a) (* a 2))\n({MARKER}-f x)", "(define (g a) (* a 2))\n(g x)"),
    "letrec and loops": (
        f"(letrec (({MARKER} (lambda (n acc) (if (<= n 0) acc ({MARKER} (- n 1) (+ acc n)))))) ({MARKER} 3 x))",
        "(letrec ((g (lambda (n acc) (if (<= n 0) acc (g (- n 1) (+ acc n)))))) (g 3 x))"),
}


@pytest.mark.parametrize("src, twin", INJECTION_PROGRAMS.values(), ids=list(INJECTION_PROGRAMS))
def test_generated_code_never_contains_user_text(src: str, twin: str) -> None:
    f, g = nc.compile_fn(src), nc.compile_fn(twin)
    assert len(f.inputs) == len(g.inputs)
    args = [t(2.0 ** k) for k in range(len(f.inputs))]  # distinct values: no two inputs may be confused
    out = f(*args)
    assert torch.equal(out, g(*args)) or (out.isnan().all() and g(*args).isnan().all())
    assert f.code() == g.code()
    assert f.code(*args) == g.code(*args)
    for code in (f.code(), f.code(*args)):
        ast.parse(code)
        assert MARKER not in code and "__import__" not in code and "system" not in code
        assert all(s in ("inf", "-inf", "nan") for s in generated_strings(code)), code


def test_names_equal_to_generated_ones_do_not_collide() -> None:
    src, _ = INJECTION_PROGRAMS["names colliding with generated ones"]
    f = nc.compile_fn(src)
    assert f(*[t(2.0 ** k) for k in range(len(f.inputs))]).item() == 2.0 ** len(f.inputs) - 1
    assert f(**{name: t(2.0 ** k) for k, name in enumerate(f.inputs)}).item() == 2.0 ** len(f.inputs) - 1


def test_numbers_reach_the_code_only_as_float_literals() -> None:
    f = nc.compile_fn("(+ x 1e999 0.1 -0.0 123456.789)")
    code = f.code()
    floats = [n.value for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Constant)
              and isinstance(n.value, float)]
    assert all(isinstance(v, float) for v in floats)
    assert f(t(1.0)).item() == math.inf


@pytest.mark.parametrize("src", [
    "(__import__('os').system 'echo pwned')",
    "(+ x \"__import__('os').system('echo pwned')\")",
    "(+ x os.system)",
    "(+ x (exec \"print(1)\"))",
    "(+ x `(1 2))",
    "(+ x #.(exec))",
    "(+ x {1 2})",
    "(+ x \\n)",
    "(+ x λ)",
    "(+ x a\u200bb)",
    "(+ x 1_000)",
    "(+ x 0x1F)",
    "(+ x 1e5j)",
])
def test_code_like_text_is_a_read_error(src: str) -> None:
    err = compile_error(src)
    assert type(err) is nc.ReadError, str(err)


def test_program_text_is_never_given_to_eval_or_exec(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    real = {name: getattr(builtins, name) for name in ("eval", "exec", "compile")}

    def spy(name: str) -> Callable[..., Any]:
        def wrapper(source: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(source, (str, bytes)):
                seen.append(source if isinstance(source, str) else source.decode("utf-8", "replace"))
            return real[name](source, *args, **kwargs)
        return wrapper

    for name in real:
        monkeypatch.setattr(builtins, name, spy(name))
    src = (f"; {MARKER}comment\n(define {MARKER}k 2.5)\n(define ({MARKER}f a) (* a {MARKER}k (sin a)))\n"
           f"(let* (({MARKER}a (+ {MARKER}x 1))) (if (> {MARKER}a 0) ({MARKER}f {MARKER}a) (/ 1 3)))")
    f = nc.compile_fn(src, name=f"{MARKER}file.nc")
    f(t(1.0, -3.0))
    f.code()
    m = nc.compile(src, trainable=[f"{MARKER}k"], name=f"{MARKER}file.nc")
    m(t(1.0))
    g = nc.compile_fn(src, check_domain=True)
    g(t(1.0))
    monkeypatch.undo()
    assert seen, "expected the lowering to compile generated source"
    leaked = [s for s in seen if MARKER in s]
    assert not leaked, f"program text reached eval/exec/compile: {leaked[0][:500]}"


def test_keyword_arguments_with_dunder_names_are_data() -> None:
    f = nc.compile_fn("(+ __import__ __class__)")
    assert f.inputs == ("__import__", "__class__")
    assert f(**{"__import__": t(1.0), "__class__": t(2.0)}).item() == 3.0
    err = raises(nc.CallError, lambda: f(**{"__import__": t(1.0), "__init__": t(2.0)}))
    assert "'__init__' is not an input" in err.message


def test_file_name_is_shown_verbatim_and_never_executed() -> None:
    name = "x'); __import__('os').system('echo pwned'); ('\n.nc"
    err = compile_error("(sqrtt x)", name=name)
    assert str(err).startswith(name + ":1:2: error:")
    f = nc.compile_fn("(* 2 x)", name=name)
    assert "__import__" not in f.code()


# ---- issue 8: escapes, option validation, runtime spans, tracers ------------------------------
@pytest.mark.parametrize("src", ["(vmax (zeros 0))", "(vmin (zeros 0))", "(vmax (eye 0))", "(vmin (eye 0))",
                                 "(roll [1 2 3] 1e19)"])
def test_empty_reductions_and_huge_static_ints_are_errors_at_the_primitive(src: str) -> None:
    with pytest.raises(nc.NCError) as info:
        nc.compile_fn(src)()
    assert (info.value.line, info.value.column) == (1, 1 if "roll" not in src else 15)


@pytest.mark.parametrize("options", [
    {"max_iter": 10**30}, {"max_iter": True}, {"max_iter": 0}, {"max_iter": 2.0},
    {"shapes": {"u": (10**11,)}}, {"shapes": {"u": (float("inf"),)}}, {"shapes": [("u", (3,))]},
    {"shapes": {1: (3,)}}, {"shapes": {"u": (3.5,)}}, {"shapes": {"u": ("3",)}}, {"shapes": {"u": (True,)}},
    {"shapes": {"u": (-1,)}}, {"shapes": {"u": "3"}}, {"shapes": {"u": (1,) * 9}}, {"check_domain": "yes"},
    {"name": 3}, {"module_shapes": {"m": (None,)}},
])
def test_bad_compile_options_are_call_errors(options: dict) -> None:
    with pytest.raises(nc.CallError):
        nc.compile_fn("(vsum u)", **options)


def test_a_runtime_failure_points_at_the_failing_primitive() -> None:
    # Several primitives inlined on one generated line: the failing one is located exactly.
    f = nc.compile_fn("(+ (sin x)\n   (vmin v))")
    with pytest.raises(nc.NCError) as info:
        f(torch.tensor(1.0), torch.zeros(0))
    assert (info.value.line, info.value.column) == (2, 4)
    g = nc.compile_fn("(+ 1 (* 2 (det m)))")
    with pytest.raises(nc.NCError) as info:
        g(torch.eye(2, dtype=torch.float16))
    assert (info.value.line, info.value.column) == (1, 11)


@pytest.mark.slow
def test_export_leaves_the_function_and_its_caches_real() -> None:
    for shapes in ({"x": (None,)}, {"x": (3,)}):  # the size-generic function, and one per signature
        f = nc.compile_fn("(* 2 (+ x [1 2 3]))", shapes=shapes)
        x = torch.tensor([1.0, 2.0, 3.0])

        class M(torch.nn.Module):
            def __init__(self, fn: object) -> None:
                super().__init__()
                self.fn = fn

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return self.fn(x)  # type: ignore[operator]

        exported = torch.export.export(M(f), (torch.ones(4, 3),))
        after = f(x)
        assert type(after) is torch.Tensor and torch.equal(after, 2 * (x + torch.tensor([1.0, 2.0, 3.0])))
        assert torch.equal(exported.module()(torch.ones(4, 3)), torch.full((4, 3), 2.0) * torch.tensor([2.0, 3, 4]))
