"""Per-example shape rules used by the primitive table.

A per-example shape is a tuple of sizes; a size is None where it is not known yet (compile
time without ``shapes=``). A rule takes the argument shapes (and static parameters) and returns
the result shape, or raises `ShapeMismatch` with a message that names what was expected.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

Shape = tuple[int | None, ...]
ShapeRule = Callable[..., Shape]


class ShapeMismatch(ValueError):
    """Raised by a shape rule; the tracer turns it into an `nc.ShapeError` at the call's span."""


def show(shape: Shape) -> str:
    if not shape:
        return "a scalar"
    kind = {1: "a vector", 2: "a matrix"}.get(len(shape), f"a rank-{len(shape)} array")
    return f"{kind} of shape [{' '.join('?' if s is None else str(s) for s in shape)}]"


def broadcast(*shapes: Shape) -> Shape:
    """NumPy broadcasting of per-example shapes (aligned on the right)."""
    rank = max((len(s) for s in shapes), default=0)
    out: list[int | None] = []
    for axis in range(-rank, 0):
        sizes = {s[axis] for s in shapes if len(s) >= -axis} - {1}
        known = {n for n in sizes if n is not None}
        if len(known) > 1:
            raise ShapeMismatch(f"shapes {' and '.join(show(s) for s in shapes)} do not broadcast")
        out.append(known.pop() if known else (None if None in sizes else 1))
    return tuple(out)


def same(a: int | None, b: int | None) -> bool:
    return a is None or b is None or a == b


def elementwise(*shapes: Shape, **_: Any) -> Shape:
    return broadcast(*shapes)


def need_rank(shape: Shape, rank: int, what: str) -> None:
    if len(shape) < rank:
        raise ShapeMismatch(f"{what} needs {'a vector' if rank == 1 else 'a matrix'}, got {show(shape)}")


def vector_reduce(v: Shape, **_: Any) -> Shape:
    need_rank(v, 1, "this reduction")
    return v[:-1]


def nonempty_reduce(v: Shape, **_: Any) -> Shape:
    """A reduction with no identity (vmin, vmax): the last axis must not be empty."""
    need_rank(v, 1, "this reduction")
    if v[-1] == 0:
        raise ShapeMismatch("has no value for an empty vector (the last axis has size 0)")
    return v[:-1]


def vector_same(v: Shape, *rest: Shape, **_: Any) -> Shape:
    need_rank(v, 1, "this operation")
    return broadcast(v, *rest)


def dot(u: Shape, w: Shape, **_: Any) -> Shape:
    need_rank(u, 1, "dot")
    need_rank(w, 1, "dot")
    if not same(u[-1], w[-1]):
        raise ShapeMismatch(f"dot needs vectors of equal length, got {show(u)} and {show(w)}")
    return broadcast(u, w)[:-1]


def cross(u: Shape, w: Shape, **_: Any) -> Shape:
    for v in (u, w):
        need_rank(v, 1, "cross")
        if not same(v[-1], 3):
            raise ShapeMismatch(f"cross needs 3-vectors, got {show(u)} and {show(w)}")
    return broadcast(u, w)


def stack_scalars(*items: Shape, **_: Any) -> Shape:
    for s in items:
        if s:
            raise ShapeMismatch(f"vec stacks scalars, got {show(s)}; use concat to join vectors")
    return (len(items),)


def stack_rows(*rows: Shape, **_: Any) -> Shape:
    for r in rows:
        if len(r) != 1:
            raise ShapeMismatch(f"mat stacks row vectors, got {show(r)}")
    sizes = {r[0] for r in rows if r[0] is not None}
    if len(sizes) > 1:
        raise ShapeMismatch(f"mat needs rows of equal length, got lengths {sorted(sizes)}")
    return (len(rows), sizes.pop() if sizes else None)


def concat(*items: Shape, **_: Any) -> Shape:
    for s in items:
        if len(s) != 1:
            raise ShapeMismatch(f"concat joins vectors, got {show(s)}")
    sizes = [s[0] for s in items]
    return (None if None in sizes else sum(s for s in sizes if s is not None),)


def ref(v: Shape, *, i: int, j: int | None = None) -> Shape:
    need_rank(v, 1, "ref")
    if j is not None:
        need_rank(v, 2, "ref with two indices")
    for axis, index in ((-len(v), i), (-len(v) + 1, j)):
        if index is None:
            continue
        size = v[axis]
        if size is not None and index >= size:
            raise ShapeMismatch(f"index {index} is out of range for {show(v)} (valid: 0 to {size - 1})")
    return v[1:] if j is None else v[2:]


def square_matrix(m: Shape, what: str) -> None:
    need_rank(m, 2, what)
    if not same(m[-1], m[-2]):
        raise ShapeMismatch(f"{what} needs a square matrix, got {show(m)}")


def det(m: Shape, **_: Any) -> Shape:
    square_matrix(m, "det")
    return m[:-2]


def inv(m: Shape, **_: Any) -> Shape:
    square_matrix(m, "inv")
    return m


def expm(m: Shape, **_: Any) -> Shape:
    square_matrix(m, "expm")
    return m


def trace(m: Shape, **_: Any) -> Shape:
    square_matrix(m, "trace")
    return m[:-2]


def transpose(m: Shape, **_: Any) -> Shape:
    need_rank(m, 2, "transpose")
    return (*m[:-2], m[-1], m[-2])


def matmul(a: Shape, b: Shape, **_: Any) -> Shape:
    need_rank(a, 2, "matmul")
    need_rank(b, 2, "matmul")
    if not same(a[-1], b[-2]):
        raise ShapeMismatch(f"matmul: {show(a)} times {show(b)}: inner sizes {a[-1]} and {b[-2]} differ")
    return (*broadcast(a[:-2], b[:-2]), a[-2], b[-1])


def matvec(a: Shape, v: Shape, **_: Any) -> Shape:
    need_rank(a, 2, "matvec")
    need_rank(v, 1, "matvec")
    if not same(a[-1], v[-1]):
        raise ShapeMismatch(f"matvec: {show(a)} times {show(v)}: sizes {a[-1]} and {v[-1]} differ")
    return (*broadcast(a[:-2], v[:-1]), a[-2])


def solve(a: Shape, b: Shape, **_: Any) -> Shape:
    square_matrix(a, "solve")
    need_rank(b, 1, "solve")
    if not same(a[-1], b[-1] if len(b) == 1 else b[-2]):
        raise ShapeMismatch(f"solve: {show(a)} does not fit a right-hand side of {show(b)}")
    return b


def outer(u: Shape, w: Shape, **_: Any) -> Shape:
    need_rank(u, 1, "outer")
    need_rank(w, 1, "outer")
    return (*broadcast(u[:-1], w[:-1]), u[-1], w[-1])


def diag(v: Shape, **_: Any) -> Shape:
    need_rank(v, 1, "diag")
    return (*v, v[-1])


def laplacian(u: Shape, dx: Shape, **_: Any) -> Shape:
    need_rank(u, 1, "laplacian1d")
    if dx:
        raise ShapeMismatch(f"laplacian1d needs a scalar step dx, got {show(dx)}")
    return u


def sized_vector(*, n: int) -> Shape:
    return (n,)


def sized_matrix(*, n: int) -> Shape:
    return (n, n)


def rank_of(shapes: Sequence[Shape]) -> int:
    return max((len(s) for s in shapes), default=0)
