"""nc side by side with JAX (issue 10): the Lotka-Volterra training step and a 1,000-step rollout.

The training step: ``rk4`` 100 steps (dt 0.1), MSE against data, gradient w.r.t. the 4
constants, at batch 1 and 256, float64 and float32; nc eager (the rolled ``%scan`` loop),
hand-written torch (`bench.programs.HandLV`) and ``jax.jit`` of ``jax.grad`` through
``lax.scan``, timed in the same interleaved rounds. Skipped without JAX (``pip install
"nc[peers]"`` brings the CPU build). ``python -m bench.test_jax`` prints the table.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import torch

import nc
from bench import programs as P
from bench import report
from bench.interleave import measure

jax = pytest.importorskip("jax")
jax.config.update("jax_enable_x64", True)
jnp = jax.numpy

DTYPES = {"float64": torch.float64, "float32": torch.float32}


def jax_loss(steps: int, dt: float) -> Callable[..., Any]:
    def rhs(p: Any, s: Any) -> Any:
        x, q = s[..., 0], s[..., 1]
        return jnp.stack([p[0] * x - p[1] * x * q, p[2] * x * q - p[3] * q], -1)

    def loss(p: Any, s0: Any, data: Any) -> Any:
        def step(y: Any, _: Any) -> tuple[Any, Any]:
            k1 = rhs(p, y)
            k2 = rhs(p, y + dt / 2 * k1)
            k3 = rhs(p, y + dt / 2 * k2)
            k4 = rhs(p, y + dt * k3)
            y = y + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
            return y, y
        _, ys = jax.lax.scan(step, s0, None, length=steps)
        ys = jnp.concatenate([s0[None], ys], 0)
        return jnp.mean((jnp.moveaxis(ys, 0, -2) - data) ** 2)
    return loss


def variants(batch: int, dtype: torch.dtype) -> tuple[dict[str, Callable[[], Any]], dict[str, float]]:
    """The three training steps (checked to agree) and their first-call (compile) times."""
    gen = torch.Generator().manual_seed(0)
    s0 = torch.tensor([4.0, 1.0], dtype=torch.float64)
    if batch > 1:
        s0 = s0 + torch.rand(batch, 2, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        data = P.HandLV(P.LV_PARAMS).double()(s0)
    s0, data = s0.to(dtype), data.to(dtype)
    first: dict[str, float] = {}
    start = time.perf_counter()
    model = nc.compile(P.LV_SOURCE, params=P.LV_INIT).to(dtype)
    model(s0)
    first["nc"] = time.perf_counter() - start
    hand = P.HandLV(P.LV_INIT).to(dtype)

    def torch_step(m: torch.nn.Module) -> Callable[[], Any]:
        ps = list(m.parameters())

        def step() -> Any:
            loss = ((m(s0) - data) ** 2).mean()
            return torch.autograd.grad(loss, ps)
        return step

    jdt = jnp.float64 if dtype == torch.float64 else jnp.float32
    grad = jax.jit(jax.value_and_grad(jax_loss(100, 0.1)))
    p0 = jnp.asarray([P.LV_INIT[k] for k in ("alpha", "beta", "delta", "gamma")], dtype=jdt)
    js0, jdata = jnp.asarray(s0.numpy()), jnp.asarray(data.numpy())
    start = time.perf_counter()
    jax.block_until_ready(grad(p0, js0, jdata))
    first["jax"] = time.perf_counter() - start
    out = {"nc": torch_step(model), "hand": torch_step(hand),
           "jax": lambda: jax.block_until_ready(grad(p0, js0, jdata))}
    g_nc = torch.stack(list(out["nc"]())).double()
    g_jax = torch.tensor(jax.device_get(out["jax"]()[1]).tolist(), dtype=torch.float64)
    tol = 1e-9 if dtype == torch.float64 else 1e-3
    torch.testing.assert_close(g_nc, g_jax, rtol=tol, atol=tol)
    return out, first


def rollout_variants(dtype: torch.dtype) -> dict[str, Callable[[], Any]]:
    """A 1,000-step forward rollout (no gradient), nc eager against jax.jit."""
    src = P.LV_SOURCE.replace("0.1 100)", "0.01 1000)")
    model = nc.compile(src, params=P.LV_PARAMS).to(dtype)
    s0 = torch.tensor([4.0, 1.0], dtype=dtype)
    jdt = jnp.float64 if dtype == torch.float64 else jnp.float32
    p = jnp.asarray([P.LV_PARAMS[k] for k in ("alpha", "beta", "delta", "gamma")], dtype=jdt)
    loss = jax.jit(jax_loss(1000, 0.01))
    js0, jdata = jnp.asarray(s0.numpy()), jnp.zeros((1001, 2), dtype=jdt)
    jax.block_until_ready(loss(p, js0, jdata))

    def nc_run() -> Any:
        with torch.no_grad():
            return (model(s0) ** 2).mean()
    return {"nc": nc_run, "jax": lambda: jax.block_until_ready(loss(p, js0, jdata))}


def rows(rounds: int, timing: dict[str, Any]) -> list[list[str]]:
    out = []
    for dname, dtype in DTYPES.items():
        for batch in (1, 256):
            steps, first = variants(batch, dtype)
            res = measure(steps, rounds=rounds, **timing)
            out.append([f"train B{batch} {dname}", report.fmt_time(res.median("nc")), report.fmt_time(res.median("hand")),
                        report.fmt_time(res.median("jax")), report.fmt_ratio(res.ratio("nc", "jax")),
                        f"nc {first['nc'] * 1e3:.0f} ms / jax {first['jax'] * 1e3:.0f} ms"])
        res = measure(rollout_variants(dtype), rounds=rounds, **timing)
        out.append([f"rollout 1000 {dname}", report.fmt_time(res.median("nc")), "", report.fmt_time(res.median("jax")),
                    report.fmt_ratio(res.ratio("nc", "jax")), ""])
    return out


COLUMNS = ["work", "nc eager", "hand torch", "jax.jit", "nc / jax", "first call"]


@pytest.mark.slow
@pytest.mark.benchmark(group="4 train step: nc against jax.jit (interleaved)")
def test_train_step_against_jax(benchmark, mode) -> None:
    tab = report.table(4, "nc against jax.jit (lax.scan), Lotka-Volterra", COLUMNS,
                       method=f"{mode.describe(3)}; per-step time median; ratio median [IQR]")

    def run() -> None:
        for i, row in enumerate(rows(mode.rounds, mode.timing(0.0, 1, repeat=3))):
            tab.add(i, row)

    benchmark.pedantic(run, rounds=1, iterations=1)
    tab.note("gradients of nc and JAX agree (1e-9 float64, 1e-3 float32) before timing")


if __name__ == "__main__":  # pragma: no cover - prints the table for bench/README.md
    torch.set_num_threads(1)
    for line in report.grid(COLUMNS, rows(7, {"min_time": 0.0, "max_inner": 1, "warmup": 1, "repeat": 3})):
        print(line)
