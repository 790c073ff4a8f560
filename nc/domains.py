"""Domain checks for ``check_domain=True``: which inputs each primitive accepts.

The rules are the rows' `nc.primitives.Domain` fields, one per number of recorded arguments
(so ``(/ x)``, the reciprocal, and ``(/ a b)`` differ). Each maps the call's arguments to a
boolean tensor that is True where they are inside the domain, and names the argument to show
when they are not. Elements that an
enclosing ``if`` (or a finished loop element) masks out are not checked, nor elements whose
arguments are already NaN (NaN propagates; the check finds where it starts). Checks raise on
data, so they run only in eager mode: under a ``torch.func`` transform or ``torch.compile``
they raise an `NCError` saying so. With ``check_domain=False`` (the default) nothing here runs.

A site may instead check a documented run-time limit (recursion on data past ``max_depth`` or
``max_iter``): its number of arguments is `LIMIT_SITE`, its name the message, and its one
argument the mask of elements past the limit; it raises `LimitError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch._C._functorch import is_functorch_wrapped_tensor

from .errors import DomainError, LimitError, NCError, Span
from .primitives import TABLE, table_rows


def documented_list() -> str:
    """The checked primitives as docs/errors.md lists them, generated from the table's `Domain` rows."""
    groups: list[tuple[list[str], str]] = []
    for row in table_rows():
        if not row.domains:
            continue
        words = ", ".join(d.doc for d in row.domains.values())
        if groups and groups[-1][1] == words:
            groups[-1][0].append(row.name)
        else:
            groups.append(([row.name], words))
    return ", ".join("/".join(f"`{n}`" for n in names) + f" ({words})" for names, words in groups) + "."


LIMIT_SITE = -1
"""The number of arguments that marks a site checking a limit rather than a primitive's domain."""


class DomainSites:
    """The checked calls of one program: ``sites[k] = (primitive name, number of arguments, span)``."""

    def __init__(self, sites: Sequence[tuple[str, int, Span | None]]) -> None:
        self.sites = list(sites)

    def __call__(self, index: int, mask: torch.Tensor | None, *args: Any) -> None:
        name, nargs, span = self.sites[index]
        tensors = [a if isinstance(a, torch.Tensor) else torch.tensor(a) for a in args]
        if torch.compiler.is_compiling() or any(is_functorch_wrapped_tensor(t) for t in tensors) or \
                (mask is not None and is_functorch_wrapped_tensor(mask)):
            raise NCError("check_domain=True needs eager mode: it cannot run under torch.func transforms "
                          "or torch.compile", span, hint="compile without check_domain for transformed calls")
        if nargs == LIMIT_SITE:
            if bool(tensors[0].any()):
                raise LimitError(name, span, hint="without check_domain=True such elements return NaN")
            return
        domain = TABLE[name].domains[nargs]
        ok_fn, shown, message = domain.ok, domain.shown, domain.message
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
