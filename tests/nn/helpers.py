"""Test helpers for the nn / backbone tests: randomising zero-initialised layers."""

from __future__ import annotations

import torch
from torch import nn


def randomize_(module: nn.Module, seed: int = 0, std: float = 0.1) -> nn.Module:
    """Overwrite every parameter with small Gaussian noise (no exact zeros left), in place, so
    zero-initialised output layers no longer hide the paths behind them."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * std)
    return module


def grad_report(module: nn.Module) -> tuple[list[str], list[str]]:
    """Names of parameters whose .grad is None, and of those whose .grad is all zero."""
    missing = [n for n, p in module.named_parameters() if p.grad is None]
    zero = [n for n, p in module.named_parameters()
            if p.grad is not None and not bool(p.grad.abs().sum() > 0)]
    return missing, zero
