"""Closed forms of 2x2 and 3x3 determinants, inverses and solves, for exporters without a lowering
of ``linalg.inv``/``linalg.solve`` (ONNX) or a runtime without float64 ``Det`` (onnxruntime): used as
``ExportedProgram.run_decompositions`` rules.

Same results as LAPACK to rounding (the adjugate over the determinant), elementwise operations
only, batched over leading axes.
"""

from __future__ import annotations

import torch

SIZES = (2, 3)
"""Matrix sizes with a closed form."""


def det(A: torch.Tensor) -> torch.Tensor:
    """``torch.linalg.det(A)`` for 2x2 and 3x3 ``A``, expanded along the first row (onnxruntime
    has ONNX's ``Det`` in float32 only)."""
    if A.shape[-1] == 2:
        return A[..., 0, 0] * A[..., 1, 1] - A[..., 0, 1] * A[..., 1, 0]
    (a, b, c), (d, f, g), (h, i, k) = ([A[..., r, j] for j in range(3)] for r in range(3))
    return a * (f * k - g * i) - b * (d * k - g * h) + c * (d * i - f * h)


def inverse(A: torch.Tensor) -> torch.Tensor:
    """``torch.linalg.inv(A)`` for 2x2 and 3x3 ``A`` (leading axes batch), by the adjugate."""
    n = A.shape[-1]
    e = [[A[..., i, j] for j in range(n)] for i in range(n)]
    if n == 2:
        (a, b), (c, d) = e
        det = a * d - b * c
        rows = [[d, -b], [-c, a]]
    else:
        (a, b, c), (d, f, g), (h, i, k) = e  # row-major entries; 'e' is the entry list
        co = [[f * k - g * i, c * i - b * k, b * g - c * f],
              [g * h - d * k, a * k - c * h, c * d - a * g],
              [d * i - f * h, b * h - a * i, a * f - b * d]]
        det = a * co[0][0] + b * co[1][0] + c * co[2][0]
        rows = co
    adj = torch.stack([torch.stack(r, dim=-1) for r in rows], dim=-2)
    return adj / det[..., None, None]


def inv_ex(A: torch.Tensor, *, check_errors: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``aten.linalg_inv_ex``: the inverse and a zero ``info``."""
    return inverse(A), torch.zeros(A.shape[:-2], dtype=torch.int32, device=A.device)


def solve_ex(A: torch.Tensor, B: torch.Tensor, *, left: bool = True,
             check_errors: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``aten.linalg_solve_ex`` (left solves, ``B`` a matrix of right-hand sides)."""
    x = inverse(A) @ B if left else B @ inverse(A)
    return x, torch.zeros(A.shape[:-2], dtype=torch.int32, device=A.device)


def decompositions(with_det: bool) -> dict[torch._ops.OpOverload, object]:
    """The rules for ``ExportedProgram.run_decompositions`` (``det`` only when every determinant
    of the program is 2x2 or 3x3)."""
    rules: dict[torch._ops.OpOverload, object] = {torch.ops.aten.linalg_inv_ex.default: inv_ex,
                                                   torch.ops.aten.linalg_solve_ex.default: solve_ex}
    if with_det:
        rules[torch.ops.aten.linalg_det.default] = det
    return rules
