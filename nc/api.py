"""The public entry points: `compile_fn`, `compile` and `make_program`.

Each validates its options once, into a `CompileOptions`, and hands that to the engine
(`nc.compiled.Compiled`) or to `NcModule`.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import torch

from .binding import bind_arguments
from .compiled import Compiled
from .errors import CallError
from .failures import deep_recursion
from .learned import check_modules
from .lower import lower
from .module import NcModule
from .options import DEFAULT_MAX_DEPTH, DEFAULT_MAX_ITER, CompileOptions, ShapeSpec
from .program import Recording
from .runtime import without_tracing
from .suggest import closest

__all__ = ["DEFAULT_MAX_ITER", "CompiledFunction", "compile", "compile_fn", "make_program"]


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

    def program(self, *args: Any, **kwargs: Any) -> Recording: ...

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


def program_of(compiled: Compiled, *args: Any, **kwargs: Any) -> Recording:
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
    if not (args or kwargs) and compiled.generic is not None:
        return compiled.generic.source
    return lower(program_of(compiled, *args, **kwargs)).source


def compile_fn(src: str, *, shapes: ShapeSpec | None = None, max_iter: int = DEFAULT_MAX_ITER,
               name: str = "<program>", check_domain: bool = False, modules: Mapping[str, Any] | None = None,
               module_shapes: Mapping[str, Sequence[int]] | None = None,
               max_depth: int = DEFAULT_MAX_DEPTH) -> CompiledFunction:
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
        max_depth: the most frames of recursion on input values that is not a tail call, an int
            from 1 to ``nc.options.MAX_MAX_DEPTH`` (default 256); a deeper element returns NaN
            (`nc.LimitError` with ``check_domain=True`` in eager mode).

    Raises:
        nc.NCError: for any error in the program, with line and column.
        nc.CallError: for a bad option (see `nc.options.CompileOptions`).
    """
    modules, module_shapes = check_modules(modules, module_shapes)  # CallError naming a bad key
    options = CompileOptions(shapes=shapes, max_iter=max_iter, name=name, check_domain=check_domain,
                             module_shapes=module_shapes, max_depth=max_depth)
    return function_for(Compiled(src, options, modules=modules))


def make_program(src: str, *args: Any, shapes: ShapeSpec | None = None, max_iter: int = DEFAULT_MAX_ITER,
                 **kwargs: Any) -> Recording:
    """The `Recording` of ``src`` (for example arguments, if given); print ``.listing()``."""
    options = CompileOptions(shapes=shapes, max_iter=max_iter)
    return program_of(Compiled(src, options), *args, **kwargs)


def compile(src: str, *, params: Mapping[str, Any] | None = None, trainable: Sequence[str] | None = None,
            **options: Any) -> NcModule:
    """Compile an nc program to an ``nn.Module`` (see `NcModule`).

    Args:
        src: the program text (LANGUAGE.md).
        params: free names of the program -> starting values (numbers, lists or tensors; see
            docs/language.md for what a value may be). Each becomes an ``nn.Parameter``.
        trainable: names of top-level ``(define name value)`` constants that become parameters,
            starting at their defined value.
        dtype: the floating dtype of the parameters (default: ``torch.get_default_dtype()``);
            given explicitly, it also casts the learned ``modules`` (in place, as
            ``module.to(dtype)``). A tensor in ``params`` keeps its own floating dtype.
        shapes: per-example shapes of inputs, ``{"r": (3,)}``; ``None`` for a size left open.
        max_iter: the most iterations of a loop whose exit depends on the inputs (default 1000).
        name: the file name shown in error messages.
        check_domain: raise `nc.DomainError` when an input leaves a primitive's domain.
        modules: learned components, ``{"drag": mlp}`` for ``(drag v)``: ``torch.nn.Module``s
            (a plain function is a `CallError`: wrap it in a module). They become submodules
            under their own names (``drag.0.weight`` in the state dict).
        module_shapes: per-example output shapes of components, ``{"drag": (1,)}``, where not
            inferred by calling the component on one example.
        max_depth: the most frames of recursion on input values that is not a tail call
            (default 256); a deeper element returns NaN (`nc.LimitError` with ``check_domain=True``
            in eager mode).

    Parameters are registered under the program's names, whatever their spelling (``G``,
    ``g/L``, ``half``): ``state_dict()``, ``named_parameters()`` and
    ``torch.func.functional_call(model, {"G": G}, args)`` use them; ``model.params["G"]``
    always works, ``model.G`` where the name is an identifier that clashes with no attribute.
    Call the module with the inputs that are not parameters; an unknown keyword is a `CallError`.

    Raises:
        nc.NCError: for any error in the program (with line and column) or in the options
            (`CallError`).
    """
    known = [k for k in inspect.signature(NcModule.__init__).parameters if k not in ("self", "src")]
    for key in options:
        if key not in known:
            near = closest(key, known)
            raise CallError(f"nc.compile has no option '{key}' (options: {', '.join(known)})",
                            hint=f"did you mean '{near[0]}'?" if near else None)
    return NcModule(src, params=params, trainable=trainable, **options)
