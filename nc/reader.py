"""Text to forms: the only code in nc that looks at characters.

Grammar (LANGUAGE.md section 1)::

    datum   := number | boolean | symbol | '(' datum* ')' | '[' datum* ']'
    boolean := '#t' | '#f'                     read as the numbers 1 and 0
    comment := ';' ... end of line | '#|' ... '|#' (nestable) | '#;' datum

``[a b c]`` reads as ``(vec a b c)``. The reader is iterative (an explicit stack), so the
depth of the input never reaches Python's recursion limit; nesting deeper than `MAX_DEPTH`
is a `LimitError` because later stages work on trees.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator

import attrs

from .errors import LimitError, ReadError, Source, Span

MAX_DEPTH = 1000
"""Deepest nesting of lists the reader accepts."""

MAX_SOURCE_CHARS = 5_000_000
"""Longest program text accepted, in characters."""

WHITESPACE = " \t\n\r\f"
"""The characters that separate tokens: space, tab, LF, CR and form feed, all ASCII.

R7RS's whitespace (space, tab and the line endings LF, CRLF and a lone CR) plus the form feed
that old sources use as a page break. Every other character, Unicode spaces and line
separators included (NBSP, U+2028, U+3000, the ASCII separators 0x1C-0x1F, vertical tab), is
outside the language: a `ReadError` at that character.
"""

SYMBOL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!$%&*/:<=>?^_~+-@.")
# Explicit ASCII classes: `\d` and `\s` would also match Unicode digits (`٣` read as 3) and
# Unicode spaces, which LANGUAGE.md section 1 does not allow.
SYMBOL_RE = re.compile(r"[A-Za-z0-9!$%&*/:<=>?^_~+\-@.]+\Z")
NUMBER_RE = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?\Z")
NUMBER_LIKE_RE = re.compile(r"[+-]?\.?[0-9]")
# One token (or a run of space and line comments) at a position. An atom runs to the next
# delimiter; a lone delimiter that starts no other token (a quote, say) is an atom of one
# character, which `atom` then reports. A `;` comment ends at any line break (a lone CR too).
TOKEN_RE = re.compile(
    r"(?P<space>(?:[ \t\n\r\f]+|;[^\n\r]*)+)|(?P<block>#\|)|(?P<datum>#;)|(?P<open>[(\[])|(?P<close>[)\]])"
    r"|(?P<atom>[^ \t\n\r\f()\[\];\"'`]+|.)",
    re.DOTALL,
)


@attrs.frozen(eq=False)
class Sym:
    name: str
    span: Span


@attrs.frozen(eq=False)
class Num:
    value: float
    span: Span


@attrs.frozen(eq=False)
class Lst:
    items: tuple[Form, ...]
    span: Span
    bracket: bool = False  # written as [ ... ]


Form = Sym | Num | Lst


# Hints for characters and spellings that other languages use.
CHAR_HINTS = {
    '"': "strings are not part of the nc language: programs compute with numbers only",
    "'": "quote is not part of the nc language; write vectors as [1 2 3] or (vec 1 2 3)",
    "`": "quasiquote is not part of the nc language",
    ",": "commas are not separators in nc: separate arguments with spaces, as in (+ a b)",
    "{": "braces are not part of the nc language; use ( ) or [ ] for vectors",
    "}": "braces are not part of the nc language; use ( ) or [ ] for vectors",
    "#": "only #t, #f, #| |# and #; start with '#'",
}


def unicode_hint(ch: str) -> str | None:
    """A hint for a non-ASCII (or ASCII control) character that looks like one nc accepts."""
    if ch.isdigit() or unicodedata.category(ch) == "Nd":
        return "numbers are written with the ASCII digits 0-9 only"
    if ch.isspace() or unicodedata.category(ch) in ("Zs", "Zl", "Zp"):
        return "only ASCII space, tab, form feed and line breaks (LF, CRLF, CR) separate tokens"
    if not ch.isascii():
        return "programs are ASCII: names use letters, digits and ! $ % & * / : < = > ? ^ _ ~ + - @"
    return None


def read(source: Source | str) -> list[Form]:
    """Read every top-level datum of ``source``."""
    if isinstance(source, str):
        source = Source(source)
    if len(source.text) > MAX_SOURCE_CHARS:
        raise LimitError(
            f"the program is {len(source.text)} characters long; the limit is {MAX_SOURCE_CHARS}",
            Span(source, 0, 1),
        )
    return _Reader(source).read_all()


class _Reader:
    def __init__(self, source: Source) -> None:
        self.src = source
        self.text = source.text
        self.pos = 0

    def span(self, start: int, end: int | None = None) -> Span:
        return Span(self.src, start, self.pos if end is None else end)

    def read_all(self) -> list[Form]:
        # stack of (opening offset, closing char, items, is bracket); index 0 is the top level
        stack: list[tuple[int, str, list[Form], bool]] = [(-1, "", [], False)]
        skip_marks: list[tuple[int, int]] = []  # (stack depth, offset) of each `#;` waiting for its datum
        for kind, start in self.tokens():
            if kind in "([":
                if len(stack) > MAX_DEPTH:
                    raise LimitError(
                        f"lists are nested more than {MAX_DEPTH} deep",
                        self.span(start, start + 1),
                        hint="split deep expressions with let* bindings",
                    )
                stack.append((start, ")" if kind == "(" else "]", [], kind == "["))
                continue
            if kind in ")]":
                if skip_marks and skip_marks[-1][0] == len(stack):
                    at = skip_marks[-1][1]
                    raise ReadError("'#;' has no datum to comment out before this list closes",
                                    self.span(at, at + 2), hint="remove the '#;' or put the datum after it")
                form = self.close(stack, kind, start)
            elif kind == "#;":
                skip_marks.append((len(stack), start))
                continue
            else:
                form = self.atom(start)
            if skip_marks and skip_marks[-1][0] == len(stack):
                skip_marks.pop()
                continue
            stack[-1][2].append(form)
        if len(stack) > 1:
            open_at = stack[-1][0]
            raise ReadError(
                f"'{self.text[open_at]}' is never closed",
                self.span(open_at, open_at + 1),
                hint=f"add '{stack[-1][1]}' at the end of the expression it starts",
            )
        if skip_marks:
            at = skip_marks[-1][1]
            raise ReadError("'#;' has no datum to comment out", self.span(at, at + 2),
                            hint="remove the '#;' or put the datum after it")
        return stack[0][2]

    def close(self, stack: list[tuple[int, str, list[Form], bool]], kind: str, start: int) -> Form:
        if len(stack) == 1:
            raise ReadError(f"unexpected '{kind}' with no open list", self.span(start, start + 1),
                            hint="remove it, or add the matching opening bracket")
        open_at, closer, items, bracket = stack.pop()
        if kind != closer:
            raise ReadError(
                f"'{kind}' closes the '{self.text[open_at]}' opened at line "
                f"{self.src.position(open_at)[0]}, column {self.src.position(open_at)[1]}",
                self.span(start, start + 1),
                hint=f"use '{closer}'",
            )
        span = self.span(open_at, start + 1)
        if bracket:
            return Lst((Sym("vec", self.span(open_at, open_at + 1)), *items), span, bracket=True)
        return Lst(tuple(items), span)

    def tokens(self) -> Iterator[tuple[str, int]]:
        """Yield (kind, start) with kind one of ``( ) [ ] #;`` or ``atom``; skip comments."""
        text, n, match = self.text, len(self.text), TOKEN_RE.match
        while self.pos < n:
            m = match(text, self.pos)
            assert m is not None  # the pattern matches at least one character anywhere
            kind, start = m.lastgroup, self.pos
            self.pos = m.end()
            if kind == "space":
                continue
            if kind == "block":
                self.pos = start
                self.skip_block_comment()
            elif kind == "atom":
                yield "atom", start
            else:
                yield m.group(), start

    def skip_block_comment(self) -> None:
        start, depth, text = self.pos, 0, self.text
        while True:
            opening, closing = text.find("#|", self.pos), text.find("|#", self.pos)
            if closing == -1:
                raise ReadError("'#|' block comment is never closed", self.span(start, start + 2),
                                hint="end it with '|#'")
            if opening != -1 and opening < closing:
                depth += 1
                self.pos = opening + 2
            else:
                depth -= 1
                self.pos = closing + 2
                if depth == 0:
                    return

    def atom(self, start: int) -> Form:
        word = self.text[start : self.pos]
        span = self.span(start)
        if word in ("#t", "#true"):
            return Num(1.0, span)
        if word in ("#f", "#false"):
            return Num(0.0, span)
        if NUMBER_RE.match(word):
            return Num(float(word), span)
        if not SYMBOL_RE.match(word):
            bad = next(i for i, ch in enumerate(word) if ch not in SYMBOL_CHARS)
            raise self.bad_char(word, start, bad)
        if NUMBER_LIKE_RE.match(word):
            raise ReadError(f"'{word}' is not a number", span,
                            hint="numbers look like 3, -2, 0.5, .5, 6.674e-11 or 1E3")
        if word == "." or "." in word:
            raise self.dotted(word, span)
        return Sym(word, span)

    def bad_char(self, word: str, start: int, index: int) -> ReadError:
        ch = word[index]
        span = self.span(start + index, start + index + 1)
        if ch == "#" and index == 0:
            return ReadError(f"'{word}' is not valid syntax", self.span(start), hint=CHAR_HINTS["#"])
        hint = CHAR_HINTS.get(ch) or unicode_hint(ch)
        # name characters that do not print (NBSP, U+2028, control characters) by code point
        shown = f"'{ch}'" if ch.isprintable() and ch.isascii() else f"U+{ord(ch):04X}"
        if not ch.isascii() and ch.isprintable():
            shown = f"'{ch}' ({shown})"
        return ReadError(f"the character {shown} cannot appear in a program", span, hint=hint)

    def dotted(self, word: str, span: Span) -> ReadError:
        if word == ".":
            return ReadError("'.' (dotted pairs) is not part of the nc language", span)
        prefix, _, name = word.partition(".")
        if prefix in ("math", "np", "numpy", "torch", "jnp", "tf", "scipy", "sp"):
            return ReadError(f"'{word}' is not an nc name", span,
                             hint=f"nc primitives have no module prefix: write ({name} ...)")
        return ReadError(f"'{word}': '.' can appear only in numbers", span,
                         hint="names may use letters, digits and ! $ % & * / : < = > ? ^ _ ~ + - @")
