"""The tracer: interprets the IR once, with symbolic values, into a `Recording`.

Values are either *concrete* (float64 tensors on the CPU, known while tracing: literals,
loop counters, ``(eye 3)``) or *traced* (`Var`, known only by per-example shape). Operations
on concrete values fold; an ``if`` on a concrete test traces one branch; loops and recursion
on concrete values unroll. Branches on traced tests are traced in a `Ctx` whose mask guards
every outside value used inside (``where(mask, v, v.detach())``), so nothing from the branch
not taken reaches a value or a gradient. Loops whose exit depends on traced values become one
masked-loop equation (see `nc.loops`).

The tracer is composed of parts, each in its own module, and imports go one way:
`nc.values` (values, environments, contexts) < `nc.builder` (equations, CSE, budget) <
`nc.branches` (guards and masks) and `nc.callstack` (inlined calls, memo) < `nc.tracer` (the
`Tracer` that holds them and applies primitives) < the rules, one function per IR node type
(`nc.exprs`, `nc.calls`, `nc.loops`, `nc.functions`, `nc.integrate`, `nc.learned`) < this
module, which builds the dispatch table `RULES` and holds the limits below.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from . import exprs, ir
from .builder import Limits
from .calls import trace_prim_call
from .functions import trace_call
from .integrate import trace_integrate
from .learned import trace_external
from .loops import trace_loop_node
from .options import CompileOptions
from .tracer import Rule, Target, Tracer
from .values import F64, Env, Promote, SizeDependent, TailResult, Value, pshape_of

MAX_EQUATIONS = 2_000_000
"""Most equations one trace may record (unrolled loops count every step)."""

MAX_UNROLL = 100_000
"""Most iterations a loop, recursion or integration with constant control is unrolled for."""

MAX_CONSTANT_ELEMENTS = 10_000_000
"""Largest constant that (eye n), (zeros n) or (ones n) may build."""

MAX_CALL_DEPTH = 1000
"""Deepest nesting of function calls being traced (a chain of functions each calling the next)."""

MAX_RECURSION = 200
"""Deepest static (constant-argument) recursion of a function that is not a tail loop."""

MAX_WORK = 1_000_000
"""Most units of work one trace may do: each primitive applied (folded on constants or
recorded), each function call inlined and each literal vector element counts one. Bounds the
compile time of programs whose tracing blows up (calls that fan out, deep static recursion)."""

MAX_STATIC_INT = 2**53
"""Largest compile-time integer argument (ref indices, roll shifts, sizes, step counts)."""

MEMO_ELEMENTS = 64
"""Calls whose constant arguments have at most this many elements in all are memoised."""

RULES: Mapping[type, Rule] = {
    ir.Const: exprs.trace_const,
    ir.Local: exprs.trace_local,
    ir.Input: exprs.trace_input,
    ir.Global: exprs.trace_global,
    ir.Let: exprs.trace_let,
    ir.Letrec: exprs.trace_letrec,
    ir.If: exprs.trace_if,
    ir.PrimCall: trace_prim_call,
    ir.Call: trace_call,
    ir.External: trace_external,
    ir.Loop: trace_loop_node,
    ir.Recur: exprs.trace_recur,
    ir.Integrate: trace_integrate,
}
"""How each IR node type is traced: the one dispatch table of the tracer."""


def limits() -> Limits:
    """The limits above as they are now (a trace takes them when it starts; tests may lower them)."""
    return Limits(equations=MAX_EQUATIONS, unroll=MAX_UNROLL, constant_elements=MAX_CONSTANT_ELEMENTS,
                  call_depth=MAX_CALL_DEPTH, recursion=MAX_RECURSION, work=MAX_WORK, static_int=MAX_STATIC_INT,
                  memo_elements=MEMO_ELEMENTS)


def new_tracer(program: ir.SourceProgram, options: CompileOptions, *, abstract: bool, dtype: torch.dtype,
               device: torch.device, modules: Mapping[str, nn.Module] | None = None,
               rules: Mapping[type, Rule] = RULES) -> Tracer:
    """A tracer for one signature of ``program`` (``rules`` may extend `RULES`, as `nc.intermediates` does)."""
    return Tracer(program, options, Target(abstract=abstract, dtype=dtype, device=device), rules=rules,
                  limits=limits(), modules=modules)


def constant_value(program: ir.SourceProgram, name: str) -> Value | None:
    """The value of the top-level constant ``name`` of ``program`` if it is known without inputs, else None.

    Inputs are traced as scalars; a constant that depends on them is a traced value (not a
    tensor), and one that uses an input its own definition alone refers to gives None.
    """
    tracer = new_tracer(program, CompileOptions(max_iter=1), abstract=True, dtype=torch.float64,
                        device=torch.device("cpu"))
    tracer.inputs = {i: tracer.new_input(()) for i in program.inputs}
    try:
        return tracer.expr(ir.Global(name=name, span=tracer.constants_ir[name].span), Env())
    except KeyError:  # an input that only this definition uses
        return None


__all__ = ["F64", "MAX_CALL_DEPTH", "MAX_CONSTANT_ELEMENTS", "MAX_EQUATIONS", "MAX_RECURSION", "MAX_STATIC_INT",
           "MAX_UNROLL", "MAX_WORK", "MEMO_ELEMENTS", "RULES", "Env", "Promote", "Rule", "SizeDependent", "TailResult",
           "Tracer", "Value", "constant_value", "limits", "new_tracer", "pshape_of"]
