"""Group 4: one training step (forward + backward) of a Lotka-Volterra RK4 rollout of 100 steps.

nc: ``nc.compile(LV_SOURCE, params={alpha, beta, delta, gamma})`` (the right-hand side as an nc
function, integrated by ``(rk4 lv s0 0.1 100)``); hand-written: the same RK4 in PyTorch
(`bench.programs.HandLV`). A step: ``loss = ((model(s0) - data) ** 2).mean()``, ``backward()``
(gradients set to None first; no optimizer step). float64; one trajectory (s0 of shape (2,)) and
a batch of 256 initial states. The two must agree: the forward bit for bit, gradients to 1e-12.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import pytest
import torch

import nc
from bench import programs as P
from bench import report
from bench.interleave import measure

BATCHES = [1, 256]


def _batch_id(b: int) -> str:
    return f"B{b}"


def step_fn(model: torch.nn.Module, s0: torch.Tensor, data: torch.Tensor) -> Callable[[], torch.Tensor]:
    params = list(model.parameters())

    def step() -> torch.Tensor:
        for p in params:
            p.grad = None
        loss = ((model(s0) - data) ** 2).mean()
        loss.backward()
        return loss

    return step


@cache
def models() -> tuple[torch.nn.Module, torch.nn.Module]:
    model = nc.compile(P.LV_SOURCE, params=P.LV_INIT).double()
    hand = P.HandLV(P.LV_INIT).double()
    return model, hand


@cache
def steps(batch: int) -> dict[str, Callable[[], torch.Tensor]]:
    model, hand = models()
    gen = torch.Generator().manual_seed(0)
    s0 = torch.tensor([4.0, 1.0], dtype=torch.float64)
    if batch > 1:
        s0 = s0 + torch.rand(batch, 2, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        data = P.HandLV(P.LV_PARAMS).double()(s0)
        data = data + 0.02 * data.abs().mean() * torch.randn(data.shape, generator=gen, dtype=torch.float64)
    out = {"nc": step_fn(model, s0, data), "hand": step_fn(hand, s0, data)}
    # The two agree: same rollout, same loss and gradients.
    with torch.no_grad():
        assert torch.equal(model(s0), hand(s0)), "nc and hand-written rollouts differ"
    loss_nc, loss_hand = out["nc"](), out["hand"]()
    torch.testing.assert_close(loss_nc, loss_hand, rtol=1e-13, atol=0)
    for name in P.LV_PARAMS:
        torch.testing.assert_close(model.params[name].grad, getattr(hand, name).grad, rtol=1e-12, atol=1e-14)
    return out


@pytest.mark.benchmark(max_time=0.5)
@pytest.mark.parametrize("batch", BATCHES, ids=_batch_id)
@pytest.mark.parametrize("variant", ["nc", "hand"])
def test_train_step(benchmark, variant: str, batch: int) -> None:
    benchmark.group = f"4 train step: Lotka-Volterra RK4 x100, batch {batch}, float64"
    benchmark(steps(batch)[variant])


@pytest.mark.benchmark(group="4 train step: interleaved ratio runs (wall time of the whole measurement)")
def test_train_step_ratios(benchmark, mode) -> None:
    tab = report.table(4, "forward + backward, float64",
                       ["batch", "nc", "hand", "nc / hand"],
                       method=f"{mode.describe(3)}; per-step time median; ratio median [IQR]")

    def run() -> None:
        for b in BATCHES:
            res = measure(steps(b), rounds=mode.rounds, **mode.timing(0.0, 1, repeat=3))
            r = res.ratio("nc", "hand")
            tab.add(b, [b, report.fmt_time(res.median("nc")), report.fmt_time(res.median("hand")), report.fmt_ratio(r)],
                    {"batch": b, "seconds": {k: res.stat(k).as_dict() for k in res.times}, "nc/hand": r.as_dict()})

    benchmark.pedantic(run, rounds=1, iterations=1)
    tab.note("the rollouts agree bit for bit and the gradients to 1e-12 (checked before timing)")
