"""nc side by side with JAX (issue 10): the Lotka-Volterra training step and a 1,000-step rollout.

The training step: ``rk4`` 100 steps (dt 0.1), MSE against data, gradient w.r.t. the 4
constants, at batch 1 and 256, float64 and float32; nc eager (the rolled ``%scan`` loop),
hand-written torch (`bench.programs.HandLV`), nc's compiled step (`nc.compiled_step`: forward
sensitivities in one ``while_loop`` under ``torch.compile``) and ``jax.jit`` of ``jax.grad``
through ``lax.scan``, timed in the same interleaved rounds; then the damped pendulum (``rk4``
200 steps, 2 constants) the same way. Skipped without JAX (``pip install
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


PEND_SOURCE = ("(define (pendulum t s) (vec (ref s 1) (+ (* neg_g_over_L (sin (ref s 0))) (* neg_b (ref s 1))))) "
               "(rk4 pendulum s0 0.05 200)")
PEND_TRUE = {"neg_g_over_L": -9.81, "neg_b": -0.3}
PEND_INIT = {"neg_g_over_L": -9.0, "neg_b": -0.5}


def lv_rhs(p: Any, s: Any) -> Any:
    x, q = s[..., 0], s[..., 1]
    return jnp.stack([p[0] * x - p[1] * x * q, p[2] * x * q - p[3] * q], -1)


def pendulum_rhs(p: Any, s: Any) -> Any:
    return jnp.stack([s[..., 1], p[0] * jnp.sin(s[..., 0]) + p[1] * s[..., 1]], -1)


def jax_loss(steps: int, dt: float, rhs: Callable[[Any, Any], Any] = lv_rhs) -> Callable[..., Any]:

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


def variants(batch: int, dtype: torch.dtype, problem: str = "lv") -> tuple[dict[str, Callable[[], Any]], dict[str, float]]:
    """The training steps (checked to agree) and their first-call (compile) times."""
    gen = torch.Generator().manual_seed(0)
    lv = problem == "lv"
    s0 = torch.tensor([4.0, 1.0] if lv else [1.0, 0.0], dtype=torch.float64)
    if batch > 1:
        s0 = s0 + torch.rand(batch, 2, generator=gen, dtype=torch.float64)
    source, init = (P.LV_SOURCE, P.LV_INIT) if lv else (PEND_SOURCE, PEND_INIT)
    with torch.no_grad():
        data = (P.HandLV(P.LV_PARAMS).double()(s0) if lv
                else nc.compile(PEND_SOURCE, params=PEND_TRUE, dtype=torch.float64)(s0))
    s0, data = s0.to(dtype), data.to(dtype)
    first: dict[str, float] = {}
    start = time.perf_counter()
    model = nc.compile(source, params=init).to(dtype)
    model(s0)
    first["nc"] = time.perf_counter() - start
    hand = P.HandLV(P.LV_INIT).to(dtype) if lv else model
    start = time.perf_counter()
    compiled = nc.compiled_step(model)
    compiled.loss_and_grad(s0, target=data)
    first["compiled"] = time.perf_counter() - start

    def torch_step(m: torch.nn.Module) -> Callable[[], Any]:
        ps = list(m.parameters())

        def step() -> Any:
            loss = ((m(s0) - data) ** 2).mean()
            return torch.autograd.grad(loss, ps)
        return step

    jdt = jnp.float64 if dtype == torch.float64 else jnp.float32
    grad = jax.jit(jax.value_and_grad(jax_loss(100, 0.1) if lv else jax_loss(200, 0.05, pendulum_rhs)))
    p0 = jnp.asarray([init[k] for k in (("alpha", "beta", "delta", "gamma") if lv else ("neg_g_over_L", "neg_b"))],
                     dtype=jdt)
    js0, jdata = jnp.asarray(s0.numpy()), jnp.asarray(data.numpy())
    start = time.perf_counter()
    jax.block_until_ready(grad(p0, js0, jdata))
    first["jax"] = time.perf_counter() - start
    out = {"nc": torch_step(model), "hand": torch_step(hand),
           "compiled": lambda: compiled.loss_and_grad(s0, target=data),
           "jax": lambda: jax.block_until_ready(grad(p0, js0, jdata))}
    if not lv:
        del out["hand"]  # no hand-written pendulum; nc eager equals hand-written torch (the LV rows)
    g_nc = torch.stack(list(out["nc"]())).double()
    g_compiled = torch.stack(list(compiled.loss_and_grad(s0, target=data)[1])).double()
    g_jax = torch.tensor(jax.device_get(out["jax"]()[1]).tolist(), dtype=torch.float64)
    tol = 1e-9 if dtype == torch.float64 else 1e-3
    torch.testing.assert_close(g_nc, g_jax, rtol=tol, atol=tol)
    torch.testing.assert_close(g_compiled, g_nc, rtol=1e-10 if dtype == torch.float64 else 1e-3, atol=0.0)
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


def train_row(label: str, batch: int, dtype: torch.dtype, problem: str, rounds: int,
              timing: dict[str, Any]) -> list[str]:
    steps, first = variants(batch, dtype, problem)
    res = measure(steps, rounds=rounds, **timing)
    return [label, report.fmt_time(res.median("nc")), report.fmt_time(res.median("hand")) if "hand" in steps else "",
            report.fmt_time(res.median("compiled")), report.fmt_time(res.median("jax")),
            report.fmt_ratio(res.ratio("nc", "jax")), report.fmt_ratio(res.ratio("compiled", "jax")),
            f"{first['nc']:.2f} / {first['compiled']:.1f} / {first['jax']:.2f} s"]


def rows(rounds: int, timing: dict[str, Any]) -> list[list[str]]:
    out = []
    for dname, dtype in DTYPES.items():
        for batch in (1, 256):
            out.append(train_row(f"train LV B{batch} {dname}", batch, dtype, "lv", rounds, timing))
        res = measure(rollout_variants(dtype), rounds=rounds, **timing)
        out.append([f"rollout 1000 {dname}", report.fmt_time(res.median("nc")), "", "", report.fmt_time(res.median("jax")),
                    report.fmt_ratio(res.ratio("nc", "jax")), "", ""])
    out.append(train_row("train pendulum B1 float64", 1, torch.float64, "pendulum", rounds, timing))
    return out


COLUMNS = ["work", "nc eager", "hand torch", "nc compiled", "jax.jit", "eager / jax", "compiled / jax",
           "first call nc / compiled / jax"]


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
