"""The table of primitives: one row per primitive, the single source of truth.

The parser checks names and arity against it, the tracer records its rows, the lowering writes
each row's ``code`` template as Python, `nc primitives` and the docs list it, and the op
database in ``tests/opdb.py`` tests every public row.

A ``code`` template is the PyTorch expression the primitive equals, with ``{0}``, ``{1}`` for
the arguments, ``{*}`` for all of them, ``{dt}`` for the computation dtype, and named static
parameters such as ``{i}``. Variadic arithmetic folds left through the binary template, so
``(+ a b c)`` is ``(a + b) + c``. Batch axes lead and primitives work on the last axes, so one
template serves every batch shape. Templates are ours alone: program text never reaches them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import attrs
import torch

from . import runtime
from . import shapes as sh

Template = str | Callable[..., str]


@attrs.frozen(kw_only=True)
class Primitive:
    """One row of the table."""

    name: str
    arity: tuple[int, int | None]  # (min, max); max None for variadic
    family: str
    code: Template  # binary step for folded variadics; callable(shapes, **params) for shape-dependent code
    shape: sh.ShapeRule = sh.elementwise
    doc: str = ""
    aliases: tuple[str, ...] = ()
    ranks: tuple[int, ...] = ()  # least per-example rank of each argument (the last repeats)
    scalar_args: bool = False  # every argument must be a scalar (vec)
    differentiable: bool = True
    py_scalars: bool = False  # constant arguments may stay Python numbers in the generated code
    align: bool = False  # give arguments equal per-example rank (unsqueeze) before the op
    static: tuple[str, ...] = ()  # names of trailing arguments that must be integer constants
    variadic: str = ""  # "fold" (left fold), "chain" (comparisons), "" (fixed or n-ary template)
    unary: str | None = None  # template for a single argument of a folded variadic
    identity: float | None = None  # value of the empty call of a folded variadic
    by_arity: dict[int, str] = attrs.field(factory=dict)  # templates that depend on the call's arity
    public: bool = True

    def rank_needed(self, position: int) -> int:
        if not self.ranks:
            return 0
        return self.ranks[min(position, len(self.ranks) - 1)]

    def template(self, nargs: int, shapes: list[sh.Shape], params: dict[str, Any]) -> str:
        code = self.by_arity.get(nargs, self.code)
        return code(shapes, **params) if callable(code) else code

    def arity_text(self) -> str:
        lo, hi = self.arity
        if hi is None:
            return f"{lo}+"
        return str(lo) if lo == hi else f"{lo}-{hi}" if hi - lo > 1 else f"{lo} or {hi}"


def _ref_code(shapes: list[sh.Shape], *, i: int, j: int | None = None) -> str:
    rank = len(shapes[0])
    if j is not None:
        return "{0}[..., " + f"{i}, {j}" + ", :" * (rank - 2) + "]"
    return "{0}[..., " + f"{i}" + ", :" * (rank - 1) + "]"


def _solve_code(shapes: list[sh.Shape]) -> str:
    if len(shapes[1]) == 1:
        return "torch.linalg.solve_ex({0}, {1}.unsqueeze(-1)).result.squeeze(-1)"
    return "torch.linalg.solve_ex({0}, {1}).result"


def _scale_shape(s: sh.Shape, v: sh.Shape) -> sh.Shape:
    if s:
        raise sh.ShapeMismatch(f"scale needs a scalar first, got {sh.show(s)}")
    return v


def _align_code(shapes: list[sh.Shape], *, rank: int, extra: int) -> str:
    return "{0}" + f".unsqueeze({-rank - 1})" * extra


ROWS: list[Primitive] = []


def row(**kw: Any) -> None:
    ROWS.append(Primitive(**kw))


def unary(name: str, code: str, doc: str, *, aliases: tuple[str, ...] = (), differentiable: bool = True) -> None:
    row(name=name, arity=(1, 1), family="elementwise", code=code, doc=doc, aliases=aliases,
        differentiable=differentiable)


def binary(name: str, code: str, doc: str, *, py: bool = False, aliases: tuple[str, ...] = ()) -> None:
    row(name=name, arity=(2, 2), family="elementwise", code=code, doc=doc, aliases=aliases,
        align=True, py_scalars=py)


# ---- arithmetic -------------------------------------------------------------------------------
row(name="+", arity=(0, None), family="arithmetic", code="{0} + {1}", variadic="fold", identity=0.0,
    unary="{0}", align=True, py_scalars=True, doc="sum, folded left; (+) is 0")
row(name="-", arity=(1, None), family="arithmetic", code="{0} - {1}", variadic="fold",
    unary="torch.neg({0})", align=True, py_scalars=True, doc="negation, or subtraction folded left")
row(name="*", arity=(0, None), family="arithmetic", code="{0} * {1}", variadic="fold", identity=1.0,
    unary="{0}", align=True, py_scalars=True, doc="product, folded left; (*) is 1")
row(name="/", arity=(1, None), family="arithmetic", code="{0} / {1}", variadic="fold",
    unary="torch.reciprocal({0})", align=True, py_scalars=True, doc="reciprocal, or division folded left")
binary("pow", "torch.pow({0}, {1})", "power x^y", py=True, aliases=("expt",))
unary("abs", "torch.abs({0})", "absolute value")
unary("sign", "torch.sign({0})", "sign: -1, 0 or 1", differentiable=False)
row(name="min", arity=(1, None), family="arithmetic", code="torch.minimum({0}, {1})", variadic="fold",
    unary="{0}", align=True, doc="elementwise minimum")
row(name="max", arity=(1, None), family="arithmetic", code="torch.maximum({0}, {1})", variadic="fold",
    unary="{0}", align=True, doc="elementwise maximum")
binary("modulo", "torch.remainder({0}, {1})", "floored remainder, sign of the divisor (R7RS floor-remainder)")
binary("remainder", "torch.fmod({0}, {1})", "truncated remainder, sign of the dividend (R7RS truncate-remainder)")
binary("quotient", "torch.div({0}, {1}, rounding_mode='trunc')", "truncated quotient")
unary("sqrt", "torch.sqrt({0})", "square root (NaN below 0)")
unary("square", "torch.square({0})", "x*x")
unary("cube", "torch.pow({0}, 3)", "x^3")
unary("exp", "torch.exp({0})", "e^x")
unary("expm1", "torch.expm1({0})", "e^x - 1, accurate near 0")
unary("log1p", "torch.log1p({0})", "log(1 + x), accurate near 0")
row(name="log", arity=(1, 2), family="elementwise", code="torch.log({0})", align=True,
    by_arity={2: "torch.log({0}) / torch.log({1})"}, doc="natural log; (log x b) is log(x)/log(b)")
for _name in ("sin", "cos", "tan", "asin", "acos", "sinh", "cosh", "tanh", "asinh", "acosh", "atanh"):
    unary(_name, f"torch.{_name}({{0}})", f"{_name}")
row(name="atan", arity=(1, 2), family="elementwise", code="torch.atan({0})", align=True,
    by_arity={2: "torch.atan2({0}, {1})"}, doc="arctangent; (atan y x) is the two-argument arctangent")
unary("floor", "torch.floor({0})", "round down (zero gradient)", differentiable=False)
unary("ceiling", "torch.ceil({0})", "round up (zero gradient)", differentiable=False)
unary("round", "torch.round({0})", "round half to even (zero gradient)", differentiable=False)
unary("truncate", "torch.trunc({0})", "round toward zero (zero gradient)", differentiable=False)
row(name="clamp", arity=(3, 3), family="elementwise", code="torch.clamp({0}, {1}, {2})", align=True,
    doc="(clamp x lo hi)")
binary("hypot", "torch.hypot({0}, {1})", "sqrt(x^2 + y^2) without overflow")
unary("sigmoid", "torch.sigmoid({0})", "1 / (1 + e^-x)")
unary("softplus", "torch.logaddexp({0}, torch.zeros_like({0}))", "log(1 + e^x), full precision for every x")
unary("relu", "torch.relu({0})", "max(x, 0)")
unary("erf", "torch.erf({0})", "error function")
unary("lgamma", "torch.lgamma({0})", "log |Gamma(x)|")

# ---- comparison and logic (results are 0/1 in the computation dtype, no gradient) -------------
for _name, _op in (("=", "=="), ("<", "<"), (">", ">"), ("<=", "<="), (">=", ">=")):
    row(name=_name, arity=(2, None), family="comparison", code=f"({{0}} {_op} {{1}}).to({{dt}})",
        variadic="chain", align=True, py_scalars=True, differentiable=False,
        doc=f"x {_op} y, chained as in R7RS")
row(name="and", arity=(1, None), family="logic", code="torch.logical_and({0} != 0, {1} != 0).to({dt})",
    variadic="fold", unary="({0} != 0).to({dt})", align=True, differentiable=False,
    doc="elementwise and of truth values (both sides evaluated)")
row(name="or", arity=(1, None), family="logic", code="torch.logical_or({0} != 0, {1} != 0).to({dt})",
    variadic="fold", unary="({0} != 0).to({dt})", align=True, differentiable=False,
    doc="elementwise or of truth values (both sides evaluated)")
row(name="not", arity=(1, 1), family="logic", code="({0} == 0).to({dt})", differentiable=False, doc="1 where x is 0")
row(name="zero?", arity=(1, 1), family="logic", code="({0} == 0).to({dt})", differentiable=False, doc="x = 0")
row(name="positive?", arity=(1, 1), family="logic", code="({0} > 0).to({dt})", differentiable=False, doc="x > 0")
row(name="negative?", arity=(1, 1), family="logic", code="({0} < 0).to({dt})", differentiable=False, doc="x < 0")

# ---- vectors (last axis) ----------------------------------------------------------------------
row(name="vec", arity=(1, None), family="vector", code="_rt.stack_last({*})", shape=sh.stack_scalars,
    scalar_args=True, doc="stack scalars into a vector; [a b c]")
row(name="ref", arity=(2, 3), family="vector", code=_ref_code, shape=sh.ref, ranks=(1,), static=("i", "j"),
    aliases=("vector-ref",), doc="(ref v i): element i (row i of a matrix); (ref m i j): one element")
row(name="dot", arity=(2, 2), family="vector", code="({0} * {1}).sum(-1)", shape=sh.dot, ranks=(1, 1),
    align=True, doc="dot product over the last axis")
row(name="cross", arity=(2, 2), family="vector",
    code="torch.linalg.cross(*torch.broadcast_tensors({0}, {1}), dim=-1)", shape=sh.cross,
    ranks=(1, 1), align=True, doc="cross product of 3-vectors (batch axes broadcast)")
row(name="norm", arity=(1, 1), family="vector", code="torch.linalg.vector_norm({0}, dim=-1)",
    shape=sh.vector_reduce, ranks=(1,), doc="Euclidean norm over the last axis")
row(name="normalize", arity=(1, 1), family="vector",
    code="{0} / torch.linalg.vector_norm({0}, dim=-1, keepdim=True)", shape=sh.vector_same, ranks=(1,),
    doc="v / (norm v), no clamp")
for _name, _code, _doc in (("vsum", "{0}.sum(-1)", "sum"), ("vmean", "{0}.mean(-1)", "mean"),
                           ("vmin", "{0}.amin(-1)", "minimum"), ("vmax", "{0}.amax(-1)", "maximum"),
                           ("vprod", "{0}.prod(-1)", "product")):
    row(name=_name, arity=(1, 1), family="reduction", code=_code, ranks=(1,), doc=f"{_doc} over the last axis",
        shape=sh.nonempty_reduce if _name in ("vmin", "vmax") else sh.vector_reduce)
row(name="scale", arity=(2, 2), family="vector", code="{0} * {1}", shape=_scale_shape, ranks=(0, 1),
    align=True, py_scalars=True, doc="scalar times vector or matrix")
row(name="vlen", arity=(1, 1), family="vector", code="", shape=sh.vector_reduce, ranks=(1,),
    aliases=("vector-length",), differentiable=False, doc="length of the last axis, a constant")
row(name="concat", arity=(1, None), family="vector", code="_rt.concat_last({*})", shape=sh.concat, ranks=(1,),
    doc="join vectors")
row(name="roll", arity=(2, 2), family="vector", code="torch.roll({0}, {k}, -1)", shape=sh.vector_same,
    ranks=(1,), static=("k",), doc="periodic shift on the last axis, as torch.roll")
row(name="cumsum", arity=(1, 1), family="vector", code="torch.cumsum({0}, -1)", shape=sh.vector_same,
    ranks=(1,), doc="running sum over the last axis")
row(name="laplacian1d", arity=(2, 2), family="vector", code="_rt.laplacian1d({0}, {1})", shape=sh.laplacian,
    ranks=(1, 0), py_scalars=True,
    doc="(u[i-1] - 2u[i] + u[i+1]) / dx^2 at interior points, 0 at both ends")

# ---- matrices (last two axes) ------------------------------------------------------------------
row(name="mat", arity=(1, None), family="matrix", code="_rt.stack_rows({*})", shape=sh.stack_rows, ranks=(1,),
    doc="stack row vectors into a matrix")
row(name="matmul", arity=(2, 2), family="matrix", code="torch.matmul({0}, {1})", shape=sh.matmul, ranks=(2, 2),
    doc="matrix product")
row(name="matvec", arity=(2, 2), family="matrix", code="torch.matmul({0}, {1}.unsqueeze(-1)).squeeze(-1)",
    shape=sh.matvec, ranks=(2, 1), doc="matrix times vector")
row(name="outer", arity=(2, 2), family="matrix", code="{0}.unsqueeze(-1) * {1}.unsqueeze(-2)", shape=sh.outer,
    ranks=(1, 1), doc="outer product")
row(name="transpose", arity=(1, 1), family="matrix", code="{0}.transpose(-1, -2)", shape=sh.transpose,
    ranks=(2,), doc="swap the last two axes")
row(name="trace", arity=(1, 1), family="matrix", code="torch.diagonal({0}, dim1=-2, dim2=-1).sum(-1)",
    shape=sh.trace, ranks=(2,), doc="sum of the diagonal")
row(name="det", arity=(1, 1), family="matrix", code="torch.linalg.det({0})", shape=sh.det, ranks=(2,),
    doc="determinant")
row(name="inv", arity=(1, 1), family="matrix", code="torch.linalg.inv_ex({0}).inverse", shape=sh.inv,
    ranks=(2,), doc="inverse (torch.linalg.inv_ex: never raises on singular input)")
row(name="solve", arity=(2, 2), family="matrix", code=_solve_code, shape=sh.solve, ranks=(2, 1),
    doc="x with A x = b (torch.linalg.solve_ex)")
row(name="diag", arity=(1, 1), family="matrix", code="torch.diag_embed({0})", shape=sh.diag, ranks=(1,),
    doc="vector to diagonal matrix")
row(name="expm", arity=(1, 1), family="matrix", code="torch.linalg.matrix_exp({0})", shape=sh.expm, ranks=(2,),
    doc="matrix exponential")
row(name="eye", arity=(1, 1), family="constructor", code="torch.eye({n}, dtype={dt})", shape=sh.sized_matrix,
    static=("n",), differentiable=False, doc="(eye n): n x n identity")
row(name="zeros", arity=(1, 1), family="constructor", code="torch.zeros({n}, dtype={dt})", shape=sh.sized_vector,
    static=("n",), differentiable=False, doc="(zeros n): length-n vector of 0")
row(name="ones", arity=(1, 1), family="constructor", code="torch.ones({n}, dtype={dt})", shape=sh.sized_vector,
    static=("n",), differentiable=False, doc="(ones n): length-n vector of 1")

# ---- internal operations the tracer records (not callable from programs) ----------------------
_INTERNAL = dict(family="internal", public=False, differentiable=True)
row(name="%align", arity=(1, 1), code=_align_code, **_INTERNAL,
    doc="insert size-1 axes in front of the per-example axes")
row(name="%truth", arity=(1, 1), code="{0} != 0", **_INTERNAL, doc="test value to boolean mask")
row(name="%not", arity=(1, 1), code="torch.logical_not({0})", **_INTERNAL, doc="negate a mask")
row(name="%and", arity=(2, 2), code="torch.logical_and({0}, {1})", **_INTERNAL, doc="and of masks")
row(name="%any", arity=(1, 1), code="{0}.any(-1)", **_INTERNAL, doc="mask true anywhere on the last axis")
row(name="%where", arity=(3, 3), code="torch.where({0}, {1}, {2})", **_INTERNAL, doc="select by mask")
row(name="%guard", arity=(2, 2), code="torch.where({0}, {1}, {1}.detach())", **_INTERNAL,
    doc="value where the mask holds, a gradient-free copy elsewhere (keeps NaN out of gradients)")
row(name="%stack", arity=(1, None), code="_rt.stack_axis({axis}, {*})", **_INTERNAL,
    doc="stack states of an integration on a new per-example axis")
row(name="%nan", arity=(0, 0), code="torch.full((), float('nan'), dtype={dt})", **_INTERNAL,
    doc="a NaN of the computation dtype")

TABLE: dict[str, Primitive] = {}
for _row in ROWS:
    for _key in (_row.name, *_row.aliases):
        TABLE[_key] = _row

PUBLIC_NAMES: tuple[str, ...] = tuple(sorted(k for k, r in TABLE.items() if r.public))


def lookup(name: str) -> Primitive | None:
    """The public primitive called ``name`` (or one of its aliases), or None."""
    prim = TABLE.get(name)
    return prim if prim is not None and prim.public else None


_FOLD_ENV = {"torch": torch, "_rt": runtime}

MAX_FOLDERS = 1024
"""Most folding functions kept (least recently used dropped): static parameters such as
``(roll v k)``'s ``k`` are part of a template, so the set of templates grows with programs."""


def evaluator(code: str, nargs: int) -> Callable[..., Any]:
    """A Python function of ``nargs`` tensors computing a formatted template (cached, bounded).

    A template of all its arguments (``{*}``, as ``vec`` and ``concat``) is made variadic, so
    its function does not depend on how many arguments a call has.
    """
    if "{*}" in code and "{0}" not in code:
        return _evaluator(code, -1)
    return _evaluator(code, nargs)


@functools.lru_cache(maxsize=MAX_FOLDERS)
def _evaluator(code: str, nargs: int) -> Callable[..., Any]:
    if nargs < 0:
        body = code.replace("{*}", "*_a").format(dt="_dt")
        params = "*_a"
    else:
        names = [f"a{k}" for k in range(nargs)]
        body = format_code(code, names, {"dt": "_dt"})
        params = ", ".join(names)
    # The template text is nc's own (see the table above); no program text is ever formatted in.
    return eval(f"lambda _dt, {params}: {body}", dict(_FOLD_ENV))  # type: ignore[no-any-return]  # noqa: S307


def format_code(code: str, args: list[str], params: dict[str, Any]) -> str:
    """Fill a template with argument expressions and static parameters."""
    return code.replace("{*}", ", ".join(args)).format(*args, **params)


def code_of(name: str) -> str:
    """The fixed template of a row (internal rows have one)."""
    code = TABLE[name].code
    assert isinstance(code, str)
    return code


def table_rows() -> list[Primitive]:
    """The public rows, in table order."""
    return [r for r in ROWS if r.public]
