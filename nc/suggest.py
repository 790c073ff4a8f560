"""'Did you mean' suggestions and hints for spellings borrowed from other languages."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

# Names that users and language models reach for, with the nc way to say them.
FOREIGN_NAMES: dict[str, str] = {
    "**": "write powers as (pow x y) or (expt x y); (square x) and (cube x) for small powers",
    "^": "write powers as (pow x y)",
    "sqr": "use (square x)",
    "arctan2": "use (atan y x), the two-argument arctangent",
    "atan2": "use (atan y x), the two-argument arctangent",
    "arctan": "use (atan x)",
    "arcsin": "use (asin x)",
    "arccos": "use (acos x)",
    "ln": "use (log x) for the natural log",
    "log10": "use (log x 10)",
    "log2": "use (log x 2)",
    "power": "use (pow x y)",
    "mod": "use (modulo a b) (floored) or (remainder a b) (truncated)",
    "fmod": "use (remainder a b)",
    "%": "use (modulo a b) (floored) or (remainder a b) (truncated)",
    "ceil": "use (ceiling x)",
    "trunc": "use (truncate x)",
    "length": "use (vlen v)",
    "len": "use (vlen v)",
    "sum": "use (vsum v) to sum a vector, or (+ a b ...) for numbers",
    "mean": "use (vmean v)",
    "prod": "use (vprod v)",
    "list": "use (vec a b c) or [a b c]",
    "vector": "use (vec a b c) or [a b c]",
    "array": "use (vec a b c) or [a b c]",
    "matrix": "use (mat [a b] [c d])",
    "mm": "use (matmul A B)",
    "@": "use (matmul A B) or (matvec A v)",
    "T": "use (transpose M)",
    "set!": "nc programs are pure: bind a new name with let or let*, or carry state in a loop",
    "define-values": "not part of nc: define each value with its own (define name expr)",
    "begin": "not part of nc: a body is one expression; use let* to sequence bindings",
    "quote": "not part of nc: write vectors as [1 2 3] or (vec 1 2 3)",
    "display": "nc programs have no side effects; the result expression is the output",
    "print": "nc programs have no side effects; the result expression is the output",
    "when": "use (if test then else): nc's if needs both branches",
    "unless": "use (if test then else): nc's if needs both branches",
    "case": "use cond",
    "do": "use (loop ((v init) ...) body) with (recur ...)",
    "while": "use (loop ((v init) ...) body) with (recur ...)",
    "for": "use (loop ((v init) ...) body) with (recur ...), or a constant-count recursion",
    "def": "use (define name expr) or (define (f args) body)",
    "defun": "use (define (f args) body)",
    "fn": "use (lambda (args) body)",
    "λ": "use lambda",
    "true": "use #t (or 1)",
    "false": "use #f (or 0)",
    "e": "e is not predefined: use (exp 1)",
    "inf": "write infinity as (/ 1 0)",
    "nan": "write NaN as (/ 0 0)",
    "!=": "use (not (= a b))",
    "/=": "use (not (= a b))",
    "==": "use (= a b)",
    "&&": "use (and a b)",
    "||": "use (or a b)",
    "!": "use (not a)",
    "cbrt": "use (pow x (/ 1 3)) for x >= 0",
}


def closest(name: str, candidates: Iterable[str], limit: int = 3) -> list[str]:
    """The candidates closest to ``name`` (case-insensitive), best first."""
    pool = sorted(set(candidates))
    lowered = {c.lower(): c for c in pool}
    hits = difflib.get_close_matches(name.lower(), list(lowered), n=limit, cutoff=0.6)
    return [lowered[h] for h in hits]


def hint_for(name: str, candidates: Iterable[str]) -> str | None:
    """A hint for an unknown name: a foreign spelling's nc form, else the closest names."""
    if name in FOREIGN_NAMES:
        return FOREIGN_NAMES[name]
    near = closest(name, candidates)
    if not near:
        return None
    return "did you mean " + " or ".join(f"`{n}`" for n in near) + "?"
