"""What the tracer computes with: values, environments, branch contexts and internal signals.

A value is *concrete* (a float64 CPU tensor known while tracing) or *traced* (a `Var`, known
only by its per-example shape). These types sit below every part of the tracer, so each part
imports them from here and no part imports another part's host.
"""

from __future__ import annotations

from typing import Any

import attrs
import torch

from . import shapes as sh
from .program import Region, Var

Value = Var | torch.Tensor
F64 = torch.float64


class Promote(Exception):
    """Internal: an input used where a higher per-example rank is needed; retrace with more."""

    def __init__(self, names: frozenset[str], rank: int) -> None:
        super().__init__(names, rank)
        self.names, self.rank = names, rank


class SizeDependent(Exception):
    """Internal: the compile-time pass met control flow on a size that only a call will know."""


class NeedStatic(Exception):
    """Internal: inputs reach a place that needs an integer constant (a size, a step count); the
    program is traced again with them as static inputs, Python ints given at call time."""

    def __init__(self, names: frozenset[str]) -> None:
        super().__init__(names)
        self.names = names


class Env:
    """Bindings of IR keys to values, chained lexically."""

    __slots__ = ("vars", "parent")

    def __init__(self, parent: Env | None = None) -> None:
        self.vars: dict[Any, Any] = {}
        self.parent = parent

    def get(self, key: Any) -> Any:
        env: Env | None = self
        while env is not None:
            if key in env.vars:
                return env.vars[key]
            env = env.parent
        raise KeyError(key)


@attrs.define(eq=False)
class Ctx:
    """A branch or loop body: values used inside from outside are guarded by ``mask``."""

    parent: Ctx | None
    mask: Var | None  # bool, True where this branch is taken (None at the root)
    region: Region | None  # the loop region this context records into (None: the program)
    ident: int = 0

    def masks(self) -> list[Var]:
        """The masks of this context and every enclosing one, innermost first."""
        out, ctx = [], self
        while ctx is not None:
            if ctx.mask is not None:
                out.append(ctx.mask)
            ctx = ctx.parent  # type: ignore[assignment]
        return out

    def encloses(self, inner: Ctx) -> bool:
        """Whether this context strictly encloses ``inner``."""
        c = inner.parent
        while c is not None:
            if c is self:
                return True
            c = c.parent
        return False


@attrs.define
class TailResult:
    """What a loop body does for each element: exit with a value, or recur with a new state."""

    exits: Value | bool  # True/False when the same for every element, else a bool mask Var
    value: Value | None
    state: list[Value] | None


def is_concrete(v: Any) -> bool:
    return isinstance(v, torch.Tensor)


def pshape_of(v: Value) -> sh.Shape:
    return v.pshape if isinstance(v, Var) else tuple(v.shape)
