"""The compiled forward rollout (`CompiledStep.rollout`): ``model(*inputs)`` without gradient,
the loop over the step generated as C (`nc.c_backend.build_rollout`).

Values equal the eager model's (1e-12 relative in float64; bit for bit where the step is plain
arithmetic, as C is compiled without contraction), same shape and dtype, no autograd graph;
where C does not apply the eager model runs after a `FitWarning` (``compiler="c"``: a
`CallError`). Skipped where there is no C compiler.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import nc
from nc import c_build, c_codegen
from tests.paper_programs import LV, LV_TRUE, PENDULUM, PENDULUM_TRUE
from tests.test_compiled_step import BATCH, SHIFTED

pytestmark = pytest.mark.skipif(c_build.c_compiler() is None, reason="needs a C compiler")

F64 = torch.float64
B37 = 1.0 + torch.linspace(0.0, 2.0, 74, dtype=F64).reshape(37, 2)
CASES = {
    "lv-1000-batch1": (LV.format(steps=1000), LV_TRUE, torch.tensor([4.0, 1.0], dtype=F64)),
    "lv-batch37": (LV.format(steps=200), LV_TRUE, B37),
    "pendulum-batch1": (PENDULUM.format(steps=200), PENDULUM_TRUE, torch.tensor([1.0, 0.0], dtype=F64)),
    "pendulum-batch37": (PENDULUM.format(steps=200), PENDULUM_TRUE, B37 - 2.0),
    "initial-state-from-constant": (SHIFTED, {"k": 2.0, "x0": 1.0}, BATCH),
}
PLAIN_ARITHMETIC = {"lv-1000-batch1", "lv-batch37", "initial-state-from-constant"}
"""The steps of only +, -, *: C computes them as torch does, bit for bit (no sin from libm)."""


@pytest.fixture(autouse=True)
def cache_in_tmp(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """One cache directory for the whole session, not the user's."""
    root = tmp_path_factory.getbasetemp() / "xdg-cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(root))
    return root / "nc" / "c"


def eager(model: nc.NcModule, *args: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(*args)


@pytest.mark.parametrize("case", list(CASES))
def test_float64_equals_the_eager_model(case: str) -> None:
    src, params, s0 = CASES[case]
    model = nc.compile(src, params=params, dtype=F64)
    step = nc.compiled_step(model, compiler="c")
    got = step.rollout(s0)
    want = eager(model, s0)
    assert got.shape == want.shape and got.dtype == want.dtype == F64 and got.is_contiguous()
    assert not got.requires_grad and got.grad_fn is None
    torch.testing.assert_close(got, want, rtol=1e-12, atol=0.0)
    if case in PLAIN_ARITHMETIC:
        assert torch.equal(got, want)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.01)  # new constants: the same compiled code reads them
    torch.testing.assert_close(step.rollout(s0), eager(model, s0), rtol=1e-12, atol=0.0)
    assert step.rollout_backends == ["c"]


@pytest.mark.parametrize("case", ["lv-1000-batch1", "pendulum-batch37"])
def test_float32_close_to_the_eager_model(case: str) -> None:
    src, params, s0 = CASES[case]
    model = nc.compile(src, params=params, dtype=torch.float32)
    got = nc.compiled_step(model).rollout(s0.float())
    want = eager(model, s0.float())
    assert got.dtype == torch.float32 and got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_inputs_by_name_and_a_new_shape_build_again() -> None:
    model = nc.compile(LV.format(steps=30), params=LV_TRUE, dtype=F64)
    step = nc.compiled_step(model)
    assert torch.equal(step.rollout(s0=BATCH), eager(model, BATCH))
    assert torch.equal(step.rollout(BATCH[0]), eager(model, BATCH[0]))
    assert step.rollout_backends == ["c", "c"]


def test_what_c_does_not_handle_runs_eagerly_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    formula = nc.compile("(* G m r)", params={"G": 2.0}, dtype=F64)
    x = torch.tensor([1.0, 2.0], dtype=F64)
    step = nc.compiled_step(formula)
    with pytest.warns(nc.FitWarning, match="not a rolled integration"):
        got = step.rollout(x, x)
    assert torch.equal(got, eager(formula, x, x)) and not got.requires_grad
    assert step.rollout_backends == ["eager"]
    with pytest.raises(nc.CallError, match="compiler='c': no compiled rollout"):
        nc.compiled_step(formula, compiler="c").rollout(x, x)

    monkeypatch.delitem(c_codegen.UNARY, "sin")
    src, params, s0 = CASES["pendulum-batch1"]
    model = nc.compile(src, params=params, dtype=F64)
    with pytest.warns(nc.FitWarning, match=r"unsupported: the operation aten\.sin"):
        got = nc.compiled_step(model).rollout(s0)
    assert torch.equal(got, eager(model, s0))
    with pytest.raises(nc.CallError, match=r"unsupported: the operation aten\.sin"):
        nc.compiled_step(model, compiler="c").rollout(s0)


def test_no_c_compiler_runs_eagerly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(c_build, "c_compiler", lambda: None)
    model = nc.compile(LV.format(steps=30), params=LV_TRUE, dtype=F64)
    with pytest.warns(nc.FitWarning, match="no C compiler"):
        assert torch.equal(nc.compiled_step(model).rollout(BATCH), eager(model, BATCH))
    with pytest.raises(nc.CallError, match="no C compiler"):
        nc.compiled_step(model, compiler="c").rollout(BATCH)


def test_other_compilers_run_the_eager_model() -> None:
    model = nc.compile(LV.format(steps=30), params=LV_TRUE, dtype=F64)
    for compiler in (None, "inductor"):
        step = nc.compiled_step(model, compiler=compiler)
        got = step.rollout(BATCH)
        assert torch.equal(got, eager(model, BATCH)) and got.grad_fn is None and step.rollout_backends == []


def test_scalar_and_vector_states_mixed_dtypes_and_non_contiguous_inputs() -> None:
    decay = nc.compile("(define (f t y) (* -0.5 y)) (euler f y0 0.01 300)", dtype=F64)
    for y0 in (torch.tensor(1.0, dtype=F64), torch.linspace(0.0, 1.0, 40, dtype=F64)):
        got = nc.compiled_step(decay, compiler="c").rollout(y0)
        assert got.shape == (*y0.shape, 301) and torch.equal(got, eager(decay, y0))
    model = nc.compile(LV.format(steps=50), params=LV_TRUE, dtype=F64)
    s32 = torch.tensor([4.0, 1.0], dtype=torch.float32)  # promoted to float64, as the eager call does
    got = nc.compiled_step(model, compiler="c").rollout(s32)
    assert got.dtype == F64 and torch.equal(got, eager(model, s32))
    strided = B37[:5].t().contiguous().t()
    assert not strided.is_contiguous()
    assert torch.equal(nc.compiled_step(model, compiler="c").rollout(strided), eager(model, strided))


def test_static_inputs_run_eagerly() -> None:
    model = nc.compile("(define (f t s) [(ref s 1) (* -1.0 (ref s 0))]) (rk4 f s0 0.1 n)", dtype=F64)
    x = torch.tensor([1.0, 0.0], dtype=F64)
    with pytest.warns(nc.FitWarning, match="static inputs"):
        assert torch.equal(nc.compiled_step(model).rollout(x, 30), eager(model, x, 30))
