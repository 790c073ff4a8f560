"""A parsed program with its input ranks and a cache of lowered functions, one per signature.

`Compiled` is the engine behind `compile_fn` and `compile`: it infers per-example ranks once
(a compile-time trace with sizes left open), then traces and lowers once per signature of
input shapes, dtypes and devices, as ``jax.jit`` does. A call is a dictionary lookup and the
generated function.
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch

from . import ir
from .errors import CallError, LimitError, NCError, ShapeError, Span
from .lower import Lowered, lower
from .options import MAX_RANK, CompileOptions, ShapeSpec
from .parse import parse
from .program import Program, Promo, Var
from .runtime import tracing_active, without_tracing
from .shapes import Shape, show
from .trace import Promote, SizeDependent, Tracer

RECURSION_LIMIT = 20_000
MAX_RETRACE = 64

MAX_SIGNATURES = 64
"""Most per-signature functions one compiled program keeps (least recently used dropped). A
signature is the per-example shapes, dtypes and devices of the inputs: batch axes are not part
of it, so calls with any number of batch sizes share one entry."""

# nc's tree walks recurse as deep as a program nests (bounded by the reader's MAX_DEPTH and
# MAX_CALL_DEPTH, a few frames per level). The limit is raised once, here, and never lowered:
# saving and restoring it around each compile raced between threads (a thread lowered it while
# another was deep inside a compile, which overflowed or raised spurious errors).
if sys.getrecursionlimit() < RECURSION_LIMIT:
    sys.setrecursionlimit(RECURSION_LIMIT)


@contextmanager
def deep_recursion() -> Iterator[None]:
    """Report Python's recursion limit, should a tree walk still reach it, as a `LimitError`.

    It changes no process-wide state (recursion limit, garbage collector), so compiles in
    several threads at once do not interfere."""
    try:
        yield
    except RecursionError:
        raise LimitError("the program nests definitions, calls or expressions too deeply to compile",
                         hint="nc follows each definition and function call into its body; chains of "
                              "thousands of them are beyond its limit: merge some, or use loops") from None


class Compiled:
    """A program compiled for calls with tensors in ``self.names`` order."""

    def __init__(self, source: str, *, shapes: ShapeSpec | None = None, max_iter: int = 1000,
                 name: str = "<program>", promote: Sequence[str] = (), fixed: Mapping[str, Shape] | None = None,
                 check_domain: bool = False, modules: Mapping[str, Any] | None = None,
                 module_shapes: Mapping[str, Sequence[int]] | None = None,
                 options: CompileOptions | None = None):
        if not isinstance(source, str):
            raise CallError(f"a program is a string of nc source, got {type(source).__name__}")
        if options is None:
            options = CompileOptions(shapes=shapes, max_iter=max_iter, name=name, check_domain=check_domain,
                                     module_shapes=module_shapes)
        self.options = options
        with deep_recursion():
            self.ir: ir.Program = parse(source, name=options.name, promote=promote, externals=tuple(modules or ()))
        self.modules = dict(modules or {})
        self.module_shapes = {k: v for k, v in options.module_shapes.items() if v is not None}
        self.names: tuple[str, ...] = self.ir.inputs
        self.spans: dict[str, Span | None] = dict(zip(self.ir.inputs, self.ir.input_spans))  # type: ignore[arg-type]
        self.max_iter = options.max_iter
        self.check_domain = options.check_domain
        self.declared: dict[str, Shape] = {**self.check_shapes(options.declared()), **(fixed or {})}
        self.ranks: dict[str, int] = {n: len(self.declared.get(n, ())) for n in self.names}
        # Per-signature functions, least recently used first (bounded by MAX_SIGNATURES).
        self.cache: OrderedDict[tuple[Any, ...], Lowered] = OrderedDict()
        self.casts: dict[tuple[Any, ...], torch.dtype] = {}
        self.lock = threading.Lock()
        self.generic_program: Program | None = None  # serves every call when sizes do not matter
        self.generic: Lowered | None = None  # the lowered generic_program (dtype and device from the inputs)
        with deep_recursion(), without_tracing():
            self.infer_ranks()
            if self.generic_program is not None:
                # Lowered now, not at the first call, so that torch.compile traces calls straight through.
                self.generic = lower(self.generic_program, generic=True)
                self.generic.namespace["SLOW"] = self.call_checked

    def check_shapes(self, shapes: Mapping[str, Shape]) -> dict[str, Shape]:
        for name in shapes:
            if name not in self.names:
                from .suggest import closest

                near = closest(name, self.names)
                raise CallError(f"shapes= names '{name}', which is not an input of this program "
                                f"(inputs: {', '.join(self.names) or 'none'})",
                                hint=f"did you mean '{near[0]}'?" if near else None)
        return dict(shapes)

    # ---- ranks ---------------------------------------------------------------------------------
    def infer_ranks(self) -> None:
        """Trace once with sizes left open to find per-example ranks and report early errors.

        When that trace needs no size (none declared, none asked for by the program), its
        program serves every call: see `generic`.
        """
        for _ in range(MAX_RETRACE):
            pshapes = {n: self.declared.get(n, (None,) * self.ranks[n]) for n in self.names}
            try:
                program, _ = self.trace(pshapes, abstract=True, dtype=torch.get_default_dtype(),
                                             device=torch.device("cpu"))
            except Promote as p:
                self.promote(p)
                continue
            except SizeDependent:
                return  # the rest is known only when a call gives sizes
            sized = any(d is not None for shape in self.declared.values() for d in shape)
            if not sized and not self.check_domain:
                self.generic_program = program
            return

    def promote(self, p: Promote) -> None:
        for n in p.names:
            self.ranks[n] = max(self.ranks[n], p.rank)
            if self.ranks[n] > MAX_RANK:
                raise ShapeError(f"input '{n}' would need more than {MAX_RANK} axes per example", self.spans[n])

    def trace(self, pshapes: Mapping[str, Shape], *, abstract: bool, dtype: torch.dtype,
              device: torch.device) -> tuple[Program, Tracer]:
        tracer = Tracer(self.ir, abstract=abstract, max_iter=self.max_iter, dtype=dtype, device=device,
                        check_domain=self.check_domain and not abstract, externals=self.modules,
                        external_shapes=self.module_shapes)
        inputs = {}
        for n in self.names:
            promo = None if n in self.declared else Promo((n,))
            inputs[n] = Var(next(tracer.ids), tuple(pshapes[n]), tracer.root, promo)
        return tracer.run(inputs), tracer

    # ---- calls ---------------------------------------------------------------------------------
    def call_checked(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> torch.Tensor:
        """A call on the checked path: bind and convert the arguments, then run."""
        from .binding import bind_arguments
        from .lower import MISSING

        given = [a for a in args if a is not MISSING]
        return self.run(bind_arguments(self, self.names, given, kwargs))

    def signature(self, values: Sequence[torch.Tensor]) -> tuple[Any, ...] | None:
        """The cache key of a call: per-example shapes, dtypes and devices (no batch axes), or
        None when an input has too few axes (the checked build explains)."""
        key = []
        for n, v in zip(self.names, values):
            rank = self.ranks[n]
            if v.dim() < rank:
                return None
            key.append((tuple(v.shape[v.dim() - rank:]), v.dtype, v.device))
        return tuple(key)

    def run(self, values: Sequence[torch.Tensor]) -> torch.Tensor:
        key = self.signature(values)
        entry, cast = None, None
        if key is not None:
            with self.lock:
                entry = self.cache.get(key)
                if entry is not None:
                    self.cache.move_to_end(key)
                    cast = self.casts.get(key)
        if entry is None:
            entry, cast = self.build(values)
        else:
            self.check_batch(values)
        if cast is not None:  # mixed input dtypes: linear algebra does not promote, so promote first
            values = [v.to(cast) for v in values]
        try:
            return entry.fn(*values)
        except NCError:
            raise
        except Exception as e:  # noqa: BLE001 - any failure inside generated code is reported at its primitive
            raise self.runtime_error(e, entry, values) from e

    def check_batch(self, values: Sequence[torch.Tensor]) -> None:
        """Batch axes must broadcast (a cached signature says nothing about them)."""
        try:
            torch.broadcast_shapes(*(v.shape[: v.dim() - self.ranks[n]] for n, v in zip(self.names, values)))
        except RuntimeError:
            self.split_shapes(values)  # raises the CallError that names them
            raise CallError("the batch axes of the inputs do not broadcast") from None

    def build(self, values: Sequence[torch.Tensor]) -> tuple[Lowered, torch.dtype | None]:
        """Trace and lower for the signature of ``values``, and cache the result.

        Under a tracer (FakeTensor mode, torch.compile, make_fx) the build runs with the tracer's
        modes switched off, so that its constants are real tensors, and is not cached: nothing a
        tracer does may change what later eager calls get.
        """
        tracing = tracing_active()
        with deep_recursion(), without_tracing():
            program = self.program_for(values)
            entry = lower(program)
        cast = program.dtype if len({v.dtype for v in values}) > 1 else None
        key = self.signature(values)  # after program_for: a retrace may have raised some ranks
        if key is not None and not tracing:
            with self.lock:
                self.cache[key] = entry
                if cast is not None:
                    self.casts[key] = cast
                while len(self.cache) > MAX_SIGNATURES:
                    old, _ = self.cache.popitem(last=False)
                    self.casts.pop(old, None)
        return entry, cast

    def program_for(self, values: Sequence[torch.Tensor]) -> Program:
        dtype = result_dtype(values)
        device = values[0].device if values else torch.device("cpu")
        for n, v in zip(self.names, values):
            if v.device != device:
                raise CallError(f"input '{n}' is on {v.device} but '{self.names[0]}' is on {device}",
                                self.spans[n], hint="move all inputs to one device")
        for _ in range(MAX_RETRACE):
            pshapes = self.split_shapes(values)
            try:
                return self.trace(pshapes, abstract=False, dtype=dtype, device=device)[0]
            except Promote as p:
                self.promote(p)
        raise CallError("could not settle the per-example ranks of the inputs")  # pragma: no cover

    def split_shapes(self, values: Sequence[torch.Tensor]) -> dict[str, Shape]:
        """Per-example shapes from the actual ones; checks ranks, declared sizes and batch axes."""
        pshapes: dict[str, Shape] = {}
        batches = []
        for n, v in zip(self.names, values):
            rank = self.ranks[n]
            if v.dim() < rank:
                want = show(self.declared[n]) if n in self.declared else f"rank {rank} per example"
                raise CallError(f"input '{n}' must be {want}, got a tensor of shape {list(v.shape)}",
                                self.spans[n], hint=self.rank_hint(n, rank))
            pshape = tuple(v.shape[v.dim() - rank:])
            declared = self.declared.get(n)
            if declared is not None and any(d is not None and d != s for d, s in zip(declared, pshape)):
                raise CallError(f"input '{n}' must have per-example shape {show(declared)}, got trailing "
                                f"sizes {list(pshape)} (full shape {list(v.shape)})", self.spans[n])
            pshapes[n] = pshape
            batches.append((n, tuple(v.shape[: v.dim() - rank])))
        try:
            torch.broadcast_shapes(*(b for _, b in batches))
        except RuntimeError:
            shown = ", ".join(f"{n}: {list(b)}" for n, b in batches if b)
            raise CallError(f"the batch axes of the inputs do not broadcast ({shown})",
                            hint="leading axes beyond each input's per-example rank are batch axes; they "
                                 "must broadcast as in PyTorch") from None
        return pshapes

    def rank_hint(self, name: str, rank: int) -> str:
        if name in self.declared:
            return f"declared by shapes={{'{name}': {self.declared[name]}}}"
        kind = {1: "a vector", 2: "a matrix"}.get(rank, f"rank {rank}")
        return f"the program uses '{name}' as {kind}"

    def runtime_error(self, e: BaseException, entry: Lowered, values: Sequence[torch.Tensor]) -> NCError:
        """An error raised inside generated code, at the span of the primitive that failed."""
        from .lower import locate_failure

        span = locate_failure(e, entry, values)
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        return ShapeError(f"this operation failed when the program ran: {first}", span)


def result_dtype(values: Sequence[torch.Tensor]) -> torch.dtype:
    """The computation dtype: PyTorch's promotion of the input dtypes."""
    if not values:
        return torch.get_default_dtype()
    dtype = values[0].dtype
    for v in values[1:]:
        dtype = torch.promote_types(dtype, v.dtype)
    return dtype
