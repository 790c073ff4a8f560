"""`NcModule`: a compiled program as a `torch.nn.Module` with trainable constants."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, cast

import attrs
import torch
from torch import nn

from .binding import as_number_tensor, bind_arguments
from .compiled import Compiled, static_values
from .errors import CallError, NCError, NCTypeError
from .learned import check_modules, learned_dtype_error, span_in
from .options import DEFAULT_MAX_DEPTH, DEFAULT_MAX_ITER, CompileOptions, ShapeSpec
from .parse import parse
from .suggest import closest
from .trace import constant_value
from .values import NeedStatic
from .writeback import write_source


class NamedView(Mapping[str, Any]):
    """A read-only view of some entries of a module's ``_parameters`` or ``_modules`` table.

    It reads the table at each access, so it shows what ``functional_call`` swapped in.
    """

    def __init__(self, table: dict[str, Any], names: Sequence[str]) -> None:
        self._table, self._names = table, tuple(names)

    def __getitem__(self, name: str) -> Any:
        if name not in self._names:
            raise KeyError(name)
        return self._table[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __repr__(self) -> str:
        return "{" + ", ".join(f"{n!r}: {self._table[n]!r}" for n in self._names) + "}"


class NcModule(nn.Module):
    """An nc program as an ``nn.Module``: named constants are ``nn.Parameter``s, the rest is frozen.

    ``model(*inputs)`` takes the program's inputs that are not parameters, positionally or by
    keyword (an unknown keyword is a `CallError`). Parameters are registered under the
    program's own names, whatever their spelling: ``state_dict()`` keys,
    ``named_parameters()`` and ``torch.func.functional_call(model, {"G": G}, args)`` use ``G``
    and ``g/L``; learned components (``modules=``) are submodules under their own names
    (``drag.0.weight``). ``model.params`` is a read-only mapping of the parameters (it always
    works); ``model.G`` works for names that are Python identifiers and clash with no attribute
    of the module (``model.half`` is the method). State dicts saved with the keys of nc 0.1
    (``params.G``, ``learned.drag.0.weight``) still load. The module works with
    ``functional_call`` (so ``vmap`` over parameter batches), ``state_dict``, ``.to()``,
    ``.double()``, ``deepcopy``, DDP and pickling, which stores the source, the options and the
    state, not closures.

    Parameters are made in ``dtype`` (default: ``torch.get_default_dtype()``); a ``dtype`` given
    explicitly also casts the learned modules (in place, as ``module.to(dtype)`` does).
    ``to_source()`` writes the values bit for bit, so ``nc.compile(m.to_source(), trainable=...,
    dtype=d)`` rebuilds an equal module of dtype ``d``.
    """

    def __init__(self, src: str, *, params: Mapping[str, Any] | None = None, trainable: Sequence[str] | None = None,
                 shapes: ShapeSpec | None = None, max_iter: int = DEFAULT_MAX_ITER, name: str = "<program>",
                 check_domain: bool = False, modules: Mapping[str, nn.Module] | None = None,
                 module_shapes: Mapping[str, Sequence[int]] | None = None, dtype: torch.dtype | None = None,
                 max_depth: int = DEFAULT_MAX_DEPTH) -> None:
        super().__init__()
        if params is not None and not isinstance(params, Mapping):
            raise CallError(f"params= must be a dict of name -> starting value, got {type(params).__name__}")
        params = dict(params or {})
        trainable = [trainable] if isinstance(trainable, str) else list(trainable or [])
        if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise CallError(f"dtype= must be a floating torch.dtype, got {dtype!r}")
        learned, shapes_of = check_modules(modules, module_shapes)
        self.source = src
        self.options = CompileOptions(shapes=shapes, max_iter=max_iter, name=name, check_domain=check_domain,
                                      module_shapes=shapes_of, max_depth=max_depth)
        if dtype is not None:
            for m in learned.values():
                m.to(dtype)
        dtype = dtype or torch.get_default_dtype()
        initial = trainable_values(src, trainable, name, tuple(learned), dtype)
        for key, v in params.items():
            try:
                initial[key] = param_value(v, dtype)
            except ValueError as e:
                raise CallError(f"params['{key}'] {e}") from None
        fixed = {k: tuple(v.shape) for k, v in initial.items()}
        self._compiled = Compiled(src, self.options, modules=learned, promote=trainable, fixed=fixed)
        for key in params:
            if key not in self._compiled.names:
                raise CallError(f"params= names '{key}', which is not a free name of the program "
                                f"(free names: {', '.join(self._compiled.names) or 'none'})",
                                hint="a top-level (define name value) becomes a parameter with trainable=")
        self.trainable_names = tuple(trainable)
        self.param_names = tuple(n for n in self._compiled.names if n in initial)
        self.learned_names = tuple(learned)
        self.inputs: tuple[str, ...] = tuple(n for n in self._compiled.names if n not in initial)
        position = {n: i for i, n in enumerate((*self.inputs, *self.param_names))}
        self._order = [position[n] for n in self._compiled.names]
        self._n = len(self.inputs)
        self._nc_names = frozenset((*self.param_names, *self.learned_names))
        # Straight into the tables, under the program's names: register_parameter and add_module
        # refuse names that are attributes of nn.Module (half, to, type, ...), which are legal
        # program names. Module machinery (state_dict, _apply, functional_call, DDP) reads the tables.
        for n in self.param_names:
            self._parameters[n] = nn.Parameter(initial[n])
        for n, m in learned.items():
            self._modules[n] = m

    @property
    def params(self) -> Mapping[str, nn.Parameter]:
        """The parameters by program name (a read-only view: ``model.params["g/L"]``)."""
        return NamedView(self._parameters, self.param_names)

    @property
    def learned(self) -> Mapping[str, nn.Module]:
        """The learned components by name (a read-only view)."""
        return NamedView(self._modules, self.learned_names)

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        # Parameters are read from the table at each call: functional_call swaps them there.
        table = cast(dict[str, torch.Tensor], self._parameters)
        if not kwargs and len(args) == self._n:
            generic = self._compiled.generic
            if generic is not None:  # the entry function: it falls back to the checked path itself
                given = (*args, *[table[n] for n in self.param_names])
                try:
                    return generic.fn(*[given[i] for i in self._order])
                except RuntimeError as e:
                    better = learned_dtype_error(e, self._compiled.modules, span_in(e, generic.line_spans))
                    if better is None:
                        raise
                raise better
        extra = [table[n] for n in self.param_names]
        values = bind_arguments(self._compiled, self.inputs, args, kwargs, extra=extra, params=self.param_names)
        named = {**dict(zip(self.inputs, args)), **kwargs}  # static inputs come as Python ints
        try:
            return self._run_static(values, named)
        except NCError as e:
            cause = e.__cause__
            better = learned_dtype_error(cause, self._compiled.modules, e.span) if cause is not None else None
            if better is None:
                raise
        raise better

    def _run_static(self, values: Sequence[torch.Tensor], given: Mapping[str, Any]) -> torch.Tensor:
        """Run on the checked path, specialised on the ints given for static inputs (a size or a
        step count that is an input); an input found static on the way is asked for again."""
        ordered = [values[i] for i in self._order]
        for _ in range(len(self.inputs) + 1):  # each retry makes at least one more input static
            try:
                return self._compiled.run(ordered, static_values(self._compiled, (), given))
            except NeedStatic as e:
                self._compiled.static |= e.names
        raise AssertionError("unreachable: every input is static by now")

    def __setattr__(self, name: str, value: Any) -> None:
        # A program name shares the tables with nn.Module's own attributes (`training`, ...):
        # assigning to such an attribute sets the attribute, not the parameter.
        names = self.__dict__.get("_nc_names", ())
        if name in names and not isinstance(value, (nn.Parameter, nn.Module)):
            if name in self.__dict__ or hasattr(type(self), name) or name.startswith("_"):
                object.__setattr__(self, name, value)
                return
            raise CallError(f"'{name}' is a parameter: assign an nn.Parameter, or set its value in place with "
                            f"`with torch.no_grad(): model.params['{name}'].copy_(value)`")
        super().__setattr__(name, value)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        # Keys of nc 0.1 kept parameters under "params." and components under "learned.".
        for key in [k for k in state_dict if k.startswith(prefix)]:
            rest = key[len(prefix):]
            for old in ("params.", "learned."):
                new = prefix + rest[len(old):]
                if rest.startswith(old) and new not in state_dict:
                    state_dict[new] = state_dict.pop(key)
        super()._load_from_state_dict(state_dict, prefix, *args)

    def to_source(self) -> str:
        """The program with each parameter's value written in place, bit for bit.

        The value of each trainable ``(define name value)`` is replaced where it stands
        (comments and layout are kept); parameters given by ``params=`` get a new ``define`` at
        the top. Raises `NCError` for values nc source cannot write (rank 3 and above, values on
        the meta device).
        """
        values = {n: cast(torch.Tensor, self._parameters[n]) for n in self.param_names}
        return write_source(self.source, values, self.trainable_names, self.options.name)

    def extra_repr(self) -> str:
        learned = f", learned=({' '.join(self.learned_names)})" if self.learned_names else ""
        return f"inputs=({' '.join(self.inputs)}), params=({' '.join(self.param_names)}){learned}"

    def __reduce__(self) -> tuple[Any, ...]:
        table = cast(dict[str, torch.Tensor], self._parameters)
        state = {n: table[n].detach().clone() for n in self.param_names}
        grads = {n: table[n].requires_grad for n in self.param_names}
        options = attrs.asdict(self.options, recurse=False)  # keywords: pickles of nc 0.1 hold a dict too
        return (_rebuild, (self.source, options, self.trainable_names, state, grads, self.training,
                           dict(self.learned.items())))


def _rebuild(source: str, options: dict[str, Any], trainable: Sequence[str], state: dict[str, torch.Tensor],
             grads: dict[str, bool], training: bool, modules: dict[str, nn.Module] | None = None) -> NcModule:
    free = {k: v for k, v in state.items() if k not in trainable}
    model = NcModule(source, params=free, trainable=list(trainable), modules=modules, **options)
    for n, v in state.items():  # the saved values, dtypes and devices, bit for bit
        model._parameters[n] = nn.Parameter(v, requires_grad=grads[n])
    model.train(training)
    return model


def param_value(v: Any, dtype: torch.dtype) -> torch.Tensor:
    """A ``params=`` value as a fresh tensor (floating tensors keep their dtype)."""
    return as_number_tensor(v.detach() if isinstance(v, torch.Tensor) else v, dtype).detach().clone()


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
            near = closest(n, defined)
            raise CallError(f"trainable= names '{n}', which is not a top-level (define {n} value) "
                            f"(defined constants: {', '.join(defined) or 'none'})",
                            hint=f"did you mean '{near[0]}'?" if near else "free names become parameters with params=")
        value = constant_value(program, n)
        if not isinstance(value, torch.Tensor):
            raise NCTypeError(f"trainable '{n}' must be defined by a constant, but its value depends on inputs",
                              defined[n].span)
        out[n] = value.to(dtype or torch.get_default_dtype())
    return out
