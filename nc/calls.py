"""Tracing calls of primitives: variadic folds, comparison chains, static arguments, trace hooks."""

from __future__ import annotations

import torch

from . import ir
from .errors import ShapeError, Span
from .primitives import TABLE, Primitive
from .program import Var
from .shapes import show
from .tracer import Tracer
from .values import F64, Env, SizeDependent, Value, pshape_of


def trace_prim_call(tr: Tracer, node: ir.PrimCall, env: Env) -> Value:
    prim = TABLE[node.prim]
    n_dynamic = prim.dynamic if prim.dynamic is not None else len(node.args) - len(prim.static)
    if prim.literal_vector and all(isinstance(a, ir.Const) for a in node.args):
        # A literal vector [1 2 3 ...] is one constant, made at the cost of its elements only.
        tr.budget.spend(len(node.args), node.span)
        return torch.tensor([a.value for a in node.args], dtype=F64)  # type: ignore[attr-defined]
    args = [tr.expr(a, env) for a in node.args[:n_dynamic]]
    static_values = [tr.expr(a, env) for a in node.args[n_dynamic:]]
    if prim.data_index and any(data_dependent(tr, v) for v in static_values):
        return trace_data_index(tr, prim, args[0], static_values, node)
    statics = [tr.constant_int(v, f"the {name} argument of {prim.name}", a.span)
               for v, a, name in zip(static_values, node.args[n_dynamic:], prim.static)]
    params = dict(zip(prim.static, statics))
    span = node.span
    if prim.hook is not None:
        tr.check_ranks(prim, args, span)  # an undeclared input asked for its length is a vector
        return prim.hook(tr.branches, prim, args, span)  # type: ignore[no-any-return]
    if prim.variadic == "fold":
        return fold_left(tr, prim, args, span)
    if prim.variadic == "chain":
        return chain(tr, prim, args, span)
    return tr.apply(prim, args, span, params=params, ranks=prim.ranks_by_arity.get(len(node.args)))


def data_dependent(tr: Tracer, v: Value) -> bool:
    """A traced value (not one the compile-time pass only lacks the size for)."""
    return isinstance(v, Var) and not (v.sizedep and tr.abstract)


def trace_data_index(tr: Tracer, prim: Primitive, v: Value, indices: list[Value], node: ir.PrimCall) -> Value:
    """``(ref v i [j])`` / ``(roll v k)`` with an index from the data: one gather per index."""
    span = node.span
    if prim.data_index == "%roll":
        return index_step(tr, "%roll", v, indices[0], node.args[1].span, span)
    tr.check_ranks(prim, [v], span, prim.ranks_by_arity.get(len(node.args)))
    if len(indices) == 2 and len(pshape_of(v)) < 2:
        raise ShapeError(f"ref with two indices needs a matrix, got {show(pshape_of(v))}", span)
    for i, a in zip(indices, node.args[1:]):
        v = index_step(tr, "%ref", v, i, a.span, span)
    return v


def index_step(tr: Tracer, name: str, v: Value, i: Value, ispan: Span | None, span: Span | None) -> Value:
    row = TABLE[name]
    vshape = pshape_of(v)
    if not vshape:
        raise ShapeError(f"{name[1:]} needs a vector, got a scalar", span)
    if pshape_of(i):
        raise ShapeError(f"{name[1:]} needs a single number as index, got {show(pshape_of(i))}", ispan)
    if name == "%ref":
        n = vshape[0]
        if n is None:
            raise SizeDependent()
        if tr.check_domain:
            tr.domain_check(row, [i, torch.tensor(float(n), dtype=F64)], ispan)
        params = {"n": n, "rank": len(vshape)}
        return tr.branches.record(name, row.template(2, [vshape, ()], params), [v, i], vshape[1:], span,
                                  params=params)
    if tr.check_domain:
        tr.domain_check(row, [i], ispan)
    params = {"rank": len(vshape)}
    return tr.branches.record(name, row.template(2, [vshape, ()], params), [v, i], vshape, span, params=params)


def fold_left(tr: Tracer, prim: Primitive, args: list[Value], span: object) -> Value:
    """``(+ a b c)`` is ``(a + b) + c``; one argument uses the unary form; none the identity."""
    if not args:
        assert prim.identity is not None
        return torch.tensor(prim.identity, dtype=F64)
    if len(args) == 1:
        assert prim.unary is not None
        if prim.unary == "{0}":
            return args[0]
        return tr.apply(prim, args, span, code=prim.unary)  # type: ignore[arg-type]
    acc = args[0]
    for nxt in args[1:]:
        acc = tr.apply(prim, [acc, nxt], span, code=prim.code)  # type: ignore[arg-type]
    return acc


def chain(tr: Tracer, prim: Primitive, args: list[Value], span: object) -> Value:
    """``(< a b c)`` is ``(and (< a b) (< b c))``, each argument evaluated once."""
    pairs = [tr.apply(prim, [a, b], span, code=prim.code) for a, b in zip(args, args[1:])]  # type: ignore[arg-type]
    if len(pairs) == 1:
        return pairs[0]
    return fold_left(tr, TABLE["and"], pairs, span)

