"""nc: compile small Scheme-syntax physics programs into exact, differentiable PyTorch.

    f = nc.compile_fn("(/ (* G m1 m2) (* r r))")       # a pure function of tensors
    model = nc.compile(src, trainable=["G"])            # an nn.Module with G as a parameter

See README.md and docs/ for the language and the API.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from .api import CompiledFunction, compile_fn, make_program
from .discover import Discovery, discover
from .errors import (
    ArityError,
    CallError,
    DomainError,
    LimitError,
    NCError,
    NCTypeError,
    ReadError,
    ShapeError,
    SyntaxFormError,
    UnboundNameError,
)
from .fit import FitResult, fit
from .fit_many import FitManyResult, fit_many
from .module import NcModule
from .program import Program
from .shooting import ShootingLoss

__version__ = "0.1.0"


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
            from .suggest import closest

            near = closest(key, known)
            raise CallError(f"nc.compile has no option '{key}' (options: {', '.join(known)})",
                            hint=f"did you mean '{near[0]}'?" if near else None)
    return NcModule(src, params=params, trainable=trainable, **options)


__all__ = [
    "ArityError",
    "CallError",
    "CompiledFunction",
    "Discovery",
    "DomainError",
    "LimitError",
    "NCError",
    "NCTypeError",
    "NcModule",
    "Program",
    "ReadError",
    "ShapeError",
    "SyntaxFormError",
    "UnboundNameError",
    "FitManyResult",
    "FitResult",
    "ShootingLoss",
    "compile",
    "discover",
    "fit",
    "fit_many",
    "compile_fn",
    "make_program",
]
