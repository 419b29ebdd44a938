"""Importance sampling, self-normalised IS, Kish's effective sample size and the IWAE bound.

Owen, Monte Carlo theory, methods and examples (2013), Ch. 9 (IS, SNIS, Kish's ESS);
Burda, Grosse and Salakhutdinov, Importance weighted autoencoders (2016), Eq. 8.
Weights are handled in log space throughout: log_w = log p(x) - log q(x).
"""

from __future__ import annotations

import math

import torch


def log_mean_exp(x: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """log(1/n sum_i exp(x_i)) along `dim`, stable for large |x|."""
    return torch.logsumexp(x, dim=dim) - math.log(x.shape[dim])


def iwae_bound(log_w: torch.Tensor) -> torch.Tensor:
    """IWAE bound L_K = log 1/K sum_k w_k per data point; log_w (K, B) -> (B,) (Burda 2016, Eq. 8).

    log_w[k, b] = log p(x_b, z_kb) - log q(z_kb | x_b). K = 1 is the ELBO; E[L_K] increases with K
    towards log p(x_b).
    """
    if log_w.ndim != 2:
        raise ValueError(f"log_w must be (K, B), got shape {tuple(log_w.shape)}")
    return log_mean_exp(log_w, dim=0)


def importance_estimate(f_values: torch.Tensor, log_w: torch.Tensor) -> torch.Tensor:
    """Plain IS: 1/n sum_i w_i f(x_i), x_i ~ q, needs normalised p; f_values, log_w (n,) -> ()."""
    return (log_w.exp() * f_values).mean()


def normalised_weights(log_w: torch.Tensor) -> torch.Tensor:
    """w_i / sum_j w_j, (n,); the normaliser of p cancels, so log_w may be off by a constant."""
    return torch.softmax(log_w, dim=0)


def self_normalised_estimate(f_values: torch.Tensor, log_w: torch.Tensor) -> torch.Tensor:
    """SNIS: sum_i w_i f(x_i) / sum_i w_i (Owen Ch. 9); consistent, bias O(1/n)."""
    return (normalised_weights(log_w) * f_values).sum()


def kish_ess(log_w: torch.Tensor) -> float:
    """Kish ESS (sum w)^2 / sum w^2 = exp(2 logsumexp(log_w) - logsumexp(2 log_w)); in [1, n]."""
    return float(torch.exp(2 * torch.logsumexp(log_w, 0) - torch.logsumexp(2 * log_w, 0)))


def gaussian_log_pdf(x: torch.Tensor, *, mean: float, std: float) -> torch.Tensor:
    """log N(x; mean, std^2), elementwise."""
    return -0.5 * ((x - mean) / std) ** 2 - math.log(std * math.sqrt(2 * math.pi))
