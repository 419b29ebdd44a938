"""Stage train-<family>@<name>: train model <name> of a family's params section with the
generic loop (resumable from checkpoints/<name>/last.pt); write models/<name>.pt, its loss CSV
and a training summary. `python -m stages.train <family> <name>`; with runtime.processes > 1
it runs itself under torchrun and trains with DDP (stages/launch.py), rank 0 writing every
output."""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from pathlib import Path

import torch

from genlab.config import IMAGE_SETS, ConfigError, is_toy
from genlab.data.batches import image_batches, point_batches
from genlab.data.processed import load_array
from genlab.errors import DataError, TrainingError
from genlab.training.loop import RunSpec, train
from stages import launch
from stages._common import (
    PROCESSED,
    Outputs,
    check_writable,
    config_hash,
    main,
    model_section,
    runtime,
    tracker,
)
from stages._deps import code_fingerprint, stage_modules


def training_data(dataset: str):
    """(train array, labels or None, example shape (C, H, W) or (D,)) of a processed data set
    (data/processed/<dataset>/train_x.npy: uint8 images, or float32 points for toy2d/<name>)."""
    x = load_array(PROCESSED, f"{dataset}/train_x")  # (N, H, W), (N, H, W, C) or (N, D)
    has_labels = (PROCESSED / dataset / "train_y.npy").exists()
    labels = load_array(PROCESSED, f"{dataset}/train_y") if has_labels else None
    if is_toy(dataset):
        return x, None, (x.shape[1],)
    shape = (1, *x.shape[1:]) if x.ndim == 3 else (x.shape[3], *x.shape[1:3])
    return x, labels, shape


def run(argv: list[str]) -> None:
    # 1. Params, validated before any data is read or any process started.
    family, name, params, cfg = model_section(argv, "train")
    rt, device, seed = runtime(params)
    launch.check(rt, cfg.batch_size, f"{family.name}.{name}.batch_size")
    if launch.wanted(rt):  # several processes: this one only waits on torchrun
        code = launch.relaunch(rt, "stages.train", argv)
        if code:
            raise TrainingError(f"train-{family.name}@{name}: torchrun exited with status "
                                f"{code} (a worker failed; its error is above); the last "
                                "good checkpoint is kept, a rerun resumes from it")
        return
    with launch.process_group(device) as (dist, device):
        train_model(family, name, params, cfg, rt, device, seed, dist)


def train_model(family, name, params, cfg, rt, device, seed, dist) -> None:
    """The stage's work in one process (one DDP rank when dist is set)."""
    main_rank = dist is None or dist.is_main
    check_writable(Path("models"), Path("checkpoints") / name, Path("metrics/loss"),
                   Path("metrics/train"))
    dataset = getattr(cfg, "dataset", None)
    if family.data is None and dataset in IMAGE_SETS and not (
            PROCESSED / dataset / "train_x.npy").exists():
        raise DataError(f"{PROCESSED / dataset / 'train_x.npy'} is missing: enable "
                        f"data.{dataset} in params.yaml and rerun fetch + preprocess")
    stage = f"train-{family.name}@{name}"
    logged = {f"{family.name}.{name}": dataclasses.asdict(cfg), "seed": seed,
              "profile": params.get("profile", "cpu")}

    with tracker(params, stage, logged, active=main_rank, system_metrics=True) as tr:
        # 2. Data and model.
        def check_batch(examples: int) -> None:
            if cfg.batch_size > examples:
                raise ConfigError(f"{family.name}.{name}.batch_size: {cfg.batch_size} is "
                                  f"larger than the training data ({examples:,} examples)")
            parts = cfg.accumulate * (dist.world if dist else 1)
            if cfg.batch_size % parts:
                raise ConfigError(f"{family.name}.{name}.accumulate: batch_size "
                                  f"{cfg.batch_size} does not split into {parts} equal "
                                  "micro-batches (accumulate x DDP processes)")

        if family.data is not None:  # the family's own data (token streams, latents)
            own = family.data(cfg, seed, device)
            batches, shape, examples = own.batches, own.shape, own.examples
            check_batch(examples)
        else:
            data, labels, shape = training_data(cfg.dataset)
            examples = len(data)
            check_batch(examples)
            labels = labels if getattr(cfg, "conditional", False) else None
            batches = (image_batches(data, labels, cfg.batch_size, seed, device)
                       if len(shape) == 3 else point_batches(data, cfg.batch_size, seed, device))
        nhwc = rt.use("channels_last", device.type) and len(shape) == 3
        torch.manual_seed(seed)
        built = family.build(cfg, shape, nhwc)
        if main_rank:
            print(f"{stage}: {sum(p.numel() for p in built.net.parameters()):,} parameters, "
                  f"{examples:,} examples, device {device}"
                  f"{f', {dist.world} DDP processes' if dist else ''}")

        # 3. Train (resumes from the last checkpoint of the same config and code).
        def on_log(row):
            metrics = {"train_loss": row["loss"], "lr": row["lr"]}
            if math.isfinite(row["examples_per_s"]):  # nan for a row of only the warm-up step
                metrics["examples_per_s"] = row["examples_per_s"]
            tr.log_metrics(metrics, row["step"])

        code = code_fingerprint(stage_modules(["stages.train", family.name]))
        result = train(built.net, built.objective, batches, cfg, RunSpec(
            seed=seed, device=device, ckpt_path=Path(f"checkpoints/{name}/last.pt"),
            config_hash=config_hash(dataclasses.asdict(cfg), seed, code), bf16=rt.bf16,
            progress=rt.progress and main_rank, desc=stage, on_log=on_log,
            on_checkpoint=lambda s: tr.flush(), compile=rt.use("compile", device.type),
            channels_last=nhwc, dist=dist), param_groups=built.param_groups)
        if not main_rank:  # rank 0 publishes; the others hold the same weights
            return

        # 4. Outputs: weights (raw + EMA), loss CSV, a training summary; never non-finite
        #    weights (the previous models/<name>.pt, if any, stays).
        for part, module in (("weights", built.net), ("EMA weights", result.ema.shadow)):
            bad = [k for k, t in module.state_dict().items()
                   if t.is_floating_point() and not bool(torch.isfinite(t).all())]
            if bad:
                raise TrainingError(f"{stage}: {part} are not all finite ({bad[0]}"
                                    f"{f' and {len(bad) - 1} more' if len(bad) > 1 else ''}); "
                                    "nothing published")
        out = Path(f"models/{name}.pt")
        losses, summary_path = Path(f"metrics/loss/{name}.csv"), Path(f"metrics/train/{name}.json")
        summary = {"final_loss": result.history[-1]["loss"], "steps": result.steps_done,
                   "resumed_from_step": result.resumed_from,
                   "train_seconds": round(result.train_seconds, 1),
                   "warmup_seconds": round(result.warmup_seconds, 1),
                   "skipped_steps": result.bad_steps,
                   "examples_seen": result.steps_done * cfg.batch_size}
        with Outputs(out, losses, summary_path) as outputs:  # all three or none
            outputs.model(out, {"family": family.name, "config": dataclasses.asdict(cfg),
                                "arch": built.arch, "model": built.net.state_dict(),
                                "ema": result.ema.shadow.state_dict()})
            outputs.csv(losses, result.history)
            outputs.json(summary_path, summary)
        tr.log_metrics({k: float(v) for k, v in summary.items()})
        tr.tag_outputs([out])
        if tr.enabled:  # the model as an MLflow model in this run (tracking/mlflow_model.py)
            log_model(tr, stage, name)
        print(f"{stage}: final loss {summary['final_loss']:.5f}", file=sys.stderr)


def log_model(tr, stage: str, name: str) -> None:
    """Save models/<name>.pt as an MLflow model (checkpoints/<name>/mlflow-model, kept for a
    replay after a store outage) and log it as the run's `model` artifact. A failure here
    is a warning: the stage's outputs are published already."""
    from genlab.tracking.mlflow_model import save

    t0 = time.perf_counter()
    try:
        folder = save(name, Path(f"checkpoints/{name}/mlflow-model"))
    except Exception as e:  # noqa: BLE001 - reported, the trained model stands
        print(f"{stage}: warning: no MLflow model logged ({type(e).__name__}: {e})",
              file=sys.stderr)
        return
    tr.log_artifact(folder, "model")
    print(f"{stage}: MLflow model logged ({time.perf_counter() - t0:.1f} s)", file=sys.stderr)


if __name__ == "__main__":
    main(run)
