"""Train a hybrid model (known physics + a learned drag term) with DistributedDataParallel.

Two processes on the CPU (gloo) each take half of the data; DDP averages their gradients, so
the run reaches the same parameters as single-process training on all the data.

    python examples/ddp_hybrid.py            # prints both results and their difference
"""

from __future__ import annotations

import os
import sys
import tempfile

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel

import nc

PROGRAM = """
(define G 3.0)                                   ; trainable: the true value is 6.674
(define (gravity m r)
  (let ((d (norm r)))
    (scale (/ (* (- G) m) (* d d d)) r)))
(- (gravity m r) (drag v))                        ; drag: a learned component
"""
STEPS = 30
LR = 0.05


def make_model() -> nc.NcModule:
    torch.manual_seed(0)
    drag = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    return nc.compile(PROGRAM, trainable=["G"], modules={"drag": drag}).double()


def make_data(n: int = 64) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    m = torch.rand(n, generator=g, dtype=torch.float64) + 1
    r = torch.randn(n, 3, generator=g, dtype=torch.float64)
    r = r / r.norm(dim=-1, keepdim=True) * (1 + 4 * torch.rand(n, 1, generator=g, dtype=torch.float64))
    v = 2 * torch.randn(n, 3, generator=g, dtype=torch.float64)
    d = r.norm(dim=-1, keepdim=True)
    force = -6.674 * m[:, None] * r / d**3 - 0.5 * v * v.norm(dim=-1, keepdim=True)
    return {"m": m, "r": r, "v": v}, force


def train(model: nn.Module, inputs: dict[str, torch.Tensor], target: torch.Tensor) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    for _ in range(STEPS):
        opt.zero_grad()
        loss = ((model(**inputs) - target) ** 2).mean()
        loss.backward()
        opt.step()


def single_process() -> dict[str, torch.Tensor]:
    model = make_model()
    inputs, target = make_data()
    train(model, inputs, target)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def worker(rank: int, world: int, init_file: str, out_file: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        model = make_model()
        ddp = DistributedDataParallel(model)
        inputs, target = make_data()
        half = slice(rank * len(target) // world, (rank + 1) * len(target) // world)
        train(ddp, {k: v[half] for k, v in inputs.items()}, target[half])
        if rank == 0:
            torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, out_file)
    finally:
        dist.destroy_process_group()


def distributed(world: int = 2) -> dict[str, torch.Tensor]:
    with tempfile.TemporaryDirectory() as tmp:
        init_file, out_file = os.path.join(tmp, "init"), os.path.join(tmp, "out.pt")
        mp.spawn(worker, args=(world, init_file, out_file), nprocs=world, join=True)
        return torch.load(out_file)


def main() -> int:
    torch.set_num_threads(1)
    one, two = single_process(), distributed()
    worst = max(float(((one[k] - two[k]).abs() / one[k].abs().clamp_min(1e-12)).max()) for k in one)
    print(f"G single-process {float(one['G']):.12f}, DDP {float(two['G']):.12f}")
    print(f"largest relative difference over all parameters: {worst:.2e}")
    return 0 if worst < 1e-6 else 1


if __name__ == "__main__":
    sys.exit(main())
