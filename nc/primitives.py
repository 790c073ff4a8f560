"""The table of primitives: one row per primitive, the single source of truth.

The parser checks names and arity against it, the tracer records its rows, the lowering writes
each row's ``code`` template as Python, `nc primitives` and the docs list it, and the op
database in ``tests/opdb.py`` tests every public row.

A ``code`` template is the PyTorch expression the primitive equals, with ``{0}``, ``{1}`` for
the arguments, ``{*}`` for all of them, ``{dt}`` for the computation dtype, and named static
parameters such as ``{i}``. Variadic arithmetic folds left through the binary template, so
``(+ a b c)`` is ``(a + b) + c``. Batch axes lead and primitives work on the last axes, so one
template serves every batch shape. Templates are ours alone: program text never reaches them.

Everything the rest of nc knows about a primitive is a field of its row: the domain checked
with ``check_domain=True`` (`Domain`, per number of recorded arguments), the boolean mask a
comparison gives an ``if`` (``mask``), which arguments are static (``static``, ``dynamic``),
and a tracing hook for a row that records no template of its own (``hook``). Internal rows
(``public=False``) describe the operations the tracer records for branches, loops, domain
checks and learned components, so every recorded equation names a row (`recorded_row`).

Adding a primitive: one row here, one entry in ``tests/opdb.py``, one in ``tests/refeval.py``
``PRIMITIVES`` and one in ``tests/strategies.py`` ``GEN_PRIMITIVES`` (or its commented
exclusion list); ``tests/test_table_coverage.py`` names whatever is missing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import attrs
import torch

from . import runtime
from . import shapes as sh
from .equations import Var  # not nc.program: it imports nc.fx, which imports this module
from .errors import ShapeError, Span

Template = str | Callable[..., str]


@attrs.frozen(kw_only=True)
class Domain:
    """Where a primitive is defined; checked at run time with ``check_domain=True``."""

    ok: Callable[..., torch.Tensor]  # the call's arguments -> True where they are inside the domain
    shown: int  # the argument whose offending value the error shows
    message: str  # "sqrt of a negative number"; the error adds ": sqrt got -4"
    doc: str  # the words in the list of docs/errors.md: "negative"
    outside: tuple[Any, ...]  # arguments outside the domain (tests/test_table_coverage.py calls with them)


class Recorder(Protocol):
    """What a trace hook may use of the tracer."""

    def record(self, prim: str, code: str, args: Sequence[Any], pshape: sh.Shape, span: Span | None) -> Var: ...


Hook = Callable[[Recorder, "Primitive", list[Any], Span | None], Any]


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
    # Checked with check_domain=True, by the number of arguments of the recorded equation (so the
    # reciprocal (/ x) and the division (/ a b), or (log x) and (log x b), have their own).
    domains: dict[int, Domain] = attrs.field(factory=dict)
    mask: str = ""  # a comparison: its boolean expression (code is this .to({dt})), an if's mask as it is
    dynamic: int | None = None  # leading traced arguments when fewer than all but `static` (ref: 1)
    ranks_by_arity: dict[int, tuple[int, ...]] = attrs.field(factory=dict)  # `ranks` by the call's arity
    hook: Hook | None = None  # traces the call itself instead of recording `code` (vlen)
    data_index: str = ""  # the internal row that gathers when a static argument depends on the data (ref, roll)
    literal_vector: bool = False  # a call on literals only is one constant vector, built directly (vec)
    # The result keeps the arguments' promotion: an undeclared input used through this row is
    # retraced at a higher rank where the row needs one (elementwise rows and aligned ones).
    promotes: bool = attrs.field(default=attrs.Factory(lambda self: self.align, takes_self=True))

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


def _ref_at_shape(v: sh.Shape, i: sh.Shape, **_: Any) -> sh.Shape:
    """``(ref v i)`` with an index known only per element: the index is a scalar."""
    sh.need_rank(v, 1, "ref")
    if i:
        raise sh.ShapeMismatch(f"ref needs a single number as index, got {sh.show(i)}")
    return v[1:]


def _roll_by_shape(v: sh.Shape, k: sh.Shape, **_: Any) -> sh.Shape:
    """``(roll v k)`` with a shift known only per element: the shift is a scalar."""
    sh.need_rank(v, 1, "roll")
    if k:
        raise sh.ShapeMismatch(f"roll needs a single number as shift, got {sh.show(k)}")
    return v


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


def _vlen_code(shapes: list[sh.Shape], *, rank: int) -> str:
    # the size, with the argument's batch axes (as vmap would give)
    return "torch.full({0}.shape[:{0}.dim() - " + str(rank) + "], {0}.shape[-1], dtype={dt}, device={0}.device)"


def _domain_code(shapes: list[sh.Shape], *, site: int, masked: bool) -> str:
    args = [f"{{{k}}}" for k in range(len(shapes))]
    return f"DOMAIN({site}, {args.pop(0) if masked else 'None'}, " + ", ".join(args) + ")"


def _learned_code(shapes: list[sh.Shape], *, index: int) -> str:
    if len(shapes) == 1:
        return f"X{index}({{0}})"
    ranks = tuple(len(s) for s in shapes)
    return f"X{index}(*_rt.broadcast_batch(({{*}},), {ranks!r}))"


def _trace_vlen(tr: Recorder, prim: Primitive, args: list[Any], span: Span | None) -> Any:
    """``(vlen v)``: a constant where the size is known, else read at run time."""
    v = args[0]
    shape = v.pshape if isinstance(v, Var) else tuple(v.shape)
    if not shape:
        raise ShapeError(f"vlen needs a vector, got {sh.show(shape)}", span)
    if shape[-1] is None:
        # Unknown until a call: read the size at run time. Control flow on it is not possible
        # without the size (the tracer raises SizeDependent there, and calls are traced per shape).
        out = tr.record("%vlen", TABLE["%vlen"].template(1, [shape], {"rank": len(shape)}), [v], (), span)
        out.sizedep = True
        return out
    return torch.tensor(float(shape[-1]), dtype=torch.float64)


def _integral(x: torch.Tensor) -> torch.Tensor:
    return x == torch.round(x)


def _by_zero(message: str, doc: str = "by zero") -> dict[int, Domain]:
    return {2: Domain(ok=lambda a, b: b != 0, shown=1, message=message, doc=doc, outside=(1.0, 0.0))}


ROWS: list[Primitive] = []


def row(**kw: Any) -> None:
    ROWS.append(Primitive(**kw))


def unary(name: str, code: str, doc: str, *, aliases: tuple[str, ...] = (), differentiable: bool = True,
          domain: Domain | None = None) -> None:
    row(name=name, arity=(1, 1), family="elementwise", code=code, doc=doc, aliases=aliases,
        differentiable=differentiable, promotes=True, domains={1: domain} if domain else {})


def binary(name: str, code: str, doc: str, *, py: bool = False, aliases: tuple[str, ...] = (),
           domains: dict[int, Domain] | None = None) -> None:
    row(name=name, arity=(2, 2), family="elementwise", code=code, doc=doc, aliases=aliases,
        align=True, py_scalars=py, domains=domains or {})


def on(ok: Callable[..., torch.Tensor], message: str, doc: str, *outside: Any, shown: int = 0) -> Domain:
    """A `Domain`: the predicate, the error message, the docs' words and arguments outside it."""
    return Domain(ok=ok, shown=shown, message=message, doc=doc, outside=outside)


# ---- arithmetic -------------------------------------------------------------------------------
row(name="+", arity=(0, None), family="arithmetic", code="{0} + {1}", variadic="fold", identity=0.0,
    unary="{0}", align=True, py_scalars=True, doc="sum, folded left; (+) is 0")
row(name="-", arity=(1, None), family="arithmetic", code="{0} - {1}", variadic="fold",
    unary="torch.neg({0})", align=True, py_scalars=True, doc="negation, or subtraction folded left")
row(name="*", arity=(0, None), family="arithmetic", code="{0} * {1}", variadic="fold", identity=1.0,
    unary="{0}", align=True, py_scalars=True, doc="product, folded left; (*) is 1")
row(name="/", arity=(1, None), family="arithmetic", code="{0} / {1}", variadic="fold",
    unary="torch.reciprocal({0})", align=True, py_scalars=True, doc="reciprocal, or division folded left",
    domains={2: on(lambda a, b: b != 0, "division by zero", "division by zero", 1.0, 0.0, shown=1),
             1: on(lambda x: x != 0, "reciprocal of zero", "reciprocal of zero", 0.0)})
binary("pow", "torch.pow({0}, {1})", "power x^y", py=True, aliases=("expt",),
       domains={2: on(lambda a, b: (a > 0) | ((a == 0) & (b >= 0)) | ((a < 0) & _integral(b)),
                      "pow of a negative base with a non-integer exponent, or of 0 with a negative one",
                      "negative base with a non-integer exponent, zero with a negative one", -2.0, 0.5)})
unary("abs", "torch.abs({0})", "absolute value")
unary("sign", "torch.sign({0})", "sign: -1, 0 or 1", differentiable=False)
row(name="min", arity=(1, None), family="arithmetic", code="torch.minimum({0}, {1})", variadic="fold",
    unary="{0}", align=True, doc="elementwise minimum")
row(name="max", arity=(1, None), family="arithmetic", code="torch.maximum({0}, {1})", variadic="fold",
    unary="{0}", align=True, doc="elementwise maximum")
binary("modulo", "torch.remainder({0}, {1})", "floored remainder, sign of the divisor (R7RS floor-remainder)",
       domains=_by_zero("modulo by zero"))
binary("remainder", "torch.fmod({0}, {1})", "truncated remainder, sign of the dividend (R7RS truncate-remainder)",
       domains=_by_zero("remainder by zero"))
binary("quotient", "torch.div({0}, {1}, rounding_mode='trunc')", "truncated quotient",
       domains=_by_zero("quotient by zero"))
unary("sqrt", "torch.sqrt({0})", "square root (NaN below 0)",
      domain=on(lambda x: x >= 0, "sqrt of a negative number", "negative", -4.0))
unary("square", "torch.square({0})", "x*x")
unary("cube", "torch.pow({0}, 3)", "x^3")
unary("exp", "torch.exp({0})", "e^x")
unary("expm1", "torch.expm1({0})", "e^x - 1, accurate near 0")
unary("log1p", "torch.log1p({0})", "log(1 + x), accurate near 0",
      domain=on(lambda x: x > -1, "log1p of a number not above -1", "at most -1", -1.0))
row(name="log", arity=(1, 2), family="elementwise", code="torch.log({0})", align=True,
    by_arity={2: "torch.log({0}) / torch.log({1})"}, doc="natural log; (log x b) is log(x)/log(b)",
    domains={1: on(lambda x: x > 0, "log of a non-positive number", "not positive", 0.0),
             2: on(lambda x, b: (x > 0) & (b > 0) & (b != 1),
                   "log of a non-positive number, or with a base that is not positive and not 1",
                   "or, with a base, a base not positive or 1", 2.0, 1.0)})
_UNIT = on(lambda x: x.abs() <= 1, "", "outside [-1, 1]", 1.5)
for _name, _domain in (("sin", None), ("cos", None), ("tan", None),
                       ("asin", attrs.evolve(_UNIT, message="asin outside [-1, 1]")),
                       ("acos", attrs.evolve(_UNIT, message="acos outside [-1, 1]")),
                       ("sinh", None), ("cosh", None), ("tanh", None), ("asinh", None),
                       ("acosh", on(lambda x: x >= 1, "acosh below 1", "below 1", 0.5)),
                       ("atanh", on(lambda x: x.abs() < 1, "atanh outside (-1, 1)", "outside (-1, 1)", 1.0))):
    unary(_name, f"torch.{_name}({{0}})", f"{_name}", domain=_domain)
row(name="atan", arity=(1, 2), family="elementwise", code="torch.atan({0})", align=True,
    by_arity={2: "torch.atan2({0}, {1})"}, doc="arctangent; (atan y x) is the two-argument arctangent")
unary("floor", "torch.floor({0})", "round down (zero gradient)", differentiable=False)
unary("ceiling", "torch.ceil({0})", "round up (zero gradient)", differentiable=False)
unary("round", "torch.round({0})", "round half to even (zero gradient)", differentiable=False)
unary("truncate", "torch.trunc({0})", "round toward zero (zero gradient)", differentiable=False)
row(name="clamp", arity=(3, 3), family="elementwise", code="torch.clamp({0}, {1}, {2})", align=True,
    doc="(clamp x lo hi)")
binary("hypot", "torch.hypot({0}, {1})", "sqrt(x^2 + y^2) without overflow")
binary("logaddexp", "torch.logaddexp({0}, {1})", "log(e^x + e^y) without overflow")
binary("xlogy", "torch.special.xlogy({0}, {1})", "x log(y), 0 where x is 0 (entropies)",
       domains={2: on(lambda x, y: (x == 0) | (y > 0), "xlogy of a non-positive y where x is not 0",
                      "y not positive where x is not 0", 1.0, -1.0, shown=1)})
unary("sigmoid", "torch.sigmoid({0})", "1 / (1 + e^-x)")
unary("softplus", "torch.logaddexp({0}, torch.zeros_like({0}))", "log(1 + e^x), full precision for every x")
unary("relu", "torch.relu({0})", "max(x, 0)")
unary("erf", "torch.erf({0})", "error function")
unary("lgamma", "torch.lgamma({0})", "log |Gamma(x)|",
      domain=on(lambda x: ~((x <= 0) & _integral(x)), "lgamma at a non-positive integer (a pole)", "a pole", -2.0))

# ---- comparison and logic (results are 0/1 in the computation dtype, no gradient) -------------
for _name, _op in (("=", "=="), ("<", "<"), (">", ">"), ("<=", "<="), (">=", ">=")):
    row(name=_name, arity=(2, None), family="comparison", code=f"({{0}} {_op} {{1}}).to({{dt}})",
        mask=f"{{0}} {_op} {{1}}", variadic="chain", align=True, py_scalars=True, differentiable=False,
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
    scalar_args=True, literal_vector=True, doc="stack scalars into a vector; [a b c]")
row(name="ref", arity=(2, 3), family="vector", code=_ref_code, shape=sh.ref, ranks=(1,), static=("i", "j"),
    dynamic=1, data_index="%ref", ranks_by_arity={3: (2,)}, aliases=("vector-ref",), doc="(ref v i): element i (row i of a matrix); (ref m i j): one element")
row(name="dot", arity=(2, 2), family="vector", code="({0} * {1}).sum(-1)", shape=sh.dot, ranks=(1, 1),
    align=True, doc="dot product over the last axis")
row(name="cross", arity=(2, 2), family="vector",
    code="torch.linalg.cross(*torch.broadcast_tensors({0}, {1}), dim=-1)", shape=sh.cross,
    ranks=(1, 1), align=True, doc="cross product of 3-vectors (batch axes broadcast)")
row(name="norm", arity=(1, 1), family="vector", code="torch.linalg.vector_norm({0}, dim=-1)",
    shape=sh.vector_reduce, ranks=(1,), doc="Euclidean norm over the last axis")
row(name="normalize", arity=(1, 1), family="vector",
    code="{0} / torch.linalg.vector_norm({0}, dim=-1, keepdim=True)", shape=sh.vector_same, ranks=(1,),
    doc="v / (norm v), no clamp",
    # answers per vector (keepdim=True); the check compares at the argument's shape
    domains={1: on(lambda v: torch.linalg.vector_norm(v, dim=-1, keepdim=True) != 0, "normalize of a zero vector",
                   "a zero vector", [0.0, 0.0, 0.0])})
for _name, _code, _doc in (("vsum", "{0}.sum(-1)", "sum"), ("vmean", "{0}.mean(-1)", "mean"),
                           ("vmin", "{0}.amin(-1)", "minimum"), ("vmax", "{0}.amax(-1)", "maximum"),
                           ("vprod", "{0}.prod(-1)", "product")):
    row(name=_name, arity=(1, 1), family="reduction", code=_code, ranks=(1,), doc=f"{_doc} over the last axis",
        shape=sh.nonempty_reduce if _name in ("vmin", "vmax") else sh.vector_reduce)
row(name="scale", arity=(2, 2), family="vector", code="{0} * {1}", shape=_scale_shape, ranks=(0, 1),
    align=True, py_scalars=True, doc="scalar times vector or matrix")
row(name="vlen", arity=(1, 1), family="vector", code="", shape=sh.vector_reduce, ranks=(1,), hook=_trace_vlen,
    aliases=("vector-length",), differentiable=False, doc="length of the last axis, a constant")
row(name="concat", arity=(1, None), family="vector", code="_rt.concat_last({*})", shape=sh.concat, ranks=(1,),
    doc="join vectors")
row(name="roll", arity=(2, 2), family="vector", code="torch.roll({0}, {k}, -1)", shape=sh.vector_same,
    ranks=(1,), static=("k",), data_index="%roll", doc="periodic shift on the last axis, as torch.roll")
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
row(name="%vlen", arity=(1, 1), code=_vlen_code, **_INTERNAL, doc="the length of a last axis known only at run time")
row(name="%domain", arity=(1, None), code=_domain_code, **_INTERNAL,
    doc="check_domain=True: DOMAIN(site, mask or None, args) raises where the arguments leave the domain")
row(name="%truth[]", arity=(2, 2), code="{0} != {1}", **_INTERNAL,  # code: the comparison's `mask`
    doc="an if's mask taken from a comparison directly; recorded as %truth[<name of the comparison>]")
row(name="%ref", arity=(2, 2), code="_rt.ref_at({0}, {1}, {n}, {rank})", shape=_ref_at_shape, **_INTERNAL,
    doc="(ref v i) with an index that depends on the data: a per-element gather, NaN out of range",
    domains={2: Domain(ok=lambda i, n: (i == torch.round(i)) & (i >= 0) & (i < n), shown=0,
                       message="ref needs an integral index in range", doc="index not integral or out of range",
                       outside=(5.0, 3.0))})
row(name="%roll", arity=(2, 2), code="_rt.roll_by({0}, {1}, {rank})", shape=_roll_by_shape, **_INTERNAL,
    doc="(roll v k) with a shift that depends on the data: a per-element gather, NaN for a non-integral shift",
    domains={1: Domain(ok=lambda k: k == torch.round(k), shown=0, message="roll needs an integral shift",
                       doc="shift not integral", outside=(0.5,))})
row(name="%push", arity=(4, 4), code="_rt.stack_push({0}, {1}, {2}, {3})", **_INTERNAL,
    doc="recursion on data: write a frame on top of each element's stack where the mask holds")
row(name="%peek", arity=(3, 3), code="_rt.stack_peek({0}, {1}, {2})", **_INTERNAL,
    doc="recursion on data: the top frame of each element's stack, detached where the loop's mask does not hold")
row(name="%pack", arity=(1, None), code="_rt.pack_frame({ranks}, {*})", **_INTERNAL,
    doc="recursion on data: flatten a frame's values into one row")
row(name="%field", arity=(1, 1), code="_rt.frame_field({0}, {start}, {shape})", **_INTERNAL,
    doc="recursion on data: one value of a frame row")
row(name="%loop", arity=(0, None), code="", **_INTERNAL,
    doc="a masked loop: its body is a region of equations, lowered to _rt.masked_loop")
row(name="%scan", arity=(1, None), code="", **_INTERNAL,
    doc="a rolled integration: its region is one step (k, state) -> state, run `steps` times; "
        "the value stacks the states before the loop and every new one. In loop mode (`trips`, "
        "a rolled constant-trip loop) the region is one iteration, run `trips` times; the value "
        "is the final state, a tuple read with %item")
row(name="%item", arity=(1, 1), code="{0}[{index}]", **_INTERNAL,
    doc="one loop variable of a rolled loop's final state (a %scan in loop mode)")
row(name="learned:", arity=(1, None), code=_learned_code, **_INTERNAL,
    doc="a call of a learned component (X<index> in generated code); recorded as learned:<name>")

TABLE: dict[str, Primitive] = {}
for _row in ROWS:
    for _key in (_row.name, *_row.aliases):
        TABLE[_key] = _row

PUBLIC_NAMES: tuple[str, ...] = tuple(sorted(k for k, r in TABLE.items() if r.public))


def recorded_row(prim: str) -> Primitive:
    """The row of a recorded equation's ``prim`` (``%truth[<]`` and ``learned:f`` name a family of rows)."""
    if prim.startswith("learned:"):
        return TABLE["learned:"]
    if prim.endswith("]") and "[" in prim:
        return TABLE[prim[: prim.index("[")] + "[]"]
    return TABLE[prim]


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
