"""The public entry points: `compile_fn` and `make_program`."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import torch

from .binding import bind_arguments
from .compiled import Compiled, deep_recursion
from .learned import check_modules
from .options import DEFAULT_MAX_ITER, CompileOptions, ShapeSpec
from .program import Program
from .runtime import without_tracing

__all__ = ["DEFAULT_MAX_ITER", "CompiledFunction", "compile_fn", "make_program"]


class CompiledFunction(Protocol):
    """What `compile_fn` returns: a Python function of tensors with these attributes.

    Call it positionally in ``inputs`` order or by keyword (``f(**{"g/L": x})`` for any
    spelling). Leading axes beyond each input's per-example rank are batch axes. Works under
    ``torch.func.vmap``, ``grad``, ``jacrev``, ``jacfwd`` and ``hessian`` in any nesting, and
    under ``torch.compile``. It is a plain function (generated once), so a call costs what the
    same PyTorch code written by hand costs; anything unusual in a call (keywords, Python
    numbers, ill-shaped inputs) takes a checked path that converts or raises a precise error.
    """

    inputs: tuple[str, ...]
    ranks: dict[str, int]

    def __call__(self, *args: Any, **kwargs: Any) -> torch.Tensor: ...

    def program(self, *args: Any, **kwargs: Any) -> Program: ...

    def code(self, *args: Any, **kwargs: Any) -> str: ...


def function_for(compiled: Compiled) -> CompiledFunction:
    """The callable for ``compiled``: its generated entry function, with the API attached."""
    if compiled.generic is not None:
        fn: Any = compiled.generic.fn
    else:
        def fn(*args: Any, **kwargs: Any) -> torch.Tensor:
            return compiled.call_checked(args, kwargs)
    fn.inputs = compiled.names
    fn.ranks = {n: compiled.ranks[n] for n in compiled.names}
    fn.program = functools.partial(program_of, compiled)
    fn.code = functools.partial(code_of, compiled)
    fn._compiled = compiled
    fn.__name__ = fn.__qualname__ = "nc_program"
    fn.__doc__ = f"nc program of ({', '.join(compiled.names)}); see nc.CompiledFunction"
    return fn  # type: ignore[no-any-return]


def program_of(compiled: Compiled, *args: Any, **kwargs: Any) -> Program:
    """The recorded program for these example arguments.

    Without arguments: the program that serves every call (sizes left open, shown as ``?``)
    when there is one, else the program for one example of the declared shapes.
    """
    if not (args or kwargs):
        if compiled.generic_program is not None:
            return compiled.generic_program
        shapes = {n: compiled.declared.get(n, (None,) * compiled.ranks[n]) for n in compiled.names}
        # Values are never read while tracing: empty tensors cost no memory until touched.
        args = tuple(torch.empty(tuple(3 if d is None else d for d in shapes[n])) for n in compiled.names)
    values = bind_arguments(compiled, compiled.names, args, kwargs)
    with deep_recursion(), without_tracing():
        return compiled.program_for(values)


def code_of(compiled: Compiled, *args: Any, **kwargs: Any) -> str:
    """The generated Python source for these example arguments (see `program_of`)."""
    from .lower import lower

    if not (args or kwargs) and compiled.generic is not None:
        return compiled.generic.source
    return lower(program_of(compiled, *args, **kwargs)).source


def compile_fn(src: str, *, shapes: ShapeSpec | None = None, max_iter: int = DEFAULT_MAX_ITER,
               name: str = "<program>", check_domain: bool = False, modules: Mapping[str, Any] | None = None,
               module_shapes: Mapping[str, Sequence[int]] | None = None) -> CompiledFunction:
    """Compile an nc program to a pure function of tensors.

    Args:
        src: the program text (LANGUAGE.md).
        shapes: per-example shapes of inputs, a dict such as ``{"r": (3,), "M": (3, 3)}``: each
            a tuple of non-negative ints, ``None`` for a size left open, at most
            ``nc.options.MAX_RANK`` axes and ``nc.options.MAX_DECLARED_ELEMENTS`` elements.
            Inputs not named get their rank from the program, else 0.
        max_iter: the most iterations of a loop whose exit depends on the inputs, an int from 1
            to ``nc.options.MAX_MAX_ITER`` (1,000,000).
        name: the file name shown in error messages.
        check_domain: raise `nc.DomainError` when an input leaves a primitive's domain (sqrt of
            a negative, log of a non-positive, division by zero, ...), except where an enclosing
            ``if`` masks it out. Eager mode only (it raises on data); off by default, at no cost.
        modules: learned components the program calls like functions, ``{"drag": mlp}`` for
            ``(drag v)``: ``torch.nn.Module``s applied to the arguments (batch axes first).
        module_shapes: per-example output shapes of components, where not inferred.

    Raises:
        nc.NCError: for any error in the program, with line and column.
        nc.CallError: for a bad option (see `nc.options.CompileOptions`).
    """
    modules, module_shapes = check_modules(modules, module_shapes)  # CallError naming a bad key
    options = CompileOptions(shapes=shapes, max_iter=max_iter, name=name, check_domain=check_domain,
                             module_shapes=module_shapes)
    return function_for(Compiled(src, modules=modules, options=options))


def make_program(src: str, *args: Any, shapes: ShapeSpec | None = None, max_iter: int = DEFAULT_MAX_ITER,
                 **kwargs: Any) -> Program:
    """The recorded `Program` of ``src`` (for example arguments, if given); print ``.listing()``."""
    return compile_fn(src, shapes=shapes, max_iter=max_iter).program(*args, **kwargs)
