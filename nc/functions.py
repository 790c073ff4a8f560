"""Tracing calls of user functions: inlined, memoised, bounded in nesting and static recursion.

A function whose self calls are all tail calls runs as a loop (`nc.loops`); any other call is
traced into its caller, once per distinct call (see `nc.callstack.CallStack`).
"""

from __future__ import annotations

import torch

from . import ir
from .errors import LimitError, NCTypeError, Span
from .loops import FillShape, trace_loop
from .program import Var
from .recursion import RecurseOnData, trace_recursion
from .tracer import Tracer
from .values import F64, Env, SizeDependent, Value, pshape_of


def trace_call(tr: Tracer, node: ir.Call, env: Env) -> Value:
    args = [tr.expr(a, env) for a in node.args]
    replay = tr.replays.get(node.fn)
    if replay is not None:
        return replay.site(tr, node, args)  # type: ignore[no-any-return]
    return call_function(tr, tr.functions[node.fn], args, node.span)


def call_function(tr: Tracer, fn: ir.Function, args: list[Value], span: Span | None) -> Value:
    """The value of ``fn`` on ``args``, traced into the current context."""
    closure = tr.calls.closure(fn)
    if fn.tail_loop:
        return trace_loop(tr, fn.key, list(fn.params), args, fn.body, closure, span)
    if fn.tail_group is not None:
        return call_group(tr, fn, fn.tail_group, args, closure, span)
    check_depth(tr, fn, span)
    tr.budget.spend(1, span)
    memo = tr.calls.memo_key(fn, closure, tr.build.ctx, tr.build.eqns, args)
    hit = tr.calls.recall(memo)
    if hit is not None:
        return hit
    inner = Env(closure)
    for p, a in zip(fn.params, args):
        inner.vars[p.key] = a
    try:
        with tr.calls.entered(fn, tr.build.ctx):
            out = tr.expr(fn.body, inner)
    except RecurseOnData as e:
        if e.key != fn.key or tr.calls.depth(fn, tr.build.ctx)[0] > 0:
            raise  # the outermost call of the function runs it on a stack
        out = trace_recursion(tr, fn, args, closure, span)
    tr.calls.remember(memo, out, closure)
    return out


def call_group(tr: Tracer, fn: ir.Function, loop: ir.Loop, args: list[Value], closure: Env,
               span: Span | None) -> Value:
    """Run ``fn``'s group of mutual tail calls as one loop (see `nc.tailcalls.make_tail_groups`).

    The other members' parameters start as fills; their per-example shapes are guessed (those of
    ``fn``'s arguments where the arity matches, else scalars) and corrected when the masked loop
    finds a member called with other shapes.
    """
    arity = len(fn.params)
    shapes: dict[int, tuple[int | None, ...]] = {}
    for _ in range(len(loop.bindings) + 1):
        inits: list[Value] = [torch.tensor(0.0, dtype=F64)]
        fills: set[int] = set()
        pos = 1
        for owner in group_members(tr, loop):
            if owner.key == fn.key:
                inits.extend(args)
            else:
                for k, _p in enumerate(owner.params):
                    guess = pshape_of(args[k]) if len(owner.params) == arity else ()
                    shape = shapes.get(pos + k, guess)
                    if any(d is None for d in shape):
                        raise SizeDependent()  # a fill of open size: the calls that know the sizes trace it
                    inits.append(torch.zeros([d or 0 for d in shape], dtype=F64))
                    fills.add(pos + k)
            pos += len(owner.params)
        inits[0] = torch.tensor(float(group_members(tr, loop).index(fn)), dtype=F64)
        try:
            return trace_loop(tr, loop.key, list(loop.bindings), inits, loop.body, closure, span,
                              fills=frozenset(fills))
        except FillShape as e:
            if shapes.get(e.index) == e.pshape:
                raise
            shapes[e.index] = e.pshape
    raise AssertionError("unreachable: each retry fixes one more fill shape")


def group_members(tr: Tracer, loop: ir.Loop) -> list[ir.Function]:
    """The members of a tail group, in the order of its loop variables."""
    return [tr.functions[k] for k in loop.key.removeprefix("group:").split(",")]


def check_depth(tr: Tracer, fn: ir.Function, span: Span | None) -> None:
    """Reject recursion on traced values that is not a tail call, and calls nested too deep."""
    depth, crossed = tr.calls.depth(fn, tr.build.ctx)
    if crossed:
        recursion_on_inputs(tr, fn, span)
    tr.calls.check_nesting(span)
    if depth >= tr.limits.recursion:
        raise LimitError(f"'{fn.name}' recurses more than {tr.limits.recursion} deep", span,
                         hint="write the recursion as a tail call or a loop")


def recursion_on_inputs(tr: Tracer, fn: ir.Function, span: Span | None) -> None:
    if tr.abstract and any(m.sizedep for m in tr.build.ctx.masks() if isinstance(m, Var)):
        raise SizeDependent()
    raise RecurseOnData(fn.key)
    raise NCTypeError(
        f"'{fn.name}' recurses on a value that depends on the inputs, and the call is not a tail call",
        span, hint="rewrite it with an accumulator so that the recursive call is the last thing the "
                   "function does (then it runs as a masked loop), or use (loop ...)")
