"""Every conformance program goes through ``torch.compile(fullgraph=True)`` without a graph break.

The eager backend keeps this fast; the inductor backend belongs to the benchmarks.
"""

from __future__ import annotations

import json
import pathlib
import warnings

import pytest
import torch

import nc

CASES = pathlib.Path(__file__).resolve().parents[2] / "shared" / "conformance" / "cases.jsonl"


def value_cases() -> list[dict]:
    if not CASES.exists():
        return []
    cases = [json.loads(line) for line in CASES.read_text().splitlines() if line.strip()]
    return [c for c in cases if not c.get("error") and c["id"] != "deep-nesting"]


@pytest.mark.skipif(not CASES.exists(), reason="../shared/conformance is not beside the checkout")
@pytest.mark.parametrize("case", value_cases(), ids=lambda c: c["id"])
def test_conformance_program_compiles_fullgraph(case: dict) -> None:
    torch._dynamo.reset()  # each program is a new CompiledFunction: keep dynamo's per-code cache clear
    f = nc.compile_fn(case["program"])
    args = [torch.tensor(case["args"][n], dtype=torch.float64) for n in f.inputs]
    compiled = torch.compile(f, fullgraph=True, backend="eager")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = compiled(*args)
    want = f(*args)
    assert got.dtype == want.dtype
    assert torch.equal(got, want) or torch.allclose(got, want, equal_nan=True, rtol=1e-15, atol=0)
