"""Domain checks for ``check_domain=True``: which inputs each primitive accepts.

A rule is keyed by the exact template recorded for a call (so ``(/ x)``, the reciprocal, and
``(/ a b)`` differ). It maps the call's arguments to a boolean tensor that is True where they
are inside the domain, and names the argument to show when they are not. Elements that an
enclosing ``if`` (or a finished loop element) masks out are not checked, nor elements whose
arguments are already NaN (NaN propagates; the check finds where it starts). Checks raise on
data, so they run only in eager mode: under a ``torch.func`` transform or ``torch.compile``
they raise an `NCError` saying so. With ``check_domain=False`` (the default) nothing here runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch._C._functorch import is_functorch_wrapped_tensor

from .errors import DomainError, NCError, Span

Rule = tuple[Callable[..., torch.Tensor], int, str]  # (ok, index of the argument to show, message)


def _integral(x: torch.Tensor) -> torch.Tensor:
    return x == torch.round(x)


RULES: dict[str, Rule] = {
    "torch.sqrt({0})": (lambda x: x >= 0, 0, "sqrt of a negative number"),
    "torch.log({0})": (lambda x: x > 0, 0, "log of a non-positive number"),
    "torch.log({0}) / torch.log({1})": (lambda x, b: (x > 0) & (b > 0) & (b != 1), 0,
                                        "log of a non-positive number, or with a base that is not positive and not 1"),
    "torch.log1p({0})": (lambda x: x > -1, 0, "log1p of a number not above -1"),
    "{0} / {1}": (lambda a, b: b != 0, 1, "division by zero"),
    "torch.reciprocal({0})": (lambda x: x != 0, 0, "reciprocal of zero"),
    "torch.asin({0})": (lambda x: x.abs() <= 1, 0, "asin outside [-1, 1]"),
    "torch.acos({0})": (lambda x: x.abs() <= 1, 0, "acos outside [-1, 1]"),
    "torch.acosh({0})": (lambda x: x >= 1, 0, "acosh below 1"),
    "torch.atanh({0})": (lambda x: x.abs() < 1, 0, "atanh outside (-1, 1)"),
    "torch.pow({0}, {1})": (lambda a, b: (a > 0) | ((a == 0) & (b >= 0)) | ((a < 0) & _integral(b)), 0,
                            "pow of a negative base with a non-integer exponent, or of 0 with a negative one"),
    "torch.lgamma({0})": (lambda x: ~((x <= 0) & _integral(x)), 0, "lgamma at a non-positive integer (a pole)"),
    "torch.remainder({0}, {1})": (lambda a, b: b != 0, 1, "modulo by zero"),
    "torch.fmod({0}, {1})": (lambda a, b: b != 0, 1, "remainder by zero"),
    "torch.div({0}, {1}, rounding_mode='trunc')": (lambda a, b: b != 0, 1, "quotient by zero"),
    "{0} / torch.linalg.vector_norm({0}, dim=-1, keepdim=True)": (
        lambda v: torch.linalg.vector_norm(v, dim=-1, keepdim=True) != 0, 0, "normalize of a zero vector"),
}


def rule_for(template: str) -> Rule | None:
    return RULES.get(template)


class DomainSites:
    """The checked calls of one program: ``sites[k] = (template, primitive name, span)``."""

    def __init__(self, sites: Sequence[tuple[str, str, Span | None]]) -> None:
        self.sites = list(sites)

    def __call__(self, index: int, mask: torch.Tensor | None, *args: Any) -> None:
        template, name, span = self.sites[index]
        ok_fn, shown, message = RULES[template]
        tensors = [a if isinstance(a, torch.Tensor) else torch.tensor(a) for a in args]
        if torch.compiler.is_compiling() or any(is_functorch_wrapped_tensor(t) for t in tensors) or \
                (mask is not None and is_functorch_wrapped_tensor(mask)):
            raise NCError("check_domain=True needs eager mode: it cannot run under torch.func transforms "
                          "or torch.compile", span, hint="compile without check_domain for transformed calls")
        with torch.no_grad():
            ok = ok_fn(*tensors)
            # A rule may answer per vector (normalize: keepdim=True); compare at the arguments' shape.
            shape = torch.broadcast_shapes(ok.shape, *(t.shape for t in tensors))
            bad = torch.logical_not(ok).broadcast_to(shape)
            for t in tensors:  # NaN propagates: an argument that is already NaN is not a domain error here
                if t.is_floating_point():
                    bad = bad & torch.logical_not(torch.isnan(t)).broadcast_to(shape)
            if mask is not None:
                bad = bad & mask
            if not bool(bad.any()):
                return
            value = torch.broadcast_to(tensors[shown], bad.shape)[bad].flatten()[0]
        raise DomainError(f"{message}: {name} got {float(value):g}", span,
                          hint="guard it with (if ...) if such inputs are expected; elements an if masks out "
                               "are not checked")
