"""SymPy expressions as nc source: `from_sympy` and `lift_constants` (PySR output in, nc out)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from .errors import CallError
from .forms import RESERVED
from .primitives import lookup
from .reader import NUMBER_LIKE_RE, SYMBOL_RE
from .sympy_rules import sympy_module as _sympy
from .writeback import value_source


def lift_constants(expr: Any, *, prefix: str = "c") -> tuple[Any, dict[str, float]]:
    """``expr`` with each float replaced by a symbol ``c0``, ``c1``, ... and those symbols' values.

    Integers and rationals (exponents such as 2, the 1/2 of a square root) stay as they are.
    """
    sp = _sympy()
    values: dict[str, float] = {}
    mapping = {}
    for f in sorted(expr.atoms(sp.Float), key=lambda a: (float(a), str(a))):
        name = f"{prefix}{len(values)}"
        values[name] = float(f)
        mapping[f] = sp.Symbol(name)
    return expr.xreplace(mapping), values


def from_sympy(expr: Any, *, params: Mapping[str, Any] | None = None, inputs: Sequence[str] | None = None) -> str:
    """nc source computing the SymPy expression (or matrix) ``expr``.

    ``params`` maps names to values, written as top-level ``(define name value)`` constants
    (``nc.compile(src, trainable=list(params))`` makes them parameters). ``inputs`` fixes the
    order (and the presence) of the inputs by making the result a ``(lambda (inputs ...) ...)``;
    without it the inputs are the free names in order of first occurrence in the written source.
    Symbols are names; ``u[i]`` (an ``Indexed``) is ``(ref u i)``.
    """
    sp = _sympy()
    writer = _Writer(sp)
    body = writer.expr(sp.sympify(expr))
    lines = []
    for name, value in (params or {}).items():
        writer.check_name(name)
        lines.append(f"(define {name} {_value_source(name, value)})")
    if inputs is not None:
        for n in inputs:
            writer.check_name(n)
        body = f"(lambda ({' '.join(inputs)})\n  {body})"
    lines.append(body)
    return "\n".join(lines) + "\n"


def _value_source(name: str, value: Any) -> str:
    if not hasattr(value, "detach"):
        value = torch.tensor(float(value), dtype=torch.float64)
    return value_source(name, value)


class _Writer:
    """SymPy expression to nc source text."""

    def __init__(self, sp: Any) -> None:
        self.sp = sp
        from sympy.codegen.cfunctions import expm1, hypot, log1p

        self.functions: dict[Any, str] = {
            sp.sin: "sin", sp.cos: "cos", sp.tan: "tan", sp.asin: "asin", sp.acos: "acos", sp.atan: "atan",
            sp.sinh: "sinh", sp.cosh: "cosh", sp.tanh: "tanh", sp.asinh: "asinh", sp.acosh: "acosh",
            sp.atanh: "atanh", sp.exp: "exp", sp.log: "log", sp.Abs: "abs", sp.sign: "sign",
            sp.floor: "floor", sp.ceiling: "ceiling", sp.erf: "erf", sp.loggamma: "lgamma",
            sp.Mod: "modulo", sp.atan2: "atan",
            expm1: "expm1", log1p: "log1p", hypot: "hypot",
        }

    def check_name(self, name: str) -> None:

        if not SYMBOL_RE.match(name) or NUMBER_LIKE_RE.match(name) or "." in name or name in RESERVED:
            raise CallError(f"from_sympy: '{name}' is not an nc name",
                            hint="names use letters, digits and ! $ % & * / : < = > ? ^ _ ~ + - @, "
                                 "do not start like a number and are not special forms")

    def expr(self, e: Any) -> str:
        sp = self.sp
        if isinstance(e, sp.MatrixBase):
            rows = [[self.expr(e[i, j]) for j in range(e.cols)] for i in range(e.rows)]
            if e.cols == 1:
                return "(vec " + " ".join(r[0] for r in rows) + ")"
            return "(mat " + " ".join("(vec " + " ".join(r) + ")" for r in rows) + ")"
        if e is sp.I or isinstance(e, sp.Number) and not e.is_real:
            raise CallError(f"from_sympy: {e} is not a real number", hint="nc computes with real numbers only")
        if e is sp.true or e is sp.false:
            return "1" if e is sp.true else "0"
        if isinstance(e, sp.Number) or isinstance(e, sp.NumberSymbol) or e in (sp.E, sp.pi):
            return self.number(e)
        if isinstance(e, sp.Symbol):
            self.check_name(e.name)
            return e.name
        if isinstance(e, sp.Indexed):
            self.check_name(str(e.base))
            return f"(ref {e.base} {' '.join(self.expr(i) for i in e.indices)})"
        if isinstance(e, sp.Add):
            return "(+ " + " ".join(self.expr(a) for a in e.as_ordered_terms()) + ")"
        if isinstance(e, sp.Mul):
            return self.mul(e)
        if isinstance(e, sp.Pow):
            return self.pow(e.base, e.exp)
        if isinstance(e, sp.Piecewise):
            return self.piecewise(list(e.args))
        if isinstance(e, sp.core.relational.Relational):
            ops = {sp.Eq: "=", sp.Lt: "<", sp.Gt: ">", sp.Le: "<=", sp.Ge: ">="}
            if isinstance(e, sp.Ne):
                return f"(not (= {self.expr(e.lhs)} {self.expr(e.rhs)}))"
            return f"({ops[type(e)]} {self.expr(e.lhs)} {self.expr(e.rhs)})"
        if isinstance(e, (sp.And, sp.Or, sp.Not)):
            op = {sp.And: "and", sp.Or: "or", sp.Not: "not"}[type(e)]
            return f"({op} " + " ".join(self.expr(a) for a in e.args) + ")"
        if isinstance(e, (sp.Min, sp.Max)):
            return f"({'min' if isinstance(e, sp.Min) else 'max'} " + " ".join(self.expr(a) for a in e.args) + ")"
        if isinstance(e, sp.Function):
            return self.function(e)
        raise CallError(f"from_sympy: {type(e).__name__} ({e}) has no nc form")

    def number(self, e: Any) -> str:
        sp = self.sp
        if e is sp.pi:
            return "pi"
        if e is sp.E:
            return "(exp 1)"
        if e is sp.nan:
            return "(/ 0 0)"
        if e is sp.oo or e is -sp.oo:
            return "(/ 1 0)" if e is sp.oo else "(/ -1 0)"
        if isinstance(e, sp.Integer):
            return str(int(e))
        if isinstance(e, sp.Rational):
            return f"(/ {e.p} {e.q})"
        if e.is_real:
            return repr(float(e))
        raise CallError(f"from_sympy: {e} is not a real number", hint="nc computes with real numbers only")

    def mul(self, e: Any) -> str:
        sp = self.sp
        coeff, rest = e.as_coeff_Mul()
        if coeff == -1:
            return f"(- {self.expr(rest)})"
        num, den = [], []
        for f in e.as_ordered_factors():
            if isinstance(f, sp.Pow) and f.exp.is_number and f.exp < 0:
                den.append(self.pow(f.base, -f.exp))
            elif isinstance(f, sp.Rational) and not isinstance(f, sp.Integer) and f.p == 1:
                den.append(str(f.q))
            else:
                num.append(self.expr(f))
        top = num[0] if len(num) == 1 else "(* " + " ".join(num) + ")" if num else "1"
        if not den:
            return top
        bottom = den[0] if len(den) == 1 else "(* " + " ".join(den) + ")"
        return f"(/ {top} {bottom})"

    def pow(self, base: Any, exp: Any) -> str:
        sp = self.sp
        b = self.expr(base)
        if exp == 1:
            return b
        if exp == sp.Rational(1, 2):
            return f"(sqrt {b})"
        if exp == -1:
            return f"(/ {b})"
        if exp == sp.Rational(-1, 2):
            return f"(/ (sqrt {b}))"
        return f"(pow {b} {self.expr(exp)})"

    def piecewise(self, pieces: list[Any]) -> str:
        value, cond = pieces[0]
        if cond is self.sp.true:
            return self.expr(value)
        rest = self.piecewise(pieces[1:]) if len(pieces) > 1 else "(/ 0 0)"
        return f"(if {self.expr(cond)} {self.expr(value)} {rest})"

    def function(self, e: Any) -> str:
        name = self.functions.get(type(e)) or self.functions.get(e.func)
        if not name:

            candidate = str(e.func)
            prim = lookup(candidate)
            lo, hi = prim.arity if prim is not None else (0, 0)
            if prim is None or len(e.args) < lo or (hi is not None and len(e.args) > hi):
                raise CallError(f"from_sympy: the function {e.func} has no nc primitive")
            name = candidate
        return f"({name} " + " ".join(self.expr(a) for a in e.args) + ")"
