"""Frechet distance between Gaussians fitted to features (the FID formula of Heusel et al. 2017)."""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import NDArray

Array = torch.Tensor | NDArray


def _as_float64(a: Array) -> NDArray[np.float64]:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().to(torch.float64).numpy()
    return np.asarray(a, dtype=np.float64)


def gaussian_stats(feats: Array) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Mean (D,) and unbiased covariance (D, D), in float64, of features `feats` (N, D)."""
    x = _as_float64(feats)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"feats must have shape (N, D) with N >= 2, got {x.shape}")
    mu = x.mean(axis=0)
    centred = x - mu
    sigma = centred.T @ centred / (x.shape[0] - 1)  # (D, D)
    return mu, sigma


def _psd_eigvals(m: NDArray[np.float64]) -> NDArray[np.float64]:
    """Eigenvalues of the symmetric part of m, tiny negative round-off clamped to 0."""
    return np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0.0, None)


def _sqrt_psd(m: NDArray[np.float64]) -> NDArray[np.float64]:
    """Symmetric square root V diag(sqrt(lambda)) V^T of a symmetric PSD matrix."""
    lam, vec = np.linalg.eigh((m + m.T) / 2)
    return (vec * np.sqrt(np.clip(lam, 0.0, None))) @ vec.T


def _check_stats(mu: NDArray, sigma: NDArray, name: str) -> None:
    d = mu.shape[0]
    if mu.ndim != 1 or sigma.shape != (d, d):
        raise ValueError(f"{name}: need mu (D,) and sigma (D, D), got {mu.shape} and {sigma.shape}")


def frechet_distance(mu1: Array, sigma1: Array, mu2: Array, sigma2: Array) -> float:
    """Squared Frechet (W2) distance between N(mu1, sigma1) and N(mu2, sigma2), float64.

    d^2 = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1^1/2 S2 S1^1/2)^1/2). The trace term uses the
    symmetric PSD form, which equals tr((S1 S2)^1/2) but needs only symmetric eigendecompositions,
    so no complex parts appear; round-off below zero is clamped.
    """
    mu1, sigma1, mu2, sigma2 = (_as_float64(a) for a in (mu1, sigma1, mu2, sigma2))
    _check_stats(mu1, sigma1, "first Gaussian")
    _check_stats(mu2, sigma2, "second Gaussian")
    if mu1.shape != mu2.shape:
        raise ValueError(f"mu1 and mu2 differ in dimension: {mu1.shape} vs {mu2.shape}")
    root1 = _sqrt_psd(sigma1)
    tr_covmean = np.sqrt(_psd_eigvals(root1 @ sigma2 @ root1)).sum()
    diff = mu1 - mu2
    d2 = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean
    return float(max(d2, 0.0))


def fd_from_features(a: Array, b: Array) -> float:
    """Frechet distance between Gaussians fitted to features a (N, D) and b (M, D)."""
    return frechet_distance(*gaussian_stats(a), *gaussian_stats(b))
