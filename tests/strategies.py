"""Hypothesis strategies for random well-formed nc programs, for property-based tests.

Like `refeval`, this module imports nothing from `nc`.

Programs
    `programs()` draws `(src, input_names)`: zero or more top-level `define`s (constants and
    first-order functions, in random order, so forward references occur) and one result
    expression over scalar inputs `x y z` (and 3-vector inputs `u w` with `vectors=True`),
    sometimes written as a `lambda` result. Expressions are built bottom-up to a depth bound
    from the table `GEN_PRIMITIVES` and the forms `let`, `let*`, `if`, `cond`, `[...]`/`vec`,
    `ref`, `roll`, `matvec`/`mat`, `det` and calls of the defined functions. `input_names` are
    in LANGUAGE.md order (computed by `refeval.inputs_of`, and checked against the inputs the
    generator itself tracked). Vector inputs must be declared to the compiler:
    `input_shapes(names)` gives the `shapes=` argument.

Domains by construction
    Every generated expression carries a rigorous interval enclosing its value for inputs in
    [-2, 2]. Each argument position of a primitive has a `Domain`: when the argument's interval
    is not inside it, the argument is wrapped in a form whose range is, e.g. `(sqrt (+ 0.5
    (square e)))`, `(log (+ 1 (square e)))`, `(asin (tanh e))`, `(/ n (+ 1.5 (square e)))`,
    `(exp (* 3 (tanh e)))`. Arguments of unrestricted primitives are kept within
    [-CAP, CAP] (wrapped as `(* 2 (tanh e))` otherwise), so every value stays finite and of
    moderate size (below about 2e5).

Conditioning rule (`conditioning_ok`)
    A sample `(src, args)` is well-conditioned when, evaluated with `refeval` in float64,
    (1) the output is finite and every element is at most 1e8 in magnitude, and
    (2) for each of three relative perturbations of the inputs, each input element `a` moved
        to `a * (1 + s * 1e-7)` with the sign pattern `s` all +1, all -1, and alternating
        +1/-1 over the flattened inputs in order, the output keeps its shape, stays finite,
        and every element changes by at most 1e-3 relative to its unperturbed value
        (`|f' - f| <= 1e-3 * |f|`, so an element that is exactly 0 must stay exactly 0).
    That bounds the relative condition number by about 1e4 and catches samples next to a
    branch switch of `if`, a jump of `floor`/`sign`, or a cancellation, where the compiled
    program and the reference can legitimately differ by more than a few ulp amplified.
    An input that is exactly 0 is not moved: it is exact in both implementations.
    Property tests should skip samples for which it is False (`hypothesis.assume`).

Fuzzing
    `mutated_programs()` draws a valid program and applies 1 to 4 random textual mutations
    (deleting, inserting or duplicating characters and tokens, swapping brackets, inserting
    random unicode or stray syntax, mangling numbers, truncating, nesting deeply).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import refeval
from hypothesis import strategies as st

__all__ = [
    "CAP",
    "GEN_BY_MAKERS",
    "GEN_PRIMITIVES",
    "NOT_GENERATED",
    "INPUT_RANGE",
    "SCALAR_INPUTS",
    "VECTOR_INPUTS",
    "GenPrim",
    "Iv",
    "conditioning_ok",
    "input_shapes",
    "inputs",
    "mutated_programs",
    "programs",
]

SCALAR_INPUTS = ("x", "y", "z")
VECTOR_INPUTS = {"u": 3, "w": 3}
INPUT_RANGE = (-2.0, 2.0)
CAP = 30.0

Draw = Callable[[st.SearchStrategy[Any]], Any]

# ----------------------------------------------------------------------------------------------
# Intervals


@dataclass(frozen=True)
class Iv:
    """A closed interval [lo, hi] that encloses a value (every element, for a vector)."""

    lo: float
    hi: float

    def mag(self) -> float:
        return max(abs(self.lo), abs(self.hi))

    def inside(self, lo: float, hi: float) -> bool:
        return lo <= self.lo and self.hi <= hi

    def hull(self, other: Iv) -> Iv:
        return Iv(min(self.lo, other.lo), max(self.hi, other.hi))


def _pad(lo: float, hi: float, clip: tuple[float, float] = (-math.inf, math.inf)) -> Iv:
    """Widen [lo, hi] by a little for rounding, then intersect with a known range."""
    lo, hi = lo - 1e-9 * abs(lo) - 1e-12, hi + 1e-9 * abs(hi) + 1e-12
    return Iv(max(lo, clip[0]), min(hi, clip[1]))


def _mono(f: Callable[[float], float], clip: tuple[float, float] = (-math.inf, math.inf)) -> Callable[..., Iv]:
    """Interval rule of a monotone (increasing or decreasing) unary function."""

    def rule(a: Iv) -> Iv:
        ends = (f(a.lo), f(a.hi))
        return _pad(min(ends), max(ends), clip)

    return rule


def _even(f: Callable[[float], float]) -> Callable[..., Iv]:
    """Interval rule of an even function increasing on [0, inf)."""

    def rule(a: Iv) -> Iv:
        if a.lo <= 0 <= a.hi:  # f(0) is the exact minimum
            return Iv(f(0.0), _pad(0.0, max(f(a.lo), f(a.hi))).hi)
        return _mono(f)(a)

    return rule


def _corners(op: Callable[[float, float], float]) -> Callable[..., Iv]:
    """Interval rule of a binary function monotone in each argument, folded left."""

    def rule(*ivs: Iv) -> Iv:
        acc = ivs[0]
        for b in ivs[1:]:
            vals = [op(p, q) for p in (acc.lo, acc.hi) for q in (b.lo, b.hi)]
            acc = _pad(min(vals), max(vals))
        return acc

    return rule


def _const(lo: float, hi: float) -> Callable[..., Iv]:
    return lambda *ivs: Iv(lo, hi)


def _neg_rule(*ivs: Iv) -> Iv:
    return Iv(-ivs[0].hi, -ivs[0].lo) if len(ivs) == 1 else _corners(lambda p, q: p - q)(*ivs)


def _sym(scale: float, rule: Callable[..., Iv]) -> Callable[..., Iv]:
    """Interval [-scale*m, scale*m] where m bounds the magnitude of `rule`'s interval."""
    return lambda *ivs: _pad(-scale * rule(*ivs).mag(), scale * rule(*ivs).mag())


def _times(k: float, rule: Callable[..., Iv]) -> Callable[..., Iv]:
    """Sum of k values each in `rule`'s interval."""
    return lambda *ivs: _pad(k * rule(*ivs).lo, k * rule(*ivs).hi)


def _ident(a: Iv, *rest: Iv) -> Iv:
    return a


_add = _corners(lambda p, q: p + q)
_mul = _corners(lambda p, q: p * q)
_div = _corners(lambda p, q: p / q)
_min = _corners(min)
_max = _corners(max)

# ----------------------------------------------------------------------------------------------
# Generated expressions and domains


@dataclass(frozen=True)
class Ex:
    """A generated expression: source, value interval, vector or scalar, inputs used."""

    src: str
    iv: Iv
    vector: bool = False
    free: frozenset[str] = frozenset()


def _node(head: str, args: Sequence[Ex], iv: Iv, vector: bool | None = None) -> Ex:
    """The call `(head args...)`."""
    vector = any(a.vector for a in args) if vector is None else vector
    free = frozenset().union(*(a.free for a in args))
    return Ex(f"({head} {' '.join(a.src for a in args)})", iv, vector, free)


def _num(v: float) -> str:
    return str(int(v)) if v == int(v) else repr(v)


def _w_square(c: float) -> Callable[[Ex], Ex]:
    """Wrap e as `(+ c (square e))`, a value in [c, c + m^2]."""

    def wrap(e: Ex) -> Ex:
        sq = Ex(f"(square {e.src})", _even(lambda v: v * v)(e.iv), e.vector, e.free)
        if c == 0:
            return sq
        return _node("+", [Ex(_num(c), Iv(c, c)), sq], Iv(c, _pad(c, c + sq.iv.hi).hi))

    return wrap


def _w_tanh(c: float, s: float) -> Callable[[Ex], Ex]:
    """Wrap e as `(+ c (* s (tanh e)))`, a value in [c - s, c + s]."""

    def wrap(e: Ex) -> Ex:
        src = f"(tanh {e.src})" if s == 1 else f"(* {_num(s)} (tanh {e.src}))"
        src = src if c == 0 else f"(+ {_num(c)} {src})"
        return Ex(src, Iv(c - s, c + s), e.vector, e.free)  # exact: |s * tanh| <= s in floats

    return wrap


def _w_offset_vector(e: Ex) -> Ex:
    """Wrap a vector e as `(+ e [0 0 K])` with K > its bound, so its norm is at least 1."""
    k = _num(float(math.ceil(e.iv.mag()) + 1))
    return Ex(f"(+ {e.src} [0 0 {k}])", _pad(e.iv.lo, e.iv.hi + float(k)), True, e.free)


@dataclass(frozen=True)
class Domain:
    """Where an argument must lie: a test on its interval, and a wrapper that ensures it."""

    ok: Callable[[Iv], bool]
    wrap: Callable[[Ex], Ex]

    def fit(self, e: Ex) -> Ex:
        return e if self.ok(e.iv) else self.wrap(e)


def _within(lo: float, hi: float, wrap: Callable[[Ex], Ex]) -> Domain:
    return Domain(lambda iv: iv.inside(lo, hi), wrap)


ANY = _within(-CAP, CAP, _w_tanh(0, 2))
PARAM = _within(*INPUT_RANGE, _w_tanh(0, 2))
NONNEG = _within(0.0, 1e6, _w_square(0.5))
POS = _within(1e-2, 1e6, _w_square(1.0))
LOG1P = _within(-0.9, 1e6, _w_square(0.0))
LOG_BASE = _within(1.5, 1e6, _w_square(1.5))
ACOSH = _within(1.0, 1e6, _w_square(1.5))
UNIT = _within(-1.0, 1.0, _w_tanh(0, 1))
ATANH = _within(-0.95, 0.95, _w_tanh(0, 0.9))
EXP_ARG = _within(-4.0, 4.0, _w_tanh(0, 3))
TAN_ARG = _within(-1.2, 1.2, _w_tanh(0, 1.2))
LGAMMA_ARG = _within(1.5, 8.0, _w_tanh(3.5, 2))
POW_BASE = _within(0.25, 4.0, _w_tanh(1.25, 1))
POW_EXP = _within(-3.0, 3.0, _w_tanh(0, 2))
DENOM = Domain(lambda iv: (iv.lo >= 0.5 or iv.hi <= -0.5) and iv.mag() <= 1e6, _w_square(1.5))
NONZERO_VEC = Domain(lambda iv: (iv.lo >= 0.5 or iv.hi <= -0.5) and iv.mag() <= 1e6, _w_offset_vector)

# ----------------------------------------------------------------------------------------------
# The table of primitives the generator uses


@dataclass(frozen=True)
class GenPrim:
    """One generator row: names (aliases), arity range, argument domains, interval rule.

    `domains[i]` is the domain of argument i (the last one repeats for variadic rows). `sig`
    is None for elementwise primitives (any mix of scalars and vectors), else e.g. "vv>s" (two
    vectors to a scalar). `smooth` is False for piecewise-constant or jumping primitives.
    """

    names: tuple[str, ...]
    arity: tuple[int, int]
    domains: tuple[Domain, ...]
    out: Callable[..., Iv]
    smooth: bool = True
    sig: str | None = None

    def domain(self, i: int) -> Domain:
        return self.domains[min(i, len(self.domains) - 1)]


def _p(names: str, arity: int | tuple[int, int], domains: Domain | tuple[Domain, ...],
       out: Callable[..., Iv], smooth: bool = True, sig: str | None = None) -> GenPrim:
    ar = (arity, arity) if isinstance(arity, int) else arity
    doms = domains if isinstance(domains, tuple) else (domains,)
    return GenPrim(tuple(names.split()), ar, doms, out, smooth, sig)


_CMP = _const(0.0, 1.0)
_PI = math.pi

GEN_PRIMITIVES: tuple[GenPrim, ...] = (
    _p("+", (1, 3), ANY, _add),
    _p("-", (1, 3), ANY, _neg_rule),
    _p("*", (1, 3), ANY, _mul),
    _p("/", 1, DENOM, lambda a: _div(Iv(1.0, 1.0), a)),
    _p("/", 2, (ANY, DENOM), _div),
    _p("pow expt", 2, (POW_BASE, POW_EXP), _corners(lambda p, q: p**q)),
    _p("abs", 1, ANY, _even(abs)),
    _p("sign", 1, ANY, _const(-1.0, 1.0), smooth=False),
    _p("min", (1, 3), ANY, _min),
    _p("max", (1, 3), ANY, _max),
    _p("modulo remainder", 2, (ANY, DENOM), lambda a, b: _pad(-b.mag(), b.mag()), smooth=False),
    _p("quotient", 2, (ANY, DENOM), _corners(lambda p, q: float(np.trunc(p / q))), smooth=False),
    _p("sqrt", 1, NONNEG, _mono(math.sqrt)),
    _p("square", 1, ANY, _even(lambda v: v * v)),
    _p("cube", 1, ANY, _mono(lambda v: v * v * v)),
    _p("exp", 1, EXP_ARG, _mono(math.exp)),
    _p("expm1", 1, EXP_ARG, _mono(math.expm1)),
    _p("log1p", 1, LOG1P, _mono(math.log1p)),
    _p("log", 1, POS, _mono(math.log)),
    _p("log", 2, (POS, LOG_BASE), _corners(lambda p, q: math.log(p) / math.log(q))),
    _p("sin cos", 1, ANY, _const(-1.0, 1.0)),
    _p("tan", 1, TAN_ARG, _mono(math.tan)),
    _p("asin", 1, UNIT, _mono(math.asin, (-_PI / 2, _PI / 2))),
    _p("acos", 1, UNIT, _mono(math.acos, (0.0, _PI))),
    _p("atan", 1, ANY, _mono(math.atan, (-_PI / 2, _PI / 2))),
    # x kept positive: at x <= 0 the result jumps by 2 pi with the sign of a zero y, which two
    # correct evaluators may compute differently (cross(u, u) gives +0 in one, -0 in the other)
    _p("atan", 2, (ANY, POS), _const(-_PI / 2, _PI / 2), smooth=False),
    _p("sinh", 1, EXP_ARG, _mono(math.sinh)),
    _p("cosh", 1, EXP_ARG, _even(math.cosh)),
    _p("tanh", 1, ANY, _mono(math.tanh, (-1.0, 1.0))),
    _p("asinh", 1, ANY, _mono(math.asinh)),
    _p("acosh", 1, ACOSH, _mono(math.acosh)),
    _p("atanh", 1, ATANH, _mono(math.atanh)),
    _p("floor", 1, ANY, _mono(math.floor), smooth=False),
    _p("ceiling", 1, ANY, _mono(math.ceil), smooth=False),
    _p("round", 1, ANY, _mono(round), smooth=False),
    _p("truncate", 1, ANY, _mono(math.trunc), smooth=False),
    _p("clamp", 3, ANY, lambda x, lo, hi: _min(_max(x, lo), hi)),
    _p("hypot", 2, ANY, lambda a, b: _pad(0.0, math.hypot(a.mag(), b.mag()))),
    _p("logaddexp", 2, ANY, _corners(lambda p, q: float(np.logaddexp(p, q)))),
    _p("xlogy", 2, (ANY, POS), _corners(lambda p, q: p * math.log(q))),
    _p("sigmoid", 1, ANY, _mono(lambda v: 1 / (1 + math.exp(-v)), (0.0, 1.0))),
    _p("softplus", 1, ANY, _mono(lambda v: max(v, 0.0) + math.log1p(math.exp(-abs(v))), (0.0, math.inf))),
    _p("relu", 1, ANY, _mono(lambda v: max(v, 0.0))),
    _p("erf", 1, ANY, _mono(math.erf, (-1.0, 1.0))),
    _p("lgamma", 1, LGAMMA_ARG, _mono(math.lgamma)),
    _p("= < > <= >=", 2, ANY, _CMP, smooth=False),
    _p("zero? positive? negative? not", 1, ANY, _CMP, smooth=False),
    _p("and or", 2, ANY, _CMP, smooth=False),
    # vectors
    _p("dot", 2, ANY, _times(3, _mul), sig="vv>s"),
    _p("norm", 1, ANY, lambda a: _pad(0.0, math.sqrt(3) * a.mag()), sig="v>s"),
    _p("vsum", 1, ANY, _times(3, _ident), sig="v>s"),
    _p("vmean vmin vmax", 1, ANY, _ident, sig="v>s"),
    _p("vprod", 1, ANY, lambda a: _mul(a, a, a), sig="v>s"),
    _p("vlen vector-length", 1, ANY, _const(3.0, 3.0), sig="v>s"),
    _p("cross", 2, ANY, _sym(2, _mul), sig="vv>v"),
    _p("scale", 2, ANY, _mul, sig="sv>v"),
    _p("normalize", 1, NONZERO_VEC, _const(-1.0 - 1e-9, 1.0 + 1e-9), sig="v>v"),
    _p("cumsum", 1, ANY, lambda a: _pad(min(a.lo, 3 * a.lo), max(a.hi, 3 * a.hi)), sig="v>v"),
)

# Primitives written by their own makers below, whose arguments are not drawn by domain.
GEN_BY_MAKERS: tuple[str, ...] = ("vec", "ref", "vector-ref", "mat", "det", "roll", "matvec")

# Public primitives the generator never writes, and why (tests/test_table_coverage.py requires
# every public name to be generated or listed here).
NOT_GENERATED: dict[str, str] = {
    "concat": "changes the vector length; generated vectors all have length 3",
    "laplacian1d": "second differences over dx^2 blow intervals up past any useful bound",
    "matmul": "matrices appear only inside det and matvec (no matrix-valued expressions)",
    "outer": "matrix-valued",
    "transpose": "matrix-valued",
    "trace": "takes a matrix; matrices are generated only inside det and matvec",
    "inv": "ill-conditioned on generated matrices (see conditioning_ok for det)",
    "solve": "ill-conditioned on generated matrices",
    "diag": "matrix-valued",
    "expm": "takes a matrix; its interval has no cheap bound",
    "eye": "matrix-valued constant",
    "zeros": "constant; the property tests need input-dependent programs",
    "ones": "constant; the property tests need input-dependent programs",
}

# ----------------------------------------------------------------------------------------------
# Generation context

LET_NAMES = ("a", "b", "c", "t0", "t1", "g/L", "v->x", "theta_dot", "dx2", "k!", "x", "y", "pi")
CONST_NAMES = ("k", "G", "c0", "m/s")
FUNC_NAMES = ("f", "g", "inv-square", "h2")
PARAM_NAMES = ("a", "b", "x", "s")
LITERALS = ("0", "1", "2", "-1", "3", "0.5", ".5", "-.25", "+4", "1e0", "2E-1", "-2.5e-1", "#t", "#f", "10")


@dataclass(frozen=True)
class Var:
    """A name in scope: its interval, whether a vector, and the inputs a reference uses."""

    iv: Iv
    vector: bool
    free: frozenset[str]


@dataclass(frozen=True)
class Fn:
    """A generated top-level function: name, parameter count, inputs used, result interval."""

    name: str
    nparams: int
    free: frozenset[str]
    iv: Iv


@dataclass(frozen=True)
class Ctx:
    """What an expression may use: names in scope, functions, and options."""

    env: tuple[tuple[str, Var], ...]
    funcs: tuple[Fn, ...] = ()
    vectors: bool = False
    smooth: bool = False

    def bind(self, name: str, var: Var) -> Ctx:
        return replace(self, env=tuple((n, v) for n, v in self.env if n != name) + ((name, var),))

    def names(self, vector: bool) -> list[str]:
        return [n for n, v in self.env if v.vector == vector]

    def var(self, name: str) -> Var:
        return dict(self.env)[name]


def _input_ctx(vectors: bool, smooth: bool) -> Ctx:
    env = [(n, Var(Iv(*INPUT_RANGE), False, frozenset({n}))) for n in SCALAR_INPUTS]
    if vectors:
        env += [(n, Var(Iv(*INPUT_RANGE), True, frozenset({n}))) for n in VECTOR_INPUTS]
    env.append(("pi", Var(_pad(math.pi, math.pi), False, frozenset())))
    return Ctx(tuple(env), (), vectors, smooth)


# ----------------------------------------------------------------------------------------------
# Leaves


def _literal() -> st.SearchStrategy[Ex]:
    text = st.one_of(st.sampled_from(LITERALS), st.floats(-3, 3, allow_nan=False).map(repr))
    return text.map(lambda s: Ex(s, _lit_iv(s)))


def _lit_iv(s: str) -> Iv:
    v = {"#t": 1.0, "#f": 0.0}.get(s)
    v = float(s) if v is None else v
    return Iv(v, v)


@st.composite
def _vec_of(draw: Draw, parts: list[Ex]) -> Ex:
    """`[a b c]` or `(vec a b c)` of scalar expressions."""
    iv = parts[0].iv.hull(parts[1].iv).hull(parts[2].iv)
    if draw(st.booleans()):
        free = frozenset().union(*(p.free for p in parts))
        return Ex("[" + " ".join(p.src for p in parts) + "]", iv, True, free)
    return _node("vec", parts, iv, True)


@st.composite
def _leaf(draw: Draw, ctx: Ctx, vector: bool) -> Ex:
    names = ctx.names(vector)
    if names and draw(st.integers(0, 2)) > 0:
        name = draw(st.sampled_from(names))
        var = ctx.var(name)
        return Ex(name, var.iv, vector, var.free)
    if not vector:
        return draw(_literal())
    return draw(_vec_of([draw(_literal()) for _ in range(3)]))


# ----------------------------------------------------------------------------------------------
# Expressions


@st.composite
def _expr(draw: Draw, ctx: Ctx, depth: int, vector: bool) -> Ex:
    """An expression of at most `depth` levels of calls and forms."""
    if depth <= 0 or draw(st.integers(0, 3)) == 0:
        return draw(_leaf(ctx, vector))
    makers = [m for m in (_VECTOR_MAKERS if vector else _SCALAR_MAKERS) if m.usable(ctx)]
    maker = draw(st.sampled_from(makers))
    return draw(maker.make(ctx, depth - 1, vector))


def _rows(ctx: Ctx, vector: bool) -> tuple[list[GenPrim], list[GenPrim]]:
    """Usable rows: the elementwise ones, and the vector ones giving a `vector` result."""
    rows = [r for r in GEN_PRIMITIVES if r.smooth or not ctx.smooth]
    want = ">v" if vector else ">s"
    vec_rows = [r for r in rows if ctx.vectors and r.sig is not None and r.sig.endswith(want)]
    return [r for r in rows if r.sig is None], vec_rows


@st.composite
def _arg_kinds(draw: Draw, row: GenPrim, n: int, vector: bool) -> list[bool]:
    if row.sig is not None:
        return [k == "v" for k in row.sig.split(">")[0]]
    if not vector:
        return [False] * n
    kinds = [draw(st.integers(0, 2)) > 0 for _ in range(n)]
    return kinds if any(kinds) else [True] + kinds[1:]


@st.composite
def _prim_call(draw: Draw, ctx: Ctx, depth: int, vector: bool) -> Ex:
    """`(prim args...)` for a row of GEN_PRIMITIVES, each argument fitted to its domain."""
    elementwise, vec_rows = _rows(ctx, vector)
    row = draw(st.sampled_from(vec_rows if vec_rows and draw(st.booleans()) else elementwise))
    n = draw(st.integers(*row.arity))
    kinds = draw(_arg_kinds(row, n, vector))
    args = [row.domain(i).fit(draw(_expr(ctx, depth, k))) for i, k in enumerate(kinds)]
    name = draw(st.sampled_from(row.names))
    return _node(name, args, row.out(*(a.iv for a in args)), vector)


@st.composite
def _test(draw: Draw, ctx: Ctx, depth: int) -> Ex:
    """A scalar truth value: a comparison, possibly combined with and/or/not."""
    a, b = (ANY.fit(draw(_expr(ctx, depth, False))) for _ in range(2))
    cmp = _node(draw(st.sampled_from(["<", ">", "<=", ">=", "="])), [a, b], _CMP(), False)
    kind = draw(st.integers(0, 5))
    if kind == 0:
        return _node(draw(st.sampled_from(["positive?", "negative?"])), [a], _CMP(), False)
    if kind == 1:
        return _node("not", [cmp], _CMP(), False)
    if kind == 2:
        other = draw(_test(ctx, depth - 1)) if depth > 0 else cmp
        return _node(draw(st.sampled_from(["and", "or"])), [cmp, other], _CMP(), False)
    return cmp


@st.composite
def _if(draw: Draw, ctx: Ctx, depth: int, vector: bool) -> Ex:
    """`(if test then else)`."""
    test = draw(_test(ctx, depth))
    a, b = (draw(_expr(ctx, depth, vector)) for _ in range(2))
    return _node("if", [test, a, b], a.iv.hull(b.iv), vector)


@st.composite
def _cond(draw: Draw, ctx: Ctx, depth: int, vector: bool) -> Ex:
    """`(cond (test e) ... (else e))`."""
    n = draw(st.integers(1, 2))
    tests = [draw(_test(ctx, depth)) for _ in range(n)]
    values = [draw(_expr(ctx, depth, vector)) for _ in range(n + 1)]
    clauses = [f"({t.src} {v.src})" for t, v in zip(tests, values)] + [f"(else {values[-1].src})"]
    iv = values[0].iv
    for v in values[1:]:
        iv = iv.hull(v.iv)
    free = frozenset().union(*(e.free for e in tests + values))
    return Ex(f"(cond {' '.join(clauses)})", iv, vector, free)


@st.composite
def _let(draw: Draw, ctx: Ctx, depth: int, vector: bool, star: bool = False) -> Ex:
    """`(let ((n e) ...) body)` or `(let* ...)` with distinct names."""
    names = draw(st.lists(st.sampled_from(LET_NAMES), min_size=1, max_size=2, unique=True))
    inner, bindings, free = ctx, [], frozenset[str]()
    for name in names:
        kind = ctx.vectors and draw(st.integers(0, 3)) == 0
        e = draw(_expr(inner if star else ctx, depth, kind))
        bindings.append(f"({name} {e.src})")
        free |= e.free
        inner = inner.bind(name, Var(e.iv, e.vector, frozenset()))
    body = draw(_expr(inner, depth, vector))
    head = "let*" if star else "let"
    return Ex(f"({head} ({' '.join(bindings)}) {body.src})", body.iv, vector, free | body.free)


@st.composite
def _let_star(draw: Draw, ctx: Ctx, depth: int, vector: bool) -> Ex:
    return draw(_let(ctx, depth, vector, star=True))


@st.composite
def _fn_call(draw: Draw, ctx: Ctx, depth: int, vector: bool) -> Ex:
    """A call of a generated top-level function, arguments fitted to [-2, 2]."""
    fn = draw(st.sampled_from(ctx.funcs))
    args = [PARAM.fit(draw(_expr(ctx, depth, False))) for _ in range(fn.nparams)]
    e = _node(fn.name, args, fn.iv, False)
    return replace(e, free=e.free | fn.free)


@st.composite
def _ref(draw: Draw, ctx: Ctx, depth: int, vector: bool) -> Ex:
    """`(ref v i)` or `(vector-ref v i)`."""
    v = draw(_expr(ctx, depth, True))
    i = draw(st.sampled_from(["0", "1", "2"]))
    return _node(draw(st.sampled_from(["ref", "vector-ref"])), [v, Ex(i, Iv(0, 2))], v.iv, False)


@st.composite
def _det(draw: Draw, ctx: Ctx, depth: int, vector: bool) -> Ex:
    """`(det (mat r1 r2 r3))`."""
    rows = [ANY.fit(draw(_expr(ctx, depth, True))) for _ in range(3)]
    m = rows[0].iv.mag() * rows[1].iv.mag() * rows[2].iv.mag()
    return _node("det", [_node("mat", rows, Iv(0, 0), True)], _pad(-6 * m, 6 * m), False)


@st.composite
def _vec_build(draw: Draw, ctx: Ctx, depth: int, vector: bool) -> Ex:
    return draw(_vec_of([draw(_expr(ctx, depth, False)) for _ in range(3)]))


@st.composite
def _roll(draw: Draw, ctx: Ctx, depth: int, vector: bool) -> Ex:
    """`(roll v k)` with a constant shift."""
    v = draw(_expr(ctx, depth, True))
    k = draw(st.sampled_from(["0", "1", "2", "3"]))
    return _node("roll", [v, Ex(k, Iv(0, 3))], v.iv, True)


@st.composite
def _matvec(draw: Draw, ctx: Ctx, depth: int, vector: bool) -> Ex:
    """`(matvec (mat r1 r2 r3) v)`."""
    rows = [ANY.fit(draw(_expr(ctx, depth, True))) for _ in range(3)]
    v = ANY.fit(draw(_expr(ctx, depth, True)))
    iv = _times(3, _mul)(rows[0].iv.hull(rows[1].iv).hull(rows[2].iv), v.iv)
    return _node("matvec", [_node("mat", rows, Iv(0, 0), True), v], iv, True)


@dataclass(frozen=True)
class _Maker:
    make: Callable[[Ctx, int, bool], st.SearchStrategy[Ex]]
    needs: str = ""

    def usable(self, ctx: Ctx) -> bool:
        return (self.needs != "vectors" or ctx.vectors) and (self.needs != "funcs" or bool(ctx.funcs))


_SCALAR_MAKERS = (
    *[_Maker(_prim_call)] * 8, _Maker(_let), _Maker(_let_star), _Maker(_if), _Maker(_cond),
    _Maker(_fn_call, "funcs"), _Maker(_ref, "vectors"), _Maker(_det, "vectors"),
)
_VECTOR_MAKERS = (
    *[_Maker(_prim_call)] * 6, _Maker(_vec_build), _Maker(_vec_build), _Maker(_let), _Maker(_if), _Maker(_roll),
    _Maker(_matvec),
)

# ----------------------------------------------------------------------------------------------
# Programs


@st.composite
def _constants(draw: Draw, ctx: Ctx, depth: int) -> tuple[list[str], Ctx]:
    """`(define k e)` constants; later ones may use earlier ones (any order in the text)."""
    names = draw(st.lists(st.sampled_from(CONST_NAMES), max_size=2, unique=True))
    srcs = []
    for name in names:
        e = draw(_expr(ctx, depth, False))
        srcs.append(f"(define {name} {e.src})")
        ctx = ctx.bind(name, Var(e.iv, False, e.free))
    return srcs, ctx


@st.composite
def _functions(draw: Draw, ctx: Ctx, depth: int) -> tuple[list[str], Ctx]:
    """`(define (f p ...) body)` functions; f_i may call f_j for j > i only (no recursion)."""
    names = draw(st.lists(st.sampled_from(FUNC_NAMES), max_size=2, unique=True))
    srcs: list[str] = []
    for name in reversed(names):
        params = draw(st.lists(st.sampled_from(PARAM_NAMES), min_size=1, max_size=3, unique=True))
        inner = ctx
        for p in params:
            inner = inner.bind(p, Var(Iv(*INPUT_RANGE), False, frozenset()))
        body = draw(_expr(inner, depth, False))
        srcs.insert(0, f"(define ({name} {' '.join(params)}) {body.src})")
        ctx = replace(ctx, funcs=ctx.funcs + (Fn(name, len(params), body.free, body.iv),))
    return srcs, ctx


@st.composite
def _trivia(draw: Draw, src: str) -> str:
    """Replace some of the single spaces between tokens by comments and other whitespace."""
    if not draw(st.booleans()):
        return src
    rng = draw(st.randoms(use_true_random=False))
    pieces = ["\n  ", "\t", " ; note\n", " #| c |# ", " #| a #| b |# |# ", " #;(+ 1 2) ", " #;7 ", "\r\n"]
    parts = src.split(" ")
    out = [parts[0]]
    for part in parts[1:]:
        out.append(rng.choice(pieces) if rng.random() < 0.15 else " ")
        out.append(part)
    return "".join(out)


@st.composite
def programs(
    draw: Draw, max_depth: int = 5, vectors: bool = False, smooth: bool = False,
    defines: bool = True, trivia: bool = True,
) -> tuple[str, tuple[str, ...]]:
    """A random well-formed program and its inputs in LANGUAGE.md order.

    `vectors` adds the 3-vector inputs u, w and vector primitives; `smooth` leaves out
    piecewise-constant and jumping primitives (comparisons still appear in `if` tests);
    `defines` allows top-level constants (depth <= 2) and functions (depth <= 3);
    `trivia` sprinkles comments and odd whitespace between tokens.
    """
    ctx = _input_ctx(vectors, smooth)
    srcs: list[str] = []
    if defines:
        consts, ctx = draw(_constants(ctx, min(2, max_depth)))
        funcs, ctx = draw(_functions(ctx, min(3, max_depth)))
        srcs = draw(st.permutations(consts + funcs))
    body = draw(_expr(ctx, max_depth, vectors and draw(st.integers(0, 3)) == 0))
    result, expected = body.src, set(body.free)
    if draw(st.integers(0, 4)) == 0:
        params = draw(st.permutations([n for n, v in ctx.env if n in SCALAR_INPUTS or n in VECTOR_INPUTS]))
        params = params[: draw(st.integers(1, len(params)))]
        result, expected = f"(lambda ({' '.join(params)}) {body.src})", expected | set(params)
    src = " ".join([*srcs, result])
    if trivia:
        src = draw(_trivia(src))
    names = refeval.inputs_of(src)
    assert set(names) == expected, f"generator tracked {sorted(expected)}, refeval found {names}: {src}"
    return src, names


def inputs(names: Sequence[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Input values in INPUT_RANGE: a float per scalar input, a list per vector input."""
    x = st.floats(*INPUT_RANGE, allow_nan=False, allow_infinity=False)
    return st.fixed_dictionaries(
        {n: st.lists(x, min_size=VECTOR_INPUTS[n], max_size=VECTOR_INPUTS[n]) if n in VECTOR_INPUTS else x
         for n in names}
    )


def input_shapes(names: Sequence[str]) -> dict[str, tuple[int, ...]]:
    """Per-example shapes to declare to the compiler (`shapes=`): the vector inputs."""
    return {n: (VECTOR_INPUTS[n],) for n in names if n in VECTOR_INPUTS}


# ----------------------------------------------------------------------------------------------
# Conditioning

COND_STEP = 1e-7
COND_RTOL = 1e-3
COND_MAX = 1e8


def _perturbed(args: dict[str, Any], pattern: int) -> dict[str, Any]:
    """Inputs scaled by (1 + s * 1e-7): pattern 0 all s = +1, 1 all s = -1, 2 alternating."""
    out, k = {}, 0
    for name, value in args.items():
        a = np.array(value, dtype=np.float64)
        flat = a.reshape(-1)
        for i in range(flat.size):
            sign = (1, -1, 1 if k % 2 == 0 else -1)[pattern]
            flat[i] *= 1.0 + sign * COND_STEP
            k += 1
        out[name] = a.tolist()
    return out


def _close(base: np.ndarray, other: np.ndarray) -> bool:
    if other.shape != base.shape or not np.all(np.isfinite(other)):
        return False
    return bool(np.all(np.abs(other - base) <= COND_RTOL * np.abs(base)))


def conditioning_ok(src: str, args: dict[str, Any]) -> bool:
    """Whether the sample is well-conditioned (the rule is in the module docstring).

    Raises `refeval.RefError` when refeval cannot evaluate `src` at all.
    """
    base = refeval.evaluate(src, args)
    if not np.all(np.isfinite(base)) or np.any(np.abs(base) > COND_MAX):
        return False
    return all(_close(base, refeval.evaluate(src, _perturbed(args, p))) for p in range(3))


# ----------------------------------------------------------------------------------------------
# Mutations, for fuzzing

_TOKEN = re.compile(r"[()\[\]]|[^\s()\[\]]+")
_NOISE = list("()[]#;|'`\".,\\{}") + ["#|", "|#", "#;", "np.exp", "define", "lambda", "recur", "else", "let",
                                      "loop", "1e", "2.3.4", "1e999", "-0.0", "nan", "inf", "\u03bb", "\u00a0",
                                      "\u200b", "\x00", "\U0001f600", "\u202e", "(if 1 2)", "(euler f 1 0.1 5)"]


def _positions(draw: Draw, src: str) -> tuple[int, int]:
    i = draw(st.integers(0, len(src)))
    return i, draw(st.integers(i, min(len(src), i + 40)))


def _m_delete(draw: Draw, src: str) -> str:
    i, j = _positions(draw, src)
    return src[:i] + src[i + 1 if j == i else j:]


def _m_insert(draw: Draw, src: str) -> str:
    i = draw(st.integers(0, len(src)))
    piece = draw(st.one_of(st.sampled_from(_NOISE), st.characters(), st.text(max_size=5)))
    return src[:i] + piece + src[i:]


def _m_duplicate(draw: Draw, src: str) -> str:
    i, j = _positions(draw, src)
    k = draw(st.integers(0, len(src)))
    return src[:k] + src[i:j] + src[k:]


def _m_token(draw: Draw, src: str) -> str:
    tokens = [m.span() for m in _TOKEN.finditer(src)]
    if not tokens:
        return src
    i, j = draw(st.sampled_from(tokens))
    how = draw(st.integers(0, 2))
    replacement = ("", src[i:j] + " " + src[i:j], draw(st.sampled_from(_NOISE)))[how]
    return src[:i] + replacement + src[j:]


def _m_bracket(draw: Draw, src: str) -> str:
    spots = [i for i, c in enumerate(src) if c in "()[]"]
    if not spots:
        return src
    i = draw(st.sampled_from(spots))
    return src[:i] + draw(st.sampled_from("()[]")) + src[i + 1:]


def _m_truncate(draw: Draw, src: str) -> str:
    return src[: draw(st.integers(0, len(src)))]


def _m_nest(draw: Draw, src: str) -> str:
    n = draw(st.integers(50, 3000))
    return "(+ " * n + src + ")" * n


_MUTATIONS = (_m_delete, _m_insert, _m_duplicate, _m_token, _m_bracket, _m_truncate, _m_nest)


@st.composite
def mutated_programs(draw: Draw, vectors: bool = True) -> str:
    """A valid program with 1 to 4 random textual mutations (usually no longer valid)."""
    src, _ = draw(programs(max_depth=3, vectors=vectors))
    for _ in range(draw(st.integers(1, 4))):
        src = draw(st.sampled_from(_MUTATIONS))(draw, src)
    return src
