"""Moving averages: simple, exponential with bias correction, model EMA by half-life (EDM 2022)."""

from __future__ import annotations

import copy

import torch
from torch import nn


def simple_moving_average(x: torch.Tensor, window: int) -> torch.Tensor:
    """Mean of each length-`window` slice of the 1-D series `x`: shape (len(x) - window + 1,)."""
    assert x.ndim == 1, "simple_moving_average takes a 1-D series"
    assert 1 <= window <= len(x), f"window must be in [1, {len(x)}], got {window}"
    c = torch.cumsum(torch.cat([x.new_zeros(1), x]), 0)
    return (c[window:] - c[:-window]) / window


def beta_from_half_life(half_life: float, step_size: float = 1.0) -> float:
    """Decay per update so that a sample's weight halves after `half_life` units.

    EDM (Appendix D / training_loop) states the EMA as a half-life in images: with batch size B
    each update advances B images, so beta = 0.5 ** (B / half_life).
    """
    assert half_life > 0, "half_life must be > 0"
    return 0.5 ** (step_size / half_life)


class ExponentialMovingAverage:
    """m_t = beta * m_{t-1} + (1 - beta) * x_t with Adam's bias correction m_t / (1 - beta^t).

    Without the correction the average starts at 0 and is biased low for the first ~1/(1-beta)
    updates; the corrected value is the exact weighted mean of what has been seen.
    """

    def __init__(self, beta: float):
        assert 0.0 <= beta < 1.0, f"beta must be in [0, 1), got {beta}"
        self.beta = beta
        self.raw: torch.Tensor | float = 0.0  # the uncorrected running value
        self.t = 0  # number of updates seen

    def update(self, x: torch.Tensor | float) -> torch.Tensor | float:
        self.t += 1
        self.raw = self.beta * self.raw + (1.0 - self.beta) * x
        return self.value

    @property
    def value(self) -> torch.Tensor | float:
        assert self.t > 0, "no value has been averaged yet"
        return self.raw / (1.0 - self.beta**self.t)


class ModelEMA(nn.Module):
    """A shadow copy of a network whose weights track an EMA of the trained weights.

    Buffers (e.g. BatchNorm running stats) are copied, not averaged. The shadow network is used
    for evaluation and sampling; its state_dict is saved in checkpoints.
    """

    def __init__(self, model: nn.Module, half_life: float, batch_size: int,
                 rampup: float = 0.0):
        super().__init__()
        assert rampup >= 0, f"rampup must be >= 0, got {rampup}"
        self.shadow = copy.deepcopy(model).eval().requires_grad_(False)
        self.half_life, self.batch_size, self.rampup = half_life, batch_size, rampup
        self.beta = beta_from_half_life(half_life, batch_size)

    def beta_at(self, images_seen: int) -> float:
        """The decay of the update made after `images_seen` training images. With a ramp-up
        the half-life is min(half_life, rampup * images_seen) (EDM's training loop,
        ema_rampup_ratio): early on the average forgets the random initialisation quickly,
        instead of keeping 0.5 ** (images / half_life) of it (16% after 2.6 half-lives)."""
        if self.rampup == 0:
            return self.beta
        half_life = min(self.half_life, self.rampup * max(images_seen, 1))
        return beta_from_half_life(half_life, self.batch_size)

    @torch.no_grad()
    def update(self, model: nn.Module, beta: float | None = None) -> None:
        beta = self.beta if beta is None else beta
        shadow = list(self.shadow.parameters())
        # One fused multi-tensor kernel instead of one launch per parameter tensor.
        targets = [p.detach().to(e.dtype)
                   for e, p in zip(shadow, model.parameters(), strict=True)]
        torch._foreach_lerp_(shadow, targets, 1.0 - beta)
        for b_ema, b in zip(self.shadow.buffers(), model.buffers(), strict=True):
            b_ema.copy_(b)
