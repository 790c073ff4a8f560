"""Candidate libraries for `nc.discover`, written as nc source, and the programs built from them.

A *term* is an nc expression over the state names: ``x``, ``(* x y)``, ``(sin theta)``,
``(* u (roll u 1))``. A library is an ordered tuple of distinct terms. Specs expand to terms:

- ``"polyN"``: every monomial of the states of degree 1..N (``"poly2"`` for x, y: x, y, x^2, x y,
  y^2), in graded order; ``"const"``: the constant 1 (add it for an affine right-hand side);
  ``"trig"``: ``(sin s)`` and ``(cos s)`` of each state;
- anything else is taken as one nc expression.

From a library, a *support* (which terms each equation keeps) and the known part, `rhs_source`
writes one program whose coefficients are top-level ``(define c_<state>_<k> value)`` constants,
``k`` the term's index in the library, so that ``nc.compile(..., trainable=[...])`` fits them.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence

import attrs
import numpy as np
import torch

from nc.api import compile_fn
from nc.errors import CallError, NCError
from nc.reader import Lst, read

__all__ = ["Known", "build_library", "coefficient_name", "display_term", "evaluate_terms", "parse_known",
           "rhs_source"]

_POLY = re.compile(r"poly([0-9]+)")


def build_library(spec: str | Sequence[str], states: Sequence[str]) -> tuple[str, ...]:
    """The terms of ``spec`` (a spec name, an nc expression, or a list of them), without repeats.

    Raises `CallError` for an empty library, and (naming the term and the name) for a term that
    does not compile or uses a name that is not a state.
    """
    items = [spec] if isinstance(spec, str) else list(spec)
    terms: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise CallError(f"a library entry must be a string (a spec or an nc expression), got "
                            f"{type(item).__name__}", None)
        for term in _expand(item.strip(), states):
            if term not in terms:
                terms.append(term)
    if not terms:
        raise CallError("the library is empty: give at least one candidate term", None,
                        hint="for example library='poly2', or a list of nc expressions such as ['x', '(sin x)']")
    for term in terms:
        _check_term(term, states)
    return tuple(terms)


def _expand(item: str, states: Sequence[str]) -> list[str]:
    match = _POLY.fullmatch(item)
    if match and item not in states:
        return [_monomial(powers, states) for d in range(1, int(match.group(1)) + 1)
                for powers in _powers(len(states), d)]
    if item == "const" and item not in states:
        return ["1"]
    if item == "trig" and item not in states:
        return [f"({f} {s})" for s in states for f in ("sin", "cos")]
    return [item] if item else []


def _powers(n: int, degree: int) -> list[tuple[int, ...]]:
    """Exponent tuples of the monomials of degree ``degree`` in ``n`` variables, x before y."""
    out = []
    for combo in itertools.combinations_with_replacement(range(n), degree):
        out.append(tuple(combo.count(i) for i in range(n)))
    return out


def _monomial(powers: tuple[int, ...], states: Sequence[str]) -> str:
    factors = [s for s, p in zip(states, powers) for _ in range(p)]
    return factors[0] if len(factors) == 1 else f"(* {' '.join(factors)})"


def _check_term(term: str, states: Sequence[str]) -> None:
    try:
        inputs = compile_fn(term).inputs
    except NCError as e:
        raise CallError(f"library term {term!r} is not an nc expression: {e.message}", None) from None
    unknown = [name for name in inputs if name not in states]
    if unknown:
        raise CallError(f"library term {term!r} uses {unknown[0]!r}, which is not a state name "
                        f"(states: {', '.join(states)})", None)


def display_term(term: str) -> str:
    """A term as it prints in an equation: monomials as ``x y``, ``x^2``; other terms as written."""
    if term == "1":
        return "1"
    if re.fullmatch(r"[^\s()\[\]]+", term):
        return term
    m = re.fullmatch(r"\(\*((?:\s+[^\s()\[\]]+)+)\)", term)
    if m and not any(_is_number(f) for f in m.group(1).split()):
        names = m.group(1).split()
        return " ".join(n if k == 1 else f"{n}^{k}" for n, k in
                        ((n, names.count(n)) for n in dict.fromkeys(names)))
    return term


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def coefficient_name(state: str, k: int) -> str:
    """The program's name of the coefficient of library term ``k`` in the equation of ``state``."""
    return f"c_{state}_{k}"


def evaluate_terms(terms: Sequence[str], columns: Mapping[str, torch.Tensor],
                   shapes: Mapping[str, tuple[int, ...]]) -> torch.Tensor:
    """The library evaluated on data: [rows, *per-example shape, terms], given each state's
    values [rows, *shape]. A term's value takes the shape of the states (a constant broadcasts)."""
    like = next(iter(columns.values()))
    out = []
    for term in terms:
        f = compile_fn(term, shapes={n: shapes[n] for n in shapes if n in columns})
        value = f(**{n: columns[n] for n in f.inputs})
        out.append(torch.as_tensor(value, dtype=like.dtype).expand_as(like))
    return torch.stack(out, dim=-1)


@attrs.frozen
class Known:
    """The known part of the right-hand side: top-level definitions (``prelude``, nc source) and
    one nc expression per state that has a known part (states not named have none)."""

    prelude: str = ""
    exprs: Mapping[str, str] = attrs.field(factory=dict)


def parse_known(known: str | Mapping[str, str] | None, states: Sequence[str]) -> Known:
    """``known`` as a `Known`: None; a mapping state -> nc expression; or an nc program whose
    definitions are kept and whose result is ``[e1 e2 ...]``, one expression per state (for one
    state, the expression itself). Its free names must be states (a `CallError` names others)."""
    if known is None:
        return Known()
    if isinstance(known, Mapping):
        bad = [s for s in known if s not in states]
        if bad:
            raise CallError(f"known names {bad[0]!r}, which is not a state (states: {', '.join(states)})", None)
        return _checked(Known("", {s: str(e) for s, e in known.items()}), states)
    if not isinstance(known, str):
        raise CallError(f"known must be an nc program or a dict state -> expression, got {type(known).__name__}",
                        None)
    forms = read(known)
    if not forms:
        raise CallError("the known program is empty", None)
    result = forms[-1]
    prelude = known[: result.span.start]
    text = known[result.span.start: result.span.end]
    if len(states) == 1:
        exprs = {states[0]: text}
    elif isinstance(result, Lst) and result.bracket and len(result.items) == len(states) + 1:
        # the reader gives [a b] as (vec a b): items[0] is the implicit vec
        exprs = {s: known[f.span.start: f.span.end] for s, f in zip(states, result.items[1:])}
    else:
        raise CallError(f"the known program's result must be a vector [e1 ... e{len(states)}] with one "
                        f"expression per state ({', '.join(states)})", None, hint="write 0 for a state with no known part")
    return _checked(Known(prelude, exprs), states)


def _checked(known: Known, states: Sequence[str]) -> Known:
    for state, expr in known.exprs.items():
        try:
            inputs = compile_fn(f"{known.prelude}\n{expr}").inputs
        except NCError as e:
            raise CallError(f"the known part of {state!r} does not compile: {e.message}", None) from None
        unknown = [n for n in inputs if n not in states]
        if unknown:
            raise CallError(f"the known part of {state!r} uses {unknown[0]!r}, which is not a state name "
                            f"(states: {', '.join(states)}); define its value in the known program", None)
    return known


def evaluate_known(known: Known, columns: Mapping[str, torch.Tensor], shapes: Mapping[str, tuple[int, ...]],
                   states: Sequence[str]) -> torch.Tensor:
    """The known part on data, [rows, *shape, states] for scalar states ([rows, N] for one vector state)."""
    like = next(iter(columns.values()))
    parts = []
    for state in states:
        if state not in known.exprs:
            parts.append(torch.zeros_like(like))
            continue
        f = compile_fn(f"{known.prelude}\n{known.exprs[state]}", shapes=dict(shapes))
        parts.append(torch.as_tensor(f(**{n: columns[n] for n in f.inputs}), dtype=like.dtype).expand_as(like))
    return torch.stack(parts, dim=-1)


def rhs_source(states: Sequence[str], terms: Sequence[str], coefficients: Mapping[str, float],
               known: Known, vector_state: bool, comments: Mapping[str, str] | None = None,
               factors: Mapping[str, float] | None = None) -> str:
    """Definitions and ``(define (rhs t s) ...)`` for the right-hand side ``ds/dt``.

    ``coefficients``: name (`coefficient_name`) -> value for each kept term; the equation of a
    state is its known part plus ``c * term`` for each kept term of that state. ``s`` is the
    vector of the scalar states in order, or (``vector_state``) the one vector state itself.
    ``factors``: name -> a fixed factor written after the coefficient (``(* c 2.5 term)``).
    """
    lines = [known.prelude.strip()] if known.prelude.strip() else []
    for name, value in coefficients.items():
        note = f"  ; {comments[name]}" if comments and name in comments else ""
        lines.append(f"(define {name} {float(value)!r}){note}")
    bodies = []
    for state in states:
        parts = [known.exprs[state]] if state in known.exprs else []
        for k, term in enumerate(terms):
            name = coefficient_name(state, k)
            if name in coefficients:
                coef = f"{name} {float(factors[name])!r}" if factors else name
                parts.append(f"(* {coef})" if term == "1" and factors else name if term == "1"
                             else f"(* {coef} {term})")
        if not parts:
            parts = [f"(* 0 {state})"]  # zero with the state's shape
        bodies.append(parts[0] if len(parts) == 1 else f"(+ {' '.join(parts)})")
    if vector_state:
        binding, body = f"(({states[0]} s))", bodies[0]
    else:
        binding = "(" + " ".join(f"({s} (ref s {i}))" for i, s in enumerate(states)) + ")"
        body = "[" + "\n     ".join(bodies) + "]"
    lines.append(f"(define (rhs t s)\n  (let {binding}\n    {body}))")
    return "\n".join(lines)


def term_matrix_numpy(values: torch.Tensor) -> np.ndarray:
    """[rows, *shape, terms] as a 2-d float64 array [rows * prod(shape), terms]."""
    return values.reshape(-1, values.shape[-1]).detach().cpu().numpy().astype(np.float64)
