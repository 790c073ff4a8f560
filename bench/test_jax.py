"""nc side by side with JAX (issue 10): training steps, K independent fits, a 1,000-step rollout.

Every row times its variants in the same interleaved rounds, one thread each:

- the training step (MSE against data, gradient w.r.t. the constants) of the Lotka-Volterra
  ``rk4`` (100 steps, dt 0.1, 4 constants) at batch 1 and 256, float64 and float32; of the
  damped pendulum (``rk4`` 200 steps, 2 constants); of the same LV over 1,000 steps (dt 0.01);
  and of the 3-D gravity force law (experiment 5, 100 samples, G): nc eager (the rolled
  ``%scan`` loop, autograd), hand-written torch where there is one, nc's compiled step
  (`nc.compiled_step`, forward sensitivities in one ``while_loop``; every compiler it offers,
  its default in the "nc compiled" column, the others in the last column; the gravity law is a
  formula, not a rollout, so the compiled step does not apply and the row says why) and
  ``jax.jit`` of ``jax.value_and_grad`` through ``lax.scan``;
- K = 100 independent LV fits, each its own trajectory, with `nc.fit_many` (Adam, vmap over the
  parameter sets) against ``jax.jit`` of ``jax.vmap`` of the per-fit step with the same Adam
  update; time per epoch;
- a 1,000-step LV rollout, forward only: nc eager, nc's compiled rollout
  (``nc.compiled_step(model).rollout``, one generated C loop; not in quick mode) and ``jax.jit``.

Gradients are checked to agree (nc against JAX, compiled against eager) before timing. Quick
mode (``pytest bench/ --benchmark-disable``) runs one dtype, batch 1 and small K without the
compiled step, so it takes seconds. Skipped without JAX (``pip
install "nc[peers]"`` brings the CPU build). ``python -m bench.test_jax`` prints the table.
"""

from __future__ import annotations

import importlib
import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass, field
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
F64 = torch.float64
STEP = importlib.import_module("nc.compiled_step")  # the module (nc.compiled_step is the function)


def step_compilers(quick: bool) -> list[str | None]:
    """The compiled step's compilers, its default first; none in quick mode (a compile takes
    seconds, and even ``compiler=None`` traces the step's sensitivities first; tests/ check them)."""
    default = inspect.signature(STEP.compiled_step).parameters["compiler"].default
    return [] if quick else [default, *(c for c in STEP.COMPILERS if c != default)]


PEND_SOURCE = ("(define (pendulum t s) (vec (ref s 1) (+ (* neg_g_over_L (sin (ref s 0))) (* neg_b (ref s 1))))) "
               "(rk4 pendulum s0 0.05 200)")
PEND_TRUE = {"neg_g_over_L": -9.81, "neg_b": -0.3}
PEND_INIT = {"neg_g_over_L": -9.0, "neg_b": -0.5}
LV_NAMES = ("alpha", "beta", "delta", "gamma")
LV1000_SOURCE = P.LV_SOURCE.replace("0.1 100)", "0.01 1000)")
GRAVITY = "(let ((r_mag (norm r))) (scale (/ (* (- 0 G) (* m1 m2)) (* r_mag (* r_mag r_mag))) r))"  # experiment 5


def lv_rhs(p: Any, s: Any) -> Any:
    x, q = s[..., 0], s[..., 1]
    return jnp.stack([p[0] * x - p[1] * x * q, p[2] * x * q - p[3] * q], -1)


def pendulum_rhs(p: Any, s: Any) -> Any:
    return jnp.stack([s[..., 1], p[0] * jnp.sin(s[..., 0]) + p[1] * s[..., 1]], -1)


def jax_loss(steps: int, dt: float, rhs: Callable[[Any, Any], Any] = lv_rhs) -> Callable[..., Any]:
    """``(p, s0, data) -> mse`` of an ``rk4`` rollout through ``lax.scan``."""

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


def jax_gravity_loss(p: Any, r: Any, m1: Any, m2: Any, data: Any) -> Any:
    mag = jnp.linalg.norm(r, axis=-1)
    return jnp.mean(((-p[0] * m1 * m2 / mag ** 3)[:, None] * r - data) ** 2)


class HandGravity(torch.nn.Module):
    """The gravity law written by hand."""

    def __init__(self, g: float) -> None:
        super().__init__()
        self.G = torch.nn.Parameter(torch.tensor(g))

    def forward(self, r: torch.Tensor, m1: torch.Tensor, m2: torch.Tensor) -> torch.Tensor:
        mag = r.norm(dim=-1)
        return (-self.G * m1 * m2 / mag ** 3)[:, None] * r


@dataclass
class Work:
    """One training step to compare: the nc source, its inputs (float64), the data, JAX's loss."""

    source: str
    init: dict[str, float]
    names: tuple[str, ...]
    args: dict[str, torch.Tensor]
    data: torch.Tensor
    jloss: Callable[..., Any]
    hand: Callable[[], torch.nn.Module] | None = None
    notes: dict[str, str] = field(default_factory=dict)


def lv_work(batch: int, steps: int = 100) -> Work:
    gen = torch.Generator().manual_seed(0)
    s0 = torch.tensor([4.0, 1.0], dtype=F64)
    if batch > 1:
        s0 = s0 + torch.rand(batch, 2, generator=gen, dtype=F64)
    dt = 10.0 / steps
    source = P.LV_SOURCE if steps == 100 else LV1000_SOURCE
    with torch.no_grad():
        data = P.HandLV(P.LV_PARAMS, dt, steps).double()(s0)
    return Work(source, P.LV_INIT, LV_NAMES, {"s0": s0}, data, jax_loss(steps, dt),
                lambda: P.HandLV(P.LV_INIT, dt, steps))


def pendulum_work() -> Work:
    s0 = torch.tensor([1.0, 0.0], dtype=F64)
    with torch.no_grad():
        data = nc.compile(PEND_SOURCE, params=PEND_TRUE, dtype=F64)(s0)
    return Work(PEND_SOURCE, PEND_INIT, tuple(PEND_INIT), {"s0": s0}, data, jax_loss(200, 0.05, pendulum_rhs))


def gravity_work() -> Work:
    gen = torch.Generator().manual_seed(0)
    d = torch.randn(100, 3, generator=gen, dtype=F64)
    args = {"r": d / d.norm(dim=-1, keepdim=True) * (1 + 4 * torch.rand(100, 1, generator=gen, dtype=F64)),
            "m1": 1 + 4 * torch.rand(100, generator=gen, dtype=F64),
            "m2": 1 + 4 * torch.rand(100, generator=gen, dtype=F64)}
    with torch.no_grad():
        data = HandGravity(6.674).double()(**args)
    data = data + 0.02 * data.abs().mean() * torch.randn(data.shape, generator=gen, dtype=F64)
    return Work(GRAVITY, {"G": 3.0}, ("G",), args, data, jax_gravity_loss, lambda: HandGravity(3.0))


def train_variants(work: Work, dtype: torch.dtype, compilers: list[str | None]
                   ) -> tuple[dict[str, Callable[[], Any]], dict[str, float]]:
    """The training steps (checked to agree) and their first-call (compile) times; a compiler
    the model does not suit is left out, its reason in ``work.notes``."""
    args = {k: v.to(dtype) for k, v in work.args.items()}
    data = work.data.to(dtype)
    first: dict[str, float] = {}
    start = time.perf_counter()
    model = nc.compile(work.source, params=work.init).to(dtype)
    model(**args)
    first["nc"] = time.perf_counter() - start

    def torch_step(m: torch.nn.Module) -> Callable[[], Any]:
        ps = list(m.parameters())

        def step() -> Any:
            loss = ((m(**args) - data) ** 2).mean()
            return torch.autograd.grad(loss, ps)
        return step

    out: dict[str, Callable[[], Any]] = {"nc": torch_step(model)}
    if work.hand is not None:
        out["hand"] = torch_step(work.hand().to(dtype))
    for c in compilers:
        try:
            compiled = nc.compiled_step(model, compiler=c)
            start = time.perf_counter()
            compiled.loss_and_grad(**args, target=data)
            first[f"compiled {c}"] = time.perf_counter() - start
            out[f"compiled {c}"] = (lambda s: lambda: s.loss_and_grad(**args, target=data))(compiled)
        except STEP.NotCompilable as e:
            work.notes[f"compiled {c}"] = e.reason
    jdt = jnp.float64 if dtype == torch.float64 else jnp.float32
    grad = jax.jit(jax.value_and_grad(work.jloss))
    p0 = jnp.asarray([work.init[k] for k in work.names], dtype=jdt)
    jargs = [jnp.asarray(v.numpy()) for v in args.values()] + [jnp.asarray(data.numpy())]
    start = time.perf_counter()
    jax.block_until_ready(grad(p0, *jargs))
    first["jax"] = time.perf_counter() - start
    out["jax"] = lambda: jax.block_until_ready(grad(p0, *jargs))
    g_nc = torch.stack([g.reshape(()) for g in out["nc"]()]).double()
    g_jax = torch.tensor(jax.device_get(out["jax"]()[1]).tolist(), dtype=F64)
    tol = 1e-9 if dtype == torch.float64 else 1e-3
    torch.testing.assert_close(g_nc, g_jax, rtol=tol, atol=tol)
    for name in out:
        if name.startswith("compiled"):
            g = torch.stack(list(out[name]()[1])).double()
            torch.testing.assert_close(g, g_nc, rtol=1e-10 if dtype == torch.float64 else 1e-3, atol=0.0)
    return out, first


def fit_many_variants(k: int, epochs: int) -> dict[str, Callable[[], Any]]:
    """K independent LV fits (batch 1 each, its own trajectory), ``epochs`` Adam epochs: nc's
    `fit_many` against jax.jit(vmap(value_and_grad)) with the same Adam update."""
    gen = torch.Generator().manual_seed(1)
    s0 = torch.tensor([4.0, 1.0], dtype=F64) + torch.rand(k, 2, generator=gen, dtype=F64)
    with torch.no_grad():
        data = P.HandLV(P.LV_PARAMS).double()(s0)
    model = nc.compile(P.LV_SOURCE, params=P.LV_INIT, dtype=F64)
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    vg = jax.vmap(jax.value_and_grad(jax_loss(100, 0.1)))

    @jax.jit
    def epoch(p: Any, m: Any, v: Any, t: Any, s0: Any, data: Any) -> Any:
        loss, g = vg(p, s0, data)
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        return p - lr * (m / (1 - b1 ** t)) / (jnp.sqrt(v / (1 - b2 ** t)) + eps), m, v, loss

    js0, jdata = jnp.asarray(s0.numpy()), jnp.asarray(data.numpy())
    p0 = jnp.tile(jnp.asarray([P.LV_INIT[n] for n in LV_NAMES], dtype=jnp.float64), (k, 1))

    def jax_fit() -> Any:
        p, m, v = p0, jnp.zeros_like(p0), jnp.zeros_like(p0)
        for t in range(1, epochs + 1):
            p, m, v, loss = epoch(p, m, v, float(t), js0, jdata)
        return jax.block_until_ready(p)

    def nc_fit() -> Any:
        return nc.fit_many(model, s0, data, k=k, lr=lr, epochs=epochs)

    got = nc_fit().params["alpha"]
    want = torch.tensor(jax.device_get(jax_fit()[:, 0]).tolist(), dtype=F64)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-9)  # the same Adam, to rounding
    return {"nc": nc_fit, "jax": jax_fit}


def rollout_variants(dtype: torch.dtype, compiled: bool) -> tuple[dict[str, Callable[[], Any]], dict[str, float]]:
    """A 1,000-step forward rollout (no gradient): nc eager, nc's compiled rollout
    (``nc.compiled_step(model).rollout``, the loop in C; not in quick mode: it compiles C) and
    jax.jit, checked to agree; and their first-call times."""
    first: dict[str, float] = {}
    start = time.perf_counter()
    model = nc.compile(LV1000_SOURCE, params=P.LV_PARAMS).to(dtype)
    s0 = torch.tensor([4.0, 1.0], dtype=dtype)
    with torch.no_grad():
        model(s0)
    first["nc"] = time.perf_counter() - start
    jdt = jnp.float64 if dtype == torch.float64 else jnp.float32
    p = jnp.asarray([P.LV_PARAMS[k] for k in LV_NAMES], dtype=jdt)
    loss = jax.jit(jax_loss(1000, 0.01))
    js0, jdata = jnp.asarray(s0.numpy()), jnp.zeros((1001, 2), dtype=jdt)
    start = time.perf_counter()
    jax.block_until_ready(loss(p, js0, jdata))
    first["jax"] = time.perf_counter() - start

    def nc_run() -> Any:
        with torch.no_grad():
            return (model(s0) ** 2).mean()
    out = {"nc": nc_run, "jax": lambda: jax.block_until_ready(loss(p, js0, jdata))}
    if compiled:
        step = nc.compiled_step(model)
        start = time.perf_counter()
        step.rollout(s0)
        first["compiled"] = time.perf_counter() - start
        out["compiled"] = lambda: (step.rollout(s0) ** 2).mean()
        torch.testing.assert_close(out["compiled"](), nc_run(), rtol=1e-12 if dtype == F64 else 1e-5, atol=0.0)
    want = torch.tensor(float(jax.device_get(out["jax"]())), dtype=F64)
    torch.testing.assert_close(nc_run().double(), want, rtol=1e-9 if dtype == F64 else 1e-4, atol=0.0)
    return out, first


def rollout_row(label: str, dtype: torch.dtype, compiled: bool, rounds: int, timing: dict[str, Any]) -> list[str]:
    steps, first = rollout_variants(dtype, compiled)
    res = measure(steps, rounds=rounds, **timing)
    has = "compiled" in steps
    return [label, report.fmt_time(res.median("nc")), "", report.fmt_time(res.median("compiled")) if has else "",
            report.fmt_time(res.median("jax")), report.fmt_ratio(res.ratio("nc", "jax")),
            report.fmt_ratio(res.ratio("compiled", "jax")) if has else "",
            f"{first['nc']:.2f} / " + (f"{first['compiled']:.1f}" if has else "-") + f" / {first['jax']:.2f} s", ""]


def train_row(label: str, work: Work, dtype: torch.dtype, compilers: list[str | None], rounds: int,
              timing: dict[str, Any]) -> list[str]:
    steps, first = train_variants(work, dtype, compilers)
    res = measure(steps, rounds=rounds, **timing)
    main = f"compiled {compilers[0]}" if compilers else ""
    others = [f"{c}: {report.fmt_time(res.median(f'compiled {c}'))} ({first[f'compiled {c}']:.1f} s)"
              for c in compilers[1:] if f"compiled {c}" in steps]
    cell = (report.fmt_time(res.median(main)) if main in steps
            else f"n/a: {work.notes[main]}" if main in work.notes else "")
    return [label, report.fmt_time(res.median("nc")), report.fmt_time(res.median("hand")) if "hand" in steps else "",
            cell, report.fmt_time(res.median("jax")), report.fmt_ratio(res.ratio("nc", "jax")),
            report.fmt_ratio(res.ratio(main, "jax")) if main in steps else "",
            f"{first['nc']:.2f} / " + (f"{first[main]:.1f}" if main in first else "-") + f" / {first['jax']:.2f} s",
            "; ".join(others)]


def plain_row(label: str, steps: dict[str, Callable[[], Any]], rounds: int, timing: dict[str, Any],
              per: int = 1, compiled: str = "") -> list[str]:
    res = measure(steps, rounds=rounds, **timing)
    return [label, report.fmt_time(res.median("nc") / per), "", compiled, report.fmt_time(res.median("jax") / per),
            report.fmt_ratio(res.ratio("nc", "jax")), "", "", ""]


def rows(rounds: int, timing: dict[str, Any], quick: bool = False) -> list[list[str]]:
    comp = step_compilers(quick)
    out = []
    for dname, dtype in list(DTYPES.items())[:1 if quick else 2]:
        for batch in (1,) if quick else (1, 256):
            out.append(train_row(f"train LV B{batch} {dname}", lv_work(batch), dtype, comp, rounds, timing))
        out.append(rollout_row(f"rollout 1000 {dname} (no grad)", dtype, not quick, rounds, timing))
    if not quick:
        out.append(train_row("train pendulum B1 float64", pendulum_work(), F64, comp, rounds, timing))
        out.append(train_row("train LV 1000 steps B1 float64", lv_work(1, 1000), F64, comp, rounds, timing))
    out.append(train_row("train gravity 100 samples float64", gravity_work(), F64, comp, rounds, timing))
    k, epochs = (4, 2) if quick else (100, 10)
    out.append(plain_row(f"fit_many K={k} LV B1 float64, per epoch", fit_many_variants(k, epochs), rounds, timing,
                         per=epochs, compiled="n/a: fit_many is eager (vmap)"))
    return out


COLUMNS = ["work", "nc eager", "hand torch", "nc compiled", "jax.jit", "eager / jax", "compiled / jax",
           "first call nc / compiled / jax", "other compilers (first call)"]


@pytest.mark.slow
@pytest.mark.benchmark(group="4 train step: nc against jax.jit (interleaved)")
def test_train_step_against_jax(benchmark, mode) -> None:
    tab = report.table(4, "nc against jax.jit (lax.scan)", COLUMNS,
                       method=f"{mode.describe(3)}; per-step time median; ratio median [IQR]")

    def run() -> None:
        for i, row in enumerate(rows(mode.rounds, mode.timing(0.0, 1, repeat=3), mode.quick)):
            tab.add(i, row)

    benchmark.pedantic(run, rounds=1, iterations=1)
    tab.note("gradients of nc and JAX agree (1e-9 float64, 1e-3 float32) before timing")


if __name__ == "__main__":  # pragma: no cover - prints the table for bench/README.md
    import sys
    torch.set_num_threads(1)
    quick = "--quick" in sys.argv
    for line in report.grid(COLUMNS, rows(3 if quick else 7, {"min_time": 0.0, "max_inner": 1, "warmup": 1,
                                                                "repeat": 1 if quick else 3}, quick)):
        print(line)
