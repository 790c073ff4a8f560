"""Tracing `loop`/`recur` and tail-recursive functions.

A loop is first unrolled while its exit is decided at trace time (constant counters). As soon
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
from .primitives import code_of
from .program import Region, Var, live_equations
from .trace import MAX_UNROLL, Ctx, Env, SizeDependent, TailResult, Tracer, Value, pshape_of


def trace_loop(tr: Tracer, key: str, bindings: Sequence[ir.Binding], inits: list[Value], body: ir.Expr,
               env: Env, span: Span | None) -> Value:
    state = list(inits)
    for _ in range(MAX_UNROLL):
        result = tail(tr, key, body, bind(env, bindings, state))
        if result.exits is True:
            assert result.value is not None
            return result.value
        if result.exits is False:
            assert result.state is not None
            state = result.state
            continue
        # This iteration is traced again as the masked loop's body; what it recorded here is
        # dead and dead-code elimination drops it (deleting it now would strand memoised guards).
        return masked_loop(tr, key, bindings, state, body, env, span)
    raise LimitError(f"this loop ran {MAX_UNROLL} iterations while tracing without exiting", span,
                     hint="a loop whose exit depends only on constants is unrolled; check its exit test")


def bind(env: Env, bindings: Sequence[ir.Binding], values: Sequence[Value]) -> Env:
    inner = Env(env)
    for b, v in zip(bindings, values):
        inner.vars[b.key] = v
    return inner


def tail(tr: Tracer, key: str, node: ir.Expr, env: Env) -> TailResult:
    """Trace a loop body in tail position: each leaf either exits with a value or recurs."""
    if isinstance(node, ir.Recur) and node.key == key:
        return TailResult(False, None, [tr.expr(a, env) for a in node.args])
    if isinstance(node, ir.Let):
        inner = Env(env)
        source = inner if node.sequential else env
        for b in node.bindings:
            inner.vars[b.key] = tr.expr(b.value, source)
        return tail(tr, key, node.body, inner)
    if isinstance(node, ir.Letrec):
        for fn in node.fns:
            tr.fn_envs[fn.key] = env
        return tail(tr, key, node.body, env)
    if isinstance(node, ir.If):
        test = tr.expr(node.test, env)
        choice = tr.static_truth(test, node.test.span)
        if choice is not None:
            return tail(tr, key, node.then if choice else node.orelse, env)
        return tail_branches(tr, key, node, test, env)
    return TailResult(True, tr.expr(node, env), None)


def tail_branches(tr: Tracer, key: str, node: ir.If, test: Value, env: Env) -> TailResult:
    mask = tr.truth_mask(test)
    if mask.rank:
        raise ShapeError("the exit test of a loop must be one number per example, got "
                         f"{sh.show(mask.pshape)}", node.test.span)
    not_mask = tr.record("%not", code_of("%not"), (mask,), (), None, mask=True, guard=False)
    with tr.branch(mask):
        a = tail(tr, key, node.then, env)
    with tr.branch(not_mask):
        b = tail(tr, key, node.orelse, env)
    exits = merge_exits(tr, mask, not_mask, a.exits, b.exits)
    value = merge(tr, mask, a.value, b.value, node.span)
    state = a.state if b.state is None else b.state
    if a.state is not None and b.state is not None:
        state = [tr.select(mask, x, y, node.span) for x, y in zip(a.state, b.state)]
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
    pa, pb = (tr.atom(torch.tensor(x)) if isinstance(x, bool) else x for x in (a, b))
    return tr.record("%where", code_of("%where"), (mask, pa, pb), (), None, mask=True)


def merge(tr: Tracer, mask: Var, a: Value | None, b: Value | None, span: Span | None) -> Value | None:
    if a is None or b is None:
        return a if b is None else b
    return tr.select(mask, a, b, span)


def masked_loop(tr: Tracer, key: str, bindings: Sequence[ir.Binding], state: list[Value], body: ir.Expr,
                env: Env, span: Span | None) -> Value:
    if tr.abstract and any(isinstance(v, Var) and v.sizedep for v in state):
        raise SizeDependent()
    outer_ctx, outer_eqns = tr.ctx, tr.eqns
    region_eqns: list = []
    tr.eqns = region_eqns
    active = tr.new_var((), mask=True)
    params = [tr.new_var(pshape_of(s)) for s in state]
    region = Region((active, *params), region_eqns, ())
    tr.ctx = Ctx(outer_ctx, active, region, next(tr.ctx_ids))
    for p in (active, *params):
        p.ctx = tr.ctx
    try:
        result = tail(tr, key, body, bind(env, bindings, params))
        outputs = region_outputs(tr, result, params, bindings, span)
    finally:
        tr.ctx, tr.eqns = outer_ctx, outer_eqns
    needed = {a.id for a in outputs if isinstance(a, Var)}
    region = Region((active, *params), live_equations(region_eqns, needed), outputs)
    value = result.value
    assert value is not None
    init = [tr.atom(s) if not isinstance(s, Var) else s for s in state]
    ranks = tuple(len(pshape_of(s)) for s in state)
    return tr.record("%loop", code_of("%loop"), init, pshape_of(value), span, region=region,
                     params={"ranks": ranks, "value_rank": len(pshape_of(value)), "max_iter": tr.max_iter})


def region_outputs(tr: Tracer, result: TailResult, params: list[Var], bindings: Sequence[ir.Binding],
                   span: Span | None) -> tuple:
    if result.value is None:
        raise NCTypeError("this loop never exits: every branch of its body recurs", span)
    nxt = result.state if result.state is not None else params
    for p, n, b in zip(params, nxt, bindings):
        if pshape_of(n) != p.pshape:
            raise ShapeError(f"loop variable '{b.name}' starts as {sh.show(p.pshape)} but recurs with "
                             f"{sh.show(pshape_of(n))}", b.span,
                             hint="give it an initial value of the shape it keeps")
    exits = result.exits
    exit_atom = tr.atom(torch.tensor(exits)) if isinstance(exits, bool) else exits
    value = tr.atom(result.value, tensor=True) if not isinstance(result.value, Var) else result.value
    state = tuple(tr.atom(n) if not isinstance(n, Var) else n for n in nxt)
    return (exit_atom, value, *state)
