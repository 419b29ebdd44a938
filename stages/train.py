"""Stage train@<name>: train the model of params section train.<name> with the generic loop
(resumable from checkpoints/<name>/last.pt) and write models/<name>.pt plus its loss CSV."""

from __future__ import annotations

import dataclasses
import math
import sys
from pathlib import Path

import torch

from genlab.config import IMAGE_SETS
from genlab.data.batches import image_batches, point_batches
from genlab.data.idx import DataError
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
from stages._deps import code_fingerprint


def training_data(dataset: str):
    """(train array, labels or None, example shape (C, H, W) or (D,)) of 'fashion_mnist',
    'cifar10', 'celeba' (processed by the preprocess stage) or 'toy2d/<name>'."""
    if dataset in IMAGE_SETS:
        x = load_array(PROCESSED, f"{dataset}/train_x")  # (N, H, W) or (N, H, W, C) uint8
        labels = (load_array(PROCESSED, f"{dataset}/train_y")
                  if (PROCESSED / dataset / "train_y.npy").exists() else None)
        shape = (1, *x.shape[1:]) if x.ndim == 3 else (x.shape[3], *x.shape[1:3])
        return x, labels, shape
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
    if cfg.dataset in IMAGE_SETS and not (PROCESSED / cfg.dataset / "train_x.npy").exists():
        raise DataError(f"{PROCESSED / cfg.dataset / 'train_x.npy'} is missing: enable "
                        f"data.{cfg.dataset} in params.yaml and rerun fetch + preprocess")
    if cfg.dataset.startswith("toy2d/") and rt.num_threads == 0 and device.type == "cpu":
        torch.set_num_threads(1)  # tiny MLP batches: thread hand-offs cost more than they save

    where = "train" if name in params["train"] else "presets"
    with tracker(params, f"train@{name}", {f"{where}.{name}": params[where][name],
                                           "profile": params.get("profile", "cpu"),
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
            metrics = {"train_loss": row["loss"], "lr": row["lr"]}
            if math.isfinite(row["examples_per_s"]):  # nan for a row of only the warm-up step
                metrics["examples_per_s"] = row["examples_per_s"]
            tr.log_metrics(metrics, row["step"])

        result = train(net, objective, batches, cfg, RunSpec(
            seed=seed, device=device, ckpt_path=Path(f"checkpoints/{name}/last.pt"),
            # params and code: a rerun after a code edit trains afresh (stages/_deps.py)
            config_hash=config_hash(dataclasses.asdict(cfg), seed,
                                    code_fingerprint("stages.train")), bf16=rt.bf16,
            progress=rt.progress, desc=f"train@{name}", on_log=on_log,
            on_checkpoint=lambda s: tr.flush(), compile=rt.use("compile", device.type),
            channels_last=rt.use("channels_last", device.type) and len(shape) == 3))

        # 4. Outputs: weights (raw + EMA), loss CSV, a training summary.
        out = Path(f"models/{name}.pt")
        save_atomic({"family": cfg.family, "config": dataclasses.asdict(cfg), "arch": kwargs,
                     "kind": model_kind(cfg), "model": net.state_dict(),
                     "ema": result.ema.shadow.state_dict()}, out)
        write_csv(Path(f"metrics/loss/{name}.csv"), result.history)
        summary = {"final_loss": result.history[-1]["loss"], "steps": result.steps_done,
                   "resumed_from_step": result.resumed_from,
                   "train_seconds": round(result.train_seconds, 1),
                   "warmup_seconds": round(result.warmup_seconds, 1),
                   "examples_seen": result.steps_done * cfg.batch_size}
        write_json(Path(f"metrics/train/{name}.json"), summary)
        tr.log_metrics({k: float(v) for k, v in summary.items()})
        tr.tag_outputs([out])
        print(f"train@{name}: final loss {summary['final_loss']:.5f}", file=sys.stderr)


if __name__ == "__main__":
    main(run)
