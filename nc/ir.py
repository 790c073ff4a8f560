"""The intermediate representation: frozen attrs nodes made by `nc.parse`.

Grammar (names are resolved by the parser; every node keeps its source span, which is
excluded from equality)::

    Expr    := Const(value) | Local(name, key) | Global(name) | Input(name)
             | PrimCall(prim, args) | Call(fn, args) | External(name, args)
             | If(test, then, orelse)
             | Let(bindings: Binding*, body, sequential) | Letrec(fns: Function*, body)
             | Loop(bindings: Binding*, body, key) | Recur(args, key)
             | Integrate(method, fn, y0, dt, steps)
    Binding := (name, key, value: Expr)
    FnRef   := the key of a `Function` (a top-level define, a letrec binding or a lambda)
    Function(key, name, params: Binding*, body, tail_loop)
    Define(name, value: Expr)
    SourceProgram(constants: Define*, functions: Function*, result: Expr, inputs: name*,
                  input_spans, source_text, used_constants: name*)

``Local`` names a let/loop/parameter binding, ``Global`` a top-level constant ``define``,
``Input`` a free name (an input of the compiled function). Calls of user functions are
``Call`` nodes keyed by the function's unique key, so shadowing is already resolved.
A function whose recursive calls are all self tail calls has ``tail_loop=True`` and those calls
are `Recur` nodes keyed by the function: it is traced as a loop.

A `SourceProgram` is what the parser makes of the text, once per compile; the tracer turns it
into a `nc.program.Recording` (straight-line equations) once per signature of inputs.
"""

from __future__ import annotations

import attrs

from .errors import Span


def _span() -> Span | None:
    return attrs.field(default=None, eq=False, repr=False)  # type: ignore[no-any-return]


@attrs.frozen(kw_only=True)
class Expr:
    span: Span | None = _span()


@attrs.frozen(kw_only=True)
class Const(Expr):
    value: float


@attrs.frozen(kw_only=True)
class Local(Expr):
    name: str
    key: int  # unique per binding site, so shadowed names stay apart


@attrs.frozen(kw_only=True)
class Global(Expr):
    name: str


@attrs.frozen(kw_only=True)
class Input(Expr):
    name: str


@attrs.frozen(kw_only=True)
class PrimCall(Expr):
    prim: str  # the row's canonical name
    args: tuple[Expr, ...]
    head_span: Span | None = _span()


@attrs.frozen(kw_only=True)
class Call(Expr):
    fn: str  # key of the Function
    args: tuple[Expr, ...]


@attrs.frozen(kw_only=True)
class External(Expr):
    name: str  # a learned component (a torch module) given to the compiler
    args: tuple[Expr, ...]


@attrs.frozen(kw_only=True)
class If(Expr):
    test: Expr
    then: Expr
    orelse: Expr


@attrs.frozen(kw_only=True)
class Binding:
    name: str
    key: int
    value: Expr
    span: Span | None = _span()


@attrs.frozen(kw_only=True)
class Let(Expr):
    bindings: tuple[Binding, ...]
    body: Expr
    sequential: bool = False


@attrs.frozen(kw_only=True)
class Function:
    key: str
    name: str
    params: tuple[Binding, ...]  # value is a placeholder Const; key identifies the parameter
    body: Expr
    tail_loop: bool = False
    tail_group: Loop | None = None  # the loop that runs this function's group of mutual tail calls
    span: Span | None = _span()


@attrs.frozen(kw_only=True)
class Letrec(Expr):
    fns: tuple[Function, ...]
    body: Expr


@attrs.frozen(kw_only=True)
class Loop(Expr):
    bindings: tuple[Binding, ...]
    body: Expr
    key: str


@attrs.frozen(kw_only=True)
class Recur(Expr):
    args: tuple[Expr, ...]
    key: str


@attrs.frozen(kw_only=True)
class Integrate(Expr):
    method: str  # "euler" or "rk4"
    fn: str  # key of the Function (a define, letrec binding or lambda)
    y0: Expr
    dt: Expr
    steps: Expr


@attrs.frozen(kw_only=True)
class Define:
    name: str
    value: Expr
    span: Span | None = _span()  # the name
    form_span: Span | None = _span()  # the whole (define ...) form


@attrs.frozen(kw_only=True)
class SourceProgram:
    """A parsed program: its top-level constants, every function by key, the result, the inputs."""

    constants: tuple[Define, ...]
    functions: tuple[Function, ...]  # every function, top-level, letrec and lambda, by key
    result: Expr
    inputs: tuple[str, ...]
    input_spans: tuple[Span | None, ...] = attrs.field(eq=False, repr=False)
    source_text: str = attrs.field(eq=False, repr=False, default="")
    used_constants: tuple[str, ...] = ()  # constants the result uses, directly or not, in source order
