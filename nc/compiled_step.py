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
"""

from __future__ import annotations

import itertools
import math
import time
import types
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from torch._higher_order_ops.while_loop import while_loop
from torch.fx.experimental.proxy_tensor import make_fx

from . import c_backend
from .binding import bind_arguments
from .equations import Var
from .errors import CallError
from .fit_result import FitWarning
from .module import NcModule
from .sensitivities import ScanPlan, plan_scan, step_graph

if TYPE_CHECKING:
    from .program import Recording

__all__ = ["CompiledStep", "NotCompilable", "compiled_step"]

COMPILERS = ("auto", "c", "inductor", None)
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
        trajectories (`c_backend.generate_lanes`, one trajectory's step traced), or None where
        that does not apply or fails for any reason (then the batched step's C is tried, and
        reports the failure if it fails too)."""
        region = plan.scan.region
        assert region is not None
        rank = region.inputs[1].rank
        example, batch = shape[len(shape) - rank:], math.prod(shape[:len(shape) - rank])
        if batch <= 1 or math.prod(shape) * theta.shape[0] <= c_backend.UNROLL or theta.device.type != "cpu":
            return None
        try:
            one = step_graph(plan, torch.zeros(example, dtype=theta.dtype, device=theta.device), theta, fixed)
            loop, _, _ = c_backend.build_loop(one, shape=tuple(example), n_theta=theta.shape[0],
                                              n_prefix=plan.n_prefix, steps=plan.steps, start=plan.start,
                                              fixed=fixed, dtype=theta.dtype, batch=batch)
        except Exception:  # noqa: BLE001 - unsupported, or one trajectory's step did not trace: the batched C next
            return None
        return loop


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


def fresh_code(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` with a code object of its own: dynamo keys its cache (and its recompile limit of 8)
    by code object, and every build makes a new closure of the same code, so without this the
    ninth model compiled in a process would silently run eagerly."""
    code = fn.__code__.replace(co_name=f"{fn.__name__}_{next(_BUILDS)}")
    return types.FunctionType(code, fn.__globals__, code.co_name, fn.__defaults__, fn.__closure__)


_BUILDS = itertools.count()


def prefix(plan: ScanPlan, shape: torch.Size, theta: Tensor, fixed: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
    """The initial states stacked ``(n_prefix, *state)`` and their sensitivities ``(n_prefix, P, *state)``."""
    ys = torch.stack([s.expand(shape) for s in plan.prefix(theta, fixed)])
    if not plan.prefix_depends_on_theta():
        return ys, ys.new_zeros((ys.shape[0], theta.shape[0], *shape))
    jac = torch.func.jacfwd(lambda th: torch.stack([s.expand(shape) for s in plan.prefix(th, fixed)]))(theta)
    return ys, jac.movedim(-1, 1).contiguous()


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
