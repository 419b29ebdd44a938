"""Stage evaluator: train the Fashion-MNIST CNN whose penultimate features define genlab's FD
and precision/recall, and record its accuracy and the FD protocol's two context numbers."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from genlab.config import load
from genlab.data.batches import image_batches
from genlab.data.processed import images_to_float, load_array
from genlab.metrics.evaluator import accuracy, feature_fn, save_evaluator
from genlab.metrics.image import image_fd_report
from genlab.models.classifier import EvaluatorCNN
from genlab.models.classifier_config import EvaluatorConfig
from genlab.objectives.ae import ClassificationLoss
from genlab.tracking.figures import save_loss_curve
from genlab.training.loop import RunSpec, train
from stages._common import (
    PROCESSED,
    config_hash,
    evaluate_section,
    load_params,
    main,
    runtime,
    section,
    tracker,
    write_csv,
    write_json,
)
from stages._deps import code_fingerprint

OUT = Path("models/evaluator.pt")
CKPT = Path("checkpoints/evaluator/last.pt")
METRICS = Path("metrics/evaluator.json")
LOSS_CSV = Path("metrics/loss/evaluator.csv")
FIG = Path("figures/evaluator")


def run(argv: list[str]) -> None:
    # 1. Params, validated before any data is read.
    params = load_params()
    cfg = load(EvaluatorConfig, section(params, "evaluator"), "evaluator")
    # The yardstick is the same under every profile: the evaluate section as the cpu profile
    # reads it (the gpu: block only changes how generated samples are drawn and counted).
    ev = evaluate_section(params, "cpu")
    rt, device, seed = runtime(params)
    arch = {"width": cfg.width, "depth": cfg.depth, "feature_dim": cfg.feature_dim,
            "dropout": cfg.dropout}

    with tracker(params, "evaluator", {"evaluator": section(params, "evaluator"),
                                       "seed": seed}) as tr:
        # 2. Data.
        train_x = load_array(PROCESSED, "fashion_mnist/train_x")
        train_y = load_array(PROCESSED, "fashion_mnist/train_y")
        test_x = images_to_float(load_array(PROCESSED, "fashion_mnist/test_x"))
        test_y = torch.as_tensor(load_array(PROCESSED, "fashion_mnist/test_y"))

        # 3. Train.
        torch.manual_seed(seed)
        net = EvaluatorCNN(**arch)
        batches = image_batches(train_x, train_y, cfg.batch_size, seed, device,
                                augment=cfg.augment)

        def on_log(row):
            tr.log_metrics({"train_loss": row["loss"], "lr": row["lr"]}, row["step"])

        result = train(net, ClassificationLoss(cfg.label_smoothing), batches, cfg,
                       RunSpec(seed=seed, device=device, ckpt_path=CKPT,
                               config_hash=config_hash(dataclasses.asdict(cfg), seed,
                                                       code_fingerprint("stages.evaluator")),
                               bf16=rt.bf16, progress=rt.progress, desc="evaluator",
                               on_log=on_log, on_checkpoint=lambda s: tr.flush()))

        # 4. Accuracy and the FD protocol's context numbers (raw weights: BN stats are current).
        acc = accuracy(net, test_x, test_y)
        n = min(ev.n_samples, len(test_x), len(train_x))
        g = torch.Generator().manual_seed(seed)
        real_train = images_to_float(train_x)
        fd = image_fd_report(feature_fn(net), test_x[:n], real_train, real_train[:n], k=ev.k,
                             batch=ev.batch_size, generator=g)
        metrics = {"test_accuracy": acc, "fd_floor_train_vs_test": fd["fd_floor_train_vs_test"],
                   "fd_noise_ceiling": fd["fd_noise_ceiling"],
                   "precision_train_vs_test": fd["precision"], "recall_train_vs_test": fd["recall"],
                   "n_fd": n, "steps": cfg.steps, "resumed_from_step": result.resumed_from,
                   "train_seconds": round(result.seconds, 1)}
        print(f"evaluator: test accuracy {acc:.4f}; "
              f"FD floor {metrics['fd_floor_train_vs_test']:.3f}"
              f", noise ceiling {metrics['fd_noise_ceiling']:.1f} (n={n})")

        # 5. Outputs.
        save_evaluator(net, arch, metrics, OUT)
        write_json(METRICS, metrics)
        write_csv(LOSS_CSV, result.history)
        save_loss_curve(result.history, FIG / "loss.png", "evaluator")
        tr.log_metrics({k: v for k, v in metrics.items() if isinstance(v, float | int)})
        tr.log_artifact(FIG / "loss.png")
        tr.tag_outputs([OUT, METRICS])


if __name__ == "__main__":
    main(run)
