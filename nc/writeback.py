"""Writing parameter values back into a program's source (`NcModule.to_source`).

Each value is written so that reading it back gives the same bits in the parameter's dtype:
finite numbers as Python's shortest round-trip ``repr`` of the float64 value (every float16,
bfloat16 and float32 value is exactly a float64), infinities as ``1e400`` / ``-1e400`` (which
read as IEEE infinities), NaN as ``(abs (/ 0 0))`` or ``(- (abs (/ 0 0)))`` (``abs`` and ``-``
set the sign bit, whatever sign the CPU gives ``0/0``). Vectors are ``[...]`` (``(zeros 0)``
when empty), matrices ``(mat [...] ...)``. What nc source cannot write is an `NCError`: tensors
of rank 3 or more, matrices without rows, NaNs with a payload other than the default one, and
values on the meta device (which have no values).

The values of trainable ``(define name value)`` forms are replaced where they stand, keeping
comments and layout; parameters that were free names (``params=``) get a ``define`` at the top.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch

from .errors import CallError, Source
from .reader import Lst, Sym, read

_INT = {8: torch.int64, 4: torch.int32, 2: torch.int16}


def write_source(src: str, values: Mapping[str, torch.Tensor], trainable: Sequence[str], file: str) -> str:
    """``src`` with the value of each parameter in ``values`` written in."""
    texts = {n: value_source(n, v) for n, v in values.items()}
    edits = []
    for form in read(Source(src, file)):
        if (isinstance(form, Lst) and len(form.items) == 3 and isinstance(form.items[0], Sym)
                and form.items[0].name == "define" and isinstance(form.items[1], Sym)
                and form.items[1].name in trainable and form.items[1].name in texts):
            span = form.items[2].span
            edits.append((span.start, span.end, texts[form.items[1].name]))
    text = src
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    header = "".join(f"(define {n} {texts[n]})\n" for n in values if n not in trainable)
    return header + text


def value_source(name: str, t: torch.Tensor) -> str:
    """A parameter's value as nc source that reads back to the same bits (or a `CallError`)."""
    t = t.detach()
    if t.device.type == "meta":
        raise CallError(f"parameter '{name}' is on the meta device, which holds no values to write",
                        hint="materialise the module first (model.to_empty(device='cpu') and load_state_dict)")
    if not t.is_floating_point():
        raise CallError(f"parameter '{name}' has dtype {t.dtype}; nc writes floating-point values only")
    t = t.cpu()
    if t.dim() == 0:
        return number_source(name, t)
    if t.dim() == 1:
        return "[" + " ".join(number_source(name, x) for x in t) + "]" if t.numel() else "(zeros 0)"
    if t.dim() == 2 and t.shape[0] > 0:
        return "(mat " + " ".join(value_source(name, r) for r in t) + ")"
    what = "a matrix with no rows" if t.dim() == 2 else f"a rank-{t.dim()} tensor"
    raise CallError(f"parameter '{name}' is {what} (shape {list(t.shape)}), which nc source cannot write",
                    hint="nc literals are numbers, vectors [..] and matrices (mat [..] ...)")


def number_source(name: str, x: torch.Tensor) -> str:
    value = float(x)
    if math.isnan(value):
        if nan_payload(x) != nan_payload(torch.tensor(math.nan, dtype=x.dtype)):
            raise CallError(f"parameter '{name}' holds a NaN with a non-default payload, which nc source "
                            "cannot write bit for bit")
        return "(- (abs (/ 0 0)))" if sign_bit(x) else "(abs (/ 0 0))"
    if math.isinf(value):
        return "1e400" if value > 0 else "-1e400"
    return repr(value)


def bits(x: torch.Tensor) -> int:
    return int(x.reshape(1).view(_INT[x.element_size()])[0])


def sign_bit(x: torch.Tensor) -> bool:
    return bits(x) < 0


def nan_payload(x: torch.Tensor) -> int:
    return bits(x) & ((1 << (8 * x.element_size() - 1)) - 1)
