"""The parser (LANGUAGE.md sections 2 and 3): error rows with exact positions, the input order
rule, `pi`, and shadowing."""

from __future__ import annotations

import math

import pytest
import torch

import nc
from nc.errors import ArityError, NCTypeError, SyntaxFormError, UnboundNameError
from nc.parse import parse

# (source, line, column, class, text in the message, text in the hint or None)
ERRORS = [
    # unknown functions, with "did you mean"
    ("(sine x)", 1, 2, UnboundNameError, "unknown function 'sine'", "`sin`"),
    ("(sqrtt x)", 1, 2, UnboundNameError, "unknown function 'sqrtt'", "did you mean `sqrt`?"),
    ("(* 2\n   (cosine x))", 2, 5, UnboundNameError, "'cosine'", "`cos`"),
    ("(define (square-sum a b) (+ (* a a) (* b b)))\n(square-summ x y)", 2, 2, UnboundNameError,
     "'square-summ'", "`square-sum`"),
    ("(let ((velocity 1)) (velocty x))", 1, 22, UnboundNameError, "'velocty'", None),
    # foreign spellings, with what to write instead
    ("(** x 2)", 1, 2, UnboundNameError, "'**'", "(pow x y)"),
    ("(sqr x)", 1, 2, UnboundNameError, "'sqr'", "(square x)"),
    ("(arctan2 y x)", 1, 2, UnboundNameError, "'arctan2'", "(atan y x)"),
    ("(set! x 1)", 1, 2, UnboundNameError, "'set!'", "pure"),
    ("(+ 1 (define-values (a b) (f)))", 1, 7, UnboundNameError, "'define-values'", "(define name expr)"),
    ("(mod a b)", 1, 2, UnboundNameError, "'mod'", "(modulo a b)"),
    ("(ln x)", 1, 2, UnboundNameError, "'ln'", "(log x)"),
    ("(begin x)", 1, 2, UnboundNameError, "'begin'", "let*"),
    # arity of primitives
    ("(sin x y)", 1, 1, ArityError, "sin takes 1 argument, got 2", None),
    ("(+ 1\n  (atan 1 2 3))", 2, 3, ArityError, "atan takes 1 or 2 arguments, got 3", None),
    ("(clamp x 1)", 1, 1, ArityError, "clamp takes 3 arguments, got 2", "(clamp x lo hi)"),
    ("(vec)", 1, 1, ArityError, "vec takes 1+ arguments, got 0", None),
    ("(-)", 1, 1, ArityError, "- takes 1+", None),
    ("(pow x)", 1, 1, ArityError, "pow takes 2 arguments, got 1", None),
    # arity of user functions
    ("(define (f a b) (+ a b))\n(f x)", 2, 1, ArityError, "'f' takes 2 arguments, got 1", None),
    ("(define (g a) a)\n(* 2 (g x y))", 2, 6, ArityError, "'g' takes 1 argument, got 2", None),
    ("(letrec ((h (lambda (n) n))) (h))", 1, 30, ArityError, "'h' takes 1 argument, got 0", None),
    ("(euler (lambda (y) y) x 0.1 3)", 1, 8, ArityError, "takes 2 arguments (t y)", None),
    ("(rk4 (lambda (t y) y) x 0.1)", 1, 1, ArityError, "rk4 takes 4 arguments", None),
    # if / cond
    ("(cond ((> x 0) x))", 1, 1, SyntaxFormError, "cond needs an (else e) clause", None),
    ("(cond ((> x 0) x) (else 1) ((< x 0) 2))", 1, 1, SyntaxFormError, "(else e) clause at the end", None),
    ("(cond ((> x 0) x 1) (else 0))", 1, 7, SyntaxFormError, "a cond clause is (test expr)", None),
    # recur
    ("(recur x)", 1, 1, SyntaxFormError, "recur is allowed only inside a loop", "(loop"),
    ("(define (f a) (recur a))\n(f x)", 1, 15, SyntaxFormError, "recur is allowed only inside a loop", None),
    ("(loop ((i 0)) (+ 1 (recur i)))", 1, 20, SyntaxFormError, "must be in tail position", "last thing"),
    ("(loop ((i 0))\n  (if (> i 3) i (+ 1 (recur (+ i 1)))))", 2, 22, SyntaxFormError, "tail position", None),
    ("(loop ((i 0)) (if (recur 1) 1 2))", 1, 19, SyntaxFormError, "tail position", None),
    ("(loop ((i 0)) (if (> i x) i (recur 1 2)))", 1, 29, ArityError, "recur takes 1 argument", None),
    # define in the wrong place, duplicates
    ("(let ((y (define z 1))) y)", 1, 10, SyntaxFormError, "define is allowed only at the top level", "let"),
    ("(+ 1\n   (define z 1))", 2, 4, SyntaxFormError, "define is allowed only at the top level", None),
    ("(define a 1)\n(define a 2)\na", 2, 9, SyntaxFormError, "'a' is already defined", None),
    ("(define (f x) x)\n(define (f y) y)\n(f 1)", 2, 10, SyntaxFormError, "'f' is already defined", None),
    ("(define f 1)\n(define (f y) y)\n(f 1)", 2, 10, SyntaxFormError, "'f' is already defined", None),
    ("(define (f x) x)", 1, 1, SyntaxFormError, "ends with a define", None),
    # lambda in a disallowed place
    ("(+ 1 (lambda (x) x))", 1, 6, SyntaxFormError, "lambda is allowed only", "first-order"),
    ("(let ((f (lambda (x) x))) (f 2))", 1, 10, SyntaxFormError, "lambda is allowed only", None),
    ("(define (g h) h)\n(g (lambda (x) x))", 2, 4, SyntaxFormError, "lambda is allowed only", None),
    # empty program, two results
    ("", 1, 1, SyntaxFormError, "the program is empty", None),
    ("  ; just a comment\n", 1, 1, SyntaxFormError, "the program is empty", None),
    ("(+ x 1)\n(* x 2)", 1, 1, SyntaxFormError, "only the last top-level expression is the result", None),
    ("(define k 1)\nk\n(* k x)", 2, 1, SyntaxFormError, "only the last top-level expression", None),
    # calling a value
    ("(let ((k 2)) (k x))", 1, 15, NCTypeError, "'k' is a value, not a function", None),
    ("(define k 2)\n(k 1)", 2, 2, NCTypeError, "'k' is a constant, not a function", None),
    ("(3 x)", 1, 2, NCTypeError, "a number cannot be called", "(* a b)"),
    ("((f) x)", 1, 2, NCTypeError, "only names can be called", None),
    ("(define (f a) (a 1))\n(f x)", 1, 16, NCTypeError, "'a' is a value, not a function", None),
    # using a function as a value
    ("(define (f a) a)\n(+ f 1)", 2, 4, NCTypeError, "'f' is a function, not a value", "(f ...)"),
    ("(+ sin 1)", 1, 4, NCTypeError, "'sin' is a primitive, not a value", "(sin ...)"),
    ("(letrec ((f (lambda (n) n))) (* f 2))", 1, 33, NCTypeError, "'f' is a function, not a value", None),
    ("(define (f a) a)\n(define (g h) h)\n(g f)", 3, 4, NCTypeError, "function, not a value", None),
    ("(* 2 if)", 1, 6, SyntaxFormError, "'if' is a special form, not a value", None),
    # malformed binding forms
    ("(let ((x 1) (x 2)) x)", 1, 14, SyntaxFormError, "'x' is bound twice", None),
    ("(lambda (x x) x)", 1, 12, SyntaxFormError, "parameter 'x' appears twice", None),
    ("(let ((if 1)) if)", 1, 8, SyntaxFormError, "'if' is a special form and cannot be bound", None),
    ("(let (x 1) x)", 1, 7, SyntaxFormError, "a let binding is (name expr)", None),
    ("(let x)", 1, 1, SyntaxFormError, "let takes bindings and one body", None),
    ("(letrec ((f 1)) (f))", 1, 13, SyntaxFormError, "a letrec binding must be a lambda", "let"),
    ("()", 1, 1, SyntaxFormError, "() is not an expression", None),
    ("(define (f a) (define b a))\n(f 1)", 1, 15, SyntaxFormError, "define is allowed only at the top level", None),
]


@pytest.mark.parametrize("src, line, column, cls, message, hint", ERRORS)
def test_parse_errors(src, line, column, cls, message, hint):
    with pytest.raises(cls) as info:
        nc.compile_fn(src, name="p.nc")
    err = info.value
    assert type(err) is cls
    assert (err.line, err.column) == (line, column), str(err)
    assert message in err.message
    if hint is not None:
        assert err.hint is not None and hint in err.hint
        assert f"hint: {err.hint}" in str(err)
    assert str(err).startswith(f"p.nc:{line}:{column}: error: ")
    assert "^" in str(err)


def test_unknown_name_suggests_several_close_names():
    with pytest.raises(UnboundNameError) as info:
        nc.compile_fn("(sine x)")
    hint = info.value.hint
    assert hint is not None and hint.startswith("did you mean `sin`")
    assert "`sinh`" in hint


def test_unknown_name_suggests_user_functions_and_locals():
    with pytest.raises(UnboundNameError) as info:
        nc.compile_fn("(define (kinetic m v) (* 0.5 m v v))\n(kinetik m v)")
    assert "`kinetic`" in info.value.hint


def test_error_span_covers_the_whole_call_for_arity():
    with pytest.raises(ArityError) as info:
        nc.compile_fn("(* 2 (sin x y))")
    err = info.value
    assert (err.line, err.column, err.end_line, err.end_column) == (1, 6, 1, 14)


def test_if_without_else_is_an_arity_error():
    # A special form given the wrong number of parts is an ArityError, like a primitive (docs/errors.md).
    with pytest.raises(nc.ArityError):
        nc.compile_fn("(if (> x 0) x)")


def test_if_without_else_is_an_error_with_position_and_hint():
    with pytest.raises(nc.NCError) as info:
        nc.compile_fn("(+ 1\n  (if (> x 0) x))")
    err = info.value
    assert (err.line, err.column) == (2, 3)
    assert "else" in err.message and "else" in err.hint


def test_top_level_define_values_has_its_hint():
    with pytest.raises(nc.NCError) as info:
        nc.compile_fn("(define-values (a b) (values 1 2))\n(+ a b)")
    assert info.value.hint is not None and "define each value" in info.value.hint


def test_top_level_define_values_is_an_error_with_position():
    with pytest.raises(SyntaxFormError) as info:
        nc.compile_fn("(define k 1)\n(define-values (a b) (values 1 2))\n(+ a b)")
    assert (info.value.line, info.value.column) == (2, 1)


# ---- the inputs of a program ------------------------------------------------------------------
INPUTS = [
    ("(+ b a)", ("b", "a")),
    ("(* x x y x)", ("x", "y")),
    ("(+ g/L v->x theta_dot)", ("g/L", "v->x", "theta_dot")),
    # free names of used definitions count at their place in the source text
    ("(define (f x) (* x k))\n(+ (f a) b)", ("k", "a", "b")),
    ("(define (f x) (* x k))\n(+ b (f a))", ("k", "b", "a")),
    ("(define (g) (* z w))\n(define (f x) (+ x (g) y))\n(f a)", ("z", "w", "y", "a")),
    ("(define (f x) (+ x (g) y))\n(define (g) (* z w))\n(f a)", ("y", "z", "w", "a")),
    ("(define c0 (* 2 q))\n(+ p c0)", ("q", "p")),
    # unused definitions contribute nothing
    ("(define (unused) (* q 2))\n(+ a 1)", ("a",)),
    ("(define junk (* q 2))\n(+ a 1)", ("a",)),
    # bound names are not inputs; a name both bound and free is an input by its free use
    ("(let* ((a x) (b (* a y))) b)", ("x", "y")),
    ("(+ (let ((y 2)) y) y x)", ("y", "x")),
    ("(+ x (let ((x 2)) x) y)", ("x", "y")),
    ("(let ((x x)) (* x y))", ("x", "y")),
    ("(loop ((i 0) (s x)) (if (> i n) s (recur (+ i 1) (* s r))))", ("x", "n", "r")),
    # a lambda result: its parameters first, in order, then other free names
    ("(lambda (b a) (+ a b c))", ("b", "a", "c")),
    ("(lambda (b a) (+ c a b d))", ("b", "a", "c", "d")),
    ("(lambda (x unused) (* k x))", ("x", "unused", "k")),
    ("(lambda () (* k 2))", ("k",)),
    # pi is predefined
    ("(* pi r r)", ("r",)),
    ("(* 2 pi)", ()),
]


@pytest.mark.parametrize("src, inputs", INPUTS)
def test_inputs_in_order(src, inputs):
    assert nc.compile_fn(src).inputs == inputs
    assert parse(src).inputs == inputs


def test_input_spans_point_at_first_free_occurrence():
    program = parse("(define (f x) (* x k))\n(+ (f a)\n   (* a k b))")
    spans = dict(zip(program.inputs, program.input_spans))
    assert (spans["k"].line, spans["k"].column) == (1, 20)
    assert (spans["a"].line, spans["a"].column) == (2, 7)
    assert (spans["b"].line, spans["b"].column) == (3, 11)


def test_inputs_by_keyword_follow_the_order():
    f = nc.compile_fn("(lambda (b a) (- a b))")
    assert f(1.0, 5.0).item() == 4.0
    assert f(a=5.0, b=1.0).item() == 4.0
    g = nc.compile_fn("(- g/L v->x)")
    assert g(**{"v->x": 1.0, "g/L": 5.0}).item() == 4.0


# ---- pi and shadowing ---------------------------------------------------------------------------
def value(src, *args):
    return nc.compile_fn(src)(*(torch.tensor(a, dtype=torch.float64) for a in args)).item()


def test_pi_is_predefined_to_full_precision():
    assert value("(* pi r)", 1.0) == math.pi


SHADOWING = [
    # pi shadowed by let, parameters and a top-level define
    ("(let ((pi 3)) (* pi r))", (2.0,), 6.0),
    ("(define (f pi) (* 2 pi))\n(* x (f 3))", (1.0,), 6.0),
    ("(define pi 3)\n(* pi x)", (2.0,), 6.0),
    ("(loop ((pi 3)) (* pi x))", (2.0,), 6.0),
    # primitive names shadowed by let, let*, parameters and defines
    ("(let ((sin 2)) (* sin x))", (3.0,), 6.0),
    ("(let* ((max 2) (min (* max 3))) (+ max min x))", (1.0,), 9.0),
    ("(define (f exp) (* exp 2))\n(f x)", (3.0,), 6.0),
    ("(define max 5)\n(* max x)", (2.0,), 10.0),
    ("(define (sin x) (* 2 x))\n(sin y)", (3.0,), 6.0),
    ("(letrec ((cos (lambda (t) (* t t)))) (cos x))", (3.0,), 9.0),
    # an inner binding shadows an outer one; the outer one is back after the let
    ("(+ (let ((x 10)) x) x)", (1.0,), 11.0),
    ("(let ((a 1)) (+ (let ((a 2)) a) a))", (), 3.0),
    ("(let ((a x)) (let ((a (* a 2))) (* a 3)))", (1.0,), 6.0),
    # a let's bindings are parallel, let*'s sequential
    ("(let ((x 1)) (let ((x 2) (y x)) y))", (), 1.0),
    ("(let ((x 1)) (let* ((x 2) (y x)) y))", (), 2.0),
]


@pytest.mark.parametrize("src, args, expected", SHADOWING)
def test_shadowing(src, args, expected):
    assert value(src, *args) == expected


def test_shadowing_a_primitive_only_lasts_for_its_scope():
    assert value("(+ (let ((sin 2)) sin) (sin x))", 0.5) == 2.0 + torch.sin(torch.tensor(0.5, dtype=torch.float64)).item()


def test_a_local_value_named_like_a_primitive_cannot_be_called():
    with pytest.raises(NCTypeError) as info:
        nc.compile_fn("(let ((sin 2)) (sin x))")
    assert (info.value.line, info.value.column) == (1, 17)


LAMBDA_SHADOWING = [
    ("(lambda (pi) (* 2 pi))", (5.0,), 10.0),
    ("(lambda (sin) (* sin 2))", (5.0,), 10.0),
    ("(lambda (x max) (* x max))", (2.0, 3.0), 6.0),
    ("(define k 2)\n(lambda (k) (* k 3))", (5.0,), 15.0),
]


@pytest.mark.parametrize("src, args, expected", LAMBDA_SHADOWING)
def test_lambda_result_parameters_shadow(src, args, expected):
    assert value(src, *args) == expected


def test_forward_references_between_definitions():
    src = "(define (f x) (* 2 (g x)))\n(define (g x) (+ x c))\n(define c 1)\n(f y)"
    assert value(src, 3.0) == 8.0


def test_constant_referring_to_itself_is_an_error():
    with pytest.raises(NCTypeError) as info:
        nc.compile_fn("(define a (+ b 1))\n(define b (* a 2))\n(* a x)")
    assert info.value.line in (1, 2)
    assert "refers to itself" in info.value.message
