"""Checks of the keyword arguments of `nc.fit`, `nc.fit_many` and `nc.ShootingLoss`.

Each check takes the argument's name and value, and returns the value in the form the fitting
code uses (a ``float``, an ``int``, ...) or raises a `CallError` that names the argument, the
value given and what is allowed. Booleans are not numbers here (``epochs=True`` is a mistake),
strings are never converted (``lr="0.1"`` is an error, not 0.1), and a float is not a count
(``epochs=2.5`` is an error, not 2).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Collection, Mapping
from typing import Any

import torch

from nc.errors import CallError

__all__ = [
    "SEED_RANGE",
    "check_bool",
    "check_choice",
    "check_count",
    "check_dtype",
    "check_mapping",
    "check_number",
    "check_seed",
]

#: the seeds torch.Generator.manual_seed accepts
SEED_RANGE = (-(2**63), 2**64 - 1)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_number(name: str, value: Any, *, positive: bool = False, optional: bool = False) -> float | None:
    """A finite real number (>= 0, or > 0 with ``positive``); None only with ``optional``."""
    if value is None and optional:
        return None
    bound = "> 0" if positive else ">= 0"
    allowed = f"a finite number {bound}" + (" or None" if optional else "")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise CallError(f"{name}={_shown(value)} is not a number", None, hint=f"{name} must be {allowed}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number) or number < 0 or (positive and number == 0):
        raise CallError(f"{name}={_shown(value)} is out of range", None, hint=f"{name} must be {allowed}")
    return number


def check_count(name: str, value: Any, *, minimum: int = 0, optional: bool = False) -> int | None:
    """A whole number (a Python or numpy int, not a float or bool) >= ``minimum``."""
    if value is None and optional:
        return None
    allowed = f"an integer >= {minimum}" + (" or None" if optional else "")
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise CallError(f"{name}={_shown(value)} is not an integer", None, hint=f"{name} must be {allowed}")
    if int(value) < minimum:
        raise CallError(f"{name}={_shown(value)} is out of range", None, hint=f"{name} must be {allowed}")
    return int(value)


def check_seed(value: Any) -> int | None:
    """None (follow torch's global RNG) or an integer that ``torch.Generator.manual_seed`` takes."""
    lo, hi = SEED_RANGE
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not lo <= int(value) <= hi:
        raise CallError(f"seed={_shown(value)} is not a valid seed", None,
                        hint="seed must be None or an integer from -2**63 to 2**64 - 1")
    return int(value)


def check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise CallError(f"{name}={_shown(value)} is not True or False", None)
    return value


def check_choice(name: str, value: Any, choices: Collection[Any]) -> Any:
    """One of ``choices`` (compared by equality; strings only match strings)."""
    if not any(type(value) is type(c) and value == c for c in choices):
        listed = ", ".join(repr(c) for c in choices)
        raise CallError(f"unknown {name} {_shown(value)}", None, hint=f"use one of {listed}")
    return value


def check_dtype(value: Any) -> torch.dtype | None:
    """None or a real floating-point torch dtype (the parameters must be differentiable)."""
    if value is None or (isinstance(value, torch.dtype) and value.is_floating_point):
        return value
    raise CallError(f"dtype={_shown(value)} is not a floating-point torch dtype", None,
                    hint="use torch.float64, torch.float32, ... or None (keep the model's dtype)")


def check_mapping(name: str, value: Any, *, optional: bool = True) -> dict[str, Any]:
    """A mapping with string keys, as a dict ({} for None with ``optional``)."""
    if value is None and optional:
        return {}
    if not isinstance(value, Mapping):
        raise CallError(f"{name} must be a dict, got {type(value).__name__}", None)
    bad = [k for k in value if not isinstance(k, str)]
    if bad:
        raise CallError(f"{name} has keys that are not names: {bad[:3]}", None, hint="use strings as keys")
    return dict(value)
