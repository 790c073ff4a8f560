"""The benchmark programs: the 15 Feynman formulas, their peers, inputs and generated programs.

Peers of each formula:

- hand-written PyTorch (`HAND`): the same operations in the same order as the s-expression,
  written as a person would write them, with the constants as Python floats (keyword defaults,
  so that `torch.func.vmap` can pass tensors for them instead);
- SymPy: a tiny converter from the s-expression to a SymPy expression (`to_sympy`), then
  ``sympy.lambdify(modules="torch")`` or ``sympytorch.SymPyModule``.
"""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parent.parent
FEYNMAN_PATH = REPO / ".." / "shared" / "data" / "feynman15.json"

SExpr = Any  # str | float | int | list[SExpr]


# ---- the formulas ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Formula:
    id: str
    name: str
    program: str  # the s-expression; constants are free names
    ranges: dict[str, tuple[float, float]]
    constants: dict[str, float]
    tree: SExpr = field(compare=False, repr=False)

    @property
    def defined_source(self) -> str:
        """The program with each constant a top-level ``(define name value)``: a function of the inputs."""
        head = "".join(f"(define {k} {v!r}) " for k, v in self.constants.items())
        return head + self.program

    @property
    def ops(self) -> int:
        """Operations of the formula: the applications (lists) in its s-expression."""
        return count_lists(self.tree)


def feynman_available() -> bool:
    return FEYNMAN_PATH.is_file()


@cache
def feynman() -> tuple[Formula, ...]:
    data = json.loads(FEYNMAN_PATH.read_text())
    return tuple(Formula(id=d["id"], name=d["name"], program=d["program"],
                         ranges={k: (float(a), float(b)) for k, (a, b) in d["input_ranges"].items()},
                         constants={k: float(v) for k, v in d["constants"].items()},
                         tree=read_sexpr(d["program"]))
                 for d in data)


def by_id(pid: str) -> Formula:
    for f in feynman():
        if f.id == pid:
            return f
    raise KeyError(pid)


# ---- a tiny s-expression reader and the SymPy converter ----------------------------------------
def read_sexpr(text: str) -> SExpr:
    tokens = text.replace("(", " ( ").replace(")", " ) ").split()
    pos = 0

    def read() -> SExpr:
        nonlocal pos
        tok = tokens[pos]
        pos += 1
        if tok == "(":
            out = []
            while tokens[pos] != ")":
                out.append(read())
            pos += 1
            return out
        try:
            return int(tok)
        except ValueError:
            pass
        try:
            return float(tok)
        except ValueError:
            return tok

    tree = read()
    if pos != len(tokens):
        raise ValueError(f"trailing tokens in {text!r}")
    return tree


def count_lists(tree: SExpr) -> int:
    return (1 + sum(count_lists(t) for t in tree[1:])) if isinstance(tree, list) else 0


def to_sympy(tree: SExpr, constants: dict[str, float] | None = None) -> Any:
    """A SymPy expression of an s-expression; names in ``constants`` become those numbers."""
    import sympy

    consts = constants or {}

    def conv(t: SExpr) -> Any:
        if isinstance(t, bool):
            return sympy.Integer(int(t))
        if isinstance(t, int):
            return sympy.Integer(t)
        if isinstance(t, float):
            return sympy.Float(t)
        if isinstance(t, str):
            return sympy.Float(consts[t]) if t in consts else sympy.Symbol(t)
        op, *args = t
        a = [conv(x) for x in args]
        if op == "+":
            return sympy.Add(*a)
        if op == "*":
            return sympy.Mul(*a)
        if op == "-":
            return -a[0] if len(a) == 1 else a[0] - sympy.Add(*a[1:])
        if op == "/":
            return 1 / a[0] if len(a) == 1 else a[0] / sympy.Mul(*a[1:])
        if op in ("pow", "expt"):
            return a[0] ** a[1]
        fn = {"sqrt": sympy.sqrt, "sin": sympy.sin, "cos": sympy.cos, "tan": sympy.tan, "exp": sympy.exp,
              "log": sympy.log, "tanh": sympy.tanh, "abs": sympy.Abs}[op]
        return fn(*a)

    return conv(tree)


def lambdify(formula: Formula, names: tuple[str, ...], *, substitute: bool) -> Callable[..., torch.Tensor]:
    """``sympy.lambdify(modules="torch")`` of the formula, arguments in ``names`` order."""
    import sympy

    expr = to_sympy(formula.tree, formula.constants if substitute else None)
    return sympy.lambdify([sympy.Symbol(n) for n in names], expr, modules="torch")


def sympytorch_module(formula: Formula, dtype: torch.dtype) -> torch.nn.Module:
    """``sympytorch.SymPyModule`` of the formula with its constants substituted, for inference.

    sympytorch turns every float into an ``nn.Parameter`` (of the default dtype, here set to
    ``dtype``); they are frozen so that a call builds no autograd graph (as for the other peers).
    """
    import sympytorch

    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # so that its constants are made in ``dtype``, not rounded to float32
    try:
        module = sympytorch.SymPyModule(expressions=[to_sympy(formula.tree, formula.constants)])
    finally:
        torch.set_default_dtype(old)
    return module.to(dtype).requires_grad_(False)


# ---- hand-written PyTorch -----------------------------------------------------------------------
Tensor = torch.Tensor
Num = Any  # a Python float, or a tensor under vmap


def planck(f: Tensor, h: Num = 6.626) -> Tensor:
    return h * f


def hooke(x: Tensor, neg_k: Num = -2.5) -> Tensor:
    return neg_k * x


def kinetic(m: Tensor, v: Tensor, alpha: Num = 0.5) -> Tensor:
    return alpha * (m * v**2)


def ideal_gas(n: Tensor, T: Tensor, V: Tensor, kB: Num = 1.381) -> Tensor:
    return n * (kB * T) / V


def gravity(m1: Tensor, m2: Tensor, r: Tensor, G: Num = 6.674) -> Tensor:
    return G * (m1 * m2) / r**2


def coulomb(q1: Tensor, q2: Tensor, r: Tensor, ke: Num = 8.988) -> Tensor:
    return ke * (q1 * q2) / r**2


def efield_energy(Ef: Tensor, coeff: Num = 4.427) -> Tensor:
    return coeff * Ef**2


def heat_conduction(T2: Tensor, T1: Tensor, A: Tensor, d: Tensor, kappa: Num = 1.5) -> Tensor:
    return kappa * ((T2 - T1) * A) / d


def speed_of_sound(pr: Tensor, rho: Tensor, gamma: Num = 1.4) -> Tensor:
    return torch.sqrt(gamma * pr / rho)


def pendulum_period(L: Tensor, g: Tensor, two_pi: Num = 6.283) -> Tensor:
    return two_pi * torch.sqrt(L / g)


def lorentz(m0: Tensor, v: Tensor, c: Num = 3.0) -> Tensor:
    return m0 / torch.sqrt(1 - (v / c) ** 2)


def relativistic_energy(m: Tensor, v: Tensor, c: Num = 3.0) -> Tensor:
    return m * c**2 / torch.sqrt(1 - (v / c) ** 2)


def oscillator(t: Tensor, A: Num = 2.0, omega: Num = 3.0, phi: Num = 0.5) -> Tensor:
    return A * torch.sin(omega * t + phi)


def gaussian(theta: Tensor, sigma: Num = 2.0) -> Tensor:
    return torch.exp((0 - theta**2) / (2 * sigma**2))


def barometric(m: Tensor, g: Tensor, x: Tensor, T: Tensor, n0: Num = 5.0, kB: Num = 1.381) -> Tensor:
    return n0 * torch.exp((0 - m) * (g * x) / (kB * T))


HAND: dict[str, Callable[..., torch.Tensor]] = {f.__name__: f for f in (
    planck, hooke, kinetic, ideal_gas, gravity, coulomb, efield_energy, heat_conduction, speed_of_sound,
    pendulum_period, lorentz, relativistic_energy, oscillator, gaussian, barometric)}


def hand_signature(pid: str) -> tuple[tuple[str, ...], dict[str, float]]:
    """(input names, constants) of a hand-written formula."""
    params = inspect.signature(HAND[pid]).parameters.values()
    inputs = tuple(p.name for p in params if p.default is inspect.Parameter.empty)
    consts = {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}
    return inputs, consts


def check_hand(formula: Formula, nc_inputs: tuple[str, ...]) -> None:
    """The hand-written peer takes nc's inputs in nc's order and has the same constants."""
    inputs, consts = hand_signature(formula.id)
    if inputs != nc_inputs or consts != formula.constants:
        raise AssertionError(f"hand-written {formula.id}{inputs} {consts} does not match nc's "
                             f"{nc_inputs} {formula.constants}")


# ---- inputs --------------------------------------------------------------------------------------
def make_inputs(formula: Formula, names: tuple[str, ...], n: int, dtype: torch.dtype,
                seed: int = 0) -> list[torch.Tensor]:
    """Uniform samples of shape ``(n,)`` from the formula's input ranges, in ``names`` order.

    A constant among ``names`` (the formula as written, constants free) gets its true value.
    """
    gen = torch.Generator().manual_seed(seed)
    out = []
    for name in names:
        if name in formula.constants:
            out.append(torch.full((n,), formula.constants[name], dtype=dtype))
            continue
        lo, hi = formula.ranges[name]
        out.append(torch.rand(n, generator=gen, dtype=torch.float64).mul_(hi - lo).add_(lo).to(dtype))
    return out


# ---- generated programs ---------------------------------------------------------------------------
def let_chain(n: int) -> str:
    """A ``let*`` chain of ``n`` bindings alternating ``(+ a 0.5)`` and ``(* a 0.999)``: n operations."""
    parts = ["(a1 (+ x 0.5))"]
    for i in range(2, n + 1):
        parts.append(f"(a{i} (* a{i - 1} 0.999))" if i % 2 == 0 else f"(a{i} (+ a{i - 1} 0.5))")
    return f"(let* ({' '.join(parts)}) a{n})"


def let_chain_reference(n: int, x: float) -> float:
    for i in range(1, n + 1):
        x = x + 0.5 if i % 2 == 1 else x * 0.999
    return x


# ---- Lotka-Volterra RK4 ---------------------------------------------------------------------------
LV_SOURCE = ("(define (lv t s) (vec (- (* alpha (ref s 0)) (* beta (ref s 0) (ref s 1))) "
             "(- (* delta (ref s 0) (ref s 1)) (* gamma (ref s 1))))) (rk4 lv s0 0.1 100)")
LV_PARAMS = {"alpha": 1.0, "beta": 0.5, "delta": 0.25, "gamma": 0.5}
LV_INIT = {"alpha": 0.5, "beta": 0.5, "delta": 0.5, "gamma": 0.5}


class HandLV(torch.nn.Module):
    """The Lotka-Volterra RK4 rollout written by hand: ``(..., 2)`` -> ``(..., steps + 1, 2)``."""

    def __init__(self, params: dict[str, float], dt: float = 0.1, steps: int = 100) -> None:
        super().__init__()
        self.alpha = torch.nn.Parameter(torch.tensor(params["alpha"]))
        self.beta = torch.nn.Parameter(torch.tensor(params["beta"]))
        self.delta = torch.nn.Parameter(torch.tensor(params["delta"]))
        self.gamma = torch.nn.Parameter(torch.tensor(params["gamma"]))
        self.dt = dt
        self.steps = steps

    def rhs(self, s: torch.Tensor) -> torch.Tensor:
        x, y = s[..., 0], s[..., 1]
        return torch.stack([self.alpha * x - self.beta * x * y, self.delta * x * y - self.gamma * y], dim=-1)

    def forward(self, s0: torch.Tensor) -> torch.Tensor:
        dt = self.dt
        half, sixth = dt / 2, dt / 6
        y = s0
        states = [y]
        for _ in range(self.steps):
            k1 = self.rhs(y)
            k2 = self.rhs(y + half * k1)
            k3 = self.rhs(y + half * k2)
            k4 = self.rhs(y + dt * k3)
            y = y + sixth * (k1 + 2 * k2 + 2 * k3 + k4)
            states.append(y)
        return torch.stack(states, dim=-2)


def geomean(xs: list[float]) -> float:
    xs = [x for x in xs if x > 0 and math.isfinite(x)]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")
