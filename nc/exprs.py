"""Tracing the plain expressions: constants, names, top-level constants, ``let``, ``letrec``, ``if``.

Each function here is the rule for one IR node type (see `nc.trace.RULES`).
"""

from __future__ import annotations

import torch

from . import ir
from .errors import NCError, NCTypeError
from .tracer import Tracer
from .values import F64, Env, Value


def trace_const(tr: Tracer, node: ir.Const, env: Env) -> Value:
    return torch.tensor(node.value, dtype=F64)


def trace_local(tr: Tracer, node: ir.Local, env: Env) -> Value:
    return env.get(node.key)  # type: ignore[no-any-return]


def trace_input(tr: Tracer, node: ir.Input, env: Env) -> Value:
    return tr.inputs[node.name]


def trace_global(tr: Tracer, node: ir.Global, env: Env) -> Value:
    """A top-level constant: evaluated once, at the top of the program, wherever it is first used."""
    name = node.name
    if name in tr.globals:
        return tr.globals[name]
    if name in tr.evaluating:
        raise NCTypeError(f"the definition of '{name}' refers to itself", node.span,
                          hint="a constant cannot depend on its own value")
    tr.evaluating.add(name)
    try:
        with tr.build.at_top():  # globals are values of the whole program
            value = tr.expr(tr.constants_ir[name].value, Env())
    finally:
        tr.evaluating.discard(name)
    tr.globals[name] = value
    return value


def bind_let(tr: Tracer, node: ir.Let, env: Env) -> Env:
    """The environment of a let's body (let* bindings see the ones before them)."""
    inner = Env(env)
    source = inner if node.sequential else env
    for b in node.bindings:
        inner.vars[b.key] = tr.expr(b.value, source)
    return inner


def trace_let(tr: Tracer, node: ir.Let, env: Env) -> Value:
    return tr.expr(node.body, bind_let(tr, node, env))


def trace_letrec(tr: Tracer, node: ir.Letrec, env: Env) -> Value:
    tr.calls.define_local(node.fns, env)
    return tr.expr(node.body, env)


def trace_if(tr: Tracer, node: ir.If, env: Env) -> Value:
    """One branch when the test is decided while tracing; else both, joined with ``where``."""
    test = tr.expr(node.test, env)
    choice = tr.branches.static_truth(test)
    if choice is not None:
        return tr.expr(node.then if choice else node.orelse, env)
    mask = tr.branches.truth_mask(test)
    not_mask = tr.branches.negate(mask)
    with tr.branches.branch(mask):
        a = tr.expr(node.then, env)
    with tr.branches.branch(not_mask):
        b = tr.expr(node.orelse, env)
    return tr.branches.select(mask, a, b, node.span)


def trace_recur(tr: Tracer, node: ir.Recur, env: Env) -> Value:
    raise NCError("recur outside a loop body", node.span)  # the parser makes this unreachable
