"""A short training run of registry models for the DDP tests, on synthetic data of each model's
shape. `python -m tests.training.ddp_worker OUT [--shards S] [--accumulate A] FAMILY.NAME ...`
trains in one process; under torchrun every rank trains its shard of the same global batches
and rank 0 writes OUT/<family>.<name>.pt (weights, EMA weights, loss history).

--shards S (one process only) is the oracle for random objectives: the objective runs on the
S shards of each global batch with shard s's generator and the losses are concatenated, which
is what S DDP ranks compute together. A deterministic objective needs no --shards.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

import numpy as np
import torch
import yaml

from genlab import families
from genlab.config import is_toy, load_section
from genlab.data.batches import image_batches, point_batches
from genlab.training import distributed
from genlab.training.distributed import Dist
from genlab.training.loop import RunSpec, train

TINY = Path(__file__).resolve().parents[1] / "e2e/params_tiny.yaml"
SEED = 3


class ShardedReference:
    """objective over a global batch = its S shards, shard s with Dist(s, S)'s generator."""

    def __init__(self, objective, shards: int):
        self.objective, self.shards, self.step = objective, shards, 0

    def set_step(self, step: int) -> None:
        self.step = step
        if hasattr(self.objective, "set_step"):
            self.objective.set_step(step)

    def __call__(self, net, x, cond=None, generator=None) -> torch.Tensor:
        parts = []
        for s in range(self.shards):
            d = Dist(rank=s, world=self.shards)
            d.seed_step(SEED, self.step)  # shard s's dropout masks, as on rank s
            parts.append(self.objective(net, d.shard(x), d.shard(cond),
                                        d.generator(SEED, self.step, x.device)))
        return torch.cat(parts)


def synthetic_batches(cfg, batch_size: int):
    """(batches, shape) on the CPU: Gaussian points, or uint8 noise images of the data set's
    shape (with labels for a conditional model)."""
    g = torch.Generator().manual_seed(0)
    if is_toy(cfg.dataset):
        points = torch.randn(256, 2, generator=g).numpy()
        return point_batches(points, batch_size, SEED, torch.device("cpu")), (2,)
    side, channels = (32, 3) if cfg.dataset == "cifar10" else (28, 1)
    shape = (256, side, side) if channels == 1 else (256, side, side, channels)
    images = torch.randint(0, 256, shape, generator=g, dtype=torch.uint8).numpy()
    labels = (np.arange(256) % 10).astype(np.int64) if getattr(cfg, "conditional", False) \
        else None
    return image_batches(images, labels, batch_size, SEED, torch.device("cpu")), \
        (channels, side, side)


def run_case(case: str, out: Path, steps: int, shards: int, dist: Dist | None,
             accumulate: int = 1) -> None:
    family_name, name = case.split(".")
    family = families.get(family_name)
    raw = yaml.safe_load(TINY.read_text())[family_name][name]
    cfg = load_section(family.config, raw, case, "cpu")
    cfg = dataclasses.replace(cfg, steps=steps, ckpt_every=steps, log_every=1,
                              warmup_steps=min(cfg.warmup_steps, steps), accumulate=accumulate)
    if family.data is not None:
        own = family.data(cfg, SEED, torch.device("cpu"))
        batches, shape = own.batches, own.shape
    else:
        batches, shape = synthetic_batches(cfg, cfg.batch_size)
    torch.manual_seed(SEED)
    built = family.build(cfg, shape, False)
    objective = ShardedReference(built.objective, shards) if shards > 1 else built.objective
    tag = f"world{dist.world if dist else 1}-shards{shards}-acc{accumulate}"
    result = train(built.net, objective, batches, cfg, RunSpec(
        seed=SEED, device=torch.device("cpu"), ckpt_path=out / "ckpt" / tag / case / "last.pt",
        config_hash="ddp-test", progress=False, dist=dist), param_groups=built.param_groups)
    state = {"model": built.net.state_dict(), "ema": result.ema.shadow.state_dict(),
             "history": result.history}
    if dist is None or dist.is_main:
        torch.save(state, out / f"{case}.pt")
    elif dist.rank == 1:  # to check that the ranks hold the same weights
        torch.save(state, out / f"{case}.rank1.pt")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("cases", nargs="+")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)  # torch threads per process
    ap.add_argument("--accumulate", type=int, default=1)  # micro-batches per step
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dist = None
    if "LOCAL_RANK" in os.environ:  # launched by torchrun
        dist = distributed.init(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]),
                                int(os.environ["LOCAL_RANK"]), torch.device("cpu"))
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        for case in args.cases:
            run_case(case, args.out, args.steps, args.shards, dist, args.accumulate)
    finally:
        distributed.teardown()


if __name__ == "__main__":
    main()
