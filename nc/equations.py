"""The equations of a recorded program: values (`Var`, `Lit`, `ConstRef`), equations (`Eqn`)
and loop bodies (`Region`), with the walks over them; `nc.program` holds the `Recording` made
of them (the grammar is in its docstring). Kept apart so that the code generators and
interpreters that `Recording` uses (`nc.codegen`, `nc.interpret`, `nc.fx`) import these without
importing `Recording`."""

from __future__ import annotations

from typing import Any

import attrs

from .errors import Span
from .shapes import Shape


class Promo:
    """The undeclared inputs whose per-example rank a value's rank follows (for rank inference).

    Kept as a small DAG of the operands' sets and flattened only when a rank must be raised,
    so that a long fold such as ``(+ x0 x1 ... xn)`` stays linear.
    """

    __slots__ = ("parts",)

    def __init__(self, parts: tuple[str | Promo, ...]) -> None:
        self.parts = parts

    def names(self) -> frozenset[str]:
        out: set[str] = set()
        seen: set[int] = set()
        stack: list[str | Promo] = [self]
        while stack:
            p = stack.pop()
            if isinstance(p, str):
                out.add(p)
            elif id(p) not in seen:
                seen.add(id(p))
                stack.extend(p.parts)
        return frozenset(out)


def join_promo(*promos: Promo | None) -> Promo | None:
    """The promo of a value computed elementwise from values with these promos."""
    present = [p for p in promos if p is not None]
    if not present:
        return None
    if len(present) == 1 or all(p is present[0] for p in present):
        return present[0]
    return Promo(tuple(present))


@attrs.define(eq=False)
class Var:
    """A traced value: known per-example shape, unknown contents."""

    id: int
    pshape: Shape
    ctx: Any = attrs.field(repr=False, default=None)  # the branch/loop context it was made in
    promo: Promo | None = None  # inputs whose rank could still be raised to raise this one's
    sizedep: bool = False  # depends on a size not known yet (compile-time pass only)
    mask: bool = False  # a boolean mask rather than a number

    @property
    def rank(self) -> int:
        return len(self.pshape)


@attrs.frozen
class Lit:
    """A Python float written into the generated code."""

    value: float


@attrs.frozen
class ConstRef:
    index: int
    pshape: Shape
    mask: bool = False


Atom = Var | Lit | ConstRef


@attrs.frozen(eq=False)
class Region:
    """The body of a masked loop: inputs (active mask, state...), equations, outputs."""

    inputs: tuple[Var, ...]
    eqns: list[Eqn]
    outputs: tuple[Atom, ...]


@attrs.frozen(eq=False)
class Eqn:
    prim: str
    code: str  # the row's template for this call (shape-dependent templates already chosen)
    args: tuple[Atom, ...]
    out: Var
    params: dict[str, Any] = attrs.field(factory=dict)
    span: Span | None = None
    region: Region | None = None


def live_equations(eqns: list[Eqn], needed: set[int]) -> list[Eqn]:
    """The equations that ``needed`` (ids of Vars) depends on, in order; updates ``needed``."""
    keep: list[Eqn] = []
    for e in reversed(eqns):
        if e.out.id not in needed and not e.params.get("effect"):
            continue
        keep.append(e)
        needed.update(a.id for a in e.args if isinstance(a, Var))
        if e.region is not None:
            needed.update(region_uses(e.region))
    keep.reverse()
    return keep


def compact_constants(eqns: list[Eqn], output: Atom, constants: list[Any]) -> tuple[list[Eqn], Atom, list[Any]]:
    """Only the constants that ``eqns`` (loop bodies included) and ``output`` read, renumbered in
    order. Equations dropped after tracing (iterations of a loop that was rolled, see
    `nc.rollloop`; dead code) leave theirs behind, and the lowered code makes every constant."""
    used: set[int] = {output.index} if isinstance(output, ConstRef) else set()
    stack = list(eqns)
    while stack:
        e = stack.pop()
        used.update(a.index for a in e.args if isinstance(a, ConstRef))
        if e.region is not None:
            used.update(a.index for a in e.region.outputs if isinstance(a, ConstRef))
            stack.extend(e.region.eqns)
    if len(used) == len(constants):
        return eqns, output, constants
    new = {old: i for i, old in enumerate(sorted(used))}

    def atom(a: Atom) -> Atom:
        return ConstRef(new[a.index], a.pshape, a.mask) if isinstance(a, ConstRef) else a

    def rewrite(eqns: list[Eqn]) -> list[Eqn]:
        out = []
        for e in eqns:
            r = e.region
            region = None if r is None else Region(r.inputs, rewrite(r.eqns), tuple(atom(a) for a in r.outputs))
            out.append(Eqn(e.prim, e.code, tuple(atom(a) for a in e.args), e.out, e.params, e.span, region))
        return out
    return rewrite(eqns), atom(output), [constants[i] for i in sorted(used)]


def region_uses(region: Region) -> set[int]:
    needed = {a.id for a in region.outputs if isinstance(a, Var)}
    inner = live_equations(region.eqns, needed)
    defined = {v.id for v in region.inputs} | {e.out.id for e in inner}
    return needed - defined


def atom_text(a: Atom) -> str:
    if isinstance(a, Var):
        return f"v{a.id}"
    if isinstance(a, Lit):
        return repr(a.value)
    return f"c{a.index}"


def type_text(v: Var) -> str:
    kind = "bool" if v.mask else "f"
    return f"{kind}[{','.join('?' if s is None else str(s) for s in v.pshape)}]"


def _eqn_lines(eqns: list[Eqn], indent: str) -> list[str]:
    lines = []
    for e in eqns:
        params = "".join(f" {k}={v}" for k, v in e.params.items() if k not in ("region", "effect"))
        where = f"    ; {e.span.line}:{e.span.column}" if e.span is not None else ""
        args = " ".join(atom_text(a) for a in e.args)
        lines.append(f"{indent}v{e.out.id}:{type_text(e.out)} = {e.prim}{params} {args}{where}".rstrip())
        if e.region is not None:
            r = e.region
            ins = " ".join(f"v{v.id}:{type_text(v)}" for v in r.inputs)
            lines.append(f"{indent}  {{ body ({ins})")
            lines.extend(_eqn_lines(r.eqns, indent + "    "))
            lines.append(f"{indent}    -> {' '.join(atom_text(a) for a in r.outputs)} }}")
    return lines
