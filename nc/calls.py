"""Tracing calls of primitives: variadic folds, comparison chains, static arguments, `vlen`."""

from __future__ import annotations

import torch

from . import ir
from .errors import ShapeError
from .primitives import TABLE, Primitive
from .shapes import show
from .tracer import Tracer
from .values import F64, Env, Value, pshape_of


def trace_prim_call(tr: Tracer, node: ir.PrimCall, env: Env) -> Value:
    prim = TABLE[node.prim]
    n_static = len(prim.static)
    n_dynamic = len(node.args) - n_static if n_static else len(node.args)
    if prim.name == "ref":
        n_dynamic = 1
    if prim.name == "vec" and all(isinstance(a, ir.Const) for a in node.args):
        # A literal vector [1 2 3 ...] is one constant, made at the cost of its elements only.
        tr.budget.spend(len(node.args), node.span)
        return torch.tensor([a.value for a in node.args], dtype=F64)  # type: ignore[attr-defined]
    args = [tr.expr(a, env) for a in node.args[:n_dynamic]]
    statics = [tr.constant_int(tr.expr(a, env), f"the {name} argument of {prim.name}", a.span)
               for a, name in zip(node.args[n_dynamic:], prim.static)]
    params = dict(zip(prim.static, statics))
    span = node.span
    if prim.name == "vlen":
        tr.check_ranks(prim, args, span)  # an undeclared input asked for its length is a vector
        return vlen(tr, args[0], span)
    if prim.variadic == "fold":
        return fold_left(tr, prim, args, span)
    if prim.variadic == "chain":
        return chain(tr, prim, args, span)
    if prim.name == "ref" and len(statics) == 2:
        return tr.apply(prim, args, span, params=params, ranks=(2,))
    return tr.apply(prim, args, span, params=params)


def vlen(tr: Tracer, v: Value, span: object) -> Value:
    shape = pshape_of(v)
    if not shape:
        raise ShapeError(f"vlen needs a vector, got {show(shape)}", span)  # type: ignore[arg-type]
    if shape[-1] is None:
        # Unknown until a call: read the size at run time. Control flow on it is not possible
        # without the size (the tracer raises SizeDependent there, and calls are traced per shape).
        rank = len(shape)  # the size, with the argument's batch axes (as vmap would give)
        code = "torch.full({0}.shape[:{0}.dim() - " + str(rank) + "], {0}.shape[-1], dtype={dt}, device={0}.device)"
        out = tr.branches.record("%vlen", code, [v], (), span)  # type: ignore[arg-type]
        out.sizedep = True
        return out
    return torch.tensor(float(shape[-1]), dtype=F64)


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

