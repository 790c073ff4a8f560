"""Lowering a recorded program (`Recording`) to a plain Python function of tensors.

The program becomes straight-line Python source, one line per equation (as torch.fx writes
``GraphModule.code``), compiled once. The generated names are ``v<N>`` and ``c<N>`` only:
no text of the user's program ever reaches the generated source, so a name, number or
comment in a program cannot inject code. Dead equations are dropped first; that changes no bit.

The entry function is assembled once from its header, a prologue that makes what the body
uses (rank checks, dtype and device, constants: `nc.codegen.CodeWriter` records them) and the
body, each block put at its depth by `nc.codegen.Source`.
"""

from __future__ import annotations

import itertools
import linecache
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import torch

from . import runtime
from .codegen import CodeWriter, Line, Source, template_namespace
from .errors import NCError, Span
from .program import Eqn, Recording, Var, live_equations


@attrs.frozen
class Lowered:
    fn: Callable[..., torch.Tensor]
    source: str
    line_spans: dict[int, tuple[Span, ...]]  # generated line -> spans of the equations written there
    program: Recording | None = None  # what was lowered (relowered one equation a line to locate a failure)
    inline: bool = True


MISSING = object()
"""Default of an entry function's parameters: tells an argument not given from any value."""

FALLBACK = (runtime.RankMismatch, RuntimeError, TypeError, ValueError, LookupError, AttributeError,
            ArithmeticError)
"""What the entry function's fast path hands to the checked path (which converts the arguments
or raises the precise error): a rank check (`RankMismatch`), a failing torch operation
(``RuntimeError``, ``IndexError``, ``ValueError``), arguments that are not tensors (Python
numbers and lists: ``TypeError``, ``AttributeError``, ``ZeroDivisionError``, ``OverflowError``).
A program that calls learned components falls back on any ``Exception``: a component is the
user's code, and whatever it raises is reported at the call's span by the checked path."""

_names = itertools.count()


def lower(program: Recording, *, generic: bool = False, inline: bool = True,
          fallback: Callable[..., torch.Tensor] | None = None, exact_literals: bool = False) -> Lowered:
    """Compile ``program`` to a Python function of its inputs (in order).

    A *generic* function is an entry point: it takes its dtype and device from the inputs at
    every call (constants come from a per-dtype cache), so one function serves every signature
    with the same ranks, and it hands any call it cannot run as is to ``fallback(args, kwargs)``,
    the checked path (see `entry_function`). ``exact_literals``: literals that float32 cannot hold
    become constant tensors of the program's dtype (for exporters, see `nc.codegen.CodeWriter`).
    """
    w = CodeWriter(inline, exact_literals)
    out = program.output
    needed = {out.id} if isinstance(out, Var) else set()
    w.equations(live_equations(program.eqns, needed), 0, result=out.id if isinstance(out, Var) else None)
    result = w.result(program, needed)
    src = Source()
    if generic:
        entry_function(src, program, w, result, check_inputs=not needed >= {v.id for v in program.inputs}
                       or any(e.prim in REAL_OF_COMPLEX for e in all_equations(program.eqns)))
    else:
        src.add(0, f"def nc_program({', '.join(f'v{v.id}' for v in program.inputs)}):")
        src.extend(w.lines, 1)
        src.add(1, f"return {result[0]}", result[1])
    source = src.text()
    namespace = globals_for(program, generic, fallback)
    namespace.update({f"L{i}": torch.tensor(v, dtype=program.dtype, device=program.device)
                      for i, v in enumerate(w.literals)})
    filename = f"<nc-generated-{next(_names)}>"  # a counter: unique for the process's lifetime
    code = compile(source, filename, "exec")
    exec(code, namespace)  # noqa: S102 - source built above from nc's own templates and names
    fn = namespace["nc_program"]
    # Registered so that tracebacks and inspect can show the generated lines, and released with
    # the function (linecache would otherwise keep every program's source forever).
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    weakref.finalize(fn, linecache.cache.pop, filename, None)
    return Lowered(fn, source, src.spans, program if not generic else None, inline)


def entry_function(src: Source, program: Recording, w: CodeWriter, result: tuple[str, tuple[Span, ...]],
                   check_inputs: bool) -> None:
    """The generic function as a complete entry point: tensors in order run the body directly;
    anything else (keywords, missing or non-tensor arguments, a rank check or an operation that
    fails, a non-tensor or complex result) goes to ``SLOW``, the checked path, which converts or
    explains.

    Complex inputs are refused (by the checked path): every primitive either fails on them or
    gives a complex result, except those in `REAL_OF_COMPLEX`, so the result's dtype is checked,
    and each input's only where such a primitive is used or an input is not used at all (an
    input's check costs as much as the call's arithmetic on a scalar, about 0.1 us)."""
    params = [f"v{v.id}" for v in program.inputs]
    if params:
        given = "(" + "".join(p + ", " for p in params) + "*extra)"
        src.add(0, f"def nc_program({', '.join(p + '=MISSING' for p in params)}, /, *extra, **kw):")
        src.add(1, f"if kw or extra or {params[-1]} is MISSING:")
    else:
        given = "args"
        src.add(0, "def nc_program(*args, **kw):")
        src.add(1, "if args or kw:")
    src.add(2, f"return SLOW({given}, kw)")
    src.add(1, "try:")
    src.extend(prologue(program, w, check_inputs), 2)
    src.extend(w.lines, 2)
    src.add(2, f"out = {result[0]}", result[1])
    src.add(1, "except NCError:")
    src.add(2, "raise")
    src.add(1, "except FALLBACK:")
    src.add(2, f"return SLOW({given}, kw)")
    src.add(1, "if isinstance(out, TENSOR) and not out.is_complex():  # also a tracer's tensors: never run the program twice")
    src.add(2, "return out")
    src.add(1, f"return SLOW({given}, kw)")


def prologue(program: Recording, w: CodeWriter, check_inputs: bool) -> list[Line]:
    """What the body needs made first: rank checks (and dtype checks, with ``check_inputs``),
    then the dtype and device and the constants, if the body reads them."""
    lines = [Line(0, f"if v{v.id}.dim() < {v.rank}: raise _rt.RankMismatch()") for v in program.inputs if v.rank]
    if check_inputs and program.inputs:
        test = " or ".join(f"v{v.id}.is_complex()" for v in program.inputs)
        lines.append(Line(0, f"if {test}: raise _rt.RankMismatch()"))
    if w.constants or w.uses_dtype:
        args = "".join(f"v{v.id}, " for v in program.inputs)
        lines.append(Line(0, f"DT, DEV = _rt.dtype_device(({args}))"))
    if w.constants:
        names = "".join(f"c{i}, " for i in range(len(program.constants)))
        lines.append(Line(0, f"{names}= CONSTANTS(DT, DEV)"))
    return lines


REAL_OF_COMPLEX = frozenset({"abs", "norm"})
"""Primitives whose PyTorch operation takes a complex tensor and returns a real one (found by
calling every row with complex arguments; `tests/test_export.py` keeps the list true)."""


def all_equations(eqns: list[Eqn]) -> Iterator[Eqn]:
    """The equations, those of loop bodies included."""
    stack = list(reversed(eqns))
    while stack:
        e = stack.pop()
        yield e
        if e.region is not None:
            stack.extend(reversed(e.region.eqns))


def globals_for(program: Recording, generic: bool, fallback: Callable[..., torch.Tensor] | None) -> dict[str, Any]:
    ns = template_namespace(program)
    # The generated function's __module__: torch.jit.trace and pickling-by-name need one.
    ns["__name__"] = __name__
    if generic:
        ns["CONSTANTS"] = runtime.ConstantCache(program.constants)
        ns.update(MISSING=MISSING, TENSOR=torch.Tensor, NCError=NCError, SLOW=fallback,
                  FALLBACK=(Exception,) if program.externals else FALLBACK)
        return ns
    ns["DT"] = program.dtype
    for i, c in enumerate(program.constants):
        if c.dtype == torch.bool:
            ns[f"c{i}"] = c.to(program.device)
        else:
            ns[f"c{i}"] = c.to(dtype=program.dtype, device=program.device)
    return ns
