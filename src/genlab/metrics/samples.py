"""Scoring generated samples the same way in every family: images in the evaluator's feature
space (FD, precision/recall, the floor and ceiling, predicted classes; Kynkaanniemi et al.
2019 for P/R), 2-D points against fresh draws of the true toy distribution (sliced
Wasserstein-1, RBF MMD^2, with their floor and Gaussian context numbers)."""

from __future__ import annotations

from pathlib import Path

import torch

from genlab.data.toy2d import sample_toy
from genlab.metrics.evaluator import feature_fn, load_evaluator, predict
from genlab.metrics.fd import fd_from_features
from genlab.metrics.image import batched_features, image_fd_report
from genlab.metrics.prd import precision_recall
from genlab.metrics.toy import context_numbers, mmd_rbf, sliced_wasserstein


class ImageScorer:
    """FD / precision / recall of image batches against the first n test images.

    Images are (N, C, H, W) float in [-1, 1]. `report` also gives the two context numbers of
    the protocol: fd_floor_train_vs_test (n random train images) and fd_noise_ceiling."""

    def __init__(self, evaluator: Path, test_x: torch.Tensor, train_x: torch.Tensor, *,
                 k: int = 3, batch: int = 500, seed: int = 0):
        self.net = load_evaluator(evaluator)
        self.features = feature_fn(self.net)
        self.test_x, self.train_x = test_x, train_x
        self.k, self.batch, self.seed = k, batch, seed

    def report(self, samples: torch.Tensor) -> dict[str, float]:
        """fd, precision, recall, fd_floor_train_vs_test, fd_noise_ceiling at n = len(samples)."""
        g = torch.Generator().manual_seed(self.seed)
        return image_fd_report(self.features, self.test_x[:len(samples)], self.train_x, samples,
                               k=self.k, batch=self.batch, generator=g)

    def against_test(self, images: torch.Tensor) -> dict[str, float]:
        """fd, precision, recall of `images` vs as many test images (no context numbers)."""
        test_f = batched_features(self.features, self.test_x[:len(images)], self.batch)
        f = batched_features(self.features, images, self.batch)
        precision, recall = precision_recall(test_f, f, self.k)
        return {"fd": fd_from_features(f, test_f), "precision": precision, "recall": recall}

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        return predict(self.net, images)  # (N,) class indices


def toy_report(points: torch.Tensor, toy: str, generator: torch.Generator,
               projections: int = 256) -> dict[str, float]:
    """sample_swd, sample_mmd against len(points) fresh true draws of toy2d `toy`, with
    swd_floor / swd_gaussian / mmd_floor / mmd_gaussian and swd_over_floor."""
    n = len(points)
    fresh = sample_toy(toy, n, generator)
    out = {"sample_swd": sliced_wasserstein(points, fresh, projections, generator=generator),
           "sample_mmd": mmd_rbf(points, fresh)}
    out |= context_numbers(lambda m, gen: sample_toy(toy, m, gen), n, generator,
                           n_projections=projections)
    out["swd_over_floor"] = out["sample_swd"] / out["swd_floor"]
    return out
