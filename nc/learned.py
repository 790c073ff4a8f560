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

from collections.abc import Sequence

import torch
from torch import nn

from . import ir
from .errors import ShapeError
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
    index = tr.external_index(node.name)
    ranks = tuple(len(s) for s in shapes)
    if len(args) == 1:
        code = f"X{index}({{0}})"
    else:
        code = f"X{index}(*_rt.broadcast_batch(({{*}},), {ranks!r}))"
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
