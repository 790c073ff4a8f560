"""The compiled training step as plain C: the entry point, from a step's graph to a callable.

`nc.compiled_step` (``compiler="c"``, the default choice where a C compiler exists) hands this
module the step's flat ``torch.fx`` graph (`nc.sensitivities.step_graph`: one step and its
sensitivities, ATen operations with static shapes) and gets back, from `build_loop`, the same
function as ``inductor_step.rollout_loss``: ``(theta, ys0, S0, data, *fixed) -> (mse, gradient)``.
The loop over the steps, the step, the residuals against the data and the sums of the loss and
the gradient are one C function, so a training step is one call with no Python per step.
`build_rollout` does the same for the forward rollout alone: ``(ys0, *fixed) -> states``.

The parts, one idea each:

- `nc.c_codegen`: the scalarizing generator (views as index maps, small buffers as scalars in
  registers, larger ones as arrays of one workspace); an operation it lacks raises `Unsupported`
  with its name, and the caller falls back to inductor.
- `nc.c_programs`: the programs generated with it (`generate`, `generate_lanes` for a batch in
  SIMD lanes, `generate_rollout`).
- `nc.c_build`: the system compiler at ``-O3`` with exact IEEE semantics (no ``-ffast-math``, no
  fused multiply-adds), the on-disk cache (``$XDG_CACHE_HOME/nc/c``, else ``~/.cache/nc/c``,
  else a temporary directory) and loading with ``ctypes``; `NoCompiler`, `CompileFailed`.

Computing is in the tensors' dtype (float64 or float32); results equal autograd through the
eager rollout to rounding (1e-10 relative in float64: libm's ``sin`` and torch's may differ in
the last bit). This module wraps each compiled function so that it takes and returns tensors.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Sequence

import torch
import torch.fx
from torch import Tensor

from .c_build import CompileFailed, Library, NoCompiler, Unsupported, compile_source
from .c_programs import generate, generate_lanes, generate_rollout

__all__ = ["CompileFailed", "Library", "NoCompiler", "Unsupported", "build_loop", "build_rollout", "compile_source"]


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
