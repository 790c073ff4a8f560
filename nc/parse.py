"""Forms to IR: the program, names, calls and arity, and the inputs of a program.

Names are resolved here, so the tracer never looks a name up by spelling. The special forms
are in `nc.forms` (one method each), scopes in `nc.scope`, tail-call loops in `nc.tailcalls`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import attrs

from . import ir
from .errors import ArityError, NCError, NCTypeError, Source, Span, SyntaxFormError, UnboundNameError
from .forms import RESERVED, SPECIAL_FORMS, SpecialForms, is_head
from .primitives import PUBLIC_NAMES, lookup
from .reader import Form, Lst, Num, Sym, read
from .scope import Bound, Scope
from .suggest import FOREIGN_NAMES, hint_for
from .tailcalls import make_tail_loop


@attrs.define
class Owner:
    """A top-level item and what it refers to, for computing the inputs of a program."""

    globals_used: set[str] = attrs.field(factory=set)
    free: list[tuple[int, str, Span]] = attrs.field(factory=list)


def parse(source_text: str, *, name: str = "<program>", promote: Sequence[str] = (),
          externals: Sequence[str] = ()) -> ir.SourceProgram:
    """Read and parse a program.

    Top-level constants named in ``promote`` become inputs; names in ``externals`` are learned
    components (PyTorch modules) that the program may call like functions.
    """
    source = Source(source_text, name)
    return Parser(source, frozenset(promote), frozenset(externals)).program(read(source))


class Parser(SpecialForms):
    def __init__(self, source: Source, promote: frozenset[str], externals: frozenset[str] = frozenset()) -> None:
        self.source = source
        self.promote = promote
        self.externals = externals
        self.keys = itertools.count()
        self.functions: dict[str, ir.Function] = {}
        self.constants: dict[str, ir.Define] = {}
        self.globals: dict[str, tuple[str, Form]] = {}  # name -> ("const"|"fn", form)
        self.fn_arity: dict[str, int] = {}
        self.owners: dict[str, Owner] = {}
        self.owner = Owner()
        self.reachable: set[str] = set()  # top-level items the result uses, directly or not
        self.loops: list[tuple[str, int]] = []  # enclosing loops: (key, number of variables)

    # ---- program --------------------------------------------------------------------------
    def program(self, forms: list[Form]) -> ir.SourceProgram:
        if not forms:
            raise SyntaxFormError("the program is empty: it needs a result expression",
                                  self.span_at(0), hint="write an expression such as (* k x)")
        *defs, result = forms
        for form in defs:
            self.declare(form)
        if is_define(result):
            raise SyntaxFormError("the program ends with a define; it needs a result expression after it",
                                  result.span)
        for form in defs:
            self.define(form)
        self.owners["<result>"] = self.owner = Owner()
        body, lambda_params = self.result(result)
        inputs, spans = self.inputs(lambda_params)
        used = tuple(n for n in self.constants if n in self.reachable and n not in self.promote)
        return ir.SourceProgram(constants=tuple(self.constants.values()), functions=tuple(self.functions.values()),
                          result=body, inputs=inputs, input_spans=spans, used_constants=used,
                          source_text=self.source.text)

    def span_at(self, offset: int) -> Span:
        return Span(self.source, offset, offset + 1)

    def declare(self, form: Form) -> None:
        """Record a top-level define's name, so that definitions may refer forward."""
        if not is_define(form):
            head = form.items[0] if isinstance(form, Lst) and form.items else None
            foreign = FOREIGN_NAMES.get(head.name) if isinstance(head, Sym) else None
            raise SyntaxFormError(
                "only the last top-level expression is the result; the ones before it must be defines",
                form.span, hint=foreign or "a program is zero or more (define ...) followed by one expression")
        assert isinstance(form, Lst)
        name, kind, arity = self.define_head(form)
        if name.name in self.globals:
            raise SyntaxFormError(f"'{name.name}' is already defined at the top level", name.span,
                                  hint="a top-level name is defined once; choose another name")
        self.globals[name.name] = (kind, form)
        if kind == "fn":
            self.fn_arity[name.name] = arity

    def define_head(self, form: Lst) -> tuple[Sym, str, int]:
        if len(form.items) != 3:
            raise SyntaxFormError("define takes a name and one expression: (define name expr) or "
                                  "(define (f args ...) body)", form.span)
        target = form.items[1]
        if isinstance(target, Sym):
            self.check_bindable(target)
            value = form.items[2]
            if is_head(value, "lambda"):
                assert isinstance(value, Lst)
                return target, "fn", len(self.param_syms(value))
            return target, "const", 0
        if isinstance(target, Lst) and target.items and all(isinstance(p, Sym) for p in target.items):
            head = target.items[0]
            assert isinstance(head, Sym)
            self.check_bindable(head)
            return head, "fn", len(target.items) - 1
        raise SyntaxFormError("define needs a name or (name params ...)", target.span)

    def define(self, form: Form) -> None:
        assert isinstance(form, Lst)
        name, kind, _ = self.define_head(form)
        self.owners[name.name] = self.owner = Owner()
        if kind == "const":
            value = self.expr(form.items[2], Scope(), None)
            self.constants[name.name] = ir.Define(name=name.name, value=value, span=name.span, form_span=form.span)
            return
        if isinstance(form.items[1], Lst):
            params = [p for p in form.items[1].items[1:] if isinstance(p, Sym)]
            body_form = form.items[2]
        else:
            lam = form.items[2]
            assert isinstance(lam, Lst)
            params, body_form = self.lambda_parts(lam)
        self.function(name.name, name, params, body_form, Scope())

    def result(self, form: Form) -> tuple[ir.Expr, tuple[str, ...]]:
        if is_head(form, "lambda"):
            assert isinstance(form, Lst)
            params, body = self.lambda_parts(form)
            scope = Scope()
            self.bind_params(scope, params)
            # A lambda result's parameters are inputs: bound (so they shadow globals, pi and
            # primitives) but read as Input nodes.
            for p in params:
                scope.names[p.name] = Bound("input", p.name)
            return self.expr(body, scope, None), tuple(p.name for p in params)
        return self.expr(form, Scope(), None), ()

    def inputs(self, first: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[Span | None, ...]]:
        """Inputs in order: lambda parameters, then free names by first free occurrence."""
        seen_items: set[str] = set()
        todo = ["<result>"]
        found: list[tuple[int, str, Span]] = []
        while todo:
            item = todo.pop()
            if item in seen_items:
                continue
            seen_items.add(item)
            self.reachable.add(item)
            owner = self.owners[item]
            found.extend(owner.free)
            todo.extend(owner.globals_used)
        names: list[str] = list(first)
        spans: list[Span | None] = [None] * len(first)
        for _, name, span in sorted(found, key=lambda t: t[0]):
            if name not in names:
                names.append(name)
                spans.append(span)
            elif spans[names.index(name)] is None:
                spans[names.index(name)] = span
        return tuple(names), tuple(spans)

    # ---- functions ------------------------------------------------------------------------
    def lambda_parts(self, form: Lst) -> tuple[list[Sym], Form]:
        if len(form.items) != 3:
            raise SyntaxFormError("lambda takes a parameter list and one body expression: "
                                  "(lambda (x y) body)", form.span)
        return self.param_syms(form), form.items[2]

    def param_syms(self, form: Lst) -> list[Sym]:
        params = form.items[1] if len(form.items) > 1 else None
        if not isinstance(params, Lst) or params.bracket or not all(isinstance(p, Sym) for p in params.items):
            raise SyntaxFormError("lambda needs a parameter list of names, as in (lambda (x y) body)",
                                  (params or form).span)
        return list(params.items)  # type: ignore[arg-type]

    def bind_params(self, scope: Scope, params: list[Sym]) -> list[ir.Binding]:
        out = []
        for p in params:
            self.check_bindable(p)
            if p.name in scope.names:
                raise SyntaxFormError(f"parameter '{p.name}' appears twice", p.span)
            key = next(self.keys)
            scope.names[p.name] = Bound("local", key)
            out.append(ir.Binding(name=p.name, key=key, value=ir.Const(value=0.0), span=p.span))
        return out

    def function(self, key: str, name: Sym, params: list[Sym], body_form: Form, outer: Scope) -> ir.Function:
        scope = Scope(outer)
        bindings = self.bind_params(scope, params)
        saved_loops, self.loops = self.loops, []
        body = self.expr(body_form, scope, None)
        self.loops = saved_loops
        fn = ir.Function(key=key, name=name.name, params=tuple(bindings), body=body, span=name.span)
        fn = make_tail_loop(fn)  # self tail calls only: it runs as a loop
        self.functions[key] = fn
        return fn

    # ---- expressions ----------------------------------------------------------------------
    def expr(self, form: Form, scope: Scope, tail: str | None) -> ir.Expr:
        """Parse an expression; ``tail`` is the key of the loop it is in tail position of."""
        if isinstance(form, Num):
            return ir.Const(value=form.value, span=form.span)
        if isinstance(form, Sym):
            return self.name(form, scope)
        if not form.items:
            raise SyntaxFormError("() is not an expression", form.span,
                                  hint="an expression is a number, a name or (operator args ...)")
        head = form.items[0]
        if isinstance(head, Sym):
            bound = scope.lookup(head.name)
            if bound is None and head.name in SPECIAL_FORMS:
                return SPECIAL_FORMS[head.name](self, form, scope, tail)
            return self.call(head, form, scope, tail, bound)
        if isinstance(head, Num):
            raise NCTypeError("a number cannot be called", head.span,
                              hint="to multiply, write (* a b)")
        raise NCTypeError("only names can be called: functions are first-order", head.span,
                          hint="define the function with (define (f x) ...) and call (f ...)")

    def name(self, sym: Sym, scope: Scope) -> ir.Expr:
        bound = scope.lookup(sym.name)
        if bound is not None:
            if bound.kind == "local":
                return ir.Local(name=sym.name, key=bound.key, span=sym.span)  # type: ignore[arg-type]
            if bound.kind == "input":
                self.owner.free.append((sym.span.start, sym.name, sym.span))
                return ir.Input(name=sym.name, span=sym.span)
            raise NCTypeError(f"'{sym.name}' is a function, not a value", sym.span,
                              hint=f"call it as ({sym.name} ...); functions are not values in nc")
        if sym.name in self.globals and sym.name not in self.promote:
            kind, _ = self.globals[sym.name]
            if kind == "fn":
                raise NCTypeError(f"'{sym.name}' is a function, not a value", sym.span,
                                  hint=f"call it as ({sym.name} ...); functions are not values in nc")
            self.owner.globals_used.add(sym.name)
            return ir.Global(name=sym.name, span=sym.span)
        if sym.name == "pi":
            return ir.Const(value=math.pi, span=sym.span)
        if sym.name in RESERVED:
            raise SyntaxFormError(f"'{sym.name}' is a special form, not a value", sym.span)
        if lookup(sym.name) is not None:
            raise NCTypeError(f"'{sym.name}' is a primitive, not a value", sym.span,
                              hint=f"call it as ({sym.name} ...), or bind the name with let to use it as a value")
        self.owner.free.append((sym.span.start, sym.name, sym.span))
        return ir.Input(name=sym.name, span=sym.span)

    def call(self, head: Sym, form: Lst, scope: Scope, tail: str | None, bound: Bound | None) -> ir.Expr:
        args_forms = form.items[1:]
        if bound is not None and bound.kind in ("local", "input"):
            raise NCTypeError(f"'{head.name}' is a value, not a function", head.span,
                              hint="functions are first-order: only defined functions and primitives can be called")
        if bound is not None and bound.kind == "loop":
            return self.recur_to(str(bound.key), bound.arity, form, scope, tail, head.name)
        if bound is not None:
            return self.user_call(str(bound.key), head, form, scope, bound.arity)
        if head.name in self.globals:
            kind, _ = self.globals[head.name]
            if kind == "const":
                raise NCTypeError(f"'{head.name}' is a constant, not a function", head.span)
            self.owner.globals_used.add(head.name)
            return self.user_call(head.name, head, form, scope, self.fn_arity[head.name])
        if head.name in self.externals:
            if not args_forms:
                raise ArityError(f"the learned component '{head.name}' needs at least one argument", form.span)
            args = tuple(self.expr(a, scope, None) for a in args_forms)
            return ir.External(name=head.name, args=args, span=form.span)
        prim = lookup(head.name)
        if prim is None:
            raise UnboundNameError(f"unknown function '{head.name}'", head.span,
                                   hint=hint_for(head.name, [*PUBLIC_NAMES, *SPECIAL_FORMS, *scope.visible(),
                                                             *self.fn_arity]))
        lo, hi = prim.arity
        if len(args_forms) < lo or (hi is not None and len(args_forms) > hi):
            raise ArityError(f"{prim.name} takes {prim.arity_text()} argument{'s' * (prim.arity != (1, 1))}, "
                             f"got {len(args_forms)}", form.span,
                             hint=None if prim.doc == prim.name else f"{prim.name}: {prim.doc}")
        args = tuple(self.expr(a, scope, None) for a in args_forms)
        return ir.PrimCall(prim=prim.name, args=args, span=form.span, head_span=head.span)

    def user_call(self, key: str, head: Sym, form: Lst, scope: Scope, arity: int) -> ir.Expr:
        got = len(form.items) - 1
        if got != arity:
            raise ArityError(f"'{head.name}' takes {arity} argument{'s' * (arity != 1)}, got {got}", form.span)
        args = tuple(self.expr(a, scope, None) for a in form.items[1:])
        return ir.Call(fn=key, args=args, span=form.span)

    def recur_to(self, key: str, arity: int, form: Lst, scope: Scope, tail: str | None, name: str) -> ir.Expr:
        if tail != key:
            raise SyntaxFormError(f"({name} ...) must be in tail position of its loop", form.span,
                                  hint="the recursive call must be the last thing the loop body does")
        got = len(form.items) - 1
        if got != arity:
            raise ArityError(f"{name} takes {arity} argument{'s' * (arity != 1)} (one per loop variable), "
                             f"got {got}", form.span)
        args = tuple(self.expr(a, scope, None) for a in form.items[1:])
        return ir.Recur(args=args, key=key, span=form.span)

    def check_bindable(self, sym: Form) -> None:
        if not isinstance(sym, Sym):
            raise SyntaxFormError("expected a name", sym.span)
        if sym.name in RESERVED:
            raise SyntaxFormError(f"'{sym.name}' is a special form and cannot be bound", sym.span)

    def bindings(self, form: Form, what: str) -> list[tuple[Sym, Form]]:
        if not isinstance(form, Lst) or form.bracket:
            raise SyntaxFormError(f"{what} needs a list of bindings, as in (({'x'} 1) (y 2))", form.span)
        out = []
        for b in form.items:
            if not (isinstance(b, Lst) and len(b.items) == 2 and isinstance(b.items[0], Sym)):
                raise SyntaxFormError(f"a {what} binding is (name expr)", b.span)
            self.check_bindable(b.items[0])
            out.append((b.items[0], b.items[1]))
        return out  # type: ignore[return-value]


def is_define(form: Form) -> bool:
    return is_head(form, "define")


__all__ = ["parse", "Parser", "NCError"]
