"""The compiled training step under ``torch.compile``: the loop as a ``while_loop`` for inductor.

`rollout_loss` wraps `rollout_sums`'s loop (the step and its sensitivities from the last initial
state, the squared residuals and their products with the sensitivities summed as it goes, as a
``torch._higher_order_ops.while_loop``) into ``(theta, ys0, S0, data, *fixed) -> (mse,
gradient)``, run eagerly for ``compiler=None``; `compile_inductor` compiles its loop with
inductor (`inductor_options`, scoped to this compile) for ``compiler="inductor"``. PyTorch's
compiler sees the loop once, whatever the step count, fusing each step with its sensitivities and
sums into one kernel. `nc.compiled_step` chooses between this and the C of `nc.c_backend`.
"""

from __future__ import annotations

import itertools
import types
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch._higher_order_ops.while_loop import while_loop

from .sensitivities import ScanPlan

__all__ = ["CPP_WRAPPER", "compile_inductor", "fresh_code", "inductor_options", "rollout_loss", "rollout_sums"]

CPP_WRAPPER = False
"""inductor's C++ wrapper (the loop in C++). Measured no faster than the Python wrapper here (2.3 ms
a step either way at batch 1, once the loop's inputs are no views), and on torch 2.13 it crashed
(segfault: a use-after-free of a view of an input read inside the loop), so it stays off."""


def inductor_options() -> dict[str, Any]:
    """Inductor settings for our compile only (``torch.compile(options=...)`` patches them around
    it; the user's global config is untouched). Measured on the loaded 2-core CPU, first compile
    of the LV step in a fresh process (bench/README.md): ``compile_threads=1`` compiles the few
    kernels in-process instead of first starting a pool of compile workers (22 s -> 14 s cold);
    marking ``while_loop`` cacheable lets inductor's on-disk FX graph and AOT caches (keyed by
    the graphs' code, the loop's subgraphs included) serve a later process instead of bypassing
    them, so a warm compile skips lowering and codegen too."""
    return {"cpp_wrapper": CPP_WRAPPER, "compile_threads": 1, "max_autotune": False,
            "unsafe_marked_cacheable_functions": {"torch.ops.higher_order.while_loop": f"nc-{torch.__version__}"}}


def fresh_code(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` with a code object of its own: dynamo keys its cache (and its recompile limit of 8)
    by code object, and every build makes a new closure of the same code, so without this the
    ninth model compiled in a process would silently run eagerly."""
    code = fn.__code__.replace(co_name=f"{fn.__name__}_{next(_BUILDS)}")
    return types.FunctionType(code, fn.__globals__, code.co_name, fn.__defaults__, fn.__closure__)


_BUILDS = itertools.count()


def compile_inductor(loop: Callable[..., tuple[Tensor, Tensor]]) -> Callable[..., tuple[Tensor, Tensor]]:
    """`rollout_loss`'s ``loop`` with its while loop (``loop.sums``) compiled by inductor,
    with `inductor_options`."""
    sums = torch.compile(fresh_code(loop.sums), fullgraph=True, dynamic=False,  # type: ignore[attr-defined]
                         options=inductor_options())
    return loop.with_sums(sums)  # type: ignore[attr-defined,no-any-return]


def rollout_loss(graph: torch.fx.GraphModule, plan: ScanPlan,
                 sums: Callable[..., tuple[Tensor, Tensor]] | None = None) -> Callable[..., tuple[Tensor, Tensor]]:
    """``(theta, ys0, S0, data, *fixed) -> (mse, gradient)`` around `rollout_sums`'s loop
    (``sums``, by default run eagerly; the function's ``sums`` attribute, and ``with_sums(f)``
    the same loss around another, e.g. compiled, loop).

    The residuals of the initial states and the final reductions are a few eager operations
    outside the compiled loop: in it each cost a C++ kernel to compile (about 1 s apiece on a
    loaded 2-core CPU) for microseconds of work (measured 1-4% slower a step, 2 s less to
    compile). So is the loop counter's zero, and the trip count is an input rather than a
    constant, so that the condition's kernel is the same for every model and comes from
    inductor's on-disk cache after the first. ``data`` is the target with the step axis first
    (moved by the caller: a view of an input read in the loop crashed inductor's C++ wrapper,
    see `CPP_WRAPPER`)."""
    npre, steps = plan.n_prefix, plan.steps
    loop = rollout_sums(graph, plan) if sums is None else sums
    counts: dict[torch.device, tuple[Tensor, Tensor]] = {}  # the loop's start and trip count, made once

    def loss(theta: Tensor, ys0: Tensor, s0: Tensor, data: Tensor, *fixed: Tensor) -> tuple[Tensor, Tensor]:
        n, p = data.numel(), theta.shape[0]
        r0 = ys0 - data[:npre]
        if theta.device not in counts:
            counts[theta.device] = (torch.tensor(0, device=theta.device), torch.tensor(steps, device=theta.device))
        sq, rs = loop(*counts[theta.device], theta, ys0[-1], s0[-1], (r0 * r0).sum(0), (r0.unsqueeze(1) * s0).sum(0), data, *fixed)
        return sq.sum() / n, rs.reshape(p, -1).sum(1) * (2 / n)
    loss.sums = loop  # type: ignore[attr-defined]
    loss.with_sums = lambda other: rollout_loss(graph, plan, other)  # type: ignore[attr-defined]
    return loss


def rollout_sums(graph: torch.fx.GraphModule, plan: ScanPlan) -> Callable[..., tuple[Tensor, Tensor]]:
    """``(i0, n, theta, y, S, sq, rs, data, *fixed) -> (sq, rs)`` (``i0`` a zero, ``n`` the
    trip count, 0-d int64 tensors): the loop of `plan`'s step and its sensitivities from the
    last initial state, the squared residuals and their products with the sensitivities summed
    elementwise as it goes (no history kept; a reduction in the loop would cost a kernel of its
    own each step). (A condition returning an exit flag carried from the body, which would
    spare its kernel, is refused by ``while_loop``: an output may not alias an input.)"""
    npre, start = plan.n_prefix, plan.start

    def loop(i0: Tensor, n: Tensor, theta: Tensor, y0: Tensor, s0: Tensor, sq0: Tensor, rs0: Tensor, data: Tensor,
             *fixed: Tensor) -> tuple[Tensor, Tensor]:
        def cond(i: Tensor, y: Tensor, s: Tensor, sq: Tensor, rs: Tensor) -> Tensor:
            return i < n

        def body(i: Tensor, y: Tensor, s: Tensor, sq: Tensor, rs: Tensor) -> tuple[Tensor, ...]:
            y2, s2 = graph((i + start).to(torch.float64), y, s, theta, *fixed)
            r = y2 - torch.index_select(data, 0, (i + npre).reshape(1))[0]
            return i + 1, y2, s2, sq + r * r, rs + r * s2
        out = while_loop(cond, body, (i0, y0, s0, sq0, rs0))
        return out[3], out[4]
    return loop
