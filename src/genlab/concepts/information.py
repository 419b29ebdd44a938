"""Entropy, cross-entropy, KL and mutual information: discrete, Gaussian closed forms, and KSG.

The continuous MI estimator is algorithm 1 of Kraskov, Stoegbauer and Grassberger, Estimating
mutual information, Phys. Rev. E 69 (2004), Eq. 8. All quantities are in nats.
"""

from __future__ import annotations

import math

import torch


def _xlogy(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """x * log(y) with the convention 0 * log(anything) = 0."""
    return torch.special.xlogy(x, y)


def _check_prob(name: str, p: torch.Tensor) -> None:
    if bool((p < 0).any()) or not torch.allclose(p.sum(-1), p.new_ones(()), atol=1e-6):
        raise ValueError(f"{name} must be non-negative and sum to 1 along the last dim")


# ------------------------------------------------------------------------------------ discrete


def entropy(p: torch.Tensor) -> torch.Tensor:
    """H(p) = -sum_k p_k log p_k over the last dim; p (..., K) -> (...)."""
    _check_prob("p", p)
    return -_xlogy(p, p).sum(-1)


def cross_entropy(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """H(p, q) = -sum_k p_k log q_k; infinite where q_k = 0 < p_k. p, q (..., K) -> (...)."""
    _check_prob("p", p)
    _check_prob("q", q)
    return -_xlogy(p, q).sum(-1)


def kl_divergence(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """KL(p || q) = H(p, q) - H(p) = sum_k p_k log(p_k / q_k); (..., K) -> (...)."""
    return cross_entropy(p, q) - entropy(p)


def mutual_information(joint: torch.Tensor) -> torch.Tensor:
    """I(X; Y) = KL(p(x, y) || p(x) p(y)) from a joint probability table (K, L)."""
    _check_prob("joint", joint.reshape(-1))
    px, py = joint.sum(1, keepdim=True), joint.sum(0, keepdim=True)  # (K, 1), (1, L)
    return _xlogy(joint, joint).sum() - _xlogy(joint, px * py).sum()


# ------------------------------------------------------------------------------------ Gaussian


def gaussian_entropy(cov: torch.Tensor) -> torch.Tensor:
    """Differential entropy of N(m, cov): 1/2 log det(2 pi e cov); cov (D, D)."""
    d = cov.shape[-1]
    return 0.5 * (d * math.log(2 * math.pi * math.e) + torch.logdet(cov))


def kl_gaussian(mu0: float, var0: float, mu1: float, var1: float) -> float:
    """KL(N(mu0, var0) || N(mu1, var1)).

    = 1/2 [var0 / var1 + (mu1 - mu0)^2 / var1 - 1 + log(var1 / var0)].
    """
    if var0 <= 0 or var1 <= 0:
        raise ValueError(f"variances must be > 0, got var0={var0}, var1={var1}")
    return 0.5 * (var0 / var1 + (mu1 - mu0) ** 2 / var1 - 1 + math.log(var1 / var0))


def kl_mvn(
    mu0: torch.Tensor, cov0: torch.Tensor, mu1: torch.Tensor, cov1: torch.Tensor
) -> torch.Tensor:
    """KL(N(mu0, cov0) || N(mu1, cov1)), mu (D,), cov (D, D):

    1/2 [tr(cov1^-1 cov0) + (mu1 - mu0)^T cov1^-1 (mu1 - mu0) - D + log det cov1 - log det cov0].
    """
    L1 = torch.linalg.cholesky(cov1)
    diff = (mu1 - mu0)[:, None]  # (D, 1)
    trace = torch.cholesky_solve(cov0, L1).diagonal().sum()
    maha = (diff * torch.cholesky_solve(diff, L1)).sum()
    logdet = 2 * L1.diagonal().log().sum() - torch.logdet(cov0)
    return 0.5 * (trace + maha - len(mu0) + logdet)


def gaussian_mi(rho: float) -> float:
    """I(X; Y) of a bivariate Gaussian with correlation rho: -1/2 log(1 - rho^2)."""
    if not -1 < rho < 1:
        raise ValueError(f"rho must be in (-1, 1), got {rho}")
    return -0.5 * math.log1p(-rho * rho)


def sample_correlated_gaussian(
    n: int, *, rho: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """n draws of standard (X, Y) with correlation rho, each as (n, 1) float64."""
    z = torch.randn(n, 2, generator=generator, dtype=torch.float64)
    x = z[:, :1]
    y = rho * x + math.sqrt(1 - rho * rho) * z[:, 1:]
    return x, y


# ---------------------------------------------------------------------------------------- KSG


def _max_norm_dist(a: torch.Tensor) -> torch.Tensor:
    """Pairwise Chebyshev distances of a (N, d) -> (N, N), with +inf on the diagonal."""
    dist = (a[:, None, :] - a[None, :, :]).abs().amax(-1)
    return dist.fill_diagonal_(math.inf)


def ksg_mutual_information(x: torch.Tensor, y: torch.Tensor, *, k: int = 3) -> float:
    """KSG estimator 1: I = psi(k) + psi(N) - < psi(n_x + 1) + psi(n_y + 1) > (Kraskov 2004, Eq. 8).

    x (N, dx), y (N, dy). eps_i is the max-norm distance from point i to its k-th neighbour in the
    joint space (max over the two marginal max-norms); n_x(i) counts j != i with
    ||x_j - x_i|| < eps_i strictly, likewise n_y. Memory is O(N^2): meant for N up to a few 1000.
    """
    n = len(x)
    if len(y) != n:
        raise ValueError(f"x and y must have the same number of rows, got {n} and {len(y)}")
    if not 1 <= k < n:
        raise ValueError(f"k must be in [1, {n - 1}], got {k}")
    dx, dy = _max_norm_dist(x.double()), _max_norm_dist(y.double())
    eps = torch.maximum(dx, dy).kthvalue(k, dim=1).values  # (N,)
    n_x = (dx < eps[:, None]).sum(1)
    n_y = (dy < eps[:, None]).sum(1)
    psi = torch.special.digamma
    avg = (psi(n_x.double() + 1) + psi(n_y.double() + 1)).mean()
    return float(psi(torch.tensor([k, n], dtype=torch.float64)).sum() - avg)
