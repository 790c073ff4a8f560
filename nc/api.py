"""The public entry points: `compile_fn`, `make_program`, and argument binding."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from .compiled import Compiled, ShapeSpec, deep_recursion
from .errors import CallError, NCError, Span
from .program import Program
from .suggest import closest

DEFAULT_MAX_ITER = 1000


class CompiledFunction:
    """A pure function of tensors compiled from an nc program.

    Call it positionally in ``inputs`` order or by keyword (``f(**{"g/L": x})`` for any
    spelling). Leading axes beyond each input's per-example rank are batch axes. Works under
    ``torch.func.vmap``, ``grad``, ``jacrev``, ``jacfwd`` and ``hessian`` in any nesting.
    """

    def __init__(self, compiled: Compiled) -> None:
        self._compiled = compiled
        self.inputs: tuple[str, ...] = compiled.names
        self._n = len(compiled.names)
        generic = compiled.generic
        self._fast = generic.fn if generic is not None else None
        self.__name__ = "nc_program"
        self.__doc__ = f"nc program of ({', '.join(self.inputs)})"

    def __call__(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        fast = self._fast
        if fast is not None and not kwargs and len(args) == self._n:
            # The common call: tensors in order. The generic function checks ranks itself; any
            # failure (or a non-tensor result from Python-number inputs) takes the checked path,
            # which converts arguments and raises precise errors.
            try:
                out = fast(*args)
            except NCError:
                raise
            except Exception:  # noqa: BLE001 - re-run on the checked path, which reports it
                pass
            else:
                if type(out) is torch.Tensor:
                    return out
        values = bind_arguments(self._compiled, self.inputs, args, kwargs)
        return self._compiled.run(values)


    @property
    def ranks(self) -> dict[str, int]:
        """Per-example rank of each input (0 scalar, 1 vector, 2 matrix)."""
        return {n: self._compiled.ranks[n] for n in self.inputs}

    def program(self, *args: Any, **kwargs: Any) -> Program:
        """The recorded program for these example arguments.

        Without arguments: the program that serves every call (sizes left open, shown as ``?``)
        when there is one, else the program for one example of the declared shapes.
        """
        compiled = self._compiled
        if not (args or kwargs):
            if compiled.generic_program is not None:
                return compiled.generic_program
            shapes = {n: compiled.declared.get(n, (None,) * compiled.ranks[n]) for n in self.inputs}
            args = tuple(torch.zeros(tuple(3 if d is None else d for d in shapes[n])) for n in self.inputs)
        values = bind_arguments(compiled, self.inputs, args, kwargs)
        with deep_recursion():
            return compiled.program_for(values)

    def code(self, *args: Any, **kwargs: Any) -> str:
        """The generated Python source for these example arguments (see `program`)."""
        from .lower import lower

        if not (args or kwargs) and self._compiled.generic is not None:
            return self._compiled.generic.source
        return lower(self.program(*args, **kwargs)).source

    def __repr__(self) -> str:
        return f"<nc.CompiledFunction ({' '.join(self.inputs)})>"


def compile_fn(src: str, *, shapes: ShapeSpec | None = None, max_iter: int = DEFAULT_MAX_ITER,
               name: str = "<program>", check_domain: bool = False, modules: Mapping[str, Any] | None = None,
               module_shapes: Mapping[str, Sequence[int]] | None = None) -> CompiledFunction:
    """Compile an nc program to a pure function of tensors.

    Args:
        src: the program text (LANGUAGE.md).
        shapes: per-example shapes of inputs, e.g. ``{"r": (3,), "M": (3, 3)}``; ``None`` for a
            size left open. Inputs not named get their rank from the program, else 0.
        max_iter: the most iterations of a loop whose exit depends on the inputs.
        name: the file name shown in error messages.
        check_domain: raise `nc.DomainError` when an input leaves a primitive's domain (sqrt of
            a negative, log of a non-positive, division by zero, ...), except where an enclosing
            ``if`` masks it out. Eager mode only (it raises on data); off by default, at no cost.
        modules: learned components the program calls like functions, ``{"drag": mlp}`` for
            ``(drag v)``: ``torch.nn.Module``s applied to the arguments (batch axes first).
        module_shapes: per-example output shapes of components, where not inferred.

    Raises:
        nc.NCError: for any error in the program, with line and column.
    """
    return CompiledFunction(Compiled(src, shapes=shapes, max_iter=max_iter, name=name, check_domain=check_domain,
                                     modules=modules, module_shapes=module_shapes))


def make_program(src: str, *args: Any, shapes: ShapeSpec | None = None, max_iter: int = DEFAULT_MAX_ITER,
                 **kwargs: Any) -> Program:
    """The recorded `Program` of ``src`` (for example arguments, if given); print ``.listing()``."""
    return compile_fn(src, shapes=shapes, max_iter=max_iter).program(*args, **kwargs)


def bind_arguments(compiled: Compiled, names: Sequence[str], args: Sequence[Any],
                   kwargs: Mapping[str, Any], extra: Sequence[torch.Tensor] = ()) -> list[torch.Tensor]:
    """Arguments in ``names`` order as tensors (plus ``extra`` ones appended, e.g. parameters)."""
    if len(args) > len(names):
        raise CallError(f"this program takes {len(names)} input{'s' * (len(names) != 1)} "
                        f"({', '.join(names) or 'none'}), got {len(args)} positional arguments")
    given: dict[str, Any] = dict(zip(names, args))
    unknown = []
    for key, value in kwargs.items():
        if key not in names:
            unknown.append(key)  # extra keywords are ignored when every input is given (a data dict)
        elif key in given:
            raise CallError(f"input '{key}' was given both by position and by keyword", compiled.spans.get(key))
        else:
            given[key] = value
    missing = [n for n in names if n not in given]
    if missing:
        raise missing_error(compiled, names, missing, unknown)
    raw = [given[n] for n in names]
    if all(type(v) is torch.Tensor and v.is_floating_point() for v in raw) and not extra:
        return raw  # the common case: nothing to convert
    return convert(compiled, list(names), raw, list(extra))


def missing_error(compiled: Compiled, names: Sequence[str], missing: list[str], unknown: list[str]) -> CallError:
    span: Span | None = compiled.spans.get(missing[0])
    text = f"missing input{'s' * (len(missing) > 1)}: {', '.join(missing)}"
    hint = (f"'{missing[0]}' is a free name of the program, so it is an input; pass it, "
            "or define it with (define ...)")
    if unknown:
        text += f"; {', '.join(repr(u) for u in unknown)} {'is' if len(unknown) == 1 else 'are'} not an input"
        near = {u: closest(u, missing) for u in unknown}
        guesses = [f"'{u}' for '{c[0]}'" for u, c in near.items() if c]
        if guesses:
            hint = f"did you mean {', '.join(guesses)}?"
    return CallError(text, span, hint=hint)


def convert(compiled: Compiled, names: list[str], raw: list[Any], extra: list[torch.Tensor]) -> list[torch.Tensor]:
    tensors = [v for v in raw if isinstance(v, torch.Tensor) and v.is_floating_point()] + extra
    dtype = tensors[0].dtype if tensors else torch.get_default_dtype()
    for t in tensors[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    device = tensors[0].device if tensors else None
    out = []
    for n, v in zip(names, raw):
        out.append(as_tensor(compiled, n, v, dtype, device))
    return out + extra


def as_tensor(compiled: Compiled, name: str, v: Any, dtype: torch.dtype, device: Any) -> torch.Tensor:
    if isinstance(v, torch.Tensor):
        if v.is_floating_point() or v.is_complex():
            return v
        return v.to(dtype)  # integer and boolean tensors compute as floats
    if isinstance(v, (bool, int, float, np.number)):
        return torch.tensor(float(v), dtype=dtype, device=device)
    if isinstance(v, (list, tuple, np.ndarray)):
        try:
            arr = np.asarray(v, dtype=np.float64)
        except (TypeError, ValueError):
            raise CallError(f"input '{name}' must be numbers, got {type(v).__name__} {str(v)[:60]}",
                            compiled.spans.get(name)) from None
        return torch.as_tensor(arr, dtype=dtype, device=device)
    raise CallError(f"input '{name}' must be a tensor or a number, got {type(v).__name__}",
                    compiled.spans.get(name))
