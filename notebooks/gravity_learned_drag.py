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
# # Known gravity, learned drag
#
# A hybrid model: the part of the physics we know is an nc program, the part we do not know is
# a small neural network that the program calls like a function. Here a body feels Newton's
# gravity (known law, unknown constant `G`) and an air drag whose form we pretend not to know
# (in truth `-0.5 v |v|`). The program
#
# ```scheme
# (+ (gravity ...) (drag v))
# ```
#
# is compiled with `modules={"drag": mlp}`: the MLP's weights become parameters of the compiled
# module, next to `G`, and `nc.fit` trains them all at once. This is the second variant of the
# paper's 3-D mechanics experiment (section 5 of `paper_experiments.md`): 1% noise, drag MLP
# 3-32-32-3 (tanh) on `v`, 1,284 parameters in all.

# %%
import torch
from torch import nn

import nc

F64 = torch.float64
torch.manual_seed(0)  # the MLP's initial weights

GRAVITY = "(let ((r_mag (norm r))) (scale (/ (* (- 0 G) (* m1 m2)) (* r_mag (* r_mag r_mag))) r))"
TRUTH = f"(+ {GRAVITY} (scale (* -0.5 (norm v)) v))"  # what generates the data
HYBRID = f"(+ {GRAVITY} (drag v))"  # what we fit: drag is a learned component

# %% [markdown]
# ## Data
#
# 500 samples: `r` in a random direction with `|r|` in [1, 5], masses in [1, 5], velocities
# `v ~ N(0, 2^2)` per component; the force from the true law with `G = 6.674`, plus 1% noise
# (sigma = 0.01 * mean |force|). The paper used 100 samples for the gravity-only model; a
# network needs more to learn a function of three variables.

# %%
def sample(n: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    direction = torch.randn(n, 3, generator=gen, dtype=F64)
    size = 1 + 4 * torch.rand(n, 1, generator=gen, dtype=F64)
    return {"r": direction / direction.norm(dim=-1, keepdim=True) * size,
            "m1": 1 + 4 * torch.rand(n, generator=gen, dtype=F64),
            "m2": 1 + 4 * torch.rand(n, generator=gen, dtype=F64),
            "v": 2 * torch.randn(n, 3, generator=gen, dtype=F64)}


truth = nc.compile_fn(TRUTH)
print("inputs of the true law:", truth.inputs, "ranks:", truth.ranks)
G_TRUE = torch.tensor(6.674, dtype=F64)
train = sample(500, torch.Generator().manual_seed(1))
clean = truth(**train, G=G_TRUE)
noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(0), dtype=F64)
force = clean + 0.01 * clean.abs().mean() * noise
print("force:", tuple(force.shape), "noise sigma:", round((0.01 * clean.abs().mean()).item(), 4))

# %% [markdown]
# ## The hybrid model
#
# `G` is a free name of the program, made a parameter with `params={"G": 3.0}` (the paper's
# start). `drag` is not a free name: it is a learned component, an `nn.Module` called on the
# batch of velocities ([N, 3] in, [N, 3] out).

# %%
mlp = nn.Sequential(nn.Linear(3, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 3))
model = nc.compile(HYBRID, params={"G": 3.0}, modules={"drag": mlp}, dtype=F64)
print(model)
print("inputs:", model.inputs, "parameters:", sum(p.numel() for p in model.parameters()))
assert model.inputs == ("r", "m1", "m2", "v")
assert sum(p.numel() for p in model.parameters()) == 1284

# %% [markdown]
# ## Fit
#
# Full-batch L-BFGS in float64 fits `G` and the 1,283 weights together (a few seconds; Adam
# with the paper's 3,000 epochs also works, more slowly). The final loss sits at the noise's
# variance: the model explains everything but the noise.

# %%
result = nc.fit(model, train, force, optimizer="lbfgs", epochs=30, dtype=F64)
G_fit = model.params["G"].item()
noise_var = (0.01 * clean.abs().mean()).item() ** 2
print(f"G = {G_fit:.5f} (true 6.674, relative error {abs(G_fit - 6.674) / 6.674:.2e})")
print(f"final loss {result.loss:.3e}; noise variance {noise_var:.3e}; {result.seconds:.1f} s")
assert abs(G_fit - 6.674) / 6.674 < 5e-3
assert result.loss < 1.5 * noise_var

# %% [markdown]
# ## The drag it learned
#
# Compare the network with the true drag `-0.5 v |v|` on new velocities from the training
# distribution, and along the x axis. Outside the velocities it saw, a network extrapolates
# poorly; the compiled gravity term has no such limit.

# %%
held_out = 2 * torch.randn(1000, 3, generator=torch.Generator().manual_seed(2), dtype=F64)
drag_true = nc.compile_fn("(scale (* -0.5 (norm v)) v)")
with torch.no_grad():
    learned, wanted = mlp(held_out), drag_true(held_out)
drag_error = ((learned - wanted).norm() / wanted.norm()).item()
print(f"drag on held-out velocities: relative error {drag_error:.3f}")
assert drag_error < 0.1

speeds = torch.linspace(-4, 4, 9, dtype=F64)
along_x = torch.stack([speeds, torch.zeros_like(speeds), torch.zeros_like(speeds)], dim=-1)
with torch.no_grad():
    rows = zip(speeds.tolist(), mlp(along_x)[:, 0].tolist(), drag_true(along_x)[:, 0].tolist())
print(" v_x   learned   true")
for s, a, b in rows:
    print(f"{s:4.1f} {a:9.3f} {b:6.2f}")

# %% [markdown]
# An optional picture (if matplotlib is installed): the x component of the drag along the x axis.

# %%
try:
    import matplotlib.pyplot as plt
except ImportError:  # matplotlib is optional
    plt = None
if plt is not None:
    fine = torch.linspace(-6, 6, 121, dtype=F64)
    vs = torch.stack([fine, torch.zeros_like(fine), torch.zeros_like(fine)], dim=-1)
    with torch.no_grad():
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.plot(fine, drag_true(vs)[:, 0], label="true -0.5 v|v|")
        ax.plot(fine, mlp(vs)[:, 0], "--", label="learned")
    ax.axvspan(-4, 4, alpha=0.1, label="most training v_x")
    ax.set_xlabel("v_x")
    ax.set_ylabel("drag_x")
    ax.legend()

# %% [markdown]
# ## Why G can be trusted here
#
# The split between the two terms is identifiable: gravity depends on `r`, `m1`, `m2` and not
# on `v`, the drag network sees only `v`, so no setting of the network can imitate a change of
# `G`. (Compare `pendulum_correction.py`, where the correction sees the same variables as the
# physics and the split is lost.) The fitted program, with `G` at its value:

# %%
print(model.to_source())
assert model.to_source().startswith(f"(define G {G_fit!r})")
