"""Forward sensitivities of a rolled integration: the step and its derivative w.r.t. a few constants.

A program whose output is one ``%scan`` (a rolled ``rk4``/``euler``, see `nc.scan`) splits into
the equations before the loop (``pre``: they compute the states the loop starts from) and the
step. With ``theta`` the trainable scalar constants, the sensitivities ``S = dy/dtheta`` obey

    y_{k+1} = step(k, y_k, theta)
    S_{k+1} = d step/dy . S_k + d step/dtheta          (one jvp of the step per constant)

which is the exact derivative of the same discrete rollout, so it equals reverse-mode autograd
through the eager loop up to rounding. With few constants this is cheaper than a backward pass
and, above all, forward-only and pointwise per trajectory: one loop, no tape, which
`nc.compiled_step` compiles whole. `ScanPlan` finds the split (or says why the program does not
fit this form); `step_graph` is the step and its sensitivities as one flat ``torch.fx`` graph of
ATen operations (``make_fx`` of ``vmap(jvp(step))``), ready for PyTorch's compiler.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import torch
import torch.fx
from torch.fx.experimental.proxy_tensor import make_fx

from .equations import Eqn, Var
from .interpret import Interpreter
from .program import Recording

__all__ = ["MAX_PARAMS", "ScanPlan", "plan_scan", "step_graph"]

MAX_PARAMS = 16
"""At most this many scalar constants: the sensitivities cost one tangent each per step."""


@attrs.frozen
class ScanPlan:
    """A program ``pre; states = %scan(prefix; step)`` with ``states`` its output.

    ``theta`` holds, for each trainable constant, its position among ``program.inputs``; every
    other input is passed as a fixed value (``fixed``: their positions)."""

    program: Recording
    pre: tuple[Eqn, ...]
    scan: Eqn
    theta: tuple[int, ...]
    fixed: tuple[int, ...]

    @property
    def steps(self) -> int:
        return int(self.scan.params["steps"])

    @property
    def start(self) -> int:
        return int(self.scan.params["start"])

    @property
    def axis(self) -> int:
        return int(self.scan.params["axis"])

    @property
    def n_prefix(self) -> int:
        return len(self.scan.args)

    def interpreter(self, theta: torch.Tensor, fixed: Sequence[torch.Tensor]) -> Interpreter:
        """An interpreter with the inputs bound (constant ``i`` is ``theta[i]``) and ``pre`` run."""
        interp = Interpreter(self.program, dtype=theta.dtype, device=theta.device)
        for i, pos in enumerate(self.theta):
            interp.values[self.program.inputs[pos].id] = theta[i]
        for pos, value in zip(self.fixed, fixed):
            interp.values[self.program.inputs[pos].id] = value
        interp.run(list(self.pre))
        return interp

    def prefix(self, theta: torch.Tensor, fixed: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """The states the loop starts from (the unrolled steps before it, and the initial state)."""
        interp = self.interpreter(theta, fixed)
        return tuple(torch.as_tensor(interp.atom(a), dtype=theta.dtype, device=theta.device) for a in self.scan.args)

    def step(self, k: torch.Tensor, y: torch.Tensor, theta: torch.Tensor, fixed: Sequence[torch.Tensor]) -> torch.Tensor:
        """One step from state ``y`` at step index ``k`` (a float64 scalar tensor, so that
        ``t = k * dt`` is computed as the generated code computes it from a Python float).

        ``pre`` is run again inside: the step may read values computed from the constants."""
        interp = self.interpreter(theta, fixed)
        region = self.scan.region
        assert region is not None
        interp.values[region.inputs[0].id], interp.values[region.inputs[1].id] = k, y
        interp.run(list(region.eqns))
        return torch.as_tensor(interp.atom(region.outputs[0]), dtype=theta.dtype, device=theta.device)

    def prefix_depends_on_theta(self) -> bool:
        """Whether the initial states can depend on the constants (otherwise their sensitivity is 0)."""
        ids = {self.program.inputs[p].id for p in self.theta}
        return bool(self.pre) or any(isinstance(a, Var) and a.id in ids for a in self.scan.args)


def plan_scan(program: Recording, trainable: Sequence[int]) -> ScanPlan | str:
    """The split of ``program`` for forward sensitivities w.r.t. the inputs at ``trainable``, or
    the reason it does not have that form."""
    if program.externals:
        return "the program calls learned components (many parameters: reverse mode suits them)"
    if not 1 <= len(trainable) <= MAX_PARAMS:
        return f"{len(trainable)} trainable constants (forward sensitivities take 1 to {MAX_PARAMS})"
    if any(program.inputs[p].rank != 0 for p in trainable):
        return "a trainable constant is not a scalar"
    out = program.output
    index = next((i for i, e in enumerate(program.eqns) if isinstance(out, Var) and e.out.id == out.id), None)
    if index is None or program.eqns[index].prim != "%scan":
        return "the output is not a rolled integration (an rk4/euler of more than 16 steps)"
    fixed = tuple(i for i in range(len(program.inputs)) if i not in set(trainable))
    return ScanPlan(program, tuple(program.eqns[:index]), program.eqns[index], tuple(trainable), fixed)


def step_graph(plan: ScanPlan, y: torch.Tensor, theta: torch.Tensor,
               fixed: Sequence[torch.Tensor]) -> torch.fx.GraphModule:
    """``(k, y, S, theta, *fixed) -> (y', S')``: one step and its sensitivities ``S`` (shape
    ``(P, *y.shape)``), traced to a flat graph of ATen operations."""
    n = theta.shape[0]

    def sens(k: torch.Tensor, y: torch.Tensor, s: torch.Tensor, theta: torch.Tensor,
             *fixed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        def f(y: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
            return plan.step(k, y, theta, fixed)

        def tangent(sy: torch.Tensor, st: torch.Tensor) -> Any:
            return torch.func.jvp(f, (y, theta), (sy, st))[1]
        eye = torch.eye(n, dtype=theta.dtype, device=theta.device)
        return f(y, theta), torch.func.vmap(tangent)(s, eye).contiguous()

    k = torch.zeros((), dtype=torch.float64, device=theta.device)
    s = torch.zeros((n, *y.shape), dtype=y.dtype, device=y.device)
    return make_fx(sens)(k, y, s, theta, *fixed)
