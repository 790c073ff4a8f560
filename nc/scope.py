"""Lexical scopes of the parser: what a name means where it is used."""

from __future__ import annotations

import attrs

RESERVED = frozenset(
    ["define", "lambda", "let", "let*", "letrec", "letrec*", "if", "cond", "else", "loop", "recur", "euler", "rk4"]
)
"""Names of the special forms (and ``else``): they cannot be bound or used as values."""


@attrs.frozen
class Bound:
    """What a name means in a scope."""

    kind: str  # "local", "fn", "loop" (a named let)
    key: object
    arity: int = 0


class Scope:
    """A chain of name tables; `lookup` walks outwards."""

    def __init__(self, parent: Scope | None = None) -> None:
        self.names: dict[str, Bound] = {}
        self.parent = parent

    def lookup(self, name: str) -> Bound | None:
        scope: Scope | None = self
        while scope is not None:
            found = scope.names.get(name)
            if found is not None:
                return found
            scope = scope.parent
        return None

    def visible(self) -> set[str]:
        out: set[str] = set()
        scope: Scope | None = self
        while scope is not None:
            out |= scope.names.keys()
            scope = scope.parent
        return out
