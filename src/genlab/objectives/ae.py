"""Autoencoder objectives: plain reconstruction and denoising (Vincent et al. 2008).

Each is a small callable `(net, x, cond, generator) -> per-example loss (B,)`; the loop reduces.
"""

from __future__ import annotations

import torch


def _per_example_mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).float().pow(2).flatten(1).mean(1)  # (B,)


class ReconstructionLoss:
    """|| D(E(x)) - x ||^2 averaged over dimensions."""

    def __call__(self, net, x, cond=None, generator=None) -> torch.Tensor:
        return _per_example_mse(net(x), x)


class DenoisingLoss:
    """|| D(E(x + sigma * eps)) - x ||^2 with sigma drawn uniformly from `sigmas` per example."""

    def __init__(self, sigmas: tuple[float, ...]):
        assert len(sigmas) > 0 and all(s >= 0 for s in sigmas), "sigmas must be >= 0"
        self.sigmas = torch.tensor(sigmas)

    def __call__(self, net, x, cond=None, generator=None) -> torch.Tensor:
        idx = torch.randint(len(self.sigmas), (len(x),), generator=generator, device=x.device)
        sigma = self.sigmas.to(x.device)[idx].view(-1, *([1] * (x.ndim - 1)))
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return _per_example_mse(net(x + sigma * noise), x)


class ClassificationLoss:
    """Cross-entropy of the logits against the labels in `cond` (the evaluator's objective)."""

    def __init__(self, label_smoothing: float = 0.0):
        self.label_smoothing = label_smoothing

    def __call__(self, net, x, cond, generator=None) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(
            net(x).float(), cond, reduction="none", label_smoothing=self.label_smoothing
        )

