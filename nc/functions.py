"""Tracing calls of user functions: inlined, memoised, bounded in nesting and static recursion.

A function whose self calls are all tail calls runs as a loop (`nc.loops`); any other call is
traced into its caller, once per distinct call (see `nc.callstack.CallStack`).
"""

from __future__ import annotations

from . import ir
from .errors import LimitError, NCTypeError, Span
from .loops import trace_loop
from .program import Var
from .tracer import Tracer
from .values import Env, SizeDependent, Value


def trace_call(tr: Tracer, node: ir.Call, env: Env) -> Value:
    args = [tr.expr(a, env) for a in node.args]
    return call_function(tr, tr.functions[node.fn], args, node.span)


def call_function(tr: Tracer, fn: ir.Function, args: list[Value], span: Span | None) -> Value:
    """The value of ``fn`` on ``args``, traced into the current context."""
    closure = tr.calls.closure(fn)
    if fn.tail_loop:
        return trace_loop(tr, fn.key, list(fn.params), args, fn.body, closure, span)
    check_depth(tr, fn, span)
    tr.budget.spend(1, span)
    memo = tr.calls.memo_key(fn, closure, tr.build.ctx, tr.build.eqns, args)
    hit = tr.calls.recall(memo)
    if hit is not None:
        return hit
    inner = Env(closure)
    for p, a in zip(fn.params, args):
        inner.vars[p.key] = a
    with tr.calls.entered(fn, tr.build.ctx):
        out = tr.expr(fn.body, inner)
    tr.calls.remember(memo, out, closure)
    return out


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
    raise NCTypeError(
        f"'{fn.name}' recurses on a value that depends on the inputs, and the call is not a tail call",
        span, hint="rewrite it with an accumulator so that the recursive call is the last thing the "
                   "function does (then it runs as a masked loop), or use (loop ...)")
