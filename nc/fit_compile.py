"""``fit(..., compile=...)``: choosing the compiled training step (`nc.compiled_step`) or not.

``compile=True`` asks for it: a model or a call it does not handle gets a `FitWarning` with the
reason and the eager path; a failure of PyTorch's compiler is a `CallError`. ``"auto"`` takes it
where it applies and falls back quietly (with a `FitWarning` if the compiler itself failed).
Either way `compiled_objective` also says what happened, which `FitResult` keeps
(``compiled``, ``compile_note``).
"""

from __future__ import annotations

import warnings
from typing import Any

from torch import nn

from nc.compiled_step import NotCompilable, compiled_step
from nc.errors import CallError
from nc.fit_checks import check_choice
from nc.fit_data import FitData
from nc.fit_loop import GradFn
from nc.fit_result import NOT_ASKED, FitWarning

__all__ = ["compiled_objective"]


def compiled_objective(model: nn.Module, data: FitData | None, loss: Any, compile: bool | str,
                       batch_size: int | None) -> tuple[GradFn | None, str]:
    """The compiled full-batch objective for ``fit``, built and run once (the compile), or None;
    and a note for `FitResult.compile_note`: how long the compile took, or why there is none."""
    if compile is False:
        return None, NOT_ASKED
    check_choice("compile", compile, [False, True, "auto"])
    why = _why_not(data, loss, batch_size)
    if why is None:
        assert data is not None
        step = compiled_step(model)
        try:
            step(*data.args, target=data.target, **data.kwargs)

            def objective() -> Any:
                return step(*data.args, target=data.target, **data.kwargs)
            seconds = step.compile_seconds[-1] if step.compile_seconds else 0.0
            used = getattr(step, "backends", None)  # which compiler a build used, where it can choose
            backend = used[-1] if used else step.compiler or "eager"
            return objective, f"compiled step ({backend}), first call {seconds:.1f} s"
        except NotCompilable as e:
            why = e.reason
        except Exception as e:  # noqa: BLE001 - PyTorch's compiler fails in many types (missing C++ compiler, unsupported op)
            if compile is True:
                raise CallError(f"compile=True: PyTorch's compiler failed: {type(e).__name__}: {str(e)[:300]}",
                                None, hint="fit with compile=False (eager), or compile='auto' to fall back") from e
            warnings.warn(f"compile='auto': PyTorch's compiler failed ({type(e).__name__}); fitting eagerly",
                          FitWarning, stacklevel=3)
            return None, f"PyTorch's compiler failed ({type(e).__name__}); fitted eagerly"
    if compile is True:
        warnings.warn(f"compile=True: no compiled training step ({why}); fitting eagerly", FitWarning, stacklevel=3)
    return None, f"{why}; fitted eagerly"


def _why_not(data: FitData | None, loss: Any, batch_size: int | None) -> str | None:
    """Why the fit's call is not the compiled step's form (full batch, MSE, a target), or None."""
    if data is None:
        return "the data are drawn afresh each epoch"
    if batch_size is not None:
        return "mini-batches (the compiled step is full batch)"
    if loss != "mse":
        return "the loss is not 'mse'"
    if data.target is None:
        return "there is no target"
    return None
