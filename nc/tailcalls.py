"""Tail calls: a function whose recursive calls to itself are all tail calls runs as a loop.

`make_tail_loop` finds such functions after parsing and rewrites their self tail calls into
`Recur` nodes keyed by the function, so the tracer treats the function body as a loop body.
The walks use explicit stacks or follow only tail positions, whose depth the reader bounds.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from . import ir


def make_tail_loop(fn: ir.Function) -> ir.Function:
    """Turn a function whose self calls are all tail calls into a loop over its parameters."""
    tail_calls, other_calls = count_self_calls(fn.body, fn.key)
    if tail_calls == 0 or other_calls:
        return fn
    return attrs.evolve(fn, body=rewrite_tail(fn.body, fn.key), tail_loop=True)


def count_self_calls(node: ir.Expr, key: str) -> tuple[int, int]:
    """(tail calls, other calls) of function ``key`` in ``node``; an explicit stack, no recursion."""
    tail = other = 0
    stack: list[tuple[object, bool]] = [(node, True)]
    while stack:
        n, in_tail = stack.pop()
        if isinstance(n, ir.Call) and n.fn == key:
            tail, other = tail + in_tail, other + (not in_tail)
        for child, child_tail in children(n):
            stack.append((child, in_tail and child_tail))
    return tail, other


def children(node: object) -> Sequence[tuple[object, bool]]:
    """Child nodes and whether each is in tail position relative to ``node``."""
    if isinstance(node, ir.If):
        return [(node.test, False), (node.then, True), (node.orelse, True)]
    if isinstance(node, ir.Let):
        return [(b.value, False) for b in node.bindings] + [(node.body, True)]
    if isinstance(node, ir.Letrec):
        return [(f.body, False) for f in node.fns] + [(node.body, True)]
    if isinstance(node, (ir.PrimCall, ir.Call, ir.Recur, ir.External)):
        return [(a, False) for a in node.args]
    if isinstance(node, ir.Loop):
        return [(b.value, False) for b in node.bindings] + [(node.body, False)]
    if isinstance(node, ir.Integrate):
        return [(node.y0, False), (node.dt, False), (node.steps, False)]
    return []


def rewrite_tail(node: ir.Expr, key: str) -> ir.Expr:
    if isinstance(node, ir.Call) and node.fn == key:
        return ir.Recur(args=node.args, key=key, span=node.span)
    if isinstance(node, ir.If):
        return attrs.evolve(node, then=rewrite_tail(node.then, key), orelse=rewrite_tail(node.orelse, key))
    if isinstance(node, (ir.Let, ir.Letrec)):
        return attrs.evolve(node, body=rewrite_tail(node.body, key))
    return node
