"""MCMC tests: target densities, moments, acceptance, leapfrog properties, ULA bias, ESS."""

import math

import pytest
import torch

from genlab.concepts import mcmc

COV = torch.tensor([[1.0, 0.8], [0.8, 1.0]], dtype=torch.float64)
MEAN = torch.tensor([1.0, -1.0], dtype=torch.float64)


def _targets():
    return {
        "gaussian": mcmc.CorrelatedGaussian(MEAN, COV),
        "banana": mcmc.Banana(a=1.5, b=0.5),
        "mixture": mcmc.GaussianMixture(torch.tensor([0.3, 0.7]),
                                        torch.tensor([[-1.5, 0.0], [1.5, 0.5]]),
                                        torch.tensor([0.7, 0.5])),
    }


@pytest.mark.parametrize("name", ["gaussian", "banana", "mixture"])
def test_scores_match_autograd(name, gen):
    target = _targets()[name]
    x = 2 * torch.randn(16, 2, generator=gen, dtype=torch.float64)
    _, auto = mcmc.log_prob_and_grad(target.log_prob, x)
    assert torch.allclose(target.score(x), auto, atol=1e-10)


@pytest.mark.parametrize("name", ["gaussian", "banana", "mixture"])
def test_densities_normalise_and_samplers_match_moments(name, gen):
    target = _targets()[name]
    xs = torch.linspace(-12, 12, 601, dtype=torch.float64)
    gx, gy = torch.meshgrid(xs, xs - 4, indexing="xy")  # banana mass sits at negative x2
    grid = torch.stack([gx.flatten(), gy.flatten()], -1)
    mass = float(target.log_prob(grid).exp().sum()) * float(xs[1] - xs[0]) ** 2
    assert mass == pytest.approx(1.0, abs=2e-3)
    x = target.sample(200_000, generator=gen)
    assert torch.allclose(x.mean(0), target.mean, atol=0.02)
    assert torch.allclose(torch.cov(x.T), target.cov, atol=0.1, rtol=0.03)
    if name == "gaussian":
        torch_mvn = torch.distributions.MultivariateNormal(MEAN, COV)
        assert torch.allclose(target.log_prob(x[:100]), torch_mvn.log_prob(x[:100]))


def _run(sampler, target, gen, n_chains=256, n_steps=400):
    x0 = torch.randn(n_chains, 2, generator=gen, dtype=torch.float64)  # not at the target
    kwargs = {"rwm": {"step_size": 0.8}, "mala": {"step_size": 0.15, "score": target.score},
              "hmc": {"step_size": 0.25, "n_leapfrog": 8, "score": target.score}}[sampler]
    fn = {"rwm": mcmc.random_walk_metropolis, "mala": mcmc.mala, "hmc": mcmc.hmc}[sampler]
    return fn(target.log_prob, x0, n_steps=n_steps, generator=gen, **kwargs)


@pytest.mark.parametrize("sampler", ["rwm", "mala", "hmc"])
def test_samplers_recover_correlated_gaussian_moments(sampler, gen):
    """256 chains x 300 kept steps: |mean error| < 0.07 and |cov error| < 0.08 elementwise.

    Worst errors over 10 seeds: 0.046 / 0.041 (RWM), 0.035 / 0.042 (MALA), 0.007 / 0.013 (HMC).
    """
    target = mcmc.CorrelatedGaussian(MEAN, COV)
    res = _run(sampler, target, gen)
    kept = res.samples[100:].reshape(-1, 2)
    assert float((kept.mean(0) - MEAN).abs().max()) < 0.07
    assert float((torch.cov(kept.T) - COV).abs().max()) < 0.08
    assert res.samples.shape == (400, 256, 2)


def test_acceptance_rates_are_in_sensible_ranges(gen):
    target = mcmc.CorrelatedGaussian(MEAN, COV)
    assert 0.2 < _run("rwm", target, gen, 64, 200).accept_rate < 0.7
    assert 0.55 < _run("mala", target, gen, 64, 200).accept_rate < 0.95  # optimal ~0.57 in high D
    assert 0.8 < _run("hmc", target, gen, 64, 200).accept_rate <= 1.0
    tiny = mcmc.mala(target.log_prob, torch.zeros(64, 2, dtype=torch.float64), n_steps=50,
                     step_size=1e-4, generator=gen)  # autograd score path
    assert tiny.accept_rate > 0.99


def test_ula_stationary_variance_matches_closed_form_bias(gen):
    """On N(0, s^2), ULA is AR(1) with phi = 1 - eps / s^2: Var = s^2 / (1 - eps / (2 s^2)).

    MALA with the same step is exact, so its variance stays s^2.
    """
    s2, eps = 1.0, 0.5
    target = mcmc.CorrelatedGaussian(torch.zeros(1), torch.eye(1) * s2)
    x0 = torch.randn(2000, 1, generator=gen, dtype=torch.float64)
    ula = mcmc.ula(target.log_prob, x0, n_steps=200, step_size=eps, generator=gen,
                   score=target.score)
    mala = mcmc.mala(target.log_prob, x0, n_steps=200, step_size=eps, generator=gen)
    assert float(ula.samples[50:].var()) == pytest.approx(s2 / (1 - eps / (2 * s2)), rel=0.03)
    assert float(mala.samples[50:].var()) == pytest.approx(s2, rel=0.03)


def test_leapfrog_is_reversible_and_second_order(gen):
    target = _targets()["banana"]
    x = torch.randn(32, 2, generator=gen, dtype=torch.float64)
    p = torch.randn(32, 2, generator=gen, dtype=torch.float64)
    y, q = mcmc.leapfrog(target.log_prob, x, p, step_size=0.05, n_leapfrog=20)
    x_back, p_back = mcmc.leapfrog(target.log_prob, y, -q, step_size=0.05, n_leapfrog=20)
    assert torch.allclose(x_back, x, atol=1e-10) and torch.allclose(-p_back, p, atol=1e-10)

    def energy_error(eps):  # same trajectory length 1.0
        y, q = mcmc.leapfrog(target.log_prob, x, p, step_size=eps, n_leapfrog=round(1 / eps),
                             score=target.score)
        h0 = -target.log_prob(x) + 0.5 * (p**2).sum(-1)
        return float((-target.log_prob(y) + 0.5 * (q**2).sum(-1) - h0).abs().mean())

    assert 3.0 < energy_error(0.02) / energy_error(0.01) < 5.0  # O(eps^2) energy error


def _ar1(phi, n, chains, gen):
    x = torch.empty(n, chains, dtype=torch.float64)
    x[0] = torch.randn(chains, generator=gen, dtype=torch.float64)
    e = math.sqrt(1 - phi**2) * torch.randn(n, chains, generator=gen, dtype=torch.float64)
    for t in range(1, n):
        x[t] = phi * x[t - 1] + e[t]
    return x


def test_ess_of_iid_samples_is_n(gen):
    x = torch.randn(4000, 16, generator=gen, dtype=torch.float64)
    assert mcmc.effective_sample_size(x) == pytest.approx(4000 * 16, rel=0.1)
    assert mcmc.effective_sample_size(x[:, 0]) == pytest.approx(4000, rel=0.15)


@pytest.mark.parametrize("phi", [0.5, 0.9])
def test_ess_of_ar1_matches_closed_form(phi, gen):
    """64 chains x 4000 steps; over 20 seeds the ratio to n(1 - phi)/(1 + phi) had sd 0.03."""
    x = _ar1(phi, 4000, 64, gen)
    assert mcmc.effective_sample_size(x) / 64 == pytest.approx(mcmc.ar1_ess(4000, phi), rel=0.12)
    assert float(mcmc.autocorrelation(x)[1]) == pytest.approx(phi, abs=0.02)


def test_mixture_rejects_unnormalised_weights():
    with pytest.raises(ValueError, match="weights"):
        mcmc.GaussianMixture(torch.tensor([0.5, 0.6]), torch.zeros(2, 1), torch.ones(2))
