"""`nc check` reports every error it can find, not only the first."""

from __future__ import annotations

import json

from nc.cli import main
from nc.diagnostics import check

PROGRAM = """(define a (sqrtt x))
(define (f y) (+ y (sine y)))
(define b (cross [1 2] [3 4]))
(+ a (f b))
"""


def test_check_finds_an_error_in_each_definition() -> None:
    problems = check(PROGRAM, name="multi.nc")
    assert [(p.line, p.column, type(p).__name__) for p in problems] == [
        (1, 12, "UnboundNameError"), (2, 21, "UnboundNameError"), (3, 11, "ShapeError")]
    # the positions and rendered lines are those of the original text
    assert "(define (f y) (+ y (sine y)))" in str(problems[1])


def test_check_stops_at_an_error_outside_a_definition_body() -> None:
    problems = check("(define a (sqrtt x))\n(+ a (cosine a))\n")
    assert [(p.line, p.column) for p in problems] == [(1, 12), (2, 7)]
    assert check("(+ 1") and len(check("(+ 1")) == 1  # a read error ends the search


def test_check_json_lists_every_error(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "multi.nc"
    path.write_text(PROGRAM)
    assert main(["check", "--json", str(path)]) == 1
    assert [d["line"] for d in json.loads(capsys.readouterr().out)] == [1, 2, 3]
    path.write_text("(define k 2) (* k x)")
    assert main(["check", str(path)]) == 0
