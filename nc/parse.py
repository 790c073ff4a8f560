"""Forms to IR: the program as a whole (its defines, its result and its inputs).

Expressions are parsed by `nc.parser.Parser`, which hands each special form to its function in
`nc.forms.SPECIAL_FORMS`; scopes are in `nc.scope`, tail-call loops in `nc.tailcalls`.
"""

from __future__ import annotations

from collections.abc import Sequence

from . import ir
from .errors import NCError, Source, Span, SyntaxFormError
from .forms import SPECIAL_FORMS
from .parser import Owner, Parser, is_head
from .reader import Form, Lst, Sym, read
from .scope import Bound, Scope
from .suggest import FOREIGN_NAMES
from .tailcalls import make_tail_groups


def parse(source_text: str, *, name: str = "<program>", promote: Sequence[str] = (),
          externals: Sequence[str] = ()) -> ir.SourceProgram:
    """Read and parse a program.

    Top-level constants named in ``promote`` become inputs; names in ``externals`` are learned
    components (PyTorch modules) that the program may call like functions.
    """
    source = Source(source_text, name)
    parser = Parser(source, SPECIAL_FORMS, promote=frozenset(promote), externals=frozenset(externals))
    return parse_program(parser, read(source))


def parse_program(p: Parser, forms: list[Form]) -> ir.SourceProgram:
    if not forms:
        raise SyntaxFormError("the program is empty: it needs a result expression",
                              span_at(p, 0), hint="write an expression such as (* k x)")
    *defs, result = forms
    for form in defs:
        declare(p, form)
    if is_define(result):
        raise SyntaxFormError("the program ends with a define; it needs a result expression after it",
                              result.span)
    for form in defs:
        define_item(p, form)
    p.owners["<result>"] = p.owner = Owner()
    body, lambda_params = parse_result(p, result)
    inputs, spans = find_inputs(p, lambda_params)
    used = tuple(n for n in p.constants if n in p.reachable and n not in p.promote)
    functions = make_tail_groups(p.functions, p.keys)
    return ir.SourceProgram(constants=tuple(p.constants.values()), functions=tuple(functions.values()),
                      result=body, inputs=inputs, input_spans=spans, used_constants=used,
                      source_text=p.source.text)


def span_at(p: Parser, offset: int) -> Span:
    return Span(p.source, offset, offset + 1)


def declare(p: Parser, form: Form) -> None:
    """Record a top-level define's name, so that definitions may refer forward."""
    if not is_define(form):
        head = form.items[0] if isinstance(form, Lst) and form.items else None
        foreign = FOREIGN_NAMES.get(head.name) if isinstance(head, Sym) else None
        raise SyntaxFormError(
            "only the last top-level expression is the result; the ones before it must be defines",
            form.span, hint=foreign or "a program is zero or more (define ...) followed by one expression")
    assert isinstance(form, Lst)
    name, kind, arity = define_head(p, form)
    if name.name in p.globals:
        raise SyntaxFormError(f"'{name.name}' is already defined at the top level", name.span,
                              hint="a top-level name is defined once; choose another name")
    p.globals[name.name] = (kind, form)
    if kind == "fn":
        p.fn_arity[name.name] = arity


def define_head(p: Parser, form: Lst) -> tuple[Sym, str, int]:
    if len(form.items) != 3:
        raise SyntaxFormError("define takes a name and one expression: (define name expr) or "
                              "(define (f args ...) body)", form.span)
    target = form.items[1]
    if isinstance(target, Sym):
        p.check_bindable(target)
        value = form.items[2]
        if is_head(value, "lambda"):
            assert isinstance(value, Lst)
            return target, "fn", len(p.param_syms(value))
        return target, "const", 0
    if isinstance(target, Lst) and target.items and all(isinstance(p, Sym) for p in target.items):
        head = target.items[0]
        assert isinstance(head, Sym)
        p.check_bindable(head)
        return head, "fn", len(target.items) - 1
    raise SyntaxFormError("define needs a name or (name params ...)", target.span)


def define_item(p: Parser, form: Form) -> None:
    assert isinstance(form, Lst)
    name, kind, _ = define_head(p, form)
    p.owners[name.name] = p.owner = Owner()
    if kind == "const":
        value = p.expr(form.items[2], Scope(), None)
        p.constants[name.name] = ir.Define(name=name.name, value=value, span=name.span, form_span=form.span)
        return
    if isinstance(form.items[1], Lst):
        params = [p for p in form.items[1].items[1:] if isinstance(p, Sym)]
        body_form = form.items[2]
    else:
        lam = form.items[2]
        assert isinstance(lam, Lst)
        params, body_form = p.lambda_parts(lam)
    p.function(name.name, name, params, body_form, Scope())


def parse_result(p: Parser, form: Form) -> tuple[ir.Expr, tuple[str, ...]]:
    if is_head(form, "lambda"):
        assert isinstance(form, Lst)
        params, body = p.lambda_parts(form)
        scope = Scope()
        p.bind_params(scope, params)
        # A lambda result's parameters are inputs: bound (so they shadow globals, pi and
        # primitives) but read as Input nodes.
        for sym in params:
            scope.names[sym.name] = Bound("input", sym.name)
        return p.expr(body, scope, None), tuple(sym.name for sym in params)
    return p.expr(form, Scope(), None), ()


def find_inputs(p: Parser, first: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[Span | None, ...]]:
    """Inputs in order: lambda parameters, then free names by first free occurrence."""
    seen_items: set[str] = set()
    todo = ["<result>"]
    found: list[tuple[int, str, Span]] = []
    while todo:
        item = todo.pop()
        if item in seen_items:
            continue
        seen_items.add(item)
        p.reachable.add(item)
        owner = p.owners[item]
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


def is_define(form: Form) -> bool:
    return is_head(form, "define")


__all__ = ["parse", "Parser", "NCError", "SPECIAL_FORMS"]
