"""Running a `Recording` equation by equation (for `nc.intermediates` and `nc.fx`).

The lowering (`nc.lower`) writes a program as one generated Python function; this module runs
the same equations one at a time with the same templates, keeping every value by its `Var` id,
so that a caller can read any intermediate. The operations (and their order) are those of the
generated code, so the values are the same bits. ``ops`` lets `nc.fx` run the equations on
``torch.fx`` proxies instead of tensors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import torch

from . import runtime, scan
from .codegen import template_namespace
from .equations import Atom, ConstRef, Eqn, Lit, Region, Var
from .primitives import format_code

if TYPE_CHECKING:  # nc.program imports this module (through nc.fx)
    from .program import Recording

_CACHE: dict[tuple[str, int], Callable[..., Any]] = {}


def template_function(code: str, params: Mapping[str, Any], nargs: int, namespace: dict[str, Any]) -> Callable[..., Any]:
    """``lambda _dt, a0, a1, ...: <template>`` evaluated in ``namespace`` (templates are nc's own text)."""
    names = [f"a{k}" for k in range(nargs)]
    body = format_code(code, names, {**params, "dt": "_dt"})
    return eval(f"lambda _dt, {''.join(n + ', ' for n in names)}: {body}", namespace)  # noqa: S307


class Interpreter:
    """Runs a program's equations; ``values`` maps Var ids to what they computed."""

    def __init__(self, program: Recording, namespace: dict[str, Any] | None = None,
                 dtype: torch.dtype | None = None, device: torch.device | None = None,
                 loop: Callable[[Eqn, list[Any], Interpreter], Any] | None = None,
                 on_equation: Callable[[Eqn], None] | None = None) -> None:
        self.program = program
        self.dtype = dtype or program.dtype
        self.device = device or program.device
        self.namespace = namespace if namespace is not None else default_namespace(program)
        self.loop = loop or run_masked_loop
        self.on_equation = on_equation
        self.values: dict[int, Any] = {}
        self.functions: dict[tuple[str, str], Callable[..., Any]] = {}

    def constant(self, c: ConstRef) -> torch.Tensor:
        t = self.program.constants[c.index]
        return t.to(self.device) if t.dtype == torch.bool else t.to(dtype=self.dtype, device=self.device)

    def atom(self, a: Atom) -> Any:
        if isinstance(a, Var):
            return self.values[a.id]
        if isinstance(a, Lit):
            return a.value
        return self.constant(a)

    def run(self, eqns: list[Eqn]) -> None:
        for e in eqns:
            if self.on_equation is not None:
                self.on_equation(e)
            args = [self.atom(a) for a in e.args]
            if e.region is not None:
                self.values[e.out.id] = self.loop(e, args, self)
                continue
            key = (e.code, repr(sorted(e.params.items())) + f"/{len(args)}")
            fn = self.functions.get(key)
            if fn is None:
                fn = self.functions[key] = template_function(e.code, e.params, len(args), self.namespace)
            self.values[e.out.id] = fn(self.dtype, *args)

    def region_body(self, region: Region) -> Callable[..., tuple[Any, Any, tuple[Any, ...]]]:
        """The body of a masked loop as ``masked_loop`` calls it: (active, *state) -> (exit, value, next)."""
        def body(*inputs: Any) -> tuple[Any, Any, tuple[Any, ...]]:
            for v, x in zip(region.inputs, inputs):
                self.values[v.id] = x
            self.run(region.eqns)
            outs = [self.atom(a) for a in region.outputs]
            return outs[0], outs[1], tuple(outs[2:])
        return body


def run_masked_loop(e: Eqn, args: list[Any], interp: Interpreter) -> Any:
    """A ``%loop`` equation, as the generated code runs it (`nc.runtime.masked_loop`); a
    ``%scan`` (a rolled integration) as `nc.scan.rollout`."""
    assert e.region is not None
    p = e.params
    if e.prim == "%scan" and "trips" in p:  # a rolled constant-trip loop (nc.rollloop)
        def body(*inputs: Any) -> tuple[Any, ...]:
            for v, x in zip(e.region.inputs, inputs):  # type: ignore[union-attr]
                interp.values[v.id] = x
            interp.run(e.region.eqns)  # type: ignore[union-attr]
            return tuple(interp.atom(a) for a in e.region.outputs)  # type: ignore[union-attr]
        n = p["state"]
        return scan.repeat(body, tuple(args[:n]), p["trips"], p["lits"], tuple(args[n:]))
    if e.prim == "%scan":
        region = e.region

        def step(k: float, y: Any) -> Any:
            interp.values[region.inputs[0].id], interp.values[region.inputs[1].id] = k, y
            interp.run(region.eqns)
            return interp.atom(region.outputs[0])
        return scan.rollout(step, tuple(args), p["start"], p["steps"], p["axis"])
    return runtime.masked_loop(interp.region_body(e.region), tuple(args), p["ranks"], p["value_rank"], p["max_iter"],
                               stack=p.get("stack"))


def default_namespace(program: Recording) -> dict[str, Any]:
    """What the templates refer to: ``torch``, the runtime helpers and the learned components."""
    return template_namespace(program)
