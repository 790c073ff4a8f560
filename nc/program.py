"""The recorded program (`Recording`): straight-line equations of primitives, printed like a jaxpr.

What the tracer makes of a parsed program (`nc.ir.SourceProgram`) for one signature of inputs,
and what the lowering compiles::

    Recording := inputs: Var*, equations: Eqn*, output: Atom, constants: Tensor*
    Eqn       := out = prim(args; params)  @ span        (one torch expression each)
    Atom      := Var | Lit (a Python float) | ConstRef (a constant tensor, made in the
                 computation's dtype and device when the program is lowered)

A masked loop is one equation (``%loop``) whose ``region`` holds the body's equations.
"""

from __future__ import annotations

from typing import Any

import attrs
import torch

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


@attrs.define(eq=False)
class Recording:
    """A recorded program: what ``fn.program()`` and `nc.make_program` return (``nc.Program``
    is the same class); ``print(p.listing())`` shows it."""

    inputs: tuple[Var, ...]
    input_names: tuple[str, ...]
    eqns: list[Eqn]
    output: Atom
    constants: list[torch.Tensor]  # float64 (or bool) on the CPU; cast when lowered
    dtype: torch.dtype
    device: torch.device
    domain_sites: list[Any] = attrs.field(factory=list)  # (primitive, number of arguments, span) per checked call
    externals: list[Any] = attrs.field(factory=list)  # learned components, X0, X1, ... in generated code

    def listing(self) -> str:
        """The equations, one a line, as a jaxpr is printed."""
        return listing(self)


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


def listing(p: Recording) -> str:
    """A readable listing: inputs with per-example shapes, one equation a line, the output."""
    ins = " ".join(f"{n}=v{v.id}:{type_text(v)}" for n, v in zip(p.input_names, p.inputs))
    lines = [f"program ({ins})"]
    for i, c in enumerate(p.constants):
        shape = "x".join(map(str, c.shape)) or "scalar"
        lines.append(f"  c{i} = constant {shape} {c.flatten()[:6].tolist()}{' ...' if c.numel() > 6 else ''}")
    lines.extend(_eqn_lines(p.eqns, "  "))
    lines.append(f"  return {atom_text(p.output)}")
    return "\n".join(lines)
