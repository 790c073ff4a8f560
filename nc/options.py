"""`CompileOptions`: every compile option, validated in one place.

`compile_fn`, `compile` and the engine (`nc.compiled.Compiled`) all build one of these, so a
bad option is the same `nc.CallError` whichever entry point it came through, and the tracer
and the lowering read their settings from one frozen value.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from .errors import CallError

DEFAULT_MAX_ITER = 1000
"""Default ``max_iter``: most iterations of a loop whose exit depends on the inputs."""

MAX_MAX_ITER = 1_000_000
"""Largest ``max_iter`` accepted: a masked loop runs at most this many steps per call."""

DEFAULT_MAX_DEPTH = 256
"""Default ``max_depth``: deepest recursion on input values (frames on each element's stack)."""

MAX_MAX_DEPTH = 100_000
"""Largest ``max_depth`` accepted."""

MAX_RANK = 8
"""Most per-example axes an input may have (declared or inferred)."""

MAX_DECLARED_ELEMENTS = 100_000_000
"""Most elements one input's declared per-example shape may have (sizes left open count as 1)."""

Shape = tuple[int | None, ...]
ShapeSpec = Mapping[str, Sequence[int | None] | None]


def _is_int(x: Any) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def check_shape(what: str, shape: Any, *, open_sizes: bool = True) -> Shape:
    """One shape: a tuple (or list) of non-negative ints, or None for an open size."""
    if isinstance(shape, (str, bytes)) or not isinstance(shape, Sequence):
        raise CallError(f"{what} must be a tuple of sizes (None for an open size), got {shape!r}")
    dims: list[int | None] = []
    for d in shape:
        if d is None and open_sizes:
            dims.append(None)
        elif _is_int(d) and d >= 0:
            dims.append(int(d))
        else:
            kind = "a non-negative integer or None" if open_sizes else "a non-negative integer"
            raise CallError(f"{what} has a size that is not {kind}: {d!r} in {shape!r}")
    if len(dims) > MAX_RANK:
        raise CallError(f"{what} has {len(dims)} axes; at most {MAX_RANK} are supported")
    if math.prod(d or 1 for d in dims) > MAX_DECLARED_ELEMENTS:
        raise CallError(f"{what} = {tuple(dims)!r} has more than {MAX_DECLARED_ELEMENTS:,} elements "
                        "(nc.options.MAX_DECLARED_ELEMENTS)")
    return tuple(dims)


def check_shapes(option: str, shapes: Any, *, open_sizes: bool = True) -> dict[str, Shape | None]:
    """A mapping of names to shapes (``None`` leaves an input's shape to the program)."""
    if shapes is None:
        return {}
    if not isinstance(shapes, Mapping):
        raise CallError(f"{option}= must be a dict of input name -> shape tuple, got {type(shapes).__name__}")
    out: dict[str, Shape | None] = {}
    for name, shape in shapes.items():
        if not isinstance(name, str):
            raise CallError(f"{option}= keys must be names (strings), got {name!r}")
        out[name] = None if shape is None else check_shape(f"{option}['{name}']", shape, open_sizes=open_sizes)
    return out


def check_max_iter(value: Any) -> int:
    if not _is_int(value) or not 1 <= value <= MAX_MAX_ITER:
        raise CallError(f"max_iter must be an integer from 1 to {MAX_MAX_ITER:,}, got {value!r}",
                        hint="max_iter bounds the iterations of a loop whose exit depends on the inputs")
    return int(value)


def check_max_depth(value: Any) -> int:
    if not _is_int(value) or not 1 <= value <= MAX_MAX_DEPTH:
        raise CallError(f"max_depth must be an integer from 1 to {MAX_MAX_DEPTH:,}, got {value!r}",
                        hint="max_depth bounds recursion on input values that is not a tail call")
    return int(value)


def _frozen_shapes(value: Any) -> dict[str, Shape | None]:
    return check_shapes("shapes", value)


def _frozen_module_shapes(value: Any) -> dict[str, Shape | None]:
    return check_shapes("module_shapes", value, open_sizes=False)


def _name(value: Any) -> str:
    if not isinstance(value, str):
        raise CallError(f"name= must be a string (the file name shown in errors), got {type(value).__name__}")
    return value


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise CallError(f"check_domain= must be True or False, got {value!r}")
    return value


@attrs.frozen(kw_only=True)
class CompileOptions:
    """The options of one compile, validated: construct it, or get a `CallError`.

    Carried from the API to the engine (`nc.compiled.Compiled`), which hands ``max_iter`` and
    ``check_domain`` to the tracer and the lowering.
    """

    shapes: dict[str, Shape | None] = attrs.field(factory=dict, converter=_frozen_shapes)
    max_iter: int = attrs.field(default=DEFAULT_MAX_ITER, converter=check_max_iter)
    name: str = attrs.field(default="<program>", converter=_name)
    check_domain: bool = attrs.field(default=False, converter=_flag)
    module_shapes: dict[str, Shape | None] = attrs.field(factory=dict, converter=_frozen_module_shapes)
    max_depth: int = attrs.field(default=DEFAULT_MAX_DEPTH, converter=check_max_depth)

    def declared(self) -> dict[str, Shape]:
        """The declared shapes (names given ``None`` left out)."""
        return {k: v for k, v in self.shapes.items() if v is not None}
