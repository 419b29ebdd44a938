"""Batch sources for the training loop: data kept on the training device, batches chosen by
(seed, step) so a resumed run sees exactly the batches an uninterrupted one would."""

from __future__ import annotations

import numpy as np
import torch

from genlab.data.processed import images_to_float
from genlab.training.device import step_generator
from genlab.training.loop import BatchFn, EpochBatches


def augment_images(x: torch.Tensor, generator: torch.Generator, shift: int = 2) -> torch.Tensor:
    """Random horizontal flip per image, and one random (dy, dx) shift in [-shift, shift] per
    batch with zero ('-1' in [-1, 1] space) fill. x: (B, C, H, W)."""
    flip = torch.rand(len(x), generator=generator, device=x.device) < 0.5
    x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
    if shift:
        dy, dx = torch.randint(-shift, shift + 1, (2,), generator=generator, device=x.device)
        x = torch.nn.functional.pad(x, (shift,) * 4, value=-1.0)
        h, w = x.shape[2] - 2 * shift, x.shape[3] - 2 * shift
        x = x[:, :, shift + dy:shift + dy + h, shift + dx:shift + dx + w]
    return x


def image_batches(images: np.ndarray, labels: np.ndarray | None, batch_size: int, seed: int,
                  device: torch.device, augment: bool = False) -> BatchFn:
    """uint8 images (N, H, W[, C]) -> step -> (float (B, C, H, W) in [-1, 1], labels (B,)|None)."""
    x_all = torch.as_tensor(images).to(device)  # kept as uint8 on the device: 4x less memory
    y_all = None if labels is None else torch.as_tensor(labels).long().to(device)
    order = EpochBatches(len(x_all), batch_size, seed)

    def batches(step: int):
        idx = order(step).to(device)
        x = images_to_float(x_all[idx])
        if augment:
            x = augment_images(x, step_generator(seed + 1, step, device))
        return x, None if y_all is None else y_all[idx]

    return batches


def point_batches(points: np.ndarray, batch_size: int, seed: int, device: torch.device) -> BatchFn:
    """float (N, D) -> step -> ((B, D), None)."""
    x_all = torch.as_tensor(points).float().to(device)
    order = EpochBatches(len(x_all), batch_size, seed)
    return lambda step: (x_all[order(step).to(device)], None)
