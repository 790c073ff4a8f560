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
# # Getting started with nc
#
# nc compiles small programs written in a Scheme-syntax language into exact, differentiable,
# vectorizable PyTorch functions and `nn.Module`s. This notebook walks through:
#
# 1. compiling a program to a function with `nc.compile_fn`,
# 2. batching, `vmap` and `grad`,
# 3. a branch that is safe for gradients,
# 4. a module with a trainable constant, fitted to data,
# 5. getting the fitted program back with `to_source`,
# 6. integrating an ODE with `rk4`.
#
# Every cell checks what it shows with `assert`, so running the notebook is also a test.

# %%
import math

import torch
from torch.func import grad, vmap

import nc

torch.manual_seed(0)

# %% [markdown]
# ## 1. A program is a function
#
# The free names of the result expression are the inputs, in order of first appearance.
# `f.inputs` lists them; call the function positionally or by keyword.

# %%
f = nc.compile_fn("(* m (square v) 0.5)")  # kinetic energy
print(f.inputs)
print(f(2.0, 3.0))
print(f(v=3.0, m=2.0))
assert f.inputs == ("m", "v")
assert f(2.0, 3.0).item() == 9.0

# %% [markdown]
# `nc.make_program` shows what nc recorded: one PyTorch operation per line. Literal-only
# subexpressions are folded while compiling.

# %%
print(nc.make_program("(* x (+ 1 2))").listing())

# %% [markdown]
# ## 2. Batching, `vmap` and `grad`
#
# Leading axes are batch axes: a function written for one example runs on many. The result is
# what `torch.func.vmap` gives, and gradients come from PyTorch.

# %%
m = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
v = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
print(f(m, v))
assert torch.equal(f(m, v), vmap(f)(m, v))

dE_dv = vmap(grad(f, argnums=1))(m, v)  # dE/dv = m v
print(dE_dv)
assert torch.allclose(dE_dv, m * v)

# %% [markdown]
# Vector inputs get their rank from the program: an input passed to `norm` is a vector.

# %%
speed = nc.compile_fn("(norm v)")
print(speed.ranks)
print(speed(torch.tensor([[3.0, 4.0], [5.0, 12.0]])))
assert speed.ranks == {"v": 1}

# %% [markdown]
# ## 3. Branches without NaN
#
# `(if test then else)` selects per element, and only the branch taken reaches the value and the
# gradient: the `sqrt` of a negative number below never leaks a NaN.

# %%
safe_sqrt = nc.compile_fn("(if (> x 0) (sqrt x) 0)")
x = torch.tensor([-1.0, 4.0])
print(safe_sqrt(x), vmap(grad(safe_sqrt))(x))
assert vmap(grad(safe_sqrt))(x).tolist() == [0.0, 0.25]

# %% [markdown]
# ## 4. A module with a trainable constant
#
# `(define G 1.0)` names a constant; `trainable=["G"]` makes it an `nn.Parameter` of the
# compiled module. Here we generate data from Newton's law of gravitation with the true value
# of G and fit it back.

# %%
src = """
(define G 1.0)                                   ; the unknown, starting at 1.0
(define (inv-square k a b r) (/ (* k a b) (* r r)))
(inv-square G m1 m2 r)
"""
model = nc.compile(src, trainable=["G"]).double()
print(model)

m1, m2, r = torch.rand(3, 200, dtype=torch.float64) + 0.5
force = 6.674 * m1 * m2 / r**2

# %%
if hasattr(nc, "fit"):
    result = nc.fit(model, (m1, m2, r), force, optimizer="lbfgs")
    print("final loss", result.loss)
else:  # plain PyTorch works just as well
    opt = torch.optim.LBFGS(model.parameters(), line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = ((model(m1, m2, r) - force) ** 2).mean()
        loss.backward()
        return loss

    for _ in range(20):
        opt.step(closure)
print("G =", model.G.item())
assert abs(model.G.item() - 6.674) < 1e-6

# %% [markdown]
# ## 5. The fitted program
#
# `to_source()` writes the program back with every parameter at its current value, so the
# fitted model can be read, stored and compiled again.

# %%
fitted = model.to_source()
print(fitted)
again = nc.compile(fitted, trainable=["G"]).double()
assert torch.allclose(again(m1, m2, r), model(m1, m2, r), rtol=1e-6)

# %% [markdown]
# ## 6. Integrating an ODE
#
# `(rk4 f y0 dt n)` takes `n` classic Runge-Kutta steps of `dy/dt = (f t y)` and returns the
# `n + 1` states. A damped pendulum, with the state `[angle velocity]`:

# %%
pendulum = nc.compile_fn("""
(define (rhs t s)
  [(ref s 1)
   (- (* (- g/L) (sin (ref s 0))) (* c (ref s 1)))])
(rk4 rhs [theta0 0] 0.05 200)
""")
print(pendulum.inputs)
trajectory = pendulum(9.81, 0.5, 1.0)
print(trajectory.shape, trajectory[-1])
assert trajectory.shape == (201, 2)
assert abs(trajectory[-1, 0].item()) < 0.1  # the damped swing has almost died out

# %% [markdown]
# Several initial angles at once are a batch, and the derivative of the final angle with
# respect to `g/L` is one `grad` away.

# %%
thetas = torch.linspace(0.2, 1.2, 4)
print(pendulum(9.81, 0.5, thetas).shape)
dtheta = grad(lambda gl: pendulum(gl, torch.tensor(0.5), torch.tensor(1.0))[-1, 0])(torch.tensor(9.81))
print("d theta(10) / d g/L =", dtheta.item())
assert pendulum(9.81, 0.5, thetas).shape == (4, 201, 2)
assert math.isfinite(dtheta.item())
