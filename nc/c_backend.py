"""The compiled training step as plain C: the whole loss-and-gradient loop in one function.

`nc.compiled_step` (``compiler="c"``, the default choice where a C compiler exists) hands this
module the step's flat ``torch.fx`` graph (`nc.sensitivities.step_graph`: one step and its
sensitivities, ATen operations with static shapes) and gets back the same function as
``compiled_step.rollout_loss``: ``(theta, ys0, S0, data, *fixed) -> (mse, gradient)``. Here the
loop over the steps, the step, the residuals against the data and the sums of the loss and the
gradient are one C function, so a training step is one call with no Python per step.

How: the graph is *scalarized*. Every node has a static shape (``node.meta["val"]``). Views
(select, slice, view, expand, permute, ...) are index maps computed here, in Python, by applying
the view to a ``meta`` tensor with the base's strides, so they cost nothing in C; every other
node gets a buffer of its element count. Small buffers (at most `UNROLL` elements, at batch 1
all of them) are C scalars written element by element, which the C compiler keeps in
registers; larger ones are arrays in one workspace, reused once dead, written by loops with
static strides. Operations without tensor inputs (``eye``, zeros) are constants. Any other
operation raises `Unsupported` with its name, and the caller falls back to inductor.

A batch of independent trajectories too large for registers runs in *lanes*
(`generate_lanes`): the step of ONE trajectory is scalarized as above, every scalar being a
GCC/Clang vector of 4 float64 or 8 float32 trajectories, and each group's whole rollout runs in
registers: one fused loop, as XLA fuses the batch (LV batch 256: 1.2 ms float64 against 5.3 ms
with one loop per operation over the batch).

The C is compiled with the system compiler (``$CC``, ``cc`` or ``gcc``) at ``-O3`` with exact
IEEE semantics (no ``-ffast-math``, ``-ffp-contract=off`` so no fused multiply-adds), computing
in the tensors' dtype (float64 or float32); results equal autograd through the eager rollout to
rounding (1e-10 relative in float64: libm's ``sin`` and torch's may differ in the last bit).
Shared objects are cached in ``$XDG_CACHE_HOME/nc/c`` (else ``~/.cache/nc/c``, else a temporary
directory) under a hash of the source and the compiler command, and loaded with ``ctypes``.
"""

from __future__ import annotations

import ctypes
import hashlib
import itertools
import math
import os
import re
import shlex
import shutil
import subprocess
import sysconfig
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import torch
import torch.fx
from torch import Tensor

__all__ = ["CompileFailed", "NoCompiler", "Unsupported", "build_loop", "build_rollout", "c_compiler", "cache_dir"]

UNROLL = 16
"""Buffers of at most this many elements are C scalars (registers) and written unrolled."""
FLAGS = ("-O3", "-fPIC", "-shared", "-ffp-contract=off", "-fno-math-errno", "-Werror=implicit-function-declaration")
"""-O3, not -O2: it vectorizes the loops of large batches (LV batch 256: 6.3 -> 5.3 ms float64,
4.9 -> 2.8 ms float32) for about 0.5 s more compile there, nothing at batch 1; semantics are the
same. Exact IEEE arithmetic: no -ffast-math and no contraction into fused multiply-adds (results
must match torch's to rounding); -fno-math-errno only lets sqrt be one instruction; a misspelt
math function is an error, not a symbol missing at load time."""


class Unsupported(Exception):  # noqa: N818 - an internal signal, caught by compiled_step
    """The graph has an operation (or a dtype) this backend does not generate; the message says which."""


class NoCompiler(Exception):  # noqa: N818
    """No C compiler found on this machine."""


class CompileFailed(Exception):  # noqa: N818
    """The C compiler failed (the message holds its output)."""


def c_compiler() -> list[str] | None:
    """The command of the system C compiler: ``$CC``, else ``cc``, ``gcc`` or ``clang`` on the
    path, else Python's build-time ``CC`` if it exists; None if there is none."""
    for cmd in (os.environ.get("CC"), "cc", "gcc", "clang", sysconfig.get_config_var("CC")):
        if cmd:
            parts = shlex.split(cmd)
            if parts and shutil.which(parts[0]):
                return parts
    return None


def cache_dir() -> Path:
    """Where compiled shared objects are kept: ``$XDG_CACHE_HOME/nc/c``, else ``~/.cache/nc/c``,
    else (neither writable) ``nc-c-<uid>`` in the temporary directory."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    for d in (Path(base) / "nc" / "c", Path(tempfile.gettempdir()) / f"nc-c-{os.getuid()}"):
        try:
            d.mkdir(parents=True, exist_ok=True)
            if os.access(d, os.W_OK):
                return d
        except OSError:
            continue
    raise CompileFailed("no writable cache directory for compiled C")


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


LANE_BYTES = 32
"""Lanes mode: every scalar of one trajectory's step becomes a GCC/Clang vector of this many
bytes (4 float64 or 8 float32 trajectories), so arithmetic is SIMD with no loops to compile."""
VECTOR_SAFE = {"{a}", "({a} + {b})", "({a} - {b})", "({a} * {b})", "({a} / {b})", "(-{a})", "(({t})1 / {a})",
               "({a} * {a})", "({a} * {a} * {a})", "(({t})1 / ({a} * {a}))"}
"""Templates that are plain arithmetic, valid on vectors as written (others run lane by lane)."""
LANE_VAR = re.compile(r"\b(v\d+_\d+|q\d+|w\d+)\b")


def generate_lanes(graph: torch.fx.GraphModule, *, example: Sequence[int], batch: int, n_theta: int,
                   n_prefix: int, steps: int, start: int, fixed: Sequence[Tensor],
                   dtype: torch.dtype) -> tuple[str, int]:
    """Like `generate` (the same arguments of ``nc_loss``) for a batch of ``batch``
    independent trajectories of shape ``example`` (the state's shape is ``(batch, *example)``),
    ``graph`` being ONE trajectory's step: the trajectories run a SIMD vector at a time
    (`LANE_BYTES`), the whole rollout of a group in registers (one fused loop, as XLA fuses the
    batch), rather than one loop per operation over the whole batch."""
    if dtype not in (torch.float64, torch.float32):
        raise Unsupported(f"dtype {dtype}")
    g = Codegen(graph, dtype)
    example = tuple(example)
    nex = math.prod(example)
    k = View(Buffer("k", 1, torch.float64, "scalars"), (), ())
    y = g.new_buffer(example, dtype)
    s = g.new_buffer((n_theta, *example), dtype)
    theta = View(Buffer("theta", n_theta, dtype, "ptr"), (n_theta,), (1,))
    placeholders = [n for n in graph.graph.nodes if n.op == "placeholder"]
    if any(n.users for n in placeholders[4:]):
        raise Unsupported("lanes: the step reads inputs other than the state and the constants")
    fixed_views = [View(Buffer(f"fx{i}", 1, dtype, "ptr"), (), ()) for i in range(len(fixed))]
    y2, s2 = g.plan([k, y, s, theta, *fixed_views])
    if y2.shape != example or s2.shape != (n_theta, *example) or y2.buf.dtype != dtype or s2.buf.dtype != dtype:
        raise Unsupported("lanes: the step's outputs are not one trajectory's")
    ny2 = g.copy(y2) if y2.buf in (y.buf, s.buf) else y2
    ns2 = g.copy(s2) if s2.buf in (y.buf, s.buf) else s2
    g.decide_storage()
    if any(b.kind == "array" for b in g.buffers) or any(op.reduce is not None for op in g.ops):
        raise Unsupported("lanes: an operation too large to keep in registers")
    ct = CTYPES[dtype]
    width = LANE_BYTES // (8 if dtype == torch.float64 else 4)
    ny = batch * nex
    lanes = f"for (int l = 0; l < {width}; l++) "

    def sub(text: str) -> str:  # one lane of every vector in a statement
        return LANE_VAR.sub(r"\1[l]", text)
    lines = ["#include <math.h>", "", f"typedef {ct} vec __attribute__((vector_size({LANE_BYTES})));",
             f"typedef unsigned char vbool __attribute__((vector_size({width})));",
             "void nc_loss(void **args) {",
             f"  const {ct} *theta = (const {ct} *)args[0], *ys0 = (const {ct} *)args[1];",
             f"  const {ct} *S0 = (const {ct} *)args[2], *data = (const {ct} *)args[3];",
             f"  {ct} *out = ({ct} *)args[4];", "  (void)theta;"]
    for buf, vals in g.consts:
        lines.append("  " + const_decl(buf, vals))
    last = n_prefix - 1

    def vdecl(b: Buffer) -> str:
        if b.dtype not in (dtype, torch.bool):
            raise Unsupported(f"lanes: a value of dtype {b.dtype}")
        return ("vbool " if b.dtype == torch.bool else "vec ") + ", ".join(f"{b.name}_{i}" for i in range(b.numel)) + ";"
    lines += [f"  {ct} *sq = ({ct} *)args[5], *rs = sq + {ny};  /* the workspace: a batch may not fit the stack */",
              f"  for (int e = 0; e < {ny}; e++) sq[e] = 0;",
              f"  for (int e = 0; e < {ny * n_theta}; e++) rs[e] = 0;",
              f"  for (int j = 0; j < {n_prefix}; j++)",
              f"    for (int e = 0; e < {ny}; e++) {{",
              f"      {ct} r = ys0[j*{ny} + e] - data[j*{ny} + e];",
              "      sq[e] += r * r;",
              f"      for (int p = 0; p < {n_theta}; p++) rs[p*{ny} + e] += r * S0[(j*{n_theta} + p)*{ny} + e];",
              "    }",
              f"  for (int b0 = 0; b0 < {batch}; b0 += {width}) {{",
              f"    int bb[{width}];",
              f"    {lanes}bb[l] = b0 + l < {batch} ? b0 + l : {batch - 1};  /* a last group's spare lanes repeat */",
              "    " + vdecl(y.buf), "    " + vdecl(s.buf),
              "    vec " + ", ".join(f"q{e}" for e in range(nex)) + ";",
              "    vec " + ", ".join(f"w{e}" for e in range(nex * n_theta)) + ";"]
    for e in range(nex):
        lines.append(f"    {lanes}{{ {y.buf.ref(e)}[l] = ys0[{last * ny} + bb[l]*{nex} + {e}]; q{e}[l] = 0; }}")
    for p in range(n_theta):
        for e in range(nex):
            lines.append(f"    {lanes}{{ {s.buf.ref(p * nex + e)}[l] = S0[({last * n_theta + p}*{batch} + bb[l])*{nex}"
                         f" + {e}]; w{p * nex + e}[l] = 0; }}")
    lines.append(f"    for (int i = 0; i < {steps}; i++) {{")
    lines.append(f"      const double k = (double)(i + {start}); (void)k;")
    lines.append(f"      const {ct} *d = data + (i + {n_prefix}) * {ny};")
    for b in g.buffers:
        if b.kind == "scalars" and b not in (y.buf, s.buf):
            lines.append("      " + vdecl(b))
    for op in g.ops:
        for ix in itertools.product(*(range(n) for n in op.out.shape)):
            subs, mixed = {}, False
            for key, v in zip("abc", op.ins):
                if isinstance(v, View):
                    ref = v.at(ix)
                    if CTYPES[v.buf.dtype] != op.ctype:  # cast first, as torch does: lane by lane
                        ref, mixed = f"(({op.ctype}){ref})", True
                    subs[key] = ref
                else:
                    subs[key] = v
            expr = op.template.format(t=op.ctype, f=op.func, **subs)
            target = op.out.at(ix)
            if (op.template in VECTOR_SAFE and op.out.buf.dtype == dtype and op.ctype == ct and not mixed
                    and LANE_VAR.search(expr)):  # (all-scalar right sides are stored lane by lane)
                lines.append(f"      {target} = {expr};")
            else:
                lines.append(f"      {lanes}{sub(target)} = ({CTYPES[op.out.buf.dtype]}){sub(expr)};")
    idx = list(itertools.product(*(range(n) for n in example)))
    for e, ix in enumerate(idx):
        lines.append(f"      {{ vec dv; {lanes}dv[l] = d[bb[l]*{nex} + {e}];")
        lines.append(f"        vec r = {ny2.at(ix)} - dv; q{e} += r * r;")
        for p in range(n_theta):
            lines.append(f"        w{p * nex + e} += r * {ns2.at((p, *ix))};")
        lines.append("      }")
    for e, ix in enumerate(idx):
        lines.append(f"      {y.buf.ref(e)} = {ny2.at(ix)};")
    for p in range(n_theta):
        for e, ix in enumerate(idx):
            lines.append(f"      {s.buf.ref(p * nex + e)} = {ns2.at((p, *ix))};")
    lines += ["    }",
              f"    for (int l = 0; l < {width} && b0 + l < {batch}; l++) {{"]
    for e in range(nex):
        lines.append(f"      sq[(b0 + l)*{nex} + {e}] += q{e}[l];")
        for p in range(n_theta):
            lines.append(f"      rs[{p * ny} + (b0 + l)*{nex} + {e}] += w{p * nex + e}[l];")
    n = ny * (n_prefix + steps)
    lines += ["    }", "  }",
              f"  {ct} loss = 0; for (int e = 0; e < {ny}; e++) loss += sq[e];",
              f"  out[0] = loss / ({ct}){n};",
              f"  for (int p = 0; p < {n_theta}; p++) {{",
              f"    {ct} acc = 0; for (int e = 0; e < {ny}; e++) acc += rs[p*{ny} + e];",
              f"    out[1 + p] = acc * {literal(2 / n, dtype)};",
              "  }", "}", ""]
    return "\n".join(lines), ny * (1 + n_theta) * (8 if dtype == torch.float64 else 4)


def generate(graph: torch.fx.GraphModule, *, shape: Sequence[int], n_theta: int, n_prefix: int, steps: int,
             start: int, fixed: Sequence[Tensor], dtype: torch.dtype) -> tuple[str, int]:
    """The C source of ``nc_loss(void **args)`` and its workspace size in bytes. ``args``:
    theta, ys0 (n_prefix, *shape), S0 (n_prefix, P, *shape), data (n_prefix + steps, *shape),
    out (1 + P: the loss and the gradient), workspace, then the fixed inputs; all contiguous."""
    if dtype not in (torch.float64, torch.float32):
        raise Unsupported(f"dtype {dtype}")
    g = Codegen(graph, dtype)
    ny = math.prod(shape)
    shape = tuple(shape)
    small = ny * n_theta <= UNROLL
    k = View(Buffer("k", 1, torch.float64, "scalars"), (), ())
    y = g.new_buffer(shape, dtype)
    s = g.new_buffer((n_theta, *shape), dtype)
    theta = View(Buffer("theta", n_theta, dtype, "ptr"), (n_theta,), (1,))
    fixed_views = []
    for i, f in enumerate(fixed):
        if f.dtype not in CTYPES:
            raise Unsupported(f"a fixed input of dtype {f.dtype}")
        fixed_views.append(View(Buffer(f"fx{i}", f.numel(), f.dtype, "ptr"), tuple(f.shape), contiguous(f.shape)))
    y2, s2 = g.plan([k, y, s, theta, *fixed_views])
    if y2.shape != shape or s2.shape != (n_theta, *shape):
        raise Unsupported(f"the step's outputs have shapes {y2.shape}, {s2.shape}")
    if y2.buf.dtype != dtype or s2.buf.dtype != dtype:
        raise Unsupported("the step's outputs are not in the state's dtype")
    # The next state: copy (through a temporary when an output reads the current state).
    ny2 = g.copy(y2) if y2.buf in (y.buf, s.buf) else y2
    ns2 = g.copy(s2) if s2.buf in (y.buf, s.buf) else s2
    g.decide_storage()
    if not small:  # the loop's state, and the outputs read by loops after the step's operations
        for b in (y.buf, s.buf, ny2.buf, ns2.buf):
            b.kind = "array" if b.kind == "scalars" else b.kind
    loop_state = {y.buf.name, s.buf.name}
    ws = g.workspace(loop_state, {ny2.buf.name, ns2.buf.name})
    ct = CTYPES[dtype]
    lines = ["#include <math.h>", "#include <string.h>", "", "void nc_loss(void **args) {",
             f"  const {ct} *theta = (const {ct} *)args[0], *ys0 = (const {ct} *)args[1];",
             f"  const {ct} *S0 = (const {ct} *)args[2], *data = (const {ct} *)args[3];",
             f"  {ct} *out = ({ct} *)args[4]; char *ws = (char *)args[5];"]
    for i, fv in enumerate(fixed_views):
        lines.append(f"  const {CTYPES[fv.buf.dtype]} *fx{i} = (const {CTYPES[fv.buf.dtype]} *)args[{6 + i}];")
    lines.append("  (void)ws; (void)theta;")
    for buf, vals in g.consts:
        lines.append("  " + const_decl(buf, vals))
    state_arrays = [y.buf, s.buf]
    for b in state_arrays:  # the state and the sums after the step's buffers (not the stack: a batch may not fit)
        if b.kind == "array":
            lines.append(f"  {ct} *{b.name} = ({ct} *)(ws + {ws});")
            ws += b.numel * 8
        else:
            lines.append("  " + declare(b, {}, ct))
    lines.append(f"  {ct} *sq = ({ct} *)(ws + {ws}), *rs = sq + {ny};")
    ws += ny * (1 + n_theta) * 8
    # the prefix: residuals of the states before the loop, and the state the loop starts from
    last = n_prefix - 1
    lines += [f"  for (int e = 0; e < {ny}; e++) sq[e] = 0;",
              f"  for (int e = 0; e < {ny * n_theta}; e++) rs[e] = 0;",
              f"  for (int j = 0; j < {n_prefix}; j++) {{",
              f"    for (int e = 0; e < {ny}; e++) {{",
              f"      {ct} r = ys0[j*{ny} + e] - data[j*{ny} + e];",
              "      sq[e] += r * r;",
              f"      for (int p = 0; p < {n_theta}; p++) rs[p*{ny} + e] += r * S0[(j*{n_theta} + p)*{ny} + e];",
              "    }", "  }"]
    for e in range(ny) if y.buf.kind == "scalars" else []:
        lines.append(f"  {y.buf.ref(e)} = ys0[{last * ny + e}];")
    if y.buf.kind == "array":
        lines.append(f"  memcpy({y.buf.name}, ys0 + {last * ny}, sizeof({ct}) * {ny});")
    for e in range(ny * n_theta) if s.buf.kind == "scalars" else []:
        lines.append(f"  {s.buf.ref(e)} = S0[{last * ny * n_theta + e}];")
    if s.buf.kind == "array":
        lines.append(f"  memcpy({s.buf.name}, S0 + {last * ny * n_theta}, sizeof({ct}) * {ny * n_theta});")
    lines.append(f"  for (int i = 0; i < {steps}; i++) {{")
    lines.append(f"    const double k = (double)(i + {start}); (void)k;")
    lines.append(f"    const {ct} *d = data + (i + {n_prefix}) * {ny};")
    for b in g.buffers:
        if b.kind in ("scalars", "array") and b.name not in loop_state and b.name != "k":
            lines.append("    " + declare(b, g.offsets, CTYPES[b.dtype]))
    for op in g.ops:
        g.emit_op(op, lines, 2)
    # residuals and sums (as rollout_loss: sq += r*r; rs += r*S'), then the next state
    idx = list(itertools.product(*(range(n) for n in shape)))
    if small:
        for e, ix in enumerate(idx):
            lines.append(f"    {{ {ct} r = {ny2.at(ix)} - d[{e}]; sq[{e}] += r * r;")
            for p in range(n_theta):
                lines.append(f"      rs[{p * ny + e}] += r * {ns2.at((p, *ix))};")
            lines.append("    }")
        for e, ix in enumerate(idx):
            lines.append(f"    {y.buf.ref(e)} = {ny2.at(ix)};")
        for p in range(n_theta):
            for e, ix in enumerate(idx):
                lines.append(f"    {s.buf.ref(p * ny + e)} = {ns2.at((p, *ix))};")
    else:
        names = [f"i{d}" for d in range(len(shape))]
        flat = " + ".join([f"{n}*{st}" for n, st in zip(names, contiguous(shape))] or ["0"])
        body = [f"{ct} r = {ny2.at_loop(names)} - d[{flat}]; sq[{flat}] += r * r;",
                f"for (int p = 0; p < {n_theta}; p++) rs[p*{ny} + {flat}] += r * {ns2.at_loop(['p', *names])};"]
        loops = "".join(f"for (int {n} = 0; {n} < {m}; {n}++) " for n, m in zip(names, shape))
        lines.append(f"    {loops}{{ {' '.join(body)} }}")
        lines.append(f"    {loops}{y.buf.name}[{flat}] = {ny2.at_loop(names)};")
        lines.append(f"    for (int p = 0; p < {n_theta}; p++) {loops}"
                     f"{s.buf.name}[p*{ny} + {flat}] = {ns2.at_loop(['p', *names])};")
    n = ny * (n_prefix + steps)
    lines += ["  }",
              f"  {ct} loss = 0; for (int e = 0; e < {ny}; e++) loss += sq[e];",
              f"  out[0] = loss / ({ct}){n};",
              f"  for (int p = 0; p < {n_theta}; p++) {{",
              f"    {ct} acc = 0; for (int e = 0; e < {ny}; e++) acc += rs[p*{ny} + e];",
              f"    out[1 + p] = acc * {literal(2 / n, dtype)};",
              "  }", "}", ""]
    return "\n".join(lines), ws


def generate_rollout(graph: torch.fx.GraphModule, *, shape: Sequence[int], n_prefix: int, steps: int, start: int,
                     fixed: Sequence[Tensor], dtype: torch.dtype) -> tuple[str, int]:
    """The C source of ``nc_rollout(void **args)`` (forward only, no sensitivities) and its
    workspace size in bytes. ``graph`` is ``(k, y, *fixed) -> (y',)``. ``args``: out
    (``(n_prefix + steps, *shape)``, its first ``n_prefix`` rows the initial states, the rest
    written here), workspace, then the fixed inputs; all contiguous. The state is read from the
    row written the step before (no copy of it is kept: the trajectory is the output)."""
    if dtype not in (torch.float64, torch.float32):
        raise Unsupported(f"dtype {dtype}")
    g = Codegen(graph, dtype)
    ny = math.prod(shape)
    shape = tuple(shape)
    k = View(Buffer("k", 1, torch.float64, "scalars"), (), ())
    y = View(Buffer("yp", ny, dtype, "ptr"), shape, contiguous(shape))
    fixed_views = []
    for i, f in enumerate(fixed):
        if f.dtype not in CTYPES:
            raise Unsupported(f"a fixed input of dtype {f.dtype}")
        fixed_views.append(View(Buffer(f"fx{i}", f.numel(), f.dtype, "ptr"), tuple(f.shape), contiguous(f.shape)))
    outs = g.plan([k, y, *fixed_views])
    if len(outs) != 1 or outs[0].shape != shape or outs[0].buf.dtype != dtype:
        raise Unsupported("the step's output is not one state of the state's shape and dtype")
    y2 = outs[0]
    g.decide_storage()
    ws = g.workspace(set(), {y2.buf.name})  # the next state lives until it is stored
    ct = CTYPES[dtype]
    lines = ["#include <math.h>", "", "void nc_rollout(void **args) {",
             f"  {ct} *out = ({ct} *)args[0]; char *ws = (char *)args[1];"]
    for i, fv in enumerate(fixed_views):
        lines.append(f"  const {CTYPES[fv.buf.dtype]} *fx{i} = (const {CTYPES[fv.buf.dtype]} *)args[{2 + i}];")
    lines.append("  (void)ws;")
    for buf, vals in g.consts:
        lines.append("  " + const_decl(buf, vals))
    lines += [f"  for (int i = 0; i < {steps}; i++) {{",
              f"    const double k = (double)(i + {start}); (void)k;",
              f"    const {ct} *yp = out + (i + {n_prefix - 1}) * {ny}; (void)yp;",
              f"    {ct} *yn = out + (i + {n_prefix}) * {ny};"]
    for b in g.buffers:
        if b.kind in ("scalars", "array") and b.name != "k":
            lines.append("    " + declare(b, g.offsets, CTYPES[b.dtype]))
    for op in g.ops:
        g.emit_op(op, lines, 2)
    if ny <= UNROLL:
        for e, ix in enumerate(itertools.product(*(range(n) for n in shape))):
            lines.append(f"    yn[{e}] = {y2.at(ix)};")
    else:
        names = [f"i{d}" for d in range(len(shape))]
        flat = " + ".join([f"{n}*{st}" for n, st in zip(names, contiguous(shape))] or ["0"])
        loops = "".join(f"for (int {n} = 0; {n} < {m}; {n}++) " for n, m in zip(names, shape))
        lines.append(f"    {loops}yn[{flat}] = {y2.at_loop(names)};")
    lines += ["  }", "}", ""]
    return "\n".join(lines), ws


def build_rollout(graph: torch.fx.GraphModule, *, shape: Sequence[int], n_prefix: int, steps: int, start: int,
                  fixed: Sequence[Tensor], dtype: torch.dtype) -> tuple[Callable[..., Tensor], Library, str]:
    """``(ys0, *fixed) -> states`` in C (`generate_rollout`): ``ys0`` the initial states
    ``(n_prefix, *shape)``, ``states`` the whole trajectory ``(n_prefix + steps, *shape)``;
    its library and its source. Raises `Unsupported`, `NoCompiler` or `CompileFailed`."""
    if any(f.device.type != "cpu" for f in fixed):
        raise Unsupported("tensors not on the CPU")
    try:
        source, ws_bytes = generate_rollout(graph, shape=shape, n_prefix=n_prefix, steps=steps, start=start,
                                            fixed=fixed, dtype=dtype)
    except Unsupported:
        raise
    except Exception as e:  # noqa: BLE001 - a graph this generator misreads: the caller falls back
        raise Unsupported(f"the C generator failed ({type(e).__name__}: {e})") from e
    lib = compile_source(source, "nc_rollout")
    fn = lib.function
    args_t = ctypes.c_void_p * (2 + len(fixed))
    full = (n_prefix + steps, *shape)

    def rollout(ys0: Tensor, *fixed: Tensor) -> Tensor:
        out = torch.empty(full, dtype=dtype)
        out[:n_prefix] = ys0
        fx = [f.contiguous() for f in fixed]
        ws = torch.empty(max(ws_bytes, 8), dtype=torch.uint8)  # per call: the function is reentrant
        fn(args_t(out.data_ptr(), ws.data_ptr(), *(f.data_ptr() for f in fx)))
        return out
    return rollout, lib, source


_LOADED: dict[str, Any] = {}


@attrs.define
class Library:
    """A compiled function (``nc_loss``, ``nc_rollout``): its shared object and whether the cache already held it."""

    path: Path
    cached: bool
    seconds: float
    function: Any


def compile_source(source: str, symbol: str = "nc_loss") -> Library:
    """Compile (or find in the cache) and load ``source``; its function ``symbol``."""
    cc = c_compiler()
    if cc is None:
        raise NoCompiler("no C compiler found (set $CC, or install cc/gcc)")
    start = time.perf_counter()
    key = hashlib.sha256("\0".join([*cc, *FLAGS, source]).encode()).hexdigest()[:24]
    path = cache_dir() / f"nc_{key}.so"
    cached = path.exists()
    if not cached:
        src = path.with_name(f"nc_{key}.{os.getpid()}.c")
        tmp = path.with_name(f"nc_{key}.{os.getpid()}.so.tmp")
        try:
            src.write_text(source)  # inside: a full or read-only disk is a CompileFailed, not an OSError
            proc = subprocess.run([*cc, *FLAGS, "-o", str(tmp), str(src), "-lm"], capture_output=True, text=True,
                                  timeout=300)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise CompileFailed(f"{cc[0]}: {e}") from e
        finally:
            src.unlink(missing_ok=True)
        if proc.returncode != 0:
            tmp.unlink(missing_ok=True)
            raise CompileFailed(f"{cc[0]} exited with {proc.returncode}: {(proc.stderr or proc.stdout)[-2000:]}")
        os.replace(tmp, path)  # atomic: a concurrent build of the same source writes the same bytes
    lib = _LOADED.get(key)
    if lib is None:
        try:
            lib = _LOADED[key] = ctypes.CDLL(str(path))
        except OSError as e:
            raise CompileFailed(f"loading {path}: {e}") from e
    fn = getattr(lib, symbol)
    fn.argtypes, fn.restype = [ctypes.c_void_p], None
    return Library(path, cached, time.perf_counter() - start, fn)


def build_loop(graph: torch.fx.GraphModule, *, shape: Sequence[int], n_theta: int, n_prefix: int, steps: int,
               start: int, fixed: Sequence[Tensor], dtype: torch.dtype,
               batch: int = 0) -> tuple[Callable[..., tuple[Tensor, Tensor]], Library, str]:
    """``(theta, ys0, S0, data, *fixed) -> (mse, gradient)`` in C, its library and its source.
    ``batch``: if given, ``graph`` is one trajectory's step, ``shape`` one trajectory's, and
    the state is ``batch`` of them (`generate_lanes`). Raises `Unsupported`, `NoCompiler` or
    `CompileFailed`."""
    if any(f.device.type != "cpu" for f in fixed):
        raise Unsupported("tensors not on the CPU")
    try:
        if batch:
            source, ws_bytes = generate_lanes(graph, example=shape, batch=batch, n_theta=n_theta, n_prefix=n_prefix,
                                              steps=steps, start=start, fixed=fixed, dtype=dtype)
        else:
            source, ws_bytes = generate(graph, shape=shape, n_theta=n_theta, n_prefix=n_prefix, steps=steps,
                                        start=start, fixed=fixed, dtype=dtype)
    except Unsupported:
        raise
    except Exception as e:  # noqa: BLE001 - a graph this generator misreads: inductor takes it
        raise Unsupported(f"the C generator failed ({type(e).__name__}: {e})") from e
    lib = compile_source(source)
    fn = lib.function
    nargs = 6 + len(fixed)
    args_t = ctypes.c_void_p * nargs

    def loop(theta: Tensor, ys0: Tensor, s0: Tensor, data: Tensor, *fixed: Tensor) -> tuple[Tensor, Tensor]:
        ins = [t.contiguous() for t in (theta, ys0, s0, data)]
        fx = [f.contiguous() for f in fixed]
        out = torch.empty(1 + n_theta, dtype=dtype)
        ws = torch.empty(max(ws_bytes, 8), dtype=torch.uint8)  # per call: the function is reentrant
        fn(args_t(*(t.data_ptr() for t in (*ins, out, ws, *fx))))
        return out[0], out[1:]
    return loop, lib, source
