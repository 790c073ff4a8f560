"""Rolled integrator loops: the ``%scan`` equation, one step recorded once and run ``steps`` times.

An ``euler``/``rk4`` of more than `ROLL_MIN` steps is recorded as one ``%scan`` equation whose
region is the step traced once, with two inputs: ``k`` (the step's index, a Python float at run
time, so that ``t = k * dt`` is computed exactly as the unrolled code writes ``3.0 * dt``) and the
state. The equation's arguments are the states computed before the loop (the initial state, and
any steps unrolled while the state was still a constant); its value is every state stacked on a
new per-example axis, as ``_rt.stack_axis`` stacks the unrolled states. The same operations run in
the same order on the same tensors, so values and gradients are the unrolled code's, bit for bit;
the generated code's size no longer depends on the step count.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

ROLL_MIN = 16
"""Integrations of at most this many steps are unrolled (short code; each step's constants fold)."""


def rollout(step: Callable[[float, torch.Tensor], torch.Tensor], prefix: tuple[torch.Tensor, ...], start: int,
            steps: int, axis: int) -> torch.Tensor:
    """Run ``step`` ``steps`` times from the last of ``prefix`` (indices ``start``, ``start + 1``, ...)
    and stack ``prefix`` and every new state on ``axis``: what the generated loop does."""
    states = list(prefix)
    y = states[-1]
    for k in range(start, start + steps):
        y = step(float(k), y)
        states.append(y)
    return torch.stack(torch.broadcast_tensors(*states), dim=axis)


def repeat(body: Callable[..., tuple[torch.Tensor, ...]], state: tuple[torch.Tensor, ...], trips: int,
           lits: tuple[tuple[int, int], ...], stacked: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """A rolled constant-trip loop (``%scan`` in loop mode, see `nc.rollloop`), as the generated
    code runs it: trip ``k`` calls ``body`` with each counting literal ``float(a + s*k)``, row
    ``k`` of each stacked constant, and the state; the value is the final state."""
    for k in range(trips):
        state = body(*(float(a + s * k) for a, s in lits), *(c[k] for c in stacked), *state)
    return state
