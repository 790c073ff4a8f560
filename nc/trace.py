"""The tracer: interprets the IR once, with symbolic values, into a `Recording`.

Values are either *concrete* (float64 tensors on the CPU, known while tracing: literals,
loop counters, ``(eye 3)``) or *traced* (`Var`, known only by per-example shape). Operations
on concrete values fold; an ``if`` on a concrete test traces one branch; loops and recursion
on concrete values unroll. Branches on traced tests are traced in a `Ctx` whose mask guards
every outside value used inside (``where(mask, v, v.detach())``), so nothing from the branch
not taken reaches a value or a gradient. Loops whose exit depends on traced values become one
masked-loop equation (see `nc.loops`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import attrs
import torch

from . import ir
from . import shapes as sh
from .branches import Branches, Ctx, SizeDependent, Value, is_concrete, pshape_of
from .errors import LimitError, NCError, NCTypeError, ShapeError, Span
from .primitives import Primitive, evaluator
from .program import Atom, ConstRef, Eqn, Lit, Promo, Recording, Region, Var, join_promo, live_equations

MAX_EQUATIONS = 2_000_000
"""Most equations one trace may record (unrolled loops count every step)."""

MAX_UNROLL = 100_000
"""Most iterations a loop, recursion or integration with constant control is unrolled for."""

MAX_CONSTANT_ELEMENTS = 10_000_000
"""Largest constant that (eye n), (zeros n) or (ones n) may build."""

MAX_CALL_DEPTH = 1000
"""Deepest nesting of function calls being traced (a chain of functions each calling the next)."""

MAX_RECURSION = 200
"""Deepest static (constant-argument) recursion of a function that is not a tail loop."""

MAX_WORK = 1_000_000
"""Most units of work one trace may do: each primitive applied (folded on constants or
recorded), each function call inlined and each literal vector element counts one. Bounds the
compile time of programs whose tracing blows up (calls that fan out, deep static recursion)."""

MAX_STATIC_INT = 2**53
"""Largest compile-time integer argument (ref indices, roll shifts, sizes, step counts)."""

MEMO_ELEMENTS = 64
"""Calls whose constant arguments have at most this many elements in all are memoised."""

F64 = torch.float64


class Promote(Exception):
    """Internal: an input used where a higher per-example rank is needed; retrace with more."""

    def __init__(self, names: frozenset[str], rank: int) -> None:
        super().__init__(names, rank)
        self.names, self.rank = names, rank


class Env:
    """Bindings of IR keys to values, chained lexically."""

    __slots__ = ("vars", "parent")

    def __init__(self, parent: Env | None = None) -> None:
        self.vars: dict[Any, Any] = {}
        self.parent = parent

    def get(self, key: Any) -> Any:
        env: Env | None = self
        while env is not None:
            if key in env.vars:
                return env.vars[key]
            env = env.parent
        raise KeyError(key)


@attrs.define
class TailResult:
    """What a loop body does for each element: exit with a value, or recur with a new state."""

    exits: Value | bool  # True/False when the same for every element, else a bool mask Var
    value: Value | None
    state: list[Value] | None


class Tracer(Branches):
    """Records one program for one signature (input per-example shapes, dtype, device)."""

    def __init__(self, program: ir.SourceProgram, *, abstract: bool, max_iter: int, dtype: torch.dtype,
                 device: torch.device, check_domain: bool = False, externals: dict[str, Any] | None = None,
                 external_shapes: dict[str, Any] | None = None) -> None:
        self.ir = program
        self.functions = {f.key: f for f in program.functions}
        self.constants_ir = {d.name: d for d in program.constants}
        self.abstract = abstract  # compile-time pass: sizes may be unknown, nothing is lowered
        self.max_iter = max_iter
        self.dtype, self.device = dtype, device
        self.ids = itertools.count()
        self.ctx_ids = itertools.count(1)
        self.root = Ctx(None, None, None)
        self.ctx = self.root
        self.eqns: list[Eqn] = []
        self.top_eqns = self.eqns
        self.count = 0
        self.constants: list[torch.Tensor] = []
        self.globals: dict[str, Value] = {}
        self.evaluating: set[str] = set()
        self.guards: dict[tuple[int, int], Var] = {}
        self.cse: dict[tuple[Any, ...], Var] = {}
        self.comparisons: dict[int, tuple[str, tuple[Atom, ...], str, Span | None]] = {}  # 0/1 result -> mask
        self.aligned_masks: dict[tuple[int, int], Var] = {}
        self.active: list[tuple[str, Ctx]] = []  # functions being inlined, with their entry context
        self.fn_envs: dict[str, Env] = {}
        self.inputs: dict[str, Value] = {}
        self.check_domain = check_domain
        self.externals: dict[str, Any] = dict(externals or {})
        self.external_shapes: dict[str, Any] = dict(external_shapes or {})
        self.externals_used: list[str] = []
        self.domain_sites: list[tuple[str, int, Span | None]] = []
        self.path_masks: dict[tuple[int, int], Var] = {}
        self.work = 0
        self.top_env = Env()  # the closure of every top-level function (one object: memo keys use its id)
        # Finished calls: (function, closure, context, equation list, arguments) -> result. A
        # function is pure, so the same call in the same place gives the same value; this keeps
        # fan-out such as (+ (f a) (f a)) linear instead of doubling per level.
        self.memo: dict[tuple[Any, ...], tuple[Value, Any]] = {}

    def spend(self, units: int, span: Span | None) -> None:
        """Count ``units`` of tracing work against `MAX_WORK`."""
        self.work += units
        if self.work > MAX_WORK:
            raise LimitError(f"compiling this program takes more than {MAX_WORK:,} steps of work "
                             "(nc.trace.MAX_WORK: operations traced and function calls inlined)", span,
                             hint="function calls are inlined and constant loops unrolled; calls that each "
                                  "call others several times with different arguments grow exponentially")

    # ---- entry --------------------------------------------------------------------------------
    def run(self, inputs: dict[str, Var]) -> Recording:
        self.inputs = dict(inputs)
        for name in self.ir.used_constants:  # in source order: a long chain of definitions needs no deep recursion
            self.expr_Global(ir.Global(name=name, span=self.constants_ir[name].span), Env())
        out = self.expr(self.ir.result, Env())
        output = self.atom(out, tensor=True)
        needed = {output.id} if isinstance(output, Var) else set()
        eqns = live_equations(self.top_eqns, needed)
        return Recording(inputs=tuple(inputs.values()), input_names=tuple(inputs), eqns=eqns,
                       output=output, constants=self.constants, dtype=self.dtype, device=self.device,
                       domain_sites=self.domain_sites,
                       externals=[self.externals[n] for n in self.externals_used])

    def new_var(self, pshape: sh.Shape, *, promo: Promo | None = None, sizedep: bool = False,
                mask: bool = False) -> Var:
        return Var(next(self.ids), tuple(pshape), self.ctx, promo, sizedep, mask)

    # ---- recording ----------------------------------------------------------------------------
    def record(self, prim: str, code: str, args: Sequence[Value | Atom], pshape: sh.Shape, span: Span | None,
               *, params: dict[str, Any] | None = None, py_scalars: bool = False, mask: bool = False,
               promo: Promo | None = None, guard: bool = True, region: Region | None = None) -> Var:
        self.count += 1
        if self.count > MAX_EQUATIONS:
            raise LimitError(f"the program traces to more than {MAX_EQUATIONS} operations", span,
                             hint="unrolled loops, recursion and integration steps each count")
        atoms = tuple(self.atom(a, py_scalar=py_scalars) if not isinstance(a, Var) else
                      (self.guard(a) if guard else a) for a in args)
        key = None
        if region is None and not (params and params.get("effect")):
            # Common subexpressions within one context share one equation. Only identical code
            # on identical arguments in the same branch is merged, so no bit and no branch changes.
            key = (self.ctx.ident, code, tuple(a.id if isinstance(a, Var) else a for a in atoms),
                   tuple(sorted((params or {}).items())))
            hit = self.cse.get(key)
            if hit is not None:
                return hit
        sizedep = any(isinstance(a, Var) and a.sizedep for a in args)
        out = self.new_var(pshape, promo=promo, sizedep=sizedep, mask=mask)
        self.eqns.append(Eqn(prim, code, atoms, out, params or {}, span, region))
        if key is not None:
            self.cse[key] = out
        return out

    def atom(self, v: Value | Atom, *, py_scalar: bool = False, tensor: bool = False) -> Atom:
        """A recorded argument: Vars as they are, concrete values as literals or constants."""
        if isinstance(v, (Var, Lit, ConstRef)):
            return v
        if py_scalar and v.dim() == 0 and v.dtype != torch.bool:
            return Lit(float(v))
        self.constants.append(v)
        return ConstRef(len(self.constants) - 1, tuple(v.shape), v.dtype == torch.bool)

    def expr(self, node: ir.Expr, env: Env) -> Value:
        method = getattr(self, "expr_" + type(node).__name__)
        return method(node, env)  # type: ignore[no-any-return]

    def expr_Const(self, node: ir.Const, env: Env) -> Value:
        return torch.tensor(node.value, dtype=F64)

    def expr_Local(self, node: ir.Local, env: Env) -> Value:
        return env.get(node.key)  # type: ignore[no-any-return]

    def expr_Input(self, node: ir.Input, env: Env) -> Value:
        return self.inputs[node.name]

    def expr_Global(self, node: ir.Global, env: Env) -> Value:
        name = node.name
        if name in self.globals:
            return self.globals[name]
        if name in self.evaluating:
            raise NCTypeError(f"the definition of '{name}' refers to itself", node.span,
                              hint="a constant cannot depend on its own value")
        self.evaluating.add(name)
        saved = (self.ctx, self.eqns)
        self.ctx, self.eqns = self.root, self.top_eqns  # globals are values of the whole program
        try:
            value = self.expr(self.constants_ir[name].value, Env())
        finally:
            self.ctx, self.eqns = saved
            self.evaluating.discard(name)
        self.globals[name] = value
        return value

    def expr_Let(self, node: ir.Let, env: Env) -> Value:
        inner = Env(env)
        source = inner if node.sequential else env
        for b in node.bindings:
            inner.vars[b.key] = self.expr(b.value, source)
        return self.expr(node.body, inner)

    def expr_Letrec(self, node: ir.Letrec, env: Env) -> Value:
        for fn in node.fns:
            self.fn_envs[fn.key] = env
        return self.expr(node.body, env)

    def expr_PrimCall(self, node: ir.PrimCall, env: Env) -> Value:
        from .calls import prim_call

        return prim_call(self, node, env)

    def apply(self, prim: Primitive, args: list[Value], span: Span | None, *, code: str | None = None,
              params: dict[str, Any] | None = None, ranks: Sequence[int] | None = None) -> Value:
        """Apply one row to evaluated arguments: check shapes, fold or record."""
        params = params or {}
        self.spend(1, span)
        self.check_ranks(prim, args, span, ranks)
        shapes = [pshape_of(a) for a in args]
        try:
            out_shape = prim.shape(*shapes, **params)
        except sh.ShapeMismatch as e:
            text = str(e) if str(e).startswith(prim.name) else f"{prim.name}: {e}"
            raise ShapeError(text, span) from None
        template = code if code is not None else prim.template(len(args), shapes, params)
        if all(is_concrete(a) for a in args):
            return self.fold(prim, template, args, params, out_shape, span)
        if prim.align:
            rank = sh.rank_of(shapes)
            args = [self.align(a, rank) if isinstance(a, Var) and a.rank < rank else a for a in args]
        promo = None
        if prim.promotes:
            promo = join_promo(*(a.promo for a in args if isinstance(a, Var)))
        if self.check_domain:
            self.domain_check(prim, args, span)
        out = self.record(prim.name, template, args, out_shape, span, params=params, py_scalars=prim.py_scalars,
                          promo=promo)
        if prim.mask and template == prim.code and out.id not in self.comparisons:
            self.comparisons[out.id] = (prim.mask, self.eqns[-1].args, prim.name, span)
        return out

    def fold(self, prim: Primitive, template: str, args: list[Value], params: dict[str, Any], out_shape: sh.Shape,
             span: Span | None) -> torch.Tensor:
        from .primitives import format_code

        if prim.family == "constructor" and math.prod(s or 0 for s in out_shape) > MAX_CONSTANT_ELEMENTS:
            sizes = " ".join(str(v) for v in params.values())
            raise LimitError(f"({prim.name} {sizes}) would have more than {MAX_CONSTANT_ELEMENTS} elements", span)

        # A template of all arguments ({*}) keeps its {*}: one variadic folder serves every length.
        code = format_code(template.replace("{*}", "{_all_}"), [f"{{{k}}}" for k in range(len(args))],
                           {**params, "dt": "{dt}", "_all_": "{*}"})
        try:
            with torch.no_grad():
                out = evaluator(code, len(args))(F64, *args)
        except Exception as e:  # noqa: BLE001 - any failure of a folded operation is the program's error
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise ShapeError(f"{prim.name}: {first}", span) from None
        return out.to(F64)

    def check_ranks(self, prim: Primitive, args: list[Value], span: Span | None,
                    ranks: Sequence[int] | None = None) -> None:
        for i, a in enumerate(args):
            need = ranks[i] if ranks is not None else prim.rank_needed(i)
            if len(pshape_of(a)) < need and isinstance(a, Var) and a.promo is not None:
                raise Promote(a.promo.names(), need)
            if prim.scalar_args and isinstance(a, Var) and a.rank > 0:
                raise ShapeError(f"{prim.name} stacks scalars, got {sh.show(a.pshape)}", span,
                                 hint="use concat to join vectors")

    # ---- user functions -----------------------------------------------------------------------
    def expr_External(self, node: ir.External, env: Env) -> Value:
        from .learned import trace_external

        return trace_external(self, node, env)

    def external_index(self, name: str) -> int:
        """The index of a learned component in the program's table (``X<index>`` in generated code)."""
        if name not in self.externals_used:
            self.externals_used.append(name)
        return self.externals_used.index(name)

    def expr_Call(self, node: ir.Call, env: Env) -> Value:
        fn = self.functions[node.fn]
        args = [self.expr(a, env) for a in node.args]
        return self.call_function(fn, args, node.span)

    def call_function(self, fn: ir.Function, args: list[Value], span: Span | None) -> Value:
        from .loops import trace_loop

        if fn.tail_loop:
            return trace_loop(self, fn.key, list(fn.params), args, fn.body, self.fn_env(fn), span)
        depth = 0
        for key, ctx in self.active:
            if key == fn.key:
                depth += 1
                if ctx is not self.ctx:
                    self.recursion_on_inputs(fn, span)
        if len(self.active) >= MAX_CALL_DEPTH:
            raise LimitError(f"calls nest more than {MAX_CALL_DEPTH} deep here (each function call is traced "
                             "into its caller)", span, hint="shorten the chain of calls, or use a loop")
        if depth >= MAX_RECURSION:
            raise LimitError(f"'{fn.name}' recurses more than {MAX_RECURSION} deep", span,
                             hint="write the recursion as a tail call or a loop")
        self.spend(1, span)
        closure = self.fn_env(fn)
        memo = self.memo_key(fn, closure, args)
        if memo is not None:
            hit = self.memo.get(memo)
            if hit is not None:
                return hit[0]
        inner = Env(closure)
        for p, a in zip(fn.params, args):
            inner.vars[p.key] = a
        self.active.append((fn.key, self.ctx))
        try:
            out = self.expr(fn.body, inner)
        finally:
            self.active.pop()
        if memo is not None:
            self.memo[memo] = (out, closure)  # the closure is kept alive so that its id stays unique
        return out

    def memo_key(self, fn: ir.Function, closure: Env, args: list[Value]) -> tuple[Any, ...] | None:
        """The memo key of a call: traced arguments by identity, small constants by value (bits,
        so -0.0 and 0.0 differ), in the same context and equation list; None if not memoisable."""
        parts: list[Any] = [fn.key, id(closure), self.ctx.ident, id(self.eqns)]
        budget = MEMO_ELEMENTS
        for a in args:
            if isinstance(a, Var):
                parts.append(("v", a.id))
                continue
            budget -= a.numel()
            if budget < 0:
                return None
            parts.append(("c", a.dtype, tuple(a.shape), a.detach().cpu().numpy().tobytes()))
        return tuple(parts)

    def recursion_on_inputs(self, fn: ir.Function, span: Span | None) -> None:
        if self.abstract and any(isinstance(m, Var) and m.sizedep for m in self.ctx_masks()):
            raise SizeDependent()
        raise NCTypeError(
            f"'{fn.name}' recurses on a value that depends on the inputs, and the call is not a tail call",
            span, hint="rewrite it with an accumulator so that the recursive call is the last thing the "
                       "function does (then it runs as a masked loop), or use (loop ...)")

    def ctx_masks(self) -> list[Var | None]:
        out, ctx = [], self.ctx
        while ctx is not None:
            out.append(ctx.mask)
            ctx = ctx.parent  # type: ignore[assignment]
        return out

    def fn_env(self, fn: ir.Function) -> Env:
        return self.fn_envs.get(fn.key) or self.top_env

    # ---- loops and integration live in their own modules -------------------------------------
    def expr_Loop(self, node: ir.Loop, env: Env) -> Value:
        from .loops import trace_loop

        inits = [self.expr(b.value, env) for b in node.bindings]
        return trace_loop(self, node.key, list(node.bindings), inits, node.body, env, node.span)

    def expr_Recur(self, node: ir.Recur, env: Env) -> Value:
        raise NCError("recur outside a loop body", node.span)  # the parser makes this unreachable

    def expr_Integrate(self, node: ir.Integrate, env: Env) -> Value:
        from .integrate import trace_integrate

        return trace_integrate(self, node, env)

    def constant_int(self, v: Value, what: str, span: Span | None) -> int:
        """A compile-time non-negative integer (ref indices, sizes, step counts)."""
        if isinstance(v, Var):
            if v.sizedep and self.abstract:
                raise SizeDependent()
            raise NCTypeError(f"{what} must be a constant, but it depends on the inputs", span)
        if v.dim() != 0:
            raise NCTypeError(f"{what} must be a single number, got {sh.show(tuple(v.shape))}", span)
        x = float(v)
        if not x.is_integer() or x < 0:
            raise NCTypeError(f"{what} must be a non-negative integer, got {x:g}", span)
        if x > MAX_STATIC_INT:
            raise LimitError(f"{what} is {x:g}, more than nc.trace.MAX_STATIC_INT = 2**53", span)
        return int(x)
