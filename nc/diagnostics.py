"""`check`: the diagnostics of a program without running it (used by ``nc check``).

Compiling stops at the first error. To report more than one, `check` then replaces the body of
the top-level definition that holds the error by ``0`` (padded with spaces and keeping line
breaks, so every other position stays where it was) and compiles again, until the program is
clean, the error is outside a definition's body (a read error, the result expression, a
definition's header), or `MAX_DIAGNOSTICS` errors were found. Errors that follow only from a
stubbed definition can appear after it; the first error is always exact.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .compiled import Compiled
from .errors import NCError
from .options import CompileOptions
from .reader import Form, Lst, Sym, read

MAX_DIAGNOSTICS = 50


def check(src: str, *, name: str = "<program>", shapes: Mapping[str, Sequence[int | None]] | None = None
          ) -> list[NCError]:
    """Every error nc finds in ``src`` at compile time (empty when the program is clean)."""
    options = CompileOptions(shapes=shapes, name=name)
    problems: list[NCError] = []
    text = src
    while len(problems) < MAX_DIAGNOSTICS:
        try:
            Compiled(text, options)
        except NCError as e:
            problems.append(e)
            recovered = stub_definition(text, e)
            if recovered is None:
                break
            text = recovered
            continue
        break
    return problems


def stub_definition(text: str, err: NCError) -> str | None:
    """``text`` with the body of the definition holding ``err`` replaced by 0, or None."""
    if err.span is None:
        return None
    try:
        forms = read(text)
    except NCError:
        return None
    at = err.span.start
    for form in forms[:-1]:  # the last form is the result expression
        if form.span.start <= at < form.span.end:
            body = definition_body(form)
            if body is None or not body.span.start <= at < body.span.end:
                return None
            if text[body.span.start:body.span.end].strip() == "0":
                return None  # already stubbed: the error is not the body's own
            return blank(text, body.span.start, body.span.end)
    return None


def definition_body(form: Form) -> Form | None:
    """The value of ``(define x value)``, or the body of ``(define (f ...) body)`` or of a lambda."""
    if not (isinstance(form, Lst) and len(form.items) == 3 and isinstance(form.items[0], Sym)
            and form.items[0].name == "define"):
        return None
    value = form.items[2]
    if isinstance(value, Lst) and len(value.items) == 3 and isinstance(value.items[0], Sym) \
            and value.items[0].name == "lambda":
        return value.items[2]
    return value


def blank(text: str, start: int, end: int) -> str:
    """``text`` with ``[start, end)`` replaced by ``0`` and spaces, line breaks kept."""
    filler = "".join(c if c == "\n" else " " for c in text[start + 1:end])
    return text[:start] + "0" + filler + text[end:]
