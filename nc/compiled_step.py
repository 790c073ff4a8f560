"""`compiled_step`: the MSE loss of a rolled integration and its gradient, compiled whole.

For a model whose output is a rolled ``rk4``/``euler`` (`nc.scan`) and whose trainable
constants are a few scalars, the training step (rollout, mean squared error against the data,
gradient w.r.t. the constants) is one forward loop: the state and its sensitivities
(`nc.sensitivities`) advance together, and the loss and gradient are summed as the loop goes, so
nothing is taped and no history is kept. Gradients equal autograd's through the eager rollout
to rounding. Two compilers, chosen by ``compiler=``:

- ``"c"`` (`nc.c_backend`): the whole loop (steps, sensitivities, residuals, sums) as one
  plain C function generated from the step's graph and built by the system C compiler (about
  0.1-1 s, cached on disk), called once per training step; CPU only.
- ``"inductor"``: the loop is a ``torch._higher_order_ops.while_loop`` that PyTorch's compiler
  sees once, whatever the step count, fusing each step with its sensitivities and sums into
  one kernel (5-14 s to compile on a 2-core CPU; the loop runs from Python, 25-45 us an iteration).
- ``"auto"`` (the default): ``"c"`` for CPU tensors, falling back to inductor with a
  `FitWarning` saying why (no C compiler, the compiler failed, an operation the C generator
  does not handle); inductor for other devices. ``compiler="c"`` raises a `CallError` instead.

    >>> step = nc.compiled_step(model)            # compiled per input shapes, on first call
    >>> loss = step(s0, target=data)              # sets p.grad, as loss.backward() would
    >>> loss, grads = step.loss_and_grad(s0, target=data)   # or leaves .grad alone
    >>> states = step.rollout(s0)                 # model(s0) without gradient, the loop in C

``rollout`` is the forward pass alone (inference, plotting, extrapolation): the tensor
``model(*inputs)`` returns, same shape and dtype, computed by one generated C loop over the
step (no sensitivities), but detached: it has no autograd graph (use the model itself for
gradients). Where C does not apply (see `CompiledStep.rollout`) it runs the eager model.

``nc.fit(..., compile=True)`` uses it. Anything else (learned components, many or non-scalar
parameters, an output that is not the rolled states, static inputs) raises `NotCompilable` with
the reason, which `fit` reports before falling back to the eager path.

This module chooses and caches; the compilers are elsewhere: `nc.c_backend` (the C),
`nc.inductor_step` (the ``while_loop`` and ``torch.compile``), and `nc.rollout_plan` (the
forward rollout's split and graph).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from . import c_backend
from .binding import bind_arguments
from .c_codegen import UNROLL
from .errors import CallError
from .fit_result import FitWarning
from .inductor_step import compile_inductor, rollout_loss
from .module import NcModule
from .rollout_plan import forward_graph, plan_rollout
from .sensitivities import ScanPlan, plan_scan, step_graph

__all__ = ["CompiledStep", "NotCompilable", "compiled_step"]

COMPILERS = ("auto", "c", "inductor", None)


class NotCompilable(CallError):
    """The model or the call does not have the form the compiled step handles; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"no compiled training step: {reason}", None,
                         hint="fit without compile= (the eager path handles every model)")
        self.reason = reason


def compiled_step(model: nn.Module, *, compiler: str | None = "auto") -> CompiledStep:
    """The compiled MSE training step of ``model`` (an `nc.NcModule` whose output is a rolled
    integration and whose trainable constants are at most 16 scalars).

    ``compiler="c"`` generates the whole loop as plain C (`nc.c_backend`: one C function per
    shape signature, compiled by the system C compiler in about a second and cached on disk;
    CPU tensors of float32/float64); ``compiler="inductor"`` compiles with ``torch.compile``
    (inductor; the loop in its Python wrapper), 5-14 s on first call per shape signature on a
    loaded 2-core CPU; ``compiler="auto"`` (the default) takes ``"c"`` for CPU tensors and
    inductor for others (CUDA), and also falls back to inductor, with a `FitWarning` saying why,
    where C does not apply (no C compiler, an operation of the step it does not generate);
    ``compiler=None`` runs the same sensitivity loop eagerly (for checks). Shapes are checked on each call; see `CompiledStep`.

    ``compiled_step(model).rollout(*inputs)`` is the forward pass alone, ``model(*inputs)``
    without gradient (a tensor with no autograd graph), as one generated C loop over the step
    (no sensitivities, any number of constants); see `CompiledStep.rollout`.
    """
    if not isinstance(model, NcModule):
        raise NotCompilable(f"the model is a {type(model).__name__}, not a module compiled by nc")
    if compiler not in COMPILERS:
        raise CallError(f"compiler must be one of {COMPILERS}, got {compiler!r}")
    return CompiledStep(model, compiler)


class CompiledStep:
    """Callable: ``step(*inputs, target=data, **named_inputs) -> loss`` (a detached scalar),
    adding the gradient to each trainable parameter's ``.grad``. ``loss_and_grad`` returns the
    gradients instead. Built (traced, differentiated, compiled) once per signature of shapes
    and dtypes; ``compile_seconds`` holds how long each build took, ``backends`` which
    compiler each build used (``"c"``, ``"inductor"``, ``"eager"``) and ``c_lanes`` whether
    each C build ran the batch in SIMD lanes."""

    def __init__(self, model: nn.Module, compiler: str | None) -> None:
        self.model, self.compiler = model, compiler
        self.backends: list[str] = []  # per build: "c", "inductor" or "eager"
        self.c_lanes: list[bool] = []  # per C build: whether trajectories run in SIMD lanes
        self.cache: dict[Any, tuple[ScanPlan, Callable[..., tuple[Tensor, Tensor]], torch.Size]] = {}
        self.compile_seconds: list[float] = []
        self.rollouts: dict[Any, tuple[ScanPlan, Callable[..., Tensor], torch.Size, torch.dtype] | str] = {}
        self.rollout_backends: list[str] = []  # per rollout build: "c" or "eager" (why: rollout_notes)
        self.rollout_notes: list[str] = []

    def trainable(self) -> list[tuple[str, nn.Parameter]]:
        m: Any = self.model
        return [(n, m.params[n]) for n in m.param_names if m.params[n].requires_grad]

    def loss_and_grad(self, *args: Any, target: Tensor, **kwargs: Any) -> tuple[Tensor, tuple[Tensor, ...]]:
        """The mean squared error of ``model(*args, **kwargs)`` against ``target`` and its
        gradient w.r.t. each trainable parameter (in ``named_parameters`` order)."""
        m: Any = self.model
        named = self.trainable()
        values = bind_arguments(m._compiled, m.inputs, args, kwargs, extra=[p for _, p in m.params.items()],
                                params=m.param_names)
        if m._compiled.static:
            raise NotCompilable("the program has static inputs (sizes or step counts given as ints)")
        ordered = [values[i] for i in m._order]
        names = list(m._compiled.names)
        theta_pos = [names.index(n) for n, _ in named]
        if not isinstance(target, Tensor):
            raise NotCompilable("the target is not a tensor")
        key = (tuple((tuple(v.shape), v.dtype, v.device) for v in ordered), tuple(target.shape), tuple(theta_pos))
        hit = self.cache.get(key)
        theta = torch.stack([p.detach().reshape(()) for _, p in named])
        fixed = [v.detach() for i, v in enumerate(ordered) if i not in theta_pos]
        start = time.perf_counter()
        if hit is None:
            hit = self.cache[key] = self.build(ordered, theta_pos, theta, fixed, target)
        plan, fn, shape = hit
        data = target.detach().movedim(plan.axis, 0).contiguous()  # outside: see rollout_loss
        loss, grad = fn(theta, *prefix(plan, shape, theta, fixed), data, *fixed)
        if len(self.compile_seconds) < len(self.cache):
            self.compile_seconds.append(time.perf_counter() - start)
        return loss, tuple(g.reshape(p.shape) for g, (_, p) in zip(grad, named))

    def __call__(self, *args: Any, target: Tensor, **kwargs: Any) -> Tensor:
        loss, grads = self.loss_and_grad(*args, target=target, **kwargs)
        for (_, p), g in zip(self.trainable(), grads):
            p.grad = g.clone() if p.grad is None else p.grad + g
        return loss

    def rollout(self, *args: Any, **kwargs: Any) -> Tensor:
        """``model(*args, **kwargs)`` without gradient: the same shape and dtype, equal to the
        eager rollout to rounding (bit-equal where libm and torch agree), computed by one
        generated C function looping over the step (`nc.c_backend`, built once per signature of
        shapes and dtypes, cached on disk). The result has no autograd graph: for gradients call
        the model (or use the training step). With ``compiler="auto"``, where C does not apply
        (no C compiler, the compiler failed, an operation the generator lacks, a model that is not
        a rolled integration, learned components, static inputs, tensors off the CPU) it runs
        the eager model under ``torch.no_grad()`` after a `FitWarning` saying why (once per
        signature); ``compiler="c"`` raises a `CallError` instead; ``compiler="inductor"`` or
        None run the eager model."""
        m: Any = self.model
        if self.compiler not in ("auto", "c"):
            with torch.no_grad():
                return m(*args, **kwargs)  # type: ignore[no-any-return]
        values = bind_arguments(m._compiled, m.inputs, args, kwargs, extra=[p for _, p in m.params.items()],
                                params=m.param_names)
        ordered = [values[i].detach() for i in m._order]
        key = tuple((tuple(v.shape), v.dtype, v.device) for v in ordered)
        hit = self.rollouts.get(key)
        if hit is None:
            hit = self.rollouts[key] = self.build_rollout(ordered)
        if isinstance(hit, str):
            with torch.no_grad():
                return m(*args, **kwargs)  # type: ignore[no-any-return]
        plan, fn, shape, dtype = hit
        if len({v.dtype for v in ordered}) > 1:  # as the eager call: mixed dtypes promote first
            ordered = [v.to(dtype) for v in ordered]
        theta = torch.empty(0, dtype=dtype)
        ys0 = torch.stack([s.expand(shape) for s in plan.prefix(theta, ordered)])
        return fn(ys0, *ordered).movedim(0, plan.axis).contiguous()

    def build_rollout(self, ordered: Sequence[Tensor]) -> tuple[ScanPlan, Callable[..., Tensor], torch.Size,
                                                                  torch.dtype] | str:
        """Plan and generate the C rollout for this signature; on failure the reason (after a
        `FitWarning`; a `CallError` for ``compiler="c"``)."""
        m: Any = self.model
        start = time.perf_counter()
        try:
            if m._compiled.static:
                raise NotCompilable("the program has static inputs (sizes or step counts given as ints)")
            if any(v.device.type != "cpu" for v in ordered):
                raise NotCompilable("tensors not on the CPU (the C rollout is CPU only)")
            program = m._compiled.program_for(ordered)
            plan = plan_rollout(program)
            if isinstance(plan, str):
                raise NotCompilable(plan)
            dtype = program.dtype
            fixed = [v.to(dtype) for v in ordered] if len({v.dtype for v in ordered}) > 1 else list(ordered)
            theta = torch.empty(0, dtype=dtype)
            states = plan.prefix(theta, fixed)
            shape = torch.broadcast_shapes(*(s.shape for s in states))
            k0 = torch.tensor(float(plan.start), dtype=torch.float64)
            y1 = plan.step(k0, states[-1].expand(shape), theta, fixed)
            if y1.dtype != dtype or any(s.dtype != dtype for s in states) or y1.shape != shape:
                raise NotCompilable("the step changes the state's shape or dtype")
            graph = forward_graph(plan, torch.zeros(shape, dtype=dtype), theta, fixed)
            fn, _, _ = c_backend.build_rollout(graph, shape=tuple(shape), n_prefix=plan.n_prefix, steps=plan.steps,
                                               start=plan.start, fixed=fixed, dtype=dtype)
        except (NotCompilable, c_backend.Unsupported, c_backend.NoCompiler, c_backend.CompileFailed) as e:
            kinds = {c_backend.Unsupported: "unsupported: ", c_backend.NoCompiler: "no C compiler: ",
                     c_backend.CompileFailed: "the C compiler failed: "}
            reason = e.reason if isinstance(e, NotCompilable) else str(e)
            kind = kinds.get(type(e), "")  # NotCompilable's reason says it all
            if self.compiler == "c":
                raise CallError(f"compiler='c': no compiled rollout ({kind}{reason})", None,
                                hint="call the model itself, or use compiler='auto'") from e
            warnings.warn(f"compiled rollout: no C ({kind}{reason}); running the eager model", FitWarning,
                          stacklevel=3)
            self.rollout_backends.append("eager")
            self.rollout_notes.append(reason)
            return reason
        self.rollout_backends.append("c")
        self.rollout_notes.append(f"built in {time.perf_counter() - start:.2f} s")
        return plan, fn, shape, dtype

    def build(self, ordered: Sequence[Tensor], theta_pos: list[int], theta: Tensor, fixed: Sequence[Tensor],
              target: Tensor) -> tuple[ScanPlan, Callable[..., tuple[Tensor, Tensor]], torch.Size]:
        """Plan, check the target's shape, trace the step's sensitivities and wrap the loop."""
        m: Any = self.model
        plan = plan_scan(m._compiled.program_for(ordered), theta_pos)
        if isinstance(plan, str):
            raise NotCompilable(plan)
        states = plan.prefix(theta, fixed)
        k0 = torch.tensor(float(plan.start), dtype=torch.float64)
        shape = torch.broadcast_shapes(*(s.shape for s in states))
        shape = torch.broadcast_shapes(shape, plan.step(k0, states[-1].expand(shape), theta, fixed).shape)
        out_shape = list(shape)
        out_shape.insert(len(shape) + 1 + plan.axis, plan.n_prefix + plan.steps)
        if tuple(target.shape) != tuple(out_shape):
            raise NotCompilable(f"the target's shape {tuple(target.shape)} is not the output's {tuple(out_shape)}")
        use_c = self.compiler == "c" or (self.compiler == "auto" and theta.device.type == "cpu")  # C: CPU only
        if use_c:  # first one trajectory's step in SIMD lanes: no trace of the batched step needed
            lanes = self.build_c_lanes(plan, shape, theta, fixed)
            if lanes is not None:
                self.backends.append("c")
                self.c_lanes.append(True)
                return plan, lanes, shape
        graph = step_graph(plan, torch.zeros(shape, dtype=theta.dtype, device=theta.device), theta, fixed)
        loop = rollout_loss(graph, plan)
        if self.compiler is None:
            self.backends.append("eager")
            return plan, loop, shape
        if use_c:
            c_loop = self.build_c(graph, plan, shape, theta, fixed)
            if c_loop is not None:
                self.backends.append("c")
                self.c_lanes.append(False)
                return plan, c_loop, shape
        self.backends.append("inductor")
        compiled = compile_inductor(loop)
        return plan, compiled, shape

    def build_c(self, graph: torch.fx.GraphModule, plan: ScanPlan, shape: torch.Size, theta: Tensor,
                fixed: Sequence[Tensor]) -> Callable[..., tuple[Tensor, Tensor]] | None:
        """The loop in C (`nc.c_backend`), or None (``"auto"``: inductor takes over, with a
        `FitWarning` saying why); ``compiler="c"`` raises a `CallError` instead."""
        try:
            if theta.device.type != "cpu":
                raise c_backend.Unsupported(f"tensors on {theta.device.type}")
            loop, _, _ = c_backend.build_loop(graph, shape=tuple(shape), n_theta=theta.shape[0],
                                              n_prefix=plan.n_prefix, steps=plan.steps, start=plan.start,
                                              fixed=fixed, dtype=theta.dtype)
            return loop
        except (c_backend.Unsupported, c_backend.NoCompiler, c_backend.CompileFailed) as e:
            kind = {c_backend.Unsupported: "unsupported", c_backend.NoCompiler: "no C compiler",
                    c_backend.CompileFailed: "the C compiler failed"}[type(e)]
            if self.compiler == "c":
                raise CallError(f"compiler='c': {kind}: {e}", None,
                                hint="use compiler='auto' or 'inductor'") from e
            warnings.warn(f"compiled step: no C backend ({kind}: {e}); compiling with inductor", FitWarning,
                          stacklevel=4)
            return None


    def build_c_lanes(self, plan: ScanPlan, shape: torch.Size, theta: Tensor,
                      fixed: Sequence[Tensor]) -> Callable[..., tuple[Tensor, Tensor]] | None:
        """For a batch of trajectories too large for registers, the C loop over groups of
        trajectories (`c_programs.generate_lanes`, one trajectory's step traced), or None where
        that does not apply or fails for any reason (then the batched step's C is tried, and
        reports the failure if it fails too)."""
        region = plan.scan.region
        assert region is not None
        rank = region.inputs[1].rank
        example, batch = shape[len(shape) - rank:], math.prod(shape[:len(shape) - rank])
        if batch <= 1 or math.prod(shape) * theta.shape[0] <= UNROLL or theta.device.type != "cpu":
            return None
        try:
            one = step_graph(plan, torch.zeros(example, dtype=theta.dtype, device=theta.device), theta, fixed)
            loop, _, _ = c_backend.build_loop(one, shape=tuple(example), n_theta=theta.shape[0],
                                              n_prefix=plan.n_prefix, steps=plan.steps, start=plan.start,
                                              fixed=fixed, dtype=theta.dtype, batch=batch)
        except Exception:  # noqa: BLE001 - unsupported, or one trajectory's step did not trace: the batched C next
            return None
        return loop


def prefix(plan: ScanPlan, shape: torch.Size, theta: Tensor, fixed: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
    """The initial states stacked ``(n_prefix, *state)`` and their sensitivities ``(n_prefix, P, *state)``."""
    ys = torch.stack([s.expand(shape) for s in plan.prefix(theta, fixed)])
    if not plan.prefix_depends_on_theta():
        return ys, ys.new_zeros((ys.shape[0], theta.shape[0], *shape))
    jac = torch.func.jacfwd(lambda th: torch.stack([s.expand(shape) for s in plan.prefix(th, fixed)]))(theta)
    return ys, jac.movedim(-1, 1).contiguous()
