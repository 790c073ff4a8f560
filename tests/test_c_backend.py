"""The compiled training step in plain C (`nc.c_backend`, ``compiled_step(compiler="c")``).

Loss and gradient equal autograd through the eager rollout (1e-10 relative in float64), fits
reach the eager fit's constants, what C does not handle falls back to inductor with the reason
(inductor itself replaced by the eager loop here: its compile takes 10-30 s), and compiled
shared objects are reused from the cache. Skipped where there is no C compiler.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import nc
from nc import c_backend, c_build, c_codegen
from tests.paper_programs import LV, LV_TRUE, PENDULUM, PENDULUM_TRUE
from tests.test_compiled_step import (
    BATCH,
    LV_START,
    PEND_START,
    SHIFTED,
    assert_compiled_fit_matches_eager,
    setup,
)

pytestmark = pytest.mark.skipif(c_build.c_compiler() is None, reason="needs a C compiler")

F64 = torch.float64

# Many operations at once: tanh, exp, sqrt, division, pow, a batched if (where), max, sin.
MIXED = """
(define (f t s)
  (let ((x (ref s 0)) (v (ref s 1)))
    [v
     (- (* -1.0 k (tanh x))
        (* c v (exp (* -0.1 (expt x 2))))
        (/ (sqrt (+ 1.0 (* v v))) 10.0)
        (if (> x 0.0) (* a x) (* -0.5 a x))
        (* 0.1 (max x 0.2) (sin v)))]))
(rk4 f s0 0.02 50)
"""
MIXED_TRUE = {"k": 2.0, "c": 0.3, "a": 0.5}
MIXED_START = {"k": 1.8, "c": 0.2, "a": 0.6}


@pytest.fixture(autouse=True)
def cache_in_tmp(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """One cache directory for the whole session, not the user's."""
    root = tmp_path_factory.getbasetemp() / "xdg-cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(root))
    return root / "nc" / "c"


def eager(model: nc.NcModule, s0: torch.Tensor, data: torch.Tensor) -> torch.Tensor:
    loss = ((model(s0) - data) ** 2).mean()
    grads = torch.autograd.grad(loss, [p for p in model.parameters() if p.requires_grad])
    return torch.stack([loss.detach(), *grads])


def c_step(model: nc.NcModule, s0: torch.Tensor, data: torch.Tensor,
           compiler: str = "c") -> tuple[torch.Tensor, nc.CompiledStep]:
    step = nc.compiled_step(model, compiler=compiler)
    loss, grads = step.loss_and_grad(s0, target=data)
    return torch.stack([loss, *grads]), step


CASES = {
    "lv-batch1": (LV.format(steps=100), LV_TRUE, LV_START, torch.tensor([4.0, 1.0], dtype=F64)),
    "lv-batch3": (LV.format(steps=100), LV_TRUE, LV_START, BATCH),
    "lv-batch37": (LV.format(steps=30), LV_TRUE, LV_START,  # SIMD lanes, the last group partly spare
                   torch.linspace(1.0, 3.0, 74, dtype=F64).reshape(37, 2)),
    "pendulum": (PENDULUM.format(steps=200), PENDULUM_TRUE, PEND_START, torch.tensor([1.0, 0.0], dtype=F64)),
    "initial-state-from-constant": (SHIFTED, {"k": 2.0, "x0": 1.0}, {"k": 1.5, "x0": 0.7}, BATCH),
    "mixed-ops": (MIXED, MIXED_TRUE, MIXED_START, BATCH),
    "mixed-ops-batch37": (MIXED, MIXED_TRUE, MIXED_START, torch.linspace(-1.0, 1.0, 74, dtype=F64).reshape(37, 2)),
    "pendulum-batch9": (PENDULUM.format(steps=200), PENDULUM_TRUE, PEND_START,
                        torch.linspace(-1.0, 1.0, 18, dtype=F64).reshape(9, 2)),
}
LANES = {"lv-batch3": True, "lv-batch37": True, "mixed-ops": True, "mixed-ops-batch37": True, "pendulum-batch9": True}
"""The cases whose batch runs in SIMD lanes (state and sensitivities above `UNROLL` scalars)."""
SLOW = {"mixed-ops", "mixed-ops-batch37"}  # 4-9 s: many operations, compiled twice


def params(cases: list[str]) -> list[object]:
    return [pytest.param(c, marks=pytest.mark.slow) if c in SLOW else c for c in cases]


def no_lanes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The batched step's own C (arrays and loops over the batch), as without SIMD lanes."""
    monkeypatch.setattr(nc.CompiledStep, "build_c_lanes", lambda *args: None)


@pytest.mark.parametrize("lanes", [True, False], ids=["lanes", "arrays"])
@pytest.mark.parametrize("case", params(list(CASES)))
def test_float64_equals_autograd(case: str, lanes: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if not lanes:
        if case not in LANES:
            pytest.skip("no lanes at this batch anyway")
        no_lanes(monkeypatch)
    src, true, start, s0 = CASES[case]
    model, s0, data = setup(src, true, start, s0)
    got, step = c_step(model, s0, data)
    assert step.backends == ["c"] and step.c_lanes == [lanes and LANES.get(case, False)]
    torch.testing.assert_close(got, eager(model, s0, data), rtol=1e-10, atol=0.0)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.01)  # new constants, the same compiled code
    got, _ = c_step(model, s0, data)
    torch.testing.assert_close(got, eager(model, s0, data), rtol=1e-10, atol=0.0)


@pytest.mark.parametrize("case", params(["lv-batch1", "lv-batch37", "mixed-ops", "mixed-ops-batch37", "arrays"]))
def test_float32_close_to_autograd(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if case == "arrays":
        no_lanes(monkeypatch)
        case = "lv-batch37"
    src, true, start, s0 = CASES[case]
    model, s0, data = setup(src, true, start, s0)
    model, s0, data = model.float(), s0.float(), data.float()
    got, step = c_step(model, s0, data)
    assert got.dtype == torch.float32 and step.backends == ["c"]
    torch.testing.assert_close(got, eager(model, s0, data), rtol=1e-4, atol=1e-6)


@pytest.mark.slow  # 2-4 s: a batch of 100,000 through the C loop and eager autograd
@pytest.mark.parametrize("lanes", [True, False], ids=["lanes", "arrays"])
def test_a_batch_larger_than_the_stack(lanes: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    # 100,000 trajectories: state, sensitivities and sums (8 MB) live in the workspace, not the stack
    if not lanes:
        no_lanes(monkeypatch)
    s0 = 1.0 + torch.rand(100_000, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    model, s0, data = setup(LV.format(steps=20), LV_TRUE, LV_START, s0)
    got, step = c_step(model, s0, data)
    assert step.c_lanes == [lanes]
    torch.testing.assert_close(got, eager(model, s0, data), rtol=1e-10, atol=0.0)


def test_default_is_c_and_fit_reaches_the_eager_constants() -> None:
    assert_compiled_fit_matches_eager(steps=40)
    model, s0, data = setup(LV.format(steps=40), LV_TRUE, LV_START, torch.tensor([4.0, 1.0], dtype=F64))
    assert c_step(model, s0, data, compiler="auto")[1].backends == ["c"]


def no_inductor(monkeypatch: pytest.MonkeyPatch) -> None:
    """The inductor path, without inductor's compile (the fallback is what is tested)."""
    monkeypatch.setattr(torch, "compile", lambda fn, **kwargs: fn)


def test_unsupported_operation_falls_back_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    no_inductor(monkeypatch)
    monkeypatch.delitem(c_codegen.UNARY, "sin")
    model, s0, data = setup(PENDULUM.format(steps=30), PENDULUM_TRUE, PEND_START, torch.tensor([1.0, 0.0], dtype=F64))
    with pytest.warns(nc.FitWarning, match=r"unsupported: the operation aten\.sin"):
        got, step = c_step(model, s0, data, compiler="auto")
    assert step.backends == ["inductor"]
    torch.testing.assert_close(got, eager(model, s0, data), rtol=1e-10, atol=0.0)
    with pytest.raises(nc.CallError, match=r"compiler='c': unsupported: the operation aten\.sin"):
        c_step(model, s0, data, compiler="c")


def test_no_compiler_or_a_failing_one_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    no_inductor(monkeypatch)
    model, s0, data = setup(LV.format(steps=20), LV_TRUE, LV_START, torch.tensor([4.0, 1.0], dtype=F64))
    with monkeypatch.context() as m:
        m.setattr(c_build, "c_compiler", lambda: None)
        with pytest.warns(nc.FitWarning, match="no C compiler"):
            assert c_step(model, s0, data, compiler="auto")[1].backends == ["inductor"]
        with pytest.raises(nc.CallError, match="compiler='c': no C compiler"):
            c_step(model, s0, data)
    with monkeypatch.context() as m:
        m.setattr(c_build, "FLAGS", (*c_build.FLAGS, "-fno-such-flag-for-nc"))
        with pytest.warns(nc.FitWarning, match="the C compiler failed"):
            got, step = c_step(model, s0, data, compiler="auto")
        assert step.backends == ["inductor"]
        torch.testing.assert_close(got, eager(model, s0, data), rtol=1e-10, atol=0.0)
        with pytest.raises(nc.CallError, match="no-such-flag"):
            c_step(model, s0, data)


def test_the_cache_reuses_the_shared_object(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    runs = []
    real_run = c_build.subprocess.run

    def counting_run(*args: object, **kwargs: object) -> object:
        runs.append(args)
        return real_run(*args, **kwargs)  # type: ignore[call-overload]
    monkeypatch.setattr(c_build.subprocess, "run", counting_run)
    model, s0, data = setup(LV.format(steps=25), LV_TRUE, LV_START, torch.tensor([4.0, 1.0], dtype=F64))
    first, _ = c_step(model, s0, data)
    objects = list((tmp_path / "nc" / "c").glob("*.so"))
    assert len(runs) == 1 and len(objects) == 1
    mtime = objects[0].stat().st_mtime_ns
    second, _ = c_step(model, s0, data)  # a new CompiledStep: generated again, compiled no more
    assert len(runs) == 1 and list((tmp_path / "nc" / "c").glob("*")) == objects
    assert objects[0].stat().st_mtime_ns == mtime
    torch.testing.assert_close(first, second, rtol=0.0, atol=0.0)


def test_code_size_does_not_grow_with_the_step_count(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    real = c_backend.compile_source

    def spy(source: str) -> c_backend.Library:
        seen.append(source)
        return real(source)
    monkeypatch.setattr(c_backend, "compile_source", spy)
    for steps in (100, 10_000):
        model, s0, data = setup(LV.format(steps=steps), LV_TRUE, LV_START, torch.tensor([4.0, 1.0], dtype=F64))
        c_step(model, s0, data)
    assert all("#include <math.h>" in s and "torch" not in s for s in seen)
    assert len(seen) == 2 and len(seen[0].splitlines()) == len(seen[1].splitlines())


def test_cache_dir_falls_back_to_a_temporary_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")  # a file where the cache directory would be: it cannot be made
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    monkeypatch.setattr(c_build.tempfile, "gettempdir", lambda: str(tmp_path))
    assert c_build.cache_dir().parent == tmp_path
