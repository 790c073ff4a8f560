"""Binding call arguments to a program's inputs: positions, keywords, conversion to tensors.

This is the checked path of a call. The fast path (the generated function) takes tensors in
order and falls back here for anything else: keywords, Python numbers, lists, wrong ranks.

What a value may be (one rule, for inputs and for ``params=`` values alike; `as_number_tensor`):

- a real tensor (floating point; integer and boolean tensors compute as floats);
- a real Python or numpy number (``bool`` counts as 0/1, as ``#t``/``#f`` do in programs);
- a list or tuple of those, nested into a regular array (tensors inside keep their gradient:
  they are stacked with ``torch.stack``), or a numpy array of a boolean, integer or float dtype.

Never a string, a complex number, ``None`` or any other object: each is a `CallError` naming the
argument, and so is an integer too large for a float (``10**400``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .errors import CallError, Span
from .runtime import dtype_device
from .suggest import closest

if TYPE_CHECKING:
    from .compiled import Compiled


def bind_arguments(compiled: Compiled, names: Sequence[str], args: Sequence[Any],
                   kwargs: Mapping[str, Any], extra: Sequence[torch.Tensor] = (),
                   params: Sequence[str] = ()) -> list[torch.Tensor]:
    """Arguments in ``names`` order as tensors (plus ``extra`` ones appended, e.g. parameters).

    ``params`` are the names of a module's parameters: a keyword naming one is an error that
    says how to call with another value.
    """
    if len(args) > len(names):
        raise CallError(f"this program takes {len(names)} input{'s' * (len(names) != 1)} "
                        f"({', '.join(names) or 'none'}), got {len(args)} positional arguments")
    given: dict[str, Any] = dict(zip(names, args))
    unknown = []
    for key, value in kwargs.items():
        if key not in names:
            unknown.append(key)
        elif key in given:
            raise CallError(f"input '{key}' was given both by position and by keyword", compiled.spans.get(key))
        else:
            given[key] = value
    missing = [n for n in names if n not in given]
    if unknown:  # LANGUAGE.md section 2: passing an unknown input is an error
        raise unknown_error(compiled, names, missing, unknown, params)
    if missing:
        raise missing_error(compiled, names, missing)
    raw = [given[n] for n in names]
    if all(type(v) is torch.Tensor and v.is_floating_point() for v in raw) and not extra:
        return raw  # the common case: nothing to convert
    return convert(compiled, list(names), raw, list(extra))


def missing_error(compiled: Compiled, names: Sequence[str], missing: list[str]) -> CallError:
    span: Span | None = compiled.spans.get(missing[0])
    return CallError(f"missing input{'s' * (len(missing) > 1)}: {', '.join(missing)}", span,
                     hint=f"'{missing[0]}' is a free name of the program, so it is an input; pass it, "
                          "or define it with (define ...)")


def unknown_error(compiled: Compiled, names: Sequence[str], missing: list[str], unknown: list[str],
                  params: Sequence[str]) -> CallError:
    """Unknown keywords, named, with the closest input for each (missing inputs first)."""
    shown = ", ".join(repr(u) for u in unknown)
    verb = "is" if len(unknown) == 1 else "are"
    if missing:
        text = f"missing input{'s' * (len(missing) > 1)}: {', '.join(missing)}; {shown} {verb} not an input"
    else:
        text = f"{shown} {verb} not an input of this program (inputs: {', '.join(names) or 'none'})"
    clash = [u for u in unknown if u in params]
    if clash:
        return CallError(text, hint=f"'{clash[0]}' is a parameter of this module; to call with another value, "
                                    f"use torch.func.functional_call(model, {{'{clash[0]}': value}}, args)")
    guesses = []
    for u in unknown:
        near = closest(u, missing) or closest(u, names)
        if near:
            guesses.append(f"'{u}' for '{near[0]}'")
    hint = f"did you mean {', '.join(guesses)}?" if guesses else "pass only the program's inputs"
    return CallError(text, compiled.spans.get(missing[0]) if missing else None, hint=hint)


def convert(compiled: Compiled, names: list[str], raw: list[Any], extra: list[torch.Tensor]) -> list[torch.Tensor]:
    tensors = [v for v in raw if isinstance(v, torch.Tensor) and v.is_floating_point()] + extra
    dtype, _ = dtype_device(tensors)
    device = tensors[0].device if tensors else None
    out = []
    for n, v in zip(names, raw):
        try:
            out.append(as_number_tensor(v, dtype, device))
        except ValueError as e:
            raise CallError(f"input '{n}' {e}", compiled.spans.get(n)) from None
    return out + extra


def as_number_tensor(v: Any, dtype: torch.dtype, device: Any = None) -> torch.Tensor:
    """``v`` as a real tensor (floating tensors keep their dtype; the rest take ``dtype``).

    Raises ``ValueError`` with the end of a sentence ("must be ..., got ...") that the caller
    prefixes with the argument's name.
    """
    if isinstance(v, torch.Tensor):
        if v.is_complex():
            raise ValueError(f"must be real, got a complex tensor ({v.dtype})")
        return v if v.is_floating_point() else v.to(dtype)
    if isinstance(v, (bool, int, float, np.bool_, np.integer, np.floating)):
        return torch.tensor(as_float(v), dtype=dtype, device=device)
    if isinstance(v, np.ndarray):
        if v.dtype.kind not in "biuf":
            raise ValueError(f"must be an array of real numbers, got a numpy array of dtype {v.dtype}")
        return torch.as_tensor(v.astype(np.float64), dtype=dtype, device=device)
    if isinstance(v, (list, tuple)):
        return from_sequence(v, dtype, device)
    raise ValueError(f"must be a tensor or a number, got {describe(v)}")


def as_float(v: Any) -> float:
    try:
        return float(v)
    except OverflowError:
        raise ValueError(f"is too large for a float: {str(v)[:40]}...") from None


def from_sequence(v: list[Any] | tuple[Any, ...], dtype: torch.dtype, device: Any) -> torch.Tensor:
    """A nested list as one tensor: numbers through numpy, tensors stacked (keeping gradients)."""
    if any(isinstance(x, (list, tuple, torch.Tensor, np.ndarray)) for x in v):
        parts = [as_number_tensor(x, dtype, device) for x in v]
        if any(isinstance(x, torch.Tensor) for x in v):
            common, _ = dtype_device(parts)
            parts = [p.to(common) for p in parts]
        if len({p.shape for p in parts}) > 1:
            raise ValueError(f"must be a regular array, got a ragged list of shapes {[list(p.shape) for p in parts]}")
        if parts and len({p.device for p in parts}) > 1:
            raise ValueError("must be on one device, got a list of tensors on several")
        return torch.stack(parts) if parts else torch.zeros(0, dtype=dtype, device=device)
    for x in v:
        if not isinstance(x, (bool, int, float, np.bool_, np.integer, np.floating)):
            raise ValueError(f"must be numbers, got list holding {describe(x)}")
    return torch.tensor([as_float(x) for x in v], dtype=dtype, device=device)


def describe(v: Any) -> str:
    text = repr(v)
    return f"{type(v).__name__}: {text[:40]}{'...' if len(text) > 40 else ''}"
