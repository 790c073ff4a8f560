"""Learned components: PyTorch modules that a program calls like functions, ``(drag v)``.

A component is recorded as one equation that calls the module on the arguments' tensors, whose
leading axes are batch axes (as every ``nn.Module`` expects). Its output's per-example shape is
found once per signature by calling the module on zeros of the arguments' per-example shapes
(in eval mode, without gradients), unless it was declared. Its parameters belong to the
`NcModule` that holds it, so optimisers, ``state_dict`` and ``functional_call`` see them, and
``vmap``/``grad``/``jacrev`` go through the whole hybrid. An input passed straight to a
component is a feature vector (per-example rank 1) unless ``shapes=`` declares otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

import torch
from torch import nn

from . import ir
from .errors import CallError, ShapeError, Span
from .primitives import TABLE
from .program import Var
from .shapes import Shape, show
from .trace import Env, Promote, SizeDependent, Tracer, Value, pshape_of


def trace_external(tr: Tracer, node: ir.External, env: Env) -> Value:
    module = tr.externals[node.name]
    args = [tr.expr(a, env) for a in node.args]
    for a in args:  # modules take feature vectors: an undeclared scalar input passed here is a vector
        if isinstance(a, Var) and a.rank == 0 and a.promo is not None:
            raise Promote(a.promo.names(), 1)
    shapes = [pshape_of(a) for a in args]
    declared = tr.external_shapes.get(node.name)
    if declared is not None:
        out_shape: Shape = tuple(declared)
    elif any(d is None for s in shapes for d in s):
        if tr.abstract:
            raise SizeDependent()  # known at the first call, which gives sizes
        raise ShapeError(f"the sizes of the arguments of '{node.name}' are not known", node.span)
    else:
        out_shape = infer_output(module, node.name, shapes, node.span)
    if not tr.abstract:
        check_dtype(module, node.name, tr.dtype, node.span)
    index = tr.external_index(node.name)
    code = TABLE["learned:"].template(len(args), list(shapes), {"index": index})
    return tr.record(f"learned:{node.name}", code, args, out_shape, node.span)


def infer_output(module: nn.Module, name: str, shapes: Sequence[Shape], span: object) -> Shape:
    """The per-example output shape of ``module`` on one example of each argument."""
    param = next(iter(module.parameters()), None)
    dtype = param.dtype if param is not None else torch.get_default_dtype()
    device = param.device if param is not None else torch.device("cpu")
    zeros = [torch.zeros((1, *s), dtype=dtype, device=device) for s in shapes]  # type: ignore[misc, arg-type]
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            out = module(*zeros)
    except (RuntimeError, TypeError, ValueError, IndexError) as e:
        given = ", ".join(show(s) for s in shapes)
        raise ShapeError(f"the learned component '{name}' failed on one example of {given}: "
                         f"{str(e).splitlines()[0] if str(e) else type(e).__name__}", span,  # type: ignore[arg-type]
                         hint="give it arguments of the shape its first layer expects "
                              "(a scalar x can be passed as the 1-vector [x])") from None
    finally:
        module.train(was_training)
    if not isinstance(out, torch.Tensor) or out.dim() < 1 or out.shape[0] != 1:
        raise ShapeError(f"the learned component '{name}' must return one tensor with the batch axis first",
                         span)  # type: ignore[arg-type]
    return tuple(out.shape[1:])


def is_var(v: Value) -> bool:
    return isinstance(v, Var)


MAX_MODULE_RANK = 8
DTYPE_ADVICE = ("compile with dtype= (it casts the learned modules too), or cast the model and its "
                "inputs to one dtype (model.double() and float64 inputs)")


def check_modules(modules: Any, module_shapes: Any) -> tuple[dict[str, nn.Module], dict[str, tuple[int, ...]]]:
    """``modules=`` and ``module_shapes=`` checked: `CallError` naming the key of a bad entry.

    A component must be an ``nn.Module`` (its parameters belong to the compiled module, and
    pickling stores it); wrap a plain function in a small ``nn.Module`` whose ``forward`` calls it.
    """
    if modules is None:
        modules = {}
    if not isinstance(modules, Mapping):
        raise CallError(f"modules= must be a dict of name -> torch.nn.Module, got {type(modules).__name__}")
    out: dict[str, nn.Module] = {}
    for key, m in modules.items():
        if not isinstance(key, str):
            raise CallError(f"modules= keys are the names the program calls, got {key!r}")
        if not isinstance(m, nn.Module):
            raise CallError(f"modules['{key}'] must be a torch.nn.Module, got {type(m).__name__}",
                            hint="wrap a plain function in an nn.Module whose forward calls it")
        out[key] = m
    return out, check_module_shapes(module_shapes, out)


def check_module_shapes(module_shapes: Any, modules: Mapping[str, nn.Module]) -> dict[str, tuple[int, ...]]:
    if module_shapes is None:
        return {}
    if not isinstance(module_shapes, Mapping):
        raise CallError(f"module_shapes= must be a dict of name -> per-example output shape, "
                        f"got {type(module_shapes).__name__}")
    out = {}
    for key, shape in module_shapes.items():
        if key not in modules:
            from .suggest import closest

            near = closest(str(key), modules)
            raise CallError(f"module_shapes= names {key!r}, which is not a learned component "
                            f"(modules: {', '.join(modules) or 'none'})",
                            hint=f"did you mean '{near[0]}'?" if near else None)
        ok = isinstance(shape, (tuple, list)) and len(shape) <= MAX_MODULE_RANK and all(
            isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**31 for d in shape)
        if not ok:
            raise CallError(f"module_shapes['{key}'] must be a tuple of at most {MAX_MODULE_RANK} sizes "
                            f"(non-negative ints), got {shape!r}")
        out[key] = tuple(shape)
    return out


def param_dtype(module: nn.Module) -> torch.dtype | None:
    """The dtype of a module's first floating parameter (None when it has none)."""
    for p in module.parameters():
        if p.is_floating_point():
            return p.dtype
    return None


def check_dtype(module: nn.Module, name: str, dtype: torch.dtype, span: Span | None) -> None:
    own = param_dtype(module)
    if own is not None and own != dtype:
        raise CallError(f"the learned component '{name}' has {str(own).removeprefix('torch.')} parameters, "
                        f"but this call computes in {str(dtype).removeprefix('torch.')}", span,
                        hint=DTYPE_ADVICE) from None  # the generated code's failed fast try is no news


def learned_dtype_error(e: BaseException, modules: Mapping[str, nn.Module], span: Span | None) -> CallError | None:
    """A clear error for a run-time dtype clash inside a learned component, else None."""
    text = str(e)
    if not isinstance(e, RuntimeError) or not ("dtype" in text or "scalar type" in text or "type (" in text):
        return None
    dtypes = {n: param_dtype(m) for n, m in modules.items()}
    shown = ", ".join(f"'{n}' has {str(d).removeprefix('torch.')} parameters" for n, d in dtypes.items() if d)
    if not shown:
        return None
    return CallError(f"a learned component does not take inputs of this dtype ({shown}): "
                     f"{text.splitlines()[0]}", span, hint=DTYPE_ADVICE)


def span_in(e: BaseException, line_spans: Mapping[int, tuple[Span, ...]]) -> Span | None:
    """The span of the statement on the generated line where ``e`` was raised (the innermost one)."""
    span = None
    tb: TracebackType | None = e.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.startswith("<nc-generated"):
            spans = line_spans.get(tb.tb_lineno)
            span = spans[-1] if spans else span
        tb = tb.tb_next
    return span
