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
import torch.fx

from .equations import (
    Atom,
    ConstRef,
    Eqn,
    Lit,
    Promo,
    Region,
    Var,
    _eqn_lines,
    atom_text,
    join_promo,
    live_equations,
    region_uses,
    type_text,
)
from .fx import to_fx

__all__ = ["Atom", "ConstRef", "Eqn", "Lit", "Promo", "Recording", "Region", "Var", "atom_text", "join_promo",
           "listing", "live_equations", "region_uses", "type_text"]


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

    def to_fx(self) -> torch.fx.GraphModule:
        """The program as a ``torch.fx.GraphModule`` whose nodes carry the source spans (`nc.fx.to_fx`)."""
        return to_fx(self)


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
