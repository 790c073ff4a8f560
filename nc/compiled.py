"""A parsed program with its input ranks and a cache of lowered functions, one per signature.

`Compiled` is the engine behind `compile_fn` and `compile`: it infers per-example ranks once
(a compile-time trace with sizes left open, `nc.ranks`), then traces and lowers once per
signature of input shapes, dtypes and devices, as ``jax.jit`` does (`nc.signatures`). A call is
a dictionary lookup and the generated function; a failure inside it is reported at the span of
the primitive that failed (`nc.failures`).
"""

from __future__ import annotations

import numbers
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
from .values import NeedStatic

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
        self.static: set[str] = set()  # static inputs: Python ints at call time, the program specialised per value
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
        except NeedStatic as e:
            self.static |= e.names
            return  # the rest is known only when a call gives their values
        if not self.inputs.sized() and not self.options.check_domain:
            self.generic_program = program

    def trace(self, pshapes: Mapping[str, Shape], *, abstract: bool, dtype: torch.dtype,
              device: torch.device, statics: Mapping[str, int] | None = None) -> tuple[Recording, Tracer]:
        tracer = new_tracer(self.ir, self.options, abstract=abstract, dtype=dtype, device=device,
                            modules=self.modules)
        inputs = {}
        for n in self.names:
            promo = None if n in self.declared else Promo((n,))
            inputs[n] = tracer.new_input(tuple(pshapes[n]), promo)
        consts = {n: torch.tensor(float(v), dtype=torch.float64) for n, v in (statics or {}).items()}
        return tracer.run(inputs, consts), tracer

    def call_checked(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> torch.Tensor:
        """A call on the checked path: bind and convert the arguments, then run."""
        given = [a for a in args if a is not MISSING]
        values = bind_arguments(self, self.names, given, kwargs)
        for _ in range(len(self.names) + 1):  # each retry makes at least one more input static
            try:
                return self.run(values, static_values(self, given, kwargs))
            except NeedStatic as e:
                self.static |= e.names
        raise AssertionError("unreachable: every input is static by now")

    def run(self, values: Sequence[torch.Tensor], statics: Mapping[str, int] | None = None) -> torch.Tensor:
        if self.static and statics is None:
            raise static_error(self, sorted(self.static)[0])
        # Under a tracer, sizes may be symbolic (unhashable) and nothing is cached: build afresh.
        key = signature(self.inputs, values) if not tracing_active() else None
        if key is not None and statics:
            key = (*key, ("static", tuple(sorted(statics.items()))))
        hit = self.cache.get(key) if key is not None else None
        if hit is None:
            entry, cast = self.build(values, statics)
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

    def build(self, values: Sequence[torch.Tensor],
              statics: Mapping[str, int] | None = None) -> tuple[Lowered, torch.dtype | None]:
        """Trace and lower for the signature of ``values``, and cache the result.

        Under a tracer (FakeTensor mode, torch.compile, make_fx) the build runs with the tracer's
        modes switched off, so that its constants are real tensors, and is not cached: nothing a
        tracer does may change what later eager calls get.
        """
        tracing = tracing_active()
        with deep_recursion(), without_tracing():
            program = self.program_for(values, statics)
            entry = lower(program)
        cast = program.dtype if len({v.dtype for v in values}) > 1 else None
        key = signature(self.inputs, values)  # after program_for: a retrace may have raised some ranks
        if key is not None and statics:
            key = (*key, ("static", tuple(sorted(statics.items()))))
        if key is not None and not tracing:
            self.cache.put(key, entry, cast)
        return entry, cast

    def program_for(self, values: Sequence[torch.Tensor], statics: Mapping[str, int] | None = None) -> Recording:
        """The recorded program for the signature of ``values`` and the values of static inputs
        (checked against the inputs)."""
        dtype, device = dtype_device(values)
        check_device(self.inputs, values)
        if self.static and statics is None:
            raise static_error(self, sorted(self.static)[0])
        try:
            return self.inputs.settle(lambda: self.trace(split_shapes(self.inputs, values), abstract=False,
                                                         dtype=dtype, device=device, statics=statics)[0])
        except NeedStatic as e:
            if statics is None:  # not a checked call (program_of): the values are gone, say what to pass
                self.static |= e.names
                raise static_error(self, sorted(e.names)[0]) from None
            raise


def static_values(compiled: Compiled, args: Sequence[Any], kwargs: Mapping[str, Any]) -> dict[str, int] | None:
    """The Python ints given for the static inputs (a `CallError` for anything else)."""
    if not compiled.static:
        return None
    given = {**dict(zip(compiled.names, args)), **kwargs}
    out = {}
    for n in sorted(compiled.static):
        v = given.get(n)
        if not isinstance(v, numbers.Integral) or isinstance(v, bool):
            raise static_error(compiled, n, v)
        out[n] = int(v)
    return out


def static_error(compiled: Compiled, name: str, value: Any = None) -> CallError:
    got = "a tensor" if value is None or isinstance(value, torch.Tensor) else type(value).__name__
    return CallError(f"input '{name}' is used as a size or a step count, so it must be a Python int "
                     f"(a static input), got {got}", compiled.spans.get(name),
                     hint="pass an int: tensor shapes cannot depend on data; the program is specialised "
                          "and cached per value")
