"""The paper's six experiments, reproduced with statistics over seeds: ``nc reproduce``.

One module per experiment (`feynman`, `lotka_volterra`, `pendulum`, `heat`, `vector`,
`composition`), each with ``run(cfg, bar) -> dict`` (JSON-serialisable: entries, headline,
notes, plot data) and ``figures(result, out) -> list[str]``; the baselines in `baselines`
(MLPs, neural ODE, PINN), the statistics in `stats`, the report in `report`, the runner in
`runner`. The baselines need the ``experiments`` extra (``pip install nc[experiments]``:
deepxde, torchdiffeq, matplotlib, tqdm); nc's core install does not.
"""

from __future__ import annotations

EXPERIMENTS = ("feynman", "lotka_volterra", "pendulum", "heat", "vector", "composition")

__all__ = ["EXPERIMENTS"]
