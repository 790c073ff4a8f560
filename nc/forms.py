"""The special forms of the language, one method each, with the syntax it accepts in its docstring.

`SpecialForms` is mixed into `nc.parse.Parser`: each method turns one form into IR using the
parser's scopes and helpers. `SPECIAL_FORMS` maps a head symbol to its method.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import ir
from .errors import ArityError, NCTypeError, SyntaxFormError
from .reader import Form, Lst, Sym
from .scope import Bound, Scope

SPECIAL_FORMS: dict[str, Callable[..., ir.Expr]] = {}
RESERVED = frozenset(
    ["define", "lambda", "let", "let*", "letrec", "letrec*", "if", "cond", "else", "loop", "recur", "euler", "rk4"]
)


def special(name: str) -> Callable[[Callable[..., ir.Expr]], Callable[..., ir.Expr]]:
    def register(method: Callable[..., ir.Expr]) -> Callable[..., ir.Expr]:
        SPECIAL_FORMS[name] = method
        return method

    return register


class SpecialForms:
    """Methods for the special forms; the parser provides `expr`, `bindings`, scopes and keys."""

    # Provided by nc.parse.Parser.
    keys: Any
    loops: list[tuple[str, int]]
    functions: dict[str, ir.Function]
    fn_arity: dict[str, int]
    globals: dict[str, tuple[str, Form]]
    owner: Any
    expr: Callable[..., ir.Expr]
    bindings: Callable[..., list[tuple[Sym, Form]]]
    check_bindable: Callable[[Form], None]
    lambda_parts: Callable[[Lst], tuple[list[Sym], Form]]
    param_syms: Callable[[Lst], list[Sym]]
    function: Callable[..., ir.Function]
    recur_to: Callable[..., ir.Expr]

    @special("define")
    def _define(self, form: Lst, scope: Scope, tail: str | None) -> ir.Expr:
        """(define ...) is allowed only at the top level."""
        raise SyntaxFormError("define is allowed only at the top level", form.span,
                              hint="bind local names with let or let*")

    @special("lambda")
    def _lambda(self, form: Lst, scope: Scope, tail: str | None) -> ir.Expr:
        """(lambda (p ...) body): only as the result, a define/letrec value, or euler/rk4's function."""
        raise SyntaxFormError("lambda is allowed only as the whole result, as the value of a define or "
                              "letrec binding, or as the function of euler/rk4", form.span,
                              hint="functions are first-order in nc")

    @special("let")
    def _let(self, form: Lst, scope: Scope, tail: str | None) -> ir.Expr:
        """(let ((x e) ...) body), and the named let (let name ((v init) ...) body) as a loop."""
        if len(form.items) == 4 and isinstance(form.items[1], Sym):
            return self.loop_form(form, form.items[1], form.items[2], form.items[3], scope, tail)
        if len(form.items) != 3:
            raise SyntaxFormError("let takes bindings and one body expression: (let ((x 1)) body)", form.span)
        out, inner = self.parallel_bindings(self.bindings(form.items[1], "let"), scope, "let")
        return ir.Let(bindings=tuple(out), body=self.expr(form.items[2], inner, tail), span=form.span)

    def parallel_bindings(self, pairs: list[tuple[Sym, Form]], scope: Scope, what: str
                          ) -> tuple[list[ir.Binding], Scope]:
        """Bindings whose values are read in ``scope`` (as let and loop do), and the inner scope."""
        inner = Scope(scope)
        out = []
        for sym, value in pairs:
            if sym.name in inner.names:
                raise SyntaxFormError(f"'{sym.name}' is bound twice in one {what}", sym.span)
            key = next(self.keys)
            out.append(ir.Binding(name=sym.name, key=key, value=self.expr(value, scope, None), span=sym.span))
            inner.names[sym.name] = Bound("local", key)
        return out, inner

    @special("let*")
    def _let_star(self, form: Lst, scope: Scope, tail: str | None) -> ir.Expr:
        """(let* ((x e) ...) body): each binding sees the ones before it."""
        if len(form.items) != 3:
            raise SyntaxFormError("let* takes bindings and one body expression: (let* ((x 1)) body)", form.span)
        inner = Scope(scope)
        out = []
        for sym, value in self.bindings(form.items[1], "let*"):
            key = next(self.keys)
            out.append(ir.Binding(name=sym.name, key=key, value=self.expr(value, inner, None), span=sym.span))
            inner.names[sym.name] = Bound("local", key)
        return ir.Let(bindings=tuple(out), body=self.expr(form.items[2], inner, tail), sequential=True,
                      span=form.span)

    @special("letrec")
    def _letrec(self, form: Lst, scope: Scope, tail: str | None) -> ir.Expr:
        """(letrec ((f (lambda (p ...) body)) ...) body): local, possibly recursive, functions."""
        if len(form.items) != 3:
            raise SyntaxFormError("letrec takes bindings and one body expression", form.span)
        pairs = self.bindings(form.items[1], "letrec")
        inner = Scope(scope)
        keys = []
        for sym, value in pairs:
            if not is_head(value, "lambda"):
                raise SyntaxFormError("a letrec binding must be a lambda: (f (lambda (x) ...))", value.span,
                                      hint="bind values with let or let*")
            if sym.name in inner.names:
                raise SyntaxFormError(f"'{sym.name}' is bound twice in one letrec", sym.span)
            key = f"{sym.name}#{next(self.keys)}"
            assert isinstance(value, Lst)
            inner.names[sym.name] = Bound("fn", key, len(self.param_syms(value)))
            keys.append(key)
        fns = []
        for key, (sym, value) in zip(keys, pairs):
            assert isinstance(value, Lst)
            params, body = self.lambda_parts(value)
            fns.append(self.function(key, sym, params, body, inner))
        return ir.Letrec(fns=tuple(fns), body=self.expr(form.items[2], inner, tail), span=form.span)

    @special("letrec*")
    def _letrec_star(self, form: Lst, scope: Scope, tail: str | None) -> ir.Expr:
        """(letrec* ...) is letrec: bindings are lambdas, so the order does not matter."""
        return self._letrec(form, scope, tail)

    @special("if")
    def _if(self, form: Lst, scope: Scope, tail: str | None) -> ir.Expr:
        """(if test then else): both branches are required."""
        if len(form.items) != 4:
            raise ArityError(f"if takes a test, a then branch and an else branch, got {len(form.items) - 1} "
                             f"expression{'s' * (len(form.items) != 2)}", form.span,
                             hint="nc's if always has an else branch: (if test then else)")
        test, then, orelse = form.items[1:]
        return ir.If(test=self.expr(test, scope, None), then=self.expr(then, scope, tail),
                     orelse=self.expr(orelse, scope, tail), span=form.span)

    @special("cond")
    def _cond(self, form: Lst, scope: Scope, tail: str | None) -> ir.Expr:
        """(cond (test e) ... (else e)): nested ifs; the else clause is required and last."""
        clauses = form.items[1:]
        if not clauses or not is_head(clauses[-1], "else"):
            raise SyntaxFormError("cond needs an (else e) clause at the end", form.span)
        for c in clauses:
            if not (isinstance(c, Lst) and len(c.items) == 2):
                raise SyntaxFormError("a cond clause is (test expr) or (else expr)", c.span)
        last = clauses[-1]
        assert isinstance(last, Lst)
        result = self.expr(last.items[1], scope, tail)
        parsed = []
        for c in clauses[:-1]:
            assert isinstance(c, Lst)
            if is_head(c, "else"):
                raise SyntaxFormError("else must be the last cond clause", c.span)
            parsed.append((c, self.expr(c.items[0], scope, None), self.expr(c.items[1], scope, tail)))
        for c, test, value in reversed(parsed):
            result = ir.If(test=test, then=value, orelse=result, span=c.span)
        return result

    @special("loop")
    def _loop(self, form: Lst, scope: Scope, tail: str | None) -> ir.Expr:
        """(loop ((v init) ...) body), with (recur e ...) in tail position of body."""
        if len(form.items) != 3:
            raise SyntaxFormError("loop takes bindings and one body expression: "
                                  "(loop ((i 0)) (if (> i 9) i (recur (+ i 1))))", form.span)
        return self.loop_form(form, None, form.items[1], form.items[2], scope, tail)

    def loop_form(self, form: Lst, name: Sym | None, bindings: Form, body: Form, scope: Scope,
                  tail: str | None) -> ir.Expr:
        pairs = self.bindings(bindings, "loop")
        key = f"loop#{next(self.keys)}"
        out, inner = self.parallel_bindings(pairs, scope, "loop")
        if name is not None:
            self.check_bindable(name)
            inner.names[name.name] = Bound("loop", key, len(pairs))
        self.loops.append((key, len(pairs)))
        try:
            parsed_body = self.expr(body, inner, key)
        finally:
            self.loops.pop()
        return ir.Loop(bindings=tuple(out), body=parsed_body, key=key, span=form.span)

    @special("recur")
    def _recur(self, form: Lst, scope: Scope, tail: str | None) -> ir.Expr:
        """(recur e ...): the next iteration of the innermost loop, in tail position only."""
        if not self.loops:
            raise SyntaxFormError("recur is allowed only inside a loop", form.span,
                                  hint="write (loop ((v init) ...) body) and call (recur ...) in its body")
        key, arity = self.loops[-1]
        return self.recur_to(key, arity, form, scope, tail, "recur")

    @special("euler")
    def _euler(self, form: Lst, scope: Scope, tail: str | None) -> ir.Expr:
        """(euler f y0 dt n): n fixed steps of y + dt * f(t, y)."""
        return self.integrate("euler", form, scope)

    @special("rk4")
    def _rk4(self, form: Lst, scope: Scope, tail: str | None) -> ir.Expr:
        """(rk4 f y0 dt n): n fixed steps of the classic Runge-Kutta method."""
        return self.integrate("rk4", form, scope)

    def integrate(self, method: str, form: Lst, scope: Scope) -> ir.Expr:
        if len(form.items) != 5:
            raise ArityError(f"{method} takes 4 arguments (f y0 dt n), got {len(form.items) - 1}", form.span,
                             hint=f"({method} f y0 dt n) integrates dy/dt = (f t y) for n steps of dt")
        fn_form, y0, dt, steps = form.items[1:]
        key = self.step_function(fn_form, scope)
        if len(self.functions[key].params) != 2 if key in self.functions else self.fn_arity.get(key, 2) != 2:
            raise ArityError(f"the function of {method} takes 2 arguments (t y)", fn_form.span)
        return ir.Integrate(method=method, fn=key, y0=self.expr(y0, scope, None), dt=self.expr(dt, scope, None),
                            steps=self.expr(steps, scope, None), span=form.span)

    def step_function(self, form: Form, scope: Scope) -> str:
        if isinstance(form, Lst) and is_head(form, "lambda"):
            params, body = self.lambda_parts(form)
            key = f"lambda#{next(self.keys)}"
            self.function(key, Sym("lambda", form.span), params, body, scope)
            return key
        if isinstance(form, Sym):
            bound = scope.lookup(form.name)
            if bound is not None and bound.kind == "fn":
                return str(bound.key)
            if bound is None and form.name in self.globals and self.globals[form.name][0] == "fn":
                self.owner.globals_used.add(form.name)
                return form.name
        raise NCTypeError("the first argument of euler/rk4 must be a function name or a lambda (t y)", form.span)


def is_head(form: Form, name: str) -> bool:
    return isinstance(form, Lst) and bool(form.items) and isinstance(form.items[0], Sym) \
        and form.items[0].name == name
