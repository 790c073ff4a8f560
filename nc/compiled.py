"""A parsed program with its input ranks and a cache of lowered functions, one per signature.

`Compiled` is the engine behind `compile_fn` and `compile`: it infers per-example ranks once
(a compile-time trace with sizes left open, `nc.ranks`), then traces and lowers once per
signature of input shapes, dtypes and devices, as ``jax.jit`` does (`nc.signatures`). A call is
a dictionary lookup and the generated function; a failure inside it is reported at the span of
the primitive that failed (`nc.failures`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from . import ir
from .binding import bind_arguments
from .errors import CallError, NCError, Span
from .failures import deep_recursion, runtime_error
from .lower import MISSING, Lowered, lower
from .options import CompileOptions
from .parse import parse
from .program import Promo, Recording
from .ranks import InputShapes
from .runtime import dtype_device, tracing_active, without_tracing
from .shapes import Shape
from .signatures import MAX_SIGNATURES, SignatureCache, check_batch, check_device, signature, split_shapes
from .trace import SizeDependent, Tracer, new_tracer

__all__ = ["MAX_SIGNATURES", "Compiled", "deep_recursion"]


class Compiled:
    """A program compiled for calls with tensors in ``self.names`` order.

    ``promote`` names top-level constants that become inputs (a module's trainable ones) and
    ``fixed`` gives inputs a shape they always have (a module's parameters)."""

    def __init__(self, source: str, options: CompileOptions | None = None, *,
                 modules: Mapping[str, Any] | None = None, promote: Sequence[str] = (),
                 fixed: Mapping[str, Shape] | None = None):
        if not isinstance(source, str):
            raise CallError(f"a program is a string of nc source, got {type(source).__name__}")
        self.options = options = options if options is not None else CompileOptions()
        with deep_recursion():
            self.ir: ir.SourceProgram = parse(source, name=options.name, promote=promote,
                                              externals=tuple(modules or ()))
        self.modules = dict(modules or {})
        self.module_shapes = {k: v for k, v in options.module_shapes.items() if v is not None}
        spans: dict[str, Span | None] = dict(zip(self.ir.inputs, self.ir.input_spans))
        self.inputs = InputShapes(self.ir.inputs, spans, {**options.declared(), **(fixed or {})})
        # The inputs' facts, under the names the API and the binding read.
        self.names, self.spans = self.inputs.names, self.inputs.spans
        self.declared, self.ranks = self.inputs.declared, self.inputs.ranks
        self.cache = SignatureCache()
        self.generic_program: Recording | None = None  # serves every call when sizes do not matter
        self.generic: Lowered | None = None  # the lowered generic_program (dtype and device from the inputs)
        with deep_recursion(), without_tracing():
            self.infer_ranks()
            if self.generic_program is not None:
                # Lowered now, not at the first call, so that torch.compile traces calls straight through.
                self.generic = lower(self.generic_program, generic=True, fallback=self.call_checked)

    def infer_ranks(self) -> None:
        """Trace once with sizes left open to find per-example ranks and report early errors.

        When that trace needs no size (none declared, none asked for by the program), its
        program serves every call: see `generic`.
        """
        def trace() -> Recording:
            return self.trace(self.inputs.open_shapes(), abstract=True, dtype=torch.get_default_dtype(),
                              device=torch.device("cpu"))[0]
        try:
            program = self.inputs.settle(trace)
        except SizeDependent:
            return  # the rest is known only when a call gives sizes
        if not self.inputs.sized() and not self.options.check_domain:
            self.generic_program = program

    def trace(self, pshapes: Mapping[str, Shape], *, abstract: bool, dtype: torch.dtype,
              device: torch.device) -> tuple[Recording, Tracer]:
        tracer = new_tracer(self.ir, self.options, abstract=abstract, dtype=dtype, device=device,
                            modules=self.modules)
        inputs = {}
        for n in self.names:
            promo = None if n in self.declared else Promo((n,))
            inputs[n] = tracer.new_input(tuple(pshapes[n]), promo)
        return tracer.run(inputs), tracer

    def call_checked(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> torch.Tensor:
        """A call on the checked path: bind and convert the arguments, then run."""
        given = [a for a in args if a is not MISSING]
        return self.run(bind_arguments(self, self.names, given, kwargs))

    def run(self, values: Sequence[torch.Tensor]) -> torch.Tensor:
        # Under a tracer, sizes may be symbolic (unhashable) and nothing is cached: build afresh.
        key = signature(self.inputs, values) if not tracing_active() else None
        hit = self.cache.get(key) if key is not None else None
        if hit is None:
            entry, cast = self.build(values)
        else:
            entry, cast = hit
            check_batch(self.inputs, values)
        if cast is not None:  # mixed input dtypes: linear algebra does not promote, so promote first
            values = [v.to(cast) for v in values]
        try:
            return entry.fn(*values)
        except NCError:
            raise
        except Exception as e:  # noqa: BLE001 - any failure inside generated code is reported at its primitive
            raise runtime_error(e, entry, values) from e

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
        key = signature(self.inputs, values)  # after program_for: a retrace may have raised some ranks
        if key is not None and not tracing:
            self.cache.put(key, entry, cast)
        return entry, cast

    def program_for(self, values: Sequence[torch.Tensor]) -> Recording:
        """The recorded program for the signature of ``values`` (checked against the inputs)."""
        dtype, device = dtype_device(values)
        check_device(self.inputs, values)
        return self.inputs.settle(lambda: self.trace(split_shapes(self.inputs, values), abstract=False,
                                                     dtype=dtype, device=device)[0])
