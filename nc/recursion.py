"""Recursion on input values that is not a tail call: an explicit per-element stack in a masked loop.

A function ``f`` whose recursive calls depend on the inputs becomes a state machine stepped by
one ``%loop``. Its state is the current activation (``f``'s parameters, the results of the
recursive call sites already returned and which ones have: *filled*), a stack of suspended
activations (``[max_depth, width]`` rows per element) and the stack pointer. One step *replays*
the body: a call site that has returned gives its saved result; the first one that has not
suspends the activation (its frame is pushed with the site's number and the callee's arguments
become the parameters). An activation that returns pops its caller's frame and fills the site
it waited on. The function is pure, so replaying the work before a site gives the values it
gave the first time. The root's return exits the element; an element deeper than ``max_depth``
exits with NaN, and one that needs more than ``max_iter`` steps (each call and each return to a
caller is one step) gives NaN as every masked loop does. With ``check_domain=True`` the state also
counts the steps, and either limit raises `nc.LimitError` naming the function and the limit.

Mutual recursion needs nothing more: the other functions of the group are traced into ``f``'s
step as any call is, and their calls of ``f`` are call sites of that step (see `Replay`). Whichever
function the program calls first is ``f``; the state machine's activations are ``f``'s.

Cost (see `nc.runtime.masked_loop`): the stack starts small and grows to the depth the batch
reaches, is read and written one row per element by advanced indexing (autograd saves only the
indices), and is written in place in eager mode, so a step costs O(N * frame width) besides the
body.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from . import ir
from . import shapes as sh
from .domains import LIMIT_SITE
from .errors import NCTypeError, ShapeError, Span
from .primitives import TABLE, code_of
from .program import Region, Var, live_equations
from .tailcalls import children
from .tracer import Tracer
from .values import F64, Ctx, Env, SizeDependent, Value, pshape_of


class RecurseOnData(Exception):
    """Internal: a function recursed on a value that depends on the inputs, not as a tail call."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


class ResultShape(Exception):
    """Internal: the function returns another shape than guessed; trace the loop again."""

    def __init__(self, pshape: sh.Shape) -> None:
        super().__init__(pshape)
        self.pshape = pshape


class MoreSites(Exception):
    """Internal: one step reached more recursive call sites than the state has room for."""

    def __init__(self, count: int) -> None:
        super().__init__(count)
        self.count = count


class Replay:
    """The recursive call sites of one function being traced as a state machine step.

    A site is a call of the function met while tracing one step of its body, directly or in
    another function that the body calls (mutual recursion: ``a`` calls ``b``, which calls
    ``a``), numbered in the order the trace meets them; a call node met twice in one step (``b``
    called at two places of ``a``) is two sites. Tracing is deterministic, so every step meets
    the same sites in the same order."""

    def __init__(self, fn: ir.Function, ctx: Ctx, filled: list[Var], results: list[Var], rshape: sh.Shape) -> None:
        self.fn, self.ctx, self.filled, self.results, self.rshape = fn, ctx, filled, results, rshape
        self.met: dict[int, int] = {}  # call node -> times met in this step
        self.numbers: dict[tuple[int, int], int] = {}
        self.suspended: Var | None = None
        self.calls: list[tuple[Var, list[Value], int]] = []
        self.susp_deep: Var | None = None  # elements suspending with a full stack (set by step_outputs)

    def site(self, tr: Tracer, node: ir.Call, args: list[Value]) -> Value:
        self.check_region(tr, node)
        seen = self.met.get(id(node), 0)
        self.met[id(node)] = seen + 1
        j = self.numbers.setdefault((id(node), seen), len(self.numbers))
        if j >= len(self.filled):  # no room: trace on for the count, then again with more sites
            return torch.zeros([d or 0 for d in self.rshape], dtype=F64)
        path = tr.branches.path_mask(0)
        assert path is not None  # inside the loop region there is always the active mask
        here = mask_and(tr, path, tr.branches.negate(tr.branches.truth_mask(self.filled[j])))
        if self.suspended is not None:
            here = mask_and(tr, here, tr.branches.negate(self.suspended))
            self.suspended = mask_or(tr, self.suspended, here)
        else:
            self.suspended = here
        self.calls.append((here, args, j))
        return self.results[j]

    def check_region(self, tr: Tracer, node: ir.Call) -> None:
        """A call from inside another masked loop (a ``loop``, tail calls, another recursion on
        data) cannot suspend this function's step."""
        c: Ctx | None = tr.build.ctx
        while c is not None and c is not self.ctx:
            if c.region is not self.ctx.region:
                break
            c = c.parent
        if c is not self.ctx:
            raise NCTypeError(f"'{self.fn.name}' recurses on a value that depends on the inputs from inside a loop "
                              "that runs in its body; only calls outside such loops can run on its stack", node.span,
                              hint="call the function outside the loop, or write the loop as recursion")


def mask_and(tr: Tracer, a: Var, b: Var) -> Var:
    return tr.branches.record("%and", code_of("%and"), (a, b), sh.broadcast(a.pshape, b.pshape), None,
                              guard=False, mask=True)


def mask_or(tr: Tracer, a: Var, b: Var) -> Var:
    na, nb = tr.branches.negate(a), tr.branches.negate(b)
    return tr.branches.negate(mask_and(tr, na, nb))


def call_sites(fn: ir.Function) -> dict[int, int]:
    """The calls of ``fn`` in its body, numbered in source order (an explicit stack, no recursion)."""
    found: list[tuple[int, int]] = []
    stack: list[Any] = [fn.body]
    while stack:
        n = stack.pop()
        if isinstance(n, ir.Call) and n.fn == fn.key:
            found.append((n.span.start if n.span is not None else 0, id(n)))
        if isinstance(n, ir.Letrec):
            stack.extend(f.body for f in n.fns)
        stack.extend(c for c, _ in children(n))
    return {node: k for k, (_, node) in enumerate(sorted(found))}


def trace_recursion(tr: Tracer, fn: ir.Function, args: list[Value], closure: Env, span: Span | None) -> Value:
    """``fn`` on ``args`` as one masked loop over an explicit stack (see the module docstring).

    The result's shape and the number of call sites are guessed (a scalar; ``fn``'s own calls)
    and traced again when a step shows otherwise."""
    shape: sh.Shape = ()
    sites = len(call_sites(fn))
    for _ in range(6):
        try:
            return recursion_loop(tr, fn, args, closure, span, shape, sites)
        except ResultShape as e:
            if e.pshape == shape:
                raise
            shape = e.pshape
        except MoreSites as e:
            sites = e.count
    raise ShapeError(f"'{fn.name}' returns values of different shapes", span)


def numel(shape: sh.Shape) -> int:
    if any(d is None for d in shape):
        raise SizeDependent()
    return math.prod(shape)  # type: ignore[arg-type]


def recursion_loop(tr: Tracer, fn: ir.Function, args: list[Value], closure: Env, span: Span | None,
                   rshape: sh.Shape, m: int) -> Value:
    depth = tr.options.max_depth
    pshapes = [pshape_of(a) for a in args]
    layout = [*pshapes, *([rshape] * m), *([()] * m), ()]
    width = sum(numel(s) for s in layout)
    b = tr.build
    region_eqns: list = []
    active = b.new_var((), mask=True)
    counted = [()] if tr.check_domain else []  # a step counter, only to raise at max_iter
    params = [b.new_var(s) for s in (*pshapes, *([rshape] * m), *([()] * m), (depth, width), (), *counted)]
    ctx = b.new_ctx(active, Region((active, *params), region_eqns, ()))
    for p in (active, *params):
        p.ctx = ctx
    k = len(pshapes)
    P, R, F = params[:k], params[k:k + m], params[k + m:k + 2 * m]
    stack, sp = params[k + 2 * m], params[k + 2 * m + 1]
    count = params[-1] if counted else None
    replay = Replay(fn, ctx, F, R, rshape)
    saved = tr.replays.get(fn.key)
    tr.replays[fn.key] = replay
    try:
        with b.into(ctx, region_eqns):
            inner = Env(closure)
            for binding, v in zip(fn.params, P):
                inner.vars[binding.key] = v
            value = tr.expr(fn.body, inner)
            if pshape_of(value) != rshape:
                raise ResultShape(pshape_of(value))
            if len(replay.numbers) > m:
                raise MoreSites(len(replay.numbers))
            outputs = step_outputs(tr, replay, P, R, F, (stack, sp, active), value, layout, span)
            if count is not None:
                outputs = (*outputs, limit_checks(tr, replay, outputs[0], count, span))
    finally:
        del tr.replays[fn.key]
        if saved is not None:
            tr.replays[fn.key] = saved
    needed = {a.id for a in outputs if isinstance(a, Var)}
    region = Region((active, *params), live_equations(region_eqns, needed), outputs)
    init: list[Any] = [*args, *[torch.zeros(rshape, dtype=F64)] * m, *[torch.tensor(0.0, dtype=F64)] * m,  # type: ignore[arg-type]
                       torch.zeros((depth, width), dtype=F64), torch.tensor(0.0, dtype=F64),
                       *[torch.tensor(0.0, dtype=F64)] * len(counted)]
    init = [b.atom(s) if not isinstance(s, Var) else s for s in init]
    ranks = tuple(len(s) for s in (*pshapes, *([rshape] * m), *([()] * m), (depth, width), (), *counted))
    return tr.branches.record("%loop", code_of("%loop"), init, rshape, span, region=region,
                              params={"ranks": ranks, "value_rank": len(rshape), "max_iter": tr.options.max_iter,
                                      "stack": (k + 2 * m, k + 2 * m + 1, depth)})


def binary(tr: Tracer, name: str, a: Value, c: Value) -> Value:
    row = TABLE[name]
    return tr.apply(row, [a, c], None, code=row.code)  # type: ignore[arg-type]


def limit_checks(tr: Tracer, replay: Replay, exits: Var, count: Var, span: Span | None) -> Var:
    """``check_domain=True``: raise where an element goes past ``max_depth`` or its last step
    (``max_iter``) does not exit; the next step count."""
    br, name, opts = tr.branches, replay.fn.name, tr.options
    path = br.path_mask(0)
    assert path is not None and replay.susp_deep is not None
    deep = f"'{name}' recurses deeper than max_depth={opts.max_depth} (frames on one element's stack)"
    slow = (f"'{name}' needs more than max_iter={opts.max_iter} steps (each call and each return to a caller "
            "is one)")
    last = br.truth_mask(binary(tr, ">=", count, torch.tensor(float(opts.max_iter - 1), dtype=F64)))
    stuck = mask_and(tr, mask_and(tr, path, br.negate(exits)), last)
    for message, bad in ((deep, replay.susp_deep), (slow, stuck)):
        tr.domain_sites.append((message, LIMIT_SITE, span))
        code = TABLE["%domain"].template(1, [()], {"site": len(tr.domain_sites) - 1, "masked": False})
        br.record("%domain", code, [bad], (), span, params={"effect": True})
    nxt = binary(tr, "+", count, torch.tensor(1.0, dtype=F64))
    return nxt if isinstance(nxt, Var) else tr.build.atom(nxt)  # type: ignore[return-value]


def step_outputs(tr: Tracer, replay: Replay, P: list[Var], R: list[Var], F: list[Var], frames: tuple[Var, Var, Var],
                 value: Value, layout: list[sh.Shape], span: Span | None) -> tuple:
    """(exit mask, exit value, next state) of one step, from what the replayed body did;
    ``frames`` is (stack, stack pointer, the loop's active mask)."""
    br = tr.branches
    stack, sp, active = frames

    def const(x: float) -> torch.Tensor:
        return torch.tensor(x, dtype=F64)

    def prim(name: str, a: Value, c: Value) -> Value:
        row = TABLE[name]
        return tr.apply(row, [a, c], None, code=row.code)  # type: ignore[arg-type]

    def mask(v: Value) -> Var:
        return br.truth_mask(v)

    susp = replay.suspended
    if susp is None:
        raise NCTypeError(f"'{replay.fn.name}' never calls itself here", span)
    ret = br.negate(susp)
    at_root = mask(prim("=", sp, const(0.0)))
    popm = mask_and(tr, ret, br.negate(at_root))
    overflow = mask_and(tr, susp, mask(prim(">=", sp, const(float(tr.options.max_depth)))))
    replay.susp_deep = overflow
    exits = mask_or(tr, mask_and(tr, ret, at_root), overflow)
    out = br.select(overflow, const(math.nan), value, span)
    # the frame of this activation, pushed where it suspends: parameters, results, filled flags, site
    site: Value = const(0.0)
    for here, _, j in replay.calls:
        site = br.select(here, const(float(j)), site, span)
    frame = [*P, *R, *F, site]
    for v, s in zip(frame, layout):
        if pshape_of(v) != s:
            raise ShapeError(f"'{replay.fn.name}' is called with {sh.show(pshape_of(v))} where it was called with "
                             f"{sh.show(s)}", span)
    ranks = tuple(len(s) for s in layout)
    row = br.record("%pack", code_of("%pack"), frame, (sum(numel(s) for s in layout),), None, params={"ranks": ranks})
    top = br.record("%peek", code_of("%peek"), (stack, sp, active), row.pshape, None)
    fields, start = [], 0
    for s in layout:
        fields.append(br.record("%field", code_of("%field"), (top,), s, None,
                                params={"start": start, "shape": tuple(s)}))
        start += numel(s)
    k, m = len(P), len(R)
    top_site = fields[-1]
    nxt: list[Value] = []
    for i, p in enumerate(P):
        called: Value = p
        for here, a, _ in replay.calls:
            if pshape_of(a[i]) != p.pshape:
                raise ShapeError(f"'{replay.fn.name}' recurses with {sh.show(pshape_of(a[i]))} for parameter "
                                 f"'{replay.fn.params[i].name}', which starts as {sh.show(p.pshape)}", span)
            called = br.select(here, a[i], called, span)
        nxt.append(br.select(susp, called, br.select(popm, fields[i], p, span), span))
    for j in range(m):
        waited = mask(prim("=", top_site, const(float(j))))
        r_pop = br.select(waited, value, fields[k + j], span)
        nxt.append(br.select(susp, R[j], br.select(popm, r_pop, R[j], span), span))
    for j in range(m):
        waited = mask(prim("=", top_site, const(float(j))))
        f_pop = br.select(waited, const(1.0), fields[k + m + j], span)
        nxt.append(br.select(susp, const(0.0), br.select(popm, f_pop, F[j], span), span))
    nxt.append(br.record("%push", code_of("%push"), (stack, sp, row, susp), stack.pshape, None))
    sp_next = br.select(susp, prim("+", sp, const(1.0)), br.select(popm, prim("-", sp, const(1.0)), sp, span), span)
    nxt.append(sp_next)
    atoms = tuple(tr.build.atom(v) if not isinstance(v, Var) else v for v in (out, *nxt))
    return (exits, *atoms)
