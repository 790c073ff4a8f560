"""How each primitive of the table maps to SymPy (used by `nc.symbolic.to_sympy`)."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import reduce
from typing import Any

import numpy as np

from .errors import NCError

UNDEFINED = ("round", "truncate", "remainder", "quotient", "softplus", "logaddexp", "xlogy")
"""Primitives written as undefined SymPy functions of the same name."""


def sympy_module() -> Any:
    """The sympy package (an optional dependency: ``pip install 'nc[sympy]'``)."""
    try:
        import sympy
    except ImportError as e:  # optional dependency
        raise ImportError("nc.to_sympy/from_sympy need the 'sympy' package: pip install 'nc[sympy]'") from e
    return sympy


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


def static_int(sp: Any, v: Any, what: str) -> int:
    if isinstance(v, np.ndarray) or not getattr(v, "is_number", False) or v != int(v):
        raise ValueError(f"{what} must be an integer constant, got {v}")
    return int(v)


def as_matrix(sp: Any, a: Any) -> Any:
    if not isinstance(a, np.ndarray) or a.ndim != 2:
        raise ValueError("a matrix is needed")
    return sp.Matrix(a.tolist())


def from_matrix(m: Any) -> Any:
    out = np.empty((m.rows, m.cols), dtype=object)
    for i in range(m.rows):
        for j in range(m.cols):
            out[i, j] = m[i, j]
    return out


def as_vector(sp: Any, a: Any) -> Any:
    if not isinstance(a, np.ndarray) or a.ndim != 1:
        raise ValueError("a vector is needed")
    return a


def primitive_rules(sp: Any) -> dict[str, Callable[..., Any]]:
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
        idx: tuple[int, ...] = (static_int(sp, i, "the index of ref"),)
        if j is not None:
            idx += (static_int(sp, j, "the index of ref"),)
        return np.asarray(v, dtype=object)[idx]

    def cross(u: Any, w: Any) -> Any:
        a, b = sp.Matrix(list(as_vector(sp, u))), sp.Matrix(list(as_vector(sp, w)))
        return np.array(list(a.cross(b)), dtype=object)

    def laplacian(u: Any, dx: Any) -> Any:
        u = as_vector(sp, u)
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
        v = as_vector(sp, v)
        out = np.array([[sp.Integer(0)] * len(v) for _ in v], dtype=object)
        for i, x in enumerate(v):
            out[i, i] = x
        return out

    def cumsum(v: Any) -> Any:
        v = as_vector(sp, v)
        return np.array([sum(v[: i + 1]) for i in range(len(v))], dtype=object)

    def sized(fill: Callable[[int], Any]) -> Callable[[Any], Any]:
        return lambda n: fill(static_int(sp, n, "the size"))

    def lin(f: Callable[[Any], Any]) -> Callable[..., Any]:
        return lambda a: from_matrix(f(as_matrix(sp, a)))

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
        "roll": lambda v, k: np.roll(as_obj(v), static_int(sp, k, "the shift of roll"), axis=-1),
        "cumsum": cumsum, "laplacian1d": laplacian,
        "matmul": lambda a, b: from_matrix(as_matrix(sp, a) * as_matrix(sp, b)),
        "matvec": lambda a, v: np.array(list(as_matrix(sp, a) * sp.Matrix(list(as_vector(sp, v)))), dtype=object),
        "outer": lambda u, w: from_matrix(sp.Matrix(list(as_vector(sp, u))) * sp.Matrix(list(as_vector(sp, w))).T),
        "transpose": lambda a: as_obj(a).swapaxes(-1, -2),
        "trace": lambda a: as_matrix(sp, a).trace(),
        "det": lambda a: as_matrix(sp, a).det(),
        "inv": lin(lambda m: m.inv()),
        "solve": lambda a, b: np.array(list(as_matrix(sp, a).LUsolve(sp.Matrix(list(as_vector(sp, b))))), dtype=object),
        "diag": diag,
        "expm": lin(expm),
        "eye": sized(lambda n: from_matrix(sp.eye(n))),
        "zeros": sized(lambda n: np.array([sp.Integer(0)] * n, dtype=object)),
        "ones": sized(lambda n: np.array([sp.Integer(1)] * n, dtype=object)),
    }
    for name in ("sin", "cos", "tan", "asin", "acos", "sinh", "cosh", "tanh", "asinh", "acosh", "atanh"):
        rules[name] = ew(getattr(sp, name))
    for name in UNDEFINED:
        rules[name] = ew(sp.Function(name))
    return rules


