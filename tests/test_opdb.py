"""The op-database harness: every entry of `opdb` through the whole pipeline (`nc.compile_fn`).

Checks per entry (DESIGN.md, "The op database"): coverage of the table, value against the numpy
reference (float32 and float64), exactness against the hand-written PyTorch expression (bit for
bit for elementwise rows, a few ulp otherwise), gradcheck/gradgradcheck in float64 (or a zero,
NaN-free gradient for rows without one), vmap against a loop and against leading batch axes,
jacrev against jacfwd and vmap(jacrev) against per-example jacrev, dtype and device of the
result (the meta device stands in for a second device on CPU-only machines; CUDA when present).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import opdb
import pytest
import torch
from torch.func import jacfwd, jacrev, vmap

import nc
from nc.primitives import lookup, table_rows

ENTRIES = opdb.ENTRIES
BY_LABEL = opdb.by_label()
WITH_INPUTS = [e for e in ENTRIES if e.shapes]
CONSTANT = [e for e in ENTRIES if not e.shapes]
DIFFERENTIABLE = [e for e in WITH_INPUTS if e.differentiable]
NOT_DIFFERENTIABLE = [e for e in WITH_INPUTS if not e.differentiable]
DTYPES = [torch.float32, torch.float64]
BATCH = 5
CUDA = torch.cuda.is_available()


def ids(entries: Sequence[opdb.OpEntry]) -> list[str]:
    return [e.label for e in entries]


def dtype_id(d: torch.dtype) -> str:
    return str(d).removeprefix("torch.")


_COMPILED: dict[str, nc.CompiledFunction] = {}


def compiled(entry: opdb.OpEntry) -> nc.CompiledFunction:
    f = _COMPILED.get(entry.label)
    if f is None:
        f = nc.compile_fn(entry.src, shapes=entry.shapes)
        _COMPILED[entry.label] = f
    return f


def inputs(entry: opdb.OpEntry, batch: tuple[int, ...], dtype: torch.dtype, device: str = "cpu",
           salt: int = 0) -> list[torch.Tensor]:
    rng = np.random.default_rng(zlib.crc32(entry.label.encode()) + salt)
    return [torch.tensor(a, dtype=dtype, device=device) for a in entry.sample(rng, batch)]


def reference(entry: opdb.OpEntry, xs: Sequence[torch.Tensor]) -> torch.Tensor:
    """The numpy reference in float64, on the inputs as given (float32-rounded ones included)."""
    out = entry.ref(*(x.detach().cpu().double().numpy() for x in xs))
    return torch.as_tensor(np.asarray(out, dtype=np.float64))


def assert_same(got: torch.Tensor, want: torch.Tensor, entry: opdb.OpEntry, what: str) -> None:
    """Bit for bit for exact (elementwise) entries, within ``entry.ulps`` ulp otherwise."""
    assert got.shape == want.shape, f"{what}: shape {tuple(got.shape)} != {tuple(want.shape)}"
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype} != {want.dtype}"
    if entry.exact:
        assert torch.equal(got, want), f"{what}: not bit-identical, max diff {(got - want).abs().max()}"
        return
    assert_ulps(got, want, entry.ulps, what)


def assert_ulps(got: torch.Tensor, want: torch.Tensor, ulps: float, what: str) -> None:
    eps = torch.finfo(want.dtype).eps
    scale = float(want.abs().max()) if want.numel() else 0.0
    torch.testing.assert_close(got, want, rtol=ulps * eps, atol=ulps * eps * max(scale, 1e-300),
                               msg=lambda m: f"{what}: {m}")


@contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


# ---- coverage ------------------------------------------------------------------------------------
# That every public name has an entry, and every entry a public row: tests/test_table_coverage.py.
ALIASES = [(alias, r.name) for r in table_rows() for alias in r.aliases]


def test_there_are_aliases() -> None:
    assert {a for a, _ in ALIASES} == {"expt", "vector-ref", "vector-length"}


@pytest.mark.parametrize(("alias", "canonical"), ALIASES, ids=[a for a, _ in ALIASES])
def test_alias_resolves_to_the_same_row(alias: str, canonical: str) -> None:
    assert lookup(alias) is lookup(canonical)
    entry = next(e for e in ENTRIES if e.name == alias)
    f = compiled(entry)
    g = nc.compile_fn(entry.src.replace(f"({alias} ", f"({canonical} "), shapes=entry.shapes)
    xs = inputs(entry, (BATCH,), torch.float64)
    assert f.code(*xs) == g.code(*xs)
    assert torch.equal(f(*xs), g(*xs))


@pytest.mark.parametrize("entry", WITH_INPUTS, ids=ids(WITH_INPUTS))
def test_entry_fits_its_row(entry: opdb.OpEntry) -> None:
    """The inputs are those declared, and the program records the row (unless it folds)."""
    f = compiled(entry)
    assert f.inputs == entry.inputs
    assert f.ranks == {n: len(s) for n, s in entry.shapes.items()}
    row = lookup(entry.row)
    assert row is not None
    if entry.records:
        xs = inputs(entry, (), torch.float64)
        prims = [eq.prim for eq in f.program(*xs).eqns]
        assert entry.row in prims, f"{entry.src} records {prims}, not {entry.row}"
        assert entry.differentiable == row.differentiable, "the row's differentiable flag disagrees"


# ---- value against the numpy reference -----------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("entry", WITH_INPUTS, ids=ids(WITH_INPUTS))
def test_value(entry: opdb.OpEntry, dtype: torch.dtype) -> None:
    f = compiled(entry)
    for batch in ((), (32,)):
        xs = inputs(entry, batch, dtype)
        got = f(*xs)
        want = reference(entry, xs)
        assert got.dtype == dtype
        rtol, atol = entry.tol32 if dtype == torch.float32 else entry.tol64
        torch.testing.assert_close(got.double(), want, rtol=rtol, atol=atol)


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("entry", CONSTANT, ids=ids(CONSTANT))
def test_constant_program(entry: opdb.OpEntry, dtype: torch.dtype) -> None:
    """A program with no inputs computes in the default dtype, equal to the reference."""
    with default_dtype(dtype):
        f = nc.compile_fn(entry.src)
        assert f.inputs == ()
        got = f()
        want = entry.torch_fn()
    assert got.dtype == dtype
    assert torch.equal(got, want)
    assert torch.equal(got.double(), torch.as_tensor(entry.ref(), dtype=torch.float64))


# ---- exactness against the hand-written PyTorch expression ----------------------------------------
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("entry", WITH_INPUTS, ids=ids(WITH_INPUTS))
def test_exact(entry: opdb.OpEntry, dtype: torch.dtype) -> None:
    f = compiled(entry)
    for batch in ((), (BATCH,), (4, 16)):  # 64 examples: enough to see a last-bit difference
        xs = inputs(entry, batch, dtype)
        assert_same(f(*xs), entry.torch_fn(*xs), entry, f"batch {batch}")


# ---- gradients -----------------------------------------------------------------------------------
@pytest.mark.parametrize("entry", DIFFERENTIABLE, ids=ids(DIFFERENTIABLE))
def test_gradcheck(entry: opdb.OpEntry) -> None:
    f = compiled(entry)
    xs = [x.requires_grad_() for x in inputs(entry, (2,), torch.float64)]
    assert torch.autograd.gradcheck(f, xs)
    if f(*xs).requires_grad:  # gradgradcheck cannot call a function whose output has no graph
        assert torch.autograd.gradgradcheck(f, xs)
    else:
        assert entry.label in CONSTANT_VALUED, "a differentiable entry's output has no gradient"


CONSTANT_VALUED = {"(laplacian1d u dx) ; short"}  # fewer than 3 points: 0, whatever u and dx


@pytest.mark.parametrize("entry", NOT_DIFFERENTIABLE, ids=ids(NOT_DIFFERENTIABLE))
def test_no_gradient(entry: opdb.OpEntry) -> None:
    """Rows without a gradient give a zero gradient, or none, and never NaN."""
    f = compiled(entry)
    xs = [x.requires_grad_() for x in inputs(entry, (BATCH,), torch.float64)]
    out = f(*xs)
    assert not out.isnan().any()
    if out.requires_grad:
        grads = torch.autograd.grad(out.sum(), xs, allow_unused=True)
        for g in grads:
            assert g is None or (torch.isfinite(g).all() and not g.any())


# ---- vmap ----------------------------------------------------------------------------------------
def loop(f: Any, xs: Sequence[torch.Tensor], batched: Sequence[bool], n: int) -> torch.Tensor:
    return torch.stack([f(*(x[i] if b else x for x, b in zip(xs, batched))) for i in range(n)])


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("entry", WITH_INPUTS, ids=ids(WITH_INPUTS))
def test_vmap(entry: opdb.OpEntry, dtype: torch.dtype) -> None:
    f = compiled(entry)
    xs = inputs(entry, (BATCH,), dtype)
    n = len(xs)
    looped = loop(f, xs, [True] * n, BATCH)
    assert_same(vmap(f)(*xs), looped, entry, "vmap over every input")
    assert_same(f(*xs), looped, entry, "leading batch axes on every input")
    for k in range(n):  # one input batched, the others shared
        args = [x if j == k else x[0] for j, x in enumerate(xs)]
        batched = [j == k for j in range(n)]
        looped = loop(f, args, batched, BATCH)
        in_dims = tuple(0 if b else None for b in batched)
        assert_same(vmap(f, in_dims=in_dims)(*args), looped, entry, f"vmap over input {k}")
        assert_same(f(*args), looped, entry, f"leading batch axes on input {k}")


@pytest.mark.parametrize("entry", [e for e in WITH_INPUTS if len(e.shapes) > 1],
                         ids=ids([e for e in WITH_INPUTS if len(e.shapes) > 1]))
def test_batch_axes_broadcast(entry: opdb.OpEntry) -> None:
    """Batch axes [K, 1] and [N] broadcast to [K, N], as PyTorch broadcasts (LANGUAGE.md 4)."""
    f = compiled(entry)
    k, n = 2, 3
    xs = inputs(entry, (k * n,), torch.float64)
    first = xs[0][:k].unsqueeze(1)  # [K, 1, ...]
    rest = [x[:n] for x in xs[1:]]  # [N, ...]
    want = torch.stack([torch.stack([f(first[i, 0], *(r[j] for r in rest)) for j in range(n)])
                        for i in range(k)])
    assert_same(f(first, *rest), want, entry, "batch axes [K, 1] and [N]")


# ---- jacobians -----------------------------------------------------------------------------------
@pytest.mark.parametrize("entry", WITH_INPUTS, ids=ids(WITH_INPUTS))
def test_jacobians(entry: opdb.OpEntry) -> None:
    f = compiled(entry)
    argnums = tuple(range(len(entry.shapes)))
    xs = inputs(entry, (), torch.float64)
    jr = jacrev(f, argnums=argnums)(*xs)
    jf = jacfwd(f, argnums=argnums)(*xs)
    for a, b in zip(jr, jf):
        assert torch.isfinite(a).all()
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-13)
        if not entry.differentiable:
            assert not a.any()
    xb = inputs(entry, (3,), torch.float64, salt=1)
    vj = vmap(jacrev(f, argnums=argnums))(*xb)
    per = [jacrev(f, argnums=argnums)(*(x[i] for x in xb)) for i in range(3)]
    for k, got in enumerate(vj):
        assert_same(got, torch.stack([p[k] for p in per]), entry, f"vmap(jacrev) wrt input {k}")


# ---- dtype and device ----------------------------------------------------------------------------
@pytest.mark.parametrize("entry", WITH_INPUTS, ids=ids(WITH_INPUTS))
def test_dtype_and_device(entry: opdb.OpEntry) -> None:
    f = compiled(entry)
    for dtype in DTYPES:
        out = f(*inputs(entry, (BATCH,), dtype))
        assert out.dtype == dtype and out.device.type == "cpu"
    # The meta device stands in for a second device: constants must follow the inputs.
    shape = f(*inputs(entry, (BATCH,), torch.float32)).shape
    meta = f(*inputs(entry, (BATCH,), torch.float32, device="meta"))
    assert meta.device.type == "meta" and meta.shape == shape and meta.dtype == torch.float32


MIXED = [e for e in WITH_INPUTS if len(e.shapes) > 1]


@pytest.mark.parametrize("entry", MIXED, ids=ids(MIXED))
def test_mixed_dtypes_promote(entry: opdb.OpEntry) -> None:
    """PyTorch promotion: float32 inputs with one float64 input give a float64 result.

    Only the dtype and the value (to float32 accuracy) are checked: whether the float32 inputs
    meet first in float32, as in hand-written PyTorch, is left open.
    """
    f = compiled(entry)
    xs = inputs(entry, (BATCH,), torch.float32)
    xs[-1] = xs[-1].double()
    out = f(*xs)
    assert out.dtype == torch.float64
    rtol, atol = entry.tol32
    torch.testing.assert_close(out, reference(entry, xs), rtol=rtol, atol=atol)


@pytest.mark.skipif(not CUDA, reason="needs CUDA")
@pytest.mark.parametrize("entry", WITH_INPUTS, ids=ids(WITH_INPUTS))
def test_cuda(entry: opdb.OpEntry) -> None:
    check_on_device(entry, "cuda")


def check_on_device(entry: opdb.OpEntry, device: str) -> None:
    """On ``device``: dtype and device kept, the hand-written expression matched, the value right."""
    f = compiled(entry)
    for dtype in DTYPES:
        cpu = inputs(entry, (BATCH,), dtype)
        xs = [x.to(device) for x in cpu]
        out = f(*xs)
        assert out.dtype == dtype and out.device == xs[0].device
        assert_same(out, entry.torch_fn(*xs), entry, "cuda")
        rtol, atol = entry.tol32 if dtype == torch.float32 else entry.tol64
        torch.testing.assert_close(out.cpu().double(), reference(entry, cpu), rtol=rtol, atol=atol)


# ---- semantics the reference alone would not pin down ---------------------------------------------
SPOT = [
    ("(modulo x y)", (-7.0, 2.0), 1.0),
    ("(modulo x y)", (7.0, -2.0), -1.0),
    ("(modulo x y)", (-7.0, -2.0), -1.0),
    ("(remainder x y)", (-7.0, 2.0), -1.0),
    ("(remainder x y)", (7.0, -2.0), 1.0),
    ("(quotient x y)", (-7.0, 2.0), -3.0),
    ("(quotient x y)", (7.0, -2.0), -3.0),
    ("(round x)", (0.5,), 0.0),
    ("(round x)", (1.5,), 2.0),
    ("(round x)", (2.5,), 2.0),
    ("(round x)", (-2.5,), -2.0),
    ("(softplus x)", (30.0,), 30.0 + math.log1p(math.exp(-30.0))),
    ("(softplus x)", (-40.0,), math.log1p(math.exp(-40.0))),
    ("(softplus x)", (800.0,), 800.0),
    ("(softplus x)", (-800.0,), 0.0),
    ("(sqrt x)", (-1.0,), math.nan),
    ("(/ x y)", (1.0, 0.0), math.inf),
    ("(/ x y)", (-1.0, 0.0), -math.inf),
    ("(log x)", (0.0,), -math.inf),
    ("(< x y z)", (1.0, 2.0, 2.0), 0.0),
    ("(<= x y z)", (1.0, 2.0, 2.0), 1.0),
    ("(lgamma x)", (0.5,), math.lgamma(0.5)),  # within 4 ulp: torch's lgamma is not correctly rounded
    ("(erf x)", (0.5,), math.erf(0.5)),
    ("(log x b)", (8.0, 2.0), 3.0),
]


@pytest.mark.parametrize(("src", "args", "want"), SPOT, ids=[f"{s}{a}" for s, a, _ in SPOT])
def test_spot_values(src: str, args: tuple[float, ...], want: float) -> None:
    got = nc.compile_fn(src)(*(torch.tensor(a, dtype=torch.float64) for a in args))
    assert got.dtype == torch.float64
    if math.isnan(want):
        assert got.isnan()
    elif math.isinf(want):
        assert float(got) == want
    else:
        assert abs(float(got) - want) <= 4 * math.ulp(want)


# ---- constant folding at compile time, in float64 -------------------------------------------------
def _t64(v: float) -> torch.Tensor:
    return torch.tensor(v, dtype=torch.float64)


# (program, the PyTorch computation it must equal bit for bit, a math value, ulps allowed from it).
# The exact oracle is what PyTorch computes for the same operation on this CPU: nc promises to
# match PyTorch, and PyTorch's float64 sqrt, exp, ... may differ from the correctly rounded
# `math` value by an ulp on some CPUs (torch.sqrt(2.0) is one ulp low on AVX-512 Xeons). The
# math value, within its ulps, checks that the PyTorch expression is the right one.
FOLDS = [
    ("(sqrt 2)", lambda: torch.sqrt(_t64(2.0)), math.sqrt(2.0), 1),
    ("(/ 1 3)", lambda: _t64(1.0) / _t64(3.0), 1 / 3, 0),
    ("(- (+ 1 1e-10) 1)", lambda: (_t64(1.0) + _t64(1e-10)) - _t64(1.0), (1 + 1e-10) - 1, 0),
    ("(* 3 (/ 1 3))", lambda: _t64(3.0) * (_t64(1.0) / _t64(3.0)), 3 * (1 / 3), 0),
    ("(pow 2 0.5)", lambda: torch.pow(_t64(2.0), _t64(0.5)), 2**0.5, 1),
    ("(exp 1)", lambda: torch.exp(_t64(1.0)), math.e, 1),
    ("(log 10)", lambda: torch.log(_t64(10.0)), math.log(10.0), 1),
    ("(sin 1)", lambda: torch.sin(_t64(1.0)), math.sin(1.0), 1),
    ("(atan 1 2)", lambda: torch.atan2(_t64(1.0), _t64(2.0)), math.atan2(1.0, 2.0), 1),
    ("(lgamma 0.5)", lambda: torch.lgamma(_t64(0.5)), math.lgamma(0.5), 4),
    ("(erf 0.5)", lambda: torch.erf(_t64(0.5)), math.erf(0.5), 1),
    ("(hypot 3 4)", lambda: torch.hypot(_t64(3.0), _t64(4.0)), 5.0, 0),
    ("(/ 1 0)", lambda: _t64(1.0) / _t64(0.0), math.inf, 0),
    ("(/ -1 0)", lambda: _t64(-1.0) / _t64(0.0), -math.inf, 0),
    ("(/ 0 0)", lambda: _t64(0.0) / _t64(0.0), math.nan, 0),
    ("(sqrt -1)", lambda: torch.sqrt(_t64(-1.0)), math.nan, 0),
    ("(log 0)", lambda: torch.log(_t64(0.0)), -math.inf, 0),
    ("(exp 1000)", lambda: torch.exp(_t64(1000.0)), math.inf, 0),
]


@pytest.mark.parametrize(("src", "torch_value", "want", "ulps"), FOLDS, ids=[s for s, *_ in FOLDS])
def test_constant_folding(src: str, torch_value: Callable[[], torch.Tensor], want: float, ulps: int) -> None:
    with default_dtype(torch.float64):
        got = nc.compile_fn(src)()
    assert got.dtype == torch.float64 and got.dim() == 0
    expected = torch_value()
    assert torch.equal(got, expected) or (got.isnan() and expected.isnan())  # exactly what PyTorch computes
    if math.isnan(want):
        assert got.isnan()
    elif ulps == 0 or math.isinf(want):
        assert float(got) == want
    else:
        assert abs(float(got) - want) <= ulps * math.ulp(want)
    got32 = nc.compile_fn(src)()  # folded in float64, then given the default dtype
    assert got32.dtype == torch.float32
    assert torch.equal(got32, got.float()) or (got32.isnan() and got.isnan())


def test_folding_happens_in_float64_before_the_inputs_dtype() -> None:
    f = nc.compile_fn("(* x (- (+ 1 1e-10) 1))")
    x = torch.ones((), dtype=torch.float32)
    assert f(x) == torch.tensor((1 + 1e-10) - 1, dtype=torch.float64).float() != 0
    assert [eq.prim for eq in f.program(x).eqns] == ["*"]  # the constant part left no equation
    g = nc.compile_fn("(+ x (sqrt 2))")
    assert "sqrt" not in [eq.prim for eq in g.program(x).eqns]
    assert torch.equal(g(x), x + torch.sqrt(_t64(2.0)).item())  # PyTorch's sqrt, which may differ from math's


def test_dividing_by_zero_folds_without_raising() -> None:
    f = nc.compile_fn("(+ x (/ 1 0))")
    assert f(torch.tensor(1.0, dtype=torch.float64)) == math.inf
