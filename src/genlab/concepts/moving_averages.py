"""Moving averages for the concepts library: re-exports genlab.training.ema and demos it.

The implementation lives in genlab.training.ema, shared with the training loop; this module only
re-exports it and adds the closed-form weights used to explain it (Adam, Kingma and Ba 2015,
Sec. 3 bias correction; EDM, Karras et al. 2022, half-life EMA).
"""

from __future__ import annotations

import torch

from genlab.training.ema import (
    ExponentialMovingAverage,
    ModelEMA,
    beta_from_half_life,
    simple_moving_average,
)

__all__ = [
    "ExponentialMovingAverage",
    "ModelEMA",
    "beta_from_half_life",
    "ema_weights",
    "moving_average_demo",
    "simple_moving_average",
]


def ema_weights(beta: float, t: int, *, bias_corrected: bool = True) -> torch.Tensor:
    """Weights (t,) of x_1..x_t after t updates: (1 - beta) beta^(t - i), maybe / (1 - beta^t)."""
    w = (1 - beta) * beta ** torch.arange(t - 1, -1, -1, dtype=torch.float64)
    return w / (1 - beta**t) if bias_corrected else w


def moving_average_demo(
    n: int = 300, *, window: int = 20, half_life: float = 10.0, generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """A noisy step signal with its SMA, raw EMA and bias-corrected EMA (each (n,), SMA padded)."""
    clean = torch.where(torch.arange(n) < n // 2, 1.0, 3.0).double()
    x = clean + 0.5 * torch.randn(n, generator=generator, dtype=torch.float64)
    ema = ExponentialMovingAverage(beta_from_half_life(half_life))
    corrected = torch.tensor([float(ema.update(float(v))) for v in x], dtype=torch.float64)
    raw = corrected * (1 - ema.beta ** torch.arange(1, n + 1, dtype=torch.float64))
    sma = torch.cat([torch.full((window - 1,), float("nan"), dtype=torch.float64),
                     simple_moving_average(x, window)])
    return {"x": x, "clean": clean, "sma": sma, "ema_raw": raw, "ema_corrected": corrected}
