"""`to_fx`: a `Recording` as a ``torch.fx.GraphModule``.

Each equation's template (the PyTorch expression of its primitive) is run on ``torch.fx``
proxies, so the graph holds the same torch calls as the generated code, in the same order:
its output equals the compiled function's. Every node made for an equation carries that
equation's source span in ``node.meta["nc_span"]`` (an `nc.errors.Span`) and a traceback-like
``node.meta["stack_trace"]`` (file, line, column and the source line), so ``print_tabular``,
node counts and fx passes work on nc programs and can point back at the source.

- Inputs are placeholders named after the program's inputs (made identifiers: ``g/L`` becomes
  ``g_L``; ``node.meta["nc_input"]`` keeps the spelling); constants are buffers ``c0``, ``c1``, ...
- nc's runtime helpers (``stack_last``, ``concat_last``, ``laplacian1d``, ...) are
  ``call_function`` nodes of the functions in `nc.runtime`; learned components are
  ``call_module`` nodes of submodules ``X0``, ``X1``, ...
- A masked loop (``%loop``) is one ``call_module`` node of a `MaskedLoop` submodule
  ``loop0``, ``loop1``, ...: its body runs `nc.runtime.masked_loop` through the equation
  interpreter (fx cannot express a loop whose trip count depends on data).
- The graph is specialised to the program's dtype (``fn.program(*example_args)`` records one for
  the examples' dtype; ``fn.program()`` gives the default dtype's).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import torch
import torch.fx
from torch import nn

from . import runtime
from .equations import ConstRef, Eqn, Var, live_equations, region_uses
from .errors import Span
from .interpret import Interpreter, default_namespace, run_masked_loop

if TYPE_CHECKING:  # nc.program imports this module: Recording.to_fx
    from .program import Recording


class MaskedLoop(nn.Module):
    """A ``%loop`` equation as a module: ``forward(*initial_state, *captured)`` runs the loop."""

    def __init__(self, program: Recording, eqn: Eqn, captured: list[int], dtype: torch.dtype) -> None:
        super().__init__()
        self.program, self.eqn, self.captured, self.dtype = program, eqn, captured, dtype
        self.nstate = len(eqn.args)

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        state, outer = list(args[: self.nstate]), args[self.nstate:]
        device = state[0].device if state and isinstance(state[0], torch.Tensor) else self.program.device
        interp = Interpreter(self.program, default_namespace(self.program), self.dtype, device)
        interp.values.update(zip(self.captured, outer))
        return run_masked_loop(self.eqn, state, interp)  # type: ignore[no-any-return]


class _SpanTracer(torch.fx.proxy.GraphAppendingTracer):
    """Appends to a graph, stamps nodes with the current equation's span, keeps tensors as buffers."""

    def __init__(self, graph: torch.fx.Graph, root: nn.Module) -> None:
        super().__init__(graph)
        self.root = root
        self.span: Span | None = None
        self.prim = ""
        self.tensors = 0

    def create_node(self, *args: Any, **kwargs: Any) -> torch.fx.Node:
        node = super().create_node(*args, **kwargs)
        node.meta["nc_prim"] = self.prim
        if self.span is not None:
            node.meta["nc_span"] = self.span
            node.meta["stack_trace"] = stack_trace(self.span)
        return node

    def create_arg(self, a: Any) -> Any:
        if isinstance(a, torch.Tensor):  # a tensor made while tracing (a constant of a template)
            name = f"_const{self.tensors}"
            self.tensors += 1
            self.root.register_buffer(name, a)
            return self.create_node("get_attr", name, (), {})
        return super().create_arg(a)


def stack_trace(span: Span) -> str:
    src = span.source
    return (f'  File "{src.name}", line {span.line}, column {span.column}, in nc program\n'
            f"    {src.line_text(span.line).strip()}\n")


class _Runtime:
    """``_rt`` for templates run on proxies: each helper becomes a ``call_function`` node."""

    def __init__(self, tracer: _SpanTracer) -> None:
        self._tracer = tracer

    def __getattr__(self, name: str) -> Any:
        target = getattr(runtime, name)
        return lambda *args, **kwargs: self._tracer.create_proxy("call_function", target, args, kwargs)


class _Torch:
    """``torch`` for templates run on proxies: ``broadcast_tensors`` gives a tuple that can be unpacked."""

    def __init__(self, tracer: _SpanTracer) -> None:
        self._tracer = tracer

    def __getattr__(self, name: str) -> Any:
        return getattr(torch, name)

    def broadcast_tensors(self, *xs: Any) -> tuple[Any, ...]:
        both = self._tracer.create_proxy("call_function", torch.broadcast_tensors, xs, {})
        return tuple(both[i] for i in range(len(xs)))  # type: ignore[index]


class _Module:
    """``X<i>`` for templates run on proxies: a ``call_module`` node."""

    def __init__(self, tracer: _SpanTracer, name: str) -> None:
        self.tracer, self.name = tracer, name

    def __call__(self, *args: Any) -> Any:
        return self.tracer.create_proxy("call_module", self.name, args, {})


class _ProxyInterpreter(Interpreter):
    def __init__(self, program: Recording, tracer: _SpanTracer, dtype: torch.dtype) -> None:
        namespace: dict[str, Any] = {"torch": _Torch(tracer), "_rt": _Runtime(tracer)}
        namespace.update({f"X{i}": _Module(tracer, f"X{i}") for i in range(len(program.externals))})
        super().__init__(program, namespace, dtype, loop=self.loop_node, on_equation=self.enter)
        self.tracer = tracer
        self.loops = 0

    def enter(self, e: Eqn) -> None:
        self.tracer.span, self.tracer.prim = e.span, e.prim

    def constant(self, c: ConstRef) -> Any:
        return self.tracer.create_proxy("get_attr", f"c{c.index}", (), {})

    def loop_node(self, e: Eqn, args: list[Any], interp: Interpreter) -> Any:
        assert e.region is not None
        captured = sorted(region_uses(e.region) & set(self.values))
        name = f"loop{self.loops}"
        self.loops += 1
        self.tracer.root.add_module(name, MaskedLoop(self.program, e, captured, self.dtype))
        return self.tracer.create_proxy("call_module", name, (*args, *[self.values[i] for i in captured]), {})


def to_fx(program: Recording, *, dtype: torch.dtype | None = None) -> torch.fx.GraphModule:
    """The recorded ``program`` (``fn.program(...)``) as a ``torch.fx.GraphModule``.

    ``gm(*inputs)`` takes the inputs in ``program.input_names`` order and returns what the
    compiled function returns for them (in ``dtype``, default the program's).
    """
    dtype = dtype or program.dtype
    root = nn.Module()
    for i, c in enumerate(program.constants):
        root.register_buffer(f"c{i}", c if c.dtype == torch.bool else c.to(dtype))
    for i, module in enumerate(program.externals):
        root.add_module(f"X{i}", module)
    graph = torch.fx.Graph()
    tracer = _SpanTracer(graph, root)
    interp = _ProxyInterpreter(program, tracer, dtype)
    placeholders = []
    for name, var in zip(program.input_names, program.inputs):
        node = graph.placeholder(_identifier(name))
        node.meta["nc_input"] = name
        placeholders.append(torch.fx.Proxy(node, tracer))
        interp.values[var.id] = placeholders[-1]
    out = program.output
    needed = {out.id} if isinstance(out, Var) else set()
    interp.run(live_equations(program.eqns, needed))
    tracer.span, tracer.prim = None, "return"
    result = interp.atom(out)
    if not isinstance(out, Var) or not needed >= {v.id for v in program.inputs}:
        # As the generated code does: a result that ignores some inputs still gets their batch axes.
        ranks = tuple(v.rank for v in program.inputs)
        rank = len(out.pshape) if isinstance(out, (Var, ConstRef)) else 0
        result = tracer.create_proxy("call_function", runtime.expand_batch,
                                     (result, tuple(placeholders), ranks, rank), {})
    graph.output(tracer.create_arg(result))
    return torch.fx.GraphModule(root, graph, class_name="NcProgram")


def _identifier(name: str) -> str:
    out = re.sub(r"\W", "_", name)
    return out if out and not out[0].isdigit() else f"_{out}"
