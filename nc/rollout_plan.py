"""The forward rollout's plan and graph: what `nc.c_backend.build_rollout` compiles.

`plan_rollout` splits a program whose output is a rolled integration into its initial states
and its step with every input fixed (no trainable constants, no sensitivities), and
`forward_graph` traces one step to the flat graph of ATen operations the C generator reads. Used
by `nc.compiled_step`'s ``rollout``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor
from torch.fx.experimental.proxy_tensor import make_fx

from .equations import Var
from .sensitivities import ScanPlan

if TYPE_CHECKING:
    from .program import Recording

__all__ = ["forward_graph", "plan_rollout"]


def plan_rollout(program: Recording) -> ScanPlan | str:
    """`plan_scan`'s split without trainable constants (every input fixed) for the forward
    rollout, or the reason the program does not have that form."""
    if program.externals:
        return "the program calls learned components (the C generator has no matrix products)"
    out = program.output
    index = next((i for i, e in enumerate(program.eqns) if isinstance(out, Var) and e.out.id == out.id), None)
    if index is None or program.eqns[index].prim != "%scan":
        return "the output is not a rolled integration (an rk4/euler of more than 16 steps)"
    return ScanPlan(program, tuple(program.eqns[:index]), program.eqns[index], (), tuple(range(len(program.inputs))))


def forward_graph(plan: ScanPlan, y: Tensor, theta: Tensor, fixed: Sequence[Tensor]) -> torch.fx.GraphModule:
    """``(k, y, *fixed) -> (y',)``: one step, no sensitivities, traced to a flat graph of ATen
    operations (as `step_graph`, for `c_backend.build_rollout`)."""
    def step(k: Tensor, y: Tensor, *fixed: Tensor) -> tuple[Tensor]:
        return (plan.step(k, y, theta, fixed),)
    k = torch.zeros((), dtype=torch.float64, device=y.device)
    return make_fx(step)(k, y, *fixed)
