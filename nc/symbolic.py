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

import math
from collections.abc import Callable, Mapping, Sequence
from functools import reduce
from typing import Any

import numpy as np
import torch

from . import ir
from .errors import CallError, NCError, Span
from .writeback import value_source

MAX_INLINE_DEPTH = 200
"""Deepest nesting of inlined function calls (static recursion unrolls up to this)."""

MAX_UNROLL = 10_000
"""Most iterations of a constant-exit loop that `to_sympy` unrolls."""

UNDEFINED = ("round", "truncate", "remainder", "quotient", "softplus", "logaddexp", "xlogy")
"""Primitives written as undefined SymPy functions of the same name."""


def _sympy() -> Any:
    try:
        import sympy
    except ImportError as e:  # optional dependency
        raise ImportError("nc.to_sympy/from_sympy need the 'sympy' package: pip install 'nc[sympy]'") from e
    return sympy


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
    from .compiled import Compiled, deep_recursion
    from .options import CompileOptions

    compiled = Compiled(src, CompileOptions(shapes={**declared, **dict(shapes or {})}, name=name),
                        promote=promote) if not externals else None
    with deep_recursion():
        if compiled is None:
            from .parse import parse

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
        self.prims = _primitive_rules(self.sp)

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


def number(sp: Any, x: float) -> Any:
    if math.isfinite(x) and x == int(x) and abs(x) < 2**53:
        return sp.Integer(int(x))
    if math.isnan(x):
        return sp.nan
    if math.isinf(x):
        return sp.oo if x > 0 else -sp.oo
    return sp.Float(x)


def as_sympy(sp: Any, value: Any) -> Any:
    """A value as SymPy: a scalar, a column vector or a matrix."""
    if isinstance(value, np.ndarray):
        if value.ndim == 1:
            return sp.Matrix(list(value))
        if value.ndim == 2:
            return sp.Matrix(value.tolist())
        raise NCError(f"to_sympy: a result of {value.ndim} axes per example has no SymPy matrix form")
    return value


def elementwise(f: Callable[..., Any], *args: Any) -> Any:
    """``f`` on scalars, or broadcast over the per-example axes (numpy's rules, as nc aligns them)."""
    if not any(isinstance(a, np.ndarray) for a in args):
        return f(*args)
    arrays = np.broadcast_arrays(*[np.asarray(a, dtype=object) if isinstance(a, np.ndarray) else
                                   np.array(a, dtype=object) for a in args])
    out = np.empty(arrays[0].shape, dtype=object)
    for idx in np.ndindex(*out.shape):
        out[idx] = f(*(a[idx] for a in arrays))
    return out


def truth(sp: Any, value: Any) -> Any:
    """The condition ``value != 0`` (Python True/False when SymPy decides it)."""
    def one(v: Any) -> Any:
        if isinstance(v, sp.Piecewise) and len(v.args) == 2 and v.args[0][0] == 1 and v.args[1] == (0, True):
            cond = v.args[0][1]
        else:
            cond = sp.Ne(v, 0)
        if cond is sp.true:
            return True
        if cond is sp.false:
            return False
        return cond
    return elementwise(one, value)


def indicator(sp: Any, cond: Any) -> Any:
    """1 where ``cond`` holds, else 0 (nc's comparison results)."""
    if cond is True or cond is sp.true:
        return sp.Integer(1)
    if cond is False or cond is sp.false:
        return sp.Integer(0)
    return sp.Piecewise((1, cond), (0, True))


def piecewise(sp: Any, cond: Any, a: Any, b: Any) -> Any:
    if cond is True:
        return a
    if cond is False:
        return b
    if isinstance(b, sp.Piecewise):  # a cond: one Piecewise, not nested ones
        return sp.Piecewise((a, cond), *b.args)
    return sp.Piecewise((a, cond), (b, True))


def _static_int(sp: Any, v: Any, what: str) -> int:
    if isinstance(v, np.ndarray) or not getattr(v, "is_number", False) or v != int(v):
        raise ValueError(f"{what} must be an integer constant, got {v}")
    return int(v)


def _matrix(sp: Any, a: Any) -> Any:
    if not isinstance(a, np.ndarray) or a.ndim != 2:
        raise ValueError("a matrix is needed")
    return sp.Matrix(a.tolist())


def _from_matrix(m: Any) -> Any:
    out = np.empty((m.rows, m.cols), dtype=object)
    for i in range(m.rows):
        for j in range(m.cols):
            out[i, j] = m[i, j]
    return out


def _vector(sp: Any, a: Any) -> Any:
    if not isinstance(a, np.ndarray) or a.ndim != 1:
        raise ValueError("a vector is needed")
    return a


def _primitive_rules(sp: Any) -> dict[str, Callable[..., Any]]:
    """One SymPy rule per public primitive (aliases share the row's canonical name)."""
    from sympy.codegen.cfunctions import expm1, hypot, log1p

    def ew(f: Callable[..., Any]) -> Callable[..., Any]:
        return lambda *a: elementwise(f, *a)

    def fold(f: Callable[[Any, Any], Any], unary: Callable[[Any], Any] | None = None,
             empty: Any = None) -> Callable[..., Any]:
        def rule(*a: Any) -> Any:
            if not a:
                return empty
            if len(a) == 1:
                return elementwise(unary, a[0]) if unary is not None else a[0]
            return reduce(lambda x, y: elementwise(f, x, y), a)
        return rule

    def chain(rel: Callable[[Any, Any], Any]) -> Callable[..., Any]:
        def rule(*a: Any) -> Any:
            pairs = [elementwise(rel, x, y) for x, y in zip(a, a[1:])]
            return reduce(lambda x, y: elementwise(lambda p, q: sp.And(p, q), x, y), pairs) \
                if len(pairs) > 1 else pairs[0]
        return lambda *a: elementwise(lambda c: indicator(sp, c), rule(*a))

    def logic(f: Callable[..., Any]) -> Callable[..., Any]:
        return lambda *a: elementwise(lambda *t: indicator(sp, f(*t)), *[truth(sp, x) for x in a])

    def reduce_last(f: Callable[[list[Any]], Any]) -> Callable[[Any], Any]:
        def rule(v: Any) -> Any:
            v = np.asarray(v, dtype=object)
            if v.ndim == 1:
                return f(list(v))
            out = np.empty(v.shape[:-1], dtype=object)
            for idx in np.ndindex(*out.shape):
                out[idx] = f(list(v[idx]))
            return out
        return rule

    def norm(v: Any) -> Any:
        return reduce_last(lambda xs: sp.sqrt(sum(x**2 for x in xs)))(v)

    def ref(v: Any, i: Any, j: Any = None) -> Any:
        idx: tuple[int, ...] = (_static_int(sp, i, "the index of ref"),)
        if j is not None:
            idx += (_static_int(sp, j, "the index of ref"),)
        return np.asarray(v, dtype=object)[idx]

    def cross(u: Any, w: Any) -> Any:
        a, b = sp.Matrix(list(_vector(sp, u))), sp.Matrix(list(_vector(sp, w)))
        return np.array(list(a.cross(b)), dtype=object)

    def laplacian(u: Any, dx: Any) -> Any:
        u = _vector(sp, u)
        out = np.array([sp.Integer(0)] * len(u), dtype=object)
        for i in range(1, len(u) - 1):
            out[i] = (u[i - 1] - 2 * u[i] + u[i + 1]) / (dx * dx)
        return out

    def stack(*xs: Any) -> Any:
        return np.array(list(xs), dtype=object) if all(not isinstance(x, np.ndarray) for x in xs) \
            else np.stack([np.asarray(x, dtype=object) for x in xs])

    def expm(m: Any) -> Any:
        out = m.exp()
        if out.has(sp.I):  # complex eigenvalues: back to real functions
            out = out.applyfunc(lambda e: sp.simplify(e.rewrite(sp.cos)))
        if out.has(sp.I):
            raise ValueError("this matrix exponential has no real closed form SymPy finds")
        return out

    def diag(v: Any) -> Any:
        v = _vector(sp, v)
        out = np.array([[sp.Integer(0)] * len(v) for _ in v], dtype=object)
        for i, x in enumerate(v):
            out[i, i] = x
        return out

    def cumsum(v: Any) -> Any:
        v = _vector(sp, v)
        return np.array([sum(v[: i + 1]) for i in range(len(v))], dtype=object)

    def sized(fill: Callable[[int], Any]) -> Callable[[Any], Any]:
        return lambda n: fill(_static_int(sp, n, "the size"))

    def lin(f: Callable[[Any], Any]) -> Callable[..., Any]:
        return lambda a: _from_matrix(f(_matrix(sp, a)))

    def as_obj(a: Any) -> Any:
        return np.asarray(a, dtype=object)

    rules: dict[str, Callable[..., Any]] = {
        "+": fold(lambda x, y: x + y, empty=sp.Integer(0)),
        "-": fold(lambda x, y: x - y, lambda x: -x),
        "*": fold(lambda x, y: x * y, empty=sp.Integer(1)),
        "/": fold(lambda x, y: x / y, lambda x: 1 / x),
        "pow": ew(lambda x, y: x**y),
        "abs": ew(sp.Abs), "sign": ew(sp.sign),
        "min": fold(sp.Min), "max": fold(sp.Max),
        "modulo": ew(sp.Mod),
        "sqrt": ew(sp.sqrt), "square": ew(lambda x: x**2), "cube": ew(lambda x: x**3),
        "exp": ew(sp.exp), "expm1": ew(expm1), "log1p": ew(log1p),
        "log": lambda x, b=None: elementwise(sp.log, x) if b is None else
        elementwise(lambda p, q: sp.log(p) / sp.log(q), x, b),
        "atan": lambda y, x=None: elementwise(sp.atan, y) if x is None else elementwise(sp.atan2, y, x),
        "floor": ew(sp.floor), "ceiling": ew(sp.ceiling),
        "clamp": ew(lambda x, lo, hi: sp.Min(sp.Max(x, lo), hi)),
        "hypot": ew(hypot),
        "sigmoid": ew(lambda x: 1 / (1 + sp.exp(-x))),
        "relu": ew(lambda x: sp.Max(x, 0)),
        "erf": ew(sp.erf), "lgamma": ew(sp.loggamma),
        "=": chain(sp.Eq), "<": chain(sp.Lt), ">": chain(sp.Gt), "<=": chain(sp.Le), ">=": chain(sp.Ge),
        "and": logic(lambda *t: sp.And(*t)), "or": logic(lambda *t: sp.Or(*t)), "not": logic(sp.Not),
        "zero?": ew(lambda x: indicator(sp, sp.Eq(x, 0))),
        "positive?": ew(lambda x: indicator(sp, sp.Gt(x, 0))),
        "negative?": ew(lambda x: indicator(sp, sp.Lt(x, 0))),
        "vec": stack, "mat": stack, "ref": ref,
        "dot": lambda u, w: reduce_last(lambda xs: sum(xs))(elementwise(lambda x, y: x * y, u, w)),
        "cross": cross, "norm": norm,
        "normalize": lambda v: elementwise(lambda x, n: x / n, v, norm(v)[..., None] if np.ndim(norm(v)) else norm(v)),
        "vsum": reduce_last(lambda xs: sum(xs)), "vmean": reduce_last(lambda xs: sum(xs) / len(xs)),
        "vmin": reduce_last(lambda xs: sp.Min(*xs)), "vmax": reduce_last(lambda xs: sp.Max(*xs)),
        "vprod": reduce_last(lambda xs: sp.Mul(*xs)),
        "scale": ew(lambda s, x: s * x),
        "vlen": lambda v: sp.Integer(np.shape(v)[-1]),
        "concat": lambda *vs: np.concatenate([as_obj(v) for v in vs], axis=-1),
        "roll": lambda v, k: np.roll(as_obj(v), _static_int(sp, k, "the shift of roll"), axis=-1),
        "cumsum": cumsum, "laplacian1d": laplacian,
        "matmul": lambda a, b: _from_matrix(_matrix(sp, a) * _matrix(sp, b)),
        "matvec": lambda a, v: np.array(list(_matrix(sp, a) * sp.Matrix(list(_vector(sp, v)))), dtype=object),
        "outer": lambda u, w: _from_matrix(sp.Matrix(list(_vector(sp, u))) * sp.Matrix(list(_vector(sp, w))).T),
        "transpose": lambda a: as_obj(a).swapaxes(-1, -2),
        "trace": lambda a: _matrix(sp, a).trace(),
        "det": lambda a: _matrix(sp, a).det(),
        "inv": lin(lambda m: m.inv()),
        "solve": lambda a, b: np.array(list(_matrix(sp, a).LUsolve(sp.Matrix(list(_vector(sp, b))))), dtype=object),
        "diag": diag,
        "expm": lin(expm),
        "eye": sized(lambda n: _from_matrix(sp.eye(n))),
        "zeros": sized(lambda n: np.array([sp.Integer(0)] * n, dtype=object)),
        "ones": sized(lambda n: np.array([sp.Integer(1)] * n, dtype=object)),
    }
    for name in ("sin", "cos", "tan", "asin", "acos", "sinh", "cosh", "tanh", "asinh", "acosh", "atanh"):
        rules[name] = ew(getattr(sp, name))
    for name in UNDEFINED:
        rules[name] = ew(sp.Function(name))
    return rules


def to_latex(program: Any, *, shapes: Mapping[str, Sequence[int | None]] | None = None,
             constants: str = "symbols", name: str = "<program>") -> str:
    """The formula of an nc program as LaTeX (top-level constants by name unless ``constants="inline"``)."""
    return str(_sympy().latex(to_sympy(program, shapes=shapes, constants=constants, name=name)))


def latex_listing(src: str, *, name: str = "<program>", shapes: Mapping[str, Sequence[int | None]] | None = None) -> str:
    """``nc show FILE --latex``: the formula, then the value of each top-level numeric constant."""
    from .compiled import deep_recursion
    from .parse import parse

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


# ---- SymPy -> nc -----------------------------------------------------------------------------

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
        from .forms import RESERVED
        from .reader import NUMBER_LIKE_RE, SYMBOL_RE

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
            from .primitives import lookup

            candidate = str(e.func)
            prim = lookup(candidate)
            lo, hi = prim.arity if prim is not None else (0, 0)
            if prim is None or len(e.args) < lo or (hi is not None and len(e.args) > hi):
                raise CallError(f"from_sympy: the function {e.func} has no nc primitive")
            name = candidate
        return f"({name} " + " ".join(self.expr(a) for a in e.args) + ")"
