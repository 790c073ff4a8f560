"""nc: compile small Scheme-syntax physics programs into exact, differentiable PyTorch.

    f = nc.compile_fn("(/ (* G m1 m2) (* r r))")       # a pure function of tensors
    model = nc.compile(src, trainable=["G"])            # an nn.Module with G as a parameter

See README.md and docs/ for the language and the API.
"""

from __future__ import annotations

from .api import CompiledFunction, compile, compile_fn, make_program
from .compiled_step import CompiledStep, compiled_step
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
from .fit import FitResult, FitWarning, fit
from .fit_many import FitManyResult, fit_many
from .fx import to_fx
from .intermediates import intermediates
from .module import NcModule
from .program import Recording
from .shooting import ShootingLoss
from .symbolic import from_sympy, to_latex, to_sympy

__version__ = "0.1.0"

Program = Recording
"""The recorded program (`nc.program.Recording`), under its public name."""


__all__ = [
    "ArityError",
    "CallError",
    "CompiledFunction",
    "CompiledStep",
    "Discovery",
    "DomainError",
    "LimitError",
    "NCError",
    "NCTypeError",
    "NcModule",
    "Program",
    "Recording",
    "ReadError",
    "ShapeError",
    "SyntaxFormError",
    "UnboundNameError",
    "FitManyResult",
    "FitResult",
    "ShootingLoss",
    "compile",
    "compiled_step",
    "discover",
    "fit",
    "FitWarning",
    "fit_many",
    "compile_fn",
    "make_program",
    "from_sympy",
    "intermediates",
    "to_fx",
    "to_latex",
    "to_sympy",
]
