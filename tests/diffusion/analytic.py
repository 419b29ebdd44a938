"""Test oracles: exact denoisers, scores and eps-predictors of Gaussian data, and a tiny MLP.

For data y ~ N(mu, s^2 I) and x = y + sigma n: E[y | x] = (s^2 x + sigma^2 mu) / (s^2 + sigma^2),
score = (mu - x) / (s^2 + sigma^2). For x_t = a y + b eps (a = sqrt(a_bar), b = sqrt(1 - a_bar)):
E[eps | x_t] = b (x_t - a mu) / (a^2 s^2 + b^2).
"""

from __future__ import annotations

import torch
from torch import nn


def _col(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    v = torch.as_tensor(v, dtype=x.dtype)
    return v.expand(x.shape[0]).reshape(-1, *([1] * (x.ndim - 1))) if v.ndim == 0 else \
        v.reshape(-1, *([1] * (x.ndim - 1)))


class Gaussian:
    """y ~ N(mu, s^2 I) in D dims; exact denoiser / score / eps-model."""

    def __init__(self, mu, s: float):
        self.mu, self.s = torch.as_tensor(mu, dtype=torch.float64), s

    def denoiser(self, x, sigma, class_labels=None):
        var = _col(sigma, x) ** 2
        return (self.s**2 * x + var * self.mu) / (self.s**2 + var)

    def score(self, x, sigma, class_labels=None):
        return (self.mu - x) / (self.s**2 + _col(sigma, x) ** 2)

    def eps_model(self, alphas_cumprod):
        def eps(x_t, t, class_labels=None):
            a_bar = _col(alphas_cumprod[t], x_t)
            a, b = a_bar.sqrt(), (1 - a_bar).sqrt()
            return b * (x_t - a * self.mu) / (a**2 * self.s**2 + b**2)
        return eps


class Mixture1D:
    """y ~ sum_k w_k N(m_k, s_k^2) in 1-D; exact denoiser for x (B, 1)."""

    def __init__(self, weights, means, stds):
        self.w, self.m, self.s = (torch.tensor(v, dtype=torch.float64)
                                  for v in (weights, means, stds))

    def denoiser(self, x, sigma, class_labels=None):
        var = self.s**2 + _col(sigma, x) ** 2  # (B, K) marginal variances
        log_r = self.w.log() - 0.5 * ((x - self.m) ** 2 / var + var.log())
        r = (log_r - log_r.logsumexp(1, keepdim=True)).exp()  # responsibilities
        per_k = (self.s**2 * x + (var - self.s**2) * self.m) / var  # per-component E[y | x]
        return (r * per_k).sum(1, keepdim=True)


class ClassGaussians:
    """Class c: y ~ N(means[c], s^2 I), classes equally likely; label -1 -> the mixture."""

    def __init__(self, means, s: float):
        self.means, self.s = torch.as_tensor(means, dtype=torch.float64), s  # (K, D)

    def denoiser(self, x, sigma, class_labels):
        var = _col(sigma, x) ** 2  # (B, 1)
        shrink = (self.s**2 * x[:, None] + var[:, None] * self.means) / (self.s**2 + var[:, None])
        log_r = -0.5 * ((x[:, None] - self.means) ** 2).sum(-1) / (self.s**2 + var)  # (B, K)
        r = (log_r - log_r.logsumexp(1, keepdim=True)).exp()
        uncond = (r[..., None] * shrink).sum(1)
        cond = shrink[torch.arange(len(x)), class_labels.clamp(min=0)]
        return torch.where((class_labels >= 0)[:, None], cond, uncond)


class TinyMLP(nn.Module):
    """Backbone net(x (B, D), noise_labels (B,), class_labels (B,) or None) -> (B, D)."""

    def __init__(self, dim: int = 2, num_classes: int = 3, hidden: int = 16):
        super().__init__()
        self.embed = nn.Embedding(num_classes + 1, 4)  # row 0: the null label -1
        self.body = nn.Sequential(nn.Linear(dim + 1 + 4, hidden), nn.SiLU(),
                                  nn.Linear(hidden, dim))

    def forward(self, x, noise_labels, class_labels=None):
        if class_labels is None:
            class_labels = torch.full((len(x),), -1, dtype=torch.long)
        h = torch.cat([x, noise_labels[:, None].to(x.dtype), self.embed(class_labels + 1)], 1)
        return self.body(h)


def tiny_mlp(seed: int = 0, **kwargs) -> TinyMLP:
    """A float64 TinyMLP initialised under torch.manual_seed(seed), global RNG restored."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return TinyMLP(**kwargs).double()
