"""The token prior's objective: next-token cross-entropy of a tokenizer's code grid after its
class token, with the class replaced by the null token at a rate `label_dropout` so that one
network also learns the unconditional prior that classifier-free guidance needs (Ho &
Salimans 2022, Sec. 3.2)."""

from __future__ import annotations

import torch

from genlab.objectives.gpt import NextTokenLoss


class ClassPriorLoss:
    """(prior, grid (B, h w) int64, labels (B,), generator) -> loss (B,) in nats per code."""

    def __init__(self, label_dropout: float = 0.1):
        assert 0.0 <= label_dropout <= 1.0, "label_dropout must be in [0, 1]"
        self.label_dropout = label_dropout
        self.next_token = NextTokenLoss()

    def __call__(self, prior, grid: torch.Tensor, labels: torch.Tensor,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        drop = None
        if self.label_dropout > 0:
            drop = torch.rand(len(grid), generator=generator,
                              device=grid.device) < self.label_dropout  # (B,)
        x = prior.sequence(grid, labels, drop)  # (B, 1 + h w): every target is a code
        return self.next_token(prior, x)
