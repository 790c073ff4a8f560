"""DDP training of a hybrid model (2 gloo processes on the CPU) reaches the single-process result."""

from __future__ import annotations

import pathlib
import sys

import pytest
import torch

pytestmark = pytest.mark.slow  # two processes: about 9 s

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


def test_ddp_matches_single_process() -> None:
    sys.path.insert(0, str(EXAMPLES))
    try:
        import ddp_hybrid
    finally:
        sys.path.remove(str(EXAMPLES))
    sys.path.insert(0, str(EXAMPLES))  # the spawned workers import ddp_hybrid by name
    try:
        one, two = ddp_hybrid.single_process(), ddp_hybrid.distributed()
    finally:
        sys.path.remove(str(EXAMPLES))
    assert set(one) == set(two)
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=1e-6, atol=1e-12)
    assert abs(float(one["G"]) - 3.0) > 0.1  # training moved G: the comparison means something
