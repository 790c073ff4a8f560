"""Tracing `euler` and `rk4`: fixed-step integration, unrolled or rolled into one ``%scan``.

``(euler f y0 dt n)``: ``y_{k+1} = y_k + dt * f(t_k, y_k)``.
``(rk4 f y0 dt n)``: ``k1 = f(t, y)``, ``k2 = f(t + dt/2, y + dt/2*k1)``,
``k3 = f(t + dt/2, y + dt/2*k2)``, ``k4 = f(t + dt, y + dt*k3)``,
``y + dt/6*(k1 + 2*k2 + 2*k3 + k4)``, with ``t_k = k*dt``, evaluated in exactly that order.
The ``n+1`` states are stacked on a new first per-example axis.

Up to `nc.scan.ROLL_MIN` steps are unrolled. Longer integrations unroll only while the state is
a constant (its operations fold), then record the step once as a ``%scan`` equation (see
`nc.scan`): same operations in the same order, same bits, code of a size independent of ``n``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from . import ir
from . import shapes as sh
from .errors import LimitError, ShapeError, Span
from .functions import call_function
from .primitives import TABLE, code_of
from .program import Eqn, Region, Var, live_equations, region_uses
from .scan import ROLL_MIN
from .tracer import Tracer
from .values import F64, Env, Value, pshape_of


def trace_integrate(tr: Tracer, node: ir.Integrate, env: Env) -> Value:
    fn = tr.functions[node.fn]
    y = tr.expr(node.y0, env)
    dt = tr.expr(node.dt, env)
    steps = tr.constant_int(tr.expr(node.steps, env), f"the step count of {node.method}", node.steps.span)
    if steps > tr.limits.unroll:  # rolled too: the count bounds the run time, as MAX_UNROLL bounds a trace
        raise LimitError(f"{node.method} with {steps} steps: at most {tr.limits.unroll} steps are unrolled",
                         node.steps.span)
    if isinstance(dt, Var) and dt.rank:
        raise ShapeError(f"the step dt of {node.method} must be a scalar, got {sh.show(dt.pshape)}", node.dt.span)
    ops = Arith(tr, node.span)

    def f(t: Value, state: Value) -> Value:
        out = call_function(tr, fn, [t, state], node.span)
        if not fits(pshape_of(out), pshape_of(state)):
            raise ShapeError(f"the function of {node.method} returns {sh.show(pshape_of(out))} for a state "
                             f"of {sh.show(pshape_of(state))}", node.span)
        return out

    half = ops.div(dt, 2.0)
    sixth = ops.div(dt, 6.0)

    def step(k: Value, y: Value) -> Value:
        t = ops.mul(k, dt)
        if node.method == "euler":
            return ops.add(y, ops.mul(dt, f(t, y)))
        k1 = f(t, y)
        k2 = f(ops.add(t, half), ops.add(y, ops.mul(half, k1)))
        k3 = f(ops.add(t, half), ops.add(y, ops.mul(half, k2)))
        k4 = f(ops.add(t, dt), ops.add(y, ops.mul(dt, k3)))
        total = ops.add(ops.add(ops.add(k1, ops.mul(2.0, k2)), ops.mul(2.0, k3)), k4)
        return ops.add(y, ops.mul(sixth, total))

    states = [y]
    k = 0
    # A constant state folds: its steps are unrolled until the state depends on the inputs.
    while k < steps and (steps <= ROLL_MIN or not isinstance(y, Var) or tr.build.ctx is not tr.build.root):
        y = step(torch.tensor(float(k), dtype=F64), y)
        states.append(y)
        k += 1
    if k < steps:
        rolled = roll(tr, step, states, k, steps - k, dt, node.span)
        if rolled is not None:
            return rolled
        while k < steps:  # the step reads the time and dt is a constant: unrolled, as before
            y = step(torch.tensor(float(k), dtype=F64), y)
            states.append(y)
            k += 1
    return stack(tr, states, pshape_of(states[0]), node.span)


def roll(tr: Tracer, step: Callable[[Value, Value], Value], states: list[Value], start: int, count: int,
         dt: Value, span: Span | None) -> Value | None:
    """The steps ``start`` .. ``start + count - 1`` as one ``%scan`` equation whose value stacks
    ``states`` and the new states; None when rolling would change bits (the step reads ``t``
    while ``dt`` is a constant: unrolled, ``t`` and what depends on it alone fold in float64).

    The step is traced once in the current context with fresh inputs ``k`` and ``y``; the
    equations that depend on neither stay outside the loop (computed once, as the unrolled code's
    common subexpressions are), the rest form the region."""
    y = states[-1]
    assert isinstance(y, Var)
    build = tr.build
    mark = len(build.eqns)
    kvar = build.new_var(())
    yvar = build.new_var(y.pshape, promo=y.promo)
    nxt = step(kvar, yvar)
    assert isinstance(nxt, Var)
    recorded = build.eqns[mark:]
    del build.eqns[mark:]
    variant = {kvar.id, yvar.id}
    body: list[Eqn] = []
    for e in recorded:
        uses = {a.id for a in e.args if isinstance(a, Var)}
        if e.region is not None:
            uses |= region_uses(e.region)
        if uses & variant:
            variant.add(e.out.id)
            body.append(e)
        else:
            build.eqns.append(e)
    live = live_equations(body, {nxt.id})
    if not isinstance(dt, Var) and any(kvar.id in {a.id for a in e.args if isinstance(a, Var)} for e in live):
        return None
    rank = len(y.pshape)
    prefix = [tr.branches.align(s, rank) if isinstance(s, Var) and s.rank < rank else s for s in states]
    region = Region((kvar, yvar), live, (nxt,))
    return tr.branches.record("%scan", code_of("%scan"), prefix, (len(prefix) + count, *y.pshape), span,
                              region=region, params={"start": start, "steps": count, "axis": -(rank + 1)})


def fits(out: sh.Shape, state: sh.Shape) -> bool:
    """Whether a derivative of shape ``out`` can update a state of shape ``state``."""
    try:
        joined = sh.broadcast(out, state)
    except sh.ShapeMismatch:
        return False
    return len(joined) == len(state) and all(sh.same(a, b) for a, b in zip(joined, state))


def stack(tr: Tracer, states: list[Value], pshape: sh.Shape, span: Span | None) -> Value:
    rank = len(pshape)
    states = [tr.branches.align(s, rank) if isinstance(s, Var) and s.rank < rank else s for s in states]
    if all(isinstance(s, torch.Tensor) for s in states):
        return torch.stack(torch.broadcast_tensors(*states), dim=-(rank + 1))  # type: ignore[arg-type]
    return tr.branches.record("%stack", code_of("%stack"), states, (len(states), *pshape), span, params={"axis": -(rank + 1)})


class Arith:
    """Elementwise arithmetic on traced or concrete values, through the table's rows."""

    def __init__(self, tr: Tracer, span: Span | None) -> None:
        self.tr, self.span = tr, span

    def _op(self, name: str, a: Value | float, b: Value | float) -> Value:
        args = [torch.tensor(x, dtype=F64) if isinstance(x, float) else x for x in (a, b)]
        row = TABLE[name]
        return self.tr.apply(row, args, self.span, code=row.code)  # type: ignore[arg-type]

    def add(self, a: Value | float, b: Value | float) -> Value:
        return self._op("+", a, b)

    def mul(self, a: Value | float, b: Value | float) -> Value:
        return self._op("*", a, b)

    def div(self, a: Value | float, b: Value | float) -> Value:
        return self._op("/", a, b)
