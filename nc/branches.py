"""Branches on traced tests: contexts, masks, guards and selection (a mixin of `Tracer`).

An ``if`` whose test depends on the inputs traces both branches, each in a `Ctx` whose mask
says where it is taken. Every value from outside that a branch uses enters it through
`Branches.guard` as ``where(mask, v, v.detach())``, so the branch not taken reaches neither the
value nor any gradient; `select` then joins the branches with ``where``. With
``check_domain=True``, `path_mask` gives the elements the current code runs for.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import attrs
import torch

from . import ir
from . import shapes as sh
from .errors import ShapeError, Span
from .primitives import TABLE, Primitive, code_of
from .program import Var, join_promo

if TYPE_CHECKING:
    from .program import Region
    from .trace import Env

Value = Var | torch.Tensor


class SizeDependent(Exception):
    """Internal: the compile-time pass met control flow on a size that only a call will know."""


@attrs.define(eq=False)
class Ctx:
    """A branch or loop body: values used inside from outside are guarded by ``mask``."""

    parent: Ctx | None
    mask: Var | None  # bool, True where this branch is taken (None at the root)
    region: Region | None  # the loop region this context records into (None: the program)
    ident: int = 0


def is_concrete(v: Any) -> bool:
    return isinstance(v, torch.Tensor)


def pshape_of(v: Value) -> sh.Shape:
    return v.pshape if isinstance(v, Var) else tuple(v.shape)


class Branches:
    """Branch handling for `nc.trace.Tracer` (which provides ``record``, ``expr`` and the state)."""

    ctx: Ctx
    eqns: list[Any]
    abstract: bool
    guards: dict[tuple[int, int], Var]
    aligned_masks: dict[tuple[int, int], Var]
    comparisons: dict[int, Any]
    ctx_ids: Any
    domain_sites: list[Any]
    path_masks: dict[tuple[int, int], Var]
    record: Any
    atom: Any
    expr: Any

    def guard(self, v: Var) -> Var:
        """``v`` as seen from the current context: masked so that outside elements get no gradient."""
        ctx = self.ctx
        if v.ctx is ctx or ctx.mask is None or v.mask or not self.is_outer(v.ctx):
            return v
        key = (v.id, ctx.ident)
        hit = self.guards.get(key)
        if hit is not None:
            return hit
        self.ctx = ctx.parent  # type: ignore[assignment]
        try:
            outer = self.guard(v)
        finally:
            self.ctx = ctx
        mask = self.mask_for(ctx.mask, v.rank)
        g = self.record("%guard", code_of("%guard"), (mask, outer), v.pshape, None, guard=False,
                        promo=v.promo)
        self.guards[key] = g
        return g

    def is_outer(self, ctx: Ctx | None) -> bool:
        """Whether ``ctx`` encloses the current context (values from inside branches are not guarded)."""
        c = self.ctx.parent
        while c is not None:
            if c is ctx:
                return True
            c = c.parent
        return False

    def mask_for(self, mask: Var, rank: int) -> Var:
        """A mask brought to per-example rank ``rank`` (size-1 axes added, or `any` over extra axes)."""
        key = (mask.id, rank)
        hit = self.aligned_masks.get(key)
        if hit is not None:
            return hit
        out = mask
        while out.rank > rank:
            out = self.record("%any", code_of("%any"), (out,), out.pshape[:-1], None, guard=False, mask=True)
        if out.rank < rank:
            out = self.align(out, rank, guard=False)
        self.aligned_masks[key] = out
        return out

    def align(self, v: Var, rank: int, *, guard: bool = True) -> Var:
        extra = rank - v.rank
        code = TABLE["%align"].template(1, [v.pshape], {"rank": v.rank, "extra": extra})
        return self.record("%align", code, (v,), (1,) * extra + v.pshape, None, guard=guard, mask=v.mask,
                           promo=v.promo, params={"rank": v.rank, "extra": extra})

    # ---- expressions --------------------------------------------------------------------------

    def expr_If(self, node: ir.If, env: Env) -> Value:
        test = self.expr(node.test, env)
        choice = self.static_truth(test, node.test.span)
        if choice is not None:
            return self.expr(node.then if choice else node.orelse, env)
        mask = self.truth_mask(test)
        not_mask = self.record("%not", code_of("%not"), (mask,), mask.pshape, None, mask=True, guard=False)
        with self.branch(mask):
            a = self.expr(node.then, env)
        with self.branch(not_mask):
            b = self.expr(node.orelse, env)
        return self.select(mask, a, b, node.span)

    def static_truth(self, test: Value, span: Span | None) -> bool | None:
        """True/False when a test is decided while tracing, None when it depends on inputs."""
        if isinstance(test, Var):
            if test.sizedep and self.abstract:
                raise SizeDependent()
            return None
        nonzero = test != 0
        if bool(nonzero.all()):
            return True
        if not bool(nonzero.any()):
            return False
        return None

    def truth_mask(self, test: Value) -> Var:
        code = code_of("%truth")
        if isinstance(test, Var) and test.id in self.comparisons:
            # (if (< a b) ...): use the comparison's boolean directly, not 0/1 then != 0.
            compare, args, name, span = self.comparisons[test.id]
            return self.record(f"%truth[{name}]", compare, args, test.pshape, span, mask=True, promo=test.promo)
        if isinstance(test, Var):
            return self.record("%truth", code, (test,), test.pshape, None, mask=True, promo=test.promo)
        const = self.atom(test != 0)
        return self.record("%truth", "{0}", (const,), tuple(test.shape), None, mask=True)

    @contextmanager
    def branch(self, mask: Var) -> Iterator[None]:
        """Trace inside a branch taken where ``mask`` holds."""
        saved = self.ctx
        self.ctx = Ctx(saved, mask, saved.region, next(self.ctx_ids))
        try:
            yield
        finally:
            self.ctx = saved

    def select(self, mask: Value, a: Value, b: Value, span: Span | None) -> Value:
        """``where(mask, a, b)`` with per-example ranks aligned."""
        rank = max(len(pshape_of(mask)), len(pshape_of(a)), len(pshape_of(b)))
        try:
            pshape = sh.broadcast(pshape_of(mask), pshape_of(a), pshape_of(b))
        except sh.ShapeMismatch as e:
            raise ShapeError(f"the branches of this if do not fit together: {e}", span) from None
        args = [self.align(v, rank) if isinstance(v, Var) and v.rank < rank and not v.mask else v for v in (a, b)]
        m = self.mask_for(mask, rank) if isinstance(mask, Var) else mask
        promo = join_promo(*(v.promo for v in (a, b) if isinstance(v, Var)))
        return self.record("%where", code_of("%where"), (m, *args), pshape, span, promo=promo)

    # ---- calls of primitives ------------------------------------------------------------------

    def domain_check(self, prim: Primitive, args: list[Value], span: Span | None) -> None:
        """Record a check that the arguments are in the primitive's domain where this code runs."""
        if len(args) not in prim.domains:
            return
        rank = max(len(pshape_of(a)) for a in args)
        mask = self.path_mask(rank)
        self.domain_sites.append((prim.name, len(args), span))
        site = len(self.domain_sites) - 1
        head = [mask] if mask is not None else []
        code = TABLE["%domain"].template(len(head) + len(args), [()] * (len(head) + len(args)),
                                         {"site": site, "masked": mask is not None})
        self.record("%domain", code, [*head, *args], (), span, params={"effect": True})

    def path_mask(self, rank: int) -> Var | None:
        """The mask of the elements the current code runs for (the and of enclosing branches and loops)."""
        masks = []
        ctx: Ctx | None = self.ctx
        while ctx is not None:
            if ctx.mask is not None:
                masks.append(ctx.mask)
            ctx = ctx.parent
        if not masks:
            return None
        key = (self.ctx.ident, rank)
        if key not in self.path_masks:
            aligned = [self.mask_for(m, rank) for m in masks]
            out = aligned[0]
            for m in aligned[1:]:
                out = self.record("%and", code_of("%and"), (out, m), sh.broadcast(out.pshape, m.pshape), None,
                                  guard=False, mask=True)
            self.path_masks[key] = out
        return self.path_masks[key]
