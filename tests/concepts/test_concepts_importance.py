"""Importance sampling, SNIS, Kish ESS and the IWAE bound against closed forms."""

import math

import pytest
import torch

from genlab.concepts import importance as imp


def test_log_mean_exp_is_stable_and_exact(gen):
    x = torch.randn(7, 3, generator=gen, dtype=torch.float64)
    assert torch.allclose(imp.log_mean_exp(x, dim=0), x.exp().mean(0).log())
    big = x + 1000.0  # naive exp overflows
    assert torch.allclose(imp.log_mean_exp(big, dim=0), imp.log_mean_exp(x, dim=0) + 1000.0)


def test_iwae_bound_shapes_and_special_cases(gen):
    log_w = torch.randn(1, 5, generator=gen, dtype=torch.float64)
    assert torch.allclose(imp.iwae_bound(log_w), log_w[0])  # K = 1: the ELBO term
    const = torch.full((10, 4), -3.2, dtype=torch.float64)  # q = posterior: w = p(x) exactly
    assert torch.allclose(imp.iwae_bound(const), torch.full((4,), -3.2, dtype=torch.float64))
    with pytest.raises(ValueError, match="log_w"):
        imp.iwae_bound(torch.zeros(3))


def _kl_prior_to_posterior(x):
    """KL(N(0, 1) || N(x / 2, 1 / 2)): the ELBO gap when q is the prior in the model below."""
    m = x / 2
    return 0.5 * (1 / 0.5 + m * m / 0.5 - 1 + math.log(0.5))


def test_iwae_bound_increases_with_k_towards_log_evidence(gen):
    """z ~ N(0, 1), x | z ~ N(z, 1), q(z) = N(0, 1): log p(x) = log N(x; 0, 2).

    The posterior is N(x / 2, 1 / 2).

    With q = prior, log w = log p(x | z). E[L_1] = log p(x) - KL(q || posterior) (the ELBO) and
    E[L_K] increases with K towards log p(x) (Burda 2016, Theorem 1).
    """
    x, b = 1.3, 4000

    def bound(k):
        z = torch.randn(k, b, generator=gen, dtype=torch.float64)
        log_w = imp.gaussian_log_pdf(x - z, mean=0.0, std=1.0)  # (K, B)
        return float(imp.iwae_bound(log_w).mean())

    log_px = float(imp.gaussian_log_pdf(torch.tensor(x, dtype=torch.float64), mean=0.0,
                                        std=math.sqrt(2)))
    l1, l10, l100 = bound(1), bound(10), bound(100)
    assert l1 < l10 < l100 < log_px + 0.005
    assert log_px - l100 < 0.02
    assert l1 == pytest.approx(log_px - _kl_prior_to_posterior(x), abs=0.05)


def test_importance_sampling_gaussian_expectation(gen):
    """E_p[x^2] = 2 for p = N(1, 1), sampled from q = N(0, 2^2); IS within 4 standard errors."""
    n = 50_000
    x = 2.0 * torch.randn(n, generator=gen, dtype=torch.float64)
    log_w = imp.gaussian_log_pdf(x, mean=1.0, std=1.0) - imp.gaussian_log_pdf(x, mean=0.0, std=2.0)
    terms = log_w.exp() * x**2
    se = float(terms.std()) / math.sqrt(n)
    assert abs(float(imp.importance_estimate(x**2, log_w)) - 2.0) < 4 * se
    snis = imp.self_normalised_estimate(x**2, log_w + 7.0)  # unknown normaliser: shift cancels
    assert float(snis) == pytest.approx(2.0, abs=0.05)
    assert float(imp.self_normalised_estimate(x**2, log_w)) == pytest.approx(float(snis))


def test_is_unbiased_and_snis_nearly_so(gen):
    """4000 repetitions at n = 20: plain IS mean within 4 SE of 2; SNIS bias is O(1/n), small."""
    reps, n = 4000, 20
    x = 2.0 * torch.randn(reps, n, generator=gen, dtype=torch.float64)
    log_w = imp.gaussian_log_pdf(x, mean=1.0, std=1.0) - imp.gaussian_log_pdf(x, mean=0.0, std=2.0)
    is_est = (log_w.exp() * x**2).mean(1)
    snis_est = (torch.softmax(log_w, dim=1) * x**2).sum(1)
    assert abs(float(is_est.mean()) - 2.0) < 4 * float(is_est.std()) / math.sqrt(reps)
    assert abs(float(snis_est.mean()) - 2.0) < 0.15
    one = imp.self_normalised_estimate(x[0] ** 2, log_w[0])
    assert float(one) == pytest.approx(float(snis_est[0]))


def test_kish_ess(gen):
    f64 = torch.float64
    assert imp.kish_ess(torch.zeros(50, dtype=f64)) == pytest.approx(50.0)
    assert imp.kish_ess(torch.full((50,), 123.0, dtype=f64)) == pytest.approx(50.0)  # shift-free
    assert imp.kish_ess(torch.tensor([0.0, -1e4, -1e4], dtype=f64)) == pytest.approx(1.0)
    log_w = torch.randn(100, generator=gen, dtype=torch.float64)
    w = log_w.exp()
    assert imp.kish_ess(log_w) == pytest.approx(float(w.sum() ** 2 / (w**2).sum()))
    assert torch.allclose(imp.normalised_weights(log_w), w / w.sum())
