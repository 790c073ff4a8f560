"""nc programs as SymPy expressions and LaTeX, and SymPy expressions as nc programs.

`to_sympy` evaluates the IR (not the recorded program: the IR keeps the names and the
``if``s) with SymPy values: inputs are ``Symbol``s named as in the program (``g/L`` included),
vector and matrix inputs are ``IndexedBase`` elements (``u[0]``; their sizes come from
``shapes=``), ``let`` bindings are substituted, ``define``d functions inlined, ``if``/``cond``
become ``Piecewise``, comparisons ``Piecewise((1, x < y), (0, True))``, vectors and matrices
SymPy matrices (a vector is a column). Loops whose exit is decided by constants unroll, as
when tracing. Masked loops (exit depending on inputs), ``euler``/``rk4`` and learned
components are an `NCError` naming the form. Primitives without a SymPy function of the same
meaning (``round`` is half-to-even, ``remainder``, ``quotient``, ``truncate``, ``softplus``, ``logaddexp``, ``xlogy``)
are undefined SymPy functions of that name, which `from_sympy` writes back.

`from_sympy` writes nc source for a SymPy expression (PySR's output, say); ``params`` become
top-level ``(define name value)`` constants, which ``nc.compile(src, trainable=[...])`` makes
trainable; `lift_constants` turns an expression's floats into such named constants.

SymPy is optional (``pip install 'nc[sympy]'``).
"""

from __future__ import annotations

__all__ = ["UNDEFINED", "from_sympy", "latex_listing", "lift_constants", "to_latex", "to_sympy"]

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from . import ir
from .compiled import Compiled, deep_recursion
from .errors import CallError, NCError, Span
from .from_sympy import from_sympy, lift_constants
from .options import CompileOptions
from .parse import parse
from .sympy_rules import (
    UNDEFINED,
    as_sympy,
    elementwise,
    number,
    piecewise,
    primitive_rules,
    truth,
)
from .sympy_rules import sympy_module as _sympy

MAX_INLINE_DEPTH = 200
"""Deepest nesting of inlined function calls (static recursion unrolls up to this)."""

MAX_UNROLL = 10_000
"""Most iterations of a constant-exit loop that `to_sympy` unrolls."""


# ---- nc -> SymPy -----------------------------------------------------------------------------

def to_sympy(program: Any, *, shapes: Mapping[str, Sequence[int | None]] | None = None,
             constants: str = "inline", name: str = "<program>") -> Any:
    """The SymPy expression (or matrix) an nc program computes.

    ``program`` is source text, a `compile_fn` result or an `NcModule` (its parameters are
    symbols). ``shapes`` gives the sizes of vector and matrix inputs (``{"u": (3,)}``); a
    compiled function's declared shapes are used when it has them. ``constants="inline"``
    substitutes top-level ``(define name number)`` values; ``"symbols"`` keeps their names.
    """
    if constants not in ("inline", "symbols"):
        raise CallError(f"constants= must be 'inline' or 'symbols', got {constants!r}")
    src, promote, externals, declared = _source_of(program)

    compiled = Compiled(src, CompileOptions(shapes={**declared, **dict(shapes or {})}, name=name),
                        promote=promote) if not externals else None
    with deep_recursion():
        if compiled is None:

            tree = parse(src, name=name, promote=promote, externals=externals)
            ranks = {n: 0 for n in tree.inputs}
            sizes: dict[str, Any] = dict(shapes or {})
        else:
            tree, ranks, sizes = compiled.ir, compiled.ranks, {**compiled.declared, **dict(shapes or {})}
        return _Evaluator(tree, ranks, sizes, constants == "symbols").result()


def _source_of(program: Any) -> tuple[str, tuple[str, ...], tuple[str, ...], dict[str, Any]]:
    if isinstance(program, str):
        return program, (), (), {}
    compiled = getattr(program, "_compiled", None)
    source = getattr(program, "source", None)
    if source is not None and hasattr(program, "param_names"):  # an NcModule
        return source, tuple(program.trainable_names), tuple(program.learned), {}
    if compiled is not None:
        text = compiled.ir.source_text
        return text, (), tuple(compiled.modules), dict(compiled.declared)
    raise CallError(f"to_sympy takes nc source, a compile_fn result or an nc module, got {type(program).__name__}",
                    hint="a recorded Program has lost the names and ifs: pass the source instead")


class _Evaluator:
    """Evaluates IR with SymPy scalars and numpy object arrays of SymPy scalars."""

    def __init__(self, tree: ir.SourceProgram, ranks: Mapping[str, int], sizes: Mapping[str, Any], keep: bool) -> None:
        self.sp = _sympy()
        self.tree = tree
        self.functions = {f.key: f for f in tree.functions}
        self.defines = {d.name: d for d in tree.constants}
        self.keep = keep
        self.globals: dict[str, Any] = {}
        self.depth = 0
        self.inputs = {n: self.input_value(n, ranks.get(n, 0), sizes.get(n)) for n in tree.inputs}
        self.prims = primitive_rules(self.sp)

    def input_value(self, name: str, rank: int, shape: Any) -> Any:
        if rank == 0:
            return self.sp.Symbol(name)
        if shape is None or len(shape) != rank or any(d is None for d in shape):
            raise CallError(f"to_sympy needs the size of input '{name}' (rank {rank} per example)",
                            hint=f"pass shapes={{'{name}': {(3,) * rank}}} (its per-example shape)")
        base = self.sp.IndexedBase(name)
        out = np.empty(tuple(shape), dtype=object)
        for idx in np.ndindex(*shape):
            out[idx] = base[idx]
        return out

    def result(self) -> Any:
        return as_sympy(self.sp, self.expr(self.tree.result, {}))

    def expr(self, node: ir.Expr, env: dict[Any, Any]) -> Any:
        method: Callable[[Any, dict[Any, Any]], Any] = getattr(self, "e_" + type(node).__name__)
        return method(node, env)

    def e_Const(self, node: ir.Const, env: dict[Any, Any]) -> Any:
        if node.span is not None and node.value == math.pi and node.span.source.text[node.span.start:node.span.end] == "pi":
            return self.sp.pi
        return number(self.sp, node.value)

    def e_Local(self, node: ir.Local, env: dict[Any, Any]) -> Any:
        return env[node.key]

    def e_Input(self, node: ir.Input, env: dict[Any, Any]) -> Any:
        return self.inputs[node.name]

    def e_Global(self, node: ir.Global, env: dict[Any, Any]) -> Any:
        if node.name not in self.globals:
            value = self.expr(self.defines[node.name].value, {})
            if self.keep and not isinstance(value, np.ndarray) and not getattr(value, "free_symbols", True):
                value = self.sp.Symbol(node.name)
            self.globals[node.name] = value
        return self.globals[node.name]

    def e_Let(self, node: ir.Let, env: dict[Any, Any]) -> Any:
        inner = dict(env)
        for b in node.bindings:
            inner[b.key] = self.expr(b.value, inner if node.sequential else env)
        return self.expr(node.body, inner)

    def e_Letrec(self, node: ir.Letrec, env: dict[Any, Any]) -> Any:
        return self.expr(node.body, env)  # functions are looked up by key; their bodies see params only

    def e_If(self, node: ir.If, env: dict[Any, Any]) -> Any:
        test = truth(self.sp, self.expr(node.test, env))
        if test is True or test is False:
            return self.expr(node.then if test else node.orelse, env)
        then, orelse = self.expr(node.then, env), self.expr(node.orelse, env)
        return elementwise(lambda c, a, b: piecewise(self.sp, c, a, b), test, then, orelse)

    def e_PrimCall(self, node: ir.PrimCall, env: dict[Any, Any]) -> Any:
        args = [self.expr(a, env) for a in node.args]
        rule = self.prims.get(node.prim)
        if rule is None:
            raise NCError(f"to_sympy: the primitive '{node.prim}' has no SymPy form", node.span)
        try:
            return rule(*args)
        except (ValueError, TypeError, IndexError, AttributeError, ArithmeticError, self.sp.SympifyError) as e:
            raise NCError(f"to_sympy: ({node.prim} ...) failed: {e}", node.span) from None

    def e_Call(self, node: ir.Call, env: dict[Any, Any]) -> Any:
        fn = self.functions[node.fn]
        args = [self.expr(a, env) for a in node.args]
        return self.call(fn, args, node.span)

    def call(self, fn: ir.Function, args: list[Any], span: Span | None) -> Any:
        if fn.tail_loop:
            return self.loop(fn.key, fn.params, args, fn.body, {}, span, fn.name)
        self.depth += 1
        if self.depth > MAX_INLINE_DEPTH:
            raise NCError(f"to_sympy: calls of '{fn.name}' nest more than {MAX_INLINE_DEPTH} deep "
                          "(recursion on input values has no closed form)", span)
        try:
            return self.expr(fn.body, {p.key: a for p, a in zip(fn.params, args)})
        finally:
            self.depth -= 1

    def e_Loop(self, node: ir.Loop, env: dict[Any, Any]) -> Any:
        inits = [self.expr(b.value, env) for b in node.bindings]
        return self.loop(node.key, node.bindings, inits, node.body, env, node.span, "loop")

    def loop(self, key: str, params: Sequence[ir.Binding], state: list[Any], body: ir.Expr,
             env: dict[Any, Any], span: Span | None, what: str) -> Any:
        for _ in range(MAX_UNROLL):
            inner = {**env, **{p.key: v for p, v in zip(params, state)}}
            done, value = self.tail(key, body, inner, span, what)
            if done:
                return value
            state = value
        raise NCError(f"to_sympy: '{what}' ran {MAX_UNROLL} iterations without exiting", span)

    def tail(self, key: str, node: ir.Expr, env: dict[Any, Any], span: Span | None, what: str) -> tuple[bool, Any]:
        if isinstance(node, ir.Recur) and node.key == key:
            return False, [self.expr(a, env) for a in node.args]
        if isinstance(node, ir.Let):
            inner = dict(env)
            for b in node.bindings:
                inner[b.key] = self.expr(b.value, inner if node.sequential else env)
            return self.tail(key, node.body, inner, span, what)
        if isinstance(node, ir.Letrec):
            return self.tail(key, node.body, env, span, what)
        if isinstance(node, ir.If):
            test = truth(self.sp, self.expr(node.test, env))
            if test is True or test is False:
                return self.tail(key, node.then if test else node.orelse, env, span, what)
            raise NCError(f"to_sympy: this {what} is a masked loop (its exit depends on the inputs), "
                          "which has no closed form", span,
                          hint="to_sympy unrolls loops whose exit is decided by constants only")
        return True, self.expr(node, env)

    def e_Recur(self, node: ir.Recur, env: dict[Any, Any]) -> Any:  # pragma: no cover - parser forbids
        raise NCError("to_sympy: recur outside a loop body", node.span)

    def e_Integrate(self, node: ir.Integrate, env: dict[Any, Any]) -> Any:
        raise NCError(f"to_sympy: ({node.method} ...) integrates numerically and has no closed form", node.span,
                      hint="to_sympy covers programs without integrators; show the step function instead")

    def e_External(self, node: ir.External, env: dict[Any, Any]) -> Any:
        raise NCError(f"to_sympy: '{node.name}' is a learned component (a torch module), which has no "
                      "SymPy form", node.span)


def to_latex(program: Any, *, shapes: Mapping[str, Sequence[int | None]] | None = None,
             constants: str = "symbols", name: str = "<program>") -> str:
    """The formula of an nc program as LaTeX (top-level constants by name unless ``constants="inline"``)."""
    return str(_sympy().latex(to_sympy(program, shapes=shapes, constants=constants, name=name)))


def latex_listing(src: str, *, name: str = "<program>", shapes: Mapping[str, Sequence[int | None]] | None = None) -> str:
    """``nc show FILE --latex``: the formula, then the value of each top-level numeric constant."""

    sp = _sympy()
    with deep_recursion():
        tree = parse(src, name=name)
    lines = [to_latex(src, shapes=shapes, name=name)]
    for d in tree.constants:
        if d.name in tree.used_constants:
            value = _Evaluator(tree, {}, {}, False).expr(d.value, {})
            if not isinstance(value, np.ndarray) and not getattr(value, "free_symbols", True):
                lines.append(f"{sp.latex(sp.Symbol(d.name))} = {sp.latex(value)}")
    return "\n".join(lines)


