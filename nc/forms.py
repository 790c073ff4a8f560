"""The special forms of the language, one function each, with the syntax it accepts in its docstring.

Each function turns one form into IR using the parser's scopes and helpers
(``form(parser, lst, scope, tail)``); `SPECIAL_FORMS`, at the end, maps a head symbol to its
function and is the one place the parser learns them from.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from . import ir
from .errors import ArityError, NCTypeError, SyntaxFormError
from .parser import Parser, is_head
from .reader import Form, Lst, Sym
from .scope import RESERVED, Bound, Scope

Form_ = Callable[[Parser, Lst, Scope, "str | None"], ir.Expr]


def define_form(p: Parser, form: Lst, scope: Scope, tail: str | None) -> ir.Expr:
    """(define ...) is allowed only at the top level."""
    raise SyntaxFormError("define is allowed only at the top level", form.span,
                          hint="bind local names with let or let*")


def lambda_form(p: Parser, form: Lst, scope: Scope, tail: str | None) -> ir.Expr:
    """(lambda (p ...) body): only as the result, a define/letrec value, or euler/rk4's function."""
    raise SyntaxFormError("lambda is allowed only as the whole result, as the value of a define or "
                          "letrec binding, or as the function of euler/rk4", form.span,
                          hint="functions are first-order in nc")


def let_form(p: Parser, form: Lst, scope: Scope, tail: str | None) -> ir.Expr:
    """(let ((x e) ...) body), and the named let (let name ((v init) ...) body) as a loop."""
    if len(form.items) == 4 and isinstance(form.items[1], Sym):
        return make_loop(p, form, form.items[1], form.items[2], form.items[3], scope, tail)
    if len(form.items) != 3:
        raise SyntaxFormError("let takes bindings and one body expression: (let ((x 1)) body)", form.span)
    out, inner = parallel_bindings(p, p.bindings(form.items[1], "let"), scope, "let")
    return ir.Let(bindings=tuple(out), body=p.expr(form.items[2], inner, tail), span=form.span)


def parallel_bindings(p: Parser, pairs: list[tuple[Sym, Form]], scope: Scope, what: str
                      ) -> tuple[list[ir.Binding], Scope]:
    """Bindings whose values are read in ``scope`` (as let and loop do), and the inner scope."""
    inner = Scope(scope)
    out = []
    for sym, value in pairs:
        if sym.name in inner.names:
            raise SyntaxFormError(f"'{sym.name}' is bound twice in one {what}", sym.span)
        key = next(p.keys)
        out.append(ir.Binding(name=sym.name, key=key, value=p.expr(value, scope, None), span=sym.span))
        inner.names[sym.name] = Bound("local", key)
    return out, inner


def let_star_form(p: Parser, form: Lst, scope: Scope, tail: str | None) -> ir.Expr:
    """(let* ((x e) ...) body): each binding sees the ones before it."""
    if len(form.items) != 3:
        raise SyntaxFormError("let* takes bindings and one body expression: (let* ((x 1)) body)", form.span)
    inner = Scope(scope)
    out = []
    for sym, value in p.bindings(form.items[1], "let*"):
        key = next(p.keys)
        out.append(ir.Binding(name=sym.name, key=key, value=p.expr(value, inner, None), span=sym.span))
        inner.names[sym.name] = Bound("local", key)
    return ir.Let(bindings=tuple(out), body=p.expr(form.items[2], inner, tail), sequential=True,
                  span=form.span)


def letrec_form(p: Parser, form: Lst, scope: Scope, tail: str | None) -> ir.Expr:
    """(letrec ((f (lambda (p ...) body)) ...) body): local, possibly recursive, functions."""
    if len(form.items) != 3:
        raise SyntaxFormError("letrec takes bindings and one body expression", form.span)
    pairs = p.bindings(form.items[1], "letrec")
    inner = Scope(scope)
    keys = []
    for sym, value in pairs:
        if not is_head(value, "lambda"):
            raise SyntaxFormError("a letrec binding must be a lambda: (f (lambda (x) ...))", value.span,
                                  hint="bind values with let or let*")
        if sym.name in inner.names:
            raise SyntaxFormError(f"'{sym.name}' is bound twice in one letrec", sym.span)
        key = f"{sym.name}#{next(p.keys)}"
        assert isinstance(value, Lst)
        inner.names[sym.name] = Bound("fn", key, len(p.param_syms(value)))
        keys.append(key)
    fns = []
    for key, (sym, value) in zip(keys, pairs):
        assert isinstance(value, Lst)
        params, body = p.lambda_parts(value)
        fns.append(p.function(key, sym, params, body, inner))
    return ir.Letrec(fns=tuple(fns), body=p.expr(form.items[2], inner, tail), span=form.span)


def letrec_star_form(p: Parser, form: Lst, scope: Scope, tail: str | None) -> ir.Expr:
    """(letrec* ...) is letrec: bindings are lambdas, so the order does not matter."""
    return letrec_form(p, form, scope, tail)


def if_form(p: Parser, form: Lst, scope: Scope, tail: str | None) -> ir.Expr:
    """(if test then else): both branches are required."""
    if len(form.items) != 4:
        raise ArityError(f"if takes a test, a then branch and an else branch, got {len(form.items) - 1} "
                         f"expression{'s' * (len(form.items) != 2)}", form.span,
                         hint="nc's if always has an else branch: (if test then else)")
    test, then, orelse = form.items[1:]
    return ir.If(test=p.expr(test, scope, None), then=p.expr(then, scope, tail),
                 orelse=p.expr(orelse, scope, tail), span=form.span)


def cond_form(p: Parser, form: Lst, scope: Scope, tail: str | None) -> ir.Expr:
    """(cond (test e) ... (else e)): nested ifs; the else clause is required and last."""
    clauses = form.items[1:]
    if not clauses or not is_head(clauses[-1], "else"):
        raise SyntaxFormError("cond needs an (else e) clause at the end", form.span)
    for c in clauses:
        if not (isinstance(c, Lst) and len(c.items) == 2):
            raise SyntaxFormError("a cond clause is (test expr) or (else expr)", c.span)
    last = clauses[-1]
    assert isinstance(last, Lst)
    result = p.expr(last.items[1], scope, tail)
    parsed = []
    for c in clauses[:-1]:
        assert isinstance(c, Lst)
        if is_head(c, "else"):
            raise SyntaxFormError("else must be the last cond clause", c.span)
        parsed.append((c, p.expr(c.items[0], scope, None), p.expr(c.items[1], scope, tail)))
    for c, test, value in reversed(parsed):
        result = ir.If(test=test, then=value, orelse=result, span=c.span)
    return result


def loop_form(p: Parser, form: Lst, scope: Scope, tail: str | None) -> ir.Expr:
    """(loop ((v init) ...) body), with (recur e ...) in tail position of body."""
    if len(form.items) != 3:
        raise SyntaxFormError("loop takes bindings and one body expression: "
                              "(loop ((i 0)) (if (> i 9) i (recur (+ i 1))))", form.span)
    return make_loop(p, form, None, form.items[1], form.items[2], scope, tail)


def make_loop(p: Parser, form: Lst, name: Sym | None, bindings: Form, body: Form, scope: Scope,
              tail: str | None) -> ir.Expr:
    pairs = p.bindings(bindings, "loop")
    key = f"loop#{next(p.keys)}"
    out, inner = parallel_bindings(p, pairs, scope, "loop")
    if name is not None:
        p.check_bindable(name)
        inner.names[name.name] = Bound("loop", key, len(pairs))
    p.loops.append((key, len(pairs)))
    try:
        parsed_body = p.expr(body, inner, key)
    finally:
        p.loops.pop()
    return ir.Loop(bindings=tuple(out), body=parsed_body, key=key, span=form.span)


def recur_form(p: Parser, form: Lst, scope: Scope, tail: str | None) -> ir.Expr:
    """(recur e ...): the next iteration of the innermost loop, in tail position only."""
    if not p.loops:
        raise SyntaxFormError("recur is allowed only inside a loop", form.span,
                              hint="write (loop ((v init) ...) body) and call (recur ...) in its body")
    key, arity = p.loops[-1]
    return p.recur_to(key, arity, form, scope, tail, "recur")


def euler_form(p: Parser, form: Lst, scope: Scope, tail: str | None) -> ir.Expr:
    """(euler f y0 dt n): n fixed steps of y + dt * f(t, y)."""
    return make_integrate(p, "euler", form, scope)


def rk4_form(p: Parser, form: Lst, scope: Scope, tail: str | None) -> ir.Expr:
    """(rk4 f y0 dt n): n fixed steps of the classic Runge-Kutta method."""
    return make_integrate(p, "rk4", form, scope)


def make_integrate(p: Parser, method: str, form: Lst, scope: Scope) -> ir.Expr:
    if len(form.items) != 5:
        raise ArityError(f"{method} takes 4 arguments (f y0 dt n), got {len(form.items) - 1}", form.span,
                         hint=f"({method} f y0 dt n) integrates dy/dt = (f t y) for n steps of dt")
    fn_form, y0, dt, steps = form.items[1:]
    key = step_function(p, fn_form, scope)
    if len(p.functions[key].params) != 2 if key in p.functions else p.fn_arity.get(key, 2) != 2:
        raise ArityError(f"the function of {method} takes 2 arguments (t y)", fn_form.span)
    return ir.Integrate(method=method, fn=key, y0=p.expr(y0, scope, None), dt=p.expr(dt, scope, None),
                        steps=p.expr(steps, scope, None), span=form.span)


def step_function(p: Parser, form: Form, scope: Scope) -> str:
    if isinstance(form, Lst) and is_head(form, "lambda"):
        params, body = p.lambda_parts(form)
        key = f"lambda#{next(p.keys)}"
        p.function(key, Sym("lambda", form.span), params, body, scope)
        return key
    if isinstance(form, Sym):
        bound = scope.lookup(form.name)
        if bound is not None and bound.kind == "fn":
            return str(bound.key)
        if bound is None and form.name in p.globals and p.globals[form.name][0] == "fn":
            p.owner.globals_used.add(form.name)
            return form.name
    raise NCTypeError("the first argument of euler/rk4 must be a function name or a lambda (t y)", form.span)


SPECIAL_FORMS: Mapping[str, Form_] = {
    "define": define_form,
    "lambda": lambda_form,
    "let": let_form,
    "let*": let_star_form,
    "letrec": letrec_form,
    "letrec*": letrec_star_form,
    "if": if_form,
    "cond": cond_form,
    "loop": loop_form,
    "recur": recur_form,
    "euler": euler_form,
    "rk4": rk4_form,
}
"""The dispatch table of the parser: head symbol -> the function that parses the form."""

__all__ = ["RESERVED", "SPECIAL_FORMS", "is_head"]
