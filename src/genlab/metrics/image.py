"""Image sample metrics: per-image MSE/PSNR, and an FD + improved precision/recall report with
its train-vs-test floor and per-pixel Gaussian noise ceiling (FID-style, Heusel et al. 2017)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from genlab.metrics.fd import fd_from_features
from genlab.metrics.prd import precision_recall

FeatureFn = Callable[[torch.Tensor], torch.Tensor]


def mse_psnr(
    x: torch.Tensor, y: torch.Tensor, data_range: float = 2.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image MSE (B,) and PSNR in dB (B,) of x, y (B, C, H, W); range 2 for images in [-1, 1].

    PSNR = 10 log10(data_range^2 / MSE); identical images give +inf.
    """
    if x.shape != y.shape or x.ndim < 2:
        raise ValueError(f"x and y must be batches of equal shape, got {x.shape} and {y.shape}")
    if data_range <= 0:
        raise ValueError(f"data_range must be > 0, got {data_range}")
    mse = (x.double() - y.double()).square().flatten(1).mean(dim=1)  # (B,)
    psnr = 10.0 * torch.log10(data_range**2 / mse)  # mse = 0 -> inf
    return mse, psnr


def gaussian_noise_images(
    mean_img: torch.Tensor, std_img: torch.Tensor, n: int, generator: torch.Generator
) -> torch.Tensor:
    """n images of independent per-pixel Gaussian noise N(mean_img, std_img^2), clipped to [-1, 1].

    mean_img, std_img (C, H, W) -> (n, C, H, W); drawn on the generator's device.
    """
    if mean_img.shape != std_img.shape or mean_img.ndim != 3:
        raise ValueError(
            f"mean_img, std_img must both be (C, H, W): {mean_img.shape}, {std_img.shape}"
        )
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    z = torch.randn(n, *mean_img.shape, generator=generator, device=generator.device)
    return (mean_img.to(z) + std_img.to(z) * z).clamp(-1.0, 1.0)


@torch.no_grad()
def batched_features(feature_fn: FeatureFn, images: torch.Tensor, batch: int = 500) -> torch.Tensor:
    """feature_fn applied to images (N, C, H, W) in batches under no_grad -> (N, D) on the CPU."""
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    return torch.cat([feature_fn(chunk.float()).detach().cpu() for chunk in images.split(batch)])


def pixel_mean_std(images: torch.Tensor, batch: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel mean and standard deviation (C, H, W) of images (N, C, H, W), in float64."""
    total = torch.zeros(images.shape[1:], dtype=torch.float64)
    total_sq = torch.zeros_like(total)
    for chunk in images.split(batch):
        chunk = chunk.detach().cpu().double()
        total += chunk.sum(dim=0)
        total_sq += chunk.square().sum(dim=0)
    mean = total / images.shape[0]
    var = (total_sq / images.shape[0] - mean.square()).clamp_min(0.0)
    return mean, var.sqrt()


def image_fd_report(
    feature_fn: FeatureFn,
    real_test: torch.Tensor,
    real_train: torch.Tensor,
    fake: torch.Tensor,
    k: int = 3,
    batch: int = 500,
    *,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """FD and improved precision/recall of fake vs real_test, with two reference points.

    All images are (N, C, H, W) floats in [-1, 1]; feature_fn maps such a batch to (B, D).
    fd_floor_train_vs_test: len(real_test) random train images vs test (the noise level of FD).
    fd_noise_ceiling: as many per-pixel Gaussian noise images, with the train pixel mean/std,
    vs test. `generator` (CPU) picks the train subset and draws the noise; None means seed 0.
    """
    n_test = real_test.shape[0]
    if real_train.shape[0] < n_test:
        raise ValueError(f"real_train needs >= len(real_test) = {n_test} images for the floor")
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    test_f = batched_features(feature_fn, real_test, batch)
    fake_f = batched_features(feature_fn, fake, batch)
    precision, recall = precision_recall(test_f, fake_f, k=k, batch=max(batch, 1024))
    subset = torch.randperm(real_train.shape[0], generator=gen)[:n_test]
    train_f = batched_features(feature_fn, real_train[subset.to(real_train.device)], batch)
    mean_img, std_img = pixel_mean_std(real_train, batch)
    noise = gaussian_noise_images(mean_img, std_img, n=n_test, generator=gen)
    noise_f = batched_features(feature_fn, noise.to(real_test.device), batch)
    return {
        "fd": fd_from_features(fake_f, test_f),
        "precision": precision,
        "recall": recall,
        "fd_floor_train_vs_test": fd_from_features(train_f, test_f),
        "fd_noise_ceiling": fd_from_features(noise_f, test_f),
    }
