"""The op database: one entry per public nc primitive, for `test_opdb.py`.

Each `OpEntry` is an nc program that calls one primitive (the source template), the per-example
shapes of its inputs (in the order `compile_fn` reports them), a seeded sampler of inputs inside
the primitive's domain (away from kinks where a gradient is checked, well-conditioned matrices
for `det`/`inv`/`solve`), and two independent statements of what the program computes:

- ``ref``: a numpy/math reference in float64 (imports nothing from `nc`, reads no table row);
- ``torch_fn``: the PyTorch expression the primitive equals, written by hand here. It must
  agree bit for bit with the compiled program for elementwise rows (``exact=True``) and within
  a few ulp for reductions and linear algebra (``exact=False``).

Both take batched arguments: leading axes beyond an input's per-example shape are batch axes.
Variadic primitives have one entry per arity of interest (0, 1, 2 and 3 arguments where the
arity allows), plus entries mixing ranks (a scalar with a vector) and literals. Entries with no
inputs (``(+)``, ``(eye 3)``) are constant programs: they are checked for value and dtype only.
Aliases (``expt``, ``vector-ref``, ``vector-length``) have their own entries, whose ``row``
names the canonical primitive.

Like `refeval`, this module imports nothing from `nc`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

__all__ = ["ENTRIES", "OpEntry", "by_label", "expm_reference"]

Shape = tuple[int, ...]
Dist = Callable[[np.random.Generator, Shape], np.ndarray]
Joint = Callable[[np.random.Generator, Shape], tuple[np.ndarray, ...]]


@dataclass(frozen=True)
class OpEntry:
    """One program of the op database."""

    name: str  # the primitive's name as the source spells it (an alias gets its own entry)
    src: str
    shapes: dict[str, Shape]  # per-example shape of each input, in input order
    sampler: Joint
    ref: Callable[..., np.ndarray]  # numpy float64 reference on batched arrays
    torch_fn: Callable[..., torch.Tensor]  # hand-written PyTorch on batched tensors
    exact: bool = True  # bit-identical to torch_fn (elementwise); else within `ulps`
    differentiable: bool = True  # gradcheck/gradgradcheck apply; else the gradient is zero
    records: bool = True  # the primitive appears as an equation in the recorded program
    row: str = ""  # the canonical row name (defaults to ``name``)
    ulps: float = 4.0  # tolerance in units of eps for non-exact comparisons
    tol32: tuple[float, float] = (2e-6, 1e-6)  # (rtol, atol) against ref in float32
    tol64: tuple[float, float] = (1e-13, 1e-14)  # (rtol, atol) against ref in float64
    label: str = field(default="")

    @property
    def inputs(self) -> tuple[str, ...]:
        return tuple(self.shapes)

    def sample(self, rng: np.random.Generator, batch: Shape = ()) -> tuple[np.ndarray, ...]:
        """Float64 arrays of shape ``batch + shape`` for each input."""
        out = self.sampler(rng, batch)
        assert len(out) == len(self.shapes), self.label
        for a, (n, s) in zip(out, self.shapes.items()):
            assert a.shape == (*batch, *s), (self.label, n, a.shape)
        return tuple(np.asarray(a, dtype=np.float64) for a in out)


# ----------------------------------------------------------------------------------------------
# Samplers


def U(lo: float, hi: float) -> Dist:
    return lambda rng, shape: rng.uniform(lo, hi, shape)


def N(scale: float = 1.0) -> Dist:
    return lambda rng, shape: scale * rng.standard_normal(shape)


def signed(lo: float, hi: float) -> Dist:
    """|x| in [lo, hi] with a random sign: away from the kink at 0."""
    return lambda rng, shape: rng.choice([-1.0, 1.0], shape) * rng.uniform(lo, hi, shape)


def grid(*values: float) -> Dist:
    """Values from a small set, so that ties and zeros occur (comparisons, logic)."""
    return lambda rng, shape: rng.choice(np.asarray(values, dtype=np.float64), shape)


def quarters(lo: float, hi: float) -> Dist:
    """Multiples of 1/4: integers and exact halves included (rounding rows); exact in float32."""
    return lambda rng, shape: np.round(rng.uniform(lo, hi, shape) * 4) / 4


def wellcond(scale: float = 0.25) -> Dist:
    """I + scale * G / sqrt(n): eigenvalues near 1, well-conditioned for det/inv/solve."""

    def draw(rng: np.random.Generator, shape: Shape) -> np.ndarray:
        n = shape[-1]
        return np.eye(n) + scale * rng.standard_normal(shape) / math.sqrt(n)

    return draw


def indep(shapes: dict[str, Shape], dists: Sequence[Dist]) -> Joint:
    assert len(shapes) == len(dists)

    def draw(rng: np.random.Generator, batch: Shape) -> tuple[np.ndarray, ...]:
        return tuple(d(rng, (*batch, *s)) for d, s in zip(dists, shapes.values()))

    return draw


def with_zeros(dist: Dist) -> Dist:
    """``dist`` with about a fifth of the values exactly 0 (xlogy's special case)."""
    return lambda rng, shape: np.where(rng.uniform(0, 1, shape) < 0.2, 0.0, dist(rng, shape))


def np_xlogy(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        return np.where(x == 0, np.where(np.isnan(y), np.nan, 0.0), x * np.log(y))


def clamp_sample(rng: np.random.Generator, batch: Shape) -> tuple[np.ndarray, ...]:
    lo = rng.uniform(-1.5, -0.5, batch)
    hi = rng.uniform(0.5, 1.5, batch)
    where = rng.integers(0, 3, batch)  # below lo, between, above hi; at least 0.1 from both
    x = np.where(where == 0, lo - rng.uniform(0.1, 1.0, batch),
                 np.where(where == 1, rng.uniform(lo + 0.1, hi - 0.1), hi + rng.uniform(0.1, 1.0, batch)))
    return x, lo, hi


def clamp_vec_sample(rng: np.random.Generator, batch: Shape) -> tuple[np.ndarray, ...]:
    lo = rng.uniform(-1.5, -0.5, batch)
    hi = rng.uniform(0.5, 1.5, batch)
    v = rng.uniform(-2.5, 2.5, (*batch, 4))
    bad = (np.abs(v - lo[..., None]) < 0.1) | (np.abs(v - hi[..., None]) < 0.1)
    v = np.where(bad, v + 0.25, v)
    return v, lo, hi


def minmax_sample(n: int, vec: bool = False) -> Joint:
    """n scalars (or a scalar and a 4-vector) pairwise at least 0.1 apart."""

    def draw(rng: np.random.Generator, batch: Shape) -> tuple[np.ndarray, ...]:
        if vec:
            x = rng.uniform(-2, 2, batch)
            v = x[..., None] + signed(0.1, 2.0)(rng, (*batch, 4))
            return x, v
        slots = np.argsort(rng.random((*batch, n)), axis=-1)  # a random order of n slots
        vals = rng.uniform(-2, 2, batch)[..., None] + 0.3 * slots + rng.uniform(0, 0.1, (*batch, n))
        return tuple(vals[..., k] for k in range(n))

    return draw


def fractional_ratio(rng: np.random.Generator, batch: Shape) -> tuple[np.ndarray, ...]:
    """(x, y) with x/y = +-(k + f), f in [0.1, 0.9]: away from the jumps of modulo/quotient."""
    y = signed(0.5, 2.0)(rng, batch)
    q = rng.choice([-1.0, 1.0], batch) * (rng.integers(0, 4, batch) + rng.uniform(0.1, 0.9, batch))
    return q * y, y


def hypot_sample(rng: np.random.Generator, batch: Shape) -> tuple[np.ndarray, ...]:
    return signed(0.2, 2.0)(rng, batch), N()(rng, batch)


# ----------------------------------------------------------------------------------------------
# numpy references


def _vec(f: Callable[[float], float]) -> Callable[[np.ndarray], np.ndarray]:
    vf = np.vectorize(f, otypes=[np.float64])
    return lambda x: np.asarray(vf(x), dtype=np.float64)


np_erf = _vec(math.erf)
np_lgamma = _vec(math.lgamma)


def np_floor_rem(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """R7RS floor-remainder: the truncated remainder moved to the sign of the divisor."""
    r = np.fmod(x, y)
    return np.where((r != 0) & ((r < 0) != (y < 0)), r + y, r)


def np_round_half_even(x: np.ndarray) -> np.ndarray:
    f = np.floor(x)
    d = x - f
    even = np.fmod(f, 2) == 0
    return np.where(d > 0.5, f + 1, np.where(d < 0.5, f, np.where(even, f, f + 1)))


def np_softplus(x: np.ndarray) -> np.ndarray:
    """log(1 + e^x) with no overflow and full precision for large |x|."""
    return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))


def np_sigmoid(x: np.ndarray) -> np.ndarray:
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def b(x: np.ndarray | bool) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def np_laplacian(u: np.ndarray, dx: np.ndarray) -> np.ndarray:
    out = np.zeros(np.broadcast_shapes(u.shape, (*np.shape(dx), 1)))
    if u.shape[-1] >= 3:
        d2 = np.asarray(dx)[..., None] ** 2
        out[..., 1:-1] = (u[..., :-2] - 2 * u[..., 1:-1] + u[..., 2:]) / d2
    return out


def expm_reference(a: np.ndarray) -> np.ndarray:
    """Matrix exponential by scaling and squaring of a 30-term Taylor series (small matrices)."""
    a = np.asarray(a, dtype=np.float64)
    norm = float(np.max(np.abs(a).sum(-1), initial=0.0))
    s = max(0, math.ceil(math.log2(norm)) + 1) if norm > 0 else 0
    m = a / 2.0**s
    eye = np.broadcast_to(np.eye(a.shape[-1]), a.shape)
    term, out = eye.copy(), eye.copy()
    for k in range(1, 30):
        term = term @ m / k
        out = out + term
    for _ in range(s):
        out = out @ out
    return out


# ----------------------------------------------------------------------------------------------
# hand-written PyTorch helpers


def t_const(x: torch.Tensor, value: float) -> torch.Tensor:
    """A literal as nc materialises it: a 0-d tensor in the computation's dtype and device."""
    return torch.tensor(value, dtype=x.dtype, device=x.device)


def t_bool(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return x.to(like.dtype)


def t_laplacian(u: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    batch = torch.broadcast_shapes(u.shape[:-1], dx.shape)
    u = u.expand(*batch, u.shape[-1])
    if u.shape[-1] < 3:
        return torch.zeros_like(u)
    inner = (u[..., :-2] - 2 * u[..., 1:-1] + u[..., 2:]) / (dx * dx).unsqueeze(-1)
    zero = torch.zeros_like(u[..., :1])
    return torch.cat([zero, inner, zero], dim=-1)


# ----------------------------------------------------------------------------------------------
# The entries

ENTRIES: list[OpEntry] = []

S: Shape = ()
V3: Shape = (3,)
V4: Shape = (4,)
M3: Shape = (3, 3)


def add(name: str, src: str, shapes: dict[str, Shape], sample: Sequence[Dist] | Joint,
        ref: Callable[..., np.ndarray], torch_fn: Callable[..., torch.Tensor], **kw: object) -> None:
    joint = indep(shapes, sample) if isinstance(sample, (list, tuple)) else sample
    kw.setdefault("row", name)
    ENTRIES.append(OpEntry(name=name, src=src, shapes=shapes, sampler=joint, ref=ref, torch_fn=torch_fn,
                           label=src, **kw))  # type: ignore[arg-type]


def none(rng: np.random.Generator, batch: Shape) -> tuple[np.ndarray, ...]:
    return ()


XY = {"x": S, "y": S}
XYZ = {"x": S, "y": S, "z": S}
X = {"x": S}
n11 = N()

# ---- arithmetic (variadic folds, left to right) ----------------------------------------------
add("+", "(+)", {}, none, lambda: np.float64(0.0), lambda: torch.tensor(0.0), records=False)
add("+", "(+ x)", X, [n11], lambda x: x, lambda x: x, records=False)
add("+", "(+ x y)", XY, [n11, n11], lambda x, y: x + y, lambda x, y: x + y)
add("+", "(+ x y z)", XYZ, [n11, n11, n11], lambda x, y, z: x + y + z, lambda x, y, z: (x + y) + z)
add("+", "(+ x 1)", X, [n11], lambda x: x + 1, lambda x: x + 1.0)
add("+", "(+ x v)", {"x": S, "v": V3}, [n11, n11], lambda x, v: x[..., None] + v,
    lambda x, v: x.unsqueeze(-1) + v)
add("-", "(- x)", X, [n11], lambda x: -x, lambda x: torch.neg(x))
add("-", "(- x y)", XY, [n11, n11], lambda x, y: x - y, lambda x, y: x - y)
add("-", "(- x y z)", XYZ, [n11, n11, n11], lambda x, y, z: x - y - z, lambda x, y, z: (x - y) - z)
add("*", "(*)", {}, none, lambda: np.float64(1.0), lambda: torch.tensor(1.0), records=False)
add("*", "(* x)", X, [n11], lambda x: x, lambda x: x, records=False)
add("*", "(* x y)", XY, [n11, n11], lambda x, y: x * y, lambda x, y: x * y)
add("*", "(* x y z)", XYZ, [n11, n11, n11], lambda x, y, z: x * y * z, lambda x, y, z: (x * y) * z)
add("*", "(* 2 x)", X, [n11], lambda x: 2 * x, lambda x: 2.0 * x)
add("*", "(* x m)", {"x": S, "m": M3}, [n11, n11], lambda x, m: x[..., None, None] * m,
    lambda x, m: x.unsqueeze(-1).unsqueeze(-1) * m)
away = signed(0.5, 2.0)
add("/", "(/ x)", X, [away], lambda x: 1 / x, lambda x: torch.reciprocal(x))
add("/", "(/ x y)", XY, [n11, away], lambda x, y: x / y, lambda x, y: x / y)
add("/", "(/ x y z)", XYZ, [n11, away, away], lambda x, y, z: x / y / z, lambda x, y, z: (x / y) / z)
add("/", "(/ 1 x)", X, [away], lambda x: 1 / x, lambda x: 1.0 / x)
add("pow", "(pow x y)", XY, [U(0.5, 2.0), U(-2.0, 2.0)], np.power, lambda x, y: torch.pow(x, y))
add("pow", "(pow x 3)", X, [n11], lambda x: x**3, lambda x: torch.pow(x, 3.0))
add("pow", "(pow 2 x)", X, [U(-3, 3)], lambda x: 2.0**x, lambda x: torch.pow(2.0, x))
add("expt", "(expt x y)", XY, [U(0.5, 2.0), U(-2.0, 2.0)], np.power, lambda x, y: torch.pow(x, y),
    row="pow")
add("abs", "(abs x)", X, [signed(0.1, 2)], np.abs, torch.abs)
add("sign", "(sign x)", X, [grid(-2.5, -1.0, 0.0, 0.5, 3.0)], np.sign, torch.sign, differentiable=False)
for _op, _np, _t in (("min", np.minimum, torch.minimum), ("max", np.maximum, torch.maximum)):
    add(_op, f"({_op} x)", X, [n11], lambda x: x, lambda x: x, records=False)
    add(_op, f"({_op} x y)", XY, minmax_sample(2), _np, _t)
    add(_op, f"({_op} x y z)", XYZ, minmax_sample(3),
        lambda x, y, z, f=_np: f(f(x, y), z), lambda x, y, z, f=_t: f(f(x, y), z))
    add(_op, f"({_op} x 0.5)", X, [U(-2, 2)], lambda x, f=_np: f(x, 0.5),
        lambda x, f=_t: f(x, t_const(x, 0.5)))
    add(_op, f"({_op} x v)", {"x": S, "v": V4}, minmax_sample(2, vec=True),
        lambda x, v, f=_np: f(x[..., None], v), lambda x, v, f=_t: f(x.unsqueeze(-1), v))
add("modulo", "(modulo x y)", XY, fractional_ratio, np_floor_rem, torch.remainder)
add("remainder", "(remainder x y)", XY, fractional_ratio, np.fmod, torch.fmod)
add("quotient", "(quotient x y)", XY, fractional_ratio, lambda x, y: np.trunc(x / y),
    lambda x, y: torch.div(x, y, rounding_mode="trunc"))

# ---- elementwise math -------------------------------------------------------------------------
_UNARY: list[tuple[str, Dist, Callable[..., np.ndarray], Callable[..., torch.Tensor], dict[str, object]]] = [
    ("sqrt", U(0.1, 4.0), np.sqrt, torch.sqrt, {}),
    ("square", n11, np.square, torch.square, {}),
    ("cube", n11, lambda x: x**3, lambda x: torch.pow(x, 3), {}),
    ("exp", U(-3, 3), np.exp, torch.exp, {}),
    ("expm1", U(-2, 2), np.expm1, torch.expm1, {}),
    ("log1p", U(-0.5, 3), np.log1p, torch.log1p, {}),
    ("log", U(0.1, 10), np.log, torch.log, {"tol32": (2e-6, 2e-6)}),
    ("sin", U(-4, 4), np.sin, torch.sin, {}),
    ("cos", U(-4, 4), np.cos, torch.cos, {}),
    ("tan", U(-1.2, 1.2), np.tan, torch.tan, {}),
    ("asin", U(-0.9, 0.9), np.arcsin, torch.asin, {}),
    ("acos", U(-0.9, 0.9), np.arccos, torch.acos, {}),
    ("sinh", U(-2, 2), np.sinh, torch.sinh, {}),
    ("cosh", U(-2, 2), np.cosh, torch.cosh, {}),
    ("tanh", U(-2, 2), np.tanh, torch.tanh, {}),
    ("asinh", U(-3, 3), np.arcsinh, torch.asinh, {}),
    ("acosh", U(1.1, 3), np.arccosh, torch.acosh, {}),
    ("atanh", U(-0.9, 0.9), np.arctanh, torch.atanh, {}),
    ("atan", U(-3, 3), np.arctan, torch.atan, {}),
    ("sigmoid", U(-8, 8), np_sigmoid, torch.sigmoid, {}),
    ("softplus", U(-40, 40), np_softplus, lambda x: torch.logaddexp(x, torch.zeros_like(x)), {}),
    ("relu", signed(0.1, 2), lambda x: np.maximum(x, 0.0), torch.relu, {}),
    ("erf", U(-2, 2), np_erf, torch.erf, {}),
    ("lgamma", U(0.2, 8), np_lgamma, torch.lgamma, {"tol32": (4e-6, 4e-6), "tol64": (1e-13, 1e-13)}),
    ("floor", quarters(-3, 3), np.floor, torch.floor, {"differentiable": False}),
    ("ceiling", quarters(-3, 3), np.ceil, torch.ceil, {"differentiable": False}),
    ("round", quarters(-3, 3), np_round_half_even, torch.round, {"differentiable": False}),
    ("truncate", quarters(-3, 3), np.trunc, torch.trunc, {"differentiable": False}),
]
for _name, _dist, _np, _t, _kw in _UNARY:
    add(_name, f"({_name} x)", X, [_dist], _np, _t, **_kw)
add("exp", "(exp v)", {"v": V4}, [U(-3, 3)], np.exp, torch.exp)
add("sqrt", "(sqrt m)", {"m": (2, 3)}, [U(0.1, 4.0)], np.sqrt, torch.sqrt)
add("hypot", "(hypot u w)", {"u": V3, "w": V3}, [signed(0.2, 2.0), n11], np.hypot, torch.hypot)
add("lgamma", "(lgamma (- x))", X, [U(2.1, 2.9)], lambda x: np_lgamma(-x),
    lambda x: torch.lgamma(torch.neg(x)), tol32=(4e-6, 4e-6))
add("log", "(log x b)", {"x": S, "b": S}, [U(0.1, 10), U(2, 10)], lambda x, b_: np.log(x) / np.log(b_),
    lambda x, b_: torch.log(x) / torch.log(b_))
add("log", "(log x 2)", X, [U(0.1, 10)], np.log2, lambda x: torch.log(x) / torch.log(t_const(x, 2.0)))
add("atan", "(atan y x)", {"y": S, "x": S}, hypot_sample, np.arctan2, torch.atan2)
add("clamp", "(clamp x lo hi)", {"x": S, "lo": S, "hi": S}, clamp_sample,
    lambda x, lo, hi: np.minimum(np.maximum(x, lo), hi), torch.clamp)
add("clamp", "(clamp v lo hi)", {"v": V4, "lo": S, "hi": S}, clamp_vec_sample,
    lambda v, lo, hi: np.minimum(np.maximum(v, lo[..., None]), hi[..., None]),
    lambda v, lo, hi: torch.clamp(v, lo.unsqueeze(-1), hi.unsqueeze(-1)))
add("hypot", "(hypot x y)", XY, hypot_sample, np.hypot, torch.hypot)
add("logaddexp", "(logaddexp x y)", XY, [U(-30, 30), U(-30, 30)], np.logaddexp, torch.logaddexp)
add("logaddexp", "(logaddexp u x)", {"u": V3, "x": S}, [U(-5, 5), U(-5, 5)],
    lambda u, x: np.logaddexp(u, x[..., None]), lambda u, x: torch.logaddexp(u, x.unsqueeze(-1)))
add("xlogy", "(xlogy x y)", XY, [with_zeros(U(-2, 2)), U(0.1, 4)], np_xlogy, torch.special.xlogy)

# ---- comparison and logic: 0/1 in the computation dtype, no gradient ----------------------------
_ints = grid(-1.0, 0.0, 1.0)
for _op, _np, _t in (("=", np.equal, torch.eq), ("<", np.less, torch.lt), (">", np.greater, torch.gt),
                     ("<=", np.less_equal, torch.le), (">=", np.greater_equal, torch.ge)):
    add(_op, f"({_op} x y)", XY, [_ints, _ints], lambda x, y, f=_np: b(f(x, y)),
        lambda x, y, f=_t: f(x, y).to(x.dtype), differentiable=False)
    add(_op, f"({_op} x y z)", XYZ, [_ints, _ints, _ints], lambda x, y, z, f=_np: b(f(x, y) & f(y, z)),
        lambda x, y, z, f=_t: torch.logical_and(f(x, y), f(y, z)).to(x.dtype), differentiable=False)
add("<", "(< x 0)", X, [_ints], lambda x: b(x < 0), lambda x: (x < 0.0).to(x.dtype), differentiable=False)
add("<", "(< x v)", {"x": S, "v": V3}, [_ints, _ints], lambda x, v: b(x[..., None] < v),
    lambda x, v: (x.unsqueeze(-1) < v).to(x.dtype), differentiable=False)
_truth = grid(-1.0, 0.0, 0.0, 0.5, 2.0)
for _op, _np, _t in (("and", np.logical_and, torch.logical_and), ("or", np.logical_or, torch.logical_or)):
    add(_op, f"({_op} x)", X, [_truth], lambda x: b(x != 0), lambda x: (x != 0).to(x.dtype),
        differentiable=False)
    add(_op, f"({_op} x y)", XY, [_truth, _truth], lambda x, y, f=_np: b(f(x != 0, y != 0)),
        lambda x, y, f=_t: f(x != 0, y != 0).to(x.dtype), differentiable=False)
    add(_op, f"({_op} x y z)", XYZ, [_truth, _truth, _truth],
        lambda x, y, z, f=_np: b(f(f(x != 0, y != 0), z != 0)),
        lambda x, y, z, f=_t: f(f(x != 0, y != 0).to(x.dtype) != 0, z != 0).to(x.dtype), differentiable=False)
add("not", "(not x)", X, [_truth], lambda x: b(x == 0), lambda x: (x == 0).to(x.dtype), differentiable=False)
add("zero?", "(zero? x)", X, [_truth], lambda x: b(x == 0), lambda x: (x == 0).to(x.dtype),
    differentiable=False)
add("positive?", "(positive? x)", X, [_truth], lambda x: b(x > 0), lambda x: (x > 0).to(x.dtype),
    differentiable=False)
add("negative?", "(negative? x)", X, [_truth], lambda x: b(x < 0), lambda x: (x < 0).to(x.dtype),
    differentiable=False)

# ---- vectors --------------------------------------------------------------------------------------


def t_stack(*xs: torch.Tensor, dim: int = -1) -> torch.Tensor:
    return torch.stack(torch.broadcast_tensors(*xs), dim=dim)


def np_stack(*xs: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.stack(np.broadcast_arrays(*xs), axis=axis)


add("vec", "(vec x)", X, [n11], lambda x: x[..., None], lambda x: t_stack(x))
add("vec", "(vec x y z)", XYZ, [n11, n11, n11], np_stack, t_stack)
add("vec", "[x 1 y]", XY, [n11, n11], lambda x, y: np_stack(x, np.ones_like(x), y),
    lambda x, y: t_stack(x, t_const(x, 1.0), y))
add("ref", "(ref v 1)", {"v": V4}, [n11], lambda v: v[..., 1], lambda v: v[..., 1])
add("ref", "(ref m 2)", {"m": (3, 2)}, [n11], lambda m: m[..., 2, :], lambda m: m[..., 2, :])
add("ref", "(ref m 2 0)", {"m": (3, 2)}, [n11], lambda m: m[..., 2, 0], lambda m: m[..., 2, 0])
add("vector-ref", "(vector-ref v 3)", {"v": V4}, [n11], lambda v: v[..., 3], lambda v: v[..., 3], row="ref")
UW = {"u": V3, "w": V3}
add("dot", "(dot u w)", UW, [n11, n11], lambda u, w: np.einsum("...i,...i->...", u, w),
    lambda u, w: (u * w).sum(-1), exact=False)
add("cross", "(cross u w)", UW, [n11, n11], lambda u, w: np.cross(u, w),
    lambda u, w: torch.linalg.cross(*torch.broadcast_tensors(u, w), dim=-1), exact=False)
add("norm", "(norm v)", {"v": V4}, [signed(0.3, 2)], lambda v: np.sqrt(np.sum(v * v, -1)),
    lambda v: torch.linalg.vector_norm(v, dim=-1), exact=False)
add("normalize", "(normalize v)", {"v": V4}, [signed(0.3, 2)],
    lambda v: v / np.sqrt(np.sum(v * v, -1, keepdims=True)),
    lambda v: v / torch.linalg.vector_norm(v, dim=-1, keepdim=True), exact=False)
V5 = {"v": (5,)}
add("vsum", "(vsum v)", V5, [n11], lambda v: np.sum(v, -1), lambda v: v.sum(-1), exact=False)
add("vmean", "(vmean v)", V5, [n11], lambda v: np.mean(v, -1), lambda v: v.mean(-1), exact=False)
add("vmin", "(vmin v)", V5, [n11], lambda v: np.min(v, -1), lambda v: v.amin(-1), exact=False)
add("vmax", "(vmax v)", V5, [n11], lambda v: np.max(v, -1), lambda v: v.amax(-1), exact=False)
add("vprod", "(vprod v)", V5, [signed(0.5, 1.5)], lambda v: np.prod(v, -1), lambda v: v.prod(-1), exact=False)


def with_a_zero(rng: np.random.Generator, batch: Shape) -> tuple[np.ndarray, ...]:
    v = signed(0.5, 1.5)(rng, (*batch, 5))
    v[..., 2] = 0.0
    return (v,)


add("vprod", "(vprod w)", {"w": (5,)}, with_a_zero, lambda v: np.prod(v, -1), lambda v: v.prod(-1),
    exact=False)
add("scale", "(scale s v)", {"s": S, "v": V3}, [n11, n11], lambda s, v: s[..., None] * v,
    lambda s, v: s.unsqueeze(-1) * v)
add("scale", "(scale s m)", {"s": S, "m": (2, 3)}, [n11, n11], lambda s, m: s[..., None, None] * m,
    lambda s, m: s.unsqueeze(-1).unsqueeze(-1) * m)
add("scale", "(scale 2 v)", {"v": V3}, [n11], lambda v: 2 * v, lambda v: 2.0 * v)
for _name in ("vlen", "vector-length"):
    add(_name, f"({_name} v)", {"v": V4}, [n11], lambda v: np.full(v.shape[:-1], 4.0),
        lambda v: torch.full(v.shape[:-1], 4.0, dtype=v.dtype, device=v.device), differentiable=False,
        records=False, row="vlen")
add("concat", "(concat u)", {"u": V3}, [n11], lambda u: u, lambda u: torch.cat([u], -1))
add("concat", "(concat u w)", {"u": (2,), "w": V3}, [n11, n11], lambda u, w: np.concatenate([u, w], -1),
    lambda u, w: torch.cat([u, w], -1))
add("concat", "(concat u w z)", {"u": (2,), "w": V3, "z": (1,)}, [n11, n11, n11],
    lambda u, w, z: np.concatenate([u, w, z], -1), lambda u, w, z: torch.cat([u, w, z], -1))
for _k in (0, 1, 6):
    add("roll", f"(roll v {_k})", {"v": V4}, [n11], lambda v, k=_k: np.roll(v, k, axis=-1),
        lambda v, k=_k: torch.roll(v, k, -1))
add("cumsum", "(cumsum v)", V5, [n11], lambda v: np.cumsum(v, -1), lambda v: torch.cumsum(v, -1), exact=False)
add("laplacian1d", "(laplacian1d u dx)", {"u": (6,), "dx": S}, [n11, U(0.5, 1.5)], np_laplacian, t_laplacian)
add("laplacian1d", "(laplacian1d u 0.5)", {"u": (5,)}, [n11], lambda u: np_laplacian(u, np.float64(0.5)),
    lambda u: t_laplacian(u, t_const(u, 0.5)))
add("laplacian1d", "(laplacian1d u dx) ; short", {"u": (2,), "dx": S}, [n11, U(0.5, 1.5)], np_laplacian,
    t_laplacian)

# ---- matrices -------------------------------------------------------------------------------------
add("mat", "(mat u)", {"u": V3}, [n11], lambda u: u[..., None, :], lambda u: t_stack(u, dim=-2))
add("mat", "(mat u w z)", {"u": V3, "w": V3, "z": V3}, [n11, n11, n11],
    lambda u, w, z: np_stack(u, w, z, axis=-2), lambda u, w, z: t_stack(u, w, z, dim=-2))
add("matmul", "(matmul a c)", {"a": (2, 3), "c": (3, 4)}, [n11, n11], np.matmul, torch.matmul, exact=False)
add("matvec", "(matvec a v)", {"a": (2, 3), "v": V3}, [n11, n11], lambda a, v: np.einsum("...ij,...j->...i", a, v),
    lambda a, v: torch.matmul(a, v.unsqueeze(-1)).squeeze(-1), exact=False)
add("outer", "(outer u w)", {"u": V3, "w": (2,)}, [n11, n11], lambda u, w: u[..., :, None] * w[..., None, :],
    lambda u, w: u.unsqueeze(-1) * w.unsqueeze(-2))
add("transpose", "(transpose a)", {"a": (2, 3)}, [n11], lambda a: np.swapaxes(a, -1, -2),
    lambda a: a.transpose(-1, -2))
add("trace", "(trace m)", {"m": M3}, [n11], lambda m: np.trace(m, axis1=-2, axis2=-1),
    lambda m: torch.diagonal(m, dim1=-2, dim2=-1).sum(-1), exact=False)
_lin32 = (5e-5, 5e-5)
add("det", "(det m)", {"m": M3}, [wellcond()], np.linalg.det, torch.linalg.det, exact=False, tol32=_lin32,
    tol64=(1e-12, 1e-12), ulps=16)
add("inv", "(inv m)", {"m": M3}, [wellcond()], np.linalg.inv, lambda m: torch.linalg.inv_ex(m).inverse,
    exact=False, tol32=_lin32, tol64=(1e-12, 1e-12), ulps=16)
add("solve", "(solve m v)", {"m": M3, "v": V3}, [wellcond(), n11],
    lambda m, v: np.linalg.solve(m, v[..., None])[..., 0],
    lambda m, v: torch.linalg.solve_ex(m, v.unsqueeze(-1)).result.squeeze(-1), exact=False, tol32=_lin32,
    tol64=(1e-12, 1e-12), ulps=16)
add("solve", "(solve m c)", {"m": M3, "c": (3, 2)}, [wellcond(), n11], np.linalg.solve,
    lambda m, c: torch.linalg.solve_ex(m, c).result, exact=False, tol32=_lin32, tol64=(1e-12, 1e-12), ulps=16)
add("diag", "(diag v)", {"v": V3}, [n11], lambda v: v[..., :, None] * np.eye(3), torch.diag_embed)
add("expm", "(expm m)", {"m": M3}, [N(0.5)], expm_reference, torch.linalg.matrix_exp, exact=False,
    tol32=_lin32, tol64=(1e-12, 1e-12), ulps=16)

# ---- constructors: sizes are constants, values take the computation's dtype and device -----------
add("eye", "(eye 3)", {}, none, lambda: np.eye(3), lambda: torch.eye(3), differentiable=False, records=False)
add("zeros", "(zeros 2)", {}, none, lambda: np.zeros(2), lambda: torch.zeros(2), differentiable=False,
    records=False)
add("ones", "(ones 3)", {}, none, lambda: np.ones(3), lambda: torch.ones(3), differentiable=False, records=False)
add("eye", "(scale s (eye 3))", {"s": S}, [n11], lambda s: s[..., None, None] * np.eye(3),
    lambda s: s.unsqueeze(-1).unsqueeze(-1) * torch.eye(3, dtype=s.dtype, device=s.device), records=False)
add("zeros", "(+ v (zeros 4))", {"v": V4}, [n11], lambda v: v + 0.0,
    lambda v: v + torch.zeros(4, dtype=v.dtype, device=v.device), records=False)
add("ones", "(* v (ones 4))", {"v": V4}, [n11], lambda v: v * 1.0,
    lambda v: v * torch.ones(4, dtype=v.dtype, device=v.device), records=False)


def by_label() -> dict[str, OpEntry]:
    out: dict[str, OpEntry] = {}
    for e in ENTRIES:
        assert e.label not in out, f"duplicate op-database label {e.label}"
        out[e.label] = e
    return out
