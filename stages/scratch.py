"""Stage scratch: train the from-scratch CNN classifier and conv autoencoder (hand-written
forward and backward passes, hand-written Adam; no autograd) on Fashion-MNIST."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from genlab.config import load
from genlab.data.processed import load_array
from genlab.scratch.config import ScratchConfig
from genlab.scratch.train import train_scratch_autoencoder, train_scratch_classifier
from genlab.tracking.figures import save_grid, save_loss_curve
from stages._common import (
    PROCESSED,
    load_params,
    main,
    runtime,
    tracker,
    write_csv,
    write_json,
)

LOG_EVERY = 50  # steps averaged per row of the loss CSV


def loss_rows(losses: list[float]) -> list[dict]:
    return [{"step": i + LOG_EVERY, "loss": float(np.mean(losses[i:i + LOG_EVERY]))}
            for i in range(0, len(losses) - LOG_EVERY + 1, LOG_EVERY)] or [
        {"step": len(losses), "loss": float(np.mean(losses))}]


def knobs(cfg) -> dict:
    return {k: v for k, v in dataclasses.asdict(cfg).items()
            if k not in ("latent_channels", "limit_train")}


def run(argv: list[str]) -> None:
    params = load_params()
    cfg = load(ScratchConfig, params.get("scratch", {}), "scratch")
    rt, _, seed = runtime(params)  # the CPU allocator setting; the scratch nets run on the CPU
    progress = rt.progress
    with tracker(params, "scratch", {"scratch": params.get("scratch", {}), "seed": seed}) as tr:
        train_x = load_array(PROCESSED, "fashion_mnist/train_x")
        train_y = load_array(PROCESSED, "fashion_mnist/train_y")
        test_x = load_array(PROCESSED, "fashion_mnist/test_x")
        test_y = load_array(PROCESSED, "fashion_mnist/test_y")

        # 1. The classifier.
        n = cfg.cnn.limit_train or len(train_x)
        cnn = train_scratch_classifier(train_x[:n], train_y[:n], test_x, test_y, seed=seed,
                                       progress=progress, **knobs(cfg.cnn))
        rows = loss_rows(cnn.pop("losses"))
        write_csv(Path("metrics/loss/scratch_cnn.csv"), rows)
        save_loss_curve(rows, Path("figures/scratch_cnn/loss.png"), "scratch CNN: training loss")
        write_json(Path("metrics/scratch_cnn.json"), cnn)
        print(f"scratch CNN: test accuracy {cnn['test_accuracy']:.4f} "
              f"({cnn['train_seconds']:.0f} s training)")

        # 2. The autoencoder (scratch transposed convolution in the decoder).
        n = cfg.ae.limit_train or len(train_x)
        ae = train_scratch_autoencoder(train_x[:n], test_x, seed=seed, progress=progress,
                                       latent_channels=cfg.ae.latent_channels, **knobs(cfg.ae))
        rows = loss_rows(ae.pop("losses"))
        write_csv(Path("metrics/loss/scratch_ae.csv"), rows)
        save_loss_curve(rows, Path("figures/scratch_ae/loss.png"), "scratch AE: training loss")
        pairs = np.concatenate([ae.pop("originals"), ae.pop("reconstructions")])  # (2k, H, W)
        save_grid((pairs.clip(0, 1) * 255).round().astype(np.uint8)[:, None],
                  Path("figures/scratch_ae/reconstructions.png"), nrow=len(pairs) // 2)
        write_json(Path("metrics/scratch_ae.json"), ae)
        print(f"scratch AE: test MSE {ae['test_mse']:.5f}")
        tr.log_metrics({f"cnn.{k}": v for k, v in cnn.items()}
                       | {f"ae.{k}": v for k, v in ae.items()})


if __name__ == "__main__":
    main(run)
