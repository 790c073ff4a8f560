"""The equation builder: ids, the current context and equation list, constants, CSE, the budget.

Every part of the tracer records through one `Builder`. It knows nothing of branches: `record`
takes atoms and values as they are (the branch state guards outside values first, see
`nc.branches.BranchState.record`). `Limits` is the snapshot of `nc.trace`'s bounds that one
trace runs under; `Budget` counts equations and work against it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import attrs
import torch

from . import shapes as sh
from .errors import LimitError, Span
from .program import Atom, ConstRef, Eqn, Lit, Promo, Region, Var
from .values import Ctx, Value


@attrs.frozen
class Limits:
    """The bounds one trace runs under (taken from ``nc.trace.MAX_*`` when the trace starts)."""

    equations: int
    unroll: int
    constant_elements: int
    call_depth: int
    recursion: int
    work: int
    static_int: int
    memo_elements: int


class Budget:
    """Counts equations recorded and units of work done against the `Limits`."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.equations = 0
        self.work = 0

    def spend(self, units: int, span: Span | None) -> None:
        """Count ``units`` of tracing work against ``MAX_WORK``."""
        self.work += units
        if self.work > self.limits.work:
            raise LimitError(f"compiling this program takes more than {self.limits.work:,} steps of work "
                             "(nc.trace.MAX_WORK: operations traced and function calls inlined)", span,
                             hint="function calls are inlined and constant loops unrolled; calls that each "
                                  "call others several times with different arguments grow exponentially")

    def equation(self, span: Span | None) -> None:
        """Count one recorded equation against ``MAX_EQUATIONS``."""
        self.equations += 1
        if self.equations > self.limits.equations:
            raise LimitError(f"the program traces to more than {self.limits.equations} operations", span,
                             hint="unrolled loops, recursion and integration steps each count")


class Builder:
    """Owns the equations being recorded, variable ids, constants and common subexpressions."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.ids = itertools.count()
        self.ctx_ids = itertools.count(1)
        self.root = Ctx(None, None, None)
        self.ctx = self.root
        self.eqns: list[Eqn] = []
        self.top_eqns = self.eqns
        self.constants: list[torch.Tensor] = []
        self.cse: dict[tuple[Any, ...], Var] = {}

    def new_var(self, pshape: sh.Shape, *, promo: Promo | None = None, sizedep: bool = False,
                mask: bool = False) -> Var:
        return Var(next(self.ids), tuple(pshape), self.ctx, promo, sizedep, mask)

    def new_ctx(self, mask: Var, region: Region | None) -> Ctx:
        """A context inside the current one, taken where ``mask`` holds."""
        return Ctx(self.ctx, mask, region, next(self.ctx_ids))

    @contextmanager
    def into(self, ctx: Ctx, eqns: list[Eqn] | None = None) -> Iterator[None]:
        """Record in ``ctx`` (and into ``eqns`` when given) for the duration of the block."""
        saved = (self.ctx, self.eqns)
        self.ctx = ctx
        self.eqns = eqns if eqns is not None else self.eqns
        try:
            yield
        finally:
            self.ctx, self.eqns = saved

    def at_top(self) -> Any:
        """Record as a value of the whole program (top-level constants)."""
        return self.into(self.root, self.top_eqns)

    def record(self, prim: str, code: str, atoms: Sequence[Atom], pshape: sh.Shape, span: Span | None, *,
               params: dict[str, Any] | None = None, mask: bool = False, promo: Promo | None = None,
               sizedep: bool = False, region: Region | None = None) -> Var:
        """Append one equation (or return the equal one already recorded in this context)."""
        self.budget.equation(span)
        key = None
        if region is None and not (params and params.get("effect")):
            # Common subexpressions within one context share one equation. Only identical code
            # on identical arguments in the same branch is merged, so no bit and no branch changes.
            key = (self.ctx.ident, code, tuple(a.id if isinstance(a, Var) else a for a in atoms),
                   tuple(sorted((params or {}).items())))
            hit = self.cse.get(key)
            if hit is not None:
                return hit
        out = self.new_var(pshape, promo=promo, sizedep=sizedep, mask=mask)
        self.eqns.append(Eqn(prim, code, tuple(atoms), out, params or {}, span, region))
        if key is not None:
            self.cse[key] = out
        return out

    def atom(self, v: Value | Atom, *, py_scalar: bool = False) -> Atom:
        """A recorded argument: Vars as they are, concrete values as literals or constants."""
        if isinstance(v, (Var, Lit, ConstRef)):
            return v
        if py_scalar and v.dim() == 0 and v.dtype != torch.bool:
            return Lit(float(v))
        self.constants.append(v)
        return ConstRef(len(self.constants) - 1, tuple(v.shape), v.dtype == torch.bool)
