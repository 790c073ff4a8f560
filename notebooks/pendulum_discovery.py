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
# # Discovering the missing physics of a pendulum
#
# We know a pendulum's gravity, `dθ/dt = ω`, `dω/dt = -(g/L) sin θ`, but the measured swings
# die out: something is missing. `nc.discover` searches only the remainder (*hybrid
# discovery*): the known part is given as an nc program and kept fixed, and a library of
# candidate terms is fitted to the noisy trajectories through `rk4`. The result is an nc
# program that we write back to a file, compile, and integrate.

# %%
import tempfile
from pathlib import Path

import numpy as np
import torch

import nc

F64 = torch.float64
G_OVER_L, DAMPING = 9.81, 0.3  # the truth; the damping is what we pretend not to know

# %% [markdown]
# ## Data: two noisy swings
#
# Simulated with a fine `rk4` (here in nc itself, from two starting angles), sampled every
# 0.05 s, with Gaussian noise of 2% of each state's standard deviation.

# %%
truth = nc.compile_fn(f"""
(define (f t s) (let ((th (ref s 0)) (om (ref s 1)))
  [om (- (* -{G_OVER_L} (sin th)) (* {DAMPING} om))]))
(rk4 f s0 0.005 10)
""")


def swing(theta0: float, samples: int = 201) -> np.ndarray:
    s, out = torch.tensor([theta0, 0.0], dtype=F64), []
    for _ in range(samples):
        out.append(s.numpy())
        s = truth(s0=s)[-1]  # ten fine steps = one 0.05 s sample
    return np.stack(out)


clean = [swing(1.0), swing(2.5)]
rng = np.random.default_rng(0)
std = np.concatenate(clean).std(axis=0)
data = [y + 0.02 * std * rng.standard_normal(y.shape) for y in clean]
print("samples per swing:", len(data[0]), " noise std:", (0.02 * std).round(4))

# %% [markdown]
# ## Hybrid discovery
#
# The known part is an nc program: definitions, then one expression per state. The library
# holds the monomials of degree 1 and 2 and `sin θ`; only what the known part does not explain
# is searched.

# %%
known = f"""
(define g/L {G_OVER_L})
[omega (* (- g/L) (sin theta))]
"""
result = nc.discover(data, 0.05, ["theta", "omega"], ["poly2", "(sin theta)"], known=known, max_candidates=4)
print(result)

# %%
damping = -result.coefficients["c_omega_1"]  # term 1 of the library is omega
assert result.selected == {"theta": [], "omega": ["omega"]}, result.selected
assert abs(damping - DAMPING) < 0.03 * DAMPING, damping
print(f"discovered damping {damping:.4f} +/- {result.stderr['c_omega_1']:.4f} (truth {DAMPING})")

# %% [markdown]
# ## The program, written back
#
# `result.source` is an nc program: the known definitions, the fitted coefficient as a
# `define` (with its standard error as a comment) and the right-hand side `rhs`. We write it to a
# file, read it back, and compile it with the coefficient trainable, ready to be fitted further.

# %%
path = Path(tempfile.mkdtemp()) / "pendulum_discovered.nc"
path.write_text(result.source + "\n")
print(path.read_text())
rhs = nc.compile(path.read_text(), trainable=list(result.coefficients))
state = torch.tensor([0.5, 1.0], dtype=F64)
expected = torch.tensor([1.0, -G_OVER_L * np.sin(0.5) - damping * 1.0], dtype=F64)
assert torch.allclose(rhs(state).to(F64), expected, rtol=1e-9), rhs(state)

# %% [markdown]
# ## The discovered model against the data
#
# `result.simulate` integrates the discovered program with `rk4` from the first noisy sample;
# it follows the clean swing closely over the whole record.

# %%
sim = result.simulate(data[1][0], 0.05, len(data[1]) - 1)
err = np.abs(sim - clean[1]).max(axis=0)
print("largest deviation from the clean swing (theta, omega):", err.round(4))
assert (err < 0.1 * std).all(), err
