# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # From symbolic regression to a refitted hybrid model
#
# Symbolic-regression tools such as PySR report their best formula as a SymPy expression with
# fitted float constants. Here such a formula is slightly wrong: a gravity law with a constant
# and an exponent a little off, and no drag term at all. We
#
# 1. turn the SymPy expression into an nc program (`nc.from_sympy`), with each float constant
#    a named, trainable `(define c0 ...)`;
# 2. add a learned correction (a small network called like a function, `modules=`);
# 3. refit the constants and the network together in float64 with `nc.fit`;
# 4. write the result back as nc source (`model.to_source()`) and as a formula.

# %%
import sympy as sp
import torch
from torch import nn

import nc
from nc.symbolic import lift_constants

F64 = torch.float64
torch.manual_seed(0)  # the network's initial weights

# %% [markdown]
# ## The formula PySR reported
#
# The data come from `G m1 m2 / r^2 - 0.3 v |v|` with `G = 6.674`; the regression found the
# gravity part only, with `G ~ 6.52` and an exponent `2.03`.

# %%
reported = sp.sympify("6.52*m1*m2/r**2.03")
print("reported:", reported)
expr, constants = lift_constants(reported)
print("with named constants:", expr, constants)
physics = nc.from_sympy(expr, params=constants, inputs=["m1", "m2", "r"])
print(physics)

# %% [markdown]
# `from_sympy` wrote the constants as defines and the formula as a `lambda` (which fixes the
# inputs' order). Without `inputs=` the formula is the last line alone: make it a function and
# call a learned component next to it.

# %%
*defines, formula = nc.from_sympy(expr, params=constants).strip().splitlines()
HYBRID = "\n".join(defines) + f"\n(define (gravity m1 m2 r) {formula})\n" \
    "(+ (gravity m1 m2 r) (ref (correction [v]) 0))"
print(HYBRID)

# %% [markdown]
# ## Data

# %%
gen = torch.Generator().manual_seed(1)
n = 400
data = {"m1": 1 + 4 * torch.rand(n, generator=gen, dtype=F64), "m2": 1 + 4 * torch.rand(n, generator=gen, dtype=F64),
        "r": 1 + 2 * torch.rand(n, generator=gen, dtype=F64), "v": 4 * torch.rand(n, generator=gen, dtype=F64) - 2}
truth = nc.compile_fn("(- (/ (* 6.674 m1 m2) (* r r)) (* 0.3 v (abs v)))")
target = truth(**data)

# %% [markdown]
# ## Refit in float64
#
# The constants start where PySR left them; the network starts near zero. L-BFGS on the full
# batch fits them together.

# %%
net = nn.Sequential(nn.Linear(1, 16), nn.Tanh(), nn.Linear(16, 1)).double()
model = nc.compile(HYBRID, trainable=list(constants), modules={"correction": net}, dtype=F64)
before = ((model(**{k: data[k] for k in model.inputs}) - target) ** 2).mean().item()
result = nc.fit(model, data, target, optimizer="lbfgs", epochs=40, dtype=F64)
fitted = {name: model.params[name].item() for name in constants}
print(f"loss {before:.3e} -> {result.loss:.3e} in {result.seconds:.1f} s")
print("constants:", {k: round(v, 4) for k, v in fitted.items()})
exponent, G = fitted["c0"], fitted["c1"]
assert abs(exponent + 2) < 0.01 and abs(G - 6.674) / 6.674 < 0.01, fitted
assert result.loss < 1e-3 * before

# %% [markdown]
# ## Back to source and to a formula
#
# `to_source()` writes every parameter at its fitted value (full precision); the learned
# correction stays a call of `correction`. The physics part reads as a formula again.

# %%
print(model.to_source())
refit = expr.xreplace({sp.Symbol(k): sp.Float(v, 6) for k, v in fitted.items()})
print("refitted gravity:", refit)
print("LaTeX:", sp.latex(refit))
rebuilt = nc.compile(model.to_source(), trainable=list(constants), modules={"correction": net}, dtype=F64)
assert torch.equal(rebuilt(**{k: data[k] for k in rebuilt.inputs}), model(**{k: data[k] for k in model.inputs}))

# %% [markdown]
# ## Where the correction takes over
#
# `nc.intermediates` shows the value of each named part: the gravity call and the whole.

# %%
parts = nc.intermediates(model, **{k: data[k][:4] for k in model.inputs})
for name, value in parts.items():
    print(f"{name:>18}: {[round(x, 3) for x in value.tolist()]}")
