"""Variational autoencoders (Kingma & Welling 2014): a conv encoder with a transposed-conv
decoder for images, MLPs for 2-D points, and the observation models p(x | z) they decode to:
Bernoulli, discretised logistic over 256 levels (Salimans et al. 2017) and Gaussian.

Conventions: images are NCHW float in [-1, 1], exactly k / 127.5 - 1 for levels k in 0..255;
points are (B, D) floats. The encoder gives the diagonal Gaussian q(z | x) as (mu, logvar),
each (B, latent); the decoder gives the raw output a likelihood head reads, split along dim 1.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from genlab.nn.mlp import mlp

# ---------------------------------------------------------------------------------------------
# Likelihood heads: decoder output -> log p(x | z) summed over dimensions (B,), the mean (what
# figures show) and a draw. Each reads `channels` decoder channels per data channel.


def _float(out: torch.Tensor) -> torch.Tensor:
    """At least float32 (a bf16 decoder output is promoted; float64 stays float64)."""
    return out.to(torch.promote_types(out.dtype, torch.float32))


class BernoulliHead(nn.Module):
    """Bernoulli on pixel intensities p = (x + 1) / 2 in [0, 1]; the output is its logits.

    On grey pixels this is the usual cross-entropy surrogate, not a distribution over the 256
    levels: its nats are not comparable with a discrete model's (no bits/dim)."""

    channels = 1
    discrete_levels = False  # log_prob is not a normalised pmf over the 256 levels

    def log_prob(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        target = (_float(x) + 1) / 2
        ll = -F.binary_cross_entropy_with_logits(_float(out), target, reduction="none")
        return ll.flatten(1).sum(1)  # (B,)

    def mean(self, out: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(_float(out)) * 2 - 1

    def sample(self, out: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        p = torch.sigmoid(_float(out))
        return torch.bernoulli(p, generator=generator) * 2 - 1


def _log_sigmoid(y: torch.Tensor) -> torch.Tensor:
    """log sigmoid(y) = min(y, 0) - log(1 + e^-|y|), stable for any y. F.logsigmoid's CPU
    kernel is ~3x slower, and this runs on all k * B decoded images of the IWAE bound."""
    return y.clamp(max=0) - torch.log(1 + torch.exp(-y.abs()))


class DiscretisedLogisticHead(nn.Module):
    """Discretised logistic over the 256 levels of [-1, 1] (PixelCNN++, Salimans et al. 2017,
    Sec. 2.1): P(k) = sigma((x + h - mu) / s) - sigma((x - h - mu) / s) with bin half-width
    h = 1 / 255, the edge bins extended to -inf (k = 0) and +inf (k = 255), so the 256
    probabilities sum to 1. The log-scale is read from the decoder per pixel ("per_pixel") or
    is one learned scalar ("shared"); it is clamped below at -7 as in PixelCNN++."""

    discrete_levels = True  # log_prob is a pmf over the 256 levels: nats -> bits/dim directly
    HALF_BIN = 1.0 / 255.0  # levels k / 127.5 - 1 are 2 / 255 apart
    MIN_LOG_SCALE = -7.0

    def __init__(self,
                 scale: str = "per_pixel",   # per_pixel: decoder output; shared: one parameter
                 init_log_scale: float = -2.0):  # start of the shared log-scale
        super().__init__()
        assert scale in ("per_pixel", "shared"), scale
        self.scale = scale
        self.channels = 2 if scale == "per_pixel" else 1
        if scale == "shared":
            self.log_scale = nn.Parameter(torch.tensor(float(init_log_scale)))

    def _mu_log_s(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = _float(out)
        if self.scale == "per_pixel":
            mu, log_s = out.chunk(2, dim=1)
        else:
            # one scalar, broadcast: the exp and log below run once, not per pixel
            mu, log_s = out, self.log_scale.to(out.dtype).reshape([1] * out.ndim)
        return mu, log_s.clamp(min=self.MIN_LOG_SCALE)

    def log_prob(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        mu, log_s = self._mu_log_s(out)
        x = x.to(mu.dtype)
        inv_s = torch.exp(-log_s)
        h_s = self.HALF_BIN * inv_s  # the bin half-width in scale units
        c = (x - mu) * inv_s
        log_cdf_plus = _log_sigmoid(c + h_s)  # log CDF at the upper edge
        log_sf_minus = _log_sigmoid(h_s - c)  # log (1 - CDF) at the lower edge
        # inner levels: log(sigma(a) - sigma(b)) = log sigma(a) + log sigma(-b) +
        # log(1 - e^(b - a)) for a > b, no cancellation in float32 even far in the tails.
        # Level 0 keeps only the first term (its bin reaches -inf), level 255 only the second.
        # (torch.where, not masks times terms: this runs on k * B images for the IWAE bound.)
        log_width = torch.log(-torch.expm1(-2 * h_s))
        edge = 1.0 - self.HALF_BIN  # halfway between an outermost level and its neighbour
        ll = torch.where(x < -edge, log_cdf_plus,
                         torch.where(x > edge, log_sf_minus,
                                     log_cdf_plus + log_sf_minus + log_width))
        return ll.flatten(1).sum(1)  # (B,)

    def mean(self, out: torch.Tensor) -> torch.Tensor:
        return self._mu_log_s(out)[0].clamp(-1, 1)  # the logistic's mean, on the pixel range

    def sample(self, out: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        mu, log_s = self._mu_log_s(out)
        u = torch.rand(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        u = u.clamp(1e-5, 1 - 1e-5)
        y = mu + log_s.exp() * (torch.log(u) - torch.log1p(-u))  # logistic by inverse CDF
        return (((y.clamp(-1, 1) + 1) * 127.5).round() / 127.5 - 1)  # nearest level


class GaussianHead(nn.Module):
    """Diagonal Gaussian N(mu(z), sigma^2) for points. variance: "learned" (sigma(z) from the
    decoder), "shared" (one learned sigma per data dimension) or "fixed" (sigma = `sigma`).
    Learned sigmas are sigma_min + softplus(raw), so the likelihood stays bounded."""

    discrete_levels = False

    def __init__(self,
                 dim: int = 2,                  # data dimensions
                 variance: str = "learned",     # learned | shared | fixed
                 sigma: float = 0.1,            # fixed: the std; shared: its start
                 sigma_min: float = 1e-3):      # floor of a learned std
        super().__init__()
        assert variance in ("learned", "shared", "fixed"), variance
        assert sigma > sigma_min >= 0, (sigma, sigma_min)
        self.variance, self.sigma, self.sigma_min = variance, sigma, sigma_min
        self.channels = 2 if variance == "learned" else 1
        if variance == "shared":
            raw = math.log(math.expm1(sigma - sigma_min))  # softplus^-1
            self.raw_sigma = nn.Parameter(torch.full((dim,), raw))

    def _mu_sigma(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = _float(out)
        if self.variance == "learned":
            mu, raw = out.chunk(2, dim=1)
            return mu, self.sigma_min + F.softplus(raw)
        if self.variance == "shared":
            return out, (self.sigma_min + F.softplus(self.raw_sigma.to(out.dtype))).expand_as(out)
        return out, torch.full_like(out, self.sigma)

    def log_prob(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        mu, sigma = self._mu_sigma(out)
        ll = -0.5 * ((x - mu) / sigma) ** 2 - torch.log(sigma) - 0.5 * math.log(2 * math.pi)
        return ll.flatten(1).sum(1)  # (B,)

    def mean(self, out: torch.Tensor) -> torch.Tensor:
        return self._mu_sigma(out)[0]

    def sample(self, out: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        mu, sigma = self._mu_sigma(out)
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + sigma * eps


# ---------------------------------------------------------------------------------------------
# The VAE: encoder -> q(z | x), decoder + head -> p(x | z); the prior is N(0, I).


class VAE(nn.Module):
    """encode(x) -> (mu, logvar) (B, latent) each; decode(z) -> the head's input;
    log_likelihood(x, z) -> log p(x | z) (B,); forward(x) -> mean of p(x | z = mu(x))."""

    latent: int
    encoder: nn.Module
    decoder: nn.Module
    head: nn.Module

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar  # (B, latent) each

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)  # (B, head.channels * C, ...)

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.head.log_prob(self.decode(z), x)  # (B,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head.mean(self.decode(self.encode(x)[0]))


def image_head(likelihood: str, logistic_scale: str) -> nn.Module:
    assert likelihood in ("bernoulli", "logistic"), likelihood
    return BernoulliHead() if likelihood == "bernoulli" else DiscretisedLogisticHead(logistic_scale)


class ConvVAE(VAE):
    """Images (B, C, H, W) -> q(z | x) -> p(x | z) over (B, C, H, W).

    Encoder: stride-2 convs (k 3, GroupNorm, SiLU) halving the side per level, then a linear
    layer to (mu, logvar). Decoder: a linear layer to the smallest side, then stride-2
    transposed convs back up (output_padding restores odd sides, 7 -> 14 -> 28); the last one
    writes the head's channels at full resolution, so no conv runs at full width on the
    largest side (the importance-weighted bound decodes hundreds of z per image)."""

    def __init__(self,
                 in_channels: int = 1,                  # image channels
                 size: int = 28,                        # image side (square)
                 widths: tuple[int, ...] = (16, 32),    # channels per stride-2 level
                 latent: int = 16,                      # dimensions of z
                 likelihood: str = "logistic",          # bernoulli | logistic
                 logistic_scale: str = "per_pixel"):    # per_pixel | shared
        super().__init__()
        self.latent = latent
        self.head = image_head(likelihood, logistic_scale)
        sides = [size]
        for _ in widths:
            sides.append((sides[-1] + 1) // 2)  # conv k=3, s=2, p=1: ceil(side / 2)
        self.sides, self.widths = sides, tuple(widths)
        chans = [in_channels, *widths]
        enc = []
        for c_in, c_out in zip(chans[:-1], chans[1:], strict=True):
            enc += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1),
                    nn.GroupNorm(8 if c_out % 8 == 0 else 1, c_out), nn.SiLU()]
        self.encoder = nn.Sequential(*enc, nn.Flatten(),
                                     nn.Linear(widths[-1] * sides[-1] ** 2, 2 * latent))
        dec = [nn.Linear(latent, widths[-1] * sides[-1] ** 2),
               nn.Unflatten(1, (widths[-1], sides[-1], sides[-1]))]  # (B, w, s, s)
        outs = [self.head.channels * in_channels, *widths[:-1]]  # channels written per level
        for i in range(len(widths), 0, -1):
            out_pad = sides[i - 1] - (2 * sides[i] - 1)  # (s - 1) * 2 - 2 + 3 + op = target
            dec += [nn.SiLU(), nn.ConvTranspose2d(chans[i], outs[i - 1], 3, stride=2, padding=1,
                                                  output_padding=out_pad)]
        self.decoder = nn.Sequential(*dec)


class MLPVAE(VAE):
    """Points (B, D) -> q(z | x) -> Gaussian p(x | z). depth = 0 makes encoder and decoder
    linear (the linear-Gaussian VAE, whose log p(x) is closed form)."""

    def __init__(self,
                 dim: int = 2,                  # data dimensions
                 hidden: int = 256,             # hidden width of encoder and decoder
                 depth: int = 3,                # hidden layers per side (0: linear)
                 latent: int = 2,               # dimensions of z
                 likelihood: str = "gaussian",  # points: gaussian only
                 variance: str = "learned",     # learned | shared | fixed (GaussianHead)
                 sigma: float = 0.1,            # fixed std, or the shared std's start
                 sigma_min: float = 1e-3):      # floor of a learned std
        super().__init__()
        assert likelihood == "gaussian", f"points: gaussian, not {likelihood}"
        self.latent = latent
        self.head = GaussianHead(dim, variance, sigma, sigma_min)
        self.encoder = mlp(dim, hidden, depth, 2 * latent)
        self.decoder = mlp(latent, hidden, depth, self.head.channels * dim)


VAE_MODELS = {"conv": ConvVAE, "mlp": MLPVAE}


def vae_kwargs(cfg, data_shape: tuple[int, ...]) -> dict:
    """Constructor kwargs of VAE_MODELS[cfg.kind] for one example's shape ((C, H, W) or (D,))."""
    if cfg.kind == "conv":
        assert len(data_shape) == 3 and data_shape[1] == data_shape[2], data_shape
        return {"in_channels": data_shape[0], "size": data_shape[1], "widths": tuple(cfg.widths),
                "latent": cfg.latent, "likelihood": cfg.likelihood,
                "logistic_scale": cfg.logistic_scale}
    assert len(data_shape) == 1, data_shape
    return {"dim": data_shape[0], "hidden": cfg.hidden, "depth": cfg.depth, "latent": cfg.latent,
            "likelihood": cfg.likelihood, "variance": cfg.variance, "sigma": cfg.sigma,
            "sigma_min": cfg.sigma_min}
