"""The tracer's core: one object composed of a builder, a branch state and a call stack.

`Tracer` holds what one trace of one program for one signature needs and applies primitives
(check shapes, fold on constants or record). It does not know how to trace each kind of IR
node: ``expr`` looks the node's type up in the rule table it was given (built once, in
`nc.trace.RULES`), so the modules that trace calls, loops, integration and learned components
import this one and never the other way round.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import torch
from torch import nn

from . import ir
from . import shapes as sh
from .branches import BranchState
from .builder import Budget, Builder, Limits
from .callstack import CallStack
from .equations import compact_constants
from .errors import LimitError, NCTypeError, ShapeError, Span
from .options import CompileOptions
from .primitives import TABLE, Primitive, evaluator, format_code
from .program import Promo, Recording, Var, join_promo, live_equations
from .values import F64, Env, NeedStatic, Promote, SizeDependent, Value, is_concrete, pshape_of

Rule = Callable[["Tracer", Any, Env], Value]
"""How one kind of IR node is traced: ``rule(tracer, node, env) -> value``."""


@attrs.frozen(kw_only=True)
class Target:
    """What a trace computes for: abstract (compile-time pass) or one call's dtype and device."""

    abstract: bool
    dtype: torch.dtype
    device: torch.device


class Tracer:
    """Records one program for one signature (input per-example shapes, dtype, device)."""

    def __init__(self, program: ir.SourceProgram, options: CompileOptions, target: Target, *,
                 rules: Mapping[type, Rule], limits: Limits, modules: Mapping[str, nn.Module] | None = None) -> None:
        self.ir = program
        self.functions = {f.key: f for f in program.functions}
        self.constants_ir = {d.name: d for d in program.constants}
        self.options, self.rules, self.limits = options, rules, limits
        self.abstract, self.dtype, self.device = target.abstract, target.dtype, target.device
        self.check_domain = options.check_domain and not target.abstract  # the compile-time pass checks nothing
        self.budget = Budget(limits)
        self.build = Builder(self.budget)
        self.branches = BranchState(self.build, abstract=target.abstract)
        self.calls = CallStack(limits)
        self.globals: dict[str, Value] = {}  # top-level constants, once evaluated
        self.evaluating: set[str] = set()  # top-level constants being evaluated (to catch cycles)
        self.inputs: dict[str, Value] = {}
        self.modules: dict[str, nn.Module] = dict(modules or {})
        self.modules_used: list[str] = []
        self.domain_sites: list[tuple[str, int, Span | None]] = []
        # tail groups being traced as masked loops: their loop variables and which start as fills
        self.loop_fills: dict[str, tuple[tuple[ir.Binding, ...], frozenset[int]]] = {}
        self.replays: dict[str, Any] = {}  # functions running on a stack: key -> nc.recursion.Replay

    # ---- entry --------------------------------------------------------------------------------
    def new_input(self, pshape: sh.Shape, promo: Promo | None = None) -> Var:
        """A traced input of per-example shape ``pshape`` (before `run`)."""
        return self.build.new_var(pshape, promo=promo)

    def run(self, inputs: dict[str, Var], statics: Mapping[str, torch.Tensor] | None = None) -> Recording:
        """Trace the whole program on ``inputs`` into a `Recording`; ``statics`` are the values of
        static inputs (constants in this trace, still parameters of the recorded function)."""
        self.inputs = {**inputs, **(statics or {})}
        for name in self.ir.used_constants:  # in source order: a long chain of definitions needs no deep recursion
            self.expr(ir.Global(name=name, span=self.constants_ir[name].span), Env())
        output = self.build.atom(self.expr(self.ir.result, Env()))
        needed = {output.id} if isinstance(output, Var) else set()
        eqns, output, constants = compact_constants(live_equations(self.build.top_eqns, needed), output,
                                                    self.build.constants)
        return Recording(inputs=tuple(inputs.values()), input_names=tuple(inputs), eqns=eqns,
                       output=output, constants=constants, dtype=self.dtype, device=self.device,
                       domain_sites=self.domain_sites, externals=[self.modules[n] for n in self.modules_used])

    def expr(self, node: ir.Expr, env: Env) -> Value:
        """Trace one IR node through its rule."""
        return self.rules[type(node)](self, node, env)

    # ---- primitives ---------------------------------------------------------------------------
    def apply(self, prim: Primitive, args: list[Value], span: Span | None, *, code: str | None = None,
              params: dict[str, Any] | None = None, ranks: Sequence[int] | None = None) -> Value:
        """Apply one row to evaluated arguments: check shapes, fold or record."""
        params = params or {}
        self.budget.spend(1, span)
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
            args = [self.branches.align(a, rank) if isinstance(a, Var) and a.rank < rank else a for a in args]
        promo = None
        if prim.promotes:
            promo = join_promo(*(a.promo for a in args if isinstance(a, Var)))
        if self.check_domain:
            self.domain_check(prim, args, span)
        out = self.branches.record(prim.name, template, args, out_shape, span, params=params,
                                   py_scalars=prim.py_scalars, promo=promo)
        if prim.mask and template == prim.code:
            self.branches.note_comparison(out, prim.mask, prim.name, span)
        return out

    def fold(self, prim: Primitive, template: str, args: list[Value], params: dict[str, Any], out_shape: sh.Shape,
             span: Span | None) -> torch.Tensor:
        """Compute a primitive on concrete arguments while tracing."""
        limit = self.limits.constant_elements
        if prim.family == "constructor" and math.prod(s or 0 for s in out_shape) > limit:
            sizes = " ".join(str(v) for v in params.values())
            raise LimitError(f"({prim.name} {sizes}) would have more than {limit} elements", span)
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
        """Raise `Promote` when an undeclared input needs more axes; reject non-scalars where scalars go."""
        for i, a in enumerate(args):
            need = ranks[i] if ranks is not None else prim.rank_needed(i)
            if len(pshape_of(a)) < need and isinstance(a, Var) and a.promo is not None:
                raise Promote(a.promo.names(), need)
            if prim.scalar_args and isinstance(a, Var) and a.rank > 0:
                raise ShapeError(f"{prim.name} stacks scalars, got {sh.show(a.pshape)}", span,
                                 hint="use concat to join vectors")

    def domain_check(self, prim: Primitive, args: list[Value], span: Span | None) -> None:
        """Record a check that the arguments are in the primitive's domain where this code runs."""
        if len(args) not in prim.domains:
            return
        mask = self.branches.path_mask(max(len(pshape_of(a)) for a in args))
        self.domain_sites.append((prim.name, len(args), span))
        site = len(self.domain_sites) - 1
        head = [mask] if mask is not None else []
        code = TABLE["%domain"].template(len(head) + len(args), [()] * (len(head) + len(args)),
                                         {"site": site, "masked": mask is not None})
        self.branches.record("%domain", code, [*head, *args], (), span, params={"effect": True})

    # ---- compile-time values ------------------------------------------------------------------
    def constant_int(self, v: Value, what: str, span: Span | None) -> int:
        """A compile-time non-negative integer (ref indices, sizes, step counts)."""
        if isinstance(v, Var):
            if v.sizedep and self.abstract:
                raise SizeDependent()
            names = self.input_deps(v)
            if names:
                raise NeedStatic(names)
            raise NCTypeError(f"{what} must be a constant: tensor shapes cannot depend on data", span,
                              hint="use a constant, or an input passed as a Python int at call time "
                                   "(a static input)")
        if v.dim() != 0:
            raise NCTypeError(f"{what} must be a single number, got {sh.show(tuple(v.shape))}", span)
        x = float(v)
        if not x.is_integer() or x < 0:
            raise NCTypeError(f"{what} must be a non-negative integer, got {x:g}", span)
        if x > self.limits.static_int:
            raise LimitError(f"{what} is {x:g}, more than nc.trace.MAX_STATIC_INT = 2**53", span)
        return int(x)

    def input_deps(self, v: Var) -> frozenset[str]:
        """The inputs ``v`` is computed from, when it is computed from inputs alone (else empty):
        those can be static inputs."""
        by_out = {e.out.id: e for e in (*self.build.top_eqns, *self.build.eqns)}
        names = {x.id: n for n, x in self.inputs.items() if isinstance(x, Var)}
        found: set[str] = set()
        stack, seen = [v.id], set()
        while stack:
            i = stack.pop()
            if i in seen:
                continue
            seen.add(i)
            if i in names:
                found.add(names[i])
                continue
            eqn = by_out.get(i)
            if eqn is None or eqn.region is not None or eqn.prim.startswith("learned:"):
                return frozenset()  # a loop variable or a learned component: not inputs alone
            stack.extend(a.id for a in eqn.args if isinstance(a, Var))
        return frozenset(found)

    def module_index(self, name: str) -> int:
        """The index of a learned component in the program's table (``X<index>`` in generated code)."""
        if name not in self.modules_used:
            self.modules_used.append(name)
        return self.modules_used.index(name)
