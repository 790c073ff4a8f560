"""Exporting a compiled program: ``torch.export`` (a ``.pt2`` archive) and ONNX.

`to_pt2` and `to_onnx` wrap a `compile_fn` result or an `NcModule` in a module whose
``forward`` takes the program's inputs in order, make example inputs (one batch axis of size 2
in front of each input's per-example shape, unless examples are given) and export it with every
batch axis dynamic (``torch.export.Dim.AUTO``). Per-example sizes stay static: nc records one
program per per-example shape. The exported graph holds the program's torch operations only
(nc's checks and dtype promotion run while exporting, not in the graph).

What blocks export: a masked loop (its trip count depends on the data) is an `NCError` naming the
loop and its position; so is, for ONNX, a primitive with no ONNX lowering (`ONNX_GAPS`). ONNX
needs ``pip install 'nc[export]'`` (onnx, onnxscript, onnxruntime).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from . import closed_forms
from .errors import CallError, NCError
from .lower import all_equations, lower
from .program import ConstRef, Eqn, Recording, Var
from .shapes import Shape

ONNX_GAPS = frozenset({"expm"})
"""Primitives whose PyTorch operation has no ONNX lowering in the dynamo exporter (checked by
`tests/test_export.py`; ``det`` and ``cross`` have one)."""

CLOSED_FORMS = frozenset({"inv", "solve"})

"""Primitives with no ONNX lowering that export as closed forms for 2x2 and 3x3 matrices
(`nc.closed_forms`); for other sizes they block ONNX export."""


class Exportable(nn.Module):
    """A compiled function or module with ``forward(*inputs)`` in the program's input order."""

    def __init__(self, target: Any) -> None:
        super().__init__()
        self.target = target  # an NcModule is a submodule: its parameters are exported with it

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.target(*inputs)  # type: ignore[no-any-return]


class LoweredExportable(nn.Module):
    """`Exportable` through the program recorded and lowered for the examples' signature (before
    exporting, on real tensors): the exporter traces only the program's operations.

    ``exact_literals``: literals that float32 cannot hold become constant tensors. ONNX's exporter
    writes Python scalars as float32 attributes, which would cost a float64 program digits."""

    def __init__(self, target: Any, program: Recording, exact_literals: bool = False) -> None:
        super().__init__()
        self.target = target  # a module's parameters (and learned components') are exported with it
        self.fn = lower(program, exact_literals=exact_literals).fn

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        if isinstance(self.target, nn.Module):
            module: Any = self.target
            given = (*inputs, *(module.params[n] for n in module.param_names))
            inputs = tuple(given[i] for i in module._order)
        return self.fn(*inputs)  # type: ignore[no-any-return]


def compiled_of(target: Any) -> Any:
    compiled = getattr(target, "_compiled", None)
    if compiled is None:
        raise CallError(f"export takes a compile_fn result or an nc module, got {type(target).__name__}")
    return compiled


def examples(target: Any, shapes: Mapping[str, Shape] | None = None, batch: int = 2,
             dtype: torch.dtype | None = None) -> tuple[torch.Tensor, ...]:
    """Example inputs: ``batch`` examples of each input, per-example sizes from the program's
    declared shapes or ``shapes`` (a `CallError` names an input whose size is left open)."""
    compiled = compiled_of(target)
    shapes = dict(shapes or {})
    out: list[torch.Tensor] = []
    for name in target.inputs:
        rank = compiled.ranks[name]
        shape = tuple(shapes.get(name, compiled.declared.get(name, (None,) * rank)))
        if len(shape) != rank or any(d is None for d in shape):
            raise CallError(f"export needs the per-example shape of input '{name}' (rank {rank})",
                            compiled.spans.get(name), hint=f"pass shapes={{'{name}': (...)}} (--shape {name}=...)")
        gen = torch.Generator().manual_seed(len(out))
        out.append(torch.rand((batch, *shape), generator=gen, dtype=dtype or torch.get_default_dtype()) + 0.5)
    return tuple(out)


def dynamic_batch(target: Any, args: Sequence[torch.Tensor]) -> tuple[tuple[dict[int, Any], ...]]:
    """``dynamic_shapes`` for `Exportable`: every batch axis (those in front of each input's
    per-example axes) left to torch.export (``Dim.AUTO``)."""
    compiled = compiled_of(target)
    return (tuple({k: torch.export.Dim.AUTO for k in range(a.dim() - compiled.ranks[n])}
                  for n, a in zip(target.inputs, args)),)


def recording(target: Any, args: Sequence[torch.Tensor]) -> Recording:
    """The program recorded for ``args`` (a module's parameters are inputs of its program)."""
    if isinstance(target, nn.Module):
        module: Any = target
        given = (*args, *(module.params[n] for n in module.param_names))
        with torch.no_grad():
            return compiled_of(module).program_for([given[i] for i in module._order])  # type: ignore[no-any-return]
    return target.program(*args)  # type: ignore[no-any-return]


def check_exportable(program: Recording, onnx: bool) -> None:
    """An `NCError` at the first equation that export cannot express."""
    for e in all_equations(program.eqns):
        if e.region is not None and e.prim != "%scan":  # a rolled euler/rk4 exports as its unrolled loop
            raise NCError("this loop's trip count depends on the inputs (a masked loop): it cannot be exported",
                          e.span, hint="export supports straight-line programs, static loops, euler and rk4")
        sized = onnx and e.prim in CLOSED_FORMS and matrix_size(e) in closed_forms.SIZES
        if onnx and (e.prim in ONNX_GAPS or e.prim in CLOSED_FORMS and not sized):
            also = " (2x2 and 3x3 matrices export as closed forms)" if e.prim in CLOSED_FORMS else ""
            raise NCError(f"'{e.prim}' has no ONNX lowering in torch.onnx{also}: this program cannot be "
                          f"exported to ONNX", e.span, hint="export to pt2 (torch.export) instead")


def matrix_size(e: Eqn) -> int | None:
    """The size of the square matrix an ``inv``/``solve`` equation takes first."""
    a = e.args[0]
    shape = a.pshape if isinstance(a, (Var, ConstRef)) else ()
    return shape[-1] if len(shape) == 2 else None


def to_pt2(target: Any, *args: torch.Tensor, shapes: Mapping[str, Shape] | None = None,
           dtype: torch.dtype | None = None) -> torch.export.ExportedProgram:
    """``torch.export.export`` of a compiled function or module with dynamic batch axes.

    ``args``: example inputs (default: two examples of each, see `examples`). The result's
    ``.module()`` is called with the inputs in ``target.inputs`` order; ``torch.export.save``
    writes it to a ``.pt2`` file."""
    args = args or examples(target, shapes, dtype=dtype)
    program = recording(target, args)
    check_exportable(program, onnx=False)
    return torch.export.export(LoweredExportable(target, program), tuple(args),
                               dynamic_shapes=dynamic_batch(target, args))


def to_onnx(target: Any, *args: torch.Tensor, shapes: Mapping[str, Shape] | None = None,
            dtype: torch.dtype | None = None) -> Any:
    """``torch.onnx.export`` (the dynamo exporter) of a compiled function or module with dynamic
    batch axes: a ``torch.onnx.ONNXProgram`` (``.save(path)``; ``.model_proto``). Inputs are
    named as the program's inputs (``g/L`` becomes ``g_L``)."""
    try:
        import onnxscript  # noqa: F401 - the dynamo exporter needs it (an optional dependency)
    except ImportError:
        raise CallError("ONNX export needs onnx and onnxscript", hint="pip install 'nc[export]'") from None
    args = args or examples(target, shapes, dtype=dtype)
    program = recording(target, args)
    check_exportable(program, onnx=True)
    wrapper = LoweredExportable(target, program, exact_literals=program.dtype == torch.float64)
    ep = torch.export.export(wrapper, tuple(args), dynamic_shapes=dynamic_batch(target, args))
    # inv/solve as closed forms (sizes checked above); det too where it can (onnxruntime has a
    # float32 Det only), else ONNX's Det.
    dets = [matrix_size(e) for e in all_equations(program.eqns) if e.prim == "det"]
    ep = ep.run_decompositions(closed_forms.decompositions(all(n in closed_forms.SIZES for n in dets)))
    names = [input_name(n) for n in target.inputs]
    return torch.onnx.export(ep, tuple(args), dynamo=True, input_names=names, output_names=["result"],
                             verbose=False)


def input_name(name: str) -> str:
    """An ONNX input name for a program input: letters, digits and ``_``."""
    return "".join(c if c.isalnum() or c == "_" else "_" for c in name)
