"""`intermediates`: the value of every named intermediate of a program for given inputs.

The program is traced again by a tracer that notes, as it goes, the value of each ``let``/``let*``
binding, each call of a ``define``d (or ``letrec``) function, each used top-level ``define`` and
each ``euler``/``rk4`` (its stacked states); the recorded equations are then run one by one
(`nc.interpret`), which computes exactly what the compiled function computes. Names say what
and where::

    let v@3:9          the binding of v written at line 3, column 9
    let* a@2:10        a let* binding
    call drag-term@5:3 the value of the call (drag-term ...) at line 5, column 3
    define G@1:9       a top-level constant
    rk4@7:1            the states of an integration, stacked on a new first per-example axis

A name that is computed more than once (a function called from several places is named by each
call site; a call in a statically unrolled loop or recursion repeats) gets ``#2``, ``#3``, ...
Values are batched like the output: leading batch axes of all inputs, then the value's own
per-example axes. A binding inside a branch of an ``if`` is computed for every element (as the
compiled code does, under masks) and shown for every element, also where the branch is not
taken. Bindings inside a masked loop's body and the calls an integrator makes at each step are
not listed (they have no single value); the loop's or integrator's result is.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch

from . import ir
from .binding import bind_arguments
from .compiled import Compiled
from .errors import CallError, Span
from .failures import deep_recursion
from .interpret import Interpreter
from .program import ConstRef, Lit, Recording, Var, live_equations
from .runtime import dtype_device
from .signatures import split_shapes
from .trace import Env, Tracer, Value


class Recorder(Tracer):
    """A tracer that notes the value of each named intermediate (outside masked loop bodies)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.notes: list[tuple[str, Value]] = []
        self.quiet = 0  # inside an integrator: its step calls are not listed

    def note(self, kind: str, span: Span | None, value: Value) -> None:
        if self.quiet or self.eqns is not self.top_eqns:
            return
        where = f"@{span.line}:{span.column}" if span is not None else ""
        self.notes.append((f"{kind}{where}", value))

    def expr_Let(self, node: ir.Let, env: Env) -> Value:
        inner = Env(env)
        source = inner if node.sequential else env
        for b in node.bindings:
            inner.vars[b.key] = value = self.expr(b.value, source)
            self.note(f"{'let*' if node.sequential else 'let'} {b.name}", b.span, value)
        return self.expr(node.body, inner)

    def expr_Call(self, node: ir.Call, env: Env) -> Value:
        value = super().expr_Call(node, env)
        self.note(f"call {self.functions[node.fn].name}", node.span, value)
        return value

    def expr_Global(self, node: ir.Global, env: Env) -> Value:
        first = node.name not in self.globals
        value = super().expr_Global(node, env)
        if first:
            self.note(f"define {node.name}", self.constants_ir[node.name].span, value)
        return value

    def expr_Integrate(self, node: ir.Integrate, env: Env) -> Value:
        self.quiet += 1
        try:
            value = super().expr_Integrate(node, env)
        finally:
            self.quiet -= 1
        self.note(node.method, node.span, value)
        return value


def intermediates(fn_or_model: Any, *args: Any, **kwargs: Any) -> OrderedDict[str, torch.Tensor]:
    """Every named intermediate of a compiled function or `NcModule` for these inputs, in order.

    Call it as the function or module is called (positionally or by keyword). Returns an
    ordered dict from names such as ``"let v@3:9"`` (see the module docs) to tensors batched like
    the output; the last entry, ``"result"``, is the output itself.
    """
    compiled, values = _bind(fn_or_model, args, kwargs)
    with deep_recursion():
        compiled.program_for(values)  # settles the per-example ranks (and raises the program's errors)
        program, tracer = _trace(compiled, values)
    wanted = [(name, v) for name, v in tracer.notes]
    needed = {v.id for _, v in wanted if isinstance(v, Var)}
    if isinstance(program.output, Var):
        needed.add(program.output.id)
    interp = Interpreter(program)
    for var, x in zip(program.inputs, values):
        interp.values[var.id] = x.to(program.dtype) if x.is_floating_point() else x
    interp.run(live_equations(tracer.top_eqns, needed))
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    counts: dict[str, int] = {}
    batch = _batch_shape(program, values)
    for name, value in [*wanted, ("result", program.output)]:
        counts[name] = counts.get(name, 0) + 1
        key = name if counts[name] == 1 else f"{name}#{counts[name]}"
        rank = len(value.pshape) if isinstance(value, (Var, ConstRef)) else \
            value.dim() if isinstance(value, torch.Tensor) else 0
        out[key] = _batched(_value(interp, value, program), rank, batch)
    return out


def _bind(fn_or_model: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Compiled, list[torch.Tensor]]:
    compiled = getattr(fn_or_model, "_compiled", None)
    if not isinstance(compiled, Compiled):
        raise CallError(f"intermediates takes a compile_fn result or an nc module, got {type(fn_or_model).__name__}")
    if hasattr(fn_or_model, "param_names"):  # an NcModule: its parameters follow the inputs
        model = fn_or_model
        extra = [model.params[n] for n in model.param_names]
        given = bind_arguments(compiled, model.inputs, args, kwargs, extra=extra)
        return compiled, [given[i] for i in model._order]
    return compiled, bind_arguments(compiled, compiled.names, args, kwargs)


def _trace(compiled: Compiled, values: list[torch.Tensor]) -> tuple[Recording, Recorder]:
    dtype, device = dtype_device(values)

    def trace() -> tuple[Recording, Recorder]:
        tracer = Recorder(compiled.ir, abstract=False, max_iter=compiled.options.max_iter, dtype=dtype,
                          device=device, externals=compiled.modules, external_shapes=compiled.module_shapes)
        pshapes = split_shapes(compiled.inputs, values)
        inputs = {n: Var(next(tracer.ids), tuple(pshapes[n]), tracer.root, None) for n in compiled.names}
        return tracer.run(inputs), tracer
    return compiled.inputs.settle(trace)  # program_for settled the ranks already: one trace


def _value(interp: Interpreter, v: Any, program: Recording) -> torch.Tensor:
    if isinstance(v, Var):
        out = interp.values[v.id]
    elif isinstance(v, ConstRef):
        out = interp.constant(v)
    elif isinstance(v, Lit):
        out = torch.tensor(v.value, dtype=program.dtype, device=program.device)
    else:  # a value known while tracing (float64 on the CPU)
        out = v.to(device=program.device, dtype=program.dtype if v.dtype != torch.bool else torch.bool)
    return out if isinstance(out, torch.Tensor) else torch.as_tensor(out, dtype=program.dtype)


def _batch_shape(program: Recording, values: list[torch.Tensor]) -> torch.Size:
    return torch.broadcast_shapes(*(x.shape[: x.dim() - v.rank] for x, v in zip(values, program.inputs)))


def _batched(value: torch.Tensor, rank: int, batch: torch.Size) -> torch.Tensor:
    """``value`` with the batch axes of all inputs in front of its ``rank`` per-example axes (as vmap gives)."""
    own = value.shape[: value.dim() - rank]
    return value.expand((*torch.broadcast_shapes(own, batch), *value.shape[value.dim() - rank:]))
