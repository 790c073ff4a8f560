"""The scalarizing C generator: a flat ``torch.fx`` graph of ATen operations as C statements.

Every node of the graph has a static shape (``node.meta["val"]``). Views (select, slice, view,
expand, permute, ...) are index maps computed here, in Python, by applying the view to a
``meta`` tensor with the base's strides, so they cost nothing in C; every other node gets a
buffer of its element count. Small buffers (at most `UNROLL` elements) are C scalars written
element by element, which the C compiler keeps in registers; larger ones are arrays in one
workspace, reused once dead, written by loops with static strides. Operations without tensor
inputs (``eye``, zeros) are constants. Any other operation raises `Unsupported` with its name.

`Codegen` plans the values and writes the statements of one step; the programs around it (the
loop over the steps, the loss, the lanes) are in `nc.c_programs`. Arithmetic is in the tensors'
dtype with literals exact (hexadecimal floats), as torch computes it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import attrs
import torch
import torch.fx
from torch import Tensor

from .c_build import Unsupported

__all__ = ["CTYPES", "UNROLL", "Buffer", "Codegen", "View", "coalesce", "const_decl", "contiguous", "declare",
           "literal", "op_name"]

UNROLL = 16
"""Buffers of at most this many elements are C scalars (registers) and written unrolled."""


# ---------------------------------------------------------------------------------------------
# Buffers and views: what a node's value is in C.

CTYPES = {torch.float64: "double", torch.float32: "float", torch.bool: "unsigned char",
          torch.int64: "long long", torch.int32: "int"}


@attrs.define(eq=False)
class Buffer:
    """A C buffer: ``kind`` is ``scalars`` (locals ``name_0, name_1, ...``), ``array`` (a slice of
    the workspace, or a local array for the loop's state), ``const`` (a static array) or ``ptr``
    (an input pointer)."""

    name: str
    numel: int
    dtype: torch.dtype
    kind: str = "scalars"
    last_use: int = -1

    def ref(self, index: int | str) -> str:
        if self.kind == "scalars":
            assert isinstance(index, int), (self.name, index)
            return self.name if self.name == "k" else f"{self.name}_{index}"
        return f"{self.name}[{index}]"


@attrs.frozen
class View:
    """A node's value: ``buf[offset + sum(i_d * strides[d])]`` for index ``i`` of ``shape``."""

    buf: Buffer
    shape: tuple[int, ...]
    strides: tuple[int, ...]
    offset: int = 0

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    def broadcast_to(self, shape: Sequence[int]) -> View:
        pad = len(shape) - len(self.shape)
        strides = [0] * pad + [0 if n == 1 and m != 1 else s for n, m, s in zip(self.shape, shape[pad:], self.strides)]
        return View(self.buf, tuple(shape), tuple(strides), self.offset)

    def at(self, index: Sequence[int]) -> str:
        return self.buf.ref(self.offset + sum(i * s for i, s in zip(index, self.strides)))

    def at_loop(self, names: Sequence[str]) -> str:
        terms = [str(self.offset)] + [f"{n}*{s}" for n, s in zip(names, self.strides) if s]
        return self.buf.ref(" + ".join(terms))


def contiguous(shape: Sequence[int]) -> tuple[int, ...]:
    strides, acc = [], 1
    for n in reversed(shape):
        strides.append(acc)
        acc *= max(n, 1)
    return tuple(reversed(strides))


# ---------------------------------------------------------------------------------------------
# Operations.

aten, prims = torch.ops.aten, torch.ops.prims
VIEWS = {aten.select.int, aten.slice.Tensor, aten.unsqueeze.default, aten.squeeze.dim, aten.squeeze.dims,
         aten.squeeze.default, aten.view.default, aten._unsafe_view.default, aten.reshape.default,
         aten.expand.default, aten.permute.default, aten.t.default, aten.transpose.int, aten.alias.default,
         aten.as_strided.default, aten.diagonal.default, aten.detach.default, aten.clone.default,
         aten.lift_fresh_copy.default, aten.view_as.default, aten.expand_as.default}
"""Ops whose value is an index map of their first argument (clone too: nothing is written in place)."""
RESHAPES = {aten.view.default, aten._unsafe_view.default, aten.reshape.default}

UNARY = {"neg": "(-{a})", "sin": "sin{f}({a})", "cos": "cos{f}({a})", "tan": "tan{f}({a})", "exp": "exp{f}({a})",
         "log": "log{f}({a})", "sqrt": "sqrt{f}({a})", "rsqrt": "(({t})1 / sqrt{f}({a}))", "tanh": "tanh{f}({a})",
         "sigmoid": "(({t})1 / (({t})1 + exp{f}(-{a})))", "abs": "fabs{f}({a})", "reciprocal": "(({t})1 / {a})",
         "sign": "(({t})(({a}) > 0) - ({t})(({a}) < 0))", "asin": "asin{f}({a})", "acos": "acos{f}({a})",
         "atan": "atan{f}({a})", "sinh": "sinh{f}({a})", "cosh": "cosh{f}({a})", "asinh": "asinh{f}({a})",
         "acosh": "acosh{f}({a})", "atanh": "atanh{f}({a})", "log1p": "log1p{f}({a})", "expm1": "expm1{f}({a})",
         "log2": "log2{f}({a})", "log10": "log10{f}({a})", "exp2": "exp2{f}({a})", "floor": "floor{f}({a})",
         "ceil": "ceil{f}({a})", "trunc": "trunc{f}({a})", "erf": "erf{f}({a})", "erfc": "erfc{f}({a})",
         "square": "({a} * {a})", "logical_not": "(!{a})"}
BINARY = {"add": "({a} + {b})", "sub": "({a} - {b})", "mul": "({a} * {b})", "div": "({a} / {b})",
          "atan2": "atan2{f}({a}, {b})", "pow": "pow{f}({a}, {b})", "fmod": "fmod{f}({a}, {b})",
          "maximum": "({a} != {a} ? {a} : {b} != {b} ? {b} : {a} > {b} ? {a} : {b})",
          "minimum": "({a} != {a} ? {a} : {b} != {b} ? {b} : {a} < {b} ? {a} : {b})",
          "lt": "({a} < {b})", "le": "({a} <= {b})", "gt": "({a} > {b})", "ge": "({a} >= {b})",
          "tanh_backward": "({a} * (({t})1 - {b} * {b}))", "sigmoid_backward": "({a} * (({t})1 - {b}) * {b})",
          "eq": "({a} == {b})", "ne": "({a} != {b})", "logical_and": "({a} && {b})", "logical_or": "({a} || {b})"}
COMPARISONS = {"lt", "le", "gt", "ge", "eq", "ne", "logical_and", "logical_or"}
CREATION = {aten.eye.default, aten.zeros.default, aten.ones.default, aten.full.default, aten.scalar_tensor.default,
            aten._efficientzerotensor.default, aten.arange.default, aten.arange.start, aten.arange.start_step}
POW_SPECIAL = {2.0: "({a} * {a})", 1.0: "{a}", 0.5: "sqrt{f}({a})", -1.0: "(({t})1 / {a})",
               3.0: "({a} * {a} * {a})", -2.0: "(({t})1 / ({a} * {a}))"}
"""Exponents torch's pow computes without pow() (so must we, to match it bit for bit)."""


def op_name(target: Any) -> str:
    """``aten.mul.Tensor`` -> ``mul`` (prims and the Scalar/Tensor overloads alike)."""
    return str(getattr(target, "__name__", target)).split(".")[0]  # in-place ops (add_) stay unsupported


def literal(x: float | int | bool, dtype: torch.dtype) -> str:
    """A C literal of ``x`` in ``dtype``: exact (hexadecimal floats), cast as torch casts a
    Python scalar to a tensor's dtype."""
    ct = CTYPES[dtype]
    if dtype in (torch.bool,):
        return "1" if x else "0"
    if dtype in (torch.int64, torch.int32):
        return f"(({ct}){int(x)})"
    x = float(x)
    if math.isnan(x):
        text = "NAN"
    elif math.isinf(x):
        text = "INFINITY" if x > 0 else "(-INFINITY)"
    else:
        text = float.hex(x)
    return f"(({ct}){text})"


@attrs.define
class Assign:
    """``out[i] = expr(ins[i]...)`` over ``out``'s shape (contiguous), or a reduction."""

    out: View
    template: str
    ins: list[View | str]
    ctype: str
    func: str = ""
    reduce: tuple[int, ...] | None = None
    scale: str = ""


class Codegen:
    """Turns the step graph into the C function ``nc_loss``; see the module docstring."""

    def __init__(self, graph: torch.fx.GraphModule, dtype: torch.dtype) -> None:
        self.graph, self.dtype = graph, dtype
        self.names = (f"v{i}" for i in itertools.count())
        self.values: dict[torch.fx.Node, View | float | int | bool | None] = {}
        self.ops: list[Assign] = []
        self.consts: list[tuple[Buffer, Tensor]] = []
        self.buffers: list[Buffer] = []

    # -- planning ------------------------------------------------------------------------
    def new_buffer(self, shape: Sequence[int], dtype: torch.dtype, kind: str = "scalars") -> View:
        if dtype not in CTYPES:
            raise Unsupported(f"dtype {dtype}")
        buf = Buffer(next(self.names), max(math.prod(shape), 1), dtype, kind)
        self.buffers.append(buf)
        return View(buf, tuple(shape), contiguous(shape))

    def arg(self, a: Any) -> View | float | int | bool:
        if isinstance(a, torch.fx.Node):
            v = self.values[a]
            if v is None:
                raise Unsupported(f"a non-tensor value of {a.target}")
            return v
        if isinstance(a, (float, int, bool)):
            return a
        raise Unsupported(f"an argument of type {type(a).__name__}")

    def plan(self, inputs: Sequence[View]) -> list[View]:
        """Values for every node from the placeholders' ``inputs``; the output's views."""
        placeholders = [n for n in self.graph.graph.nodes if n.op == "placeholder"]
        for n, v in zip(placeholders, inputs):
            self.values[n] = v
        live = self.live_nodes()
        for n in self.graph.graph.nodes:
            if n not in live:
                continue
            if n.op == "get_attr":  # a tensor constant the trace captured
                self.values[n] = self.literal_tensor(getattr(self.graph, n.target))
            elif n.op == "call_function":
                self.values[n] = self.node(n)
        out = next(n for n in self.graph.graph.nodes if n.op == "output").args[0]
        return [self.materialized(self.arg(o)) for o in out]

    def live_nodes(self) -> set[torch.fx.Node]:
        out = next(n for n in self.graph.graph.nodes if n.op == "output")
        live: set[torch.fx.Node] = set()
        stack = [out]
        while stack:
            n = stack.pop()
            for a in n.all_input_nodes:
                if a not in live:
                    live.add(a)
                    stack.append(a)
        return live

    def materialized(self, v: Any) -> View:
        if not isinstance(v, View):
            raise Unsupported("an output that is not a tensor")
        return v

    def node(self, n: torch.fx.Node) -> View:
        val = n.meta.get("val")
        if not isinstance(val, Tensor):
            raise Unsupported(f"{n.target} (no tensor value)")
        shape, dtype, t = tuple(val.shape), val.dtype, n.target
        if t in CREATION:
            return self.constant(n, val)
        if t in VIEWS or (t == aten._to_copy.default and n.kwargs.get("dtype", dtype) == dtype
                          and self.input_dtype(n) == dtype):
            return self.view(n)
        if t in (aten._to_copy.default, prims.convert_element_type.default, aten.to.dtype):
            return self.pointwise(n, "{a}", [self.arg(n.args[0])], shape, dtype)
        if t in (aten.stack.default, aten.cat.default):
            return self.concat(n, shape, dtype)
        if t in (aten.sum.dim_IntList, aten.sum.default, aten.mean.dim, aten.mean.default):
            return self.reduction(n, shape, dtype)
        name = op_name(t)
        args = [self.arg(a) for a in n.args]
        if name in ("add", "sub") and "alpha" in n.kwargs and n.kwargs["alpha"] != 1:
            args[1] = self.scaled(args[1], float(n.kwargs["alpha"]), dtype)  # type: ignore[arg-type]
        if name == "where":
            return self.pointwise(n, "({a} ? {b} : {c})", args, shape, dtype)
        if name == "pow" and not isinstance(args[1], View) and float(args[1]) in POW_SPECIAL:
            return self.pointwise(n, POW_SPECIAL[float(args[1])], args[:1], shape, dtype)
        if name in UNARY and len(args) == 1:
            return self.pointwise(n, UNARY[name], args, shape, dtype)
        if name in BINARY and len(args) == 2 and not n.kwargs.keys() - {"alpha"}:
            return self.pointwise(n, BINARY[name], args, shape, dtype, compare=name in COMPARISONS)
        raise Unsupported(f"the operation {t}")

    def input_dtype(self, n: torch.fx.Node) -> torch.dtype | None:
        a = n.args[0]
        val = a.meta.get("val") if isinstance(a, torch.fx.Node) else None
        return val.dtype if isinstance(val, Tensor) else None

    def scaled(self, b: View | float | int | bool, alpha: float, dtype: torch.dtype) -> View | float:
        if not isinstance(b, View):
            return float(b) * alpha
        return self.pointwise(None, "({a} * {b})", [b, alpha], b.shape, dtype)

    def literal_tensor(self, t: Any) -> View:
        if not isinstance(t, Tensor) or t.numel() > 1 << 16 or t.dtype not in CTYPES:
            raise Unsupported(f"a captured constant {type(t).__name__}")
        view = self.new_buffer(tuple(t.shape), t.dtype, "const")
        self.consts.append((view.buf, t.detach().cpu().contiguous().reshape(-1)))
        return view

    def constant(self, n: torch.fx.Node, val: Tensor) -> View:
        kwargs = {**n.kwargs, "device": "cpu"}
        try:
            t = n.target(*n.args, **kwargs)  # type: ignore[operator]
        except Exception as e:  # noqa: BLE001 - any failure: not a constant we can make
            raise Unsupported(f"the constant {n.target}: {e}") from e
        return self.literal_tensor(torch.zeros(val.shape, dtype=val.dtype) if t._is_zerotensor() else t.to(val.dtype))

    def view(self, n: torch.fx.Node) -> View:
        src = self.arg(n.args[0])
        if not isinstance(src, View):
            raise Unsupported(f"{n.target} of a number")
        if n.target in (aten._to_copy.default, aten.clone.default, aten.alias.default, aten.detach.default,
                        aten.lift_fresh_copy.default):
            return src
        rest = [a.meta["val"] if isinstance(a, torch.fx.Node) else a for a in n.args[1:]]
        try:
            r = n.target(self.meta_of(src), *rest, **n.kwargs)  # type: ignore[operator]
        except RuntimeError:
            if n.target not in RESHAPES:
                raise
            src = self.copy(src)  # a reshape that is no view of these strides: copy first
            r = n.target(self.meta_of(src), *rest, **n.kwargs)  # type: ignore[operator]
        return View(src.buf, tuple(r.shape), tuple(r.stride()), r.storage_offset())

    @staticmethod
    def meta_of(v: View) -> Tensor:
        return torch.empty(v.buf.numel, device="meta").as_strided(v.shape, v.strides, v.offset)

    def copy(self, src: View) -> View:
        out = self.new_buffer(src.shape, src.buf.dtype)
        self.ops.append(Assign(out, "{a}", [src], CTYPES[src.buf.dtype]))
        return out

    def pointwise(self, n: torch.fx.Node | None, template: str, args: Sequence[Any], shape: tuple[int, ...],
                  dtype: torch.dtype, compare: bool = False) -> View:
        """``out = template(args)`` elementwise with broadcasting, computed in the result's dtype
        (comparisons: in the inputs' promoted dtype), as torch computes it."""
        if compare:
            metas: list[Any] = [a.meta["val"] if isinstance(a, torch.fx.Node) else a
                                for a in n.args]  # type: ignore[union-attr]
            compute = torch.result_type(*metas)
        else:
            compute = dtype
        if compute not in (torch.float64, torch.float32, torch.bool) and not compare:
            raise Unsupported(f"{n.target if n else 'an operation'} in {compute}")
        ct = CTYPES.get(compute)
        if ct is None:
            raise Unsupported(f"dtype {compute}")
        out = self.new_buffer(shape, dtype)
        ins: list[View | str] = [a.broadcast_to(shape) if isinstance(a, View) else literal(a, compute) for a in args]
        self.ops.append(Assign(out, template, ins, ct, "" if compute == torch.float64 else "f"))
        return out

    def concat(self, n: torch.fx.Node, shape: tuple[int, ...], dtype: torch.dtype) -> View:
        parts = [self.arg(a) for a in n.args[0]]  # type: ignore[union-attr]
        dim = n.args[1] if len(n.args) > 1 else n.kwargs.get("dim", 0)
        assert isinstance(dim, int)
        dim = dim % len(shape)
        out = self.new_buffer(shape, dtype)
        start = 0
        for p in parts:
            if not isinstance(p, View):
                raise Unsupported(f"{n.target} of a number")
            base = self.meta_of(out)
            if n.target == aten.stack.default:
                region = base.select(dim, start)
                start += 1
            else:
                region = base.narrow(dim, start, p.shape[dim] if p.shape else 1)
                start += region.shape[dim]
            dst = View(out.buf, tuple(region.shape), tuple(region.stride()), int(region.storage_offset()))
            self.ops.append(Assign(dst, "{a}", [p.broadcast_to(dst.shape)], CTYPES[dtype],
                                   "" if dtype == torch.float64 else "f"))
        return out

    def reduction(self, n: torch.fx.Node, shape: tuple[int, ...], dtype: torch.dtype) -> View:
        src = self.arg(n.args[0])
        if not isinstance(src, View) or n.kwargs.get("dtype") not in (None, dtype) or dtype not in (
                torch.float64, torch.float32):
            raise Unsupported(f"{n.target} here")
        given: Any = n.args[1] if len(n.args) > 1 and n.args[1] is not None else range(len(src.shape))
        red = tuple(sorted({int(d) % len(src.shape) for d in given})) if src.shape else ()
        count = math.prod(src.shape[d] for d in red)
        out = self.new_buffer(shape, dtype)
        kept = [i for i in range(len(src.shape)) if i not in red]
        # out's index over the kept dims (keepdim only adds 1s): a view of out with src's rank,
        # stride 0 along the summed dims
        strides = list(contiguous([src.shape[i] for i in kept]))
        full = [0] * len(src.shape)
        for i, s in zip(kept, strides):
            full[i] = s
        dst = View(out.buf, src.shape, tuple(full), 0)
        scale = f"/= (({CTYPES[dtype]}){count})" if n.target in (aten.mean.dim, aten.mean.default) else ""
        self.ops.append(Assign(dst, "{a}", [src], CTYPES[dtype], "", red, scale))
        return out

    # -- storage ---------------------------------------------------------------------------
    def decide_storage(self) -> None:
        """Buffers read or written by a loop (more than `UNROLL` elements) are arrays."""
        for op in self.ops:
            if op.out.numel > UNROLL or op.reduce is not None:
                for v in [op.out, *op.ins]:
                    if isinstance(v, View) and v.buf.kind == "scalars" and v.buf.name != "k":
                        v.buf.kind = "array"
        for i, op in enumerate(self.ops):
            for v in [op.out, *op.ins]:
                if isinstance(v, View):
                    v.buf.last_use = i

    def workspace(self, local: set[str], keep: set[str]) -> int:
        """Give each array buffer (but the ``local`` ones) a slice of one workspace, reusing the
        slices of dead buffers (those in ``keep`` live to the end)."""
        free: dict[tuple[int, str], list[int]] = {}
        size = 0
        first: dict[str, int] = {}
        for i, op in enumerate(self.ops):
            first.setdefault(op.out.buf.name, i)
        ends: dict[int, list[Buffer]] = {}
        for b in self.buffers:
            if b.kind == "array" and b.name in first:
                ends.setdefault(b.last_use, []).append(b)
        self.offsets: dict[str, int] = {}
        for i, op in enumerate(self.ops):
            b = op.out.buf
            if b.kind == "array" and b.name not in self.offsets and b.name not in local:
                key = (b.numel, CTYPES[b.dtype])
                if free.get(key):
                    self.offsets[b.name] = free[key].pop()
                else:
                    self.offsets[b.name] = size
                    size += b.numel * 8
            for d in ends.get(i, []):
                if d.name in self.offsets and d.name not in keep:
                    free.setdefault((d.numel, CTYPES[d.dtype]), []).append(self.offsets[d.name])
        return size

    # -- emission --------------------------------------------------------------------------
    def emit_op(self, op: Assign, lines: list[str], depth: int) -> None:
        pad = "  " * depth
        out = op.out

        def cast(v: View, text: str) -> str:  # torch casts each input to the computation's dtype first
            return text if CTYPES[v.buf.dtype] == op.ctype else f"(({op.ctype}){text})"

        if op.reduce is None and out.numel <= UNROLL:
            for idx in itertools.product(*(range(n) for n in out.shape)):
                subs = {k: (cast(v, v.at(idx)) if isinstance(v, View) else v) for k, v in zip("abc", op.ins)}
                lines.append(f"{pad}{out.at(idx)} = ({op.ctype})" + op.template.format(t=op.ctype, f=op.func, **subs) + ";")
            return
        if op.reduce is None:
            views = coalesce([out, *(v for v in op.ins if isinstance(v, View))])
            out, it = views[0], iter(views[1:])
            op = attrs.evolve(op, ins=[next(it) if isinstance(v, View) else v for v in op.ins])
            names = [f"i{d}" for d in range(len(out.shape))]
            for d, n in enumerate(out.shape):
                lines.append(f"{pad}{'  ' * d}for (int {names[d]} = 0; {names[d]} < {n}; {names[d]}++)")
            subs = {k: (cast(v, v.at_loop(names)) if isinstance(v, View) else v) for k, v in zip("abc", op.ins)}
            lines.append(f"{pad}{'  ' * len(names)}{out.at_loop(names)} = ({op.ctype})"
                         + op.template.format(t=op.ctype, f=op.func, **subs) + ";")
            return
        src = op.ins[0]
        assert isinstance(src, View)
        names = [f"i{d}" for d in range(len(src.shape))]
        lines.append(f"{pad}for (int o = 0; o < {out.buf.numel}; o++) {out.buf.ref('o')} = 0;")
        for d, n in enumerate(src.shape):
            lines.append(f"{pad}{'  ' * d}for (int {names[d]} = 0; {names[d]} < {n}; {names[d]}++)")
        lines.append(f"{pad}{'  ' * len(names)}{out.at_loop(names)} += {src.at_loop(names)};")
        if op.scale:
            lines.append(f"{pad}for (int o = 0; o < {out.buf.numel}; o++) {out.buf.ref('o')} {op.scale};")


def coalesce(views: Sequence[View]) -> list[View]:
    """The same index maps over fewer loops: size-1 dims dropped, and neighbouring dims merged
    where every view steps through them as one (as torch's TensorIterator does), so that a
    contiguous operation is one flat loop the C compiler can vectorize."""
    keep = [d for d, n in enumerate(views[0].shape) if n != 1]
    shape = [views[0].shape[d] for d in keep]
    strides = [[v.strides[d] for d in keep] for v in views]
    d = len(shape) - 1
    while d > 0:
        if all(st[d - 1] == st[d] * shape[d] for st in strides):
            shape[d - 1] *= shape[d]
            del shape[d]
            for st in strides:
                st[d - 1] = st[d]
                del st[d]
        d -= 1
    return [View(v.buf, tuple(shape), tuple(st), v.offset) for v, st in zip(views, strides)]


def declare(buf: Buffer, offsets: dict[str, int], ctype: str, lanes: int = 0) -> str:
    if buf.kind == "scalars":
        suffix = f"[{lanes}]" if lanes else ""
        return f"{ctype} " + ", ".join(f"{buf.name}_{i}{suffix}" for i in range(buf.numel)) + ";"
    if buf.kind == "array":
        return f"{ctype} *{buf.name} = ({ctype} *)(ws + {offsets[buf.name]});"
    return ""


def const_decl(buf: Buffer, values: Tensor) -> str:
    items = ", ".join(literal(x, values.dtype) if values.dtype.is_floating_point else str(int(x))
                      for x in values.tolist())
    return f"static const {CTYPES[buf.dtype]} {buf.name}[{buf.numel}] = {{{items}}};"

