"""Data-parallel training with torch.distributed's DistributedDataParallel (DDP), as launched
by torchrun: the process group, rank helpers, each rank's shard of the global batch, and the
net + objective module that DDP wraps so every family's objective runs inside DDP's forward.

One process (no torchrun) never builds a process group: the loop gets `dist=None` and runs
exactly as before. Under torchrun every rank draws the same global batch from the (seed, step)
stream and keeps its own contiguous slice; DDP averages the gradients, so with equal shards the
update is the global batch's mean-loss update whatever the world size.
"""

from __future__ import annotations

import contextlib
import datetime
from dataclasses import dataclass

import torch
import torch.distributed as td
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from genlab.training.device import step_generator

# Shard r's objective draws (noise levels, noise) come from step_generator(seed + r * this,
# step): shard 0 is the single-process stream, so world size 1 is unchanged bit for bit.
SHARD_SEED_STRIDE = 1_000_003


@dataclass(frozen=True)
class Dist:
    """This process's place in the process group (rank 0 of 1 when not distributed)."""

    rank: int = 0  # global rank, 0 .. world - 1
    world: int = 1  # processes in all (nodes x processes per node)
    local_rank: int = 0  # rank on this machine: the CUDA device index

    @property
    def is_main(self) -> bool:
        """Rank 0: the only one that writes checkpoints, models, metrics and MLflow runs."""
        return self.rank == 0

    def check_batch(self, batch_size: int, where: str) -> None:
        """The global batch must split into equal shards (an error names the params key)."""
        if batch_size % self.world:
            raise ValueError(f"{where}: {batch_size} does not split into {self.world} equal "
                             f"shards (one per process); use a multiple of {self.world}")

    def shard(self, t: torch.Tensor | None) -> torch.Tensor | None:
        """This rank's contiguous rows of a global batch (B, ...) -> (B / world, ...)."""
        if t is None or self.world == 1:
            return t
        n = len(t) // self.world
        return t[self.rank * n:(self.rank + 1) * n]

    def generator(self, seed: int, step: int, device: torch.device) -> torch.Generator:
        """The objective's generator for this rank's shard at `step`."""
        return step_generator(seed + self.rank * SHARD_SEED_STRIDE, step, device)

    def seed_step(self, seed: int, step: int) -> None:
        """Seed torch's global RNG (dropout masks) for this rank's shard at `step`: ranks draw
        different masks, and a resumed run the same ones as an uninterrupted run."""
        torch.manual_seed(self.generator(seed, step, torch.device("cpu")).initial_seed())

    def agree(self, finite: torch.Tensor, seconds: float) -> tuple[bool, float]:
        """One collective a step: whether the step is finite on every rank, and the slowest
        rank's training clock, so that all ranks skip the same steps, follow the same
        time-based LR schedule and stop at the same step when max_seconds runs out."""
        t = torch.stack([(~finite.detach().reshape(())).double(),
                         torch.tensor(float(seconds), dtype=torch.float64, device=finite.device)])
        if self.world > 1:
            td.all_reduce(t, op=td.ReduceOp.MAX)
        bad, slowest = t.tolist()
        return bad == 0.0, slowest

    def mean(self, t: torch.Tensor) -> torch.Tensor:
        """The mean over ranks of a float tensor (a copy; t is left as it is)."""
        if self.world == 1:
            return t
        out = t.detach().clone().float()
        td.all_reduce(out)
        return out / self.world

    def same_on_all(self, value: int) -> int:
        """Rank 0's value, checked to be every rank's (e.g. the step a resume starts from)."""
        if self.world == 1:
            return value
        t = torch.tensor([value, -value], dtype=torch.int64)
        if td.get_backend() == "nccl":
            t = t.cuda(self.local_rank)
        td.all_reduce(t, op=td.ReduceOp.MAX)
        hi, lo = int(t[0]), -int(t[1])
        if hi != lo:
            raise RuntimeError(f"ranks disagree: values from {lo} to {hi} (rank {self.rank} "
                               f"has {value}); every rank must see the same checkpoint")
        return value

    def broadcast_state(self, net: nn.Module) -> None:
        """Copy rank 0's parameters and buffers to every rank: after the first forward of a
        run, which may have initialised layers from each rank's own shard (ActNorm's
        data-dependent init), so that all ranks step from the same weights."""
        if self.world > 1:
            for t in [*net.parameters(), *net.buffers()]:
                td.broadcast(t.data, src=0)

    def barrier(self) -> None:
        if self.world > 1:
            if td.get_backend() == "nccl":
                td.barrier(device_ids=[self.local_rank])
            else:
                td.barrier()


def init(rank: int, world: int, local_rank: int, device: torch.device,
         timeout_s: float = 1800.0) -> Dist:
    """Join the process group torchrun set up (env:// rendezvous: MASTER_ADDR / MASTER_PORT
    are torchrun's): nccl on CUDA, gloo on the CPU."""
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    td.init_process_group(backend, rank=rank, world_size=world,
                          timeout=datetime.timedelta(seconds=timeout_s))
    return Dist(rank=rank, world=world, local_rank=local_rank)


def teardown() -> None:
    """Leave the process group, if this process is in one."""
    if td.is_available() and td.is_initialized():
        td.destroy_process_group()


class ObjectiveModule(nn.Module):
    """net + objective as one module whose forward is the objective: DDP wraps this, so an
    objective that calls the net's other methods (a GAN's generator and discriminator, a
    tokenizer's reconstruct) still runs inside DDP's forward and backward hooks."""

    def __init__(self, net: nn.Module, objective):
        super().__init__()
        self.net = net
        self.objective = objective  # a plain callable; a module holding no trained parameters

    def forward(self, x, cond, generator) -> torch.Tensor:
        return self.objective(self.net, x, cond, generator)  # (B,) per-example loss


def wrap(net: nn.Module, objective, dist: Dist) -> DistributedDataParallel:
    """DDP around net + objective. Rank 0's weights are broadcast at construction; gradients are
    averaged over ranks in buckets during backward. find_unused_parameters: a family whose
    objective leaves some parameter without a gradient in a step (a frozen part, an unused
    embedding row is fine) still works, at the cost of one graph walk per step."""
    ids = [dist.local_rank] if next(net.parameters()).is_cuda else None
    return DistributedDataParallel(ObjectiveModule(net, objective), device_ids=ids,
                                   find_unused_parameters=True)


def no_sync(model: nn.Module | None, sync: bool):
    """Context for one micro-batch's backward: gradients all-reduced only when `sync` (the last
    micro-batch of an accumulated step); a no-op for a single process (model None)."""
    if model is None or sync:
        return contextlib.nullcontext()
    return model.no_sync()
