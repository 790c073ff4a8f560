"""The reader (LANGUAGE.md section 1): tables of (source, forms) and (source, error position).

Forms are compared as plain Python data: a symbol is its name (a str), a number its float
value, a list a Python list. ``[a b]`` reads as ``(vec a b)``.
"""

from __future__ import annotations

import math

import pytest

import nc
from nc.errors import LimitError, ReadError, Source
from nc.reader import Lst, Num, Sym, read


def plain(form):
    """A form as plain data, with an explicit stack (forms may be deep)."""
    if isinstance(form, Sym):
        return form.name
    if isinstance(form, Num):
        return form.value
    assert isinstance(form, Lst)
    return [plain(f) for f in form.items]


def read_plain(src: str) -> list:
    return [plain(f) for f in read(src)]


# ---- numbers ------------------------------------------------------------------------------------
NUMBERS = [
    ("3", 3.0),
    ("-2", -2.0),
    (".5", 0.5),
    ("0.5", 0.5),
    ("+4", 4.0),
    ("6.674e-11", 6.674e-11),
    ("1E3", 1000.0),
    ("1e3", 1000.0),
    ("-2.5e-3", -2.5e-3),
    ("-.5", -0.5),
    ("+.5e+2", 50.0),
    ("1.", 1.0),
    ("007", 7.0),
    ("0", 0.0),
    ("-0", -0.0),
]


@pytest.mark.parametrize("src, value", NUMBERS)
def test_numbers(src, value):
    (form,) = read(src)
    assert isinstance(form, Num)
    assert form.value == value
    assert math.copysign(1.0, form.value) == math.copysign(1.0, value)  # -0 keeps its sign


def test_every_number_is_a_real():
    (form,) = read("3")
    assert type(form.value) is float
    f = nc.compile_fn("(/ 1 2)")
    assert f().item() == 0.5


@pytest.mark.parametrize("src, value", [("#t", 1.0), ("#f", 0.0), ("#true", 1.0), ("#false", 0.0)])
def test_booleans_read_as_numbers(src, value):
    (form,) = read(src)
    assert isinstance(form, Num) and form.value == value


# ---- lists, brackets, identifiers ---------------------------------------------------------------
FORMS = [
    ("(+ 1 2)", [["+", 1.0, 2.0]]),
    ("[1 2 3]", [["vec", 1.0, 2.0, 3.0]]),
    ("[]", [["vec"]]),
    ("()", [[]]),
    ("[a [b c]]", [["vec", "a", ["vec", "b", "c"]]]),
    ("(f [x y] (g))", [["f", ["vec", "x", "y"], ["g"]]]),
    ("a b", ["a", "b"]),
    ("(a\n  b)\n(c)", [["a", "b"], ["c"]]),
    ("(a\tb)", [["a", "b"]]),
    ("", []),
    # identifiers
    ("g/L", ["g/L"]),
    ("v->x", ["v->x"]),
    ("theta_dot", ["theta_dot"]),
    ("dx2", ["dx2"]),
    ("x y X", ["x", "y", "X"]),
    ("- + * / <= >= =", ["-", "+", "*", "/", "<=", ">=", "="]),
    ("zero? set! a%b $x ~y ^z @w :k &r", ["zero?", "set!", "a%b", "$x", "~y", "^z", "@w", ":k", "&r"]),
    ("->x -x +y", ["->x", "-x", "+y"]),
    # comments: line, block (nested), datum
    ("a ; comment\nb", ["a", "b"]),
    ("; only\n; comments\n x", ["x"]),
    ("(a ; to end of line ) ]\n b)", [["a", "b"]]),
    ("(a #| block |# b)", [["a", "b"]]),
    ("(a #| x #| nested |# still comment |# b)", [["a", "b"]]),
    ("#| multi\n line\n |# x", ["x"]),
    ("(a #|x|#b)", [["a", "b"]]),
    ("(a #;(b c) d)", [["a", "d"]]),
    ("(a #; b c)", [["a", "c"]]),
    ("#;(define x 1) 2", [2.0]),
    ("#;#;a b c", ["c"]),
    ("(+ 1 #;[2 3] 4)", [["+", 1.0, 4.0]]),
    ("#| ( [ unbalanced in a comment |# (x)", [["x"]]),
    ("; ( [\n(x)", [["x"]]),
]


@pytest.mark.parametrize("src, forms", FORMS)
def test_forms(src, forms):
    assert read_plain(src) == forms


def test_bracket_flag_and_spans():
    src = "(f\n  [a 2])"
    (form,) = read(src)
    inner = form.items[1]
    assert isinstance(inner, Lst) and inner.bracket
    assert not form.bracket
    assert (inner.span.line, inner.span.column) == (2, 3)
    assert inner.span.end_position == (2, 7)
    a = inner.items[1]
    assert isinstance(a, Sym) and a.name == "a"
    assert (a.span.line, a.span.column) == (2, 4)
    two = inner.items[2]
    assert (two.span.line, two.span.column) == (2, 6)


def test_identifiers_are_case_sensitive():
    f = nc.compile_fn("(- X x)")
    assert f.inputs == ("X", "x")
    assert f(5.0, 2.0).item() == 3.0


def test_deep_nesting_within_the_limit_reads_without_recursion():
    depth = 900
    forms = read("(" * depth + ")" * depth)
    node, seen = forms[0], 1
    while node.items:
        node, seen = node.items[0], seen + 1
    assert seen == depth


def test_nesting_past_the_limit_is_a_limit_error():
    with pytest.raises(LimitError) as info:
        read("[" * 100_000 + "]" * 100_000)
    assert info.value.line == 1
    assert isinstance(info.value, nc.NCError)


# ---- errors -------------------------------------------------------------------------------------
# (source, line, column, class, text the message must contain)
ERRORS = [
    ("(+ 1 2", 1, 1, ReadError, "never closed"),
    ("(a\n  (b c)\n  (d", 3, 3, ReadError, "never closed"),
    ("[1 2", 1, 1, ReadError, "never closed"),
    ("(+ 1 2))", 1, 8, ReadError, "unexpected ')'"),
    (")", 1, 1, ReadError, "unexpected ')'"),
    ("x\n  ]", 2, 3, ReadError, "unexpected ']'"),
    ("(+ 1 2]", 1, 7, ReadError, "']' closes the '('"),
    ("[1 2)", 1, 5, ReadError, "')' closes the '['"),
    ("(a\n [b c)\n)", 2, 6, ReadError, "closes the '[' opened at line 2, column 2"),
    ("2.3.4", 1, 1, ReadError, "'2.3.4' is not a number"),
    ("1e", 1, 1, ReadError, "'1e' is not a number"),
    ("(+ 1e x)", 1, 4, ReadError, "'1e' is not a number"),
    ("1e3.5", 1, 1, ReadError, "not a number"),
    ("1/2", 1, 1, ReadError, "not a number"),
    ("3x", 1, 1, ReadError, "not a number"),
    ('"abc"', 1, 1, ReadError, "cannot appear"),
    ('(f "abc")', 1, 4, ReadError, "cannot appear"),
    ("'x", 1, 1, ReadError, "cannot appear"),
    ("(f 'x)", 1, 4, ReadError, "cannot appear"),
    ("`x", 1, 1, ReadError, "cannot appear"),
    ("(f x, y)", 1, 5, ReadError, "','"),
    ("{a}", 1, 1, ReadError, "'{'"),
    ("(np.exp x)", 1, 2, ReadError, "'np.exp' is not an nc name"),
    ("(math.sin x)", 1, 2, ReadError, "'math.sin'"),
    ("(torch.exp x)", 1, 2, ReadError, "'torch.exp'"),
    ("a.b", 1, 1, ReadError, "'.' can appear only in numbers"),
    ("(a . b)", 1, 4, ReadError, "dotted pairs"),
    ("#x", 1, 1, ReadError, "not valid syntax"),
    ("(λ x)", 1, 2, ReadError, "'λ'"),
    ("#| never closed", 1, 1, ReadError, "block comment is never closed"),
    ("(a\n  #| b #| c |# d", 2, 3, ReadError, "block comment is never closed"),
    ("x #;", 1, 3, ReadError, "'#;' has no datum"),
]


@pytest.mark.parametrize("src, line, column, cls, text", ERRORS)
def test_read_errors(src, line, column, cls, text):
    with pytest.raises(cls) as info:
        read(src)
    err = info.value
    assert (err.line, err.column) == (line, column)
    assert text in err.message
    assert isinstance(err, nc.NCError) and err.code == "NC100"


@pytest.mark.parametrize("src, line, column, cls, text", ERRORS)
def test_read_errors_reach_compile_fn_rendered_with_a_caret(src, line, column, cls, text):
    with pytest.raises(cls) as info:
        nc.compile_fn(src, name="prog.nc")
    rendered = str(info.value)
    head, shown, caret, *rest = rendered.splitlines()
    assert head.startswith(f"prog.nc:{line}:{column}: error: ")
    assert shown.endswith(Source(src).line_text(line).expandtabs(1))
    # the caret sits under the column the error names
    bar = shown.index("|")
    assert caret.index("|") == bar
    assert caret.index("^") - (bar + 2) == column - 1


# Errors whose hint says what to write instead.
HINTS = [
    ("(np.exp x)", "write (exp ...)"),
    ("(numpy.sqrt x)", "write (sqrt ...)"),
    ('(f "s")', "strings are not part of the nc language"),
    ("'(1 2)", "[1 2 3]"),
    ("(f a, b)", "separate arguments with spaces"),
    ("2.3.4", "numbers look like"),
    ("(+ 1 2", "add ')'"),
    ("(+ 1 2]", "use ')'"),
    ("#| x", "end it with '|#'"),
]


@pytest.mark.parametrize("src, hint", HINTS)
def test_read_error_hints(src, hint):
    with pytest.raises(ReadError) as info:
        read(src)
    assert info.value.hint is not None and hint in info.value.hint
    assert f"hint: {info.value.hint}" in str(info.value)


def test_error_span_covers_the_bad_atom():
    with pytest.raises(ReadError) as info:
        read("(* 2 2.3.4)")
    err = info.value
    assert (err.line, err.column, err.end_line, err.end_column) == (1, 6, 1, 10)
    assert str(err).splitlines()[2].endswith("^~~~~")


def test_to_dict_is_json_ready():
    with pytest.raises(ReadError) as info:
        nc.compile_fn("(+ 1\n   2.3.4)", name="f.nc")
    d = info.value.to_dict()
    assert d == {
        "code": "NC100",
        "class": "ReadError",
        "message": d["message"],
        "hint": d["hint"],
        "file": "f.nc",
        "line": 2,
        "column": 4,
        "end_line": 2,
        "end_column": 8,
    }


@pytest.mark.parametrize("src", ["(f (g #;) (h x))", "(+ (- 1 #;) (* 2 3))"])
def test_datum_comment_with_nothing_before_the_closing_bracket_is_an_error(src):
    with pytest.raises(ReadError) as info:
        read(src)
    assert info.value.column == src.index("#;") + 1


# ---- ASCII only: whitespace, digits, line breaks ------------------------------------------------
# Whitespace is exactly space, tab, LF, CR and form feed (nc.reader.WHITESPACE); lines end at LF,
# CRLF (one break) or a lone CR. Everything else, Unicode look-alikes included, is a ReadError.
WHITESPACE_FORMS = [
    ("(a b)", [["a", "b"]]),
    ("(a\tb)", [["a", "b"]]),
    ("(a\nb)", [["a", "b"]]),
    ("(a\rb)", [["a", "b"]]),
    ("(a\r\nb)", [["a", "b"]]),
    ("(a\fb)", [["a", "b"]]),
    ("a ; comment\rb", ["a", "b"]),  # a lone CR ends a line comment
    ("a ; comment\r\nb", ["a", "b"]),
]


@pytest.mark.parametrize("src, forms", WHITESPACE_FORMS, ids=[repr(s) for s, _ in WHITESPACE_FORMS])
def test_ascii_whitespace_separates_tokens(src, forms):
    assert read_plain(src) == forms


# (source, line, column, text the message must contain, text the hint must contain)
NON_ASCII = [
    ("(+ x \u0663)", 1, 6, "'\u0663' (U+0663)", "ASCII digits"),  # ARABIC-INDIC DIGIT THREE
    ("(+ x \uff11)", 1, 6, "U+FF11", "ASCII digits"),  # FULLWIDTH DIGIT ONE
    ("(+ x 1\u0660)", 1, 7, "U+0660", "ASCII digits"),
    ("\u0661e3", 1, 1, "U+0661", "ASCII digits"),
    ("(+ x\u00a01)", 1, 5, "U+00A0", "separate tokens"),  # NO-BREAK SPACE
    ("(+ x\u20281)", 1, 5, "U+2028", "separate tokens"),  # LINE SEPARATOR
    ("(+ x\u20291)", 1, 5, "U+2029", "separate tokens"),  # PARAGRAPH SEPARATOR
    ("(+ x\u30001)", 1, 5, "U+3000", "separate tokens"),  # IDEOGRAPHIC SPACE
    ("(+ x\u00851)", 1, 5, "U+0085", "separate tokens"),  # NEXT LINE
    ("(+ x\x1c1)", 1, 5, "U+001C", "separate tokens"),  # FILE SEPARATOR (str.splitlines breaks there)
    ("(+ x\x1f1)", 1, 5, "U+001F", "separate tokens"),
    ("(+ x\x0b1)", 1, 5, "U+000B", "separate tokens"),  # vertical tab
    ("(+ x \x00)", 1, 6, "U+0000", None),
    ("(+ x \udcff)", 1, 6, "U+DCFF", "ASCII"),  # a byte that was not UTF-8, kept by surrogateescape
    ("(caf\u00e9 x)", 1, 5, "'\u00e9' (U+00E9)", "ASCII"),
    ("(+ x \U0001f600)", 1, 6, "U+1F600", "ASCII"),
]


@pytest.mark.parametrize("src, line, column, text, hint", NON_ASCII, ids=[ascii(s) for s, *_ in NON_ASCII])
def test_non_ascii_is_a_read_error_at_the_character(src, line, column, text, hint):
    with pytest.raises(ReadError) as info:
        nc.compile_fn(src)
    err = info.value
    assert (err.line, err.column, err.end_line, err.end_column) == (line, column, line, column)  # one character
    assert text in err.message and "cannot appear in a program" in err.message
    assert hint is None or (err.hint is not None and hint in err.hint)


# (source, line, column) of the error (at the `1` called as a function, or the bad number): a lone CR and LF are one break each, CRLF is one break
LINE_BREAKS = [
    ("(+ x\r(1 2))", 2, 2),
    ("(+ x\r\n(1 2))", 2, 2),
    ("(+ x\n\r(1 2))", 3, 2),  # LF then CR: two breaks
    ("(+ x\r\r\n(1 2))", 3, 2),  # CR then CRLF: two breaks
    ("(+ x\r\r(1 2))", 3, 2),
    ("(+ x\n\n(1 2))", 3, 2),
    ("(+ x\r\n\r\n  2.3.4)", 3, 3),
    ("; comment\r  (+ x\r   (1 2))", 3, 5),
    ("#| a\r b |# (+ x\r\n (1 2))", 3, 3),
    ("(+ 1\r 2.3.4)", 2, 2),
    ("(+ 1\r\n 2.3.4)", 2, 2),
]


@pytest.mark.parametrize("src, line, column", LINE_BREAKS, ids=[ascii(s) for s, *_ in LINE_BREAKS])
def test_line_and_column_after_each_kind_of_line_break(src, line, column):
    with pytest.raises(nc.NCError) as info:
        nc.compile_fn(src, name="p.nc")
    err = info.value
    assert (err.line, err.column) == (line, column)
    assert str(err).startswith(f"p.nc:{line}:{column}: error: ")
    shown = str(err).splitlines()[1]
    assert "\r" not in shown and shown.endswith(Source(src).line_text(line))


def test_line_text_stops_at_every_kind_of_line_break():
    src = Source("a\rb\r\nc\nd")
    assert [src.line_text(i) for i in range(1, 5)] == ["a", "b", "c", "d"]
    assert [src.position(i) for i in (0, 2, 5, 7)] == [(1, 1), (2, 1), (3, 1), (4, 1)]


@pytest.mark.parametrize("src", [s for s, *_ in NON_ASCII], ids=[ascii(s) for s, *_ in NON_ASCII])
def test_the_reference_evaluator_reads_the_same_characters(src):
    import refeval  # tests/refeval.py: the independent reader the property tests compare with

    with pytest.raises(refeval.RefError):
        refeval.read(src)
    assert [refeval.read(s) for s, _ in WHITESPACE_FORMS] == [read_plain(s) for s, _ in WHITESPACE_FORMS]
