"""`NcModule`: a compiled program as a `torch.nn.Module` with trainable constants."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from . import ir
from .api import DEFAULT_MAX_ITER
from .binding import bind_arguments
from .compiled import Compiled, ShapeSpec, deep_recursion
from .errors import CallError, NCTypeError
from .parse import parse
from .program import Var
from .trace import Env, Tracer


class NcModule(nn.Module):
    """An nc program as an ``nn.Module``: named constants are ``nn.Parameter``s, the rest is frozen.

    ``model(*inputs)`` takes the program's inputs that are not parameters, positionally or by
    keyword. Parameters live in ``model.params`` (an ``nn.ParameterDict``; ``model.G`` also works
    for names that are Python identifiers). The module works with ``functional_call`` (so
    ``vmap`` over parameter batches), ``state_dict``, ``.to()``, ``.double()``, ``deepcopy`` and
    pickling, which stores the source, the options and the state, not closures.

    Parameters are made in ``dtype`` (default: ``torch.get_default_dtype()``); ``to_source()``
    writes their values in full precision, so ``nc.compile(m.to_source(), trainable=...,
    dtype=d)`` rebuilds an equal module of dtype ``d``.
    """

    def __init__(self, src: str, *, params: Mapping[str, Any] | None = None, trainable: Sequence[str] | None = None,
                 shapes: ShapeSpec | None = None, max_iter: int = DEFAULT_MAX_ITER, name: str = "<program>",
                 check_domain: bool = False, modules: Mapping[str, nn.Module] | None = None,
                 module_shapes: Mapping[str, Sequence[int]] | None = None, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        params = dict(params or {})
        trainable = list(trainable or [])
        if isinstance(trainable, str):
            trainable = [trainable]
        self.source = src
        self.options = {"shapes": dict(shapes or {}), "max_iter": max_iter, "name": name,
                        "check_domain": check_domain, "module_shapes": dict(module_shapes or {})}
        # Learned components are submodules: their parameters are this module's parameters.
        self.learned = nn.ModuleDict(dict(modules or {}))
        dtype = dtype or torch.get_default_dtype()
        initial = {**trainable_values(src, trainable, name, tuple(modules or ()), dtype),
                   **{k: as_param_value(k, v, dtype) for k, v in params.items()}}
        fixed = {k: tuple(v.shape) for k, v in initial.items()}
        self._compiled = Compiled(src, shapes=shapes, max_iter=max_iter, name=name, promote=trainable, fixed=fixed,
                                  check_domain=check_domain, modules=dict(self.learned.items()),
                                  module_shapes=module_shapes)
        for key in params:
            if key not in self._compiled.names:
                raise CallError(f"params= names '{key}', which is not a free name of the program "
                                f"(free names: {', '.join(self._compiled.names) or 'none'})",
                                hint="a top-level (define name value) becomes a parameter with trainable=")
        self.params = nn.ParameterDict({k: nn.Parameter(v) for k, v in initial.items()})
        self.trainable_names = tuple(trainable)
        self.param_names = tuple(n for n in self._compiled.names if n in initial)
        self.inputs: tuple[str, ...] = tuple(n for n in self._compiled.names if n not in initial)
        position = {n: i for i, n in enumerate((*self.inputs, *self.param_names))}
        self._order = [position[n] for n in self._compiled.names]
        self._n = len(self.inputs)
        object.__setattr__(self, "_table", self.params._parameters)  # not a submodule: a view

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        # Read parameters from the ParameterDict's table, where functional_call swaps them in.
        table = self._table
        if not kwargs and len(args) == self._n:
            generic = self._compiled.generic
            if generic is not None:  # the entry function: it falls back to the checked path itself
                given = (*args, *[table[n] for n in self.param_names])
                return generic.fn(*[given[i] for i in self._order])
        extra = [table[n] for n in self.param_names]
        values = bind_arguments(self._compiled, self.inputs, args, kwargs, extra=extra)
        return self._compiled.run([values[i] for i in self._order])

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            params = self.__dict__.get("_modules", {}).get("params")
            if params is not None and name in params:
                return params[name]
            raise

    def to_source(self) -> str:
        """The program with every parameter as a top-level ``(define name value)`` at its current value."""
        with deep_recursion():
            program = parse(self.source, name=str(self.options["name"]), externals=tuple(self.learned))
        text = self.source
        cuts = sorted((d.form_span.start, d.form_span.end) for d in program.constants
                      if d.name in self.trainable_names and d.form_span is not None)
        for start, end in reversed(cuts):
            text = text[:start] + text[end:]
        header = "".join(f"(define {n} {value_source(self.params[n])})\n" for n in self.param_names)
        return header + text.lstrip()

    def extra_repr(self) -> str:
        learned = f", learned=({' '.join(self.learned)})" if len(self.learned) else ""
        return f"inputs=({' '.join(self.inputs)}), params=({' '.join(self.param_names)}){learned}"

    def __reduce__(self) -> tuple[Any, ...]:
        state = {n: self.params[n].detach().clone() for n in self.param_names}
        grads = {n: self.params[n].requires_grad for n in self.param_names}
        return (_rebuild, (self.source, self.options, self.trainable_names, state, grads, self.training,
                           dict(self.learned.items())))


def _rebuild(source: str, options: dict[str, Any], trainable: Sequence[str], state: dict[str, torch.Tensor],
             grads: dict[str, bool], training: bool, modules: dict[str, nn.Module] | None = None) -> NcModule:
    free = {k: v for k, v in state.items() if k not in trainable}
    model = NcModule(source, params=free, trainable=list(trainable), modules=modules, **options)
    with torch.no_grad():
        for n, v in state.items():
            model.params[n].data = v.clone()
            model.params[n].requires_grad_(grads[n])
    model.train(training)
    return model


def as_param_value(name: str, v: Any, dtype: torch.dtype) -> torch.Tensor:
    if isinstance(v, torch.Tensor):
        return v.detach().clone().to(v.dtype if v.is_floating_point() else dtype)
    try:
        return torch.tensor(v, dtype=dtype)
    except (TypeError, ValueError):
        raise CallError(f"params['{name}'] must be a number or a tensor, got {type(v).__name__}") from None


def trainable_values(src: str, names: Sequence[str], file: str, externals: Sequence[str] = (),
                     dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """Initial values of the top-level defines named trainable (they must be constants)."""
    if not names:
        return {}
    program = parse(src, name=file, promote=names, externals=externals)
    defined = {d.name: d for d in program.constants}
    out = {}
    for n in names:
        if n not in defined:
            from .suggest import closest

            near = closest(n, defined)
            raise CallError(f"trainable= names '{n}', which is not a top-level (define {n} value) "
                            f"(defined constants: {', '.join(defined) or 'none'})",
                            hint=f"did you mean '{near[0]}'?" if near else "free names become parameters with params=")
        tracer = Tracer(program, abstract=True, max_iter=1, dtype=torch.float64, device=torch.device("cpu"))
        tracer.inputs = {i: Var(next(tracer.ids), (), tracer.root) for i in program.inputs}
        try:
            value = tracer.expr(ir.Global(name=n, span=defined[n].span), Env())
        except KeyError:  # an input that only this definition uses
            value = None
        if not isinstance(value, torch.Tensor):
            raise NCTypeError(f"trainable '{n}' must be defined by a constant, but its value depends on inputs",
                              defined[n].span)
        out[n] = value.to(dtype or torch.get_default_dtype())
    return out


def value_source(t: torch.Tensor) -> str:
    """A parameter's value as nc source, to full precision."""
    t = t.detach().cpu().double()
    if t.dim() == 0:
        return number_source(float(t))
    if t.dim() == 1:
        return "[" + " ".join(number_source(float(x)) for x in t) + "]"
    return "(mat " + " ".join(value_source(r) for r in t) + ")"


def number_source(x: float) -> str:
    if math.isnan(x):
        return "(/ 0 0)"
    if math.isinf(x):
        return "(/ 1 0)" if x > 0 else "(/ -1 0)"
    return repr(x)
