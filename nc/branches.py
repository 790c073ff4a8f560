"""Branches on traced tests: the branch state (guards, masks, comparisons) composed into the tracer.

An ``if`` whose test depends on the inputs traces both branches, each in a `Ctx` whose mask
says where it is taken. Every value from outside that a branch uses enters it through
`BranchState.guard` as ``where(mask, v, v.detach())``, so the branch not taken reaches neither the
value nor any gradient; `select` then joins the branches with ``where``. With
``check_domain=True``, `path_mask` gives the elements the current code runs for.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from . import shapes as sh
from .builder import Builder
from .errors import ShapeError, Span
from .primitives import TABLE, code_of
from .program import Atom, Promo, Region, Var, join_promo
from .values import SizeDependent, Value, pshape_of

Comparison = tuple[str, tuple[Atom, ...], str, Span | None]


class BranchState:
    """Guards, aligned masks and comparison masks of the branches being traced, over one `Builder`."""

    def __init__(self, build: Builder, *, abstract: bool) -> None:
        self.build = build
        self.abstract = abstract  # compile-time pass: a test on an unknown size stops the trace
        self.guards: dict[tuple[int, int], Var] = {}
        self.aligned_masks: dict[tuple[int, int], Var] = {}
        self.comparisons: dict[int, Comparison] = {}  # 0/1 result -> the comparison's own mask
        self.path_masks: dict[tuple[int, int], Var] = {}

    # ---- recording under guards ---------------------------------------------------------------
    def record(self, prim: str, code: str, args: Sequence[Value | Atom], pshape: sh.Shape, span: Span | None,
               *, params: dict[str, Any] | None = None, py_scalars: bool = False, mask: bool = False,
               promo: Promo | None = None, guard: bool = True, region: Region | None = None) -> Var:
        """Record one equation; traced arguments from outer contexts are guarded first."""
        atoms = tuple(self.build.atom(a, py_scalar=py_scalars) if not isinstance(a, Var) else
                      (self.guard(a) if guard else a) for a in args)
        sizedep = any(isinstance(a, Var) and a.sizedep for a in args)
        return self.build.record(prim, code, atoms, pshape, span, params=params, mask=mask, promo=promo,
                                 sizedep=sizedep, region=region)

    def guard(self, v: Var) -> Var:
        """``v`` as seen from the current context: masked so that outside elements get no gradient."""
        ctx = self.build.ctx
        if v.ctx is ctx or ctx.mask is None or v.mask or v.ctx is None or not v.ctx.encloses(ctx):
            return v
        key = (v.id, ctx.ident)
        hit = self.guards.get(key)
        if hit is not None:
            return hit
        with self.build.into(ctx.parent):  # type: ignore[arg-type]
            outer = self.guard(v)
        mask = self.mask_for(ctx.mask, v.rank)
        g = self.record("%guard", code_of("%guard"), (mask, outer), v.pshape, None, guard=False, promo=v.promo)
        self.guards[key] = g
        return g

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
        """``v`` with size-1 per-example axes in front, up to rank ``rank``."""
        params = {"rank": v.rank, "extra": rank - v.rank}
        code = TABLE["%align"].template(1, [v.pshape], params)
        return self.record("%align", code, (v,), (1,) * params["extra"] + v.pshape, None, guard=guard,
                           mask=v.mask, promo=v.promo, params=params)

    # ---- tests and branches -------------------------------------------------------------------
    def static_truth(self, test: Value) -> bool | None:
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

    def note_comparison(self, out: Var, mask_code: str, name: str, span: Span | None) -> None:
        """Remember that ``out`` is the 0/1 result of a comparison whose boolean is ``mask_code``,
        so an ``if`` on it can use the boolean directly."""
        if out.id not in self.comparisons:
            self.comparisons[out.id] = (mask_code, self.build.eqns[-1].args, name, span)

    def truth_mask(self, test: Value) -> Var:
        """The boolean mask where ``test`` is non-zero."""
        if isinstance(test, Var) and test.id in self.comparisons:
            # (if (< a b) ...): use the comparison's boolean directly, not 0/1 then != 0.
            compare, args, name, span = self.comparisons[test.id]
            return self.record(f"%truth[{name}]", compare, args, test.pshape, span, mask=True, promo=test.promo)
        if isinstance(test, Var):
            return self.record("%truth", code_of("%truth"), (test,), test.pshape, None, mask=True,
                               promo=test.promo)
        const = self.build.atom(test != 0)
        return self.record("%truth", "{0}", (const,), tuple(test.shape), None, mask=True)

    def negate(self, mask: Var) -> Var:
        """The mask of the other branch."""
        return self.record("%not", code_of("%not"), (mask,), mask.pshape, None, mask=True, guard=False)

    @contextmanager
    def branch(self, mask: Var) -> Iterator[None]:
        """Trace inside a branch taken where ``mask`` holds."""
        with self.build.into(self.build.new_ctx(mask, self.build.ctx.region)):
            yield

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

    def path_mask(self, rank: int) -> Var | None:
        """The mask of the elements the current code runs for (the and of enclosing branches and loops)."""
        masks = self.build.ctx.masks()
        if not masks:
            return None
        key = (self.build.ctx.ident, rank)
        if key not in self.path_masks:
            aligned = [self.mask_for(m, rank) for m in masks]
            out = aligned[0]
            for m in aligned[1:]:
                out = self.record("%and", code_of("%and"), (out, m), sh.broadcast(out.pshape, m.pshape), None,
                                  guard=False, mask=True)
            self.path_masks[key] = out
        return self.path_masks[key]
