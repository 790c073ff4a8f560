"""The compiled training step (`nc.compiled_step`, ``fit(compile=...)``): forward sensitivities
through a rolled integration give autograd's gradient, fits reach the eager fit's constants,
and what the step does not handle falls back with its reason.

The sensitivity loop is checked eagerly (``compiler=None``, fast); the same loop under
``torch.compile`` (inductor, about 30 s a compile on a CPU) is in the slow tests, and on CUDA
when a device is present.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import nc
import nc.fit_compile
from nc.compiled_step import NotCompilable
from tests.paper_programs import LV, LV_TRUE, PENDULUM, PENDULUM_TRUE

F64 = torch.float64

# The initial state is made from a trainable constant (its sensitivity is not zero).
SHIFTED = """
(define (f t s) [(ref s 1) (* -1.0 k (ref s 0))])
(euler f [(+ x0 (ref s0 0)) (ref s0 1)] 0.05 40)
"""


def setup(src: str, true: dict[str, float], start: dict[str, float], s0: torch.Tensor,
          device: str = "cpu") -> tuple[nc.NcModule, torch.Tensor, torch.Tensor]:
    """A model at ``start`` and data made at ``true`` (float64)."""
    s0 = s0.to(device)
    with torch.no_grad():
        data = nc.compile(src, params=true, dtype=F64).to(device)(s0)
    return nc.compile(src, params=start, dtype=F64).to(device), s0, data


def assert_compiled_fit_matches_eager(steps: int) -> None:
    """L-BFGS on Lotka-Volterra with and without ``compile=True``: the compiled fit reaches the
    true constants and the eager fit's."""
    results = []
    for compile in (False, True):
        model, s0, data = setup(LV.format(steps=steps), LV_TRUE, LV_START, torch.tensor([4.0, 1.0], dtype=F64))
        results.append(nc.fit(model, s0, data, optimizer="lbfgs", epochs=10, compile=compile, uncertainty=False))
    eager, compiled = results
    for name in LV_TRUE:
        assert abs(compiled.params[name].item() - LV_TRUE[name]) < 1e-6
        assert abs(compiled.params[name].item() - eager.params[name].item()) < 1e-8


def broken_compiled_step(model: nn.Module, *, compiler: str | None = "inductor") -> object:
    """A stand-in for `nc.compiled_step` whose compile fails as a missing C++ compiler would."""
    def step(*args: object, **kwargs: object) -> None:
        raise RuntimeError("no C++ compiler found")
    return step


def eager_loss_and_grad(model: nc.NcModule, s0: torch.Tensor, data: torch.Tensor) -> tuple[torch.Tensor, ...]:
    loss = ((model(s0) - data) ** 2).mean()
    return (loss.detach(), *torch.autograd.grad(loss, [p for p in model.parameters() if p.requires_grad]))


def assert_equal_gradients(step: nc.CompiledStep, model: nc.NcModule, s0: torch.Tensor,
                           data: torch.Tensor) -> None:
    loss, grads = step.loss_and_grad(s0, target=data)
    want = eager_loss_and_grad(model, s0, data)
    got = (loss, *grads)
    for g, w in zip(got, want):
        assert torch.allclose(g, w, rtol=1e-10, atol=0.0), (g, w)


LV_START = {"alpha": 0.8, "beta": 0.4, "delta": 0.3, "gamma": 0.6}
PEND_START = {"neg_g_over_L": -9.0, "neg_b": -0.5}
BATCH = torch.tensor([[4.0, 1.0], [3.0, 2.0], [5.0, 0.5]], dtype=F64)


@pytest.mark.parametrize("s0", [torch.tensor([4.0, 1.0], dtype=F64), BATCH], ids=["batch1", "batch3"])
def test_lv_sensitivities_equal_autograd(s0: torch.Tensor) -> None:
    model, s0, data = setup(LV.format(steps=20), LV_TRUE, LV_START, s0)  # 100 steps: the slow test below
    assert_equal_gradients(nc.compiled_step(model, compiler=None), model, s0, data)


def test_pendulum_sensitivities_equal_autograd() -> None:
    model, s0, data = setup(PENDULUM.format(steps=200), PENDULUM_TRUE, PEND_START,
                            torch.tensor([1.0, 0.0], dtype=F64))
    assert_equal_gradients(nc.compiled_step(model, compiler=None), model, s0, data)


def test_initial_state_made_from_a_constant() -> None:
    model, s0, data = setup(SHIFTED, {"k": 2.0, "x0": 1.0}, {"k": 1.5, "x0": 0.7}, BATCH)
    assert "%scan" in model._compiled.program_for([*model.params.values(), s0]).listing()
    assert_equal_gradients(nc.compiled_step(model, compiler=None), model, s0, data)


def test_call_sets_grad_like_backward() -> None:
    model, s0, data = setup(LV.format(steps=20), LV_TRUE, LV_START, torch.tensor([4.0, 1.0], dtype=F64))
    step = nc.compiled_step(model, compiler=None)
    loss = step(s0, target=data)
    got = [p.grad.clone() for p in model.parameters()]  # type: ignore[union-attr]
    want = eager_loss_and_grad(model, s0, data)
    assert torch.allclose(loss, want[0], rtol=1e-10, atol=0.0)
    for g, w in zip(got, want[1:]):
        assert torch.allclose(g, w, rtol=1e-10, atol=0.0)
    assert len(step.compile_seconds) == 1 and step.compile_seconds[0] > 0


@pytest.mark.parametrize(("src", "reason"), [
    (LV.format(steps=10), "not a rolled integration"),
    ("(* alpha s0)", "not a rolled integration"),
])
def test_not_compilable_says_why(src: str, reason: str) -> None:
    model = nc.compile(src, params={k: 0.5 for k in LV_TRUE if k in src}, dtype=F64)
    s0 = torch.tensor([4.0, 1.0], dtype=F64)
    with torch.no_grad():
        target = model(s0)
    with pytest.raises(NotCompilable, match=reason) as info:
        nc.compiled_step(model, compiler=None)(s0, target=target)
    assert isinstance(info.value, nc.CallError)


def test_not_compilable_other_models_and_targets() -> None:
    with pytest.raises(NotCompilable, match="not a module compiled by nc"):
        nc.compiled_step(nn.Linear(2, 2))
    with pytest.raises(nc.CallError, match="compiler must be"):
        nc.compiled_step(nc.compile(LV.format(steps=20), params=LV_TRUE), compiler="xla")
    model, s0, data = setup(LV.format(steps=20), LV_TRUE, LV_START, torch.tensor([4.0, 1.0], dtype=F64))
    with pytest.raises(NotCompilable, match="target's shape"):
        nc.compiled_step(model, compiler=None)(s0, target=data[:-1])


def eager_compiled_step(model: nn.Module, *, compiler: str | None = "inductor") -> nc.CompiledStep:
    return nc.compiled_step(model, compiler=None)


@pytest.mark.slow
def test_fit_with_the_compiled_step_reaches_the_eager_constants(monkeypatch: pytest.MonkeyPatch) -> None:
    # The fit's use of the step, without the inductor compile (that is the slow test below).
    monkeypatch.setattr(nc.fit_compile, "compiled_step", eager_compiled_step)
    assert_compiled_fit_matches_eager(steps=20)


def test_fit_compile_falls_back_with_the_reason() -> None:
    model = nc.compile(LV.format(steps=10), params=LV_START, dtype=F64)
    s0 = torch.tensor([4.0, 1.0], dtype=F64)
    with torch.no_grad():
        data = nc.compile(LV.format(steps=10), params=LV_TRUE, dtype=F64)(s0)
    with pytest.warns(nc.FitWarning, match="no compiled training step .*not a rolled integration"):
        r = nc.fit(model, s0, data, optimizer="lbfgs", epochs=5, compile=True, uncertainty=False)
    assert abs(r.params["alpha"].item() - 1.0) < 1e-4
    with warnings.catch_warnings():
        warnings.simplefilter("error", nc.FitWarning)  # "auto" falls back quietly
        nc.fit(model, s0, data, optimizer="lbfgs", epochs=2, compile="auto", uncertainty=False)
    with pytest.raises(nc.CallError, match="unknown compile"):
        nc.fit(model, s0, data, compile="yes")


def test_fit_compile_true_reports_a_compiler_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nc.fit_compile, "compiled_step", broken_compiled_step)
    model, s0, data = setup(LV.format(steps=20), LV_TRUE, LV_START, torch.tensor([4.0, 1.0], dtype=F64))
    with pytest.raises(nc.CallError, match="PyTorch's compiler failed: RuntimeError: no C\\+\\+ compiler"):
        nc.fit(model, s0, data, epochs=2, compile=True)
    with pytest.warns(nc.FitWarning, match="compiler failed"):
        nc.fit(model, s0, data, optimizer="lbfgs", epochs=2, compile="auto", uncertainty=False)


@pytest.mark.slow
@pytest.mark.parametrize("case", ["lv", "pendulum"])
def test_inductor_step_equals_autograd(case: str) -> None:
    if case == "lv":
        model, s0, data = setup(LV.format(steps=100), LV_TRUE, LV_START, BATCH)
    else:
        model, s0, data = setup(PENDULUM.format(steps=200), PENDULUM_TRUE, PEND_START,
                                torch.tensor([1.0, 0.0], dtype=F64))
    step = nc.compiled_step(model, compiler="inductor")  # the default on the CPU is C: tests/test_c_backend.py
    assert_equal_gradients(step, model, s0, data)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.01)  # new values, same compiled code
    assert_equal_gradients(step, model, s0, data)
    assert len(step.compile_seconds) == 1


@pytest.mark.slow
def test_fit_compile_true_with_inductor() -> None:
    model, s0, data = setup(LV.format(steps=100), LV_TRUE, LV_START, torch.tensor([4.0, 1.0], dtype=F64))
    r = nc.fit(model, s0, data, optimizer="lbfgs", epochs=10, compile=True, uncertainty=False)
    for name, true in LV_TRUE.items():
        assert abs(r.params[name].item() - true) < 1e-6


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_step_equals_autograd() -> None:
    model, s0, data = setup(LV.format(steps=100), LV_TRUE, LV_START, BATCH, device="cuda")
    step = nc.compiled_step(model)
    loss, grads = step.loss_and_grad(s0, target=data)
    assert loss.device.type == "cuda" and all(g.device.type == "cuda" for g in grads)
    assert_equal_gradients(step, model, s0, data)


def test_each_build_gets_its_own_code_object() -> None:
    # dynamo's cache and recompile limit are per code object: every build must have its own
    from nc.inductor_step import fresh_code

    def outer(c: float) -> object:
        def f(x: float) -> float:
            return x + c
        return f
    f1, f2 = outer(1.0), outer(2.0)
    g1, g2 = fresh_code(f1), fresh_code(f2)  # type: ignore[arg-type]
    assert g1.__code__ is not f1.__code__ and g1.__code__ is not g2.__code__
    assert (g1(1.0), g2(1.0)) == (2.0, 3.0)


def test_fit_result_says_whether_the_compiled_step_ran(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nc.fit_compile, "compiled_step", eager_compiled_step)
    model, s0, data = setup(LV.format(steps=20), LV_TRUE, LV_START, torch.tensor([4.0, 1.0], dtype=F64))
    plain = nc.fit(model, s0, data, optimizer="lbfgs", epochs=2, uncertainty=False)
    assert not plain.compiled and plain.compile_note == "not asked for (compile=False)"
    assert "compiled step" not in plain.summary()
    used = nc.fit(model, s0, data, optimizer="lbfgs", epochs=2, compile=True, uncertainty=False)
    assert used.compiled and used.compile_note.startswith("compiled step (eager), first call ")
    assert "compiled step: yes, compiled step (eager)" in used.summary() and "compiled=True" in repr(used)
    with pytest.warns(nc.FitWarning, match="mini-batches"):
        batched = nc.fit(model, s0.expand(4, 2), data.expand(4, 21, 2), epochs=2, batch_size=2, compile=True)
    assert not batched.compiled and batched.compile_note == "mini-batches (the compiled step is full batch); fitted eagerly"
    assert "compiled step: no, mini-batches" in batched.summary()
    unrolled = nc.compile(LV.format(steps=10), params=LV_START, dtype=F64)
    with torch.no_grad():
        data10 = nc.compile(LV.format(steps=10), params=LV_TRUE, dtype=F64)(s0)
    quiet = nc.fit(unrolled, s0, data10, optimizer="lbfgs", epochs=2, compile="auto", uncertainty=False)
    assert not quiet.compiled and "not a rolled integration" in quiet.compile_note


def test_fit_result_records_a_compiler_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nc.fit_compile, "compiled_step", broken_compiled_step)
    model, s0, data = setup(LV.format(steps=20), LV_TRUE, LV_START, torch.tensor([4.0, 1.0], dtype=F64))
    with pytest.warns(nc.FitWarning, match="compiler failed"):
        r = nc.fit(model, s0, data, optimizer="lbfgs", epochs=2, compile="auto", uncertainty=False)
    assert not r.compiled and r.compile_note == "PyTorch's compiler failed (RuntimeError); fitted eagerly"


@pytest.mark.slow
def test_inductor_settings_stay_local_and_the_cache_tells_models_apart(tmp_path: object,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # Our compile marks while_loop cacheable for inductor's on-disk caches: two models that
    # differ only inside the loop's body (the step dt; same shapes) must not share a cache entry.
    import torch._inductor.config as inductor_config
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))
    before = (inductor_config.compile_threads, dict(inductor_config.unsafe_marked_cacheable_functions))
    for dt in ("0.1", "0.05"):
        src = LV.format(steps=30).replace("s0 0.1 30", f"s0 {dt} 30")
        assert f"s0 {dt} 30" in src
        model, s0, data = setup(src, LV_TRUE, LV_START, torch.tensor([4.0, 1.0], dtype=F64))
        assert_equal_gradients(nc.compiled_step(model), model, s0, data)
    assert (inductor_config.compile_threads, dict(inductor_config.unsafe_marked_cacheable_functions)) == before
