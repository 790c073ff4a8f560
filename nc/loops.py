"""Tracing `loop`/`recur` and tail-recursive functions.

A loop is first unrolled while its exit is decided at trace time (constant counters); a long run
of identical iterations of such a loop becomes one rolled ``%scan`` equation (`nc.rollloop`). As soon
as an exit test depends on the inputs, the rest of the loop becomes one ``%loop`` equation
whose region is the body traced once with symbolic state: `nc.runtime.masked_loop` runs it
element by element for at most ``max_iter`` steps.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from . import ir
from . import shapes as sh
from .errors import LimitError, NCTypeError, ShapeError, Span
from .exprs import bind_let
from .primitives import code_of
from .program import Region, Var, live_equations
from .rollloop import Roller
from .tracer import Tracer
from .values import Env, SizeDependent, TailResult, Value, pshape_of


def trace_loop_node(tr: Tracer, node: ir.Loop, env: Env) -> Value:
    """``(loop ((v init) ...) body)``: the rule for `ir.Loop`."""
    inits = [tr.expr(b.value, env) for b in node.bindings]
    return trace_loop(tr, node.key, list(node.bindings), inits, node.body, env, node.span)


class FillShape(Exception):
    """Internal: a loop variable that started as a fill (a tail group's idle parameter) needs another shape."""

    def __init__(self, index: int, pshape: sh.Shape) -> None:
        super().__init__(index, pshape)
        self.index, self.pshape = index, pshape


def trace_loop(tr: Tracer, key: str, bindings: Sequence[ir.Binding], inits: list[Value], body: ir.Expr,
               env: Env, span: Span | None, *, fills: frozenset[int] = frozenset()) -> Value:
    """Unroll while the exit is decided by constants (rolling long runs of identical iterations,
    see `nc.rollloop`); then the rest is one masked loop."""
    state = list(inits)
    # At the top level, a long run of identical iterations is rolled into one loop (nc.rollloop).
    roller = Roller(tr, span) if tr.build.ctx is tr.build.root else None
    for _ in range(tr.limits.unroll):
        mark = len(tr.build.eqns)
        result = tail(tr, key, body, bind(env, bindings, state))
        if result.exits is True:
            assert result.value is not None
            if roller is not None:
                roller.iteration(mark, state, None, result.value)
            return result.value
        if result.exits is False:
            assert result.state is not None
            if roller is not None:
                roller.iteration(mark, state, result.state)
            state = result.state
            continue
        if roller is not None:
            roller.iteration(mark, state, None)
        # This iteration is traced again as the masked loop's body; what it recorded here is
        # dead and dead-code elimination drops it (deleting it now would strand memoised guards).
        return masked_loop(tr, key, bindings, state, body, env, span, fills)
    raise LimitError(f"this loop ran {tr.limits.unroll} iterations while tracing without exiting", span,
                     hint="a loop whose exit depends only on constants is unrolled; check its exit test")


def bind(env: Env, bindings: Sequence[ir.Binding], values: Sequence[Value]) -> Env:
    inner = Env(env)
    for b, v in zip(bindings, values):
        inner.vars[b.key] = v
    return inner


def tail(tr: Tracer, key: str, node: ir.Expr, env: Env) -> TailResult:
    """Trace a loop body in tail position: each leaf either exits with a value or recurs."""
    if isinstance(node, ir.Recur) and node.key == key:
        state = [tr.expr(a, env) for a in node.args]
        check_fills(tr, key, state, env)
        return TailResult(False, None, state)
    if isinstance(node, ir.Let):
        return tail(tr, key, node.body, bind_let(tr, node, env))
    if isinstance(node, ir.Letrec):
        tr.calls.define_local(node.fns, env)
        return tail(tr, key, node.body, env)
    if isinstance(node, ir.If):
        test = tr.expr(node.test, env)
        choice = tr.branches.static_truth(test)
        if choice is not None:
            return tail(tr, key, node.then if choice else node.orelse, env)
        return tail_branches(tr, key, node, test, env)
    return TailResult(True, tr.expr(node, env), None)


def check_fills(tr: Tracer, key: str, state: list[Value], env: Env) -> None:
    """Stop at once when a tail group calls a member whose parameters started with guessed shapes
    that are wrong (the callers are traced before their callees, so its body sees no bad guess)."""
    fills = tr.loop_fills.get(key)
    if fills is None:
        return
    bindings, indices = fills
    for i in indices:
        have = env.get(bindings[i].key)
        if pshape_of(state[i]) != pshape_of(have):
            raise FillShape(i, pshape_of(state[i]))


def tail_branches(tr: Tracer, key: str, node: ir.If, test: Value, env: Env) -> TailResult:
    mask = tr.branches.truth_mask(test)
    if mask.rank:
        raise ShapeError("the exit test of a loop must be one number per example, got "
                         f"{sh.show(mask.pshape)}", node.test.span)
    not_mask = tr.branches.negate(mask)
    with tr.branches.branch(mask):
        a = tail(tr, key, node.then, env)
    with tr.branches.branch(not_mask):
        b = tail(tr, key, node.orelse, env)
    exits = merge_exits(tr, mask, not_mask, a.exits, b.exits)
    value = merge(tr, mask, a.value, b.value, node.span)
    state = a.state if b.state is None else b.state
    if a.state is not None and b.state is not None:
        state = [tr.branches.select(mask, x, y, node.span) for x, y in zip(a.state, b.state)]
    return TailResult(exits, value, state)


def merge_exits(tr: Tracer, mask: Var, not_mask: Var, a: Value | bool, b: Value | bool) -> Value | bool:
    if a is True and b is True:
        return True
    if a is False and b is False:
        return False
    if a is True and b is False:
        return mask
    if a is False and b is True:
        return not_mask
    pa, pb = (tr.build.atom(torch.tensor(x)) if isinstance(x, bool) else x for x in (a, b))
    return tr.branches.record("%where", code_of("%where"), (mask, pa, pb), (), None, mask=True)


def merge(tr: Tracer, mask: Var, a: Value | None, b: Value | None, span: Span | None) -> Value | None:
    if a is None or b is None:
        return a if b is None else b
    return tr.branches.select(mask, a, b, span)


def masked_loop(tr: Tracer, key: str, bindings: Sequence[ir.Binding], state: list[Value], body: ir.Expr,
                env: Env, span: Span | None, fills: frozenset[int] = frozenset()) -> Value:
    if tr.abstract and any(isinstance(v, Var) and v.sizedep for v in state):
        raise SizeDependent()
    region_eqns: list = []
    active = tr.build.new_var((), mask=True)
    params = [tr.build.new_var(pshape_of(s)) for s in state]
    ctx = tr.build.new_ctx(active, Region((active, *params), region_eqns, ()))
    for p in (active, *params):
        p.ctx = ctx
    saved = tr.loop_fills.get(key)
    tr.loop_fills[key] = (tuple(bindings), fills)
    try:
        with tr.build.into(ctx, region_eqns):
            result = tail(tr, key, body, bind(env, bindings, params))
            outputs = region_outputs(tr, result, params, bindings, span, fills)
    finally:
        tr.loop_fills.pop(key)
        if saved is not None:
            tr.loop_fills[key] = saved
    needed = {a.id for a in outputs if isinstance(a, Var)}
    region = Region((active, *params), live_equations(region_eqns, needed), outputs)
    value = result.value
    assert value is not None
    init = [tr.build.atom(s) if not isinstance(s, Var) else s for s in state]
    ranks = tuple(len(pshape_of(s)) for s in state)
    return tr.branches.record("%loop", code_of("%loop"), init, pshape_of(value), span, region=region,
                     params={"ranks": ranks, "value_rank": len(pshape_of(value)), "max_iter": tr.options.max_iter})


def region_outputs(tr: Tracer, result: TailResult, params: list[Var], bindings: Sequence[ir.Binding],
                   span: Span | None, fills: frozenset[int] = frozenset()) -> tuple:
    if result.value is None:
        raise NCTypeError("this loop never exits: every branch of its body recurs", span)
    nxt = result.state if result.state is not None else params
    for i, (p, n, b) in enumerate(zip(params, nxt, bindings)):
        if pshape_of(n) != p.pshape and i in fills:
            raise FillShape(i, pshape_of(n))
        if pshape_of(n) != p.pshape:
            raise ShapeError(f"loop variable '{b.name}' starts as {sh.show(p.pshape)} but recurs with "
                             f"{sh.show(pshape_of(n))}", b.span,
                             hint="give it an initial value of the shape it keeps")
    exits = result.exits
    exit_atom = tr.build.atom(torch.tensor(exits)) if isinstance(exits, bool) else exits
    value = tr.build.atom(result.value) if not isinstance(result.value, Var) else result.value
    state = tuple(tr.build.atom(n) if not isinstance(n, Var) else n for n in nxt)
    return (exit_atom, value, *state)
