"""Stage train@<name>: train the model of params section train.<name> with the generic loop
(resumable from checkpoints/<name>/last.pt) and write models/<name>.pt plus its loss CSV."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import torch

from genlab.data.batches import image_batches, point_batches
from genlab.data.processed import load_array
from genlab.models import diffusion
from genlab.models.ae import AE_MODELS, ae_kwargs
from genlab.objectives.ae import DenoisingLoss, ReconstructionLoss
from genlab.training.checkpoint import save_atomic
from genlab.training.loop import RunSpec, train
from stages._common import (
    PROCESSED,
    config_hash,
    main,
    model_section,
    runtime,
    tracker,
    write_csv,
    write_json,
)


def training_data(dataset: str):
    """(train array, labels or None, example shape) for 'fashion_mnist' or 'toy2d/<name>'."""
    if dataset == "fashion_mnist":
        x = load_array(PROCESSED, "fashion_mnist/train_x")  # (N, 28, 28) uint8
        return x, load_array(PROCESSED, "fashion_mnist/train_y"), (1, *x.shape[1:])
    x = load_array(PROCESSED, f"toy2d/{dataset.split('/', 1)[1]}_train")  # (N, 2) float32
    return x, None, (x.shape[1],)


def build(cfg, shape):
    """(network, objective, architecture kwargs) of a train.<name> config."""
    if cfg.family == "diffusion":
        return diffusion.build(cfg, shape)
    kwargs = ae_kwargs(cfg.model, shape)
    net = AE_MODELS[cfg.model.kind](**kwargs)
    obj = ReconstructionLoss() if cfg.objective.kind == "recon" else DenoisingLoss(
        cfg.objective.noise_levels)
    return net, obj, kwargs


def model_kind(cfg) -> str:
    return cfg.net.kind if cfg.family == "diffusion" else cfg.model.kind


def run(argv: list[str]) -> None:
    # 1. Params, validated before any data is read.
    name, params, cfg = model_section(argv, "train")
    rt, device, seed = runtime(params)
    if cfg.dataset.startswith("toy2d/") and rt.num_threads == 0 and device.type == "cpu":
        torch.set_num_threads(1)  # tiny MLP batches: thread hand-offs cost more than they save

    with tracker(params, f"train@{name}", {f"train.{name}": params["train"][name],
                                           "seed": seed}) as tr:
        # 2. Data and model.
        data, labels, shape = training_data(cfg.dataset)
        torch.manual_seed(seed)
        net, objective, kwargs = build(cfg, shape)
        labels = labels if getattr(cfg, "conditional", False) else None
        batches = (image_batches(data, labels, cfg.batch_size, seed, device) if len(shape) == 3
                   else point_batches(data, cfg.batch_size, seed, device))
        print(f"train@{name}: {sum(p.numel() for p in net.parameters()):,} parameters, "
              f"{len(data):,} examples, device {device}")

        # 3. Train (resumes from the last checkpoint of the same config).
        def on_log(row):
            tr.log_metrics({"train_loss": row["loss"], "lr": row["lr"],
                            "examples_per_s": row["examples_per_s"]}, row["step"])

        result = train(net, objective, batches, cfg, RunSpec(
            seed=seed, device=device, ckpt_path=Path(f"checkpoints/{name}/last.pt"),
            config_hash=config_hash(dataclasses.asdict(cfg), seed), bf16=rt.bf16,
            progress=rt.progress, desc=f"train@{name}", on_log=on_log,
            on_checkpoint=lambda s: tr.flush()))

        # 4. Outputs: weights (raw + EMA), loss CSV, a training summary.
        out = Path(f"models/{name}.pt")
        save_atomic({"family": cfg.family, "config": dataclasses.asdict(cfg), "arch": kwargs,
                     "kind": model_kind(cfg), "model": net.state_dict(),
                     "ema": result.ema.shadow.state_dict()}, out)
        write_csv(Path(f"metrics/loss/{name}.csv"), result.history)
        summary = {"final_loss": result.history[-1]["loss"], "steps": cfg.steps,
                   "resumed_from_step": result.resumed_from,
                   "train_seconds": round(result.seconds, 1)}
        write_json(Path(f"metrics/train/{name}.json"), summary)
        tr.log_metrics({k: float(v) for k, v in summary.items()})
        tr.tag_outputs([out])
        print(f"train@{name}: final loss {summary['final_loss']:.5f}", file=sys.stderr)


if __name__ == "__main__":
    main(run)
