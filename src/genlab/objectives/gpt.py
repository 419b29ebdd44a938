"""The next-token objective of autoregressive models: per-example mean cross-entropy (nats)
of token t + 1 given tokens <= t, optionally over a mask of the positions that count (the
answers of a recall task)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


class NextTokenLoss:
    """(net, x (B, T + 1) int64, mask (B, T) or None, generator) -> loss (B,) in nats/token."""

    def __call__(self, net, x: torch.Tensor, mask: torch.Tensor | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        inputs, targets = x[:, :-1], x[:, 1:]  # (B, T) each
        logits = net(inputs)  # (B, T, V)
        nll = F.cross_entropy(logits.float().transpose(1, 2), targets, reduction="none")  # (B, T)
        if mask is None:
            return nll.mean(1)
        mask = mask.to(nll.dtype)
        return (nll * mask).sum(1) / mask.sum(1).clamp_min(1.0)
