"""Flow objectives: the exact negative log-likelihood by the change of variables (Dinh et al.
2017, Eq. 3) with a standard-normal prior, on points (nats) and on 8-bit images with uniform
dequantisation and the logit transform (Sec. 4.1), in bits per dimension.

`net` is a flow of genlab.models.realnvp: net(x) -> (z (B, D), log|det dz/dx| (B,)). Images
arrive as the loop's floats in [-1, 1] (exactly k / 127.5 - 1 for a pixel level k in 0..255).
"""

from __future__ import annotations

import math

import torch

N_LEVELS = 256  # 8-bit pixels


def gaussian_log_prob(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) per example: z (B, D) -> (B,)."""
    return -0.5 * (z.square() + math.log(2 * math.pi)).flatten(1).sum(1)


def log_prob(net, x: torch.Tensor) -> torch.Tensor:
    """log p(x) = log N(f(x); 0, I) + log|det df/dx| (Eq. 3), per example (B,)."""
    z, logdet = net(x)
    return gaussian_log_prob(z) + logdet


def bits_per_dim(nll_nats: torch.Tensor, dims: int) -> torch.Tensor:
    """A negative log-likelihood in nats over `dims` dimensions -> bits per dimension."""
    return nll_nats / (dims * math.log(2))


# ---------------------------------------------------------------------------------------------
# Images: levels, dequantisation, logit transform.


def pixel_levels(x: torch.Tensor) -> torch.Tensor:
    """Floats in [-1, 1] (k / 127.5 - 1) -> the integer levels k in 0..255, as floats."""
    return ((x + 1) * 127.5).round().clamp(0, N_LEVELS - 1)


def dequantize(levels: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Uniform dequantisation: u = (k + U[0, 1)) / 256 in [0, 1), one draw per pixel."""
    noise = torch.rand(levels.shape, generator=generator, device=levels.device,
                       dtype=levels.dtype)
    return (levels + noise) / N_LEVELS


def logit_transform(u: torch.Tensor, alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """y = logit(alpha + (1 - 2 alpha) u) and log|det dy/du| per example (B,) (Sec. 4.1; the
    paper's alpha + (1 - alpha) u, made symmetric so that u -> 1 stays finite)."""
    p = alpha + (1 - 2 * alpha) * u
    y = p.log() - (-p).log1p()
    logdet = (math.log(1 - 2 * alpha) - p.log() - (-p).log1p()).flatten(1).sum(1)
    return y, logdet


def inverse_logit(y: torch.Tensor, alpha: float) -> torch.Tensor:
    """The inverse of logit_transform: u = (sigmoid(y) - alpha) / (1 - 2 alpha)."""
    return (torch.sigmoid(y) - alpha) / (1 - 2 * alpha)


def levels_to_float(u: torch.Tensor) -> torch.Tensor:
    """Dequantised u in [0, 1) -> the float of the level it falls in, floor(256 u) / 127.5 - 1
    (the inverse of dequantisation: u's bin)."""
    return (u * N_LEVELS).floor().clamp(0, N_LEVELS - 1) / 127.5 - 1


def image_log_prob(net, x: torch.Tensor, alpha: float,
                   generator: torch.Generator | None) -> torch.Tensor:
    """log p(u) of the dequantised image in [0, 1)^D, per example (B,): the flow's density of
    y = logit(...) plus the logit transform's log-det. log P(k) >= E_u[log p(u)] - D log 256."""
    y, logdet = logit_transform(dequantize(pixel_levels(x), generator), alpha)
    return log_prob(net, y) + logdet


def image_bits_per_dim(net, x: torch.Tensor, alpha: float,
                       generator: torch.Generator | None) -> torch.Tensor:
    """-(log p(u) - D log 256) / (D ln 2) per example (B,): bits/dim of the 8-bit image (a
    one-draw estimate of the dequantisation bound, the number RealNVP reports)."""
    dims = x[0].numel()
    nll = dims * math.log(N_LEVELS) - image_log_prob(net, x, alpha, generator)
    return bits_per_dim(nll, dims)


# ---------------------------------------------------------------------------------------------
# The objectives the training loop calls: (net, x, cond, generator) -> per-example loss (B,).


class FlowNLL:
    """-log p(x) in nats per example, for points (B, D)."""

    def __call__(self, net, x, cond=None, generator=None) -> torch.Tensor:
        return -log_prob(net, x)


class DequantizedNLL:
    """Bits/dim per example of 8-bit images (B, C, H, W) in [-1, 1]: uniform dequantisation
    (noise from `generator`), the logit transform with its Jacobian, the flow's exact density."""

    def __init__(self, alpha: float = 0.05):
        if not 0 < alpha < 0.5:
            raise ValueError(f"alpha must be in (0, 0.5), got {alpha}")
        self.alpha = alpha

    def __call__(self, net, x, cond=None, generator=None) -> torch.Tensor:
        return image_bits_per_dim(net, x, self.alpha, generator)
