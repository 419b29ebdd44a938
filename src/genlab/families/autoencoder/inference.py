"""`genlab sample` / `genlab interpolate` for the autoencoders: decoded draws of a Gaussian fitted
to the encoder's training latents (the autoencoder as a crude generative model, as the
evaluation scores it), and decoded straight lines between the codes of test-image pairs."""

from __future__ import annotations

import numpy as np
import torch

from genlab.config import is_toy
from genlab.data.processed import images_to_float
from genlab.inference import (
    PROCESSED,
    Trained,
    UsageError,
    cpu_generator,
    test_pairs,
    unsupported,
)
from genlab.metrics.autoencoder import latent_gaussian_samples

FIT_EXAMPLES = 10_000  # training examples the latent Gaussian is fitted to


def bundle(m: Trained) -> dict:
    """Files an MLflow model of m needs besides its checkpoint and test examples: the training
    examples the latent Gaussian is fitted to."""
    return {PROCESSED / m.cfg.dataset / "train_x.npy": FIT_EXAMPLES}


def training_examples(dataset: str) -> torch.Tensor:
    path = PROCESSED / dataset / "train_x.npy"
    if not path.is_file():
        raise UsageError(f"{path} is missing; run: dvc repro preprocess")
    x = np.array(np.load(path, mmap_mode="r")[:FIT_EXAMPLES])
    return torch.as_tensor(x) if is_toy(dataset) else images_to_float(x)


@torch.no_grad()
def sample(m: Trained, n: int, generator: torch.Generator, *, label: int | None = None,
           guidance: float | None = None, steps: int | None = None,
           temperature: float | None = None) -> torch.Tensor:
    unsupported(m, **{"class": label}, guidance=guidance, steps=steps, temperature=temperature)
    return latent_gaussian_samples(m.net, training_examples(m.cfg.dataset), n,
                                  cpu_generator(generator))


@torch.no_grad()
def interpolate(m: Trained, rows: int, steps: int, generator: torch.Generator) -> torch.Tensor:
    if is_toy(m.cfg.dataset):
        unsupported(m, interpolate=True)
    x = test_pairs(m.cfg.dataset, rows, generator).to(m.device)
    z = m.net.encode(x).float()
    a, b = z[0::2], z[1::2]  # (R, L) each
    t = torch.linspace(0, 1, steps, device=z.device).view(1, steps, 1)
    line = (a[:, None] * (1 - t) + b[:, None] * t).reshape(-1, z.shape[1])  # (R * steps, L)
    return m.net.decode(line).float().cpu()
