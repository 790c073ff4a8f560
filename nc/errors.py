"""Source text, spans, and the `NCError` hierarchy with caret rendering.

Every error that a user can cause (a malformed program, a wrong call) is an `NCError` subclass
that carries the span of the source it is about. Positions are 1-based lines and columns;
columns count characters, not bytes.

The hierarchy (the `code` of each class is stable and documented in docs/errors.md):

    NCError                  NC000  base class
      ReadError              NC100  the text is not well-formed s-expressions / numbers
      SyntaxFormError        NC200  a special form is malformed (`(let x)`, `(cond (a 1))`)
      UnboundNameError       NC300  a name is neither bound nor a primitive
      ArityError             NC400  a primitive, function or special form got the wrong number of parts
      ShapeError             NC500  shapes or ranks do not fit a primitive
      NCTypeError            NC600  a value of the wrong kind (a function used as a value, ...)
      DomainError            NC700  an input left a primitive's domain (check_domain=True)
      LimitError             NC800  a documented limit was hit (nesting, unrolling, size)
      CallError              NC900  a compiled function was called wrongly
"""

from __future__ import annotations

import bisect
import re
from typing import Any

import attrs

LINE_BREAK = re.compile(r"\r\n?|\n")
"""A line break: LF, CRLF or a lone CR."""


@attrs.frozen
class Source:
    """A program text with a name (a file name or ``<program>``) and a line index."""

    text: str
    name: str = "<program>"
    _line_starts: tuple[int, ...] = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        # LF, CRLF and a lone CR each end a line (as in R7RS), so positions after old Mac line
        # endings are right; CRLF counts as one line break
        starts = [0] + [m.end() for m in LINE_BREAK.finditer(self.text)]
        object.__setattr__(self, "_line_starts", tuple(starts))

    def position(self, offset: int) -> tuple[int, int]:
        """1-based (line, column) of a character offset."""
        offset = max(0, min(offset, len(self.text)))
        line = bisect.bisect_right(self._line_starts, offset) - 1
        return line + 1, offset - self._line_starts[line] + 1

    def line_text(self, line: int) -> str:
        """The text of a 1-based line, without its newline."""
        if not 1 <= line <= len(self._line_starts):
            return ""
        start = self._line_starts[line - 1]
        m = LINE_BREAK.search(self.text, start)
        return self.text[start:] if m is None else self.text[start : m.start()]


@attrs.frozen
class Span:
    """A half-open range of character offsets ``[start, end)`` in a `Source`."""

    source: Source = attrs.field(eq=False, repr=False)
    start: int
    end: int

    @property
    def line(self) -> int:
        return self.source.position(self.start)[0]

    @property
    def column(self) -> int:
        return self.source.position(self.start)[1]

    @property
    def end_position(self) -> tuple[int, int]:
        return self.source.position(max(self.start, self.end - 1))

    def text(self) -> str:
        return self.source.text[self.start : self.end]

    def cover(self, other: Span) -> Span:
        return Span(self.source, min(self.start, other.start), max(self.end, other.end))


class NCError(Exception):
    """Base class of every error nc raises on behalf of a program or a call.

    Attributes: ``message``, ``span`` (or None), ``hint`` (or None), ``code``, and the
    1-based ``line``, ``column``, ``end_line``, ``end_column`` of the span (None without one).
    ``str(err)`` renders ``file:line:col: error: message``, the source line, a caret
    underline of the span, and the hint.
    """

    code = "NC000"
    kind = "error"

    def __init__(self, message: str, span: Span | None = None, *, hint: str | None = None) -> None:
        self.message = message
        self.span = span
        self.hint = hint
        super().__init__(message)

    # Positions are derived from the span so that they can never disagree with it.
    @property
    def line(self) -> int | None:
        return self.span.line if self.span else None

    @property
    def column(self) -> int | None:
        return self.span.column if self.span else None

    @property
    def end_line(self) -> int | None:
        return self.span.end_position[0] if self.span else None

    @property
    def end_column(self) -> int | None:
        return self.span.end_position[1] if self.span else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description, for tools and language models."""
        return {
            "code": self.code,
            "class": type(self).__name__,
            "message": self.message,
            "hint": self.hint,
            "file": self.span.source.name if self.span else None,
            "line": self.line,
            "column": self.column,
            "end_line": self.end_line,
            "end_column": self.end_column,
        }

    def __str__(self) -> str:
        return render(self)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_error, (type(self), self.message, self.span, self.hint))


def _rebuild_error(cls: type[NCError], message: str, span: Span | None, hint: str | None) -> NCError:
    return cls(message, span, hint=hint)


class ReadError(NCError):
    """The text is not well-formed: unbalanced brackets, bad numbers, stray characters."""

    code = "NC100"


class SyntaxFormError(NCError):
    """A special form (`define`, `let`, `if`, ...) is malformed."""

    code = "NC200"


class UnboundNameError(NCError):
    """A name is neither bound in scope nor a primitive."""

    code = "NC300"


class ArityError(NCError):
    """A primitive or function was called with the wrong number of arguments."""

    code = "NC400"


class ShapeError(NCError):
    """Shapes or ranks do not fit what a primitive needs."""

    code = "NC500"


class NCTypeError(NCError):
    """A value of the wrong kind: a function used as a value, a non-constant where a constant is needed."""

    code = "NC600"


class DomainError(NCError):
    """An input left a primitive's domain (raised only with ``check_domain=True``)."""

    code = "NC700"


class LimitError(NCError):
    """A documented limit (nesting depth, unrolling, program size) was hit."""

    code = "NC800"


class CallError(NCError):
    """A compiled function or module was called with missing, extra or ill-shaped arguments."""

    code = "NC900"


MAX_RENDERED_LINE = 200


def render(err: NCError) -> str:
    """``file:line:col: error: message``, the line, a caret underline, and the hint."""
    span = err.span
    if span is None:
        head = f"error: {err.message}"
        return head if err.hint is None else f"{head}\n  hint: {err.hint}"
    line, col = span.line, span.column
    out = [f"{span.source.name}:{line}:{col}: error: {err.message}"]
    text = span.source.line_text(line)
    end_line, end_col = span.end_position
    width = (end_col - col + 1) if end_line == line else max(1, len(text) - col + 1)
    shown_from = 0
    if len(text) > MAX_RENDERED_LINE:  # keep the caret in view on very long lines
        shown_from = max(0, col - 1 - MAX_RENDERED_LINE // 2)
        text = text[shown_from : shown_from + MAX_RENDERED_LINE]
    gutter = f"{line:>4} | "
    out.append(gutter + text.expandtabs(1))
    width = max(1, min(width, len(text) - (col - 1 - shown_from)))
    out.append(" " * (len(gutter) - 2) + "| " + " " * (col - 1 - shown_from) + "^" + "~" * (width - 1))
    if err.hint:
        out.append(f"  hint: {err.hint}")
    return "\n".join(out)
