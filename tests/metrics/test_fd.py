"""Tests for the Frechet distance: closed forms, scipy.linalg.sqrtm oracle, degenerate cases."""

import numpy as np
import pytest
import scipy.linalg
import torch

from genlab.metrics.fd import fd_from_features, frechet_distance, gaussian_stats


def _random_cov(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.standard_normal((d, 2 * d))
    return a @ a.T / (2 * d) + 0.1 * np.eye(d)  # well conditioned


def _scipy_fd(mu1, s1, mu2, s2) -> float:
    covmean = scipy.linalg.sqrtm(s1 @ s2).real  # the classic FID formula
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def test_gaussian_stats_matches_numpy_from_float32_torch():
    feats = torch.randn(50, 7, generator=torch.Generator().manual_seed(0))
    mu, sigma = gaussian_stats(feats)
    ref = feats.double().numpy()
    assert mu.dtype == np.float64 and sigma.dtype == np.float64
    np.testing.assert_allclose(mu, ref.mean(axis=0), rtol=0, atol=1e-14)
    np.testing.assert_allclose(sigma, np.cov(ref, rowvar=False), rtol=0, atol=1e-13)


def test_identical_gaussians_give_zero():
    rng = np.random.default_rng(1)
    mu, sigma = rng.standard_normal(64), _random_cov(rng, 64)
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-8


def test_one_dimensional_closed_form():
    # W2^2(N(m1, s1^2), N(m2, s2^2)) = (m1 - m2)^2 + (s1 - s2)^2
    got = frechet_distance(np.array([1.5]), np.array([[4.0]]), np.array([-0.5]), np.array([[0.25]]))
    assert got == pytest.approx(2.0**2 + (2.0 - 0.5) ** 2, abs=1e-12)


def test_diagonal_covariances_closed_form():
    rng = np.random.default_rng(2)
    mu1, mu2 = rng.standard_normal(10), rng.standard_normal(10)
    v1, v2 = rng.uniform(0.1, 3.0, 10), rng.uniform(0.1, 3.0, 10)
    want = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(v1) - np.sqrt(v2)) ** 2).sum()
    assert frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(want, abs=1e-10)


@pytest.mark.parametrize("seed", range(5))
def test_matches_scipy_sqrtm_on_well_conditioned_covariances(seed):
    rng = np.random.default_rng(seed)
    d = 32
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    s1, s2 = _random_cov(rng, d), _random_cov(rng, d)
    want = _scipy_fd(mu1, s1, mu2, s2)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(want, rel=1e-9, abs=1e-9)


def test_rank_deficient_covariances_finite_and_nonnegative():
    gen = torch.Generator().manual_seed(3)
    a, b = torch.randn(10, 40, generator=gen), torch.randn(12, 40, generator=gen)  # N < D
    for x, y in [(a, b), (a, a), (b, a + 0.01)]:
        d = fd_from_features(x, y)
        assert np.isfinite(d) and d >= 0.0
    assert fd_from_features(a, a) < 1e-8


def test_symmetric_in_its_arguments():
    gen = torch.Generator().manual_seed(4)
    a, b = torch.randn(200, 16, generator=gen), 1.5 * torch.randn(300, 16, generator=gen) + 0.3
    assert fd_from_features(a, b) == pytest.approx(fd_from_features(b, a), rel=1e-10)


def test_fd_from_features_recovers_population_distance():
    # Large samples of N(0, I) and N(m, 4 I) in 3-D: FD -> |m|^2 + 3 (2 - 1)^2 = 1 + 3 = 4.
    gen = torch.Generator().manual_seed(5)
    a = torch.randn(200_000, 3, generator=gen, dtype=torch.float64)
    b = 2.0 * torch.randn(200_000, 3, generator=gen, dtype=torch.float64) + torch.tensor([1, 0, 0])
    assert fd_from_features(a, b) == pytest.approx(4.0, abs=0.05)


def test_rejects_bad_shapes():
    with pytest.raises(ValueError, match="feats"):
        gaussian_stats(np.zeros(5))
    with pytest.raises(ValueError, match="mu1 and mu2"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match="first Gaussian"):
        frechet_distance(np.zeros(2), np.eye(3), np.zeros(2), np.eye(2))
