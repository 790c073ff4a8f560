"""Tracing calls of primitives: variadic folds, comparison chains, static arguments, trace hooks."""

from __future__ import annotations

import torch

from . import ir
from .primitives import TABLE, Primitive
from .program import Var
from .trace import F64, Env, Tracer, Value


def prim_call(tr: Tracer, node: ir.PrimCall, env: Env) -> Value:
    prim = TABLE[node.prim]
    n_dynamic = prim.dynamic if prim.dynamic is not None else len(node.args) - len(prim.static)
    if prim.literal_vector and all(isinstance(a, ir.Const) for a in node.args):
        # A literal vector [1 2 3 ...] is one constant, made at the cost of its elements only.
        tr.spend(len(node.args), node.span)
        return torch.tensor([a.value for a in node.args], dtype=F64)  # type: ignore[attr-defined]
    args = [tr.expr(a, env) for a in node.args[:n_dynamic]]
    statics = [tr.constant_int(tr.expr(a, env), f"the {name} argument of {prim.name}", a.span)
               for a, name in zip(node.args[n_dynamic:], prim.static)]
    params = dict(zip(prim.static, statics))
    span = node.span
    if prim.hook is not None:
        tr.check_ranks(prim, args, span)  # an undeclared input asked for its length is a vector
        return prim.hook(tr, prim, args, span)  # type: ignore[arg-type]
    if prim.variadic == "fold":
        return fold_left(tr, prim, args, span)
    if prim.variadic == "chain":
        return chain(tr, prim, args, span)
    return tr.apply(prim, args, span, params=params, ranks=prim.ranks_by_arity.get(len(node.args)))


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


def is_traced(v: Value) -> bool:
    return isinstance(v, Var)
