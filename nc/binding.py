"""Binding call arguments to a program's inputs: positions, keywords, conversion to tensors.

This is the checked path of a call. The fast path (the generated function) takes tensors in
order and falls back here for anything else: keywords, Python numbers, lists, wrong ranks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .errors import CallError, Span
from .suggest import closest

if TYPE_CHECKING:
    from .compiled import Compiled


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
